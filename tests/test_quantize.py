"""Post-training quantization of float models, and the float model file format."""

import dataclasses

import numpy as np
import pytest

from rtl_gen.data.digits import DIGITS_INPUT_SCALE, digits
from rtl_gen.design import golden
from rtl_gen.errors import ModelError
from rtl_gen.training.defaults import FLOAT_MODEL_NAME, WEIGHTS_DIR
from rtl_gen.training.float_model import FloatMLP, load_float_model, save_float_model
from rtl_gen.training.quantize import calibrate_input, quantize_mlp


@pytest.fixture
def model():
    rng = np.random.default_rng(0)
    return FloatMLP(weights=[rng.normal(0, 0.3, (16, 10)), rng.normal(0, 0.3, (3, 16))],
                    biases=[rng.normal(0, 0.1, 16), rng.normal(0, 0.1, 3)],
                    calibration=rng.normal(0, 1, (200, 10)))


@pytest.fixture(scope="module")
def shipped():
    return load_float_model(WEIGHTS_DIR / FLOAT_MODEL_NAME)


def test_network_carries_the_float_model(model):
    net = quantize_mlp(model, "int8", name="m")
    for layer, w, b in zip(net.layers, model.weights, model.biases, strict=True):
        assert np.array_equal(layer.float_weight, w) and np.array_equal(layer.float_bias, b)
    x = np.random.default_rng(1).normal(size=(7, 10))
    assert np.array_equal(golden.float_forward(net, x), model.forward(x))


def test_signed_input_is_calibrated_from_the_data(model):
    net = quantize_mlp(model, "int8", name="m", input_bits=6)
    spec = net.input
    assert spec.signed and spec.bits == 6
    assert spec.scale == np.abs(model.calibration).max() / 31


def test_bias_and_requantization_follow_the_scales(model):
    net = quantize_mlp(model, "int4", name="m", act_bits=6)
    l1, l2 = net.layers
    acc_scale = net.input.scale * l1.weight_scale
    b = model.biases[0] / acc_scale
    assert np.array_equal(l1.bias, np.sign(b) * np.floor(np.abs(b) + 0.5))
    ratio = l1.requant_multiplier / 2.0 ** l1.requant_shift
    assert np.allclose(ratio, acc_scale / l1.out_scale, rtol=2**-14, atol=0)
    # The largest ReLU output on the calibration data lands on the top code.
    h = golden.layer_forward(l1, net.input.quantize(model.calibration))
    assert h.max() == 63
    assert l2.activation == "none" and l2.in_bits == 6 and not l2.in_signed


def test_mixed_precision_schemes_per_layer(model):
    net = quantize_mlp(model, ["binary", "apot4"], name="m")
    assert net.schemes == ("binary", "apot4")
    with pytest.raises(ValueError, match="3 schemes given for a 2-layer model"):
        quantize_mlp(model, ["int8"] * 3, name="m")


def test_calibration_is_required_and_checked(model):
    bare = dataclasses.replace(model, calibration=None)
    with pytest.raises(ValueError, match="calibration"):
        quantize_mlp(bare, "int8", name="m")
    with pytest.raises(ValueError, match=r"shape \(n, 10\)"):
        quantize_mlp(bare, "int8", name="m", calibration=np.zeros((5, 9)))


def test_calibrate_input_unsigned_range():
    spec = calibrate_input(np.array([[0.0, 2.0], [1.0, 0.5]]), 4)
    assert not spec.signed and spec.scale == 2.0 / 15
    assert spec.quantize([[2.0, 0.0]]).tolist() == [[15, 0]]


def test_shipped_model_accuracy_survives_int8(shipped):
    train, test = digits()
    float_acc = shipped.accuracy(test.x, test.y)
    net = quantize_mlp(shipped, "int8", name="digits-int8")
    assert net.input.scale == DIGITS_INPUT_SCALE and net.input.bits == 5
    assert np.array_equal(net.input.quantize(test.x), test.x_int)  # exact input codes
    assert float_acc > 0.88
    assert golden.accuracy(net, test.x_int, test.y) >= float_acc - 0.015


def test_float_model_round_trip(tmp_path, model):
    m = dataclasses.replace(model, input_scale=0.25, input_bits=6, input_signed=True,
                            labels=("x", "y", "z"))
    save_float_model(m, tmp_path / "m.npz")
    back = load_float_model(tmp_path / "m.npz")
    for a, b in zip(m.weights + m.biases, back.weights + back.biases, strict=True):
        assert np.array_equal(a, b)
    assert np.array_equal(back.calibration, m.calibration)
    assert (back.input_scale, back.input_bits, back.input_signed, back.labels) == \
        (0.25, 6, True, ("x", "y", "z"))


def _npz(tmp_path, **arrays):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    return path


W, B = np.ones((3, 4)), np.zeros(3)


@pytest.mark.parametrize("arrays,match", [
    (dict(), "no layers"),
    (dict(weight0=W), "missing array bias0"),
    (dict(weight0=W, bias0=B, extra=B), "unexpected array"),
    (dict(weight0=W, bias0=np.zeros(2)), "bias0 has 2 entries"),
    (dict(weight0=W, bias0=B, weight1=np.ones((2, 5)), bias1=np.zeros(2)),
     "weight1 takes 5 inputs"),
    (dict(weight0=np.full((3, 4), np.nan), bias0=B), "weight0 contains 12 NaN"),
    (dict(weight0=np.ones((3, 4), dtype=np.int64), bias0=B), "floating-point"),
    (dict(weight0=W, bias0=B, calibration=np.ones((5, 3))), "calibration"),
    (dict(weight0=W, bias0=B, input_scale=np.float64(-1)), "input_scale"),
    (dict(weight0=W, bias0=B, input_bits=np.ones(2, dtype=np.int64)), "input_bits"),
    (dict(weight0=W, bias0=B, labels=np.array(["a"])), "1 labels for 3"),
])
def test_malformed_models_are_named(tmp_path, arrays, match):
    path = _npz(tmp_path, **arrays)
    with pytest.raises(ModelError, match=match) as e:
        load_float_model(path)
    assert str(e.value).startswith(str(path))


def test_unreadable_model_files(tmp_path):
    with pytest.raises(ModelError, match="no such file"):
        load_float_model(tmp_path / "nope.npz")
    (tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(ModelError, match="not a readable .npz"):
        load_float_model(tmp_path / "text.npz")
