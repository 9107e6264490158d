"""The design description: one frozen, validated object per layer and per network.

The same objects are consumed by the golden model (:mod:`rtl_gen.design.golden`), written to and
read
from weight bundles (:mod:`rtl_gen.bundle`), and, later, elaborated into hardware.  Variants are
made with :func:`dataclasses.replace`, which validates again.

Field names match the weight bundle's manifest (``weights/FORMAT.md``), so a validation error
names the same field whether it comes from Python or from a file.
"""

from __future__ import annotations

import dataclasses
from functools import cached_property
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from ..errors import SpecError
from ..numerics.fixedpoint import MAX_SHIFT, acc_bits
from ..numerics.schemes import WeightScheme
from .base import DenseShape, NetworkModel

if TYPE_CHECKING:
    from .conv import SpatialLayer

__all__ = ["ACTIVATIONS", "DenseLayer", "InputSpec", "Network", "TRConfig"]

ACTIVATIONS = ("relu", "none")
#: Activation widths the generator supports (1-bit activations are binary networks, 16 is
#: the widest a 16x16 DSP takes).
ACT_BITS_RANGE = (1, 16)


def _is_int(v) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, np.integer))


def _check_int(field, v, lo, hi, layer=None):
    if not _is_int(v) or not lo <= v <= hi:
        raise SpecError(field, f"must be an integer in {lo}..{hi}, not {v!r}", layer=layer)
    return int(v)


def _check_scale(field, v, layer=None):
    ok = not isinstance(v, bool) and isinstance(v, (int, float, np.floating, np.integer))
    if ok:
        try:
            f = float(v)
        except OverflowError:
            ok = False
    if not ok or not (np.isfinite(f) and f > 0):
        raise SpecError(field, f"must be a positive finite number, not {v!r}", layer=layer)
    return f


def check_layer_name(name) -> str:
    """``name`` if it is a non-empty word of letters, digits, ``_`` and ``-``, else a
    :class:`SpecError` (layer names become file names and Verilog identifiers)."""
    if not isinstance(name, str) or not name or not all(c.isalnum() or c in "_-" for c in name):
        raise SpecError("name", f"must be a non-empty word of letters, digits, '_' or "
                        f"'-', not {name!r}")
    return name


def _check_array(field, a, shape, kind, layer=None):
    """Check dtype kind ('iu' for integers, 'f' for floats), shape and finiteness."""
    if not isinstance(a, np.ndarray):
        raise SpecError(field, f"must be a numpy array, not {type(a).__name__}", layer=layer)
    if a.dtype.kind not in kind:
        want = "an integer" if "i" in kind else "a floating-point"
        raise SpecError(field, f"must have {want} dtype, not {a.dtype}", layer=layer)
    if a.shape != tuple(shape):
        raise SpecError(field, f"must have shape {tuple(shape)}, not {a.shape}", layer=layer)
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        bad = np.argwhere(~np.isfinite(a))[0]
        raise SpecError(field, f"contains {np.count_nonzero(~np.isfinite(a))} NaN or infinite "
                        f"value(s), first at index {tuple(int(i) for i in bad)}", layer=layer)
    return a


@dataclasses.dataclass(frozen=True)
class TRConfig:
    """Term-revealing grouping of one layer (NUMERICS.md section 4).

    Parameters
    ----------
    group:
        ``g``, consecutive weights along the reduction axis that share a budget.
    budget:
        ``k``, HESE terms kept per group (``alpha = k / g`` terms per weight).
    data_terms:
        ``s``, HESE terms kept per activation, or ``None`` to keep every term.
    """

    group: int
    budget: int
    data_terms: int | None = None

    def __post_init__(self):
        _check_int("tr.group", self.group, 1, 1024)
        _check_int("tr.budget", self.budget, 0, 1 << 16)
        if self.data_terms is not None:
            _check_int("tr.data_terms", self.data_terms, 1, 17)


