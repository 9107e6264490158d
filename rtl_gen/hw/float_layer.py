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

The product of each weight space comes from a *processing element* with one interface
(:func:`pe_signature`: ``x`` the fp32 activation, ``w`` the weight code, ``p`` the fp32
product, combinational):

=============== ===================== =================================================
space           PE                    product
=============== ===================== =================================================
``float``       :class:`FloatMulPE`   fp32 x fp32 (:class:`~rtl_gen.hw.fpu.FloatMul`)
``E4M3`` ...    :class:`FloatMulPE`   fp32 x minifloat, the weight widened exactly
``binary``      :class:`XorSignPE`    sign flip (XOR signed-bits), no multiplier
``ternary``     :class:`TernaryPE`    sign flip and magnitude mask, no multiplier
=============== ===================== =================================================

So a binary or ternary layer has no multiplier in its lanes: its only multiplier is the
tail's, for the per-output scale ``alpha``.  The order of every fp32 operation is the
golden model's (:func:`rtl_gen.design.float_network.layer_forward`): ``k = 0 .. K-1`` one after
another
into one accumulator per output, then the scale, then the bias, then ReLU.

An image's ``N`` outputs are computed in ``ceil(N / C)`` tiles of ``C`` channels; a tile
issues its ``K`` steps one a cycle and a new tile starts every ``P = max(K, C)`` cycles
(the tail reads one sum a cycle and must have read them all before the next tile's land).
The output FIFO holds every result that can be in flight; a tile starts only when the FIFO
has room for its results (a credit count, as in :class:`~rtl_gen.hw.layer.LayerEngine`),
so the lanes never overrun a stalled consumer, and without back-pressure they never wait.

Cycle model (:class:`FloatLayerTiming`, exact when nothing downstream stalls): the
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
import math

import numpy as np
from amaranth import Array, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..design.float_network import FloatLayer, FloatNetwork
from ..numerics.floatops import BINARY32
from .fpu import FloatAdd, FloatMul
from .layer import COUNTER_BITS
from .pes.floats import FloatMulPE, TernaryPE, XorSignPE, make_pe, pe_signature, weight_bits

__all__ = [
    "DEFAULT_FLOAT_LANES",
    "FloatLayerEngine",
    "FloatLayerTiming",
    "FloatMulPE",
    "FloatNetworkEngine",
    "TernaryPE",
    "XorSignPE",
    "float_network_interval",
    "make_pe",
    "pe_signature",
    "weight_bits",
]

#: Lanes (output channels in parallel) of a float layer unless told otherwise.
DEFAULT_FLOAT_LANES = 8

#: fp32 activations and results.
F32 = 32


# -- the cycle model ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FloatLayerTiming:
    """Cycle model of :class:`FloatLayerEngine` (see the module docstring); the hardware's
    ``cycles`` output equals :attr:`batch_cycles` when nothing downstream stalls.

    Parameters
    ----------
    k, n:
        Inputs and outputs of the layer.
    lanes:
        ``C``, output channels computed in parallel.
    scaled:
        Whether the tail multiplies by a per-output scale (binary and ternary layers).
    """

    k: int
    n: int
    lanes: int
    scaled: bool

    @property
    def tiles(self) -> int:
        """``ceil(N / C)``."""
        return math.ceil(self.n / self.lanes)

    @property
    def period(self) -> int:
        """``P = max(K, C)``: cycles between tile starts."""
        return max(self.k, self.lanes)

    @property
    def last_cols(self) -> int:
        """Channels of the last tile."""
        return self.n - (self.tiles - 1) * self.lanes

    @property
    def tail_stages(self) -> int:
        """Cycles from the tail reading a sum to its result entering the FIFO: the read
        register, the scale product (when scaled), the bias sum with ReLU."""
        return 3 if self.scaled else 2

    @property
    def batch_cycles(self) -> int:
        """From the cycle the sequencer takes an image to the cycle its last result enters
        the output FIFO, both counted: ``(tiles-1)*P + K + 3 + last_cols + tail_stages``."""
        return ((self.tiles - 1) * self.period + self.k + 3 + self.last_cols
                + self.tail_stages)

    @property
    def interval(self) -> int:
        """Cycles between images when the next one is waiting: ``tiles * P``."""
        return self.tiles * self.period

    @property
    def steady_interval(self) -> int:
        """Cycles between images fed one activation a cycle, at most: :attr:`interval`, or,
        when loading an image takes about as long as computing one, the input buffer's
        bound.  A bank is free again in the cycle the image in it has issued its last
        tile, and the image after next loads into it over ``K`` cycles more, so two images
        take at least ``interval + K + 1`` cycles: ``max(interval, ceil((interval + K +
        1) / 2))``."""
        return max(self.interval, -(-(self.interval + self.k + 1) // 2))

    @property
    def fifo_depth(self) -> int:
        """Output FIFO entries: the results of every tile that can hold credits when
        nothing stalls (a tile's credits return when its last result has been read)."""
        life = self.k + 3 + self.lanes + self.tail_stages + 4
        return self.lanes * (math.ceil(life / self.period) + 1)

    @property
    def in_flight(self) -> int:
        """Images whose start time the cycle counter must remember at once."""
        return math.ceil(self.batch_cycles / self.interval) + 1

    @property
    def products(self) -> int:
        """Products (multiply or sign operations) per image."""
        return self.k * self.n


def layer_timing(layer: FloatLayer, lanes: int) -> FloatLayerTiming:
    return FloatLayerTiming(k=layer.in_features, n=layer.out_features, lanes=lanes,
                            scaled=layer.scale is not None)


def float_network_interval(timings, input_features: int) -> int:
    """Cycles between images of a chained network in steady state: the slowest layer's
    :attr:`~FloatLayerTiming.steady_interval`, or the input stream (one activation a
    cycle) if that is slower."""
    return max([t.steady_interval for t in timings] + [input_features])


def _check_lanes(lanes) -> int:
    if isinstance(lanes, bool) or not isinstance(lanes, (int, np.integer)) \
            or not 1 <= lanes <= 256:
        raise ValueError(f"lanes must be an integer 1..256, not {lanes!r}")
    return int(lanes)


# -- the layer engine --------------------------------------------------------------------------


class FloatLayerEngine(wiring.Component):
    """A :class:`~rtl_gen.design.float_network.FloatLayer` on ``lanes`` PEs; see the module
    docstring.

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
        Cycles of the last finished image (:attr:`FloatLayerTiming.batch_cycles`).
    """

    def __init__(self, layer: FloatLayer, lanes: int = DEFAULT_FLOAT_LANES):
        try:
            if not isinstance(layer, FloatLayer):
                raise TypeError(f"layer must be a FloatLayer, not {layer!r}")
            lanes = _check_lanes(lanes)
        except (TypeError, ValueError):
            self._MustUse__used = True  # a refused design is not an unused one
            raise
        self._layer = layer
        self._timing = layer_timing(layer, lanes)
        self._w_bits = weight_bits(layer.space, layer.weight_format)
        super().__init__({
            "i": In(stream.Signature(F32)),
            "o": Out(stream.Signature(F32)),
            "cycles": Out(COUNTER_BITS),
        })

    @property
    def timing(self) -> FloatLayerTiming:
        return self._timing

    @property
    def layer(self) -> FloatLayer:
        return self._layer

    def weight_words(self) -> list[int]:
        """The weight ROM: word ``t*K + k`` holds the code of weight ``[t*C + c, k]`` at bits
        ``c*w_bits`` (code 0 for channels beyond ``N``)."""
        t, wb = self._timing, self._w_bits
        codes = self._layer.codes.astype(np.int64)
        words = []
        for tile in range(t.tiles):
            for k in range(t.k):
                word = 0
                for c in range(t.lanes):
                    n = tile * t.lanes + c
                    if n < t.n:
                        word |= int(codes[n, k]) << (c * wb)
                words.append(word)
        return words

    def elaborate(self, platform):
        m = Module()
        layer, t = self._layer, self._timing
        K, N, C, nt, P = t.k, t.n, t.lanes, t.tiles, t.period
        wb = self._w_bits

        # -- input buffer: two banks of K activations ----------------------------------------
        m.submodules.xbuf = xbuf = Memory(shape=F32, depth=2 * K, init=[])
        xw, xr = xbuf.write_port(), xbuf.read_port()
        full = Signal(2)            # bank holds a complete image
        wbank = Signal()            # bank the writer fills
        k_w = Signal(range(max(K, 2)))
        m.d.comb += [self.i.ready.eq(~full.bit_select(wbank, 1)),
                     xw.addr.eq(Mux(wbank, K, 0) + k_w), xw.data.eq(self.i.payload),
                     xw.en.eq(self.i.valid & self.i.ready)]
        with m.If(self.i.valid & self.i.ready):
            with m.If(k_w == K - 1):
                m.d.sync += [k_w.eq(0), wbank.eq(~wbank), full.bit_select(wbank, 1).eq(1)]
            with m.Else():
                m.d.sync += k_w.eq(k_w + 1)

        # -- weight ROM, output FIFO and the tile sequencer ---------------------------------
        m.submodules.rom = rom = Memory(shape=C * wb, depth=nt * K, init=self.weight_words())
        rom_rd = rom.read_port()
        depth = t.fifo_depth
        m.submodules.fifo = fifo = SyncFIFOBuffered(width=F32, depth=depth)
        space = Signal(range(depth + 1), init=depth)   # FIFO entries not yet promised
        credit = Signal()
        m.d.comb += credit.eq(space >= C)

        running, cbank = Signal(), Signal()
        tile = Signal(range(max(nt, 2)))
        step = Signal(range(max(P, 2)))
        start_tile, batch_started = Signal(), Signal()
        next_tile = Signal(range(max(nt, 2)))          # the tile a start begins
        at_end = Signal()
        m.d.comb += at_end.eq(running & (step == P - 1))
        new_bank = Mux(running, ~cbank, cbank)
        can_new = full.bit_select(new_bank, 1) & credit
        with m.If(~running):
            with m.If(can_new):
                m.d.comb += [start_tile.eq(1), batch_started.eq(1)]
                m.d.sync += [running.eq(1), tile.eq(0), step.eq(0)]
        with m.Elif(at_end):
            with m.If(tile == nt - 1):
                # the image is issued: free its bank, and take the next one if it waits
                m.d.sync += [full.bit_select(cbank, 1).eq(0), cbank.eq(~cbank)]
                with m.If(can_new):
                    m.d.comb += [start_tile.eq(1), batch_started.eq(1)]
                    m.d.sync += [tile.eq(0), step.eq(0)]
                with m.Else():
                    m.d.sync += running.eq(0)
            with m.Elif(credit):
                m.d.comb += [start_tile.eq(1), next_tile.eq(tile + 1)]
                m.d.sync += [tile.eq(tile + 1), step.eq(0)]
            # else: hold at the last step until the FIFO has room
        with m.Else():
            m.d.sync += step.eq(step + 1)
        # the writer and the sequencer may set and clear the two bits of `full` in one
        # cycle (different banks): Amaranth merges the two bit assignments.

        issue = Signal()
        m.d.comb += [issue.eq(running & (step < K)),
                     xr.addr.eq(Mux(cbank, K, 0) + step),
                     rom_rd.addr.eq(tile * K + step)]

        # memories answer a cycle later; the products are registered; then the sums
        v1, f1, l1 = Signal(), Signal(), Signal()
        v2, f2, l2 = Signal(), Signal(), Signal()
        m.d.sync += [v1.eq(issue), f1.eq(issue & (step == 0)), l1.eq(issue & (step == K - 1)),
                     v2.eq(v1), f2.eq(f1), l2.eq(l1)]

        hold = []
        sums = []
        for c in range(C):
            pe = make_pe(layer.space, layer.weight_format)
            m.submodules[f"pe{c}"] = pe
            m.d.comb += [pe.x.eq(xr.data), pe.w.eq(rom_rd.data[c * wb:(c + 1) * wb])]
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
        tail_on = Signal()
        t_col = Signal(range(max(C, 2)))
        t_tile = Signal(range(max(nt, 2)))             # tile of the sums in `hold`
        n_tile = Signal(range(max(nt, 2)))             # tile of the next sums to land
        with m.If(l2):
            m.d.sync += [h.eq(s) for h, s in zip(hold, sums, strict=True)]
            m.d.sync += [tail_on.eq(1), t_col.eq(0), t_tile.eq(n_tile),
                         n_tile.eq(Mux(n_tile == nt - 1, 0, n_tile + 1))]
        with m.Elif(tail_on):
            m.d.sync += [h.eq(nh) for h, nh in zip(hold[:-1], hold[1:], strict=True)]
            m.d.sync += t_col.eq(t_col + 1)
            with m.If(t_col == C - 1):
                m.d.sync += tail_on.eq(0)
        slots = nt * C
        n_idx = Signal(range(slots + 1))
        m.d.comb += n_idx.eq(t_tile * C + t_col)

        def table(values, name):
            init = [int(v) for v in values] + [0] * (slots - len(values))
            mem = Memory(shape=F32, depth=slots, init=init)
            m.submodules[name] = mem
            return mem.read_port()

        a_val = Signal(F32, reset_less=True)
        a_ok = Signal()
        a_n = Signal(range(slots + 1), reset_less=True)
        m.d.sync += [a_val.eq(hold[0]), a_ok.eq(tail_on & (n_idx < N)), a_n.eq(n_idx)]
        bias_rd = table(layer.bias, "bias_rom")
        if layer.scale is not None:
            scale_rd = table(layer.scale, "scale_rom")
            m.d.comb += [scale_rd.addr.eq(n_idx), bias_rd.addr.eq(a_n)]
            m.submodules.scale_mul = smul = FloatMul(BINARY32)
            m.d.comb += [smul.a.eq(a_val), smul.b.eq(scale_rd.data)]
            b_val = Signal(F32, reset_less=True)
            b_ok = Signal()
            m.d.sync += [b_val.eq(smul.o), b_ok.eq(a_ok)]
        else:
            m.d.comb += bias_rd.addr.eq(n_idx)
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
        m.d.comb += [fifo.w_data.eq(y), fifo.w_en.eq(y_ok)]

        # credits: reserve a tile's results when it starts, release them as they are read
        tile_cols = Array(Const(min(C, N - tt * C), range(C + 1)) for tt in range(nt))
        grant = Mux(start_tile, tile_cols[next_tile], 0)
        m.d.sync += space.eq(space - grant + (fifo.r_en & fifo.r_rdy))
        m.d.comb += [self.o.valid.eq(fifo.r_rdy), self.o.payload.eq(fifo.r_data),
                     fifo.r_en.eq(self.o.ready)]

        # -- image cycle counter: taken to last write ----------------------------------------
        now = Signal(COUNTER_BITS)
        m.d.sync += now.eq(now + 1)
        q = t.in_flight
        starts = Array(Signal(COUNTER_BITS, name=f"start{i}", reset_less=True)
                       for i in range(q))
        s_wr = Signal(range(max(q, 2)))
        s_rd = Signal(range(max(q, 2)))
        writes = Signal(range(N + 1))
        ending = Signal()
        m.d.comb += ending.eq(fifo.w_en & (writes == N - 1))
        with m.If(fifo.w_en):
            m.d.sync += writes.eq(Mux(ending, 0, writes + 1))
        with m.If(batch_started):
            m.d.sync += [starts[s_wr].eq(now), s_wr.eq(Mux(s_wr == q - 1, 0, s_wr + 1))]
        with m.If(ending):
            m.d.sync += [self.cycles.eq(now - starts[s_rd] + 1),
                         s_rd.eq(Mux(s_rd == q - 1, 0, s_rd + 1))]
        return m


# -- the network --------------------------------------------------------------------------------


def _plan_lanes(net: FloatNetwork, lanes) -> tuple[int, ...]:
    if not isinstance(net, FloatNetwork):
        raise TypeError(f"net must be a FloatNetwork, not {net!r}")
    if lanes is None:
        lanes = DEFAULT_FLOAT_LANES
    if isinstance(lanes, (int, np.integer)) and not isinstance(lanes, bool):
        lanes = [lanes] * len(net.layers)
    lanes = tuple(lanes)
    if len(lanes) != len(net.layers):
        raise ValueError(f"give one lane count per layer ({len(net.layers)}), not "
                         f"{len(lanes)}")
    return tuple(_check_lanes(v) for v in lanes)


class FloatNetworkEngine(wiring.Component):
    """A :class:`~rtl_gen.design.float_network.FloatNetwork` as a chain of
    :class:`FloatLayerEngine`.

    Images enter as fp32 bit patterns, image after image, feature after feature; logits
    leave in channel order, image after image; ``cls`` gives each image's class, the first
    index of the largest logit by value (the key of :func:`rtl_gen.design.float_network.float_key`:
    ``+0``
    and ``-0`` tie), a cycle after its last logit is read.

    Parameters
    ----------
    net:
        The network.
    lanes:
        Lanes per layer: one integer for every layer or one per layer (default
        :data:`DEFAULT_FLOAT_LANES`).

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

    def __init__(self, net: FloatNetwork, lanes=None):
        try:
            self._lanes = _plan_lanes(net, lanes)
        except (TypeError, ValueError):
            self._MustUse__used = True  # a refused design is not an unused one
            raise
        self._net = net
        self._timings = tuple(layer_timing(layer, c)
                              for layer, c in zip(net.layers, self._lanes, strict=True))
        super().__init__({
            "i": In(stream.Signature(F32)),
            "o": Out(stream.Signature(F32)),
            "cls": Out(stream.Signature(range(max(net.classes, 2)), always_ready=True)),
            "cycles": Out(COUNTER_BITS),
            "layer_cycles": Out(data.ArrayLayout(COUNTER_BITS, len(net.layers))),
        })

    @property
    def net(self) -> FloatNetwork:
        return self._net

    @property
    def lanes(self) -> tuple[int, ...]:
        return self._lanes

    @property
    def timings(self) -> tuple[FloatLayerTiming, ...]:
        return self._timings

    @property
    def interval(self) -> int:
        """Model: cycles between images in steady state."""
        return float_network_interval(self._timings, self._net.in_features)

    def elaborate(self, platform):
        m = Module()
        engines = []
        for idx, (layer, c) in enumerate(zip(self._net.layers, self._lanes, strict=True)):
            engine = FloatLayerEngine(layer, c)
            m.submodules[f"layer{idx}_{layer.name}"] = engine
            m.d.comb += self.layer_cycles[idx].eq(engine.cycles)
            engines.append(engine)
        wiring.connect(m, wiring.flipped(self.i), engines[0].i)
        for a, b in zip(engines, engines[1:], strict=False):
            wiring.connect(m, a.o, b.i)
        last = engines[-1]
        m.d.comb += [self.o.valid.eq(last.o.valid), self.o.payload.eq(last.o.payload),
                     last.o.ready.eq(self.o.ready)]
        m.d.sync += self.cycles.eq(self.cycles + 1)

        # argmax by value: key = +magnitude, or -magnitude for a set sign bit
        n = self._net.classes
        ch = Signal(range(max(n, 2)))
        key = Signal(signed(F32 + 1))
        value = self.o.payload
        mag = value[:F32 - 1]
        m.d.comb += key.eq(Mux(value[F32 - 1], -mag, mag))
        best = Signal(signed(F32 + 1), reset_less=True)
        arg = Signal(range(max(n, 2)), reset_less=True)
        better = (ch == 0) | (key > best)
        with m.If(self.o.valid & self.o.ready):
            with m.If(better):
                m.d.sync += [best.eq(key), arg.eq(ch)]
            done = ch == n - 1
            m.d.sync += [self.cls.valid.eq(done),
                         self.cls.payload.eq(Mux(better, ch, arg)),
                         ch.eq(Mux(done, 0, ch + 1))]
        with m.Else():
            m.d.sync += self.cls.valid.eq(0)
        return m
