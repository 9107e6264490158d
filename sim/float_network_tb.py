"""cocotb testbench of a generated float network
(:class:`rtl_gen.hw.float_layer.FloatNetworkEngine`).

Run by ``tests/test_float_network_cocotb.py`` through :func:`sim.verify.verify_float_network`.
The parameters (:func:`sim.runner.test_params`) carry the fp32 bit patterns of every image,
the golden model's logits (fp32 bit patterns, :func:`rtl_gen.design.float_network.forward`) and
classes
(:func:`rtl_gen.design.float_network.predict`), the cycle model's per-layer image cycles, and the
traffic
pattern (``gap``: chance of an idle cycle before each input; ``stall``: chance that the
output is not ready in a cycle).  The driver and the monitor are those of
:mod:`sim.network_tb`; one image is one batch and logits leave in channel order.

The Checker compares integers with ``==``: every logit's bit pattern, every class, and,
when the traffic has no stalls, each layer's cycle counter against the cycle model.  The
run's measured cycles (first input accepted to last logit) are written to the parameters'
``result_file``.
"""

from __future__ import annotations

import json

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles

from sim.network_tb import PERIOD_NS, Driver, Monitor, _layer_counters
from sim.runner import test_params

F32_MASK = 0xFFFFFFFF


@cocotb.test()
async def float_network_matches_golden(dut):
    p = test_params()
    rng = np.random.default_rng(p["seed"])
    x = np.asarray(p["inputs"], np.int64)
    images, classes_n = len(x), len(p["logits"][0])
    expected_logits = np.asarray(p["logits"], np.int64)
    expected_classes = np.asarray(p["classes"], np.int64)

    dut.i__valid.value = 0
    dut.o__ready.value = 0
    cocotb.start_soon(Clock(dut.clk, PERIOD_NS, unit="ns").start())
    dut.rst.value = 1
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0

    driver = Driver(dut, x.reshape(-1), p["gap"], rng)
    monitor = Monitor(dut, images * classes_n, p["stall"], rng)
    cocotb.start_soon(driver.run())
    await monitor.run()

    # the monitor reads payloads as signed: back to bit patterns
    got = (np.asarray(monitor.logits, np.int64) & F32_MASK).reshape(images, classes_n)
    bad = np.argwhere(got != expected_logits)
    assert bad.size == 0, (f"{len(bad)} logits differ; first at image {bad[0][0]}, channel "
                           f"{bad[0][1]}: {got[tuple(bad[0])]:#010x} != "
                           f"{expected_logits[tuple(bad[0])]:#010x}")
    classes = np.asarray(monitor.classes[:images], np.int64)
    assert len(classes) == images, f"{len(classes)} classes for {images} images"
    wrong = np.flatnonzero(classes != expected_classes)
    assert wrong.size == 0, (f"{wrong.size} classes differ from mpwn.predict; first at image "
                             f"{wrong[0]}: {classes[wrong[0]]} != {expected_classes[wrong[0]]}")
    layer_cycles = _layer_counters(dut, len(p["layer_cycles"]))
    if not p["stall"]:
        assert layer_cycles == p["layer_cycles"], (layer_cycles, p["layer_cycles"])
    result = {"images": images, "cycles": monitor.last_edge - driver.first_edge + 1,
              "layer_cycles": layer_cycles, "classes": classes.tolist(),
              "logits": got.tolist()}
    if p.get("result_file"):
        with open(p["result_file"], "w") as f:
            json.dump(result, f)
