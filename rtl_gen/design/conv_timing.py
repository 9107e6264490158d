"""The cycle model of convolution and pooling on a stream (pure Python, no Amaranth).

A feature map streams in HWC order, one code a transfer (see :mod:`rtl_gen.design.conv`).

Convolution runs on an existing layer engine (:class:`~rtl_gen.design.timing.LayerTiming`,
the dense model, unchanged) fed by the window unit (:mod:`rtl_gen.hw.window`)::

    codes (HWC) --> window unit: D input rows --> layer engine --> codes (HWC)
                    in block RAM; each window's     (a dense layer of K inputs, N = out
                    K = kh*kw*C codes, P a cycle     channels, one window a batch)

Each output pixel is one input vector (one batch of one row) of the dense layer ``K =
kh*kw*in_channels -> N = out_channels``; its ``cycles`` counter per window is
:attr:`LayerTiming.batch_cycles`, as for a dense layer.  The window unit issues ``P``
codes a cycle (``P`` divides ``C``: a word of ``P`` channels of one pixel), the engine's
:attr:`~LayerTiming.in_per_beat`, so a window is ``K/P`` transfers; a "tap" below is one
transfer.  A whole image is the schedule of :func:`window_schedule`, which follows the
window unit's rules cycle for cycle, window by window (no cycle-by-cycle simulation: one
step per window and per input code):

* input code ``j`` is taken one cycle after code ``j - 1`` (the source is never idle), but
  never before the writer may write its row (``y < lo + D``, ``lo`` the top real row of the
  reader's current window row, which moves on the cycle after the row's last tap is
  issued) nor, for the next image, before the reader has issued the last tap of this one;
* window ``w`` is available the cycle after the code of its last real pixel is taken; its
  first tap is issued at ``E = max(T[w-1], available)`` (``T[w-1]``: the cycle the last tap
  of the window before was taken, when the reader issues again), and its taps are taken one
  a cycle from ``max(E + 1, G)``, ``G`` the cycle its input bank is free again (the batch
  two windows before has issued its last tile): ``T[w] = max(E + 1, G) + K/P - 1``;
* the engine takes the bank the cycle after it is full and once the batch before has ended,
  ``S[w] = max(T[w] + 1, S[w-1] + interval)``, frees it ``interval`` cycles later
  (``G = S + interval``), writes the last result at ``S + batch_cycles - 1``, and the output
  FIFO gives it two cycles later.

Pooling runs the same window unit into a reducer that takes a code every cycle and gives
each channel's result one cycle after its last tap; global average pooling is the reducer
on the stream itself; flatten is wiring.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import ClassVar

from .conv import (
    AvgPoolLayer,
    ConvLayer,
    FlattenLayer,
    GlobalAvgPoolLayer,
    MaxPoolLayer,
    check_window,
)
from .timing import LayerTiming

__all__ = ["ConvTiming", "PoolTiming", "Schedule", "default_lines", "first_window_cycles",
           "window_schedule"]


def first_window_cycles(in_shape, kernel, padding, y_out: int = 0, x_out: int = 0,
                        stride=(1, 1)) -> int:
    """Codes the HWC stream delivers (one a cycle) until the window of output pixel
    ``(y_out, x_out)`` is complete: up to and including every channel of its last real
    (unpadded) input pixel."""
    (h, w, c), (kh, kw), (ph, pw), (sh, sw) = in_shape, kernel, padding, stride
    y = min(h - 1, y_out * sh + kh - 1 - ph)
    x = min(w - 1, x_out * sw + kw - 1 - pw)
    return (y * w + x + 1) * c


def default_lines(in_shape, kernel, stride) -> int:
    """``D``, the input rows the window unit keeps by default: ``min(H, kh + sh)``."""
    return min(in_shape[0], kernel[0] + stride[0])


@dataclasses.dataclass(frozen=True)
class Schedule:
    """:func:`window_schedule`'s answer, cycles counted from 0, the cycle the first input
    code is taken: ``taken`` (per window, the cycle its last tap is taken), ``done`` (per
    image, the cycle its last output code is taken) and ``inputs_done`` (per image, the
    cycle its last input code is taken)."""

    taken: tuple[int, ...]
    done: tuple[int, ...]
    inputs_done: tuple[int, ...]


def window_schedule(in_shape, kernel, stride, padding, *, lines: int | None = None,
                    engine: LayerTiming | None = None, images: int = 1,
                    per_cycle: int | None = None) -> Schedule:
    """The window unit's schedule for ``images`` images fed one code a cycle, into a layer
    engine of one row (``engine``) or into a pooling reducer (``None``); the rules are the
    module docstring's.  ``per_cycle``: ``P``, window codes a transfer (``None``: the
    engine's :attr:`~LayerTiming.in_per_beat`, 1 without an engine)."""
    in_shape, kernel, stride, padding, (ho, wo) = check_window(in_shape, kernel, stride,
                                                               padding)
    (h, w, c), (kh, kw), (sh, sw), (ph, pw) = in_shape, kernel, stride, padding
    d = default_lines(in_shape, kernel, stride) if lines is None else lines
    if per_cycle is None:
        per_cycle = 1 if engine is None else engine.in_per_beat
    if isinstance(per_cycle, bool) or not isinstance(per_cycle, int) or per_cycle < 1 \
            or c % per_cycle:
        raise ValueError(f"codes per cycle must be a divisor of the {c} input channels, not "
                         f"{per_cycle!r}")
    k, rc, n_codes = kh * kw * c // per_cycle, w * c, h * w * c
    never = -(1 << 60)
    a_prev = -1                      # cycle the last input code was taken
    t_prev = never                   # cycle the last tap of the window before was taken
    s_prev = never                   # cycle the engine took the batch before
    free = [never, never]            # per bank, the cycle it is free again
    gw = 0                           # windows so far, every image
    taken, done, inputs_done = [], [], []
    writer_start = 0                 # first cycle the writer may take this image's codes
    first_row = [next((r for r in range(ho) if max(0, r * sh - ph) >= y - d + 1), None)
                 for y in range(h)]     # the window row whose lo lets the writer take row y
    j = 0                               # next input code of the image being written

    def take_through(last: int, unlock: dict, start: int, reader_done: int | None) -> None:
        """Take the codes of the image being written up to index ``last``."""
        nonlocal a_prev, j
        while j <= last:
            y = j // rc
            t = max(a_prev + 1, start)
            if d < h and y >= d:
                r = first_row[y]
                t = max(t, unlock[r] if r is not None and r in unlock else reader_done)
            a_prev = t
            j += 1

    for _ in range(images):
        j = 0
        unlock = {0: writer_start}   # window row r -> cycle its lo takes effect
        last_issue = None

        for win in range(ho * wo):
            oy, ox = divmod(win, wo)
            y_last = min(h - 1, oy * sh - ph + kh - 1)
            x_last = min(w - 1, ox * sw - pw + kw - 1)
            take_through((y_last * w + x_last + 1) * c - 1, unlock, writer_start, None)
            e = max(t_prev, a_prev + 1)
            g = free[gw % 2] if engine is not None else never
            t = max(e + 1, g) + k - 1
            issue = e if k == 1 else t - 1
            if engine is not None:
                s_w = max(t + 1, s_prev + engine.interval)
                free[gw % 2] = s_w + engine.interval
                s_prev = s_w
                out = s_w + engine.batch_cycles + 1
            else:
                out = t + 1
            if ox == wo - 1:
                unlock[oy + 1] = issue + 1
            taken.append(t)
            t_prev, gw, last_issue = t, gw + 1, issue
        done.append(out)
        # the rest of the image: the reader is done from the cycle after its last tap
        take_through(n_codes - 1, unlock, writer_start, last_issue + 1)
        inputs_done.append(a_prev)
        a_end = a_prev
        writer_start = last_issue + 1 if a_end <= last_issue - 1 else a_end + 2
    return Schedule(tuple(taken), tuple(done), tuple(inputs_done))


