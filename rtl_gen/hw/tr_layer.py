"""A term-revealing layer in hardware: the engine kit around a term-pair array.

::

    i ──► x_r ──► DataTermUnit (keep s HESE terms) ──► input banks: one word = a group of g x'
                                                                  │
    weight-term ROM (tile, group, slot) ─────────────────────────►│ one term per column
                                                                  ▼
                              TRArray R x C (operands broadcast) ──► drain (kit) ──► FIFO ──► o

The same kit as :class:`~rtl_gen.hw.layer.LayerEngine` (input banks, tile sequencer, credit
FIFO, integer drain, cycle counter); what differs is the front end (the activation is
registered, then truncated to its ``s`` largest terms by the data-term unit in four stages,
so the banks' writes land five cycles after the transfer), the array
(:class:`~rtl_gen.hw.tr.TRArray`) and the issue: a step is one group and takes ``slots``
cycles, one weight-term slot each, under the run-time controls ``tr_mode``, ``tr_k``,
``tr_s`` (see :mod:`rtl_gen.hw.tr`), latched when a batch is taken. With
:attr:`~rtl_gen.hw.layer.ArrayConfig.tr_terms` ``P > 1`` (or 0: the layer's budget) the
array is the group-per-cycle :class:`~rtl_gen.hw.tr.TRGroupArray`: a ROM word holds ``P``
slots per column, a group takes ``ceil(n / P)`` words (``n``: ``min(k, T)`` under TR, ``T``
conventional), and each word's lanes beyond ``n`` are masked (``count``). A transfer may
carry several codes (``in_per_beat``: a data-term unit each, adjacent lanes of the group
word), and the drain may write several results a cycle
(:attr:`~rtl_gen.hw.layer.ArrayConfig.drain_width`, as the integer engine's).

Cycle model: :meth:`rtl_gen.design.timing.LayerTiming.term_revealing` with ``slots`` for
the controls in force (:meth:`~rtl_gen.design.timing.LayerTiming.term_revealing_group` for
``P > 1``).
"""

from __future__ import annotations

import dataclasses

from amaranth import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In

from ..design.golden import LayerTiming, TRControl
from ..design.network import DenseLayer
from ..protocol import K_BITS, K_OWN, S_BITS, S_OWN
from .hese import DataTermUnit
from .kit import (
    Engine,
    delayed,
    input_banks,
    tile_sequencer,
)
from .layer import (
    ArrayConfig,
    LayerPlan,
    int_back_end,
    int_fifo,
    int_ports,
    layer_timing,
    place_rom,
    plan_layer,
)
from .tr import TRArray, TRGroupArray, term_rom_words, tr_per_cycle

__all__ = ["TRLayerEngine"]


