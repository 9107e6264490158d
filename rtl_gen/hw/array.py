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

from amaranth import Const, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .pe import (
    DotProductUnit,
    PEConfig,
    _product,
    _sum_tree,
    input_layout,
)

__all__ = ["SystolicArray", "WeightStationaryArray"]


class SystolicArray(wiring.Component):
    """``rows x cols`` processing elements of one configuration, output-stationary.

    Parameters
    ----------
    pe:
        The configuration of every PE (``weights`` must be ``None``: weights stream in).
    rows, cols:
        ``R`` and ``C``.

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
    """

    def __init__(self, pe: PEConfig, *, rows: int, cols: int):
        if pe.weights is not None:
            raise ValueError("a systolic array streams its weights; the PE cannot bake them")
        if pe.kind == "bitplane":
            raise ValueError("bit-plane PEs take several cycles per step; use them alone")
        for name, v in (("rows", rows), ("cols", cols)):
            if not isinstance(v, int) or not 1 <= v <= 256:
                raise ValueError(f"{name} must be 1..256, not {v!r}")
        self._pe, self._rows, self._cols = pe, rows, cols
        layout = dict(pe_layout(pe))
        super().__init__({
            "x": In(data.ArrayLayout(layout["x"], rows)),
            "w": In(data.ArrayLayout(layout["w"], cols)),
            "valid": In(1), "first": In(1), "last": In(1),
            "res": Out(data.ArrayLayout(signed(pe.acc_bits), rows * cols)),
            "done": Out(1),
        })

    @property
    def latency(self) -> int:
        """Cycles from presenting a ``last`` step to ``done`` high."""
        return self._rows + self._cols + self._pe.latency

    def elaborate(self, platform):
        m = Module()
        pe, rows, cols = self._pe, self._rows, self._cols
        layout = dict(pe_layout(pe))

        def delayed(value, shape, n, name):
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
                with m.If(unit.o.valid):
                    m.d.sync += self.res[r * cols + c].eq(unit.o.payload)
                if r == rows - 1 and c == cols - 1:
                    m.d.sync += self.done.eq(unit.o.valid)
        return m


