"""The exact float accumulation contract ("exact sum, rounded once"): hand-derived vectors,
an independent Fraction reference, the parts' models and the bundle's contract field."""

from __future__ import annotations

import json
import math
from fractions import Fraction

import numpy as np
import pytest

from rtl_gen.bundle import read_float_bundle, write_float_bundle
from rtl_gen.design import float_network as fn
from rtl_gen.design.float_network import FloatLayer, FloatNetwork
from rtl_gen.errors import BundleError, SpecError
from rtl_gen.numerics.exact import (
    DEFAULT_WINDOW,
    ExactWindow,
    align_fp32,
    pot_exponent,
    round_fixed,
)

NAN, PINF, NINF = 0xFFC00000, 0x7F800000, 0xFF800000
ONE = 0x3F800000


def one_output(space, x, codes, bias=0x00000000, alpha=None, *, relu=False,
               window=DEFAULT_WINDOW):
    """The single output of a one-layer exact network (fp32 bits)."""
    codes = np.asarray([codes], dtype=np.uint32 if space == "float" else np.uint16)
    scale = None if alpha is None else np.array([alpha], np.uint32)
    layer = FloatLayer("fc1", space, codes, scale, np.array([bias], np.uint32),
                       "relu" if relu else "none")
    x = np.asarray([x], dtype=np.uint32)
    return int(fn.layer_forward(layer, x, window)[0, 0])


# Hand-derived vectors, window 2**-32 .. 2**16 (lsb -32, msb 15).  Each row: space, x (fp32
# bits), weight codes, bias bits, alpha bits (None: no scale), expected result, the reason.
VECTORS = [
    # 1.5 - 2.25 - 0.75 + 0.5/0.5 = -0.5, times 0.5
    ("ternary", [0x3FC00000, 0x40100000, 0xBF400000], [1, 3, 1], 0x3F000000, 0x3F000000,
     0xBE800000, "bias/alpha as the start, alpha as an exponent"),
    # 1 + 2**-24 + 2**-24 = 1 + 2**-23 exactly (sequential fp32 gives 1.0)
    ("binary", [ONE, 0x33800000, 0x33800000], [0, 0, 0], 0, ONE, 0x3F800001,
     "rounded once"),
    ("binary", [ONE, 0x33800000], [0, 0], 0, ONE, ONE, "tie to even (down)"),
    ("binary", [0x3F800001, 0x33800000], [0, 0], 0, ONE, 0x3F800002, "tie to even (up)"),
    ("binary", [0x2FC00000], [0], 0, ONE, 0x2F800000, "1.5*2**-32 truncated to 2**-32"),
    ("binary", [0x2FC00000], [1], 0, ONE, 0xAF800000, "truncated toward zero, then negated"),
    ("binary", [0x2F000000], [0], 0, ONE, 0x00000000, "2**-33 flushed: +0"),
    ("binary", [0x47800000], [0], 0, ONE, PINF, "2**16 overflows: +inf"),
    ("binary", [0x47800000], [1], 0, ONE, NINF, "negated overflow: -inf"),
    ("binary", [0x47800000, 0x47800000], [0, 1], 0, ONE, NAN, "both flags: NaN"),
    ("binary", [0x477FFFFF], [0], 0, ONE, 0x477FFFFF, "largest term held exactly"),
    ("ternary", [0x7F800000, ONE], [0, 1], 0, ONE, ONE, "inf times weight 0 skipped"),
    ("ternary", [0x7FC00000, ONE], [1, 1], 0, ONE, NAN, "NaN activation"),
    ("binary", [0xFF800000], [1], 0, ONE, PINF, "-inf times -1"),
    ("binary", [ONE, ONE], [0, 1], 0x80000000, ONE, 0x00000000, "exact zero is +0"),
    ("binary", [ONE], [0], 0, 0x00000001, 0x00000001, "alpha 2**-149: subnormal result"),
    ("binary", [0x3FC00000], [0], 0, 0x00000001, 0x00000002, "1.5 * 2**-149 ties to even"),
    ("binary", [0x3FA00000], [0], 0, 0x00000001, 0x00000001, "1.25 * 2**-149 rounds down"),
    ("binary", [0x40000000], [0], 0, 0x7F000000, PINF, "2 * 2**127 overflows fp32"),
    ("binary", [0x3FFFFFFF], [0], 0, 0x7F000000, 0x7F7FFFFF, "largest finite fp32"),
    ("binary", [0x00000000], [0], 0x47800000, ONE, PINF, "bias 2**16 beyond the window"),
    ("binary", [0x00000000], [0], 0x47800000, 0x40000000, 0x47800000,
     "bias 2**16 / alpha 2 fits"),
    ("binary", [0x00000000], [0], 0x2F000000, ONE, 0x00000000, "bias 2**-33 flushed"),
    ("binary", [ONE], [0], 0x3F400000, 0x3E800000, ONE, "(1 + 0.75/0.25) * 0.25"),
    ("float", [0x40400000], [0x3F000000], 0, None, 0x3FC00000, "3 * 0.5"),
    # (1 + 2**-12)**2 = 1 + 2**-11 + 2**-24, plus 2**-30: just above the half ulp
    ("float", [0x3F800800, 0x30800000], [0x3F800800, ONE], 0, None, 0x3F801001,
     "fp32 product kept exact"),
    ("float", [0x35800000], [0x39000000], 0, None, 0x00000000, "2**-20 * 2**-13 flushed"),
    ("E4M3", [0x40400000], [0x3C], 0, None, 0x40900000, "3 * 1.5 (E4M3 0x3C)"),
]


