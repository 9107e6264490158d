"""Float layers on the exact accumulation contract: shared aligners, fixed-point lanes,
normalisers (NUMERICS.md section 5, :mod:`rtl_gen.numerics.exact`).

On this contract the sum of a layer output is an exact integer in the window's units, so a
lane needs no floating-point adder: every activation goes to every lane, and a lane only adds
it, subtracts it or skips it, as the integer ternary PE does.  A layer's
:class:`ExactShape` gives its parallelism: ``C`` lanes, ``L`` inputs a step, ``D`` results a
cycle (``ExactShape(C)``: one and one)::

    i (D_prev fp32 a transfer) ──► input buffer ──► x_k .. x_k+L-1, one word a step
                                          │ registered
                   L ExactAligners (shared): sign, |x| in the window, big, nan
                   (the significand shifted by the exponent field, a constant slice)
                                          │ registered, then +-|x| and its negation registered
    weight ROM (read 2 cycles late, registered) ──► C*L codes a step
     lane c:  L terms (add, subtract, skip: one LUT4 a bit) ──► adder tree, two levels a
              cycle, kept as two-operand adders (carry chains) ──►
              acc <= (first ? 0 : acc) + tree        (acc_bits, exact)
              pinf/ninf <= flags (a term beyond the window, a NaN)
                                          │ after the tile's last step: the C sums shift out
     tail, D results a cycle:  + T(bias/alpha) (integer, from a ROM of D entries a word)
              ──► D ExactNormalisers (four registers; exponent offset lsb + a_j from the
              same ROM) ──► ReLU ──► output FIFO, D results a transfer

Binary lanes add or subtract (weight code 1 means -1), ternary lanes add, subtract or skip
(codes 00, 01, 11).  Float (fp32) and minifloat weights differ per lane, so there each lane
has ``L`` :class:`ProductAligner` instead of the shared ones: the ``24 x (M+1)``-bit
significand product shifted into the window by the two exponent fields (a zero weight skips);
the rest of the layer is the same.

The engine kit, the sequencer, the credit FIFO and the drain are those of
:class:`~rtl_gen.hw.float_layer.FloatLayerEngine`; the cycle model is :func:`exact_layer_timing`
(three registers from the memories to the lanes' trees in binary and ternary layers, six in
float and minifloat ones, :func:`tree_registers` inside the tree, seven in the tail: the read
register, the bias sum, the normaliser's four and the result).
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
    "ExactShape",
    "ProductAligner",
    "exact_layer_timing",
    "plan_exact_layer",
    "tree_registers",
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


#: Registers from the memories' answer to the lanes' adder trees: the activations, the
#: aligned magnitudes, their two signs (binary and ternary layers).
ARRAY_LATENCY = 3

#: The same in float and minifloat layers: the product aligner's five (the operands, their
#: fields, the partial products, the product, the shifted window), the signed term.
PRODUCT_LATENCY = 6

#: Tail registers: the read register, the bias sum, the normaliser's four, the result.
TAIL_STAGES = 7

#: Most activations a step (each lane then adds that many terms a cycle).
MAX_INPUTS = 64


def tree_registers(inputs: int) -> int:
    """Registers inside a lane's adder tree of ``inputs`` terms: its ``ceil(log2(inputs))``
    levels and the accumulator are added two levels a cycle, the last pair (a tree level and
    the accumulator) in the accumulator's cycle: ``floor(levels / 2)``."""
    return (inputs - 1).bit_length() // 2


