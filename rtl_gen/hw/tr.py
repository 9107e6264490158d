"""Term revealing in hardware: weight-term storage, the term-pair array, run-time control.

A term-revealing layer (``NUMERICS.md`` section 4) keeps, of each group of ``g`` weights,
the ``k`` largest HESE terms, and of each activation its ``s`` largest.  The layer engine
(:class:`rtl_gen.hw.tr_layer.TRLayerEngine`) runs such a layer on a :class:`TRArray`:

::

    activations ──► DataTermUnit (HESE, keep s terms) ──► input buffer: one word = a group
                                                          of g truncated activations x'
    weight-term ROM: per (tile, group, slot) one term per column ──┐        │
      (exponent, sign, index in group), slots in the order          ▼        ▼
      "exponent descending, index ascending"             TRArray: PE (r, c) adds
                                                          ±(x'[r][index_c] << exponent_c)

Because the terms of a group are stored sorted, TR with budget ``k`` reads the first
``min(k, T)`` slots of every group (``T``: the most terms any group of the layer has), and
conventional mode reads all ``T`` slots with untruncated activations: any ``k`` works
without re-synthesis.  A step of the array is one group; it takes ``slots`` cycles, one
weight term per column per cycle, each term multiplying a whole (truncated) activation by a
shift, so the ``k * s`` term pairs of a group cost ``k`` cycles.

**The group-per-cycle PE** (:class:`TRGroupArray`, chosen by
:attr:`~rtl_gen.hw.layer.ArrayConfig.tr_terms` ``P > 1``, or 0 for the layer's budget):
each PE takes ``P`` weight-term slots of its column a cycle, selects each term's activation,
shifts and signs it, and sums the ``P`` term pairs in a pipelined adder tree into its
accumulator.  The ROM holds ``P`` slots a word, so a group takes ``ceil(n / P)`` cycles
(``n``: ``min(k, T)`` under TR, ``T`` conventional; one cycle when ``P >= n``); the slots
of a word beyond ``n`` are masked at run time, so ``k`` still selects exactly TR(k).

Control (ports ``tr_mode``, ``tr_k``, ``tr_s``, shared by every TR layer of a network; see the
register map of :mod:`rtl_gen.protocol`): ``mode`` (1 TR, 0 conventional), ``k``, ``s`` (0:
keep every data term); :data:`K_OWN` and :data:`S_OWN`, the reset values, mean each layer's
own budget and data terms from the bundle.  The layer engine latches them when it takes a
batch, so a change between inferences takes effect at the next one.
"""

from __future__ import annotations

import math

from amaranth import Module, Mux, Shape, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..design.golden import TRControl, TRMode
from ..design.network import DenseLayer
from ..design.timing import tr_group_latency
from ..numerics.terms import group_term_order
from ..protocol import K_OWN, S_OWN

__all__ = ["K_OWN", "S_OWN", "TR_READS", "TRArray", "TRGroupArray", "check_read",
           "control_values", "layer_controls", "term_layout", "term_rom_words", "tr_per_cycle",
           "tr_slots", "tr_terms"]

#: Cycles from presenting a ``last`` step to ``done`` (operand select, product, result).
TR_ARRAY_LATENCY = 3



def control_values(control: TRControl | None) -> tuple[int, int, int]:
    """``(mode, k, s)`` register values for a golden-model ``control`` (``None``: the
    bundle's own settings): :data:`K_OWN`/:data:`S_OWN` leave a layer's own value, ``s = 0``
    keeps every data term."""
    if control is None:
        return 1, K_OWN, S_OWN
    if control.data_terms == 0:
        raise ValueError("data_terms 0 (every activation zero) has no hardware setting; "
                         "give bits + 1 or more to keep every data term")
    mode = 1 if control.mode is TRMode.TR else 0
    k = K_OWN if control.budget is None else min(int(control.budget), K_OWN - 1)
    s = S_OWN if control.data_terms is None else min(int(control.data_terms), S_OWN - 1)
    return mode, k, s


