"""Both network families behind one interface: encode, forward, predict, accuracy."""

from __future__ import annotations

import numpy as np
import pytest

from rtl_gen.data.digits import digits
from rtl_gen.design import base, float_network, golden
from rtl_gen.design.network import DenseLayer, InputSpec, Network
from rtl_gen.numerics.schemes import WeightScheme
from rtl_gen.training import mpwn
from rtl_gen.training.defaults import FLOAT_MODEL_NAME, WEIGHTS_DIR
from rtl_gen.training.float_model import load_float_model


def _f32(*v) -> np.ndarray:
    return np.asarray(v, dtype=np.float32).view(np.uint32)


def _int_net(w) -> Network:
    """One int8 logits layer over 4-bit signed inputs, weights ``w`` (out, in)."""
    w = np.asarray(w)
    scheme = WeightScheme("int", 8)
    layer = DenseLayer("fc", scheme, scheme.encode(w), 1.0, np.zeros(len(w), np.int64),
                       in_bits=4, in_signed=True, activation="none")
    return Network("n", InputSpec(w.shape[1], 4, True, 0.5), [layer])


@pytest.fixture(scope="module")
def nets():
    model = load_float_model(WEIGHTS_DIR / FLOAT_MODEL_NAME)
    from rtl_gen.bundle import read_bundle
    return [read_bundle(WEIGHTS_DIR / "digits-int8"), read_bundle(WEIGHTS_DIR / "digits-binary"),
            mpwn.from_float(model, ("binary", "float")),
            mpwn.from_float(model, ("ternary", "ternary"))]


def test_both_families_run_through_the_same_calls(nets):
    test = digits()[1]
    x, y = test.x[:100], test.y[:100]
    for net in nets:
        codes = net.encode(x)
        assert codes.shape == (100, net.in_features) == (100, 64)
        assert net.classes == 10
        if net.family == "integer":
            assert np.array_equal(codes, net.input.quantize(x))
            assert np.array_equal(net.forward(codes), golden.forward(net, codes))
        else:
            assert codes.dtype == np.uint32
            assert np.array_equal(codes, np.asarray(x, np.float32).view(np.uint32))
            assert np.array_equal(net.forward(codes), float_network.forward(net, codes))
        classes = net.predict(codes)
        assert classes.dtype == np.int64 and classes.shape == (100,)
        # the digits networks all classify well above chance: a broken argmax would not
        assert net.accuracy(codes, y) == np.mean(classes == y) > 0.5


def test_integer_argmax_takes_the_first_of_equal_logits():
    net = _int_net([[1, 0], [1, 0], [0, 1], [-1, 0]])
    x = np.array([[3, 3], [3, 5], [-2, -3], [0, 0]])
    # logits (3,3,3,-3), (3,3,5,-3), (-2,-2,-3,2), (0,0,0,0)
    assert net.forward(x).tolist() == [[3, 3, 3, -3], [3, 3, 5, -3], [-2, -2, -3, 2],
                                       [0, 0, 0, 0]]
    assert net.predict(x).tolist() == [0, 2, 3, 0]
    assert golden.predict(net, x).tolist() == [0, 2, 3, 0]
    assert net.accuracy(x, [0, 2, 0, 0]) == 0.75


def test_float_argmax_orders_by_value_and_ties_signed_zeros():
    out = float_network.FloatLayer("o", "float", _f32([1.0], [-1.0], [0.0]).reshape(3, 1),
                                   None, _f32(0, 0, 0), "none")
    net = float_network.FloatNetwork("n", 1, None, [out])
    x = _f32(0.0, -1.0, 2.0).reshape(3, 1)
    # logits (+0, -0, +0): a tie, the first wins; (-1, +1, +0); (2, -2, +0)
    assert net.predict(x).tolist() == [0, 1, 0]
    assert float_network.predict(net, x).tolist() == [0, 1, 0]
    with pytest.raises(ValueError, match="no run-time"):
        net.predict(x, control=golden.TRControl(golden.TRMode.TR))


def test_the_families_share_one_predict_and_accuracy():
    assert golden.predict is float_network.predict is base.predict
    assert golden.accuracy is float_network.accuracy is base.accuracy
