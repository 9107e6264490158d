"""Every PE kind's generated Verilog under Verilator (and Icarus), bit for bit against numpy.

One build per configuration (``sim/runner.py`` caches it under ``sim_build/``), each driven
by ``sim/pe_tb.py`` with thousands of seeded random vectors, bubbles and framings.  The
configurations are chosen so that every kind is seen with 1 lane and with a non-power-of-two
lane count, with run-time and baked weights, signed and unsigned activations, and with
pipeline 0 and > 0 (xnor also at 16 and 64 lanes; pot, apot and int at several widths; int
with both multipliers; bit-plane at several maximum precisions, each vector at a random
run-time precision).
"""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
from amaranth.hdl import Fragment

from rtl_gen.hw import pes
from rtl_gen.hw.pe import DotProductUnit, PEConfig
from sim import runner
from sim.pe_tb import Checker, Model, Stimulus, corner_configs, latencies


def _cfg(kind, w_bits, a_bits, a_signed, lanes, depth, pipeline, weights=None,
         multiplier="lut") -> PEConfig:
    return PEConfig(kind=kind, w_bits=w_bits, a_bits=a_bits, a_signed=a_signed, lanes=lanes,
                    depth=depth, pipeline=pipeline, weights=weights, multiplier=multiplier)


# (config, vectors), hand-picked for the shipped kinds: the bit-plane units spend
# w_prec * x_prec cycles per vector.  A registered kind that this list does not name runs at
# its generated corners (sim.pe_tb.corner_configs), appended below.
CONFIGS = [
    (_cfg("binary", 1, 8, True, 1, 16, 0), 10_000),
    (_cfg("binary", 1, 4, False, 6, 8, 1, weights=(0, 1, 1, 0, 1, 0)), 10_000),
    (_cfg("ternary", 2, 8, False, 5, 32, 2), 10_000),
    (_cfg("ternary", 2, 3, True, 1, 4, 0, weights=(3,)), 10_000),
    (_cfg("pot", 4, 8, True, 1, 16, 0), 10_000),
    (_cfg("pot", 4, 8, False, 5, 16, 1, weights=(1, 15, 0, 7, 9)), 10_000),
    (_cfg("pot", 6, 6, False, 6, 8, 2), 10_000),
    (_cfg("apot", 4, 8, True, 6, 8, 1), 10_000),
    (_cfg("apot", 4, 5, False, 1, 16, 0, weights=(9,)), 10_000),
    (_cfg("apot", 3, 4, False, 5, 8, 0), 10_000),
    (_cfg("apot", 5, 6, True, 1, 8, 2), 10_000),
    (_cfg("int", 4, 4, True, 5, 16, 0), 10_000),
    (_cfg("int", 4, 8, False, 1, 8, 1, weights=(9,)), 10_000),
    (_cfg("int", 8, 8, False, 6, 8, 2), 10_000),
    (_cfg("int", 8, 8, True, 5, 8, 1, multiplier="dsp"), 10_000),
    (_cfg("int", 8, 8, True, 1, 32, 0, weights=(129,), multiplier="dsp"), 10_000),
    (_cfg("xnor", 1, 1, False, 1, 8, 0, weights=(1,)), 10_000),
    (_cfg("xnor", 1, 1, False, 5, 8, 1), 10_000),
    (_cfg("xnor", 1, 1, False, 16, 16, 2, weights=tuple(i % 3 % 2 for i in range(16))),
     10_000),
    (_cfg("xnor", 1, 1, False, 64, 8, 1), 10_000),
    (_cfg("bitplane", 4, 4, True, 5, 8, 0), 6_000),
    (_cfg("bitplane", 8, 8, False, 1, 4, 1), 2_000),
    (_cfg("bitplane", 2, 3, False, 16, 16, 2), 6_000),
]

CONFIGS += [case for kind in pes.kinds() if kind not in {c.kind for c, _ in CONFIGS}
            for case in corner_configs(kind)]

