"""HESE encoder, term truncator and data-term unit in amaranth.sim against the numerics.

The expected digits and values come from :mod:`rtl_gen.numerics.terms` (``hese_digits``,
``truncate_digits``, ``truncate_terms``), exhaustively over every input of up to 10 bits
(and every ``s`` where the space allows), plus the literal vectors of NUMERICS.md.  The
combinational circuits are evaluated many inputs per simulation (set, then get: a testbench
settles the comb logic after every ``ctx.set``).
"""

from __future__ import annotations

import gc
import sys
import warnings

import amaranth as am
import numpy as np
import pytest
from amaranth.hdl import Fragment
from amaranth.sim import Simulator

from rtl_gen.hw.hese import DataTermUnit, HeseEncoder, TermTruncator
from rtl_gen.numerics.terms import hese_digits, truncate_digits, truncate_terms


def comb_eval(dut, drives: list[dict], outputs: list[str]) -> list[tuple[int, ...]]:
    """Drive each dict of ``{port name: value}`` in turn and read ``outputs`` after each."""
    results = []

    async def bench(ctx):
        for drive in drives:
            for name, value in drive.items():
                ctx.set(getattr(dut, name), value)
            results.append(tuple(ctx.get(getattr(dut, name)) for name in outputs))

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()
    return results


def to_digits(pos: int, neg: int, width: int) -> np.ndarray:
    """``pos``/``neg`` bit vectors as digits in {-1, 0, +1}, least significant first."""
    assert pos & neg == 0, f"digit set both +1 and -1: pos={pos:b} neg={neg:b}"
    return np.array([((pos >> j) & 1) - ((neg >> j) & 1) for j in range(width)], np.int8)


def value_range(bits: int, signed: bool) -> np.ndarray:
    """Every input of the encoder: ``0..2^n-1`` or ``-2^n..2^n-1``."""
    lo = -(1 << bits) if signed else 0
    return np.arange(lo, 1 << bits, dtype=np.int64)


def ref_digits(q: np.ndarray, bits: int) -> np.ndarray:
    """``hese_digits`` over the encoder's whole input range, ``-2^n`` included.

    ``hese_digits(q, bits)`` requires ``|q| < 2^bits``; the most negative signed input is
    taken from ``hese_digits(q, bits + 1)``, whose top digit must then be 0.
    """
    inside = np.abs(q) < (1 << bits)
    out = np.zeros(q.shape + (bits + 1,), np.int8)
    out[inside] = hese_digits(q[inside], bits)
    if (~inside).any():
        wide = hese_digits(q[~inside], bits + 1)
        assert not wide[..., bits + 1].any()
        out[~inside] = wide[..., :bits + 1]
    return out


