"""The folding planner (:mod:`rtl_gen.hw.planner`): balanced intervals, overrides, targets
that cannot be met, fits within the margin; and (slow) every ``--fit`` choice for the UP5K
and the ECP5 built and run bit for bit, cycle for cycle, through the Verilog."""

from __future__ import annotations

import math

import pytest

from rtl_gen.bundle import read_bundle
from rtl_gen.design.area import Area, EngineShape, estimate_layer, memory_blocks
from rtl_gen.design.timing import network_interval, throttled_layers
from rtl_gen.devices import DEVICES
from rtl_gen.errors import RtlGenError
from rtl_gen.hw.network import NetworkEngine, plan_chain
from rtl_gen.hw.planner import PlanError, plan_folding
from rtl_gen.training.defaults import WEIGHTS_DIR


@pytest.fixture(scope="module")
def binary():
    return read_bundle(WEIGHTS_DIR / "digits-binary")


@pytest.fixture(scope="module")
def int4():
    return read_bundle(WEIGHTS_DIR / "digits-int4")


def test_default_plan_keeps_the_default_rate_on_less_area(int4):
    default = plan_chain(int4)  # a plan only: no engine left unelaborated
    plan = plan_folding(int4)
    assert plan.interval <= network_interval(default.timings, int4.input.features)
    same = {"cols": 8, "lanes": 1, "pipeline": 0, "drain": "select"}
    base = plan_folding(int4, overrides={0: same, 1: same})
    assert base.arrays == default.configs
    assert plan.area.logic < base.area.logic


@pytest.mark.parametrize("name, lanes, stages", [
    ("digits-int4", [16, 2], [3, 1]),   # after the products, + twice / none in the tree
    ("digits-mixed", [16, 8], [3, 2]),  # int2 on 16 lanes, int3 on 8: products + tree
    ("digits-ternary", [16, 8], [3, 2]),  # a select from 4 lanes as a logic product
    ("digits-binary", [4, 2], [2, 0]),   # ... and of 1 or 2 lanes: no stage
    ("mnist-tfc-binary", [8, 8, 8, 2], [2, 2, 2, 0]),
])
def test_the_planner_registers_the_lane_products(name, lanes, stages):
    """int, PoT and APoT PEs, and binary or ternary ones from 4 lanes, get a register after
    their lane products plus the adder tree's (the UP5K clock of the int4 digits network:
    22.8 -> 38-43 MHz; of the binary TFC: 29.1 -> 43.7 MHz); a layer override's pipeline
    wins."""
    net = read_bundle(WEIGHTS_DIR / name)
    plan = plan_folding(net, fit="up5k")
    assert [a.lanes for a in plan.arrays] == lanes
    assert [a.pipeline for a in plan.arrays] == stages
    fixed = plan_folding(net, fit="up5k", overrides={0: {"pipeline": 1}})
    assert fixed.arrays[0].pipeline == 1
    two = plan_folding(net, fit="up5k", overrides={0: {"lanes": 2}, 1: {"lanes": 1}})
    kinds = [layer.scheme.kind for layer in net.layers]
    assert [a.pipeline for a in two.arrays] == [
        0 if k in ("binary", "ternary") else 1 for k in kinds[:2]] + stages[2:]


def test_the_planner_drains_two_results_a_cycle_where_the_rate_needs_it():
    """digits-binary at --fit up5k: one result a cycle holds its 64->32 layer at 34 cycles
    (the output stream); its first layer drains two a cycle and the second takes two codes
    a transfer, 18 cycles.  Behind a host link of one code a cycle the rate needs no wide
    drain, and the planner keeps one-wide ones (the area model's small differences
    within :data:`WIDE_DRAIN_PREMIUM`)."""
    net = read_bundle(WEIGHTS_DIR / "digits-binary")
    plan = plan_folding(net, fit="up5k")
    assert [a.drain_width for a in plan.arrays] == [2, 1] and plan.interval < 34
    assert plan_chain(net, plan.arrays, in_per_beat=plan.in_per_beat).timings[1].in_per_beat == 2
    assert "2 results a cycle" in plan.table()
    narrow = plan_folding(net, fit="up5k", overrides={0: {"drain_width": 1}})
    assert narrow.interval == 34
    # the bottleneck named: 32 results two a cycle, plus the drain's own cycle
    with pytest.raises(PlanError, match=r"takes 18 .*its drain takes 17 cycles per tile of 32"):
        plan_folding(net, target_fps=1e9, fmax_mhz=40)
    for fit in ("up5k", "ecp5-85f"):
        slow = plan_folding(net, fit=fit, max_in_per_beat=1)
        assert [a.drain_width for a in slow.arrays] == [1, 1], fit


