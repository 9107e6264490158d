"""``report``: golden-model accuracy of bundles (integer or float) next to their float
reference; and the demo's report.  Both write one self-contained HTML page (inline SVG plots
and PNG images, inline styles, nothing fetched from the network) and its Markdown twin, from
the same page model through the Jinja2 templates of :mod:`rtl_gen.tasks.templates`.

``rtl-gen report --out``: the accuracy table and plot, each integer bundle's layers on the
default arrays (:func:`layer_rows`), and, for image data, a grid of test images with their
predicted and true classes, misclassified first (:func:`image_grid`).  The demo's report
(:func:`write_report`) adds the cycle model of every scheme, the simulation of the network
taken to hardware and its bitstream (resources, Fmax against the target, inferences per
second).
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import math
import re
from pathlib import Path

import numpy as np

from .. import __version__
from ..bundle import read_bundle
from ..design import float_network, golden
from ..design.float_network import FloatNetwork
from ..design.network import Network
from ..training.defaults import evaluate as evaluate_int
from .common import (
    check_output,
    encode_inputs,
    evaluation_data,
    markdown_table,
    write_outputs,
)

__all__ = ["ACCURACY_COLUMNS", "DESIGN_DEVICES", "LAYER_COLUMNS", "ReportResult",
           "UTILIZATION", "design_space", "evaluate", "figure_texts", "image_grid",
           "layer_rows", "measured_space", "render", "report", "text_overlaps", "with_delta",
           "write_report"]

ACCURACY_COLUMNS = [("name", "bundle"), ("schemes", "weights"), ("float_accuracy", "float"),
                    ("golden_accuracy", "golden (integer)"), ("delta", "Δ points"),
                    ("conventional_accuracy", "TR off")]

#: The per-layer table (:func:`layer_rows`).
LAYER_COLUMNS = [("network", "network"), ("layer", "layer"), ("weights", "weights"),
                 ("k", "K"), ("n", "N"), ("array", "R x C x L"), ("slots", "cycles / step"),
                 ("tiles", "tiles"), ("batch_cycles", "cycles / batch"),
                 ("interval", "interval"), ("utilization", "utilization"),
                 ("lc", "est. LC (iCE40)")]

#: What the utilization column means, for every engine.
UTILIZATION = ("Utilization: the products a layer computes per cycle in steady state over "
               "its array's peak, R·K·N / (interval · R·C·L / s), with R x C x L the array "
               "(rows: the batch; columns: output channels, one PE each; lanes: inputs per "
               "step) and s the cycles a step takes: 1 on the integer arrays; on a "
               "term-revealing layer, a step is a group of L inputs and takes s term slots, "
               "so its peak is L/s products per PE and cycle.")


def with_delta(row: dict) -> dict:
    """``row`` with ``delta``: golden minus float accuracy in points (where both exist)."""
    if "float_accuracy" in row:
        row = dict(row, delta=f"{100 * (row['golden_accuracy'] - row['float_accuracy']):+.2f}")
    return row


def evaluate(net: Network | FloatNetwork, x: np.ndarray, y: np.ndarray, data=None) -> dict:
    """Golden-model accuracy of ``net`` on float inputs ``x`` next to its float reference's
    (:func:`rtl_gen.training.defaults.evaluate` for an integer network; a float network's
    inputs are fp32).  ``data`` names the inputs' file in an error."""
    coded = encode_inputs(net, x, data)
    if not isinstance(net, FloatNetwork):
        return evaluate_int(net, coded, x, y)
    row = {"name": net.name, "schemes": "/".join(dict.fromkeys(net.spaces)),
           "golden_accuracy": float_network.accuracy(net, coded, y)}
    if net.has_float_reference:
        pred = np.argmax(golden.float_forward(net, x), axis=-1)
        row["float_accuracy"] = float(np.mean(pred == y))
    return row


@dataclasses.dataclass(frozen=True)
class ReportResult:
    #: One row per bundle: ``name``, ``schemes``, ``golden_accuracy`` and, where they
    #: apply, ``float_accuracy``, ``delta`` and ``conventional_accuracy``.
    rows: list[dict]
    #: The Markdown table of the rows.
    table: str


