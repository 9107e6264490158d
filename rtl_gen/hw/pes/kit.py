"""What a PE kind is: :class:`PEKind`, and the datapath pieces that kinds share.

A kind is one object that knows everything particular to it: its name, the configuration
checks it adds, the weight scheme of its codes and the schemes whose bundles run on it, its
default array shape, its hardware (one lane's product as a :class:`Term`, or a whole front
end) and its golden model (from :mod:`rtl_gen.numerics`, never from the Amaranth
description).  :class:`rtl_gen.hw.pe.PEConfig` and :class:`rtl_gen.hw.pe.DotProductUnit`
hold the generic parts (registered inputs, the pipelined adder tree, the accumulator) and ask
the kind for the rest; :mod:`rtl_gen.hw.pes` keeps the registry.

A kind whose unit is a sum of lane products defines :meth:`PEKind.product`; any other
defines :meth:`PEKind.front`.  The defaults of every other method fit a kind that multiplies
integer activations (``a_bits`` wide, signed or not) by the codes of one weight scheme.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from amaranth import Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data

from ...numerics.schemes import WeightScheme
from ..popcount import popcount

__all__ = [
    "PEKind",
    "Term",
    "add_carry",
    "check_int",
    "negate_if",
    "popcount_of",
    "pipeline_stage",
    "registered_inputs",
    "sum_tree",
    "xor_negate",
]


def check_int(name, v, lo, hi) -> int:
    """``v`` as an ``int`` in ``lo..hi``; raises ``ValueError`` quoting it otherwise."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, not {v!r}")
    if not lo <= int(v) <= hi:
        raise ValueError(f"{name} must be {lo}..{hi}, not {int(v)}")
    return int(v)


# -- datapath pieces ------------------------------------------------------------------------

class Term:
    """A signed lane product as ``value + carry``: ``-v`` is ``~v + 1``, so a conditional
    negation is an XOR with the sign and a carry-in of the sign, which the adder that sums
    the term absorbs for free (its carry chain's input) instead of a subtractor of its own.
    On the iCE40 this turns a ternary MAC from 86 logic cells at 45 MHz into 72 at 61."""

    def __init__(self, value: Value, carry: Value | None = None):
        self.value, self.carry = value, carry


def negate_if(sign: Value, v: Value) -> Value:
    """``-v if sign else v`` as a plain value (a subtractor)."""
    return Mux(sign, -v, v)


def xor_negate(sign: Value, v: Value) -> Term:
    """``-v if sign else v`` as a :class:`Term`: ``~v`` and a carry-in (``~v`` of a signed
    value fits its width; the adder that absorbs the carry is wider than ``v``)."""
    v = v if v.shape().signed else Cat(v, Const(0, 1)).as_signed()
    return Term(v ^ sign.replicate(len(v)).as_signed(), sign)


def add_carry(a: Value, b: Value, carry: Value) -> Value:
    """``a + b + carry`` (``carry`` one bit) as one two-operand adder: ``{a, 1} + {b,
    carry}`` shifted right by one, so the carry enters the adder's chain at an extra low bit
    (whose carry-out is ``1 AND carry``).  Yosys makes a three-operand ``a + b + carry`` a
    ``$macc`` of full adders in LUTs with no carry chain (a 16-lane binary PE: 499 LUT4 and
    18 ``SB_CARRY`` on the iCE40); this is a ``$alu`` one bit wider on the carry chain.  (The
    low bit's operands are a constant and the carry, not the carry twice: an iCE40 carry
    cell with one net on both of its operand pins made nextpnr's router cycle without end
    on every design built of them.)"""
    a, b = (v if v.shape().signed else Cat(v, Const(0, 1)).as_signed() for v in (a, b))
    w = max(len(a), len(b)) + 1

    def ext(v):
        return Cat(v, v[-1].replicate(w - len(v)))

    return (Cat(Const(1, 1), ext(a)) + Cat(carry, ext(b)))[1:w + 1].as_signed()


def sum_tree(values: list[Value]) -> Value:
    """A balanced tree of adders over ``values``."""
    while len(values) > 1:
        values = [values[i] + values[i + 1] if i + 1 < len(values) else values[i]
                  for i in range(0, len(values), 2)]
    return values[0]


def popcount_of(m: Module, bits: list[Value]) -> Value:
    """Ones among ``bits``: the stitched compressor tree from ``TREE_MIN_BITS`` bits up,
    Yosys's own sum below (``benchmarks/popcount.py`` measures both)."""
    return popcount(m, [b.as_unsigned() for b in bits])


