"""The embedded default data set: scikit-learn's 8x8 handwritten digits (no download).

1,797 images of 8x8 pixels, each pixel an integer 0..16, ten classes.  The split is fixed
and documented *(our choice)*: the first 1,437 images train, the last 360 test.  The images
are ordered by the writers who drew them, so the test split holds mostly writers unseen in
training, which is the honest way to measure.

The float model sees ``pixel / 16``; the integer network sees the pixel itself as a 5-bit
unsigned code with scale ``1/16``, so input quantization is exact.
"""

from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ["DIGITS_INPUT_BITS", "DIGITS_INPUT_SCALE", "DIGITS_TEST_SIZE", "Split", "digits"]

DIGITS_TEST_SIZE = 360
DIGITS_INPUT_SCALE = 1 / 16
DIGITS_INPUT_BITS = 5


@dataclasses.dataclass(frozen=True)
class Split:
    """Integer images ``x_int`` (pixel codes), float inputs ``x`` and labels ``y``."""

    x_int: np.ndarray
    x: np.ndarray
    y: np.ndarray


def digits() -> tuple[Split, Split]:
    """``(train, test)`` of the 8x8 digits with the fixed split above.

    Raises
    ------
    ImportError
        With an installation hint, when scikit-learn is missing.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:  # pragma: no cover - exercised only without the extra
        raise ImportError("the digits data set needs scikit-learn: pip install "
                          "'rtl_gen[data]'") from e
    bunch = load_digits()
    x_int = bunch.data.astype(np.int64)
    y = bunch.target.astype(np.int64)
    n = len(y) - DIGITS_TEST_SIZE

    def part(sl):
        return Split(x_int=x_int[sl], x=x_int[sl] * DIGITS_INPUT_SCALE, y=y[sl])

    return part(slice(0, n)), part(slice(n, None))
