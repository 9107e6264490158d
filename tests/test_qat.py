"""Quantization-aware training and export: the bundle's golden model equals the PyTorch
model's own integer forward pass, bit for bit, for every scheme."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")  # CI installs the torch extra; this guards users without

from rtl_gen.bundle import read_bundle, write_bundle  # noqa: E402
from rtl_gen.design import golden  # noqa: E402
from rtl_gen.design.network import InputSpec, TRConfig  # noqa: E402
from rtl_gen.numerics.schemes import parse_scheme  # noqa: E402
from rtl_gen.training.float_model import FloatMLP  # noqa: E402
from rtl_gen.training.qat import QATMLP, WeightQuantizer, search_bits, train_qat  # noqa: E402
from rtl_gen.training.qat_state import export_network, load_qat_state, save_qat_state  # noqa: E402

SIZES = (12, 10, 8, 3)


@pytest.fixture(scope="module")
def data():
    """A small three-class problem with signed inputs (labels from a random linear map)."""
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (192, SIZES[0]))
    y = np.argmax(x @ rng.normal(0, 1, (SIZES[0], 3)), axis=1)
    model = FloatMLP(weights=[rng.normal(0, 0.4, (b, a))
                              for a, b in zip(SIZES, SIZES[1:], strict=False)],
                     biases=[rng.normal(0, 0.1, b) for b in SIZES[1:]])
    spec = InputSpec(SIZES[0], 6, True, 0.125)
    return x, y, model, spec


SCHEMES = [
    ("binary", None), ("ternary", None), ("pot4", None), ("apot4", None), ("int4", None),
    ("int8", None), ("signmag5", TRConfig(group=4, budget=6, data_terms=2)),
    ("int3,pot4,apot5", None), ("pot3", None), ("apot3", None), ("int2", None),
]


@pytest.mark.parametrize("schemes,tr", SCHEMES, ids=[s[0] for s in SCHEMES])
def test_bundle_golden_equals_torch_integer_forward(tmp_path, data, schemes, tr):
    x, y, model, spec = data
    names = schemes.split(",")
    qat = QATMLP.from_float(model, names if len(names) > 1 else names[0], input_spec=spec,
                            act_bits=6, tr=tr)
    train_qat(qat, x, y, epochs=2, batch=32, lr=5e-3, seed=1)
    net = read_bundle(write_bundle(qat.export(name="tiny"), tmp_path / "tiny"))
    assert net.metadata["quantizer"] == "qat"
    assert list(net.schemes) == [parse_scheme(s).name for s in names] * (4 - len(names))
    assert all((layer.tr == tr) for layer in net.layers)
    x_int = spec.quantize(x)
    logits = golden.forward(net, x_int)
    torch_logits = qat.integer_forward(x_int)
    assert torch_logits.dtype == np.int64
    assert np.array_equal(logits, torch_logits)
    # Not a vacuous comparison: the logits vary, hidden activations use their range.
    assert len(np.unique(logits)) > 20
    hidden = golden.forward(net, x_int, trace=True)[0]
    assert hidden.max() > 8 and (hidden == 0).any()
    # The training-time (fake-quantized) model predicts what the integer one does.
    fake = qat(x).detach().numpy().argmax(axis=1)
    assert np.mean(fake == logits.argmax(axis=1)) > 0.95


def test_state_round_trip_gives_the_same_bundle(tmp_path, data):
    x, y, model, spec = data
    qat = QATMLP.from_float(model, ["apot4", "ternary", "int4"], input_spec=spec)
    train_qat(qat, x, y, epochs=1, seed=3)
    save_qat_state(qat.to_state(), tmp_path / "state.npz")
    a = write_bundle(qat.export(name="m"), tmp_path / "a")
    b = write_bundle(export_network(load_qat_state(tmp_path / "state.npz"), name="m"),
                     tmp_path / "b")
    for f in sorted(p.name for p in a.iterdir()):
        assert (a / f).read_bytes() == (b / f).read_bytes(), f


def test_training_is_deterministic(data):
    x, y, model, spec = data
    runs = []
    for _ in range(2):
        qat = QATMLP.from_float(model, "int4", input_spec=spec)
        train_qat(qat, x, y, epochs=1, seed=5)
        runs.append([p.detach().numpy().copy() for p in qat.parameters()])
    for a, b in zip(*runs, strict=True):
        assert np.array_equal(a, b)


def test_ternary_threshold_and_scale_by_hand():
    # NUMERICS.md's vector: mean|W| = 2.674 / 5, delta = 0.37436: keeps 0.9 and -1.4, whose
    # mean magnitude 1.15 is the scale.
    w = torch.tensor([[0.9, -0.3, 0.07, 0.004, -1.4]], dtype=torch.float64)
    q = WeightQuantizer(parse_scheme("ternary"), w)
    wq, s = q.fake(w)
    assert wq.tolist() == [[1.15, 0.0, 0.0, 0.0, -1.15]] and float(s) == 1.15


def test_pot_levels_by_hand():
    # pot4 with clipping alpha = 2 on normalised weights: levels 2 * {0, 1/64, ..., 1/2, 1}.
    w = torch.tensor([[1.0, -1.0, 3.0, -3.0]], dtype=torch.float64)  # mean 0, std sqrt(5)
    q = WeightQuantizer(parse_scheme("pot4"), w)
    with torch.no_grad():
        q.alpha.fill_(2.0)
    wq, s = q.fake(w)
    # normalised: ±0.4472, ±1.3416 -> nearest of {.., 0.25, 0.5, 1, 2}: 0.5 and 1.
    assert wq.detach().tolist() == [[0.5, -0.5, 1.0, -1.0]] and float(s.detach()) == 2 / 64


def test_bit_search_keeps_the_strongest_width(data):
    x, y, model, spec = data
    free = search_bits(model, x, y, candidates=("int2", "int8"), input_spec=spec, lam=0.0,
                       epochs=1)
    assert free.strengths.shape == (3, 2)
    assert np.allclose(free.strengths.sum(axis=1), 1)
    cheap = search_bits(model, x, y, candidates=("int2", "int8"), input_spec=spec, lam=50.0,
                        epochs=2)
    assert cheap.schemes == ("int2", "int2", "int2")
    assert (cheap.strengths[:, 0] > free.strengths[:, 0]).all()
