"""The shipped MNIST bundles at ``--fit``: every one plans on both devices in seconds (or is
refused for a resource its weights cannot do without), and the area model's DSP count equals
what synthesis of the planned designs gave."""

from __future__ import annotations

from pathlib import Path

import pytest

from rtl_gen.bundle.integer import read_int_bundle
from rtl_gen.design.area import EngineShape, dsp_blocks
from rtl_gen.hw.conv_planner import plan_conv_folding
from rtl_gen.hw.planner import (
    UNROLLED_SHARING_FLOOR,
    PlanError,
    plan_folding,
    unrolled_adder_bits,
    unrolled_fit,
    unrolled_least,
    unrolled_plain_bits,
    unrolled_prefit,
)
from rtl_gen.hw.unrolled import plan_unrolled
from rtl_gen.tasks.common import FoldingOptions, unrolled_choice

WEIGHTS = Path(__file__).resolve().parent.parent / "weights"
#: The first shipped MNIST CNNs (conv8-pool-conv16-pool-dense10), kept as they were.
CNN_V1 = Path(__file__).resolve().parent / "data" / "cnn-v1"
MNIST = ("mnist-tfc-binary", "mnist-tfc-ternary", "mnist-tfc-w2a2", "mnist-tr",
         "mnist-cnn-binary", "mnist-cnn-ternary", "mnist-cnn-int4", "mnist-cnn-pot4")

#: Measured: hard multipliers (SB_MAC16 / MULT18X18D) of the planner's design at ``--fit``,
#: by ``rtl-gen synth --bundle B --device D --fit D --seeds 1`` (Yosys of the pinned YoWASP),
#: with the plan's interval (cycles per image) that identifies the design measured.
MEASURED_DSP = {
    ("mnist-tfc-binary", "up5k"): (393, 0),   # fc1 4 tiles x 98 steps: an 8-bit product
    ("mnist-cnn-int4", "up5k"): (28420, 3),
    ("mnist-cnn-int4", "ecp5-85f"): (7868, 6),
}
#: The same for the first CNNs (:data:`CNN_V1`); the int4 and ternary rows were
#: ``benchmarks/results/cnn.md``'s.
MEASURED_DSP_V1 = {
    ("mnist-cnn-int4", "up5k"): (14308, 2),
    ("mnist-cnn-int4", "ecp5-85f"): (7868, 4),
    ("mnist-cnn-ternary", "up5k"): (7868, 2),
    ("mnist-cnn-ternary", "ecp5-85f"): (7868, 4),
    ("mnist-cnn-pot4", "up5k"): (14308, 3),   # conv1's 18-bit result: two SB_MAC16
    ("mnist-cnn-binary", "up5k"): (7868, 2),
}

#: Bundles the UP5K cannot hold with 10% of it kept free, and what runs out: the ternary and
#: 2-bit TFCs' 784x64 weights are 100,352 bits, 25 of the UP5K's 30 4-kbit block RAMs before
#: the input banks; term revealing's smallest folding needs about 5,600 logic cells.
UP5K_REFUSED = {"mnist-tfc-ternary": "block RAMs", "mnist-tfc-w2a2": "block RAMs",
                "mnist-tr": "block RAMs"}


def _plan(name: str, device: str, root: Path = WEIGHTS):
    net = read_int_bundle(root / name)
    conv = any(type(ly).__name__ == "ConvLayer" for ly in net.layers)
    return (plan_conv_folding if conv else plan_folding)(net, fit=device)


@pytest.mark.parametrize("device", ["up5k", "ecp5-85f"])
@pytest.mark.parametrize("name", MNIST)
def test_every_shipped_mnist_bundle_plans(name, device):
    if device == "up5k" and name in UP5K_REFUSED:
        with pytest.raises(PlanError, match=f"fits up5k: {UP5K_REFUSED[name]}"):
            _plan(name, device)
        return
    plan = _plan(name, device)
    assert plan.device.name == device
    assert plan.area.dsp <= plan.device.dsp


