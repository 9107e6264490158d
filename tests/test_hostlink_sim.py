"""The host-link core in amaranth.sim: UART, framing, commands, errors, a batch of two.

Bytes go in and out through a bit-level UART model; requests are built and replies parsed
with :mod:`rtl_gen.protocol`, and the INFER answers are compared with the golden model.
The Verilog of a whole digits network behind the same core runs under cocotb with the
host client itself (``tests/test_board_cocotb.py``).
"""

from __future__ import annotations

import struct

import pytest
from amaranth.sim import Simulator

from rtl_gen import protocol as P
from rtl_gen.design import golden
from rtl_gen.hw.hostlink import HostLinkCore, HostLinkPlan
from rtl_gen.hw.layer import ArrayConfig
from rtl_gen.hw.uart import divisor_for
from tests.test_network_sim import small_net

DIV = 4
TIMEOUT = 12 * DIV * 2


def run_link(core: HostLinkCore, frames):
    """Send each of ``frames`` (bytes) and read the one reply each gets, in turn."""
    sim = Simulator(core)
    sim.add_clock(1e-6)
    replies = []

    async def host(ctx):
        ctx.set(core.rx, 1)
        await ctx.tick().repeat(5)
        for frame in frames:
            for byte in frame:
                for bit in [0, *((byte >> i) & 1 for i in range(8)), 1]:
                    ctx.set(core.rx, bit)
                    await ctx.tick().repeat(DIV)
            buf = b""
            while len(buf) < 5 or len(buf) < 6 + struct.unpack_from("<H", buf, 3)[0]:
                waited = 0
                while ctx.get(core.tx):
                    await ctx.tick()
                    waited += 1
                    assert waited < 20_000, f"no reply to {frame.hex()} (got {buf.hex()})"
                await ctx.tick().repeat(DIV // 2)
                byte = 0
                for i in range(8):
                    await ctx.tick().repeat(DIV)
                    byte |= ctx.get(core.tx) << i
                await ctx.tick().repeat(DIV)
                assert ctx.get(core.tx) == 1, "stop bit"
                buf += bytes([byte])
            replies.append(P.decode_reply(buf))

    sim.add_testbench(host)
    sim.run()
    return replies


@pytest.fixture(scope="module")
def link():
    net, calib = small_net([5, 7, 3], ["ternary", "int4"], seed=3)
    arrays = [ArrayConfig(rows=2, cols=2, lanes=2), ArrayConfig(rows=2, cols=2)]
    core = HostLinkCore.for_divisor(net, arrays, divisor=DIV, timeout_cycles=TIMEOUT,
                                    design_id=0xC0FFEE)
    return core, net, calib


def test_info_infer_cycles_registers(link):
    core, net, calib = link
    x = net.input.quantize(calib[:2])
    frames = [P.encode_request(P.CMD_INFO),
              P.encode_request(P.CMD_INFER, bytes(int(v) & 0xFF for v in x.reshape(-1))),
              P.encode_request(P.CMD_CYCLES),
              P.encode_request(P.CMD_WRITE, struct.pack("<BH", 0, 0xBEEF)),
              P.encode_request(P.CMD_READ, bytes([0])),
              P.encode_request(P.CMD_WRITE, struct.pack("<BH", P.REGISTERS["TR_K"], 3))]
    replies = run_link(core, frames)
    info_r, infer_r, cyc_r, wr_r, rd_r, bad_r = replies
    assert info_r[:2] == (0, P.CMD_INFO)
    info = P.DesignInfo.unpack(info_r[2])
    assert info == core.info()
    assert (info.rows, info.features, info.classes, info.design_id) == (2, 5, 3, 0xC0FFEE)
    assert infer_r[:2] == (0, P.CMD_INFER)
    res = P.parse_infer(info, infer_r[2])
    assert res.logits.tolist() == golden.forward(net, x).tolist()
    assert res.classes.tolist() == golden.predict(net, x).tolist()
    assert res.cycles > 0
    assert cyc_r[0] == 0
    words = struct.unpack(f"<{len(cyc_r[2]) // 4}I", cyc_r[2])
    assert words[0] == res.cycles
    assert list(words[2:]) == [t.batch_cycles for t in core.engine.timings]
    assert wr_r == (0, P.CMD_WRITE, b"")
    assert rd_r == (0, P.CMD_READ, struct.pack("<H", 0xBEEF))
    assert bad_r[:2] == (P.STATUS["BAD_REG"], P.CMD_WRITE)


def test_malformed_frames_get_errors_and_the_link_recovers(link):
    core, net, calib = link
    good = P.encode_request(P.CMD_INFO)
    bad_crc = good[:-1] + bytes([good[-1] ^ 0x01])
    frames = [bad_crc, P.encode_request(0x7F), P.encode_request(P.CMD_INFER, b"\x00" * 3),
              b"\x00\x13\x37", P.encode_request(P.CMD_INFER, b"\x01" * 10)[:7], good]
    replies = run_link(core, frames)
    assert [r[0] for r in replies] == [P.STATUS[s] for s in
                                       ("BAD_CRC", "BAD_CMD", "BAD_LEN", "SYNC", "TIMEOUT")] + [0]
    assert [r[1] for r in replies] == [P.CMD_INFO, 0x7F, P.CMD_INFER, 0, P.CMD_INFER,
                                       P.CMD_INFO]
    assert P.DesignInfo.unpack(replies[-1][2]) == core.info()


def test_refusals():
    net, _ = small_net([5, 3], ["binary"], seed=1)
    with pytest.raises(ValueError, match="12 bit periods"):
        HostLinkCore.for_divisor(net, divisor=8, timeout_cycles=20)
    assert divisor_for(12e6, 115200) == 104
    with pytest.raises(ValueError, match="off by"):
        divisor_for(1e6, 115200)
    with pytest.raises(ValueError, match="too fast"):
        divisor_for(1e6, 500000)
    with pytest.raises(ValueError, match="at least 4 cycles per bit, not 3"):
        HostLinkPlan(net, divisor=3, timeout_cycles=100)
    with pytest.raises(ValueError, match="one array configuration per layer"):
        HostLinkPlan(net, [ArrayConfig(rows=1, cols=2)] * 2, divisor=4, timeout_cycles=48)
    with pytest.raises(ValueError, match="one byte per input code; the input has 9 bits"):
        HostLinkPlan(small_net([5, 3], ["binary"], input_bits=9)[0], divisor=4,
                     timeout_cycles=48)


def test_a_refused_core_leaves_no_hardware_behind():
    """Validation comes before any Elaboratable: a refusal creates nothing that could be
    reported as unused (this module runs with warnings as errors)."""
    import gc
    import warnings

    from amaranth.hdl import UnusedElaboratable

    net, _ = small_net([5, 3], ["binary"], seed=1)
    gc.collect()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for bad in ({"divisor": 8, "timeout_cycles": 20}, {"divisor": 2, "timeout_cycles": 99}):
            with pytest.raises(ValueError):
                HostLinkCore.for_divisor(net, **bad)
        with pytest.raises(ValueError):
            HostLinkCore.for_clock(net, clk_hz=1e6, baud=115200)
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, UnusedElaboratable)]
    plan = HostLinkPlan.for_clock(net, clk_hz=12e6, design_id=-1)
    assert (plan.divisor, plan.timeout_cycles, plan.design_id) == (104, 600_000, 0xFFFFFFFF)


