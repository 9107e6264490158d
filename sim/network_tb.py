"""cocotb testbench of a generated network (:class:`rtl_gen.hw.network.NetworkEngine`).

Run by ``tests/test_network_cocotb.py`` and ``rtl-gen verify`` through :mod:`sim.runner`.
The parameters (:func:`sim.runner.test_params`) carry the input codes of every image, the
golden model's logits and classes for them, the order the hardware emits logits in, the
cycle model's per-layer batch cycles, the term-revealing controls (``tr_regs``: mode, k, s,
for networks with TR layers), and the traffic pattern (``gap``: chance of an idle
cycle before each input; ``stall``: chance that the output is not ready in a cycle).

::

    images ──► Driver ──► i (valid/ready) ──► DUT ──► o (logits) ──► Monitor ──► Checker
                                                 └──► cls (classes) ──► Monitor ──┘   ▲
                                        golden.forward / predict (numpy) ─────────────┘

The Checker compares integers with ``==``: every logit of every image, every class, and,
when the traffic has no stalls, each layer's cycle counter against the cycle model.  The
run's measured cycles (first input accepted to last logit) are written to the parameters'
``result_file``.
"""

from __future__ import annotations

import json

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly, RisingEdge

from sim.runner import test_params

PERIOD_NS = 10


class Driver:
    """Feeds the images' input codes, one per transfer, with random idle cycles."""

    def __init__(self, dut, codes: np.ndarray, gap: float, rng):
        self.dut, self.codes, self.gap, self.rng = dut, codes, gap, rng
        self.first_edge = None

    async def run(self):
        dut = self.dut
        for value in self.codes.tolist():
            await FallingEdge(dut.clk)
            while self.gap and self.rng.random() < self.gap:
                dut.i__valid.value = 0
                await FallingEdge(dut.clk)
            dut.i__payload.value = value & ((1 << len(dut.i__payload)) - 1)
            dut.i__valid.value = 1
            while True:
                await ReadOnly()
                accepted = bool(dut.i__ready.value)
                await RisingEdge(dut.clk)
                if accepted:
                    break
            if self.first_edge is None:
                self.first_edge = int(dut.cycles.value)
        await FallingEdge(dut.clk)
        dut.i__valid.value = 0


class Monitor:
    """Collects logits (``o`` transfers) and classes (``cls`` pulses); drives ``o.ready``."""

    def __init__(self, dut, expected: int, stall: float, rng):
        self.dut, self.expected, self.stall, self.rng = dut, expected, stall, rng
        self.logits, self.classes = [], []
        self.last_edge = None

    async def run(self):
        dut = self.dut
        while len(self.logits) < self.expected:
            await FallingEdge(dut.clk)
            dut.o__ready.value = 0 if self.stall and self.rng.random() < self.stall else 1
            await ReadOnly()
            if dut.o__valid.value and dut.o__ready.value:
                self.logits.append(dut.o__payload.value.to_signed())
                self.last_edge = int(dut.cycles.value)
            if dut.cls__valid.value:
                self.classes.append(int(dut.cls__payload.value))
        for _ in range(3):  # the class of the last image follows its last logit
            await FallingEdge(dut.clk)
            await ReadOnly()
            if dut.cls__valid.value:
                self.classes.append(int(dut.cls__payload.value))


def reorder(flat: list[int], order: np.ndarray, rows: int, images: int) -> np.ndarray:
    """Logits in emission order → ``(image, channel)``."""
    per_batch = len(order)
    n_out = int(order[:, 1].max()) + 1
    batches = len(flat) // per_batch
    got = np.zeros((batches * rows, n_out), np.int64)
    chunks = np.asarray(flat, np.int64).reshape(batches, per_batch)
    for b in range(batches):
        got[b * rows + order[:, 0], order[:, 1]] = chunks[b]
    return got[:images]


@cocotb.test()
async def network_matches_golden(dut):
    p = test_params()
    rng = np.random.default_rng(p["seed"])
    rows = p["rows"]
    x = np.asarray(p["inputs"], np.int64)
    images = len(x)
    pad = (-images) % rows
    codes = np.concatenate([x, np.zeros((pad, x.shape[1]), np.int64)]).reshape(-1)
    order = np.asarray(p["logit_order"], np.int64)
    expected_logits = np.asarray(p["logits"], np.int64)
    expected_classes = np.asarray(p["classes"], np.int64)

    dut.i__valid.value = 0
    dut.o__ready.value = 0
    if p.get("tr_regs") is not None:  # term-revealing controls for this run
        dut.tr_mode.value, dut.tr_k.value, dut.tr_s.value = p["tr_regs"]
    cocotb.start_soon(Clock(dut.clk, PERIOD_NS, unit="ns").start())
    dut.rst.value = 1
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0

    driver = Driver(dut, codes, p["gap"], rng)
    monitor = Monitor(dut, (images + pad) // rows * len(order), p["stall"], rng)
    cocotb.start_soon(driver.run())
    await monitor.run()

    got = reorder(monitor.logits, order, rows, images)
    bad = np.argwhere(got != expected_logits)
    assert bad.size == 0, (f"{len(bad)} logits differ; first at image {bad[0][0]}, channel "
                           f"{bad[0][1]}: {got[tuple(bad[0])]} != "
                           f"{expected_logits[tuple(bad[0])]}")
    classes = np.asarray(monitor.classes[:images], np.int64)
    assert np.array_equal(classes, expected_classes), "classes differ from golden.predict"
    layer_cycles = [int(v) for v in np.atleast_1d(_layer_counters(dut, len(p["layer_cycles"])))]
    if not p["stall"]:
        assert layer_cycles == p["layer_cycles"], (layer_cycles, p["layer_cycles"])
    result = {"images": images, "cycles": monitor.last_edge - driver.first_edge + 1,
              "layer_cycles": layer_cycles}
    if p.get("result_file"):
        with open(p["result_file"], "w") as f:
            json.dump(result, f)


def _layer_counters(dut, n: int) -> list[int]:
    """The ``layer_cycles`` port holds ``n`` 32-bit counters, layer 0 in the low bits."""
    word = int(dut.layer_cycles.value)
    return [(word >> (32 * i)) & 0xFFFFFFFF for i in range(n)]