def test_area_model_dsp_equals_synthesis():
    for root, measured in ((WEIGHTS, MEASURED_DSP), (CNN_V1, MEASURED_DSP_V1)):
        for (name, device), (interval, dsp) in measured.items():
            _check_dsp(_plan(name, device, root), name, device, interval, dsp)


def _check_dsp(plan, name, device, interval, dsp):
    assert plan.interval == interval, f"{name} on {device}: the planner's choice changed"
    assert plan.area.dsp == dsp, f"{name} on {device}"


def test_dsp_blocks_of_the_requantizer_and_rom_address():
    s = EngineShape(kind="binary", rows=1, cols=1, lanes=4, k=64, n=64, a_bits=1, w_bits=1,
                    acc_bits=12, out_bits=4, requantize=True, tiles=64, k_steps=16,
                    fifo_depth=8, requant_method="multiply", m_bits=15)
    assert dsp_blocks(s, "ice40") == 1        # 12 x 16 bits: one SB_MAC16
    assert dsp_blocks(s, "ecp5") == 1
    wide = EngineShape(**{**s.__dict__, "acc_bits": 19})
    assert dsp_blocks(wide, "ice40") == 2     # 19 bits: two 16-bit pieces
    assert dsp_blocks(EngineShape(**{**s.__dict__, "acc_bits": 20}), "ecp5") == 2
    assert dsp_blocks(EngineShape(**{**s.__dict__, "r_bits": 10, "acc_bits": 19}),
                      "ice40") == 1           # the product takes the result, not the acc
    thr = EngineShape(**{**s.__dict__, "requant_method": "threshold"})
    assert dsp_blocks(thr, "ice40") == 0
    # 32 tiles x 49 steps (fc1 of mnist-tfc-binary as it was planned), an 11-bit address product
    rom = EngineShape(**{**thr.__dict__, "tiles": 32, "k_steps": 49})
    assert dsp_blocks(rom, "ice40") == 1
    # 784 = 49 << 4: the product is by 49; 10 tiles make it 9 bits, too narrow for SB_MAC16
    fc = EngineShape(**{**thr.__dict__, "tiles": 10, "k_steps": 784})
    assert (dsp_blocks(fc, "ice40"), dsp_blocks(fc, "ecp5")) == (0, 1)
    pow2 = EngineShape(**{**thr.__dict__, "tiles": 32, "k_steps": 64})
    assert dsp_blocks(pow2, "ecp5") == 0      # a shift


@pytest.mark.parametrize("name", ["digits-binary", "digits-ternary", "digits-tr"])
def test_unrolled_prefit_is_below_the_built_graphs(name):
    net = read_int_bundle(WEIGHTS / name)
    kind = "binary" if name == "digits-binary" else "other"
    plan = plan_unrolled(net, multiplier="adders")
    built = unrolled_adder_bits(plan)
    # the floor is half the least sharing seen: its margin holds (term revealing: the plain
    # sums of the revealed weights' digits, which the graphs take, not of the codes')
    assert 2 * UNROLLED_SHARING_FLOOR[kind] * unrolled_plain_bits(net) < built
    assert unrolled_prefit(net, "ecp5-85f") is None
    assert unrolled_least(net).logic < unrolled_fit(plan, "ecp5-85f")[0]


def test_unrolled_engine_of_the_mnist_tfc_is_rejected_without_building_it(monkeypatch):
    net = read_int_bundle(WEIGHTS / "mnist-tfc-binary")
    assert "LUT4s: needs at least about" in unrolled_prefit(net, "ecp5-85f")

    def no_graphs(*args, **kwargs):  # building the 784x64 layer's graphs takes minutes
        raise AssertionError("the unrolled engine's graphs were built")

    monkeypatch.setattr("rtl_gen.hw.unrolled.plan_unrolled", no_graphs)
    messages = []
    assert unrolled_choice(net, FoldingOptions(fit="ecp5-85f"), messages.append) is None
    assert messages and messages[0].startswith("engine for mnist-tfc-binary: arrays")
    with pytest.raises(PlanError, match="the unrolled engine does not fit ecp5-85f"):
        unrolled_choice(net, FoldingOptions(fit="ecp5-85f", engine="unrolled"))
