"""Verify a generated network against the golden model: build its Verilog, run the cocotb
testbench (:mod:`sim.network_tb`, on the scoreboard of :mod:`sim.scoreboard`) on every image,
return what was measured.

:func:`verify_network` takes either family (an integer
:class:`~rtl_gen.design.network.Network` or a
:class:`~rtl_gen.design.float_network.FloatNetwork`); :func:`verify_board` takes an integer
network behind the board core's UART host link.

Used by ``tests/test_network_cocotb.py``, ``tests/test_float_network_cocotb.py``,
``tests/test_tr_cocotb.py``, ``tests/test_board_cocotb.py`` and ``rtl-gen verify``.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from rtl_gen.design import golden
from rtl_gen.design.float_network import FloatNetwork
from rtl_gen.design.network import Network
from rtl_gen.hw.verilog import to_verilog
from sim import runner
from sim.scoreboard import (
    FloatModel,
    IntegerModel,
    Model,
    VerifyError,
    float_inputs,
    integer_inputs,
)
from sim.stimulus import CLOCK_ARGS, LONG_RUN_CYCLES, STIMULUS_DEPTH, testbench_verilog

__all__ = ["FLOAT_VERILATOR_ARGS", "BitSerialModel", "UnrolledModel", "VerifyError",
           "build_testbench", "verify_board", "verify_network"]

#: Verilator options of the float networks: the C++ of their flattened floating-point units
#: is tens of megabytes, which ``-Os`` takes many minutes to compile and ``-O0`` seconds (a
#: later ``-O`` wins over the makefile's ``OPT_FAST``).
FLOAT_VERILATOR_ARGS = ("-CFLAGS", "-O0")


def verify_network(net: Network | FloatNetwork, x, *, simulator: str = "verilator",
                   gap: float = 0.0, stall: float = 0.0, seed: int = 0, cache_dir=None,
                   arrays=None, control=None, lanes=None, in_per_beat: int = 1,
                   engine=None, gates: str | None = None, precision=None) -> dict:
    """Run every image of ``x`` through the network's generated Verilog and check every
    logit, every class and every layer's cycle count against the golden and cycle models.

    Parameters
    ----------
    net:
        An integer :class:`~rtl_gen.design.network.Network` (from a bundle; built as a
        :class:`~rtl_gen.hw.network.NetworkEngine`) or a
        :class:`~rtl_gen.design.float_network.FloatNetwork` (built as a
        :class:`~rtl_gen.hw.float_layer.FloatNetworkEngine`).
    x:
        The images, ``(images, features)`` integers: input codes of an integer network
        (within its input range), fp32 bit patterns of a float network (``uint32``, or
        ``int32`` read as the same bits).
    simulator:
        ``"verilator"`` or ``"icarus"``.
    gap, stall:
        Chance of an idle input cycle before each input word, and of the logit stream not
        being ready in a cycle (back-pressure; layer cycles are then not compared).
    seed:
        Seeds the traffic pattern.
    cache_dir:
        Folder of the simulator builds (default :func:`sim.runner.default_cache_dir`).
    arrays:
        Integer networks only: per-layer :class:`~rtl_gen.hw.layer.ArrayConfig` (default
        per scheme).
    control:
        Integer networks with term-revealing layers only: the run-time
        :class:`~rtl_gen.design.golden.TRControl` (set on the control ports; the golden
        model and the cycle model use the same); ``None``: the bundle's own settings.
    lanes:
        Float networks only: lanes per layer (one integer or one per layer; default
        :data:`~rtl_gen.hw.float_layer.DEFAULT_FLOAT_LANES`).
    in_per_beat:
        Integer networks only: input codes per transfer (the planner's input port width).
    engine:
        Integer networks only: an :class:`~rtl_gen.hw.unrolled.UnrolledNetworkEngine` to
        verify instead of the default engine (one vector per transfer; the testbench also
        checks interval 1 and the plan's ``latency``).  It is checked against ``net``'s
        golden model, whatever network it was built from.  Or a
        :class:`~rtl_gen.hw.bitserial.BitSerialNetworkEngine` of ``net`` (the bit-serial
        baseline), checked against :func:`rtl_gen.design.bitserial.bitserial_forward` and
        its cycle model at ``precision``.
    precision:
        Bit-serial engines only: ``(w_prec, a_prec)`` set on the ``bp_w_bits`` and
        ``bp_a_bits`` ports (0 or ``None``: full precision).
    gates:
        A device name (``up5k``, ``ecp5-85f``): simulate the gate-level netlist Yosys maps
        for its family, with the tools' cell models (:func:`rtl_gen.flow.gates.gate_netlist`),
        instead of the RTL; the testbench and every check stay the same.

    Returns
    -------
    dict
        ``images``; ``cycles`` (first input accepted to last logit, both counted);
        ``layer_cycles`` (measured) and ``model_layer_cycles`` (compared except for the
        layers a slower later layer holds back, ``unchecked_layers``, which take longer);
        ``interval`` (model, cycles
        between batches); ``rows`` (images per batch; 1 for a float network); ``classes``
        and ``logits`` as the hardware gave them (integers, or fp32 bit patterns);
        ``build`` (the build folder); for a float network also ``lanes``; for an unrolled
        ``engine`` also ``latency`` (measured: the least cycles from a vector's transfer
        to its logits' transfer) and ``model_latency``.

    Raises
    ------
    VerifyError
        When ``net`` is neither family, ``x`` does not fit it, an option of the other
        family is given, ``gap`` or ``stall`` is not in ``[0, 1)``, or ``control`` has no
        hardware setting.
    sim.runner.SimulationFailed
        When a logit, a class or (without stalls) a layer's cycle count differs; the
        message names the first difference (image, logit, expected, got).
    sim.runner.SimulatorError
        When the simulator is missing or the build fails.
    """
    for name, chance in (("gap", gap), ("stall", stall)):
        if not 0 <= chance < 1:
            raise VerifyError(f"{name} is a chance per cycle in [0, 1), not {chance!r}")
    from rtl_gen.hw.bitserial import BitSerialNetworkEngine

    if precision is not None and not isinstance(engine, BitSerialNetworkEngine):
        raise VerifyError("precision applies to a bit-serial engine")
    if isinstance(engine, BitSerialNetworkEngine):
        if not isinstance(net, Network) or (engine.net.input.features,
                                            engine.net.layers[-1].out_features) != (
                net.input.features, net.layers[-1].out_features):
            raise VerifyError("a bit-serial engine is verified against an integer network of "
                              "its shape")
        if arrays is not None or control is not None or lanes is not None or in_per_beat != 1:
            raise VerifyError("a bit-serial engine takes no arrays, control, lanes or "
                              "in_per_beat (they are in the engine)")
        w_prec, a_prec = (0, 0) if precision is None else (int(v or 0) for v in precision)
        if w_prec < 0 or a_prec < 0:
            raise VerifyError(f"precisions must be 0 (full) or positive, not {precision}")
        words = integer_inputs(net, x)
        model = BitSerialModel(net, engine, w_prec, a_prec)
        top = f"bitserial_{net.name}".replace("-", "_")
        controls = {"bp_w_bits": w_prec, "bp_a_bits": a_prec}
        build_args, extra, port = (), {"precision": [w_prec, a_prec]}, {}
    elif engine is not None:
        from rtl_gen.hw.unrolled import UnrolledNetworkEngine

        if not isinstance(net, Network) or not isinstance(engine, UnrolledNetworkEngine):
            raise VerifyError("engine takes an UnrolledNetworkEngine for an integer network")
        if arrays is not None or control is not None or lanes is not None or in_per_beat != 1:
            raise VerifyError("an unrolled engine takes no arrays, control, lanes or "
                              "in_per_beat")
        if (engine.features, engine.classes) != (net.input.features,
                                                 net.layers[-1].out_features):
            raise VerifyError(f"the engine takes {engine.features} features to "
                              f"{engine.classes} logits, the network {net.input.features} "
                              f"to {net.layers[-1].out_features}")
        words = integer_inputs(net, x)
        model = UnrolledModel(net, engine)
        top = f"unrolled_{net.name}".replace("-", "_")
        controls, build_args, extra = {}, (), {"model_latency": engine.latency}
        port = {"wide": {"features": engine.features, "in_bits": engine.code_shape.width,
                         "classes": engine.classes, "out_bits": engine.logit_shape.width,
                         "latency": engine.latency}}
    elif isinstance(net, Network) and not net.is_dense:
        if lanes is not None or in_per_beat != 1:
            raise VerifyError("a network with convolution, pooling or flatten layers takes "
                              "arrays and control only (no lanes or in_per_beat)")
        from rtl_gen.hw.conv import ConvNetworkEngine
        from rtl_gen.hw.tr import control_values

        words = integer_inputs(net, x)
        try:
            tr_regs = control_values(control)
        except ValueError as e:
            raise VerifyError(f"control: {e}") from None
        try:
            engine = ConvNetworkEngine(net, arrays)
            model = ConvModel(net, engine, control)
        except ValueError as e:
            raise VerifyError(f"cannot build {net.name!r}: {e}") from None
        top = f"net_{net.name}".replace("-", "_")
        controls = dict(zip(("tr_mode", "tr_k", "tr_s"), tr_regs, strict=True)) \
            if engine.has_tr else {}
        build_args, extra = (), {}
        port = {"unchecked_layers": list(model.unchecked_layers)}
    elif isinstance(net, Network):
        if lanes is not None:
            raise VerifyError("lanes applies to float networks; give an integer network "
                              "arrays instead")
        from rtl_gen.hw.network import NetworkEngine
        from rtl_gen.hw.tr import control_values

        words = integer_inputs(net, x)  # checked before any hardware is described
        try:
            tr_regs = control_values(control)
        except ValueError as e:
            raise VerifyError(f"control: {e}") from None
        try:
            engine = NetworkEngine(net, arrays, in_per_beat)
        except ValueError as e:
            raise VerifyError(f"cannot build {net.name!r}: {e}") from None
        model = IntegerModel(net, engine, control)
        top = f"net_{net.name}".replace("-", "_")
        controls = dict(zip(("tr_mode", "tr_k", "tr_s"), tr_regs, strict=True)) \
            if engine.has_tr else {}
        build_args, extra = (), {}
        port = {"in_per_beat": in_per_beat, "in_bits": net.input.bits} if in_per_beat > 1 \
            else {}
        from rtl_gen.design.timing import throttled_layers

        held_back = throttled_layers(engine.timings_for(control))
        if held_back:
            port["unchecked_layers"] = list(held_back)
    elif isinstance(net, FloatNetwork):
        if arrays is not None or control is not None or in_per_beat != 1:
            raise VerifyError("arrays and control apply to integer networks; give a float "
                              "network lanes instead")
        from rtl_gen.hw.float_layer import FloatNetworkEngine

        words = float_inputs(net, x)
        engine = FloatNetworkEngine(net, lanes)
        model = FloatModel(net, engine)
        top = f"fnet_{net.name}".replace("-", "_")
        controls = {}
        build_args = FLOAT_VERILATOR_ARGS if simulator == "verilator" else ()
        extra, port = {"lanes": list(engine.lanes)}, {}
    else:
        raise VerifyError(f"net must be a Network or a FloatNetwork, not "
                          f"{type(net).__name__}")
    expected = model.expected(words)
    verilog = to_verilog(engine, top)
    if gates is not None:
        from rtl_gen.files import cache_dir as user_cache
        from rtl_gen.flow.gates import gate_netlist

        verilog = gate_netlist(verilog, top, gates, workdir=user_cache() / "flow").verilog
        if simulator == "icarus":
            # Verilog-2005 has no default values of inputs: the iCE40 models leave them out.
            verilog = "`define NO_ICE40_DEFAULT_ASSIGNMENTS\n" + verilog
    built, stimulus = build_testbench(
        engine, top, verilog, simulator=simulator, cache_dir=cache_dir,
        build_args=build_args, stimulus="wide" not in port,
        cycles=expected.batches * max(model.interval, expected.rows * expected.inputs.shape[1]))
    with tempfile.TemporaryDirectory() as tmp:
        result_file = Path(tmp) / "result.json"
        params = expected.to_params() | {
            "controls": controls, "gap": gap, "stall": stall, "seed": seed,
            "max_cycles": _max_cycles(model, expected, gap, stall),
            "result_file": str(result_file),
        } | port | stimulus
        tag = "-".join([top, f"g{gap}", f"s{stall}", *map(str, controls.values())])
        built.run("sim.network_tb", params=params, tag=tag)
        result = json.loads(result_file.read_text())
    result.update(model_layer_cycles=list(model.layer_cycles), interval=model.interval,
                  rows=model.rows, build=str(built.build_dir), in_per_beat=in_per_beat,
                  unchecked_layers=list(port.get("unchecked_layers", [])),
                  **extra)
    return result


def build_testbench(engine, top: str, verilog: str | None = None, *,
                    simulator: str = "verilator", cache_dir=None, build_args=(),
                    stimulus: bool = True, cycles: int = 0) -> tuple[runner.SimBuild, dict]:
    """Build (or reuse) the simulator of ``engine``'s Verilog (module ``top``; ``verilog``
    when given, e.g. a gate netlist of it) for :mod:`sim.network_tb`.

    Under Verilator, with ``stimulus``, the design sits in the stimulus memory's wrapper
    (:func:`sim.stimulus.testbench_verilog`), which runs without Python in the cycles that
    take input words, and makes its own clock when the run will take ``cycles`` of at least
    :data:`~sim.stimulus.LONG_RUN_CYCLES`; returns the build and the testbench parameters
    that say so (empty when the design does not take the wrapper)."""
    if verilog is None:
        verilog = to_verilog(engine, top)
    params = {}
    if simulator == "verilator" and stimulus:
        inside = cycles >= LONG_RUN_CYCLES
        verilog, wrapped = testbench_verilog(engine, top, verilog, clock_inside=inside)
        if wrapped != top:
            top, params = wrapped, {"stimulus_depth": STIMULUS_DEPTH, "clock_inside": inside}
            build_args = tuple(build_args) + (CLOCK_ARGS if inside else ())
    return runner.build(verilog, top, simulator=simulator, cache_dir=cache_dir,
                        build_args=build_args), params


class ConvModel(Model):
    """A network with convolution, pooling or flatten layers on its
    :class:`~rtl_gen.hw.conv.ConvNetworkEngine`: one image at a time, logits in index
    order; each weight layer's counter is its engine's per window (or per image for a
    dense layer), pooling and flatten have none (see
    :func:`~rtl_gen.hw.conv.held_back`); the golden model
    :func:`rtl_gen.design.golden.forward` / :func:`~rtl_gen.design.golden.predict`."""

    logit_format = "int"
    rows = 1

    def __init__(self, net, engine, control=None):
        from rtl_gen.hw.conv import held_back, stage_batch_cycles, stage_interval

        self.net, self.control = net, control
        self.order = engine.logit_order()
        timings = engine.timings_for(control)
        self.layer_cycles = tuple(stage_batch_cycles(t) for t in timings)
        intervals = [stage_interval(t) for t in timings]
        self.interval = max([*intervals, net.input.features])
        self.unchecked_layers = held_back(timings)
        # a bound of an image's way through the chain, for the run's cycle budget
        self.latency = sum(intervals)

    def inputs(self, x):
        return integer_inputs(self.net, x)

    def logits(self, words):
        return np.asarray(golden.forward(self.net, words, self.control), np.int64)

    def classes(self, words):
        return np.asarray(golden.predict(self.net, words, self.control), np.int64)


class BitSerialModel(Model):
    """An integer network on a :class:`~rtl_gen.hw.bitserial.BitSerialNetworkEngine` at
    run-time precisions: the golden model :func:`rtl_gen.design.bitserial.bitserial_forward`
    and the engine's cycle model at the same precisions."""

    logit_format = "int"

    def __init__(self, net, engine, w_prec: int, a_prec: int):
        self.net, self.w_prec, self.a_prec = net, w_prec, a_prec
        self.rows = engine.rows
        self.order = engine.logit_order()
        self.layer_cycles = tuple(t.batch_cycles for t in engine.timings_for(w_prec, a_prec))
        self.interval = engine.interval_for(w_prec, a_prec)

    def inputs(self, x):
        return integer_inputs(self.net, x)

    def logits(self, words):
        from rtl_gen.design.bitserial import bitserial_forward

        return np.asarray(bitserial_forward(self.net, words, self.w_prec, self.a_prec),
                          np.int64)

    def classes(self, words):
        from rtl_gen.design.bitserial import bitserial_predict

        return np.asarray(bitserial_predict(self.net, words, self.w_prec, self.a_prec),
                          np.int64)


class UnrolledModel(Model):
    """An integer network on an :class:`~rtl_gen.hw.unrolled.UnrolledNetworkEngine`: one
    vector per transfer, logits in index order, no per-layer counters; the golden model
    :func:`rtl_gen.design.golden.forward` / :func:`~rtl_gen.design.golden.predict`."""

    logit_format = "int"
    rows = 1
    layer_cycles = ()

    def __init__(self, net, engine):
        self.net = net
        self.order = engine.logit_order()
        self.interval = engine.interval
        self.latency = engine.latency

    def inputs(self, x):
        return integer_inputs(self.net, x)

    def logits(self, words):
        return np.asarray(golden.forward(self.net, words), np.int64)

    def classes(self, words):
        return np.asarray(golden.predict(self.net, words), np.int64)


def _max_cycles(model, expected, gap: float, stall: float) -> int:
    """A generous bound on a run's cycles: four times the cycle model's time for the
    batches (each at least its input words and its interval, plus its logits), the
    pipeline's fill, and the traffic's slow-down, plus a fixed margin."""
    words = expected.rows * expected.inputs.shape[1]
    per_batch = max(model.interval, words) + expected.logits_per_batch
    ideal = expected.batches * per_batch + sum(model.layer_cycles) + \
        getattr(model, "latency", 0)
    return int(4 * ideal / ((1 - gap) * (1 - stall))) + 10_000


#: UART bit period of the simulated board core, in clock cycles (the hardware is the same
#: for any divisor; a short one keeps the simulation fast).
BOARD_SIM_DIVISOR = 8


def verify_board(net: Network, x_int, *, arrays=None, simulator: str = "verilator",
                 malformed: bool = True, bench: int = 0, cache_dir=None,
                 controls=None) -> dict:
    """Classify every image of ``x_int`` through the board core's UART with the host client.

    Builds :class:`~rtl_gen.hw.hostlink.HostLinkCore` around the network (dense, or with
    convolutions: one image a batch, every input code of an image in one INFER frame), runs
    :mod:`sim.board_tb` (the host protocol over a UART model; with ``malformed``, every kind
    of bad frame too; with ``bench``, a throughput run of the last batch that many times,
    its cycles within one batch's latency of ``bench`` intervals) and checks logits, classes
    and per-layer cycles against the golden model and the cycle model (except the layers
    the cycle model does not predict: :attr:`~rtl_gen.hw.hostlink.HostLinkPlan.unchecked_layers`).
    ``controls`` (a term-revealing network): every image once per
    :class:`~rtl_gen.design.golden.TRControl` (``None``: the bundle's own), each set by the
    host through the TR_MODE, TR_K and TR_S registers of the same build and checked against
    the golden model and the cycle model under it.

    Returns
    -------
    dict
        ``classes``, ``logits``, ``cycles`` (per batch, as the design counted them),
        ``layer_cycles``, ``build`` (of the last control with ``controls``, and ``runs``:
        each control's); with ``bench``, ``bench_cycles`` (the throughput run's,
        as the design counted them) and ``interval`` (the engine's, the model's).

    Raises
    ------
    sim.runner.SimulationFailed, sim.runner.SimulatorError
        As for :func:`verify_network`.
    """
    from rtl_gen.hw.hostlink import HostLinkCore, network_id

    x_int = np.asarray(x_int, dtype=np.int64)
    div = BOARD_SIM_DIVISOR
    core = HostLinkCore.for_divisor(net, arrays, divisor=div, timeout_cycles=16 * div,
                                    design_id=network_id(net))
    top = f"board_{net.name}".replace("-", "_")
    built = runner.build(to_verilog(core, top), top, simulator=simulator, cache_dir=cache_dir)
    batches = -(-len(x_int) // core.rows)
    bytes_per_batch = core.rows * core.features + 6 + core.info().infer_reply_bytes() + 6
    # the network's time per batch: every layer at the slowest one's pace, a bound (under
    # the slowest of the run-time controls, each of which classifies every image again)
    compute = core.engine.interval * len(net.layers)
    passes = 1 if controls is None else len(controls)
    if controls is not None:
        compute = max(compute, *(sum(t.batch_cycles for t in core.engine.timings_for(c))
                                 for c in controls))
    with tempfile.TemporaryDirectory() as tmp:
        result_file = Path(tmp) / "result.json"
        params = {
            "inputs": x_int.tolist(),
            "logits": golden.forward(net, x_int).tolist(),
            "classes": golden.predict(net, x_int).tolist(),
            "features": core.features, "classes_n": core.classes, "rows": core.rows,
            "layer_cycles": list(core.plan.layer_cycles),
            "unchecked_layers": list(core.plan.unchecked_layers),
            "divisor": div, "timeout_cycles": core.timeout_cycles,
            "compute_cycles": 2 * compute + bench * core.engine.interval,
            "malformed": malformed, "bench": bench, "interval": core.engine.interval,
            # a generous bound: every bit of every frame and the network's time, 4x, plus
            # the timeouts
            "max_ns": 10 * (4 * (10 * div * (passes * batches * bytes_per_batch + 400)
                                 + (passes * batches + bench) * compute)
                            + 100 * core.timeout_cycles),
            "result_file": str(result_file),
        }
        if controls is not None:
            from rtl_gen.hw.tr import control_values

            params["settings"] = [{
                "regs": list(control_values(c)),
                "logits": golden.forward(net, x_int, c).tolist(),
                "classes": golden.predict(net, x_int, c).tolist(),
                "layer_cycles": [t.batch_cycles for t in core.engine.timings_for(c)],
            } for c in controls]
            # the throughput run, if any, works under the last setting
            params.update({k: params["settings"][-1][k] for k in ("logits", "classes")})
        built.run("sim.board_tb", params=params, tag=f"{top}-board")
        result = json.loads(result_file.read_text())
    result["build"] = str(built.build_dir)
    result["interval"] = core.engine.interval
    return result
