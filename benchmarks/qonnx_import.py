"""QONNX import: time to import each Brevitas export, and whether it is exact.

Exports the models of ``tests/test_qonnx_import.py`` (FINN's TFC in 1W1A, 1W2A, 2W2A; a
jet-tagging MLP 16-64-32-32-5 with QuantReLU and int8 biases; a small CNN in 1W1A and 2W2A)
and qonnx's shipped FP8 FloatQuant example, imports each five times and prints a Markdown
table (median seconds, layers, exact) and writes ``results/qonnx_import.json``.  Needs the
``qonnx`` extra (Brevitas, qonnx) and PyTorch.

    python benchmarks/qonnx_import.py
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rtl_gen.importer import import_qonnx  # noqa: E402

REPEATS = 5


def _models(folder: Path) -> dict[str, Path]:
    import brevitas.nn as qnn
    import qonnx
    import torch
    from brevitas.export import export_qonnx
    from brevitas.quant import (
        Int8Bias,
        SignedBinaryActPerTensorConst,
        SignedBinaryWeightPerTensorConst,
    )
    from brevitas_examples.bnn_pynq.models import model_with_cfg

    def jet():
        class Jet(torch.nn.Module):
            def __init__(self):
                super().__init__()
                d = [16, 64, 32, 32, 5]
                self.inp = qnn.QuantIdentity(bit_width=8, return_quant_tensor=True)
                self.fcs = torch.nn.ModuleList(
                    qnn.QuantLinear(d[i], d[i + 1], weight_bit_width=8, bias_quant=Int8Bias,
                                    return_quant_tensor=True) for i in range(4))
                self.acts = torch.nn.ModuleList(
                    qnn.QuantReLU(bit_width=6, return_quant_tensor=True) for _ in range(3))

            def forward(self, x):
                x = self.inp(x)
                for i, fc in enumerate(self.fcs):
                    x = fc(x)
                    x = self.acts[i](x) if i < 3 else x
                return x
        return Jet(), (1, 16)

    def cnn(bits):
        kw = {"weight_quant": SignedBinaryWeightPerTensorConst} if bits == 1 else \
            {"weight_bit_width": 2}

        def act():
            return qnn.QuantIdentity(act_quant=SignedBinaryActPerTensorConst) if bits == 1 \
                else qnn.QuantIdentity(bit_width=2)
        return torch.nn.Sequential(
            act(), qnn.QuantConv2d(1, 8, 3, bias=False, **kw), torch.nn.BatchNorm2d(8), act(),
            torch.nn.MaxPool2d(2), qnn.QuantConv2d(8, 16, 3, bias=False, **kw),
            torch.nn.BatchNorm2d(16), act(), torch.nn.Flatten(),
            qnn.QuantLinear(16, 10, bias=False, **kw)), (1, 1, 8, 8)

    builders = {name: (lambda n=name: (model_with_cfg(n, pretrained=False)[0], (1, 1, 28, 28)))
                for name in ("tfc_1w1a", "tfc_1w2a", "tfc_2w2a")}
    builders.update(jet=jet, cnn_1w1a=lambda: cnn(1), cnn_2w2a=lambda: cnn(2))
    out = {}
    for name, build in builders.items():
        torch.manual_seed(0)
        model, shape = build()
        model.train()
        with torch.no_grad():
            for _ in range(3):
                model(torch.rand((256,) + shape[1:]))
        model.eval()
        out[name] = folder / f"{name}.onnx"
        export_qonnx(model, torch.rand(shape), str(out[name]))
    fp8 = Path(qonnx.__file__).parent / "data/onnx/floatquant_exec/qonnx_act_weight_fp8.onnx"
    if fp8.exists():
        out["qonnx_fp8_floatquant"] = fp8
    return out


def main():
    rows = []
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, path in _models(Path(tmp)).items():
            runs = [import_qonnx(path) for _ in range(REPEATS)]
            r = runs[0]
            rows.append({"model": name, "seconds": statistics.median(x.seconds for x in runs),
                         "layers": [layer.name for layer in r.network.layers],
                         "exact": r.exact, "family": r.network.family})
    print("| model | layers | exact | import (median of 5) |")
    print("|---|---|---|---|")
    for row in rows:
        print(f"| {row['model']} | {' '.join(row['layers'])} | {'yes' if row['exact'] else 'no'}"
              f" | {row['seconds'] * 1000:.1f} ms |")
    out = Path(__file__).parent / "results" / "qonnx_import.json"
    out.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
