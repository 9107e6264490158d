"""Every shipped integer digits network at the folding planner's ``--fit`` choice, per device.

For each shipped integer bundle and each device (the UP5K and the LFE5U-85F), the design is
the one ``rtl-gen synth --bundle B --device D --fit D`` builds (``--engine auto``, the board
build without cycle counters): the unrolled engine
(:class:`rtl_gen.hw.unrolled.UnrolledNetworkEngine`, one image a cycle) when it fits the
device with the planner's margin, else the time-multiplexed arrays the folding planner sizes
for the fastest design that fits (:func:`rtl_gen.tasks.common.unrolled_choice`,
:func:`rtl_gen.tasks.common.fold`).  Each row reports:

* the engine, the per-layer arrays (``rows x cols x lanes``) and input codes per cycle;
* the planner's estimated logic next to synthesis, the same count (iCE40 logic cells,
  ECP5 ``TRELLIS_COMB``) of the same bare network: the area model of
  :mod:`rtl_gen.design.area` for the arrays, :func:`rtl_gen.hw.planner.unrolled_area` for
  the unrolled engine;
* Yosys cells after packing (iCE40 logic cells / ECP5 ``TRELLIS_COMB``, LUT4, carry, FF,
  DSP, BRAM) of the bare network, and nextpnr Fmax inside the flow's three-pin harness: the
  median over nextpnr seeds 1..N (``--seeds N``, default 5), each seed's kept in the JSON;
* the cycle model's cycles per inference (interval over batch) and latency (the unrolled
  pipeline's depth; for the arrays the first layer's input load plus every layer's batch
  cycles, one image alone in the engine), and from the median Fmax: inferences per second,
  per thousand LC, latency in ns;
* the bundle's top-1 accuracy on the digits test split (360 images), from the golden model
  that the cocotb tests hold the hardware to bit for bit;
* the share of the network's LUT4 cells that are in its processing elements (PEs).  What
  counts as PE: in the arrays engine, each dot-product unit of a layer's systolic array
  (the module ``<layer>.array.pe_<row>_<col>``, :data:`PE_MODULE`: its multipliers or sign
  selects per lane, its lane adder tree and its accumulator) and nothing else: not the
  layer's input banks, weight ROM, tile sequencer, drain, bias and requantizer, credit
  FIFO or the array's operand registers, nor the chain's argmax and logits' drain.  They
  are counted in a second synthesis of the same Verilog with the PE, layer and FIFO modules
  kept (:func:`pe_share`, :func:`rtl_gen.flow.synth.module_cells`; the arrays' own
  registers flattened into their layer), whose total (``hier_lut4``) is compared with the
  flat count: kept boundaries stop Yosys sharing logic between PEs, so ``pe_share_flat``
  also gives the share with that difference taken off the PEs.  In the unrolled engine
  (one module), a LUT4 of the flat netlist is PE when every register its output reaches
  through logic holds an adder-graph node or accumulator (the constant-matrix adder graphs,
  bias included; :func:`unrolled_pe_share`); the requantizers (shift-and-add, or the
  address clamps of their tables in block RAM), the argmax and the output buffer are not,
  and an adder level computed in the requantizer's first pipeline slot counts with the
  requantizer.  On the ECP5 the share is also given counting the two LUT4s of each
  ``CCU2C`` carry cell (``pe_share_with_carry``).  The term-pair layers build their PEs
  inside the layer module: no share.

Each network and device also gets the **uniform** row (``uniform_rows`` in the JSON, apart
from the ``--fit`` rows that ``tests/test_area_model.py`` holds the planner to): the design
``rtl-gen synth`` builds with no folding option (:func:`uniform_design`: the arrays engine,
every layer ``--cols 8`` and the default ``--array-lanes``), with the same columns; each
``--fit`` row's ``over_uniform`` gives its inferences/s and inferences/s per kLC over the
uniform row's.

Run ``python benchmarks/network.py [--schemes int8,ternary] [--devices up5k]
[--designs fit,uniform] [--seeds N] [--jobs N] [--out DIR] [--workdir DIR]``: runs one
tool at a time (``--jobs N``: N nextpnr seeds of a design at once), prints progress to
stderr and a Markdown table to stdout, and writes ``network.md`` and ``network.json`` into
``--out`` (default ``benchmarks/results``) after every row, keeping the rows of that
file's networks, devices and designs this run does not redo.
``--estimates-only`` runs no tool: the recorded rows take the planner's current estimate
where its ``--fit`` choice is still the design they measured (after a recalibration of the
area model).  Builds are cached under ``--workdir`` (default ``build/flow``), keyed by the
Verilog and the tool versions.
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

from rtl_gen.bundle import read_bundle
from rtl_gen.design import golden
from rtl_gen.flow.synth import (
    DEFAULT_SEEDS,
    DEFAULT_WORKDIR,
    ROUTERS,
    FlowError,
    clock_pin_label,
    component_verilog,
    module_cells,
    place_and_route_seeds,
    synth,
    tool_versions,
)
from rtl_gen.training.defaults import WEIGHTS_DIR

RESULTS = Path(__file__).parent / "results"
DEVICES = ("up5k", "ecp5-85f")
#: The designs measured per network and device: the planner's ``--fit`` choice and the
#: uniform design (:func:`uniform_design`).
DESIGNS = ("fit", "uniform")
#: Every shipped integer bundle (``weights/digits-*``).
SCHEMES = ("binary", "ternary", "pot4", "apot4", "int4", "int8", "mixed", "tr")


#: Seconds each tool (Yosys, one nextpnr seed) may run, as in the flow; the largest
#: unrolled designs (25-47k logic cells on the LFE5U-85F) take longer to route here.
DEFAULT_TIMEOUT = 1800.0


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {value:g}")
    return value


def add_timeout_argument(parser: argparse.ArgumentParser) -> None:
    """``--timeout SECONDS``: each tool's limit (:data:`DEFAULT_TIMEOUT`), refused by the
    parser unless positive."""
    parser.add_argument("--timeout", type=_seconds, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                        help=f"stop each synthesis or nextpnr seed after this long (default "
                        f"{DEFAULT_TIMEOUT:g})")


def add_router_argument(parser: argparse.ArgumentParser) -> None:
    """``--router NAME``: nextpnr's router for every design of the run (both sides of a
    comparison), one of :data:`rtl_gen.flow.ROUTERS`."""
    parser.add_argument("--router", choices=ROUTERS, default=ROUTERS[0],
                        help="nextpnr's router for every design (default %(default)s; router2 "
                        "is nextpnr's newer, multi-pass one)")


def add_jobs_argument(parser: argparse.ArgumentParser) -> None:
    """``--jobs N``: nextpnr seeds of one design placed at once."""
    parser.add_argument("--jobs", type=_positive, default=1, metavar="N",
                        help="nextpnr seeds of a design placed at once, one process and "
                        "core each (default 1; the results do not depend on it)")


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, not {text!r}")
    return n


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def accuracy(net) -> float:
    """Top-1 accuracy of the golden model on the digits test split."""
    from rtl_gen.data.digits import digits

    _, test = digits()
    logits = golden.forward(net, test.x_int)
    return float(np.mean(np.argmax(logits, axis=1) == test.y))


def fit_design(net, device: str, engine: str = "auto") -> tuple[object, dict]:
    """The engine ``--fit device --engine engine`` (no cycle counters) builds for ``net``,
    and its description: engine, arrays, input codes per cycle, cycles per inference,
    latency (cycles), the planner's estimated logic and its messages."""
    from rtl_gen.hw.network import NetworkEngine, plan_chain
    from rtl_gen.hw.planner import array_spec, unrolled_fit
    from rtl_gen.hw.unrolled import UnrolledNetworkEngine
    from rtl_gen.tasks.common import FoldingOptions, fold, unrolled_choice

    folding = FoldingOptions(fit=device, engine=engine)
    messages: list[str] = []
    unrolled = unrolled_choice(net, folding, messages.append)
    if unrolled is not None:
        engine = UnrolledNetworkEngine.from_plan(unrolled)
        estimate, _ = unrolled_fit(unrolled, device, folding.margin)
        return engine, {"engine": "unrolled", "adders": unrolled.adders, "stage": unrolled.stage,
                        "multiplier": unrolled.multiplier, "requantizer_tables": unrolled.tables,
                        "in_per_beat": net.layers[0].in_features,
                        "cycles_per_inference": float(engine.interval),
                        "latency_cycles": engine.latency,
                        "estimated_logic": round(estimate), "planner": messages}
    plan = fold(net, folding)
    messages.append(plan.table())
    engine = NetworkEngine.from_plan(plan_chain(net, list(plan.arrays),
                                                in_per_beat=plan.in_per_beat, counters=False))
    timings = engine.timings
    latency = timings[0].load_cycles + sum(t.batch_cycles for t in timings)
    return engine, {"engine": "arrays",
                    "arrays": [array_spec(a) for a in engine.arrays],
                    "in_per_beat": engine.in_per_beat, "interval": engine.interval,
                    "rows": engine.rows,
                    "cycles_per_inference": engine.interval / engine.rows,
                    "latency_cycles": latency,
                    "estimated_logic": round(plan.area.logic), "planner": messages}


