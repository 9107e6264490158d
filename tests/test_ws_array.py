"""The weight-stationary array in amaranth.sim against numpy: every partial sum of every
vector of several back-to-back weight tiles, each exactly ``latency`` cycles after its
vector, with tiles started every :func:`ws_tile_period` cycles (loads overlapping compute)."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from rtl_gen.hw.array import WeightStationaryArray, ws_tile_period
from rtl_gen.hw.pe import PEConfig


def valid_codes(cfg: PEConfig) -> np.ndarray:
    codes = np.arange(1 << cfg.w_bits)
    return codes[~cfg.scheme.invalid_codes(codes)]


def run(cfg: PEConfig, rows: int, cols: int, tiles: int, batch: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    lanes = cfg.lanes
    codes = valid_codes(cfg)
    w = rng.choice(codes, (tiles, rows, cols, lanes))
    lo, hi = (-(1 << (cfg.a_bits - 1)), (1 << (cfg.a_bits - 1)) - 1) if cfg.a_signed \
        else (0, (1 << cfg.a_bits) - 1)
    x = rng.integers(lo, hi + 1, (tiles, batch, rows, lanes))
    x[0, 0] = hi if not cfg.a_signed else lo   # an extreme vector
    wv = cfg.scheme.decode(w)                  # (tiles, rows, cols, lanes)
    want = np.einsum("tbrl,trcl->tbc", x, wv)

    dut = WeightStationaryArray(cfg, rows=rows, cols=cols)
    period = ws_tile_period(rows, cols, batch)
    presented, got = [], []

    async def driver(ctx):
        # tile 0's weights first; then tile t starts at start0 + t * period and the loads of
        # tile t + 1 begin R + C - 2 cycles after tile t's swap
        cycle = 0
        plan = {}
        start0 = rows
        for r in range(rows):                  # bottom row first
            plan.setdefault(r, {})["load"] = w[0, rows - 1 - r]
        for t in range(tiles):
            s = start0 + t * period
            for b in range(batch):
                plan.setdefault(s + b, {})["vec"] = (t, b)
            if t + 1 < tiles:
                for r in range(rows):
                    plan.setdefault(s + rows + cols - 2 + r, {})["load"] = \
                        w[t + 1, rows - 1 - r]
        last = max(plan)
        while cycle <= last:
            step = plan.get(cycle, {})
            ctx.set(dut.load, "load" in step)
            if "load" in step:
                for c in range(cols):
                    for lane in range(lanes):
                        ctx.set(dut.w[c][lane], int(step["load"][c, lane]))
            if "vec" in step:
                t, b = step["vec"]
                ctx.set(dut.valid, 1)
                ctx.set(dut.swap, b == 0)
                for r in range(rows):
                    for lane in range(lanes):
                        ctx.set(dut.x[r][lane], int(x[t, b, r, lane]))
                presented.append(cycle)
            else:
                ctx.set(dut.valid, 0)
                ctx.set(dut.swap, 0)
            await ctx.tick()
            cycle += 1
        ctx.set(dut.load, 0)
        ctx.set(dut.valid, 0)

    async def monitor(ctx):
        cycle = 0
        while len(got) < tiles * batch:
            if ctx.get(dut.y_valid):
                got.append((cycle, [ctx.get(dut.y[c]) for c in range(cols)]))
            await ctx.tick()
            cycle += 1

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(driver)
    sim.add_testbench(monitor)
    sim.run()
    values = np.array([v for _, v in got]).reshape(tiles, batch, cols)
    delays = [g - p for (g, _), p in zip(got, presented, strict=True)]
    return values, want, delays, dut.latency


@pytest.mark.parametrize("kind,w_bits,lanes,signed,rows,cols,batch", [
    ("int", 4, 1, False, 3, 4, 5),       # batch below the period: tiles wait for loads
    ("int", 8, 1, True, 2, 3, 9),        # batch above it: loads hidden behind compute
    ("ternary", 2, 2, False, 4, 2, 6),
    ("pot", 4, 1, True, 3, 3, 7),
    ("apot", 4, 1, False, 2, 5, 8),
    ("binary", 1, 3, True, 2, 2, 4),
])
def test_weight_stationary_tiles_match_numpy(kind, w_bits, lanes, signed, rows, cols,
                                             batch):
    cfg = PEConfig(kind=kind, w_bits=w_bits, a_bits=8, a_signed=signed, lanes=lanes,
                   depth=16)
    got, want, delays, latency = run(cfg, rows, cols, tiles=3, batch=batch)
    assert np.array_equal(got, want)
    assert set(delays) == {latency} and latency == rows + cols - 1


def test_tile_period_and_refusals():
    assert ws_tile_period(4, 8, 1) == 14      # batch 1: the grid idles 13 of 14 cycles
    assert ws_tile_period(4, 8, 32) == 32     # a large batch hides the weight loads
    with pytest.raises(ValueError, match="depth"):
        WeightStationaryArray(PEConfig(kind="int", w_bits=8, a_bits=8, depth=2), rows=4,
                              cols=2)
    with pytest.raises(ValueError, match="xnor"):
        WeightStationaryArray(PEConfig(kind="xnor", w_bits=1, a_bits=1), rows=2, cols=2)
