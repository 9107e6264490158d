"""A pre-synthesis estimator of a design point's logic, flip-flops and Fmax, calibrated on a
sweep's own results (:mod:`rtl_gen.tasks.explore`).

Every point the sweep evaluates records its **features**, computed from the plan alone (no
elaboration, no synthesis): for the folded arrays, the area model's per-engine features
summed over the layers (:func:`rtl_gen.design.area.features`: PEs, accumulator bits, lane
operand bits of sign and multiplying lanes, drain tables, memories out of block RAM) with
the widest accumulator and lane; for the unrolled engine, its adder bits.  The estimator
fits, per device and engine kind:

* logic (LC) and FF: non-negative least squares on the features, each row weighted by one
  over its measured value (so the fit minimises relative error);
* Fmax: least squares of ``log Fmax`` on ``1, log(logic estimate), widest accumulator,
  widest lane operand``.

An estimate takes well under a millisecond once a point's features are known (and a few
milliseconds to plan the point), against seconds to minutes of synthesis.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from ..errors import RtlGenError

__all__ = ["Estimator", "fit", "point_features"]


def point_features(engine, device: str) -> dict:
    """The estimator's features of an elaboration-free engine plan: a
    :class:`~rtl_gen.hw.network.ChainPlan` (``engine`` "arrays") or an
    :class:`~rtl_gen.hw.unrolled.UnrolledPlan` ("unrolled")."""
    from ..design.area import features
    from ..design.area_calibration import COEFFICIENTS
    from ..devices import get_device
    from ..hw.planner import engine_shape, unrolled_adder_bits
    from ..hw.unrolled import UnrolledPlan

    family = get_device(device).family
    if isinstance(engine, UnrolledPlan):
        return {"engine": "unrolled", "area": [1.0, float(unrolled_adder_bits(engine))],
                "acc": 0.0, "lane": 0.0}
    shapes = [engine_shape(plan) for _, _, plan in engine.stages]
    c = COEFFICIENTS[family]
    area = np.sum([features(s, family, c) for s in shapes], axis=0)
    return {"engine": "arrays", "area": [float(v) for v in area],
            "acc": float(max(s.acc_bits for s in shapes)),
            "lane": float(max(s.a_bits + s.w_bits for s in shapes))}


def _design_x(f: Mapping, size: int | None = None) -> np.ndarray:
    """The area features of a design, as long as the coefficients (``size``): a sweep
    recorded before the area model gained features has none of them (zeros)."""
    x = np.asarray(f["area"], float)
    if size is not None and len(x) < size:
        x = np.concatenate([x, np.zeros(size - len(x))])
    return x


def _fmax_x(f: Mapping, logic: float) -> np.ndarray:
    return np.array([1.0, math.log(max(logic, 1.0)), f["acc"], f["lane"]])


@dataclasses.dataclass(frozen=True)
class Estimator:
    """Coefficients per ``(device, engine)``: ``lc``, ``ff`` (on the area features) and
    ``fmax`` (on :func:`_fmax_x`), with the calibration's size."""

    coef: Mapping[tuple[str, str], Mapping[str, Sequence[float]]]

    def estimate(self, device: str, features: Mapping) -> dict:
        """``LC``, ``FF`` and ``Fmax MHz`` of a point with ``features`` on ``device``."""
        try:
            c = self.coef[(device, features["engine"])]
        except KeyError:
            raise RtlGenError(f"the estimator has no calibration for {features['engine']} "
                              f"designs on {device}") from None
        x = _design_x(features, len(c["lc"]))
        lc = float(x @ np.asarray(c["lc"]))
        ff = float(x @ np.asarray(c["ff"]))
        fmax = math.exp(float(_fmax_x(features, lc) @ np.asarray(c["fmax"])))
        return {"LC": lc, "FF": ff, "Fmax MHz": fmax}

    def to_json(self) -> dict:
        return {f"{d}|{e}": {k: list(v) for k, v in c.items()} for (d, e), c in
                self.coef.items()}

    @classmethod
    def from_json(cls, d: Mapping) -> Estimator:
        return cls({tuple(k.split("|")): v for k, v in d.items()})


def _prior(device: str, engine: str, rows: Sequence[Mapping]) -> dict:
    """Coefficients for ``engine`` designs on ``device`` from what rtl_gen ships, with no
    sweep: the area model's (:data:`~rtl_gen.design.area_calibration.COEFFICIENTS`, or
    the unrolled engine's) and the planner's clock, each scaled by the geometric mean of
    measured over estimated on ``rows`` (built designs there; none: as shipped)."""
    from ..design.area_calibration import COEFFICIENTS, FMAX_MHZ, UNROLLED_COEFFICIENTS
    from ..devices import get_device

    family = get_device(device).family
    c = UNROLLED_COEFFICIENTS if engine == "unrolled" else COEFFICIENTS[family]
    scale = {}
    for name, metric, coef in (("lc", "LC", c["logic"]), ("ff", "FF", c["ff"])):
        logs = [math.log(r[metric] / max(1e-9, float(_design_x(r["features"], len(coef))
                                                         @ coef)))
                for r in rows if r.get(metric)]
        scale[name] = math.exp(sum(logs) / len(logs)) if logs else 1.0
    fmax = [math.log(r["Fmax MHz"]) for r in rows if r.get("Fmax MHz")]
    clock = sum(fmax) / len(fmax) if fmax else math.log(FMAX_MHZ[family])
    return {"lc": [scale["lc"] * v for v in c["logic"]],
            "ff": [scale["ff"] * v for v in c["ff"]], "fmax": [clock, 0.0, 0.0, 0.0]}


def fit(rows: Iterable[Mapping], *, devices: Iterable[str] = ()) -> Estimator:
    """The :class:`Estimator` of sweep ``rows`` that were built (``status`` ok, with
    ``features``, ``LC``, ``FF`` and ``Fmax MHz``); one calibration per device and engine
    with at least as many rows as coefficients.  For each of ``devices`` whose rows are
    fewer, each engine gets the shipped area model scaled to those rows instead
    (:func:`_prior`), so an estimate is at hand before any sweep."""
    from scipy.optimize import nnls

    groups: dict[tuple[str, str], list[Mapping]] = {}
    for r in rows:
        f = r.get("features")
        if r.get("status") != "ok" or f is None or not r.get("LC") or not r.get("Fmax MHz"):
            continue
        groups.setdefault((r["point"]["device"], f["engine"]), []).append(r)
    coef = {}
    for key, rs in groups.items():
        x = np.array([_design_x(r["features"]) for r in rs])
        if len(rs) < x.shape[1]:
            continue
        out = {}
        for name, metric in (("lc", "LC"), ("ff", "FF")):
            y = np.array([r[metric] for r in rs], float)
            w = 1 / np.maximum(y, 1)
            sol, _ = nnls(x * w[:, None], y * w)
            out[name] = [float(v) for v in sol]
        lc = x @ np.asarray(out["lc"])
        g = np.array([_fmax_x(r["features"], v) for r, v in zip(rs, lc, strict=True)])
        y = np.log([r["Fmax MHz"] for r in rs])
        sol, *_ = np.linalg.lstsq(g, y, rcond=None)
        out["fmax"] = [float(v) for v in sol]
        coef[key] = out
    for device in devices:
        for engine in ("arrays", "unrolled"):
            if (device, engine) not in coef:
                coef[(device, engine)] = _prior(device, engine, groups.get((device, engine),
                                                                           []))
    if not coef:
        raise RtlGenError("no sweep rows to calibrate the estimator on (need built points "
                          "with features, LC and Fmax)")
    return Estimator(coef)
