"""The host protocol's framing and client, without hardware (scripted transports)."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from rtl_gen import protocol as P


class Scripted:
    """A transport that answers each write with the next canned reply."""

    def __init__(self, replies):
        self.replies, self.sent, self.buf = list(replies), [], b""

    def write(self, data):
        self.sent.append(bytes(data))
        if self.replies:
            self.buf += self.replies.pop(0)

    def read(self, n):
        out, self.buf = self.buf[:n], self.buf[n:]
        return out


INFO = P.DesignInfo(1, 2, 3, 2, 8, False, 2, 2, 0x1234)


def test_crc8_is_crc8_smbus():
    # the catalogue check value of CRC-8/SMBUS (poly 0x07, init 0) over "123456789"
    assert P.crc8(b"123456789") == 0xF4
    assert P.crc8(b"") == 0


def test_request_layout():
    frame = P.encode_request(P.CMD_INFER, b"\x01\x02\x03")
    assert frame[:4] == bytes([0xA5, 0x02, 0x03, 0x00])
    assert frame[4:7] == b"\x01\x02\x03"
    assert frame[7] == P.crc8(frame[1:7])
    with pytest.raises(ValueError):
        P.encode_request(0x100)


def test_reply_decoding_errors():
    good = P.encode_reply(0, P.CMD_INFO, b"ab")
    assert P.decode_reply(good) == (0, P.CMD_INFO, b"ab")
    with pytest.raises(P.ProtocolError, match="checksum"):
        P.decode_reply(good[:-1] + bytes([good[-1] ^ 1]))
    with pytest.raises(P.ProtocolError, match="starts with"):
        P.decode_reply(b"\x00" + good[1:])
    with pytest.raises(P.ProtocolError, match="payload bytes"):
        P.decode_reply(good[:-2] + good[-1:])


def test_info_roundtrip_and_magic():
    assert P.DesignInfo.unpack(INFO.pack()) == INFO
    with pytest.raises(P.ProtocolError, match="not an rtl_gen design"):
        P.DesignInfo.unpack(b"XX" + INFO.pack()[2:])


def test_client_infer_and_errors():
    logits = [[-2, 300], [5, -7]]
    payload = bytes([1, 0]) + b"".join(struct.pack("<h", v) for row in logits for v in row) \
        + struct.pack("<I", 99)
    t = Scripted([b"\x00\x00" + P.encode_reply(0, P.CMD_INFO, INFO.pack()),  # noise first
                  P.encode_reply(0, P.CMD_INFER, payload),
                  P.encode_reply(P.STATUS["BAD_REG"], P.CMD_WRITE)])
    client = P.HostClient(t)
    assert client.info() == INFO
    res = client.infer(np.array([[1, 2, 3], [4, 5, 255]]))
    assert res.classes.tolist() == [1, 0]
    assert res.logits.tolist() == logits
    assert res.cycles == 99
    assert t.sent[1] == P.encode_request(P.CMD_INFER, bytes([1, 2, 3, 4, 5, 255]))
    with pytest.raises(P.ProtocolError, match="BAD_REG"):
        client.write_register("TR_K", 3)
    with pytest.raises(ValueError, match="input codes"):
        client.infer(np.array([[1, 2, 3], [4, 5, 256]]))
    with pytest.raises(ValueError, match="unknown register"):
        client.write_register("NOPE", 1)
    with pytest.raises(P.LinkError, match="no answer"):
        client.info()


def test_open_serial_names_the_port():
    pytest.importorskip("serial")
    with pytest.raises(P.LinkError, match="/dev/does-not-exist"):
        P.open_serial("/dev/does-not-exist", 115200)


# --- the register map ---------------------------------------------------------------------

def test_register_map_values():
    """Addresses, widths and reset values, spelled out: the boards in the field and the
    hosts that talk to them depend on them."""
    got = [(r.name, r.address, r.width, r.reset, r.access, r.feature) for r in P.REGISTER_MAP]
    assert got == [("SCRATCH", 0x00, 16, 0, "rw", None),
                   ("TR_MODE", 0x10, 1, 1, "rw", "tr"),
                   ("TR_K", 0x11, 16, 0xFFFF, "rw", "tr"),
                   ("TR_S", 0x12, 5, 31, "rw", "tr"),
                   ("BP_W_BITS", 0x13, 16, 0, "rw", "bitplane"),
                   ("BP_A_BITS", 0x14, 16, 0, "rw", "bitplane")]
    assert P.REGISTERS == {"SCRATCH": 0x00, "TR_MODE": 0x10, "TR_K": 0x11, "TR_S": 0x12,
                           "BP_W_BITS": 0x13, "BP_A_BITS": 0x14}
    assert (P.K_BITS, P.K_OWN, P.S_BITS, P.S_OWN) == (16, 0xFFFF, 5, 31)
    assert P.register("TR_S") is P.register(0x12)
    with pytest.raises(ValueError, match="unknown register 'NOPE'; expected one of SCRATCH"):
        P.register("NOPE")


@pytest.mark.parametrize("fields,message", [
    (("X", 0x100, 8, 0, "rw", None), "address must be a byte, not 256"),
    (("X", 1, 17, 0, "rw", None), "width must be 1 to 16 bits, not 17"),
    (("X", 1, 4, 16, "rw", None), "reset value 16 does not fit 4 bits"),
    (("X", 1, 4, 0, "wo", None), "access must be 'rw' or 'ro', not 'wo'"),
    (("X", 1, 4, 0, "rw", "dsp"), "feature must be one of None, 'tr', 'bitplane', not 'dsp'"),
])
def test_register_refusals(fields, message):
    with pytest.raises(ValueError, match=f"register X: {message}"):
        P.Register(*fields, "a meaning")


def test_design_registers():
    import dataclasses

    from rtl_gen.design.network import TRConfig
    from tests.test_network_sim import small_net

    net, _ = small_net([8, 5, 3], ["signmag5", "int4"], seed=4)
    assert [r.name for r in P.design_registers(net)] == ["SCRATCH"]
    tr = dataclasses.replace(net, layers=(dataclasses.replace(net.layers[0],
                                                              tr=TRConfig(4, 2, 1)),
                                          net.layers[1]))
    assert [r.name for r in P.design_registers(tr)] == ["SCRATCH", "TR_MODE", "TR_K", "TR_S"]


def test_manual_register_table_is_the_map():
    """The manual's register table is the rendered map, so the two cannot drift apart."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "rtl_gen" / "docs" / "pages"
              / "boards.md").read_text()
    header = P.register_table().splitlines()[0]
    assert readme.count(header) == 1, "the boards page has no (or more than one) register table"
    lines = readme[readme.index(header):].splitlines()
    table = []
    for line in lines:
        if not line.startswith("|"):
            break
        table.append(line)
    assert "\n".join(table) + "\n" == P.register_table()
    assert len(table) == 2 + len(P.REGISTER_MAP)


def test_client_checks_register_values_by_name(monkeypatch):
    t = Scripted([P.encode_reply(0, P.CMD_WRITE)] * 2)
    client = P.HostClient(t)
    with pytest.raises(ValueError, match="TR_S holds 5 bits: values 0 to 31, not 32"):
        client.write_register("TR_S", 32)
    with pytest.raises(ValueError, match="TR_MODE holds 1 bit: values 0 to 1, not 2"):
        client.write_register("TR_MODE", 2)
    assert t.sent == []
    client.write_register("TR_S", 31)
    client.write_register(0x12, 0xFFFF)  # by address: raw, the design keeps its bits
    assert t.sent == [P.encode_request(P.CMD_WRITE, bytes([0x12, 31, 0])),
                      P.encode_request(P.CMD_WRITE, bytes([0x12, 0xFF, 0xFF]))]
    monkeypatch.setattr(P, "REGISTER_MAP", (
        *P.REGISTER_MAP, P.Register("ID", 0x20, 8, 7, "ro", None, "read-only")))
    with pytest.raises(ValueError, match="register ID is read-only"):
        client.write_register("ID", 1)
