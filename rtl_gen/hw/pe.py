"""Processing elements and lane-parallel dot-product units, one strategy per weight scheme.

Every unit has the same interface: a stream of input vectors (``L`` activations, and ``L``
weight codes unless the weights are baked in as constants) framed by ``first``/``last``
flags, and a stream of finished accumulators.  What differs is how one lane's product is
made, which is where each paper's idea becomes hardware:

=========  ===============================================================================
kind       one lane's ``x * w``
=========  ===============================================================================
binary     sign select: ``w`` code 1 means ``-x``, 0 means ``+x``
ternary    add / subtract / skip: code 01 is ``+x``, 11 is ``-x``, 00 is 0
pot        one shift and a conditional negation: ``±(x << (F + 1 - c))``, 0 for ``c = 0``
apot       one shift per APoT base set, summed, then a conditional negation
int        a real multiplier: shift-and-add rows in LUTs (``multiplier="lut"``), or the
           ``*`` operator that Yosys maps to the device's DSP (``multiplier="dsp"``)
xnor       binary weights times binary (±1) activations: XNOR and popcount,
           ``sum = L - 2 * popcount(x XOR w)``
bitplane   EBS binary decomposition: one AND + popcount over the lanes per bit-plane pair,
           ``w_prec * x_prec`` cycles per vector with both precisions run-time inputs
=========  ===============================================================================

Datapath of the single-cycle kinds (``pipeline = p`` extra register stages)::

    i.payload ──► [input regs] ──► L lane products ──► adder tree ──► acc += sum ──► o
                                   └──── p registers: after the products, ─┘
                                         then spread over the tree levels

    latency = 1 + p clock edges from the edge that accepts an input with ``last`` to the
    edge after which ``o.valid`` is high; one vector per cycle; ``i.ready`` is always 1.

The bit-plane unit accepts a vector, then walks its ``M * K`` plane pairs, one per cycle,
``i.ready`` low meanwhile (high again in the final step, so vectors stream back to back):
its latency is ``M * K + p`` edges.

The numerics (:mod:`rtl_gen.numerics`) define every value: the hardware asks the scheme for
its code table and the accumulator rule for its width, and never re-derives them.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence

import numpy as np
from amaranth import Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..design.golden import framed_sums
from ..devices import Device
from ..numerics.bitplane import bitplane_dot
from ..numerics.fixedpoint import acc_bits
from ..numerics.schemes import WeightScheme
from .popcount import popcount

__all__ = [
    "MULTIPLIERS",
    "PE_KINDS",
    "DotProductUnit",
    "PEConfig",
    "check_dsp_budget",
    "input_layout",
    "pack_inputs",
]

PE_KINDS = ("binary", "ternary", "pot", "apot", "int", "xnor", "bitplane")
MULTIPLIERS = ("lut", "dsp")
#: Largest lane count; a 1024-input popcount is already far larger than any layer needs.
MAX_LANES = 1024
#: Largest number of vectors one accumulation may span (the accumulator is sized for it).
MAX_DEPTH = 1 << 20


def _int(name, v, lo, hi) -> int:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, not {v!r}")
    if not lo <= int(v) <= hi:
        raise ValueError(f"{name} must be {lo}..{hi}, not {int(v)}")
    return int(v)


@dataclasses.dataclass(frozen=True)
class PEConfig:
    """Everything that defines one generated unit (frozen; variants by ``replace``).

    Parameters
    ----------
    kind:
        One of :data:`PE_KINDS`.
    w_bits:
        Weight code width: the scheme's width (binary and xnor 1, ternary 2, pot 2..6,
        apot 3..5, int 2..16), or the largest run-time weight precision of ``bitplane``.
    a_bits:
        Activation width (``xnor``: 1, a ±1 code, 1 meaning -1), or the largest run-time
        activation precision of ``bitplane``.
    a_signed:
        Activations are two's complement (the network input may be); after a ReLU they are
        unsigned.  Not used by ``xnor``.
    lanes:
        ``L``, products summed per cycle by the adder tree.
    depth:
        Most input vectors one accumulation spans; with ``lanes`` it sizes the accumulator
        by the no-overflow rule (:func:`rtl_gen.numerics.acc_bits`).
    weights:
        ``None``: the weight codes arrive with each input vector.  Otherwise ``lanes`` codes
        baked in as constants (the elaborator knows them from the bundle).
    multiplier:
        ``int`` only: ``"lut"`` builds shift-and-add rows in the fabric, never a DSP;
        ``"dsp"`` writes ``*`` for Yosys to map to ``SB_MAC16`` / ``MULT18X18D``.
    pipeline:
        Extra register stages: the first after the lane products, the others spread over
        the adder tree levels (Fmax traded for latency).

    Raises
    ------
    ValueError
        Quoting the bad value.
    """

    kind: str
    w_bits: int
    a_bits: int
    a_signed: bool = False
    lanes: int = 1
    depth: int = 1
    weights: tuple[int, ...] | None = None
    multiplier: str = "lut"
    pipeline: int = 0

    def __post_init__(self):
        if self.kind not in PE_KINDS:
            raise ValueError(f"unknown PE kind {self.kind!r}; expected one of "
                             f"{', '.join(PE_KINDS)}")
        _int("lanes", self.lanes, 1, MAX_LANES)
        _int("depth", self.depth, 1, MAX_DEPTH)
        _int("pipeline", self.pipeline, 0, 16)
        object.__setattr__(self, "a_signed", bool(self.a_signed))
        if self.kind == "xnor":
            _int("xnor weight width", self.w_bits, 1, 1)
            _int("xnor activation width", self.a_bits, 1, 1)
        elif self.kind == "bitplane":
            _int("bit-plane weight precision", self.w_bits, 1, 16)
            _int("bit-plane activation precision", self.a_bits, 1, 16)
        else:
            _int("activation width", self.a_bits, 1, 16)
            WeightScheme(self.kind, self.w_bits)  # validates the width for the kind
        if self.multiplier not in MULTIPLIERS:
            raise ValueError(f"multiplier must be one of {', '.join(MULTIPLIERS)}, not "
                             f"{self.multiplier!r}")
        if self.multiplier == "dsp" and self.kind != "int":
            raise ValueError(f"only int PEs use a multiplier; a {self.kind} PE cannot take "
                             "multiplier='dsp'")
        if self.weights is not None:
            if self.kind == "bitplane":
                raise ValueError("bit-plane weights are run-time operands; they cannot be baked")
            w = np.asarray(self.weights)
            if w.shape != (self.lanes,) or w.dtype.kind not in "iu":
                raise ValueError(f"baked weights must be {self.lanes} integer codes, not "
                                 f"{self.weights!r}")
            bad = self.scheme.invalid_codes(w)
            if bad.any():
                i = int(np.argmax(bad))
                raise ValueError(f"baked weight code {int(w[i])} at lane {i} is not a valid "
                                 f"{self.scheme.name} code")
            object.__setattr__(self, "weights", tuple(int(v) for v in w))

    @property
    def scheme(self) -> WeightScheme | None:
        """The weight scheme (``None`` for bit-plane units, whose weights are integers)."""
        if self.kind == "bitplane":
            return None
        return WeightScheme("binary" if self.kind == "xnor" else self.kind, self.w_bits)

    @property
    def x_max(self) -> int:
        """Largest activation magnitude."""
        if self.kind == "xnor":
            return 1
        return 1 << (self.a_bits - 1) if self.a_signed else (1 << self.a_bits) - 1

    @property
    def w_max(self) -> int:
        """Largest ``|w_int|``."""
        if self.kind == "bitplane":
            return 1 << (self.w_bits - 1)
        return self.scheme.w_int_max

    @property
    def acc_bits(self) -> int:
        """Accumulator width: :func:`rtl_gen.numerics.acc_bits` of ``lanes * depth``."""
        return acc_bits(self.lanes * self.depth, self.x_max, self.w_max)

    @property
    def activation_shape(self):
        return signed(self.a_bits) if self.a_signed and self.kind != "xnor" else \
            unsigned(self.a_bits)

    @property
    def dsp_count(self) -> int:
        """Hard multipliers the unit asks for (one per lane of a ``dsp`` int unit)."""
        return self.lanes if self.multiplier == "dsp" else 0

    @property
    def cycles_per_vector(self) -> int:
        """Cycles per input vector at full precision (``w_bits * a_bits`` for bit-plane)."""
        return self.w_bits * self.a_bits if self.kind == "bitplane" else 1

    @property
    def latency(self) -> int:
        """Clock edges from accepting a ``last`` vector to ``o.valid`` (at full precision for
        bit-plane units): ``cycles_per_vector + pipeline``."""
        return self.cycles_per_vector + self.pipeline

    @property
    def name(self) -> str:
        """A short, unique, Verilog-safe name for this configuration."""
        kind = self.kind if self.kind in ("binary", "ternary", "xnor") else \
            f"{self.kind}{self.w_bits}"
        parts = [kind, f"a{self.a_bits}{'s' if self.a_signed else 'u'}", f"l{self.lanes}",
                 f"d{self.depth}", f"p{self.pipeline}"]
        if self.kind == "int":
            parts.append(self.multiplier)
        if self.weights is not None:
            digest = hashlib.sha1(bytes(str(self.weights), "ascii")).hexdigest()[:8]
            parts.append(f"baked{digest}")
        return "_".join(parts)

    def reference(self, x, w=None, first=None, last=None, *, w_prec=None,
                  x_prec=None) -> np.ndarray:
        """The golden model of a unit of this configuration: the accumulators it emits.

        Arguments as for :func:`pack_inputs`; ``w_prec``/``x_prec`` are the bit-plane
        precisions, one for all vectors or one per vector (default, and ``0``, mean the
        maxima, as in the hardware's registers).  Each vector's sum comes from the numerics
        (``scheme.decode``, or :func:`rtl_gen.numerics.bitplane_dot`), framed by
        :func:`rtl_gen.design.golden.framed_sums`.
        """
        x = np.asarray(x, dtype=np.int64)
        if self.kind == "bitplane":
            w = np.asarray(w, dtype=np.int64)
            wp = _precisions(w_prec, self.w_bits, len(x))
            xp = _precisions(x_prec, self.a_bits, len(x))
            sums = np.array([
                bitplane_dot(xv, wv, x_bits=int(b), x_signed=self.a_signed, w_bits=int(a),
                             w_signed=True)
                for xv, wv, a, b in zip(x, w, wp, xp, strict=True)], dtype=np.int64)
        else:
            codes = np.broadcast_to(np.asarray(self.weights), x.shape) \
                if self.weights is not None else w
            xv = self.scheme.decode(x) if self.kind == "xnor" else x
            sums = (xv * self.scheme.decode(codes)).sum(axis=1)
        return framed_sums(sums, first, last)


def _precisions(prec, most: int, n: int) -> np.ndarray:
    """Per-vector bit-plane precisions; ``None`` or ``0`` mean ``most``."""
    p = np.broadcast_to(np.asarray(most if prec is None else prec, dtype=np.int64), (n,))
    return np.where(p == 0, most, p)


def check_dsp_budget(configs: Sequence[PEConfig], device: Device) -> int:
    """Total hard multipliers that ``configs`` ask for; raises if ``device`` has fewer.

    Raises
    ------
    ValueError
        Naming the device, how many DSPs the design needs and how many it has.
    """
    need = sum(c.dsp_count for c in configs)
    if need > device.dsp:
        raise ValueError(f"the design needs {need} {device.dsp_cell} but the {device.name} has "
                         f"{device.dsp}; use multiplier='lut' for some int PEs")
    return need


def input_layout(config: PEConfig) -> data.StructLayout:
    """Payload of the input stream: ``x`` lanes, ``w`` lanes (run-time weights), flags."""
    fields = {"x": data.ArrayLayout(config.activation_shape, config.lanes)}
    if config.weights is None:
        w_shape = signed(config.w_bits) if config.kind == "bitplane" else \
            unsigned(config.w_bits)
        fields["w"] = data.ArrayLayout(w_shape, config.lanes)
    fields["first"] = unsigned(1)
    fields["last"] = unsigned(1)
    return data.StructLayout(fields)


def pack_inputs(config: PEConfig, x, w=None, first=None, last=None) -> list[int]:
    """Input payload bit patterns for ``n`` vectors, packed with :func:`input_layout`.

    Parameters
    ----------
    x:
        ``(n, lanes)`` activations (integers in range; xnor: codes 0/1).
    w:
        ``(n, lanes)`` weight codes (bit-plane: signed integers), or ``None`` with baked
        weights.
    first, last:
        ``(n,)`` flags; default every vector is its own accumulation.

    Returns
    -------
    list of int
        One non-negative integer per vector, ready for ``i.payload``.
    """
    layout = input_layout(config)
    x = np.asarray(x, dtype=np.int64)
    n = x.shape[0]
    if x.shape != (n, config.lanes):
        raise ValueError(f"x must have shape (n, {config.lanes}), not {x.shape}")
    if (config.weights is None) != (w is not None):
        raise ValueError("give w exactly when the weights are not baked")
    ones = np.ones(n, dtype=np.int64)
    cols = {"x": x, "first": ones if first is None else np.asarray(first, dtype=np.int64),
            "last": ones if last is None else np.asarray(last, dtype=np.int64)}
    if w is not None:
        cols["w"] = np.asarray(w, dtype=np.int64)
    word = [0] * n
    for name, field in layout:
        v = cols[name]
        if isinstance(field.shape, data.ArrayLayout):
            ew = field.shape.elem_shape.width
            for lane in range(config.lanes):
                bits = v[:, lane] & ((1 << ew) - 1)
                off = field.offset + lane * ew
                word = [a | (int(b) << off) for a, b in zip(word, bits, strict=True)]
        else:
            word = [a | (int(b) << field.offset) for a, b in zip(word, v & 1, strict=True)]
    return word


# -- lane product strategies ----------------------------------------------------------------

def _negate_if(sign: Value, v: Value) -> Value:
    return Mux(sign, -v, v)


class _Term:
    """A signed lane product as ``value + carry``: ``-v`` is ``~v + 1``, so a conditional
    negation is an XOR with the sign and a carry-in of the sign, which the adder that sums
    the term absorbs for free (its carry chain's input) instead of a subtractor of its own.
    On the iCE40 this turns a ternary MAC from 86 logic cells at 45 MHz into 72 at 61."""

    def __init__(self, value: Value, carry: Value | None = None):
        self.value, self.carry = value, carry


def _xor_negate(sign: Value, v: Value) -> _Term:
    """``-v if sign else v`` as a :class:`_Term`: ``~v`` and a carry-in (``~v`` of a signed
    value fits its width; the adder that absorbs the carry is wider than ``v``)."""
    v = v if v.shape().signed else Cat(v, Const(0, 1)).as_signed()
    return _Term(v ^ sign.replicate(len(v)).as_signed(), sign)


def _product(config: PEConfig, x: Value, code: Value) -> _Term:
    """One lane's ``x * w_int(code)`` as a signed combinational :class:`_Term`."""
    kind = config.kind
    if kind == "binary":
        return _xor_negate(code[0], x)
    if kind == "ternary":
        # 01: +x, 11: -x, 00: 0 (10 never occurs in a valid bundle)
        return _xor_negate(code[1] & code[0], Mux(code[0], x, 0))
    b = config.w_bits
    if kind == "pot":
        f = config.scheme.pot_frac_bits
        c = code[:b - 1]
        # c = 1..F+1 means x << (F + 1 - c): a barrel shifter of F + 1 positions.
        shift = Mux(c == 0, 0, (f + 1 - c).as_unsigned()[:max(1, f.bit_length())])
        mag = Mux(c == 0, 0, x << shift)
        return _xor_negate(code[b - 1], mag)
    if kind == "apot":
        offset = b - 1
        terms = []
        for units in config.scheme.apot_fields:
            wdt = (len(units) - 1).bit_length()
            offset -= wdt
            field = code[offset:offset + wdt]
            term = 0
            for idx, unit in enumerate(units):
                if unit:
                    term = Mux(field == idx, x << (unit.bit_length() - 1), term)
            terms.append(term)
        return _xor_negate(code[b - 1], _sum_tree(terms))
    if kind == "int":
        w = code.as_signed()
        if config.multiplier == "dsp":
            return _Term(x * w)
        if b < 4:
            # Shift-and-add rows; the MSB row has weight -2**(b-1) (two's complement).
            rows = [Mux(code[j], x << j, 0) for j in range(b - 1)]
            rows.append(-Mux(code[b - 1], x << (b - 1), 0))
            return _Term(_sum_tree(rows))
        return _booth(x, code, b)
    raise AssertionError(kind)


def _booth(x: Value, code: Value, b: int) -> _Term:
    """``x * w`` for a ``b``-bit two's complement ``w`` by radix-4 Booth recoding: digit
    ``j`` of ``w`` (bits ``2j+1, 2j, 2j-1``) is one of -2..2, so ``ceil(b / 2)`` rows of
    ``0, x, 2x``, each negated by XOR; the negations' +1 corrections fill the free low bits
    of the next row, and the last one is a row of its own."""
    w = Cat(Const(0, 1), code, code[b - 1].replicate(b % 2))   # w[-1] = 0, even width
    x = x if x.shape().signed else Cat(x, Const(0, 1)).as_signed()
    rows, negs = [], []
    for j in range(len(w) // 2):
        lo, mid, hi = w[2 * j], w[2 * j + 1], w[2 * j + 2]
        one = mid ^ lo
        two = (hi ^ mid) & ~one
        mag = Mux(one, x, Mux(two, x << 1, 0))
        rows.append((mag ^ hi.replicate(len(mag)).as_signed(), 2 * j))
        negs.append(hi)
    values = []
    for j, (row, shift) in enumerate(rows):
        if j == 0:
            values.append(row)
        else:
            # the previous row's correction sits at bit shift - 2, below this row
            values.append(Cat(Const(0, shift - 2), negs[j - 1], Const(0, 1), row).as_signed())
    last = len(rows) - 1
    values.append(Cat(Const(0, 2 * last), negs[last]).as_unsigned())
    return _Term(_sum_tree(values))


def _sum_tree(values: list[Value]) -> Value:
    while len(values) > 1:
        values = [values[i] + values[i + 1] if i + 1 < len(values) else values[i]
                  for i in range(0, len(values), 2)]
    return values[0]


def _popcount(m: Module, bits: list[Value]) -> Value:
    # the stitched compressor tree from TREE_MIN_BITS bits up, Yosys's own sum below
    # (benchmarks/popcount.py measures both)
    return popcount(m, [b.as_unsigned() for b in bits])


# -- the unit ---------------------------------------------------------------------------------

class DotProductUnit(wiring.Component):
    """``L`` lanes of one PE kind, summed and accumulated; see the module docstring.

    Parameters
    ----------
    config:
        The :class:`PEConfig`.

    Members
    -------
    i : In(stream.Signature(input_layout(config)))
        Input vectors; ``first`` restarts the accumulator, ``last`` emits it.
    o : Out(stream.Signature(signed(config.acc_bits), always_ready=True))
        One transfer per ``last`` vector: the finished accumulator.
    w_prec, x_prec : In(range(1, max + 1))
        Bit-plane units only: weight and activation precisions, sampled when a vector is
        accepted (0 or more than the maximum count as the maximum).
    """

    def __init__(self, config: PEConfig):
        if not isinstance(config, PEConfig):
            raise TypeError(f"config must be a PEConfig, not {config!r}")
        self._config = config
        members = {
            "i": In(stream.Signature(input_layout(config))),
            "o": Out(stream.Signature(signed(config.acc_bits), always_ready=True)),
        }
        if config.kind == "bitplane":
            members["w_prec"] = In(range(1, config.w_bits + 1))
            members["x_prec"] = In(range(1, config.a_bits + 1))
        super().__init__(members)

    @property
    def config(self) -> PEConfig:
        return self._config

    @property
    def latency(self) -> int:
        """Clock edges from the edge that accepts a ``last`` vector to the edge after which
        ``o.valid`` is high: ``1 + pipeline``, or for bit-plane units at full precision
        ``w_bits * a_bits + pipeline`` (see :meth:`latency_at`)."""
        return self._config.latency

    def latency_at(self, w_prec: int, x_prec: int) -> int:
        """Bit-plane latency at run-time precisions ``w_prec`` and ``x_prec``."""
        return w_prec * x_prec + self._config.pipeline

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        if cfg.kind == "bitplane":
            total, ctrl = self._bitplane_front(m)
            for _ in range(cfg.pipeline):
                [total], ctrl = _register(m, [total], ctrl)
            term = _Term(total)
        else:
            term, ctrl = self._lanes_front(m)
        valid, first, last = ctrl
        acc = Signal(signed(cfg.acc_bits), reset_less=True)
        base = Mux(first, 0, acc) + term.value
        with m.If(valid):
            m.d.sync += acc.eq(base if term.carry is None else base + term.carry)
        m.d.sync += self.o.valid.eq(valid & last)
        m.d.comb += self.o.payload.eq(acc)
        return m

    def _lanes_front(self, m: Module):
        """Registered inputs, lane products and a pipelined adder tree."""
        cfg = self._config
        xr = Signal(data.ArrayLayout(cfg.activation_shape, cfg.lanes), reset_less=True)
        valid, first, last = Signal(), Signal(), Signal()
        m.d.comb += self.i.ready.eq(1)
        m.d.sync += [valid.eq(self.i.valid), first.eq(self.i.payload.first),
                     last.eq(self.i.payload.last), xr.eq(self.i.payload.x)]
        if cfg.weights is None:
            wr = Signal(data.ArrayLayout(unsigned(cfg.w_bits), cfg.lanes), reset_less=True)
            m.d.sync += wr.eq(self.i.payload.w)
            codes = [wr[lane] for lane in range(cfg.lanes)]
        else:
            codes = [Const(c, cfg.w_bits) for c in cfg.weights]
        ctrl = (valid, first, last)
        xs = [xr[lane] for lane in range(cfg.lanes)]
        if cfg.kind == "xnor":
            # sum of ±1 products = L - 2 * popcount(x XOR w) (code 1 means -1)
            diff = [x ^ c for x, c in zip(xs, codes, strict=True)]
            values = [_popcount(m, diff)]
            if cfg.pipeline:
                values, ctrl = _register(m, values, ctrl)
            total = cfg.lanes - (values[0] << 1)
            for _ in range(cfg.pipeline - 1):
                [total], ctrl = _register(m, [total], ctrl)
            return _Term(total), ctrl
        terms = [_product(cfg, x, c) for x, c in zip(xs, codes, strict=True)]
        values = [t.value for t in terms]
        # the negations' carry-ins: each adder of the tree, and the accumulator's, takes one
        carries = [t.carry for t in terms if t.carry is not None]

        def stage(values, carries, ctrl):
            out, ctrl = _register(m, values + carries, ctrl)
            return out[:len(values)], out[len(values):], ctrl

        spare = cfg.pipeline
        if spare:
            values, carries, ctrl = stage(values, carries, ctrl)
            spare -= 1
        levels = max(1, (cfg.lanes - 1).bit_length())
        # register after these tree levels (1-based), spread evenly; the rest go at the end
        after = {round((j + 1) * levels / (spare + 1)) for j in range(min(spare, levels))}
        level = 0
        while len(values) > 1:
            summed = []
            for i in range(0, len(values), 2):
                if i + 1 < len(values):
                    v = values[i] + values[i + 1]
                    summed.append(v + carries.pop() if carries else v)
                else:
                    summed.append(values[i])
            values = summed
            level += 1
            if level in after:
                values, carries, ctrl = stage(values, carries, ctrl)
                spare -= 1
        for _ in range(spare):
            values, carries, ctrl = stage(values, carries, ctrl)
        return _Term(values[0], _sum_tree(carries) if carries else None), ctrl

    def _bitplane_front(self, m: Module):
        """Sequencer over the ``M * K`` plane pairs; AND + popcount + shift each step."""
        cfg = self._config
        lanes = cfg.lanes
        xr = Signal(data.ArrayLayout(cfg.activation_shape, lanes), reset_less=True)
        wr = Signal(data.ArrayLayout(signed(cfg.w_bits), lanes), reset_less=True)
        busy = Signal()
        first_r, last_r = Signal(), Signal()
        mi = Signal(range(cfg.w_bits), reset_less=True)
        ki = Signal(range(cfg.a_bits), reset_less=True)
        m_top = Signal(range(cfg.w_bits), reset_less=True)   # M - 1
        k_top = Signal(range(cfg.a_bits), reset_less=True)   # K - 1

        def top(prec, most):
            return Mux((prec == 0) | (prec > most), most - 1, prec - 1)

        final = Signal()
        m.d.comb += [final.eq(busy & (mi == m_top) & (ki == k_top)),
                     self.i.ready.eq(~busy | final)]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [xr.eq(self.i.payload.x), wr.eq(self.i.payload.w),
                         first_r.eq(self.i.payload.first), last_r.eq(self.i.payload.last),
                         mi.eq(0), ki.eq(0), busy.eq(1),
                         m_top.eq(top(self.w_prec, cfg.w_bits)),
                         k_top.eq(top(self.x_prec, cfg.a_bits))]
        with m.Elif(final):
            m.d.sync += busy.eq(0)
        with m.Elif(busy):
            with m.If(ki == k_top):
                m.d.sync += [ki.eq(0), mi.eq(mi + 1)]
            with m.Else():
                m.d.sync += ki.eq(ki + 1)
        ands = [wr[lane].bit_select(mi, 1) & xr[lane].bit_select(ki, 1)
                for lane in range(lanes)]
        count = _popcount(m, ands)
        neg = (mi == m_top) ^ ((ki == k_top) if cfg.a_signed else 0)
        term = _negate_if(neg, count << (mi + ki))
        first = first_r & (mi == 0) & (ki == 0)
        return term, (busy, first, final & last_r)


def _register(m: Module, values: list[Value], ctrl: tuple[Value, Value, Value]):
    """One pipeline stage: datapath registers (reset-less) and the control flags."""
    out = []
    for v in values:
        r = Signal(v.shape(), reset_less=True)
        m.d.sync += r.eq(v)
        out.append(r)
    valid, first, last = ctrl
    nv, nf, nl = Signal(), Signal(reset_less=True), Signal(reset_less=True)
    m.d.sync += [nv.eq(valid), nf.eq(first), nl.eq(last)]
    return out, (nv, nf, nl)
