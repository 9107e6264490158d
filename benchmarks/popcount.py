"""Popcount cost on the iCE40 UP5K and the ECP5: Yosys's own mapping of ``sum(bits)`` against
:func:`rtl_gen.hw.popcount.popcount`.

For each ``N`` and each of three inputs (``plain``: the bits themselves; ``xor``: ``x[i] ^
w[i]``, the XNOR/XOR-popcount of the binary PEs; ``and``: ``x[i] & w[i]``, the bit-plane PE)
the bare combinational unit is synthesised (``synth_ice40``, ``synth_ecp5``) and packed
(nextpnr ``--pack-only``): LUT4s, carry cells and logic cells (LC), also per lane (one
counted bit).  LUT4 per input bit: iCE40 ``SB_LUT4`` (every carry-chain cell holds one) /
ECP5 ``LUT4`` plus two per ``CCU2C`` (one per chained bit), i.e. every LUT4 of the fabric.
``tree-ecp5`` is the tree in ECP5 carry cells (``fabric="ecp5"``: ``CCU2C`` primitives whose
LUTs absorb the raw bits, ``x ^ w`` included; ECP5 only).
``--leaves 2,6,7`` also builds trees whose leaves are other column compressors (the
``leaf`` argument: half adders, 6:3 and 7:3 counters in LUT logic), to compare.  With
``--fmax`` the ``N = 64`` units are placed and routed inside the flow's shift-register
harness on both devices, combinational and pipelined (``stages=2``).

Run ``python benchmarks/popcount.py [--fmax] [--leaves 2,6,7] [--sizes 64 256]``; it prints
a Markdown table and the LUT4-per-input-bit summary of the XOR-popcount at 64 and 256 bits,
and writes ``benchmarks/results/popcount.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rtl_gen.flow.synth import component_verilog, place_and_route, synth
from rtl_gen.hw.popcount import TREE_MIN_BITS, popcount

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
    top = f"pc_{build}_{inputs}_{n}".replace("-", "_")
    kind = "naive" if build == "naive" else "tree"
    verilog = component_verilog(PopcountBench(n, build=kind, inputs=inputs, **kw), top)
    # ECP5 primitives (fabric="ecp5") map on the ECP5 only
    devices = (("ecp5-85f", "ecp5_"),) if kw.get("fabric") == "ecp5" else \
        (("up5k", ""), ("ecp5-85f", "ecp5_"))
    row = {"n": n, "build": build, "inputs": inputs}
    for dev, pre in devices:
        stats = synth(verilog, top, dev)
        row.update({f"{pre}lut4": stats.lut4, f"{pre}carry": stats.carry,
                    f"{pre}lc": stats.logic_cells})
    if fmax:
        # combinational: harness shift register -> popcount -> harness signature register
        for dev, pre in devices:
            row[f"{pre}fmax_mhz"] = round(place_and_route(verilog, top, dev).fmax, 1)
        if kind == "tree":
            comp = PopcountBench(n, build=kind, inputs=inputs, stages=PIPELINED_STAGES, **kw)
            pv = component_verilog(comp, top + "_p")
            for dev, pre in devices:
                row[f"{pre}fmax_pipelined_mhz"] = round(
                    place_and_route(pv, top + "_p", dev).fmax, 1)
    return row


def lut4_per_bit(r: dict) -> tuple[float | None, float]:
    """(iCE40, ECP5) LUT4 per counted bit: every LUT4 of the fabric, chained ones too
    (iCE40 ``SB_LUT4``; ECP5 ``LUT4`` + 2 per ``CCU2C``)."""
    ice = r["lut4"] / r["n"] if "lut4" in r else None
    return ice, (r["ecp5_lut4"] + 2 * r["ecp5_carry"]) / r["n"]


def _f(v, fmt: str = "") -> str:
    return "–" if v is None else format(v, fmt)


def table(rows: list[dict]) -> str:
    by = {(r["n"], r["inputs"], r["build"]): r for r in rows}
    builds = sorted({r["build"] for r in rows} - {"naive"})
    lines = ["| N | input | build | UP5K LUT4 / carry / LC | LUT4 per lane | / `sum` LC "
             "| ECP5 LUT4 / CCU2C / comb | ECP5 LUT4 per lane | / `sum` comb "
             "| Fmax UP5K / ECP5 (MHz) |",
             "|---:|:---|:---|---:|---:|---:|---:|---:|---:|---:|"]
    for n, inputs in sorted({(r["n"], r["inputs"]) for r in rows},
                            key=lambda k: (INPUTS.index(k[1]), k[0])):
        a = by[(n, inputs, "naive")]
        for build in ["naive", *builds]:
            b = by.get((n, inputs, build))
            if b is None:
                continue
            ice, ecp = lut4_per_bit(b)
            f = ""
            if "ecp5_fmax_mhz" in b:
                f = f"{_f(b.get('fmax_mhz'))} / {b['ecp5_fmax_mhz']}"
                if "ecp5_fmax_pipelined_mhz" in b:
                    f += (f" (stages={PIPELINED_STAGES}: {_f(b.get('fmax_pipelined_mhz'))} / "
                          f"{b['ecp5_fmax_pipelined_mhz']})")
            name = "Yosys `sum`" if build == "naive" else build
            ice40 = (f"{b['lut4']} / {b['carry']} / {b['lc']}" if "lut4" in b else "–")
            ratio = f"{b['lc'] / a['lc']:.2f}" if "lc" in b else "–"
            lines.append(
                f"| {n} | {inputs} | {name} | {ice40} | {_f(ice, '.2f')} | {ratio} "
                f"| {b['ecp5_lut4']} / {b['ecp5_carry']} / {b['ecp5_lc']} | {ecp:.2f} "
                f"| {b['ecp5_lc'] / a['ecp5_lc']:.2f} | {f} |")
    return "\n".join(lines)


def summary(rows: list[dict]) -> list[dict]:
    """The XOR-popcount's LUT4 per input bit at 64 and 256 bits, per build and device."""
    out = []
    for r in rows:
        if r["inputs"] == "xor" and r["n"] in (64, 256):
            ice, ecp = lut4_per_bit(r)
            out.append({"n": r["n"], "build": r["build"],
                        "up5k_lut4_per_bit": None if ice is None else round(ice, 3),
                        "ecp5_lut4_per_bit": round(ecp, 3),
                        "ecp5_comb_per_bit": round(r["ecp5_lc"] / r["n"], 3)})
    return out


