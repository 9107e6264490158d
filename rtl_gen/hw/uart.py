"""An 8N1 UART: receiver and transmitter, one clock domain, a fixed bit period in cycles.

The receiver synchronises ``rx`` through two flip-flops, waits for a start bit, checks it
again half a bit later, then samples each data bit in the middle of its period; a byte whose
stop bit is not 1 is dropped (a framing error, counted in ``errors``).  The transmitter
takes one byte per ``i`` transfer and is ready again once its stop bit has been sent.
"""

from __future__ import annotations

from amaranth import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["UartRx", "UartTx", "divisor_for"]


def divisor_for(clk_hz: float, baud: int) -> int:
    """Clock cycles per bit for ``baud`` at ``clk_hz``.

    Raises
    ------
    ValueError
        When the nearest whole divisor is off by more than 2% (a UART's tolerance is about
        half a bit over ten bits), or is below 4 cycles.
    """
    if baud <= 0 or clk_hz <= 0:
        raise ValueError(f"baud rate and clock must be positive, not {baud} and {clk_hz}")
    div = round(clk_hz / baud)
    if div < 4:
        raise ValueError(f"{baud} baud is too fast for a {clk_hz / 1e6:g} MHz clock "
                         "(fewer than 4 cycles per bit)")
    err = abs(clk_hz / div - baud) / baud
    if err > 0.02:
        raise ValueError(f"{baud} baud at {clk_hz / 1e6:g} MHz is off by {err:.1%} "
                         "(more than 2%); choose another baud rate")
    return div


class UartRx(wiring.Component):
    """Receiver: ``rx`` pin in, one ``valid`` pulse per received byte on ``data`` (which
    holds the byte from that pulse until the next byte's first data bit).

    Parameters
    ----------
    divisor:
        Clock cycles per bit (at least 4).
    """

    def __init__(self, divisor: int):
        if divisor < 4:
            raise ValueError(f"divisor must be at least 4, not {divisor}")
        self.divisor = divisor
        super().__init__({
            "rx": In(1, init=1),
            "data": Out(8),
            "valid": Out(1),
            "errors": Out(8),
        })

    def elaborate(self, platform):
        m = Module()
        rx = Signal(init=1)
        m.submodules.sync_rx = FFSynchronizer(self.rx, rx, init=1)
        timer = Signal(range(self.divisor + self.divisor // 2 + 1))
        bits = Signal(4)
        shreg = Signal(8)
        m.d.sync += self.valid.eq(0)
        m.d.comb += self.data.eq(shreg)  # holds until the next byte's first data bit
        with m.FSM():
            with m.State("IDLE"):
                with m.If(~rx):
                    m.d.sync += timer.eq(self.divisor // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    with m.If(rx):  # a glitch, not a start bit
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += [timer.eq(self.divisor - 1), bits.eq(0)]
                        m.next = "DATA"
            with m.State("DATA"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    m.d.sync += [shreg.eq(Cat(shreg[1:], rx)), bits.eq(bits + 1),
                                 timer.eq(self.divisor - 1)]
                    with m.If(bits == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    with m.If(rx):
                        m.d.sync += self.valid.eq(1)
                    with m.Else():
                        m.d.sync += self.errors.eq(self.errors + 1)
                    m.next = "WAIT_IDLE"
            with m.State("WAIT_IDLE"):  # a framing error leaves rx low: wait for the line
                with m.If(rx):
                    m.next = "IDLE"
        return m


class UartTx(wiring.Component):
    """Transmitter: bytes in on the stream ``i``, ``tx`` pin out (idle high)."""

    def __init__(self, divisor: int):
        if divisor < 4:
            raise ValueError(f"divisor must be at least 4, not {divisor}")
        self.divisor = divisor
        super().__init__({
            "i": In(stream.Signature(8)),
            "tx": Out(1, init=1),
        })

    def elaborate(self, platform):
        m = Module()
        shreg = Signal(10, init=0x3FF)
        timer = Signal(range(self.divisor))
        bits = Signal(range(11))
        m.d.comb += [self.tx.eq(shreg[0]), self.i.ready.eq(bits == 0)]
        with m.If(self.i.valid & self.i.ready):
            # stop bit, the byte LSB first, start bit
            m.d.sync += [shreg.eq(Cat(0, self.i.payload, 1)), bits.eq(10),
                         timer.eq(self.divisor - 1)]
        with m.Elif(bits != 0):
            m.d.sync += timer.eq(timer - 1)
            with m.If(timer == 0):
                m.d.sync += [shreg.eq(Cat(shreg[1:], 1)), bits.eq(bits - 1),
                             timer.eq(self.divisor - 1)]
        return m
