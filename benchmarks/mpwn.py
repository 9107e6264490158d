"""MPWN and reduced-float weights on the digits MLP: accuracy, ASB, resources, cycles.

For every per-layer assignment of weight spaces (float, binary, ternary: all ``3^2`` of the
64-32-10 MLP, each fine-tuned through its spaces for ``--epochs`` epochs, as
:func:`rtl_gen.training.mpwn_train.finetune`), and for the smallest reduced-float weight format
within
0.5 point of fp32:

* accuracy on the digits test split (golden model, fp32), sparsity, weight bits (MPWN's count:
  float 16, ternary 2, binary 1) and the ASB score;
* the float network engine (:class:`rtl_gen.hw.float_layer.FloatNetworkEngine`, 4 lanes per
  layer, fp32 activations and accumulation) synthesized by Yosys for the LFE5U-85F: LUT4, FF
  and DSP with multipliers in DSPs, and (with ``--nodsp``) LUT4 with every multiplier in
  the fabric; cycles per inference (latency) and between images from the cycle model that
  the cocotb tests hold the hardware to;
* the ratios of the all-fp32 network's resources to each assignment's (the MPWN paper
  reports 1.68-4.89x fewer FPGA resources than fp32).

``--accumulation`` picks the float accumulation contract(s) measured: ``sequential`` (fp32
adder lanes, today's), ``exact`` (the "exact sum, rounded once" contract: fixed-point
add/subtract/skip lanes behind one aligner and one normaliser per layer,
:mod:`rtl_gen.hw.exact_float`; every assignment fine-tuned with power-of-two ``alpha``) or
``both`` (the default).  The sequential fp32 network is always measured: it is the reference
of every ratio (the JSON's ``vs_sequential_fp32`` fields: LUT4, FF and LUT4+FF); on the exact
contract, float and minifloat layers have a significand multiplier and a shifter per lane.
``--fmax`` places and routes with nextpnr seeds ``1..--fmax-seeds`` (5) and reports the
median.  Every assignment is fine-tuned with seeds ``0..--accuracy-seeds - 1`` (5): the
table gives seed 0's accuracy (its network is the one synthesized) and the seeds' mean and
least.  On the exact contract the window is :func:`rtl_gen.training.mpwn.fit_window`'s on the
training split.

The reduced-float sweep prints accuracy against total weight bits for ``E`` around the
recommended exponent width and ``M = 0..7``.

Run ``python benchmarks/mpwn.py [--jobs N] [--epochs N] [--fmax] [--nodsp]
[--accumulation both] [--out DIR]``: it prints
Markdown tables and writes ``mpwn.md`` and ``mpwn.json`` into ``--out`` (default
``benchmarks/results``).  Synthesis results are cached under ``build/flow``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from rtl_gen.data.digits import digits
from rtl_gen.design import float_network
from rtl_gen.design.timing import network_interval
from rtl_gen.flow.synth import (
    DEFAULT_WORKDIR,
    FlowError,
    component_verilog,
    place_and_route_seeds,
    synth,
    tool_versions,
)
from rtl_gen.hw.exact_float import ExactShape
from rtl_gen.hw.exact_planner import plan_exact_folding
from rtl_gen.hw.float_layer import FloatNetworkEngine, plan_float_network
from rtl_gen.training import mpwn
from rtl_gen.training.defaults import FLOAT_MODEL_NAME, WEIGHTS_DIR
from rtl_gen.training.float_model import load_float_model

RESULTS = Path(__file__).parent / "results"
DEVICE = "ecp5-85f"
LANES = 4
TOLERANCE = 0.005


def timings(net: float_network.FloatNetwork, lanes) -> list:
    """The layers' cycle models on ``lanes`` (one count, or one per layer: a lane count or,
    on the exact contract, an :class:`~rtl_gen.hw.exact_float.ExactShape`)."""
    return list(plan_float_network(net, lanes, counters=False).timings)


#: Lanes per layer tried for the equal-area latency, each capped at the layer's outputs.
LANE_LADDER = ((4, 4), (8, 4), (8, 8), (16, 8), (16, 16), (32, 16), (64, 16))
#: On the exact contract, also these shapes (lanes, inputs a step, results a cycle) of the
#: digits MLP's two layers (64-32 and 32-10): the first layer drains into the second's
#: wide input; the last drains one logit a cycle.
SHAPE_LADDER = tuple((ExactShape(32, l1, d1), ExactShape(10, l2)) for l1, d1, l2 in (
    (4, 4, 4), (4, 8, 8), (8, 4, 8), (8, 8, 8), (16, 8, 16), (16, 16, 16)))


def shape_json(shape) -> list[int]:
    """``[lanes, inputs a step, results a cycle]`` of a lane count or shape."""
    s = ExactShape.of(shape)
    return [s.lanes, s.inputs, s.drain]


def shape_label(shapes) -> str:
    """``32x8/4 - 10x8/1`` (lanes x inputs / results a cycle per layer), or ``8x4`` for plain
    lane counts."""
    if all(ExactShape.of(s).inputs == ExactShape.of(s).drain == 1 for s in shapes):
        return "x".join(str(ExactShape.of(s).lanes) for s in shapes)
    return " - ".join(f"{a}x{b}/{c}" for a, b, c in map(shape_json, shapes))


def equal_area(net: float_network.FloatNetwork, budget: int, workdir: Path,
               fmax: int = 0) -> dict:
    """``net`` synthesized on every lane count of :data:`LANE_LADDER` (and, on the exact
    contract, every shape of :data:`SHAPE_LADDER` and the exact planner's choice for
    ``budget``, with its estimate), and the one of least latency (cycles per inference, the
    cycle model) whose LUT4 is at most ``budget``; with ``fmax`` seeds, that one's median
    Fmax."""
    ladder = [tuple(min(c, layer.out_features) for c, layer in zip(lanes, net.layers,
                                                                     strict=True))
              for lanes in LANE_LADDER]
    planned = None
    if net.accumulation == "exact":
        ladder += list(SHAPE_LADDER)
        planned = plan_exact_folding(net, budget)
        ladder.append(planned.shapes)
    ladder = list(dict.fromkeys(ladder))
    points = []
    for lanes in ladder:
        hw = measure(net, workdir, 0, False, lanes)
        ts = timings(net, lanes)
        points.append({"lanes": [shape_json(s) for s in lanes], "label": shape_label(lanes),
                       "lut4": hw.get("lut4"), "ff": hw.get("ff"),
                       "latency": sum(t.batch_cycles for t in ts),
                       "interval": network_interval(ts, net.in_features)})
        if planned is not None and lanes == planned.shapes:
            points[-1]["planner_lut4"] = planned.lut4
    fits = [p for p in points if p["lut4"] is not None and p["lut4"] <= budget]
    best = min(fits, key=lambda p: p["latency"]) if fits else None
    if best is not None and fmax:
        lanes = ladder[points.index(best)]
        best.update({k: v for k, v in measure(net, workdir, fmax, False, lanes).items()
                     if k.startswith("fmax")})
    return {"spaces": "/".join(net.spaces), "lut4_budget": budget, "points": points,
            "chosen": best}


def measure(net: float_network.FloatNetwork, workdir: Path, fmax: int, nodsp: bool,
            lanes: int) -> dict:
    """LUT4 (carry cells as 2), FF, DSP, BRAM; with ``nodsp`` the LUT4 of an all-fabric
    build; with ``fmax`` seeds the median Fmax over nextpnr seeds ``1..fmax``."""
    engine = FloatNetworkEngine(net, lanes)
    top = f"fnet_{net.name}".replace("-", "_").replace("/", "_")
    verilog = component_verilog(engine, top)
    try:
        s = synth(verilog, top, DEVICE, workdir=workdir)
        out = {"lut4": s.lut4 + 2 * s.carry, "carry": s.carry, "ff": s.ff, "dsp": s.dsp,
               "bram": s.bram}
        if nodsp:
            lut_only = synth(verilog, top, DEVICE, workdir=workdir, dsp=False, pack=False)
            out["lut4_nodsp"] = lut_only.lut4 + 2 * lut_only.carry
        if fmax:
            sweep = place_and_route_seeds(verilog, top, DEVICE, workdir=workdir, seeds=fmax)
            out["fmax"] = round(sweep.fmax, 1)
            out["fmax_per_seed"] = [round(f, 1) for f in sweep.fmax_per_seed]
        return out
    except FlowError as e:
        return {"error": str(e).splitlines()[0]}


def ratio(ref, v) -> str:
    if ref is None or v is None:
        return ""
    return f"{ref / v:.2f}x" if v else ("= (0)" if ref == 0 else "no DSP")


def reference(rows: list[dict], accumulation: str = "sequential") -> dict | None:
    """The fp32 network's resources on ``accumulation`` (the sequential one is the reference
    of every ratio), or None when it was not measured."""
    return next((r["hw"] for r in rows if r["spaces"] == "float/float"
                 and r["accumulation"] == accumulation), None)


def add_ratios(rows: list[dict]) -> None:
    """``vs_sequential_fp32`` and ``vs_exact_fp32``: the fp32 network's LUT4, FF and LUT4+FF
    on either contract over each row's (``None`` where not measured)."""
    for field, contract in (("vs_sequential_fp32", "sequential"), ("vs_exact_fp32", "exact")):
        ref = reference(rows, contract)
        for r in rows:
            hw = r["hw"]
            if ref is None or "error" in hw or "error" in ref:
                r[field] = None
                continue
            r[field] = {
                "lut4": round(ref["lut4"] / hw["lut4"], 3), "ff": round(ref["ff"] / hw["ff"], 3),
                "lut4_ff": round((ref["lut4"] + ref["ff"]) / (hw["lut4"] + hw["ff"]), 3)}


