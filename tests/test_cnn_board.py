"""A network with convolutions on a board: ``rtl-gen build`` folds the shipped ternary MNIST
CNN to fit the board's device beside the host link and clocks it at the board's
``conv_mhz``; the slow tests build both boards' bitstreams with the YoWASP tools and hold
them to timing.  (The int4 CNN's weights need about 23 of the UP5K's 30 block RAMs at its
smallest folding, more than the 22 the build keeps usable beside the host link.)

The simulation of the same core through the host link is ``tests/test_board_cocotb.py``;
``rtl-gen run`` against a CNN bundle is ``tests/test_run_cli.py``.
"""

from __future__ import annotations

import json
import types
from pathlib import Path

import pytest

from rtl_gen.bundle import read_bundle
from rtl_gen.hw.conv import plan_conv_chain, stage_batch_cycles, stage_interval
from rtl_gen.hw.conv_planner import plan_conv_folding
from rtl_gen.hw.hostlink import HostLinkPlan, network_id
from rtl_gen.hw.layer import ArrayConfig
from rtl_gen.tasks import build as build_task
from rtl_gen.training.defaults import WEIGHTS_DIR

pytest.importorskip("amaranth_boards")

CNN = WEIGHTS_DIR / "mnist-cnn-ternary"


def _fit(device: str, margin: float):
    return plan_conv_folding(read_bundle(CNN), fit=device, margin=margin).arrays


@pytest.mark.parametrize("board,device,margin", [("icebreaker", "up5k", 0.26),
                                                 ("ulx3s", "ecp5-85f", 0.11)])
def test_build_folds_a_cnn_to_fit_beside_the_host_link(monkeypatch, tmp_path, board, device,
                                                       margin):
    """Without folding options, the planner's --fit choice for the board's device, with the
    host link's logic kept free on top of the default margin (0.1 + HOST_LINK_LOGIC / LUTs:
    860 LC on the UP5K, 841 LUT4 on the LFE5U-85F)."""
    seen = {}
    monkeypatch.setattr(build_task, "build_network",
                        lambda net, b, **kw: seen.update(net=net, board=b, **kw) or "report")
    assert build_task.build(board, CNN, tmp_path / "b") == "report"
    assert seen["board"].name == board and seen["freq_mhz"] is None
    assert seen["arrays"] == _fit(device, margin)
    # the options still choose: --cols fixes every weight layer's columns
    build_task.build(board, CNN, tmp_path / "c", cols=2)
    assert [a.cols for a in seen["arrays"] if a is not None] == [2, 2, 2, 2]  # 3 conv, fc


def test_cnn_build_uses_the_board_conv_clock(monkeypatch, tmp_path):
    """The flow's core for a CNN runs at the board's conv_mhz (the PLL's nearest setting),
    and design.json describes it: 784 features, one image a batch, the cycle model."""
    from boards import get_board
    from rtl_gen.flow import network_build

    board = get_board("icebreaker")
    assert (board.default_mhz, board.conv_mhz) == (30.0, 24.0)
    tops = []

    def build_bitstream(b, top, *, outdir, **kw):
        Path(outdir).mkdir(parents=True, exist_ok=True)
        for unbuilt in (top, top.core, top.core.engine):  # no tools run: nothing elaborated
            unbuilt._MustUse__silence = True
        tops.append(top)
        return types.SimpleNamespace(to_json=dict)

    monkeypatch.setattr(network_build, "build_bitstream", build_bitstream)
    net = read_bundle(CNN)
    arrays = _fit("up5k", 0.31)
    network_build.build_network(net, board, outdir=tmp_path, arrays=arrays)
    assert tops[0].freq_mhz == pytest.approx(24.0) and tops[0].target_mhz == 24.0
    design = json.loads((tmp_path / "design.json").read_text())
    chain = plan_conv_chain(net, arrays)
    assert design["design_id"] == network_id(net)
    assert (design["features"], design["rows"], design["classes"]) == (784, 1, 10)
    assert design["cycles_per_batch"] == [stage_batch_cycles(t) for t in chain.timings]
    # conv1 pool1 conv2 pool2 conv3 flat fc: the pools and flatten have no counter
    assert [design["cycles_per_batch"][i] for i in (1, 3, 5)] == [0, 0, 0]
    assert design["interval"] == max([784] + [stage_interval(t) for t in chain.timings])
    # a dense network keeps the board's default clock; --freq overrides either
    network_build.build_network(read_bundle(WEIGHTS_DIR / "digits-binary"), board,
                                outdir=tmp_path / "d")
    network_build.build_network(net, board, outdir=tmp_path / "e", arrays=arrays,
                                freq_mhz=18)
    assert [t.target_mhz for t in tops[1:]] == [30.0, 18.0]


def test_host_link_plan_of_a_cnn():
    """The plan carries the convolutional chain: one row, the features of the image, the
    layers the cycle model does not predict (pooling, flatten, and stages held back)."""
    net = read_bundle(CNN)
    plan = HostLinkPlan(net, None, divisor=8, timeout_cycles=96)
    assert plan.chain is not None and plan.rows == 1 and plan.features == 784
    assert all(a is None or isinstance(a, ArrayConfig) for a in plan.arrays)
    assert {1, 3, 5} <= set(plan.unchecked_layers)  # pool1, pool2, flat
    info = plan.info()
    assert (info.rows, info.features, info.classes, info.layers) == (1, 784, 10, 7)
    assert info.input_bits == 8 and not info.input_signed
    with pytest.raises(ValueError, match="runs one image at a time"):
        HostLinkPlan(net, [None if a is None else ArrayConfig(rows=2, cols=a.cols,
                                                                  lanes=a.lanes)
                           for a in plan.arrays], divisor=8, timeout_cycles=96)


def _bitstream(board: str, tmp_path: Path):
    from rtl_gen.flow.synth import Toolchain, ToolNotFoundError

    try:
        Toolchain.default()
    except ToolNotFoundError as e:
        pytest.skip(str(e))
    out = tmp_path / board
    report = build_task.build(board, CNN, out)
    assert Path(report.bitstream).is_file()
    assert report.timing_met, (report.fmax, report.pll_mhz)
    design = json.loads((out / "design.json").read_text())
    assert design["features"] == 784 and design["network"] == "mnist-cnn-ternary"
    return report


@pytest.mark.slow
def test_icebreaker_bitstream_of_the_mnist_cnn(tmp_path):
    """The ternary MNIST CNN behind the host link fits the UP5K and meets the board's 24 MHz."""
    report = _bitstream("icebreaker", tmp_path)
    assert report.pll_mhz == pytest.approx(24.0)
    used, avail = report.utilisation["ICESTORM_LC"]
    assert 3000 < used <= avail


@pytest.mark.slow
def test_ulx3s_bitstream_of_the_mnist_cnn(tmp_path):
    """The same on the LFE5U-85F, at the ULX3S's clock for networks with convolutions."""
    from boards import get_board

    report = _bitstream("ulx3s", tmp_path)
    assert report.target_mhz == get_board("ulx3s").conv_mhz == 50.0
    assert report.pll_mhz == pytest.approx(50.0)
    assert report.utilisation["TRELLIS_COMB"][0] > 3000
