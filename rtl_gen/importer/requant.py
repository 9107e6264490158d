"""Exact integer requantization of a quantized graph's activation function.

Between two quantizers a graph computes, per output channel, a monotone function of the
layer's integer accumulator ``A``: affine maps (the weight and input scales, the bias, a
folded batch norm, constant ``Mul``/``Add``), perhaps a ReLU, then a quantizer with its
rounding mode.  Its output code ``u`` (counted from the quantizer's smallest code) is
therefore ``#{k : A >= T_k}`` for integer thresholds ``T_1 <= T_2 <= ...``, which this module
computes in exact rational arithmetic (every float of the graph is a dyadic rational).

The bundle's hardware form is ``u = clamp(((A + beta) * M + 2**(S-1)) >> S, 0, 2**b - 1)``,
whose thresholds are ``H_k = ceil((k - 1/2) * 2**S / M) - beta``.  :func:`solve` searches
``beta``, ``M`` and ``S`` with ``H_k = T_k`` for every threshold inside the accumulator's
reachable range (those outside only have to stay outside); when no such triple exists it
returns the nearest one and says how many thresholds differ and by how much.
"""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction

from ..numerics.fixedpoint import MAX_SHIFT

__all__ = ["ROUNDING_MODES", "Requant", "code_threshold", "integer_threshold", "invert", "solve"]

#: Rounding modes of QONNX ``Quant``/``IntQuant`` (``ROUND`` is half to even).
ROUNDING_MODES = ("ROUND", "HALF_EVEN", "CEIL", "FLOOR", "UP", "DOWN", "HALF_UP", "HALF_DOWN")
#: The requantization multiplier is a positive signed 32-bit integer.
_M_LIMIT = 1 << 31
INF = math.inf

#: A predicate on a real value ``z``: ``(sense, t, inclusive)`` means ``z >= t`` (sense +1,
#: inclusive), ``z > t``, ``z <= t`` (sense -1, inclusive) or ``z < t``; ``ALL``/``NONE``
#: are always/never true.
ALL = ("all",)
NONE = ("none",)


def code_threshold(level: int, mode: str) -> tuple[Fraction, bool]:
    """``(theta, inclusive)`` with ``rounded(z) >= level`` iff ``z >= theta`` (inclusive) or
    ``z > theta``, for the rounding ``mode`` of a QONNX quantizer."""
    k = Fraction(level)
    half = k - Fraction(1, 2)
    if mode in ("ROUND", "HALF_EVEN"):       # a tie goes to the even neighbour
        return half, level % 2 == 0
    if mode == "HALF_UP":                     # a tie goes away from zero
        return half, level >= 1
    if mode == "HALF_DOWN":                   # a tie goes toward zero
        return half, level <= 0
    if mode == "FLOOR":
        return k, True
    if mode == "CEIL":
        return k - 1, False
    if mode == "DOWN":                        # toward zero
        return (k, True) if level >= 1 else (k - 1, False)
    if mode == "UP":                          # away from zero
        return (k - 1, False) if level >= 1 else (k, True)
    raise ValueError(f"unknown rounding mode {mode!r}")


def invert(pred, ops):
    """The predicate on the accumulator ``A`` equivalent to ``pred`` on the value that the
    elementwise ``ops`` (applied in order to ``A``) produce.

    ``ops``: ``("affine", m, a)`` for ``m * z + a`` (Fractions) or ``("relu",)``.
    """
    for op in reversed(ops):
        if pred in (ALL, NONE):
            return pred
        sense, t, incl = pred
        if op[0] == "relu":                   # max(z, 0) against t
            if sense > 0:
                if t < 0 or (t == 0 and incl):
                    return ALL
            elif t < 0 or (t == 0 and not incl):
                return NONE
            continue
        _, m, a = op
        if m == 0:
            v = a
            true = (v > t or (incl and v == t)) if sense > 0 else (v < t or (incl and v == t))
            return ALL if true else NONE
        t = (t - a) / m
        if m < 0:
            sense = -sense
        pred = (sense, t, incl)
    return pred


def integer_threshold(pred):
    """``(sense, T)`` on integers: ``A >= T`` (sense +1) or ``A <= T`` (sense -1); ``ALL`` is
    ``(+1, -inf)``, ``NONE`` ``(+1, +inf)``."""
    if pred == ALL:
        return 1, -INF
    if pred == NONE:
        return 1, INF
    sense, t, incl = pred
    if sense > 0:
        return 1, (math.ceil(t) if incl else math.floor(t) + 1)
    return -1, (math.floor(t) if incl else math.ceil(t) - 1)


@dataclasses.dataclass(frozen=True)
class Requant:
    """One channel's solution: ``beta`` (added to the accumulator), ``M``, ``S``; ``exact``
    when every reachable threshold matches; else ``off`` thresholds differ, by at most
    ``max_off`` accumulator units."""

    beta: int
    multiplier: int
    shift: int
    exact: bool
    off: int = 0
    max_off: int = 0


def _hw_thresholds(beta, m, s, k_hw):
    d = Fraction(1 << s, m)
    return [math.ceil((k - Fraction(1, 2)) * d) - beta for k in range(1, k_hw + 1)]


