"""Minifloats and the MPWN float paths (NUMERICS.md section 5).

A *minifloat* ``(E, M, bias)`` is a code of ``width = 1 + E + M`` bits laid out as::

    code = sign << (E + M) | exp << M | man

    exp == 0:  value = (-1)**sign * man            * 2**(1 - bias - M)     (zero, subnormals)
    exp >= 1:  value = (-1)**sign * (2**M + man)   * 2**(exp - bias - M)   (normals)

with the default ``bias = 2**(E-1) - 1`` *(our choice)*.  There is no infinity and no NaN:
every exponent code, the all-ones one included, is an ordinary binade, so the largest finite
value is ``(2 - 2**-M) * 2**(2**E - 1 - bias)``.  Rounding is to nearest, ties to the even
code, and a value beyond the largest finite one saturates to it (sign kept).  The magnitude
codes ``0 .. 2**(E+M) - 1`` are in increasing order of value, which is what lets rounding
carry from the mantissa into the exponent (and from the subnormals into the smallest normal)
by a plain integer addition.

MPWN (mixed-precision weight networks) multiplies float activations by binary or ternary
weights without a multiplier, on the activation's bit pattern:

* :func:`xor_signed_bits`: ``out = x_bits XOR (w_bit << (width-1))``, binary bit 1 meaning
  ``-1`` (NUMERICS.md section 2);
* :func:`ternary_bitwise`: ``sign = sign(x) XOR w[1]``, magnitude ``x[width-2:0] AND w[0]``
  with the ternary codes ``00 = 0``, ``01 = +1``, ``11 = -1``.

It then picks a weight space per layer by the accuracy-sparsity-bit score
(:func:`asb_score`, bits per weight :data:`MPWN_BITS`).  :func:`recommend_exponent_bits` is
the range rule for the exponent width of reduced-precision float weights.

Everything here is pure numpy and exact: the encoder rounds in integer arithmetic on the
float64 bit pattern, never by float arithmetic.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

__all__ = [
    "MAX_ABS_BIAS",
    "MPWN_BITS",
    "MinifloatFormat",
    "asb_score",
    "bits_to_f32",
    "f32_to_bits",
    "recommend_exponent_bits",
    "ternary_bitwise",
    "xor_signed_bits",
]

#: Bits per weight of MPWN's three weight spaces (float is half precision).
MPWN_BITS = {"float": 16, "ternary": 2, "binary": 1}

#: Largest ``|bias|``: beyond it every nonzero float64 saturates (or rounds to zero) in every
#: format with at most 11 exponent and 52 mantissa bits, so larger biases are surely mistakes.
MAX_ABS_BIAS = 4096

_F64_FRAC_BITS = 52
_F64_FRAC_MASK = np.uint64((1 << _F64_FRAC_BITS) - 1)


def _check_int(value, name: str, lo: int, hi: int) -> int:
    """``value`` as a Python int in ``lo..hi``, else a ``ValueError`` quoting it."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, not {value!r}")
    v = int(value)
    if not lo <= v <= hi:
        raise ValueError(f"{name} must be {lo}..{hi}, not {v}")
    return v


def _first_index(mask: np.ndarray) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argwhere(mask)[0])


def _uint_dtype(width: int) -> type:
    """Smallest unsigned numpy integer type of at least ``width`` bits."""
    for t in (np.uint8, np.uint16, np.uint32, np.uint64):
        if width <= np.iinfo(t).bits:
            return t
    raise AssertionError(width)  # widths are validated to at most 64 before this


def _unsigned_codes(codes, width: int, name: str, what: str) -> np.ndarray:
    """``codes`` as a ``uint64`` array after checking ``0 <= codes < 2**width``."""
    c = np.asarray(codes)
    if c.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integers, not dtype {c.dtype}")
    lim = 1 << width
    bad = np.zeros(c.shape, dtype=bool)
    if c.dtype.kind == "i":
        bad |= c < 0
    if lim <= np.iinfo(c.dtype).max:  # else no value of this dtype can reach the limit
        bad |= c >= c.dtype.type(lim)
    if bad.any():
        first = _first_index(bad)
        raise ValueError(
            f"{int(bad.sum())} {name} value(s) out of range for {what} (0..{lim - 1}); first "
            f"is {int(c[first])} at index {first}")
    return c.astype(np.uint64)


def _check_width(width) -> int:
    return _check_int(width, "width", 2, 64)


