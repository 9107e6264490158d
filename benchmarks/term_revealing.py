"""Term revealing: accuracy against cycles per inference over a sweep of (g, k, s).

Two models of the digits MLP with 4-bit sign-magnitude weights (``signmag5``):

* ``ptq``: the float model quantized conventionally (no TR in training), term revealing
  applied at run time only: the paper's footing (TR as a run-time knob on a quantized
  network);
* ``qat``: the shipped ``weights/digits-tr`` bundle, trained with TR in the loop (g = 16,
  k = 10, s = 2).

For every group size ``g`` the weights are regrouped (the same integer weights, a different
``tr.group``); for every ``k`` and ``s`` the golden model gives the test accuracy under
``TRControl(TR, k, s)`` and the cycle model (``LayerTiming`` with ``slots = min(k, T)``,
which ``tests/test_tr_cocotb.py`` holds the Verilog to) the cycles per inference of the TR
network on the default arrays (batch 1, 8 columns).  Conventional mode (all ``T`` terms of
every group, untruncated activations) is the reference: the script names, per model, the
setting with the fewest cycles whose accuracy is within 0.5 point of conventional mode, and
its speedup over conventional mode with the same ``g``.  ``--synth`` also synthesizes the
TR network and the int4 network (the conventional PE array) for the UP5K and the
LFE5U-85F, for their resource cost side by side.

Run ``python benchmarks/term_revealing.py [--synth] [--out DIR]``: prints Markdown tables
and writes ``term_revealing.md``, ``term_revealing.json`` and ``term_revealing.svg`` (the
plot) into ``--out`` (default ``benchmarks/results``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

from rtl_gen.bundle import read_bundle
from rtl_gen.data.digits import digits
from rtl_gen.design import golden
from rtl_gen.design.golden import TRControl, TRMode, network_interval
from rtl_gen.design.network import TRConfig
from rtl_gen.hw.network import plan_network
from rtl_gen.training.defaults import FLOAT_MODEL_NAME, WEIGHTS_DIR

RESULTS = Path(__file__).parent / "results"
GROUPS = (4, 8, 16, 32)
BUDGETS = (1, 2, 3, 4, 6, 8, 10, 12, 14, 16, 20, 24, 32)
DATA_TERMS = (1, 2, 3, 9)   # 9: every term of an 8-bit activation
TOLERANCE = 0.005           # within 0.5 point of conventional mode


def models():
    from rtl_gen.training.float_model import load_float_model
    from rtl_gen.training.quantize import quantize_mlp
    float_model = load_float_model(WEIGHTS_DIR / FLOAT_MODEL_NAME)
    ptq = quantize_mlp(float_model, "signmag5", name="digits-tr-ptq", tr=TRConfig(16, 10, 2))
    return {"ptq": ptq, "qat": read_bundle(WEIGHTS_DIR / "digits-tr")}


def regroup(net, g: int):
    layers = tuple(dataclasses.replace(layer, tr=dataclasses.replace(layer.tr, group=g))
                   for layer in net.layers)
    return dataclasses.replace(net, layers=layers)


def cycles(net, control) -> float:
    arrays, timings = plan_network(net, None, control)
    return network_interval(timings, net.input.features) / arrays[0].rows


def sweep(name, net, x, y) -> list[dict]:
    rows = []
    for g in GROUPS:
        netg = regroup(net, g)
        conv = TRControl(TRMode.CONVENTIONAL)
        rows.append({"model": name, "g": g, "k": None, "s": None, "mode": "conventional",
                     "accuracy": golden.accuracy(netg, x, y, conv),
                     "cycles": cycles(netg, conv)})
        for k in BUDGETS:
            for s in DATA_TERMS:
                c = TRControl(TRMode.TR, k, s)
                rows.append({"model": name, "g": g, "k": k, "s": s, "mode": "TR",
                             "accuracy": golden.accuracy(netg, x, y, c),
                             "cycles": cycles(netg, c)})
    return rows


def best(rows: list[dict]) -> dict:
    """Per group size and overall: the fewest-cycle TR setting within the tolerance."""
    out = {}
    for g in GROUPS:
        conv = next(r for r in rows if r["g"] == g and r["mode"] == "conventional")
        ok = [r for r in rows if r["g"] == g and r["mode"] == "TR"
              and r["accuracy"] >= conv["accuracy"] - TOLERANCE]
        pick = min(ok, key=lambda r: (r["cycles"], -r["accuracy"]))
        out[g] = {**pick, "conventional_accuracy": conv["accuracy"],
                  "conventional_cycles": conv["cycles"],
                  "speedup": conv["cycles"] / pick["cycles"]}
    overall = min(out.values(), key=lambda r: (r["cycles"], -r["accuracy"]))
    return {"per_group": out, "overall": overall}


def markdown(name: str, picks: dict) -> str:
    lines = [f"### {name}", "",
             "| g | conventional accuracy | conventional cycles / inference | best TR (k, s) "
             "| accuracy | cycles / inference | speedup |", "|---|---|---|---|---|---|---|"]
    for g, r in picks["per_group"].items():
        lines.append(f"| {g} | {100 * r['conventional_accuracy']:.2f}% | "
                     f"{r['conventional_cycles']:.0f} | ({r['k']}, {r['s']}) | "
                     f"{100 * r['accuracy']:.2f}% | {r['cycles']:.0f} | {r['speedup']:.2f}x |")
    o = picks["overall"]
    lines += ["", f"Fewest cycles within 0.5 point of conventional mode: g = {o['g']}, "
              f"k = {o['k']}, s = {o['s']}: {100 * o['accuracy']:.2f}% (conventional "
              f"{100 * o['conventional_accuracy']:.2f}%), {o['cycles']:.0f} cycles per "
              f"inference against {o['conventional_cycles']:.0f}, {o['speedup']:.2f}x.", ""]
    return "\n".join(lines) + "\n"


def plot(all_rows: list[dict], picks: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(picks), figsize=(6 * len(picks), 4), sharey=True)
    for ax, (name, p) in zip(axes, picks.items(), strict=True):
        for g in GROUPS:
            tr = [r for r in all_rows if r["model"] == name and r["g"] == g
                  and r["mode"] == "TR"]
            ax.scatter([r["cycles"] for r in tr], [100 * r["accuracy"] for r in tr], s=10,
                       label=f"TR, g = {g}")
        conv = [r for r in all_rows if r["model"] == name and r["mode"] == "conventional"]
        ax.scatter([r["cycles"] for r in conv], [100 * r["accuracy"] for r in conv],
                   marker="s", color="black", label="conventional")
        o = p["overall"]
        ax.scatter([o["cycles"]], [100 * o["accuracy"]], marker="*", s=200, color="red",
                   label=f"chosen: g={o['g']} k={o['k']} s={o['s']}")
        ax.set_xscale("log")
        ax.set_title(f"{name}: digits MLP, signmag5 weights")
        ax.set_xlabel("cycles per inference (cycle model, batch 1, 8 columns)")
        ax.set_ylim(60, 95)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    axes[0].set_ylabel("test accuracy (%)")
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)


def synth_costs(nets: dict) -> list[dict]:
    from rtl_gen.flow.synth import (
        FlowError,
        component_verilog,
        place_and_route,
        synth,
    )
    from rtl_gen.hw.network import NetworkEngine
    out = []
    for label, net in nets.items():
        engine = NetworkEngine(net)
        top = f"net_{net.name}".replace("-", "_")
        verilog = component_verilog(engine, top)
        for dev in ("up5k", "ecp5-85f"):
            s = synth(verilog, top, dev)
            try:
                fmax = round(place_and_route(verilog, top, dev).fmax, 1)
            except FlowError as e:  # e.g. does not fit: the cells are still reported
                fmax = str(e).splitlines()[0]
            out.append({"network": label, "device": dev, "lc": s.logic_cells, "lut4": s.lut4,
                        "ff": s.ff, "dsp": s.dsp, "bram": s.bram, "fmax": fmax})
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synth", action="store_true",
                        help="also synthesize the TR and int4 networks (a few minutes)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    start = time.time()
    _, test = digits()
    all_rows, picks = [], {}
    for name, net in models().items():
        rows = sweep(name, net, test.x_int, test.y)
        all_rows += rows
        picks[name] = best(rows)
    text = "".join(markdown(n, p) for n, p in picks.items())
    costs = []
    if args.synth:
        costs = synth_costs({"TR (digits-tr, 1x8 term-pair array)":
                             read_bundle(WEIGHTS_DIR / "digits-tr"),
                             "int4 (digits-int4, 1x8 int4 PEs)":
                             read_bundle(WEIGHTS_DIR / "digits-int4")})
        text += ("\n| network | device | logic cells | LUT4 | FF | DSP | BRAM | MHz |\n"
                 "|---|---|---|---|---|---|---|---|\n")
        text += "".join(f"| {c['network']} | {c['device']} | {c['lc']} | {c['lut4']} | "
                        f"{c['ff']} | {c['dsp']} | {c['bram']} | {c['fmax']} |\n"
                        for c in costs)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "term_revealing.md").write_text(
        "# Term revealing: accuracy against cycles\n\nGenerated by "
        "`python benchmarks/term_revealing.py`; digits test split (360 images).\n\n" + text)
    (args.out / "term_revealing.json").write_text(json.dumps(
        {"rows": all_rows, "best": picks, "costs": costs,
         "seconds": round(time.time() - start)}, indent=1, default=str) + "\n")
    plot(all_rows, picks, args.out / "term_revealing.svg")
    print(f"{len(all_rows)} settings in {time.time() - start:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
