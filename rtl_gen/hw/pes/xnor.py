"""``xnor``: binary weights times binary (±1) activations, XNOR and popcount:
``sum = L - 2 * popcount(x XOR w)`` (code 1 means -1 for both)."""

from __future__ import annotations

import numpy as np
from amaranth import unsigned

from .kit import PEKind, Term, check_int, pipeline_stage, popcount_of, registered_inputs


class XnorPE(PEKind):
    name = "xnor"
    weight_scheme = "binary"

    def check(self, cfg):
        check_int("xnor weight width", cfg.w_bits, 1, 1)
        check_int("xnor activation width", cfg.a_bits, 1, 1)

    def a_widths(self):
        return (1,)

    def activation_shape(self, cfg):
        return unsigned(cfg.a_bits)   # a ±1 code whatever a_signed says

    def x_range(self, cfg):
        return 0, 1

    def x_values(self, cfg, x):
        return cfg.scheme.decode(np.asarray(x))

    def front(self, unit, m):
        cfg = unit.config
        xs, codes, ctrl = registered_inputs(m, unit)
        # sum of ±1 products = L - 2 * popcount(x XOR w) (code 1 means -1)
        diff = [x ^ c for x, c in zip(xs, codes, strict=True)]
        values = [popcount_of(m, diff)]
        if cfg.pipeline:
            values, ctrl = pipeline_stage(m, values, ctrl)
        total = cfg.lanes - (values[0] << 1)
        for _ in range(cfg.pipeline - 1):
            [total], ctrl = pipeline_stage(m, [total], ctrl)
        return Term(total), ctrl


KIND = XnorPE()
