"""``train``: the default float MLP (64-32-10) on the 8x8 digits training split."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ..data.digits import digits
from ..training.defaults import FLOAT_MODEL_NAME, WEIGHTS_DIR, train_default
from ..training.float_model import FloatMLP, save_float_model
from .common import Progress, check_output

__all__ = ["TrainResult", "train"]


@dataclasses.dataclass(frozen=True)
class TrainResult:
    model: FloatMLP
    #: Accuracy on the digits test split.
    accuracy: float
    path: Path


def train(out: Path | None = None, *, epochs: int = 200, seed: int = 0,
          progress: Progress | None = None) -> TrainResult:
    """Train the default float MLP and save it to ``out`` (default
    ``weights/digits-float.npz``); progress: the loop ``"training"`` in epochs."""
    out = check_output(Path(out) if out is not None else WEIGHTS_DIR / FLOAT_MODEL_NAME)
    done = 0

    def step(_):
        nonlocal done
        done += 1
        if progress is not None:
            progress("training", done, epochs, unit="epoch")

    model = train_default(epochs=epochs, seed=seed, progress=step)
    _, test = digits()
    save_float_model(model, out)
    return TrainResult(model, model.accuracy(test.x, test.y), out)
