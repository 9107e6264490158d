"""cocotb testbench of a :class:`rtl_gen.hw.pe.DotProductUnit`, bit for bit against numpy.

Run by ``tests/test_pe_cocotb.py`` through :mod:`sim.runner`; the parameters
(:func:`sim.runner.test_params`) are the :class:`~rtl_gen.hw.pe.PEConfig` fields under
``"config"`` plus ``vectors``, ``seed`` and ``bubble`` (the chance that the driver leaves a
cycle idle before presenting a vector).

::

    Stimulus (numpy, seeded) ──► Driver ──► i.payload/i.valid ──► DUT ──► o ──► Monitor
         │                          └─ accept edge of each vector ─┐          │
         └──────────────► Model (PEConfig.reference: numerics, framing) ──► Checker ◄┘

* Stimulus: activations with the extremes forced in (the most negative and most positive,
  and whole accumulations of ``depth`` vectors of the largest products of either sign), every
  valid weight code in every lane, random ``first``/``last`` framing with accumulations of 1
  to ``depth`` vectors; bit-plane units get a random precision pair per vector (0 included,
  which the unit reads as the maximum).
* Driver: one packed payload word per vector (``pack_inputs``, the unit's own layout),
  written whole; random bubbles; a vector is held until a cycle with ``valid & ready``.
* Monitor: every ``o.valid`` cycle, ``o.payload`` read as signed, with its clock edge.
* Model: :meth:`rtl_gen.hw.pe.PEConfig.reference`, pure numpy: each vector's sum from the
  numerics (``scheme.decode`` / ``bitplane_dot``, never the Amaranth description), framed
  by the flags.
* Checker: equal integer lists, one output per ``last`` vector, each output exactly
  ``latency`` edges after its ``last`` vector was accepted (the unit's own ``latency`` /
  ``latency_at``, passed in by the pytest side as ``params["latency"]``, see
  :func:`latencies`), and for bit-plane units each
  vector accepted exactly ``w_prec * x_prec`` edges after the previous one (or when first
  presented, if later).

Timing convention: the clock has a 10 ns period with rising edges at ``10 * e`` ns, so edge
``e`` is numbered by its time.  Inputs are written at falling edges and sampled (``ReadOnly``)
before the next rising edge, which is the edge that transfers them; an output seen before
edge ``e + 1`` became valid at edge ``e``.
"""

from __future__ import annotations

import dataclasses

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.simtime import get_sim_time
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly

from rtl_gen.hw import pes
from rtl_gen.hw.pe import DotProductUnit, PEConfig, pack_inputs
from sim.runner import test_params

PERIOD_NS = 10


