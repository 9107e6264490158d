"""The area model of an integer network's layer engines (pure Python, no Amaranth).

An engine's resources follow from its plan: the ``R x C`` array of PEs of ``L`` lanes (each
lane a product of an ``a``-bit activation and a ``w``-bit weight code, summed by an adder
tree into an ``acc``-bit accumulator, operands forwarded along the systolic chains), the
drain's constant tables (bias, and for a hidden layer the requantization multiplier, rounding
and shift, one entry per output slot ``tiles * C``), the output FIFO and the fixed parts
(sequencer, drain counters); the engine as ``--fit`` and a board build build it, without the
layers' cycle counters (the bare network: no harness, no host link).  The model is linear
in features of that plan (:func:`features`), with one coefficient per feature and device
family, fit by least squares on synthesis results (:mod:`rtl_gen.design.area_calibration`
says from what; ``benchmarks/area_model.py`` re-fits and checks them).

* logic: iCE40 ``ICESTORM_LC`` after packing, ECP5 ``TRELLIS_COMB`` (LUT4 slices) after
  packing;
* flip-flops: by the same linear model with its own coefficients;
* DSP: the requantization product of a hidden layer with a multiplying requantizer (the
  array's result by ``M``, ``r_bits x (m_bits + 1)``: ``M`` unsigned taken as a signed
  operand) in the family's hard multipliers (iCE40 16x16, ECP5 18x18, split as Yosys'
  ``mul2dsp`` splits it), none for a threshold requantizer; the weight ROM's address
  ``tile * k_steps``, which Yosys maps to a hard multiplier when ``k_steps`` has an odd
  factor above one and the product is wide enough (iCE40: 11 bits); one per lane of ``int``
  PEs on the ``dsp`` multiplier.  As synthesized: ``mnist-tfc-binary`` at ``--fit up5k``
  none (threshold requantizers; fc1's ``tile * 49`` is 8 bits wide at 4 tiles), the MNIST
  CNNs 2-3 SB_MAC16 on the UP5K and 4 MULT18X18D on the LFE5U-85F
  (``tests/test_mnist_fit.py``);
* block RAM: each memory of the engine (input banks, weight ROM, output FIFO) that fills
  its blocks well enough (:func:`in_block_ram`), in the fewest blocks of one of the block's
  aspect ratios; a ROM left out becomes logic, a RAM flip-flops (iCE40) or distributed RAM
  (ECP5), which the logic and flip-flop features count.

The PE kinds differ in one number per family, the cost of a lane's product relative to a
binary lane (:data:`LANE_FACTOR`, from ``benchmarks/results/pe_cost.json``: a binary lane is
an XOR and a carry-in, a ``w``-bit ``int`` lane a ``w``-bit multiplier).
"""

from __future__ import annotations

import dataclasses
import math

__all__ = ["LANE_FACTOR", "PAIRED_FACTOR", "PAIRED_KINDS", "Area", "EngineShape",
           "dsp_blocks", "estimate_layer", "estimate_network", "features", "features_v1",
           "memory_blocks", "paired_bits", "tree_bits"]

#: Cost of one lane's product over that of a binary lane's (an XOR and a carry-in), per
#: family and PE kind, from the bare units of ``benchmarks/results/pe_cost.json`` (8-bit
#: activations, 4-bit weights).  iCE40: a binary lane 43 LC (binary-x16 714 against 71 at one
#: lane), ternary-x16 47 a lane, pot4-x16 88; at one lane apot4 +30 LC over binary, int4 +87
#: and int8 +172 (a ``w``-bit lane multiplier: ``1 + w/2``), bitplane +87.  ECP5: a binary
#: lane 65 LUT4 (1010 at 16 lanes), ternary 55, pot4 152; at one lane apot4 +27, int4 +103,
#: int8 +229 (``1 + 0.45 w``), bitplane +87.  ``tr`` is unused (the term-pair array has
#: features of its own: a layer's fixed parts and its columns); ``int-dsp`` a lane in a hard
#: multiplier.
LANE_FACTOR = {
    "ice40": {
        "binary": lambda w: 1.0,
        "xnor": lambda w: 0.25,
        "ternary": lambda w: 1.1,
        "pot": lambda w: 2.0,
        "apot": lambda w: 1.7,
        "int": lambda w: 1.0 + w / 2,
        "int-dsp": lambda w: 0.3,
        "bitplane": lambda w: 3.0,
        "tr": lambda w: 1.5,
    },
    "ecp5": {
        "binary": lambda w: 1.0,
        "xnor": lambda w: 0.25,
        "ternary": lambda w: 0.85,
        "pot": lambda w: 2.3,
        "apot": lambda w: 1.4,
        "int": lambda w: 1.0 + 0.45 * w,
        "int-dsp": lambda w: 0.3,
        "bitplane": lambda w: 2.3,
        "tr": lambda w: 1.5,
    },
}


