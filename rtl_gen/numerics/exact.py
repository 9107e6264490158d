"""The "exact sum, rounded once" float accumulation contract (NUMERICS.md section 5).

A float layer on this contract computes each output ``j`` of one image as::

    y_j = fp32_RNE( 2**a_j * ( T(bias_j * 2**-a_j) + sum_k T(x_k * w_jk) ) )

* ``2**a_j`` is the layer's per-output scale ``alpha_j``, which must be a power of two
  (``a_j = 0`` for float and minifloat layers, which have no scale); it becomes an offset
  of the result's exponent, never a multiplication.
* ``T`` puts one exact real number into the *window* :class:`ExactWindow` ``(lsb, msb)``:
  a fixed-point grid of step ``2**lsb`` whose largest magnitude is below ``2**(msb + 1)``
  (``width = msb - lsb + 1`` bits of magnitude, default ``2**-32 .. 2**16``, 48 bits):

  - **underflow (flush)**: the magnitude is truncated toward zero to a multiple of
    ``2**lsb``, the sign applied afterwards (``T(-3 * 2**-33) = -2**-32``); a term below
    ``2**lsb`` contributes 0.  Every term is truncated on its own, so the sum does not
    depend on the order of the terms;
  - **overflow (saturation to infinity)**: a term of magnitude ``>= 2**(msb + 1)``, or an
    infinite one, contributes nothing to the sum and raises the output's ``+inf`` or
    ``-inf`` flag (by its sign); a NaN activation raises both;
  - **skip**: a zero weight (ternary ``0``, a minifloat or fp32 ``±0``) contributes
    nothing and raises no flag, whatever the activation (``inf * 0`` and ``NaN * 0`` are 0).

* The terms are the exact products: ``±x`` for binary and ternary weights, ``x * w`` with
  the full ``24 + 24``-bit (fp32 weight) or ``24 + M + 1``-bit (minifloat) significand
  product.  A term is held exactly when its lowest set bit is at least ``2**lsb`` and its
  magnitude below ``2**(msb + 1)``: with the default window, every binary or ternary product
  of an fp32 activation in ``[2**-9, 2**16)`` (the 24-bit significand spans ``2**-32`` up).
* The sum is an exact integer (in units of ``2**lsb``): no rounding, no overflow (the
  accumulator has :meth:`ExactWindow.acc_bits` bits), hence independent of order.
* It is rounded once to fp32, to nearest, ties to even, with subnormals, and ``±inf``
  beyond the largest finite value.  An exactly zero sum is ``+0``.  Flags decide first:
  both flags give the canonical NaN ``0xFFC00000``; only the ``+inf`` flag ``+inf``
  (``0x7F800000``); only the ``-inf`` flag ``-inf`` (``0xFF800000``).

Hidden layers then apply ReLU on the sign bit (NaN, with its sign bit set, gives ``+0``),
as in the sequential contract.

This module is the model of the hardware's parts: :func:`align_fp32` is the shared
aligner (an fp32 activation to sign, window magnitude and flags), :func:`round_fixed` the
shared normaliser (a window sum and an exponent offset to fp32).  Everything is exact numpy
integer arithmetic (``int64``, or Python integers in object arrays where a sum needs more
than 63 bits).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .floatops import BINARY32, FloatFormat, _round_pack, _unpack
from .minifloat import _check_int

__all__ = [
    "ACCUMULATIONS",
    "DEFAULT_WINDOW",
    "ExactWindow",
    "align_fp32",
    "exact_sum",
    "pot_exponent",
    "product_terms",
    "round_fixed",
    "terms",
    "unpack",
]

#: The float accumulation contracts a network can name.
ACCUMULATIONS = ("sequential", "exact")

#: Widest window: a term's magnitude fits ``int64`` with room for a sign.
MAX_WIDTH = 62

#: Largest magnitude bits of a sum computed in ``int64`` (shifts stay below 63).
_INT64_MAG = 61

#: Canonical NaN, ``+inf`` and ``-inf`` of fp32.
NAN32, PINF32, NINF32 = 0xFFC00000, 0x7F800000, 0xFF800000


@dataclasses.dataclass(frozen=True)
class ExactWindow:
    """The fixed-point window of the exact contract: step ``2**lsb``, magnitudes below
    ``2**(msb + 1)``.

    Raises
    ------
    ValueError
        For bounds that are not integers in ``-400 .. 400``, ``msb < lsb``, or a width above
        :data:`MAX_WIDTH`.
    """

    lsb: int = -32
    msb: int = 15

    def __post_init__(self):
        lsb = _check_int(self.lsb, "window lsb", -400, 400)
        msb = _check_int(self.msb, "window msb", -400, 400)
        if not 1 <= msb - lsb + 1 <= MAX_WIDTH:
            raise ValueError(f"window msb - lsb + 1 must be 1..{MAX_WIDTH} bits, not "
                             f"{msb - lsb + 1} (lsb {lsb}, msb {msb})")
        object.__setattr__(self, "lsb", lsb)
        object.__setattr__(self, "msb", msb)

    @property
    def width(self) -> int:
        """Magnitude bits of one term: ``msb - lsb + 1``."""
        return self.msb - self.lsb + 1

    def acc_bits(self, terms: int) -> int:
        """Two's complement bits that hold any sum of ``terms`` window terms exactly:
        ``width + ceil(log2 terms) + 1`` (``|sum| <= terms * (2**width - 1)``)."""
        return self.width + (max(int(terms), 1) - 1).bit_length() + 1

    def to_json(self) -> dict:
        return {"lsb": self.lsb, "msb": self.msb}


#: The default window, ``2**-32 .. 2**16`` (48 bits).
DEFAULT_WINDOW = ExactWindow()


def unpack(codes, fmt: FloatFormat = BINARY32):
    """``(sign, sig, q, inf, nan)`` of float codes, ``|value| = sig * 2**q`` when finite
    (``int64``; ``sig`` carries the hidden bit)."""
    c = np.asarray(codes).astype(np.uint64)
    return _unpack(c, fmt)


def _bit_length(n: np.ndarray) -> np.ndarray:
    """``int.bit_length`` of nonnegative ``int64`` values below ``2**62``."""
    length = np.zeros(n.shape, dtype=np.int64)
    for step in (32, 16, 8, 4, 2, 1):
        hi = n >> step
        found = hi != 0
        n = np.where(found, hi, n)
        length += np.where(found, step, 0)
    return length + (n != 0)


def terms(sign, sig, q, inf, nan, window: ExactWindow):
    """Put exact values ``(-1)**sign * sig * 2**q`` into the window (rule ``T``).

    Parameters
    ----------
    sign, sig, q : array_like of int
        Sign bits, significands (``0 <= sig < 2**62``) and exponents, broadcast together.
    inf, nan : array_like of bool
        Infinite and NaN values (their ``sig`` is ignored).

    Returns
    -------
    (neg, mag, pinf, ninf)
        ``mag`` (``int64``, ``< 2**width``) the magnitude truncated to the window (0 for a
        flagged term), ``neg`` its sign, ``pinf``/``ninf`` the overflow flags.
    """
    sign, sig, q, inf, nan = np.broadcast_arrays(
        np.asarray(sign, np.int64), np.asarray(sig, np.int64), np.asarray(q, np.int64),
        np.asarray(inf, bool), np.asarray(nan, bool))
    sig = np.where(inf | nan, 0, sig)
    top = q + _bit_length(sig) - 1  # exponent of the leading bit
    big = inf | ((sig != 0) & (top > window.msb))
    sh = q - window.lsb
    left = np.where(big, 0, np.clip(sh, 0, 62))
    right = np.clip(-sh, 0, 63)
    mag = np.where(sh >= 0, sig << left, sig >> right)
    mag = np.where(big | nan, 0, mag)
    neg = sign != 0
    return neg, mag, (big & ~neg) | nan, (big & neg) | nan


def align_fp32(x_bits, window: ExactWindow):
    """The aligner: fp32 activations to ``(sign, mag, big, nan)``.

    ``mag`` is ``T(|x|)`` in units of ``2**lsb`` (0 when ``big`` or ``nan``); ``big`` is
    set for ``|x| >= 2**(msb + 1)`` and for ``±inf``; ``nan`` for every NaN pattern.
    """
    sign, sig, q, inf, nan = unpack(x_bits)
    _, mag, pinf, ninf = terms(sign, sig, q, inf, nan, window)
    return sign.astype(np.int64), mag, (pinf | ninf) & ~nan, nan


def product_terms(x_bits, w_codes, w_fmt: FloatFormat, window: ExactWindow):
    """The lanes of float and minifloat weights: ``T(x * w)`` of fp32 activations and weight
    codes of ``w_fmt`` (finite), as ``(sign, mag, big, nan)`` like :func:`align_fp32`.

    A zero weight skips: ``mag``, ``big`` and ``nan`` are 0 whatever ``x`` is.
    """
    sx, sigx, qx, infx, nanx = unpack(x_bits)
    sw, sigw, qw, _, _ = unpack(w_codes, w_fmt)
    skip = sigw == 0
    neg, mag, pinf, ninf = terms(sx ^ sw, sigx * sigw, qx + qw, infx & ~skip, nanx & ~skip,
                                 window)
    nan = nanx & ~skip
    return (sx ^ sw).astype(np.int64), mag, (pinf | ninf) & ~nan, nan


def exact_sum(neg, mag, pinf, ninf, axis: int = -1):
    """The exact sum along ``axis`` of window terms and their flags.

    Returns ``(n, pinf, ninf)``; ``n`` is ``int64`` when every sum fits 61 magnitude bits, else an
    object array of Python integers.
    """
    mag = np.asarray(mag, np.int64)
    count = mag.shape[axis]
    widest = int(mag.max(initial=0)).bit_length()
    if widest + (max(count, 1) - 1).bit_length() > _INT64_MAG:
        mag = mag.astype(object)
    n = np.where(neg, -mag, mag).sum(axis=axis)
    return n, np.any(pinf, axis=axis), np.any(ninf, axis=axis)


def round_fixed(n, exp, pinf=False, ninf=False) -> np.ndarray:
    """The normaliser: ``n * 2**exp`` (integers ``n``, ``exp``) rounded once to fp32.

    Round to nearest, ties to even, subnormals kept, ``±inf`` beyond the largest finite
    value, ``+0`` for ``n = 0``; then the flags: both give ``0xFFC00000``, ``pinf`` alone
    ``0x7F800000``, ``ninf`` alone ``0xFF800000``.  Returns ``uint32`` codes.
    """
    n = np.asarray(n)
    if n.dtype != object:
        n = n.astype(np.int64)
    n, exp, pinf, ninf = np.broadcast_arrays(n, np.asarray(exp, np.int64),
                                             np.asarray(pinf, bool), np.asarray(ninf, bool))
    sign = (n < 0).astype(np.int64)
    mag = np.where(sign != 0, -n, n)
    bits = max([int(v).bit_length() for v in mag.ravel()] + [1]) if mag.dtype == object \
        else 63
    if bits <= _INT64_MAG or int(mag.max(initial=0)).bit_length() <= _INT64_MAG:
        mag, bits = mag.astype(np.int64), _INT64_MAG
    code = _round_pack(sign, mag, exp, np.zeros(mag.shape, bool), bits, BINARY32)
    code = code.astype(np.uint64)
    code = np.where(pinf & ninf, np.uint64(NAN32),
                    np.where(pinf, np.uint64(PINF32),
                             np.where(ninf, np.uint64(NINF32), code)))
    return code.astype(np.uint32)


def pot_exponent(scale_bits) -> np.ndarray:
    """``a`` with ``alpha = 2**a`` for fp32 scales that are powers of two (``int64``).

    Raises
    ------
    ValueError
        For a scale that is not a positive finite power of two (naming the first one).
    """
    sign, sig, q, inf, nan = unpack(scale_bits)
    ok = (sign == 0) & ~inf & ~nan & (sig != 0) & ((sig & (sig - 1)) == 0)
    if not ok.all():
        first = tuple(int(i) for i in np.argwhere(~ok)[0])
        bits = int(np.asarray(scale_bits)[first])
        raise ValueError(f"{int((~ok).sum())} scale(s) are not positive powers of two, "
                         f"first {bits:#010x} at index {first}: the exact contract folds "
                         "alpha into the exponent")
    return q + _bit_length(sig) - 1
