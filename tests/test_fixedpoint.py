"""Requantization and the accumulator-width rule (NUMERICS.md section 1)."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtl_gen.numerics.fixedpoint import (
    MAX_SHIFT,
    acc_bits,
    requant_params,
    requantize,
    signed_bits,
)


def _fits(v, bits):
    return -(1 << (bits - 1)) <= v <= (1 << (bits - 1)) - 1


@pytest.mark.parametrize(
    "k,xb,x_signed,wb", list(itertools.product((1, 3, 7), (1, 2, 3), (False, True), (2, 3))))
def test_acc_bits_is_exact_and_minimal(k, xb, x_signed, wb):
    """Exhaustive over every input and weight vector's extremes: the rule's width holds the
    true worst case of sum x*w + b, and one bit less does not."""
    xs = range(-(1 << (xb - 1)), 1 << (xb - 1)) if x_signed else range(1 << xb)
    ws = range(-(1 << (wb - 1)) + 1, 1 << (wb - 1))  # symmetric weights
    b_max = 5
    # the extreme sums are reached with every product at its extreme, and the bias at +-b_max
    prods = [x * w for x in xs for w in ws]
    hi, lo = k * max(prods) + b_max, k * min(prods) - b_max
    x_max = max(abs(x) for x in xs)
    w_max = max(abs(w) for w in ws)
    width = acc_bits(k, x_max, w_max, b_max)
    assert _fits(hi, width) and _fits(lo, width)
    assert not (_fits(k * x_max * w_max + b_max, width - 1)
                and _fits(-(k * x_max * w_max + b_max), width - 1))


@settings(derandomize=True, max_examples=300)
@given(st.integers(1, 4096), st.integers(0, 2**16), st.integers(0, 2**16), st.integers(0, 2**30))
def test_acc_bits_holds_worst_case(k, x_max, w_max, b_max):
    width = acc_bits(k, x_max, w_max, b_max)
    worst = k * x_max * w_max + b_max
    assert _fits(worst, width) and _fits(-worst, width)
    assert width == 1 or not _fits(worst, width - 1) or not _fits(-worst, width - 1)


def test_signed_bits():
    assert [signed_bits(v) for v in (0, 1, 2, 127, 128)] == [1, 2, 3, 8, 9]
    with pytest.raises(ValueError, match="non-negative"):
        signed_bits(-1)


@settings(derandomize=True, max_examples=500)
@given(st.floats(2.0**-40, 2.0**10, allow_nan=False, allow_infinity=False))
def test_requant_params_close(scale):
    m, s = requant_params(scale)
    assert 0 < int(m) < 2**15 and 1 <= int(s) <= 62
    # M / 2**S is the nearest ratio with this S: within half an LSB of M
    assert abs(int(m) - scale * 2.0 ** int(s)) <= 0.5 + 1e-9
    if int(s) > 1 and scale < 2**13:
        assert int(m) >= 2**14  # full use of the multiplier width


def test_requantize_formula():
    acc = np.array([-100, 0, 1, 5, 6, 7, 1000, 2**20])
    m, s = np.int64(3), np.int64(2)  # y = (3*acc + 2) >> 2
    expect = [max(0, min(255, (3 * int(a) + 2) >> 2)) for a in acc]
    assert requantize(acc, m, s, 8).tolist() == expect
    assert requantize(np.array([7]), 1, 1, 8).tolist() == [4]  # 3.5 rounds half up


def test_requantize_per_channel():
    acc = np.array([[10, 10], [-3, 40]])
    y = requantize(acc, np.array([1, 2]), np.array([1, 2]), 4)
    assert y.tolist() == [[5, 5], [0, 15]]


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_requant_params_rejects(bad):
    with pytest.raises(ValueError, match="positive and finite"):
        requant_params(bad)


def test_acc_bits_rejects():
    with pytest.raises(ValueError, match="k must be at least 1"):
        acc_bits(0, 1, 1)
    with pytest.raises(ValueError, match="x_max must be a non-negative integer"):
        acc_bits(1, -1, 1)


def test_requant_params_rounding_into_a_new_bit_takes_one_shift_less():
    """0.999999 with 8-bit multipliers: 0.999999 * 2**8 rounds to 256, which needs 9 bits;
    one shift less gives 128 / 2**7 = 1, the nearest 8-bit ratio."""
    m, s = requant_params(0.999999, 8)
    assert (int(m), int(s)) == (128, 7)
    # without that carry the full 8 bits stay: 0.7 * 2**8 = 179.2, the nearest is 179 / 2**8
    m, s = requant_params(0.7, 8)
    assert (int(m), int(s)) == (179, 8)


def test_requant_params_largest_scale_of_a_width():
    """With ``S = 1`` an 8-bit multiplier reaches 255 / 2: 127.7 gives 255; 128 would need
    ``M = 256``, 9 bits, and is refused."""
    m, s = requant_params(127.7, 8)
    assert (int(m), int(s)) == (255, 1)
    with pytest.raises(ValueError, match="needs more than 8 bits"):
        requant_params(128.0, 8)


def test_requant_params_smallest_scale():
    """``S`` stops at MAX_SHIFT: 2**-MAX_SHIFT is ``M = 1``; half of it rounds to ``M = 0``
    and is refused."""
    m, s = requant_params(2.0**-MAX_SHIFT)
    assert (int(m), int(s)) == (1, MAX_SHIFT)
    with pytest.raises(ValueError, match="is below 2"):
        requant_params(2.0**-(MAX_SHIFT + 2))


def test_acc_bits_without_a_bias():
    """No bias unless given: one product of 1 * 1 is -1..1, two signed bits."""
    assert acc_bits(1, 1, 1) == 2
    assert acc_bits(1, 1, 1, 1) == 3
