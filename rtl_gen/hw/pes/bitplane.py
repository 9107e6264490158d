"""``bitplane``: EBS binary decomposition, one AND + popcount over the lanes per bit-plane
pair, ``w_prec * x_prec`` cycles per vector with both precisions run-time inputs.

The unit accepts a vector, then walks its ``M * K`` plane pairs, one per cycle, ``i.ready``
low meanwhile (high again in the final step, so vectors stream back to back): its latency is
``M * K + pipeline`` edges.
"""

from __future__ import annotations

import numpy as np
from amaranth import Mux, Signal, signed
from amaranth.lib import data
from amaranth.lib.wiring import In

from ...numerics.bitplane import bitplane_dot
from .kit import PEKind, Term, check_int, negate_if, pipeline_stage, popcount_of


class BitPlanePE(PEKind):
    name = "bitplane"
    title = "bit-plane"
    bakeable = False
    run_time_precision = True

    def check(self, cfg):
        check_int("bit-plane weight precision", cfg.w_bits, 1, 16)
        check_int("bit-plane activation precision", cfg.a_bits, 1, 16)

    def widths(self):
        return tuple(range(1, 17))

    def weight_shape(self, cfg):
        return signed(cfg.w_bits)

    def w_max(self, cfg):
        return 1 << (cfg.w_bits - 1)

    def cycles_per_vector(self, cfg):
        return cfg.w_bits * cfg.a_bits

    def ports(self, cfg):
        return {"w_prec": In(range(1, cfg.w_bits + 1)),
                "x_prec": In(range(1, cfg.a_bits + 1))}

    def sums(self, cfg, x, w, w_prec, x_prec):
        return np.array([
            bitplane_dot(xv, wv, x_bits=int(b), x_signed=cfg.a_signed, w_bits=int(a),
                         w_signed=True)
            for xv, wv, a, b in zip(x, w, w_prec, x_prec, strict=True)], dtype=np.int64)

    def front(self, unit, m):
        """Sequencer over the ``M * K`` plane pairs; AND + popcount + shift each step."""
        cfg = unit.config
        lanes = cfg.lanes
        xr = Signal(data.ArrayLayout(cfg.activation_shape, lanes), reset_less=True)
        wr = Signal(data.ArrayLayout(signed(cfg.w_bits), lanes), reset_less=True)
        busy = Signal()
        first_r, last_r = Signal(), Signal()
        mi = Signal(range(cfg.w_bits), reset_less=True)
        ki = Signal(range(cfg.a_bits), reset_less=True)
        m_top = Signal(range(cfg.w_bits), reset_less=True)   # M - 1
        k_top = Signal(range(cfg.a_bits), reset_less=True)   # K - 1

        def top(prec, most):
            return Mux((prec == 0) | (prec > most), most - 1, prec - 1)

        final = Signal()
        m.d.comb += [final.eq(busy & (mi == m_top) & (ki == k_top)),
                     unit.i.ready.eq(~busy | final)]
        with m.If(unit.i.valid & unit.i.ready):
            m.d.sync += [xr.eq(unit.i.payload.x), wr.eq(unit.i.payload.w),
                         first_r.eq(unit.i.payload.first), last_r.eq(unit.i.payload.last),
                         mi.eq(0), ki.eq(0), busy.eq(1),
                         m_top.eq(top(unit.w_prec, cfg.w_bits)),
                         k_top.eq(top(unit.x_prec, cfg.a_bits))]
        with m.Elif(final):
            m.d.sync += busy.eq(0)
        with m.Elif(busy):
            with m.If(ki == k_top):
                m.d.sync += [ki.eq(0), mi.eq(mi + 1)]
            with m.Else():
                m.d.sync += ki.eq(ki + 1)
        ands = [wr[lane].bit_select(mi, 1) & xr[lane].bit_select(ki, 1)
                for lane in range(lanes)]
        count = popcount_of(m, ands)
        neg = (mi == m_top) ^ ((ki == k_top) if cfg.a_signed else 0)
        total = negate_if(neg, count << (mi + ki))
        first = first_r & (mi == 0) & (ki == 0)
        ctrl = (busy, first, final & last_r)
        for _ in range(cfg.pipeline):
            [total], ctrl = pipeline_stage(m, [total], ctrl)
        return Term(total), ctrl


KIND = BitPlanePE()
