"""MPWN search and reduced-float weights: float-activation networks built from a float MLP.

:func:`from_float` builds an MPWN network from a float MLP (binary: ``alpha_j = mean|w_j|``;
ternary: the TWN threshold ``0.7 mean|w_j|`` and ``alpha_j`` the mean kept magnitude),
:func:`score` gives accuracy, sparsity, bits and the ASB score, :func:`search` picks the
per-layer spaces (exhaustive when ``3^L`` is small, else TPE with optuna), and
:func:`reduced_float_sweep` tries minifloat weight formats.  The networks themselves and
their golden model are :mod:`rtl_gen.design.float_network`.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Sequence

import numpy as np

from ..design.base import predict
from ..design.float_network import (
    MPWN_SPACES,
    FloatLayer,
    FloatNetwork,
    _code_dtype,
    accuracy,
    alpha_exponents,
    encode_input,
    layer_forward,
    parse_space,
)
from ..errors import SpecError
from ..numerics.exact import MAX_WIDTH, ExactWindow
from ..numerics.minifloat import (
    MPWN_BITS,
    MinifloatFormat,
    asb_score,
    recommend_exponent_bits,
)
from .float_model import FloatMLP

__all__ = [
    "fit_window",
    "from_float",
    "pot_alpha",
    "layer_format",
    "recommend_format",
    "reduced_float_network",
    "reduced_float_sweep",
    "score",
    "search",
    "smallest_surviving",
]

def _f32(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float32).view(np.uint32)


#: On the exact contract, a ternary channel whose ``alpha`` is below this share of its layer's
#: median ``alpha`` is all zeros (its ``alpha`` the median's): its products are too small to
#: matter, and ``bias / alpha`` of such a channel would set the whole window's ``msb``
#: (:func:`fit_window`).
DEAD_SCALE = 2.0 ** -10


def pot_alpha(alpha) -> np.ndarray:
    """Each positive ``alpha`` to the nearest power of two in log2 (``2**round(log2 a)``,
    halfway cases up), as the exact accumulation contract needs it."""
    a = np.asarray(alpha, dtype=np.float64)
    return np.exp2(np.floor(np.log2(a) + 0.5))


def _make_layer(name: str, space: str, w: np.ndarray, b: np.ndarray, activation: str,
                fmt: MinifloatFormat | None = None, pot: bool = False) -> FloatLayer:
    w = np.asarray(w, dtype=np.float64)
    kw = dict(name=name, space=space, bias=_f32(b), activation=activation,
              float_weight=w, float_bias=np.asarray(b, dtype=np.float64))
    absw = np.abs(w)
    if space == "float":
        return FloatLayer(codes=_f32(w), scale=None, **kw)
    if space == "binary":
        alpha = absw.mean(axis=1)
        alpha = pot_alpha(alpha) if pot else alpha
        return FloatLayer(codes=(w < 0).astype(np.uint8), scale=_f32(alpha), **kw)
    if space == "ternary":
        delta = 0.7 * absw.mean(axis=1, keepdims=True)
        keep = absw > delta
        kept = np.maximum(keep.sum(axis=1), 1)
        alpha = np.where(keep, absw, 0).sum(axis=1) / kept
        alpha = np.where(keep.any(axis=1), alpha, absw.max(axis=1))
        if pot:
            dead = alpha < DEAD_SCALE * np.median(alpha)
            keep[dead] = False
            alpha = pot_alpha(np.where(dead, np.median(alpha), alpha))
        codes = np.where(keep, np.where(w < 0, 3, 1), 0).astype(np.uint8)
        return FloatLayer(codes=codes, scale=_f32(alpha), **kw)
    fmt = fmt or parse_space(space)
    return FloatLayer(codes=fmt.encode(w).astype(_code_dtype(fmt.name)), scale=None,
                      **{**kw, "space": fmt.name})


def from_float(model: FloatMLP, spaces: Sequence[str], *, name: str = "mpwn",
               metadata: dict | None = None, accumulation: str = "sequential",
               window=None, calibration=None) -> FloatNetwork:
    """An MPWN network from a float MLP, one weight space per layer.

    ``accumulation`` ``"exact"`` builds the network on the exact contract: binary and
    ternary ``alpha`` become the nearest power of two (:func:`pot_alpha`), dead ternary
    channels all zeros (:data:`DEAD_SCALE`); its window is ``window``, else the narrowest
    that changes no class on the ``calibration`` inputs (float, as the model takes them;
    :func:`fit_window`), else the contract's default.

    Raises
    ------
    SpecError
        For a wrong number of spaces or an unknown space.
    """
    spaces = tuple(spaces)
    n = len(model.weights)
    if len(spaces) != n:
        raise SpecError("spaces", f"the model has {n} layers but {len(spaces)} spaces were "
                        f"given ({'/'.join(spaces)})")
    for s in spaces:
        try:
            parse_space(s)
        except ValueError as e:
            raise SpecError("spaces", str(e)) from None
    pot = accumulation == "exact"
    layers = [_make_layer(f"fc{i + 1}", s, w, b, "none" if i == n - 1 else "relu", pot=pot)
              for i, (s, w, b) in enumerate(zip(spaces, model.weights, model.biases,
                                                strict=True))]
    net = FloatNetwork(name, model.in_features, model.input_scale, layers,
                       labels=model.labels, metadata=dict(metadata or {}),
                       accumulation=accumulation, window=window)
    if pot and window is None and calibration is not None:
        net = dataclasses.replace(net, window=fit_window(net, net.encode(calibration)))
    return net


# -- the exact contract's window -------------------------------------------------------------


def _largest_term(net: FloatNetwork, x_bits) -> float:
    """The largest magnitude a term or ``bias / alpha`` of any layer takes on ``x_bits``
    (the products ``x * w`` without ``alpha``, as the exact contract sums them)."""
    h = np.asarray(x_bits)
    top = 0.0
    for layer in net.layers:
        x = np.abs(h.view(np.float32).astype(np.float64))
        x = np.where(np.isfinite(x), x, 0.0)
        w = np.abs(layer.weight_values())
        top = max(top, float((x.max(axis=0) * w).max()) if x.size else 0.0)
        b = np.abs(layer.bias.view(np.float32).astype(np.float64))
        b = np.where(np.isfinite(b), b, 0.0) * np.exp2(-alpha_exponents(layer))
        top = max(top, float(b.max()))
        h = layer_forward(layer, h, net.window)
    return top


def fit_window(net: FloatNetwork, x_bits) -> ExactWindow:
    """The narrowest window of the exact contract that changes nothing on ``x_bits``
    (calibration inputs, fp32 bits): ``msb`` one bit above the largest term or
    ``bias / alpha`` of any layer (so a term up to twice the largest seen is still held),
    ``lsb`` the highest for which every calibration input gets the class it gets in the
    widest window (:data:`~rtl_gen.numerics.exact.MAX_WIDTH` bits) with that ``msb``.

    Narrower windows make every lane, the aligner and the normaliser of the exact engine
    smaller (:mod:`rtl_gen.hw.exact_float`): their widths follow ``msb - lsb``.

    Raises
    ------
    ValueError
        For a network on the sequential contract, or no calibration inputs.
    """
    if net.accumulation != "exact":
        raise ValueError(f"network {net.name!r} is on the {net.accumulation} contract: only "
                         "the exact contract has a window")
    x_bits = np.asarray(x_bits)
    if x_bits.ndim != 2 or not len(x_bits):
        raise ValueError("fit_window needs at least one calibration input")
    top = _largest_term(net, x_bits)
    msb = (math.frexp(top)[1] if top > 0 else 0)  # 2**(msb - 1) <= top < 2**msb
    msb = max(min(msb, 400), -400 + MAX_WIDTH)

    def classes(width: int) -> np.ndarray:
        w = ExactWindow(msb - width + 1, msb)
        return predict(dataclasses.replace(net, window=w), x_bits)

    want = classes(MAX_WIDTH)
    for width in range(2, MAX_WIDTH):
        if np.array_equal(classes(width), want):
            return ExactWindow(msb - width + 1, msb)
    return ExactWindow(msb - MAX_WIDTH + 1, msb)


# -- scoring and search -----------------------------------------------------------------------


def score(net: FloatNetwork, x_bits, labels) -> dict:
    """Accuracy, sparsity, bits (MPWN's count), ``max_bits`` (all float) and the ASB score."""
    n = [layer.codes.size for layer in net.layers]
    bits = sum(layer.bits_per_weight * k for layer, k in zip(net.layers, n, strict=True))
    max_bits = MPWN_BITS["float"] * sum(n)
    zeros = sum(layer.sparsity * k for layer, k in zip(net.layers, n, strict=True))
    acc = accuracy(net, x_bits, labels)
    sparsity = zeros / sum(n)
    return {"spaces": "/".join(net.spaces), "accuracy": acc, "sparsity": sparsity,
            "bits": int(bits), "max_bits": int(max_bits),
            "asb": asb_score(acc, sparsity, min(bits, max_bits), max_bits)}


def search(model: FloatMLP, x, labels, *, method: str = "auto", trials: int = 100,
           seed: int = 0, exhaustive_limit: int = 81,
           train: Callable[[tuple[str, ...]], FloatMLP] | None = None,
           progress: Callable[[int, int], None] | None = None,
           accumulation: str = "sequential", calibration=None) -> list[dict]:
    """Per-layer weight spaces that maximise the ASB score on ``(x, labels)``.

    Parameters
    ----------
    method:
        ``"exhaustive"`` (every one of the ``3^L`` assignments), ``"tpe"`` (optuna's TPE
        sampler, ``trials`` evaluations, as the MPWN authors searched) or ``"auto"``
        (exhaustive when ``3^L <= exhaustive_limit``).
    train:
        Gives the float model to convert for an assignment (e.g. fine-tuned through it with
        :func:`rtl_gen.training.mpwn_train.finetune`); default: ``model`` itself (post-training).
    progress:
        Called with ``(done, total)`` after each evaluation.
    accumulation:
        The contract the candidates are built and scored on (``"sequential"`` or
        ``"exact"``, see :func:`from_float`).
    calibration:
        On the exact contract, the inputs each candidate's window is fit on
        (:func:`from_float`).

    Returns
    -------
    list of dict
        One :func:`score` row per distinct assignment evaluated, best ASB first (ties:
        higher accuracy, then fewer bits, then the order evaluated).

    Raises
    ------
    ValueError
        For an unknown method or fewer than one trial.
    """
    n = len(model.weights)
    if method == "auto":
        method = "exhaustive" if len(MPWN_SPACES) ** n <= exhaustive_limit else "tpe"
    if method not in ("exhaustive", "tpe"):
        raise ValueError(f"unknown search method {method!r}: use auto, exhaustive or tpe")
    x_bits = encode_input(x, model.in_features)
    rows: dict[tuple[str, ...], dict] = {}

    def evaluate(spaces: tuple[str, ...]) -> dict:
        if spaces not in rows:
            src = model if train is None else train(spaces)
            rows[spaces] = score(from_float(src, spaces, accumulation=accumulation,
                                            calibration=calibration), x_bits,
                                 labels)
        return rows[spaces]

    if method == "exhaustive":
        allsp = list(itertools.product(MPWN_SPACES, repeat=n))
        for i, spaces in enumerate(allsp):
            evaluate(spaces)
            if progress:
                progress(i + 1, len(allsp))
    else:
        if trials < 1:
            raise ValueError(f"trials must be at least 1, not {trials}")
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(direction="maximize",
                                    sampler=optuna.samplers.TPESampler(seed=seed))

        def objective(trial):
            spaces = tuple(trial.suggest_categorical(f"layer{i}", list(MPWN_SPACES))
                           for i in range(n))
            return evaluate(spaces)["asb"]

        for i in range(trials):
            study.optimize(objective, n_trials=1)
            if progress:
                progress(i + 1, trials)
    order = list(rows)
    return sorted(rows.values(), key=lambda r: (-r["asb"], -r["accuracy"], r["bits"],
                                                order.index(tuple(r["spaces"].split("/")))))


# -- reduced-float weights --------------------------------------------------------------------


def layer_format(w, exp_bits: int, man_bits: int) -> MinifloatFormat:
    """``E<exp_bits>M<man_bits>`` with the bias that puts the top binade at ``max|w|``."""
    a = np.abs(np.asarray(w, dtype=np.float64))
    top = float(a.max()) if a.size and a.max() > 0 else 1.0
    e_max = math.frexp(top)[1] - 1
    bias = (1 << exp_bits) - 1 - e_max
    return MinifloatFormat(exp_bits, man_bits, bias)


def smallest_surviving(w, energy: float = 1e-3) -> float:
    """The smallest ``|w|`` that must survive: the weights below it (smallest first) hold at
    most ``energy`` of the tensor's total ``sum(w**2)``, so flushing them to zero costs
    little; the rest must stay representable."""
    a = np.sort(np.abs(np.asarray(w, dtype=np.float64)).ravel())
    a = a[a > 0]
    if a.size == 0:
        raise ValueError("the weights have no nonzero value")
    cum = np.cumsum(a * a)
    i = int(np.searchsorted(cum, energy * cum[-1], side="right"))
    return float(a[min(i, a.size - 1)])


def recommend_format(model: FloatMLP, *, energy: float = 1e-3) -> int:
    """The exponent width of NUMERICS.md's range rule, the widest over the layers.

    ``e_max`` is each layer's largest magnitude, ``e_min`` its :func:`smallest_surviving`
    weight (the smallest weights holding at most ``energy`` of the layer's squared sum may
    flush to zero), and one code is reserved for zero.
    """
    if not 0 <= energy < 1:
        raise ValueError(f"energy must be in 0..1, not {energy!r}")
    return max(recommend_exponent_bits(w, min_magnitude=smallest_surviving(w, energy))
               for w in model.weights)


def reduced_float_network(model: FloatMLP, exp_bits: int, man_bits: int, *,
                          name: str | None = None) -> FloatNetwork:
    """Every layer's weights in ``E<exp_bits>M<man_bits>`` (per-layer bias, see
    :func:`layer_format`), fp32 activations."""
    n = len(model.weights)
    layers = []
    for i, (w, b) in enumerate(zip(model.weights, model.biases, strict=True)):
        fmt = layer_format(w, exp_bits, man_bits)
        parse_space(fmt.name)  # the format must be exact in fp32
        layers.append(_make_layer(f"fc{i + 1}", fmt.name, w, b,
                                  "none" if i == n - 1 else "relu", fmt))
    return FloatNetwork(name or f"rf-E{exp_bits}M{man_bits}", model.in_features,
                        model.input_scale, layers, labels=model.labels)


def reduced_float_sweep(model: FloatMLP, x, labels, *, exp_bits: Sequence[int],
                        man_bits: Sequence[int]) -> list[dict]:
    """Accuracy of every ``(E, M)`` weight format, with the fp32 network's as ``fp32_accuracy``.

    Returns rows ``{"format", "exp_bits", "man_bits", "bits", "accuracy", "fp32_accuracy"}``
    sorted by total bits, then E.
    """
    fp32 = from_float(model, ["float"] * len(model.weights))
    x_bits = fp32.encode(x)
    ref = accuracy(fp32, x_bits, labels)
    rows = []
    for e in exp_bits:
        for m in man_bits:
            net = reduced_float_network(model, e, m)
            rows.append({"format": f"E{e}M{m}", "exp_bits": e, "man_bits": m,
                         "bits": 1 + e + m, "accuracy": accuracy(net, x_bits, labels),
                         "fp32_accuracy": ref})
    rows.sort(key=lambda r: (r["bits"], r["exp_bits"]))
    return rows
