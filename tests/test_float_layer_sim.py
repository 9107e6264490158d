"""Float layer engines and the float network in amaranth.sim against the golden model.

Small random layers of every weight space (fp32, binary, ternary, minifloat) with awkward
sizes (fewer outputs than lanes, several tiles, K smaller than the lanes), activations with
signed zeros, subnormals and negative values, several images back to back, random gaps on
the input and stalls on the output: every result equals
:func:`rtl_gen.design.float_network.layer_forward`
bit for bit and, without stalls, the cycle counter equals the cycle model.  The digits
networks run as Verilog under cocotb (``tests/test_float_network_cocotb.py``).
"""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Fragment
from amaranth.sim import Simulator

from rtl_gen.design import float_network
from rtl_gen.design.float_network import FloatLayer, FloatNetwork
from rtl_gen.design.timing import LayerTiming, network_interval
from rtl_gen.hw.exact_float import ExactShape, exact_layer_timing, tree_registers
from rtl_gen.hw.float_layer import (
    FloatLayerEngine,
    FloatNetworkEngine,
    TernaryPE,
    XorSignPE,
    make_pe,
    weight_bits,
)
from rtl_gen.numerics.exact import ExactWindow
from rtl_gen.numerics.minifloat import MinifloatFormat
from sim.streams import simulate, stream_get, stream_put, watch


def f32(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float32).view(np.uint32)


def activations(rng, shape, *, signed=True) -> np.ndarray:
    """fp32 bit patterns: normals over a wide range, +-0, subnormals, small integers."""
    v = rng.normal(0, 1, shape) * np.exp2(rng.integers(-6, 6, shape))
    bits = f32(v)
    pick = rng.random(shape)
    bits = np.where(pick < 0.08, np.uint32(0), bits)
    bits = np.where((pick >= 0.08) & (pick < 0.14), np.uint32(0x80000000), bits)
    sub = rng.integers(1, 1 << 23, shape).astype(np.uint32)
    sub |= np.where(rng.random(shape) < 0.5, np.uint32(0x80000000), np.uint32(0))
    bits = np.where((pick >= 0.14) & (pick < 0.22), sub, bits)
    if not signed:
        bits &= np.uint32(0x7FFFFFFF)
    return bits.astype(np.uint32)


def random_layer(rng, space, k, n, *, activation="relu", name="fc"):
    scale = None
    if space == "float":
        w = rng.normal(0, 1 / np.sqrt(k), (n, k))
        codes = f32(w)
        codes[rng.random((n, k)) < 0.05] = 0x80000000
    elif space == "binary":
        codes = rng.integers(0, 2, (n, k))
        scale = f32(rng.uniform(0.05, 0.5, n))
    elif space == "ternary":
        codes = rng.choice([0, 1, 3], (n, k))
        scale = f32(rng.uniform(0.05, 0.5, n))
    else:
        fmt = float_network.parse_space(space)
        codes = rng.integers(0, 1 << fmt.width, (n, k))
    bias = f32(rng.normal(0, 0.3, n))
    return FloatLayer(name, space, codes, scale, bias, activation)


def run_stream(dut, x_bits, n_out, *, seed=0, gaps=False, stalls=False,
               cycle_ports=()):
    """Feed ``x_bits`` (images of fp32 bits) into ``dut.i``; collect ``n_out`` results a
    image from ``dut.o``, the cycle of each output transfer, every value each port of
    ``cycle_ports`` takes, and the classes (when ``dut`` has ``cls``)."""
    rng = np.random.default_rng(seed)
    n_img = len(x_bits)
    out, out_at, seen, classes = [], [], [[] for _ in cycle_ports], []

    async def producer(ctx):
        await stream_put(ctx, dut.i, x_bits.reshape(-1),
                         bubbles=(lambda: rng.choice([0, 0, 0, 1, 5])) if gaps else None)

    async def consumer(ctx):
        changes = []
        counters = watch(cycle_ports, changes)
        has_cls = hasattr(dut, "cls")

        def look(ctx):
            if has_cls and ctx.get(dut.cls.valid):
                classes.append(ctx.get(dut.cls.payload))
            counters(ctx)

        got = await stream_get(ctx, dut.o, n_img * n_out, each_cycle=look, tail=6,
                               ready=(lambda: not rng.random() < 0.45) if stalls else None)
        out_at.extend(c for c, _ in got)
        out.extend(v for _, v in got)
        for i, v in changes:
            seen[i].append(v)

    simulate(dut, producer, consumer)
    got = np.array(out, dtype=np.uint32).reshape(n_img, n_out)
    return got, np.array(out_at), [[v for v in s if v] for s in seen], classes


