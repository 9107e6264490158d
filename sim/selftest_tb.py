"""cocotb testbench of the runner's self-test design: a registered adder ``o = a + b``.

The design (built in ``tests/test_sim_runner.py``) has ports ``a``, ``b`` (unsigned, ``width``
bits) and ``o`` (``width + 1`` bits), registered once.  Parameters (``sim.runner.test_params``):
``vectors`` (how many), ``seed``, ``width`` and ``model_offset``: added to the model's sum so a
test of the runner can make the checker fail on purpose and see the failure reported.
"""

from __future__ import annotations

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly

from sim.runner import test_params


@cocotb.test()
async def registered_adder(dut):
    """Each output equals the sum of the inputs driven one clock earlier."""
    p = test_params()
    n, width, offset = int(p["vectors"]), int(p["width"]), int(p.get("model_offset", 0))
    rng = np.random.default_rng(int(p["seed"]))
    a = rng.integers(0, 1 << width, n).tolist()
    b = rng.integers(0, 1 << width, n).tolist()
    a[:2], b[:2] = [0, (1 << width) - 1], [0, (1 << width) - 1]  # the extremes
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    dut.a.value = 0
    dut.b.value = 0
    await FallingEdge(dut.clk)
    dut.rst.value = 0
    seen = []
    for k in range(n + 1):
        if k < n:
            dut.a.value = a[k]
            dut.b.value = b[k]
        await ReadOnly()
        if k > 0:
            seen.append(dut.o.value.to_unsigned())
        await FallingEdge(dut.clk)
    expected = [x + y + offset for x, y in zip(a, b, strict=True)]
    bad = [k for k in range(n) if seen[k] != expected[k]]
    assert not bad, (f"{len(bad)} of {n} sums wrong, first at vector {bad[0]}: "
                     f"{a[bad[0]]} + {b[bad[0]]} gave {seen[bad[0]]}, model {expected[bad[0]]}")
    dut._log.info("%d sums checked", n)


@cocotb.test()
async def reports_parameters(dut):
    """The parameters arrive unchanged (a nested value survives the JSON round trip)."""
    p = test_params()
    assert p.get("nested", {"k": [1, 2]}) == {"k": [1, 2]}, p
