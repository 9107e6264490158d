"""Weight bundles: exact round trip, deterministic bytes, safe replacement, and one test per
malformed bundle asserting the file, the layer and the field the error names."""

import dataclasses
import json
import os
import re
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from rtl_gen.bundle import (
    FORMAT_NAME,
    FORMAT_VERSION,
    MANIFEST_NAME,
    MANIFEST_SCHEMA,
    is_bundle,
    read_bundle,
    write_bundle,
)
from rtl_gen.design.network import (
    DenseLayer,
    InputSpec,
    Network,
    TRConfig,
)
from rtl_gen.errors import BundleError
from rtl_gen.numerics.fixedpoint import requant_params
from rtl_gen.numerics.schemes import SCHEME_KINDS, parse_scheme

FORMAT_MD = Path(__file__).resolve().parents[1] / "weights" / "FORMAT.md"


def make_network(seed: int = 0) -> Network:
    """6 signed 8-bit inputs -> fc1 (int4, relu, requant, TR) -> fc2 (ternary, logits)."""
    rng = np.random.default_rng(seed)
    inp = InputSpec(features=6, bits=8, signed=True, scale=0.03125)
    w1 = rng.normal(size=(5, 6))
    q1 = parse_scheme("int4").quantize(w1)
    b1 = rng.normal(size=5)
    m, s = requant_params(rng.uniform(0.001, 0.02, size=5))
    fc1 = DenseLayer(
        name="fc1", scheme=parse_scheme("int4"), codes=q1.codes, weight_scale=q1.scale,
        bias=rng.integers(-500, 500, size=5), in_bits=8, in_signed=True, activation="relu",
        out_bits=8, out_scale=0.1, requant_multiplier=m, requant_shift=s,
        tr=TRConfig(group=3, budget=5, data_terms=4), float_weight=w1, float_bias=b1)
    w2 = rng.normal(size=(3, 5)).astype(np.float32)
    q2 = parse_scheme("ternary").quantize(w2)
    fc2 = DenseLayer(
        name="fc2", scheme=parse_scheme("ternary"), codes=q2.codes, weight_scale=q2.scale,
        bias=rng.integers(-50, 50, size=3), in_bits=8, in_signed=False, activation="none",
        float_weight=w2, float_bias=rng.normal(size=3).astype(np.float32))
    return Network(name="tiny", input=inp, layers=(fc1, fc2), labels=("cat", "dog", "ému"),
                   metadata={"dataset": "synthetic", "seed": seed,
                             "nested": {"z": [1, 2.5, None, True], "a": "x"}})


@pytest.fixture(scope="module")
def net():
    return make_network()


@pytest.fixture
def bundle(net, tmp_path):
    return write_bundle(net, tmp_path / "tiny")


def assert_same_array(a, b):
    assert b is not None
    assert a.shape == b.shape
    assert np.array_equal(a, b)
    kind = "iu" if a.dtype.kind in "iu" else a.dtype.kind
    assert b.dtype.kind in kind
    if a.dtype.kind == "f":  # bit-exact, in the width it was given
        assert a.dtype == b.dtype
        assert a.tobytes() == b.tobytes()


def assert_same_network(a: Network, b: Network):
    assert (a.name, a.input, a.labels, a.metadata) == (b.name, b.input, b.labels, b.metadata)
    assert len(a.layers) == len(b.layers)
    for x, y in zip(a.layers, b.layers, strict=True):
        for f in dataclasses.fields(DenseLayer):
            u, v = getattr(x, f.name), getattr(y, f.name)
            if isinstance(u, np.ndarray):
                assert_same_array(u, v)
            else:
                assert u == v, f.name
                assert type(u) is type(v) or {type(u), type(v)} <= {int, float}, f.name
        assert y.codes.dtype == y.scheme.code_dtype


def edit_manifest(bundle: Path, edit) -> None:
    path = bundle / MANIFEST_NAME
    m = json.loads(path.read_text())
    edit(m)
    path.write_text(json.dumps(m, indent=2))


def save_array(bundle: Path, name: str, a, **kw) -> None:
    (bundle / name).unlink()
    np.save(bundle / name, a, **kw)