@dataclasses.dataclass(frozen=True)
class InputSpec:
    """The network's input code: ``x_int = clamp(round(x / scale), lo, hi)`` in ``bits``."""

    features: int
    bits: int
    signed: bool
    scale: float

    def __post_init__(self):
        _check_int("input.features", self.features, 1, 1 << 20)
        _check_int("input.bits", self.bits, *ACT_BITS_RANGE)
        if not isinstance(self.signed, (bool, np.bool_)):
            raise SpecError("input.signed", f"must be true or false, not {self.signed!r}")
        object.__setattr__(self, "signed", bool(self.signed))
        object.__setattr__(self, "scale", _check_scale("input.scale", self.scale))

    @property
    def range(self) -> tuple[int, int]:
        """Smallest and largest input code."""
        if self.signed:
            return -(1 << (self.bits - 1)), (1 << (self.bits - 1)) - 1
        return 0, (1 << self.bits) - 1

    def quantize(self, x) -> np.ndarray:
        """Float inputs → integer codes (round half away from zero, then clamp).

        Raises
        ------
        ValueError
            For NaN or infinite inputs, or a last axis that is not ``features`` long.
        """
        x = np.asarray(x, dtype=np.float64)
        if x.ndim == 0 or x.shape[-1] != self.features:
            raise ValueError(f"input must have {self.features} features on its last axis, "
                             f"not shape {x.shape}")
        if not np.isfinite(x).all():
            raise ValueError(f"input contains {np.count_nonzero(~np.isfinite(x))} NaN or "
                             "infinite value(s)")
        q = np.sign(x) * np.floor(np.abs(x) / self.scale + 0.5)
        lo, hi = self.range
        return np.clip(q, lo, hi).astype(np.int64)


