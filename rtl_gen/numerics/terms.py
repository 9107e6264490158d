"""Signed-digit terms (HESE) and term revealing (NUMERICS.md sections 3 and 4).

A *term* is one signed power of two ``±2**e``.  HESE (Hybrid Encoding for Signed
Expressions) writes the magnitude ``m`` of a sign-magnitude integer ``q = s * m`` with
``0 <= m < 2**bits`` as ``bits + 1`` digits ``d_j`` in ``{-1, 0, +1}`` (``j = 0..bits``, one
position above the MSB of ``m``), each from a 4-bit window of ``m`` (no carry chain)::

    d_j = b_j * ~b_{j-1} * (1 - 2 * b_{j+1}) + ~b_j * b_{j-1} * b_{j-2}

with ``b_i = 0`` outside ``0..bits-1``, and then multiplies every digit by ``s``.  A run of two
or more 1-bits ``lo..hi`` becomes ``+2**(hi+1) - 2**lo``; an isolated 1-bit stays.  So
``7 -> 8 - 1``: exponents run over ``0..bits``, not ``0..bits-1``.

Term revealing (TR) splits the reduction axis (the last axis here) into groups of ``group``
consecutive values, the last one padded with zeros, and keeps the ``budget`` largest HESE
terms of each group: the first ``budget`` of the group's terms sorted by (exponent
descending, index in group ascending).  Data (activations) are truncated per value to their
``terms`` largest HESE terms, which is TR with groups of one.

Every function here is pure numpy and exact in ``int64``; digit arrays are ``int8`` with the
least significant digit first on the last axis.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = [
    "MAX_BITS",
    "GroupTerms",
    "group_term_order",
    "hese_digits",
    "hese_terms",
    "prefix_digits",
    "reveal_digits",
    "term_count",
    "term_pair_dot",
    "term_reveal",
    "truncate_digits",
    "truncate_terms",
]

#: Largest magnitude width: every digit weight ``2**bits`` and every value fit ``int64``.
MAX_BITS = 62


def _check_count(value, name: str, lo: int, hi: int | None = None) -> int:
    """``value`` as a Python int in ``lo..hi``, else a ``ValueError`` quoting it."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, not {value!r}")
    v = int(value)
    if v < lo or (hi is not None and v > hi):
        span = f"at least {lo}" if hi is None else f"{lo}..{hi}"
        raise ValueError(f"{name} must be {span}, not {v}")
    return v


def _check_bits(bits, name: str = "bits") -> int:
    return _check_count(bits, name, 1, MAX_BITS)


def _signmag_array(q, bits: int, name: str = "q") -> np.ndarray:
    """``q`` as an ``int64`` array after checking ``|q| < 2**bits`` (``bits`` already valid)."""
    arr = np.asarray(q)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integers, not dtype {arr.dtype}")
    lim = (1 << bits) - 1
    if arr.dtype.kind == "u":
        bad = arr > lim
    else:
        arr = arr.astype(np.int64, copy=False)
        bad = (arr > lim) | (arr < -lim)
    if bad.any():
        raise ValueError(_range_message(int(arr[bad].flat[0]), bits, name))
    return arr.astype(np.int64, copy=False)


def _range_message(v: int, bits: int, name: str) -> str:
    return (f"{name} value {v} is out of range: |{name}| must be < 2**{bits} = {1 << bits} "
            f"(bits={bits})")


def _digits(m: np.ndarray, s: np.ndarray, bits: int) -> np.ndarray:
    """HESE digits of magnitudes ``m`` (int64, ``>= 0``) times signs ``s``."""
    b = ((m[..., None] >> np.arange(bits, dtype=np.int64)) & 1).astype(np.int8)
    # b_i for i = -2 .. bits+1 at index i + 2
    p = np.zeros(m.shape + (bits + 4,), dtype=np.int8)
    p[..., 2:bits + 2] = b
    bj, bjm1 = p[..., 2:bits + 3], p[..., 1:bits + 2]
    bjm2, bjp1 = p[..., 0:bits + 1], p[..., 3:bits + 4]
    d = bj * (1 - bjm1) * (1 - 2 * bjp1) + (1 - bj) * bjm1 * bjm2
    return (d * s[..., None]).astype(np.int8)