#: A few configurations for the second simulator, with fewer vectors (Icarus is ~10x slower).
ICARUS = [CONFIGS[4], CONFIGS[8], CONFIGS[19], CONFIGS[20]]


def _need(simulator: str) -> None:
    reason = runner.missing_simulator(simulator)
    if reason is not None:
        pytest.skip(f"{simulator} unavailable: {reason}")


def _build(cfg: PEConfig, simulator: str = "verilator") -> tuple[runner.SimBuild, dict]:
    """The build of ``cfg`` and the unit's latency table (read after the unit is used)."""
    unit = DotProductUnit(cfg)
    build = runner.build(runner.verilog_text(unit, "top"), "top", simulator=simulator)
    return build, latencies(unit)


def _params(cfg: PEConfig, vectors: int, seed: int, latency: dict) -> dict:
    return {"config": dataclasses.asdict(cfg), "vectors": vectors, "seed": seed,
            "latency": latency}


def _covers_every_corner(configs, kind: str) -> None:
    k = pes.get(kind)
    mine = [c for c, _ in configs if c.kind == kind]
    assert {c.lanes == 1 for c in mine} == {True, False}, kind
    assert {c.pipeline > 0 for c in mine} == {True, False}, kind
    if k.bakeable:           # bit-plane weights are run-time operands only
        assert {c.weights is None for c in mine} == {True, False}, kind
    if len({repr(c.activation_shape) for c in (dataclasses.replace(mine[0], a_signed=s)
                                               for s in (False, True))}) == 2:
        assert {c.a_signed for c in mine} == {True, False}, kind   # not xnor's ±1 codes
    assert {c.multiplier for c in mine} == set(k.multipliers), kind
    assert sum(v for c, v in configs if c.kind == kind) >= 10_000, kind


def test_configurations_cover_every_kind_and_corner():
    kinds = {c.kind for c, _ in CONFIGS}
    assert kinds == set(pes.kinds())
    for kind in pes.kinds():
        _covers_every_corner(CONFIGS, kind)
    assert {c.w_bits for c, _ in CONFIGS if c.kind == "pot"} >= {4, 6}
    assert {c.w_bits for c, _ in CONFIGS if c.kind == "apot"} == {3, 4, 5}
    assert {(c.w_bits, c.multiplier) for c, _ in CONFIGS if c.kind == "int"} >= {
        (4, "lut"), (8, "lut"), (8, "dsp")}
    assert {c.lanes for c, _ in CONFIGS if c.kind == "xnor"} >= {1, 5, 16, 64}


def test_generated_corners_cover_every_corner():
    # what a kind missing from the hand-picked list gets
    for kind in pes.kinds():
        _covers_every_corner(corner_configs(kind), kind)


@pytest.mark.slow
@pytest.mark.parametrize(("cfg", "vectors"), CONFIGS, ids=[c.name for c, _ in CONFIGS])
def test_pe_verilator(cfg, vectors):
    _need("verilator")
    build, latency = _build(cfg)
    build.run("sim.pe_tb", params=_params(cfg, vectors, CONFIGS.index((cfg, vectors)), latency),
              tag=cfg.name)


@pytest.mark.slow
@pytest.mark.parametrize(("cfg", "vectors"), ICARUS, ids=[c.name for c, _ in ICARUS])
def test_pe_icarus(cfg, vectors):
    _need("icarus")
    build, latency = _build(cfg, "icarus")
    build.run("sim.pe_tb", params=_params(cfg, min(vectors, 1_500), 7, latency), tag=cfg.name)


# The checker must be able to fail: run the testbench against hardware that differs from
# what it is told (same payload layout and accumulator width, so only the check can notice).