def test_the_chain_takes_what_the_layer_before_drains():
    """The cheapest chain, not each layer's cheapest array: a first layer draining two
    results a cycle for less logic loses to the one-wide one when the next layer taking two
    codes a transfer costs more than it saves."""
    from types import SimpleNamespace

    from rtl_gen.hw.planner import _cheapest_chain

    def opt(logic, beat, width, bram=0):
        return ((logic, 1), SimpleNamespace(area=Area(logic=logic, bram=bram),
                                            array=SimpleNamespace(drain_width=width)),
                None, beat)

    first = [opt(10, 1, 1), opt(5, 1, 2)]
    assert [o[0][0] for o in _cheapest_chain([first, [opt(5, 1, 1), opt(20, 2, 1)]])] == \
        [10, 5]
    assert [o[0][0] for o in _cheapest_chain([first, [opt(5, 1, 1), opt(8, 2, 1)]])] == [5, 8]
    assert _cheapest_chain([[opt(5, 1, 2)], [opt(5, 1, 1)]]) is None
    assert [o[0][0] for o in _cheapest_chain([[opt(5, 1, 2, bram=3), opt(9, 1, 1)],
                                              [opt(8, 2, 1), opt(5, 1, 1)]], 2)] == [9, 5]


@pytest.mark.parametrize("name", ["binary", "int4", "int8", "ternary", "tr"])
@pytest.mark.parametrize("fit", ["up5k", "ecp5-85f"])
def test_fit_balances_the_layers(name, fit):
    """Every layer keeps pace with the network's interval, and the interval is the model's of
    the chosen arrays and input port."""
    net = read_bundle(WEIGHTS_DIR / f"digits-{name}")
    plan = plan_folding(net, fit=fit)
    chain = plan_chain(net, plan.arrays, in_per_beat=plan.in_per_beat)
    assert plan.interval == network_interval(chain.timings, net.input.features)
    assert all(f.interval <= plan.interval for f in plan.layers)
    assert math.ceil(plan.rows * net.input.features / plan.in_per_beat) <= plan.interval


@pytest.mark.parametrize("fit", ["up5k", "ecp5-85f", "ecp5-25f"])
@pytest.mark.parametrize("margin", [0.0, 0.1, 0.3])
def test_fit_respects_the_margin(int4, fit, margin):
    dev = DEVICES[fit]
    plan = plan_folding(int4, fit=fit, margin=margin)
    keep = 1 - margin
    assert plan.area.logic <= keep * dev.luts
    assert plan.area.dsp <= keep * dev.dsp
    blocks = dev.bram_bits // (4096 if dev.family == "ice40" else 18432)
    assert plan.area.bram <= keep * blocks


def test_fit_is_the_fastest_that_fits(int4):
    """A plan one step faster than the fit's choice does not fit (or does not exist)."""
    plan = plan_folding(int4, fit="up5k")
    faster = plan.fmax_mhz * 1e6 / (plan.interval - 1)
    with pytest.raises(PlanError):
        plan_folding(int4, fit="up5k", target_fps=faster)


def test_a_larger_margin_is_never_faster(int4):
    intervals = [plan_folding(int4, fit="up5k", margin=m).interval for m in (0.0, 0.2, 0.4)]
    assert intervals == sorted(intervals)


def test_target_is_met_at_the_least_area(int4):
    fmax = 30.0
    slow = plan_folding(int4, target_fps=50_000, fmax_mhz=fmax)
    fast = plan_folding(int4, target_fps=400_000, fmax_mhz=fmax)
    assert slow.fps >= 50_000 and fast.fps >= 400_000
    assert slow.interval <= fmax * 1e6 / 50_000
    assert slow.area.logic < fast.area.logic


