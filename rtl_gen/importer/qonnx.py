"""QONNX graphs (Brevitas, FINN, hls4ml exports) into integer networks, exactly.

The graph is walked once, in its order.  Constant subgraphs (weights and biases through
their ``Quant`` nodes, shapes) are evaluated the way the QONNX executor evaluates them, in
the graph's own float32, so weight codes are the executor's codes.  The single dynamic path
must be a chain::

    [Mul/Add/Sub/Div by constants]  Quant|BipolarQuant          the input code
    ( Gemm|MatMul  [Add bias] [BatchNormalization, Mul/Add/Sub/Div by constants, Relu]
      Quant|BipolarQuant )*                                     hidden layers
    Gemm|MatMul  [Add bias] [Mul/Add/Sub/Div by constants]      the logits

with ``Reshape``/``Flatten``/``Transpose``/``Identity`` anywhere (they only reorder: their
permutation is folded into the next layer's weight columns or the last layer's rows).  A
layer may also be a ``Conv`` (group 1, symmetric zero padding) on an NCHW feature map, and a
``MaxPool`` may follow an activation quantizer; they become the convolution and pooling
layers of :mod:`rtl_gen.design.conv` (HWC order, a flatten before the first dense layer).  Each
hidden quantizer becomes the layer's requantization, computed in exact rational arithmetic
(:mod:`.requant`); the report says, per layer, whether the integer form is exact and, when it
is not, by how much it can differ.  Anything else is refused (:class:`ImportRefusal`) with
the op, the node's name and its position.
"""

from __future__ import annotations

import dataclasses
import math
import re
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..design.network import DenseLayer, InputSpec, Network
from ..numerics.schemes import WeightScheme
from .refusals import ImportRefusal, node_refusal
from .requant import (
    ROUNDING_MODES,
    code_threshold,
    integer_threshold,
    invert,
    solve,
)

__all__ = [
    "CUSTOM_DOMAINS",
    "OPSET_RANGE",
    "SUPPORTED_OPS",
    "ImportResult",
    "LayerReport",
    "encode_input",
    "import_qonnx",
]

#: Domains of the QONNX custom ops (older FINN files use the second, Brevitas' own
#: exports the third).
CUSTOM_DOMAINS = ("qonnx.custom_op.general", "finn.custom_op.general", "onnx.brevitas")
#: Opsets of the standard domain the importer knows the ops' semantics for.
OPSET_RANGE = (9, 22)
#: Most thresholds per activation expanded into 1-bit channels when the multiply-and-shift
#: form is not exact (3 thresholds: a 2-bit code becomes three 1-bit channels).
MAX_EXPAND = 3
QUANT_OPS = ("Quant", "IntQuant", "BipolarQuant")
ELEMENTWISE = ("Mul", "Add", "Sub", "Div")
REORDER = ("Reshape", "Flatten", "Transpose", "Identity")
#: Every op the importer accepts (``AveragePool`` and ``Trunc`` are refused by name).
SUPPORTED_OPS = QUANT_OPS + ("Gemm", "MatMul", "Conv", "MaxPool", "BatchNormalization",
                             "Relu", "Constant") + ELEMENTWISE + REORDER


@dataclasses.dataclass(frozen=True)
class LayerReport:
    """How one layer was imported.

    ``exact``: the integer requantization reproduces the graph's quantizer on every
    reachable accumulator (thresholds compared, not sampled).  Otherwise ``off`` thresholds
    (channel, code) differ by at most ``max_off`` accumulator units: a code can differ by one
    only for accumulators within ``max_off`` of such a threshold.  ``margin``: the smallest
    distance (accumulator units) between a graph threshold and an integer accumulator, 0 at
    an exact tie; a float32 executor agrees with exact arithmetic unless its own rounding
    error reaches it.  ``float_ops``: ops whose constants are not exact rationals of the
    graph (batch norm's square root), evaluated in float64.
    """

    name: str
    node: str
    exact: bool
    off: int
    max_off: int
    margin: float
    float_ops: tuple[str, ...]

    def as_json(self) -> dict:
        return {"name": self.name, "node": self.node, "exact": self.exact, "off": self.off,
                "max_off": self.max_off, "margin": self.margin,
                "float_ops": list(self.float_ops)}


@dataclasses.dataclass(frozen=True)
class ImportResult:
    """The imported network and how each of its numbers relates to the graph.

    ``network.metadata["qonnx"]`` holds the same as JSON: the input encoding (the graph's
    float32 pre-ops and input quantizer, see :func:`encode_input`), per hidden layer the
    graph tensor of its quantizer and the code mapping, and for the logits the graph output
    ``y = scale * (logit + offset)`` per channel.
    """

    network: Network
    layers: tuple[LayerReport, ...]
    seconds: float

    @property
    def exact(self) -> bool:
        return all(r.exact for r in self.layers)

    @property
    def info(self) -> dict:
        return self.network.metadata["qonnx"]


# -- reading the file --------------------------------------------------------------------


def _load(path: Path):
    import onnx
    from google.protobuf.message import DecodeError

    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise ImportRefusal(f"{path}: cannot be read: {e.strerror or e}") from None
    if not data:
        raise ImportRefusal(f"{path}: not an ONNX model (the file is empty)")
    try:
        model = onnx.load_from_string(data)
    except (DecodeError, ValueError, RuntimeError) as e:
        raise ImportRefusal(f"{path}: not an ONNX model (truncated or not protobuf: "
                            f"{str(e).splitlines()[0] if str(e) else type(e).__name__})") \
            from None
    if not model.HasField("graph") or not model.graph.node:
        raise ImportRefusal(f"{path}: not an ONNX model (no graph or an empty graph)")
    return model


def _check_opsets(path, model):
    versions = {o.domain: o.version for o in model.opset_import}
    std = versions.get("", versions.get("ai.onnx"))
    if std is None:
        raise ImportRefusal(f"{path}: the model imports no standard ONNX opset")
    lo, hi = OPSET_RANGE
    if not lo <= std <= hi:
        raise ImportRefusal(f"{path}: ONNX opset {std} is not supported (the importer knows "
                            f"opsets {lo}..{hi})")


