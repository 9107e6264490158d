"""The term-revealing digits network (``weights/digits-tr``: 4-bit sign-magnitude weights,
groups of 16) as Verilog under Verilator: one build, the whole test split at seven run-time
control settings, logits bit-exact against the golden TR model under the same control and
every layer's cycles equal to the cycle model."""

from __future__ import annotations

import pytest

from rtl_gen.bundle import read_bundle
from rtl_gen.data.digits import digits
from rtl_gen.design.golden import TRControl, TRMode
from rtl_gen.training.defaults import WEIGHTS_DIR
from sim.runner import missing_simulator
from sim.verify import verify_network

pytestmark = pytest.mark.slow

CONTROLS = [None, TRControl(TRMode.CONVENTIONAL), TRControl(TRMode.TR, 4, 1),
            TRControl(TRMode.TR, 6, 2), TRControl(TRMode.TR, 14, 3),
            TRControl(TRMode.TR, 10, 9), TRControl(TRMode.TR, 0, 2)]


def test_tr_network_at_seven_controls():
    why = missing_simulator("verilator")
    if why:
        pytest.skip(why)
    net = read_bundle(WEIGHTS_DIR / "digits-tr")
    x = digits()[1].x_int
    builds, cycles = set(), []
    for control in CONTROLS:
        result = verify_network(net, x, control=control)  # raises on any difference
        assert result["images"] == 360
        assert result["layer_cycles"] == result["model_layer_cycles"]
        builds.add(result["build"])
        cycles.append(tuple(result["layer_cycles"]))
    assert len(builds) == 1  # one Verilator build served every setting
    assert len(set(cycles)) >= 5  # the settings change the schedule


def test_verify_command_takes_the_controls():
    from click.testing import CliRunner

    from rtl_gen.cli import main

    why = missing_simulator("verilator")
    if why:
        pytest.skip(why)
    result = CliRunner().invoke(main, ["verify", "--bundle", str(WEIGHTS_DIR / "digits-tr"),
                                       "--images", "20", "--tr-k", "4", "--tr-s", "1"])
    assert result.exit_code == 0, result.output
    assert "20 images, every logit and class equal to the golden model" in result.stdout
    bad = CliRunner().invoke(main, ["verify", "--bundle", str(WEIGHTS_DIR / "digits-int4"),
                                    "--conventional"])
    assert bad.exit_code == 2 and "no term-revealing layers" in bad.stderr


GROUP_CONTROLS = [None, TRControl(TRMode.CONVENTIONAL), TRControl(TRMode.TR, 4, 1),
                  TRControl(TRMode.TR, 14, 3), TRControl(TRMode.TR, 0, 2)]


def test_group_engine_network_at_five_controls():
    """``digits-tr`` on the group-per-cycle PEs (``tr_terms=0``: as many term adders as the
    bundle's budget, k = 10), with wide ports: the input port takes 4 codes a cycle (four
    data-term units) and the first layer drains 2 results a cycle into the second: one
    build, the whole test split at five controls set through the control ports, bit-exact,
    every layer's cycles equal to the model (one cycle a group at k <= 10, two at k = 14,
    four conventional: T = 36), and at k <= 10 the network's images 21 cycles apart (the
    drains no longer the bound: 37 with one result a cycle, 64 with one code a cycle)."""
    from rtl_gen.hw.layer import ArrayConfig

    why = missing_simulator("verilator")
    if why:
        pytest.skip(why)
    net = read_bundle(WEIGHTS_DIR / "digits-tr")
    x = digits()[1].x_int
    arrays = [ArrayConfig(tr_terms=0, drain_width=2), ArrayConfig(tr_terms=0)]
    builds, cycles = set(), []
    for control in GROUP_CONTROLS:
        result = verify_network(net, x, arrays=arrays, control=control, in_per_beat=4)
        assert result["images"] == 360
        assert result["layer_cycles"] == result["model_layer_cycles"]
        builds.add(result["build"])
        cycles.append(tuple(result["layer_cycles"]))
        if control is None:
            assert result["interval"] == 21
            # the whole split back to back: the images 21 cycles apart, plus the first's
            # latency
            assert 21 * 360 < result["cycles"] < 21 * 360 + 200
    assert len(builds) == 1
    assert len(set(cycles)) >= 3


HOST_CONTROLS = [None, TRControl(TRMode.CONVENTIONAL), TRControl(TRMode.TR, 4, 1),
                 TRControl(TRMode.TR, 6, 2), TRControl(TRMode.TR, 14, 3),
                 TRControl(TRMode.TR, 0, 2)]


def test_tr_network_through_the_host_registers():
    """The board core of digits-tr at its ``--fit up5k`` plan (8 selecting columns, then a
    column reading block RAM copies), one build: the host client writes six (mode, k, s)
    settings to the TR_MODE, TR_K and TR_S registers over the UART and classifies the whole
    test split after each; every logit equals the golden TR model's under that setting and
    every layer's cycles the cycle model's."""
    from rtl_gen.hw.planner import plan_folding
    from sim.verify import verify_board

    why = missing_simulator("verilator")
    if why:
        pytest.skip(why)
    net = read_bundle(WEIGHTS_DIR / "digits-tr")
    plan = plan_folding(net, fit="up5k")
    assert any(a.tr_read == "memory" for a in plan.arrays)
    x = digits()[1].x_int
    result = verify_board(net, x, arrays=plan.arrays, controls=HOST_CONTROLS,
                          malformed=False)  # raises on any difference
    runs = result["runs"]
    assert len(runs) == len(HOST_CONTROLS) and all(len(r["classes"]) == 360 for r in runs)
    assert len({tuple(r["layer_cycles"]) for r in runs}) >= 5  # the registers took effect
