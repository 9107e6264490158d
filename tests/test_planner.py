"""The folding planner (:mod:`rtl_gen.hw.planner`): balanced intervals, overrides, targets
that cannot be met, fits within the margin; and (slow) every ``--fit`` choice for the UP5K
and the ECP5 built and run bit for bit, cycle for cycle, through the Verilog."""

from __future__ import annotations

import math

import pytest

from rtl_gen.bundle import read_bundle
from rtl_gen.design.area import Area, EngineShape, estimate_layer, memory_blocks
from rtl_gen.design.timing import network_interval
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
    default = NetworkEngine(int4)
    plan = plan_folding(int4)
    assert plan.interval <= default.interval
    base = plan_folding(int4, overrides={0: {"cols": 8, "lanes": 1}, 1: {"cols": 8, "lanes": 1}})
    assert base.arrays == default.arrays
    assert plan.area.logic < base.area.logic


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


# -- the plans in the Verilog -----------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", ["binary", "int4"])
@pytest.mark.parametrize("fit", ["up5k", "ecp5-85f"])
def test_fit_plans_are_bit_exact_and_cycle_exact(name, fit):
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
    assert result["layer_cycles"] == result["model_layer_cycles"] == \
        [t.batch_cycles for t in plan.timings]
    assert result["interval"] == plan.interval
    # back to back, a batch every interval: the run is the batches after the first, plus
    # one batch's way through the chain
    batches = -(-len(x) // plan.rows)
    steady = (batches - 1) * plan.interval
    fill = plan.layers[0].timing.load_cycles + sum(t.batch_cycles for t in plan.timings)
    assert steady <= result["cycles"] <= steady + fill, (result["cycles"], steady, fill)
