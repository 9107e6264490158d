"""The bundle container: a folder holding ``manifest.json`` and one ``.npy`` file per array.

Both formats (:mod:`.integer`, :mod:`.floating`) share it: the atomic write of a folder
(:func:`write_folder`: a temporary sibling renamed into place, an existing bundle moved
aside), the recognition of a bundle (:func:`bundle_format`), and the reading steps of
:class:`Reader` (the folder, the manifest's bytes, JSON, header and schema, and arrays that
never leave the folder).  A format module adds its schema, its arrays and its network.
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import shutil
from pathlib import Path, PurePosixPath, PureWindowsPath

import jsonschema
import numpy as np

from ..errors import BundleError

__all__ = [
    "FLOAT_FORMAT_NAME",
    "FORMATS",
    "FORMAT_NAME",
    "MANIFEST_NAME",
    "MAX_FEATURES",
    "NAME_SCHEMA",
    "NAME_RULE",
    "Reader",
    "StrictValidator",
    "bundle_format",
    "check_name",
    "is_bundle",
    "json_value",
    "little_endian",
    "schema_error_parts",
    "write_folder",
]

#: The manifest every bundle folder holds.
MANIFEST_NAME = "manifest.json"
#: The format of integer bundles, :mod:`rtl_gen.bundle.integer`.
FORMAT_NAME = "rtl_gen-bundle"
#: The format of float-activation (MPWN, reduced-float) bundles, :mod:`rtl_gen.bundle.floating`.
FLOAT_FORMAT_NAME = "rtl_gen-float-bundle"
#: Every format, with the family it holds (the ``format`` field of a manifest says which).
FORMATS = {FORMAT_NAME: "integer", FLOAT_FORMAT_NAME: "float"}
#: Largest feature count of an input or a layer (the same bound as ``input.features``).
MAX_FEATURES = 1 << 20
#: A manifest larger than this is refused before it is parsed.
MAX_MANIFEST_BYTES = 64 << 20
#: A network's name in a manifest (it names the Verilog module and files).
NAME_PATTERN = "^[A-Za-z0-9_-]+$"
NAME_SCHEMA = {"type": "string", "pattern": NAME_PATTERN}
#: What :data:`NAME_PATTERN` says, for error messages.
NAME_RULE = ("a non-empty word of ASCII letters, digits, '_' or '-' (it names the Verilog "
             "module and files)")


def check_name(name) -> str | None:
    """``None`` if ``name`` is a valid network name (:data:`NAME_PATTERN`), else what is
    wrong with it, quoting it: the rule every bundle reader applies to ``name``."""
    if isinstance(name, str) and re.fullmatch(NAME_PATTERN, name):
        return None
    return f"must be {NAME_RULE}, not {name!r}"


# JSON has one number type; a width written as 8.0 is still not an integer here (the stock
# Draft 2020-12 checker would accept it).
StrictValidator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _checker, v: isinstance(v, int) and not isinstance(v, bool)),
)


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
    return fmt if isinstance(fmt, str) and fmt in FORMATS else None


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


def little_endian(a: np.ndarray, dtype=None) -> np.ndarray:
    dt = np.dtype(dtype if dtype is not None else a.dtype)
    return np.ascontiguousarray(a, dtype=dt.newbyteorder("<"))


def json_value(v, where: str, manifest_file: str):
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
        return [json_value(x, f"{where}[{i}]", manifest_file) for i, x in enumerate(v)]
    if isinstance(v, dict):
        bad = [k for k in v if not isinstance(k, str)]
        if bad:
            raise BundleError(manifest_file, f"key {bad[0]!r} is not a string", field=where)
        return {k: json_value(v[k], f"{where}.{k}", manifest_file) for k in sorted(v)}
    raise BundleError(manifest_file, f"{type(v).__name__} is not a JSON value (use dicts, "
                      "lists, strings, numbers, booleans and None)", field=where)


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


def _json_type(v) -> str:
    """The JSON name of a parsed value's type."""
    return {str: "a string", bool: "a boolean", float: "a number with a fraction",
            list: "an array", dict: "an object", type(None): "null"}.get(type(v), "a number")


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


def schema_error_parts(error, manifest) -> tuple[str | None, str | None, str]:
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
    elif error.validator == "pattern" and error.validator_value == NAME_PATTERN:
        message = check_name(instance) or error.message
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


class Reader:
    """The steps every bundle format's reader shares: the folder, the manifest (size, UTF-8,
    JSON without duplicate keys, NaN or infinity), its header and schema, and ``.npy`` arrays
    that stay inside the folder.  A format subclasses it, sets :attr:`format_name`,
    :attr:`supported_versions` and :attr:`validator`, and writes :meth:`read`."""

    format_name: str
    supported_versions: tuple[int, ...]
    validator: jsonschema.protocols.Validator

    def __init__(self, root: Path):
        self.root = root
        self.manifest_file = str(root / MANIFEST_NAME)

    def fail(self, message: str, *, file: str | None = None, layer: str | None = None,
             field: str | None = None):
        raise BundleError(self.manifest_file if file is None else file, message, layer=layer,
                          field=field)

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
            family = FORMATS.get(fmt) if isinstance(fmt, str) else None
            other = {"integer": "an integer", "float": "a float"}.get(family)
            hint = f" ({other} bundle: its own reader reads it)" if other else ""
            self.fail(f"is not an rtl_gen weight bundle manifest of this kind: format must "
                      f"be {self.format_name!r}, not {fmt!r}{hint}", field="format")
        version = m.get("version")
        supported = ", ".join(str(v) for v in self.supported_versions)
        if "version" not in m:
            self.fail(f"is missing; this reader supports version {supported}",
                      field="version")
        if not isinstance(version, int) or isinstance(version, bool):
            self.fail(f"must be an integer, not {version!r} ({_json_type(version)}); this "
                      f"reader supports version {supported}", field="version")
        if version not in self.supported_versions:
            self.fail(f"{version!r} is not supported; this reader supports version "
                      f"{supported} (a newer rtl_gen may read it)", field="version")

    def check_schema(self, m: dict) -> None:
        error = jsonschema.exceptions.best_match(self.validator.iter_errors(m))
        if error is not None:
            layer, field, message = schema_error_parts(error, m)
            self.fail(message, layer=layer, field=field)

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

    def scale(self, v, layer: str | None, field: str) -> float:
        """A JSON number (possibly written as an integer) as a finite Python float."""
        try:
            f = float(v)
        except OverflowError:
            f = math.inf
        if not math.isfinite(f):
            self.fail(f"{v!r} is too large for a float", layer=layer, field=field)
        return f
