"""Combinational floating-point multiplier and adder for any :class:`FloatFormat`.

Both units are bit-exact implementations of :func:`rtl_gen.numerics.floatops.fmul` and
:func:`~rtl_gen.numerics.floatops.fadd`: round to nearest, ties to even, subnormals in and
out, saturation (minifloat) or overflow to ``±inf`` (IEEE), and for IEEE formats the one
canonical quiet NaN of :attr:`FloatFormat.nan_code` for every NaN result.

They are purely combinational (:data:`LATENCY` = 0): ``o`` follows ``a`` and ``b`` in the
same cycle, and the caller puts registers around them (and pipelines them by retiming, if it
must).  Datapaths::

    FloatMul:  unpack a, b ─► (Ma+1) x (Mb+1) significand product (a plain ``*``: one DSP
               on ECP5 for 18 x 18 bits or less) ─► round_pack ─► specials ─► o
    FloatAdd:  swap so |a| >= |b| ─► align b (3 guard bits + sticky, shift clamped at M+5)
               ─► add / subtract ─► round_pack ─► specials ─► o

``round_pack`` is shared: a tree leading-zero counter, a left shift that normalises (stopping
at the subnormal binade), for the multiplier a right shift with sticky for results below the
subnormal range, then one rounding increment on the packed exponent-mantissa field, whose
carry moves into the next binade (or from the subnormals into the smallest normal) by itself.
"""

from __future__ import annotations

import dataclasses

from amaranth import Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib.wiring import In, Out

from ..numerics.floatops import FloatFormat
from .kit import Planned

__all__ = ["LATENCY", "FloatAdd", "FloatMul"]

#: Clock edges from the operands to the result: both units are combinational.
LATENCY = 0


@dataclasses.dataclass(frozen=True)
class _Formats:
    """A unit's validated formats: of ``a`` and ``o``, and of ``b``."""

    fmt: FloatFormat
    b_fmt: FloatFormat


@dataclasses.dataclass
class _Unpacked:
    """The fields of one operand (Amaranth values)."""

    sign: Value
    exp: Value  # effective biased exponent: the exponent field, 1 for zero and subnormals
    sig: Value  # significand with the hidden bit, M + 1 bits
    zero: Value
    inf: Value
    nan: Value


def _unpack(code: Value, fmt: FloatFormat) -> _Unpacked:
    m_bits = fmt.man_bits
    man = code[:m_bits]
    exp = code[m_bits:m_bits + fmt.exp_bits]
    normal = exp.any()
    sig = Cat(man, normal)
    if fmt.ieee:
        top = exp.all()
        inf, nan = top & ~man.any(), top & man.any()
    else:
        inf = nan = Const(0, 1)
    return _Unpacked(sign=code[-1], exp=Mux(normal, exp, 1), sig=sig, zero=~sig.any(),
                     inf=inf, nan=nan)


def _lzc(v: Value) -> tuple[Value, Value]:
    """Leading zeros of ``v`` and whether it is all zero, by a tree of halves.

    ``v`` is padded with zero LSBs to a power of two; the count is exact when ``v`` is not
    all zero (it is all ones otherwise).
    """
    width = len(v)
    size = 1 << (width - 1).bit_length()
    v = Cat(Const(0, size - width), v)
    if size == 1:
        return Const(0, 0), ~v[0]
    half = size // 2
    count_hi, zero_hi = _lzc(v[half:])
    count_lo, zero_lo = _lzc(v[:half])
    return Cat(Mux(zero_hi, count_lo, count_hi), zero_hi), zero_hi & zero_lo


def _signed(m: Module, value, bits: int, name: str) -> Signal:
    """``value`` in a new ``signed(bits)`` signal (zero-extended if unsigned)."""
    s = Signal(signed(bits), name=name)
    m.d.comb += s.eq(value)
    return s


