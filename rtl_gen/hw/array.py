"""The systolic array: an ``R x C`` grid of one PE kind, output-stationary.

::

              w[0]    w[1]        w[C-1]        (weight lanes, skewed: column c waits c)
               │       │            │
    x[0] ──► PE(0,0)─►PE(0,1)─► … ─►PE(0,C-1)   activations move right, one PE a cycle
               │       │            │            weights move down, one PE a cycle
    x[1] ─┐►PE(1,0)─►PE(1,1)─► … ─►PE(1,C-1)   (row r waits r)
    …      │       │            │
    x[R-1]►PE(R-1,0) …           PE(R-1,C-1)

Every PE holds its own output (output-stationary): PE ``(r, c)`` accumulates
``x[r] . w[c]`` over the ``k_steps`` steps of a tile, framed by ``first``/``last`` flags
that travel with the activations, and its result is captured into ``res[r * C + c]``.
Row ``r`` is one input vector of a batch of ``R``; column ``c`` one output channel of a
tile of ``C``.  Each PE may itself be a lane-parallel unit of ``L`` lanes, so a step
carries ``L`` activations per row and ``L`` weights per column.

Timing (``lat`` = the PE's latency): the operands of step ``s`` of a tile, presented in
cycle ``t``, reach PE ``(r, c)`` in cycle ``t + r + c``; the step with ``last`` presented in
cycle ``t`` makes ``done`` high in cycle ``t + R + C + lat``, when every ``res`` holds the
tile's results.  ``res[r * C + c]`` then stays put until the next tile's result for that
PE, ``P`` cycles later for tiles issued ``P`` apart.

Utilization of one tile of ``k_steps`` steps issued every ``P`` cycles is ``k_steps / P``
in steady state; fill and drain (``R + C + lat`` cycles) are paid once per batch when
tiles are issued back to back.
"""

from __future__ import annotations

import dataclasses

from amaranth import Module, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .pe import DotProductUnit, PEConfig, input_layout

__all__ = ["SystolicArray"]