def test_overrides_are_respected(binary):
    plan = plan_folding(binary, fit="up5k", overrides={"fc2": {"cols": 2, "lanes": 4},
                                                       0: {"cols": 4}})
    assert (plan.arrays[1].cols, plan.arrays[1].lanes) == (2, 4)
    assert plan.arrays[0].cols == 4
    rows2 = plan_folding(binary, overrides={1: {"rows": 2}})
    assert {a.rows for a in rows2.arrays} == {2}


def test_a_wide_drain_by_hand_feeds_the_next_layer(int4):
    """``drain_width`` on the first layer: its drain selects (not shifts) even on the
    iCE40, the second layer's arrays take 2 codes a transfer, and the plan's interval is the
    chain's (the model of the engine that is built)."""
    plan = plan_folding(int4, fit="up5k", overrides={0: {"cols": 8, "drain_width": 2}})
    first, second = plan.arrays
    assert (first.drain_width, first.drain, second.drain_width) == (2, "select", 1)
    assert second.lanes % 2 == 0
    assert [f.timing.in_per_beat for f in plan.layers][1] == 2
    chain = plan_chain(int4, list(plan.arrays), in_per_beat=plan.in_per_beat)
    assert plan.interval == network_interval(chain.timings, int4.input.features)
    with pytest.raises(PlanError, match="the logits drain one result a cycle"):
        plan_folding(int4, overrides={1: {"drain_width": 2}})


@pytest.mark.parametrize("overrides, words", [
    ({5: {"cols": 2}}, "no layer 5"),
    ({"fc9": {"cols": 2}}, "no layer 'fc9'"),
    ({0: {"colz": 2}}, "unknown array setting 'colz'"),
    ({0: {"rows": 2}, 1: {"rows": 4}}, "same rows"),
    ({0: {"lanes": 3}}, "power of two"),
])
def test_bad_overrides_are_one_line(binary, overrides, words):
    with pytest.raises(PlanError, match=words) as e:
        plan_folding(binary, overrides=overrides)
    assert "\n" not in str(e.value)


def test_infeasible_target_names_the_limit(binary):
    with pytest.raises(RtlGenError, match="fastest folding .* limited by") as e:
        plan_folding(binary, target_fps=10e6, fmax_mhz=30)
    assert "\n" not in str(e.value)


def test_target_the_device_cannot_hold_names_the_resource(int4):
    with pytest.raises(PlanError, match=r"does not fit up5k: logic cells: needs about \d+, "
                                        r"up5k has 5280 .*best rate that fits is") as e:
        plan_folding(int4, target_fps=1.5e6, fit="up5k", fmax_mhz=75)
    assert "\n" not in str(e.value)


def test_bad_arguments(binary):
    for kwargs, words in (({"fit": "xc7"}, "unknown device"), ({"margin": 1.0}, "margin"),
                          ({"target_fps": 0}, "positive"), ({"fmax_mhz": -1}, "positive")):
        with pytest.raises(PlanError, match=words):
            plan_folding(binary, **kwargs)


def test_wide_input_when_the_input_would_be_the_bottleneck(binary):
    plan = plan_folding(binary, fit="ecp5-85f")
    assert plan.in_per_beat > 1
    assert plan.arrays[0].lanes % plan.in_per_beat == 0
    # one code a cycle would have held the network to 64 cycles
    assert plan.interval < binary.input.features


def test_table_lists_every_layer(binary):
    table = plan_folding(binary, fit="up5k").table()
    for word in ("| layer | K | N | scheme | cols x lanes x rows | cycles | interval | est. LC",
                 "0 fc1 | 64 | 32 | binary", "1 fc2 | 32 | 10 | binary", "input port",
                 "images/s at", "on up5k (10% kept free)"):
        assert word in table


