"""A network on a board: the host-link core around the network, the board's top level, the
bitstream, and a record of what was built (``design.json``) for the host.

::

    bundle ──► Network ──► HostLinkCore (UART at ``baud``, the PLL's clock) ──► Board.top
                                                                                  │
                      outdir/top.bin|top.bit, report.json, report.md, design.json ◄┘
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..design.network import Network
from ..errors import RtlGenError
from .board import Board, board_baud
from .build import BuildReport, build_bitstream

__all__ = ["BOARD_COUNTERS", "DEFAULT_BAUD", "build_network"]

#: The UART speed of a board build unless told otherwise at every board's default clocks
#: (:func:`~rtl_gen.flow.board.board_baud`: the fastest standard rate the board's USB-serial
#: bridge takes that the clock divides to within 2%), and the host's default.
DEFAULT_BAUD = 3_000_000

#: Whether a board build's layers count their batches' cycles unless told otherwise: off, so
#: a board gets no counter logic (the CYCLES reply's per-layer words read 0); verification
#: keeps them on.
BOARD_COUNTERS = False


def build_network(net: Network, board: Board, *, outdir: Path | str, arrays=None,
                  freq_mhz: float | None = None, baud: int | None = None, seed: int = 1,
                  timeout: float | None = None, counters: bool = BOARD_COUNTERS) -> BuildReport:
    """Build ``net`` into a bitstream for ``board`` (one of ``boards.BOARDS``).

    Writes the bitstream, ``report.json``/``report.md`` (:class:`BuildReport`) and
    ``design.json`` (the network's name and fingerprint, the baud rate and what the design
    answers to INFO) into ``outdir``.  ``baud``: the UART's rate (default: the board's
    :func:`~rtl_gen.flow.board.board_baud` at the PLL's clock).  ``freq_mhz``: the PLL's
    target (default: the board's :attr:`~rtl_gen.flow.board.Board.default_mhz`, or for a
    network with convolution, pooling or flatten layers its
    :attr:`~rtl_gen.flow.board.Board.conv_mhz`).
    ``counters``: the layers count their batches' cycles (the CYCLES reply's per-layer
    words; off by default: they read 0 and cost no logic).

    Raises
    ------
    RtlGenError
        For a clock the PLL cannot make, a baud rate the clock cannot
        divide to, or a network the generator cannot build (the message says which).
    DoesNotFitError, ToolNotFoundError, ToolFailedError
        From the flow (:func:`~rtl_gen.flow.build.build_bitstream`).
    """
    from ..hw.hostlink import HostLinkCore, network_id

    ident = network_id(net)
    cores = []
    bauds = []

    def make_core(clk_hz: float) -> HostLinkCore:
        rate = board_baud(board, clk_hz) if baud is None else baud
        core = HostLinkCore.for_clock(net, arrays, clk_hz=clk_hz, baud=rate, design_id=ident,
                                      counters=counters)
        cores.append(core)
        bauds.append(rate)
        return core

    if freq_mhz is None and not net.is_dense:
        freq_mhz = board.conv_mhz  # None: the board's default_mhz
    try:
        top = board.top(make_core, freq_mhz)
    except ValueError as e:
        raise RtlGenError(f"cannot build {net.name!r} for {board.name}: {e}") from None
    kwargs = {} if timeout is None else {"timeout": timeout}
    report = build_bitstream(board, top, outdir=outdir, seed=seed, **kwargs)
    core = cores[-1]
    info = core.info()
    design = {"network": net.name, "design_id": ident, "baud": bauds[-1],
              "divisor": core.divisor,
              "board": board.name, "clock_mhz": top.freq_mhz,
              "rows": info.rows, "features": info.features, "classes": info.classes,
              "cycles_per_batch": list(core.plan.layer_cycles),
              "interval": core.engine.interval, "layer_counters": counters}
    path = Path(outdir) / "design.json"
    tmp = path.with_name(".design.json.tmp")
    tmp.write_text(json.dumps(design, indent=2) + "\n")
    os.replace(tmp, path)
    return report