def markdown(rows: list[dict]) -> str:
    ref = reference(rows)
    exact = reference(rows, "exact") or {}
    head = ("| weight spaces | accumulation | window | accuracy | seeds: mean (min) | sparsity | "
            "weight bits | ASB | LUT4 | FF | DSP | LUT4 (no DSP) | Fmax (MHz) | "
            "cycles / inference | interval | fp32 sequential / this: LUT4 | FF | LUT4+FF | DSP "
            "| LUT4 (no DSP) | fp32 exact / this: LUT4+FF |")
    lines = [head, "|" + "---|" * 21]
    for r in rows:
        hw = r["hw"]
        window = "" if r.get("window") is None else \
            f"{r['window']['lsb']}..{r['window']['msb']}"
        seeds = r.get("accuracy_seeds") or []
        spread = f"{100 * np.mean(seeds):.2f}% ({100 * min(seeds):.2f}%)" if seeds else ""
        if "error" in hw:
            lines.append(f"| {r['spaces']} | {r['accumulation']} | {window} | "
                         f"{100 * r['accuracy']:.2f}% | {spread} | {hw['error']} |")
            continue
        cells = [r["spaces"], r["accumulation"], window, f"{100 * r['accuracy']:.2f}%", spread,
                 f"{100 * r['sparsity']:.1f}%", r["bits"], f"{r['asb']:.4f}", hw["lut4"],
                 hw["ff"], hw["dsp"], hw.get("lut4_nodsp", ""), hw.get("fmax", ""),
                 r["latency"], r["interval"],
                 ratio(ref.get("lut4"), hw["lut4"]), ratio(ref.get("ff"), hw["ff"]),
                 ratio(ref.get("lut4", 0) + ref.get("ff", 0), hw["lut4"] + hw["ff"]),
                 ratio(ref.get("dsp"), hw["dsp"]),
                 ratio(ref.get("lut4_nodsp"), hw.get("lut4_nodsp")),
                 ratio(exact.get("lut4", 0) + exact.get("ff", 0) or None,
                       hw["lut4"] + hw["ff"])]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def area_markdown(area: dict) -> str:
    lines = [f"Equal LUT4: {area['spaces']} (exact) on more lanes, against the sequential fp32 "
             f"network's {area['lut4_budget']} LUT4 and {area['fp32_latency']} cycles per "
             "inference (lanes: per layer, `CxL/D` = C lanes, L inputs a step, D results a "
             "cycle):", "", "| lanes | LUT4 | FF | cycles / inference | interval | "
             "fp32 latency / this |", "|---|---|---|---|---|---|"]
    for p in area["points"]:
        mark = " (chosen)" if p is area["chosen"] else ""
        if "planner_lut4" in p:
            mark += f" (planner: {p['planner_lut4']} LUT4 estimated)"
        lines.append(f"| {p['label']}{mark} | {p['lut4']} | {p['ff']} | "
                     f"{p['latency']} | {p['interval']} | "
                     f"{area['fp32_latency'] / p['latency']:.2f}x |")
    best = area["chosen"]
    if best is not None and "fmax" in best and area.get("fp32_fmax"):
        lines += ["", f"Chosen: median Fmax {best['fmax']} MHz, {area['latency_ns']} ns per "
                  f"inference against the fp32 network's {area['fp32_latency_ns']} ns at "
                  f"{area['fp32_fmax']} MHz: {area['latency_ns_ratio']}x."]
    return "\n".join(lines) + "\n"