def tree(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


# -- round trip, determinism, replacement ---------------------------------------------------

def test_round_trip_is_exact(net, bundle):
    assert bundle == bundle.parent / "tiny"
    back = read_bundle(bundle)
    assert_same_network(net, back)
    assert back.layers[1].float_weight.dtype == np.float32


def test_layout_and_manifest(bundle):
    assert sorted(p.name for p in bundle.iterdir()) == sorted([
        MANIFEST_NAME, "fc1.codes.npy", "fc1.bias.npy", "fc1.requant_m.npy",
        "fc1.requant_s.npy", "fc1.float_weight.npy", "fc1.float_bias.npy", "fc2.codes.npy",
        "fc2.bias.npy", "fc2.float_weight.npy", "fc2.float_bias.npy"])
    text = (bundle / MANIFEST_NAME).read_text(encoding="ascii")
    assert text.endswith("}\n") and text.startswith('{\n  "format": "rtl_gen-bundle",')
    m = json.loads(text)
    jsonschema.Draft202012Validator(MANIFEST_SCHEMA).validate(m)
    assert (m["format"], m["version"]) == (FORMAT_NAME, FORMAT_VERSION) == ("rtl_gen-bundle", 1)
    assert list(m["metadata"]) == ["dataset", "nested", "seed"]  # sorted
    fc1, fc2 = m["layers"]
    assert fc1["weight"] == {"scheme": "int4", "scale": fc1["weight"]["scale"],
                             "codes": "fc1.codes.npy"}
    assert fc1["tr"] == {"group": 3, "budget": 5, "data_terms": 4}
    assert fc2["requant"] is None and fc2["out_bits"] is None and fc2["tr"] is None
    assert np.load(bundle / "fc1.codes.npy").dtype == np.uint8
    assert np.load(bundle / "fc1.bias.npy").dtype == np.dtype("<i8")


def test_schema_is_valid_draft_2020_12():
    jsonschema.Draft202012Validator.check_schema(MANIFEST_SCHEMA)


def test_bytes_are_deterministic(tmp_path):
    a = write_bundle(make_network(), tmp_path / "a")
    b = write_bundle(make_network(), tmp_path / "b")
    assert tree(a) == tree(b)
    write_bundle(make_network(), a)  # rewriting in place gives the same bytes too
    assert tree(a) == tree(b)


@pytest.mark.parametrize("scheme", ["binary", "ternary", "pot2", "pot6", "apot3", "apot4",
                                    "apot5", "int2", "int8", "int9", "int16", "signmag2",
                                    "signmag16"])
def test_round_trip_every_scheme(scheme, tmp_path):
    sch = parse_scheme(scheme)
    assert sch.kind in SCHEME_KINDS
    rng = np.random.default_rng(1)
    codes = sch.encode(rng.choice(sch.levels(), size=(4, 3)))
    layer = DenseLayer(name="only", scheme=sch, codes=codes, weight_scale=1e-300,
                       bias=np.array([-(2**40 - 1), 0, 1, 2**40 - 1]), in_bits=16,
                       in_signed=True, activation="none")
    net = Network(name="n", input=InputSpec(3, 16, True, 5e-324), layers=(layer,))
    back = read_bundle(write_bundle(net, tmp_path / scheme))
    assert_same_network(net, back)
    assert back.labels is None and back.layers[0].float_weight is None


def test_replaces_an_existing_bundle(net, bundle, tmp_path):
    (bundle / "stale.npy").write_bytes(b"old")
    small = dataclasses.replace(net, name="other", metadata={})
    assert write_bundle(small, bundle) == bundle
    assert not (bundle / "stale.npy").exists()
    assert read_bundle(bundle).name == "other"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny"]  # no temporary leftovers


def test_writes_into_an_empty_folder_and_creates_parents(net, tmp_path):
    (tmp_path / "empty").mkdir()
    write_bundle(net, tmp_path / "empty")
    write_bundle(net, tmp_path / "a" / "b" / "c")
    assert is_bundle(tmp_path / "empty") and is_bundle(tmp_path / "a" / "b" / "c")


@pytest.mark.parametrize("kind", ["file", "folder", "foreign-manifest", "symlink"])
def test_write_refuses_to_replace_a_non_bundle(net, tmp_path, kind):
    target = tmp_path / "target"
    if kind == "file":
        target.write_text("precious")
    elif kind == "folder":
        target.mkdir()
        (target / "notes.txt").write_text("precious")
    elif kind == "foreign-manifest":
        target.mkdir()
        (target / MANIFEST_NAME).write_text('{"name": "a web app", "format": "other"}')
    else:
        (tmp_path / "elsewhere").mkdir()
        target.symlink_to(tmp_path / "elsewhere")
    before = tree(target) if target.is_dir() else target.read_bytes()
    listing = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(BundleError, match="refusing to replace") as e:
        write_bundle(net, target)
    assert e.value.file == str(target)
    assert (tree(target) if target.is_dir() else target.read_bytes()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == listing


def test_failed_write_leaves_nothing(net, bundle, tmp_path):
    before = tree(bundle)
    bad = dataclasses.replace(net, metadata={"ok": 1, "when": object()})
    with pytest.raises(BundleError) as e:
        write_bundle(bad, bundle)
    assert e.value.field == "metadata.when"
    assert tree(bundle) == before
    with pytest.raises(BundleError, match="finite"):
        write_bundle(dataclasses.replace(net, metadata={"x": [float("nan")]}), tmp_path / "n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny"]


def test_write_failure_during_swap_restores_the_old_bundle(net, bundle, tmp_path,
                                                            monkeypatch):
    before = tree(bundle)
    real_rename = os.rename

    def rename(src, dst):
        if Path(src).name.startswith(".tiny.tmp-"):
            raise OSError("disk full")
        return real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(BundleError, match="disk full"):
        write_bundle(dataclasses.replace(net, name="new"), bundle)
    monkeypatch.undo()
    assert tree(bundle) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny"]


def test_case_colliding_layer_names_get_distinct_files(net, tmp_path):
    fc1, fc2 = net.layers
    twins = dataclasses.replace(net, layers=(fc1, dataclasses.replace(fc2, name="FC1")))
    back = read_bundle(write_bundle(twins, tmp_path / "t"))
    assert_same_network(twins, back)
    assert (tmp_path / "t" / "1_FC1.codes.npy").is_file()


def test_symlinks_inside_the_bundle_are_allowed(bundle):
    (bundle / "shared.npy").write_bytes((bundle / "fc2.bias.npy").read_bytes())
    (bundle / "fc2.bias.npy").unlink()
    (bundle / "fc2.bias.npy").symlink_to("shared.npy")
    read_bundle(bundle)


def test_error_message_names_file_layer_and_field(bundle):
    save_array(bundle, "fc1.bias.npy", np.zeros(4, dtype=np.int64))
    with pytest.raises(BundleError) as e:
        read_bundle(bundle)
    text = str(e.value)
    assert text.startswith(f"{bundle / 'fc1.bias.npy'}: layer 'fc1': field 'bias': ")
    assert "(5,)" in text and "(4,)" in text


def test_json_syntax_error_reports_line_and_column(bundle):
    (bundle / MANIFEST_NAME).write_text('{\n  "format": "rtl_gen-bundle",\n  "version" 1\n}')
    with pytest.raises(BundleError, match=r"line 3, column 13") as e:
        read_bundle(bundle)
    assert (e.value.file, e.value.layer, e.value.field) == (str(bundle / MANIFEST_NAME),
                                                            None, None)


# -- one test per malformed bundle ----------------------------------------------------------

def _set(*keys, value):
    """An edit that sets manifest[keys...] = value."""
    def edit(m):
        node = m
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value
    return edit


def _delete(*keys):
    def edit(m):
        node = m
        for k in keys[:-1]:
            node = node[k]
        del node[keys[-1]]
    return edit


def _array(name, make, **kw):
    """A mutation that replaces the array file ``name`` with ``make(old_array)``."""
    def mutate(bundle):
        save_array(bundle, name, make(np.load(bundle / name)), **kw)
    return mutate


def _manifest(edit):
    return lambda bundle: edit_manifest(bundle, edit)


def _write_manifest(text: bytes):
    return lambda bundle: (bundle / MANIFEST_NAME).write_bytes(text)


def _with(a, index, value):
    a = a.copy()
    a[index] = value
    return a


def _symlink_outside(bundle: Path):
    outside = bundle.parent / "outside"
    outside.mkdir()
    np.save(outside / "bias.npy", np.load(bundle / "fc1.bias.npy"))
    (bundle / "fc1.bias.npy").unlink()
    (bundle / "fc1.bias.npy").symlink_to(outside / "bias.npy")


def _ref_outside(ref: str):
    return _manifest(_set("layers", 0, "weight", "codes", value=ref))


M = MANIFEST_NAME
# id: (mutation, file named, layer named, field named, message regex)
MALFORMED = {
    # the folder and the manifest file
    "missing-manifest": (lambda b: (b / M).unlink(), M, None, None, "missing"),
    "manifest-is-a-folder": (lambda b: ((b / M).unlink(), (b / M).mkdir()), M, None, None,
                             "not a regular file"),
    "manifest-not-utf8": (_write_manifest(b'{"name": "\xff"}'), M, None, None,
                          "not valid UTF-8: byte 0xff at offset 10"),
    "malformed-json": (_write_manifest(b'{"format": "rtl_gen-bundle",,}'), M, None, None,
                       r"not valid JSON: .* at line 1, column 29"),
    "json-duplicate-key": (_write_manifest(b'{"format": 1, "format": 2}'), M, None, None,
                           "'format' appears twice"),
    "json-nan": (_write_manifest(b'{"format": NaN}'), M, None, None, "NaN is not a JSON"),
    "json-huge-number": (_write_manifest(b'{"format": 1e999}'), M, None, None,
                         "1e999 is out of range"),
    "json-not-an-object": (_write_manifest(b"[1, 2]"), M, None, None, "JSON object, not list"),
    # format and version
    "unknown-format": (_manifest(_set("format", value="onnx")), M, None, "format",
                       "not an rtl_gen weight bundle manifest.*'onnx'"),
    "unknown-version": (_manifest(_set("version", value=3)), M, None, "version",
                        "3 is not supported; this reader supports version 1, 2"),
    "missing-version": (_manifest(_delete("version")), M, None, "version",
                        "missing; this reader supports version 1, 2"),
    "version-as-string": (_manifest(_set("version", value="1")), M, None, "version",
                          "must be an integer, not '1' \\(a string\\)"),
    # schema
    "schema-extra-top-field": (_manifest(_set("colour", value="red")), M, None, "colour",
                               "not a field of this format version"),
    "schema-extra-layer-field": (_manifest(_set("layers", 1, "colour", value=1)), M, "fc2",
                                 "colour", "not a field of this format version"),
    "schema-extra-weight-field": (_manifest(_set("layers", 0, "weight", "zero", value=0)), M,
                                  "fc1", "weight.zero", "not a field"),
    "schema-wrong-type": (_manifest(_set("layers", 0, "in_signed", value="yes")), M, "fc1",
                          "in_signed", "'yes' is not of type 'boolean'"),
    "schema-float-for-integer": (_manifest(_set("layers", 1, "in_features", value=5.0)), M,
                                 "fc2", "in_features", "not of type 'integer'"),
    "schema-scheme-not-string": (_manifest(_set("layers", 1, "weight", "scheme", value=2)),
                                 M, "fc2", "weight.scheme", "not of type 'string'"),
    "schema-missing-field": (_manifest(_delete("layers", 1, "bias")), M, "fc2", "bias",
                             "missing"),
    "schema-bad-activation": (_manifest(_set("layers", 0, "activation", value="gelu")), M,
                              "fc1", "activation", "'gelu' is not one of"),
    "schema-bad-label": (_manifest(_set("labels", value=["a", 2, "c"])), M, None,
                         "labels[1]", "not of type 'string'"),
    "schema-bad-kind": (_manifest(_set("layers", 0, "kind", value="conv2d")), M, "fc1",
                        "kind", "'dense' was expected"),
    "schema-no-layers": (_manifest(_set("layers", value=[])), M, None, "layers",
                         "should be non-empty"),
    "scale-beyond-float": (_manifest(_set("layers", 1, "weight", "scale", value=10**400)), M,
                           "fc2", "weight.scale", "too large for a float"),
    "schema-zero-scale": (_manifest(_set("input", "scale", value=0)), M, None, "input.scale",
                          "less than or equal to the minimum of 0"),
    # bit widths out of range
    "in-bits-0": (_manifest(_set("layers", 0, "in_bits", value=0)), M, "fc1", "in_bits",
                  "0 is less than the minimum of 1"),
    "out-bits-17": (_manifest(_set("layers", 0, "out_bits", value=17)), M, "fc1", "out_bits",
                    "17 is greater than the maximum of 16"),
    "input-bits-40": (_manifest(_set("input", "bits", value=40)), M, None, "input.bits",
                      "40 is greater than the maximum of 16"),
    # schemes
    "unknown-scheme": (_manifest(_set("layers", 0, "weight", "scheme", value="int99")), M,
                       "fc1", "weight.scheme",
                       "'int99' is not a scheme: int width must be 2..16 bits"),
    "unknown-scheme-kind": (_manifest(_set("layers", 1, "weight", "scheme", value="fp8")), M,
                            "fc2", "weight.scheme", "unknown weight scheme 'fp8'"),
    "scheme-not-canonical": (_manifest(_set("layers", 0, "weight", "scheme", value="INT4")),
                             M, "fc1", "weight.scheme", "must be spelled 'int4'"),
    # activation, requantization and the chain of inputs
    "hidden-layer-without-activation": (
        _manifest(_set("layers", 0, "activation", value="none")), M, "fc1", "activation",
        "must be 'relu' in a hidden layer"),
    "relu-without-requant": (_manifest(_set("layers", 0, "requant", value=None)), M, "fc1",
                             "requant", "must be given for a relu layer"),
    "last-layer-with-out-bits": (_manifest(_set("layers", 1, "out_bits", value=8)), M, "fc2",
                                 "out_bits", "must be null"),
    "chain-in-bits": (_manifest(_set("layers", 1, "in_bits", value=7)), M, "fc2", "in_bits",
                      "is 7 but layer 'fc1' gives 8-bit codes"),
    "chain-in-signed": (_manifest(_set("layers", 1, "in_signed", value=True)), M, "fc2",
                        "in_signed", "gives unsigned codes"),
    "chain-in-features": (_manifest(_set("input", "features", value=7)), M, "fc1",
                          "in_features", "is 6 but the input gives 7 features"),
    # design rules of network.py, reported against the manifest
    "tr-budget-too-large": (_manifest(_set("layers", 0, "tr", "budget", value=13)), M, "fc1",
                            "tr.budget", "must be at most 12"),
    "tr-data-terms-too-many": (_manifest(_set("layers", 0, "tr", "data_terms", value=10)), M,
                               "fc1", "tr.data_terms", "must be at most 9"),
    "duplicate-layer-name": (_manifest(_set("layers", 1, "name", value="fc1")), M, "fc1",
                             "name", "used by two layers"),
    "bad-layer-name": (_manifest(_set("layers", 1, "name", value="fc 2")), M, "fc 2", "name",
                       "non-empty word"),
    "labels-count": (_manifest(_set("labels", value=["a", "b"])), M, None, "labels",
                     "2 names for 3 outputs"),
    # array paths
    "path-dotdot": (_ref_outside("../x.npy"), M, "fc1", "weight.codes",
                    r"'\.\./x\.npy' leads outside the bundle folder"),
    "path-dotdot-backslash": (_ref_outside("..\\x.npy"), M, "fc1", "weight.codes",
                              "leads outside the bundle folder"),
    "path-absolute": (_ref_outside("/etc/passwd"), M, "fc1", "weight.codes",
                      "'/etc/passwd' is an absolute path"),
    "path-windows-drive": (_ref_outside("C:\\x.npy"), M, "fc1", "weight.codes",
                           "absolute path"),
    "path-subfolder": (_ref_outside("sub/fc1.codes.npy"), M, "fc1", "weight.codes",
                       "not a plain file name"),
    "path-not-npy": (_ref_outside("manifest.json"), M, "fc1", "weight.codes",
                     "must be a .npy file name"),
    "path-symlink-outside": (_symlink_outside, "fc1.bias.npy", "fc1", "bias",
                             "link that leads outside the bundle folder"),
    "missing-npy": (lambda b: (b / "fc2.bias.npy").unlink(), "fc2.bias.npy", "fc2", "bias",
                    "missing: the manifest names it in 'bias'"),
    # array files
    "not-an-npy": (lambda b: (b / "fc1.codes.npy").write_bytes(b"PK\x03\x04 a zip file"),
                   "fc1.codes.npy", "fc1", "weight.codes",
                   "not a valid .npy file .*magic string"),
    "truncated-npy": (lambda b: (b / "fc1.float_weight.npy").write_bytes(
        (b / "fc1.float_weight.npy").read_bytes()[:-8]), "fc1.float_weight.npy", "fc1",
        "float.weight", "not a valid .npy file: 232 bytes of data where shape"),
    "pickled-object-array": (_array("fc1.bias.npy", lambda a: a.astype(object),
                                    allow_pickle=True), "fc1.bias.npy", "fc1", "bias",
                             "Python objects .*pickled object array"),
    "shape-mismatch": (_array("fc2.codes.npy", lambda a: a.T), "fc2.codes.npy", "fc2",
                       "weight.codes", r"must have shape \(3, 5\), not \(5, 3\)"),
    "shape-mismatch-float": (_array("fc1.float_bias.npy", lambda a: a[:, None]),
                             "fc1.float_bias.npy", "fc1", "float.bias",
                             r"must have shape \(5,\), not \(5, 1\)"),
    "dtype-float-codes": (_array("fc1.codes.npy", lambda a: a.astype(np.float64)),
                          "fc1.codes.npy", "fc1", "weight.codes",
                          "must have an integer dtype, not float64"),
    "dtype-integer-float-weight": (_array("fc2.float_weight.npy",
                                          lambda a: a.astype(np.int32)),
                                   "fc2.float_weight.npy", "fc2", "float.weight",
                                   "must have a floating-point dtype .*not int32"),
    "dtype-bool-bias": (_array("fc2.bias.npy", lambda a: a > 0), "fc2.bias.npy", "fc2",
                        "bias", "must have an integer dtype, not bool"),
    "code-out-of-range-int4": (_array("fc1.codes.npy", lambda a: _with(a, (2, 1), 16)),
                               "fc1.codes.npy", "fc1", "weight.codes",
                               r"1 code\(s\) out of range for int4: first is 16 at index "
                               r"\(2, 1\)"),
    "code-int4-minus-8": (_array("fc1.codes.npy", lambda a: _with(a, (0, 0), 8)),
                          "fc1.codes.npy", "fc1", "weight.codes",
                          "out of range for int4: first is 8"),
    "code-out-of-range-ternary": (_array("fc2.codes.npy", lambda a: _with(a, (1, 2), 2)),
                                  "fc2.codes.npy", "fc2", "weight.codes",
                                  r"out of range for ternary: first is 2 at index \(1, 2\)"),
    "code-negative": (_array("fc2.codes.npy", lambda a: _with(a.astype(np.int8), (0, 0), -1)),
                      "fc2.codes.npy", "fc2", "weight.codes", "first is -1"),
    "nan-float-weight": (_array("fc1.float_weight.npy", lambda a: _with(a, (4, 5), np.nan)),
                         "fc1.float_weight.npy", "fc1", "float.weight",
                         r"1 NaN or infinite value\(s\), first nan at index \(4, 5\)"),
    "inf-float-bias": (_array("fc2.float_bias.npy", lambda a: _with(a, 0, -np.inf)),
                       "fc2.float_bias.npy", "fc2", "float.bias",
                       r"NaN or infinite value\(s\), first -inf at index \(0,\)"),
    "bias-too-large": (_array("fc2.bias.npy", lambda a: _with(a, 2, -(2**63))),
                       "fc2.bias.npy", "fc2", "bias", r"\|bias\| must stay below 2\*\*40"),
    "bias-uint64-wraps": (_array("fc2.bias.npy", lambda a: np.full(3, 2**64 - 1, np.uint64)),
                          "fc2.bias.npy", "fc2", "bias", "first is 18446744073709551615"),
    "requant-shift-zero": (_array("fc1.requant_s.npy", lambda a: _with(a, 3, 0)),
                           "fc1.requant_s.npy", "fc1", "requant.shift",
                           "every S must be in 1..62"),
    "requant-multiplier-zero": (_array("fc1.requant_m.npy", lambda a: _with(a, 1, 0)),
                                "fc1.requant_m.npy", "fc1", "requant.multiplier",
                                r"every M must be in 1..2\*\*31-1"),
}


@pytest.mark.parametrize("case", list(MALFORMED), ids=list(MALFORMED))
def test_malformed_bundle(bundle, case):
    mutate, file, layer, field, pattern = MALFORMED[case]
    read_bundle(bundle)  # valid before the mutation
    mutate(bundle)
    with pytest.raises(BundleError) as e:
        read_bundle(bundle)
    err = e.value
    assert (err.file, err.layer, err.field) == (str(bundle / file), layer, field)
    assert re.search(pattern, err.message), err.message
    prefix = [str(bundle / file)]
    prefix += [] if layer is None else [f"layer {layer!r}"]
    prefix += [] if field is None else [f"field {field!r}"]
    assert str(err) == ": ".join(prefix) + ": " + err.message


def test_design_rule_on_an_array_names_the_array_file(bundle):
    # M so large that acc * M no longer fits 63 bits: a rule of network.py, not the reader's.
    save_array(bundle, "fc1.requant_m.npy", np.full(5, 2**31 - 1, dtype=np.int64))
    save_array(bundle, "fc1.bias.npy", np.full(5, 2**39, dtype=np.int64))
    with pytest.raises(BundleError, match="does not fit 63 bits") as e:
        read_bundle(bundle)
    assert (e.value.file, e.value.layer, e.value.field) == (
        str(bundle / "fc1.requant_m.npy"), "fc1", "requant.multiplier")


def test_random_corruption_raises_only_bundle_errors(bundle):
    """Seeded byte flips, cuts and insertions in every file: the reader either accepts the
    result (a flipped float bit, say) or raises BundleError, never anything else."""
    rng = np.random.default_rng(0)
    files = sorted(p.name for p in bundle.iterdir())
    outcomes = {"accepted": 0, "refused": 0}
    for _ in range(300):
        path = bundle / files[rng.integers(len(files))]
        good = path.read_bytes()
        data = bytearray(good)
        for _ in range(int(rng.integers(1, 4))):
            i, op = int(rng.integers(len(data))), rng.random()
            if op < 0.6:
                data[i] = int(rng.integers(256))
            elif op < 0.8:
                del data[i:i + int(rng.integers(1, 20))]
            else:
                data[i:i] = bytes(rng.integers(0, 256, int(rng.integers(1, 6)), np.uint8))
        path.write_bytes(bytes(data))
        try:
            read_bundle(bundle)
            outcomes["accepted"] += 1
        except BundleError as e:
            assert e.file.startswith(str(bundle))
            outcomes["refused"] += 1
        path.write_bytes(good)
    assert outcomes["refused"] > 200


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_bundle_path_is_not_a_folder(tmp_path, kind):
    path = tmp_path / "b"
    if kind == "file":
        path.write_text("x")
    with pytest.raises(BundleError, match="no such bundle folder" if kind == "missing"
                       else "is not a folder") as e:
        read_bundle(path)
    assert e.value.file == str(path)


def test_manifest_symlink_outside_is_refused(bundle, tmp_path):
    (tmp_path / "m.json").write_bytes((bundle / M).read_bytes())
    (bundle / M).unlink()
    (bundle / M).symlink_to(tmp_path / "m.json")
    with pytest.raises(BundleError, match="leads outside") as e:
        read_bundle(bundle)
    assert e.value.file == str(bundle / M)


def test_accepts_other_integer_dtypes_and_byte_orders(net, bundle):
    save_array(bundle, "fc1.codes.npy", np.load(bundle / "fc1.codes.npy").astype(">i4"))
    save_array(bundle, "fc2.bias.npy", np.load(bundle / "fc2.bias.npy").astype(np.int16))
    save_array(bundle, "fc1.float_weight.npy",
               np.asfortranarray(np.load(bundle / "fc1.float_weight.npy")).astype(">f8"))
    back = read_bundle(bundle)
    assert back.layers[0].codes.dtype == np.uint8
    assert_same_network(net, back)


# -- the documentation ----------------------------------------------------------------------

def _schema_fields(schema, prefix=""):
    for key, sub in schema.get("properties", {}).items():
        yield prefix + key
        yield from _schema_fields(sub, prefix + key + ".")
    if "items" in schema and isinstance(schema["items"], dict):
        yield from _schema_fields(schema["items"], "")


def test_format_md_documents_every_field():
    text = FORMAT_MD.read_text(encoding="utf-8")
    missing = [f for f in _schema_fields(MANIFEST_SCHEMA) if f"`{f}`" not in text]
    assert not missing
    assert f'"version": {FORMAT_VERSION}' in text


def test_format_md_example_is_a_valid_manifest():
    text = FORMAT_MD.read_text(encoding="utf-8")
    block = re.search(r"```json\n(.*?)```", text, re.S)
    assert block
    jsonschema.Draft202012Validator(MANIFEST_SCHEMA).validate(json.loads(block.group(1)))