def test_the_up5k_fit_puts_weight_roms_in_block_ram_while_it_has_the_blocks(int4):
    """On the UP5K (logic runs out first) the planner puts a weight ROM that Yosys would
    leave in LUTs into block RAM, each layer's choice costed by the area model; with fewer
    blocks left (a larger margin) it keeps the mix that fits; the ECP5 plans leave the ROMs
    to Yosys; the Verilog marks exactly the chosen ROMs."""
    plan = plan_folding(int4, fit="up5k")
    assert [a.rom for a in plan.arrays] == ["block", "block"]
    auto = plan_folding(int4, overrides={i: {"cols": a.cols, "lanes": a.lanes}
                                         for i, a in enumerate(plan.arrays)})
    assert [a.rom for a in auto.arrays] == ["auto", "auto"]
    assert plan.area.logic < auto.area.logic and plan.area.bram > auto.area.bram
    assert "(ROM in BRAM)" in plan.table()
    tight = plan_folding(int4, fit="up5k", margin=0.45)
    blocks = math.floor(0.55 * DEVICES["up5k"].bram_bits / 4096)
    assert tight.area.bram <= blocks < plan.area.bram
    assert "auto" in [a.rom for a in tight.arrays]
    assert {a.rom for a in plan_folding(int4, fit="ecp5-85f").arrays} == {"auto"}
    from rtl_gen.flow.synth import component_verilog
    v = component_verilog(NetworkEngine.from_plan(plan_chain(
        int4, plan.arrays, in_per_beat=plan.in_per_beat, counters=False)), "net")
    assert v.count('rom_style = "block"') == 2


def test_area_model_pieces():
    # block RAM: the fewest blocks of one aspect ratio
    assert memory_blocks(256, 16, "ice40") == 1
    assert memory_blocks(64, 32, "ice40") == 2
    assert memory_blocks(1024, 18, "ecp5") == 1
    s = EngineShape(kind="binary", rows=1, cols=8, lanes=4, k=64, n=32, a_bits=5, w_bits=1,
                    acc_bits=12, out_bits=8, requantize=True, tiles=4, k_steps=16,
                    fifo_depth=20)
    small = estimate_layer(s, "ice40")
    big = estimate_layer(EngineShape(**{**s.__dict__, "cols": 16, "tiles": 2}), "ice40")
    assert 0 < small.logic < big.logic
    assert small.dsp == 2  # 12 x 31 bits in 16 x 16 multipliers
    assert Area(1, 2, 3, 4) + Area(1, 1, 1, 1) == Area(2, 3, 4, 5)


# -- the wide input port ------------------------------------------------------------------------


@pytest.mark.parametrize("per_beat, rows", [(2, 1), (4, 1), (4, 2)])
def test_wide_input_port_in_amaranth_sim(per_beat, rows):
    """``P`` codes a transfer: the logits are the golden model's and each layer's cycles the
    model's."""
    import numpy as np

    from rtl_gen.design import golden
    from rtl_gen.hw.layer import ArrayConfig
    from sim.streams import simulate, stream_get, watch
    from tests.test_network_sim import small_net

    net, calib = small_net((16, 6, 3), ("binary", "int8"))
    x = net.input.quantize(calib[:6])
    engine = NetworkEngine(net, (ArrayConfig(rows=rows, cols=2, lanes=4),
                                 ArrayConfig(rows=rows, cols=3)), per_beat)
    assert engine.in_per_beat == per_beat
    flat = x.reshape(-1).tolist()
    words = [flat[i:i + per_beat] for i in range(0, len(flat), per_beat)]
    order = engine.logit_order()
    logits, seen = [], []

    async def producer(ctx):
        for w in words:
            ctx.set(engine.i.payload, w)
            ctx.set(engine.i.valid, 1)
            await ctx.tick().until(engine.i.ready)
        ctx.set(engine.i.valid, 0)

    async def consumer(ctx):
        look = watch([engine.layer_cycles[i] for i in range(2)], seen)
        got = await stream_get(ctx, engine.o, len(x) // rows * len(order), each_cycle=look,
                               tail=4)
        logits.extend(v for _, v in got)

    simulate(engine, producer, consumer)
    got = np.zeros((len(x), 3), np.int64)
    for b, chunk in enumerate(np.array(logits).reshape(-1, len(order))):
        for (r, ch), v in zip(order, chunk, strict=True):
            got[b * rows + r, ch] = v
    assert np.array_equal(got, golden.forward(net, x))
    for i, t in enumerate(engine.timings):
        assert [v for layer, v in seen if layer == i] == [t.batch_cycles]
    assert engine.timings[0].load_cycles == rows * 16 // per_beat


