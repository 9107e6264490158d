"""Bit-serial conventional quantization in hardware: the bit-plane PE as a layer engine.

The baseline that term revealing is measured against (Kung et al.: conventional
quantization processed bit-serially on both operands): every weight and every activation is
split into its bit planes (``NUMERICS.md`` section 6) and the array forms one plane pair per
cycle, so a step of ``L`` inputs takes ``w_prec * a_prec`` cycles::

    i ──► input banks (kit): one word = L activations per row
                                │
    weight-plane ROM: per (tile, step, plane m) one bit of each of C x L weights
                                ▼
    BitSerialArray R x C (operands broadcast): each cycle, plane pair (m, k):
        PE (r, c) += ±popcount(W_c,m AND X_r,k) << (m + k)   (negative on a sign plane)
                                ▼
                  drain (kit) ──► credit FIFO ──► o

The same kit as the other integer engines (input banks, tile sequencer, credit FIFO, drain,
cycle counter).  Run-time precision (ports ``bp_w_bits``, ``bp_a_bits``, the host link's
registers ``BP_W_BITS``/``BP_A_BITS``, shared by every layer; 0, the reset value, or more
than a layer's width: its full width) keeps the most significant planes, latched when a
layer takes a batch; :mod:`rtl_gen.design.bitserial` is the golden model.

Cycle model: :meth:`rtl_gen.design.timing.LayerTiming.bit_serial` with ``planes = w_prec *
a_prec``, which the ``cycles`` output matches.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from amaranth import Cat, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..design.bitserial import bitserial_acc_range, effective_bits, weight_bits
from ..design.network import DenseLayer, Network
from ..design.timing import LayerTiming, network_interval
from .kit import (
    COUNTER_BITS,
    Engine,
    RequantPlan,
    delayed,
    input_banks,
    plan_requant,
    requant_thresholds,
    signed_bits,
    tile_sequencer,
)
from .layer import ArrayConfig, fifo_depth, int_back_end, int_fifo
from .network import ChainPlan, EngineChain, logit_order
from .pes.kit import popcount_of

__all__ = ["BITSERIAL_ARRAY_LATENCY", "BitSerialArray", "BitSerialLayerEngine",
           "BitSerialNetworkEngine", "BitSerialPlan", "PRECISION_BITS", "bitserial_array",
           "cycles_per_inference",
           "bitserial_timing", "plan_bitserial", "plan_bitserial_layer"]

#: Cycles from presenting a ``last`` plane pair to ``done`` (plane bits, popcount, shifted
#: term, accumulator).
BITSERIAL_ARRAY_LATENCY = 4
#: Width of the run-time precision ports (the host link's ``BP_W_BITS``/``BP_A_BITS``).
PRECISION_BITS = 16
#: Inputs per step of the default array: a term-revealing group (g = 16), so the bit-serial
#: and the term-revealing engines have the same shape.
DEFAULT_LANES = 16


def bitserial_array(lanes: int = DEFAULT_LANES, *, rows: int = 1, cols: int = 8) -> ArrayConfig:
    """The default array of a bit-serial layer: batch 1, 8 columns, 16 lanes (the shape of
    the term-revealing engine: ``R x C`` PEs, a step of one 16-input group)."""
    return ArrayConfig(rows=rows, cols=cols, lanes=lanes)


def bitserial_timing(layer: DenseLayer, array: ArrayConfig, w_prec: int | None = None,
                     a_prec: int | None = None) -> LayerTiming:
    """The cycle model of a layer on the bit-serial array at run-time precisions (``None``
    or 0: the layer's full widths)."""
    planes = (effective_bits(weight_bits(layer), w_prec)
              * effective_bits(layer.in_bits, a_prec))
    return LayerTiming.bit_serial(k=layer.in_features, n=layer.out_features, rows=array.rows,
                                  cols=array.cols, lanes=array.lanes, planes=planes,
                                  latency=BITSERIAL_ARRAY_LATENCY,
                                  requantize=layer.activation == "relu")


@dataclasses.dataclass(frozen=True)
class BitSerialPlan:
    """A validated layer on the bit-serial array (the fields the engine kit's back end
    reads, as :class:`~rtl_gen.hw.layer.LayerPlan`).

    Members
    -------
    layer, array, src_cols, timing, fifo_depth, requant, counters, in_per_beat:
        As for :class:`~rtl_gen.hw.layer.LayerPlan` (``timing`` at full precision;
        ``requant`` sized over every run-time precision).
    w_bits:
        The weights' two's complement width (:func:`~rtl_gen.design.bitserial.weight_bits`).
    """

    layer: DenseLayer
    array: ArrayConfig
    src_cols: int
    timing: LayerTiming
    fifo_depth: int
    requant: RequantPlan
    w_bits: int
    counters: bool = True
    in_per_beat: int = 1

    @property
    def is_tr(self) -> bool:
        return False

    def timing_for(self, w_prec=None, a_prec=None) -> LayerTiming:
        return bitserial_timing(self.layer, self.array, w_prec, a_prec)

    def every_timing(self) -> list[LayerTiming]:
        """The cycle model at every run-time precision pair."""
        return [self.timing_for(wp, ap) for wp in range(1, self.w_bits + 1)
                for ap in range(1, self.layer.in_bits + 1)]


def plan_bitserial_layer(layer: DenseLayer, array: ArrayConfig, *,
                         src_cols: int | None = None, counters: bool = True,
                         requant: str = "auto") -> BitSerialPlan:
    """Validate a layer on a bit-serial array and plan its engine (``src_cols``,
    ``counters``, ``requant``: as for :func:`~rtl_gen.hw.layer.plan_layer`)."""
    if not isinstance(layer, DenseLayer):
        raise TypeError(f"layer must be a DenseLayer, not {layer!r}")
    if not isinstance(array, ArrayConfig):
        raise TypeError(f"array must be an ArrayConfig, not {array!r}")
    if array.multiplier != "lut" or array.pipeline or array.drain_width != 1:
        raise ValueError(f"layer {layer.name!r}: a bit-serial array takes no multiplier, "
                         "pipeline or drain width options (its PEs are AND + popcount)")
    if not isinstance(counters, bool):
        raise TypeError(f"counters must be True or False, not {counters!r}")
    timing = bitserial_timing(layer, array)
    k = layer.in_features
    src = k if src_cols is None else min(int(src_cols), k)
    rq = plan_requant(layer, requant)
    lo, hi = bitserial_acc_range(layer)
    rq = dataclasses.replace(rq, lo=tuple(lo), hi=tuple(hi))
    if rq.method == "threshold":
        rq = dataclasses.replace(rq, thresholds=tuple(
            requant_thresholds(a, b, m, s, rq.out_bits)
            for a, b, m, s in zip(lo, hi, rq.mult, rq.shift, strict=True)))
    # the FIFO covers the most tiles in flight: at one plane pair per step
    depth = fifo_depth(dataclasses.replace(timing, slots=1), slack=2, spare=2)
    return BitSerialPlan(layer=layer, array=array, src_cols=src, timing=timing,
                         fifo_depth=depth, requant=rq, w_bits=weight_bits(layer),
                         counters=counters)


class BitSerialArray(wiring.Component):
    """``rows x cols`` bit-serial PEs of ``lanes`` lanes, operands broadcast.

    Each cycle every PE takes plane ``m`` of its column's ``L`` weights (read as a plane
    from the weight ROM) and plane ``k`` of its row's ``L`` activations, and adds
    ``±popcount(AND) << (m + k)`` (negative when exactly one of the planes is a sign plane)
    to its accumulator.

    Members
    -------
    x : In(ArrayLayout(ArrayLayout(x_shape, L), R))
    w : In(ArrayLayout(unsigned(L), C))
        Plane ``mi`` of each column's ``L`` weights.
    mi, ki : In
        The weight and activation planes of the step.
    valid, first, last : In(1)
    res : Out(ArrayLayout(signed(acc_bits), R * C))
    done : Out(1)
        :data:`BITSERIAL_ARRAY_LATENCY` cycles after the ``last`` plane pair is presented.
    """

    latency = BITSERIAL_ARRAY_LATENCY

    def __init__(self, *, rows: int, cols: int, lanes: int, x_shape, w_bits: int,
                 acc_bits: int):
        self._rows, self._cols, self._lanes = rows, cols, lanes
        self._x_shape = x_shape
        self._w_bits, self._acc_bits = w_bits, acc_bits
        a_bits = x_shape.width
        super().__init__({
            "x": In(data.ArrayLayout(data.ArrayLayout(x_shape, lanes), rows)),
            "w": In(data.ArrayLayout(unsigned(lanes), cols)),
            "mi": In(range(w_bits)), "ki": In(range(a_bits)),
            "valid": In(1), "first": In(1), "last": In(1),
            "res": Out(data.ArrayLayout(signed(acc_bits), rows * cols)),
            "done": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        rows, cols, lanes = self._rows, self._cols, self._lanes
        wb, ab = self._w_bits, self._x_shape.width
        acc_shape = signed(self._acc_bits)
        flags = data.StructLayout({"valid": 1, "first": 1, "last": 1})
        f1, f2, f3 = (Signal(flags, name=f"f{i}") for i in (1, 2, 3))
        m.d.sync += [f1.valid.eq(self.valid), f1.first.eq(self.first),
                     f1.last.eq(self.last), f2.eq(f1), f3.eq(f2)]
        m.d.sync += self.done.eq(f3.valid & f3.last)
        # stage 1: the planes of the step, the shift and the sign
        sh_range = range(wb + ab - 1)
        sh1 = Signal(sh_range, reset_less=True)
        neg1 = Signal(reset_less=True)
        sign = self.mi == wb - 1
        if self._x_shape.signed:
            sign = sign ^ (self.ki == ab - 1)
        m.d.sync += [sh1.eq(self.mi + self.ki), neg1.eq(sign)]
        xb = []
        for r in range(rows):
            v = Signal(lanes, name=f"xplane{r}", reset_less=True)
            m.d.sync += v.eq(Cat(Value.cast(self.x[r][lane]).bit_select(self.ki, 1)
                                 for lane in range(lanes)))
            xb.append(v)
        wbits = []
        for c in range(cols):
            v = Signal(lanes, name=f"wplane{c}", reset_less=True)
            m.d.sync += v.eq(self.w[c])
            wbits.append(v)
        # stage 2: AND + popcount per PE
        sh2 = Signal(sh_range, reset_less=True)
        neg2 = Signal(reset_less=True)
        m.d.sync += [sh2.eq(sh1), neg2.eq(neg1)]
        # stage 3: the shifted term, negated as ~v with the +1 carried into the adder
        neg3 = Signal(reset_less=True)
        m.d.sync += neg3.eq(neg2)
        for r in range(rows):
            for c in range(cols):
                anded = xb[r] & wbits[c]
                pc = Signal(range(lanes + 1), name=f"pc_{r}_{c}", reset_less=True)
                m.d.sync += pc.eq(popcount_of(m, [anded[i] for i in range(lanes)]))
                shifted = Signal(acc_shape, name=f"sh_{r}_{c}")
                m.d.comb += shifted.eq(pc << sh2)
                p = Signal(acc_shape, name=f"p_{r}_{c}", reset_less=True)
                m.d.sync += p.eq(shifted ^ neg2.replicate(len(shifted)))
                # stage 4: accumulate; the tile's last step lands in `res`
                acc = Signal(acc_shape, name=f"acc_{r}_{c}", reset_less=True)
                total = Mux(f3.first, 0, acc) + p + neg3
                with m.If(f3.valid):
                    m.d.sync += acc.eq(total)
                    with m.If(f3.last):
                        m.d.sync += self.res[r * cols + c].eq(total)
        return m


def _ports(plan: BitSerialPlan) -> dict:
    layer = plan.layer
    in_shape = signed(layer.in_bits) if layer.in_signed else unsigned(layer.in_bits)
    rq = plan.requant
    out_shape = unsigned(layer.out_bits) if layer.activation == "relu" else \
        signed(rq.acc_bits)
    return {"i": In(stream.Signature(in_shape)), "o": Out(stream.Signature(out_shape)),
            "cycles": Out(COUNTER_BITS),
            "bp_w_bits": In(PRECISION_BITS), "bp_a_bits": In(PRECISION_BITS)}


class BitSerialLayerEngine(Engine):
    """A dense integer layer on a :class:`BitSerialArray`; see the module docstring.

    Parameters
    ----------
    layer, array, src_cols, counters, requant:
        As for :class:`~rtl_gen.hw.layer.LayerEngine`; ``array.lanes`` inputs per step.

    Members
    -------
    i, o, cycles:
        As for :class:`~rtl_gen.hw.layer.LayerEngine` (a logit is as wide as the
        accumulator over every precision).
    bp_w_bits, bp_a_bits : In(16)
        Run-time precisions: the most significant planes processed (0: every plane).
    """

    CONTROLS: tuple[str, ...] = ("bp_w_bits", "bp_a_bits")

    plan = staticmethod(plan_bitserial_layer)
    ports = staticmethod(_ports)

    def timing_for(self, w_prec=None, a_prec=None) -> LayerTiming:
        return self._plan.timing_for(w_prec, a_prec)

    def weight_words(self) -> list[int]:
        """The weight-plane ROM: word ``(t * ks + s) * w_bits + m`` holds, in bit ``c * L +
        l``, bit ``m`` of the ``w_bits``-bit two's complement weight ``[t*C + c, s*L + l]``
        (0 where there is none)."""
        plan = self._plan
        t, wb = plan.timing, plan.w_bits
        w = np.asarray(plan.layer.w_int, np.int64)
        words = []
        for tile in range(t.tiles):
            for s in range(t.k_steps):
                for plane in range(wb):
                    word, pos = 0, 0
                    for c in range(t.cols):
                        for lane in range(t.lanes):
                            n, k = tile * t.cols + c, s * t.lanes + lane
                            if n < t.n and k < t.k:
                                word |= ((int(w[n, k]) >> plane) & 1) << pos
                            pos += 1
                    words.append(word)
        return words

    def elaborate(self, platform):
        m = Module()
        plan = self._plan
        layer, t = plan.layer, plan.timing
        rows, cols, lanes = t.rows, t.cols, t.lanes
        ks, nt = t.k_steps, t.tiles
        wb, ab = plan.w_bits, layer.in_bits

        banks = input_banks(m, self.i, rows=rows, lanes=lanes, a_bits=ab, ks=ks, k=t.k,
                            src_cols=plan.src_cols)
        # the banks' words are a whole step (L activations) wide and only 2 * ks deep:
        # block RAM, not the flip-flops Yosys would otherwise choose for so shallow a memory
        for r in range(rows):
            m.submodules[f"xbuf{r}"].attrs["ram_style"] = "block"
        m.submodules.rom = rom = Memory(shape=unsigned(cols * lanes), depth=nt * ks * wb,
                                        init=self.weight_words())
        x_shape = signed(ab) if layer.in_signed else unsigned(ab)
        rq = plan.requant
        r_lo = min(lo - b for lo, b in zip(rq.lo, rq.bias, strict=True))
        r_hi = max(hi - b for hi, b in zip(rq.hi, rq.bias, strict=True))
        m.submodules.array = array = BitSerialArray(
            rows=rows, cols=cols, lanes=lanes, x_shape=x_shape, w_bits=wb,
            acc_bits=signed_bits(r_lo, r_hi))
        rom_rd = rom.read_port()
        out = int_fifo(m, plan, self.o)

        # run-time precisions: the planes processed, latched with the batch
        def prec(port, own):
            return Mux((port == 0) | (port > own), own, port)

        w_lo_next = Signal(range(wb), name="w_lo_next")
        a_lo_next = Signal(range(ab), name="a_lo_next")
        planes_next = Signal(range(wb * ab + 1), name="planes_next")
        wp, ap = prec(self.bp_w_bits, wb), prec(self.bp_a_bits, ab)
        m.d.sync += [w_lo_next.eq(wb - wp), a_lo_next.eq(ab - ap), planes_next.eq(wp * ap)]
        max_period = max(ks * wb * ab, rows * cols + 1)
        w_lo = Signal(range(wb), name="w_lo")
        a_lo = Signal(range(ab), name="a_lo")
        n_issue = Signal(range(ks * wb * ab + 1), init=t.issue_cycles)
        period_v = Signal(range(max_period + 1), init=t.period)
        seq = tile_sequencer(m, banks.full, out.credit, tiles=nt, period=period_v,
                             step_range=max_period + 1, chain=False)
        with m.If(seq.batch_started):
            m.d.sync += [w_lo.eq(w_lo_next), a_lo.eq(a_lo_next),
                         n_issue.eq(planes_next * ks),
                         period_v.eq(Mux(planes_next * ks > rows * cols,
                                         planes_next * ks, rows * cols + 1))]

        # the group and plane pair being issued: planes from the sign plane down
        issue = Signal()
        grp = Signal(range(max(ks, 2)))
        mi = Signal(range(wb), init=wb - 1)
        ki = Signal(range(ab), init=ab - 1)
        m.d.comb += issue.eq(seq.running & ~seq.held & (seq.step < n_issue))
        banks.read(m, seq.cbank, grp)
        m.d.comb += rom_rd.addr.eq((seq.tile * ks + grp) * wb + mi)
        with m.If(issue):
            with m.If(ki == a_lo):
                m.d.sync += ki.eq(ab - 1)
                with m.If(mi == w_lo):
                    m.d.sync += [mi.eq(wb - 1), grp.eq(grp + 1)]
                with m.Else():
                    m.d.sync += mi.eq(mi - 1)
            with m.Else():
                m.d.sync += ki.eq(ki - 1)
        with m.If(seq.start_tile):
            m.d.sync += [grp.eq(0), mi.eq(wb - 1), ki.eq(ab - 1)]
        first = issue & (grp == 0) & (mi == wb - 1) & (ki == ab - 1)
        last = issue & (grp == ks - 1) & (mi == w_lo) & (ki == a_lo)

        # memories answer one cycle later: delay the step's flags and planes to match
        valid_d, first_d, last_d, mi_d, ki_d = delayed(m, issue, first, last, mi, ki,
                                                       name="step_d")
        m.d.comb += [array.valid.eq(valid_d), array.first.eq(first_d),
                     array.last.eq(last_d), array.mi.eq(mi_d), array.ki.eq(ki_d)]
        for r in range(rows):
            m.d.comb += array.x[r].as_value().eq(banks.data(r))
        for c in range(cols):
            m.d.comb += array.w[c].eq(rom_rd.data[c * lanes:(c + 1) * lanes])

        every = plan.every_timing()
        int_back_end(m, plan, t, array, out, seq, self.cycles,
                     in_flight=max(u.in_flight for u in every),
                     bound=max(u.batch_cycles for u in every))
        return m


def plan_bitserial(net: Network, arrays=None, *, counters: bool = True,
                   requant: str = "auto") -> ChainPlan:
    """Validate an integer network on bit-serial arrays (``None``: :func:`bitserial_array`
    for every layer; one :class:`~rtl_gen.hw.layer.ArrayConfig` per layer otherwise, every
    one with the same ``rows``).  Term-revealing settings of the layers are ignored: the
    engine processes every bit plane of the weights."""
    if not isinstance(net, Network):
        raise TypeError(f"net must be an integer Network, not {net!r}")
    arrays = tuple(bitserial_array() for _ in net.layers) if arrays is None else tuple(arrays)
    if len(arrays) != len(net.layers):
        raise ValueError(f"give one array configuration per layer ({len(net.layers)}), "
                         f"not {len(arrays)}")
    if len({a.rows for a in arrays}) != 1:
        raise ValueError("every layer's array must have the same number of rows (the "
                         f"batch), not {[a.rows for a in arrays]}")
    stages, src_cols = [], None
    for idx, (layer, array) in enumerate(zip(net.layers, arrays, strict=True)):
        if not isinstance(layer, DenseLayer):
            raise ValueError(f"the bit-serial engine runs dense layers; layer {idx} is not")
        p = plan_bitserial_layer(layer, array, src_cols=src_cols, counters=counters,
                                 requant=requant)
        stages.append((f"layer{idx}_{layer.name}", BitSerialLayerEngine, p))
        src_cols = array.cols
    inp = net.input
    code = signed(inp.bits) if inp.signed else unsigned(inp.bits)
    last = stages[-1][2]
    return ChainPlan(net=net, configs=arrays, stages=tuple(stages),
                     timings=tuple(p.timing for _, _, p in stages), in_shape=code,
                     out_shape=signed(last.requant.acc_bits),
                     classes=net.layers[-1].out_features, rows=arrays[0].rows,
                     cols=arrays[-1].cols)


class BitSerialNetworkEngine(EngineChain):
    """An integer network as a chain of :class:`BitSerialLayerEngine` (the conventional
    bit-serial baseline); the members of :class:`~rtl_gen.hw.network.EngineChain` and the
    run-time precision ports ``bp_w_bits``, ``bp_a_bits``."""

    plan = staticmethod(plan_bitserial)
    has_tr = False
    in_per_beat = 1

    def timings_for(self, w_prec=None, a_prec=None) -> tuple[LayerTiming, ...]:
        """The cycle model at run-time precisions (``None``/0: full)."""
        return tuple(p.timing_for(w_prec, a_prec) for _, _, p in self._plan.stages)

    @property
    def arrays(self) -> tuple[ArrayConfig, ...]:
        return self._plan.configs

    @property
    def interval(self) -> int:
        """Model: cycles between batches in steady state, at full precision."""
        return network_interval(self._plan.timings, self._plan.net.input.features)

    def interval_for(self, w_prec=None, a_prec=None) -> int:
        return network_interval(self.timings_for(w_prec, a_prec),
                                self._plan.net.input.features)

    def logit_order(self) -> np.ndarray:
        plan = self._plan
        return logit_order(plan.classes, plan.rows, plan.cols)


def cycles_per_inference(net: Network, arrays=None, w_prec=None, a_prec=None) -> float:
    """Model: steady-state cycles per image of ``net`` on bit-serial arrays."""
    arrays = tuple(bitserial_array() for _ in net.layers) if arrays is None else tuple(arrays)
    timings = [bitserial_timing(ly, a, w_prec, a_prec)
               for ly, a in zip(net.layers, arrays, strict=True)]
    return network_interval(timings, net.input.features) / arrays[0].rows

