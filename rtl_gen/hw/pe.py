"""Processing elements and lane-parallel dot-product units, one strategy per weight scheme.

Every unit has the same interface: a stream of input vectors (``L`` activations, and ``L``
weight codes unless the weights are baked in as constants) framed by ``first``/``last``
flags, and a stream of finished accumulators.  What differs is how one lane's product is
made, which is where each paper's idea becomes hardware:

=========  ===============================================================================
kind       one lane's ``x * w``
=========  ===============================================================================
binary     sign select: ``w`` code 1 means ``-x``, 0 means ``+x``
ternary    add / subtract / skip: code 01 is ``+x``, 11 is ``-x``, 00 is 0
pot        one shift and a conditional negation: ``±(x << (F + 1 - c))``, 0 for ``c = 0``
apot       one shift per APoT base set, summed, then a conditional negation
int        a real multiplier: shift-and-add rows in LUTs (``multiplier="lut"``), or the
           ``*`` operator that Yosys maps to the device's DSP (``multiplier="dsp"``)
xnor       binary weights times binary (±1) activations: XNOR and popcount,
           ``sum = L - 2 * popcount(x XOR w)``
bitplane   EBS binary decomposition: one AND + popcount over the lanes per bit-plane pair,
           ``w_prec * x_prec`` cycles per vector with both precisions run-time inputs
=========  ===============================================================================

Datapath of the single-cycle kinds (``pipeline = p`` extra register stages)::

    i.payload ──► [input regs] ──► L lane products ──► adder tree ──► acc += sum ──► o
                                   └──── p registers: after the products, ─┘
                                         then spread over the tree levels

    latency = 1 + p clock edges from the edge that accepts an input with ``last`` to the
    edge after which ``o.valid`` is high; one vector per cycle; ``i.ready`` is always 1.

The bit-plane unit accepts a vector, then walks its ``M * K`` plane pairs, one per cycle,
``i.ready`` low meanwhile (high again in the final step, so vectors stream back to back):
its latency is ``M * K + p`` edges.

Each kind is one module of :mod:`rtl_gen.hw.pes` (its checks, scheme, default array, lane
product or front end, golden model) and one line of that package's registry; this module
holds what every kind shares: the configuration, the payload layout, the registered inputs,
the pipelined adder tree and the accumulator.

The numerics (:mod:`rtl_gen.numerics`) define every value: the hardware asks the scheme for
its code table and the accumulator rule for its width, and never re-derives them.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence

import numpy as np
from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..design.golden import framed_sums
from ..devices import Device
from ..numerics.fixedpoint import acc_bits
from ..numerics.schemes import WeightScheme
from . import pes
from .pes.kit import (
    PEKind,
    Term,
    add_carry,
    check_int,
    pipeline_stage,
    registered_inputs,
    sum_tree,
)

__all__ = [
    "MULTIPLIERS",
    "PE_KINDS",
    "DotProductUnit",
    "PEConfig",
    "check_dsp_budget",
    "input_layout",
    "pack_inputs",
]

#: The shipped kinds (the registry, :func:`rtl_gen.hw.pes.kinds`, may hold more).
PE_KINDS = pes.kinds()
MULTIPLIERS = ("lut", "dsp")
#: Largest lane count; a 1024-input popcount is already far larger than any layer needs.
MAX_LANES = 1024
#: Largest number of vectors one accumulation may span (the accumulator is sized for it).
MAX_DEPTH = 1 << 20


@dataclasses.dataclass(frozen=True)
class PEConfig:
    """Everything that defines one generated unit (frozen; variants by ``replace``).

    Parameters
    ----------
    kind:
        The name of a registered kind (:func:`rtl_gen.hw.pes.kinds`; :data:`PE_KINDS` are
        the shipped ones).
    w_bits:
        Weight code width: the scheme's width (binary and xnor 1, ternary 2, pot 2..6,
        apot 3..5, int 2..16), or the largest run-time weight precision of ``bitplane``.
    a_bits:
        Activation width (``xnor``: 1, a ±1 code, 1 meaning -1), or the largest run-time
        activation precision of ``bitplane``.
    a_signed:
        Activations are two's complement (the network input may be); after a ReLU they are
        unsigned.  Not used by ``xnor``.
    lanes:
        ``L``, products summed per cycle by the adder tree.
    depth:
        Most input vectors one accumulation spans; with ``lanes`` it sizes the accumulator
        by the no-overflow rule (:func:`rtl_gen.numerics.acc_bits`).
    weights:
        ``None``: the weight codes arrive with each input vector.  Otherwise ``lanes`` codes
        baked in as constants (the elaborator knows them from the bundle).
    multiplier:
        ``int`` only: ``"lut"`` builds shift-and-add rows in the fabric, never a DSP;
        ``"dsp"`` writes ``*`` for Yosys to map to ``SB_MAC16`` / ``MULT18X18D``.
    pipeline:
        Extra register stages: the first after the lane products, the others spread over
        the adder tree levels (Fmax traded for latency).

    Raises
    ------
    ValueError
        Quoting the bad value.
    """

    kind: str
    w_bits: int
    a_bits: int
    a_signed: bool = False
    lanes: int = 1
    depth: int = 1
    weights: tuple[int, ...] | None = None
    multiplier: str = "lut"
    pipeline: int = 0

    def __post_init__(self):
        kind = pes.get(self.kind)
        check_int("lanes", self.lanes, 1, MAX_LANES)
        check_int("depth", self.depth, 1, MAX_DEPTH)
        check_int("pipeline", self.pipeline, 0, 16)
        object.__setattr__(self, "a_signed", bool(self.a_signed))
        kind.check(self)
        if self.multiplier not in MULTIPLIERS:
            raise ValueError(f"multiplier must be one of {', '.join(MULTIPLIERS)}, not "
                             f"{self.multiplier!r}")
        if self.multiplier not in kind.multipliers:
            users = [k for k in pes.kinds() if self.multiplier in pes.get(k).multipliers]
            raise ValueError(f"only {', '.join(users)} PEs use a multiplier; a {self.kind} PE "
                             f"cannot take multiplier={self.multiplier!r}")
        if self.weights is not None:
            if not kind.bakeable:
                raise ValueError(f"{kind.title} weights are run-time operands; they cannot be "
                                 "baked")
            w = np.asarray(self.weights)
            if w.shape != (self.lanes,) or w.dtype.kind not in "iu":
                raise ValueError(f"baked weights must be {self.lanes} integer codes, not "
                                 f"{self.weights!r}")
            bad = self.scheme.invalid_codes(w)
            if bad.any():
                i = int(np.argmax(bad))
                raise ValueError(f"baked weight code {int(w[i])} at lane {i} is not a valid "
                                 f"{self.scheme.name} code")
            object.__setattr__(self, "weights", tuple(int(v) for v in w))

    @property
    def pe_kind(self) -> PEKind:
        """The registered kind (:mod:`rtl_gen.hw.pes`)."""
        return pes.get(self.kind)

    @property
    def scheme(self) -> WeightScheme | None:
        """The weight scheme of the codes (``None`` for bit-plane units, whose weights are
        integers)."""
        return self.pe_kind.scheme(self)

    @property
    def x_range(self) -> tuple[int, int]:
        """Smallest and largest activation input (xnor: the codes 0 and 1)."""
        return self.pe_kind.x_range(self)

    @property
    def x_max(self) -> int:
        """Largest activation magnitude."""
        return self.pe_kind.x_max(self)

    @property
    def w_max(self) -> int:
        """Largest ``|w_int|``."""
        return self.pe_kind.w_max(self)

    @property
    def acc_bits(self) -> int:
        """Accumulator width: :func:`rtl_gen.numerics.acc_bits` of ``lanes * depth``."""
        return acc_bits(self.lanes * self.depth, self.x_max, self.w_max)

    @property
    def activation_shape(self):
        return self.pe_kind.activation_shape(self)

    @property
    def run_time_precision(self) -> bool:
        """Whether the unit takes ``w_prec``/``x_prec`` (a bit-plane unit)."""
        return self.pe_kind.run_time_precision

    @property
    def dsp_count(self) -> int:
        """Hard multipliers the unit asks for (one per lane of a ``dsp`` int unit)."""
        return self.lanes if self.multiplier == "dsp" else 0

    @property
    def cycles_per_vector(self) -> int:
        """Cycles per input vector at full precision (``w_bits * a_bits`` for bit-plane)."""
        return self.pe_kind.cycles_per_vector(self)

    @property
    def latency(self) -> int:
        """Clock edges from accepting a ``last`` vector to ``o.valid`` (at full precision for
        bit-plane units): ``cycles_per_vector + pipeline``."""
        return self.cycles_per_vector + self.pipeline

    @property
    def name(self) -> str:
        """A short, unique, Verilog-safe name for this configuration."""
        kind = self.pe_kind
        parts = [kind.label(self), f"a{self.a_bits}{'s' if self.a_signed else 'u'}",
                 f"l{self.lanes}", f"d{self.depth}", f"p{self.pipeline}"]
        if len(kind.multipliers) > 1:
            parts.append(self.multiplier)
        if self.weights is not None:
            digest = hashlib.sha1(bytes(str(self.weights), "ascii")).hexdigest()[:8]
            parts.append(f"baked{digest}")
        return "_".join(parts)

    def reference(self, x, w=None, first=None, last=None, *, w_prec=None,
                  x_prec=None) -> np.ndarray:
        """The golden model of a unit of this configuration: the accumulators it emits.

        Arguments as for :func:`pack_inputs`; ``w_prec``/``x_prec`` are the bit-plane
        precisions, one for all vectors or one per vector (default, and ``0``, mean the
        maxima, as in the hardware's registers).  Each vector's sum comes from the kind's
        golden model (the numerics: ``scheme.decode``, or
        :func:`rtl_gen.numerics.bitplane_dot`), framed by
        :func:`rtl_gen.design.golden.framed_sums`.
        """
        x = np.asarray(x, dtype=np.int64)
        codes = np.broadcast_to(np.asarray(self.weights), x.shape) \
            if self.weights is not None else np.asarray(w, dtype=np.int64)
        sums = self.pe_kind.sums(self, x, codes, _precisions(w_prec, self.w_bits, len(x)),
                                 _precisions(x_prec, self.a_bits, len(x)))
        return framed_sums(sums, first, last)


def _precisions(prec, most: int, n: int) -> np.ndarray:
    """Per-vector run-time precisions; ``None`` or ``0`` mean ``most``."""
    p = np.broadcast_to(np.asarray(most if prec is None else prec, dtype=np.int64), (n,))
    return np.where(p == 0, most, p)


def check_dsp_budget(configs: Sequence[PEConfig], device: Device) -> int:
    """Total hard multipliers that ``configs`` ask for; raises if ``device`` has fewer.

    Raises
    ------
    ValueError
        Naming the device, how many DSPs the design needs and how many it has.
    """
    need = sum(c.dsp_count for c in configs)
    if need > device.dsp:
        raise ValueError(f"the design needs {need} {device.dsp_cell} but the {device.name} has "
                         f"{device.dsp}; use multiplier='lut' for some int PEs")
    return need


def input_layout(config: PEConfig) -> data.StructLayout:
    """Payload of the input stream: ``x`` lanes, ``w`` lanes (run-time weights), flags."""
    fields = {"x": data.ArrayLayout(config.activation_shape, config.lanes)}
    if config.weights is None:
        fields["w"] = data.ArrayLayout(config.pe_kind.weight_shape(config), config.lanes)
    fields["first"] = unsigned(1)
    fields["last"] = unsigned(1)
    return data.StructLayout(fields)


def pack_inputs(config: PEConfig, x, w=None, first=None, last=None) -> list[int]:
    """Input payload bit patterns for ``n`` vectors, packed with :func:`input_layout`.

    Parameters
    ----------
    x:
        ``(n, lanes)`` activations (integers in range; xnor: codes 0/1).
    w:
        ``(n, lanes)`` weight codes (bit-plane: signed integers), or ``None`` with baked
        weights.
    first, last:
        ``(n,)`` flags; default every vector is its own accumulation.

    Returns
    -------
    list of int
        One non-negative integer per vector, ready for ``i.payload``.
    """
    layout = input_layout(config)
    x = np.asarray(x, dtype=np.int64)
    n = x.shape[0]
    if x.shape != (n, config.lanes):
        raise ValueError(f"x must have shape (n, {config.lanes}), not {x.shape}")
    if (config.weights is None) != (w is not None):
        raise ValueError("give w exactly when the weights are not baked")
    ones = np.ones(n, dtype=np.int64)
    cols = {"x": x, "first": ones if first is None else np.asarray(first, dtype=np.int64),
            "last": ones if last is None else np.asarray(last, dtype=np.int64)}
    if w is not None:
        cols["w"] = np.asarray(w, dtype=np.int64)
    word = [0] * n
    for name, field in layout:
        v = cols[name]
        if isinstance(field.shape, data.ArrayLayout):
            ew = field.shape.elem_shape.width
            for lane in range(config.lanes):
                bits = v[:, lane] & ((1 << ew) - 1)
                off = field.offset + lane * ew
                word = [a | (int(b) << off) for a, b in zip(word, bits, strict=True)]
        else:
            word = [a | (int(b) << field.offset) for a, b in zip(word, v & 1, strict=True)]
    return word


# -- the unit ---------------------------------------------------------------------------------

class DotProductUnit(wiring.Component):
    """``L`` lanes of one PE kind, summed and accumulated; see the module docstring.

    Parameters
    ----------
    config:
        The :class:`PEConfig`.

    Members
    -------
    i : In(stream.Signature(input_layout(config)))
        Input vectors; ``first`` restarts the accumulator, ``last`` emits it.
    o : Out(stream.Signature(signed(config.acc_bits), always_ready=True))
        One transfer per ``last`` vector: the finished accumulator.
    w_prec, x_prec : In(range(1, max + 1))
        Bit-plane units only: weight and activation precisions, sampled when a vector is
        accepted (0 or more than the maximum count as the maximum).
    """

    def __init__(self, config: PEConfig):
        if not isinstance(config, PEConfig):
            raise TypeError(f"config must be a PEConfig, not {config!r}")
        self._config = config
        members = {
            "i": In(stream.Signature(input_layout(config))),
            "o": Out(stream.Signature(signed(config.acc_bits), always_ready=True)),
        }
        members.update(config.pe_kind.ports(config))
        super().__init__(members)

    @property
    def config(self) -> PEConfig:
        return self._config

    @property
    def latency(self) -> int:
        """Clock edges from the edge that accepts a ``last`` vector to the edge after which
        ``o.valid`` is high: ``1 + pipeline``, or for bit-plane units at full precision
        ``w_bits * a_bits + pipeline`` (see :meth:`latency_at`)."""
        return self._config.latency

    def latency_at(self, w_prec: int, x_prec: int) -> int:
        """Bit-plane latency at run-time precisions ``w_prec`` and ``x_prec``."""
        return w_prec * x_prec + self._config.pipeline

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        kind = cfg.pe_kind
        term, ctrl = kind.front(self, m) if kind.front is not None else self._lanes_front(m)
        valid, first, last = ctrl
        acc = Signal(signed(cfg.acc_bits), reset_less=True)
        held = Mux(first, 0, acc)
        if term.carry is None:
            total = held + term.value
        elif kind.fused_carries:
            total = add_carry(held, term.value, term.carry)
        else:
            total = held + term.value + term.carry
        with m.If(valid):
            m.d.sync += acc.eq(total)
        m.d.sync += self.o.valid.eq(valid & last)
        m.d.comb += self.o.payload.eq(acc)
        return m

    def _lanes_front(self, m: Module):
        """Registered inputs, the kind's lane products and a pipelined adder tree."""
        cfg = self._config
        xs, codes, ctrl = registered_inputs(m, self)
        kind = cfg.pe_kind
        terms = kind.products(cfg, xs, codes)
        values = [t.value for t in terms]
        # the negations' carry-ins: each adder of the tree, and the accumulator's, takes one
        carries = [t.carry for t in terms if t.carry is not None]

        def stage(values, carries, ctrl):
            out, ctrl = pipeline_stage(m, values + carries, ctrl)
            return out[:len(values)], out[len(values):], ctrl

        spare = cfg.pipeline
        if spare:
            values, carries, ctrl = stage(values, carries, ctrl)
            spare -= 1
        levels = max(1, (len(values) - 1).bit_length())
        # register after these tree levels (1-based), spread evenly; the rest go at the end
        after = {round((j + 1) * levels / (spare + 1)) for j in range(min(spare, levels))}
        level = 0
        while len(values) > 1:
            summed = []
            for i in range(0, len(values), 2):
                if i + 1 < len(values):
                    if carries and kind.fused_carries:
                        summed.append(add_carry(values[i], values[i + 1], carries.pop()))
                    else:
                        v = values[i] + values[i + 1]
                        summed.append(v + carries.pop() if carries else v)
                else:
                    summed.append(values[i])
            values = summed
            level += 1
            if level in after:
                values, carries, ctrl = stage(values, carries, ctrl)
                spare -= 1
        for _ in range(spare):
            values, carries, ctrl = stage(values, carries, ctrl)
        return Term(values[0], sum_tree(carries) if carries else None), ctrl
