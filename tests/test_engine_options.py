"""The layer engines' plan options in amaranth.sim against the golden model.

* ``counters=False``: the engines have no counter logic, ``cycles``/``layer_cycles`` read
  0, and the results are those of the engine with counters; with counters, the counter is
  as wide as the cycle model asks and saturates.
* The requantizer is sized from the layer's real values: layers at the extremes of the
  accumulator, ``M`` and ``S`` (and channels that differ in all three) stay exact.
* ``requant="threshold"``: the thresholds give the requantized output for every
  accumulator value, by themselves and in an engine driven over every input of a layer.
"""

from __future__ import annotations

import dataclasses
import types

import numpy as np
import pytest
from amaranth import Module, Signal
from amaranth.hdl import Fragment

from rtl_gen.design import golden
from rtl_gen.design.network import DenseLayer, TRConfig
from rtl_gen.hw.kit import (
    acc_range,
    batch_counter,
    column_words,
    counter_bits,
    input_banks,
    plan_requant,
    requant_thresholds,
    signed_bits,
)
from rtl_gen.hw.layer import ArrayConfig, LayerEngine, plan_layer
from rtl_gen.hw.network import NetworkEngine
from rtl_gen.hw.verilog import to_verilog
from rtl_gen.numerics.fixedpoint import MAX_SHIFT, requantize
from rtl_gen.numerics.schemes import parse_scheme
from sim.streams import simulate, stream_get, stream_put
from tests.test_network_sim import run_network, small_net


def int_layer(w, bias, *, in_bits=8, in_signed=False, mult=None, shift=None, out_bits=8,
              scheme="int8"):
    """A dense layer from integer weights (two's-complement codes)."""
    w = np.asarray(w, np.int64)
    sch = parse_scheme(scheme)
    relu = mult is not None
    n = w.shape[0]
    return DenseLayer(
        name="t", scheme=sch, codes=(w & ((1 << sch.bits) - 1)).astype(np.uint16),
        weight_scale=1.0, bias=np.asarray(bias, np.int64), in_bits=in_bits,
        in_signed=in_signed, activation="relu" if relu else "none",
        out_bits=out_bits if relu else None, out_scale=1.0 if relu else None,
        requant_multiplier=np.broadcast_to(np.asarray(mult, np.int64), (n,)).copy()
        if relu else None,
        requant_shift=np.broadcast_to(np.asarray(shift, np.int64), (n,)).copy()
        if relu else None)


def run_layer(engine, x: np.ndarray) -> np.ndarray:
    """Feed ``x`` (images, features) row-major through a one-row layer engine; returns
    ``(images, outputs)`` in channel order."""
    n = engine._plan.layer.out_features
    got = []

    async def producer(ctx):
        await stream_put(ctx, engine.i, x.reshape(-1))

    async def consumer(ctx):
        got.extend(v for _, v in await stream_get(ctx, engine.o, len(x) * n))

    simulate(engine, producer, consumer)
    return np.array(got, np.int64).reshape(len(x), n)


def extreme_inputs(layer, rng, extra=8):
    """Inputs at the range's ends: all low, all high, and for each channel the inputs that
    make its accumulator largest and smallest; then random ones."""
    lo, hi = ((-(1 << (layer.in_bits - 1)), (1 << (layer.in_bits - 1)) - 1)
              if layer.in_signed else (0, (1 << layer.in_bits) - 1))
    w = layer.w_int
    xs = [np.full(layer.in_features, lo), np.full(layer.in_features, hi)]
    for row in w:
        xs.append(np.where(row > 0, hi, lo))
        xs.append(np.where(row > 0, lo, hi))
    xs += list(rng.integers(lo, hi + 1, (extra, layer.in_features)))
    return np.array(xs, np.int64)


# -- counters ----------------------------------------------------------------------------------


def test_counters_off_same_results_no_counter_logic():
    net, calib = small_net((13, 7, 5), ("int4", "ternary"))
    x = net.input.quantize(calib[:6])
    arrays = (ArrayConfig(cols=3), ArrayConfig(cols=8))
    on = NetworkEngine(net, arrays)
    off = NetworkEngine(net, arrays, counters=False)
    got_on, cls_on, cyc_on = run_network(on, x)
    got_off, cls_off, cyc_off = run_network(off, x)
    want = golden.forward(net, x)
    np.testing.assert_array_equal(got_on, want)
    np.testing.assert_array_equal(got_off, want)
    np.testing.assert_array_equal(cls_off, cls_on)
    assert {i for i, _ in cyc_on} == {0, 1}      # the counters counted...
    assert cyc_off == []                         # ...and without them every layer reads 0
    text = to_verilog(off, "off")
    assert "elapsed" not in text and "batch_cycles" not in text
    assert "elapsed" in to_verilog(on, "on")


