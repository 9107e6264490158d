"""One dense layer in hardware: input buffer, weight ROM, systolic array, requantizer.

::

    i (stream of activations) ──► input buffer: R row memories, two banks (double buffer)
                                        │ one word of L activations per row per step
    weight ROM (from the bundle) ──────►│ one word of C x L codes per step
                                        ▼
                              SystolicArray R x C (output-stationary)
                                        │ res[r*C + c] after each tile
                                        ▼
                 drain: + bias, * M, + 2**(S-1), >> S, clamp (ReLU)   (logits: + bias only)
                                        ▼
                              output FIFO ──► o (stream, back-pressure)

A batch is ``R`` input vectors (row ``r`` of the array works on vector ``r``).  The layer's
``N`` outputs are computed in ``nt = ceil(N / C)`` tiles of ``C`` channels; a tile is
``ks = ceil(K / L)`` steps, issued every ``P = max(ks, R*C + 1)`` cycles (the drain reads
one result a cycle and must finish before the next tile's results land).  Activations
arrive in the producer's order ``(tile, row, column)`` of its own tile width, and leave in
this layer's ``(tile, row, column)`` order, so layers chain with no reordering buffer.

The output FIFO holds ``depth`` results; a tile starts only when the FIFO has room for
every result in flight (a credit count), so the array never overruns a stalled consumer,
and without back-pressure it never waits (the depth covers the tiles in flight).

The engine is built on the kit (:mod:`rtl_gen.hw.kit`): input banks, tile sequencer, credit
FIFO, drain and cycle counter; a term-revealing layer runs on
:class:`~rtl_gen.hw.tr_layer.TRLayerEngine`, the same kit around a term-pair array.

Cycle model (no back-pressure): :meth:`rtl_gen.design.timing.LayerTiming.systolic`, which this
module's ``cycles`` output matches exactly.
"""

from __future__ import annotations

import dataclasses
import math

from amaranth import Cat, Module, Signal, Value, signed, unsigned
from amaranth.lib import data, stream
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..design.golden import LayerTiming, TRControl
from ..design.network import DenseLayer
from .array import SystolicArray
from .kit import (
    COUNTER_BITS,
    Engine,
    RequantPlan,
    batch_counter,
    credit_fifo,
    delayed,
    drain_head,
    drain_select,
    drain_sequencer,
    input_banks,
    int_drain,
    plan_requant,
    tile_results,
    tile_sequencer,
)
from .pe import MULTIPLIERS, PEConfig
from .pes.layers import layer_pe
from .tr import TR_ARRAY_LATENCY, check_read, tr_per_cycle, tr_slots, tr_used_terms

__all__ = ["ArrayConfig", "LayerEngine", "LayerPlan", "plan_layer"]