def test_a_faster_layer_before_a_slower_one():
    """A fit may leave a layer faster than the next (its interval is the network's floor):
    the faster one then waits for credit at the end of a tile whose last step is its last
    cycle, and must not issue that step again while it waits."""
    import numpy as np

    from rtl_gen.design import golden
    from rtl_gen.hw.layer import ArrayConfig
    from tests.test_network_sim import run_network, small_net

    net, calib = small_net((16, 24, 3), ("int4", "int4"))
    x = net.input.quantize(np.abs(calib[:12]))
    engine = NetworkEngine(net, (ArrayConfig(cols=2, lanes=4), ArrayConfig(cols=1)))
    fast, slow = engine.timings
    assert fast.period == fast.issue_cycles and fast.interval < slow.interval
    got, classes, _ = run_network(engine, x)
    assert np.array_equal(got, golden.forward(net, x))
    assert np.array_equal(classes, golden.predict(net, x))


def test_wide_input_port_refuses_what_the_bank_cannot_take():
    from rtl_gen.hw.layer import ArrayConfig

    net = read_bundle(WEIGHTS_DIR / "digits-int4")
    with pytest.raises(ValueError, match="2 input codes per cycle need .*lanes \\(1\\)"):
        NetworkEngine(net, (ArrayConfig(cols=8, lanes=1), ArrayConfig()), 2)
    with pytest.raises(ValueError, match="power of two"):
        NetworkEngine(net, (ArrayConfig(cols=8, lanes=4), ArrayConfig()), 3)


# -- the plans in the Verilog -----------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name, fit", [
    *((name, "up5k") for name in ("binary", "ternary", "pot4", "apot4", "int4", "int8",
                                  "mixed", "tr")),
    ("binary", "ecp5-85f"), ("int4", "ecp5-85f"), ("int8", "ecp5-85f"), ("tr", "ecp5-85f")])
