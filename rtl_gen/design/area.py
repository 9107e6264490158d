"""The area model of an integer network's layer engines (pure Python, no Amaranth).

An engine's resources follow from its plan: the ``R x C`` array of PEs of ``L`` lanes (each
lane a product of an ``a``-bit activation and a ``w``-bit weight code, summed by an adder
tree into an ``acc``-bit accumulator, operands forwarded along the systolic chains), the
drain's constant tables (bias, and for a hidden layer the requantization multiplier, rounding
and shift, one entry per output slot ``tiles * C``), the output FIFO and the fixed parts
(sequencer, drain counters, cycle counter).  The model is linear in features of that plan
(:func:`features`), with one coefficient per feature and device family, fit by least squares
on synthesis results (:mod:`rtl_gen.design.area_calibration` says from what;
``benchmarks/area_model.py`` re-fits and checks them).

* logic: iCE40 ``ICESTORM_LC`` after packing, ECP5 ``TRELLIS_COMB`` (LUT4 slices) after
  packing;
* flip-flops: by the same linear model with its own coefficients;
* DSP: the requantization product of a hidden layer (``acc x 31`` bits) in the family's
  hard multipliers (iCE40 16x16, ECP5 18x18), plus one per lane of ``int`` PEs on the
  ``dsp`` multiplier;
* block RAM: each memory of the engine (input banks, weight ROM, output FIFO) of at least
  the family's threshold of bits, in the fewest blocks of one of the block's aspect ratios.

The PE kinds differ in one number, the cost of a lane's product relative to a binary lane
(:data:`LANE_FACTOR`, from ``benchmarks/results/pe_cost.json``: a binary lane is an XOR and a
carry-in, a ``w``-bit ``int`` lane a ``w``-bit multiplier).
"""

from __future__ import annotations

import dataclasses
import math

__all__ = ["LANE_FACTOR", "Area", "EngineShape", "dsp_blocks", "estimate_layer",
           "estimate_network", "features", "memory_blocks"]

#: Cost of one lane's product over that of a binary lane's (an XOR and a carry-in), per PE
#: kind, from the bare units of ``benchmarks/results/pe_cost.json`` (8-bit activations,
#: 4-bit weights): ternary 73 vs binary 71 LC at one lane, pot4 88 vs binary 43 LC per lane
#: at 16 lanes, apot4 101 vs pot4 107 at one lane, int4 158 and int8 243 (a ``w``-bit lane
#: multiplier: ``w / 2``), bitplane 158.  ``tr`` is the term-pair array's cost per column
#: and group lane; ``int-dsp`` a lane in a hard multiplier.
LANE_FACTOR = {
    "binary": lambda w: 1.0,
    "xnor": lambda w: 0.25,
    "ternary": lambda w: 1.1,
    "pot": lambda w: 2.0,
    "apot": lambda w: 1.9,
    "int": lambda w: 1.0 + w / 2,
    "int-dsp": lambda w: 0.3,
    "bitplane": lambda w: 3.0,
    "tr": lambda w: 1.5,
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

    @property
    def pes(self) -> int:
        return self.rows * self.cols

    @property
    def memories(self) -> list[tuple[int, int]]:
        """``(depth, width)`` of each memory: the row banks, the weight ROM, the FIFO."""
        banks = [(2 * self.k_steps, self.lanes * self.a_bits)] * self.rows
        rom = (self.tiles * self.k_steps, max(1, self.cols * self.lanes * self.w_bits))
        return [*banks, rom, (self.fifo_depth, self.out_bits)]


#: The names of :func:`features`, in order (the calibration's coefficients follow them).
FEATURES = ("layer", "pe", "acc", "lane", "slots", "fifo")


def features(s: EngineShape) -> tuple[float, ...]:
    """The linear model's features of an engine: one (the fixed parts), PEs, accumulator
    bits, lane-product activation bits weighted by the kind's :data:`LANE_FACTOR`, drain
    table bits (``tiles * C`` slots of the bias, and of the requantization constants for a
    hidden layer) and FIFO bits."""
    factor = LANE_FACTOR[s.kind](s.w_bits)
    lane = s.pes * s.lanes * (s.a_bits + s.w_bits) * factor
    slots = s.tiles * s.cols * (s.acc_bits + (40 if s.requantize else 0))
    return (1.0, float(s.pes), float(s.pes * s.acc_bits), lane, float(slots),
            float(s.fifo_depth * s.out_bits))


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
#: Hard multiplier operand width per family.
_DSP_WIDTH = {"ice40": 16, "ecp5": 18}


def memory_blocks(depth: int, width: int, family: str) -> int:
    """Blocks of the family's block RAM one ``depth x width`` memory takes."""
    return min(math.ceil(width / w) * math.ceil(depth / d) for d, w in _BRAM_SHAPES[family])


def dsp_blocks(s: EngineShape, family: str) -> int:
    """Hard multipliers of an engine: the requantization product, and ``int-dsp`` lanes."""
    w = _DSP_WIDTH[family]
    n = math.ceil(s.acc_bits / w) * math.ceil(31 / w) if s.requantize else 0
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
    ``ecp5``); ``coefficients`` default to the calibration's."""
    c = coefficients or _coefficients(family)
    f = features(s)
    logic = sum(a * b for a, b in zip(c["logic"], f, strict=True))
    ff = sum(a * b for a, b in zip(c["ff"], f, strict=True))
    bram = sum(memory_blocks(d, w, family) for d, w in s.memories
               if d * w >= c["bram_min_bits"])
    return Area(logic, ff, dsp_blocks(s, family), bram)


def estimate_network(shapes, family: str, coefficients=None) -> Area:
    """The estimated resources of a network: its engines and the chain's fixed parts
    (argmax, counters)."""
    c = coefficients or _coefficients(family)
    total = Area(c["network"][0], c["network"][1])
    for s in shapes:
        total = total + estimate_layer(s, family, c)
    return total