def _attrs(node) -> dict:
    from onnx import helper

    out = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        out[a.name] = v.decode() if isinstance(v, bytes) else v
    return out


# -- values on the dynamic path -----------------------------------------------------------


@dataclasses.dataclass
class _Const:
    value: np.ndarray
    codes: np.ndarray | None = None      # integer codes when produced by a quantizer
    quant: dict | None = None


@dataclasses.dataclass
class _Raw:
    """The graph input before its quantizer: per-feature float32 pre-ops."""

    perm: np.ndarray                      # feature index at every position of the tensor
    pre: list                             # [(op, per-feature float32 array, const first)]


@dataclasses.dataclass
class _Codes:
    """A quantized activation: value = scale * (g * u + o), ``u`` the bundle code."""

    perm: np.ndarray
    scale: Fraction
    g: int
    o: int
    bits: int
    signed: bool                          # the bundle code (the input only can be signed)
    expand: int = 1                       # 1-bit thermometer channels per activation


@dataclasses.dataclass
class _Acc:
    """A layer's accumulator ``A`` on its way to the next quantizer or the output."""

    perm: np.ndarray                      # bundle feature at every position
    codes: np.ndarray                     # integer weights (out, in), bundle column order
    inp: _Codes
    ops: list                             # per channel elementwise ops on A
    node: str
    float_ops: list
    s_w: float = 1.0
    bipolar_w: bool = False
    chan: np.ndarray | None = None        # output channel at every position
    conv: dict | None = None              # a convolution's geometry (in_shape, kernel, ...)

    def channel(self) -> np.ndarray:
        return (self.perm if self.chan is None else self.chan).reshape(-1)


def _frac(v) -> Fraction:
    return Fraction(float(v))


def _float_ops_name(node):
    return f"{node.op_type} {node.name!r}"