@dataclasses.dataclass(frozen=True, eq=False)
class DenseLayer(DenseShape):
    """A fully connected layer: ``acc = x @ w_int.T + bias``, then requantization or logits.

    Parameters
    ----------
    name:
        Unique within the network: letters, digits, ``_`` and ``-``.
    scheme:
        The weight scheme.
    codes:
        Weight codes, shape ``(out_features, in_features)``, integer dtype.
    weight_scale:
        Float value of one unit of ``w_int``.
    bias:
        Integer bias in accumulator units, shape ``(out_features,)``.
    in_bits, in_signed:
        The input activation code.
    activation:
        ``"relu"`` (requantize to ``out_bits`` unsigned, clamping at 0) or ``"none"`` (the
        layer outputs its accumulator: the logits of the last layer).
    out_bits, out_scale:
        Output activation code width and the float value of one unit (``relu`` only).
    requant_multiplier, requant_shift:
        ``M`` and ``S`` per output channel (``relu`` only), see
        :func:`rtl_gen.numerics.fixedpoint.requantize`.
    tr:
        Term-revealing grouping, or ``None`` for a conventional layer.
    float_weight, float_bias:
        The float layer this one was quantized from (optional), for the float reference.

    Raises
    ------
    SpecError
        Naming the field (as spelled in the bundle) and the layer.
    """

    kind: ClassVar[str] = "dense"

    name: str
    scheme: WeightScheme
    codes: np.ndarray
    weight_scale: float
    bias: np.ndarray
    in_bits: int
    in_signed: bool
    activation: str = "relu"
    out_bits: int | None = None
    out_scale: float | None = None
    requant_multiplier: np.ndarray | None = None
    requant_shift: np.ndarray | None = None
    tr: TRConfig | None = None
    float_weight: np.ndarray | None = None
    float_bias: np.ndarray | None = None

    def __post_init__(self):
        name = check_layer_name(self.name)
        if not isinstance(self.scheme, WeightScheme):
            raise SpecError("weight.scheme", f"must be a WeightScheme, not {self.scheme!r}",
                            layer=name)
        codes = self.codes
        if not isinstance(codes, np.ndarray) or codes.ndim != 2 or 0 in codes.shape:
            raise SpecError("weight.codes", "must be a non-empty 2-D array (out_features, "
                            f"in_features), not {getattr(codes, 'shape', type(codes).__name__)}",
                            layer=name)
        n_out, n_in = codes.shape
        _check_array("weight.codes", codes, (n_out, n_in), "iu", name)
        bad = self.scheme.invalid_codes(codes)
        if bad.any():
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            raise SpecError("weight.codes", f"{int(bad.sum())} code(s) out of range for "
                            f"{self.scheme.name}: first is {int(codes[first])} at index {first}",
                            layer=name)
        object.__setattr__(self, "weight_scale",
                           _check_scale("weight.scale", self.weight_scale, name))
        _check_array("bias", self.bias, (n_out,), "iu", name)
        b = self.bias
        if b.size and (int(b.max()) >= 1 << 40 or int(b.min()) <= -(1 << 40)):
            raise SpecError("bias", "magnitude must stay below 2**40", layer=name)
        _check_int("in_bits", self.in_bits, *ACT_BITS_RANGE, name)
        if not isinstance(self.in_signed, (bool, np.bool_)):
            raise SpecError("in_signed", f"must be true or false, not {self.in_signed!r}",
                            layer=name)
        object.__setattr__(self, "in_signed", bool(self.in_signed))
        if self.activation not in ACTIVATIONS:
            raise SpecError("activation", f"must be one of {', '.join(ACTIVATIONS)}, not "
                            f"{self.activation!r}", layer=name)
        requant = (self.out_bits, self.out_scale, self.requant_multiplier, self.requant_shift)
        if self.activation == "relu":
            _check_int("out_bits", self.out_bits, *ACT_BITS_RANGE, name)
            object.__setattr__(self, "out_scale", _check_scale("out_scale", self.out_scale, name))
            m = _check_array("requant.multiplier", self.requant_multiplier, (n_out,), "iu", name)
            s = _check_array("requant.shift", self.requant_shift, (n_out,), "iu", name)
            if (m.astype(np.int64) <= 0).any() or (m.astype(np.int64) >= 1 << 31).any():
                raise SpecError("requant.multiplier", "every M must be in 1..2**31-1",
                                layer=name)
            if (s < 1).any() or (s > MAX_SHIFT).any():
                raise SpecError("requant.shift", f"every S must be in 1..{MAX_SHIFT}",
                                layer=name)
            if self.acc_bits + int(m.max()).bit_length() > 63:
                raise SpecError("requant.multiplier", f"acc ({self.acc_bits} bits) times M "
                                "does not fit 63 bits", layer=name)
        elif any(v is not None for v in requant):
            raise SpecError("out_bits", "a layer without activation outputs its accumulator "
                            "and takes no out_bits, out_scale or requant", layer=name)
        if self.tr is not None:
            if not isinstance(self.tr, TRConfig):
                raise SpecError("tr", f"must be a TRConfig, not {self.tr!r}", layer=name)
            most = self.tr.group * (self.scheme.magnitude_bits + 1)
            if self.tr.budget > most:
                raise SpecError("tr.budget", f"must be at most {most} (every term of a group "
                                f"of {self.tr.group}), not {self.tr.budget!r}", layer=name)
            if self.tr.data_terms is not None and self.tr.data_terms > self.in_bits + 1:
                raise SpecError("tr.data_terms", f"must be at most {self.in_bits + 1} for "
                                f"{self.in_bits}-bit inputs, not {self.tr.data_terms!r}",
                                layer=name)
        if (self.float_weight is None) != (self.float_bias is None):
            raise SpecError("float.weight", "float weight and float bias come together",
                            layer=name)
        if self.float_weight is not None:
            _check_array("float.weight", self.float_weight, (n_out, n_in), "f", name)
            _check_array("float.bias", self.float_bias, (n_out,), "f", name)

    # -- derived ----------------------------------------------------------------------------

    @property
    def bits_per_weight(self) -> int:
        """Stored code bits per weight: the scheme's width."""
        return self.scheme.bits

    @cached_property
    def w_int(self) -> np.ndarray:
        """Decoded integer weights, ``(out_features, in_features)``, int64."""
        return self.scheme.decode(self.codes)

    @property
    def x_max(self) -> int:
        """Largest input magnitude the accumulator must absorb (after data-term truncation,
        which can round an unsigned ``2**b - 1`` up to ``2**b``)."""
        if self.in_signed:
            return 1 << (self.in_bits - 1)
        truncates = self.tr is not None and self.tr.data_terms is not None
        return (1 << self.in_bits) - (0 if truncates else 1)

    @property
    def w_max(self) -> int:
        """Largest ``|w_int|`` of the scheme (term revealing can round up to a power of 2)."""
        if self.tr is not None:
            return 1 << self.scheme.magnitude_bits
        return self.scheme.w_int_max

    @property
    def acc_bits(self) -> int:
        """Accumulator width by the no-overflow rule, for any weights of the scheme."""
        b_max = int(np.abs(self.bias.astype(np.int64)).max(initial=0))
        return acc_bits(self.in_features, self.x_max, self.w_max, b_max)

    @property
    def out_width(self) -> int:
        """Width of the output code: ``out_bits`` after ReLU, else the accumulator."""
        return self.out_bits if self.activation == "relu" else self.acc_bits


