"""``mpwn`` and ``reduced-float``: float-activation networks with float, binary, ternary or
reduced-precision float weights per layer, scored on the float model's data and written as
float bundles."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from ..bundle import write_float_bundle
from ..data.digits import digits
from ..design.float_network import ACCUMULATIONS, FloatNetwork
from ..errors import RtlGenError
from ..training import mpwn as M
from ..training.defaults import FLOAT_MODEL_NAME, WEIGHTS_DIR
from ..training.float_model import FloatMLP, load_float_model
from .common import OptionError, Progress, bundle_name, check_output, data_file, notify

__all__ = ["MPWN_COLUMNS", "MPWNResult", "ReducedFloatResult", "float_model_and_data", "mpwn",
           "reduced_float"]

MPWN_COLUMNS = [("spaces", "weight spaces"), ("accuracy", "accuracy"),
                ("sparsity", "sparsity"), ("bits", "weight bits"), ("asb_pct", "ASB")]


def float_model_and_data(model_path: Path | None,
                         data: Path | None) -> tuple[FloatMLP, np.ndarray, np.ndarray]:
    """The float model (default ``weights/digits-float.npz``) and its evaluation data
    ``(x, y)``: the ``.npz`` file ``data``, or the digits test split for the default model."""
    default = WEIGHTS_DIR / FLOAT_MODEL_NAME
    model = load_float_model(model_path or default)
    if data is None:
        if model_path is not None and Path(model_path).resolve() != default.resolve():
            raise RtlGenError(f"{model_path}: give --data with arrays x (float inputs) and y "
                              "(labels) to score a model other than the default")
        _, test = digits()
        return model, test.x, test.y
    x, y = data_file(data, model.in_features, model.weights[-1].shape[0])
    return model, x, y


def _float_metadata(model_path, data, row: dict) -> dict:
    meta = {"source": Path(model_path).name if model_path else FLOAT_MODEL_NAME,
            "accuracy": row["accuracy"]}
    if data is None:
        meta.update(dataset="sklearn-digits", split="first 1437 train, last 360 test")
    return meta


def _training_data(model_path, train_data) -> tuple[np.ndarray, np.ndarray] | None:
    """The training split: ``train_data``, the digits' for the default model, else None."""
    if train_data is not None:
        return float_model_and_data(model_path, train_data)[1:]
    if model_path is None:
        train, _ = digits()
        return train.x, train.y
    return None


def _trainer(model: FloatMLP, data: tuple[np.ndarray, np.ndarray] | None,
             epochs: int | None, seed: int, accumulation: str = "sequential"):
    """``spaces -> fine-tuned float model`` on the training split ``data`` (memoized), or
    ``None`` for ``epochs == 0`` (``None``: the contract's default epochs)."""
    if epochs == 0:
        return None
    try:
        from ..training.mpwn_train import finetune  # the torch extra
    except ImportError as e:
        raise RtlGenError(f"--finetune needs PyTorch (pip install -e '.[torch]'), or give "
                          f"--finetune 0: {e}") from None
    if data is None:
        raise RtlGenError("give --train-data (x, y) to fine-tune a model other than the "
                          "default, or --finetune 0")
    tx, ty = data
    cache: dict = {}

    def run(spaces):
        if spaces not in cache:
            cache[spaces] = finetune(model, spaces, tx, ty, epochs=epochs, seed=seed,
                                     accumulation=accumulation)
        return cache[spaces]
    return run


@dataclasses.dataclass(frozen=True)
class MPWNResult:
    #: The scored assignments, best first: ``spaces``, ``accuracy``, ``sparsity``, ``bits``,
    #: ``max_bits``, ``asb`` (:func:`rtl_gen.training.mpwn.score`).
    rows: list[dict]
    #: The chosen weight space of every layer.
    spaces: list[str]
    #: The chosen network, when written.
    network: FloatNetwork | None = None
    path: Path | None = None

    @property
    def table_rows(self) -> list[dict]:
        """The rows for :data:`MPWN_COLUMNS` (the ASB score as text, 4 decimals)."""
        return [dict(r, asb_pct=f"{r['asb']:.4f}") for r in self.rows]


