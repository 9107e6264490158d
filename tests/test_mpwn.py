"""MPWN networks: the float golden model's fixed order, the weight spaces, ASB, the search,
reduced-float formats and float bundles."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rtl_gen.bundle import is_bundle, read_float_bundle, read_int_bundle, write_float_bundle
from rtl_gen.data.digits import digits
from rtl_gen.design import float_network
from rtl_gen.errors import BundleError, SpecError
from rtl_gen.numerics.minifloat import MinifloatFormat
from rtl_gen.training import mpwn
from rtl_gen.training.defaults import FLOAT_MODEL_NAME, WEIGHTS_DIR
from rtl_gen.training.float_model import FloatMLP, load_float_model


def f32(*v) -> np.ndarray:
    """fp32 bit patterns of one array-like, or of several scalars."""
    return np.asarray(v[0] if len(v) == 1 else v, dtype=np.float32).view(np.uint32)


@pytest.fixture(scope="module")
def model() -> FloatMLP:
    return load_float_model(WEIGHTS_DIR / FLOAT_MODEL_NAME)


@pytest.fixture(scope="module")
def test_split():
    return digits()[1]


def scalar_layer(layer: float_network.FloatLayer, x: np.ndarray) -> np.ndarray:
    """The documented order, one scalar at a time (Python loop over numpy float32 scalars)."""
    w = layer.weight_values()
    out = np.zeros((x.shape[0], layer.out_features), dtype=np.uint32)
    for b in range(x.shape[0]):
        for j in range(layer.out_features):
            acc = np.float32(0.0)
            for k in range(layer.in_features):
                xv = x[b, k:k + 1].view(np.float32)[0]
                acc = np.float32(acc + np.float32(xv * np.float32(w[j, k])))
            if layer.scale is not None:
                acc = np.float32(acc * layer.scale[j:j + 1].view(np.float32)[0])
            acc = np.float32(acc + layer.bias[j:j + 1].view(np.float32)[0])
            bits = int(np.array([acc], dtype=np.float32).view(np.uint32)[0])
            if layer.activation == "relu" and bits >> 31:
                bits = 0
            out[b, j] = bits
    return out


def test_accumulation_order_is_sequential_from_plus_zero():
    # 1e8 + 1 - 1e8 is 0 in fp32 left to right, 1 in any order that adds 1 last
    layer = float_network.FloatLayer("l", "float", f32([[1.0, 1.0, 1.0]]), None, f32([0.0]), "none")
    x = f32([[1e8, 1.0, -1e8]])
    assert float_network.layer_forward(layer, x).tolist() == [[0]]
    x = f32([[1e8, -1e8, 1.0]])
    assert float_network.layer_forward(layer, x).view(np.float32).tolist() == [[1.0]]
    # -0 products: +0 + -0 = +0, then + -0 bias = +0
    layer = float_network.FloatLayer("l", "float", f32([[-1.0]]), None, f32([-0.0]), "none")
    assert float_network.layer_forward(layer, f32([[0.0]])).tolist() == [[0]]


def test_numerics_vectors_of_the_bitwise_products():
    xb = f32([[1.5]])
    layer = float_network.FloatLayer("b", "binary", np.array([[1]]), f32([1.0]), f32([0.0]), "none")
    assert float_network.layer_products(layer, xb).tolist() == [[[0xBFC00000]]]
    layer = float_network.FloatLayer("t", "ternary", np.array([[0], [1], [3]]), f32(1, 1, 1),
                            f32(0, 0, 0), "none")
    assert float_network.layer_products(layer, f32([[-2.5]]))[0, :, 0].tolist() == [
        0x80000000, 0xC0200000, 0x40200000]


@pytest.mark.parametrize("space", ["float", "binary", "ternary", "E4M3", "E3M2b2"])
def test_vectorized_golden_equals_the_scalar_order(space):
    rng = np.random.default_rng(len(space))
    w = rng.normal(size=(5, 7)) * 0.5
    w[0, 0] = 0.0
    b = rng.normal(size=5)
    fmt = float_network.parse_space(space)
    layer = mpwn._make_layer("l", space, w, b, "relu", fmt)
    x = f32(rng.normal(size=(4, 7)) * 3)
    x[0, :2] = f32(-0.0, 1e-40)  # negative zero and a subnormal
    got = float_network.layer_forward(layer, x)
    assert np.array_equal(got, scalar_layer(layer, x))
    assert (got >> 31 == 0).all()  # ReLU clears every sign bit


def test_relu_and_argmax_rules():
    layer = float_network.FloatLayer("l", "float", f32([[1.0]]), None, f32([0.0]), "relu")
    assert float_network.layer_forward(layer, f32([[-3.0], [0.0], [2.0]])).ravel().tolist() == [
        0, 0, 0x40000000]
    out = float_network.FloatLayer("o", "float", f32([[1.0], [-1.0], [0.0]]), None, f32(0, 0, 0),
                          "none")
    net = float_network.FloatNetwork("n", 1, None, [out])
    # logits (+0, -0, +0) for x = 0: a three-way tie, the first index wins
    assert float_network.predict(net, f32([[0.0]])).tolist() == [0]
    assert float_network.predict(net, f32([[-1.0]])).tolist() == [1]
    assert float_network.float_key(f32(-2.0, -0.0, 0.0, 1e-45, 3.0)).tolist() == [
        -0x40000000, 0, 0, 1, 0x40400000]


def test_binary_and_ternary_weights_from_a_float_layer():
    w = np.array([[0.9, -0.1, 0.05, -0.6], [0.0, 0.2, -0.2, 0.0]])
    b = np.array([0.5, -0.5])
    lb = mpwn._make_layer("b", "binary", w, b, "none")
    assert lb.codes.tolist() == [[0, 1, 0, 1], [0, 0, 1, 0]]
    assert lb.scale.view(np.float32).tolist() == pytest.approx([0.4125, 0.1])
    lt = mpwn._make_layer("t", "ternary", w, b, "none")
    # thresholds 0.7 * (0.4125, 0.1) = (0.28875, 0.07): keep |w| above them
    assert lt.codes.tolist() == [[1, 0, 0, 3], [0, 1, 3, 0]]
    assert lt.scale.view(np.float32).tolist() == pytest.approx([0.75, 0.2])
    assert lt.sparsity == 0.5 and lb.sparsity == 0.0


def test_score_counts_mpwn_bits_and_the_asb_formula(model, test_split):
    net = mpwn.from_float(model, ("ternary", "binary"))
    x = net.encode(test_split.x)
    r = mpwn.score(net, x, test_split.y)
    assert r["bits"] == 64 * 32 * 2 + 32 * 10 * 1
    assert r["max_bits"] == 16 * (64 * 32 + 32 * 10)
    zeros = int((net.layers[0].codes == 0).sum())
    assert r["sparsity"] == pytest.approx(zeros / (64 * 32 + 32 * 10))
    assert r["accuracy"] == np.mean(float_network.predict(net, x) == test_split.y)
    assert r["asb"] == pytest.approx(
        (r["accuracy"] + r["sparsity"] + 1 - r["bits"] / r["max_bits"]) / 3)


def test_exhaustive_search_ranks_every_assignment(model, test_split):
    seen = []
    rows = mpwn.search(model, test_split.x, test_split.y, method="exhaustive",
                       progress=lambda i, n: seen.append((i, n)))
    assert len(rows) == 9 and seen[-1] == (9, 9)
    assert len({r["spaces"] for r in rows}) == 9
    asb = [r["asb"] for r in rows]
    assert asb == sorted(asb, reverse=True)
    for r in rows[:3]:
        net = mpwn.from_float(model, r["spaces"].split("/"))
        assert r == mpwn.score(net, net.encode(test_split.x), test_split.y)


def test_tpe_search_scores_what_it_tried(model, test_split):
    rows = mpwn.search(model, test_split.x, test_split.y, method="tpe", trials=12, seed=1)
    exhaustive = {r["spaces"]: r for r in mpwn.search(model, test_split.x, test_split.y)}
    assert 1 <= len(rows) <= 9
    for r in rows:
        assert r == exhaustive[r["spaces"]]
    with pytest.raises(ValueError, match="unknown search method 'grid'"):
        mpwn.search(model, test_split.x, test_split.y, method="grid")


def test_spaces_are_validated():
    with pytest.raises(ValueError, match="unknown weight space 'quaternary'"):
        float_network.parse_space("quaternary")
    with pytest.raises(ValueError, match="not every E9M3 value is an fp32 number"):
        float_network.parse_space("E9M3")
    with pytest.raises(ValueError, match="should be spelled 'E4M3'"):
        float_network.parse_space("E4M3b7")
    assert float_network.parse_space("E4M3b9") == MinifloatFormat(4, 3, 9)
    with pytest.raises(SpecError, match="code.*out of range for ternary: first is 2"):
        float_network.FloatLayer("l", "ternary", np.array([[1, 2]]), f32([1.0]), f32([0.0]), "none")
    with pytest.raises(SpecError, match="needs a per-output scale"):
        float_network.FloatLayer("l", "binary", np.array([[1, 0]]), None, f32(0.0), "none")
    with pytest.raises(SpecError, match="NaN or infinite"):
        float_network.FloatLayer("l", "float", f32([[1.0]]), None, f32([np.nan]), "none")
    with pytest.raises(SpecError, match="model has 2 layers but 1 spaces"):
        mpwn.from_float(load_float_model(WEIGHTS_DIR / FLOAT_MODEL_NAME), ["float"])


def test_exponent_rule_and_reduced_float_formats():
    # binades 2**0 .. 2**-3 plus a zero code: ceil(log2(4 + 1)) = 3 exponent bits
    w = np.array([[1.5, -0.75, 0.3, 0.125]])
    model = FloatMLP((w,), (np.zeros(1),))
    assert mpwn.recommend_format(model, energy=0.0) == 3
    # with 5% of the energy allowed to flush, 0.125 (0.5% of it) need not survive: 2 bits
    assert mpwn.recommend_format(model, energy=0.05) == 2
    fmt = mpwn.layer_format(w, 3, 2)
    assert fmt.emax == 0 and fmt.name == "E3M2b7"  # the top binade holds max|w| = 1.5
    net = mpwn.reduced_float_network(model, 3, 2)
    assert net.layers[0].weight_values().tolist() == [[1.5, -0.75, 0.3125, 0.125]]


def test_reduced_float_sweep_reports_accuracy_per_format(model, test_split):
    rows = mpwn.reduced_float_sweep(model, test_split.x, test_split.y, exp_bits=[2, 4],
                                    man_bits=[0, 3])
    assert [r["format"] for r in rows] == ["E2M0", "E4M0", "E2M3", "E4M3"]  # by bits
    fp32 = mpwn.from_float(model, ["float", "float"])
    ref = float_network.accuracy(fp32, fp32.encode(test_split.x), test_split.y)
    assert all(r["fp32_accuracy"] == ref for r in rows)
    e4m3 = mpwn.reduced_float_network(model, 4, 3)
    assert rows[-1]["accuracy"] == float_network.accuracy(e4m3, e4m3.encode(test_split.x),
                                                 test_split.y)


# -- float bundles ----------------------------------------------------------------------------


@pytest.mark.parametrize("spaces", [("ternary", "float"), ("binary", "binary"),
                                    ("E4M3b16", "float")])
def test_float_bundle_round_trip(model, test_split, tmp_path, spaces):
    net = mpwn.from_float(model, spaces, name="rt", metadata={"b": 1, "a": "x"})
    path = write_float_bundle(net, tmp_path / "b")
    assert is_bundle(path)
    back = read_float_bundle(path)
    assert back.spaces == spaces and back.metadata == {"a": "x", "b": 1}
    for a, b in zip(net.layers, back.layers, strict=True):
        assert np.array_equal(a.codes, b.codes) and np.array_equal(a.bias, b.bias)
    x = net.encode(test_split.x)
    assert np.array_equal(float_network.forward(net, x), float_network.forward(back, x))
    first = (path / "manifest.json").read_bytes()
    write_float_bundle(net, path)  # replaces a bundle, same bytes
    assert (path / "manifest.json").read_bytes() == first


def _corrupt(path, edit):
    m = json.loads((path / "manifest.json").read_text())
    edit(m)
    (path / "manifest.json").write_text(json.dumps(m))


def test_malformed_float_bundles_name_file_layer_and_field(model, tmp_path):
    net = mpwn.from_float(model, ("ternary", "float"))
    path = write_float_bundle(net, tmp_path / "b")
    with pytest.raises(BundleError, match="a float bundle: its own reader reads it"):
        read_int_bundle(path)
    np.save(path / "fc1.bias.npy", np.full(32, np.nan, dtype=np.float32))
    with pytest.raises(BundleError, match=r"fc1.bias.npy: layer 'fc1': field 'bias': "
                                          r"contains 32 NaN"):
        read_float_bundle(path)
    np.save(path / "fc1.bias.npy", np.zeros(32))
    with pytest.raises(BundleError, match="field 'bias': must be float32"):
        read_float_bundle(path)
    np.save(path / "fc1.bias.npy", np.zeros(32, dtype=np.float32))
    codes = np.load(path / "fc1.codes.npy")
    codes[3, 4] = 2
    np.save(path / "fc1.codes.npy", codes)
    with pytest.raises(BundleError, match=r"fc1.codes.npy: layer 'fc1': field 'codes': 1 "
                                          r"code\(s\) out of range for ternary"):
        read_float_bundle(path)
    codes[3, 4] = 1
    np.save(path / "fc1.codes.npy", codes)
    _corrupt(path, lambda m: m["layers"][1].update(space="quinary"))
    with pytest.raises(BundleError, match="layer 'fc2': field 'space': unknown weight space"):
        read_float_bundle(path)
    _corrupt(path, lambda m: m["layers"][1].update(space="float", in_features=31))
    with pytest.raises(BundleError, match="field 'in_features': is 31 but"):
        read_float_bundle(path)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("x")
    with pytest.raises(BundleError, match="not a weight bundle"):
        write_float_bundle(net, tmp_path / "other")
    assert (tmp_path / "other" / "keep.txt").exists()


@pytest.mark.parametrize("space", ["binary", "ternary", "E3M2", "float"])
def test_training_quantizer_equals_the_export(space):
    torch = pytest.importorskip("torch")
    from rtl_gen.training.mpwn_train import quantize_weight

    rng = np.random.default_rng(3)
    w = rng.normal(size=(6, 9))
    w[2] = 0.0  # a row with nothing above the ternary threshold
    layer = mpwn._make_layer("l", space, w, np.zeros(6), "none")
    alpha = 1.0 if layer.scale is None else layer.scale.view(np.float32)[:, None]
    want = layer.weight_values() * alpha
    got = quantize_weight(torch.as_tensor(w), space).numpy()
    assert np.allclose(got, want, rtol=1e-6, atol=0)
    assert np.array_equal(got == 0, want == 0)


@pytest.mark.parametrize("space", ["binary", "ternary"])
def test_training_quantizer_equals_the_export_on_the_exact_contract(space):
    """Power-of-two alpha, and a ternary channel far below its layer's median alpha (all
    zeros, a dead channel) zeroed with the median's alpha, the same in both."""
    torch = pytest.importorskip("torch")
    from rtl_gen.training.mpwn_train import quantize_weight

    rng = np.random.default_rng(4)
    w = rng.normal(size=(7, 9))
    w[2] *= 0.0 if space == "ternary" else 1e-9  # no power of two is a binary alpha of 0
    w[4] *= 1e-6
    layer = mpwn._make_layer("l", space, w, np.zeros(7), "none", pot=True)
    alpha = layer.scale.view(np.float32).astype(np.float64)
    assert np.array_equal(alpha, np.exp2(np.round(np.log2(alpha))))  # powers of two
    want = layer.weight_values() * alpha[:, None]
    got = quantize_weight(torch.as_tensor(w), space, pot=True).numpy()
    assert np.allclose(got, want, rtol=1e-6, atol=0)
    assert np.array_equal(got == 0, want == 0)
    if space == "ternary":
        assert not layer.codes[[2, 4]].any() and layer.codes[[0, 1, 3, 5, 6]].any(axis=1).all()
        median = np.median(np.delete(alpha, [2, 4]))
        assert alpha[4] == alpha[2] and 0.5 < alpha[4] / median < 2


