"""Integer weight schemes: codes, their integer weights ``w_int``, and post-training quantizers.

Every integer scheme maps a weight *code* (an unsigned bit pattern of ``scheme.code_bits``
bits, the thing the hardware stores) to a signed integer ``w_int`` (the thing the datapath
adds, subtracts or shifts).  The float value of a weight is ``scale * w_int``, where the
per-layer ``scale`` is folded into requantization (NUMERICS.md sections 1 and 2).

=========  ======================================  ==========================================
kind       code (``bits`` = total code width)      ``w_int``
=========  ======================================  ==========================================
binary     1 bit: 1 means -1, 0 means +1           ±1
ternary    2-bit two's complement 00/01/11          0, +1, -1 (10 is invalid)
pot        sign << (b-1) | c, ``c`` of b-1 bits     0 if c = 0, else ±2**(F - (c-1)),
                                                    F = 2**(b-1) - 2
apot       sign << (b-1) | a << nb | b_idx          ± sum of the chosen base-set terms, in
                                                    units of the smallest term
int        b-bit two's complement, symmetric        the code; -2**(b-1) is invalid
signmag    sign << (b-1) | m, m of b-1 bits         ±m (term revealing's own quantizer)
=========  ======================================  ==========================================

A negative zero (sign bit set on a zero magnitude) is never produced by a quantizer and is
rejected as non-canonical, so every weight value has exactly one code.

APoT widths count the sign (our choice, so that "APoT4" is a 4-bit code like "int4"):
``apot(4)`` is NUMERICS.md's "b = 3" (sign + 3 bits, base sets a = {0, 2^-1, 2^-2, 2^-4},
b = {0, 2^-3}), ``apot(5)`` its "b = 4", and ``apot(3)`` the single set {0, 2^-1, 2^-2, 2^-3}.

Rounding of every quantizer *(our choice)*: to the nearest representable level, a tie going
to the level of larger magnitude (round half away from zero); values beyond the largest level
saturate to it.
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from functools import cached_property

import numpy as np

__all__ = [
    "SCHEME_KINDS",
    "QuantizedWeights",
    "WeightScheme",
    "parse_scheme",
]

SCHEME_KINDS = ("binary", "ternary", "pot", "apot", "int", "signmag")

# Width limits: pot beyond 6 bits needs shifts of 2**30 and more; APoT base sets are defined
# by the APoT authors for these widths only.
_BITS_RANGE = {
    "binary": (1, 1),
    "ternary": (2, 2),
    "pot": (2, 6),
    "apot": (3, 5),
    "int": (2, 16),
    "signmag": (2, 16),
}

# APoT base sets as exponents of two (None is the zero element), per magnitude width.
_APOT_SETS: dict[int, tuple[tuple[int | None, ...], ...]] = {
    2: ((None, -1, -2, -3),),
    3: ((None, -1, -2, -4), (None, -3)),
    4: ((None, -1, -3, -5), (None, -2, -4, -6)),
}


@dataclasses.dataclass(frozen=True)
class QuantizedWeights:
    """The result of quantizing a float tensor.

    Members
    -------
    codes:
        Unsigned codes (``uint8`` or ``uint16``), same shape as the input.
    w_int:
        The integer weights the codes stand for (``int64``).
    scale:
        Float value of one unit of ``w_int``: ``w ≈ scale * w_int``.
    alpha:
        The scheme's own scale parameter (NUMERICS.md table: binary/ternary/int ``alpha``,
        PoT ``alpha``, APoT ``gamma``, signmag ``sf``).
    """

    codes: np.ndarray
    w_int: np.ndarray
    scale: float
    alpha: float


@dataclasses.dataclass(frozen=True)
class WeightScheme:
    """One integer weight scheme at one code width.

    Parameters
    ----------
    kind:
        One of :data:`SCHEME_KINDS`.
    bits:
        Total code width in bits, sign included (binary is 1, ternary 2).

    Raises
    ------
    ValueError
        For an unknown kind or a width the kind does not support.
    """

    kind: str
    bits: int

    def __post_init__(self):
        if self.kind not in SCHEME_KINDS:
            raise ValueError(
                f"unknown weight scheme {self.kind!r}; expected one of {', '.join(SCHEME_KINDS)}")
        if isinstance(self.bits, bool) or not isinstance(self.bits, (int, np.integer)):
            raise ValueError(f"{self.kind} width must be an integer, not {self.bits!r}")
        object.__setattr__(self, "bits", int(self.bits))
        lo, hi = _BITS_RANGE[self.kind]
        if not lo <= self.bits <= hi:
            span = f"exactly {lo}" if lo == hi else f"{lo}..{hi}"
            raise ValueError(f"{self.kind} width must be {span} bits, not {self.bits!r}")

    # -- names ------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """Short name used in bundles and reports: ``binary``, ``ternary``, ``pot4``, ``int8``."""
        return self.kind if self.kind in ("binary", "ternary") else f"{self.kind}{self.bits}"

    def __str__(self) -> str:
        return self.name

    # -- the code table ---------------------------------------------------------------------

    @property
    def code_bits(self) -> int:
        return self.bits

    @property
    def code_dtype(self) -> type:
        return np.uint8 if self.bits <= 8 else np.uint16

    @cached_property
    def _table(self) -> tuple[np.ndarray, np.ndarray]:
        """``(w_int of every code, validity of every code)``, indexed by the code."""
        n = 1 << self.bits
        codes = np.arange(n, dtype=np.int64)
        valid = np.ones(n, dtype=bool)
        if self.kind == "binary":
            w = np.where(codes == 1, -1, 1)
        elif self.kind == "ternary":
            w = np.array([0, 1, 0, -1])
            valid[2] = False
        elif self.kind == "int":
            w = np.where(codes >= n // 2, codes - n, codes)
            valid[n // 2] = False
        else:
            half = n // 2
            sign = np.where(codes >= half, -1, 1)
            mag = self._magnitudes[codes % half]
            w = sign * mag
            valid &= ~((codes >= half) & (mag == 0))  # negative zero is not canonical
        return w.astype(np.int64), valid

    @cached_property
    def _magnitudes(self) -> np.ndarray:
        """Magnitude of ``w_int`` for every magnitude field (sign-magnitude kinds)."""
        m = self.bits - 1
        idx = np.arange(1 << m, dtype=np.int64)
        if self.kind == "signmag":
            return idx
        if self.kind == "pot":
            f = self.pot_frac_bits
            return np.where(idx == 0, 0, np.left_shift(1, np.maximum(f - (idx - 1), 0)))
        # apot: the fields, most significant first, index the base sets in order
        out = np.zeros_like(idx)
        shift = m
        for units in self.apot_fields:
            wdt = (len(units) - 1).bit_length()
            shift -= wdt
            out += np.array(units, dtype=np.int64)[(idx >> shift) & ((1 << wdt) - 1)]
        return out

    @property
    def apot_fields(self) -> tuple[tuple[int, ...], ...]:
        """APoT only: per magnitude field, most significant first, the ``|w_int|`` term that
        each field value selects (0 for the set's zero element, else a power of two).

        The magnitude is the sum of the selected terms; the hardware builds one shifter per
        field from this table.
        """
        if self.kind != "apot":
            raise ValueError(f"{self.name} has no APoT fields")
        sets = _APOT_SETS[self.bits - 1]
        lsb = min(e for s in sets for e in s if e is not None)
        return tuple(tuple(0 if e is None else 1 << (e - lsb) for e in s) for s in sets)

    @property
    def pot_frac_bits(self) -> int:
        """``F = 2**(b-1) - 2``: the PoT code ``c`` means ``2**(F - (c-1))`` in ``w_int``."""
        return (1 << (self.bits - 1)) - 2

    @property
    def w_int_max(self) -> int:
        """Largest ``|w_int|`` any valid code decodes to."""
        w, valid = self._table
        return int(np.abs(w[valid]).max())

    @property
    def magnitude_bits(self) -> int:
        """Bits needed for ``|w_int|`` (the ``bits`` argument of the HESE/TR functions)."""
        return max(1, self.w_int_max.bit_length())

    def levels(self) -> np.ndarray:
        """Every representable ``w_int``, sorted ascending, without repeats."""
        w, valid = self._table
        return np.unique(w[valid])

    # -- codec ------------------------------------------------------------------------------

    def invalid_codes(self, codes) -> np.ndarray:
        """Boolean mask of the codes that are out of range or non-canonical."""
        c = np.asarray(codes)
        if c.dtype.kind not in "iu":
            raise ValueError(f"{self.name} codes must be integers, not dtype {c.dtype}")
        c = c.astype(np.int64)
        bad = (c < 0) | (c >= (1 << self.bits))
        _, valid = self._table
        bad[~bad] = ~valid[c[~bad]]
        return bad

    def decode(self, codes) -> np.ndarray:
        """Codes → ``w_int`` (``int64``).

        Raises
        ------
        ValueError
            Naming the first invalid code and its index.
        """
        c = np.asarray(codes)
        bad = self.invalid_codes(c)
        if bad.any():
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(
                f"{bad.sum()} code(s) out of range for {self.name}; first is "
                f"{int(c[first])} at index {first}")
        w, _ = self._table
        return w[c.astype(np.int64)]

    def encode(self, w_int) -> np.ndarray:
        """``w_int`` → codes.

        Raises
        ------
        ValueError
            If a value is not a level of the scheme.
        """
        w = np.asarray(w_int, dtype=np.int64)
        table, valid = self._table
        codes = np.flatnonzero(valid)
        vals = table[codes]
        order = np.argsort(vals, kind="stable")
        vals, codes = vals[order], codes[order]
        pos = np.clip(np.searchsorted(vals, w), 0, len(vals) - 1)
        bad = vals[pos] != w
        if bad.any():
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(f"{int(w[first])} at index {first} is not a {self.name} level")
        return codes[pos].astype(self.code_dtype)

    # -- quantizers -------------------------------------------------------------------------

    def quantize(self, w, alpha: float | None = None) -> QuantizedWeights:
        """Post-training quantization of a float tensor (one scale per tensor).

        Parameters
        ----------
        w:
            Finite float weights.
        alpha:
            The scheme's scale parameter (see :class:`QuantizedWeights`).  ``None`` picks it:
            binary ``mean|W|`` (XNOR-Net), ternary the mean of the kept magnitudes (TWN),
            signmag ``max|W| / 2**(m-1)`` (term revealing's rule), and for pot, apot and int
            the clipping that minimises the squared error on a fixed grid of 96 ratios of
            ``max|W|``.

        Raises
        ------
        ValueError
            For NaN or infinite weights, an empty tensor or a non-positive alpha.
        """
        w = np.asarray(w, dtype=np.float64)
        if w.size == 0:
            raise ValueError("cannot quantize an empty weight tensor")
        if not np.isfinite(w).all():
            raise ValueError(f"weights contain {np.count_nonzero(~np.isfinite(w))} NaN or "
                             "infinite value(s)")
        if alpha is not None and not (np.isfinite(alpha) and alpha > 0):
            raise ValueError(f"alpha must be a positive finite number, not {alpha!r}")
        absmax = float(np.abs(w).max())
        if self.kind == "binary":
            a = float(np.abs(w).mean()) if alpha is None else float(alpha)
            w_int = np.where(w < 0, -1, 1).astype(np.int64)
            return self._result(w_int, scale=a or 1.0, alpha=a or 1.0)
        if self.kind == "ternary":
            delta = 0.7 * float(np.abs(w).mean())
            w_int = (np.sign(w) * (np.abs(w) > delta)).astype(np.int64)
            if alpha is None:
                kept = np.abs(w)[w_int != 0]
                alpha = float(kept.mean()) if kept.size else 1.0
            return self._result(w_int, scale=float(alpha), alpha=float(alpha))
        if self.kind == "signmag":
            m = self.bits - 1
            sf = (absmax / (1 << (m - 1)) or 1.0) if alpha is None else float(alpha)
            mag = np.minimum(np.floor(np.abs(w) / sf + 0.5), (1 << m) - 1)
            w_int = (np.sign(w) * mag).astype(np.int64)
            return self._result(w_int, scale=sf, alpha=sf)
        if alpha is None:
            scale = self._search_scale(w, absmax)
            alpha = scale if self.kind == "int" else scale * self.w_int_max
        else:
            scale = float(alpha) if self.kind == "int" else float(alpha) / self.w_int_max
        return self._result(self._round_to_levels(w / scale), scale=scale, alpha=float(alpha))

    def _round_to_levels(self, u: np.ndarray) -> np.ndarray:
        """Nearest level of ``|u|`` (ties away from zero), saturating, sign restored."""
        mags = self.levels()
        mags = mags[mags >= 0].astype(np.float64)
        mid = (mags[1:] + mags[:-1]) / 2
        idx = np.searchsorted(mid, np.abs(u), side="right")
        return (np.sign(u) * mags[idx]).astype(np.int64)

    def _search_scale(self, w: np.ndarray, absmax: float) -> float:
        """The scale whose largest level clips at the ratio of ``max|W|`` with least MSE."""
        if absmax == 0:
            return 1.0
        best, best_err = absmax / self.w_int_max, np.inf
        for r in np.linspace(0.25, 1.0, 96):
            s = absmax * float(r) / self.w_int_max
            err = float(np.square(self._round_to_levels(w / s) * s - w).sum())
            if err < best_err:
                best, best_err = s, err
        return best

    def _result(self, w_int: np.ndarray, *, scale: float, alpha: float) -> QuantizedWeights:
        return QuantizedWeights(codes=self.encode(w_int), w_int=w_int, scale=float(scale),
                                alpha=float(alpha))

    def level_values(self) -> list[Fraction]:
        """Normalised magnitude levels (largest is 1) as exact fractions, for documentation
        and tests: APoT 4 gives 0, 1/10, …, 1 exactly as in NUMERICS.md."""
        mags = [int(v) for v in self.levels() if v >= 0]
        return [Fraction(v, self.w_int_max) for v in mags]


def parse_scheme(name: str) -> WeightScheme:
    """``"binary"``, ``"ternary"``, ``"pot4"``, ``"apot4"``, ``"int8"``, ``"signmag5"`` → scheme.

    Raises
    ------
    ValueError
        For an unknown name or a width the kind does not support.
    """
    if not isinstance(name, str):
        raise ValueError(f"scheme name must be a string, not {name!r}")
    s = name.strip().lower()
    if s in ("binary", "ternary"):
        return WeightScheme(s, 1 if s == "binary" else 2)
    for kind in sorted(SCHEME_KINDS, key=len, reverse=True):
        if s.startswith(kind) and s[len(kind):].isdigit():
            return WeightScheme(kind, int(s[len(kind):]))
    raise ValueError(
        f"unknown weight scheme {name!r}; expected binary, ternary, potB, apotB, intB or "
        "signmagB with B the code width in bits")
