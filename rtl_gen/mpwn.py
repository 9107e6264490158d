"""Float-activation networks: MPWN's mixed weight spaces and reduced-float weights.

A :class:`FloatNetwork` is a chain of dense layers over IEEE-754 binary32 (fp32)
activations.  Each layer has one *weight space* (NUMERICS.md section 5)::

    "float"     fp32 weights, codes are their bit patterns (uint32); product = fp32 multiply
    "E4M3"...   minifloat weights (any MinifloatFormat name, bias included: "E4M3b9"); the
                weight converts exactly to fp32, then an fp32 multiply
    "binary"    codes 0/1 (1 means -1); product = XOR signed-bits (sign flip), no multiplier
    "ternary"   codes 0 = 0, 1 = +1, 3 = -1; product = ternary bitwise (sign flip and mask)

Binary and ternary layers carry a per-output fp32 scale ``alpha``.  The golden model is
fp32 with round to nearest even throughout, in one fixed order that the hardware follows
exactly, for output ``j`` of one image::

    acc = +0.0
    for k in 0 .. K-1:   acc = acc + p_k            p_k = x_k (x) w_jk  (the space's product)
    if alpha:            acc = acc * alpha_j
    acc = acc + bias_j
    hidden layers:       ReLU on the sign bit: a set sign bit gives +0.0 (0x00000000)

The class is the first index of the largest logit by value (``+0`` and ``-0`` tie).  numpy's
float32 arithmetic is IEEE-754 binary32 with round to nearest even and subnormals, which is
what the hardware's units are verified against bit for bit (``tests/test_fpu.py``), so the
golden model here is plain numpy float32 in the order above.

:func:`from_float` builds an MPWN network from a float MLP (binary: ``alpha_j = mean|w_j|``;
ternary: the TWN threshold ``0.7 mean|w_j|`` and ``alpha_j`` the mean kept magnitude),
:func:`score` gives accuracy, sparsity, bits and the ASB score, :func:`search` picks the
per-layer spaces (exhaustive when ``3^L`` is small, else TPE with optuna), and
:func:`reduced_float_sweep` tries minifloat weight formats.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
from collections.abc import Callable, Sequence

import numpy as np

from .errors import SpecError
from .float_model import FloatMLP
from .network import check_layer_name
from .numerics.minifloat import (
    MPWN_BITS,
    MinifloatFormat,
    asb_score,
    recommend_exponent_bits,
    ternary_bitwise,
    xor_signed_bits,
)

__all__ = [
    "MPWN_SPACES",
    "FloatLayer",
    "FloatNetwork",
    "accuracy",
    "encode_input",
    "float_key",
    "forward",
    "from_float",
    "layer_forward",
    "layer_products",
    "parse_space",
    "predict",
    "recommend_format",
    "reduced_float_sweep",
    "score",
    "search",
]

#: The three weight spaces MPWN chooses from per layer.
MPWN_SPACES = ("float", "binary", "ternary")

_F32_SIGN = np.uint32(0x80000000)
_MINIFLOAT_NAME = re.compile(r"E(\d+)M(\d+)(?:b(-?\d+))?")


def parse_space(space: str) -> MinifloatFormat | None:
    """The minifloat format of a weight space name, ``None`` for float/binary/ternary.

    Raises
    ------
    ValueError
        For a name that is none of the three and no ``E<e>M<m>[b<bias>]`` format whose values
        are all exact fp32 numbers.
    """
    if space in MPWN_SPACES:
        return None
    m = _MINIFLOAT_NAME.fullmatch(str(space))
    if m is None:
        raise ValueError(f"unknown weight space {space!r}: use one of "
                         f"{', '.join(MPWN_SPACES)} or a minifloat like 'E4M3' or 'E4M3b9'")
    e, mm, b = int(m[1]), int(m[2]), m[3]
    fmt = MinifloatFormat(e, mm, None if b is None else int(b))
    if fmt.name != space:
        raise ValueError(f"weight space {space!r} should be spelled {fmt.name!r}")
    if fmt.emax > 127 or fmt.emin - fmt.man_bits < -149 or fmt.man_bits > 23:
        raise ValueError(f"weight space {space!r}: not every {fmt.name} value is an fp32 "
                         f"number (top exponent {fmt.emax}, smallest 2**"
                         f"{fmt.emin - fmt.man_bits}); fp32 spans 2**-149 .. 2**127")
    return fmt


def _code_dtype(space: str):
    fmt = parse_space(space)
    if fmt is not None:
        return np.uint16 if fmt.width <= 16 else np.uint32
    return {"float": np.uint32, "binary": np.uint8, "ternary": np.uint8}[space]


def _f32_bits(a, field: str, shape, layer: str) -> np.ndarray:
    """``a`` as a uint32 array of fp32 bit patterns of ``shape``, no NaN or infinity."""
    a = np.asarray(a)
    if a.dtype.kind not in "iu" or a.shape != tuple(shape):
        raise SpecError(field, f"must be fp32 bit patterns (an integer array) of shape "
                        f"{tuple(shape)}, not {a.dtype} {a.shape}", layer=layer)
    if (a < 0).any() or (a > 0xFFFFFFFF).any():
        raise SpecError(field, "holds values outside 0..2**32-1", layer=layer)
    bits = a.astype(np.uint32)
    bad = ~np.isfinite(bits.view(np.float32))
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise SpecError(field, f"holds {int(bad.sum())} NaN or infinite value(s), first at "
                        f"index {first}", layer=layer)
    return bits


@dataclasses.dataclass(frozen=True, eq=False)
class FloatLayer:
    """A dense layer over fp32 activations in one weight space (see the module docstring).

    Parameters
    ----------
    name:
        Letters, digits, ``_`` and ``-``.
    space:
        ``"float"``, ``"binary"``, ``"ternary"`` or a minifloat name (``"E4M3"``).
    codes:
        ``(out, in)`` weight codes of the space.
    scale:
        ``(out,)`` fp32 bit patterns of ``alpha`` for binary and ternary layers; ``None``
        for float and minifloat layers.
    bias:
        ``(out,)`` fp32 bit patterns.
    activation:
        ``"relu"`` (hidden layers) or ``"none"`` (the logits).
    float_weight, float_bias:
        The float layer this one came from (optional, for reports).

    Raises
    ------
    SpecError
        Naming the field and the layer.
    """

    name: str
    space: str
    codes: np.ndarray
    scale: np.ndarray | None
    bias: np.ndarray
    activation: str = "relu"
    float_weight: np.ndarray | None = None
    float_bias: np.ndarray | None = None

    def __post_init__(self):
        name = check_layer_name(self.name)
        try:
            fmt = parse_space(self.space)
        except ValueError as e:
            raise SpecError("space", str(e), layer=name) from None
        codes = np.asarray(self.codes)
        if codes.ndim != 2 or 0 in codes.shape or codes.dtype.kind not in "iu":
            raise SpecError("codes", f"must be a non-empty 2-D integer array, not "
                            f"{codes.dtype} {codes.shape}", layer=name)
        if self.space == "float":
            codes = _f32_bits(codes, "codes", codes.shape, name)
        else:
            lim = {"binary": 2, "ternary": 4}.get(self.space) or (1 << fmt.width)
            bad = (codes < 0) | (codes >= lim)
            if self.space == "ternary":
                bad |= codes == 2
            if bad.any():
                first = tuple(int(i) for i in np.argwhere(bad)[0])
                raise SpecError("codes", f"{int(bad.sum())} code(s) out of range for "
                                f"{self.space}: first is {int(codes[first])} at index {first}",
                                layer=name)
            codes = codes.astype(_code_dtype(self.space))
        object.__setattr__(self, "codes", codes)
        n_out = codes.shape[0]
        if self.space in ("binary", "ternary"):
            if self.scale is None:
                raise SpecError("scale", f"a {self.space} layer needs a per-output scale",
                                layer=name)
            object.__setattr__(self, "scale", _f32_bits(self.scale, "scale", (n_out,), name))
        elif self.scale is not None:
            raise SpecError("scale", f"only binary and ternary layers have a scale, not "
                            f"{self.space}", layer=name)
        object.__setattr__(self, "bias", _f32_bits(self.bias, "bias", (n_out,), name))
        if self.activation not in ("relu", "none"):
            raise SpecError("activation", f"must be 'relu' or 'none', not "
                            f"{self.activation!r}", layer=name)

    @property
    def in_features(self) -> int:
        return int(self.codes.shape[1])

    @property
    def out_features(self) -> int:
        return int(self.codes.shape[0])

    @property
    def weight_format(self) -> MinifloatFormat | None:
        """The minifloat format of a reduced-float layer, else ``None``."""
        return parse_space(self.space)

    @property
    def bits_per_weight(self) -> int:
        """MPWN's bit count (float 16, ternary 2, binary 1) or the minifloat's width."""
        fmt = self.weight_format
        return fmt.width if fmt is not None else MPWN_BITS[self.space]

    def weight_values(self) -> np.ndarray:
        """The weights as float64 values (``alpha`` not applied)."""
        if self.space == "float":
            return self.codes.view(np.float32).astype(np.float64)
        if self.space == "binary":
            return np.where(self.codes == 1, -1.0, 1.0)
        if self.space == "ternary":
            return np.select([self.codes == 1, self.codes == 3], [1.0, -1.0], 0.0)
        return self.weight_format.decode(self.codes)

    @property
    def sparsity(self) -> float:
        """Fraction of weights that are exactly zero."""
        return float(np.mean(self.weight_values() == 0))


@dataclasses.dataclass(frozen=True, eq=False)
class FloatNetwork:
    """A chain of :class:`FloatLayer` over fp32 inputs ``(batch, in_features)``.

    ``input_scale`` documents the value of one unit of integer input codes when the inputs
    come from them (the digits: 1/16); the hardware itself takes fp32 bit patterns.
    """

    name: str
    in_features: int
    input_scale: float | None
    layers: tuple[FloatLayer, ...]
    labels: tuple[str, ...] | None = None
    metadata: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise SpecError("name", f"must be a non-empty string, not {self.name!r}")
        object.__setattr__(self, "layers", tuple(self.layers))
        object.__setattr__(self, "metadata", dict(self.metadata))
        if not self.layers:
            raise SpecError("layers", "a network needs at least one layer")
        features = int(self.in_features)
        names = set()
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, FloatLayer):
                raise SpecError("layers", f"entry {i} is not a FloatLayer")
            if layer.name in names:
                raise SpecError("name", "is used by two layers", layer=layer.name)
            names.add(layer.name)
            want = "none" if i == len(self.layers) - 1 else "relu"
            if layer.activation != want:
                raise SpecError("activation", f"must be {want!r} here, not "
                                f"{layer.activation!r}", layer=layer.name)
            if layer.in_features != features:
                raise SpecError("codes", f"has {layer.in_features} inputs but gets "
                                f"{features}", layer=layer.name)
            features = layer.out_features
        if self.labels is not None:
            labels = tuple(str(v) for v in self.labels)
            if len(labels) != self.classes:
                raise SpecError("labels", f"has {len(labels)} names for {self.classes} outputs")
            object.__setattr__(self, "labels", labels)

    @property
    def classes(self) -> int:
        return self.layers[-1].out_features

    @property
    def spaces(self) -> tuple[str, ...]:
        return tuple(layer.space for layer in self.layers)

    def encode_input(self, x) -> np.ndarray:
        """Float inputs ``(batch, in_features)`` → fp32 bit patterns (:func:`encode_input`)."""
        return encode_input(x, self.in_features)


def encode_input(x, features: int) -> np.ndarray:
    """Float inputs ``(batch, features)`` → fp32 bit patterns (uint32).

    Raises
    ------
    ValueError
        For a wrong shape or NaN/infinite values (the message gives the first index).
    """
    xa = np.asarray(x, dtype=np.float64)
    if xa.ndim != 2 or xa.shape[1] != features:
        raise ValueError(f"inputs must have shape (batch, {features}), not {xa.shape}")
    with np.errstate(over="ignore"):
        bits = xa.astype(np.float32)
    bad = ~np.isfinite(bits)
    if bad.any():
        raise ValueError(f"inputs hold {int(bad.sum())} NaN or infinite value(s) (or "
                         f"values beyond fp32), first at index "
                         f"{tuple(int(i) for i in np.argwhere(bad)[0])}")
    return bits.view(np.uint32)


# -- the golden model -------------------------------------------------------------------------


def _check_x(layer: FloatLayer, x_bits) -> np.ndarray:
    x = np.asarray(x_bits)
    if x.ndim != 2 or x.shape[1] != layer.in_features or x.dtype.kind not in "iu":
        raise ValueError(f"layer {layer.name!r}: inputs must be fp32 bit patterns of shape "
                         f"(batch, {layer.in_features}), not {x.dtype} {x.shape}")
    if (x < 0).any() or (x > 0xFFFFFFFF).any():
        raise ValueError(f"layer {layer.name!r}: inputs hold values outside 0..2**32-1")
    return x.astype(np.uint32)


def layer_products(layer: FloatLayer, x_bits) -> np.ndarray:
    """Every product ``x_k (x) w_jk`` as fp32 bit patterns, shape ``(batch, out, in)``."""
    x = _check_x(layer, x_bits)[:, None, :]
    w = layer.codes[None, :, :]
    if layer.space == "binary":
        return xor_signed_bits(x, w, 32)
    if layer.space == "ternary":
        return ternary_bitwise(x, w, 32)
    wf = layer.weight_values().astype(np.float32)  # exact: parse_space checked the range
    return (x.view(np.float32) * wf[None]).view(np.uint32)


def layer_forward(layer: FloatLayer, x_bits) -> np.ndarray:
    """One layer in the fixed order of the module docstring; fp32 bits ``(batch, out)``."""
    p = layer_products(layer, x_bits).view(np.float32)
    acc = np.zeros(p.shape[:2], dtype=np.float32)
    for k in range(p.shape[2]):
        acc = acc + p[:, :, k]
    if layer.scale is not None:
        acc = acc * layer.scale.view(np.float32)
    acc = acc + layer.bias.view(np.float32)
    bits = acc.view(np.uint32)
    if layer.activation == "relu":
        bits = np.where(bits & _F32_SIGN, np.uint32(0), bits)
    return bits.astype(np.uint32)


def forward(net: FloatNetwork, x_bits) -> np.ndarray:
    """The logits as fp32 bit patterns ``(batch, classes)``."""
    h = np.asarray(x_bits)
    for layer in net.layers:
        h = layer_forward(layer, h)
    return h


def float_key(bits) -> np.ndarray:
    """An int64 key that orders fp32 bit patterns by value (``+0`` and ``-0`` equal)."""
    b = np.asarray(bits).astype(np.int64)
    mag = b & 0x7FFFFFFF
    return np.where(b & 0x80000000, -mag, mag)


def predict(net: FloatNetwork, x_bits) -> np.ndarray:
    """Classes: the first index of the largest logit by value."""
    return np.argmax(float_key(forward(net, x_bits)), axis=-1).astype(np.int64)


def accuracy(net: FloatNetwork, x_bits, labels) -> float:
    return float(np.mean(predict(net, x_bits) == np.asarray(labels)))


# -- from a float model -----------------------------------------------------------------------


def _f32(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float32).view(np.uint32)


def _make_layer(name: str, space: str, w: np.ndarray, b: np.ndarray, activation: str,
                fmt: MinifloatFormat | None = None) -> FloatLayer:
    w = np.asarray(w, dtype=np.float64)
    kw = dict(name=name, space=space, bias=_f32(b), activation=activation,
              float_weight=w, float_bias=np.asarray(b, dtype=np.float64))
    absw = np.abs(w)
    if space == "float":
        return FloatLayer(codes=_f32(w), scale=None, **kw)
    if space == "binary":
        alpha = absw.mean(axis=1)
        return FloatLayer(codes=(w < 0).astype(np.uint8), scale=_f32(alpha), **kw)
    if space == "ternary":
        delta = 0.7 * absw.mean(axis=1, keepdims=True)
        keep = absw > delta
        kept = np.maximum(keep.sum(axis=1), 1)
        alpha = np.where(keep, absw, 0).sum(axis=1) / kept
        alpha = np.where(keep.any(axis=1), alpha, absw.max(axis=1))
        codes = np.where(keep, np.where(w < 0, 3, 1), 0).astype(np.uint8)
        return FloatLayer(codes=codes, scale=_f32(alpha), **kw)
    fmt = fmt or parse_space(space)
    return FloatLayer(codes=fmt.encode(w).astype(_code_dtype(fmt.name)), scale=None,
                      **{**kw, "space": fmt.name})


def from_float(model: FloatMLP, spaces: Sequence[str], *, name: str = "mpwn",
               metadata: dict | None = None) -> FloatNetwork:
    """An MPWN network from a float MLP, one weight space per layer.

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
    layers = [_make_layer(f"fc{i + 1}", s, w, b, "none" if i == n - 1 else "relu")
              for i, (s, w, b) in enumerate(zip(spaces, model.weights, model.biases,
                                                strict=True))]
    return FloatNetwork(name, model.in_features, model.input_scale, layers,
                        labels=model.labels, metadata=dict(metadata or {}))


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
           progress: Callable[[int, int], None] | None = None) -> list[dict]:
    """Per-layer weight spaces that maximise the ASB score on ``(x, labels)``.

    Parameters
    ----------
    method:
        ``"exhaustive"`` (every one of the ``3^L`` assignments), ``"tpe"`` (optuna's TPE
        sampler, ``trials`` evaluations, as the MPWN authors searched) or ``"auto"``
        (exhaustive when ``3^L <= exhaustive_limit``).
    train:
        Gives the float model to convert for an assignment (e.g. fine-tuned through it with
        :func:`rtl_gen.mpwn_train.finetune`); default: ``model`` itself (post-training).
    progress:
        Called with ``(done, total)`` after each evaluation.

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
            rows[spaces] = score(from_float(src, spaces), x_bits, labels)
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
    x_bits = fp32.encode_input(x)
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
