"""The host link: a framed byte protocol over a UART between a host and a generated design.

Pure Python, no I/O of its own: :class:`HostClient` talks through any *transport* with
``write(bytes)`` and ``read(n) -> bytes`` (returning fewer bytes on a timeout), which is
exactly a ``serial.Serial`` from pyserial (:func:`open_serial`) and also the cocotb UART
model that drives the board top in simulation (``sim/board_tb.py``), so the code that talks
to a board is the code the simulation tests.

Framing (all multi-byte fields little-endian; ``crc`` is CRC-8 with polynomial 0x07, initial
value 0, no reflection, no final XOR, i.e. CRC-8/SMBUS, check value 0xF4)::

    request  A5 | cmd | len (2) | payload (len bytes) | crc over cmd .. payload
    reply    5A | status | cmd | len (2) | payload (len bytes) | crc over status .. payload

Commands (``cmd``) and their payloads:

========  ====  ==============================  ==================================================
command   code  request payload                 reply payload (status 0)
========  ====  ==============================  ==================================================
INFO      0x01  (none)                          :class:`DesignInfo` (16 bytes)
INFER     0x02  ``rows x features`` input       ``rows`` classes (1 byte each), then the logits
                codes, one byte each (two's     (``rows x classes``, image-major, ``logit_bytes``
                complement when signed)         each, signed), then the inference's cycles (4)
CYCLES    0x03  (none)                          last inference's cycles (4), cycles since reset
                                                (4), each layer's cycles for its last batch (4 each)
WRITE     0x04  register (1), value (2)         (none)
READ      0x05  register (1)                    value (2)
BENCH     0x06  ``count`` (2; 0 means 65536)    as INFER's, for the last of ``count`` batches,
                                                with the cycles of all ``count`` batches
========  ====  ==============================  ==================================================

BENCH is the throughput mode: the design runs the batch in its input buffer (the last
INFER's) through the network ``count`` times back to back, each code fed to the engine the
cycle it can take it, as a stream of images would arrive, and counts the cycles from the
first input code of the first batch to the last class of the last; every batch is computed
(the reply's classes and logits are the last batch's).  ``cycles / count`` is the network's
interval per batch plus its pipeline fill shared out, so the clock times ``count x rows /
cycles`` is what the board classifies per second when the UART does not bound it.  Before
the first INFER the buffer holds zeros; a malformed INFER frame of the right length may leave
part of its payload there.

A reply's ``status`` is 0 or one of the error codes in :data:`ERRORS`; an error reply
carries no payload.  The design answers every frame it receives, good or bad, and is ready
for the next frame once it has answered: bytes that do not start a frame are discarded until
the line has been idle for the design's timeout, then answered once with ``SYNC``; a frame
that stops short is answered with ``TIMEOUT`` after the same idle time.

Registers (:data:`REGISTER_MAP`, one :class:`Register` record each, declared once: the
hardware's register decode, :class:`DeviceModel`, :class:`HostClient` and the manual's
register table are all read from it; :func:`register_table` renders the table): 16-bit
values on the wire; a register holds its ``width`` low bits (a WRITE keeps those, a READ
returns them zero-extended) and starts at its ``reset`` value.  ``SCRATCH`` (0x00) reads back
what was written; the run-time controls of term revealing (``TR_MODE``, ``TR_K``, ``TR_S``,
shared by every TR layer, taking effect at the next inference;
:func:`rtl_gen.hw.tr.control_values` gives the values for a golden-model ``TRControl``) and
of bit-plane layers have fixed addresses.  A design has the registers of
:func:`design_registers`; it answers ``BAD_REG`` for any other address, and for a WRITE to a
read-only register.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Sequence

import numpy as np

from .errors import RtlGenError

__all__ = [
    "BENCH_MAX", "CMD_BENCH", "CMD_CYCLES", "CMD_INFER", "CMD_INFO", "CMD_READ",
    "CMD_WRITE", "ERRORS", "FEATURES",
    "K_BITS", "K_OWN", "PROTOCOL_VERSION", "REGISTERS", "REGISTER_MAP", "REPLY_SYNC",
    "REQUEST_SYNC", "S_BITS", "S_OWN", "DesignInfo", "DeviceModel", "HostClient",
    "InferResult", "LinkError", "ProtocolError", "Register", "crc8", "decode_reply",
    "design_registers", "encode_request", "open_serial", "register", "register_table",
]

REQUEST_SYNC = 0xA5
REPLY_SYNC = 0x5A
PROTOCOL_VERSION = 1
#: The INFO reply starts with these two bytes.
MAGIC = b"RG"

CMD_INFO, CMD_INFER, CMD_CYCLES, CMD_WRITE, CMD_READ = 0x01, 0x02, 0x03, 0x04, 0x05
CMD_BENCH = 0x06
COMMANDS = {CMD_INFO: "INFO", CMD_INFER: "INFER", CMD_CYCLES: "CYCLES", CMD_WRITE: "WRITE",
            CMD_READ: "READ", CMD_BENCH: "BENCH"}
#: The most batches one BENCH runs (its count 0).
BENCH_MAX = 1 << 16

#: Reply status codes (0 is success).
ERRORS = {
    1: "BAD_CRC",      # the frame's checksum does not match
    2: "BAD_CMD",      # unknown command code
    3: "BAD_LEN",      # the payload length is not the command's
    4: "TIMEOUT",      # the frame stopped short (the line went idle inside it)
    5: "BAD_REG",      # no such register in this design
    6: "SYNC",         # bytes that do not start a frame were discarded
}
STATUS = {name: code for code, name in ERRORS.items()}

#: Which designs have a register (:attr:`Register.feature`): ``None`` every design.
FEATURES = {
    None: "every design",
    "tr": "designs with term-revealing layers",
    "bitplane": "designs with bit-plane layers",
}


@dataclasses.dataclass(frozen=True)
class Register:
    """One host-link register.

    Members
    -------
    name:
        What the host calls it (:meth:`HostClient.write_register`).
    address:
        Its byte address in WRITE and READ frames.
    width:
        Bits it holds (1 to 16): a WRITE keeps the value's low ``width`` bits, a READ returns
        them zero-extended to 16.
    reset:
        Its value after reset.
    access:
        ``"rw"``, or ``"ro"`` (a WRITE is answered ``BAD_REG``; it always reads ``reset``).
    feature:
        Which designs have it (a key of :data:`FEATURES`): ``None`` every design, ``"tr"``
        those with term-revealing layers, ``"bitplane"`` those with bit-plane layers.
    meaning:
        One line for the documentation.
    """

    name: str
    address: int
    width: int
    reset: int
    access: str
    feature: str | None
    meaning: str

    def __post_init__(self):
        if not 0 <= self.address <= 0xFF:
            raise ValueError(f"register {self.name}: address must be a byte, not "
                             f"{self.address}")
        if not 1 <= self.width <= 16:
            raise ValueError(f"register {self.name}: width must be 1 to 16 bits, not "
                             f"{self.width}")
        if not 0 <= self.reset < 1 << self.width:
            raise ValueError(f"register {self.name}: reset value {self.reset} does not fit "
                             f"{self.width} bits")
        if self.access not in ("rw", "ro"):
            raise ValueError(f"register {self.name}: access must be 'rw' or 'ro', not "
                             f"{self.access!r}")
        if self.feature not in FEATURES:
            raise ValueError(f"register {self.name}: feature must be one of "
                             f"{', '.join(map(repr, FEATURES))}, not {self.feature!r}")

    @property
    def mask(self) -> int:
        """The bits the register holds."""
        return (1 << self.width) - 1


#: The register map, in address order.
REGISTER_MAP: tuple[Register, ...] = (
    Register("SCRATCH", 0x00, 16, 0, "rw", None,
             "reads back what was written (a link test)"),
    Register("TR_MODE", 0x10, 1, 1, "rw", "tr",
             "term revealing: 1 TR, 0 conventional (every weight term, untruncated "
             "activations)"),
    Register("TR_K", 0x11, 16, 0xFFFF, "rw", "tr",
             "group budget `k` for every TR layer; 0xFFFF: each layer's own from the bundle"),
    Register("TR_S", 0x12, 5, 31, "rw", "tr",
             "data terms `s` per activation; 0: every term; 31: each layer's own"),
    Register("BP_W_BITS", 0x13, 16, 0, "rw", "bitplane",
             "bit-plane weight precision (reserved: no network layer uses bit-plane PEs yet)"),
    Register("BP_A_BITS", 0x14, 16, 0, "rw", "bitplane",
             "bit-plane activation precision (reserved: no network layer uses bit-plane PEs "
             "yet)"),
)


def _check_map(regs: Sequence[Register]) -> None:
    names = [r.name for r in regs]
    addrs = [r.address for r in regs]
    if len(set(names)) != len(names) or len(set(addrs)) != len(addrs):
        raise ValueError("register names and addresses must be unique")
    if addrs != sorted(addrs):
        raise ValueError("the register map must be in address order")


_check_map(REGISTER_MAP)

#: Register name -> address.
REGISTERS: dict[str, int] = {r.name: r.address for r in REGISTER_MAP}


def register(name_or_addr: str | int) -> Register:
    """The register called ``name_or_addr``, or at that address.

    Raises
    ------
    ValueError
        For a name or address the map does not have (naming the known ones).
    """
    for r in REGISTER_MAP:
        if (r.name if isinstance(name_or_addr, str) else r.address) == name_or_addr:
            return r
    raise ValueError(f"unknown register {name_or_addr!r}; expected one of "
                     f"{', '.join(REGISTERS)}")


def design_registers(net) -> tuple[Register, ...]:
    """The registers a design built from ``net`` (a
    :class:`~rtl_gen.design.network.Network`) has, in address order."""
    has = {None: True,
           "tr": any(getattr(layer, "tr", None) is not None for layer in net.layers),
           "bitplane": False}  # no network layer uses bit-plane PEs yet
    return tuple(r for r in REGISTER_MAP if has[r.feature])


def _reset_text(r: Register) -> str:
    return f"0x{r.reset:0{(r.width + 3) // 4}X}" if r.width > 8 else str(r.reset)


def register_table(regs: Sequence[Register] = REGISTER_MAP) -> str:
    """The register map as a Markdown table (the manual's boards page), one line per register."""
    lines = ["| address | register | bits | reset | access | present in | meaning |",
             "|---|---|---|---|---|---|---|"]
    for r in regs:
        lines.append(f"| 0x{r.address:02X} | `{r.name}` | {r.width} | {_reset_text(r)} | "
                     f"{r.access} | {FEATURES[r.feature]} | {r.meaning} |")
    return "\n".join(lines) + "\n"


#: Width of the run-time term-revealing budget and data-terms registers.
K_BITS, S_BITS = register("TR_K").width, register("TR_S").width
#: ``TR_K`` value meaning "each layer's own budget, from the bundle" (the reset value).
K_OWN = register("TR_K").reset
#: ``TR_S`` value meaning "each layer's own data terms, from the bundle" (the reset value).
S_OWN = register("TR_S").reset

#: Bytes of the INFO reply.
INFO_BYTES = 16
_INFO = struct.Struct("<2sBBHHBBBBI")


class ProtocolError(RtlGenError):
    """A reply is malformed, or the design answered with an error status."""

    def __init__(self, message: str, status: int | None = None):
        self.status = status
        super().__init__(message)


class LinkError(RtlGenError):
    """The link gave no (or not enough) answer in time."""


def crc8(data: bytes | bytearray | Sequence[int], crc: int = 0) -> int:
    """CRC-8/SMBUS (polynomial 0x07, initial ``crc``, MSB first) of ``data``."""
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def encode_request(cmd: int, payload: bytes = b"") -> bytes:
    """One request frame."""
    if not 0 <= cmd <= 0xFF:
        raise ValueError(f"command code must be a byte, not {cmd}")
    if len(payload) > 0xFFFF:
        raise ValueError(f"payload of {len(payload)} bytes is longer than 65535")
    body = bytes([cmd]) + struct.pack("<H", len(payload)) + bytes(payload)
    return bytes([REQUEST_SYNC]) + body + bytes([crc8(body)])


def encode_reply(status: int, cmd: int, payload: bytes = b"") -> bytes:
    """One reply frame (what the design sends; used by tests and models)."""
    body = bytes([status, cmd]) + struct.pack("<H", len(payload)) + bytes(payload)
    return bytes([REPLY_SYNC]) + body + bytes([crc8(body)])


def decode_reply(frame: bytes) -> tuple[int, int, bytes]:
    """``(status, cmd, payload)`` of one whole reply frame.

    Raises
    ------
    ProtocolError
        For a wrong sync byte, length or checksum.
    """
    if len(frame) < 6:
        raise ProtocolError(f"reply of {len(frame)} bytes is shorter than a frame (6)")
    if frame[0] != REPLY_SYNC:
        raise ProtocolError(f"reply starts with 0x{frame[0]:02X}, not 0x{REPLY_SYNC:02X}")
    (length,) = struct.unpack_from("<H", frame, 3)
    if len(frame) != 6 + length:
        raise ProtocolError(f"reply says {length} payload bytes but has {len(frame) - 6}")
    if crc8(frame[1:-1]) != frame[-1]:
        raise ProtocolError(f"reply checksum 0x{frame[-1]:02X} does not match "
                            f"0x{crc8(frame[1:-1]):02X}")
    return frame[1], frame[2], bytes(frame[5:-1])


@dataclasses.dataclass(frozen=True)
class DesignInfo:
    """What a design says about itself (the INFO reply)."""

    version: int
    rows: int
    features: int
    classes: int
    input_bits: int
    input_signed: bool
    logit_bytes: int
    layers: int
    design_id: int

    def pack(self) -> bytes:
        return _INFO.pack(MAGIC, self.version, self.rows, self.features, self.classes,
                          self.input_bits, int(self.input_signed), self.logit_bytes,
                          self.layers, self.design_id)

    @classmethod
    def unpack(cls, payload: bytes) -> DesignInfo:
        if len(payload) != INFO_BYTES:
            raise ProtocolError(f"INFO reply has {len(payload)} bytes, not {INFO_BYTES}")
        magic, *fields = _INFO.unpack(payload)
        if magic != MAGIC:
            raise ProtocolError(f"INFO reply starts with {magic!r}, not {MAGIC!r}: not an "
                                "rtl_gen design")
        v, rows, feat, classes, bits, signed, lb, layers, did = fields
        return cls(v, rows, feat, classes, bits, bool(signed), lb, layers, did)

    def infer_reply_bytes(self) -> int:
        return self.rows + self.rows * self.classes * self.logit_bytes + 4


@dataclasses.dataclass(frozen=True)
class InferResult:
    """One batch's answer: ``classes`` (rows,), ``logits`` (rows, classes), ``cycles``."""

    classes: np.ndarray
    logits: np.ndarray
    cycles: int


def parse_infer(info: DesignInfo, payload: bytes) -> InferResult:
    """The INFER reply's payload as numbers."""
    if len(payload) != info.infer_reply_bytes():
        raise ProtocolError(f"INFER reply has {len(payload)} bytes, not "
                            f"{info.infer_reply_bytes()}")
    r, n, lb = info.rows, info.classes, info.logit_bytes
    classes = np.frombuffer(payload[:r], dtype=np.uint8).astype(np.int64)
    raw = payload[r:r + r * n * lb]
    logits = np.array([int.from_bytes(raw[i:i + lb], "little", signed=True)
                       for i in range(0, len(raw), lb)], dtype=np.int64).reshape(r, n)
    (cycles,) = struct.unpack("<I", payload[-4:])
    return InferResult(classes, logits, cycles)


class HostClient:
    """Talks to a design through ``transport`` (``write(bytes)``, ``read(n) -> bytes``)."""

    def __init__(self, transport):
        self.transport = transport
        self._info: DesignInfo | None = None

    # -- frames ------------------------------------------------------------------------------
    def send(self, frame: bytes) -> None:
        """Send raw bytes (a request frame, or anything else: tests send garbage)."""
        self.transport.write(frame)

    def _read_exact(self, n: int, what: str) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.transport.read(n - len(data))
            if not chunk:
                raise LinkError(f"no answer from the design while reading {what} "
                                f"({len(data)} of {n} bytes arrived)")
            data += chunk
        return data

    def receive(self) -> tuple[int, int, bytes]:
        """Read one reply frame: ``(status, cmd, payload)``; bytes before a sync byte are
        skipped."""
        skipped = 0
        while True:
            b = self._read_exact(1, "a reply")
            if b[0] == REPLY_SYNC:
                break
            skipped += 1
            if skipped > 1 << 16:
                raise ProtocolError("no reply sync byte in 65536 bytes")
        head = self._read_exact(4, "a reply header")
        (length,) = struct.unpack_from("<H", head, 2)
        rest = self._read_exact(length + 1, "a reply payload")
        return decode_reply(b + head + rest)

    def request(self, cmd: int, payload: bytes = b"") -> bytes:
        """Send one request, return the reply's payload.

        Raises
        ------
        ProtocolError
            When the design answers with an error status (named in the message).
        """
        self.send(encode_request(cmd, payload))
        status, rcmd, data = self.receive()
        if status != 0:
            raise ProtocolError(f"{COMMANDS.get(cmd, hex(cmd))}: the design answered "
                                f"{ERRORS.get(status, f'status {status}')}", status)
        if rcmd != cmd:
            raise ProtocolError(f"asked {COMMANDS.get(cmd, hex(cmd))}, the design answered "
                                f"command 0x{rcmd:02X}")
        return data

    # -- commands ----------------------------------------------------------------------------
    def info(self) -> DesignInfo:
        info = DesignInfo.unpack(self.request(CMD_INFO))
        if info.version != PROTOCOL_VERSION:
            raise ProtocolError(f"the design speaks protocol version {info.version}, this "
                                f"host {PROTOCOL_VERSION}")
        self._info = info
        return info

    def infer(self, codes) -> InferResult:
        """Classify one batch: ``codes`` of shape ``(rows, features)`` (input codes)."""
        info = self._info or self.info()
        codes = np.asarray(codes)
        if codes.shape != (info.rows, info.features):
            raise ValueError(f"a batch is {info.rows} x {info.features} input codes, not "
                             f"{codes.shape}")
        lo, hi = ((-(1 << (info.input_bits - 1)), (1 << (info.input_bits - 1)) - 1)
                  if info.input_signed else (0, (1 << info.input_bits) - 1))
        if codes.min() < lo or codes.max() > hi:
            raise ValueError(f"input codes must lie in [{lo}, {hi}]")
        payload = bytes((int(v) & 0xFF) for v in codes.reshape(-1))
        return parse_infer(info, self.request(CMD_INFER, payload))

    def classify(self, codes, progress=None) -> tuple[np.ndarray, np.ndarray, list[int]]:
        """Classify any number of images (``(n, features)``), batch by batch (the last batch
        padded with zeros).  Returns ``(classes (n,), logits (n, classes), cycles per
        batch)``.  ``progress``: called with the number of images done after each batch."""
        info = self._info or self.info()
        codes = np.asarray(codes)
        classes, logits, cycles = [], [], []
        for start in range(0, len(codes), info.rows):
            batch = codes[start:start + info.rows]
            pad = info.rows - len(batch)
            if pad:
                batch = np.concatenate([batch, np.zeros((pad, info.features), batch.dtype)])
            res = self.infer(batch)
            keep = info.rows - pad
            classes.append(res.classes[:keep])
            logits.append(res.logits[:keep])
            cycles.append(res.cycles)
            if progress is not None:
                progress(start + keep)
        return np.concatenate(classes), np.concatenate(logits), cycles

    def bench(self, count: int) -> InferResult:
        """Run the batch in the design's input buffer (the last :meth:`infer`'s) ``count``
        times back to back (1 to :data:`BENCH_MAX`): the last batch's classes and logits,
        and the cycles of all ``count`` batches."""
        info = self._info or self.info()
        if not 1 <= count <= BENCH_MAX:
            raise ValueError(f"a BENCH runs 1 to {BENCH_MAX} batches, not {count}")
        return parse_infer(info, self.request(CMD_BENCH, struct.pack("<H", count % BENCH_MAX)))

    def cycles(self) -> tuple[int, int, list[int]]:
        """``(last inference's cycles, cycles since reset, each layer's batch cycles)``."""
        data = self.request(CMD_CYCLES)
        words = list(struct.unpack(f"<{len(data) // 4}I", data))
        return words[0], words[1], words[2:]

    def write_register(self, name_or_addr, value: int) -> None:
        """Write ``value`` to a register given by name (the value must fit its width, and
        it must be writable) or by address (any 16-bit value: the design keeps the low
        bits the register holds)."""
        if isinstance(name_or_addr, str):
            reg = register(name_or_addr)
            if reg.access != "rw":
                raise ValueError(f"register {reg.name} is read-only")
            if not 0 <= value <= reg.mask:
                bits = "1 bit" if reg.width == 1 else f"{reg.width} bits"
                raise ValueError(f"register {reg.name} holds {bits}: values 0 to {reg.mask}, "
                                 f"not {value}")
        addr = self._addr(name_or_addr)
        if not 0 <= value <= 0xFFFF:
            raise ValueError(f"register values are 16-bit, not {value}")
        self.request(CMD_WRITE, struct.pack("<BH", addr, value))

    def read_register(self, name_or_addr) -> int:
        """The value of a register given by name or address."""
        (value,) = struct.unpack("<H", self.request(CMD_READ, bytes([self._addr(name_or_addr)])))
        return value

    @staticmethod
    def _addr(name_or_addr) -> int:
        if isinstance(name_or_addr, str):
            return register(name_or_addr).address
        if not 0 <= int(name_or_addr) <= 0xFF:
            raise ValueError(f"register address must be a byte, not {name_or_addr}")
        return int(name_or_addr)


def open_serial(port: str, baud: int, timeout: float = 2.0):
    """A pyserial port for :class:`HostClient`.

    Raises
    ------
    LinkError
        When pyserial is missing or the port cannot be opened (the message names it).
    """
    try:
        import serial  # pyserial
    except ImportError:
        raise LinkError("pyserial is not installed: pip install pyserial") from None
    try:
        return serial.Serial(port, baudrate=baud, timeout=timeout)
    except (serial.SerialException, ValueError) as e:
        raise LinkError(f"cannot open serial port {port!r}: {e}") from None


class DeviceModel:
    """The design's side of the protocol in Python, over the golden model: what a board
    answers, byte for byte (for host software without a board, and for the tests of
    ``rtl-gen run``).  Feed it received bytes with :meth:`receive`, take what it sends
    with :meth:`take`; :meth:`idle` stands for the line going quiet (the design's timeout).

    It computes logits with :func:`rtl_gen.design.golden.forward`; its cycle counts are the cycle
    model's, not measured ones: ``cycles`` for an INFER's batch, and ``cycles + (count - 1) x
    interval`` for a BENCH of ``count`` batches.
    """

    def __init__(self, net, info: DesignInfo, cycles: int = 0, interval: int = 0):
        self.net, self.info, self.cycles, self.interval = net, info, cycles, interval
        self._input = bytes(info.rows * info.features)  # the input buffer
        self.out = bytearray()
        self._buf = bytearray()
        self._garbage = False
        self._map = {r.address: r for r in design_registers(net)}
        self._regs = {r.address: r.reset for r in self._map.values()}
        self._last = 0

    def take(self) -> bytes:
        out, self.out = bytes(self.out), bytearray()
        return out

    def idle(self) -> None:
        if self._garbage:
            self.out += encode_reply(STATUS["SYNC"], 0)
        elif self._buf:
            cmd = self._buf[1] if len(self._buf) > 1 else 0
            self.out += encode_reply(STATUS["TIMEOUT"], cmd)
        self._buf.clear()
        self._garbage = False

    def receive(self, data: bytes) -> None:
        for byte in data:
            if self._garbage:
                continue
            if not self._buf and byte != REQUEST_SYNC:
                self._garbage = True
                continue
            self._buf.append(byte)
            if len(self._buf) >= 4:
                (length,) = struct.unpack_from("<H", self._buf, 2)
                if len(self._buf) == 5 + length:
                    frame, self._buf = bytes(self._buf), bytearray()
                    self.out += self._answer(frame)

    def _answer(self, frame: bytes) -> bytes:
        from .design import golden

        cmd, payload = frame[1], frame[4:-1]
        if crc8(frame[1:-1]) != frame[-1]:
            return encode_reply(STATUS["BAD_CRC"], cmd)
        info = self.info
        want = {CMD_INFO: 0, CMD_INFER: info.rows * info.features, CMD_CYCLES: 0,
                CMD_WRITE: 3, CMD_READ: 1, CMD_BENCH: 2}
        if cmd not in want:
            return encode_reply(STATUS["BAD_CMD"], cmd)
        if len(payload) != want[cmd]:
            return encode_reply(STATUS["BAD_LEN"], cmd)
        if cmd == CMD_INFO:
            return encode_reply(0, cmd, info.pack())
        if cmd in (CMD_INFER, CMD_BENCH):
            count = 1
            if cmd == CMD_INFER:
                self._input = bytes(payload)
            else:
                count = int.from_bytes(payload, "little") or BENCH_MAX
            codes = np.frombuffer(self._input, np.uint8).astype(np.int64)
            if info.input_signed:
                codes = np.where(codes >= 128, codes - 256, codes)
            x = codes.reshape(info.rows, info.features)
            control = self._control()
            logits = golden.forward(self.net, x, control)
            classes = golden.predict(self.net, x, control)
            lb = info.logit_bytes
            body = bytes(int(c) for c in classes) + b"".join(
                int(v).to_bytes(lb, "little", signed=True) for v in logits.reshape(-1))
            self._last = self.cycles + (count - 1) * self.interval
            return encode_reply(0, cmd, body + struct.pack("<I", self._last))
        if cmd == CMD_CYCLES:
            return encode_reply(0, cmd, struct.pack("<II", self._last, 0)
                                + b"\0\0\0\0" * info.layers)
        reg = self._map.get(payload[0])
        if reg is None or (cmd == CMD_WRITE and reg.access != "rw"):
            return encode_reply(STATUS["BAD_REG"], cmd)
        if cmd == CMD_WRITE:
            self._regs[reg.address] = int.from_bytes(payload[1:3], "little") & reg.mask
            return encode_reply(0, cmd)
        return encode_reply(0, cmd, struct.pack("<H", self._regs[payload[0]]))

    def register_value(self, name: str) -> int:
        """The value the design holds in register ``name``.

        Raises
        ------
        ValueError
            For a register this design does not have.
        """
        reg = register(name)
        if reg.address not in self._regs:
            raise ValueError(f"this design has no register {name}")
        return self._regs[reg.address]

    def _control(self):
        """The golden model's TRControl for the TR registers (None without TR layers)."""
        if REGISTERS["TR_MODE"] not in self._regs:
            return None
        from .design.golden import TRControl, TRMode
        k, s = self.register_value("TR_K"), self.register_value("TR_S")
        return TRControl(TRMode.TR if self.register_value("TR_MODE") else TRMode.CONVENTIONAL,
                         None if k == K_OWN else k,
                         None if s == S_OWN else (64 if s == 0 else s))
