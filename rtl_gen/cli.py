"""``rtl-gen``: the command-line interface.

Every user-facing failure (bad bundle, bad model, bad argument) ends as one line
``Error: <what is wrong, and where>`` on stderr and a non-zero exit status: 1 for bad input
files, 2 for bad command-line usage (click's convention), 3 for a command that a later
release fills in.  Nothing is written half-way: outputs go to a temporary name first.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import click
import numpy as np

from .errors import ModelError, RtlGenError
from .network import TRConfig

NOT_AVAILABLE_EXIT = 3


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

    from .datasets import digits
    from .defaults import FLOAT_MODEL_NAME, WEIGHTS_DIR, train_default
    from .float_model import save_float_model

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
    from .float_model import load_float_model
    from .quantize import quantize_mlp

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
    """Validate a weight bundle and summarise its layers."""
    from .bundle import read_bundle

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


def _evaluation_data(net, data):
    if data is None:
        if net.metadata.get("dataset") != "sklearn-digits":
            raise RtlGenError(f"bundle {net.name!r} is not a digits model: give --data "
                              "with arrays x (float inputs) and y (labels)")
        from .datasets import digits
        _, test = digits()
        return test.x, test.y
    try:
        with np.load(data, allow_pickle=False) as z:
            x, y = z["x"], z["y"]
    except (OSError, ValueError, KeyError) as e:
        raise RtlGenError(f"{data}: expected an .npz with arrays x and y ({e})") from None
    if x.ndim != 2 or x.shape[1] != net.input.features or len(y) != len(x):
        raise RtlGenError(f"{data}: x must be (n, {net.input.features}) and y (n,), not "
                          f"{x.shape} and {y.shape}")
    return x, y


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
    from .defaults import evaluate

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


@main.command()
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              default=Path("build/demo"), show_default=True,
              help="Folder for the bundles and the accuracy table.")
def demo(out):
    """The main job on the embedded default: the digits MLP in every scheme.

    Quantizes the shipped float model (weights/digits-float.npz) into binary, ternary,
    PoT4, APoT4, int4, int8 and term revealing, writes each bundle, reads it back through
    the validating reader, and prints golden-model test accuracy beside the float model's.
    """
    from .bundle import read_bundle, write_bundle
    from .datasets import digits
    from .defaults import (
        DEFAULT_VARIANTS,
        FLOAT_MODEL_NAME,
        WEIGHTS_DIR,
        evaluate,
        quantize_default,
    )
    from .float_model import load_float_model

    model = load_float_model(WEIGHTS_DIR / FLOAT_MODEL_NAME)
    _, test = digits()
    rows = []
    for variant in DEFAULT_VARIANTS:
        path = write_bundle(quantize_default(model, variant), out / f"digits-{variant.name}")
        rows.append(_with_delta(evaluate(read_bundle(path), test.x_int, test.x, test.y)))
    table = _markdown_table(rows, ACCURACY_COLUMNS)
    click.echo(f"8x8 digits, test split ({len(test.y)} images), 64-32-10 MLP, "
               "post-training quantization:\n")
    click.echo(table, nl=False)
    _outputs_dir(out, {"accuracy.md": table, "accuracy.json": json.dumps(rows, indent=2) + "\n"})
    click.echo(f"\nbundles and accuracy.md written to {out}/")


def _not_available(name: str, what: str):
    @main.command(name=name, context_settings={"ignore_unknown_options": True},
                  help=f"{what} (not available yet).")
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def command(args):
        click.echo(f"Error: 'rtl-gen {name}' is not available yet in this release "
                   f"({what[0].lower()}{what[1:]}).", err=True)
        sys.exit(NOT_AVAILABLE_EXIT)

    return command


for _name, _what in (
        ("generate", "Elaborate a PE, a layer or a whole bundle and write Verilog"),
        ("verify", "Run the cocotb testbenches of the generated Verilog against the golden "
                   "model"),
        ("synth", "Synthesize with Yosys and report resources"),
        ("build", "Build a board bitstream with Yosys and nextpnr"),
        ("run", "Send test images to a board over UART and compare with the golden model"),
):
    _not_available(_name, _what)


if __name__ == "__main__":  # pragma: no cover
    main()
