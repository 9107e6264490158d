"""How large a hardware network is, estimated from its plan's numbers before anything is built.

Elaborating a design costs time and memory in proportion to its lanes (a ``rows x cols``
array of PEs of ``lanes`` products each, per layer): 64 rows of 8 columns of 256 lanes, all
within the options' ranges, took minutes and gigabytes before failing.  The estimate here
is a floor, not a prediction: every lane costs at least :data:`LUT4_PER_LANE` LUT4 (every
PE kind in the manual's unit table takes 3 to 18 times that per lane), every fp32
lane at least :data:`LUT4_PER_FLOAT_LANE`, and the weights and the input banks need their
bits of memory.  A design whose floor exceeds the largest supported device
(:data:`rtl_gen.devices.DEVICES`) cannot fit any of them and is refused before elaboration.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from ..devices import DEVICES, Device

__all__ = ["LUT4_PER_FLOAT_LANE", "LUT4_PER_LANE", "LayerSize", "DesignSize",
           "design_size", "oversize"]

#: A lower bound on the LUT4s of one integer lane (product and adder-tree input); the
#: cheapest lane measured (a binary lane in a 16-lane PE on the iCE40) takes 35.
LUT4_PER_LANE = 8
#: A lower bound on the LUT4s of one fp32 lane (a binary-weight lane keeps the fp32 adder,
#: 924 LUT4 measured on the LFE5U-85F).
LUT4_PER_FLOAT_LANE = 200
#: Bits of a LUT4 used as memory (a 16 x 1 distributed RAM or ROM).
BITS_PER_LUT4 = 16


@dataclasses.dataclass(frozen=True)
class LayerSize:
    """One layer's plan numbers: ``k`` inputs, ``n`` outputs, ``w_bits``-bit weight codes and
    ``a_bits``-bit activations on a ``rows x cols x lanes`` array (``float``: fp32 lanes)."""

    k: int
    n: int
    w_bits: int
    a_bits: int
    rows: int
    cols: int
    lanes: int
    float: bool = False


@dataclasses.dataclass(frozen=True)
class DesignSize:
    """Totals of a design: lanes (``rows x cols x lanes`` summed over layers), the floor on
    its LUT4s, and the memory bits of its weights and input banks."""

    lanes: int
    lut4_floor: int
    weight_bits: int
    buffer_bits: int

    @property
    def memory_bits(self) -> int:
        return self.weight_bits + self.buffer_bits


def design_size(layers: Iterable[LayerSize]) -> DesignSize:
    """The totals of a design's layers (module docstring)."""
    lanes = luts = weights = buffers = 0
    for ly in layers:
        n_lanes = ly.rows * ly.cols * ly.lanes
        lanes += n_lanes
        luts += n_lanes * (LUT4_PER_FLOAT_LANE if ly.float else LUT4_PER_LANE)
        weights += ly.k * ly.n * ly.w_bits
        buffers += ly.rows * ly.k * ly.a_bits
    return DesignSize(lanes, luts, weights, buffers)


def _largest(key) -> Device:
    return max(DEVICES.values(), key=key)


def oversize(size: DesignSize) -> str | None:
    """``None`` when ``size`` may fit a supported device, else what exceeds which limit."""
    big = _largest(lambda d: d.luts)
    if size.lut4_floor > big.luts:
        return (f"{size.lanes:,} lanes need at least {size.lut4_floor:,} LUT4, more than the "
                f"largest supported device has ({big.name}: {big.luts:,} LUT4)")
    mem = _largest(lambda d: d.bram_bits + BITS_PER_LUT4 * d.luts)
    room = mem.bram_bits + BITS_PER_LUT4 * mem.luts
    if size.memory_bits > room:
        return (f"the weights and input banks need {size.memory_bits:,} bits of memory, more "
                f"than the largest supported device holds ({mem.name}: {room:,} bits in block "
                "RAM and LUTs together)")
    return None
