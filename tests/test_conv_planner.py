"""The folding planner of networks with convolutions (:mod:`rtl_gen.hw.conv_planner`): its
plans against the cycle model of the chain it builds, the area model and the devices; the
command line's ``--fit`` / ``--target-fps`` on a conv bundle; a planned design bit-exact in
``amaranth.sim``."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from test_conv import mixed_network

from rtl_gen.bundle import read_bundle, write_bundle
from rtl_gen.design.area import estimate_layer
from rtl_gen.design.area_calibration import CONV_COEFFICIENTS
from rtl_gen.design.golden import forward as golden_forward
from rtl_gen.devices import DEVICES, Device
from rtl_gen.hw.conv import ConvNetworkEngine, ConvPlan, PoolPlan, plan_conv_chain
from rtl_gen.hw.conv_planner import WINDOW_UNIT, pe_pipeline, plan_conv_folding
from rtl_gen.hw.layer import LayerPlan
from rtl_gen.hw.planner import PlanError, engine_shape
from rtl_gen.training.defaults import WEIGHTS_DIR

SHIPPED = ("int4", "ternary")
#: The first shipped MNIST CNNs (conv8-pool-conv16-pool-dense10), kept as they were: the
#: networks the synthesis figures here and the window unit's constant were measured on.
CNN_V1 = Path(__file__).resolve().parent / "data" / "cnn-v1"


@pytest.fixture(scope="module")
def cnns():
    return {s: read_bundle(CNN_V1 / f"mnist-cnn-{s}") for s in SHIPPED}


@pytest.fixture(scope="module")
def shipped_cnns():
    return {s: read_bundle(WEIGHTS_DIR / f"mnist-cnn-{s}") for s in SHIPPED}


#: Block RAM shapes (words, bits) per family: iCE40 SB_RAM40_4K, ECP5 DP16KD.
BLOCK_SHAPES = {"ice40": ((256, 16), (512, 8), (1024, 4), (2048, 2)),
                "ecp5": ((512, 36), (1024, 18), (2048, 9), (4096, 4), (8192, 2), (16384, 1))}


def chain_area(net, arrays, family):
    """The area of a chain plan, summed here from its stages: the area model on each weight
    stage's core engine, and per window unit :data:`WINDOW_UNIT`'s logic, a LUT per bit of
    its word beyond the first code, and its line buffer's blocks (``lines * W * C / P``
    words of ``P * bits``, in the family's best block shape, at least one)."""
    logic, bram = 0.0, 0
    for _, _, p in plan_conv_chain(net, arrays, counters=False).stages:
        core = p.core if isinstance(p, ConvPlan) else p
        if isinstance(core, LayerPlan):
            a = estimate_layer(engine_shape(core), family, CONV_COEFFICIENTS[family])
            logic, bram = logic + a.logic, bram + a.bram
        w = getattr(p, "window", None)
        if isinstance(p, (ConvPlan, PoolPlan)) and w is not None:
            per = w.per_cycle
            logic += WINDOW_UNIT[family][0] + (per - 1) * w.bits
            words = w.lines * w.in_shape[1] * w.in_shape[2] // per
            bram += max(1, min(math.ceil(per * w.bits / width) * math.ceil(words / depth)
                               for depth, width in BLOCK_SHAPES[family]))
    return logic, bram


def engine_of(net, arrays=None) -> ConvNetworkEngine:
    """The network engine on ``arrays``, read for its cycle model only (never elaborated)."""
    engine = ConvNetworkEngine.from_plan(plan_conv_chain(net, arrays))
    engine._MustUse__silence = True
    return engine


def default_overrides(net):
    """Overrides that pin every weight layer to its scheme's default array."""
    from rtl_gen.hw.conv import conv_arrays

    return {i: {"cols": a.cols, "lanes": a.lanes} for i, a in enumerate(conv_arrays(net))
            if a is not None}


