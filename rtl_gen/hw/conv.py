"""Convolutional networks in hardware: a convolution, pooling or flatten engine per layer,
chained with the dense layer engines into one network engine.

::

    i (HWC codes) ──► conv: WindowUnit ──► LayerEngine (the core: K = kh*kw*C -> N) ──►
                  ──► pool: WindowUnit ──► PoolReducer (max / avg)                  ──►
                  ──► global_avgpool: PoolReducer (taps = H*W)                       ──►
                  ──► flatten: wires                                                ──►
                  ──► dense: LayerEngine ──► … ──► o (logits), argmax ──► cls

A convolution is its core dense layer (:attr:`rtl_gen.design.conv.ConvLayer.core`, weights
``(out_channels, kh*kw*C)`` in ``(ky, kx, c)`` order) applied to every window: the window
unit (:class:`~rtl_gen.hw.window.WindowUnit`) streams each output pixel's window, ``P``
codes a cycle in that order (the array's ``window``, a power of two dividing the lanes and
the input channels; 1 by default), into the input banks of an ordinary
:class:`~rtl_gen.hw.layer.LayerEngine` (``in_per_beat = P``: each transfer fills ``P``
adjacent lanes), which takes it as one input vector (one batch of one row) and writes the
pixel's ``N`` output codes in channel order, so the output is the next layer's HWC stream
with no reordering.  Every weight scheme the dense engine takes, it takes
here, per layer (mixed precision included); a term-revealing layer's core is the
:class:`~rtl_gen.hw.tr_layer.TRLayerEngine` (:class:`TRConvEngine`, one window code a
cycle), its run-time controls the network's.

A network with spatial layers runs one image at a time: every array has one row (batch 1).
The logits leave in index order; ``cls`` is each image's class.

Cycle model: each weight layer's ``cycles`` counter is its engine's, per window (a batch of
one vector): :attr:`~rtl_gen.design.timing.LayerTiming.batch_cycles` of the core; pooling
and flatten have no counter (0).  A whole image through a convolution or a pooling layer,
fed one code a cycle: :class:`~rtl_gen.design.conv_timing.ConvTiming`,
:class:`~rtl_gen.design.conv_timing.PoolTiming`.
"""

from __future__ import annotations

import dataclasses

from amaranth import Module, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..design.conv import (
    AvgPoolLayer,
    ConvLayer,
    FlattenLayer,
    GlobalAvgPoolLayer,
    MaxPoolLayer,
)
from ..design.conv_timing import ConvTiming, PoolTiming
from ..design.network import DenseLayer, Network
from ..design.timing import LayerTiming
from .kit import COUNTER_BITS, Engine
from .layer import ArrayConfig, LayerEngine, LayerPlan, layer_timing, plan_layer
from .network import ChainPlan, EngineChain, logit_order
from .pes.layers import default_array
from .tr_layer import TRLayerEngine
from .window import (
    PoolReducer,
    ReducerPlan,
    WindowPlan,
    WindowUnit,
    code_shape,
    plan_reducer,
    plan_window,
)

__all__ = ["ConvEngine", "ConvNetworkEngine", "ConvPlan", "FlattenStage", "PoolEngine",
           "PoolPlan", "TRConvEngine", "conv_arrays", "plan_conv_chain", "stage_interval"]


@dataclasses.dataclass(frozen=True)
class ConvPlan:
    """A validated convolution engine: the layer, its window unit and its core's engine."""

    layer: ConvLayer
    window: WindowPlan
    core: LayerPlan

    @property
    def timing(self) -> LayerTiming:
        """The core's cycle model, per window."""
        return self.core.timing


def plan_conv(layer: ConvLayer, array: ArrayConfig, *, counters: bool = True,
              requant: str = "auto", lines: int | None = None) -> ConvPlan:
    """Validate a convolution on an array of one row (see :class:`ConvEngine`)."""
    if not isinstance(layer, ConvLayer):
        raise TypeError(f"layer must be a ConvLayer, not {layer!r}")
    if array.rows != 1:
        raise ValueError(f"layer {layer.name!r}: a convolution runs on an array of one row "
                         f"(one window a batch), not {array.rows}")
    per = array.window
    if layer.tr is not None and per != 1:
        raise ValueError(f"layer {layer.name!r}: a term-revealing convolution takes one "
                         f"window code a cycle, not {per}")
    c = layer.in_shape[2]
    if c % per:
        raise ValueError(f"layer {layer.name!r}: {per} window codes per cycle must divide the "
                         f"{c} input channels")
    window = plan_window(layer.in_shape, layer.kernel, layer.stride, layer.padding,
                         bits=layer.in_bits, signed=layer.in_signed, lines=lines,
                         per_cycle=per)
    core = plan_layer(layer.core, dataclasses.replace(array, window=1), counters=counters,
                      requant=requant, in_per_beat=per)
    return ConvPlan(layer=layer, window=window, core=core)


