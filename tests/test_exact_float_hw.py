"""The exact contract's shared aligner and normaliser (Verilator batch evaluator) against the
models :func:`rtl_gen.numerics.exact.align_fp32` and :func:`~rtl_gen.numerics.exact.round_fixed`:
a million random inputs each, plus every edge case (zeros of both signs, subnormals,
infinities, NaN, window overflow and underflow, ties)."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth import Cat, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rtl_gen.hw.exact_float import EXP_BITS, ExactAligner, ExactNormaliser, ProductAligner
from rtl_gen.numerics.exact import (
    DEFAULT_WINDOW,
    ExactWindow,
    align_fp32,
    product_terms,
    round_fixed,
)
from rtl_gen.numerics.floatops import BINARY32, FloatFormat
from sim.runner import missing_simulator
from sim.vectors import edge_codes, eval_binary_op, random_finite

N = 1_000_000


@pytest.fixture(scope="module", autouse=True)
def _verilator():
    why = missing_simulator("verilator")
    if why:
        pytest.skip(f"needs Verilator: {why}")


class AlignerOp(wiring.Component):
    """``o = {nan, big, sign, mag}`` of ``a`` (``b`` unused): the evaluator's ports."""

    def __init__(self, window):
        self.window = window
        super().__init__({"a": In(32), "b": In(1), "o": Out(window.width + 3)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.unit = u = ExactAligner(self.window)
        m.d.comb += [u.x.eq(self.a), self.o.eq(Cat(u.mag, u.sign, u.big, u.nan))]
        return m


class ProductOp(wiring.Component):
    """``o = {nan, big, sign, mag}`` of ``x = a`` times the weight code ``b``."""

    def __init__(self, window, w_fmt):
        self.window, self.w_fmt = window, w_fmt
        super().__init__({"a": In(32), "b": In(w_fmt.width), "o": Out(window.width + 3)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.unit = u = ProductAligner(self.window, self.w_fmt)
        m.d.comb += [u.x.eq(self.a), u.w.eq(self.b),
                     self.o.eq(Cat(u.mag, u.sign, u.big, u.nan))]
        return m


class NormaliserOp(wiring.Component):
    """``o`` of ``n = a`` (two's complement) and ``b = {ninf, pinf, exp}``."""

    def __init__(self, acc_bits, exp_range=None):
        self.acc_bits, self.exp_range = acc_bits, exp_range
        super().__init__({"a": In(acc_bits), "b": In(EXP_BITS + 2), "o": Out(32)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.unit = u = ExactNormaliser(self.acc_bits, exp_range=self.exp_range)
        m.d.comb += [u.n.eq(self.a.as_signed()), u.exp.eq(self.b[:EXP_BITS].as_signed()),
                     u.pinf.eq(self.b[EXP_BITS]), u.ninf.eq(self.b[EXP_BITS + 1]),
                     self.o.eq(u.o)]
        return m


def first_difference(got, want, inputs, what):
    bad = np.flatnonzero(got != want)
    if bad.size:
        i = bad[0]
        pytest.fail(f"{what}: {bad.size} of {got.size} differ; first input "
                    f"{[hex(int(v[i])) for v in inputs]} hardware {int(got[i]):#x} model "
                    f"{int(want[i]):#x}")


def aligner_inputs(window: ExactWindow, rng) -> np.ndarray:
    """Random fp32 bits (a quarter uniform, the rest with exponents around the window), every
    exponent field with a few mantissas, and the edge codes of binary32."""
    n = N
    uniform = rng.integers(0, 1 << 32, n // 4, dtype=np.uint64)
    lo, hi = max(window.lsb + 127 - 30, 0), min(window.msb + 127 + 4, 255)
    exp = rng.integers(lo, hi + 1, n - n // 4).astype(np.uint64)
    man = rng.integers(0, 1 << 23, n - n // 4, dtype=np.uint64)
    sign = rng.integers(0, 2, n - n // 4, dtype=np.uint64)
    near = (sign << np.uint64(31)) | (exp << np.uint64(23)) | man
    e_all = np.arange(256, dtype=np.uint64)[:, None]
    mans = np.array([0, 1, 2, 3, 0x400000, 0x7FFFFE, 0x7FFFFF], dtype=np.uint64)[None, :]
    every = ((e_all << np.uint64(23)) | mans).ravel()
    edges = edge_codes(BINARY32).astype(np.uint64)
    x = np.concatenate([uniform, near, every, every | np.uint64(1 << 31), edges])
    return x.astype(np.uint32)


@pytest.mark.slow
@pytest.mark.parametrize("window", [DEFAULT_WINDOW, ExactWindow(-149, -100),
                                    ExactWindow(90, 127)], ids=str)
def test_aligner_against_the_model(window):
    x = aligner_inputs(window, np.random.default_rng(window.width + window.lsb + 500))
    sign, mag, big, nan = align_fp32(x, window)
    want = pack(sign, mag, big, nan, window.width)
    got = eval_binary_op(AlignerOp(window), x, np.zeros_like(x), name="exact_aligner")
    # every case was exercised: flushed, exact, truncated, overflowing, inf and NaN
    assert big.any() and nan.any() and (mag == 0).any() and (mag != 0).any()
    first_difference(got.astype(np.uint64), want, [x], f"aligner {window}")


def pack(sign, mag, big, nan, width):
    return (mag.astype(np.uint64) | (sign.astype(np.uint64) << np.uint64(width))
            | (big.astype(np.uint64) << np.uint64(width + 1))
            | (nan.astype(np.uint64) << np.uint64(width + 2)))


@pytest.mark.slow
@pytest.mark.parametrize("w_fmt", [BINARY32, FloatFormat(4, 3)], ids=str)
def test_product_aligner_against_the_model(w_fmt):
    """One lane of a float or minifloat layer: x times w, exact, into the window."""
    window = DEFAULT_WINDOW
    rng = np.random.default_rng(w_fmt.width)
    x = aligner_inputs(window, rng)
    if w_fmt.ieee:
        w = random_finite(w_fmt, x.size, rng).astype(np.uint64)
        # weights near 1 as well, where products of window activations stay in the window
        near = ((rng.integers(0, 2, x.size, dtype=np.uint64) << np.uint64(31))
                | (rng.integers(110, 135, x.size).astype(np.uint64) << np.uint64(23))
                | rng.integers(0, 1 << 23, x.size, dtype=np.uint64))
        w = np.where(rng.random(x.size) < 0.7, near, w)
        w[::97] = rng.choice([0, 1 << 31, 1, 0x7F7FFFFF], w[::97].size)
    else:
        w = rng.integers(0, 1 << w_fmt.width, x.size, dtype=np.uint64)
    want = pack(*product_terms(x, w, w_fmt, window), window.width)
    got = eval_binary_op(ProductOp(window, w_fmt), x, w, name=f"exact_product_{w_fmt.name}")
    sign, mag, big, nan = product_terms(x, w, w_fmt, window)
    assert big.any() and nan.any() and (mag != 0).mean() > 0.3
    first_difference(got.astype(np.uint64), want, [x, w], f"product aligner {w_fmt}")


def normaliser_inputs(acc_bits: int, rng):
    n = N
    lengths = rng.integers(0, acc_bits, n)
    mag = rng.integers(0, 1 << 62, n, dtype=np.int64) >> (62 - lengths)
    sign = rng.integers(0, 2, n)
    value = np.where(sign == 1, -mag, mag)
    # exponents that put the result anywhere: overflow, normal, subnormal, underflow
    exp = -lengths + rng.integers(-160, 140, n)
    exp = np.where(rng.random(n) < 0.05, rng.integers(-1024, 1024, n), exp)
    flags = np.where(rng.random(n) < 0.03, rng.integers(1, 4, n), 0)
    # ties and near-ties at every exponent: (2**24 + odd/even) << s, +-1
    s = rng.integers(0, acc_bits - 26, 20_000)
    base = ((1 << 24) + rng.integers(0, 1 << 24, 20_000)) << s
    tie = (base | (1 << np.maximum(s - 1, 0))) + rng.integers(-1, 2, 20_000)
    tie_exp = -s - 23 + rng.integers(-150, 110, 20_000)
    top = (1 << (acc_bits - 1))
    edge_n = np.array([0, 1, -1, 2, 3, top - 1, -top, -top + 1, (1 << 24) - 1, 1 << 24,
                       (1 << 24) + 1, (1 << 25) - 1, (1 << 25) + 1], dtype=np.int64)
    edge_e = np.arange(-1024, 1024, 7)
    en, ee = (v.ravel() for v in np.meshgrid(edge_n, edge_e, indexing="ij"))
    flag_e = np.tile(np.arange(4), en.size // 4 + 1)[:en.size]
    values = np.concatenate([value, tie, en])
    exps = np.concatenate([exp, tie_exp, ee])
    flags = np.concatenate([flags, np.zeros(tie.size, np.int64), flag_e])
    return values, exps, flags


@pytest.mark.slow
def test_normaliser_against_the_model():
    acc_bits = DEFAULT_WINDOW.acc_bits(65)  # the digits MLP's first layer: 56 bits
    values, exps, flags = normaliser_inputs(acc_bits, np.random.default_rng(56))
    want = round_fixed(values, exps, (flags & 1) != 0, (flags & 2) != 0)
    a = values.astype(np.uint64) & np.uint64((1 << acc_bits) - 1)
    b = (exps.astype(np.int64) & ((1 << EXP_BITS) - 1)) | (flags << EXP_BITS)
    got = eval_binary_op(NormaliserOp(acc_bits), a, b.astype(np.uint64),
                         name="exact_normaliser")
    codes = want.astype(np.uint64)
    exp_field = (codes >> np.uint64(23)) & np.uint64(0xFF)
    # every kind of result was exercised: zeros, subnormals, normals, infinities, NaN
    assert (codes == 0).any() and ((exp_field == 0) & (codes & np.uint64(0x7FFFFF) != 0)).any()
    assert (exp_field == 0xFF).any() and (codes == 0xFFC00000).any()
    assert ((exp_field > 0) & (exp_field < 0xFF)).sum() > N // 2
    first_difference(got, want, [values, exps, flags], "normaliser")


@pytest.mark.slow
def test_normaliser_narrow_accumulator():
    """An accumulator narrower than an fp32 significand (the normaliser pads it)."""
    acc_bits = 17
    rng = np.random.default_rng(17)
    values = rng.integers(-(1 << 16), 1 << 16, 200_000)
    exps = rng.integers(-200, 140, values.size)
    want = round_fixed(values, exps)
    a = values.astype(np.uint64) & np.uint64((1 << acc_bits) - 1)
    b = (exps & ((1 << EXP_BITS) - 1)).astype(np.uint64)
    got = eval_binary_op(NormaliserOp(acc_bits), a, b, name="exact_normaliser17")
    first_difference(got, want, [values, exps], "normaliser, 17 bits")


@pytest.mark.slow
@pytest.mark.parametrize("acc_bits, exp_range", [
    (21, (-11, -9)),     # the digits layers in a fitted window: no subnormals, no overflow,
                         # no rounding
    (40, (-60, 20)),     # rounding, no subnormals, no overflow
    (30, (-180, -100)),  # subnormals and underflow, no overflow
    (30, (80, 120)),     # overflow, no subnormals
], ids=str)
def test_normaliser_with_known_exponents(acc_bits, exp_range):
    """An engine's normaliser leaves out what its exponents cannot need; on those exponents
    it still equals the model on every value, both flags included."""
    rng = np.random.default_rng(acc_bits)
    n = 200_000
    lengths = rng.integers(0, acc_bits, n)
    mag = rng.integers(0, 1 << 62, n, dtype=np.int64) >> (62 - lengths)
    top = 1 << (acc_bits - 1)
    values = np.concatenate([np.where(rng.integers(0, 2, n) == 1, -mag, mag),
                             [0, 1, -1, top - 1, -top, -top + 1]])
    exps = rng.integers(exp_range[0], exp_range[1] + 1, values.size)
    exps[-12:] = np.repeat(exp_range, 6)
    flags = np.where(rng.random(values.size) < 0.03, rng.integers(1, 4, values.size), 0)
    want = round_fixed(values, exps, (flags & 1) != 0, (flags & 2) != 0)
    a = values.astype(np.uint64) & np.uint64((1 << acc_bits) - 1)
    b = (exps.astype(np.int64) & ((1 << EXP_BITS) - 1)) | (flags << EXP_BITS)
    got = eval_binary_op(NormaliserOp(acc_bits, exp_range), a, b.astype(np.uint64),
                         name=f"exact_normaliser_{acc_bits}_{exp_range[0]}_{exp_range[1]}")
    first_difference(got, want, [values, exps, flags], f"normaliser, exponents {exp_range}")


def test_normaliser_refuses_exponents_beyond_its_bits():
    with pytest.raises(ValueError, match="does not fit 4 signed bits"):
        ExactNormaliser(20, 4, exp_range=(-9, 0))
