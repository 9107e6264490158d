"""``pot``: one shift and a conditional negation, ``±(x << (F + 1 - c))``, 0 for ``c = 0``."""

from __future__ import annotations

from amaranth import Mux

from .kit import PEKind, xor_negate


class PowerOfTwoPE(PEKind):
    name = "pot"
    weight_scheme = "pot"
    serves = ("pot",)
    logic_product = True

    def product(self, cfg, x, code):
        b = cfg.w_bits
        f = cfg.scheme.pot_frac_bits
        c = code[:b - 1]
        # c = 1..F+1 means x << (F + 1 - c): a barrel shifter of F + 1 positions.
        shift = Mux(c == 0, 0, (f + 1 - c).as_unsigned()[:max(1, f.bit_length())])
        mag = Mux(c == 0, 0, x << shift)
        return xor_negate(code[b - 1], mag)


KIND = PowerOfTwoPE()