def uniform_design(net) -> tuple[object, dict]:
    """The engine ``rtl-gen synth`` builds with no folding option (the arrays engine, every
    layer the same array: ``--cols 8``, the default ``--array-lanes``, one row; no cycle
    counters) and its description, as :func:`fit_design`'s (the estimate: the area model
    of :mod:`rtl_gen.design.area` for this design)."""
    from rtl_gen.design.area import estimate_network
    from rtl_gen.devices import get_device
    from rtl_gen.hw.network import NetworkEngine
    from rtl_gen.hw.planner import engine_shape
    from rtl_gen.tasks.generate import network_plan

    plan = network_plan(net, counters=False)
    engine = NetworkEngine.from_plan(plan)
    timings = engine.timings
    latency = timings[0].load_cycles + sum(t.batch_cycles for t in timings)
    shapes = [engine_shape(p) for _, _, p in plan.stages]
    estimates = {d: round(estimate_network(shapes, get_device(d).family).logic)
                 for d in DEVICES}
    return engine, {"engine": "arrays",
                    "arrays": [f"{a.rows}x{a.cols}x{a.lanes}" for a in engine.arrays],
                    "in_per_beat": engine.in_per_beat, "interval": engine.interval,
                    "rows": engine.rows,
                    "cycles_per_inference": engine.interval / engine.rows,
                    "latency_cycles": latency, "estimates": estimates}