def report(bundles: list[Path], data: Path | None = None,
           out: Path | None = None) -> ReportResult:
    """Golden-model accuracy of every bundle in ``bundles`` (integer or float), on ``data``
    (``.npz`` with ``x``, ``y``) or the digits test split; with ``out``, also writes
    ``report.html``, ``report.md`` (the page and its twin: accuracy, layers, test images)
    and ``report.json`` (the rows) there.  Every bundle is read and validated before any
    output."""
    if out is not None:
        check_output(out, folder=True)
    nets = [read_bundle(b) for b in bundles]
    rows, grids = [], []
    for net in nets:
        x, y = evaluation_data(net, data)
        rows.append(with_delta(evaluate(net, x, y, data)))
        if out is not None:
            grids.append(image_grid(net, x, y, data=data))
    columns = ACCURACY_COLUMNS
    if any(isinstance(net, FloatNetwork) for net in nets):
        columns = [(k, "golden" if k == "golden_accuracy" else t) for k, t in columns]
    table = markdown_table(rows, columns)
    if out is not None:
        what = "the digits test split" if data is None else str(data)
        shown = [(k, t) for k, t in columns if any(r.get(k) is not None for r in rows)]
        page = _report_page(rows, shown, nets, grids, what)
        files = render(page)
        files["report.json"] = json.dumps(rows, indent=2) + "\n"
        write_outputs(out, files)
    return ReportResult(rows, table)


# -- what the page shows ---------------------------------------------------------------------


def layer_rows(net: Network | FloatNetwork, arrays=None) -> list[dict]:
    """One row per layer of an integer network on ``arrays`` (``None``: the defaults): its
    ``K`` and ``N``, the array ``R x C x L``, the cycles a step takes, tiles, cycles per
    batch, the steady interval, the utilization (:data:`UTILIZATION`) and the logic cells
    the iCE40 area model estimates (a board build without layer counters).  A network the
    array engines do not take (a float or convolutional network) has none."""
    from ..design.area import estimate_layer
    from ..hw.network import plan_chain
    from ..hw.planner import engine_shape

    if not isinstance(net, Network) or any(ly.kind != "dense" for ly in net.layers):
        return []  # float and convolutional networks: not on these engines
    try:
        chain = plan_chain(net, arrays, counters=False)
    except (TypeError, ValueError):
        return []
    rows = []
    for layer, a, t, (_, _, plan) in zip(net.layers, chain.configs, chain.timings,
                                         chain.stages, strict=True):
        try:
            lc = round(estimate_layer(engine_shape(plan), "ice40").logic)
        except (KeyError, ValueError):
            lc = None
        rows.append({"network": net.name, "layer": layer.name, "weights": layer.scheme.name,
                     "k": t.k, "n": t.n, "array": f"{t.rows} x {t.cols} x {t.lanes}",
                     "slots": t.slots, "tiles": t.tiles, "batch_cycles": t.batch_cycles,
                     "interval": t.interval,
                     "utilization": t.utilization, "lc": lc,
                     "multiplier": a.multiplier})
    return rows


