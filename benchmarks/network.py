"""Every shipped integer digits network at the folding planner's ``--fit`` choice, per device.

For each shipped integer bundle and each device (the UP5K and the LFE5U-85F), the design is
the one ``rtl-gen synth --bundle B --device D --fit D`` builds (``--engine auto``, the board
build without cycle counters): the unrolled engine
(:class:`rtl_gen.hw.unrolled.UnrolledNetworkEngine`, one image a cycle) when it fits the
device with the planner's margin, else the time-multiplexed arrays the folding planner sizes
for the fastest design that fits (:func:`rtl_gen.tasks.common.unrolled_choice`,
:func:`rtl_gen.tasks.common.fold`).  Each row reports:

* the engine, the per-layer arrays (``rows x cols x lanes``) and input codes per cycle;
* the planner's estimated logic next to synthesis, the same count (iCE40 logic cells,
  ECP5 ``TRELLIS_COMB``) of the same bare network: the area model of
  :mod:`rtl_gen.design.area` for the arrays, :func:`rtl_gen.hw.planner.unrolled_area` for
  the unrolled engine;
* Yosys cells after packing (iCE40 logic cells / ECP5 ``TRELLIS_COMB``, LUT4, carry, FF,
  DSP, BRAM) of the bare network, and nextpnr Fmax inside the flow's three-pin harness: the
  median over nextpnr seeds 1..N (``--seeds N``, default 5), each seed's kept in the JSON;
* the cycle model's cycles per inference (interval over batch) and latency (the unrolled
  pipeline's depth; for the arrays the first layer's input load plus every layer's batch
  cycles, one image alone in the engine), and from the median Fmax: inferences per second,
  per thousand LC, latency in ns;
* the bundle's top-1 accuracy on the digits test split (360 images), from the golden model
  that the cocotb tests hold the hardware to bit for bit.

Run ``python benchmarks/network.py [--schemes int8,ternary] [--devices up5k] [--seeds N]
[--out DIR] [--workdir DIR]``: runs one tool at a time, prints progress to stderr and a
Markdown table to stdout, and writes ``network.md`` and ``network.json`` into ``--out``
(default ``benchmarks/results``) after every row, keeping the rows of that file's networks
and devices this run does not redo.  ``--estimates-only`` runs no tool: the recorded rows
take the planner's current estimate where its ``--fit`` choice is still the design they
measured (after a recalibration of the area model).  Builds are cached under ``--workdir``
(default ``build/flow``), keyed by the Verilog and the tool versions.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

import numpy as np

from rtl_gen.bundle import read_bundle
from rtl_gen.design import golden
from rtl_gen.flow.synth import (
    DEFAULT_SEEDS,
    DEFAULT_WORKDIR,
    FlowError,
    component_verilog,
    median_fmax,
    place_and_route,
    synth,
    tool_versions,
)
from rtl_gen.training.defaults import WEIGHTS_DIR

RESULTS = Path(__file__).parent / "results"
DEVICES = ("up5k", "ecp5-85f")
#: Every shipped integer bundle (``weights/digits-*``).
SCHEMES = ("binary", "ternary", "pot4", "apot4", "int4", "int8", "mixed", "tr")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def accuracy(net) -> float:
    """Top-1 accuracy of the golden model on the digits test split."""
    from rtl_gen.data.digits import digits

    _, test = digits()
    logits = golden.forward(net, test.x_int)
    return float(np.mean(np.argmax(logits, axis=1) == test.y))


def fit_design(net, device: str) -> tuple[object, dict]:
    """The engine ``--fit device`` (``--engine auto``, no cycle counters) builds for
    ``net``, and its description: engine, arrays, input codes per cycle, cycles per
    inference, latency (cycles), the planner's estimated logic and its messages."""
    from rtl_gen.hw.network import NetworkEngine, plan_chain
    from rtl_gen.hw.planner import unrolled_fit
    from rtl_gen.hw.unrolled import UnrolledNetworkEngine
    from rtl_gen.tasks.common import FoldingOptions, fold, unrolled_choice

    folding = FoldingOptions(fit=device)
    messages: list[str] = []
    unrolled = unrolled_choice(net, folding, messages.append)
    if unrolled is not None:
        engine = UnrolledNetworkEngine.from_plan(unrolled)
        estimate, _ = unrolled_fit(unrolled, device, folding.margin)
        return engine, {"engine": "unrolled", "adders": unrolled.adders,
                        "in_per_beat": net.layers[0].in_features,
                        "cycles_per_inference": float(engine.interval),
                        "latency_cycles": engine.latency,
                        "estimated_logic": round(estimate), "planner": messages}
    plan = fold(net, folding)
    messages.append(plan.table())
    engine = NetworkEngine.from_plan(plan_chain(net, list(plan.arrays),
                                                in_per_beat=plan.in_per_beat, counters=False))
    timings = engine.timings
    latency = timings[0].load_cycles + sum(t.batch_cycles for t in timings)
    return engine, {"engine": "arrays",
                    "arrays": [f"{a.rows}x{a.cols}x{a.lanes}" for a in engine.arrays],
                    "in_per_beat": engine.in_per_beat, "interval": engine.interval,
                    "rows": engine.rows,
                    "cycles_per_inference": engine.interval / engine.rows,
                    "latency_cycles": latency,
                    "estimated_logic": round(plan.area.logic), "planner": messages}


