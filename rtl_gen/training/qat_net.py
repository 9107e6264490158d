"""A user's PyTorch network, quantized (PTQ) or trained quantization-aware (QAT), to a bundle.

Any ``torch.nn.Module`` whose forward pass is a chain of the supported layers comes in with
no code change: :func:`read_torch` traces it (``torch.fx``), checks every layer and names
the first unsupported one with its position; :class:`QATNet` holds the quantized model
(weights through the scheme's :class:`~rtl_gen.training.qat.WeightQuantizer`, one scale per
tensor; biases rounded to accumulator units; every ReLU output to ``act_bits``-bit codes
with a learned clip), trains with :func:`~rtl_gen.training.qat.train_qat` and exports the
integer :class:`~rtl_gen.design.network.Network` (format 2 when it has spatial layers) that
``rtl-gen generate`` builds and ``rtl-gen verify`` checks bit for bit.

Supported layers (modules or their functional forms):

* ``Conv2d`` (groups 1, dilation 1, zero padding up to ``kernel - 1``, or ``"valid"``/
  ``"same"`` at stride 1) and ``Linear``, each followed by a ``ReLU`` except the last
  layer with weights, which gives the logits;
* ``BatchNorm1d``/``BatchNorm2d`` right after one of them: folded into its weights and
  bias (running statistics, as in evaluation);
* ``MaxPool2d`` and ``AvgPool2d`` (no padding, ``ceil_mode`` off; average: the mean of the
  codes to nearest, ties up), ``AdaptiveAvgPool2d(1)`` (global average pooling);
* ``Flatten`` / ``torch.flatten`` / ``x.flatten(1)`` / ``x.view(len(x), -1)``; a reshape
  before the first layer (an image given as a flat vector) is the input's shape;
* ``Dropout`` and ``Identity``, which do nothing at inference.

Feature maps travel in HWC order in the hardware and in the bundle (PyTorch's are CHW): the
dense layer after a flatten gets its columns reordered at export, and
:meth:`QATNet.input_codes` gives the hardware's input codes of PyTorch-layout inputs.
"""

from __future__ import annotations

import dataclasses
import math
import operator

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from ..design.conv import (
    AvgPoolLayer,
    ConvLayer,
    FlattenLayer,
    GlobalAvgPoolLayer,
    MaxPoolLayer,
)
from ..design.network import DenseLayer, InputSpec, Network
from ..errors import ModelError
from ..numerics.fixedpoint import requant_params
from ..numerics.schemes import WeightScheme, parse_scheme
from .qat import DTYPE, WeightQuantizer, _round_half_away, _ste
from .qat_state import round_half_away

__all__ = ["SUPPORTED", "QATNet", "TorchLayer", "quantize_torch", "read_torch"]

#: The layer types :func:`read_torch` takes, in words (quoted by its errors).
SUPPORTED = ("Conv2d, Linear (each followed by ReLU but the last), BatchNorm1d/2d after "
             "them, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d(1), Flatten, Dropout, Identity")

_ACTS = {nn.ReLU, torch.relu, functional.relu, "relu", "relu_"}
_SKIPS = {nn.Dropout, nn.Identity, functional.dropout, "contiguous"}
_FLATTENS = {nn.Flatten, torch.flatten, "flatten", "view", "reshape"}


@dataclasses.dataclass
class TorchLayer:
    """One layer of a traced model: ``kind`` (``conv``, ``dense``, ``maxpool``, ``avgpool``,
    ``global_avgpool``, ``flatten``), the name it will have in the bundle, its position in
    the model (from 1) and, for ``conv``/``dense``, its float weight and bias (batch norm
    folded in), geometry and whether a ReLU follows."""

    kind: str
    name: str
    position: int
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    relu: bool = False
    chw_columns: tuple[int, int, int] | None = None  # a dense layer after a CHW flatten


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _bundle_name(raw: str, taken: set) -> str:
    name = "".join(c if c.isalnum() or c in "_-" else "_" for c in raw) or "layer"
    if not name[0].isalpha():
        name = "l" + name
    base, k = name, 2
    while name in taken:
        name, k = f"{base}_{k}", k + 1
    taken.add(name)
    return name


def _what(node, gm) -> object:
    """A node's callable: the module's type, the function, or the method's name."""
    if node.op == "call_module":
        return type(gm.get_submodule(node.target))
    return node.target


