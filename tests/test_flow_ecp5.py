"""The ECP5 block RAM output register (rtl_gen.flow.ecp5): the flip-flops right after a
``DP16KD``'s read port move into the port's output register, and only those.

The unit tests build Yosys-JSON modules by hand (one block RAM, its data bits' flip-flops)
and check each condition of the move; the synthesis tests run the flow on a small ROM whose
read data is registered with the read's enable, and on variants where the move must not
happen (the data also read by logic; an enable of its own).
"""

from __future__ import annotations

import copy

import pytest
from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from rtl_gen.flow import Toolchain, ToolNotFoundError, component_verilog, synth
from rtl_gen.flow.ecp5 import absorb_bram_output_registers

CLK, EN, NEN = 2, 3, 4


def _ff(d, q, *, ce=NEN, cemux="CE", clk=CLK, lsr="0", regset="RESET"):
    return {"type": "TRELLIS_FF",
            "parameters": {"CEMUX": cemux, "CLKMUX": "CLK", "GSR": "DISABLED",
                           "LSRMUX": "LSR", "REGSET": regset},
            "port_directions": {"CE": "input", "CLK": "input", "DI": "input",
                                "LSR": "input", "Q": "output"},
            "connections": {"CE": [ce], "CLK": [clk], "DI": [d], "LSR": [lsr], "Q": [q]}}


def _module(n_bits=3, **ff):
    """A block RAM read on net 4 (``~en``, from a LUT4 on net 3 as Yosys writes it) whose
    data bits (nets 100..) each drive one flip-flop (outputs 20..), loading on net 4."""
    dirs = {f"DOA{k}": "output" for k in range(18)} | {f"DOB{k}": "output" for k in range(18)}
    conn = {"CLKA": [CLK], "CEA": [NEN], "OCEA": ["1"], "CLKB": ["0"], "CEB": ["0"],
            "OCEB": ["1"], **{f"DOA{k}": [100 + k] for k in range(18)},
            **{f"DOB{k}": [140 + k] for k in range(18)}}
    cells = {"ram": {"type": "DP16KD", "parameters": {"REGMODE_A": "NOREG",
                                                       "REGMODE_B": "NOREG"},
                     "port_directions": dirs, "connections": conn},
             "inv": {"type": "LUT4", "parameters": {"INIT": "0000000011111111"},
                     "port_directions": {"A": "input", "B": "input", "C": "input",
                                         "D": "input", "Z": "output"},
                     "connections": {"A": ["0"], "B": ["0"], "C": ["0"], "D": [EN],
                                     "Z": [NEN]}}}
    for k in range(n_bits):
        cells[f"ff{k}"] = _ff(100 + k, 20 + k, **ff)
    return {"ports": {"q": {"direction": "output", "bits": [20 + k for k in range(n_bits)]}},
            "cells": cells}


def test_the_data_registers_become_the_output_register():
    m = _module()
    assert absorb_bram_output_registers(m) == 3
    ram = m["cells"]["ram"]
    assert ram["parameters"]["REGMODE_A"] == "OUTREG"
    assert ram["parameters"]["REGMODE_B"] == "NOREG"     # port B reads nothing
    assert ram["connections"]["OCEA"] == [NEN]
    assert [ram["connections"][f"DOA{k}"] for k in range(3)] == [[20], [21], [22]]
    assert not any(c["type"] == "TRELLIS_FF" for c in m["cells"].values())


def test_a_register_loading_on_the_inverse_of_the_reads_inverse_is_absorbed():
    """Yosys keeps ``en`` for the flip-flops (``CEMUX`` ``INV`` on ``~en``'s net would be
    another way) and ``~en`` from a LUT4 for the port: the same enable."""
    m = _module(cemux="INV", ce=EN)       # loads when EN is low: when NEN is high
    assert absorb_bram_output_registers(m) == 3
    assert m["cells"]["ram"]["connections"]["OCEA"] == [NEN]


