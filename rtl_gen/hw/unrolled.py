"""A fully unrolled network: one whole input vector per cycle, the weights as constants.

Every layer is a constant-matrix multiply built as an adder graph whose shift-and-add terms
are shared between outputs (distributed arithmetic), followed by the bias and, for a hidden
layer, the requantizer; the graph is pipelined every ``stage`` adder levels::

    i (K0 codes) ──► x ──► adder graph ──► + bias ──► * M + 2**(S-1) ──► >> S, clamp ──► …
                           (shared terms,    │             (hidden layers)
                            registers every  └──► last layer: logits ──► argmax ──► o, cls
                            `stage` levels)

Latency: the slots are counted in adder levels across each layer, not per block: with the
fabric requantizer (``multiplier="adders"``) its shift-and-add levels and then the clamp (from
the bits: the sign and any bit above the code; no comparison) continue the accumulators'
levels, sharing their last slot when it has room; a table requantizer
(``multiplier="rom"``: the codes of the accumulators whose code is not clamped, in block RAM,
:func:`rom_requant`) takes its accumulator less the table's base (folded into the bias) into
a clamp to the table's address in the slot after the accumulators' and reads the block RAM,
enabled with the pipeline, in the next, or, where the graph node under the accumulator takes
at most :data:`ROM_REQUANT_ENTRIES` values (:func:`direct_requant`), takes that node's low
bits as the address in the node's own slot (no bias add, no clamp); a constant code (an
output with no weight) is a constant; the argmax of up to
:data:`ARGMAX_MATRIX_MAX` classes compares every pair of logits the level after them (one
carry chain each) and, in the next slot, ANDs each class's comparisons (the first of equal
largest logits wins) into a one-hot index, which goes with the logits straight into the
output buffer.  Each layer's graph is the one of da4ml's fewest-adder and shallowest graphs
that ends in the earlier slot (``hard_dc=None``).

The adder graph of each layer comes from da4ml's constant-matrix-vector-multiply solver
(:func:`da4ml.cmvm.solve`): its ops (``buf[a] ± buf[b] << shift`` over the layer's inputs,
possibly as a cascade of two matrices) are read into this module's own graph of exact
integer adds; every node's linear form over the layer's inputs is kept, the graph's outputs
are checked to equal the weight matrix exactly (a refused graph names the layer), and every
node's width is the exact range of its linear form over the inputs' ranges (each hidden
layer's output range is the requantizer's image of its accumulator's range).

A term-revealing network (term revealing fixed at build time, the bundle's group budget and
data terms) is a constant-weight network like any other: each layer's graph multiplies by its
revealed weights, which have fewer signed-digit terms than the weights (digits-tr at k = 10 of
16: 0.61 a weight against digits-int4's 1.05), and its inputs are first truncated to their
data terms (see :func:`plan_unrolled`).

Public API
----------
:func:`plan_unrolled` ``(net, *, stage=2, schedule="minreg", hard_dc=None) -> UnrolledPlan``
    Validate an integer :class:`~rtl_gen.design.network.Network` and build every layer's
    adder graph and pipeline schedule; raises :class:`UnrolledPlanError` (one line naming
    the layer or the option) for a float network or a bad option.
:class:`UnrolledPlan`
    The frozen plan: ``net``, ``stage``, ``schedule``, ``hard_dc``, ``layers`` (one
    :class:`LayerGraph` each), ``latency`` (cycles from an input vector's transfer to its
    logits' transfer when the output is ready), ``interval`` (``1``: a vector every cycle),
    ``in_shape`` / ``out_shape`` (a code, a logit), ``classes``; ``adders`` counts the
    graphs' two-input adders and :meth:`~UnrolledPlan.describe` summarizes the layers.
:class:`UnrolledNetworkEngine` ``(net, *, stage=2, schedule="minreg", hard_dc=None)`` (or
:meth:`~rtl_gen.hw.kit.Planned.from_plan`)
    The Amaranth component.  Ports:

    ``i`` : ``In(stream.Signature(ArrayLayout(code, K0)))``
        One whole input vector per transfer.
    ``o`` : ``Out(stream.Signature(ArrayLayout(signed(logit bits), classes)))``
        The logits of one vector per transfer, in index order (the logit width is the last
        layer's ``acc_bits``, as for :class:`~rtl_gen.hw.network.NetworkEngine`).
    ``cls`` : ``Out(stream.Signature(range(classes), always_ready=True))``
        The class (first index of the largest logit), valid in the cycle its logits are
        transferred.
    ``cycles`` : ``Out(32)``
        Clock cycles since reset.

    Flow control: the pipeline advances as a whole, into a two-entry output buffer; it
    holds (``i.ready`` low) while the buffer is full, which it only becomes when a result
    arrives in a cycle the head is not taken.  The enable of every register is thus a
    register (no path from ``o.ready`` into the datapath's enables).  One result per cycle
    while ``o.ready`` stays high; ``latency`` cycles from input to output.
    ``rows = 1``, :meth:`~UnrolledNetworkEngine.logit_order` and ``interval`` match the
    names the verification path reads from :class:`~rtl_gen.hw.network.NetworkEngine`.

Schedules: ``"asap"`` computes every adder as early as its operands allow, ``"alap"`` as
late as its users allow, ``"minreg"`` (the default) starts from ``"asap"`` and moves adders
between slots where that saves register bits.
"""

from __future__ import annotations

import dataclasses
from functools import cached_property, lru_cache

import numpy as np
from amaranth import Const, Module, Mux, Shape, Signal, signed, unsigned
from amaranth.lib import data, stream
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..design.network import Network
from ..errors import RtlGenError
from ..numerics.fixedpoint import requantize
from ..numerics.terms import term_reveal, truncate_terms
from .kit import COUNTER_BITS, Planned

__all__ = [
    "ARGMAX_MATRIX_MAX",
    "DEFAULT_HARD_DC",
    "DEFAULT_STAGE",
    "MULTIPLIERS",
    "FabricRequant",
    "csd",
    "direct_requant",
    "fabric_requant",
    "SCHEDULES",
    "AddNode",
    "LayerGraph",
    "Term",
    "UnrolledNetworkEngine",
    "UnrolledPlan",
    "UnrolledPlanError",
    "plan_unrolled",
    "revealed_weights",
]

#: Adder levels between pipeline registers by default: two levels of 10-16 bit carry-chain
#: adders (with their routing) fit a ~150 MHz cycle on the ECP5.
DEFAULT_STAGE = 2
#: da4ml's hard delay constraint by default (see :func:`plan_unrolled`): ``None``, per layer
#: the graph of ``-1`` (fewest adders) or ``0`` (shallowest) that ends in the earlier slot.
DEFAULT_HARD_DC = None
#: Most classes whose argmax is a matrix of every pair's comparison (two slots); more take
#: a compare-and-select tree (a slot a level).
ARGMAX_MATRIX_MAX = 16
SCHEDULES = ("minreg", "alap", "asap")
#: How a hidden layer's requantizer multiplies (see :func:`plan_unrolled`).
MULTIPLIERS = ("dsp", "adders", "rom")
#: The most codes a hidden output's requantizer table may hold (``multiplier="rom"``): one
#: ECP5 18-kbit block RAM holds 2,048 codes of up to 9 bits.
ROM_REQUANT_ENTRIES = 2048
#: The most codes of a table whose codes are also truncated to the next layer's data terms
#: (term revealing): two to three block RAMs, against a lookup of every code in the fabric.
ROM_TRUNCATED_ENTRIES = 4096
#: Slots from a hidden layer's accumulators to its output codes: the accumulator registered
#: twice (the second register can sit by the hard multiplier, which is far from the adders),
#: the product (a hard multiplier) registered, the rounding and the clamp.
_REQUANT_SLOTS = 3
#: Largest shift an adder-graph term may carry (a larger one is a solver artefact).
_MAX_SHIFT = 48


