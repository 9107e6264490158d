"""The whole network in hardware: layer engines chained by streams, logits and the class.

::

    i ──► LayerEngine 0 ──► LayerEngine 1 ──► … ──► LayerEngine L-1 ──► o (logits)
          (its own PE kind,   (streams with                            └─► argmax ──► cls
           array shape, ROM)   back-pressure)

Images enter as a stream of input codes, ``R`` images at a time (a batch: ``R`` is the
arrays' row count), image after image, feature after feature.  Logits leave in the last
layer's ``(tile, row, column)`` order: for tile ``t``, image ``r`` of the batch, channel
``t*C + c``; :func:`logit_order` gives that order so a host can put them back.  ``cls``
gives each image's class (the first index of the largest logit) in image order.

Every layer has its own weight scheme and array configuration, so a mixed-precision network
is just a bundle whose layers differ.
"""

from __future__ import annotations

import numpy as np
from amaranth import Array, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..design.golden import LayerTiming, network_interval
from ..design.network import Network
from ..protocol import K_BITS, K_OWN, S_BITS, S_OWN
from .layer import (
    COUNTER_BITS,
    ArrayConfig,
    LayerEngine,
    layer_timing,
)
from .pes.layers import default_array

__all__ = ["NetworkEngine", "default_array", "logit_order", "plan_network"]