# -- PEs ---------------------------------------------------------------------------------------


def pe_products(pe, x, w):
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


def test_bitwise_pes_match_the_numerics():
    rng = np.random.default_rng(1)
    x = activations(rng, 400)
    wb = rng.integers(0, 2, 400)
    wt = rng.choice([0, 1, 3], 400)
    from rtl_gen.numerics.minifloat import ternary_bitwise, xor_signed_bits
    assert np.array_equal(pe_products(XorSignPE(), x, wb), xor_signed_bits(x, wb))
    assert np.array_equal(pe_products(TernaryPE(), x, wt), ternary_bitwise(x, wt))
    # NUMERICS.md's examples
    assert pe_products(XorSignPE(), np.array([0x3FC00000]), np.array([1]))[0] == 0xBFC00000
    assert list(pe_products(TernaryPE(), np.array([0xC0200000] * 3), np.array([0, 1, 3]))) \
        == [0x80000000, 0xC0200000, 0x40200000]


@pytest.mark.parametrize("space", ["float", "E4M3", "E5M2b13"])
def test_multiplying_pes_match_the_golden_products(space):
    rng = np.random.default_rng(2)
    layer = random_layer(rng, space, 50, 8)
    x = activations(rng, (1, 50))
    want = float_network.layer_products(layer, x)[0]           # (8, 50)
    pe = make_pe(layer.space, layer.weight_format)
    xs = np.broadcast_to(x, want.shape).reshape(-1)
    got = pe_products(pe, xs, layer.codes.reshape(-1).astype(np.int64))
    assert np.array_equal(got, want.reshape(-1))


def test_make_pe_refuses_an_unknown_space():
    with pytest.raises(ValueError, match="minifloat"):
        make_pe("E4M3")


# -- layers ------------------------------------------------------------------------------------

LAYER_CASES = [
    # space, K, N, lanes, activation
    ("float", 11, 13, 4, "relu"),      # several tiles, last one partial
    ("binary", 9, 5, 8, "relu"),       # fewer outputs than lanes
    ("ternary", 3, 10, 4, "none"),     # K < lanes: the period is the tail's
    ("E4M3", 7, 6, 3, "relu"),
    ("binary", 1, 3, 2, "none"),       # one input
]


@pytest.mark.parametrize("space,k,n,lanes,activation", LAYER_CASES)
def test_layer_is_bit_exact_and_meets_its_cycle_model(space, k, n, lanes, activation):
    rng = np.random.default_rng(k * 100 + n)
    layer = random_layer(rng, space, k, n, activation=activation)
    x = activations(rng, (5, k))
    engine = FloatLayerEngine(layer, lanes)
    got, out_at, (cycles,), _ = run_stream(engine, x, n, cycle_ports=(engine.cycles,))
    want = float_network.layer_forward(layer, x)
    bad = np.argwhere(got != want)
    assert bad.size == 0, f"first mismatch at {tuple(bad[0])}: {got[tuple(bad[0])]:#x} != " \
        f"{want[tuple(bad[0])]:#x}"
    t = engine.timing
    assert set(cycles) == {t.batch_cycles}
    # back to back, inputs one a cycle: one image per interval when loading is faster
    # than computing, else within the input buffer's bound
    gaps = np.diff(out_at[n - 1::n])[1:]
    if k + 1 <= t.interval:
        assert set(gaps.tolist()) == {t.interval}
    else:
        assert gaps.min() >= t.interval and gaps.mean() <= t.steady_interval


@pytest.mark.parametrize("space", ["float", "ternary"])
def test_layer_under_gaps_and_stalls(space):
    rng = np.random.default_rng(5)
    layer = random_layer(rng, space, 12, 9)
    x = activations(rng, (6, 12))
    engine = FloatLayerEngine(layer, 4)
    got, *_ = run_stream(engine, x, 9, seed=3, gaps=True, stalls=True)
    assert np.array_equal(got, float_network.layer_forward(layer, x))


