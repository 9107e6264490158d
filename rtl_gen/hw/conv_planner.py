"""The folding planner of networks with convolutions: each weight layer's array sized so that
the stages keep pace.

A network with convolution, pooling or flatten layers runs one image at a time (every array
has one row, :mod:`rtl_gen.hw.conv`); its rate is set by its slowest stage
(:attr:`~rtl_gen.hw.conv.ConvNetworkEngine.interval`): a convolution (its window unit issues
each window's ``kh*kw*C`` codes one a cycle into its core engine, which needs its own
interval per window), a window pool (its window unit reads every window one code a cycle:
a fixed interval), a dense layer, or the input stream (one code a cycle).
:func:`plan_conv_folding` picks, for one target interval ``I`` (cycles between images),
each weight layer's array ``(cols, lanes)`` -- powers of two up to the layer's output
channels and its window size ``kh*kw*C`` (or inputs) rounded up, and at most
:data:`MAX_COLS` / :data:`MAX_LANES` -- and, for a convolution, its window unit's codes per
cycle ``P`` (the array's ``window``: a power of two dividing the lanes and the input
channels; ``K/P`` cycles a window) whose stage interval is at most ``I``, so that
together they take the least logic (by the area model, :mod:`rtl_gen.design.area`, on each
core engine) and, when fitting a device, fit its logic, flip-flops, DSP blocks and block
RAM with the margin kept free.  The PE kind and the multiplier are each scheme's default
(:func:`~rtl_gen.hw.pes.layers.default_array`) unless overridden.

* ``target_fps``: ``I`` from the images per second wanted at the clock ``fmax_mhz`` (default:
  the family's estimate, :data:`~rtl_gen.design.area_calibration.FMAX_MHZ`);
* ``fit``: the smallest ``I`` whose plan fits the device with ``margin`` to spare (with
  ``target_fps`` too: that target, checked against the device);
* neither: the default arrays' rate, at the least area.

Area: the area model on each weight layer's core engine
(:func:`~rtl_gen.hw.planner.engine_shape`), the network's constant, and per window unit
(each convolution and window pool; global average pooling has a reducer only) its line
buffer in block RAM (``lines x W x C`` codes in words of ``P`` codes, at least one block)
and the logic and flip-flops of :data:`WINDOW_UNIT`, plus :data:`WINDOW_WORD` per bit of
a word beyond its first code.
"""

from __future__ import annotations

import dataclasses
import itertools
import math

from ..design.area import Area, estimate_layer, memory_blocks
from ..design.area_calibration import CONV_COEFFICIENTS
from ..design.conv import ConvLayer, FlattenLayer, GlobalAvgPoolLayer
from ..design.network import DenseLayer, Network
from ..devices import Device
from .conv import _core, conv_arrays, plan_conv, plan_pool, stage_interval, stage_timing
from .layer import ArrayConfig, plan_layer
from .pes.layers import PIPELINE_LANES, default_array, pe_pipeline
from .planner import _BLOCK_BITS, PlanError, _check_settings, engine_shape, shortfall
from .planner import _check_overrides as _check_dense_overrides
from .window import plan_window

__all__ = ["MAX_COLS", "MAX_LANES", "PIPELINE_LANES", "WINDOW_UNIT", "WINDOW_WORD",
           "ConvFoldingPlan", "StageFold", "pe_pipeline", "plan_conv_folding"]

#: The widest array the planner tries per weight layer: columns (output channels per tile)
#: and lanes (window codes per step).
MAX_COLS = 16
MAX_LANES = 16

#: Per window unit (a convolution's or a window pool's, with the pool's reducer), per family:
#: ``(logic, flip-flops)`` beyond the core engines of the area model.  Logic from the
#: synthesis of the bare first MNIST CNNs (``tests/data/cnn-v1/mnist-cnn-{int4,ternary}``, two
#: convolutions and two max pools, four window units, counters off) against the core
#: engines' model: on the default arrays (eight columns, one lane for int4, four for
#: ternary), UP5K int4 5,376 LC against 5,222 (+154), ternary 5,829 against 6,265 (-436);
#: LFE5U-85F int4 5,342 LUT4 against 3,887 (+1,455), ternary 5,832 against 4,801 (+1,031);
#: and the planner's UP5K choice for int4 (conv1 2 x 4, conv2 2 x 8, fc 1 x 1; packed
#: ``ICESTORM_LC``) 4,485 LC against 3,871 (+614).  The constant is the largest residual of
#: a family over the four units, so that the estimate is not below any of these syntheses
#: (the others are then 7% to 18% above): it also takes what the core model misses of a
#: three-engine chain and of the narrow, many-lane arrays the planner picks.  Flip-flops are
#: not measured: the window unit's counters and registers (about 80); a pool's reducer adds
#: one accumulator per channel (:func:`window_area`).
WINDOW_UNIT = {"ice40": (154.0, 80.0), "ecp5": (364.0, 80.0)}