#: The processing elements of the arrays engine: each ``DotProductUnit`` of a layer's
#: systolic array, the module ``<layer>.array.pe_<row>_<col>`` (its multiplier or sign
#: select per lane, its lane adder tree and its accumulator), and anything below it.
PE_MODULE = re.compile(r"(^|\.)array\.pe_\d+_\d+(\.|$)")


def kept_modules(verilog: str, top: str) -> list[str]:
    """The modules of the arrays engine's Verilog kept as modules for :func:`pe_share`:
    every one but the top and the systolic arrays (``<layer>.array``: only operand skew
    and result registers, flattened into their layer: ABC9 fails on that module alone)."""
    names = re.findall(r"^module \\?([^\s(]+)", verilog, re.M)
    return [n for n in names if n != top and not n.endswith(".array")]


def part_of(path: str) -> str:
    """The part of the arrays engine a module path (below the top) belongs to:
    ``network`` (the top: the chain's argmax, its logits' drain and input port),
    ``<layer> PE`` (:data:`PE_MODULE`), ``<layer> fifo`` (the layer's credit FIFO),
    ``<layer> layer`` (the layer engine's own logic with its array's operand skew and
    result registers: input banks, weight ROM, tile sequencer, drain, bias and
    requantizer, flow control), else ``<layer> <rest of the path>``."""
    if not path:
        return "network"
    layer, _, rest = path.partition(".")
    if PE_MODULE.search(path):
        return f"{layer} PE"
    return f"{layer} {rest or 'layer'}"


def pe_share(verilog: str, top: str, device: str, workdir: Path, flat_lut4: int) -> dict:
    """The LUT4 of the processing elements against the whole network's, from a synthesis
    of the same Verilog with its hierarchy kept (:func:`rtl_gen.flow.synth.module_cells`):
    ``pe_lut4``, ``hier_lut4`` (the whole design's, to compare with the flat count
    ``flat_lut4``), ``pe_share`` (``pe_lut4 / hier_lut4``), ``pe_share_flat`` (the share
    in the flat netlist when the LUT4s the PE boundaries cost, ``hier_lut4 - flat_lut4``,
    are all PE logic: ``(pe_lut4 - hier_lut4 + flat_lut4) / flat_lut4``), the carry cells
    (``pe_carry``, ``hier_carry``) and ``parts``: LUT4 per :func:`part_of` part."""
    from rtl_gen.devices import get_device

    t0 = time.time()
    hier = module_cells(verilog, top, device, keep=kept_modules(verilog, top),
                        workdir=workdir)
    parts: dict[str, int] = {}
    for path, cells in hier.modules.items():
        parts[part_of(path)] = parts.get(part_of(path), 0) + cells["lut4"]
    pe = hier.under(lambda p: bool(PE_MODULE.search(p)))
    total = hier.total()
    # The PE boundaries cost LUT4s the flat netlist shares between PEs (checked on
    # digits-binary: within 1% of the same total with only the PEs kept as modules); the
    # flat share takes the difference off the PEs.
    gap = total - flat_lut4
    d = {"pe_lut4": pe, "hier_lut4": total, "pe_share": round(pe / total, 4) if total else None,
         "pe_share_flat": round((pe - gap) / flat_lut4, 4) if flat_lut4 else None,
         "pe_carry": hier.under(lambda p: bool(PE_MODULE.search(p)), "carry"),
         "hier_carry": hier.total("carry"), "parts": dict(sorted(parts.items()))}
    if get_device(device).family == "ecp5":  # each CCU2C holds two LUT4s besides
        both = total + 2 * d["hier_carry"]
        d["pe_share_with_carry"] = round((pe + 2 * d["pe_carry"]) / both, 4) if both else None
    if hier.note:
        d["hier_note"] = hier.note
    if not any(PE_MODULE.search(p) for p in hier.modules):
        # the term-pair layer (rtl_gen.hw.tr_layer) builds its PEs inside the layer module
        for k in ("pe_lut4", "pe_share", "pe_share_flat", "pe_carry", "pe_share_with_carry"):
            d.pop(k, None)
        d["pe_note"] = "no PE modules: the layers' PEs are built inside the layer modules"
    log(f"  {top} on {device}: PEs {pe} of {total} LUT4 ({100 * pe / max(total, 1):.1f}%), "
        f"flat {flat_lut4} ({time.time() - t0:.0f} s)")
    return d


