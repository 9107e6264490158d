"""The sweep's estimator: fits recover known coefficients, estimates come from the plan
alone (or the shipped area model, before any sweep), a pruned sweep builds the designs with
a chance of reaching a Pareto front and stops."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from rtl_gen.design.area import FEATURES
from rtl_gen.errors import RtlGenError
from rtl_gen.tasks import explore as ex
from rtl_gen.tasks.estimator import Estimator, fit

ROOT = Path(__file__).resolve().parents[1]


def _row(device, area, acc, lane, lc, ff, fmax, engine="arrays"):
    return {"point": {"device": device}, "status": "ok", "LC": lc, "FF": ff,
            "Fmax MHz": fmax, "features": {"engine": engine, "area": area, "acc": acc,
                                           "lane": lane}}


def test_fit_recovers_known_coefficients():
    # LC = 100 + 3 f1 + 0.5 f2, FF = 40 + f1; log Fmax = 5 - 0.2 log(LC) - 0.01 acc.
    rows = []
    for f1, f2, acc in ((10, 100, 12), (50, 20, 16), (5, 300, 20), (80, 80, 14),
                        (20, 500, 18), (64, 16, 22)):
        lc = 100 + 3 * f1 + 0.5 * f2
        fmax = math.exp(5 - 0.2 * math.log(lc) - 0.01 * acc)
        rows.append(_row("up5k", [1.0, f1, f2], acc, 9, lc, 40 + f1, fmax))
    rows.append({"point": {"device": "up5k"}, "status": "does not fit"})
    est = fit(rows)
    for r in rows[:-1]:
        got = est.estimate("up5k", r["features"])
        assert got["LC"] == pytest.approx(r["LC"], rel=1e-6)
        assert got["FF"] == pytest.approx(r["FF"], rel=1e-6)
        assert got["Fmax MHz"] == pytest.approx(r["Fmax MHz"], rel=1e-6)
    again = Estimator.from_json(json.loads(json.dumps(est.to_json())))
    assert again.estimate("up5k", rows[0]["features"]) == est.estimate("up5k",
                                                                        rows[0]["features"])
    with pytest.raises(RtlGenError, match="no calibration for arrays designs on ecp5-85f"):
        est.estimate("ecp5-85f", rows[0]["features"])
    with pytest.raises(RtlGenError, match="no sweep rows"):
        fit(rows[-1:])


def test_estimate_comes_from_the_plan_and_the_cycle_model():
    point = ex.Point(str(ROOT / "weights" / "digits-binary"), "up5k", cols=8)
    net, plan = ex.plan_point(point)
    features = ex._features(plan, "up5k")
    assert features["engine"] == "arrays" and len(features["area"]) == len(FEATURES)
    assert features["area"][0] == len(net.layers)  # the fixed part, once per layer
    assert features["acc"] == max(ly.acc_bits for ly in net.layers)
    # A calibration of 1,000 LC per layer at 50 MHz.
    flat = Estimator({("up5k", "arrays"): {"lc": [1000.0] + [0.0] * (len(FEATURES) - 1),
                                           "ff": [500.0] + [0.0] * (len(FEATURES) - 1),
                                           "fmax": [math.log(50.0), 0.0, 0.0, 0.0]}})
    got = ex.estimate_point(point, flat)
    # 64-32-10 on 8 columns of one lane: 4 tiles of 64 steps, the slowest layer 65 cycles.
    assert got["cycles per inference"] == 65
    assert got["LC"] == pytest.approx(2000.0)
    assert got["inferences/s"] == pytest.approx(50e6 / 65)
    bad = ex.estimate_point(ex.Point(point.bundle, "up5k", engine="unrolled", fit=True),
                            flat)
    assert bad["status"] == "invalid" and "does not fit" in bad["note"]


# --- the pruned sweep, built in rounds ------------------------------------------------------

#: 100 LC per PE, 40 MHz whatever the design.
LINEAR = Estimator({("up5k", "arrays"): {"lc": [0.0, 100.0] + [0.0] * (len(FEATURES) - 2),
                                         "ff": [0.0] * len(FEATURES),
                                         "fmax": [math.log(40.0), 0.0, 0.0, 0.0]}})


def _binary_sweep(cols=(1, 2, 4, 8), seeds=(1, 2)):
    bundle = str(ROOT / "weights" / "digits-binary")
    return ex.Sweep(tuple(ex.Point(bundle, "up5k", seed=s, cols=c)
                          for c in cols for s in seeds))


def _as_built(point, scale=1.0):
    """A sweep row of ``point`` built exactly as :data:`LINEAR` estimates it (LC times
    ``scale``)."""
    import dataclasses

    f = ex._design_facts(point)
    lc = LINEAR.estimate(point.device, f["features"])["LC"] * scale
    return {"point": dataclasses.asdict(point), "status": "ok", "features": f["features"],
            "accuracy": f["accuracy"], "dataset": None, "LC": lc, "FF": 0.0,
            "Fmax MHz": 40.0, "cycles per inference": f["cycles"],
            "inferences/s": 40e6 / f["cycles"]}


def test_front_chances_use_built_designs_exactly_and_estimate_the_rest():
    sweep = _binary_sweep(seeds=(1,))
    points = {ex._design_key(p): p for p in sweep.points}
    facts = {k: ex._design_facts(p) for k, p in points.items()}
    # Nothing built, no calibration error known: the smallest design (area front) and the
    # fastest (throughput front) are on a front in nearly every draw.
    chances = {points[k].cols: c for k, c in ex.front_chances(facts, {}, LINEAR).items()}
    assert chances[1] > 0.9 and chances[8] > 0.9
    # Those two built as estimated, and a calibration the estimator matches exactly: the
    # middle designs (twice the smallest's LC, several times the fastest's cycles) have no
    # chance; built designs get none (they are not asked about).
    built = {k: ex.designs([_as_built(p)])[0] for k, p in points.items() if p.cols in (1, 8)}
    calibration = [_as_built(p) for p in sweep.points]
    chances = ex.front_chances(facts, built, LINEAR, calibration)
    assert {points[k].cols for k in chances} == {2, 4}
    assert all(c < 0.01 for c in chances.values())
    # The smallest design built at three times its estimate: its other foldings are taken to
    # be three times theirs too (what the calibration misses of a network holds for all its
    # foldings), so cols=2 (estimated 200 LC, so 600) is not taken to undercut its 300 LC.
    big = {k: ex.designs([_as_built(p, scale=3)])[0] for k, p in points.items()
           if p.cols == 1}
    chances = {points[k].cols: c for k, c in ex.front_chances(facts, big, LINEAR).items()}
    assert chances[2] < 0.05   # (0.97 if it were taken at its estimate)


def test_pruned_sweep_builds_the_likely_front_first_then_stops(monkeypatch):
    import concurrent.futures
    import dataclasses

    import rtl_gen.tasks.estimator as estimator

    monkeypatch.setattr(estimator, "fit", lambda rows, devices=(): LINEAR)
    cnn = ex.Point(str(ROOT / "weights" / "mnist-cnn-ternary"), "up5k", seed=1, cols=2)
    sweep = ex.Sweep(_binary_sweep().points + (cnn,))
    calls = []

    def evaluator(point, cache=None):
        calls.append(point)
        if point == cnn:   # outside the estimator's features: built, not judged
            return {"point": dataclasses.asdict(point), "status": "invalid"}
        return _as_built(point)

    calibration = [_as_built(p) for p in sweep.points if p != cnn]
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        got = ex.run_pruned(sweep, calibration, executor=pool, workers=2,
                            evaluator=evaluator)
    assert calls[0] == cnn
    # the smallest and the fastest, each with both seeds, and nothing else
    assert sorted((p.cols, p.seed) for p in calls[1:]) == [(1, 1), (1, 2), (8, 1), (8, 2)]
    assert len(got.rows) == 5
    # a chance threshold of 0 builds every design
    calls.clear()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        ex.run_pruned(sweep, calibration, chance=0.0, executor=pool, workers=2,
                      evaluator=evaluator)
    assert len(calls) == len(sweep.points)


def test_fit_without_a_sweep_starts_from_the_area_model():
    from rtl_gen.design.area import estimate_network
    from rtl_gen.design.area_calibration import FMAX_MHZ
    from rtl_gen.hw.planner import engine_shape

    point = ex.Point(str(ROOT / "weights" / "digits-int4"), "up5k", cols=4)
    net, plan = ex.plan_point(point)
    features = ex._features(plan, "up5k")
    model = estimate_network([engine_shape(p) for _, _, p in plan.stages], "ice40")
    est = fit([], devices=["up5k"])
    got = est.estimate("up5k", features)
    assert got["LC"] == pytest.approx(model.logic, rel=1e-6)
    assert got["Fmax MHz"] == pytest.approx(FMAX_MHZ["ice40"])
    # two designs built at twice the model's LC and 50 MHz: the model scaled to them
    rows = [_row("up5k", features["area"], features["acc"], features["lane"],
                 2 * model.logic, 2 * model.ff, 50.0)] * 2
    got = fit(rows, devices=["up5k"]).estimate("up5k", features)
    assert got["LC"] == pytest.approx(2 * model.logic, rel=1e-6)
    assert got["Fmax MHz"] == pytest.approx(50.0)
    with pytest.raises(RtlGenError, match="no sweep rows"):
        fit([])


def test_pruned_sweep_on_the_measured_digits_sweep():
    """Replayed on the 252-point digits sweep's measured rows (benchmarks/explore.py;
    every design the pruned sweep builds answered from them): with no earlier sweep, the
    pruned sweep builds at most 30% of the designs and finds at least 90% of the Pareto
    designs of the full sweep."""
    import concurrent.futures
    import dataclasses

    rows = json.loads((ROOT / "benchmarks" / "results" / "explore-sweep.json")
                      .read_text())["rows"]
    by_point = {json.dumps(r["point"], sort_keys=True): r for r in rows}

    def built(point, cache=None):
        return by_point[json.dumps(dataclasses.asdict(point), sort_keys=True)]

    sweep = ex.Sweep(tuple(ex.Point(**r["point"]) for r in rows))
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        got = ex.run_pruned(sweep, [], executor=pool, workers=2, evaluator=built,
                            facts=ex.row_facts(rows))
    def key(r):
        return ex._design_key(ex.Point(**r["point"]))

    kept = {key(r) for r in got.rows}
    designs = {key(r) for r in rows}
    front = {key(r) for named in ex.fronts(rows).values() for f in named.values() for r in f}
    assert len(designs) == 84 and len(front) >= 10
    assert len(kept) <= 0.30 * len(designs)
    assert len(front & kept) >= 0.90 * len(front)
