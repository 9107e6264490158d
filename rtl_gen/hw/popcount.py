"""Population count as a compressor tree for 4-input-LUT + carry-chain fabrics.

``popcount(m, bits)`` adds up one-bit values.  Yosys, given ``sum(bits)``, builds a
carry-save tree of full adders (two LUT3s per bit removed) and one final ripple adder.  On
the iCE40 and ECP5 a logic cell in a carry chain is a full adder on its own (the LUT makes
the sum bit, the hard carry the majority), so a ripple adder removes one bit per logic cell:
half the cost of a LUT full adder.  What makes small ripple adders expensive is their ends:
on the iCE40 a carry-in from the fabric needs a *feed-in* cell and a carry-out to the fabric
a *feed-out* cell, two cells of overhead per adder.

The tree below spends one cell per adder instead of two.  All adders of one tree level are
laid end to end in one addition ``X + Y``; between two neighbours sits a *stitch* cell whose
two carry operands are both the same raw input bit ``r``::

      adder k-1          stitch          adder k
    ... [ s ][ s ]──co──►[ I1=r I2=r ]──r──►[ s ][ s ] ...
                          LUT: 0^... = co     carry: maj(r, r, co) = r

The stitch cell's LUT output is ``r ^ r ^ co = co``, the carry-out of adder ``k-1`` (its
feed-out), and its carry output is ``maj(r, r, co) = r``, the carry-in of adder ``k`` (its
feed-in), which absorbs ``r`` for free.  So an adder of two ``w``-bit counts and one raw bit
costs ``w + 1`` cells and removes ``w`` bits.  The leaves are full adders in LUTs (two LUT3s
for three bits), which also keeps the XOR/XNOR/AND in front of a popcount inside LUTs that
abc can merge.  The construction is plain Amaranth arithmetic (no vendor primitives), so it
simulates in ``amaranth.sim`` and maps on any fabric; the stitch trick pays on iCE40
(``SB_CARRY``) and ECP5 (``CCU2C``) alike.

Tree, for ``N = 15`` raw bits (``FA``: LUT full adder; ``+c``: chained adder with carry-in)::

    b0 b1 b2   b3 b4 b5   b6 b7 b8   b9 b10 b11
     [FA]       [FA]       [FA]        [FA]           level 0: LUTs
        \\       /  b12        \\        /  b13
         [ +c  ]               [  +c   ]              level 1: one carry chain
               \\                 /  b14
                [       +c       ]                    level 2: one carry chain

On the ECP5 (``fabric="ecp5"``) the tree is built from ``CCU2C`` primitives, whose half
cells are more than an iCE40 carry cell: the propagate is a full LUT4 of ``A, B, C, D`` and
the generate a LUT2 of ``A, B`` (the LUT4's entries with ``C = D = 0``).  A stitch cell
(``D = 1``) then takes its carry-in lane as ``x ^ w`` (or ``x & w``) straight from the two
input bits, and one cell adds two raw lanes, XORs included; so a leaf full adder is two
chained cells and no raw bit needs a LUT of its own: 64 XOR lanes in 55 ``CCU2C`` (1.72
LUT4 per lane) against 101 LUT4 + 36 ``CCU2C`` (2.70) for the generic tree.

Chains are cut every ``max_chain`` cells (a cut costs the stitch saving once) because static
timing sees the false path through each stitch cell's carry.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value

__all__ = ["DEFAULT_MAX_CHAIN", "TREE_MIN_BITS", "popcount", "popcount_depth"]

#: Longest carry chain (in cells) before a new chain is started.  A chain's static timing
#: path runs its whole length (through the logically false stitch paths), so this bounds
#: the combinational delay of one tree level; 24 cells are three iCE40 logic blocks.
DEFAULT_MAX_CHAIN = 24
#: From this many bits up ``method="auto"`` builds the tree.  Below it the chains' end cells
#: outweigh what they save: on the UP5K (LC, Yosys ``sum`` / tree) 8 bits 13 / 17, 12 bits
#: 18 / 22, 20 bits 35 / 35, 32 bits 56 / 55, 64 bits 116 / 104, 256 bits 505 / 400.
TREE_MIN_BITS = 20
#: Bits per leaf full adder.  Leaves of 2 (half adders, which absorb an XOR in front in one
#: LUT4) measured 131 / 147 LC at 64 plain / XOR bits against 104 / 143 for 3; leaves of 1
#: (raw bits straight into the chains) 103 / 161.
DEFAULT_LEAF = 3


@dataclasses.dataclass
class _Count:
    """A partial count: ``value`` holds a number in ``0 .. most``."""

    value: Value
    most: int

    @property
    def width(self) -> int:
        return max(1, self.most.bit_length())


def _counter(bits: Sequence[Value]) -> _Count:
    """The count of ``bits`` in LUT logic: columns of full adders (three bits of one weight
    to a sum of that weight and a carry of the next) and half adders, until every column
    holds one bit.  Up to three bits this is one full adder."""
    cols: list[list[Value]] = [list(bits)]
    w = 0
    while w < len(cols):
        col = cols[w]
        while len(col) > 1:
            if len(col) >= 3:
                a, b, c = col.pop(0), col.pop(0), col.pop(0)
                s, k = a ^ b ^ c, (a & b) | (a & c) | (b & c)
            else:
                a, b = col.pop(0), col.pop(0)
                s, k = a ^ b, a & b
            col.append(s)
            if w + 1 == len(cols):
                cols.append([])
            cols[w + 1].append(k)
        w += 1
    most = len(bits)
    value = Cat(*(c[0] for c in cols))[:max(1, most.bit_length())]
    return _Count(value, most)


def _plan(n: int, leaf: int) -> tuple[int, int]:
    """Leaf count and cin count for ``n`` bits: each adder of the tree absorbs one raw bit.

    With ``L`` leaves of up to ``leaf`` bits the tree has ``L - 1`` adders, so
    ``leaf * L + L - 1 >= n``.
    """
    leaves = max(1, -(-(n + 1) // (leaf + 1)))
    return leaves, min(leaves - 1, n - leaves)


def _chain(m: Module, adders: list[tuple[_Count, _Count, Value | None]], name: str,
           max_chain: int) -> list[_Count]:
    """Sum each ``(a, b, cin)``; adders are laid end to end in carry chains (stitched)."""
    results: list[_Count] = []
    groups: list[list[tuple[_Count, _Count, Value | None]]] = [[]]
    cells = 0
    for adder in adders:
        a, b, _ = adder
        w = max(a.width, b.width) + 1
        if groups[-1] and cells + w > max_chain:
            groups.append([])
            cells = 0
        groups[-1].append(adder)
        cells += w
    for g, group in enumerate(groups):
        xs: list[Value] = []
        ys: list[Value] = []
        slices: list[tuple[int, int, int]] = []
        pos = 0
        for a, b, cin in group:
            # the cell before the adder: its carry output is maj(cin, cin, co) = cin; its sum
            # output (cin ^ cin ^ co = co) is the previous adder's carry-out
            r = cin if cin is not None else Const(0, 1)
            xs.append(r)
            ys.append(r)
            pos += 1
            w = max(a.width, b.width)
            xs.append(_zext(a.value, w))
            ys.append(_zext(b.value, w))
            most = a.most + b.most + (cin is not None)
            slices.append((pos, w + 1, most))
            pos += w
        # the last adder's carry-out comes out of the top of the addition
        x, y = Cat(*xs), Cat(*ys)
        total = Signal(len(x) + 1, name=f"{name}_chain{g}")
        m.d.comb += total.eq(x + y)
        for start, width, most in slices:
            results.append(_Count(total[start:start + min(width, most.bit_length())], most))
    return results


#: ``CCU2C`` half-cell LUT contents (``INIT``, indexed by ``{D, C, B, A}``).  The half's
#: propagate is the LUT4 ``P``, its generate the LUT2 ``G`` = ``INIT[{B, A}]`` (the entries
#: with ``C = D = 0``); ``S = P ^ CIN`` and ``COUT = P ? CIN : G`` (``INJECT1 = "NO"``).
#: Stitch (``D = 1``): ``P = 0``, so ``S`` passes the carry in out, and ``G = A ^ B`` is the
#: next adder's carry-in, a raw ``x ^ w`` lane absorbed for free.
_INIT_STITCH = 0x0006
#: Two raw lanes ``(A ^ B) + (C ^ D)``: ``P = A ^ B ^ C ^ D``; ``G = A ^ B``, which equals
#: the carry whenever ``P = 0`` (both lanes equal).  Lanes ``A & B`` work alike
#: (:func:`_lut_init`).
_INIT_LANES = 0x6996
_OPS = {"^": lambda a, b: a ^ b, "&": lambda a, b: a & b}


def _lut_init(f) -> int:
    """A LUT4's ``INIT`` for ``f(a, b, c, d)`` (index ``{D, C, B, A}``)."""
    return sum(f(i & 1, i >> 1 & 1, i >> 2 & 1, i >> 3 & 1) << i for i in range(16))