@pytest.mark.parametrize("space,x,codes,bias,alpha,want,why", VECTORS,
                         ids=[v[-1] for v in VECTORS])
def test_hand_derived_vectors(space, x, codes, bias, alpha, want, why):
    if space in ("float", "E4M3"):
        alpha = None
    got = one_output(space, x, codes, bias, alpha)
    assert got == want, f"{why}: got {got:#010x}, want {want:#010x}"


def test_relu_on_the_sign_bit():
    assert one_output("binary", [ONE], [1], 0, ONE, relu=True) == 0  # -1 -> +0
    assert one_output("binary", [0x47800000, 0x47800000], [0, 1], 0, ONE, relu=True) == 0
    assert one_output("binary", [0x47800000], [0], 0, ONE, relu=True) == PINF


def test_the_sequential_contract_differs_where_it_rounds_every_sum():
    layer = FloatLayer("fc1", "binary", np.zeros((1, 3), np.uint8), np.array([ONE], np.uint32),
                       np.array([0], np.uint32), "none")
    x = np.array([[ONE, 0x33800000, 0x33800000]], np.uint32)
    assert int(fn.layer_forward(layer, x)[0, 0]) == ONE  # 1 + 2**-24 ties to 1, twice
    assert int(fn.layer_forward(layer, x, DEFAULT_WINDOW)[0, 0]) == 0x3F800001


# -- an independent reference: Fractions -----------------------------------------------------


def f32_value(bits: int) -> Fraction | None:
    """The exact value of an fp32 pattern, ``None`` for inf/NaN."""
    e, m = (bits >> 23) & 0xFF, bits & 0x7FFFFF
    if e == 0xFF:
        return None
    v = Fraction(m, 1 << 23) if e == 0 else 1 + Fraction(m, 1 << 23)
    v *= Fraction(2) ** (max(e, 1) - 127)
    return -v if bits >> 31 else v


def fp32_rne(v: Fraction) -> int:
    """``v`` rounded to fp32 bits, nearest even, with subnormals and overflow to inf."""
    if v == 0:
        return 0
    sign, a = (1, -v) if v < 0 else (0, v)
    e = math.floor(math.log2(a))
    while Fraction(2) ** e > a:
        e -= 1
    while Fraction(2) ** (e + 1) <= a:
        e += 1
    quantum = Fraction(2) ** (max(e, -126) - 23)
    k, rem = divmod(a, quantum)
    k = int(k)
    if rem > quantum / 2 or (rem == quantum / 2 and k % 2):
        k += 1
    if k >= (1 << 24):  # carried into the next binade
        e, k = max(e, -126) + 1, k >> 1
    if k < (1 << 23):  # subnormal
        code = k
    else:
        code = ((max(e, -126) + 127) << 23) | (k - (1 << 23))
    if code >= 0x7F800000:
        code = 0x7F800000
    return (sign << 31) | code


