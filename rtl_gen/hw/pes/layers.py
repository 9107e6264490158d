"""Which PE a layer of an integer network runs on, and the array it gets by default.

Imported by :mod:`rtl_gen.hw.layer` (not by :mod:`rtl_gen.hw.pes`, which
:mod:`rtl_gen.hw.pe` imports).
"""

from __future__ import annotations

import math

from ...design.network import DenseLayer
from ..pe import PEConfig
from . import for_scheme


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
