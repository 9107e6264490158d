"""Models from other tools into rtl_gen networks: QONNX graphs (Brevitas, FINN, hls4ml
exports) imported exactly, or refused by name (:mod:`.qonnx`, :mod:`.refusals`).

Needs the ``onnx`` package only; the ``qonnx`` package is never imported here (the test
suite uses its executor as the oracle).
"""

from .qonnx import SUPPORTED_OPS, ImportResult, LayerReport, encode_input, import_qonnx
from .refusals import ImportRefusal

__all__ = ["SUPPORTED_OPS", "ImportRefusal", "ImportResult", "LayerReport", "encode_input",
           "import_qonnx"]