# -- minifloat formats ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class MinifloatFormat:
    """A sign, exponent, mantissa float format without infinities or NaN.

    Parameters
    ----------
    exp_bits:
        Exponent width ``E``, ``1..11``.
    man_bits:
        Mantissa (fraction) width ``M``, ``0..52``.
    bias:
        Exponent bias, an integer with ``|bias| <= MAX_ABS_BIAS``; ``None`` means the default
        ``2**(E-1) - 1``.  After construction the member always holds the integer.

    Notes
    -----
    A format whose values are not all float64 numbers (:attr:`fits_float64` false, e.g.
    ``E11M52`` with the default bias, whose all-ones exponent binade lies beyond the float64
    range) still encodes exactly; only :meth:`decode` and the float properties then round to
    float64 (to ``±inf`` above its range, to a float64 subnormal or zero below it).

    Raises
    ------
    ValueError
        For a width or bias that is not an integer or lies outside its range.
    """

    exp_bits: int
    man_bits: int
    bias: int | None = None

    def __post_init__(self):
        e = _check_int(self.exp_bits, "exp_bits", 1, 11)
        m = _check_int(self.man_bits, "man_bits", 0, 52)
        b = (1 << (e - 1)) - 1 if self.bias is None else _check_int(
            self.bias, "bias", -MAX_ABS_BIAS, MAX_ABS_BIAS)
        object.__setattr__(self, "exp_bits", e)
        object.__setattr__(self, "man_bits", m)
        object.__setattr__(self, "bias", b)

    # -- names and sizes --------------------------------------------------------------------

    @property
    def width(self) -> int:
        """Code width ``1 + E + M`` in bits."""
        return 1 + self.exp_bits + self.man_bits

    @property
    def default_bias(self) -> int:
        """``2**(E-1) - 1``."""
        return (1 << (self.exp_bits - 1)) - 1

    @property
    def name(self) -> str:
        """``"E5M4"``, with ``"b<bias>"`` appended for a non-default bias (``"E4M3b9"``)."""
        base = f"E{self.exp_bits}M{self.man_bits}"
        return base if self.bias == self.default_bias else f"{base}b{self.bias}"

    def __str__(self) -> str:
        return self.name

    @property
    def max_code(self) -> int:
        """Largest magnitude code ``2**(E+M) - 1`` (the largest finite value)."""
        return (1 << (self.exp_bits + self.man_bits)) - 1

    @property
    def emax(self) -> int:
        """Unbiased exponent of the top binade, ``2**E - 1 - bias`` (all-ones is normal)."""
        return (1 << self.exp_bits) - 1 - self.bias

    @property
    def emin(self) -> int:
        """Unbiased exponent of the smallest normal, ``1 - bias`` (also the subnormals')."""
        return 1 - self.bias

    @property
    def fits_float64(self) -> bool:
        """Whether every value of the format is exactly a finite float64.

        True when ``emax <= 1023`` and the smallest subnormal ``2**(emin - M)`` is at least
        ``2**-1074``; every format of up to 32 bits with the default bias fits.
        """
        return self.emax <= 1023 and self.emin - self.man_bits >= -1074

    @property
    def max_finite(self) -> float:
        """Largest value ``(2**(M+1) - 1) * 2**(emax - M)`` (``inf`` if beyond float64)."""
        return _ldexp((1 << (self.man_bits + 1)) - 1, self.emax - self.man_bits)

    @property
    def min_normal(self) -> float:
        """Smallest positive normal value ``2**emin``."""
        return _ldexp(1, self.emin)

    @property
    def min_subnormal(self) -> float:
        """Smallest positive value ``2**(emin - M)`` (``min_normal`` when ``M = 0``)."""
        return _ldexp(1, self.emin - self.man_bits)

    # -- codec ------------------------------------------------------------------------------

    def encode(self, x) -> np.ndarray:
        """Float values → codes, rounding exactly to nearest, ties to the even code.

        Parameters
        ----------
        x : array_like of float
            Values, converted to float64 first.

        Returns
        -------
        numpy.ndarray of uint64, shape of ``x``
            ``sign << (E+M) | exp << M | man``.  A value exactly halfway between two
            neighbours goes to the one with the even code: the even mantissa LSB when
            ``M >= 1``; with ``M = 0`` the even exponent field, as rounding the packed
            exponent-mantissa field in hardware gives.  Rounding carries into the next binade
            and from the subnormals into the smallest normal.  Values beyond
            :attr:`max_finite`, and ``±inf``, saturate to ``±max_finite``.  The sign bit is
            the float's sign bit, so ``-0.0`` and negative values that round to zero encode
            as ``1 << (E+M)`` (negative zero).

        Raises
        ------
        ValueError
            If ``x`` holds NaN (the message gives how many and the first index).
        """
        xa = np.asarray(x, dtype=np.float64)
        nan = np.isnan(xa)
        if nan.any():
            raise ValueError(f"cannot encode NaN: x contains {int(nan.sum())} NaN value(s); "
                             f"first at index {_first_index(nan)}")
        e_bits, m_bits, bias = self.exp_bits, self.man_bits, self.bias
        bits = xa.view(np.uint64)
        sign = bits >> np.uint64(63)
        f64_exp = ((bits >> np.uint64(_F64_FRAC_BITS)) & np.uint64(0x7FF)).astype(np.int64)
        frac = bits & _F64_FRAC_MASK
        # |x| = sig * 2**q exactly, sig < 2**53 (float64 normals carry the hidden bit).
        normal64 = f64_exp != 0
        sig = np.where(normal64, frac | np.uint64(1 << _F64_FRAC_BITS), frac)
        q = np.where(normal64, f64_exp - 1075, -1074)
        absx = np.abs(xa)
        finite_nz = np.isfinite(absx) & (absx != 0)
        t = np.frexp(np.where(finite_nz, absx, 1.0))[1].astype(np.int64) - 1  # floor(log2|x|)
        # Biased exponent of the binade that holds |x| (1 for the subnormals), the quantum
        # 2**qe of that binade, and the magnitude code of the value rounded down to it:
        # code = ((eb - 1) << M) + floor(|x| / 2**qe), monotone across binades.
        eb = np.maximum(t + bias, 1)
        overflow = np.isinf(absx) | (finite_nz & (eb > (1 << e_bits) - 1))
        qe = eb - bias - m_bits
        up = np.clip(q - qe, 0, 63).astype(np.uint64)  # exact: the result is below 2**(M+1)
        down = np.clip(qe - q, 0, 60).astype(np.uint64)  # 60: sig < 2**53 rounds to 0
        shifted = q >= qe
        n = np.where(shifted, sig << up, sig >> down)
        rem = sig & ((np.uint64(1) << down) - np.uint64(1))
        half = (np.uint64(1) << down) >> np.uint64(1)
        code = ((eb - 1).astype(np.uint64) << np.uint64(m_bits)) + n
        odd = (code & np.uint64(1)).astype(bool)
        round_up = ~shifted & ((rem > half) | ((rem == half) & odd))
        code = code + round_up.astype(np.uint64)
        code = np.where(finite_nz, code, np.uint64(0))
        max_code = np.uint64(self.max_code)
        code = np.where(overflow | (code > max_code), max_code, code)
        return (sign << np.uint64(e_bits + m_bits)) | code

    def decode(self, codes) -> np.ndarray:
        """Codes → float64 values (exact whenever :attr:`fits_float64`).

        Parameters
        ----------
        codes : array_like of int
            Codes ``0 .. 2**width - 1``.  The negative-zero code ``1 << (E+M)`` decodes to
            ``-0.0``.

        Raises
        ------
        ValueError
            For a non-integer dtype or a code outside ``0 .. 2**width - 1`` (the message
            gives how many, the first one and its index).
        """
        c = _unsigned_codes(codes, self.width, "code", f"{self.name} (width {self.width})")
        m_bits = self.man_bits
        sign = (c >> np.uint64(self.exp_bits + m_bits)).astype(bool)
        exp = ((c >> np.uint64(m_bits)) & np.uint64((1 << self.exp_bits) - 1)).astype(np.int64)
        man = (c & np.uint64((1 << m_bits) - 1)).astype(np.int64)
        sig = np.where(exp == 0, man, man + (1 << m_bits))  # < 2**53: exact in float64
        scale = np.maximum(exp, 1) - self.bias - m_bits
        with np.errstate(over="ignore"):  # only formats that do not fit float64 overflow
            mag = np.ldexp(sig.astype(np.float64), scale.astype(np.int32))
        return np.where(sign, -mag, mag)

    def quantize(self, x) -> np.ndarray:
        """``decode(encode(x))``: ``x`` rounded to the format, as float64."""
        return self.decode(self.encode(x))