def _bounds(targets, amin, amax):
    """Per k: (lowest, highest) allowed hardware threshold (None for unbounded)."""
    out = []
    for t in targets:
        if t <= amin:
            out.append((None, amin))
        elif t > amax:
            out.append((amax + 1, None))
        else:
            out.append((t, t))
    return out


def _interval(bounds, beta):
    """``(lo, hi)``: ``D`` must satisfy ``lo < D <= hi`` (None: unbounded)."""
    lo, hi = Fraction(0), None
    for k, (low, high) in enumerate(bounds, start=1):
        w = Fraction(2 * k - 1, 2)
        if low is not None:
            v = (low - 1 + beta) / w
            lo = max(lo, v)
        if high is not None:
            v = (high + beta) / w
            hi = v if hi is None else min(hi, v)
    return lo, hi


def _dyadic_in(lo, hi, max_m_bits):
    """``(M, S)`` with ``lo < 2**S / M <= hi``, the smallest ``S`` first, or None."""
    for s in range(1, MAX_SHIFT + 1):
        p = 1 << s
        m = 1 if hi is None else max(1, math.ceil(p / hi))
        if m >= 1 << max_m_bits:
            return None
        if Fraction(p, m) > lo and (hi is None or Fraction(p, m) <= hi):
            return m, s
    return None


def _mismatch(targets, beta, m, s, amin, amax):
    hw = _hw_thresholds(beta, m, s, len(targets))
    off, worst = 0, 0
    for t, h in zip(targets, hw, strict=True):
        if t <= amin:
            bad = max(0, h - amin)
        elif t > amax:
            bad = max(0, amax + 1 - h)
        else:
            bad = abs(h - t)
        if bad:
            off += 1
            worst = max(worst, bad)
    return off, worst


def _beta_candidates(exact_ks, beta0):
    """Integers ``beta`` worth trying: with two or more exact thresholds, every ``beta`` that
    the first one allows for a step ``D`` consistent with all pairs (complete); else a few
    around ``beta0``."""
    near = [beta0 + d for d in (0, -1, 1, -2, 2, -3, 3, -4, 4, -6, 6, -8, 8)]
    if len(exact_ks) < 2:
        return near
    k1, t1 = exact_ks[0]
    lo, hi = Fraction(0), None
    for k, t in exact_ks[1:]:
        lo = max(lo, Fraction(t - t1 - 1, k - k1))
        v = Fraction(t - t1 + 1, k - k1)
        hi = v if hi is None else min(hi, v)
    if hi <= lo:
        return []
    w = k1 - Fraction(1, 2)
    first, last = math.floor(w * lo) - t1, math.ceil(w * hi) - t1 + 1
    if last - first > 4096:
        return near
    return range(first, last + 1)


def solve(thresholds, k_hw: int, amin: int, amax: int, *, max_m_bits: int = 31) -> Requant:
    """The hardware requantization of one channel.

    Parameters
    ----------
    thresholds:
        ``T_1 <= ... <= T_K``: the output code is ``#{k : A >= T_k}`` (integers, or
        ``-inf``/``+inf`` for a threshold always/never passed).
    k_hw:
        ``2**out_bits - 1 >= K``: thresholds beyond ``K`` are ``+inf`` (never reached).
    amin, amax:
        The accumulator's reachable range (without ``beta``).
    """
    targets = list(thresholds) + [INF] * (k_hw - len(thresholds))
    bounds = _bounds(targets, amin, amax)
    exact_ks = [(k, t) for k, t in enumerate(targets, start=1) if amin < t <= amax]
    span = amax - amin + 2
    big = 1 << max(1, (2 * span).bit_length())
    if len(exact_ks) >= 2:
        (k1, t1), (k2, t2) = exact_ks[0], exact_ks[-1]
        d_est = Fraction(t2 - t1, k2 - k1)
        d_est = d_est if d_est > 0 else Fraction(1, 2)
    else:
        d_est = Fraction(big)
    if exact_ks:
        k1, t1 = exact_ks[0]
        beta0 = math.ceil((k1 - Fraction(1, 2)) * d_est) - t1
    else:
        low = sum(1 for t in targets if t <= amin)          # the constant output code
        beta0 = (math.ceil((low - Fraction(1, 2)) * d_est) - amin) if low else \
            (math.ceil(d_est / 2) - amax - 1)
    best = None
    for beta in _beta_candidates(exact_ks, beta0):
        lo, hi = _interval(bounds, beta)
        if hi is not None and hi <= lo:
            continue
        found = _dyadic_in(lo, hi, max_m_bits)
        if found is None:
            continue
        m, s = found
        if best is None or m.bit_length() < best.multiplier.bit_length():
            best = Requant(beta, m, s, True)
        if m.bit_length() <= 16:
            break
    if best is not None:
        return best
    # No exact form: the nearest multiplier for the estimated step, and what it costs.
    d = d_est if d_est > 0 else Fraction(1)
    s = max(1, min(MAX_SHIFT, max_m_bits - 1 + math.floor(math.log2(float(d)))))
    m = max(1, min(_M_LIMIT - 1, round(Fraction(1 << s) / d)))
    best = None
    for delta in range(-8, 9):
        beta = beta0 + delta
        off, worst = _mismatch(targets, beta, m, s, amin, amax)
        if best is None or (off, worst) < (best.off, best.max_off):
            best = Requant(beta, m, s, off == 0, off, worst)
    return best
