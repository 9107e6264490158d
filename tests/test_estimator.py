"""The sweep's estimator: fits recover known coefficients, estimates come from the plan
alone, a sweep is pruned to the points the estimate cannot rule out."""

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


def test_prune_keeps_what_the_estimate_cannot_rule_out():
    bundle = str(ROOT / "weights" / "digits-binary")
    sweep = ex.Sweep(tuple(ex.Point(bundle, "up5k", seed=s, cols=c)
                           for c in (1, 2, 4, 8) for s in (1, 2)))
    # LC grows with the PEs, Fmax the same, one accuracy: the fastest design is alone on
    # the throughput front and the smallest alone on the area front; the middle ones are
    # dominated on both.  Each design's seeds are kept together.
    est = Estimator({("up5k", "arrays"): {"lc": [0.0, 100.0] + [0.0] * (len(FEATURES) - 2),
                                          "ff": [0.0] * len(FEATURES),
                                          "fmax": [math.log(40.0), 0.0, 0.0, 0.0]}})
    kept = ex.prune(sweep, est, slack=0.0).points
    assert [(p.cols, p.seed) for p in kept] == [(1, 1), (1, 2), (8, 1), (8, 2)]
    # With a slack as wide as the estimates' spread, any of them could be on a front.
    assert ex.prune(sweep, est, slack=0.9).points == sweep.points
    # Equal estimates: neither strictly dominates the other, both stay.
    flat = Estimator({("up5k", "arrays"): {"lc": [500.0] + [0.0] * (len(FEATURES) - 1),
                                           "ff": [0.0] * len(FEATURES),
                                           "fmax": [math.log(40.0), 0.0, 0.0, 0.0]}})
    two = ex.Sweep(tuple(ex.Point(bundle, "up5k", seed=1, cols=8, multiplier=m)
                         for m in ("lut", "dsp")))
    assert ex.prune(two, flat, slack=0.0).points == two.points
    # 6,000 LC estimated (3,000 on the first feature, 2 here): less a slack of 0.1 still
    # larger than the UP5K, so none can fit; less 0.2 (4,800 LC) each could.
    huge = Estimator({("up5k", "arrays"): {"lc": [3000.0] + [0.0] * (len(FEATURES) - 1),
                                           "ff": [0.0] * len(FEATURES),
                                           "fmax": [math.log(40.0), 0.0, 0.0, 0.0]}})
    assert ex.prune(sweep, huge, slack=0.1).points == ()
    assert ex.prune(sweep, huge, slack=0.2).points == sweep.points  # 4,800 LC could fit
    # What the estimator cannot rule out is kept: a CNN (outside its features), a device it
    # has no calibration for; an invalid point (a CNN on the unrolled engine) is not.
    cnn = str(ROOT / "weights" / "mnist-cnn-ternary")
    more = ex.Sweep(sweep.points + (ex.Point(cnn, "up5k", seed=1, cols=2),
                                    ex.Point(cnn, "up5k", seed=1, engine="unrolled"),
                                    ex.Point(bundle, "ecp5-85f", seed=1, cols=2)))
    kept = ex.prune(more, est, slack=0.0).points
    assert [(p.bundle, p.device, p.cols, p.seed) for p in kept] == [
        (bundle, "up5k", 1, 1), (bundle, "up5k", 1, 2), (bundle, "up5k", 8, 1),
        (bundle, "up5k", 8, 2), (cnn, "up5k", 2, 1), (bundle, "ecp5-85f", 2, 1)]
