"""Weight schemes: the code tables of NUMERICS.md section 2, exhaustively, and the quantizers."""

from fractions import Fraction

import numpy as np
import pytest

from rtl_gen.numerics.schemes import SCHEME_KINDS, WeightScheme, parse_scheme

ALL = [WeightScheme("binary", 1), WeightScheme("ternary", 2)] + [
    WeightScheme(kind, b)
    for kind, widths in (("pot", range(2, 7)), ("apot", range(3, 6)), ("int", (2, 3, 4, 8, 16)),
                         ("signmag", (2, 5, 9)))
    for b in widths
]


def test_binary_codes():
    s = WeightScheme("binary", 1)
    assert s.decode(np.array([0, 1])).tolist() == [1, -1]  # 1 means -1


def test_ternary_codes():
    s = WeightScheme("ternary", 2)
    assert s.decode(np.array([0, 1, 3])).tolist() == [0, 1, -1]
    assert s.invalid_codes(np.array([0, 1, 2, 3])).tolist() == [False, False, True, False]


def test_pot4_vector():
    # NUMERICS.md section 2: b = 4, alpha = 1.
    s = WeightScheme("pot", 4)
    q = s.quantize(np.array([0.9, -0.3, 0.07, 0.004, -1.4]), alpha=1.0)
    assert (q.w_int * q.scale).tolist() == [1, -0.25, 0.0625, 0, -1]
    assert (q.codes & 0b111).tolist() == [1, 3, 5, 0, 1]
    assert (q.codes >> 3).tolist() == [0, 1, 0, 0, 1]


@pytest.mark.parametrize("b", range(2, 7))
def test_pot_table(b):
    s = WeightScheme("pot", b)
    f = 2 ** (b - 1) - 2
    for c in range(1, 2 ** (b - 1)):
        assert s.decode(np.array([c]))[0] == 2 ** (f - (c - 1))
        assert s.decode(np.array([c | 1 << (b - 1)]))[0] == -(2 ** (f - (c - 1)))
    assert s.decode(np.array([0]))[0] == 0
    assert s.invalid_codes(np.array([1 << (b - 1)]))[0]  # negative zero


def test_apot_levels_match_numerics():
    # NUMERICS.md "b = 3" (our apot4) and "b = 4" (our apot5).
    assert WeightScheme("apot", 4).level_values() == [
        Fraction(v, 10) for v in (0, 1, 2, 3, 4, 6, 8, 10)]
    sums = sorted({a + b for a in (0, Fraction(1, 2), Fraction(1, 8), Fraction(1, 32))
                   for b in (0, Fraction(1, 4), Fraction(1, 16), Fraction(1, 64))})
    assert WeightScheme("apot", 5).level_values() == [v / Fraction(3, 4) for v in sums]


@pytest.mark.parametrize("b", (2, 4, 8, 16))
def test_int_symmetric(b):
    s = WeightScheme("int", b)
    assert s.levels().tolist() == list(range(-(2 ** (b - 1) - 1), 2 ** (b - 1)))
    assert s.invalid_codes(np.array([2 ** (b - 1)]))[0]  # the -2**(b-1) pattern


@pytest.mark.parametrize("s", ALL, ids=str)
def test_every_code_round_trips(s):
    codes = np.arange(1 << s.bits)
    ok = ~s.invalid_codes(codes)
    w = s.decode(codes[ok])
    assert np.array_equal(s.encode(w), codes[ok])
    assert len(np.unique(w)) == ok.sum()  # one code per value
    assert np.abs(w).max() == s.w_int_max < 2 ** s.magnitude_bits


@pytest.mark.parametrize("s", ALL, ids=str)
def test_quantize_picks_a_nearest_level(s):
    rng = np.random.default_rng(1)
    w = rng.normal(size=500)
    q = s.quantize(w)
    assert np.array_equal(s.decode(q.codes), q.w_int)
    if s.kind in ("pot", "apot", "int"):
        # no other level is strictly closer than the chosen one
        lv = s.levels() * q.scale
        err = np.abs(w[:, None] - lv[None, :])
        chosen = np.abs(w - q.w_int * q.scale)
        assert (chosen <= err.min(axis=1) + 1e-12).all()