@dataclasses.dataclass(frozen=True)
class EngineShape:
    """What the area model needs to know of one layer engine (from its plan).

    ``kind`` is the PE kind (``"tr"`` for the term-pair array, ``"int-dsp"`` for ``int``
    PEs on hard multipliers); ``tiles`` and ``k_steps`` as in
    :class:`~rtl_gen.design.timing.LayerTiming`; ``fifo_depth`` the output FIFO's entries;
    ``out_bits`` the width of an output (the accumulator's for logits).
    """

    kind: str
    rows: int
    cols: int
    lanes: int
    k: int
    n: int
    a_bits: int
    w_bits: int
    acc_bits: int
    out_bits: int
    requantize: bool
    tiles: int
    k_steps: int
    fifo_depth: int
    #: The requantizer's method (:func:`rtl_gen.hw.kit.plan_requant`): ``"multiply"`` (a
    #: product ``acc x M`` in hard multipliers) or ``"threshold"`` (comparisons in logic, no
    #: multiplier).
    requant_method: str = "multiply"
    #: Bits of the requantization multiplier ``M`` (unsigned; the product takes it with a
    #: sign bit, as a signed operand).
    m_bits: int = 30
    #: Bits of the product's other operand, the array's result (the accumulator without the
    #: bias, which the requantizer adds as a constant); 0: ``acc_bits``.
    r_bits: int = 0
    #: ``(depth, width)`` of the weight ROM when it is not ``tiles * k_steps`` words of
    #: ``cols * lanes * w_bits`` (the term-pair array's ROM of weight terms); None: that.
    rom: tuple[int, int] | None = None
    #: The weight ROM in block RAM whatever its fill (:attr:`~rtl_gen.hw.layer.ArrayConfig.rom`
    #: ``"block"``); False: where Yosys puts it (:func:`in_block_ram`).
    rom_block: bool = False
    #: Terms a lane gives its PE's adder tree: 1, its product; more where the PE kind gives
    #: the product's partial-product rows as terms (int8's radix-4 Booth rows: 5).
    row_terms: int = 1
    #: The drain shifts the results out instead of selecting them
    #: (:attr:`~rtl_gen.hw.layer.ArrayConfig.drain` ``"shift"``): no ``select`` bits.
    drain_shift: bool = False
    #: Term-revealing layers reading their activations from copies of the input banks
    #: (:attr:`~rtl_gen.hw.layer.ArrayConfig.tr_read` ``"memory"``): the copies, one per
    #: term lane of each PE, in block RAM; 0: the PEs select from the group word.
    tr_copies: int = 0
    #: Results the drain reads a cycle (:attr:`~rtl_gen.hw.layer.ArrayConfig.drain_width`):
    #: that many selects over ``R*C/D`` results and requantization products (the model's
    #: coefficients are fit on one; the further requantizers' logic is not in it).
    drain_width: int = 1

    @property
    def pes(self) -> int:
        return self.rows * self.cols

    @property
    def weight_rom(self) -> tuple[int, int, bool]:
        """``(depth, width, True)`` of the weight ROM."""
        if self.rom is not None:
            return (*self.rom, True)
        return (self.tiles * self.k_steps, max(1, self.cols * self.lanes * self.w_bits), True)

    @property
    def memories(self) -> list[tuple[int, int, bool, bool]]:
        """``(depth, width, rom, block)`` of each memory: the row banks (or their copies of
        one activation a word, :attr:`tr_copies`, marked for block RAM), the weight ROM
        (marked where :attr:`rom_block`), the FIFO."""
        if self.tr_copies:
            banks = [(2 * self.k_steps * self.lanes, self.a_bits, False, True)] \
                * (self.rows * self.tr_copies)
        else:
            banks = [(2 * self.k_steps, self.lanes * self.a_bits, False, False)] * self.rows
        return [*banks, (*self.weight_rom, self.rom_block),
                (self.fifo_depth, self.out_bits, False, False)]


#: The names of :func:`features`, in order (the calibration's coefficients follow them).
FEATURES = ("layer", "pe", "acc", "sign_lane", "mult_lane", "int_lane", "tree", "tr_layer",
            "tr_col", "fwd", "slots", "rom_fabric", "ram_fabric", "row_terms", "select",
            "tr_layer_memory", "tr_col_memory")

