"""The design-space sweep at scale (``rtl-gen explore``): the full sweep over the shipped
digits bundles, the speed-up of a dask ``LocalCluster`` of 2 workers over 1, the cache (a
second run makes no flow run), the estimator on held-out designs and the estimator-pruned
sweep (:func:`rtl_gen.tasks.explore.run_pruned`) against the full one.

Run ``python benchmarks/explore.py [--seeds 1,2,3] [--devices up5k,ecp5-85f] [--timing N]
[--cache DIR]``; it prints the tables and writes ``benchmarks/results/explore.json`` and
``.md``, the sweep's rows as ``explore-sweep.json`` (its ``sweep.json``), its
``pareto.html`` and its plots (``explore-plots/*.svg``).  The full sweep's flow runs are
cached in ``--cache`` (default: the user cache), so a re-run is fast; the timing runs use
fresh temporary caches so that both synthesize everything.  ``--rows
benchmarks/results/explore-sweep.json`` scores only the pruned sweep again, replayed from
those rows (no synthesis), and updates that entry of ``explore.json``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import itertools
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from rtl_gen.files import write_files
from rtl_gen.tasks import explore as ex
from rtl_gen.tasks.estimator import fit

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
BUNDLES = ["binary", "ternary", "pot4", "apot4", "int4", "int8", "mixed"]
#: Array shapes of the full sweep (cols x lanes) besides the planner's --fit design.
SHAPES = [(2, 1), (4, 1), (8, 1), (8, 4), (16, 2)]


def spec(devices: list[str], seeds: list[int]) -> dict:
    return {"bundles": [str(ROOT / "weights" / f"digits-{b}") for b in BUNDLES],
            "devices": devices, "seeds": seeds,
            "designs": [{"cols": c, "lanes": n} for c, n in SHAPES] + [{"fit": True}]}


def _key(row: dict) -> str:
    return ex._design_key(ex.Point(**row["point"]))


def front_keys(rows: list[dict]) -> set[str]:
    return {_key(r) for named in ex.fronts(rows).values() for f in named.values() for r in f}


def _bundle(row: dict) -> str:
    return Path(row["point"]["bundle"]).name


def _replay(sweep: ex.Sweep, rows: list[dict], calibration: list[dict]) -> tuple:
    """``(% of the designs of sweep synthesized, % of its front designs found)``: the pruned
    sweep (:func:`rtl_gen.tasks.explore.run_pruned`, its default chance, 2 workers) with
    every build answered from the full sweep's ``rows`` (the flow is deterministic: a
    design's metrics are the same whenever it is built), calibrated on ``calibration``."""
    by_point = {json.dumps(r["point"], sort_keys=True): r for r in rows}

    def built(point, cache=None):
        return by_point[json.dumps(dataclasses.asdict(point), sort_keys=True)]

    swept = {ex._design_key(p) for p in sweep.points}
    mine = [r for r in rows if _key(r) in swept]
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        got = ex.run_pruned(sweep, calibration, executor=pool, workers=2, evaluator=built,
                            facts=ex.row_facts(mine))
    kept = {_key(r) for r in got.rows}
    designs = {_key(r) for r in mine}
    truth = front_keys(mine)
    return 100 * len(kept) / len(designs), 100 * len(truth & kept) / len(truth)


def _summary(scores: list[tuple]) -> dict:
    fr, rc = [s[0] for s in scores], [s[1] for s in scores]
    return {"runs": len(scores), "synthesized % mean": round(statistics.mean(fr), 1),
            "synthesized % max": round(max(fr), 1),
            "front found % mean": round(statistics.mean(rc), 1),
            "front found % min": round(min(rc), 1),
            "both targets met": sum(f <= 30 and r >= 90 for f, r in scores)}


def pruned_sweeps(sweep: ex.Sweep, rows: list[dict]) -> dict:
    """The estimator-pruned sweep (:func:`rtl_gen.tasks.explore.run_pruned`) against the
    full sweep's fronts, replayed from the full sweep's own results two ways:

    * ``previous sweep``: calibrated on a sweep of other bundles (``--prune SWEEP.json``):
      every split of the bundles into 4 calibration and 3 swept ones, the pruned sweep of
      the 3 against their own full sweep (the calibration sweep is not counted);
    * ``no sweep``: the whole sweep pruned with no calibration but the shipped area model
      and the planner's clock, refit on the designs as they are built (all counted)."""
    built = [r for r in rows if r.get("status") == "ok" and r.get("features")]
    names = sorted({_bundle(r) for r in rows})
    previous = []
    for cal in itertools.combinations(names, len(names) - 3):
        swept = ex.Sweep(tuple(p for p in sweep.points if Path(p.bundle).name not in cal))
        previous.append(_replay(swept, rows, [r for r in built if _bundle(r) in cal]))
    alone = _replay(sweep, rows, [])
    return {"chance": ex.DEFAULT_CHANCE, "designs": len({_key(r) for r in rows}),
            "front designs": len(front_keys(rows)), "previous sweep": _summary(previous),
            "no sweep": {"synthesized %": round(alone[0], 1),
                         "front found %": round(alone[1], 1)}}