class UnrolledPlanError(RtlGenError, ValueError):
    """A network or an option the unrolled engine cannot build; the message names it."""


# -- the adder graph ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Term:
    """``±(node << shift)`` (``shift < 0``: an exact arithmetic right shift)."""

    node: int
    shift: int
    neg: bool


@dataclasses.dataclass(frozen=True)
class AddNode:
    """One node of a layer's graph.

    ``kind``: ``"in"`` (layer input ``index``), ``"add"`` (the sum of its ``terms``) or
    ``"acc"`` (an output: ``const`` (the bias) plus its ``terms``, zero or one).  ``lo``,
    ``hi``: the exact range of its value; ``level``: adder levels from the inputs (``0``
    for an input); ``slot``: the pipeline slot it is computed in.
    """

    kind: str
    terms: tuple[Term, ...]
    const: int
    index: int
    lo: int
    hi: int
    level: int
    slot: int

    @property
    def shape(self) -> Shape:
        return _range_shape(self.lo, self.hi)


@dataclasses.dataclass(frozen=True, eq=False)
class LayerGraph:
    """One layer as an adder graph and its requantizer, scheduled.

    Members
    -------
    name:
        The layer's name.
    nodes:
        The graph's nodes (:class:`AddNode`), operands before their users; the first
        ``n_in`` are the layer's inputs.
    outputs:
        The ``acc`` node of each output channel.
    depth:
        Adder levels of the accumulators (the bias add included).
    in_slot, acc_slot:
        Pipeline slots of the layer's inputs and of its accumulators.
    requant:
        ``(M, S)`` per output of a hidden layer, ``None`` for the logits.
    fabric:
        With ``multiplier="adders"`` or ``"rom"``: each hidden output's requantizer as
        shift-and-add (:class:`FabricRequant`); ``None``: a hard multiplier.
    rom:
        With ``multiplier="rom"``: each hidden output's requantizer as a table in block RAM
        (:class:`RomRequant`), or ``None`` for an output whose table would hold more than
        :data:`ROM_REQUANT_ENTRIES` codes (or one: a constant), which keeps its ``fabric``
        one.
    stage:
        Adder levels a slot (the plan's).
    hard_dc:
        da4ml's hard delay constraint the graph was solved with.
    out_bits:
        Output code width of a hidden layer.
    out_ranges:
        The exact ``(lo, hi)`` of each output (the code after the clamp, or the logit).
    out_terms:
        The next layer's data terms (term revealing): each hidden output's code is
        truncated to its ``out_terms`` largest HESE terms (folded into a table's codes,
        a lookup after the clamp of a shift-and-add requantizer); ``None``: not truncated.
    """

    name: str
    nodes: tuple[AddNode, ...]
    n_in: int
    outputs: tuple[int, ...]
    depth: int
    in_slot: int
    acc_slot: int
    requant: tuple[tuple[int, int], ...] | None
    out_bits: int | None
    out_ranges: tuple[tuple[int, int], ...]
    fabric: tuple[FabricRequant, ...] | None = None
    rom: tuple[RomRequant | None, ...] | None = None
    stage: int = 1
    hard_dc: int = -1
    out_terms: int | None = None
    out_trunc: tuple[int, ...] | None = None

    @property
    def adders(self) -> int:
        """Two-input adders of the graph (bias adds of non-zero biases included; an output
        with a direct table has none)."""
        n = 0
        for node in self.nodes:
            if node.kind == "add":
                n += len(node.terms) - 1
            elif node.kind == "acc":
                n += 1 if node.terms and node.const and not self.direct(node.index) else 0
        return n

    def direct(self, o: int) -> bool:
        """Whether output ``o``'s requantizer is a table addressed by its graph node
        (:func:`direct_requant`): its accumulator is never built."""
        return self.rom is not None and self.rom[o] is not None and self.rom[o].direct

    def constant(self, o: int) -> bool:
        """Whether output ``o``'s accumulator is its bias alone (no weight): its code is a
        constant."""
        return not self.nodes[self.outputs[o]].terms

    def table_slot(self, o: int) -> int:
        """The slot at whose end output ``o``'s table takes its address into the block
        RAM: a direct table's node's slot, else the slot after the accumulators' (the
        clamp into the address)."""
        if self.direct(o):
            return self.nodes[self.nodes[self.outputs[o]].terms[0].node].slot
        return self.acc_slot + 1

    @property
    def out_slot(self) -> int:
        """Slot of the layer's outputs: the clamp of a hidden layer, else the accumulators."""
        if self.requant is None:
            return self.acc_slot
        if self.fabric is None:
            return self.acc_slot + _REQUANT_SLOTS
        slots = [self.table_slot(o) + 1 for o, r in enumerate(self.rom or ())
                 if r is not None]
        if any(not self.constant(o) and (self.rom is None or self.rom[o] is None)
               for o in range(len(self.outputs))):
            # the requantizer's levels follow the accumulators' (depth + 1 ...), then the
            # shift and clamp count as one more level
            slots.append(self.level_slot(self.depth + self.requant_levels + 1))
        return max(slots, default=self.acc_slot)

    @property
    def requant_levels(self) -> int:
        """Adder levels of the fabric requantizers (``0`` without one; a constant code has
        none)."""
        if not self.fabric:
            return 0
        return max((f.levels for o, f in enumerate(self.fabric)
                    if (self.rom is None or self.rom[o] is None) and not self.constant(o)),
                   default=0)

    @property
    def rom_bases(self) -> tuple[int, ...]:
        """What each output's accumulator subtracts from its bias: its table's base (``0``
        for an output without a table)."""
        return tuple(0 if r is None else r.base
                     for r in self.rom or (None,) * len(self.outputs))

    def level_slot(self, level: int) -> int:
        """The slot adder level ``level`` of this layer is computed in."""
        return self.in_slot + (max(level, 1) - 1) // self.stage


def _range_shape(lo: int, hi: int) -> Shape:
    shape = Shape.cast(range(int(lo), int(hi) + 1))
    return unsigned(1) if shape.width == 0 else shape


def _form_range(form, lo, hi, const=0) -> tuple[int, int]:
    """Exact range of ``form · x + const`` for independent ``x[k]`` in ``lo[k]..hi[k]``."""
    a, b = form * lo, form * hi
    return int(np.minimum(a, b).sum()) + const, int(np.maximum(a, b).sum()) + const