def _image_shape(features: int) -> tuple[int, ...] | None:
    """``(h, w)`` for a square grey image, ``(h, w, 3)`` for a square colour one (HWC)."""
    side = math.isqrt(features)
    if side * side == features and side >= 4:
        return side, side
    side = math.isqrt(features // 3)
    if features % 3 == 0 and side * side * 3 == features and side >= 4:
        return side, side, 3
    return None


def _png(image: np.ndarray) -> str:
    """A ``data:`` URI of ``image`` (2-D grey, dark on light, or HWC colour) as a PNG."""
    import matplotlib.image

    a = np.asarray(image, dtype=np.float64)
    lo, hi = float(a.min()), float(a.max())
    a = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
    buf = io.BytesIO()
    if a.ndim == 2:
        matplotlib.image.imsave(buf, a, cmap="gray_r", vmin=0, vmax=1, format="png")
    else:
        matplotlib.image.imsave(buf, a, format="png")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def image_grid(net: Network | FloatNetwork, x: np.ndarray, y: np.ndarray, *,
               limit: int = 48, data=None, index=None) -> dict | None:
    """The test images of ``x`` (float inputs) with the golden model's class and the true
    one ``y``, misclassified first, at most ``limit``; ``None`` when an input is not an
    image (its features not a square, grey or of three colours).  ``data`` names the
    inputs' file in an error; ``index``: each image's number in the test split (default:
    its row of ``x``)."""
    shape = _image_shape(net.in_features)
    if shape is None:
        return None
    pred = net.predict(encode_inputs(net, x, data))
    wrong = np.flatnonzero(pred != y)
    order = np.concatenate([wrong, np.flatnonzero(pred == y)])[:limit]
    labels = list(net.labels) if getattr(net, "labels", None) else None

    def name(c: int) -> str:
        return labels[c] if labels is not None and 0 <= c < len(labels) else str(c)

    return {"network": net.name, "total": len(y), "wrong": len(wrong),
            "images": [{"index": int(i if index is None else index[i]),
                        "pred": name(int(pred[i])), "true": name(int(y[i])),
                        "ok": bool(pred[i] == y[i]), "src": _png(x[i].reshape(shape))}
                       for i in order]}


#: The devices of the design-space view (:func:`design_space`): the iCEBreaker's and the
#: ULX3S's.
DESIGN_DEVICES = ("up5k", "ecp5-85f")


def design_space(nets, accuracy: dict[str, float],
                 devices: tuple[str, ...] = DESIGN_DEVICES) -> list[dict]:
    """For every integer network of ``nets`` and every device, the folding planner's fastest
    design that fits (as ``rtl-gen generate --fit DEVICE``): its arrays, cycles per image,
    images per second at the family's estimated clock, estimated logic, DSP and block RAM,
    beside the network's accuracy (``accuracy`` by name).  Estimates: the cycle model is
    exact, the area and the clock are the planner's models.  A network that fits nowhere
    has a row with ``note`` saying why."""
    from ..devices import get_device
    from ..errors import RtlGenError
    from ..hw.planner import plan_folding

    rows = []
    for net in nets:
        if not isinstance(net, Network) or any(ly.kind != "dense" for ly in net.layers):
            continue
        for name in devices:
            unit = "LC" if get_device(name).family == "ice40" else "LUT4"
            row = {"network": net.name, "device": name, "unit": unit,
                   "accuracy": accuracy.get(net.name)}
            try:
                plan = plan_folding(net, fit=name)
            except (RtlGenError, TypeError, ValueError) as e:
                rows.append(dict(row, note=str(e)))
                continue
            rows.append(dict(row, arrays=", ".join(f"{t.cols} x {t.lanes}"
                                                    for t in plan.timings),
                             cycles=plan.interval / plan.rows, clock_mhz=plan.fmax_mhz,
                             images_per_s=plan.fps, logic=round(plan.area.logic),
                             dsp=plan.area.dsp, bram=plan.area.bram))
    return rows


#: The benchmark whose measurements the design-space view shows beside the estimates (in a
#: source checkout; an installed package without it shows estimates only).
MEASURED = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "network.json"


def measured_space(names, path=MEASURED) -> dict | None:
    """The rows of ``benchmarks/results/network.json`` (each shipped bundle at the
    planner's ``--fit`` choice, synthesized, placed and routed) for the networks ``names``,
    with the run's ``date``, ``tools`` and ``seeds``; ``None`` when there is no such file or
    no row for these networks.  Rows: ``network``, ``device``, ``design``, ``logic``,
    ``unit``, ``clock_mhz`` (the median Fmax), ``images_per_s``, ``accuracy``."""
    names = set(names)
    try:
        doc = json.loads(Path(path).read_text())
        rows = [r for r in doc["rows"] if r["name"] in names and r.get("fmax")]
        picked = [{"network": r["name"], "device": r["device"],
                   "design": r["engine"] if r["engine"] != "arrays"
                   else "arrays " + ", ".join(r["arrays"]),
                   "logic": r["lc"], "unit": "LC" if r["device"] == "up5k" else "TRELLIS_COMB",
                   "clock_mhz": r["fmax"], "images_per_s": r["derived"]["inferences_per_s"],
                   "accuracy": r["accuracy"]} for r in rows]
        meta = {"date": doc["date"], "tools": doc["tools"], "seeds": doc["seeds"]}
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return dict(meta, rows=picked) if picked else None


# -- plots -----------------------------------------------------------------------------------


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def figure_texts(fig) -> list[tuple[str, object]]:
    """Every text a figure draws, with its box in display units: titles, axis labels, the
    tick labels inside the axes' limits, annotations and the legend's entries."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = list(fig.texts)
    for ax in fig.axes:
        texts += [ax.title, ax._left_title, ax._right_title, ax.xaxis.label, ax.yaxis.label,
                  *ax.texts]
        for axis, (lo, hi) in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
            lo, hi = min(lo, hi), max(lo, hi)
            texts += [t.label1 for t in axis.get_major_ticks()
                      if lo - 1e-9 * abs(hi - lo) <= t.get_loc() <= hi + 1e-9 * abs(hi - lo)]
        legend = ax.get_legend()
        if legend is not None:
            texts += legend.get_texts()
            if legend.get_title().get_text():
                texts.append(legend.get_title())
    return [(t.get_text(), t.get_window_extent(renderer)) for t in texts
            if t.get_visible() and t.get_text().strip()]


def text_overlaps(fig) -> list[tuple[str, str]]:
    """Pairs of texts of ``fig`` whose boxes overlap (by more than half a pixel)."""
    boxes = figure_texts(fig)
    out = []
    for i, (a, ba) in enumerate(boxes):
        for b, bb in boxes[i + 1:]:
            if (min(ba.x1, bb.x1) - max(ba.x0, bb.x0) > 0.5
                    and min(ba.y1, bb.y1) - max(ba.y0, bb.y0) > 0.5):
                out.append((a, b))
    return out


def _svg(fig, prefix: str) -> str:
    """``fig`` as inline SVG (text as paths: it looks the same in every browser), without
    the XML prologue and the metadata block; every id it defines, and every reference to
    one, starts with ``prefix`` (the page's ids stay unique with several plots)."""
    plt = _pyplot()
    buf = io.StringIO()
    with plt.rc_context({"svg.hashsalt": prefix}):
        fig.savefig(buf, format="svg", bbox_inches="tight",
                    metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    plt.close(fig)
    text = buf.getvalue()
    text = text[text.index("<svg"):].strip()
    ids = set(re.findall(r'\bid="([^"]+)"', text))

    def renamed(m: re.Match) -> str:
        name = m.group(2)
        return f"{m.group(1)}{prefix}-{name}" if name in ids else m.group(0)

    return re.sub(r'(\bid="|href="#|url\(#)([^")]+)', renamed, text)


def _short(name: str) -> str:
    return name.removeprefix("digits-")


def _accuracy_figure(rows: list[dict], series: list[tuple[str, str]]):
    """Horizontal grouped bars: each bundle's accuracy per series (its names on the y axis,
    one line each, so they cannot collide)."""
    plt = _pyplot()
    series = [(k, t) for k, t in series if any(r.get(k) is not None for r in rows)]
    n, m = len(rows), len(series)
    fig, ax = plt.subplots(figsize=(8, 0.7 + 0.17 * n * m + 0.12 * n))
    height = 0.8 / m
    y = np.arange(n)
    values = [100 * r[k] for r in rows for k, _ in series if r.get(k) is not None]
    for j, (key, label) in enumerate(series):
        ax.barh(y - 0.4 + height * (j + 0.5), [100 * (r.get(key) or 0) for r in rows],
                height, label=label)
    ax.set_yticks(y, [_short(r["name"]) for r in rows])
    ax.invert_yaxis()
    low = max(0.0, 10 * math.floor((min(values) - 5) / 10))
    ax.set_xlim(low, 100)
    ax.set_xlabel("test accuracy (%)")
    ax.set_ylabel("bundle")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, frameon=False)
    return fig


_MARKERS = "osD^vP*Xh<>p"


def _scatter_figure(points: list[tuple[str, float, float]], xlabel: str, ylabel: str,
                    *, xlog: bool = False):
    """Accuracy against a cost: one marker per distinct point, named in a legend (networks
    at the same point share an entry), no text on the plot itself."""
    plt = _pyplot()
    merged: dict[tuple[float, float], list[str]] = {}
    for name, px, py in points:
        merged.setdefault((px, py), []).append(name)
    fig, ax = plt.subplots(figsize=(8, 3.4))
    for i, ((px, py), names) in enumerate(merged.items()):
        ax.scatter([px], [py], marker=_MARKERS[i % len(_MARKERS)], s=46, zorder=3,
                   label=", ".join(names))
    xs = [p for p, _ in merged]
    if xlog:
        ax.set_xscale("log")
    else:
        ax.set_xlim(0, 1.1 * max(xs))
    ys = [q for _, q in merged]
    pad = max(0.5, 0.15 * (max(ys) - min(ys)))
    ax.set_ylim(min(ys) - pad, max(ys) + pad)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, frameon=False)
    return fig


def _design_figure(rows: list[dict], measured: bool = False):
    """Per device (a row of plots): accuracy against estimated (or ``measured``) logic, and
    against images per second; one marker per network, named in the legend."""
    from ..devices import get_device

    plt = _pyplot()
    rows = [r for r in rows if "logic" in r and r.get("accuracy") is not None]
    devices = list(dict.fromkeys(r["device"] for r in rows))
    names = list(dict.fromkeys(r["network"] for r in rows))
    fig, axes = plt.subplots(len(devices), 2, figsize=(9, 2.9 * len(devices) + 0.3),
                             squeeze=False, sharey=True)
    for (ax_lc, ax_fps), device in zip(axes, devices, strict=True):
        here = [r for r in rows if r["device"] == device]
        for r in here:
            i = names.index(r["network"])
            style = dict(marker=_MARKERS[i % len(_MARKERS)], s=44, zorder=3,
                         facecolors="none", edgecolors=f"C{i % 10}", linewidths=1.4,
                         label=_short(r["network"]))
            ax_lc.scatter([r["logic"]], [100 * r["accuracy"]], **style)
            ax_fps.scatter([r["images_per_s"] / 1e3], [100 * r["accuracy"]], **style)
        ax_lc.axvline(get_device(device).luts, color="0.5", linestyle="--", linewidth=1)
        if measured:
            ax_lc.set_xlabel(f"{here[0]['unit']} on the {device} (synthesized)")
            ax_fps.set_xlabel("thousand images/s at the median Fmax (measured)")
        else:
            ax_lc.set_xlabel(f"estimated {here[0]['unit']} on the {device}")
            ax_fps.set_xlabel(f"thousand images/s at {here[0]['clock_mhz']:g} MHz (estimate)")
        ax_lc.set_ylabel("test accuracy (%)")
        for ax in (ax_lc, ax_fps):
            ax.set_xlim(left=0, right=1.15 * ax.get_xlim()[1])
            ax.grid(alpha=0.3)
    acc = [100 * r["accuracy"] for r in rows]
    pad = max(0.3, 0.1 * (max(acc) - min(acc)))
    axes[0][0].set_ylim(min(acc) - pad, max(acc) + pad)
    axes[0][1].legend(loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def _resources_figure(build: dict):
    plt = _pyplot()
    util = build["utilisation"]
    keys = [k for k in sorted(util) if util[k][1]]
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(keys) + 1))
    ax.barh(keys, [100 * util[k][0] / util[k][1] for k in keys])
    for i, k in enumerate(keys):
        ax.annotate(f"{util[k][0]:,} of {util[k][1]:,}", (100 * util[k][0] / util[k][1], i),
                    xytext=(4, 0), textcoords="offset points", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 125)
    ax.set_xticks(range(0, 101, 20))
    ax.set_xlabel(f"share of the {build['device']} used (%)")
    ax.set_ylabel("resource")
    return fig


