"""The golden model: the bit-exact specification every piece of hardware is held to.

For a dense layer with integer inputs ``x`` (batch, in_features)::

    acc = x @ w_int.T + bias                                  exact, int64
    y   = requantize(acc, M, S, out_bits)        if activation == "relu"
    y   = acc                                    if activation == "none" (logits)

A term-revealing layer first reveals its weights (``term_reveal`` with its group ``g`` and
budget ``k`` along the reduction axis) and truncates each input to its ``s`` largest HESE
terms.  The class is ``argmax`` of the logits, ties to the lowest index.

The float reference runs the float weights the layers were quantized from, with ReLU between
layers, on the float inputs; accuracy lost to quantization is always measured against it on
the same data.
"""

from __future__ import annotations

import dataclasses
import enum

import numpy as np

from ..numerics.fixedpoint import requantize
from ..numerics.terms import term_reveal, truncate_terms
from .base import accuracy, predict
from .float_network import FloatNetwork
from .network import DenseLayer, Network
from .timing import LayerTiming, network_interval

__all__ = [
    "LayerTiming",
    "network_interval",
    "TRControl",
    "TRMode",
    "accumulate",
    "accuracy",
    "float_forward",
    "forward",
    "framed_sums",
    "layer_forward",
    "predict",
]


class TRMode(enum.Enum):
    """Run-time term-revealing mode (the hardware's control register holds the same)."""

    CONVENTIONAL = 0
    TR = 1


@dataclasses.dataclass(frozen=True)
class TRControl:
    """Run-time control of every term-revealing layer.

    ``CONVENTIONAL`` reads every weight term and every data term; ``TR`` applies
    ``budget``/``data_terms`` when given, else each layer's own setting from the bundle.
    """

    mode: TRMode = TRMode.TR
    budget: int | None = None
    data_terms: int | None = None

    def __post_init__(self):
        if not isinstance(self.mode, TRMode):
            raise ValueError(f"mode must be a TRMode, not {self.mode!r}")
        for name in ("budget", "data_terms"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
                raise ValueError(f"{name} must be a non-negative integer or None, not {v!r}")


def _check_input(layer: DenseLayer, x) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype.kind not in "iu":
        raise ValueError(f"layer {layer.name!r}: inputs must be integers, not dtype {x.dtype}")
    if x.ndim != 2 or x.shape[1] != layer.in_features:
        raise ValueError(f"layer {layer.name!r}: inputs must have shape (batch, "
                         f"{layer.in_features}), not {x.shape}")
    x = x.astype(np.int64)
    if layer.in_signed:
        lo, hi = -(1 << (layer.in_bits - 1)), (1 << (layer.in_bits - 1)) - 1
    else:
        lo, hi = 0, (1 << layer.in_bits) - 1
    if x.size and (x.min() < lo or x.max() > hi):
        raise ValueError(f"layer {layer.name!r}: inputs must lie in {lo}..{hi} "
                         f"({layer.in_bits}-bit {'signed' if layer.in_signed else 'unsigned'})"
                         f", got {x.min()}..{x.max()}")
    return x


def accumulate(layer: DenseLayer, x, control: TRControl | None = None) -> np.ndarray:
    """Exact accumulator ``x @ w.T + bias`` (int64, ``(batch, out_features)``), with the
    layer's term revealing applied as ``control`` says."""
    x = _check_input(layer, x)
    w = layer.w_int
    tr = layer.tr
    if tr is not None and (control is None or control.mode is TRMode.TR):
        budget = tr.budget if control is None or control.budget is None else control.budget
        terms = tr.data_terms if control is None or control.data_terms is None \
            else control.data_terms
        w = term_reveal(w, tr.group, budget, layer.scheme.magnitude_bits)
        if terms is not None:
            x = truncate_terms(x, terms, layer.in_bits)
    return x @ w.T + layer.bias.astype(np.int64)


def layer_forward(layer: DenseLayer, x, control: TRControl | None = None) -> np.ndarray:
    """One layer: the accumulator, then requantization and ReLU unless it is the logits.

    A convolution, pooling or flatten layer (:mod:`rtl_gen.design.conv`) runs its own
    ``forward`` on flattened HWC feature maps.
    """
    if not isinstance(layer, DenseLayer):
        return layer.forward(x, control)
    acc = accumulate(layer, x, control)
    if layer.activation == "none":
        return acc
    return requantize(acc, layer.requant_multiplier, layer.requant_shift, layer.out_bits)


def forward(net: Network, x, control: TRControl | None = None, *,
            trace: bool = False):
    """Integer inference.

    Parameters
    ----------
    net:
        The network.
    x:
        Integer input codes, ``(batch, features)`` (use ``net.input.quantize`` for floats).
    control:
        Run-time term-revealing control, or ``None`` for each layer's bundle setting.
    trace:
        Return every layer's output (a list) instead of only the logits.
    """
    outs = []
    h = np.asarray(x)
    for layer in net.layers:
        h = layer_forward(layer, h, control)
        outs.append(h)
    return outs if trace else h


def float_forward(net: Network | FloatNetwork, x) -> np.ndarray:
    """The float reference: float weights, ReLU between layers, float logits.

    Either family carries it (``float_weight``, ``float_bias`` per layer), optionally.

    Raises
    ------
    ValueError
        If the network carries no float reference.
    """
    if not net.has_float_reference:
        raise ValueError(f"network {net.name!r} carries no float reference")
    h = np.asarray(x, dtype=np.float64)
    for layer in net.layers:
        if isinstance(net, Network) and not isinstance(layer, DenseLayer):
            h = layer.float_forward(h)  # convolution, pooling, flatten
            continue
        h = h @ layer.float_weight.T + layer.float_bias
        if layer.activation == "relu":
            h = np.maximum(h, 0)
    return h


def framed_sums(sums, first=None, last=None) -> np.ndarray:
    """Accumulate per-vector sums the way a processing element does.

    ``first[i]`` restarts the accumulator with ``sums[i]``, otherwise ``sums[i]`` is added;
    ``last[i]`` emits the accumulator after adding.  Flags default to every vector being an
    accumulation of its own.

    Returns
    -------
    numpy.ndarray of int64
        One accumulator per ``last`` vector, in order.
    """
    sums = np.asarray(sums, dtype=np.int64).reshape(-1)
    n = sums.size
    first = np.ones(n, bool) if first is None else np.asarray(first).astype(bool)
    last = np.ones(n, bool) if last is None else np.asarray(last).astype(bool)
    out, acc = [], 0
    for v, f, e in zip(sums.tolist(), first.tolist(), last.tolist(), strict=True):
        acc = v if f else acc + v
        if e:
            out.append(acc)
    return np.array(out, dtype=np.int64)
