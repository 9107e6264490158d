"""The golden model and the design description it runs on (NUMERICS.md sections 1 and 4)."""

import dataclasses

import numpy as np
import pytest

from rtl_gen.design import golden
from rtl_gen.design.golden import TRControl, TRMode
from rtl_gen.design.network import (
    DenseLayer,
    InputSpec,
    Network,
    TRConfig,
)
from rtl_gen.errors import SpecError
from rtl_gen.numerics import hese_terms, parse_scheme, requant_params

SCHEMES = ["binary", "ternary", "pot4", "apot4", "apot5", "int4", "int8", "signmag5"]


def random_layer(rng, scheme, n_in, n_out, *, in_bits=8, in_signed=False, relu=True,
                 tr=None, name="fc1"):
    s = parse_scheme(scheme)
    codes = rng.choice(s.encode(s.levels()), size=(n_out, n_in)).astype(s.code_dtype)
    bias = rng.integers(-5000, 5000, n_out)
    kw = {}
    if relu:
        m, sh = requant_params(rng.uniform(1e-4, 1e-1, n_out))
        kw = dict(activation="relu", out_bits=8, out_scale=0.1, requant_multiplier=m,
                  requant_shift=sh)
    else:
        kw = dict(activation="none")
    return DenseLayer(name=name, scheme=s, codes=codes, weight_scale=0.01, bias=bias,
                      in_bits=in_bits, in_signed=in_signed, tr=tr, **kw)


def random_inputs(rng, layer, batch):
    if layer.in_signed:
        lo, hi = -(1 << (layer.in_bits - 1)), (1 << (layer.in_bits - 1)) - 1
    else:
        lo, hi = 0, (1 << layer.in_bits) - 1
    x = rng.integers(lo, hi + 1, (batch, layer.in_features))
    x[0] = hi  # the extremes are always in the batch
    x[1] = lo
    return x


def slow_accumulate(x, w, b):
    """Python integers, one multiply-add at a time: obviously exact."""
    return [[sum(int(xi) * int(wi) for xi, wi in zip(row, wrow, strict=True)) + int(bo)
             for wrow, bo in zip(w, b, strict=True)] for row in x]


def slow_requantize(acc, m, s, bits):
    return [[min(max((int(a) * int(mo) + (1 << (int(so) - 1))) >> int(so), 0), (1 << bits) - 1)
             for a, mo, so in zip(row, m, s, strict=True)] for row in acc]


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("in_signed", [False, True])
def test_layer_matches_slow_reference(scheme, in_signed):
    rng = np.random.default_rng(hash((scheme, in_signed)) % 2**32)
    layer = random_layer(rng, scheme, 37, 9, in_signed=in_signed)
    x = random_inputs(rng, layer, 20)
    acc = golden.accumulate(layer, x)
    assert acc.tolist() == slow_accumulate(x, layer.w_int, layer.bias)
    y = golden.layer_forward(layer, x)
    assert y.tolist() == slow_requantize(acc, layer.requant_multiplier, layer.requant_shift, 8)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_accumulator_width_holds_worst_case(scheme):
    # Largest inputs times the largest weights of the scheme, with the bias of the same sign:
    # the accumulator must fit a signed field of acc_bits, and one bit fewer must not.
    rng = np.random.default_rng(1)
    for sign in (1, -1):
        layer = random_layer(rng, scheme, 64, 2, relu=False)
        s = layer.scheme
        top = s.encode(np.array([sign * s.w_int_max]))[0]
        layer = dataclasses.replace(layer, codes=np.full_like(layer.codes, top),
                                    bias=np.array([sign * 4999, sign * 4999]))
        x = np.full((1, 64), (1 << layer.in_bits) - 1)
        acc = int(golden.accumulate(layer, x)[0, 0])
        assert abs(acc) == 64 * 255 * s.w_int_max + 4999
        bits = layer.acc_bits
        assert -(1 << (bits - 1)) <= acc < 1 << (bits - 1)
        assert not -(1 << (bits - 2)) <= acc < 1 << (bits - 2)