def test_counters_option_checked():
    net, _ = small_net((8, 4, 2), ("int4", "int4"))
    with pytest.raises(TypeError, match="counters must be True or False"):
        plan_layer(net.layers[0], ArrayConfig(), counters=1)
    assert plan_layer(net.layers[0], ArrayConfig(), counters=False).counters is False


def test_counter_width_and_saturation():
    """A counter planned for batches of at most 5 cycles has 4 bits: it counts exactly up to
    15 cycles and then saturates (a stalled batch reads 16)."""
    assert counter_bits(5) == 4 and counter_bits(279) == 10
    m = Module()
    cycles, started, written = Signal(32), Signal(), Signal()
    batch_counter(m, cycles, started=started, written=written, per_batch=2, in_flight=2,
                  bound=5)
    seen = []

    async def bench(ctx):
        # batch A taken at cycle 0, batch B at 3; A's two writes at 3 and 4 (5 cycles),
        # B's at 10 and 30 (28 cycles: saturated)
        events = {0: "s", 3: "sw", 4: "w", 10: "w", 30: "w"}
        for t in range(33):
            e = events.get(t, "")
            ctx.set(started, "s" in e)
            ctx.set(written, "w" in e)
            await ctx.tick()
            seen.append(ctx.get(cycles))

    simulate(m, bench)
    assert seen[4] == 5 and seen[30] == 16 and set(seen[5:30]) == {5}


def test_column_words_pack_each_tiles_channels_by_step():
    """5 channels of 3 inputs on 2 columns: 3 tiles of 3 words, channel ``2t + c`` at bits
    ``4c`` of word ``3t + k``, code 0 for the missing sixth channel."""
    codes = np.arange(1, 16).reshape(5, 3)   # code of [n, k] is 3n + k + 1
    timing = types.SimpleNamespace(tiles=3, k=3, cols=2, n=5, lanes=1, k_steps=3)
    assert column_words(codes, timing, 4) == [0x41, 0x52, 0x63, 0xA7, 0xB8, 0xC9,
                                              0x0D, 0x0E, 0x0F]
    # two inputs a step: 2 words a tile, weight [2t + c, 2s + l] at bits 4 * (2c + l), code 0
    # for the missing fourth input
    timing = types.SimpleNamespace(tiles=3, k=3, cols=2, n=5, lanes=2, k_steps=2)
    assert column_words(codes, timing, 4) == [0x5421, 0x0603, 0xBA87, 0x0C09, 0xED, 0x0F]


@pytest.mark.parametrize("lanes,k,src_cols", [(3, 8, 8), (4, 7, 7), (4, 8, 4)])
def test_input_banks_refuse_a_transfer_width_that_does_not_fit(lanes, k, src_cols):
    """Two activations per transfer need lanes and inputs that 2 divides, in row-major
    order (a producer of ``k`` columns)."""
    m = Module()
    with pytest.raises(ValueError, match="2 activations per transfer need lanes"):
        input_banks(m, None, rows=1, lanes=lanes, a_bits=4, ks=4, k=k, src_cols=src_cols,
                    per_beat=2)
    Fragment.get(m, None)   # the module is left empty, not unused


def test_counter_width_has_one_bit_of_headroom_from_one_cycle_up():
    """A bound of 1 cycle needs 1 bit, and one of headroom: 2; a bound of 0 is counted as 1;
    2 and 3 cycles need 2 bits, 4 needs 3."""
    assert [counter_bits(b) for b in (0, 1, 2, 3, 4)] == [2, 2, 3, 3, 4]


# -- the requantizer sized from real values ----------------------------------------------------