def _core_engine(plan: LayerPlan):
    """The engine class of a layer plan: the term-revealing engine or the PE array's."""
    return TRLayerEngine if plan.is_tr else LayerEngine


class ConvEngine(Engine):
    """A convolution: a window unit feeding a layer engine; see the module docstring.

    Parameters
    ----------
    layer:
        The :class:`~rtl_gen.design.conv.ConvLayer`.
    array:
        The core's :class:`~rtl_gen.hw.layer.ArrayConfig` (one row).
    counters, requant:
        As for :func:`~rtl_gen.hw.layer.plan_layer`.
    lines:
        The window unit's rows (:class:`~rtl_gen.hw.window.WindowUnit`).

    Members
    -------
    i : In(stream.Signature(input code))
        The input map, HWC, one code a transfer.
    o : Out(stream.Signature(output code, or the accumulator for logits))
        The output map, HWC, one code a transfer.
    cycles : Out(32)
        The core's cycles for its last window (:class:`~rtl_gen.hw.layer.LayerEngine`).
    """

    plan = staticmethod(plan_conv)

    @staticmethod
    def ports(plan: ConvPlan) -> dict:
        ports = _core_engine(plan.core).ports(plan.core)
        ports["i"] = In(stream.Signature(code_shape(plan.window.bits, plan.window.signed)))
        return ports

    @property
    def timing(self) -> LayerTiming:
        return self._plan.core.timing

    def elaborate(self, platform):
        m = Module()
        m.submodules.window = window = WindowUnit.from_plan(self._plan.window)
        core_cls = _core_engine(self._plan.core)
        m.submodules.core = core = core_cls.from_plan(self._plan.core)
        wiring.connect(m, wiring.flipped(self.i), window.i)
        wiring.connect(m, window.o, core.i)
        wiring.connect(m, core.o, wiring.flipped(self.o))
        m.d.comb += self.cycles.eq(core.cycles)
        for control in core_cls.CONTROLS:
            m.d.comb += getattr(core, control).eq(getattr(self, control))
        return m


class TRConvEngine(ConvEngine):
    """A convolution whose core is term-revealing (:class:`~rtl_gen.hw.tr_layer.TRLayerEngine`
    on every window), with its run-time controls ``tr_mode``, ``tr_k``, ``tr_s``."""

    CONTROLS = TRLayerEngine.CONTROLS


@dataclasses.dataclass(frozen=True)
class PoolPlan:
    """A validated pooling engine: its layer, window unit (``None`` for global pooling) and
    reducer."""

    layer: object
    window: WindowPlan | None
    reducer: ReducerPlan


def plan_pool(layer, *, lines: int | None = None) -> PoolPlan:
    """Validate a max, average or global average pooling layer (see :class:`PoolEngine`)."""
    c = layer.in_shape[2]
    if isinstance(layer, (MaxPoolLayer, AvgPoolLayer)):
        window = plan_window(layer.in_shape, layer.kernel, layer.stride, 0,
                             bits=layer.in_bits, signed=layer.in_signed, lines=lines)
        how = "max" if isinstance(layer, MaxPoolLayer) else "avg"
        taps = layer.kernel[0] * layer.kernel[1]
    elif isinstance(layer, GlobalAvgPoolLayer):
        window, how, taps = None, "avg", layer.in_shape[0] * layer.in_shape[1]
    else:
        raise TypeError(f"layer must be a pooling layer, not {layer!r}")
    return PoolPlan(layer=layer, window=window,
                    reducer=plan_reducer(how, taps=taps, channels=c, bits=layer.in_bits,
                                         signed=layer.in_signed))


class PoolEngine(Engine):
    """Max or average pooling (a window unit and a reducer), or global average pooling (the
    reducer over the whole map).

    Members
    -------
    i, o : stream of codes (HWC in; HWC, or ``C`` codes for global pooling, out)
    cycles : Out(32)
        Always 0 (pooling has no counter).
    """

    plan = staticmethod(plan_pool)

    @staticmethod
    def ports(plan: PoolPlan) -> dict:
        shape = code_shape(plan.reducer.bits, plan.reducer.signed)
        return {"i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape)),
                "cycles": Out(COUNTER_BITS)}

    def elaborate(self, platform):
        m = Module()
        m.submodules.reducer = reducer = PoolReducer.from_plan(self._plan.reducer)
        if self._plan.window is None:
            wiring.connect(m, wiring.flipped(self.i), reducer.i)
        else:
            m.submodules.window = window = WindowUnit.from_plan(self._plan.window)
            wiring.connect(m, wiring.flipped(self.i), window.i)
            wiring.connect(m, window.o, reducer.i)
        wiring.connect(m, reducer.o, wiring.flipped(self.o))
        return m


