"""QONNX import: Brevitas exports imported exactly (qonnx's executor is the oracle), every
unsupported or malformed graph refused with one line naming the op, the node and its
position, nothing written.

The models are exported in the tests by Brevitas itself, with seeded random weights and
batch-norm statistics from a few forward passes in training mode.  "Exact" is checked code
for code: the graph's input quantizer against :func:`encode_input`, every hidden quantizer's
integer codes against the golden model's layer outputs, and the graph output (divided by its
per-channel scale) against the golden logits.
"""

from __future__ import annotations

import ast
import math
import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from rtl_gen.bundle import read_bundle, write_bundle  # noqa: E402
from rtl_gen.cli import main  # noqa: E402
from rtl_gen.design.golden import forward  # noqa: E402
from rtl_gen.importer import ImportRefusal, encode_input, import_qonnx  # noqa: E402
from rtl_gen.importer.requant import code_threshold, solve  # noqa: E402
from rtl_gen.numerics.fixedpoint import requantize  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
QONNX = "qonnx.custom_op.general"
N_VECTORS = 1000


# -- the integer form of a quantizer --------------------------------------------------------

# The rounding functions of QONNX's Quant, written out here (not taken from the importer).
ROUNDERS = {
    "ROUND": np.round,
    "CEIL": np.ceil,
    "FLOOR": np.floor,
    "UP": lambda z: np.sign(z) * np.ceil(np.abs(z)),
    "DOWN": np.fix,
    "HALF_UP": lambda z: np.sign(z) * np.floor(np.abs(z) + 0.5),
    "HALF_DOWN": lambda z: np.sign(z) * np.ceil(np.abs(z) - 0.5),
}


@pytest.mark.parametrize("mode", sorted(ROUNDERS))
def test_code_threshold_matches_the_rounding_mode(mode):
    z = np.arange(-24, 25) / 4                  # every quarter: ties and exact integers
    rounded = ROUNDERS[mode](z)
    for level in range(-5, 6):
        theta, inclusive = code_threshold(level, mode)
        passed = z >= float(theta) if inclusive else z > float(theta)
        assert np.array_equal(passed, rounded >= level), (mode, level)


def _hardware_codes(r, amin, amax, out_bits):
    acc = np.arange(amin, amax + 1, dtype=np.int64) + r.beta
    return requantize(acc, r.multiplier, r.shift, out_bits)


def _graph_codes(thresholds, amin, amax):
    a = np.arange(amin, amax + 1)
    return sum((a >= t).astype(np.int64) for t in thresholds)


def _staircase(r, b, bits):
    ts = []
    for k in range(1, (1 << bits)):
        theta, incl = code_threshold(k, "ROUND")
        t = theta / r - b
        ts.append(math.ceil(t) if incl else math.floor(t) + 1)
    return ts


def test_solve_reproduces_every_integer_bias_staircase_exactly():
    """Thresholds of ``round_half_even((A + b) * r)``, ``b`` an integer bias (Brevitas'
    Int8Bias) and ``r`` a scale with no short binary form: the solution's multiply and shift
    give the same code for every accumulator of the range."""
    rng = np.random.default_rng(1)
    for _ in range(200):
        r = Fraction(float(rng.uniform(0.002, 0.7)))
        b = int(rng.integers(-40, 40))
        bits = int(rng.integers(1, 9))
        amin, amax = -int(rng.integers(0, 3000)), int(rng.integers(1, 3000))
        ts = _staircase(r, b, bits)
        sol = solve(ts, (1 << bits) - 1, amin, amax)
        assert sol.exact
        assert np.array_equal(_hardware_codes(sol, amin, amax, bits),
                              _graph_codes(ts, amin, amax))


def test_solve_never_claims_a_false_exactness():
    """With a fractional offset (a folded batch norm) an exact form may not exist: when the
    solution says exact, every accumulator agrees; when not, every disagreement lies within
    the reported bound of a graph threshold."""
    rng = np.random.default_rng(2)
    seen = set()
    for _ in range(300):
        r = Fraction(float(rng.uniform(0.01, 0.7)))
        b = Fraction(float(rng.uniform(-40, 40)))
        bits = int(rng.integers(1, 5))
        amin, amax = -int(rng.integers(0, 500)), int(rng.integers(1, 500))
        ts = _staircase(r, b, bits)
        sol = solve(ts, (1 << bits) - 1, amin, amax)
        hw, graph = _hardware_codes(sol, amin, amax, bits), _graph_codes(ts, amin, amax)
        seen.add(sol.exact)
        if sol.exact:
            assert np.array_equal(hw, graph)
            continue
        assert not np.array_equal(hw, graph)
        bad = np.arange(amin, amax + 1)[hw != graph]
        dist = np.min(np.abs(bad[:, None] - np.array(ts)[None, :]), axis=1)
        assert dist.max() <= sol.max_off
    assert seen == {True, False}


