"""The report as a product: one self-contained HTML page (and its Markdown twin) with no
Markdown syntax in its text, every plot present with labels that do not collide, nothing
fetched from the network, per-layer tables and the test images it got wrong."""

import base64
import copy
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from click.testing import CliRunner

from rtl_gen.bundle import read_int_bundle
from rtl_gen.cli import main
from rtl_gen.tasks import demo as demo_task
from rtl_gen.tasks import report as R
from rtl_gen.training.defaults import WEIGHTS_DIR

matplotlib.use("Agg")

#: A bitstream and a simulation as the demo's later steps describe them (these steps take
#: minutes; the page is what is under test here).
BUILD = {"bitstream": "build/demo/icebreaker/top.bin", "board": "icebreaker",
         "device": "iCE40UP5K", "pll_mhz": 30.0, "target_mhz": 30, "fmax": 38.02,
         "timing_met": True, "latency_us": 5.1, "inferences_per_s": 232_558.0,
         "uart_images_per_s": 151.0,
         "utilisation": {"ICESTORM_LC": [2802, 5280], "ICESTORM_RAM": [9, 30],
                         "ICESTORM_DSP": [1, 8], "ICESTORM_PLL": [1, 1], "SB_IO": [4, 96]}}
SIMULATION = {"network": "digits-binary", "simulator": "Verilator", "images": 360,
              "bit_exact": "360/360", "malformed": 3, "latency_cycles": 153,
              "interval_cycles": 129}


class Page(HTMLParser):
    """A page's visible text (outside SVG, style and script), its links and sources, its
    images and its tags."""

    SKIP = {"svg", "style", "script"}

    def __init__(self, text: str):
        super().__init__()
        self.text, self.links, self.imgs, self.tags = [], [], [], []
        self.cells: list[str] = []
        self.depth = 0
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        attrs = dict(attrs)
        self.links += [v for k, v in attrs.items()
                       if k in ("src", "href", "xlink:href", "data", "action") and v]
        if tag == "img":
            self.imgs.append(attrs)
        if tag == "div" and "cell" in (attrs.get("class") or "").split():
            self.cells.append(attrs["class"])
        if tag in self.SKIP:
            self.depth += 1

    def handle_endtag(self, tag):
        if tag in self.SKIP:
            self.depth -= 1

    def handle_data(self, data):
        if self.depth == 0 and data.strip():
            self.text.append(data)


def check_page(html: str, figures: int) -> Page:
    """What every report page must be: no Markdown in its text, ``figures`` plots, each an
    inline SVG in a figure with a caption, nothing fetched from elsewhere."""
    page = Page(html)
    text = " ".join(page.text)
    assert "`" not in text and "**" not in text and "](" not in text
    assert not re.search(r"^#+ ", "\n".join(page.text), re.M)
    assert page.tags.count("svg") == figures == page.tags.count("figure")
    assert page.tags.count("figcaption") == figures
    assert all(not re.match(r"\s*(https?:)?//", link) for link in page.links), page.links
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html)
    assert "@import" not in html
    ids = re.findall(r'\bid="([^"]+)"', html)
    assert len(ids) == len(set(ids)), "ids defined twice"
    refs = re.findall(r'(?:href="#|url\(#)([^")]+)', html)
    assert set(refs) <= set(ids), set(refs) - set(ids)  # every reference resolves
    style = html.split("<style>", 1)[1].split("</style>", 1)[0]
    assert "&" not in style and "{" in style  # raw CSS: entities are not decoded there
    assert not re.search(r"""url\(\s*['"]?(?!#)""", html)  # only the SVG's own ids
    for img in page.imgs:
        assert img["src"].startswith("data:image/png;base64,")
        assert base64.b64decode(img["src"].split(",", 1)[1]).startswith(b"\x89PNG")
    return page


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    result = demo_task.demo(out, simulate=False, bitstream=False)
    return out, json.loads(result.report["report.json"].read_text())


def test_demo_page_without_simulation_or_bitstream(demo_data):
    out, data = demo_data
    page = check_page((out / "report.html").read_text(), figures=4)
    text = " ".join(page.text)
    assert "Accuracy by weight scheme" in text
    # the measured designs beside the estimates, dated and with the tools' versions
    measured = json.loads(R.MEASURED.read_text())
    assert f"Measured on {measured['date']}" in text
    assert all(f"{k} {v}" in text for k, v in measured["tools"].items())
    assert "Measured: accuracy against logic and against speed" in text
    assert "Accuracy against cycles per inference" in text
    assert "Accuracy against logic and against speed" in text
    # the network taken to hardware, set as code, not in backticks
    assert "<code>digits-binary</code>" in (out / "report.html").read_text()
    assert "`digits-binary`" in (out / "report.md").read_text()
    # the test images, misclassified first: as many red cells as the golden model's errors
    grid = data["images"]
    net = read_int_bundle(WEIGHTS_DIR / "digits-binary")
    pred = net.predict(net.encode(demo_task.digits()[1].x))
    y = demo_task.digits()[1].y
    assert grid["wrong"] == int(np.sum(pred != y)) > 0
    bad = min(grid["wrong"], len(grid["images"]))
    assert page.cells == ["cell bad"] * bad + ["cell"] * (len(grid["images"]) - bad)
    assert len(page.imgs) == len(grid["images"]) == 48
    for cell in grid["images"][:bad]:
        assert cell["pred"] == str(pred[cell["index"]]) != cell["true"]


