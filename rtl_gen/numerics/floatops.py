"""Floating-point multiply and add on codes, bit-exact models of :mod:`rtl_gen.hw.fpu`.

A :class:`FloatFormat` ``(E, M, bias, ieee)`` lays its codes out as a minifloat does
(NUMERICS.md section 5)::

    code = sign << (E + M) | exp << M | man

    exp == 0:  value = (-1)**sign * man            * 2**(1 - bias - M)     (zero, subnormals)
    exp >= 1:  value = (-1)**sign * (2**M + man)   * 2**(exp - bias - M)   (normals)

* ``ieee=False`` is exactly :class:`~rtl_gen.numerics.minifloat.MinifloatFormat`: no
  infinity, no NaN, the all-ones exponent an ordinary binade, and a result beyond the
  largest finite value saturates to it (sign kept).
* ``ieee=True`` is IEEE-754: the all-ones exponent holds ``±inf`` (mantissa 0) and NaN
  (mantissa nonzero), and a result that rounds beyond the largest finite value is ``±inf``.

Both units round the exact result once, to nearest, ties to the even code; subnormal
inputs and results are kept (no flush to zero), and a result that underflows to zero keeps
its sign.  The sign rules are IEEE's: a product's sign is the XOR of the operands' signs
(zeros included); an exactly zero sum of operands of opposite signs is ``+0``, and
``(-0) + (-0) = -0``.

NaN rule (``ieee=True``): every NaN result is the one canonical quiet NaN
:attr:`FloatFormat.nan_code`, sign bit set, exponent all ones, mantissa MSB set and the
rest clear (``0xFFC00000`` for binary32, the pattern x86 gives for an invalid operation).
It is the result of any operation with a NaN operand (payloads are not propagated) and of
the invalid operations ``±inf * ±0`` and ``inf + (-inf)``.  ``inf * x`` (``x`` nonzero) is
``inf`` with the XOR sign; ``inf + x`` (``x`` finite) is that ``inf``.

Everything is exact integer arithmetic on numpy arrays: a product is the integer product of
the two significands, and a sum aligns the smaller operand with three guard bits and a
sticky bit, which is exact for rounding (the sticky bit only arises for an alignment shift
of four or more, when at most one bit cancels).  Formats whose significand product exceeds
62 bits (binary64-like) compute on Python integers in object arrays, slower but exact.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .minifloat import (
    MinifloatFormat,
    _check_int,
    _uint_dtype,
    _unsigned_codes,
)

__all__ = [
    "BINARY32",
    "FloatFormat",
    "convert",
    "fadd",
    "fmul",
]

#: Widest significand product that is computed in ``int64`` (wider: Python integers).
_INT64_BITS = 60


@dataclasses.dataclass(frozen=True)
class FloatFormat:
    """A sign, exponent, mantissa float format, IEEE-754 or minifloat.

    Parameters
    ----------
    exp_bits:
        Exponent width ``E``, ``1..11`` (``2..11`` with ``ieee``).
    man_bits:
        Mantissa (fraction) width ``M``, ``0..52`` (``1..52`` with ``ieee``, so that NaN
        exists).
    bias:
        Exponent bias; ``None`` means ``2**(E-1) - 1``.  After construction the member
        holds the integer.
    ieee:
        IEEE-754 semantics (infinities, NaN, overflow to ``±inf``) instead of the
        saturating minifloat of :class:`~rtl_gen.numerics.minifloat.MinifloatFormat`.

    Raises
    ------
    ValueError
        For a width or bias that is not an integer or lies outside its range (checked by
        :class:`~rtl_gen.numerics.minifloat.MinifloatFormat`).
    """

    exp_bits: int
    man_bits: int
    bias: int | None = None
    ieee: bool = False

    def __post_init__(self):
        mini = MinifloatFormat(self.exp_bits, self.man_bits, self.bias)
        if not isinstance(self.ieee, (bool, np.bool_)):
            raise ValueError(f"ieee must be a bool, not {self.ieee!r}")
        if self.ieee:
            _check_int(mini.exp_bits, "exp_bits of an IEEE format", 2, 11)
            _check_int(mini.man_bits, "man_bits of an IEEE format", 1, 52)
        object.__setattr__(self, "exp_bits", mini.exp_bits)
        object.__setattr__(self, "man_bits", mini.man_bits)
        object.__setattr__(self, "bias", mini.bias)
        object.__setattr__(self, "ieee", bool(self.ieee))

    @property
    def minifloat(self) -> MinifloatFormat:
        """The :class:`MinifloatFormat` with the same ``E``, ``M`` and bias.

        Its codec is exact for a minifloat format; for an IEEE format it agrees on every
        finite code below the all-ones exponent.
        """
        return MinifloatFormat(self.exp_bits, self.man_bits, self.bias)

    @property
    def width(self) -> int:
        """Code width ``1 + E + M`` in bits."""
        return 1 + self.exp_bits + self.man_bits

    @property
    def name(self) -> str:
        """``"fp32"`` for binary32, ``"ieeeE5M10"`` for other IEEE formats, else ``"E5M2"``.

        A non-default bias is appended as by :class:`MinifloatFormat` (``"E4M3b9"``).
        """
        mini = self.minifloat.name
        if not self.ieee:
            return mini
        if mini == "E8M23":
            return "fp32"
        return f"ieee{mini}"

    def __str__(self) -> str:
        return self.name

    @property
    def dtype(self) -> type:
        """Smallest unsigned numpy integer type of :attr:`width` bits (``uint32`` for fp32)."""
        return _uint_dtype(self.width)

    @property
    def max_exp_field(self) -> int:
        """Largest exponent field of a finite value: ``2**E - 1``, or ``2**E - 2`` if IEEE."""
        return (1 << self.exp_bits) - (2 if self.ieee else 1)

    @property
    def max_code(self) -> int:
        """Magnitude code of the largest finite value."""
        return ((self.max_exp_field + 1) << self.man_bits) - 1

    @property
    def emax(self) -> int:
        """Unbiased exponent of the top finite binade."""
        return self.max_exp_field - self.bias

    @property
    def emin(self) -> int:
        """Unbiased exponent of the smallest normal, ``1 - bias``."""
        return 1 - self.bias

    @property
    def inf_code(self) -> int | None:
        """Magnitude code of infinity (``None`` for a minifloat)."""
        return ((1 << self.exp_bits) - 1) << self.man_bits if self.ieee else None

    @property
    def nan_code(self) -> int | None:
        """The canonical quiet NaN code (``None`` for a minifloat), ``0xFFC00000`` for fp32."""
        if not self.ieee:
            return None
        return (1 << (self.width - 1)) | self.inf_code | (1 << (self.man_bits - 1))

    def holds(self, other: FloatFormat) -> bool:
        """Whether every value of ``other`` (infinities and NaN included) is one of ours."""
        if other.ieee and not self.ieee:
            return False
        if other.emax > self.emax:
            return False
        if other.emin - other.man_bits < self.emin - self.man_bits:
            return False  # the smallest step of ``other`` is below our smallest step
        # A binade of ``other`` inside our normal range needs its steps to be ours.
        return other.emax < self.emin or other.man_bits <= self.man_bits


#: IEEE-754 binary32.
BINARY32 = FloatFormat(8, 23, ieee=True)


def _check_format(fmt, name: str) -> FloatFormat:
    if not isinstance(fmt, FloatFormat):
        raise ValueError(f"{name} must be a FloatFormat, not {fmt!r}")
    return fmt


# -- unpacking and rounding --------------------------------------------------------------------


def _codes(codes, fmt: FloatFormat, name: str) -> np.ndarray:
    return _unsigned_codes(codes, fmt.width, name, f"{fmt.name} (width {fmt.width})")


def _unpack(c: np.ndarray, fmt: FloatFormat):
    """``(sign, sig, q, inf, nan)`` of ``uint64`` codes: ``|value| = sig * 2**q`` if finite.

    ``sig`` (with the hidden bit of normals) and the exponent ``q`` of its LSB are ``int64``.
    """
    m_bits = fmt.man_bits
    sign = (c >> np.uint64(fmt.width - 1)).astype(np.int64)
    exp = ((c >> np.uint64(m_bits)) & np.uint64((1 << fmt.exp_bits) - 1)).astype(np.int64)
    man = (c & np.uint64((1 << m_bits) - 1)).astype(np.int64)
    sig = np.where(exp == 0, man, man + (1 << m_bits))
    q = np.maximum(exp, 1) - fmt.bias - m_bits
    if fmt.ieee:
        top = exp == (1 << fmt.exp_bits) - 1
        inf, nan = top & (man == 0), top & (man != 0)
        sig = np.where(top, 0, sig)
    else:
        inf = nan = np.zeros(c.shape, dtype=bool)
    return sign, sig, q, inf, nan


def _bit_length(n: np.ndarray, bits: int) -> np.ndarray:
    """``int.bit_length`` of each nonnegative ``n < 2**bits``, by a binary search of shifts."""
    length = np.zeros(n.shape, dtype=np.int64)
    step = 1 << max(bits - 1, 0).bit_length()
    while step > 1:
        step >>= 1
        hi = n >> step
        found = hi != 0
        n = np.where(found, hi, n)
        length += np.where(found, step, 0)
    return length + (n != 0)


def _round_pack(sign, n, q, sticky, n_bits: int, fmt: FloatFormat) -> np.ndarray:
    """Code of ``(-1)**sign * (n + f) * 2**q``, ``f`` in ``(0, 1)`` where ``sticky`` else 0.

    ``0 <= n < 2**n_bits``; ``sticky`` may only be set where rounding drops at least one
    bit of ``n``.  Rounds to nearest, ties to the even code, then saturates (minifloat) or
    overflows to infinity (IEEE).  Returns ``uint64`` codes.
    """
    m_bits, bias = fmt.man_bits, fmt.bias
    length = _bit_length(n, n_bits)
    zero = n == 0
    eb = np.maximum(q + length - 1 + bias, 1)  # biased exponent of the binade holding |x|
    over_e = ~zero & (eb > fmt.max_exp_field)
    eb = np.where(over_e | zero, 1, eb)
    sh = (eb - bias - m_bits) - q  # bits of n below the result's quantum
    cap = n_bits + 1  # shifting further changes nothing
    up = np.clip(-sh, 0, 63)
    down = np.clip(sh, 0, cap)
    kept = np.where(sh > 0, n >> down, n << up)
    one = np.ones_like(n)  # of n's type: Python integers for the widest formats
    rem = n & ((one << down) - 1)
    half = (one << down) >> 1
    code = ((eb - 1) << m_bits) + kept
    odd = (code & 1) != 0
    round_up = (sh > 0) & ((rem > half) | ((rem == half) & (sticky | odd)))
    code = code + round_up
    code = np.where(zero, 0, code)
    overflow = over_e | (code > fmt.max_code)
    code = np.where(overflow, fmt.inf_code if fmt.ieee else fmt.max_code, code)
    return (sign.astype(np.uint64) << np.uint64(fmt.width - 1)) | code.astype(np.uint64)


def _specials(out: np.ndarray, fmt: FloatFormat, inf, inf_sign, nan) -> np.ndarray:
    """Put ``±inf`` where ``inf`` (sign ``inf_sign``) and the canonical NaN where ``nan``."""
    if not fmt.ieee:
        return out
    inf_codes = (inf_sign.astype(np.uint64) << np.uint64(fmt.width - 1)) | np.uint64(
        fmt.inf_code)
    out = np.where(inf, inf_codes, out)
    return np.where(nan, np.uint64(fmt.nan_code), out)


# -- the operations ---------------------------------------------------------------------------


def fmul(a, b, fmt: FloatFormat, b_fmt: FloatFormat | None = None) -> np.ndarray:
    """Product ``a * b`` of float codes, rounded once (nearest, ties to even).

    Parameters
    ----------
    a : array_like of int
        Codes of ``fmt``.
    b : array_like of int
        Codes of ``b_fmt`` (default ``fmt``); broadcast against ``a``.
    fmt : FloatFormat
        The format of ``a`` and of the result.
    b_fmt : FloatFormat, optional
        A narrower minifloat format for ``b`` (a weight format: fp32 activation times an
        ``E4M3`` weight gives fp32).  Every value of ``b_fmt`` must be one of ``fmt``;
        the result equals ``fmul(a, convert(b, b_fmt, fmt), fmt)``.

    Returns
    -------
    numpy.ndarray
        Codes of ``fmt`` in its smallest unsigned type (``uint32`` for fp32), the shape of
        ``a`` and ``b`` broadcast.  Sign: the XOR of the operands' signs (zeros and
        underflow included); IEEE NaN rule as in the module's notes.

    Raises
    ------
    ValueError
        For a format that is not a :class:`FloatFormat`, a ``b_fmt`` that is IEEE or holds
        values ``fmt`` lacks, a non-integer dtype or a code out of range (the message gives
        how many, the first one and its index), or shapes that do not broadcast.
    """
    fmt = _check_format(fmt, "fmt")
    if b_fmt is None:
        b_fmt = fmt
    else:
        b_fmt = _check_format(b_fmt, "b_fmt")
        if b_fmt.ieee and b_fmt != fmt:
            raise ValueError(f"b_fmt must be a minifloat weight format (ieee=False), not "
                             f"{b_fmt.name}")
        if not fmt.holds(b_fmt):
            raise ValueError(f"b_fmt {b_fmt.name} has values that {fmt.name} cannot hold "
                             f"exactly (exponents {b_fmt.emin - b_fmt.man_bits}..{b_fmt.emax} "
                             f"vs {fmt.emin - fmt.man_bits}..{fmt.emax}, mantissa "
                             f"{b_fmt.man_bits} vs {fmt.man_bits} bits)")
    ca, cb = np.broadcast_arrays(_codes(a, fmt, "a"), _codes(b, b_fmt, "b"))
    sa, ma, qa, infa, nana = _unpack(ca, fmt)
    sb, mb, qb, infb, nanb = _unpack(cb, b_fmt)
    n_bits = fmt.man_bits + b_fmt.man_bits + 2
    if n_bits > _INT64_BITS:
        ma, mb = ma.astype(object), mb.astype(object)
    sign = sa ^ sb
    out = _round_pack(sign, ma * mb, qa + qb, np.zeros(ca.shape, dtype=bool), n_bits, fmt)
    zero_a = ~infa & ~nana & (ma == 0)
    zero_b = ~infb & ~nanb & (mb == 0)
    nan = nana | nanb | (infa & zero_b) | (infb & zero_a)
    out = _specials(out, fmt, infa | infb, sign, nan)
    return out.astype(fmt.dtype)


def fadd(a, b, fmt: FloatFormat) -> np.ndarray:
    """Sum ``a + b`` of float codes of ``fmt``, rounded once (nearest, ties to even).

    Parameters
    ----------
    a, b : array_like of int
        Codes of ``fmt``, broadcast against each other.
    fmt : FloatFormat
        The format of the operands and the result.

    Returns
    -------
    numpy.ndarray
        Codes of ``fmt`` in its smallest unsigned type.  An exactly zero sum is ``+0``
        unless both operands are negative (``(-0) + (-0) = -0``); otherwise the sign is
        that of the operand of larger magnitude.  IEEE NaN rule as in the module's notes.

    Raises
    ------
    ValueError
        For a format that is not a :class:`FloatFormat`, a non-integer dtype or a code out
        of range, or shapes that do not broadcast.
    """
    fmt = _check_format(fmt, "fmt")
    ca, cb = np.broadcast_arrays(_codes(a, fmt, "a"), _codes(b, fmt, "b"))
    mag_mask = np.uint64((1 << (fmt.width - 1)) - 1)
    swap = (cb & mag_mask) > (ca & mag_mask)
    big, small = np.where(swap, cb, ca), np.where(swap, ca, cb)
    s1, m1, q1, inf1, nan1 = _unpack(big, fmt)
    s2, m2, q2, inf2, nan2 = _unpack(small, fmt)
    m_bits = fmt.man_bits
    # Align the smaller operand: three guard bits, and a sticky bit for what shifts out.
    d = np.minimum(q1 - q2, m_bits + 5)  # from m_bits + 5 on, all of m2 << 3 shifts out
    aligned = (m2 << 3) >> d
    sticky = (aligned << d) != (m2 << 3)
    n1 = m1 << 3
    subtract = (s1 ^ s2) != 0
    n = np.where(subtract, n1 - aligned - sticky, n1 + aligned)
    sign = np.where(subtract & (n == 0) & ~sticky, 0, s1)
    out = _round_pack(sign, n, q1 - 3, sticky, m_bits + 5, fmt)
    nan = nan1 | nan2 | (inf1 & inf2 & subtract)
    out = _specials(out, fmt, inf1, s1, nan)
    return out.astype(fmt.dtype)


def convert(codes, src_fmt: FloatFormat, dst_fmt: FloatFormat) -> np.ndarray:
    """Codes of ``src_fmt`` → codes of ``dst_fmt`` with the same values (exact widening).

    Zeros keep their sign, infinities stay infinities, and NaN becomes ``dst_fmt``'s
    canonical NaN.

    Returns
    -------
    numpy.ndarray
        Codes of ``dst_fmt`` in its smallest unsigned type, the shape of ``codes``.

    Raises
    ------
    ValueError
        For a format that is not a :class:`FloatFormat`, a ``dst_fmt`` that cannot hold
        every value of ``src_fmt`` exactly, a non-integer dtype or a code out of range.
    """
    src_fmt = _check_format(src_fmt, "src_fmt")
    dst_fmt = _check_format(dst_fmt, "dst_fmt")
    if not dst_fmt.holds(src_fmt):
        raise ValueError(f"cannot convert {src_fmt.name} to {dst_fmt.name} exactly: "
                         f"{dst_fmt.name} lacks some of its values")
    c = _codes(codes, src_fmt, "codes")
    sign, sig, q, inf, nan = _unpack(c, src_fmt)
    out = _round_pack(sign, sig, q, np.zeros(c.shape, dtype=bool), src_fmt.man_bits + 1,
                      dst_fmt)
    out = _specials(out, dst_fmt, inf, sign, nan)
    return out.astype(dst_fmt.dtype)
