"""Binary decomposition into bit planes (EBS, NUMERICS.md section 6).

An integer of ``b`` bits is the weighted sum of its bit planes, ``q = sum_m c[m] * bit_m(q)``
with ``c[m] = 2**m``, except that the MSB plane of a two's complement value carries
``c[b-1] = -2**(b-1)``.  A dot product then becomes ``M * K`` binary dot products, each an AND
and a popcount::

    w . x = sum_{m<M} sum_{k<K} cw[m] * cx[k] * popcount(W_m AND X_k)

so one bit-plane array serves every precision, chosen at run time, at ``M * K`` steps.  With
binary weights used as ±1 (plane bit 1 means +1, 0 means -1) a data plane contributes
``2 * popcount(C AND X_k) - popcount(X_k)``.

Everything is pure numpy and exact in ``int64``.  Bit planes are ``uint8`` arrays of 0 and 1;
the popcounts pack them into 64-bit words and count the ones of their AND.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "MAX_BITS",
    "and_popcount",
    "bit_planes",
    "bitplane_dot",
    "bitplane_steps",
    "plane_weights",
    "pm1_plane_dot",
]

#: Largest width of a value decomposed into planes (its planes' weights fit ``int64``).
MAX_BITS = 62

_POPCOUNT8 = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def _check_bits(bits, name: str = "bits") -> int:
    if isinstance(bits, (bool, np.bool_)) or not isinstance(bits, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, not {bits!r}")
    if not 1 <= int(bits) <= MAX_BITS:
        raise ValueError(f"{name} must be 1..{MAX_BITS}, not {int(bits)}")
    return int(bits)


def _range(bits: int, signed: bool) -> tuple[int, int]:
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


def bit_planes(q, bits: int, signed: bool) -> np.ndarray:
    """Bit planes of integers.

    Parameters
    ----------
    q : array_like of int
        Values in ``[-2**(bits-1), 2**(bits-1) - 1]`` when ``signed``, else ``[0, 2**bits - 1]``.
    bits : int
        Width ``1..MAX_BITS``.
    signed : bool
        Two's complement (True) or unsigned (False) pattern.

    Returns
    -------
    numpy.ndarray of uint8, shape ``(bits,) + q.shape``
        Plane ``m`` is bit ``m`` of each value's ``bits``-bit pattern, so
        ``q == sum_m plane_weights(bits, signed)[m] * planes[m]``.

    Raises
    ------
    ValueError
        For a bad width, a non-integer dtype, or a value out of range (quoted in the message).
    """
    bits = _check_bits(bits)
    arr = np.asarray(q)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"values must be integers, not dtype {arr.dtype}")
    lo, hi = _range(bits, bool(signed))
    bad = (arr > hi) | (arr < lo) if arr.dtype.kind == "i" else arr > hi
    if bad.any():
        kind = "signed" if signed else "unsigned"
        raise ValueError(
            f"value {int(arr[bad].flat[0])} is out of range for {bits}-bit {kind} planes "
            f"({lo}..{hi})")
    arr = arr.astype(np.int64, copy=False)
    shifts = np.arange(bits, dtype=np.int64).reshape((bits,) + (1,) * arr.ndim)
    return ((arr[None] >> shifts) & 1).astype(np.uint8)


def plane_weights(bits: int, signed: bool) -> np.ndarray:
    """Coefficients of the bit planes: ``int64`` ``[1, 2, 4, ..., ±2**(bits-1)]``.

    The last is ``-2**(bits-1)`` when ``signed`` (two's complement MSB), ``+2**(bits-1)``
    otherwise.
    """
    bits = _check_bits(bits)
    c = np.left_shift(np.int64(1), np.arange(bits, dtype=np.int64))
    if signed:
        c[-1] = -c[-1]
    return c


def bitplane_steps(w_bits: int, x_bits: int) -> int:
    """Number of binary (AND + popcount) steps of a bit-plane dot product: ``M * K``."""
    return _check_bits(w_bits, "w_bits") * _check_bits(x_bits, "x_bits")


def _pack(planes: np.ndarray) -> np.ndarray:
    """0/1 planes ``(..., N)`` packed along the last axis into ``uint64`` words."""
    p = np.packbits(planes, axis=-1)
    pad = -p.shape[-1] % 8
    if pad:
        p = np.concatenate([p, np.zeros(p.shape[:-1] + (pad,), np.uint8)], axis=-1)
    return np.ascontiguousarray(p).view(np.uint64)


def _popcount_sum(words: np.ndarray) -> np.ndarray:
    """Total of the ones in the ``uint64`` words of the last axis, ``int64``."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(words).sum(axis=-1, dtype=np.int64)
    return _POPCOUNT8[words.view(np.uint8)].sum(axis=-1, dtype=np.int64)  # numpy < 2.0


def _and_popcount_packed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``popcount(a AND b)`` of packed words; ``b`` is ``(W,)`` or ``(O, W)``."""
    if b.ndim == 1:
        return _popcount_sum(a & b)
    return _popcount_sum(a[..., None, :] & b)


def _check_planes(p, name: str) -> np.ndarray:
    arr = np.asarray(p)
    if arr.dtype.kind not in "biu" or ((arr != 0) & (arr != 1)).any():
        raise ValueError(f"{name} must be a bit plane of 0s and 1s")
    return arr.astype(np.uint8, copy=False)


def _check_shapes(x: np.ndarray, w: np.ndarray, wname: str = "w") -> None:
    if x.ndim < 1 or w.ndim not in (1, 2) or x.shape[-1] != w.shape[-1]:
        raise ValueError(
            f"x must be (..., N) and {wname} (N,) or (O, N) with the same N, not shapes "
            f"{x.shape} and {w.shape}")


def and_popcount(a, b) -> np.ndarray:
    """``popcount(a AND b)`` of 0/1 bit planes along the last axis, broadcast like ``a @ b.T``.

    ``a`` is ``(..., N)`` and ``b`` is ``(N,)`` or ``(O, N)``; the result (``int64``) has shape
    ``a.shape[:-1]`` or ``a.shape[:-1] + (O,)``.  Raises ``ValueError`` for entries other than
    0 and 1 or mismatched shapes.
    """
    a, b = _check_planes(a, "a"), _check_planes(b, "b")
    _check_shapes(a, b, "b")
    return _and_popcount_packed(_pack(a), _pack(b))


def _check_overflow(n: int, x_bits: int, w_bits: int) -> None:
    # |x . w| and every partial sum of the plane products are below n * 2**(x_bits + w_bits)
    if x_bits + w_bits + max(n, 1).bit_length() > 63:
        raise ValueError(
            f"a dot product of {n} values of {x_bits} and {w_bits} bits may overflow int64")


def bitplane_dot(x, w, *, x_bits: int, x_signed: bool, w_bits: int,
                 w_signed: bool) -> np.ndarray:
    """Dot product along the last axis from bit planes only (AND + popcount).

    ``sum_m sum_k cw[m] * cx[k] * popcount(W_m AND X_k)``, with ``cw``/``cx`` the
    :func:`plane_weights` of the two operands; equal to ``x @ w.T`` exactly.

    Parameters
    ----------
    x : array_like of int, shape ``(..., N)``
        Data of ``x_bits`` bits, two's complement when ``x_signed``.
    w : array_like of int, shape ``(N,)`` or ``(O, N)``
        Weights of ``w_bits`` bits, two's complement when ``w_signed``.

    Returns
    -------
    numpy.ndarray of int64
        Shape ``x.shape[:-1]`` (1-D ``w``) or ``x.shape[:-1] + (O,)`` (2-D ``w``).

    Raises
    ------
    ValueError
        For mismatched shapes, a value out of its range, or a result that could overflow
        ``int64``.
    """
    xa, wa = np.asarray(x), np.asarray(w)
    _check_shapes(xa, wa)
    x_bits, w_bits = _check_bits(x_bits, "x_bits"), _check_bits(w_bits, "w_bits")
    _check_overflow(xa.shape[-1], x_bits, w_bits)
    xp = _pack(bit_planes(xa, x_bits, x_signed))
    wp = _pack(bit_planes(wa, w_bits, w_signed))
    cx, cw = plane_weights(x_bits, x_signed), plane_weights(w_bits, w_signed)
    acc = np.zeros(xa.shape[:-1] + wa.shape[:-1], dtype=np.int64)
    for m in range(w_bits):
        for k in range(x_bits):
            acc += cw[m] * cx[k] * _and_popcount_packed(xp[k], wp[m])
    return acc


def pm1_plane_dot(x, c, *, x_bits: int, x_signed: bool) -> np.ndarray:
    """Dot product of integers with ±1 weights given as one bit plane ``c``.

    Plane bit 1 means +1 and 0 means -1 (weights ``2 * c - 1``; note that this is the
    opposite of the stored binary weight code of NUMERICS.md section 2, where 1 means -1:
    pass ``c = 1 - code``).  Each data plane ``X_k`` contributes
    ``2 * popcount(C AND X_k) - popcount(X_k)``, weighted by the plane's coefficient
    (``2**k``, the MSB ``-2**(K-1)`` for two's complement data)::

        sum_k cx[k] * (2 * popcount(C AND X_k) - popcount(X_k)) == x @ (2 * c - 1).T

    Parameters
    ----------
    x : array_like of int, shape ``(..., N)``
        Data of ``x_bits`` bits, two's complement when ``x_signed``.
    c : array_like of 0/1, shape ``(N,)`` or ``(O, N)``
        The weight plane.

    Returns
    -------
    numpy.ndarray of int64
        Shape ``x.shape[:-1]`` or ``x.shape[:-1] + (O,)``.
    """
    xa, ca = np.asarray(x), _check_planes(c, "c")
    _check_shapes(xa, ca, "c")
    x_bits = _check_bits(x_bits, "x_bits")
    _check_overflow(xa.shape[-1], x_bits, 1)
    planes = bit_planes(xa, x_bits, x_signed)
    xp, cp = _pack(planes), _pack(ca)
    cx = plane_weights(x_bits, x_signed)
    acc = np.zeros(xa.shape[:-1] + ca.shape[:-1], dtype=np.int64)
    for k in range(x_bits):
        ones = _popcount_sum(xp[k])
        if ca.ndim == 2:
            ones = ones[..., None]
        acc += cx[k] * (2 * _and_popcount_packed(xp[k], cp) - ones)
    return acc
