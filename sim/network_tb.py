"""cocotb testbench of a generated network of either family
(:class:`rtl_gen.hw.network.NetworkEngine`, :class:`rtl_gen.hw.float_layer.FloatNetworkEngine`).

Run by :func:`sim.verify.verify_network` (``tests/test_network_cocotb.py``,
``tests/test_float_network_cocotb.py``, ``tests/test_tr_cocotb.py``, ``rtl-gen verify``)
through :mod:`sim.runner`.  The parameters (:func:`sim.runner.test_params`) are an
:class:`sim.scoreboard.Expected` (:meth:`~sim.scoreboard.Expected.to_params`: input words,
the golden model's logits and classes, the cycle model's per-layer cycles, rows, emission
order, logit format) plus:

``controls``
    Control input ports set before reset, name → value (the term-revealing ``tr_mode``,
    ``tr_k``, ``tr_s`` of an integer network with TR layers); may be empty.
``gap``, ``stall``, ``seed``
    The traffic pattern: chance of an idle cycle before each input word, chance that the
    logit stream is not ready in a cycle, and the seed of both.
``max_cycles``
    Bound of the run (a design that stops is reported, not waited for).
``unchecked_layers``
    Optional: layers whose cycle counters are not compared (held back by a slower later
    layer, :func:`rtl_gen.design.timing.throttled_layers`).
``in_per_beat``, ``in_bits``
    Optional: input codes per transfer on ``i`` and the bits of one (an integer network
    whose port takes ``P > 1`` codes a cycle gets ``P`` consecutive codes packed per word,
    the first in the lowest bits); absent or 1: one code per transfer.
``result_file``
    Where to write the measured ``images``, ``cycles``, ``layer_cycles``, ``classes`` and
    ``logits`` (the hardware's, as ``(image, logit)`` integers or fp32 bit patterns).

``wide``
    Absent for the engines above.  For a design that takes a whole input vector per
    transfer and gives all its logits per transfer
    (:class:`rtl_gen.hw.unrolled.UnrolledNetworkEngine`): ``features`` and ``in_bits`` of
    the input payload (field ``k`` in bits ``k*in_bits`` up), ``classes`` and ``out_bits``
    of the logit payload (signed fields), and the model's ``latency`` (cycles from a
    vector's transfer to its logits' transfer).  Without gaps and stalls every vector must
    be taken in the cycle after the one before (interval 1) and every result must leave
    exactly ``latency`` cycles after its vector; with them, never sooner.

Driver, monitors and checker are those of :mod:`sim.scoreboard`; the two families differ
only in the parameters, the wide ports only in how words are packed.
"""

from __future__ import annotations

import json

import cocotb
import numpy as np

from sim.runner import test_params
from sim.scoreboard import (
    Driver,
    Expected,
    Mismatch,
    Scoreboard,
    StimulusDriver,
    StreamMonitor,
)


def pack_words(words, per_beat: int, bits: int) -> list[int]:
    """``per_beat`` consecutive codes per word, code ``j`` of a word in bits
    ``j*bits .. j*bits + bits - 1`` (two's complement for negative codes)."""
    codes = [int(w) & ((1 << bits) - 1) for w in np.asarray(words, np.int64).tolist()]
    if len(codes) % per_beat:
        raise ValueError(f"{len(codes)} codes do not split into words of {per_beat}")
    return [sum(c << (j * bits) for j, c in enumerate(codes[i:i + per_beat]))
            for i in range(0, len(codes), per_beat)]


class WideDriver(Driver):
    """One whole input vector per transfer (fields of ``bits`` packed from bit 0); records
    the ``cycles`` counter of every transfer in :attr:`taken`."""

    def __init__(self, dut, name, inputs, *, bits: int, gap=0.0, rng=None):
        super().__init__(dut, name, [], gap=gap, rng=rng)
        mask = (1 << bits) - 1
        self.words = [sum((int(v) & mask) << (bits * k) for k, v in enumerate(row))
                      for row in inputs]
        self.taken: list[int] = []

    def sample(self) -> None:
        presenting = self.presenting
        super().sample()
        if presenting and not self.presenting:
            self.taken.append(int(self.counter.value))


