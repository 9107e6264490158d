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

Control (ports ``tr_mode``, ``tr_k``, ``tr_s``, shared by every TR layer of a network; see the
register map of :mod:`rtl_gen.protocol`): ``mode`` (1 TR, 0 conventional), ``k``, ``s`` (0:
keep every data term); :data:`K_OWN` and :data:`S_OWN`, the reset values, mean each layer's
own budget and data terms from the bundle.  The layer engine latches them when it takes a
batch, so a change between inferences takes effect at the next one.
"""

from __future__ import annotations

import math

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..design.golden import TRControl, TRMode
from ..design.network import DenseLayer
from ..numerics.terms import group_term_order
from ..protocol import K_OWN, S_OWN

__all__ = ["K_OWN", "S_OWN", "TRArray", "control_values", "layer_controls", "term_layout",
           "term_rom_words", "tr_slots", "tr_terms"]

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


def tr_slots(layer: DenseLayer, control: TRControl | None = None) -> int:
    """Weight-term slots read per group: ``min(k, T)`` in TR mode, ``T`` in conventional
    mode, at least 1 (``T``: the most terms of any group of the layer)."""
    t_max = max(1, tr_terms(layer).sign.shape[-1])
    mode, k, _ = layer_controls(layer.tr, control)
    return max(1, min(k, t_max)) if mode else t_max


def term_layout(group: int, exp_bits: int) -> data.StructLayout:
    """One stored weight term: exponent, negative, index in the group, present."""
    return data.StructLayout({"exp": exp_bits, "neg": 1,
                              "idx": max(1, (group - 1).bit_length()), "nz": 1})


def term_rom_words(layer: DenseLayer, cols: int) -> tuple[list[int], int, data.StructLayout]:
    """The weight-term ROM of a layer on ``cols`` columns.

    Returns ``(words, T, layout)``: word ``(tile * G + group) * T + slot`` holds, for column
    ``c``, the ``slot``-th term of group ``group`` of output ``tile * cols + c`` (absent when
    that output or term does not exist).
    """
    terms = tr_terms(layer)
    g = layer.tr.group
    n_out, n_groups = terms.count.shape
    t_max = max(1, terms.sign.shape[-1])
    layout = term_layout(g, max(1, layer.scheme.magnitude_bits.bit_length()))
    width = layout.size
    tiles = math.ceil(n_out / cols)
    words = []
    for tile in range(tiles):
        for grp in range(n_groups):
            for slot in range(t_max):
                word = 0
                for c in range(cols):
                    n = tile * cols + c
                    if n < n_out and slot < terms.sign.shape[-1] and terms.sign[n, grp, slot]:
                        field = (int(terms.exponent[n, grp, slot])
                                 | (int(terms.sign[n, grp, slot] < 0) << layout["neg"].offset)
                                 | (int(terms.index[n, grp, slot]) << layout["idx"].offset)
                                 | (1 << layout["nz"].offset))
                        word |= field << (c * width)
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

    Members
    -------
    x : In(ArrayLayout(ArrayLayout(x_shape, g), R))
        The group's activations, per row.
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
                 acc_bits: int):
        self._rows, self._cols, self._group = rows, cols, group
        self._x_shape, self._term, self._acc_bits = x_shape, term, acc_bits
        super().__init__({
            "x": In(data.ArrayLayout(data.ArrayLayout(x_shape, group), rows)),
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
