"""Fixed-point requantization and the accumulator-width rule (NUMERICS.md section 1).

A layer's exact integer accumulator is rescaled to the next layer's activation code by a
multiply and an arithmetic shift *(our choice, gemmlowp/TFLite style)*::

    y = clamp((acc * M + (1 << (S - 1))) >> S, 0, 2**a_bits - 1)

so the float scale ``r = s_in * s_w / s_out`` is approximated by ``M / 2**S`` with
``2**(m_bits-1) <= M < 2**m_bits`` whenever ``S`` allows it.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "DEFAULT_MULTIPLIER_BITS",
    "MAX_SHIFT",
    "acc_bits",
    "requant_params",
    "requantize",
    "signed_bits",
]

#: Width of the requantization multiplier ``M``: 15 bits fit one signed 16x16 DSP input.
DEFAULT_MULTIPLIER_BITS = 15
#: Largest shift; keeps ``acc * M`` inside int64 for every accumulator the rule allows.
MAX_SHIFT = 62


def signed_bits(v: int) -> int:
    """Width of the smallest two's complement field holding every integer in ``[-v, v]``."""
    v = int(v)
    if v < 0:
        raise ValueError(f"bound must be non-negative, not {v!r}")
    return v.bit_length() + 1


def acc_bits(k: int, x_max: int, w_max: int, b_max: int = 0) -> int:
    """Accumulator width that can never overflow.

    The worst case of ``sum_i x[i] * w[o, i] + b[o]`` over ``k`` products is
    ``k * max|x| * max|w| + max|b|`` in either sign, and a signed field of
    ``signed_bits`` of that bound holds it.

    Parameters
    ----------
    k:
        Reduction length (fan-in), ``>= 1``.
    x_max, w_max, b_max:
        Largest magnitudes of an activation, a weight ``w_int`` and a bias.
    """
    for name, v in (("k", k), ("x_max", x_max), ("w_max", w_max), ("b_max", b_max)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ValueError(f"{name} must be a non-negative integer, not {v!r}")
    if k < 1:
        raise ValueError(f"k must be at least 1, not {k!r}")
    return signed_bits(int(k) * int(x_max) * int(w_max) + int(b_max))


def requant_params(scale, m_bits: int = DEFAULT_MULTIPLIER_BITS) -> tuple[np.ndarray, np.ndarray]:
    """Integer multiplier and shift for a positive float scale (scalar or per channel).

    Returns ``(M, S)`` (``int64`` arrays of the shape of ``scale``) with ``M / 2**S`` the
    nearest such ratio to ``scale``, ``1 <= S <= MAX_SHIFT`` and ``0 < M < 2**m_bits``.

    Raises
    ------
    ValueError
        For a non-positive or non-finite scale, or one too large for ``m_bits`` with ``S = 1``.
    """
    r = np.asarray(scale, dtype=np.float64)
    if not (np.isfinite(r).all() and (r > 0).all()):
        raise ValueError(f"requantization scale must be positive and finite, got {r!r}")
    if not 2 <= m_bits <= 31:
        raise ValueError(f"multiplier width must be 2..31 bits, not {m_bits!r}")
    ms, ss = [], []
    for v in r.ravel():
        e = math.floor(math.log2(v))
        s = min(max(m_bits - 1 - e, 1), MAX_SHIFT)
        m = int(round(v * 2.0**s))
        if m >= 1 << m_bits and s > 1:  # rounding carried into a new bit
            s -= 1
            m = int(round(v * 2.0**s))
        if m >= 1 << m_bits:
            raise ValueError(f"requantization scale {v!r} needs more than {m_bits} bits")
        if m == 0:
            raise ValueError(f"requantization scale {v!r} is below 2**-{MAX_SHIFT}")
        ms.append(m)
        ss.append(s)
    return (np.array(ms, dtype=np.int64).reshape(r.shape),
            np.array(ss, dtype=np.int64).reshape(r.shape))


def requantize(acc, multiplier, shift, out_bits: int) -> np.ndarray:
    """``clamp((acc * M + (1 << (S - 1))) >> S, 0, 2**out_bits - 1)``, exactly, in int64.

    ``multiplier`` and ``shift`` broadcast against ``acc`` (per output channel on the last
    axis).  The clamp at 0 is the ReLU.
    """
    a = np.asarray(acc, dtype=np.int64)
    m = np.asarray(multiplier, dtype=np.int64)
    s = np.asarray(shift, dtype=np.int64)
    y = (a * m + np.left_shift(np.int64(1), s - 1)) >> s
    return np.clip(y, 0, (1 << out_bits) - 1)