@dataclasses.dataclass(frozen=True)
class FlattenPlan:
    layer: FlattenLayer


class FlattenStage(Engine):
    """Flatten: the codes pass unchanged (they already travel in HWC order); ``cycles`` 0."""

    @staticmethod
    def plan(layer: FlattenLayer) -> FlattenPlan:
        if not isinstance(layer, FlattenLayer):
            raise TypeError(f"layer must be a FlattenLayer, not {layer!r}")
        return FlattenPlan(layer)

    @staticmethod
    def ports(plan: FlattenPlan) -> dict:
        shape = code_shape(plan.layer.in_bits, plan.layer.in_signed)
        return {"i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape)),
                "cycles": Out(COUNTER_BITS)}

    def elaborate(self, platform):
        m = Module()
        wiring.connect(m, wiring.flipped(self.i), wiring.flipped(self.o))
        return m


# -- the chain ---------------------------------------------------------------------------------


def _core(layer):
    """The dense layer whose engine a weight layer runs on (a convolution's core)."""
    return layer.core if isinstance(layer, ConvLayer) else layer


def conv_arrays(net: Network, arrays=None) -> tuple:
    """One entry per layer: the :class:`ArrayConfig` of each weight layer (``arrays``, one
    per layer with ``None`` for the others, or by default per scheme), ``None`` for pooling
    and flatten.  Every array has one row."""
    if arrays is None:
        arrays = [default_array(_core(ly).scheme.kind, _core(ly).tr is not None)
                  if ly.has_weights else None for ly in net.layers]
    arrays = tuple(arrays)
    if len(arrays) != len(net.layers):
        raise ValueError(f"give one array configuration per layer ({len(net.layers)}, None "
                         f"for pooling and flatten), not {len(arrays)}")
    for ly, a in zip(net.layers, arrays, strict=True):
        if ly.has_weights and not isinstance(a, ArrayConfig):
            raise ValueError(f"layer {ly.name!r} needs an array configuration, not {a!r}")
        if ly.has_weights and a.rows != 1:
            raise ValueError(f"layer {ly.name!r}: a network with convolution, pooling or "
                             f"flatten layers runs one image at a time (arrays of one row), "
                             f"not {a.rows} rows")
        if ly.has_weights and a.window != 1 and not isinstance(ly, ConvLayer):
            raise ValueError(f"layer {ly.name!r}: window codes per cycle ({a.window}) are a "
                             "convolution's setting, not a dense layer's")
    return tuple(a if ly.has_weights else None for ly, a in zip(net.layers, arrays,
                                                                 strict=True))


def stage_timing(layer, array: ArrayConfig | None, control=None):
    """The cycle model of one stage: :class:`ConvTiming` of a convolution,
    :class:`PoolTiming` of pooling and flatten, :class:`LayerTiming` of a dense layer."""
    if isinstance(layer, ConvLayer):
        engine = layer_timing(layer.core, array, control)
        return ConvTiming(in_shape=layer.in_shape, kernel=layer.kernel, stride=layer.stride,
                          padding=layer.padding,
                          engine=dataclasses.replace(engine, in_per_beat=array.window))
    if isinstance(layer, DenseLayer):
        return layer_timing(layer, array, control)
    return PoolTiming.of(layer)


def stage_interval(timing) -> int:
    """Cycles per image of a stage in steady state (its slowest part)."""
    if isinstance(timing, LayerTiming):
        return max(timing.steady_interval, timing.k, timing.n)
    return timing.image_interval


def stage_batch_cycles(timing) -> int:
    """What a stage's ``cycles`` counter reads when nothing holds it back: its engine's
    :attr:`~LayerTiming.batch_cycles` (a convolution's per window), 0 without an engine."""
    if isinstance(timing, LayerTiming):
        return timing.batch_cycles
    if isinstance(timing, ConvTiming):
        return timing.engine.batch_cycles
    return 0


def held_back(timings) -> tuple[int, ...]:
    """The stages whose counters are not compared with the model: pooling and flatten
    (no counter), and each weight stage a slower later stage holds back (its output FIFO
    fills and it waits for credit inside a batch)."""
    out = []
    per_image = [stage_interval(t) for t in timings]
    for i, t in enumerate(timings):
        if isinstance(t, PoolTiming):
            out.append(i)
        elif any(p > per_image[i] for p in per_image[i + 1:]):
            out.append(i)
    return tuple(out)


