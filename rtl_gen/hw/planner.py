"""The folding planner: each layer's array sized so that every layer keeps pace.

A network's rate is set by its slowest part (:func:`~rtl_gen.design.timing.network_interval`):
a layer's interval, a layer's output stream, or the input port.  Giving every layer the same
array wastes area on the small layers (the 32->10 layer of the digits network idles three
quarters of the time) and leaves the big ones the bottleneck.  :func:`plan_folding` instead
picks, for one target interval ``I`` (cycles between batches), each layer's cheapest array
``(cols, lanes)`` -- by the area model :mod:`rtl_gen.design.area` -- whose steady interval is
at most ``I``, and the input port's width ``P`` (codes per cycle, a power of two dividing the
first layer's inputs and lanes) so that loading a batch takes at most ``I`` cycles too:

* ``target_fps``: ``I`` from the images per second wanted at the clock ``fmax_mhz`` (default:
  the device family's estimate, :data:`~rtl_gen.design.area_calibration.FMAX_MHZ`);
* ``fit``: the smallest ``I`` whose plan fits the device's logic, DSP and block RAM with
  ``margin`` to spare (with ``target_fps`` too: that target, checked against the device);
* neither: the rate of the default arrays, at the least area.

``overrides`` fix any of a layer's ``cols``, ``lanes``, ``rows`` (the batch, shared by every
layer), ``multiplier`` and ``pipeline`` by hand; the planner chooses the rest.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re

from ..design.area import Area, EngineShape, estimate_layer, in_block_ram, memory_blocks
from ..design.area_calibration import (
    COEFFICIENTS,
    FMAX_MHZ,
    UNROLLED_COEFFICIENTS,
    UNROLLED_DEEP_COEFFICIENTS,
)
from ..design.golden import TRControl, TRMode
from ..design.network import DenseLayer, Network
from ..design.timing import LayerTiming, network_interval
from ..devices import DEVICES, Device, get_device
from ..errors import RtlGenError
from . import pes as pe_kinds
from .kit import signed_bits
from .layer import ArrayConfig, beat_lanes, layer_timing, plan_layer
from .pes.layers import default_array, dense_pipeline

__all__ = ["UNROLLED_SHARING_FLOOR", "FoldingPlan", "LayerFold", "PlanError", "default_drain",
           "engine_shape",
           "plan_folding", "shortfall", "unrolled_adder_bits", "unrolled_area", "unrolled_fit",
           "unrolled_stage",
           "unrolled_logic_bits", "unrolled_plain_bits", "unrolled_prefit", "unroutable",
           "UNROLLED_ROUTABLE_SHARE"]

#: Keys a per-layer override may set.
OVERRIDE_KEYS = ("cols", "lanes", "rows", "multiplier", "pipeline", "window", "rom",
                 "drain", "tr_terms", "tr_read", "drain_width", "tr_rom_addr")
#: The override keys whose values are words, not integers.
WORD_KEYS = ("multiplier", "rom", "drain", "tr_read", "tr_rom_addr")

#: Block RAM bits per block, per family.
_BLOCK_BITS = {"ice40": 4096, "ecp5": 18432}


class PlanError(RtlGenError):
    """A folding that cannot be: a target the network cannot reach or the device cannot
    hold, or a bad override (one line naming what runs out or what is wrong)."""


def engine_shape(plan) -> EngineShape:
    """The :class:`~rtl_gen.design.area.EngineShape` of a validated
    :class:`~rtl_gen.hw.layer.LayerPlan`."""
    layer, t, pe = plan.layer, plan.timing, plan.pe
    if pe is None:
        kind = "tr"
    elif pe.kind == "int" and pe.multiplier == "dsp":
        kind = "int-dsp"
    else:
        kind = pe.kind
    requant = layer.activation == "relu"
    rom, per = None, 1
    if pe is None:  # the term-pair array's ROM of weight terms (hw.tr.term_rom_words)
        from .tr import term_layout, tr_max_terms, tr_per_cycle

        per = tr_per_cycle(layer, plan.array.tr_terms)
        size = term_layout(layer.tr.group,
                           max(1, layer.scheme.magnitude_bits.bit_length())).size
        groups = math.ceil(layer.in_features / layer.tr.group)
        rom = (t.tiles * groups * -(-tr_max_terms(layer) // per), t.cols * per * size)
    return EngineShape(kind=kind, rows=t.rows, cols=t.cols, lanes=t.lanes, k=t.k, n=t.n,
                       a_bits=layer.in_bits, w_bits=layer.scheme.bits,
                       acc_bits=layer.acc_bits,
                       out_bits=layer.out_bits if requant else layer.acc_bits,
                       requantize=requant, tiles=t.tiles, k_steps=t.k_steps,
                       fifo_depth=plan.fifo_depth, requant_method=plan.requant.method,
                       m_bits=plan.requant.m_bits or 30, r_bits=_result_bits(plan.requant),
                       rom=rom, rom_block=plan.array.rom == "block",
                       row_terms=row_terms(pe),
                       drain_shift=pe is not None and plan.array.drain == "shift",
                       tr_copies=t.cols * per if pe is None and plan.array.tr_read == "memory"
                       else 0, drain_width=plan.array.drain_width)


def default_drain(family: str, rows: int, tr: bool) -> str:
    """The drain the planner gives an array (:attr:`~rtl_gen.hw.layer.ArrayConfig.drain`):
    ``"shift"`` for one row on the iCE40, where each result bit's 2:1 multiplexer packs
    with its register in one logic cell and the select's logic cells go; else
    ``"select"`` (the ECP5's slices build wide multiplexers cheaply; term-revealing arrays
    have only the select)."""
    return "shift" if family == "ice40" and rows == 1 and not tr else "select"


def default_tr_rom_addr(family: str) -> str:
    """How the planner has a term-revealing layer form its weight-term ROM's address
    (:attr:`~rtl_gen.hw.layer.ArrayConfig.tr_rom_addr`): ``"register"`` on the ECP5 (no
    adder after the sequencer's decisions; the LFE5U-85F ``--fit`` design of ``digits-tr``
    98.7 -> 107.3 MHz, median of 5 seeds), ``"sum"`` on the iCE40 (its carry chain is fast
    there: the UP5K ``--fit`` design 40.6 MHz with it, 37.7 with the register)."""
    return "register" if family == "ecp5" else "sum"


def array_spec(a: ArrayConfig) -> str:
    """``RxCxL`` of an array, with a trailing ``b`` when its weight ROM is in block RAM,
    ``s`` when its drain shifts, ``m`` when its term-revealing PEs read their activations
    from memories and ``dD`` when its drain writes ``D > 1`` results a cycle (the form
    :func:`calibration_arrays` reads)."""
    return (f"{a.rows}x{a.cols}x{a.lanes}" + "b" * (a.rom == "block")
            + "s" * (a.drain == "shift") + "m" * (a.tr_read == "memory")
            + (f"d{a.drain_width}" if a.drain_width > 1 else ""))


_SPEC = re.compile(r"(\d+)x(\d+)x(\d+)([bsm]*)(?:d(\d+))?")


def calibration_arrays(net: Network, spec: str) -> list[ArrayConfig]:
    """The arrays of an area-model calibration network (``benchmarks/area_model.py``):
    ``RxCxL`` per layer, comma-separated (a trailing ``b``: the weight ROM in block RAM; a
    trailing ``s``: a shift drain; ``m``: term-revealing PEs reading memories; ``dD``: ``D``
    results a cycle), each with the register stages the planner gives it
    (:func:`~rtl_gen.hw.pes.layers.dense_pipeline`), as ``--fit`` builds it."""
    out = []
    for a, ly in zip(spec.split(","), net.layers, strict=True):
        match = _SPEC.fullmatch(a.strip())
        if match is None:
            raise ValueError(f"array {a!r}: not RxCxL[b][s][m][dD]")
        rows, cols, lanes = (int(g) for g in match.group(1, 2, 3))
        flags = match.group(4)
        out.append(ArrayConfig(rows, cols, lanes, rom="block" if "b" in flags else "auto",
                               drain="shift" if "s" in flags else "select",
                               tr_read="memory" if "m" in flags else "select",
                               drain_width=int(match.group(5) or 1),
                               pipeline=dense_pipeline(ly.scheme.kind, lanes,
                                                       ly.tr is not None, ly.scheme.bits)))
    return out


def row_terms(pe) -> int:
    """Terms a lane gives a PE's adder tree: its partial-product rows where the PE kind
    gives them as terms (:attr:`~rtl_gen.hw.pes.kit.PEKind.row_terms_bits`; radix-4 Booth:
    ``ceil(w_bits / 2)`` rows and a correction row), else 1."""
    if pe is None or pe.multiplier != "lut" or not pe_kinds.get(pe.kind).gives_rows(pe.w_bits):
        return 1
    return -(-pe.w_bits // 2) + 1


def _result_bits(rq) -> int:
    """Width of a layer's array result, the requantizer's product operand (0: none)."""
    if not rq.lo:
        return 0
    lo = min(v - b for v, b in zip(rq.lo, rq.bias, strict=True))
    hi = max(v - b for v, b in zip(rq.hi, rq.bias, strict=True))
    return signed_bits(lo, hi)


@dataclasses.dataclass(frozen=True)
class LayerFold:
    """One layer's choice: its array, cycle model and estimated resources."""

    index: int
    name: str
    scheme: str
    array: ArrayConfig
    timing: LayerTiming
    area: Area

    @property
    def interval(self) -> int:
        return self.timing.steady_interval