def mpwn(model_path: Path | None = None, spaces: list[str] | str | None = None, *,
         method: str = "auto", trials: int = 100, seed: int = 0, epochs: int | None = None,
         data: Path | None = None, train_data: Path | None = None, out: Path | None = None,
         accumulation: str = "sequential", progress: Progress | None = None) -> MPWNResult:
    """MPWN: score the given per-layer weight ``spaces`` (one for every layer, or one per
    layer; ``float``, ``binary``, ``ternary`` or a minifloat such as ``E4M3``), or search
    for the assignment with the best ASB score (``method``: ``auto``, ``exhaustive`` or
    ``tpe`` with ``trials``), after ``epochs`` of fine-tuning through each assignment's
    spaces (needs PyTorch; 0: post-training only; ``None``: the contract's default,
    :data:`rtl_gen.training.mpwn_train.RECIPES`), on the ``accumulation`` contract
    (``sequential`` fp32, or ``exact``: exact sum rounded once, in the narrowest window that
    changes no class on the training inputs, or on the scored inputs when there are none;
    the fine-tuning and the scores use it too).  With ``out``, writes the chosen network as a
    float bundle there.  Progress: the loop ``"MPWN search"``.
    """
    if accumulation not in ACCUMULATIONS:
        raise OptionError(f"accumulation must be one of {', '.join(ACCUMULATIONS)}, not "
                          f"{accumulation!r}", option="--accumulation")
    if out is not None:
        bundle_name(check_output(out, folder=True))
    model, x, y = float_model_and_data(model_path, data)
    training = _training_data(model_path, train_data)
    train = _trainer(model, training, epochs, seed, accumulation)
    contract = {"accumulation": accumulation,
                "calibration": x if training is None else training[0]}
    if spaces is not None:
        chosen = [s.strip() for s in spaces.split(",")] if isinstance(spaces, str) \
            else list(spaces)
        if len(chosen) == 1:
            chosen = chosen * len(model.weights)
        M.from_float(model, chosen)  # SpecError (unknown space, count) before any training
        net = M.from_float(model if train is None else train(tuple(chosen)), chosen,
                           **contract)
        rows = [M.score(net, net.encode(x), y)]
    else:
        def step(done, total):
            if progress is not None:
                progress("MPWN search", done, total, unit="assignment")
        rows = M.search(model, x, y, method=method, trials=trials, seed=seed, train=train,
                        progress=step, **contract)
        chosen = rows[0]["spaces"].split("/")
    if out is None:
        return MPWNResult(rows, chosen)
    out = Path(out)
    src = model if train is None else train(tuple(chosen))
    if epochs is None and train is not None:
        from ..training.mpwn_train import RECIPES
        epochs = RECIPES[accumulation][0]
    meta = dict(_float_metadata(model_path, data, rows[0]), finetune_epochs=epochs)
    net = M.from_float(src, chosen, name=out.name, metadata=meta, **contract)
    return MPWNResult(rows, chosen, net, write_float_bundle(net, out))


@dataclasses.dataclass(frozen=True)
class ReducedFloatResult:
    #: The recommended exponent width.
    recommended: int
    #: Every swept format: ``format``, ``exp_bits``, ``man_bits``, ``bits``, ``accuracy``,
    #: ``fp32_accuracy`` and ``delta`` (points against fp32, as text).
    rows: list[dict]
    tolerance: float
    #: The smallest format within ``tolerance`` points of fp32, or None.
    best: dict | None
    network: FloatNetwork | None = None
    path: Path | None = None

    def failure(self) -> str | None:
        """One line saying that no swept format is good enough, or None."""
        if self.best is not None:
            return None
        return (f"no swept format is within {self.tolerance} points of fp32 "
                f"({100 * self.rows[0]['fp32_accuracy']:.2f}%); sweep wider formats")


def reduced_float(model_path: Path | None = None, *, exp_bits: list[int] | None = None,
                  man_bits=range(8), energy: float = 1e-3, tolerance: float = 0.5,
                  data: Path | None = None, out: Path | None = None,
                  progress: Progress | None = None) -> ReducedFloatResult:
    """Reduced-precision float weights: recommend the exponent width (the share ``energy`` of
    each layer's squared weight sum may flush to zero), sweep ``exp_bits`` (default: the
    recommended one -1 .. +1) by ``man_bits``, and pick the format with the fewest bits whose
    accuracy is within ``tolerance`` points of the fp32 network's; with ``out``, write that
    format's network as a float bundle there (not when none qualifies:
    :meth:`ReducedFloatResult.failure`).
    """
    if out is not None:
        bundle_name(check_output(out, folder=True))
    model, x, y = float_model_and_data(model_path, data)
    rec = M.recommend_format(model, energy=energy)
    exp_bits = exp_bits or [e for e in (rec - 1, rec, rec + 1) if 1 <= e <= 8]
    notify(progress, f"recommended exponent width: {rec} bits")
    rows = M.reduced_float_sweep(model, x, y, exp_bits=exp_bits, man_bits=man_bits)
    ok = [r for r in rows if r["accuracy"] >= r["fp32_accuracy"] - tolerance / 100 - 1e-12]
    for r in rows:
        r["delta"] = f"{100 * (r['accuracy'] - r['fp32_accuracy']):+.2f}"
    best = ok[0] if ok else None
    if best is None or out is None:
        return ReducedFloatResult(rec, rows, tolerance, best)
    out = Path(out)
    net = M.reduced_float_network(model, best["exp_bits"], best["man_bits"], name=out.name)
    net = dataclasses.replace(net, metadata=_float_metadata(model_path, data, best))
    return ReducedFloatResult(rec, rows, tolerance, best, net, write_float_bundle(net, out))