def test_fit_plans_are_bit_exact_and_cycle_exact(name, fit):
    """Every shipped digits bundle's ``--fit up5k`` arrays (the 32-column layers' drain
    selects through a registered stage) and the ECP5 arrays plans, on the whole test split."""
    from rtl_gen.data.digits import digits
    from sim.runner import missing_simulator
    from sim.verify import verify_network

    why = missing_simulator("verilator")
    if why:
        pytest.skip(why)
    net = read_bundle(WEIGHTS_DIR / f"digits-{name}")
    plan = plan_folding(net, fit=fit)
    x = digits()[1].x_int
    result = verify_network(net, x, arrays=plan.arrays, in_per_beat=plan.in_per_beat)
    assert result["images"] == len(x) == 360
    model = [t.batch_cycles for t in plan.timings]
    assert result["model_layer_cycles"] == model
    held = set(throttled_layers(plan.timings))
    assert result["unchecked_layers"] == sorted(held)
    for i, (got, want) in enumerate(zip(result["layer_cycles"], model, strict=True)):
        # a layer held back by a slower later one may wait for credit within its batches
        # (never less than the model; its FIFO may cover the wait)
        assert got >= want if i in held else got == want, (i, got, want)
    assert result["interval"] == plan.interval
    # back to back, a batch every interval: the run is the batches after the first, plus
    # one batch's way through the chain
    batches = -(-len(x) // plan.rows)
    steady = (batches - 1) * plan.interval
    # one batch's way through: loading it, every layer, the last layer's logits, and a few
    # cycles of hand-over between the stages (a one-cycle drift per batch would be hundreds)
    last = plan.timings[-1]
    fill = (plan.layers[0].timing.load_cycles + sum(t.batch_cycles for t in plan.timings)
            + plan.rows * last.n + 16)
    assert steady <= result["cycles"] <= steady + fill, (result["cycles"], steady, fill)


# -- the command line -------------------------------------------------------------------------


def test_parse_layer_arrays():
    from rtl_gen.tasks.common import OptionError, parse_layer_arrays

    assert parse_layer_arrays(["1:cols=4,lanes=2", "fc1:multiplier=dsp", "1:rows=2",
                               "0:drain_width=2"]) == \
        {1: {"cols": 4, "lanes": 2, "rows": 2}, "fc1": {"multiplier": "dsp"},
         0: {"drain_width": 2}}
    for bad in ("1", "1:", "1:cols", "1:cols=x", "1:width=3", ":cols=2", "0:drain_width=x"):
        with pytest.raises(OptionError) as e:
            parse_layer_arrays([bad])
        assert e.value.option == "--layer-array"


def test_generate_with_a_fit_writes_the_plan(tmp_path):
    from rtl_gen.tasks.common import FoldingOptions
    from rtl_gen.tasks.generate import generate_network

    out = tmp_path / "net.v"
    result = generate_network(WEIGHTS_DIR / "digits-binary", out,
                              folding=FoldingOptions(fit="ecp5-85f",
                                                     layer_arrays=("fc2:cols=2",)))
    plan = plan_folding(read_bundle(WEIGHTS_DIR / "digits-binary"), fit="ecp5-85f",
                        overrides={1: {"cols": 2}})
    assert result.engine.arrays == plan.arrays
    assert result.engine.in_per_beat == plan.in_per_beat > 1
    assert "folding plan:" in result.table and "cols x lanes x rows" in result.table
    width = plan.in_per_beat * 5  # the digits input codes are 5 bits
    assert f"input [{width - 1}:0] i__payload;" in out.read_text()


def test_layer_array_sets_a_term_revealing_layers_pes(tmp_path):
    """--layer-array tr_read= and tr_terms= reach the TR engine: memory-read PEs (block RAM
    copies of the banks) on one layer, two terms a cycle on the other, in the plan and the
    Verilog; a bad value is one line."""
    from click.testing import CliRunner

    from rtl_gen.cli import main

    out = tmp_path / "tr.v"
    r = CliRunner().invoke(main, ["generate", "--bundle", str(WEIGHTS_DIR / "digits-tr"),
                                  "-o", str(out), "--layer-array", "0:cols=4,tr_read=memory",
                                  "--layer-array", "fc2:cols=2,tr_terms=2"])
    assert r.exit_code == 0, r.output
    assert "4 x 1 x 1 (PEs read BRAM copies)" in r.output
    verilog = out.read_text()
    assert all(f"xbuf0_{j}" in verilog for j in range(4))   # a copy per PE of layer 0
    net = read_bundle(WEIGHTS_DIR / "digits-tr")
    plan = plan_folding(net, overrides={0: {"cols": 4, "tr_read": "memory"},
                                        1: {"cols": 2, "tr_terms": 2}})
    assert [(a.tr_read, a.tr_terms) for a in plan.arrays] == [("memory", 1), ("select", 2)]
    bad = CliRunner().invoke(main, ["generate", "--bundle", str(WEIGHTS_DIR / "digits-tr"),
                                    "-o", str(tmp_path / "x.v"),
                                    "--layer-array", "0:tr_read=mux"])
    assert bad.exit_code == 1 and "select, memory, not 'mux'" in bad.output
    assert "Traceback" not in bad.output and not (tmp_path / "x.v").exists()


def test_fit_up5k_mixes_selecting_and_memory_reading_tr_pes():
    """On the UP5K the planner weighs each TR array both ways: digits-tr's first layer gets
    8 selecting columns (its memory read would not leave the block RAMs for the second
    layer), the second reads memory; the plan's block RAMs fit with the margin."""
    plan = plan_folding(read_bundle(WEIGHTS_DIR / "digits-tr"), fit="up5k")
    assert [(a.cols, a.tr_read) for a in plan.arrays] == [(8, "select"), (1, "memory")]
    assert plan.area.bram <= 27
    # without the memory read on the table (selecting PEs fixed) the same device holds
    # fewer columns or fewer cycles' worth of them
    fixed = plan_folding(read_bundle(WEIGHTS_DIR / "digits-tr"), fit="up5k",
                         overrides={0: {"tr_read": "select"}, 1: {"tr_read": "select"}})
    assert fixed.interval > plan.interval


def test_the_plan_gives_the_run_time_range_of_term_revealing_cycles():
    """A TR plan is made at the bundle's own k; its table also says the cycles at the run
    time's extremes, each equal to the chain built from the bundle with that k (1, and every
    term: conventional mode reads all T terms of a group), on the same arrays."""
    import dataclasses

    from rtl_gen.hw.tr import tr_max_terms

    net = read_bundle(WEIGHTS_DIR / "digits-tr")
    plan = plan_folding(net, fit="up5k")

    def with_k(k_of):
        layers = [ly if ly.tr is None else
                  dataclasses.replace(ly, tr=dataclasses.replace(ly.tr, budget=k_of(ly)))
                  for ly in net.layers]
        chain = plan_chain(dataclasses.replace(net, layers=tuple(layers)), list(plan.arrays),
                           in_per_beat=plan.in_per_beat)
        return network_interval(chain.timings, net.input.features)

    fewest, most = plan.run_time_range()
    assert fewest == with_k(lambda ly: 1)
    assert most == with_k(tr_max_terms)
    assert fewest < plan.interval < most
    assert (f"at run time {fewest} cycles (k = 1) to {most} (conventional mode"
            in plan.table())
    assert plan_folding(read_bundle(WEIGHTS_DIR / "digits-int4"), fit="up5k") \
        .run_time_range() is None


def test_the_term_rom_address_follows_the_family():
    """The planner gives TR layers the registered ROM address on the ECP5 and the sum on
    the iCE40 (each the faster there), unless fixed by hand."""
    net = read_bundle(WEIGHTS_DIR / "digits-tr")
    assert {a.tr_rom_addr for a in plan_folding(net, fit="ecp5-85f").arrays} == {"register"}
    assert {a.tr_rom_addr for a in plan_folding(net, fit="up5k").arrays} == {"sum"}
    fixed = plan_folding(net, fit="ecp5-85f", overrides={0: {"tr_rom_addr": "sum"}})
    assert [a.tr_rom_addr for a in fixed.arrays] == ["sum", "register"]


def test_a_term_revealing_first_layer_takes_a_wide_input():
    """The input port of one code a cycle bounds digits-tr on the LFE5U-85F (64 cycles):
    the planner widens it (a data-term unit a code) and the layers keep pace with it."""
    net = read_bundle(WEIGHTS_DIR / "digits-tr")
    plan = plan_folding(net, fit="ecp5-85f")
    assert plan.in_per_beat > 1 and plan.interval < 64
    assert plan.interval == network_interval(
        plan_chain(net, list(plan.arrays), in_per_beat=plan.in_per_beat).timings, 64)
    # memory-reading PEs take one code a transfer: the port stays narrow
    one = plan_folding(net, fit="ecp5-85f", overrides={0: {"tr_read": "memory"}})
    assert one.in_per_beat == 1


def test_build_keeps_one_code_a_cycle():
    from rtl_gen.tasks.common import FoldingOptions, network_arrays

    net = read_bundle(WEIGHTS_DIR / "digits-binary")
    arrays, per_beat = network_arrays(net, folding=FoldingOptions(fit="ecp5-85f"),
                                      max_in_per_beat=1)
    assert per_beat == 1
    assert plan_folding(net, fit="ecp5-85f", max_in_per_beat=1).arrays == tuple(arrays)


@pytest.mark.parametrize("args, code, words", [
    (["--target-fps", "1e8"], 1, "fastest folding"),
    (["--layer-array", "0:cols"], 2, "--layer-array"),
    (["--layer-array", "7:cols=2"], 1, "no layer 7"),
    (["--fit", "up5k", "--target-fps", "2e6", "--plan-clock", "100"], 1, "does not fit up5k"),
])
def test_cli_refusals_are_one_line(tmp_path, args, code, words):
    from click.testing import CliRunner

    from rtl_gen.cli import main

    r = CliRunner().invoke(main, ["generate", "--bundle", str(WEIGHTS_DIR / "digits-int4"),
                                  "-o", str(tmp_path / "x.v"), *args])
    assert r.exit_code == code, r.output
    assert words in r.output
    assert "Traceback" not in r.output
    assert not (tmp_path / "x.v").exists()


def test_throttled_layers(int4):
    from rtl_gen.hw.layer import ArrayConfig

    assert throttled_layers(plan_chain(int4).timings) == ()  # 257 then 161 cycles
    fast_first = plan_chain(int4, (ArrayConfig(cols=2, lanes=16), ArrayConfig(cols=1, lanes=4)))
    assert [t.interval for t in fast_first.timings] == [65, 81]
    assert throttled_layers(fast_first.timings) == (0,)
