"""The shipped bundles are QAT models that meet the issue's accuracy targets (numpy only)."""

import json

import numpy as np
import pytest

from rtl_gen.bundle import read_bundle
from rtl_gen.data.digits import digits
from rtl_gen.design import golden
from rtl_gen.training.defaults import FLOAT_MODEL_NAME, WEIGHTS_DIR
from rtl_gen.training.float_model import load_float_model
from rtl_gen.training.quantize import quantize_mlp

# Largest loss against the float model, in points, on the digits test split.
TARGETS = {"binary": 3, "ternary": 1, "pot4": 1, "apot4": 1, "int4": 1}


@pytest.fixture(scope="module")
def setting():
    _, test = digits()
    model = load_float_model(WEIGHTS_DIR / FLOAT_MODEL_NAME)
    return test, model, model.accuracy(test.x, test.y)


@pytest.mark.parametrize("variant,points", TARGETS.items())
def test_qat_bundle_meets_its_target(setting, variant, points):
    test, _, float_acc = setting
    net = read_bundle(WEIGHTS_DIR / f"digits-{variant}")
    assert net.metadata["quantizer"] == "qat"
    assert golden.accuracy(net, test.x_int, test.y) >= float_acc - points / 100 - 1e-12


def test_qat_beats_ptq_where_ptq_fails(setting):
    test, model, _ = setting
    for variant in ("binary", "ternary"):
        qat = read_bundle(WEIGHTS_DIR / f"digits-{variant}")
        ptq = quantize_mlp(model, variant, name="ptq")
        assert golden.accuracy(qat, test.x_int, test.y) > \
            golden.accuracy(ptq, test.x_int, test.y) + 0.10


def test_mixed_bundle_is_mixed_and_cheaper_than_int4(setting):
    test, _, float_acc = setting
    net = read_bundle(WEIGHTS_DIR / "digits-mixed")
    assert len(set(net.schemes)) > 1
    bits = sum(ly.scheme.bits * ly.codes.size for ly in net.layers) / \
        sum(ly.codes.size for ly in net.layers)
    assert bits < 4
    assert golden.accuracy(net, test.x_int, test.y) >= float_acc - 0.01


def test_accuracy_table_matches_the_bundles(setting):
    test, _, _ = setting
    rows = json.loads((WEIGHTS_DIR / "accuracy.json").read_text())
    for row in rows:
        net = read_bundle(WEIGHTS_DIR / row["name"])
        assert row["golden_accuracy"] == golden.accuracy(net, test.x_int, test.y)
    assert np.isclose(rows[0]["float_accuracy"], setting[2])