def sweep_markdown(rows: list[dict]) -> str:
    lines = ["| format | weight bits | accuracy | Δ vs fp32 (points) |", "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['format']} | {r['bits']} | {100 * r['accuracy']:.2f}% | "
                     f"{100 * (r['accuracy'] - r['fp32_accuracy']):+.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1, help="parallel synthesis runs")
    parser.add_argument("--epochs", type=int, default=None,
                        help="fine-tuning epochs per assignment (0: post-training only; "
                        "default: the contract's, mpwn_train.RECIPES)")
    parser.add_argument("--accuracy-seeds", type=int, default=5,
                        help="fine-tune each assignment with seeds 0..N-1 and report the "
                        "accuracies' mean and least (the hardware is seed 0's)")
    parser.add_argument("--fmax", action="store_true",
                        help="also place and route (median Fmax over --fmax-seeds)")
    parser.add_argument("--fmax-seeds", type=int, default=5, help="nextpnr seeds for --fmax")
    parser.add_argument("--nodsp", action="store_true",
                        help="also synthesize with every multiplier in LUT4s")
    parser.add_argument("--lanes", type=int, default=LANES, help="lanes per layer")
    parser.add_argument("--assignments", default=None, metavar="S/S,...",
                        help="only these assignments, e.g. float/float,ternary/ternary "
                        "(float/float is always included)")
    parser.add_argument("--accumulation", choices=("sequential", "exact", "both"),
                        default="both", help="float accumulation contract(s) to measure")
    parser.add_argument("--skip-sweep", action="store_true",
                        help="leave out the reduced-float sweep and its network")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--stem", default=None,
                        help="output file names (default mpwn, or mpwn-<N>lanes)")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    args = parser.parse_args(argv)
    if (args.epochs is not None and args.epochs < 0) or min(
            args.jobs, args.lanes, args.accuracy_seeds, args.fmax_seeds) < 1:
        parser.error("--epochs must be >= 0, --jobs, --lanes, --accuracy-seeds and "
                     "--fmax-seeds >= 1")
    start = time.time()
    model = load_float_model(WEIGHTS_DIR / FLOAT_MODEL_NAME)
    train, test = digits()
    if args.epochs != 0:
        from rtl_gen.training.mpwn_train import RECIPES, finetune

    nets, rows = [], []
    assignments = list(itertools.product(float_network.MPWN_SPACES, repeat=len(model.weights)))
    if args.assignments:
        want = {tuple(a.split("/")) for a in args.assignments.split(",")} | {("float",) * 2}
        unknown = want - set(assignments)
        if unknown:
            parser.error(f"unknown assignment(s) {sorted('/'.join(u) for u in unknown)}")
        assignments = [a for a in assignments if a in want]
    contracts = ("sequential", "exact") if args.accumulation == "both" else \
        (args.accumulation,)
    jobs_list = [(c, a) for c in contracts for a in assignments]
    if "sequential" not in contracts:
        jobs_list.insert(0, ("sequential", ("float",) * len(model.weights)))
    seed_accuracy = []
    for contract, spaces in tqdm(jobs_list, desc="fine-tuning", file=sys.stderr):
        tag = "" if contract == "sequential" else "-exact"
        built = []
        for seed in range(args.accuracy_seeds if args.epochs != 0 else 1):
            src = finetune(model, spaces, train.x, train.y, epochs=args.epochs, seed=seed,
                           accumulation=contract) if args.epochs != 0 else model
            built.append(mpwn.from_float(src, spaces, name="-".join(spaces) + tag,
                                         accumulation=contract, calibration=train.x))
        nets.append(built[0])
        seed_accuracy.append([float_network.accuracy(n, n.encode(test.x), test.y)
                              for n in built])
    sweep_e = mpwn.recommend_format(model)
    sweep, best = [], None
    if not args.skip_sweep:
        sweep = mpwn.reduced_float_sweep(
            model, test.x, test.y,
            exp_bits=[e for e in (sweep_e - 1, sweep_e, sweep_e + 1) if e >= 1],
            man_bits=range(8))
        best = next(r for r in sweep
                    if r["accuracy"] >= r["fp32_accuracy"] - TOLERANCE - 1e-12)
        nets.append(mpwn.reduced_float_network(model, best["exp_bits"], best["man_bits"]))
    for net in nets:
        x = net.encode(test.x)
        ts = timings(net, args.lanes)
        rows.append(dict(mpwn.score(net, x, test.y), accumulation=net.accumulation,
                         window=None if net.window is None else net.window.to_json(),
                         latency=sum(t.batch_cycles for t in ts),
                         interval=network_interval(ts, net.in_features)))
    for row, accs in zip(rows, seed_accuracy, strict=False):
        row["accuracy_seeds"] = accs
    n_mp = len(rows) - (0 if args.skip_sweep else 1)
    exact_rows = [r for r in rows[:n_mp] if r["accumulation"] == "exact"]
    fp32 = next(r for r in rows if r["spaces"] == "float/float"
                and r["accumulation"] == "sequential")
    # the equal-area ladder starts beside the other rows as soon as the fp32 network's LUT4
    # (its budget) is known
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool, \
            concurrent.futures.ThreadPoolExecutor(max_workers=1) as side:
        jobs = {pool.submit(measure, net, args.workdir, args.fmax_seeds if args.fmax else 0,
                            args.nodsp, args.lanes): row
                for net, row in zip(nets, rows, strict=True)}
        area_job = None
        for fut in tqdm(concurrent.futures.as_completed(jobs), total=len(jobs),
                        desc="synthesis", file=sys.stderr):
            jobs[fut]["hw"] = fut.result()
            if jobs[fut] is fp32 and exact_rows and "error" not in fp32["hw"]:
                top = max(exact_rows, key=lambda r: r["asb"])
                area_job = side.submit(equal_area, nets[rows.index(top)], fp32["hw"]["lut4"],
                                       args.workdir, args.fmax_seeds if args.fmax else 0)
        area = area_job.result() if area_job is not None else None
    mp_rows = sorted(rows[:n_mp], key=lambda r: (r["accumulation"], -r["asb"])) + rows[n_mp:]
    add_ratios(mp_rows)
    table = markdown(mp_rows)
    ref = reference(mp_rows)
    if area is not None:
        area["fp32_latency"] = fp32["latency"]
        chosen = area["chosen"]
        if chosen is not None:
            area["latency_ratio"] = round(fp32["latency"] / chosen["latency"], 2)
            if chosen.get("fmax") and ref.get("fmax"):
                area["fp32_fmax"] = ref["fmax"]
                area["fp32_latency_ns"] = round(1e3 * fp32["latency"] / ref["fmax"], 1)
                area["latency_ns"] = round(1e3 * chosen["latency"] / chosen["fmax"], 1)
                area["latency_ns_ratio"] = round(area["fp32_latency_ns"] / area["latency_ns"],
                                                 2)
        table += "\n" + area_markdown(area)
    sweep_table = sweep_markdown(sweep)
    summary = "" if best is None else (
        f"recommended exponent width {sweep_e}; smallest format within "
        f"{100 * TOLERANCE:.1f} point of fp32 ({100 * best['fp32_accuracy']:.2f}%): "
        f"{best['format']}, {best['bits']} bits, {100 * best['accuracy']:.2f}%\n")
    print(table + ("" if args.skip_sweep else "\n" + sweep_table + "\n" + summary), end="")
    args.out.mkdir(parents=True, exist_ok=True)
    recipe = "not at all" if args.epochs == 0 else f"{args.epochs} epochs" if args.epochs \
        else "as its contract's recipe (" + ", ".join(
            f"{c} {e} epochs at lr {lr:g}" for c, (e, lr) in RECIPES.items()) + ")"
    note = ("# MPWN and reduced-float weights: accuracy, ASB, resources, cycles\n\n"
            f"Generated by `python benchmarks/mpwn.py {' '.join(argv or sys.argv[1:])}`: the "
            "digits "
            f"MLP 64-32-10, every weight-space assignment fine-tuned {recipe} through its "
            "spaces, accuracy on the 360 test images (golden model, fp32) of seed 0's "
            f"network and over seeds 0-{args.accuracy_seeds - 1}; "
            f"float network engine with {args.lanes} lanes per layer synthesized by Yosys for the "
            "LFE5U-85F (LUT4/FF/DSP with DSP multipliers; \"no DSP\", when measured: every "
            "multiplier in LUT4s; each CCU2C carry cell counted as the 2 LUT4 it holds; "
            f"Fmax, when measured, the median of nextpnr seeds 1-{args.fmax_seeds}); "
            "cycles from the cycle model the cocotb tests hold the hardware to. Accumulation: "
            "sequential fp32 adders, or the exact contract (window sum, rounded once; "
            "power-of-two alpha; the window the narrowest that changes no class on the "
            "training split, `mpwn.fit_window`). Unless the sweep was skipped, the last row "
            "is the smallest reduced-float weight format within 0.5 point of fp32 (no "
            "fine-tuning).\n\n")
    stem = args.out / (args.stem or ("mpwn" if args.lanes == LANES
                                     else f"mpwn-{args.lanes}lanes"))
    sweep_part = "" if args.skip_sweep else ("\n## Reduced-float sweep\n\n" + sweep_table
                                             + "\n" + summary)
    stem.with_suffix(".md").write_text(note + table + sweep_part)
    stem.with_suffix(".json").write_text(json.dumps(
        {"rows": mp_rows, "equal_area": area, "sweep": sweep,
         "recommended_exp_bits": sweep_e, "best": best,
         "epochs": args.epochs, "lanes": args.lanes, "accumulation": args.accumulation,
         "accuracy_seeds": args.accuracy_seeds,
         "fmax_seeds": args.fmax_seeds if args.fmax else 0, "device": DEVICE,
         "tools": tool_versions(),
         "seconds": round(time.time() - start)}, indent=1) + "\n")
    print(f"\n{len(rows)} networks in {time.time() - start:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
