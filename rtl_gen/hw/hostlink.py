"""The board-independent core of a board design: a network behind the UART host link.

::

    rx ──► UartRx ──► frame parser ──► input buffer (rows x features bytes, block RAM)
                          │                   │ stream, one code per cycle
                          │                   ▼
                          │      NetworkEngine ──► logits ──► reply buffer (block RAM)
                          │   (ConvNetworkEngine)
                          │                   └──► classes, cycles
                          ▼
                   reply sequencer ──► UartTx ──► tx           leds: heartbeat, busy,
                                                               error, frame in progress

The protocol (framing, commands, error codes, registers) is specified in
:mod:`rtl_gen.protocol`, whose :class:`~rtl_gen.protocol.HostClient` is the host side.  The
design answers every frame; bytes received while it is executing a command or sending a
reply are dropped (the protocol is strictly request, then reply).

An INFER's cycles are counted from the cycle the first input code enters the network to
the cycle the batch's last class is known, so they are the network's latency for one batch,
UART time excluded.  A BENCH feeds the input buffer's batch ``count`` times back to back
(the count, held in the frame's argument bytes, counts down as each batch goes in; a small
counter of batches in flight says when the last class is out) and counts the same way, from
the first code of the first batch to the last class of the last.

Lean where it costs nothing: the payload's input codes are written at the feed's own
address counter, the argument bytes are a three-byte shift register, the reply's length and
byte index are as wide as the longest reply, a READ's value is selected as it is sent, and
with one row a batch the logits go to the reply buffer in the order they come.

A network with convolution, pooling or flatten layers runs on a
:class:`~rtl_gen.hw.conv.ConvNetworkEngine` (one image a batch, arrays of one row): the
input buffer holds one image, ``features`` codes in HWC order (784 for a 28x28 MNIST
image), streamed one code a cycle into the window unit of its first layer.
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from typing import TYPE_CHECKING

import numpy as np
from amaranth import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .. import protocol as P
from ..design.network import Network
from .conv import ConvNetworkEngine, held_back, plan_conv_chain, stage_batch_cycles
from .network import ChainPlan, NetworkEngine, plan_network
from .uart import UartRx, UartTx, divisor_for

if TYPE_CHECKING:
    from .layer import ArrayConfig

__all__ = ["DEFAULT_TIMEOUT_S", "HostLinkCore", "HostLinkPlan", "network_id"]

#: Default idle time after which a frame that stopped short is answered with TIMEOUT.
DEFAULT_TIMEOUT_S = 0.05


def network_id(net: Network) -> int:
    """A 32-bit fingerprint of a network (CRC-32 of its name, weight codes, biases and
    requantization constants) for the INFO reply, so a host can tell which bundle a board
    holds."""
    crc = zlib.crc32(net.name.encode())
    for layer in net.layers:  # pooling and flatten layers have no constants
        for a in (getattr(layer, f, None) for f in ("codes", "bias", "requant_multiplier",
                                                    "requant_shift")):
            if a is not None:
                crc = zlib.crc32(np.ascontiguousarray(a, dtype=np.int64).tobytes(), crc)
    return crc


def _crc8_matrix() -> list[list[int]]:
    """For each bit of the CRC-8/SMBUS state after one byte, the bits of ``crc ^ byte`` that
    XOR into it (the update is linear over GF(2))."""
    rows = [[] for _ in range(8)]
    for j in range(8):
        out = P.crc8(bytes([1 << j]))  # the response to one input bit (initial crc 0)
        for i in range(8):
            if (out >> i) & 1:
                rows[i].append(j)
    return rows


_CRC8_MATRIX = _crc8_matrix()


def _crc8_next(crc, byte):
    """CRC-8/SMBUS of one more byte, as logic: one XOR of a few bits per output bit."""
    d = crc ^ byte
    bits = []
    for taps in _CRC8_MATRIX:
        v = d[taps[0]]
        for t in taps[1:]:
            v = v ^ d[t]
        bits.append(v)
    return Cat(*bits)


@dataclasses.dataclass(frozen=True, eq=False)
class HostLinkPlan:
    """What a :class:`HostLinkCore` is built from, validated before any hardware exists.

    Parameters
    ----------
    net:
        The network.
    arrays:
        Per-layer array configurations (``None``: the defaults); the plan holds them
        resolved (:func:`~rtl_gen.hw.network.plan_network`; for a network with convolution,
        pooling or flatten layers :func:`~rtl_gen.hw.conv.conv_arrays`, ``None`` for the
        layers without weights).
    divisor:
        Clock cycles per UART bit (see :func:`~rtl_gen.hw.uart.divisor_for`), at least 4.
    timeout_cycles:
        Idle cycles after which a frame that stopped short, or a run of stray bytes, is
        answered (at least 12 bit periods).
    design_id:
        32-bit value the INFO reply carries, so a host can check which design it talks to.
    counters:
        Whether the network's layers count their batches' cycles; without, the per-layer
        words of the CYCLES reply read 0 (the INFER latency and the cycles since reset are
        counted either way).

    Raises
    ------
    TypeError, ValueError
        For a network the host link cannot carry (inputs wider than a byte, more than 256
        classes), a divisor or timeout out of range, or arrays the network engine refuses
        (the message says which).
    """

    net: Network
    arrays: tuple[ArrayConfig, ...] | None = None
    _: dataclasses.KW_ONLY
    divisor: int
    timeout_cycles: int
    design_id: int = 0
    counters: bool = True
    #: The validated chain of a network with convolutions (``None`` for a dense one).
    chain: ChainPlan | None = dataclasses.field(default=None, init=False, repr=False)

    def __post_init__(self):
        net = self.net
        if not isinstance(self.counters, bool):
            raise TypeError(f"counters must be True or False, not {self.counters!r}")
        chain = None
        if net.is_dense:
            arrays, _ = plan_network(net, self.arrays)  # the engine's own checks
        else:  # convolutions: one image at a time, one code a cycle
            chain = plan_conv_chain(net, self.arrays, counters=self.counters)
            arrays = chain.configs
        object.__setattr__(self, "chain", chain)
        inp, last = net.input, net.layers[-1]
        if inp.bits > 8:
            raise ValueError(f"the host link sends one byte per input code; the input has "
                             f"{inp.bits} bits")
        if last.out_features > 256:
            raise ValueError(f"the host link sends one byte per class; the network has "
                             f"{last.out_features} classes")
        if int(self.divisor) != self.divisor or self.divisor < 4:
            raise ValueError(f"the UART divisor must be a whole number of at least 4 cycles "
                             f"per bit, not {self.divisor!r}")
        if self.timeout_cycles < 12 * self.divisor:
            raise ValueError(f"timeout_cycles ({self.timeout_cycles}) must be at least 12 bit "
                             f"periods ({12 * self.divisor})")
        for name, value in (("arrays", arrays), ("divisor", int(self.divisor)),
                            ("timeout_cycles", int(self.timeout_cycles)),
                            ("design_id", int(self.design_id) & 0xFFFFFFFF)):
            object.__setattr__(self, name, value)

    @classmethod
    def for_clock(cls, net: Network, arrays=None, *, clk_hz: float, baud: int = 115200,
                  timeout_s: float = DEFAULT_TIMEOUT_S, design_id: int = 0,
                  counters: bool = True) -> HostLinkPlan:
        """The plan for a ``clk_hz`` clock and a ``baud`` UART.

        Raises
        ------
        ValueError
            Also when the clock cannot be divided to ``baud`` (see
            :func:`~rtl_gen.hw.uart.divisor_for`).
        """
        div = divisor_for(clk_hz, baud)
        return cls(net, arrays, divisor=div,
                   timeout_cycles=max(12 * div, round(timeout_s * clk_hz)),
                   design_id=design_id, counters=counters)

    @property
    def rows(self) -> int:
        return self.arrays[0].rows if self.chain is None else self.chain.rows

    @property
    def features(self) -> int:
        return self.net.input.features

    @property
    def classes(self) -> int:
        return self.net.layers[-1].out_features

    def engine(self) -> NetworkEngine | ConvNetworkEngine:
        """The network's engine (a new one each call)."""
        if self.chain is not None:
            return ConvNetworkEngine.from_plan(self.chain)
        return NetworkEngine(self.net, self.arrays, counters=self.counters)

    @property
    def layer_cycles(self) -> tuple[int, ...]:
        """Model: what each layer's word of the CYCLES reply reads after a batch (with
        counters)."""
        if self.chain is not None:
            return tuple(stage_batch_cycles(t) for t in self.chain.timings)
        return tuple(t.batch_cycles for t in plan_network(self.net, self.arrays)[1])

    @property
    def unchecked_layers(self) -> tuple[int, ...]:
        """Layers whose CYCLES word :attr:`layer_cycles` does not predict (pooling and
        flatten, which have no counter, and stages a slower later one holds back)."""
        if self.chain is not None:
            return held_back(self.chain.timings)
        return ()

    @property
    def logit_bytes(self) -> int:
        return math.ceil(self.net.layers[-1].acc_bits / 8)

    @property
    def registers(self) -> tuple[P.Register, ...]:
        """The design's registers (:func:`rtl_gen.protocol.design_registers`)."""
        return P.design_registers(self.net)

    def info(self) -> P.DesignInfo:
        """What the design answers to INFO."""
        return P.DesignInfo(P.PROTOCOL_VERSION, self.rows, self.features, self.classes,
                            self.net.input.bits, self.net.input.signed, self.logit_bytes,
                            len(self.net.layers), self.design_id)


