"""``apot``: one shift per APoT base set, summed, then a conditional negation."""

from __future__ import annotations

from amaranth import Mux

from .kit import PEKind, sum_tree, xor_negate


class AdditivePowerOfTwoPE(PEKind):
    name = "apot"
    weight_scheme = "apot"
    serves = ("apot",)
    logic_product = True

    def product(self, cfg, x, code):
        b = cfg.w_bits
        offset = b - 1
        terms = []
        for units in cfg.scheme.apot_fields:
            wdt = (len(units) - 1).bit_length()
            offset -= wdt
            field = code[offset:offset + wdt]
            term = 0
            for idx, unit in enumerate(units):
                if unit:
                    term = Mux(field == idx, x << (unit.bit_length() - 1), term)
            terms.append(term)
        return xor_negate(code[b - 1], sum_tree(terms))


KIND = AdditivePowerOfTwoPE()
