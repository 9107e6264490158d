"""``check``: validate a weight bundle (integer or float) and summarise its layers."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ..bundle import read_bundle
from ..design.float_network import FloatNetwork
from ..design.network import Network

__all__ = ["CheckResult", "check"]


@dataclasses.dataclass(frozen=True)
class CheckResult:
    path: Path
    network: Network | FloatNetwork
    #: One dictionary per layer (the columns of the summary table).
    layers: list[dict]

    @property
    def summary(self) -> str:
        """One line: the bundle, its kind, input and outputs."""
        net = self.network
        if isinstance(net, FloatNetwork):
            return (f"{self.path}: valid float bundle {net.name!r}, input {net.in_features} x "
                    f"fp32, {net.classes} outputs")
        return (f"{self.path}: valid bundle {net.name!r}, input {net.input.features} x "
                f"{'s' if net.input.signed else 'u'}{net.input.bits}, {net.classes} outputs")


def check(bundle: Path) -> CheckResult:
    """Read and validate ``bundle``; raises :class:`~rtl_gen.errors.BundleError` naming the
    file, layer and field of the first problem."""
    net = read_bundle(bundle)
    if isinstance(net, FloatNetwork):
        rows = [{"layer": ly.name, "shape": f"{ly.out_features}x{ly.in_features}",
                 "space": ly.space, "bits/weight": ly.bits_per_weight,
                 "sparsity": ly.sparsity, "scale": "alpha" if ly.scale is not None else "",
                 "activation": ly.activation} for ly in net.layers]
    else:
        rows = [_int_row(ly) for ly in net.layers]
    return CheckResult(Path(bundle), net, rows)


def _shape(shape) -> str:
    return "x".join(str(d) for d in shape)


def _int_row(ly) -> dict:
    """One table row of an integer layer: its scheme and widths, or for a layer without
    weights (pooling, flatten) its kind and feature-map shapes."""
    io = f"{'s' if ly.in_signed else 'u'}{ly.in_bits}"
    if not getattr(ly, "has_weights", True):
        out = ly.out_shape if ly.out_shape is not None else (ly.out_features,)
        return {"layer": ly.name, "shape": f"{_shape(ly.in_shape)} -> {_shape(out)}",
                "scheme": ly.kind, "in": io, "acc": "", "out": "", "activation": "", "tr": ""}
    core = getattr(ly, "core", ly)  # a convolution is a dense layer over each window
    shape = (f"{ly.kind} {_shape(ly.kernel)} {_shape(ly.in_shape)} -> {_shape(ly.out_shape)}"
             if core is not ly else f"{ly.out_features}x{ly.in_features}")
    return {"layer": ly.name, "shape": shape, "scheme": core.scheme.name, "in": io,
            "acc": core.acc_bits, "out": core.out_width, "activation": core.activation,
            "tr": "" if core.tr is None else f"g={core.tr.group} k={core.tr.budget} "
                                             f"s={core.tr.data_terms}"}
