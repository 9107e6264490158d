"""Every bad input reaches the user as one clear line: ``Error: ...`` on stderr, exit status 2
for bad usage and 1 for bad input files or outputs that cannot be written, no traceback, and
nothing written half-way."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from rtl_gen.bundle import read_bundle
from rtl_gen.cli import main
from rtl_gen.errors import BundleError, RtlGenError
from rtl_gen.tasks.common import OptionError, arrays_for
from rtl_gen.training.defaults import FLOAT_MODEL_NAME, WEIGHTS_DIR

MODEL = WEIGHTS_DIR / FLOAT_MODEL_NAME
INT8 = WEIGHTS_DIR / "digits-int8"


def run_cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def one_error_line(result, status: int) -> str:
    """The single ``Error:`` line of a failed command, after checking the status and that
    nothing else went wrong (no traceback, no Python warning)."""
    assert result.exit_code == status, (result.exit_code, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        repr(result.exception)
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.output and "Warning" not in result.stderr, result.stderr
    assert result.stderr.rstrip("\n").endswith(errors[0])
    return errors[0]


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# 1 -------------------------------------------------------------------------------------------


def test_quantize_checks_the_network_name_before_any_work(tmp_path):
    out = tmp_path / "bundle"
    line = one_error_line(run_cli("quantize", "--model", MODEL, "--scheme", "int8",
                                  "--out", out, "--name", "../bad name"), 2)
    assert "--name" in line and "'../bad name'" in line and "letters, digits" in line
    assert not out.exists() and _files(tmp_path) == []
    # The folder's name is the default; one the readers refuse is a usage error as well.
    line = one_error_line(run_cli("quantize", "--model", MODEL, "--scheme", "int8",
                                  "--out", tmp_path / "my bundle"), 2)
    assert "--out" in line and "--name" in line and "'my bundle'" in line
    # The rule is the readers': a manifest with such a name is refused, naming the field.
    bundle = tmp_path / "copy"
    shutil.copytree(INT8, bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["name"] = "../bad name"
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="must be a non-empty word") as e:
        read_bundle(bundle)
    assert e.value.field == "name"


# 2 -------------------------------------------------------------------------------------------


@pytest.fixture
def a_file(tmp_path) -> Path:
    """A regular file: nothing can be created under it."""
    f = tmp_path / "plain.txt"
    f.write_text("not a folder\n")
    return f


@pytest.mark.parametrize("args", [
    ["generate", "--bundle", INT8, "-o", "{f}/x.v"],
    ["generate", "--pe", "int8", "-o", "{f}/x.v"],
    ["report", "--bundle", INT8, "--out", "{f}/report"],
    ["quantize", "--model", MODEL, "--scheme", "int8", "--out", "{f}/bundle"],
    ["train", "--epochs", "1", "--out", "{f}/model.npz"],
    ["demo", "--out", "{f}/demo", "--no-simulate", "--no-bitstream"],
    ["build", "--board", "icebreaker", "--bundle", INT8, "--out", "{f}/build"],
    ["mpwn", "--spaces", "ternary", "--finetune", "0", "--out", "{f}/mpwn"],
    ["reduced-float", "--man-bits", "3", "--out", "{f}/rf"],
    ["generate", "--bundle", INT8, "-o", "{f}"],  # a file where a folder is expected
    ["report", "--bundle", INT8, "--out", "{f}"],
], ids=lambda a: " ".join(str(x) for x in a[:2]))
def test_an_output_that_cannot_be_written_is_one_line(a_file, args):
    args = [str(a).format(f=a_file) for a in args]
    if args[-1] == str(a_file) and args[0] == "generate":
        args[-1] = str(a_file.parent)  # a folder where a file is expected
    line = one_error_line(run_cli(*args), 1)
    assert str(a_file.parent) in line
    assert _files(a_file.parent) == ["plain.txt"]


def test_an_output_under_proc_is_one_line(tmp_path):
    line = one_error_line(run_cli("generate", "--pe", "int8", "-o", "/proc/rtl_gen_x.v"), 1)
    assert line.startswith("Error: /proc/rtl_gen_x.v: cannot write")


# 3 -------------------------------------------------------------------------------------------


def test_report_writes_all_of_its_files_or_none(tmp_path):
    (tmp_path / "report.json").mkdir()
    line = one_error_line(run_cli("report", "--bundle", INT8, "--out", tmp_path), 1)
    assert "report.json" in line
    assert _files(tmp_path) == ["report.json"]  # no report.md, no temporary
    assert _files(tmp_path / "report.json") == []


# 4 -------------------------------------------------------------------------------------------


def test_a_design_too_large_for_every_device_is_refused_before_elaboration(monkeypatch,
                                                                           tmp_path):
    from rtl_gen.hw.network import NetworkEngine

    def elaborate(*args, **kwargs):
        raise AssertionError("elaborated a design that cannot fit")

    monkeypatch.setattr(NetworkEngine, "from_plan", classmethod(elaborate))
    out = tmp_path / "big.v"
    line = one_error_line(run_cli("generate", "--bundle", INT8, "--rows", "64",
                                  "--array-lanes", "256", "-o", out), 2)
    assert "ecp5-85f" in line and "LUT4" in line and "--array-lanes" in line
    assert not out.exists()
    net = read_bundle(INT8)
    with pytest.raises(OptionError, match="cannot fit any supported FPGA"):
        arrays_for(net, rows=64, lanes=256)
    with pytest.raises(OptionError, match="cannot fit"):
        arrays_for(net, rows=64, cols=256, lanes=8)
    arrays_for(net, rows=4, cols=32, lanes=16)  # large, but a device may hold it


# 5 -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("x, y, words", [
    (np.zeros((0, 64)), np.zeros(0, dtype=np.int64), "no examples"),
    (np.zeros((3, 64)), np.array([0, 10, 3]), "y[1] is 10"),
    (np.zeros((3, 64)), np.array([0, -1, 3]), "y[1] is -1"),
    (np.zeros((3, 64)), np.array([0, 1.5, 3]), "y[1] is 1.5"),
    (np.zeros((3, 64)), np.array(["a", "b", "c"]), "integer class labels, not text"),
    (np.full((3, 64), np.nan), np.array([0, 1, 2]), "NaN"),
], ids=["empty", "too-large", "negative", "fraction", "text", "nan"])
def test_evaluation_data_is_checked(tmp_path, x, y, words):
    data = tmp_path / "data.npz"
    np.savez(data, x=x, y=y)
    out = tmp_path / "report"
    line = one_error_line(run_cli("report", "--bundle", INT8, "--data", data, "--out", out), 1)
    assert str(data) in line and words in line
    assert not out.exists()


@pytest.mark.parametrize("key, scale, words", [
    ("weight0", 1e300, "weight0 holds a value of magnitude"),
    ("bias1", 1e20, "bias1 holds a value of magnitude"),
    ("calibration", 1e300, "calibration holds a value of magnitude"),
    ("weight1", np.inf, "weight1 contains"),
])
def test_quantize_refuses_absurd_model_values(tmp_path, key, scale, words):
    arrays = dict(np.load(MODEL))
    arrays[key] = arrays[key] * scale
    model = tmp_path / "model.npz"
    np.savez(model, **arrays)
    out = tmp_path / "bundle"
    with np.errstate(all="raise"):  # no numpy warning on the way to the error
        line = one_error_line(run_cli("quantize", "--model", model, "--scheme", "int8",
                                      "--out", out), 1)
    assert str(model) in line and words in line
    assert not out.exists()


# 6 -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tr, part", [("0:1", "G (group size)"), ("4:99:2", "K (terms kept"),
                                      ("4:2:99", "S (terms kept per activation)"),
                                      ("4:70000", "K (terms kept")])
def test_tr_errors_name_the_part(tmp_path, tr, part):
    line = one_error_line(run_cli("quantize", "--model", MODEL, "--scheme", "int8",
                                  "--out", tmp_path / "b", "--tr", tr), 2)
    assert "'--tr'" in line and part in line


def test_messages_speak_of_the_product_not_numpy(tmp_path):
    text = tmp_path / "text.npz"
    text.write_text("hello\n")
    for args in (["quantize", "--model", text, "--scheme", "int8", "--out", tmp_path / "b"],
                 ["report", "--bundle", INT8, "--data", text]):
        line = one_error_line(run_cli(*args), 1)
        assert "not a readable .npz file" in line and "pickle" not in line
    arrays = dict(np.load(MODEL))
    arrays["input_bits"] = np.float64(8.5)
    model = tmp_path / "model.npz"
    np.savez(model, **arrays)
    line = one_error_line(run_cli("quantize", "--model", model, "--scheme", "int8",
                                  "--out", tmp_path / "b"), 1)
    assert "input_bits must be a single value, an integer" in line and "kind" not in line
    bundle = tmp_path / "v"
    shutil.copytree(INT8, bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["version"] = "1"
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    line = one_error_line(run_cli("check", bundle), 1)
    assert "'version': must be an integer, not '1' (a string)" in line


@pytest.mark.parametrize("args, status", [
    (["generate", "--bundle", INT8, "--name", "1bad"], 2),            # usage
    (["generate", "--bundle", INT8, "--pe", "int8"], 2),
    (["report", "--bundle", "/nonexistent/bundle"], 1),                  # input file
    (["quantize", "--model", "/nonexistent.npz", "--scheme", "int8", "--out", "{t}/b"], 1),
    (["quantize", "--model", MODEL, "--scheme", "int9x", "--out", "{t}/b"], 2),
    (["verify", "--bundle", INT8, "--tr-k", "3"], 2),     # an option that does not apply
    (["verify", "--bundle", WEIGHTS_DIR / "digits-float.npz", "--tr-k", "3"], 1),
])
def test_exit_status_usage_2_input_1(tmp_path, args, status):
    one_error_line(run_cli(*[str(a).format(t=tmp_path) for a in args]), status)


# 7 -------------------------------------------------------------------------------------------


def test_written_files_get_the_umask_mode(tmp_path):
    want = 0o666 & ~_umask()
    out = tmp_path / "x.v"
    assert run_cli("generate", "--pe", "ternary", "-o", out).exit_code == 0
    for written in (out, out.with_suffix(".vlt")):  # the Verilog and its lint waivers
        assert stat.S_IMODE(written.stat().st_mode) == want
    assert run_cli("report", "--bundle", INT8, "--out", tmp_path / "r").exit_code == 0
    for name in ("report.md", "report.json"):
        assert stat.S_IMODE((tmp_path / "r" / name).stat().st_mode) == want
    from rtl_gen.data.npz import write_npz

    write_npz(tmp_path / "a.npz", {"x": np.zeros(3)})
    assert stat.S_IMODE((tmp_path / "a.npz").stat().st_mode) == want
    assert _files(tmp_path) == ["a.npz", "r", "x.v", "x.vlt"]  # no temporaries left


# 8 -------------------------------------------------------------------------------------------


def test_caches_live_in_the_user_cache_folder(monkeypatch, tmp_path):
    import platformdirs

    from sim import runner

    package = Path(__file__).resolve().parents[1]
    monkeypatch.delenv("RTL_GEN_SIM_BUILD", raising=False)
    cache = runner.default_cache_dir()
    assert cache == Path(platformdirs.user_cache_dir("rtl_gen")) / "sim_build"
    assert not cache.resolve().is_relative_to(package)
    monkeypatch.setenv("RTL_GEN_SIM_BUILD", str(tmp_path / "shared"))
    assert runner.default_cache_dir() == tmp_path / "shared"

    # synth keeps its runs in the user cache folder, not in ./build of the working folder
    from rtl_gen import flow
    from rtl_gen.tasks import synth as synth_task

    seen = []

    class Stats:
        logic_cells = lut4 = carry = ff = dsp = bram = 0
        note = ""

    def fake_synth(verilog, top, device, *, workdir=None, **kw):
        seen.append(workdir)
        return Stats()

    def component_verilog(engine, top):
        from amaranth.hdl import Fragment

        Fragment.get(engine, None)  # elaborated, as the flow would
        return ""

    monkeypatch.setattr(flow, "component_verilog", component_verilog)
    monkeypatch.setattr(flow, "synth", fake_synth)
    monkeypatch.chdir(tmp_path)
    synth_task.synth(INT8, "up5k", fmax=False)
    assert seen and seen[0] is not None
    assert Path(seen[0]).is_relative_to(Path(platformdirs.user_cache_dir("rtl_gen")))
    assert not (tmp_path / "build").exists()


def test_an_error_is_an_rtl_gen_error():
    """The output errors are RtlGenErrors, so that Python callers catch one base class."""
    from rtl_gen.errors import OutputError

    assert issubclass(OutputError, RtlGenError)