class SystolicArray(wiring.Component):
    """``rows x cols`` processing elements of one configuration, output-stationary.

    Parameters
    ----------
    pe:
        The configuration of every PE (``weights`` must be ``None``: weights stream in).
    rows, cols:
        ``R`` and ``C``.
    broadcast:
        Operands broadcast instead of skewed: row ``r``'s activations go to every PE of the
        row and column ``c``'s weights to every PE of the column in the same cycle (no skew
        registers; fan-out ``C`` and ``R``); ``done`` comes ``2 + latency`` cycles after
        ``last``.
    shift:
        One row only: the results shift out (``res[c]`` takes ``res[c + 1]`` in each cycle
        ``shift`` is high and no new tile lands), so a drain reads them all at ``res[0]``
        in column order, without a multiplexer over the columns.

    Members
    -------
    x : In(ArrayLayout(ArrayLayout(activation, L), R))
        One step's activations per row.
    w : In(ArrayLayout(ArrayLayout(code, L), C))
        One step's weight codes per column.
    valid, first, last : In(1)
        The step is real; it starts a tile; it ends a tile.
    res : Out(ArrayLayout(signed(acc_bits), R * C))
        The results of the last finished tile, ``res[r * C + c]``.
    done : Out(1)
        High for one cycle when every ``res`` holds a new tile's results.
    shift : In(1)
        With ``shift``: move the results one column towards ``res[0]``.
    """

    def __init__(self, pe: PEConfig, *, rows: int, cols: int, broadcast: bool = False,
                 shift: bool = False):
        if pe.weights is not None:
            raise ValueError("a systolic array streams its weights; the PE cannot bake them")
        if pe.cycles_per_vector != 1:
            raise ValueError(f"{pe.pe_kind.title} PEs take several cycles per step; use them "
                             "alone")
        for name, v in (("rows", rows), ("cols", cols)):
            if not isinstance(v, int) or not 1 <= v <= 256:
                raise ValueError(f"{name} must be 1..256, not {v!r}")
        self._pe, self._rows, self._cols = pe, rows, cols
        self._broadcast = bool(broadcast)
        self._shift = bool(shift)
        if self._shift and (rows != 1 or not broadcast):
            raise ValueError("a shifting drain needs one row of PEs, broadcast")
        layout = dict(pe_layout(pe))
        super().__init__({
            "x": In(data.ArrayLayout(layout["x"], rows)),
            "w": In(data.ArrayLayout(layout["w"], cols)),
            "valid": In(1), "first": In(1), "last": In(1),
            "res": Out(data.ArrayLayout(signed(pe.acc_bits), rows * cols)),
            "done": Out(1),
            **({"shift": In(1)} if shift else {}),
        })

    @property
    def latency(self) -> int:
        """Cycles from presenting a ``last`` step to ``done`` high."""
        if self._broadcast:
            return 2 + self._pe.latency
        return self._rows + self._cols + self._pe.latency

    def elaborate(self, platform):
        m = Module()
        pe, rows, cols = self._pe, self._rows, self._cols
        layout = dict(pe_layout(pe))

        def delayed(value, shape, n, name):
            if self._broadcast:  # every PE takes the step's operands in the same cycle
                return value
            for i in range(n):
                r = Signal(shape, name=f"{name}_d{i}", reset_less=True)
                m.d.sync += r.eq(value)
                value = r
            return value

        flags = data.StructLayout({"valid": 1, "first": 1, "last": 1})
        # x_in[r][c], flags_in[r][c]: what PE (r, c) sees; w_in[r][c] likewise
        x_in = [[None] * cols for _ in range(rows)]
        f_in = [[None] * cols for _ in range(rows)]
        w_in = [[None] * cols for _ in range(rows)]
        now = Signal(flags)
        m.d.comb += [now.valid.eq(self.valid), now.first.eq(self.first),
                     now.last.eq(self.last)]
        for r in range(rows):
            x_in[r][0] = delayed(self.x[r], layout["x"], r, f"x{r}")
            f_in[r][0] = delayed(now, flags, r, f"f{r}")
            for c in range(1, cols):
                x_in[r][c] = delayed(x_in[r][c - 1], layout["x"], 1, f"x{r}_{c}")
                f_in[r][c] = delayed(f_in[r][c - 1], flags, 1, f"f{r}_{c}")
        for c in range(cols):
            w_in[0][c] = delayed(self.w[c], layout["w"], c, f"w{c}")
            for r in range(1, rows):
                w_in[r][c] = delayed(w_in[r - 1][c], layout["w"], 1, f"w{r}_{c}")

        for r in range(rows):
            for c in range(cols):
                unit = DotProductUnit(pe)
                m.submodules[f"pe_{r}_{c}"] = unit
                f = f_in[r][c]
                m.d.comb += [unit.i.valid.eq(f.valid), unit.i.payload.first.eq(f.first),
                             unit.i.payload.last.eq(f.last), unit.i.payload.x.eq(x_in[r][c]),
                             unit.i.payload.w.eq(w_in[r][c])]
                if self._shift:
                    with m.If(unit.o.valid):
                        m.d.sync += self.res[c].eq(unit.o.payload)
                    with m.Elif(self.shift):
                        if c + 1 < cols:
                            m.d.sync += self.res[c].eq(self.res[c + 1])
                else:
                    with m.If(unit.o.valid):
                        m.d.sync += self.res[r * cols + c].eq(unit.o.payload)
                if r == rows - 1 and c == cols - 1:
                    m.d.sync += self.done.eq(unit.o.valid)
        return m


def pe_layout(pe: PEConfig):
    """``(name, shape)`` of the per-step operands of one PE: ``x`` lanes and ``w`` lanes."""
    layout = input_layout(dataclasses.replace(pe, weights=None))
    return [("x", layout["x"].shape), ("w", layout["w"].shape)]
