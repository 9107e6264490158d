"""The cycle model of convolution and pooling on a stream (pure Python, no Amaranth).

A feature map streams in HWC order, one code a cycle (see :mod:`rtl_gen.design.conv`).

Convolution runs on an existing layer engine (:class:`~rtl_gen.design.timing.LayerTiming`,
the dense model, unchanged) fed by a line buffer and a window unit::

    codes (HWC, 1/cycle) --> line buffer --> window unit --> layer engine --> codes (HWC)
                             (kh-1 rows +     (R windows of    (a dense layer of
                              kw pixels)       K = kh*kw*C       K inputs, N = out
                                               codes per batch)   channels, R rows)

Each output pixel is one input vector of the dense layer ``K = kh*kw*in_channels -> N =
out_channels``; the engine takes ``R`` windows per batch (its rows), so an image of ``P =
Ho*Wo`` output pixels is ``ceil(P / R)`` batches of ``tiles * period`` cycles each (output
pixels x tiles x steps).  The first window is complete once the stream has delivered its
last real input pixel: that is the line buffer's fill latency.

This is the planning model of hardware still to be built: the window unit's own registers
are not in it yet, and its hardware will be held to it (or it to the hardware) the way every
layer engine is held to :attr:`LayerTiming.batch_cycles`.

Pooling runs on the stream itself, one input code a cycle: a max or average of a window
leaves ``latency`` cycles after the window's last code arrives, so an image takes ``H*W*C``
cycles whatever the kernel.  Flatten costs nothing (the codes are already in HWC order).
"""

from __future__ import annotations

import dataclasses
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

__all__ = ["ConvTiming", "PoolTiming", "first_window_cycles"]


def first_window_cycles(in_shape, kernel, padding, y_out: int = 0, x_out: int = 0,
                        stride=(1, 1)) -> int:
    """Codes the HWC stream delivers (one a cycle) until the window of output pixel
    ``(y_out, x_out)`` is complete: up to and including every channel of its last real
    (unpadded) input pixel."""
    (h, w, c), (kh, kw), (ph, pw), (sh, sw) = in_shape, kernel, padding, stride
    y = min(h - 1, y_out * sh + kh - 1 - ph)
    x = min(w - 1, x_out * sw + kw - 1 - pw)
    return (y * w + x + 1) * c


