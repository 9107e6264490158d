"""HESE signed-digit terms and term revealing (NUMERICS.md sections 3 and 4)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtl_gen.numerics.terms import (
    group_term_order,
    hese_digits,
    hese_terms,
    prefix_digits,
    reveal_digits,
    term_count,
    term_pair_dot,
    term_reveal,
    truncate_digits,
    truncate_terms,
)

# --- slow, obviously correct references --------------------------------------------------


def slow_hese(v):
    """HESE terms of ``v`` as (exponent, sign) pairs, by scanning runs of 1-bits."""
    s = -1 if v < 0 else 1
    lsb_first = bin(abs(v))[2:][::-1]
    terms, j = [], 0
    while j < len(lsb_first):
        if lsb_first[j] == "0":
            j += 1
            continue
        lo = j
        while j < len(lsb_first) and lsb_first[j] == "1":
            j += 1
        hi = j - 1
        if hi > lo:  # a run of two or more ones: +2**(hi+1) - 2**lo
            terms += [(hi + 1, s), (lo, -s)]
        else:  # an isolated one stays
            terms.append((lo, s))
    return terms


def slow_reveal(values, group, budget):
    """Term revealing of a 1-D list: per group, sort all terms by (-e, idx), keep ``budget``."""
    out = [0] * len(values)
    for start in range(0, len(values), group):
        terms = [(e, s, i) for i in range(start, min(start + group, len(values)))
                 for e, s in slow_hese(values[i])]
        for e, s, i in sorted(terms, key=lambda t: (-t[0], t[2]))[:budget]:
            out[i] += s * 2**e
    return out


def slow_truncate(v, terms):
    return sum(s * 2**e for e, s in sorted(slow_hese(v), reverse=True)[:terms])


def _value(digits):
    return (digits.astype(np.int64) * (1 << np.arange(digits.shape[-1], dtype=np.int64))).sum(-1)


# --- NUMERICS.md section 3 vectors --------------------------------------------------------


@pytest.mark.parametrize("q,expected", [
    (23, [16, 8, -1]),
    (27, [32, -8, 4, -1]),
    (45, [32, 16, -4, 1]),
    (91, [64, 32, -8, 4, -1]),
    (127, [128, -1]),
    (-27, [-32, 8, -4, 1]),
])
def test_hese_vectors(q, expected):
    bits = abs(q).bit_length()
    assert hese_terms(q, bits) == expected
    assert hese_terms(q, 16) == expected  # the width only adds zero digits
    assert _value(hese_digits(q, bits)) == q


def test_hese_seven_needs_the_digit_above_the_msb():
    """7 = 8 - 1: with bits = 3 the +1 sits at exponent 3 = n, so exponents run over 0..n."""
    assert hese_terms(7, 3) == [8, -1]
    d = hese_digits(7, 3)
    assert d.shape == (4,) and d.dtype == np.int8
    assert d.tolist() == [-1, 0, 0, 1]
    assert hese_terms(-7, 3) == [-8, 1]


def test_hese_zero_and_shapes():
    assert hese_terms(0, 1) == []
    assert hese_digits(np.zeros((2, 3), np.int16), 4).shape == (2, 3, 5)
    assert term_count(np.array([[0, 7], [23, 255]]), 8).tolist() == [[0, 2], [3, 2]]
    assert term_count(5, 3) == 2


def test_hese_exhaustive_10_bits():
    bits = 10
    q = np.arange(-(2**bits) + 1, 2**bits)
    d = hese_digits(q, bits)
    assert d.shape == q.shape + (bits + 1,) and d.dtype == np.int8
    assert set(np.unique(d).tolist()) <= {-1, 0, 1}
    assert (_value(d) == q).all()
    ones = np.array([bin(abs(int(v))).count("1") for v in q])
    assert (np.count_nonzero(d, axis=-1) <= ones).all()
    ref = np.zeros_like(d)
    for row, v in enumerate(q.tolist()):
        for e, s in slow_hese(v):
            ref[row, e] = s
    assert (d == ref).all()
    # the same digits from every integer dtype that holds the values
    assert (hese_digits(q.astype(np.int16), bits) == d).all()
    assert (hese_digits(np.arange(2**bits, dtype=np.uint16), bits) == d[2**bits - 1:]).all()


def test_hese_term_statistics_8_bits():
    counts = term_count(np.arange(256), 8)
    assert counts.mean() == 3.25 and counts.max() == 6
    ones = np.array([bin(v).count("1") for v in range(256)])
    assert ones.mean() == 4.0 and ones.max() == 8


def test_hese_wide_values():
    q = np.array([2**62 - 1, -(2**62 - 1), 2**61 + 5])
    assert (_value(hese_digits(q, 62)) == q).all()
    assert hese_terms(2**62 - 1, 62) == [2**62, -1]


@pytest.mark.parametrize("call,match", [
    (lambda: hese_digits([1, 16, 3], 4), r"value 16 .*2\*\*4.*bits=4"),
    (lambda: hese_digits([-16], 4), r"value -16 .*bits=4"),
    (lambda: hese_digits(np.array([300], np.uint16), 8), r"value 300 .*bits=8"),
    (lambda: hese_terms(8, 3), r"value 8 .*bits=3"),
    (lambda: hese_digits([1.0, 2.0], 4), r"integers, not dtype float64"),
    (lambda: hese_digits([True], 4), r"integers, not dtype bool"),
    (lambda: hese_digits([1], 0), r"bits must be 1\.\.62, not 0"),
    (lambda: hese_digits([1], 63), r"bits must be 1\.\.62, not 63"),
    (lambda: hese_digits([1], 2.0), r"bits must be an integer"),
    (lambda: hese_terms(1.5, 4), r"one integer"),
    (lambda: reveal_digits([1, 2], 0, 1, 4), r"group must be at least 1, not 0"),
    (lambda: reveal_digits([1, 2], 2, -1, 4), r"budget must be at least 0, not -1"),
    (lambda: reveal_digits(3, 2, 1, 4), r"at least one axis"),
    (lambda: reveal_digits([1, 99], 2, 1, 4), r"value 99 .*bits=4"),
    (lambda: truncate_terms([1, 2], -2, 4), r"terms must be at least 0, not -2"),
    (lambda: group_term_order([1], 0, 4), r"group must be at least 1"),
    (lambda: prefix_digits(group_term_order([1], 1, 4), -1), r"budget must be at least 0"),
    (lambda: term_pair_dot([1, 2], [1, 2, 3], bits_x=4, bits_w=4, group=1, budget=1,
                           data_terms=1), r"same N"),
    (lambda: term_pair_dot([1], [1], bits_x=40, bits_w=30, group=1, budget=1, data_terms=1),
     r"overflow"),
    (lambda: term_pair_dot([1], [40], bits_x=4, bits_w=4, group=1, budget=1, data_terms=1),
     r"value 40 .*bits=4"),
])
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# --- NUMERICS.md section 4 vectors --------------------------------------------------------

TR_INPUT = [57, -13, 6, 100, 0, 3, -128, 21]


def test_tr_vector_k4():
    assert term_reveal(TR_INPUT, 8, 4, 8).tolist() == [64, 0, 0, 96, 0, 0, -128, 0]


def test_tr_vector_k8():
    assert term_reveal(TR_INPUT, 8, 8, 8).tolist() == [56, -16, 8, 96, 0, 0, -128, 16]


def test_tr_worked_example():
    w, x = [45, -7, 3, 12], [23, 5, 60, 1]
    assert term_reveal(w, 4, 6, 6).tolist() == [44, -8, 4, 16]
    assert truncate_terms(x, 2, 6).tolist() == [24, 5, 60, 1]
    value, pairs = term_pair_dot(x, w, bits_x=6, bits_w=6, group=4, budget=6, data_terms=2)
    assert value == 1272 and pairs == 11
    assert value.dtype == np.int64 and pairs.dtype == np.int64
    assert pairs <= 6 * 2  # at most k * s pairs per group
    assert np.dot(x, w) == 1192  # the exact product


def test_pairs_count_kept_digits_not_the_revealed_value():
    """27 = 32 - 8 + 4 - 1 keeps three terms (value 28), though HESE(28) = 32 - 4 has two."""
    assert truncate_terms(27, 3, 5) == 28
    assert term_count(28, 5) == 2
    value, pairs = term_pair_dot([27], [1], bits_x=5, bits_w=1, group=1, budget=1,
                                 data_terms=3)
    assert value == 28 and pairs == 3
    value, pairs = term_pair_dot([1], [27], bits_x=1, bits_w=5, group=1, budget=3,
                                 data_terms=1)
    assert value == 28 and pairs == 3


def test_budget_extremes_and_padding():
    q = np.array([[5, -7, 0, 127, 1], [0, 0, 0, 0, 0]])
    assert (term_reveal(q, 2, 0, 7) == 0).all()
    assert (term_reveal(q, 2, 100, 7) == q).all()
    assert (term_reveal(q, 3, 1, 7) == [[0, -8, 0, 128, 0], [0] * 5]).all()
    assert reveal_digits(q, 3, 1, 7).shape == (2, 5, 8)
    assert term_reveal(np.zeros((3, 0), np.int64), 4, 2, 3).shape == (3, 0)


# --- properties against the slow references -----------------------------------------------


@st.composite
def reveal_cases(draw):
    bits = draw(st.integers(1, 12))
    lim = 2**bits - 1
    n = draw(st.integers(1, 40))
    values = draw(st.lists(st.integers(-lim, lim), min_size=n, max_size=n))
    group = draw(st.sampled_from([1, 2, 3, 5, 8, 16, 64]))
    budget = draw(st.integers(0, 3 * group + 2))
    return values, group, budget, bits


@settings(derandomize=True, max_examples=300, deadline=None)
@given(reveal_cases())
def test_term_reveal_matches_reference(case):
    values, group, budget, bits = case
    got = term_reveal(values, group, budget, bits)
    assert got.dtype == np.int64
    assert got.tolist() == slow_reveal(values, group, budget)
    kept = reveal_digits(values, group, budget, bits)
    for start in range(0, len(values), group):
        assert np.count_nonzero(kept[start:start + group]) <= budget


@settings(derandomize=True, max_examples=100, deadline=None)
@given(reveal_cases(), st.integers(1, 4))
def test_term_reveal_batched_rows_are_independent(case, rows):
    values, group, budget, bits = case
    q = np.array([values[r:] + values[:r] for r in range(rows)])
    got = term_reveal(q, group, budget, bits)
    for row, ref in zip(q.tolist(), got.tolist(), strict=True):
        assert ref == slow_reveal(row, group, budget)


@settings(derandomize=True, max_examples=200, deadline=None)
@given(st.integers(1, 16).flatmap(
    lambda b: st.tuples(st.just(b), st.integers(-(2**b) + 1, 2**b - 1), st.integers(0, 10))))
def test_truncate_terms_matches_reference(case):
    bits, v, terms = case
    assert truncate_terms(v, terms, bits) == slow_truncate(v, terms)
    assert term_reveal([v], 1, terms, bits).tolist() == [slow_truncate(v, terms)]
    assert np.count_nonzero(truncate_digits(v, terms, bits)) == min(terms, len(slow_hese(v)))


@settings(derandomize=True, max_examples=150, deadline=None)
@given(reveal_cases())
def test_group_term_order_prefix_is_term_revealing(case):
    values, group, _, bits = case
    order = group_term_order(values, group, bits)
    ng = -(-len(values) // group)
    t = order.sign.shape[-1]
    assert order.exponent.shape == order.index.shape == (ng, t)
    assert t == order.count.max()
    for k in range(t + 2):
        assert (prefix_digits(order, k) == reveal_digits(values, group, k, bits)).all()
    # each group reads as the reference's sorted term list, padded with sign 0
    for gi in range(ng):
        start = gi * group
        ref = sorted(((e, s, i - start) for i in range(start, min(start + group, len(values)))
                      for e, s in slow_hese(values[i])), key=lambda x: (-x[0], x[2]))
        c = int(order.count[gi])
        assert c == len(ref)
        got = list(zip(order.exponent[gi, :c].tolist(), order.sign[gi, :c].tolist(),
                       order.index[gi, :c].tolist(), strict=True))
        assert got == ref
        assert (order.sign[gi, c:] == 0).all()


def test_group_term_order_tr_vector():
    order = group_term_order(TR_INPUT, 8, 8)
    first4 = list(zip(order.exponent[0, :4].tolist(), order.sign[0, :4].tolist(),
                      order.index[0, :4].tolist(), strict=True))
    assert first4 == [(7, 1, 3), (7, -1, 6), (6, 1, 0), (5, -1, 3)]
    assert (_value(prefix_digits(order, 8)) == [56, -16, 8, 96, 0, 0, -128, 16]).all()
    empty = group_term_order(np.zeros((2, 5), np.int8), 2, 3)
    assert empty.sign.shape == (2, 3, 0) and (empty.count == 0).all()
    assert (prefix_digits(empty, 4) == 0).all() and prefix_digits(empty, 4).shape == (2, 5, 4)


@st.composite
def dot_cases(draw):
    bx, bw = draw(st.integers(1, 10)), draw(st.integers(1, 10))
    n = draw(st.integers(1, 33))
    x = draw(st.lists(st.integers(-(2**bx) + 1, 2**bx - 1), min_size=n, max_size=n))
    w = draw(st.lists(st.integers(-(2**bw) + 1, 2**bw - 1), min_size=n, max_size=n))
    group = draw(st.sampled_from([1, 2, 4, 8, 16]))
    budget = draw(st.integers(0, 2 * group + 1))
    s = draw(st.integers(0, 6))
    return x, w, bx, bw, group, budget, s


@settings(derandomize=True, max_examples=200, deadline=None)
@given(dot_cases())
def test_term_pair_dot_matches_reference(case):
    x, w, bx, bw, group, budget, s = case
    value, pairs = term_pair_dot(x, w, bits_x=bx, bits_w=bw, group=group, budget=budget,
                                 data_terms=s)
    wr = slow_reveal(w, group, budget)
    xr = [slow_truncate(v, s) for v in x]
    assert value == sum(a * b for a, b in zip(xr, wr, strict=True))
    # pairs from the kept term lists of the reference (not from re-encoding the values)
    kept_w = [0] * len(w)
    for start in range(0, len(w), group):
        terms = [(e, i) for i in range(start, min(start + group, len(w)))
                 for e, _ in slow_hese(w[i])]
        for _, i in sorted(terms, key=lambda t: (-t[0], t[1]))[:budget]:
            kept_w[i] += 1
    kept_x = [min(s, len(slow_hese(v))) for v in x]
    assert pairs == sum(a * b for a, b in zip(kept_x, kept_w, strict=True))
    ngroups = -(-len(w) // group)
    assert pairs <= ngroups * budget * s
    if budget >= 2 * group * (bw + 1) and s >= bx + 1:
        assert value == np.dot(x, w)


def test_term_pair_dot_batched():
    rng = np.random.default_rng(7)
    x = rng.integers(-63, 64, size=(3, 2, 20))
    w = rng.integers(-31, 32, size=(5, 20))
    kw = dict(bits_x=6, bits_w=5, group=8, budget=5, data_terms=2)
    value, pairs = term_pair_dot(x, w, **kw)
    assert value.shape == pairs.shape == (3, 2, 5)
    xr, wr = truncate_terms(x, 2, 6), term_reveal(w, 8, 5, 5)
    assert (value == xr @ wr.T).all()
    for idx in np.ndindex(3, 2):
        for o in range(5):
            v, p = term_pair_dot(x[idx], w[o], **kw)
            assert v == value[idx + (o,)] and p == pairs[idx + (o,)]
    v1, p1 = term_pair_dot(x, w[0], **kw)
    assert v1.shape == (3, 2) and (v1 == value[..., 0]).all() and (p1 == pairs[..., 0]).all()


def test_group_term_order_pads_with_zeros():
    """7 = 8 - 1 has two HESE terms and 1 one: the second group's second slot is padding,
    sign, exponent and index 0."""
    order = group_term_order(np.array([7, 0, 1, 0]), 2, 4)
    assert order.count.tolist() == [2, 1]
    assert order.sign.tolist()[1][1] == 0
    assert order.exponent.tolist()[1][1] == 0
    assert order.index.tolist()[1][1] == 0