class _Walker:
    def __init__(self, path: Path, model, name: str, expand: bool = True):
        self.expand = expand
        self.path = path
        self.model = model
        self.name = name
        self.values: dict[str, object] = {}
        self.layers: list[DenseLayer] = []
        self.reports: list[LayerReport] = []
        self.layer_info: list[dict] = []
        self.input_info: dict = {}
        self.input_spec: InputSpec | None = None

    # -- helpers ---------------------------------------------------------------------------

    def refuse(self, pos, node, msg):
        return node_refusal(pos, node, msg)

    def const(self, pos, node, i, what) -> _Const:
        if i >= len(node.input) or not node.input[i]:
            raise self.refuse(pos, node, f"has no {what} input")
        v = self.values.get(node.input[i])
        if not isinstance(v, _Const):
            raise self.refuse(pos, node, f"its {what} ({node.input[i]!r}) is not a constant: "
                              "only constant (initializer) operands are supported")
        return v

    # -- constants -------------------------------------------------------------------------

    def fold(self, pos, node, at):
        op = node.op_type
        ins = [self.values[n].value if n else None for n in node.input]
        a = _attrs(node)
        if op in ("Quant", "IntQuant"):
            out = self.quant_const(pos, node, ins, a)
        elif op == "BipolarQuant":
            x, s = ins[0], ins[1]
            y = np.where(x / s >= 0, 1.0, -1.0).astype(x.dtype)
            out = _Const(y * s, codes=y.astype(np.int64),
                         quant={"bipolar": True, "scale": s, "zeropt": 0})
        elif op == "Transpose":
            out = _Const(np.transpose(ins[0], a.get("perm")))
        elif op == "Reshape":
            out = _Const(ins[0].reshape(_reshape_target(ins[0].shape, ins[1])))
        elif op == "Flatten":
            ax = a.get("axis", 1)
            sh = ins[0].shape
            out = _Const(ins[0].reshape(int(np.prod(sh[:ax])), -1))
        elif op == "Identity":
            out = self.values[node.input[0]]
        elif op in ELEMENTWISE:
            f = {"Mul": np.multiply, "Add": np.add, "Sub": np.subtract, "Div": np.divide}[op]
            out = _Const(f(ins[0], ins[1]))
        else:
            raise self.refuse(pos, node, f"op {op!r} on constants is not supported")
        self.values[node.output[0]] = out

    def quant_const(self, pos, node, ins, a):
        x, scale, zp, bits = ins[:4]
        mode = str(a.get("rounding_mode", "ROUND")).upper()
        signed, narrow = int(a.get("signed", 1)), int(a.get("narrow", 0))
        b = float(np.asarray(bits).reshape(-1)[0])
        if mode not in ROUNDING_MODES:
            raise self.refuse(pos, node, f"rounding mode {mode!r} is not supported")
        if b != int(b) or b < 1:
            raise self.refuse(pos, node, f"bit width {b} is not a positive integer")
        b = int(b)
        # the QONNX executor's own arithmetic, in the tensors' dtype
        y = x / scale + zp
        if b == 1 and signed:
            codes = np.where(y >= 0, 1, -1).astype(np.int64)
        else:
            lo, hi = _int_range(signed, narrow, b)
            y = np.clip(y, lo, hi)
            codes = _round(y, mode).astype(np.int64)
        val = ((codes - zp) * scale).astype(x.dtype)
        return _Const(val, codes=codes, quant={"bipolar": b == 1 and bool(signed),
                                               "scale": scale, "zeropt": zp, "bits": b})

    # -- the walk --------------------------------------------------------------------------

    def run(self):
        g = self.model.graph
        init = {t.name for t in g.initializer}
        from onnx import numpy_helper

        for t in g.initializer:
            self.values[t.name] = _Const(numpy_helper.to_array(t))
        inputs = [i for i in g.input if i.name not in init]
        if not inputs:
            raise ImportRefusal(f"{self.path}: the graph has no non-constant input")
        used = {i for n in g.node for i in n.input}
        inputs = [i for i in inputs if i.name in used] or inputs[:1]
        if len(g.output) != 1:
            raise ImportRefusal(f"{self.path}: the graph has {len(g.output)} outputs (the "
                                "importer takes exactly one)")
        inp = inputs[0]
        for other in inputs[1:]:
            self.values[other.name] = _Raw(np.zeros((1, 1), dtype=np.int64), [])
        dims = [d.dim_value if d.HasField("dim_value") else 1
                for d in inp.type.tensor_type.shape.dim]
        if len(dims) < 2 or any(d < 1 for d in dims[1:]):
            raise ImportRefusal(f"{self.path}: graph input {inp.name!r} has shape {dims}; a "
                                "batch axis and fixed feature axes are needed")
        features = int(np.prod(dims[1:]))
        spatial = len(dims) == 4 and any(n.op_type == "Conv" for n in g.node)
        perm = _hwc([1] + dims[1:]) if spatial else \
            np.arange(features).reshape([1] + dims[1:])
        self.values[inp.name] = _Raw(perm, [])
        self.input_name = inp.name
        consumers: dict[str, int] = {}
        for n in g.node:
            for i in n.input:
                consumers[i] = consumers.get(i, 0) + 1
        self.consumers = consumers
        domains = ("", "ai.onnx") + CUSTOM_DOMAINS
        for pos, node in enumerate(g.node):
            if node.domain not in domains:
                raise self.refuse(pos, node, f"op {node.op_type!r} of domain {node.domain!r} "
                                  "is not supported")
            for i in node.input:
                if i and i not in self.values:
                    raise self.refuse(pos, node, f"input {i!r} is neither an initializer, the "
                                      "graph input, nor the output of an earlier node")
            if node.op_type == "Constant":
                from onnx import numpy_helper as nh

                a = {x.name: x for x in node.attribute}
                if "value" not in a:
                    raise self.refuse(pos, node, "only a tensor 'value' Constant is supported")
                self.values[node.output[0]] = _Const(nh.to_array(a["value"].t))
                continue
            dyn = [i for i in node.input if i and not isinstance(self.values[i], _Const)]
            if node.op_type not in SUPPORTED_OPS:
                raise self.refuse(pos, node, self.unsupported(node))
            if node.op_type == "Conv" and _attrs(node).get("group", 1) != 1:
                raise self.refuse(pos, node, f"grouped convolution (group "
                                  f"{_attrs(node)['group']}) is not supported")
            if not dyn:
                self.fold(pos, node, pos)
                continue
            if node.op_type in ("Gemm", "MatMul") and len(node.input) > 1 \
                    and node.input[1] in dyn:
                raise self.refuse(pos, node, f"its weight {node.input[1]!r} is not a constant "
                                  "(a dynamic weight)")
            if len(dyn) > 1:
                raise self.refuse(pos, node, "has two non-constant inputs (a residual or "
                                  "branching graph); only a chain of layers is supported")
            if self.consumers.get(dyn[0], 0) > 1:
                raise self.refuse(pos, node, f"tensor {dyn[0]!r} feeds more than one node (a "
                                  "residual or branching graph); only a chain is supported")
            self.step(pos, node, dyn[0])
        out = g.output[0].name
        v = self.values.get(out)
        if isinstance(v, _Acc):
            self.finish_last(v, out)
        elif isinstance(v, _Codes):
            raise ImportRefusal(f"{self.path}: the graph output {out!r} comes from a "
                                "quantizer; the last layer must output its accumulator "
                                "(no quantizer after the last Gemm/MatMul)")
        else:
            raise ImportRefusal(f"{self.path}: the graph output {out!r} is not computed by a "
                                "Gemm/MatMul layer from the input")

    def unsupported(self, node) -> str:
        op = node.op_type
        if op in ("AveragePool", "Trunc"):
            return f"op {op!r} is not imported yet"
        return f"op {op!r} is not supported"

    def step(self, pos, node, src):
        op, v = node.op_type, self.values[src]
        out = node.output[0]
        if op in REORDER:
            new = dataclasses.replace(v, perm=self.reorder(pos, node, v.perm))
            if isinstance(v, _Acc) and v.chan is not None:
                new.chan = self.reorder(pos, node, v.chan)
            self.values[out] = new
            return
        if isinstance(v, _Raw):
            if op in ELEMENTWISE:
                self.values[out] = self.pre_op(pos, node, src, v)
            elif op in QUANT_OPS:
                self.values[out] = self.input_quant(pos, node, v)
            else:
                raise self.refuse(pos, node, f"{op} on the unquantized input: the input must "
                                  "be quantized first")
            return
        if isinstance(v, _Codes):
            if op in ("Gemm", "MatMul"):
                self.values[out] = self.linear(pos, node, src, v)
                return
            if op == "Conv":
                self.values[out] = self.conv(pos, node, src, v)
                return
            if op == "MaxPool":
                self.values[out] = self.maxpool(pos, node, v)
                return
            raise self.refuse(pos, node, f"{op} after a quantizer is not supported (only a "
                              "Gemm/MatMul or a reorder may follow an activation quantizer)")
        # _Acc
        if op in ("Gemm", "MatMul", "Conv", "MaxPool"):
            raise self.refuse(pos, node, "its input is not quantized (no quantizer between "
                              "a layer and this node)")
        if op in QUANT_OPS:
            self.values[out] = self.finish_hidden(pos, node, v, out)
            return
        ch = self.channels(pos, node, v)
        if op == "Relu":
            v.ops.append(("relu",))
        elif op == "BatchNormalization":
            x = [self.const(pos, node, i, w).value.astype(np.float64)
                 for i, w in ((1, "scale"), (2, "bias"), (3, "mean"), (4, "variance"))]
            eps = float(_attrs(node).get("epsilon", 1e-5))
            m = x[0] / np.sqrt(x[3] + eps)
            a = x[1] - x[2] * m
            n_ch = v.codes.shape[0]
            if m.ndim != 1 or m.shape[0] != n_ch:
                raise self.refuse(pos, node, f"has {m.shape} parameters for {n_ch} channels")
            v.ops.append(("affine", [_frac(m[c]) for c in range(n_ch)],
                          [_frac(a[c]) for c in range(n_ch)]))
            v.float_ops.append(_float_ops_name(node))
        elif op in ELEMENTWISE:
            v.ops.append(self.channel_affine(pos, node, src, v, ch))
        else:
            raise self.refuse(pos, node, f"{op} between a layer and its quantizer is not "
                              "supported")
        self.values[out] = v

    # -- reorders --------------------------------------------------------------------------

    def reorder(self, pos, node, perm):
        op, a = node.op_type, _attrs(node)
        try:
            if op == "Identity":
                return perm
            if op == "Transpose":
                return np.transpose(perm, a.get("perm"))
            if op == "Flatten":
                ax = a.get("axis", 1)
                return perm.reshape(int(np.prod(perm.shape[:ax])), -1)
            shape = [int(t) for t in self.const(pos, node, 1, "shape").value.reshape(-1)]
            if shape and shape[0] not in (0, -1):
                shape[0] = 1                   # the batch axis (exported at any batch size)
            return perm.reshape(_reshape_target(perm.shape, shape))
        except ValueError as e:
            raise self.refuse(pos, node, f"cannot reorder shape {list(perm.shape)}: {e}") \
                from None

    # -- the input ---------------------------------------------------------------------------

    def pre_op(self, pos, node, src, v: _Raw):
        i = 1 if node.input[0] == src else 0
        c = self.const(pos, node, i, "operand").value
        if node.op_type == "Div" and i == 0:
            raise self.refuse(pos, node, "a constant divided by the input is not supported")
        try:
            full = np.broadcast_to(c, v.perm.shape)
        except ValueError:
            raise self.refuse(pos, node, f"constant of shape {list(c.shape)} does not "
                              f"broadcast to the input's {list(v.perm.shape)}") from None
        feat = np.empty(v.perm.size, dtype=c.dtype)
        feat[v.perm.reshape(-1)] = full.reshape(-1)
        return _Raw(v.perm, v.pre + [(node.op_type, feat, i == 0)])

    def quant_params(self, pos, node):
        a = _attrs(node)
        if node.op_type == "BipolarQuant":
            s = self.const(pos, node, 1, "scale").value
            return {"bipolar": True, "scale": s, "zeropt": np.zeros(()), "bits": 1,
                    "signed": True, "narrow": False, "mode": "ROUND"}
        s = self.const(pos, node, 1, "scale").value
        zp = self.const(pos, node, 2, "zero point").value
        b = self.const(pos, node, 3, "bit width").value
        mode = str(a.get("rounding_mode", "ROUND")).upper()
        if mode not in ROUNDING_MODES:
            raise self.refuse(pos, node, f"rounding mode {mode!r} is not supported")
        bits = float(np.asarray(b).reshape(-1)[0])
        if b.size != 1 or bits != int(bits) or not 1 <= bits <= 16:
            raise self.refuse(pos, node, f"bit width {b.reshape(-1)[:4].tolist()} is not one "
                              "integer in 1..16")
        signed, narrow = bool(a.get("signed", 1)), bool(a.get("narrow", 0))
        return {"bipolar": int(bits) == 1 and signed, "scale": s, "zeropt": zp,
                "bits": int(bits), "signed": signed, "narrow": narrow, "mode": mode}

    def scalar(self, pos, node, arr, what):
        arr = np.asarray(arr).reshape(-1)
        if arr.size == 0 or not np.all(arr == arr[0]):
            raise self.refuse(pos, node, f"a per-channel {what} on an activation feeding a "
                              "layer is not supported (it must be one number)")
        return arr[0]

    def input_quant(self, pos, node, v: _Raw):
        if self.input_spec is not None:
            raise self.refuse(pos, node, "quantizes a second graph input; the importer takes "
                              "one input")
        q = self.quant_params(pos, node)
        s = self.scalar(pos, node, q["scale"], "scale")
        zp = self.scalar(pos, node, q["zeropt"], "zero point")
        if not s > 0:
            raise self.refuse(pos, node, f"scale {s} is not positive")
        if zp != int(zp):
            raise self.refuse(pos, node, f"zero point {zp} is not an integer")
        zp = int(zp)
        alpha, shift = 1.0, 0.0
        for op, c, first in v.pre:
            if not np.all(c == c[0]):
                alpha = None
                break
            c0 = float(c[0])
            if op == "Mul":
                alpha, shift = alpha * c0, shift * c0
            elif op == "Div":
                alpha, shift = alpha / c0, shift / c0
            elif op == "Add":
                shift += c0
            elif first:                       # c - x
                alpha, shift = -alpha, c0 - shift
            else:
                shift -= c0
        features = v.perm.size
        if q["bipolar"]:
            bits, signed, g, o = 1, False, 2, -1
            # u = 1 iff alpha*x + shift >= 0; as the InputSpec's rounding: x >= scale / 2
            thr = (-shift / alpha) if alpha else 0.0
            scale = 2 * thr if alpha and alpha > 0 and thr > 0 else 1.0
            exact_spec = bool(alpha and alpha > 0 and thr > 0)
        else:
            bits, signed = q["bits"], q["signed"]
            g, o = 1, -zp
            scale = float(s) / alpha if alpha else float(s)
            exact_spec = bool(alpha and alpha > 0 and shift == 0 and zp == 0
                              and q["mode"] in ("HALF_UP",) and not q["narrow"])
        if bits == 1 and not q["bipolar"] and signed:
            raise self.refuse(pos, node, "a 1-bit signed input quantizer is bipolar")
        self.input_spec = InputSpec(features=features, bits=bits, signed=signed,
                                    scale=scale if scale > 0 else 1.0)
        self.input_info = {
            "tensor": node.output[0],
            "pre": [{"op": op, "const": c.astype(np.float64).tolist(), "const_first": first,
                     "dtype": str(c.dtype)} for op, c, first in v.pre],
            "quant": {"bipolar": q["bipolar"], "scale": float(s), "zeropt": zp,
                      "bits": q["bits"], "signed": q["signed"], "narrow": q["narrow"],
                      "rounding_mode": q["mode"]},
            "perm": v.perm.reshape(-1).tolist(),
            "input_spec_exact": exact_spec,
        }
        return _Codes(v.perm, _frac(s), g, o, bits, signed)

    # -- layers ----------------------------------------------------------------------------

    def linear(self, pos, node, src, v: _Codes):
        a = _attrs(node)
        if node.op_type == "Gemm":
            if node.input[0] != src or a.get("transA", 0):
                raise self.refuse(pos, node, "the activation must be Gemm's first input, not "
                                  "transposed")
            if a.get("alpha", 1.0) != 1.0:
                raise self.refuse(pos, node, f"alpha {a['alpha']} is not supported (only 1)")
        elif node.input[0] != src:
            raise self.refuse(pos, node, "the activation must be MatMul's first input")
        w = self.values[node.input[1]]
        if not isinstance(w, _Const):
            raise self.refuse(pos, node, f"its weight {node.input[1]!r} is not a constant "
                              "(a dynamic weight)")
        if w.codes is None:
            raise self.refuse(pos, node, f"its weight {node.input[1]!r} is not quantized (no "
                              "Quant/BipolarQuant node on it)")
        codes, scale = w.codes, np.asarray(w.quant["scale"], dtype=np.float64)
        if np.any(np.asarray(w.quant["zeropt"]) != 0):
            raise self.refuse(pos, node, "a weight quantizer with a non-zero zero point is "
                              "not supported")
        trans = node.op_type == "Gemm" and a.get("transB", 0)
        if codes.ndim != 2:
            raise self.refuse(pos, node, f"weight of shape {list(codes.shape)} is not 2-D")
        w_oi = codes if trans else codes.T
        sc = np.broadcast_to(scale, codes.shape)
        sc = sc if trans else sc.T
        n_out, n_in = w_oi.shape
        flat = v.perm.reshape(-1)
        if v.perm.ndim != 2 or flat.size != n_in:
            raise self.refuse(pos, node, f"input of shape {list(v.perm.shape)} does not match a "
                              f"weight with {n_in} inputs")
        if not np.all(sc == sc[:, :1]):
            raise self.refuse(pos, node, "a weight scale that varies along the input axis is "
                              "not supported")
        s_w = sc[:, 0]
        e = v.expand
        bundle = np.zeros((n_out, n_in * e), dtype=np.int64)
        for k in range(e):
            bundle[:, flat * e + k] = w_oi
        bias = np.zeros(n_out)
        if node.op_type == "Gemm" and len(node.input) > 2 and node.input[2]:
            c = self.const(pos, node, 2, "bias").value.astype(np.float64)
            beta = float(a.get("beta", 1.0))
            bias = np.broadcast_to(c, (1, n_out)).reshape(-1) * beta
            if beta != 1.0:
                bias_f = [Fraction(beta) * _frac(x) for x in np.broadcast_to(c, (1, n_out))
                          .reshape(-1)]
            else:
                bias_f = [_frac(x) for x in bias]
        else:
            bias_f = [Fraction(0)] * n_out
        rowsum = w_oi.astype(np.int64).sum(axis=1)
        m = [v.scale * _frac(s_w[c]) * v.g for c in range(n_out)]
        add = [v.scale * _frac(s_w[c]) * v.o * int(rowsum[c]) + bias_f[c] for c in range(n_out)]
        self.flatten_if_spatial(v)
        return _Acc(np.arange(n_out).reshape(1, n_out), bundle.astype(np.int64), v,
                    [("affine", m, add)], node.name or f"node{pos}", [],
                    s_w=float(np.max(s_w)), bipolar_w=bool(w.quant.get("bipolar")))

    def flatten_if_spatial(self, v: _Codes):
        from ..design.conv import FlattenLayer

        last = self.layers[-1] if self.layers else None
        if last is not None and not isinstance(last, DenseLayer):
            self.layers.append(FlattenLayer(name="flatten", in_shape=last.out_shape,
                                            in_bits=v.bits, in_signed=v.signed))

    def channels(self, pos, node, v: _Acc):
        return v.channel()

    def channel_affine(self, pos, node, src, v: _Acc, ch):
        op = node.op_type
        i = 1 if node.input[0] == src else 0
        c = self.const(pos, node, i, "operand").value
        if op == "Div" and i == 0:
            raise self.refuse(pos, node, "a constant divided by an activation is not "
                              "supported")
        try:
            full = np.broadcast_to(c, v.perm.shape).reshape(-1)
        except ValueError:
            raise self.refuse(pos, node, f"constant of shape {list(c.shape)} does not "
                              f"broadcast to {list(v.perm.shape)}") from None
        n = v.codes.shape[0]
        per: list = [None] * n
        for p, chan in enumerate(ch):
            f = _frac(full[p])
            if per[chan] is not None and per[chan] != f:
                raise self.refuse(pos, node, "a constant that differs within one channel is "
                                  "not supported")
            per[chan] = f
        one, zero = [Fraction(1)] * n, [Fraction(0)] * n
        if op == "Mul":
            return ("affine", per, zero)
        if op == "Div":
            if any(x == 0 for x in per):
                raise self.refuse(pos, node, "divides by zero")
            return ("affine", [1 / x for x in per], zero)
        if op == "Add":
            return ("affine", one, per)
        if i == 0:                          # c - x
            return ("affine", [-x for x in one], per)
        return ("affine", one, [-x for x in per])

    def acc_range(self, acc: _Acc):
        spec = acc.inp
        if spec.signed:
            lo, hi = -(1 << (spec.bits - 1)), (1 << (spec.bits - 1)) - 1
        else:
            lo, hi = 0, (1 << spec.bits) - 1
        w = acc.codes
        amax = np.where(w > 0, w * hi, w * lo).sum(axis=1)
        amin = np.where(w > 0, w * lo, w * hi).sum(axis=1)
        return amin, amax

    def scheme(self, acc: _Acc, codes):
        if acc.bipolar_w:
            return WeightScheme("binary", 1), (codes < 0).astype(np.uint8), codes
        mag = int(np.abs(codes).max(initial=0))
        n = max(2, mag.bit_length() + 1)
        if n == 2:
            return WeightScheme("ternary", 2), (codes & 3).astype(np.uint8), codes
        nz = np.abs(codes[codes != 0])
        if nz.size and np.all((nz & (nz - 1)) == 0):
            e = mag.bit_length() - 1
            for b in range(3, 7):
                if (1 << (b - 1)) - 2 >= e and b < n:
                    s = WeightScheme("pot", b)
                    return s, s.encode(codes), codes
        s = WeightScheme("int", n)
        return s, s.encode(codes), codes

    def finish_hidden(self, pos, node, acc: _Acc, out_name):
        q = self.quant_params(pos, node)
        n_out = acc.codes.shape[0]
        flat = acc.channel()
        s_arr = np.broadcast_to(np.asarray(q["scale"], dtype=np.float64),
                                acc.perm.shape).reshape(-1)
        zp_arr = np.broadcast_to(np.asarray(q["zeropt"], dtype=np.float64),
                                 acc.perm.shape).reshape(-1)
        s_ch, zp_ch = [None] * n_out, [None] * n_out
        for p, c in enumerate(flat):
            s_ch[c], zp_ch[c] = _frac(s_arr[p]), _frac(zp_arr[p])
        if any(s <= 0 for s in s_ch):
            raise self.refuse(pos, node, "a quantizer scale is not positive")
        if any(z.denominator != 1 for z in zp_ch):
            raise self.refuse(pos, node, "a quantizer zero point is not an integer")
        if q["bipolar"]:
            lo, hi, g = -1, 1, 2
        else:
            lo, hi = _int_range(q["signed"], q["narrow"], q["bits"])
            g = 1
        levels = (hi - lo) // g                      # K: the bundle codes are 0..K
        out_bits = max(1, levels.bit_length())
        k_hw = (1 << out_bits) - 1
        amin, amax = self.acc_range(acc)
        codes = acc.codes.copy()
        betas, ms, ss = [], [], []
        exact, off, max_off, margin = True, 0, 0, math.inf
        per_channel = []
        for c in range(n_out):
            ts, sense_seen = [], set()
            for k in range(1, levels + 1):
                level = lo + g * k
                if q["bipolar"]:
                    theta, incl = Fraction(0), True
                else:
                    theta, incl = code_threshold(level, q["mode"])
                t_y = (theta - zp_ch[c]) * s_ch[c]
                pred = invert((1, t_y, incl), [(o[0], o[1][c], o[2][c]) if o[0] == "affine"
                                               else o for o in acc.ops])
                if pred not in (("all",), ("none",)):
                    margin = min(margin, float(abs(pred[1] - round(pred[1]))))
                sense, t = integer_threshold(pred)
                if pred not in (("all",), ("none",)):
                    sense_seen.add(sense)
                ts.append((sense, t))
            if len(sense_seen) > 1:
                raise self.refuse(pos, node, f"channel {c}: the activation is not monotone in "
                                  "the accumulator")
            lo_a, hi_a = int(amin[c]), int(amax[c])
            if -1 in sense_seen:                # decreasing: negate the channel's weights
                codes[c] = -codes[c]
                lo_a, hi_a = -hi_a, -lo_a
                ts = [(1, -t) if s < 0 else (1, t) for s, t in ts]
            per_channel.append(([t for _, t in ts], lo_a, hi_a))
            r = solve([t for _, t in ts], k_hw, lo_a, hi_a)
            betas.append(r.beta)
            ms.append(r.multiplier)
            ss.append(r.shift)
            exact &= r.exact
            off += r.off
            max_off = max(max_off, r.max_off)
        expand = 1
        if not exact and 2 <= levels <= MAX_EXPAND and self.expand:
            # Thermometer code: one 1-bit channel per threshold, each exact.
            expand, out_bits = levels, 1
            betas, ms, ss = [], [], []
            for ts, lo_a, hi_a in per_channel:
                for t in ts:
                    r = solve([t], 1, lo_a, hi_a)
                    betas.append(r.beta)
                    ms.append(r.multiplier)
                    ss.append(r.shift)
            codes = np.repeat(codes, levels, axis=0)
            exact, off, max_off = True, 0, 0
        scheme, wcodes, _ = self.scheme(acc, codes)
        prev = acc.inp
        s_out = max(float(s) for s in s_ch) * g
        name = self.add_layer(acc, scheme=scheme, codes=wcodes, weight_scale=acc.s_w,
                              bias=np.array(betas, dtype=np.int64), in_bits=prev.bits,
                              in_signed=prev.signed, activation="relu", out_bits=out_bits,
                              out_scale=s_out,
                              requant_multiplier=np.array(ms, dtype=np.int64),
                              requant_shift=np.array(ss, dtype=np.int64))
        self.reports.append(LayerReport(name, acc.node, exact, off, max_off,
                                        0.0 if margin == math.inf else margin,
                                        tuple(acc.float_ops)))
        self.layer_info.append({"name": name, "tensor": out_name, "bipolar": q["bipolar"],
                                "index": len(self.layers) - 1, "chan": flat.tolist(),
                                "perm": acc.perm.reshape(-1).tolist(), "expand": expand,
                                "code_min": lo, "zeropt": [int(z) for z in zp_ch],
                                "scale": [float(s) for s in s_ch]})
        s0 = self.scalar(pos, node, q["scale"], "scale")
        z0 = self.scalar(pos, node, q["zeropt"], "zero point")
        o = lo - int(z0) if not q["bipolar"] else -1
        return _Codes(acc.perm, _frac(s0), g, o, out_bits, False, expand)

    def add_layer(self, acc: _Acc, **kw) -> str:
        """Append the dense or convolution layer of ``acc``; its name."""
        if acc.conv is None:
            name = f"fc{sum(isinstance(x, DenseLayer) for x in self.layers) + 1}"
            self.layers.append(DenseLayer(name=name, **kw))
            return name
        from ..design.conv import ConvLayer

        name = f"conv{sum(isinstance(x, ConvLayer) for x in self.layers) + 1}"
        g = acc.conv
        n_out = kw["codes"].shape[0]
        codes = kw.pop("codes").reshape(n_out, g["kernel"][0], g["kernel"][1], -1)
        self.layers.append(ConvLayer.from_kernel(
            name=name, codes=codes, in_shape=g["in_shape"], stride=g["stride"],
            padding=g["padding"], **kw))
        return name

    def conv(self, pos, node, src, v: _Codes):
        a = _attrs(node)
        if a.get("group", 1) != 1:
            raise self.refuse(pos, node, f"grouped convolution (group {a['group']}) is not "
                              "supported")
        if node.input[0] != src:
            raise self.refuse(pos, node, "the activation must be Conv's first input")
        if any(d != 1 for d in a.get("dilations", [1, 1])) or \
                a.get("auto_pad", "NOTSET") not in ("NOTSET", ""):
            raise self.refuse(pos, node, "dilation and auto_pad are not supported")
        w = self.values[node.input[1]]
        if not isinstance(w, _Const):
            raise self.refuse(pos, node, f"its weight {node.input[1]!r} is not a constant "
                              "(a dynamic weight)")
        if w.codes is None or w.codes.ndim != 4:
            raise self.refuse(pos, node, f"its weight {node.input[1]!r} is not a quantized "
                              "4-D kernel")
        if np.any(np.asarray(w.quant["zeropt"]) != 0):
            raise self.refuse(pos, node, "a weight quantizer with a non-zero zero point is "
                              "not supported")
        if v.perm.ndim != 4 or not np.array_equal(v.perm, _hwc(v.perm.shape)):
            raise self.refuse(pos, node, "its input is not an NCHW feature map in the order "
                              "the previous layer writes it")
        _, c, h, wd = v.perm.shape
        n_out, c_w, kh, kw = w.codes.shape
        if c_w != c:
            raise self.refuse(pos, node, f"kernel has {c_w} input channels, the map {c}")
        pads = list(a.get("pads", [0, 0, 0, 0]))
        if pads[:2] != pads[2:]:
            raise self.refuse(pos, node, f"asymmetric padding {pads} is not supported")
        if any(pads) and (v.o != 0 or v.g != 1):
            raise self.refuse(pos, node, "zero padding of an activation whose code 0 is not "
                              "the value 0 (signed or bipolar codes) is not supported")
        stride = tuple(a.get("strides", [1, 1]))
        s_w = np.broadcast_to(np.asarray(w.quant["scale"], dtype=np.float64),
                              w.codes.shape).reshape(n_out, -1)
        if not np.all(s_w == s_w[:, :1]):
            raise self.refuse(pos, node, "a weight scale that varies within a kernel is not "
                              "supported")
        s_w = s_w[:, 0]
        ohwi = np.transpose(w.codes, (0, 2, 3, 1)).astype(np.int64)
        e = v.expand
        core = np.repeat(ohwi, e, axis=3).reshape(n_out, -1)
        bias_f = [Fraction(0)] * n_out
        if len(node.input) > 2 and node.input[2]:
            b = self.const(pos, node, 2, "bias").value.astype(np.float64).reshape(-1)
            bias_f = [_frac(x) for x in b]
        rowsum = ohwi.reshape(n_out, -1).sum(axis=1)
        m = [v.scale * _frac(s_w[o]) * v.g for o in range(n_out)]
        add = [v.scale * _frac(s_w[o]) * v.o * int(rowsum[o]) + bias_f[o]
               for o in range(n_out)]
        ho = (h + 2 * pads[0] - kh) // stride[0] + 1
        wo = (wd + 2 * pads[1] - kw) // stride[1] + 1
        shape = (1, n_out, ho, wo)
        chan = np.broadcast_to(np.arange(n_out).reshape(1, n_out, 1, 1), shape).copy()
        geom = {"in_shape": (h, wd, c * e), "kernel": (kh, kw), "stride": stride,
                "padding": (pads[0], pads[1])}
        return _Acc(_hwc(shape), core, v, [("affine", m, add)], node.name or f"node{pos}",
                    [], s_w=float(np.max(s_w)), bipolar_w=bool(w.quant.get("bipolar")),
                    chan=chan, conv=geom)

    def maxpool(self, pos, node, v: _Codes):
        from ..design.conv import MaxPoolLayer

        a = _attrs(node)
        if any(a.get("pads", [0])) or a.get("ceil_mode", 0) or \
                any(d != 1 for d in a.get("dilations", [1, 1])):
            raise self.refuse(pos, node, "padding, ceil_mode and dilation are not supported")
        if v.perm.ndim != 4 or not np.array_equal(v.perm, _hwc(v.perm.shape)):
            raise self.refuse(pos, node, "its input is not an NCHW feature map in the order "
                              "the previous layer writes it")
        _, c, h, w = v.perm.shape
        k = tuple(a["kernel_shape"])
        st = tuple(a.get("strides", [1, 1]))
        name = f"pool{sum(isinstance(x, MaxPoolLayer) for x in self.layers) + 1}"
        layer = MaxPoolLayer(name=name, in_shape=(h, w, c * v.expand), kernel=k, stride=st,
                             in_bits=v.bits, in_signed=v.signed)
        self.layers.append(layer)
        ho, wo = layer.out_shape[:2]
        return dataclasses.replace(v, perm=_hwc((1, c, ho, wo)))

    def finish_last(self, acc: _Acc, out_name):
        if acc.conv is not None:
            raise ImportRefusal(f"{self.path}: the last layer ({acc.node!r}) is a "
                                "convolution; the logits must come from a Gemm/MatMul")
        order = acc.perm.reshape(-1)
        codes = acc.codes[order].copy()
        scales, offsets, betas = [], [], []
        for row, c in enumerate(order):
            m, a = Fraction(1), Fraction(0)
            for op in acc.ops:
                if op[0] == "relu":
                    raise ImportRefusal(f"{self.path}: a Relu after the last layer "
                                        f"({acc.node!r}) is not supported; the last layer "
                                        "outputs its accumulator")
                m, a = op[1][c] * m, op[1][c] * a + op[2][c]
            if m == 0:
                raise ImportRefusal(f"{self.path}: output channel {row} of {acc.node!r} is "
                                    "constant (zero scale)")
            if m < 0:
                codes[row] = -codes[row]
                m = -m
                # y = -m*A + a = m*(-A) + a
            q = a / m
            beta = math.floor(q + Fraction(1, 2))
            betas.append(beta)
            scales.append(float(m))
            offsets.append(float(q - beta))
        scheme, wcodes, _ = self.scheme(acc, codes)
        prev = acc.inp
        name = self.add_layer(acc, scheme=scheme, codes=wcodes, weight_scale=acc.s_w,
                              bias=np.array(betas, dtype=np.int64), in_bits=prev.bits,
                              in_signed=prev.signed, activation="none")
        self.reports.append(LayerReport(name, acc.node, True, 0, 0, 0.0, tuple(acc.float_ops)))
        self.output_info = {"tensor": out_name, "scale": scales, "offset": offsets,
                            "perm": order.tolist()}


