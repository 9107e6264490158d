"""The folding planner of float networks on the exact contract: for each layer the
:class:`~rtl_gen.hw.exact_float.ExactShape` (lanes, inputs a step, results a cycle) such that
the network's latency (cycles per inference, the cycle model) is least and its estimated LUT4
fit a budget.

The area model (:func:`layer_area`) counts what an exact layer is made of, in the units the
hardware has them: term multiplexers (a LUT4 a bit), adder-tree and accumulator bits (carry
chains), aligners and normalisers (by their widths), product aligners (a lane-input each),
weight-ROM bits, and a fixed part per layer; its coefficients (:data:`AREA_COEFFS`) are the
non-negative least-squares fit of those counts to the flow's LUT4 (each CCU2C counted as 2)
of :data:`CALIBRATION_DESIGNS` digits networks synthesized for the LFE5U-85F.  The search
(:func:`plan_exact_folding`) walks the layers keeping, per width of the stream into the next
layer, the designs no other beats in both area and latency, so every combination of the
candidate shapes (:func:`candidate_shapes`) is covered.
"""

from __future__ import annotations

import dataclasses
import math

from ..design.float_network import FloatLayer, FloatNetwork
from ..numerics.exact import ExactWindow
from .exact_float import (
    EXACT_SPACES,
    MAX_INPUTS,
    ExactShape,
    _w_fmt,
    exact_layer_timing,
    plan_exact_layer,
)

__all__ = ["AREA_COEFFS", "CALIBRATION_DESIGNS", "ExactFolding", "ExactFoldingError",
           "candidate_shapes", "layer_area", "layer_features", "plan_exact_folding"]

#: LUT4 per unit of each feature of :func:`layer_features`: the non-negative least-squares fit
#: to :data:`CALIBRATION_DESIGNS` digits networks on the exact contract (ternary/ternary at
#: eight shapes from 8 x 1 to 32 x 16 draining 1-8, binary/ternary at two, fp32 at two, E4M3
#: at two, ternary/fp32 at one; windows of 9 to 30 bits) synthesized for the LFE5U-85F on
#: 2026-12-01: every estimate within -8% .. +13% of its synthesis.  Term and weight-ROM bits
#: get no weight of their own: in these designs they merge into the lanes' LUTs, which the
#: tree and lane terms carry.
AREA_COEFFS = {
    "terms": 0.0, "products": 155.322, "product_bits": 11.572, "tree": 1.24, "lane": 4.644,
    "aligners": 17.957, "normalisers": 17.157, "rom": 0.0, "layer": 102.766,
}
#: Designs the coefficients were fitted to.
CALIBRATION_DESIGNS = 13


class ExactFoldingError(ValueError):
    """No shapes of the network fit the budget, or the overrides cannot be met."""


def _tree_bits(inputs: int, term_bits: int, acc_bits: int) -> int:
    """Adder bits of a lane's tree of ``inputs`` terms of ``term_bits``, a bit wider a
    level, at most ``acc_bits``."""
    bits, n, level = 0, inputs, 0
    while n > 1:
        level += 1
        n //= 2
        bits += n * min(acc_bits, term_bits + level)
    return bits


def layer_features(layer: FloatLayer, shape: ExactShape, window: ExactWindow) -> dict:
    """The counts :data:`AREA_COEFFS` weigh, of ``layer`` as ``shape`` in ``window``."""
    C, L, D = shape.lanes, shape.inputs, shape.drain
    w, k, n = window.width, layer.in_features, layer.out_features
    ab = window.acc_bits(k + 1)
    fmt = _w_fmt(layer)
    shared = layer.space in EXACT_SPACES
    w_bits = {"binary": 1, "ternary": 2}[layer.space] if shared else fmt.width
    depth = math.ceil(n / C) * math.ceil(k / L)
    return {
        "terms": C * L * (w + 1) if shared else 0,
        "products": 0 if shared else C * L,
        "product_bits": 0 if shared else C * L * (w + fmt.man_bits + 1),
        "tree": C * _tree_bits(L, w + 1, ab),
        "lane": C * (ab + 2),
        "aligners": L * (w + 1) if shared else 0,
        "normalisers": D * ab,
        "rom": C * L * w_bits * math.ceil(depth / 16),
        "layer": 1,
    }


def layer_area(layer: FloatLayer, shape, window: ExactWindow) -> int:
    """Estimated LUT4 (each CCU2C as 2) of ``layer`` as ``shape`` (or a lane count) in
    ``window``, on the LFE5U-85F."""
    f = layer_features(layer, ExactShape.of(shape), window)
    return round(sum(AREA_COEFFS[key] * v for key, v in f.items()))


