"""``import``: a QONNX model (a Brevitas, FINN or hls4ml export) into an integer weight
bundle, exactly, or refused by name."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ..bundle import write_bundle, write_float_bundle
from ..importer import ImportRefusal, ImportResult, import_qonnx
from .common import bundle_name, check_output

__all__ = ["ImportModelResult", "import_model"]


@dataclasses.dataclass(frozen=True)
class ImportModelResult:
    imported: ImportResult
    path: Path

    @property
    def lines(self) -> list[str]:
        """One line per layer: scheme, widths, and whether its integer form is exact."""
        net = self.imported.network
        out = []
        if net.family == "float":
            return [f"{layer.name}: {layer.space} weights {layer.in_features}->"
                    f"{layer.out_features}, fp32 activations ({layer.activation})"
                    for layer in net.layers]
        expand = {li["name"]: li["expand"] for li in self.imported.info["layers"]}
        weighted = [layer for layer in net.layers if layer.has_weights]
        for layer, rep in zip(weighted, self.imported.layers, strict=True):
            width = f"{layer.in_features}->{layer.out_features}"
            if layer.kind == "conv":
                (h, w, c), (kh, kw) = layer.in_shape, layer.kernel
                width = f"conv {kh}x{kw} {h}x{w}x{c}->{'x'.join(map(str, layer.out_shape))}"
            act = f"{layer.out_bits}-bit out" if layer.activation == "relu" else "logits"
            if expand.get(layer.name, 1) > 1:
                act += f" (thermometer: {expand[layer.name]} channels per activation)"
            if rep.exact:
                how = "exact"
            else:
                how = (f"NOT exact: {rep.off} threshold(s) off by at most {rep.max_off} "
                       "accumulator unit(s)")
            out.append(f"{layer.name} ({rep.node}): {layer.scheme.name} {width}, {act}, {how}")
        out += [f"{layer.name}: {layer.kind} {'x'.join(map(str, layer.in_shape))}"
                for layer in net.layers if not layer.has_weights]
        return out


def import_model(model: Path, out: Path, *, name: str | None = None, expand: bool = True,
                 require_exact: bool = False) -> ImportModelResult:
    """Import the QONNX ``model`` and write the bundle folder ``out`` (named after it unless
    ``name``).  An unsupported or malformed model raises
    :class:`~rtl_gen.importer.ImportRefusal` before anything is written, and so does an
    inexact layer with ``require_exact`` (naming the layer and the bound)."""
    out = check_output(out, folder=True)
    net_name = bundle_name(out, name)
    result = import_qonnx(model, name=net_name, expand=expand)
    if require_exact and not result.exact:
        rep = next(r for r in result.layers if not r.exact)
        raise ImportRefusal(f"{model}: layer {rep.name} (node {rep.node!r}) is not exact: "
                            f"{rep.off} threshold(s) off by at most {rep.max_off} "
                            "accumulator unit(s)")
    write = write_float_bundle if result.network.family == "float" else write_bundle
    return ImportModelResult(result, write(result.network, out))