def reference(x_bits, w_values, bias_bits, alpha_exp, window):
    lsb, top = Fraction(2) ** window.lsb, Fraction(2) ** (window.msb + 1)
    pinf = ninf = False
    total = 0
    b = f32_value(bias_bits) / Fraction(2) ** alpha_exp
    items = [(b, False, False)]
    for xb, w in zip(x_bits, w_values, strict=True):
        if w == 0:
            continue
        xv = f32_value(xb)
        if xv is None:
            nan = (xb & 0x7FFFFF) != 0
            neg = bool(xb >> 31) != (w < 0)
            items.append((None, nan or not neg, nan or neg))
            continue
        items.append((xv * w, False, False))
    for v, p, n in items:
        if v is None:
            pinf, ninf = pinf or p, ninf or n
        elif abs(v) >= top:
            pinf, ninf = pinf or v > 0, ninf or v < 0
        else:
            t = int(abs(v) / lsb)  # truncation toward zero
            total += -t if v < 0 else t
    if pinf and ninf:
        return NAN
    if pinf or ninf:
        return PINF if pinf else NINF
    return fp32_rne(total * lsb * Fraction(2) ** alpha_exp)


def random_activations(rng, n):
    """fp32 patterns over the window's edges: exact, truncated, flushed, overflowing."""
    exp = rng.integers(127 - 40, 127 + 18, n)  # 2**-40 .. 2**17
    man = rng.integers(0, 1 << 23, n)
    sign = rng.integers(0, 2, n)
    bits = (sign << 31) | (exp << 23) | man
    special = rng.random(n)
    bits = np.where(special < 0.02, rng.choice([0, 0x80000000, 1, 0x807FFFFF, 0x7F800000,
                                                0xFF800000, 0x7FC00000], n), bits)
    return bits.astype(np.uint32)


@pytest.mark.parametrize("space", ["binary", "ternary", "float", "E3M2"])
def test_random_layers_against_the_fraction_reference(space):
    rng = np.random.default_rng({"binary": 1, "ternary": 2, "float": 3, "E3M2": 4}[space])
    window = ExactWindow(-30, 12)
    k, n_out, batch = 6, 5, 40
    if space == "binary":
        codes = rng.integers(0, 2, (n_out, k))
        wv = np.where(codes == 1, -1, 1)
    elif space == "ternary":
        codes = rng.choice([0, 1, 3], (n_out, k))
        wv = np.select([codes == 1, codes == 3], [1, -1], 0)
    elif space == "float":
        w = (rng.standard_normal((n_out, k)) * 2.0 ** rng.integers(-12, 4, (n_out, k)))
        w[0, 0] = 0.0
        codes = w.astype(np.float32).view(np.uint32)
        wv = None
    else:
        from rtl_gen.numerics.minifloat import MinifloatFormat
        fmt = MinifloatFormat(3, 2)
        codes = rng.integers(0, 1 << fmt.width, (n_out, k))
        wv = None
    scale = None
    alpha_exp = np.zeros(n_out, np.int64)
    if space in ("binary", "ternary"):
        alpha_exp = rng.integers(-140, 120, n_out)
        scale = np.array([int(np.float32(2.0 ** int(a)).view(np.uint32)) if a >= -126
                          else 1 << int(a + 149) for a in alpha_exp], np.uint32)
    bias = (rng.standard_normal(n_out) * 2.0 ** rng.integers(-36, 20, n_out)).astype(
        np.float32).view(np.uint32)
    layer = FloatLayer("fc1", space, codes.astype(np.uint32 if space == "float" else np.uint16),
                       scale, bias, "none")
    x = random_activations(rng, batch * k).reshape(batch, k)
    got = fn.layer_forward(layer, x, window)
    values = layer.weight_values()
    for i in range(batch):
        for j in range(n_out):
            ws = [Fraction(float(v)) for v in values[j]] if wv is None else list(wv[j])
            want = reference([int(v) for v in x[i]], ws, int(bias[j]), int(alpha_exp[j]),
                             window)
            assert int(got[i, j]) == want, (i, j, hex(int(got[i, j])), hex(want))


# -- the parts' models -----------------------------------------------------------------------


