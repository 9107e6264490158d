"""The bit-serial network engine (the bit-plane PE as a layer engine) in amaranth.sim
against its golden model (:mod:`rtl_gen.design.bitserial`) at run-time precisions.

Small networks with awkward sizes (inputs not a multiple of the lanes, fewer outputs than
columns, several tiles, batches of two, signed inputs, weights of several schemes): every
logit equals :func:`~rtl_gen.design.bitserial.bitserial_forward` at the same precisions,
every class its argmax, and every layer's cycle counter the cycle model
(:meth:`~rtl_gen.design.timing.LayerTiming.bit_serial`).  The digits int4 network runs as
Verilog under cocotb (``tests/test_bitserial_cocotb.py``).
"""

from __future__ import annotations

import numpy as np
import pytest

from rtl_gen.design import golden
from rtl_gen.design.bitserial import (
    bitserial_forward,
    bitserial_predict,
    truncate_planes,
    weight_bits,
)
from rtl_gen.hw.bitserial import BitSerialNetworkEngine, bitserial_array
from rtl_gen.hw.layer import ArrayConfig
from sim.streams import simulate, stream_get, stream_put, watch
from tests.test_network_sim import small_net


def run(engine, x_int, w_prec=0, a_prec=0):
    """Images through the engine at run-time precisions: logits per image, classes and the
    per-layer cycle counters seen after each change."""
    rows = engine.rows
    pad = (-len(x_int)) % rows
    x = np.concatenate([x_int, np.zeros((pad, x_int.shape[1]), np.int64)])
    order = engine.logit_order()
    per_batch = len(order)
    n_layers = len(engine.timings)
    logits, classes, seen = [], [], []

    async def producer(ctx):
        ctx.set(engine.bp_w_bits, w_prec)
        ctx.set(engine.bp_a_bits, a_prec)
        await ctx.tick()
        await stream_put(ctx, engine.i, x.reshape(-1))

    async def consumer(ctx):
        counters = watch([engine.layer_cycles[i] for i in range(n_layers)], seen)

        def look(ctx):
            if ctx.get(engine.cls.valid):
                classes.append(ctx.get(engine.cls.payload))
            counters(ctx)

        got = await stream_get(ctx, engine.o, len(x) // rows * per_batch, each_cycle=look,
                               tail=4)
        logits.extend(v for _, v in got)

    simulate(engine, producer, consumer)
    n_out = int(order[:, 1].max()) + 1
    got = np.zeros((len(x), n_out), np.int64)
    for b, chunk in enumerate(np.array(logits, np.int64).reshape(-1, per_batch)):
        for (r, ch), v in zip(order, chunk, strict=True):
            got[b * rows + r, ch] = v
    return got[:len(x_int)], np.array(classes[:len(x_int)]), seen


def check(net, calib, arrays, precisions, n_img=3):
    x = net.input.quantize(calib[:n_img])
    engine = BitSerialNetworkEngine(net, arrays)
    schedules = set()
    for wp, ap in precisions:
        logits, classes, seen = run(engine, x, wp, ap)
        assert logits.tolist() == bitserial_forward(net, x, wp, ap).tolist(), (wp, ap)
        assert classes.tolist() == bitserial_predict(net, x, wp, ap).tolist(), (wp, ap)
        model = [t.batch_cycles for t in engine.timings_for(wp, ap)]
        for i in range(len(net.layers)):
            assert [c for j, c in seen if j == i][-1] == model[i], (wp, ap, i)
        schedules.add(tuple(model))
    return schedules


def test_full_precision_is_the_networks_own_golden_model():
    net, calib = small_net([20, 7, 3], ["int4", "ternary"], seed=3)
    x = net.input.quantize(calib)
    assert bitserial_forward(net, x).tolist() == golden.forward(net, x).tolist()
    assert bitserial_forward(net, x, 99, 99).tolist() == golden.forward(net, x).tolist()
    assert bitserial_forward(net, x, 2, 3).tolist() != golden.forward(net, x).tolist()


def test_truncation_keeps_the_top_planes():
    v = np.array([-8, -1, 0, 5, 7])
    assert truncate_planes(v, 4, 4).tolist() == [-8, -1, 0, 5, 7]
    assert truncate_planes(v, 4, 2).tolist() == [-8, -4, 0, 4, 4]
    assert truncate_planes(v, 4, 1).tolist() == [-8, -8, 0, 0, 0]
    net, _ = small_net([4, 2], ["int4"])
    assert weight_bits(net.layers[0]) == 4


def test_bitserial_network_at_run_time_precisions():
    net, calib = small_net([20, 7, 3], ["int4", "int3"], seed=2, input_bits=5)
    arrays = [ArrayConfig(cols=3, lanes=8), ArrayConfig(cols=2, lanes=4)]
    schedules = check(net, calib, arrays, [(0, 0), (2, 3), (1, 1), (4, 5), (3, 0)])
    assert len(schedules) == 5  # every precision pair changes the schedule


def test_signed_input_batch_of_two_and_default_array():
    net, calib = small_net([11, 6, 4], ["int4", "signmag5"], seed=5, signed_input=True,
                           input_bits=6)
    check(net, calib, [ArrayConfig(rows=2, cols=4, lanes=4), ArrayConfig(rows=2, cols=3)],
          [(0, 0), (2, 4)], n_img=4)
    assert bitserial_array() == ArrayConfig(rows=1, cols=8, lanes=16)


def test_refuses_multiplier_and_pipeline_options():
    net, _ = small_net([4, 2], ["int4"])
    for array in (ArrayConfig(pipeline=1), ArrayConfig(multiplier="dsp"),
                  ArrayConfig(cols=2, drain_width=2)):
        with pytest.raises(ValueError, match="no multiplier, pipeline or drain width"):
            BitSerialNetworkEngine(net, [array])
    with pytest.raises(ValueError, match="one array configuration per layer"):
        BitSerialNetworkEngine(net, [ArrayConfig(), ArrayConfig()])