class WideMonitor(StreamMonitor):
    """Every transfer's ``fields`` signed logits of ``bits`` (in :attr:`values`, in index
    order); the ``cycles`` counter of every transfer in :attr:`given`."""

    def __init__(self, dut, name, *, fields: int, bits: int, stall=0.0, rng=None):
        super().__init__(dut, name, signed=False, stall=stall, rng=rng)
        self.fields, self.bits = fields, bits
        self.given: list[int] = []

    def sample(self) -> None:
        if self._ready and self.valid.value:
            word = self.payload.value.to_unsigned()
            mask, half = (1 << self.bits) - 1, 1 << (self.bits - 1)
            for c in range(self.fields):
                v = (word >> (self.bits * c)) & mask
                self.values.append(v - (1 << self.bits) if v & half else v)
            self.last_transfer = int(self.counter.value)
            self.given.append(self.last_transfer)


def wide_scoreboard(dut, expected: Expected, wide: dict, **traffic) -> Scoreboard:
    """A :class:`Scoreboard` whose driver and logit monitor use the wide ports."""
    import numpy as np

    board = Scoreboard(dut, expected, **traffic)
    seed = traffic.get("seed", 0)
    board.driver = WideDriver(dut, "i", expected.inputs, bits=wide["in_bits"],
                              gap=traffic.get("gap", 0.0),
                              rng=np.random.default_rng([seed, 0]))
    board.logits = WideMonitor(dut, "o", fields=wide["classes"], bits=wide["out_bits"],
                               stall=traffic.get("stall", 0.0),
                               rng=np.random.default_rng([seed, 1]))
    return board


def check_latency(taken: list[int], given: list[int], latency: int, *, exact: bool) -> int:
    """Each result left ``latency`` cycles after its vector was taken (``exact``: and the
    vectors were taken one a cycle), else :class:`Mismatch`; returns the smallest latency
    seen."""
    if len(taken) != len(given):
        raise Mismatch(f"{len(taken)} vectors were taken and {len(given)} results left")
    waits = [g - t for t, g in zip(taken, given, strict=True)]
    for i, w in enumerate(waits):
        if w < latency or (exact and w != latency):
            raise Mismatch(f"image {i}: its logits left {w} cycles after its vector was "
                           f"taken, the model says {latency}")
    if exact:
        for i in range(1, len(taken)):
            if taken[i] != taken[i - 1] + 1:
                raise Mismatch(f"image {i}: taken {taken[i] - taken[i - 1]} cycles after "
                               f"image {i - 1}, not 1 (interval 1)")
    return min(waits)


@cocotb.test()
async def network_matches_golden(dut):
    p = test_params()
    expected = Expected.from_params(p)
    traffic = {"gap": p["gap"], "stall": p["stall"], "seed": p["seed"],
               "max_cycles": p.get("max_cycles")}
    wide = p.get("wide")
    board = wide_scoreboard(dut, expected, wide, **traffic) if wide else \
        Scoreboard(dut, expected, **traffic)
    board.checker.unchecked_layers = frozenset(p.get("unchecked_layers", ()))
    per_beat = p.get("in_per_beat", 1)
    if per_beat > 1:  # the same traffic pattern, P codes a transfer
        board.driver = Driver(dut, "i", pack_words(expected.words(), per_beat, p["in_bits"]),
                              gap=p["gap"], rng=board.driver.rng)
    depth = p.get("stimulus_depth", 0)
    if depth and not p["gap"] and len(board.driver.words) <= depth:
        board.driver = StimulusDriver(dut, board.driver.words)
    await board.reset(p.get("controls"), clock=not p.get("clock_inside"))
    observed = await board.run()
    logits = board.checker.check(observed)  # raises Mismatch on the first difference
    result = {"images": expected.images, "cycles": observed.cycles,
              "layer_cycles": observed.layer_cycles,
              "classes": observed.classes[:expected.images], "logits": logits.tolist()}
    if wide:
        result["latency"] = check_latency(board.driver.taken, board.logits.given,
                                          wide["latency"],
                                          exact=not (p["gap"] or p["stall"]))
    if p.get("result_file"):
        with open(p["result_file"], "w") as f:
            json.dump(result, f)
