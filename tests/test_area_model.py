"""The area model's estimates against recorded synthesis results.

The actual numbers come from the benchmark results (``benchmarks/results/network.json``:
the shipped digits bundles at the planner's ``--fit`` choice, synthesized; and
``benchmarks/results/area_model.json``: the calibration networks), never from the code
under test: a change to the model, its features or its coefficients that moves an estimate
away from synthesis fails here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rtl_gen.bundle import read_bundle
from rtl_gen.design.area import FEATURES, estimate_network, features
from rtl_gen.design.area_calibration import COEFFICIENTS
from rtl_gen.hw.layer import ArrayConfig
from rtl_gen.hw.network import plan_chain
from rtl_gen.hw.planner import array_spec, calibration_arrays, engine_shape, unrolled_fit
from rtl_gen.tasks.common import FoldingOptions, fold, unrolled_choice
from rtl_gen.training.defaults import WEIGHTS_DIR

RESULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "results"
NETWORK_ROWS = json.loads((RESULTS / "network.json").read_text())["rows"]
AREA_ROWS = json.loads((RESULTS / "area_model.json").read_text())["rows"]
FAMILY = {"up5k": "ice40", "ecp5-85f": "ecp5"}


def _id(row) -> str:
    return f"{row['device']}-{row.get('name') or row['bundle']}-{row.get('arrays', '')}"


@pytest.mark.parametrize("row", NETWORK_ROWS, ids=[_id(r) for r in NETWORK_ROWS])
def test_fit_estimate_is_within_ten_percent_of_synthesis(row):
    """Every row of the --fit table: the planner still chooses the design that was
    synthesized, the design fitted, and its estimate is within 10% of the logic cells."""
    net = read_bundle(WEIGHTS_DIR / row["name"])
    folding = FoldingOptions(fit=row["device"])
    assert "error" not in row and row["lc"] is not None
    unrolled = unrolled_choice(net, folding)
    if row["engine"] == "unrolled":
        assert unrolled is not None
        assert unrolled.stage == row.get("stage", 2)
        assert unrolled.multiplier == row.get("multiplier", "adders")
        estimate, short = unrolled_fit(unrolled, row["device"], folding.margin)
        assert short is None
    else:
        assert unrolled is None
        plan = fold(net, folding)
        assert [array_spec(a) for a in plan.arrays] == row["arrays"]
        assert plan.in_per_beat == row["in_per_beat"]
        estimate = plan.area.logic
    assert abs(estimate - row["lc"]) <= 0.10 * row["lc"], (estimate, row["lc"])


@pytest.mark.parametrize("row", AREA_ROWS, ids=[_id(r) for r in AREA_ROWS])
def test_calibration_networks_within_fifteen_percent(row):
    """Every calibration network (built without cycle counters, as --fit builds it) within
    15% of synthesis (the --fit choices themselves: 10%, above), DSP blocks exact."""
    if "error" in row["actual"]:
        pytest.skip(row["actual"]["error"])
    net = read_bundle(WEIGHTS_DIR / f"digits-{row['bundle']}")
    arrays = calibration_arrays(net, row["arrays"])
    plan = plan_chain(net, arrays, in_per_beat=row["per_beat"], counters=False)
    shapes = [engine_shape(p) for _, _, p in plan.stages]
    est = estimate_network(shapes, FAMILY[row["device"]])
    actual = row["actual"]["logic"]
    assert abs(est.logic - actual) <= 0.15 * actual, (est.logic, actual)
    if row["bundle"] != "tr":  # (the term-pair layer's requantizer: one fewer than estimated)
        assert est.dsp == row["actual"]["dsp"]


def test_coefficients_follow_the_features():
    for family, c in COEFFICIENTS.items():
        assert len(c["logic"]) == len(c["ff"]) == len(FEATURES), family
        assert all(v >= 0 for v in (*c["logic"], *c["ff"])), family


def test_counters_and_harness_are_not_in_the_estimate():
    """The estimate is of the bare network as --fit builds it: the same with or without
    the layers' cycle counters in the plan (the calibration has none)."""
    net = read_bundle(WEIGHTS_DIR / "digits-binary")
    arrays = [ArrayConfig(1, 16, 4), ArrayConfig(1, 2, 8)]
    a, b = (plan_chain(net, arrays, in_per_beat=2, counters=c) for c in (False, True))
    fa = [features(engine_shape(p), "ice40", COEFFICIENTS["ice40"]) for _, _, p in a.stages]
    fb = [features(engine_shape(p), "ice40", COEFFICIENTS["ice40"]) for _, _, p in b.stages]
    assert fa == fb
