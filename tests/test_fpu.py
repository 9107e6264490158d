"""FloatMul / FloatAdd hardware (Verilator batch evaluator) against the numpy model."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Fragment

from rtl_gen.hw.fpu import LATENCY, FloatAdd, FloatMul
from rtl_gen.numerics.floatops import (
    BINARY32,
    FloatFormat,
    fadd,
    fmul,
)
from sim.runner import missing_simulator
from sim.vectors import (
    close_exponent_pairs,
    edge_codes,
    eval_binary_op,
    random_finite,
    subnormal_pairs,
)

N = 1_000_000
E4M3 = FloatFormat(4, 3)
IEEE_E4M3 = FloatFormat(4, 3, ieee=True)
UNITS = {"mul": (FloatMul, fmul), "add": (FloatAdd, fadd)}


@pytest.fixture(scope="module", autouse=True)
def _verilator():
    why = missing_simulator("verilator")
    if why:
        pytest.skip(f"needs Verilator: {why}")


def assert_codes_equal(got, want, a, b, what):
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    bad = np.flatnonzero(got != want)
    if bad.size:
        i = bad[0]
        pytest.fail(f"{what}: {bad.size} of {got.size} differ; first a={int(a[i]):#x} "
                    f"b={int(b[i]):#x} hardware {int(got[i]):#x} model {int(want[i]):#x}")


def all_pairs(fmt):
    codes = np.arange(1 << fmt.width, dtype=fmt.dtype)
    a, b = np.meshgrid(codes, codes, indexing="ij")
    return a.ravel(), b.ravel()


def binary32_vectors(seed):
    """N random finite pairs, N/4 close-exponent and N/4 subnormal-heavy pairs, and every
    pair of edge cases (infinities and NaN included)."""
    rng = np.random.default_rng(seed)
    close, tiny = close_exponent_pairs(BINARY32, N // 4, rng), subnormal_pairs(BINARY32,
                                                                             N // 4, rng)
    e = edge_codes(BINARY32)
    ea, eb = (x.ravel() for x in np.meshgrid(e, e, indexing="ij"))
    a = np.concatenate([random_finite(BINARY32, N, rng), close[0], tiny[0], ea])
    b = np.concatenate([random_finite(BINARY32, N, rng), close[1], tiny[1], eb])
    return a, b


def test_latency_and_ports():
    assert LATENCY == FloatMul.LATENCY == FloatAdd.LATENCY == 0
    unit = FloatMul(BINARY32, E4M3)
    assert (len(unit.a), len(unit.b), len(unit.o)) == (32, 8, 32)
    Fragment.get(unit, None)  # elaborated: not left behind as an unused elaboratable
    with pytest.raises(ValueError, match="cannot hold"):
        FloatMul(E4M3, BINARY32.__class__(5, 2))
    add = FloatAdd(E4M3)
    with pytest.raises(ValueError, match="do not fit port b"):
        eval_binary_op(add, [1], [256])
    Fragment.get(add, None)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["mul", "add"])
def test_binary32_equals_numpy_float32(kind):
    unit, model = UNITS[kind]
    a, b = binary32_vectors(seed={"mul": 11, "add": 12}[kind])
    got = eval_binary_op(unit(BINARY32), a, b)
    assert got.dtype == np.uint32 and got.size >= N
    # Bit for bit the model everywhere (NaN patterns included) ...
    assert_codes_equal(got, model(a, b, BINARY32), a, b, f"{kind} fp32")
    # ... and numpy's float32 wherever numpy gives no NaN (finite inputs: everywhere).
    x, y = a.view(np.float32), b.view(np.float32)
    with np.errstate(all="ignore"):
        ref = (x * y if kind == "mul" else x + y)
    ok = ~np.isnan(ref)
    assert ok[:N].all()
    assert_codes_equal(got[ok], ref.view(np.uint32)[ok], a[ok], b[ok], f"{kind} vs numpy")
    assert np.all(got[~ok] == BINARY32.nan_code)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", [E4M3, IEEE_E4M3], ids=lambda f: f.name)
@pytest.mark.parametrize("kind", ["mul", "add"])
def test_8bit_all_pairs(kind, fmt):
    unit, model = UNITS[kind]
    a, b = all_pairs(fmt)
    got = eval_binary_op(unit(fmt), a, b)
    assert got.dtype == np.uint8 and got.size == 65536
    assert_codes_equal(got, model(a, b, fmt), a, b, f"{kind} {fmt.name}")


@pytest.mark.slow
def test_mixed_fp32_times_e4m3():
    rng = np.random.default_rng(13)
    a = np.concatenate([random_finite(BINARY32, N, rng), subnormal_pairs(BINARY32, N // 8,
                                                                        rng)[0]])
    e, w_all = edge_codes(BINARY32), np.arange(256, dtype=np.uint8)
    ea, ew = (x.ravel() for x in np.meshgrid(e, w_all, indexing="ij"))
    a = np.concatenate([a, ea])
    w = np.concatenate([rng.integers(0, 256, a.size - ew.size, dtype=np.uint64).astype(
        np.uint8), ew])
    got = eval_binary_op(FloatMul(BINARY32, E4M3), a, w)
    assert got.dtype == np.uint32 and got.size > N
    assert_codes_equal(got, fmul(a, w, BINARY32, b_fmt=E4M3), a, w, "fp32 x E4M3")
