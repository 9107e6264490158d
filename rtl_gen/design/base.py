"""The interface both network families share.

An integer :class:`~rtl_gen.design.network.Network` and a float-activation
:class:`~rtl_gen.design.float_network.FloatNetwork` differ in what their values are (integer
codes, fp32 bit patterns) and in their golden arithmetic, and in nothing a caller that only
runs them needs to know::

    codes  = net.encode(x)            float inputs -> what the hardware takes
    logits = net.forward(codes)       the golden model, bit for bit
    net.predict(codes), net.accuracy(codes, labels), net.classes, net.in_features

:func:`predict` and :func:`accuracy` are written once, here, over :meth:`NetworkModel.forward`
and :meth:`NetworkModel.logit_key`; each family's golden module re-exports them.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

__all__ = ["DenseShape", "NetworkModel", "accuracy", "predict"]


class DenseShape:
    """A dense layer's shape, read off its weight codes ``(out_features, in_features)``."""

    #: Whether the layer has weights (every dense layer does; pooling and flatten do not).
    has_weights: ClassVar[bool] = True

    @property
    def in_features(self) -> int:
        return int(self.codes.shape[1])

    @property
    def out_features(self) -> int:
        return int(self.codes.shape[0])


class NetworkModel:
    """What every network offers, whatever its family (a mixin of the frozen dataclasses).

    A family sets :attr:`family` and implements :meth:`encode`, :meth:`forward` and
    :meth:`logit_key`; it has ``name``, ``in_features``, ``layers`` (each with
    ``in_features`` and ``out_features``), ``labels`` and ``metadata``.
    """

    #: ``"integer"`` or ``"float"``: which golden model, engines and bundle format apply.
    family: ClassVar[str]

    @property
    def classes(self) -> int:
        """Outputs of the last layer."""
        return self.layers[-1].out_features

    @property
    def has_float_reference(self) -> bool:
        """Whether every layer with weights carries the float weights and bias it was
        quantized from."""
        return all(layer.float_weight is not None for layer in self.layers
                   if layer.has_weights)

    @property
    def bits_per_weight(self) -> float:
        """Stored bits per weight (each layer's ``bits_per_weight``), averaged over every
        weight of every layer."""
        layers = [layer for layer in self.layers if layer.has_weights]
        n = [layer.codes.size for layer in layers]
        return sum(layer.bits_per_weight * k for layer, k in zip(layers, n, strict=True)) / sum(n)

    def encode(self, x) -> np.ndarray:
        """Float inputs ``(batch, in_features)`` -> the values the hardware takes."""
        raise NotImplementedError

    def forward(self, x, control=None) -> np.ndarray:
        """The golden model's logits for encoded inputs ``x``."""
        raise NotImplementedError

    def logit_key(self, logits) -> np.ndarray:
        """An int64 key that orders logits by value (the hardware's argmax compares it)."""
        raise NotImplementedError

    def predict(self, x, control=None) -> np.ndarray:
        """Classes of encoded inputs: see :func:`predict`."""
        return predict(self, x, control)

    def accuracy(self, x, labels, control=None) -> float:
        """Fraction of ``labels`` predicted right on encoded inputs ``x``."""
        return accuracy(self, x, labels, control)


def predict(net: NetworkModel, x, control=None) -> np.ndarray:
    """Classes: the first index of the largest logit by value, int64 ``(batch,)``.

    ``control`` is the run-time term-revealing control of integer networks (``None``: each
    layer's bundle setting; float networks take none).
    """
    logits = net.forward(x) if control is None else net.forward(x, control)
    return np.argmax(net.logit_key(logits), axis=-1).astype(np.int64)


def accuracy(net: NetworkModel, x, labels, control=None) -> float:
    """Fraction of ``labels`` the network gets right on encoded inputs ``x``."""
    return float(np.mean(predict(net, x, control) == np.asarray(labels)))