def _label(node, gm) -> str:
    w = _what(node, gm)
    return f"{node.name}: {getattr(w, '__name__', w)}"


def _arg(node, i, key, default):
    if len(node.args) > i:
        return node.args[i]
    return node.kwargs.get(key, default)


def read_torch(model: nn.Module, in_shape) -> list[TorchLayer]:
    """The layers of ``model`` for an input of ``in_shape`` (``(C, H, W)`` as PyTorch takes
    an image, or ``(features,)``), checked.

    Raises
    ------
    ModelError
        One line naming the first layer that is not supported (its position in the model,
        its name and type) and why, or the model that cannot be traced.
    """
    if not isinstance(model, nn.Module):
        raise ModelError(f"model: a torch.nn.Module is needed, not {type(model).__name__}")
    try:
        gm = torch.fx.symbolic_trace(model)
    except Exception as e:  # noqa: BLE001  (fx raises many kinds; one line for the user)
        raise ModelError(f"model {type(model).__name__}: its forward pass cannot be traced "
                         f"by torch.fx ({str(e).splitlines()[0]}); write it as a chain of "
                         f"{SUPPORTED}") from None
    sizes = {n for n in gm.graph.nodes if n.op == "call_method" and n.target == "size"}
    nodes = [n for n in gm.graph.nodes
             if n.op not in ("placeholder", "output", "get_attr") and n not in sizes]
    shape = tuple(int(s) for s in in_shape)
    layers: list[TorchLayer] = []
    taken: set = set()
    prev = next(n for n in gm.graph.nodes if n.op == "placeholder")
    signed_input = True  # until a layer with weights (or a ReLU) makes the codes >= 0
    for pos, node in enumerate(nodes, 1):
        where = f"layer {pos} of {len(nodes)} ({_label(node, gm)})"
        ins = [a for a in (*node.args, *node.kwargs.values())
               if isinstance(a, torch.fx.Node) and a not in sizes]
        if ins != [prev]:
            raise ModelError(f"{where}: takes {len(ins)} tensors or not the layer before's "
                             "output; the model must be a chain of layers")
        prev = node
        what = _what(node, gm)
        mod = gm.get_submodule(node.target) if node.op == "call_module" else None
        last = layers[-1] if layers else None

        def fail(why, where=where):
            raise ModelError(f"{where}: {why}")

        if what in _SKIPS:
            continue
        if what in _ACTS:
            if last is not None and last.weight is not None and not last.relu:
                last.relu = True
            elif signed_input:
                fail("a ReLU must follow a Conv2d or Linear (or its BatchNorm)")
            signed_input = False  # a ReLU of codes that are already >= 0 does nothing
            continue
        if what in (nn.BatchNorm1d, nn.BatchNorm2d):
            if last is None or last.weight is None or last.relu:
                fail("batch norm is folded into the Conv2d or Linear right before it, and "
                     "there is none")
            g = (mod.weight.detach().double().numpy() if mod.affine
                 else np.ones(mod.num_features))
            beta = (mod.bias.detach().double().numpy() if mod.affine
                    else np.zeros(mod.num_features))
            inv = g / np.sqrt(mod.running_var.double().numpy() + mod.eps)
            last.weight = last.weight * inv.reshape((-1,) + (1,) * (last.weight.ndim - 1))
            last.bias = (last.bias - mod.running_mean.double().numpy()) * inv + beta
            continue
        if last is not None and last.weight is not None and not last.relu:
            fail(f"the layer before ({last.name}) has no ReLU: every Conv2d and Linear but "
                 "the last is followed by one (the hardware requantizes after it)")
        if not layers and what in ("view", "reshape"):
            shape = _reshaped(node, shape, fail)  # the input's shape, e.g. flat -> image
            continue
        spatial = len(shape) == 3
        name = _bundle_name(node.name, taken)
        if what is nn.Conv2d or what is functional.conv2d:
            if mod is None:
                fail("use the nn.Conv2d module (its weights are the model's parameters)")
            if not spatial:
                fail(f"needs a feature map, the input here is flat ({shape[0]} features)")
            if mod.groups != 1 or _pair(mod.dilation) != (1, 1):
                fail(f"groups {mod.groups} and dilation {mod.dilation}: only groups 1 and "
                     "dilation 1 are supported")
            if mod.padding_mode != "zeros":
                fail(f"padding mode {mod.padding_mode!r}: only zero padding is supported")
            c, h, w = shape
            if mod.in_channels != c:
                fail(f"takes {mod.in_channels} channels, the map here has {c}")
            k, s = _pair(mod.kernel_size), _pair(mod.stride)
            p = mod.padding
            if p == "valid":
                p = (0, 0)
            elif p == "same":
                if s != (1, 1) or k[0] % 2 == 0 or k[1] % 2 == 0:
                    fail("padding 'same' is supported at stride 1 with odd kernels")
                p = (k[0] // 2, k[1] // 2)
            p = _pair(p)
            if p[0] >= k[0] or p[1] >= k[1]:
                fail(f"padding {p} is more than kernel - 1 ({k})")
            if h + 2 * p[0] < k[0] or w + 2 * p[1] < k[1]:
                fail(f"a {k} kernel does not fit the {h}x{w} map padded by {p}")
            out = (mod.out_channels, (h + 2 * p[0] - k[0]) // s[0] + 1,
                   (w + 2 * p[1] - k[1]) // s[1] + 1)
            bias = (mod.bias.detach().double().numpy().copy() if mod.bias is not None
                    else np.zeros(mod.out_channels))
            layers.append(TorchLayer("conv", name, pos, shape, out,
                                     mod.weight.detach().double().numpy().copy(), bias,
                                     kernel=k, stride=s, padding=p))
            shape = out
        elif what is nn.Linear or what is functional.linear:
            if mod is None:
                fail("use the nn.Linear module (its weights are the model's parameters)")
            if spatial:
                fail(f"takes a flat vector: flatten the {shape[1]}x{shape[2]}x{shape[0]} map "
                     "before it")
            if mod.in_features != shape[0]:
                fail(f"takes {mod.in_features} features, the vector here has {shape[0]}")
            chw = None
            if last is not None and last.kind == "flatten":
                chw = last.in_shape
            bias = (mod.bias.detach().double().numpy().copy() if mod.bias is not None
                    else np.zeros(mod.out_features))
            layers.append(TorchLayer("dense", name, pos, shape, (mod.out_features,),
                                     mod.weight.detach().double().numpy().copy(), bias,
                                     chw_columns=chw))
            shape = (mod.out_features,)
        elif what in (nn.MaxPool2d, nn.AvgPool2d, functional.max_pool2d,
                      functional.avg_pool2d):
            if not spatial:
                fail("pooling needs a feature map, the input here is flat")
            if mod is not None:
                k, s, p = mod.kernel_size, mod.stride, mod.padding
                ceil = mod.ceil_mode
                dil = getattr(mod, "dilation", 1)
                div = getattr(mod, "divisor_override", None)
            else:
                k, s = _arg(node, 1, "kernel_size", None), _arg(node, 2, "stride", None)
                p, ceil = _arg(node, 3, "padding", 0), node.kwargs.get("ceil_mode", False)
                dil = node.kwargs.get("dilation", 1)
                div = node.kwargs.get("divisor_override", None)
            s = k if s in (None, ()) else s
            k, s = _pair(k), _pair(s)
            if _pair(p) != (0, 0) or ceil or _pair(dil) != (1, 1) or div is not None:
                fail("pooling with padding, ceil_mode, dilation or a divisor override is not "
                     "supported")
            c, h, w = shape
            if h < k[0] or w < k[1]:
                fail(f"a {k} window does not fit the {h}x{w} map")
            out = (c, (h - k[0]) // s[0] + 1, (w - k[1]) // s[1] + 1)
            kind = "maxpool" if what in (nn.MaxPool2d, functional.max_pool2d) else "avgpool"
            layers.append(TorchLayer(kind, name, pos, shape, out, kernel=k, stride=s))
            shape = out
        elif what in (nn.AdaptiveAvgPool2d, functional.adaptive_avg_pool2d):
            size = mod.output_size if mod is not None else _arg(node, 1, "output_size", None)
            if not spatial or _pair(size) != (1, 1):
                fail(f"adaptive average pooling is supported to 1x1 (global) only, not "
                     f"{size}")
            layers.append(TorchLayer("global_avgpool", name, pos, shape, (shape[0],)))
            shape = (shape[0],)
        elif what in _FLATTENS:
            if spatial:  # x.flatten(1), x.view(len(x), -1): the whole map; flat: nothing
                layers.append(TorchLayer("flatten", name, pos, shape, (math.prod(shape),)))
                shape = (math.prod(shape),)
        elif what is operator.getitem:
            fail("indexing and sizes are not layers; flatten with x.flatten(1)")
        else:
            fail(f"is not supported; rtl_gen takes {SUPPORTED}")
    weighted = [x for x in layers if x.weight is not None]
    if not weighted:
        raise ModelError(f"model {type(model).__name__}: has no Conv2d or Linear layer")
    for x in weighted[:-1]:
        if not x.relu:
            raise ModelError(f"layer {x.position} ({x.name}): has no ReLU after it: every "
                             "Conv2d and Linear but the last is followed by one")
    if layers[-1] is not weighted[-1] or weighted[-1].relu:
        raise ModelError(f"model {type(model).__name__}: must end with a Conv2d or Linear "
                         "without ReLU (the logits)")
    if len(layers[-1].out_shape) != 1:
        raise ModelError(f"model {type(model).__name__}: its last layer gives a "
                         f"{layers[-1].out_shape} map, not a vector of logits")
    return layers


def _reshaped(node, shape, fail) -> tuple[int, ...]:
    """The shape an input reshape (``x.view(-1, C, H, W)``, ``x.reshape(len(x), -1)``)
    gives."""
    dims = list(node.args[1:]) or list(node.kwargs.get("shape", ()))
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = list(dims[0])
    dims = dims[1:]
    n = math.prod(shape)
    if dims == [-1]:
        return (n,)
    if not all(isinstance(d, int) and d > 0 for d in dims) or len(dims) not in (1, 3) \
            or math.prod(dims) != n:
        fail(f"reshapes the {shape} input to {tuple(dims)}: give in_shape as the (C, H, W) "
             "or (features,) it takes")
    return tuple(dims)


def _act(h: torch.Tensor, clip: nn.Parameter, top: int):
    """Quantized ReLU: ``floor(clip(h / s, 0, top) + 0.5) * s`` with ``s = clip / top``
    (STE), and ``s``."""
    s = torch.clamp(clip.abs(), min=1e-8) / top
    u = torch.clamp(h / s, 0, top)
    return _ste(u, torch.floor(u.detach() + 0.5)) * s, s


def _fake_bias(bias: torch.Tensor, acc_scale) -> torch.Tensor:
    v = bias / acc_scale
    return _ste(v, _round_half_away(v.detach())) * acc_scale


def _peak(h: torch.Tensor, top: int) -> float:
    """The clip of least squared quantization error of the ReLU output ``h`` on
    ``top + 1`` levels (48 candidates up to its largest value)."""
    v = torch.relu(h).flatten()
    peak = float(v.max())
    if peak <= 0:
        return 1.0
    best, err = peak, float("inf")
    for r in torch.linspace(1 / 48, 1, 48, dtype=DTYPE):
        s = peak * float(r) / top
        e = float(((torch.floor(torch.clamp(v / s, 0, top) + 0.5) * s - v) ** 2).sum())
        if e < err:
            best, err = peak * float(r), e
    return best


def _mean_codes(sums: torch.Tensor, n: int, s_in) -> torch.Tensor:
    """``floor((sum + n//2) / n)`` of code sums (the golden model's rounded mean), STE."""
    q = torch.floor((torch.round(sums.detach()) + n // 2) / n)
    return _ste(sums / n, q) * s_in


class QATNet(nn.Module):
    """A user's network (:func:`read_torch`) with quantized weights, biases and activations.

    Parameters
    ----------
    model:
        The float ``torch.nn.Module`` (not changed).
    schemes:
        One weight scheme for every layer with weights, or one per layer (mixed precision).
    input_spec:
        The input code (:class:`~rtl_gen.design.network.InputSpec`); its ``features`` must
        be the product of ``in_shape``.
    in_shape:
        ``(C, H, W)`` of an image as the model takes it, or ``None`` for a flat input.
    act_bits:
        Width of every ReLU output code.
    """

    def __init__(self, model: nn.Module, schemes, *, input_spec: InputSpec, in_shape=None,
                 act_bits: int = 4):
        super().__init__()
        shape = tuple(in_shape) if in_shape is not None else (input_spec.features,)
        if math.prod(shape) != input_spec.features:
            raise ModelError(f"in_shape {shape} holds {math.prod(shape)} values, the input "
                             f"spec {input_spec.features} features")
        self.layers_ = read_torch(model, shape)
        # the shape the first layer sees (after an input reshape in the model's forward)
        self.in_shape = self.layers_[0].in_shape
        self.input_spec, self.act_bits = input_spec, int(act_bits)
        self.top = (1 << self.act_bits) - 1
        weighted = [x for x in self.layers_ if x.weight is not None]
        if isinstance(schemes, (str, WeightScheme)):
            schemes = [schemes] * len(weighted)
        if len(schemes) != len(weighted):
            raise ModelError(f"{len(schemes)} weight schemes for {len(weighted)} layers with "
                             "weights")
        self.schemes = [parse_scheme(s) if isinstance(s, str) else s for s in schemes]
        self.weights = nn.ParameterList(nn.Parameter(torch.tensor(x.weight, dtype=DTYPE))
                                        for x in weighted)
        self.biases = nn.ParameterList(nn.Parameter(torch.tensor(x.bias, dtype=DTYPE))
                                       for x in weighted)
        self.quantizers = nn.ModuleList(WeightQuantizer(s, w) for s, w in
                                        zip(self.schemes, self.weights, strict=True))
        # PoT and APoT quantize the normalised weight (W - mean) / std: a layer's output
        # grows by 1 / std and every later bias follows (ReLU and pooling commute with a
        # positive factor); the logits are scaled back for the loss (same classes).
        gain = 1.0
        with torch.no_grad():
            for q, w, b in zip(self.quantizers, self.weights, self.biases, strict=True):
                if q.normalise:
                    gain /= float(w.std(unbiased=False))
                b.mul_(gain)
        self.register_buffer("logit_scale", torch.tensor(1 / gain, dtype=DTYPE))
        self.clips = nn.ParameterList(nn.Parameter(torch.ones((), dtype=DTYPE))
                                      for x in weighted if x.relu)

    def _image(self, x) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x, dtype=DTYPE)
        return x.reshape((-1, *self.in_shape))

    def _codes(self, x) -> torch.Tensor:
        lo, hi = self.input_spec.range
        return torch.clamp(_round_half_away(self._image(x) / self.input_spec.scale), lo, hi)

    def input_codes(self, x) -> np.ndarray:
        """The hardware's input codes ``(batch, features)`` (HWC order) of inputs in the
        model's layout."""
        c = self._codes(x).numpy().astype(np.int64)
        if c.ndim == 4:
            c = c.transpose(0, 2, 3, 1)
        return c.reshape(len(c), -1)

    def _run(self, x, until_raw: int | None = None):
        """The quantized forward pass; with ``until_raw``, the pre-activation output of that
        ReLU layer (for calibration)."""
        s_in = self.input_spec.scale
        h = self._codes(x) * s_in
        wi = ci = 0
        for layer in self.layers_:
            if layer.weight is not None:
                w, s_w = self.quantizers[wi].fake(self.weights[wi])
                b = _fake_bias(self.biases[wi], s_in * s_w)
                wi += 1
                if layer.kind == "conv":
                    h = functional.conv2d(h, w, b, stride=layer.stride, padding=layer.padding)
                else:
                    h = functional.linear(h, w, b)
                if layer.relu:
                    if until_raw == ci:
                        return h
                    h, s_in = _act(h, self.clips[ci], self.top)
                    ci += 1
            elif layer.kind == "maxpool":
                h = functional.max_pool2d(h, layer.kernel, layer.stride)
            elif layer.kind == "avgpool":
                n = layer.kernel[0] * layer.kernel[1]
                sums = functional.avg_pool2d(h / s_in, layer.kernel, layer.stride) * n
                h = _mean_codes(sums, n, s_in)
            elif layer.kind == "global_avgpool":
                n = h.shape[2] * h.shape[3]
                h = _mean_codes((h / s_in).sum(dim=(2, 3)), n, s_in)
            elif layer.kind == "flatten":
                h = h.flatten(1)
        return h * self.logit_scale

    def forward(self, x) -> torch.Tensor:
        """Logits of float inputs in the model's layout (an image also as a flat CHW row)."""
        return self._run(x)

    @torch.no_grad()
    def calibrate(self, x) -> None:
        """Every clip at the least-squared-error clip of its ReLU's output on ``x``."""
        for i, clip in enumerate(self.clips):
            clip.fill_(_peak(self._run(x, until_raw=i), self.top))

    @torch.no_grad()
    def export(self, *, name: str, labels=None, metadata: dict | None = None,
               names=None) -> Network:
        """The integer network: HWC feature maps, OHWI kernels, dense columns in HWC order;
        its layers named by ``names`` (one per exported layer) or after the model's."""
        spec = self.input_spec
        s_in, bits, signed = spec.scale, spec.bits, spec.signed
        out, wi, ci = [], 0, 0
        if names is not None and len(names) != len(self.layers_):
            raise ModelError(f"{len(names)} layer names for {len(self.layers_)} layers")
        for k, layer in enumerate(self.layers_):
            layer = dataclasses.replace(layer, name=names[k]) if names else layer
            hwc = (tuple(layer.in_shape[1:]) + layer.in_shape[:1]
                   if len(layer.in_shape) == 3 else None)
            if layer.weight is None:
                if layer.kind in ("maxpool", "avgpool"):
                    cls = MaxPoolLayer if layer.kind == "maxpool" else AvgPoolLayer
                    out.append(cls(name=layer.name, in_shape=hwc, kernel=layer.kernel,
                                   stride=layer.stride, in_bits=bits, in_signed=signed))
                elif layer.kind == "global_avgpool":
                    out.append(GlobalAvgPoolLayer(name=layer.name, in_shape=hwc, in_bits=bits,
                                                  in_signed=signed))
                else:
                    out.append(FlattenLayer(name=layer.name, in_shape=hwc, in_bits=bits,
                                            in_signed=signed))
                continue
            qz, scheme = self.quantizers[wi], self.schemes[wi]
            win = qz.input(self.weights[wi]).numpy().copy()
            q = scheme.quantize(win.reshape(len(win), -1),
                                alpha=float(qz.alpha_value(torch.as_tensor(win))))
            b = self.biases[wi].numpy().astype(np.float64).copy()
            acc_scale = s_in * q.scale
            wi += 1
            act = {"activation": "none"}
            s_out = None
            if layer.relu:
                s_out = float(torch.clamp(self.clips[ci].abs(), min=1e-8)) / self.top
                ci += 1
                m, sh = requant_params(np.full(len(b), acc_scale / s_out))
                act = {"activation": "relu", "out_bits": self.act_bits, "out_scale": s_out,
                       "requant_multiplier": m, "requant_shift": sh}
            common = {"name": layer.name, "scheme": scheme, "weight_scale": q.scale,
                      "bias": round_half_away(b / acc_scale).astype(np.int64),
                      "in_bits": bits, "in_signed": signed, "float_bias": b, **act}
            if layer.kind == "conv":
                codes = q.codes.reshape(win.shape).transpose(0, 2, 3, 1)  # OIHW -> OHWI
                out.append(ConvLayer.from_kernel(
                    codes=codes, in_shape=hwc, stride=layer.stride, padding=layer.padding,
                    float_weight=win.transpose(0, 2, 3, 1), **common))
            else:
                codes, fw = q.codes, win
                if layer.chw_columns is not None:  # PyTorch flattened CHW, the maps are HWC
                    c, h, w = layer.chw_columns
                    order = np.arange(c * h * w).reshape(c, h, w).transpose(1, 2, 0).ravel()
                    codes, fw = codes[:, order], fw[:, order]
                out.append(DenseLayer(codes=codes, float_weight=fw, **common))
            if s_out is not None:
                s_in, bits, signed = s_out, self.act_bits, False
        meta = {"quantizer": "qat", "schemes": [s.name for s in self.schemes]}
        meta.update(metadata or {})
        n_out = self.layers_[-1].out_shape[0]
        labels = tuple(str(v) for v in (labels if labels is not None else range(n_out)))
        return Network(name=name, input=self.input_spec, layers=tuple(out), labels=labels,
                       metadata=meta)


def quantize_torch(model: nn.Module, x, schemes, *, input_spec: InputSpec, in_shape=None,
                   act_bits: int = 4, name: str = "model", labels=None) -> Network:
    """Post-training quantization of a user's PyTorch model: :class:`QATNet` with its clips
    calibrated on ``x`` (inputs in the model's layout), exported with no training."""
    net = QATNet(model, schemes, input_spec=input_spec, in_shape=in_shape, act_bits=act_bits)
    net.calibrate(x)
    return net.export(name=name, labels=labels, metadata={"quantizer": "ptq"})