def _ldexp(m: int, e: int) -> float:
    """``m * 2**e`` as a float, ``inf`` when it overflows float64 (``m`` below ``2**53``)."""
    try:
        return math.ldexp(float(m), e)
    except OverflowError:
        return math.inf


# -- MPWN: float activations times binary and ternary weights ---------------------------------


def f32_to_bits(x) -> np.ndarray:
    """The IEEE-754 binary32 bit patterns of ``x`` (a ``uint32`` view).

    ``x`` is converted to float32 first: float64 input is rounded to nearest even, and values
    beyond the float32 range become ``±inf`` (no warning).
    """
    with np.errstate(over="ignore"):
        return np.asarray(x, dtype=np.float32).view(np.uint32)


def bits_to_f32(bits) -> np.ndarray:
    """Bit patterns ``0 .. 2**32 - 1`` → float32 values (a view; NaN payloads are kept).

    Raises
    ------
    ValueError
        For a non-integer dtype or a value outside ``0 .. 2**32 - 1``.
    """
    return _unsigned_codes(bits, 32, "bits", "float32").astype(np.uint32).view(np.float32)


def xor_signed_bits(x_bits, w_bits, width: int = 32) -> np.ndarray:
    """Float activation times binary weight: flip the sign bit where the weight is ``-1``.

    ``out = x_bits XOR (w_bit << (width - 1))``.  Polarity as in NUMERICS.md section 2: weight
    bit ``1`` means ``w = -1``, bit ``0`` means ``w = +1``.  This is IEEE-754 negation, so it
    equals the float product ``x * w`` for every non-NaN ``x`` (zeros and infinities
    included); for NaN it flips the sign bit, which IEEE multiplication leaves unspecified.

    Parameters
    ----------
    x_bits : array_like of int
        Float bit patterns of ``width`` bits, sign bit on top (see :func:`f32_to_bits`).
    w_bits : array_like of int or bool
        Binary weight codes, 0 or 1; broadcast against ``x_bits``.
    width : int
        Float width in bits, ``2..64`` (32 for binary32).

    Returns
    -------
    numpy.ndarray
        Bit patterns in the smallest unsigned type of ``width`` bits (``uint32`` for 32).

    Raises
    ------
    ValueError
        For a bad width, a bit pattern outside ``0 .. 2**width - 1`` or a weight bit that is
        not 0 or 1.
    """
    width = _check_width(width)
    x = _unsigned_codes(x_bits, width, "x_bits", f"width {width}")
    w = np.asarray(w_bits)
    if w.dtype.kind == "b":
        w = w.astype(np.uint8)
    w = _unsigned_codes(w, 1, "w_bits", "binary weight bits")
    return (x ^ (w << np.uint64(width - 1))).astype(_uint_dtype(width))


