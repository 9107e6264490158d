"""The generated Verilog of the float digits networks, under cocotb, against the golden model.

Every image of the test split (360, inputs ``pixel / 16``, exact in fp32) goes through the
Verilator builds of MPWN assignments made from the float model (binary/float, ternary/ternary),
and the first 60 through the fp32 network: its two float layers are the float PE kind that
binary/float's second layer runs on the whole split, and its run is the slowest of the suite
(about 0.4 s an image); every
logit's fp32 bit pattern must equal :func:`rtl_gen.design.float_network.forward`, every class
:func:`rtl_gen.design.float_network.predict`, and every layer's cycle counter the cycle model.  One
build
then runs again with random gaps on the input and stalls on the output.  (Reduced-float
layers run in amaranth.sim, ``tests/test_float_layer_sim.py``: a network of sixteen more
fp32 multipliers would double this file's build time.)

The floating-point units make large C++ models: the fp32 network's Verilator build takes
about three minutes here and its run about as long; the builds are cached.
"""

from __future__ import annotations

import numpy as np
import pytest

from rtl_gen.design import float_network
from rtl_gen.hw.float_layer import FloatNetworkEngine
from rtl_gen.training import mpwn
from sim.runner import SimulationFailed, missing_simulator
from sim.scoreboard import FloatModel
from sim.verify import FLOAT_VERILATOR_ARGS, build_testbench, verify_network

pytestmark = pytest.mark.slow

ASSIGNMENTS = {
    "fp32": ("float", "float"),
    "binary-float": ("binary", "float"),
    "ternary-ternary": ("ternary", "ternary"),
}
#: Images of the test split each assignment runs (all 360 but the fp32 network's).
IMAGES = {"fp32": 60, "binary-float": 360, "ternary-ternary": 360}


def need(simulator: str) -> None:
    why = missing_simulator(simulator)
    if why:
        pytest.skip(why)


def check(net, bits, labels, **kw):
    result = verify_network(net, bits, **kw)
    assert result["images"] == len(labels) == len(bits)
    assert result["classes"] == float_network.predict(net, bits).tolist()
    assert result["layer_cycles"] == result["model_layer_cycles"]
    # the classes are those of a working classifier (binary and ternary weights made from
    # the float model without retraining lose accuracy: 73% and 80%), not only bit-exact
    assert np.mean(np.asarray(result["classes"]) == labels) > 0.7
    return result


@pytest.mark.parametrize("name", list(ASSIGNMENTS))
def test_every_test_image_is_bit_exact(name, float_model, test_bits):
    need("verilator")
    net = mpwn.from_float(float_model, ASSIGNMENTS[name], name=f"digits-{name}")
    n = IMAGES[name]
    bits, labels = test_bits[0][:n], test_bits[1][:n]
    result = check(net, bits, labels)
    # images stream back to back: the whole run is close to one interval per image
    assert result["cycles"] <= n * result["interval"] + 2000


def test_gaps_and_stalls(float_model, test_bits):
    need("verilator")
    net = mpwn.from_float(float_model, ASSIGNMENTS["ternary-ternary"],
                          name="digits-ternary-ternary")
    bits, _ = test_bits
    result = verify_network(net, bits[:60], gap=0.3, stall=0.4, seed=7)
    assert result["classes"] == float_network.predict(net, bits[:60]).tolist()


def test_the_scoreboard_catches_one_wrong_bit(float_model, test_bits):
    """The testbench told that one logit of the ternary/ternary network (the build above)
    has its sign bit flipped must fail and name that logit, with both bit patterns."""
    need("verilator")
    net = mpwn.from_float(float_model, ASSIGNMENTS["ternary-ternary"],
                          name="digits-ternary-ternary")
    engine = FloatNetworkEngine(net)
    top = "fnet_digits_ternary_ternary"  # the build of the tests above
    built, stimulus = build_testbench(engine, top, build_args=FLOAT_VERILATOR_ARGS)
    params = FloatModel(net, engine).expected(test_bits[0][:2]).to_params() | {
        "controls": {}, "gap": 0.0, "stall": 0.0, "seed": 0, "max_cycles": 100_000} | stimulus
    right = params["logits"][1][4]
    params["logits"][1][4] = right ^ 0x80000000
    with pytest.raises(SimulationFailed) as failed:
        built.run("sim.network_tb", params=params, tag="wrong-bit")
    assert (f"image 1, logit 4: expected {right ^ 0x80000000:#010x}" in str(failed.value)
            and f"got {right:#010x}" in str(failed.value)), str(failed.value)
