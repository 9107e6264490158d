"""``generate``: elaborate a network (integer or float bundle), a PE or a dot-product unit and
write its Verilog."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from amaranth.lib import wiring

from ..bundle import read_bundle
from ..design.float_network import FloatNetwork
from ..design.network import Network
from ..errors import RtlGenError
from ..hw.bitserial import BitSerialNetworkEngine
from ..hw.conv import ConvNetworkEngine, conv_arrays, plan_conv_chain
from ..hw.conv_planner import ConvFoldingPlan, plan_conv_folding
from ..hw.float_layer import FloatNetworkEngine, plan_float_network
from ..hw.network import ChainPlan, NetworkEngine, plan_chain
from ..hw.pe import DotProductUnit, PEConfig
from ..hw.unrolled import UnrolledNetworkEngine
from ..hw.verilog import to_verilog
from ..proof.lint import waiver_path, waiver_text
from .common import (
    FoldingOptions,
    OptionError,
    Progress,
    bitserial_plan,
    check_output,
    float_shapes,
    fold_overrides,
    markdown_table,
    network_arrays,
    notify,
    unrolled_choice,
    verilog_top,
    write_outputs,
)

__all__ = ["NetworkResult", "UnitResult", "conv_folding", "conv_network_arrays",
           "generate_network", "generate_unit", "network_engine", "network_plan"]


def is_conv(net) -> bool:
    """Whether ``net`` is an integer network with convolution, pooling or flatten layers."""
    return net.family != "float" and not net.is_dense


def conv_network_arrays(net: Network, *, rows: int | None = None, cols: int | None = None,
                        lanes: int | None = None, multiplier: str = "lut", pipeline: int = 0,
                        folding: FoldingOptions | None = None,
                        progress: Progress | None = None) -> tuple:
    """Per-layer arrays of a network with convolutions (:func:`~rtl_gen.hw.conv.conv_arrays`,
    one row): the folding planner's (:func:`conv_folding`, its table sent to ``progress``)
    when ``folding`` asks for it, else the defaults per scheme; the options given apply to
    every weight layer.  The unrolled and bit-serial engines build dense networks only."""
    if folding is not None and folding.engine in ("unrolled", "bitserial"):
        raise OptionError(f"--engine {folding.engine} builds dense networks; {net.name!r} has "
                          "convolution, pooling or flatten layers", option="--engine")
    if rows not in (None, 1):
        raise OptionError(f"a network with convolution, pooling or flatten layers runs one "
                          f"image at a time (--rows 1), not {rows}", option="--rows")
    if folding is not None and folding.given:
        plan = conv_folding(net, folding, cols=cols, lanes=lanes, multiplier=multiplier,
                            pipeline=pipeline)
        notify(progress, f"folding plan of {net.name}:\n{plan.table()}")
        return plan.arrays
    if folding is not None and folding.clock_mhz is not None:
        raise OptionError("--plan-clock applies with --target-fps or --fit",
                          option="--plan-clock")
    changes = {k: v for k, v in (("cols", cols), ("lanes", lanes)) if v is not None}
    changes.update(multiplier=multiplier, pipeline=pipeline)
    try:
        return tuple(None if a is None else dataclasses.replace(a, **changes)
                     for a in conv_arrays(net))
    except ValueError as e:
        raise OptionError(str(e)) from None


def conv_folding(net: Network, folding: FoldingOptions, *, cols: int | None = None,
                 lanes: int | None = None, multiplier: str = "lut",
                 pipeline: int = 0) -> ConvFoldingPlan:
    """The folding planner's plan (:func:`~rtl_gen.hw.conv_planner.plan_conv_folding`) of a
    network with convolutions under ``folding``; the array options given (``cols``,
    ``lanes``, a ``dsp`` multiplier, a pipeline) hold for every weight layer,
    ``--layer-array`` settings (a layer by index, counting every layer, or by name) on
    top."""
    weights = [i for i, ly in enumerate(net.layers) if ly.has_weights]
    overrides = fold_overrides(net, folding, weights, cols=cols, lanes=lanes,
                               multiplier=multiplier, pipeline=pipeline)
    return plan_conv_folding(net, target_fps=folding.target_fps, fit=folding.fit,
                             margin=folding.margin, fmax_mhz=folding.clock_mhz,
                             overrides=overrides)


def network_plan(net: Network | FloatNetwork, *, rows: int | None = None,
                 cols: int | None = None, lanes: int | None = None,
                 multiplier: str = "lut", pipeline: int = 0,
                 folding: FoldingOptions | None = None, progress: Progress | None = None,
                 max_in_per_beat: int | None = None, counters: bool = True) -> ChainPlan:
    """The validated plan of the hardware network of either family: an integer network on
    per-layer arrays (:func:`~rtl_gen.tasks.common.network_arrays` of the options: the
    defaults, or the folding planner's when ``folding`` asks, its table sent to
    ``progress``), a float network on ``cols`` lanes per layer (the other options do not
    apply to it).  ``counters``: every layer counts its batches' cycles (the verification
    build; without, the layers have no counter logic, as on a board).  Nothing is built; a
    design that cannot be raises :class:`~rtl_gen.errors.RtlGenError` naming the network."""
    if net.family == "float":
        shapes = float_shapes(net, cols, lanes, folding, progress)
    try:
        if net.family == "float":
            return plan_float_network(net, shapes, counters=counters)
        if is_conv(net):
            arrays = conv_network_arrays(net, rows=rows, cols=cols, lanes=lanes,
                                         multiplier=multiplier, pipeline=pipeline,
                                         folding=folding, progress=progress)
            return plan_conv_chain(net, arrays, counters=counters)
        arrays, per_beat = network_arrays(net, rows=rows, cols=cols, lanes=lanes,
                                          multiplier=multiplier, pipeline=pipeline,
                                          folding=folding, progress=progress,
                                          max_in_per_beat=max_in_per_beat)
        return plan_chain(net, arrays, in_per_beat=per_beat, counters=counters)
    except ValueError as e:
        raise RtlGenError(f"cannot generate {net.name!r}: {e}") from None


def network_engine(net: Network | FloatNetwork, **options) -> wiring.Component:
    """The hardware network of :func:`network_plan` (same options), or the unrolled engine
    when the folding options choose it (:func:`~rtl_gen.tasks.common.unrolled_choice`), or
    the bit-serial engine when they ask for it (:func:`~rtl_gen.tasks.common.bitserial_plan`),
    or a convolutional network's chain."""
    if is_conv(net):
        return ConvNetworkEngine.from_plan(network_plan(net, **options))
    bitserial = bitserial_plan(net, options.get("folding"), rows=options.get("rows"),
                               cols=options.get("cols"), lanes=options.get("lanes"),
                               multiplier=options.get("multiplier", "lut"),
                               pipeline=options.get("pipeline", 0),
                               counters=options.get("counters", True))
    if bitserial is not None:
        return BitSerialNetworkEngine.from_plan(bitserial)
    try:
        unrolled = unrolled_choice(net, options.get("folding"), options.get("progress"))
    except ValueError as e:
        raise RtlGenError(f"cannot generate {net.name!r}: {e}") from None
    if unrolled is not None:
        return UnrolledNetworkEngine.from_plan(unrolled)
    engine = FloatNetworkEngine if net.family == "float" else NetworkEngine
    return engine.from_plan(network_plan(net, **options))