#: The unrolled engine's registers by name (:class:`rtl_gen.hw.unrolled.UnrolledNetworkEngine`
#: names each value ``l<layer>_...`` and each of its pipeline registers ``<value>_s<slot>``):
#: ``(group, pattern)``, the first that matches.  The adder graphs' nodes and accumulators
#: (``l<i>_n<k>``, ``l<i>_acc<k>``) are the engine's processing elements.
UNROLLED_GROUPS = (
    ("adder graph", re.compile(r"l\d+_(n|acc)\d+(_s\d+)?$")),
    ("input", re.compile(r"(x\d+|l0_\d+_s\d+)$")),
    ("requantizer", re.compile(r"(l\d+_(p|q|y|r|code|rom)\d+(_\S*)?|l\d+_\d+_s\d+)$")),
    ("argmax", re.compile(r"(max|arg|d|gt|win)\d+(_\d+)*(_s\d+)?$|cls_final$")),
    ("output buffer and control", re.compile(
        r"(head|skid)\d+$|(full|has|en|valid_s\d+|cycles|[io]__\w+|cls__\w+)$")),
)


def unrolled_group(name: str) -> str:
    """The :data:`UNROLLED_GROUPS` group of a register or port of the unrolled engine
    (``""`` for a name that is none of them, so another of the register's names is tried)."""
    name = name.removeprefix("\\")
    for group, pattern in UNROLLED_GROUPS:
        if pattern.match(name):
            return group
    return ""


def unrolled_pe_share(top: str, device: str, workdir: Path, verilog: str) -> dict:
    """The unrolled engine's PE share, from its flat netlist (one module: no hierarchy to
    keep): each LUT4 and carry cell is put with the registers its output reaches through
    logic (:func:`rtl_gen.flow.synth.cone_cells`, groups :data:`UNROLLED_GROUPS`); a cell
    counts as PE when every register it reaches is an adder-graph node's or accumulator's.
    ``pe_lut4``, ``hier_lut4`` (here: the flat netlist's, all of it), ``pe_share``, the
    carry cells likewise, and ``parts``: LUT4 per group (``a + b``: cells reaching both)."""
    from rtl_gen.devices import get_device
    from rtl_gen.flow.synth import cone_cells, synth_netlist

    family = get_device(device).family
    counts = cone_cells(synth_netlist(verilog, top, device, workdir=workdir), top, family,
                        unrolled_group)
    known = {g for g, _ in UNROLLED_GROUPS}
    parts: dict[str, int] = {}
    for groups, c in counts.items():  # a register of no group (Yosys's name): "other"
        name = " + ".join(sorted({g if g in known else "other" for g in groups}))
        parts[name or "(no register)"] = parts.get(name or "(no register)", 0) + c["lut4"]
    pe = counts.get(("adder graph",), {"lut4": 0, "carry": 0})
    total = sum(c["lut4"] for c in counts.values())
    carry = sum(c["carry"] for c in counts.values())
    d = {"pe_lut4": pe["lut4"], "hier_lut4": total,
         "pe_share": round(pe["lut4"] / total, 4) if total else None,
         "pe_share_flat": round(pe["lut4"] / total, 4) if total else None,
         "pe_carry": pe["carry"], "hier_carry": carry, "pe_method": "register cones",
         "parts": dict(sorted(parts.items(), key=lambda kv: -kv[1]))}
    if family == "ecp5":
        both = total + 2 * carry
        d["pe_share_with_carry"] = round((pe["lut4"] + 2 * pe["carry"]) / both, 4) \
            if both else None
    log(f"  {top} on {device}: adder graphs {pe['lut4']} of {total} LUT4, "
        f"{pe['carry']} of {carry} carry cells")
    return d