Ctrl = tuple[Value, Value, Value]


def pipeline_stage(m: Module, values: list[Value], ctrl: Ctrl) -> tuple[list[Value], Ctrl]:
    """One pipeline stage: datapath registers (reset-less) and the control flags
    ``(valid, first, last)``."""
    out = []
    for v in values:
        r = Signal(v.shape(), reset_less=True)
        m.d.sync += r.eq(v)
        out.append(r)
    valid, first, last = ctrl
    nv, nf, nl = Signal(), Signal(reset_less=True), Signal(reset_less=True)
    m.d.sync += [nv.eq(valid), nf.eq(first), nl.eq(last)]
    return out, (nv, nf, nl)


def registered_inputs(m: Module, unit) -> tuple[list[Value], list[Value], Ctrl]:
    """The input stage of a single-cycle unit: ``i.ready`` always high, the activations, the
    run-time weight codes and the flags registered on every edge.  Returns the ``L``
    activations, the ``L`` codes (constants when baked) and ``(valid, first, last)``."""
    cfg = unit.config
    xr = Signal(data.ArrayLayout(cfg.activation_shape, cfg.lanes), reset_less=True)
    valid, first, last = Signal(), Signal(), Signal()
    m.d.comb += unit.i.ready.eq(1)
    m.d.sync += [valid.eq(unit.i.valid), first.eq(unit.i.payload.first),
                 last.eq(unit.i.payload.last), xr.eq(unit.i.payload.x)]
    if cfg.weights is None:
        wr = Signal(data.ArrayLayout(unsigned(cfg.w_bits), cfg.lanes), reset_less=True)
        m.d.sync += wr.eq(unit.i.payload.w)
        codes = [wr[lane] for lane in range(cfg.lanes)]
    else:
        codes = [Const(c, cfg.w_bits) for c in cfg.weights]
    xs = [xr[lane] for lane in range(cfg.lanes)]
    return xs, codes, (valid, first, last)


# -- the kind -------------------------------------------------------------------------------

