"""The unrolled digits network (one input vector a cycle) on the LFE5U-85F.

For each chosen shipped bundle, :class:`rtl_gen.hw.unrolled.UnrolledNetworkEngine` (every
layer a constant-matrix adder graph from da4ml's solver, pipelined every ``--stage`` adder
levels) is synthesised and placed and routed with the project's flow inside its harness,
and reported: adders of the graphs, pipeline latency (cycles and ns at Fmax), ECP5 logic
cells (``TRELLIS_COMB``), LUT4, carry, FF, DSP, Fmax (median of nextpnr seeds 1..N) and
inferences per second (= Fmax, one vector a cycle).

Run ``python benchmarks/unrolled.py [--schemes ternary,int4] [--stage 2] [--schedule alap]
[--seeds N] [--out DIR]``: prints a Markdown table and writes ``unrolled.md`` and
``unrolled.json`` into ``--out`` (default ``benchmarks/results``).  Builds are cached under
``build/flow``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from rtl_gen.bundle import read_bundle
from rtl_gen.flow.synth import (
    DEFAULT_WORKDIR,
    FlowError,
    component_verilog,
    place_and_route,
    synth,
    tool_versions,
)
from rtl_gen.hw.unrolled import (
    DEFAULT_HARD_DC,
    DEFAULT_STAGE,
    MULTIPLIERS,
    SCHEDULES,
    UnrolledNetworkEngine,
    plan_unrolled,
)
from rtl_gen.training.defaults import WEIGHTS_DIR

RESULTS = Path(__file__).parent / "results"
DEVICE = "ecp5-85f"
SCHEMES = ("binary", "ternary", "pot4", "apot4", "int4", "int8", "mixed")


def measure(net, *, stage: int, schedule: str, hard_dc: int | None, multiplier: str, seeds: int,
            workdir: Path) -> dict:
    plan = plan_unrolled(net, stage=stage, schedule=schedule, hard_dc=hard_dc,
                         multiplier=multiplier)
    engine = UnrolledNetworkEngine.from_plan(plan)
    dc = "auto" if hard_dc is None else hard_dc
    top = f"unrolled_{net.name}_s{stage}_{schedule}_dc{dc}_{multiplier}".replace("-", "_")
    verilog = component_verilog(engine, top)
    row = {"name": net.name, "schemes": "/".join(net.schemes), "stage": stage,
           "schedule": schedule, "hard_dc": dc, "multiplier": multiplier,
           "adders": plan.adders,
           "depths": [g.depth for g in plan.layers], "latency": plan.latency}
    try:
        stats = synth(verilog, top, DEVICE, workdir=workdir)
        fmax = [place_and_route(verilog, top, DEVICE, workdir=workdir, seed=seed).fmax
                for seed in range(1, seeds + 1)]
    except FlowError as e:
        row["error"] = str(e).splitlines()[0]
        return row
    f = statistics.median(fmax)
    row.update(lc=stats.logic_cells, lut4=stats.lut4, carry=stats.carry, ff=stats.ff,
               dsp=stats.dsp, bram=stats.bram, fmax=round(f, 1),
               fmax_seeds=[round(v, 2) for v in fmax],
               latency_ns=round(plan.latency * 1e3 / f, 1), inferences_per_s=round(f * 1e6))
    return row


def markdown(rows: list[dict]) -> str:
    head = ("| network | weights | stage, hard_dc, multiplier | adders | latency (cycles) | "
            "latency (ns) | LC | LUT4 | CCU2C | FF | DSP | MHz | inferences/s |")
    lines = [head, "|" + "---|" * 13]
    for r in rows:
        first = (f"| {r['name']} | {r['schemes']} | {r['stage']}, {r['hard_dc']}, "
                 f"{r['multiplier']} | "
                 f"{r['adders']} | {r['latency']} | ")
        if "error" in r:
            lines.append(first + f"{r['error']} |")
            continue
        lines.append(first + f"{r['latency_ns']} | {r['lc']} | {r['lut4']} | "
                     f"{r['carry']} | {r['ff']} | {r['dsp']} | {r['fmax']} | "
                     f"{r['inferences_per_s']:,} |")
    return "\n".join(lines) + "\n"


def _hard_dc(text: str) -> int | None:
    return None if text == "auto" else int(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schemes", default="ternary,int4",
                        help="comma-separated subset of " + ", ".join(SCHEMES))
    parser.add_argument("--stage", type=int, default=DEFAULT_STAGE,
                        help="adder levels between pipeline registers")
    parser.add_argument("--schedule", choices=SCHEDULES, default="minreg")
    parser.add_argument("--hard-dc", type=_hard_dc, default=DEFAULT_HARD_DC,
                        help="da4ml's hard delay constraint (-1: none, 0: shallowest; "
                        "default auto: per layer the one of -1 and 0 that ends earlier)")
    parser.add_argument("--multiplier", choices=MULTIPLIERS, default="dsp",
                        help="the requantizer's multiply: hard multipliers or adders")
    parser.add_argument("--seeds", type=int, default=1, metavar="N",
                        help="Fmax as the median over nextpnr seeds 1..N (default 1)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    args = parser.parse_args(argv)
    schemes = [s.strip() for s in args.schemes.split(",") if s.strip()]
    unknown = sorted(set(schemes) - set(SCHEMES))
    if unknown:
        parser.error(f"unknown scheme(s) {', '.join(unknown)}; expected some of "
                     f"{', '.join(SCHEMES)}")
    if args.seeds < 1:
        parser.error(f"--seeds must be at least 1, not {args.seeds}")
    start = time.time()
    rows = []
    for scheme in schemes:
        net = read_bundle(WEIGHTS_DIR / f"digits-{scheme}")
        rows.append(measure(net, stage=args.stage, schedule=args.schedule,
                            hard_dc=args.hard_dc, multiplier=args.multiplier,
                            seeds=args.seeds, workdir=args.workdir))
        print(f"{scheme}: {rows[-1]}", file=sys.stderr)
    table = markdown(rows)
    print(table, end="")
    args.out.mkdir(parents=True, exist_ok=True)
    note = ("# The unrolled digits network on the LFE5U-85F\n\n"
            "Generated by `python benchmarks/unrolled.py`; one input vector a cycle, so "
            "inferences/s = Fmax; LC = TRELLIS_COMB after packing; Fmax the median of "
            f"nextpnr seeds 1..{args.seeds} inside the flow's harness.\n\n")
    (args.out / "unrolled.md").write_text(note + table)
    (args.out / "unrolled.json").write_text(json.dumps(
        {"rows": rows, "tools": tool_versions(), "seconds": round(time.time() - start)},
        indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