@dataclasses.dataclass(frozen=True, eq=False)
class Network(NetworkModel):
    """A chain of layers from an input code to logits.

    Parameters
    ----------
    name:
        A short name (the bundle's folder name by default).
    input:
        The input code.
    layers:
        At least one layer; every layer but the last has ``relu``, the last ``none``; each
        layer's input matches the previous layer's output in features, width and sign.
        Besides dense layers: the convolution, pooling and flatten layers of
        :mod:`rtl_gen.design.conv` (feature-map shapes checked by its ``check_chain``).
    labels:
        Class names, one per output of the last layer (optional).
    metadata:
        Free-form provenance (data set, split, quantizer settings), stored in the manifest.
    """

    name: str
    input: InputSpec
    layers: tuple[DenseLayer | SpatialLayer, ...]
    labels: tuple[str, ...] | None = None
    metadata: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise SpecError("name", f"must be a non-empty string, not {self.name!r}")
        if not isinstance(self.input, InputSpec):
            raise SpecError("input", f"must be an InputSpec, not {self.input!r}")
        object.__setattr__(self, "layers", tuple(self.layers))
        if not isinstance(self.metadata, dict):
            raise SpecError("metadata", f"must be a mapping, not {type(self.metadata).__name__}")
        object.__setattr__(self, "metadata", dict(self.metadata))
        if not self.layers:
            raise SpecError("layers", "a network needs at least one layer")
        if not self.is_dense:  # convolution, pooling, flatten: feature-map shapes too
            from .conv import check_chain

            check_chain(self.input, self.layers)
        names = [layer.name for layer in self.layers]
        for i, layer in enumerate(self.layers if self.is_dense else ()):  # else: checked
            if names.index(layer.name) != i:
                raise SpecError("name", "is used by two layers", layer=layer.name)
            last = i == len(self.layers) - 1
            want = "none" if last else "relu"
            if layer.activation != want:
                where = "the last layer" if last else "a hidden layer"
                raise SpecError("activation", f"must be {want!r} in {where}, not "
                                f"{layer.activation!r}", layer=layer.name)
            if i == 0:
                features, bits, signed = self.input.features, self.input.bits, self.input.signed
                source = "the input"
            else:
                prev = self.layers[i - 1]
                features, bits, signed = prev.out_features, prev.out_bits, False
                source = f"layer {prev.name!r}"
            if layer.in_features != features:
                raise SpecError("weight.codes", f"has {layer.in_features} inputs but {source} "
                                f"gives {features}", layer=layer.name)
            if layer.in_bits != bits or bool(layer.in_signed) != signed:
                raise SpecError("in_bits", f"expects {layer.in_bits}-bit "
                                f"{'signed' if layer.in_signed else 'unsigned'} inputs but "
                                f"{source} gives {bits}-bit "
                                f"{'signed' if signed else 'unsigned'}", layer=layer.name)
        if self.labels is not None:
            labels = tuple(str(v) for v in self.labels)
            if len(labels) != self.layers[-1].out_features:
                raise SpecError("labels", f"has {len(labels)} names for "
                                f"{self.layers[-1].out_features} outputs")
            object.__setattr__(self, "labels", labels)

    family = "integer"

    @property
    def is_dense(self) -> bool:
        """Whether every layer is a :class:`DenseLayer` (else it has layers of
        :mod:`rtl_gen.design.conv`: convolution, pooling, flatten)."""
        return all(isinstance(layer, DenseLayer) for layer in self.layers)

    @property
    def in_features(self) -> int:
        return self.input.features

    def encode(self, x) -> np.ndarray:
        """Float inputs -> integer input codes (:meth:`InputSpec.quantize`)."""
        return self.input.quantize(x)

    def forward(self, x, control=None) -> np.ndarray:
        """Integer logits of integer input codes (:func:`rtl_gen.design.golden.forward`)."""
        from .golden import forward

        return forward(self, x, control)

    def logit_key(self, logits) -> np.ndarray:
        return np.asarray(logits, dtype=np.int64)

    @property
    def schemes(self) -> tuple[str, ...]:
        """Weight scheme of every layer with weights."""
        return tuple(layer.scheme.name for layer in self.layers if layer.has_weights)

