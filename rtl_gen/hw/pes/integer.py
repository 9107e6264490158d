"""``int``: a real multiplier, shift-and-add rows in LUTs (``multiplier="lut"``: two's
complement rows below 4 bits, radix-4 Booth from 4 bits up), or the ``*`` operator that
Yosys maps to the device's DSP (``multiplier="dsp"``)."""

from __future__ import annotations

from amaranth import Cat, Const, Mux, Value

from .kit import PEKind, Term, sum_tree


class IntPE(PEKind):
    name = "int"
    weight_scheme = "int"
    serves = ("int",)
    multipliers = ("lut", "dsp")
    logic_product = True
    #: 8-bit weights: the Booth rows are the tree's terms (an int8 x int8 product and its
    #: three-adder sum in one stage set the UP5K clock of the int8 digits network, 34 MHz).
    row_terms_bits = 8

    def products(self, cfg, xs, codes):
        if cfg.multiplier == "lut" and self.gives_rows(cfg.w_bits):
            return [Term(row) for x, c in zip(xs, codes, strict=True)
                    for row in booth_rows(x, c, cfg.w_bits)]
        return super().products(cfg, xs, codes)

    def product(self, cfg, x, code):
        b = cfg.w_bits
        if cfg.multiplier == "dsp":
            return Term(x * code.as_signed())
        if b < 4:
            # Shift-and-add rows; the MSB row has weight -2**(b-1) (two's complement).
            rows = [Mux(code[j], x << j, 0) for j in range(b - 1)]
            rows.append(-Mux(code[b - 1], x << (b - 1), 0))
            return Term(sum_tree(rows))
        return Term(sum_tree(booth_rows(x, code, b)))


def booth_rows(x: Value, code: Value, b: int) -> list[Value]:
    """The rows whose sum is ``x * w`` for a ``b``-bit two's complement ``w`` by radix-4
    Booth recoding: digit ``j`` of ``w`` (bits ``2j+1, 2j, 2j-1``) is one of -2..2, so
    ``ceil(b / 2)`` rows of ``0, x, 2x``, each negated by XOR; the negations' +1 corrections
    fill the free low bits of the next row, and the last one is a row of its own."""
    w = Cat(Const(0, 1), code, code[b - 1].replicate(b % 2))   # w[-1] = 0, even width
    x = x if x.shape().signed else Cat(x, Const(0, 1)).as_signed()
    rows, negs = [], []
    for j in range(len(w) // 2):
        lo, mid, hi = w[2 * j], w[2 * j + 1], w[2 * j + 2]
        one = mid ^ lo
        two = (hi ^ mid) & ~one
        mag = Mux(one, x, Mux(two, x << 1, 0))
        rows.append((mag ^ hi.replicate(len(mag)).as_signed(), 2 * j))
        negs.append(hi)
    values = []
    for j, (row, shift) in enumerate(rows):
        if j == 0:
            values.append(row)
        else:
            # the previous row's correction sits at bit shift - 2, below this row
            values.append(Cat(Const(0, shift - 2), negs[j - 1], Const(0, 1), row).as_signed())
    last = len(rows) - 1
    values.append(Cat(Const(0, 2 * last), negs[last]).as_unsigned())
    return values


KIND = IntPE()
