"""Driving and taking ``amaranth.lib.stream`` ports in ``amaranth.sim`` testbenches.

:func:`stream_put` sends values on an input stream (with optional bubbles), :func:`stream_get`
takes transfers from an output stream (with optional back-pressure) and lets the caller look
at other ports after every clock edge (:func:`watch`: record each change of some ports);
:func:`simulate` runs testbenches on a design with a clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from amaranth.sim import Simulator

__all__ = ["simulate", "stream_get", "stream_put", "watch"]


def simulate(dut, *testbenches, period: float = 1e-6) -> None:
    """Run ``testbenches`` (async functions of ``ctx``) on ``dut`` with a clock."""
    sim = Simulator(dut)
    sim.add_clock(period)
    for bench in testbenches:
        sim.add_testbench(bench)
    sim.run()


def watch(ports, seen: list) -> Callable:
    """An ``each_cycle`` for :func:`stream_get` that appends ``(index, value)`` to ``seen``
    each time port ``index`` of ``ports`` takes a new value (starting from 0)."""
    last = [0] * len(ports)

    def look(ctx):
        for i, port in enumerate(ports):
            v = ctx.get(port)
            if v != last[i]:
                seen.append((i, v))
                last[i] = v
    return look


async def stream_put(ctx, port, values: Iterable, *,
                     bubbles: Callable[[], int] | None = None) -> None:
    """Send ``values`` on ``port`` (``valid``/``ready``/``payload``), one transfer each.

    ``bubbles()``, when given, is how many cycles ``valid`` stays low before each value.
    ``valid`` is low again after the last transfer.
    """
    for value in values:
        if bubbles is not None:
            ctx.set(port.valid, 0)
            for _ in range(int(bubbles())):
                await ctx.tick()
        ctx.set(port.payload, int(value))
        ctx.set(port.valid, 1)
        await ctx.tick().until(port.ready)
    ctx.set(port.valid, 0)


async def stream_get(ctx, port, count: int, *, ready: Callable[[], int] | None = None,
                     each_cycle: Callable | None = None, tail: int = 0) -> list:
    """Take ``count`` transfers from ``port``; returns ``[(cycle, payload), ...]``, the cycle
    counted from the first edge (0).

    ``ready()``, when given, is the ``ready`` for each cycle (default always 1).
    ``each_cycle(ctx)`` runs after every clock edge (values read with ``ctx.get`` are those
    after the edge), also during ``tail`` more cycles after the last transfer.
    """
    got = []
    cycle = 0
    while len(got) < count:
        ctx.set(port.ready, 1 if ready is None else int(ready()))
        _clk, _rst, valid, rdy, payload = await ctx.tick().sample(
            port.valid, port.ready, port.payload)
        if valid and rdy:
            got.append((cycle, payload))
        if each_cycle is not None:
            each_cycle(ctx)
        cycle += 1
    for _ in range(tail):
        await ctx.tick()
        if each_cycle is not None:
            each_cycle(ctx)
    return got