def _round_pack(m: Module, n: Value, top_exp: Value, sticky_in: Value, fmt: FloatFormat,
                exp_bits: int, underflow: bool) -> Value:
    """Magnitude code of ``(n + f) * 2**(top_exp - bias - (len(n) - 1))``, rounded.

    ``top_exp`` (a ``signed(exp_bits)`` value) is the biased exponent the result would have
    if the MSB of ``n`` were set; ``f`` is in ``(0, 1)`` where ``sticky_in``, else 0.
    ``underflow`` adds the right shift needed when ``top_exp`` may be below 1.  Returns
    ``E + M`` bits: rounded to nearest even, saturated (minifloat) or ``inf`` (IEEE), 0 when
    ``n`` is 0.
    """
    m_bits = fmt.man_bits
    pad = max(0, m_bits + 3 - len(n))  # a round bit and one sticky bit below the kept bits
    n = Cat(Const(0, pad), n)
    width = len(n)
    lz, zero = _lzc(n)
    t = _signed(m, top_exp, exp_bits, "t")
    eb = _signed(m, t - lz, exp_bits, "eb")
    normal = eb >= 1
    # Normalise: shift the leading one to the top, but not past the subnormal binade.
    lshift = Signal(range(width), name="lshift")
    m.d.comb += lshift.eq(Mux(normal, lz, Mux(t >= 1, t - 1, 0)))
    norm = Signal(width, name="norm")
    m.d.comb += norm.eq(n << lshift)
    sticky = sticky_in
    if underflow:  # below the subnormal binade: shift right, collecting a sticky bit
        rshift = Signal(range(width + 1), name="rshift")
        m.d.comb += rshift.eq(Mux(t < 1 - width, width, Mux(t < 1, 1 - t, 0)))
        # The bits that end below the round bit are those under rshift + width - M - 2:
        # one prefix OR and a bit select instead of a double-width shifter.
        below = [Const(0, 1)]  # below[i] = norm[:i].any()
        for i in range(width):
            below.append(below[-1] | norm[i])
        cut = Signal(range(2 * width + 1), name="cut")
        m.d.comb += cut.eq(rshift + (width - m_bits - 2))
        sticky = sticky | Cat(*below).bit_select(Mux(cut > width, width, cut), 1)
        shifted = Signal(width, name="shifted")
        m.d.comb += shifted.eq(norm >> rshift)
        norm = shifted
    frac = norm[width - m_bits - 1:width - 1]
    round_bit = norm[width - m_bits - 2]
    sticky = sticky | norm[:width - m_bits - 2].any()
    exp_field = Signal(exp_bits, name="exp_field")
    m.d.comb += exp_field.eq(Mux(normal, eb, 0))
    packed = Cat(frac, exp_field)
    rounded = Signal(len(packed) + 1, name="rounded")
    m.d.comb += rounded.eq(packed + (round_bit & (sticky | packed[0])))
    overflow = rounded > fmt.max_code
    limit = fmt.inf_code if fmt.ieee else fmt.max_code
    mag_bits = fmt.exp_bits + m_bits
    return Mux(zero, 0, Mux(overflow, limit, rounded[:mag_bits]))


def _pack(fmt: FloatFormat, sign: Value, mag: Value, inf: Value, nan: Value) -> Value:
    """The output code: ``±mag``, ``±inf`` where ``inf``, the canonical NaN where ``nan``."""
    out = Cat(mag, sign)
    if fmt.ieee:
        out = Mux(nan, fmt.nan_code, Mux(inf, Cat(Const(fmt.inf_code, len(mag)), sign), out))
    return out


def _exp_bits(*bounds: int) -> int:
    """Width of a signed exponent that holds every intermediate up to ``sum(bounds)``."""
    return (sum(abs(b) for b in bounds) + 8).bit_length() + 1


