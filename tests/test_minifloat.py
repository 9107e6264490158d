"""Minifloats, MPWN float paths, the exponent-width rule and ASB (NUMERICS.md section 5)."""

import math
from bisect import bisect_left
from fractions import Fraction
from functools import cache

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtl_gen.numerics.minifloat import (
    MPWN_BITS,
    MinifloatFormat,
    asb_score,
    bits_to_f32,
    f32_to_bits,
    recommend_exponent_bits,
    ternary_bitwise,
    xor_signed_bits,
)
from rtl_gen.numerics.schemes import WeightScheme

# --- slow, obviously correct reference ---------------------------------------------------


@cache
def ref_table(e, m, bias):
    """Exact value of every magnitude code ``0 .. 2**(e+m) - 1``, from the definition."""
    vals = []
    for code in range(1 << (e + m)):
        exp, man = code >> m, code & ((1 << m) - 1)
        if exp == 0:
            vals.append(Fraction(man, 1 << m) * Fraction(2) ** (1 - bias))
        else:
            vals.append((1 + Fraction(man, 1 << m)) * Fraction(2) ** (exp - bias))
    increasing = all(a < b for a, b in zip(vals[:-1], vals[1:], strict=True))
    assert increasing, "magnitude codes must increase in value"
    return tuple(vals)


def ref_encode(fmt, x):
    """Nearest representable magnitude, ties to the even code, saturating; sign from ``x``."""
    vals = ref_table(fmt.exp_bits, fmt.man_bits, fmt.bias)
    sign = 1 if math.copysign(1.0, x) < 0 else 0
    if math.isinf(x) or Fraction(abs(x)) >= vals[-1]:
        mag = len(vals) - 1
    else:
        a = Fraction(abs(x))
        i = bisect_left(vals, a)
        if vals[i] == a:
            mag = i
        else:
            below, above = a - vals[i - 1], vals[i] - a
            if below != above:
                mag = i - 1 if below < above else i
            else:
                mag = i - 1 if (i - 1) % 2 == 0 else i
    return (sign << (fmt.exp_bits + fmt.man_bits)) | mag


def probe_values(fmt, rng, n_random):
    """Midpoints of neighbouring values, their float64 neighbours, extremes and randoms."""
    vals = ref_table(fmt.exp_bits, fmt.man_bits, fmt.bias)
    mids = np.array([float((a + b) / 2) for a, b in zip(vals[:-1], vals[1:], strict=True)])
    assert all(Fraction(float(v)) == v for v in mids)  # the midpoints are exact in float64
    top = float(vals[-1])
    ulp_top = float(vals[-1] - vals[-2])
    extremes = np.array([0.0, top, top + ulp_top / 2, top + ulp_top, 2 * top, 1e300,
                         float(vals[1]) / 2, float(vals[1]) / 3, 5e-324, np.inf])
    lo, hi = math.log2(float(vals[1])) - 3, math.log2(top) + 2
    rand = np.exp2(rng.uniform(lo, hi, n_random)) * rng.uniform(1, 2, n_random)
    pos = np.concatenate([mids, np.nextafter(mids, 0), np.nextafter(mids, np.inf), extremes,
                          rand])
    return np.concatenate([pos, -pos])


# --- NUMERICS.md section 5 vectors --------------------------------------------------------


def test_e5m4_vector():
    f = MinifloatFormat(5, 4)
    code = f.encode(0.3141)
    assert code.dtype == np.uint64
    assert int(code) == 0b0_01101_0100
    assert f.decode(code) == 0.3125
    assert f.quantize(0.3141) == 0.3125


def test_xor_signed_bits_vector():
    assert f32_to_bits(np.float32(1.5)) == 0x3FC00000
    out = xor_signed_bits(0x3FC00000, np.array([1, 0]))  # w = -1 (bit 1), w = +1 (bit 0)
    assert out.dtype == np.uint32
    assert out.tolist() == [0xBFC00000, 0x3FC00000]
    assert bits_to_f32(out).tolist() == [-1.5, 1.5]


