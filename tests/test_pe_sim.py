"""Processing elements in amaranth.sim against the golden model.

Exhaustive where the space is small (every weight code times every activation for widths up
to 4 bits), seeded random vectors with random accumulation framing and input bubbles for the
rest, extreme values always included.  The expected values come from the numerics
(``scheme.decode``, ``bitplane_dot``) through ``PEConfig.reference``; the latency contract
is asserted for every output.  The cases come from the registry (:mod:`rtl_gen.hw.pes`), so
a new kind is covered without editing them; a toy kind shows the recipe.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
from amaranth import Const, Signal, Value
from amaranth.back import rtlil
from amaranth.hdl import Fragment
from amaranth.sim import Simulator

from rtl_gen.devices import DEVICES
from rtl_gen.hw import pes
from rtl_gen.hw.pe import (
    DotProductUnit,
    PEConfig,
    check_dsp_budget,
    pack_inputs,
)
from rtl_gen.hw.pes.kit import PEKind, xor_negate
from sim.pe_tb import corner_configs


def simulate(cfg: PEConfig, x, w=None, first=None, last=None, *, gaps=None, w_prec=None,
             x_prec=None):
    """Drive the vectors, collect ``(edge, payload)`` of every output and the edge at which
    each ``last`` vector was accepted."""
    dut = DotProductUnit(cfg)
    words = pack_inputs(cfg, x, w, first, last)
    n = len(words)
    last = np.ones(n, bool) if last is None else np.asarray(last, bool)
    gaps = np.zeros(n, int) if gaps is None else gaps
    edge = [0]
    accepted, outputs = [], []
    done = [False]

    async def producer(ctx):
        if cfg.run_time_precision:
            ctx.set(dut.w_prec, cfg.w_bits if w_prec is None else w_prec)
            ctx.set(dut.x_prec, cfg.a_bits if x_prec is None else x_prec)
        for word, gap, is_last in zip(words, gaps, last, strict=True):
            ctx.set(dut.i.valid, 0)
            for _ in range(gap):
                await ctx.tick()
            ctx.set(dut.i.payload.as_value(), word)
            ctx.set(dut.i.valid, 1)
            for waited in itertools.count():
                ready = ctx.get(dut.i.ready)
                await ctx.tick()
                if ready:
                    break
                # a unit takes a vector at least every cycles_per_vector cycles
                assert waited < 2 * cfg.cycles_per_vector + 8, "i.ready stays low"
            if is_last:
                accepted.append(edge[0])
        ctx.set(dut.i.valid, 0)
        for _ in range(dut.latency + 2):
            await ctx.tick()
        done[0] = True

    async def monitor(ctx):
        while not done[0]:
            await ctx.tick()
            edge[0] += 1
            if ctx.get(dut.o.valid):
                outputs.append((edge[0], ctx.get(dut.o.payload)))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(monitor)
    sim.add_testbench(producer)
    sim.run()
    return dut, accepted, outputs


def check(cfg: PEConfig, x, w=None, first=None, last=None, *, gaps=None, w_prec=None,
          x_prec=None):
    dut, accepted, outputs = simulate(cfg, x, w, first, last, gaps=gaps, w_prec=w_prec,
                                      x_prec=x_prec)
    want = cfg.reference(x, w, first, last, w_prec=w_prec, x_prec=x_prec)
    got = np.array([v for _, v in outputs], dtype=np.int64)
    assert len(got) == len(want)
    assert np.array_equal(got, want), (got[got != want][:5], want[got != want][:5])
    latency = dut.latency if not cfg.run_time_precision else \
        dut.latency_at(w_prec or cfg.w_bits, x_prec or cfg.a_bits)
    # the producer counts the accepting edge before the monitor's counter moves past it
    assert [e - a for (e, _), a in zip(outputs, accepted, strict=True)] == \
        [latency] * len(want)


def act_range(bits: int, signed: bool) -> np.ndarray:
    return np.arange(-(1 << (bits - 1)), 1 << (bits - 1)) if signed else np.arange(1 << bits)


def valid_codes(cfg: PEConfig) -> np.ndarray:
    codes = np.arange(1 << cfg.w_bits)
    return codes[~cfg.scheme.invalid_codes(codes)]


def _small(kind: PEKind):
    """Every width up to 4 bits and every multiplier of a kind with scheme codes."""
    if kind.weight_scheme is None:
        return []
    return [(kind.name, b, {"multiplier": mul} if mul != "lut" else {})
            for b in kind.widths() if b <= 4 for mul in kind.multipliers]


SMALL = [case for name in pes.kinds() for case in _small(pes.get(name))]


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
@pytest.mark.parametrize("kind,w_bits,extra", SMALL,
                         ids=[f"{k}{b}{'-' + e['multiplier'] if e else ''}" for k, b, e in SMALL])
def test_every_code_times_every_activation(kind, w_bits, extra, signed):
    a_bits = min(4, max(pes.get(kind).a_widths()))
    cfg = PEConfig(kind=kind, w_bits=w_bits, a_bits=a_bits, a_signed=signed, **extra)
    lo, hi = cfg.x_range
    pairs = np.array(list(itertools.product(valid_codes(cfg), np.arange(lo, hi + 1))))
    check(cfg, pairs[:, 1:], pairs[:, :1])


def test_xnor_every_pair():
    cfg = PEConfig(kind="xnor", w_bits=1, a_bits=1, lanes=2)
    pairs = np.array(list(itertools.product([0, 1], repeat=4)))
    check(cfg, pairs[:, :2], pairs[:, 2:])


PRECISION_KINDS = [k for k in pes.kinds() if pes.get(k).run_time_precision]


@pytest.mark.parametrize("kind", PRECISION_KINDS)
@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
def test_every_pair_at_every_run_time_precision(kind, signed):
    cfg = PEConfig(kind=kind, w_bits=4, a_bits=4, a_signed=signed)
    for w_prec, x_prec in [(4, 4), (1, 1), (2, 3), (4, 1)]:
        pairs = np.array(list(itertools.product(act_range(w_prec, True),
                                                act_range(x_prec, signed))))
        check(cfg, pairs[:, 1:], pairs[:, :1], w_prec=w_prec, x_prec=x_prec)


def random_stream(cfg: PEConfig, n: int, seed: int, *, extremes: bool = True):
    """Random vectors (extreme activations and every code mixed in) and random framing."""
    rng = np.random.default_rng(seed)
    lo, hi = cfg.x_range
    x = rng.integers(lo, hi + 1, size=(n, cfg.lanes))
    if extremes:
        x[: n // 8] = rng.choice([lo, hi], size=(n // 8, cfg.lanes))
    if cfg.scheme is None:   # integer weights (bit-plane)
        w = rng.integers(-(1 << (cfg.w_bits - 1)), 1 << (cfg.w_bits - 1), size=(n, cfg.lanes))
        w[: n // 8] = rng.choice([-(1 << (cfg.w_bits - 1)), (1 << (cfg.w_bits - 1)) - 1],
                                 size=(n // 8, cfg.lanes))
    elif cfg.weights is None:
        w = rng.choice(valid_codes(cfg), size=(n, cfg.lanes))
    else:
        w = None
    # accumulations of 1..depth vectors
    first, last = np.zeros(n, int), np.zeros(n, int)
    i = 0
    while i < n:
        length = min(int(rng.integers(1, cfg.depth + 1)), n - i)
        first[i], last[i + length - 1] = 1, 1
        i += length
    gaps = rng.choice([0, 0, 0, 1, 3], size=n)
    return x, w, first, last, gaps


RANDOM = [
    dict(kind="binary", w_bits=1, a_bits=8, lanes=5, depth=7),
    dict(kind="binary", w_bits=1, a_bits=8, a_signed=True, lanes=16, depth=3, pipeline=3),
    dict(kind="ternary", w_bits=2, a_bits=8, lanes=6, depth=5, pipeline=2),
    dict(kind="pot", w_bits=5, a_bits=8, a_signed=True, lanes=3, depth=9),
    dict(kind="pot", w_bits=6, a_bits=7, lanes=1, depth=4, pipeline=1),
    dict(kind="apot", w_bits=5, a_bits=8, lanes=4, depth=6, pipeline=1),
    dict(kind="apot", w_bits=4, a_bits=8, a_signed=True, lanes=7, depth=3),
    dict(kind="int", w_bits=8, a_bits=8, lanes=1, depth=16),
    dict(kind="int", w_bits=8, a_bits=8, a_signed=True, lanes=3, depth=5, pipeline=2),
    dict(kind="int", w_bits=8, a_bits=8, lanes=2, depth=5, multiplier="dsp", pipeline=1),
    dict(kind="int", w_bits=16, a_bits=16, a_signed=True, lanes=1, depth=3),
    dict(kind="xnor", w_bits=1, a_bits=1, lanes=64, depth=4, pipeline=2),
    dict(kind="xnor", w_bits=1, a_bits=1, lanes=9, depth=2),
]


# a registered kind that RANDOM does not name runs at its generated corners
RANDOM += [dataclasses.asdict(cfg) for kind in pes.kinds()
           if kind not in {p["kind"] for p in RANDOM} for cfg, _ in corner_configs(kind)]


def random_check(cfg: PEConfig, n: int, seed: int) -> None:
    """``n`` random vectors (fewer for a unit of several cycles per vector) through ``cfg``."""
    x, w, first, last, gaps = random_stream(cfg, max(40, n // cfg.cycles_per_vector),
                                            seed=seed)
    check(cfg, x, w, first, last, gaps=gaps)


@pytest.mark.parametrize("params", RANDOM, ids=lambda p: PEConfig(**p).name)
def test_random_vectors(params):
    cfg = PEConfig(**params)
    random_check(cfg, 400, seed=len(cfg.name))


def _baked_case(kind: PEKind) -> tuple[str, int]:
    return kind.name, max(b for b in kind.widths() if b <= 8)


@pytest.mark.parametrize("kind,w_bits", [_baked_case(pes.get(k)) for k in pes.kinds()
                                         if pes.get(k).bakeable])
def test_baked_weights(kind, w_bits):
    a_bits = min(8, max(pes.get(kind).a_widths()))
    probe = PEConfig(kind=kind, w_bits=w_bits, a_bits=a_bits)
    rng = np.random.default_rng(w_bits)
    codes = tuple(int(c) for c in rng.choice(valid_codes(probe), size=6))
    cfg = PEConfig(kind=kind, w_bits=w_bits, a_bits=a_bits, lanes=6, depth=4, weights=codes,
                   pipeline=1)
    x, _, first, last, gaps = random_stream(cfg, 200, seed=3)
    check(cfg, x, None, first, last, gaps=gaps)


@pytest.mark.parametrize("params,w_prec,x_prec", [
    (dict(w_bits=8, a_bits=8, lanes=5, depth=3), 8, 8),
    (dict(w_bits=8, a_bits=8, a_signed=True, lanes=4, depth=4, pipeline=2), 3, 5),
    (dict(w_bits=6, a_bits=4, lanes=16, depth=2, pipeline=1), 6, 1),
])
def test_bitplane_random(params, w_prec, x_prec):
    cfg = PEConfig(kind="bitplane", **params)
    x, w, first, last, gaps = random_stream(cfg, 60, seed=w_prec * x_prec)
    # values must fit the run-time precisions
    x = x >> (cfg.a_bits - x_prec)
    w = w >> (cfg.w_bits - w_prec)
    check(cfg, x, w, first, last, gaps=gaps, w_prec=w_prec, x_prec=x_prec)


@pytest.mark.parametrize("w_bits,a_bits", [(4, 4), (6, 5)])
def test_bitplane_precision_zero_or_above_the_maximum_counts_as_the_maximum(w_bits, a_bits):
    cfg = PEConfig(kind="bitplane", w_bits=w_bits, a_bits=a_bits, a_signed=True, lanes=3,
                   depth=2)
    probe = DotProductUnit(cfg)
    Fragment.get(probe, None)   # elaborated: only its ports are looked at
    w_top, x_top = (1 << len(probe.w_prec)) - 1, (1 << len(probe.x_prec)) - 1
    assert w_top > w_bits and x_top > a_bits   # the ports can carry such values
    x, w, first, last, _ = random_stream(cfg, 24, seed=w_bits)
    want = cfg.reference(x, w, first, last)   # full precision
    for w_prec, x_prec in [(0, 0), (0, a_bits + 1), (w_top, 0), (w_bits + 1, x_top)]:
        dut, accepted, outputs = simulate(cfg, x, w, first, last, w_prec=w_prec,
                                          x_prec=x_prec)
        got = np.array([v for _, v in outputs], dtype=np.int64)
        assert np.array_equal(got, want), (w_prec, x_prec)
        assert [e - a for (e, _), a in zip(outputs, accepted, strict=True)] == \
            [dut.latency_at(w_bits, a_bits)] * len(want)


def test_xnor_activations_are_the_codes_0_and_1():
    assert PEConfig(kind="xnor", w_bits=1, a_bits=1, a_signed=True).x_range == (0, 1)


def test_xnor_takes_one_bit_activations_only():
    with pytest.raises(ValueError, match=r"xnor activation width must be 1\.\.1, not 2"):
        PEConfig(kind="xnor", w_bits=1, a_bits=2)


@pytest.mark.parametrize("w_bits", [2, 3, 4, 5, 6])
def test_pot_lane_product_is_no_wider_than_its_shifter(w_bits):
    cfg = PEConfig(kind="pot", w_bits=w_bits, a_bits=8)
    f = cfg.scheme.pot_frac_bits
    term = pes.get("pot").product(cfg, Signal(8), Signal(w_bits))
    # an unsigned 8-bit x shifted by at most F (code 1), and a sign bit: 8 + F + 1 bits; the
    # shifter's field also encodes F + 1, which no code uses: one bit of slack
    assert len(term.value) <= 8 + f + 2


def netlist(cfg: PEConfig) -> str:
    """The RTLIL of a unit (no Yosys): its cells show how a product is built."""
    dut = DotProductUnit(cfg)
    ports = [Value.cast(v) for _, _, v in dut.signature.flatten(dut)]
    return rtlil.convert(dut, ports=[v for v in ports if not isinstance(v, Const)])


def test_int_dsp_multiplier_is_one_multiply_operator_and_lut_none():
    """``multiplier="dsp"`` leaves the product to Yosys's ``$mul`` (mapped to the device's
    DSP); ``"lut"`` builds it from adders.  Both compute the same, so only the netlist tells
    them apart."""
    def cfg(multiplier):
        return PEConfig(kind="int", w_bits=8, a_bits=8, lanes=2, multiplier=multiplier)
    assert netlist(cfg("dsp")).count("cell $mul ") == 2   # one per lane
    assert "$mul" not in netlist(cfg("lut"))


@pytest.mark.parametrize("w_bits", [2, 3, 4, 5, 8])
def test_int_lut_multiplier_is_rows_below_4_bits_and_booth_from_4(w_bits):
    """Shift-and-add rows negate the MSB row (``$neg``); radix-4 Booth negates its rows by
    XOR and has no subtractor."""
    cells = netlist(PEConfig(kind="int", w_bits=w_bits, a_bits=8))
    booth = w_bits >= 4
    assert ("cell $xor " in cells) == booth
    assert ("cell $neg " in cells) == (not booth)


def test_bitplane_accumulator_width_is_the_numerics_rule():
    # 4-bit weights reach -8 and unsigned 4-bit activations 15: 4 lanes x 2 vectors x 120 =
    # 960 < 2**10, so 10 magnitude bits and a sign
    assert PEConfig(kind="bitplane", w_bits=4, a_bits=4, lanes=4, depth=2).acc_bits == 11


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
def test_bitplane_takes_one_bit_weights_and_activations(signed):
    cfg = PEConfig(kind="bitplane", w_bits=1, a_bits=1, a_signed=signed)
    pairs = np.array(list(itertools.product(act_range(1, True), act_range(1, signed))))
    check(cfg, pairs[:, 1:], pairs[:, :1])


def test_accumulator_width_is_the_numerics_rule_and_never_overflows():
    # int8 x uint8 over 4 lanes x 16 vectors: 64 * 255 * 127 = 2,072,640 < 2**21, so 21
    # magnitude bits and a sign: 22 bits
    cfg = PEConfig(kind="int", w_bits=8, a_bits=8, lanes=4, depth=16)
    assert cfg.acc_bits == 22
    worst = np.full((16, 4), 255)
    codes = np.full((16, 4), 0x81)  # -127
    first = np.eye(1, 16, 0, dtype=int)[0]
    last = np.eye(1, 16, 15, dtype=int)[0]
    check(cfg, worst, codes, first, last)
    check(cfg, worst, np.full((16, 4), 0x7F), first, last)


@pytest.mark.parametrize("bad,message", [
    (dict(kind="float"), "unknown PE kind 'float'"),
    (dict(kind="pot", w_bits=7), "pot width must be 2..6 bits, not 7"),
    (dict(kind="ternary", multiplier="dsp"), "a ternary PE cannot take multiplier='dsp'"),
    (dict(kind="int", w_bits=8, lanes=0), "lanes must be 1..1024, not 0"),
    (dict(kind="ternary", lanes=2, weights=(1, 2)), "baked weight code 2 at lane 1 is not a "
                                                     "valid ternary code"),
    (dict(kind="int", w_bits=8, multiplier="wallace"), "multiplier must be one of lut, dsp"),
    (dict(kind="bitplane", w_bits=4, weights=(1,)), "cannot be baked"),
])
def test_bad_configuration_is_refused_with_a_clear_message(bad, message):
    params = dict(kind="int", w_bits=2, a_bits=8) | bad
    if params["kind"] == "ternary":
        params["w_bits"] = 2
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        PEConfig(**params)


def test_dsp_budget():
    up5k = DEVICES["up5k"]
    eight = [PEConfig(kind="int", w_bits=8, a_bits=8, lanes=4, multiplier="dsp")] * 2
    assert check_dsp_budget(eight, up5k) == 8
    with pytest.raises(ValueError, match="needs 9 SB_MAC16 but the up5k has 8"):
        check_dsp_budget(eight + [PEConfig(kind="int", w_bits=8, a_bits=8,
                                           multiplier="dsp")], up5k)
    assert check_dsp_budget([PEConfig(kind="int", w_bits=8, a_bits=8, lanes=64)], up5k) == 0


# -- the recipe: a new kind is one module (here: one class) and one registry line ----------

class NegatedBinaryPE(PEKind):
    """A toy kind: binary codes read the other way round, code 1 is ``+x``, 0 is ``-x``."""

    name = "neg"
    weight_scheme = "binary"

    def product(self, cfg, x, code):
        return xor_negate(~code[0], x)

    def sums(self, cfg, x, w, w_prec, x_prec):
        return np.where(w == 1, x, -x).sum(axis=1)   # its own golden model, not the hardware's


@pytest.fixture
def neg_kind():
    kind = pes.register(NegatedBinaryPE())
    try:
        yield kind
    finally:
        pes.unregister(kind.name)


def test_a_registered_kind_elaborates_and_matches_its_reference(neg_kind):
    assert "neg" in pes.kinds()
    cfg = PEConfig(kind="neg", w_bits=1, a_bits=4, a_signed=True)
    pairs = np.array(list(itertools.product([0, 1], act_range(4, True))))
    check(cfg, pairs[:, 1:], pairs[:, :1])
    # hand-computed: codes (1, 0, 1) times (3, 5, -7) is 3 - 5 - 7
    assert cfg.reference([[3, 5, -7]], [[1, 0, 1]]).tolist() == [-9]
    # the corners a kind the hand-picked lists do not name is run at
    for cfg, _ in corner_configs("neg"):
        random_check(cfg, 120, seed=5)
    assert pes.for_scheme("binary").name == "binary"   # the toy serves no scheme's layers


def test_the_toy_kind_is_gone_after_its_test():
    assert "neg" not in pes.kinds()
    with pytest.raises(ValueError, match="unknown PE kind 'neg'"):
        PEConfig(kind="neg", w_bits=1, a_bits=4)


def test_the_registry_refuses_clashes():
    with pytest.raises(ValueError, match="PE kind 'int' is already registered"):
        pes.register(type("Again", (NegatedBinaryPE,), {"name": "int"})())
    with pytest.raises(ValueError, match="binary layers already run on binary PEs"):
        pes.register(type("Thief", (NegatedBinaryPE,), {"serves": ("binary",)})())
    with pytest.raises(ValueError, match="exactly one of product and front"):
        type("Empty", (PEKind,), {"name": "empty"})()
    with pytest.raises(ValueError, match="no PE kind 'neg' is registered"):
        pes.unregister("neg")
    assert "neg" not in pes.kinds()


def test_layers_find_their_kind_and_default_array_in_the_registry():
    from rtl_gen.hw.pes.layers import default_array
    assert {s: pes.for_scheme(s).name for s in ("binary", "ternary", "pot", "apot", "int")} \
        == {"binary": "binary", "ternary": "ternary", "pot": "pot", "apot": "apot",
            "int": "int"}
    assert pes.for_scheme("signmag") is None          # runs on the term-revealing array
    assert [default_array(s).lanes for s in ("binary", "ternary", "pot", "int", "signmag")] \
        == [4, 4, 1, 1, 1]


@pytest.mark.parametrize("name", pes.kinds())
def test_a_kinds_widths_are_exactly_the_widths_it_builds(name):
    """``widths()`` lists every weight width a configuration of the kind accepts, and no
    other (1..32 tried; the largest activation width its ``a_widths()`` allows); likewise
    ``a_widths()`` the activation widths (at its smallest weight width)."""
    kind = pes.get(name)

    def accepted(**bits):
        try:
            PEConfig(kind=name, **bits)
        except ValueError:
            return False
        return True

    a_bits, w_bits = max(kind.a_widths()), min(kind.widths())
    assert tuple(b for b in range(1, 33) if accepted(w_bits=b, a_bits=a_bits)) == \
        tuple(kind.widths())
    assert tuple(a for a in range(1, 33) if accepted(w_bits=w_bits, a_bits=a)) == \
        tuple(kind.a_widths())
