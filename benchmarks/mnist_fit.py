"""The folding planner's ``--fit`` choice for every shipped MNIST bundle, per device.

For each ``weights/mnist-*`` bundle and each device (the UP5K and the LFE5U-85F), the engine
``--engine auto`` picks (the unrolled engine when it fits, else the arrays, as ``rtl-gen
generate --fit D`` picks it, without elaborating the design), then the array planner's
choice (:func:`rtl_gen.hw.planner.plan_folding` for the TFCs and term revealing,
:func:`rtl_gen.hw.conv_planner.plan_conv_folding` for the CNNs): cycles per image, images/s
at the family's planning clock, the input port's codes per cycle, the estimated logic,
flip-flops, DSP and block RAM, and the seconds the choice took -- or the planner's one-line
refusal.

Run ``python benchmarks/mnist_fit.py [--devices up5k,ecp5-85f] [--out DIR]``: prints a
Markdown table and writes ``mnist_fit.md`` and ``mnist_fit.json`` into ``--out`` (default
``benchmarks/results``).  Synthesized numbers: ``rtl-gen synth --bundle B --device D --fit D
--seeds 1`` per row.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rtl_gen.bundle.integer import read_int_bundle  # noqa: E402
from rtl_gen.errors import RtlGenError  # noqa: E402
from rtl_gen.hw.conv_planner import plan_conv_folding  # noqa: E402
from rtl_gen.hw.planner import plan_folding  # noqa: E402
from rtl_gen.tasks.common import FoldingOptions, unrolled_choice  # noqa: E402

COLUMNS = ("bundle", "device", "engine", "cycles/image", "images/s (est.)", "input P",
           "est. logic", "est. FF", "est. DSP", "est. BRAM", "seconds", "refused")


def row(name: str, device: str) -> dict:
    net = read_int_bundle(ROOT / "weights" / name)
    conv = any(type(ly).__name__ == "ConvLayer" for ly in net.layers)
    start = time.perf_counter()
    out = dict.fromkeys(COLUMNS, "")
    out.update(bundle=name, device=device)
    try:
        unrolled = None if conv else unrolled_choice(net, FoldingOptions(fit=device))
        if unrolled is not None:
            out.update(engine="unrolled", **{"cycles/image": 1})
        else:
            plan = (plan_conv_folding if conv else plan_folding)(net, fit=device)
            a = plan.area
            out.update(engine="arrays", **{
                "cycles/image": plan.interval, "images/s (est.)": round(plan.fps),
                "input P": getattr(plan, "in_per_beat", 1), "est. logic": round(a.logic),
                "est. FF": round(a.ff), "est. DSP": a.dsp, "est. BRAM": a.bram})
    except RtlGenError as e:
        out["refused"] = str(e)
    out["seconds"] = round(time.perf_counter() - start, 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", default="up5k,ecp5-85f")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args()
    names = sorted(p.name for p in (ROOT / "weights").glob("mnist-*") if p.is_dir())
    rows = [row(n, d) for n in names for d in args.devices.split(",")]
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        lines.append("| " + " | ".join(f"{v:,}" if isinstance(v, int) else str(v)
                                        for v in (r[c] for c in COLUMNS)) + " |")
    table = "\n".join(lines) + "\n"
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "mnist_fit.md").write_text(table)
    (args.out / "mnist_fit.json").write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
