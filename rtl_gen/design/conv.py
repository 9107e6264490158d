"""Convolutional layers: 2-D convolution, max, average and global average pooling, flatten.

Each layer is a frozen, validated object like :class:`~rtl_gen.design.network.DenseLayer`;
:class:`~rtl_gen.design.network.Network` chains them with dense layers (shapes checked at
construction by :func:`check_chain`) and its golden model runs them (:meth:`forward`, numpy
``int64``, vectorized, bit-exact).

Feature maps
------------
A feature map of height ``H``, width ``W`` and ``C`` channels travels between layers as one
flat vector of ``H*W*C`` integer codes in channel-last (HWC) order: code ``(y, x, c)`` sits at
index ``(y*W + x)*C + c``.  That is the order a line-buffer stream delivers (pixel by pixel,
row by row, the channels of a pixel together) and the order :class:`FlattenLayer` hands to a
dense layer, so flatten moves no data.  A network whose first layer is spatial takes its
input as such a flattened image (``input.features = H*W*C``); a spatial layer after a flat
vector (the input, a dense layer) reads it as its ``in_shape`` in HWC order.

Zero padding
------------
Every activation code is a plain multiple of its scale, ``value = scale * code``, with no
zero point: the network's input code is symmetric two's complement or unsigned, and a code
after ReLU is unsigned from 0.  Code 0 is therefore exactly the real value 0.0 in every
activation domain, and padding a feature map with code 0 is exactly the float model's zero
padding: a padded tap adds ``0 * w_int = 0`` to the accumulator whatever the weight (and
stays 0 under term revealing's data-term truncation).

Convolution (group 1)
---------------------
With ``x_pad`` the input with ``ph`` rows of code 0 above and below and ``pw`` columns left
and right::

    acc[y, x, o] = sum_{ky < kh, kx < kw, c < C} x_pad[y*sh + ky, x*sw + kx, c]
                                                 * w_int[o, ky, kx, c]  +  bias[o]

for ``y < Ho = (H + 2*ph - kh) // sh + 1`` and ``x < Wo = (W + 2*pw - kw) // sw + 1`` (a
window that would leave the padded map is dropped).  That is a dense layer applied to every
window (implicit im2col): the window flattened in ``(ky, kx, c)`` order is the input vector
of :attr:`ConvLayer.core`, a :class:`~rtl_gen.design.network.DenseLayer` of shape
``(out_channels, kh*kw*C)``, whose weight schemes, accumulator, accumulator width, term
revealing and requantization (``clamp((acc*M + 2**(S-1)) >> S, 0, 2**out_bits - 1)``, or the
raw accumulator for logits) are the dense layer's, unchanged.  Weight codes are stored
``(out_channels, kh, kw, in_channels)`` (OHWI); ``core.codes`` is their reshape.  Padding is
at most ``kernel - 1`` per side, so every window holds at least one real input.

Pooling (no padding; a window that would leave the map is dropped)
-------------------------------------------------------------------
- ``maxpool``: the largest code of each ``kh x kw`` window, per channel.  Codes pass
  unchanged: same width, sign and scale.
- ``avgpool``: ``s`` the sum of the ``n = kh*kw`` codes of a window, per channel, and
  ``y = floor((s + n//2) / n)``: the mean rounded to nearest, a tie upward (toward
  +infinity).  ``y`` lies in the input's code range and keeps the input's scale, so the
  float value of ``y`` is the float mean rounded to the code grid.  In hardware this is an
  adder and one constant multiply: for ``v = s + n//2 >= 0``, ``(v * m) >> t`` equals
  ``v // n`` for every ``v`` the window can produce, with ``(m, t)`` from
  :func:`avg_divider` (``m = ceil(2**t / n)``; a power-of-two ``n`` is a plain shift).
  Signed codes are offset by ``2**(bits-1)`` per code first, which moves ``y`` by exactly
  ``2**(bits-1)``.
- ``global_avgpool``: the same rounding over the whole ``H x W`` map (``n = H*W``), per
  channel; the output is a flat vector of ``C`` codes (a dense layer may follow directly).
- ``flatten``: the identity on the codes; it turns an ``H x W x C`` map into a flat vector
  of ``H*W*C`` codes in HWC order.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..errors import SpecError
from .golden import TRControl, layer_forward
from .network import ACT_BITS_RANGE, DenseLayer, _check_int, check_layer_name

__all__ = [
    "MAX_FEATURES",
    "AvgPoolLayer",
    "ConvLayer",
    "FlattenLayer",
    "GlobalAvgPoolLayer",
    "MaxPoolLayer",
    "SPATIAL_KINDS",
    "SpatialLayer",
    "avg_divider",
    "check_chain",
    "check_window",
    "round_mean",
]

#: Largest feature map, in codes (the bound of ``input.features`` and a dense layer's fan).
MAX_FEATURES = 1 << 20
#: Largest kernel side and stride.
MAX_KERNEL = 1024


def _is_int(v) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, np.integer))


def _ints(field, v, n, lo, hi, layer, what) -> tuple[int, ...]:
    """``v`` (an integer, repeated ``n`` times, or a sequence of ``n`` integers) in lo..hi."""
    given = v
    if _is_int(v) and n == 2:
        v = (v, v)
    if (isinstance(v, (str, bytes)) or not hasattr(v, "__len__") or len(v) != n
            or not all(_is_int(e) and lo <= e <= hi for e in v)):
        raise SpecError(field, f"must be {what}: {n} integers in {lo}..{hi}, not {given!r}",
                        layer=layer)
    return tuple(int(e) for e in v)


def _shape(field, v, layer) -> tuple[int, int, int]:
    s = _ints(field, v, 3, 1, MAX_FEATURES, layer, "(height, width, channels)")
    if math.prod(s) > MAX_FEATURES:
        raise SpecError(field, f"{_fmt(s)} is {math.prod(s)} codes, more than the "
                        f"{MAX_FEATURES} a feature map may hold", layer=layer)
    return s


def _fmt(shape) -> str:
    return "x".join(str(d) for d in shape)


def check_window(in_shape, kernel, stride, padding, layer=None):
    """Validate a sliding window over an ``(H, W, C)`` map; return ``(in_shape, kernel,
    stride, padding, (Ho, Wo))``, every pair ``(vertical, horizontal)``.

    ``kernel``, ``stride`` and ``padding`` are an integer (both sides) or a pair; padding is
    at most ``kernel - 1``; the padded map must hold one window.

    Raises
    ------
    SpecError
        Naming ``in_shape``, ``kernel``, ``stride`` or ``padding``.
    """
    in_shape = _shape("in_shape", in_shape, layer)
    kernel = _ints("kernel", kernel, 2, 1, MAX_KERNEL, layer, "(height, width)")
    stride = _ints("stride", stride, 2, 1, MAX_KERNEL, layer, "(vertical, horizontal)")
    padding = _ints("padding", padding, 2, 0, MAX_KERNEL, layer, "(rows, columns) per side")
    for p, k, side in zip(padding, kernel, ("rows", "columns"), strict=True):
        if p >= k:
            raise SpecError("padding", f"{p} {side} per side must be less than the kernel's "
                            f"{k} (a window of padding alone)", layer=layer)
    out = []
    for n, k, s, p, side in zip(in_shape[:2], kernel, stride, padding, ("height", "width"),
                                strict=True):
        if n + 2 * p < k:
            raise SpecError("kernel", f"{_fmt(kernel)} does not fit the {_fmt(in_shape)} input "
                            f"({side} {n} padded by {p} per side)", layer=layer)
        out.append((n + 2 * p - k) // s + 1)
    return in_shape, kernel, stride, padding, tuple(out)


def round_mean(sums, n: int) -> np.ndarray:
    """``floor((sums + n//2) / n)`` in int64: the mean of ``n`` codes to nearest, ties up."""
    return np.floor_divide(np.asarray(sums, dtype=np.int64) + n // 2, n)


def avg_divider(n: int, v_max: int) -> tuple[int, int]:
    """``(m, t)`` with ``(v * m) >> t == v // n`` for every integer ``0 <= v <= v_max``.

    ``m = ceil(2**t / n)`` and ``t = bit_length(v_max) + bit_length(n)``, reduced to a plain
    shift (``m = 1``) when ``n`` is a power of two.  The error ``e = m*n - 2**t < n`` adds
    ``v*e / (n * 2**t) < 1/n`` to ``v/n``, which never carries past the next integer.
    """
    if not _is_int(n) or n < 1 or not _is_int(v_max) or v_max < 0:
        raise ValueError(f"need n >= 1 and v_max >= 0, not n={n!r}, v_max={v_max!r}")
    n, v_max = int(n), int(v_max)
    if n & (n - 1) == 0:
        return 1, n.bit_length() - 1
    t = v_max.bit_length() + n.bit_length()
    return -(-(1 << t) // n), t


def _code_range(bits: int, signed: bool) -> tuple[int, int]:
    if signed:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


class SpatialLayer:
    """What every layer of this module offers (beside a :class:`DenseLayer`'s names).

    ``in_shape`` ``(H, W, C)``; ``out_shape`` (``None`` when the output is a flat vector);
    ``in_features``/``out_features`` (the flat lengths); ``in_bits``, ``in_signed``,
    ``out_bits``, ``out_signed``; :meth:`forward` (the golden model) and
    :meth:`float_forward` (the float reference).
    """

    #: The layer kind as spelled in a bundle.
    kind: ClassVar[str]
    #: Whether the layer has weights (``codes``, ``scheme``, ...): only convolution does.
    has_weights: ClassVar[bool] = False

    @property
    def in_features(self) -> int:
        return math.prod(self.in_shape)

    @property
    def out_features(self) -> int:
        return math.prod(self.out_shape) if self.out_shape is not None else self._out_flat

    @property
    def out_bits(self) -> int:
        return self.in_bits

    @property
    def out_signed(self) -> bool:
        return self.in_signed

    def check_input(self, x) -> np.ndarray:
        """``x`` as int64 ``(batch, in_features)`` codes, or a ValueError naming the layer."""
        x = np.asarray(x)
        if x.dtype.kind not in "iu":
            raise ValueError(f"layer {self.name!r}: inputs must be integers, not dtype "
                             f"{x.dtype}")
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"layer {self.name!r}: inputs must have shape (batch, "
                             f"{self.in_features}) (a flattened {_fmt(self.in_shape)} HWC map), "
                             f"not {x.shape}")
        x = x.astype(np.int64)
        lo, hi = _code_range(self.in_bits, self.in_signed)
        if x.size and (x.min() < lo or x.max() > hi):
            raise ValueError(f"layer {self.name!r}: inputs must lie in {lo}..{hi} "
                             f"({self.in_bits}-bit {'signed' if self.in_signed else 'unsigned'}"
                             f"), got {x.min()}..{x.max()}")
        return x

    def _image(self, x) -> np.ndarray:
        """Flat ``(batch, H*W*C)`` -> ``(batch, H, W, C)``."""
        return x.reshape((x.shape[0],) + tuple(self.in_shape))

    def _check_io(self):
        check_layer_name(self.name)
        _check_int("in_bits", self.in_bits, *ACT_BITS_RANGE, self.name)
        if not isinstance(self.in_signed, (bool, np.bool_)):
            raise SpecError("in_signed", f"must be true or false, not {self.in_signed!r}",
                            layer=self.name)
        object.__setattr__(self, "in_signed", bool(self.in_signed))

    def forward(self, x, control: TRControl | None = None) -> np.ndarray:
        raise NotImplementedError

    def float_forward(self, x) -> np.ndarray:
        raise NotImplementedError


def _windows(img: np.ndarray, kernel, stride) -> np.ndarray:
    """``(B, H, W, C)`` -> ``(B, Ho, Wo, kh, kw, C)`` views of every window (no copy)."""
    v = sliding_window_view(img, tuple(kernel), axis=(1, 2))  # (B, H', W', C, kh, kw)
    v = v[:, ::stride[0], ::stride[1]]
    return v.transpose(0, 1, 2, 4, 5, 3)


_CORE_FIELDS = {
    "name": "The layer's name.",
    "scheme": "The weight scheme.",
    "codes": "Weight codes ``(out_channels, kh*kw*in_channels)`` (the core's).",
    "w_int": "Decoded integer weights ``(out_channels, kh*kw*in_channels)``.",
    "weight_scale": "Float value of one unit of ``w_int``.",
    "bias": "Integer bias per output channel, accumulator units.",
    "in_bits": "Input code width.",
    "in_signed": "Whether input codes are signed.",
    "activation": "``relu`` (requantize) or ``none`` (output the accumulator).",
    "out_scale": "Float value of one output unit (``relu`` only).",
    "requant_multiplier": "``M`` per output channel (``relu`` only).",
    "requant_shift": "``S`` per output channel (``relu`` only).",
    "tr": "Term-revealing grouping along the ``(ky, kx, c)`` window order, or ``None``.",
    "float_weight": "Float weights ``(out_channels, kh*kw*in_channels)``, or ``None``.",
    "float_bias": "Float bias ``(out_channels,)``, or ``None``.",
    "bits_per_weight": "Stored code bits per weight.",
    "acc_bits": "Accumulator width by the no-overflow rule over one window.",
    "x_max": "Largest input magnitude the accumulator absorbs.",
    "w_max": "Largest ``|w_int|`` the accumulator absorbs.",
}


def _core_property(field: str, doc: str) -> property:
    return property(lambda self: getattr(self.core, field), doc=doc)


@dataclasses.dataclass(frozen=True, eq=False)
class ConvLayer(SpatialLayer):
    """A 2-D convolution (group 1): the dense layer :attr:`core` over every window.

    Parameters
    ----------
    core:
        The dense layer of one window: ``(out_channels, kh*kw*in_channels)``, inputs in
        ``(ky, kx, c)`` order; its name, scheme, bias, widths, activation, requantization,
        TR grouping and float reference are the convolution's.
    in_shape:
        ``(H, W, in_channels)``.
    kernel, stride, padding:
        ``(vertical, horizontal)`` pairs, or one integer for both; zero padding, at most
        ``kernel - 1`` per side.

    :meth:`from_kernel` builds one from OHWI arrays, as a bundle stores them.

    Raises
    ------
    SpecError
        Naming the field (as spelled in the bundle) and the layer.
    """

    core: DenseLayer
    in_shape: tuple[int, int, int]
    kernel: tuple[int, int]
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)

    kind: ClassVar[str] = "conv"
    has_weights: ClassVar[bool] = True

    def __post_init__(self):
        if not isinstance(self.core, DenseLayer):
            raise SpecError("core", f"must be a DenseLayer, not {type(self.core).__name__}")
        name = self.core.name
        in_shape, kernel, stride, padding, _ = check_window(
            self.in_shape, self.kernel, self.stride, self.padding, name)
        for field, v in (("in_shape", in_shape), ("kernel", kernel), ("stride", stride),
                         ("padding", padding)):
            object.__setattr__(self, field, v)
        want = kernel[0] * kernel[1] * in_shape[2]
        if self.core.in_features != want:
            raise SpecError("weight.codes", f"has {self.core.in_features} inputs per window "
                            f"but a {_fmt(kernel)} kernel over {in_shape[2]} channels takes "
                            f"{want}", layer=name)
        _shape("out_shape", self.out_shape, name)

    @classmethod
    def from_kernel(cls, *, name: str, scheme, codes: np.ndarray, weight_scale: float,
                    bias: np.ndarray, in_shape, stride=1, padding=0, in_bits: int,
                    in_signed: bool, activation: str = "relu", out_bits=None, out_scale=None,
                    requant_multiplier=None, requant_shift=None, tr=None, float_weight=None,
                    float_bias=None) -> ConvLayer:
        """A convolution from weight codes (and float weights) ``(out_channels, kh, kw,
        in_channels)``; every other argument is :class:`DenseLayer`'s or the geometry's."""
        check_layer_name(name)
        if not isinstance(codes, np.ndarray) or codes.ndim != 4 or 0 in codes.shape:
            raise SpecError("weight.codes", "must be a non-empty 4-D array (out_channels, kh, "
                            f"kw, in_channels), not "
                            f"{getattr(codes, 'shape', type(codes).__name__)}", layer=name)
        n_out = codes.shape[0]
        fw = float_weight
        if fw is not None:
            if not isinstance(fw, np.ndarray) or fw.shape != codes.shape:
                raise SpecError("float.weight", f"must have shape {codes.shape}, not "
                                f"{getattr(fw, 'shape', type(fw).__name__)}", layer=name)
            fw = fw.reshape(n_out, -1)
        core = DenseLayer(name=name, scheme=scheme, codes=codes.reshape(n_out, -1),
                          weight_scale=weight_scale, bias=bias, in_bits=in_bits,
                          in_signed=in_signed, activation=activation, out_bits=out_bits,
                          out_scale=out_scale, requant_multiplier=requant_multiplier,
                          requant_shift=requant_shift, tr=tr, float_weight=fw,
                          float_bias=float_bias)
        return cls(core=core, in_shape=in_shape, kernel=codes.shape[1:3], stride=stride,
                   padding=padding)

    @property
    def in_channels(self) -> int:
        return self.in_shape[2]

    @property
    def out_channels(self) -> int:
        return self.core.out_features

    @property
    def out_shape(self) -> tuple[int, int, int]:
        """``(Ho, Wo, out_channels)``."""
        (h, w, _), (kh, kw), (sh, sw), (ph, pw) = (self.in_shape, self.kernel, self.stride,
                                                   self.padding)
        return (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1, self.out_channels

    @property
    def out_bits(self) -> int | None:
        """``out_bits`` after ReLU, ``None`` for logits."""
        return self.core.out_bits

    @property
    def out_signed(self) -> bool:
        return self.activation != "relu"

    @property
    def out_width(self) -> int:
        return self.core.out_width

    @property
    def kernel_codes(self) -> np.ndarray:
        """Weight codes ``(out_channels, kh, kw, in_channels)``, as a bundle stores them."""
        return self.core.codes.reshape(self.out_channels, *self.kernel, self.in_channels)

    @property
    def kernel_float_weight(self) -> np.ndarray | None:
        """Float weights ``(out_channels, kh, kw, in_channels)``, or ``None``."""
        fw = self.core.float_weight
        return None if fw is None else fw.reshape(self.out_channels, *self.kernel,
                                                  self.in_channels)

    def _patches(self, img: np.ndarray) -> np.ndarray:
        """im2col: ``(B, H, W, C)`` -> ``(B*Ho*Wo, kh*kw*C)``, padded with 0."""
        ph, pw = self.padding
        if ph or pw:
            img = np.pad(img, ((0, 0), (ph, ph), (pw, pw), (0, 0)))
        win = _windows(img, self.kernel, self.stride)
        return win.reshape(-1, self.core.in_features)

    def forward(self, x, control: TRControl | None = None) -> np.ndarray:
        """Integer codes ``(batch, H*W*C)`` -> ``(batch, Ho*Wo*out_channels)``, HWC: the
        core's output (requantized codes, or accumulators for logits) at every window."""
        x = self.check_input(x)
        y = layer_forward(self.core, self._patches(self._image(x)), control)
        return y.reshape(x.shape[0], self.out_features)

    def float_forward(self, x) -> np.ndarray:
        """The float reference: float weights over zero-padded windows, ReLU if ``relu``."""
        x = np.asarray(x, dtype=np.float64)
        p = self._patches(self._image(x))
        y = p @ self.core.float_weight.T + self.core.float_bias
        if self.activation == "relu":
            y = np.maximum(y, 0)
        return y.reshape(x.shape[0], self.out_features)


for _field, _doc in _CORE_FIELDS.items():
    setattr(ConvLayer, _field, _core_property(_field, _doc))
del _field, _doc


@dataclasses.dataclass(frozen=True, eq=False)
class _WindowPool(SpatialLayer):
    """A pooling layer over ``kernel`` windows moved by ``stride`` (no padding)."""

    name: str
    in_shape: tuple[int, int, int]
    kernel: tuple[int, int]
    stride: tuple[int, int]
    in_bits: int
    in_signed: bool

    def __post_init__(self):
        self._check_io()
        in_shape, kernel, stride, _, _ = check_window(self.in_shape, self.kernel,
                                                      self.stride, 0, self.name)
        for field, v in (("in_shape", in_shape), ("kernel", kernel), ("stride", stride)):
            object.__setattr__(self, field, v)

    @property
    def out_shape(self) -> tuple[int, int, int]:
        (h, w, c), (kh, kw), (sh, sw) = self.in_shape, self.kernel, self.stride
        return (h - kh) // sh + 1, (w - kw) // sw + 1, c

    def _pooled(self, windows: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def forward(self, x, control: TRControl | None = None) -> np.ndarray:
        """Codes ``(batch, H*W*C)`` -> ``(batch, Ho*Wo*C)``, HWC."""
        x = self.check_input(x)
        win = _windows(self._image(x), self.kernel, self.stride)
        return self._pooled(win).reshape(x.shape[0], self.out_features)


@dataclasses.dataclass(frozen=True, eq=False)
class MaxPoolLayer(_WindowPool):
    """Max pooling: the largest code of every window, per channel (codes unchanged).

    Parameters: ``name``, ``in_shape`` ``(H, W, C)``, ``kernel``, ``stride`` (pairs or one
    integer), ``in_bits``, ``in_signed``.
    """

    kind: ClassVar[str] = "maxpool"

    def _pooled(self, windows):
        return windows.max(axis=(3, 4))

    def float_forward(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        win = _windows(self._image(x), self.kernel, self.stride)
        return win.max(axis=(3, 4)).reshape(x.shape[0], self.out_features)


@dataclasses.dataclass(frozen=True, eq=False)
class AvgPoolLayer(_WindowPool):
    """Average pooling: ``floor((sum + n//2) / n)`` over every window of ``n = kh*kw``
    codes, per channel (the mean to nearest, ties up; same scale and range).

    Parameters: ``name``, ``in_shape`` ``(H, W, C)``, ``kernel``, ``stride`` (pairs or one
    integer), ``in_bits``, ``in_signed``.
    """

    kind: ClassVar[str] = "avgpool"

    @property
    def window(self) -> int:
        """``n = kh*kw``, codes per average."""
        return self.kernel[0] * self.kernel[1]

    def _pooled(self, windows):
        return round_mean(windows.sum(axis=(3, 4)), self.window)

    def float_forward(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        win = _windows(self._image(x), self.kernel, self.stride)
        return win.mean(axis=(3, 4)).reshape(x.shape[0], self.out_features)


@dataclasses.dataclass(frozen=True, eq=False)
class GlobalAvgPoolLayer(SpatialLayer):
    """Global average pooling: ``floor((sum + n//2) / n)`` over the whole map (``n = H*W``)
    per channel; the output is a flat vector of ``C`` codes.

    Parameters: ``name``, ``in_shape`` ``(H, W, C)``, ``in_bits``, ``in_signed``.
    """

    name: str
    in_shape: tuple[int, int, int]
    in_bits: int
    in_signed: bool

    kind: ClassVar[str] = "global_avgpool"
    out_shape: ClassVar[None] = None

    def __post_init__(self):
        self._check_io()
        object.__setattr__(self, "in_shape", _shape("in_shape", self.in_shape, self.name))

    @property
    def window(self) -> int:
        """``n = H*W``, codes per average."""
        return self.in_shape[0] * self.in_shape[1]

    @property
    def _out_flat(self) -> int:
        return self.in_shape[2]

    def forward(self, x, control: TRControl | None = None) -> np.ndarray:
        x = self.check_input(x)
        return round_mean(self._image(x).sum(axis=(1, 2)), self.window)

    def float_forward(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        return self._image(x).mean(axis=(1, 2))


@dataclasses.dataclass(frozen=True, eq=False)
class FlattenLayer(SpatialLayer):
    """Flatten: an ``H x W x C`` map becomes a flat vector of ``H*W*C`` codes in HWC order
    (the identity on the codes, which already travel in that order).

    Parameters: ``name``, ``in_shape`` ``(H, W, C)``, ``in_bits``, ``in_signed``.
    """

    name: str
    in_shape: tuple[int, int, int]
    in_bits: int
    in_signed: bool

    kind: ClassVar[str] = "flatten"
    out_shape: ClassVar[None] = None

    def __post_init__(self):
        self._check_io()
        object.__setattr__(self, "in_shape", _shape("in_shape", self.in_shape, self.name))

    @property
    def _out_flat(self) -> int:
        return self.in_features

    def forward(self, x, control: TRControl | None = None) -> np.ndarray:
        return self.check_input(x)

    def float_forward(self, x) -> np.ndarray:
        return np.asarray(x, dtype=np.float64)


#: Every layer kind of this module, by its bundle name.
SPATIAL_KINDS = {cls.kind: cls for cls in (ConvLayer, MaxPoolLayer, AvgPoolLayer,
                                           GlobalAvgPoolLayer, FlattenLayer)}


def _describe(layer) -> tuple[int, tuple | None, int | None, bool]:
    """``(out_features, out_shape or None, out_bits, out_signed)`` of any layer."""
    if isinstance(layer, DenseLayer):
        return layer.out_features, None, layer.out_bits, False
    return layer.out_features, layer.out_shape, layer.out_bits, layer.out_signed


def check_chain(input_spec, layers) -> None:
    """The rules of a network with spatial layers (:class:`Network` calls it).

    Names are unique; every layer with weights is ``relu`` but the last, which is ``none``
    (the logits) and has weights; each layer takes what the one before gives: a spatial
    layer the same ``in_shape`` (or, after a flat vector, as many codes), a dense layer a
    flat vector of ``in_features`` (a feature map needs a flatten first); widths and sign
    match.

    Raises
    ------
    SpecError
        Naming the layer, the field and the mismatch.
    """
    for layer in layers:
        if not isinstance(layer, (DenseLayer, SpatialLayer)):
            raise SpecError("kind", f"must be a dense, conv, pooling or flatten layer, not "
                            f"{type(layer).__name__}", layer=getattr(layer, "name", None))
    names = [layer.name for layer in layers]
    features, shape, bits, signed = input_spec.features, None, input_spec.bits, \
        input_spec.signed
    source = "the input"
    for i, layer in enumerate(layers):
        name = layer.name
        if names.index(name) != i:
            raise SpecError("name", "is used by two layers", layer=name)
        last = i == len(layers) - 1
        if layer.has_weights:
            want = "none" if last else "relu"
            if layer.activation != want:
                where = "the last layer" if last else "a hidden layer"
                raise SpecError("activation", f"must be {want!r} in {where}, not "
                                f"{layer.activation!r}", layer=name)
        elif last:
            raise SpecError("kind", f"a {layer.kind} layer cannot be the last layer: the last "
                            "layer outputs the logits (a dense or conv layer with activation "
                            "'none')", layer=name)
        if isinstance(layer, DenseLayer):
            if shape is not None:
                raise SpecError("in_features", f"a dense layer takes a flat vector but "
                                f"{source} gives a {_fmt(shape)} feature map; put a flatten "
                                "layer between them", layer=name)
            if layer.in_features != features:
                raise SpecError("weight.codes", f"has {layer.in_features} inputs but {source} "
                                f"gives {features}", layer=name)
        elif shape is not None and tuple(layer.in_shape) != tuple(shape):
            raise SpecError("in_shape", f"is {_fmt(layer.in_shape)} but {source} gives a "
                            f"{_fmt(shape)} feature map", layer=name)
        elif shape is None and layer.in_features != features:
            raise SpecError("in_shape", f"is {_fmt(layer.in_shape)} ({layer.in_features} "
                            f"codes) but {source} gives {features} features", layer=name)
        if layer.in_bits != bits or bool(layer.in_signed) != signed:
            raise SpecError("in_bits", f"expects {layer.in_bits}-bit "
                            f"{'signed' if layer.in_signed else 'unsigned'} inputs but "
                            f"{source} gives {bits}-bit "
                            f"{'signed' if signed else 'unsigned'}", layer=name)
        features, shape, bits, signed = _describe(layer)
        source = f"layer {name!r}"

