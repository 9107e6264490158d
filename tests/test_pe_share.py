"""Where a design's LUT4s are: synthesis with the hierarchy kept
(:func:`rtl_gen.flow.module_cells`) and the flat netlist's register cones
(:func:`rtl_gen.flow.synth.cone_cells`), as ``benchmarks/network.py`` counts the share of
the network's LUT4 in its processing elements.

The expected counts of the tiny designs are reasoned from their structure, as in
``tests/test_flow.py``: a registered 8-bit XOR is one LUT4 per bit and no carry; a
registered 8-bit adder with a 9-bit sum is, on the iCE40, one ``SB_LUT4`` and one
``SB_CARRY`` per adder bit, 8 of each.  The digits network's figures come from the
tools, held against the flat count of the same Verilog.
"""

from __future__ import annotations

import pytest
from amaranth import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from benchmarks import network as bench
from rtl_gen.bundle import read_bundle
from rtl_gen.flow import (
    Toolchain,
    ToolNotFoundError,
    component_verilog,
    module_cells,
    synth,
)
from rtl_gen.flow.synth import cone_cells, synth_netlist
from rtl_gen.training.defaults import WEIGHTS_DIR


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    tools = Toolchain.default()
    try:
        tools.resolve(tools.yosys)
        tools.resolve(tools.nextpnr_ice40)
    except ToolNotFoundError as e:
        pytest.skip(f"YoWASP flow tools not installed: {e}")
    return tmp_path_factory.mktemp("flow")


class _Xor(wiring.Component):
    """``y <= a_r ^ b_r``, 8 bits, operands registered."""

    def __init__(self):
        super().__init__({"a": In(8), "b": In(8), "y": Out(8)})

    def elaborate(self, platform):
        m = Module()
        a, b = Signal(8, reset_less=True), Signal(8, reset_less=True)
        m.d.sync += [a.eq(self.a), b.eq(self.b), self.y.eq(a ^ b)]
        return m


class _Parent(wiring.Component):
    """Two XOR submodules ``pe_0``, ``pe_1`` (each on its own inputs, so nothing is shared)
    and a registered adder of its own; every result leaves through ``y``."""

    def __init__(self):
        super().__init__({"a": In(8), "b": In(8), "c": In(8), "d": In(8),
                          "y": Out(8 + 8 + 9)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.pe_0 = p0 = _Xor()
        m.submodules.pe_1 = p1 = _Xor()
        a, b = Signal(8, reset_less=True), Signal(8, reset_less=True)
        s = Signal(9, reset_less=True)
        m.d.sync += [a.eq(self.a), b.eq(self.b), s.eq(a + b)]
        m.d.comb += [p0.a.eq(self.a), p0.b.eq(self.b), p1.a.eq(self.c), p1.b.eq(self.d),
                     self.y.eq(Cat(p0.y, p1.y, s))]
        return m


class _Copies(wiring.Component):
    """Three registered XORs in one module, each of its own two inputs, results ``y0``,
    ``y1``, ``y2``."""

    def __init__(self):
        super().__init__({"x": In(48), "y": Out(24)})

    def elaborate(self, platform):
        m = Module()
        for i in range(3):
            a = Signal(8, reset_less=True, name=f"a{i}")
            b = Signal(8, reset_less=True, name=f"b{i}")
            y = Signal(8, reset_less=True, name=f"y{i}")
            m.d.sync += [a.eq(self.x[16 * i:16 * i + 8]), b.eq(self.x[16 * i + 8:16 * i + 16]),
                         y.eq(a ^ b)]
            m.d.comb += self.y[8 * i:8 * i + 8].eq(y)
        return m


@pytest.mark.slow
@pytest.mark.parametrize("keep", [None, ["*.pe_*"]], ids=["noflatten", "keep-pe"])
def test_each_module_has_its_own_cells(workdir, keep):
    verilog = component_verilog(_Parent(), "parent")
    hier = module_cells(verilog, "parent", "up5k", keep=keep, workdir=workdir)
    assert set(hier.modules) == {"", "pe_0", "pe_1"}
    for pe in ("pe_0", "pe_1"):
        assert hier.modules[pe]["lut4"] == 8 and hier.modules[pe]["carry"] == 0
        assert hier.modules[pe]["ff"] == 16 + 8
    assert hier.modules[""]["lut4"] == 8 and hier.modules[""]["carry"] == 8
    assert hier.under(lambda p: p.startswith("pe_")) == 16
    # the flat design, mapped whole, may save a LUT4 at the adder's ends
    assert hier.total() == 24
    assert 23 <= synth(verilog, "parent", "up5k", workdir=workdir).lut4 <= 24


@pytest.mark.slow
def test_register_cones_split_a_flat_module(workdir):
    verilog = component_verilog(_Copies(), "copies")
    flat = synth(verilog, "copies", "up5k", workdir=workdir)
    netlist = synth_netlist(verilog, "copies", "up5k", workdir=workdir)
    counts = cone_cells(netlist, "copies", "ice40",
                        lambda n: n if n in ("y0", "y1", "y2") else "")
    assert {g: c["lut4"] for g, c in counts.items()} == {("y0",): 8, ("y1",): 8, ("y2",): 8}
    assert sum(c["lut4"] for c in counts.values()) == flat.lut4


@pytest.mark.slow
def test_digits_network_pe_share(workdir):
    """The uniform digits-binary design: every PE found (8 columns a layer), each layer's
    PEs hold LUT4s, and the modules' LUT4s add up to the flat count within 30% (the PE
    boundaries keep Yosys from sharing logic between the PEs: within 2% of the same total with
    only the PEs kept as modules, 2,352 and 2,379; 2,352 against 1,877 flat with the paired
    binary lanes, 11.8% apart before them)."""
    net = read_bundle(WEIGHTS_DIR / "digits-binary")
    engine, row = bench.uniform_design(net)
    top = bench.verilog_top(net)
    verilog = component_verilog(engine, top)
    flat = synth(verilog, top, "up5k", workdir=workdir)
    share = bench.pe_share(verilog, top, "up5k", workdir, flat.lut4)
    hier = module_cells(verilog, top, "up5k", keep=bench.kept_modules(verilog, top),
                        workdir=workdir)
    pes = [p for p in hier.modules if bench.PE_MODULE.search(p)]
    assert len(pes) == sum(int(a.split("x")[0]) * int(a.split("x")[1])
                           for a in row["arrays"]) == 16
    assert share["parts"]["layer0_fc1 PE"] > 0 and share["parts"]["layer1_fc2 PE"] > 0
    assert share["pe_lut4"] == sum(v for k, v in share["parts"].items() if k.endswith(" PE"))
    assert sum(share["parts"].values()) == share["hier_lut4"] == hier.total()
    assert 0.3 < share["pe_share"] < 0.95
    assert abs(share["hier_lut4"] - flat.lut4) <= 0.30 * flat.lut4
    only_pes = module_cells(verilog, top, "up5k", keep=["*.pe_*"], workdir=workdir)
    assert abs(only_pes.total() - hier.total()) <= 0.02 * hier.total()  # 2,379 and 2,352
    assert share["pe_share_flat"] == pytest.approx(
        (share["pe_lut4"] - (share["hier_lut4"] - flat.lut4)) / flat.lut4, abs=1e-4)
