"""Float multilayer perceptrons: the models that come in, and a small numpy trainer.

A float model is a chain of dense layers with ReLU between them and none after the last.  It
travels as an ``.npz`` file, so a model trained anywhere (PyTorch, JAX, Keras) comes in::

    weight0, bias0, weight1, bias1, ...   layer i: weight (out, in), bias (out,), float
    calibration                           (optional) float inputs (n, in) for calibration
    input_scale, input_bits, input_signed (optional) scalars fixing the input code
    labels                                (optional) class names, one per output

The weight layout is PyTorch's ``nn.Linear.weight``: ``y = x @ weight.T + bias``.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from ..data.npz import read_npz, write_npz
from ..errors import ModelError

__all__ = ["FloatMLP", "load_float_model", "save_float_model", "train_mlp"]


@dataclasses.dataclass(frozen=True, eq=False)
class FloatMLP:
    """Float weights and biases per layer, plus what the ``.npz`` optionally carries."""

    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]
    calibration: np.ndarray | None = None
    input_scale: float | None = None
    input_bits: int | None = None
    input_signed: bool | None = None
    labels: tuple[str, ...] | None = None

    def __post_init__(self):
        object.__setattr__(self, "weights", tuple(self.weights))
        object.__setattr__(self, "biases", tuple(self.biases))
        _validate(self, "model")

    @property
    def in_features(self) -> int:
        return int(self.weights[0].shape[1])

    @property
    def sizes(self) -> tuple[int, ...]:
        return (self.in_features,) + tuple(int(w.shape[0]) for w in self.weights)

    def forward(self, x) -> np.ndarray:
        """Float logits for float inputs ``(batch, in_features)``."""
        h = np.asarray(x, dtype=np.float64)
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = h @ w.T + b
            if i < len(self.weights) - 1:
                h = np.maximum(h, 0)
        return h

    def accuracy(self, x, y) -> float:
        return float(np.mean(np.argmax(self.forward(x), axis=-1) == np.asarray(y)))


def _validate(m: FloatMLP, where: str) -> None:
    if not m.weights:
        raise ModelError(f"{where}: no layers (expected arrays weight0, bias0, ...)")
    if len(m.weights) != len(m.biases):
        raise ModelError(f"{where}: {len(m.weights)} weight arrays but {len(m.biases)} biases")
    prev = None
    for i, (w, b) in enumerate(zip(m.weights, m.biases, strict=True)):
        for key, a, ndim in ((f"weight{i}", w, 2), (f"bias{i}", b, 1)):
            if not isinstance(a, np.ndarray) or a.dtype.kind != "f":
                raise ModelError(f"{where}: {key} must be a floating-point array, not "
                                 f"{getattr(a, 'dtype', type(a).__name__)}")
            if a.ndim != ndim or 0 in a.shape:
                raise ModelError(f"{where}: {key} must be a non-empty {ndim}-D array, not "
                                 f"shape {a.shape}")
            if not np.isfinite(a).all():
                raise ModelError(f"{where}: {key} contains "
                                 f"{np.count_nonzero(~np.isfinite(a))} NaN or infinite value(s)")
        if b.shape[0] != w.shape[0]:
            raise ModelError(f"{where}: bias{i} has {b.shape[0]} entries but weight{i} has "
                             f"{w.shape[0]} outputs")
        if prev is not None and w.shape[1] != prev:
            raise ModelError(f"{where}: weight{i} takes {w.shape[1]} inputs but layer {i - 1} "
                             f"gives {prev}")
        prev = w.shape[0]
    c = m.calibration
    if c is not None:
        if not isinstance(c, np.ndarray) or c.dtype.kind not in "fiu" or c.ndim != 2 \
                or c.shape[1] != m.in_features or c.shape[0] == 0:
            raise ModelError(f"{where}: calibration must be a numeric (n, {m.in_features}) "
                             f"array, not {getattr(c, 'dtype', '?')} {getattr(c, 'shape', '')}")
        if not np.isfinite(c).all():
            raise ModelError(f"{where}: calibration contains NaN or infinite values")
    if m.input_scale is not None and not (np.isfinite(m.input_scale) and m.input_scale > 0):
        raise ModelError(f"{where}: input_scale must be positive and finite, not "
                         f"{m.input_scale!r}")
    if m.input_bits is not None and not 1 <= m.input_bits <= 16:
        raise ModelError(f"{where}: input_bits must be 1..16, not {m.input_bits!r}")
    if m.labels is not None and len(m.labels) != m.weights[-1].shape[0]:
        raise ModelError(f"{where}: {len(m.labels)} labels for {m.weights[-1].shape[0]} "
                         "outputs")


def load_float_model(path) -> FloatMLP:
    """Read a float model ``.npz`` (format in the module docstring).

    Raises
    ------
    ModelError
        Naming the file and the array, for anything missing, malformed, NaN or inconsistent.
    """
    path = os.fspath(path)
    arrays = read_npz(path, ModelError)
    n = 0
    while f"weight{n}" in arrays:
        n += 1
    known = {f"{k}{i}" for i in range(n) for k in ("weight", "bias")}
    known |= {"calibration", "input_scale", "input_bits", "input_signed", "labels"}
    unknown = sorted(set(arrays) - known)
    if unknown:
        raise ModelError(f"{path}: unexpected array(s) {', '.join(unknown)}; expected weight0, "
                         "bias0, weight1, bias1, ... and optionally calibration, input_scale, "
                         "input_bits, input_signed, labels")
    missing = [f"bias{i}" for i in range(n) if f"bias{i}" not in arrays]
    if missing:
        raise ModelError(f"{path}: missing array {missing[0]}")

    def scalar(key, kind):
        if key not in arrays:
            return None
        a = arrays[key]
        if a.ndim != 0 or a.dtype.kind not in kind:
            want = {"f": "a floating-point number", "iu": "an integer",
                    "b": "a boolean (true or false)"}[kind]
            got = f"an array of shape {a.shape}" if a.ndim else f"a {a.dtype} value"
            raise ModelError(f"{path}: {key} must be a single value, {want}, not {got}")
        return a.item()

    labels = arrays.get("labels")
    if labels is not None and (labels.ndim != 1 or labels.dtype.kind not in "USiu"):
        got = f"shape {labels.shape}" if labels.ndim != 1 else f"dtype {labels.dtype}"
        raise ModelError(f"{path}: labels must be a list of names (a 1-D array of text), not "
                         f"{got}")
    try:
        return FloatMLP(
            weights=[arrays[f"weight{i}"] for i in range(n)],
            biases=[arrays[f"bias{i}"] for i in range(n)],
            calibration=arrays.get("calibration"),
            input_scale=scalar("input_scale", "f"),
            input_bits=scalar("input_bits", "iu"),
            input_signed=scalar("input_signed", "b"),
            labels=None if labels is None else tuple(str(v) for v in labels.tolist()),
        )
    except ModelError as e:
        raise ModelError(str(e).replace("model:", f"{path}:", 1)) from None


def save_float_model(model: FloatMLP, path) -> None:
    """Write ``model`` in the ``.npz`` format above (uncompressed, deterministic order)."""
    arrays = {}
    for i, (w, b) in enumerate(zip(model.weights, model.biases, strict=True)):
        arrays[f"weight{i}"] = w
        arrays[f"bias{i}"] = b
    if model.calibration is not None:
        arrays["calibration"] = model.calibration
    if model.input_scale is not None:
        arrays["input_scale"] = np.float64(model.input_scale)
    if model.input_bits is not None:
        arrays["input_bits"] = np.int64(model.input_bits)
    if model.input_signed is not None:
        arrays["input_signed"] = np.bool_(model.input_signed)
    if model.labels is not None:
        arrays["labels"] = np.array(model.labels)
    write_npz(path, arrays)


def train_mlp(x, y, sizes, *, epochs=200, batch=64, lr=3e-3, weight_decay=1e-3, seed=0,
              progress=None) -> FloatMLP:
    """Train a ReLU MLP with softmax cross-entropy and Adam, in float64 numpy.

    Deterministic for a given ``seed`` on a given machine.  ``progress`` is an optional
    callable taking the epoch number, for a progress display.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    if x.ndim != 2 or x.shape[1] != sizes[0]:
        raise ValueError(f"inputs must be (n, {sizes[0]}), not {x.shape}")
    rng = np.random.default_rng(seed)
    ws = [rng.normal(0, np.sqrt(2 / a), (b, a)) for a, b in zip(sizes[:-1], sizes[1:],
                                                                 strict=True)]
    bs = [np.zeros(b) for b in sizes[1:]]
    params = ws + bs
    m1 = [np.zeros_like(p) for p in params]
    m2 = [np.zeros_like(p) for p in params]
    b1, b2, eps, t = 0.9, 0.999, 1e-8, 0
    n_layers = len(ws)
    for epoch in range(epochs):
        order = rng.permutation(len(x))
        for start in range(0, len(x), batch):
            idx = order[start:start + batch]
            hs = [x[idx]]
            for i in range(n_layers):
                h = hs[-1] @ ws[i].T + bs[i]
                hs.append(np.maximum(h, 0) if i < n_layers - 1 else h)
            logits = hs[-1]
            p = np.exp(logits - logits.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            p[np.arange(len(idx)), y[idx]] -= 1
            g = p / len(idx)
            gw, gb = [None] * n_layers, [None] * n_layers
            for i in reversed(range(n_layers)):
                gw[i] = g.T @ hs[i] + weight_decay * ws[i]
                gb[i] = g.sum(axis=0)
                if i:
                    g = (g @ ws[i]) * (hs[i] > 0)
            t += 1
            for j, (p_, g_) in enumerate(zip(params, gw + gb, strict=True)):
                m1[j] = b1 * m1[j] + (1 - b1) * g_
                m2[j] = b2 * m2[j] + (1 - b2) * g_ * g_
                p_ -= lr * (m1[j] / (1 - b1**t)) / (np.sqrt(m2[j] / (1 - b2**t)) + eps)
        if progress is not None:
            progress(epoch)
    return FloatMLP(weights=ws, biases=bs)
