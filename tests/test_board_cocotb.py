"""The board design's core under cocotb: the digits network behind the UART host link,
driven by the host client (``rtl_gen.protocol.HostClient``, the code of ``rtl-gen run``)
through a bit-level UART model.

Every image of the test split is classified through the protocol; the logits and classes
must equal the golden model's, each layer's cycle counter the cycle model's, and every kind
of malformed frame (bad checksum, unknown command, wrong length, stray bytes, a frame that
stops short, a register the design lacks) must get its error reply with the design ready
for the next frame.
"""

from __future__ import annotations

import numpy as np
import pytest

from rtl_gen.bundle import read_bundle
from rtl_gen.data.digits import digits
from rtl_gen.design import golden
from rtl_gen.training.defaults import WEIGHTS_DIR
from sim.runner import missing_simulator
from sim.verify import verify_board

pytestmark = pytest.mark.slow


def test_every_test_image_through_the_uart():
    why = missing_simulator("verilator")
    if why:
        pytest.skip(why)
    net = read_bundle(WEIGHTS_DIR / "digits-binary")
    test = digits()[1]
    result = verify_board(net, test.x_int, malformed=True, bench=50)
    # verify_board's testbench already compared everything; check what came back, too
    assert len(result["classes"]) == len(test.y) == 360
    assert np.array_equal(result["logits"], golden.forward(net, test.x_int))
    assert np.array_equal(result["classes"], golden.predict(net, test.x_int))
    assert len(result["malformed"]) == 6
    assert len(set(result["cycles"])) == 1  # every batch takes the same cycles
    # the throughput run: the first batch's latency, then one interval per batch
    assert result["bench_cycles"] == result["cycles"][-1] + 49 * result["interval"], (
        result["bench_cycles"], result["cycles"][-1], result["interval"])


def mnist_test_split():
    """The MNIST test split, or a skip naming what is missing (Verilator, the data)."""
    why = missing_simulator("verilator")
    if why:
        pytest.skip(why)
    from rtl_gen.data.mnist import mnist
    from rtl_gen.errors import DataError

    try:
        return mnist()[1]
    except DataError as e:
        pytest.skip(str(e))


def test_mnist_cnn_through_the_uart():
    """The MNIST CNN on the arrays the iCEBreaker build folds it to, behind the host link:
    two test images of 784 codes each in one INFER frame, logits and classes equal to the
    golden model's, every malformed frame answered."""
    from rtl_gen.tasks.build import board_arrays

    test = mnist_test_split()
    net = read_bundle(WEIGHTS_DIR / "mnist-cnn-ternary")
    arrays = board_arrays(net, "up5k")
    x = test.x_int[[0, 1000]]  # a 0 and a 5
    assert x.shape == (2, 784)
    result = verify_board(net, x, arrays=arrays, malformed=True, bench=4)
    assert np.array_equal(result["logits"], golden.forward(net, x))
    assert np.array_equal(result["classes"], golden.predict(net, x))
    assert list(test.y[[0, 1000]]) == [0, 5]
    assert len(result["malformed"]) == 6
    print(f"MNIST CNN throughput run: 4 images in {result['bench_cycles']} cycles, one "
          f"in {result['cycles'][-1]}, interval {result['interval']}")


def test_mnist_demo_simulates_through_the_uart(tmp_path):
    """`demo --dataset mnist` step 3: test images spread over the split through the
    simulated UART, bit-exact (the Verilog of the test above: the same simulator build)."""
    from rtl_gen.tasks import demo as demo_task

    test = mnist_test_split()
    result = demo_task.demo(tmp_path / "demo", dataset="mnist", images=3, bitstream=False)
    sim = result.simulation
    assert sim["images"] == 3 and sim["bit_exact"] == "3/3" and sim["malformed"] == 6
    net = read_bundle(WEIGHTS_DIR / "mnist-cnn-ternary")
    picked = [0, 1000, 1999]  # the first, the middle and the last test image
    assert sim["classes"] == list(golden.predict(net, test.x_int[picked]))
    assert "## Simulation" in result.report["report.md"].read_text()
