"""``quantize``: a float model (``.npz``) into an integer weight bundle."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from ..bundle import write_bundle
from ..design.network import Network, TRConfig
from ..errors import ModelError, SpecError
from ..numerics.schemes import WeightScheme
from ..training.float_model import load_float_model
from ..training.quantize import quantize_mlp
from .common import bundle_name, check_output, tr_option_message

__all__ = ["QuantizeResult", "quantize"]

_NPY_MAGIC = b"\x93NUMPY"


@dataclasses.dataclass(frozen=True)
class QuantizeResult:
    network: Network
    path: Path


def _load_calibration(calibration: Path) -> np.ndarray:
    """The ``.npy`` array of ``calibration``, or a :class:`ModelError` naming the file."""
    try:
        with open(calibration, "rb") as f:
            head = f.read(len(_NPY_MAGIC))
    except OSError as e:
        raise ModelError(f"{calibration}: cannot be read: {e.strerror or e}") from None
    if head != _NPY_MAGIC:
        raise ModelError(f"{calibration}: not a readable .npy file (it does not start with "
                         "the .npy header)")
    try:
        return np.load(calibration, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        if "pickle" in str(e):
            raise ModelError(f"{calibration}: not a readable .npy file: it holds Python "
                             "objects (pickled), not plain numbers") from None
        raise ModelError(f"{calibration}: not a readable .npy file ({e})") from None


def quantize(model_path: Path, schemes: list[WeightScheme | str], out: Path, *,
             calibration: Path | None = None, input_bits: int = 8, act_bits: int = 8,
             tr: TRConfig | None = None, name: str | None = None) -> QuantizeResult:
    """Quantize the float model at ``model_path`` with ``schemes`` (one for every layer, or
    one per layer) and write the bundle folder ``out`` (named after it unless ``name``).

    ``calibration``: a ``.npy`` file of inputs ``(n, in_features)`` for a model without
    calibration data.  Raises :class:`~rtl_gen.errors.ModelError` for a bad model or
    calibration file, naming it, and :class:`~rtl_gen.tasks.common.OptionError` for a bad
    ``name`` or ``tr`` (before anything is read or written).
    """
    out = check_output(out, folder=True)
    name = bundle_name(out, name)
    model = load_float_model(model_path)
    calib = None if calibration is None else _load_calibration(calibration)
    schemes = list(schemes)
    if len(schemes) == 1:
        schemes = schemes * len(model.weights)
    try:
        net = quantize_mlp(model, schemes, name=name, calibration=calib,
                           input_bits=input_bits, act_bits=act_bits, tr=tr,
                           metadata={"source": Path(model_path).name})
    except SpecError as e:
        if tr is not None and e.field.startswith("tr."):
            raise tr_option_message(e) from None
        raise ModelError(f"{model_path}: {e}") from None
    except ValueError as e:
        raise ModelError(f"{model_path}: {e}") from None
    return QuantizeResult(net, write_bundle(net, out))