@dataclasses.dataclass(frozen=True)
class FoldingPlan:
    """A network's folding (:func:`plan_folding`).

    Members
    -------
    net:
        The network.
    layers:
        One :class:`LayerFold` per layer.
    in_per_beat:
        ``P``, input codes the network's port takes per cycle.
    interval:
        Cycles between batches in steady state (the model's
        :func:`~rtl_gen.design.timing.network_interval`).
    fmax_mhz:
        The clock the rate is quoted at.
    family:
        The device family whose area model the estimates are from.
    device, margin:
        The device the plan was fit to (``None``: none) and the share of it left free.
    area:
        The network's estimated resources.
    """

    net: Network
    layers: tuple[LayerFold, ...]
    in_per_beat: int
    interval: int
    fmax_mhz: float
    family: str
    device: Device | None
    margin: float
    area: Area

    @property
    def arrays(self) -> tuple[ArrayConfig, ...]:
        return tuple(f.array for f in self.layers)

    @property
    def timings(self) -> tuple[LayerTiming, ...]:
        return tuple(f.timing for f in self.layers)

    @property
    def rows(self) -> int:
        return self.layers[0].array.rows

    @property
    def fps(self) -> float:
        """Images per second at :attr:`fmax_mhz`."""
        return self.fmax_mhz * 1e6 * self.rows / self.interval

    def interval_under(self, control: TRControl) -> int:
        """:attr:`interval` with the term-revealing layers under the run-time ``control``
        (the plan is made for each layer's own ``k``; a layer's cycles follow the weight
        terms it reads, ``min(k, T)`` a group, every term ``T`` in conventional mode)."""
        timings = [f.timing if self.net.layers[f.index].tr is None else
                   dataclasses.replace(layer_timing(self.net.layers[f.index], f.array, control),
                                       in_per_beat=f.timing.in_per_beat)
                   for f in self.layers]
        return network_interval(timings, self.net.input.features)

    def run_time_range(self) -> tuple[int, int] | None:
        """Cycles between batches over the run-time settings of the term-revealing layers:
        the fewest (``k = 1``) and the most (conventional mode); None without such layers."""
        if all(ly.tr is None for ly in self.net.layers):
            return None
        return (self.interval_under(TRControl(budget=1)),
                self.interval_under(TRControl(mode=TRMode.CONVENTIONAL)))

    def table(self) -> str:
        """The plan as a Markdown table, then the input port, the rate and the resources."""
        unit = "LC" if self.family == "ice40" else "LUT4"
        lines = [f"| layer | K | N | scheme | cols x lanes x rows | cycles | interval | "
                 f"est. {unit} |", "|---|---|---|---|---|---|---|---|"]
        for f in self.layers:
            a, t = f.array, f.timing
            notes = ([a.multiplier] * (a.multiplier != "lut") + ["ROM in BRAM"] * (a.rom == "block")
                     + ["PEs read BRAM copies"] * (a.tr_read == "memory")
                     + [f"{a.drain_width} results a cycle"] * (a.drain_width > 1))
            mult = f" ({', '.join(notes)})" if notes else ""
            lines.append(f"| {f.index} {f.name} | {t.k} | {t.n} | {f.scheme} | "
                         f"{a.cols} x {a.lanes} x {a.rows}{mult} | {t.batch_cycles} | "
                         f"{f.interval} | {f.area.logic:.0f} |")
        a = self.area
        load = math.ceil(self.rows * self.net.input.features / self.in_per_beat)
        lines.append(f"input port: {self.in_per_beat} code{'s' * (self.in_per_beat > 1)} "
                     f"per cycle ({load} cycles per batch)")
        lines.append(f"network: {self.interval} cycles between batches of {self.rows}; "
                     f"{self.fps:,.0f} images/s at {self.fmax_mhz:g} MHz")
        span = self.run_time_range()
        if span is not None:
            ks = sorted({ly.tr.budget for ly in self.net.layers if ly.tr is not None})
            lines.append(f"term revealing: planned at the bundle's k = "
                         f"{', '.join(map(str, ks))}; at run time {span[0]} cycles (k = 1) to "
                         f"{span[1]} (conventional mode, every weight term)")
        res = f"estimated {a.logic:.0f} {unit}, {a.ff:.0f} FF, {a.dsp} DSP, {a.bram} BRAM"
        if self.device is not None:
            d = self.device
            res += (f" of {d.luts} {unit}, {d.dsp} DSP, "
                    f"{d.bram_bits // _BLOCK_BITS[d.family]} BRAM on {d.name} "
                    f"({100 * self.margin:g}% kept free)")
        lines.append(res)
        return "\n".join(lines) + "\n"