def measure(verilog: str, top: str, device: str, workdir: Path,
            seeds: int = DEFAULT_SEEDS) -> dict:
    """Cells of the bare design (kept when it then does not fit), and Fmax in the harness
    as the median over nextpnr seeds ``1..seeds`` (each one kept too); one tool at a time,
    each step logged."""
    from rtl_gen.devices import get_device

    d: dict = {}
    try:
        t0 = time.time()
        log(f"  {top} on {device}: synthesis...")
        stats = synth(verilog, top, device, workdir=workdir)
        d = {"lc": stats.logic_cells, "lut4": stats.lut4, "carry": stats.carry,
             "ff": stats.ff, "dsp": stats.dsp, "bram": stats.bram}
        log(f"  {top} on {device}: {stats.logic_cells} LC, {stats.lut4} LUT4, {stats.ff} FF "
            f"({time.time() - t0:.0f} s)")
        luts = get_device(device).luts
        if stats.logic_cells is not None and stats.logic_cells > luts:
            d["error"] = (f"does not fit {device}: {stats.logic_cells} logic cells, device "
                          f"has {luts}")
            return d
        runs = []
        for seed in range(1, seeds + 1):
            t0 = time.time()
            runs.append(place_and_route(verilog, top, device, workdir=workdir, seed=seed))
            log(f"  {top} on {device}: seed {seed}: {runs[-1].fmax:.1f} MHz "
                f"({time.time() - t0:.0f} s)")
        fmax = median_fmax([r.fmax for r in runs])
        d.update(fmax=round(fmax, 1), fmax_seeds=[round(r.fmax, 2) for r in runs])
        note = stats.note or next((r.note for r in runs if r.note), "")
        if note:
            d["note"] = note
    except FlowError as e:
        d["error"] = str(e).splitlines()[0]
        log(f"  {top} on {device}: {d['error']}")
    return d


def derived(row: dict) -> dict:
    """Inferences/s, per thousand LC, latency in ns at the median Fmax (when placed)."""
    if "fmax" not in row:
        return {}
    ips = row["fmax"] * 1e6 / row["cycles_per_inference"]
    return {"inferences_per_s": round(ips),
            "inferences_per_s_per_klc": round(ips / (row["lc"] / 1000)),
            "latency_ns": round(row["latency_cycles"] * 1e3 / row["fmax"], 1)}


