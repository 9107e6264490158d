"""The float multiply/add model against numpy float32/float16/float64 and exact references."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from rtl_gen.numerics.floatops import (
    BINARY32,
    FloatFormat,
    convert,
    fadd,
    fmul,
)
from rtl_gen.numerics.minifloat import MinifloatFormat
from sim.vectors import close_exponent_pairs, edge_codes, random_finite, subnormal_pairs

N = 1_000_000
E4M3 = FloatFormat(4, 3)
E5M2 = FloatFormat(5, 2)
FP16 = FloatFormat(5, 10, ieee=True)
FP64 = FloatFormat(11, 52, ieee=True)

NP_TYPES = {32: (np.float32, np.uint32), 16: (np.float16, np.uint16),
            64: (np.float64, np.uint64)}


def numpy_op(op, a, b, width):
    """numpy's own IEEE result bits of ``a op b`` for bit patterns of ``width`` bits."""
    ft, ut = NP_TYPES[width]
    x, y = np.asarray(a, dtype=ut).view(ft), np.asarray(b, dtype=ut).view(ft)
    with np.errstate(all="ignore"):
        return (x * y if op is fmul else x + y).view(ut)


def is_nan(codes, fmt):
    c = np.asarray(codes).astype(np.uint64)
    return (c & np.uint64((1 << (fmt.width - 1)) - 1)) > np.uint64(fmt.inf_code)


def assert_codes_equal(got, want, a, b, what):
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    bad = np.flatnonzero(got.ravel() != want.ravel())
    if bad.size:
        i = bad[0]
        a, b = np.broadcast_arrays(a, b)
        pytest.fail(f"{what}: {bad.size} of {got.size} differ; first a={int(a.ravel()[i]):#x} "
                    f"b={int(b.ravel()[i]):#x} got {int(got.ravel()[i]):#x} want "
                    f"{int(want.ravel()[i]):#x}")


def binary32_pairs(seed):
    """The three generators' pairs, each N, concatenated."""
    rng = np.random.default_rng(seed)
    parts = [(random_finite(BINARY32, N, rng), random_finite(BINARY32, N, rng)),
             close_exponent_pairs(BINARY32, N, rng), subnormal_pairs(BINARY32, N, rng)]
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))


def all_pairs(fmt):
    codes = np.arange(1 << fmt.width, dtype=fmt.dtype)
    a, b = np.meshgrid(codes, codes, indexing="ij")
    return a.ravel(), b.ravel()


def edge_pairs(fmt):
    e = edge_codes(fmt)
    a, b = np.meshgrid(e, e, indexing="ij")
    return a.ravel(), b.ravel()


# -- binary32 against numpy -------------------------------------------------------------------


@pytest.mark.parametrize("op", [fmul, fadd], ids=["mul", "add"])
def test_binary32_random_equals_numpy(op):
    a, b = binary32_pairs(seed=1 if op is fmul else 2)
    assert a.dtype == np.uint32 and a.size == 3 * N
    assert_codes_equal(op(a, b, BINARY32), numpy_op(op, a, b, 32), a, b, f"{op.__name__}")


@pytest.mark.parametrize("op", [fmul, fadd], ids=["mul", "add"])
@pytest.mark.parametrize("fmt", [BINARY32, FP16, FP64], ids=lambda f: f.name)
def test_ieee_edge_cases_equal_numpy(op, fmt):
    a, b = edge_pairs(fmt)
    got, want = op(a, b, fmt), numpy_op(op, a, b, fmt.width)
    nan = is_nan(want, fmt)
    assert np.array_equal(is_nan(got, fmt), nan)
    assert np.all(got[nan] == fmt.nan_code)  # the one canonical NaN
    assert_codes_equal(got[~nan], want[~nan], a[~nan], b[~nan], op.__name__)


@pytest.mark.parametrize("op", [fmul, fadd], ids=["mul", "add"])
def test_fp16_random_equals_numpy(op):
    rng = np.random.default_rng(3)
    a = np.concatenate([random_finite(FP16, N // 4, rng), close_exponent_pairs(FP16, N // 4,
                                                                                rng)[0]])
    b = np.concatenate([random_finite(FP16, N // 4, rng), close_exponent_pairs(FP16, N // 4,
                                                                                rng)[1]])
    assert_codes_equal(op(a, b, FP16), numpy_op(op, a, b, 16), a, b, op.__name__)