def candidate_shapes(layer: FloatLayer, *, in_per_beat: int, last: bool) -> list[ExactShape]:
    """Every shape the planner tries for ``layer`` fed ``in_per_beat`` activations a
    transfer: lanes a power of two below the outputs or all of them, inputs a step a power
    of two up to the inputs (rounded up) that the transfer width divides, results a cycle a
    divisor of the lanes and the outputs (1 for the last layer), and a tile of at least two
    cycles."""
    k, n = layer.in_features, layer.out_features
    lanes = sorted({1 << i for i in range(9) if 1 << i < n} | {min(n, 256)})
    inputs = [1 << i for i in range(MAX_INPUTS.bit_length())
              if 1 << i <= min(MAX_INPUTS, 1 << (k - 1).bit_length())
              and (1 << i) % in_per_beat == 0]
    out = []
    for c in lanes:
        for li in inputs:
            for d in ([1] if last else [d for d in range(1, c + 1) if c % d == 0 and n % d == 0]):
                shape = ExactShape(c, li, d)
                if exact_layer_timing(layer, shape, in_per_beat).period >= 2:
                    out.append(shape)
    return out


@dataclasses.dataclass(frozen=True)
class ExactFolding:
    """A plan of :func:`plan_exact_folding`: ``shapes`` per layer, each layer's ``cycles``
    and estimated ``lut4``, the network's ``latency`` (their cycles summed) and ``lut4``,
    against ``budget``."""

    net: FloatNetwork
    shapes: tuple[ExactShape, ...]
    cycles: tuple[int, ...]
    lut4s: tuple[int, ...]
    budget: int

    @property
    def latency(self) -> int:
        return sum(self.cycles)

    @property
    def lut4(self) -> int:
        return sum(self.lut4s)

    def table(self) -> str:
        """The plan as a Markdown table (layer, K, N, lanes, inputs a step, results a
        cycle, cycles, estimated LUT4) and its totals."""
        lines = ["| layer | K | N | lanes | inputs a step | results a cycle | cycles | "
                 "LUT4 (est.) |", "|---|---|---|---|---|---|---|---|"]
        for layer, s, c, a in zip(self.net.layers, self.shapes, self.cycles, self.lut4s,
                                  strict=True):
            lines.append(f"| {layer.name} | {layer.in_features} | {layer.out_features} | "
                         f"{s.lanes} | {s.inputs} | {s.drain} | {c} | {a:,} |")
        lines.append(f"| total | | | | | | {self.latency} | {self.lut4:,} of {self.budget:,} |")
        return "\n".join(lines)


def plan_exact_folding(net: FloatNetwork, budget: int, overrides=None) -> ExactFolding:
    """The shapes of least latency (then least estimated LUT4) whose estimated LUT4 is at
    most ``budget``; ``overrides`` fixes some layers' shapes (``{index: ExactShape}``).

    Raises
    ------
    ExactFoldingError
        For a network not on the exact contract, or when nothing fits.
    """
    if not isinstance(net, FloatNetwork) or net.accumulation != "exact":
        raise ExactFoldingError("the exact planner plans float networks on the exact "
                                "accumulation contract")
    overrides = dict(overrides or {})
    # fronts: stream width into the next layer -> [(lut4, latency, shapes, cycles, lut4s)]
    fronts = {1: [(0, 0, (), (), ())]}
    last = len(net.layers) - 1
    for idx, layer in enumerate(net.layers):
        nxt: dict[int, list] = {}
        for per_beat, designs in fronts.items():
            if idx in overrides:
                shapes = [ExactShape.of(overrides[idx])]
            else:
                shapes = candidate_shapes(layer, in_per_beat=per_beat, last=idx == last)
            for shape in shapes:
                if idx == last and shape.drain != 1:    # the logits leave one a cycle
                    continue
                try:
                    t = plan_exact_layer(layer, shape, net.window, in_per_beat=per_beat).timing
                except ValueError:   # (an override that does not fit the stream into it)
                    continue
                a = layer_area(layer, shape, net.window)
                for lut4, lat, ss, cs, aa in designs:
                    if lut4 + a <= budget:
                        nxt.setdefault(shape.drain, []).append(
                            (lut4 + a, lat + t.batch_cycles, ss + (shape,),
                             cs + (t.batch_cycles,), aa + (a,)))
        fronts = {d: _pareto(v) for d, v in nxt.items()}
    done = [d for v in fronts.values() for d in v]
    if not done:
        fixed = " with the layers fixed by hand" if overrides else ""
        raise ExactFoldingError(f"no shapes of {net.name!r}{fixed} fit {budget:,} LUT4 "
                                "(estimated)")
    lut4, lat, shapes, cycles, lut4s = min(done, key=lambda d: (d[1], d[0]))
    return ExactFolding(net=net, shapes=shapes, cycles=cycles, lut4s=lut4s, budget=budget)


def _pareto(designs: list) -> list:
    """The designs no other has both at most the LUT4 and at most the latency of (one of
    equal ones)."""
    out, best_lat = [], math.inf
    for d in sorted(designs, key=lambda d: (d[0], d[1])):
        if d[1] < best_lat:
            out.append(d)
            best_lat = d[1]
    return out
