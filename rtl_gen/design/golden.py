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
import math

import numpy as np

from ..numerics.fixedpoint import requantize
from ..numerics.terms import term_reveal, truncate_terms
from .base import accuracy, predict
from .float_network import FloatNetwork
from .network import DenseLayer, Network

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
    """One layer: the accumulator, then requantization and ReLU unless it is the logits."""
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


@dataclasses.dataclass(frozen=True)
class LayerTiming:
    """The cycle model of a dense layer on an output-stationary systolic array.

    The hardware (:class:`rtl_gen.hw.layer.LayerEngine`) is held to these numbers: a test
    compares its cycle counters with :attr:`batch_cycles` for every layer.

    Parameters
    ----------
    k, n:
        Inputs and outputs of the layer.
    rows, cols, lanes:
        ``R`` (batch), ``C`` (channels per tile) and ``L`` (products per PE per cycle).
    pe_latency:
        Clock edges from a PE accepting its last step to its result.
    requantize:
        Hidden layer (bias, requantization product, shift: three drain stages) or logits
        (bias: one).
    slots:
        Cycles per step: 1 for the PE arrays; for a term-revealing layer (``lanes`` = the
        group size ``g``, one step per group) the weight-term slots read per group, ``min(k,
        T)`` in TR mode with budget ``k`` and all ``T`` (the most terms of any group of the
        layer) in conventional mode, at least 1.
    fixed_latency:
        The array's latency when it does not depend on its shape (the term-revealing array
        broadcasts its operands: no skew), else ``None``.
    """

    k: int
    n: int
    rows: int
    cols: int
    lanes: int
    pe_latency: int
    requantize: bool
    slots: int = 1
    fixed_latency: int | None = None

    @property
    def k_steps(self) -> int:
        """Steps per tile: ``ceil(K / L)``."""
        return math.ceil(self.k / self.lanes)

    @property
    def tiles(self) -> int:
        """Tiles per batch: ``ceil(N / C)``."""
        return math.ceil(self.n / self.cols)

    @property
    def issue_cycles(self) -> int:
        """Cycles a tile's steps take to issue: ``k_steps * slots``."""
        return self.k_steps * self.slots

    @property
    def period(self) -> int:
        """Cycles between tile starts: the steps, or the drain of ``R*C`` results plus one
        (the drain must read a PE's result before the next tile's lands there)."""
        return max(self.issue_cycles, self.rows * self.cols + 1)

    @property
    def array_latency(self) -> int:
        """From the last step entering the array to every result captured: the skew and
        the systolic chains (``R + C - 2``), the PE's input register and latency, and the
        result capture."""
        if self.fixed_latency is not None:
            return self.fixed_latency
        return self.rows + self.cols + self.pe_latency

    @property
    def drain_stages(self) -> int:
        """Registers from a result to the output FIFO: bias; then for hidden layers the
        requantization product and the shift (the clamp rides into the FIFO)."""
        return 3 if self.requantize else 1

    @property
    def batch_cycles(self) -> int:
        """From the cycle the sequencer takes a batch to the cycle its last result enters
        the output FIFO, both counted, when nothing downstream stalls.

        The sequencer takes the batch in cycle 0 and reads step ``s`` of tile ``t`` in cycle
        ``1 + t*period + s``; the memories answer a cycle later, so the last tile's last step
        enters the array in cycle ``1 + (tiles-1)*period + k_steps``, and its results are
        complete ``array_latency`` cycles after that.  The drain starts the next cycle and
        writes result ``j = r*C + c`` ``j + drain_stages`` cycles later; the last real result
        is ``j = (R-1)*C + (valid columns of the last tile) - 1``.
        """
        last_cols = self.n - (self.tiles - 1) * self.cols
        j_last = (self.rows - 1) * self.cols + last_cols - 1
        return (1 + (self.tiles - 1) * self.period + self.issue_cycles + self.array_latency
                + 1 + j_last + self.drain_stages + 1)

    @property
    def interval(self) -> int:
        """Cycles between batch starts when the next batch is waiting: every tile, plus one
        idle cycle in which the sequencer picks up the next input bank."""
        return self.tiles * self.period + 1

    @property
    def macs(self) -> int:
        """Multiply-accumulates per batch."""
        return self.rows * self.k * self.n

    @property
    def peak(self) -> int:
        """Multiply-accumulates per cycle of the whole array: ``R * C * L``."""
        return self.rows * self.cols * self.lanes

    @property
    def utilization(self) -> float:
        """Achieved over peak multiply-accumulates in steady state (batches back to back)."""
        return self.macs / (self.interval * self.peak)

    @property
    def fifo_depth(self) -> int:
        """Output FIFO entries: the results of every tile that can be in flight when
        nothing stalls, so that the credit check never holds the array back then."""
        in_flight = math.ceil((self.issue_cycles + self.array_latency + self.rows * self.cols
                               + self.drain_stages + 2) / self.period) + 1
        return self.rows * self.cols * in_flight + 2


def network_interval(timings, input_features: int) -> int:
    """Cycles between batches of a chained network in steady state: the slowest layer, or
    the input stream (one activation a cycle) if that is slower."""
    rows = timings[0].rows
    return max([t.interval for t in timings] + [rows * input_features] +
               [rows * t.n for t in timings])
