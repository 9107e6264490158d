"""Post-training quantization: a float MLP and calibration inputs → an integer :class:`Network`.

Per layer ``i`` with input scale ``s_in`` *(our choice, the usual PTQ recipe)*:

1. weights: ``scheme.quantize(W)`` gives codes, ``w_int`` and the weight scale ``s_w``;
2. bias: ``b_int = round(b / (s_in * s_w))`` (half away from zero);
3. hidden layers: the integer network so far runs on the calibration inputs; the largest
   ReLU output, in float units, sets ``s_out = max / (2**out_bits - 1)``; then
   ``M / 2**S ≈ s_in * s_w / s_out`` (:func:`~rtl_gen.numerics.fixedpoint.requant_params`);
4. the last layer outputs its accumulator (logits in units of ``s_in * s_w``).

Calibrating on the quantized network's own activations (not the float ones) lets each layer
absorb the error of the layers before it.  Term-revealing layers calibrate with their weights
revealed and data truncated, exactly as the golden model runs them.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..design import golden
from ..design.network import (
    DenseLayer,
    InputSpec,
    Network,
    TRConfig,
)
from ..numerics.fixedpoint import requant_params
from ..numerics.schemes import WeightScheme, parse_scheme
from .float_model import FloatMLP

__all__ = ["calibrate_input", "quantize_mlp"]


def calibrate_input(calibration, bits: int, signed: bool | None = None) -> InputSpec:
    """Input code from calibration data: ``scale = max|x| / largest code``; signed when the
    data has negative values (unless ``signed`` says)."""
    c = np.asarray(calibration, dtype=np.float64)
    if signed is None:
        signed = bool((c < 0).any())
    top = (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1
    if top < 1:
        raise ValueError(f"a {bits}-bit {'signed' if signed else 'unsigned'} input has no "
                         "positive code")
    amax = float(np.abs(c).max()) if c.size else 0.0
    return InputSpec(features=c.shape[-1], bits=bits, signed=signed,
                     scale=(amax / top) if amax > 0 else 1.0)


#: Largest magnitude of a float weight, bias or calibration input the quantizer takes: far
#: beyond any trained network, far below where the scale and error arithmetic overflows.
MAX_MAGNITUDE = 1e12


def _check_magnitudes(model: FloatMLP, calibration) -> None:
    """A ``ValueError`` naming the first array with a NaN, an infinity or a value beyond
    :data:`MAX_MAGNITUDE`."""
    arrays = [(f"weight{i}", w) for i, w in enumerate(model.weights)]
    arrays += [(f"bias{i}", b) for i, b in enumerate(model.biases)]
    calib = model.calibration if calibration is None else calibration
    if calib is not None:
        arrays.append(("calibration", calib))
    for key, a in arrays:
        try:
            a = np.asarray(a, dtype=np.float64)
        except (TypeError, ValueError):
            continue  # the shape and type checks below name it
        if a.size == 0:
            continue
        if not np.isfinite(a).all():
            raise ValueError(f"{key} holds {np.count_nonzero(~np.isfinite(a))} NaN or "
                             "infinite value(s)")
        peak = float(np.abs(a).max())
        if peak > MAX_MAGNITUDE:
            raise ValueError(f"{key} holds a value of magnitude {peak:.3g}, beyond the "
                             f"{MAX_MAGNITUDE:.0e} the quantizer takes (rescale the model)")


def quantize_mlp(model: FloatMLP, schemes, *, name: str, calibration=None,
                 input_spec: InputSpec | None = None, input_bits: int = 8, act_bits: int = 8,
                 tr: TRConfig | None = None, metadata: dict | None = None) -> Network:
    """Quantize a float MLP into a :class:`Network`.

    Parameters
    ----------
    model:
        The float model (its ``calibration``, ``input_*`` and ``labels`` are used when the
        arguments here are not given).
    schemes:
        One scheme for every layer, or a sequence with one per layer (a mixed-precision
        network); :class:`WeightScheme` objects or names such as ``"int8"``.
    name:
        The network's name.
    calibration:
        Float inputs ``(n, in_features)``; defaults to ``model.calibration``.
    input_spec:
        Fixes the input code; else taken from the model's ``input_*`` fields, else calibrated
        with ``input_bits``.
    act_bits:
        Width of every hidden activation (unsigned, after ReLU).
    tr:
        Term-revealing grouping applied to every layer, or ``None``.

    Raises
    ------
    ValueError
        For a scheme list of the wrong length, missing calibration data or a bad width.
    """
    _check_magnitudes(model, calibration)
    n_layers = len(model.weights)
    if isinstance(schemes, (str, WeightScheme)):
        schemes = [schemes] * n_layers
    schemes = [parse_scheme(s) if isinstance(s, str) else s for s in schemes]
    if len(schemes) != n_layers:
        raise ValueError(f"{len(schemes)} schemes given for a {n_layers}-layer model")
    calib = model.calibration if calibration is None else calibration
    if calib is None:
        raise ValueError("quantization needs calibration inputs (the model's 'calibration' "
                         "array or a separate file)")
    calib = np.asarray(calib, dtype=np.float64)
    if calib.ndim != 2 or calib.shape[1] != model.in_features or not np.isfinite(calib).all():
        raise ValueError(f"calibration inputs must be finite, shape (n, {model.in_features}), "
                         f"not {calib.shape}")
    if input_spec is None:
        if model.input_scale is not None:
            signed = bool((calib < 0).any()) if model.input_signed is None \
                else model.input_signed
            input_spec = InputSpec(model.in_features, model.input_bits or input_bits, signed,
                                   model.input_scale)
        else:
            input_spec = calibrate_input(calib, input_bits, model.input_signed)

    x = input_spec.quantize(calib)
    s_in, in_bits, in_signed = input_spec.scale, input_spec.bits, input_spec.signed
    layers = []
    for i, (w, b, scheme) in enumerate(zip(model.weights, model.biases, schemes, strict=True)):
        q = scheme.quantize(w)
        acc_scale = s_in * q.scale
        bias = (np.sign(b) * np.floor(np.abs(b) / acc_scale + 0.5)).astype(np.int64)
        layer = DenseLayer(
            name=f"fc{i + 1}", scheme=scheme, codes=q.codes, weight_scale=q.scale, bias=bias,
            in_bits=in_bits, in_signed=in_signed, activation="none", tr=tr,
            float_weight=np.asarray(w, dtype=np.float64),
            float_bias=np.asarray(b, dtype=np.float64))
        if i < n_layers - 1:
            acc = golden.accumulate(layer, x)
            peak = float(np.maximum(acc, 0).max()) * acc_scale
            s_out = peak / ((1 << act_bits) - 1) if peak > 0 else 1.0
            m, s = requant_params(np.full(layer.out_features, acc_scale / s_out))
            layer = dataclasses.replace(layer, activation="relu", out_bits=act_bits,
                                        out_scale=s_out, requant_multiplier=m,
                                        requant_shift=s)
            x = golden.layer_forward(layer, x)
            s_in, in_bits, in_signed = s_out, act_bits, False
        layers.append(layer)
    meta = {"quantizer": "ptq", "schemes": [s.name for s in schemes]}
    meta.update(metadata or {})
    return Network(name=name, input=input_spec, layers=tuple(layers), labels=model.labels,
                   metadata=meta)