def test_crc_logic_is_crc8_on_every_state_and_byte():
    from amaranth import Module, Signal

    from rtl_gen.hw.hostlink import _crc8_next

    # the logic's truth table, evaluated by Amaranth's simulator
    crc, byte = Signal(8), Signal(8)
    out = _crc8_next(crc, byte)
    sim = Simulator(Module())

    async def bench(ctx):
        for c in range(256):
            for b in range(0, 256, 3):
                ctx.set(crc, c)
                ctx.set(byte, b)
                assert ctx.get(out) == P.crc8(bytes([b]), c), (c, b)

    sim.add_testbench(bench)
    sim.run()


def test_term_revealing_registers_change_the_answer():
    import dataclasses

    from rtl_gen.design.golden import TRControl, TRMode
    from rtl_gen.design.network import TRConfig
    from rtl_gen.hw.tr import control_values

    net, calib = small_net([8, 5, 3], ["signmag5", "int4"], seed=4)
    net = dataclasses.replace(net, layers=(dataclasses.replace(net.layers[0],
                                                               tr=TRConfig(4, 2, 1)),
                                           net.layers[1]))
    core = HostLinkCore.for_divisor(net, divisor=DIV, timeout_cycles=TIMEOUT)
    x = net.input.quantize(calib[:1])
    infer = P.encode_request(P.CMD_INFER, bytes(int(v) for v in x.reshape(-1)))
    control = TRControl(TRMode.TR, 5, 3)
    mode, k, s = control_values(control)
    frames = [infer,
              P.encode_request(P.CMD_WRITE, struct.pack("<BH", P.REGISTERS["TR_K"], k)),
              P.encode_request(P.CMD_WRITE, struct.pack("<BH", P.REGISTERS["TR_S"], s)),
              P.encode_request(P.CMD_READ, bytes([P.REGISTERS["TR_K"]])),
              infer,
              P.encode_request(P.CMD_WRITE, struct.pack("<BH", P.REGISTERS["TR_MODE"], 0)),
              infer]
    replies = run_link(core, frames)
    assert [r[0] for r in replies] == [0] * len(frames)
    info = core.info()
    got = [P.parse_infer(info, replies[i][2]).logits for i in (0, 4, 6)]
    want = [golden.forward(net, x, c) for c in (None, control,
                                               TRControl(TRMode.CONVENTIONAL))]
    assert [g.tolist() for g in got] == [w.tolist() for w in want]
    assert len({str(w.tolist()) for w in want}) == 3  # the three settings differ
    assert replies[3][2] == struct.pack("<H", 5)