# -- the page model --------------------------------------------------------------------------


def _parts(*items) -> list[dict]:
    """A paragraph: plain strings, and ``(text,)`` tuples for names set as code."""
    return [{"text": i[0], "code": True} if isinstance(i, tuple) else {"text": i, "code": False}
            for i in items if i != ""]


def _text(*items) -> dict:
    return {"kind": "text", "parts": _parts(*items)}


def _fmt(v, key: str = "") -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        if key.endswith("accuracy") or key == "utilization":
            return f"{100 * v:.2f}%"
        return f"{v:,.1f}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return str(v)


def _table(rows: list[dict], columns: list[tuple[str, str]], caption=None) -> dict:
    cells = [[_fmt(r.get(k), k) for k, _ in columns] for r in rows]
    number = re.compile(r"[+-]?[\d,]+(\.\d+)?%?")
    numeric = [any(row[j] for row in cells)
               and all(number.fullmatch(row[j]) for row in cells if row[j])
               for j in range(len(columns))]
    return {"kind": "table", "columns": [t for _, t in columns], "rows": cells,
            "numeric": numeric, "caption": _parts(*caption) if caption else None}


def _figure(title: str, fig, caption: tuple) -> dict:
    prefix = "fig-" + re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
    return {"kind": "figure", "title": title, "svg": _svg(fig, prefix),
            "caption": _parts(*caption)}


