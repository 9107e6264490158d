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

Driver, monitors and checker are those of :mod:`sim.scoreboard`; the two families differ
only in the parameters.
"""

from __future__ import annotations

import json

import cocotb
import numpy as np

from sim.runner import test_params
from sim.scoreboard import Driver, Expected, Scoreboard


def pack_words(words, per_beat: int, bits: int) -> list[int]:
    """``per_beat`` consecutive codes per word, code ``j`` of a word in bits
    ``j*bits .. j*bits + bits - 1`` (two's complement for negative codes)."""
    codes = [int(w) & ((1 << bits) - 1) for w in np.asarray(words, np.int64).tolist()]
    if len(codes) % per_beat:
        raise ValueError(f"{len(codes)} codes do not split into words of {per_beat}")
    return [sum(c << (j * bits) for j, c in enumerate(codes[i:i + per_beat]))
            for i in range(0, len(codes), per_beat)]


@cocotb.test()
async def network_matches_golden(dut):
    p = test_params()
    expected = Expected.from_params(p)
    board = Scoreboard(dut, expected, gap=p["gap"], stall=p["stall"], seed=p["seed"],
                       max_cycles=p.get("max_cycles"))
    board.checker.unchecked_layers = frozenset(p.get("unchecked_layers", ()))
    per_beat = p.get("in_per_beat", 1)
    if per_beat > 1:  # the same traffic pattern, P codes a transfer
        board.driver = Driver(dut, "i", pack_words(expected.words(), per_beat, p["in_bits"]),
                              gap=p["gap"], rng=board.driver.rng)
    await board.reset(p.get("controls"))
    observed = await board.run()
    logits = board.checker.check(observed)  # raises Mismatch on the first difference
    if p.get("result_file"):
        with open(p["result_file"], "w") as f:
            json.dump({"images": expected.images, "cycles": observed.cycles,
                       "layer_cycles": observed.layer_cycles,
                       "classes": observed.classes[:expected.images],
                       "logits": logits.tolist()}, f)