def _table(out: dict) -> str:
    md = "\n".join(f"| {k} | {json.dumps(v)} |" for k, v in out.items())
    return "| measure | result |\n|---|---|\n" + md + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--devices", default="up5k,ecp5-85f")
    ap.add_argument("--timing", type=int, default=12,
                    help="points of the 1-vs-2-worker timing (fresh caches)")
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--holdout", type=float, default=0.3)
    ap.add_argument("--rows", type=Path, default=None,
                    help="score only the pruned sweep, on this finished sweep's "
                         "explore-sweep.json (updating the 'pruned' entry of explore.json)")
    args = ap.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    sweep = ex.parse_spec(spec(args.devices.split(","), seeds), source="benchmark")
    if args.rows is not None:
        rows = json.loads(args.rows.read_text())["rows"]
        sweep = ex.Sweep(tuple(ex.Point(**r["point"]) for r in rows))
        out = json.loads((RESULTS / "explore.json").read_text())
        out["pruned"] = pruned_sweeps(sweep, rows)
        print(json.dumps(out["pruned"], indent=1))
        write_files(RESULTS, {"explore.json": json.dumps(out, indent=1) + "\n",
                              "explore.md": _table(out)})
        return 0
    out: dict = {"date": time.strftime("%Y-%m-%d"), "points": len(sweep.points),
                 "tools": __import__("rtl_gen.flow", fromlist=["x"]).tool_versions()}
    log = print

    # 1. the full sweep on a local pool, then again (every point from the cache)
    log(f"full sweep: {len(sweep.points)} points", file=sys.stderr)
    full = ex.run_sweep(sweep, workers=2, cache=args.cache,
                        progress=lambda m: print(m, file=sys.stderr, flush=True))
    again = ex.run_sweep(sweep, workers=2, cache=args.cache)
    out["full"] = {"seconds": round(full.seconds, 1), "flow runs": full.flow_runs,
                   "built": sum(r.get("status") == "ok" for r in full.rows)}
    out["rerun"] = {"seconds": round(again.seconds, 1), "flow runs": again.flow_runs,
                    "cached": again.cached}

    # 2. 1 worker against 2 on a LocalCluster, fresh caches, the same points
    rng = random.Random(0)
    subset = ex.Sweep(tuple(rng.sample(sweep.points, min(args.timing, len(sweep.points)))))
    timing = {}
    for workers in (1, 2):
        with tempfile.TemporaryDirectory() as tmp:
            executor, close = ex.dask_executor(local_workers=workers)
            try:
                r = ex.run_sweep(subset, executor=executor, cache=tmp)
            finally:
                close()
            timing[workers] = r.seconds
    out["local cluster"] = {"points": len(subset.points), "1 worker s": round(timing[1], 1),
                            "2 workers s": round(timing[2], 1),
                            "ratio": round(timing[2] / timing[1], 3)}

    # 3. the estimator on held-out designs (all seeds of a design on one side)
    built = [r for r in full.rows if r.get("status") == "ok" and r.get("features")]
    keys = sorted({_key(r) for r in built})
    rng.shuffle(keys)
    held = set(keys[:int(len(keys) * args.holdout)])
    est = fit([r for r in built if _key(r) not in held])
    errors = {"LC": [], "Fmax MHz": []}
    for r in built:
        if _key(r) in held:
            try:
                e = est.estimate(r["point"]["device"], r["features"])
            except Exception:  # a device/engine the calibration half did not see
                continue
            for m in errors:
                errors[m].append(abs(e[m] - r[m]) / r[m])
    t = time.perf_counter()
    for p in sweep.points[:50]:
        ex.estimate_point(p, est)
    per = (time.perf_counter() - t) / min(50, len(sweep.points))
    out["estimator"] = {"held-out designs": len(held), "calibration designs":
                        len(keys) - len(held),
                        "LC MAPE %": round(100 * sum(errors["LC"]) / max(1, len(errors["LC"])),
                                           2),
                        "Fmax MAPE %": round(100 * sum(errors["Fmax MHz"])
                                             / max(1, len(errors["Fmax MHz"])), 2),
                        "ms per estimate": round(1e3 * per, 1)}

    # 4. the pruned sweep against the full one, by designs synthesized (each with all its seeds)
    out["pruned"] = pruned_sweeps(sweep, full.rows)
    meta = {"spec": "benchmarks/explore.py", "date": out["date"], "tools": out["tools"],
            "flow runs": full.flow_runs, "seconds": round(full.seconds, 1)}
    files = ex.render(full, meta)
    table = _table(out)
    print(table)
    RESULTS.mkdir(exist_ok=True)
    plots = {f"explore-{name}": text for name, text in files.items()
             if name.startswith("plots/")}
    write_files(RESULTS, {"explore.json": json.dumps(out, indent=1) + "\n",
                          "explore.md": table, "explore-pareto.html": files["pareto.html"],
                          "explore-sweep.json": files["sweep.json"],
                          **plots})
    return 0


if __name__ == "__main__":
    sys.exit(main())
