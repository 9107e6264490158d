"""Bit-plane (binary decomposition) dot products (NUMERICS.md section 6)."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtl_gen.numerics.bitplane import (
    and_popcount,
    bit_planes,
    bitplane_dot,
    bitplane_steps,
    plane_weights,
    pm1_plane_dot,
)


def _values(bits, signed):
    return np.arange(-(2 ** (bits - 1)), 2 ** (bits - 1)) if signed else np.arange(2**bits)


def test_ebs_vector():
    """N = 8, M = 3 (two's complement weights), K = 2 (unsigned data): -18 in M*K = 6 steps."""
    x = [0, 1, 3, 1, 1, 3, 1, 1]
    w = [2, -2, -1, 2, -4, -2, -4, -1]
    got = bitplane_dot(x, w, x_bits=2, x_signed=False, w_bits=3, w_signed=True)
    assert got == -18 and got.dtype == np.int64
    assert np.dot(x, w) == -18
    assert bitplane_steps(3, 2) == 6


def test_ebs_vector_by_hand_from_planes():
    """The same -18 written out as the double sum over plane pairs of popcount(W_m AND X_k)."""
    x = np.array([0, 1, 3, 1, 1, 3, 1, 1])
    w = np.array([2, -2, -1, 2, -4, -2, -4, -1])
    xp, wp = bit_planes(x, 2, False), bit_planes(w, 3, True)
    assert wp[2].tolist() == [0, 1, 1, 0, 1, 1, 1, 1]  # the sign plane
    cx, cw = plane_weights(2, False), plane_weights(3, True)
    assert cw.tolist() == [1, 2, -4] and cx.tolist() == [1, 2]
    total = sum(int(cw[m] * cx[k]) * int(and_popcount(xp[k], wp[m]))
                for m in range(3) for k in range(2))
    assert total == -18


@pytest.mark.parametrize("bits", [1, 2, 3, 5, 8])
@pytest.mark.parametrize("signed", [False, True])
def test_bit_planes_exhaustive(bits, signed):
    q = _values(bits, signed)
    planes = bit_planes(q, bits, signed)
    assert planes.shape == (bits,) + q.shape and planes.dtype == np.uint8
    assert (planes <= 1).all()
    assert ((plane_weights(bits, signed)[:, None] * planes).sum(0) == q).all()
    for v, column in zip(q.tolist(), planes.T.tolist(), strict=True):
        pattern = format(v & (2**bits - 1), f"0{bits}b")[::-1]
        assert column == [int(ch) for ch in pattern]


def test_plane_weights():
    assert plane_weights(4, False).tolist() == [1, 2, 4, 8]
    assert plane_weights(4, True).tolist() == [1, 2, 4, -8]
    assert plane_weights(1, True).tolist() == [-1]
    assert plane_weights(62, True)[-1] == -(2**61)
    assert plane_weights(3, False).dtype == np.int64


@pytest.mark.parametrize("x_bits,w_bits", [(1, 1), (1, 3), (2, 2), (3, 2), (3, 3)])
@pytest.mark.parametrize("x_signed,w_signed", list(itertools.product((False, True), repeat=2)))
def test_bitplane_dot_exhaustive_small(x_bits, w_bits, x_signed, w_signed):
    """Every pair of length-2 vectors of the two widths."""
    xs = np.array(list(itertools.product(_values(x_bits, x_signed), repeat=2)))
    ws = np.array(list(itertools.product(_values(w_bits, w_signed), repeat=2)))
    got = bitplane_dot(xs, ws, x_bits=x_bits, x_signed=x_signed, w_bits=w_bits,
                       w_signed=w_signed)
    assert got.shape == (len(xs), len(ws))
    assert (got == xs @ ws.T).all()


@st.composite
def dot_cases(draw):
    x_bits, w_bits = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    x_signed, w_signed = draw(st.booleans()), draw(st.booleans())
    n = draw(st.integers(1, 150))
    out = draw(st.sampled_from([None, 1, 3]))
    batch = draw(st.sampled_from([(), (2,), (2, 3)]))
    seed = draw(st.integers(0, 2**32 - 1))
    return x_bits, x_signed, w_bits, w_signed, n, out, batch, seed


def _draw(rng, shape, bits, signed):
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1)) if signed else (0, 2**bits)
    return rng.integers(lo, hi, size=shape)


