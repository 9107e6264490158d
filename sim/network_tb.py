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
``result_file``
    Where to write the measured ``images``, ``cycles``, ``layer_cycles``, ``classes`` and
    ``logits`` (the hardware's, as ``(image, logit)`` integers or fp32 bit patterns).

Driver, monitors and checker are those of :mod:`sim.scoreboard`; the two families differ
only in the parameters.
"""

from __future__ import annotations

import json

import cocotb

from sim.runner import test_params
from sim.scoreboard import Expected, Scoreboard


@cocotb.test()
async def network_matches_golden(dut):
    p = test_params()
    expected = Expected.from_params(p)
    board = Scoreboard(dut, expected, gap=p["gap"], stall=p["stall"], seed=p["seed"],
                       max_cycles=p.get("max_cycles"))
    await board.reset(p.get("controls"))
    observed = await board.run()
    logits = board.checker.check(observed)  # raises Mismatch on the first difference
    if p.get("result_file"):
        with open(p["result_file"], "w") as f:
            json.dump({"images": expected.images, "cycles": observed.cycles,
                       "layer_cycles": observed.layer_cycles,
                       "classes": observed.classes[:expected.images],
                       "logits": logits.tolist()}, f)
