"""Float layers on the exact accumulation contract: one aligner, fixed-point lanes, one
normaliser (NUMERICS.md section 5, :mod:`rtl_gen.numerics.exact`).

On this contract the sum of a layer output is an exact integer in the window's units, so a
lane needs no floating-point adder: every activation goes to every lane, and a lane only adds
it, subtracts it or skips it, as the integer ternary PE does::

    i (fp32 bits) ──► input buffer ──► x_k, one a cycle, registered
                                          │
                         ExactAligner (shared): sign, |x| in the window, big, nan
                         (the significand shifted by the exponent field, a constant slice)
                                          │ registered, then +|x| and -|x| registered once
    weight ROM ──► C codes a cycle ──►    ▼   (the codes travel alongside)
     lane c:  acc <= (first ? 0 : acc) + (skip ? 0 : neg ? -|x| : +|x|)    (acc_bits, exact)
              pinf/ninf <= flags (a term beyond the window, a NaN)
                                          │ after the tile's last step: the C sums shift out
     tail, one result a cycle:  + T(bias/alpha) (integer, from a ROM) ──► ExactNormaliser
              (shared, four registers; exponent offset lsb + a_j from the same ROM)
              ──► ReLU ──► output FIFO

Binary lanes add or subtract (weight code 1 means -1), ternary lanes add, subtract or skip
(codes 00, 01, 11).  Float (fp32) and minifloat weights differ per lane, so there each lane
has its own :class:`ProductAligner` instead of the shared one: the ``24 x (M+1)``-bit
significand product shifted into the window by the two exponent fields (a zero weight skips);
the rest of the layer is the same.

The engine kit, the sequencer, the credit FIFO and the drain are those of
:class:`~rtl_gen.hw.float_layer.FloatLayerEngine`; the cycle model is :func:`exact_layer_timing`
(three registers from the memories to the sums in binary and ternary layers, six in float
and minifloat ones, seven in the tail: the read register, the bias sum, the normaliser's four
and the result).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from amaranth import Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..design.float_network import FloatLayer, alpha_exponents, bias_terms
from ..design.timing import LayerTiming
from ..numerics.exact import ExactWindow
from ..numerics.floatops import BINARY32, FloatFormat
from .kit import (
    COUNTER_BITS,
    Engine,
    batch_counter,
    column_words,
    credit_fifo,
    delayed,
    drain_sequencer,
    input_banks,
    tile_results,
    tile_sequencer,
)
from .layer import fifo_depth

__all__ = [
    "EXACT_SPACES",
    "EXP_BITS",
    "ExactAligner",
    "ExactLayerEngine",
    "ExactLayerPlan",
    "ExactNormaliser",
    "ProductAligner",
    "exact_layer_timing",
    "plan_exact_layer",
]

#: Weight spaces whose lanes add, subtract or skip.
EXACT_SPACES = ("binary", "ternary")

#: Bits of the normaliser's signed exponent offset ``lsb + a_j``.
EXP_BITS = 11

F32 = 32


def _clz_tree(v):
    """``(zero, count)`` of ``v`` (width a power of two): all bits clear, and the leading
    zeros of a nonzero ``v``; a tree of halves, ``log2(len(v))`` levels of 2:1 multiplexers."""
    if len(v) == 1:
        return ~v[0], Const(0, 0)
    half = len(v) // 2
    zh, ch = _clz_tree(v[half:])
    zl, cl = _clz_tree(v[:half])
    return zh & zl, Cat(Mux(zh, cl, ch), zh)


def _clz(m: Module, v, name: str) -> Signal:
    """Leading zeros of a nonzero ``v`` (don't care for zero)."""
    n = len(v)
    size = 1 << max(n - 1, 0).bit_length()
    _, count = _clz_tree(Cat(Const(0, size - n), v))  # zeros below: the count is unchanged
    lz = Signal(range(size), name=name)
    m.d.comb += lz.eq(count)
    return lz


class ExactAligner(wiring.Component):
    """An fp32 activation into the window (:func:`rtl_gen.numerics.exact.align_fp32`),
    combinational.

    Members
    -------
    x : In(32)
        fp32 bits.
    sign : Out(1)
    mag : Out(width)
        ``|x|`` truncated to the window, in units of ``2**lsb`` (0 when ``big`` or ``nan``).
    big : Out(1)
        ``|x| >= 2**(msb + 1)`` or infinite.
    nan : Out(1)
    """

    def __init__(self, window: ExactWindow):
        self.window = window
        super().__init__({"x": In(F32), "sign": Out(1), "mag": Out(window.width),
                          "big": Out(1), "nan": Out(1)})

    def elaborate(self, platform):
        m = Module()
        w = self.window
        width = w.width
        e, man = self.x[23:31], self.x[:23]
        sig = Cat(man, e != 0)
        top = e == 0xFF
        nan = top & (man != 0)
        # Bit i of sig << max(e, 1) is worth 2**(i - 150): window bit j (worth 2**(lsb + j))
        # is bit lsb + 150 + j.  A shift by the exponent field alone, the window a constant
        # slice of it; everything below the window falls off (truncation).
        base = w.lsb + 150
        pad = max(0, -base)  # windows reaching below 2**-150: zeros under the significand
        shifted = Signal(max(24 + pad + 255, base + pad + width + 1))
        m.d.comb += shifted.eq(Cat(Const(0, pad), sig) << Mux(e == 0, 1, e))
        window_bits = shifted[base + pad:base + pad + width]
        # Overflow: a normal's leading bit 2**(e - 127) above 2**msb is a comparison of the
        # exponent field; subnormals (below 2**-126) overflow only windows below that.
        over = (e != 0) & (e > w.msb + 127) if w.msb + 127 < 0xFF else Const(0, 1)
        if w.msb < -127:
            over = over | ((e == 0) & (shifted[base + pad + width:] != 0))
        big = top | over
        m.d.comb += [
            self.sign.eq(self.x[31]),
            self.big.eq(big & ~nan),
            self.nan.eq(nan),
            self.mag.eq(Mux(big, 0, window_bits)),
        ]
        return m


class ProductAligner(wiring.Component):
    """An fp32 activation times a float or minifloat weight, exactly, into the window
    (:func:`rtl_gen.numerics.exact.product_terms`): one lane's multiplier and shifter.

    The significand product ``P`` (``24 x (M+1)`` bits) is shifted by the sum of the two
    exponent fields and the window is a constant slice, as in :class:`ExactAligner`; a
    shift that puts ``P``'s bit 0 above the window is an overflow of any nonzero ``P``.
    ``P`` is the sum of partial products of at most 17 x 17 bits (one hard multiplier
    each).  Combinational (``LATENCY`` 0), or with ``pipelined`` five registers
    (``LATENCY`` 5): the operands, their fields, the partial products, ``P``, the shifted
    window and the bits above it ORed by fours; the overflow and the zeroing follow the
    last.

    Members
    -------
    x : In(32)
        fp32 bits.
    w : In(width of the weight format)
        Weight code (finite).
    sign, mag, big, nan : Out
        As :class:`ExactAligner`; a zero weight gives ``mag = big = nan = 0``.
    """

    #: Bits of the low part of a split significand (a hard multiplier takes 18 x 18 signed).
    SPLIT = 17

    def __init__(self, window: ExactWindow, w_fmt: FloatFormat, *, pipelined: bool = False):
        self.window, self.w_fmt = window, w_fmt
        self.pipelined = pipelined
        self.LATENCY = 5 if pipelined else 0
        super().__init__({"x": In(F32), "w": In(w_fmt.width), "sign": Out(1),
                          "mag": Out(window.width), "big": Out(1), "nan": Out(1)})

    def elaborate(self, platform):
        m = Module()
        win, f = self.window, self.w_fmt
        width = win.width

        def stage(values, name):
            """``values`` through one pipeline register each (as they are when
            combinational)."""
            if not self.pipelined:
                return values
            out = []
            for i, v in enumerate(values):
                v = Value.cast(v)
                r = Signal(v.shape(), name=f"{name}{i}", reset_less=True)
                m.d.sync += r.eq(v)
                out.append(r)
            return out

        # Bit i of P << (max(ex, 1) + max(ew, 1)) is worth 2**(i - 150 - bias_w - M_w):
        # window bit j is bit lsb + 150 + bias_w + M_w + j.
        base = win.lsb + 150 + f.bias + f.man_bits
        pad = max(0, -base)
        hi = base + pad + width  # the first bit above the window
        # 0: the operands (the memories' slow outputs go straight into registers)
        x, w = stage([self.x, self.w], "in")
        ex, manx = x[23:31], x[:23]
        ew, manw = w[f.man_bits:f.width - 1], w[:f.man_bits]
        # 1: their fields (a subnormal's exponent is that of the smallest normal)
        sigx, sigw, ex, ew, sign = stage(
            [Cat(manx, ex != 0), Cat(manw, ew != 0), Mux(ex == 0, 1, ex), Mux(ew == 0, 1, ew),
             x[31] ^ w[f.width - 1]], "op")
        top, nanx = ex == 0xFF, sigx[:23] != 0
        total = ex + ew
        amount = Signal(range(max(hi + 2, 2)))
        m.d.comb += amount.eq(Mux(total > hi + 1, hi + 1, total))
        beyond = total > hi
        # 2: partial products of at most SPLIT x SPLIT bits
        k = self.SPLIT
        xs = [(sigx[:k], 0), (sigx[k:], k)]
        ws = [(sigw[:k], 0), (sigw[k:], k)] if len(sigw) > k else [(sigw, 0)]
        parts = stage([a * b for a, _ in xs for b, _ in ws], "part")
        nz = sigw != 0
        shifts = [sa + sb for _, sa in xs for _, sb in ws]
        amount, beyond, top, nanx, sign, nz = stage([amount, beyond, top, nanx, sign, nz],
                                                    "part_f")
        # 3: the product
        prod = Signal(24 + f.man_bits + 1)
        m.d.comb += prod.eq(sum(p << s for p, s in zip(parts, shifts, strict=True)))
        prod, amount, beyond, top, nanx, sign, nz, xz = stage(
            [prod, amount, beyond, top, nanx, sign, nz, sigx == 0], "prod")
        # 4: the shift, the window a constant slice, the bits above it ORed by fours
        shifted = Signal(hi + 1 + len(prod))
        m.d.comb += shifted.eq(Cat(Const(0, pad), prod) << amount)
        upper = shifted[hi:]
        groups = Cat(*(upper[i:i + 4].any() for i in range(0, len(upper), 4)))
        window_bits, groups, beyond, top, nanx, sign, nz, xz = stage(
            [shifted[base + pad:hi], groups, beyond, top, nanx, sign, nz, xz], "shift")
        # a nonzero product (x not zero, given a nonzero weight) beyond the window
        over = (groups != 0) | (beyond & ~xz)
        nan = top & nanx & nz
        big = nz & (top | over)
        m.d.comb += [
            self.sign.eq(sign),
            self.big.eq(big & ~nan),
            self.nan.eq(nan),
            self.mag.eq(Mux(big | ~nz, 0, window_bits)),
        ]
        return m


class ExactNormaliser(wiring.Component):
    """``n * 2**exp`` rounded once to fp32 with the flags
    (:func:`rtl_gen.numerics.exact.round_fixed`).

    Five steps: the magnitude of ``n``; its leading zeros; the normalising shift, the
    result's biased exponent and the subnormals' extra shift; that shift with the guard and
    sticky bits; rounding and packing.  With ``pipelined`` a register follows each of the
    first four (``LATENCY`` 4, one result a cycle), else the unit is combinational
    (``LATENCY`` 0).

    With ``exp_range = (lo, hi)``, the exponents ``exp`` will take (an engine knows them:
    they come from its constant tail ROM), the unit leaves out what they cannot need: the
    subnormals' shift when ``lo + 127 >= 1`` (every nonzero result is normal), the overflow
    to infinity when ``hi + acc_bits + 126 <= 253`` (no result, rounded, reaches it); and
    rounding is trivially exact when ``acc_bits <= 24``.  Other exponents are then outside
    the unit's contract.

    Members
    -------
    n : In(signed(acc_bits))
        The exact sum, two's complement.
    exp : In(signed(exp_bits))
        The exponent of ``n``'s unit (``lsb + a_j``).
    pinf, ninf : In(1)
        The overflow flags.
    o : Out(32)
        fp32 bits.
    """

    def __init__(self, acc_bits: int, exp_bits: int = EXP_BITS, *, pipelined: bool = False,
                 exp_range: tuple[int, int] | None = None):
        self.acc_bits, self.exp_bits = acc_bits, exp_bits
        self.pipelined = pipelined
        if exp_range is not None:
            lo, hi = exp_range
            if not -(1 << (exp_bits - 1)) <= lo <= hi < (1 << (exp_bits - 1)):
                self._MustUse__silence = True  # a refused unit is not an unused one
                raise ValueError(f"exp_range {exp_range} does not fit {exp_bits} signed bits")
        self.exp_range = exp_range
        self.LATENCY = 4 if pipelined else 0
        super().__init__({"n": In(signed(acc_bits)), "exp": In(signed(exp_bits)),
                          "pinf": In(1), "ninf": In(1), "o": Out(F32)})

    def elaborate(self, platform):
        m = Module()
        stage = m.d.sync if self.pipelined else m.d.comb
        nb, eb = self.acc_bits, self.exp_bits

        def carry(*values, name):
            """``values`` (sign, exponent, flags ...) into the next step."""
            nonlocal stage
            out = []
            for i, v in enumerate(values):
                r = Signal.like(v, name=f"{name}{i}", reset_less=True)
                stage += r.eq(v)
                out.append(r)
            return out

        # 1: the magnitude
        mag = Signal(nb, reset_less=True)
        stage += mag.eq(Mux(self.n[nb - 1], -self.n, self.n))
        neg, exp, pinf, ninf = carry(self.n[nb - 1], self.exp, self.pinf, self.ninf, name="s1_")
        # 2: leading zeros
        lz = _clz(m, mag, "lz")
        lz2 = Signal.like(lz, reset_less=True)
        mag2 = Signal.like(mag, reset_less=True)
        stage += [lz2.eq(lz), mag2.eq(mag)]
        zero = Signal(reset_less=True)
        stage += zero.eq(mag == 0)
        neg, exp, pinf, ninf = carry(neg, exp, pinf, ninf, name="s2_")
        # 3: the normalising shift, the leading bit's biased exponent, the subnormals' extra
        # right shift (26 clears everything)
        pad = max(26 - nb, 0)  # at least 26 bits below the leading one's top position
        nn = nb + pad
        norm = Signal(nn, reset_less=True)
        be = Signal(signed(max(eb, 10) + 2))  # exp + up to 63 + 127
        m.d.comb += be.eq(exp + (nb - 1 + 127) - lz2)
        lo, hi = self.exp_range or (None, None)
        subnormals = lo is None or lo + 127 < 1
        overflow = hi is None or hi + nb + 126 > 253
        field = Signal(8, reset_less=True)  # the exponent field before rounding
        over = Signal(reset_less=True)
        stage += [norm.eq(Cat(Const(0, pad), mag2) << lz2),
                  field.eq(Mux(be >= 1, be - 1, 0) if subnormals else be - 1),
                  over.eq(be > 254 if overflow else 0)]
        if subnormals:
            r = Signal(range(27), reset_less=True)
            stage += r.eq(Mux(be >= 1, 0, Mux(be < -24, 26, 1 - be)))
        neg, zero, pinf, ninf = carry(neg, zero, pinf, ninf, name="s3_")
        # 4: the extra shift, guard and sticky
        wide = Signal(nn + 26)
        m.d.comb += wide.eq(Cat(Const(0, 26), norm) >> r if subnormals
                            else Cat(Const(0, 26), norm))
        sig = Signal(24, reset_less=True)
        guard = Signal(reset_less=True)
        sticky = Signal(reset_less=True)
        stage += [sig.eq(wide[nn + 2:nn + 26]), guard.eq(wide[nn + 1]),
                  sticky.eq(wide[:nn + 1] != 0)]
        neg, zero, pinf, ninf, field, over = carry(neg, zero, pinf, ninf, field, over,
                                                   name="s4_")
        # 5: rounding (a carry may reach the exponent, or infinity) and packing
        up = guard & (sticky | sig[0])
        code = Signal(32)
        m.d.comb += code.eq((field << 23) + sig + up)
        inf = over | (code[23:31] == 0xFF) if overflow else Const(0, 1)
        result = Mux(zero, 0, Cat(Mux(inf, 0x7F800000, code[:31]), neg))
        m.d.comb += self.o.eq(Mux(pinf & ninf, 0xFFC00000,
                                  Mux(pinf, 0x7F800000, Mux(ninf, 0xFF800000, result))))
        return m


# -- the layer engine ------------------------------------------------------------------------


#: Registers from the memories' answer to the lanes' sums: the activation, the aligned
#: magnitude, its two signs (binary and ternary layers).
ARRAY_LATENCY = 3

#: The same in float and minifloat layers: the product aligner's five (the operands, their
#: fields, the partial products, the product, the shifted window), the signed term.
PRODUCT_LATENCY = 6

#: Tail registers: the read register, the bias sum, the normaliser's four, the result.
TAIL_STAGES = 7


def exact_layer_timing(layer: FloatLayer, lanes: int) -> LayerTiming:
    """The cycle model of an exact layer on ``lanes`` lanes: one input a step,
    :data:`ARRAY_LATENCY` (binary, ternary) or :data:`PRODUCT_LATENCY` (float, minifloat)
    registers to the sums, :data:`TAIL_STAGES` in the tail."""
    latency = ARRAY_LATENCY if layer.space in EXACT_SPACES else PRODUCT_LATENCY
    return LayerTiming(k=layer.in_features, n=layer.out_features, rows=1, cols=lanes,
                       lanes=1, array_latency=latency, drain_stages=TAIL_STAGES,
                       drain_gap=0, pickup=0)


def _w_fmt(layer: FloatLayer) -> FloatFormat | None:
    """The weight format of a float (fp32) or minifloat layer, ``None`` for binary and
    ternary."""
    if layer.space in EXACT_SPACES:
        return None
    fmt = layer.weight_format
    return BINARY32 if fmt is None else FloatFormat(fmt.exp_bits, fmt.man_bits, fmt.bias)


@dataclasses.dataclass(frozen=True)
class ExactLayerPlan:
    """A validated float layer on the exact contract, on ``lanes`` lanes."""

    layer: FloatLayer
    lanes: int
    window: ExactWindow
    timing: LayerTiming
    w_bits: int
    acc_bits: int
    fifo_depth: int
    counters: bool = True

    @property
    def w_fmt(self) -> FloatFormat | None:
        """The weight format of a float or minifloat layer (its lanes' multipliers)."""
        return _w_fmt(self.layer)

    @property
    def exps(self) -> np.ndarray:
        """The exponent of every output's sum unit, ``lsb + a_j``."""
        return alpha_exponents(self.layer) + self.window.lsb

    @property
    def exp_range(self) -> tuple[int, int]:
        """The least and greatest of :attr:`exps` (the normaliser needs no more)."""
        return int(self.exps.min()), int(self.exps.max())

    @property
    def exp_bits(self) -> int:
        """Two's complement bits of the tail ROM's exponent field: enough for
        :attr:`exp_range` (at least 2)."""
        lo, hi = self.exp_range
        return max(2, max(hi.bit_length(), (-lo - 1).bit_length()) + 1)

    @property
    def tail_words(self) -> list[int]:
        """Per output: ``exp << (acc_bits + 2) | ninf << (acc_bits + 1) | pinf << acc_bits |
        T(bias/alpha)`` (two's complement), with ``exp = lsb + a_j`` in :attr:`exp_bits`."""
        neg, mag, pinf, ninf = bias_terms(self.layer, self.window)
        ab, eb = self.acc_bits, self.exp_bits
        words = []
        for j, e in enumerate(self.exps):
            v = -int(mag[j]) if neg[j] else int(mag[j])
            words.append((int(e) % (1 << eb)) << (ab + 2) | int(ninf[j]) << (ab + 1)
                         | int(pinf[j]) << ab | (v % (1 << ab)))
        return words


def plan_exact_layer(layer: FloatLayer, lanes: int, window: ExactWindow, *,
                     counters: bool = True) -> ExactLayerPlan:
    """Validate a float layer on the exact contract and plan its engine.

    Raises
    ------
    TypeError, ValueError
        For something other than a :class:`FloatLayer` or an :class:`ExactWindow`, lanes
        out of range, a scale that is not a power of two, or exponent offsets beyond
        :data:`EXP_BITS`.
    """
    from .float_layer import check_lanes

    if not isinstance(layer, FloatLayer):
        raise TypeError(f"layer must be a FloatLayer, not {layer!r}")
    if not isinstance(window, ExactWindow):
        raise TypeError(f"window must be an ExactWindow, not {window!r}")
    lanes = check_lanes(lanes)
    if not isinstance(counters, bool):
        raise TypeError(f"counters must be True or False, not {counters!r}")
    exps = alpha_exponents(layer) + window.lsb
    lim = 1 << (EXP_BITS - 1)
    if (exps < -lim).any() or (exps >= lim).any():
        raise ValueError(f"layer {layer.name!r}: exponent offsets lsb + log2(alpha) "
                         f"{int(exps.min())}..{int(exps.max())} exceed {EXP_BITS} bits")
    t = exact_layer_timing(layer, lanes)
    return ExactLayerPlan(layer=layer, lanes=lanes, window=window, timing=t,
                          w_bits=_w_fmt(layer).width if _w_fmt(layer) is not None
                          else {"binary": 1, "ternary": 2}[layer.space],
                          acc_bits=window.acc_bits(layer.in_features + 1),
                          fifo_depth=fifo_depth(t, slack=6, spare=0), counters=counters)


class ExactLayerEngine(Engine):
    """A :class:`FloatLayer` on the exact contract; see the module docstring.  Ports as
    :class:`~rtl_gen.hw.float_layer.FloatLayerEngine`."""

    plan = staticmethod(plan_exact_layer)

    @staticmethod
    def ports(plan: ExactLayerPlan) -> dict:
        return {"i": In(stream.Signature(F32)), "o": Out(stream.Signature(F32)),
                "cycles": Out(COUNTER_BITS)}

    @property
    def layer(self) -> FloatLayer:
        return self._plan.layer

    def weight_words(self) -> list[int]:
        """The weight ROM: word ``t*K + k`` holds the code of weight ``[t*C + c, k]`` at bits
        ``c*w_bits`` (code 0 for channels beyond ``N``: ternary skip, binary +x)."""
        plan = self._plan
        return column_words(plan.layer.codes.astype(np.int64), plan.timing, plan.w_bits)

    def elaborate(self, platform):
        m = Module()
        plan = self._plan
        layer, t = plan.layer, plan.timing
        K, N, C, nt, P = t.k, t.n, t.cols, t.tiles, t.period
        wb, ab = plan.w_bits, plan.acc_bits

        banks = input_banks(m, self.i, rows=1, lanes=1, a_bits=F32, ks=K, k=K, src_cols=K)
        m.submodules.rom = rom = Memory(shape=C * wb, depth=nt * K, init=self.weight_words())
        rom_rd = rom.read_port()
        out = credit_fifo(m, self.o, width=F32, depth=plan.fifo_depth, need=C)
        seq = tile_sequencer(m, banks.full, out.credit, tiles=nt, period=P, step_range=P,
                             chain=True, words=K)
        issue, first, last = seq.steps(m, K)
        banks.read(m, seq.cbank, seq.step)
        m.d.comb += rom_rd.addr.eq(seq.word)

        # memories answer a cycle later: (binary, ternary) the activation registered, the
        # shared aligner, its magnitude registered, then with both signs; or (float,
        # minifloat) each lane's pipelined product aligner on the memories' answer, then its
        # signed term
        v1, f1, l1 = delayed(m, issue, first, last, name="step_d")
        x_q = Signal(F32, reset_less=True)
        codes1 = Signal(C * wb, reset_less=True)
        m.d.sync += [x_q.eq(banks.data(0)), codes1.eq(rom_rd.data)]
        v2, f2, l2 = delayed(m, v1, f1, l1, stages=t.array_latency, name="align_d")
        terms = self._shared_terms(m, x_q, codes1) if layer.space in EXACT_SPACES \
            else self._product_terms(m, banks.data(0), rom_rd.data)

        sums = []
        for c, (term, tp, tn) in enumerate(terms):
            acc = Signal(signed(ab), name=f"acc{c}", reset_less=True)
            pf = Signal(name=f"pinf{c}", reset_less=True)
            nf = Signal(name=f"ninf{c}", reset_less=True)
            acc_n = Signal(signed(ab), name=f"acc_next{c}")
            pf_n = Signal(name=f"pinf_next{c}")
            nf_n = Signal(name=f"ninf_next{c}")
            m.d.comb += [
                acc_n.eq(Mux(f2, 0, acc) + term),
                pf_n.eq((pf & ~f2) | tp),
                nf_n.eq((nf & ~f2) | tn),
            ]
            with m.If(v2):
                m.d.sync += [acc.eq(acc_n), pf.eq(pf_n), nf.eq(nf_n)]
            sums.append(Cat(acc_n, pf_n, nf_n))

        # -- tail: one sum a cycle out of the shift register ---------------------------------
        drain = drain_sequencer(m, l2, rows=1, cols=C, tiles=nt, n=N)
        hold = [Signal(ab + 2, name=f"hold{c}", reset_less=True) for c in range(C)]
        with m.If(l2):
            m.d.sync += [h.eq(s) for h, s in zip(hold, sums, strict=True)]
        with m.Elif(drain.active):
            m.d.sync += [h.eq(nh) for h, nh in zip(hold[:-1], hold[1:], strict=True)]
        slots = nt * C
        words = plan.tail_words
        eb = plan.exp_bits
        tail_rom = Memory(shape=eb + 2 + ab, depth=slots,
                          init=words + [0] * (slots - len(words)))
        m.submodules.tail_rom = tail_rom
        tail_rd = tail_rom.read_port()
        m.d.comb += tail_rd.addr.eq(drain.n_idx)

        a_val = Signal(ab + 2, reset_less=True)
        a_ok = Signal()
        m.d.sync += [a_val.eq(hold[0]), a_ok.eq(drain.ok)]
        b_n = Signal(signed(ab), reset_less=True)
        b_pf = Signal(reset_less=True)
        b_nf = Signal(reset_less=True)
        b_exp = Signal(signed(eb), reset_less=True)
        b_ok = Signal()
        bias = tail_rd.data
        m.d.sync += [
            b_n.eq(a_val[:ab].as_signed() + bias[:ab].as_signed()),
            b_pf.eq(a_val[ab] | bias[ab]),
            b_nf.eq(a_val[ab + 1] | bias[ab + 1]),
            b_exp.eq(bias[ab + 2:].as_signed()),
            b_ok.eq(a_ok),
        ]
        m.submodules.normaliser = norm = ExactNormaliser(ab, eb, pipelined=True,
                                                         exp_range=plan.exp_range)
        m.d.comb += [norm.n.eq(b_n), norm.exp.eq(b_exp), norm.pinf.eq(b_pf),
                     norm.ninf.eq(b_nf)]
        y = Signal(F32, reset_less=True)
        y_ok = Signal()
        if layer.activation == "relu":
            m.d.sync += y.eq(Mux(norm.o[F32 - 1], 0, norm.o))
        else:
            m.d.sync += y.eq(norm.o)
        m.d.sync += y_ok.eq(delayed(m, b_ok, stages=norm.LATENCY, name="norm_ok"))
        m.d.comb += [out.w_data.eq(y), out.w_en.eq(y_ok)]
        out.reserve(m, seq.start_tile, tile_results(1, C, N, nt)[seq.next_tile])
        if plan.counters:
            batch_counter(m, self.cycles, started=seq.batch_started, written=out.w_en,
                          per_batch=N, in_flight=t.in_flight, bound=t.batch_cycles)
        return m

    def _shared_terms(self, m, x_q, codes1):
        """Binary and ternary lanes: one aligner, ``+|x|`` and ``-|x|`` registered once;
        each lane's term (add, subtract, skip) and flags, two cycles after ``x_q``."""
        plan = self._plan
        C, wb, ab = plan.lanes, plan.w_bits, plan.acc_bits
        m.submodules.aligner = al = ExactAligner(plan.window)
        m.d.comb += al.x.eq(x_q)
        mag = Signal(plan.window.width, reset_less=True)
        flags = Signal(3, reset_less=True)  # sign, big, nan
        codes2 = Signal(C * wb, reset_less=True)
        m.d.sync += [mag.eq(al.mag), flags.eq(Cat(al.sign, al.big, al.nan)),
                     codes2.eq(codes1)]
        pos = Signal(signed(ab), reset_less=True)
        neg = Signal(signed(ab), reset_less=True)
        x_sign = Signal(reset_less=True)
        x_big = Signal(reset_less=True)
        x_nan = Signal(reset_less=True)
        codes = Signal(C * wb, reset_less=True)
        m.d.sync += [pos.eq(mag), neg.eq(-mag), Cat(x_sign, x_big, x_nan).eq(flags),
                     codes.eq(codes2)]
        out = []
        for c in range(C):
            code = codes[c * wb:(c + 1) * wb]
            if plan.layer.space == "binary":
                nz, w_neg = Const(1, 1), code[0]
            else:
                nz, w_neg = code[0], code[1]
            minus = Signal(name=f"minus{c}")
            m.d.comb += minus.eq(x_sign ^ w_neg)
            term = Signal(signed(ab), name=f"term{c}")
            m.d.comb += term.eq(Mux(nz, Mux(minus, neg, pos), 0))
            out.append((term, nz & (x_nan | (x_big & ~minus)),
                        nz & (x_nan | (x_big & minus))))
        return out

    def _product_terms(self, m, x, codes):
        """Float and minifloat lanes: each its pipelined product aligner (multiplier and
        shifter) on the memories' answer ``x`` and ``codes``, then its signed term and flags
        registered: :data:`PRODUCT_LATENCY` registers."""
        plan = self._plan
        wb, ab = plan.w_bits, plan.acc_bits
        out = []
        for c in range(plan.lanes):
            pa = ProductAligner(plan.window, plan.w_fmt, pipelined=True)
            assert pa.LATENCY + 1 == PRODUCT_LATENCY
            m.submodules[f"product{c}"] = pa
            m.d.comb += [pa.x.eq(x), pa.w.eq(codes[c * wb:(c + 1) * wb])]
            term = Signal(signed(ab), name=f"term{c}", reset_less=True)
            tp = Signal(name=f"tpinf{c}", reset_less=True)
            tn = Signal(name=f"tninf{c}", reset_less=True)
            m.d.sync += [term.eq(Mux(pa.sign, -pa.mag, pa.mag)),
                         tp.eq(pa.nan | (pa.big & ~pa.sign)),
                         tn.eq(pa.nan | (pa.big & pa.sign))]
            out.append((term, tp, tn))
        return out

