"""HESE signed-digit encoding and data-term truncation in hardware (NUMERICS.md 3 and 4).

:class:`HeseEncoder` turns an integer into its HESE digits ``d_j`` in ``{-1, 0, +1}``,
``j = 0..n``, as two one-hot-per-position vectors ``pos`` (``d_j = +1``) and ``neg``
(``d_j = -1``).  Each digit is the parallel 4-bit-window rule of NUMERICS.md section 3 on the
magnitude bits ``b``::

    d_j = b_j·¬b_{j-1}·(1 - 2·b_{j+1}) + ¬b_j·b_{j-1}·b_{j-2}      (b_i = 0 outside the word)

so ``+1`` when ``b_j·¬b_{j-1}·¬b_{j+1}`` (an isolated 1-bit) or ``¬b_j·b_{j-1}·b_{j-2}`` (the
``+2^(hi+1)`` of a run ending at ``j-1``), and ``-1`` when ``b_j·¬b_{j-1}·b_{j+1}`` (the
``-2^lo`` of a run starting at ``j``): one LUT4 per digit and sign, no carry chain.  A signed
input is sign-magnitude converted first (``|q|``, a negation), and the sign swaps ``pos`` and
``neg``.

:class:`TermTruncator` keeps the ``s`` most significant nonzero digits (data-term truncation,
TR with groups of one, ``s`` a run-time input) from a prefix count of the nonzero digits
taken from the MSB, and also outputs the kept value ``sum ±2^j``.  :class:`DataTermUnit` is
the two together: a value in, its truncated value (and digits) out.

All three equal the numpy reference :mod:`rtl_gen.numerics.terms` bit for bit
(``hese_digits``, ``truncate_digits``, ``truncate_terms``).
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Shape, Signal, Value, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["DataTermUnit", "HeseEncoder", "TermTruncator", "hese_digit_logic"]


def _check_bits(bits) -> int:
    if isinstance(bits, bool) or not isinstance(bits, int) or bits < 1:
        raise ValueError(f"bits must be a positive integer, not {bits!r}")
    return bits


def _check_pipeline(pipeline, most: int = 2) -> int:
    if pipeline not in range(most + 1):
        raise ValueError(f"pipeline must be 0 to {most} register stages, not {pipeline!r}")
    return int(pipeline)


class _TermComponent(wiring.Component):
    """A component of ``bits`` magnitude bits, checked before the Elaboratable exists (a
    refused unit is no unused design)."""

    #: The most register stages its ``pipeline`` takes.
    MOST_STAGES = 2

    def __new__(cls, bits, *args, **kwargs):
        _check_bits(bits)
        _check_pipeline(kwargs.get("pipeline", 0), cls.MOST_STAGES)
        return super().__new__(cls, src_loc_at=1)


def hese_digit_logic(b: Value, j: int) -> tuple[Value, Value]:
    """HESE digit ``j`` of the unsigned magnitude ``b`` as ``(plus, minus)`` one-bit values.

    ``plus`` is 1 when ``d_j = +1`` and ``minus`` when ``d_j = -1`` (never both).  Bits of
    ``b`` outside ``0..len(b)-1`` read as 0, so ``j`` may run over ``0..len(b)``: digit
    ``len(b)`` is the one above the MSB (``7 = 0b111 -> 8 - 1``).  The digit depends on
    ``b[j-2..j+1]`` only.
    """
    b = Value.cast(b)

    def bit(i: int) -> Value:
        return b[i] if 0 <= i < len(b) else Const(0, 1)

    bj, bjm1, bjm2, bjp1 = bit(j), bit(j - 1), bit(j - 2), bit(j + 1)
    plus = (bj & ~bjm1 & ~bjp1) | (~bj & bjm1 & bjm2)
    minus = bj & ~bjm1 & bjp1
    return plus, minus


class HeseEncoder(_TermComponent):
    """Combinational HESE encoder: an integer in, its ``bits + 1`` signed digits out.

    Parameters
    ----------
    bits:
        Magnitude width ``n`` (at least 1).
    signed:
        ``False``: ``i`` is an unsigned ``n``-bit value ``0..2^n - 1``.  ``True``: ``i`` is a
        two's-complement ``n + 1``-bit value ``-2^n..2^n - 1``, encoded as sign times the
        digits of ``|i|``.

    Members
    -------
    i: ``In(unsigned(bits))`` or ``In(signed(bits + 1))``
        The value.
    pos, neg: ``Out(bits + 1)``
        Bit ``j`` of ``pos`` (``neg``) is set when digit ``d_j`` is ``+1`` (``-1``), after the
        sign is applied; ``i == sum_j (pos_j - neg_j) * 2^j``.

    Notes
    -----
    ``hese_digits(q, bits)`` takes ``|q| < 2^bits``, so it has no digits for the most
    negative two's-complement input ``-2^n``.  The encoder handles it anyway: the magnitude is
    taken ``n + 1`` bits wide, and ``2^n`` is an isolated 1-bit, so its digits are
    ``d_n = -1`` and all others 0, which fit the ``n + 1`` outputs (the digit ``n + 1`` of an
    ``n + 1``-bit magnitude is ``¬b_{n+1}·b_n·b_{n-1}``, always 0 here).  This equals
    ``hese_digits(q, bits + 1)`` without its (zero) top digit, and for every other input it
    equals ``hese_digits(q, bits)``.  There is no carry chain in the digit logic; a signed
    encoder's only adder is the negation that forms ``|i|``.
    """

    def __init__(self, bits: int, *, signed: bool = False):
        self.bits = _check_bits(bits)
        self.signed = bool(signed)
        shape = Shape(bits + 1, signed=True) if self.signed else unsigned(bits)
        super().__init__({
            "i": In(shape),
            "pos": Out(bits + 1),
            "neg": Out(bits + 1),
        })

    def elaborate(self, platform):
        m = Module()
        n = self.bits
        if self.signed:
            sign = self.i[-1]
            mag = Signal(n + 1)  # 0..2^n: the most negative input needs bit n
            m.d.comb += mag.eq(Mux(sign, -self.i, self.i))
        else:
            sign = Const(0, 1)
            mag = self.i
        plus, minus = zip(*(hese_digit_logic(mag, j) for j in range(n + 1)), strict=True)
        p, q = Cat(*plus), Cat(*minus)
        m.d.comb += [self.pos.eq(Mux(sign, q, p)), self.neg.eq(Mux(sign, p, q))]
        return m


class TermTruncator(_TermComponent):
    """Keep the ``s`` most significant nonzero digits of a signed-digit vector.

    Digit ``j`` is kept when it is nonzero and fewer than ``s`` digits above it are nonzero
    (a prefix count from the MSB), or when ``enable`` is 0.  This is
    ``truncate_digits(q, s, bits)`` for digits from :class:`HeseEncoder`.

    Parameters
    ----------
    bits:
        Magnitude width ``n``: the digit vectors are ``n + 1`` wide (positions ``0..n``).
    pipeline:
        Register stages (in the ``sync`` domain): 0 (combinational), 1 (every output
        registered, so the prefix count and the subtraction end at a flip-flop), 2 (the
        kept digits registered too: the prefix count and the subtraction in different
        cycles) or 3 (and which digits to keep, with the digits: the prefix count and
        comparison in a cycle of their own).

    Members
    -------
    pos, neg: ``In(bits + 1)``
        The digits: bit ``j`` set for ``d_j = +1`` / ``-1``.
    s: ``In(range(bits + 2))``
        Digits to keep, ``0..n + 1`` (``n + 1`` keeps every digit; so does any larger value
        the port can hold).
    enable: ``In(1)``
        1: truncate to ``s`` digits.  0: pass every digit (``s`` is ignored).
    pos_o, neg_o: ``Out(bits + 1)``
        The kept digits.
    value: ``Out(signed(bits + 2))``
        ``sum_j (pos_o_j - neg_o_j) * 2^j``; ``signed(n + 2)`` holds every sum of ``n + 1``
        signed digits (``|value| <= 2^(n+1) - 1``).

    Attributes
    ----------
    latency: int
        Cycles from inputs to outputs: ``pipeline``.
    """

    MOST_STAGES = 3

    def __init__(self, bits: int, *, pipeline: int = 0):
        self.bits = _check_bits(bits)
        self.pipeline = _check_pipeline(pipeline, self.MOST_STAGES)
        self.latency = self.pipeline
        d = bits + 1
        super().__init__({
            "pos": In(d),
            "neg": In(d),
            "s": In(range(bits + 2)),
            "enable": In(1),
            "pos_o": Out(d),
            "neg_o": Out(d),
            "value": Out(signed(bits + 2)),
        })

    def elaborate(self, platform):
        m = Module()
        d = self.bits + 1
        keep = Signal(d)
        nz = [self.pos[j] | self.neg[j] for j in range(d)]
        for j in range(d):
            # nonzero digits above position j: a balanced adder tree per position (no chain
            # from the MSB down), compared with s
            terms = list(nz[j + 1:])
            while len(terms) > 1:
                terms = [terms[i] + terms[i + 1] if i + 1 < len(terms) else terms[i]
                         for i in range(0, len(terms), 2)]
            above = terms[0] if terms else Const(0, 1)
            m.d.comb += keep[j].eq(nz[j] & (~self.enable | (above < self.s)))
        pos, neg = self.pos, self.neg
        if self.pipeline == 3:  # which digits to keep registered, with the digits
            keep_r, pos_r, neg_r = Signal(d), Signal(d), Signal(d)
            m.d.sync += [keep_r.eq(keep), pos_r.eq(pos), neg_r.eq(neg)]
            keep, pos, neg = keep_r, pos_r, neg_r
        pos, neg = pos & keep, neg & keep
        if self.pipeline >= 2:  # the kept digits registered before the subtraction
            pos_k, neg_k = Signal(d), Signal(d)
            m.d.sync += [pos_k.eq(pos), neg_k.eq(neg)]
            pos, neg = pos_k, neg_k
        value = pos - neg  # unsigned(d) - unsigned(d): signed(d + 1)
        domain = m.d.sync if self.pipeline else m.d.comb
        domain += [self.pos_o.eq(pos), self.neg_o.eq(neg), self.value.eq(value)]
        return m


class DataTermUnit(_TermComponent):
    """Data-term truncation of one value: :class:`HeseEncoder` then :class:`TermTruncator`.

    Parameters
    ----------
    bits:
        Magnitude width ``n``.
    signed:
        As :class:`HeseEncoder`: ``i`` is unsigned ``n``-bit or two's-complement ``n + 1``-bit.
    pipeline:
        Register stages: 0 (combinational), 1 (the outputs registered, as
        :class:`TermTruncator`), 2 (the encoder's digits registered too, so the HESE
        encoding and the truncation are in different cycles), 3 (and the kept digits, so
        the prefix count and the subtraction are too) or 4 (and which digits to keep: the
        prefix count in a cycle of its own).

    Members
    -------
    i: ``In(unsigned(bits))`` or ``In(signed(bits + 1))``
        The value.
    s: ``In(range(bits + 2))``
        Terms to keep, ``0..n + 1``.
    enable: ``In(1)``
        0 bypasses the truncation: ``value == i`` (after the latency).
    pos, neg: ``Out(bits + 1)``
        The kept HESE digits.
    value: ``Out(unsigned(bits + 1))`` or ``Out(signed(bits + 2))``
        ``truncate_terms(i, s, bits)``.  Exact widths: every prefix of the HESE digits of a
        magnitude ``m < 2^n`` sums to ``0..2^n`` (``2^n - 1`` with one term is ``2^n``), and
        of ``m = 2^n`` to ``0`` or ``2^n``; so an unsigned value needs ``n + 1`` bits and a
        signed one ``n + 2``.

    Attributes
    ----------
    latency: int
        ``pipeline``: cycles from ``i`` to the outputs.
    """

    MOST_STAGES = 4

    def __init__(self, bits: int, *, signed: bool = False, pipeline: int = 0):
        self.bits = _check_bits(bits)
        self.signed = bool(signed)
        self.pipeline = _check_pipeline(pipeline, self.MOST_STAGES)
        self.latency = self.pipeline
        in_shape = Shape(bits + 1, signed=True) if self.signed else unsigned(bits)
        out_shape = Shape(bits + 2, signed=True) if self.signed else unsigned(bits + 1)
        super().__init__({
            "i": In(in_shape),
            "s": In(range(bits + 2)),
            "enable": In(1),
            "pos": Out(bits + 1),
            "neg": Out(bits + 1),
            "value": Out(out_shape),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.encoder = enc = HeseEncoder(self.bits, signed=self.signed)
        # the truncator's own stages: all but the digits' register (stage 2)
        m.submodules.truncator = trunc = TermTruncator(
            self.bits, pipeline=self.pipeline - (self.pipeline >= 2))
        digits = m.d.sync if self.pipeline >= 2 else m.d.comb
        s, enable = self.s, self.enable
        if self.pipeline >= 2:  # the controls a cycle later, with the digits
            s, enable = Signal.like(self.s), Signal.like(self.enable)
            m.d.sync += [s.eq(self.s), enable.eq(self.enable)]
        digits += [trunc.pos.eq(enc.pos), trunc.neg.eq(enc.neg)]
        m.d.comb += [
            enc.i.eq(self.i),
            trunc.s.eq(s),
            trunc.enable.eq(enable),
            self.pos.eq(trunc.pos_o),
            self.neg.eq(trunc.neg_o),
            self.value.eq(trunc.value),  # truncates to n + 1 bits when unsigned: exact
        ]
        return m