def test_demo_page_with_every_section(demo_data, tmp_path):
    _, data = demo_data
    data = dict(copy.deepcopy(data), simulation=SIMULATION, build=BUILD)
    paths = R.write_report(data, tmp_path)
    html = paths["report.html"].read_text()
    page = check_page(html, figures=5)
    titles = [t.strip() for t in page.text]
    for title in ("Accuracy", "Cycle model", "Layers", "Design space", "Test images",
                  "Simulation",
                  "Bitstream", "Resources on the icebreaker."):
        assert title in titles, title
    md = paths["report.md"].read_text()
    assert "<" not in md.replace("<code>", "")  # no HTML in the twin
    for title in ("## Accuracy", "## Cycle model", "## Layers", "## Test images",
                  "## Simulation", "## Bitstream", "| ICESTORM_LC | 2,802 | 5,280 | 53.1% |",
                  "`build/demo/icebreaker/top.bin` for the icebreaker"):
        assert title in md, title
    assert json.loads(paths["report.json"].read_text())["build"] == BUILD


def test_the_layer_table_holds_term_revealing_layers_to_the_same_utilization(demo_data):
    _, data = demo_data
    layers = {(r["network"], r["layer"]): r for r in data["layers"]}
    tr = layers["digits-tr", "fc1"]
    # K 64 on groups of 16: 4 steps of 10 term slots; 32 outputs on 8 columns: 4 tiles,
    # one every 40 cycles, and the pickup: 161 cycles for 64 x 32 products; the peak is
    # 8 columns x 16 lanes every 10 cycles
    assert (tr["k"], tr["n"], tr["array"], tr["slots"], tr["interval"]) == \
        (64, 32, "1 x 8 x 16", 10, 161)
    assert tr["utilization"] == pytest.approx(64 * 32 / (161 * 8 * 16 / 10))
    assert tr["utilization"] > 0.99
    int8 = layers["digits-int8", "fc1"]  # 4 tiles of 64 steps and the pickup
    assert int8["utilization"] == pytest.approx(64 * 32 / (257 * 8))
    # the network taken to hardware is shown on its board arrays (4 columns)
    assert layers["digits-binary", "fc1"]["array"] == "1 x 4 x 4"
    assert layers["digits-ternary", "fc1"]["array"] == "1 x 8 x 4"
    cycles = {r["name"]: r for r in data["cycles"]}
    assert cycles["digits-tr"]["utilization"] == pytest.approx(tr["utilization"])
    assert all(r["lc"] > 0 for r in data["layers"])


def test_design_space_is_the_fastest_design_that_fits(demo_data):
    """Every integer network on both devices, each design inside the device with the
    margin, its rate the clock over its cycles per image."""
    from rtl_gen.devices import get_device

    _, data = demo_data
    rows = data["design_space"]
    assert {(r["network"], r["device"]) for r in rows} == {
        (r["name"], d) for r in data["accuracy"] for d in ("up5k", "ecp5-85f")}
    for r in rows:
        assert r["logic"] <= 0.9 * get_device(r["device"]).luts
        assert r["images_per_s"] == pytest.approx(r["clock_mhz"] * 1e6 / r["cycles"])
        assert r["unit"] == ("LC" if r["device"] == "up5k" else "LUT4")
    fastest = {r["network"]: r["cycles"] for r in rows if r["device"] == "ecp5-85f"}
    # the largest device takes every network at least as fast as the smallest
    assert all(fastest[r["network"]] <= r["cycles"] for r in rows if r["device"] == "up5k")


def figures_of(data):
    acc = data["accuracy"]
    yield R._accuracy_figure(acc, [("float_accuracy", "float"), ("ptq_accuracy", "PTQ"),
                                   ("golden_accuracy", "QAT")])
    yield R._scatter_figure([(R._short(r["name"]), r["cycles_per_inference"],
                              100 * r["golden_accuracy"]) for r in data["cycles"]],
                            "cycles per inference", "test accuracy (%)")
    yield R._resources_figure(BUILD)
    yield R._design_figure(data["design_space"])


def test_no_label_of_any_plot_overlaps_another(demo_data):
    _, data = demo_data
    for fig in figures_of(data):
        texts = [t for t, _ in R.figure_texts(fig)]
        assert R.text_overlaps(fig) == [], texts
        assert any("accuracy" in t or "share" in t for t in texts)  # an axis title
        matplotlib.pyplot.close(fig)