def design_label(r: dict) -> str:
    if r["engine"] == "unrolled":
        return "unrolled"
    arrays = ", ".join(a.split("x", 1)[1] if a.startswith("1x") else a for a in r["arrays"])
    return f"arrays {arrays}, P={r['in_per_beat']}"


def markdown(rows: list[dict]) -> str:
    """One table per device."""
    head = ("| network | weights | accuracy | design | cycles / inference | LC (planner) | "
            "LUT4 | FF | DSP | BRAM | median MHz | inferences/s | per kLC | latency |")
    out = []
    for dev in dict.fromkeys(r["device"] for r in rows):
        lines = [f"{'UP5K' if dev == 'up5k' else 'LFE5U-85F'}:", "", head, "|" + "---|" * 14]
        for r in rows:
            if r["device"] != dev:
                continue
            x = r.get("derived", {})
            latency = f"{r['latency_cycles']} cycles" + (
                f", {x['latency_ns'] / 1000:.2f} µs" if x else "")
            lc = f"{r['lc']:,} ({r['estimated_logic']:,})" if r.get("lc") is not None else ""
            cells = [r["name"], r["schemes"], f"{100 * r['accuracy']:.2f}%", design_label(r),
                     f"{r['cycles_per_inference']:g}", lc, r.get("lut4", ""), r.get("ff", ""),
                     r.get("dsp", ""), r.get("bram", ""), r.get("fmax", r.get("error", "")),
                     f"{x['inferences_per_s']:,}" if x else "",
                     f"{x['inferences_per_s_per_klc']:,}" if x else "", latency]
            lines.append("| " + " | ".join(str(c) for c in cells) + " |")
        out.append("\n".join(lines) + "\n")
    return "\n".join(out)


def merged(rows: list[dict], kept: list[dict]) -> list[dict]:
    """The ``kept`` rows of an earlier run, each replaced by this run's row of the same
    network and device where there is one, then this run's other ``rows``; every device's
    rows together, in the order the devices first appear."""
    new = {(r["name"], r["device"]): r for r in rows}
    old = {(r["name"], r["device"]) for r in kept}
    every = [new.get((r["name"], r["device"]), r) for r in kept]
    every += [r for r in rows if (r["name"], r["device"]) not in old]
    devices = list(dict.fromkeys(r["device"] for r in every))
    return sorted(every, key=lambda r: devices.index(r["device"]))  # stable