@pytest.mark.parametrize("op", [fmul, fadd], ids=["mul", "add"])
def test_fp64_random_equals_numpy(op):
    rng = np.random.default_rng(4)
    a, b = random_finite(FP64, 20_000, rng), random_finite(FP64, 20_000, rng)
    sa, sb = subnormal_pairs(FP64, 20_000, rng)
    a, b = np.concatenate([a, sa]), np.concatenate([b, sb])
    assert_codes_equal(op(a, b, FP64), numpy_op(op, a, b, 64), a, b, op.__name__)


F32 = {"1": 0x3F800000, "1+u": 0x3F800001, "1.5": 0x3FC00000, "2^-24": 0x33800000,
       "max": 0x7F7FFFFF, "2": 0x40000000, "inf": 0x7F800000, "minsub": 0x00000001,
       "0.5": 0x3F000000, "0.75": 0x3F400000, "nan": 0x7FC00000, "snan": 0x7F800001}
NEG = 0x80000000


@pytest.mark.parametrize("op, a, b, want", [
    # ties to even
    (fadd, F32["1"], F32["2^-24"], F32["1"]),                  # 1 + half ulp -> 1 (even)
    (fadd, F32["1+u"], F32["2^-24"], 0x3F800002),              # odd + half ulp -> up
    (fmul, F32["1+u"], F32["1.5"], 0x3FC00002),                # 1.5 + 1.5 ulp -> even
    (fmul, F32["minsub"], F32["0.5"], 0),                      # half min subnormal -> 0
    (fmul, F32["minsub"] | NEG, F32["0.5"], NEG),              # underflow keeps the sign
    (fmul, F32["minsub"], F32["1.5"], 2),                      # 1.5 min subnormal -> 2
    (fmul, F32["minsub"], F32["0.75"], 1),                     # above half -> min subnormal
    # zeros
    (fadd, F32["1.5"], F32["1.5"] | NEG, 0),                   # x + (-x) = +0
    (fadd, NEG, NEG, NEG),                                     # (-0) + (-0) = -0
    (fadd, NEG, 0, 0),                                         # (-0) + (+0) = +0
    (fmul, NEG, F32["1.5"], NEG),                              # -0 * x = -0
    (fmul, NEG, NEG, 0),
    # overflow
    (fmul, F32["max"], F32["2"], F32["inf"]),
    (fadd, F32["max"], F32["max"], F32["inf"]),
    (fadd, F32["max"] | NEG, F32["max"] | NEG, F32["inf"] | NEG),
    (fadd, F32["max"], 0x73000000, F32["inf"]),                # + half ulp: tie, even is 2^128
    (fadd, F32["max"], 0x72FFFFFF, F32["max"]),                # just below the tie
    # infinities and NaN (the canonical NaN 0xFFC00000)
    (fmul, F32["inf"], 0, 0xFFC00000),
    (fmul, F32["inf"], F32["1.5"] | NEG, F32["inf"] | NEG),
    (fadd, F32["inf"], F32["inf"] | NEG, 0xFFC00000),
    (fadd, F32["inf"] | NEG, F32["max"], F32["inf"] | NEG),
    (fadd, F32["nan"], F32["1"], 0xFFC00000),
    (fmul, F32["1"], F32["snan"], 0xFFC00000),
])
def test_binary32_cases(op, a, b, want):
    got = op(np.uint32(a), np.uint32(b), BINARY32)
    assert got.dtype == np.uint32 and got.shape == ()
    assert int(got) == want, f"{op.__name__}({a:#x}, {b:#x}) = {int(got):#x}, want {want:#x}"
    assert int(op(np.uint32(b), np.uint32(a), BINARY32)) == want  # both commute


# -- minifloats against an exact reference ------------------------------------------------------


