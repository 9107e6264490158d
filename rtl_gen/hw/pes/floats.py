"""The float PE kinds: fp32 activation times a weight code of one weight space.

Every float PE has one interface (:func:`pe_signature`: ``x`` the fp32 activation, ``w`` the
weight code, ``p`` the fp32 product, combinational), a weight ``SPACE`` it serves, the width
``W_BITS`` of its codes and its golden product (:meth:`reference`, from
:mod:`rtl_gen.numerics`).  :func:`make_pe` finds a space's PE in the registry, which
:func:`register_float` fills (one line per kind in :mod:`rtl_gen.hw.pes`); every
reduced-float space (``E4M3`` ...) runs on :class:`FloatMulPE` with its minifloat format.

=============== ===================== =================================================
space           PE                    product
=============== ===================== =================================================
``float``       :class:`FloatMulPE`   fp32 x fp32 (:class:`~rtl_gen.hw.fpu.FloatMul`)
``E4M3`` ...    :class:`FloatMulPE`   fp32 x minifloat, the weight widened exactly
``binary``      :class:`XorSignPE`    sign flip (XOR signed-bits), no multiplier
``ternary``     :class:`TernaryPE`    sign flip and magnitude mask, no multiplier
=============== ===================== =================================================
"""

from __future__ import annotations

import numpy as np
from amaranth import Cat, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ...numerics.floatops import BINARY32, FloatFormat, fmul
from ...numerics.minifloat import MinifloatFormat, ternary_bitwise, xor_signed_bits
from ..fpu import FloatMul

__all__ = [
    "FloatMulPE",
    "TernaryPE",
    "XorSignPE",
    "float_spaces",
    "make_pe",
    "pe_signature",
    "register_float",
    "unregister_float",
    "weight_bits",
]

#: fp32 activations and products.
F32 = 32

_FLOAT_PES: dict[str, type] = {}


def pe_signature(w_bits: int) -> wiring.Signature:
    """The interface of every float PE: ``x`` (fp32 bits), ``w`` (a weight code of
    ``w_bits``), ``p`` (the fp32 product, combinational)."""
    return wiring.Signature({"x": In(F32), "w": In(w_bits), "p": Out(F32)})


def register_float(pe: type) -> type:
    """Add a float PE kind: a Component class with ``SPACE`` (the weight space it serves),
    ``W_BITS``, a constructor without arguments and :meth:`reference`; returns it."""
    space = getattr(pe, "SPACE", None)
    if not isinstance(space, str) or not isinstance(getattr(pe, "W_BITS", None), int):
        raise TypeError(f"a float PE kind needs SPACE and W_BITS, not {pe!r}")
    if space in _FLOAT_PES:
        raise ValueError(f"weight space {space!r} already has a PE")
    _FLOAT_PES[space] = pe
    return pe


def unregister_float(space: str) -> None:
    """Remove the float PE kind of ``space``."""
    if space not in _FLOAT_PES:
        raise ValueError(f"no float PE serves weight space {space!r}")
    del _FLOAT_PES[space]


def float_spaces() -> tuple[str, ...]:
    """The weight spaces with a PE of their own (reduced-float spaces use ``float``'s)."""
    return tuple(_FLOAT_PES)


def weight_bits(space: str, weight_format: MinifloatFormat | None = None) -> int:
    """Bits of one weight code of a space (fp32 32, binary 1, ternary 2, minifloat its
    width)."""
    if weight_format is not None:
        return weight_format.width
    try:
        return _FLOAT_PES[space].W_BITS
    except KeyError:
        raise ValueError(f"weight space {space!r} needs its minifloat format") from None


def make_pe(space: str, weight_format: MinifloatFormat | None = None) -> wiring.Component:
    """The PE of a weight space (``weight_format``: the minifloat of a reduced-float
    space, as :attr:`rtl_gen.design.float_network.FloatLayer.weight_format` gives it)."""
    pe = _FLOAT_PES.get(space)
    if pe is not None:
        return pe()
    if weight_format is None:
        raise ValueError(f"weight space {space!r} needs its minifloat format")
    return FloatMulPE(weight_format)


class XorSignPE(wiring.Component):
    """Binary weight (code 1 means ``-1``): flip the activation's sign bit (NUMERICS.md
    section 5, XOR signed-bits).  Exactly the fp32 product ``x * w``."""

    SPACE = "binary"
    W_BITS = 1

    def __init__(self):
        super().__init__(pe_signature(self.W_BITS))

    def reference(self, x, w) -> np.ndarray:
        """The golden products (fp32 bits) of activations ``x`` and codes ``w``."""
        return xor_signed_bits(x, w, F32)

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.p.eq(Cat(self.x[:F32 - 1], self.x[F32 - 1] ^ self.w))
        return m


class TernaryPE(wiring.Component):
    """Ternary weight (codes ``00`` = 0, ``01`` = +1, ``11`` = -1): sign ``x[31] ^ w[1]``,
    magnitude ``x[30:0] & w[0]`` (weight 0 gives ``±0`` with the sign of ``x``)."""

    SPACE = "ternary"
    W_BITS = 2

    def __init__(self):
        super().__init__(pe_signature(self.W_BITS))

    def reference(self, x, w) -> np.ndarray:
        """The golden products (fp32 bits) of activations ``x`` and codes ``w``."""
        return ternary_bitwise(x, w, F32)

    def elaborate(self, platform):
        m = Module()
        mag = self.x[:F32 - 1] & self.w[0].replicate(F32 - 1)
        m.d.comb += self.p.eq(Cat(mag, self.x[F32 - 1] ^ self.w[1]))
        return m


def _float_format(fmt: MinifloatFormat) -> FloatFormat:
    return FloatFormat(fmt.exp_bits, fmt.man_bits, bias=fmt.bias)


class FloatMulPE(wiring.Component):
    """fp32 activation times an fp32 weight (``weight_format`` ``None``) or a minifloat
    weight (widened exactly inside the multiplier): one
    :class:`~rtl_gen.hw.fpu.FloatMul`, round to nearest even."""

    SPACE = "float"
    W_BITS = F32

    def __init__(self, weight_format: MinifloatFormat | None = None):
        self.weight_format = weight_format
        self.SPACE = "float" if weight_format is None else weight_format.name
        super().__init__(pe_signature(weight_bits("float", weight_format)))

    def _b_fmt(self) -> FloatFormat | None:
        return None if self.weight_format is None else _float_format(self.weight_format)

    def reference(self, x, w) -> np.ndarray:
        """The golden products (fp32 bits) of activations ``x`` and codes ``w``."""
        return fmul(x, w, BINARY32, self._b_fmt())

    def elaborate(self, platform):
        m = Module()
        m.submodules.mul = mul = FloatMul(BINARY32, b_fmt=self._b_fmt())
        m.d.comb += [mul.a.eq(self.x), mul.b.eq(self.w), self.p.eq(mul.o)]
        return m
