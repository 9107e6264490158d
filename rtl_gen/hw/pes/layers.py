"""Which PE a layer of an integer network runs on, and the array it gets by default.

Imported by :mod:`rtl_gen.hw.layer` (not by :mod:`rtl_gen.hw.pes`, which
:mod:`rtl_gen.hw.pe` imports).
"""

from __future__ import annotations

import math

from ...design.network import DenseLayer
from ..pe import PEConfig
from . import for_scheme

#: Lanes from which a planned PE gets one register stage more (after the lane products),
#: and two (the second after half the adder tree's levels): a PE's products, its adder tree
#: and its accumulator in one cycle set the clock of a wide array (the MNIST CNN's conv2 on
#: 2 x 8 int4 PEs: 39 ns on the UP5K).  A stage adds a cycle to a batch's latency, not to
#: its interval; its flip-flops share the logic cells of the sums.
PIPELINE_LANES = (4, 16)


def pe_pipeline(lanes: int) -> int:
    """The register stages the convolution planner adds inside a PE of ``lanes`` lanes
    (:data:`PIPELINE_LANES`); an override's ``pipeline`` replaces it."""
    return sum(lanes >= n for n in PIPELINE_LANES)


def dense_pipeline(scheme_kind: str, lanes: int, tr: bool = False, w_bits: int = 0) -> int:
    """The register stages the folding planner puts inside a dense layer's PE of ``lanes``
    lanes: one after the lane products plus :func:`pe_pipeline`'s in the adder tree, for
    the kinds whose lane product is logic (:attr:`PEKind.logic_product
    <rtl_gen.hw.pes.kit.PEKind.logic_product>`: int, PoT, APoT) and for the select kinds
    (binary, ternary) from 4 lanes; none for a select kind's 1 or 2 lanes, whose clock the
    stages do not set; one more where the kind gives its partial product rows as terms
    (:attr:`~rtl_gen.hw.pes.kit.PEKind.row_terms_bits`, ``w_bits``: int8).  Measured on the
    UP5K (``--fit up5k``): the int4 digits network goes from 22.8 to 38-43 MHz with them
    (seed 1), the mixed one from 22 to 40, PoT4 from 23 to 37, int8 from 25 to 35 (and to
    45-48 with its Booth rows as terms), for 3% fewer logic cells and 60% more flip-flops;
    the binary MNIST TFC (fc1 16 x 8) from 29.1 to 43.7 MHz (median of seeds 1-3)."""
    kind = None if tr else for_scheme(scheme_kind)
    if kind is None or (not kind.logic_product and lanes < PIPELINE_LANES[0]):
        return 0
    rows = int(kind.gives_rows(w_bits))
    return 1 + pe_pipeline(lanes) + rows


def layer_pe(layer: DenseLayer, array) -> PEConfig | None:
    """The :class:`~rtl_gen.hw.pe.PEConfig` a layer runs on on an
    :class:`~rtl_gen.hw.layer.ArrayConfig` (``None``: the term-revealing array, for a
    layer with term revealing or of a scheme no PE kind serves)."""
    from ..layer import _check_tr  # the layer engine imports this module

    kind = for_scheme(layer.scheme.kind)
    if kind is None or layer.tr is not None:
        _check_tr(layer, array)
        return None
    return PEConfig(kind=kind.name, w_bits=layer.scheme.bits, a_bits=layer.in_bits,
                    a_signed=layer.in_signed, lanes=array.lanes,
                    depth=math.ceil(layer.in_features / array.lanes),
                    multiplier=array.multiplier if array.multiplier in kind.multipliers
                    else "lut",
                    pipeline=array.pipeline)


def default_array(scheme_kind: str, tr: bool = False):
    """The :class:`~rtl_gen.hw.layer.ArrayConfig` a layer of this weight scheme gets unless
    told otherwise: one row (batch 1), eight columns, and the lanes of the PE kind that
    serves the scheme (four for binary and ternary, whose PEs are tiny; one otherwise).  A
    term-revealing layer (``tr``) runs on the term-pair array, whose step is one group: one
    lane, whatever its scheme."""
    from ..layer import ArrayConfig  # the layer engine imports this module

    kind = None if tr else for_scheme(scheme_kind)
    return ArrayConfig(rows=1, cols=8, lanes=1 if kind is None else kind.lanes)