def _reference(op, a, b, fmt: FloatFormat):
    """``a op b`` in float64 (exact for these formats), rounded by MinifloatFormat.encode;
    IEEE formats: ``±inf`` operands and results beyond the largest finite value as IEEE."""
    mini = fmt.minifloat
    x, y = mini.decode(a), mini.decode(b)
    if fmt.ieee:
        for v, c in ((x, a), (y, b)):
            mag = c.astype(np.uint64) & np.uint64((1 << (fmt.width - 1)) - 1)
            v[mag == fmt.inf_code] = np.copysign(np.inf, v[mag == fmt.inf_code])
            v[mag > fmt.inf_code] = np.nan
    with np.errstate(all="ignore"):
        exact = x * y if op is fmul else x + y
    nan = np.isnan(exact)
    codes = mini.encode(np.where(nan, 0.0, exact))
    if fmt.ieee:
        mag = codes & np.uint64((1 << (fmt.width - 1)) - 1)
        sign = codes & np.uint64(1 << (fmt.width - 1))
        codes = np.where(mag > fmt.max_code, sign | np.uint64(fmt.inf_code), codes)
        codes = np.where(nan, np.uint64(fmt.nan_code), codes)
    return codes.astype(fmt.dtype)


MINI8 = [E4M3, E5M2, FloatFormat(4, 3, bias=11), FloatFormat(7, 0), FloatFormat(2, 5),
         FloatFormat(4, 3, ieee=True), FloatFormat(5, 2, ieee=True), FloatFormat(3, 4, ieee=True)]


@pytest.mark.parametrize("op", [fmul, fadd], ids=["mul", "add"])
@pytest.mark.parametrize("fmt", MINI8, ids=lambda f: f.name)
def test_8bit_formats_all_pairs_exact(op, fmt):
    a, b = all_pairs(fmt)
    assert a.size == 65536
    assert_codes_equal(op(a, b, fmt), _reference(op, a, b, fmt), a, b,
                       f"{op.__name__} {fmt.name}")


def test_minifloat_never_makes_nan_or_inf_and_saturates():
    top = np.uint8(E4M3.max_code)
    assert int(fmul(top, top, E4M3)) == E4M3.max_code
    assert int(fadd(top | np.uint8(0x80), top | np.uint8(0x80), E4M3)) == 0xFF  # -max
    assert E4M3.minifloat == MinifloatFormat(4, 3)
    assert E4M3.nan_code is None and E4M3.inf_code is None


def _encode_fraction(v: Fraction, fmt: FloatFormat) -> int:
    """The minifloat code of the exact rational ``v``: nearest, ties to the even code,
    saturating (a zero result is ``+0``)."""
    sign = int(v < 0) << (fmt.width - 1)
    v = abs(v)
    if v == 0:
        return 0
    e = v.numerator.bit_length() - v.denominator.bit_length()  # floor(log2 v) or one above
    if Fraction(2) ** e > v:
        e -= 1
    eb = max(e + fmt.bias, 1)
    scaled = v / Fraction(2) ** (eb - fmt.bias - fmt.man_bits)
    code = ((eb - 1) << fmt.man_bits) + math.floor(scaled)
    rem = scaled - math.floor(scaled)
    if rem > Fraction(1, 2) or (rem == Fraction(1, 2) and code & 1):
        code += 1
    return sign | min(code, fmt.max_code)


@pytest.mark.parametrize("op", [fmul, fadd], ids=["mul", "add"])
def test_wide_minifloat_against_fractions(op):
    """A 16-bit minifloat with a non-default bias: random pairs against exact rationals."""
    fmt = FloatFormat(6, 9, bias=20)
    rng = np.random.default_rng(5)
    a, b = close_exponent_pairs(fmt, 2000, rng)
    sa, sb = subnormal_pairs(fmt, 2000, rng)
    a, b = np.concatenate([a, sa, random_finite(fmt, 2000, rng)]), \
        np.concatenate([b, sb, random_finite(fmt, 2000, rng)])
    x, y = fmt.minifloat.decode(a).tolist(), fmt.minifloat.decode(b).tolist()
    exact = [Fraction(u) * Fraction(v) if op is fmul else Fraction(u) + Fraction(v)
             for u, v in zip(x, y, strict=True)]
    want = np.array([_encode_fraction(e, fmt) for e in exact], dtype=np.uint16)
    got = op(a, b, fmt)
    nonzero = np.array([e != 0 for e in exact])
    assert 0 < nonzero.sum() < nonzero.size
    assert_codes_equal(got[nonzero], want[nonzero], a[nonzero], b[nonzero], op.__name__)
    assert np.all((got[~nonzero] & np.uint16(0x7FFF)) == 0)  # zero signs: test_binary32_cases


