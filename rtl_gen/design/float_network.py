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

That is the ``"sequential"`` accumulation contract.  A network may name the second one,
``"exact"`` (``FloatNetwork(..., accumulation="exact", window=ExactWindow(lsb, msb))``,
:mod:`rtl_gen.numerics.exact`): every product is exact, put into a fixed-point window
(truncated below its lsb, flagged as ``±inf`` above its top), summed exactly in integers
with ``bias_j / alpha_j`` as the starting value, and rounded once to fp32 with ``alpha_j``
(a power of two) as an exponent offset; then the same ReLU::

    y_j = fp32_RNE(alpha_j * (T(bias_j / alpha_j) + sum_k T(x_k * w_jk)))

Building such networks from a float model (MPWN's search, reduced-float formats) is
:mod:`rtl_gen.training.mpwn`.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np

from ..errors import SpecError
from ..numerics.exact import (
    ACCUMULATIONS,
    DEFAULT_WINDOW,
    ExactWindow,
    exact_sum,
    pot_exponent,
    round_fixed,
    terms,
    unpack,
)
from ..numerics.floatops import BINARY32, FloatFormat
from ..numerics.minifloat import (
    MPWN_BITS,
    MinifloatFormat,
    ternary_bitwise,
    xor_signed_bits,
)
from .base import DenseShape, NetworkModel, accuracy, predict
from .network import check_layer_name

__all__ = [
    "ACCUMULATIONS",
    "MPWN_SPACES",
    "FloatLayer",
    "FloatNetwork",
    "accuracy",
    "alpha_exponents",
    "bias_terms",
    "encode_input",
    "float_key",
    "forward",
    "layer_forward",
    "layer_forward_exact",
    "layer_products",
    "parse_space",
    "predict",
    "weight_terms",
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
class FloatLayer(DenseShape):
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
class FloatNetwork(NetworkModel):
    """A chain of :class:`FloatLayer` over fp32 inputs ``(batch, in_features)``.

    ``input_scale`` documents the value of one unit of integer input codes when the inputs
    come from them (the digits: 1/16); the hardware itself takes fp32 bit patterns.

    ``accumulation`` names the contract (module docstring): ``"sequential"`` (the default;
    ``window`` must be ``None``) or ``"exact"`` (``window`` default
    :data:`~rtl_gen.numerics.exact.DEFAULT_WINDOW`; every binary and ternary ``scale`` must
    be a power of two).
    """

    name: str
    in_features: int
    input_scale: float | None
    layers: tuple[FloatLayer, ...]
    labels: tuple[str, ...] | None = None
    metadata: dict = dataclasses.field(default_factory=dict)
    accumulation: str = "sequential"
    window: ExactWindow | None = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise SpecError("name", f"must be a non-empty string, not {self.name!r}")
        if self.accumulation not in ACCUMULATIONS:
            raise SpecError("accumulation", f"must be one of {', '.join(ACCUMULATIONS)}, not "
                            f"{self.accumulation!r}")
        if self.accumulation == "sequential":
            if self.window is not None:
                raise SpecError("window", "only the exact contract has a window")
        elif self.window is None:
            object.__setattr__(self, "window", DEFAULT_WINDOW)
        elif not isinstance(self.window, ExactWindow):
            raise SpecError("window", f"must be an ExactWindow, not {self.window!r}")
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
            if self.accumulation == "exact" and layer.scale is not None:
                try:
                    pot_exponent(layer.scale)
                except ValueError as e:
                    raise SpecError("scale", str(e), layer=layer.name) from None
            features = layer.out_features
        if self.labels is not None:
            labels = tuple(str(v) for v in self.labels)
            if len(labels) != self.classes:
                raise SpecError("labels", f"has {len(labels)} names for {self.classes} outputs")
            object.__setattr__(self, "labels", labels)

    family = "float"

    @property
    def spaces(self) -> tuple[str, ...]:
        return tuple(layer.space for layer in self.layers)

    def encode(self, x) -> np.ndarray:
        """Float inputs ``(batch, in_features)`` → fp32 bit patterns (:func:`encode_input`)."""
        return encode_input(x, self.in_features)

    def forward(self, x, control=None) -> np.ndarray:
        """The logits as fp32 bit patterns (:func:`forward`); there is no run-time control."""
        if control is not None:
            raise ValueError("float networks take no run-time term-revealing control")
        return forward(self, x)

    def logit_key(self, logits) -> np.ndarray:
        return float_key(logits)


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


def layer_forward(layer: FloatLayer, x_bits, window: ExactWindow | None = None
                  ) -> np.ndarray:
    """One layer on the sequential contract (``window`` ``None``) in the fixed order of the
    module docstring, or on the exact contract in ``window``
    (:func:`layer_forward_exact`); fp32 bits ``(batch, out)``."""
    if window is not None:
        return layer_forward_exact(layer, x_bits, window)
    p = layer_products(layer, x_bits).view(np.float32)
    acc = np.zeros(p.shape[:2], dtype=np.float32)
    for k in range(p.shape[2]):
        acc = acc + p[:, :, k]
    if layer.scale is not None:
        acc = acc * layer.scale.view(np.float32)
    acc = acc + layer.bias.view(np.float32)
    return _relu(layer, acc.view(np.uint32))


def _relu(layer: FloatLayer, bits: np.ndarray) -> np.ndarray:
    if layer.activation == "relu":
        bits = np.where(bits & _F32_SIGN, np.uint32(0), bits)
    return bits.astype(np.uint32)


def weight_terms(layer: FloatLayer):
    """``(sign, sig, q)`` of the weights, ``|w| = sig * 2**q`` (``int64``, ``(out, in)``);
    ``sig = 0`` for a zero weight (the exact contract's skip)."""
    c = layer.codes.astype(np.int64)
    if layer.space == "binary":
        return c, np.ones_like(c), np.zeros_like(c)
    if layer.space == "ternary":
        return (c == 3).astype(np.int64), (c != 0).astype(np.int64), np.zeros_like(c)
    fmt = layer.weight_format
    fmt = BINARY32 if fmt is None else FloatFormat(fmt.exp_bits, fmt.man_bits, fmt.bias)
    sign, sig, q, _, _ = unpack(layer.codes, fmt)
    return sign, sig, q


def alpha_exponents(layer: FloatLayer) -> np.ndarray:
    """``a_j`` with ``alpha_j = 2**a_j`` (zeros for a layer without a scale).

    Raises
    ------
    ValueError
        For a scale that is not a power of two.
    """
    if layer.scale is None:
        return np.zeros(layer.out_features, dtype=np.int64)
    return pot_exponent(layer.scale)


def bias_terms(layer: FloatLayer, window: ExactWindow):
    """``T(bias_j / alpha_j)``: ``(neg, mag, pinf, ninf)``, each ``(out,)``."""
    sign, sig, q, inf, nan = unpack(layer.bias)
    return terms(sign, sig, q - alpha_exponents(layer), inf, nan, window)


#: Images per block of the exact golden model (bounds the ``(batch, out, in)`` arrays).
_BLOCK = 256


def layer_forward_exact(layer: FloatLayer, x_bits, window: ExactWindow) -> np.ndarray:
    """One layer on the exact contract (module docstring); fp32 bits ``(batch, out)``."""
    x = _check_x(layer, x_bits)
    a = alpha_exponents(layer)
    w_sign, w_sig, w_q = weight_terms(layer)
    b_neg, b_mag, b_pinf, b_ninf = bias_terms(layer, window)
    out = np.empty((x.shape[0], layer.out_features), dtype=np.uint32)
    for lo in range(0, x.shape[0], _BLOCK):
        sign, sig, q, inf, nan = (v[:, None, :] for v in unpack(x[lo:lo + _BLOCK]))
        skip = w_sig == 0
        neg, mag, pinf, ninf = terms(sign ^ w_sign, sig * w_sig, q + w_q, inf & ~skip,
                                     nan & ~skip, window)
        n, p_any, n_any = exact_sum(
            np.concatenate([np.broadcast_to(b_neg[:, None], neg.shape[:2] + (1,)), neg], -1),
            np.concatenate([np.broadcast_to(b_mag[:, None], mag.shape[:2] + (1,)), mag], -1),
            pinf | b_pinf[:, None], ninf | b_ninf[:, None])
        out[lo:lo + _BLOCK] = round_fixed(n, window.lsb + a, p_any, n_any)
    return _relu(layer, out)


def forward(net: FloatNetwork, x_bits) -> np.ndarray:
    """The logits as fp32 bit patterns ``(batch, classes)``, on the network's contract."""
    h = np.asarray(x_bits)
    for layer in net.layers:
        h = layer_forward(layer, h, net.window)
    return h


def float_key(bits) -> np.ndarray:
    """An int64 key that orders fp32 bit patterns by value (``+0`` and ``-0`` equal)."""
    b = np.asarray(bits).astype(np.int64)
    mag = b & 0x7FFFFFFF
    return np.where(b & 0x80000000, -mag, mag)


# -- from a float model -----------------------------------------------------------------------
