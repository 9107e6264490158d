"""Verilog emission, deterministic: the same design always gives the same bytes."""

from __future__ import annotations

from amaranth.back import verilog
from amaranth.hdl import Const, Value
from amaranth.lib import wiring

__all__ = ["to_verilog"]


def to_verilog(component: wiring.Component, name: str) -> str:
    """Verilog text of ``component`` as module ``name``, ports from its signature.

    Members that are constants (``ready`` of an ``always_ready`` stream) are not ports.
    ``emit_src=False`` leaves out the Python source locations, so the text depends only on
    the design.
    """
    ports = []
    for _path, _member, value in component.signature.flatten(component):
        value = Value.cast(value)
        if not isinstance(value, Const):
            ports.append(value)
    return verilog.convert(component, name=name, ports=ports, emit_src=False)
