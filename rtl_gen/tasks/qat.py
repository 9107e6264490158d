"""``qat``: retrain the shipped digits bundles with quantization-aware training (PyTorch).

Fine-tunes ``weights/digits-float.npz`` with QAT into every variant, runs the EBS-style
per-layer bit-width search over int2/int3/int4/int8 and trains the mixed-precision model it
picks, saves every trained state in ``OUT/qat/``, writes the search table
``OUT/qat/search.md`` and then exports the bundles as the demo does
(:func:`rtl_gen.tasks.demo.demo_bundles`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ..data.digits import digits
from ..errors import RtlGenError
from ..files import make_dir
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
from .common import Progress, check_output, write_outputs
from .demo import DemoBundles, demo_bundles

__all__ = ["QATResult", "qat"]


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