def test_tr_worked_example_through_a_layer():
    # NUMERICS.md section 4: w = [45, -7, 3, 12], g = 4, k = 6; x = [23, 5, 60, 1], s = 2
    # -> w' = [44, -8, 4, 16], x' = [24, 5, 60, 1], result 1272 (exact product 1192).
    s = parse_scheme("signmag7")
    w = np.array([[45, -7, 3, 12]])
    layer = DenseLayer(name="fc1", scheme=s, codes=s.encode(w), weight_scale=1.0,
                       bias=np.array([0]), in_bits=6, in_signed=False, activation="none",
                       tr=TRConfig(group=4, budget=6, data_terms=2))
    x = np.array([[23, 5, 60, 1]])
    assert golden.accumulate(layer, x).tolist() == [[1272]]
    assert golden.accumulate(layer, x, TRControl(TRMode.CONVENTIONAL)).tolist() == [[1192]]
    # Control overrides: every term of the weights (budget 4 * 7 digits) and of the data.
    assert golden.accumulate(layer, x, TRControl(budget=28, data_terms=7)).tolist() == [[1192]]
    # Budget 6, all data terms: 23*44 + 5*-8 + 60*4 + 1*16.
    assert golden.accumulate(layer, x, TRControl(data_terms=7)).tolist() == [[23 * 44 - 40 + 256]]


def slow_reveal_row(w, group, budget, bits):
    """Keep the ``budget`` largest HESE terms of each group, ties to the lower index."""
    out = []
    for start in range(0, len(w), group):
        chunk = [int(v) for v in w[start:start + group]]
        terms = [(abs(t), i, t) for i, v in enumerate(chunk) for t in hese_terms(v, bits)]
        terms.sort(key=lambda t: (-t[0], t[1]))
        kept = [0] * len(chunk)
        for _, i, t in terms[:budget]:
            kept[i] += t
        out += kept
    return out


def slow_truncate(v, terms, bits):
    return sum(hese_terms(int(v), bits)[:terms])


@pytest.mark.parametrize("group,budget,data_terms", [(16, 12, 3), (8, 4, 2), (5, 7, None),
                                                     (1, 1, 1)])
def test_tr_layer_equals_revealed_weights_and_truncated_data(group, budget, data_terms):
    rng = np.random.default_rng(group * 100 + budget)
    layer = random_layer(rng, "signmag5", 37, 6, tr=TRConfig(group, budget, data_terms))
    x = random_inputs(rng, layer, 12)
    w = [slow_reveal_row(row, group, budget, 4) for row in layer.w_int]
    xt = x if data_terms is None else [[slow_truncate(v, data_terms, 8) for v in row]
                                       for row in x]
    assert golden.accumulate(layer, x).tolist() == slow_accumulate(xt, w, layer.bias)
    conventional = golden.accumulate(layer, x, TRControl(TRMode.CONVENTIONAL))
    assert conventional.tolist() == slow_accumulate(x, layer.w_int, layer.bias)


def test_tr_budget_changes_results_monotonically_towards_exact():
    rng = np.random.default_rng(7)
    layer = random_layer(rng, "signmag5", 64, 10, relu=False, tr=TRConfig(16, 1, None))
    x = random_inputs(rng, layer, 50)
    exact = golden.accumulate(layer, x, TRControl(TRMode.CONVENTIONAL))
    errors = [np.abs(golden.accumulate(layer, x, TRControl(budget=k)) - exact).sum()
              for k in (0, 4, 8, 16, 32, 80)]
    assert errors[0] > errors[1] > errors[2] > errors[3] > errors[4] >= errors[5] == 0


def two_layer_net(rng, scheme="int4"):
    l1 = random_layer(rng, scheme, 12, 7, in_bits=5)
    l2 = random_layer(rng, scheme, 7, 4, relu=False, name="fc2")
    return Network("t", InputSpec(12, 5, False, 1 / 16), (l1, l2), labels=("a", "b", "c", "d"))


