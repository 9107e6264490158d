"""The binary PE's paired lanes: each pair of lanes is one term, ``±(x1 + x2)`` or
``±(x1 - x2)`` picked by the two codes, whose carry-ins enter the adder tree's and the
accumulator's carry chains (:func:`rtl_gen.hw.pes.kit.add_carry`).  Every code pair times
every activation pair, signed and unsigned, the hidden layers' 1-bit activations, an odd
lane left over, and the extremes of a 16-lane 8-bit unit, against the numerics' golden
model (``PEConfig.reference``)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from amaranth import Signal, signed, unsigned
from amaranth.sim import Simulator

from rtl_gen.hw.pe import PEConfig
from rtl_gen.hw.pes.kit import add_carry
from tests.test_pe_sim import check


def _every(bits: int, is_signed: bool, lanes: int) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if is_signed else (0, (1 << bits) - 1)
    rows = np.array(list(itertools.product(*[range(lo, hi + 1)] * lanes,
                                           *[(0, 1)] * lanes)))
    return rows[:, :lanes], rows[:, lanes:]


@pytest.mark.parametrize("a_bits,is_signed", [(4, False), (4, True), (1, False), (3, True)])
def test_every_code_pair_times_every_activation_pair(a_bits, is_signed):
    x, w = _every(a_bits, is_signed, 2)
    check(PEConfig("binary", 1, a_bits, a_signed=is_signed, lanes=2), x, w)


@pytest.mark.parametrize("lanes", [3, 4])
def test_one_bit_activations_every_vector(lanes):
    x, w = _every(1, False, lanes)
    check(PEConfig("binary", 1, 1, lanes=lanes, depth=2), x, w)


@pytest.mark.parametrize("is_signed", [False, True], ids=["unsigned", "signed"])
@pytest.mark.parametrize("pipeline", [0, 2])
def test_sixteen_lanes_at_the_extremes_accumulate_exactly(is_signed, pipeline):
    cfg = PEConfig("binary", 1, 8, a_signed=is_signed, lanes=16, depth=49, pipeline=pipeline)
    lo, hi = cfg.x_range
    rng = np.random.default_rng(16)
    n = 49 * 6
    x = rng.choice([lo, hi], size=(n, 16))
    w = rng.integers(0, 2, size=(n, 16))
    w[:49] = 1                   # every weight -1: the most negative sum
    x[:49] = hi if not is_signed else lo
    w[49:98] = 0                 # every weight +1: the most positive sum
    x[49:98] = hi
    first = np.tile(np.eye(1, 49, 0, dtype=int)[0], 6)
    last = np.tile(np.eye(1, 49, 48, dtype=int)[0], 6)
    check(cfg, x, w, first, last)


@pytest.mark.parametrize("wa,sa,wb,sb", [(3, True, 5, True), (4, False, 2, True),
                                         (1, False, 1, False)])
def test_add_carry_is_a_plus_b_plus_carry(wa, sa, wb, sb):
    a = Signal(signed(wa) if sa else unsigned(wa))
    b = Signal(signed(wb) if sb else unsigned(wb))
    c = Signal()
    out = Signal(signed(max(wa, wb) + 2))
    total = add_carry(a, b, c)
    assert len(total) == max(wa + (not sa), wb + (not sb)) + 1

    async def bench(ctx):
        for va in range(-(1 << (wa - 1)) if sa else 0, (1 << (wa - 1)) if sa else 1 << wa):
            for vb in range(-(1 << (wb - 1)) if sb else 0, (1 << (wb - 1)) if sb else 1 << wb):
                for vc in (0, 1):
                    ctx.set(a, va)
                    ctx.set(b, vb)
                    ctx.set(c, vc)
                    assert ctx.get(out) == va + vb + vc, (va, vb, vc)

    from amaranth import Module
    m = Module()
    m.d.comb += out.eq(total)
    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()


def test_the_planner_mixes_arrays_to_fit_block_ram():
    """mnist-tfc-binary at --fit up5k: the arrays cheapest in logic at its 393 cycles take
    more block RAM than the UP5K keeps free (27 of 30); the planner takes the mix of least
    logic within it instead of a slower design."""
    from types import SimpleNamespace

    from rtl_gen.bundle.integer import read_int_bundle
    from rtl_gen.design.area import Area
    from rtl_gen.hw.planner import _cheapest_chain, plan_folding
    from rtl_gen.training.defaults import WEIGHTS_DIR

    plan = plan_folding(read_int_bundle(WEIGHTS_DIR / "mnist-tfc-binary"), fit="up5k")
    assert plan.interval == 393 and plan.area.bram <= 27
    greedy = plan_folding(read_int_bundle(WEIGHTS_DIR / "mnist-tfc-binary"),
                          target_fps=plan.fps, fmax_mhz=plan.fmax_mhz)
    assert greedy.interval == 393 and greedy.area.bram > 27
    assert greedy.area.logic <= plan.area.logic

    def opt(logic, bram):
        return ((logic, 1), SimpleNamespace(area=Area(logic=logic, bram=bram),
                                            array=SimpleNamespace(drain_width=1)), None, 1)

    layers = [[opt(10, 5), opt(12, 3)], [opt(4, 4), opt(9, 1)]]
    assert [o[1].area.bram for o in _cheapest_chain(layers, 9)] == [5, 4]
    assert [o[1].area.bram for o in _cheapest_chain(layers, 7)] == [3, 4]
    assert [o[1].area.bram for o in _cheapest_chain(layers, 4)] == [3, 1]
    assert _cheapest_chain(layers, 3) is None