@dataclasses.dataclass(frozen=True)
class ConvTiming:
    """A convolution on a layer engine fed by a line buffer (see the module docstring).

    Parameters
    ----------
    in_shape, kernel, stride, padding:
        The convolution's geometry (``(H, W, C)`` and ``(vertical, horizontal)`` pairs).
    engine:
        The layer engine's model for one window: ``k = kh*kw*C`` inputs, ``n`` output
        channels, ``rows`` windows per batch (e.g. :meth:`LayerTiming.systolic`).
    """

    in_shape: tuple[int, int, int]
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    engine: LayerTiming

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

    @classmethod
    def systolic(cls, layer: ConvLayer, *, rows: int, cols: int, lanes: int,
                 pe_latency: int) -> ConvTiming:
        """``layer`` on an integer systolic array of ``rows`` windows by ``cols`` channels,
        ``lanes`` inputs a step (:meth:`LayerTiming.systolic` for its core)."""
        engine = LayerTiming.systolic(k=layer.core.in_features, n=layer.out_channels,
                                      rows=rows, cols=cols, lanes=lanes, pe_latency=pe_latency,
                                      requantize=layer.activation == "relu")
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
    def line_buffer_codes(self) -> int:
        """Codes the line buffer holds: ``kh - 1`` input rows and ``kw`` pixels more."""
        (_, w, c), (kh, kw) = self.in_shape, self.kernel
        return ((kh - 1) * w + kw) * c

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
        """Cycles between images in steady state: the engine's batches back to back (its
        ``steady_interval``, which counts loading ``R*K`` window codes a batch), or the input
        or output stream, whichever is slowest."""
        return max(self.batches * self.engine.steady_interval, self.in_codes, self.out_codes)

    @property
    def image_cycles(self) -> int:
        """Cycles from an image's first input code to its last output code, alone in the
        layer: batches start ``steady_interval`` apart from the line buffer's fill, but the
        last one no earlier than the stream completes its last window; each loads ``R*K``
        codes, then takes the engine's ``batch_cycles``."""
        e = self.engine
        start_last = max(self.fill_cycles + (self.batches - 1) * e.steady_interval,
                         self.last_window_cycles)
        return start_last + e.rows * e.k + e.batch_cycles

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
    latency:
        Registers from a window's last code to its result; ``None`` takes :data:`LATENCY`.
    """

    kind: str
    in_shape: tuple[int, int, int]
    kernel: tuple[int, int] | None = None
    stride: tuple[int, int] | None = None
    latency: int | None = None

    #: Default ``latency``: max pooling compares into one register; average pooling adds,
    #: multiplies by the constant and shifts (:func:`rtl_gen.design.conv.avg_divider`);
    #: flatten is wiring.
    LATENCY: ClassVar[dict[str, int]] = {"maxpool": 1, "avgpool": 3, "global_avgpool": 3,
                                         "flatten": 0}

    def __post_init__(self):
        if self.kind not in self.LATENCY:
            raise ValueError(f"kind must be one of {', '.join(self.LATENCY)}, not "
                             f"{self.kind!r}")
        windowed = self.kind in ("maxpool", "avgpool")
        if windowed:
            in_shape, kernel, stride, _, _ = check_window(self.in_shape, self.kernel,
                                                          self.stride, 0)
            object.__setattr__(self, "kernel", kernel)
            object.__setattr__(self, "stride", stride)
        else:
            if self.kernel is not None or self.stride is not None:
                raise ValueError(f"{self.kind} takes no kernel or stride")
            in_shape, *_ = check_window(self.in_shape, 1, 1, 0)
        object.__setattr__(self, "in_shape", in_shape)
        if self.latency is None:
            object.__setattr__(self, "latency", self.LATENCY[self.kind])
        elif isinstance(self.latency, bool) or not isinstance(self.latency, int) \
                or self.latency < 0:
            raise ValueError(f"latency must be a non-negative integer, not {self.latency!r}")

    @classmethod
    def of(cls, layer, latency: int | None = None) -> PoolTiming:
        """The model of a :class:`MaxPoolLayer`, :class:`AvgPoolLayer`,
        :class:`GlobalAvgPoolLayer` or :class:`FlattenLayer`."""
        if isinstance(layer, (MaxPoolLayer, AvgPoolLayer)):
            return cls(layer.kind, layer.in_shape, layer.kernel, layer.stride, latency)
        if isinstance(layer, (GlobalAvgPoolLayer, FlattenLayer)):
            return cls(layer.kind, layer.in_shape, latency=latency)
        raise TypeError(f"no stream model for {type(layer).__name__}")

    @property
    def in_codes(self) -> int:
        """Codes per input image, ``H*W*C``."""
        return math.prod(self.in_shape)

    @property
    def windows(self) -> int:
        """Windows per image (``maxpool``, ``avgpool``), else 0."""
        if self.kind not in ("maxpool", "avgpool"):
            return 0
        h, w, _ = self.in_shape
        return (((h - self.kernel[0]) // self.stride[0] + 1)
                * ((w - self.kernel[1]) // self.stride[1] + 1))

    @property
    def image_interval(self) -> int:
        """Cycles between images: the input stream, ``H*W*C``, or, for a window pool, the
        window unit's ``windows * kh*kw*C`` codes read one a cycle (more than the input
        when windows overlap)."""
        if self.windows:
            return max(self.in_codes,
                       self.windows * self.kernel[0] * self.kernel[1] * self.in_shape[2])
        return self.in_codes

    @property
    def line_buffer_codes(self) -> int:
        """Values held between codes: ``kh - 1`` input rows and ``kw`` pixels for a window,
        one sum per channel for global pooling, none for flatten."""
        _, w, c = self.in_shape
        if self.kind == "flatten":
            return 0
        if self.kind == "global_avgpool":
            return c
        return ((self.kernel[0] - 1) * w + self.kernel[1]) * c

    @property
    def image_cycles(self) -> int:
        """Cycles from an image's first input code to its last output code: the last
        window's last code, then ``latency``; global pooling emits its ``C`` results one a
        cycle after its last input; flatten passes every code through."""
        h, w, c = self.in_shape
        if self.kind == "flatten":
            return self.in_codes + self.latency
        if self.kind == "global_avgpool":
            return self.in_codes + self.latency + c - 1
        ho = (h - self.kernel[0]) // self.stride[0] + 1
        wo = (w - self.kernel[1]) // self.stride[1] + 1
        return first_window_cycles(self.in_shape, self.kernel, (0, 0), ho - 1, wo - 1,
                                   self.stride) + self.latency
