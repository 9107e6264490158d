"""The design-space sweep: specifications, the Pareto front, the caches (a second run runs
no tool, a killed sweep resumes), the executors (process pool, dask LocalCluster) and the
command's clean errors."""

from __future__ import annotations

import concurrent.futures
import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from rtl_gen.cli import main
from rtl_gen.tasks import explore as ex

ROOT = Path(__file__).resolve().parents[1]
BINARY = str(ROOT / "weights" / "digits-binary")


def _spec(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spec.toml"
    path.write_text(text)
    return path


# --- specifications ---------------------------------------------------------------------------

def test_points_are_the_product_of_the_ranges(tmp_path):
    spec = _spec(tmp_path, f'''
bundles = ["{BINARY}"]
devices = ["up5k", "ecp5-85f"]
seeds = [1, 2, 3]
[[designs]]
cols = [2, 4]
lanes = [8, 16]
[[designs]]
fit = true
''')
    sweep = ex.load_spec(spec)
    assert len(sweep.points) == 2 * (2 * 2 + 1) * 3
    assert ex.Point(BINARY, "ecp5-85f", 3, cols=4, lanes=16) in sweep.points
    assert ex.Point(BINARY, "up5k", 2, fit=True) in sweep.points
    fitted = ex.Point(BINARY, "up5k", 2, fit=True)
    assert fitted.command == f"rtl-gen build --bundle {BINARY} --board icebreaker --fit up5k"
    assert ex.Point(BINARY, "ecp5-85f", engine="unrolled").command.startswith("rtl-gen synth")


def test_relative_bundles_are_relative_to_the_spec(tmp_path):
    (tmp_path / "w").symlink_to(ROOT / "weights")
    sweep = ex.load_spec(_spec(tmp_path, 'bundles = ["w/digits-int4"]\ndevices = "up5k"\n'))
    assert sweep.points == (ex.Point(str(tmp_path / "w" / "digits-int4"), "up5k"),)
    # written as the user would read it (the point's build command names it)
    (tmp_path / "s").mkdir()
    spec = tmp_path / "s" / "spec.toml"
    spec.write_text('bundles = ["../w/digits-int4"]\ndevices = "up5k"\n')
    (point,) = ex.load_spec(spec).points
    assert point.bundle == str(tmp_path / "w" / "digits-int4")
    assert f"--bundle {tmp_path / 'w' / 'digits-int4'} " in point.command


@pytest.mark.parametrize("text,message", [
    ('bundles = []\ndevices = ["up5k"]', "bundles: empty range"),
    ('bundles = ["{b}"]\ndevices = ["virtex7"]', "unknown device 'virtex7'"),
    ('bundles = ["{b}"]\ndevices = ["up5k"]\nseeds = [0]', "seeds: 0 is not a positive"),
    ('bundles = ["{b}"]\ndevices = ["up5k"]\n[[designs]]\ncols = []', "designs[0].cols: empty"),
    ('bundles = ["{b}"]\ndevices = ["up5k"]\n[[designs]]\nscheme = "int4"',
     "unknown option 'scheme'"),
    ('bundles = ["{b}"]\ndevices = ["up5k"]\n[[designs]]\nengine = "fast"',
     "designs[0].engine: 'fast' is not one of"),
    ('bundles = ["{b}"]\ndevices = ["up5k"]\n[[designs]]\ncols = 2.5', "2.5 is not a positive"),
    ('bundles = ["nowhere"]\ndevices = ["up5k"]', "'nowhere' does not exist"),
    ('bundle = ["{b}"]\ndevices = ["up5k"]', "unknown key 'bundle'"),
    ('devices = ["up5k"]', "missing 'bundles'"),
    ('bundles = ["{b}"\n', "not valid TOML"),
])
def test_bad_specs_are_refused_by_name(tmp_path, text, message):
    spec = _spec(tmp_path, text.replace("{b}", BINARY))
    with pytest.raises(ex.ExploreError, match=message.replace("[", r"\[").replace("]", r"\]")):
        ex.load_spec(spec)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["explore", str(spec), "--out", str(out)])
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and message.split(":")[-1].strip()[:8] in result.stderr
    assert not out.exists()