#: Per bit of a window unit's word beyond its first code (``(P - 1) * bits`` bits, ``P``
#: codes a cycle), per family: ``(logic, flip-flops)``.  Not fitted to syntheses: the writer
#: holds ``P - 1`` codes until the word's last one arrives (a flip-flop a bit), and each bit
#: of the word is zeroed for padding and written into its lane of the input banks (a LUT a
#: bit).
WINDOW_WORD = {"ice40": (1.0, 1.0), "ecp5": (1.0, 1.0)}


def window_area(window, reducer, family: str) -> Area:
    """The estimated resources of a convolution's or a pooling layer's window unit and a
    pool's reducer: :data:`WINDOW_UNIT`, :data:`WINDOW_WORD` per bit of a word beyond its
    first code, a flip-flop per bit of the reducer's accumulators, and the line buffer's
    block RAM (``window``: a :class:`~rtl_gen.hw.window.WindowPlan`, ``words`` of
    ``word_bits``, at least one block; ``None`` for global pooling)."""
    logic, ff = WINDOW_UNIT[family]
    if reducer is not None:
        ff += reducer.channels * reducer.sum_bits
    if window is None:
        return Area(logic, ff, 0, 0)
    extra = (window.per_cycle - 1) * window.bits
    logic += extra * WINDOW_WORD[family][0]
    ff += extra * WINDOW_WORD[family][1]
    bram = max(1, memory_blocks(window.words, window.word_bits, family))
    return Area(logic, ff, 0, bram)


@dataclasses.dataclass(frozen=True)
class StageFold:
    """One stage of a :class:`ConvFoldingPlan`.

    ``kind`` the layer's (``conv``, ``dense``, ``maxpool``, ...); ``array``, ``k``, ``n``,
    ``cycles`` (the core engine's cycles per window or batch) and ``scheme`` for a weight
    layer, else ``None``; ``interval`` the stage's cycles per image
    (:func:`~rtl_gen.hw.conv.stage_interval`); ``area`` its estimated resources, of which
    ``window`` its window unit's."""

    index: int
    name: str
    kind: str
    scheme: str | None
    array: ArrayConfig | None
    k: int | None
    n: int | None
    cycles: int | None
    interval: int
    area: Area
    window: Area


@dataclasses.dataclass(frozen=True)
class ConvFoldingPlan:
    """A folding of a network with convolutions (:func:`plan_conv_folding`).

    Members
    -------
    net:
        The network.
    stages:
        One :class:`StageFold` per layer.
    interval:
        Cycles between images in steady state: the slowest stage, or the input stream
        (:attr:`~rtl_gen.hw.conv.ConvNetworkEngine.interval` of :attr:`arrays`).
    fmax_mhz, family, device, margin:
        As for :class:`~rtl_gen.hw.planner.FoldingPlan`.
    area:
        The network's estimated resources.
    """

    net: Network
    stages: tuple[StageFold, ...]
    interval: int
    fmax_mhz: float
    family: str
    device: Device | None
    margin: float
    area: Area

    @property
    def arrays(self) -> tuple:
        """Per layer: the weight layers' arrays, ``None`` for pooling and flatten
        (:func:`~rtl_gen.hw.conv.conv_arrays`)."""
        return tuple(s.array for s in self.stages)

    @property
    def rows(self) -> int:
        return 1

    @property
    def fps(self) -> float:
        """Images per second at :attr:`fmax_mhz`."""
        return self.fmax_mhz * 1e6 / self.interval

    def table(self) -> str:
        """The plan as a Markdown table, then the input stream, the rate and the
        resources."""
        unit = "LC" if self.family == "ice40" else "LUT4"
        lines = [f"| layer | kind | K | N | scheme | cols x lanes x rows | cycles/window | "
                 f"interval | est. {unit} | BRAM |", "|---|---|---|---|---|---|---|---|---|---|"]
        for s in self.stages:
            a = s.array
            if a is None:
                par = k = n = cycles = scheme = "-"
            else:
                mult = "" if a.multiplier == "lut" else f" ({a.multiplier})"
                wide = "" if a.window == 1 else f", window {a.window}"
                pipe = "" if not a.pipeline else f", pipeline {a.pipeline}"
                par = f"{a.cols} x {a.lanes} x {a.rows}{mult}{wide}{pipe}"
                k, n, cycles, scheme = s.k, s.n, s.cycles, s.scheme
            lines.append(f"| {s.index} {s.name} | {s.kind} | {k} | {n} | {scheme} | {par} | "
                         f"{cycles} | {s.interval} | {s.area.logic:.0f} | {s.area.bram} |")
        a = self.area
        lines.append(f"input stream: {self.net.input.features} codes per image, one per cycle")
        lines.append(f"network: {self.interval} cycles per image; {self.fps:,.0f} images/s "
                     f"at {self.fmax_mhz:g} MHz")
        res = f"estimated {a.logic:.0f} {unit}, {a.ff:.0f} FF, {a.dsp} DSP, {a.bram} BRAM"
        if self.device is not None:
            d = self.device
            res += (f" of {d.luts} {unit}, {d.dsp} DSP, "
                    f"{d.bram_bits // _BLOCK_BITS[d.family]} BRAM on {d.name} "
                    f"({100 * self.margin:g}% kept free)")
        lines.append(res)
        return "\n".join(lines) + "\n"