class _Builder:
    """Reads a da4ml solution into exact integer adds over a layer's inputs."""

    def __init__(self, layer_name: str, lo, hi):
        self.name = layer_name
        self.lo = np.array([int(v) for v in lo], dtype=object)
        self.hi = np.array([int(v) for v in hi], dtype=object)
        n = len(self.lo)
        self.kinds, self.terms, self.forms, self.index = [], [], [], []
        for k in range(n):
            form = np.zeros(n, dtype=object)
            form[k] = 1
            self._new("in", (), form, k)

    def _new(self, kind, terms, form, index=-1) -> int:
        self.kinds.append(kind)
        self.terms.append(terms)
        self.forms.append(form)
        self.index.append(index)
        return len(self.kinds) - 1

    def fail(self, what: str):
        return UnrolledPlanError(f"layer {self.name!r}: the adder graph {what}")

    def _shifted(self, node: int, shift: int):
        if shift > _MAX_SHIFT:
            raise self.fail(f"shifts a term by {shift} bits")
        return self.forms[node] * (1 << shift)

    # a value is None (zero) or (node, exponent, neg): ±node * 2**exponent
    def add(self, v0, v1, shift: int, sub: bool):
        if v1 is not None:
            v1 = (v1[0], v1[1] + shift, v1[2] ^ sub)
        if v0 is None or v1 is None:
            return v1 if v0 is None else v0
        (n0, e0, g0), (n1, e1, g1) = v0, v1
        e = min(e0, e1)
        t0, t1 = Term(n0, e0 - e, g0), Term(n1, e1 - e, g1)
        neg = g0 and g1
        if neg:
            t0, t1 = Term(n0, t0.shift, False), Term(n1, t1.shift, False)
        elif g0:
            t0, t1 = t1, t0          # the positive term first
        form = sum((-1 if t.neg else 1) * self._shifted(t.node, t.shift) for t in (t0, t1))
        if not form.any():
            return None
        return self._new("add", (t0, t1), form), e, neg

    def scale(self, v, shift: int):
        return None if v is None else (v[0], v[1] + int(shift), v[2])

    def negate(self, v, neg: bool):
        return v if v is None or not neg else (v[0], v[1], not v[2])


@lru_cache(maxsize=16)
def _solve(kernel: bytes, shape: tuple[int, int], qint: tuple, hard_dc: int):
    """da4ml's solution of one layer's matrix (kept: a plan at other adder levels a cycle, or
    with other requantizers, solves the same matrices, which for a 784-input layer takes
    minutes)."""
    from da4ml.cmvm import solve  # the constant-matrix-multiply optimizer

    matrix = np.frombuffer(kernel, dtype=np.float32).reshape(shape).copy()
    return solve(matrix, qintervals=list(qint), hard_dc=hard_dc)


def _da4ml_outputs(b: _Builder, w_int: np.ndarray, lo, hi, hard_dc: int) -> list:
    """Solve ``y = w_int @ x`` with da4ml and read its ops into ``b``; one value per output."""
    n_out, n_in = w_int.shape
    kernel = np.ascontiguousarray(w_int.T, dtype=np.float32)
    # (a constant input is given a range of two codes: the solver wants a step)
    qint = tuple((float(a), float(max(c, a + 1)), 1.0) for a, c in zip(lo, hi, strict=True))
    pipe = _solve(kernel.tobytes(), kernel.shape, qint, hard_dc)
    values = [(k, 0, False) for k in range(n_in)]
    for sol in pipe.solutions:
        buf = []
        for op in sol.ops:
            if op.opcode == -1:
                buf.append(b.scale(values[op.id0], sol.inp_shifts[op.id0]))
            elif op.opcode in (0, 1):
                buf.append(b.add(buf[op.id0], buf[op.id1], int(op.data), op.opcode == 1))
            else:
                raise b.fail(f"has an operation the unrolled engine does not build "
                             f"(da4ml opcode {op.opcode})")
        values = []
        for idx, shift, neg in zip(sol.out_idxs, sol.out_shifts, sol.out_negs, strict=True):
            v = None if idx < 0 else buf[idx]
            values.append(b.negate(b.scale(v, shift), bool(neg)))
    if len(values) != n_out:
        raise b.fail(f"has {len(values)} outputs for {n_out} channels")
    return values


def revealed_weights(layer) -> np.ndarray:
    """``layer``'s weights as its adder graph takes them: a term-revealing layer's revealed
    at its own group and budget (:func:`~rtl_gen.numerics.terms.term_reveal`), else its
    integers."""
    if layer.tr is None:
        return layer.w_int.astype(np.int64)
    return term_reveal(layer.w_int, layer.tr.group, layer.tr.budget,
                       layer.scheme.magnitude_bits).astype(np.int64)


def _truncation(layer, lo: int, hi: int) -> np.ndarray | None:
    """The codes ``lo..hi`` entering ``layer`` as it takes them: truncated to its data terms
    (term revealing), or ``None`` when it takes them whole."""
    if layer is None or layer.tr is None or layer.tr.data_terms is None:
        return None
    return truncate_terms(np.arange(lo, hi + 1), layer.tr.data_terms, layer.in_bits)