@pytest.mark.parametrize("which", ["shipped", "v1"])
@pytest.mark.parametrize("scheme", SHIPPED)
@pytest.mark.parametrize("device", ["up5k", "ecp5-85f"])
def test_fit_plans_a_design_within_the_device(cnns, shipped_cnns, which, scheme, device):
    """The shipped MNIST CNNs and the first ones fitted to each device: the chain built on
    the plan's arrays has the plan's interval (the engine's cycle model) and, by the area
    model summed over its stages here, fits the device with the 10% margin; on the UP5K,
    where the default arrays do not fit, with fewer columns and no slower."""
    net = (shipped_cnns if which == "shipped" else cnns)[scheme]
    d = DEVICES[device]
    plan = plan_conv_folding(net, fit=device)
    engine = engine_of(net, plan.arrays)
    assert plan.interval == engine.interval
    assert [s.interval for s in plan.stages] == list(engine.stage_intervals)
    logic, bram = chain_area(net, plan.arrays, d.family)
    assert logic == pytest.approx(plan.area.logic)
    assert bram == plan.area.bram
    assert logic <= 0.9 * d.luts
    assert bram <= 0.9 * (d.bram_bits // {"ice40": 4096, "ecp5": 18432}[d.family])
    assert plan.area.dsp <= 0.9 * d.dsp and plan.area.ff <= 0.9 * d.luts
    default = engine_of(net)
    assert plan.interval <= default.interval
    if device == "up5k":
        cols = [a.cols for a in plan.arrays if a is not None]
        assert sum(cols) < sum(a.cols for a in default.arrays if a is not None)
        assert all(a.rows == 1 for a in plan.arrays if a is not None)


def test_window_units_take_a_block_each_on_the_mnist_cnns(cnns):
    """Four line buffers (conv1 4x28x1 codes of 8 bits, pool1 4x28x8 of 4, conv2 4x14x8 of
    4, pool2 4x14x16 of 4): each under one block of either family, in words of one code;
    conv2 fed eight codes a cycle: 70 words of 32 bits, two iCE40 blocks side by side (16
    bits wide each) or one ECP5 block (36 bits wide)."""
    for family, device in (("ice40", "up5k"), ("ecp5", "ecp5-85f")):
        plan = plan_conv_folding(cnns["int4"], overrides={2: {"window": 1}}, fit=device)
        assert [s.window.bram for s in plan.stages] == [1, 1, 1, 1, 0, 0]
        assert [s.window.logic for s in plan.stages][:4] == [WINDOW_UNIT[family][0]] * 4
        wide = plan_conv_folding(cnns["int4"], overrides={2: {"lanes": 8, "window": 8}},
                                 fit=device)
        assert wide.stages[2].window.bram == {"ice40": 2, "ecp5": 1}[family]
        assert wide.stages[2].window.logic == WINDOW_UNIT[family][0] + 7 * 4


#: The planner's UP5K choice for int4, synthesized.
PLANNED_INT4_UP5K = {0: {"cols": 2, "lanes": 4}, 2: {"cols": 2, "lanes": 8},
                     5: {"cols": 1, "lanes": 1}}


@pytest.mark.parametrize("scheme, device, arrays, logic, bram", [
    ("int4", "up5k", None, 5376, 27), ("int4", "ecp5-85f", None, 5342, 9),
    ("ternary", "up5k", None, 5829, None), ("ternary", "ecp5-85f", None, 5832, 6),
    ("int4", "up5k", PLANNED_INT4_UP5K, 4485, 22)],
    ids=["int4-up5k", "int4-ecp5", "ternary-up5k", "ternary-ecp5", "int4-up5k-planned"])
def test_estimates_against_synthesis(cnns, scheme, device, arrays, logic, bram):
    """The model against the synthesis of the bare networks (:data:`WINDOW_UNIT`'s note), on
    the default arrays and on the planner's UP5K choice for int4: the logic never below the
    synthesis and at most 20% above, within 1% where the window constant is fit (the
    largest residual of the family); block RAM within one block."""
    net = cnns[scheme]
    family = DEVICES[device].family
    plan = plan_conv_folding(net, overrides=arrays or default_overrides(net),
                             fit=Device("big", family, "", "", 10**6, 10**3, 10**9, ""))
    est = plan.area.logic
    assert logic <= est + 1 and est <= 1.2 * logic
    if (scheme, device, arrays) in (("int4", "up5k", PLANNED_INT4_UP5K),
                                    ("int4", "ecp5-85f", None)):
        assert est == pytest.approx(logic, rel=0.01)
    if bram is not None:
        assert abs(plan.area.bram - bram) <= 1


def test_the_up5k_choice_for_int4_is_the_synthesized_one(cnns):
    plan = plan_conv_folding(cnns["int4"], fit="up5k")
    assert {i: {"cols": a.cols, "lanes": a.lanes} for i, a in enumerate(plan.arrays)
            if a is not None} == PLANNED_INT4_UP5K


def test_a_faster_target_gets_a_larger_design(cnns):
    """Targets from 500 to 2,200 images/s at 32 MHz: each met (its interval at most 32e6 /
    target, as the engine's model says), logic never less than for a slower target, and
    the fastest strictly larger than the slowest."""
    net = cnns["int4"]
    plans = [plan_conv_folding(net, target_fps=t, fmax_mhz=32) for t in
             (500, 1000, 1500, 2000, 2200)]
    for t, p in zip((500, 1000, 1500, 2000, 2200), plans, strict=True):
        assert engine_of(net, p.arrays).interval \
            == p.interval <= 32e6 / t
    logic = [p.area.logic for p in plans]
    assert logic == sorted(logic) and logic[-1] > logic[0]


def test_a_target_beyond_the_window_unit_is_one_line(cnns):
    """conv2's window unit fed one code a cycle issues 196 windows of 72 codes: no array
    makes the network faster than that (14,112 cycles, about 2,268 images/s at 32 MHz)."""
    with pytest.raises(PlanError) as e:
        plan_conv_folding(cnns["int4"], target_fps=2300, fmax_mhz=32,
                          overrides={"conv2": {"window": 1}})
    msg = str(e.value)
    assert "\n" not in msg
    assert "layer 2 (conv2): its window unit issues 196 windows of 72 codes, one a cycle" \
        in msg
    fastest = int(msg.split("takes ")[1].split(" ")[0])
    assert 196 * 72 <= fastest <= 32e6 / 2300 * 1.05


def test_wider_window_units_lift_the_window_limit(cnns):
    """With conv2's window unit free to issue up to eight codes a cycle, 2,300 images/s at
    32 MHz is met (conv2 at two or more codes a cycle); beyond the fastest folding, conv1
    names the limit: 784 windows, each at least 10 cycles of its engine of 8 columns (8
    results drained one a cycle, plus a cycle), 7,840 cycles."""
    plan = plan_conv_folding(cnns["int4"], target_fps=2300, fmax_mhz=32)
    assert plan.interval <= 32e6 / 2300
    assert plan.arrays[2].window >= 2
    assert engine_of(cnns["int4"], plan.arrays).interval == plan.interval
    with pytest.raises(PlanError) as e:
        plan_conv_folding(cnns["int4"], target_fps=4500, fmax_mhz=32)
    msg = str(e.value)
    assert "\n" not in msg
    assert "layer 0 (conv1): its engine takes 10 cycles a window (784 windows)" in msg
    fastest = int(msg.split("takes ")[1].split(" ")[0])
    assert 784 * 10 <= fastest <= 784 * 10 * 1.01


@pytest.mark.parametrize("luts, bram, what", [(2000, 30, "logic cells"),
                                              (5280, 12, "block RAMs")])
def test_a_device_too_small_names_the_resource(cnns, luts, bram, what):
    tiny = Device("tiny", "ice40", "", "", luts, 8, bram * 4096, "")
    with pytest.raises(PlanError) as e:
        plan_conv_folding(cnns["int4"], fit=tiny)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("no folding of 'mnist-cnn-int4' fits tiny")
    assert f"{what}: needs about" in msg


def test_a_target_the_device_cannot_hold_names_the_best_rate(cnns):
    """A device that holds the slowest folding but not 2,200 images/s: one line naming the
    resource and the best rate that fits, which the planner then gives for --fit."""
    small = Device("small", "ice40", "", "", 3200, 8, 30 * 4096, "")
    best = plan_conv_folding(cnns["int4"], fit=small)
    with pytest.raises(PlanError) as e:
        plan_conv_folding(cnns["int4"], fit=small, target_fps=2200, fmax_mhz=32)
    msg = str(e.value)
    assert "\n" not in msg and "2,200 images/s does not fit small: logic cells" in msg
    assert f"the best rate that fits is {best.fps:,.0f} images/s ({best.interval} cycles" \
        in msg


def test_overrides(cnns):
    """A layer's array fixed by index or name is kept; pooling has none; rows stay 1."""
    net = cnns["int4"]
    plan = plan_conv_folding(net, fit="up5k", overrides={"conv1": {"cols": 8, "lanes": 1},
                                                         5: {"cols": 2}})
    assert (plan.arrays[0].cols, plan.arrays[0].lanes, plan.arrays[5].cols) == (8, 1, 2)
    for overrides, words in (({1: {"cols": 2}}, "layer 1 \\(pool1\\) is maxpool: it has no array"),
                             ({"fc": {"rows": 2}}, r"runs one image at a time \(rows 1\), not 2"),
                             ({"nope": {"cols": 2}}, "no layer 'nope'"),
                             ({0: {"depth": 2}}, "unknown array setting 'depth'"),
                             ({"fc": {"window": 2}}, "window codes per cycle are a "
                                                     "convolution's setting"),
                             ({0: {"window": 2}}, "no array fits the settings given: .*"
                                                  "2 window codes per cycle must divide the 1 "
                                                  "input channels")):
        with pytest.raises(PlanError, match=words):
            plan_conv_folding(net, overrides=overrides)


def test_wide_pes_get_register_stages(cnns):
    """The planner gives PEs of 4 to 8 lanes one register stage and of 16 lanes two (the
    clock of a wide PE), unless a layer's pipeline is fixed; the stages add to each
    window's cycles, not to the interval."""
    net = cnns["int4"]
    assert [pe_pipeline(n) for n in (1, 2, 4, 8, 16)] == [0, 0, 1, 1, 2]
    for device in ("up5k", "ecp5-85f"):
        plan = plan_conv_folding(net, fit=device)
        for a in plan.arrays:
            assert a is None or a.pipeline == pe_pipeline(a.lanes)
    fixed = plan_conv_folding(net, overrides={0: {"cols": 2, "lanes": 4, "pipeline": 0},
                                              2: {"cols": 2, "lanes": 8}})
    staged = plan_conv_folding(net, overrides={0: {"cols": 2, "lanes": 4},
                                               2: {"cols": 2, "lanes": 8}})
    assert (fixed.arrays[0].pipeline, staged.arrays[0].pipeline) == (0, 1)
    assert staged.stages[0].cycles == fixed.stages[0].cycles + 1
    assert staged.stages[0].interval == fixed.stages[0].interval


def test_without_a_target_the_default_rate_on_less_area(cnns):
    net = cnns["int4"]
    plan = plan_conv_folding(net)
    default = plan_conv_folding(net, overrides=default_overrides(net))
    engine = engine_of(net)
    assert plan.interval <= engine.interval == default.interval
    assert plan.area.logic < default.area.logic


def test_cli_generate_fit_on_a_small_conv_network(tmp_path):
    """`generate --fit up5k` on a small random conv network prints the plan and writes the
    Verilog; the chain's table is the plan's; the unrolled engine, --plan-clock alone, an
    array for a pooling layer and an unreachable target are refused in one line; a network
    whose least folding needs more DSP blocks than the UP5K has names them."""
    from click.testing import CliRunner
    from test_conv_hw_cocotb import small_cnn

    from rtl_gen.cli import main

    net = small_cnn()
    path = write_bundle(net, tmp_path / "small")
    out = tmp_path / "top.v"
    r = CliRunner().invoke(main, ["generate", "--bundle", str(path), "-o", str(out),
                                  "--fit", "up5k"])
    assert r.exit_code == 0, r.output
    assert "module net_small_cnn" in out.read_text()
    plan = plan_conv_folding(net, fit="up5k")
    assert "folding plan:" in r.output and "| 0 conv1 | conv | 9 | 4 | int4 |" in r.output
    assert f"network: {plan.interval} cycles per image" in r.output
    assert f"network: {plan.interval} cycles between batches of 1" in r.output
    for argv, words in ((["--fit", "up5k", "--engine", "unrolled"],
                         "--engine unrolled builds dense networks"),
                        (["--plan-clock", "40"], "--plan-clock applies with --target-fps or "
                                                 "--fit"),
                        (["--fit", "up5k", "--layer-array", "pool1:cols=2"],
                         "layer 1 (pool1) is maxpool: it has no array"),
                        (["--target-fps", "1e9"], "1,000,000,000 images/s needs at most")):
        r = CliRunner().invoke(main, ["generate", "--bundle", str(path), "-o",
                                      str(tmp_path / "x.v"), *argv])
        assert r.exit_code != 0 and words in r.output, r.output
        assert "Traceback" not in r.output
    mixed, _ = mixed_network(np.random.default_rng(7))
    r = CliRunner().invoke(main, ["generate", "--bundle",
                                  str(write_bundle(mixed, tmp_path / "mixed")), "-o",
                                  str(tmp_path / "x.v"), "--fit", "up5k", "--margin", "0.9"])
    assert r.exit_code == 1 and "no folding of 'mixed' fits up5k: " in r.output, r.output
    assert "Traceback" not in r.output
    assert not (tmp_path / "x.v").exists()


def test_planned_design_is_bit_exact_in_amaranth_sim():
    """The planner's arrays for a small network of every kind of layer (narrow arrays of
    one or two columns, several lanes) built and run in ``amaranth.sim``: every logit of
    three images equal to the golden model's."""
    from test_conv_hw import run_stream

    net, _ = mixed_network(np.random.default_rng(11))
    plan = plan_conv_folding(net)
    assert all(a.cols <= 2 for a in plan.arrays if a is not None)
    assert any(a.lanes > 1 for a in plan.arrays if a is not None)
    engine = ConvNetworkEngine.from_plan(plan_conv_chain(net, plan.arrays))
    lo, hi = net.input.range
    x = np.random.default_rng(3).integers(lo, hi + 1, size=(3, net.in_features))
    want = golden_forward(net, x)
    got, _ = run_stream(engine, x.reshape(-1), want.size)
    assert got.tolist() == want.reshape(-1).tolist()
