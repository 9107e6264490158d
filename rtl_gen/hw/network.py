"""The whole network in hardware: layer engines chained by streams, logits and the class.

::

    i ──► engine 0 ──► engine 1 ──► … ──► engine L-1 ──► o (logits)
          (its own PE kind,   (streams with       └─► argmax ──► cls
           array shape, ROM)   back-pressure)

:class:`EngineChain` is the one chain both families use: a plan names each layer's engine
(:class:`~rtl_gen.hw.layer.LayerEngine`, :class:`~rtl_gen.hw.tr_layer.TRLayerEngine`,
:class:`~rtl_gen.hw.float_layer.FloatLayerEngine`) and its own plan; the chain connects
them, drives their run-time controls from its ports of the same names, counts cycles and
takes the argmax of the logits under the family's key.  :class:`NetworkEngine` (integer and
term-revealing layers) and :class:`~rtl_gen.hw.float_layer.FloatNetworkEngine` are the chain
with their planners.

Images enter as a stream of input codes, ``R`` images at a time (a batch: ``R`` is the
arrays' row count), image after image, feature after feature.  Logits leave in the last
layer's ``(tile, row, column)`` order: for tile ``t``, image ``r`` of the batch, channel
``t*C + c``; :func:`logit_order` gives that order so a host can put them back.  ``cls``
gives each image's class (the first index of the largest logit) in image order.

Every layer has its own weight scheme and array configuration, so a mixed-precision network
is just a bundle whose layers differ.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from amaranth import Array, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..design.golden import LayerTiming, network_interval
from ..design.network import Network
from .kit import COUNTER_BITS, Planned
from .layer import ArrayConfig, LayerEngine, layer_timing, plan_layer
from .pes.layers import default_array
from .tr_layer import TRLayerEngine

__all__ = ["ChainPlan", "EngineChain", "NetworkEngine", "default_array", "logit_order",
           "plan_network"]


def logit_order(n: int, rows: int, cols: int) -> np.ndarray:
    """``(image in batch, channel)`` of each logit in the order the network emits them."""
    order = []
    for t in range(-(-n // cols)):
        for r in range(rows):
            for c in range(cols):
                if t * cols + c < n:
                    order.append((r, t * cols + c))
    return np.array(order, dtype=np.int64)


def plan_network(net: Network, arrays=None, control=None, in_per_beat: int = 1):
    """Validate per-layer array configurations (``None``: :func:`default_array`) and give
    them with each layer's cycle model (term-revealing layers under the run-time
    ``control``, a :class:`~rtl_gen.design.golden.TRControl`; ``None``: the bundle's settings;
    the first layer fed ``in_per_beat`` input codes a cycle).

    Returns
    -------
    (tuple of ArrayConfig, tuple of LayerTiming)

    Raises
    ------
    TypeError, ValueError
        For a wrong number of configurations, differing row counts, or a layer the
        generator cannot build (the message names it).
    """
    if not isinstance(net, Network):
        raise TypeError(f"net must be a Network, not {net!r}")
    if arrays is None:
        arrays = [default_array(layer.scheme.kind, layer.tr is not None) for layer in net.layers]
    arrays = tuple(arrays)
    if len(arrays) != len(net.layers):
        raise ValueError(f"give one array configuration per layer ({len(net.layers)}), "
                         f"not {len(arrays)}")
    if len({a.rows for a in arrays}) != 1:
        raise ValueError("every layer's array must have the same number of rows (the "
                         f"batch), not {[a.rows for a in arrays]}")
    timings = tuple(dataclasses.replace(layer_timing(layer, a, control), in_per_beat=per)
                    for layer, a, per in zip(net.layers, arrays, chain_beats(arrays, in_per_beat),
                                             strict=True))
    return arrays, timings


def chain_beats(arrays, in_per_beat: int = 1) -> list[int]:
    """Codes each layer of a chain takes a transfer: the input port's ``in_per_beat`` for the
    first, the results the layer before drains a cycle (its ``drain_width``) for the
    others."""
    return [in_per_beat] + [a.drain_width for a in arrays[:-1]]


@dataclasses.dataclass(frozen=True)
class ChainPlan:
    """A validated network as a chain of layer engines.

    Members
    -------
    net:
        The network.
    configs:
        Each layer's configuration (:class:`ArrayConfig`, or a float layer's lanes).
    stages:
        ``(submodule name, engine class, engine plan)`` per layer.
    timings:
        Each layer's cycle model (under the bundle's own run-time settings).
    in_shape, out_shape:
        Shapes of an input activation and of a logit.
    classes:
        Logits per image.
    rows, cols:
        The batch, and the last engine's tile width: logits leave in its ``(tile, row,
        column)`` order.
    in_per_beat:
        Input activations per transfer on ``i`` (an array of them when more than one).
    """

    net: object
    configs: tuple
    stages: tuple
    timings: tuple
    in_shape: object
    out_shape: object
    classes: int
    rows: int
    cols: int
    in_per_beat: int = 1


def skid_link(m, up, down, *, name: str) -> None:
    """Connect the stream ``up`` (an engine's output) to ``down`` (the next one's input)
    through a skid buffer: ``down``'s data and ``valid`` and ``up``'s ``ready`` all come
    from registers, one transfer a cycle when ``down`` is always ready (a transfer taken
    while ``down`` stalls waits in the skid register)."""
    o_valid = Signal(name=f"{name}_valid")
    o_data = Signal.like(up.payload, name=f"{name}_data", reset_less=True)
    s_valid = Signal(name=f"{name}_skid_valid")
    s_data = Signal.like(up.payload, name=f"{name}_skid_data", reset_less=True)
    m.d.comb += [up.ready.eq(~s_valid), down.valid.eq(o_valid), down.payload.eq(o_data)]
    with m.If(down.ready | ~o_valid):
        with m.If(s_valid):
            m.d.sync += [o_valid.eq(1), o_data.eq(s_data), s_valid.eq(0)]
        with m.Else():
            m.d.sync += [o_valid.eq(up.valid), o_data.eq(up.payload)]
    with m.Elif(up.valid & ~s_valid):
        m.d.sync += [s_valid.eq(1), s_data.eq(up.payload)]


class EngineChain(Planned):
    """Layer engines chained by streams, with the logits' argmax; see the module docstring.

    Subclasses define ``plan`` (returning a :class:`ChainPlan`) and may override
    :meth:`key` (the argmax's order of logits).

    Members
    -------
    i : In(stream.Signature(input activation))
    o : Out(stream.Signature(logit))
    cls : Out(stream.Signature(class index, always_ready=True))
        Each image's class, the first index of the largest logit, two cycles after its
        last logit is read (the argmax is pipelined: key registered, then compared).
    cycles : Out(32)
        Clock cycles since reset.
    layer_cycles : Out(ArrayLayout(32, layers))
        Each layer's cycles for its last finished batch.
    tr_mode, tr_k, tr_s : In
        The run-time controls of the engines that have them (shared by all of them), when
        any has.
    """

    #: Each link between layers is a skid buffer (:func:`skid_link`): registers on both the
    #: data and ``ready``, so that no path runs from one layer's input banks into the
    #: previous layer's FIFO and credit logic (a path across the device in a large design).
    LINK_REGISTERS = False
    #: The logits leave through one more register (a chain whose last FIFO may be block
    #: RAM, whose output is too slow to compute a key from in the same cycle).
    OUTPUT_REGISTER = False

    @staticmethod
    def ports(plan: ChainPlan) -> dict:
        ports = {
            "i": In(stream.Signature(plan.in_shape)),
            "o": Out(stream.Signature(plan.out_shape)),
            "cls": Out(stream.Signature(range(max(plan.classes, 2)), always_ready=True)),
            "cycles": Out(COUNTER_BITS),
            "layer_cycles": Out(data.ArrayLayout(COUNTER_BITS, len(plan.stages))),
        }
        for _, engine_cls, engine_plan in plan.stages:
            members = engine_cls.ports(engine_plan)
            for name in engine_cls.CONTROLS:
                ports.setdefault(name, members[name])
        return ports

    @property
    def net(self):
        return self._plan.net

    @property
    def timings(self) -> tuple[LayerTiming, ...]:
        return self._plan.timings

    @property
    def rows(self) -> int:
        return self._plan.rows

    def key(self, m, value: Value) -> Value:
        """The argmax's key of a logit (larger wins; the first of equal keys wins): the
        logit itself."""
        return value

    @property
    def link_registers(self) -> bool:
        """Whether the links between layers are skid buffers (:attr:`LINK_REGISTERS`)."""
        return self.LINK_REGISTERS

    def elaborate(self, platform):
        m = Module()
        engines = []
        for idx, (name, engine_cls, engine_plan) in enumerate(self._plan.stages):
            engine = engine_cls.from_plan(engine_plan)
            m.submodules[name] = engine
            m.d.comb += self.layer_cycles[idx].eq(engine.cycles)
            for control in engine_cls.CONTROLS:
                m.d.comb += getattr(engine, control).eq(getattr(self, control))
            engines.append(engine)
        wiring.connect(m, wiring.flipped(self.i), engines[0].i)
        for idx, (a, b) in enumerate(zip(engines, engines[1:], strict=False)):
            if self.link_registers:
                skid_link(m, a.o, b.i, name=f"link{idx}")
            else:
                wiring.connect(m, a.o, b.i)
        last = engines[-1]
        if self.OUTPUT_REGISTER:
            # one register on the logits' data (``ready`` passes through): the argmax and
            # the port start from a flip-flop, not from the logit FIFO's memory
            valid = Signal(name="o_valid")
            payload = Signal.like(last.o.payload, name="o_payload", reset_less=True)
            m.d.comb += [last.o.ready.eq(~valid | self.o.ready),
                         self.o.valid.eq(valid), self.o.payload.eq(payload)]
            with m.If(last.o.ready):
                m.d.sync += [valid.eq(last.o.valid), payload.eq(last.o.payload)]
        else:
            m.d.comb += [self.o.valid.eq(last.o.valid), self.o.payload.eq(last.o.payload),
                         last.o.ready.eq(self.o.ready)]
        m.d.sync += self.cycles.eq(self.cycles + 1)
        self._argmax(m)
        return m

    def _argmax(self, m) -> None:
        """The argmax over each image's logits, which arrive tile by tile, rows
        interleaved, in two stages: the first registers each transferred logit's key with
        its image (row), channel and whether it is the image's first or last; the second
        compares the registered key with the image's best so far (so the compare starts
        from registers, not from the logit FIFO's read port) and gives the class a cycle
        later, two cycles after the image's last logit is read."""
        n, rows, cols = self._plan.classes, self._plan.rows, self._plan.cols
        k = Value.cast(self.key(m, Value.cast(self.o.payload)))
        key = Signal(k.shape(), name="key")
        m.d.comb += key.eq(k)
        ch = Signal(range(n + cols + 1))
        r_i = Signal(range(max(rows, 2))) if rows > 1 else 0
        done = ch == n - 1
        # stage 1: the transfer's key, row, channel, first and last flags, registered
        key_r = Signal(key.shape(), name="key_r", reset_less=True)
        ch_r = Signal(range(max(n, 2)), name="ch_r", reset_less=True)
        row_r = Signal(range(max(rows, 2)), name="row_r", reset_less=True) if rows > 1 else 0
        first_r = Signal(name="first_r", reset_less=True)
        done_r = Signal(name="done_r", reset_less=True)
        took_r = Signal(name="took_r")
        fire = self.o.valid & self.o.ready
        m.d.sync += took_r.eq(fire)
        with m.If(fire):
            m.d.sync += [key_r.eq(key), ch_r.eq(ch), first_r.eq(ch == 0), done_r.eq(done)]
            if rows > 1:
                m.d.sync += row_r.eq(r_i)
            if rows == 1:  # channel order
                m.d.sync += ch.eq(Mux(done, 0, ch + 1))
            else:
                t_i = Signal(range(max(-(-n // cols), 2)))
                c_i = Signal(range(max(cols, 2)))
                m.d.comb += ch.eq(t_i * cols + c_i)
                with m.If((c_i == cols - 1) | done):
                    m.d.sync += c_i.eq(0)
                    with m.If(r_i == rows - 1):
                        m.d.sync += [r_i.eq(0), t_i.eq(Mux(done, 0, t_i + 1))]
                    with m.Else():
                        m.d.sync += r_i.eq(r_i + 1)
                with m.Else():
                    m.d.sync += c_i.eq(c_i + 1)
        # stage 2: compare with the image's best so far (updated here only, so the next
        # logit of the same image, a cycle later, sees it)
        best = Array(Signal(key.shape(), name=f"best{r}", reset_less=True)
                     for r in range(rows))
        arg = Array(Signal(range(max(n, 2)), name=f"arg{r}", reset_less=True)
                    for r in range(rows))
        # key_r > best as the sign of best - key_r: one carry chain, its last sum the answer
        diff = Signal(signed(len(key_r) + 1), name="best_minus_key")
        m.d.comb += diff.eq(best[row_r].as_signed() - key_r.as_signed()
                            if key_r.shape().signed else best[row_r] - key_r)
        better = first_r | diff[-1]
        with m.If(took_r):
            with m.If(better):
                m.d.sync += [best[row_r].eq(key_r), arg[row_r].eq(ch_r)]
            m.d.sync += [self.cls.valid.eq(done_r),
                         self.cls.payload.eq(Mux(better, ch_r, arg[row_r]))]
        with m.Else():
            m.d.sync += self.cls.valid.eq(0)


def plan_chain(net: Network, arrays=None, in_per_beat: int = 1, *, counters: bool = True,
               requant: str = "auto") -> ChainPlan:
    """Validate an integer network on per-layer arrays (:func:`plan_network`) and choose each
    layer's engine: :class:`~rtl_gen.hw.tr_layer.TRLayerEngine` for a term-revealing layer,
    :class:`~rtl_gen.hw.layer.LayerEngine` for the others.  ``in_per_beat``: input codes the
    port ``i`` takes per cycle (a power of two dividing the first layer's lanes and inputs;
    :func:`rtl_gen.hw.planner.plan_folding` chooses it).  ``counters`` and ``requant``: as
    for :func:`~rtl_gen.hw.layer.plan_layer`, for every layer."""
    arrays, timings = plan_network(net, arrays, in_per_beat=in_per_beat)
    stages = []
    src_cols = None
    for idx, (layer, array, per) in enumerate(zip(net.layers, arrays,
                                                  chain_beats(arrays, in_per_beat),
                                                  strict=True)):
        # after a wide drain (one row: its tiles' order is the channels') row-major
        p = plan_layer(layer, array, src_cols=src_cols if per == 1 or idx == 0 else None,
                       counters=counters, requant=requant, in_per_beat=per)
        stages.append((f"layer{idx}_{layer.name}", TRLayerEngine if p.is_tr else LayerEngine,
                       p))
        src_cols = array.cols
    inp, last = net.input, net.layers[-1]
    code = signed(inp.bits) if inp.signed else unsigned(inp.bits)
    return ChainPlan(net=net, configs=arrays, stages=tuple(stages), timings=timings,
                     in_shape=data.ArrayLayout(code, in_per_beat) if in_per_beat > 1 else code,
                     out_shape=signed(last.acc_bits), classes=last.out_features,
                     rows=arrays[0].rows, cols=arrays[-1].cols, in_per_beat=in_per_beat)


class NetworkEngine(EngineChain):
    """A :class:`~rtl_gen.design.network.Network` as a chain of layer engines
    (:class:`EngineChain`).

    Parameters
    ----------
    net:
        The network (from a weight bundle).
    arrays:
        One :class:`ArrayConfig` per layer, or ``None`` for :func:`default_array`; every
        layer must have the same ``rows`` (the batch).
    counters:
        Each layer counts its batches' cycles (``layer_cycles``; without, they read 0 and
        the layers have no counter logic).  ``cycles`` (since reset) is always there.
    requant:
        Hidden layers' requantizers: ``"auto"`` (default), ``"multiply"`` or
        ``"threshold"`` (see :func:`~rtl_gen.hw.kit.plan_requant`).
    in_per_beat:
        ``P``, input codes per transfer on ``i`` (default 1).

    Members
    -------
    i : In(stream.Signature(input code, or ArrayLayout(input code, P) when P > 1))
        Codes image after image, feature after feature; with ``P > 1`` each transfer holds
        ``P`` consecutive codes, the first in element 0.
    o : Out(stream.Signature(signed(logit width)))
    cls, cycles, layer_cycles:
        As for :class:`EngineChain`; ``cls`` in image order.
    tr_mode, tr_k, tr_s : In
        Only with term-revealing layers (see :mod:`rtl_gen.hw.tr`).
    """

    plan = staticmethod(plan_chain)

    @property
    def has_tr(self) -> bool:
        """Whether the network has term-revealing layers (and the ``tr_*`` control ports)."""
        return any(engine_cls.CONTROLS for _, engine_cls, _ in self._plan.stages)

    @property
    def link_registers(self) -> bool:
        """Term-revealing networks link their layers through skid buffers: a layer's input
        banks wait for their front end's last writes (the data-term unit), and that wait
        would otherwise reach through the previous layer's FIFO into its credit logic."""
        return self.LINK_REGISTERS or self.has_tr

    def timings_for(self, control=None) -> tuple[LayerTiming, ...]:
        """The cycle model under a run-time :class:`~rtl_gen.design.golden.TRControl`."""
        return plan_network(self._plan.net, self._plan.configs, control,
                            self._plan.in_per_beat)[1]

    @property
    def arrays(self) -> tuple[ArrayConfig, ...]:
        return self._plan.configs

    @property
    def in_per_beat(self) -> int:
        """Input codes per transfer on ``i``."""
        return self._plan.in_per_beat

    @property
    def interval(self) -> int:
        """Model: cycles between batches in steady state."""
        return network_interval(self._plan.timings, self._plan.net.input.features)

    def logit_order(self) -> np.ndarray:
        plan = self._plan
        return logit_order(plan.classes, plan.rows, plan.cols)