def write(rows: list[dict], args, start: float, kept: list[dict] = ()) -> str:
    rows = merged(rows, list(kept))
    table = markdown(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    seeds = sorted({r.get("seeds", args.seeds) for r in rows})
    note = ("# The shipped digits networks at the planner's `--fit` choice\n\n"
            "Generated by `python benchmarks/network.py --seeds "
            f"{'/'.join(map(str, seeds))}` (each row's date in `network.json`), last on "
            f"{datetime.date.today().isoformat()}: for each device the "
            "design `rtl-gen synth --fit DEVICE` builds (`--engine auto`, no cycle "
            "counters); LC is iCE40 logic cells / ECP5 TRELLIS_COMB after packing of the "
            "bare network, the planner's estimate of the same count in parentheses; "
            "Fmax the "
            f"median of nextpnr seeds inside the flow's harness; cycles and "
            "latency from the cycle model; accuracy of the golden model on the 360 test "
            "images.\n\n")
    (args.out / "network.md").write_text(note + table)
    (args.out / "network.json").write_text(json.dumps(
        {"rows": rows, "seeds": args.seeds, "date": datetime.date.today().isoformat(),
         "tools": tool_versions(), "seconds": round(time.time() - start)}, indent=1) + "\n")
    return table


def earlier_rows(out: Path) -> list[dict]:
    """The rows of ``out/network.json`` (none when there is none), each with the run's
    seeds and date where the row does not say."""
    path = out / "network.json"
    if not path.exists():
        return []
    d = json.loads(path.read_text())
    return [{"seeds": d.get("seeds"), "date": d.get("date"), **r} for r in d["rows"]]


def verilog_top(net) -> str:
    from rtl_gen.tasks.common import verilog_top as top

    return top(net)


def refresh_estimates(kept: list[dict], schemes, devices, args, start: float) -> int:
    """``--estimates-only``: each recorded row of ``schemes`` on ``devices`` takes the
    planner's current estimate of its design; a row whose design is no longer the ``--fit``
    choice is left as it is and named (exit status 1: it needs a run)."""
    stale = []
    for row in kept:
        scheme = row["name"].removeprefix("digits-")
        if scheme not in schemes or row["device"] not in devices:
            continue
        net = read_bundle(WEIGHTS_DIR / row["name"])
        _, now = fit_design(net, row["device"])
        if design_label(now) != design_label(row):
            stale.append(f"{row['name']} on {row['device']}: --fit now chooses "
                         f"{design_label(now)}, the row measured {design_label(row)}")
            continue
        log(f"{row['name']} on {row['device']}: estimate {row['estimated_logic']} -> "
            f"{now['estimated_logic']} (synthesis {row.get('lc')})")
        row["estimated_logic"] = now["estimated_logic"]
        row["planner"] = now["planner"]
    print(write([], args, start, kept), end="")
    for line in stale:
        log(line)
    return 1 if stale else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schemes", default=",".join(SCHEMES),
                        help="comma-separated subset of " + ", ".join(SCHEMES))
    parser.add_argument("--devices", default=",".join(DEVICES),
                        help="comma-separated subset of " + ", ".join(DEVICES))
    parser.add_argument("--seeds", type=int, default=DEFAULT_SEEDS, metavar="N",
                        help=f"Fmax as the median over nextpnr seeds 1..N (default "
                        f"{DEFAULT_SEEDS})")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    parser.add_argument("--estimates-only", action="store_true",
                        help="no synthesis: the recorded rows of these networks and devices "
                        "get the planner's current estimate, where its --fit choice is still "
                        "the design they measured")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error(f"--seeds must be at least 1, not {args.seeds}")
    schemes = [s.strip() for s in args.schemes.split(",") if s.strip()]
    unknown = sorted(set(schemes) - set(SCHEMES))
    if unknown:
        parser.error(f"unknown scheme(s) {', '.join(unknown)}; expected some of "
                     f"{', '.join(SCHEMES)}")
    devices = [d.strip() for d in args.devices.split(",") if d.strip()]
    if not devices or set(devices) - set(DEVICES):
        parser.error(f"--devices must be some of {', '.join(DEVICES)}")
    start = time.time()
    rows: list[dict] = []
    kept = earlier_rows(args.out)
    if args.estimates_only:
        return refresh_estimates(kept, schemes, devices, args, start)
    nets = {}
    for dev in devices:  # every bundle on one device, then the next
        for scheme in schemes:
            if scheme not in nets:
                net = read_bundle(WEIGHTS_DIR / f"digits-{scheme}")
                nets[scheme] = net, accuracy(net)
            net, acc = nets[scheme]
            log(f"{net.name} on {dev}: planning and elaborating...")
            engine, row = fit_design(net, dev)
            top = verilog_top(net)
            verilog = component_verilog(engine, top)
            log(f"{net.name} on {dev}: {design_label(row)}, "
                f"{row['cycles_per_inference']:g} cycles per inference, latency "
                f"{row['latency_cycles']} cycles, estimated logic {row['estimated_logic']}")
            row = {"name": net.name, "schemes": "/".join(net.schemes), "accuracy": acc,
                   "device": dev, "seeds": args.seeds,
                   "date": datetime.date.today().isoformat(), **row,
                   **measure(verilog, top, dev, args.workdir, args.seeds)}
            row["derived"] = derived(row)
            rows.append(row)
            write(rows, args, start, kept)
    print(write(rows, args, start, kept), end="")
    log(f"{len(rows)} rows in {time.time() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