def measure(verilog: str, top: str, device: str, workdir: Path,
            seeds: int = DEFAULT_SEEDS, timeout: float = DEFAULT_TIMEOUT, *,
            router: str = ROUTERS[0], jobs: int = 1) -> dict:
    """Cells of the bare design (kept when it then does not fit), and Fmax in the harness
    as the median over nextpnr seeds ``1..seeds`` (each one kept too) with nextpnr's
    ``router``; one tool at a time, each step logged, each stopped after ``timeout``
    seconds."""
    from rtl_gen.devices import get_device

    d: dict = {}
    try:
        t0 = time.time()
        log(f"  {top} on {device}: synthesis...")
        stats = synth(verilog, top, device, workdir=workdir, timeout=timeout)
        d = {"lc": stats.logic_cells, "lut4": stats.lut4, "carry": stats.carry,
             "ff": stats.ff, "dsp": stats.dsp, "bram": stats.bram}
        log(f"  {top} on {device}: {stats.logic_cells} LC, {stats.lut4} LUT4, {stats.ff} FF "
            f"({time.time() - t0:.0f} s)")
        luts = get_device(device).luts
        if stats.logic_cells is not None and stats.logic_cells > luts:
            d["error"] = (f"does not fit {device}: {stats.logic_cells} logic cells, device "
                          f"has {luts}")
            return d
        t0 = time.time()

        def progress(line: str) -> None:
            nonlocal t0
            log(f"  {top} on {device}: {line} ({time.time() - t0:.0f} s)")
            t0 = time.time()

        sweep = place_and_route_seeds(verilog, top, device, workdir=workdir, seeds=seeds,
                                      timeout=timeout, router=router, progress=progress,
                                      jobs=jobs)
        d.update(fmax=round(sweep.fmax, 1), fmax_seeds=[round(f, 2) for f in sweep.fmax_per_seed])
        if sweep.failed:
            d.update(routed_seeds=list(sweep.seeds),
                     unrouted_seeds=[seed for seed, _ in sweep.failed])
        if sweep.clock_pins:
            d["clock_pins"] = sweep.to_json()["clock_pins"]
        if router != ROUTERS[0]:
            d["router"] = router
        note = stats.note or sweep.note
        if note:
            d["note"] = note
    except FlowError as e:
        d["error"] = getattr(e, "summary", None) or str(e).splitlines()[0]
        log(f"  {top} on {device}: {d['error']}")
    return d


def derived(row: dict) -> dict:
    """Inferences/s, per thousand LC, latency in ns at the median Fmax (when placed)."""
    if "fmax" not in row:
        return {}
    ips = row["fmax"] * 1e6 / row["cycles_per_inference"]
    return {"inferences_per_s": round(ips),
            "inferences_per_s_per_klc": round(ips / (row["lc"] / 1000)),
            "latency_ns": round(row["latency_cycles"] * 1e3 / row["fmax"], 1)}


def design_label(r: dict) -> str:
    if r["engine"] == "unrolled":
        levels = r.get("stage", 2)
        tables = r.get("requantizer_tables")
        tables = f", {tables} requantizer tables in BRAM" if tables else ""
        return f"unrolled, {levels} adder level{'s' * (levels > 1)} a cycle{tables}"
    arrays = ", ".join(a.rstrip("b").split("x", 1)[1] if a.startswith("1x") else a.rstrip("b")
                       for a in r["arrays"])
    block = sum(a.endswith("b") for a in r["arrays"])
    roms = f", {block} of {len(r['arrays'])} weight ROMs in BRAM" if block else ""
    return f"arrays {arrays}, P={r['in_per_beat']}{roms}"


def share_label(r: dict) -> str:
    """The PE share of a row: PE LUT4 over the network's, both from the synthesis with the
    hierarchy kept; on the ECP5 also counting the two LUT4s of each CCU2C carry cell."""
    if r.get("pe_share") is None:
        return "n/a (no PE modules)" if r.get("pe_note") else ""
    text = f"{100 * r['pe_share']:.1f}% ({r['pe_lut4']:,} of {r['hier_lut4']:,})"
    if r.get("pe_share_flat") is not None and r.get("pe_method") is None:
        text += f"; flat {100 * r['pe_share_flat']:.1f}%"
    if r.get("pe_share_with_carry") is not None:
        text += f", {100 * r['pe_share_with_carry']:.1f}% with CCU2C"
    return text


