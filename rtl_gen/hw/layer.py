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

Cycle model (no back-pressure): see :func:`rtl_gen.design.golden.layer_cycles`, which this module's
``cycles`` output matches exactly.
"""

from __future__ import annotations

import dataclasses
import math

from amaranth import Array, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..design.golden import LayerTiming, TRControl
from ..design.network import DenseLayer
from ..protocol import K_BITS, K_OWN, S_BITS, S_OWN
from .array import SystolicArray
from .hese import DataTermUnit
from .pe import MULTIPLIERS
from .pes.layers import layer_pe
from .tr import (
    TR_ARRAY_LATENCY,
    TRArray,
    term_rom_words,
    tr_slots,
)

__all__ = ["ArrayConfig", "LayerEngine"]

#: Width of the cycle counters.
COUNTER_BITS = 32


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
    """

    rows: int = 1
    cols: int = 8
    lanes: int = 1
    multiplier: str = "lut"
    pipeline: int = 0

    def __post_init__(self):
        for name, lo, hi in (("rows", 1, 64), ("cols", 1, 256), ("lanes", 1, 256),
                             ("pipeline", 0, 16)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise ValueError(f"array {name} must be {lo}..{hi}, not {v!r}")
        if self.lanes & (self.lanes - 1):
            raise ValueError(f"array lanes must be a power of two, not {self.lanes}")
        if self.multiplier not in MULTIPLIERS:
            raise ValueError(f"multiplier must be one of {', '.join(MULTIPLIERS)}, not "
                             f"{self.multiplier!r}")


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
    if pe is None:
        return LayerTiming(k=layer.in_features, n=layer.out_features, rows=array.rows,
                           cols=array.cols, lanes=layer.tr.group, pe_latency=0,
                           requantize=layer.activation == "relu",
                           slots=tr_slots(layer, control), fixed_latency=TR_ARRAY_LATENCY)
    return LayerTiming(k=layer.in_features, n=layer.out_features, rows=array.rows,
                       cols=array.cols, lanes=array.lanes,
                       pe_latency=pe.latency,
                       requantize=layer.activation == "relu")


class LayerEngine(wiring.Component):
    """A dense layer on a systolic array; see the module docstring.

    Parameters
    ----------
    layer:
        The layer (weights, bias, requantization) from the bundle.
    array:
        The array shape and PE options.
    src_cols:
        Tile width of the producer of this layer's inputs (its ``cols``); inputs arrive in
        ``(tile, row, column)`` order of that width.  ``None``: plain row-major order.

    Members
    -------
    i : In(stream.Signature(input activation))
    o : Out(stream.Signature(output activation, or the accumulator for logits))
    cycles : Out(32)
        Cycles of the last finished batch, from the cycle the sequencer takes it to the
        cycle its last result enters the output FIFO, both counted.
    """

    def __init__(self, layer: DenseLayer, array: ArrayConfig, *, src_cols: int | None = None):
        self._layer, self._array = layer, array
        try:
            self._pe = layer_pe(layer, array)
        except ValueError:
            self._MustUse__used = True  # a refused design is not an unused one
            raise
        self._timing = layer_timing(layer, array)
        k = layer.in_features
        self._src_cols = k if src_cols is None else min(int(src_cols), k)
        in_shape = signed(layer.in_bits) if layer.in_signed else unsigned(layer.in_bits)
        out_shape = unsigned(layer.out_bits) if layer.activation == "relu" else \
            signed(layer.acc_bits)
        ports = {
            "i": In(stream.Signature(in_shape)),
            "o": Out(stream.Signature(out_shape)),
            "cycles": Out(COUNTER_BITS),
        }
        if self._pe is None:  # term revealing: the run-time controls
            ports.update(tr_mode=In(1, init=1), tr_k=In(K_BITS, init=K_OWN),
                         tr_s=In(S_BITS, init=S_OWN))
        super().__init__(ports)

    @property
    def is_tr(self) -> bool:
        return self._pe is None

    @property
    def timing(self) -> LayerTiming:
        return self._timing

    def weight_words(self) -> list[int]:
        """The weight ROM: word ``t * ks + s`` holds, for column ``c`` and lane ``l``, the
        code of weight ``[t*C + c, s*L + l]`` (code 0 where the layer has none: the padded
        activations there are 0)."""
        layer, t = self._layer, self._timing
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
        layer, t, pe = self._layer, self._timing, self._pe
        rows, cols, lanes = t.rows, t.cols, t.lanes
        ks, nt, period = t.k_steps, t.tiles, t.period
        lg_lanes = lanes.bit_length() - 1
        a_bits = layer.in_bits
        tr = pe is None
        write_value = Value.cast(self.i.payload)
        if tr:
            # activations are stored truncated to their s largest HESE terms (x'), which
            # can round a magnitude up to the next power of two: one bit more
            a_bits = layer.in_bits + 1
            x_shape = signed(a_bits) if layer.in_signed else unsigned(a_bits)
            # this layer's budget and data terms: the registers, or the bundle's where they
            # hold K_OWN / S_OWN
            tr_k = Signal(K_BITS)
            tr_s = Signal(S_BITS)
            m.d.comb += [tr_k.eq(Mux(self.tr_k == K_OWN, layer.tr.budget, self.tr_k)),
                         tr_s.eq(Mux(self.tr_s == S_OWN, layer.tr.data_terms or 0, self.tr_s))]
            mag = layer.in_bits - 1 if layer.in_signed else layer.in_bits
            m.submodules.dtu = dtu = DataTermUnit(mag, signed=layer.in_signed, pipeline=True)
            x_r = Signal.like(self.i.payload, name="x_r")
            m.d.sync += x_r.eq(self.i.payload)
            m.d.comb += [dtu.i.eq(x_r),
                         dtu.s.eq(Mux(tr_s > mag + 1, mag + 1, tr_s)),
                         dtu.enable.eq(self.tr_mode & (tr_s != 0))]
            write_value = dtu.value[:a_bits]

        # -- input buffer: one memory per row, two banks of ks words ------------------------
        mems = []
        for r in range(rows):
            mem = Memory(shape=unsigned(lanes * a_bits), depth=2 * ks, init=[])
            m.submodules[f"xbuf{r}"] = mem
            mems.append((mem.write_port(granularity=a_bits), mem.read_port()))
        full = Signal(2)                     # bank holds a complete batch
        wbank = Signal()                     # bank the writer fills
        src, k_total = self._src_cols, t.k
        src_tiles = math.ceil(k_total / src)
        last_width = k_total - (src_tiles - 1) * src
        w_col = Signal(range(max(src, 2)))
        w_row = Signal(range(max(rows, 2)))
        w_tile = Signal(range(max(src_tiles, 2)))
        w_base = Signal(range(k_total + src + 1))   # w_tile * src
        k_w = Signal(range(k_total + 1))
        m.d.comb += [k_w.eq(w_base + w_col), self.i.ready.eq(~full.bit_select(wbank, 1))]
        col_lim = Mux(w_tile == src_tiles - 1, last_width, src)
        filled, filled_bank = Signal(), Signal()  # TR: the transfer that completes a bank
        if tr:
            f_d, b_d = filled, filled_bank
            for i in range(2):
                f_n, b_n = Signal(name=f"filled_d{i}"), Signal(name=f"filled_bank_d{i}")
                m.d.sync += [f_n.eq(f_d), b_n.eq(b_d)]
                f_d, b_d = f_n, b_n
            with m.If(f_d):  # the bank's last write happens in this cycle
                m.d.sync += full.bit_select(b_d, 1).eq(1)
        # a TR layer registers the activation before its data-term unit and the unit's
        # output (a long path): its write to the input buffer follows two cycles after the
        # transfer, address and lane with it
        for r, (wp, _) in enumerate(mems):
            m.d.comb += wp.data.eq(write_value.replicate(lanes))
            addr = Signal.like(wp.addr, name=f"waddr{r}")
            en = Signal.like(wp.en, name=f"wen{r}")
            m.d.comb += addr.eq(Mux(wbank, ks, 0) + (k_w >> lg_lanes))
            lane = k_w[:lg_lanes] if lg_lanes else 0
            with m.If(self.i.valid & self.i.ready & (w_row == r)):
                m.d.comb += en.eq(Const(1, lanes) << lane)
            for _ in range(2 if tr else 0):
                addr_d = Signal.like(addr, name=f"{addr.name}_d")
                en_d = Signal.like(en, name=f"{en.name}_d")
                m.d.sync += [addr_d.eq(addr), en_d.eq(en)]
                addr, en = addr_d, en_d
            m.d.comb += [wp.addr.eq(addr), wp.en.eq(en)]
        with m.If(self.i.valid & self.i.ready):
            with m.If(w_col == col_lim - 1):
                m.d.sync += w_col.eq(0)
                with m.If(w_row == rows - 1):
                    m.d.sync += w_row.eq(0)
                    with m.If(w_tile == src_tiles - 1):
                        m.d.sync += [w_tile.eq(0), w_base.eq(0), wbank.eq(~wbank)]
                        if tr:  # the bank is complete once its delayed last write lands
                            m.d.comb += [filled.eq(1), filled_bank.eq(wbank)]
                        else:
                            m.d.sync += full.bit_select(wbank, 1).eq(1)
                    with m.Else():
                        m.d.sync += [w_tile.eq(w_tile + 1), w_base.eq(w_base + src)]
                with m.Else():
                    m.d.sync += w_row.eq(w_row + 1)
            with m.Else():
                m.d.sync += w_col.eq(w_col + 1)

        # -- weight ROM and the tile sequencer ----------------------------------------------
        if tr:
            words, t_slots, term = term_rom_words(layer, cols)
            rom = Memory(shape=unsigned(cols * term.size), depth=len(words), init=words)
            array = TRArray(rows=rows, cols=cols, group=lanes, x_shape=x_shape, term=term,
                            acc_bits=layer.acc_bits)
        else:
            rom = Memory(shape=unsigned(max(1, cols * lanes * layer.scheme.bits)),
                         depth=nt * ks, init=self.weight_words())
            array = SystolicArray(pe, rows=rows, cols=cols)
        m.submodules.rom = rom
        m.submodules.array = array
        rom_rd = rom.read_port()

        # the FIFO covers the most tiles in flight: for a TR layer, at one slot per group
        depth = (dataclasses.replace(t, slots=1) if tr else t).fifo_depth
        m.submodules.fifo = fifo = SyncFIFOBuffered(width=len(Value.cast(self.o.payload)),
                                                    depth=depth)
        cbank = Signal()
        running = Signal()
        tile = Signal(range(max(nt, 2)))
        step = Signal(range(max(period, 2)))
        tile_valid_cols = Array(Const(min(cols, t.n - tt * cols)) for tt in range(nt))
        # free FIFO entries not yet promised to a tile: depth - level - reserved, kept as a
        # register (a write moves an entry from reserved to level and leaves it unchanged),
        # so the credit check is one comparison instead of an adder chain from the FIFO
        space = Signal(range(depth + 1), init=depth)
        credit = Signal()
        m.d.comb += credit.eq(space >= rows * cols)
        start_tile = Signal()
        now = Signal(COUNTER_BITS)
        m.d.sync += now.eq(now + 1)
        batch_started = Signal()

        issue = Signal()
        if tr:
            # run-time slots per group (latched with the batch), the period they give, and
            # the group and slot being issued
            t_max = t_slots
            max_period = max(ks * t_max, rows * cols + 1)
            slots_next = Signal(range(t_max + 1))
            slots = Signal(range(t_max + 1), init=t.slots)
            n_issue = Signal(range(ks * t_max + 1), init=t.issue_cycles)
            period_v = Signal(range(max_period + 1), init=t.period)
            terms_on = Signal(init=1)
            k_min = Mux(tr_k < t_max, tr_k, t_max)
            m.d.sync += slots_next.eq(Mux(self.tr_mode, Mux(tr_k == 0, 1, k_min), t_max))
            with m.If(batch_started):
                m.d.sync += [slots.eq(slots_next), n_issue.eq(slots_next * ks),
                             period_v.eq(Mux(slots_next * ks > rows * cols,
                                             slots_next * ks, rows * cols + 1)),
                             terms_on.eq(~self.tr_mode | (tr_k != 0))]
            step = Signal(range(max_period + 1))
            grp = Signal(range(max(ks, 2)))
            slot = Signal(range(max(t_max, 2)))
            gbase = Signal(range(nt * ks * t_max + t_max + 1))
            m.d.comb += issue.eq(running & (step < n_issue))
            for _, rp in mems:
                m.d.comb += rp.addr.eq(Mux(cbank, ks, 0) + grp)
            m.d.comb += rom_rd.addr.eq(gbase + slot)
            with m.If(issue):
                with m.If(slot == slots - 1):
                    m.d.sync += [slot.eq(0), grp.eq(grp + 1), gbase.eq(gbase + t_max)]
                with m.Else():
                    m.d.sync += slot.eq(slot + 1)
            with m.If(start_tile):  # the groups' ROM base runs on across the batch's tiles
                m.d.sync += [grp.eq(0), slot.eq(0)]
                with m.If(~running):
                    m.d.sync += gbase.eq(0)
            first_now = issue & (grp == 0) & (slot == 0)
            last_now = issue & (grp == ks - 1) & (slot == slots - 1)
            period_end = step == period_v - 1
            m.d.comb += array.on.eq(terms_on)
        else:
            m.d.comb += issue.eq(running & (step < ks))
            for _, rp in mems:
                m.d.comb += rp.addr.eq(Mux(cbank, ks, 0) + step)
            m.d.comb += rom_rd.addr.eq(tile * ks + step)
            first_now = issue & (step == 0)
            last_now = issue & (step == ks - 1)
            period_end = step == period - 1

        with m.If(~running):
            with m.If(full.bit_select(cbank, 1) & credit):
                m.d.comb += [start_tile.eq(1), batch_started.eq(1)]
                m.d.sync += [running.eq(1), tile.eq(0), step.eq(0)]
        with m.Else():
            with m.If(period_end):
                with m.If(tile == nt - 1):
                    m.d.sync += [running.eq(0), cbank.eq(~cbank)]
                    m.d.sync += full.bit_select(cbank, 1).eq(0)
                with m.Elif(credit):
                    m.d.comb += start_tile.eq(1)
                    m.d.sync += [tile.eq(tile + 1), step.eq(0)]
                # else: hold at the last step until the FIFO has room
            with m.Else():
                m.d.sync += step.eq(step + 1)
        # the writer and the sequencer may touch the two bits of `full` in one cycle
        # (different banks): Amaranth merges the two bit assignments.

        # memories answer one cycle later: delay the step's flags to match
        valid_d, first_d, last_d = Signal(), Signal(), Signal()
        m.d.sync += [valid_d.eq(issue), first_d.eq(first_now), last_d.eq(last_now)]
        m.d.comb += [array.valid.eq(valid_d), array.first.eq(first_d), array.last.eq(last_d)]
        for r, (_, rp) in enumerate(mems):
            m.d.comb += array.x[r].as_value().eq(rp.data)
        if tr:
            m.d.comb += array.w.as_value().eq(rom_rd.data)
        else:
            wbits = lanes * layer.scheme.bits
            for c in range(cols):
                m.d.comb += array.w[c].as_value().eq(rom_rd.data[c * wbits:(c + 1) * wbits])

        # -- drain: one result a cycle, bias, requantization, into the FIFO -----------------
        n_out = t.n
        bias = layer.bias.astype(int)
        drain = Signal()
        j = Signal(range(max(rows * cols, 2)))
        d_col = Signal(range(max(cols, 2)))
        d_tile = Signal(range(max(nt, 2)))       # tile of the next `done`
        d_cur = Signal(range(max(nt, 2)))        # tile being drained
        with m.If(array.done):
            m.d.sync += [drain.eq(1), j.eq(0), d_col.eq(0), d_cur.eq(d_tile),
                         d_tile.eq(Mux(d_tile == nt - 1, 0, d_tile + 1))]
        with m.Elif(drain):
            m.d.sync += j.eq(j + 1)
            m.d.sync += d_col.eq(Mux(d_col == cols - 1, 0, d_col + 1))
            with m.If(j == rows * cols - 1):
                m.d.sync += drain.eq(0)
        n_idx = Signal(range(nt * cols + 1))
        m.d.comb += n_idx.eq(d_cur * cols + d_col)
        slots = nt * cols
        acc_shape = signed(layer.acc_bits)
        bias_rom = Array(Const(int(bias[n]) if n < n_out else 0, acc_shape)
                         for n in range(slots))
        res = Array(array.res[q] for q in range(rows * cols))
        a_val = Signal(acc_shape, reset_less=True)
        a_ok = Signal()
        a_n = Signal(range(slots + 1), reset_less=True)
        m.d.sync += [a_val.eq(res[j] + bias_rom[n_idx]), a_ok.eq(drain & (n_idx < n_out)),
                     a_n.eq(n_idx)]
        if layer.activation == "relu":
            mult = layer.requant_multiplier.astype(int)
            shift = layer.requant_shift.astype(int)
            m_rom = Array(Const(int(mult[n]) if n < n_out else 0, unsigned(31))
                          for n in range(slots))
            r_rom = Array(Const(1 << (int(shift[n]) - 1) if n < n_out else 0, unsigned(62))
                          for n in range(slots))
            s_rom = Array(Const(int(shift[n]) if n < n_out else 1, unsigned(6))
                          for n in range(slots))
            p_val = Signal(signed(layer.acc_bits + 32 + 1), reset_less=True)
            p_s = Signal(unsigned(6), reset_less=True)
            p_ok = Signal()
            m.d.sync += [p_val.eq(a_val * m_rom[a_n] + r_rom[a_n]), p_s.eq(s_rom[a_n]),
                         p_ok.eq(a_ok)]
            # the shift in a stage of its own, the clamp (ReLU) on the way into the FIFO
            y = Signal(signed(len(p_val)), reset_less=True)
            y_ok = Signal()
            m.d.sync += [y.eq(p_val >> p_s), y_ok.eq(p_ok)]
            top = (1 << layer.out_bits) - 1
            m.d.comb += [fifo.w_data.eq(Mux(y < 0, 0, Mux(y > top, top, y))),
                         fifo.w_en.eq(y_ok)]
        else:
            m.d.comb += [fifo.w_data.eq(a_val), fifo.w_en.eq(a_ok)]

        # credits: reserve a tile's results when it starts, release them as they are written
        grant = Mux(start_tile, rows * tile_valid_cols[Mux(running, tile + 1, 0)], 0)
        m.d.sync += space.eq(space - grant + (fifo.r_en & fifo.r_rdy))

        m.d.comb += [self.o.valid.eq(fifo.r_rdy), self.o.payload.eq(fifo.r_data),
                     fifo.r_en.eq(self.o.ready)]

        # -- batch cycle counter: first read of a batch to its last write -------------------
        per_batch = rows * n_out
        writes = Signal(range(per_batch + 1))
        starts = [Signal(COUNTER_BITS, reset_less=True) for _ in range(2)]
        queued = Signal(range(3))
        ending = Signal()
        m.d.comb += ending.eq(fifo.w_en & (writes == per_batch - 1))
        with m.If(fifo.w_en):
            m.d.sync += writes.eq(Mux(ending, 0, writes + 1))
        with m.If(ending):
            m.d.sync += self.cycles.eq(now - starts[0] + 1)
        # a two-entry queue of start times (at most two batches are ever in flight)
        with m.If(batch_started & ending):
            m.d.sync += [starts[0].eq(Mux(queued == 1, now, starts[1])), starts[1].eq(now)]
        with m.Elif(batch_started):
            with m.If(queued == 0):
                m.d.sync += starts[0].eq(now)
            with m.Else():
                m.d.sync += starts[1].eq(now)
            m.d.sync += queued.eq(queued + 1)
        with m.Elif(ending):
            m.d.sync += [starts[0].eq(starts[1]), queued.eq(queued - 1)]
        return m
