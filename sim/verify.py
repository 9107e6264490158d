"""Verify a generated network against the golden model: build its Verilog, run the cocotb
testbench (:mod:`sim.network_tb`) on every image, return what was measured.

Used by ``tests/test_network_cocotb.py`` and by ``rtl-gen verify``.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from rtl_gen.design import golden
from rtl_gen.design.golden import network_interval
from rtl_gen.design.network import Network
from rtl_gen.hw.network import NetworkEngine
from rtl_gen.hw.tr import control_values
from rtl_gen.hw.verilog import to_verilog
from sim import runner

__all__ = ["verify_board", "verify_float_network", "verify_network"]


def verify_network(net: Network, x_int, *, arrays=None, simulator: str = "verilator",
                   gap: float = 0.0, stall: float = 0.0, seed: int = 0,
                   cache_dir=None, control=None) -> dict:
    """Run every image of ``x_int`` through the network's generated Verilog.

    Parameters
    ----------
    net:
        The network (from a bundle).
    x_int:
        Input codes, ``(images, features)``.
    arrays:
        Per-layer :class:`~rtl_gen.hw.layer.ArrayConfig` (default per scheme).
    simulator:
        ``"verilator"`` or ``"icarus"``.
    gap, stall:
        Chance of an idle input cycle before each input code, and of the output not being
        ready in a cycle (back-pressure).
    seed:
        Seeds the traffic pattern.
    control:
        For a network with term-revealing layers, the run-time
        :class:`~rtl_gen.design.golden.TRControl` (set on the control ports; the golden model and
        the cycle model use the same); ``None``: the bundle's own settings.

    Returns
    -------
    dict
        ``images``, ``cycles`` (first input accepted to last logit, both counted),
        ``layer_cycles`` (measured), ``model_layer_cycles``, ``interval`` (model, cycles
        between batches), ``rows``, ``build`` (the build folder).

    Raises
    ------
    sim.runner.SimulationFailed
        When a logit, a class or (without stalls) a layer's cycle count differs.
    sim.runner.SimulatorError
        When the simulator is missing or the build fails.
    """
    x_int = np.asarray(x_int, dtype=np.int64)
    engine = NetworkEngine(net, arrays)
    top = f"net_{net.name}".replace("-", "_")
    built = runner.build(to_verilog(engine, top), top, simulator=simulator,
                         cache_dir=cache_dir)
    with tempfile.TemporaryDirectory() as tmp:
        result_file = Path(tmp) / "result.json"
        params = {
            "inputs": x_int.tolist(),
            "logits": golden.forward(net, x_int, control).tolist(),
            "classes": golden.predict(net, x_int, control).tolist(),
            "logit_order": engine.logit_order().tolist(),
            "rows": engine.rows,
            "layer_cycles": [t.batch_cycles for t in engine.timings_for(control)],
            "tr_regs": list(control_values(control)) if engine.has_tr else None,
            "gap": gap, "stall": stall, "seed": seed,
            "result_file": str(result_file),
        }
        built.run("sim.network_tb", params=params,
                  tag=f"{top}-g{gap}-s{stall}-{'-'.join(map(str, params['tr_regs'] or []))}")
        result = json.loads(result_file.read_text())
    result.update(model_layer_cycles=params["layer_cycles"],
                  interval=network_interval(engine.timings_for(control), net.input.features),
                  rows=engine.rows, build=str(built.build_dir))
    return result


#: UART bit period of the simulated board core, in clock cycles (the hardware is the same
#: for any divisor; a short one keeps the simulation fast).
BOARD_SIM_DIVISOR = 8


def verify_board(net: Network, x_int, *, arrays=None, simulator: str = "verilator",
                 malformed: bool = True, cache_dir=None) -> dict:
    """Classify every image of ``x_int`` through the board core's UART with the host client.

    Builds :class:`~rtl_gen.hw.hostlink.HostLinkCore` around the network, runs
    :mod:`sim.board_tb` (the host protocol over a UART model; with ``malformed``, every kind
    of bad frame too) and checks logits, classes and per-layer cycles against the golden
    model and the cycle model.

    Returns
    -------
    dict
        ``classes``, ``logits``, ``cycles`` (per batch, as the design counted them),
        ``layer_cycles``, ``build``.

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
    with tempfile.TemporaryDirectory() as tmp:
        result_file = Path(tmp) / "result.json"
        params = {
            "inputs": x_int.tolist(),
            "logits": golden.forward(net, x_int).tolist(),
            "classes": golden.predict(net, x_int).tolist(),
            "features": core.features, "classes_n": core.classes, "rows": core.rows,
            "layer_cycles": [t.batch_cycles for t in core.engine.timings],
            "divisor": div, "timeout_cycles": core.timeout_cycles,
            "malformed": malformed,
            # a generous bound: every bit of every frame, 4x, plus the timeouts
            "max_ns": 10 * (4 * 10 * div * (batches * bytes_per_batch + 400)
                            + 100 * core.timeout_cycles),
            "result_file": str(result_file),
        }
        built.run("sim.board_tb", params=params, tag=f"{top}-board")
        result = json.loads(result_file.read_text())
    result["build"] = str(built.build_dir)
    return result