def hese_digits(q, bits: int) -> np.ndarray:
    """HESE digits of sign-magnitude integers.

    Parameters
    ----------
    q : array_like of int
        Signed integers with ``|q| < 2**bits``.
    bits : int
        Magnitude width, ``1..MAX_BITS``.

    Returns
    -------
    numpy.ndarray of int8, shape ``q.shape + (bits + 1,)``
        Digit ``d_j`` in ``{-1, 0, +1}`` at ``[..., j]``, least significant first, by the
        parallel 4-bit-window rule on ``|q|``, times ``sign(q)``; so
        ``q == sum_j d_j * 2**j``.  Digit ``bits`` (above the MSB) is nonzero whenever the top
        bits form a run, e.g. ``7`` with ``bits=3`` is ``[-1, 0, 0, 1]``.

    Raises
    ------
    ValueError
        For ``bits`` outside ``1..MAX_BITS``, a non-integer dtype, or a value with
        ``|q| >= 2**bits`` (the message quotes the value and ``bits``).
    """
    bits = _check_bits(bits)
    arr = _signmag_array(q, bits)
    return _digits(np.abs(arr), np.sign(arr), bits)


def _digit_values(digits: np.ndarray) -> np.ndarray:
    """``sum_j digits[..., j] * 2**j`` in ``int64``."""
    w = np.left_shift(np.int64(1), np.arange(digits.shape[-1], dtype=np.int64))
    return (digits.astype(np.int64) * w).sum(axis=-1)


def hese_terms(q: int, bits: int) -> list[int]:
    """HESE terms of one integer as signed powers of two, largest magnitude first.

    ``hese_terms(23, 5) == [16, 8, -1]``, ``hese_terms(-27, 5) == [-32, 8, -4, 1]``,
    ``hese_terms(0, 1) == []``.  Same contract and errors as :func:`hese_digits` (``q`` must
    be a scalar integer).
    """
    if isinstance(q, (bool, np.bool_)) or not isinstance(q, (int, np.integer)):
        raise ValueError(f"q must be one integer, not {q!r}")
    bits = _check_bits(bits)
    if abs(int(q)) >= 1 << bits:
        raise ValueError(_range_message(int(q), bits, "q"))
    d = hese_digits(np.int64(q), bits)
    return [int(d[j]) * (1 << j) for j in range(d.shape[-1] - 1, -1, -1) if d[j]]


def term_count(q, bits: int) -> np.ndarray:
    """Number of nonzero HESE digits of each value.

    Returns an ``int64`` array of ``q``'s shape (0-d for a scalar); never more than the number
    of 1-bits of ``|q|``.  Errors as :func:`hese_digits`.
    """
    return np.count_nonzero(hese_digits(q, bits), axis=-1).astype(np.int64)


# --- term revealing -------------------------------------------------------------------------


def _check_group_budget(group, budget) -> tuple[int, int]:
    return _check_count(group, "group", 1), _check_count(budget, "budget", 0)


def _vector_digits(q, bits: int, name: str = "q") -> np.ndarray:
    bits = _check_bits(bits)
    arr = _signmag_array(q, bits, name)
    if arr.ndim < 1:
        raise ValueError(f"{name} must have at least one axis (the reduction axis), not a scalar")
    return _digits(np.abs(arr), np.sign(arr), bits)