def _stitch_init(op: str) -> int:
    """Stitch absorbing the lane ``A op B`` (``D = 1``: ``P = 0``, ``G = A op B``)."""
    return _lut_init(lambda a, b, c, d: 0 if d else _OPS[op](a, b) if not c else 0)


def _lanes_init(op0: str, op1: str) -> int:
    """Two lanes ``(A op0 B) + (C op1 D)``: ``P`` their XOR, ``G = A op0 B`` (both ops give
    0 on zeros, so ``G = P(A, B, 0, 0)``), the carry whenever ``P = 0``."""
    return _lut_init(lambda a, b, c, d: _OPS[op0](a, b) ^ _OPS[op1](c, d))
#: One bit of a count adder (``D = 1``, as Yosys's own map): ``P = A ^ B``, ``G = A``.
_INIT_ADD = 0x96AA


@dataclasses.dataclass(frozen=True)
class _Lane:
    """One counted bit as ``a op b`` (``op`` ``^`` or ``&``; ``a ^ 0`` for a plain bit)."""

    a: Value
    b: Value
    op: str = "^"

    @classmethod
    def of(cls, bit: Value) -> _Lane:
        from amaranth.hdl._ast import Operator  # the XOR / AND in front, to absorb it

        if (isinstance(bit, Operator) and bit.operator in _OPS and len(bit.operands) == 2
                and all(len(o) == 1 for o in bit.operands)):
            return cls(*bit.operands, bit.operator)
        return cls(bit, Const(0, 1))

    @property
    def value(self) -> Value:
        return self.a ^ self.b if self.op == "^" else self.a & self.b