def test_fit_window_is_the_narrowest_that_keeps_every_class(model):
    from rtl_gen.numerics.exact import MAX_WIDTH, ExactWindow

    train = digits()[0]
    net = mpwn.from_float(model, ("ternary", "ternary"), accumulation="exact")
    bits = net.encode(train.x)
    w = mpwn.fit_window(net, bits)
    assert mpwn.from_float(model, ("ternary", "ternary"), accumulation="exact",
                           calibration=train.x).window == w
    assert w.width < net.window.width

    def classes(window):
        return float_network.predict(float_network.FloatNetwork(
            net.name, net.in_features, net.input_scale, net.layers, accumulation="exact",
            window=window), bits)

    widest = classes(ExactWindow(w.msb - MAX_WIDTH + 1, w.msb))
    assert np.array_equal(classes(w), widest)
    assert not np.array_equal(classes(ExactWindow(w.lsb + 1, w.msb)), widest)
    # msb: one bit above the largest term (the inputs are below 1, hidden activations more)
    top = mpwn._largest_term(net, bits)
    assert 2.0 ** (w.msb - 1) <= top < 2.0 ** w.msb


def test_fit_window_refuses_sequential_networks_and_no_data(model):
    net = mpwn.from_float(model, ("ternary", "ternary"))
    with pytest.raises(ValueError, match="sequential contract"):
        mpwn.fit_window(net, net.encode(np.zeros((1, 64))))
    exact = mpwn.from_float(model, ("ternary", "ternary"), accumulation="exact")
    with pytest.raises(ValueError, match="at least one calibration input"):
        mpwn.fit_window(exact, np.zeros((0, 64), np.uint32))