def _tr_net():
    import dataclasses

    from rtl_gen.design.network import TRConfig

    net, calib = small_net([8, 5, 3], ["signmag5", "int4"], seed=4)
    return dataclasses.replace(net, layers=(dataclasses.replace(net.layers[0],
                                                                tr=TRConfig(4, 2, 1)),
                                            net.layers[1])), calib


def _register_frames():
    """Read every register of the map, write all ones to each, read each again."""
    frames = [P.encode_request(P.CMD_READ, bytes([r.address])) for r in P.REGISTER_MAP]
    for r in P.REGISTER_MAP:
        frames += [P.encode_request(P.CMD_WRITE, struct.pack("<BH", r.address, 0xFFFF)),
                   P.encode_request(P.CMD_READ, bytes([r.address]))]
    return frames


def _model_replies(net, info, frames):
    model = P.DeviceModel(net, info)
    out = []
    for frame in frames:
        model.receive(frame)
        out.append(P.decode_reply(model.take()))
    return out


@pytest.mark.parametrize("with_tr", [False, True], ids=["plain", "term-revealing"])
def test_registers_match_the_map(with_tr):
    """The hardware's registers are the map's: each one the design has reads its reset
    value, keeps the low ``width`` bits of a write and is read back; every other address
    is answered BAD_REG; the device model answers the same, byte for byte."""
    net = _tr_net()[0] if with_tr else small_net([5, 3], ["binary"], seed=1)[0]
    core = HostLinkCore.for_divisor(net, divisor=DIV, timeout_cycles=TIMEOUT)
    frames = _register_frames()
    replies = run_link(core, frames)
    present = {r.name for r in P.design_registers(net)}
    assert present == ({"SCRATCH", "TR_MODE", "TR_K", "TR_S"} if with_tr else {"SCRATCH"})
    bad_reg = P.STATUS["BAD_REG"]
    n = len(P.REGISTER_MAP)
    for i, r in enumerate(P.REGISTER_MAP):
        reset_r, write_r, read_r = replies[i], replies[n + 2 * i], replies[n + 2 * i + 1]
        if r.name in present:
            assert reset_r == (0, P.CMD_READ, struct.pack("<H", r.reset)), r.name
            assert write_r == (0, P.CMD_WRITE, b""), r.name
            assert read_r == (0, P.CMD_READ, struct.pack("<H", (1 << r.width) - 1)), r.name
        else:
            assert (reset_r[0], write_r[0], read_r[0]) == (bad_reg,) * 3, r.name
    # the map's values, spelled out: a change to the map must be meant
    if with_tr:
        assert [struct.unpack("<H", replies[i][2])[0] for i in (1, 2, 3)] == [1, 0xFFFF, 31]
        assert [struct.unpack("<H", replies[n + 2 * i + 1][2])[0] for i in (1, 2, 3)] == \
            [1, 0xFFFF, 31]
    assert _model_replies(net, core.info(), frames) == replies