def summary_table(summ: list[dict]) -> str:
    lines = ["| XOR-popcount | build | UP5K LUT4 / bit | ECP5 LUT4 / bit | ECP5 comb / bit |",
             "|---:|:---|---:|---:|---:|"]
    for r in summ:
        name = "Yosys `sum`" if r["build"] == "naive" else r["build"]
        lines.append(f"| {r['n']} bits | {name} | {_f(r['up5k_lut4_per_bit'], '.2f')} "
                     f"| {r['ecp5_lut4_per_bit']:.2f} | {r['ecp5_comb_per_bit']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fmax", action="store_true", help="place and route N = 64")
    parser.add_argument("--sizes", type=int, nargs="*", default=list(SIZES))
    parser.add_argument("--inputs", default=",".join(INPUTS),
                        help="comma-separated subset of " + ", ".join(INPUTS))
    parser.add_argument("--leaves", default="",
                        help="also trees with these leaf sizes, e.g. 2,6,7")
    args = parser.parse_args(argv)
    inputs = [i for i in args.inputs.split(",") if i]
    if set(inputs) - set(INPUTS):
        parser.error(f"--inputs must be some of {', '.join(INPUTS)}")
    leaves = [int(v) for v in args.leaves.split(",") if v]
    builds = [("naive", {}), ("tree", {}), ("tree-ecp5", {"fabric": "ecp5"})] + \
        [(f"tree-leaf{v}", {"leaf": v}) for v in leaves]
    rows = []
    for inp in inputs:
        for n in args.sizes:
            for build, kw in builds:
                if build != "naive" and n < TREE_MIN_BITS and kw:
                    continue  # method="auto" is Yosys's sum there: no tree to vary
                rows.append(measure(n, build, inp, fmax=args.fmax and n == 64, **kw))
    md = table(rows)
    summ = summary(rows)
    print(md)
    if summ:
        print()
        print(summary_table(summ))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "popcount.md").write_text(
        "# Popcount: Yosys's mapping of `sum(bits)` against `rtl_gen.hw.popcount`\n\n"
        "Generated by `python benchmarks/popcount.py --fmax`.  Bare combinational units; "
        "`synth_ice40` / `synth_ecp5` then nextpnr `--pack-only` (LC = iCE40 logic cells, "
        "ECP5 comb = `TRELLIS_COMB`).  Ours is `popcount(method=\"auto\")`: Yosys's own "
        "`sum` below `TREE_MIN_BITS` = 20 bits, the stitched tree from there; `tree-ecp5` "
        "the tree in ECP5 `CCU2C` cells (`fabric=\"ecp5\"`, ECP5 only); `tree-leafL` "
        "the tree with `leaf=L`.  A lane is one counted bit (`xor`/`and` lanes take two "
        "input bits each: `x[i] ^ w[i]`, `x[i] & w[i]`); LUT4 per lane counts every LUT4 "
        "(ECP5: `LUT4` + 2 per `CCU2C`).  Fmax (N = 64): place and route in the flow's "
        "shift-register harness, combinational and with "
        f"`stages={PIPELINED_STAGES}`.\n\n" + md + "\n\n" + summary_table(summ) + "\n")
    (RESULTS / "popcount.json").write_text(
        json.dumps({"rows": rows, "xor_lut4_per_bit": summ}, indent=1) + "\n")


if __name__ == "__main__":
    main()