def test_forward_chains_layers_and_traces():
    rng = np.random.default_rng(3)
    net = two_layer_net(rng)
    x = random_inputs(rng, net.layers[0], 30)
    h, logits = golden.forward(net, x, trace=True)
    assert h.tolist() == golden.layer_forward(net.layers[0], x).tolist()
    assert logits.tolist() == slow_accumulate(h, net.layers[1].w_int, net.layers[1].bias)
    assert (golden.forward(net, x) == logits).all()


def test_argmax_ties_go_to_the_lowest_index():
    s = parse_scheme("int4")
    # Two identical rows make logits 0 and 1 tie; row 2 is smaller, row 3 equal too.
    codes = np.array([[1, 2], [1, 2], [0, 1], [1, 2]], dtype=s.code_dtype)
    layer = DenseLayer(name="fc1", scheme=s, codes=codes, weight_scale=1.0,
                       bias=np.zeros(4, dtype=np.int64), in_bits=4, in_signed=False,
                       activation="none")
    net = Network("ties", InputSpec(2, 4, False, 1.0), (layer,))
    assert golden.predict(net, np.array([[3, 4], [0, 0]])).tolist() == [0, 0]
    assert golden.accuracy(net, np.array([[3, 4]]), [0]) == 1.0


def test_float_forward_is_the_float_reference():
    rng = np.random.default_rng(4)
    net = two_layer_net(rng)
    w1, w2 = rng.normal(size=(7, 12)), rng.normal(size=(4, 7))
    b1, b2 = rng.normal(size=7), rng.normal(size=4)
    net = dataclasses.replace(net, layers=(
        dataclasses.replace(net.layers[0], float_weight=w1, float_bias=b1),
        dataclasses.replace(net.layers[1], float_weight=w2, float_bias=b2)))
    x = rng.normal(size=(5, 12))
    assert np.allclose(golden.float_forward(net, x), np.maximum(x @ w1.T + b1, 0) @ w2.T + b2)
    with pytest.raises(ValueError, match="no float reference"):
        golden.float_forward(two_layer_net(rng), x)


@pytest.mark.parametrize("x,match", [
    (np.zeros((2, 11), dtype=np.int64), r"shape \(batch, 12\)"),
    (np.full((2, 12), 32), r"0\.\.31"),
    (np.full((2, 12), -1), r"0\.\.31"),
    (np.zeros((2, 12)), "must be integers"),
])
def test_bad_inputs_are_named(x, match):
    net = two_layer_net(np.random.default_rng(5))
    with pytest.raises(ValueError, match=match):
        golden.forward(net, x)


@pytest.mark.parametrize("in_signed,lo,hi", [(True, -8, 7), (False, 0, 15)])
def test_a_layer_takes_exactly_its_input_range(in_signed, lo, hi):
    """4-bit inputs: -8..7 signed, 0..15 unsigned; one past either end is refused."""
    layer = random_layer(np.random.default_rng(9), "int4", 3, 2, in_bits=4,
                         in_signed=in_signed)
    assert golden.accumulate(layer, np.array([[lo, hi, lo], [hi, lo, hi]])).shape == (2, 2)
    for bad in (lo - 1, hi + 1):
        with pytest.raises(ValueError, match=rf"inputs must lie in {lo}\.\.{hi} "):
            golden.accumulate(layer, np.array([[0, bad, 0]]))


def test_input_spec_quantizes_half_away_from_zero_and_clamps():
    spec = InputSpec(4, 4, True, 0.5)
    assert spec.quantize([0.25, -0.25, 0.74, 100.0]).tolist() == [1, -1, 1, 7]
    assert spec.quantize([-100.0, 0.0, -0.75, 3.5]).tolist() == [-8, 0, -2, 7]
    with pytest.raises(ValueError, match="NaN"):
        spec.quantize([np.nan, 0, 0, 0])
    with pytest.raises(ValueError, match="4 features"):
        spec.quantize([1.0, 2.0])


@pytest.mark.parametrize("change,field", [
    (dict(activation="none", out_bits=None, out_scale=None, requant_multiplier=None,
          requant_shift=None), "activation"),
    (dict(in_bits=4), "in_bits"),
    (dict(codes=np.zeros((7, 11), dtype=np.int8)), "weight.codes"),
])
def test_network_chain_errors_name_layer_and_field(change, field):
    net = two_layer_net(np.random.default_rng(6))
    bad = dataclasses.replace(net.layers[0], **change)
    with pytest.raises(SpecError) as e:
        Network("t", net.input, (bad, net.layers[1]))
    assert e.value.field == field and e.value.layer == "fc1"