class TRLayerEngine(Engine):
    """A term-revealing dense layer; see the module docstring.

    Parameters
    ----------
    layer, array, src_cols:
        As for :class:`~rtl_gen.hw.layer.LayerEngine`; the layer must have term revealing
        (or sign-magnitude weights) and the array takes no lanes, multiplier or pipeline.

    Members
    -------
    i, o, cycles:
        As for :class:`~rtl_gen.hw.layer.LayerEngine`.
    tr_mode, tr_k, tr_s : In
        The run-time controls (reset values: term revealing with the bundle's ``k`` and
        ``s``).
    """

    #: Run-time control ports, driven by the network's ports of the same names.
    CONTROLS: tuple[str, ...] = ("tr_mode", "tr_k", "tr_s")

    @staticmethod
    def plan(layer: DenseLayer, array: ArrayConfig, *, src_cols: int | None = None,
             counters: bool = True, requant: str = "auto", in_per_beat: int = 1):
        p = plan_layer(layer, array, src_cols=src_cols, counters=counters, requant=requant,
                       in_per_beat=in_per_beat)
        if not p.is_tr:
            raise ValueError(f"layer {layer.name!r} has no term revealing: it runs on the PE "
                             "array engine (LayerEngine)")
        return p

    @staticmethod
    def ports(plan: LayerPlan) -> dict:
        ports = int_ports(plan.layer, plan.in_per_beat, plan.array.drain_width)
        ports.update(tr_mode=In(1, init=1), tr_k=In(K_BITS, init=K_OWN),
                     tr_s=In(S_BITS, init=S_OWN))
        return ports

    def timing_for(self, control: TRControl | None = None) -> LayerTiming:
        """The cycle model under a run-time control."""
        return layer_timing(self._plan.layer, self._plan.array, control)

    def elaborate(self, platform):
        m = Module()
        plan = self._plan
        layer, t = plan.layer, plan.timing
        rows, cols, group = t.rows, t.cols, t.lanes
        ks, nt = t.k_steps, t.tiles

        # -- front end: this layer's budget and data terms (the registers, or the bundle's
        # where they hold K_OWN / S_OWN); the activation registered, truncated to its s
        # largest HESE terms (x', which can round a magnitude up to the next power of two:
        # one bit more) by the unit, pipelined in three stages (digits, kept digits, value)
        a_bits = layer.in_bits + 1
        x_shape = signed(a_bits) if layer.in_signed else unsigned(a_bits)
        tr_s = Signal(S_BITS)
        # the budget registered: it is latched with a batch, so a register between the
        # host's value (and the comparison with K_OWN) and the sequencer costs nothing
        tr_k = Signal(K_BITS, init=layer.tr.budget)
        m.d.sync += tr_k.eq(Mux(self.tr_k == K_OWN, layer.tr.budget, self.tr_k))
        m.d.comb += tr_s.eq(Mux(self.tr_s == S_OWN, layer.tr.data_terms or 0, self.tr_s))
        mag = layer.in_bits - 1 if layer.in_signed else layer.in_bits
        # one unit per activation of a transfer (in_per_beat of them, adjacent lanes)
        beat = plan.in_per_beat
        x_r = Signal.like(self.i.payload, name="x_r")
        m.d.sync += x_r.eq(self.i.payload)
        values = []
        for j in range(beat):
            dtu = DataTermUnit(mag, signed=layer.in_signed, pipeline=4)
            m.submodules["dtu" if beat == 1 else f"dtu{j}"] = dtu
            m.d.comb += [dtu.i.eq(x_r if beat == 1 else x_r[j]),
                         dtu.s.eq(Mux(tr_s > mag + 1, mag + 1, tr_s)),
                         dtu.enable.eq(self.tr_mode & (tr_s != 0))]
            values.append(dtu.value[:a_bits])
        per = tr_per_cycle(layer, plan.array.tr_terms)
        # read "memory": each term lane of each column reads its own copy of the banks
        by_memory = plan.array.tr_read == "memory"
        banks = input_banks(m, self.i, rows=rows, lanes=group, a_bits=a_bits, ks=ks, k=t.k,
                            src_cols=plan.src_cols, value=Cat(*values),
                            delay=1 + dtu.latency, copies=cols * per if by_memory else 0,
                            per_beat=beat)

        # -- weight-term ROM, array, FIFO and the sequencer under the run-time slots --------
        # per = 1: one weight-term slot a cycle (TRArray); per > 1: `per` slots a ROM word,
        # the group-per-cycle array (TRGroupArray), a group's `n` terms in ceil(n / per)
        words, t_max, term = term_rom_words(layer, cols, per)
        w_max = -(-t_max // per)                   # ROM words (cycles) a group at most
        m.submodules.rom = rom = Memory(shape=unsigned(cols * per * term.size),
                                        depth=len(words), init=words)
        place_rom(rom, plan.array)
        if per == 1:
            array = TRArray(rows=rows, cols=cols, group=group, x_shape=x_shape, term=term,
                            acc_bits=layer.acc_bits, read=plan.array.tr_read)
        else:
            array = TRGroupArray(rows=rows, cols=cols, group=group, per_cycle=per,
                                 x_shape=x_shape, term=term,
                                 max_exp=layer.scheme.magnitude_bits,
                                 acc_bits=layer.acc_bits, read=plan.array.tr_read)
        assert array.latency == t.array_latency
        m.submodules.array = array
        rom_rd = rom.read_port()
        out = int_fifo(m, plan, self.o)

        # run-time words per group (latched with the batch) and the period they give
        drain = t.drain_cycles + t.drain_gap        # the drain's cycles over a tile
        max_period = max(ks * w_max, drain)
        slots_next = Signal(range(w_max + 1))
        last_slot = Signal(range(w_max + 1), init=t.slots - 1)   # a group's slots - 1
        last_step = Signal(range(max_period + 1), init=t.period - 1)    # period - 1
        last_issue = Signal(range(ks * w_max + 1), init=t.issue_cycles - 1)  # steps issued - 1
        terms_on = Signal(init=1)
        seq = tile_sequencer(m, banks.full, out.credit, tiles=nt, last_step=last_step,
                             step_range=max_period + 1, chain=False)
        k_min = Mux(tr_k < t_max, tr_k, t_max)
        if per == 1:  # one slot a term, at least 1
            m.d.sync += slots_next.eq(Mux(self.tr_mode, Mux(tr_k == 0, 1, k_min), t_max))
        else:
            # the terms a group reads, n: min(k, T) under TR, all T conventional; the words,
            # ceil(n / per), at least 1, by comparisons with the multiples of per
            n_used = Signal(range(t_max + 1))
            m.d.comb += n_used.eq(Mux(self.tr_mode, k_min, t_max))
            m.d.sync += slots_next.eq(1 + sum((n_used > i * per) for i in range(1, w_max)))
        with m.If(seq.batch_started):
            period_next = Mux(slots_next * ks > drain - 1, slots_next * ks, drain)
            m.d.sync += [last_slot.eq(slots_next - 1), last_issue.eq(slots_next * ks - 1),
                         last_step.eq(period_next - 1),
                         terms_on.eq(~self.tr_mode | (tr_k != 0))]

        # the group and slot being issued; the groups' ROM base runs on across the tiles
        issue = Signal()
        grp = Signal(range(max(ks, 2)))
        slot = Signal(range(max(w_max, 2)))
        gbase = Signal(range(nt * ks * w_max + w_max + 1))
        # issuing: steps 0 .. last_issue of a tile, a register (no comparison with the
        # run-time step count on the path to the group and slot counters)
        issuing = Signal()
        m.d.comb += issue.eq(seq.running & ~seq.held & issuing)
        with m.If(issue & (seq.step == last_issue)):
            m.d.sync += issuing.eq(0)
        with m.If(seq.start_tile):
            m.d.sync += issuing.eq(1)
        if by_memory:
            # the ROM answers a cycle later with each lane's index: the group's address in
            # the banks, delayed to meet it, then the activation's (again a cycle later)
            bank_d, grp_d = delayed(m, seq.cbank, grp, name="copy_addr")
            for c in range(cols):
                for j in range(per):
                    lane = array.w[c] if per == 1 else array.w[c][j]
                    banks.read_copy(m, c * per + j, bank_d, grp_d, lane.idx)
        else:
            banks.read(m, seq.cbank, grp)
        # the counters' next values: the ROM is read a cycle ahead, at the next cycle's slot,
        # and its word registered, so that the block RAM's clock-to-out and its blocks'
        # output select are not on the path into the PEs' operand select
        slot_n, grp_n, gbase_n = (Signal.like(v, name=f"{v.name}_next")
                                  for v in (slot, grp, gbase))
        m.d.comb += [slot_n.eq(slot), grp_n.eq(grp), gbase_n.eq(gbase)]
        with m.If(issue):
            with m.If(slot == last_slot):
                m.d.comb += [slot_n.eq(0), grp_n.eq(grp + 1), gbase_n.eq(gbase + w_max)]
            with m.Else():
                m.d.comb += slot_n.eq(slot + 1)
        with m.If(seq.start_tile):
            m.d.comb += [grp_n.eq(0), slot_n.eq(0)]
            with m.If(~seq.running):
                m.d.comb += gbase_n.eq(0)
        m.d.sync += [slot.eq(slot_n), grp.eq(grp_n), gbase.eq(gbase_n)]
        if plan.array.tr_rom_addr == "sum":
            m.d.comb += rom_rd.addr.eq(gbase_n + slot_n)
        else:
            self._rom_addr_register(m, rom_rd, gbase, slot, last_slot, issue, seq, w_max)
        w_word = Signal.like(rom_rd.data, name="w_word", reset_less=True)
        m.d.sync += w_word.eq(rom_rd.data)
        first = issue & (grp == 0) & (slot == 0)
        last = issue & (grp == ks - 1) & (slot == last_slot)
        if per == 1:
            m.d.comb += array.on.eq(terms_on)
        else:
            # the group's n, latched with the batch like the words per group
            n_next = Signal(range(t_max + 1))
            n_latched = Signal(range(t_max + 1), init=min(layer.tr.budget, t_max))
            m.d.sync += n_next.eq(n_used)
            with m.If(seq.batch_started):
                m.d.sync += n_latched.eq(n_next)
            # the lanes of this word that count: the terms left of the group's n, at most
            # per (registered: the ROM answers a cycle later)
            left = Signal(signed(max(t_max, per).bit_length() + 2))
            m.d.comb += left.eq(n_latched - slot * per)
            count = Signal(range(per + 1))
            m.d.sync += count.eq(Mux(left >= per, per, Mux(left < 0, 0, left)))
            m.d.comb += array.count.eq(count)

        # memories answer one cycle later: delay the step's flags to match
        valid_d, first_d, last_d = delayed(m, issue, first, last, name="step_d")
        m.d.comb += [array.valid.eq(valid_d), array.first.eq(first_d), array.last.eq(last_d),
                     array.w.as_value().eq(w_word)]
        for r in range(rows):
            if by_memory:
                for j in range(cols * per):
                    m.d.comb += array.x[r][j].eq(banks.copy_data(r, j))
            else:
                m.d.comb += array.x[r].as_value().eq(banks.data(r))

        every = [dataclasses.replace(t, slots=s) for s in range(1, w_max + 1)]
        int_back_end(m, plan, t, array, out, seq, self.cycles,
                     in_flight=max(u.in_flight for u in every),
                     bound=max(u.batch_cycles for u in every))
        return m

    @staticmethod
    def _rom_addr_register(m, rom_rd, gbase, slot, last_slot, issue, seq, w_max) -> None:
        """The weight-term ROM's address ``gbase + slot`` kept as a register
        (``tr_rom_addr="register"``): its next value is chosen among sums of registers (0,
        ``gbase``, ``gbase + W``, ``addr + 1``), so no adder follows the sequencer's late
        decisions (start, issue) on the way to the ROM."""
        addr = Signal.like(gbase, name="rom_addr")
        addr_n = Signal.like(gbase, name="rom_addr_next")
        m.d.comb += addr_n.eq(addr)
        with m.If(issue):
            with m.If(slot == last_slot):
                m.d.comb += addr_n.eq(gbase + w_max)
            with m.Else():
                m.d.comb += addr_n.eq(addr + 1)
        with m.If(seq.start_tile):
            with m.If(~seq.running):
                m.d.comb += addr_n.eq(0)
            with m.Elif(~issue | (slot != last_slot)):
                m.d.comb += addr_n.eq(gbase)
        m.d.sync += addr.eq(addr_n)
        m.d.comb += rom_rd.addr.eq(addr_n)