@settings(derandomize=True, max_examples=200, deadline=None)
@given(dot_cases())
def test_bitplane_dot_equals_matmul(case):
    x_bits, x_signed, w_bits, w_signed, n, out, batch, seed = case
    rng = np.random.default_rng(seed)
    x = _draw(rng, batch + (n,), x_bits, x_signed)
    w = _draw(rng, (n,) if out is None else (out, n), w_bits, w_signed)
    got = bitplane_dot(x, w, x_bits=x_bits, x_signed=x_signed, w_bits=w_bits,
                       w_signed=w_signed)
    expected = x @ w.T
    assert got.dtype == np.int64 and got.shape == np.shape(expected)
    assert (got == expected).all()


@settings(derandomize=True, max_examples=150, deadline=None)
@given(dot_cases())
def test_pm1_plane_dot_equals_signed_sum(case):
    x_bits, x_signed, _, _, n, out, batch, seed = case
    rng = np.random.default_rng(seed)
    x = _draw(rng, batch + (n,), x_bits, x_signed)
    c = rng.integers(0, 2, size=(n,) if out is None else (out, n))
    got = pm1_plane_dot(x, c, x_bits=x_bits, x_signed=x_signed)
    expected = x @ (2 * c - 1).T
    assert got.shape == np.shape(expected) and (got == expected).all()


def test_pm1_plane_dot_vector_and_binary_code():
    """c = 1 means +1; the binary weight *code* (1 means -1) is used through c = 1 - code."""
    x = [0, 1, 3, 1, 1, 3, 1, 1]
    c = [1, 0, 0, 1, 0, 0, 0, 0]
    assert pm1_plane_dot(x, c, x_bits=2, x_signed=False) == 0 - 1 - 3 + 1 - 1 - 3 - 1 - 1
    code = np.array([0, 1, 1, 0, 1, 1, 1, 1])  # NUMERICS.md section 2: 1 means -1
    assert pm1_plane_dot(x, 1 - code, x_bits=2, x_signed=False) == -9
    assert pm1_plane_dot([-2, 1], [True, False], x_bits=2, x_signed=True) == -3


@settings(derandomize=True, max_examples=100, deadline=None)
@given(st.integers(1, 200), st.integers(0, 2**32 - 1))
def test_and_popcount(n, seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 2, size=(3, n), dtype=np.uint8)
    b = rng.integers(0, 2, size=(4, n), dtype=np.uint8)
    assert (and_popcount(a, b) == a.astype(np.int64) @ b.T).all()
    assert (and_popcount(a, b[0]) == (a & b[0]).sum(-1)).all()


def test_wide_values():
    x = np.array([2**30 - 1, -(2**30), 5])
    w = np.array([-(2**29), 2**29 - 1, 7])
    got = bitplane_dot(x, w, x_bits=31, x_signed=True, w_bits=30, w_signed=True)
    assert got == int(x @ w)


@pytest.mark.parametrize("call,match", [
    (lambda: bit_planes([0, 8], 3, False), r"value 8 .*3-bit unsigned.*0\.\.7"),
    (lambda: bit_planes([-1], 3, False), r"value -1 .*unsigned"),
    (lambda: bit_planes([4], 3, True), r"value 4 .*3-bit signed.*-4\.\.3"),
    (lambda: bit_planes([-5], 3, True), r"value -5 "),
    (lambda: bit_planes(np.array([9], np.uint8), 3, False), r"value 9 "),
    (lambda: bit_planes([0.5], 3, True), r"integers, not dtype float64"),
    (lambda: bit_planes([1], 0, True), r"bits must be 1\.\.62, not 0"),
    (lambda: plane_weights(63, True), r"bits must be 1\.\.62"),
    (lambda: bitplane_steps(0, 4), r"w_bits must be 1\.\.62, not 0"),
    (lambda: bitplane_dot([1, 2], [1], x_bits=2, x_signed=False, w_bits=2, w_signed=True),
     r"same N"),
    (lambda: bitplane_dot([1], np.ones((2, 2, 1), int), x_bits=2, x_signed=False, w_bits=2,
                          w_signed=True), r"\(N,\) or \(O, N\)"),
    (lambda: bitplane_dot([1], [2], x_bits=2, x_signed=False, w_bits=2, w_signed=True),
     r"value 2 .*2-bit signed"),
    (lambda: bitplane_dot([1], [1], x_bits=40, x_signed=False, w_bits=30, w_signed=True),
     r"overflow"),
    (lambda: pm1_plane_dot([1, 2], [0, 2], x_bits=2, x_signed=False), r"c must be a bit plane"),
    (lambda: and_popcount([0, 1], [1, 1, 0]), r"same N"),
])
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()
