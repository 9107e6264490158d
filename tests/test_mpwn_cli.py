"""``rtl-gen mpwn`` and ``rtl-gen reduced-float``: tables, bundles and clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from rtl_gen.bundle import read_float_bundle
from rtl_gen.cli import main
from rtl_gen.data.digits import digits
from rtl_gen.design import float_network
from rtl_gen.hw.exact_float import ExactShape, exact_layer_timing
from rtl_gen.training import mpwn
from rtl_gen.training.defaults import FLOAT_MODEL_NAME, WEIGHTS_DIR
from rtl_gen.training.float_model import load_float_model, save_float_model


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_mpwn_search_prints_every_assignment_and_writes_the_best(tmp_path):
    r = invoke("mpwn", "--finetune", "0", "--out", tmp_path / "best")
    assert r.exit_code == 0, r.output
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("| ") and "/" in ln]
    assert len(lines) == 9  # 3^2 assignments, exhaustive
    best = lines[0].split("|")[1].strip()
    net = read_float_bundle(tmp_path / "best")
    assert "/".join(net.spaces) == best
    model = load_float_model(WEIGHTS_DIR / FLOAT_MODEL_NAME)
    _, test = digits()
    rows = mpwn.search(model, test.x, test.y)
    assert rows[0]["spaces"] == best
    assert f"{100 * rows[0]['accuracy']:.2f}%" in lines[0]


def test_mpwn_given_spaces_and_user_model_with_data(tmp_path):
    model = load_float_model(WEIGHTS_DIR / FLOAT_MODEL_NAME)
    save_float_model(model, tmp_path / "m.npz")
    _, test = digits()
    np.savez(tmp_path / "d.npz", x=test.x[:50], y=test.y[:50])
    r = invoke("mpwn", "--model", tmp_path / "m.npz", "--data", tmp_path / "d.npz",
               "--spaces", "ternary,E4M3", "--finetune", "0", "--out", tmp_path / "b")
    assert r.exit_code == 0, r.output
    net = read_float_bundle(tmp_path / "b")
    assert net.spaces == ("ternary", "E4M3")
    acc = float_network.accuracy(net, net.encode(test.x[:50]), test.y[:50])
    assert f"| ternary/E4M3 | {100 * acc:.2f}% |" in r.stdout


def test_mpwn_and_reduced_float_errors(tmp_path):
    r = invoke("mpwn", "--spaces", "quaternary", "--out", tmp_path / "x")
    assert r.exit_code == 1 and "unknown weight space 'quaternary'" in r.stderr
    assert not (tmp_path / "x").exists()
    r = invoke("mpwn", "--spaces", "float,float,float")
    assert r.exit_code == 1 and "model has 2 layers but 3 spaces" in r.stderr
    model = load_float_model(WEIGHTS_DIR / FLOAT_MODEL_NAME)
    save_float_model(model, tmp_path / "m.npz")
    r = invoke("mpwn", "--model", tmp_path / "m.npz")
    assert r.exit_code == 1 and "give --data" in r.stderr
    _, test = digits()
    np.savez(tmp_path / "d.npz", x=test.x, y=test.y)
    r = invoke("mpwn", "--model", tmp_path / "m.npz", "--data", tmp_path / "d.npz")
    assert r.exit_code == 1 and "give --train-data" in r.stderr
    np.savez(tmp_path / "bad.npz", x=np.zeros((3, 5)), y=np.zeros(3))
    r = invoke("reduced-float", "--data", tmp_path / "bad.npz")
    assert r.exit_code == 1 and "x must be (n, 64)" in r.stderr
    r = invoke("reduced-float", "--exp-bits", "2-x")
    assert r.exit_code == 2 and "expected N, N-M or N,M" in r.stderr
    r = invoke("reduced-float", "--exp-bits", "2", "--man-bits", "0", "--tolerance", "0")
    assert r.exit_code == 1 and "no swept format is within 0.0 points" in r.stderr


def test_reduced_float_recommends_sweeps_and_exports(tmp_path):
    r = invoke("reduced-float", "--man-bits", "0-3", "--out", tmp_path / "rf")
    assert r.exit_code == 0, r.output
    model = load_float_model(WEIGHTS_DIR / FLOAT_MODEL_NAME)
    rec = mpwn.recommend_format(model)
    assert f"recommended exponent width: {rec} bits" in r.stderr
    _, test = digits()
    rows = mpwn.reduced_float_sweep(model, test.x, test.y, exp_bits=[rec - 1, rec, rec + 1],
                                    man_bits=range(4))
    ok = [x for x in rows if x["accuracy"] >= x["fp32_accuracy"] - 0.005]
    assert f"within 0.5 points of fp32 ({100 * rows[0]['fp32_accuracy']:.2f}%): " \
           f"{ok[0]['format']}, {ok[0]['bits']} bits" in r.stdout
    net = read_float_bundle(tmp_path / "rf")
    fmts = [ly.weight_format for ly in net.layers]
    assert {(f.exp_bits, f.man_bits) for f in fmts} == {(ok[0]["exp_bits"], ok[0]["man_bits"])}
    assert len(r.stdout.splitlines()) >= 2 + 3 * 4


def test_mpwn_finetunes_through_the_weight_spaces(tmp_path):
    from rtl_gen.training.mpwn_train import finetune

    r = invoke("mpwn", "--spaces", "ternary,binary", "--finetune", "3", "--out", tmp_path / "b")
    assert r.exit_code == 0, r.output
    model = load_float_model(WEIGHTS_DIR / FLOAT_MODEL_NAME)
    train, test = digits()
    tuned = finetune(model, ("ternary", "binary"), train.x, train.y, epochs=3)
    want = mpwn.from_float(tuned, ("ternary", "binary"))
    got = read_float_bundle(tmp_path / "b")
    for a, b in zip(want.layers, got.layers, strict=True):
        assert np.array_equal(a.codes, b.codes) and np.array_equal(a.scale, b.scale)
    assert got.metadata["finetune_epochs"] == 3
    ptq = mpwn.from_float(model, ("ternary", "binary"))
    assert not np.array_equal(ptq.layers[0].codes, got.layers[0].codes)  # it did train
    acc = float_network.accuracy(want, want.encode(test.x), test.y)
    assert f"| ternary/binary | {100 * acc:.2f}% |" in r.stdout


def test_check_and_verify_options_on_a_float_bundle(tmp_path):
    r = invoke("mpwn", "--spaces", "ternary,float", "--finetune", "0", "--out", tmp_path / "b")
    assert r.exit_code == 0, r.output
    r = invoke("check", tmp_path / "b")
    assert r.exit_code == 0, r.output
    assert "valid float bundle 'b', input 64 x fp32, 10 outputs" in r.stdout
    net = read_float_bundle(tmp_path / "b")
    assert f"| fc1 | 32x64 | ternary | 2 | {100 * net.layers[0].sparsity:.2f}% | alpha | relu |" \
        in r.stdout
    r = invoke("verify", "--bundle", tmp_path / "b", "--conventional")
    assert r.exit_code == 2 and "not to a float bundle" in r.stderr
    (tmp_path / "b" / "fc2.bias.npy").unlink()
    r = invoke("check", tmp_path / "b")
    assert r.exit_code == 1 and "fc2.bias.npy: layer 'fc2': field 'bias': missing" in r.stderr


@pytest.mark.slow
def test_generate_a_float_bundle(tmp_path):
    assert invoke("mpwn", "--spaces", "binary,float", "--finetune", "0",
                  "--out", tmp_path / "b").exit_code == 0
    r = invoke("generate", "--bundle", tmp_path / "b", "--cols", "4", "-o", tmp_path / "a.v")
    assert r.exit_code == 0, r.output
    assert "| fc1 | binary | 32x64 | 4 |" in r.stdout
    text = (tmp_path / "a.v").read_text()
    assert "module net_b(" in text


def test_mpwn_on_the_exact_contract(tmp_path):
    """``--accumulation exact``: the bundle names the exact contract in the window fit on
    the training split, its alphas are powers of two, and the printed accuracy is the exact
    golden model's, which differs from the sequential one's on these images."""

    r = invoke("mpwn", "--spaces", "ternary", "--finetune", "0", "--accumulation", "exact",
               "--out", tmp_path / "b")
    assert r.exit_code == 0, r.output
    net = read_float_bundle(tmp_path / "b")
    default = mpwn.from_float(load_float_model(WEIGHTS_DIR / FLOAT_MODEL_NAME),
                              ("ternary", "ternary"), accumulation="exact")
    assert net.accumulation == "exact"
    assert net.window == mpwn.fit_window(default, default.encode(digits()[0].x))
    for layer in net.layers:
        alpha = np.asarray(layer.scale, np.uint32).view(np.float32).astype(np.float64)
        assert np.all(np.exp2(np.round(np.log2(alpha))) == alpha)
    _, test = digits()
    acc = float_network.accuracy(net, net.encode(test.x), test.y)
    assert f"| ternary/ternary | {100 * acc:.2f}% |" in r.stdout
    seq = invoke("mpwn", "--spaces", "ternary", "--finetune", "0")
    assert seq.exit_code == 0 and f"| ternary/ternary | {100 * acc:.2f}% |" not in seq.stdout


def test_generate_shapes_the_layers_of_an_exact_network(tmp_path):
    """On the exact contract ``--array-lanes`` (inputs a step) and ``--layer-array
    LAYER:cols=,lanes=,drain=`` shape each layer; the table shows them, with the cycle model
    of that shape; shapes that cannot be get one line naming the option or the layer."""
    assert invoke("mpwn", "--spaces", "ternary", "--finetune", "0", "--accumulation",
                  "exact", "--out", tmp_path / "b").exit_code == 0
    r = invoke("generate", "--bundle", tmp_path / "b", "--cols", "32", "--array-lanes", "8",
               "--layer-array", "0:drain=4", "--layer-array", "fc2:cols=10",
               "-o", tmp_path / "a.v")
    assert r.exit_code == 0, r.output
    net = read_float_bundle(tmp_path / "b")
    t1 = exact_layer_timing(net.layers[0], ExactShape(32, 8, 4))
    t2 = exact_layer_timing(net.layers[1], ExactShape(10, 8), in_per_beat=4)
    assert f"| fc1 | ternary | 32x64 | 32 | 8 | 4 | {t1.batch_cycles} | {t1.interval} |" \
        in r.stdout
    assert f"| fc2 | ternary | 10x32 | 10 | 8 | 1 | {t2.batch_cycles} | {t2.interval} |" \
        in r.stdout
    assert "module net_b(" in (tmp_path / "a.v").read_text()
    for args, code, message in [
        (("--array-lanes", "3"), 2, "'--array-lanes': inputs a step must be a power of two"),
        (("--layer-array", "0:rows=2"), 2, "with a key of cols, lanes, drain"),
        (("--layer-array", "fc9:cols=2"), 2, "no layer 'fc9' in 'b'"),
        (("--layer-array", "1:drain=2"), 1, "the last layer drains one logit a cycle"),
        (("--layer-array", "0:cols=8,drain=3"), 2, "layer 'fc1': results a cycle (drain 3)"),
        (("--target-fps", "1000"), 2, "--target-fps plans integer networks"),
    ]:
        r = invoke("generate", "--bundle", tmp_path / "b", *args, "-o", tmp_path / "x.v")
        assert r.exit_code == code and message in r.stderr, (args, r.output)
        assert [ln.startswith("Error: ") for ln in r.stderr.splitlines()].count(True) == 1
        assert "Traceback" not in r.output and not (tmp_path / "x.v").exists()
    assert invoke("mpwn", "--spaces", "ternary", "--finetune", "0",
                  "--out", tmp_path / "s").exit_code == 0
    r = invoke("generate", "--bundle", tmp_path / "s", "--array-lanes", "4")
    assert r.exit_code == 2 and "on the exact contract" in r.stderr