def test_a_term_revealing_layer_spans_its_accumulator():
    """A term-revealing layer's truncated products are bounded only by its accumulator: the
    range is that of a signed ``acc_bits`` field."""
    s = parse_scheme("signmag7")
    layer = DenseLayer(name="fc1", scheme=s, codes=s.encode(np.array([[45, -7, 3, 12]] * 2)),
                       weight_scale=1.0, bias=np.array([5, -5]), in_bits=6, in_signed=False,
                       activation="none", tr=TRConfig(group=4, budget=6, data_terms=2))
    half = 1 << (layer.acc_bits - 1)
    assert acc_range(layer) == ([-half, -half], [half - 1, half - 1])


def test_requant_widths_from_real_values():
    """The widths come from the layer's values, not the worst case of its scheme."""
    layer = int_layer([[1, -2, 3], [0, 0, 0]], [5, -7], mult=[3, 1000], shift=[2, 12])
    rq = plan_requant(layer, "multiply")
    assert (rq.lo, rq.hi) == ((5 - 2 * 255, -7), (5 + 4 * 255, -7))
    assert rq.acc_bits == signed_bits(5 - 510, 5 + 1020) == 12 < layer.acc_bits
    assert rq.m_bits == 10
    assert rq.product_bits == signed_bits(-7 * 1000 + 2048, 1025 * 3 + 2)
    assert [signed_bits(lo, hi) for lo, hi in ((0, 0), (-1, 0), (0, 1), (-129, 127),
                                               (-128, 128))] == [1, 1, 2, 9, 9]


EXTREMES = {
    # the largest M (31 bits) beside a 32-bit accumulator, shifts from 1 to MAX_SHIFT
    "m31": dict(w=[[127, -127, 127], [-127, -127, -127], [1, 0, -1], [127, 127, 127]],
                bias=[1 << 30, -(1 << 30), 0, 3], mult=[(1 << 31) - 1, 1, 12345, 77],
                shift=[31, 1, MAX_SHIFT, 9], out_bits=8),
    # the largest bias (2**40 - 1): a 42-bit accumulator with a 21-bit M, S up to MAX_SHIFT
    "acc42": dict(w=[[127, 127], [-127, -127], [5, -3]],
                  bias=[(1 << 40) - 1, -((1 << 40) - 1), 1 << 30],
                  mult=[(1 << 21) - 1, (1 << 21) - 1, 1 << 20], shift=[40, MAX_SHIFT, 48],
                  out_bits=16),
    # signed inputs, one channel whose output spans the whole 1-bit range
    "signed1": dict(w=[[3, -5, 7, 1], [-1, -1, -1, -1]], bias=[0, 10], mult=[1, 3],
                    shift=[5, 2], out_bits=1, in_signed=True),
}


@pytest.mark.parametrize("name", list(EXTREMES))
def test_requant_extremes_exact(name):
    p = dict(EXTREMES[name])
    w, bias = p.pop("w"), p.pop("bias")
    layer = int_layer(w, bias, **p)
    x = extreme_inputs(layer, np.random.default_rng(1))
    want = golden.layer_forward(layer, x)
    assert want.min() == 0 and want.max() == (1 << layer.out_bits) - 1  # both clamps hit
    for method in ("multiply", "threshold") if layer.out_bits <= 2 else ("multiply",):
        engine = LayerEngine(layer, ArrayConfig(cols=3), requant=method)
        np.testing.assert_array_equal(run_layer(engine, x), want, err_msg=method)


def test_logits_extremes_exact():
    layer = int_layer([[127, -127, 127], [-127, 127, 0]], [(1 << 40) - 1, -((1 << 40) - 1)])
    x = extreme_inputs(layer, np.random.default_rng(2))
    np.testing.assert_array_equal(run_layer(LayerEngine(layer, ArrayConfig(cols=2)), x),
                                  golden.layer_forward(layer, x))


# -- thresholds --------------------------------------------------------------------------------


@pytest.mark.parametrize("mult,shift,out_bits", [(1, 1, 1), (3, 2, 2), (12345, 20, 2),
                                                  ((1 << 31) - 1, 40, 3), (5, 1, 4)])
def test_thresholds_every_accumulator_value(mult, shift, out_bits):
    """The number of thresholds an accumulator reaches is its requantized output, for every
    accumulator in the range."""
    lo, hi = -3000, 5000
    t = np.array(requant_thresholds(lo, hi, mult, shift, out_bits))
    acc = np.arange(lo, hi + 1)
    count = (acc[:, None] >= t[None, :]).sum(axis=1)
    np.testing.assert_array_equal(count, requantize(acc, mult, shift, out_bits))
    assert list(t) == sorted(t) and t.min() >= lo and t.max() <= hi + 1