def test_ternary_bitwise_vector():
    assert f32_to_bits(np.float32(-2.5)) == 0xC0200000
    codes = WeightScheme("ternary", 2).encode(np.array([0, 1, -1]))
    assert codes.tolist() == [0b00, 0b01, 0b11]
    out = ternary_bitwise(0xC0200000, codes)
    assert out.dtype == np.uint32
    assert out.tolist() == [0x80000000, 0xC0200000, 0x40200000]
    # Weight 0 keeps the sign of x: -2.5 * 0 is -0.0, as in IEEE-754.
    assert f32_to_bits(np.float32(-2.5) * np.float32(0.0)) == 0x80000000
    assert ternary_bitwise(f32_to_bits(np.float32(2.5)), 0) == 0x00000000


def test_mpwn_bits():
    assert MPWN_BITS == {"float": 16, "ternary": 2, "binary": 1}


# --- MPWN bitwise products against IEEE-754 multiplication -------------------------------


def random_f32_bits(rng, n):
    """Random binary32 bit patterns (all exponents: zeros, subnormals, inf), no NaN."""
    bits = rng.integers(0, 1 << 32, n, dtype=np.uint64).astype(np.uint32)
    special = np.array([0, 0x80000000, 1, 0x80000001, 0x007FFFFF, 0x00800000, 0x7F7FFFFF,
                        0xFF7FFFFF, 0x7F800000, 0xFF800000], dtype=np.uint32)
    bits = np.concatenate([bits, special])
    return bits[~np.isnan(bits_to_f32(bits))]


def test_xor_signed_bits_is_ieee_multiply():
    x_bits = random_f32_bits(np.random.default_rng(1), 20000)
    x = bits_to_f32(x_bits)
    for w_bit, w in ((0, 1.0), (1, -1.0)):
        expect = f32_to_bits(x * np.float32(w))
        assert np.array_equal(xor_signed_bits(x_bits, w_bit), expect)
    # per-element weights broadcast, bools accepted
    w_bits = np.arange(x_bits.size) % 2 == 1
    expect = f32_to_bits(x * np.where(w_bits, np.float32(-1), np.float32(1)))
    assert np.array_equal(xor_signed_bits(x_bits, w_bits), expect)


def test_ternary_bitwise_is_ieee_multiply():
    x_bits = random_f32_bits(np.random.default_rng(2), 20000)
    x = bits_to_f32(x_bits)
    finite = np.isfinite(x)
    for code, w in ((0b00, 0.0), (0b01, 1.0), (0b11, -1.0)):
        got = ternary_bitwise(x_bits, code)
        keep = finite if w == 0.0 else np.ones_like(finite)  # inf * 0 is NaN in IEEE
        assert np.array_equal(got[keep], f32_to_bits(x[keep] * np.float32(w)))
    # weight 0 on infinities gives a zero with the sign of x (IEEE would give NaN)
    inf_bits = np.array([0x7F800000, 0xFF800000], dtype=np.uint32)
    assert ternary_bitwise(inf_bits, 0).tolist() == [0, 0x80000000]


def test_bitwise_other_widths():
    # binary16 through the same rules: -2.5 is 0xC100
    h = np.array([-2.5, 1.5, 0.0], dtype=np.float16).view(np.uint16)
    assert ternary_bitwise(h, 0b11, width=16).dtype == np.uint16
    assert ternary_bitwise(h, 0b11, width=16).tolist() == [0x4100, 0xBE00, 0x8000]
    assert ternary_bitwise(h, 0b00, width=16).tolist() == [0x8000, 0x0000, 0x0000]
    assert xor_signed_bits(h, 1, width=16).tolist() == [0x4100, 0xBE00, 0x8000]
    d = np.array([1.5]).view(np.uint64)
    assert xor_signed_bits(d, 1, width=64).view(np.float64).tolist() == [-1.5]
    # a 10-bit minifloat pattern: E5M4 0.3125 times -1
    assert xor_signed_bits(0b0_01101_0100, 1, width=10).tolist() == 0b1_01101_0100


# --- exhaustive 8-bit formats against the Fraction reference -----------------------------

