"""The unrolled network engine (:mod:`rtl_gen.hw.unrolled`) against the golden model.

Fast tier: small networks of several weight schemes in amaranth.sim, one input vector a
cycle: every logit equals ``golden.forward``, every class ``golden.predict``, every vector is
taken in the cycle after the one before (interval 1) and its logits leave exactly the plan's
``latency`` cycles after it was taken; with gaps and back-pressure the answers are the same;
a flipped weight makes the check fail; refused networks and options name what is wrong.
Slow tier: the Verilog of every shipped integer bundle under cocotb on the whole digits test
split (:func:`sim.verify.verify_network` with the unrolled engine), under Icarus where it is
installed: an unrolled network is one wide pipeline that Icarus compiles in a second and runs
through the split in seconds, where Verilator's C++ build of it takes 25-90 s per bundle for
a run of 400 cycles.  The engine under Verilator: gaps and stalls on the ternary bundle here,
and ``verify --fit`` in ``tests/test_engine_choice.py``.
"""

from __future__ import annotations

import dataclasses
import gc
import warnings

import numpy as np
import pytest
from amaranth.hdl import Fragment
from amaranth.sim import Simulator

from rtl_gen.design import golden
from rtl_gen.design.network import TRConfig
from rtl_gen.hw.unrolled import (
    ARGMAX_MATRIX_MAX,
    Term,
    UnrolledNetworkEngine,
    UnrolledPlanError,
    argmax_levels,
    csd,
    direct_requant,
    fabric_requant,
    plan_unrolled,
    revealed_weights,
    rom_requant,
)
from rtl_gen.numerics.terms import truncate_terms
from rtl_gen.training.float_model import FloatMLP
from rtl_gen.training.quantize import quantize_mlp


