"""Float layers in hardware: fp32 activations, MPWN weight spaces, reduced-float weights.

One dense :class:`~rtl_gen.design.float_network.FloatLayer` on ``C`` lanes (output channels in
parallel)::

    i (fp32 bits) ──► input buffer: K words, two banks (the next image loads meanwhile)
                            │ x_k, one a cycle, to every lane
    weight ROM ────────────►│ one word of C codes a cycle (codes [t*C + c, k])
                            ▼
     lane c:  PE (x_k (x) w) ──► product register ──► acc <= FloatAdd(first ? +0 : acc, p)
                            │ after the tile's last product: the C sums into a shift register
                            ▼
     tail, one result a cycle:  [FloatMul by alpha_n] ──► FloatAdd bias_n ──► ReLU (sign bit)
                            ▼
                 output FIFO ──► o (fp32 bits, channel order, back-pressure)

The product of each weight space comes from a *processing element* of
:mod:`rtl_gen.hw.pes.floats` (one interface, :func:`pe_signature`: ``x`` the fp32 activation,
``w`` the weight code, ``p`` the fp32 product, combinational; :func:`make_pe` picks it by
weight space: an fp32 or minifloat multiplier, a sign flip for binary, a sign flip and a mask
for ternary).

So a binary or ternary layer has no multiplier in its lanes: its only multiplier is the
tail's, for the per-output scale ``alpha``.  The order of every fp32 operation is the
golden model's (:func:`rtl_gen.design.float_network.layer_forward`): ``k = 0 .. K-1`` one
after another into one accumulator per output, then the scale, then the bias, then ReLU.

An image's ``N`` outputs are computed in ``ceil(N / C)`` tiles of ``C`` channels; a tile
issues its ``K`` steps one a cycle and a new tile starts every ``P = max(K, C)`` cycles
(the tail reads one sum a cycle and must have read them all before the next tile's land).
The output FIFO holds every result that can be in flight; a tile starts only when the FIFO
has room for its results (a credit count), so the lanes never overrun a stalled consumer,
and without back-pressure they never wait.  The input banks, the sequencer, the credit FIFO,
the tail's walk over the sums and the cycle counter are the engine kit's
(:mod:`rtl_gen.hw.kit`), as in :class:`~rtl_gen.hw.layer.LayerEngine`.

Cycle model (:meth:`rtl_gen.design.timing.LayerTiming.float_lanes`, exact when nothing
downstream stalls: array latency 1, drain stages ``tail_stages``, no pickup cycle): the
sequencer takes an image in cycle 0 (the cycle its last tile ends, when the next image is
already buffered, else the first cycle after both are true) and issues step ``s`` of tile
``t`` in cycle ``1 + t*P + s``; memories answer a cycle later, the product is registered,
and the sum of step ``s`` is formed in cycle ``3 + t*P + s``.  The tail reads channel ``c``
of the tile in cycle ``t*P + K + 3 + c`` and writes it to the FIFO ``tail_stages`` cycles
later (3 with a scale, else 2).  The ``cycles`` output counts from the cycle the image is
taken to the cycle its last result enters the FIFO, both included::

    batch_cycles = (tiles - 1) * P + K + 3 + last_cols + tail_stages
    interval     = tiles * P           (cycles between images when the next one is waiting)

with ``last_cols = N - (tiles - 1) * C`` the channels of the last tile.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from amaranth import Module, Mux, Signal, unsigned
from amaranth.lib import stream
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..design.float_network import FloatLayer, FloatNetwork
from ..design.timing import LayerTiming, network_interval
from ..numerics.floatops import BINARY32
from .fpu import FloatAdd, FloatMul
from .kit import (
    COUNTER_BITS,
    Engine,
    batch_counter,
    column_words,
    credit_fifo,
    delayed,
    drain_sequencer,
    input_banks,
    tile_results,
    tile_sequencer,
)
from .layer import fifo_depth
from .network import ChainPlan, EngineChain
from .pes.floats import FloatMulPE, TernaryPE, XorSignPE, make_pe, pe_signature, weight_bits

__all__ = [
    "DEFAULT_FLOAT_LANES",
    "FloatLayerEngine",
    "FloatLayerPlan",
    "FloatMulPE",
    "FloatNetworkEngine",
    "TernaryPE",
    "XorSignPE",
    "layer_timing",
    "make_pe",
    "pe_signature",
    "weight_bits",
]

#: Lanes (output channels in parallel) of a float layer unless told otherwise.
DEFAULT_FLOAT_LANES = 8

#: fp32 activations and results.
F32 = 32


# -- the cycle model and the plan --------------------------------------------------------------


def layer_timing(layer: FloatLayer, lanes: int) -> LayerTiming:
    """The cycle model of a float layer on ``lanes`` lanes
    (:meth:`~rtl_gen.design.timing.LayerTiming.float_lanes`)."""
    return LayerTiming.float_lanes(k=layer.in_features, n=layer.out_features, lanes=lanes,
                                   scaled=layer.scale is not None)


def check_lanes(lanes) -> int:
    """``lanes`` as an ``int`` 1..256, or :class:`ValueError`."""
    if isinstance(lanes, bool) or not isinstance(lanes, (int, np.integer)) \
            or not 1 <= lanes <= 256:
        raise ValueError(f"lanes must be an integer 1..256, not {lanes!r}")
    return int(lanes)


@dataclasses.dataclass(frozen=True)
class FloatLayerPlan:
    """A validated float layer on ``lanes`` lanes: what its engine is built from."""

    layer: FloatLayer
    lanes: int
    timing: LayerTiming
    w_bits: int
    fifo_depth: int
    #: Whether the engine counts each image's cycles (``cycles``; without, it reads 0).
    counters: bool = True


def plan_float_layer(layer: FloatLayer, lanes: int = DEFAULT_FLOAT_LANES, *,
                     counters: bool = True) -> FloatLayerPlan:
    """Validate a float layer on ``lanes`` lanes and plan its engine (``counters``: count
    each image's cycles on the ``cycles`` port, else it reads 0).

    Raises
    ------
    TypeError, ValueError
        For something other than a :class:`~rtl_gen.design.float_network.FloatLayer`, or
        lanes out of range.
    """
    if not isinstance(layer, FloatLayer):
        raise TypeError(f"layer must be a FloatLayer, not {layer!r}")
    lanes = check_lanes(lanes)
    if not isinstance(counters, bool):
        raise TypeError(f"counters must be True or False, not {counters!r}")
    t = layer_timing(layer, lanes)
    return FloatLayerPlan(layer=layer, lanes=lanes, timing=t,
                          w_bits=weight_bits(layer.space, layer.weight_format),
                          fifo_depth=fifo_depth(t, slack=6, spare=0), counters=counters)


# -- the layer engine --------------------------------------------------------------------------


class FloatLayerEngine(Engine):
    """A :class:`~rtl_gen.design.float_network.FloatLayer` on ``lanes`` PEs; see the module
    docstring.  Built on the engine kit (:mod:`rtl_gen.hw.kit`): input banks, a chained tile
    sequencer (the next image is taken in the cycle the last tile ends), credit FIFO and
    cycle counter, around the lanes and the fp32 tail.

    Parameters
    ----------
    layer:
        The layer (weight space, codes, scale, bias, activation).
    lanes:
        ``C``, output channels computed in parallel (one PE and one fp32 adder each).

    Members
    -------
    i : In(stream.Signature(32))
        The image's fp32 activations, ``k = 0 .. K-1``, image after image.
    o : Out(stream.Signature(32))
        The fp32 results, channel ``0 .. N-1``, image after image.
    cycles : Out(32)
        Cycles of the last finished image (:attr:`LayerTiming.batch_cycles`).
    """

    plan = staticmethod(plan_float_layer)

    @staticmethod
    def ports(plan: FloatLayerPlan) -> dict:
        return {"i": In(stream.Signature(F32)), "o": Out(stream.Signature(F32)),
                "cycles": Out(COUNTER_BITS)}

    @property
    def layer(self) -> FloatLayer:
        return self._plan.layer

    def weight_words(self) -> list[int]:
        """The weight ROM: word ``t*K + k`` holds the code of weight ``[t*C + c, k]`` at bits
        ``c*w_bits`` (code 0 for channels beyond ``N``)."""
        plan = self._plan
        return column_words(plan.layer.codes.astype(np.int64), plan.timing, plan.w_bits)

    def elaborate(self, platform):
        m = Module()
        plan = self._plan
        layer, t = plan.layer, plan.timing
        K, N, C, nt, P = t.k, t.n, t.cols, t.tiles, t.period
        wb = plan.w_bits

        banks = input_banks(m, self.i, rows=1, lanes=1, a_bits=F32, ks=K, k=K, src_cols=K)
        m.submodules.rom = rom = Memory(shape=C * wb, depth=nt * K, init=self.weight_words())
        rom_rd = rom.read_port()
        out = credit_fifo(m, self.o, width=F32, depth=plan.fifo_depth, need=C)
        seq = tile_sequencer(m, banks.full, out.credit, tiles=nt, period=P, step_range=P,
                             chain=True)
        issue, first, last = seq.steps(m, K)
        banks.read(m, seq.cbank, seq.step)
        m.d.comb += rom_rd.addr.eq(seq.tile * K + seq.step)

        # memories answer a cycle later; the products are registered; then the sums
        v1, f1, l1 = delayed(m, issue, first, last, name="step_d")
        v2, f2, l2 = delayed(m, v1, f1, l1, name="prod_d")
        hold = []
        sums = []
        for c in range(C):
            pe = make_pe(layer.space, layer.weight_format)
            m.submodules[f"pe{c}"] = pe
            m.d.comb += [pe.x.eq(banks.data(0)), pe.w.eq(rom_rd.data[c * wb:(c + 1) * wb])]
            prod = Signal(F32, name=f"prod{c}", reset_less=True)
            m.d.sync += prod.eq(pe.p)
            acc = Signal(F32, name=f"acc{c}", reset_less=True)
            m.submodules[f"add{c}"] = add = FloatAdd(BINARY32)
            m.d.comb += [add.a.eq(Mux(f2, 0, acc)), add.b.eq(prod)]
            with m.If(v2):
                m.d.sync += acc.eq(add.o)
            sums.append(add.o)
            hold.append(Signal(F32, name=f"hold{c}", reset_less=True))

        # -- tail: one sum a cycle out of the shift register --------------------------------
        drain = drain_sequencer(m, l2, rows=1, cols=C, tiles=nt, n=N)
        with m.If(l2):
            m.d.sync += [h.eq(s) for h, s in zip(hold, sums, strict=True)]
        with m.Elif(drain.active):
            m.d.sync += [h.eq(nh) for h, nh in zip(hold[:-1], hold[1:], strict=True)]
        slots = nt * C

        def table(values, name):
            init = [int(v) for v in values] + [0] * (slots - len(values))
            mem = Memory(shape=F32, depth=slots, init=init)
            m.submodules[name] = mem
            return mem.read_port()

        a_val = Signal(F32, reset_less=True)
        a_ok = Signal()
        a_n = Signal(range(slots + 1), reset_less=True)
        m.d.sync += [a_val.eq(hold[0]), a_ok.eq(drain.ok), a_n.eq(drain.n_idx)]
        bias_rd = table(layer.bias, "bias_rom")
        if layer.scale is not None:
            scale_rd = table(layer.scale, "scale_rom")
            m.d.comb += [scale_rd.addr.eq(drain.n_idx), bias_rd.addr.eq(a_n)]
            m.submodules.scale_mul = smul = FloatMul(BINARY32)
            m.d.comb += [smul.a.eq(a_val), smul.b.eq(scale_rd.data)]
            b_val = Signal(F32, reset_less=True)
            b_ok = Signal()
            m.d.sync += [b_val.eq(smul.o), b_ok.eq(a_ok)]
        else:
            m.d.comb += bias_rd.addr.eq(drain.n_idx)
            b_val, b_ok = a_val, a_ok
        m.submodules.bias_add = badd = FloatAdd(BINARY32)
        m.d.comb += [badd.a.eq(b_val), badd.b.eq(bias_rd.data)]
        y = Signal(F32, reset_less=True)
        y_ok = Signal()
        if layer.activation == "relu":
            m.d.sync += y.eq(Mux(badd.o[F32 - 1], 0, badd.o))
        else:
            m.d.sync += y.eq(badd.o)
        m.d.sync += y_ok.eq(b_ok)
        m.d.comb += [out.w_data.eq(y), out.w_en.eq(y_ok)]
        out.reserve(m, seq.start_tile, tile_results(1, C, N, nt)[seq.next_tile])
        if plan.counters:
            batch_counter(m, self.cycles, started=seq.batch_started, written=out.w_en,
                          per_batch=N, in_flight=t.in_flight, bound=t.batch_cycles)
        return m


# -- the network --------------------------------------------------------------------------------


def plan_float_network(net: FloatNetwork, lanes=None, *, counters: bool = True) -> ChainPlan:
    """Validate a float network on per-layer lanes (one integer for every layer or one per
    layer; ``None``: :data:`DEFAULT_FLOAT_LANES`) and plan its chain of
    :class:`FloatLayerEngine` (``counters``: each layer counts its images' cycles), or of
    :class:`~rtl_gen.hw.exact_float.ExactLayerEngine` for a network on the exact
    accumulation contract, where a layer's entry may also be an
    :class:`~rtl_gen.hw.exact_float.ExactShape` (inputs a step, results a cycle; each
    layer's input takes the previous layer's results as they come; the last drains one).

    Raises
    ------
    TypeError, ValueError
        For something other than a :class:`~rtl_gen.design.float_network.FloatNetwork`, a
        wrong number of lane counts, or one out of range.
    """
    if not isinstance(net, FloatNetwork):
        raise TypeError(f"net must be a FloatNetwork, not {net!r}")
    if lanes is None:
        lanes = DEFAULT_FLOAT_LANES
    from .exact_float import ExactShape

    if isinstance(lanes, (int, np.integer, ExactShape)) and not isinstance(lanes, bool):
        lanes = [lanes] * len(net.layers)
    lanes = tuple(lanes)
    if len(lanes) != len(net.layers):
        raise ValueError(f"give one lane count per layer ({len(net.layers)}), not "
                         f"{len(lanes)}")
    if net.accumulation == "exact":
        from .exact_float import ExactLayerEngine, plan_exact_layer

        engine = ExactLayerEngine
        shapes = [ExactShape.of(c) for c in lanes]
        if shapes[-1].drain != 1:
            raise ValueError(f"the last layer drains one logit a cycle, not "
                             f"{shapes[-1].drain}")
        plans = tuple(plan_exact_layer(layer, shape, net.window, counters=counters,
                                       in_per_beat=1 if i == 0 else shapes[i - 1].drain)
                      for i, (layer, shape) in enumerate(zip(net.layers, shapes, strict=True)))
    else:
        if any(isinstance(c, ExactShape) for c in lanes):
            raise ValueError("inputs a step and results a cycle (an ExactShape) need a "
                             "network on the exact accumulation contract")
        engine = FloatLayerEngine
        plans = tuple(plan_float_layer(layer, c, counters=counters)
                      for layer, c in zip(net.layers, lanes, strict=True))
    stages = tuple((f"layer{idx}_{p.layer.name}", engine, p)
                   for idx, p in enumerate(plans))
    return ChainPlan(net=net, configs=tuple(p.lanes for p in plans), stages=stages,
                     timings=tuple(p.timing for p in plans), in_shape=unsigned(F32),
                     out_shape=unsigned(F32), classes=net.classes, rows=1, cols=plans[-1].lanes)


class FloatNetworkEngine(EngineChain):
    """A :class:`~rtl_gen.design.float_network.FloatNetwork` as a chain of
    :class:`FloatLayerEngine` (:class:`~rtl_gen.hw.network.EngineChain`).

    Images enter as fp32 bit patterns, image after image, feature after feature; logits
    leave in channel order, image after image, through one register; ``cls`` gives each
    image's class, the first index of the largest logit by value (the key of
    :func:`rtl_gen.design.float_network.float_key`: ``+0`` and ``-0`` tie), two cycles after
    its last logit is read.

    Parameters
    ----------
    net:
        The network.
    lanes:
        Lanes per layer: one integer for every layer or one per layer (default
        :data:`DEFAULT_FLOAT_LANES`).
    counters:
        Each layer counts its images' cycles (``layer_cycles``); without, they read 0.

    Members
    -------
    i : In(stream.Signature(32))
    o : Out(stream.Signature(32))
    cls : Out(stream.Signature(class index, always_ready=True))
    cycles : Out(32)
        Clock cycles since reset.
    layer_cycles : Out(ArrayLayout(32, layers))
        Each layer's cycles for its last finished image (see :class:`FloatLayerEngine`).
    """

    plan = staticmethod(plan_float_network)
    #: An exact layer's logit FIFO is block RAM when its tiles are short (the ECP5's 5.8 ns
    #: clock-to-out left 4 ns for the key's negation: 83-94 MHz); one register before it.
    OUTPUT_REGISTER = True
    #: Exact layers several results a cycle wide are large; their links are skid buffers
    #: (the stream from one layer's input banks into the previous one's credit logic set
    #: 94 MHz on the LFE5U-85F).
    LINK_REGISTERS = True

    @property
    def lanes(self) -> tuple[int, ...]:
        return self._plan.configs

    @property
    def interval(self) -> int:
        """Model: cycles between images in steady state."""
        return network_interval(self._plan.timings, self._plan.net.in_features)

    def key(self, m, value):
        """By value: ``+magnitude``, or ``-magnitude`` for a set sign bit (``+0`` and ``-0``
        tie)."""
        mag = value[:F32 - 1]
        return Mux(value[F32 - 1], -mag, mag)
