"""Integer bundles of format version 2: networks with convolution, pooling and flatten.

Version 2 is version 1 (:mod:`.integer`) with layer kinds: every layer object has a
``kind``, and its fields are those of that kind (``weights/FORMAT.md``, *Version 2*)::

    dense            the version-1 layer object, unchanged
    conv             name, kind, in_shape [H, W, C], out_channels, kernel [kh, kw],
                     stride [sh, sw], padding [ph, pw], and a dense layer's in_bits,
                     in_signed, weight, bias, activation, out_bits, out_scale, requant, tr,
                     float; weight codes and float weights (out_channels, kh, kw, C)
    maxpool, avgpool name, kind, in_shape, kernel, stride, in_bits, in_signed
    global_avgpool   name, kind, in_shape, in_bits, in_signed
    flatten          name, kind, in_shape, in_bits, in_signed

:func:`rtl_gen.bundle.write_bundle` writes version 1 for a network of dense layers only
(so every dense bundle keeps its bytes) and version 2 otherwise
(:func:`layered_manifest`); :func:`rtl_gen.bundle.read_int_bundle` reads both, version 2
through :func:`read_layered`, validated like version 1: the schema
(:data:`LAYERED_SCHEMA`), then per layer its fields, its geometry, the chain of shapes,
widths and signs, and its arrays, every error naming the file, the layer and the field.
"""

from __future__ import annotations

import copy

import numpy as np

from ..design.conv import (
    MAX_KERNEL,
    AvgPoolLayer,
    ConvLayer,
    FlattenLayer,
    GlobalAvgPoolLayer,
    MaxPoolLayer,
    check_window,
)
from ..design.network import DenseLayer, Network, TRConfig
from ..errors import BundleError, SpecError
from .container import (
    FORMAT_NAME,
    MAX_FEATURES,
    StrictValidator,
    json_value,
    little_endian,
)
from .integer import _ARRAYS, MANIFEST_SCHEMA, _file_stems, _int, build_start

__all__ = ["LAYERED_SCHEMA", "LAYERED_VALIDATOR", "LAYERED_VERSION", "LAYER_KINDS",
           "layered_manifest", "read_layered"]

#: The version of bundles with layer kinds beyond ``dense``.
LAYERED_VERSION = 2
#: Every layer ``kind`` of version 2.
LAYER_KINDS = ("dense", "conv", "maxpool", "avgpool", "global_avgpool", "flatten")

# -- the manifest's schema ------------------------------------------------------------------

_DENSE = copy.deepcopy(MANIFEST_SCHEMA["properties"]["layers"]["items"])
#: The fields a convolution shares with a dense layer, in their manifest order.
_WEIGHT_FIELDS = ("in_bits", "in_signed", "weight", "bias", "activation", "out_bits",
                  "out_scale", "requant", "tr", "float")
_SHAPE = {"type": "array", "minItems": 3, "maxItems": 3, "items": _int(1, MAX_FEATURES)}


def _pair(lo: int, hi: int) -> dict:
    return {"type": "array", "minItems": 2, "maxItems": 2, "items": _int(lo, hi)}


def _layer(properties: dict) -> dict:
    return {"type": "object", "additionalProperties": False, "required": list(properties),
            "properties": properties}


_NAME = {"type": "string", "minLength": 1}
_IO = {k: _DENSE["properties"][k] for k in ("in_bits", "in_signed")}
_KIND_SCHEMAS = {
    "dense": _DENSE,
    "conv": _layer({"name": _NAME, "kind": {"const": "conv"}, "in_shape": _SHAPE,
                    "out_channels": _int(1, MAX_FEATURES), "kernel": _pair(1, MAX_KERNEL),
                    "stride": _pair(1, MAX_KERNEL), "padding": _pair(0, MAX_KERNEL - 1),
                    **{k: _DENSE["properties"][k] for k in _WEIGHT_FIELDS}}),
    "maxpool": _layer({"name": _NAME, "kind": {"const": "maxpool"}, "in_shape": _SHAPE,
                       "kernel": _pair(1, MAX_KERNEL), "stride": _pair(1, MAX_KERNEL),
                       **_IO}),
    "avgpool": _layer({"name": _NAME, "kind": {"const": "avgpool"}, "in_shape": _SHAPE,
                       "kernel": _pair(1, MAX_KERNEL), "stride": _pair(1, MAX_KERNEL),
                       **_IO}),
    "global_avgpool": _layer({"name": _NAME, "kind": {"const": "global_avgpool"},
                              "in_shape": _SHAPE, **_IO}),
    "flatten": _layer({"name": _NAME, "kind": {"const": "flatten"}, "in_shape": _SHAPE,
                       **_IO}),
}