class WeightStationaryArray(wiring.Component):
    """``rows x cols`` PEs of one configuration, weight-stationary.

    ::

               w[0]   w[1]        w[C-1]     load: weight rows shift down into the
                │      │            │         shadow registers, one row a cycle
      x[0] ──► PE ──► PE ──► … ──► PE          activations move right one PE a cycle
                │ psum │            │          partial sums move down one PE a cycle
      x[1] ─┐► PE ──► PE ──► … ──► PE
      …     │   │      │            │
                ▼      ▼            ▼
               y[0]   y[1]        y[C-1]     (deskewed: all columns of a vector together)

    PE ``(r, c)`` holds the weight codes of input ``r`` (``L`` lanes) and output ``c`` of a
    tile: ``y[c] = sum over r of x[r] . w[r][c]``, one partial sum per input vector.  Each
    PE has an *active* and a *shadow* weight register.  A cycle with ``load`` shifts the
    rows of ``w`` into the shadow registers (the row loaded first ends in the bottom row, so
    load a tile's rows ``R-1`` down to ``0``); a vector presented with ``swap`` makes each
    PE switch to its shadow weights as the vector reaches it, so the next tile loads while
    the current one computes.

    Timing: a vector presented in cycle ``t`` (``valid``) gives ``y`` with ``y_valid`` in
    cycle ``t + R + C - 1`` (:attr:`latency`).  The shadow weights of PE ``(r, c)`` are read
    in cycle ``t_swap + r + c``, so the next tile's loads may start in cycle
    ``t_swap + R + C - 2`` and take ``R`` cycles: a tile of ``B`` vectors (the batch) can
    start every ``P = max(B, 2R + C - 2)`` cycles (:func:`ws_tile_period`).  Utilization is
    ``B / P`` per tile: at batch 1 a weight-stationary grid idles most of the time, and it
    wins over output-stationary only when the batch ``B >= 2R + C - 2`` reuses each loaded
    weight tile (and when the output-stationary drain bound ``R*C + 1`` exceeds the steps of a
    tile).  The array sums ``R`` inputs; a layer of more inputs adds the partial sums of its
    ``ceil(K / (R*L))`` input tiles outside the array.

    Parameters
    ----------
    pe:
        Configuration of every PE (``weights=None``; ``depth >= rows``: a column sums
        ``rows`` PEs of ``lanes`` products each, which sizes the partial sums).  Binary,
        ternary, PoT, APoT and int kinds.
    rows, cols:
        ``R`` and ``C``.
    """

    def __init__(self, pe: PEConfig, *, rows: int, cols: int):
        try:
            _check_ws(pe, rows, cols)
        except ValueError:
            self._MustUse__silence = True   # refused: not an unused design
            raise
        self._pe, self._rows, self._cols = pe, rows, cols
        layout = dict(pe_layout(pe))
        super().__init__({
            "w": In(data.ArrayLayout(layout["w"], cols)), "load": In(1),
            "x": In(data.ArrayLayout(layout["x"], rows)), "valid": In(1), "swap": In(1),
            "y": Out(data.ArrayLayout(signed(pe.acc_bits), cols)), "y_valid": Out(1),
        })

    @property
    def latency(self) -> int:
        """Cycles from presenting a vector to its ``y``: ``R + C - 1``."""
        return self._rows + self._cols - 1

    def elaborate(self, platform):
        m = Module()
        pe, rows, cols = self._pe, self._rows, self._cols
        layout = dict(pe_layout(pe))
        acc = signed(pe.acc_bits)

        def delayed(value, shape, n, name):
            for i in range(n):
                r = Signal(shape, name=f"{name}_d{i}", reset_less=True)
                m.d.sync += r.eq(value)
                value = r
            return value

        flags = data.StructLayout({"valid": 1, "swap": 1})
        now = Signal(flags)
        m.d.comb += [now.valid.eq(self.valid), now.swap.eq(self.swap)]
        shadow = [[Signal(layout["w"], name=f"shadow_{r}_{c}", reset_less=True)
                   for c in range(cols)] for r in range(rows)]
        active = [[Signal(layout["w"], name=f"active_{r}_{c}", reset_less=True)
                   for c in range(cols)] for r in range(rows)]
        with m.If(self.load):
            for c in range(cols):
                m.d.sync += shadow[0][c].eq(self.w[c])
                for r in range(1, rows):
                    m.d.sync += shadow[r][c].eq(shadow[r - 1][c])
        psum_above = [Const(0, acc)] * cols
        for r in range(rows):
            x_in = delayed(self.x[r], layout["x"], r, f"x{r}")
            f_in = delayed(now, flags, r, f"f{r}")
            for c in range(cols):
                if c:
                    x_in = delayed(x_in, layout["x"], 1, f"x{r}_{c}")
                    f_in = delayed(f_in, flags, 1, f"f{r}_{c}")
                swap = f_in.valid & f_in.swap
                with m.If(swap):
                    m.d.sync += active[r][c].eq(shadow[r][c])
                codes = data.View(layout["w"], Mux(swap, shadow[r][c].as_value(),
                                                   active[r][c].as_value()))
                terms = [_product(pe, x_in[lane], codes[lane]) for lane in range(pe.lanes)]
                parts = [t.value for t in terms] + [t.carry for t in terms
                                                    if t.carry is not None]
                psum = Signal(acc, name=f"psum_{r}_{c}", reset_less=True)
                m.d.sync += psum.eq(psum_above[c] + _sum_tree(parts))
                psum_above[c] = psum
            if r == rows - 1:
                last_flags = f_in
        for c in range(cols):
            m.d.comb += self.y[c].eq(delayed(psum_above[c], acc, cols - 1 - c, f"y{c}"))
        y_valid = Signal(name="y_valid_d")
        m.d.sync += y_valid.eq(last_flags.valid)
        m.d.comb += self.y_valid.eq(y_valid)
        return m


def _check_ws(pe: PEConfig, rows: int, cols: int) -> None:
    if pe.weights is not None:
        raise ValueError("a weight-stationary array loads its weights; the PE cannot "
                         "bake them")
    if pe.kind in ("bitplane", "xnor"):
        raise ValueError(f"{pe.kind} PEs are not available in a weight-stationary array")
    for name, v in (("rows", rows), ("cols", cols)):
        if not isinstance(v, int) or not 1 <= v <= 256:
            raise ValueError(f"{name} must be 1..256, not {v!r}")
    if rows > pe.depth:
        raise ValueError(f"the PE's depth ({pe.depth}) must cover the {rows} rows a "
                         "column sums")


def ws_tile_period(rows: int, cols: int, batch: int) -> int:
    """Cycles between tile starts of a :class:`WeightStationaryArray` running ``batch``
    vectors per weight tile: ``max(batch, 2R + C - 2)`` (the next tile's ``R`` loads start
    once the current tile's swap has passed every PE)."""
    return max(batch, 2 * rows + cols - 2)


def pe_layout(pe: PEConfig):
    """``(name, shape)`` of the per-step operands of one PE: ``x`` lanes and ``w`` lanes."""
    layout = input_layout(dataclasses.replace(pe, weights=None))
    return [("x", layout["x"].shape), ("w", layout["w"].shape)]