def test_unreachable_scheduler_is_one_line(tmp_path):
    pytest.importorskip("distributed")
    spec = _spec(tmp_path, f'bundles = ["{BINARY}"]\ndevices = ["up5k"]\n')
    result = CliRunner().invoke(main, ["explore", str(spec), "--out", str(tmp_path / "o"),
                                       "--scheduler", "tcp://127.0.0.1:9"])
    assert result.exit_code == 1
    assert "cannot reach the dask scheduler 'tcp://127.0.0.1:9'" in result.stderr
    assert result.stderr.count("\n") == 1
    assert not (tmp_path / "o").exists()


# --- the Pareto front and the seeds ----------------------------------------------------------

def _row(acc, ips, lc, device="up5k", seed=1, cols=1, fmax=10.0, cycles=10_000):
    return {"point": {"bundle": "b", "device": device, "seed": seed, "engine": "arrays",
                      "rows": None, "cols": cols, "lanes": None, "fit": False,
                      "target_fps": None, "multiplier": "lut"},
            "accuracy": acc, "inferences/s": ips, "LC": lc, "status": "ok",
            "Fmax MHz": fmax, "cycles per inference": cycles, "command": f"c{cols}"}


def test_pareto_front_keeps_exactly_the_undominated():
    a, b, c, d = _row(0.9, 100, 1), _row(0.8, 200, 2), _row(0.8, 100, 3), _row(0.95, 50, 4)
    e = _row(0.9, 100, 5)  # equal to a: neither dominates the other
    objectives = [("accuracy", "max"), ("inferences/s", "max")]
    assert ex.pareto_front([a, b, c, d, e], objectives) == [a, b, d, e]
    assert ex.pareto_front([a, b, c, d], [("accuracy", "max"), ("LC", "min")]) == [a, d]


def test_designs_take_the_median_fmax_over_seeds():
    rows = [_row(0.9, 1000, 100, seed=s, fmax=f) for s, f in ((1, 30.0), (2, 50.0), (3, 40.0))]
    rows.append(_row(0.9, 1000, 100, seed=1, cols=2, fmax=20.0))
    (one, two) = ex.designs(rows)
    assert one["seeds"] == [1, 2, 3] and one["Fmax per seed"] == [30.0, 50.0, 40.0]
    assert one["Fmax MHz"] == 40.0
    # 10,000 cycles per inference at the median 40 MHz: 4,000 inferences/s.
    assert one["inferences/s"] == pytest.approx(4000.0)
    assert two["seeds"] == [1] and two["Fmax MHz"] == 20.0


def test_fronts_are_per_device_and_data_set():
    """Accuracies on different test sets are never on one front: with bundles of two data
    sets, each device has a front per data set; with one, a front per device."""
    # inferences/s = 10 MHz / cycles: 100, 200 (digits), 50, 40 (MNIST)
    digits = [dict(_row(0.90, 100, 10, cols=1, cycles=100_000), dataset="d"),
              dict(_row(0.80, 200, 20, cols=2, cycles=50_000), dataset="d")]
    mnist = [dict(_row(0.97, 50, 30, cols=4, cycles=200_000), dataset="m"),
             dict(_row(0.96, 40, 40, cols=8, cycles=250_000), dataset="m")]  # cols=4 wins
    fr = ex.fronts(digits + mnist)
    assert list(fr) == ["up5k, d", "up5k, m"]
    assert [r["point"]["cols"] for r in fr["up5k, d"]["throughput"]] == [1, 2]
    assert [r["point"]["cols"] for r in fr["up5k, m"]["throughput"]] == [4]
    assert list(ex.fronts(digits)) == ["up5k"]
    files = ex.render(ex.SweepResult(digits + mnist, 0, 1.0), {"date": "d"})
    assert "up5k, m: accuracy against area" in files["pareto.html"]
    assert files["pareto.html"].count("<svg") == 4
    # each plot also alone, for a page of the user's own; written under the output folder
    plots = sorted(n for n in files if n.startswith("plots/"))
    assert plots == ["plots/up5k-d-area.svg", "plots/up5k-d-throughput.svg",
                     "plots/up5k-m-area.svg", "plots/up5k-m-throughput.svg"]
    assert all(files[n].startswith("<?xml") and "<svg" in files[n] for n in plots)


