"""The design-space sweep at scale (``rtl-gen explore``): the full sweep over the shipped
digits bundles, the speed-up of a dask ``LocalCluster`` of 2 workers over 1, the cache (a
second run makes no flow run), resuming, the estimator on held-out points and the
estimator-pruned sweep against the full one.

Run ``python benchmarks/explore.py [--seeds 1,2,3] [--devices up5k,ecp5-85f] [--timing N]
[--cache DIR]``; it prints the tables and writes ``benchmarks/results/explore.json`` and
``.md`` (plus the sweep's own ``pareto.html`` and its plots, ``explore-plots/*.svg``,
beside them).  The full sweep's flow runs are cached in ``--cache`` (default: the user
cache), so a re-run is fast; the timing runs use fresh temporary caches so that both
synthesize everything.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
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
    return json.dumps(dict(row["point"], seed=0), sort_keys=True)


def front_keys(rows: list[dict]) -> set[str]:
    return {_key(r) for named in ex.fronts(rows).values() for f in named.values() for r in f}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--devices", default="up5k,ecp5-85f")
    ap.add_argument("--timing", type=int, default=12,
                    help="points of the 1-vs-2-worker timing (fresh caches)")
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--holdout", type=float, default=0.3)
    args = ap.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    sweep = ex.parse_spec(spec(args.devices.split(","), seeds), source="benchmark")
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

    # 4. the pruned sweep: calibrated on a small sample, against the full sweep's front
    sample = set(keys[:max(8, len(keys) // 5)])
    pruned = ex.prune(sweep, fit([r for r in built if _key(r) in sample]))
    chosen = {json.dumps(dict(dataclasses.asdict(p), seed=0), sort_keys=True)
              for p in pruned.points}
    truth = front_keys(full.rows)
    synthesized = chosen | sample
    out["pruned"] = {"designs synthesized": len(synthesized), "designs": len(keys),
                     "fraction %": round(100 * len(synthesized) / max(1, len(keys)), 1),
                     "front designs": len(truth),
                     "front found %": round(100 * len(truth & synthesized)
                                            / max(1, len(truth)), 1)}
    meta = {"spec": "benchmarks/explore.py", "date": out["date"], "tools": out["tools"],
            "flow runs": full.flow_runs, "seconds": round(full.seconds, 1)}
    files = ex.render(full, meta)
    md = "\n".join(f"| {k} | {json.dumps(v)} |" for k, v in out.items())
    table = "| measure | result |\n|---|---|\n" + md + "\n"
    print(table)
    RESULTS.mkdir(exist_ok=True)
    plots = {f"explore-{name}": text for name, text in files.items()
             if name.startswith("plots/")}
    write_files(RESULTS, {"explore.json": json.dumps(out, indent=1) + "\n",
                          "explore.md": table, "explore-pareto.html": files["pareto.html"],
                          **plots})
    return 0


if __name__ == "__main__":
    sys.exit(main())