SMALL_FORMATS = [
    MinifloatFormat(4, 3),
    MinifloatFormat(5, 2),
    MinifloatFormat(3, 4),
    MinifloatFormat(4, 3, 11),  # non-default bias
    MinifloatFormat(3, 4, -2),  # negative bias: no value below 1
    MinifloatFormat(3, 4, 9),  # large bias: everything from 0.5 up saturates
    MinifloatFormat(7, 0),  # no mantissa: ties go to the even exponent code
    MinifloatFormat(1, 6),  # one exponent bit, bias 0
    MinifloatFormat(2, 1),  # 4 bits
]


@pytest.mark.parametrize("fmt", SMALL_FORMATS, ids=str)
def test_every_code_decodes_and_round_trips(fmt):
    codes = np.arange(1 << fmt.width, dtype=np.uint64)
    vals = fmt.decode(codes)
    table = ref_table(fmt.exp_bits, fmt.man_bits, fmt.bias)
    half = 1 << (fmt.width - 1)
    for c, v in zip(codes.tolist(), vals.tolist(), strict=True):
        assert Fraction(v) == (-1 if c >= half else 1) * table[c % half]
        assert math.copysign(1.0, v) == (-1.0 if c >= half else 1.0)  # -0.0 for code `half`
    assert np.array_equal(fmt.encode(vals), codes)  # both zeros round-trip by sign
    assert np.array_equal(fmt.quantize(vals), vals)


@pytest.mark.parametrize("fmt", SMALL_FORMATS, ids=str)
def test_encode_matches_reference(fmt):
    x = probe_values(fmt, np.random.default_rng(fmt.width * 100 + fmt.exp_bits), 2000)
    got = fmt.encode(x)
    expect = np.array([ref_encode(fmt, float(v)) for v in x], dtype=np.uint64)
    assert np.array_equal(got, expect)


def test_ties_hand_picked():
    f = MinifloatFormat(4, 3)  # bias 7, step 2**-3 in [1, 2)
    # 1 + 1/16 is halfway between 1 (man 000) and 1.125 (man 001): even is 1
    assert f.quantize(1 + 1 / 16) == 1.0
    # 1.125 + 1/16 is halfway between 1.125 (001) and 1.25 (010): even is 1.25
    assert f.quantize(1.125 + 1 / 16) == 1.25
    # 1.9375 is halfway between 1.875 (111) and 2.0: carries into the next binade
    assert int(f.encode(1.9375)) == 8 << 3
    # subnormal step 2**-9; the largest subnormal 7 * 2**-9 and the smallest normal 2**-6:
    # their midpoint 15 * 2**-10 rounds up into the normal range (code 0b0001_000)
    assert int(f.encode(15 * 2.0**-10)) == 0b0001_000
    # half the smallest subnormal rounds to (signed) zero, a hair more rounds up
    assert int(f.encode(2.0**-10)) == 0
    assert int(f.encode(-(2.0**-10))) == 0x80
    assert int(f.encode(np.nextafter(2.0**-10, 1))) == 1
    # max is 1.875 * 2**8 = 480; everything above saturates, sign kept
    assert f.max_finite == 480.0
    assert f.encode([496.0, 1e300, np.inf, -np.inf]).tolist() == [0x7F, 0x7F, 0x7F, 0xFF]
    # E7M0: values are powers of two; 3 * 2**k ties between codes k + 63 and k + 64
    g = MinifloatFormat(7, 0)
    assert int(g.encode(3.0)) == 64  # 2 is code 64 (even), 4 is code 65
    assert int(g.encode(6.0)) == 66  # 4 is code 65, 8 is code 66 (even)


def test_ocp_mx_small_formats():
    # Known value sets of the OCP MX formats without inf/NaN (FP4 E2M1, FP6 E2M3, E3M2).
    fp4 = MinifloatFormat(2, 1)
    assert fp4.decode(np.arange(8)).tolist() == [0, 0.5, 1, 1.5, 2, 3, 4, 6]
    assert (MinifloatFormat(2, 3).max_finite, MinifloatFormat(2, 3).min_subnormal) == (7.5,
                                                                                      0.125)
    assert (MinifloatFormat(3, 2).max_finite, MinifloatFormat(3, 2).min_subnormal) == (28.0,
                                                                                      0.0625)