def test_ternary_threshold_is_twn():
    w = np.array([1.0, -1.0, 0.2, -0.2, 0.5])  # mean|W| = 0.58, delta = 0.406
    q = WeightScheme("ternary", 2).quantize(w)
    assert q.w_int.tolist() == [1, -1, 0, 0, 1]
    assert q.scale == pytest.approx((1 + 1 + 0.5) / 3)


def test_signmag_is_term_revealing_quantizer():
    # sf = max|W| / 2**(bits-1) with 4 magnitude bits: sf = 2 / 8
    w = np.array([2.0, -0.9, 0.1, 0.13, -0.0])
    q = WeightScheme("signmag", 5).quantize(w)
    assert q.scale == 0.25
    assert q.w_int.tolist() == [8, -4, 0, 1, 0]  # floor(|x|/sf + 0.5)


def test_ties_go_away_from_zero():
    q = WeightScheme("int", 4).quantize(np.array([0.5, -1.5, 2.5]), alpha=1.0)
    assert q.w_int.tolist() == [1, -2, 3]


@pytest.mark.parametrize("name,kind,bits", [("binary", "binary", 1), ("pot4", "pot", 4),
                                            ("APoT4", "apot", 4), ("int8", "int", 8),
                                            ("signmag5", "signmag", 5)])
def test_parse_scheme(name, kind, bits):
    s = parse_scheme(name)
    assert (s.kind, s.bits) == (kind, bits)
    assert parse_scheme(s.name) == s


@pytest.mark.parametrize("name,message", [
    ("float", "unknown weight scheme 'float'"),
    ("int40", "int width must be 2..16 bits, not 40"),
    ("pot9", "pot width must be 2..6 bits, not 9"),
    ("apot2", "apot width must be 3..5 bits, not 2"),
])
def test_bad_scheme_names(name, message):
    with pytest.raises(ValueError, match=message):
        parse_scheme(name)


def test_bad_inputs():
    s = WeightScheme("int", 4)
    with pytest.raises(ValueError, match="NaN or infinite"):
        s.quantize(np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="code.*out of range for int4; first is 8 at index"):
        s.decode(np.array([1, 8]))
    with pytest.raises(ValueError, match="codes must be integers"):
        s.decode(np.array([1.0]))
    with pytest.raises(ValueError, match="9 at index .* is not a int4 level"):
        s.encode(np.array([9]))
    with pytest.raises(ValueError, match="unknown weight scheme"):
        WeightScheme("fp", 8)
    assert set(SCHEME_KINDS) == {"binary", "ternary", "pot", "apot", "int", "signmag"}


def test_scale_search_ties_go_to_the_smaller_scale():
    """int2 weights ``[-1, 2, 0.75]``: two neighbouring ratios of the search's grid (96 from
    0.25 to 1 of ``max|W|``) give the same squared error, the least; the smaller scale is
    taken."""
    s = parse_scheme("int2")
    w = np.array([-1.0, 2.0, 0.75])
    scales = [2.0 * float(r) / s.w_int_max for r in np.linspace(0.25, 1.0, 96)[47:49]]
    errs = [float(np.square(s.quantize(w, alpha=sc).w_int * sc - w).sum()) for sc in scales]
    assert errs[0] == errs[1]
    assert s.quantize(w).scale == scales[0]


def test_apot_integer_levels_count_in_units_of_the_least_term():
    """``w_int`` of an APoT level is its value in units of the smallest term (the hardware
    shifts by these): NUMERICS.md's apot4 levels 0.1 .. 1.0 are 1 .. 10, and apot5's sums of
    1/2, 1/8, 1/32 and 1/4, 1/16, 1/64 count 64ths."""
    def magnitudes(bits):
        return [int(v) for v in WeightScheme("apot", bits).levels() if v >= 0]
    assert magnitudes(4) == [0, 1, 2, 3, 4, 6, 8, 10]
    assert magnitudes(5) == sorted({a + b for a in (0, 32, 8, 2) for b in (0, 16, 4, 1)})


@pytest.mark.parametrize("name", ["int4", "pot3", "apot4", "ternary"])
def test_codes_outside_the_width_are_invalid(name):
    s = parse_scheme(name)
    assert s.invalid_codes(np.array([-1, 1 << s.bits, (1 << s.bits) + 1])).tolist() == \
        [True, True, True]


@pytest.mark.parametrize("bits", [True, 1.0, "1"])
def test_a_width_that_is_no_integer_is_refused(bits):
    with pytest.raises(ValueError, match=r"binary width must be an integer, not"):
        WeightScheme("binary", bits)