def test_labels_stay_apart_with_many_networks_at_one_point():
    """The case the old page got wrong: networks at the same cycles and accuracy (pot4 and
    apot4, int4 and int8) on one axis; and a dozen long bundle names."""
    points = [(f"network-with-a-long-name-{i}", 257.0 if i % 2 else 65.0, 91.0 + (i % 3) / 3)
              for i in range(12)]
    fig = R._scatter_figure(points, "cycles per inference", "test accuracy (%)")
    assert R.text_overlaps(fig) == []
    names = [t for t, _ in R.figure_texts(fig)]
    assert all(any(p[0] in t for t in names) for p in points)
    rows = [{"name": f"a-rather-long-bundle-name-{i}", "golden_accuracy": 0.5 + i / 30,
             "float_accuracy": 0.9} for i in range(12)]
    fig = R._accuracy_figure(rows, [("float_accuracy", "float"), ("golden_accuracy", "golden")])
    assert R.text_overlaps(fig) == []
    matplotlib.pyplot.close("all")


def test_the_overlap_check_sees_overlapping_labels():
    plt = matplotlib.pyplot
    fig, ax = plt.subplots()
    ax.scatter([0, 1, 1.001, 2], [0, 1, 1.001, 2])
    ax.annotate("pot4", (1, 1))
    ax.annotate("apot4", (1.001, 1.001))
    assert ("pot4", "apot4") in R.text_overlaps(fig)
    plt.close(fig)


def test_report_command_writes_the_page(tmp_path):
    float_bundle = tmp_path / "fb"
    runner = CliRunner()
    made = runner.invoke(main, ["mpwn", "--spaces", "binary,float", "--finetune", "0",
                                "--out", str(float_bundle)])
    assert made.exit_code == 0, made.output
    out = tmp_path / "r"
    result = runner.invoke(main, ["report", "--bundle", str(WEIGHTS_DIR / "digits-int8"),
                                  "--bundle", str(WEIGHTS_DIR / "digits-tr"),
                                  "--bundle", str(float_bundle), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "report.json",
                                                     "report.md"]
    page = check_page((out / "report.html").read_text(), figures=3)
    text = " ".join(page.text)
    for words in ("Accuracy by bundle", "Design space", "Layers", "Test images",
                  "digits-int8", "digits-tr", "Float network", "99.38%"):
        assert words in text, words
    # one grid per bundle, the first open
    assert page.tags.count("details") == 3
    assert [r["name"] for r in json.loads((out / "report.json").read_text())] == \
        ["digits-int8", "digits-tr", "fb"]
    md = (out / "report.md").read_text()
    assert "| digits-tr | fc1 | signmag5 | 64 | 32 | 1 x 8 x 16 | 10 |" in md


def _user_bundle_page(tmp_path) -> Path:
    """The report page of a user's own model (quantized int4, a data file of its own)."""
    rng = np.random.default_rng(0)
    model = tmp_path / "m.npz"
    np.savez(model, weight0=rng.normal(0, 0.3, (8, 6)), bias0=rng.normal(0, 0.1, 8),
             weight1=rng.normal(0, 0.3, (3, 8)), bias1=rng.normal(0, 0.1, 3),
             calibration=rng.normal(0, 1, (40, 6)))
    data = tmp_path / "d.npz"
    np.savez(data, x=rng.normal(0, 1, (20, 6)), y=rng.integers(0, 3, 20))
    runner = CliRunner()
    assert runner.invoke(main, ["quantize", "--model", str(model), "--scheme", "int4",
                                "--out", str(tmp_path / "b")]).exit_code == 0
    result = runner.invoke(main, ["report", "--bundle", str(tmp_path / "b"), "--data",
                                  str(data), "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    return tmp_path / "r" / "report.html"


def test_measured_view_needs_its_results_file(tmp_path):
    assert R.measured_space(["digits-binary"], tmp_path / "missing.json") is None
    assert R.measured_space(["not-shipped"]) is None
    rows = R.measured_space(["digits-binary"])["rows"]
    assert {r["device"] for r in rows} <= {"up5k", "ecp5-85f"} and rows
    assert all(r["network"] == "digits-binary" for r in rows)


def test_a_model_whose_inputs_are_not_images_has_no_grid(tmp_path):
    _user_bundle_page(tmp_path)
    page = check_page((tmp_path / "r" / "report.html").read_text(), figures=2)
    assert page.imgs == [] and "Test images" not in page.text
    assert "Layers" in page.text


def _chromium(*args) -> subprocess.CompletedProcess:
    # No network: every request goes to a proxy that does not exist.
    return subprocess.run(["chromium", "--headless", "--disable-gpu", "--no-sandbox",
                           "--proxy-server=127.0.0.1:9", *args], check=True,
                          capture_output=True, timeout=120)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium")
def test_the_pages_render_offline_in_chromium(demo_data, tmp_path):
    """Headless Chromium with no network: the demo's page and a user bundle's render to a
    screenshot, and the document the browser built (its DOM) passes the page checks: every
    plot there, no Markdown in the text, nothing fetched."""
    out, _ = demo_data
    for html, figures in ((out / "report.html", 4), (_user_bundle_page(tmp_path), 2)):
        shot = tmp_path / f"{html.parent.name}.png"
        _chromium("--window-size=1200,4000", f"--screenshot={shot}", html.as_uri())
        image = matplotlib.image.imread(shot)
        assert image.shape[0] == 4000 and image.std() > 0.01
        dom = _chromium("--dump-dom", html.as_uri()).stdout.decode()
        check_page(dom, figures=figures)