def test_cycle_model_formula():
    t = LayerTiming.float_lanes(k=64, n=32, lanes=8, scaled=True)
    assert (t.tiles, t.period, t.last_cols, t.interval) == (4, 64, 8, 256)
    assert t.batch_cycles == 3 * 64 + 64 + 3 + 8 + 3
    t = LayerTiming.float_lanes(k=3, n=10, lanes=4, scaled=False)
    assert (t.tiles, t.period, t.last_cols) == (3, 4, 2)
    assert t.batch_cycles == 2 * 4 + 3 + 3 + 2 + 2


def test_engine_refuses_bad_lanes():
    layer = random_layer(np.random.default_rng(0), "binary", 4, 4)
    with pytest.raises(ValueError, match="lanes"):
        FloatLayerEngine(layer, 0)
    net = FloatNetwork("n", 4, None, [random_layer(np.random.default_rng(0), "binary", 4, 4,
                                                   activation="none")])
    with pytest.raises(ValueError, match="one lane count per layer"):
        FloatNetworkEngine(net, [2, 2])


# -- a network ---------------------------------------------------------------------------------


def test_network_logits_classes_and_cycles():
    rng = np.random.default_rng(9)
    layers = [random_layer(rng, "ternary", 10, 7, name="a"),
              random_layer(rng, "E4M3", 7, 6, name="b"),
              random_layer(rng, "float", 6, 5, activation="none", name="c")]
    net = FloatNetwork("small", 10, None, layers)
    x = activations(rng, (6, 10))
    # ties: an image of zeros gives the biases; force a +0/-0 tie on one class pair
    engine = FloatNetworkEngine(net, [4, 2, 8])
    got, _, seen, classes = run_stream(
        engine, x, 5, cycle_ports=[engine.layer_cycles[i] for i in range(3)])
    assert np.array_equal(got, float_network.forward(net, x))
    assert classes[:6] == float_network.predict(net, x).tolist()
    for t, s in zip(engine.timings, seen, strict=True):
        assert set(s) == {t.batch_cycles}


def test_argmax_ties_and_signed_zeros():
    """Logits equal to -0 and +0 tie (the first wins); negatives lose to either zero."""
    # one float layer, identity-like weights: logits = x + bias(-0.0 ... )
    k = 4
    eye = f32(np.eye(k))
    layer = FloatLayer("id", "float", eye, None, np.full(k, 0x80000000, np.uint32), "none")
    net = FloatNetwork("ties", k, None, [layer])
    x = np.array([f32([-1.0, -0.0, 0.0, -2.0]),       # -0+(-0)=-0, 0+(-0)=+0: tie -> 1
                  f32([-3.0, -1.0, -1.0, -2.0]),      # tie of equal values -> 1
                  f32([-1.0, -2.0, -0.5, 0.0]),       # +0 wins -> 3
                  ], dtype=np.uint32)
    engine = FloatNetworkEngine(net, 2)
    got, _, _, classes = run_stream(engine, x, k)
    assert np.array_equal(got, float_network.forward(net, x))
    assert classes[:3] == float_network.predict(net, x).tolist() == [1, 1, 3]


def test_minifloat_format_of_a_layer_reaches_its_pe():
    layer = random_layer(np.random.default_rng(4), "E5M2b13", 4, 2)
    assert layer.weight_format == MinifloatFormat(5, 2, 13)
    pe = make_pe(layer.space, layer.weight_format)
    Fragment.get(pe, None)
    assert pe.w.shape().width == weight_bits(layer.space, layer.weight_format) == 8


# -- exact layers with inputs a step and results a cycle ---------------------------------------


def exact_net(rng, specs, window):
    """A float network on the exact contract: ``(space, K, N, activation)`` per layer, the
    binary and ternary scales powers of two."""
    layers = []
    for i, (space, k, n, act) in enumerate(specs):
        layer = random_layer(rng, space, k, n, activation=act, name=f"l{i}")
        if space in ("binary", "ternary"):
            layer = FloatLayer(layer.name, space, layer.codes,
                               f32(np.exp2(rng.integers(-3, 1, n))), layer.bias, act)
        layers.append(layer)
    return FloatNetwork("exact", specs[0][1], None, layers, accumulation="exact",
                        window=window)


