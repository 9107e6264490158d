"""``binary``: sign select, code 1 means ``-x``, 0 means ``+x``.

Two lanes make one term: ``w1*x1 + w2*x2`` is ``±(x1 + x2)`` when the two signs agree and
``±(x1 - x2)`` when they differ, so the unit forms ``x1 + x2`` and ``x1 - x2`` from the
activations alone (shared by every column of an array that broadcasts them: the same
registers, the same adders) and each pair's term is, bit by bit, one 4-input function of
those two sums' bits and the two codes (select by ``c1 XOR c2``, invert by ``c1``), with a
carry-in of ``c1`` that the adder tree takes into its carry chains (``fused_carries``).
On the iCE40 a 16-lane binary x 8-bit PE is then adders on ``SB_CARRY`` chains and a LUT
per pair and bit, instead of full adders in LUTs.
"""

from __future__ import annotations

from amaranth import Mux

from .kit import PEKind, Term, xor_negate


class BinaryPE(PEKind):
    name = "binary"
    weight_scheme = "binary"
    serves = ("binary",)
    lanes = 4   # a lane is half a select and a carry-in: four of them per PE
    fused_carries = True

    def product(self, cfg, x, code):
        return xor_negate(code[0], x)

    def products(self, cfg, xs, codes):
        terms = [pair_term(xs[i], xs[i + 1], codes[i][0], codes[i + 1][0])
                 for i in range(0, len(xs) - 1, 2)]
        if len(xs) % 2:
            terms.append(self.product(cfg, xs[-1], codes[-1]))
        return terms


def pair_term(x1, x2, c1, c2) -> Term:
    """``w1*x1 + w2*x2`` (``w = -1`` for code 1, ``+1`` for 0) as a :class:`Term`:
    ``sel = c1 XOR c2`` picks ``x1 - x2`` over ``x1 + x2``, and ``c1`` negates the pick
    (an XOR and a carry-in)."""
    return xor_negate(c1, Mux(c1 ^ c2, x1 - x2, x1 + x2))


KIND = BinaryPE()