@dataclasses.dataclass(frozen=True)
class NetworkResult:
    path: Path
    module: str
    network: Network | FloatNetwork
    engine: wiring.Component
    #: One dictionary per layer: its array (or lanes) and its cycle model.
    layers: list[dict]
    #: The folding planner's table, when it chose the arrays.
    folding: str | None = None

    @property
    def summary(self) -> str:
        """What was written: file, module, layers (and batch)."""
        n = len(self.network.layers)
        if isinstance(self.network, FloatNetwork):
            return f"{self.path}: module {self.module}, {n} float layers (fp32 activations)"
        return f"{self.path}: module {self.module}, {n} layers, batch of {self.engine.rows}"

    @property
    def table(self) -> str:
        """The layers' table, after the folding planner's when it chose the design; for an
        integer network, with the network's interval after."""
        table = markdown_table(self.layers)
        if self.folding is not None:
            table = f"folding plan:\n{self.folding}\n{table}"
        if isinstance(self.network, FloatNetwork):
            return table
        e = self.engine
        if isinstance(e, UnrolledNetworkEngine):
            return table + (f"network: unrolled, one image a cycle, latency {e.latency} "
                            "cycles\n")
        kind = "bit-serial, " if isinstance(e, BitSerialNetworkEngine) else ""
        return table + (f"network: {kind}{e.interval} cycles between batches of {e.rows} "
                        f"({e.interval / e.rows:.1f} cycles per inference)\n")


def generate_network(bundle: Path, out: Path | None = None, *, name: str | None = None,
                     rows: int | None = None, cols: int | None = None,
                     lanes: int | None = None, multiplier: str = "lut",
                     pipeline: int = 0, folding: FoldingOptions | None = None) -> NetworkResult:
    """Write the Verilog of the network of ``bundle`` (integer or float) to ``out`` (default
    ``<name>.v``), module ``name`` (default ``net_<network>``).  The array and folding
    options are those of :func:`network_engine`."""
    net = read_bundle(bundle)
    name = name or verilog_top(net)
    if not name.isidentifier():
        raise OptionError(f"{name!r} is not a Verilog identifier", option="--name")
    out = check_output(Path(out) if out is not None else Path(f"{name}.v"))
    tables: list[str] = []
    engine = network_engine(net, rows=rows, cols=cols, lanes=lanes, multiplier=multiplier,
                            pipeline=pipeline, folding=folding,
                            progress=lambda message: tables.append(message.split("\n", 1)[-1]))
    write_verilog(out, to_verilog(engine, name))
    if isinstance(engine, UnrolledNetworkEngine):
        layers = [{"layer": g.name, "weights": ly.scheme.name,
                   "shape": f"{ly.in_features}->{ly.out_features}", "engine": "unrolled",
                   "adders": g.adders, "adder levels": g.depth,
                   "pipeline slots": f"{g.in_slot}..{g.out_slot}"}
                  for ly, g in zip(net.layers, engine.layers, strict=True)]
    elif isinstance(engine, ConvNetworkEngine):
        layers = [conv_row(ly, a, t) for ly, a, t in zip(net.layers, engine.arrays,
                                                          engine.timings, strict=True)]
    elif isinstance(net, FloatNetwork):
        layers = [{"layer": ly.name, "space": ly.space,
                   "shape": f"{ly.out_features}x{ly.in_features}", "lanes": c,
                   **({"inputs a step": t.lanes, "results a cycle": t.drain_width}
                      if net.accumulation == "exact" else {}),
                   "cycles": t.batch_cycles, "interval": t.interval}
                  for ly, c, t in zip(net.layers, engine.lanes, engine.timings, strict=True)]
    else:
        layers = [{"layer": ly.name, "weights": ly.scheme.name, "shape": f"{t.k}->{t.n}",
                   "array": f"{a.rows}x{a.cols}x{a.lanes}", "tiles": t.tiles,
                   "cycles/batch": t.batch_cycles, "interval": t.interval,
                   "utilization": f"{100 * t.utilization:.1f}%"}
                  for ly, a, t in zip(net.layers, engine.arrays, engine.timings, strict=True)]
    return NetworkResult(out, name, net, engine, layers, "\n".join(tables) or None)


