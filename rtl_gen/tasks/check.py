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
        rows = [{"layer": ly.name, "shape": f"{ly.out_features}x{ly.in_features}",
                 "scheme": ly.scheme.name, "in": f"{'s' if ly.in_signed else 'u'}{ly.in_bits}",
                 "acc": ly.acc_bits, "out": ly.out_width, "activation": ly.activation,
                 "tr": "" if ly.tr is None else f"g={ly.tr.group} k={ly.tr.budget} "
                                                 f"s={ly.tr.data_terms}"}
                for ly in net.layers]
    return CheckResult(Path(bundle), net, rows)
