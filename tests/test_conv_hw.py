"""The sliding-window unit and the pooling reducer in ``amaranth.sim``: every window code
against a numpy im2col written here, every pooled code against the golden model, with and
without gaps and stalls."""

from __future__ import annotations

import numpy as np
import pytest

from rtl_gen.design.conv import AvgPoolLayer, ConvLayer, GlobalAvgPoolLayer, MaxPoolLayer
from rtl_gen.hw.conv import PoolEngine
from rtl_gen.hw.window import PoolReducer, WindowUnit
from rtl_gen.numerics import parse_scheme
from sim.streams import simulate, stream_get, stream_put


def im2col(img: np.ndarray, kernel, stride, padding) -> np.ndarray:
    """``(H, W, C)`` -> every window's codes in ``(ky, kx, c)`` order, windows row by row,
    code 0 outside the map (plain loops over a zero-padded copy)."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    h, w, c = img.shape
    padded = np.zeros((h + 2 * ph, w + 2 * pw, c), np.int64)
    padded[ph:ph + h, pw:pw + w] = img
    ho, wo = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    out = []
    for oy in range(ho):
        for ox in range(wo):
            for ky in range(kh):
                for kx in range(kw):
                    for ch in range(c):
                        out.append(padded[oy * sh + ky, ox * sw + kx, ch])
    return np.array(out, np.int64)


def run_stream(dut, codes, n_out, *, gap=0.0, stall=0.0, seed=0, per=1):
    """Send ``codes`` into ``dut.i`` and take ``n_out`` transfers from ``dut.o``; returns
    the payloads (``per > 1``: each transfer's ``per`` codes in order, flattened) and the
    cycle of each transfer out."""
    rng = np.random.default_rng(seed)
    got = []

    async def producer(ctx):
        await stream_put(ctx, dut.i, [int(v) for v in codes],
                         bubbles=(lambda: int(rng.random() < gap) * rng.integers(1, 4))
                         if gap else None)

    async def consumer(ctx):
        got.extend(await stream_get(ctx, dut.o, n_out,
                                    ready=(lambda: int(rng.random() >= stall))
                                    if stall else None))

    simulate(dut, producer, consumer)
    if per > 1:
        return (np.array([int(v[j]) for _, v in got for j in range(per)], np.int64),
                [t for t, _ in got])
    return np.array([v for _, v in got], np.int64), [t for t, _ in got]


def random_conv(rng, name, scheme_name, in_shape, n_out, kernel, stride, padding, in_bits,
                in_signed, activation="relu", out_bits=4):
    """A convolution with random weights of a scheme, random bias and requantization."""
    scheme = parse_scheme(scheme_name)
    kernel = (kernel, kernel) if isinstance(kernel, int) else kernel
    codes = scheme.encode(rng.choice(scheme.levels(), size=(n_out, *kernel, in_shape[2])))
    relu = activation == "relu"
    return ConvLayer.from_kernel(
        name=name, scheme=scheme, codes=codes, weight_scale=0.05,
        bias=rng.integers(-50, 50, size=n_out), in_shape=in_shape, stride=stride,
        padding=padding, in_bits=in_bits, in_signed=in_signed, activation=activation,
        out_bits=out_bits if relu else None, out_scale=0.1 if relu else None,
        requant_multiplier=rng.integers(1, 1 << 10, size=n_out) if relu else None,
        requant_shift=rng.integers(8, 14, size=n_out) if relu else None)


def random_maps(rng, n, shape, bits, signed):
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    return rng.integers(lo, hi + 1, size=(n, *shape))


# (H, W, C), kernel, stride, padding
WINDOWS = {
    "3x3-pad1": ((5, 6, 2), (3, 3), (1, 1), (1, 1)),
    "3x3-valid": ((6, 5, 1), (3, 3), (1, 1), (0, 0)),
    "3x3-stride2-pad1-odd": ((7, 5, 3), (3, 3), (2, 2), (1, 1)),
    "3x3-stride2-pad0": ((7, 7, 2), (3, 3), (2, 2), (0, 0)),
    "2x2-stride2-pool": ((6, 4, 3), (2, 2), (2, 2), (0, 0)),
    "3x2-mixed": ((6, 7, 2), (3, 2), (2, 1), (1, 0)),
    "1x1": ((3, 3, 4), (1, 1), (1, 1), (0, 0)),
    "stride3-drops-edge": ((8, 7, 1), (2, 2), (3, 3), (0, 1)),
    "full-map-pad": ((4, 3, 2), (5, 4), (1, 1), (2, 1)),
}


@pytest.mark.parametrize("case", list(WINDOWS))
@pytest.mark.parametrize("traffic", ["flowing", "gaps-stalls"])
def test_window_unit_is_im2col(case, traffic):
    shape, kernel, stride, padding = WINDOWS[case]
    signed = case.endswith("pad1")
    bits = 5
    rng = np.random.default_rng(list(WINDOWS).index(case))
    maps = random_maps(rng, 3, shape, bits, signed)
    want = np.concatenate([im2col(mp, kernel, stride, padding) for mp in maps])
    dut = WindowUnit(shape, kernel, stride, padding, bits=bits, signed=signed)
    gap, stall = (0.3, 0.3) if traffic == "gaps-stalls" else (0.0, 0.0)
    got, _ = run_stream(dut, maps.reshape(-1), len(want), gap=gap, stall=stall, seed=5)
    assert got.tolist() == want.tolist()


# (H, W, C), kernel, stride, padding, codes per cycle
WIDE_WINDOWS = {
    "3x3-pad1-P2": ((5, 6, 4), (3, 3), (1, 1), (1, 1), 2),
    "3x3-stride2-pad1-odd-P3": ((7, 5, 6), (3, 3), (2, 2), (1, 1), 3),
    "full-map-pad-P4": ((4, 3, 4), (5, 4), (1, 1), (2, 1), 4),
    "1x1-P8": ((3, 3, 8), (1, 1), (1, 1), (0, 0), 8),
}


@pytest.mark.parametrize("case", list(WIDE_WINDOWS))
def test_wide_window_unit_is_im2col(case):
    """``P`` codes a transfer: the same codes in the same order, with gaps and stalls."""
    shape, kernel, stride, padding, per = WIDE_WINDOWS[case]
    signed = per % 2 == 0
    rng = np.random.default_rng(10 + per)
    maps = random_maps(rng, 3, shape, 5, signed)
    want = np.concatenate([im2col(mp, kernel, stride, padding) for mp in maps])
    dut = WindowUnit(shape, kernel, stride, padding, bits=5, signed=signed, per_cycle=per)
    got, _ = run_stream(dut, maps.reshape(-1), len(want) // per, gap=0.3, stall=0.3, seed=6,
                        per=per)
    assert got.tolist() == want.tolist()


@pytest.mark.parametrize("lines", [3, 4, 6])
def test_window_unit_lines(lines):
    """Fewer lines only slow the writer down: the windows are the same."""
    shape, kernel, stride, padding = (6, 5, 2), (3, 3), (1, 1), (1, 1)
    rng = np.random.default_rng(lines)
    maps = random_maps(rng, 2, shape, 4, False)
    want = np.concatenate([im2col(mp, kernel, stride, padding) for mp in maps])
    dut = WindowUnit(shape, kernel, stride, padding, bits=4, signed=False, lines=lines)
    got, _ = run_stream(dut, maps.reshape(-1), len(want), stall=0.2, seed=1)
    assert got.tolist() == want.tolist()


def test_window_unit_refuses_bad_geometry():
    with pytest.raises(ValueError, match="window padding: 3 rows per side must be less"):
        WindowUnit((5, 5, 1), 3, 1, 3, bits=4, signed=False)
    with pytest.raises(ValueError, match="lines must be an integer in 3..5"):
        WindowUnit((5, 5, 1), 3, 1, 1, bits=4, signed=False, lines=2)
    with pytest.raises(ValueError, match="code bits must be an integer in 1..32, not 0"):
        WindowUnit((5, 5, 1), 3, bits=0, signed=False)
    with pytest.raises(ValueError, match="codes per cycle must be a divisor of the 6 input "
                                         "channels, not 4"):
        WindowUnit((5, 5, 6), 3, bits=4, signed=False, per_cycle=4)


POOLS = {
    "max2x2s2": ("max", (6, 4, 3), (2, 2), (2, 2)),
    "max3x3s2-odd": ("max", (7, 5, 2), (3, 3), (2, 2)),
    "max2x2s1": ("max", (5, 5, 2), (2, 2), (1, 1)),
    "avg2x2s2": ("avg", (6, 4, 3), (2, 2), (2, 2)),
    "avg3x3s1": ("avg", (5, 6, 2), (3, 3), (1, 1)),
    "avg3x2s2": ("avg", (7, 6, 1), (3, 2), (2, 2)),
}


@pytest.mark.parametrize("case", list(POOLS))
@pytest.mark.parametrize("signed", [False, True])
def test_pooling_matches_golden(case, signed):
    """A window unit and a reducer against the layers of :mod:`rtl_gen.design.conv`."""
    how, shape, kernel, stride = POOLS[case]
    bits = 4
    cls = MaxPoolLayer if how == "max" else AvgPoolLayer
    layer = cls(name="p", in_shape=shape, kernel=kernel, stride=stride, in_bits=bits,
                in_signed=signed)
    rng = np.random.default_rng(len(case) + signed)
    maps = random_maps(rng, 3, shape, bits, signed)
    want = layer.forward(maps.reshape(3, -1)).reshape(-1)

    got, _ = run_stream(PoolEngine(layer), maps.reshape(-1), len(want), gap=0.2, stall=0.2, seed=3)
    assert got.tolist() == want.tolist()


@pytest.mark.parametrize("shape,signed", [((3, 3, 2), False), ((4, 5, 3), True),
                                          ((2, 2, 1), False)])
def test_global_avg_pool_matches_golden(shape, signed):
    bits = 6
    layer = GlobalAvgPoolLayer(name="g", in_shape=shape, in_bits=bits, in_signed=signed)
    rng = np.random.default_rng(sum(shape))
    maps = random_maps(rng, 4, shape, bits, signed)
    want = layer.forward(maps.reshape(4, -1)).reshape(-1)
    dut = PoolReducer("avg", taps=shape[0] * shape[1], channels=shape[2], bits=bits,
                      signed=signed)
    got, _ = run_stream(dut, maps.reshape(-1), len(want), stall=0.3, seed=2)
    assert got.tolist() == want.tolist()


def test_avg_reducer_rounds_every_sum_of_a_window():
    """Every sum of 9 unsigned 3-bit codes (0..63), ties up, through the divider."""
    from rtl_gen.design.conv import round_mean

    n = 9
    codes = []
    sums = list(range(0, n * 7 + 1))
    for s in sums:  # spread s over 9 codes of 0..7
        q, r = divmod(s, n)
        codes += [q + 1] * r + [q] * (n - r)
    dut = PoolReducer("avg", taps=n, channels=1, bits=3, signed=False)
    got, _ = run_stream(dut, codes, len(sums))
    assert got.tolist() == round_mean(np.array(sums), n).tolist()


# -- cycles against the cycle model ----------------------------------------------------------

# (in_shape, out channels, kernel, stride, padding, lines or None, (cols, lanes[, window]))
CONV_TIMING = {
    "3x3-pad1-compute-bound": ((8, 8, 1), 4, 3, 1, 1, None, (8, 1)),
    "3x3-pad1-two-tiles": ((6, 6, 2), 8, 3, 1, 0, None, (4, 1)),
    "3x3-load-bound": ((6, 6, 2), 8, 3, 1, 0, None, (8, 4)),
    "stride2-pad1-odd": ((7, 5, 3), 4, 3, 2, 1, None, (8, 4)),
    "stride2-pad0-least-lines": ((9, 7, 1), 3, 3, 2, 0, 3, (8, 4)),
    "least-lines-writer-waits": ((8, 6, 1), 2, 3, 1, 1, 3, (8, 8)),
    "1x1": ((3, 4, 4), 3, 1, 1, 0, None, (8, 4)),
    "3x3-pad1-P2-load-bound": ((6, 5, 2), 4, 3, 1, 1, None, (4, 4, 2)),
    "3x3-pad1-P4-odd": ((5, 7, 4), 3, 3, 1, 1, None, (2, 4, 4)),
    "stride2-pad1-P2-least-lines": ((7, 5, 2), 4, 3, 2, 1, 3, (8, 2, 2)),
    "stride2-P4-writer-waits": ((9, 6, 4), 2, 3, 2, 0, 3, (2, 8, 4)),
    "1x1-P8": ((3, 4, 8), 3, 1, 1, 0, None, (4, 8, 8)),
}


@pytest.mark.parametrize("case", list(CONV_TIMING))
def test_conv_engine_cycles_equal_the_schedule(case):
    """Three images fed one code a cycle: the cycle of each image's last output code, the
    cycle of each window's last tap taken by the engine, as :func:`window_schedule`
    says, and the layer's image cycles and interval as :class:`ConvTiming` says."""
    from rtl_gen.design.conv_timing import window_schedule
    from rtl_gen.hw.conv import ConvEngine, stage_timing
    from rtl_gen.hw.layer import ArrayConfig

    shape, n, k, s, p, lines, (cols, lanes, *window) = CONV_TIMING[case]
    rng = np.random.default_rng(list(CONV_TIMING).index(case))
    layer = random_conv(rng, "c", "int4", shape, n, k, s, p, 8, False)
    array = ArrayConfig(rows=1, cols=cols, lanes=lanes, window=window[0] if window else 1)
    x = rng.integers(0, 256, size=(3, layer.in_features))
    want = layer.forward(x).reshape(-1)
    got, times = run_stream(ConvEngine(layer, array, lines=lines), x.reshape(-1), len(want))
    assert got.tolist() == want.tolist()
    t = stage_timing(layer, array)
    t = type(t)(t.in_shape, t.kernel, t.stride, t.padding, t.engine, lines)
    sched = window_schedule(layer.in_shape, layer.kernel, layer.stride, layer.padding,
                            lines=lines, engine=t.engine, images=3)
    per = layer.out_features
    done = [times[(i + 1) * per - 1] for i in range(3)]
    assert done == list(sched.done)
    assert done[0] + 1 == t.image_cycles
    assert done[2] - done[1] == t.image_interval


def test_wide_window_settings_are_checked():
    """``P`` must divide the input channels and the lanes and be a power of two, and only a
    convolution takes it; one line each."""
    from rtl_gen.design.conv_timing import window_schedule
    from rtl_gen.hw.conv import ConvEngine
    from rtl_gen.hw.layer import ArrayConfig, plan_layer

    rng = np.random.default_rng(0)
    layer = random_conv(rng, "c", "int4", (5, 5, 6), 2, 3, 1, 1, 4, False)
    with pytest.raises(ValueError, match="window codes per cycle must be a power of two "
                                         "dividing the lanes \\(2\\), not 4"):
        ArrayConfig(lanes=2, window=4)
    with pytest.raises(ValueError, match="window codes per cycle must be a power of two"):
        ArrayConfig(lanes=8, window=3)
    with pytest.raises(ValueError, match="'c': 4 window codes per cycle must divide the 6 "
                                         "input channels"):
        ConvEngine(layer, ArrayConfig(lanes=4, window=4))
    with pytest.raises(ValueError, match="'c': window codes per cycle \\(2\\) are a "
                                         "convolution's setting, not a dense layer's"):
        plan_layer(layer.core, ArrayConfig(lanes=2, window=2))
    with pytest.raises(ValueError, match="codes per cycle must be a divisor of the 6 input "
                                         "channels, not 4"):
        window_schedule((5, 5, 6), 3, 1, 1, per_cycle=4)


@pytest.mark.parametrize("case", ["max2x2s2", "max3x3s2-odd", "avg3x3s1"])
@pytest.mark.parametrize("lines", [None, "least"])
def test_pool_engine_cycles_equal_the_schedule(case, lines):
    from rtl_gen.design.conv_timing import PoolTiming, window_schedule

    how, shape, kernel, stride = POOLS[case]
    lines = kernel[0] if lines == "least" else None
    cls = MaxPoolLayer if how == "max" else AvgPoolLayer
    layer = cls(name="p", in_shape=shape, kernel=kernel, stride=stride, in_bits=4,
                in_signed=False)
    rng = np.random.default_rng(4)
    maps = random_maps(rng, 3, shape, 4, False)
    want = layer.forward(maps.reshape(3, -1)).reshape(-1)
    got, times = run_stream(PoolEngine(layer, lines=lines), maps.reshape(-1), len(want))
    assert got.tolist() == want.tolist()
    sched = window_schedule(shape, kernel, stride, 0, lines=lines, images=3)
    per = layer.out_features
    done = [times[(i + 1) * per - 1] for i in range(3)]
    assert done == list(sched.done)
    t = PoolTiming.of(layer, lines)
    assert (done[0] + 1, done[2] - done[1]) == (t.image_cycles, t.image_interval)


def test_global_pool_cycles():
    from rtl_gen.design.conv_timing import PoolTiming

    shape = (3, 4, 2)
    g = GlobalAvgPoolLayer(name="g", in_shape=shape, in_bits=5, in_signed=False)
    maps = random_maps(np.random.default_rng(0), 2, shape, 5, False)
    got, times = run_stream(PoolEngine(g), maps.reshape(-1), 4)
    assert got.tolist() == g.forward(maps.reshape(2, -1)).reshape(-1).tolist()
    assert times[1] + 1 == PoolTiming.of(g).image_cycles == 25