def test_sweep_output_with_plots_is_written_whole(tmp_path):
    from rtl_gen.files import write_files

    written = write_files(tmp_path / "out", {"a.json": "{}", "plots/x.svg": "<svg/>"})
    assert written["plots/x.svg"].read_text() == "<svg/>"
    assert sorted(p.name for p in (tmp_path / "out").rglob("*")) == ["a.json", "plots", "x.svg"]


def test_a_conv_bundle_is_a_point():
    """A shipped CNN plans as its conv chain with the point's columns (the cycle model's
    interval follows them); an engine it cannot have is an invalid point, not an error; the
    estimator says it does not model it."""
    from rtl_gen.hw.conv import ConvNetworkEngine

    cnn = str(ROOT / "weights" / "mnist-cnn-ternary")
    intervals = []
    for cols in (2, 8):
        net, plan = ex.plan_point(ex.Point(cnn, "up5k", seed=1, cols=cols))
        assert net.name == "mnist-cnn-ternary"
        assert all(a is None or a.cols == cols for a in plan.configs)
        engine = ex.plan_engine(plan)
        engine._MustUse__silence = True  # read for its cycle model only, never elaborated
        assert isinstance(engine, ConvNetworkEngine)
        intervals.append(engine.interval)
    assert intervals[0] > intervals[1]
    with pytest.raises(ex.RtlGenError, match="unrolled"):
        ex.plan_point(ex.Point(cnn, "up5k", seed=1, engine="unrolled"))
    assert ex.estimate_point(ex.Point(cnn, "up5k", seed=1), None)["status"] == "invalid"


def test_a_mnist_bundle_is_scored_on_the_mnist_test_split():
    """The sweep's accuracy of an MNIST bundle is the golden model's on the fixed MNIST
    test split (2,000 images), as `report` computes it without --data."""
    from rtl_gen.bundle import read_bundle
    from rtl_gen.data.mnist import DataError, mnist
    from rtl_gen.tasks.common import evaluation_data

    cnn = ROOT / "weights" / "mnist-cnn-ternary"
    try:
        _, test = mnist()
    except DataError as e:
        pytest.skip(str(e))
    net = read_bundle(cnn)
    x, y = evaluation_data(net)
    assert x.shape == (2000, 784) and (y == test.y).all()
    logits = net.forward(net.encode(test.x))
    want = float(np.mean(np.argmax(logits, axis=1) == test.y))
    assert ex._accuracy(str(cnn), "key") == want
    assert 0.9 < want < 1.0


# --- running ----------------------------------------------------------------------------------

def _fake(point, cache):
    return {"point": {"seed": point.seed, "cols": point.cols}, "flow runs": 1}


def test_run_sweep_keeps_the_sweep_order_on_any_executor():
    sweep = ex.Sweep(tuple(ex.Point("b", "up5k", seed=s, cols=c)
                           for c in (1, 2, 4) for s in (1, 2)))
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        result = ex.run_sweep(sweep, executor=pool, evaluator=_fake)
    assert [r["point"] for r in result.rows] == [{"seed": p.seed, "cols": p.cols}
                                                for p in sweep.points]
    assert result.flow_runs == 6