def ternary_bitwise(x_bits, w_codes, width: int = 32) -> np.ndarray:
    """Float activation times ternary weight, on the bit pattern (no multiplier).

    With the ternary codes of NUMERICS.md section 2 (``00 = 0``, ``01 = +1``, ``11 = -1``;
    ``w[1]`` is the sign bit and ``w[0]`` the nonzero bit)::

        sign      = x[width-1] XOR w[1]
        magnitude = x[width-2:0] AND (w[0] replicated)

    So ``+1`` passes ``x``, ``-1`` flips its sign, and ``0`` clears the magnitude but keeps
    the sign of ``x``: weight 0 gives ``+0.0`` for positive ``x`` and ``-0.0`` for negative
    ``x`` (NUMERICS.md: -2.5 times 0 gives 0x80000000).  That is exactly the IEEE-754 product
    ``x * w`` with the weight 0 as ``+0.0`` for every finite ``x``; it differs from IEEE only
    for non-finite ``x`` (``±inf * 0`` gives ``±0`` here, not NaN) and in NaN signs.

    Parameters
    ----------
    x_bits : array_like of int
        Float bit patterns of ``width`` bits, sign bit on top (see :func:`f32_to_bits`).
    w_codes : array_like of int
        Ternary codes 0, 1 or 3, broadcast against ``x_bits``; code 2 (``10``) is unused and
        rejected, as by the ternary weight scheme.
    width : int
        Float width in bits, ``2..64``.

    Returns
    -------
    numpy.ndarray
        Bit patterns in the smallest unsigned type of ``width`` bits (``uint32`` for 32).

    Raises
    ------
    ValueError
        For a bad width, a bit pattern outside ``0 .. 2**width - 1`` or a weight code that is
        not 0, 1 or 3.
    """
    width = _check_width(width)
    x = _unsigned_codes(x_bits, width, "x_bits", f"width {width}")
    w = _unsigned_codes(w_codes, 2, "w_codes", "ternary weight codes")
    unused = w == np.uint64(2)
    if unused.any():
        raise ValueError(
            f"ternary weight code 2 (0b10) is unused: {int(unused.sum())} found, first at "
            f"index {_first_index(unused)}; valid codes are 0b00 = 0, 0b01 = +1, 0b11 = -1")
    top = np.uint64(width - 1)
    mag_mask = np.uint64((1 << (width - 1)) - 1)
    sign = ((x >> top) ^ (w >> np.uint64(1))) & np.uint64(1)
    nonzero = w & np.uint64(1)
    mag = x & (mag_mask * nonzero)  # w[0] replicated over the magnitude bits
    return ((sign << top) | mag).astype(_uint_dtype(width))


