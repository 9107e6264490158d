"""QAT on real MNIST: the CLI trains and exports bundles the golden model reads, bad input is
refused before anything is written, and every shipped MNIST bundle's stated accuracy is the
golden model's on the test split."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from rtl_gen.bundle import bundle_format, read_bundle
from rtl_gen.cli import main
from rtl_gen.data.mnist import MNIST_DATASET
from rtl_gen.errors import DataError
from rtl_gen.training.defaults import WEIGHTS_DIR

SHIPPED_MNIST = sorted(p for p in WEIGHTS_DIR.glob("mnist-*")
                       if p.is_dir() and bundle_format(p) == "rtl_gen-bundle")


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def test_split():
    from rtl_gen.data.mnist import mnist

    try:
        return mnist()[1]
    except DataError as e:
        pytest.skip(str(e))


def _accuracy(net, split) -> float:
    pred = np.concatenate([net.predict(split.x_int[i:i + 500])
                           for i in range(0, len(split.y), 500)])
    return float(np.mean(pred == split.y))


def test_every_mnist_variant_is_shipped():
    from rtl_gen.training.mnist_qat import MNIST_VARIANTS

    assert sorted(v.name for v in MNIST_VARIANTS) == sorted(p.name for p in SHIPPED_MNIST)


def test_shipped_mnist_bundles_are_their_variants():
    """Weights, activation widths and term revealing as the variant table says (the binary
    TFC on 1-bit activations, the narrowest the engine takes)."""
    from rtl_gen.training.mnist_qat import MNIST_VARIANTS

    for v in MNIST_VARIANTS:
        net = read_bundle(WEIGHTS_DIR / v.name)
        weighted = [getattr(ly, "core", ly) for ly in net.layers
                    if hasattr(getattr(ly, "core", ly), "scheme")]
        # the TFC: three hidden layers and the output; the CNN: three convolutions and dense
        assert len(weighted) == 4, v.name
        assert {ly.scheme.name for ly in weighted} == {v.scheme}, v.name
        assert [ly.out_bits for ly in weighted[:-1]] == [v.act_bits] * (len(weighted) - 1)
        assert all(ly.tr == v.tr for ly in weighted), v.name
    assert read_bundle(WEIGHTS_DIR / "mnist-tfc-binary").layers[1].in_bits == 1


@pytest.mark.parametrize("bundle", SHIPPED_MNIST, ids=[p.name for p in SHIPPED_MNIST])
def test_shipped_mnist_bundle_states_its_golden_accuracy(bundle, test_split):
    net = read_bundle(bundle)
    assert net.metadata["dataset"] == MNIST_DATASET
    assert net.metadata["test_images"] == len(test_split.y) == 2000
    assert net.metadata["test_accuracy"] == _accuracy(net, test_split) > 0.85


def test_mnist_accuracy_table_quotes_the_bundles():
    table = json.loads((WEIGHTS_DIR / "accuracy-mnist.json").read_text())
    rows = {r["bundle"]: r for r in table["bundles"]}
    assert sorted(rows) == sorted(p.name for p in SHIPPED_MNIST)
    md = (WEIGHTS_DIR / "accuracy-mnist.md").read_text()
    for p in SHIPPED_MNIST:
        meta = read_bundle(p).metadata
        assert rows[p.name]["test_accuracy"] == meta["test_accuracy"]
        assert rows[p.name]["float_test_accuracy"] == meta["float_test_accuracy"]
        assert f"| {p.name} |" in md and f"{100 * meta['test_accuracy']:.2f}%" in md
        ptq = rows[p.name]["ptq_test_accuracy"]  # the float model quantized, not trained
        assert 0 <= ptq <= 1 and f"| {100 * ptq:.2f}% | {100 * meta['test_accuracy']:.2f}% |" \
            in md, p.name
    assert "| PTQ | QAT (accuracy) |" in md
    assert "8,000" in md and "60,000" in md and "98.34%" in md and "96.60%" in md
    # QAT is what makes the narrow variants work: PTQ of the binary TFC falls far behind
    assert rows["mnist-tfc-binary"]["ptq_test_accuracy"] + 0.10 < \
        rows["mnist-tfc-binary"]["test_accuracy"]


def test_qat_mnist_trains_and_exports_a_bundle_the_golden_model_reads(tmp_path, test_split):
    pytest.importorskip("torch")
    out = tmp_path / "w"
    result = invoke("qat", "--dataset", "mnist", "--model", "tfc", "--scheme", "pot4",
                    "--epochs", "1", "--float-epochs", "1", "--out", out)
    assert result.exit_code == 0, result.output
    assert "float tfc:" in result.stderr and "mnist-tfc-pot4:" in result.stderr
    net = read_bundle(out / "mnist-tfc-pot4")
    assert net.schemes == ("pot4",) * 4
    assert [ly.in_bits for ly in net.layers] == [8, 2, 2, 2]
    acc = net.metadata["test_accuracy"]
    assert acc == _accuracy(net, test_split) > 0.5
    table = json.loads((out / "accuracy-mnist.json").read_text())
    assert [r["bundle"] for r in table["bundles"]] == ["mnist-tfc-pot4"]
    assert f"{100 * acc:.2f}%" in result.output
    # PTQ: the same calibrated model exported before any QAT epoch
    assert 0.1 < table["bundles"][0]["ptq_test_accuracy"] <= 1


def test_qat_cnn_exports_what_it_trained(test_split):
    """The exported CNN (HWC maps, OHWI kernels, HWC flatten) classifies as the PyTorch model
    it came from: an untrained model here, so that a wrong layout cannot hide."""
    pytest.importorskip("torch")
    from rtl_gen.training import mnist_qat as mq
    from rtl_gen.training.qat import deterministic

    x_int, x = test_split.x_int[::10], test_split.x[::10]
    for scheme, stages in (("int4", None), ("binary", None), ("pot4", None),
                           ("int4", mq.RECIPES["cnn"].stages),
                           ("ternary", ((4, False), (8, True), (8, True), (8, True)))):
        with deterministic(0):
            model = mq.QATCNN(mq._FloatCNN(stages), scheme, act_bits=4)
            model.calibrate(x)
        net = model.export(name="cnn")
        with deterministic(0):
            want = model(x).argmax(1).numpy()
        agree = np.mean(net.predict(x_int) == want)
        assert agree >= 0.97, (scheme, stages, agree)
        convs = [ly for ly in net.layers if type(ly).__name__ == "ConvLayer"]
        assert len(convs) == len(model.stages)


def test_the_tfcs_keep_the_first_cnn_as_their_teacher():
    """The shipped TFC bundles were distilled from the float conv8-pool-conv16-pool-dense10
    trained 40 epochs on ±2-pixel shifts: that teacher stays, whatever the shipped CNN."""
    from rtl_gen.training.mnist_qat import CNN_STAGES, RECIPES, Recipe

    assert CNN_STAGES == ((8, True), (16, True))
    assert RECIPES[RECIPES["tfc"].teacher] == Recipe(
        float_epochs=40, float_lr=3e-3, pixels=2, qat_epochs=30, qat_lr=2e-3,
        teacher=RECIPES["tfc"].teacher, stages=CNN_STAGES)
    assert RECIPES["cnn"].teacher == "cnn"


def test_affine_moves_images_as_drawn(test_split):
    """The training images' random affine maps: the same generator seed, the same images;
    no rotation, scale or shift leaves every image as it was; otherwise the images change
    but keep most of their ink."""
    torch = pytest.importorskip("torch")
    from rtl_gen.training.mnist_qat import affine
    from rtl_gen.training.qat import DTYPE

    x = torch.as_tensor(test_split.x[::40], dtype=DTYPE)
    same = affine(x, torch.Generator().manual_seed(0), rotate=0, scale=0, pixels=0)
    assert torch.allclose(same, x, atol=1e-12)
    a = affine(x, torch.Generator().manual_seed(1), rotate=10, scale=0.1, pixels=2)
    b = affine(x, torch.Generator().manual_seed(1), rotate=10, scale=0.1, pixels=2)
    assert torch.equal(a, b) and a.shape == x.shape
    assert not torch.allclose(a, x)
    ink = a.sum(1) / x.sum(1)
    assert float(ink.min()) > 0.7 and float(ink.max()) < 1.3


@pytest.mark.parametrize("args, message", [
    (["--scheme", "int99"], "unknown weight scheme 'int99'"),
    (["--model", "rnn"], "'rnn' is not one of"),
    (["--dataset", "cifar"], "'cifar' is not one of"),
])
def test_qat_mnist_refuses_bad_input_writing_nothing(tmp_path, args, message):
    out = tmp_path / "w"
    result = invoke("qat", "--dataset", "mnist", *args, "--out", out)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert not out.exists()


def test_qat_mnist_options_need_the_mnist_dataset(tmp_path):
    result = invoke("qat", "--scheme", "int4", "--out", tmp_path / "w")
    assert result.exit_code == 2 and "are for --dataset mnist" in result.output
    assert not (tmp_path / "w").exists()


def test_retraining_some_bundles_keeps_the_other_rows(tmp_path):
    """The rows an ``accuracy-mnist.json`` already in the output folder keeps: those of the
    bundles not retrained that are still there, with their seed; none from a table that is
    missing or unreadable."""
    import shutil

    from rtl_gen.tasks.qat import _kept_rows

    table = tmp_path / "accuracy-mnist.json"
    assert _kept_rows(table, set()) == []
    table.write_text("{not json")
    assert _kept_rows(table, set()) == []
    shutil.copytree(WEIGHTS_DIR / "mnist-tfc-binary", tmp_path / "mnist-tfc-binary")
    shutil.copytree(WEIGHTS_DIR / "mnist-tfc-ternary", tmp_path / "mnist-tfc-ternary")
    rows = [{"bundle": "mnist-tfc-binary", "model": "tfc", "test_accuracy": 0.9},
            {"bundle": "mnist-tfc-ternary", "model": "tfc", "test_accuracy": 0.95},
            {"bundle": "mnist-gone", "model": "tfc", "test_accuracy": 0.5}]
    table.write_text(json.dumps({"seed": 3, "bundles": rows}))
    kept = _kept_rows(table, {"mnist-tfc-ternary"})
    assert kept == [{**rows[0], "seed": 3}]