def unrouted_label(r: dict) -> str:
    """``seeds 2, 3 (1 did not route)`` for a measurement where a seed did not route and was
    replaced by the next (:func:`rtl_gen.flow.place_and_route_seeds`), else ``""``."""
    if not r.get("unrouted_seeds"):
        return ""
    return (f"seeds {', '.join(map(str, r['routed_seeds']))} "
            f"({', '.join(map(str, r['unrouted_seeds']))} did not route)")


def seeds_label(r: dict) -> str:
    """:func:`unrouted_label` and the seeds placed with the clock on the device's dedicated
    clock input (:attr:`rtl_gen.flow.PnrResult.clock_pin`), ``""`` when neither."""
    pins = clock_pin_label({int(k): v for k, v in r.get("clock_pins", {}).items()})
    return "; ".join(n for n in (unrouted_label(r), pins) if n)


def fmax_label(r: dict) -> str:
    """The row's median Fmax (or its error), with the router when it is not nextpnr's
    default and :func:`seeds_label`."""
    if r.get("fmax") is None:
        return r.get("error", "")
    notes = [n for n in (r.get("router"), seeds_label(r)) if n]
    return f"{r['fmax']}" + (f" ({'; '.join(notes)})" if notes else "")


def ratio_label(r: dict) -> str:
    x = r.get("over_uniform")
    return f"{x['inferences_per_s']:g}x, {x['per_klc']:g}x" if x else ""


def markdown(rows: list[dict], uniform: list[dict] = ()) -> str:
    """One table per device: each network's ``--fit`` row, then its uniform row."""
    head = ("| network | weights | accuracy | design | cycles / inference | LC (planner) | "
            "LUT4 | FF | DSP | BRAM | median MHz | inferences/s | per kLC | PE share of LUT4 "
            "| --fit / uniform (inferences/s, per kLC) | latency |")
    out = []
    same = {(r["name"], r["device"]): r for r in uniform}
    for dev in dict.fromkeys(r["device"] for r in [*rows, *uniform]):
        lines = [f"{'UP5K' if dev == 'up5k' else 'LFE5U-85F'}:", "", head, "|" + "---|" * 16]
        fits = {r["name"]: r for r in rows if r["device"] == dev}
        names = list(dict.fromkeys([*fits, *(r["name"] for r in uniform
                                             if r["device"] == dev)]))
        for name in names:
            for kind, r in (("--fit", fits.get(name)), ("uniform", same.get((name, dev)))):
                if r is None:
                    continue
                x = r.get("derived", {})
                latency = f"{r['latency_cycles']} cycles" + (
                    f", {x['latency_ns'] / 1000:.2f} µs" if x else "")
                lc = (f"{r['lc']:,} ({r['estimated_logic']:,})" if r.get("lc") is not None
                      else "")
                cells = [r["name"], r["schemes"], f"{100 * r['accuracy']:.2f}%",
                         f"{kind}: {design_label(r)}",
                         f"{r['cycles_per_inference']:g}", lc, r.get("lut4", ""),
                         r.get("ff", ""), r.get("dsp", ""), r.get("bram", ""),
                         fmax_label(r),
                         f"{x['inferences_per_s']:,}" if x else "",
                         f"{x['inferences_per_s_per_klc']:,}" if x else "", share_label(r),
                         ratio_label(r), latency]
                lines.append("| " + " | ".join(str(c) for c in cells) + " |")
        out.append("\n".join(lines) + "\n")
    return "\n".join(out)


def with_ratios(rows: list[dict], uniform: list[dict]) -> list[dict]:
    """Each ``--fit`` row with ``over_uniform``: its inferences/s and inferences/s per
    thousand LC over those of the uniform row of the same network and device (where both
    were placed)."""
    same = {(r["name"], r["device"]): r.get("derived") for r in uniform}
    out = []
    for r in rows:
        r = {k: v for k, v in r.items() if k != "over_uniform"}
        a, b = r.get("derived"), same.get((r["name"], r["device"]))
        if a and b:
            r["over_uniform"] = {
                "inferences_per_s": round(a["inferences_per_s"] / b["inferences_per_s"], 2),
                "per_klc": round(a["inferences_per_s_per_klc"]
                                 / b["inferences_per_s_per_klc"], 2)}
        out.append(r)
    return out


