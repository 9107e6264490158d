"""Layer engines and the network in amaranth.sim against the golden model.

Small networks with awkward sizes (not powers of two, fewer outputs than columns, several
tiles, batches of more than one image, lanes), every scheme, signed and unsigned inputs:
the logits equal ``golden.forward`` exactly, the classes equal ``golden.predict``, and every
layer's cycle counter equals the cycle model.  The full digits networks run as Verilog under
cocotb (``tests/test_network_cocotb.py``).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from rtl_gen.design import golden
from rtl_gen.hw.layer import ArrayConfig, LayerEngine
from rtl_gen.hw.network import NetworkEngine
from rtl_gen.training.float_model import FloatMLP
from rtl_gen.training.quantize import quantize_mlp
from sim.streams import simulate, stream_get, stream_put, watch


def small_net(sizes, schemes, *, seed=0, signed_input=False, input_bits=8, act_bits=8):
    rng = np.random.default_rng(seed)
    weights = [rng.normal(0, 1 / np.sqrt(a), (b, a))
               for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
    biases = [rng.normal(0, 0.2, b) for b in sizes[1:]]
    calib = rng.normal(0, 1, (64, sizes[0]))
    if not signed_input:
        calib = np.abs(calib)
    model = FloatMLP(weights, biases, calibration=calib)
    return quantize_mlp(model, schemes, name="small", input_bits=input_bits,
                        act_bits=act_bits), calib


def run_network(engine: NetworkEngine, x_int: np.ndarray, *, seed=0, gaps=False,
                stalls=False, tr_regs=None):
    """Feed images (padded to whole batches), collect logits (reordered per image),
    classes and the per-layer cycle counters seen after each change.  ``tr_regs``: the
    ``(mode, k, s)`` term-revealing controls, set before the first image."""
    rows = engine.rows
    n_img = len(x_int)
    pad = (-n_img) % rows
    x = np.concatenate([x_int, np.zeros((pad, x_int.shape[1]), np.int64)])
    order = engine.logit_order()
    per_batch = len(order)
    n_out = int(order[:, 1].max()) + 1
    rng = np.random.default_rng(seed)
    logits, classes, seen_cycles = [], [], []
    n_layers = len(engine.timings)
    expected_out = len(x) // rows * per_batch

    async def producer(ctx):
        if tr_regs is not None:
            for port, v in zip((engine.tr_mode, engine.tr_k, engine.tr_s), tr_regs,
                               strict=True):
                ctx.set(port, v)
            await ctx.tick()
        await stream_put(ctx, engine.i, x.reshape(-1),
                         bubbles=(lambda: rng.choice([0, 0, 0, 1, 4])) if gaps else None)

    async def consumer(ctx):
        counters = watch([engine.layer_cycles[i] for i in range(n_layers)], seen_cycles)

        def look(ctx):
            # values after the edge: the class stream and the counters
            if ctx.get(engine.cls.valid):
                classes.append(ctx.get(engine.cls.payload))
            counters(ctx)

        got = await stream_get(ctx, engine.o, expected_out, each_cycle=look, tail=4,
                               ready=(lambda: rng.random() < 0.6) if stalls else None)
        logits.extend(v for _, v in got)

    simulate(engine, producer, consumer)
    got = np.zeros((len(x), n_out), np.int64)
    flat = np.array(logits, dtype=np.int64).reshape(-1, per_batch)
    for b, chunk in enumerate(flat):
        for (r, ch), v in zip(order, chunk, strict=True):
            got[b * rows + r, ch] = v
    return got[:n_img], np.array(classes[:n_img]), seen_cycles


CASES = [
    # sizes, schemes, arrays, signed input
    ((13, 7, 5), ("int4", "ternary"), (ArrayConfig(cols=3), ArrayConfig(cols=8)), False),
    ((10, 9, 4), ("pot4", "apot4"), (ArrayConfig(rows=2, cols=4), ArrayConfig(rows=2, cols=2)),
     True),
    ((16, 6, 3), ("binary", "int8"), (ArrayConfig(cols=2, lanes=4), ArrayConfig(cols=3)),
     False),
    ((9, 5, 4, 3), ("int8", "pot3", "apot5"),
     (ArrayConfig(rows=3, cols=2, lanes=2, pipeline=1), ArrayConfig(rows=3, cols=5),
      ArrayConfig(rows=3, cols=1, pipeline=2)), True),
    ((12, 8, 6), ("int6", "int3"),
     (ArrayConfig(cols=4, multiplier="dsp"), ArrayConfig(cols=4, lanes=8)), False),
    # shift drains: the results shift out at res[0] (one tile, several tiles with a channel
    # short, and more than SELECT_DIRECT results, where the drain has its register stage)
    ((13, 7, 5), ("int4", "ternary"),
     (ArrayConfig(cols=3, drain="shift"), ArrayConfig(cols=8, drain="shift")), False),
    ((40, 20, 6), ("binary", "pot4"),
     (ArrayConfig(cols=20, lanes=2, drain="shift"), ArrayConfig(cols=4, drain="shift")),
     True),
]


@pytest.mark.parametrize("sizes,schemes,arrays,signed", CASES,
                         ids=["-".join(c[1]) + "-shift" * (c[2][0].drain == "shift")
                              for c in CASES])
def test_network_matches_golden(sizes, schemes, arrays, signed):
    net, calib = small_net(sizes, schemes, signed_input=signed)
    x_int = net.input.quantize(calib[:7])
    engine = NetworkEngine(net, arrays)
    got, classes, cycles = run_network(engine, x_int)
    want = golden.forward(net, x_int)
    assert np.array_equal(got, want)
    assert np.array_equal(classes, golden.predict(net, x_int))
    batches = -(-len(x_int) // engine.rows)
    for i, timing in enumerate(engine.timings):
        measured = [v for layer, v in cycles if layer == i]
        # every batch of a layer takes the same number of cycles, which the model predicts;
        # the counter only changes when that number changes, so one value is seen
        assert measured == [timing.batch_cycles], (i, measured, timing)
    assert batches >= 1


def test_bubbles_and_stalls_do_not_change_the_answer():
    net, calib = small_net((11, 6, 4), ("int8", "ternary"))
    x_int = net.input.quantize(calib[:6])
    engine = NetworkEngine(net, (ArrayConfig(rows=2, cols=4), ArrayConfig(rows=2, cols=4)))
    got, classes, _ = run_network(engine, x_int, gaps=True, stalls=True, seed=5)
    assert np.array_equal(got, golden.forward(net, x_int))
    assert np.array_equal(classes, golden.predict(net, x_int))


def test_a_shift_drain_under_gaps_and_stalls():
    """The drain's shifts follow its reads, not the clock: with the consumer stalling and the
    producer pausing, the answer stays exact."""
    net, calib = small_net((24, 18, 4), ("int8", "ternary"))
    x_int = net.input.quantize(calib[:6])
    engine = NetworkEngine(net, (ArrayConfig(cols=18, lanes=2, drain="shift"),
                                 ArrayConfig(cols=2, drain="shift")))
    got, classes, _ = run_network(engine, x_int, gaps=True, stalls=True, seed=3)
    assert np.array_equal(got, golden.forward(net, x_int))
    assert np.array_equal(classes, golden.predict(net, x_int))


def test_shift_drain_settings_checked():
    from rtl_gen.design.network import TRConfig
    from rtl_gen.hw.layer import plan_layer
    with pytest.raises(ValueError, match="shift drain needs an array of one row, not 2"):
        ArrayConfig(rows=2, drain="shift")
    with pytest.raises(ValueError, match="drain is one of select, shift, not 'mux'"):
        ArrayConfig(drain="mux")
    net, _ = small_net((8, 4, 2), "signmag5")
    import dataclasses
    tr = dataclasses.replace(net.layers[0], tr=TRConfig(4, 3))
    with pytest.raises(ValueError, match="term-revealing layer's drain selects"):
        plan_layer(tr, ArrayConfig(cols=2, drain="shift"))


def test_wide_drains_under_gaps_and_stalls():
    """Two hidden layers drain 2 and 4 results a cycle (3 and 2 tiles, the next layers take
    them so): exact with the producer pausing and the consumer stalling."""
    net, calib = small_net((16, 12, 8, 4), ("int8", "ternary", "int4"))
    x_int = net.input.quantize(calib[:6])
    engine = NetworkEngine(net, (ArrayConfig(cols=4, lanes=2, drain_width=2),
                                 ArrayConfig(cols=4, lanes=2, drain_width=4),
                                 ArrayConfig(cols=2, lanes=4)))
    assert [t.drain_width for t in engine.timings] == [2, 4, 1]
    assert [t.in_per_beat for t in engine.timings] == [1, 2, 4]
    got, classes, _ = run_network(engine, x_int, gaps=True, stalls=True, seed=4)
    assert np.array_equal(got, golden.forward(net, x_int))
    assert np.array_equal(classes, golden.predict(net, x_int))


def test_wide_drain_settings_checked():
    from rtl_gen.hw.bitserial import plan_bitserial_layer
    from rtl_gen.hw.layer import plan_layer
    for kw, words in ((dict(drain_width=3), "need a power of two"),
                      (dict(cols=6, drain_width=4), "columns \\(6\\) that it divides"),
                      (dict(rows=2, drain_width=2), "one row, not 2"),
                      (dict(drain="shift", drain_width=2), "select drain, not a shift")):
        with pytest.raises(ValueError, match=words):
            ArrayConfig(**kw)
    net, _ = small_net((8, 6, 4), "int4")
    with pytest.raises(ValueError, match="hidden layer whose outputs \\(6\\) 4 divides"):
        plan_layer(net.layers[0], ArrayConfig(cols=4, drain_width=4))
    with pytest.raises(ValueError, match="hidden layer"):
        plan_layer(net.layers[1], ArrayConfig(cols=4, drain_width=2))   # the logits
    # the next layer's lanes must take the codes of a transfer
    with pytest.raises(ValueError, match="2 input codes per cycle need"):
        NetworkEngine(net, (ArrayConfig(cols=2, drain_width=2), ArrayConfig(lanes=1)))
    with pytest.raises(ValueError, match="drain width"):
        plan_bitserial_layer(net.layers[0], ArrayConfig(cols=2, drain_width=2))


def test_layer_refuses_bad_term_revealing_and_mismatched_rows():
    from rtl_gen.design.network import TRConfig
    net, _ = small_net((8, 4, 2), "signmag5")
    import dataclasses
    with pytest.raises(ValueError, match="need term revealing"):
        LayerEngine(net.layers[0], ArrayConfig())  # sign-magnitude weights without TR
    layer = dataclasses.replace(net.layers[0], tr=TRConfig(4, 3))
    with pytest.raises(ValueError, match="takes no lanes"):
        LayerEngine(layer, ArrayConfig(lanes=4))
    net, _ = small_net((8, 4, 2), "int4")
    with pytest.raises(ValueError, match="same number of rows"):
        NetworkEngine(net, (ArrayConfig(rows=1), ArrayConfig(rows=2)))
    with pytest.raises(ValueError, match="lanes must be a power of two, not 3"):
        ArrayConfig(lanes=3)


def test_cycle_model_by_hand():
    """The digits MLP's first layer on the default int8 array, worked out from the rules in
    the LayerTiming docstrings: 64 steps a tile, 4 tiles issued 64 cycles apart, results
    complete R + C + latency = 10 cycles after the last step, the drain writes result j
    (0..7) j + 3 cycles after it starts."""
    t = golden.LayerTiming.systolic(k=64, n=32, rows=1, cols=8, lanes=1, pe_latency=1,
                                    requantize=True)
    assert (t.k_steps, t.tiles, t.period, t.array_latency) == (64, 4, 64, 10)
    assert t.batch_cycles == 1 + 3 * 64 + 64 + 10 + 1 + 7 + 3 + 1 == 279
    assert t.interval == 257
    assert abs(t.utilization - 64 * 32 / (257 * 8)) < 1e-12
    logits = golden.LayerTiming.systolic(k=32, n=10, rows=1, cols=8, lanes=1, pe_latency=1,
                                         requantize=False)
    # 32 steps but the drain of 8 results bounds nothing here; 2 tiles, the last with 2
    # columns; the logits' drain: the result read and the bias registered, then the sum
    assert logits.period == 32 and logits.tiles == 2 and logits.drain_stages == 2
    assert logits.batch_cycles == 1 + 32 + 32 + 10 + 1 + 1 + 2 + 1 == 80
    # a drain of 2 results a cycle over 4 tiles of 8 steps: the drain (8 / 2 = 4 cycles,
    # plus the gap) is shorter than a tile's steps, so the period is the steps; the last
    # result j = 7 goes 7 // 2 cycles after the drain starts
    wide = golden.LayerTiming.systolic(k=64, n=32, rows=1, cols=8, lanes=8, pe_latency=1,
                                       requantize=True, drain_width=2, broadcast=True)
    assert (wide.drain_cycles, wide.period, wide.interval) == (4, 8, 33)
    assert wide.batch_cycles == 1 + 3 * 8 + 8 + 3 + 1 + 3 + 3 + 1 == 44
    narrow = dataclasses.replace(wide, drain_width=1)
    assert (narrow.period, narrow.interval) == (9, 37)


def _unused_warnings(make) -> list:
    """The UnusedElaboratable warnings left after ``make()`` (which may raise) and a
    collection."""
    import gc
    import warnings

    from amaranth.hdl import UnusedElaboratable
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            make()
        except (TypeError, ValueError):
            pass
        gc.collect()
    return [w for w in caught if issubclass(w.category, UnusedElaboratable)]


def test_refused_designs_are_not_unused_elaboratables():
    """Engines validate their plan before they exist: a refusal leaves nothing behind (and
    the check sees an engine that was built and never used)."""
    from amaranth.hdl import Fragment

    from rtl_gen.design.float_network import FloatNetwork
    from rtl_gen.hw.float_layer import FloatLayerEngine, FloatNetworkEngine
    from rtl_gen.hw.fpu import FloatMul
    from rtl_gen.numerics.floatops import BINARY32, FloatFormat
    tr_net, _ = small_net((8, 4, 2), "signmag5")
    net, _ = small_net((8, 4, 2), "int4")
    Fragment.get(LayerEngine(net.layers[0], ArrayConfig()), None)  # elaboration has begun
    assert len(_unused_warnings(lambda: LayerEngine(net.layers[0], ArrayConfig()))) == 1
    for make in (lambda: LayerEngine(tr_net.layers[0], ArrayConfig()),
                 lambda: NetworkEngine(tr_net),
                 lambda: NetworkEngine(net, (ArrayConfig(rows=1), ArrayConfig(rows=2))),
                 lambda: FloatLayerEngine(net.layers[0]),
                 lambda: FloatNetworkEngine(FloatNetwork("n", 8, None, []), [1]),
                 lambda: FloatMul(BINARY32, FloatFormat(9, 30))):
        assert _unused_warnings(make) == []


@pytest.mark.parametrize("rows,cols,stalls", [(1, 3, False), (2, 3, True), (3, 8, False)])
def test_argmax_ties_and_class_timing(rows, cols, stalls):
    """Equal largest logits: the first index wins, also across tiles and with the batch's
    rows interleaved; every class leaves two cycles after its image's last logit is taken
    (the argmax registers the key, then compares)."""
    import dataclasses
    net, calib = small_net((9, 6, 7), ("int4", "int8"))
    last = net.layers[-1]
    codes = np.array(last.codes)
    codes[[4, 6]] = codes[1]  # logits 1, 4 and 6 always equal
    bias = np.array(last.bias)
    x_int = net.input.quantize(calib[:6])
    lift = 2 * int(np.abs(golden.forward(net, x_int)).max()) + 1
    bias[[1, 4, 6]] = bias[1] + lift  # ... and always the largest
    tied = dataclasses.replace(last, codes=codes, bias=bias)
    net = dataclasses.replace(net, layers=(*net.layers[:-1], tied))
    want = golden.forward(net, x_int)
    assert (want[:, 1] == want[:, 4]).all() and (want[:, 1] == want.max(axis=1)).all()
    engine = NetworkEngine(net, (ArrayConfig(rows=rows, cols=4), ArrayConfig(rows=rows,
                                                                            cols=cols)))
    order = engine.logit_order()
    rng = np.random.default_rng(3)
    pad = (-len(x_int)) % rows
    x = np.concatenate([x_int, np.zeros((pad, x_int.shape[1]), np.int64)])
    pulses, now = [], [0]

    async def producer(ctx):
        await stream_put(ctx, engine.i, x.reshape(-1))

    async def consumer(ctx):
        def look(ctx):
            if ctx.get(engine.cls.valid):
                pulses.append((now[0], ctx.get(engine.cls.payload)))
            now[0] += 1

        got.extend(await stream_get(ctx, engine.o, len(x) // rows * len(order),
                                    each_cycle=look, tail=4,
                                    ready=(lambda: rng.random() < 0.5) if stalls else None))

    got = []
    simulate(engine, producer, consumer)
    assert [c for _, c in pulses] == [1] * len(x)
    # the cycle each image's last logit was taken, images in order
    last_taken = []
    for b in range(len(x) // rows):
        chunk = got[b * len(order):(b + 1) * len(order)]
        for r in range(rows):
            last_taken.append(max(cyc for (rr, _), (cyc, _) in zip(order, chunk, strict=True)
                                  if rr == r))
    assert [cyc for cyc, _ in pulses] == [t + 1 for t in last_taken]
    assert np.array_equal(np.array([c for _, c in pulses])[:len(x_int)],
                          golden.predict(net, x_int))