def test_solve_reports_its_bound_when_no_exact_form_exists():
    """Three levels with the top code of a 2-bit field unused: no multiply and shift clamps
    at 2, so the solution is inexact and says by how much, and the brute-force comparison
    agrees with what it says."""
    ts, amin, amax = [-5, 6], -64, 64
    sol = solve(ts, 3, amin, amax)
    assert not sol.exact and sol.off >= 1 and sol.max_off >= 1
    hw = _hardware_codes(sol, amin, amax, 2)
    assert not np.array_equal(hw, _graph_codes(ts, amin, amax))
    # and one threshold at a time (the thermometer code) is always exact
    for t in ts:
        one = solve([t], 1, amin, amax)
        assert one.exact
        assert np.array_equal(_hardware_codes(one, amin, amax, 1), _graph_codes([t], amin,
                                                                                 amax))


def test_the_importer_never_imports_the_oracle():
    """rtl_gen.importer needs onnx only: qonnx, brevitas and torch stay test-only."""
    for path in (ROOT / "rtl_gen" / "importer").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level \
                else []
            for n in names:
                assert n.split(".")[0] not in ("qonnx", "brevitas", "torch"), (path, n)


# -- small graphs built by hand -----------------------------------------------------------


def _quant(name, x, scale, bits, *, signed=1, narrow=0, mode="ROUND", domain=QONNX):
    inits = [numpy_helper.from_array(np.array(scale, np.float32), f"{name}_s"),
             numpy_helper.from_array(np.array(0.0, np.float32), f"{name}_z"),
             numpy_helper.from_array(np.array(float(bits), np.float32), f"{name}_b")]
    node = helper.make_node("Quant", [x, f"{name}_s", f"{name}_z", f"{name}_b"], [name],
                            name=name, domain=domain, signed=signed, narrow=narrow,
                            rounding_mode=mode)
    return node, inits


def _weights(name, codes, scale):
    w = numpy_helper.from_array((np.asarray(codes, np.float32) * scale).astype(np.float32),
                                f"{name}_f")
    node, inits = _quant(name, f"{name}_f", scale, 4, narrow=1)
    return node, [w] + inits


def tiny_model(*, extra=None, replace=None, opset=13, out_quant=False, drop=None,
               in_shape=(1, 4), act_scale=0.3):
    """Input (1, 4) -> Quant -> Gemm 4->3 -> Relu -> Quant (3-bit) -> Gemm 3->2 -> output.

    ``extra``: nodes (and initializers) inserted after the Relu, fed by ``r`` and feeding
    ``rx``; ``replace``: a function rewriting the node list; ``drop``: initializer names to
    leave out."""
    rng = np.random.default_rng(7)
    nodes, inits = [], []
    n, i = _quant("xq", "x", 0.5, 4)
    nodes.append(n)
    inits += i
    n, i = _weights("w1", rng.integers(-7, 8, (3, 4)), 0.25)
    nodes.append(n)
    inits += i
    nodes.append(helper.make_node("Gemm", ["xq", "w1"], ["h"], name="fc1", transB=1))
    nodes.append(helper.make_node("Relu", ["h"], ["r"], name="relu1"))
    tail = "r"
    if extra is not None:
        ex_nodes, ex_inits = extra
        nodes += ex_nodes
        inits += ex_inits
        tail = "rx"
    n, i = _quant("a1", tail, act_scale, 3, signed=0)
    nodes.append(n)
    inits += i
    n, i = _weights("w2", rng.integers(-7, 8, (2, 3)), 0.125)
    nodes.append(n)
    inits += i
    nodes.append(helper.make_node("Gemm", ["a1", "w2"], ["y"], name="fc2", transB=1))
    out = "y"
    if out_quant:
        n, i = _quant("yq", "y", 0.5, 8)
        nodes.append(n)
        inits += i
        out = "yq"
    if replace is not None:
        nodes = replace(nodes)
    if drop:
        inits = [t for t in inits if t.name not in drop]
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_shape))],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset),
                                                   helper.make_opsetid(QONNX, 1)])