class PEKind:
    """One PE kind; subclass it, set the attributes, define :meth:`product` or
    :meth:`front`, and override what differs from the defaults.

    Attributes
    ----------
    name:
        The kind's name, ``PEConfig.kind`` (a short lower-case word).
    title:
        How messages name it (default: ``name``).
    weight_scheme:
        The :data:`rtl_gen.numerics.SCHEME_KINDS` entry whose codes the unit takes (its
        ``w_bits`` is that scheme's width), or ``None`` for plain integer weights.
    serves:
        Weight schemes whose bundle layers run on this kind unless told otherwise (at most
        one kind per scheme).
    lanes:
        ``L`` of a layer's default array (:func:`rtl_gen.hw.pes.default_array`).
    multipliers:
        The ``multiplier`` options it takes (``"lut"`` first).
    bakeable:
        Whether its weights may be baked in as constants.
    run_time_precision:
        Whether the unit has ``w_prec``/``x_prec`` inputs (several cycles per vector).
    logic_product:
        Whether a lane's product is logic of its own (shift-and-add rows, Booth rows,
        shifts), not a select: the folding planner then registers the products
        (:func:`rtl_gen.hw.pes.layers.dense_pipeline`).
    row_terms_bits:
        From this weight width up (0: never), :meth:`products` gives each lane's partial
        product rows as terms of their own, so the register after the lane products holds
        the rows and the adder tree sums them, and the folding planner adds a register
        stage for the extra tree levels.
    """

    name: str = ""
    title: str = ""
    weight_scheme: str | None = None
    serves: tuple[str, ...] = ()
    lanes: int = 1
    logic_product: bool = False
    row_terms_bits: int = 0
    multipliers: tuple[str, ...] = ("lut",)
    bakeable: bool = True
    run_time_precision: bool = False
    #: ``product(cfg, x, code) -> Term``: one lane's ``x * w_int(code)``, or ``None``.
    product: Callable | None = None
    #: ``front(unit, m) -> (Term, (valid, first, last))``: the unit up to the accumulator
    #: (inputs, datapath, pipeline stages), for a kind that is not a sum of lane products.
    front: Callable | None = None
    #: Whether the adder tree and the accumulator take the terms' carries into their own
    #: carry chains (:func:`add_carry`) instead of as a third operand.
    fused_carries: bool = False

    def gives_rows(self, w_bits: int) -> bool:
        """Whether :meth:`products` gives a lane's partial-product rows as terms at weight
        width ``w_bits`` (:attr:`row_terms_bits`)."""
        return bool(self.row_terms_bits) and w_bits >= self.row_terms_bits

    def __init__(self):
        if not self.name.isidentifier() or self.name != self.name.lower():
            raise ValueError(f"a PE kind needs a lower-case identifier as its name, not "
                             f"{self.name!r}")
        if (self.product is None) == (self.front is None):
            raise ValueError(f"PE kind {self.name!r} must define exactly one of product and "
                             "front")
        if not self.title:
            self.title = self.name

    def __repr__(self) -> str:
        return f"<PE kind {self.name}>"

    # -- configuration ---------------------------------------------------------------------

    def check(self, cfg) -> None:
        """Refuse widths this kind cannot build (``ValueError`` quoting the value)."""
        check_int("activation width", cfg.a_bits, 1, 16)
        self.scheme(cfg)  # validates the width for the scheme

    def widths(self) -> tuple[int, ...]:
        """Every ``w_bits`` the kind takes."""
        return tuple(b for b in range(1, 17) if self._takes_width(b))

    def a_widths(self) -> tuple[int, ...]:
        """Every ``a_bits`` the kind takes."""
        return tuple(range(1, 17))

    def _takes_width(self, bits: int) -> bool:
        try:
            WeightScheme(self.weight_scheme, bits)
        except ValueError:
            return False
        return True

    def scheme(self, cfg) -> WeightScheme | None:
        """The weight scheme of the codes (``None`` for plain integer weights)."""
        if self.weight_scheme is None:
            return None
        return WeightScheme(self.weight_scheme, cfg.w_bits)

    def label(self, cfg) -> str:
        """The kind's part of :attr:`PEConfig.name`: the name, with the width when the kind
        has more than one."""
        return self.name if len(self.widths()) == 1 else f"{self.name}{cfg.w_bits}"

    # -- operands --------------------------------------------------------------------------

    def activation_shape(self, cfg):
        """Shape of one activation lane."""
        return signed(cfg.a_bits) if cfg.a_signed else unsigned(cfg.a_bits)

    def weight_shape(self, cfg):
        """Shape of one run-time weight lane."""
        return unsigned(cfg.w_bits)

    def x_range(self, cfg) -> tuple[int, int]:
        """Smallest and largest activation the inputs take (as integers)."""
        if cfg.a_signed:
            return -(1 << (cfg.a_bits - 1)), (1 << (cfg.a_bits - 1)) - 1
        return 0, (1 << cfg.a_bits) - 1

    def x_values(self, cfg, x: np.ndarray) -> np.ndarray:
        """The values the activations stand for (the integers themselves by default)."""
        return x

    def x_max(self, cfg) -> int:
        """Largest activation magnitude."""
        lo, hi = self.x_range(cfg)
        return int(np.abs(self.x_values(cfg, np.array([lo, hi]))).max())

    def w_max(self, cfg) -> int:
        """Largest ``|w_int|``."""
        return self.scheme(cfg).w_int_max

    def cycles_per_vector(self, cfg) -> int:
        """Cycles per input vector at full precision."""
        return 1

    def ports(self, cfg) -> dict:
        """Members of the unit besides ``i`` and ``o`` (name: ``In``/``Out``)."""
        return {}

    def products(self, cfg, xs: list[Value], codes: list[Value]) -> list[Term]:
        """The terms the adder tree sums: one :meth:`product` per lane by default; a kind may
        combine lanes (a binary PE makes one term of each pair of lanes)."""
        return [self.product(cfg, x, c) for x, c in zip(xs, codes, strict=True)]

    # -- golden model ----------------------------------------------------------------------

    def sums(self, cfg, x: np.ndarray, w: np.ndarray, w_prec: np.ndarray,
             x_prec: np.ndarray) -> np.ndarray:
        """Each vector's ``sum over lanes of x * w``, from the numerics.

        ``x`` and ``w`` are ``(n, lanes)`` integers (``w`` the codes, the baked ones
        broadcast); ``w_prec``/``x_prec`` the per-vector run-time precisions (maxima where
        none were given)."""
        return (self.x_values(cfg, x) * cfg.scheme.decode(w)).sum(axis=1)
