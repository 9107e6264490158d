"""``binary``: sign select, code 1 means ``-x``, 0 means ``+x``."""

from __future__ import annotations

from .kit import PEKind, xor_negate


class BinaryPE(PEKind):
    name = "binary"
    weight_scheme = "binary"
    serves = ("binary",)
    lanes = 4   # a lane is an XOR and a carry-in: four of them per PE

    def product(self, cfg, x, code):
        return xor_negate(code[0], x)


KIND = BinaryPE()