# -- candidates ----------------------------------------------------------------------------------


def _pow2_upto(n: int, cap: int = 256) -> list[int]:
    out, v = [], 1
    while v <= min(n, cap):
        out.append(v)
        v *= 2
    return out


def _check_overrides(net: Network, overrides) -> dict[int, dict]:
    """``overrides`` keyed by layer index; names (``fc1``) and indices are both accepted."""
    names = [ly.name for ly in net.layers]
    out: dict[int, dict] = {}
    for key, changes in (overrides or {}).items():
        if isinstance(key, str) and not key.lstrip("-").isdigit():
            if key not in names:
                raise PlanError(f"no layer {key!r}; the layers are "
                                f"{', '.join(f'{i} ({n})' for i, n in enumerate(names))}")
            idx = names.index(key)
        else:
            idx = int(key)
            if not 0 <= idx < len(names):
                raise PlanError(f"no layer {idx}; the layers are 0..{len(names) - 1}")
        bad = sorted(set(changes) - set(OVERRIDE_KEYS))
        if bad:
            raise PlanError(f"layer {idx}: unknown array setting {bad[0]!r}; expected "
                            f"{', '.join(OVERRIDE_KEYS)}")
        out.setdefault(idx, {}).update(changes)
    return out


#: The share of a layer's estimated logic by which an array draining two results a cycle
#: must undercut the others to be chosen at the same interval: the area model's differences
#: of a percent or so between the two are within its error, and a narrower drain is the
#: plainer design.
WIDE_DRAIN_PREMIUM = 0.02


@dataclasses.dataclass(frozen=True)
class _Candidate:
    array: ArrayConfig
    timing: LayerTiming
    area: Area
    cost: float

    @classmethod
    def of(cls, array: ArrayConfig, timing: LayerTiming, area: Area) -> _Candidate:
        """A candidate costed by its logic (plus :data:`WIDE_DRAIN_PREMIUM` where it drains
        more than one result a cycle)."""
        premium = WIDE_DRAIN_PREMIUM if array.drain_width > 1 else 0.0
        return cls(array, timing, area, area.logic * (1 + premium))