#: JSON Schema (Draft 2020-12) of a version-2 manifest: version 1's top level, and each layer
#: object by its ``kind``.  Cross-field rules (geometry, the chain, shapes of arrays) are
#: checked afterwards.
LAYERED_SCHEMA: dict = copy.deepcopy(MANIFEST_SCHEMA)
LAYERED_SCHEMA.update({
    "$id": "https://rtl-gen.invalid/schemas/bundle-manifest-v2.json",
    "title": "rtl_gen weight bundle manifest, version 2",
})
LAYERED_SCHEMA["properties"]["version"] = {"const": LAYERED_VERSION}
LAYERED_SCHEMA["properties"]["layers"]["items"] = {
    "type": "object",
    "required": ["kind"],
    "properties": {"kind": {"enum": list(LAYER_KINDS)}},
    "allOf": [{"if": {"required": ["kind"], "properties": {"kind": {"const": kind}}},
               "then": schema} for kind, schema in _KIND_SCHEMAS.items()],
}

LAYERED_VALIDATOR = StrictValidator(LAYERED_SCHEMA)


# -- writing --------------------------------------------------------------------------------

def layered_manifest(net: Network, manifest_file: str) -> tuple[dict, dict[str, np.ndarray]]:
    """The version-2 manifest of ``net`` (a JSON-ready dict in its fixed field order) and
    its arrays by file name, as :func:`rtl_gen.bundle.write_bundle` writes them."""
    arrays: dict[str, np.ndarray] = {}
    layers = []
    for layer, stem in zip(net.layers, _file_stems(net), strict=True):
        def put(suffix: str, a: np.ndarray, dtype=None, *, stem=stem) -> str:
            fname = f"{stem}.{suffix}.npy"
            arrays[fname] = little_endian(a, dtype)
            return fname

        entry = {"name": layer.name, "kind": layer.kind}
        if isinstance(layer, DenseLayer):
            entry.update(in_features=layer.in_features, out_features=layer.out_features)
            entry.update(_weight_fields(layer, layer.codes, layer.float_weight, put,
                                        manifest_file))
        elif isinstance(layer, ConvLayer):
            entry.update(in_shape=list(layer.in_shape), out_channels=layer.out_channels,
                         kernel=list(layer.kernel), stride=list(layer.stride),
                         padding=list(layer.padding))
            entry.update(_weight_fields(layer, layer.kernel_codes, layer.kernel_float_weight,
                                        put, manifest_file))
        else:
            entry["in_shape"] = list(layer.in_shape)
            if isinstance(layer, (MaxPoolLayer, AvgPoolLayer)):
                entry.update(kernel=list(layer.kernel), stride=list(layer.stride))
            entry.update(in_bits=int(layer.in_bits), in_signed=bool(layer.in_signed))
        layers.append(entry)
    manifest = {
        "format": FORMAT_NAME,
        "version": LAYERED_VERSION,
        "name": net.name,
        "input": {
            "features": int(net.input.features),
            "bits": int(net.input.bits),
            "signed": bool(net.input.signed),
            "scale": float(net.input.scale),
        },
        "labels": None if net.labels is None else list(net.labels),
        "metadata": json_value(net.metadata, "metadata", manifest_file),
        "layers": layers,
    }
    return manifest, arrays