def _ccu2c(m: Module, name: str, cin: Value, halves, model: bool) -> tuple[Value, Value, Value]:
    """One ``CCU2C`` (two half cells ``(init, a, b, c, d)``): ``(s0, s1, cout)``; with
    ``model`` its logic in Amaranth (what ``amaranth.sim`` runs), else the primitive."""
    s0, s1, cout = (Signal(name=f"{name}_{p}") for p in ("s0", "s1", "cout"))
    (init0, *in0), (init1, *in1) = halves
    if not model:
        from amaranth.hdl import Instance

        ports = {f"i_{p}{h}": Value.cast(v) for h, ins in ((0, in0), (1, in1))
                 for p, v in zip("ABCD", ins, strict=True)}
        m.submodules[name] = Instance(
            "CCU2C", p_INIT0=Const(init0, 16), p_INIT1=Const(init1, 16),
            p_INJECT1_0="NO", p_INJECT1_1="NO", i_CIN=cin, o_S0=s0, o_S1=s1, o_COUT=cout,
            **ports)
        return s0, s1, cout
    carry = cin
    for s, (init, *ins) in ((s0, (init0, *in0)), (s1, (init1, *in1))):
        p = Const(init, 16).bit_select(Cat(*ins), 1)
        g = Const(init & 0xF, 4).bit_select(Cat(*ins[:2]), 1)
        m.d.comb += s.eq(p ^ carry)
        nxt = Signal(name=f"{s.name}_co")
        m.d.comb += nxt.eq(Mux(p, carry, g))
        carry = nxt
    m.d.comb += cout.eq(carry)
    return s0, s1, cout


def _chain_ecp5(m: Module, adders: list, name: str, max_chain: int,
                model: bool) -> list[_Count]:
    """:func:`_chain` in ECP5 ``CCU2C`` cells.  An adder is ``(a, b, cin)``: ``a`` and ``b``
    two counts, or two lanes (one cell adds them, their XORs included); ``cin`` a lane or
    ``None``, absorbed by the stitch cell before the adder."""
    zero, one = Const(0, 1), Const(1, 1)
    results: list[_Count] = []
    groups: list[list] = [[]]
    cells = 0
    for adder in adders:
        a, b, _ = adder
        w = 1 if isinstance(a, _Lane) else max(a.width, b.width)
        if groups[-1] and cells + w + 1 > max_chain:
            groups.append([])
            cells = 0
        groups[-1].append(adder)
        cells += w + 1
    for g, group in enumerate(groups):
        chain = []  # (init, A, B, C, D) per half cell
        slices: list[tuple[int, int, int]] = []
        for a, b, cin in group:
            r = cin if cin is not None else _Lane(zero, zero)
            chain.append((_stitch_init(r.op), r.a, r.b, zero, one))
            if isinstance(a, _Lane):
                chain.append((_lanes_init(a.op, b.op), a.a, a.b, b.a, b.b))
                w, most = 1, 2
            else:
                w = max(a.width, b.width)
                av, bv = _zext(a.value, w), _zext(b.value, w)
                chain += [(_INIT_ADD, av[i], bv[i], zero, one) for i in range(w)]
                most = a.most + b.most
            slices.append((len(chain) - w, w + 1, most + (cin is not None)))
        chain.append((_INIT_STITCH, zero, zero, zero, one))  # the last carry out
        if len(chain) % 2:
            chain.append((_INIT_STITCH, zero, zero, zero, one))
        outs: list[Value] = []
        carry: Value = zero
        for k in range(0, len(chain), 2):
            s0, s1, carry = _ccu2c(m, f"{name}_chain{g}_c{k // 2}", carry,
                                   chain[k:k + 2], model)
            outs += [s0, s1]
        for start, width, most in slices:
            results.append(_Count(Cat(*outs[start:start + min(width, most.bit_length())]),
                                  most))
    return results


