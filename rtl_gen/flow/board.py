"""What the flow knows about one FPGA board, and the top level it builds around a core.

A *core* is an Amaranth ``wiring.Component`` with the signature
``{"rx": In(1), "tx": Out(1), "leds": Out(4)}``, clocked by ``sync``, built for a given clock
frequency by a factory ``make_core(clk_freq_hz) -> Component``.  :meth:`Board.top` picks the
PLL setting closest to the requested frequency, builds the core at the frequency the PLL
really makes, and returns a :class:`BoardTop`: PLL, reset (held until the PLL locks, and
while the board's reset button is pressed) and the core, with ``rx``/``tx`` on the board's
UART pins and ``leds`` on its LEDs.  LED and button polarity is amaranth-boards' business
(its resources carry the inversion).

The boards themselves are in the top-level ``boards`` package (``boards.get_board``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from amaranth.build import Resource
from amaranth.hdl import Elaboratable, Module, Shape
from amaranth.lib import io, wiring

from ..devices import Device, get_device
from .pll import (
    Ecp5Pll,
    Ice40Pll,
    ecp5_pll,
    ice40_pll,
    pll_domain,
)

__all__ = ["CORE_SIGNATURE", "Board", "BoardTop", "CoreFactory", "Pin"]

#: ``make_core(clk_freq_hz) -> Component`` with the core signature.
CoreFactory = Callable[[float], wiring.Component]


@dataclasses.dataclass(frozen=True)
class Pin:
    """One amaranth-boards resource (``name``, ``number``), or one subsignal of it."""

    name: str
    number: int = 0
    subsignal: str | None = None

    def __str__(self) -> str:
        sub = f".{self.subsignal}" if self.subsignal else ""
        return f"{self.name}#{self.number}{sub}"


@dataclasses.dataclass(frozen=True)
class Board:
    """One board.

    Members
    -------
    name:
        Registry name (``icebreaker``, ``ulx3s``, ``orangecrab``).
    device:
        The rtl_gen device name (:mod:`rtl_gen.devices`): ``up5k``, ``ecp5-85f``, ``ecp5-25f``.
    platform_class:
        The amaranth-boards platform.
    osc_mhz:
        The oscillator's frequency (the platform's default clock).
    default_mhz:
        The target frequency when none is asked for (the PLL gets as close as it can; the
        build report says whether timing met it).
    uart:
        The resource with ``rx`` (into the FPGA) and ``tx`` subsignals.
    leds:
        Up to four LEDs, ``leds[0]`` first; core LED bits beyond them are left unconnected.
    reset_button:
        The button that resets the core while pressed, or ``None``.
    extra_resources:
        Resources added to the platform (e.g. a UART on header pins).
    pll_pad:
        iCE40: take the PLL's reference straight from the oscillator pad (``SB_PLL40_PAD``).
    nextpnr_args:
        Extra nextpnr arguments (the ECP5 speed grade).
    pack_args:
        Extra ``icepack``/``ecppack`` arguments.
    notes:
        One line for reports: where the UART and LEDs are.
    """

    name: str
    device: str
    platform_class: type
    osc_mhz: float
    default_mhz: float
    uart: Pin
    leds: tuple[Pin, ...]
    reset_button: Pin | None = None
    extra_resources: tuple[Resource, ...] = ()
    pll_pad: bool = False
    nextpnr_args: tuple[str, ...] = ()
    pack_args: tuple[str, ...] = ()
    notes: str = ""

    @property
    def rtl_device(self) -> Device:
        return get_device(self.device)

    @property
    def family(self) -> str:
        return self.rtl_device.family

    def platform(self):
        """A fresh amaranth-boards platform instance with :attr:`extra_resources` added."""
        plat = self.platform_class()
        if self.extra_resources:
            plat.add_resources(list(self.extra_resources))
        return plat

    def pll(self, target_mhz: float | None = None) -> Ice40Pll | Ecp5Pll:
        """The PLL setting closest to ``target_mhz`` (default :attr:`default_mhz`).

        Raises
        ------
        ValueError
            When the PLL cannot make anything near it.
        """
        target = float(self.default_mhz if target_mhz is None else target_mhz)
        calc = ice40_pll if self.family == "ice40" else ecp5_pll
        return calc(self.osc_mhz, target)

    def top(self, make_core: CoreFactory, target_mhz: float | None = None) -> BoardTop:
        """PLL + reset + ``make_core(pll frequency in Hz)`` wired to this board's pins."""
        target = float(self.default_mhz if target_mhz is None else target_mhz)
        pll = self.pll(target)
        core = make_core(pll.fout_mhz * 1e6)
        _check_core(core)
        return BoardTop(self, core, pll, target)


#: The signature every core has (initial values aside).
CORE_SIGNATURE = wiring.Signature({"rx": wiring.In(1), "tx": wiring.Out(1),
                                   "leds": wiring.Out(4)})


def _ports(sig: wiring.Signature) -> dict:
    """Name -> (flow, shape) of each port: initial values do not matter (an idle UART line
    is high, so a core may start ``tx`` at 1)."""
    return {name: (m.flow, Shape.cast(m.shape)) if m.is_port else (m.flow, None)
            for name, m in sig.members.items()}


def _check_core(core) -> None:
    if isinstance(core, Elaboratable):
        core._MustUse__silence = True  # a refused core is not an unused one
    if not isinstance(core, wiring.Component):
        raise TypeError(f"make_core must return a wiring.Component, not {core!r}")
    if _ports(core.signature) != _ports(CORE_SIGNATURE):
        raise TypeError(f"the core's signature must be exactly {CORE_SIGNATURE!r}; "
                        f"it is {core.signature!r}")
    core._MustUse__silence = False


class BoardTop(Elaboratable):
    """The top level of one board build (see :meth:`Board.top`).

    Members
    -------
    board, core, pll:
        What it was built from; ``pll.fout_mhz`` is the frequency the core runs at.
    target_mhz:
        The frequency asked for.
    """

    def __init__(self, board: Board, core: wiring.Component, pll: Ice40Pll | Ecp5Pll,
                 target_mhz: float):
        self.board = board
        self.core = core
        self.pll = pll
        self.target_mhz = float(target_mhz)

    @property
    def freq_mhz(self) -> float:
        return self.pll.fout_mhz

    def elaborate(self, platform):
        board = self.board
        m = Module()

        def buffer(direction, port, name):
            m.submodules[name] = buf = io.Buffer(direction, port)
            return buf

        clk = platform.request(platform.default_clk, 0, dir="-")
        clk_in = clk.io if board.pll_pad else buffer("i", clk, "clk_buf").i
        reset = None
        if board.reset_button is not None:
            btn = platform.request(board.reset_button.name, board.reset_button.number, dir="-")
            reset = buffer("i", btn, "reset_button_buf").i
        pll_domain(m, self.pll, clk_in, reset=reset, pad=board.pll_pad)

        m.submodules.core = core = self.core
        uart = platform.request(board.uart.name, board.uart.number, dir="-")
        m.d.comb += [core.rx.eq(buffer("i", uart.rx, "uart_rx_buf").i),
                     buffer("o", uart.tx, "uart_tx_buf").o.eq(core.tx)]
        requested = {}  # a resource is requested once, however many LEDs it holds
        for bit, pin in enumerate(board.leds[:4]):
            key = (pin.name, pin.number)
            if key not in requested:
                requested[key] = platform.request(pin.name, pin.number, dir="-")
            port = requested[key]
            if pin.subsignal is not None:
                port = getattr(port, pin.subsignal)
            m.d.comb += buffer("o", port, f"led{bit}_buf").o.eq(core.leds[bit])
        return m