def test_an_always_enabled_register_on_an_always_enabled_port():
    m = _module(cemux="1 ")               # Yosys writes the constant with a space
    m["cells"]["ram"]["connections"]["CEA"] = ["1"]
    assert absorb_bram_output_registers(m) == 3
    assert m["cells"]["ram"]["connections"]["OCEA"] == ["1"]


@pytest.mark.parametrize("change", ["data read by logic", "data is a port", "two enables",
                                    "inverse enable", "always loads", "other clock",
                                    "reset", "set", "two flip-flops"])
def test_anything_else_on_the_data_keeps_the_port_as_it_was(change):
    m = _module()
    cells = m["cells"]
    if change == "data read by logic":
        cells["lut"] = copy.deepcopy(cells["inv"])
        cells["lut"]["connections"] |= {"D": [101], "Z": [99]}
    elif change == "data is a port":
        m["ports"]["d"] = {"direction": "output", "bits": [102]}
    elif change == "two enables":
        cells["ff2"]["connections"]["CE"] = [EN]
    elif change == "inverse enable":
        for k in range(3):
            cells[f"ff{k}"]["parameters"]["CEMUX"] = "INV"
    elif change == "always loads":
        for k in range(3):
            cells[f"ff{k}"]["parameters"]["CEMUX"] = "1"
    elif change == "other clock":
        cells["ff1"]["connections"]["CLK"] = [7]
    elif change == "reset":
        cells["ff0"]["connections"]["LSR"] = [8]
    elif change == "set":
        cells["ff0"]["parameters"]["REGSET"] = "SET"
    elif change == "two flip-flops":
        cells["ffx"] = _ff(100, 30)
    before = copy.deepcopy(m)
    assert absorb_bram_output_registers(m) == 0
    assert m == before


class _TableThenRegister(wiring.Component):
    """A 1,024-entry ROM of 4-bit codes in block RAM, read with ``en`` and its data
    registered with ``en`` (``reader="register"``); or the data also XORed into an output
    (``"logic"``), or registered on an enable of its own (``"own enable"``), or by a
    register with a reset (``"reset"``)."""

    def __init__(self, reader: str):
        self._reader = reader
        super().__init__({"addr": In(10), "en": In(1), "en2": In(1), "q": Out(4),
                          "x": Out(4)})

    def elaborate(self, platform):
        m = Module()
        rom = Memory(shape=4, depth=1024, init=[(i * 7 + (i >> 5)) % 16 for i in range(1024)])
        rom.attrs["ram_style"] = "block"
        m.submodules.rom = rom
        rd = rom.read_port(domain="sync")
        m.d.comb += [rd.addr.eq(self.addr), rd.en.eq(self.en)]
        q = Signal(4, reset_less=self._reader != "reset")
        with m.If(self.en2 if self._reader == "own enable" else self.en):
            m.d.sync += q.eq(rd.data)
        m.d.comb += self.q.eq(q)
        if self._reader == "logic":
            m.d.comb += self.x.eq(rd.data ^ self.addr[:4])
        return m


@pytest.mark.slow
@pytest.mark.parametrize("reader", ["register", "logic", "own enable", "reset"])
def test_synthesis_absorbs_only_a_register_on_the_read_enable(tmp_path, reader):
    """Through the flow (Yosys, then nextpnr's packer, which accepts the netlist): the data
    register of a ROM read costs no flip-flop on the ECP5 when it loads with the read; a
    register that is not alone on the data, loads on an enable other than the read's or
    resets, stays."""
    try:
        Toolchain.default().resolve(Toolchain.default().yosys)
    except ToolNotFoundError as e:
        pytest.skip(f"YoWASP flow tools not installed: {e}")
    top = f"table_{reader.replace(' ', '_')}"
    stats = synth(component_verilog(_TableThenRegister(reader), top), top, "ecp5-85f",
                  workdir=tmp_path)
    assert stats.bram == 1
    assert stats.ff == (0 if reader == "register" else 4)
    ice = synth(component_verilog(_TableThenRegister(reader), top), top, "up5k",
                workdir=tmp_path)
    assert ice.ff >= 4                   # the iCE40's block RAM has no output register