@pytest.mark.slow
def test_checker_catches_wrong_values():
    _need("verilator")
    built, _ = CONFIGS[5]  # pot4, baked weights (1, 15, 0, 7, 9)
    told = dataclasses.replace(built, weights=(1, 15, 0, 7, 10))
    build, latency = _build(built)
    with pytest.raises(runner.SimulationFailed, match="outputs differ"):
        build.run("sim.pe_tb", params=_params(told, 500, 1, latency), tag="mutant-values")


@pytest.mark.slow
def test_checker_catches_wrong_latency():
    _need("verilator")
    built, _ = CONFIGS[2]  # ternary, pipeline 2
    build, _ = _build(built)
    told = dataclasses.replace(built, pipeline=1)
    with pytest.raises(runner.SimulationFailed, match="edges after its last vector"):
        build.run("sim.pe_tb", params=_params(told, 500, 1, _latency_of(told)),
                  tag="mutant-latency")


@pytest.mark.slow
def test_checker_catches_wrong_bitplane_latency():
    _need("verilator")
    built, _ = CONFIGS[20]  # bit-plane, signed activations
    build, _ = _build(built)
    told = dataclasses.replace(built, pipeline=1)
    with pytest.raises(runner.SimulationFailed, match="edges after its last vector"):
        build.run("sim.pe_tb", params=_params(told, 300, 1, _latency_of(told)),
                  tag="mutant-bitplane")


def _latency_of(cfg: PEConfig) -> dict:
    unit = DotProductUnit(cfg)
    Fragment.get(unit, None)  # elaborated: amaranth would warn about an unused unit
    return latencies(unit)


# The checker without a simulator: perfect records pass, each kind of fault is named.

def _perfect(cfg: PEConfig, n: int):
    stim = Stimulus(cfg, n, seed=3)
    steps = stim.cycles()
    accepted = 10 + np.concatenate([[0], np.cumsum(steps[:-1])])
    ends = np.flatnonzero(stim.last)
    table = _latency_of(cfg)
    if cfg.run_time_precision:
        lat = [table[f"{a},{b}"] for a, b in zip(
            np.where(stim.w_prec == 0, cfg.w_bits, stim.w_prec)[ends],
            np.where(stim.x_prec == 0, cfg.a_bits, stim.x_prec)[ends], strict=True)]
    else:
        lat = [table["0,0"]] * ends.size
    seen = [(int(accepted[e]) + k, v) for e, k, v in zip(ends, lat, Model(cfg).outputs(stim),
                                                           strict=True)]
    driver = SimpleNamespace(accepted=accepted.tolist(), presented=accepted.tolist())
    return Checker(cfg, stim, table), driver, SimpleNamespace(seen=seen)


@pytest.mark.parametrize("cfg", [CONFIGS[5][0], CONFIGS[20][0]], ids=["pot4", "bitplane"])
def test_checker_names_each_fault(cfg):
    checker, driver, monitor = _perfect(cfg, 300)
    checker.check(driver, monitor)
    edge, value = monitor.seen[7]
    monitor.seen[7] = (edge, value + 1)
    with pytest.raises(AssertionError, match="outputs differ; first is output 7"):
        checker.check(driver, monitor)
    monitor.seen[7] = (edge + 1, value)
    with pytest.raises(AssertionError, match="output 7 came"):
        checker.check(driver, monitor)
    monitor.seen[7] = (edge, value)
    del monitor.seen[-1]
    with pytest.raises(AssertionError, match="outputs for"):
        checker.check(driver, monitor)


def test_checker_holds_bitplane_to_its_cycle_model():
    checker, driver, monitor = _perfect(CONFIGS[20][0], 300)
    driver.accepted[50:] = [e + 1 for e in driver.accepted[50:]]  # one step too many
    driver.presented[50:] = driver.accepted[50:]                  # ... though not presented late
    driver.presented[50] -= 1
    monitor.seen = [(e + (1 if e > driver.accepted[50] else 0), v) for e, v in monitor.seen]
    with pytest.raises(AssertionError, match="vector 50 accepted at edge"):
        checker.check(driver, monitor)
