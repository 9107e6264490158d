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
import math
import os
import secrets
import shutil
from pathlib import Path, PurePosixPath, PureWindowsPath

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

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "MANIFEST_SCHEMA",
    "FLOAT_FORMAT_NAME",
    "SUPPORTED_VERSIONS",
    "bundle_format",
    "is_bundle",
    "read_int_bundle",
    "write_bundle",
]

MANIFEST_NAME = "manifest.json"
FORMAT_NAME = "rtl_gen-bundle"
#: The format of float-activation (MPWN and reduced-float) bundles, :mod:`rtl_gen.bundle.floating`.
FLOAT_FORMAT_NAME = "rtl_gen-float-bundle"
#: The version this module writes.
FORMAT_VERSION = 1
#: The versions :func:`read_int_bundle` reads; any other is refused.
SUPPORTED_VERSIONS = (1,)

#: Largest feature count of an input or a layer (the same bound as ``input.features``).
MAX_FEATURES = 1 << 20
#: ``|bias|`` must stay below this (the accumulator-width rule assumes it).
BIAS_LIMIT = 1 << 40
#: ``M`` is a positive signed 32-bit integer.
MULTIPLIER_LIMIT = 1 << 31
#: A manifest larger than this is refused before it is parsed.
MAX_MANIFEST_BYTES = 64 << 20


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
        "name": {"type": "string", "minLength": 1},
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