def _layer_graph(layer, lo, hi, *, in_slot: int, stage: int, schedule: str,
                 hard_dc: int, multiplier: str, after=None) -> LayerGraph:
    """The scheduled adder graph of ``layer`` on inputs in ``lo[k]..hi[k]``; ``after``: the
    layer its outputs feed (which may truncate them to its data terms)."""
    w = revealed_weights(layer)
    n_out, n_in = w.shape
    b = _Builder(layer.name, lo, hi)
    values = _da4ml_outputs(b, w, lo, hi, hard_dc)
    bias = [int(v) for v in layer.bias]
    # the accumulators: bias + ±(node << e), checked against the weights exactly
    acc = []
    for o, v in enumerate(values):
        if v is None:
            form, terms = np.zeros(n_in, dtype=object), ()
        else:
            node, e, neg = v
            f = b.forms[node]
            if e < 0:
                if any(int(c) % (1 << -e) for c in f):
                    raise b.fail(f"gives output {o} as a fraction")
                f = np.array([int(c) >> -e for c in f], dtype=object)
            else:
                f = f * (1 << e)
            form, terms = (-f if neg else f), (Term(node, e, neg),)
        if [int(c) for c in form] != w[o].tolist():
            raise b.fail(f"does not compute output {o} of the weight matrix")
        acc.append(b._new("acc", terms, form + 0, o))
    # keep what the outputs use
    used = set(acc)
    for i in range(len(b.kinds) - 1, -1, -1):
        if i in used:
            used.update(t.node for t in b.terms[i])
    keep = [i for i in range(len(b.kinds)) if i < n_in or i in used]
    new = {old: k for k, old in enumerate(keep)}
    # levels
    level = {}
    for i in keep:
        ops = [level[t.node] for t in b.terms[i]]
        level[i] = 0 if b.kinds[i] == "in" else 1 + max(ops, default=0)
    depth = max(level[i] for i in acc)
    widths = {}
    for i in keep:
        const = bias[b.index[i]] if b.kinds[i] == "acc" else 0
        widths[i] = _range_shape(*_form_range(b.forms[i], b.lo, b.hi, const)).width
    if schedule != "asap":
        level = _schedule(keep, b.kinds, b.terms, level, depth, widths, stage,
                          minimize=schedule == "minreg")
    fabric = rom = trunc = None
    nodes = []
    for i in keep:
        kind = b.kinds[i]
        const = bias[b.index[i]] if kind == "acc" else 0
        lo_i, hi_i = _form_range(b.forms[i], b.lo, b.hi, const)
        lv = level[i]
        nodes.append(AddNode(
            kind=kind, terms=tuple(Term(new[t.node], t.shift, t.neg) for t in b.terms[i]),
            const=const, index=b.index[i], lo=lo_i, hi=hi_i, level=lv,
            slot=in_slot + (max(lv, 1) - 1) // stage))
    outputs = tuple(new[i] for i in acc)
    acc_slot = in_slot + (max(depth, 1) - 1) // stage
    if layer.activation == "relu":
        mult = [int(v) for v in layer.requant_multiplier]
        shift = [int(v) for v in layer.requant_shift]
        top = (1 << layer.out_bits) - 1
        ranges = []
        for o, node in enumerate(outputs):
            ends = [(v * mult[o] + (1 << (shift[o] - 1))) >> shift[o]
                    for v in (nodes[node].lo, nodes[node].hi)]
            ranges.append(tuple(min(max(v, 0), top) for v in ends))
        requant = tuple(zip(mult, shift, strict=True))
        out_bits = layer.out_bits
        trunc = _truncation(after, 0, top)
        if trunc is not None:
            ranges = [(int(trunc[a:b + 1].min()), int(trunc[a:b + 1].max()))
                      for a, b in ranges]
        if multiplier in ("adders", "rom"):
            fabric = tuple(fabric_requant(nodes[n].lo, nodes[n].hi, mult[o], shift[o], top)
                           for o, n in enumerate(outputs))
        if multiplier == "rom":
            entries = ROM_REQUANT_ENTRIES if trunc is None else ROM_TRUNCATED_ENTRIES

            def table(o, n):
                acc = nodes[n]
                if acc.terms:
                    t = acc.terms[0]
                    v = nodes[t.node]
                    r = direct_requant(v.lo, v.hi, t, acc.const, mult[o], shift[o], top,
                                       ROM_REQUANT_ENTRIES)
                    if r is not None:
                        return r
                return rom_requant(acc.lo, acc.hi, mult[o], shift[o], top, entries)
            rom = tuple(table(o, n) for o, n in enumerate(outputs))
            if trunc is not None:
                rom = tuple(None if r is None else dataclasses.replace(
                    r, codes=tuple(int(trunc[c]) for c in r.codes)) for r in rom)
    else:
        ranges = [(nodes[n].lo, nodes[n].hi) for n in outputs]
        requant, out_bits = None, None
    return LayerGraph(name=layer.name, nodes=tuple(nodes), n_in=n_in, outputs=outputs,
                      depth=depth, in_slot=in_slot, acc_slot=acc_slot, requant=requant,
                      out_bits=out_bits, out_ranges=tuple(ranges), fabric=fabric, rom=rom,
                      stage=stage, hard_dc=hard_dc,
                      out_terms=None if trunc is None else after.tr.data_terms,
                      out_trunc=None if trunc is None else tuple(int(v) for v in trunc))


def _schedule(keep, kinds, terms, asap, depth, widths, stage, *, minimize):
    """Adder levels as late as possible (every accumulator at ``depth``), or, with
    ``minimize``, from ``asap`` moved node by node within what its operands and users allow
    to the level whose slot needs the fewest register bits (the node's own delay to its last
    user and its operands' to their last users), until no move helps."""
    users = {i: [] for i in keep}
    for i in keep:
        for t in terms[i]:
            users[t.node].append(i)
    level = dict(asap)
    if not minimize:
        for i in reversed(keep):
            if kinds[i] == "acc":
                level[i] = depth
            elif kinds[i] == "add":
                level[i] = min(level[u] for u in users[i]) - 1
        return level

    def slot(lv):
        return (max(lv, 1) - 1) // stage

    end = slot(depth) + 1                    # where the accumulators are read

    def delay(i, lv_of):
        """Register bits of node ``i``'s chain to its last user."""
        last = end if kinds[i] == "acc" else max(slot(lv_of(u)) for u in users[i])
        return widths[i] * (last - slot(lv_of(i)))

    movable = [i for i in keep if kinds[i] != "in"]
    for _ in range(8):
        moved = False
        for i in movable + movable[::-1]:
            lo = max((level[t.node] for t in terms[i]), default=0) + 1
            hi = depth if kinds[i] == "acc" else min(level[u] for u in users[i]) - 1
            ops = {t.node for t in terms[i]}
            best, best_cost = level[i], None
            for lv in range(lo, hi + 1):
                def lv_of(n, lv=lv, i=i):
                    return lv if n == i else level[n]
                cost = delay(i, lv_of) + sum(delay(o, lv_of) for o in ops)
                if best_cost is None or cost < best_cost or (cost == best_cost
                                                              and lv == level[i]):
                    best, best_cost = lv, cost
            if best != level[i]:
                level[i] = best
                moved = True
        if not moved:
            break
    return level


def csd(v: int) -> list[tuple[int, int]]:
    """Canonical signed digits of ``v >= 0``: ``[(exponent, +1 or -1), ...]``."""
    digits, e = [], 0
    while v:
        if v & 1:
            d = 2 - (v & 3)          # +1 when v % 4 == 1, -1 when v % 4 == 3
            digits.append((e, d))
            v -= d
        v >>= 1
        e += 1
    return digits


@dataclasses.dataclass(frozen=True)
class FabricRequant:
    """``clamp((acc * mult + const) >> shift, 0, top)``, equal to the layer's requantizer
    for every accumulator in its range; ``mult`` as canonical signed ``digits``."""

    mult: int
    const: int
    shift: int
    digits: tuple[tuple[int, int], ...]

    @property
    def terms(self) -> int:
        return len(self.digits) + (1 if self.const else 0)

    @property
    def levels(self) -> int:
        """Levels of the balanced adder tree of the terms."""
        return max(0, (self.terms - 1).bit_length())


def requant_window(lo: int, hi: int, mult: int, shift: int, top: int) -> tuple[int, int]:
    """``(first, last)``: the accumulators in ``lo..hi`` whose code ``clamp((a*M +
    2**(S-1)) >> S, 0, top)`` is not clamped, with the last clamped one on each side: for
    ``M > 0`` the code is monotonic in ``a``, so every accumulator below ``first`` has
    ``first``'s code and every one above ``last`` has ``last``'s."""
    rnd = 1 << (shift - 1)
    first = -((rnd - (1 << shift)) // mult) - 1            # ceil((2**S - rnd) / M) - 1
    last = (top * (1 << shift) - rnd - 1) // mult + 1
    first, last = min(max(first, lo), hi), max(min(last, hi), lo)
    return (last, first) if first > last else (first, last)


@dataclasses.dataclass(frozen=True)
class RomRequant:
    """A hidden output's requantizer as a table in block RAM: its code is
    ``codes[clamp(acc - base, 0, len(codes) - 1)]``, equal to the layer's requantizer for
    every accumulator (the table spans :func:`requant_window`); or, ``direct``, the table
    is addressed by the low :attr:`bits` of the adder-graph node whose shifted (and
    negated) value plus the bias is the accumulator, over every value the node takes
    (:func:`direct_requant`): no bias add, no clamp."""

    base: int
    codes: tuple[int, ...]
    direct: bool = False

    @property
    def bits(self) -> int:
        """Address bits."""
        return (len(self.codes) - 1).bit_length()


def rom_requant(lo: int, hi: int, mult: int, shift: int, top: int,
                entries: int = ROM_REQUANT_ENTRIES) -> RomRequant | None:
    """The table requantizer of an accumulator in ``lo..hi`` (``M``, ``S``, codes
    ``0..top``): the codes of ``2**n`` accumulators from the window's first
    (:func:`requant_window`); ``None`` when the window is one accumulator (a constant code)
    or its table would hold more than ``entries`` codes."""
    first, last = requant_window(lo, hi, mult, shift, top)
    size = 1 << (last - first).bit_length()
    if last == first or size > entries:
        return None
    a = np.arange(first, first + size, dtype=object)
    codes = np.clip((a * mult + (1 << (shift - 1))) >> shift, 0, top)
    return RomRequant(base=first, codes=tuple(int(c) for c in codes))


def direct_requant(lo: int, hi: int, term: Term, bias: int, mult: int, shift: int, top: int,
                   entries: int = ROM_REQUANT_ENTRIES) -> RomRequant | None:
    """The table requantizer addressed by the low bits of a node ``v`` in ``lo..hi`` whose
    accumulator is ``bias ± (v << e)`` (``term``'s sign and shift ``e``, a right shift when
    negative): entry ``v mod 2**n`` holds the code of every ``v`` of the range, ``2**n`` the
    next power of two of its size (distinct there); ``None`` when that is more than
    ``entries`` codes or the range is one value."""
    if hi == lo:
        return None
    bits = (hi - lo).bit_length()
    if 1 << bits > entries:
        return None
    v = np.arange(lo, hi + 1, dtype=np.int64)
    scaled = v << term.shift if term.shift >= 0 else v >> -term.shift
    codes = np.zeros(1 << bits, dtype=np.int64)
    codes[v & ((1 << bits) - 1)] = requantize(bias + (-scaled if term.neg else scaled), mult,
                                              shift, top.bit_length())
    return RomRequant(base=0, codes=tuple(int(c) for c in codes), direct=True)


def fabric_requant(lo: int, hi: int, mult: int, shift: int, top: int) -> FabricRequant:
    """The cheapest ``(M', K', S')`` with ``clamp((a*M' + K') >> S', 0, top) ==
    clamp((a*M + 2**(S-1)) >> S, 0, top)`` for every ``a`` in ``lo..hi``.

    Only the accumulators whose code is not clamped need equal results (and the last one
    clamped on each side, :func:`requant_window`): with ``M' > 0`` both sides are monotonic
    in ``a``, so the others clamp alike.  Tried: every ``S' <= S`` with ``M'`` next to
    ``M * 2**(S'-S)``; cost: the canonical signed digits of ``M'``, plus one when ``K' !=
    0``; the first cheapest wins.
    """
    rnd = 1 << (shift - 1)
    first, last = requant_window(lo, hi, mult, shift, top)
    wide = max(abs(first), abs(last)) * (1 << (shift + 1)) * (mult + 4) >= 1 << 62
    a = np.arange(first, last + 1, dtype=object if wide else np.int64)
    g = (a * mult + rnd) >> shift
    best = FabricRequant(mult, 1 << (shift - 1), shift, tuple(csd(mult)))
    best_cost = best.terms
    for s2 in range(0, shift + 1):
        base = mult >> (shift - s2)
        for m2 in range(max(1, base - 2), base + 4):
            k_lo = int((g * (1 << s2) - a * m2).max())
            k_hi = int(((g + 1) * (1 << s2) - 1 - a * m2).min())
            if k_lo > k_hi:
                continue
            k = 0 if k_lo <= 0 <= k_hi else min((k_lo, k_hi),
                                                 key=lambda v: (len(csd(abs(v))), abs(v)))
            cand = FabricRequant(m2, k, s2, tuple(csd(m2)))
            if cand.terms < best_cost:
                best, best_cost = cand, cand.terms
    return best


# -- the plan -----------------------------------------------------------------------------------


def argmax_levels(n: int) -> int:
    """Compare-and-select levels of a tree over ``n`` values."""
    return max(0, (n - 1).bit_length())


@dataclasses.dataclass(frozen=True, eq=False)
class UnrolledPlan:
    """A validated unrolled network (see the module docstring); made by
    :func:`plan_unrolled`."""

    net: Network
    stage: int
    schedule: str
    hard_dc: int | None
    multiplier: str
    layers: tuple[LayerGraph, ...]
    argmax_slots: tuple[int, ...]
    latency: int
    in_shape: Shape
    out_shape: Shape
    classes: int
    interval: int = 1
    in_trunc: tuple[int, ...] | None = None

    @property
    def features(self) -> int:
        return self.net.input.features

    @property
    def final_slot(self) -> int:
        """The slot in which the logits and the class are complete (then taken into the
        output buffer)."""
        return self.latency - 1

    @cached_property
    def adders(self) -> int:
        """Two-input adders of every layer's graph."""
        return sum(g.adders for g in self.layers)

    @cached_property
    def tables(self) -> int:
        """Requantizer tables in block RAM (``multiplier="rom"``)."""
        return sum(r is not None for g in self.layers for r in g.rom or ())

    def describe(self) -> str:
        """One line per layer: its adders, depth and slots; then the latency."""
        lines = [f"{g.name}: {g.adders} adders, depth {g.depth}, slots {g.in_slot}.."
                 f"{g.out_slot}" for g in self.layers]
        lines.append(f"latency {self.latency} cycles, interval {self.interval}")
        return "\n".join(lines)


def plan_unrolled(net, *, stage: int = DEFAULT_STAGE, schedule: str = "minreg",
                  hard_dc: int | None = DEFAULT_HARD_DC,
                  multiplier: str = "dsp") -> UnrolledPlan:
    """Validate ``net`` and build its unrolled datapath's plan.

    Parameters
    ----------
    net:
        An integer :class:`~rtl_gen.design.network.Network`.  Term-revealing layers are
        built at the bundle's own setting, with no run-time control: their weights revealed
        at their group budget (:func:`revealed_weights`), their inputs truncated to their
        data terms (a lookup of each input code before the input register; a hidden
        layer's codes by its requantizer's table, or a lookup after its clamp).
    stage:
        Adder levels between pipeline registers (``>= 1``).
    schedule:
        Placement of the adders between the registers: ``"minreg"`` (fewest register bits
        found node by node from ``"asap"``), ``"alap"`` or ``"asap"``.
    hard_dc:
        da4ml's hard delay constraint: adder levels a graph may have beyond the least
        possible (``-1``: no limit, fewest adders; ``0``: the shallowest graphs); ``None``
        (the default): per layer the one of ``-1`` and ``0`` whose layer ends in the earlier
        slot (its clamp, or the last layer's comparisons), the fewer adders on a tie.
    multiplier:
        The requantizer's ``acc * M``: ``"dsp"`` (a hard multiplier per hidden output) or
        ``"adders"`` (shift-and-add in the fabric, with the fewest-digit multiplier and
        shift that give the same codes over the accumulator's range:
        :func:`fabric_requant`) or ``"rom"`` (a table in block RAM for each output whose
        window takes at most :data:`ROM_REQUANT_ENTRIES` codes, :func:`rom_requant`,
        shift-and-add for the others; a network with no such output is planned as
        ``"adders"``).

    Raises
    ------
    UnrolledPlanError
        For a float network, a bad option, or an adder graph that does not compute its
        layer exactly (naming the layer).
    """
    if not isinstance(net, Network):
        family = getattr(net, "family", None)
        what = "a float network" if family == "float" else repr(net)
        raise UnrolledPlanError(f"the unrolled engine builds integer networks, not {what}")
    if isinstance(stage, bool) or not isinstance(stage, (int, np.integer)) or not \
            1 <= stage <= 64:
        raise UnrolledPlanError(f"stage must be an integer in 1..64 (adder levels between "
                                f"registers), not {stage!r}")
    if schedule not in SCHEDULES:
        raise UnrolledPlanError(f"schedule must be one of {', '.join(SCHEDULES)}, not "
                                f"{schedule!r}")
    if hard_dc is not None and (isinstance(hard_dc, bool) or not isinstance(
            hard_dc, (int, np.integer)) or not -1 <= hard_dc <= 64):
        raise UnrolledPlanError(f"hard_dc must be None or an integer in -1..64, not "
                                f"{hard_dc!r}")
    if multiplier not in MULTIPLIERS:
        raise UnrolledPlanError(f"multiplier must be one of {', '.join(MULTIPLIERS)}, not "
                                f"{multiplier!r}")
    stage = int(stage)
    hard_dc = None if hard_dc is None else int(hard_dc)
    lo_in, hi_in = net.input.range
    in_trunc = _truncation(net.layers[0], lo_in, hi_in)
    if in_trunc is not None:
        lo_in, hi_in = int(in_trunc.min()), int(in_trunc.max())
    lo = [lo_in] * net.input.features
    hi = [hi_in] * net.input.features
    slot = 1                     # the input register
    graphs = []
    for n, layer in enumerate(net.layers):
        last = n == len(net.layers) - 1
        after = None if last else net.layers[n + 1]
        tries = (-1, 0) if hard_dc is None else (hard_dc,)
        options = [_layer_graph(layer, lo, hi, in_slot=slot, stage=stage, schedule=schedule,
                                hard_dc=dc, multiplier=multiplier, after=after)
                   for dc in tries]
        # the fewest slots to the layer's end, then the fewest adders
        g = min(options, key=lambda g: (_end_slot(g, last), g.adders))
        graphs.append(g)
        lo = [r[0] for r in g.out_ranges]
        hi = [r[1] for r in g.out_ranges]
        slot = g.out_slot + 1    # the clamp is registered before the next layer
    if multiplier == "rom" and all(r is None for g in graphs for r in g.rom or ()):
        multiplier = "adders"
        graphs = [dataclasses.replace(g, rom=None) for g in graphs]
    last = graphs[-1]
    classes = len(last.outputs)
    if classes == 1:
        argmax = ()
    elif classes <= ARGMAX_MATRIX_MAX:
        # every pair compared (one carry chain, the level after the logits'), registered;
        # then each class's AND of its comparisons and the one-hot's index
        compare = _end_slot(last, True)
        argmax = (compare, compare + 1)
    else:
        # a tree: the logits registered, then one compare-and-select level a slot (a
        # comparison's carry chain and a select are as slow as two adders)
        argmax = tuple(last.acc_slot + k for k in range(1, argmax_levels(classes) + 1))
    final = argmax[-1] if argmax else last.acc_slot
    inp = net.input
    return UnrolledPlan(net=net, stage=stage, schedule=schedule, hard_dc=hard_dc,
                        multiplier=multiplier,
                        layers=tuple(graphs),
                        argmax_slots=argmax, latency=final + 1,
                        in_shape=signed(inp.bits) if inp.signed else unsigned(inp.bits),
                        out_shape=signed(net.layers[-1].acc_bits), classes=classes,
                        in_trunc=None if in_trunc is None else tuple(int(v) for v in in_trunc))


def _end_slot(g: LayerGraph, last: bool) -> int:
    """The slot a layer ends in: a hidden layer's clamp, or the last layer's comparisons of
    its logits (the accumulators' slot when it has one output)."""
    if not last:
        return g.out_slot
    return g.level_slot(g.depth + 1) if len(g.outputs) > 1 else g.acc_slot


# -- the hardware -------------------------------------------------------------------------------


class _Pipe:
    """Values placed in pipeline slots; :meth:`at` gives a value in a later slot through
    registers (shared: one chain per value), all enabled by ``en``."""

    def __init__(self, m, en):
        self.m, self.en = m, en
        self.chains = {}
        self.updates = []
        self.registers = 0

    def place(self, key, value, slot: int) -> None:
        self.chains[key] = {slot: value}
        self.chains[key]["first"] = slot

    def at(self, key, slot: int):
        chain = self.chains[key]
        first = chain["first"]
        if slot < first:
            raise AssertionError(f"{key} is needed in slot {slot} before slot {first}")
        s = max(k for k in chain if k != "first" and k <= slot)
        v = chain[s]
        while s < slot:
            name = key if isinstance(key, str) else "_".join(map(str, key))
            r = Signal(v.shape(), name=f"{name}_s{s + 1}", reset_less=True)
            self.updates.append(r.eq(v))
            self.registers += len(r)
            s += 1
            chain[s] = v = r
        return v

    def finish(self) -> None:
        with self.m.If(self.en):
            self.m.d.sync += self.updates


def _clamp(y: Signal, bits: int):
    """``y`` clamped to ``0 .. 2**bits - 1`` from its bits, no comparison (a carry chain):
    below zero is the sign bit, above the top any bit from ``bits`` up (a negative value
    aside); then one LUT a code bit."""
    shape = y.shape()
    width = shape.width
    neg = y[-1] if shape.signed else Const(0, 1)
    top_bit = width - 1 if shape.signed else width
    over = y[bits:top_bit].any() if top_bit > bits else Const(0, 1)
    low = y[:min(bits, width)]
    return Mux(neg, 0, Mux(over, (1 << bits) - 1, low))


def _lookup(m, index, table, first: int, shape, name: str) -> Signal:
    """``table[index - first]`` as a case per entry (a function of ``index``'s bits)."""
    out = Signal(shape, name=name)
    with m.Switch(index):
        for k, v in enumerate(table):
            with m.Case(first + k):
                m.d.comb += out.eq(v)
    return out


def _truncated(m, g: LayerGraph, clamped, code: Signal, o: int):
    """A hidden output's clamped code as the next layer takes it: truncated to its data
    terms by a lookup when ``g`` says so (a table requantizer's codes already are)."""
    if g.out_trunc is None:
        return clamped
    c = Signal(unsigned(g.out_bits), name=f"{code.name}_whole")
    m.d.comb += c.eq(clamped)
    return _lookup(m, c, g.out_trunc, 0, code.shape(), f"{code.name}_trunc")


class UnrolledNetworkEngine(Planned):
    """The fully unrolled network (see the module docstring for ports and flow control)."""

    plan = staticmethod(plan_unrolled)

    @staticmethod
    def ports(plan: UnrolledPlan) -> dict:
        return {
            "i": In(stream.Signature(data.ArrayLayout(plan.in_shape, plan.features))),
            "o": Out(stream.Signature(data.ArrayLayout(plan.out_shape, plan.classes))),
            "cls": Out(stream.Signature(range(max(plan.classes, 2)), always_ready=True)),
            "cycles": Out(COUNTER_BITS),
        }

    @property
    def net(self) -> Network:
        return self._plan.net

    @property
    def layers(self) -> tuple[LayerGraph, ...]:
        """Each layer's adder graph and schedule (:class:`LayerGraph`)."""
        return self._plan.layers

    @property
    def latency(self) -> int:
        """Model: cycles from an input vector's transfer to its logits' transfer."""
        return self._plan.latency

    @property
    def interval(self) -> int:
        """Model: cycles between input vectors in steady state (one a cycle)."""
        return self._plan.interval

    @property
    def features(self) -> int:
        """Input codes per vector (``K0``)."""
        return self._plan.features

    @property
    def classes(self) -> int:
        """Logits per vector."""
        return self._plan.classes

    @property
    def code_shape(self) -> Shape:
        """Shape of an input code."""
        return self._plan.in_shape

    @property
    def logit_shape(self) -> Shape:
        """Shape of a logit."""
        return self._plan.out_shape

    rows = 1

    def logit_order(self) -> np.ndarray:
        """``(image, channel)`` of each logit of a transfer: index order."""
        return np.array([(0, c) for c in range(self._plan.classes)], dtype=np.int64)

    def elaborate(self, platform):
        plan = self._plan
        m = Module()
        m.d.sync += self.cycles.eq(self.cycles + 1)
        last = plan.final_slot            # the last pipeline slot; then the buffer
        valid = [None] + [Signal(name=f"valid_s{s}") for s in range(1, last + 1)]
        # the output buffer: two entries, head (driving o) and skid; the pipeline advances
        # while the buffer is not full, a register (no path from o.ready to the enables)
        full = Signal()
        en = Signal()
        m.d.comb += [en.eq(~full), self.i.ready.eq(en)]
        pipe = _Pipe(m, en)
        with m.If(en):
            m.d.sync += valid[1].eq(self.i.valid)
            m.d.sync += [valid[s + 1].eq(valid[s]) for s in range(1, last)]
        # the input register (the codes truncated to the first layer's data terms, when it
        # has them: a lookup before the register)
        lo_in = plan.net.input.range[0]
        for k in range(plan.features):
            if plan.in_trunc is None:
                x = Signal(plan.in_shape, name=f"x{k}", reset_less=True)
                pipe.updates.append(x.eq(self.i.payload[k]))
            else:
                x = Signal(_range_shape(min(plan.in_trunc), max(plan.in_trunc)), name=f"x{k}",
                           reset_less=True)
                pipe.updates.append(x.eq(_lookup(m, self.i.payload[k], plan.in_trunc, lo_in,
                                                 x.shape(), f"xt{k}")))
            pipe.registers += len(x)
            pipe.place(("l0", k), x, 1)
        outs = None
        for li, g in enumerate(plan.layers):
            outs = self._layer(m, pipe, li, g)
            if g.requant is not None:
                for o, v in enumerate(outs):
                    pipe.place((f"l{li + 1}", o), v, g.out_slot)
        logits = outs                     # (key, slot) of each logit
        index = self._argmax(m, pipe, plan, logits)
        # the final slot's logits (registers) and class go into the output buffer
        final = plan.final_slot
        word = [pipe.at(key, final) for key in logits]
        cls = Signal.like(self.cls.payload, name="cls_final")
        m.d.comb += cls.eq(index)
        word.append(cls)
        pipe.finish()
        self._buffer(m, word, push=en & valid[last], full=full)
        return m

    def _buffer(self, m, regs, *, push, full) -> None:
        """The two-entry output buffer: ``push`` (the pipeline advancing with a result in
        its final slot) writes ``regs`` (that slot's values); ``o`` and ``cls`` read the
        head.  It is full only after a push without a pop, so the cycle the consumer stops
        costs no result: the pipeline, enabled by ``~full``, sees it a cycle later."""
        n = len(regs)
        head = [Signal.like(r, name=f"head{k}", reset_less=True) for k, r in enumerate(regs)]
        skid = [Signal.like(r, name=f"skid{k}", reset_less=True) for k, r in enumerate(regs)]
        has = Signal()                    # the head holds a result
        pop = Signal()
        m.d.comb += [self.o.valid.eq(has), pop.eq(has & self.o.ready)]
        for c in range(n - 1):
            m.d.comb += self.o.payload[c].eq(head[c])
        m.d.comb += [self.cls.payload.eq(head[-1]), self.cls.valid.eq(pop)]
        with m.If(full):
            with m.If(pop):               # no push while full
                m.d.sync += [h.eq(k) for h, k in zip(head, skid, strict=True)]
                m.d.sync += full.eq(0)
        with m.Elif(has):
            with m.If(push & pop):
                m.d.sync += [h.eq(r) for h, r in zip(head, regs, strict=True)]
            with m.Elif(push):
                m.d.sync += [k.eq(r) for k, r in zip(skid, regs, strict=True)]
                m.d.sync += full.eq(1)
            with m.Elif(pop):
                m.d.sync += has.eq(0)
        with m.Elif(push):
            m.d.sync += [h.eq(r) for h, r in zip(head, regs, strict=True)]
            m.d.sync += has.eq(1)

    def _layer(self, m, pipe: _Pipe, li: int, g: LayerGraph) -> list:
        """Emit layer ``li``: its graph, then its requantizer; returns its outputs' keys
        (a hidden layer: clamped codes in ``g.out_slot``; the last: logits)."""
        tag = f"l{li}"
        keys = {}
        bases = g.rom_bases
        for n, node in enumerate(g.nodes):
            if node.kind == "in":
                keys[n] = (tag, node.index)
                continue
            if node.kind == "acc" and g.direct(node.index):
                continue                  # its table reads the node it would add the bias to
            # a table requantizer's accumulator starts from its bias less the table's base
            base = bases[node.index] if node.kind == "acc" else 0
            const = node.const - base
            expr = Const(const, _range_shape(const, const)) if node.kind == "acc" else None
            for t in node.terms:
                v = pipe.at(keys[t.node], node.slot)
                v = v << t.shift if t.shift >= 0 else v >> -t.shift
                if expr is None:
                    expr = -v if t.neg else v
                else:
                    expr = expr - v if t.neg else expr + v
            name = f"{tag}_n{n}" if node.kind == "add" else f"{tag}_acc{node.index}"
            s = Signal(_range_shape(node.lo - base, node.hi - base), name=name)
            m.d.comb += s.eq(expr)
            keys[n] = (name,)
            pipe.place(keys[n], s, node.slot)
        outputs = [keys.get(n) for n in g.outputs]   # (none for a direct table's)
        if g.requant is None:
            return outputs
        codes = []
        for o, ((mult, shift), key) in enumerate(zip(g.requant, outputs, strict=True)):
            node = g.nodes[g.outputs[o]]
            lo, hi = g.out_ranges[o]
            code = Signal(_range_shape(lo, hi), name=f"{tag}_code{o}")
            codes.append(code)
            if g.constant(o):
                m.d.comb += code.eq(lo)
                continue
            if g.rom is not None and g.rom[o] is not None:
                if g.direct(o):
                    key = keys[node.terms[0].node]
                m.d.comb += code.eq(self._rom(m, pipe, f"{tag}_rom{o}", g, o, key,
                                              code.shape()))
                continue
            if g.fabric is not None:
                y = self._fabric(m, pipe, f"{tag}_r{o}", g, key, node, g.fabric[o])
                m.d.comb += code.eq(_truncated(m, g, _clamp(y, g.out_bits), code, o))
                continue
            # (p + 2**(S-1)) >> S == ((p >> (S-1)) + 1) >> 1: the product alone in its
            # slot (a hard multiplier), only its bits from S-1 up registered, the rounding
            # a narrow increment in the next slot
            p = Signal(_range_shape(node.lo * mult, node.hi * mult), name=f"{tag}_p{o}")
            m.d.comb += p.eq(pipe.at(key, g.out_slot - 1) * mult)
            q = Signal(_range_shape(node.lo * mult >> (shift - 1), node.hi * mult >> (shift - 1)),
                       name=f"{tag}_q{o}")
            m.d.comb += q.eq(p >> (shift - 1))
            pipe.place((q.name,), q, g.out_slot - 1)
            qv = pipe.at((q.name,), g.out_slot)
            ends = [((v * mult >> (shift - 1)) + 1) >> 1 for v in (node.lo, node.hi)]
            y = Signal(_range_shape(*ends), name=f"{tag}_y{o}")
            m.d.comb += y.eq((qv + 1) >> 1)
            m.d.comb += code.eq(_truncated(m, g, _clamp(y, g.out_bits), code, o))
        return codes

    @staticmethod
    def _rom(m, pipe: _Pipe, tag: str, g: LayerGraph, o: int, key, shape):
        """The code of output ``o``'s table requantizer in ``g.out_slot``: the address in
        :meth:`LayerGraph.table_slot` (a direct table's: the low bits of its node, ``key``;
        else the accumulator, ``key``, already less the table's base, clamped into it), the
        block RAM read (enabled with the pipeline) in the next."""
        r = g.rom[o]
        addr = Signal(r.bits, name=f"{tag}_addr")
        slot = g.table_slot(o)
        value = pipe.at(key, slot)
        # v mod 2**bits: the assignment keeps the low bits (sign-extending a narrower v)
        m.d.comb += addr.eq(value if r.direct else _clamp(value, r.bits))
        mem = Memory(shape=shape, depth=len(r.codes), init=r.codes)
        mem.attrs["ram_style"] = "block"
        m.submodules[tag] = mem
        rp = mem.read_port(domain="sync")
        m.d.comb += [rp.addr.eq(addr), rp.en.eq(pipe.en)]
        word = Signal(shape, name=f"{tag}_data")
        m.d.comb += word.eq(rp.data)
        pipe.place((word.name,), word, slot + 1)
        return pipe.at((word.name,), g.out_slot)

    @staticmethod
    def _fabric(m, pipe: _Pipe, tag: str, g: LayerGraph, key, node: AddNode,
                f: FabricRequant):
        """``(acc * f.mult + f.const) >> f.shift`` as a balanced tree of shift-and-add terms
        (level ``k`` is the layer's adder level ``depth + k``: it shares a slot with the
        accumulators' when the stage has room), shifted and clamped in ``out_slot``.
        Each partial sum is ``acc * c + k``; its width is that over the accumulator's
        range."""
        # (value key, c, k) of each term
        parts = [(("acc", e, d), d << e, 0) for e, d in f.digits]
        if f.const:
            parts.append((None, 0, f.const))

        def shape(c, k):
            ends = (node.lo * c + k, node.hi * c + k)
            return _range_shape(min(ends), max(ends))

        def value(part, slot):
            ref, c, k = part
            if ref is None:
                return Const(k, _range_shape(k, k))
            if ref[0] == "acc":
                v = pipe.at(key, slot) << ref[1]
                return -v if ref[2] < 0 else v
            return pipe.at(ref, slot)

        lv = 0
        while len(parts) > 1:
            lv += 1
            slot = g.level_slot(g.depth + lv)
            nxt = []
            for j in range(0, len(parts) - 1, 2):
                (_, ca, ka), (_, cb, kb) = parts[j], parts[j + 1]
                s = Signal(shape(ca + cb, ka + kb), name=f"{tag}_t{lv}_{j // 2}")
                m.d.comb += s.eq(value(parts[j], slot) + value(parts[j + 1], slot))
                pipe.place((s.name,), s, slot)
                nxt.append(((s.name,), ca + cb, ka + kb))
            if len(parts) % 2:
                nxt.append(parts[-1])
            parts = nxt
        ref, c, k = parts[0]
        total = value(parts[0], g.out_slot)
        y = Signal(_range_shape(*sorted(((node.lo * c + k) >> f.shift,
                                         (node.hi * c + k) >> f.shift))), name=f"{tag}_y")
        m.d.comb += y.eq(total >> f.shift)
        return y

    def _argmax(self, m, pipe: _Pipe, plan: UnrolledPlan, logits: list):
        """The class: the first index of the largest logit, a value in the final slot."""
        classes = plan.classes
        idx_shape = unsigned(max(classes - 1, 1).bit_length())
        if classes == 1:
            return Const(0, idx_shape)
        if classes <= ARGMAX_MATRIX_MAX:
            return self._argmax_matrix(m, pipe, plan, logits, idx_shape)
        cands = [(key, None, c) for c, key in enumerate(logits)]   # (value key, index key)
        for lv, slot in enumerate(plan.argmax_slots):
            nxt = []
            for j in range(0, len(cands), 2):
                if j + 1 == len(cands):
                    nxt.append(cands[j])
                    continue
                (ka, ia, ca), (kb, ib, cb) = cands[j], cands[j + 1]
                a, b = pipe.at(ka, slot), pipe.at(kb, slot)
                ai = Const(ca, idx_shape) if ia is None else pipe.at(ia, slot)
                bi = Const(cb, idx_shape) if ib is None else pipe.at(ib, slot)
                take_b = b > a
                v = Signal(Mux(take_b, b, a).shape(), name=f"max{lv}_{j // 2}")
                i = Signal(idx_shape, name=f"arg{lv}_{j // 2}")
                m.d.comb += [v.eq(Mux(take_b, b, a)), i.eq(Mux(take_b, bi, ai))]
                pipe.place((v.name,), v, slot)
                pipe.place((i.name,), i, slot)
                nxt.append(((v.name,), (i.name,), None))
            cands = nxt
        _, ikey, c = cands[0]
        return Const(c, idx_shape) if ikey is None else pipe.at(ikey, plan.final_slot)

    @staticmethod
    def _argmax_matrix(m, pipe: _Pipe, plan: UnrolledPlan, logits: list, idx_shape):
        """Every pair's ``a_i > a_j`` (``j < i``) in the first argmax slot; in the final one,
        class ``i`` wins when it beats every earlier class and no later class beats it (the
        first of equal largest logits: exactly one wins), and the index is the OR of the
        winners' (one-hot) indices."""
        compare, final = plan.argmax_slots
        classes = plan.classes
        gt = {}
        for i in range(1, classes):
            for j in range(i):
                a, b = pipe.at(logits[i], compare), pipe.at(logits[j], compare)
                # a > b as the sign of b - a, wide enough not to overflow: one carry chain,
                # its last sum bit (a comparison adds LUTs for the signed overflow)
                diff = Signal(signed(max(len(a), len(b)) + 2), name=f"d{i}_{j}")
                m.d.comb += diff.eq(b - a)
                g = Signal(name=f"gt{i}_{j}")
                m.d.comb += g.eq(diff[-1])
                pipe.place((g.name,), g, compare)
                gt[i, j] = pipe.at((g.name,), final)
        index = Const(0, idx_shape)
        for i in range(1, classes):
            win = Signal(name=f"win{i}")
            terms = [gt[i, j] for j in range(i)] + [~gt[j, i] for j in range(i + 1, classes)]
            acc = terms[0]
            for t in terms[1:]:
                acc = acc & t
            m.d.comb += win.eq(acc)
            index = index | Mux(win, Const(i, idx_shape), Const(0, idx_shape))
        return index
