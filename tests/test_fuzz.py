"""Fuzzing the inputs users hand over: bundles, ``.npz`` files and command lines.

Each fuzzer draws 1,000 cases and holds one rule: the result is correct, or the error is
one clear :class:`~rtl_gen.errors.RtlGenError` (on the command line: exit status 1 or 2, one
``Error:`` line, no traceback).  Inputs are tiny so that every case is cheap; nothing large
is elaborated (the command-line cases that pass validation stop at an output location that
cannot be written, or build a single small unit).
"""

from __future__ import annotations

import io
import json
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from rtl_gen.bundle import read_bundle, write_bundle
from rtl_gen.cli import main
from rtl_gen.data.npz import read_npz
from rtl_gen.design.float_network import FloatNetwork
from rtl_gen.design.network import Network
from rtl_gen.errors import RtlGenError
from rtl_gen.tasks.common import OptionError, arrays_for, data_file
from rtl_gen.training.defaults import WEIGHTS_DIR
from rtl_gen.training.float_model import FloatMLP, load_float_model, save_float_model
from rtl_gen.training.quantize import quantize_mlp

FUZZ = settings(max_examples=1000, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
INT8 = WEIGHTS_DIR / "digits-int8"


@pytest.fixture(scope="module")
def work():
    with tempfile.TemporaryDirectory() as d:
        yield Path(d)


def _tiny_model(seed: int = 0) -> FloatMLP:
    rng = np.random.default_rng(seed)
    return FloatMLP(weights=[rng.normal(size=(3, 4)), rng.normal(size=(2, 3))],
                    biases=[rng.normal(size=3), rng.normal(size=2)],
                    calibration=rng.uniform(0, 1, size=(8, 4)))


@pytest.fixture(scope="module")
def tiny_bundle(work) -> Path:
    net = quantize_mlp(_tiny_model(), "int4", name="tiny")
    return write_bundle(net, work / "tiny")


@pytest.fixture(scope="module")
def tiny_model(work) -> Path:
    path = work / "tiny-model.npz"
    save_float_model(_tiny_model(), path)
    return path


# -- the bundle reader --------------------------------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=6)


def _paths(doc, prefix=()):
    """Every path to a value inside a JSON document."""
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _paths(v, (*prefix, i))


@st.composite
def _manifest_edit(draw, manifest: dict):
    doc = json.loads(json.dumps(manifest))
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(doc) if p]
        path = draw(st.sampled_from(paths))
        parent = doc
        for k in path[:-1]:
            parent = parent[k]
        if isinstance(parent, dict) and draw(st.booleans()) and draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(_json)
    return doc


@pytest.mark.parametrize("target", ["manifest", "arrays"])
def test_fuzz_bundle_reader(tiny_bundle, work, target):
    manifest = json.loads((tiny_bundle / "manifest.json").read_text())
    arrays = sorted(p.name for p in tiny_bundle.glob("*.npy"))
    case = work / f"case-{target}"

    def check(folder: Path):
        try:
            net = read_bundle(folder)
        except RtlGenError as e:
            assert str(e) and "\n" not in str(e), str(e)
            return
        assert isinstance(net, Network | FloatNetwork)

    shutil.rmtree(case, ignore_errors=True)
    shutil.copytree(tiny_bundle, case)
    if target == "manifest":
        @FUZZ
        @given(doc=_manifest_edit(manifest), raw=st.booleans(), junk=st.binary(max_size=64))
        def run(doc, raw, junk):
            text = json.dumps(doc).encode()
            (case / "manifest.json").write_bytes(junk + text if raw else text)
            check(case)
    else:
        originals = {name: (tiny_bundle / name).read_bytes() for name in arrays}

        @FUZZ
        @given(name=st.sampled_from(arrays), cut=st.integers(0, 300),
               flips=st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=4))
        def run(name, cut, flips):
            data = bytearray(originals[name])
            for at, value in flips:
                if at < len(data):
                    data[at] = value
            (case / name).write_bytes(bytes(data[:cut] if cut < len(data) else data))
            try:
                check(case)
            finally:
                (case / name).write_bytes(originals[name])
    run()


# -- the .npz loaders ---------------------------------------------------------------------------

_dtypes = st.sampled_from(["float64", "float32", "float16", "int64", "int8", "uint16", "bool",
                           "complex64", "<U3", "S2", "object"])