@cache
def cached_format(e, m, bias):
    return MinifloatFormat(e, m, bias)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 5), st.integers(0, 4), st.integers(-4, 20), st.data())
def test_encode_random_formats(e, m, bias, data):
    fmt = cached_format(e, m, bias)
    vals = ref_table(e, m, bias)
    i = data.draw(st.integers(0, len(vals) - 2))
    mid = float((vals[i] + vals[i + 1]) / 2)
    x = data.draw(st.one_of(st.floats(allow_nan=False), st.sampled_from(
        [mid, -mid, float(np.nextafter(mid, 0)), float(np.nextafter(mid, np.inf))])))
    assert int(fmt.encode(x)) == ref_encode(fmt, x)


# --- wide formats against numpy's IEEE types ---------------------------------------------


def f32_ties(rng, n):
    """Exact float64 midpoints of random neighbouring float32 pairs, subnormals included."""
    a = rng.integers(0, 0x7F7FFFFF, n, dtype=np.uint64).astype(np.uint32)
    a = np.concatenate([a, np.array([0, 1, 0x007FFFFF, 0x3FFFFFFF, 0x7F7FFFFE],
                                    dtype=np.uint32)])
    lo, hi = a.view(np.float32).astype(np.float64), (a + 1).view(np.float32).astype(np.float64)
    return (lo + hi) / 2


def test_e8m23_matches_float32():
    f = MinifloatFormat(8, 23, 127)
    assert f.name == "E8M23"
    rng = np.random.default_rng(3)
    n = 20000
    x = rng.uniform(1, 2, n) * np.exp2(rng.integers(-160, 128, n))  # normals and subnormals
    x = np.concatenate([x, f32_ties(rng, 5000), [2.0**-150, 0.0, 1e-300]])
    x = np.concatenate([x, -x])
    x = x[np.abs(x) < np.float64(np.finfo(np.float32).max)]  # float32 would give inf
    assert np.array_equal(f.encode(x), np.float32(x).view(np.uint32).astype(np.uint64))
    codes = rng.integers(0, 0x7F800000, 5000, dtype=np.uint64)
    codes = np.concatenate([codes, codes | np.uint64(0x80000000)])
    assert np.array_equal(f.decode(codes), codes.astype(np.uint32).view(np.float32))
    # No infinity: exponent 0xFF is one more binade, and overflow saturates to its top.
    assert f.decode(0x7F800000) == 2.0**128
    assert f.max_finite == (2 - 2.0**-23) * 2.0**128
    assert f.encode([1e39, -1e39, np.inf]).tolist() == [0x7FFFFFFF, 0xFFFFFFFF, 0x7FFFFFFF]


def test_e5m10_matches_float16():
    f = MinifloatFormat(5, 10)
    codes = np.arange(1 << 16, dtype=np.uint64)
    finite = ((codes >> np.uint64(10)) & np.uint64(31)) != 31  # float16's exponent 31 is inf/NaN
    half = codes.astype(np.uint16).view(np.float16)
    assert np.array_equal(f.decode(codes[finite]), half[finite].astype(np.float64))
    vals = f.decode(codes[finite])
    mids = (vals[1:1023 * 31] + vals[:1023 * 31 - 1]) / 2  # positive neighbours, exact
    x = np.concatenate([mids, np.nextafter(mids, 0), np.nextafter(mids, np.inf)])
    x = np.concatenate([x, -x])
    x = x[np.abs(x) < 65520.0]  # float16 rounds these to inf
    assert np.array_equal(f.encode(x), np.float16(x).view(np.uint16).astype(np.uint64))


def test_wide_formats_beyond_float64():
    f = MinifloatFormat(11, 52)  # like float64, but exponent 2047 is a finite binade
    assert not f.fits_float64 and f.max_finite == math.inf
    rng = np.random.default_rng(4)
    x = rng.uniform(-1, 1, 1000) * np.exp2(rng.integers(-1074, 1024, 1000))
    x = np.concatenate([x, [5e-324, -5e-324, np.finfo(np.float64).max]])
    assert np.array_equal(f.encode(x), x.view(np.uint64))  # every float64 is exact
    assert np.array_equal(f.decode(x.view(np.uint64)), x)
    assert f.decode(0x7FF0000000000000) == math.inf  # 2**1024 rounds to inf in float64
    assert MinifloatFormat(11, 51, 1024).fits_float64
    assert MinifloatFormat(8, 23).fits_float64 and MinifloatFormat(10, 20).fits_float64