def _grid(grid: dict, open_: bool = True) -> dict:
    shown = len(grid["images"])
    wrong = grid["wrong"]
    caption = _parts((grid["network"],), f": {wrong} of {grid['total']} test images "
                     f"misclassified by the golden model; {shown} shown, misclassified "
                     "first (red: the predicted class, then the true one).")
    return {"kind": "grid", "caption": caption, "images": grid["images"], "open": open_}


def _layer_blocks(layers: list[dict]) -> list[dict]:
    if not layers:
        return []
    columns = [(k, t) for k, t in LAYER_COLUMNS if any(r.get(k) is not None for r in layers)]
    return [_table(layers, columns),
            _text(UTILIZATION + " Cycles per batch: from taking a batch to its last result "
                  "(latency); interval: cycles between batches when they come back to back. "
                  "Est. LC: the area model's logic cells on an iCE40 (the planner's "
                  "estimate, not a synthesis).")]


DESIGN_COLUMNS = [("network", "network"), ("device", "device"), ("arrays", "cols x lanes"),
                  ("cycles", "cycles / image"), ("images_per_s", "images/s"),
                  ("logic", "est. logic"), ("unit", "unit"), ("dsp", "DSP"),
                  ("bram", "BRAM"), ("accuracy", "accuracy"), ("note", "note")]