def _layer_candidates(layer, idx: int, fixed: dict, rows: int, family: str,
                      cp, block_roms: bool = False, beat: int = 1,
                      widths: tuple[int, ...] = (1,)) -> list[_Candidate]:
    """Every array of ``layer`` the settings ``fixed`` allow, with its timing and estimated
    area; with ``block_roms``, each whose weight ROM would be LUTs also with it in block RAM,
    and each term-revealing array also with its PEs reading copies of the input banks
    (``tr_read="memory"``; fewer LUTs, more blocks: :func:`_cheapest_chain` keeps the mix the
    device holds).  ``beat``: codes a transfer the layer takes from the one before (its
    ``drain_width``); ``widths``: the drain widths to try where ``fixed`` has none."""
    if fixed.get("window", 1) != 1:
        raise PlanError(f"layer {idx} ({layer.name}): window codes per cycle are a "
                        "convolution's setting, not a dense layer's")
    if fixed.get("drain_width", 1) > 1 and layer.activation != "relu":
        raise PlanError(f"layer {idx} ({layer.name}): the logits drain one result a cycle "
                        "(drain_width is a hidden layer's)")
    default = default_array(layer.scheme.kind, layer.tr is not None)
    multiplier = fixed.get("multiplier", default.multiplier)
    n, k = layer.out_features, layer.in_features
    cols_set = [fixed["cols"]] if "cols" in fixed else \
        sorted(set(_pow2_upto(n)) | ({n} if n <= 256 else set()))
    if "lanes" in fixed:
        lanes_set = [fixed["lanes"]]
    elif layer.tr is not None:
        lanes_set = [1]
    else:
        lanes_set = _pow2_upto(1 << max(0, (k - 1).bit_length()))
    out, errors = [], []
    widths = (fixed["drain_width"],) if "drain_width" in fixed else widths
    for cols, lanes, width in itertools.product(cols_set, lanes_set, widths):
        try:
            pipeline = fixed.get("pipeline", dense_pipeline(
                layer.scheme.kind, lanes, layer.tr is not None, layer.scheme.bits))
            array = ArrayConfig(rows=rows, cols=cols, lanes=lanes, multiplier=multiplier,
                                pipeline=pipeline, rom=fixed.get("rom", "auto"),
                                drain=fixed.get("drain", "select" if width > 1 else
                                                default_drain(family, rows,
                                                              layer.tr is not None)),
                                tr_terms=fixed.get("tr_terms", 1),
                                tr_read=fixed.get("tr_read", "select"),
                                drain_width=width,
                                tr_rom_addr=fixed.get("tr_rom_addr",
                                                      default_tr_rom_addr(family)))
            p = plan_layer(layer, array, in_per_beat=beat)
        except ValueError as e:
            errors.append(str(e))
            continue
        shape = engine_shape(p)
        area = estimate_layer(shape, family, cp)
        out.append(_Candidate.of(array, p.timing, area))
        if block_roms and layer.tr is not None and "tr_read" not in fixed and beat == 1:
            # the PEs reading copies of the banks: no selects, a block per copy
            array = dataclasses.replace(array, tr_read="memory")
            p = plan_layer(layer, array, in_per_beat=beat)
            area = estimate_layer(engine_shape(p), family, cp)
            out.append(_Candidate.of(array, p.timing, area))
        if block_roms and "rom" not in fixed and not in_block_ram(
                *shape.weight_rom, family, cp or COEFFICIENTS[family]):
            array = dataclasses.replace(array, rom="block")
            area = estimate_layer(dataclasses.replace(shape, rom_block=True), family, cp)
            out.append(_Candidate.of(array, p.timing, area))
    if not out:
        raise PlanError(f"layer {idx} ({layer.name}): no array fits the settings given"
                        f"{': ' + errors[0] if errors else ''}")
    return out


def _with_input(t: LayerTiming, per_beat: int) -> LayerTiming:
    return dataclasses.replace(t, in_per_beat=per_beat)


# -- the planner ----------------------------------------------------------------------------------


def shortfall(area: Area, device: Device | None, margin: float, *,
              bound: bool = False) -> str | None:
    """None when ``area`` fits ``device`` (None: any) with ``margin`` of each resource kept
    free, else what runs out first: ``"logic cells: needs about X, ... has Y (Z with ...)"``
    (``bound``: ``area`` is a lower bound, "needs at least about X")."""
    if device is None:
        return None
    needs = "needs at least about" if bound else "needs about"
    keep = 1 - margin
    unit = "logic cells" if device.family == "ice40" else "LUT4s"
    blocks = device.bram_bits // _BLOCK_BITS[device.family]
    for what, need, have in ((unit, area.logic, device.luts),
                             ("flip-flops", area.ff, device.luts),
                             ("DSP blocks", area.dsp, device.dsp),
                             ("block RAMs", area.bram, blocks)):
        if need > keep * have:
            return (f"{what}: {needs} {need:.0f}, {device.name} has {have} "
                    f"({math.floor(keep * have)} with {100 * margin:g}% kept free)")
    return None


def _check_settings(net, target_fps, fit, margin, fmax_mhz) -> tuple[Device | None, str, float]:
    """``(device, family, clock MHz)`` of a planner's settings, each checked (one
    :class:`PlanError` line for a bad one)."""
    if not isinstance(net, Network):
        raise PlanError(f"the folding planner takes integer networks, not {net!r}")
    if not 0 <= margin < 1:
        raise PlanError(f"the margin is a share of the device in [0, 1), not {margin!r}")
    if fit is None or isinstance(fit, Device):
        device = fit
    elif fit in DEVICES:
        device = DEVICES[fit]
    else:
        raise PlanError(f"unknown device {fit!r}; expected one of {', '.join(DEVICES)}")
    family = device.family if device is not None else "ice40"
    fmax = float(fmax_mhz) if fmax_mhz is not None else FMAX_MHZ[family]
    if fmax <= 0:
        raise PlanError(f"the clock must be positive, not {fmax_mhz!r} MHz")
    if target_fps is not None and not target_fps > 0:
        raise PlanError(f"the target rate must be positive, not {target_fps!r} images/s")
    return device, family, fmax