def merged(rows: list[dict], kept: list[dict]) -> list[dict]:
    """The ``kept`` rows of an earlier run, each replaced by this run's row of the same
    network and device where there is one, then this run's other ``rows``; every device's
    rows together, in the order the devices first appear."""
    new = {(r["name"], r["device"]): r for r in rows}
    old = {(r["name"], r["device"]) for r in kept}
    every = [new.get((r["name"], r["device"]), r) for r in kept]
    every += [r for r in rows if (r["name"], r["device"]) not in old]
    devices = list(dict.fromkeys(r["device"] for r in every))
    return sorted(every, key=lambda r: devices.index(r["device"]))  # stable


def write(rows: list[dict], args, start: float, kept: list[dict] = (),
          uniform: list[dict] = (), kept_uniform: list[dict] = ()) -> str:
    uniform = merged(list(uniform), list(kept_uniform))
    rows = with_ratios(merged(rows, list(kept)), uniform)
    table = markdown(rows, uniform)
    args.out.mkdir(parents=True, exist_ok=True)
    seeds = sorted({r.get("seeds", args.seeds) for r in [*rows, *uniform]})
    note = ("# The shipped digits networks at the planner's `--fit` choice and uniform\n\n"
            "Generated by `python benchmarks/network.py --seeds "
            f"{'/'.join(map(str, seeds))}` (each row's date in `network.json`), last on "
            f"{datetime.date.today().isoformat()}: for each device the "
            "design `rtl-gen synth --fit DEVICE` builds (`--engine auto`, no cycle "
            "counters); LC is iCE40 logic cells / ECP5 TRELLIS_COMB after packing of the "
            "bare network, the planner's estimate of the same count in parentheses; "
            "Fmax the "
            f"median of nextpnr seeds inside the flow's harness; cycles and "
            "latency from the cycle model; accuracy of the golden model on the 360 test "
            "images. Each network's `--fit` row is followed by its uniform row: the design "
            "`rtl-gen synth` builds with no folding option (the arrays engine, every layer "
            "`--cols 8` and the default `--array-lanes`), the area model's estimate in "
            "parentheses; the `--fit` row's last but one column is its inferences/s and "
            "inferences/s per kLC over the uniform row's. PE share of LUT4: the LUT4 "
            "cells inside the processing elements over the whole network's. Arrays engine: "
            "the PEs are the array's dot-product units (module `<layer>.array.pe_R_C`: "
            "multipliers or sign selects, lane adder tree, accumulator), counted in a "
            "second synthesis of the same Verilog with the PE, layer and FIFO modules kept "
            "(`keep_hierarchy`); its total is 3% below to 26% above the flat LUT4 column "
            "(logic the flat netlist shares between PEs), and `flat` takes that difference "
            "off the PEs. Unrolled engine: a LUT4 of the flat netlist is PE when every register it "
            "feeds holds an adder-graph node or accumulator (the requantizers, shift-and-add "
            "or the address clamps of their tables in block RAM, the argmax and the output "
            "buffer are not); on the LFE5U-85F also counting the two "
            "LUT4s of each CCU2C carry cell. A router named next to the MHz: nextpnr's "
            "`--router` when not its default (`router1`).\n\n")
    (args.out / "network.md").write_text(note + table)
    (args.out / "network.json").write_text(json.dumps(
        {"rows": rows, "uniform_rows": uniform, "seeds": args.seeds,
         "date": datetime.date.today().isoformat(),
         "tools": tool_versions(), "seconds": round(time.time() - start)}, indent=1) + "\n")
    return table


def earlier_rows(out: Path, key: str = "rows") -> list[dict]:
    """The rows (``key="uniform_rows"``: the uniform rows) of ``out/network.json`` (none
    when there is none), each with the run's seeds and date where the row does not say."""
    path = out / "network.json"
    if not path.exists():
        return []
    d = json.loads(path.read_text())
    return [{"seeds": d.get("seeds"), "date": d.get("date"), **r} for r in d.get(key, [])]


def verilog_top(net) -> str:
    from rtl_gen.tasks.common import verilog_top as top

    return top(net)