def _count(value, what: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
            or not lo <= value <= hi:
        raise ValueError(f"{what} must be an integer {lo}..{hi}, not {value!r}")
    return int(value)


@dataclasses.dataclass(frozen=True)
class ExactShape:
    """The parallelism of a layer on the exact contract.

    ``lanes`` (``C``) output channels at once; ``inputs`` (``L``, a power of two) activations
    a step: ``L`` shared aligners (or ``L`` product aligners a lane) and in each lane an
    adder tree of ``L`` terms, so a tile takes ``ceil(K / L)`` steps; ``drain`` (``D``,
    dividing ``C``) results a cycle: ``D`` normalisers, the output stream ``D`` results a
    transfer (the next layer's input takes them as they come).  ``ExactShape(C)`` is the
    plain engine: one input a step, one result a cycle.
    """

    lanes: int
    inputs: int = 1
    drain: int = 1

    def __post_init__(self):
        from .float_layer import check_lanes

        check_lanes(self.lanes)
        inputs = _count(self.inputs, "inputs a step", 1, MAX_INPUTS)
        if inputs & (inputs - 1):
            raise ValueError(f"inputs a step must be a power of two, not {inputs}")
        drain = _count(self.drain, "results a cycle (drain)", 1, self.lanes)
        if self.lanes % drain:
            raise ValueError(f"results a cycle (drain {drain}) must divide the lanes "
                             f"({self.lanes})")

    @classmethod
    def of(cls, value) -> ExactShape:
        """``value`` as a shape: an :class:`ExactShape`, or a lane count."""
        return value if isinstance(value, cls) else cls(value)

    def __str__(self) -> str:
        return f"{self.lanes} lanes x {self.inputs} inputs, drain {self.drain}"


def exact_layer_timing(layer: FloatLayer, shape, in_per_beat: int = 1) -> LayerTiming:
    """The cycle model of an exact layer of :class:`ExactShape` ``shape`` (or a lane count):
    ``L`` inputs a step, :data:`ARRAY_LATENCY` (binary, ternary) or :data:`PRODUCT_LATENCY`
    (float, minifloat) registers and :func:`tree_registers` to the sums, ``D`` results a
    cycle through :data:`TAIL_STAGES`; ``in_per_beat`` activations a transfer in."""
    shape = ExactShape.of(shape)
    latency = ARRAY_LATENCY if layer.space in EXACT_SPACES else PRODUCT_LATENCY
    return LayerTiming(k=layer.in_features, n=layer.out_features, rows=1, cols=shape.lanes,
                       lanes=shape.inputs, array_latency=latency + tree_registers(shape.inputs),
                       drain_stages=TAIL_STAGES, drain_gap=0, pickup=0,
                       in_per_beat=in_per_beat, drain_width=shape.drain)


def _w_fmt(layer: FloatLayer) -> FloatFormat | None:
    """The weight format of a float (fp32) or minifloat layer, ``None`` for binary and
    ternary."""
    if layer.space in EXACT_SPACES:
        return None
    fmt = layer.weight_format
    return BINARY32 if fmt is None else FloatFormat(fmt.exp_bits, fmt.man_bits, fmt.bias)


@dataclasses.dataclass(frozen=True)
class ExactLayerPlan:
    """A validated float layer on the exact contract, of :class:`ExactShape` ``shape``
    (``lanes`` its ``C``), fed ``in_per_beat`` activations a transfer."""

    layer: FloatLayer
    shape: ExactShape
    window: ExactWindow
    timing: LayerTiming
    w_bits: int
    acc_bits: int
    fifo_depth: int
    counters: bool = True
    in_per_beat: int = 1

    @property
    def lanes(self) -> int:
        """``C``, the shape's lanes."""
        return self.shape.lanes

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

    @property
    def tail_rom(self) -> list[int]:
        """The tail ROM, one word a drain cycle: word ``w`` holds :attr:`tail_words` of the
        ``D`` outputs ``w*D + d`` at bits ``d * (exp_bits + 2 + acc_bits)`` (zeros beyond
        ``N``), ``tiles * C / D`` words."""
        t, d_w = self.timing, self.shape.drain
        width = self.exp_bits + 2 + self.acc_bits
        words = self.tail_words
        rom = []
        for w in range(t.tiles * t.cols // d_w):
            word = 0
            for d in range(d_w):
                if w * d_w + d < len(words):
                    word |= words[w * d_w + d] << (d * width)
            rom.append(word)
        return rom


def plan_exact_layer(layer: FloatLayer, lanes, window: ExactWindow, *,
                     counters: bool = True, in_per_beat: int = 1) -> ExactLayerPlan:
    """Validate a float layer on the exact contract and plan its engine: ``lanes`` an
    :class:`ExactShape` or a lane count, ``in_per_beat`` activations a transfer on its input
    (the previous layer's drain).

    Raises
    ------
    TypeError, ValueError
        For something other than a :class:`FloatLayer` or an :class:`ExactWindow`, a shape
        out of range or that does not divide the layer (drain and outputs, inputs a step and
        input transfer), a tile of one cycle, a scale that is not a power of two, or
        exponent offsets beyond :data:`EXP_BITS`.
    """
    if not isinstance(layer, FloatLayer):
        raise TypeError(f"layer must be a FloatLayer, not {layer!r}")
    if not isinstance(window, ExactWindow):
        raise TypeError(f"window must be an ExactWindow, not {window!r}")
    shape = ExactShape.of(lanes)
    if not isinstance(counters, bool):
        raise TypeError(f"counters must be True or False, not {counters!r}")
    name, k, n = layer.name, layer.in_features, layer.out_features
    if n % shape.drain:
        raise ValueError(f"layer {name!r}: {shape.drain} results a cycle must divide its "
                         f"{n} outputs")
    in_per_beat = _count(in_per_beat, "activations a transfer", 1, MAX_INPUTS)
    if in_per_beat > 1 and (shape.inputs % in_per_beat or k % in_per_beat):
        raise ValueError(f"layer {name!r}: {in_per_beat} activations a transfer (the previous "
                         f"layer's drain) must divide its inputs a step ({shape.inputs}) and "
                         f"its {k} inputs")
    exps = alpha_exponents(layer) + window.lsb
    lim = 1 << (EXP_BITS - 1)
    if (exps < -lim).any() or (exps >= lim).any():
        raise ValueError(f"layer {name!r}: exponent offsets lsb + log2(alpha) "
                         f"{int(exps.min())}..{int(exps.max())} exceed {EXP_BITS} bits")
    t = exact_layer_timing(layer, shape, in_per_beat)
    if t.period < 2:
        raise ValueError(f"layer {name!r}: a tile of {shape} takes one cycle ({k} inputs, "
                         f"{shape.lanes // shape.drain} drain cycles); give it fewer inputs a "
                         f"step or fewer results a cycle")
    return ExactLayerPlan(layer=layer, shape=shape, window=window, timing=t,
                          w_bits=_w_fmt(layer).width if _w_fmt(layer) is not None
                          else {"binary": 1, "ternary": 2}[layer.space],
                          acc_bits=window.acc_bits(k + 1),
                          fifo_depth=fifo_depth(t, slack=6, spare=0), counters=counters,
                          in_per_beat=in_per_beat)


class ExactLayerEngine(Engine):
    """A :class:`FloatLayer` on the exact contract; see the module docstring.  Ports as
    :class:`~rtl_gen.hw.float_layer.FloatLayerEngine`, the streams ``in_per_beat`` and
    ``D`` fp32 results wide (result ``d`` of a transfer at bits ``32*d``)."""

    plan = staticmethod(plan_exact_layer)

    @staticmethod
    def ports(plan: ExactLayerPlan) -> dict:
        return {"i": In(stream.Signature(F32 * plan.in_per_beat)),
                "o": Out(stream.Signature(F32 * plan.shape.drain)),
                "cycles": Out(COUNTER_BITS)}

    @property
    def layer(self) -> FloatLayer:
        return self._plan.layer

    def weight_words(self) -> list[int]:
        """The weight ROM (:func:`~rtl_gen.hw.kit.column_words`): word ``t*S + s`` holds the
        code of weight ``[t*C + c, s*L + l]`` at bits ``(c*L + l) * w_bits`` (code 0 beyond
        ``N`` and ``K``: ternary skip, binary +x of an input that stays +0)."""
        plan = self._plan
        return column_words(plan.layer.codes.astype(np.int64), plan.timing, plan.w_bits)

    def elaborate(self, platform):
        m = Module()
        plan = self._plan
        layer, t = plan.layer, plan.timing
        K, N, C, nt, P = t.k, t.n, t.cols, t.tiles, t.period
        L, D, ks = t.lanes, t.drain_width, t.k_steps
        wb, ab = plan.w_bits, plan.acc_bits

        # an input slot beyond K is never written: it stays +0 (a zero term)
        banks = input_banks(m, self.i, rows=1, lanes=L, a_bits=F32, ks=ks, k=K, src_cols=K,
                            per_beat=plan.in_per_beat)
        m.submodules.rom = rom = Memory(shape=C * L * wb, depth=nt * ks,
                                        init=self.weight_words())
        rom_rd = rom.read_port()
        out = credit_fifo(m, self.o, width=F32 * D, depth=plan.fifo_depth,
                          need=t.drain_cycles)
        seq = tile_sequencer(m, banks.full, out.credit, tiles=nt, period=P, step_range=P,
                             chain=True, words=ks)
        issue, first, last = seq.steps(m, ks)
        banks.read(m, seq.cbank, seq.step)
        # memories answer a cycle later: each lane's L terms (the shared aligners' or its
        # product aligners'), array_latency registers on, less the adder tree's own.  The
        # shared aligners take three registers: the weight ROM is read two cycles later (its
        # address delayed, not its wide word) and its word registered once (a block RAM's
        # 5.6 ns clock-to-out must not reach the lanes' adders)
        shared = layer.space in EXACT_SPACES
        word = delayed(m, seq.word, stages=ARRAY_LATENCY - 1, name="word_d",
                       reset_less=True) if shared else seq.word
        m.d.comb += rom_rd.addr.eq(word)
        v1, f1, l1 = delayed(m, issue, first, last, name="step_d")
        v2, f2, l2 = delayed(m, v1, f1, l1, stages=t.array_latency, name="align_d")
        terms = self._shared_terms(m, banks.data(0), delayed(m, rom_rd.data, name="codes_q",
                                                             reset_less=True)) if shared \
            else self._product_terms(m, banks.data(0), rom_rd.data)

        sums = []
        for c, lane_terms in enumerate(terms):
            total, tp, tn = self._tree(m, lane_terms, c)
            acc = Signal(signed(ab), name=f"acc{c}", reset_less=True)
            pf = Signal(name=f"pinf{c}", reset_less=True)
            nf = Signal(name=f"ninf{c}", reset_less=True)
            acc_n = Signal(signed(ab), name=f"acc_next{c}")
            pf_n = Signal(name=f"pinf_next{c}")
            nf_n = Signal(name=f"ninf_next{c}")
            m.d.comb += [
                acc_n.eq(Mux(f2, 0, acc) + total),
                pf_n.eq((pf & ~f2) | tp),
                nf_n.eq((nf & ~f2) | tn),
            ]
            with m.If(v2):
                m.d.sync += [acc.eq(acc_n), pf.eq(pf_n), nf.eq(nf_n)]
            sums.append(Cat(acc_n, pf_n, nf_n))

        # -- tail: D sums a cycle out of the shift register ----------------------------------
        G = C // D                      # drain cycles (output transfers) a tile
        drain = drain_sequencer(m, l2, rows=1, cols=G, tiles=nt, n=N // D)
        hold = [Signal(ab + 2, name=f"hold{c}", reset_less=True) for c in range(C)]
        with m.If(l2):
            m.d.sync += [h.eq(s) for h, s in zip(hold, sums, strict=True)]
        with m.Elif(drain.active):
            m.d.sync += [h.eq(nh) for h, nh in zip(hold[:-D], hold[D:], strict=True)]
        eb = plan.exp_bits
        tw = eb + 2 + ab
        m.submodules.tail_rom = tail_rom = Memory(shape=D * tw, depth=nt * G,
                                                  init=plan.tail_rom)
        tail_rd = tail_rom.read_port()
        m.d.comb += tail_rd.addr.eq(drain.n_idx)

        a_ok = Signal()
        m.d.sync += a_ok.eq(drain.ok)
        b_ok = Signal()
        m.d.sync += b_ok.eq(a_ok)
        ys = []
        for d in range(D):
            a_val = Signal(ab + 2, name=f"a_val{d}", reset_less=True)
            m.d.sync += a_val.eq(hold[d])
            bias = tail_rd.data[d * tw:(d + 1) * tw]
            b_n = Signal(signed(ab), name=f"b_n{d}", reset_less=True)
            b_pf = Signal(name=f"b_pinf{d}", reset_less=True)
            b_nf = Signal(name=f"b_ninf{d}", reset_less=True)
            b_exp = Signal(signed(eb), name=f"b_exp{d}", reset_less=True)
            m.d.sync += [
                b_n.eq(a_val[:ab].as_signed() + bias[:ab].as_signed()),
                b_pf.eq(a_val[ab] | bias[ab]),
                b_nf.eq(a_val[ab + 1] | bias[ab + 1]),
                b_exp.eq(bias[ab + 2:].as_signed()),
            ]
            norm = ExactNormaliser(ab, eb, pipelined=True, exp_range=plan.exp_range)
            m.submodules[f"normaliser{d}" if D > 1 else "normaliser"] = norm
            m.d.comb += [norm.n.eq(b_n), norm.exp.eq(b_exp), norm.pinf.eq(b_pf),
                         norm.ninf.eq(b_nf)]
            y = Signal(F32, name=f"y{d}", reset_less=True)
            if layer.activation == "relu":
                m.d.sync += y.eq(Mux(norm.o[F32 - 1], 0, norm.o))
            else:
                m.d.sync += y.eq(norm.o)
            ys.append(y)
        y_ok = Signal()
        m.d.sync += y_ok.eq(delayed(m, b_ok, stages=norm.LATENCY, name="norm_ok"))
        m.d.comb += [out.w_data.eq(Cat(*ys)), out.w_en.eq(y_ok)]
        out.reserve(m, seq.start_tile, tile_results(1, G, N // D, nt)[seq.next_tile])
        if plan.counters:
            batch_counter(m, self.cycles, started=seq.batch_started, written=out.w_en,
                          per_batch=N // D, in_flight=t.in_flight, bound=t.batch_cycles)
        return m

    def _tree(self, m, terms, c: int):
        """Lane ``c``'s ``L`` terms ``(value, pinf, ninf)`` summed (values) and ORed (flags),
        each level one bit wider, a register after the levels :func:`tree_registers` puts
        them (so that the last level and the accumulator share a cycle)."""
        ab = self._plan.acc_bits
        levels = (len(terms) - 1).bit_length()
        level = 0
        while len(terms) > 1:
            level += 1
            summed = []
            for i, ((a, ap, an), (b, bp, bn)) in enumerate(zip(terms[0::2], terms[1::2],
                                                               strict=True)):
                # kept: Yosys would merge the tree into one multi-operand sum of full
                # adders in LUTs; two-operand adders map to carry chains (37% fewer LUT4)
                v = Signal(signed(min(ab, max(len(a), len(b)) + 1)), name=f"sum{c}_{level}_{i}",
                           attrs={"keep": 1})
                m.d.comb += v.eq(a + b)
                summed.append((v, ap | bp, an | bn))
            terms = summed
            if (levels + 1 - level) % 2 == 0:
                terms = [delayed(m, v, pf, nf, name=f"tree{c}_{level}_{i}_", reset_less=True)
                         for i, (v, pf, nf) in enumerate(terms)]
                terms = [(v.as_signed(), pf, nf) for v, pf, nf in terms]
        return terms[0]

    def _shared_terms(self, m, xs, codes):
        """Binary and ternary lanes: ``L`` aligners, the signed activation ``+-|x|`` and its
        negation registered once (so that a lane's term is one LUT4 a bit: weight sign,
        nonzero, the two values); each lane's ``L`` terms (add, subtract, skip) and flags,
        three registers after the memories' answer ``xs``, with ``codes`` (read that late)."""
        plan = self._plan
        C, L, wb = plan.lanes, plan.shape.inputs, plan.w_bits
        width = plan.window.width
        xs_q = delayed(m, xs, name="x_q", reset_less=True)
        shared = []
        for lane in range(L):
            al = ExactAligner(plan.window)
            m.submodules[f"aligner{lane}" if L > 1 else "aligner"] = al
            m.d.comb += al.x.eq(xs_q[lane * F32:(lane + 1) * F32])
            mag = Signal(width, name=f"mag{lane}", reset_less=True)
            flags = Signal(3, name=f"flags{lane}", reset_less=True)  # sign, big, nan
            m.d.sync += [mag.eq(al.mag), flags.eq(Cat(al.sign, al.big, al.nan))]
            x_v = Signal(signed(width + 1), name=f"x_v{lane}", reset_less=True)
            x_n = Signal(signed(width + 1), name=f"x_neg{lane}", reset_less=True)
            pinf = Signal(name=f"x_pinf{lane}", reset_less=True)   # +x beyond the window
            ninf = Signal(name=f"x_ninf{lane}", reset_less=True)
            sign, big, nan = flags[0], flags[1], flags[2]
            m.d.sync += [x_v.eq(Mux(sign, -mag, mag)), x_n.eq(Mux(sign, mag, -mag)),
                         pinf.eq(nan | (big & ~sign)), ninf.eq(nan | (big & sign))]
            shared.append((x_v, x_n, pinf, ninf))
        out = []
        for c in range(C):
            lane_terms = []
            for lane, (x_v, x_n, pinf, ninf) in enumerate(shared):
                b = (c * L + lane) * wb
                code = codes[b:b + wb]
                if plan.layer.space == "binary":
                    nz, w_neg = Const(1, 1), code[0]
                else:
                    nz, w_neg = code[0], code[1]
                term = Signal(signed(width + 1), name=f"term{c}_{lane}")
                m.d.comb += term.eq(Mux(nz, Mux(w_neg, x_n, x_v), 0))
                lane_terms.append((term, nz & Mux(w_neg, ninf, pinf),
                                   nz & Mux(w_neg, pinf, ninf)))
            out.append(lane_terms)
        return out

    def _product_terms(self, m, xs, codes):
        """Float and minifloat lanes: ``L`` pipelined product aligners (multiplier and
        shifter) a lane on the memories' answer ``xs`` and ``codes``, then each signed term
        and its flags registered: :data:`PRODUCT_LATENCY` registers."""
        plan = self._plan
        L, wb = plan.shape.inputs, plan.w_bits
        width = plan.window.width
        out = []
        for c in range(plan.lanes):
            lane_terms = []
            for lane in range(L):
                pa = ProductAligner(plan.window, plan.w_fmt, pipelined=True)
                assert pa.LATENCY + 1 == PRODUCT_LATENCY
                m.submodules[f"product{c}_{lane}" if L > 1 else f"product{c}"] = pa
                b = (c * L + lane) * wb
                m.d.comb += [pa.x.eq(xs[lane * F32:(lane + 1) * F32]),
                             pa.w.eq(codes[b:b + wb])]
                term = Signal(signed(width + 1), name=f"term{c}_{lane}", reset_less=True)
                tp = Signal(name=f"tpinf{c}_{lane}", reset_less=True)
                tn = Signal(name=f"tninf{c}_{lane}", reset_less=True)
                m.d.sync += [term.eq(Mux(pa.sign, -pa.mag, pa.mag)),
                             tp.eq(pa.nan | (pa.big & ~pa.sign)),
                             tn.eq(pa.nan | (pa.big & pa.sign))]
                lane_terms.append((term, tp, tn))
            out.append(lane_terms)
        return out
