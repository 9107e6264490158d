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
* :func:`drain_select` -- the result the drain reads, through a registered stage of 4-way
  selects when the array has many results; :func:`drain_head` -- the same for an array
  whose results shift out at ``res[0]`` (no select).
* :func:`int_drain` -- the integer drain stages: ``+ bias``, ``* M``, ``+ 2**(S-1)``,
  ``>> S``, clamp (ReLU), or thresholds in place of the multiply and shift; logits: ``+ bias``
  only; every width from the layer's real values (:func:`plan_requant`).
* :func:`batch_counter` -- the ``cycles`` output (optional: an engine planned without
  counters leaves it 0): cycles from a batch being taken to its last result entering the
  FIFO, in a counter sized from the cycle model.

:class:`Planned` is the base of every engine: its constructor's arguments are turned into a
validated plan (a frozen dataclass) before the Elaboratable exists, so a refused design
raises and leaves no unused Elaboratable behind.
"""

from __future__ import annotations

import dataclasses
import math

from amaranth import Array, Cat, Const, Mux, Signal, Value, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory

from ..design.timing import SELECT_GROUP, select_stages

__all__ = [
    "COUNTER_BITS",
    "column_words",
    "Banks",
    "CreditFifo",
    "Drain",
    "Engine",
    "Planned",
    "Sequencer",
    "REQUANT_METHODS",
    "RequantPlan",
    "acc_range",
    "batch_counter",
    "counter_bits",
    "credit_fifo",
    "delayed",
    "drain_select",
    "drain_head",
    "drain_sequencer",
    "input_banks",
    "int_drain",
    "plan_requant",
    "requant_thresholds",
    "signed_bits",
    "tile_results",
    "tile_sequencer",
]

#: Width of the cycle counter ports (the counters inside are sized from the cycle model).
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


def delayed(m, *values, stages: int = 1, name: str = "d", reset_less: bool = False):
    """``values`` registered ``stages`` times (fresh signals, in the sync domain;
    ``reset_less`` for data that no reset needs to clear)."""
    out = []
    for v in values:
        v = Value.cast(v)
        for i in range(stages):
            r = Signal(len(v), name=f"{name}{i}" if name else None, reset_less=reset_less)
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
    #: Element copies (``input_banks(copies=n)``): ``copy_ports[r][j]``, one activation a
    #: word, word ``(bank * ks + word) * lanes + lane``.
    copy_ports: list = dataclasses.field(default_factory=list)
    lanes: int = 1

    def read(self, m, bank, addr) -> None:
        """Address word ``addr`` of ``bank`` on every row (the data comes a cycle later)."""
        for rp in self.read_ports:
            m.d.comb += rp.addr.eq(Mux(bank, self.ks, 0) + addr)

    def data(self, r: int) -> Value:
        return self.read_ports[r].data

    def read_copy(self, m, j: int, bank, addr, lane) -> None:
        """Address activation ``lane`` of word ``addr`` of ``bank`` in copy ``j`` of every
        row (the data, ``copy_data(r, j)``, comes a cycle later)."""
        at = _element_addr(Mux(bank, self.ks, 0) + addr, lane, self.lanes)
        for ports in self.copy_ports:
            m.d.comb += ports[j].addr.eq(at)

    def copy_data(self, r: int, j: int) -> Value:
        return self.copy_ports[r][j].data


def _element_addr(word, lane, lanes: int):
    """The address of activation ``lane`` of ``word`` in a copy of the banks (one activation
    a word, ``lanes`` of them to a bank word)."""
    lg = lanes.bit_length() - 1
    return Cat(lane[:lg], word) if lg else word


def input_banks(m, i, *, rows: int, lanes: int, a_bits: int, ks: int, k: int,
                src_cols: int, value=None, delay: int = 0, per_beat: int = 1,
                copies: int = 0) -> Banks:
    """Two banks of ``ks`` words of ``lanes`` activations of ``a_bits``, one memory per row.

    ``i`` is the input stream; activations arrive in the producer's ``(tile, row, column)``
    order of tile width ``src_cols`` (``src_cols = k``: row-major) and activation ``k`` of
    row ``r`` goes to word ``k // lanes``, lane ``k % lanes`` of row ``r``'s memory.
    ``value`` (default the payload) is what is written, ``delay`` cycles after the transfer
    (with its address and lane): a front end of ``delay`` registers; the bank counts as
    full once its last write has landed.  ``i.ready`` is low while the bank being written
    is full.  ``per_beat > 1``: each transfer carries that many consecutive activations
    (``value`` their concatenation, row-major order only), written to adjacent lanes of one
    word: ``per_beat`` divides ``lanes`` and ``k``.  ``copies = n > 0``: instead of the word
    memory, ``n`` memories per row of one activation a word (block RAM), each written with
    every activation, so that ``n`` readers each read the activation they choose
    (:meth:`Banks.read_copy`); one activation a transfer.
    """
    if copies and per_beat > 1:
        raise ValueError("element copies of the input banks take one activation a transfer")
    if per_beat > 1 and (lanes % per_beat or k % per_beat or src_cols != k):
        raise ValueError(f"{per_beat} activations per transfer need lanes ({lanes}) and "
                         f"inputs ({k}) that it divides, in row-major order")
    lg_lanes = lanes.bit_length() - 1
    value = Value.cast(i.payload if value is None else value)
    mems, copy_ports = [], []
    for r in range(rows):
        if copies:
            ports = []
            for j in range(copies):
                mem = Memory(shape=unsigned(a_bits), depth=2 * ks * lanes, init=[])
                mem.attrs["ram_style"] = "block"
                m.submodules[f"xbuf{r}_{j}"] = mem
                ports.append((mem.write_port(), mem.read_port()))
            mems.append([wp for wp, _ in ports])
            copy_ports.append([rp for _, rp in ports])
            continue
        mem = Memory(shape=unsigned(lanes * a_bits), depth=2 * ks, init=[])
        m.submodules[f"xbuf{r}"] = mem
        mems.append((mem.write_port(granularity=a_bits), mem.read_port()))
    full = Signal(2)                     # bank holds a complete batch
    wbank = Signal()                     # bank the writer fills
    src = src_cols
    src_tiles = math.ceil(k / src)
    last_width = k - (src_tiles - 1) * src
    take = Signal()
    if delay:   # i.ready below, with the writes in flight
        m.d.comb += take.eq(i.valid & i.ready)
    else:
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
    if delay:
        # the writer also waits while the bank it would write still takes its last writes
        # (a front end longer than a batch's transfers would otherwise let it back in):
        # `landing`, a register per bank from its last transfer until it counts as full
        landing = Signal(2)
        with m.If(filled):
            m.d.sync += landing.bit_select(filled_bank, 1).eq(1)
        with m.If(f_d):
            m.d.sync += landing.bit_select(b_d, 1).eq(0)
        m.d.comb += i.ready.eq(~(full | landing).bit_select(wbank, 1))
    with m.If(f_d):
        m.d.sync += full.bit_select(b_d, 1).eq(1)

    for r, mem in enumerate(mems):
        row_take = take if w_row is None else take & (w_row == r)
        ports = mem if copies else mem[:1]
        for wp in ports:
            m.d.comb += wp.data.eq(value if copies else value.replicate(lanes // per_beat))
        addr = Signal.like(ports[0].addr, name=f"waddr{r}")
        en = Signal.like(ports[0].en, name=f"wen{r}")
        word = Mux(wbank, ks, 0) + (k_w >> lg_lanes)
        lane = k_w[:lg_lanes] if lg_lanes else 0
        if copies:  # one activation a word
            m.d.comb += addr.eq(_element_addr(word, k_w, lanes))
            with m.If(row_take):
                m.d.comb += en.eq(1)
        else:
            m.d.comb += addr.eq(word)
            with m.If(row_take):
                m.d.comb += en.eq(Const((1 << per_beat) - 1, lanes) << lane)
        for _ in range(delay):
            addr_d = Signal.like(addr, name=f"{addr.name}_d")
            en_d = Signal.like(en, name=f"{en.name}_d")
            m.d.sync += [addr_d.eq(addr), en_d.eq(en)]
            addr, en = addr_d, en_d
        for wp in ports:
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
    return Banks(full=full, read_ports=[] if copies else [rp for _, rp in mems], ks=ks,
                 copy_ports=copy_ports, lanes=lanes)


# -- output FIFO with credits -----------------------------------------------------------------


@dataclasses.dataclass
class CreditFifo:
    """The output FIFO (:func:`credit_fifo`): write ``w_data``/``w_en``; ``credit`` is high
    while a tile's results fit in the entries not yet promised."""

    fifo: SyncFIFOBuffered
    space: Signal
    credit: Signal
    need: int

    @property
    def w_data(self):
        return self.fifo.w_data

    @property
    def w_en(self):
        return self.fifo.w_en

    def reserve(self, m, start, amount) -> None:
        """Promise ``amount`` entries in a cycle where ``start`` is high; a read returns one."""
        fifo = self.fifo
        # the next space and credit both ways, then chosen by ``start`` (which comes late:
        # from the sequencer's decision), so that the adder and the comparison are not after
        # it; credit is a register too: the next cycle's comparison, made this cycle
        kept = Signal.like(self.space, name="space_kept")
        taken = Signal.like(self.space, name="space_taken")    # (used only when start)
        m.d.comb += [kept.eq(self.space + (fifo.r_en & fifo.r_rdy)), taken.eq(kept - amount)]
        m.d.sync += [self.space.eq(Mux(start, taken, kept)),
                     self.credit.eq(Mux(start, taken >= self.need, kept >= self.need))]


