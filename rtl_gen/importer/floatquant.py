"""QONNX graphs with ``FloatQuant`` (minifloat weights and input, fp32 arithmetic) into
float-activation networks (:class:`~rtl_gen.design.float_network.FloatNetwork`).

The chain is ``FloatQuant`` on the input, then ``Gemm``/``MatMul`` layers whose weights go
through ``FloatQuant`` (with a float bias), ``Relu`` between them.  A weight quantizer whose
scale is a power of two becomes a minifloat weight space (``E4M3b9``: the scale folded into
the exponent bias, every value exact); any other scale gives fp32 weights holding exactly
the float32 values the graph computes.  The input quantizer is applied by
:func:`encode_float_input` (the network itself takes fp32).  A ``FloatQuant`` on a hidden
activation has no counterpart in the float family (its activations are fp32) and is refused.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..design.float_network import FloatLayer, FloatNetwork
from ..numerics.minifloat import MinifloatFormat, f32_to_bits
from .refusals import ImportRefusal, node_refusal

__all__ = ["encode_float_input", "float_quant", "import_float"]


def _params(node, values):
    ins = [values.get(i) for i in node.input]
    if any(v is None for v in ins[1:6]):
        return None
    scale, e, m, bias, max_val = (np.asarray(v, dtype=np.float32) for v in ins[1:6])
    return {"scale": float(scale.reshape(-1)[0]), "exp": int(e.reshape(-1)[0]),
            "man": int(m.reshape(-1)[0]), "bias": int(bias.reshape(-1)[0]),
            "max": float(max_val.reshape(-1)[0]), "scalar": scale.size == 1}


def float_quant(x, p) -> np.ndarray:
    """``FloatQuant`` of float32 ``x`` with the parameters ``p``: ``x / scale`` rounded to
    the minifloat (nearest even, subnormals), clamped to ``max``, times ``scale``, in
    float32 as the graph computes it."""
    fmt = MinifloatFormat(p["exp"], p["man"], p["bias"])
    y = np.asarray(x, dtype=np.float32) / np.float32(p["scale"])
    q = fmt.quantize(np.clip(y.astype(np.float64), -p["max"], p["max"]))
    q = np.clip(q, -p["max"], p["max"]).astype(np.float32)
    return (q * np.float32(p["scale"])).astype(np.float32)


def encode_float_input(info: dict, x) -> np.ndarray:
    """The float network's input (fp32 bit patterns) for float inputs ``x``: the graph's
    input ``FloatQuant``."""
    x = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
    return f32_to_bits(float_quant(x, info["input"]["float_quant"]))


def _check_attrs(pos, node):
    from .qonnx import _attrs

    a = _attrs(node)
    if not a.get("has_subnormal", 0) or not a.get("saturation", 1) or \
            str(a.get("rounding_mode", "ROUND")).upper() not in ("ROUND", "HALF_EVEN"):
        raise node_refusal(pos, node, "only FloatQuant with subnormals, saturation and "
                           "round-to-nearest-even is supported")


def import_float(path: Path, model, name: str):
    """The :class:`FloatNetwork` of a ``FloatQuant`` graph, with its metadata."""
    from onnx import numpy_helper

    g = model.graph
    values = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    init = set(values)
    inputs = [i for i in g.input if i.name not in init]
    if len(inputs) != 1:
        raise ImportRefusal(f"{path}: the graph has {len(inputs)} non-constant inputs")
    state = {inputs[0].name: "raw"}
    features = int(np.prod([d.dim_value for d in inputs[0].type.tensor_type.shape.dim][1:]))
    layers, pending, in_quant = [], None, None
    for pos, node in enumerate(g.node):
        op = node.op_type
        dyn = [i for i in node.input if i in state]
        if op == "FloatQuant":
            _check_attrs(pos, node)
            p = _params(node, values)
            if p is None or not p["scalar"]:
                raise node_refusal(pos, node, "needs constant, per-tensor parameters")
            if not dyn:
                values[node.output[0]] = ("fq", float_quant(values[node.input[0]], p), p)
                continue
            if state[dyn[0]] != "raw" or in_quant is not None:
                raise node_refusal(pos, node, "a FloatQuant on a hidden activation is not "
                                   "supported (float networks keep fp32 activations)")
            in_quant = p
            state[node.output[0]] = "act"
        elif op in ("Gemm", "MatMul") and dyn == [node.input[0]]:
            if state[dyn[0]] not in ("act", "relu"):
                raise node_refusal(pos, node, "its input is not quantized")
            w = values.get(node.input[1])
            if not (isinstance(w, tuple) and w[0] == "fq"):
                raise node_refusal(pos, node, "its weight is not a FloatQuant of a constant")
            _, wq, p = w
            from .qonnx import _attrs

            a = _attrs(node)
            w_oi = wq if (op == "Gemm" and a.get("transB", 0)) else wq.T
            bias = np.zeros(w_oi.shape[0], np.float32)
            if op == "Gemm" and len(node.input) > 2 and node.input[2]:
                b = values[node.input[2]]
                bias = (b[1] if isinstance(b, tuple) else b).astype(np.float32).reshape(-1)
            if pending is not None:
                layers.append(pending)
            e = math.log2(p["scale"])
            if e == int(e):
                fmt = MinifloatFormat(p["exp"], p["man"], p["bias"] - int(e))
                space, codes = fmt.name, fmt.encode(w_oi.astype(np.float64))
            else:
                space, codes = "float", f32_to_bits(w_oi)
            pending = dict(name=f"fc{len(layers) + 1}", space=space, codes=codes, scale=None,
                           bias=f32_to_bits(bias), activation="none",
                           float_weight=w_oi.astype(np.float32), float_bias=bias)
            state[node.output[0]] = "acc"
        elif op == "Relu" and dyn and state[dyn[0]] == "acc":
            pending["activation"] = "relu"
            state[node.output[0]] = "relu"
        else:
            raise node_refusal(pos, node, f"op {op!r} is not supported in a FloatQuant graph")
    if pending is None or g.output[0].name not in state or \
            state[g.output[0].name] != "acc":
        raise ImportRefusal(f"{path}: the graph output is not a Gemm/MatMul layer's output")
    layers.append(pending)
    net = FloatNetwork(name=name, in_features=features, input_scale=None,
                       layers=tuple(FloatLayer(**kw) for kw in layers),
                       metadata={"source": "qonnx",
                                 "qonnx": {"file": Path(path).name,
                                           "input": {"float_quant": in_quant}}})
    return net