# --- format properties and errors ---------------------------------------------------------


def test_format_properties():
    f = MinifloatFormat(5, 4)
    assert (f.width, f.bias, f.name, str(f)) == (10, 15, "E5M4", "E5M4")
    assert f == MinifloatFormat(5, 4, 15)
    assert f.max_finite == 31 * 2.0**12  # (2**5 - 1) * 2**(31 - 15 - 4)
    assert f.min_normal == 2.0**-14
    assert f.min_subnormal == 2.0**-18
    g = MinifloatFormat(4, 3, -2)
    assert g.name == "E4M3b-2" and MinifloatFormat(4, 3, 9).name == "E4M3b9"
    assert MinifloatFormat(7, 0).min_subnormal == MinifloatFormat(7, 0).min_normal == 2.0**-62
    with pytest.raises(AttributeError):
        f.bias = 3


@pytest.mark.parametrize("args, match", [
    ((0, 3), "exp_bits must be 1..11, not 0"),
    ((12, 3), "exp_bits must be 1..11, not 12"),
    ((4, -1), "man_bits must be 0..52, not -1"),
    ((4, 53), "man_bits must be 0..52, not 53"),
    ((4.0, 3), "exp_bits must be an integer, not 4.0"),
    ((True, 3), "exp_bits must be an integer"),
    ((4, 3, 1.5), "bias must be an integer, not 1.5"),
    ((4, 3, 5000), r"bias must be -4096..4096, not 5000"),
])
def test_format_errors(args, match):
    with pytest.raises(ValueError, match=match):
        MinifloatFormat(*args)


def test_codec_errors():
    f = MinifloatFormat(5, 4)
    with pytest.raises(ValueError, match=r"x contains 2 NaN value\(s\); first at index \(1,\)"):
        f.encode([1.0, np.nan, 2.0, np.nan])
    with pytest.raises(ValueError, match=r"1 code value\(s\) out of range for E5M4 \(width 10\) "
                                         r"\(0..1023\); first is 1024 at index \(2,\)"):
        f.decode([0, 1023, 1024])
    with pytest.raises(ValueError, match="first is -1 at index"):
        f.decode(np.array([-1]))
    with pytest.raises(ValueError, match="code must hold integers, not dtype float64"):
        f.decode([0.5])
    with pytest.raises(ValueError, match="out of range"):
        MinifloatFormat(2, 1).decode(np.array([16], dtype=np.uint8))
    assert MinifloatFormat(11, 52).decode(np.array([2**64 - 1], dtype=np.uint64))[0] < 0


def test_bitwise_errors():
    with pytest.raises(ValueError, match="w_bits value"):
        xor_signed_bits(0, 2)
    with pytest.raises(ValueError, match=r"ternary weight code 2 \(0b10\) is unused"):
        ternary_bitwise(np.array([0, 0]), np.array([1, 2]))
    with pytest.raises(ValueError, match="w_codes value"):
        ternary_bitwise(0, 4)
    with pytest.raises(ValueError, match="width must be 2..64, not 65"):
        xor_signed_bits(0, 0, width=65)
    with pytest.raises(ValueError, match=r"x_bits value\(s\) out of range for width 16"):
        xor_signed_bits(1 << 16, 0, width=16)
    with pytest.raises(ValueError, match="out of range for float32"):
        bits_to_f32(np.array([1 << 32]))


# --- the exponent-width rule ---------------------------------------------------------------


