"""The scoreboard's checker and models (``sim/scoreboard.py``) and the checks
``sim.verify.verify_network`` makes before building anything; no simulator needed (the
cocotb runs are in ``tests/test_network_cocotb.py`` and ``tests/test_float_network_cocotb.py``).
"""

from __future__ import annotations

import numpy as np
import pytest

from rtl_gen.bundle import read_bundle
from rtl_gen.design import golden
from rtl_gen.training import mpwn
from rtl_gen.training.defaults import FLOAT_MODEL_NAME, WEIGHTS_DIR
from rtl_gen.training.float_model import load_float_model
from sim.scoreboard import (
    Checker,
    Expected,
    Mismatch,
    Observed,
    VerifyError,
    float_inputs,
)
from sim.verify import verify_network

# Three images, three logits each, batches of two rows, two columns: the design emits
# tile 0 (logits 0, 1) of rows 0 and 1, then tile 1 (logit 2) of rows 0 and 1; the third
# image is padded with a zero image whose logits the checker ignores.
LOGITS = [[5, -3, 7], [0, 12, -8], [-1, -1, 4]]
ORDER = [(0, 0), (0, 1), (1, 0), (1, 1), (0, 2), (1, 2)]
EMITTED = [5, -3, 0, 12, 7, -8,        # batch 0: images 0 and 1
           -1, -1, 99, 98, 4, 97]      # batch 1: image 2 and the padding


def integer_expected(**kw) -> Expected:
    return Expected(**({"inputs": np.zeros((3, 4), np.int64), "logits": LOGITS,
                        "classes": [2, 1, 2], "layer_cycles": [40, 17], "rows": 2,
                        "order": ORDER, "logit_format": "int"} | kw))


def observed(logits=EMITTED, classes=(2, 1, 2, 0), layer_cycles=(40, 17), **kw) -> Observed:
    return Observed(logits=list(logits), classes=list(classes),
                    layer_cycles=list(layer_cycles), cycles=100, stalled=False, **kw)


def test_a_matching_run_passes_and_is_put_back_in_image_order():
    got = Checker(integer_expected()).check(observed())
    assert got.tolist() == LOGITS


def test_one_wrong_logit_is_named_with_its_image_and_index():
    wrong = list(EMITTED)
    wrong[5] = -7  # image 1, logit 2
    with pytest.raises(Mismatch, match=r"^image 1, logit 2: expected -8, got -7 "
                                       r"\(1 of 9 logits differ\)$"):
        Checker(integer_expected()).check(observed(wrong))


def test_the_first_of_several_wrong_logits_is_named():
    wrong = list(EMITTED)
    wrong[6], wrong[1] = 0, 3  # image 2 logit 0, image 0 logit 1
    with pytest.raises(Mismatch, match=r"^image 0, logit 1: expected -3, got 3 \(2 of 9"):
        Checker(integer_expected()).check(observed(wrong))


def test_the_padding_images_logits_are_not_checked():
    padding_changed = EMITTED[:8] + [0, 0, 4, 0]
    Checker(integer_expected()).check(observed(padding_changed))


def test_missing_or_extra_logits_are_reported():
    with pytest.raises(Mismatch, match="11 logits came out for 3 images, not 12"):
        Checker(integer_expected()).check(observed(EMITTED[:-1]))
    with pytest.raises(Mismatch, match="13 logits came out for 3 images, not 12"):
        Checker(integer_expected()).check(observed(EMITTED + [1]))


def test_a_wrong_class_and_missing_classes_are_reported():
    with pytest.raises(Mismatch, match=r"^image 1, class: expected 1, got 0 \(1 of 3"):
        Checker(integer_expected()).check(observed(classes=[2, 0, 2, 0]))
    with pytest.raises(Mismatch, match="2 classes came out for 3 images"):
        Checker(integer_expected()).check(observed(classes=[2, 1]))


def test_layer_cycles_are_compared_unless_the_run_stalled():
    with pytest.raises(Mismatch, match=r"^layer 1: expected 17 cycles per batch \(cycle "
                                       r"model\), got 18"):
        Checker(integer_expected()).check(observed(layer_cycles=[40, 18]))
    stalled = observed(layer_cycles=[40, 18])
    stalled.stalled = True
    Checker(integer_expected()).check(stalled)


def test_a_timeout_is_reported_with_what_came_out():
    with pytest.raises(Mismatch, match="timed out: 6 of 12 logits and 1 of 3 classes"):
        Checker(integer_expected()).check(observed(EMITTED[:6], classes=[2],
                                                   timed_out=True))


