"""MPWN fine-tuning: train a float MLP through its per-layer weight spaces (needs PyTorch).

Binary and ternary layers (and minifloat ones) see their quantized weights in the forward
pass and pass gradients straight through to latent float weights, with the same quantizers
:func:`rtl_gen.training.mpwn.from_float` applies afterwards (binary ``alpha_j = mean|w_j|``,
ternary the ``0.7 mean|w_j|`` threshold; on the exact contract power-of-two ``alpha`` and
dead ternary channels zeroed, :data:`~rtl_gen.training.mpwn.DEAD_SCALE`), so the fine-tuned
float model converts exactly into the network that was trained.  Training is
:func:`rtl_gen.training.qat.train_qat` (Adam, cosine schedule, distillation from the float
model, deterministic for a seed), for the contract's :data:`RECIPES` by default.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from ..design.float_network import parse_space
from .float_model import FloatMLP
from .mpwn import DEAD_SCALE
from .qat import DTYPE, _ste, train_qat

__all__ = ["MPWNMLP", "RECIPES", "finetune"]


def _pot(alpha: torch.Tensor, pot: bool) -> torch.Tensor:
    """``alpha``, or its nearest power of two in log2 (:func:`rtl_gen.training.mpwn.pot_alpha`)
    with the gradient passed straight through."""
    if not pot:
        return alpha
    return _ste(alpha, torch.exp2(torch.floor(torch.log2(alpha.detach()) + 0.5)))


def quantize_weight(w: torch.Tensor, space: str, pot: bool = False) -> torch.Tensor:
    """The weights a layer of ``space`` computes with (``alpha`` applied, a power of two
    when ``pot``, as the exact accumulation contract has it), as float."""
    if space == "float":
        return w
    a = w.abs()
    if space == "binary":
        return _pot(a.mean(dim=1, keepdim=True), pot) * torch.where(w < 0, -1.0, 1.0).to(
            w.dtype)
    if space == "ternary":
        keep = a > 0.7 * a.mean(dim=1, keepdim=True)
        kept = keep.sum(dim=1, keepdim=True)
        alpha = torch.where(kept > 0, (a * keep).sum(dim=1, keepdim=True) / kept.clamp(min=1),
                            a.amax(dim=1, keepdim=True))
        if pot:  # dead channels, as mpwn.from_float (DEAD_SCALE)
            median = torch.quantile(alpha.detach(), 0.5)
            live = alpha.detach() >= DEAD_SCALE * median
            keep = keep & live
            alpha = torch.where(live, alpha, median)
        return _pot(alpha, pot) * torch.sign(w) * keep
    fmt = parse_space(space)
    return torch.as_tensor(fmt.quantize(w.detach().numpy()), dtype=w.dtype)


class MPWNMLP(nn.Module):
    """A float MLP whose layers compute with their weight space's quantized weights."""

    def __init__(self, model: FloatMLP, spaces: Sequence[str], pot: bool = False):
        super().__init__()
        self.base = model
        self.spaces = tuple(spaces)
        self.pot = pot
        self.weights = nn.ParameterList(nn.Parameter(torch.as_tensor(w, dtype=DTYPE).clone())
                                        for w in model.weights)
        self.biases = nn.ParameterList(nn.Parameter(torch.as_tensor(b, dtype=DTYPE).clone())
                                       for b in model.biases)

    def forward(self, x):
        h = x
        n = len(self.spaces)
        for i, (w, b, s) in enumerate(zip(self.weights, self.biases, self.spaces, strict=True)):
            h = h @ _ste(w, quantize_weight(w, s, self.pot)).T + b
            if i < n - 1:
                h = torch.relu(h)
        return h

    def to_float_model(self) -> FloatMLP:
        """The latent float weights as a :class:`FloatMLP` (for :func:`mpwn.from_float`)."""
        return dataclasses.replace(
            self.base, weights=tuple(w.detach().numpy().copy() for w in self.weights),
            biases=tuple(b.detach().numpy().copy() for b in self.biases))


#: Default ``(epochs, lr)`` of the fine-tuning per accumulation contract.  The exact
#: contract's power-of-two ``alpha`` needs longer training: on the digits MLP's
#: ternary/ternary assignment, 30 epochs at 1e-3 gave 89.22% (mean of seeds 0-4, fp32
#: 91.11%), 60 at 2e-3 gave 90.83% (every seed 90.28% or more).
RECIPES = {"sequential": (30, 1e-3), "exact": (60, 2e-3)}


def finetune(model: FloatMLP, spaces: Sequence[str], x, y, *, epochs: int | None = None,
             lr: float | None = None, seed: int = 0, progress=None,
             accumulation: str = "sequential") -> FloatMLP:
    """Fine-tune ``model`` through ``spaces`` on ``(x, y)``; the float layers train too.

    ``accumulation="exact"`` trains with power-of-two ``alpha``, as the exact contract
    computes.  ``epochs`` and ``lr`` default to the contract's :data:`RECIPES`.  Returns the
    float model to convert with ``mpwn.from_float(result, spaces, accumulation=accumulation)``.
    """
    if len(spaces) != len(model.weights):
        raise ValueError(f"the model has {len(model.weights)} layers but {len(spaces)} spaces "
                         "were given")
    if accumulation not in RECIPES:
        raise ValueError(f"accumulation must be one of {', '.join(RECIPES)}, not "
                         f"{accumulation!r}")
    epochs = RECIPES[accumulation][0] if epochs is None else epochs
    lr = RECIPES[accumulation][1] if lr is None else lr
    m = MPWNMLP(model, spaces, pot=accumulation == "exact")
    train_qat(m, np.asarray(x, dtype=np.float64), y, epochs=epochs, lr=lr, seed=seed,
              teacher=model, progress=progress)
    return m.to_float_model()