def _edge_after(t_ns: float) -> int:
    """Number of the first rising edge at or after ``t_ns``."""
    return int(-(-t_ns // PERIOD_NS))


def corner_configs(kind: str) -> list[tuple[PEConfig, int]]:
    """``(config, vectors)`` that exercise a registered kind at its corners: one lane and
    five, pipeline 0 and > 0, run-time and (where it takes them) baked weights, signed and
    unsigned activations, its narrowest and widest weights (up to 8 bits), each multiplier;
    at least 10,000 vectors in all.  The cocotb and amaranth.sim tests run these for a kind
    their hand-picked lists do not name."""
    k = pes.get(kind)
    widths = [w for w in k.widths() if w <= 8] or [min(k.widths())]
    a_bits = min(8, max(k.a_widths()))
    one = PEConfig(kind=kind, w_bits=max(widths), a_bits=a_bits, a_signed=True, lanes=1,
                   depth=16)
    vectors = 10_000 if one.cycles_per_vector == 1 else 6_000
    probe = PEConfig(kind=kind, w_bits=min(widths), a_bits=a_bits)
    baked = None
    if k.bakeable:
        codes = np.flatnonzero(~probe.scheme.invalid_codes(np.arange(1 << probe.w_bits)))
        baked = tuple(int(codes[(3 * i + 1) % codes.size]) for i in range(5))
    five = PEConfig(kind=kind, w_bits=min(widths), a_bits=a_bits, lanes=5, depth=8,
                    pipeline=1, weights=baked)
    out = [(one, vectors), (five, vectors)]
    if baked is not None:
        out.append((dataclasses.replace(five, weights=None, pipeline=2, a_signed=True),
                    vectors))
    for mul in k.multipliers[1:]:
        out.append((PEConfig(kind=kind, w_bits=max(widths), a_bits=a_bits, lanes=3, depth=8,
                             pipeline=1, multiplier=mul), vectors))
    return out


class Stimulus:
    """Seeded input vectors, flags and (bit-plane) precisions for one configuration."""

    def __init__(self, cfg: PEConfig, n: int, seed: int):
        self.cfg = cfg
        rng = np.random.default_rng(seed)
        self.first, self.last = self._framing(rng, n, cfg.depth)
        n = self.first.size
        if cfg.run_time_precision:
            self.w_prec = rng.integers(0, cfg.w_bits + 1, n)
            self.x_prec = rng.integers(0, cfg.a_bits + 1, n)
            self.w_prec[:2], self.x_prec[:2] = cfg.w_bits, cfg.a_bits
            wp = np.where(self.w_prec == 0, cfg.w_bits, self.w_prec)
            xp = np.where(self.x_prec == 0, cfg.a_bits, self.x_prec)
            lo = -(1 << (wp - 1))
            self.w = self._values(rng, lo, -lo - 1, cfg.lanes)
            if cfg.a_signed:
                self.x = self._values(rng, -(1 << (xp - 1)), (1 << (xp - 1)) - 1, cfg.lanes)
            else:
                self.x = self._values(rng, np.zeros(n, np.int64), (1 << xp) - 1, cfg.lanes)
            # the extreme accumulations at full precision: most negative activation (or the
            # largest unsigned one) times the most negative, then the most positive weight
            d = cfg.depth
            self.w_prec[:2 * d], self.x_prec[:2 * d] = cfg.w_bits, cfg.a_bits
            self.x[:2 * d] = -(1 << (cfg.a_bits - 1)) if cfg.a_signed else (1 << cfg.a_bits) - 1
            self.w[:d], self.w[d:2 * d] = -(1 << (cfg.w_bits - 1)), (1 << (cfg.w_bits - 1)) - 1
            return
        self.w_prec = self.x_prec = None
        x_lo, x_hi = cfg.x_range
        full = np.full(n, 1, np.int64)
        self.x = self._values(rng, x_lo * full, x_hi * full, cfg.lanes)
        codes = np.flatnonzero(~cfg.scheme.invalid_codes(np.arange(1 << cfg.w_bits)))
        if cfg.weights is None:
            self.w = codes[rng.integers(0, codes.size, (n, cfg.lanes))]
            # every valid code in every lane, right after the two extreme accumulations
            for k in range(codes.size):
                self.w[2 * cfg.depth + k] = np.roll(codes, k)[np.arange(cfg.lanes) % codes.size]
            w_int = cfg.scheme.decode(self.w)
        else:
            self.w = None
            w_int = np.broadcast_to(cfg.scheme.decode(np.asarray(cfg.weights)), (n, cfg.lanes))
        self._extreme_segments(x_lo, x_hi, w_int)

    @staticmethod
    def _framing(rng, n: int, depth: int):
        """Flags of accumulations of random lengths 1..depth (1 and depth often), ``n`` vectors
        or a few more: the first two accumulations are ``depth`` long (the extreme sums)."""
        lengths = [depth, depth]
        while sum(lengths) < n:
            r = rng.random()
            lengths.append(1 if r < 0.2 else depth if r < 0.4 else int(rng.integers(1, depth + 1)))
        first = np.zeros(sum(lengths), np.int64)
        last = np.zeros(sum(lengths), np.int64)
        ends = np.cumsum(lengths)
        first[ends - np.array(lengths)] = 1
        last[ends - 1] = 1
        return first, last

    @staticmethod
    def _values(rng, lo, hi, lanes: int) -> np.ndarray:
        """Uniform integers in ``[lo, hi]`` per row, a fifth of them replaced by an extreme."""
        lo = np.asarray(lo, np.int64).reshape(-1, 1)
        hi = np.asarray(hi, np.int64).reshape(-1, 1)
        n = max(lo.shape[0], hi.shape[0])
        span = (hi - lo + 1).astype(np.float64)
        v = lo + np.floor(rng.random((n, lanes)) * span).astype(np.int64)
        pick = rng.random((n, lanes))
        v = np.where(pick < 0.1, lo, np.where(pick < 0.2, hi, v))
        v[0] = np.broadcast_to(lo[0], (lanes,))
        if n > 1:
            v[1] = np.broadcast_to(hi[min(1, hi.shape[0] - 1)], (lanes,))
        return v

    def _extreme_segments(self, x_lo: int, x_hi: int, w_int: np.ndarray) -> None:
        """Make the first two accumulations (``depth`` vectors each) the largest products of
        either sign in every lane, so the accumulator's width rule is met with equality where
        the extremes allow it.  With baked weights the activation signs follow each lane."""
        cfg = self.cfg
        d = cfg.depth
        # the activation codes of the smallest and the largest value (xnor: 1 is -1)
        lo_val, hi_val = cfg.pe_kind.x_values(cfg, np.array([x_lo, x_hi]))
        x_min, x_max = (x_lo, x_hi) if lo_val <= hi_val else (x_hi, x_lo)
        big = x_lo if abs(lo_val) > abs(hi_val) else x_hi        # largest magnitude
        big_val = lo_val if big == x_lo else hi_val
        if cfg.weights is None:
            codes = np.flatnonzero(~cfg.scheme.invalid_codes(np.arange(1 << cfg.w_bits)))
            vals = cfg.scheme.decode(codes)
            w_pos, w_neg = codes[np.argmax(vals)], codes[np.argmin(vals)]
            self.x[:2 * d] = big
            self.w[:d] = w_pos if big_val > 0 else w_neg
            self.w[d:2 * d] = w_neg if big_val > 0 else w_pos
        else:
            sign = np.sign(w_int[0])
            self.x[:d] = np.where(sign < 0, x_min, x_max)
            self.x[d:2 * d] = np.where(sign < 0, x_max, x_min)

    def words(self) -> list[int]:
        return pack_inputs(self.cfg, self.x, self.w, self.first, self.last)

    def cycles(self) -> np.ndarray:
        """Bit-plane steps (cycles) of each vector: ``w_prec * x_prec``; 1 otherwise."""
        if self.w_prec is None:
            return np.ones(self.first.size, np.int64)
        wp = np.where(self.w_prec == 0, self.cfg.w_bits, self.w_prec)
        xp = np.where(self.x_prec == 0, self.cfg.a_bits, self.x_prec)
        return wp * xp


class Model:
    """The numpy golden model: :meth:`rtl_gen.hw.pe.PEConfig.reference` (the numerics, then
    the framing) on the stimulus."""

    def __init__(self, cfg: PEConfig):
        self.cfg = cfg

    def outputs(self, stim: Stimulus) -> list[int]:
        precs = {"w_prec": stim.w_prec, "x_prec": stim.x_prec} \
            if self.cfg.run_time_precision else {}
        w = stim.w if self.cfg.weights is None else None
        return [int(v) for v in self.cfg.reference(stim.x, w, stim.first, stim.last,
                                                    **precs)]


class Driver:
    """Presents whole payload words with random bubbles; records each vector's accept edge
    (and, for the cycle model, the edge at which it was first presented)."""

    def __init__(self, dut, words: list[int], bubbles: np.ndarray, precs=None):
        self.dut = dut
        self.words = words
        self.bubbles = bubbles.tolist()
        self.precs = precs
        self.accepted: list[int] = []
        self.presented: list[int] = []

    async def run(self) -> None:
        dut = self.dut
        valid, payload, ready = dut.i__valid, dut.i__payload, dut.i__ready
        fall, settle = FallingEdge(dut.clk), ReadOnly()
        k, idle, presenting = 0, 0, False
        n = len(self.words)
        while k < n:
            await fall
            if not presenting:
                if idle < self.bubbles[k]:
                    idle += 1
                    valid.value = 0
                    continue
                idle = 0
                payload.value = self.words[k]
                if self.precs is not None:
                    dut.w_prec.value = self.precs[0][k]
                    dut.x_prec.value = self.precs[1][k]
                valid.value = 1
                presenting = True
                self.presented.append(_edge_after(get_sim_time("ns")))
            await settle
            if ready.value:
                self.accepted.append(_edge_after(get_sim_time("ns")))
                presenting = False
                k += 1
        await fall
        valid.value = 0


class Monitor:
    """Collects ``(edge, o.payload as signed)`` for every cycle with ``o.valid`` high."""

    def __init__(self, dut):
        self.dut = dut
        self.seen: list[tuple[int, int]] = []

    async def run(self) -> None:
        dut = self.dut
        valid, payload = dut.o__valid, dut.o__payload
        fall, settle = FallingEdge(dut.clk), ReadOnly()
        while True:
            await fall
            await settle
            if valid.value:
                # o.valid seen before edge e + 1 went high at edge e
                self.seen.append((_edge_after(get_sim_time("ns")) - 1,
                                  payload.value.to_signed()))


def latencies(unit: DotProductUnit) -> dict[str, int]:
    """The unit's latency contract as test parameters: ``{"w_prec,x_prec": edges}`` for
    every bit-plane precision pair (``"0,0"`` for the full precision), read from the unit's
    own ``latency``/``latency_at`` on the pytest side, where the unit was elaborated."""
    cfg = unit.config
    table = {"0,0": unit.latency}
    if cfg.run_time_precision:
        for a in range(1, cfg.w_bits + 1):
            for b in range(1, cfg.a_bits + 1):
                table[f"{a},{b}"] = unit.latency_at(a, b)
    return table


class Checker:
    """Compares the monitor's outputs and timing with the model, integer for integer."""

    def __init__(self, cfg: PEConfig, stim: Stimulus, latency: dict[str, int]):
        self.cfg = cfg
        self.stim = stim
        self.latency = latency

    def check(self, driver: Driver, monitor: Monitor) -> None:
        cfg, stim = self.cfg, self.stim
        n = stim.first.size
        assert len(driver.accepted) == n, f"{len(driver.accepted)} of {n} vectors accepted"
        expected = Model(cfg).outputs(stim)
        got = [v for _, v in monitor.seen]
        assert len(got) == int(stim.last.sum()), (
            f"{len(got)} outputs for {int(stim.last.sum())} last vectors")
        bad = [j for j, (a, b) in enumerate(zip(got, expected, strict=True)) if a != b]
        ends = np.flatnonzero(stim.last)
        if bad:
            j = bad[0]
            starts = np.flatnonzero(stim.first[:ends[j] + 1])
            raise AssertionError(
                f"{len(bad)} of {len(got)} outputs differ; first is output {j} (vectors "
                f"{int(starts[-1])}..{int(ends[j])}): hardware {got[j]}, model {expected[j]}")
        steps = stim.cycles()
        accepted = np.array(driver.accepted)
        out_edges = np.array([e for e, _ in monitor.seen])
        if cfg.run_time_precision:
            wp = np.where(stim.w_prec == 0, cfg.w_bits, stim.w_prec)
            xp = np.where(stim.x_prec == 0, cfg.a_bits, stim.x_prec)
            latency = np.array([self.latency[f"{a},{b}"]
                                for a, b in zip(wp[ends], xp[ends], strict=True)])
            # cycle model: a vector is taken when presented, or when the previous one's
            # w_prec * x_prec steps are done, whichever is later
            want = np.maximum(np.array(driver.presented[1:]), accepted[:-1] + steps[:-1])
            late = np.flatnonzero(accepted[1:] != want)
            assert late.size == 0, (
                f"vector {int(late[0]) + 1} accepted at edge {int(accepted[late[0] + 1])}, "
                f"expected {int(want[late[0]])} ({int(steps[late[0]])} steps for vector "
                f"{int(late[0])}, {late.size} vectors off)")
        else:
            latency = np.full(ends.size, self.latency["0,0"])
            assert accepted.tolist() == driver.presented, "a single-cycle unit held off a vector"
        gap = out_edges - accepted[ends]
        off = np.flatnonzero(gap != latency)
        assert off.size == 0, (
            f"output {int(off[0])} came {int(gap[off[0]])} edges after its last vector, "
            f"latency is {int(latency[off[0]])} ({off.size} outputs off)")


@cocotb.test()
async def dot_products(dut):
    """Random vectors with bubbles and framing; outputs, counts and timing as the model."""
    p = test_params()
    cfg = PEConfig(**{k: tuple(v) if isinstance(v, list) else v
                      for k, v in p["config"].items()})
    stim = Stimulus(cfg, int(p["vectors"]), int(p["seed"]))
    rng = np.random.default_rng(int(p["seed"]) + 1)
    n = stim.first.size
    bubbles = np.where(rng.random(n) < float(p.get("bubble", 0.25)),
                       rng.integers(1, 4, n), 0)
    precs = None if stim.w_prec is None else (stim.w_prec.tolist(), stim.x_prec.tolist())

    Clock(dut.clk, PERIOD_NS, unit="ns").start(start_high=True)
    dut.rst.value = 1
    dut.i__valid.value = 0
    dut.i__payload.value = 0
    if precs is not None:
        dut.w_prec.value = cfg.w_bits
        dut.x_prec.value = cfg.a_bits
    await ClockCycles(dut.clk, 2)
    await FallingEdge(dut.clk)
    dut.rst.value = 0

    driver = Driver(dut, stim.words(), bubbles, precs)
    monitor = Monitor(dut)
    watch = cocotb.start_soon(monitor.run())
    await driver.run()
    await ClockCycles(dut.clk, int(stim.cycles().max()) + cfg.pipeline + 4)
    watch.cancel()
    Checker(cfg, stim, p["latency"]).check(driver, monitor)
    dut._log.info("%s: %d vectors, %d outputs, %d cycles checked", cfg.name, n,
                  len(monitor.seen), driver.accepted[-1])