def _zext(v: Value, w: int) -> Value:
    v = v.as_unsigned()
    if len(v) >= w:
        return v[:w]
    return Cat(v, Const(0, w - len(v)))


def _levels(n: int, leaf: int) -> int:
    leaves, _ = _plan(n, leaf)
    depth = 1
    while leaves > 1:
        leaves = (leaves + 1) // 2
        depth += 1
    return depth


def popcount_depth(n: int, leaf: int = DEFAULT_LEAF) -> int:
    """Number of logic levels of :func:`popcount` over ``n`` bits (leaf LUTs, then one per
    chained adder level); ``stages`` registers are spread over the boundaries between them.
    """
    if n < 1:
        raise ValueError(f"popcount needs at least one bit, not {n!r}")
    return _levels(n, leaf)


def popcount(m: Module, bits: Value | Sequence[Value], *, stages: int = 0,
             domain: str = "sync", max_chain: int = DEFAULT_MAX_CHAIN,
             method: str = "auto", leaf: int = DEFAULT_LEAF, fabric: str = "generic",
             name: str = "popcount") -> Value:
    """Number of ones among ``bits``, as a compressor tree with optional pipeline registers.

    Parameters
    ----------
    m:
        The module that receives the logic (``comb``) and the registers (``domain``).
    bits:
        The bits to count: a value (each of its bits counts once) or a sequence of one-bit
        values (any expression, e.g. ``x[i] ^ w[i]``; abc merges it into the leaf LUTs).
    stages:
        Pipeline register levels inserted, reset-less (datapath), spread evenly over the
        tree's level boundaries (:func:`popcount_depth`); stages beyond them are placed at
        the output.  ``0`` gives a purely combinational count.
    domain:
        Clock domain of the registers.
    method:
        ``"tree"``: the stitched compressor tree above; ``"sum"``: ``sum(bits)`` as Yosys
        maps it (a LUT full-adder tree and one ripple adder; its ``stages`` registers all sit
        at the output); ``"auto"``: ``"tree"`` from :data:`TREE_MIN_BITS` bits up, where it
        is measured smaller on the iCE40 (``benchmarks/popcount.py``), else ``"sum"``.
    max_chain:
        Longest carry chain in cells; see :data:`DEFAULT_MAX_CHAIN`.
    leaf:
        Bits per leaf counter of the tree (:data:`DEFAULT_LEAF`), each a column
        compressor in LUT logic: 3 a full adder, 6 or 7 a 6:3 / 7:3 counter.
    fabric:
        ``"generic"``: plain Amaranth arithmetic, which Yosys maps on any device;
        ``"ecp5"``: the tree's adders as ECP5 ``CCU2C`` cells, every leaf a carry-chain full
        adder and every raw bit (``x ^ w`` and ``x & w`` included) absorbed into a carry
        cell's LUT (no LUT of its own); ``"ecp5-model"``: the same cells as Amaranth logic, what
        ``amaranth.sim`` runs (the primitive is a black box to it).  ECP5 trees take leaves
        of at most 3 bits.
    name:
        Prefix for the internal signals' names.

    Returns
    -------
    Value
        Unsigned, ``len(bits).bit_length()`` bits wide, equal to the number of ones of the
        ``bits`` present ``stages`` clock edges earlier (latency = ``stages`` cycles).

    Raises
    ------
    ValueError
        No bits, a bit wider than one, a negative ``stages``, an unknown ``method``, or
        ``max_chain`` below 4.
    """
    if isinstance(bits, Value):
        bits = [bits[i] for i in range(len(bits))]
    else:
        bits = [Value.cast(b) for b in bits]
        for i, b in enumerate(bits):
            if len(b) != 1:
                raise ValueError(f"popcount bits must be one bit wide; bit {i} is {b!r}")
    n = len(bits)
    if n < 1:
        raise ValueError(f"popcount needs at least one bit, not {n!r}")
    if not isinstance(stages, int) or stages < 0:
        raise ValueError(f"stages must be a non-negative integer, not {stages!r}")
    if not isinstance(max_chain, int) or max_chain < 4:
        raise ValueError(f"max_chain must be an integer of at least 4, not {max_chain!r}")
    if isinstance(leaf, bool) or not isinstance(leaf, int) or not 1 <= leaf <= 15:
        raise ValueError(f"leaf must be an integer from 1 to 15, not {leaf!r}")
    if fabric not in ("generic", "ecp5", "ecp5-model"):
        raise ValueError(f"fabric must be 'generic', 'ecp5' or 'ecp5-model', not {fabric!r}")
    ecp5 = fabric != "generic"
    if ecp5 and leaf > 3:
        raise ValueError(f"fabric {fabric!r} takes leaves of at most 3 bits, not {leaf}")
    if method not in ("auto", "tree", "sum"):
        raise ValueError(f"method must be 'auto', 'tree' or 'sum', not {method!r}")
    if method == "auto":
        method = "tree" if n >= TREE_MIN_BITS else "sum"

    def register(values: list[Value], tag: str) -> list[Value]:
        out = []
        for i, v in enumerate(values):
            r = Signal(len(v), name=f"{name}_{tag}{i}", reset_less=True)
            m.d[domain] += r.eq(v)
            out.append(r)
        return out

    if method == "sum":
        value = _zext(sum(b.as_unsigned() for b in bits), n.bit_length())
        for t in range(stages):
            (value,) = register([value], f"out{t}_")
        return value

    depth = _levels(n, leaf)
    # register levels go after tree levels 1 .. depth-1, evenly spread; any more at the end
    inner = min(stages, depth - 1)
    cuts = [int((k + 1) * depth / (inner + 1) + 0.5) for k in range(inner)]
    tail = stages - inner

    leaves, ncin = _plan(n, leaf)
    if ecp5:
        bits = [_Lane.of(b) for b in bits]
    leaf_bits, cins = bits[:n - ncin], bits[n - ncin:]
    # as even as possible: sizes differ by at most one, none above three
    bounds = [len(leaf_bits) * k // leaves for k in range(leaves + 1)]
    groups = [leaf_bits[lo:hi] for lo, hi in zip(bounds, bounds[1:], strict=False)]
    if not ecp5:
        counts = [_counter(g) for g in groups]
    else:
        # a leaf of 2 or 3 lanes is a carry-chain full adder: one cell adds two lanes, the
        # stitch before it absorbs the third as the carry-in
        counts = [_Count(g[0].value, 1) for g in groups if len(g) == 1]
        adders = [(g[0], g[1], g[2] if len(g) == 3 else None) for g in groups if len(g) > 1]
        counts += _chain_ecp5(m, adders, f"{name}_l0", max_chain, fabric == "ecp5-model")
    level = 1

    def cut(counts: list[_Count], cins: list, level: int):
        for _ in range(cuts.count(level)):
            regs = register([c.value for c in counts], f"l{level}_")
            counts = [_Count(r, c.most) for r, c in zip(regs, counts, strict=True)]
            if ecp5:
                cins = [_Lane(r, Const(0, 1))
                        for r in register([c.value for c in cins], f"l{level}_cin")]
            else:
                cins = register(cins, f"l{level}_cin")
        return counts, cins

    counts, cins = cut(counts, cins, level)
    while len(counts) > 1:
        counts = sorted(counts, key=lambda c: c.most)
        adders = []
        for i in range(0, len(counts) - 1, 2):
            adders.append((counts[i], counts[i + 1], cins.pop() if cins else None))
        odd = [counts[-1]] if len(counts) % 2 else []
        if ecp5:
            counts = _chain_ecp5(m, adders, f"{name}_l{level}", max_chain,
                                 fabric == "ecp5-model") + odd
        else:
            counts = _chain(m, adders, f"{name}_l{level}", max_chain) + odd
        level += 1
        counts, cins = cut(counts, cins, level)
    result = counts[0]
    for c in cins:  # only when the plan leaves spare raw bits (tiny n)
        result = _Count(result.value + (c.value if ecp5 else c), result.most + 1)
    value = result.value
    for t in range(tail):
        (value,) = register([value], f"out{t}_")
    return _zext(value, n.bit_length())
