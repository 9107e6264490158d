"""What the UART host link costs beside the network: iCE40 logic cells on the UP5K.

For each design (:data:`DESIGNS`: the digits binary network on the board's default arrays,
the ternary MNIST CNN (the one board builds take) folded for the iCEBreaker as ``rtl-gen build``
folds it, and the same CNN
on the planner's fastest UP5K folding for the network alone), synthesizes
the bare network engine and the same engine behind :class:`~rtl_gen.hw.hostlink.HostLinkCore`
(the board build's options: layer counters off, 30 or 24 MHz at the board's default baud)
with the project's flow (:func:`rtl_gen.flow.synth.synth`: Yosys, then nextpnr
``--pack-only``; results cached under ``build/flow``), one run at a time, and prints the
logic cells, flip-flops and block RAMs of both and the host link's share (the difference).
The packed count of the whole is not yet the placed one, but a design whose packed count
passes the device's 5,280 LC does not fit.

Run ``python benchmarks/hostlink_cost.py [--match TEXT] [--out DIR]``; it writes
``hostlink_cost.md`` and ``hostlink_cost.json`` into ``--out`` (default
``benchmarks/results``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from rtl_gen.bundle import read_bundle
from rtl_gen.flow.synth import component_verilog, synth
from rtl_gen.hw.hostlink import HostLinkCore
from rtl_gen.training.defaults import WEIGHTS_DIR

RESULTS = Path(__file__).parent / "results"

#: name -> (bundle, clock in MHz (the iCEBreaker's for such a network), whether the arrays
#: are the planner's fastest for the device without the host link's share kept free).
DESIGNS = {"digits-binary": ("digits-binary", 30.0, False),
           "mnist-cnn-ternary": ("mnist-cnn-ternary", 24.0, False),
           "mnist-cnn-ternary-fast": ("mnist-cnn-ternary", 24.0, True)}


def designs(match: str = ""):
    from boards import get_board
    from rtl_gen.flow.board import board_baud
    from rtl_gen.tasks import build as build_task

    board = get_board("icebreaker")
    for name, (bundle, mhz, fast) in DESIGNS.items():
        if match not in name:
            continue
        net = read_bundle(WEIGHTS_DIR / bundle)
        keep = dict(build_task.HOST_LINK_LOGIC)
        if fast:
            build_task.HOST_LINK_LOGIC.update(dict.fromkeys(keep, 0.0))
        try:
            arrays = build_task.board_arrays(net, board.device)
        finally:
            build_task.HOST_LINK_LOGIC.update(keep)
        baud = board_baud(board, mhz * 1e6)
        core = HostLinkCore.for_clock(net, arrays, clk_hz=mhz * 1e6, baud=baud,
                                      counters=False)
        top = name.replace("-", "_")
        yield name, {"bare": (component_verilog(core.plan.engine(), f"bare_{top}"),
                              f"bare_{top}"),
                     "hostlink": (component_verilog(core, f"link_{top}"), f"link_{top}")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--match", default="", help="only the designs whose name contains this")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    todo = list(designs(args.match))  # every Verilog text first, then the tools
    rows = []
    for name, parts in todo:
        row = {"design": name}
        for kind, (verilog, top) in parts.items():
            t0 = time.time()
            s = synth(verilog, top, "up5k")
            row[kind] = {"lc": s.logic_cells, "ff": s.ff, "bram": s.bram,
                         "seconds": round(time.time() - t0, 1)}
            print(f"{name} {kind}: {row[kind]}", flush=True)
        row["link_lc"] = row["hostlink"]["lc"] - row["bare"]["lc"]
        rows.append(row)
    lines = ["| design (UP5K) | network LC | behind the host link LC | host link LC | FF (link) "
             "| BRAM (link) |", "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['design']} | {r['bare']['lc']:,} | {r['hostlink']['lc']:,} | "
                     f"{r['link_lc']:,} | {r['hostlink']['ff'] - r['bare']['ff']:,} | "
                     f"{r['hostlink']['bram'] - r['bare']['bram']} |")
    table = "\n".join(lines) + "\n"
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "hostlink_cost.md").write_text(table)
    (args.out / "hostlink_cost.json").write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