@st.composite
def _array(draw, ndim=None):
    dtype = draw(_dtypes)
    shape = draw(hnp.array_shapes(min_dims=0 if ndim is None else ndim,
                                  max_dims=2 if ndim is None else ndim, min_side=0,
                                  max_side=4))
    if dtype == "object":
        return np.array([object()] * int(np.prod(shape)), dtype=object).reshape(shape)
    return draw(hnp.arrays(np.dtype(dtype), shape))


def _npz_bytes(arrays: dict) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def test_fuzz_npz_bytes(work):
    """Random bytes and damaged archives: every array, or one error naming the file."""
    valid = _npz_bytes({"x": np.zeros((2, 4)), "y": np.arange(2)})
    path = work / "fuzz-bytes.npz"

    @FUZZ
    @given(base=st.sampled_from([b"", valid]), cut=st.integers(0, len(valid)),
           flips=st.lists(st.tuples(st.integers(0, len(valid)), st.integers(0, 255)),
                          max_size=4), junk=st.binary(max_size=32))
    def run(base, cut, flips, junk):
        data = bytearray(base[:cut] if base else junk)
        for at, value in flips:
            if at < len(data):
                data[at] = value
        path.write_bytes(bytes(data))
        try:
            arrays = read_npz(path)
        except RtlGenError as e:
            assert str(e).startswith(str(path)) and "\n" not in str(e)
            return
        assert all(isinstance(a, np.ndarray) for a in arrays.values())

    run()


def test_fuzz_evaluation_data(work):
    """Arrays of every dtype and shape as x and y: the checked data, or one error."""
    path = work / "fuzz-data.npz"

    @FUZZ
    @given(x=_array(), y=_array(), keys=st.sampled_from([("x", "y"), ("x",), ("y", "z")]))
    def run(x, y, keys):
        path.write_bytes(_npz_bytes(dict(zip(keys, (x, y), strict=False))))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                gx, gy = data_file(path, 4, classes=3)
        except RtlGenError as e:
            assert str(e).startswith(str(path)) and "\n" not in str(e)
            return
        assert gx.shape[1] == 4 and len(gx) >= 1 and np.isfinite(gx).all()
        assert gy.dtype == np.int64 and ((0 <= gy) & (gy < 3)).all()

    run()


def test_fuzz_float_model_loader(work):
    """Float models with arrays of every dtype and shape: a model, or one error."""
    path = work / "fuzz-model.npz"
    names = st.sampled_from(["weight0", "bias0", "weight1", "bias1", "calibration",
                             "input_scale", "input_bits", "input_signed", "labels", "extra"])

    @FUZZ
    @given(arrays=st.dictionaries(names, _array(), max_size=6))
    def run(arrays):
        path.write_bytes(_npz_bytes(arrays))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                model = load_float_model(path)
        except RtlGenError as e:
            assert str(e).startswith(str(path)) and "\n" not in str(e)
            return
        assert len(model.weights) >= 1

    run()


# -- the command line ---------------------------------------------------------------------------

_text = st.text(st.characters(codec="utf-8", exclude_characters="\0"), max_size=12)
_number_text = st.one_of(st.integers(-10, 300).map(str), st.floats(-1, 2).map(str), _text)


