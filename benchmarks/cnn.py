"""The shipped MNIST CNNs at the folding planner's ``--fit`` choice, per device.

For each shipped CNN bundle (``weights/mnist-cnn-int4``, ``weights/mnist-cnn-ternary``) and
each device (the UP5K and the LFE5U-85F), the design is the one ``rtl-gen synth --bundle B
--device D --fit D`` builds (the board build, without cycle counters): the per-layer arrays
the CNN planner picks (:func:`rtl_gen.hw.conv_planner.plan_conv_folding`: ``cols x lanes``,
a convolution's window codes per cycle ``P``, the register stages inside the PEs).  Each row
reports:

* the arrays, the cycle model's cycles per image (the slowest stage in steady state) and
  the stage that sets them;
* the planner's estimated logic next to synthesis: Yosys cells after packing (iCE40 logic
  cells / ECP5 ``TRELLIS_COMB``, LUT4, carry, FF, DSP, BRAM) of the bare network;
* nextpnr Fmax inside the flow's three-pin harness: the median over seeds ``1..N``
  (``--seeds N``, default 3, as ``rtl-gen synth``), each seed's kept, and from the median
  the inferences per second.

Run ``python benchmarks/cnn.py [--schemes int4,ternary] [--devices up5k,ecp5-85f] [--seeds
N] [--out DIR]``: runs one tool at a time, prints progress to stderr and a Markdown table to
stdout, and writes ``cnn.md`` and ``cnn.json`` into ``--out`` (default
``benchmarks/results``) after every row.  Runs are cached as ``rtl-gen synth`` caches them
(``<user cache>/flow``), keyed by the Verilog and the tool versions.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rtl_gen.bundle import read_bundle  # noqa: E402
from rtl_gen.hw.conv_planner import plan_conv_folding  # noqa: E402
from rtl_gen.tasks.common import FoldingOptions  # noqa: E402
from rtl_gen.tasks.synth import synth  # noqa: E402

SCHEMES = ("int4", "ternary")
DEVICES = ("up5k", "ecp5-85f")
COLUMNS = ("bundle", "device", "arrays (cols x lanes, window P, pipeline)", "cycles/image",
           "limit", "est. logic", "logic cells", "LUT4", "FF", "DSP", "BRAM", "Fmax MHz",
           "Fmax per seed", "inferences/s")


def arrays_text(plan) -> str:
    """Each weight layer's array: ``name cols x lanes`` (``/P`` codes a cycle, ``+s``
    register stages when not 1 and 0)."""
    out = []
    for s in plan.stages:
        a = s.array
        if a is None:
            continue
        text = f"{s.name} {a.cols}x{a.lanes}"
        if a.window != 1:
            text += f"/{a.window}"
        if a.pipeline:
            text += f"+{a.pipeline}"
        out.append(text)
    return ", ".join(out)


def limit_text(plan) -> str:
    """The stage whose interval is the network's."""
    slowest = max(plan.stages, key=lambda s: s.interval)
    if slowest.interval < plan.interval:
        return "input stream"
    return slowest.name


def row_for(scheme: str, device: str, seeds: int) -> dict:
    bundle = ROOT / "weights" / f"mnist-cnn-{scheme}"
    net = read_bundle(bundle)
    plan = plan_conv_folding(net, fit=device)
    print(f"{net.name} on {device}: synthesis, place and route (seeds 1..{seeds})...",
          file=sys.stderr)
    got = synth(bundle, device, seeds=seeds, folding=FoldingOptions(fit=device))
    fmax = float(got["Fmax MHz"])
    return {"bundle": net.name, "device": device, "arrays": arrays_text(plan),
            "cycles/image": plan.interval, "limit": limit_text(plan),
            "est. logic": round(plan.area.logic), "logic cells": got["logic cells"],
            "LUT4": got["LUT4"], "FF": got["FF"], "DSP": got["DSP"], "BRAM": got["BRAM"],
            "Fmax MHz": fmax,
            "Fmax per seed": [float(f) for f in got["Fmax per seed"].split(" / ")],
            "inferences/s": round(fmax * 1e6 / plan.interval), "note": got.get("note", "")}


def table(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        cells = [r["bundle"], r["device"], r["arrays"], f"{r['cycles/image']:,}", r["limit"],
                 f"{r['est. logic']:,}", f"{r['logic cells']:,}", f"{r['LUT4']:,}",
                 f"{r['FF']:,}", str(r["DSP"]), str(r["BRAM"]), f"{r['Fmax MHz']:.1f}",
                 " / ".join(f"{f:.1f}" for f in r["Fmax per seed"]),
                 f"{r['inferences/s']:,}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--schemes", default=",".join(SCHEMES))
    ap.add_argument("--devices", default=",".join(DEVICES))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for scheme in args.schemes.split(","):
        for device in args.devices.split(","):
            rows.append(row_for(scheme, device, args.seeds))
            text = table(rows)
            (args.out / "cnn.md").write_text(text)
            (args.out / "cnn.json").write_text(json.dumps(
                {"date": datetime.date.today().isoformat(), "seeds": args.seeds,
                 "rows": rows}, indent=1) + "\n")
    sys.stdout.write(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