def _save(model, tmp_path, name="m.onnx") -> Path:
    p = tmp_path / name
    p.write_bytes(model.SerializeToString())
    return p


def _node(op, ins, outs, name, **kw):
    return helper.make_node(op, ins, outs, name=name, **kw)


def _sub(nodes, name, new):
    return [new if n.name == name else n for n in nodes]


def _residual(nodes):
    # the input quantizer's output also feeds an Add after the first layer's ReLU
    out = []
    for n in nodes:
        out.append(n)
        if n.name == "relu1":
            out.append(_node("Add", ["r", "xq"], ["rr"], "skip"))
    return [helper.make_node(n.op_type, ["rr" if (i == "r" and n.name == "a1") else i
                                         for i in n.input], n.output, name=n.name,
                             domain=n.domain) if n.name == "a1" else n for n in out]


def _redomain(nodes, name):
    n = next(n for n in nodes if n.name == name)
    attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
    return helper.make_node(n.op_type, list(n.input), list(n.output), name=n.name,
                            domain="com.example", **attrs)


REFUSALS = {
    "unknown op": (dict(extra=([_node("Sigmoid", ["r"], ["rx"], "sig")], [])),
                   ["node 4", "'sig'", "Sigmoid"]),
    "grouped conv": (dict(extra=([_node("Conv", ["r", "cw"], ["rx"], "conv1", group=3)],
                                 [numpy_helper.from_array(np.ones((3, 1, 1), np.float32),
                                                          "cw")])),
                     ["'conv1'", "Conv", "group 3"]),
    "max pool": (dict(extra=([_node("MaxPool", ["r"], ["rx"], "pool", kernel_shape=[1])],
                             [])), ["'pool'", "MaxPool"]),
    "dynamic weight": (dict(replace=lambda ns: _sub(ns, "fc2", _node("Gemm", ["a1", "wdyn"],
                                                                     ["y"], "fc2"))),
                       ["'fc2'", "Gemm", "dynamic weight"]),
    "quantizer on a residual branch": (dict(replace=_residual),
                                       ["'xq'", "feeds more than one node"]),
    "missing initializer": (dict(drop={"w2_f"}), ["'w2'", "'w2_f'", "neither"]),
    "float weight": (dict(replace=lambda ns: _sub(ns, "fc2", _node(
        "Gemm", ["a1", "w2_f"], ["y"], "fc2", transB=1))), ["'fc2'", "not quantized"]),
    "output quantizer": (dict(out_quant=True), ["quantizer", "last layer"]),
    "relu after the last layer": (dict(replace=lambda ns: ns + [_node("Relu", ["y"], ["y2"],
                                                                      "relu_out")]), None),
    "unknown domain": (dict(replace=lambda ns: _sub(ns, "a1", _redomain(ns, "a1"))),
                       ["'a1'", "com.example"]),
    "wrong opset": (dict(opset=7), ["opset 7"]),
    "two layers without a quantizer": (dict(replace=lambda ns: [n for n in _sub(
        ns, "fc2", _node("Gemm", ["r", "w2"], ["y"], "fc2", transB=1)) if n.name != "a1"]),
        ["'fc2'", "not quantized"]),
    "fractional bit width": (None, ["bit width"]),
}


def _refusal_model(case):
    kwargs, _ = REFUSALS[case]
    if case == "relu after the last layer":
        m = tiny_model()
        m.graph.node.append(_node("Relu", ["y"], ["y2"], "relu_out"))
        m.graph.output[0].name = "y2"
        return m
    if case == "dynamic weight":
        m = tiny_model(**kwargs)
        m.graph.input.append(helper.make_tensor_value_info("wdyn", TensorProto.FLOAT, [3, 2]))
        return m
    if case == "fractional bit width":
        m = tiny_model()
        for t in m.graph.initializer:
            if t.name == "a1_b":
                t.CopyFrom(numpy_helper.from_array(np.array(2.5, np.float32), "a1_b"))
        return m
    return tiny_model(**kwargs)


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_unsupported_graphs_are_refused_by_name(tmp_path, case):
    path = _save(_refusal_model(case), tmp_path)
    out = tmp_path / "bundle"
    res = CliRunner().invoke(main, ["import", str(path), "--out", str(out)])
    assert res.exit_code == 1, res.output
    err = res.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in res.output
    for word in REFUSALS[case][1] or ["Relu"]:
        assert word in err, (word, err)
    assert not out.exists()