def conv_row(layer, array, timing) -> dict:
    """One layer of a network with convolutions in the generate table: its kind, weights,
    shapes, array, and cycles (a convolution's engine per window, and per image fed one
    code a cycle; pooling per image)."""
    from ..design.timing import LayerTiming

    kind = getattr(layer, "kind", "dense")
    out = layer.out_shape if getattr(layer, "out_shape", None) is not None else \
        (layer.out_features,)
    inp = layer.in_shape if hasattr(layer, "in_shape") else (layer.in_features,)
    row = {"layer": layer.name, "kind": kind,
           "weights": layer.scheme.name if layer.has_weights else "",
           "shape": f"{'x'.join(map(str, inp))}->{'x'.join(map(str, out))}",
           "array": "" if array is None else f"{array.rows}x{array.cols}x{array.lanes}"}
    if isinstance(timing, LayerTiming):
        row.update({"cycles/batch": timing.batch_cycles, "cycles/image": timing.interval})
    elif kind == "conv":
        row.update({"cycles/batch": timing.engine.batch_cycles,
                    "cycles/image": timing.image_interval})
    else:
        row.update({"cycles/batch": "", "cycles/image": timing.image_interval})
    return row


@dataclasses.dataclass(frozen=True)
class UnitResult:
    path: Path
    module: str
    config: PEConfig
    latency: int

    @property
    def summary(self) -> str:
        c = self.config
        width = "" if c.kind in ("binary", "ternary", "xnor") else c.w_bits
        return (f"{self.path}: module {self.module}, {c.lanes} x {c.kind}{width}, "
                f"{c.a_bits}-bit {'signed' if c.a_signed else 'unsigned'} activations, "
                f"{c.acc_bits}-bit accumulator, latency {self.latency} cycles"
                f"{', weights baked' if c.weights is not None else ''}")


def generate_unit(kind: str, w_bits: int, *, a_bits: int = 8, a_signed: bool = False,
                  lanes: int = 1, depth: int = 256, weights: str | None = None,
                  multiplier: str = "lut", pipeline: int = 0, name: str | None = None,
                  out: Path | None = None) -> UnitResult:
    """Write the Verilog of one PE or dot-product unit (:class:`~rtl_gen.hw.pe.PEConfig`:
    ``kind`` and ``w_bits`` as parsed from ``pot4``, ``xnor``, ``bitplane8``, ...).

    ``weights``: comma-separated codes (one per lane) to bake in as constants.  Options that
    cannot work raise :class:`~rtl_gen.tasks.common.OptionError`.
    """
    baked = None
    if weights is not None:
        try:
            baked = tuple(int(v, 0) for v in weights.split(","))
        except ValueError:
            raise OptionError(f"expected comma-separated integer codes, not {weights!r}",
                              option="--weights") from None
    try:
        config = PEConfig(kind=kind, w_bits=w_bits, a_bits=1 if kind == "xnor" else a_bits,
                          a_signed=a_signed, lanes=lanes, depth=depth, weights=baked,
                          multiplier=multiplier, pipeline=pipeline)
    except ValueError as e:
        raise OptionError(str(e)) from None
    name = name or config.name
    if not name.isidentifier():
        raise OptionError(f"{name!r} is not a Verilog identifier", option="--name")
    out = check_output(Path(out) if out is not None else Path(f"{name}.v"))
    unit = DotProductUnit(config)
    write_verilog(out, to_verilog(unit, name))
    return UnitResult(out, name, config, unit.latency)


def write_verilog(out: Path, verilog: str) -> None:
    """``out`` and its Verilator lint waivers (``.vlt``) beside it: both files or neither."""
    out = Path(out)
    write_outputs(out.parent, {out.name: verilog,
                               waiver_path(out).name: waiver_text(out)})