def layer_controls(layer_tr, control: TRControl | None) -> tuple[int, int, int]:
    """``(mode, k, s)`` that one layer works with under ``control`` (its own values where the
    control leaves them); ``s = 0``: every data term."""
    mode, k, s = control_values(control)
    return (mode, layer_tr.budget if k == K_OWN else k,
            (layer_tr.data_terms or 0) if s == S_OWN else s)


def tr_terms(layer: DenseLayer):
    """The layer's weight terms in storage order (:func:`group_term_order`)."""
    return group_term_order(layer.w_int, layer.tr.group, layer.scheme.magnitude_bits)


def tr_max_terms(layer: DenseLayer) -> int:
    """``T``: the most weight terms of any group of the layer (at least 1)."""
    return max(1, tr_terms(layer).sign.shape[-1])


def tr_used_terms(layer: DenseLayer, control: TRControl | None = None) -> int:
    """Weight terms of each group the layer reads under ``control``: ``min(k, T)`` in TR
    mode (0 for ``k = 0``), ``T`` in conventional mode."""
    t_max = tr_max_terms(layer)
    mode, k, _ = layer_controls(layer.tr, control)
    return min(k, t_max) if mode else t_max


def tr_per_cycle(layer: DenseLayer, terms: int = 1) -> int:
    """``P``, weight terms a PE adds a cycle, for an array's ``tr_terms``: 1 is the
    slot-serial PE (:class:`TRArray`); ``P > 1`` the group-per-cycle PE
    (:class:`TRGroupArray`); 0 the layer's budget ``k`` (at most ``T``, at least 1): one
    group a cycle at the bundle's own setting."""
    if terms == 0:
        return max(1, min(layer.tr.budget, tr_max_terms(layer)))
    return terms