def _weight_fields(layer, codes, float_weight, put, manifest_file: str) -> dict:
    """The fields of a layer with weights after its shape: exactly version 1's."""
    if float_weight is not None and float_weight.dtype.itemsize > 8:
        raise BundleError(manifest_file, f"float arrays are stored as float64 or narrower, "
                          f"not {float_weight.dtype}", layer=layer.name, field="float.weight")
    relu = layer.activation == "relu"
    return {
        "in_bits": int(layer.in_bits),
        "in_signed": bool(layer.in_signed),
        "weight": {
            "scheme": layer.scheme.name,
            "scale": float(layer.weight_scale),
            "codes": put("codes", codes, layer.scheme.code_dtype),
        },
        "bias": put("bias", layer.bias, np.int64),
        "activation": layer.activation,
        "out_bits": int(layer.out_bits) if relu else None,
        "out_scale": float(layer.out_scale) if relu else None,
        "requant": {
            "multiplier": put("requant_m", layer.requant_multiplier, np.int64),
            "shift": put("requant_s", layer.requant_shift, np.int64),
        } if relu else None,
        "tr": None if layer.tr is None else {
            "group": int(layer.tr.group),
            "budget": int(layer.tr.budget),
            "data_terms": None if layer.tr.data_terms is None else int(layer.tr.data_terms),
        },
        "float": None if float_weight is None else {
            "weight": put("float_weight", float_weight),
            "bias": put("float_bias", layer.float_bias),
        },
    }


# -- reading --------------------------------------------------------------------------------

def _fmt(shape) -> str:
    return "x".join(str(d) for d in shape)


def read_layered(reader, m: dict) -> Network:
    """The network of a version-2 manifest ``m`` that ``reader`` (the integer bundle
    reader, :mod:`.integer`) has opened and checked against :data:`LAYERED_SCHEMA`.

    Raises
    ------
    BundleError
        At the first problem, naming the file, the layer and the field.
    """
    m["input"]["scale"] = reader.scale(m["input"]["scale"], None, "input.scale")
    layers_m = m["layers"]
    # what the previous layer gives: (features, shape or None, bits, signed, source)
    prev = (m["input"]["features"], None, m["input"]["bits"], m["input"]["signed"],
            "the input")
    arrays = []
    for i, lm in enumerate(layers_m):
        last = i == len(layers_m) - 1
        name, kind = lm["name"], lm["kind"]
        scheme = None
        if kind in ("dense", "conv"):
            scheme = reader.check_layer_fields(lm, last)
        elif last:
            reader.fail(f"a {kind} layer cannot be the last layer: the last layer outputs the "
                        "logits (a dense or conv layer with activation 'none')", layer=name,
                        field="kind")
        out_shape = _geometry(reader, lm)
        _check_link(reader, lm, prev)
        if kind == "dense":
            arrays.append(reader.load_layer_arrays(lm, scheme))
            prev = (lm["out_features"], None, lm["out_bits"], False, f"layer {name!r}")
            continue
        if kind == "conv":
            arrays.append(_load_conv_arrays(reader, lm, scheme))
            out_bits, out_signed = lm["out_bits"], False
        else:
            arrays.append({"files": {}})
            out_bits, out_signed = lm["in_bits"], lm["in_signed"]
        features = out_shape[0] * out_shape[1] * out_shape[2] if len(out_shape) == 3 \
            else out_shape[0]
        prev = (features, out_shape if len(out_shape) == 3 else None, out_bits, out_signed,
                f"layer {name!r}")
    return _build(reader, m, arrays)


def _geometry(reader, lm: dict) -> tuple[int, ...]:
    """The layer's output shape: ``(Ho, Wo, C)`` for a map, ``(features,)`` for a flat
    vector; its window checked by :func:`rtl_gen.design.conv.check_window`."""
    kind, name = lm["kind"], lm["name"]
    if kind == "dense":
        return (lm["out_features"],)
    try:
        kernel, stride = lm.get("kernel", 1), lm.get("stride", 1)
        in_shape, _, _, _, (ho, wo) = check_window(lm["in_shape"], kernel, stride,
                                                   lm.get("padding", 0), name)
    except SpecError as e:
        reader.fail(e.message, layer=name, field=e.field)
    if kind == "conv":
        return ho, wo, lm["out_channels"]
    if kind in ("maxpool", "avgpool"):
        return ho, wo, in_shape[2]
    if kind == "global_avgpool":
        return (in_shape[2],)
    return (in_shape[0] * in_shape[1] * in_shape[2],)  # flatten


