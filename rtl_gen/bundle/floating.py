"""Float bundles: a :class:`~rtl_gen.design.float_network.FloatNetwork` on disk, versioned and
validated.

The same folder layout and guarantees as the integer bundles of :mod:`rtl_gen.bundle`
(deterministic bytes, written atomically, every error naming the file, layer and field),
with ``"format": "rtl_gen-float-bundle"``::

    digits-mpwn-ternary-float/
    ├── manifest.json        format, version, name, input, labels, metadata, layers
    ├── fc1.codes.npy        (out, in)  float32 weights ("float"), uint8 codes (binary,
    │                                   ternary) or uint16 minifloat codes ("E4M3", ...)
    ├── fc1.scale.npy        (out,)     float32 alpha per output    (binary, ternary only)
    ├── fc1.bias.npy         (out,)     float32 bias
    ├── fc1.float_weight.npy (out, in)  float weights it came from  (optional)
    ├── fc1.float_bias.npy   (out,)     float bias it came from     (optional)
    └── fc2.*.npy

Every layer entry of the manifest holds ``name``, ``space`` (``float``, ``binary``,
``ternary`` or a minifloat name), ``in_features``, ``out_features``, ``activation`` and the
file names.  ``weights/FORMAT.md`` documents both formats.

Version 2 adds the accumulation contract the network is computed on
(:mod:`rtl_gen.design.float_network`)::

    "accumulation": "sequential",  "window": null
    "accumulation": "exact",       "window": {"lsb": -32, "msb": 15}

A version 1 bundle has neither and is read as ``"sequential"``, the only contract there was.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np

from ..design.float_network import ACCUMULATIONS, FloatLayer, FloatNetwork, parse_space
from ..errors import BundleError, SpecError
from ..numerics.exact import ExactWindow
from .container import (
    FLOAT_FORMAT_NAME,
    MANIFEST_NAME,
    MAX_FEATURES,
    NAME_SCHEMA,
    Reader,
    check_name,
    json_value,
    little_endian,
    write_folder,
)

__all__ = ["FLOAT_FORMAT_VERSION", "FLOAT_MANIFEST_SCHEMA", "read_float_bundle",
           "write_float_bundle"]

FLOAT_FORMAT_VERSION = 2
_SUPPORTED = (1, 2)

_FILE = {"type": "string", "minLength": 1}
_FILE_OR_NULL = {"anyOf": [_FILE, {"type": "null"}]}
_NAME = {"type": "string", "pattern": "^[A-Za-z0-9_-]+$"}
_FEATURES = {"type": "integer", "minimum": 1, "maximum": MAX_FEATURES}

FLOAT_MANIFEST_SCHEMA: dict = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "required": ["format", "version", "name", "input", "labels", "metadata", "layers"],
    "properties": {
        "format": {"const": FLOAT_FORMAT_NAME},
        "version": {"type": "integer"},
        "name": NAME_SCHEMA,
        "input": {
            "type": "object", "additionalProperties": False,
            "required": ["features", "scale"],
            "properties": {"features": _FEATURES,
                           "scale": {"anyOf": [{"type": "number", "exclusiveMinimum": 0},
                                               {"type": "null"}]}},
        },
        "labels": {"anyOf": [{"type": "array", "items": {"type": "string"}},
                             {"type": "null"}]},
        "metadata": {"type": "object"},
        "accumulation": {"enum": list(ACCUMULATIONS)},
        "window": {"anyOf": [{"type": "null"}, {
            "type": "object", "additionalProperties": False, "required": ["lsb", "msb"],
            "properties": {"lsb": {"type": "integer"}, "msb": {"type": "integer"}}}]},
        "layers": {
            "type": "array", "minItems": 1,
            "items": {
                "type": "object", "additionalProperties": False,
                "required": ["name", "space", "in_features", "out_features", "activation",
                             "codes", "scale", "bias", "float"],
                "properties": {
                    "name": _NAME,
                    "space": {"type": "string", "minLength": 1},
                    "in_features": _FEATURES,
                    "out_features": _FEATURES,
                    "activation": {"enum": ["relu", "none"]},
                    "codes": _FILE,
                    "scale": _FILE_OR_NULL,
                    "bias": _FILE,
                    "float": {"anyOf": [{"type": "null"}, {
                        "type": "object", "additionalProperties": False,
                        "required": ["weight", "bias"],
                        "properties": {"weight": _FILE, "bias": _FILE}}]},
                },
            },
        },
    },
}
_VALIDATOR = jsonschema.Draft202012Validator(FLOAT_MANIFEST_SCHEMA)


def _stems(net: FloatNetwork) -> list[str]:
    names = [layer.name for layer in net.layers]
    if len({n.casefold() for n in names}) == len(names):
        return names
    return [f"{i}_{n}" for i, n in enumerate(names)]


def write_float_bundle(net: FloatNetwork, path) -> Path:
    """Write ``net`` as a float bundle folder at ``path`` (atomically) and return ``path``.

    Raises
    ------
    BundleError
        As :func:`rtl_gen.bundle.write_bundle`.
    TypeError
        If ``net`` is not a :class:`~rtl_gen.design.float_network.FloatNetwork`.
    """
    if not isinstance(net, FloatNetwork):
        raise TypeError(f"write_float_bundle needs a FloatNetwork, not {type(net).__name__}")
    given = Path(path)
    manifest_file = str(given / MANIFEST_NAME)
    problem = check_name(net.name)
    if problem is not None:  # a network the reader would refuse must not be written
        raise BundleError(manifest_file, f"cannot be written: {problem}", field="name")
    arrays: dict[str, np.ndarray] = {}
    layers = []
    for stem, layer in zip(_stems(net), net.layers, strict=True):
        def put(suffix: str, a: np.ndarray, dtype=None, *, stem=stem) -> str:
            fname = f"{stem}.{suffix}.npy"
            arrays[fname] = little_endian(a, dtype)
            return fname

        codes = layer.codes.view(np.float32) if layer.space == "float" else layer.codes
        layers.append({
            "name": layer.name, "space": layer.space,
            "in_features": layer.in_features, "out_features": layer.out_features,
            "activation": layer.activation,
            "codes": put("codes", codes),
            "scale": None if layer.scale is None else put("scale", layer.scale.view(np.float32)),
            "bias": put("bias", layer.bias.view(np.float32)),
            "float": None if layer.float_weight is None else {
                "weight": put("float_weight", layer.float_weight),
                "bias": put("float_bias", layer.float_bias)},
        })
    manifest = {
        "format": FLOAT_FORMAT_NAME, "version": FLOAT_FORMAT_VERSION, "name": net.name,
        "input": {"features": net.in_features, "scale": net.input_scale},
        "labels": None if net.labels is None else list(net.labels),
        "metadata": json_value(dict(sorted(net.metadata.items())), "metadata", manifest_file),
        "accumulation": net.accumulation,
        "window": None if net.window is None else net.window.to_json(),
        "layers": layers,
    }
    text = json.dumps(manifest, indent=2, ensure_ascii=True, allow_nan=False) + "\n"
    write_folder(given, text, arrays)
    return given


def read_float_bundle(path) -> FloatNetwork:
    """Read and validate the float bundle folder at ``path``.

    Raises
    ------
    BundleError
        At the first problem, naming the file, the layer and the field.
    """
    return _FloatReader(Path(path)).read()


class _FloatReader(Reader):
    format_name = FLOAT_FORMAT_NAME
    supported_versions = _SUPPORTED
    validator = _VALIDATOR

    def read(self) -> FloatNetwork:
        m = self.open_manifest()
        accumulation, window = self.contract(m)
        layers = []
        features = m["input"]["features"]
        for lm in m["layers"]:
            layers.append(self.layer(lm, features))
            features = lm["out_features"]
        try:
            return FloatNetwork(m["name"], m["input"]["features"], m["input"]["scale"],
                                layers, labels=m["labels"], metadata=m["metadata"],
                                accumulation=accumulation, window=window)
        except SpecError as e:
            self.fail(e.message, layer=e.layer, field=e.field)

    def contract(self, m: dict) -> tuple[str, ExactWindow | None]:
        """The accumulation contract and window (version 1: sequential, no window)."""
        if m["version"] == 1:
            for field in ("accumulation", "window"):
                if field in m:
                    self.fail("is not a version 1 field (version 2 names the contract)",
                              field=field)
            return "sequential", None
        for field in ("accumulation", "window"):
            if field not in m:
                self.fail(f"missing: a version {m['version']} manifest names its "
                          "accumulation contract and window", field=field)
        accumulation, w = m["accumulation"], m["window"]
        if accumulation == "sequential":
            if w is not None:
                self.fail("must be null on the sequential contract", field="window")
            return accumulation, None
        if w is None:
            self.fail("the exact contract needs its window {lsb, msb}", field="window")
        try:
            return accumulation, ExactWindow(w["lsb"], w["msb"])
        except ValueError as e:
            self.fail(str(e), field="window")

    def layer(self, lm: dict, features: int) -> FloatLayer:
        name, space = lm["name"], lm["space"]
        try:
            parse_space(space)
        except ValueError as e:
            self.fail(str(e), layer=name, field="space")
        if lm["in_features"] != features:
            self.fail(f"is {lm['in_features']} but the previous stage gives {features}",
                      layer=name, field="in_features")
        n_out, n_in = lm["out_features"], lm["in_features"]
        files: dict[str, str] = {}

        def load(field: str, ref: str, shape, kinds: str) -> np.ndarray:
            file = self.array_path(ref, name, field)
            files[field] = str(file)
            a = self.load_npy(file, name, field, "int" if kinds == "iu" else "float", shape)
            if a.dtype.kind == "f" and not np.isfinite(a).all():
                bad = np.argwhere(~np.isfinite(a))[0]
                self.fail(f"contains {int((~np.isfinite(a)).sum())} NaN or infinite "
                          f"value(s), first at index {tuple(int(i) for i in bad)}",
                          file=str(file), layer=name, field=field)
            return a

        def f32_bits(a: np.ndarray, field: str) -> np.ndarray:
            if a.dtype != np.float32:
                self.fail(f"must be float32 (fp32 values, stored exactly), not {a.dtype}",
                          file=files[field], layer=name, field=field)
            return a.view(np.uint32)

        if space == "float":
            codes = f32_bits(load("codes", lm["codes"], (n_out, n_in), "f"), "codes")
        else:
            codes = load("codes", lm["codes"], (n_out, n_in), "iu")
        scale = None if lm["scale"] is None else f32_bits(
            load("scale", lm["scale"], (n_out,), "f"), "scale")
        bias = f32_bits(load("bias", lm["bias"], (n_out,), "f"), "bias")
        fw = fb = None
        if lm["float"] is not None:
            fw = load("float.weight", lm["float"]["weight"], (n_out, n_in), "f")
            fb = load("float.bias", lm["float"]["bias"], (n_out,), "f")
        try:
            return FloatLayer(name, space, codes, scale, bias, lm["activation"], fw, fb)
        except SpecError as e:
            raise BundleError(files.get(e.field, self.manifest_file), e.message, layer=name,
                              field=e.field) from None