def _check_lines(lines, in_shape, kernel, stride) -> None:
    if lines is None:
        return
    lo, hi = min(kernel[0], in_shape[0]), max(in_shape[0], kernel[0] + stride[0])
    if isinstance(lines, bool) or not isinstance(lines, int) or not lo <= lines <= hi:
        raise ValueError(f"lines must be an integer in {lo}..{hi}, not {lines!r}")


@dataclasses.dataclass(frozen=True)
class ConvTiming:
    """A convolution on a layer engine fed by a line buffer (see the module docstring).

    Parameters
    ----------
    in_shape, kernel, stride, padding:
        The convolution's geometry (``(H, W, C)`` and ``(vertical, horizontal)`` pairs).
    engine:
        The layer engine's model for one window: ``k = kh*kw*C`` inputs, ``n`` output
        channels, one row (one window a batch; e.g. :meth:`LayerTiming.systolic`); its
        :attr:`~LayerTiming.in_per_beat` is ``P``, the window codes a cycle (a divisor of
        ``C``).
    lines:
        ``D``, input rows the window unit keeps (``None``: :func:`default_lines`).
    """

    in_shape: tuple[int, int, int]
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    engine: LayerTiming
    lines: int | None = None

    #: Images :attr:`image_interval` schedules back to back (the last two give it).
    STEADY_IMAGES: ClassVar[int] = 4

    def __post_init__(self):
        in_shape, kernel, stride, padding, _ = check_window(self.in_shape, self.kernel,
                                                            self.stride, self.padding)
        for field, v in (("in_shape", in_shape), ("kernel", kernel), ("stride", stride),
                         ("padding", padding)):
            object.__setattr__(self, field, v)
        k = kernel[0] * kernel[1] * in_shape[2]
        if self.engine.k != k:
            raise ValueError(f"the engine takes {self.engine.k} inputs but a "
                             f"{kernel[0]}x{kernel[1]} window of {in_shape[2]} channels is {k}")
        if self.engine.rows != 1:
            raise ValueError(f"a convolution's engine takes one window a batch (one row), "
                             f"not {self.engine.rows}")
        if in_shape[2] % self.engine.in_per_beat:
            raise ValueError(f"the engine takes {self.engine.in_per_beat} codes a cycle, not "
                             f"a divisor of the {in_shape[2]} input channels")
        _check_lines(self.lines, in_shape, kernel, stride)
        if self.lines is None:
            object.__setattr__(self, "lines", default_lines(in_shape, kernel, stride))

    @classmethod
    def systolic(cls, layer: ConvLayer, *, rows: int = 1, cols: int, lanes: int,
                 pe_latency: int, per_cycle: int = 1) -> ConvTiming:
        """``layer`` on an integer systolic array of ``rows`` (1) windows by ``cols``
        channels, ``lanes`` inputs a step (:meth:`LayerTiming.systolic` for its core), fed
        ``per_cycle`` window codes a cycle."""
        engine = LayerTiming.systolic(k=layer.core.in_features, n=layer.out_channels,
                                      rows=rows, cols=cols, lanes=lanes, pe_latency=pe_latency,
                                      requantize=layer.activation == "relu")
        engine = dataclasses.replace(engine, in_per_beat=per_cycle)
        return cls(in_shape=layer.in_shape, kernel=layer.kernel, stride=layer.stride,
                   padding=layer.padding, engine=engine)

    @property
    def out_shape(self) -> tuple[int, int, int]:
        (h, w, _), (kh, kw), (sh, sw), (ph, pw) = (self.in_shape, self.kernel, self.stride,
                                                   self.padding)
        return (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1, self.engine.n

    @property
    def windows(self) -> int:
        """Output pixels ``P = Ho*Wo``: input vectors of the engine per image."""
        return self.out_shape[0] * self.out_shape[1]

    @property
    def batches(self) -> int:
        """Engine batches per image, ``ceil(P / R)`` (the last one may be partly idle)."""
        return math.ceil(self.windows / self.engine.rows)

    @property
    def in_codes(self) -> int:
        """Codes per input image, ``H*W*C`` (cycles of the input stream)."""
        return math.prod(self.in_shape)

    @property
    def out_codes(self) -> int:
        """Codes per output image, ``Ho*Wo*N`` (cycles of the output stream)."""
        return math.prod(self.out_shape)

    @property
    def per_cycle(self) -> int:
        """``P``, window codes the window unit issues a cycle (the engine's
        :attr:`~LayerTiming.in_per_beat`)."""
        return self.engine.in_per_beat

    @property
    def window_cycles(self) -> int:
        """Cycles the window unit takes to issue one window: ``K / P``."""
        return self.engine.k // self.per_cycle

    @property
    def line_buffer_codes(self) -> int:
        """Codes the window unit's memory holds: ``D`` input rows."""
        return self.lines * self.in_shape[1] * self.in_shape[2]

    @functools.cached_property
    def schedule(self) -> Schedule:
        """:func:`window_schedule` of :attr:`STEADY_IMAGES` images back to back."""
        return window_schedule(self.in_shape, self.kernel, self.stride, self.padding,
                               lines=self.lines, engine=self.engine,
                               images=self.STEADY_IMAGES)

    @property
    def fill_cycles(self) -> int:
        """Cycles of the input stream until the first window is complete."""
        return first_window_cycles(self.in_shape, self.kernel, self.padding)

    @property
    def last_window_cycles(self) -> int:
        """Cycles of the input stream until the last window is complete."""
        ho, wo, _ = self.out_shape
        return first_window_cycles(self.in_shape, self.kernel, self.padding, ho - 1, wo - 1,
                                   self.stride)

    @property
    def compute_cycles(self) -> int:
        """Cycles the engine is busy per image: ``batches * interval``, i.e. ``ceil(P/R) *
        tiles * period`` (plus each batch's pickup)."""
        return self.batches * self.engine.interval

    @property
    def image_interval(self) -> int:
        """Cycles between images in steady state, fed one code a cycle and never held
        (:attr:`schedule`: the last two images' last output codes)."""
        done = self.schedule.done
        return done[-1] - done[-2]

    @property
    def image_cycles(self) -> int:
        """Cycles from an image's first input code to its last output code, both counted,
        alone in the layer, fed one code a cycle and never held (:attr:`schedule`)."""
        return self.schedule.done[0] + 1

    @property
    def macs(self) -> int:
        """Products per image, ``P * K * N`` (padded taps included)."""
        return self.windows * self.engine.k * self.engine.n

    @property
    def utilization(self) -> float:
        """Products per cycle over the engine's peak, images back to back."""
        return self.macs / (self.image_interval * self.engine.peak)


@dataclasses.dataclass(frozen=True)
class PoolTiming:
    """Max, average or global average pooling, or flatten, on the HWC stream.

    Parameters
    ----------
    kind:
        ``"maxpool"``, ``"avgpool"``, ``"global_avgpool"`` or ``"flatten"``.
    in_shape:
        ``(H, W, C)``.
    kernel, stride:
        The window (``maxpool``, ``avgpool``), else ``None``.
    lines:
        The window unit's ``D`` (``None``: :func:`default_lines`), window pooling only.

    A window pool is the window unit into a reducer that takes a code every cycle and
    registers each channel's result (:func:`window_schedule` without an engine); global
    average pooling is the reducer on the stream (each channel's mean a cycle after its
    last code); flatten is wiring.
    """

    kind: str
    in_shape: tuple[int, int, int]
    kernel: tuple[int, int] | None = None
    stride: tuple[int, int] | None = None
    lines: int | None = None

    KINDS: ClassVar[tuple[str, ...]] = ("maxpool", "avgpool", "global_avgpool", "flatten")
    #: Images :attr:`image_interval` schedules back to back (the last two give it).
    STEADY_IMAGES: ClassVar[int] = 4

    def __post_init__(self):
        if self.kind not in self.KINDS:
            raise ValueError(f"kind must be one of {', '.join(self.KINDS)}, not "
                             f"{self.kind!r}")
        if self.windowed:
            in_shape, kernel, stride, _, _ = check_window(self.in_shape, self.kernel,
                                                          self.stride, 0)
            object.__setattr__(self, "kernel", kernel)
            object.__setattr__(self, "stride", stride)
            _check_lines(self.lines, in_shape, kernel, stride)
            if self.lines is None:
                object.__setattr__(self, "lines", default_lines(in_shape, kernel, stride))
        else:
            if self.kernel is not None or self.stride is not None or self.lines is not None:
                raise ValueError(f"{self.kind} takes no kernel, stride or lines")
            in_shape, *_ = check_window(self.in_shape, 1, 1, 0)
        object.__setattr__(self, "in_shape", in_shape)

    @classmethod
    def of(cls, layer, lines: int | None = None) -> PoolTiming:
        """The model of a :class:`MaxPoolLayer`, :class:`AvgPoolLayer`,
        :class:`GlobalAvgPoolLayer` or :class:`FlattenLayer`."""
        if isinstance(layer, (MaxPoolLayer, AvgPoolLayer)):
            return cls(layer.kind, layer.in_shape, layer.kernel, layer.stride, lines)
        if isinstance(layer, (GlobalAvgPoolLayer, FlattenLayer)):
            return cls(layer.kind, layer.in_shape)
        raise TypeError(f"no stream model for {type(layer).__name__}")

    @property
    def windowed(self) -> bool:
        """Whether the layer runs on a window unit (``maxpool``, ``avgpool``)."""
        return self.kind in ("maxpool", "avgpool")

    @property
    def in_codes(self) -> int:
        """Codes per input image, ``H*W*C``."""
        return math.prod(self.in_shape)

    @property
    def windows(self) -> int:
        """Windows per image (``maxpool``, ``avgpool``), else 0."""
        if not self.windowed:
            return 0
        h, w, _ = self.in_shape
        return (((h - self.kernel[0]) // self.stride[0] + 1)
                * ((w - self.kernel[1]) // self.stride[1] + 1))

    @functools.cached_property
    def schedule(self) -> Schedule | None:
        """:func:`window_schedule` of :attr:`STEADY_IMAGES` images (window pools only)."""
        if not self.windowed:
            return None
        return window_schedule(self.in_shape, self.kernel, self.stride, (0, 0),
                               lines=self.lines, images=self.STEADY_IMAGES)

    @property
    def image_interval(self) -> int:
        """Cycles between images in steady state, fed one code a cycle and never held: the
        input stream, ``H*W*C``, or a window pool's schedule (its window unit reads
        ``windows * kh*kw*C`` codes one a cycle)."""
        if self.windowed:
            done = self.schedule.done
            return done[-1] - done[-2]
        return self.in_codes

    @property
    def line_buffer_codes(self) -> int:
        """Values held between codes: ``D`` input rows for a window, one sum per channel
        for global pooling, none for flatten."""
        _, w, c = self.in_shape
        if self.kind == "flatten":
            return 0
        if self.kind == "global_avgpool":
            return c
        return self.lines * w * c

    @property
    def image_cycles(self) -> int:
        """Cycles from an image's first input code to its last output code, both counted,
        fed one code a cycle and never held: a window pool's schedule; global pooling one
        cycle after the last input code; flatten passes every code through."""
        if self.kind == "flatten":
            return self.in_codes
        if self.kind == "global_avgpool":
            return self.in_codes + 1
        return self.schedule.done[0] + 1