@pytest.mark.slow
def test_sweep_caches_resumes_and_runs_on_dask(tmp_path):
    """One real point through the flow; then the whole sweep resumes from the cache (the
    point is not run again; the other one, too large for the device, is evaluated), and a
    second run (on a dask LocalCluster of two workers) makes no flow run and gives the same
    rows.  One seed: a second one would only add a place-and-route run, and the sweep over
    seeds is the product of the ranges (test_points_are_the_product_of_the_ranges)."""
    spec = _spec(tmp_path, f'''
bundles = ["{BINARY}"]
devices = ["up5k"]
seeds = [1]
[[designs]]
cols = [8]
[[designs]]
cols = [300]
''')
    sweep = ex.load_spec(spec)
    cache = tmp_path / "cache"
    # A sweep "killed" after its first point: only that point's result is on disk.
    first = ex.evaluate(sweep.points[0], cache)
    assert first["status"] == "ok" and first["cached"] is False
    assert first["LC"] > 1000 and 10 < first["Fmax MHz"] < 200
    assert first["cycles per inference"] == 65
    assert first["accuracy"] == pytest.approx(0.9028, abs=1e-4)
    assert len(list((cache / "points").iterdir())) == 1
    resumed = ex.run_sweep(sweep, workers=2, cache=cache)
    assert resumed.rows[0] == dict(first, cached=True, **{"flow runs": 0})
    assert [r["status"] for r in resumed.rows] == ["ok", "invalid"]
    assert "300" in resumed.rows[1]["note"]
    pytest.importorskip("distributed")
    executor, close = ex.dask_executor(local_workers=2)
    try:
        again = ex.run_sweep(sweep, executor=executor, cache=cache)
    finally:
        close()
    assert again.flow_runs == 0 and again.cached == len(sweep.points)
    strip = ("cached", "flow runs")
    assert [{k: v for k, v in r.items() if k not in strip} for r in again.rows] == \
        [{k: v for k, v in r.items() if k not in strip} for r in resumed.rows]
    files = ex.render(again, {"date": "today", "tools": {}})
    doc = json.loads(files["sweep.json"])
    assert len(doc["rows"]) == 2 and doc["fronts"]["up5k"]["throughput"] == \
        [resumed.rows[0]["command"]]
    page = files["pareto.html"]
    assert page.count("<svg") == 2 and not re.search(r'(src|href)="https?:', page)


def _metrics(point, cache):
    if point.cols == 8:
        return {"point": {"cols": point.cols}, "status": "does not fit", "flow runs": 1}
    return {"point": {"cols": point.cols, "seed": point.seed}, "status": "ok",
            "accuracy": 0.9, "LC": 100 * point.cols, "inferences/s": 1000.0 * point.cols,
            "flow runs": 1}


def test_adaptive_runs_the_trials_and_shares_its_study(tmp_path):
    optuna = pytest.importorskip("optuna")
    sweep = ex.Sweep(tuple(ex.Point("b", "up5k", seed=s, cols=c)
                           for c in (1, 2, 4, 8) for s in (1, 2)))
    journal = str(tmp_path / "study.log")
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        first = ex.run_adaptive(sweep, 6, executor=pool, workers=2, storage=journal,
                                evaluator=_metrics)
        second = ex.run_adaptive(sweep, 4, executor=pool, workers=2, storage=journal,
                                 evaluator=_metrics)
    assert len(first.rows) == 6 and len(second.rows) == 4
    assert {r["point"]["cols"] for r in first.rows + second.rows} <= {1, 2, 4, 8}
    study = optuna.load_study(study_name="rtl_gen",
                              storage=ex._storage(journal))
    states = [t.state for t in study.trials]
    assert len(states) == 10
    fails = sum(1 for r in first.rows + second.rows if r["status"] != "ok")
    assert states.count(optuna.trial.TrialState.FAIL) == fails
    assert states.count(optuna.trial.TrialState.COMPLETE) == 10 - fails


def test_storage_without_adaptive_is_refused(tmp_path):
    spec = _spec(tmp_path, f'bundles = ["{BINARY}"]\ndevices = ["up5k"]\n')
    result = CliRunner().invoke(main, ["explore", str(spec), "--out", str(tmp_path / "o"),
                                       "--storage", str(tmp_path / "s.log")])
    assert result.exit_code == 1 and "give --adaptive N" in result.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("extra,message", [
    (["--prune", "nowhere.json"], "nowhere.json: not a sweep.json of rtl-gen explore"),
    (["--prune", "BAD"], "not a sweep.json of rtl-gen explore (KeyError"),
    (["--prune", "model", "--adaptive", "3"], "give --prune or --adaptive, not both"),
])
def test_bad_prune_settings_are_one_line(tmp_path, extra, message):
    spec = _spec(tmp_path, f'bundles = ["{BINARY}"]\ndevices = ["up5k"]\n')
    bad = tmp_path / "bad.json"
    bad.write_text('{"meta": {}}')
    extra = [str(bad) if e == "BAD" else e for e in extra]
    result = CliRunner().invoke(main, ["explore", str(spec), "--out", str(tmp_path / "o"),
                                       *extra])
    assert result.exit_code == 1 and message in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1
    assert not (tmp_path / "o").exists()