#: Kinds whose lane is a sign (a conditional negation): their lanes have a coefficient of
#: their own (``sign_lane``); ``int`` lanes are ``a x w``-bit multipliers in LUTs
#: (``int_lane``: the product's partial-product bits); the others' lanes multiply by a
#: shift or two (``mult_lane``).
SIGN_KINDS = ("binary", "ternary", "xnor")

#: Kinds whose unit makes one term of each pair of lanes (:mod:`rtl_gen.hw.pes.binary`:
#: ``±(x1 + x2)`` or ``±(x1 - x2)``, a LUT per bit from the pair's shared sum and
#: difference) and sums the terms on carry chains (the carry-ins fused into the adders), so
#: that their ``tree`` feature counts the pair terms' bits, the pairs' sums' and the adder
#: tree's over the pair terms, each weighted by :data:`PAIRED_FACTOR`.
PAIRED_KINDS = ("binary",)
#: ``(select, sums, tree)``: the cost of a paired kind's pair-term bit, of a bit of the
#: pairs' sums and differences (one set per row of an array that broadcasts its
#: activations, one per PE of a skewed one) and of its tree's adder bit (a two-operand adder
#: on the carry chain), all three counted in the ``tree`` feature, over that feature's
#: coefficient (fit on the three-operand adders of the other sign kinds, which Yosys builds
#: as full adders in LUTs); a paired kind has no ``sign_lane`` bits.  Per family, fit on the
#: synthesis of binary
#: networks built with paired lanes: the binary rows of
#: ``benchmarks/results/area_model.json`` and the ``mnist-tfc-binary`` designs of
#: ``benchmarks/results/mnist_fit.json``.
PAIRED_FACTOR = {"ice40": (1.11, 1.05, 0.0), "ecp5": (0.416, 0.741, 0.618)}


def paired_bits(lanes: int, a_bits: int) -> tuple[int, int, int]:
    """``(term bits, sum bits, tree bits)`` of a paired unit of ``lanes`` lanes of
    ``a_bits``: each pair's term is ``a_bits + 2`` bits (an odd lane's ``a_bits + 1``),
    each pair's sum and difference ``a_bits + 1`` bits each, and the tree sums the terms
    (:func:`tree_bits`)."""
    pairs, odd = divmod(lanes, 2)
    return (pairs * (a_bits + 2) + odd * (a_bits + 1), pairs * 2 * (a_bits + 1),
            tree_bits(pairs + odd, a_bits + 2))


def in_block_ram(depth: int, width: int, rom: bool, family: str, c,
                 forced: bool = False) -> bool:
    """Whether Yosys puts a memory in block RAM: when it fills its blocks well enough (at
    least the calibration's ``bram_rom_fill`` / ``bram_ram_fill`` bits per block; a ROM
    left out becomes logic, a RAM flip-flops or, on the ECP5, distributed RAM), or a memory
    marked for block RAM (``forced``: :attr:`EngineShape.rom_block`, the copies of
    :attr:`EngineShape.tr_copies`)."""
    if forced:
        return True
    fill = c["bram_rom_fill" if rom else "bram_ram_fill"]
    return depth * width >= fill * memory_blocks(depth, width, family)


#: The model's first features (layer, PEs, accumulator bits, sign and multiplying lane
#: operand bits, drain table bits, ROM and RAM bits out of block RAM), which coefficients of
#: that length (:data:`~rtl_gen.design.area_calibration.CONV_COEFFICIENTS`) are over.
FEATURES_V1 = ("layer", "pe", "acc", "sign_lane", "mult_lane", "slots", "rom_fabric",
               "ram_fabric")


def _fabric_bits(s: EngineShape, family: str, c) -> tuple[int, int]:
    """Bits of the ROMs and of the RAMs that stay out of block RAM (:func:`in_block_ram`)."""
    rom = ram = 0
    for depth, width, is_rom, block in s.memories:
        if not in_block_ram(depth, width, is_rom, family, c, block):
            if is_rom:  # LUT4s of 16 entries, one column of bits each
                rom += 16 * math.ceil(depth / 16) * width
            elif family == "ecp5":  # distributed RAM cells of 16 words
                ram += 16 * math.ceil(depth / 16) * width
            else:  # flip-flops
                ram += depth * width
    return rom, ram


