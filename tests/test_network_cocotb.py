"""The generated Verilog of the digits network, under cocotb, against the golden model.

Every image of the test split goes through the Verilator build of each shipped bundle's
network (binary, ternary, PoT4, APoT4, int4, int8) and of a mixed-precision bundle; every
logit and every class must equal the golden model's, and every layer's cycle counter the
cycle model's.  The same build then runs with random gaps on the input and random stalls on
the output.  Icarus runs a subset when it is installed.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from rtl_gen.bundle import read_bundle
from rtl_gen.data.digits import digits
from rtl_gen.hw.network import NetworkEngine
from rtl_gen.training.defaults import FLOAT_MODEL_NAME, WEIGHTS_DIR
from rtl_gen.training.float_model import load_float_model
from rtl_gen.training.quantize import quantize_mlp
from sim.runner import SimulationFailed, missing_simulator
from sim.scoreboard import IntegerModel
from sim.verify import build_testbench, verify_network

pytestmark = pytest.mark.slow

SCHEMES = ["binary", "ternary", "pot4", "apot4", "int4", "int8"]


@pytest.fixture(scope="module")
def test_split():
    return digits()[1]


def need(simulator: str) -> None:
    why = missing_simulator(simulator)
    if why:
        pytest.skip(why)


def mixed_network():
    """The float model with a different scheme in each layer, made as a user would."""
    model = load_float_model(WEIGHTS_DIR / FLOAT_MODEL_NAME)
    return quantize_mlp(model, ["apot4", "ternary"], name="digits-mixed")


@pytest.mark.parametrize("scheme", SCHEMES)
def test_every_test_image_is_bit_exact(scheme, test_split):
    need("verilator")
    net = read_bundle(WEIGHTS_DIR / f"digits-{scheme}")
    result = verify_network(net, test_split.x_int)
    assert result["images"] == len(test_split.y) == 360
    assert result["layer_cycles"] == result["model_layer_cycles"]


def test_mixed_precision_bundle(test_split):
    need("verilator")
    result = verify_network(mixed_network(), test_split.x_int)
    assert result["images"] == 360


@pytest.mark.parametrize("scheme", ["int4", "ternary"])
def test_gaps_and_stalls(scheme, test_split):
    need("verilator")
    net = read_bundle(WEIGHTS_DIR / f"digits-{scheme}")
    result = verify_network(net, test_split.x_int, gap=0.3, stall=0.4, seed=7)
    assert result["images"] == 360


@pytest.mark.parametrize("scheme, width, lanes, stress", [("int4", 2, 2, False),
                                                           ("ternary", 4, 4, True)])
def test_wide_drains(scheme, width, lanes, stress, test_split):
    """The first layer drains ``width`` results a cycle (its own selects and requantizers)
    into the second, which takes them so: bit-exact on the whole split, and without stalls
    every layer's cycles equal to the model (a tile drains in ``C / width`` cycles); with
    gaps and stalls the credits hold it back without losing a result."""
    need("verilator")
    from rtl_gen.hw.layer import ArrayConfig

    net = read_bundle(WEIGHTS_DIR / f"digits-{scheme}")
    arrays = [ArrayConfig(cols=8, lanes=lanes, drain_width=width),
              ArrayConfig(cols=2, lanes=max(2, width))]
    kw = dict(gap=0.3, stall=0.4, seed=3) if stress else {}
    result = verify_network(net, test_split.x_int, arrays=arrays, **kw)
    assert result["images"] == 360
    if not stress:
        assert result["layer_cycles"] == result["model_layer_cycles"]


def wrong_model_runs():
    """``(name, change to the parameters, the Checker's message)`` of each way the testbench
    is told something the hardware does not do."""
    def logit(p):
        p["logits"][2][5] += 1
        return f"image 2, logit 5: expected {p['logits'][2][5]}, got {p['logits'][2][5] - 1}"

    def cls(p):
        p["classes"][4] = (p["classes"][4] + 1) % 10
        return f"image 4, class: expected {p['classes'][4]}, got "

    def cycles(p):
        p["layer_cycles"][1] += 1
        return f"layer 1: expected {p['layer_cycles'][1]} cycles per batch"

    def hang(p):
        p["max_cycles"] = 100  # fewer than the first image takes
        return "timed out: 0 of 60 logits"

    return [logit, cls, cycles, hang]


def test_the_scoreboard_catches_every_kind_of_difference(test_split):
    """One build (that of the int4 test above), six images: the testbench passes when told
    the golden model's values and fails, naming the difference, when one logit, one class or
    one layer's cycle count is changed, or when the run cannot finish in time."""
    need("verilator")
    net = read_bundle(WEIGHTS_DIR / "digits-int4")
    engine = NetworkEngine(net)
    built, stimulus = build_testbench(engine, "net_digits_int4")
    base = IntegerModel(net, engine).expected(test_split.x_int[:6]).to_params() | {
        "controls": {}, "gap": 0.0, "stall": 0.0, "seed": 0, "max_cycles": 100_000} | stimulus
    assert built.run("sim.network_tb", params=base, tag="right-model").passed
    for change in wrong_model_runs():
        params = json.loads(json.dumps(base))
        message = change(params)
        with pytest.raises(SimulationFailed, match=re.escape(message)):
            built.run("sim.network_tb", params=params, tag=f"wrong-{change.__name__}")


def test_the_stimulus_memory_moves_the_words_of_the_python_driver(test_split, tmp_path):
    """Eight images, from the Python driver and from the wrapper's stimulus memory, on the
    same build, and on the build whose wrapper makes its own clock (a long run's): the same
    logits, classes, layer cycles and cycles from the first word taken to the last logit
    (the memory presents each word in the cycle the driver would)."""
    need("verilator")
    from sim.stimulus import LONG_RUN_CYCLES, STIMULUS_FILE

    net = read_bundle(WEIGHTS_DIR / "digits-int4")
    engine = NetworkEngine(net)
    built, stimulus = build_testbench(engine, "net_digits_int4")
    clocked, inside = build_testbench(engine, "net_digits_int4", cycles=LONG_RUN_CYCLES)
    assert stimulus and not stimulus["clock_inside"] and inside["clock_inside"]
    assert clocked.build_dir != built.build_dir
    base = IntegerModel(net, engine).expected(test_split.x_int[:8]).to_params() | {
        "controls": {}, "gap": 0.0, "stall": 0.0, "seed": 0, "max_cycles": 100_000}
    results = {}
    for name, build, extra in (("python", built, {}), ("memory", built, stimulus),
                               ("clock inside", clocked, inside)):
        out = tmp_path / f"{name}.json"
        run = build.run("sim.network_tb", params=base | extra | {"result_file": str(out)},
                        tag=f"stimulus-{name}")
        assert (run.run_dir / STIMULUS_FILE).is_file() == (name != "python")
        results[name] = json.loads(out.read_text())
    assert results["memory"] == results["python"] == results["clock inside"]
    assert results["memory"]["cycles"] > 0


def test_icarus_subset(test_split):
    need("icarus")
    net = read_bundle(WEIGHTS_DIR / "digits-pot4")
    result = verify_network(net, test_split.x_int[:24], simulator="icarus")
    assert result["layer_cycles"] == result["model_layer_cycles"]


def test_a_users_bundle_generates_and_verifies_from_the_command_line(tmp_path):
    """A bundle no test was written for: a user's .npz (sizes that are not powers of two,
    a last layer with fewer outputs than the array has columns), quantized, generated and
    verified through the CLI with the defaults, on the user's own images."""
    need("icarus" if missing_simulator("verilator") else "verilator")
    from click.testing import CliRunner

    from rtl_gen.cli import main

    rng = np.random.default_rng(3)
    sizes = (23, 11, 5)
    model = {f"weight{i}": rng.normal(0, 1 / np.sqrt(a), (b, a))
             for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True))}
    model |= {f"bias{i}": rng.normal(0, 0.2, b) for i, b in enumerate(sizes[1:])}
    model["calibration"] = np.abs(rng.normal(0, 1, (64, sizes[0])))
    np.savez(tmp_path / "model.npz", **model)
    x = np.abs(rng.normal(0, 1, (40, sizes[0])))
    np.savez(tmp_path / "images.npz", x=x, y=rng.integers(0, sizes[-1], len(x)))
    bundle = tmp_path / "mine"
    runner = CliRunner()
    out = runner.invoke(main, ["quantize", "--model", str(tmp_path / "model.npz"),
                               "--scheme", "pot3,int5", "--out", str(bundle)])
    assert out.exit_code == 0, out.output
    verilog = tmp_path / "mine.v"
    out = runner.invoke(main, ["generate", "--bundle", str(bundle), "-o", str(verilog)])
    assert out.exit_code == 0, out.output
    assert "module" in verilog.read_text()
    out = runner.invoke(main, ["verify", "--bundle", str(bundle),
                               "--data", str(tmp_path / "images.npz")])
    assert out.exit_code == 0, out.output
    assert "40" in out.output