# -- mixed formats and conversion -------------------------------------------------------------


def test_convert_e4m3_to_binary32_is_exact():
    codes = np.arange(256, dtype=np.uint8)
    f32 = convert(codes, E4M3, BINARY32)
    assert f32.dtype == np.uint32
    assert np.array_equal(f32.view(np.float32).astype(np.float64), E4M3.minifloat.decode(codes))
    assert np.array_equal(np.signbit(f32.view(np.float32)), codes >= 128)
    assert np.array_equal(convert(f32[:128], BINARY32, BINARY32), f32[:128])


def test_mixed_multiply_equals_converted_weight():
    rng = np.random.default_rng(6)
    a = np.concatenate([random_finite(BINARY32, N, rng), edge_codes(BINARY32)])
    w = rng.integers(0, 256, a.size, dtype=np.uint64).astype(np.uint8)
    got = fmul(a, w, BINARY32, b_fmt=E4M3)
    want = fmul(a, convert(w, E4M3, BINARY32), BINARY32)
    assert_codes_equal(got, want, a, w, "fp32 x E4M3")
    ref = numpy_op(fmul, a, convert(w, E4M3, BINARY32), 32)
    not_nan = ~is_nan(ref, BINARY32)
    assert_codes_equal(got[not_nan], ref[not_nan], a[not_nan], w[not_nan], "fp32 x E4M3 vs numpy")


# -- formats and errors -----------------------------------------------------------------------


def test_format_names_and_properties():
    assert BINARY32.name == "fp32" and BINARY32.width == 32 and BINARY32.dtype is np.uint32
    assert E5M2.name == "E5M2" and str(E4M3) == "E4M3"
    assert FP16.name == "ieeeE5M10" and FloatFormat(4, 3, bias=9).name == "E4M3b9"
    assert BINARY32.nan_code == 0xFFC00000 and BINARY32.inf_code == 0x7F800000
    assert BINARY32.max_code == 0x7F7FFFFF and E4M3.max_code == 0x7F
    assert FloatFormat(8, 23, ieee=True) == BINARY32 and BINARY32.bias == 127
    assert fmul(np.zeros((2, 3), np.uint8), np.zeros(3, np.uint8), E4M3).shape == (2, 3)
    assert fadd([1, 2], 3, E4M3).dtype == np.uint8


@pytest.mark.parametrize("kwargs, match", [
    ({"exp_bits": 1, "man_bits": 3, "ieee": True}, "exp_bits of an IEEE format"),
    ({"exp_bits": 4, "man_bits": 0, "ieee": True}, "man_bits of an IEEE format"),
    ({"exp_bits": 12, "man_bits": 3}, "exp_bits"),
    ({"exp_bits": 4, "man_bits": 3, "ieee": "yes"}, "ieee must be a bool"),
    ({"exp_bits": 4, "man_bits": 3, "bias": 1.5}, "bias"),
])
def test_bad_formats(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FloatFormat(**kwargs)


def test_bad_operands_and_formats():
    with pytest.raises(ValueError, match="a must hold integers"):
        fmul(np.array([1.0]), 1, E4M3)
    with pytest.raises(ValueError, match=r"1 b value\(s\) out of range for E4M3.*256 at index"):
        fadd(1, [1, 256], E4M3)
    with pytest.raises(ValueError, match="out of range for fp32"):
        fmul(-1, 0, BINARY32)
    with pytest.raises(ValueError, match="fmt must be a FloatFormat"):
        fmul(0, 0, MinifloatFormat(4, 3))
    with pytest.raises(ValueError, match="b_fmt E8M3 has values that ieeeE5M10 cannot hold"):
        fmul(0, 0, FP16, FloatFormat(8, 3))
    with pytest.raises(ValueError, match="minifloat weight format"):
        fmul(0, 0, BINARY32, FP16)
    with pytest.raises(ValueError, match="cannot convert fp32 to E8M23"):
        convert(0, BINARY32, FloatFormat(8, 23))
    with pytest.raises(ValueError, match="cannot convert E5M2 to E4M3"):
        convert(0, E5M2, E4M3)
    assert BINARY32.holds(E5M2) and BINARY32.holds(E4M3) and not E4M3.holds(E5M2)
    assert FP16.holds(E4M3) and not FP16.holds(FloatFormat(4, 11))