MEASURED_COLUMNS = [("network", "network"), ("device", "device"), ("design", "design"),
                    ("logic", "logic"), ("unit", "unit"), ("clock_mhz", "median MHz"),
                    ("images_per_s", "images/s"), ("accuracy", "accuracy")]


def _measured_blocks(measured: dict) -> list[dict]:
    tools = ", ".join(f"{k} {v}" for k, v in measured["tools"].items())
    rows = [dict(r, images_per_s=round(r["images_per_s"])) for r in measured["rows"]]
    return [_text(f"Measured on {measured['date']} ({tools}; the median Fmax of nextpnr "
                  f"seeds 1 to {measured['seeds']}): each network at the planner's choice for "
                  "the device, synthesized, placed and routed (",
                  ("python benchmarks/network.py",), ", the design ",
                  ("rtl-gen synth --fit DEVICE",), " builds)."),
            _table(rows, MEASURED_COLUMNS),
            _figure("Measured: accuracy against logic and against speed",
                    _design_figure(measured["rows"], measured=True),
                    ("Each measured network's accuracy against its synthesized logic (the "
                     "dashed line: the device's size) and its images per second at the "
                     f"median Fmax; measured on {measured['date']}.",))]


def _design_blocks(rows: list[dict], measured: dict | None = None) -> list[dict]:
    if not rows:
        return []
    shown = [dict(r, images_per_s=None if r.get("images_per_s") is None
                  else round(r["images_per_s"])) for r in rows]
    columns = [(k, t) for k, t in DESIGN_COLUMNS if any(r.get(k) is not None for r in shown)]
    blocks = [_text("What each network costs and gives on each device, as the folding "
                    "planner sees it: the fastest design that fits the device with 10% of "
                    "each resource kept free (", ("rtl-gen generate --fit DEVICE",),
                    "). Estimates, not measurements: the cycles come from the cycle model "
                    "(which the simulations hold every layer to), the logic from the area "
                    "model (calibrated against Yosys, see ", ("benchmarks/results/area_model.md",),
                    "), the clock is the device family's estimate."),
              _table(shown, columns)]
    if any("logic" in r for r in rows):
        blocks.append(_figure("Accuracy against logic and against speed", _design_figure(rows),
                              ("Each network's accuracy against its estimated logic (the "
                               "dashed line: the device's size) and its images per second, "
                               "one row of plots per device.",)))
    if measured:
        blocks += _measured_blocks(measured)
    return blocks


