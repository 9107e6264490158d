"""Bit-serial conventional quantization: the golden model of the bit-serial network engine
(:class:`rtl_gen.hw.bitserial.BitSerialNetworkEngine`).

A layer's integer weights ``w_int`` are two's complement numbers of ``w_bits`` bits
(:func:`weight_bits`: the scheme's largest magnitude and a sign) and its activations
``in_bits`` wide; the engine forms ``x . w`` from bit planes (``NUMERICS.md`` section 6), one
plane pair per cycle, so a dot product of ``L`` lanes takes ``w_prec * a_prec`` cycles.

Run-time precision keeps the *most significant* planes: ``w_prec = p`` of a ``b``-bit
weight processes planes ``b-p .. b-1`` (the sign plane always among them), which is the
weight with its ``b - p`` low bits cleared, ``(w >> (b-p)) << (b-p)`` (rounded toward
minus infinity); likewise ``a_prec`` for the activations.  ``0`` (or anything above the
layer's own width) means the full width.  Then::

    acc = trunc(x, a_prec) @ trunc(w, w_prec).T + bias

and requantization as in :mod:`rtl_gen.design.golden`.  At full precision this is the
network's own golden model exactly.
"""

from __future__ import annotations

import numpy as np

from ..numerics.fixedpoint import requantize
from .network import DenseLayer, Network

__all__ = ["bitserial_acc_range", "bitserial_forward", "bitserial_predict", "effective_bits",
           "truncate_planes", "weight_bits"]


def weight_bits(layer: DenseLayer) -> int:
    """Two's complement width of the layer's ``w_int``: its scheme's largest magnitude and a
    sign bit (int4: 4; sign-magnitude ``signmag5``: 5; binary ±1: 2)."""
    return max(1, int(layer.scheme.w_int_max).bit_length()) + 1


def effective_bits(own: int, requested: int | None) -> int:
    """The planes a layer of ``own`` bits processes for a requested precision (``None`` or
    ``0``, or more than ``own``: all of them)."""
    if requested is None or requested == 0 or requested > own:
        return own
    if requested < 0:
        raise ValueError(f"a bit-serial precision must be 0 (full) or positive, not "
                         f"{requested}")
    return int(requested)


def truncate_planes(v, bits: int, keep: int) -> np.ndarray:
    """``v`` (integers of ``bits`` bits, two's complement or unsigned) with every plane but
    the ``keep`` most significant cleared: ``(v >> (bits-keep)) << (bits-keep)``."""
    shift = bits - keep
    return (np.asarray(v, np.int64) >> shift) << shift


def _check_layer(layer) -> DenseLayer:
    if not isinstance(layer, DenseLayer):
        raise ValueError(f"the bit-serial engine runs dense layers, not {layer!r}")
    return layer


def bitserial_acc_range(layer: DenseLayer) -> tuple[list[int], list[int]]:
    """Per output channel, the extremes of ``acc`` over every input of the layer's range and
    every run-time precision (truncated weights can reach ``-2**(w_bits-1)``)."""
    _check_layer(layer)
    wb, ab = weight_bits(layer), layer.in_bits
    bias = layer.bias.astype(np.int64)
    lo = np.full(bias.shape, np.iinfo(np.int64).max)
    hi = np.full(bias.shape, np.iinfo(np.int64).min)
    for wp in range(1, wb + 1):
        w = truncate_planes(layer.w_int, wb, wp)
        for ap in range(1, ab + 1):
            if layer.in_signed:
                x_lo, x_hi = -(1 << (ab - 1)), (1 << (ab - 1)) - 1
            else:
                x_lo, x_hi = 0, (1 << ab) - 1
            x_lo, x_hi = (int(truncate_planes(v, ab, ap)) for v in (x_lo, x_hi))
            a, b = w * x_lo, w * x_hi
            lo = np.minimum(lo, bias + np.minimum(a, b).sum(axis=1))
            hi = np.maximum(hi, bias + np.maximum(a, b).sum(axis=1))
    return [int(v) for v in lo], [int(v) for v in hi]


def bitserial_forward(net: Network, x, w_prec: int | None = None,
                      a_prec: int | None = None, *, trace: bool = False):
    """Logits of ``net`` on the bit-serial engine at run-time precisions ``w_prec`` and
    ``a_prec`` (shared by every layer; see the module docstring).  Term-revealing settings
    of the layers are ignored: the engine processes every bit plane."""
    if not isinstance(net, Network):
        raise ValueError(f"net must be an integer Network, not {net!r}")
    h = np.asarray(x)
    if h.dtype.kind not in "iu":
        raise ValueError(f"inputs must be integers, not dtype {h.dtype}")
    h = h.astype(np.int64)
    outs = []
    for layer in net.layers:
        _check_layer(layer)
        wb, ab = weight_bits(layer), layer.in_bits
        w = truncate_planes(layer.w_int, wb, effective_bits(wb, w_prec))
        xt = truncate_planes(h, ab, effective_bits(ab, a_prec))
        acc = xt @ w.T + layer.bias.astype(np.int64)
        if layer.activation == "none":
            h = acc
        else:
            h = requantize(acc, layer.requant_multiplier, layer.requant_shift,
                           layer.out_bits)
        outs.append(h)
    return outs if trace else h


def bitserial_predict(net: Network, x, w_prec: int | None = None,
                      a_prec: int | None = None) -> np.ndarray:
    """Classes (first index of the largest logit) of :func:`bitserial_forward`."""
    return np.argmax(bitserial_forward(net, x, w_prec, a_prec), axis=1).astype(np.int64)
