"""Every registered float PE (:mod:`rtl_gen.hw.pes.floats`) in amaranth.sim against its golden
product from the numerics, over random fp32 activations and every weight code (a sample of
the fp32 ones); the reduced-float spaces through :class:`FloatMulPE` with their format."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from rtl_gen.hw.pes.floats import FloatMulPE, float_spaces, make_pe, weight_bits
from rtl_gen.numerics.minifloat import MinifloatFormat


def products(pe, x, w) -> np.ndarray:
    got = []

    async def bench(ctx):
        for xv, wv in zip(x.tolist(), w.tolist(), strict=True):
            ctx.set(pe.x, xv)
            ctx.set(pe.w, wv)
            got.append(ctx.get(pe.p))

    sim = Simulator(pe)
    sim.add_testbench(bench)
    sim.run()
    return np.array(got, dtype=np.uint32)


def _cases(pe, rng, n=300):
    bits = pe.w.shape().width
    x = rng.integers(0, 1 << 32, n, dtype=np.uint64).astype(np.uint32)
    x[:4] = [0, 0x80000000, 0x3F800000, 0x00000001]   # +-0, 1.0, the smallest subnormal
    w = rng.integers(0, 1 << bits, n, dtype=np.uint64)
    if bits <= 8:
        w[: 1 << bits] = np.arange(1 << bits)       # every code
    return x, w.astype(np.int64)


@pytest.mark.parametrize("space", float_spaces())
def test_every_registered_float_pe_matches_its_reference(space):
    pe = make_pe(space)
    assert pe.SPACE == space and pe.w.shape().width == weight_bits(space)
    x, w = _cases(pe, np.random.default_rng(len(space)))
    if space == "ternary":
        w = np.where(w == 2, 3, w)   # code 10 never occurs
    assert np.array_equal(products(pe, x, w), pe.reference(x, w))


def test_reduced_float_spaces_run_on_the_multiplier():
    fmt = MinifloatFormat(4, 3)
    pe = make_pe(fmt.name, fmt)
    assert isinstance(pe, FloatMulPE) and pe.w.shape().width == 8
    x, w = _cases(pe, np.random.default_rng(3))
    assert np.array_equal(products(pe, x, w), pe.reference(x, w))
