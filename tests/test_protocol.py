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
