"""The properties: harnesses that hold a unit of :mod:`rtl_gen.hw` and state, as Amaranth
``Assert``/``Assume``/``Cover``, what it must compute.

Every reference is written here, independently of the hardware description: a PE's
expected sum is ``sum_i x_i * w_i`` with ``w_i`` decoded from the scheme's code table (the
numerics, :meth:`rtl_gen.numerics.WeightScheme.decode`), a popcount's is the plain sum of
its bits, the HESE digits are NUMERICS.md section 3's formula in its arithmetic form.  The
inputs are free (the solver picks every value), so a bounded check from the initial state
that reaches past one transaction covers every input of that width: a PE holds no state
from one accumulation into the next (``first`` restarts it), so the first transaction is
every transaction.  Invariants of sequential parts (the credit FIFO, the TR budget counter,
the host-link parser) are proved by k-induction; where they concern a counter inside an
engine, the harness reads it from the elaborated engine (:func:`_assigned_signals`).
"""

from __future__ import annotations

from amaranth import Cat, Const, Elaboratable, Module, Mux, Signal, Value, signed, unsigned
from amaranth.hdl import Assert, Assume, Cover
from amaranth.lib import data

from ..hw.hese import DataTermUnit, HeseEncoder, TermTruncator
from ..hw.kit import credit_fifo
from ..hw.pe import DotProductUnit, PEConfig
from ..hw.popcount import popcount
from .runner import Check

__all__ = ["CreditFifoHarness", "DataTermHarness", "FloatOpHarness", "HeseHarness",
           "HostLinkHarness", "PEHarness", "PopcountHarness", "TRBudgetHarness", "TruncatorHarness",
           "checks", "pe_check", "tiny_network", "tiny_tr_layer"]


def _int(bit):
    """A one-bit value as the signed integer 0 or 1."""
    return Cat(bit, Const(0, 1)).as_signed()


def _decode(scheme, code, width: int):
    """``w_int`` of ``code`` from the scheme's table (a multiplexer over every code)."""
    table = scheme.decode([c for c in range(1 << scheme.bits)
                           if not scheme.invalid_codes([c])[0]])
    valid = [c for c in range(1 << scheme.bits) if not scheme.invalid_codes([c])[0]]
    w = Const(0, signed(width))
    for c, v in zip(valid, table, strict=True):
        w = Mux(code == c, Const(int(v), signed(width)), w)
    ok = Const(0, 1)
    for c in valid:
        ok = ok | (code == c)
    return w, ok


