"""cocotb testbench of the board design's core (:class:`rtl_gen.hw.hostlink.HostLinkCore`):
UART in, UART out, driven by the host client itself.

The host side is :class:`rtl_gen.protocol.HostClient`, the code ``rtl-gen run`` uses with a
serial port; here its transport is a bit-level UART model on the design's ``rx``/``tx`` pins
(the client runs in a :func:`cocotb.task.bridge` thread, the model's ``write``/``read`` are
:func:`cocotb.task.resume` calls back into the simulation)::

    HostClient ──► UartModel.write ──► rx ──► DUT ──► tx ──► UartModel (receiver task) ──► read

Parameters (:func:`sim.runner.test_params`): the images' input codes, the golden model's
logits and classes, the UART divisor and timeout of the build, the cycle model's per-layer
batch cycles (and the layers it does not predict, ``unchecked_layers``), a bound of the
network's cycles per batch (``compute_cycles``, how long the host waits for a reply),
whether to send malformed frames too, the batches of the throughput run (BENCH, the last
batch back to back) and the engine's ``interval``, and a ``result_file`` for what was
measured.  With ``settings`` (term-revealing networks), the images are classified once per
setting after its ``regs`` (mode, k, s) are written to the TR_MODE, TR_K and TR_S
registers, each run checked against that setting's ``logits``, ``classes`` and
``layer_cycles``.
"""

from __future__ import annotations

import json
import struct

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.task import bridge, resume
from cocotb.triggers import ClockCycles, FallingEdge, First, Timer

from rtl_gen import protocol as P
from sim.runner import test_params

PERIOD_NS = 10


