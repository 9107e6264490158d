"""The exact float planner: the shapes of least latency within a LUT4 budget (checked against
every combination of the candidates), overrides, refusals, and ``--fit`` on the command
line."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from click.testing import CliRunner

from rtl_gen.bundle import read_float_bundle
from rtl_gen.cli import main
from rtl_gen.design.float_network import FloatLayer, FloatNetwork
from rtl_gen.devices import get_device
from rtl_gen.hw.exact_float import ExactShape, exact_layer_timing, plan_exact_layer
from rtl_gen.hw.exact_planner import (
    ExactFoldingError,
    candidate_shapes,
    layer_area,
    plan_exact_folding,
)
from rtl_gen.numerics.exact import ExactWindow

HALF = 0x3F000000


def small_net(accumulation="exact"):
    rng = np.random.default_rng(3)
    l1 = FloatLayer("a", "ternary", rng.choice([0, 1, 3], (12, 16)).astype(np.uint8),
                    np.full(12, HALF, np.uint32), np.zeros(12, np.uint32), "relu")
    l2 = FloatLayer("b", "binary", rng.integers(0, 2, (6, 12)).astype(np.uint8),
                    np.full(6, HALF, np.uint32), np.zeros(6, np.uint32), "relu")
    l3 = FloatLayer("c", "E4M3", rng.integers(0, 0x70, (3, 6)).astype(np.uint16), None,
                    np.zeros(3, np.uint32), "none")
    window = ExactWindow(-8, 6) if accumulation == "exact" else None
    return FloatNetwork("small", 16, None, [l1, l2, l3], accumulation=accumulation,
                        window=window)


def brute_force(net, budget):
    """Least (latency, LUT4) over every chain of candidate shapes that the engine takes."""
    best = None
    per_layer = [candidate_shapes(ly, in_per_beat=1, last=i == len(net.layers) - 1)
                 for i, ly in enumerate(net.layers)]
    for combo in itertools.product(*per_layer):
        per_beat, lat, area, ok = 1, 0, 0, True
        for layer, shape in zip(net.layers, combo, strict=True):
            try:
                t = plan_exact_layer(layer, shape, net.window, in_per_beat=per_beat).timing
            except ValueError:
                ok = False
                break
            lat += t.batch_cycles
            area += layer_area(layer, shape, net.window)
            per_beat = shape.drain
        if ok and area <= budget and (best is None or (lat, area) < best):
            best = (lat, area)
    return best


def smallest(net) -> int:
    """The estimated LUT4 of one lane, one input and one result a cycle in every layer."""
    return sum(layer_area(ly, ExactShape(1), net.window) for ly in net.layers)


@pytest.mark.parametrize("times", [1.5, 4, 12])
def test_the_plan_is_the_fastest_design_that_fits(times):
    net = small_net()
    budget = int(times * smallest(net))
    plan = plan_exact_folding(net, budget)
    assert plan.lut4 <= budget
    assert plan.lut4 == sum(layer_area(ly, s, net.window)
                            for ly, s in zip(net.layers, plan.shapes, strict=True))
    per_beat, cycles = 1, []
    for layer, shape in zip(net.layers, plan.shapes, strict=True):
        cycles.append(exact_layer_timing(layer, shape, per_beat).batch_cycles)
        per_beat = shape.drain
    assert list(plan.cycles) == cycles
    assert (plan.latency, plan.lut4) == brute_force(net, budget)
    assert plan.shapes[-1].drain == 1
    assert f"| total | | | | | | {plan.latency} | {plan.lut4:,} of {budget:,} |" in plan.table()


def test_more_area_buys_less_latency():
    net = small_net()
    lat = [plan_exact_folding(net, int(t * smallest(net))).latency for t in (1, 2, 4, 16)]
    assert lat == sorted(lat, reverse=True) and lat[0] > lat[-1]


def test_each_knob_costs_area():
    layer = small_net().layers[0]
    w = ExactWindow(-8, 6)
    base = layer_area(layer, ExactShape(4), w)
    for bigger in (ExactShape(8), ExactShape(4, 4), ExactShape(4, 1, 4)):
        assert layer_area(layer, bigger, w) > base
    assert layer_area(layer, ExactShape(4), ExactWindow(-16, 6)) > base


def test_overrides_and_refusals():
    net = small_net()
    plan = plan_exact_folding(net, 20 * smallest(net), {1: ExactShape(2)})
    assert plan.shapes[1] == ExactShape(2)
    assert plan.shapes[0].drain == 1          # the only width a one-input step takes
    with pytest.raises(ExactFoldingError, match="fit 100 LUT4"):
        plan_exact_folding(net, 100)
    with pytest.raises(ExactFoldingError, match="with the layers fixed by hand"):
        plan_exact_folding(net, 20 * smallest(net), {2: ExactShape(3, 1, 3)})  # drains 1
    with pytest.raises(ExactFoldingError, match="exact accumulation contract"):
        plan_exact_folding(small_net("sequential"), 10**6)


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_fit_on_the_command_line(tmp_path):
    assert invoke("mpwn", "--spaces", "ternary", "--finetune", "0", "--accumulation",
                  "exact", "--out", tmp_path / "b").exit_code == 0
    r = invoke("generate", "--bundle", tmp_path / "b", "--fit", "up5k", "-o", tmp_path / "a.v")
    assert r.exit_code == 0, r.output
    net = read_float_bundle(tmp_path / "b")
    plan = plan_exact_folding(net, round(get_device("up5k").luts * 0.9))
    assert plan.table() in r.stdout
    for layer, shape in zip(net.layers, plan.shapes, strict=True):
        assert f"| {layer.name} | ternary | {layer.out_features}x{layer.in_features} | " \
            f"{shape.lanes} | {shape.inputs} | {shape.drain} |" in r.stdout
    r = invoke("generate", "--bundle", tmp_path / "b", "--fit", "up5k", "--layer-array",
               "fc2:cols=5", "-o", tmp_path / "a.v")
    assert r.exit_code == 0 and "| fc2 | ternary | 10x32 | 5 | 1 | 1 |" in r.stdout
    for args, message in [(("--fit", "up5k", "--cols", "4"), "--fit chooses every layer"),
                          (("--fit", "up5k", "--margin", "0.9"), "fit 528 LUT4"),
                          (("--target-fps", "1000"), "--target-fps plans integer networks")]:
        r = invoke("generate", "--bundle", tmp_path / "b", *args, "-o", tmp_path / "x.v")
        assert r.exit_code == 2 and message in r.stderr, (args, r.output)
        assert not (tmp_path / "x.v").exists()
    assert invoke("mpwn", "--spaces", "ternary", "--finetune", "0",
                  "--out", tmp_path / "s").exit_code == 0
    r = invoke("generate", "--bundle", tmp_path / "s", "--fit", "up5k")
    assert r.exit_code == 2 and "on the exact contract" in r.stderr