def test_aligner_model():
    sign, mag, big, nan = align_fp32(
        [0x3FC00000, 0xAFC00000, 0x47800000, 0x477FFFFF, 0x7F800000, 0x7FC00001, 0x80000000,
         0x00000001], DEFAULT_WINDOW)
    assert sign.tolist() == [0, 1, 0, 0, 0, 0, 1, 0]
    assert mag.tolist() == [3 << 31, 1, 0, (2**24 - 1) << 24, 0, 0, 0, 0]
    assert big.tolist() == [False, False, True, False, True, False, False, False]
    assert nan.tolist() == [False, False, False, False, False, True, False, False]


def test_normaliser_model():
    assert round_fixed([1, 3, -(2**24 + 1), 0, 2**24 + 3, 2**24 - 1, 1],
                       [-149, -150, -24, 5, -24, 104, 128]).tolist() == [
        0x00000001, 0x00000002, 0xBF800000, 0, 0x3F800002, 0x7F7FFFFF, PINF]
    assert round_fixed(5, 0, True, True) == NAN and round_fixed(5, 0, False, True) == NINF
    big = np.array([(1 << 80) + (1 << 56) + 1], dtype=object)  # 1 + 2**-24 + tiny: up
    assert round_fixed(big, -80).tolist() == [0x3F800001]


def test_window_and_alpha_rules():
    assert DEFAULT_WINDOW.width == 48 and DEFAULT_WINDOW.acc_bits(65) == 56
    assert ExactWindow(-8, 7).acc_bits(1) == 17
    with pytest.raises(ValueError, match="1..62 bits"):
        ExactWindow(0, 62)
    with pytest.raises(ValueError, match="window msb"):
        ExactWindow(0, 1.5)
    assert pot_exponent([0x3F000000, 0x00000001, 0x7F000000, 0x00400000]).tolist() == [
        -1, -149, 127, -127]
    with pytest.raises(ValueError, match="powers of two, first 0x3f400000"):
        pot_exponent([0x3F000000, 0x3F400000])
    with pytest.raises(ValueError, match="powers of two"):
        pot_exponent([0xBF800000])


# -- networks and bundles --------------------------------------------------------------------


def tiny_net(accumulation="exact", scale=0x3F000000, window=None):
    l1 = FloatLayer("fc1", "ternary", np.array([[1, 3], [0, 1]], np.uint8),
                    np.array([scale, ONE], np.uint32), np.array([0, ONE], np.uint32), "relu")
    l2 = FloatLayer("fc2", "float", np.array([[ONE, 0xBF800000]], np.uint32), None,
                    np.array([0], np.uint32), "none")
    return FloatNetwork("tiny", 2, None, [l1, l2], accumulation=accumulation, window=window)


def test_network_contract_fields():
    net = tiny_net()
    assert net.accumulation == "exact" and net.window == DEFAULT_WINDOW
    # x = (2, 1): fc1 = (relu((2 - 1) * 0.5), relu(1 + 1)) = (0.5, 2); fc2 = 0.5 - 2
    x = np.array([[0x40000000, ONE]], np.uint32)
    assert fn.forward(net, x).tolist() == [[0xBFC00000]]
    assert tiny_net("sequential").window is None
    with pytest.raises(SpecError, match="powers of two"):
        tiny_net(scale=0x3F400000)
    with pytest.raises(SpecError, match="only the exact contract"):
        tiny_net("sequential", window=DEFAULT_WINDOW)
    with pytest.raises(SpecError, match="accumulation"):
        tiny_net("kulisch")


def test_bundle_names_its_contract(tmp_path):
    net = tiny_net(window=ExactWindow(-20, 9))
    path = write_float_bundle(net, tmp_path / "b")
    m = json.loads((path / "manifest.json").read_text())
    assert (m["version"], m["accumulation"], m["window"]) == (2, "exact",
                                                              {"lsb": -20, "msb": 9})
    back = read_float_bundle(path)
    assert (back.accumulation, back.window) == ("exact", ExactWindow(-20, 9))
    seq = write_float_bundle(tiny_net("sequential"), tmp_path / "s")
    m = json.loads((seq / "manifest.json").read_text())
    assert (m["accumulation"], m["window"]) == ("sequential", None)


def _edit(path, change):
    mf = path / "manifest.json"
    m = json.loads(mf.read_text())
    change(m)
    mf.write_text(json.dumps(m))


