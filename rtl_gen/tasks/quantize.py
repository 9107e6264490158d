"""``quantize``: a float model (``.npz``) into an integer weight bundle."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from ..bundle import write_bundle
from ..design.network import Network, TRConfig
from ..errors import ModelError
from ..numerics.schemes import WeightScheme
from ..training.float_model import load_float_model
from ..training.quantize import quantize_mlp

__all__ = ["QuantizeResult", "quantize"]


@dataclasses.dataclass(frozen=True)
class QuantizeResult:
    network: Network
    path: Path


def quantize(model_path: Path, schemes: list[WeightScheme | str], out: Path, *,
             calibration: Path | None = None, input_bits: int = 8, act_bits: int = 8,
             tr: TRConfig | None = None, name: str | None = None) -> QuantizeResult:
    """Quantize the float model at ``model_path`` with ``schemes`` (one for every layer, or
    one per layer) and write the bundle folder ``out`` (named after it unless ``name``).

    ``calibration``: a ``.npy`` file of inputs ``(n, in_features)`` for a model without
    calibration data.  Raises :class:`~rtl_gen.errors.ModelError` for a bad model or
    calibration file, naming it.
    """
    out = Path(out)
    model = load_float_model(model_path)
    calib = None
    if calibration is not None:
        try:
            calib = np.load(calibration, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise ModelError(f"{calibration}: not a readable .npy file ({e})") from None
    schemes = list(schemes)
    if len(schemes) == 1:
        schemes = schemes * len(model.weights)
    try:
        net = quantize_mlp(model, schemes, name=name or out.name, calibration=calib,
                           input_bits=input_bits, act_bits=act_bits, tr=tr,
                           metadata={"source": Path(model_path).name})
    except ValueError as e:
        raise ModelError(f"{model_path}: {e}") from None
    return QuantizeResult(net, write_bundle(net, out))
