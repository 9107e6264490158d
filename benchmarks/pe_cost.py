"""Cost of every processing element on the iCE40 UP5K and the ECP5 LFE5U-85F.

Each unit (:class:`rtl_gen.hw.pe.DotProductUnit`) is built at 8-bit unsigned activations
(and 4-bit weights where the scheme has a width), with the PE's own registered inputs and no
extra pipeline stages, and its accumulator sized by the numerics rule
(:func:`rtl_gen.numerics.acc_bits`) for ``lanes * depth`` products; ``depth`` is the largest
power of two whose accumulator is at most 24 bits, so every unit carries a 24-bit
accumulator, as the targets do.  For each unit and device:

* cell counts from Yosys (``synth_ice40 -dsp`` / ``synth_ecp5``) of the bare unit, and the
  iCE40 logic cells (LC: a LUT4 with its FF and carry) from nextpnr ``--pack-only``;
* Fmax from nextpnr (seed 1, ``--freq 100`` iCE40, ``--freq 250`` ECP5) of the unit inside
  the flow's harness (a shift register feeding every input bit, a signature register
  folding every output bit; see :mod:`rtl_gen.flow.synth`).

The targets are plain Yosys inference of the same arithmetic (registered inputs, 24-bit
accumulator) on the UP5K; "vs target" gives our LC and Fmax relative to them (negative LC
and positive MHz are better).  The ``*-yosys`` rows are that kind of reference built here:
the ``int`` unit's ``*`` (``multiplier="dsp"``) synthesised with DSP inference off
(``synth_ice40`` without ``-dsp``, ``synth_ecp5 -nodsp``), i.e. Yosys's own LUT multiplier.

Every registered PE kind (:mod:`rtl_gen.hw.pes`) is measured: one that ``UNITS`` does not
name gets a generated row at 8-bit activations and the weight width nearest 4.

Run ``python benchmarks/pe_cost.py [--jobs N] [--kinds int8-lut,xnor-x64] [--out DIR]``;
it prints a Markdown table and writes ``pe_cost.md`` and ``pe_cost.json`` into ``--out``
(default ``benchmarks/results``).  Builds are cached under ``build/flow``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import json
import platform
import sys
import time
from pathlib import Path

from tqdm import tqdm

from rtl_gen.devices import get_device
from rtl_gen.flow.synth import (
    DEFAULT_WORKDIR,
    FlowError,
    component_verilog,
    place_and_route,
    synth,
    tool_versions,
)
from rtl_gen.hw import pes
from rtl_gen.hw.pe import MAX_DEPTH, DotProductUnit, PEConfig

RESULTS = Path(__file__).parent / "results"
DEVICES = ("up5k", "ecp5-85f")
ACC_BITS = 24
REFERENCE = "int8-lut"


@dataclasses.dataclass(frozen=True)
class Unit:
    """One measured configuration: a label, its PE config, and the UP5K target if any."""

    label: str
    what: str
    config: PEConfig
    target_lc: int | None = None
    target_mhz: float | None = None
    #: Let Yosys use hard multipliers (off for the plain-inference reference rows).
    dsp: bool = True


def _sized(kind: str, w_bits: int, a_bits: int, lanes: int = 1, **kw) -> PEConfig:
    """The config with the largest power-of-two depth whose accumulator is <= 24 bits (at
    most :data:`~rtl_gen.hw.pe.MAX_DEPTH`)."""
    depth = 1
    while depth * 2 <= MAX_DEPTH and PEConfig(
            kind=kind, w_bits=w_bits, a_bits=a_bits, lanes=lanes, depth=depth * 2,
            **kw).acc_bits <= ACC_BITS:
        depth *= 2
    return PEConfig(kind=kind, w_bits=w_bits, a_bits=a_bits, lanes=lanes, depth=depth, **kw)


UNITS = (
    Unit("binary", "binary weight x int8 activation (sign select)", _sized("binary", 1, 8)),
    Unit("ternary", "ternary weight (add / subtract / skip)", _sized("ternary", 2, 8),
         87, 53),
    Unit("pot4", "4-bit power of two (shift + negate)", _sized("pot", 4, 8), 129, 41),
    Unit("apot4", "4-bit APoT, two terms (two shifts + adder)", _sized("apot", 4, 8),
         179, 30),
    Unit("int4-lut", "int4 weight, shift-add multiplier in LUTs", _sized("int", 4, 8)),
    Unit("int8-lut", "int8 MAC, shift-add multiplier in LUTs", _sized("int", 8, 8), 215, 32),
    Unit("int8-dsp", "int8 MAC, `*` inferred as a DSP",
         _sized("int", 8, 8, multiplier="dsp")),
    Unit("int8-yosys", "reference: int8 MAC, `*` mapped to LUTs by Yosys (DSP inference off)",
         _sized("int", 8, 8, multiplier="dsp"), 215, 32, dsp=False),
    Unit("int4-yosys", "reference: int4 weight, `*` mapped to LUTs by Yosys",
         _sized("int", 4, 8, multiplier="dsp"), dsp=False),
    Unit("bitplane", "bit-plane (EBS), up to 8x8 precision, 64 cycles/vector",
         _sized("bitplane", 8, 8)),
    Unit("xnor-x64", "64-lane XNOR-popcount (binary x binary)", _sized("xnor", 1, 1, 64),
         344, 29),
    Unit("binary-x16", "16-lane binary weights x int8", _sized("binary", 1, 8, 16)),
    Unit("ternary-x16", "16-lane ternary weights x int8", _sized("ternary", 2, 8, 16)),
    Unit("pot4-x16", "16-lane PoT4 weights x int8", _sized("pot", 4, 8, 16)),
    Unit("int8-lut-p1", "int8 LUT MAC with a product register", _sized("int", 8, 8,
                                                                       pipeline=1)),
    Unit("xnor-x64-p2", "64-lane XNOR-popcount, two pipeline stages",
         _sized("xnor", 1, 1, 64, pipeline=2)),
)


def _default_unit(kind: str) -> Unit:
    """A registered kind that UNITS does not name: 8-bit activations (or the kind's widest),
    4-bit weights where it has a width (else its nearest)."""
    k = pes.get(kind)
    w_bits = min(k.widths(), key=lambda b: (abs(b - 4), b))
    return Unit(kind, f"{kind} (every registered kind is measured)",
                _sized(kind, w_bits, min(8, max(k.a_widths()))))


UNITS += tuple(_default_unit(kind) for kind in pes.kinds()
               if kind not in {u.config.kind for u in UNITS})


def measure(unit: Unit, verilog: str, device: str, workdir: Path) -> dict:
    """Synthesis and harnessed place-and-route of one unit on one device."""
    top = unit.config.name
    try:
        s = synth(verilog, top, device, workdir=workdir, dsp=unit.dsp)
    except FlowError as e:
        return {"error": f"synthesis: {e}"}
    row = {"lut4": s.lut4, "carry": s.carry, "ff": s.ff, "dsp": s.dsp, "bram": s.bram,
           "lc": s.logic_cells, "cells": s.cells}
    try:
        r = place_and_route(verilog, top, device, workdir=workdir, dsp=unit.dsp)
        row["fmax_mhz"] = round(r.fmax, 2)
        row["harnessed_utilisation"] = {k: v[0] for k, v in r.utilisation.items()}
    except FlowError as e:
        row["error"] = f"place and route: {e}"
    return row


def _pct(ours: float, target: float) -> str:
    return f"{(ours - target) / target * 100:+.0f}%"


def markdown(units: list[Unit], results: dict) -> str:
    ref = results.get(REFERENCE, {}).get("up5k", {}).get("lc")
    head = ("| unit | lanes | acc | iCE40 LC | LUT4 | carry | FF | DSP | UP5K MHz "
            "| target (LC @ MHz) | vs target (LC, MHz) | LC / int8 LUT MAC "
            "| ECP5 LUT4 | CCU2C | FF | DSP | 85F MHz |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for u in units:
        ice, ecp = results[u.label]["up5k"], results[u.label]["ecp5-85f"]

        def cell(row, key, fmt="{}"):
            v = row.get(key)
            return "error" if v is None else fmt.format(v)

        target = vs = ""
        if u.target_lc is not None:
            target = f"{u.target_lc} @ {u.target_mhz:g}"
            if ice.get("lc") is not None and ice.get("fmax_mhz") is not None:
                vs = f"{_pct(ice['lc'], u.target_lc)}, {_pct(ice['fmax_mhz'], u.target_mhz)}"
        ratio = f"{ice['lc'] / ref:.2f}" if ref and ice.get("lc") is not None else ""
        c = u.config
        lines.append(
            f"| {u.label} | {c.lanes} | {c.acc_bits} | {cell(ice, 'lc')} | "
            f"{cell(ice, 'lut4')} | {cell(ice, 'carry')} | {cell(ice, 'ff')} | "
            f"{cell(ice, 'dsp')} | {cell(ice, 'fmax_mhz', '{:.1f}')} | {target} | {vs} | "
            f"{ratio} | {cell(ecp, 'lut4')} | {cell(ecp, 'carry')} | {cell(ecp, 'ff')} | "
            f"{cell(ecp, 'dsp')} | {cell(ecp, 'fmax_mhz', '{:.1f}')} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=RESULTS,
                        help="folder for pe_cost.md and pe_cost.json (default: %(default)s)")
    parser.add_argument("--kinds", default=None,
                        help="comma-separated unit labels to run (default: all): "
                             + ", ".join(u.label for u in UNITS))
    parser.add_argument("--jobs", type=int, default=1,
                        help="synthesis / place-and-route runs in parallel (default: 1)")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR,
                        help="flow build and cache folder (default: %(default)s)")
    args = parser.parse_args(argv)
    units = list(UNITS)
    if args.kinds:
        wanted = [k.strip() for k in args.kinds.split(",") if k.strip()]
        unknown = sorted(set(wanted) - {u.label for u in UNITS})
        if unknown:
            parser.error(f"unknown unit(s) {', '.join(unknown)}; expected some of "
                         + ", ".join(u.label for u in UNITS))
        units = [u for u in UNITS if u.label in wanted]

    start = time.monotonic()
    verilog = {u.label: component_verilog(DotProductUnit(u.config), u.config.name)
               for u in units}
    results: dict[str, dict] = {u.label: {} for u in units}
    tasks = [(u, d) for u in units for d in DEVICES]
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = {pool.submit(measure, u, verilog[u.label], d, args.workdir): (u, d)
                   for u, d in tasks}
        for fut in tqdm(concurrent.futures.as_completed(futures), total=len(futures),
                        desc="pe_cost", unit="run", file=sys.stderr):
            u, d = futures[fut]
            results[u.label][d] = fut.result()
    elapsed = time.monotonic() - start

    table = markdown(units, results)
    print(table)
    failed = [f"{label} on {d}: {row['error']}" for label, rows in results.items()
              for d, row in rows.items() if "error" in row]
    for line in failed:
        print(f"FAILED {line}", file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    header = (
        "# PE cost: Yosys cells (bare unit), nextpnr Fmax (harnessed), UP5K and LFE5U-85F\n\n"
        "Generated by `python benchmarks/pe_cost.py`; 8-bit unsigned activations, 4-bit "
        "weights where the scheme has a width, registered inputs, no extra pipeline stage "
        "unless `-pN`, accumulator 24 bits (depth = largest power of two that keeps it "
        "there). LC = iCE40 logic cells after nextpnr packing; Fmax from nextpnr seed 1 "
        "inside a shift-register / signature-register harness. Targets: plain Yosys "
        "inference of the same arithmetic on the UP5K; negative LC and positive MHz beat "
        "them. `*-yosys` rows: the int unit's `*` with DSP inference off (Yosys's own LUT "
        "multiplier), the reference the targets describe. ECP5 CCU2C cells hold two bits of "
        "carry chain each.\n\n")
    (args.out / "pe_cost.md").write_text(header + table)
    payload = {
        "tools": tool_versions(),
        "python": platform.python_version(),
        "elapsed_s": round(elapsed, 1),
        "jobs": args.jobs,
        "units": [{
            "label": u.label, "what": u.what, "config": {
                k: v for k, v in dataclasses.asdict(u.config).items()},
            "name": u.config.name, "acc_bits": u.config.acc_bits, "dsp_inference": u.dsp,
            "target": None if u.target_lc is None else
            {"device": "up5k", "lc": u.target_lc, "fmax_mhz": u.target_mhz},
            "results": {d: {"device": get_device(d).name, **results[u.label][d]}
                        for d in DEVICES},
        } for u in units],
    }
    (args.out / "pe_cost.json").write_text(json.dumps(payload, indent=1) + "\n")
    print(f"{len(tasks)} runs in {elapsed:.0f} s; wrote {args.out / 'pe_cost.md'} and "
          f"{args.out / 'pe_cost.json'}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
