"""Quantization-aware training (QAT) of MLPs in PyTorch, and their export to weight bundles.

Needs the ``torch`` extra (``pip install 'rtl_gen[torch]'``, pinned to the CPU wheel).

Every weight scheme of the project trains with a straight-through estimator (STE): the
forward pass uses the quantized weight, the backward pass treats rounding as the identity.

=========  ===============================================================================
scheme     training-time weight (``w_int`` times the weight scale)
=========  ===============================================================================
binary     ``alpha * sign(W)``, ``alpha = mean|W|`` (XNOR-Net), STE to ``W``
ternary    ``alpha * sign(W) * (|W| > 0.7 mean|W|)``, ``alpha`` the mean kept magnitude
           (TWN), STE to ``W``
potB/apotB normalised ``Wn = (W - mean W) / std W``; ``alpha * level(clip(Wn / alpha))``
           with a learned clipping ``alpha`` (init 3.0, APoT's recipe); levels of the scheme
intB       ``s * round(clip(W / s))`` with a learned step ``s`` (LSQ-style; init: the PTQ
           clipping of least squared error)
signmagB   like intB on sign-magnitude levels (term revealing's quantizer); with a
           :class:`~rtl_gen.design.network.TRConfig` the weights are *term revealed* and the layer's
           inputs truncated to their ``s`` largest HESE terms in the forward pass (TR-aware
           training; STE through both)
=========  ===============================================================================

Activations: the network input is quantized to its input code; every hidden layer output is
``floor(clip(h / s_out, 0, 2**a - 1) + 0.5) * s_out`` (round half up, like the integer
requantizer), with ``s_out = clip / (2**a - 1)`` and ``clip`` learned (PACT/LSQ-style),
initialised by calibration (the largest ReLU output on the calibration data).  Biases are
rounded to accumulator units (``s_in * s_w``), as the bundle stores them.

:meth:`QATMLP.integer_forward` is the model's own integer-simulated forward pass: exact int64
``acc = x @ w_int.T + b_int`` and ``clamp((acc * M + 2**(S-1)) >> S, 0, 2**a - 1)``, with
``w_int``, ``b_int``, ``M`` and ``S`` computed in PyTorch from the trained state.
:meth:`QATMLP.export` writes the same state through
:func:`rtl_gen.training.qat_state.export_network`
(numpy), and the golden model's logits on the exported bundle equal ``integer_forward``'s
(a test checks it for every scheme).

:func:`search_bits` is a per-layer bit-width search in the spirit of EBS: one set of shared
float meta weights per layer, every candidate width quantizes them with its own learned step,
the layer's weight is the softmax(strength)-weighted sum of the candidates, and the loss adds
``lam`` times the expected bits per weight; the strongest candidate of each layer is kept.

Determinism: :func:`deterministic` seeds PyTorch, uses one thread and
``torch.use_deterministic_algorithms``; everything trains in float64.
"""

from __future__ import annotations

import contextlib
import dataclasses

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from ..design.network import InputSpec, Network, TRConfig
from ..numerics.fixedpoint import requant_params
from ..numerics.schemes import WeightScheme, parse_scheme
from ..numerics.terms import term_reveal, truncate_terms
from .float_model import FloatMLP
from .qat_state import QATLayerState, QATState, export_network

__all__ = [
    "QATLinear",
    "QATMLP",
    "SearchResult",
    "WeightQuantizer",
    "deterministic",
    "distillation_loss",
    "search_bits",
    "train_qat",
]

DTYPE = torch.float64


def _round_half_away(t: torch.Tensor) -> torch.Tensor:
    return torch.sign(t) * torch.floor(t.abs() + 0.5)