@dataclasses.dataclass(frozen=True)
class ArrayConfig:
    """How one layer is laid out in hardware (frozen; variants by ``replace``).

    Parameters
    ----------
    rows:
        ``R``, input vectors processed together (the batch); the same for every layer.
    cols:
        ``C``, output channels per tile.
    lanes:
        ``L`` (a power of two), products per PE per cycle.
    multiplier:
        ``int`` layers: ``"lut"`` or ``"dsp"``.
    pipeline:
        Extra register stages inside each PE.
    tr_terms:
        Term-revealing layers only (others ignore it): weight terms each PE adds a cycle.
        1 (default): the slot-serial PE (:class:`~rtl_gen.hw.tr.TRArray`); ``P > 1``: the
        group-per-cycle PE (:class:`~rtl_gen.hw.tr.TRGroupArray`) with ``P`` term adders;
        0: that PE with as many as the layer's budget ``k`` (one group a cycle at the
        bundle's setting).
    window:
        Convolutions only (others take 1): ``P``, the window codes the window unit issues
        a cycle into the input banks (:class:`~rtl_gen.hw.window.WindowUnit`), a power of
        two dividing the lanes and the input channels.
    rom:
        Where the weight ROM goes: ``"auto"`` (default: where Yosys puts it, block RAM when
        it fills its blocks well, else LUTs) or ``"block"`` (block RAM whatever its fill:
        no LUTs and no LUT-ROM read path, more blocks; the folding planner's choice when the
        device has the blocks, :func:`~rtl_gen.hw.planner.plan_folding`).
    drain:
        How the drain reads the array's results: ``"select"`` (default: a multiplexer over
        the ``R*C`` result registers) or ``"shift"`` (one row only: the result registers
        load together and shift one column a cycle towards the drain, which reads the
        first; a 2:1 multiplexer per result bit, in front of its register, instead of the
        ``C:1`` select).  The same cycles either way.  On the iCE40 a shift drain packs
        each multiplexer with its register in one logic cell, so the select's logic cells
        go (the folding planner's choice there); on the ECP5 the select's wide
        multiplexers are cheaper (its slices have them), so it keeps the select.
    tr_read:
        Term-revealing layers only: how a PE's term finds its activation in the group.
        ``"select"`` (default): the group's ``g`` activations are one word of the input
        bank and each term lane selects its own with a ``g``-to-1 multiplexer;
        ``"memory"``: each term lane has its own copy of the input bank in block RAM, one
        activation a word, and reads the one its term's index names (the memory is the
        multiplexer: ``R * C * P`` blocks, no select logic).  The same cycles either way.
    tr_rom_addr:
        Term-revealing layers only: how the weight-term ROM's address (the group's base plus
        the slot) is formed.  ``"sum"`` (default): the counters' next values added, in
        front of the ROM; ``"register"``: the address is a register too, its next value
        chosen among sums of registers (no adder after the sequencer's decisions: the
        folding planner's choice on the ECP5, whose carry chains after wide fan-out set
        the clock there; on the iCE40 the sum's carry chain is the faster).  The same
        cycles either way.
    drain_width:
        ``D``, results the drain reads, requantizes and writes a cycle (default 1), each of
        the ``D`` through its own select over every ``D``-th result and its own
        requantizer; the output stream carries ``D`` codes a transfer, and the next layer
        takes them so.  ``D > 1``: a hidden layer on one row whose columns and outputs
        ``D`` divides, with a select drain (a tile drains in ``C/D`` cycles: the layers
        whose steps are fewer than their columns stop waiting for the drain).
    """

    rows: int = 1
    cols: int = 8
    lanes: int = 1
    multiplier: str = "lut"
    pipeline: int = 0
    tr_terms: int = 1
    window: int = 1
    rom: str = "auto"
    drain: str = "select"
    tr_read: str = "select"
    drain_width: int = 1
    tr_rom_addr: str = "sum"

    def __post_init__(self):
        for name, lo, hi in (("rows", 1, 64), ("cols", 1, 256), ("lanes", 1, 256),
                             ("pipeline", 0, 16), ("tr_terms", 0, 64), ("window", 1, 256),
                             ("drain_width", 1, 16)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise ValueError(f"array {name} must be {lo}..{hi}, not {v!r}")
        if self.lanes & (self.lanes - 1):
            raise ValueError(f"array lanes must be a power of two, not {self.lanes}")
        if self.window & (self.window - 1) or self.lanes % self.window:
            raise ValueError(f"array window codes per cycle must be a power of two dividing "
                             f"the lanes ({self.lanes}), not {self.window}")
        if self.multiplier not in MULTIPLIERS:
            raise ValueError(f"multiplier must be one of {', '.join(MULTIPLIERS)}, not "
                             f"{self.multiplier!r}")
        if self.rom not in ROM_PLACES:
            raise ValueError(f"the weight ROM goes to one of {', '.join(ROM_PLACES)}, not "
                             f"{self.rom!r}")
        if self.drain not in DRAINS:
            raise ValueError(f"the drain is one of {', '.join(DRAINS)}, not {self.drain!r}")
        if self.drain == "shift" and self.rows != 1:
            raise ValueError(f"a shift drain needs an array of one row, not {self.rows}")
        d = self.drain_width
        if d > 1:
            why = ("a power of two" if d & (d - 1) else
                   f"columns ({self.cols}) that it divides" if self.cols % d else
                   f"one row, not {self.rows}" if self.rows != 1 else
                   "a select drain, not a shift drain" if self.drain != "select" else None)
            if why:
                raise ValueError(f"{d} results a cycle need {why}")
        check_read(self.tr_read)
        if self.tr_rom_addr not in TR_ROM_ADDRS:
            raise ValueError(f"the term ROM's address is one of {', '.join(TR_ROM_ADDRS)}, "
                             f"not {self.tr_rom_addr!r}")


#: How a term-revealing layer forms its weight-term ROM's address
#: (:attr:`ArrayConfig.tr_rom_addr`).
TR_ROM_ADDRS = ("sum", "register")
#: Where a layer's weight ROM may go (:attr:`ArrayConfig.rom`).
ROM_PLACES = ("auto", "block")
#: How a layer's drain may read its array's results (:attr:`ArrayConfig.drain`).
DRAINS = ("select", "shift")


def place_rom(rom: Memory, array: ArrayConfig) -> None:
    """Mark ``rom`` for block RAM when ``array`` asks for it (Yosys' ``rom_style``)."""
    if array.rom == "block":
        rom.attrs["rom_style"] = "block"


def _check_tr(layer: DenseLayer, array: ArrayConfig) -> None:
    if layer.tr is None:
        raise ValueError(f"layer {layer.name!r}: {layer.scheme.name} weights need term "
                         "revealing (a tr group and budget) to run on the TR engine")
    g = layer.tr.group
    if g & (g - 1) or g > 64:
        raise ValueError(f"layer {layer.name!r}: the TR engine takes groups of 1, 2, 4, ..., "
                         f"64 weights, not {g}")
    if array.lanes != 1 or array.multiplier != "lut" or array.pipeline:
        raise ValueError(f"layer {layer.name!r}: a term-revealing layer's array takes no "
                         "lanes, multiplier or pipeline options (its step is one TR group)")


def layer_timing(layer: DenseLayer, array: ArrayConfig,
                 control: TRControl | None = None) -> LayerTiming:
    """The cycle-model parameters of a layer on an array (for a term-revealing layer, under
    the run-time ``control``; ``None``: the bundle's own ``k`` and ``s``)."""
    pe = layer_pe(layer, array)
    common = dict(k=layer.in_features, n=layer.out_features, rows=array.rows, cols=array.cols,
                  requantize=layer.activation == "relu", drain_width=array.drain_width)
    if pe is None:
        per = tr_per_cycle(layer, array.tr_terms)
        if per > 1:
            return LayerTiming.term_revealing_group(
                group=layer.tr.group, terms=tr_used_terms(layer, control), per_cycle=per,
                **common)
        return LayerTiming.term_revealing(group=layer.tr.group, slots=tr_slots(layer, control),
                                          latency=TR_ARRAY_LATENCY, **common)
    return LayerTiming.systolic(lanes=array.lanes, pe_latency=pe.latency,
                                broadcast=broadcasts(array), **common)


def broadcasts(array: ArrayConfig) -> bool:
    """Whether the array broadcasts its operands instead of skewing them: with one row (batch
    1) every PE of the row takes the step's activations in the same cycle and each column's
    weights go straight to its PE, so the array has no skew registers."""
    return array.rows == 1


def fifo_depth(t: LayerTiming, *, slack: int, spare: int) -> int:
    """Output FIFO entries for an engine of cycle model ``t``: the results of every tile that
    can hold credits when nothing stalls (a tile holds its ``R*C/D`` credits, one an output
    transfer of ``D = drain_width`` results, from its start for about ``issue + latency +
    R*C/D + drain + slack`` cycles, until its last result is read), plus ``spare`` entries;
    so the credit check never holds the engine back then."""
    life = t.issue_cycles + t.array_latency + t.drain_cycles + t.drain_stages + slack
    return t.drain_cycles * (math.ceil(life / t.period) + 1) + spare


def int_fifo(m, plan: LayerPlan, o):
    """The credit FIFO of an integer engine, as wide as the values it holds: the output
    activation, or the logits' real range (sign-extended to the port)."""
    rq = plan.requant
    width = rq.acc_bits if rq.method == "none" else len(Value.cast(o.payload))
    return credit_fifo(m, o, width=width, depth=plan.fifo_depth,
                       need=plan.timing.rows * plan.timing.cols // plan.timing.drain_width,
                       extend_sign=rq.method == "none")


def int_back_end(m, plan: LayerPlan, t: LayerTiming, array, out, seq, cycles, *,
                 in_flight: int, bound: int) -> None:
    """The back end of an integer engine: the drain over ``array``'s results (``res``,
    ``done``) through the integer drain stages (``plan.requant``) into the credit FIFO
    ``out``, the credits each tile of the sequencer ``seq`` takes, and, when the plan has
    counters, the ``cycles`` counter (``bound``: the model's longest batch)."""
    rows, cols, nt, d = t.rows, t.cols, t.tiles, t.drain_width
    drain = drain_sequencer(m, array.done, rows=rows, cols=cols, tiles=nt, n=t.n, width=d)
    if "shift" in array.signature.members:  # a shift drain: the next result is res[0]
        m.d.comb += array.shift.eq(drain.active)
        result, drain = drain_head(m, array.res[0], drain, rows * cols)
        results = [result]
    elif d == 1:
        result, drain = drain_select(m, (array.res[q] for q in range(rows * cols)), drain)
        results = [result]
    else:  # result j + i through the i-th select, over every d-th result
        step = Signal(range(max(rows * cols // d, 2)), name="drain_step")
        m.d.comb += step.eq(drain.j >> (d.bit_length() - 1))
        lane = dataclasses.replace(drain, j=step)
        results = []
        for i in range(d):
            result, read = drain_select(m, (array.res[q] for q in range(i, rows * cols, d)),
                                        lane)
            results.append(result)
        drain = read
    outs = [int_drain(m, plan.requant, result,
                      dataclasses.replace(drain, n_idx=drain.n_idx + i) if i else drain,
                      slots=nt * cols)
            for i, result in enumerate(results)]
    w_data = outs[0][0] if d == 1 else Cat(v for v, _ in outs)
    m.d.comb += [out.w_data.eq(w_data), out.w_en.eq(outs[0][1])]
    out.reserve(m, seq.start_tile,
                tile_results(rows, cols // d, t.n // d, nt)[seq.next_tile])
    if plan.counters:
        batch_counter(m, cycles, started=seq.batch_started, written=out.w_en,
                      per_batch=rows * t.n // d, in_flight=in_flight, bound=bound)


@dataclasses.dataclass(frozen=True)
class LayerPlan:
    """A validated integer or term-revealing layer: what its engine is built from.

    Members
    -------
    layer, array:
        The layer and its array configuration.
    pe:
        The PE configuration (``None``: a term-revealing layer).
    src_cols:
        Tile width of the producer of the layer's inputs.
    timing:
        The cycle model under the bundle's own term-revealing settings.
    fifo_depth:
        Output FIFO entries.
    requant:
        The drain, sized from the layer's real values (:func:`~rtl_gen.hw.kit.plan_requant`).
    counters:
        Whether the engine counts its batches' cycles (``cycles``); without, ``cycles`` is 0
        and the engine has no counter logic.
    in_per_beat:
        Activations per input transfer (the network's first layer may take several).
    """

    layer: DenseLayer
    array: ArrayConfig
    pe: PEConfig | None
    src_cols: int
    timing: LayerTiming
    fifo_depth: int
    requant: RequantPlan
    counters: bool = True
    in_per_beat: int = 1

    @property
    def is_tr(self) -> bool:
        return self.pe is None


def plan_layer(layer: DenseLayer, array: ArrayConfig, *, src_cols: int | None = None,
               counters: bool = True, requant: str = "auto", in_per_beat: int = 1) -> LayerPlan:
    """Validate a layer on an array and plan its engine.

    ``src_cols``: tile width of the producer of this layer's inputs (its ``cols``); ``None``:
    plain row-major order.  ``counters``: count each batch's cycles (the ``cycles`` port;
    without, it reads 0).  ``requant``: the hidden layer's requantizer, ``"multiply"``,
    ``"threshold"`` or ``"auto"`` (see :func:`~rtl_gen.hw.kit.plan_requant`).
    ``in_per_beat``: activations per input transfer (row-major order only; a power of two
    dividing the lanes and the inputs).

    Raises
    ------
    ValueError
        For a layer the generator cannot build on this array (the message names it).
    """
    if not isinstance(layer, DenseLayer):
        raise TypeError(f"layer must be a DenseLayer, not {layer!r}")
    if not isinstance(array, ArrayConfig):
        raise TypeError(f"array must be an ArrayConfig, not {array!r}")
    if array.window != 1:
        raise ValueError(f"layer {layer.name!r}: window codes per cycle ({array.window}) "
                         "are a convolution's setting, not a dense layer's")
    pe = layer_pe(layer, array)
    if pe is not None and array.tr_read != "select":
        raise ValueError(f"layer {layer.name!r}: reading activations from memories "
                         "(tr_read) is a term-revealing layer's setting")
    if pe is None and array.drain == "shift":
        raise ValueError(f"layer {layer.name!r}: a term-revealing layer's drain selects its "
                         "results; it has no shift drain")
    timing = layer_timing(layer, array)
    k = layer.in_features
    src = k if src_cols is None else min(int(src_cols), k)
    # the FIFO covers the most tiles in flight: for a TR layer, at one slot per group
    depth = fifo_depth(dataclasses.replace(timing, slots=1) if pe is None else timing,
                       slack=2, spare=2)
    if not isinstance(counters, bool):
        raise TypeError(f"counters must be True or False, not {counters!r}")
    if in_per_beat != 1:
        p = in_per_beat
        if isinstance(p, bool) or not isinstance(p, int) or p < 1 or p & (p - 1):
            raise ValueError(f"input codes per cycle must be a power of two, not {p!r}")
        lanes = beat_lanes(layer, array)
        if src_cols is not None or lanes % p or k % p:
            raise ValueError(f"layer {layer.name!r}: {p} input codes per cycle need inputs "
                             f"in row-major order, {'lanes' if pe else 'a group'} ({lanes}) "
                             f"and inputs ({k}) that {p} divides (and term-revealing PEs "
                             "that select their activations)")
        timing = dataclasses.replace(timing, in_per_beat=p)
    d = array.drain_width
    if d > 1 and (layer.activation != "relu" or layer.out_features % d):
        raise ValueError(f"layer {layer.name!r}: {d} results a cycle need a hidden layer "
                         f"whose outputs ({layer.out_features}) {d} divides")
    return LayerPlan(layer=layer, array=array, pe=pe, src_cols=src, timing=timing,
                     fifo_depth=depth, requant=plan_requant(layer, requant),
                     counters=counters, in_per_beat=in_per_beat)


def beat_lanes(layer: DenseLayer, array: ArrayConfig) -> int:
    """The lanes of an input bank word that a transfer's codes fill (a transfer of ``P``
    codes needs ``P`` to divide them): the PEs' lanes; a term-revealing layer's group where
    its PEs select their activations from the group word, else 1 (the copies read by
    memory hold one activation a word)."""
    if layer.tr is None:
        return array.lanes
    return layer.tr.group if array.tr_read == "select" else 1


def int_ports(layer: DenseLayer, in_per_beat: int = 1, drain_width: int = 1) -> dict:
    """The ports of an integer layer engine: ``i`` (``in_per_beat`` activations a transfer:
    an array of them when more than one), ``o`` (``drain_width`` results a transfer, an
    array of them when more than one) and ``cycles``."""
    in_shape = signed(layer.in_bits) if layer.in_signed else unsigned(layer.in_bits)
    if in_per_beat > 1:
        in_shape = data.ArrayLayout(in_shape, in_per_beat)
    out_shape = unsigned(layer.out_bits) if layer.activation == "relu" else \
        signed(layer.acc_bits)
    if drain_width > 1:
        out_shape = data.ArrayLayout(out_shape, drain_width)
    return {"i": In(stream.Signature(in_shape)), "o": Out(stream.Signature(out_shape)),
            "cycles": Out(COUNTER_BITS)}


class LayerEngine(Engine):
    """A dense layer on a systolic array of PEs; see the module docstring.

    Parameters
    ----------
    layer:
        The layer (weights, bias, requantization) from the bundle.
    array:
        The array shape and PE options.
    src_cols:
        Tile width of the producer of this layer's inputs (its ``cols``); inputs arrive in
        ``(tile, row, column)`` order of that width.  ``None``: plain row-major order.
    counters, requant:
        As for :func:`plan_layer`.

    Members
    -------
    i : In(stream.Signature(input activation))
    o : Out(stream.Signature(output activation, or the accumulator for logits))
    cycles : Out(32)
        Cycles of the last finished batch, from the cycle the sequencer takes it to the
        cycle its last result enters the output FIFO, both counted (0 without counters).

    Raises
    ------
    ValueError
        For a layer this engine cannot build (a term-revealing layer runs on
        :class:`~rtl_gen.hw.tr_layer.TRLayerEngine`).
    """

    @staticmethod
    def plan(layer: DenseLayer, array: ArrayConfig, *, src_cols: int | None = None,
             counters: bool = True, requant: str = "auto", in_per_beat: int = 1):
        p = plan_layer(layer, array, src_cols=src_cols, counters=counters, requant=requant,
                       in_per_beat=in_per_beat)
        if p.is_tr:
            raise ValueError(f"layer {layer.name!r}: a term-revealing layer runs on the TR "
                             "engine (TRLayerEngine)")
        return p

    @staticmethod
    def ports(plan: LayerPlan) -> dict:
        return int_ports(plan.layer, plan.in_per_beat, plan.array.drain_width)

    def weight_words(self) -> list[int]:
        """The weight ROM: word ``t * ks + s`` holds, for column ``c`` and lane ``l``, the
        code of weight ``[t*C + c, s*L + l]`` (code 0 where the layer has none: the padded
        activations there are 0)."""
        layer, t = self._plan.layer, self._plan.timing
        codes = layer.codes.astype(int)
        wb = layer.scheme.bits
        words = []
        for tile in range(t.tiles):
            for s in range(t.k_steps):
                word, pos = 0, 0
                for c in range(t.cols):
                    for lane in range(t.lanes):
                        n, k = tile * t.cols + c, s * t.lanes + lane
                        if n < t.n and k < t.k:
                            word |= int(codes[n, k]) << pos
                        pos += wb
                words.append(word)
        return words

    def elaborate(self, platform):
        m = Module()
        plan = self._plan
        layer, t, pe = plan.layer, plan.timing, plan.pe
        rows, cols, lanes = t.rows, t.cols, t.lanes
        ks, nt, period = t.k_steps, t.tiles, t.period

        banks = input_banks(m, self.i, rows=rows, lanes=lanes, a_bits=layer.in_bits, ks=ks,
                            k=t.k, src_cols=plan.src_cols, per_beat=plan.in_per_beat)
        rom = Memory(shape=unsigned(max(1, cols * lanes * layer.scheme.bits)),
                     depth=nt * ks, init=self.weight_words())
        place_rom(rom, plan.array)
        m.submodules.rom = rom
        m.submodules.array = array = SystolicArray(pe, rows=rows, cols=cols,
                                                   broadcast=broadcasts(plan.array),
                                                   shift=plan.array.drain == "shift")
        rom_rd = rom.read_port()
        out = int_fifo(m, plan, self.o)
        seq = tile_sequencer(m, banks.full, out.credit, tiles=nt, period=period,
                             step_range=period, chain=False, words=ks)

        issue, first, last = seq.steps(m, ks)
        banks.read(m, seq.cbank, seq.step)
        m.d.comb += rom_rd.addr.eq(seq.word)
        # memories answer one cycle later: delay the step's flags to match
        valid_d, first_d, last_d = delayed(m, issue, first, last, name="step_d")
        m.d.comb += [array.valid.eq(valid_d), array.first.eq(first_d), array.last.eq(last_d)]
        for r in range(rows):
            m.d.comb += array.x[r].as_value().eq(banks.data(r))
        wbits = lanes * layer.scheme.bits
        for c in range(cols):
            m.d.comb += array.w[c].as_value().eq(rom_rd.data[c * wbits:(c + 1) * wbits])

        int_back_end(m, plan, t, array, out, seq, self.cycles, in_flight=t.in_flight,
                     bound=t.batch_cycles)
        return m