# -- choosing formats and weight spaces -------------------------------------------------------


def _floor_log2(v: float) -> int:
    """``floor(log2 v)`` for a positive finite float, exactly (``frexp``, not ``log2``)."""
    return math.frexp(v)[1] - 1


def recommend_exponent_bits(w, min_magnitude: float | None = None,
                            reserve_zero: bool = True) -> int:
    """Exponent width that spans the binades of a weight tensor (NUMERICS.md section 5).

    ``E = ceil(log2(e_max - e_min + 1 + z))``, at least 1, with ``e_max = floor(log2 max|w|)``,
    ``e_min = floor(log2 m)`` for ``m`` the smallest magnitude that must survive, and
    ``z = 1`` when a code is reserved for zero and the subnormals.  The rule counts binades
    only; the bias that places them is chosen separately.

    Parameters
    ----------
    w : array_like of float
        Finite weights with at least one nonzero.
    min_magnitude : float, optional
        The smallest magnitude that must survive; default the smallest nonzero ``|w|``.
        It must be positive, finite and at most ``max|w|``.
    reserve_zero : bool
        Whether to count one exponent code for zero (``z``).

    Raises
    ------
    ValueError
        For an empty tensor, NaN or infinite weights, all-zero weights, or a bad
        ``min_magnitude``.
    """
    a = np.abs(np.asarray(w, dtype=np.float64))
    if a.size == 0:
        raise ValueError("w is empty: cannot recommend an exponent width")
    if not np.isfinite(a).all():
        raise ValueError(f"w contains {int(np.count_nonzero(~np.isfinite(a)))} NaN or "
                         "infinite value(s)")
    nz = a[a != 0]
    if nz.size == 0:
        raise ValueError("w has no nonzero weight: its exponent range is undefined")
    top = float(nz.max())
    if min_magnitude is None:
        bottom = float(nz.min())
    else:
        bottom = float(min_magnitude)
        if not (math.isfinite(bottom) and 0 < bottom <= top):
            raise ValueError(f"min_magnitude must be positive, finite and at most max|w| = "
                             f"{top!r}, not {min_magnitude!r}")
    count = _floor_log2(top) - _floor_log2(bottom) + 1 + (1 if reserve_zero else 0)
    return max(1, (count - 1).bit_length())  # ceil(log2(count)) for count >= 1


def asb_score(accuracy, sparsity, bits, max_bits):
    """MPWN's accuracy-sparsity-bit score ``(acc + sparsity + (1 - bits/max_bits)) / 3``.

    Parameters
    ----------
    accuracy : float or array_like
        Accuracy as a fraction, ``0..1``.
    sparsity : float or array_like
        Fraction of weights that are exactly zero, ``0..1``.
    bits : float or array_like
        Weight bits of the candidate, ``0..max_bits`` (a sum of :data:`MPWN_BITS` per
        weight).
    max_bits : float or array_like
        Weight bits of the all-float model, positive.

    Returns
    -------
    float, or numpy.ndarray of float64 when any argument is an array (broadcast).

    Raises
    ------
    ValueError
        For a NaN argument or one outside its range (the message names it).
    """
    args = {name: np.asarray(v, dtype=np.float64) for name, v in (
        ("accuracy", accuracy), ("sparsity", sparsity), ("bits", bits), ("max_bits", max_bits))}
    for name in ("accuracy", "sparsity"):
        v = args[name]
        if not ((v >= 0) & (v <= 1)).all():
            raise ValueError(f"{name} must be a fraction in 0..1, not {v.tolist()!r}")
    mb = args["max_bits"]
    if not ((mb > 0) & np.isfinite(mb)).all():
        raise ValueError(f"max_bits must be positive and finite, not {mb.tolist()!r}")
    b = args["bits"]
    if not ((b >= 0) & (b <= mb)).all():
        raise ValueError(f"bits must be in 0..max_bits, not bits={b.tolist()!r} "
                         f"with max_bits={mb.tolist()!r}")
    score = (args["accuracy"] + args["sparsity"] + (1 - b / mb)) / 3
    return float(score) if score.ndim == 0 else score
