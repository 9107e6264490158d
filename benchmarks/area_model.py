"""The area model (:mod:`rtl_gen.design.area`) against synthesis: estimate vs actual.

Synthesizes a set of digits networks on chosen per-layer arrays (:data:`CONFIGS`: the shipped
bundles on their default arrays, and smaller, larger, wider and batched foldings) for the
UP5K and the LFE5U-85F with the project's flow (:func:`rtl_gen.flow.synth.synth`: Yosys, then
nextpnr ``--pack-only``; results cached under ``build/flow``), one run at a time, and prints
the model's estimate next to each result: iCE40 logic cells / ECP5 LUT4 slices, flip-flops,
DSP blocks and block RAMs, with the logic estimate's error in percent.

``--refit`` fits the model's coefficients to these results by non-negative least squares
and prints them in the form of :data:`rtl_gen.design.area_calibration.COEFFICIENTS` (paste
them there); the table then shows the refit's estimates.

``--reuse-arrays`` takes the calibration networks' synthesis results from the last
``area_model.json`` in ``--out`` (each with the date it was synthesized) and recomputes only
the estimates, so the unrolled table (read from ``network.json``) can be brought up to date
without the arrays' syntheses.

Run ``python benchmarks/area_model.py [--devices up5k,ecp5-85f] [--refit] [--match TEXT]
[--reuse-arrays] [--out DIR]``; it
writes ``area_model.md`` and ``area_model.json`` into ``--out`` (default
``benchmarks/results``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from rtl_gen.bundle import read_bundle
from rtl_gen.design.area import FEATURES, estimate_network, features
from rtl_gen.design.area_calibration import (
    COEFFICIENTS,
    UNROLLED_COEFFICIENTS,
    UNROLLED_DEEP_COEFFICIENTS,
)
from rtl_gen.devices import DEVICES
from rtl_gen.flow.synth import DEFAULT_WORKDIR, FlowError, component_verilog, synth
from rtl_gen.hw.network import NetworkEngine, plan_chain
from rtl_gen.hw.planner import (
    calibration_arrays,
    engine_shape,
    unrolled_area,
    unrolled_logic_bits,
)

RESULTS = Path(__file__).parent / "results"

#: ``(bundle, per-layer arrays as rows x cols x lanes, input codes per cycle)``; an array's
#: trailing ``b``: its weight ROM in block RAM, ``s``: its drain shifts, ``m``: its
#: term-revealing PEs read copies of the input banks (the planner's
#: choices on the UP5K; those networks are synthesized for the UP5K only).  Every network
#: is built as ``--fit`` and a board build build it: without the layers' cycle counters.
CONFIGS = [
    # the planner's --fit up5k choices (benchmarks/network.py), and the faster ternary folding
    ("binary", "1x16x4,1x2x8", 2),
    ("ternary", "1x8x8,1x2x8", 2),
    ("mixed", "1x4x16,1x1x8", 2),
    ("int4", "1x2x16,1x1x4", 1),
    ("pot4", "1x2x16,1x2x4", 1),
    ("apot4", "1x2x16,1x1x8", 1),
    ("int8", "1x1x16,1x1x2", 1),
    ("tr", "1x1x1,1x1x1", 1),
    ("ternary", "1x16x4,1x2x8", 2),
    # the --fit up5k choices of the model refit on the above (and the rest of this list)
    ("binary", "1x32x2,1x10x1", 2),
    ("ternary", "1x32x2,1x10x1", 2),
    ("int4", "1x2x16,1x4x2", 1),
    ("apot4", "1x2x16,1x4x2", 1),
    ("int8", "1x4x4,1x4x1", 1),
    # the shipped bundles on their default arrays
    ("binary", "1x8x4,1x8x4", 1),
    ("ternary", "1x8x4,1x8x4", 1),
    ("pot4", "1x8x1,1x8x1", 1),
    ("apot4", "1x8x1,1x8x1", 1),
    ("int4", "1x8x1,1x8x1", 1),
    ("int8", "1x8x1,1x8x1", 1),
    ("mixed", "1x8x1,1x8x1", 1),
    ("tr", "1x4x1,1x2x1", 1),
    # smaller and larger arrays, more lanes, two rows
    ("binary", "1x4x4,1x2x4", 1),
    ("binary", "1x16x4,1x4x2", 1),
    ("ternary", "1x4x2,1x2x2", 1),
    ("pot4", "1x4x2,1x2x1", 1),
    ("int4", "1x4x1,1x2x1", 1),
    ("int4", "1x8x2,1x2x1", 1),
    ("int4", "1x16x1,1x4x1", 1),
    ("binary", "2x4x4,2x2x2", 1),
    # foldings of the kind the planner chooses: one wide PE, balanced layers, wide input
    ("binary", "1x1x32,1x1x8", 1),
    ("binary", "1x16x4,1x1x16", 2),
    ("binary", "1x32x2,1x1x16", 2),
    ("int4", "1x1x8,1x1x2", 1),
    ("int4", "1x1x32,1x1x8", 1),
    ("int8", "1x1x16,1x1x2", 1),
    ("ternary", "1x4x16,1x1x8", 2),
    ("mixed", "1x2x16,1x1x4", 1),
    ("tr", "1x2x1,1x1x1", 1),
    # the --fit up5k choices with their weight ROMs in block RAM
    ("binary", "1x32x2b,1x2x8b", 2),
    ("ternary", "1x32x2b,1x10x1b", 2),
    ("pot4", "1x2x16b,1x2x4b", 1),
    ("apot4", "1x2x16b,1x4x2b", 1),
    ("int4", "1x2x16b,1x4x2b", 1),
    ("mixed", "1x4x16b,1x1x8b", 2),
    ("mixed", "1x16x4b,1x10x1b", 2),     # the refit's choice
    # shift drains (the planner's choice on the UP5K): the --fit up5k choices and others
    ("binary", "1x32x2bs,1x2x8bs", 2),
    ("ternary", "1x32x2bs,1x10x1bs", 2),
    ("pot4", "1x2x16bs,1x2x4bs", 1),
    ("apot4", "1x2x16bs,1x4x2bs", 1),
    ("int4", "1x2x16bs,1x4x2bs", 1),
    ("mixed", "1x16x4bs,1x10x1bs", 2),
    ("int8", "1x4x4s,1x4x1s", 1),
    ("binary", "1x8x4s,1x8x4s", 1),
    ("int4", "1x16x1s,1x4x1s", 1),
    ("ternary", "1x16x4s,1x2x8s", 2),
    # term-revealing PEs reading copies of the input banks (``m``; the UP5K planner's choice)
    ("tr", "1x8x1,1x1x1m", 1),      # the --fit up5k choice
    ("tr", "1x8x1m,1x2x1m", 1),
    ("tr", "1x4x1m,1x2x1m", 1),
    ("tr", "1x8x1m,1x8x1m", 1),
    ("tr", "1x2x1m,1x1x1m", 1),
]


def shapes_of(net, spec: str, per_beat: int = 1):
    """The chain plan and engine shapes of ``net`` on the arrays ``spec``
    (:func:`~rtl_gen.hw.planner.calibration_arrays`)."""
    plan = plan_chain(net, calibration_arrays(net, spec), in_per_beat=per_beat,
                      counters=False)
    return plan, [engine_shape(p) for _, _, p in plan.stages]


def measure(scheme: str, spec: str, per_beat: int, device: str, workdir: Path) -> dict:
    net = read_bundle(Path("weights") / f"digits-{scheme}")
    plan, _ = shapes_of(net, spec, per_beat)
    engine = NetworkEngine.from_plan(plan)
    top = f"net_{net.name}".replace("-", "_")
    try:
        st = synth(component_verilog(engine, top), top, device, workdir=workdir)
    except FlowError as e:
        return {"error": str(e).splitlines()[0]}
    return {"logic": st.logic_cells, "lut4": st.lut4, "carry": st.carry, "ff": st.ff,
            "dsp": st.dsp, "bram": st.bram}


#: Bits per block tried as the least fill that puts a memory in block RAM.
BRAM_FILLS = (0, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1152, 1536, 2048, 3072, 4096,
              8192, 1 << 30)


def refit(rows: list[dict], family: str) -> dict:
    """Non-negative least squares of logic and FF on the summed engine features; the block
    RAM threshold that best matches the block RAM counts."""

    all_shapes = []
    for r in rows:
        net = read_bundle(Path("weights") / f"digits-{r['bundle']}")
        all_shapes.append(shapes_of(net, r["arrays"], r["per_beat"])[1])
    out = dict(COEFFICIENTS[family])
    out["network"] = (0.0, 0.0)
    out["logic"] = out["ff"] = (0.0,) * len(FEATURES)  # (block RAM first; these unused)

    # first the block RAM rule (which memories stay in the fabric), by the block counts
    def bram_error(c) -> int:
        return sum(abs(estimate_network(shapes, family, c).bram - r["actual"]["bram"])
                   for shapes, r in zip(all_shapes, rows, strict=True))
    best = min(((rom, ram) for rom in BRAM_FILLS for ram in BRAM_FILLS),
               key=lambda f: (bram_error(dict(out, bram_rom_fill=f[0], bram_ram_fill=f[1])),
                              -f[0], -f[1]))
    out["bram_rom_fill"], out["bram_ram_fill"] = best
    x = np.array([np.sum([features(s, family, out) for s in shapes], axis=0)
                  for shapes in all_shapes])
    return out | relative_nnls(x, rows)


def refit_features(rows: list[dict], family: str, names: list[str]) -> dict:
    """The coefficients of the features ``names`` alone, the others kept: non-negative
    least squares of what the other features leave of each row's logic and FF, over the
    rows where any of ``names`` is nonzero (each weighted by one over its actual value);
    a feature no row has keeps its coefficient."""
    out = dict(COEFFICIENTS[family])
    idx = [FEATURES.index(n) for n in names]
    picked, x = [], []
    for r in rows:
        net = read_bundle(Path("weights") / f"digits-{r['bundle']}")
        f = np.sum([features(s, family, out) for s in shapes_of(net, r["arrays"],
                                                                r["per_beat"])[1]], axis=0)
        if any(f[i] for i in idx):
            picked.append(r)
            x.append(f)
    x = np.array(x)
    # only the features some row has (the others keep their coefficients)
    idx = [i for i in idx if picked and np.any(x[:, i])]
    if not idx:
        return out
    for key in ("logic", "ff"):
        coef = list(out[key])
        for i in idx:
            coef[i] = 0.0
        rest = [dict(r, actual=dict(r["actual"], **{key: r["actual"][key] - float(
            np.dot(coef, f))})) for r, f in zip(picked, x, strict=True)]
        fitted = relative_nnls(x[:, idx], rest)[key]
        for i, v in zip(idx, fitted, strict=True):
            coef[i] = v
        out[key] = tuple(coef)
    return out


def relative_nnls(x: np.ndarray, rows: list[dict]) -> dict:
    """``{"logic": coefficients, "ff": coefficients}``: non-negative least squares of each
    row's ``actual`` logic and FF on its features ``x``, each row weighted by one over its
    actual value (the fit minimises relative error)."""
    from scipy.optimize import nnls

    out = {}
    for key in ("logic", "ff"):
        y = np.array([r["actual"][key] for r in rows], float)
        w = 1 / y
        coef, _ = nnls(x * w[:, None], y * w)
        out[key] = tuple(round(float(c), 4) for c in coef)
    return out


#: Where the unrolled engine's syntheses come from: the rows of ``benchmarks/network.py``
#: whose ``--fit`` design is the unrolled engine (its Verilog is the one ``--fit ecp5-85f``
#: builds; synthesizing it takes minutes, so it is not redone here).
UNROLLED_SOURCE = RESULTS / "network.json"


def unrolled_rows(source: Path = UNROLLED_SOURCE) -> list[dict]:
    """``{"bundle", "stage", "bits", "actual": {logic, ff}}`` of each unrolled engine
    synthesized in ``source``, its datapath bits (:func:`rtl_gen.hw.planner.
    unrolled_logic_bits`) from the plan the ``--fit`` choice builds (the row's adder levels
    between registers and requantizers: ``multiplier``, shift-and-add where not recorded)."""
    from rtl_gen.hw.unrolled import DEFAULT_STAGE, plan_unrolled

    out = []
    for r in json.loads(source.read_text())["rows"] if source.exists() else []:
        if r.get("engine") != "unrolled" or r.get("lc") is None:
            continue
        net = read_bundle(Path("weights") / r["name"])
        plan = plan_unrolled(net, stage=r.get("stage", DEFAULT_STAGE),
                             multiplier=r.get("multiplier", "adders"))
        out.append({"device": r["device"], "bundle": r["name"].removeprefix("digits-"),
                    "stage": plan.stage, "bits": unrolled_logic_bits(plan), "plan": plan,
                    "actual": {"logic": r["lc"], "ff": r["ff"]}})
    return out


def refit_unrolled(rows: list[dict]) -> dict:
    """``(fixed, per bit)`` of logic and flip-flops by non-negative least squares, each row
    weighted by one over its actual value."""
    return relative_nnls(np.array([[1.0, r["bits"]] for r in rows]), rows)


#: The unrolled engine's coefficients by adder levels between registers (a plan of more
#: levels than 2 takes the default's).
UNROLLED_BY_STAGE = {2: UNROLLED_COEFFICIENTS, 1: UNROLLED_DEEP_COEFFICIENTS}
UNROLLED_NAMES = {2: "UNROLLED_COEFFICIENTS", 1: "UNROLLED_DEEP_COEFFICIENTS"}


def unrolled_table(rows: list[dict], coefficients: dict) -> tuple[list[str], float]:
    """Estimate against synthesis of the unrolled engines (``coefficients`` by stage, as
    :data:`UNROLLED_BY_STAGE`), and the worst logic error."""
    lines = ["| device | network | stage | datapath bits | logic est. | actual | error | "
             "FF est. | actual |", "|" + "---|" * 9]
    worst = 0.0
    for r in rows:
        est = unrolled_area(r.pop("plan"), coefficients=coefficients[min(r["stage"], 2)])
        a = r["actual"]
        err = 100 * (est.logic - a["logic"]) / a["logic"]
        worst = max(worst, abs(err))
        r["estimate"] = {"logic": round(est.logic), "ff": round(est.ff)}
        r["logic_error_pct"] = round(err, 1)
        lines.append(f"| {r['device']} | {r['bundle']} | {r['stage']} | {r['bits']} | "
                     f"{est.logic:.0f} | "
                     f"{a['logic']} | {err:+.1f}% | {est.ff:.0f} | {a['ff']} |")
    return lines, worst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", default="up5k,ecp5-85f")
    parser.add_argument("--refit", action="store_true",
                        help="fit the coefficients to these results and print them")
    parser.add_argument("--refit-features", default=None, metavar="NAMES",
                        help="fit only these features' coefficients (comma-separated), the "
                             "others kept, on the rows that have them")
    parser.add_argument("--match", default=None, metavar="TEXT",
                        help="only the networks whose 'bundle arrays' contain TEXT")
    parser.add_argument("--reuse-arrays", action="store_true",
                        help="the calibration networks' syntheses as recorded in --out's "
                             "area_model.json (only the estimates are recomputed)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    args = parser.parse_args(argv)
    devices = [d.strip() for d in args.devices.split(",") if d.strip()]
    unknown = sorted(set(devices) - set(DEVICES))
    if unknown:
        parser.error(f"unknown device(s) {', '.join(unknown)}")
    start = time.time()
    today = time.strftime("%Y-%m-%d")
    recorded = {}
    if args.reuse_arrays:
        try:
            old = json.loads((args.out / "area_model.json").read_text())
            recorded = {(r["device"], r["bundle"], r["arrays"], r["per_beat"]): r
                        for r in old["rows"]}
        except (OSError, ValueError, KeyError) as e:
            parser.error(f"--reuse-arrays: no readable {args.out / 'area_model.json'} ({e})")
    rows = []
    for device in devices:
        family = DEVICES[device].family
        for scheme, spec, per_beat in CONFIGS:
            if args.match and args.match not in f"{scheme} {spec}":
                continue
            if any(f in spec for f in "bsm") and family != "ice40":
                continue   # block ROMs, shift drains, memory reads: the UP5K planner's only
            old_row = recorded.get((device, scheme, spec, per_beat))
            if old_row is not None:
                actual, date = old_row["actual"], old_row.get("date", "before " + today)
            elif args.reuse_arrays:
                parser.error(f"--reuse-arrays: {device} {scheme} {spec} P={per_beat} is not "
                             f"in {args.out / 'area_model.json'}")
            else:
                t = time.time()
                actual, date = measure(scheme, spec, per_beat, device, args.workdir), today
                print(f"{device} {scheme} {spec} P={per_beat}: {time.time() - t:.0f} s",
                      file=sys.stderr)
            rows.append({"device": device, "family": family, "bundle": scheme,
                         "arrays": spec, "per_beat": per_beat, "actual": actual,
                         "date": date})
    coefficients = {}
    for family in sorted({r["family"] for r in rows}):
        ok = [r for r in rows if r["family"] == family and "error" not in r["actual"]]
        coefficients[family] = refit(ok, family) if args.refit else COEFFICIENTS[family]
        if args.refit_features:
            coefficients[family] = refit_features(ok, family,
                                                  args.refit_features.split(","))
        if args.refit or args.refit_features:
            print(f"{family!r}: {json.dumps(coefficients[family])},")
    lines = ["| device | network | arrays (RxCxL) | P | logic est. | actual | error | "
             "FF est. | actual | DSP est. | actual | BRAM est. | actual |",
             "|" + "---|" * 13]
    worst = 0.0
    for r in rows:
        a = r["actual"]
        if "error" in a:
            lines.append(f"| {r['device']} | {r['bundle']} | {r['arrays']} | "
                         f"{r['per_beat']} | {a['error']} |" + " |" * 8)
            continue
        net = read_bundle(Path("weights") / f"digits-{r['bundle']}")
        _, shapes = shapes_of(net, r["arrays"], r["per_beat"])
        est = estimate_network(shapes, r["family"], coefficients[r["family"]])
        err = 100 * (est.logic - a["logic"]) / a["logic"]
        worst = max(worst, abs(err))
        r["estimate"] = {"logic": round(est.logic), "ff": round(est.ff), "dsp": est.dsp,
                         "bram": est.bram}
        r["logic_error_pct"] = round(err, 1)
        lines.append(f"| {r['device']} | {r['bundle']} | {r['arrays']} | {r['per_beat']} | "
                     f"{est.logic:.0f} | {a['logic']} | {err:+.1f}% | {est.ff:.0f} | "
                     f"{a['ff']} | {est.dsp} | {a['dsp']} | {est.bram} | {a['bram']} |")
    table = "\n".join(lines) + "\n"
    unrolled, unrolled_coefficients, worst_unrolled = [], dict(UNROLLED_BY_STAGE), 0.0
    if "ecp5-85f" in devices and not args.match:
        unrolled = unrolled_rows()
        for stage in UNROLLED_BY_STAGE if args.refit else ():
            group = [r for r in unrolled if min(r["stage"], 2) == stage]
            if len(group) >= 2:
                unrolled_coefficients[stage] = refit_unrolled(group)
                print(f"{UNROLLED_NAMES[stage]} = {json.dumps(unrolled_coefficients[stage])}")
        if unrolled:
            u_lines, worst_unrolled = unrolled_table(unrolled, unrolled_coefficients)
            table += ("\nThe unrolled engine (`--fit ecp5-85f`; synthesis from "
                      f"`benchmarks/results/{UNROLLED_SOURCE.name}`), logic and FF linear "
                      "in its datapath's carry-chain bits:\n\n" + "\n".join(u_lines) + "\n")
    print(table, end="")
    print(f"worst logic error {worst:.1f}% (arrays), {worst_unrolled:.1f}% (unrolled); "
          f"features {', '.join(FEATURES)}", file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    note = ("# The area model against synthesis\n\n"
            "Generated by `python benchmarks/area_model.py`; logic = iCE40 logic cells "
            "(UP5K) / ECP5 LUT4 slices (LFE5U-85F, `TRELLIS_COMB`) after nextpnr packing of "
            "the bare network, built as `--fit` builds it (no cycle counters); estimates "
            "from `rtl_gen.design.area` with the coefficients of "
            f"`rtl_gen.design.area_calibration` of {today}; the calibration networks synthesized "
            f"{', '.join(sorted({str(r['date']) for r in rows}))}.\n\n")
    (args.out / "area_model.md").write_text(note + table)
    (args.out / "area_model.json").write_text(json.dumps(
        {"rows": rows, "coefficients": coefficients, "worst_logic_error_pct": round(worst, 1),
         "unrolled_rows": unrolled,
         "unrolled_coefficients": {str(k): v for k, v in unrolled_coefficients.items()},
         "worst_unrolled_logic_error_pct": round(worst_unrolled, 1),
         "seconds": round(time.time() - start)}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