def small_net(sizes, schemes, *, seed=0, signed_input=False, input_bits=8, act_bits=8):
    rng = np.random.default_rng(seed)
    weights = [rng.normal(0, 1 / np.sqrt(a), (b, a))
               for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
    biases = [rng.normal(0, 0.2, b) for b in sizes[1:]]
    calib = rng.normal(0, 1, (64, sizes[0]))
    if not signed_input:
        calib = np.abs(calib)
    model = FloatMLP(weights, biases, calibration=calib)
    net = quantize_mlp(model, schemes, name="small", input_bits=input_bits,
                       act_bits=act_bits)
    return net, net.input.quantize(calib)


def run_unrolled(engine: UnrolledNetworkEngine, x_int, *, gaps=None, ready=None):
    """Feed the vectors (``gaps()``: idle cycles before each), take the results (``ready()``:
    the output's ready each cycle).  Returns logits ``(images, classes)``, classes, the
    ``cycles`` counter at each input transfer and at each output transfer."""
    x_int = np.asarray(x_int, np.int64)
    n = len(x_int)
    taken, given, logits, classes = [], [], [], []

    async def producer(ctx):
        for x in x_int:
            for _ in range(gaps() if gaps else 0):
                ctx.set(engine.i.valid, 0)
                await ctx.tick()
            ctx.set(engine.i.payload, [int(v) for v in x])
            ctx.set(engine.i.valid, 1)
            while True:
                *_, rdy, cyc = await ctx.tick().sample(engine.i.ready, engine.cycles)
                if rdy:
                    taken.append(cyc)
                    break
        ctx.set(engine.i.valid, 0)

    async def consumer(ctx):
        spare = 0
        while len(logits) < n or spare < 3:
            ctx.set(engine.o.ready, 1 if ready is None else int(ready()))
            *_, valid, rdy, payload, c_valid, c_payload, cyc = await ctx.tick().sample(
                engine.o.valid, engine.o.ready, engine.o.payload, engine.cls.valid,
                engine.cls.payload, engine.cycles)
            if valid and rdy:
                logits.append([int(payload[c]) for c in range(engine.o.payload.shape().length)])
                given.append(cyc)
            if c_valid:
                classes.append(c_payload)
            if len(logits) >= n:
                spare += 1

    sim = Simulator(engine)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    return np.array(logits, np.int64), np.array(classes, np.int64), taken, given


def check_bit_exact(engine, net, x_int, **traffic):
    """Every logit and class of ``engine`` equals the golden model of ``net``; returns the
    cycles of the input and output transfers."""
    got, classes, taken, given = run_unrolled(engine, x_int, **traffic)
    want = golden.forward(net, x_int)
    assert got.shape == want.shape
    bad = np.argwhere(got != want)
    assert bad.size == 0, f"{len(bad)} logits differ, first at {tuple(bad[0])}"
    assert np.array_equal(classes, golden.predict(net, x_int))
    return taken, given


CASES = [
    # sizes, schemes, signed input, stage, schedule, multiplier
    ((13, 7, 5), ("int4", "ternary"), False, 2, "minreg", "dsp"),
    ((10, 9, 4), ("pot4", "apot4"), True, 1, "asap", "dsp"),
    ((16, 6, 3), ("binary", "int8"), False, 3, "alap", "adders"),
    ((9, 5, 4, 3), ("int8", "pot3", "apot5"), True, 2, "asap", "adders"),
    ((12, 8, 6), ("int6", "int3"), False, 1, "minreg", "adders"),
    ((7, 2), ("ternary",), True, 2, "alap", "dsp"),
    ((14, 9, 4), ("binary", "int4"), False, 2, "minreg", "rom"),
    ((10, 7, 5, 3), ("int4", "ternary", "int8"), True, 1, "asap", "rom"),
]


@pytest.mark.parametrize("sizes,schemes,signed,stage,schedule,multiplier", CASES,
                         ids=["-".join(c[1]) + f"-s{c[3]}-{c[4]}-{c[5]}" for c in CASES])
def test_unrolled_matches_golden_one_vector_a_cycle(sizes, schemes, signed, stage,
                                                      schedule, multiplier):
    net, x_int = small_net(sizes, schemes, signed_input=signed)
    x_int = x_int[:24]
    engine = UnrolledNetworkEngine(net, stage=stage, schedule=schedule,
                                   multiplier=multiplier)
    taken, given = check_bit_exact(engine, net, x_int)
    assert engine.interval == 1
    assert np.diff(taken).tolist() == [1] * (len(x_int) - 1)        # a vector every cycle
    assert [g - t for t, g in zip(taken, given, strict=True)] == [engine.latency] * len(x_int)


def test_gaps_and_back_pressure_keep_answers_and_order():
    net, x_int = small_net((11, 6, 4), ("int8", "ternary"), seed=3)
    x_int = x_int[:30]
    engine = UnrolledNetworkEngine(net)
    rng = np.random.default_rng(5)
    taken, given = check_bit_exact(engine, net, x_int,
                                   gaps=lambda: int(rng.choice([0, 0, 0, 1, 3])),
                                   ready=lambda: rng.random() < 0.6)
    assert all(g - t >= engine.latency for t, g in zip(taken, given, strict=True))


@pytest.mark.parametrize("input_bits", [8, 4])
def test_table_requantizers_under_gaps_and_back_pressure(input_bits):
    """The table requantizers' block RAM reads hold with the pipeline: answers and order
    under idle inputs and a consumer that stalls; with 8-bit inputs the tables span their
    windows (the accumulator clamped into the address), with 4-bit ones each graph node
    takes under 2,048 values and addresses its table directly."""
    net, x_int = small_net((14, 9, 4), ("binary", "int4"), input_bits=input_bits)
    engine = UnrolledNetworkEngine(net, multiplier="rom")
    assert all(r is not None for r in engine.layers[0].rom)
    assert {r.direct for r in engine.layers[0].rom} == {input_bits == 4}
    rng = np.random.default_rng(9)
    taken, given = check_bit_exact(engine, net, x_int[:30],
                                   gaps=lambda: int(rng.choice([0, 0, 1, 2])),
                                   ready=lambda: rng.random() < 0.5)
    assert all(g - t >= engine.latency for t, g in zip(taken, given, strict=True))


def tr_net(data_terms):
    """A small sign-magnitude network whose layers reveal 3 terms of each group of 4 weights
    and take ``data_terms`` terms of each input."""
    net, x_int = small_net((12, 8, 4), ("signmag5", "signmag4"))
    layers = tuple(dataclasses.replace(ly, tr=TRConfig(4, 3, data_terms)) for ly in net.layers)
    return dataclasses.replace(net, layers=layers), x_int


@pytest.mark.parametrize("multiplier", ["rom", "adders", "dsp"])
def test_term_revealing_fixed_at_the_bundles_setting(multiplier):
    """A term-revealing network unrolled: the revealed weights as constants, the inputs and
    the hidden codes truncated to the data terms (a lookup, or the table's own codes), equal
    to the golden model at the bundle's setting, which differs from its conventional mode
    and from the revealed weights on whole inputs."""
    net, x_int = tr_net(2)
    x_int = x_int[:40]
    w = [ly.w_int for ly in net.layers]
    revealed = [revealed_weights(ly) for ly in net.layers]
    assert not any(np.array_equal(r, v) for r, v in zip(revealed, w, strict=True))
    engine = UnrolledNetworkEngine(net, multiplier=multiplier)
    lo, hi = net.input.range
    assert engine._plan.in_trunc == tuple(truncate_terms(np.arange(lo, hi + 1), 2, 8))
    g = engine.layers[0]
    assert g.out_terms == 2
    assert g.out_trunc == tuple(truncate_terms(np.arange(256), 2, 8))
    if multiplier == "rom":
        tables = [r for r in g.rom if r is not None]
        assert tables and all(set(r.codes) <= set(g.out_trunc) for r in tables)
    check_bit_exact(engine, net, x_int)
    # the check tells the setting apart: conventional mode and whole inputs answer otherwise
    off = golden.forward(net, x_int, golden.TRControl(mode=golden.TRMode.CONVENTIONAL))
    whole = golden.forward(net, x_int, golden.TRControl(data_terms=8))
    assert not np.array_equal(off, golden.forward(net, x_int))
    assert not np.array_equal(whole, golden.forward(net, x_int))


def test_term_revealing_without_data_terms_takes_the_codes_whole():
    net, x_int = tr_net(None)
    engine = UnrolledNetworkEngine(net, multiplier="rom")
    assert engine._plan.in_trunc is None and engine.layers[0].out_trunc is None
    check_bit_exact(engine, net, x_int[:24])


def test_latency_by_hand():
    """Slots: the input register is slot 1; a layer's adder level L is computed in slot
    ``in + (L - 1) // stage``; with the hard multiplier a hidden layer's accumulator is
    registered twice, multiplied (slot +2), registered, shifted and clamped (slot +3) and
    registered into the next layer; with the fabric requantizer its levels and then the
    clamp follow the accumulators' (``depth + 1 ...``); with tables the address clamp and
    the block RAM read take the two slots after the accumulators'.  The comparisons of every pair of
    logits are the level after the logits', the AND of each class's comparisons and its index
    the next slot, the final one; the output buffer adds one."""
    net, _ = small_net((13, 7, 5), ("int4", "ternary"))
    for stage in (1, 2, 3):
        for hard_dc in (-1, 0):
            plan = plan_unrolled(net, stage=stage, hard_dc=hard_dc)
            d0, d1 = (g.depth for g in plan.layers)
            in1 = 1 + (d0 - 1) // stage + 4
            compare = in1 + d1 // stage
            assert plan.argmax_slots == (compare, compare + 1)
            assert plan.latency == compare + 2
            assert [g.in_slot for g in plan.layers] == [1, in1]
            assert {g.hard_dc for g in plan.layers} == {hard_dc}
            fabric = plan_unrolled(net, stage=stage, hard_dc=hard_dc, multiplier="adders")
            g0, g1 = fabric.layers
            assert g0.depth == d0 and g1.depth == d1
            levels = max(f.levels for f in g0.fabric)
            assert g0.out_slot == 1 + (d0 + levels) // stage
            assert g1.in_slot == g0.out_slot + 1
            assert fabric.latency == g1.in_slot + d1 // stage + 2
    # with tables: the address clamp the slot after the accumulators', the block RAM read
    # the next, registered into the next layer
    narrow, _ = small_net((14, 9, 4), ("binary", "int4"))
    for stage in (1, 2, 3):
        tables = plan_unrolled(narrow, stage=stage, hard_dc=-1, multiplier="rom")
        t0, t1 = tables.layers
        assert all(r is not None for r in t0.rom)
        assert t0.out_slot == t0.acc_slot + 2 == 1 + (t0.depth - 1) // stage + 2
        assert t1.in_slot == t0.out_slot + 1
        assert tables.latency == t1.in_slot + t1.depth // stage + 2
    # a direct table takes its graph node as the address in the node's slot (no bias add,
    # no clamp): the layer ends the slot after its last such node's
    narrow, _ = small_net((14, 9, 4), ("binary", "int4"), input_bits=4)
    for stage in (1, 2, 3):
        tables = plan_unrolled(narrow, stage=stage, hard_dc=-1, multiplier="rom")
        t0, t1 = tables.layers
        assert all(r.direct for r in t0.rom)
        nodes = [t0.nodes[t0.nodes[o].terms[0].node] for o in t0.outputs]
        assert t0.out_slot == max(1 + (max(n.level, 1) - 1) // stage for n in nodes) + 1
        assert t0.out_slot < t0.acc_slot + 2        # before the window tables' slot
        assert t1.in_slot == t0.out_slot + 1
        assert tables.latency == t1.in_slot + t1.depth // stage + 2
        assert t0.adders == sum(len(n.terms) - 1 for n in t0.nodes if n.kind == "add")
    # by default each layer's graph is the one that ends in the earlier slot
    for stage in (1, 2, 3):
        auto = plan_unrolled(net, stage=stage, multiplier="adders")
        ends = [plan_unrolled(net, stage=stage, hard_dc=dc, multiplier="adders")
                for dc in (-1, 0)]
        assert auto.latency == min(p.latency for p in ends)


def test_argmax_matrix_takes_the_first_of_equal_logits():
    """Ties everywhere: a last layer whose outputs are equal for every input (each class's
    logits equal to another's), so that only the first of the largest may win."""
    net, x_int = small_net((6, 5, 4), ("int4", "int4"), seed=2)
    last = net.layers[-1]
    codes = last.codes.copy()
    codes[2] = codes[0]
    codes[3] = codes[1]
    bias = np.asarray(last.bias).copy()
    bias[2], bias[3] = bias[0], bias[1]
    tied = dataclasses.replace(net, layers=(net.layers[0], dataclasses.replace(
        last, codes=codes, bias=bias)))
    want = golden.predict(tied, x_int[:20])
    assert set(want.tolist()) <= {0, 1}
    check_bit_exact(UnrolledNetworkEngine(tied, multiplier="adders"), tied, x_int[:20])


def test_many_classes_take_the_argmax_tree():
    """Past :data:`ARGMAX_MATRIX_MAX` classes the argmax is a compare-and-select tree, a level
    a slot after the logits' slot, its last level into the output buffer."""
    classes = ARGMAX_MATRIX_MAX + 2
    net, x_int = small_net((8, 5, classes), ("int4", "int4"), seed=4)
    engine = UnrolledNetworkEngine(net, multiplier="adders")
    plan = plan_unrolled(net, multiplier="adders")
    acc = plan.layers[-1].acc_slot
    assert argmax_levels(classes) == 5
    assert plan.argmax_slots == tuple(range(acc + 1, acc + 6))
    assert plan.latency == acc + 6
    taken, given = check_bit_exact(engine, net, x_int[:16])
    assert [g - t for t, g in zip(taken, given, strict=True)] == [engine.latency] * 16


@pytest.mark.parametrize("seed", range(6))
def test_fabric_requantizer_equals_the_requantizer_over_the_range(seed):
    rng = np.random.default_rng(seed)
    lo = int(rng.integers(-3000, 10))
    hi = lo + int(rng.integers(1, 6000))
    shift = int(rng.integers(1, 22))
    mult = int(rng.integers(1, 1 << 15))
    top = (1 << int(rng.integers(1, 9))) - 1
    f = fabric_requant(lo, hi, mult, shift, top)
    a = np.arange(lo, hi + 1, dtype=np.int64)
    want = np.clip((a * mult + (1 << (shift - 1))) >> shift, 0, top)
    assert np.array_equal(np.clip((a * f.mult + f.const) >> f.shift, 0, top), want)
    assert sum(d << e for e, d in f.digits) == f.mult
    assert all(d in (-1, 1) for _, d in f.digits)
    assert f.terms <= len(csd(mult)) + 1


@pytest.mark.parametrize("seed", range(6))
def test_table_requantizer_equals_the_requantizer_over_the_range(seed):
    """Every accumulator in range reads its code from the table (below the base: entry 0,
    past the end: the last entry); a window over the limit or of one code has no table."""
    rng = np.random.default_rng(seed)
    lo = int(rng.integers(-3000, 10))
    hi = lo + int(rng.integers(1, 6000))
    shift = int(rng.integers(1, 12))
    mult = int(rng.integers(1, 1 << 10))
    top = (1 << int(rng.integers(1, 9))) - 1
    r = rom_requant(lo, hi, mult, shift, top, entries=1 << 20)
    a = np.arange(lo, hi + 1, dtype=np.int64)
    want = np.clip((a * mult + (1 << (shift - 1))) >> shift, 0, top)
    if r is None:
        assert len(set(want.tolist())) == 1
        return
    assert len(r.codes) == 1 << r.bits
    got = np.array(r.codes)[np.clip(a - r.base, 0, len(r.codes) - 1)]
    assert np.array_equal(got, want)
    assert rom_requant(lo, hi, mult, shift, top, entries=len(r.codes) - 1) is None


@pytest.mark.parametrize("seed", range(8))
def test_direct_table_requantizer_equals_the_requantizer_over_the_range(seed):
    """Every value ``v`` of a node's range reads, at ``v mod 2**bits``, the code of its
    accumulator ``bias ± (v << e)`` (a right shift: ``v`` a multiple of ``2**-e``, as the
    graph's forms make it); a range of more than ``entries`` values has no table."""
    rng = np.random.default_rng(seed)
    lo = int(rng.integers(-1500, 500))
    hi = lo + int(rng.integers(1, 2048))
    e = int(rng.integers(-2, 3))
    term = Term(node=0, shift=e, neg=bool(seed % 2))
    bias = int(rng.integers(-4000, 4000))
    shift = int(rng.integers(1, 14))
    mult = int(rng.integers(1, 1 << 10))
    top = (1 << int(rng.integers(1, 9))) - 1
    r = direct_requant(lo, hi, term, bias, mult, shift, top)
    assert r.direct and len(r.codes) == 1 << r.bits >= hi - lo + 1 > 1 << (r.bits - 1)
    v = np.arange(lo, hi + 1, dtype=np.int64)
    if e < 0:
        v = v[v % (1 << -e) == 0]
    acc = bias + (-1 if term.neg else 1) * (v * (1 << e) if e >= 0 else v // (1 << -e))
    want = np.clip((acc * mult + (1 << (shift - 1))) >> shift, 0, top)
    got = np.array(r.codes)[v & ((1 << r.bits) - 1)]
    assert np.array_equal(got, want)
    assert direct_requant(lo, hi, term, bias, mult, shift, top,
                          entries=len(r.codes) - 1) is None
    assert direct_requant(lo, lo, term, bias, mult, shift, top) is None


def test_csd_by_hand():
    assert csd(0) == []
    assert csd(7) == [(0, -1), (3, 1)]                 # 8 - 1
    # 0b101000110010010: bits 7 and 8 become 512 - 128
    assert csd(20882) == [(1, 1), (4, 1), (7, -1), (9, 1), (12, 1), (14, 1)]
    assert csd(5) == [(0, 1), (2, 1)]


def test_graph_widths_are_the_exact_ranges():
    """Every node's range is attained: brute force over all inputs of a 3-input layer."""
    net, _ = small_net((3, 4, 2), ("int4", "int3"), input_bits=3)
    plan = plan_unrolled(net)
    g = plan.layers[0]
    grid = np.array(np.meshgrid(*[np.arange(8)] * 3, indexing="ij")).reshape(3, -1).T
    acc = grid @ net.layers[0].w_int.T + net.layers[0].bias
    for o, n in enumerate(g.outputs):
        assert (g.nodes[n].lo, g.nodes[n].hi) == (acc[:, o].min(), acc[:, o].max())


def test_a_flipped_weight_fails_the_check():
    net, x_int = small_net((13, 7, 5), ("int4", "ternary"))
    x_int = x_int[:12]
    last = net.layers[-1]
    hidden = golden.forward(net, x_int, trace=True)[0]
    k = int(np.argmax((hidden != 0).sum(axis=0)))           # an input that is mostly non-zero
    codes = last.codes.copy()
    other = [c for c in np.unique(codes) if last.scheme.decode(np.array([c]))[0]
             != last.w_int[0, k]]
    codes[0, k] = other[0]
    faulty = dataclasses.replace(net, layers=(net.layers[0],
                                              dataclasses.replace(last, codes=codes)))
    check_bit_exact(UnrolledNetworkEngine(net), net, x_int)
    with pytest.raises(AssertionError, match="logits differ"):
        check_bit_exact(UnrolledNetworkEngine(faulty), net, x_int)


def _refusal(make, match):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(UnrolledPlanError, match=match):
            make()
        gc.collect()
    assert not [w for w in caught if "UnusedElaboratable" in w.category.__name__]


def test_refusals_name_what_is_wrong():
    from rtl_gen.design.float_network import FloatLayer, FloatNetwork

    net, _ = small_net((8, 4, 2), ("int4", "ternary"))
    f32 = np.array([[1.0, -1.0]], np.float32).view(np.uint32)
    float_net = FloatNetwork("f", 2, None, [FloatLayer("o", "float", f32, None,
                                                       np.zeros(1, np.uint32), "none")])
    _refusal(lambda: UnrolledNetworkEngine(float_net),
             "builds integer networks, not a float network")
    _refusal(lambda: UnrolledNetworkEngine(net, stage=0), "stage must be an integer in 1..64")
    _refusal(lambda: UnrolledNetworkEngine(net, stage=True), "stage must be")
    _refusal(lambda: UnrolledNetworkEngine(net, multiplier="lut"),
             "multiplier must be one of dsp, adders, rom, not 'lut'")
    _refusal(lambda: UnrolledNetworkEngine(net, hard_dc=-2),
             "hard_dc must be None or an integer in -1..64, not -2")
    _refusal(lambda: UnrolledNetworkEngine(net, schedule="soon"),
             "schedule must be one of minreg, alap, asap, not 'soon'")
    assert issubclass(UnrolledPlanError, ValueError)


def test_ports_and_plan():
    net, _ = small_net((13, 7, 5), ("int4", "ternary"), signed_input=True)
    engine = UnrolledNetworkEngine(net)
    sig = engine.signature.members
    assert sig["i"].signature.members["payload"].shape.length == 13
    assert sig["o"].signature.members["payload"].shape.length == 5
    assert engine.rows == 1 and engine.interval == 1
    assert engine.logit_order().tolist() == [[0, c] for c in range(5)]
    plan = plan_unrolled(net)
    assert plan.adders > 0 and "latency" in plan.describe()
    Fragment.get(engine, None)


# -- cocotb: the shipped bundles on the whole test split ----------------------------------------

SHIPPED = ["binary", "ternary", "pot4", "apot4", "int4", "int8", "mixed"]


def few_vector_simulator() -> str:
    """Icarus where it is installed (no C++ build: seconds for a run of a few hundred
    cycles), else Verilator; skips when neither is there."""
    from sim.runner import missing_simulator

    for simulator in ("icarus", "verilator"):
        if not missing_simulator(simulator):
            return simulator
    pytest.skip(missing_simulator("verilator"))


@pytest.mark.slow
@pytest.mark.parametrize("scheme", SHIPPED)
def test_shipped_bundle_bit_exact_in_verilog(scheme):
    """The design `--fit ecp5-85f` chooses for every shipped integer bundle (requantizer
    tables in block RAM or shift-and-add, a register every adder level for the large ones;
    the DSP requantizer is checked in amaranth.sim and under gaps and stalls); int8, whose
    unrolled engine `--fit` leaves for the arrays (more than nextpnr routes), as
    `--engine unrolled` builds it."""
    from rtl_gen.bundle import read_bundle
    from rtl_gen.data.digits import digits
    from rtl_gen.tasks.common import FoldingOptions, unrolled_choice
    from rtl_gen.training.defaults import WEIGHTS_DIR
    from sim.verify import verify_network

    simulator = few_vector_simulator()
    net = read_bundle(WEIGHTS_DIR / f"digits-{scheme}")
    test = digits()[1]
    plan = unrolled_choice(net, FoldingOptions(engine="unrolled") if scheme == "int8"
                           else FoldingOptions(fit="ecp5-85f"))
    # requantizer tables where the windows are small; PoT4's and int8's are too wide
    assert plan.multiplier == ("adders" if scheme in ("pot4", "int8") else "rom")
    engine = UnrolledNetworkEngine.from_plan(plan)
    result = verify_network(net, test.x_int, engine=engine, simulator=simulator)
    assert result["images"] == len(test.y) == 360
    assert result["latency"] == result["model_latency"] == engine.latency
    assert result["interval"] == 1
    # 360 vectors one a cycle, then the pipeline's depth
    assert result["cycles"] == 360 + engine.latency


@pytest.mark.slow
def test_term_revealing_bundle_bit_exact_in_verilog():
    """digits-tr unrolled at its own setting (the design `--fit ecp5-85f` chooses: the
    revealed weights as constants, inputs truncated to two terms by lookups, the hidden
    codes by the requantizer tables), bit-exact on the whole test split."""
    from rtl_gen.bundle import read_bundle
    from rtl_gen.data.digits import digits
    from rtl_gen.tasks.common import FoldingOptions, unrolled_choice
    from rtl_gen.training.defaults import WEIGHTS_DIR
    from sim.verify import verify_network

    simulator = few_vector_simulator()
    net = read_bundle(WEIGHTS_DIR / "digits-tr")
    test = digits()[1]
    plan = unrolled_choice(net, FoldingOptions(fit="ecp5-85f"))
    assert plan.in_trunc is not None and plan.layers[0].out_terms == 2
    assert plan.multiplier == "rom" and plan.tables == 31 and plan.stage == 1
    engine = UnrolledNetworkEngine.from_plan(plan)
    result = verify_network(net, test.x_int, engine=engine, simulator=simulator)
    assert result["images"] == len(test.y) == 360
    assert result["latency"] == result["model_latency"] == engine.latency
    assert result["cycles"] == 360 + engine.latency


@pytest.mark.slow
def test_gaps_and_stalls_under_verilator():
    from rtl_gen.bundle import read_bundle
    from rtl_gen.data.digits import digits
    from rtl_gen.training.defaults import WEIGHTS_DIR
    from sim.runner import missing_simulator
    from sim.verify import verify_network

    if why := missing_simulator("verilator"):
        pytest.skip(why)
    net = read_bundle(WEIGHTS_DIR / "digits-ternary")
    test = digits()[1]
    engine = UnrolledNetworkEngine(net)
    result = verify_network(net, test.x_int, engine=engine, gap=0.3, stall=0.4, seed=7)
    assert result["images"] == 360
    assert result["latency"] >= engine.latency
    assert result["cycles"] > 360 + engine.latency


def test_verify_refuses_a_mismatched_engine():
    from sim.verify import VerifyError, verify_network

    net, x_int = small_net((13, 7, 5), ("int4", "ternary"))
    other, _ = small_net((12, 7, 5), ("int4", "ternary"))
    engine = UnrolledNetworkEngine(other)
    with pytest.raises(VerifyError, match="the engine takes 12 features to 5 logits, the "
                                          "network 13 to 5"):
        verify_network(net, x_int, engine=engine)
    with pytest.raises(VerifyError, match="takes no arrays"):
        verify_network(other, x_int[:, :12], engine=engine, control=object())
    Fragment.get(engine, None)


@pytest.mark.slow
def test_verilog_check_catches_a_flipped_weight():
    from rtl_gen.bundle import read_bundle
    from rtl_gen.data.digits import digits
    from rtl_gen.training.defaults import WEIGHTS_DIR
    from sim.runner import SimulationFailed
    from sim.verify import verify_network

    simulator = few_vector_simulator()
    net = read_bundle(WEIGHTS_DIR / "digits-ternary")
    last = net.layers[-1]
    codes = last.codes.copy()
    w = last.w_int
    codes[3, 5] = codes[np.argwhere(w != w[3, 5])[0][0], np.argwhere(w != w[3, 5])[0][1]]
    faulty = dataclasses.replace(net, layers=(net.layers[0],
                                              dataclasses.replace(last, codes=codes)))
    test = digits()[1]
    with pytest.raises(SimulationFailed, match=r"logit 3: expected"):
        verify_network(net, test.x_int[:60], engine=UnrolledNetworkEngine(faulty),
                       simulator=simulator)
