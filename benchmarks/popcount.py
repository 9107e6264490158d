"""Popcount cost on the iCE40 UP5K: Yosys's own mapping of ``sum(bits)`` against
:func:`rtl_gen.hw.popcount.popcount`.

For each ``N`` and each of three inputs (``plain``: the bits themselves; ``xor``: ``x[i] ^
w[i]``, the XNOR/XOR-popcount of the binary PEs; ``and``: ``x[i] & w[i]``, the bit-plane PE)
the bare combinational unit is synthesised (``synth_ice40``) and packed (nextpnr
``--pack-only``): LUT4s, ``SB_CARRY`` cells and logic cells (LC), also per lane.  With
``--fmax`` the ``N = 64`` units are placed and routed inside the flow's shift-register
harness for their Fmax.

Run ``python benchmarks/popcount.py [--fmax]``; it prints a Markdown table and writes
``benchmarks/results/popcount.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rtl_gen.flow.synth import component_verilog, place_and_route, synth
from rtl_gen.hw.popcount import popcount

RESULTS = Path(__file__).parent / "results"
SIZES = (6, 16, 20, 32, 64, 100, 256)
#: Pipeline registers of the ``--fmax`` pipelined run (ours only; Yosys's ``sum`` has no
#: levels to put them between).
PIPELINED_STAGES = 2
INPUTS = ("plain", "xor", "and")


class PopcountBench(wiring.Component):
    """``o = popcount(f(x, w))`` built either way (``tree``: ours, ``naive``: ``sum``)."""

    def __init__(self, n: int, *, build: str, inputs: str, stages: int = 0, **kw):
        self.n, self.build, self.inputs, self.stages, self.kw = n, build, inputs, stages, kw
        ports = {"x": In(n), "o": Out(range(n + 1))}
        if inputs != "plain":
            ports["w"] = In(n)
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        if self.inputs == "plain":
            bits = [self.x[i] for i in range(self.n)]
        elif self.inputs == "xor":
            bits = [self.x[i] ^ self.w[i] for i in range(self.n)]
        else:
            bits = [self.x[i] & self.w[i] for i in range(self.n)]
        if self.build == "naive":
            count = sum(b.as_unsigned() for b in bits)
            for _ in range(self.stages):
                reg = Signal(len(count), reset_less=True)
                m.d.sync += reg.eq(count)
                count = reg
        else:
            count = popcount(m, bits, stages=self.stages, **self.kw)
        m.d.comb += self.o.eq(count)
        return m


def measure(n: int, build: str, inputs: str, *, fmax: bool = False, **kw) -> dict:
    top = f"pc_{build}_{inputs}_{n}"
    verilog = component_verilog(PopcountBench(n, build=build, inputs=inputs, **kw), top)
    stats = synth(verilog, top, "up5k")
    ecp5 = synth(verilog, top, "ecp5-85f")
    row = {"n": n, "build": build, "inputs": inputs, "lut4": stats.lut4,
           "carry": stats.carry, "lc": stats.logic_cells, "ecp5_comb": ecp5.logic_cells}
    if fmax:
        # combinational: harness shift register -> popcount -> harness signature register
        row["fmax_mhz"] = round(place_and_route(verilog, top, "up5k").fmax, 1)
        if build == "tree":
            comp = PopcountBench(n, build=build, inputs=inputs, stages=PIPELINED_STAGES, **kw)
            verilog = component_verilog(comp, top + "_p")
            row["fmax_pipelined_mhz"] = round(
                place_and_route(verilog, top + "_p", "up5k").fmax, 1)
    return row


def table(rows: list[dict]) -> str:
    by = {(r["n"], r["inputs"], r["build"]): r for r in rows}
    lines = ["| N | input | Yosys `sum`: LUT4 / carry / LC | ours: LUT4 / carry / LC "
             "| LUT4 per lane | LC per lane | ours / `sum` LC | ECP5 comb | Fmax (MHz) |",
             "|---:|:---|---:|---:|---:|---:|---:|---:|---:|"]
    for n, inputs in sorted({(r["n"], r["inputs"]) for r in rows},
                            key=lambda k: (INPUTS.index(k[1]), k[0])):
        a, b = by[(n, inputs, "naive")], by[(n, inputs, "tree")]
        f = (f"{a['fmax_mhz']} → {b['fmax_mhz']} ({b['fmax_pipelined_mhz']})"
             if "fmax_mhz" in a else "")
        lines.append(
            f"| {n} | {inputs} | {a['lut4']} / {a['carry']} / {a['lc']} "
            f"| {b['lut4']} / {b['carry']} / {b['lc']} "
            f"| {a['lut4'] / n:.2f} → {b['lut4'] / n:.2f} "
            f"| {a['lc'] / n:.2f} → {b['lc'] / n:.2f} | {b['lc'] / a['lc']:.2f} "
            f"| {a['ecp5_comb']} → {b['ecp5_comb']} | {f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fmax", action="store_true", help="place and route N = 64")
    parser.add_argument("--sizes", type=int, nargs="*", default=list(SIZES))
    args = parser.parse_args(argv)
    rows = [measure(n, build, inputs, fmax=args.fmax and n == 64)
            for inputs in INPUTS for n in args.sizes for build in ("naive", "tree")]
    md = table(rows)
    print(md)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "popcount.md").write_text(
        "# Popcount: Yosys's mapping of `sum(bits)` against `rtl_gen.hw.popcount`\n\n"
        "Generated by `python benchmarks/popcount.py --fmax`.  Bare combinational units; "
        "`synth_ice40` then nextpnr `--pack-only` on the UP5K (LC = logic cells), and "
        "`synth_ecp5` + pack for the ECP5 column (`TRELLIS_COMB`).  Ours is "
        "`popcount(method=\"auto\")`: Yosys's own `sum` below "
        "`TREE_MIN_BITS` = 20 bits, the stitched tree from there.  A lane is one counted bit "
        "(`xor`/`and` lanes take two input bits each: `x[i] ^ w[i]`, `x[i] & w[i]`).  "
        f"Fmax (N = 64): UP5K place and route in the flow's shift-register harness, "
        f"combinational `sum` → ours (ours with `stages={PIPELINED_STAGES}`).\n\n"
        + md + "\n")
    (RESULTS / "popcount.json").write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
