"""The digits network in every scheme: cycles, utilization, resources and Fmax per device.

For each shipped bundle (and a mixed-precision one: APoT4 then ternary), the network is
generated with the default arrays (:func:`rtl_gen.hw.network.default_array`: one row, i.e.
batch 1; eight columns; four lanes per PE for binary and ternary), and measured:

* cycles per inference and per-layer utilization from the cycle model
  (:class:`rtl_gen.design.golden.LayerTiming`), which the cocotb tests hold the hardware to
  exactly, layer by layer; ``--simulate N`` also runs ``N`` test images through the Verilog
  and reports the measured cycles per inference next to the model's;
* the largest layer's achieved multiply-accumulates per cycle over the array's peak;
* Yosys cells (LUT4, carry, FF, DSP, BRAM; iCE40 logic cells after packing) on the UP5K and
  the LFE5U-85F, and nextpnr Fmax of the network inside the flow's harness: the median over
  nextpnr seeds 1..N (``--seeds N``, default 5; :func:`rtl_gen.flow.place_and_route_seeds`),
  each seed's kept in the JSON;
* inferences per second at that Fmax.

Run ``python benchmarks/network.py [--jobs N] [--schemes int8,ternary] [--simulate N]
[--seeds N] [--out DIR]``: it prints a Markdown table and writes ``network.md`` and
``network.json`` into ``--out`` (default ``benchmarks/results``).  Builds are cached under
``build/flow``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import sys
import time
from pathlib import Path

from tqdm import tqdm

from rtl_gen.bundle import read_bundle
from rtl_gen.flow.synth import (
    DEFAULT_SEEDS,
    DEFAULT_WORKDIR,
    FlowError,
    component_verilog,
    place_and_route_seeds,
    synth,
    tool_versions,
)
from rtl_gen.hw.network import NetworkEngine
from rtl_gen.training.defaults import FLOAT_MODEL_NAME, WEIGHTS_DIR

RESULTS = Path(__file__).parent / "results"
DEVICES = ("up5k", "ecp5-85f")
SCHEMES = ("binary", "ternary", "pot4", "apot4", "int4", "int8", "mixed")


def load(scheme: str):
    if scheme == "mixed":
        from rtl_gen.training.float_model import load_float_model
        from rtl_gen.training.quantize import quantize_mlp
        model = load_float_model(WEIGHTS_DIR / FLOAT_MODEL_NAME)
        return quantize_mlp(model, ["apot4", "ternary"], name="digits-mixed")
    return read_bundle(WEIGHTS_DIR / f"digits-{scheme}")


def measure(verilog: str, top: str, device: str, workdir: Path,
            seeds: int = DEFAULT_SEEDS) -> dict:
    """Resources, and Fmax as the median over nextpnr seeds ``1..seeds`` (each one too)."""
    try:
        stats = synth(verilog, top, device, workdir=workdir)
        sweep = place_and_route_seeds(verilog, top, device, workdir=workdir, seeds=seeds)
        row = {"lc": stats.logic_cells, "lut4": stats.lut4, "carry": stats.carry,
               "ff": stats.ff, "dsp": stats.dsp, "bram": stats.bram,
               "fmax": round(sweep.fmax, 1),
               "fmax_seeds": [round(f, 2) for f in sweep.fmax_per_seed]}
        note = stats.note or sweep.note
        if note:
            row["note"] = note
        return row
    except FlowError as e:
        return {"error": str(e).splitlines()[0]}


def simulate(net, images: int) -> dict:
    from rtl_gen.data.digits import digits
    from sim.verify import verify_network
    _, test = digits()
    r = verify_network(net, test.x_int[:images])
    return {"images": r["images"], "cycles": r["cycles"],
            "cycles_per_inference": round(r["cycles"] / r["images"], 1)}


def markdown(rows: list[dict]) -> str:
    head = ("| network | weights | cycles / inference (model) | measured | largest layer "
            "utilization | UP5K LC | LUT4 | FF | DSP | BRAM | MHz | inferences/s | "
            "ECP5 LUT4 | FF | DSP | BRAM | MHz | inferences/s |")
    lines = [head, "|" + "---|" * 18]
    for r in rows:
        cells = [r["name"], r["schemes"], f"{r['cycles_per_inference']:.1f}",
                 r.get("measured", ""), f"{100 * r['largest_utilization']:.1f}%"]
        for dev in DEVICES:
            d = r[dev]
            if "error" in d:
                cells += [d["error"]] + [""] * (6 if dev == "up5k" else 4)
                continue
            ips = d["fmax"] * 1e6 / r["cycles_per_inference"]
            if dev == "up5k":
                cells += [d["lc"], d["lut4"], d["ff"], d["dsp"], d["bram"], d["fmax"],
                          f"{ips:,.0f}"]
            else:
                cells += [d["lut4"], d["ff"], d["dsp"], d["bram"], d["fmax"], f"{ips:,.0f}"]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schemes", default=",".join(SCHEMES),
                        help="comma-separated subset of " + ", ".join(SCHEMES))
    parser.add_argument("--jobs", type=int, default=1, help="parallel tool runs")
    parser.add_argument("--simulate", type=int, default=0, metavar="N",
                        help="also run N test images through the Verilog (cocotb)")
    parser.add_argument("--seeds", type=int, default=DEFAULT_SEEDS, metavar="N",
                        help=f"Fmax as the median over nextpnr seeds 1..N (default "
                        f"{DEFAULT_SEEDS})")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error(f"--seeds must be at least 1, not {args.seeds}")
    schemes = [s.strip() for s in args.schemes.split(",") if s.strip()]
    unknown = sorted(set(schemes) - set(SCHEMES))
    if unknown:
        parser.error(f"unknown scheme(s) {', '.join(unknown)}; expected some of "
                     f"{', '.join(SCHEMES)}")
    start = time.time()
    rows, jobs = [], {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for scheme in schemes:
            net = load(scheme)
            engine = NetworkEngine(net)
            top = f"net_{net.name}".replace("-", "_")
            verilog = component_verilog(engine, top)
            largest = max(engine.timings, key=lambda t: t.macs)
            row = {"name": net.name, "schemes": "/".join(net.schemes),
                   "arrays": [f"{a.rows}x{a.cols}x{a.lanes}" for a in engine.arrays],
                   "layer_cycles": [t.batch_cycles for t in engine.timings],
                   "interval": engine.interval,
                   "cycles_per_inference": engine.interval / engine.rows,
                   "largest_utilization": largest.utilization}
            if args.simulate:
                row["simulated"] = simulate(net, args.simulate)
                row["measured"] = row["simulated"]["cycles_per_inference"]
            rows.append(row)
            for dev in DEVICES:
                jobs[pool.submit(measure, verilog, top, dev, args.workdir, args.seeds)] = (row, dev)
        for fut in tqdm(concurrent.futures.as_completed(jobs), total=len(jobs),
                        desc="synthesis and place-and-route", file=sys.stderr):
            row, dev = jobs[fut]
            row[dev] = fut.result()
    table = markdown(rows)
    print(table, end="")
    args.out.mkdir(parents=True, exist_ok=True)
    note = ("# The digits network: cycles, utilization, resources, Fmax\n\n"
            "Generated by `python benchmarks/network.py`; default arrays (batch 1, 8 "
            "columns, 4 lanes for binary/ternary); cycles from the cycle model that the "
            "cocotb tests hold every layer to; \"measured\" is the simulated Verilog's "
            "cycles per image over the images run (pipeline fill included); Fmax the "
            f"median of nextpnr seeds 1..{args.seeds} inside the flow's harness.\n\n")
    (args.out / "network.md").write_text(note + table)
    (args.out / "network.json").write_text(json.dumps(
        {"rows": rows, "tools": tool_versions(), "seconds": round(time.time() - start)},
        indent=1) + "\n")
    print(f"\n{len(rows)} networks in {time.time() - start:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