def features_v1(s: EngineShape, family: str, c) -> tuple[float, ...]:
    """The features of :data:`FEATURES_V1` (every lane's operand bits weighted by its kind's
    :data:`LANE_FACTOR`, sign lanes apart)."""
    factor = LANE_FACTOR[family][s.kind](s.w_bits)
    lane = s.pes * s.lanes * (s.a_bits + s.w_bits) * factor
    sign, mult = (lane, 0.0) if s.kind in SIGN_KINDS else (0.0, lane)
    slots = s.tiles * s.cols * (s.acc_bits + (40 if s.requantize else 0))
    rom, ram = _fabric_bits(s, family, c)
    return (1.0, float(s.pes), float(s.pes * s.acc_bits), sign, mult, float(slots),
            float(rom), float(ram))


def tree_bits(lanes: int, bits: int) -> int:
    """Bits of the adders of a balanced tree summing ``lanes`` values of ``bits`` bits (each
    level's sums one bit wider)."""
    total, n, level = 0, lanes, 0
    while n > 1:
        level += 1
        total += (n // 2) * (bits + level)
        n = (n + 1) // 2
    return total


def features(s: EngineShape, family: str, c) -> tuple[float, ...]:
    """The linear model's features of an engine (:data:`FEATURES`): one (the fixed parts),
    PEs, accumulator bits, lane-product operand bits weighted by the kind's
    :data:`LANE_FACTOR` (sign lanes and shift lanes apart; an ``int`` lane's ``a x w``
    partial-product bits), the bits of each PE's adder tree over its lanes
    (:func:`tree_bits` of the product's operand bits), a term-pair layer's fixed parts (the
    data-term unit, the run-time term controls) and its columns (a ``tr`` engine's PEs; its
    lanes are the group of inputs a term selects from, not products), the operands forwarded
    along the systolic chains (arrays of more than one row; one row broadcasts them), drain
    table bits (``tiles * C`` slots of the bias, and of the requantization constants for a
    hidden layer), the bits of the ROMs and RAMs that stay out of block RAM
    (:func:`in_block_ram`), the operand bits of the partial-product rows a lane gives its
    adder tree beyond the first (:attr:`EngineShape.row_terms`: int8's Booth rows), and the
    drain's select: ``R*C - D`` multiplexer inputs of the result's bits (``D`` selects of
    ``R*C/D``), none where the results shift out (:attr:`EngineShape.drain_shift`); a
    term-pair layer and its PEs count as ``tr_layer`` and ``tr_col`` where the PEs select
    their activations from the group word, as ``tr_layer_memory`` and ``tr_col_memory``
    where each reads its own copy of the banks (:attr:`EngineShape.tr_copies`: no select, no
    banks in flip-flops)."""
    tr = s.kind == "tr"
    factor = LANE_FACTOR[family][s.kind](s.w_bits)
    lane = 0.0 if tr else s.pes * s.lanes * (s.a_bits + s.w_bits) * factor
    sign = mult = prod = 0.0
    if s.kind in SIGN_KINDS:
        sign = lane
    elif s.kind == "int":
        prod = float(s.pes * s.lanes * s.a_bits * s.w_bits)
    else:
        mult = lane
    tree = 0.0 if tr else float(s.pes * tree_bits(s.lanes, s.a_bits + s.w_bits))
    rows = float(s.pes * s.lanes * (s.row_terms - 1) * (s.a_bits + s.w_bits))
    if s.kind in PAIRED_KINDS:
        f_sel, f_sums, f_tree = PAIRED_FACTOR[family]
        term_bits, sum_bits, pair_tree = paired_bits(s.lanes, s.a_bits)
        sums = s.rows if s.rows == 1 else s.pes   # one row broadcasts its activations
        sign = 0.0
        tree = s.pes * (term_bits * f_sel + pair_tree * f_tree) + sums * sum_bits * f_sums
    fwd = float(s.pes * s.lanes * (s.a_bits + s.w_bits)) if s.rows > 1 and not tr else 0.0
    slots = s.tiles * s.cols * (s.acc_bits + (40 if s.requantize else 0))
    rom, ram = _fabric_bits(s, family, c)
    select = 0.0 if s.drain_shift else \
        float((s.pes - s.drain_width) * (s.r_bits or s.acc_bits))
    by_select, by_memory = float(tr and not s.tr_copies), float(tr and bool(s.tr_copies))
    return (1.0, float(s.pes), float(s.pes * s.acc_bits), sign, mult, prod, tree,
            by_select, by_select * s.pes, fwd, float(slots), float(rom), float(ram), rows,
            select, by_memory, by_memory * s.pes)


@dataclasses.dataclass(frozen=True)
class Area:
    """Estimated resources: ``logic`` (iCE40 logic cells / ECP5 LUT4 slices), ``ff``,
    ``dsp``, ``bram`` (iCE40 4-kbit / ECP5 18-kbit blocks)."""

    logic: float = 0.0
    ff: float = 0.0
    dsp: int = 0
    bram: int = 0

    def __add__(self, other: Area) -> Area:
        return Area(self.logic + other.logic, self.ff + other.ff, self.dsp + other.dsp,
                    self.bram + other.bram)


#: Block RAM aspect ratios ``(depth, width)`` per family.
_BRAM_SHAPES = {"ice40": ((256, 16), (512, 8), (1024, 4), (2048, 2)),
                "ecp5": ((512, 36), (1024, 18), (2048, 9), (4096, 4), (8192, 2),
                         (16384, 1))}
#: Hard multiplier operand widths per family: an iCE40 SB_MAC16 multiplies 16 x 16 bits, an
#: ECP5 MULT18X18D 18 x 18; Yosys splits a wider product into pieces of these.
_DSP_WIDTH = {"ice40": (16, 16), "ecp5": (18, 18)}
#: The least result width of a product Yosys puts in a hard multiplier (``synth_ice40 -dsp``
#: maps with ``DSP_Y_MINWIDTH=11``; ``synth_ecp5`` has no such floor); both need operands of
#: at least 2 bits.
_DSP_Y_MINWIDTH = {"ice40": 11, "ecp5": 0}


def memory_blocks(depth: int, width: int, family: str) -> int:
    """Blocks of the family's block RAM one ``depth x width`` memory takes."""
    return min(math.ceil(width / w) * math.ceil(depth / d) for d, w in _BRAM_SHAPES[family])


def _pieces(bits: int, width: int) -> int:
    """Hard multiplier pieces of an operand of ``bits`` split ``width`` bits a piece (Yosys'
    ``mul2dsp``); a last piece under 2 bits goes to logic."""
    return bits // width + (bits % width >= 2)


def dsp_blocks(s: EngineShape, family: str) -> int:
    """Hard multipliers of an engine: the requantization product (none for a threshold
    requantizer), and ``int-dsp`` lanes."""
    wa, wb = _DSP_WIDTH[family]
    n = 0
    if s.requantize and s.requant_method != "threshold":
        n = _pieces(s.r_bits or s.acc_bits, wa) * _pieces(s.m_bits + 1, wb) * s.drain_width
    # the weight ROM's address ``tile * k_steps + step``: a product by a constant, which
    # Yosys maps to a hard multiplier after taking out the constant's factor of two (a
    # shift), unless what is left is one or the product is too narrow (the term-pair
    # array's ROM address is a running base, no product)
    odd = s.k_steps >> ((s.k_steps & -s.k_steps).bit_length() - 1)
    a = max(1, (s.tiles - 1).bit_length())
    b = odd.bit_length()
    y = ((s.tiles - 1) * odd).bit_length()
    if s.kind != "tr" and s.tiles > 1 and odd > 1 and a >= 2 and b >= 2 \
            and y >= _DSP_Y_MINWIDTH[family]:
        n += _pieces(a, wa) * _pieces(b, wb)
    if s.kind == "int-dsp":
        n += s.pes * s.lanes
    return n


def _coefficients(family: str):
    from .area_calibration import COEFFICIENTS
    try:
        return COEFFICIENTS[family]
    except KeyError:
        raise ValueError(f"no area model for the {family!r} family; expected one of "
                         f"{', '.join(COEFFICIENTS)}") from None


def estimate_layer(s: EngineShape, family: str, coefficients=None) -> Area:
    """The estimated resources of one engine on a device of ``family`` (``ice40``,
    ``ecp5``); ``coefficients`` default to the calibration's (coefficients over
    :data:`FEATURES_V1` take those features)."""
    c = coefficients or _coefficients(family)
    f = features_v1(s, family, c) if len(c["logic"]) == len(FEATURES_V1) else \
        features(s, family, c)
    logic = sum(a * b for a, b in zip(c["logic"], f, strict=True))
    ff = sum(a * b for a, b in zip(c["ff"], f, strict=True))
    bram = sum(memory_blocks(d, w, family) for d, w, rom, block in s.memories
               if in_block_ram(d, w, rom, family, c, block))
    return Area(logic, ff, dsp_blocks(s, family), bram)


def estimate_network(shapes, family: str, coefficients=None) -> Area:
    """The estimated resources of a network: its engines and the chain's fixed parts
    (argmax, counters)."""
    c = coefficients or _coefficients(family)
    total = Area(c["network"][0], c["network"][1])
    for s in shapes:
        total = total + estimate_layer(s, family, c)
    return total