def render(page: dict) -> dict[str, str]:
    """``report.html`` and ``report.md`` of a page model (:mod:`rtl_gen.tasks.templates`)."""
    import jinja2

    from .templates import HTML, MARKDOWN, STYLE

    html_env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    md_env = jinja2.Environment(autoescape=False, undefined=jinja2.StrictUndefined,
                                keep_trailing_newline=True)
    md_env.filters["mdcell"] = lambda v: str(v).replace("|", "\\|")
    page = dict(page, footer=_parts(f"rtl_gen {__version__}: a weight bundle's golden "
                                    "model, its hardware and its measurements."))
    html = html_env.from_string(HTML).render(style=STYLE.strip(), **page)
    md = md_env.from_string(MARKDOWN).render(**page)
    while "\n\n\n" in md:
        md = md.replace("\n\n\n", "\n\n")
    return {"report.html": html, "report.md": md.strip() + "\n"}


def _report_page(rows, columns, nets, grids, what: str) -> dict:
    series = [(k, t) for k, t in (("float_accuracy", "float reference"),
                                  ("golden_accuracy", "golden model"),
                                  ("conventional_accuracy", "term revealing off"))]
    sections = [{"id": "accuracy", "title": "Accuracy", "blocks": [
        _text(f"Golden-model accuracy of each bundle on {what}, next to its float "
              "reference where the bundle has one (Δ: golden minus float, in points)."),
        _table(rows, columns),
        _figure("Accuracy by bundle", _accuracy_figure(rows, series),
                ("Test accuracy of each bundle, by model.",))]}]
    layers = [r for net in nets for r in layer_rows(net)]
    if layers:
        sections.append({"id": "layers", "title": "Layers", "blocks": [
            _text("Each integer bundle's layers on the default arrays (batch 1, 8 columns; "
                  "4 lanes for binary and ternary layers), by the cycle model that the "
                  "simulations hold every layer to."), *_layer_blocks(layers)]})
    floats = [net.name for net in nets if isinstance(net, FloatNetwork)]
    if floats:
        names = [part for f in floats for part in (", ", (f,))][1:]
        sections[-1]["blocks"].append(_text(
            f"Float network{'s' * (len(floats) > 1)} ", *names,
            ": float layers run on the float lanes engine, whose layers ", ("rtl-gen generate",),
            " tabulates."))
    design = design_space(nets, {r["name"]: r["golden_accuracy"] for r in rows})
    if design:
        sections.append({"id": "design", "title": "Design space", "blocks": _design_blocks(
            design, measured_space([net.name for net in nets]))})
    shown = [g for g in grids if g is not None]
    if shown:
        sections.append({"id": "images", "title": "Test images", "blocks": [
            _grid(g, open_=i == 0) for i, g in enumerate(shown)]})
    names = ", ".join(r["name"] for r in rows)
    return {"title": "rtl_gen report", "subtitle": _parts(f"{len(rows)} bundle"
                                                          f"{'s' * (len(rows) > 1)}: {names}"),
            "sections": sections}