#: Three layers: K not a multiple of the inputs a step (slots that stay +0, in a binary layer
#: too), a partial last tile, two results a transfer between layers, product aligners two
#: inputs a step, a window the activations overflow.
SHAPED = ([("ternary", 10, 6, "relu"), ("E4M3", 6, 4, "relu"), ("binary", 4, 3, "none")],
          [ExactShape(4, 4, 2), ExactShape(2, 2, 2), ExactShape(3, 4, 1)])


def test_shaped_exact_network_is_bit_exact_and_meets_its_cycle_model():
    rng = np.random.default_rng(21)
    specs, shapes = SHAPED
    net = exact_net(rng, specs, ExactWindow(lsb=-10, msb=5))
    x = activations(rng, (6, 10))
    engine = FloatNetworkEngine(net, shapes)
    assert [p.shape for _, _, p in engine._plan.stages] == shapes
    assert [t.in_per_beat for t in engine.timings] == [1, 2, 2]
    got, _, seen, classes = run_stream(
        engine, x, 3, cycle_ports=[engine.layer_cycles[i] for i in range(3)])
    want = float_network.forward(net, x)
    assert np.array_equal(got, want)
    assert classes[:6] == float_network.predict(net, x).tolist()
    for t, s in zip(engine.timings, seen, strict=True):
        assert set(s) == {t.batch_cycles}
    got, *_ = run_stream(engine, x, 3, seed=4, gaps=True, stalls=True)
    assert np.array_equal(got, want)


def test_exact_cycle_model_with_inputs_a_step_and_results_a_cycle():
    layer = random_layer(np.random.default_rng(0), "ternary", 64, 32)
    t = exact_layer_timing(layer, ExactShape(32, 8, 4))
    # 8 steps; aligner registers 3 and one inside the 8-term tree; 32 results 4 a cycle
    assert (t.k_steps, t.array_latency, t.drain_cycles, t.period) == (8, 4, 8, 8)
    assert t.batch_cycles == 1 + 8 + 4 + 1 + 7 + 7 + 1
    assert [tree_registers(n) for n in (1, 2, 4, 8, 16, 64)] == [0, 0, 1, 1, 2, 3]
    t = exact_layer_timing(random_layer(np.random.default_rng(0), "float", 32, 10),
                           ExactShape(10, 16), in_per_beat=4)
    assert (t.k_steps, t.array_latency, t.period, t.load_cycles) == (2, 8, 10, 8)
    assert t.batch_cycles == 1 + 2 + 8 + 1 + 9 + 7 + 1
    # one tile of ten drain cycles; its input, 8 transfers of 4, loads in time
    assert network_interval([t], 32) == 10


@pytest.mark.parametrize("shapes,match", [
    ([ExactShape(4, 4, 4), ExactShape(2)], "4 results a cycle must divide its 6 outputs"),
    ([ExactShape(3, 4, 3), ExactShape(2, 4)], "3 activations a transfer"),
    ([ExactShape(2, 1, 2), ExactShape(2, 2, 2)], "the last layer drains one"),
    ([ExactShape(2, 16, 2), ExactShape(1, 8)], "takes one cycle"),
])
def test_exact_shapes_that_do_not_fit_the_network(shapes, match):
    net = exact_net(np.random.default_rng(0), [("ternary", 8, 6, "relu"),
                                               ("binary", 6, 2, "none")], ExactWindow())
    with pytest.raises(ValueError, match=match):
        FloatNetworkEngine(net, shapes)


def test_exact_shape_refusals():
    for kwargs, match in [({"lanes": 0}, "lanes"), ({"lanes": 4, "inputs": 3}, "power of two"),
                          ({"lanes": 4, "inputs": 128}, "inputs a step"),
                          ({"lanes": 4, "drain": 3}, "must divide the lanes"),
                          ({"lanes": 4, "drain": True}, "drain")]:
        with pytest.raises(ValueError, match=match):
            ExactShape(**kwargs)
    net = FloatNetwork("n", 4, None, [random_layer(np.random.default_rng(0), "binary", 4, 4,
                                                   activation="none")])
    with pytest.raises(ValueError, match="exact accumulation contract"):
        FloatNetworkEngine(net, [ExactShape(2, 2)])