def plan_folding(net: Network, target_fps: float | None = None, fit: str | Device | None = None,
                 margin: float = 0.1, fmax_mhz: float | None = None,
                 overrides=None, coefficients=None,
                 max_in_per_beat: int | None = None) -> FoldingPlan:
    """Choose each layer's array (and the input port's width) so that the layers' intervals
    balance; see the module docstring.

    Parameters
    ----------
    net:
        An integer network.
    target_fps:
        Images per second wanted at ``fmax_mhz``.
    fit:
        A device (or its name): the fastest plan that fits it with ``margin`` to spare.
    margin:
        Share of each of the device's resources kept free, ``0 <= margin < 1``.
    fmax_mhz:
        The clock rates are quoted at (default: the family's estimate).
    overrides:
        ``{layer index or name: {"cols": 4, "lanes": 2, ...}}``: settings fixed by hand.
    coefficients:
        The area model's (default: the calibration's).
    max_in_per_beat:
        The widest input port allowed (``1`` behind a host link that sends one code a
        cycle); default: as wide as the rate needs.

    Raises
    ------
    PlanError
        For a target the network cannot reach, a target or a minimum design the device
        cannot hold (naming the resource that runs out and the best rate that fits), or a
        bad override.
    """
    device, family, fmax = _check_settings(net, target_fps, fit, margin, fmax_mhz)
    fixed = _check_overrides(net, overrides)
    rows_given = {f["rows"] for f in fixed.values() if "rows" in f}
    if len(rows_given) > 1:
        raise PlanError(f"every layer's array has the same rows (the batch), not "
                        f"{sorted(rows_given)}")
    rows = rows_given.pop() if rows_given else 1
    try:
        rows = ArrayConfig(rows=rows).rows
    except ValueError as e:
        raise PlanError(str(e)) from None
    widths = [_drain_widths(net, i, fixed.get(i, {})) for i in range(len(net.layers))]
    cands = []   # per layer: {codes a transfer from the layer before: its candidates}
    for i, layer in enumerate(net.layers):
        by_beat, error = {}, None
        for beat in widths[i - 1] if i else (1,):
            try:
                by_beat[beat] = _layer_candidates(
                    layer, i, fixed.get(i, {}), rows, family, coefficients,
                    block_roms=device is not None and family == "ice40", beat=beat,
                    widths=widths[i])
            except PlanError as e:
                error = e
        if not by_beat:
            raise error
        cands.append(by_beat)
    k0 = net.layers[0].in_features
    # the block RAMs a plan may take on the device: the cheapest arrays in logic that
    # together take more give way to the cheapest that fit (:func:`_cheapest_chain`)
    bram_budget = None if device is None else \
        math.floor((1 - margin) * (device.bram_bits // _BLOCK_BITS[device.family]))
    logic_budget = None if device is None else (1 - margin) * device.luts

    def build(interval: int) -> FoldingPlan | None:
        """The cheapest plan of steady interval at most ``interval`` (None: none)."""
        per_beats = [p for p in _pow2_upto(k0, max_in_per_beat or 256) if k0 % p == 0
                     and math.ceil(rows * k0 / p) <= interval]
        if not per_beats:
            return None
        choices = []   # per layer: (key, candidate, timing, beat) of each array that keeps up
        for idx, (layer, by_beat) in enumerate(zip(net.layers, cands, strict=True)):
            ok_here = []
            for beat, c in ((b, c) for b, options in by_beat.items() for c in options):
                if rows * layer.out_features > interval * c.array.drain_width:
                    continue
                t = c.timing
                if idx == 0:
                    # the input port: the narrowest that keeps up, and lanes to take it (a
                    # term-revealing layer's group, a data-term unit a code, where its PEs
                    # select their activations from the group word)
                    ok = [p for p in per_beats if beat_lanes(layer, c.array) % p == 0]
                    if not ok:
                        continue
                    t = _with_input(t, ok[0])
                if t.steady_interval > interval:
                    continue
                ok_here.append(((c.cost, t.steady_interval), c, t, beat))
            if not ok_here:
                return None
            choices.append(ok_here)
        picked = _cheapest_chain(choices)
        if picked is None:
            return None
        if bram_budget is not None and sum(o[1].area.bram for o in picked) > bram_budget:
            mix = _cheapest_chain(choices, bram_budget)
            # (a mix that overruns the logic instead, its ROMs in LUTs, is no better)
            if mix is not None and sum(o[1].area.logic for o in mix) <= logic_budget:
                picked = mix
        folds = [LayerFold(idx, layer.name, layer.scheme.name, c.array, t, c.area)
                 for idx, (layer, (_, c, t, _)) in enumerate(zip(net.layers, picked, strict=True))]
        timings = [f.timing for f in folds]
        total = Area()
        for f in folds:
            total = total + f.area
        coeff = coefficients or COEFFICIENTS[family]
        total = total + Area(coeff["network"][0], coeff["network"][1])
        return FoldingPlan(net=net, layers=tuple(folds), in_per_beat=timings[0].in_per_beat,
                           interval=network_interval(timings, k0), fmax_mhz=fmax,
                           family=family, device=device, margin=margin, area=total)

    # every interval some layer can have, fastest first
    bounds = sorted({_with_input(c.timing, p).steady_interval
                     for by_beat in cands for options in by_beat.values() for c in options
                     for p in _pow2_upto(k0)}
                    | {math.ceil(rows * k0 / p) for p in _pow2_upto(k0)}
                    | {-(-rows * ly.out_features // w)
                       for ly, ws in zip(net.layers, widths, strict=True) for w in ws})
    feasible = []
    for interval in bounds:
        plan = build(interval)
        if plan is not None:
            feasible.append(plan)
    if not feasible:
        raise PlanError(f"network {net.name!r}: no folding meets the settings given")
    fastest = feasible[0]

    def fits(plan: FoldingPlan) -> str | None:
        return shortfall(plan.area, device, margin)

    def best_fitting() -> FoldingPlan | None:
        return next((p for p in feasible if fits(p) is None), None)

    def rate(plan: FoldingPlan) -> str:
        return f"{plan.fps:,.0f} images/s ({plan.interval} cycles per batch of {plan.rows})"

    if target_fps is not None:
        want = math.floor(fmax * 1e6 * rows / target_fps)
        plan = next((p for p in reversed(feasible) if p.interval <= want), None)
        if plan is None:
            raise PlanError(f"{target_fps:,.0f} images/s needs at most {want} cycles per batch "
                            f"at {fmax:g} MHz; the fastest folding of {net.name!r} takes "
                            f"{fastest.interval} ({fastest.fps:,.0f} images/s), limited by "
                            f"{_bottleneck(fastest)}")
        why = fits(plan)
        if why is not None:
            best = best_fitting()
            tail = (f"the best rate that fits is {rate(best)}" if best is not None
                    else "no folding fits")
            raise PlanError(f"{target_fps:,.0f} images/s does not fit {device.name}: {why}; "
                            f"{tail}")
        return plan
    if device is not None:
        plan = best_fitting()
        if plan is None:
            raise PlanError(f"no folding of {net.name!r} fits {device.name}: "
                            f"{fits(feasible[-1])}")
        return plan
    # neither: the default arrays' rate, at the least area
    defaults = [default_array(ly.scheme.kind, ly.tr is not None) for ly in net.layers]
    timings = []
    for i, (layer, a) in enumerate(zip(net.layers, defaults, strict=True)):
        changes = {**fixed.get(i, {}), "rows": rows}
        timings.append(plan_layer(layer, dataclasses.replace(a, **changes)).timing)
    want = network_interval(timings, k0)
    return next((p for p in reversed(feasible) if p.interval <= want), fastest)


def _drain_widths(net: Network, i: int, fixed: dict) -> tuple[int, ...]:
    """The drain widths (results a cycle) the planner tries for layer ``i``: the one fixed
    by hand, else 1, and 2 for an integer hidden layer of even width feeding an integer
    layer (half the drain's cycles a tile: its columns may fill a tile that many times
    faster; the next layer takes two codes a transfer)."""
    if "drain_width" in fixed:
        return (fixed["drain_width"],)
    layers = net.layers[i:i + 2]
    two = (len(layers) == 2 and all(isinstance(ly, DenseLayer) and ly.tr is None
                                    for ly in layers)
           and layers[0].activation == "relu" and layers[0].out_features % 2 == 0)
    return (1, 2) if two else (1,)


def _cheapest_chain(choices, budget: int | None = None):
    """One choice per layer (``choices[i]``: ``(key, candidate, timing, beat)`` tuples, the
    layer taking ``beat`` codes a transfer) of the least total logic in which each layer
    takes as many codes a transfer as the layer before drains a cycle (its array's
    ``drain_width``; the first layer: any); None when there is none.  With ``budget``, also
    at most that many block RAMs in all: the arrays that keep up with an interval differ in
    block RAM as much as in logic (a first layer's input banks are as wide as its lanes,
    its weight ROM as its lanes times its columns), so the cheapest in logic of each layer
    may together overrun the device while another mix fits."""
    # (drain width of the last layer chosen, block RAMs so far): ((logic, the intervals'
    # sum: the tie-break), choices)
    best: dict[tuple[int, int], tuple[tuple, tuple]] = {(0, 0): ((0.0, 0), ())}
    for idx, options in enumerate(choices):
        nxt: dict[tuple[int, int], tuple[tuple, tuple]] = {}
        for (width, used), (cost, picked) in best.items():
            for o in options:
                if idx and o[3] != width:
                    continue
                b = used + o[1].area.bram if budget is not None else 0
                if budget is not None and b > budget:
                    continue
                key = (o[1].array.drain_width, b)
                total = (cost[0] + o[0][0], cost[1] + o[0][1])
                if key not in nxt or total < nxt[key][0]:
                    nxt[key] = (total, (*picked, o))
        best = nxt
    if not best:
        return None
    return list(min(best.values(), key=lambda v: v[0])[1])


def _bottleneck(plan: FoldingPlan) -> str:
    """What sets a plan's interval: a layer, a layer's output stream, or the input port."""
    rows, k0 = plan.rows, plan.net.input.features
    for f in plan.layers:
        d = f.array.drain_width
        if rows * f.timing.n == plan.interval * d:
            return (f"layer {f.index} ({f.name})'s output stream, "
                    f"{'one result' if d == 1 else f'{d} results'} a cycle")
    for f in plan.layers:
        if f.interval == plan.interval:
            return (f"layer {f.index} ({f.name}): its drain takes "
                    f"{rows * f.array.cols // f.array.drain_width + 1} cycles per tile of "
                    f"{f.array.cols} channels")
    if math.ceil(rows * k0 / plan.in_per_beat) == plan.interval:
        return f"the input port ({plan.in_per_beat} codes per cycle)"
    return "the network"


# -- the unrolled engine: whole networks at one vector a cycle --------------------------------

def unrolled_adder_bits(plan) -> int:
    """The sum over every two-input adder of an :class:`~rtl_gen.hw.unrolled.UnrolledPlan`'s
    graphs of its output width."""
    return sum(node.shape.width * (len(node.terms) - 1)
               for g in plan.layers for node in g.nodes if node.kind == "add")


def unrolled_logic_bits(plan) -> int:
    """Bits of every carry chain of an :class:`~rtl_gen.hw.unrolled.UnrolledPlan`'s
    datapath, the unrolled engine's area model's feature: the adder graphs
    (:func:`unrolled_adder_bits`), each output's bias add (a table requantizer's base
    taken off it; none before a direct table), each hidden output's fabric requantizer (the
    balanced tree of its shift-and-add terms, each partial sum as wide as its range over the
    accumulator's) or table requantizer's address (a clamp: a bit each; none for a direct
    table), and one compare as wide as a logit
    for each logit but one (the argmax of a tree; the matrix of up to 16 classes compares
    every pair, which the calibration absorbs)."""
    from .unrolled import _range_shape

    bits = unrolled_adder_bits(plan)
    for g in plan.layers:
        bases = g.rom_bases
        bits += sum(n.shape.width for n in g.nodes
                    if n.kind == "acc" and n.terms and n.const != bases[n.index]
                    and not g.direct(n.index))
        for k, (o, f) in enumerate(zip(g.outputs, g.fabric or (), strict=False)):
            if g.rom is not None and g.rom[k] is not None:
                bits += 0 if g.rom[k].direct else g.rom[k].bits
                continue
            node = g.nodes[o]
            parts = [(d << e, 0) for e, d in f.digits] + ([(0, f.const)] if f.const else [])
            while len(parts) > 1:
                nxt = []
                for (ca, ka), (cb, kb) in zip(parts[0::2], parts[1::2], strict=False):
                    c, k = ca + cb, ka + kb
                    bits += _range_shape(min(node.lo * c + k, node.hi * c + k),
                                         max(node.lo * c + k, node.hi * c + k)).width
                    nxt.append((c, k))
                parts = nxt + parts[len(parts) - len(parts) % 2:]
    last = plan.layers[-1]
    widths = [last.nodes[o].shape.width for o in last.outputs]
    return bits + sum(widths) - max(widths, default=0)


def unrolled_area(plan, bits: int | None = None, coefficients=None,
                  family: str = "ecp5") -> Area:
    """The unrolled engine's estimated logic and flip-flops: linear in
    :func:`unrolled_logic_bits` (``bits``, when given, instead), with ``coefficients``
    (default :data:`~rtl_gen.design.area_calibration.UNROLLED_COEFFICIENTS`, or
    :data:`~rtl_gen.design.area_calibration.UNROLLED_DEEP_COEFFICIENTS` for a plan with a
    register after every adder level); its DSP blocks: the hidden outputs' products with the
    hard-multiplier requantizer; its block RAMs (of ``family``): a memory per table
    requantizer."""
    from .unrolled import _range_shape

    deep = plan is not None and plan.stage == 1
    c = coefficients or (UNROLLED_DEEP_COEFFICIENTS if deep else UNROLLED_COEFFICIENTS)
    b = unrolled_logic_bits(plan) if bits is None else bits
    dsp = 0 if plan is None or plan.multiplier != "dsp" else sum(
        len(g.outputs) for g in plan.layers if g.requant is not None)
    bram = 0 if plan is None else sum(
        memory_blocks(len(r.codes), _range_shape(*g.out_ranges[k]).width, family)
        for g in plan.layers for k, r in enumerate(g.rom or ()) if r is not None)
    return Area(logic=c["logic"][0] + c["logic"][1] * b, ff=c["ff"][0] + c["ff"][1] * b,
                dsp=dsp, bram=bram)


def unrolled_fit(plan, device: str | Device, margin: float = 0.1) -> tuple[float, str | None]:
    """``(estimated logic, None)`` when the unrolled ``plan`` fits ``device`` with ``margin``
    kept free (:func:`unrolled_area`, :func:`shortfall`) and within what nextpnr routes there
    (:func:`unroutable`), else ``(estimated logic, what runs out)``."""
    device = get_device(device) if isinstance(device, str) else device
    area = unrolled_area(plan, family=device.family)
    return area.logic, shortfall(area, device, margin) or unroutable(area.logic, device)


#: Share of a family's LUT4s up to which ``--fit`` takes the unrolled engine
#: (:func:`unroutable`): its adder graphs are carry chains fed by every input bit, so on a
#: large design nextpnr's routes run out before the LUT4s do.  Measured on the LFE5U-85F
#: in the flow's harness (``benchmarks/results/network.json``, ``peers.json``): every
#: unrolled design up to 27k LUT4 (32%: ours up to PoT4's 23,797, da4ml's APoT4 26,934)
#: routes, in 5-49 minutes a seed; neither int8 design (ours 43,780, 52%; da4ml's 45,724,
#: 55%) converges in an hour (router2 stalls at about 8,700 and 16,100 overused wires,
#: router1 leaves over 100,000 arcs after 24 minutes).  The bound lies between the two.
UNROLLED_ROUTABLE_SHARE = {"ecp5": 0.4}


def unroutable(logic: float, device: Device, *, bound: bool = False) -> str | None:
    """What runs out when the unrolled engine of ``logic`` estimated LUT4s is beyond what
    nextpnr routes on ``device`` (:data:`UNROLLED_ROUTABLE_SHARE`), in :func:`shortfall`'s
    words, else None (``bound``: ``logic`` is a lower bound)."""
    share = UNROLLED_ROUTABLE_SHARE.get(device.family)
    if share is None or logic <= share * device.luts:
        return None
    needs = "needs at least about" if bound else "needs about"
    return (f"LUT4s: {needs} {logic:.0f}, nextpnr routes about "
            f"{math.floor(share * device.luts)} of {device.name}'s {device.luts} in adder "
            f"graphs ({100 * share:g}%)")


#: Estimated logic (ECP5 ``TRELLIS_COMB``) from which ``--fit`` on an ECP5 device registers
#: the unrolled engine after every adder level (:func:`unrolled_stage`).  Measured on the
#: LFE5U-85F (``benchmarks/results/network.json``, ``peers.json``): with a register every
#: second level the designs up to 18k logic cells reach 121-134 MHz, those of 25-29k
#: (int4, PoT4, APoT4) 91-110 MHz, their two adders a cycle joined by long routes; with a
#: register every level APoT4 reaches 135 MHz in 11% fewer logic cells, for 22 cycles of
#: latency instead of 12; digits-tr built unrolled (14k) 137.4 MHz in 14,046 cells against
#: 115.4 in 14,376 (nextpnr seed 1).  The small designs gain too (nextpnr seed 1, 2026-12-02):
#: binary 137.6 MHz in 11,319 cells against 128.7 in 11,982, ternary 149.7 in 9,675 against
#: 131.6 in 9,463, mixed 137.9 in 10,948 against 125.7 (median of 5) in 11,538, for 18-19
#: cycles of latency instead of 12; so on the ECP5 every design takes it (threshold 0).
UNROLLED_DEEP_LOGIC = {"ecp5": 0}


def unrolled_stage(logic: float, device: str | Device) -> int:
    """Adder levels between the unrolled engine's registers that ``--fit device`` builds,
    from the estimated logic of the default plan (:data:`~rtl_gen.hw.unrolled.DEFAULT_STAGE`
    levels): ``1`` on a family of :data:`UNROLLED_DEEP_LOGIC` from its threshold up, else
    the default."""
    from .unrolled import DEFAULT_STAGE

    device = get_device(device) if isinstance(device, str) else device
    deep = UNROLLED_DEEP_LOGIC.get(device.family)
    return 1 if deep is not None and logic >= deep else DEFAULT_STAGE


#: The fewest adder bits the unrolled engine's shared adder graphs (da4ml) have been seen to
#: take per adder bit of the plain sums (:func:`unrolled_plain_bits`), halved as a margin,
#: per weight kind: the shipped digits networks took 0.136 (binary: dense +-1 rows share the
#: most), 0.327 (ternary), 0.318 (int4) and 0.299 (pot4).  :func:`unrolled_prefit` rejects a
#: network on these floors before building its graphs, which for a 784-input layer takes
#: minutes.
UNROLLED_SHARING_FLOOR = {"binary": 0.068, "other": 0.15}


def _plain_layer_bits(layer) -> int:
    import numpy as np

    from .unrolled import revealed_weights

    # a term-revealing layer's graph takes its revealed weights (fewer digits)
    w = np.abs(revealed_weights(layer) if getattr(layer, "tr", None) is not None
               else np.asarray(layer.w_int, dtype=np.int64))
    nz = ((3 * w) ^ w) >> 1          # the non-adjacent form's nonzero digits, as bits
    digits = np.zeros(w.shape, dtype=np.int64)
    while nz.any():
        digits += nz & 1
        nz >>= 1
    per_out = digits.reshape(digits.shape[0], -1).sum(axis=1)
    return int(np.maximum(per_out - 1, 0).sum()) * int(layer.acc_bits)


def _weighted(net):
    """``(layer, kind's floor)`` of each layer with weights."""
    for layer in net.layers:
        if getattr(layer, "w_int", None) is None:
            continue                     # no weights (pooling)
        kind = "binary" if layer.scheme.kind == "binary" else "other"
        yield layer, UNROLLED_SHARING_FLOOR[kind]


def unrolled_plain_bits(net) -> int:
    """Adder bits of ``net``'s layers as plain sums, without sharing: each output the sum of
    its weights' signed digits (``w * x`` as ``csd(w)`` shifted copies of ``x``; a
    term-revealing layer's revealed weights), every adder as wide as the layer's
    accumulator."""
    return sum(_plain_layer_bits(layer) for layer, _ in _weighted(net))


def unrolled_prefit(net, device: str | Device, margin: float = 0.1) -> str | None:
    """What runs out when even the most sharing seen (:data:`UNROLLED_SHARING_FLOOR`) leaves
    the unrolled engine of ``net`` too big for ``device`` with ``margin`` kept free, else
    None (it may fit: :func:`unrolled_fit` on the built plan decides).  Reads the weights
    only, in well under a second."""
    device = get_device(device) if isinstance(device, str) else device
    least = unrolled_least(net)
    return shortfall(least, device, margin, bound=True) or \
        unroutable(least.logic, device, bound=True)


def unrolled_least(net) -> Area:
    """The smallest area the unrolled engine of ``net`` could take: its plain sums' adder
    bits at the most sharing seen (:data:`UNROLLED_SHARING_FLOOR`), under whichever
    pipelining's coefficients give less logic."""
    bits = sum(f * _plain_layer_bits(layer) for layer, f in _weighted(net))
    return min((unrolled_area(None, bits=round(bits), coefficients=c)
                for c in (UNROLLED_COEFFICIENTS, UNROLLED_DEEP_COEFFICIENTS)),
               key=lambda a: a.logic)
