"""The engine kit: the parts every layer engine is built from.

A layer engine (:class:`~rtl_gen.hw.layer.LayerEngine`, :class:`~rtl_gen.hw.tr_layer.TRLayerEngine`,
:class:`~rtl_gen.hw.float_layer.FloatLayerEngine`) is the same machine around a different
datapath::

    i ──► InputBanks (two banks, double buffer) ──► datapath (array / lanes) ──► drain
               ▲ full                                     ▲ step flags            │
               └──────── TileSequencer ◄── credit ── CreditFifo ◄─────────────────┘ ──► o
                                 └──► BatchCounter (cycles of the last batch)

Each part is an elaboration helper: a function that adds its logic to the engine's
:class:`~amaranth.hdl.Module` and returns the signals the rest of the engine uses.  They
share one module because the writer and the sequencer set and clear the two bits of the
banks' ``full`` register in the same cycle (different banks), which Amaranth merges.

* :func:`input_banks` -- ``R`` row memories of two banks of ``ks`` words of ``L``
  activations; the writer takes the producer's ``(tile, row, column)`` order and may land its
  writes some cycles after the transfer (a registered front end).
* :func:`tile_sequencer` -- takes a full bank when the output FIFO has room for a tile,
  issues ``nt`` tiles one ``period`` apart, frees the bank; optionally takes the next bank
  in the cycle the last tile ends (``chain``).
* :func:`credit_fifo` -- the output FIFO with a credit count: a tile starts only when every
  result it will write has a free entry, so the datapath never overruns a stalled consumer.
* :func:`drain_sequencer` -- after a tile's results are complete, one result a cycle with
  its output index.
* :func:`int_drain` -- the integer drain stages: ``+ bias``, ``* M``, ``+ 2**(S-1)``,
  ``>> S``, clamp (ReLU); logits: ``+ bias`` only.
* :func:`batch_counter` -- the ``cycles`` output: cycles from a batch being taken to its last
  result entering the FIFO.

:class:`Planned` is the base of every engine: its constructor's arguments are turned into a
validated plan (a frozen dataclass) before the Elaboratable exists, so a refused design
raises and leaves no unused Elaboratable behind.
"""

from __future__ import annotations

import dataclasses
import math

from amaranth import Array, Const, Mux, Signal, Value, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory

__all__ = [
    "COUNTER_BITS",
    "Banks",
    "CreditFifo",
    "Drain",
    "Engine",
    "Planned",
    "Sequencer",
    "batch_counter",
    "credit_fifo",
    "delayed",
    "drain_sequencer",
    "input_banks",
    "int_drain",
    "tile_results",
    "tile_sequencer",
]

#: Width of the cycle counters.
COUNTER_BITS = 32


class Planned(wiring.Component):
    """A component built from a validated plan.

    Subclasses define two static methods: ``plan(*args, **kwargs)``, which validates the
    constructor's arguments (raising :class:`ValueError`/:class:`TypeError` with one line
    naming what is wrong) and returns a frozen dataclass, and ``ports(plan)``, the
    component's signature members.  The plan is made in ``__new__``, so a refused design
    raises before the Elaboratable exists; the component finds it in ``self._plan``.
    :meth:`from_plan` builds one from a plan made before.
    """

    def __new__(cls, *args, _plan=None, **kwargs):
        plan = cls.plan(*args, **kwargs) if _plan is None else _plan
        self = super().__new__(cls, src_loc_at=1)
        self._plan = plan
        return self

    def __init__(self, *args, _plan=None, **kwargs):
        super().__init__(self.ports(self._plan))

    @classmethod
    def from_plan(cls, plan):
        """The component of an already validated ``plan``."""
        return cls(_plan=plan)

    @staticmethod
    def plan(*args, **kwargs):  # pragma: no cover - every engine defines its own
        raise NotImplementedError

    @staticmethod
    def ports(plan) -> dict:  # pragma: no cover - every engine defines its own
        raise NotImplementedError


class Engine(Planned):
    """A layer engine: a :class:`Planned` component whose plan has a ``timing`` (its cycle
    model) and whose ``CONTROLS`` name its run-time control ports (which a network drives
    from its own ports of the same names)."""

    #: Run-time control ports; none unless an engine declares them.
    CONTROLS: tuple[str, ...] = ()

    @property
    def timing(self):
        """The cycle model (:class:`~rtl_gen.design.timing.LayerTiming`)."""
        return self._plan.timing

    @property
    def is_tr(self) -> bool:
        """Whether the engine has the term-revealing controls."""
        return "tr_mode" in self.CONTROLS


