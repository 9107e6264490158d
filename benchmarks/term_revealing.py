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
TR network, the int4 network (the conventional PE array) and the int4 network on the
bit-serial engine for the UP5K and the LFE5U-85F, for their resource cost side by side.

**Against the bit-serial baseline** (the paper's footing): the same quantized network, term
revealing off, on the bit-serial engine (:class:`rtl_gen.hw.bitserial.BitSerialNetworkEngine`:
1 x 8 PEs of 16 lanes, the TR engine's shape with g = 16; ``w_prec * a_prec`` cycles per
step of 16 inputs; ``tests/test_bitserial_cocotb.py`` holds its Verilog to its cycle model).
The reference is the network's own accuracy at full precision (conventional mode); each
side takes its fewest-cycle setting within 0.5 point of it, the bit-serial engine over its
run-time precisions ``(w_prec, a_prec)`` (the most significant planes kept), TR over
``k`` and ``s`` at g = 16.  On digits (PTQ, ``signmag5``) and on an MNIST MLP at the paper's
setting (784-64-10, trained here in seconds on the 8,000 training images, 4-bit magnitudes
``signmag5``, g = 16, k in 6..14, 6-bit data; skipped when the MNIST data is missing, or
with ``--no-mnist``).  JSON: ``paper`` holds, per data set, ``reference_accuracy``, the
chosen ``tr`` and ``bitserial`` settings (each with ``accuracy`` and
``cycles_per_inference``), ``speedup`` and ``within_tolerance``.

**The group-per-cycle TR engine** (``ArrayConfig(tr_terms=P)``: PEs that add ``P`` weight
terms a cycle, :class:`rtl_gen.hw.tr.TRGroupArray`; ``tests/test_tr_cocotb.py`` holds its
Verilog to its cycle model): ``paper`` also holds ``tr_group`` (its fewest-cycle setting within
the tolerance, ``P`` = :data:`GROUP_TERMS` = 14, the paper's largest budget: one cycle a
group for ``k <= 14``), ``ratios`` (bit-serial cycles over each TR engine's, at <= 0.5 point and
against full precision) and ``accuracies`` (every chosen setting's, with the reference).
Cycles per inference are the network's steady interval, which counts the input stream (one
code a cycle: 64 for digits, 784 for MNIST); ``array_cycles_per_inference`` leaves it out
(the slowest layer's interval with its next batch already loaded).  **Wide ports**
(``tr_group_wide``, ``bitserial_wide``, ``ratios.bitserial_wide_over_tr_group_wide``): the
same arrays with the input port taking :data:`WIDE_INPUT` = 4 codes a cycle and every
hidden layer draining :data:`WIDE_DRAIN` = 2 results a cycle into the next
(``ArrayConfig(drain_width=2)``; ``tests/test_tr_cocotb.py`` runs the TR engine so); the
bit-serial side from its cycle model on the same ports (its engine drains one result a
cycle, and is bound by its steps anyway).
``--synth-group DEVICE`` synthesizes (and places and routes) only ``digits-tr`` on the group
engine, 1 x 2 PEs of ``P`` = 10 (the bundle's budget), for ``DEVICE``; synthesis results of
earlier runs stay in the JSON unless rerun.

**Term revealing at build time** (``--unrolled DEVICES [--seeds N] [--workdir DIR]``):
``digits-tr`` on the unrolled engine (``--engine unrolled``: its revealed weights as constants,
no run-time control), median Fmax over ``N`` nextpnr seeds, against the int4 design of the
most inferences/s per kLC in ``benchmarks/results/network.json`` for the same device; JSON
``unrolled``: per device ``tr_unrolled``, ``best_int4`` (each with its accuracy) and
``ratios`` (TR over int4: inferences/s per kLC, inferences/s, LC).

Run ``python benchmarks/term_revealing.py [--synth] [--unrolled DEVICES] [--no-mnist]
[--out DIR]``: prints Markdown tables and writes ``term_revealing.md``, ``term_revealing.json`` and
``term_revealing.svg`` (the plot) into ``--out`` (default ``benchmarks/results``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

from rtl_gen.bundle import read_bundle
from rtl_gen.data.digits import digits
from rtl_gen.design import golden
from rtl_gen.design.bitserial import bitserial_predict, weight_bits
from rtl_gen.design.golden import TRControl, TRMode, network_interval
from rtl_gen.design.network import TRConfig
from rtl_gen.design.timing import drain_stages
from rtl_gen.flow.synth import DEFAULT_SEEDS, DEFAULT_WORKDIR
from rtl_gen.hw.bitserial import bitserial_array, bitserial_timing
from rtl_gen.hw.bitserial import cycles_per_inference as bitserial_cycles
from rtl_gen.hw.layer import ArrayConfig
from rtl_gen.hw.network import plan_network
from rtl_gen.training.defaults import FLOAT_MODEL_NAME, WEIGHTS_DIR

RESULTS = Path(__file__).parent / "results"
GROUPS = (4, 8, 16, 32)
BUDGETS = (1, 2, 3, 4, 6, 8, 10, 12, 14, 16, 20, 24, 32)
DATA_TERMS = (1, 2, 3, 9)   # 9: every term of an 8-bit activation
TOLERANCE = 0.005           # within 0.5 point of conventional mode


def float_model():
    from rtl_gen.training.float_model import load_float_model
    return load_float_model(WEIGHTS_DIR / FLOAT_MODEL_NAME)


def models():
    from rtl_gen.training.quantize import quantize_mlp
    float_model_ = float_model()
    ptq = quantize_mlp(float_model_, "signmag5", name="digits-tr-ptq", tr=TRConfig(16, 10, 2))
    return {"ptq": ptq, "qat": read_bundle(WEIGHTS_DIR / "digits-tr")}


def regroup(net, g: int):
    layers = tuple(dataclasses.replace(layer, tr=dataclasses.replace(layer.tr, group=g))
                   for layer in net.layers)
    return dataclasses.replace(net, layers=layers)


def cycles(net, control, tr_terms: int = 1, wide: bool = False) -> float:
    """Cycles per inference of the TR network on the default arrays (batch 1, 8 columns),
    its PEs adding ``tr_terms`` weight terms a cycle (1: the slot-serial PE); ``wide``: on
    the wide ports (:func:`wide_arrays`)."""
    arrays = [ArrayConfig(tr_terms=tr_terms)] * len(net.layers)
    if wide:
        arrays = wide_arrays(net, arrays)
    arrays, timings = plan_network(net, arrays, control,
                                   in_per_beat=WIDE_INPUT if wide else 1)
    return network_interval(timings, net.input.features) / arrays[0].rows


def wide_drain(layer) -> int:
    """Results a cycle a layer drains on the wide ports: :data:`WIDE_DRAIN` for a hidden
    layer whose outputs it divides, else 1."""
    return WIDE_DRAIN if layer.activation == "relu" and layer.out_features % WIDE_DRAIN == 0 \
        else 1


def wide_arrays(net, arrays) -> list:
    """``arrays`` with every hidden layer draining :func:`wide_drain` results a cycle (the
    next layer takes them so)."""
    return [dataclasses.replace(a, drain_width=wide_drain(ly))
            for ly, a in zip(net.layers, arrays, strict=True)]


def wide_timings(net, timings) -> list:
    """The cycle models ``timings`` on the wide ports: the input port's :data:`WIDE_INPUT`
    codes a cycle, every hidden layer's :data:`WIDE_DRAIN` results a cycle (a model: the
    bit-serial engine drains one)."""
    out = []
    for i, (ly, t) in enumerate(zip(net.layers, timings, strict=True)):
        d = wide_drain(ly)
        per = WIDE_INPUT if i == 0 else out[-1].drain_width
        out.append(dataclasses.replace(
            t, drain_width=d, in_per_beat=per,
            drain_stages=drain_stages(t.rows * t.cols // d, ly.activation == "relu")))
    return out


def array_cycles(net, control, tr_terms: int = 1) -> float:
    """As :func:`cycles`, without the input stream's bound (one code a cycle, which also
    bounds how fast a layer's input bank fills): the slowest layer's interval with its next
    batch waiting."""
    arrays, timings = plan_network(net, [ArrayConfig(tr_terms=tr_terms)] * len(net.layers),
                                   control)
    return max(t.interval for t in timings) / arrays[0].rows


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


PAPER_GROUP = 16             # the paper's group size, and the bit-serial PEs' lanes
PAPER_BUDGETS = tuple(range(6, 15))
MNIST_SIZES = (784, 64, 10)
MNIST_BITS = 6               # the paper's data width (input and hidden activations)
CONVENTIONAL_BITS = (3, 4, 5, 6, 8)   # intB PTQ networks tried as bit-serial baselines
GROUP_TERMS = 14             # the group-per-cycle PE's term adders: the paper's largest k
WIDE_INPUT = 4               # the wide ports: input codes a cycle (a data-term unit each)
WIDE_DRAIN = 2               # and a hidden layer's results a cycle


def conventional_nets(model, prefix: str, **quant) -> dict:
    """The float ``model`` quantized conventionally (PTQ, ``intB`` weights, the same data
    widths as the TR network), one network per ``B`` of :data:`CONVENTIONAL_BITS`."""
    from rtl_gen.training.quantize import quantize_mlp
    return {f"int{b}": quantize_mlp(model, f"int{b}", name=f"{prefix}-int{b}-ptq", **quant)
            for b in CONVENTIONAL_BITS}


def mnist_ptq():
    """The MNIST MLP at the paper's setting: float training (numpy, seeded, a few epochs on
    the 8,000 training images), then PTQ to ``signmag5`` with g = 16 and 6-bit data.
    Returns ``(network, float model, test split as codes, test labels, float accuracy)``."""
    from rtl_gen.data.mnist import mnist
    from rtl_gen.training.float_model import FloatMLP, train_mlp
    from rtl_gen.training.quantize import quantize_mlp

    train, test = mnist()
    model = train_mlp(train.x, train.y, list(MNIST_SIZES), epochs=12, batch=64, lr=2e-3,
                      seed=0)
    model = FloatMLP(model.weights, model.biases, calibration=train.x[:2000])
    net = quantize_mlp(model, "signmag5", name="mnist-tr-ptq", input_bits=MNIST_BITS,
                       act_bits=MNIST_BITS, tr=TRConfig(PAPER_GROUP, 10, 2))
    h = test.x
    for i, (w, b) in enumerate(zip(model.weights, model.biases, strict=True)):
        h = h @ w.T + b
        if i < len(model.weights) - 1:
            h = np.maximum(h, 0)
    float_acc = float(np.mean(np.argmax(h, axis=1) == test.y))
    return net, model, net.input.quantize(test.x), test.y, float_acc


def serial_sweep(label: str, net, x, y) -> list[dict]:
    """``net`` on the bit-serial engine (1 x 8 PEs of 16 lanes) at every run-time precision
    pair: accuracy and cycles per inference."""
    arrays = [bitserial_array(PAPER_GROUP) for _ in net.layers]
    w_full = max(weight_bits(ly) for ly in net.layers)
    a_full = max(ly.in_bits for ly in net.layers)
    rows = []
    for wp in range(1, w_full + 1):
        for ap in range(1, a_full + 1):
            acc = float(np.mean(bitserial_predict(net, x, wp, ap) == y))
            timings = [bitserial_timing(ly, a, wp, ap)
                       for ly, a in zip(net.layers, arrays, strict=True)]
            rows.append({"network": label, "w_prec": wp, "a_prec": ap, "accuracy": acc,
                         "full": (wp, ap) == (w_full, a_full),
                         "cycles_per_inference": bitserial_cycles(net, arrays, wp, ap),
                         "wide_cycles_per_inference": network_interval(
                             wide_timings(net, timings), net.input.features) / arrays[0].rows,
                         "array_cycles_per_inference":
                             max(t.interval for t in timings) / arrays[0].rows})
    return rows


def paper_comparison(net, x, y, conventional: dict, *, budgets=PAPER_BUDGETS,
                     data_terms=DATA_TERMS) -> dict:
    """TR at g = 16 against conventional quantization on the bit-serial engine (1 x 8 PEs of
    16 lanes), each at its fewest-cycle setting within :data:`TOLERANCE` of the TR network's
    conventional (full-precision) accuracy.  The bit-serial side tries the TR network itself
    (TR off) and every network of ``conventional`` (name: integer network), at every
    run-time precision."""
    netg = regroup(net, PAPER_GROUP)
    reference = golden.accuracy(netg, x, y, TRControl(TRMode.CONVENTIONAL))
    floor = reference - TOLERANCE
    serial = serial_sweep(f"{net.name} (TR off)", net, x, y)
    full = next(r for r in serial if r["full"])
    for label, cnet in conventional.items():
        serial += serial_sweep(label, cnet, x, y)
    tr, group = [], []
    for k in budgets:
        for s in data_terms:
            c = TRControl(TRMode.TR, k, s)
            acc = golden.accuracy(netg, x, y, c)
            tr.append({"g": PAPER_GROUP, "k": k, "s": s, "accuracy": acc,
                       "cycles_per_inference": cycles(netg, c),
                       "array_cycles_per_inference": array_cycles(netg, c)})
            group.append({"g": PAPER_GROUP, "k": k, "s": s, "terms_per_cycle": GROUP_TERMS,
                          "accuracy": acc,
                          "cycles_per_inference": cycles(netg, c, GROUP_TERMS),
                          "wide_cycles_per_inference": cycles(netg, c, GROUP_TERMS, wide=True),
                          "array_cycles_per_inference": array_cycles(netg, c, GROUP_TERMS)})

    def pick(rows, key="cycles_per_inference"):
        ok = [r for r in rows if r["accuracy"] >= floor - 1e-12]
        return min(ok, key=lambda r: (r[key], -r["accuracy"])) if ok else None

    def ratio(a, b, key="cycles_per_inference"):
        return a[key] / b[key] if a and b else None

    b, t, tg = pick(serial), pick(tr), pick(group)
    tg_array = pick(group, "array_cycles_per_inference")
    b_array = pick(serial, "array_cycles_per_inference")
    tg_wide = pick(group, "wide_cycles_per_inference")
    b_wide = pick(serial, "wide_cycles_per_inference")
    return {
        "network": net.name, "images": int(len(y)), "tolerance": TOLERANCE,
        "reference": "the network's conventional accuracy (TR off, full precision)",
        "reference_accuracy": reference,
        "array": "1 x 8 PEs; bit-serial: 16 lanes; TR: groups of 16",
        "conventional_networks": {label: cnet.name for label, cnet in conventional.items()},
        "bitserial_full": full,
        "bitserial": b, "tr": t,
        "speedup": (b["cycles_per_inference"] / t["cycles_per_inference"]) if b and t
        else None,
        "speedup_vs_full_precision": (full["cycles_per_inference"]
                                      / t["cycles_per_inference"]) if t else None,
        "within_tolerance": bool(b and t),
        "tr_group": tg, "tr_group_terms_per_cycle": GROUP_TERMS,
        "tr_group_array_bound": tg_array, "bitserial_array_bound": b_array,
        "wide_ports": {"input_codes_per_cycle": WIDE_INPUT,
                       "hidden_results_per_cycle": WIDE_DRAIN},
        "tr_group_wide": tg_wide, "bitserial_wide": b_wide,
        "ratios": {
            "bitserial_wide_over_tr_group_wide": ratio(b_wide, tg_wide,
                                                       "wide_cycles_per_inference"),
            "bitserial_over_tr_slot": ratio(b, t),
            "bitserial_over_tr_group": ratio(b, tg),
            "bitserial_full_over_tr_group": ratio(full, tg),
            "tr_slot_over_tr_group": ratio(t, tg),
            "bitserial_over_tr_group_array_bound": ratio(
                b_array, tg_array, "array_cycles_per_inference"),
        },
        "accuracies": {
            "reference": reference,
            "bitserial": b["accuracy"] if b else None,
            "bitserial_full": full["accuracy"],
            "tr_slot": t["accuracy"] if t else None,
            "tr_group": tg["accuracy"] if tg else None,
            "tr_group_array_bound": tg_array["accuracy"] if tg_array else None,
            "bitserial_array_bound": b_array["accuracy"] if b_array else None,
            "tr_group_wide": tg_wide["accuracy"] if tg_wide else None,
            "bitserial_wide": b_wide["accuracy"] if b_wide else None,
        },
        "bitserial_rows": serial, "tr_rows": tr, "tr_group_rows": group,
    }


def paper_markdown(name: str, p: dict) -> str:
    b, t, f = p["bitserial"], p["tr"], p["bitserial_full"]
    lines = [f"### TR against the bit-serial baseline: {name}", "",
             f"{p['network']}, {p['images']} test images; reference (TR off, full "
             f"precision) {100 * p['reference_accuracy']:.2f}%; each side's fewest cycles "
             "within 0.5 point of it, on 1 x 8 PEs (bit-serial: 16 lanes; TR: g = 16).", "",
             "| engine | network | setting | accuracy | cycles / inference |",
             "|---|---|---|---|---|",
             f"| bit-serial, full precision | {f['network']} | w {f['w_prec']} x a "
             f"{f['a_prec']} bits | {100 * f['accuracy']:.2f}% | "
             f"{f['cycles_per_inference']:.0f} |"]
    if b:
        lines.append(f"| bit-serial, fewest cycles | {b['network']} PTQ | w {b['w_prec']} x "
                     f"a {b['a_prec']} bits | {100 * b['accuracy']:.2f}% | "
                     f"{b['cycles_per_inference']:.0f} |")
    if t:
        lines.append(f"| term revealing, slot-serial PEs | {p['network']} | g {t['g']}, k "
                     f"{t['k']}, s {t['s']} | {100 * t['accuracy']:.2f}% | "
                     f"{t['cycles_per_inference']:.0f} |")
    tg, ta = p["tr_group"], p["tr_group_array_bound"]
    if tg:
        lines.append(f"| term revealing, group-per-cycle PEs (P = {tg['terms_per_cycle']}) | "
                     f"{p['network']} | g {tg['g']}, k {tg['k']}, s {tg['s']} | "
                     f"{100 * tg['accuracy']:.2f}% | {tg['cycles_per_inference']:.0f} "
                     f"({tg['array_cycles_per_inference']:.0f} without the input stream) |")
    tw, bw = p.get("tr_group_wide"), p.get("bitserial_wide")
    if tw and bw:
        ports = p["wide_ports"]
        lines.append(f"| bit-serial, wide ports ({ports['input_codes_per_cycle']} codes in, "
                     f"{ports['hidden_results_per_cycle']} results out a cycle) | "
                     f"{bw['network']} | w {bw['w_prec']} x a {bw['a_prec']} bits | "
                     f"{100 * bw['accuracy']:.2f}% | {bw['wide_cycles_per_inference']:.0f} |")
        lines.append(f"| term revealing, group-per-cycle PEs (P = {tw['terms_per_cycle']}), "
                     f"wide ports | {p['network']} | g {tw['g']}, k {tw['k']}, s {tw['s']} | "
                     f"{100 * tw['accuracy']:.2f}% | {tw['wide_cycles_per_inference']:.0f} |")
    lines.append("")
    r = p["ratios"]
    if p["speedup"]:
        lines.append(f"TR, slot-serial: {p['speedup']:.2f}x fewer cycles than the bit-serial "
                     f"baseline at ≤ 0.5 point loss ({p['speedup_vs_full_precision']:.2f}x "
                     "against it at full precision).")
    else:
        lines.append("No setting of one side is within 0.5 point of the reference.")
    if r["bitserial_over_tr_group"]:
        lines.append(f"TR, group-per-cycle: {r['bitserial_over_tr_group']:.2f}x fewer cycles "
                     f"than the bit-serial baseline at ≤ 0.5 point loss "
                     f"({r['bitserial_full_over_tr_group']:.2f}x against it at full "
                     f"precision; {r['bitserial_over_tr_group_array_bound']:.2f}x without the "
                     f"input stream, k {ta['k']}, s {ta['s']}, "
                     f"{100 * ta['accuracy']:.2f}%).")
    if r.get("bitserial_wide_over_tr_group_wide"):
        lines.append(f"TR, group-per-cycle on the wide ports: "
                     f"{r['bitserial_wide_over_tr_group_wide']:.2f}x fewer cycles than the "
                     f"bit-serial baseline on the same ports at ≤ 0.5 point loss "
                     f"({100 * tw['accuracy']:.2f}% against {100 * bw['accuracy']:.2f}%).")
    return "\n".join(lines) + "\n\n"


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


#: ``--synth-group``: the group-per-cycle TR network synthesized, as ``(label, arrays)``: two
#: columns (the network is bound by its input stream from two columns up, 65 cycles per
#: inference against 64 on eight) of PEs with the bundle's budget of term adders.
GROUP_SYNTH = ("TR group-per-cycle (digits-tr, 1x2 PEs of P = 10 term adders)",
               ArrayConfig(cols=2, tr_terms=0))
#: The slot-serial array whose PEs read their activations from block RAM copies of the banks.
MEMORY_SYNTH = ("TR, PEs reading block RAM copies (digits-tr, 1x8 term-pair array)",
                ArrayConfig(cols=8, tr_read="memory"))


def synth_costs(nets: dict, devices=("up5k", "ecp5-85f")) -> list[dict]:
    """Synthesis (and place and route) of each network: ``label -> net`` or ``label ->
    (net, per-layer ArrayConfig)``; a label with "bit-serial" builds the bit-serial
    engine."""
    from rtl_gen.flow.synth import (
        FlowError,
        component_verilog,
        place_and_route,
        synth,
    )
    from rtl_gen.hw.bitserial import BitSerialNetworkEngine
    from rtl_gen.hw.network import NetworkEngine
    out = []
    for label, net in nets.items():
        net, arrays = net if isinstance(net, tuple) else (net, None)
        serial = "bit-serial" in label
        engine = BitSerialNetworkEngine(net) if serial else NetworkEngine(net, arrays)
        top = f"{'bitserial' if serial else 'net'}_{net.name}".replace("-", "_")
        if arrays is not None and arrays[0].tr_terms != 1:
            top += "_group"
        if arrays is not None and arrays[0].tr_read == "memory":
            top += "_memory"
        verilog = component_verilog(engine, top)
        for dev in devices:
            s = synth(verilog, top, dev)
            try:
                fmax = round(place_and_route(verilog, top, dev).fmax, 1)
            except FlowError as e:  # e.g. does not fit: the cells are still reported
                fmax = str(e).splitlines()[0]
            out.append({"network": label, "device": dev, "lc": s.logic_cells, "lut4": s.lut4,
                        "ff": s.ff, "dsp": s.dsp, "bram": s.bram, "fmax": fmax})
    return out


def unrolled_against_int4(devices, seeds: int, workdir: Path, timeout: float,
                          recorded: Path) -> list[dict]:
    """digits-tr on the unrolled engine (``--engine unrolled --fit DEVICE``: term revealing
    fixed at the bundle's k = 10 of g = 16 and s = 2, the revealed weights as constants),
    placed and routed with nextpnr seeds ``1..seeds``, against the int4 design of the most
    inferences/s per kLC that ``benchmarks/network.py`` recorded for the same device
    (``recorded``: its ``--fit`` and uniform rows of digits-int4), with both accuracies."""
    import network as bench  # benchmarks/network.py, next to this script

    from rtl_gen.flow.synth import component_verilog

    net = read_bundle(WEIGHTS_DIR / "digits-tr")
    rows = json.loads(recorded.read_text())
    int4 = [r for r in rows["rows"] + rows.get("uniform_rows", [])
            if r["name"] == "digits-int4" and r.get("derived")]
    out = []
    for dev in devices:
        engine, row = bench.fit_design(net, dev, "unrolled")
        row.pop("planner")
        top = bench.verilog_top(net)
        row.update(bench.measure(component_verilog(engine, top), top, dev, workdir, seeds,
                                 timeout))
        row["derived"] = bench.derived(row)
        row["accuracy"] = bench.accuracy(net)
        res = {"device": dev, "tr_unrolled": row, "seeds": seeds}
        same = [r for r in int4 if r["device"] == dev]
        if same and row["derived"]:
            best = max(same, key=lambda r: r["derived"]["inferences_per_s_per_klc"])
            res["best_int4"] = {k: best[k] for k in ("engine", "lc", "fmax", "fmax_seeds",
                                                     "cycles_per_inference", "latency_cycles",
                                                     "accuracy", "derived", "date")
                                if k in best}
            a, b = row["derived"], best["derived"]
            res["ratios"] = {
                "inferences_per_s_per_klc": round(a["inferences_per_s_per_klc"]
                                                  / b["inferences_per_s_per_klc"], 2),
                "inferences_per_s": round(a["inferences_per_s"] / b["inferences_per_s"], 2),
                "lc": round(row["lc"] / best["lc"], 2)}
        out.append(res)
    return out


def unrolled_markdown(results: list[dict]) -> str:
    lines = ["\nTerm revealing at build time (digits-tr on the unrolled engine, k = 10 of "
             "16, s = 2; `--engine unrolled --fit DEVICE`) against the best int4 design "
             "recorded by `benchmarks/network.py` on the same device:\n",
             "| device | design | accuracy | LC | median MHz (seeds) | inferences/s | per kLC "
             "| latency |", "|---|---|---|---|---|---|---|---|"]
    for res in results:
        for name, r in (("TR unrolled", res["tr_unrolled"]), ("best int4", res.get("best_int4"))):
            if r is None:
                continue
            x = r.get("derived") or {}
            fmax = (f"{r['fmax']} ({len(r.get('fmax_seeds', []))})" if "fmax" in r
                    else r.get("error", ""))
            lines.append(f"| {res['device']} | {name} ({r['engine']}) | "
                         f"{100 * r['accuracy']:.2f}% | {r['lc']:,} | {fmax} | "
                         f"{x.get('inferences_per_s', 0):,} | "
                         f"{x.get('inferences_per_s_per_klc', 0):,} | "
                         f"{r['latency_cycles']} cycles |")
        if "ratios" in res:
            q = res["ratios"]
            lines.append(f"| {res['device']} | TR / int4 | | {q['lc']}x | | "
                         f"{q['inferences_per_s']}x | {q['inferences_per_s_per_klc']}x | |")
    return "\n".join(lines) + "\n"


def merge_costs(path: Path, costs: list[dict]) -> list[dict]:
    """``costs`` after the earlier run's (in the JSON at ``path``) that it does not redo."""
    try:
        old = json.loads(path.read_text()).get("costs", [])
    except (OSError, ValueError):
        old = []
    done = {(c["network"], c["device"]) for c in costs}
    return [c for c in old if (c["network"], c["device"]) not in done] + costs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synth", action="store_true",
                        help="also synthesize the TR, int4 and bit-serial int4 networks "
                             "(several minutes)")
    parser.add_argument("--synth-group", metavar="DEVICE",
                        help="synthesize only digits-tr on the group-per-cycle TR engine for "
                             "DEVICE (e.g. up5k)")
    parser.add_argument("--synth-memory", metavar="DEVICES",
                        help="synthesize only digits-tr on the PEs reading block RAM copies "
                             "for these devices (comma-separated, e.g. up5k,ecp5-85f)")
    parser.add_argument("--unrolled", metavar="DEVICES",
                        help="also place and route digits-tr on the unrolled engine (term "
                             "revealing fixed at the bundle's setting) for these devices "
                             "(comma-separated) against the best int4 design of "
                             "benchmarks/results/network.json")
    parser.add_argument("--seeds", type=int, default=DEFAULT_SEEDS, metavar="N",
                        help=f"--unrolled: median Fmax over nextpnr seeds 1..N (default "
                             f"{DEFAULT_SEEDS})")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR,
                        help="--unrolled: the flow's cache")
    parser.add_argument("--no-mnist", action="store_true",
                        help="skip the MNIST MLP (trained in about half a minute)")
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
    ptq = models()["ptq"]
    paper = {"digits": paper_comparison(
        ptq, test.x_int, test.y, conventional_nets(float_model(), "digits"),
        budgets=tuple(sorted(set(BUDGETS) | set(PAPER_BUDGETS))))}
    text += paper_markdown("digits", paper["digits"])
    if not args.no_mnist:
        from rtl_gen.errors import DataError
        try:
            net, model, x_m, y_m, float_acc = mnist_ptq()
        except DataError as e:
            print(f"MNIST skipped: {e}", file=sys.stderr)
        else:
            paper["mnist"] = paper_comparison(
                net, x_m, y_m, conventional_nets(model, "mnist", input_bits=MNIST_BITS,
                                                 act_bits=MNIST_BITS))
            paper["mnist"]["float_accuracy"] = float_acc
            text += paper_markdown(f"MNIST MLP {'-'.join(map(str, MNIST_SIZES))} (float "
                                   f"{100 * float_acc:.2f}%)", paper["mnist"])
    costs = []
    tr_net = read_bundle(WEIGHTS_DIR / "digits-tr")
    group = {GROUP_SYNTH[0]: (tr_net, [GROUP_SYNTH[1]] * len(tr_net.layers))}
    memory = {MEMORY_SYNTH[0]: (tr_net, [MEMORY_SYNTH[1]] * len(tr_net.layers))}
    if args.synth:
        costs = synth_costs({"TR (digits-tr, 1x8 term-pair array)": tr_net,
                             "int4 (digits-int4, 1x8 int4 PEs)":
                             read_bundle(WEIGHTS_DIR / "digits-int4"),
                             "int4 bit-serial (digits-int4, 1x8 bit-serial PEs of 16 lanes)":
                             read_bundle(WEIGHTS_DIR / "digits-int4"), **group, **memory})
    elif args.synth_group:
        costs = synth_costs(group, (args.synth_group,))
    elif args.synth_memory:
        costs = synth_costs(memory, tuple(args.synth_memory.split(",")))
    costs = merge_costs(args.out / "term_revealing.json", costs)
    try:
        unrolled = json.loads((args.out / "term_revealing.json").read_text()).get(
            "unrolled", [])
    except (OSError, ValueError):
        unrolled = []
    if args.unrolled:
        new = unrolled_against_int4(args.unrolled.split(","), args.seeds, args.workdir,
                                    3600.0, RESULTS / "network.json")
        done = {r["device"] for r in new}
        unrolled = [r for r in unrolled if r["device"] not in done] + new
    if costs:
        text += ("\n| network | device | logic cells | LUT4 | FF | DSP | BRAM | MHz |\n"
                 "|---|---|---|---|---|---|---|---|\n")
        text += "".join(f"| {c['network']} | {c['device']} | {c['lc']} | {c['lut4']} | "
                        f"{c['ff']} | {c['dsp']} | {c['bram']} | {c['fmax']} |\n"
                        for c in costs)
    if unrolled:
        text += unrolled_markdown(unrolled)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "term_revealing.md").write_text(
        "# Term revealing: accuracy against cycles\n\nGenerated by "
        "`python benchmarks/term_revealing.py`; digits test split (360 images).\n\n" + text)
    (args.out / "term_revealing.json").write_text(json.dumps(
        {"rows": all_rows, "best": picks, "paper": paper, "costs": costs, "unrolled": unrolled,
         "seconds": round(time.time() - start)}, indent=1, default=str) + "\n")
    plot(all_rows, picks, args.out / "term_revealing.svg")
    print(f"{len(all_rows)} settings in {time.time() - start:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