class HostLinkCore(wiring.Component):
    """A :class:`NetworkEngine` (or, for a network with convolutions, a
    :class:`~rtl_gen.hw.conv.ConvNetworkEngine`) driven through the UART host link.

    Built from a validated :class:`HostLinkPlan` (so a refused design raises before any
    hardware object exists): ``HostLinkCore(plan)``, or :meth:`for_divisor` /
    :meth:`for_clock`, which make the plan first.

    Members
    -------
    rx : In(1)
    tx : Out(1)
    leds : Out(4)
        0: heartbeat (bit 24 of the cycle counter); 1: an INFER is running; 2: the last
        frame was answered with an error; 3: a frame is being received.
    """

    def __init__(self, plan: HostLinkPlan):
        if not isinstance(plan, HostLinkPlan):
            raise TypeError(f"HostLinkCore is built from a HostLinkPlan, not a "
                            f"{type(plan).__name__}; use "
                            "HostLinkCore.for_divisor or HostLinkCore.for_clock")
        self._plan = plan
        self._engine = plan.engine()
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1), "leds": Out(4)})

    @classmethod
    def for_divisor(cls, net: Network, arrays=None, *, divisor: int, timeout_cycles: int,
                    design_id: int = 0) -> HostLinkCore:
        """The core with ``divisor`` clock cycles per UART bit (see :class:`HostLinkPlan`)."""
        return cls(HostLinkPlan(net, arrays, divisor=divisor, timeout_cycles=timeout_cycles,
                                design_id=design_id))

    @classmethod
    def for_clock(cls, net: Network, arrays=None, *, clk_hz: float, baud: int = 115200,
                  timeout_s: float = DEFAULT_TIMEOUT_S, design_id: int = 0,
                  counters: bool = True) -> HostLinkCore:
        """The core for a ``clk_hz`` clock and a ``baud`` UART (see
        :meth:`HostLinkPlan.for_clock`)."""
        return cls(HostLinkPlan.for_clock(net, arrays, clk_hz=clk_hz, baud=baud,
                                          timeout_s=timeout_s, design_id=design_id,
                                          counters=counters))

    @property
    def plan(self) -> HostLinkPlan:
        return self._plan

    @property
    def divisor(self) -> int:
        return self._plan.divisor

    @property
    def timeout_cycles(self) -> int:
        return self._plan.timeout_cycles

    @property
    def design_id(self) -> int:
        return self._plan.design_id

    @property
    def rows(self) -> int:
        return self._plan.rows

    @property
    def features(self) -> int:
        return self._plan.features

    @property
    def classes(self) -> int:
        return self._plan.classes

    @property
    def logit_bytes(self) -> int:
        return self._plan.logit_bytes

    @property
    def engine(self) -> NetworkEngine | ConvNetworkEngine:
        return self._engine

    def info(self) -> P.DesignInfo:
        """What the design answers to INFO."""
        return self._plan.info()

    def elaborate(self, platform):
        m = Module()
        m.submodules.engine = eng = self._engine
        m.submodules.urx = urx = UartRx(self.divisor)
        m.submodules.utx = utx = UartTx(self.divisor)
        m.d.comb += [urx.rx.eq(self.rx), self.tx.eq(utx.tx)]

        rows, feats, n, lb = self.rows, self.features, self.classes, self.logit_bytes
        n_in = rows * feats
        n_log = rows * n
        n_layers = len(self._plan.net.layers)
        expected = {P.CMD_INFO: 0, P.CMD_INFER: n_in, P.CMD_CYCLES: 0, P.CMD_WRITE: 3,
                    P.CMD_READ: 1, P.CMD_BENCH: 2}
        infer_len = rows + n_log * lb + 4
        reply_max = max(P.INFO_BYTES, infer_len, 8 + 4 * n_layers, 2)

        # -- buffers ---------------------------------------------------------------------
        m.submodules.inbuf = inbuf = Memory(shape=8, depth=max(n_in, 2), init=[])
        in_w, in_r = inbuf.write_port(), inbuf.read_port()
        m.submodules.logbuf = logbuf = Memory(shape=8, depth=max(n_log * lb, 2), init=[])
        log_w, log_r = logbuf.write_port(), logbuf.read_port()

        # -- receiver: frame parser ------------------------------------------------------
        byte, got = urx.data, urx.valid
        cmd = Signal(8)
        len_lo = Signal(8)
        crc = Signal(8)            # the request's checksum, then the reply's
        crc_in = Signal(8)
        crc_next = _crc8_next(crc, crc_in)
        # the payload's last three bytes (WRITE: register, value; READ: register in args[2];
        # BENCH: count in args[1:])
        args = [Signal(8, name=f"arg{i}") for i in range(3)]
        idle = Signal(range(self.timeout_cycles + 1))
        timed_out = Signal()
        with m.If(got):
            m.d.sync += idle.eq(0)
        with m.Elif(idle != self.timeout_cycles):
            m.d.sync += idle.eq(idle + 1)
        m.d.comb += timed_out.eq(idle == self.timeout_cycles)

        # reply: status, command, payload length and source; `start` hands it to the sender
        r_status = Signal(range(max(P.ERRORS) + 1))
        r_cmd = cmd                # the parser holds the command until the reply is sent
        r_len = Signal(range(reply_max + 1))
        start = Signal()
        sending = Signal()
        start_infer = Signal()
        infer_done = Signal()
        busy = Signal()            # an INFER is running
        # the registers (protocol.REGISTER_MAP): address -> (register, its value)
        regs = self._registers(m, eng)
        err_led = Signal()

        def reply(status, length_=0):
            # `start` is registered: the sender sees it a cycle later (off the parser's path)
            m.d.sync += [r_status.eq(status), r_len.eq(length_),
                         err_led.eq(status != 0), start.eq(1)]

        m.d.sync += start.eq(0)
        # whether the command is known and its length right, decided as the length's second
        # byte arrives
        known = Signal()
        len_ok = Signal()
        rem = Signal(16)           # payload bytes still to come
        feed = Signal(range(max(n_in, 2)))  # the input buffer's address

        with m.FSM(name="rx_fsm") as rx_fsm:
            with m.State("IDLE"):
                with m.If(got):
                    with m.If(byte == P.REQUEST_SYNC):
                        m.d.sync += [crc.eq(0), cmd.eq(0)]
                        m.next = "CMD"
                    with m.Else():
                        m.d.sync += cmd.eq(0)
                        m.next = "GARBAGE"
            with m.State("GARBAGE"):
                with m.If(timed_out):
                    reply(P.STATUS["SYNC"])
                    m.next = "REPLY"
            for state, nxt in (("CMD", "LEN0"), ("LEN0", "LEN1"), ("LEN1", None),
                               ("PAYLOAD", None), ("CRC", None)):
                with m.State(state):
                    with m.If(got):
                        m.d.sync += crc.eq(crc_next)
                        if state == "CMD":
                            m.d.sync += cmd.eq(byte)
                            m.next = nxt
                        elif state == "LEN0":
                            m.d.sync += len_lo.eq(byte)
                            m.next = nxt
                        elif state == "LEN1":
                            length = Cat(len_lo, byte)
                            m.d.sync += [feed.eq(0), rem.eq(length), known.eq(0),
                                         len_ok.eq(0)]
                            with m.Switch(cmd):
                                for code, size in expected.items():
                                    with m.Case(code):
                                        m.d.sync += [known.eq(1), len_ok.eq(length == size)]
                            with m.If(length == 0):
                                m.next = "CRC"
                            with m.Else():
                                m.next = "PAYLOAD"
                        elif state == "PAYLOAD":
                            # an INFER's codes go to the input buffer at the address the
                            # feed starts from, which is 0 again after the last
                            m.d.sync += [rem.eq(rem - 1), args[0].eq(args[1]),
                                         args[1].eq(args[2]), args[2].eq(byte)]
                            with m.If((cmd == P.CMD_INFER) & len_ok):
                                m.d.comb += in_w.en.eq(1)
                                m.d.sync += feed.eq(Mux(feed == n_in - 1, 0, feed + 1))
                            m.d.comb += [in_w.addr.eq(feed), in_w.data.eq(byte)]
                            with m.If(rem == 1):
                                m.next = "CRC"
                        else:  # CRC
                            with m.If(byte != crc):
                                reply(P.STATUS["BAD_CRC"])
                                m.next = "REPLY"
                            with m.Elif(~known):
                                reply(P.STATUS["BAD_CMD"])
                                m.next = "REPLY"
                            with m.Elif(~len_ok):
                                reply(P.STATUS["BAD_LEN"])
                                m.next = "REPLY"
                            with m.Else():
                                m.next = "EXEC"
                    with m.Elif(timed_out):
                        reply(P.STATUS["TIMEOUT"])
                        m.next = "REPLY"
            with m.State("EXEC"):
                with m.Switch(cmd):
                    with m.Case(P.CMD_INFO):
                        reply(0, P.INFO_BYTES)
                        m.next = "REPLY"
                    with m.Case(P.CMD_INFER, P.CMD_BENCH):
                        m.d.comb += start_infer.eq(1)
                        m.next = "INFER"
                    with m.Case(P.CMD_CYCLES):
                        reply(0, 8 + 4 * n_layers)
                        m.next = "REPLY"
                    with m.Case(P.CMD_WRITE):
                        with m.Switch(args[0]):
                            for addr, (r, reg) in regs.items():
                                if r.access != "rw":
                                    continue  # read-only: BAD_REG
                                with m.Case(addr):
                                    m.d.sync += reg.eq(Cat(args[1], args[2]))
                                    reply(0, 0)
                            with m.Default():
                                reply(P.STATUS["BAD_REG"])
                        m.next = "REPLY"
                    with m.Default():  # READ: the value is selected as it is sent
                        with m.Switch(args[2]):
                            for addr in regs:
                                with m.Case(addr):
                                    reply(0, 2)
                            with m.Default():
                                reply(P.STATUS["BAD_REG"])
                        m.next = "REPLY"
            with m.State("INFER"):
                with m.If(infer_done):
                    reply(0, infer_len)
                    m.next = "REPLY"
            with m.State("REPLY"):
                # `start` was set on the way in; wait until the sender has taken it and finished
                with m.If(~start & ~sending):
                    m.next = "IDLE"
        receiving = Signal()
        m.d.comb += receiving.eq(~rx_fsm.ongoing("IDLE") & ~rx_fsm.ongoing("REPLY")
                                 & ~rx_fsm.ongoing("INFER") & ~rx_fsm.ongoing("EXEC"))

        # -- inference: feed the input buffer, collect logits and classes ----------------
        feeding = Signal()
        # BENCH: its count (0 means 65536), counted down in place as batches are fed, and
        # the batches fed whose classes are still to come
        bench_n = Cat(args[1], args[2])
        last_batch = (cmd != P.CMD_BENCH) | (bench_n == 1)
        in_flight = Signal(6)
        fed = Signal()             # a batch's last code goes in
        done_batch = Signal()      # a batch's last class comes out
        latency = Signal(32)
        cls_regs = Array(Signal(8, name=f"cls{r}") for r in range(rows))
        cls_n = Signal(range(rows + 1))
        accept = eng.i.valid & eng.i.ready
        at_end = feed == n_in - 1
        m.d.comb += [in_r.addr.eq(Mux(accept, Mux(at_end, 0, feed + 1), feed)),
                     eng.i.valid.eq(feeding), eng.i.payload.eq(in_r.data),
                     fed.eq(accept & at_end)]
        with m.If(start_infer):
            m.d.sync += [feed.eq(0), feeding.eq(1), busy.eq(1), latency.eq(0)]
        with m.Elif(accept):
            m.d.sync += feed.eq(Mux(at_end, 0, feed + 1))
            with m.If(at_end):
                with m.If(last_batch):
                    m.d.sync += feeding.eq(0)
                with m.Else():
                    m.d.sync += bench_n.eq(bench_n - 1)
        with m.If(busy):
            m.d.sync += latency.eq(latency + 1)
        with m.If(eng.cls.valid & busy):
            m.d.sync += cls_regs[cls_n].eq(eng.cls.payload)
            if rows > 1:
                m.d.sync += cls_n.eq(Mux(cls_n == rows - 1, 0, cls_n + 1))
            m.d.comb += done_batch.eq(cls_n == rows - 1)
        m.d.sync += in_flight.eq(in_flight + fed - done_batch)
        m.d.comb += infer_done.eq(busy & ~feeding & (in_flight == 0))
        with m.If(infer_done):
            m.d.sync += busy.eq(0)

        # logits: the network emits (tile, row, column); the reply wants image-major order,
        # which for one row a batch is the order they come in
        # a logit is written a byte a cycle while the engine holds it (a stream's payload
        # stays until it is taken), and taken with its last byte
        value = Signal(8 * lb)
        b_i = Signal(range(max(lb, 2)))
        m.d.comb += [value.eq(eng.o.payload.as_signed()),  # sign-extended to lb bytes
                     eng.o.ready.eq(b_i == lb - 1)]
        with m.If(eng.o.valid):
            m.d.comb += [log_w.en.eq(1), log_w.data.eq(value.word_select(b_i, 8))]
            m.d.sync += b_i.eq(Mux(b_i == lb - 1, 0, b_i + 1))
        if rows == 1:
            wptr = Signal(range(max(n_log * lb, 2)))
            m.d.comb += log_w.addr.eq(wptr)
            with m.If(eng.o.valid):
                m.d.sync += wptr.eq(Mux(wptr == n_log * lb - 1, 0, wptr + 1))
        else:
            cols = eng.arrays[-1].cols
            t_i = Signal(range(max(-(-n // cols), 2)))
            r_i = Signal(range(max(rows, 2)))
            c_i = Signal(range(max(cols, 2)))
            ch = Signal(range(n + cols + 1))
            m.d.comb += ch.eq(t_i * cols + c_i)
            m.d.comb += log_w.addr.eq((r_i * n + ch) * lb + b_i)
            with m.If(eng.o.valid & eng.o.ready):
                last_col = (c_i == cols - 1) | (ch == n - 1)
                with m.If(last_col):
                    m.d.sync += c_i.eq(0)
                    with m.If(r_i == rows - 1):
                        m.d.sync += [r_i.eq(0), t_i.eq(Mux(ch == n - 1, 0, t_i + 1))]
                    with m.Else():
                        m.d.sync += r_i.eq(r_i + 1)
                with m.Else():
                    m.d.sync += c_i.eq(c_i + 1)

        # -- sender ----------------------------------------------------------------------
        cyc_snap = Signal(32)
        with m.If(start & (cmd == P.CMD_CYCLES)):
            m.d.sync += cyc_snap.eq(eng.cycles)
        info_bytes = Array(Const(b, 8) for b in self.info().pack())
        cycle_bytes = Array([*(latency.word_select(i, 8) for i in range(4)),
                             *(cyc_snap.word_select(i, 8) for i in range(4)),
                             *(eng.layer_cycles[j].word_select(i, 8)
                               for j in range(n_layers) for i in range(4))])
        pidx = Signal(range(reply_max + 1))
        pay = Signal(8)
        in_cls, in_log, lat_i = Signal(), Signal(), Signal(2)  # which part of an INFER reply
        m.d.comb += log_r.addr.eq(pidx - rows)
        with m.Switch(r_cmd):
            with m.Case(P.CMD_INFO):
                m.d.comb += pay.eq(info_bytes[pidx])
            with m.Case(P.CMD_INFER, P.CMD_BENCH):
                with m.If(in_cls):
                    m.d.comb += pay.eq(cls_regs[pidx])
                with m.Elif(in_log):
                    m.d.comb += pay.eq(log_r.data)
                with m.Else():
                    m.d.comb += pay.eq(latency.word_select(lat_i, 8))
            with m.Case(P.CMD_CYCLES):
                m.d.comb += pay.eq(cycle_bytes[pidx])
            with m.Default():  # READ
                with m.Switch(args[2]):
                    for addr, (_, reg) in regs.items():
                        with m.Case(addr):
                            m.d.comb += pay.eq(reg.word_select(pidx[0], 8))

        out = Signal(8)
        r_len16 = Signal(16)
        m.d.comb += r_len16.eq(r_len)
        pay_r = Signal(8)
        m.d.comb += [utx.i.payload.eq(out)]
        with m.FSM(name="tx_fsm") as tx_fsm:
            with m.State("IDLE"):
                with m.If(start):
                    m.next = "SYNC"
            header = (("SYNC", Const(P.REPLY_SYNC, 8), "STATUS"),
                      ("STATUS", r_status, "CMD"),
                      ("CMD", r_cmd, "LEN0"),
                      ("LEN0", r_len16[:8], "LEN1"),
                      ("LEN1", r_len16[8:], None))
            for state, byte_, nxt in header:
                with m.State(state):
                    m.d.comb += [out.eq(byte_), utx.i.valid.eq(1)]
                    with m.If(utx.i.ready):
                        if state == "SYNC":
                            m.d.sync += crc.eq(0)
                        else:
                            m.d.sync += crc.eq(crc_next)
                        m.d.sync += pidx.eq(0)
                        if nxt is not None:
                            m.next = nxt
                        else:
                            with m.If(r_len == 0):
                                m.next = "CRC"
                            with m.Else():
                                m.next = "FETCH"
            with m.State("FETCH"):  # one cycle for the reply buffer's read port
                m.d.sync += [in_cls.eq(pidx < rows), in_log.eq(pidx < rows + n_log * lb),
                             lat_i.eq((pidx - rows - n_log * lb)[:2])]
                m.next = "SELECT"
            with m.State("SELECT"):  # one for the byte's multiplexer, registered
                m.d.sync += pay_r.eq(pay)
                m.next = "PAYLOAD"
            with m.State("PAYLOAD"):
                m.d.comb += [out.eq(pay_r), utx.i.valid.eq(1)]
                with m.If(utx.i.ready):
                    m.d.sync += [crc.eq(crc_next), pidx.eq(pidx + 1)]
                    with m.If(pidx == r_len - 1):
                        m.next = "CRC"
                    with m.Else():
                        m.next = "FETCH"
            with m.State("CRC"):
                m.d.comb += [out.eq(crc), utx.i.valid.eq(1)]
                with m.If(utx.i.ready):
                    m.next = "IDLE"
        m.d.comb += sending.eq(~tx_fsm.ongoing("IDLE"))
        # one checksum unit: the parser's bytes, or while a reply goes out its bytes
        m.d.comb += crc_in.eq(Mux(sending, out, byte))

        m.d.comb += self.leds.eq(Cat(eng.cycles[24], busy, err_led, receiving))
        return m

    def _registers(self, m: Module, eng: NetworkEngine | ConvNetworkEngine) -> dict:
        """The design's registers as logic: address -> (:class:`~rtl_gen.protocol.Register`,
        a ``width``-bit signal starting at ``reset``, or the constant ``reset`` when
        read-only), each driving the engine port it controls."""
        ports = {}
        if eng.has_tr:  # the term-revealing controls of the network's TR layers
            ports = {"TR_MODE": eng.tr_mode, "TR_K": eng.tr_k, "TR_S": eng.tr_s}
        regs = {}
        for r in self._plan.registers:
            if r.access == "rw":
                value = Signal(r.width, name=f"reg_{r.name.lower()}", init=r.reset)
            else:
                value = Const(r.reset, r.width)
            port = ports.get(r.name)
            if port is not None:
                if len(port) != r.width:
                    raise ValueError(f"register {r.name} is {r.width} bits wide but drives "
                                     f"a {len(port)}-bit engine port")
                m.d.comb += port.eq(value)
            regs[r.address] = (r, value)
        return regs