def credit_fifo(m, o, *, width: int, depth: int, need: int,
                extend_sign: bool = False) -> CreditFifo:
    """A ``depth``-entry FIFO of ``width`` bits driving the output stream ``o`` (a wider
    payload takes the entries sign-extended with ``extend_sign``, else zero-extended).

    The free entries not yet promised to a tile (``depth - level - reserved``) are kept as a
    register (a write moves an entry from reserved to level and leaves it unchanged), and so
    is the credit check (``space >= need``, made on the next ``space`` by
    :meth:`CreditFifo.reserve`): the sequencer reads a flip-flop, not an adder chain from the
    FIFO.  Every user of the FIFO calls :meth:`CreditFifo.reserve` once.
    """
    m.submodules.fifo = fifo = SyncFIFOBuffered(width=width, depth=depth)
    space = Signal(range(depth + 1), init=depth)
    credit = Signal(init=depth >= need)
    r_data = fifo.r_data.as_signed() if extend_sign else fifo.r_data
    m.d.comb += [o.valid.eq(fifo.r_rdy), o.payload.eq(r_data), fifo.r_en.eq(o.ready)]
    return CreditFifo(fifo=fifo, space=space, credit=credit, need=need)


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
    was issued once: an issue must leave it out); ``word``: ``tile * words + step``
    (:func:`tile_sequencer`'s ``words``).
    """

    running: Signal
    cbank: Signal
    tile: Signal
    step: Signal
    start_tile: Signal
    batch_started: Signal
    next_tile: Signal
    held: Signal
    word: Signal

    def steps(self, m, ks: int):
        """The plain issue: step ``s < ks`` of a tile reads word ``s``.  Returns ``(issue,
        first, last)``, high in the cycle the step's address is presented."""
        issue = Signal()
        m.d.comb += issue.eq(self.running & ~self.held & (self.step < ks))
        return issue, issue & (self.step == 0), issue & (self.step == ks - 1)


def tile_sequencer(m, full, credit, *, tiles: int, step_range: int, chain: bool,
                   period=None, last_step=None, words: int = 0) -> Sequencer:
    """Take a full bank when ``credit`` allows, issue ``tiles`` tiles ``period`` cycles apart
    (an ``int`` or a signal), holding at a tile's last cycle until ``credit`` is high, then
    free the bank.  Without ``chain`` the next bank is taken in the cycle after that (one
    idle cycle); with ``chain``, in the same cycle when it is waiting.  ``step`` counts up to
    ``step_range - 1``.  ``words``: ``word`` is ``tile * words + step``, a register kept
    beside ``tile`` and ``step`` (a memory address with no multiply-add before it).
    ``last_step`` in place of ``period``: ``period - 1``, where the caller keeps it (a
    register of a run-time period: no subtraction before the comparison), changed only in
    the cycle a batch is taken and at least 1 (the last-step flag is set a step ahead)."""
    if (period is None) == (last_step is None):
        raise ValueError("tile_sequencer takes one of period and last_step")
    running, cbank = Signal(), Signal()
    tile = Signal(range(max(tiles, 2)))
    step = Signal(range(max(step_range, 2)))
    start_tile, batch_started = Signal(), Signal()
    # the tile a start begins, from registers alone (not from the start's conditions): the
    # next tile while a batch runs, else (a batch taken) tile 0
    next_tile = Signal(range(max(tiles, 2)))
    m.d.comb += next_tile.eq(Mux(running & (tile != tiles - 1), tile + 1, 0))
    held = Signal()                                   # waiting for credit at a tile's end
    word = Signal(range(max(tiles * words + step_range, 2)))    # tile * words + step
    base = Signal(range(max(tiles * words + 1, 2)))             # tile * words
    # at_end (step == period - 1 while running) is a register: set on the step before, so the
    # comparison is off the path from here into the issue logic.  A tile's step 0 is never
    # its last (the period is at least 2, a tile's drain start included)
    if isinstance(period, int) and period < 2:
        raise ValueError(f"tile period {period}: a tile takes at least 2 cycles")
    at_end = Signal()
    final = last_step if period is None else period - 1
    if chain:
        can_new = full.bit_select(Mux(running, ~cbank, cbank), 1) & credit
    else:
        can_new = full.bit_select(cbank, 1) & credit
    first = [tile.eq(0), step.eq(0), word.eq(0), base.eq(0), at_end.eq(0)]
    with m.If(~running):
        with m.If(can_new):
            m.d.comb += [start_tile.eq(1), batch_started.eq(1)]
            m.d.sync += [running.eq(1), *first]
    with m.Elif(at_end):
        with m.If(tile == tiles - 1):
            # the batch is issued: free its bank (and take the next one if it waits)
            m.d.sync += [full.bit_select(cbank, 1).eq(0), cbank.eq(~cbank)]
            if chain:
                with m.If(can_new):
                    m.d.comb += [start_tile.eq(1), batch_started.eq(1)]
                    m.d.sync += first
                with m.Else():
                    m.d.sync += running.eq(0)
            else:
                m.d.sync += running.eq(0)
        with m.Elif(credit):
            m.d.comb += start_tile.eq(1)
            m.d.sync += [tile.eq(tile + 1), step.eq(0), held.eq(0), word.eq(base + words),
                         base.eq(base + words), at_end.eq(0)]
        with m.Else():  # hold at the last step until the FIFO has room, issuing nothing
            m.d.sync += held.eq(1)
    with m.Else():
        m.d.sync += [step.eq(step + 1), word.eq(word + 1), at_end.eq(step + 1 == final)]
    return Sequencer(running=running, cbank=cbank, tile=tile, step=step,
                     start_tile=start_tile, batch_started=batch_started, next_tile=next_tile,
                     held=held, word=word)


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


def drain_sequencer(m, start, *, rows: int, cols: int, tiles: int, n: int,
                    width: int = 1) -> Drain:
    """From the cycle after ``start`` (a tile's results are complete), walk its ``rows *
    cols`` results one a cycle (``width`` a cycle, one row only: ``j`` the first of them);
    tiles complete in order, so the tile index counts along."""
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
        m.d.sync += j.eq(j + width)
        if rows > 1:
            m.d.sync += col.eq(Mux(col == cols - 1, 0, col + 1))
        with m.If(j == rows * cols - width):
            m.d.sync += active.eq(0)
    n_idx = Signal(range(tiles * cols + 1))
    m.d.comb += n_idx.eq(d_cur * cols + col)
    return Drain(active=active, j=j, n_idx=n_idx, ok=active & (n_idx < n))


def drain_select(m, res, drain: Drain) -> tuple[Value, Drain]:
    """The result ``res[drain.j]`` the drain reads, and the drain's state in the cycle it is
    read.  Up to :data:`~rtl_gen.design.timing.SELECT_DIRECT` results: one multiplexer, in
    the cycle the drain presents ``j``.  More: the cycle before, one register per group of
    :data:`~rtl_gen.design.timing.SELECT_GROUP` results takes its ``j mod 4``-th, and the
    returned select reads those registers a cycle later, with ``ok`` and ``n_idx`` delayed to
    match (:func:`~rtl_gen.design.timing.select_stages`: one more drain stage).  The first
    stage reads ``res`` in the same cycles as a single select would, so the margin before
    the next tile's results land is unchanged."""
    res = list(res)
    if not select_stages(len(res)):
        return Array(res)[drain.j], drain
    shape = Value.cast(res[0]).shape()
    low = drain.j[:(SELECT_GROUP - 1).bit_length()]
    parts = []
    for g in range(0, len(res), SELECT_GROUP):
        part = Signal(shape, name=f"drain_part{g // SELECT_GROUP}", reset_less=True)
        m.d.sync += part.eq(Array(res[g:g + SELECT_GROUP])[low])
        parts.append(part)
    j = Signal.like(drain.j, name="drain_j", reset_less=True)
    n_idx = Signal.like(drain.n_idx, name="drain_n_idx", reset_less=True)
    active, ok = Signal(name="drain_active"), Signal(name="drain_ok")
    m.d.sync += [j.eq(drain.j), n_idx.eq(drain.n_idx), active.eq(drain.active),
                 ok.eq(drain.ok)]
    high = j >> (SELECT_GROUP - 1).bit_length()
    return Array(parts)[high], Drain(active=active, j=j, n_idx=n_idx, ok=ok)


def drain_head(m, head, drain: Drain, n: int) -> tuple[Value, Drain]:
    """The result a shifting drain reads (``head``: the array's ``res[0]``, which already
    holds ``res[drain.j]``), and the drain's state in the cycle it is read: as
    :func:`drain_select` over ``n`` results, with the same register stage where that has
    one, so the cycle model is the same for either drain."""
    if not select_stages(n):
        return head, drain
    r = Signal.like(head, name="drain_head", reset_less=True)
    j = Signal.like(drain.j, name="drain_j", reset_less=True)
    n_idx = Signal.like(drain.n_idx, name="drain_n_idx", reset_less=True)
    active, ok = Signal(name="drain_active"), Signal(name="drain_ok")
    m.d.sync += [r.eq(head), j.eq(drain.j), n_idx.eq(drain.n_idx), active.eq(drain.active),
                 ok.eq(drain.ok)]
    return r, Drain(active=active, j=j, n_idx=n_idx, ok=ok)


def signed_bits(lo: int, hi: int) -> int:
    """Bits of the smallest two's-complement signal holding every integer in ``lo..hi``."""
    return max(int(lo).bit_length() if lo >= 0 else (-int(lo) - 1).bit_length(),
               int(hi).bit_length() if hi >= 0 else (-int(hi) - 1).bit_length()) + 1


#: Requantization methods of a plan (``"auto"`` chooses one per layer, see :func:`plan_requant`).
REQUANT_METHODS = ("auto", "multiply", "threshold")


@dataclasses.dataclass(frozen=True)
class RequantPlan:
    """How an integer layer's drain turns its accumulator into the output, sized from the
    layer's real values (:func:`plan_requant`).

    Members
    -------
    method:
        ``"multiply"`` (``* M``, ``+ 2**(S-1)``, ``>> S``, clamp), ``"threshold"``
        (``2**a - 1`` comparisons of the accumulator against per-channel thresholds) or
        ``"none"`` (logits: the accumulator).
    lo, hi:
        Per channel, the smallest and largest ``acc = x @ w.T + bias`` over every input the
        layer can get (for a term-revealing layer, the accumulator's whole range).
    bias, mult, shift:
        Per channel.
    out_bits:
        The output activation's width (``0`` for logits).
    thresholds:
        ``"threshold"`` only: per channel, ``T[j-1]`` the smallest ``acc`` whose output is at
        least ``j`` (``hi + 1`` when none is), ``j = 1 .. 2**out_bits - 1``.
    """

    method: str
    lo: tuple[int, ...]
    hi: tuple[int, ...]
    bias: tuple[int, ...]
    mult: tuple[int, ...] = ()
    shift: tuple[int, ...] = ()
    out_bits: int = 0
    thresholds: tuple[tuple[int, ...], ...] = ()

    @property
    def acc_bits(self) -> int:
        """Width of ``acc`` (bias included) over every input."""
        return signed_bits(min(self.lo), max(self.hi))

    @property
    def m_bits(self) -> int:
        return max(int(m).bit_length() for m in self.mult) if self.mult else 0

    @property
    def product_bits(self) -> int:
        """Width of ``acc * M + 2**(S-1)`` over every channel's range."""
        ps = [v * m + (1 << (s - 1))
              for lo, hi, m, s in zip(self.lo, self.hi, self.mult, self.shift, strict=True)
              for v in (lo, hi)]
        return signed_bits(min(ps), max(ps))


def acc_range(layer) -> tuple[list[int], list[int]]:
    """Per output channel, the extremes of ``x @ w.T + bias`` over every input vector of
    ``layer``'s activation range (each input takes its range's end that makes the product
    largest or smallest); a term-revealing layer's truncated weights and activations are
    bounded only by its accumulator width (:attr:`DenseLayer.acc_bits`)."""
    bias = [int(b) for b in layer.bias]
    if layer.tr is not None:
        half = 1 << (layer.acc_bits - 1)
        return [-half] * len(bias), [half - 1] * len(bias)
    if layer.in_signed:
        x_lo, x_hi = -(1 << (layer.in_bits - 1)), (1 << (layer.in_bits - 1)) - 1
    else:
        x_lo, x_hi = 0, (1 << layer.in_bits) - 1
    w = [[int(v) for v in row] for row in layer.w_int]
    lo = [b + sum(min(v * x_lo, v * x_hi) for v in row) for row, b in zip(w, bias, strict=True)]
    hi = [b + sum(max(v * x_lo, v * x_hi) for v in row) for row, b in zip(w, bias, strict=True)]
    return lo, hi


def requant_thresholds(lo: int, hi: int, mult: int, shift: int, out_bits: int) -> tuple:
    """``T[j-1]``, ``j = 1 .. 2**out_bits - 1``: the smallest ``acc`` in ``lo..hi`` with
    ``clamp((acc * M + 2**(S-1)) >> S, 0, 2**out_bits - 1) >= j``, or ``hi + 1``.  The
    output is non-decreasing in ``acc`` (``M > 0``), so it is the number of thresholds
    ``acc`` reaches."""
    out = []
    for j in range(1, 1 << out_bits):
        # (acc*M + 2**(S-1)) >> S >= j  <=>  acc*M >= j*2**S - 2**(S-1)
        t = -((-((j << shift) - (1 << (shift - 1)))) // mult)
        out.append(min(max(t, lo), hi + 1))
    return tuple(out)


def plan_requant(layer, method: str = "auto") -> RequantPlan:
    """The drain of ``layer`` (a :class:`~rtl_gen.design.network.DenseLayer`) sized from its
    real values: the accumulator's range (:func:`acc_range`), ``M``'s bit length, ``S``.

    ``method`` (hidden layers): ``"multiply"``, ``"threshold"`` or ``"auto"``, which takes
    the thresholds when their comparators have fewer bits than the multiplier's partial
    products: ``(2**a - 1) * acc_bits < acc_bits * m_bits``, i.e. ``2**a - 1 < m_bits``.
    """
    if method not in REQUANT_METHODS:
        raise ValueError(f"requant must be one of {', '.join(REQUANT_METHODS)}, not "
                         f"{method!r}")
    lo, hi = acc_range(layer)
    bias = tuple(int(b) for b in layer.bias)
    if layer.activation != "relu":
        return RequantPlan(method="none", lo=tuple(lo), hi=tuple(hi), bias=bias)
    mult = tuple(int(m) for m in layer.requant_multiplier)
    shift = tuple(int(s) for s in layer.requant_shift)
    a = layer.out_bits
    if method == "auto":
        m_bits = max(m.bit_length() for m in mult)
        method = "threshold" if (1 << a) - 1 < m_bits else "multiply"
    thresholds = ()
    if method == "threshold":
        if a > 8:
            raise ValueError(f"layer {layer.name!r}: threshold requantization takes "
                             f"activations of at most 8 bits ({(1 << a) - 1} thresholds), "
                             f"not {a}")
        thresholds = tuple(requant_thresholds(lo_n, hi_n, m, s, a)
                           for lo_n, hi_n, m, s in zip(lo, hi, mult, shift, strict=True))
    return RequantPlan(method=method, lo=tuple(lo), hi=tuple(hi), bias=bias, mult=mult,
                       shift=shift, out_bits=a, thresholds=thresholds)


def _rom(values, shape, slots: int, fill: int = 0):
    """``values`` (one per channel) as a ROM of ``slots`` entries, or the constant itself
    when every channel has the same value."""
    values = [int(v) for v in values]
    if len(set(values)) == 1:
        return None, Const(values[0], shape)
    return Array(Const(values[n] if n < len(values) else fill, shape) for n in range(slots)), None


def _lookup(rom, n):
    table, const = rom
    return const if table is None else table[n]


def int_drain(m, rq: RequantPlan, result, drain: Drain, *, slots: int):
    """The integer drain of a layer planned as ``rq`` (:func:`plan_requant`) on ``result``
    (the array's result the drain reads this cycle, bias not included).  Returns ``(data,
    en)`` for the FIFO, ``3`` (hidden) or ``2`` (logits) cycles after the read.

    Every width comes from the layer's real values (the result's and the accumulator's
    ranges, ``M``, ``S``), and a hidden layer's stages each hold one carry chain at most:

    1. the result read (the multiplexer over the array's results) registered, with the
       channel's ``C = bias * M + 2**(S-1)`` and ``M`` (or its thresholds) from ROMs;
    2. ``result * M + C``, which is ``acc * M + 2**(S-1)`` exactly (a multiply-add, one DSP
       where there is one), or the threshold comparisons;
    3. ``>> S`` (wiring, plus a shifter over ``S - min(S)`` when the channels' shifts
       differ) and the clamp on the high bits: zero when the sign is set, saturate when a
       bit above the activation's width is set; no comparison on a carry chain.

    Logits: the result read and the channel's bias registered (stage 1, as above), then
    ``result + bias`` (stage 2), so the read's multiplexer and the adder's carry chain are
    in different stages."""
    ok1 = Signal()
    n1 = Signal(range(slots + 1), reset_less=True)
    r_lo = min(lo - b for lo, b in zip(rq.lo, rq.bias, strict=True))
    r_hi = max(hi - b for hi, b in zip(rq.hi, rq.bias, strict=True))
    r_val = Signal(signed(signed_bits(r_lo, r_hi)), reset_less=True)
    m.d.sync += [r_val.eq(result), ok1.eq(drain.ok), n1.eq(drain.n_idx)]
    ok2 = Signal()
    m.d.sync += ok2.eq(ok1)
    if rq.method == "none":
        b_shape = signed(signed_bits(min(rq.bias), max(rq.bias)))
        bias_rom = _rom(rq.bias, b_shape, slots)
        b_val = Signal(b_shape, reset_less=True)
        a_val = Signal(signed(rq.acc_bits), reset_less=True)
        m.d.sync += [b_val.eq(_lookup(bias_rom, drain.n_idx)), a_val.eq(r_val + b_val)]
        return a_val, ok2
    if rq.method == "threshold":
        # the result against T - bias (no bias adder); the count of thresholds met
        nt = len(rq.thresholds[0])
        ge = Signal(nt, reset_less=True)
        for j in range(nt):
            ts = [t[j] - b for t, b in zip(rq.thresholds, rq.bias, strict=True)]
            t_rom = _rom(ts, signed(signed_bits(min(ts), max(ts))), slots)
            t_j = Signal(signed(signed_bits(min(ts), max(ts))), name=f"thr{j}",
                         reset_less=True)
            m.d.sync += t_j.eq(_lookup(t_rom, drain.n_idx))
            m.d.sync += ge[j].eq(r_val >= t_j)
        cnt = Signal(rq.out_bits, reset_less=True)
        ok3 = Signal()
        m.d.sync += [cnt.eq(sum(ge[j] for j in range(nt))), ok3.eq(ok2)]
        return cnt, ok3
    consts = [b * mult + (1 << (sh - 1))
              for b, mult, sh in zip(rq.bias, rq.mult, rq.shift, strict=True)]
    c_shape = signed(signed_bits(min(consts), max(consts)))
    c_rom = _rom(consts, c_shape, slots)
    c_val = Signal(c_shape, reset_less=True)
    m.d.sync += c_val.eq(_lookup(c_rom, drain.n_idx))
    m_rom = _rom(rq.mult, unsigned(rq.m_bits), slots)
    m_val = _lookup(m_rom, drain.n_idx)
    if m_rom[0] is not None:  # registered beside the result: no ROM on the multiplier path
        m_val = Signal(unsigned(rq.m_bits), reset_less=True)
        m.d.sync += m_val.eq(_lookup(m_rom, drain.n_idx))
    p_val = Signal(signed(rq.product_bits), reset_less=True)
    m.d.sync += p_val.eq(r_val * m_val + c_val)
    s_min, s_max = min(rq.shift), max(rq.shift)
    y = p_val[s_min:].as_signed() if s_min < len(p_val) else p_val[-1:].as_signed()
    if s_max != s_min:
        d_bits = (s_max - s_min).bit_length()
        d_rom = _rom([s - s_min for s in rq.shift], unsigned(d_bits), slots)
        p_d = Signal(d_bits, reset_less=True)
        m.d.sync += p_d.eq(_lookup(d_rom, n1))
        y = y >> p_d
    a = rq.out_bits
    if len(y) < a + 1:
        y_ext = Signal(signed(a + 1))
        m.d.comb += y_ext.eq(y)
        y = y_ext
    neg = y[-1]
    over = y[a:-1].any() if len(y) - 1 > a else Const(0)
    out = Signal(a, reset_less=True)
    ok3 = Signal()
    m.d.sync += [out.eq(Mux(neg, 0, y[:a] | over.replicate(a))), ok3.eq(ok2)]
    return out, ok3


# -- the cycle counter -------------------------------------------------------------------------


def counter_bits(bound: int) -> int:
    """Width of a layer's cycle counter whose model says a batch takes at most ``bound``
    cycles: one bit of headroom over ``bound`` (stalls lengthen a batch), saturating."""
    return max(int(bound), 1).bit_length() + 1


def batch_counter(m, cycles, *, started, written, per_batch: int, in_flight: int,
                  bound: int) -> None:
    """Drive ``cycles`` with the cycles of the last finished batch: from the cycle it was
    taken (``started``) to the cycle its last result is written (``written`` high for the
    ``per_batch``-th time), both counted.  Each of up to ``in_flight`` batches has an
    elapsed-cycles counter of :func:`counter_bits` ``(bound)`` bits, which saturates (a
    batch of ``2**w`` cycles or more reads ``2**w``); ``cycles`` (the port's width) is
    zero-extended."""
    w = counter_bits(bound)
    q = in_flight
    top = (1 << w) - 1
    elapsed = [Signal(w, name=f"elapsed{i}", reset_less=True) for i in range(q)]
    s_wr = Signal(range(max(q, 2)))
    s_rd = Signal(range(max(q, 2)))
    writes = Signal(range(per_batch + 1))
    ending = Signal()
    m.d.comb += ending.eq(written & (writes == per_batch - 1))
    with m.If(written):
        m.d.sync += writes.eq(Mux(ending, 0, writes + 1))
    for i, el in enumerate(elapsed):
        with m.If(started & (s_wr == i)):
            m.d.sync += el.eq(1)
        with m.Elif(el != top):
            m.d.sync += el.eq(el + 1)
    with m.If(started):
        m.d.sync += s_wr.eq(Mux(s_wr == q - 1, 0, s_wr + 1))
    count = Signal(w + 1, name="batch_cycles")
    with m.If(ending):
        m.d.sync += [count.eq(Array(elapsed)[s_rd] + 1),
                     s_rd.eq(Mux(s_rd == q - 1, 0, s_rd + 1))]
    m.d.comb += cycles.eq(count)


def column_words(codes, timing, w_bits: int) -> list[int]:
    """The weight ROM of an array of one row, one word per step: word ``t*S + s`` (``S``
    steps a tile, ``L = timing.lanes`` inputs a step) holds the code of weight ``[t*C + c,
    s*L + l]`` of the ``(N, K)`` integer array ``codes`` at bits ``(c*L + l) * w_bits`` (code
    0 for the channels beyond ``N`` and the inputs beyond ``K``)."""
    t = timing
    words = []
    for tile in range(t.tiles):
        for s in range(t.k_steps):
            word = 0
            for c in range(t.cols):
                n = tile * t.cols + c
                for lane in range(t.lanes):
                    k = s * t.lanes + lane
                    if n < t.n and k < t.k:
                        word |= int(codes[n, k]) << ((c * t.lanes + lane) * w_bits)
            words.append(word)
    return words