def test_fp32_logits_are_compared_as_bit_patterns():
    one, neg_zero = 0x3F800000, 0x80000000
    expected = Expected(inputs=np.zeros((1, 2), np.int64), logits=[[one, 0]], classes=[0],
                        layer_cycles=[9], rows=1, order=[(0, 0), (0, 1)],
                        logit_format="fp32")
    # the monitor may read a payload as signed: the checker compares the 32 bits
    assert Checker(expected).check(observed([one, 0], [0], [9])).tolist() == [[one, 0]]
    with pytest.raises(Mismatch, match=r"^image 0, logit 1: expected 0x00000000 \(0\), "
                                       r"got 0x80000000 \(-0\)"):
        Checker(expected).check(observed([one, neg_zero], [0], [9]))
    with pytest.raises(Mismatch, match=r"expected 0x3f800000 \(1\), got 0x3f800001 "
                                       r"\(1.00000012\)"):
        Checker(expected).check(observed([one + 1, 0], [0], [9]))


def test_expected_goes_through_the_parameters_unchanged():
    e = integer_expected()
    back = Expected.from_params(e.to_params())
    assert back.to_params() == e.to_params()
    assert back.words().tolist() == [0] * 16  # three images and a padding image of 4


@pytest.fixture(scope="module")
def int4():
    return read_bundle(WEIGHTS_DIR / "digits-int4")


@pytest.fixture(scope="module")
def fp32_net():
    model = load_float_model(WEIGHTS_DIR / FLOAT_MODEL_NAME)
    return mpwn.from_float(model, ("float", "float"), name="digits-fp32")


@pytest.mark.parametrize(("x", "message"), [
    (np.zeros(64, np.int64), r"2-D integer array of input codes, not int64 \(64,\)"),
    (np.zeros((2, 64)), r"2-D integer array of input codes, not float64"),
    (np.zeros((2, 63), np.int64), "must have 64 features, not 63"),
    (np.zeros((0, 64), np.int64), "no images"),
    (np.full((2, 64), 31) + np.eye(2, 64, 5, dtype=np.int64),
     r"must lie in \[0, 31\] \(5-bit unsigned\); image 0, feature 5 is 32"),
    (np.full((1, 64), -1), r"image 0, feature 0 is -1"),
])
def test_verify_refuses_images_that_do_not_fit_an_integer_network(int4, x, message):
    with pytest.raises(VerifyError, match=message):
        verify_network(int4, x)


def test_verify_refuses_images_that_do_not_fit_a_float_network(fp32_net):
    with pytest.raises(VerifyError, match=r"fp32 bit patterns must lie in \[0, 0xFFFFFFFF\]"):
        verify_network(fp32_net, np.full((1, 64), -1, np.int64))
    with pytest.raises(VerifyError, match="2-D integer array of fp32 bit patterns"):
        verify_network(fp32_net, np.zeros((1, 64), np.float32))


def test_float_inputs_take_int32_words_as_the_same_bits(fp32_net):
    bits = (np.arange(64, dtype=np.float32) / 16).view(np.uint32).reshape(1, 64)
    bits[0, 3] = 0x80000000  # -0.0: negative as int32
    assert float_inputs(fp32_net, bits.view(np.int32)).tolist() == \
        bits.astype(np.int64).tolist()


def test_verify_refuses_the_other_familys_options(int4, fp32_net):
    x = np.zeros((1, 64), np.int64)
    with pytest.raises(VerifyError, match="lanes applies to float networks"):
        verify_network(int4, x, lanes=2)
    with pytest.raises(VerifyError, match="arrays and control apply to integer networks"):
        verify_network(fp32_net, x, control=golden.TRControl(golden.TRMode.CONVENTIONAL))
    with pytest.raises(VerifyError, match="must be a Network or a FloatNetwork, not str"):
        verify_network("digits-int4", x)


@pytest.mark.parametrize(("kw", "message"), [
    ({"gap": 1.0}, r"gap is a chance per cycle in \[0, 1\), not 1.0"),
    ({"stall": -0.1}, r"stall is a chance per cycle in \[0, 1\), not -0.1"),
    ({"control": golden.TRControl(golden.TRMode.TR, 4, 0)}, "control: data_terms 0"),
])
def test_verify_refuses_traffic_and_controls_it_cannot_run(int4, kw, message):
    with pytest.raises(VerifyError, match=message):
        verify_network(int4, np.zeros((1, 64), np.int64), **kw)
