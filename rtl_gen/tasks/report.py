"""``report``: golden-model accuracy of bundles (integer or float) next to their float
reference; and the demo's report, Markdown and a self-contained HTML page with plots
(inline SVG).

The demo report's sections: accuracy of every scheme (float, PTQ, QAT), the cycle model of
every scheme's network, the simulation of the default network on its board core (bit-exact
or not, measured cycles), and the bitstream (resources, Fmax against the target, inferences
per second).  :func:`write_report` writes ``report.md``, ``report.html`` and ``report.json``.
"""

from __future__ import annotations

import dataclasses
import html
import io
import json
from pathlib import Path

import numpy as np

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

__all__ = ["ACCURACY_COLUMNS", "ReportResult", "evaluate", "report", "with_delta",
           "write_report"]

ACCURACY_COLUMNS = [("name", "bundle"), ("schemes", "weights"), ("float_accuracy", "float"),
                    ("golden_accuracy", "golden (integer)"), ("delta", "Δ points"),
                    ("conventional_accuracy", "TR off")]


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
    ``report.md`` and ``report.json`` there.  Every bundle is read and validated before any
    output."""
    if out is not None:
        check_output(out, folder=True)
    nets = [read_bundle(b) for b in bundles]
    rows = []
    for net in nets:
        x, y = evaluation_data(net, data)
        rows.append(with_delta(evaluate(net, x, y, data)))
    columns = ACCURACY_COLUMNS
    if any(isinstance(net, FloatNetwork) for net in nets):
        columns = [(k, "golden" if k == "golden_accuracy" else t) for k, t in columns]
    table = markdown_table(rows, columns)
    if out is not None:
        write_outputs(out, {"report.md": "# rtl_gen report\n\n" + table,
                            "report.json": json.dumps(rows, indent=2) + "\n"})
    return ReportResult(rows, table)


def _table_md(rows: list[dict], columns: list[tuple[str, str]]) -> str:
    head = "| " + " | ".join(t for _, t in columns) + " |"
    sep = "|" + "---|" * len(columns)
    body = ["| " + " | ".join(_fmt(r.get(k)) for k, _ in columns) + " |" for r in rows]
    return "\n".join([head, sep, *body]) + "\n"


def _table_html(rows: list[dict], columns: list[tuple[str, str]]) -> str:
    head = "".join(f"<th>{html.escape(t)}</th>" for _, t in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(r.get(k)))}</td>"
                                    for k, _ in columns) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{100 * v:.2f}%" if 0 <= v <= 1 else f"{v:,.1f}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return str(v)


def _svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    import matplotlib.pyplot as plt
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]


def _plots(data: dict) -> list[tuple[str, str]]:
    """(title, inline SVG) of each plot."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    plots = []
    acc = data["accuracy"]
    names = [r["name"].removeprefix("digits-") for r in acc]
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(8, 3.2))
    for i, (key, label) in enumerate((("float_accuracy", "float"), ("ptq_accuracy", "PTQ"),
                                      ("golden_accuracy", "QAT (golden model)"))):
        ax.bar(x + (i - 1) * 0.27, [100 * (r.get(key) or 0) for r in acc], 0.27, label=label)
    ax.set_xticks(x, names)
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(50, 100)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    plots.append(("Accuracy by weight scheme", _svg(fig)))

    cyc = data["cycles"]
    fig, ax = plt.subplots(figsize=(8, 3.2))
    ax.scatter([r["cycles_per_inference"] for r in cyc],
               [100 * r["golden_accuracy"] for r in cyc])
    for r in cyc:
        ax.annotate(r["name"].removeprefix("digits-"),
                    (r["cycles_per_inference"], 100 * r["golden_accuracy"]),
                    textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("cycles per inference (cycle model, default arrays)")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    plots.append(("Accuracy against cycles per inference", _svg(fig)))

    build = data.get("build")
    if build:
        util = build["utilisation"]
        keys = [k for k in sorted(util) if util[k][1]]
        fig, ax = plt.subplots(figsize=(8, 0.4 * len(keys) + 1))
        ax.barh(keys, [100 * util[k][0] / util[k][1] for k in keys])
        for i, k in enumerate(keys):
            ax.text(100 * util[k][0] / util[k][1] + 1, i, f"{util[k][0]} / {util[k][1]}",
                    va="center", fontsize=8)
        ax.set_xlim(0, 115)
        ax.set_xlabel(f"utilisation of the {build['device']} (%)")
        plots.append((f"Resources on the {build['board']}", _svg(fig)))
    return plots


def _sections(data: dict) -> list[tuple[str, str, list[dict] | None, list | None]]:
    """(title, text, rows, columns) of each section."""
    out = [("Accuracy", f"{data['dataset']}: the float model, its post-training quantization "
            "and the shipped quantization-aware trained bundles, golden-model accuracy.",
            data["accuracy"],
            [("name", "bundle"), ("schemes", "weights"), ("bits", "bits/weight"),
             ("float_accuracy", "float"), ("ptq_accuracy", "PTQ"),
             ("golden_accuracy", "QAT (golden)")]),
           ("Cycle model", "Cycles per inference of each network on the default arrays "
            "(batch 1, 8 columns; 4 lanes for binary and ternary), and the utilization of the "
            "largest layer.", data["cycles"],
            [("name", "network"), ("cycles_per_inference", "cycles / inference"),
             ("utilization", "largest layer utilization"),
             ("golden_accuracy", "accuracy")])]
    sim = data.get("simulation")
    if sim:
        text = (f"`{sim['network']}` behind the UART host link, as Verilog under "
                f"{sim['simulator']}, driven by the host client: {sim['images']} images, "
                f"{sim['bit_exact']} with logits and class equal to the golden model; "
                f"{sim['malformed']} malformed frames answered with their error. Latency "
                f"{sim['latency_cycles']} cycles per image (first input to class), "
                f"{sim['interval_cycles']} cycles between images when streaming (model).")
        out.append(("Simulation", text, None, None))
    build = data.get("build")
    if build:
        met = "met" if build["timing_met"] else "NOT met"
        text = (f"`{build['bitstream']}` for the {build['board']} ({build['device']}): the PLL "
                f"makes {build['pll_mhz']:.2f} MHz (target {build['target_mhz']:g} MHz); "
                f"nextpnr reaches {build['fmax']:.2f} MHz, timing {met}. At the PLL clock: "
                f"{build['latency_us']:.2f} µs per image, {build['inferences_per_s']:,.0f} "
                "inferences/s streaming; the 115200-baud UART carries about "
                f"{build['uart_images_per_s']:,.0f} images/s.")
        rows = [{"resource": k, "used": v[0], "available": v[1],
                 "%": f"{100 * v[0] / v[1]:.1f}" if v[1] else ""}
                for k, v in sorted(build["utilisation"].items())]
        out.append(("Bitstream", text, rows, [("resource", "resource"), ("used", "used"),
                                              ("available", "available"), ("%", "%")]))
    return out


def write_report(data: dict, out: Path | str) -> dict[str, Path]:
    """Write ``report.md``, ``report.html`` (with plots) and ``report.json`` into ``out``.

    ``data``: ``dataset``, ``accuracy`` (rows of the demo table), ``cycles`` (rows with
    ``name``, ``cycles_per_inference``, ``utilization``, ``golden_accuracy``), and optional
    ``simulation`` and ``build`` dictionaries (see :func:`_sections`).
    """
    out = Path(out)
    md = ["# rtl_gen report", ""]
    body = ["<h1>rtl_gen report</h1>"]
    for title, text, rows, cols in _sections(data):
        md += [f"## {title}", "", text, ""]
        body += [f"<h2>{html.escape(title)}</h2>", f"<p>{html.escape(text)}</p>"]
        if rows:
            md.append(_table_md(rows, cols))
            body.append(_table_html(rows, cols))
    plots = _plots(data)
    body.append("<h2>Plots</h2>")
    for title, svg in plots:
        body += [f"<h3>{html.escape(title)}</h3>", svg]
    page = ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>rtl_gen report</title>"
            "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
            "table{border-collapse:collapse}td,th{border:1px solid #bbb;padding:2px 8px;"
            "text-align:right}</style></head><body>" + "\n".join(body) + "</body></html>\n")
    files = {"report.md": "\n".join(md) + "\n", "report.html": page,
             "report.json": json.dumps(data, indent=2, default=str) + "\n"}
    paths = write_outputs(out, files)
    return paths