def delayed(m, *values, stages: int = 1, name: str = "d"):
    """``values`` registered ``stages`` times (fresh signals, in the sync domain)."""
    out = []
    for v in values:
        v = Value.cast(v)
        for i in range(stages):
            r = Signal(len(v), name=f"{name}{i}" if name else None)
            m.d.sync += r.eq(v)
            v = r
        out.append(v)
    return out[0] if len(out) == 1 else tuple(out)


# -- input banks ------------------------------------------------------------------------------


@dataclasses.dataclass
class Banks:
    """The input banks (:func:`input_banks`).

    ``full`` (2 bits): bank ``b`` holds a complete batch; the sequencer clears its bit.
    ``read_ports``: one per row; ``data(r)`` is row ``r``'s word, a cycle after ``read``.
    """

    full: Signal
    read_ports: list
    ks: int

    def read(self, m, bank, addr) -> None:
        """Address word ``addr`` of ``bank`` on every row (the data comes a cycle later)."""
        for rp in self.read_ports:
            m.d.comb += rp.addr.eq(Mux(bank, self.ks, 0) + addr)

    def data(self, r: int) -> Value:
        return self.read_ports[r].data


def input_banks(m, i, *, rows: int, lanes: int, a_bits: int, ks: int, k: int,
                src_cols: int, value=None, delay: int = 0, per_beat: int = 1) -> Banks:
    """Two banks of ``ks`` words of ``lanes`` activations of ``a_bits``, one memory per row.

    ``i`` is the input stream; activations arrive in the producer's ``(tile, row, column)``
    order of tile width ``src_cols`` (``src_cols = k``: row-major) and activation ``k`` of
    row ``r`` goes to word ``k // lanes``, lane ``k % lanes`` of row ``r``'s memory.
    ``value`` (default the payload) is what is written, ``delay`` cycles after the transfer
    (with its address and lane): a front end of ``delay`` registers; the bank counts as
    full once its last write has landed.  ``i.ready`` is low while the bank being written
    is full.  ``per_beat > 1``: each transfer carries that many consecutive activations
    (``value`` their concatenation, row-major order only), written to adjacent lanes of one
    word: ``per_beat`` divides ``lanes`` and ``k``.
    """
    if per_beat > 1 and (lanes % per_beat or k % per_beat or src_cols != k):
        raise ValueError(f"{per_beat} activations per transfer need lanes ({lanes}) and "
                         f"inputs ({k}) that it divides, in row-major order")
    lg_lanes = lanes.bit_length() - 1
    value = Value.cast(i.payload if value is None else value)
    mems = []
    for r in range(rows):
        mem = Memory(shape=unsigned(lanes * a_bits), depth=2 * ks, init=[])
        m.submodules[f"xbuf{r}"] = mem
        mems.append((mem.write_port(granularity=a_bits), mem.read_port()))
    full = Signal(2)                     # bank holds a complete batch
    wbank = Signal()                     # bank the writer fills
    src = src_cols
    src_tiles = math.ceil(k / src)
    last_width = k - (src_tiles - 1) * src
    take = Signal()
    m.d.comb += [take.eq(i.valid & i.ready), i.ready.eq(~full.bit_select(wbank, 1))]

    # position of the transfer: column in the producer's tile, row, producer tile
    w_col = Signal(range(max(src, 2)))
    k_w = Signal(range(k + 1))
    if rows > 1:
        w_row = Signal(range(rows))
        row_last = w_row == rows - 1
    else:
        w_row, row_last = None, Const(1)
    if src_tiles > 1:
        w_tile = Signal(range(src_tiles))
        w_base = Signal(range(k + src + 1))   # w_tile * src
        tile_last = w_tile == src_tiles - 1
        m.d.comb += k_w.eq(w_base + w_col)
        col_last = w_col == Mux(tile_last, last_width, src) - 1
    else:
        m.d.comb += k_w.eq(w_col)
        tile_last = Const(1)
        col_last = w_col == src - per_beat

    # the transfer that completes a bank, and the cycle its last write lands
    filled, filled_bank = Signal(), Signal()
    f_d, b_d = filled, filled_bank
    for d in range(delay):
        f_n, b_n = Signal(name=f"filled_d{d}"), Signal(name=f"filled_bank_d{d}")
        m.d.sync += [f_n.eq(f_d), b_n.eq(b_d)]
        f_d, b_d = f_n, b_n
    with m.If(f_d):
        m.d.sync += full.bit_select(b_d, 1).eq(1)

    for r, (wp, _) in enumerate(mems):
        m.d.comb += wp.data.eq(value.replicate(lanes // per_beat))
        addr = Signal.like(wp.addr, name=f"waddr{r}")
        en = Signal.like(wp.en, name=f"wen{r}")
        m.d.comb += addr.eq(Mux(wbank, ks, 0) + (k_w >> lg_lanes))
        lane = k_w[:lg_lanes] if lg_lanes else 0
        with m.If(take if w_row is None else take & (w_row == r)):
            m.d.comb += en.eq(Const((1 << per_beat) - 1, lanes) << lane)
        for _ in range(delay):
            addr_d = Signal.like(addr, name=f"{addr.name}_d")
            en_d = Signal.like(en, name=f"{en.name}_d")
            m.d.sync += [addr_d.eq(addr), en_d.eq(en)]
            addr, en = addr_d, en_d
        m.d.comb += [wp.addr.eq(addr), wp.en.eq(en)]

    with m.If(take):
        with m.If(col_last):
            m.d.sync += w_col.eq(0)
            with m.If(row_last):
                if w_row is not None:
                    m.d.sync += w_row.eq(0)
                with m.If(tile_last):
                    m.d.sync += wbank.eq(~wbank)
                    m.d.comb += [filled.eq(1), filled_bank.eq(wbank)]
                    if src_tiles > 1:
                        m.d.sync += [w_tile.eq(0), w_base.eq(0)]
                if src_tiles > 1:
                    with m.Else():
                        m.d.sync += [w_tile.eq(w_tile + 1), w_base.eq(w_base + src)]
            if w_row is not None:
                with m.Else():
                    m.d.sync += w_row.eq(w_row + 1)
        with m.Else():
            m.d.sync += w_col.eq(w_col + per_beat)
    return Banks(full=full, read_ports=[rp for _, rp in mems], ks=ks)


# -- output FIFO with credits -----------------------------------------------------------------


@dataclasses.dataclass
class CreditFifo:
    """The output FIFO (:func:`credit_fifo`): write ``w_data``/``w_en``; ``credit`` is high
    while a tile's results fit in the entries not yet promised."""

    fifo: SyncFIFOBuffered
    space: Signal
    credit: Signal

    @property
    def w_data(self):
        return self.fifo.w_data

    @property
    def w_en(self):
        return self.fifo.w_en

    def reserve(self, m, start, amount) -> None:
        """Promise ``amount`` entries in a cycle where ``start`` is high; a read returns one."""
        fifo = self.fifo
        grant = Mux(start, amount, 0)
        m.d.sync += self.space.eq(self.space - grant + (fifo.r_en & fifo.r_rdy))


def credit_fifo(m, o, *, width: int, depth: int, need: int) -> CreditFifo:
    """A ``depth``-entry FIFO of ``width`` bits driving the output stream ``o``.

    The free entries not yet promised to a tile (``depth - level - reserved``) are kept as a
    register (a write moves an entry from reserved to level and leaves it unchanged), so the
    credit check (``space >= need``) is one comparison instead of an adder chain from the
    FIFO.
    """
    m.submodules.fifo = fifo = SyncFIFOBuffered(width=width, depth=depth)
    space = Signal(range(depth + 1), init=depth)
    credit = Signal()
    m.d.comb += [credit.eq(space >= need),
                 o.valid.eq(fifo.r_rdy), o.payload.eq(fifo.r_data), fifo.r_en.eq(o.ready)]
    return CreditFifo(fifo=fifo, space=space, credit=credit)


def tile_results(rows: int, cols: int, n: int, tiles: int) -> Array:
    """Results of each tile: ``rows`` times its real columns (the last tile may have fewer)."""
    return Array(Const(rows * min(cols, n - t * cols), range(rows * cols + 1))
                 for t in range(tiles))


# -- the tile sequencer -----------------------------------------------------------------------


@dataclasses.dataclass
class Sequencer:
    """The tile sequencer's state (:func:`tile_sequencer`).

    ``running``: a batch is being issued from bank ``cbank``; ``tile`` and ``step`` (cycle in
    the tile's period) place the current cycle; ``start_tile`` is high in the cycle a tile
    starts (``next_tile`` is its index), ``batch_started`` in the cycle a batch is taken;
    ``held`` while the sequencer waits at a tile's last cycle for credit (that cycle's step
    was issued once: an issue must leave it out).
    """

    running: Signal
    cbank: Signal
    tile: Signal
    step: Signal
    start_tile: Signal
    batch_started: Signal
    next_tile: Signal
    held: Signal

    def steps(self, m, ks: int):
        """The plain issue: step ``s < ks`` of a tile reads word ``s``.  Returns ``(issue,
        first, last)``, high in the cycle the step's address is presented."""
        issue = Signal()
        m.d.comb += issue.eq(self.running & ~self.held & (self.step < ks))
        return issue, issue & (self.step == 0), issue & (self.step == ks - 1)


def tile_sequencer(m, full, credit, *, tiles: int, period, step_range: int,
                   chain: bool) -> Sequencer:
    """Take a full bank when ``credit`` allows, issue ``tiles`` tiles ``period`` cycles apart
    (an ``int`` or a signal), holding at a tile's last cycle until ``credit`` is high, then
    free the bank.  Without ``chain`` the next bank is taken in the cycle after that (one
    idle cycle); with ``chain``, in the same cycle when it is waiting.  ``step`` counts up to
    ``step_range - 1``."""
    running, cbank = Signal(), Signal()
    tile = Signal(range(max(tiles, 2)))
    step = Signal(range(max(step_range, 2)))
    start_tile, batch_started = Signal(), Signal()
    next_tile = Signal(range(max(tiles, 2)))          # the tile a start begins
    held = Signal()                                   # waiting for credit at a tile's end
    at_end = Signal()
    m.d.comb += at_end.eq(running & (step == period - 1))
    if chain:
        can_new = full.bit_select(Mux(running, ~cbank, cbank), 1) & credit
    else:
        can_new = full.bit_select(cbank, 1) & credit
    with m.If(~running):
        with m.If(can_new):
            m.d.comb += [start_tile.eq(1), batch_started.eq(1)]
            m.d.sync += [running.eq(1), tile.eq(0), step.eq(0)]
    with m.Elif(at_end):
        with m.If(tile == tiles - 1):
            # the batch is issued: free its bank (and take the next one if it waits)
            m.d.sync += [full.bit_select(cbank, 1).eq(0), cbank.eq(~cbank)]
            if chain:
                with m.If(can_new):
                    m.d.comb += [start_tile.eq(1), batch_started.eq(1)]
                    m.d.sync += [tile.eq(0), step.eq(0)]
                with m.Else():
                    m.d.sync += running.eq(0)
            else:
                m.d.sync += running.eq(0)
        with m.Elif(credit):
            m.d.comb += [start_tile.eq(1), next_tile.eq(tile + 1)]
            m.d.sync += [tile.eq(tile + 1), step.eq(0), held.eq(0)]
        with m.Else():  # hold at the last step until the FIFO has room, issuing nothing
            m.d.sync += held.eq(1)
    with m.Else():
        m.d.sync += step.eq(step + 1)
    return Sequencer(running=running, cbank=cbank, tile=tile, step=step,
                     start_tile=start_tile, batch_started=batch_started, next_tile=next_tile,
                     held=held)


# -- the drain ---------------------------------------------------------------------------------


@dataclasses.dataclass
class Drain:
    """One result a cycle after a tile completes (:func:`drain_sequencer`): ``active``;
    ``j`` the result (``r * C + c``); ``n_idx`` its output index ``tile * C + c``; ``ok``:
    active on a real output (``n_idx < N``)."""

    active: Signal
    j: Signal
    n_idx: Signal
    ok: Value


def drain_sequencer(m, start, *, rows: int, cols: int, tiles: int, n: int) -> Drain:
    """From the cycle after ``start`` (a tile's results are complete), walk its ``rows *
    cols`` results one a cycle; tiles complete in order, so the tile index counts along."""
    active = Signal()
    j = Signal(range(max(rows * cols, 2)))
    col = Signal(range(max(cols, 2))) if rows > 1 else j
    d_tile = Signal(range(max(tiles, 2)))       # tile of the next start
    d_cur = Signal(range(max(tiles, 2)))        # tile being drained
    with m.If(start):
        m.d.sync += [active.eq(1), j.eq(0), d_cur.eq(d_tile),
                     d_tile.eq(Mux(d_tile == tiles - 1, 0, d_tile + 1))]
        if rows > 1:
            m.d.sync += col.eq(0)
    with m.Elif(active):
        m.d.sync += j.eq(j + 1)
        if rows > 1:
            m.d.sync += col.eq(Mux(col == cols - 1, 0, col + 1))
        with m.If(j == rows * cols - 1):
            m.d.sync += active.eq(0)
    n_idx = Signal(range(tiles * cols + 1))
    m.d.comb += n_idx.eq(d_cur * cols + col)
    return Drain(active=active, j=j, n_idx=n_idx, ok=active & (n_idx < n))


def int_drain(m, layer, result, drain: Drain, *, slots: int):
    """The integer drain of ``layer`` (a :class:`~rtl_gen.design.network.DenseLayer`) on
    ``result`` (the accumulator the drain reads this cycle): ``+ bias``; for a hidden layer
    ``* M + 2**(S-1)``, ``>> S`` and the clamp (ReLU) on the way into the FIFO.  ``slots``:
    output indices the drain can name (``tiles * C``).  Returns ``(data, en)`` for the FIFO,
    ``3`` (hidden) or ``1`` (logits) cycles after the read."""
    n_out = layer.out_features
    bias = layer.bias.astype(int)
    acc_shape = signed(layer.acc_bits)
    bias_rom = Array(Const(int(bias[n]) if n < n_out else 0, acc_shape) for n in range(slots))
    a_val = Signal(acc_shape, reset_less=True)
    a_ok = Signal()
    a_n = Signal(range(slots + 1), reset_less=True)
    m.d.sync += [a_val.eq(result + bias_rom[drain.n_idx]), a_ok.eq(drain.ok),
                 a_n.eq(drain.n_idx)]
    if layer.activation != "relu":
        return a_val, a_ok
    mult = layer.requant_multiplier.astype(int)
    shift = layer.requant_shift.astype(int)
    m_rom = Array(Const(int(mult[n]) if n < n_out else 0, unsigned(31)) for n in range(slots))
    r_rom = Array(Const(1 << (int(shift[n]) - 1) if n < n_out else 0, unsigned(62))
                  for n in range(slots))
    s_rom = Array(Const(int(shift[n]) if n < n_out else 1, unsigned(6)) for n in range(slots))
    p_val = Signal(signed(layer.acc_bits + 32 + 1), reset_less=True)
    p_s = Signal(unsigned(6), reset_less=True)
    p_ok = Signal()
    m.d.sync += [p_val.eq(a_val * m_rom[a_n] + r_rom[a_n]), p_s.eq(s_rom[a_n]), p_ok.eq(a_ok)]
    # the shift in a stage of its own, the clamp (ReLU) on the way into the FIFO
    y = Signal(signed(len(p_val)), reset_less=True)
    y_ok = Signal()
    m.d.sync += [y.eq(p_val >> p_s), y_ok.eq(p_ok)]
    top = (1 << layer.out_bits) - 1
    return Mux(y < 0, 0, Mux(y > top, top, y)), y_ok


# -- the cycle counter -------------------------------------------------------------------------


def batch_counter(m, cycles, *, started, written, per_batch: int, in_flight: int) -> None:
    """Drive ``cycles`` with the cycles of the last finished batch: from the cycle it was
    taken (``started``) to the cycle its last result is written (``written`` high for the
    ``per_batch``-th time), both counted.  The start times of up to ``in_flight`` batches
    wait in a ring."""
    now = Signal(COUNTER_BITS)
    m.d.sync += now.eq(now + 1)
    q = in_flight
    starts = Array(Signal(COUNTER_BITS, name=f"start{i}", reset_less=True) for i in range(q))
    s_wr = Signal(range(max(q, 2)))
    s_rd = Signal(range(max(q, 2)))
    writes = Signal(range(per_batch + 1))
    ending = Signal()
    m.d.comb += ending.eq(written & (writes == per_batch - 1))
    with m.If(written):
        m.d.sync += writes.eq(Mux(ending, 0, writes + 1))
    with m.If(started):
        m.d.sync += [starts[s_wr].eq(now), s_wr.eq(Mux(s_wr == q - 1, 0, s_wr + 1))]
    with m.If(ending):
        m.d.sync += [cycles.eq(now - starts[s_rd] + 1),
                     s_rd.eq(Mux(s_rd == q - 1, 0, s_rd + 1))]
