"""Float digits networks on the exact accumulation contract, under cocotb (Verilator), against
the golden model :func:`rtl_gen.design.float_network.forward` bit for bit (fp32 patterns).

Every image of the test split goes through the fp32 network, binary/float, ternary/ternary,
ternary/binary and an E4M3 reduced-float network, each with its own lanes per layer (the
ternary/ternary and E4M3 networks several inputs a step, the first layer several results a
cycle into the second's wide input: :class:`~rtl_gen.hw.exact_float.ExactShape`), all made
from the shipped float model (binary and ternary ``alpha`` the nearest power of two;
fp32 and ternary/ternary in the window fit on the training split, the others in the default
window); one build then runs again with random gaps on the input and stalls on the output.
The lanes hold fixed-point adders (and, for float and minifloat weights, a significand
multiplier and a shifter), no fp32 adder, so a build takes seconds, not the minutes of the
sequential fp32 engines.
"""

from __future__ import annotations

import numpy as np
import pytest

from rtl_gen.data.digits import digits
from rtl_gen.design import float_network
from rtl_gen.hw.exact_float import ExactShape
from rtl_gen.training import mpwn
from sim.runner import missing_simulator
from sim.verify import verify_network

pytestmark = pytest.mark.slow

NETWORKS = {
    "fp32": (("float", "float"), (4, 4), 0.85),
    "binary-float": (("binary", "float"), (8, 4), 0.55),
    "ternary-ternary": (("ternary", "ternary"), (ExactShape(32, 8, 4), ExactShape(10, 8)), 0.75),
    "ternary-binary": (("ternary", "binary"), (16, 4), 0.6),
    "E4M3": (("E4M3", "E4M3"), (ExactShape(4, 2, 2), ExactShape(2, 2)), 0.85),
}
#: Networks in the window fit on the training split (``mpwn.fit_window``, as ``rtl-gen mpwn``
#: makes them: narrow lanes and normaliser); the others keep the default 48-bit window.
FIT = ("fp32", "ternary-ternary")


def need(simulator: str) -> None:
    why = missing_simulator(simulator)
    if why:
        pytest.skip(why)


def exact_net(float_model, name):
    spaces = NETWORKS[name][0]
    calibration = digits()[0].x if name in FIT else None
    net = mpwn.from_float(float_model, spaces, name=f"digits-exact-{name}",
                          accumulation="exact", calibration=calibration)
    assert (net.window.width < 20) == (name in FIT)
    return net


@pytest.mark.parametrize("name", list(NETWORKS))
def test_every_test_image_is_bit_exact(name, float_model, test_bits):
    need("verilator")
    net = exact_net(float_model, name)
    _, lanes, floor = NETWORKS[name]
    bits, labels = test_bits
    result = verify_network(net, bits, lanes=lanes)
    assert result["images"] == len(labels) == 360
    assert result["lanes"] == [ExactShape.of(c).lanes for c in lanes]
    logits = np.asarray(result["logits"], dtype=np.int64)
    assert np.array_equal(logits, float_network.forward(net, bits).astype(np.int64))
    assert result["classes"] == float_network.predict(net, bits).tolist()
    assert result["layer_cycles"] == result["model_layer_cycles"]
    # a working classifier (made without retraining, with alpha rounded to powers of two)
    assert np.mean(np.asarray(result["classes"]) == labels) > floor
    assert result["cycles"] <= 360 * result["interval"] + 2000


def test_gaps_and_stalls(float_model, test_bits):
    need("verilator")
    net = exact_net(float_model, "ternary-ternary")
    bits, _ = test_bits
    lanes = NETWORKS["ternary-ternary"][1]
    result = verify_network(net, bits[:60], gap=0.3, stall=0.4, seed=7, lanes=lanes)
    assert result["classes"] == float_network.predict(net, bits[:60]).tolist()

