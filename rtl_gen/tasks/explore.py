"""``explore``: a design-space sweep — bundles × designs (engine and folding) × devices ×
nextpnr seeds — where every point is one pure function :func:`evaluate` of its description,
cached on disk, run through any :class:`concurrent.futures.Executor`.

::

    spec (TOML) ──► points ──► executor.submit(evaluate, point) ──► results ──► Pareto front
                                   │
                                   ├─ point cache  <cache>/points/<input key>.json
                                   │    (bundle contents, options, device, seed, tool
                                   │     versions, rtl_gen sources: nothing is elaborated)
                                   └─ metric cache <cache>/metrics/<RTL key>.json
                                        (the generated Verilog, tool versions, flags, seed:
                                         nothing is synthesized)

A point's metrics: the golden model's accuracy on the bundle's test data, the cycle model's
cycles per inference and latency, the flow's LC / LUT4 / FF / DSP / BRAM (synthesis of the
bare network) and Fmax (nextpnr with the point's seed, the network in the flow's harness),
and inferences/s at that Fmax.  A design that does not fit or cannot be built is a result
too (``status``), not an error of the sweep.  Each finished point is written at once, so a
killed sweep resumes where it stopped; a second run of the same sweep runs no tool at all.

The executor is a local process pool by default; ``dask.distributed`` (the ``explore`` extra)
runs the same sweep on a cluster (:func:`dask_executor`).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import hashlib
import itertools
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from ..devices import DEVICES, get_device
from ..errors import RtlGenError
from ..files import cache_dir, write_file
from .common import ENGINES, Progress, notify

__all__ = ["DESIGN_KEYS", "ExploreError", "Point", "Sweep", "SweepResult", "dask_executor",
           "designs", "evaluate", "explore", "front_chances", "fronts", "load_spec",
           "pareto_front", "parse_spec", "plan_point", "render", "run_adaptive", "run_pruned",
           "run_sweep", "table"]


class ExploreError(RtlGenError):
    """A sweep specification or execution setting that cannot be used."""


#: The options a design entry of a spec may range over, with their types.
DESIGN_KEYS: Mapping[str, type] = {
    "engine": str, "rows": int, "cols": int, "lanes": int, "fit": bool,
    "target_fps": float, "multiplier": str,
}
_TOP_KEYS = {"bundles", "devices", "seeds", "designs"}
_MULTIPLIERS = ("lut", "dsp")
#: The board of each device, for each point's ``rtl-gen build`` command.
BOARD_OF_DEVICE = {"up5k": "icebreaker", "ecp5-85f": "ulx3s"}
#: Bump when the meaning of a cached point result changes.
RESULT_VERSION = 2  # 2: the area model's features grew (adder trees, int lanes, term pairs)


@dataclasses.dataclass(frozen=True)
class Point:
    """One design to evaluate: a bundle on a device with array/folding options and a
    nextpnr seed.  ``fit``: the folding planner sizes the arrays for ``device``."""

    bundle: str
    device: str
    seed: int = 1
    engine: str = "arrays"
    rows: int | None = None
    cols: int | None = None
    lanes: int | None = None
    fit: bool = False
    target_fps: float | None = None
    multiplier: str = "lut"

    @property
    def design(self) -> dict:
        """The options that make the hardware (no seed, no device unless fitted)."""
        return {k: v for k, v in dataclasses.asdict(self).items()
                if k not in ("bundle", "device", "seed") and v not in (None, False)}

    def cli_options(self) -> list[str]:
        opts = []
        for key in ("rows", "cols", "lanes", "target_fps"):
            if getattr(self, key) is not None:
                opts += [f"--{key.replace('_', '-')}", f"{getattr(self, key):g}"]
        if self.fit:
            opts += ["--fit", self.device]
        if self.engine != "arrays":
            opts += ["--engine", self.engine]
        if self.multiplier != "lut":
            opts += ["--multiplier", self.multiplier]
        return opts

    @property
    def command(self) -> str:
        """The command that builds this design: a board bitstream where the device has a
        board and the engine builds on one, else the synthesis of this point."""
        opts = " ".join(self.cli_options())
        board = BOARD_OF_DEVICE.get(self.device)
        if board is not None and self.engine == "arrays":
            return f"rtl-gen build --bundle {self.bundle} --board {board} {opts}".rstrip()
        return (f"rtl-gen synth --bundle {self.bundle} --device {self.device} {opts}"
                ).rstrip()


@dataclasses.dataclass(frozen=True)
class Sweep:
    """A parsed specification: its points in a fixed order."""

    points: tuple[Point, ...]
    source: str = "<spec>"


# --- the specification -------------------------------------------------------------------

def _as_list(where: str, value) -> list:
    values = value if isinstance(value, list) else [value]
    if not values:
        raise ExploreError(f"{where}: empty range; give at least one value")
    return values


def _typed(where: str, value, kind: type):
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
    elif kind is float:
        ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
              and math.isfinite(value) and value > 0)
    else:
        ok = isinstance(value, kind)
    if not ok:
        what = {bool: "true or false", int: "a positive integer",
                float: "a positive number", str: "a string"}[kind]
        raise ExploreError(f"{where}: {value!r} is not {what}")
    return float(value) if kind is float else value


def parse_spec(spec: Mapping, *, source: str = "<spec>", base: Path | None = None) -> Sweep:
    """The :class:`Sweep` of a specification mapping (what :func:`load_spec` reads)::

        bundles = ["weights/digits-binary", "weights/digits-int4"]
        devices = ["up5k", "ecp5-85f"]
        seeds = [1, 2, 3]
        [[designs]]                     # each entry: the product of its ranges
        cols = [1, 2, 4]
        lanes = [4, 8]
        [[designs]]
        fit = true                      # the folding planner, for each device
        engine = ["arrays", "auto"]

    Bundle paths are relative to ``base`` (the spec's folder).  Every value is checked
    (types, ranges, device names, bundle folders); a bad one raises :class:`ExploreError`
    naming it."""
    if not isinstance(spec, Mapping):
        raise ExploreError(f"{source}: expected a table of bundles, devices, seeds, designs")
    unknown = sorted(set(spec) - _TOP_KEYS)
    if unknown:
        raise ExploreError(f"{source}: unknown key {unknown[0]!r}; expected "
                           f"{', '.join(sorted(_TOP_KEYS))}")
    for key in ("bundles", "devices"):
        if key not in spec:
            raise ExploreError(f"{source}: missing {key!r}")
    base = Path(base) if base is not None else Path.cwd()
    bundles = []
    for b in _as_list(f"{source}: bundles", spec["bundles"]):
        path = Path(_typed(f"{source}: bundles", b, str))
        path = Path(os.path.normpath(path if path.is_absolute() else base / path))
        if not path.exists():
            raise ExploreError(f"{source}: bundles: {b!r} does not exist")
        bundles.append(str(path))
    devices = [_typed(f"{source}: devices", d, str)
               for d in _as_list(f"{source}: devices", spec["devices"])]
    for d in devices:
        if d not in DEVICES:
            raise ExploreError(f"{source}: devices: unknown device {d!r}; the flow knows "
                               f"{', '.join(DEVICES)}")
    seeds = [_typed(f"{source}: seeds", s, int)
             for s in _as_list(f"{source}: seeds", spec.get("seeds", [1]))]
    designs = spec.get("designs", [{}])
    designs = _as_list(f"{source}: designs", designs)
    choices = []
    for i, design in enumerate(designs):
        where = f"{source}: designs[{i}]"
        if not isinstance(design, Mapping):
            raise ExploreError(f"{where}: expected a table of options")
        unknown = sorted(set(design) - set(DESIGN_KEYS))
        if unknown:
            raise ExploreError(f"{where}: unknown option {unknown[0]!r}; expected "
                               f"{', '.join(DESIGN_KEYS)}")
        ranges = {}
        for key, value in design.items():
            values = [_typed(f"{where}.{key}", v, DESIGN_KEYS[key])
                      for v in _as_list(f"{where}.{key}", value)]
            if key == "engine":
                for v in values:
                    if v not in ENGINES:
                        raise ExploreError(f"{where}.engine: {v!r} is not one of "
                                           f"{', '.join(ENGINES)}")
            if key == "multiplier":
                for v in values:
                    if v not in _MULTIPLIERS:
                        raise ExploreError(f"{where}.multiplier: {v!r} is not one of "
                                           f"{', '.join(_MULTIPLIERS)}")
            ranges[key] = values
        keys = list(ranges)
        for combo in itertools.product(*(ranges[k] for k in keys)):
            choices.append(dict(zip(keys, combo, strict=True)))
    points = []
    seen = set()
    for bundle, device, design, seed in itertools.product(bundles, devices, choices, seeds):
        p = Point(bundle=bundle, device=device, seed=seed, **design)
        if p not in seen:
            seen.add(p)
            points.append(p)
    return Sweep(tuple(points), source)


def load_spec(path) -> Sweep:
    """Read a TOML (or JSON, by suffix) sweep specification (:func:`parse_spec`)."""
    path = Path(path)
    try:
        text = path.read_bytes()
    except OSError as e:
        raise ExploreError(f"{path}: cannot read: {e.strerror or e}") from None
    try:
        if path.suffix == ".json":
            spec = json.loads(text)
        else:
            if sys.version_info >= (3, 11):
                import tomllib
            else:  # pragma: no cover - Python 3.10
                import tomli as tomllib
            spec = tomllib.loads(text.decode())
    except (ValueError, UnicodeDecodeError) as e:
        kind = "JSON" if path.suffix == ".json" else "TOML"
        raise ExploreError(f"{path}: not valid {kind}: {e}") from None
    return parse_spec(spec, source=str(path), base=path.parent)


# --- evaluating one point ------------------------------------------------------------------

def _digest(parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


@functools.lru_cache(maxsize=1)
def _source_digest() -> str:
    """A hash of rtl_gen's own sources: the generated RTL is a function of them."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for f in sorted(root.rglob("*.py")):
        h.update(str(f.relative_to(root)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:24]


def _bundle_digest(path: str) -> str:
    p = Path(path)
    h = hashlib.sha256()
    files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    for f in files:
        h.update(str(f.relative_to(p) if p.is_dir() else f.name).encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:24]


def input_key(point: Point) -> str:
    """The point cache's key: everything that determines the point's result."""
    from ..flow import tool_versions

    return _digest({"v": RESULT_VERSION, "point": dataclasses.asdict(point),
                    "bundle": _bundle_digest(point.bundle), "tools": tool_versions(),
                    "sources": _source_digest()})


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


@functools.lru_cache(maxsize=16)
def _accuracy(bundle: str, digest: str) -> float | None:
    from ..bundle import read_bundle
    from .common import encode_inputs, evaluation_data

    net = read_bundle(Path(bundle))
    try:
        x, y = evaluation_data(net)
    except RtlGenError:
        return None  # no test split known for its data set (or MNIST not installed)
    return float(net.accuracy(encode_inputs(net, x), y))


@functools.lru_cache(maxsize=16)
def _dataset(bundle: str, digest: str) -> str | None:
    from ..bundle import read_bundle

    return read_bundle(Path(bundle)).metadata.get("dataset")


#: :func:`estimate_point`'s note for a design outside the estimator's features.
NOT_MODELLED = "not modelled by the estimator"


def _folding(point: Point):
    from .common import FoldingOptions

    if not (point.fit or point.target_fps or point.engine != "arrays"):
        return None
    return FoldingOptions(target_fps=point.target_fps,
                          fit=point.device if point.fit else None, engine=point.engine)


def plan_point(point: Point):
    """``(network, plan)`` of ``point``, nothing elaborated: the bit-serial engine's plan
    or an :class:`~rtl_gen.hw.unrolled.UnrolledPlan` where the point's options choose
    them, else the :class:`~rtl_gen.hw.network.ChainPlan` of its arrays (a network with
    convolutions: its conv chain, ``cols`` and ``lanes`` applied to every weight layer)."""
    from ..bundle import read_bundle
    from .common import bitserial_plan, unrolled_choice
    from .generate import is_conv, network_plan

    net = read_bundle(Path(point.bundle))
    folding = _folding(point)
    if is_conv(net):
        return net, network_plan(net, rows=point.rows, cols=point.cols, lanes=point.lanes,
                                 multiplier=point.multiplier, folding=folding, counters=False)
    try:
        special = (bitserial_plan(net, folding, rows=point.rows, cols=point.cols,
                                  lanes=point.lanes, multiplier=point.multiplier,
                                  counters=False)
                   or unrolled_choice(net, folding))
    except ValueError as e:
        raise RtlGenError(f"cannot generate {net.name!r}: {e}") from None
    if special is not None:
        return net, special
    return net, network_plan(net, rows=point.rows, cols=point.cols, lanes=point.lanes,
                             multiplier=point.multiplier, folding=folding, counters=False)


def plan_engine(plan):
    """The hardware of a plan of :func:`plan_point`."""
    from ..hw.bitserial import BitSerialLayerEngine, BitSerialNetworkEngine
    from ..hw.conv import ConvNetworkEngine
    from ..hw.float_layer import FloatNetworkEngine
    from ..hw.network import NetworkEngine
    from ..hw.unrolled import UnrolledNetworkEngine, UnrolledPlan
    from .generate import is_conv

    if isinstance(plan, UnrolledPlan):
        return UnrolledNetworkEngine.from_plan(plan)
    if is_conv(plan.net):
        return ConvNetworkEngine.from_plan(plan)
    if plan.stages and plan.stages[0][1] is BitSerialLayerEngine:
        return BitSerialNetworkEngine.from_plan(plan)
    if plan.net.family == "float":
        return FloatNetworkEngine.from_plan(plan)
    return NetworkEngine.from_plan(plan)


def _features(plan, device: str) -> dict | None:
    from .estimator import point_features

    try:
        return point_features(plan, device)
    except (AttributeError, KeyError, TypeError, ValueError):
        return None  # a design the estimator does not model (a float network)


def estimate_point(point: Point, estimator) -> dict:
    """The estimator's ``LC``, ``FF``, ``Fmax MHz`` and ``inferences/s`` of ``point`` from
    its plan alone (:func:`plan_point`; no elaboration, no synthesis), with ``status``
    ``invalid`` where the options cannot build the network."""
    try:
        net, plan = plan_point(point)
    except RtlGenError as e:
        return {"status": "invalid", "note": str(e)}
    features = _features(plan, point.device)
    if features is None:
        return {"status": "invalid", "note": NOT_MODELLED}
    est = estimator.estimate(point.device, features)
    est["cycles per inference"] = _cycles(plan)
    est["inferences/s"] = est["Fmax MHz"] * 1e6 / est["cycles per inference"]
    est["status"] = "ok"
    return est


def evaluate(point: Point, cache: str | os.PathLike | None = None) -> dict:
    """The metrics of ``point`` (see the module's description), from the caches under
    ``cache`` (default ``<user cache>/explore``) where they are, else by elaborating,
    synthesizing and placing it (the flow's own runs cached in ``cache/flow``, by default
    in ``<user cache>/flow``, which ``rtl-gen synth`` shares).

    ``status`` is ``ok``, ``does not fit`` or ``invalid`` (the options cannot build this
    network; ``note`` says why).  ``flow runs`` counts the synthesis and place-and-route
    runs this call made (0 when every result came from a cache)."""
    from .. import flow
    from .common import verilog_top

    root = Path(cache) if cache is not None else cache_dir() / "explore"
    key = input_key(point)
    cached = _read_json(root / "points" / f"{key}.json")
    if cached is not None:
        return dict(cached, **{"flow runs": 0, "cached": True})
    runs_before = flow.synth_runs()
    start = time.perf_counter()
    row = {"point": dataclasses.asdict(point), "command": point.command}
    try:
        net, plan = plan_point(point)
        row["network"] = net.name
        row["dataset"] = net.metadata.get("dataset")
        row["accuracy"] = _accuracy(point.bundle, _bundle_digest(point.bundle))
        row["features"] = _features(plan, point.device)
        engine = plan_engine(plan)
        batch = getattr(engine, "rows", 1)
        row["rows"] = batch
        row["cycles per inference"] = engine.interval / batch
        row["latency cycles"] = getattr(engine, "latency", None)
        verilog = flow.component_verilog(engine, verilog_top(net))
    except RtlGenError as e:
        row.update(status="invalid", note=str(e))
        return _finish(root, key, row, runs_before, start)
    rtl = hashlib.sha256(verilog.encode()).hexdigest()[:24]
    mkey = _digest({"v": RESULT_VERSION, "rtl": rtl, "device": point.device,
                    "seed": point.seed, "tools": flow.tool_versions(),
                    "mapper": flow.DEFAULT_MAPPER[get_device(point.device).family]})
    metrics = _read_json(root / "metrics" / f"{mkey}.json")
    if metrics is None:
        # The flow's runs beside a given cache, else in the user cache (shared with synth).
        workdir = root / "flow" if cache is not None else cache_dir() / "flow"
        metrics = _flow_metrics(verilog, verilog_top(net), point, flow, workdir)
        write_file(root / "metrics" / f"{mkey}.json", json.dumps(metrics, indent=1))
    row.update(rtl=rtl, **metrics)
    if metrics.get("Fmax MHz"):
        row["inferences/s"] = metrics["Fmax MHz"] * 1e6 / row["cycles per inference"]
        if metrics.get("LC"):
            row["inferences/s per kLC"] = row["inferences/s"] / metrics["LC"] * 1e3
    return _finish(root, key, row, runs_before, start)


def _flow_metrics(verilog: str, top: str, point: Point, flow, workdir: Path) -> dict:
    try:
        stats = flow.synth(verilog, top, point.device, workdir=workdir)
    except flow.ToolFailedError as e:
        return {"status": "invalid", "note": str(e).splitlines()[0]}
    metrics = {"status": "ok", "LC": stats.logic_cells, "LUT4": stats.lut4,
               "carry": stats.carry, "FF": stats.ff, "DSP": stats.dsp, "BRAM": stats.bram}
    try:
        pnr = flow.place_and_route(verilog, top, point.device, seed=point.seed,
                                   workdir=workdir)
    except flow.DoesNotFitError as e:
        return dict(metrics, status="does not fit", note=str(e))
    metrics["Fmax MHz"] = pnr.fmax
    return metrics


def _finish(root: Path, key: str, row: dict, runs_before: int, start: float) -> dict:
    from .. import flow

    row.setdefault("status", "ok")
    row["seconds"] = round(time.perf_counter() - start, 2)
    write_file(root / "points" / f"{key}.json", json.dumps(row, indent=1))
    return dict(row, **{"flow runs": flow.synth_runs() - runs_before, "cached": False})


# --- running a sweep -----------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class SweepResult:
    rows: list[dict]
    #: Synthesis and place-and-route runs the sweep made (0 when all were cached).
    flow_runs: int
    seconds: float

    @classmethod
    def of(cls, rows: list[dict], start: float) -> SweepResult:
        """The result of ``rows`` evaluated since ``perf_counter()`` read ``start``."""
        return cls(rows, sum(r.get("flow runs", 0) for r in rows), time.perf_counter() - start)

    @property
    def cached(self) -> int:
        return sum(1 for r in self.rows if r.get("cached"))


def run_sweep(sweep: Sweep, *, executor: concurrent.futures.Executor | None = None,
              workers: int | None = None, cache=None, progress: Progress | None = None,
              evaluator: Callable[..., dict] = evaluate) -> SweepResult:
    """Evaluate every point of ``sweep`` on ``executor`` (default: a process pool of
    ``workers``, one per core).  Rows come back in the sweep's order."""
    start = time.perf_counter()
    own = executor is None
    if own:
        executor = concurrent.futures.ProcessPoolExecutor(max_workers=workers)
    rows: list[dict | None] = [None] * len(sweep.points)
    try:
        futures = {executor.submit(evaluator, p, cache): i for i, p in enumerate(sweep.points)}
        for done, fut in enumerate(concurrent.futures.as_completed(futures), 1):
            i = futures[fut]
            rows[i] = fut.result()
            p = sweep.points[i]
            notify(progress, f"[{done}/{len(futures)}] {Path(p.bundle).name} {p.device} "
                             f"{' '.join(p.cli_options())} seed {p.seed}: "
                             f"{rows[i].get('status')}")
    finally:
        if own:
            executor.shutdown(cancel_futures=True)
    return SweepResult([r for r in rows if r is not None],
                       sum(r.get("flow runs", 0) for r in rows if r is not None),
                       time.perf_counter() - start)


def dask_executor(scheduler: str | None = None, *, local_workers: int | None = None,
                  timeout: float = 10):
    """A ``(executor, close)`` pair running on ``dask.distributed``: the cluster whose
    scheduler is at ``scheduler`` (``tcp://host:8786``), or a ``LocalCluster`` of
    ``local_workers`` single-threaded worker processes."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ExploreError("a dask scheduler needs dask.distributed: "
                           "pip install 'rtl_gen[explore]'") from None
    cluster = None
    try:
        if scheduler is not None:
            client = Client(scheduler, timeout=timeout)
        else:
            cluster = LocalCluster(n_workers=local_workers or 1, threads_per_worker=1,
                                   processes=True, dashboard_address=None)
            client = Client(cluster)
    except (OSError, TimeoutError, ValueError) as e:
        raise ExploreError(f"cannot reach the dask scheduler {scheduler!r}: {e}") from None

    def close():
        client.close()
        if cluster is not None:
            cluster.close()

    return client.get_executor(pure=False), close


def _storage(storage: str | None):
    """An Optuna storage: ``None`` (in memory), an RDB URL (``sqlite:///study.db``,
    ``postgresql://...``) or a journal file path, which several processes may share."""
    if storage is None:
        return None
    if "://" in storage:
        return storage
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    try:
        return JournalStorage(JournalFileBackend(storage))
    except OSError as e:
        raise ExploreError(f"{storage}: cannot open the study's journal: "
                           f"{e.strerror or e}") from None


def run_adaptive(sweep: Sweep, trials: int, *, executor=None, workers: int | None = None,
                 cache=None, storage: str | None = None, study: str = "rtl_gen",
                 seed: int = 0, progress: Progress | None = None,
                 evaluator: Callable[..., dict] = evaluate) -> SweepResult:
    """Evaluate ``trials`` points of ``sweep`` chosen by Optuna's multi-objective NSGA-II
    sampler (accuracy up, LC down, inferences/s up) instead of every point.  Trials run
    ``workers`` at a time on ``executor`` (ask a batch, evaluate, tell); ``storage``
    (:func:`_storage`) and ``study`` name a study that several processes, on one machine
    or many, can share.  A point that does not build is a failed trial."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    bundles = list(dict.fromkeys(p.bundle for p in sweep.points))
    devices = list(dict.fromkeys(p.device for p in sweep.points))
    seeds = list(dict.fromkeys(p.seed for p in sweep.points))
    designs_ = list(dict.fromkeys(json.dumps(p.design, sort_keys=True) for p in sweep.points))
    try:
        st = optuna.create_study(
            study_name=study, storage=_storage(storage), load_if_exists=True,
            directions=["maximize", "minimize", "maximize"],
            sampler=optuna.samplers.NSGAIISampler(seed=seed))
    except (ValueError, ImportError, optuna.exceptions.OptunaError) as e:
        raise ExploreError(f"cannot open the study {study!r} in {storage!r}: {e}") from None
    start = time.perf_counter()
    own = executor is None
    if own:
        executor = concurrent.futures.ProcessPoolExecutor(max_workers=workers)
    batch = workers or getattr(executor, "_max_workers", None) or os.cpu_count() or 1
    rows: list[dict] = []
    try:
        while len(rows) < trials:
            asked = []
            for _ in range(min(batch, trials - len(rows))):
                t = st.ask()
                point = Point(bundle=t.suggest_categorical("bundle", bundles),
                              device=t.suggest_categorical("device", devices),
                              seed=t.suggest_categorical("seed", seeds),
                              **json.loads(t.suggest_categorical("design", designs_)))
                asked.append((t, point, executor.submit(evaluator, point, cache)))
            for t, point, fut in asked:
                row = fut.result()
                rows.append(row)
                values = [row.get("accuracy"), row.get("LC"), row.get("inferences/s")]
                if row.get("status") == "ok" and None not in values:
                    st.tell(t, values)
                else:
                    st.tell(t, state=optuna.trial.TrialState.FAIL)
                notify(progress, f"[{len(rows)}/{trials}] {Path(point.bundle).name} "
                                 f"{point.device} {' '.join(point.cli_options())} seed "
                                 f"{point.seed}: {row.get('status')}")
    finally:
        if own:
            executor.shutdown(cancel_futures=True)
    return SweepResult.of(rows, start)


#: ``--prune``'s default: a design is built while its chance of lying on a reported front,
#: given the designs built so far and the estimator's error, is at least this.
DEFAULT_CHANCE = 0.1
#: Random draws of the estimates' errors per round of :func:`run_pruned`.
CHANCE_DRAWS = 400
#: The least relative (log) error assumed of an estimate, however well the calibration fits.
_LEAST_ERROR = 0.03
#: The spread (log error of LC, of Fmax) assumed of estimates on a device where fewer than
#: three designs are built to measure it.
_UNMEASURED_ERROR = (0.2, 0.3)


def _design_key(point: Point) -> str:
    return json.dumps(dict(dataclasses.asdict(point), seed=0), sort_keys=True)


def _cycles(plan) -> float:
    """Cycles per inference of a plan of :func:`plan_point` (its interval over its batch)."""
    interval = getattr(plan, "interval", None)
    if interval is None:
        from ..design.timing import network_interval

        interval = network_interval(plan.timings, plan.net.input.features)
    return interval / getattr(plan, "rows", 1)


def _design_facts(point: Point) -> dict | None:
    """What is known of a design before it is built: its accuracy, cycles per inference,
    estimator features and front group; ``None`` where the estimator cannot judge it (an
    invalid design, one outside the estimator's features, an unknown accuracy)."""
    try:
        net, plan = plan_point(point)
    except RtlGenError:
        return None
    features = _features(plan, point.device)
    digest = _bundle_digest(point.bundle)
    accuracy = _accuracy(point.bundle, digest)
    if features is None or accuracy is None:
        return None
    return {"features": features, "accuracy": accuracy, "cycles": _cycles(plan),
            "device": point.device, "bundle": point.bundle,
            "group": (point.device, _dataset(point.bundle, digest))}


def row_facts(rows: Iterable[dict]) -> dict[str, dict]:
    """:func:`_design_facts` of each design of a finished sweep's ``rows``, from the rows
    themselves (the features, accuracy and cycles the sweep recorded), for replaying a
    pruned sweep on them (:func:`run_pruned`'s ``facts``)."""
    facts = {}
    for r in rows:
        p = r["point"]
        if r.get("features") and r.get("accuracy") is not None \
                and r.get("cycles per inference"):
            facts[_design_key(Point(**p))] = {
                "features": r["features"], "accuracy": r["accuracy"],
                "cycles": r["cycles per inference"], "device": p["device"],
                "bundle": p["bundle"], "group": (p["device"], r.get("dataset"))}
    return facts


def _log_errors(estimator, built: Sequence[dict]) -> dict[str, tuple[float, float]]:
    """Per device with three or more built designs ``built`` (:func:`designs` rows), the
    root-mean-square log error (LC, Fmax) of ``estimator`` on them, at least
    :data:`_LEAST_ERROR`."""
    errs: dict[str, list[tuple[float, float]]] = {}
    for d in built:
        try:
            e = estimator.estimate(d["point"]["device"], d["features"])
        except RtlGenError:
            continue
        errs.setdefault(d["point"]["device"], []).append(
            (math.log(d["LC"] / e["LC"]), math.log(d["Fmax MHz"] / e["Fmax MHz"])))
    return {dev: tuple(max(_LEAST_ERROR, math.sqrt(sum(x[i] ** 2 for x in v) / len(v)))
                       for i in (0, 1)) for dev, v in errs.items() if len(v) >= 3}


def _on_front(accuracy, x, low: bool):
    """``(draws, n)``: whether each of ``n`` designs is on the front of accuracy (higher is
    better) against ``x`` (``(draws, n)``, NaN: not built) in each draw."""
    import numpy as np

    a_i, a_j = accuracy[None, :, None], accuracy[None, None, :]
    x_i, x_j = x[:, :, None], x[:, None, :]
    as_good = (a_i >= a_j) & ((x_i <= x_j) if low else (x_i >= x_j))
    better = (a_i > a_j) | ((x_i < x_j) if low else (x_i > x_j))
    return ~(as_good & better).any(axis=1) & ~np.isnan(x)


def front_chances(facts: Mapping[str, dict], built: Mapping[str, dict], estimator,
                  calibration: Sequence[dict] = (), *, draws: int = CHANCE_DRAWS,
                  seed: int = 0) -> dict[str, float]:
    """Each unbuilt design's chance of lying on a reported front (:data:`FRONTS`) of its
    group: ``facts`` (:func:`_design_facts`) of every design the estimator can judge,
    ``built`` the :func:`designs` rows of those already built (exact; a design that did not
    fit is on no front).  An unbuilt design's LC and Fmax are the estimate times a
    log-normal error whose spread is the estimator's error on the built designs and the
    ``calibration`` designs (:func:`_log_errors`; :data:`_UNMEASURED_ERROR` on a device
    with fewer than three), centred on the mean error of the built designs of the same
    bundle and device (what the calibration does not explain of a network tends to hold
    for its other foldings); ``draws`` draws decide."""
    import numpy as np

    rng = np.random.default_rng(seed)

    def usable(d):
        return (d.get("status") == "ok" and d.get("features") and d.get("LC")
                and d.get("Fmax MHz"))

    ok = [d for d in built.values() if usable(d)]
    spread = _log_errors(estimator, ok + [d for d in calibration if usable(d)])
    offsets: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for d in ok:
        try:
            e = estimator.estimate(d["point"]["device"], d["features"])
        except RtlGenError:
            continue
        offsets.setdefault((d["point"]["bundle"], d["point"]["device"]), []).append(
            (math.log(d["LC"] / e["LC"]), math.log(d["Fmax MHz"] / e["Fmax MHz"])))
    chances: dict[str, float] = {}
    groups: dict[tuple, list[str]] = {}
    for key, f in facts.items():
        groups.setdefault(f["group"], []).append(key)
    for keys in groups.values():
        lc = np.full((draws, len(keys)), np.nan)
        ips = np.full((draws, len(keys)), np.nan)
        judged = []
        for j, key in enumerate(keys):
            f = facts[key]
            if key in built:
                d = built[key]
                if d.get("status") == "ok" and d.get("LC") and d.get("inferences/s"):
                    lc[:, j], ips[:, j] = d["LC"], d["inferences/s"]
                continue
            try:
                e = estimator.estimate(f["device"], f["features"])
            except RtlGenError:
                chances[key] = 1.0  # no calibration for its device or engine yet
                continue
            s_lc, s_f = spread.get(f["device"], _UNMEASURED_ERROR)
            own = offsets.get((f["bundle"], f["device"]), [(0.0, 0.0)])
            o_lc, o_f = (sum(o[i] for o in own) / len(own) for i in (0, 1))
            area = e["LC"] * np.exp(o_lc + s_lc * rng.standard_normal(draws))
            fmax = e["Fmax MHz"] * np.exp(o_f + s_f * rng.standard_normal(draws))
            fits = area <= get_device(f["device"]).luts
            lc[:, j] = np.where(fits, area, np.nan)
            ips[:, j] = np.where(fits, fmax * 1e6 / f["cycles"], np.nan)
            judged.append(j)
        accuracy = np.array([facts[k]["accuracy"] for k in keys], float)
        on = _on_front(accuracy, lc, True) | _on_front(accuracy, ips, False)
        for j in judged:
            chances[keys[j]] = float(on[:, j].mean())
    return chances


def run_pruned(sweep: Sweep, calibration: Sequence[dict] = (), *,
               chance: float = DEFAULT_CHANCE,
               executor: concurrent.futures.Executor | None = None,
               workers: int | None = None, cache=None, progress: Progress | None = None,
               evaluator: Callable[..., dict] = evaluate,
               facts: Mapping[str, dict] | None = None) -> SweepResult:
    """The sweep built in rounds, most promising designs first, leaving out what the
    estimator shows off the Pareto fronts: each round calibrates the estimator
    (:func:`rtl_gen.tasks.estimator.fit`) on ``calibration`` (an earlier sweep's rows) and
    the rows built so far, computes each unbuilt design's chance of lying on a reported
    front (:func:`front_chances`: the built designs are exact, the rest estimated with the
    estimator's own error), and builds (all seeds) the ``workers`` designs of highest
    chance; it stops when no unbuilt design has a chance of ``chance`` or more.  Designs
    the estimator cannot judge (invalid, outside its features) are built first.  Without
    ``calibration`` (or with too few of its rows on a device), the estimator starts from
    the shipped area model and the planner's clock, scaled to the designs built so far
    (:func:`rtl_gen.tasks.estimator.fit`'s ``devices``).  Rows come back in the order they
    were built.  ``facts``: what is known of each design before it is built, by
    :func:`_design_key` (default: :func:`_design_facts`, from its plan; a re-scoring of a
    finished sweep passes its rows' own)."""
    from .estimator import fit

    start = time.perf_counter()
    points: dict[str, list[Point]] = {}
    for p in sweep.points:
        points.setdefault(_design_key(p), []).append(p)
    if facts is None:
        facts = {}
        for key, ps in points.items():
            f = _design_facts(ps[0])
            if f is not None:
                facts[key] = f
    facts = {k: f for k, f in facts.items() if k in points}
    devices = sorted({p.device for p in sweep.points})
    earlier = designs([r for r in calibration if r.get("features")])
    own = executor is None
    if own:
        executor = concurrent.futures.ProcessPoolExecutor(max_workers=workers)
    batch = workers or getattr(executor, "_max_workers", None) or os.cpu_count() or 1
    rows: list[dict] = []
    built: dict[str, dict] = {}
    try:
        while True:
            pending = [k for k in points if k not in built and k not in facts]
            if pending:
                odds = {k: 1.0 for k in pending}
            else:
                estimator = fit(list(calibration) + rows, devices=devices)
                odds = front_chances(facts, built, estimator, earlier)
            todo = sorted((k for k, c in odds.items() if k not in built and c >= chance),
                          key=lambda k: -odds[k])[:batch]
            if not todo:
                break
            futures = [(k, executor.submit(evaluator, p, cache)) for k in todo
                       for p in points[k]]
            mine: dict[str, list[dict]] = {}
            for k, fut in futures:
                mine.setdefault(k, []).append(fut.result())
            for k in todo:
                rows += mine[k]
                built[k] = designs(mine[k])[0]
                p = points[k][0]
                notify(progress, f"[{len(built)} built, {len(points) - len(built)} left] "
                                 f"{Path(p.bundle).name} {p.device} "
                                 f"{' '.join(p.cli_options())} (chance {odds[k]:.2f}): "
                                 f"{built[k].get('status')}")
    finally:
        if own:
            executor.shutdown(cancel_futures=True)
    return SweepResult.of(rows, start)


# --- the Pareto front ----------------------------------------------------------------------

def pareto_front(rows: Iterable[dict], objectives: Sequence[tuple[str, str]]) -> list[dict]:
    """The rows no other row dominates; ``objectives`` are ``(key, "max" | "min")``.  Rows
    missing an objective (a design that did not fit) are left out."""
    pts = [r for r in rows if all(r.get(k) is not None for k, _ in objectives)]

    def better_eq(a, b):
        return all((a[k] >= b[k]) if d == "max" else (a[k] <= b[k]) for k, d in objectives)

    def strictly(a, b):
        return any((a[k] > b[k]) if d == "max" else (a[k] < b[k]) for k, d in objectives)

    return [r for r in pts if not any(better_eq(o, r) and strictly(o, r) for o in pts)]


# --- output --------------------------------------------------------------------------------

#: The Pareto fronts a sweep reports, per device: accuracy against throughput and area.
FRONTS = {"throughput": [("accuracy", "max"), ("inferences/s", "max")],
          "area": [("accuracy", "max"), ("LC", "min")]}
_COLUMNS = [("network", "bundle"), ("device", "device"), ("design", "design"),
            ("seed", "seeds"), ("accuracy", "accuracy %"), ("LC", "LC"), ("FF", "FF"),
            ("Fmax MHz", "Fmax MHz"), ("cycles per inference", "cycles/inf"),
            ("inferences/s", "inferences/s"), ("status", "status")]


def _cell(row: dict, key: str) -> str:
    p = row["point"]
    if key == "device":
        return p["device"]
    if key == "seed":
        return ", ".join(map(str, row["seeds"])) if "seeds" in row else str(p["seed"])
    if key == "design":
        return " ".join(Point(**p).cli_options()) or "defaults"
    v = row.get(key)
    if v is None:
        return "—"
    if key == "accuracy":
        return f"{100 * v:.2f}"
    if isinstance(v, float):
        return f"{v:,.1f}" if v < 1e4 else f"{v:,.0f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def designs(rows: Sequence[dict]) -> list[dict]:
    """One row per design (bundle, device, options) over its seeds, in first-seen order:
    ``Fmax MHz`` the median over the seeds that placed (:func:`rtl_gen.flow.median_fmax`),
    with ``Fmax per seed`` and ``seeds``, and the throughput at the median."""
    from ..flow import median_fmax

    groups: dict[str, list[dict]] = {}
    for r in rows:
        p = {k: v for k, v in r["point"].items() if k != "seed"}
        groups.setdefault(json.dumps(p, sort_keys=True), []).append(r)
    out = []
    for rs in groups.values():
        row = {k: v for k, v in rs[0].items() if k not in ("seconds", "flow runs", "cached")}
        row["seeds"] = [r["point"]["seed"] for r in rs]
        placed = [r["Fmax MHz"] for r in rs if r.get("Fmax MHz") is not None]
        if placed:
            fmax = median_fmax(placed)
            row.update({"Fmax MHz": fmax, "Fmax per seed": placed,
                        "inferences/s": fmax * 1e6 / row["cycles per inference"]})
            if row.get("LC"):
                row["inferences/s per kLC"] = row["inferences/s"] / row["LC"] * 1e3
        out.append(row)
    return out


def _grouped(rows: Sequence[dict]) -> dict[str, list[dict]]:
    """The designs (:func:`designs`) by group: their device, or their device and data set
    when the built ones come from several (accuracies on different test sets are never
    compared)."""
    every = designs(rows)
    several = len({r.get("dataset") for r in every if r.get("status") == "ok"}) > 1
    out: dict[str, list[dict]] = {}
    for r in every:
        device = r["point"]["device"]
        group = f"{device}, {r.get('dataset') or 'no data set'}" if several else device
        out.setdefault(group, []).append(r)
    return out


def fronts(rows: Sequence[dict], grouped: Mapping[str, list[dict]] | None = None
           ) -> dict[str, dict[str, list[dict]]]:
    """``{group: {front name: designs}}``: the Pareto fronts of the designs (:func:`designs`,
    seeds folded into the median Fmax) that were built (``status`` ok), one group per
    device, or per device and data set when the bundles come from several (accuracies on
    different test sets are not compared).  ``grouped``: :func:`_grouped` of ``rows``, if
    already at hand."""
    out: dict[str, dict[str, list[dict]]] = {}
    for group, mine in (grouped if grouped is not None else _grouped(rows)).items():
        ok = [r for r in mine if r.get("status") == "ok"]
        if ok:
            out[group] = {name: sorted(pareto_front(ok, obj), key=lambda r: r[obj[1][0]])
                          for name, obj in FRONTS.items()}
    return out


def table(rows: Sequence[dict], columns=_COLUMNS) -> str:
    """A Markdown table of ``rows``."""
    lines = ["| " + " | ".join(t for _, t in columns) + " |",
             "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(r, k) for k, _ in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _plot(rows: Sequence[dict], front: Sequence[dict], x: str, title: str, xlabel: str) -> str:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4))
    pts = [r for r in rows if r.get(x) is not None and r.get("accuracy") is not None]
    ax.scatter([r[x] for r in pts], [100 * r["accuracy"] for r in pts], s=14,
               color="#9aa5b1", label="swept designs")
    ax.plot([r[x] for r in front], [100 * r["accuracy"] for r in front], "o-",
            color="#c2410c", label="Pareto front")
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="best")
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]


def render(result: SweepResult, meta: Mapping) -> dict[str, str]:
    """The files of a sweep's output folder: ``sweep.json`` (every row, the fronts, the
    run's metadata), ``pareto.md`` and ``pareto.html`` (tables and plots, no external
    assets), and each plot alone as ``plots/<group>-<front>.svg`` (for a page of one's
    own)."""
    import html
    import re

    grouped = _grouped(result.rows)
    fr = fronts(result.rows, grouped)
    doc = {"meta": dict(meta), "rows": result.rows,
           "fronts": {d: {n: [r["command"] for r in f] for n, f in v.items()}
                      for d, v in fr.items()}}
    md = [f"# Design-space sweep\n\n{len(result.rows)} points, {result.flow_runs} flow runs, "
          f"{result.seconds:.0f} s ({meta.get('date', '')}; tools "
          f"{', '.join(f'{k} {v}' for k, v in meta.get('tools', {}).items())})\n"]
    body = [f"<h1>Design-space sweep</h1><p>{html.escape(md[0].splitlines()[2])}</p>"]
    cols = _COLUMNS + [("command", "command")]
    plots: dict[str, str] = {}
    for device, named in fr.items():
        rows = grouped[device]
        body.append(f"<h2>{html.escape(device)}</h2>")
        for name, front in named.items():
            x, label = (("inferences/s", "inferences per second (log)") if name == "throughput"
                        else ("LC", "logic cells (log)"))
            title = f"{device}: accuracy against {'throughput' if x != 'LC' else 'area'}"
            md.append(f"## {title}\n\n{table(front, cols)}")
            body.append(f"<h3>{html.escape(title)}</h3>")
            svg = _plot(rows, front, x, title, label)
            body.append(svg)
            slug = re.sub(r"[^a-z0-9]+", "-", device.lower()).strip("-")
            plots[f"plots/{slug}-{name}.svg"] = '<?xml version="1.0" encoding="utf-8"?>\n' + svg
            body.append(_html_table(front, cols))
    md.append(f"## Every point\n\n{table(result.rows)}")
    body.append("<h2>Every point</h2>" + _html_table(result.rows, _COLUMNS))
    page = ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>rtl_gen sweep</title>"
            "<style>body{font-family:sans-serif;max-width:70em;margin:auto}"
            "table{border-collapse:collapse;font-size:90%}td,th{border:1px solid #ccc;"
            "padding:2px 6px}</style></head><body>" + "\n".join(body) + "</body></html>\n")
    return {"sweep.json": json.dumps(doc, indent=1) + "\n", "pareto.md": "\n".join(md),
            "pareto.html": page, **plots}


def _html_table(rows: Sequence[dict], columns) -> str:
    import html

    head = "".join(f"<th>{html.escape(t)}</th>" for _, t in columns)
    body = "".join("<tr>" + "".join(
        f"<td>{html.escape(_cell(r, k) if k != 'command' else r.get('command', ''))}</td>"
        for k, _ in columns) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _sweep_rows(path: Path) -> list[dict]:
    """The rows of a previous sweep's ``sweep.json``, or one line saying why not."""
    try:
        rows = json.loads(path.read_text())["rows"]
        if not isinstance(rows, list):
            raise TypeError("'rows' is not a list")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ExploreError(f"{path}: not a sweep.json of rtl-gen explore "
                           f"({type(e).__name__}: {e})") from None
    return rows


def explore(spec: Path, out: Path, *, workers: int | None = None,
            scheduler: str | None = None, local_cluster: int | None = None,
            cache: Path | None = None, adaptive: int | None = None,
            storage: str | None = None, study: str = "rtl_gen",
            prune_with: str | os.PathLike | None = None, chance: float = DEFAULT_CHANCE,
            progress: Progress | None = None) -> SweepResult:
    """``rtl-gen explore SPEC --out DIR``: run the sweep of ``spec`` (:func:`load_spec`) and
    write ``DIR/sweep.json``, ``pareto.md`` and ``pareto.html`` (all or none).  The points
    run on a local process pool of ``workers`` (default: one per core), or on the dask
    cluster at ``scheduler``, or on a dask ``LocalCluster`` of ``local_cluster`` workers.
    ``adaptive``: evaluate that many points chosen by Optuna (:func:`run_adaptive`, with
    ``storage`` and ``study``) instead of every point.  ``prune_with``: build the designs in
    rounds and leave out those with less than ``chance`` of reaching a Pareto front
    (:func:`run_pruned`), the estimator (:mod:`rtl_gen.tasks.estimator`) calibrated on the
    built points of a previous sweep's ``sweep.json``, or (``"model"``) on the shipped
    area model alone."""
    import datetime

    from ..files import check_output, write_files
    from ..flow import tool_versions

    check_output(out, folder=True)
    sweep = load_spec(spec)
    if scheduler is not None and local_cluster is not None:
        raise ExploreError("give --scheduler or --local-cluster, not both")
    calibration = None
    if prune_with is not None:
        if adaptive is not None:
            raise ExploreError("give --prune or --adaptive, not both")
        model = str(prune_with) == "model"
        calibration = [] if model else _sweep_rows(Path(prune_with))
        notify(progress, "pruned by the estimator, calibrated on "
               + ("the shipped area model" if model else
                  f"{len(calibration)} points of {prune_with}"))
    close = None
    executor = None
    if scheduler is not None or local_cluster is not None:
        executor, close = dask_executor(scheduler, local_workers=local_cluster)
    if adaptive is None and storage is not None:
        raise ExploreError("--storage holds an adaptive study; give --adaptive N as well")
    notify(progress, f"{len(sweep.points)} points from {spec}"
                     + (f"; {adaptive} chosen by Optuna" if adaptive else ""))
    try:
        if adaptive is not None:
            result = run_adaptive(sweep, adaptive, executor=executor, workers=workers,
                                  cache=cache, storage=storage, study=study,
                                  progress=progress)
        elif calibration is not None:
            result = run_pruned(sweep, calibration, chance=chance, executor=executor,
                                workers=workers, cache=cache, progress=progress)
        else:
            result = run_sweep(sweep, executor=executor, workers=workers, cache=cache,
                               progress=progress)
    finally:
        if close is not None:
            close()
    meta = {"spec": str(spec), "date": datetime.date.today().isoformat(),
            "mode": (f"adaptive, {adaptive} trials" if adaptive else
                     f"pruned by the estimator of {prune_with} (chance {chance:g})"
                     if prune_with else
                     "every point"),
            "tools": tool_versions(), "flow runs": result.flow_runs,
            "seconds": round(result.seconds, 1)}
    write_files(out, render(result, meta))
    return result