class FloatMul(Planned):
    """``o = a * b`` rounded to ``fmt`` (:func:`~rtl_gen.numerics.floatops.fmul`).

    Combinational, latency 0 (:data:`LATENCY`).

    Parameters
    ----------
    fmt : FloatFormat
        Format of ``a`` and ``o``.
    b_fmt : FloatFormat, optional
        A narrower minifloat weight format for ``b`` (default ``fmt``), every value of which
        ``fmt`` holds exactly.

    Ports
    -----
    a : In(fmt.width)
    b : In(b_fmt.width)
    o : Out(fmt.width)

    Raises
    ------
    ValueError
        For a ``b_fmt`` that :func:`~rtl_gen.numerics.floatops.fmul` rejects.
    """

    LATENCY = LATENCY

    @staticmethod
    def plan(fmt: FloatFormat, b_fmt: FloatFormat | None = None) -> _Formats:
        from ..numerics.floatops import fmul

        fmul(0, 0, fmt, b_fmt)  # validates both formats with the model's messages
        return _Formats(fmt, fmt if b_fmt is None else b_fmt)

    @staticmethod
    def ports(plan: _Formats) -> dict:
        return {"a": In(plan.fmt.width), "b": In(plan.b_fmt.width), "o": Out(plan.fmt.width)}

    @property
    def fmt(self) -> FloatFormat:
        return self._plan.fmt

    @property
    def b_fmt(self) -> FloatFormat:
        return self._plan.b_fmt

    def elaborate(self, platform):
        m = Module()
        fmt, b_fmt = self.fmt, self.b_fmt
        a, b = _unpack(self.a, fmt), _unpack(self.b, b_fmt)
        product = Signal(len(a.sig) + len(b.sig), name="product")
        m.d.comb += product.eq(a.sig * b.sig)
        # With the product's MSB set, the result's biased exponent would be
        # (ea - bias) + (eb - b_bias) + 1 + bias.
        k = _exp_bits(1 << (fmt.exp_bits + 1), 1 << (b_fmt.exp_bits + 1), b_fmt.bias,
                      len(product))
        ea = _signed(m, a.exp, k, "ea")
        eb = _signed(m, b.exp, k, "eb")
        mag = _round_pack(m, product, ea + eb + (1 - b_fmt.bias), Const(0, 1), fmt, k,
                          underflow=True)
        sign = a.sign ^ b.sign
        nan = a.nan | b.nan | (a.inf & b.zero) | (b.inf & a.zero)
        m.d.comb += self.o.eq(_pack(fmt, sign, mag, a.inf | b.inf, nan))
        return m


class FloatAdd(Planned):
    """``o = a + b`` rounded to ``fmt`` (:func:`~rtl_gen.numerics.floatops.fadd`).

    Combinational, latency 0 (:data:`LATENCY`).

    Ports
    -----
    a, b : In(fmt.width)
    o : Out(fmt.width)
    """

    LATENCY = LATENCY

    @staticmethod
    def plan(fmt: FloatFormat) -> _Formats:
        from ..numerics.floatops import fadd

        fadd(0, 0, fmt)  # validates the format with the model's message
        return _Formats(fmt, fmt)

    @staticmethod
    def ports(plan: _Formats) -> dict:
        return {"a": In(plan.fmt.width), "b": In(plan.fmt.width), "o": Out(plan.fmt.width)}

    @property
    def fmt(self) -> FloatFormat:
        return self._plan.fmt

    def elaborate(self, platform):
        m = Module()
        fmt = self.fmt
        m_bits = fmt.man_bits
        mag_bits = fmt.width - 1
        swap = self.b[:mag_bits] > self.a[:mag_bits]  # magnitude codes order as values
        big = _unpack(Mux(swap, self.b, self.a), fmt)
        small = _unpack(Mux(swap, self.a, self.b), fmt)
        # Align the smaller significand: three guard bits, the rest into a sticky bit.
        limit = m_bits + 5  # at this shift all of small.sig << 3 is below the guard bits
        diff = Signal(fmt.exp_bits, name="diff")
        m.d.comb += diff.eq(big.exp - small.exp)
        shift = Signal(range(limit + 1), name="shift")
        m.d.comb += shift.eq(Mux(diff > limit, limit, diff))
        shifted = Cat(Const(0, limit), Const(0, 3), small.sig) >> shift
        aligned = shifted[limit:]
        sticky = shifted[:limit].any()
        big3 = Cat(Const(0, 3), big.sig)
        subtract = big.sign ^ small.sign
        total = Signal(m_bits + 5, name="total")
        m.d.comb += total.eq(Mux(subtract, big3 - aligned - sticky, big3 + aligned))
        k = _exp_bits(1 << (fmt.exp_bits + 1), len(total))
        mag = _round_pack(m, total, _signed(m, big.exp, k, "e_big") + 1, sticky, fmt, k,
                          underflow=False)
        exact_zero = ~total.any() & ~sticky
        sign = Mux(subtract & exact_zero, 0, big.sign)
        nan = big.nan | small.nan | (big.inf & small.inf & subtract)
        m.d.comb += self.o.eq(_pack(fmt, sign, mag, big.inf, nan))
        return m