def test_every_accumulator_value_both_methods():
    """A layer of one input whose channels (weights 1, -1, 2, bias, M, S differing; one with
    M = 1, S = 3 whose rounding ties fall on inputs) reach every accumulator value of their
    range over the 256 inputs: the threshold and the multiply drains give the golden output
    for each."""
    layer = int_layer([[1], [-1], [2], [1], [1]], [-40, 200, -300, 0, 0],
                      mult=[300, 501, 999, 77, 1], shift=[14, 15, 16, 12, 3], out_bits=2)
    assert plan_requant(layer, "auto").method == "threshold"
    x = np.arange(256)[:, None]
    want = golden.layer_forward(layer, x)
    assert set(want.ravel()) == {0, 1, 2, 3}
    for method in ("threshold", "multiply"):
        engine = LayerEngine(layer, ArrayConfig(cols=4), requant=method)
        np.testing.assert_array_equal(run_layer(engine, x), want, err_msg=method)


def test_requant_auto_and_checks():
    net, _ = small_net((8, 4, 2), ("int4", "int4"), act_bits=2)
    assert plan_requant(net.layers[0]).method == "threshold"          # 3 < 15-bit M
    assert plan_requant(net.layers[0], "multiply").method == "multiply"
    assert plan_requant(net.layers[1]).method == "none"               # logits
    wide, _ = small_net((8, 4, 2), ("int4", "int4"))
    assert plan_requant(wide.layers[0]).method == "multiply"          # 255 comparators
    with pytest.raises(ValueError, match="requant must be one of auto, multiply, threshold"):
        plan_requant(net.layers[0], "lut")
    with pytest.raises(ValueError, match="at most 8 bits"):
        plan_requant(dataclasses.replace(wide.layers[0], out_bits=9), "threshold")


@pytest.mark.parametrize("requant", ["threshold", "multiply"])
def test_narrow_network_exact(requant):
    """A network of 2-bit activations on either requantizer, batch 2 (skewed array) and
    batch 1 (broadcast): logits, classes and cycles as the models say."""
    net, calib = small_net((11, 6, 4), ("int4", "int3"), act_bits=2)
    x = net.input.quantize(calib[:6])
    for rows in (1, 2):
        engine = NetworkEngine(net, (ArrayConfig(rows=rows, cols=4),
                                     ArrayConfig(rows=rows, cols=3)), requant=requant)
        got, classes, cycles = run_network(engine, x)
        np.testing.assert_array_equal(got, golden.forward(net, x))
        np.testing.assert_array_equal(classes, golden.predict(net, x))
        for i, t in enumerate(engine.timings):
            assert [v for j, v in cycles if j == i] == [t.batch_cycles], (rows, i)


# -- broadcast operands on one-row arrays ------------------------------------------------------


def test_one_row_arrays_broadcast():
    """Batch 1: the array broadcasts its operands, so results complete 2 + PE latency cycles
    after the last step instead of R + C + PE latency (the digits MLP's first layer on the
    default int8 array: 3 instead of 10, 272 cycles a batch instead of 279); with more rows
    the array skews them."""
    from rtl_gen.hw.layer import layer_timing
    t = golden.LayerTiming.systolic(k=64, n=32, rows=1, cols=8, lanes=1, pe_latency=1,
                                    requantize=True, broadcast=True)
    assert t.array_latency == 3
    assert t.batch_cycles == 1 + 3 * 64 + 64 + 3 + 1 + 7 + 3 + 1 == 272
    net, _ = small_net((8, 4, 2), ("int4", "int4"))
    assert layer_timing(net.layers[0], ArrayConfig(cols=8)).array_latency == 2 + 1
    assert layer_timing(net.layers[0], ArrayConfig(rows=2, cols=8)).array_latency == 2 + 8 + 1
    text = to_verilog(LayerEngine(net.layers[0], ArrayConfig(cols=4)), "one_row")
    assert "x0_1_d0" not in text and "w1_d0" not in text      # no skew registers
    assert "x0_1_d0" in to_verilog(LayerEngine(net.layers[0], ArrayConfig(rows=2, cols=4)),
                                   "two_rows")