def _demo_page(data: dict) -> dict:
    acc = data["accuracy"]
    if data.get("float_reference"):  # bundles scored beside their own float reference
        series = [("float_accuracy", "float reference"), ("golden_accuracy", "golden model")]
        columns = [("name", "bundle"), ("schemes", "weights"), ("bits", "bits/weight"),
                   ("float_accuracy", "float"), ("golden_accuracy", "golden"),
                   ("delta", "Δ points")]
        what = ("the shipped bundles, golden-model accuracy beside each bundle's float "
                "reference")
        caption = "Test accuracy of each bundle: its float reference and its golden model."
    else:
        series = [("float_accuracy", "float"), ("ptq_accuracy", "post-training quantization"),
                  ("golden_accuracy", "QAT (golden model)")]
        columns = [("name", "bundle"), ("schemes", "weights"), ("bits", "bits/weight"),
                   ("float_accuracy", "float"), ("ptq_accuracy", "PTQ"),
                   ("golden_accuracy", "QAT (golden)")]
        what = ("the float model, its post-training quantization and the shipped "
                "quantization-aware trained bundles, golden-model accuracy")
        caption = ("Test accuracy of each scheme: the float model, its post-training "
                   "quantization, and the QAT bundle's golden model.")
    sections = [{"id": "accuracy", "title": "Accuracy", "blocks": [
        _text(f"{data['dataset']}: {what}."),
        _table(acc, columns),
        _figure("Accuracy by weight scheme", _accuracy_figure(acc, series), (caption,))]}]
    cyc = data["cycles"]
    sections.append({"id": "cycles", "title": "Cycle model", "blocks": [
        _text(data.get("cycles_text",
                       "Cycles per inference of each network on the default arrays (batch 1, "
                       "8 columns; 4 lanes for binary and ternary; a term-revealing layer "
                       "takes a group of inputs a step, over several term slots), and the "
                       "utilization of the largest layer.")),
        _table(cyc, [("name", "network"), ("cycles_per_inference", "cycles / inference"),
                     ("utilization", "largest layer utilization"),
                     ("golden_accuracy", "accuracy")]),
        _text(UTILIZATION),
        _figure("Accuracy against cycles per inference", _scatter_figure(
            [(_short(r["name"]), r["cycles_per_inference"], 100 * r["golden_accuracy"])
             for r in cyc], "cycles per inference (cycle model, default arrays)",
            "test accuracy (%)"),
            ("Each network's golden-model accuracy against its cycles per inference; "
             "networks at the same point share a marker.",))]})
    layers = data.get("layers")
    if layers:
        net = data.get("network", {}).get("name")
        sections.append({"id": "layers", "title": "Layers", "blocks": [
            _text("Each network's layers: ", (net,) if net else "", " on the arrays it is "
                  "built with for the board, the others on the default arrays."
                  if net else "on the default arrays."), *_layer_blocks(layers)]})
    design = data.get("design_space")
    if design:
        sections.append({"id": "design", "title": "Design space",
                         "blocks": _design_blocks(design, data.get("measured"))})
    grid = data.get("images")
    if grid:
        sections.append({"id": "images", "title": "Test images", "blocks": [_grid(grid)]})
    sim = data.get("simulation")
    if sim:
        sections.append({"id": "simulation", "title": "Simulation", "blocks": [_text(
            (sim["network"],), f" behind the UART host link, as Verilog under "
            f"{sim['simulator']}, driven by the host client: {sim['images']} images, "
            f"{sim['bit_exact']} with logits and class equal to the golden model; "
            f"{sim['malformed']} malformed frames answered with their error. Latency "
            f"{sim['latency_cycles']} cycles per image (first input to class), "
            f"{sim['interval_cycles']} cycles between images when streaming (model).")]})
    build = data.get("build")
    if build:
        met = "met" if build["timing_met"] else "NOT met"
        rows = [{"resource": k, "used": v[0], "available": v[1],
                 "share": f"{100 * v[0] / v[1]:.1f}%" if v[1] else ""}
                for k, v in sorted(build["utilisation"].items())]
        sections.append({"id": "bitstream", "title": "Bitstream", "blocks": [
            _text((build["bitstream"],), f" for the {build['board']} ({build['device']}): "
                  f"the PLL makes {build['pll_mhz']:.2f} MHz (target "
                  f"{build['target_mhz']:g} MHz); nextpnr reaches {build['fmax']:.2f} MHz, "
                  f"timing {met}. At the PLL clock: {build['latency_us']:.2f} µs per image, "
                  f"{build['inferences_per_s']:,.0f} inferences/s streaming; the "
                  f"{build.get('baud', 115200):,}-baud "
                  f"UART carries about {build['uart_images_per_s']:,.0f} images/s."),
            _table(rows, [("resource", "resource"), ("used", "used"),
                          ("available", "available"), ("share", "used (%)")]),
            _figure(f"Resources on the {build['board']}", _resources_figure(build),
                    ("Share of each resource of the device the bitstream uses.",))]})
    titles = [s["title"].lower() for s in sections]
    return {"title": "rtl_gen report", "subtitle": _parts(
        f"The whole pipeline on the {data['dataset']}: {', '.join(titles[:-1])} and "
        f"{titles[-1]}."), "sections": sections}


def write_report(data: dict, out: Path | str) -> dict[str, Path]:
    """Write ``report.html`` (with plots), ``report.md`` and ``report.json`` into ``out``.

    ``data``: ``dataset``, ``accuracy`` (rows of the demo table), ``cycles`` (rows with
    ``name``, ``cycles_per_inference``, ``utilization``, ``golden_accuracy``), and optional
    ``network`` (``name``: the network taken to hardware), ``layers`` (rows of
    :func:`layer_rows`), ``images`` (:func:`image_grid`), ``simulation`` and ``build``
    dictionaries.
    """
    files = render(_demo_page(data))
    files["report.json"] = json.dumps(data, indent=2, default=str) + "\n"
    return write_outputs(Path(out), files)