# -- candidates ----------------------------------------------------------------------------------


def _pow2_upto(n: int, cap: int) -> list[int]:
    """Powers of two up to ``n`` rounded up to one, at most ``cap``."""
    top = min(cap, 1 << max(0, (n - 1).bit_length()))
    out, v = [], 1
    while v <= top:
        out.append(v)
        v *= 2
    return out


@dataclasses.dataclass(frozen=True)
class _Choice:
    array: ArrayConfig
    cycles: int
    interval: int
    area: Area                 # the core engine's, and a convolution's window unit's
    window: Area = Area()      # a convolution's window unit's


def _check_overrides(net: Network, overrides) -> dict[int, dict]:
    """``overrides`` keyed by layer index (every layer counts, pooling and flatten too) or
    name (:func:`rtl_gen.hw.planner._check_overrides`); only weight layers take an array,
    of one row."""
    out = _check_dense_overrides(net, overrides)
    for idx, changes in out.items():
        name = net.layers[idx].name
        if not net.layers[idx].has_weights:
            raise PlanError(f"layer {idx} ({name}) is {net.layers[idx].kind}: it has no "
                            "array to set")
        if changes.get("window", 1) != 1 and not isinstance(net.layers[idx], ConvLayer):
            raise PlanError(f"layer {idx} ({name}): window codes per cycle are a "
                            f"convolution's setting, not a dense layer's")
        if changes.get("rows", 1) != 1:
            raise PlanError(f"layer {idx} ({name}): a network with convolution, "
                            f"pooling or flatten layers runs one image at a time (rows 1), "
                            f"not {changes['rows']!r}")
    return out


def _weight_choices(layer, idx: int, fixed: dict, family: str, coeff) -> list[_Choice]:
    """Every array the planner tries for a weight layer, with its stage interval and core
    engine's area; on the Pareto front of (interval, logic, FF, DSP, BRAM) only."""
    core = _core(layer)
    default = default_array(core.scheme.kind, core.tr is not None)
    base = {"rows": 1, "multiplier": default.multiplier}
    base.update({k: v for k, v in fixed.items() if k in ("multiplier", "rom")})
    cols_set = [fixed["cols"]] if "cols" in fixed else _pow2_upto(core.out_features, MAX_COLS)
    lanes_set = [fixed["lanes"]] if "lanes" in fixed else \
        _pow2_upto(core.in_features, MAX_LANES)
    conv = isinstance(layer, ConvLayer)
    if "window" in fixed:
        window_set = [fixed["window"]]
    elif conv:   # powers of two dividing the input channels (and, below, the lanes)
        ch = layer.in_shape[2]
        window_set = [p for p in _pow2_upto(ch, MAX_LANES) if ch % p == 0]
    else:
        window_set = [1]
    out, errors = [], []
    for cols, lanes, per in itertools.product(cols_set, lanes_set, window_set):
        if "lanes" not in fixed and lanes % per:
            continue
        pipeline = fixed.get("pipeline", default.pipeline + pe_pipeline(lanes))
        try:
            array = ArrayConfig(cols=cols, lanes=lanes, window=per, pipeline=pipeline, **base)
            if conv:
                cp = plan_conv(layer, array, counters=False)
                p = cp.core
            else:
                p = plan_layer(layer, array, counters=False)
        except ValueError as e:
            errors.append(str(e))
            continue
        timing = stage_timing(layer, array)
        area = estimate_layer(engine_shape(p), family, coeff)
        win = window_area(cp.window, None, family) if conv else Area()
        out.append(_Choice(array, p.timing.batch_cycles, stage_interval(timing), area + win,
                           win))
    if not out:
        raise PlanError(f"layer {idx} ({layer.name}): no array fits the settings given"
                        f"{': ' + errors[0] if errors else ''}")
    return _front(out, lambda c: (c.interval, c.area.logic, c.area.ff, c.area.dsp,
                                  c.area.bram))