def _check_cli(result, ok=None):
    """The rule: exit status 0 with ``ok`` holding, or 1 or 2 with one ``Error:`` line."""
    assert result.exit_code in (0, 1, 2), (result.exit_code, result.output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        repr(result.exception)
    assert "Traceback" not in result.output
    if result.exit_code == 0:
        if ok is not None:
            ok()
        return
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr


def test_fuzz_cli_quantize(tiny_model, work):
    out = work / "cli-q"
    runner = CliRunner()

    @FUZZ
    @given(scheme=st.one_of(st.sampled_from(["int4", "ternary", "pot4", "apot3", "binary",
                                             "int4,int8", "signmag4", "int0", "e4m3"]), _text),
           tr=st.one_of(st.none(), st.tuples(st.integers(-1, 40), st.integers(-1, 80))
                        .map(lambda t: f"{t[0]}:{t[1]}"), _text),
           name=st.one_of(st.none(), _text), bits=_number_text, act=_number_text)
    def run(scheme, tr, name, bits, act):
        args = ["quantize", "--model", str(tiny_model), "--scheme", scheme, "--out", str(out),
                "--input-bits", bits, "--act-bits", act]
        args += [] if tr is None else ["--tr", tr]
        args += [] if name is None else ["--name", name]
        _check_cli(runner.invoke(main, args),
                   lambda: read_bundle(out).name == (name if name is not None else out.name))

    run()


def test_fuzz_cli_generate(work):
    """Options of both forms; the output sits under a regular file, so whatever passes the
    checks ends at that output before anything is elaborated."""
    blocker = work / "a-file"
    blocker.write_text("")
    runner = CliRunner()
    kinds = st.sampled_from(["int8", "int4", "ternary", "binary", "pot4", "apot4", "xnor",
                             "bitplane8", "signmag4", "int99", "float"])

    @FUZZ
    @given(kind=st.one_of(kinds, _text), lanes=_number_text, a_bits=_number_text,
           weights=st.one_of(st.none(), _text), name=st.one_of(st.none(), _text),
           bundle=st.booleans(), rows=_number_text, cols=_number_text,
           array_lanes=_number_text)
    def run(kind, lanes, a_bits, weights, name, bundle, rows, cols, array_lanes):
        if bundle:
            args = ["generate", "--bundle", str(INT8), "--rows", rows, "--cols", cols,
                    "--array-lanes", array_lanes]
        else:
            args = ["generate", "--pe", kind, "--lanes", lanes, "--a-bits", a_bits]
            args += [] if weights is None else ["--weights", weights]
        args += [] if name is None else ["--name", name]
        result = runner.invoke(main, [*args, "-o", str(blocker / "x.v")])
        _check_cli(result)
        assert result.exit_code != 0

    run()


def test_fuzz_cli_report(work, tiny_bundle):
    runner = CliRunner()
    data = work / "cli-data.npz"
    out = work / "cli-report"

    @FUZZ
    @given(x=st.one_of(_array(ndim=2), hnp.arrays(np.float64, st.tuples(
               st.integers(0, 4), st.just(4)), elements=st.floats(-2, 2))),
           y=st.one_of(_array(ndim=1), hnp.arrays(np.int64, st.integers(0, 4),
                                                  elements=st.integers(-2, 3))),
           write=st.booleans())
    def run(x, y, write):
        data.write_bytes(_npz_bytes({"x": x, "y": y}))
        shutil.rmtree(out, ignore_errors=True)
        args = ["report", "--bundle", str(tiny_bundle), "--data", str(data)]
        args += ["--out", str(out)] if write else []
        result = runner.invoke(main, args)

        def ok():
            assert "nan" not in result.stdout
            if write:
                rows = json.loads((out / "report.json").read_text())
                assert 0 <= rows[0]["golden_accuracy"] <= 1

        _check_cli(result, ok)
        if result.exit_code:
            assert not out.exists()

    run()


def test_fuzz_cli_verify(work):
    """Every option at random; the bundle is no bundle, so nothing is ever simulated."""
    runner = CliRunner()
    not_a_bundle = work / "not-a-bundle"
    not_a_bundle.write_text("{}")

    @FUZZ
    @given(images=_number_text, gap=_number_text, stall=_number_text, rows=_number_text,
           simulator=st.one_of(st.sampled_from(["verilator", "icarus"]), _text),
           tr_k=st.one_of(st.none(), _number_text), flag=st.booleans())
    def run(images, gap, stall, rows, simulator, tr_k, flag):
        args = ["verify", "--bundle", str(not_a_bundle), "--images", images, "--gap", gap,
                "--stall", stall, "--rows", rows, "--simulator", simulator]
        args += [] if tr_k is None else ["--tr-k", tr_k]
        args += ["--conventional"] if flag else []
        result = runner.invoke(main, args)
        _check_cli(result)
        assert result.exit_code != 0

    run()


def test_fuzz_array_options_size_check():
    """Any array options within their ranges: arrays to build, or a usage error that names
    the options; never a design that cannot fit (checked by the floor of its LUT4s)."""
    from rtl_gen.design.size import LUT4_PER_LANE
    from rtl_gen.devices import DEVICES

    net = read_bundle(INT8)
    biggest = max(d.luts for d in DEVICES.values())

    @FUZZ
    @given(rows=st.integers(1, 64), cols=st.integers(1, 256),
           lanes=st.sampled_from([1, 2, 4, 8, 16, 32, 64, 128, 256]))
    def run(rows, cols, lanes):
        floor = LUT4_PER_LANE * rows * cols * lanes * len(net.layers)
        try:
            arrays = arrays_for(net, rows=rows, cols=cols, lanes=lanes)
        except OptionError as e:
            assert floor > biggest or "cannot" in str(e)
            return
        assert floor <= biggest and len(arrays) == len(net.layers)

    run()