def logit_order(n: int, rows: int, cols: int) -> np.ndarray:
    """``(image in batch, channel)`` of each logit in the order the network emits them."""
    order = []
    for t in range(-(-n // cols)):
        for r in range(rows):
            for c in range(cols):
                if t * cols + c < n:
                    order.append((r, t * cols + c))
    return np.array(order, dtype=np.int64)


def plan_network(net: Network, arrays=None, control=None):
    """Validate per-layer array configurations (``None``: :func:`default_array`) and give
    them with each layer's cycle model (term-revealing layers under the run-time
    ``control``, a :class:`~rtl_gen.design.golden.TRControl`; ``None``: the bundle's settings).

    Returns
    -------
    (tuple of ArrayConfig, tuple of LayerTiming)

    Raises
    ------
    TypeError, ValueError
        For a wrong number of configurations, differing row counts, or a layer the
        generator cannot build (the message names it).
    """
    if not isinstance(net, Network):
        raise TypeError(f"net must be a Network, not {net!r}")
    if arrays is None:
        arrays = [default_array(layer.scheme.kind) for layer in net.layers]
    arrays = tuple(arrays)
    if len(arrays) != len(net.layers):
        raise ValueError(f"give one array configuration per layer ({len(net.layers)}), "
                         f"not {len(arrays)}")
    if len({a.rows for a in arrays}) != 1:
        raise ValueError("every layer's array must have the same number of rows (the "
                         f"batch), not {[a.rows for a in arrays]}")
    timings = tuple(layer_timing(layer, a, control)
                    for layer, a in zip(net.layers, arrays, strict=True))
    return arrays, timings


class NetworkEngine(wiring.Component):
    """A :class:`~rtl_gen.design.network.Network` as a chain of :class:`LayerEngine`.

    Parameters
    ----------
    net:
        The network (from a weight bundle).
    arrays:
        One :class:`ArrayConfig` per layer, or ``None`` for :func:`default_array`; every
        layer must have the same ``rows`` (the batch).

    Members
    -------
    i : In(stream.Signature(input code))
    o : Out(stream.Signature(signed(logit width)))
    cls : Out(stream.Signature(class index, always_ready=True))
    cycles : Out(32)
        Clock cycles since reset.
    layer_cycles : Out(ArrayLayout(32, layers))
        Each layer's cycles for its last finished batch (see :class:`LayerEngine`).
    """

    def __init__(self, net: Network, arrays=None):
        try:
            self._configure(net, arrays)
        except (TypeError, ValueError):
            self._MustUse__used = True  # a refused design is not an unused one
            raise
        inp = self._net.input
        last = self._net.layers[-1]
        ports = {
            "i": In(stream.Signature(signed(inp.bits) if inp.signed else unsigned(inp.bits))),
            "o": Out(stream.Signature(signed(last.acc_bits))),
            "cls": Out(stream.Signature(range(max(last.out_features, 2)), always_ready=True)),
            "cycles": Out(COUNTER_BITS),
            "layer_cycles": Out(data.ArrayLayout(COUNTER_BITS, len(self._net.layers))),
        }
        if self.has_tr:  # the term-revealing controls, shared by every TR layer
            ports.update(tr_mode=In(1, init=1), tr_k=In(K_BITS, init=K_OWN),
                         tr_s=In(S_BITS, init=S_OWN))
        super().__init__(ports)

    def _configure(self, net, arrays):
        self._net = net
        self._arrays, self._timings = plan_network(net, arrays)

    @property
    def has_tr(self) -> bool:
        """Whether the network has term-revealing layers (and the ``tr_*`` control ports)."""
        return any(layer.tr is not None for layer in self._net.layers)

    def timings_for(self, control=None) -> tuple[LayerTiming, ...]:
        """The cycle model under a run-time :class:`~rtl_gen.design.golden.TRControl`."""
        return plan_network(self._net, self._arrays, control)[1]

    @property
    def rows(self) -> int:
        return self._arrays[0].rows

    @property
    def arrays(self) -> tuple[ArrayConfig, ...]:
        return self._arrays

    @property
    def timings(self) -> tuple[LayerTiming, ...]:
        return self._timings

    @property
    def interval(self) -> int:
        """Model: cycles between batches in steady state."""
        return network_interval(self._timings, self._net.input.features)

    def logit_order(self) -> np.ndarray:
        last = self._net.layers[-1]
        return logit_order(last.out_features, self.rows, self._arrays[-1].cols)

    def elaborate(self, platform):
        m = Module()
        engines = []
        src_cols = None
        for idx, (layer, array) in enumerate(zip(self._net.layers, self._arrays,
                                                 strict=True)):
            engine = LayerEngine(layer, array, src_cols=src_cols)
            m.submodules[f"layer{idx}_{layer.name}"] = engine
            m.d.comb += self.layer_cycles[idx].eq(engine.cycles)
            if engine.is_tr:
                m.d.comb += [engine.tr_mode.eq(self.tr_mode), engine.tr_k.eq(self.tr_k),
                             engine.tr_s.eq(self.tr_s)]
            engines.append(engine)
            src_cols = array.cols
        wiring.connect(m, wiring.flipped(self.i), engines[0].i)
        for a, b in zip(engines, engines[1:], strict=False):
            wiring.connect(m, a.o, b.i)
        last = engines[-1]
        m.d.comb += [self.o.valid.eq(last.o.valid), self.o.payload.eq(last.o.payload),
                     last.o.ready.eq(self.o.ready)]
        m.d.sync += self.cycles.eq(self.cycles + 1)

        # argmax over each image's logits, which arrive tile by tile, rows interleaved
        n, rows, cols = self._net.layers[-1].out_features, self.rows, self._arrays[-1].cols
        t_i = Signal(range(max(-(-n // cols), 2)))
        r_i = Signal(range(max(rows, 2)))
        c_i = Signal(range(max(cols, 2)))
        ch = Signal(range(n + cols + 1))
        m.d.comb += ch.eq(t_i * cols + c_i)
        best = Array(Signal(signed(len(self.o.payload)), name=f"best{r}", reset_less=True)
                     for r in range(rows))
        arg = Array(Signal(range(max(n, 2)), name=f"arg{r}", reset_less=True)
                    for r in range(rows))
        value = self.o.payload
        with m.If(self.o.valid & self.o.ready):
            with m.If((ch == 0) | (value > best[r_i])):
                m.d.sync += [best[r_i].eq(value), arg[r_i].eq(ch)]
            done = ch == n - 1
            m.d.sync += [self.cls.valid.eq(done),
                         self.cls.payload.eq(Mux(done & ((ch == 0) | (value > best[r_i])),
                                                 ch, arg[r_i]))]
            last_col = (c_i == cols - 1) | (ch == n - 1)
            with m.If(last_col):
                m.d.sync += c_i.eq(0)
                with m.If(r_i == rows - 1):
                    m.d.sync += [r_i.eq(0),
                                 t_i.eq(Mux(ch == n - 1, 0, t_i + 1))]
                with m.Else():
                    m.d.sync += r_i.eq(r_i + 1)
            with m.Else():
                m.d.sync += c_i.eq(c_i + 1)
        with m.Else():
            m.d.sync += self.cls.valid.eq(0)
        return m
