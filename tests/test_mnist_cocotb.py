"""Every shipped MNIST bundle (the MLPs and the CNNs), every image of the MNIST test split,
through the Verilog of the design ``rtl-gen verify --fit DEVICE`` builds (the folding
planner's choice): every logit and class equal to the golden model and every layer's
cycle count equal to the cycle model, as the user's command checks them.  The MLPs run
the iCEBreaker's (UP5K) design where they fit it, else the ULX3S's (LFE5U-85F); the CNNs
the ULX3S's, whose wider window units take about half the UP5K design's cycles an image
(the UP5K designs of the CNNs are checked on MNIST images in ``test_conv_hw_cocotb.py``
and through the host link)."""

from __future__ import annotations

import re

import pytest

from rtl_gen.errors import DataError
from rtl_gen.training.defaults import WEIGHTS_DIR
from sim.runner import missing_simulator

pytestmark = pytest.mark.slow

MNIST_BUNDLES = sorted(p.name for p in WEIGHTS_DIR.glob("mnist-*")
                       if (p / "manifest.json").is_file())


@pytest.fixture(scope="module")
def test_images() -> int:
    from rtl_gen.data.mnist import mnist

    why = missing_simulator("verilator")
    if why:
        pytest.skip(why)
    try:
        _, test = mnist()
    except DataError as e:
        pytest.skip(str(e))
    return len(test.y)


def test_the_shipped_mnist_bundles_are_there():
    """The MLPs and CNNs the manual lists: a bundle that went missing would drop its
    whole-split run below without a failure."""
    assert set(MNIST_BUNDLES) >= {"mnist-tfc-binary", "mnist-tfc-ternary", "mnist-tfc-w2a2",
                                  "mnist-tr", "mnist-cnn-binary", "mnist-cnn-ternary",
                                  "mnist-cnn-int4", "mnist-cnn-pot4"}


def _device(bundle: str) -> str:
    """The CNNs: the LFE5U-85F; the MLPs: the UP5K where the planner fits them there, else
    the LFE5U-85F (the 2-bit TFCs' weights outgrow the UP5K's block RAM)."""
    from rtl_gen.bundle import read_bundle
    from rtl_gen.errors import RtlGenError
    from rtl_gen.hw.planner import plan_folding

    if bundle.startswith("mnist-cnn"):
        return "ecp5-85f"
    try:
        plan_folding(read_bundle(WEIGHTS_DIR / bundle), fit="up5k")
    except RtlGenError:
        return "ecp5-85f"
    return "up5k"


@pytest.mark.parametrize("bundle", MNIST_BUNDLES)
def test_every_mnist_test_image_through_the_planned_design(bundle, test_images):
    from click.testing import CliRunner

    from rtl_gen.cli import main

    r = CliRunner().invoke(main, ["verify", "--bundle", str(WEIGHTS_DIR / bundle),
                                  "--fit", _device(bundle)])
    assert r.exit_code == 0, r.output
    assert f"{test_images} images, every logit and class equal to the golden model" \
        in r.output, r.output
    got, model = re.search(r"layer cycles per batch (\[[^]]*\]) \(model (\[[^]]*\])\)",
                           r.output).groups()
    assert got == model, r.output