def ref_truncate(q: np.ndarray, s: int, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """``(truncate_digits, truncate_terms)`` over the whole input range, as :func:`ref_digits`."""
    inside = np.abs(q) < (1 << bits)
    digits = np.zeros(q.shape + (bits + 1,), np.int8)
    values = np.zeros(q.shape, np.int64)
    digits[inside] = truncate_digits(q[inside], s, bits)
    values[inside] = truncate_terms(q[inside], s, bits)
    if (~inside).any():
        digits[~inside] = truncate_digits(q[~inside], s, bits + 1)[..., :bits + 1]
        values[~inside] = truncate_terms(q[~inside], s, bits + 1)
    return digits, values


def encode(bits: int, signed: bool, values) -> np.ndarray:
    dut = HeseEncoder(bits, signed=signed)
    got = comb_eval(dut, [{"i": int(v)} for v in values], ["pos", "neg"])
    return np.array([to_digits(p, n, bits + 1) for p, n in got])


# --- encoder ----------------------------------------------------------------------------------


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
@pytest.mark.parametrize("bits", range(1, 11))
def test_encoder_exhaustive(bits, signed):
    q = value_range(bits, signed)
    got = encode(bits, signed, q)
    np.testing.assert_array_equal(got, ref_digits(q, bits))
    weights = 1 << np.arange(bits + 1, dtype=np.int64)
    np.testing.assert_array_equal(got.astype(np.int64) @ weights, q)


def test_encoder_most_negative_input():
    # -2^n: magnitude 2^n is an isolated 1-bit above the n magnitude bits -> d_n = -1
    for bits in (1, 4, 8):
        expect = np.zeros(bits + 1, np.int8)
        expect[bits] = -1
        np.testing.assert_array_equal(encode(bits, True, [-(1 << bits)])[0], expect)


def terms_of(digits: np.ndarray) -> list[int]:
    return [int(digits[j]) << j for j in range(len(digits) - 1, -1, -1) if digits[j]]


def test_numerics_md_vectors():
    # NUMERICS.md section 3, terms largest first (literal numbers from the document)
    doc = {23: [16, 8, -1], 27: [32, -8, 4, -1], 45: [32, 16, -4, 1],
           91: [64, 32, -8, 4, -1], 127: [128, -1], -27: [-32, 8, -4, 1]}
    q = list(doc)
    for signed in (False, True):
        vals = [v for v in q if signed or v >= 0]
        got = encode(7, signed, vals)
        for v, d in zip(vals, got, strict=True):
            assert terms_of(d) == doc[v], (v, signed)
    # "7 -> 8 - 1: the exponent field must hold 0..n": n = 3 needs digit 3
    assert terms_of(encode(3, False, [7])[0]) == [8, -1]


def test_numerics_md_term_statistics():
    # "mean 3.25 terms over 0..255, max 6; binary 4.00/8"
    got = encode(8, False, range(256))
    counts = np.count_nonzero(got, axis=1)
    assert counts.mean() == 3.25
    assert counts.max() == 6


def test_numerics_md_truncation_vector():
    # NUMERICS.md section 4 worked example: x = [23, 5, 60, 1], s = 2 -> x' = [24, 5, 60, 1]
    dut = DataTermUnit(6)
    got = comb_eval(dut, [{"i": v, "s": 2, "enable": 1} for v in (23, 5, 60, 1)], ["value"])
    assert [v for (v,) in got] == [24, 5, 60, 1]


# --- truncator and data-term unit -------------------------------------------------------------


def run_unit(bits: int, signed: bool, cases: list[tuple[int, int, int]]):
    """``DataTermUnit`` over ``(q, s, enable)`` cases: ``(digits, values)`` arrays."""
    dut = DataTermUnit(bits, signed=signed)
    drives = [{"i": q, "s": s, "enable": e} for q, s, e in cases]
    got = comb_eval(dut, drives, ["pos", "neg", "value"])
    digits = np.array([to_digits(p, n, bits + 1) for p, n, _ in got])
    return digits, np.array([v for _, _, v in got], np.int64)


def check_unit(bits: int, signed: bool, q: np.ndarray, s: np.ndarray, enable: np.ndarray):
    cases = [(int(a), int(b), int(c)) for a, b, c in zip(q, s, enable, strict=True)]
    digits, values = run_unit(bits, signed, cases)
    for k in np.unique(np.where(enable == 1, s, -1)):
        sel = (enable == 1) & (s == k) if k >= 0 else enable == 0
        ed, ev = ref_truncate(q[sel], int(k) if k >= 0 else bits + 1, bits)
        np.testing.assert_array_equal(digits[sel], ed, err_msg=f"s={k}")
        np.testing.assert_array_equal(values[sel], ev, err_msg=f"s={k}")
    np.testing.assert_array_equal(values[enable == 0], q[enable == 0])


def test_unit_unsigned_8bit_every_s():
    bits = 8
    q = value_range(bits, False)
    qs = np.concatenate([q] * (bits + 3))
    s = np.concatenate([np.full(q.size, k) for k in range(bits + 2)]
                       + [np.arange(q.size) % (bits + 2)])
    enable = np.concatenate([np.ones(q.size * (bits + 2), int), np.zeros(q.size, int)])
    check_unit(bits, False, qs, s, enable)


def test_unit_signed_10bit_every_s():
    bits = 10
    q = value_range(bits, True)
    ks = range(bits + 2)
    qs = np.concatenate([q] * len(ks))
    s = np.repeat(np.array(list(ks)), q.size)
    check_unit(bits, True, qs, s, np.ones(qs.size, int))


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
@pytest.mark.parametrize("bits", [1, 2, 3, 5, 7, 10])
def test_unit_random_s_and_enable(bits, signed):
    rng = np.random.default_rng(1000 * bits + signed)
    q = np.concatenate([value_range(bits, signed)] * 2)
    s = rng.integers(0, bits + 2, q.size)
    enable = (rng.random(q.size) < 0.8).astype(int)
    check_unit(bits, signed, q, s, enable)


def built(dut):
    """``dut`` after elaboration (a component made only to look at is not an unused one)."""
    Fragment.get(dut, None)
    return dut


def test_unit_value_ports_are_exact_width():
    assert built(DataTermUnit(8)).value.shape() == am.unsigned(9)
    assert built(DataTermUnit(8, signed=True)).value.shape() == am.signed(10)
    assert built(TermTruncator(8)).value.shape() == am.signed(10)
    # the inputs: unsigned n bits or signed n + 1, and s in 0..n + 1 (n = 6: 3 bits)
    for bits, signed, i_shape in [(6, False, am.unsigned(6)), (6, True, am.signed(7)),
                                  (8, True, am.signed(9))]:
        unit = built(DataTermUnit(bits, signed=signed))
        assert unit.i.shape() == i_shape
        assert unit.s.shape() == am.unsigned((bits + 1).bit_length())
        assert unit.pos.shape() == unit.neg.shape() == am.unsigned(bits + 1)
    assert built(TermTruncator(6)).s.shape() == am.unsigned(3)
    for bits, signed, i_shape in [(6, False, am.unsigned(6)), (6, True, am.signed(7))]:
        enc = built(HeseEncoder(bits, signed=signed))
        assert enc.i.shape() == i_shape
        assert enc.pos.shape() == enc.neg.shape() == am.unsigned(bits + 1)
    # 2^n - 1 with one term is 2^n: the top of the unsigned range
    _, v = run_unit(8, False, [(255, 1, 1)])
    assert v[0] == 256
    _, v = run_unit(8, True, [(-256, 1, 1), (255, 1, 1), (-255, 1, 1)])
    assert list(v) == [-256, 256, -256]


def keep_model(pos: int, neg: int, s: int, enable: int, width: int) -> tuple[int, int]:
    """Independent model: keep the first ``s`` nonzero positions scanning from the MSB."""
    keep, seen = 0, 0
    for j in reversed(range(width)):
        if (pos | neg) >> j & 1:
            if not enable or seen < s:
                keep |= 1 << j
            seen += 1
    return pos & keep, neg & keep


@pytest.mark.parametrize("bits", [1, 4, 9])
def test_truncator_arbitrary_digit_vectors(bits):
    # any digit vectors, not only HESE ones (adjacent nonzeros, all ones)
    width = bits + 1
    rng = np.random.default_rng(bits)
    full = (1 << width) - 1
    cases = [(full, 0, width, 0), (0, full, width, 0), (full, 0, width + 1, 1)]
    for _ in range(3000):
        pos = int(rng.integers(0, 1 << width))
        neg = int(rng.integers(0, 1 << width)) & ~pos
        cases.append((pos, neg, int(rng.integers(0, width + 1)), int(rng.random() < 0.8)))
    dut = TermTruncator(bits)
    drives = [{"pos": p, "neg": n, "s": s, "enable": e} for p, n, s, e in cases]
    got = comb_eval(dut, drives, ["pos_o", "neg_o", "value"])
    for (p, n, s, e), (po, no, v) in zip(cases, got, strict=True):
        kp, kn = keep_model(p, n, s, e, width)
        assert (po, no, v) == (kp, kn, kp - kn), (p, n, s, e)
    assert got[0][2] == (1 << width) - 1 and got[1][2] == -((1 << width) - 1)


@pytest.mark.parametrize("pipeline", [1, 2, 3, 4])
@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
def test_pipelined_unit_latency(signed, pipeline):
    """With ``pipeline`` register stages the result of an input appears ``pipeline`` edges
    later (2: the digits registered between the encoder and the truncator; 3: the kept
    digits too; 4: and which digits to keep)."""
    bits = 8
    dut = DataTermUnit(bits, signed=signed, pipeline=pipeline)
    assert dut.latency == pipeline
    rng = np.random.default_rng(7 + signed)
    q = rng.integers(-(1 << bits) if signed else 0, 1 << bits, 400)
    s = rng.integers(0, bits + 2, q.size)
    enable = (rng.random(q.size) < 0.8).astype(int)
    seen = []

    async def bench(ctx):
        assert (ctx.get(dut.value), ctx.get(dut.pos), ctx.get(dut.neg)) == (0, 0, 0)
        for a, b, c in zip(q, s, enable, strict=True):
            ctx.set(dut.i, int(a))
            ctx.set(dut.s, int(b))
            ctx.set(dut.enable, int(c))
            before = ctx.get(dut.value)
            await ctx.tick()
            seen.append((before, ctx.get(dut.value)))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    expect = np.array([truncate_terms(int(a), int(b), bits + 1) if c else int(a)
                       for a, b, c in zip(q, s, enable, strict=True)])
    after = np.array([a for _, a in seen])
    before = np.array([b for b, _ in seen])
    lag = pipeline - 1   # edges after the first that an input takes to reach the output
    np.testing.assert_array_equal(after[lag:], expect[:expect.size - lag])
    # the output holds the previous result until the clock edge
    np.testing.assert_array_equal(before[lag + 1:], expect[:expect.size - lag - 1])


def test_truncator_pipeline_latency_attribute():
    assert built(TermTruncator(4)).latency == 0
    assert built(TermTruncator(4, pipeline=True)).latency == 1
    assert built(DataTermUnit(4)).latency == 0
    assert built(TermTruncator(4, pipeline=2)).latency == 2
    assert built(TermTruncator(4, pipeline=3)).latency == 3
    with pytest.raises(ValueError, match="pipeline must be 0 to 4"):
        DataTermUnit(4, pipeline=5)
    with pytest.raises(ValueError, match="pipeline must be 0 to 3"):
        TermTruncator(4, pipeline=4)


@pytest.mark.parametrize("cls", [HeseEncoder, TermTruncator, DataTermUnit])
@pytest.mark.parametrize("bits", [0, -1, 2.0, True])
def test_bad_bits(cls, bits):
    with pytest.raises(ValueError, match="bits"):
        cls(bits)


@pytest.mark.parametrize("unit", [HeseEncoder, TermTruncator, DataTermUnit])
def test_an_unused_unit_is_reported_at_the_line_that_made_it(unit):
    built(HeseEncoder(2))   # Amaranth reports unused designs once one has been elaborated
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        unit(4)
        line = sys._getframe().f_lineno - 1
        gc.collect()
    assert [(w.filename, w.lineno) for w in caught
            if issubclass(w.category, am.hdl.UnusedElaboratable)] == [(__file__, line)]