@pytest.mark.parametrize("change,field", [
    (dict(codes=np.full((7, 12), 8, dtype=np.int8)), "weight.codes"),
    (dict(codes=np.zeros((7, 12))), "weight.codes"),
    (dict(bias=np.zeros(6, dtype=np.int64)), "bias"),
    (dict(in_bits=0), "in_bits"),
    (dict(out_bits=17), "out_bits"),
    (dict(requant_shift=np.zeros(7, dtype=np.int64)), "requant.shift"),
    (dict(weight_scale=float("nan")), "weight.scale"),
    (dict(float_weight=np.full((7, 12), np.inf), float_bias=np.zeros(7)), "float.weight"),
    (dict(tr=TRConfig(4, 21)), "tr.budget"),
    (dict(tr=TRConfig(4, 2, 10)), "tr.data_terms"),
    (dict(name="a b"), "name"),
])
def test_layer_validation_names_the_field(change, field):
    layer = two_layer_net(np.random.default_rng(6)).layers[0]
    with pytest.raises(SpecError) as e:
        dataclasses.replace(layer, **change)
    assert e.value.field == field


def test_labels_must_match_outputs():
    net = two_layer_net(np.random.default_rng(6))
    with pytest.raises(SpecError, match="3 names for 4 outputs"):
        dataclasses.replace(net, labels=("a", "b", "c"))


# -- the cycle model (design/timing.py) ----------------------------------------------------------

TIMINGS = [
    golden.LayerTiming.systolic(k=64, n=32, rows=1, cols=8, lanes=1, pe_latency=1,
                                requantize=True),
    golden.LayerTiming.systolic(k=3, n=5, rows=2, cols=1, lanes=4, pe_latency=0,
                                requantize=False),
    golden.LayerTiming.term_revealing(k=20, n=7, rows=1, cols=2, group=4, slots=3,
                                      latency=3, requantize=True),
    golden.LayerTiming.float_lanes(k=1, n=3, lanes=2, scaled=False),
    golden.LayerTiming.float_lanes(k=64, n=32, lanes=8, scaled=True),
]


@pytest.mark.parametrize("t", TIMINGS)
def test_in_flight_covers_back_to_back_batches(t):
    """Batches taken every ``interval`` cycles, each writing its last result ``batch_cycles
    - 1`` cycles after it is taken: when one is taken, the batches still writing (not ending
    in that cycle) and itself never outnumber the counter's ring, and sometimes fill it."""
    starts = [j * t.interval for j in range(50)]
    ends = [s + t.batch_cycles - 1 for s in starts]
    live = [1 + sum(1 for s, e in zip(starts, ends, strict=True) if s < now < e)
            for now in starts]
    assert max(live) == t.in_flight


def test_one_model_for_both_families():
    """The float lanes as the shared model: the float engine's documented formula, and a
    chained network's interval bounded by its slowest layer and the input stream."""
    t = golden.LayerTiming.float_lanes(k=3, n=10, lanes=4, scaled=False)
    assert t.batch_cycles == (t.tiles - 1) * t.period + t.k + 3 + t.last_cols + 2
    assert (t.period, t.interval) == (4, 12)
    s = golden.LayerTiming.systolic(k=64, n=32, rows=1, cols=8, lanes=1, pe_latency=1,
                                    requantize=True)
    assert s.interval == s.tiles * s.period + 1
    assert golden.network_interval([t], 3) == t.steady_interval == 12
    assert golden.network_interval([t], 40) == 40


def test_framed_sums_start_from_an_accumulator_of_zero():
    """A PE's accumulator holds 0 after configuration: vectors before the first ``first``
    add to 0."""
    assert golden.framed_sums([5, 7, 2, 3], first=[0, 0, 1, 0], last=[0, 1, 0, 1]).tolist() \
        == [12, 5]