#: Verilator options of the float networks: the C++ of their flattened floating-point units
#: is tens of megabytes, which ``-Os`` takes many minutes to compile and ``-O0`` seconds (a
#: later ``-O`` wins over the makefile's ``OPT_FAST``).
FLOAT_VERILATOR_ARGS = ("-CFLAGS", "-O0")


def verify_float_network(net, x_bits, *, lanes=None, simulator: str = "verilator",
                         gap: float = 0.0, stall: float = 0.0, seed: int = 0,
                         cache_dir=None) -> dict:
    """Run every image of ``x_bits`` through a float network's generated Verilog
    (:class:`~rtl_gen.hw.float_layer.FloatNetworkEngine`, testbench
    :mod:`sim.float_network_tb`).

    Parameters
    ----------
    net:
        The :class:`~rtl_gen.design.float_network.FloatNetwork`.
    x_bits:
        Inputs as fp32 bit patterns, ``(images, in_features)``.
    lanes:
        Lanes per layer (one integer or one per layer; default
        :data:`~rtl_gen.hw.float_layer.DEFAULT_FLOAT_LANES`).
    simulator, gap, stall, seed, cache_dir:
        As for :func:`verify_network`.

    Returns
    -------
    dict
        ``images``, ``classes`` and ``logits`` (fp32 bit patterns) as the hardware gave
        them, ``cycles`` (first input accepted to last logit, both counted),
        ``layer_cycles`` (measured), ``model_layer_cycles``, ``interval`` (model, cycles
        between images), ``lanes``, ``build`` (the build folder).

    Raises
    ------
    sim.runner.SimulationFailed
        When a logit's bit pattern, a class or (without stalls) a layer's cycle count
        differs from :func:`rtl_gen.design.float_network.forward`,
        :func:`rtl_gen.design.float_network.predict` or the
        cycle model.
    sim.runner.SimulatorError
        When the simulator is missing or the build fails.
    """
    from rtl_gen.design import float_network
    from rtl_gen.hw.float_layer import FloatNetworkEngine

    x_bits = np.asarray(x_bits)
    if x_bits.ndim != 2 or x_bits.dtype.kind not in "iu":
        raise ValueError(f"x_bits must be a 2-D integer array of fp32 bit patterns, not "
                         f"{x_bits.dtype} {x_bits.shape}")
    x_bits = x_bits.astype(np.uint32)
    engine = FloatNetworkEngine(net, lanes)
    top = f"fnet_{net.name}".replace("-", "_")
    built = runner.build(to_verilog(engine, top), top, simulator=simulator,
                         cache_dir=cache_dir,
                         build_args=FLOAT_VERILATOR_ARGS if simulator == "verilator" else ())
    with tempfile.TemporaryDirectory() as tmp:
        result_file = Path(tmp) / "result.json"
        params = {
            "inputs": x_bits.astype(np.int64).tolist(),
            "logits": float_network.forward(net, x_bits).astype(np.int64).tolist(),
            "classes": float_network.predict(net, x_bits).tolist(),
            "layer_cycles": [t.batch_cycles for t in engine.timings],
            "gap": gap, "stall": stall, "seed": seed,
            "result_file": str(result_file),
        }
        built.run("sim.float_network_tb", params=params, tag=f"{top}-g{gap}-s{stall}")
        result = json.loads(result_file.read_text())
    result.update(model_layer_cycles=params["layer_cycles"], interval=engine.interval,
                  lanes=list(engine.lanes), build=str(built.build_dir))
    return result
