"""``demo``: the whole pipeline on the embedded default, the digits MLP.

1. quantize: export the shipped quantization-aware trained states (``weights/qat/``) into
   every bundle, read each back through the validating reader, and tabulate golden-model
   accuracy beside the float model and its post-training quantization;
2. generate the Verilog of the binary network;
3. verify it in simulation behind the UART host link, every test image, logits equal to the
   golden model's;
4. build the bitstream for the board;
5. write ``report.md``, ``report.html`` and ``report.json``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

from .. import protocol
from ..bundle import read_int_bundle, write_bundle
from ..data.digits import Split, digits
from ..design import golden
from ..design.network import Network
from ..errors import RtlGenError
from ..flow.network_build import build_network
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

__all__ = ["BOARD_COLS", "DEMO_BOARD", "DEMO_COLUMNS", "DEMO_NETWORK", "DemoBundles",
           "DemoResult", "DemoStep", "demo", "demo_bundles", "infer_frame_bytes"]

#: The network the demo takes to hardware, and the board it builds for.
DEMO_NETWORK = "binary"
DEMO_BOARD = "icebreaker"
#: Array columns per board for the demo's binary network: the UP5K's 5,280 logic cells hold
#: the network behind the host link with 4 columns (8 need about 5,330).
BOARD_COLS = {"icebreaker": 4}
#: The baud rate of the demo's host link (the build's default).
DEMO_BAUD = 115200

DEMO_COLUMNS = [("name", "bundle"), ("schemes", "weights"), ("bits", "bits/weight"),
                ("float_accuracy", "float"), ("ptq_accuracy", "PTQ"),
                ("golden_accuracy", "QAT (golden)"), ("delta", "QAT Δ points"),
                ("conventional_accuracy", "QAT, TR off")]


@dataclasses.dataclass(frozen=True)
class DemoBundles:
    """The shipped bundles exported from their QAT states, by variant name, their accuracy
    rows (:data:`DEMO_COLUMNS`) and the test split they were scored on."""

    networks: dict[str, Network]
    rows: list[dict]
    test: Split

    @property
    def table(self) -> str:
        return markdown_table(self.rows, DEMO_COLUMNS)


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
    result = DemoBundles(nets, rows, test)
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


def demo(out: Path = Path("build/demo"), *, states: Path | None = None,
         board: str = DEMO_BOARD, cols: int | None = None, images: int | None = None,
         simulate: bool = True, bitstream: bool = True,
         on_step: Callable[[DemoStep], None] | None = None) -> DemoResult:
    """Run the demo into ``out`` (module docstring).

    ``states``: the QAT states' folder; ``cols``: array columns (default: the board's fit);
    ``images``: simulate only the first N test images; ``simulate``/``bitstream``: run those
    steps.  ``on_step`` hears of every step as it starts and as it ends, with its result.
    """
    out = check_output(out, folder=True)
    total = len(STEPS)
    results: list = []

    def step(number: int, work: Callable[[], object], run: bool = True):
        name = STEPS[number - 1].format(board=board)
        if run and on_step is not None:
            on_step(DemoStep(number, total, name, False))
        value = work() if run else None
        if on_step is not None:
            on_step(DemoStep(number, total, name, True, value))
        results.append(value)
        return value

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
        data = {"dataset": f"8x8 digits, test split ({len(bundles.test.y)} images)",
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


def _simulate(net: Network, arrays, x_int) -> dict:
    verify, failures = sim_extra()
    try:
        res = verify.verify_board(net, x_int, arrays=arrays, malformed=True)
    except failures as e:
        raise RtlGenError(str(e)) from None
    _, timings = plan_network(net, arrays)
    return {"network": net.name, "simulator": "Verilator", "images": len(res["classes"]),
            "bit_exact": f"{len(res['classes'])}/{len(res['classes'])}",
            "malformed": len(res["malformed"]), "latency_cycles": int(max(res["cycles"])),
            "interval_cycles": golden.network_interval(timings, net.input.features),
            "layer_cycles": res["layer_cycles"]}


def _build(net: Network, arrays, engine: NetworkEngine, board: str, outdir: Path,
           sim: dict | None, baud: int = DEMO_BAUD) -> dict:
    """The bitstream's report with throughput at the PLL clock and over the UART."""
    from boards import get_board  # the flow extra (amaranth-boards)

    report = build_network(net, get_board(board), outdir=outdir, arrays=arrays, baud=baud)
    d = report.to_json()
    clock = report.pll_mhz * 1e6
    latency = sim["latency_cycles"] if sim else engine.interval
    info = HostLinkPlan.for_clock(net, arrays, clk_hz=clock, baud=baud).info()
    d.update(fmax=report.fmax, latency_us=latency / clock * 1e6,
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