def _front(items, key) -> list:
    """The items no other item beats or equals in every coordinate of ``key`` (the first
    of equal ones kept), in order of ``key``."""
    items = sorted(items, key=key)
    kept, keys = [], []
    for it in items:
        k = key(it)
        if not any(all(a <= b for a, b in zip(o, k, strict=True)) for o in keys):
            kept.append(it)
            keys.append(k)
    return kept


# -- the planner ----------------------------------------------------------------------------------


def plan_conv_folding(net: Network, target_fps: float | None = None,
                      fit: str | Device | None = None, margin: float = 0.1,
                      fmax_mhz: float | None = None, overrides=None,
                      coefficients=None) -> ConvFoldingPlan:
    """Choose each weight layer's array of a network with convolution, pooling or flatten
    layers so that the stages' intervals balance; see the module docstring.

    Parameters are those of :func:`~rtl_gen.hw.planner.plan_folding` (``overrides`` by
    layer index, counting every layer, or name; ``rows`` only 1).

    Raises
    ------
    PlanError
        For a target the network cannot reach, a target or a least design the device
        cannot hold (naming the resource that runs out and the best rate that fits), or a
        bad override.
    """
    device, family, fmax = _check_settings(net, target_fps, fit, margin, fmax_mhz)
    fixed = _check_overrides(net, overrides)
    coeff = coefficients or CONV_COEFFICIENTS[family]

    # the fixed parts: pooling and flatten stages, the window units, the input stream
    floor = net.input.features
    fixed_area = Area(coeff["network"][0], coeff["network"][1])
    windows: dict[int, Area] = {}
    pool_intervals: dict[int, int] = {}
    choices: dict[int, list[_Choice]] = {}
    for idx, layer in enumerate(net.layers):
        try:
            if isinstance(layer, ConvLayer):   # its window unit: with each choice
                plan_window(layer.in_shape, layer.kernel, layer.stride, layer.padding,
                            bits=layer.in_bits, signed=layer.in_signed)
            elif not isinstance(layer, (DenseLayer, FlattenLayer)):
                p = plan_pool(layer)
                windows[idx] = window_area(p.window, p.reducer, family)
                pool_intervals[idx] = stage_interval(stage_timing(layer, None))
            elif isinstance(layer, FlattenLayer):
                pool_intervals[idx] = stage_interval(stage_timing(layer, None))
        except ValueError as e:
            raise PlanError(f"layer {idx} ({layer.name}): {e}") from None
        if layer.has_weights:
            choices[idx] = _weight_choices(layer, idx, fixed.get(idx, {}), family, coeff)
    for a in windows.values():
        fixed_area = fixed_area + a
    floor = max([floor, *pool_intervals.values()])
    limits = None
    if device is not None:
        keep = 1 - margin
        limits = (keep * device.luts, keep * device.luts, keep * device.dsp,
                  keep * (device.bram_bits // _BLOCK_BITS[family]))

    def combine(interval: int, within: bool) -> tuple[Area, dict[int, _Choice]] | None:
        """The least-logic choice per weight layer of stage interval at most ``interval``
        (with ``within``: whose total fits the device), or None."""
        partial = [(fixed_area, {})]
        for idx, options in choices.items():
            grown = []
            for total, picked in partial:
                for c in options:
                    if c.interval > interval:
                        continue
                    t = total + c.area
                    if within and limits is not None and any(
                            v > lim for v, lim in zip((t.logic, t.ff, t.dsp, t.bram), limits,
                                                      strict=True)):
                        continue
                    grown.append((t, {**picked, idx: c}))
            # flip-flops left out of the front: they follow the logic and never bind first
            partial = _front(grown, lambda p: (p[0].logic, p[0].dsp, p[0].bram))
            if not partial:
                return None
        return partial[0]

    def build(interval: int, within: bool) -> ConvFoldingPlan | None:
        best = combine(interval, within)
        if best is None:
            return None
        total, picked = best
        stages = []
        for idx, layer in enumerate(net.layers):
            win = windows.get(idx, Area())
            c = picked.get(idx)
            if c is None:
                stages.append(StageFold(idx, layer.name, layer.kind, None, None, None, None,
                                        None, pool_intervals[idx], win, win))
                continue
            core = _core(layer)
            stages.append(StageFold(idx, layer.name, getattr(layer, "kind", "dense"),
                                    core.scheme.name, c.array, core.in_features,
                                    core.out_features, c.cycles, c.interval, c.area,
                                    c.window))
        worst = max([floor, *(s.interval for s in stages)])
        return ConvFoldingPlan(net=net, stages=tuple(stages), interval=worst, fmax_mhz=fmax,
                               family=family, device=device, margin=margin, area=total)

    bounds = sorted({c.interval for options in choices.values() for c in options if
                     c.interval >= floor} | {floor})

    def plans(within: bool) -> list[ConvFoldingPlan]:
        """One plan per interval reachable, fastest first (each the least logic for its
        interval)."""
        out: list[ConvFoldingPlan] = []
        for b in bounds:
            p = build(b, within)
            if p is not None and (not out or p.interval > out[-1].interval):
                out.append(p)
        return out

    feasible = plans(False)
    if not feasible:
        raise PlanError(f"network {net.name!r}: no folding meets the settings given")
    fastest = feasible[0]

    def fits(plan: ConvFoldingPlan) -> str | None:
        return shortfall(plan.area, device, margin)

    def short(plan: ConvFoldingPlan) -> str:
        """What runs out for ``plan`` (the least logic of its interval)."""
        return fits(plan) or "its arrays do not fit together"

    fitting = plans(True) if device is not None else feasible

    def rate(plan: ConvFoldingPlan) -> str:
        return f"{plan.fps:,.0f} images/s ({plan.interval} cycles per image)"

    if target_fps is not None:
        want = math.floor(fmax * 1e6 / target_fps)
        plan = next((p for p in reversed(feasible) if p.interval <= want), None)
        if plan is None:
            raise PlanError(f"{target_fps:,.0f} images/s needs at most {want} cycles per image "
                            f"at {fmax:g} MHz; the fastest folding of {net.name!r} takes "
                            f"{fastest.interval} ({fastest.fps:,.0f} images/s), limited by "
                            f"{_bottleneck(fastest)}")
        if device is None:
            return plan
        ok = next((p for p in reversed(fitting) if p.interval <= want), None)
        if ok is None:
            tail = (f"the best rate that fits is {rate(fitting[0])}" if fitting
                    else "no folding fits")
            raise PlanError(f"{target_fps:,.0f} images/s does not fit {device.name}: "
                            f"{short(plan)}; {tail}")
        return ok
    if device is not None:
        if not fitting:
            raise PlanError(f"no folding of {net.name!r} fits {device.name}: "
                            f"{short(feasible[-1])}")
        return fitting[0]
    # neither: the default arrays' rate (with the overrides), at the least area
    defaults = [None if a is None else dataclasses.replace(a, **fixed.get(i, {}))
                for i, a in enumerate(conv_arrays(net))]
    want = max([net.input.features] + [stage_interval(stage_timing(ly, a)) for ly, a in
                                        zip(net.layers, defaults, strict=True)])
    return next((p for p in reversed(feasible) if p.interval <= want), fastest)


def _bottleneck(plan: ConvFoldingPlan) -> str:
    """What sets a plan's interval: a stage's window unit or engine, or the input stream."""
    for s in plan.stages:
        if s.interval != plan.interval:
            continue
        layer = plan.net.layers[s.index]
        if isinstance(layer, ConvLayer):
            k = layer.core.in_features
            ho, wo, _ = layer.out_shape
            t = stage_timing(layer, s.array)
            if t.engine.interval > t.window_cycles:
                return (f"layer {s.index} ({s.name}): its engine takes {t.engine.interval} "
                        f"cycles a window ({ho * wo} windows) on {s.array.cols} x "
                        f"{s.array.lanes}")
            per = "one a cycle" if s.array.window == 1 else f"{s.array.window} a cycle"
            return (f"layer {s.index} ({s.name}): its window unit issues {ho * wo} windows of "
                    f"{k} codes, {per}, into an engine of {s.array.cols} x "
                    f"{s.array.lanes}")
        if isinstance(layer, DenseLayer):
            return f"layer {s.index} ({s.name}), {s.interval} cycles per image"
        if isinstance(layer, (FlattenLayer, GlobalAvgPoolLayer)):
            break
        return (f"layer {s.index} ({s.name}): its window unit reads every window, one code a "
                "cycle")
    return f"the input stream ({plan.net.input.features} codes, one a cycle)"