class PEHarness(Elaboratable):
    """A :class:`~rtl_gen.hw.pe.DotProductUnit` with one vector in flight at a time.

    Free inputs: the activations, the weight codes (run-time weights), a request to send,
    and the bit-plane precisions.  A vector is sent when requested and nothing is in flight;
    its reference sum is latched when the unit accepts it.  Asserted: ``o.valid`` rises
    exactly ``latency`` edges after the accepting edge (``w_prec * x_prec + pipeline`` for a
    bit-plane unit), never otherwise, and then ``o.payload`` equals the reference.
    Assumed: the codes are valid codes of the scheme; bit-plane operands fit their
    precisions.  Covered: a positive and (signed kinds) a negative result.
    """

    def __init__(self, config: PEConfig, unit_cls=DotProductUnit):
        self.config = config
        self.unit = unit_cls(config)
        cfg = config
        self.x = Signal(data.ArrayLayout(cfg.activation_shape, cfg.lanes))
        self.w = Signal(data.ArrayLayout(cfg.pe_kind.weight_shape(cfg), cfg.lanes))
        self.send = Signal()
        self.free = [self.x, self.w, self.send]
        if cfg.run_time_precision:
            self.w_prec = Signal.like(self.unit.w_prec, name="w_prec_in")
            self.x_prec = Signal.like(self.unit.x_prec, name="x_prec_in")
            self.free += [self.w_prec, self.x_prec]

    def _reference(self, m):
        """``(sum, latency, assumptions)`` of the vector on the inputs."""
        cfg, unit = self.config, self.unit
        wide = cfg.acc_bits + 2
        ok = []
        xs = [self.x[i] for i in range(cfg.lanes)]
        if cfg.run_time_precision:
            def eff(prec, most):
                return Mux((prec == 0) | (prec > most), most, prec)
            wp, xp = eff(self.w_prec, cfg.w_bits), eff(self.x_prec, cfg.a_bits)
            m.d.comb += [unit.w_prec.eq(self.w_prec), unit.x_prec.eq(self.x_prec)]
            ws = [self.w[i] for i in range(cfg.lanes)]
            for p in range(1, cfg.w_bits + 1):
                lo, hi = -(1 << (p - 1)), (1 << (p - 1)) - 1
                ok += [(wp != p) | ((w >= lo) & (w <= hi)) for w in ws]
            for p in range(1, cfg.a_bits + 1):
                lo, hi = (-(1 << (p - 1)), (1 << (p - 1)) - 1) if cfg.a_signed \
                    else (0, (1 << p) - 1)
                ok += [(xp != p) | ((x >= lo) & (x <= hi)) for x in xs]
            latency = wp * xp + cfg.pipeline
        else:
            if cfg.kind == "xnor":
                # activations are ±1 codes like the weights (1 means -1)
                xs = [Mux(x, Const(-1, signed(2)), Const(1, signed(2))) for x in xs]
            ws = []
            for i in range(cfg.lanes):
                code = self.w[i] if cfg.weights is None else Const(cfg.weights[i], cfg.w_bits)
                w, valid = _decode(cfg.scheme, code, cfg.scheme.w_int_max.bit_length() + 2)
                ws.append(w)
                ok.append(valid)
            latency = Const(cfg.latency)
        total = Const(0, signed(wide))
        for x, w in zip(xs, ws, strict=True):
            total = total + x * w
        ref = Signal(signed(wide), name="ref_now")
        m.d.comb += ref.eq(total)
        return ref, latency, ok

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        m.submodules.unit = unit = self.unit
        ref_now, latency_now, ok = self._reference(m)
        pending = Signal()
        count = Signal(range(cfg.w_bits * cfg.a_bits + cfg.pipeline + 2))
        latency = Signal.like(count)
        ref = Signal.like(ref_now, name="ref")
        m.d.comb += [unit.i.valid.eq(self.send & ~pending),
                     unit.i.payload.x.eq(self.x),
                     unit.i.payload.first.eq(1), unit.i.payload.last.eq(1)]
        if cfg.weights is None:
            m.d.comb += unit.i.payload.w.eq(self.w)
        for cond in ok:
            m.d.comb += Assume(~unit.i.valid | cond)
        accept = unit.i.valid & unit.i.ready
        with m.If(accept):
            m.d.sync += [pending.eq(1), count.eq(0), ref.eq(ref_now), latency.eq(latency_now)]
        with m.Elif(unit.o.valid):
            m.d.sync += pending.eq(0)
        with m.Elif(pending):
            m.d.sync += count.eq(count + 1)
        m.d.comb += [
            Assert(unit.o.valid == (pending & (count == latency))),
            Assert(~unit.o.valid | (unit.o.payload == ref)),
            Cover(unit.o.valid & (ref > 0)),
        ]
        if _can_be_negative(cfg):
            m.d.comb += Cover(unit.o.valid & (ref < 0))
        return m


def _can_be_negative(cfg: PEConfig) -> bool:
    if cfg.a_signed or cfg.kind in ("bitplane", "xnor"):
        return True
    codes = [c for c in range(1 << cfg.w_bits) if not cfg.scheme.invalid_codes([c])[0]]
    if cfg.weights is not None:
        codes = list(cfg.weights)
    return bool(cfg.scheme.decode(codes).min() < 0)


def pe_check(config: PEConfig, *, name: str | None = None, unit_cls=DotProductUnit,
             extra_depth: int = 2) -> Check:
    """The bounded check of one PE configuration (depth: its latency and ``extra_depth``)."""
    def build():
        h = PEHarness(config, unit_cls)
        return h, h.free
    return Check(name or f"pe.{config.name}", build, "bmc", config.latency + extra_depth,
                 what=f"{config.kind} unit == sum x*w over every input")


