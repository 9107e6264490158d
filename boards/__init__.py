"""The boards rtl_gen builds bitstreams for, one module each.

``BOARDS`` maps a name to its :class:`rtl_gen.flow.board.Board`; :func:`get_board` looks one
up.  See ``boards/README.md``.
"""

from __future__ import annotations

from rtl_gen.flow.board import Board

from .icebreaker import ICEBREAKER
from .orangecrab import ORANGECRAB
from .ulx3s import ULX3S

__all__ = ["BOARDS", "Board", "get_board"]

BOARDS: dict[str, Board] = {b.name: b for b in (ICEBREAKER, ULX3S, ORANGECRAB)}


def get_board(name: str) -> Board:
    """The board called ``name``.

    Raises
    ------
    ValueError
        For an unknown name, listing the known ones.
    """
    try:
        return BOARDS[name]
    except KeyError:
        raise ValueError(f"unknown board {name!r}; expected one of "
                         f"{', '.join(BOARDS)}") from None