def plan_conv_chain(net: Network, arrays=None, in_per_beat: int = 1, *,
                    counters: bool = True, requant: str = "auto") -> ChainPlan:
    """Validate a network with convolution, pooling or flatten layers and choose each
    layer's engine (:class:`ConvEngine`, :class:`PoolEngine`, :class:`FlattenStage`,
    :class:`~rtl_gen.hw.layer.LayerEngine`).  ``arrays``: :func:`conv_arrays`;
    ``in_per_beat`` must be 1 (one code a transfer); ``counters`` and ``requant`` as for
    :func:`~rtl_gen.hw.layer.plan_layer`, for every weight layer."""
    if not isinstance(net, Network):
        raise TypeError(f"net must be a Network, not {net!r}")
    if in_per_beat != 1:
        raise ValueError(f"a network with convolution, pooling or flatten layers takes one "
                         f"input code a transfer, not {in_per_beat}")
    arrays = conv_arrays(net, arrays)
    if any(getattr(a, "drain_width", 1) != 1 for a in arrays):
        raise ValueError("a network with convolution, pooling or flatten layers drains one "
                         "result a cycle in every layer (drain_width 1)")
    stages = []
    for idx, (layer, array) in enumerate(zip(net.layers, arrays, strict=True)):
        name = f"layer{idx}_{layer.name}"
        if isinstance(layer, ConvLayer):
            cp = plan_conv(layer, array, counters=counters, requant=requant)
            stages.append((name, TRConvEngine if cp.core.is_tr else ConvEngine, cp))
        elif isinstance(layer, DenseLayer):
            p = plan_layer(layer, array, counters=counters, requant=requant)
            stages.append((name, _core_engine(p), p))
        elif isinstance(layer, FlattenLayer):
            stages.append((name, FlattenStage, FlattenStage.plan(layer)))
        else:
            stages.append((name, PoolEngine, plan_pool(layer)))
    timings = tuple(stage_timing(ly, a) for ly, a in zip(net.layers, arrays, strict=True))
    inp, last = net.input, net.layers[-1]
    cols = arrays[-1].cols
    return ChainPlan(net=net, configs=arrays, stages=tuple(stages), timings=timings,
                     in_shape=code_shape(inp.bits, inp.signed),
                     out_shape=signed(last.acc_bits), classes=last.out_features,
                     rows=1, cols=cols, in_per_beat=1)


class ConvNetworkEngine(EngineChain):
    """A network with convolution, pooling or flatten layers as a chain of engines
    (:class:`~rtl_gen.hw.network.EngineChain`, one image at a time).

    Parameters
    ----------
    net:
        The network.
    arrays:
        :func:`conv_arrays` (``None``: the defaults per scheme, one row).
    in_per_beat:
        1.
    counters, requant:
        As for :func:`plan_conv_chain`.

    Members
    -------
    i : In(stream.Signature(input code))
        The image in HWC order, one code a transfer, image after image.
    o, cls, cycles, layer_cycles:
        As for :class:`~rtl_gen.hw.network.EngineChain`; logits in index order.
    """

    plan = staticmethod(plan_conv_chain)

    @property
    def has_tr(self) -> bool:
        """Whether the network has term-revealing layers (and the ``tr_*`` control ports)."""
        return any(engine_cls.CONTROLS for _, engine_cls, _ in self._plan.stages)

    @property
    def arrays(self) -> tuple:
        """Each layer's array (``None`` for pooling and flatten)."""
        return self._plan.configs

    @property
    def in_per_beat(self) -> int:
        return 1

    def timings_for(self, control=None) -> tuple:
        """Each stage's cycle model (:func:`stage_timing`), under a run-time
        :class:`~rtl_gen.design.golden.TRControl` for the term-revealing layers."""
        if control is None:
            return self._plan.timings
        if not self.has_tr:
            raise ValueError("this network has no term-revealing layers to control")
        return tuple(stage_timing(ly, a, control)
                     for ly, a in zip(self._plan.net.layers, self._plan.configs, strict=True))

    @property
    def stage_intervals(self) -> tuple[int, ...]:
        """Model: each stage's cycles per image in steady state (:func:`stage_interval`)."""
        return tuple(stage_interval(t) for t in self._plan.timings)

    @property
    def interval(self) -> int:
        """Model: cycles between images in steady state (the slowest stage, or the input
        stream)."""
        return max([stage_interval(t) for t in self._plan.timings]
                   + [self._plan.net.input.features])

    def logit_order(self):
        return logit_order(self._plan.classes, 1, self._plan.cols)