def _ste(x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """``q`` in the forward pass, the identity of ``x`` in the backward pass."""
    return x + (q - x).detach()


@contextlib.contextmanager
def deterministic(seed: int):
    """Seeded, single-threaded, deterministic PyTorch inside the ``with`` block."""
    threads = torch.get_num_threads()
    was = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(seed)
    try:
        yield torch.Generator().manual_seed(seed)
    finally:
        torch.use_deterministic_algorithms(was)
        torch.set_num_threads(threads)


class WeightQuantizer(nn.Module):
    """The STE quantizer of one weight scheme (the table of the module docstring).

    Parameters
    ----------
    scheme:
        The weight scheme.
    weight:
        The float weight it will quantize (initialises the learned ``alpha``).
    """

    def __init__(self, scheme: WeightScheme, weight: torch.Tensor):
        super().__init__()
        self.scheme = scheme
        kind = scheme.kind
        self.normalise = kind in ("pot", "apot")
        mags = scheme.levels()
        mags = mags[mags >= 0].astype(np.float64)
        self.register_buffer("mags", torch.tensor(mags, dtype=DTYPE))
        self.register_buffer("mids", torch.tensor((mags[1:] + mags[:-1]) / 2, dtype=DTYPE))
        self.top = float(mags[-1])
        if kind in ("binary", "ternary"):
            self.alpha = None
        else:
            w = self.input(weight.detach()).numpy()
            init = 3.0 if self.normalise else scheme.quantize(w).alpha
            self.alpha = nn.Parameter(torch.tensor(float(init), dtype=DTYPE))

    def input(self, w: torch.Tensor) -> torch.Tensor:
        """The tensor the quantizer sees: ``W``, or ``(W - mean) / std`` for PoT and APoT."""
        if not self.normalise:
            return w
        return (w - w.mean()) / w.std(unbiased=False)

    def alpha_value(self, win: torch.Tensor) -> torch.Tensor:
        """The scheme's alpha (:class:`~rtl_gen.numerics.schemes.QuantizedWeights`)."""
        if self.scheme.kind == "binary":
            return win.abs().mean()
        if self.scheme.kind == "ternary":
            kept = win.abs()[self._ternary(win) != 0]
            return kept.mean() if kept.numel() else torch.ones((), dtype=DTYPE)
        return torch.clamp(self.alpha.abs(), min=1e-8)  # kept positive, exact otherwise

    def scale(self, alpha):
        """Float value of one unit of ``w_int`` (works on tensors and Python floats)."""
        if self.scheme.kind in ("pot", "apot"):
            return alpha / self.scheme.w_int_max
        return alpha

    def _ternary(self, win):
        delta = 0.7 * win.abs().mean()
        return torch.sign(win) * (win.abs() > delta)

    def w_int(self, win: torch.Tensor, scale) -> torch.Tensor:
        """Integer weights (a float64 tensor of integers, no gradient)."""
        with torch.no_grad():
            kind = self.scheme.kind
            if kind == "binary":
                return torch.where(win < 0, -1.0, 1.0).to(DTYPE)
            if kind == "ternary":
                return self._ternary(win).to(DTYPE)
            u = win / scale
            if kind == "signmag":
                return torch.sign(u) * torch.clamp(torch.floor(u.abs() + 0.5), max=self.top)
            return torch.sign(u) * self.mags[torch.bucketize(u.abs(), self.mids, right=True)]

    def fake(self, w: torch.Tensor, reveal=None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(training-time weight, weight scale)``; ``reveal`` maps ``w_int`` to the
        term-revealed ``w_int`` (TR-aware training)."""
        win = self.input(w)
        a = self.alpha_value(win)
        s = self.scale(a)
        wi = self.w_int(win, s.detach())
        if reveal is not None:
            wi = reveal(wi)
        if self.scheme.kind in ("binary", "ternary"):
            return _ste(win, wi * s.detach()), s.detach()
        u = torch.clamp(win / s, -self.top, self.top)
        return _ste(u, wi) * s, s


class QATLinear(nn.Module):
    """A dense layer trained with quantized weights, bias and (hidden) activations.

    Parameters
    ----------
    weight, bias:
        Initial float weight ``(out, in)`` and bias ``(out,)`` (PyTorch layout).
    scheme:
        Its weight scheme.
    act_bits:
        Output activation width, or ``None`` for the last layer (logits).
    tr:
        Term revealing of this layer (only for ``signmag`` and ``int`` schemes), or ``None``.
    """

    def __init__(self, weight, bias, scheme: WeightScheme, *, act_bits: int | None,
                 in_bits: int, tr: TRConfig | None = None):
        super().__init__()
        self.weight = nn.Parameter(torch.as_tensor(np.asarray(weight), dtype=DTYPE).clone())
        self.bias = nn.Parameter(torch.as_tensor(np.asarray(bias), dtype=DTYPE).clone())
        self.scheme = scheme
        self.act_bits = act_bits
        self.in_bits = in_bits
        self.tr = tr
        self.quantizer = WeightQuantizer(scheme, self.weight)
        self.clip = None if act_bits is None else nn.Parameter(torch.ones((), dtype=DTYPE))

    @property
    def top(self) -> int:
        return (1 << self.act_bits) - 1

    def out_scale(self):
        return torch.clamp(self.clip.abs(), min=1e-8) / self.top

    def _reveal(self, wi: torch.Tensor) -> torch.Tensor:
        r = term_reveal(wi.detach().numpy().astype(np.int64), self.tr.group, self.tr.budget,
                        self.scheme.magnitude_bits)
        return torch.as_tensor(r, dtype=DTYPE)

    def _truncate(self, x_int: torch.Tensor) -> torch.Tensor:
        t = truncate_terms(x_int.detach().numpy().astype(np.int64), self.tr.data_terms,
                           self.in_bits)
        return torch.as_tensor(t, dtype=DTYPE)

    def forward(self, x: torch.Tensor, s_in: float, quantize_out: bool = True):
        """Fake-quantized layer on inputs ``x`` that are multiples of ``s_in``; returns the
        output (quantized activations for a hidden layer, float logits for the last)."""
        w, s_w = self.quantizer.fake(self.weight, self._reveal if self.tr else None)
        if self.tr is not None and self.tr.data_terms is not None:
            s = s_in.detach() if isinstance(s_in, torch.Tensor) else s_in
            x = _ste(x, self._truncate(torch.round(x.detach() / s)) * s_in)
        acc_scale = s_in * s_w
        v = self.bias / acc_scale
        b = _ste(v, _round_half_away(v.detach())) * acc_scale
        h = x @ w.T + b
        if self.act_bits is None or not quantize_out:
            return h
        s_out = self.out_scale()
        u = torch.clamp(h / s_out, 0, self.top)
        return _ste(u, torch.floor(u.detach() + 0.5)) * s_out

    def state(self, s_in: float) -> QATLayerState:
        """The trained layer for :func:`~rtl_gen.training.qat_state.export_network`."""
        with torch.no_grad():
            win = self.quantizer.input(self.weight)
            alpha = float(self.quantizer.alpha_value(win))
            out_scale = None if self.act_bits is None else float(self.out_scale())
            return QATLayerState(weight=win.numpy().copy(), bias=self.bias.numpy().copy(),
                                 scheme=self.scheme, alpha=alpha, out_scale=out_scale,
                                 tr=self.tr)

    def integer_params(self, s_in: float):
        """``(w_int, b_int, M, S)`` as int64 tensors (``M``, ``S`` ``None`` for the last
        layer), computed in PyTorch from the trained state."""
        st = self.state(s_in)
        with torch.no_grad():
            win = self.quantizer.input(self.weight)
            s_w = float(self.quantizer.scale(st.alpha))
            wi = self.quantizer.w_int(win, s_w).to(torch.int64)
            acc_scale = s_in * s_w
            bi = _round_half_away(self.bias / acc_scale).to(torch.int64)
        if self.act_bits is None:
            return wi, bi, None, None
        m, s = requant_params(np.full(len(bi), acc_scale / st.out_scale))
        return wi, bi, torch.as_tensor(m), torch.as_tensor(s)


class QATMLP(nn.Module):
    """A chain of :class:`QATLinear` with ReLU (inside the activation quantizer) between.

    Parameters
    ----------
    weights, biases:
        Initial float layers (e.g. a trained :class:`~rtl_gen.training.float_model.FloatMLP`).
    schemes:
        One scheme (or name) for every layer, or one per layer.
    input_spec:
        The integer input code (the network input is quantized to it).
    act_bits:
        Hidden activation width.
    tr:
        Term revealing for every layer, or ``None``.
    """

    def __init__(self, weights, biases, schemes, *, input_spec: InputSpec, act_bits: int = 8,
                 tr: TRConfig | None = None):
        super().__init__()
        n = len(weights)
        if isinstance(schemes, (str, WeightScheme)):
            schemes = [schemes] * n
        schemes = [parse_scheme(s) if isinstance(s, str) else s for s in schemes]
        if len(schemes) != n:
            raise ValueError(f"{len(schemes)} schemes given for a {n}-layer model")
        self.input_spec = input_spec
        self.act_bits = act_bits
        bits = [input_spec.bits] + [act_bits] * (n - 1)
        self.layers = nn.ModuleList(
            QATLinear(w, b, s, act_bits=act_bits if i < n - 1 else None, in_bits=bits[i], tr=tr)
            for i, (w, b, s) in enumerate(zip(weights, biases, schemes, strict=True)))

    @classmethod
    def from_float(cls, model: FloatMLP, schemes, **kwargs) -> QATMLP:
        return cls(model.weights, model.biases, schemes, **kwargs)

    def _scales(self) -> list[float]:
        """Each layer's input scale (Python floats, as the bundle stores them)."""
        out = [self.input_spec.scale]
        for layer in self.layers[:-1]:
            out.append(float(layer.out_scale().detach()))
        return out

    def quantize_input(self, x) -> torch.Tensor:
        lo, hi = self.input_spec.range
        x = torch.as_tensor(np.asarray(x), dtype=DTYPE)
        return torch.clamp(_round_half_away(x / self.input_spec.scale), lo, hi)

    def forward(self, x) -> torch.Tensor:
        """Fake-quantized float logits for float inputs ``(batch, features)``."""
        s_in = self.input_spec.scale
        h = self.quantize_input(x) * s_in
        for layer in self.layers:
            out = layer(h, s_in)
            if layer.act_bits is not None:
                s_in = layer.out_scale()
            h = out
        return h

    @torch.no_grad()
    def calibrate(self, x) -> None:
        """Set every activation clip to the largest ReLU output on ``x``, layer by layer."""
        s_in = self.input_spec.scale
        h = self.quantize_input(x) * s_in
        for layer in self.layers:
            if layer.act_bits is None:
                break
            peak = float(torch.relu(layer(h, s_in, quantize_out=False)).max())
            layer.clip.fill_(peak if peak > 0 else 1.0)
            h = layer(h, s_in)
            s_in = layer.out_scale()

    @torch.no_grad()
    def integer_forward(self, x_int) -> np.ndarray:
        """The model's own integer-simulated forward pass: int64 logits for integer input
        codes ``(batch, features)`` (module docstring)."""
        x = torch.as_tensor(np.asarray(x_int), dtype=torch.int64)
        for layer, s_in in zip(self.layers, self._scales(), strict=True):
            wi, bi, m, s = layer.integer_params(s_in)
            if layer.tr is not None:
                wi = layer._reveal(wi.to(DTYPE)).to(torch.int64)
                if layer.tr.data_terms is not None:
                    x = layer._truncate(x).to(torch.int64)
            acc = x @ wi.T + bi
            if m is None:
                return acc.numpy()
            x = torch.clamp((acc * m + (1 << (s - 1))) >> s, 0, layer.top)
        raise AssertionError("unreachable")  # pragma: no cover

    def integer_accuracy(self, x_int, y) -> float:
        return float(np.mean(np.argmax(self.integer_forward(x_int), axis=-1) == np.asarray(y)))

    def to_state(self) -> QATState:
        return QATState(layers=tuple(layer.state(s) for layer, s in
                                     zip(self.layers, self._scales(), strict=True)),
                        input=self.input_spec, act_bits=self.act_bits)

    def export(self, *, name: str, labels=None, metadata: dict | None = None) -> Network:
        """The integer :class:`~rtl_gen.design.network.Network` of the trained model."""
        return export_network(self.to_state(), name=name, labels=labels, metadata=metadata)


def distillation_loss(logits: torch.Tensor, soft: torch.Tensor, t: float = 2.0
                      ) -> torch.Tensor:
    """Knowledge distillation's term: ``t**2`` times the KL divergence of the student's
    ``logits`` from the teacher's ``soft`` logits, both softened by temperature ``t``."""
    return t * t * functional.kl_div(functional.log_softmax(logits / t, -1),
                                     functional.log_softmax(soft / t, -1),
                                     log_target=True, reduction="batchmean")


def train_qat(model: nn.Module, x, y, *, epochs: int = 60, batch: int = 64, lr: float = 2e-3,
              seed: int = 0, teacher: FloatMLP | None = None, extra_loss=None,
              progress=None) -> nn.Module:
    """Train ``model`` (a :class:`QATMLP` or a search model) with Adam and a cosine schedule.

    The loss is cross-entropy, plus (with ``teacher``) the KL divergence to the float
    teacher's softened outputs (temperature 2), plus ``extra_loss()`` when given.
    Deterministic for a given ``seed`` (see :func:`deterministic`).
    """
    x = np.asarray(x, dtype=np.float64)
    yt = torch.as_tensor(np.asarray(y), dtype=torch.int64)
    soft = None if teacher is None else torch.as_tensor(teacher.forward(x), dtype=DTYPE)
    with deterministic(seed) as gen:
        if isinstance(model, QATMLP):
            model.calibrate(x[:512])
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        steps = epochs * -(-len(x) // batch)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1))
        xt = torch.as_tensor(x, dtype=DTYPE)
        for epoch in range(epochs):
            order = torch.randperm(len(x), generator=gen)
            for start in range(0, len(x), batch):
                idx = order[start:start + batch]
                logits = model(xt[idx])
                loss = functional.cross_entropy(logits, yt[idx])
                if soft is not None:
                    loss = loss + distillation_loss(logits, soft[idx])
                if extra_loss is not None:
                    loss = loss + extra_loss()
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
            if progress is not None:
                progress(epoch)
    return model


@dataclasses.dataclass(frozen=True)
class SearchResult:
    """The outcome of :func:`search_bits`: the kept scheme of every layer and the learned
    strengths (softmax probabilities, one row per layer, one column per candidate)."""

    schemes: tuple[str, ...]
    candidates: tuple[str, ...]
    strengths: np.ndarray


class _SearchMLP(nn.Module):
    """Shared meta weights per layer; every candidate quantizes them; softmax(strength)."""

    def __init__(self, qat: QATMLP, candidates: list[WeightScheme]):
        super().__init__()
        self.qat = qat
        self.candidates = candidates
        self.quantizers = nn.ModuleList(
            nn.ModuleList(WeightQuantizer(c, layer.weight) for c in candidates)
            for layer in qat.layers)
        self.strength = nn.Parameter(torch.zeros(len(qat.layers), len(candidates),
                                                 dtype=DTYPE))
        for layer, qs in zip(qat.layers, self.quantizers, strict=True):
            layer.quantizer = _Mixture(qs, self)

    def forward(self, x):
        return self.qat(x)

    def expected_bits(self) -> torch.Tensor:
        """Expected bits per weight over the whole network."""
        p = torch.softmax(self.strength, dim=1)
        bits = torch.tensor([c.bits for c in self.candidates], dtype=DTYPE)
        sizes = torch.tensor([layer.weight.numel() for layer in self.qat.layers], dtype=DTYPE)
        return (p @ bits * sizes).sum() / sizes.sum()


class _Mixture(nn.Module):
    """Stands in for a layer's quantizer during the search."""

    def __init__(self, quantizers, owner):
        super().__init__()
        self.quantizers = quantizers
        self._owner = [owner]  # not a submodule: no parameter cycle

    def fake(self, w, reveal=None):
        owner = self._owner[0]
        row = [i for i, qs in enumerate(owner.quantizers) if qs is self.quantizers][0]
        p = torch.softmax(owner.strength[row], dim=0)
        out = 0
        for k, q in enumerate(self.quantizers):
            wq, _ = q.fake(w)
            out = out + p[k] * wq
        # The bias is rounded to units of the strongest candidate's scale.
        _, s = self.quantizers[int(torch.argmax(p))].fake(w)
        return out, s


def search_bits(model: FloatMLP, x, y, *, candidates=("int2", "int3", "int4", "int8"),
                input_spec: InputSpec, act_bits: int = 8, lam: float = 0.05,
                epochs: int = 30, seed: int = 0, progress=None) -> SearchResult:
    """EBS-style per-layer weight-width search (module docstring).

    Parameters
    ----------
    model:
        The float model whose weights initialise the shared meta weights.
    candidates:
        Scheme names of the candidate widths.
    lam:
        Weight of the expected bits per weight (normalised by 8) in the loss.
    """
    cands = [parse_scheme(c) for c in candidates]
    qat = QATMLP.from_float(model, cands[-1], input_spec=input_spec, act_bits=act_bits)
    search = _SearchMLP(qat, cands)
    with deterministic(seed):
        qat.calibrate(np.asarray(x, dtype=np.float64)[:512])
    train_qat(search, x, y, epochs=epochs, seed=seed, progress=progress,
              extra_loss=lambda: lam * search.expected_bits() / 8)
    p = torch.softmax(search.strength.detach(), dim=1).numpy()
    chosen = tuple(cands[int(k)].name for k in np.argmax(p, axis=1))
    return SearchResult(schemes=chosen, candidates=tuple(c.name for c in cands), strengths=p)