class PopcountHarness(Elaboratable):
    """:func:`rtl_gen.hw.popcount.popcount` of ``n`` free bits equals their sum ``stages``
    edges later."""

    def __init__(self, n: int, *, stages: int = 0, method: str = "tree"):
        self.n, self.stages, self.method = n, stages, method
        self.bits = Signal(n)
        self.free = [self.bits]

    def elaborate(self, platform):
        m = Module()
        count = popcount(m, self.bits, stages=self.stages, method=self.method)
        ref = Const(0, unsigned(self.n.bit_length()))
        for i in range(self.n):
            ref = ref + self.bits[i]
        for t in range(self.stages):
            r = Signal.like(ref, name=f"ref_d{t}")
            m.d.sync += r.eq(ref)
            ref = r
        age = Signal(range(self.stages + 2))   # edges since the start, saturating
        with m.If(age <= self.stages):
            m.d.sync += age.eq(age + 1)
        m.d.comb += [Assert((age < self.stages) | (count == ref)),
                     Cover((age >= self.stages) & (count == self.n)),
                     Cover((age >= self.stages) & (count == self.n // 2))]
        return m


class HeseHarness(Elaboratable):
    """:class:`~rtl_gen.hw.hese.HeseEncoder` against NUMERICS.md section 3.

    Asserted for every input: no position is both ``+1`` and ``-1``; ``sum (pos_j - neg_j)
    2^j == i``; every digit is the section's formula ``d_j = b_j·¬b_{j-1}·(1 - 2·b_{j+1}) +
    ¬b_j·b_{j-1}·b_{j-2}`` on the magnitude, times the sign (computed here in integers, not
    in the hardware's logic form); never more nonzero digits than the magnitude has 1-bits.
    """

    def __init__(self, bits: int, *, signed_in: bool = False):
        self.enc = HeseEncoder(bits, signed=signed_in)
        self.bits, self.signed_in = bits, signed_in
        self.i = Signal.like(self.enc.i, name="value")
        self.free = [self.i]

    def elaborate(self, platform):
        m = Module()
        n = self.bits
        m.submodules.enc = enc = self.enc
        m.d.comb += enc.i.eq(self.i)
        value = Const(0, signed(n + 3))
        nonzero = Const(0, unsigned(n.bit_length() + 1))
        for j in range(n + 1):
            value = value + (_int(enc.pos[j]) - _int(enc.neg[j])) * (1 << j)
            nonzero = nonzero + (enc.pos[j] | enc.neg[j])
        m.d.comb += [Assert((enc.pos & enc.neg) == 0), Assert(value == self.i)]
        if self.signed_in:
            sign = self.i < 0
            mag = Signal(n + 1, name="mag")
            m.d.comb += mag.eq(Mux(sign, -self.i, self.i))
        else:
            sign = Const(0, 1)
            mag = self.i
        width = len(mag)

        def one(i):   # b_i as an integer 0/1, 0 outside the word
            return _int(mag[i]) if 0 <= i < width else Const(0, signed(2))

        ones = Const(0, unsigned(width.bit_length() + 1))
        for i in range(width):
            ones = ones + mag[i]
        for j in range(n + 1):
            bj, bm1, bm2, bp1 = one(j), one(j - 1), one(j - 2), one(j + 1)
            d = bj * (1 - bm1) * (1 - 2 * bp1) + (1 - bj) * bm1 * bm2
            d = Mux(sign, -d, d)
            m.d.comb += Assert(_int(enc.pos[j]) - _int(enc.neg[j]) == d)
        m.d.comb += [Assert(nonzero <= ones),
                     Cover(nonzero < ones),
                     Cover(self.i == (1 << n) - 1)]
        if self.signed_in:
            m.d.comb += Cover(self.i == -(1 << n))
        return m


class TruncatorHarness(Elaboratable):
    """:class:`~rtl_gen.hw.hese.TermTruncator` against its definition (keep the ``s`` most
    significant nonzero digits), on any signed-digit vector.

    Asserted: the kept digits are a subset of the input's; with ``enable`` 0 all are kept;
    with ``enable`` 1 exactly ``min(s, nonzero)`` are kept and no dropped digit sits above a
    kept one; ``value`` is the kept digits' sum.  With ``pipeline`` the outputs are compared
    one edge later.  With ``dtu`` the whole :class:`~rtl_gen.hw.hese.DataTermUnit` is
    checked: its digits are the encoder's, truncated, and with ``enable`` 0 its value is
    its input.
    """

    def __init__(self, bits: int, *, pipeline: bool = False):
        self.bits, self.pipeline = bits, pipeline
        self.unit = TermTruncator(bits, pipeline=pipeline)
        self.pos = Signal(bits + 1, name="pos_in")
        self.neg = Signal(bits + 1, name="neg_in")
        self.s = Signal.like(self.unit.s, name="s_in")
        self.enable = Signal(name="enable_in")
        self.free = [self.pos, self.neg, self.s, self.enable]

    def elaborate(self, platform):
        m = Module()
        n, d = self.bits, self.bits + 1
        m.submodules.unit = u = self.unit
        m.d.comb += [u.pos.eq(self.pos), u.neg.eq(self.neg), u.s.eq(self.s),
                     u.enable.eq(self.enable), Assume((self.pos & self.neg) == 0)]
        pos, neg, s, enable = self.pos, self.neg, self.s, self.enable
        valid = Const(1, 1)
        if self.pipeline:
            regs = [Signal.like(v, name=f"{v.name}_d") for v in (pos, neg, s, enable)]
            m.d.sync += [r.eq(v) for r, v in zip(regs, (pos, neg, s, enable), strict=True)]
            pos, neg, s, enable = regs
            valid = Signal()
            m.d.sync += valid.eq(1)
        nz_in = pos | neg
        kept = u.pos_o | u.neg_o
        n_in = Const(0, unsigned(d.bit_length() + 1))
        n_kept = Const(0, unsigned(d.bit_length() + 1))
        value = Const(0, signed(n + 3))
        for j in range(d):
            n_in = n_in + nz_in[j]
            n_kept = n_kept + kept[j]
            value = value + (_int(u.pos_o[j]) - _int(u.neg_o[j])) * (1 << j)
        want = Mux(~enable, n_in, Mux(s < n_in, s, n_in))
        order = Const(1, 1)
        for lo in range(d):
            for hi in range(lo + 1, d):
                # a kept digit below a dropped one
                order = order & ~(kept[lo] & nz_in[hi] & ~kept[hi])
        m.d.comb += [
            Assert(~valid | ((u.pos_o & ~pos) == 0) & ((u.neg_o & ~neg) == 0)),
            Assert(~valid | (n_kept == want)),
            Assert(~valid | order),
            Assert(~valid | (u.value == value)),
            Cover(valid & enable & (n_kept < n_in) & (n_kept > 0)),
            Cover(valid & ~enable & (n_in == d)),
        ]
        return m


class DataTermHarness(Elaboratable):
    """:class:`~rtl_gen.hw.hese.DataTermUnit`: with ``enable`` 0 (or ``s`` of every digit)
    its value is its input, and with ``s == 1`` the value is one signed power of two (or 0)
    of the input's sign, within a factor of two of it."""

    def __init__(self, bits: int, *, signed_in: bool):
        self.bits, self.signed_in = bits, signed_in
        self.unit = DataTermUnit(bits, signed=signed_in)
        self.i = Signal.like(self.unit.i, name="value_in")
        self.s = Signal.like(self.unit.s, name="s_in")
        self.enable = Signal(name="enable_in")
        self.free = [self.i, self.s, self.enable]

    def elaborate(self, platform):
        m = Module()
        n = self.bits
        m.submodules.unit = u = self.unit
        m.d.comb += [u.i.eq(self.i), u.s.eq(self.s), u.enable.eq(self.enable)]
        full = ~self.enable | (self.s >= n + 1)
        v = u.value
        mag_in = Mux(self.i < 0, -self.i, self.i)
        mag_out = Mux(v < 0, -v, v)
        one_term = Const(0, 1)
        for e in range(n + 2):
            one_term = one_term | (mag_out == (1 << e))
        m.d.comb += [
            Assert(~full | (v == self.i)),
            Assert(~(self.enable & (self.s == 1) & (self.i != 0))
                   | (one_term & ((v < 0) == (self.i < 0))
                      & (mag_out <= 2 * mag_in) & (2 * mag_out > mag_in))),
            Assert(~(self.enable & (self.s == 0)) | (v == 0)),
            Cover(self.enable & (self.s == 1) & (v != self.i) & (self.i != 0)),
        ]
        return m


class CreditFifoHarness(Elaboratable):
    """The credit FIFO of :func:`rtl_gen.hw.kit.credit_fifo` under a free producer and a
    free consumer (``o.ready`` any value every cycle).

    The producer starts a tile (``reserve``) when asked and ``credit`` is high, then writes
    the tile's ``need`` results one per cycle when asked; each result is its sequence
    number.  Asserted (k-induction): free entries + occupancy + promised-but-unwritten ==
    depth; the registered credit equals ``free entries >= need``; a write never meets a full
    FIFO; writes minus reads == the FIFO's level; every emitted result is the next sequence
    number (none lost, duplicated or reordered; with
    ``order``, a bounded check: a result may wait in the FIFO memory for ever, so the data
    ordering is not k-inductive without the memory's contents); a stalled output holds
    ``valid`` and its payload until ``ready``.
    """

    def __init__(self, *, depth: int = 4, need: int = 2, width: int = 4, order: bool = True):
        self.depth, self.need, self.width, self.order = depth, need, width, order
        self.start = Signal(name="start_in")
        self.write = Signal(name="write_in")
        self.ready = Signal(name="ready_in")
        self.free = [self.start, self.write, self.ready]

    def elaborate(self, platform):
        from amaranth.lib import stream
        m = Module()
        depth, need, width = self.depth, self.need, self.width
        o = stream.Signature(unsigned(width)).flip().create(path=("o",))
        out = credit_fifo(m, o, width=width, depth=depth, need=need)
        fifo = out.fifo
        m.d.comb += o.ready.eq(self.ready)
        owed = Signal(range(depth + need + 1))    # promised, not yet written
        wseq = Signal(width)
        rseq = Signal(width)
        start = self.start & out.credit
        wen = self.write & (owed != 0)
        out.reserve(m, start, need)
        m.d.comb += [fifo.w_en.eq(wen), fifo.w_data.eq(wseq)]
        m.d.sync += owed.eq(owed + Mux(start, need, 0) - wen)
        with m.If(wen):
            m.d.sync += wseq.eq(wseq + 1)
        read = o.valid & o.ready
        with m.If(read):
            m.d.sync += rseq.eq(rseq + 1)
        past_stall = Signal()
        past_payload = Signal(width)
        m.d.sync += [past_stall.eq(o.valid & ~o.ready), past_payload.eq(o.payload)]
        in_fifo = (wseq - rseq)[:width]
        m.d.comb += [
            Assert(out.space + fifo.level + owed == depth),
            Assert(out.credit == (out.space >= need)),     # the registered credit is current
            Assert(~wen | fifo.w_rdy),
            Assert(in_fifo == fifo.level),
            Assert(~past_stall | (o.valid & (o.payload == past_payload))),
            Cover(fifo.level == depth),
            Cover(read & (rseq == depth + 1)),   # the FIFO has wrapped
        ]
        if self.order:
            m.d.comb += Assert(~o.valid | (o.payload == rseq))
        return m


def checks(*, quick: bool = False) -> list[Check]:
    """Every property, as :class:`Check` objects (``quick``: the fast subset)."""
    out: list[Check] = []

    def add(name, build, mode, depth, what, cover_depth=None):
        out.append(Check(name, build, mode, depth, what, cover_depth))

    pe_configs = [
        PEConfig("binary", 1, 3, a_signed=True, lanes=4),
        PEConfig("ternary", 2, 3, a_signed=True, lanes=4),
        PEConfig("ternary", 2, 4, lanes=4, pipeline=2),
        PEConfig("pot", 3, 3, lanes=2),
        PEConfig("pot", 4, 3, a_signed=True, lanes=2, pipeline=1),
        PEConfig("apot", 4, 3, lanes=2),
        PEConfig("apot", 5, 3, a_signed=True, lanes=2),
        PEConfig("int", 3, 3, a_signed=True, lanes=2),
        PEConfig("int", 4, 3, lanes=2),
        PEConfig("int", 5, 4, a_signed=True, lanes=2, pipeline=1),
        PEConfig("int", 4, 3, lanes=2, weights=(5, 12)),
        PEConfig("xnor", 1, 1, lanes=4),
        PEConfig("xnor", 1, 1, lanes=21, pipeline=1),
        PEConfig("bitplane", 3, 3, lanes=2),
        PEConfig("bitplane", 2, 3, a_signed=True, lanes=3, pipeline=1),
    ]
    if quick:
        pe_configs = pe_configs[:2]
    for cfg in pe_configs:
        out.append(pe_check(cfg))
    for n, stages, method in ([(7, 0, "tree"), (20, 0, "tree"), (24, 2, "tree"),
                               (9, 1, "sum")] if not quick else [(7, 0, "tree")]):
        add(f"popcount.{method}{n}s{stages}",
            lambda n=n, stages=stages, method=method: _free(
                PopcountHarness(n, stages=stages, method=method)),
            "bmc", stages + 2, f"popcount of {n} bits == their sum")
    for bits, sgn in [(4, False), (5, True), (8, False)] if not quick else [(4, False)]:
        add(f"hese.encoder{bits}{'s' if sgn else 'u'}",
            lambda bits=bits, sgn=sgn: _free(HeseHarness(bits, signed_in=sgn)),
            "bmc", 1, "HESE digits: value, NUMERICS formula, no more terms than 1-bits")
    for bits, pipe in [(4, False), (6, True)] if not quick else [(4, False)]:
        add(f"hese.truncator{bits}{'p' if pipe else ''}",
            lambda bits=bits, pipe=pipe: _free(TruncatorHarness(bits, pipeline=pipe)),
            "bmc", 2 if pipe else 1, "keeps the s most significant nonzero digits")
    if not quick:
        for bits, sgn in [(5, False), (5, True)]:
            add(f"hese.dataterm{bits}{'s' if sgn else 'u'}",
                lambda bits=bits, sgn=sgn: _free(DataTermHarness(bits, signed_in=sgn)),
                "bmc", 1, "data-term unit: bypass exact, one term within 2x")
    from ..numerics.floatops import FloatFormat
    for op, fmt in ([("mul", FloatFormat(3, 2)), ("add", FloatFormat(3, 2)),
                     ("mul", FloatFormat(3, 2, ieee=True)), ("add", FloatFormat(3, 2, ieee=True))]
                    if not quick else []):
        add(f"fpu.{op}.e{fmt.exp_bits}m{fmt.man_bits}{'ieee' if fmt.ieee else ''}",
            lambda op=op, fmt=fmt: _free(FloatOpHarness(op, fmt)), "bmc", 1,
            f"float {op} == the golden model's table for every pair of codes")
    add("kit.credit_fifo", lambda: _free(CreditFifoHarness(order=False)), "prove", 8,
        "credit FIFO: space + level + promised == depth, writes - reads == level, "
        "valid and payload held until ready", cover_depth=16)
    add("kit.credit_fifo.order", lambda: _free(CreditFifoHarness(order=True)), "bmc", 16,
        "credit FIFO: results leave in order, none lost or duplicated")
    if not quick:
        add("tr.budget_counter", lambda: _free(TRBudgetHarness()), "prove", 4,
            "TR slots per group in 1..T, latched per batch; slot and group counters in range",
            cover_depth=30)
        add("hostlink.parser_timeout", lambda: _free(HostLinkHarness()), "prove", 2,
            "host-link parser leaves a frame or stray bytes timeout + 1 cycles after the "
            "last byte", cover_depth=45)
    return out


def _free(h):
    return h, h.free



class FloatOpHarness(Elaboratable):
    """:class:`~rtl_gen.hw.fpu.FloatMul` or :class:`~rtl_gen.hw.fpu.FloatAdd` of a small
    format against the golden model's whole operation table
    (:func:`rtl_gen.numerics.floatops.fmul` / ``fadd`` of every pair of codes, a
    multiplexer here): equal for every pair, rounding, subnormals, saturation or
    infinities and the canonical NaN included."""

    def __init__(self, op: str, fmt):
        from ..hw.fpu import FloatAdd, FloatMul
        self.op, self.fmt = op, fmt
        self.unit = (FloatMul if op == "mul" else FloatAdd)(fmt)
        self.a = Signal(fmt.width, name="a_in")
        self.b = Signal(fmt.width, name="b_in")
        self.free = [self.a, self.b]

    def elaborate(self, platform):
        import numpy as np

        from ..numerics.floatops import fadd, fmul
        m = Module()
        fmt = self.fmt
        m.submodules.unit = u = self.unit
        m.d.comb += [u.a.eq(self.a), u.b.eq(self.b)]
        n = 1 << fmt.width
        a, b = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        table = (fmul if self.op == "mul" else fadd)(a.ravel(), b.ravel(), fmt)
        ref = Signal(fmt.width, name="ref")
        with m.Switch(Cat(self.b, self.a)):
            for code, v in enumerate(table):
                with m.Case(code):
                    m.d.comb += ref.eq(int(v))
        m.d.comb += [Assert(u.o == ref),
                     Cover((u.o != self.a) & (u.o != self.b) & (u.o != 0))]
        return m


def tiny_network():
    """A 2-2-2 binary network (the smallest a host link carries): the parser's properties
    do not depend on the network, whose logic only slows the solver down."""
    import numpy as np

    from ..training.float_model import FloatMLP
    from ..training.quantize import quantize_mlp
    rng = np.random.default_rng(0)
    model = FloatMLP([rng.normal(0, 1, (2, 2)), rng.normal(0, 1, (2, 2))],
                     [np.zeros(2), np.zeros(2)], calibration=np.abs(rng.normal(0, 1, (8, 2))))
    return quantize_mlp(model, ["binary", "binary"], name="tiny", input_bits=2, act_bits=2)


def _assigned_signals(fragment) -> dict:
    """The signals a fragment's own statements assign, by name."""
    out = {}
    for stmts in fragment.statements.values():
        for stmt in stmts:
            for sig in stmt._lhs_signals():
                out[sig.name] = sig
    return out


class HostLinkHarness(Elaboratable):
    """The frame parser of :class:`~rtl_gen.hw.hostlink.HostLinkCore` leaves every receiving
    state (a frame in progress, or stray bytes) within ``timeout_cycles + 1`` cycles of the
    last byte the UART received, whatever bytes came before (k-induction; ``rx`` is free).

    The parser's state and idle counter are read from the elaborated core.  Asserted:
    cycles since the last byte (counted here, saturating) equal the idle counter up to the
    timeout; beyond it the parser is in none of ``GARBAGE``, ``CMD``, ``LEN0``, ``LEN1``,
    ``PAYLOAD``, ``CRC``.  Covered: a byte received and a frame begun.
    """

    RECEIVING = ("GARBAGE", "CMD", "LEN0", "LEN1", "PAYLOAD", "CRC")

    def __init__(self, net=None, *, divisor: int = 4, timeout_cycles: int = 48):
        from amaranth.hdl import Fragment

        from ..hw.hostlink import HostLinkCore
        from ..hw.uart import UartRx
        self.core = HostLinkCore.for_divisor(net or tiny_network(), divisor=divisor,
                                             timeout_cycles=timeout_cycles)
        self.timeout = timeout_cycles
        self.fragment = Fragment.get(self.core, None)
        own = _assigned_signals(self.fragment)
        self.state, self.idle = own["rx_fsm_state"], own["idle"]
        urx = [sub for sub, _, _ in self.fragment.subfragments
               if any(isinstance(o, UartRx) for o in (sub.origins or ()))]
        self.got = next(o for o in urx[0].origins if isinstance(o, UartRx)).valid
        names = {}
        for code in range(1 << len(self.state)):
            try:
                names[self.state.decoder(code).split("/")[0]] = code
            except KeyError:
                break
        self.codes = names
        self.rx = Signal(name="rx_in", init=1)
        self.free = [self.rx]

    def elaborate(self, platform):
        m = Module()
        t = self.timeout
        m.submodules.core = self.fragment
        m.d.comb += self.core.rx.eq(self.rx)
        # cycles since the last byte, saturating (the idle counter starts at 0 too)
        quiet = Signal(range(t + 3))
        with m.If(self.got):
            m.d.sync += quiet.eq(0)
        with m.Elif(quiet != t + 2):
            m.d.sync += quiet.eq(quiet + 1)
        receiving = Const(0, 1)
        for name in self.RECEIVING:
            receiving = receiving | (self.state == self.codes[name])
        m.d.comb += [
            Assert(quiet <= t + 2),
            Assert(self.idle == Mux(quiet > t, t, quiet)),
            Assert(~(quiet > t) | ~receiving),
            Cover(receiving & (self.state == self.codes["CMD"])),
        ]
        return m


def tiny_tr_layer():
    """A 4-input, 2-output term-revealing layer (4-bit sign-magnitude weights, groups of 2,
    budget 2, one data term): two groups, so the slot counter wraps into the next group."""
    import dataclasses

    import numpy as np

    from ..design.network import TRConfig
    from ..training.float_model import FloatMLP
    from ..training.quantize import quantize_mlp
    rng = np.random.default_rng(0)
    model = FloatMLP([rng.normal(0, 1, (2, 4))], [np.zeros(2)],
                     calibration=np.abs(rng.normal(0, 1, (8, 4))))
    net = quantize_mlp(model, ["signmag4"], name="tiny", input_bits=3, act_bits=3)
    return dataclasses.replace(net.layers[0], tr=TRConfig(2, 2, 1))


class TRBudgetHarness(Elaboratable):
    """The run-time budget of a :class:`~rtl_gen.hw.tr_layer.TRLayerEngine`: the slots per
    group it issues (``min(k, T)``, 1 for ``k = 0``, ``T`` in conventional mode) stay in
    ``1..T`` and change only when a batch is taken, whatever the ``tr_mode``/``tr_k``/``tr_s``
    registers do meanwhile; the slot counter stays below the latched slots and the group
    counter below the groups per tile.  Every input of the engine is free (activations,
    handshakes, controls); its counters are read from the elaborated engine."""

    def __init__(self, layer=None):
        from amaranth.hdl import Fragment
        from amaranth.lib import wiring

        from ..hw.layer import ArrayConfig
        from ..hw.tr import term_rom_words
        from ..hw.tr_layer import TRLayerEngine
        layer = layer or tiny_tr_layer()
        array = ArrayConfig(cols=2)
        self.engine = TRLayerEngine(layer, array)
        timing = self.engine._plan.timing
        self.ks = timing.k_steps
        _, self.t_max, _ = term_rom_words(layer, timing.cols)
        self.fragment = Fragment.get(self.engine, None)
        own = _assigned_signals(self.fragment)
        # the engine latches a group's slots - 1 (``last_slot``): slots is one more
        self.slot, self.last_slot, self.grp = own["slot"], own["last_slot"], own["grp"]
        self.issue, self.batch_started = own["issue"], own["batch_started"]
        self.inputs = []
        for _, member, value in self.engine.signature.flatten(self.engine):
            if member.flow == wiring.In:
                v = Value.cast(value)
                self.inputs.append((v, Signal(v.shape(), name=f"in_{v.name}")))
        self.free = [s for _, s in self.inputs]

    def elaborate(self, platform):
        m = Module()
        m.submodules.engine = self.fragment
        m.d.comb += [port.eq(free) for port, free in self.inputs]
        slot = self.slot
        slots = Signal(len(self.last_slot) + 1, name="slots")
        m.d.comb += slots.eq(self.last_slot + 1)
        past_slots = Signal.like(slots, name="past_slots")
        past_valid = Signal()
        past_started = Signal()
        m.d.sync += [past_slots.eq(slots), past_valid.eq(1),
                     past_started.eq(self.batch_started)]
        m.d.comb += [
            Assert((slots >= 1) & (slots <= self.t_max)),
            Assert(slot < slots),
            Assert(self.grp < self.ks),
            Assert(~past_valid | past_started | (slots == past_slots)),
            Cover(self.issue & (slots == 1) & (self.grp == self.ks - 1)),
            Cover(self.issue & (slots == self.t_max) & (slot == slots - 1)
                  & (self.grp == self.ks - 1)),
        ]
        return m