def test_read_only_register(monkeypatch):
    """A read-only register reads its reset value and refuses a WRITE with BAD_REG, in the
    hardware and in the device model alike."""
    ro = P.Register("ID", 0x20, 12, 0xABC, "ro", None, "a read-only value")
    monkeypatch.setattr(P, "REGISTER_MAP", (*P.REGISTER_MAP, ro))
    net, _ = small_net([5, 3], ["binary"], seed=1)
    core = HostLinkCore.for_divisor(net, divisor=DIV, timeout_cycles=TIMEOUT)
    frames = [P.encode_request(P.CMD_WRITE, struct.pack("<BH", 0x20, 0x123)),
              P.encode_request(P.CMD_READ, bytes([0x20]))]
    replies = run_link(core, frames)
    assert replies == [(P.STATUS["BAD_REG"], P.CMD_WRITE, b""),
                       (0, P.CMD_READ, struct.pack("<H", 0xABC))]
    assert _model_replies(net, core.info(), frames) == replies


def test_bench_runs_the_last_batch_back_to_back(link):
    """BENCH runs the input buffer's batch ``count`` times: the reply is the INFER's (the
    last batch's classes and logits), its cycles those of every batch, first code to last
    class: the single batch's latency plus ``count - 1`` intervals of the engine; the
    device model answers the same, byte for byte."""
    core, net, calib = link
    x = net.input.quantize(calib[2:4])
    infer = P.encode_request(P.CMD_INFER, bytes(int(v) & 0xFF for v in x.reshape(-1)))
    frames = [infer, *(P.encode_request(P.CMD_BENCH, struct.pack("<H", n)) for n in (1, 5)),
              P.encode_request(P.CMD_BENCH, b"\x05")]
    replies = run_link(core, frames)
    info = core.info()
    assert [r[:2] for r in replies[:3]] == [(0, P.CMD_INFER), (0, P.CMD_BENCH),
                                            (0, P.CMD_BENCH)]
    assert replies[3] == (P.STATUS["BAD_LEN"], P.CMD_BENCH, b"")
    one, bench1, bench5 = (P.parse_infer(info, r[2]) for r in replies[:3])
    want = golden.forward(net, x).tolist()
    assert one.logits.tolist() == bench1.logits.tolist() == bench5.logits.tolist() == want
    assert bench5.classes.tolist() == golden.predict(net, x).tolist()
    assert bench1.cycles == one.cycles
    interval = core.engine.interval
    assert interval > 0
    assert bench5.cycles == one.cycles + 4 * interval, (one.cycles, bench5.cycles, interval)
    model = P.DeviceModel(net, info, cycles=one.cycles, interval=interval)
    got = []
    for frame in frames:
        model.receive(frame)
        got.append(P.decode_reply(model.take()))
    assert got == replies
