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
``benchmarks/results``).

``--synth BUNDLE[,BUNDLE...]`` also synthesizes and places those bundles' chosen designs
on ``--synth-devices`` (default ``--devices``), as ``rtl-gen synth --bundle B --device D
--fit D`` does (:func:`rtl_gen.tasks.synth.synth`): the bare network's cells, the median
Fmax over nextpnr seeds ``1..--seeds`` (default 3) and inferences/s at it; ``--target-fps
F`` plans them at that rate instead of the fastest fit (``--fit D --target-fps F``, checked
against the device); ``--layer-array LAYER:key=value,...`` (repeatable) synthesizes the
design with those settings too.  The synthesized rows go into the JSON under ``"synth"``
and a second table.
"""

from __future__ import annotations

import argparse
import datetime
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


SYNTH_COLUMNS = ("bundle", "device", "folding", "cycles/image", "logic cells", "LUT4", "carry",
                 "FF", "DSP", "BRAM", "Fmax MHz", "Fmax per seed", "inferences/s", "seconds",
                 "date")


def synth_row(name: str, device: str, seeds: int, target_fps: float | None,
              layer_arrays: tuple[str, ...] = ()) -> dict:
    """The chosen design of ``name`` at ``--fit device`` (and ``--target-fps`` and
    ``--layer-array`` settings, if given), synthesized and placed: cells, median Fmax over
    seeds ``1..seeds``, inferences/s."""
    from rtl_gen.tasks.common import parse_layer_arrays
    from rtl_gen.tasks.synth import synth

    net = read_int_bundle(ROOT / "weights" / name)
    start = time.perf_counter()
    folding = FoldingOptions(fit=device, target_fps=target_fps, layer_arrays=layer_arrays)
    plan = plan_folding(net, target_fps=target_fps, fit=device,
                        overrides=parse_layer_arrays(layer_arrays))
    out = {"bundle": name, "device": device,
           "folding": " ".join([f"--fit {device}"]
                               + ([f"--target-fps {target_fps:g}"] if target_fps else [])
                               + [f"--layer-array {a}" for a in layer_arrays]),
           "arrays": [f"{a.rows}x{a.cols}x{a.lanes}" for a in plan.arrays],
           "in_per_beat": plan.in_per_beat, "cycles/image": plan.interval}
    try:
        res = synth(ROOT / "weights" / name, device, folding=folding, seeds=seeds)
    except RtlGenError as e:
        out["error"] = str(e).splitlines()[0]
    else:
        out.update({k: v for k, v in res.items() if k not in ("network", "device")})
        rate = res.get("inferences/s")
        if rate is not None:
            out["inferences/s"] = int(str(rate).replace(",", ""))
            out["Fmax MHz"] = float(res["Fmax MHz"])
    out["seconds"] = round(time.perf_counter() - start)
    return out


def _table(rows: list[dict], columns) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        lines.append("| " + " | ".join(f"{v:,}" if isinstance(v, int) else str(v)
                                        for v in (r.get(c, "") for c in columns)) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", default="up5k,ecp5-85f")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument("--synth", default="", metavar="BUNDLE[,BUNDLE...]",
                    help="also synthesize and place these bundles' chosen designs")
    ap.add_argument("--synth-devices", default=None,
                    help="--synth: on these devices only (default: --devices)")
    ap.add_argument("--seeds", type=int, default=3, help="nextpnr seeds 1..N (--synth)")
    ap.add_argument("--target-fps", type=float, default=None,
                    help="--synth: plan at this rate (checked against the device)")
    ap.add_argument("--layer-array", action="append", default=[], metavar="LAYER:k=v,...",
                    help="--synth: also synthesize the design with these per-layer settings "
                    "(as rtl-gen's --layer-array; repeatable)")
    args = ap.parse_args()
    names = sorted(p.name for p in (ROOT / "weights").glob("mnist-*") if p.is_dir())
    devices = args.devices.split(",")
    rows = [row(n, d) for n in names for d in devices]
    table = _table(rows, COLUMNS)
    synth_devices = (args.synth_devices or args.devices).split(",")
    variants = [()] + ([tuple(args.layer_array)] if args.layer_array else [])
    synthesized = [synth_row(n, d, args.seeds, args.target_fps, v)
                   for n in args.synth.split(",") if n for d in synth_devices
                   for v in variants]
    # the synthesized rows of the other bundles and devices stay (dated by their run)
    today = datetime.date.today().isoformat()
    for r in synthesized:
        r.setdefault("date", today)
    redone = {(r["bundle"], r["device"]) for r in synthesized}
    old = args.out / "mnist_fit.json"
    if old.exists():
        kept = json.loads(old.read_text()).get("synth", [])
        synthesized = [r for r in kept if (r["bundle"], r["device"]) not in redone] \
            + synthesized
    if synthesized:
        table += "\nSynthesized and placed (Fmax: the median of the seeds listed):\n\n" \
            + _table(synthesized, SYNTH_COLUMNS)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "mnist_fit.md").write_text(table)
    doc = {"rows": rows, "synth": synthesized}
    (args.out / "mnist_fit.json").write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