# JSON has one number type; a width written as 8.0 is still not an integer here (the stock
# Draft 2020-12 checker would accept it).
_Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _checker, v: isinstance(v, int) and not isinstance(v, bool)),
)
_VALIDATOR = _Validator(MANIFEST_SCHEMA)

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
    """Write ``net`` as a bundle folder at ``path`` and return ``path``.

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
    manifest, arrays = _to_manifest(net, manifest_file)
    error = jsonschema.exceptions.best_match(_VALIDATOR.iter_errors(manifest))
    if error is not None:  # a network the reader would refuse must not be written
        layer, field, message = _schema_error_parts(error, manifest)
        raise BundleError(manifest_file, f"cannot be written: {message}", layer=layer,
                          field=field)
    text = json.dumps(manifest, indent=2, ensure_ascii=True, allow_nan=False) + "\n"
    write_folder(given, text, arrays)
    return given


def write_folder(given: Path, manifest_text: str, arrays: dict[str, np.ndarray]) -> None:
    """Write a manifest and ``.npy`` arrays as the bundle folder ``given``, atomically.

    Everything goes into a temporary sibling folder first, which is renamed into place; an
    existing bundle (of either format) or empty folder at ``given`` is replaced.  On any
    failure nothing is left behind and ``given`` is untouched.

    Raises
    ------
    BundleError
        If ``given`` is something other than a bundle or an empty folder, or if the file
        system refuses a write.
    """
    target = Path(os.path.abspath(given))
    if target.parent == target:
        raise BundleError(str(given), "cannot write a bundle at the file-system root")
    _check_replaceable(target, str(given))
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise BundleError(str(given), f"cannot create its parent folder: {e}") from None
    tmp = _make_sibling_dir(target, "tmp", str(given))
    try:
        for fname, a in arrays.items():
            with open(tmp / fname, "xb") as f:
                np.save(f, a, allow_pickle=False)
        with open(tmp / MANIFEST_NAME, "xb") as f:
            f.write(manifest_text.encode("ascii"))
        _swap_in(tmp, target, str(given))
    except OSError as e:
        raise BundleError(str(given), f"cannot write the bundle: {e}") from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def bundle_format(path) -> str | None:
    """The ``format`` a folder's ``manifest.json`` declares (:data:`FORMAT_NAME` or
    :data:`FLOAT_FORMAT_NAME`), or ``None`` when ``path`` is no rtl_gen bundle.  Nothing else
    is checked: the readers do that."""
    p = Path(path)
    m = p / MANIFEST_NAME
    try:
        if p.is_symlink() or not p.is_dir() or m.is_symlink() or not m.is_file():
            return None
        if m.stat().st_size > MAX_MANIFEST_BYTES:
            return None
        doc = json.loads(m.read_bytes().decode("utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    fmt = doc.get("format") if isinstance(doc, dict) else None
    return fmt if fmt in (FORMAT_NAME, FLOAT_FORMAT_NAME) else None


def is_bundle(path) -> bool:
    """Whether ``path`` is a folder whose ``manifest.json`` says it is an rtl_gen bundle
    (of either format, any version).  Nothing else is checked: the readers do that."""
    return bundle_format(path) is not None


def _check_replaceable(target: Path, shown: str) -> None:
    if target.is_symlink():
        raise BundleError(shown, "is a symbolic link; refusing to replace it with a bundle")
    if not target.exists():
        return
    if not target.is_dir():
        raise BundleError(shown, "exists and is not a folder; refusing to replace it with "
                          "a bundle")
    try:
        empty = next(target.iterdir(), None) is None
    except OSError as e:
        raise BundleError(shown, f"cannot list the folder: {e}") from None
    if not empty and not is_bundle(target):
        raise BundleError(shown, f"is a non-empty folder that is not a weight bundle (no "
                          f"{MANIFEST_NAME} with format {FORMAT_NAME!r}); refusing to "
                          "replace it")


def _make_sibling_dir(target: Path, tag: str, shown: str) -> Path:
    """A new empty folder next to ``target`` (created with the default permissions)."""
    for _ in range(100):
        p = target.parent / f".{target.name}.{tag}-{secrets.token_hex(4)}"
        try:
            p.mkdir()
            return p
        except FileExistsError:
            continue
        except OSError as e:
            raise BundleError(shown, f"cannot create a temporary folder: {e}") from None
    raise BundleError(shown, "cannot find a free temporary folder name")  # pragma: no cover


def _swap_in(tmp: Path, target: Path, shown: str) -> None:
    """Rename ``tmp`` to ``target``, moving an existing bundle or empty folder aside first."""
    if not (target.exists() or target.is_symlink()):
        os.rename(tmp, target)
        return
    _check_replaceable(target, shown)  # again: it may have changed since the first look
    while True:
        old = target.parent / f".{target.name}.old-{secrets.token_hex(4)}"
        if not (old.exists() or old.is_symlink()):
            break
    os.rename(target, old)
    try:
        os.rename(tmp, target)
    except BaseException:
        os.rename(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _little_endian(a: np.ndarray, dtype=None) -> np.ndarray:
    dt = np.dtype(dtype if dtype is not None else a.dtype)
    return np.ascontiguousarray(a, dtype=dt.newbyteorder("<"))


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
            arrays[fname] = _little_endian(a, dtype)
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
        "metadata": _json_value(net.metadata, "metadata", manifest_file),
        "layers": layers,
    }
    return manifest, arrays


def _json_value(v, where: str, manifest_file: str):
    """``v`` as plain JSON values (dict keys sorted, tuples as lists, numpy scalars as
    Python ones), or a :class:`BundleError` naming the first thing JSON cannot hold."""
    if v is None or isinstance(v, (bool, np.bool_)):
        return None if v is None else bool(v)
    if isinstance(v, str):
        return str(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        if not math.isfinite(v):
            raise BundleError(manifest_file, f"{v!r} is not a finite number (JSON has no "
                              "NaN or infinity)", field=where)
        return float(v)
    if isinstance(v, (list, tuple)):
        return [_json_value(x, f"{where}[{i}]", manifest_file) for i, x in enumerate(v)]
    if isinstance(v, dict):
        bad = [k for k in v if not isinstance(k, str)]
        if bad:
            raise BundleError(manifest_file, f"key {bad[0]!r} is not a string", field=where)
        return {k: _json_value(v[k], f"{where}.{k}", manifest_file) for k in sorted(v)}
    raise BundleError(manifest_file, f"{type(v).__name__} is not a JSON value (use dicts, "
                      "lists, strings, numbers, booleans and None)", field=where)


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
    return _Reader(Path(path)).read()


class _Reader:
    #: The ``format`` this reader accepts, its versions and its manifest validator.
    format_name = FORMAT_NAME
    supported_versions = SUPPORTED_VERSIONS
    validator = _VALIDATOR

    def __init__(self, root: Path):
        self.root = root
        self.manifest_file = str(root / MANIFEST_NAME)

    def fail(self, message: str, *, file: str | None = None, layer: str | None = None,
             field: str | None = None):
        raise BundleError(self.manifest_file if file is None else file, message, layer=layer,
                          field=field)

    # -- the steps ---------------------------------------------------------------------------

    def read(self) -> Network:
        m = self.open_manifest()
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

    def open_manifest(self) -> dict:
        """The folder, then its manifest: read, header (format, version) and schema."""
        root = self.root
        if not (root.exists() or root.is_symlink()):
            self.fail("no such bundle folder", file=str(root))
        if not root.is_dir():
            self.fail("is not a folder (a bundle is a folder holding manifest.json and .npy "
                      "files)", file=str(root))
        self.real_root = root.resolve()
        m = self.load_manifest()
        self.check_header(m)
        self.check_schema(m)
        return m

    def load_manifest(self) -> dict:
        mpath = self.root / MANIFEST_NAME
        if not (mpath.exists() or mpath.is_symlink()):
            self.fail(f"missing: every bundle folder holds a {MANIFEST_NAME}")
        if not mpath.resolve().is_relative_to(self.real_root):
            self.fail("is a link that leads outside the bundle folder")
        if not mpath.is_file():
            self.fail("is not a regular file")
        try:
            size = mpath.stat().st_size
            if size > MAX_MANIFEST_BYTES:
                self.fail(f"is {size} bytes, more than the {MAX_MANIFEST_BYTES} a manifest "
                          "may have")
            raw = mpath.read_bytes()
        except OSError as e:
            self.fail(f"cannot be read: {e}")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            self.fail(f"is not valid UTF-8: byte 0x{raw[e.start]:02x} at offset {e.start}")
        try:
            doc = json.loads(text, object_pairs_hook=_no_duplicate_keys,
                             parse_constant=_no_constant, parse_float=_finite_float)
        except json.JSONDecodeError as e:
            self.fail(f"is not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}")
        except _JSONValueError as e:
            self.fail(f"is not valid JSON: {e}")
        except (ValueError, RecursionError) as e:
            self.fail(f"is not valid JSON: {e}")
        if not isinstance(doc, dict):
            self.fail(f"must hold a JSON object, not {type(doc).__name__}")
        return doc

    def check_header(self, m: dict) -> None:
        fmt = m.get("format")
        if fmt != self.format_name:
            other = {FORMAT_NAME: "an integer", FLOAT_FORMAT_NAME: "a float"}.get(fmt)
            hint = f" ({other} bundle: its own reader reads it)" if other else ""
            self.fail(f"is not an rtl_gen weight bundle manifest of this kind: format must "
                      f"be {self.format_name!r}, not {fmt!r}{hint}", field="format")
        version = m.get("version")
        supported = ", ".join(str(v) for v in self.supported_versions)
        if "version" not in m:
            self.fail(f"is missing; this reader supports version {supported}",
                      field="version")
        if (not isinstance(version, int) or isinstance(version, bool)
                or version not in self.supported_versions):
            self.fail(f"{version!r} is not supported; this reader supports version "
                      f"{supported} (a newer rtl_gen may read it)", field="version")

    def check_schema(self, m: dict) -> None:
        error = jsonschema.exceptions.best_match(self.validator.iter_errors(m))
        if error is not None:
            layer, field, message = _schema_error_parts(error, m)
            self.fail(message, layer=layer, field=field)

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

    def array_path(self, ref: str, layer: str, field: str) -> Path:
        """``ref`` as a path inside the bundle, or a :class:`BundleError`."""
        if "\0" in ref:
            self.fail(f"{ref!r} contains a NUL character", layer=layer, field=field)
        if (PurePosixPath(ref).is_absolute() or PureWindowsPath(ref).is_absolute()
                or PureWindowsPath(ref).drive):
            self.fail(f"{ref!r} is an absolute path; arrays must be plain file names inside "
                      "the bundle folder", layer=layer, field=field)
        parts = PureWindowsPath(ref).parts  # splits on both '/' and '\'
        if ".." in parts:
            self.fail(f"{ref!r} leads outside the bundle folder; arrays must be plain file "
                      "names inside it", layer=layer, field=field)
        if len(parts) != 1 or ref in (".", "..") or ":" in ref:
            self.fail(f"{ref!r} is not a plain file name; arrays must sit directly in the "
                      "bundle folder", layer=layer, field=field)
        if not ref.endswith(".npy"):
            self.fail(f"{ref!r} must be a .npy file name", layer=layer, field=field)
        path = self.root / ref
        if not path.resolve().is_relative_to(self.real_root):
            self.fail("is a link that leads outside the bundle folder", file=str(path),
                      layer=layer, field=field)
        if not (path.exists() or path.is_symlink()):
            self.fail(f"missing: the manifest names it in {field!r}", file=str(path),
                      layer=layer, field=field)
        if not path.is_file():
            self.fail("is not a regular file", file=str(path), layer=layer, field=field)
        return path

    def load_npy(self, path: Path, layer: str, field: str, kind: str,
                 shape: tuple[int, ...]) -> np.ndarray:
        """Header first (dtype, shape, size), then the data: never unpickles anything and
        never allocates more than the file holds."""
        file = str(path)

        def bad(message):
            self.fail(message, file=file, layer=layer, field=field)

        try:
            got_shape, fortran, dtype, offset, size = _read_npy_header(path)
        except Exception as e:  # numpy's header parser raises many kinds (even TokenError)
            bad(f"is not a valid .npy file ({type(e).__name__}: {e})")
        if dtype.hasobject:
            bad(f"holds Python objects (dtype {dtype}, a pickled object array); bundles "
                "hold plain numeric arrays only")
        if kind == "int" and dtype.kind not in "iu":
            bad(f"must have an integer dtype, not {dtype}")
        if kind == "float" and (dtype.kind != "f" or dtype.itemsize > 8):
            bad(f"must have a floating-point dtype (float16, float32 or float64), not {dtype}")
        if tuple(got_shape) != tuple(shape):
            bad(f"must have shape {tuple(shape)}, not {tuple(got_shape)}")
        nbytes = math.prod(shape) * dtype.itemsize
        if size - offset != nbytes:
            bad(f"is not a valid .npy file: {size - offset} bytes of data where shape "
                f"{tuple(shape)} of {dtype} needs {nbytes}")
        try:
            with open(path, "rb") as f:
                f.seek(offset)
                data = f.read(nbytes)
        except OSError as e:
            bad(f"cannot be read: {e}")
        if len(data) != nbytes:  # the file changed under us
            bad(f"is not a valid .npy file: it ends after {len(data)} of {nbytes} data bytes")
        a = np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")
        return np.ascontiguousarray(a, dtype=dtype.newbyteorder("="))

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

    def scale(self, v, layer: str | None, field: str) -> float:
        """A JSON number (possibly written as an integer) as a finite Python float."""
        try:
            f = float(v)
        except OverflowError:
            f = math.inf
        if not math.isfinite(f):
            self.fail(f"{v!r} is too large for a float", layer=layer, field=field)
        return f

    def build(self, m: dict, arrays: list[dict]) -> Network:
        """The network.py objects; their :class:`SpecError` becomes a :class:`BundleError`
        naming the array file when the field is an array, else the manifest."""
        files: dict[tuple[str, str], str] = {}

        def convert(e: SpecError, layer: str | None):
            layer = e.layer if e.layer is not None else layer
            file = files.get((layer, e.field), self.manifest_file)
            raise BundleError(file, e.message, layer=layer, field=e.field) from None

        try:
            inp = m["input"]
            input_spec = InputSpec(features=inp["features"], bits=inp["bits"],
                                   signed=inp["signed"], scale=inp["scale"])
        except SpecError as e:
            convert(e, None)
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


def _read_npy_header(path: Path):
    """``(shape, fortran_order, dtype, data offset, file size)`` of a ``.npy`` file."""
    fmt = np.lib.format
    with open(path, "rb") as f:
        version = fmt.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = fmt.read_array_header_2_0(f)
        else:
            raise ValueError(f"format version {version[0]}.{version[1]} is not supported "
                             "(1.0 and 2.0 are)")
        offset = f.tell()
        size = f.seek(0, os.SEEK_END)
    return shape, fortran, dtype, offset, size


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

class _JSONValueError(ValueError):
    pass


def _no_duplicate_keys(pairs):
    out = {}
    for k, v in pairs:
        if k in out:
            raise _JSONValueError(f"key {k!r} appears twice in one object")
        out[k] = v
    return out


def _no_constant(name):
    raise _JSONValueError(f"{name} is not a JSON number")


def _finite_float(text):
    v = float(text)
    if not math.isfinite(v):
        raise _JSONValueError(f"number {text} is out of range")
    return v


def _schema_error_parts(error, manifest) -> tuple[str | None, str | None, str]:
    """``(layer, field, message)`` of a schema error: ``layers[1].weight.scheme`` becomes
    the layer's name and field ``weight.scheme``."""
    path = list(error.absolute_path)
    instance = error.instance
    if error.validator == "required" and isinstance(instance, dict):
        missing = [k for k in error.validator_value if k not in instance]
        path.append(missing[0])
        message = "is missing (a required field)"
    elif error.validator == "additionalProperties" and isinstance(instance, dict):
        known = error.schema.get("properties", {})
        extra = sorted(k for k in instance if k not in known)
        path.append(extra[0])
        message = "is not a field of this format version"
    else:
        message = error.message
    layer = None
    if (len(path) >= 2 and path[0] == "layers" and isinstance(path[1], int)
            and isinstance(manifest.get("layers"), list)):
        lm = manifest["layers"][path[1]]
        name = lm.get("name") if isinstance(lm, dict) else None
        if isinstance(name, str) and name and path[2:] != ["name"]:
            layer, path = name, path[2:]
    field = ""
    for p in path:
        field += f"[{p}]" if isinstance(p, int) else (f".{p}" if field else str(p))
    return layer, field or None, message