class UartModel:
    """The host end of the UART: sends bytes on ``rx``, collects bytes from ``tx``."""

    def __init__(self, dut, divisor: int, idle_timeout_cycles: int):
        self.dut, self.bit_ns = dut, divisor * PERIOD_NS
        self.idle_ns = idle_timeout_cycles * PERIOD_NS
        self.received = bytearray()
        self.framing_errors = 0

    async def receiver(self):
        dut = self.dut
        while True:
            await FallingEdge(dut.tx)
            await Timer(self.bit_ns // 2, "ns")
            if int(dut.tx.value):
                continue  # a glitch
            byte = 0
            for i in range(8):
                await Timer(self.bit_ns, "ns")
                byte |= int(dut.tx.value) << i
            await Timer(self.bit_ns, "ns")
            if not int(dut.tx.value):
                self.framing_errors += 1
            self.received.append(byte)

    async def write(self, data: bytes):
        for byte in data:
            for bit in [0, *((byte >> i) & 1 for i in range(8)), 1]:
                self.dut.rx.value = bit
                await Timer(self.bit_ns, "ns")

    async def read(self, n: int) -> bytes:
        """Up to ``n`` bytes; fewer when the line stays quiet for the idle timeout."""
        waited = 0
        while len(self.received) < n and waited < self.idle_ns:
            before = len(self.received)
            await Timer(self.bit_ns, "ns")
            waited = 0 if len(self.received) != before else waited + self.bit_ns
        out = bytes(self.received[:n])
        del self.received[:n]
        return out

    async def idle(self, cycles: int):
        await ClockCycles(self.dut.clk, cycles)


class Transport:
    """``write``/``read`` for :class:`HostClient`, blocking calls into the simulation."""

    def __init__(self, model: UartModel):
        self.write = resume(model.write)
        self.read = resume(model.read)
        self.idle = resume(model.idle)


def host_session(transport: Transport, p: dict) -> dict:
    """What a host does with a board, as blocking code (runs in a bridge thread)."""
    client = P.HostClient(transport)
    info = client.info()
    assert (info.features, info.classes, info.rows) == (p["features"], p["classes_n"],
                                                        p["rows"]), info
    x = np.asarray(p["inputs"], np.int64)
    runs = []
    for setting in p.get("settings") or [{}]:
        # a run-time control setting through the host registers, then every image
        if "regs" in setting:
            for name, value in zip(("TR_MODE", "TR_K", "TR_S"), setting["regs"], strict=True):
                client.write_register(name, value)
        classes, logits, cycles = client.classify(x)
        run = {"classes": classes.tolist(), "logits": logits.tolist(), "cycles": cycles}
        run["layer_cycles"] = client.cycles()[2]
        runs.append(run)
    result = dict(runs[-1], runs=runs)
    if p.get("bench"):
        bench = client.bench(p["bench"])
        result.update(bench_cycles=bench.cycles, bench_logits=bench.logits.tolist(),
                      bench_classes=bench.classes.tolist())
    last, since_reset, layers = client.cycles()
    result.update(last_cycles=last, since_reset=since_reset, layer_cycles=layers)
    client.write_register("SCRATCH", 0xA55A)
    result["scratch"] = client.read_register("SCRATCH")
    if p["malformed"]:
        result["malformed"] = malformed_frames(client, transport, p["timeout_cycles"])
    return result


def malformed_frames(client: P.HostClient, transport: Transport, timeout: int) -> list:
    """Send each kind of bad frame, then a good INFO; return ``(status, cmd, info ok)``."""
    good = P.encode_request(P.CMD_INFO)
    cases = [good[:-1] + bytes([good[-1] ^ 0x5A]),                  # bad checksum
             P.encode_request(0x42),                                 # unknown command
             P.encode_request(P.CMD_INFER, b"\x00" * 3),             # wrong length
             b"\x13\x37\xff\x00",                                    # garbage
             P.encode_request(P.CMD_INFER, b"\x01" * 40)[:9],        # stops short
             P.encode_request(P.CMD_WRITE, struct.pack("<BH", P.REGISTERS["TR_K"], 4))]
    seen = []
    for frame in cases:
        client.send(frame)
        status, cmd, payload = client.receive()
        ok = client.info() is not None  # the design answers the next good frame
        seen.append([status, cmd, len(payload), ok])
    return seen


@cocotb.test()
async def board_matches_golden(dut):
    p = test_params()
    dut.rx.value = 1
    cocotb.start_soon(Clock(dut.clk, PERIOD_NS, unit="ns").start())
    dut.rst.value = 1
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 3)
    # the host waits for a reply as long as the design may compute a batch
    model = UartModel(dut, p["divisor"], 4 * p["timeout_cycles"] + 40 * p["divisor"]
                      + p.get("compute_cycles", 0))
    cocotb.start_soon(model.receiver())
    session = bridge(host_session)
    limit = Timer(p["max_ns"], "ns")
    task = cocotb.start_soon(session(Transport(model), p))
    await First(task, limit)
    assert task.done(), f"the host session did not finish in {p['max_ns']} ns"
    result = task.result()
    assert model.framing_errors == 0, f"{model.framing_errors} reply bytes had no stop bit"

    skip = set(p.get("unchecked_layers", ()))  # no counter, or held back by a later layer
    settings = p.get("settings") or [{k: p[k] for k in ("logits", "classes", "layer_cycles")}]
    assert len(result["runs"]) == len(settings)
    for want, run in zip(settings, result["runs"], strict=True):
        where = f" (registers {want['regs']})" if "regs" in want else ""
        expected_logits = np.asarray(want["logits"], np.int64)
        got = np.asarray(run["logits"], np.int64)
        bad = np.argwhere(got != expected_logits)
        assert bad.size == 0, (f"{len(bad)} logits differ{where}; first at image {bad[0][0]}, "
                               f"channel {bad[0][1]}: {got[tuple(bad[0])]} != "
                               f"{expected_logits[tuple(bad[0])]}")
        assert run["classes"] == want["classes"], f"classes differ from golden.predict{where}"
        measured = [c for i, c in enumerate(run["layer_cycles"]) if i not in skip]
        model = [c for i, c in enumerate(want["layer_cycles"]) if i not in skip]
        assert len(run["layer_cycles"]) == len(want["layer_cycles"]) and measured == model, (
            run["layer_cycles"], want["layer_cycles"], sorted(skip), where)
    if p.get("bench"):
        # the last batch (padded with zeros) again, its cycles every batch's back to back:
        # the engine's interval each, within the pipeline fill (one batch's latency)
        rows, n = p["rows"], len(p["inputs"])
        last = (n - 1) // rows * rows
        logits = result["bench_logits"][:n - last]
        assert logits == p["logits"][last:], "the throughput run's logits differ"
        assert result["bench_classes"][:n - last] == p["classes"][last:]
        ideal = p["bench"] * p["interval"]
        assert abs(result["bench_cycles"] - ideal) <= result["cycles"][-1], (
            result["bench_cycles"], ideal)
        assert result["last_cycles"] == result["bench_cycles"]
    else:
        assert result["last_cycles"] == result["cycles"][-1]
    assert result["scratch"] == 0xA55A
    if p["malformed"]:
        want = [[P.STATUS[s], c, 0, True] for s, c in (
            ("BAD_CRC", P.CMD_INFO), ("BAD_CMD", 0x42), ("BAD_LEN", P.CMD_INFER),
            ("SYNC", 0), ("TIMEOUT", P.CMD_INFER), ("BAD_REG", P.CMD_WRITE))]
        assert result["malformed"] == want, result["malformed"]
    if p.get("result_file"):
        with open(p["result_file"], "w") as f:
            json.dump(result, f)
