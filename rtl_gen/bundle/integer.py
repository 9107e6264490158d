"""Weight bundles: a :class:`~rtl_gen.design.network.Network` on disk, versioned and validated.

A bundle is a folder holding ``manifest.json`` (every scalar: shapes, schemes, widths,
scales, TR grouping, file names) and one ``.npy`` file per array (codes, bias,
requantization constants, float reference)::

    digits-int8/
    ├── manifest.json          format, version, input code, labels, metadata, layers
    ├── fc1.codes.npy          (out, in)  uint8/uint16 weight codes of the layer's scheme
    ├── fc1.bias.npy           (out,)     int64 bias, accumulator units
    ├── fc1.requant_m.npy      (out,)     int64 requantization multipliers M   (relu only)
    ├── fc1.requant_s.npy      (out,)     int64 requantization shifts S        (relu only)
    ├── fc1.float_weight.npy   (out, in)  float weights quantized from   (optional)
    ├── fc1.float_bias.npy     (out,)     float bias quantized from      (optional)
    └── fc2.*.npy              ...

The format, every field, its range and the errors a user can see are documented in
``weights/FORMAT.md``.  :func:`write_bundle` writes deterministic bytes (the same network
always gives the same files) into a temporary sibling folder and renames it into place, so
a reader never sees half a bundle.  :func:`read_int_bundle` validates everything and raises
:class:`~rtl_gen.errors.BundleError` naming the file (the manifest or the ``.npy`` file),
the layer and the field; no path in a manifest may leave the bundle's folder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import jsonschema
import numpy as np

from ..design.network import (
    ACT_BITS_RANGE,
    ACTIVATIONS,
    DenseLayer,
    InputSpec,
    Network,
    TRConfig,
)
from ..errors import BundleError, SpecError
from ..numerics.fixedpoint import MAX_SHIFT
from ..numerics.schemes import WeightScheme, parse_scheme
from .container import (
    FORMAT_NAME,
    MANIFEST_NAME,
    MAX_FEATURES,
    NAME_SCHEMA,
    Reader,
    StrictValidator,
    json_value,
    little_endian,
    schema_error_parts,
    write_folder,
)

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MANIFEST_SCHEMA",
    "SUPPORTED_VERSIONS",
    "read_int_bundle",
    "write_bundle",
]

#: The version this module writes for a network of dense layers only (version 2,
#: :data:`rtl_gen.bundle.layered.LAYERED_VERSION`, for any other).
FORMAT_VERSION = 1
#: The versions :func:`read_int_bundle` reads; any other is refused.  Version 2
#: (:mod:`.layered`) adds convolution, pooling and flatten layers.
SUPPORTED_VERSIONS = (1, 2)

#: ``|bias|`` must stay below this (the accumulator-width rule assumes it).
BIAS_LIMIT = 1 << 40
#: ``M`` is a positive signed 32-bit integer.
MULTIPLIER_LIMIT = 1 << 31


# -- the manifest's schema ------------------------------------------------------------------

def _int(lo: int, hi: int) -> dict:
    return {"type": "integer", "minimum": lo, "maximum": hi}


def _nullable(schema: dict) -> dict:
    out = dict(schema)
    out["type"] = [schema["type"], "null"]
    return out


_ARRAY_FILE = {"type": "string", "minLength": 1}
_SCALE = {"type": "number", "exclusiveMinimum": 0}
_BITS = _int(*ACT_BITS_RANGE)

#: JSON Schema (Draft 2020-12) of a version-1 manifest: the types and basic ranges of every
#: field.  Cross-field rules (shapes, the layer chain, TR budgets) are checked afterwards.
MANIFEST_SCHEMA: dict = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://rtl-gen.invalid/schemas/bundle-manifest-v1.json",
    "title": "rtl_gen weight bundle manifest, version 1",
    "type": "object",
    "additionalProperties": False,
    "required": ["format", "version", "name", "input", "labels", "metadata", "layers"],
    "properties": {
        "format": {"const": FORMAT_NAME},
        "version": {"const": FORMAT_VERSION},
        "name": NAME_SCHEMA,
        "input": {
            "type": "object",
            "additionalProperties": False,
            "required": ["features", "bits", "signed", "scale"],
            "properties": {
                "features": _int(1, MAX_FEATURES),
                "bits": _BITS,
                "signed": {"type": "boolean"},
                "scale": _SCALE,
            },
        },
        "labels": {"type": ["array", "null"], "items": {"type": "string"}},
        "metadata": {"type": "object"},
        "layers": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name", "kind", "in_features", "out_features", "in_bits",
                             "in_signed", "weight", "bias", "activation", "out_bits",
                             "out_scale", "requant", "tr", "float"],
                "properties": {
                    "name": {"type": "string", "minLength": 1},
                    "kind": {"const": "dense"},
                    "in_features": _int(1, MAX_FEATURES),
                    "out_features": _int(1, MAX_FEATURES),
                    "in_bits": _BITS,
                    "in_signed": {"type": "boolean"},
                    "weight": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["scheme", "scale", "codes"],
                        "properties": {
                            "scheme": {"type": "string", "minLength": 1},
                            "scale": _SCALE,
                            "codes": _ARRAY_FILE,
                        },
                    },
                    "bias": _ARRAY_FILE,
                    "activation": {"enum": list(ACTIVATIONS)},
                    "out_bits": _nullable(_BITS),
                    "out_scale": _nullable(_SCALE),
                    "requant": {
                        "type": ["object", "null"],
                        "additionalProperties": False,
                        "required": ["multiplier", "shift"],
                        "properties": {"multiplier": _ARRAY_FILE, "shift": _ARRAY_FILE},
                    },
                    "tr": {
                        "type": ["object", "null"],
                        "additionalProperties": False,
                        "required": ["group", "budget", "data_terms"],
                        "properties": {
                            "group": _int(1, 1024),
                            "budget": _int(0, 1 << 16),
                            "data_terms": _nullable(_int(1, 17)),
                        },
                    },
                    "float": {
                        "type": ["object", "null"],
                        "additionalProperties": False,
                        "required": ["weight", "bias"],
                        "properties": {"weight": _ARRAY_FILE, "bias": _ARRAY_FILE},
                    },
                },
            },
        },
    },
}

_VALIDATOR = StrictValidator(MANIFEST_SCHEMA)

# Every array of a layer: (manifest field, keys inside the layer object, file-name suffix,
# "int" or "float").
_ARRAYS = (
    ("weight.codes", ("weight", "codes"), "codes", "int"),
    ("bias", ("bias",), "bias", "int"),
    ("requant.multiplier", ("requant", "multiplier"), "requant_m", "int"),
    ("requant.shift", ("requant", "shift"), "requant_s", "int"),
    ("float.weight", ("float", "weight"), "float_weight", "float"),
    ("float.bias", ("float", "bias"), "float_bias", "float"),
)


# -- writing --------------------------------------------------------------------------------

def write_bundle(net: Network, path) -> Path:
    """Write ``net`` as a bundle folder at ``path`` and return ``path``: format version 1
    for a network of dense layers only, version 2 (:mod:`.layered`) when it has
    convolution, pooling or flatten layers.

    The bytes depend on ``net`` alone: the manifest is JSON with two-space indent, a fixed
    field order (``metadata`` keys sorted) and a final newline; arrays are little-endian
    ``.npy`` files (codes in the scheme's ``code_dtype``, bias and requantization constants
    ``int64``, float arrays in their own width).  Everything is written into a temporary
    sibling folder first and renamed into place; an existing bundle at ``path`` is replaced
    (moved aside, the new one renamed in, the old one deleted).  On any failure nothing is
    left behind and ``path`` is untouched.

    Raises
    ------
    BundleError
        If ``path`` exists and is not a bundle (a file, a symbolic link, or a non-empty
        folder without an rtl_gen ``manifest.json``), if ``metadata`` holds something that
        is not a JSON value, or if the file system refuses a write.
    TypeError
        If ``net`` is not a :class:`Network`.
    """
    if not isinstance(net, Network):
        raise TypeError(f"write_bundle needs a Network, not {type(net).__name__}")
    given = Path(path)
    if Path(os.path.abspath(given)).parent == Path(os.path.abspath(given)):
        raise BundleError(str(given), "cannot write a bundle at the file-system root")
    manifest_file = str(given / MANIFEST_NAME)
    validator = _VALIDATOR
    if net.is_dense:
        manifest, arrays = _to_manifest(net, manifest_file)
    else:  # convolution, pooling, flatten: version 2
        from .layered import LAYERED_VALIDATOR, layered_manifest

        manifest, arrays = layered_manifest(net, manifest_file)
        validator = LAYERED_VALIDATOR
    error = jsonschema.exceptions.best_match(validator.iter_errors(manifest))
    if error is not None:  # a network the reader would refuse must not be written
        layer, field, message = schema_error_parts(error, manifest)
        raise BundleError(manifest_file, f"cannot be written: {message}", layer=layer,
                          field=field)
    text = json.dumps(manifest, indent=2, ensure_ascii=True, allow_nan=False) + "\n"
    write_folder(given, text, arrays)
    return given


def _file_stems(net: Network) -> list[str]:
    """File-name stem of every layer: its name, or ``<index>_<name>`` for every layer when
    two names differ only in case (they would collide on a case-insensitive file system)."""
    names = [layer.name for layer in net.layers]
    if len({n.casefold() for n in names}) == len(names):
        return names
    return [f"{i}_{n}" for i, n in enumerate(names)]


def _to_manifest(net: Network, manifest_file: str) -> tuple[dict, dict[str, np.ndarray]]:
    """The manifest (a JSON-ready dict in its fixed field order) and the arrays by file."""
    arrays: dict[str, np.ndarray] = {}
    layers = []
    for layer, stem in zip(net.layers, _file_stems(net), strict=True):
        def put(suffix: str, a: np.ndarray, dtype=None, *, stem=stem) -> str:
            fname = f"{stem}.{suffix}.npy"
            arrays[fname] = little_endian(a, dtype)
            return fname

        def put_float(suffix: str, field: str, a: np.ndarray, *, layer=layer) -> str:
            if a.dtype.itemsize > 8:
                raise BundleError(manifest_file, f"float arrays are stored as float64 or "
                                  f"narrower, not {a.dtype}", layer=layer.name, field=field)
            return put(suffix, a)

        relu = layer.activation == "relu"
        layers.append({
            "name": layer.name,
            "kind": "dense",
            "in_features": layer.in_features,
            "out_features": layer.out_features,
            "in_bits": int(layer.in_bits),
            "in_signed": bool(layer.in_signed),
            "weight": {
                "scheme": layer.scheme.name,
                "scale": float(layer.weight_scale),
                "codes": put("codes", layer.codes, layer.scheme.code_dtype),
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
            "float": None if layer.float_weight is None else {
                "weight": put_float("float_weight", "float.weight", layer.float_weight),
                "bias": put_float("float_bias", "float.bias", layer.float_bias),
            },
        })
    manifest = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
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


# -- reading --------------------------------------------------------------------------------

def read_int_bundle(path) -> Network:
    """Read and validate the integer bundle folder at ``path`` (``rtl_gen.bundle.read_bundle``
    reads either family).

    Checks, in order: the folder; ``manifest.json`` (present, UTF-8, JSON, ``format``,
    ``version``, the schema :data:`MANIFEST_SCHEMA`); then per layer the weight scheme, the
    activation and requantization fields, the chain of inputs, and every array (its path
    stays inside the folder, the file exists and is a plain numeric ``.npy``, its dtype,
    shape and values); finally the design rules of :mod:`rtl_gen.design.network`.

    Returns
    -------
    Network
        Codes in the scheme's ``code_dtype``, bias and requantization constants ``int64``,
        float arrays in the width they were stored in.

    Raises
    ------
    BundleError
        At the first problem, naming the file (the manifest or the ``.npy`` file), the
        layer and the field (as spelled in the manifest).
    """
    return _IntReader(Path(path)).read()


class _IntReader(Reader):
    #: The ``format`` this reader accepts, its versions and its manifest validator.
    format_name = FORMAT_NAME
    supported_versions = SUPPORTED_VERSIONS
    validator = _VALIDATOR


    # -- the steps ---------------------------------------------------------------------------

    def check_schema(self, m: dict) -> None:
        if m["version"] != FORMAT_VERSION:  # version 2: layer kinds
            from .layered import LAYERED_VALIDATOR

            self.validator = LAYERED_VALIDATOR
        super().check_schema(m)

    def read(self) -> Network:
        m = self.open_manifest()
        if m["version"] != FORMAT_VERSION:
            from .layered import read_layered

            return read_layered(self, m)
        m["input"]["scale"] = self.scale(m["input"]["scale"], None, "input.scale")
        layers_m = m["layers"]
        prev = (m["input"]["features"], m["input"]["bits"], m["input"]["signed"], "the input")
        arrays = []
        for i, lm in enumerate(layers_m):
            last = i == len(layers_m) - 1
            scheme = self.check_layer_fields(lm, last)
            self.check_chain(lm, prev)
            arrays.append(self.load_layer_arrays(lm, scheme))
            prev = (lm["out_features"], lm["out_bits"], False, f"layer {lm['name']!r}")
        return self.build(m, arrays)


    def check_layer_fields(self, lm: dict, last: bool) -> WeightScheme:
        """Scheme, activation and the fields that come with it: manifest-only checks."""
        name = lm["name"]
        s = lm["weight"]["scheme"]
        try:
            scheme = parse_scheme(s)
        except ValueError as e:  # quote the name where parse_scheme's message does not
            message = str(e) if repr(s) in str(e) else f"{s!r} is not a scheme: {e}"
            self.fail(message, layer=name, field="weight.scheme")
        if scheme.name != s:
            self.fail(f"must be spelled {scheme.name!r}, not {s!r}", layer=name,
                      field="weight.scheme")
        lm["weight"]["scale"] = self.scale(lm["weight"]["scale"], name, "weight.scale")
        if lm["out_scale"] is not None:
            lm["out_scale"] = self.scale(lm["out_scale"], name, "out_scale")
        want = "none" if last else "relu"
        if lm["activation"] != want:
            where = "the last layer" if last else "a hidden layer"
            self.fail(f"must be {want!r} in {where}, not {lm['activation']!r}", layer=name,
                      field="activation")
        for field in ("out_bits", "out_scale", "requant"):
            if last and lm[field] is not None:
                self.fail("must be null: a layer without activation outputs its "
                          "accumulator", layer=name, field=field)
            if not last and lm[field] is None:
                self.fail("must be given for a relu layer", layer=name, field=field)
        return scheme

    def check_chain(self, lm: dict, prev: tuple) -> None:
        name = lm["name"]
        features, bits, signed, source = prev
        if lm["in_features"] != features:
            self.fail(f"is {lm['in_features']} but {source} gives {features} features",
                      layer=name, field="in_features")
        if lm["in_bits"] != bits:
            self.fail(f"is {lm['in_bits']} but {source} gives {bits}-bit codes", layer=name,
                      field="in_bits")
        if lm["in_signed"] != signed:
            self.fail(f"is {str(lm['in_signed']).lower()} but {source} gives "
                      f"{'signed' if signed else 'unsigned'} codes", layer=name,
                      field="in_signed")

    def load_layer_arrays(self, lm: dict, scheme: WeightScheme) -> dict:
        name = lm["name"]
        n_out, n_in = lm["out_features"], lm["in_features"]
        shapes = {"weight.codes": (n_out, n_in), "float.weight": (n_out, n_in)}
        out = {"scheme": scheme, "files": {}}
        for field, keys, _, kind in _ARRAYS:
            node = lm
            for k in keys[:-1]:
                node = node[k]
            if node is None:
                continue
            ref = node[keys[-1]]
            file = self.array_path(ref, name, field)
            out["files"][field] = str(file)
            a = self.load_npy(file, name, field, kind, shapes.get(field, (n_out,)))
            out[field] = self.check_values(a, str(file), name, field, scheme)
        return out


    def check_values(self, a: np.ndarray, file: str, layer: str, field: str,
                     scheme: WeightScheme) -> np.ndarray:
        def bad(message):
            self.fail(message, file=file, layer=layer, field=field)

        if field == "weight.codes":
            invalid = scheme.invalid_codes(a)
            if invalid.any():
                first = tuple(int(i) for i in np.argwhere(invalid)[0])
                bad(f"{int(invalid.sum())} code(s) out of range for {scheme.name}: first is "
                    f"{int(a[first])} at index {first}")
            return a.astype(scheme.code_dtype)
        if a.dtype.kind == "f":
            finite = np.isfinite(a)
            if not finite.all():
                first = tuple(int(i) for i in np.argwhere(~finite)[0])
                bad(f"contains {int((~finite).sum())} NaN or infinite value(s), first "
                    f"{float(a[first])} at index {first}")
            return a
        limits = {"bias": (-(BIAS_LIMIT - 1), BIAS_LIMIT - 1, "|bias| must stay below 2**40"),
                  "requant.multiplier": (1, MULTIPLIER_LIMIT - 1,
                                         "every M must be in 1..2**31-1"),
                  "requant.shift": (1, MAX_SHIFT, f"every S must be in 1..{MAX_SHIFT}")}
        lo, hi, rule = limits[field]
        outside = _outside(a, lo, hi)
        if outside.any():
            first = int(np.argmax(outside))
            bad(f"{rule}: {int(outside.sum())} value(s) outside, first is {int(a[first])} at "
                f"index {first}")
        return a.astype(np.int64)


    def build(self, m: dict, arrays: list[dict]) -> Network:
        """The network.py objects; their :class:`SpecError` becomes a :class:`BundleError`
        naming the array file when the field is an array, else the manifest."""
        files, convert, input_spec = build_start(self.manifest_file, m)
        layers = []
        for lm, arr in zip(m["layers"], arrays, strict=True):
            name = lm["name"]
            files.update({(name, f): path for f, path in arr["files"].items()})
            try:
                tr = None if lm["tr"] is None else TRConfig(**lm["tr"])
                layers.append(DenseLayer(
                    name=name, scheme=arr["scheme"], codes=arr["weight.codes"],
                    weight_scale=lm["weight"]["scale"], bias=arr["bias"],
                    in_bits=lm["in_bits"], in_signed=lm["in_signed"],
                    activation=lm["activation"], out_bits=lm["out_bits"],
                    out_scale=lm["out_scale"],
                    requant_multiplier=arr.get("requant.multiplier"),
                    requant_shift=arr.get("requant.shift"), tr=tr,
                    float_weight=arr.get("float.weight"), float_bias=arr.get("float.bias")))
            except SpecError as e:
                convert(e, name)
        try:
            return Network(name=m["name"], input=input_spec, layers=tuple(layers),
                           labels=None if m["labels"] is None else tuple(m["labels"]),
                           metadata=m["metadata"])
        except SpecError as e:
            convert(e, None)


def _outside(a: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Mask of the integers of ``a`` outside ``lo..hi`` (``hi >= 0``), with no wrap-around
    for ``uint64`` values beyond ``int64``."""
    if a.dtype.kind == "u" and a.dtype.itemsize >= 8:
        big = a > np.uint64(hi)
        v = np.where(big, 0, a).astype(np.int64)
        return big | (v < lo)
    v = a.astype(np.int64)
    return (v < lo) | (v > hi)


# -- JSON parsing and schema errors -----------------------------------------------------------


def build_start(manifest_file: str, m: dict):
    """What both formats' builders start with: ``files`` (``(layer, field)`` to the array
    file, filled while building), ``convert`` (raises the :class:`BundleError` of a
    :class:`SpecError`, naming that file when the field is an array, else the manifest) and
    the network's :class:`InputSpec`."""
    files: dict[tuple[str, str], str] = {}

    def convert(e: SpecError, layer: str | None):
        layer = e.layer if e.layer is not None else layer
        file = files.get((layer, e.field), manifest_file)
        raise BundleError(file, e.message, layer=layer, field=e.field) from None

    try:
        inp = m["input"]
        input_spec = InputSpec(features=inp["features"], bits=inp["bits"],
                               signed=inp["signed"], scale=inp["scale"])
    except SpecError as e:
        convert(e, None)
    return files, convert, input_spec