def _to_sorted(digits: np.ndarray, group: int) -> np.ndarray:
    """Digits ``(..., N, B)`` to ``(..., G, B * group)`` in storage order.

    Position ``p`` of a group holds exponent ``B - 1 - p // group`` of index ``p % group``:
    exponent descending, index ascending.
    """
    *lead, n, b = digits.shape
    ng = -(-n // group)
    pad = ng * group - n
    if pad:
        digits = np.concatenate([digits, np.zeros((*lead, pad, b), digits.dtype)], axis=-2)
    d = np.swapaxes(digits.reshape(*lead, ng, group, b), -1, -2)[..., ::-1, :]
    return d.reshape(*lead, ng, b * group)


def _from_sorted(flat: np.ndarray, group: int, n: int) -> np.ndarray:
    """Inverse of :func:`_to_sorted`: ``(..., G, B * group)`` to ``(..., n, B)``."""
    *lead, ng, length = flat.shape
    b = length // group
    d = flat.reshape(*lead, ng, b, group)[..., ::-1, :]
    d = np.swapaxes(d, -1, -2).reshape(*lead, ng * group, b)
    return np.ascontiguousarray(d[..., :n, :])


def _keep_first(flat: np.ndarray, budget: int) -> np.ndarray:
    """Zero every nonzero of ``flat`` after the first ``budget`` along the last axis."""
    nz = flat != 0
    keep = nz & (np.cumsum(nz, axis=-1) <= budget)
    return np.where(keep, flat, 0).astype(np.int8)


def reveal_digits(q, group: int, budget: int, bits: int) -> np.ndarray:
    """HESE digits kept by term revealing with a group budget.

    Parameters
    ----------
    q : array_like of int, at least 1-D
        Sign-magnitude weights, ``|q| < 2**bits``; groups run along the last axis.
    group : int
        Group size ``g >= 1``.  The last group of a length that is not a multiple of ``g`` is
        padded with zeros (which have no terms), and the padding is dropped from the result.
    budget : int
        Terms kept per group, ``k >= 0``; a budget of at least the group's term count keeps
        every term.
    bits : int
        Magnitude width.

    Returns
    -------
    numpy.ndarray of int8, shape ``q.shape + (bits + 1,)``
        The digits of :func:`hese_digits` with all but the first ``budget`` terms of each
        group, in the order (exponent descending, index in group ascending), set to 0.

    Raises
    ------
    ValueError
        For ``group < 1``, ``budget < 0``, a scalar ``q``, or as :func:`hese_digits`.
    """
    group, budget = _check_group_budget(group, budget)
    d = _vector_digits(q, bits)
    return _from_sorted(_keep_first(_to_sorted(d, group), budget), group, d.shape[-2])


def term_reveal(q, group: int, budget: int, bits: int) -> np.ndarray:
    """Term-revealed integers: ``sum_j reveal_digits(...)[..., j] * 2**j``.

    ``int64``, the shape of ``q``.  NUMERICS.md's vector: ``term_reveal([57, -13, 6, 100, 0,
    3, -128, 21], 8, 4, 8) == [64, 0, 0, 96, 0, 0, -128, 0]``.  A revealed value may need
    ``bits + 1`` bits of magnitude (``7 -> 8`` with one term).
    """
    return _digit_values(reveal_digits(q, group, budget, bits))


def truncate_digits(q, terms: int, bits: int) -> np.ndarray:
    """HESE digits of each value truncated to its ``terms`` largest terms (groups of one).

    ``int8``, shape ``q.shape + (bits + 1,)``; any shape of ``q``, scalars included.

    Raises
    ------
    ValueError
        For ``terms < 0`` or as :func:`hese_digits`.
    """
    terms = _check_count(terms, "terms", 0)
    d = hese_digits(q, bits)
    return _keep_first(d[..., ::-1], terms)[..., ::-1].copy()


def truncate_terms(q, terms: int, bits: int) -> np.ndarray:
    """Data-term truncation: each value keeps its ``terms`` largest HESE terms.

    ``int64``, the shape of ``q`` (``truncate_terms(23, 2, 5) == 24``).  Equal to
    ``term_reveal(q, 1, terms, bits)`` for arrays of at least one axis.
    """
    return _digit_values(truncate_digits(q, terms, bits))


class GroupTerms(NamedTuple):
    """The terms of every TR group in storage order (see :func:`group_term_order`).

    ``exponent``, ``sign`` and ``index`` have shape ``(..., G, T)``; slot ``t`` of a group holds
    its ``t``-th term when ``t < count``, and padding (``sign = 0``, ``exponent = 0``,
    ``index = 0``) otherwise.
    """

    exponent: np.ndarray  #: int64, ``0..bits``
    sign: np.ndarray  #: int8, ``±1`` for a term, 0 for padding
    index: np.ndarray  #: int64, ``0..group-1``, the value's position in its group
    count: np.ndarray  #: int64, shape ``(..., G)``: the number of terms of each group
    group: int
    bits: int
    length: int  #: the unpadded length ``N`` of the reduction axis


def group_term_order(q, group: int, bits: int) -> GroupTerms:
    """Each TR group's HESE terms sorted by (exponent descending, index ascending).

    This is the storage format that makes the budget a run-time choice: the first ``k``
    terms of every group are exactly the terms :func:`reveal_digits` keeps with
    ``budget=k``, for every ``k`` (``prefix_digits(group_term_order(q, g, b), k)`` equals
    ``reveal_digits(q, g, k, b)``), and reading all ``count`` terms is conventional mode.

    Parameters
    ----------
    q : array_like of int, at least 1-D
        Sign-magnitude weights, ``|q| < 2**bits``; groups of ``group`` consecutive values
        along the last axis, the last one padded with zeros.
    group, bits : int
        Group size (``>= 1``) and magnitude width.

    Returns
    -------
    GroupTerms
        ``T`` is the largest term count over all groups (0 when every value is 0), so
        ``G = ceil(N / group)`` groups of ``T`` slots each.
    """
    group = _check_count(group, "group", 1)
    d = _vector_digits(q, bits)
    flat = _to_sorted(d, group)
    nz = flat != 0
    count = nz.sum(axis=-1, dtype=np.int64)
    t = int(count.max()) if count.size else 0
    pos = np.argsort(~nz, axis=-1, kind="stable")[..., :t]
    valid = np.arange(t) < count[..., None]
    sign = np.where(valid, np.take_along_axis(flat, pos, axis=-1), 0).astype(np.int8)
    exponent = np.where(valid, bits - pos // group, 0).astype(np.int64)
    index = np.where(valid, pos % group, 0).astype(np.int64)
    return GroupTerms(exponent, sign, index, count, group, int(bits), d.shape[-2])


def prefix_digits(terms: GroupTerms, budget: int) -> np.ndarray:
    """Digits rebuilt from the first ``budget`` stored terms of every group.

    The inverse of :func:`group_term_order` read as the hardware reads it: returns ``int8``
    digits of shape ``(..., length, bits + 1)``, equal to ``reveal_digits(q, group, budget,
    bits)`` for the ``q`` the terms came from.
    """
    budget = _check_count(budget, "budget", 0)
    g, b = terms.group, terms.bits
    length = (b + 1) * g
    keep = (terms.sign != 0) & (np.arange(terms.sign.shape[-1]) < budget)
    # scatter into one spare slot (``length``) for everything not kept, then drop it
    pos = np.where(keep, (b - terms.exponent) * g + terms.index, length)
    flat = np.zeros(terms.count.shape + (length + 1,), dtype=np.int8)
    np.put_along_axis(flat, pos, np.where(keep, terms.sign, 0).astype(np.int8), axis=-1)
    return _from_sorted(flat[..., :length], g, terms.length)


def term_pair_dot(x, w, *, bits_x: int, bits_w: int, group: int, budget: int,
                  data_terms: int) -> tuple[np.ndarray, np.ndarray]:
    """Term-pair dot product of truncated data and term-revealed weights.

    The weights are revealed with ``(group, budget)`` along their last axis and the data
    truncated to ``data_terms`` terms per value; the result is computed as the sum over
    kept term pairs of the same index, ``sum s_a * s_b * 2**(e_a + e_b)`` (grouped by
    exponent pair ``(e_a, e_b)``), which equals ``truncate_terms(x) @ term_reveal(w).T``.

    Parameters
    ----------
    x : array_like of int, shape ``(..., N)``
        Data, ``|x| < 2**bits_x``.
    w : array_like of int, shape ``(N,)`` or ``(O, N)``
        Weights, ``|w| < 2**bits_w``.
    bits_x, bits_w : int
        Magnitude widths.
    group, budget : int
        The weights' TR group size and per-group term budget.
    data_terms : int
        Terms kept per data value (``s``).

    Returns
    -------
    value, pairs : numpy.ndarray of int64
        Shape ``x.shape[:-1]`` for 1-D ``w`` (a 0-d array for two vectors) and
        ``x.shape[:-1] + (O,)`` for 2-D ``w``, as ``x @ w.T``.  ``pairs`` counts the (kept
        data term, kept weight term) pairs with the same index, from the kept digits (a
        revealed 28 kept as ``32 - 8 + 4`` is three terms, not HESE(28)'s two); it is at
        most ``budget * data_terms`` per group.

    Raises
    ------
    ValueError
        For mismatched shapes, a sum that could overflow ``int64``, or any argument error of
        :func:`reveal_digits` and :func:`truncate_digits`.
    """
    xa, wa = np.asarray(x), np.asarray(w)
    if xa.ndim < 1 or wa.ndim not in (1, 2) or xa.shape[-1] != wa.shape[-1]:
        raise ValueError(
            f"x must be (..., N) and w (N,) or (O, N) with the same N, not shapes "
            f"{xa.shape} and {wa.shape}")
    bits_x, bits_w = _check_bits(bits_x, "bits_x"), _check_bits(bits_w, "bits_w")
    n = xa.shape[-1]
    if n >= 1 << 53:
        raise ValueError(f"reduction length {n} is too long")
    # |x'| < 2**(bits_x + 1) and |w'| < 2**(bits_w + 1) (at most every digit of each)
    if bits_x + bits_w + 2 + max(n, 1).bit_length() > 63:
        raise ValueError(
            f"a dot product of {n} values of bits_x={bits_x} and bits_w={bits_w} may overflow "
            f"int64")
    dw = reveal_digits(wa, group, budget, bits_w)
    dx = truncate_digits(xa, data_terms, bits_x)
    dw2 = dw if wa.ndim == 2 else dw[None]
    # signed pair counts per exponent pair: c[..., a, o, b] = sum_n dx[..., n, a] dw[o, n, b].
    # Every product is -1, 0 or +1 and every partial sum an integer of magnitude <= N < 2**53,
    # so the float64 (BLAS) contraction is exact.
    c = np.tensordot(dx.astype(np.float64), dw2.astype(np.float64), axes=([-2], [-2]))
    c = np.rint(c).astype(np.int64)
    e = np.arange(bits_x + 1)[:, None] + np.arange(bits_w + 1)[None, :]
    value = np.einsum("...aob,ab->...o", c, np.left_shift(np.int64(1), e))
    pairs = np.count_nonzero(dx, axis=-1) @ np.count_nonzero(dw2, axis=-1).T
    if wa.ndim == 1:
        value, pairs = value[..., 0], pairs[..., 0]
    return value.astype(np.int64), pairs.astype(np.int64)