def test_version_1_bundles_read_as_sequential(tmp_path):
    path = write_float_bundle(tiny_net("sequential"), tmp_path / "v1")

    def to_v1(m):
        m["version"] = 1
        del m["accumulation"], m["window"]

    _edit(path, to_v1)
    net = read_float_bundle(path)
    assert (net.accumulation, net.window) == ("sequential", None)
    _edit(path, lambda m: m.update(accumulation="exact"))
    with pytest.raises(BundleError, match="not a version 1 field"):
        read_float_bundle(path)


@pytest.mark.parametrize("change,match,field", [
    (lambda m: m.pop("accumulation"), "missing", "accumulation"),
    (lambda m: m.update(window=None), "needs its window", "window"),
    (lambda m: m.update(window={"lsb": 0, "msb": 70}), "1..62 bits", "window"),
    (lambda m: m.update(accumulation="sequential"), "must be null", "window"),
])
def test_malformed_contract_fields(tmp_path, change, match, field):
    path = write_float_bundle(tiny_net(), tmp_path / "b")
    _edit(path, change)
    with pytest.raises(BundleError, match=match) as e:
        read_float_bundle(path)
    assert e.value.field == field


def test_a_bundle_with_a_scale_that_is_no_power_of_two(tmp_path):
    path = write_float_bundle(tiny_net(), tmp_path / "b")
    scale = np.load(path / "fc1.scale.npy")
    scale[0] = np.float32(0.75)
    np.save(path / "fc1.scale.npy", scale)
    with pytest.raises(BundleError, match="powers of two") as e:
        read_float_bundle(path)
    assert (e.value.layer, e.value.field) == ("fc1", "scale")


def test_the_network_engine_builds_exact_layers_with_lanes_per_layer():
    from rtl_gen.hw.exact_float import ExactLayerEngine
    from rtl_gen.hw.float_layer import FloatNetworkEngine

    rng = np.random.default_rng(5)
    l1 = FloatLayer("fc1", "ternary", rng.choice([0, 1, 3], (6, 4)).astype(np.uint8),
                    np.full(6, 0x3F000000, np.uint32), np.zeros(6, np.uint32), "relu")
    l2 = FloatLayer("fc2", "binary", rng.integers(0, 2, (3, 6)).astype(np.uint8),
                    np.full(3, 0x40000000, np.uint32), np.zeros(3, np.uint32), "none")
    net = FloatNetwork("t", 4, None, [l1, l2], accumulation="exact")
    from amaranth.hdl import Fragment

    engine = FloatNetworkEngine(net, (3, 2))
    Fragment.get(engine, None)  # elaborates
    assert engine.lanes == (3, 2)
    assert [stage[1] for stage in engine._plan.stages] == [ExactLayerEngine] * 2
    fp = FloatNetwork("t", 4, None, [FloatLayer("fc1", "E4M3", np.zeros((3, 4), np.uint16),
                                                None, np.zeros(3, np.uint32), "none")],
                      accumulation="exact")
    engine = FloatNetworkEngine(fp, 2)
    Fragment.get(engine, None)
    assert engine._plan.stages[0][2].w_fmt.name == "E4M3"


@pytest.mark.parametrize("space", ["binary", "ternary"])
def test_training_sees_the_power_of_two_alpha_the_network_gets(space):
    """MPWN's fine-tuning computes with the weights the exact network will have: the
    nearest power of two of alpha (in log2), the codes as from_float makes them."""
    torch = pytest.importorskip("torch")
    from rtl_gen.training import mpwn
    from rtl_gen.training.float_model import FloatMLP
    from rtl_gen.training.mpwn_train import quantize_weight

    rng = np.random.default_rng(9)
    w = rng.standard_normal((5, 7)) * 0.3
    model = FloatMLP(weights=(w,), biases=(np.zeros(5),))
    net = mpwn.from_float(model, [space], accumulation="exact")
    layer = net.layers[0]
    alpha = layer.scale.view(np.float32).astype(np.float64)
    assert np.all(np.exp2(np.round(np.log2(alpha))) == alpha)  # powers of two
    got = quantize_weight(torch.as_tensor(w), space, pot=True).numpy()
    assert np.array_equal(got, layer.weight_values() * alpha[:, None])
    assert mpwn.pot_alpha([0.75, 0.7, 1.5, 3.0]).tolist() == [1.0, 0.5, 2.0, 4.0]