def test_recommend_exponent_bits():
    # E = ceil(log2(e_max - e_min + 1 + z)), worked by hand:
    # max 0.75 -> e_max = -1 (0.5 <= 0.75 < 1); min nonzero 0.1 -> e_min = -4 (1/16 <= 0.1)
    # z = 1: -1 + 4 + 1 + 1 = 5 -> ceil(log2 5) = 3;  z = 0: 4 -> 2
    assert recommend_exponent_bits([0.75, -0.1, 0.0]) == 3
    assert recommend_exponent_bits([0.75, -0.1, 0.0], reserve_zero=False) == 2
    # one binade: 0 - 0 + 1 + 1 = 2 -> 1;  without z: 1 -> log2 1 = 0, raised to the minimum 1
    assert recommend_exponent_bits([1.0, -1.5]) == 1
    assert recommend_exponent_bits([1.0], reserve_zero=False) == 1
    # e_max = 1, e_min = -13: 1 + 13 + 1 + 1 = 16 -> exactly 4;  e_min = -14: 17 -> 5
    assert recommend_exponent_bits([2.0, 2.0**-13]) == 4
    assert recommend_exponent_bits([2.0, 2.0**-14]) == 5
    # min_magnitude overrides the smallest weight: e_max = 1, e_min = -3: 1 + 3 + 1 + 1 = 6 -> 3
    # (without it e_min = -20: 1 + 20 + 1 + 1 = 23 -> 5)
    assert recommend_exponent_bits([3.0, 2.0**-20], min_magnitude=0.125) == 3
    assert recommend_exponent_bits([3.0, 2.0**-20]) == 5
    # just below a power of two: e_max = floor(log2(2 - 2**-52)) = 0, e_min = -2: 0 + 2 + 1 + 1
    # = 4 -> 2 (a rounded log2 would say e_max = 1 and give 3)
    assert recommend_exponent_bits([np.nextafter(2.0, 0), 0.25]) == 2


@pytest.mark.parametrize("w, kw, match", [
    ([], {}, "w is empty"),
    ([0.0, 0.0], {}, "no nonzero weight"),
    ([1.0, np.nan], {}, "1 NaN or infinite"),
    ([1.0], {"min_magnitude": 0.0}, "min_magnitude must be positive"),
    ([1.0], {"min_magnitude": 2.0}, r"at most max\|w\| = 1.0, not 2.0"),
])
def test_recommend_exponent_bits_errors(w, kw, match):
    with pytest.raises(ValueError, match=match):
        recommend_exponent_bits(w, **kw)


# --- ASB score -------------------------------------------------------------------------------


def test_asb_score():
    # (0.9 + 0.5 + (1 - 2/16)) / 3 = 2.275 / 3
    assert asb_score(0.9, 0.5, 2, 16) == pytest.approx(2.275 / 3, rel=1e-15)
    assert asb_score(1.0, 0.0, 16, 16) == pytest.approx(1 / 3, rel=1e-15)  # all-float model
    assert asb_score(1.0, 1.0, 0, 16) == 1.0
    # three layers of 100, 200 and 50 weights as float, ternary, binary:
    # bits = 100*16 + 200*2 + 50*1 = 2050 of max 350*16 = 5600
    bits = 100 * MPWN_BITS["float"] + 200 * MPWN_BITS["ternary"] + 50 * MPWN_BITS["binary"]
    expect = (Fraction("0.95") + Fraction("0.2") + 1 - Fraction(2050, 5600)) / 3
    assert bits == 2050
    assert asb_score(0.95, 0.2, bits, 5600) == pytest.approx(float(expect), rel=1e-15)
    out = asb_score(np.array([0.9, 1.0]), 0.5, np.array([2, 16]), 16)
    assert isinstance(out, np.ndarray) and out.shape == (2,)
    assert isinstance(asb_score(0.9, 0.5, 2, 16), float)


@pytest.mark.parametrize("args, match", [
    ((1.1, 0.5, 2, 16), "accuracy must be a fraction in 0..1"),
    ((np.nan, 0.5, 2, 16), "accuracy must be a fraction"),
    ((0.9, -0.1, 2, 16), "sparsity must be a fraction in 0..1"),
    ((0.9, 0.5, 17, 16), "bits must be in 0..max_bits"),
    ((0.9, 0.5, -1, 16), "bits must be in 0..max_bits"),
    ((0.9, 0.5, 0, 0), "max_bits must be positive"),
])
def test_asb_score_errors(args, match):
    with pytest.raises(ValueError, match=match):
        asb_score(*args)