def refresh_estimates(kept: list[dict], schemes, devices, args, start: float,
                      kept_uniform: list[dict] = ()) -> int:
    """``--estimates-only``: each recorded row of ``schemes`` on ``devices`` takes the
    planner's current estimate of its design; a row whose design is no longer the ``--fit``
    choice is left as it is and named (exit status 1: it needs a run)."""
    stale = []
    for row in kept:
        scheme = row["name"].removeprefix("digits-")
        if scheme not in schemes or row["device"] not in devices:
            continue
        net = read_bundle(WEIGHTS_DIR / row["name"])
        _, now = fit_design(net, row["device"])
        if design_label(now) != design_label(row):
            stale.append(f"{row['name']} on {row['device']}: --fit now chooses "
                         f"{design_label(now)}, the row measured {design_label(row)}")
            continue
        log(f"{row['name']} on {row['device']}: estimate {row['estimated_logic']} -> "
            f"{now['estimated_logic']} (synthesis {row.get('lc')})")
        row["estimated_logic"] = now["estimated_logic"]
        row["planner"] = now["planner"]
    print(write([], args, start, kept, kept_uniform=kept_uniform), end="")
    for line in stale:
        log(line)
    return 1 if stale else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schemes", default=",".join(SCHEMES),
                        help="comma-separated subset of " + ", ".join(SCHEMES))
    parser.add_argument("--devices", default=",".join(DEVICES),
                        help="comma-separated subset of " + ", ".join(DEVICES))
    parser.add_argument("--seeds", type=int, default=DEFAULT_SEEDS, metavar="N",
                        help=f"Fmax as the median over nextpnr seeds 1..N (default "
                        f"{DEFAULT_SEEDS})")
    parser.add_argument("--designs", default=",".join(DESIGNS),
                        help="comma-separated subset of " + ", ".join(DESIGNS) + ": the "
                        "--fit design, the uniform design (default: both)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    add_timeout_argument(parser)
    add_router_argument(parser)
    add_jobs_argument(parser)
    parser.add_argument("--estimates-only", action="store_true",
                        help="no synthesis: the recorded rows of these networks and devices "
                        "get the planner's current estimate, where its --fit choice is still "
                        "the design they measured")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error(f"--seeds must be at least 1, not {args.seeds}")
    schemes = [s.strip() for s in args.schemes.split(",") if s.strip()]
    unknown = sorted(set(schemes) - set(SCHEMES))
    if unknown:
        parser.error(f"unknown scheme(s) {', '.join(unknown)}; expected some of "
                     f"{', '.join(SCHEMES)}")
    devices = [d.strip() for d in args.devices.split(",") if d.strip()]
    if not devices or set(devices) - set(DEVICES):
        parser.error(f"--devices must be some of {', '.join(DEVICES)}")
    designs = [d.strip() for d in args.designs.split(",") if d.strip()]
    if not designs or set(designs) - set(DESIGNS):
        parser.error(f"--designs must be some of {', '.join(DESIGNS)}")
    start = time.time()
    rows: list[dict] = []
    uniform: list[dict] = []
    kept = earlier_rows(args.out)
    kept_uniform = earlier_rows(args.out, "uniform_rows")
    if args.estimates_only:
        return refresh_estimates(kept, schemes, devices, args, start, kept_uniform)
    nets = {}
    for dev in devices:  # every bundle on one device, then the next
        for scheme in schemes:
            if scheme not in nets:
                net = read_bundle(WEIGHTS_DIR / f"digits-{scheme}")
                nets[scheme] = net, accuracy(net)
            net, acc = nets[scheme]
            for design in designs:
                log(f"{net.name} on {dev}: {design} design: planning and elaborating...")
                if design == "fit":
                    engine, row = fit_design(net, dev)
                else:
                    engine, row = uniform_design(net)
                    row["estimated_logic"] = row.pop("estimates")[dev]
                top = verilog_top(net)
                verilog = component_verilog(engine, top)
                log(f"{net.name} on {dev}: {design_label(row)}, "
                    f"{row['cycles_per_inference']:g} cycles per inference, latency "
                    f"{row['latency_cycles']} cycles, estimated logic "
                    f"{row['estimated_logic']}")
                row = {"name": net.name, "schemes": "/".join(net.schemes), "accuracy": acc,
                       "device": dev, "seeds": args.seeds,
                       "date": datetime.date.today().isoformat(), **row,
                       **measure(verilog, top, dev, args.workdir, args.seeds, args.timeout,
                                  router=args.router, jobs=args.jobs)}
                if row.get("lut4") is not None:
                    if row["engine"] == "arrays":
                        row.update(pe_share(verilog, top, dev, args.workdir, row["lut4"]))
                    else:
                        row.update(unrolled_pe_share(top, dev, args.workdir, verilog))
                row["derived"] = derived(row)
                (rows if design == "fit" else uniform).append(row)
                write(rows, args, start, kept, uniform, kept_uniform)
    print(write(rows, args, start, kept, uniform, kept_uniform), end="")
    log(f"{len(rows) + len(uniform)} rows in {time.time() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