def _check_link(reader, lm: dict, prev: tuple) -> None:
    """The layer takes what the previous one gives: a flat vector of ``in_features`` for a
    dense layer; the same map (or as many codes, after a flat vector) for the others;
    widths and sign."""
    name = lm["name"]
    features, shape, bits, signed, source = prev
    if lm["kind"] == "dense":
        if shape is not None:
            reader.fail(f"is {lm['in_features']} but {source} gives a {_fmt(shape)} feature "
                        "map; a dense layer takes a flat vector: put a flatten layer between "
                        "them", layer=name, field="in_features")
        reader.check_chain(lm, (features, bits, signed, source))
        return
    in_shape = lm["in_shape"]
    if shape is not None and tuple(in_shape) != tuple(shape):
        reader.fail(f"is {_fmt(in_shape)} but {source} gives a {_fmt(shape)} feature map",
                    layer=name, field="in_shape")
    n = in_shape[0] * in_shape[1] * in_shape[2]
    if shape is None and n != features:
        reader.fail(f"is {_fmt(in_shape)} ({n} codes) but {source} gives {features} "
                    "features", layer=name, field="in_shape")
    if lm["in_bits"] != bits:
        reader.fail(f"is {lm['in_bits']} but {source} gives {bits}-bit codes", layer=name,
                    field="in_bits")
    if lm["in_signed"] != signed:
        reader.fail(f"is {str(lm['in_signed']).lower()} but {source} gives "
                    f"{'signed' if signed else 'unsigned'} codes", layer=name,
                    field="in_signed")


def _load_conv_arrays(reader, lm: dict, scheme) -> dict:
    name = lm["name"]
    n_out = lm["out_channels"]
    kernel = (n_out, *lm["kernel"], lm["in_shape"][2])
    shapes = {"weight.codes": kernel, "float.weight": kernel}
    out = {"scheme": scheme, "files": {}}
    for field, keys, _, kind in _ARRAYS:
        node = lm
        for k in keys[:-1]:
            node = node[k]
        if node is None:
            continue
        file = reader.array_path(node[keys[-1]], name, field)
        out["files"][field] = str(file)
        a = reader.load_npy(file, name, field, kind, shapes.get(field, (n_out,)))
        out[field] = reader.check_values(a, str(file), name, field, scheme)
    return out


def _build(reader, m: dict, arrays: list[dict]) -> Network:
    """The design objects; a :class:`SpecError` becomes a :class:`BundleError` naming the
    array file when the field is an array, else the manifest."""
    files, convert, input_spec = build_start(reader.manifest_file, m)
    layers = []
    for lm, arr in zip(m["layers"], arrays, strict=True):
        name, kind = lm["name"], lm["kind"]
        files.update({(name, f): path for f, path in arr["files"].items()})
        try:
            if kind in ("dense", "conv"):
                weights = dict(
                    name=name, scheme=arr["scheme"], codes=arr["weight.codes"],
                    weight_scale=lm["weight"]["scale"], bias=arr["bias"],
                    in_bits=lm["in_bits"], in_signed=lm["in_signed"],
                    activation=lm["activation"], out_bits=lm["out_bits"],
                    out_scale=lm["out_scale"],
                    requant_multiplier=arr.get("requant.multiplier"),
                    requant_shift=arr.get("requant.shift"),
                    tr=None if lm["tr"] is None else TRConfig(**lm["tr"]),
                    float_weight=arr.get("float.weight"), float_bias=arr.get("float.bias"))
                if kind == "dense":
                    layers.append(DenseLayer(**weights))
                else:
                    layers.append(ConvLayer.from_kernel(
                        **weights, in_shape=lm["in_shape"], stride=lm["stride"],
                        padding=lm["padding"]))
            elif kind in ("maxpool", "avgpool"):
                cls = MaxPoolLayer if kind == "maxpool" else AvgPoolLayer
                layers.append(cls(name=name, in_shape=lm["in_shape"], kernel=lm["kernel"],
                                  stride=lm["stride"], in_bits=lm["in_bits"],
                                  in_signed=lm["in_signed"]))
            else:
                cls = GlobalAvgPoolLayer if kind == "global_avgpool" else FlattenLayer
                layers.append(cls(name=name, in_shape=lm["in_shape"], in_bits=lm["in_bits"],
                                  in_signed=lm["in_signed"]))
        except SpecError as e:
            convert(e, name)
    try:
        return Network(name=m["name"], input=input_spec, layers=tuple(layers),
                       labels=None if m["labels"] is None else tuple(m["labels"]),
                       metadata=m["metadata"])
    except SpecError as e:
        convert(e, None)