def tr_slots(layer: DenseLayer, control: TRControl | None = None, per_cycle: int = 1) -> int:
    """Cycles per group: ``ceil(n / P)`` of the :func:`tr_used_terms` ``n``, at least 1
    (``P = 1``: weight-term slots, ``min(k, T)`` in TR mode, ``T`` in conventional mode)."""
    return max(1, -(-tr_used_terms(layer, control) // per_cycle))


def term_layout(group: int, exp_bits: int) -> data.StructLayout:
    """One stored weight term: exponent, negative, index in the group, present."""
    return data.StructLayout({"exp": exp_bits, "neg": 1,
                              "idx": max(1, (group - 1).bit_length()), "nz": 1})


def term_rom_words(layer: DenseLayer, cols: int,
                   per_cycle: int = 1) -> tuple[list[int], int, data.StructLayout]:
    """The weight-term ROM of a layer on ``cols`` columns, ``per_cycle`` (``P``) slots a
    word.

    Returns ``(words, T, layout)``: with ``W = ceil(T / P)`` words a group, word
    ``(tile * G + group) * W + w`` holds, for column ``c`` (``c * P * layout.size`` bits up)
    and lane ``j`` (``j * layout.size`` bits above that), the term of slot ``w * P + j`` of
    group ``group`` of output ``tile * cols + c`` (absent when that output or term does not
    exist).  ``P = 1``: word ``(tile * G + group) * T + slot``, one term per column.
    """
    terms = tr_terms(layer)
    g = layer.tr.group
    n_out, n_groups = terms.count.shape
    t_max = max(1, terms.sign.shape[-1])
    layout = term_layout(g, max(1, layer.scheme.magnitude_bits.bit_length()))
    width = layout.size
    tiles = math.ceil(n_out / cols)
    per_group = -(-t_max // per_cycle)
    words = []
    for tile in range(tiles):
        for grp in range(n_groups):
            for w in range(per_group):
                word = 0
                for c in range(cols):
                    n = tile * cols + c
                    for j in range(per_cycle):
                        slot = w * per_cycle + j
                        if n < n_out and slot < terms.sign.shape[-1] \
                                and terms.sign[n, grp, slot]:
                            field = (int(terms.exponent[n, grp, slot])
                                     | (int(terms.sign[n, grp, slot] < 0)
                                        << layout["neg"].offset)
                                     | (int(terms.index[n, grp, slot]) << layout["idx"].offset)
                                     | (1 << layout["nz"].offset))
                            word |= field << ((c * per_cycle + j) * width)
                words.append(word)
    return words, t_max, layout


class TRArray(wiring.Component):
    """``rows x cols`` term-pair PEs, operands broadcast (every PE works on the same step).

    Parameters
    ----------
    rows, cols:
        ``R`` (vectors of a batch) and ``C`` (output channels of a tile).
    group:
        ``g``: activations per step (one TR group).
    x_shape:
        Shape of one (truncated) activation.
    term:
        The stored term's layout (:func:`term_layout`).
    acc_bits:
        Accumulator width.
    read:
        ``"select"``: ``x`` is the group and each PE selects its term's activation (a
        register stage); ``"memory"``: ``x`` is each PE's activation, already read by its
        term's index from its copy of the input bank, a cycle after ``w`` (the memory's
        read is that register stage).

    Members
    -------
    x : In(ArrayLayout(ArrayLayout(x_shape, g), R))
        The group's activations, per row (``read="memory"``: ``C`` activations per row,
        PE ``(r, c)``'s at ``x[r][c]``).
    w : In(ArrayLayout(term, C))
        One weight term per column.
    valid, first, last, on : In(1)
        The step is real; starts a tile; ends one; its terms count (0 for budget 0).
    res : Out(ArrayLayout(signed(acc_bits), R * C))
    done : Out(1)
        As for :class:`~rtl_gen.hw.array.SystolicArray`; ``done`` comes
        :data:`TR_ARRAY_LATENCY` cycles after the ``last`` step is presented.
    """

    def __init__(self, *, rows: int, cols: int, group: int, x_shape, term: data.StructLayout,
                 acc_bits: int, read: str = "select"):
        self._rows, self._cols, self._group = rows, cols, group
        self._x_shape, self._term, self._acc_bits = x_shape, term, acc_bits
        self._read = check_read(read)
        width = cols if read == "memory" else group
        super().__init__({
            "x": In(data.ArrayLayout(data.ArrayLayout(x_shape, width), rows)),
            "w": In(data.ArrayLayout(term, cols)),
            "valid": In(1), "first": In(1), "last": In(1), "on": In(1),
            "res": Out(data.ArrayLayout(signed(acc_bits), rows * cols)),
            "done": Out(1),
        })

    latency = TR_ARRAY_LATENCY

    def elaborate(self, platform):
        m = Module()
        rows, cols = self._rows, self._cols
        acc_shape = signed(self._acc_bits)
        # stage 1: each PE's activation selected by its column's term index
        f1 = Signal(data.StructLayout({"valid": 1, "first": 1, "last": 1}))
        f2 = Signal.like(f1)
        m.d.sync += [f1.valid.eq(self.valid), f1.first.eq(self.first), f1.last.eq(self.last),
                     f2.eq(f1)]
        m.d.sync += self.done.eq(f2.valid & f2.last)
        for c in range(cols):
            term = self.w[c]
            t1 = Signal(self._term, name=f"t1_{c}", reset_less=True)
            m.d.sync += [t1.eq(term), t1.nz.eq(term.nz & self.on)]
            for r in range(rows):
                if self._read == "memory":
                    sel = self.x[r][c]
                else:
                    sel = Signal(self._x_shape, name=f"sel_{r}_{c}", reset_less=True)
                    m.d.sync += sel.eq(self.x[r][term.idx])
                # stage 2: the term pair: a shift, negated as ~v + 1 with the +1 carried into
                # the accumulator's adder (no negation adder of its own)
                p = Signal(acc_shape, name=f"p_{r}_{c}", reset_less=True)
                cin = Signal(name=f"cin_{r}_{c}", reset_less=True)
                shifted = Signal(acc_shape, name=f"sh_{r}_{c}")
                m.d.comb += shifted.eq(sel << t1.exp)
                neg = t1.nz & t1.neg
                m.d.sync += [p.eq(Mux(t1.nz, shifted ^ neg.replicate(len(shifted)), 0)),
                             cin.eq(neg)]
                # stage 3: accumulate; the tile's last step lands in `res`
                acc = Signal(acc_shape, name=f"acc_{r}_{c}", reset_less=True)
                total = Mux(f2.first, 0, acc) + p + cin
                with m.If(f2.valid):
                    m.d.sync += acc.eq(total)
                    with m.If(f2.last):
                        m.d.sync += self.res[r * cols + c].eq(total)
        return m


class TRGroupArray(wiring.Component):
    """``rows x cols`` group-per-cycle term-pair PEs, operands broadcast.

    Each PE takes ``P`` weight terms of its column a cycle (lane ``j`` of ``w[c]``), and for
    each: selects the activation its index names in the row's group, shifts it by the
    exponent and, for a negative term, complements it (``~v = -v - 1``); an adder tree sums
    the ``P`` values and the count of complemented ones (so each is ``-v`` exactly) into the
    accumulator.  Lanes ``j >= count`` are masked (their terms count for nothing): the
    run-time budget within the step's word.

    Pipeline (:func:`~rtl_gen.design.timing.tr_group_latency`): operand select, shifted
    terms, ``ceil(log2(P + 1))`` registered levels of the tree (widths growing a bit a level,
    up to ``acc_bits``), the accumulator.  Cost per PE: ``P`` ``g``-to-1 selects of an
    activation, ``P`` shifters, ``P`` adders in the tree; per column a ``P``-bit count.

    Parameters
    ----------
    rows, cols, group, x_shape, term, acc_bits:
        As for :class:`TRArray`.
    per_cycle:
        ``P``, weight terms a PE adds a cycle (at least 2).
    max_exp:
        The largest term exponent (the shifters' range).
    read:
        As for :class:`TRArray`; ``"memory"``: ``x[r][c * P + j]`` is lane ``j`` of PE
        ``(r, c)``'s activation.

    Members
    -------
    x : In(ArrayLayout(ArrayLayout(x_shape, g), R))
        (``read="memory"``: ``C * P`` activations per row.)
    w : In(ArrayLayout(ArrayLayout(term, P), C))
        ``P`` weight terms per column.
    count : In(range(P + 1))
        Lanes of the step that count (the first ``count``).
    valid, first, last : In(1)
    res, done:
        As for :class:`TRArray`; ``done`` comes :attr:`latency` cycles after the ``last``
        step is presented.
    """

    def __init__(self, *, rows: int, cols: int, group: int, per_cycle: int, x_shape,
                 term: data.StructLayout, max_exp: int, acc_bits: int,
                 read: str = "select"):
        if per_cycle < 2:
            raise ValueError(f"the group-per-cycle array adds 2 or more terms a cycle, not "
                             f"{per_cycle}")
        self._rows, self._cols, self._group, self._per = rows, cols, group, per_cycle
        self._x_shape, self._term, self._acc_bits = x_shape, term, acc_bits
        self._max_exp = max_exp
        self._read = check_read(read)
        self.latency = tr_group_latency(per_cycle)
        width = cols * per_cycle if read == "memory" else group
        super().__init__({
            "x": In(data.ArrayLayout(data.ArrayLayout(x_shape, width), rows)),
            "w": In(data.ArrayLayout(data.ArrayLayout(term, per_cycle), cols)),
            "count": In(range(per_cycle + 1)),
            "valid": In(1), "first": In(1), "last": In(1),
            "res": Out(data.ArrayLayout(signed(acc_bits), rows * cols)),
            "done": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        rows, cols, per = self._rows, self._cols, self._per
        acc_bits = self._acc_bits
        acc_shape = signed(acc_bits)
        x_shape = Shape.cast(self._x_shape)
        # a shifted activation, signed, one bit for the sign of an unsigned one
        p_bits = min(acc_bits, x_shape.width + self._max_exp + (0 if x_shape.signed else 1))
        levels = self.latency - 3
        # the step's flags, one register per stage up to the accumulator's
        flags = [(self.valid, self.first, self.last)]
        for i in range(self.latency - 1):
            v, f, la = (Signal(name=f"{n}_{i + 1}") for n in ("valid", "first", "last"))
            m.d.sync += [v.eq(flags[-1][0]), f.eq(flags[-1][1]), la.eq(flags[-1][2])]
            flags.append((v, f, la))
        valid_a, first_a, last_a = flags[-1]
        m.d.sync += self.done.eq(valid_a & last_a)
        for c in range(cols):
            # stage 1: the column's terms, masked beyond the count
            t1 = [Signal(self._term, name=f"t1_{c}_{j}", reset_less=True) for j in range(per)]
            for j in range(per):
                term = self.w[c][j]
                m.d.sync += [t1[j].eq(term), t1[j].nz.eq(term.nz & (self.count > j))]
            # stage 2: how many terms are negated (the +1 of each complement)
            n_neg = Signal(range(per + 1), name=f"nneg_{c}", reset_less=True)
            m.d.sync += n_neg.eq(sum(t.nz & t.neg for t in t1))
            for r in range(rows):
                ops = []
                for j in range(per):
                    if self._read == "memory":
                        sel = self.x[r][c * per + j]
                    else:
                        sel = Signal(x_shape, name=f"sel_{r}_{c}_{j}", reset_less=True)
                        m.d.sync += sel.eq(self.x[r][self.w[c][j].idx])
                    shifted = Signal(signed(p_bits), name=f"sh_{r}_{c}_{j}")
                    m.d.comb += shifted.eq(sel << t1[j].exp)
                    p = Signal(signed(p_bits), name=f"p_{r}_{c}_{j}", reset_less=True)
                    neg = t1[j].neg
                    m.d.sync += p.eq(Mux(t1[j].nz, shifted ^ neg.replicate(p_bits), 0))
                    ops.append(p)
                ops.append(n_neg)
                total = _adder_tree(m, ops, acc_bits, f"tree_{r}_{c}")
                assert len(ops) > 1 and (len(ops) - 1).bit_length() == levels
                # the accumulator; the tile's last step lands in `res`
                acc = Signal(acc_shape, name=f"acc_{r}_{c}", reset_less=True)
                new = Mux(first_a, 0, acc) + total
                with m.If(valid_a):
                    m.d.sync += acc.eq(new)
                    with m.If(last_a):
                        m.d.sync += self.res[r * cols + c].eq(new)
        return m


#: How a term-revealing PE reads its term's activation (``read``; the layer's
#: :attr:`~rtl_gen.hw.layer.ArrayConfig.tr_read`): a select from the group word, or its own
#: copy of the input banks.
TR_READS = ("select", "memory")


def check_read(read: str) -> str:
    """``read`` if it is one of :data:`TR_READS`, else a ValueError naming them."""
    if read not in TR_READS:
        raise ValueError(f"a term-revealing PE reads its activation by one of "
                         f"{', '.join(TR_READS)}, not {read!r}")
    return read


def _adder_tree(m, ops, cap: int, name: str):
    """The sum of ``ops`` in registered levels of two-input adders (an odd one out passes
    through a register), each level a bit wider than its operands up to ``cap`` bits (the
    sum is then kept modulo ``2**cap``, as the accumulator is)."""
    level = 0
    while len(ops) > 1:
        nxt = []
        for i in range(0, len(ops), 2):
            pair = ops[i:i + 2]
            width = min(cap, max(len(v) + (0 if v.shape().signed else 1) for v in pair) + 1)
            s = Signal(signed(width), name=f"{name}_l{level}_{i // 2}", reset_less=True)
            m.d.sync += s.eq(pair[0] + pair[1] if len(pair) == 2 else pair[0])
            nxt.append(s)
        ops, level = nxt, level + 1
    return ops[0]
