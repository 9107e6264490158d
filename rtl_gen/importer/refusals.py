"""Why a model is not imported: one line naming the file, or the node, its op and position."""

from __future__ import annotations

from ..errors import RtlGenError

__all__ = ["ImportRefusal", "node_refusal"]


class ImportRefusal(RtlGenError):
    """A QONNX model that cannot be imported exactly: an op outside the supported set, a
    malformed graph or file.  The message is one line; nothing has been written."""


def node_refusal(position: int, node, message: str) -> ImportRefusal:
    """An :class:`ImportRefusal` for the node at ``position`` (0-based, in the graph's
    order): ``node 3 'name' (OpType): message``."""
    name = node.name or "(unnamed)"
    return ImportRefusal(f"node {position} {name!r} ({node.op_type}): {message}")
