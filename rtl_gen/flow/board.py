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
import re
from collections.abc import Callable

from amaranth.build import Resource, ResourceError, Subsignal
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

__all__ = ["CORE_SIGNATURE", "STANDARD_BAUDS", "Board", "BoardTop", "CoreFactory", "Pin",
           "board_baud"]

#: The standard UART rates a board's default is chosen from, fastest first (every one of
#: them an exact rate of the FTDI bridges, whose baud generator divides 3 MHz).
STANDARD_BAUDS = (3_000_000, 2_000_000, 1_500_000, 1_000_000, 921_600, 500_000, 460_800,
                  230_400, 115_200, 57_600, 38_400, 19_200, 9_600)

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
        Registry name (``boards.REGISTRY``): lower-case letters, digits, ``-`` and ``_``.
    device:
        The rtl_gen device name (:mod:`rtl_gen.devices`), e.g. ``up5k``, ``ecp5-85f``.
    platform_class:
        The amaranth-boards platform.
    osc_mhz:
        The oscillator's frequency (the platform's default clock).
    default_mhz:
        The target frequency when none is asked for (the PLL gets as close as it can; the
        build report says whether timing met it).
    conv_mhz:
        The target frequency of a network with convolution, pooling or flatten layers when
        none is asked for (its line buffers and window units place slower than the dense
        engines); ``None``: :attr:`default_mhz`.
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
    max_baud:
        The fastest UART rate the board's USB-serial bridge takes (3 Mbaud for the FTDI
        FT2232H and FT231X); a build's default rate is :func:`board_baud`.
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
    conv_mhz: float | None = None
    max_baud: int = 3_000_000

    def __post_init__(self):
        if not isinstance(self.name, str) or not re.fullmatch(r"[a-z0-9][a-z0-9_-]*",
                                                              self.name):
            raise ValueError(f"board name must be lower-case letters, digits, '-' and '_', "
                             f"not {self.name!r}")
        where = f"board {self.name}"
        try:
            get_device(self.device)
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None
        if not isinstance(self.platform_class, type):
            raise TypeError(f"{where}: platform_class must be an amaranth-boards platform "
                            f"class, not {self.platform_class!r}")
        for field in ("osc_mhz", "default_mhz", "conv_mhz"):
            value = getattr(self, field)
            if field == "conv_mhz" and value is None:
                continue
            if not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{where}: {field} must be a positive number of MHz, not "
                                 f"{value!r}")
        if not isinstance(self.max_baud, int) or not STANDARD_BAUDS[-1] <= self.max_baud:
            raise ValueError(f"{where}: max_baud must be a whole number of at least "
                             f"{STANDARD_BAUDS[-1]} bits per second, not {self.max_baud!r}")
        if not isinstance(self.uart, Pin):
            raise TypeError(f"{where}: uart must be a Pin, not {self.uart!r}")
        leds = tuple(self.leds)
        if len(leds) > 4 or not all(isinstance(p, Pin) for p in leds):
            raise ValueError(f"{where}: leds must be up to four Pins, not {self.leds!r}")
        object.__setattr__(self, "leds", leds)
        if self.reset_button is not None and not isinstance(self.reset_button, Pin):
            raise TypeError(f"{where}: reset_button must be a Pin or None, not "
                            f"{self.reset_button!r}")

    def check_platform(self) -> None:
        """Check the platform against this record: its default clock runs at
        :attr:`osc_mhz`, and it has the UART (with ``rx`` and ``tx``), the LEDs and the
        reset button named here.

        Raises
        ------
        ValueError
            Naming the first thing that does not match.
        """
        plat = self.platform()
        if abs(plat.default_clk_frequency - self.osc_mhz * 1e6) > 1:
            raise ValueError(f"board {self.name}: the platform's default clock runs at "
                             f"{plat.default_clk_frequency / 1e6:g} MHz, not osc_mhz "
                             f"{self.osc_mhz:g}")
        pins = [("uart", self.uart), *(("led", p) for p in self.leds)]
        if self.reset_button is not None:
            pins.append(("reset_button", self.reset_button))
        for what, pin in pins:
            try:
                res = plat.lookup(pin.name, pin.number)
            except ResourceError:
                raise ValueError(f"board {self.name}: {what} {pin}: the platform has no "
                                 f"resource {pin.name!r} {pin.number}") from None
            subs = {s.name for s in res.ios if isinstance(s, Subsignal)}
            want = {"rx", "tx"} if what == "uart" else (
                {pin.subsignal} if pin.subsignal is not None else set())
            if not want <= subs:
                raise ValueError(f"board {self.name}: {what} {pin}: resource "
                                 f"{pin.name!r} {pin.number} has no "
                                 f"{', '.join(sorted(want - subs))}")

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


def board_baud(board: Board, clk_hz: float) -> int:
    """The default UART rate of ``board`` at a ``clk_hz`` clock: the fastest of
    :data:`STANDARD_BAUDS` up to :attr:`Board.max_baud` whose whole divisor of the clock is
    off by less than 2% (:func:`rtl_gen.hw.uart.divisor_for`), e.g. 3 Mbaud at 24 MHz
    (divisor 8, exact) or at 100 MHz (divisor 33, 1.0% fast).

    Raises
    ------
    ValueError
        When no standard rate suits the clock.
    """
    from ..hw.uart import divisor_for

    for baud in STANDARD_BAUDS:
        if baud > board.max_baud:
            continue
        try:
            divisor_for(clk_hz, baud)
        except ValueError:
            continue
        return baud
    raise ValueError(f"no standard baud rate up to {board.max_baud} suits a "
                     f"{clk_hz / 1e6:g} MHz clock")


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
