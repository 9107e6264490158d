"""``ternary``: add / subtract / skip, code 01 is ``+x``, 11 is ``-x``, 00 is 0."""

from __future__ import annotations

from amaranth import Mux

from .kit import PEKind, xor_negate


class TernaryPE(PEKind):
    name = "ternary"
    weight_scheme = "ternary"
    serves = ("ternary",)
    lanes = 4   # a lane is a mask, an XOR and a carry-in: four of them per PE

    def product(self, cfg, x, code):
        # 01: +x, 11: -x, 00: 0 (10 never occurs in a valid bundle)
        return xor_negate(code[1] & code[0], Mux(code[0], x, 0))


KIND = TernaryPE()