@pytest.mark.parametrize("content", ["text", "truncated", "empty"])
def test_files_that_are_no_onnx_model_are_refused(tmp_path, content):
    good = tiny_model().SerializeToString()
    data = {"text": b"this is not a model\n", "truncated": good[: len(good) // 2],
            "empty": b""}[content]
    path = tmp_path / "m.onnx"
    path.write_bytes(data)
    res = CliRunner().invoke(main, ["import", str(path), "--out", str(tmp_path / "b")])
    assert res.exit_code == 1
    assert "not an ONNX model" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "b").exists()


def test_a_refused_import_leaves_an_existing_bundle_alone(tmp_path):
    out = tmp_path / "b"
    write_bundle(import_qonnx(_save(tiny_model(), tmp_path)).network, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    bad = _save(tiny_model(opset=7), tmp_path, "bad.onnx")
    with pytest.raises(ImportRefusal):
        import_qonnx(bad)
    res = CliRunner().invoke(main, ["import", str(bad), "--out", str(out)])
    assert res.exit_code == 1
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


# -- the oracle -----------------------------------------------------------------------------


def _execute(path, x):
    """Every tensor of the graph on inputs ``x``, by qonnx's executor."""
    pytest.importorskip("qonnx")
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.infer_shapes import InferShapes

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")       # the oracle's own deprecations
        mw = ModelWrapper(str(path)).transform(InferShapes())
        return execute_onnx(mw, {mw.graph.input[0].name: x.astype(np.float32)},
                            return_full_exec_context=True)


def _codes(t, scale, zeropt):
    """Integer codes of a quantizer's float output; they must be integers."""
    c = np.asarray(t, dtype=np.float64) / scale + zeropt
    assert np.abs(c - np.rint(c)).max() < 1e-3
    return np.rint(c).astype(np.int64)


def assert_exact(path, x):
    """The imported network gives the graph's codes at every quantizer and its logits."""
    result = import_qonnx(path)
    net, info = result.network, result.info
    ctx = _execute(path, x)
    n = len(x)
    inp = info["input"]
    q = inp["quant"]
    c = _codes(ctx[inp["tensor"]].reshape(n, -1), q["scale"], q["zeropt"])
    graph_u = np.empty_like(c)
    graph_u[:, inp["perm"]] = (c + 1) // 2 if q["bipolar"] else c
    u = encode_input(info, x)
    assert np.array_equal(u, graph_u)
    trace = forward(net, u, trace=True)
    for li in info["layers"]:
        layer_out, perm, chan = trace[li["index"]], li["perm"], li["chan"]
        c = _codes(ctx[li["tensor"]].reshape(n, -1), np.array(li["scale"])[chan],
                   np.array(li["zeropt"])[chan])
        graph_u = np.empty_like(c)
        graph_u[:, perm] = (c + 1) // 2 if li["bipolar"] else c - li["code_min"]
        ours = layer_out.reshape(n, -1, li["expand"]).sum(axis=2)
        assert np.count_nonzero(ours != graph_u) == 0, li["name"]
        assert len(np.unique(graph_u)) > 1     # the layer's codes are not all the same
    o = info["output"]
    y = np.empty(ctx[o["tensor"]].reshape(n, -1).shape)
    y[:, o["perm"]] = ctx[o["tensor"]].reshape(n, -1)
    code = y / np.array(o["scale"]) - np.array(o["offset"])
    assert np.abs(code - np.rint(code)).max() < 0.05
    assert np.count_nonzero(np.rint(code).astype(np.int64) != trace[-1]) == 0
    assert result.exact
    return result


def test_hand_built_graph_is_exact(tmp_path):
    path = _save(tiny_model(in_shape=(N_VECTORS, 4)), tmp_path)
    x = np.random.default_rng(3).uniform(-4, 4, (N_VECTORS, 4))
    assert_exact(path, x)


def test_an_inexact_layer_is_reported_with_its_bound(tmp_path):
    """Power-of-two scales with round-half-even put ties on integer accumulators, where the
    graph alternates between rounding down and up: no multiply and shift does that for 7
    thresholds.  The import says so (the layer, how many thresholds, by how much), writes
    the bundle only without --require-exact, and the codes differ by one at most."""
    path = _save(tiny_model(in_shape=(N_VECTORS, 4), act_scale=0.5), tmp_path)
    result = import_qonnx(path)
    rep = result.layers[0]
    assert not result.exact and not rep.exact and rep.off > 0 and rep.max_off == 1
    res = CliRunner().invoke(main, ["import", str(path), "--out", str(tmp_path / "a")])
    assert res.exit_code == 0 and "fc1 (fc1): int4 4->3, 3-bit out, NOT exact" in res.output
    res = CliRunner().invoke(main, ["import", str(path), "--out", str(tmp_path / "b"),
                                    "--require-exact"])
    assert res.exit_code == 1 and "not exact" in res.stderr and not (tmp_path / "b").exists()
    x = np.random.default_rng(3).uniform(-4, 4, (N_VECTORS, 4))
    ctx = _execute(path, x)
    info = result.info
    graph = _codes(ctx["a1"], 0.5, 0)
    ours = forward(result.network, encode_input(info, x), trace=True)[0]
    assert np.abs(ours - graph).max() == 1       # ties do occur, and cost one code at most


def test_the_graph_written_with_finn_domain_imports_the_same(tmp_path):
    m = tiny_model()
    for n in m.graph.node:
        if n.domain == QONNX:
            n.domain = "finn.custom_op.general"
    m.opset_import[1].domain = "finn.custom_op.general"
    a = import_qonnx(_save(tiny_model(), tmp_path, "a.onnx")).network
    b = import_qonnx(_save(m, tmp_path, "b.onnx")).network
    x = np.random.default_rng(0).integers(-8, 8, (50, 4))
    assert np.array_equal(forward(a, x), forward(b, x))


# -- Brevitas exports -------------------------------------------------------------------------


def _brevitas():
    pytest.importorskip("qonnx")
    torch = pytest.importorskip("torch")
    pytest.importorskip("brevitas")
    from brevitas.export import export_qonnx

    return torch, export_qonnx


def _calibrate(torch, model, shape, seed):
    """Seeded random weights; batch-norm statistics from a few forward passes."""
    model.train()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _ in range(3):
            model(torch.rand(shape, generator=g) if len(shape) > 2 else
                  torch.randn(shape, generator=g))
    return model.eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Export each model once (Brevitas' export takes seconds)."""
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = _export(name, tmp_path_factory.mktemp(name))
        return cache[name]

    return get


def _jet(torch):
    import brevitas.nn as qnn
    from brevitas.quant import Int8Bias

    class Jet(torch.nn.Module):
        """hls4ml jet tagging's shape: 16-64-32-32-5, QuantReLU, int8 weights and biases."""

        def __init__(self):
            super().__init__()
            dims = [16, 64, 32, 32, 5]
            self.inp = qnn.QuantIdentity(bit_width=8, return_quant_tensor=True)
            self.fcs = torch.nn.ModuleList(
                qnn.QuantLinear(dims[i], dims[i + 1], bias=True, weight_bit_width=8,
                                bias_quant=Int8Bias, return_quant_tensor=True)
                for i in range(4))
            self.acts = torch.nn.ModuleList(qnn.QuantReLU(bit_width=6,
                                                          return_quant_tensor=True)
                                            for _ in range(3))

        def forward(self, x):
            x = self.inp(x)
            for i, fc in enumerate(self.fcs):
                x = fc(x)
                if i < 3:
                    x = self.acts[i](x)
            return x

    return Jet()


def _cnn(torch, bits):
    """A small CNN on 8x8 images: conv 3x3 (8), batch norm, activation, max pool 2x2, conv
    3x3 (16), batch norm, activation, flatten, dense 16->10; ``bits`` 1 (1W1A, binary
    quantizers) or 2 (2W2A)."""
    import brevitas.nn as qnn
    from brevitas.quant import SignedBinaryActPerTensorConst, SignedBinaryWeightPerTensorConst

    kw = {"weight_quant": SignedBinaryWeightPerTensorConst} if bits == 1 else \
        {"weight_bit_width": 2}

    def act():
        if bits == 1:
            return qnn.QuantIdentity(act_quant=SignedBinaryActPerTensorConst)
        return qnn.QuantIdentity(bit_width=2)

    return torch.nn.Sequential(
        act(),
        qnn.QuantConv2d(1, 8, 3, bias=False, **kw), torch.nn.BatchNorm2d(8), act(),
        torch.nn.MaxPool2d(2),
        qnn.QuantConv2d(8, 16, 3, bias=False, **kw), torch.nn.BatchNorm2d(16), act(),
        torch.nn.Flatten(),
        qnn.QuantLinear(16, 10, bias=False, **kw))


def _mlp3(torch):
    """A digits-sized MLP 64-32-10 with ternary weights and 3-level activations {-1, 0, 1}
    (2-bit narrow, as FINN's 2-bit quantizers): imported with thermometer channels."""
    import brevitas.nn as qnn

    return torch.nn.Sequential(
        qnn.QuantIdentity(bit_width=4),
        qnn.QuantLinear(64, 32, bias=False, weight_bit_width=2), torch.nn.BatchNorm1d(32),
        qnn.QuantIdentity(bit_width=2, narrow_range=True),
        qnn.QuantLinear(32, 10, bias=False, weight_bit_width=2))


def _export(name, folder):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")       # Brevitas' and torch.export's deprecations
        return _export_quietly(name, folder)


def _export_quietly(name, folder):
    torch, export_qonnx = _brevitas()
    torch.manual_seed(0)
    if name.startswith("tfc"):
        pytest.importorskip("brevitas_examples")
        from brevitas_examples.bnn_pynq.models import model_with_cfg

        model, _ = model_with_cfg(name, pretrained=False)   # FINN's TFC: 784-64-64-64-10
        shape = (N_VECTORS, 1, 28, 28)
    elif name == "mlp3":
        model = _mlp3(torch)
        shape = (N_VECTORS, 64)
    elif name.startswith("cnn"):
        model = _cnn(torch, 1 if name == "cnn_1w1a" else 2)
        shape = (N_VECTORS, 1, 8, 8)
    else:
        model = _jet(torch)
        shape = (N_VECTORS, 16)
    _calibrate(torch, model, (256,) + shape[1:], seed=1)
    path = folder / f"{name}.onnx"
    export_qonnx(model, torch.rand(shape), str(path))
    return path


def _inputs(name):
    rng = np.random.default_rng(5)
    if name.startswith("tfc"):
        return rng.random((N_VECTORS, 1, 28, 28)).astype(np.float32)
    if name.startswith("cnn"):
        return rng.standard_normal((N_VECTORS, 1, 8, 8)).astype(np.float32)
    if name == "mlp3":
        return rng.standard_normal((N_VECTORS, 64)).astype(np.float32)
    return rng.standard_normal((N_VECTORS, 16)).astype(np.float32)


@pytest.mark.parametrize("name", [
    pytest.param("tfc_1w1a", marks=pytest.mark.slow),      # an export takes ~5 s each
    pytest.param("tfc_1w2a", marks=pytest.mark.slow),
    pytest.param("tfc_2w2a", marks=pytest.mark.slow),
    "jet",
    "cnn_1w1a",
    pytest.param("cnn_2w2a", marks=pytest.mark.slow),
    pytest.param("mlp3", marks=pytest.mark.slow),
])
def test_brevitas_export_imports_exactly(exported, name):
    path = exported(name)
    result = assert_exact(path, _inputs(name))
    schemes = {"tfc_1w1a": "binary", "tfc_1w2a": "binary", "tfc_2w2a": "ternary",
               "jet": "int8", "cnn_1w1a": "binary", "cnn_2w2a": "ternary",
               "mlp3": "ternary"}[name]
    assert set(result.network.schemes) == {schemes}
    kinds = [layer.kind for layer in result.network.layers]
    assert ("conv" in kinds and "maxpool" in kinds) == name.startswith("cnn")
    if name == "cnn_1w1a":                       # and through the command line
        out = path.parent / "bundle"
        res = CliRunner().invoke(main, ["import", str(path), "--out", str(out)])
        assert res.exit_code == 0, res.output
        assert "conv1 (" in res.output and "pool1: maxpool 6x6x8" in res.output
        x = encode_input(result.info, _inputs(name)[:100])
        assert np.array_equal(forward(read_bundle(out), x), forward(result.network, x))


@pytest.mark.slow
def test_qonnx_cleanup_gives_the_same_network(exported, tmp_path):
    pytest.importorskip("onnxoptimizer")
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.cleanup import cleanup_model

    path = exported("tfc_2w2a")
    clean = tmp_path / "clean.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cleanup_model(ModelWrapper(str(path))).save(str(clean))
    a, b = import_qonnx(path).network, import_qonnx(clean).network
    x = encode_input(import_qonnx(path).info, _inputs("tfc_2w2a")[:200])
    assert np.array_equal(forward(a, x), forward(b, x))


def test_bundle_round_trip_and_cli(exported, tmp_path):
    path = exported("jet")
    out = tmp_path / "jet"
    res = CliRunner().invoke(main, ["import", str(path), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert res.output.count("exact") == 4
    net = read_bundle(out)
    info = net.metadata["qonnx"]
    x = encode_input(info, _inputs("jet")[:300])
    assert np.array_equal(forward(net, x), forward(import_qonnx(path).network, x))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["jet", "mlp3", "cnn_1w1a", "cnn_2w2a", "tfc_1w1a",
                                  "tfc_1w2a", "tfc_2w2a"])
def test_imported_model_verifies_bit_exact_in_verilog(exported, tmp_path, name):
    """Every exported model's Verilog against its imported bundle's golden model: the int8
    jet MLP, the MLP whose 3-level activations became thermometer channels, the CNNs (on
    the convolution hardware) and FINN's TFC in its three precisions."""
    pytest.importorskip("cocotb")
    from rtl_gen.tasks.verify import verify

    path = exported(name)
    if name == "mlp3":
        assert [li["expand"] for li in import_qonnx(path).info["layers"]] == [2]
    out = tmp_path / name
    write_bundle(import_qonnx(path).network, out)
    net = read_bundle(out)
    x = _inputs(name)[:40].astype(np.float64)
    x = x.transpose(0, 2, 3, 1).reshape(len(x), -1) if x.ndim == 4 else x  # NCHW -> HWC
    labels = np.argmax(forward(net, net.encode(x)), axis=1)
    data = tmp_path / "data.npz"
    np.savez(data, x=x, y=labels)
    result = verify(out, data=data)
    assert result.simulation["images"] == 40


@pytest.mark.slow
def test_input_encoding_of_the_tfc_is_the_input_spec(exported):
    """FINN's TFC feeds 2x - 1 to a bipolar quantizer: the bundle's own input code
    (``x >= 0.5``) is the same function."""
    result = import_qonnx(exported("tfc_1w1a"))
    x = _inputs("tfc_1w1a").reshape(N_VECTORS, -1)
    assert result.info["input"]["input_spec_exact"]
    assert np.array_equal(result.network.encode(x), encode_input(result.info, x))



def test_the_floatquant_model_shipped_with_qonnx_matches_its_outputs(tmp_path):
    """qonnx's own FloatQuant example (Brevitas FP8 E4M3 input and weights, one Gemm): the
    imported float network's input, weights and fp32 outputs equal the shipped ones bit for
    bit."""
    qonnx = pytest.importorskip("qonnx")
    from rtl_gen.numerics.minifloat import bits_to_f32

    folder = Path(qonnx.__file__).parent / "data" / "onnx" / "floatquant_exec"
    model = folder / "qonnx_act_weight_fp8.onnx"
    if not model.exists():
        pytest.skip("this qonnx wheel ships no FloatQuant example")
    out = tmp_path / "fp8"
    res = CliRunner().invoke(main, ["import", str(model), "--out", str(out)])
    assert res.exit_code == 0, res.output
    net = read_bundle(out)
    x = np.load(folder / "test_data" / "input.npy")
    with np.load(folder / "test_data" / "activation.npz") as shipped:
        acts = {k: shipped[k] for k in shipped.files}
    u = encode_input(net.metadata["qonnx"], x)
    assert np.array_equal(bits_to_f32(u), acts["input_quant"])
    assert np.array_equal(net.layers[0].float_weight, acts["weight_quant"])
    y = bits_to_f32(net.forward(u))
    assert np.array_equal(y.view(np.uint32), np.load(folder / "test_data" / "output.npy")
                          .astype(np.float32).view(np.uint32))
