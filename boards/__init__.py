"""The boards rtl_gen builds bitstreams for, one module each.

:data:`REGISTRY` says where each board's :class:`rtl_gen.flow.board.Board` is defined, as
``"module:attribute"``; adding a board is one module in this package and one line there
(see ``boards/README.md``).  :data:`BOARDS` maps a name to its ``Board`` and imports a
board's module only when that board is asked for, so listing the names needs no
amaranth-boards; :func:`get_board` looks one up.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping

from rtl_gen.errors import RtlGenError
from rtl_gen.flow.board import Board

__all__ = ["BOARDS", "REGISTRY", "Board", "BoardError", "get_board"]

#: Board name -> ``"module:attribute"`` of its :class:`Board`: one line per board.
REGISTRY: dict[str, str] = {
    "icebreaker": "boards.icebreaker:ICEBREAKER",
    "ulx3s": "boards.ulx3s:ULX3S",
    "orangecrab": "boards.orangecrab:ORANGECRAB",
}


class BoardError(RtlGenError, ValueError):
    """An unknown board, or a registry entry that does not lead to its board."""


def _load(name: str) -> Board:
    try:
        where = REGISTRY[name]
    except KeyError:
        raise BoardError(f"unknown board {name!r}; expected one of "
                         f"{', '.join(REGISTRY)}") from None
    module, _, attr = where.partition(":")
    try:
        board = getattr(importlib.import_module(module), attr)
    except ModuleNotFoundError as e:
        if e.name is not None and (module == e.name or module.startswith(e.name + ".")):
            raise BoardError(f"board {name!r}: registry entry {where!r}: no module "
                             f"{module!r}") from None
        raise BoardError(f"board {name!r} needs the Python package {e.name!r} "
                         "(pip install '.[flow]' for amaranth-boards)") from None
    except AttributeError:
        raise BoardError(f"board {name!r}: registry entry {where!r}: module {module!r} "
                         f"has no {attr!r}") from None
    if not isinstance(board, Board):
        raise BoardError(f"board {name!r}: {where} is not a Board but {board!r}")
    if board.name != name:
        raise BoardError(f"board {name!r}: {where} is named {board.name!r}")
    return board


class _Boards(Mapping):
    """Name -> :class:`Board` over :data:`REGISTRY`, importing a board when it is looked
    up."""

    def __getitem__(self, name: str) -> Board:
        if name not in REGISTRY:
            raise KeyError(name)
        return _load(name)

    def __iter__(self) -> Iterator[str]:
        return iter(list(REGISTRY))

    def __len__(self) -> int:
        return len(REGISTRY)

    def __repr__(self) -> str:
        return f"BOARDS({', '.join(REGISTRY)})"


#: Every registered board by name (the names are :data:`REGISTRY`'s keys).
BOARDS: Mapping[str, Board] = _Boards()


def get_board(name: str) -> Board:
    """The board called ``name``.

    Raises
    ------
    BoardError
        (a ``ValueError``) For an unknown name, listing the known ones, for a registry
        entry that does not lead to a :class:`Board` of that name, or when the board's
        module needs a package that is not installed.
    """
    return _load(name)
