"""Shared fixtures: the repository root on ``sys.path`` so the ``sim`` testbenches import;
the shipped float model and the digits test split as fp32 bit patterns (the float networks'
simulation tests)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)


@pytest.fixture(scope="module")
def float_model():
    """The shipped float MLP (``weights/digits-float.npz``)."""
    from rtl_gen.training.defaults import FLOAT_MODEL_NAME, WEIGHTS_DIR
    from rtl_gen.training.float_model import load_float_model

    return load_float_model(WEIGHTS_DIR / FLOAT_MODEL_NAME)


@pytest.fixture(scope="module")
def test_bits():
    """The digits test split as fp32 bit patterns, and its labels."""
    from rtl_gen.data.digits import digits

    split = digits()[1]
    bits = np.asarray(split.x, dtype=np.float32).view(np.uint32)
    assert np.array_equal(bits.view(np.float32).astype(np.float64), split.x)  # exact
    return bits, split.y
