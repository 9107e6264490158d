"""The PE kinds: one module per kind, one registry line per kind.

Integer kinds (:class:`~rtl_gen.hw.pes.kit.PEKind`, keyed by ``PEConfig.kind``) are built by
:class:`rtl_gen.hw.pe.DotProductUnit`; float kinds (Components with
:func:`~rtl_gen.hw.pes.floats.pe_signature`, keyed by weight space) by
:class:`rtl_gen.hw.float_layer.FloatLayerEngine`.  :class:`~rtl_gen.hw.pe.PEConfig`, the
unit, :mod:`rtl_gen.hw.pes.layers` (which kind a layer runs on, its default array),
:func:`~rtl_gen.hw.pes.floats.make_pe` and the tests all find a kind here, so a new kind is
one module and one line below.
"""

from __future__ import annotations

from .kit import PEKind

__all__ = [
    "PEKind",
    "for_scheme",
    "get",
    "kinds",
    "register",
    "register_float",
    "unregister",
]

_KINDS: dict[str, PEKind] = {}


def register(kind: PEKind) -> PEKind:
    """Add an integer PE kind (an instance of a :class:`PEKind` subclass); returns it.

    Raises
    ------
    ValueError
        For a name already taken, or a weight scheme another kind already serves.
    """
    if not isinstance(kind, PEKind):
        raise TypeError(f"a PE kind must be a PEKind, not {kind!r}")
    if kind.name in _KINDS:
        raise ValueError(f"PE kind {kind.name!r} is already registered")
    for scheme in kind.serves:
        other = for_scheme(scheme)
        if other is not None:
            raise ValueError(f"{scheme} layers already run on {other.name} PEs; PE kind "
                             f"{kind.name!r} cannot serve them too")
    _KINDS[kind.name] = kind
    return kind


def unregister(name: str) -> None:
    """Remove the integer PE kind ``name``."""
    if name not in _KINDS:
        raise ValueError(f"no PE kind {name!r} is registered")
    del _KINDS[name]


def kinds() -> tuple[str, ...]:
    """The names of the registered integer PE kinds, in registration order."""
    return tuple(_KINDS)


def get(name: str) -> PEKind:
    """The integer PE kind ``name``; ``ValueError`` naming the known ones otherwise."""
    try:
        return _KINDS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown PE kind {name!r}; expected one of "
                         f"{', '.join(_KINDS)}") from None


def for_scheme(scheme_kind: str) -> PEKind | None:
    """The kind that a weight scheme's layers run on (``None``: no PE kind serves it)."""
    for kind in _KINDS.values():
        if scheme_kind in kind.serves:
            return kind
    return None


# one line per kind, in the order tables list them
from . import apot, binary, bitplane, integer, pot, ternary, xnor  # noqa: E402

register(binary.KIND)
register(ternary.KIND)
register(pot.KIND)
register(apot.KIND)
register(integer.KIND)
register(xnor.KIND)
register(bitplane.KIND)

from .floats import FloatMulPE, TernaryPE, XorSignPE, register_float  # noqa: E402

register_float(FloatMulPE)
register_float(XorSignPE)
register_float(TernaryPE)