def _hwc(shape) -> np.ndarray:
    """For an NCHW tensor of ``shape`` (batch 1), the HWC index of every position."""
    _, c, h, w = shape
    cc, hh, ww = np.meshgrid(np.arange(c), np.arange(h), np.arange(w), indexing="ij")
    return ((hh * w + ww) * c + cc).reshape(1, c, h, w)


def _int_range(signed, narrow, bits):
    if signed:
        lo = -(1 << (bits - 1)) + (1 if narrow else 0)
        return lo, (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1 - (1 if narrow else 0)


def _round(y, mode):
    if mode in ("ROUND", "HALF_EVEN"):
        return np.round(y)
    if mode == "CEIL":
        return np.ceil(y)
    if mode == "FLOOR":
        return np.floor(y)
    if mode == "UP":
        return np.sign(y) * np.ceil(np.abs(y))
    if mode == "DOWN":
        return np.fix(y)
    if mode == "HALF_UP":
        return np.sign(y) * np.floor(np.abs(y) + 0.5)
    return np.sign(y) * np.ceil(np.abs(y) - 0.5)


def _reshape_target(shape, target):
    target = [int(t) for t in np.asarray(target).reshape(-1)]
    out = [shape[i] if t == 0 else t for i, t in enumerate(target)]
    return out


def encode_input(info: dict, x) -> np.ndarray:
    """The bundle's input codes for float inputs ``x`` (``(batch, features)`` in the graph
    input's C order), computed as the graph computes them: its float32 pre-ops, then its
    input quantizer (for a ``FloatQuant`` graph: fp32 bit patterns of the quantized input).
    ``info``: ``network.metadata["qonnx"]``."""
    inp = info["input"]
    if "float_quant" in inp:
        from .floatquant import encode_float_input

        return encode_float_input(info, x)
    x = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
    for p in inp["pre"]:
        c = np.asarray(p["const"], dtype=p["dtype"])
        a, b = (c, x) if p["const_first"] else (x, c)
        x = {"Mul": np.multiply, "Add": np.add, "Sub": np.subtract,
             "Div": np.divide}[p["op"]](a, b)
    q = inp["quant"]
    y = x / np.float32(q["scale"]) + np.float32(q["zeropt"])
    if q["bipolar"]:
        return (y >= 0).astype(np.int64)
    lo, hi = _int_range(q["signed"], q["narrow"], q["bits"])
    return _round(np.clip(y, lo, hi), q["rounding_mode"]).astype(np.int64)


def import_qonnx(path, *, name: str | None = None, expand: bool = True) -> ImportResult:
    """Read the QONNX model at ``path`` and return the integer network it computes.

    ``expand``: where a hidden layer's multiply-and-shift requantization cannot be exact and
    its activation has at most :data:`MAX_EXPAND` thresholds, give every activation one
    1-bit channel per threshold (a thermometer code, exact by construction; the next layer's
    weight columns are repeated).  Without it such a layer is imported inexactly and its
    report gives the bound.

    Raises
    ------
    ImportRefusal
        For a file that is not an ONNX model, an unsupported opset, or any node outside the
        supported set (naming the op, the node and its position).
    """
    import time

    t0 = time.perf_counter()
    path = Path(path)
    model = _load(path)
    _check_opsets(path, model)
    net_name = name or re.sub(r"[^A-Za-z0-9_-]", "_", path.stem) or "imported"
    if any(n.op_type == "FloatQuant" for n in model.graph.node):
        from .floatquant import import_float

        net = import_float(path, model, net_name)
        reports = tuple(LayerReport(layer.name, layer.name, True, 0, 0, 0.0,
                                    ("fp32 accumulation in index order",))
                        for layer in net.layers)
        return ImportResult(net, reports, time.perf_counter() - t0)
    w = _Walker(path, model, net_name, expand)
    try:
        w.run()
    except ImportRefusal:
        raise
    except (ValueError, TypeError, IndexError, KeyError, AttributeError, ArithmeticError) as e:
        raise ImportRefusal(f"{path}: the graph cannot be imported: {e}") from None
    info = {"file": path.name, "input": w.input_info, "layers": w.layer_info,
            "output": w.output_info, "report": [r.as_json() for r in w.reports]}
    net = Network(name=net_name, input=w.input_spec, layers=tuple(w.layers),
                  metadata={"source": "qonnx", "qonnx": info})
    return ImportResult(net, tuple(w.reports), time.perf_counter() - t0)
