"""The tasks behind the commands, called from Python without the command line.

Expected values come from the shipped records (``weights/accuracy.json``, the bundles), from
the design modules the tasks compose (golden models), or are written out by hand (frame
sizes, option errors); the simulator and the synthesis tools are replaced by recorders where
the point is what a task hands them (the real runs are the CLI's slow tests).
"""

from __future__ import annotations

import json
import types

import numpy as np
import pytest
from amaranth.hdl import Fragment

from rtl_gen import protocol as P
from rtl_gen.bundle import read_bundle, read_float_bundle, read_int_bundle, write_float_bundle
from rtl_gen.data.digits import digits
from rtl_gen.design import float_network, golden
from rtl_gen.design.float_network import FloatNetwork
from rtl_gen.design.network import Network
from rtl_gen.errors import BundleError, ModelError, RtlGenError, SpecError
from rtl_gen.hw.hostlink import network_id
from rtl_gen.hw.network import plan_network
from rtl_gen.tasks import build as build_task
from rtl_gen.tasks import check as check_task
from rtl_gen.tasks import demo as demo_task
from rtl_gen.tasks import generate as generate_task
from rtl_gen.tasks import mpwn as mpwn_task
from rtl_gen.tasks import qat as qat_task
from rtl_gen.tasks import quantize as quantize_task
from rtl_gen.tasks import report as report_task
from rtl_gen.tasks import run as run_task
from rtl_gen.tasks import synth as synth_task
from rtl_gen.tasks import train as train_task
from rtl_gen.tasks import verify as verify_task
from rtl_gen.tasks.common import OptionError, arrays_for, markdown_table
from rtl_gen.training import mpwn
from rtl_gen.training.defaults import FLOAT_MODEL_NAME, WEIGHTS_DIR
from rtl_gen.training.float_model import load_float_model

SHIPPED = {name: WEIGHTS_DIR / f"digits-{name}" for name in
           ("binary", "ternary", "pot4", "apot4", "int4", "int8", "tr", "mixed")}
#: The shipped accuracy table (written by ``rtl-gen demo --out weights``), by bundle name.
SHIPPED_ROWS = {r["name"]: r for r in
                json.loads((WEIGHTS_DIR / "accuracy.json").read_text())}


class Recorder:
    """``progress`` for a task: every call, in order."""

    def __init__(self):
        self.calls = []

    def __call__(self, what, done=None, total=None, unit=None):
        self.calls.append((what, done, total) if done is not None else what)


@pytest.fixture(scope="module")
def float_bundle(tmp_path_factory):
    """An MPWN float bundle (ternary, float) of the default model, with its float reference."""
    model = load_float_model(WEIGHTS_DIR / FLOAT_MODEL_NAME)
    net = mpwn.from_float(model, ("ternary", "float"), name="fb",
                          metadata={"dataset": "sklearn-digits"})
    return write_float_bundle(net, tmp_path_factory.mktemp("float") / "fb")


def small_model(tmp_path, **extra):
    rng = np.random.default_rng(0)
    arrays = dict(weight0=rng.normal(0, 0.3, (8, 6)), bias0=rng.normal(0, 0.1, 8),
                  weight1=rng.normal(0, 0.3, (3, 8)), bias1=rng.normal(0, 0.1, 3),
                  calibration=rng.normal(0, 1, (40, 6)))
    arrays.update(extra)
    path = tmp_path / "model.npz"
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


# -- the front door for bundles ---------------------------------------------------------------


def test_read_bundle_reads_either_family(float_bundle):
    assert isinstance(read_bundle(SHIPPED["int8"]), Network)
    net = read_bundle(float_bundle)
    assert isinstance(net, FloatNetwork) and net.spaces == ("ternary", "float")
    with pytest.raises(BundleError, match="a float bundle: its own reader reads it"):
        read_int_bundle(float_bundle)
    with pytest.raises(BundleError, match="an integer bundle: its own reader reads it"):
        read_float_bundle(SHIPPED["int8"])


def test_read_bundle_names_a_folder_that_is_no_bundle(tmp_path):
    with pytest.raises(BundleError, match="no such bundle folder"):
        read_bundle(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BundleError, match="missing: every bundle folder holds a manifest"):
        read_bundle(tmp_path / "empty")


def test_bits_per_weight_of_the_network_objects(float_bundle):
    # 64x32 + 32x10 weights: binary 1 bit each; mixed: from its schemes, by hand below
    assert read_bundle(SHIPPED["binary"]).bits_per_weight == 1
    assert read_bundle(SHIPPED["int8"]).bits_per_weight == 8
    mixed = read_bundle(SHIPPED["mixed"])
    bits = [int(s.removeprefix("int")) for s in mixed.schemes]
    assert mixed.bits_per_weight == (bits[0] * 2048 + bits[1] * 320) / 2368
    assert f"{mixed.bits_per_weight:.2f}" == SHIPPED_ROWS["digits-mixed"]["bits"]
    assert read_bundle(float_bundle).bits_per_weight == (2 * 2048 + 16 * 320) / 2368


# -- train, quantize, check, report ----------------------------------------------------------


def test_train_saves_the_model_and_reports_progress(tmp_path):
    progress = Recorder()
    result = train_task.train(tmp_path / "m.npz", epochs=2, seed=3, progress=progress)
    assert progress.calls == [("training", 1, 2), ("training", 2, 2)]
    back = load_float_model(tmp_path / "m.npz")
    _, test = digits()
    assert result.path == tmp_path / "m.npz"
    assert result.accuracy == back.accuracy(test.x, test.y) > 0.3


def test_quantize_writes_a_bundle(tmp_path):
    result = quantize_task.quantize(small_model(tmp_path), ["ternary", "int4"],
                                    tmp_path / "b", name="mine")
    back = read_bundle(tmp_path / "b")
    assert result.path == tmp_path / "b"
    assert back.name == result.network.name == "mine"
    assert back.schemes == ("ternary", "int4")
    assert back.metadata["source"] == "model.npz"
    one = quantize_task.quantize(small_model(tmp_path), ["int8"], tmp_path / "c")
    assert one.network.schemes == ("int8", "int8") and one.network.name == "c"


def test_quantize_refuses_a_bad_calibration_file(tmp_path):
    (tmp_path / "calib.npy").write_text("not numpy")
    with pytest.raises(ModelError, match="calib.npy: not a readable .npy file"):
        quantize_task.quantize(small_model(tmp_path, calibration=None), ["int8"],
                               tmp_path / "b", calibration=tmp_path / "calib.npy")
    with pytest.raises(ModelError, match="model.npz: 3 schemes given for a 2-layer model"):
        quantize_task.quantize(small_model(tmp_path), ["int8"] * 3, tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_check_summarises_both_families(float_bundle):
    result = check_task.check(SHIPPED["tr"])
    assert result.summary == (f"{SHIPPED['tr']}: valid bundle 'digits-tr', input 64 x u5, "
                              "10 outputs")
    assert [r["layer"] for r in result.layers] == ["fc1", "fc2"]
    assert result.layers[0]["tr"] == "g=16 k=10 s=2"
    assert result.layers[0]["shape"] == "32x64"
    result = check_task.check(float_bundle)
    assert result.summary.endswith("valid float bundle 'fb', input 64 x fp32, 10 outputs")
    assert [(r["space"], r["bits/weight"]) for r in result.layers] == [("ternary", 2),
                                                                       ("float", 16)]


def test_report_matches_the_shipped_accuracy_table(tmp_path):
    result = report_task.report([SHIPPED["int8"], SHIPPED["tr"]], out=tmp_path / "r")
    int8, tr = result.rows
    assert int8["golden_accuracy"] == SHIPPED_ROWS["digits-int8"]["golden_accuracy"]
    assert tr["golden_accuracy"] == SHIPPED_ROWS["digits-tr"]["golden_accuracy"]
    assert tr["conventional_accuracy"] == SHIPPED_ROWS["digits-tr"]["conventional_accuracy"]
    assert json.loads((tmp_path / "r" / "report.json").read_text()) == result.rows
    assert "| golden (integer) |" in result.table


def test_report_scores_a_float_bundle(float_bundle):
    result = report_task.report([float_bundle, SHIPPED["int8"]])
    row = result.rows[0]
    net = read_float_bundle(float_bundle)
    _, test = digits()
    assert row["name"] == "fb" and row["schemes"] == "ternary/float"
    assert row["golden_accuracy"] == float_network.accuracy(net, net.encode(test.x),
                                                            test.y)
    model = load_float_model(WEIGHTS_DIR / FLOAT_MODEL_NAME)
    assert row["float_accuracy"] == model.accuracy(test.x, test.y)
    assert row["delta"] == f"{100 * (row['golden_accuracy'] - row['float_accuracy']):+.2f}"
    assert "| golden |" in result.table and "golden (integer)" not in result.table


def test_report_refuses_data_of_the_wrong_width(tmp_path, float_bundle):
    np.savez(tmp_path / "d.npz", x=np.zeros((3, 63)), y=np.zeros(3, dtype=np.int64))
    for bundle in (SHIPPED["int8"], float_bundle):
        with pytest.raises(RtlGenError, match=r"d.npz: x must be \(n, 64\)"):
            report_task.report([bundle], tmp_path / "d.npz")


# -- demo, qat ------------------------------------------------------------------------------


def test_infer_frame_bytes_follow_the_protocol():
    # request: A5, cmd, len (2), 2 x 64 codes, crc = 133; reply: 5A, status, cmd, len (2),
    # 2 classes + 2 x 10 logits of 3 bytes + cycles (4), crc = 6 + 66 = 72
    info = P.DesignInfo(P.PROTOCOL_VERSION, 2, 64, 10, 5, False, 3, 2, 0)
    assert demo_task.infer_frame_bytes(info) == 133 + 72


def test_demo_without_simulation_or_bitstream(tmp_path):
    steps = []
    result = demo_task.demo(tmp_path / "d", simulate=False, bitstream=False,
                            on_step=lambda s: steps.append((s.number, s.done, s.value is None)))
    assert steps == [(1, False, True), (1, True, False), (2, False, True), (2, True, False),
                     (3, True, True), (4, True, True), (5, False, True), (5, True, False)]
    assert [r["name"] for r in result.bundles.rows] == list(SHIPPED_ROWS)
    for row in result.bundles.rows:
        want = SHIPPED_ROWS[row["name"]]
        assert row["golden_accuracy"] == want["golden_accuracy"]
        assert row["bits"] == want["bits"]
    assert result.simulation is None and result.build is None
    assert result.verilog == tmp_path / "d" / "verilog" / "net_digits_binary.v"
    assert "module net_digits_binary(" in result.verilog.read_text()
    assert set(result.report) == {"report.md", "report.html", "report.json"}
    assert (tmp_path / "d" / "accuracy.md").read_text() == \
        (WEIGHTS_DIR / "accuracy.md").read_text()


def test_qat_without_torch_is_one_clear_error(monkeypatch):
    import builtins

    real = builtins.__import__

    def no_torch(name, *args, **kwargs):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("no torch here")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torch)
    with pytest.raises(RtlGenError, match="needs PyTorch"):
        qat_task.qat("unused")


@pytest.mark.slow
def test_qat_retrains_every_bundle(tmp_path):
    pytest.importorskip("torch")
    progress = Recorder()
    result = qat_task.qat(tmp_path, epochs=1, search_epochs=1, progress=progress)
    assert ("QAT binary", 1, 1) in progress.calls and ("bit-width search", 1, 1) in \
        progress.calls
    assert (tmp_path / "qat" / "search.md").read_text() == result.search_table
    names = sorted(p.name for p in (tmp_path / "qat").glob("digits-*.npz"))
    assert names == sorted(f"{n}.npz" for n in SHIPPED_ROWS)
    assert [r["name"] for r in result.bundles.rows] == list(SHIPPED_ROWS)
    assert "| int8 | int8, int8 | 8.00 |" in result.search_table


# -- generate, verify, synth -------------------------------------------------------------------


def test_generate_a_network(tmp_path):
    result = generate_task.generate_network(SHIPPED["int8"], tmp_path / "n.v")
    assert result.module == "net_digits_int8" and result.path == tmp_path / "n.v"
    assert "module net_digits_int8(" in result.path.read_text()
    assert result.summary == f"{tmp_path / 'n.v'}: module net_digits_int8, 2 layers, batch of 1"
    assert "| fc1 | int8 | 64->32 | 1x8x1 | 4 |" in result.table
    assert result.table.endswith("cycles per inference)\n")


def test_generate_refuses_bad_options(tmp_path):
    with pytest.raises(OptionError, match="not a Verilog identifier") as e:
        generate_task.generate_network(SHIPPED["int8"], tmp_path / "n.v", name="8bad")
    assert e.value.option == "--name"
    with pytest.raises(OptionError, match="lanes must be a power of two"):
        generate_task.generate_network(SHIPPED["int8"], tmp_path / "n.v", lanes=3)
    with pytest.raises(RtlGenError, match="cannot generate 'digits-tr': .*takes no lanes"):
        generate_task.generate_network(SHIPPED["tr"], tmp_path / "n.v", lanes=2)
    with pytest.raises(OptionError, match="comma-separated integer codes"):
        generate_task.generate_unit("ternary", 2, weights="one", out=tmp_path / "u.v")
    assert not list(tmp_path.iterdir())


def test_generate_a_unit(tmp_path):
    result = generate_task.generate_unit("pot", 4, lanes=2, weights="1,3", out=tmp_path / "u.v")
    assert result.module.startswith("pot4_a8u_l2_d256_p0_baked")
    text = result.path.read_text()
    assert f"module {result.module}(" in text
    assert result.summary.startswith(f"{tmp_path / 'u.v'}: module {result.module}, 2 x pot4, "
                                     "8-bit unsigned activations, ")
    assert result.summary.endswith(", weights baked")


def test_network_engine_of_a_float_bundle(float_bundle):
    plan = generate_task.network_plan(read_bundle(float_bundle), cols=4, rows=3)
    assert plan.configs == (4, 4) and plan.rows == 1  # rows and lanes do not apply to it


class FakeSim:
    """Stands for ``sim.verify``: records what the task hands the simulation."""

    def __init__(self):
        self.calls = []

    def _result(self, n):
        return {"images": n, "cycles": 10 * n, "layer_cycles": [1, 2],
                "model_layer_cycles": [1, 2]}

    def verify_network(self, net, codes, **kw):
        self.calls.append(({"integer": "int", "float": "float"}[net.family], net, codes, kw))
        return self._result(len(codes))


@pytest.fixture
def fake_sim(monkeypatch):
    sim = FakeSim()
    monkeypatch.setattr(verify_task, "sim_extra", lambda: (sim, (RuntimeError,)))
    return sim


def test_verify_hands_the_simulation_the_coded_images(fake_sim):
    progress = Recorder()
    result = verify_task.verify(SHIPPED["tr"], images=7, cols=4, tr_k=3, progress=progress)
    kind, net, x_int, kw = fake_sim.calls[0]
    _, test = digits()
    assert kind == "int" and net.name == "digits-tr"
    assert np.array_equal(x_int, test.x_int[:7])
    assert [a.cols for a in kw["arrays"]] == [4, 4]
    assert kw["control"] == golden.TRControl(golden.TRMode.TR, 3, None)
    assert progress.calls[0].startswith("verifying digits-tr: 7 images")
    assert result.summary.startswith("digits-tr: 7 images, every logit and class equal to "
                                     "the golden model; 70 cycles (10.0 per inference)")


def test_verify_a_float_bundle(fake_sim, float_bundle):
    result = verify_task.verify(float_bundle, images=3, cols=2)
    kind, net, x_bits, kw = fake_sim.calls[0]
    _, test = digits()
    assert kind == "float" and kw["lanes"] == 2
    assert np.array_equal(x_bits, test.x[:3].astype(np.float32).view(np.uint32))
    assert "every fp32 logit and class" in result.summary
    with pytest.raises(OptionError, match="not to a float bundle"):
        verify_task.verify(float_bundle, conventional=True)


def test_verify_refuses_before_simulating(fake_sim):
    with pytest.raises(RtlGenError, match="takes no lanes"):
        verify_task.verify(SHIPPED["tr"], lanes=2)
    with pytest.raises(RtlGenError, match="has no term-revealing layers"):
        verify_task.verify(SHIPPED["int8"], conventional=True)
    assert fake_sim.calls == []


@pytest.fixture
def fake_flow(monkeypatch):
    calls = []
    stats = types.SimpleNamespace(logic_cells=100, lut4=80, carry=10, ff=50, dsp=1, bram=2,
                                  note="")
    def component_verilog(engine, top):
        Fragment.get(engine, None)  # the engine the task built elaborates
        calls.append(("verilog", top))
        return "// v"

    flow = types.SimpleNamespace(
        component_verilog=component_verilog,
        synth=lambda verilog, top, device, **kw: calls.append(("synth", device)) or stats,
        place_and_route_seeds=lambda verilog, top, device, seeds, jobs, **kw: calls.append(
            ("seeds", seeds) if jobs == 1 else ("seeds", seeds, "jobs", jobs)) or
        types.SimpleNamespace(
            fmax=50.0, fmax_per_seed=(49.0, 50.0, 52.5)[:seeds], note="",
            seeds=(1, 2, 3)[:seeds], failed=(), clock_pins={}))
    monkeypatch.setattr(synth_task, "flow", flow)
    return calls


def test_synth_row_names_the_seeds_that_did_not_route(fake_flow, monkeypatch):
    monkeypatch.setattr(synth_task.flow, "place_and_route_seeds", lambda *a, **kw: (
        types.SimpleNamespace(fmax=50.0, fmax_per_seed=(49.0, 50.0, 52.5), note="",
                              seeds=(1, 3, 5), failed=((2, "Failed to route arc 0"),
                                                       (4, "Failed to route arc 1")),
                              clock_pins={3: "A9", 5: "A9"})))
    row = synth_task.synth(SHIPPED["int8"], "ecp5-25f")
    assert row["Fmax per seed"] == ("49.0 / 50.0 / 52.5 (seeds 1, 3, 5; 2, 4 did not route) "
                                    "(clock on the dedicated pin A9 at seeds 3, 5)")


def test_synth_row(fake_flow, float_bundle):
    row = synth_task.synth(SHIPPED["int8"], "ecp5-25f", rows=2)
    assert fake_flow == [("verilog", "net_digits_int8"), ("synth", "ecp5-25f"), ("seeds", 3)]
    net = read_bundle(SHIPPED["int8"])
    _, timings = plan_network(net, arrays_for(net, rows=2))
    interval = golden.network_interval(timings, 64)
    assert row == {"network": "digits-int8", "device": "ecp5-25f", "logic cells": 100,
                   "LUT4": 80, "carry": 10, "FF": 50, "DSP": 1, "BRAM": 2,
                   "Fmax MHz": "50.0", "Fmax per seed": "49.0 / 50.0 / 52.5",
                   "inferences/s": f"{50e6 * 2 / interval:,.0f}"}
    row = synth_task.synth(float_bundle, fmax=False)
    assert row["network"] == "fb" and "Fmax MHz" not in row
    with pytest.raises(RtlGenError, match="unknown device 'virtex'"):
        synth_task.synth(SHIPPED["int8"], "virtex")
    fake_flow.clear()
    synth_task.synth(SHIPPED["int8"], "ecp5-25f", seeds=2, jobs=2)
    assert fake_flow[-1] == ("seeds", 2, "jobs", 2)
    with pytest.raises(RtlGenError, match="jobs must be a positive integer, not 0"):
        synth_task.synth(SHIPPED["int8"], "ecp5-25f", jobs=0)


def test_synth_measures_the_board_build_unless_asked_for_counters(fake_flow, monkeypatch,
                                                                   float_bundle):
    """By default synth elaborates the engine a board gets: no layer counter logic (no
    ``elapsed`` counter in the Verilog); ``counters=True`` the verification build."""
    from rtl_gen.hw.verilog import to_verilog
    engines = []
    real = synth_task.flow.component_verilog
    monkeypatch.setattr(synth_task.flow, "component_verilog",
                        lambda engine, top: engines.append(engine) or real(engine, top))
    synth_task.synth(SHIPPED["binary"], fmax=False)
    synth_task.synth(SHIPPED["binary"], fmax=False, counters=True)
    synth_task.synth(float_bundle, fmax=False)
    off, on, flt = engines
    assert [p.counters for *_, p in off._plan.stages] == [False, False]
    assert [p.counters for *_, p in on._plan.stages] == [True, True]
    assert {p.counters for *_, p in flt._plan.stages} == {False}
    assert "elapsed" not in to_verilog(off, "off") and "elapsed" in to_verilog(on, "on")


# -- build, run -------------------------------------------------------------------------------


def test_build_and_run_refuse_a_float_bundle(float_bundle):
    with pytest.raises(RtlGenError, match="a float bundle; the host link carries integer"):
        build_task.build("icebreaker", float_bundle)
    with pytest.raises(RtlGenError, match="a float bundle; the host link carries integer"):
        run_task.run("/dev/null", float_bundle)


def test_build_hands_the_flow_the_network_and_board(monkeypatch, tmp_path):
    pytest.importorskip("amaranth_boards")
    seen = {}

    def build_network(net, board, **kw):
        seen.update(net=net, board=board, **kw)
        return "report"

    monkeypatch.setattr(build_task, "build_network", build_network)
    monkeypatch.chdir(tmp_path)
    progress = Recorder()
    assert build_task.build("ulx3s", SHIPPED["int4"], cols=4, baud=9600,
                            progress=progress) == "report"
    assert seen["net"].name == "digits-int4" and seen["board"].name == "ulx3s"
    assert str(seen["outdir"]) == "build/ulx3s-digits-int4"
    assert [a.cols for a in seen["arrays"]] == [4, 4]
    assert (seen["baud"], seen["seed"], seen["freq_mhz"]) == (9600, 1, None)
    assert seen["counters"] is False  # a board gets no layer counters unless asked
    assert progress.calls[0].startswith("building digits-int4 for ulx3s into build/ulx3s-")
    with pytest.raises(RtlGenError, match="unknown board 'nexys'"):
        build_task.build("nexys", SHIPPED["int4"])
    build_task.build("ulx3s", SHIPPED["int4"], counters=True)
    assert seen["counters"] is True


class Loopback:
    """A transport whose far end is a :class:`~rtl_gen.protocol.DeviceModel`."""

    def __init__(self, model):
        self.model, self.pending = model, bytearray()

    def write(self, data):
        self.model.receive(data)
        self.pending += self.model.take()
        return len(data)

    def read(self, n):
        out = bytes(self.pending[:n])
        del self.pending[:n]
        return out


def device(bundle, rows=2):
    net = read_int_bundle(bundle)
    info = P.DesignInfo(P.PROTOCOL_VERSION, rows, net.input.features, net.classes,
                        net.input.bits, net.input.signed, 4, len(net.layers), network_id(net))
    return P.DeviceModel(net, info, cycles=77, interval=40)


def test_run_against_a_device_model():
    progress = Recorder()
    result = run_task.run("loop", SHIPPED["ternary"], images=5,
                          link=Loopback(device(SHIPPED["ternary"])), progress=progress)
    assert result.ok and result.failure() is None and result.images == 5
    _, test = digits()
    net = read_bundle(SHIPPED["ternary"])
    assert np.array_equal(result.logits, golden.forward(net, test.x_int[:5]))
    assert result.accuracy == np.mean(golden.predict(net, test.x_int[:5]) == test.y[:5])
    assert progress.calls == [("images", 2, 5), ("images", 4, 5), ("images", 5, 5)]
    assert result.summary.endswith(
        "5/5 classes and 5/5 logit vectors equal to the golden model; 77 cycles per batch of "
        "2 (median)\non-board throughput: 256 batches of 2 back to back in 10,277 cycles, "
        "40.1 cycles per batch")  # 77 + 255 x 40
    assert result.bench.measured_per_s is None  # no clock without the design record


def test_run_reports_differences_and_sets_tr_controls():
    model = device(SHIPPED["tr"], rows=1)
    real = model._answer

    def corrupt(frame):
        reply = real(frame)
        if frame[1] == P.CMD_INFER:
            status, cmd, payload = P.decode_reply(reply)
            payload = payload[:1] + bytes([payload[1] ^ 0x01]) + payload[2:]
            reply = P.encode_reply(status, cmd, payload)
        return reply

    model._answer = corrupt
    result = run_task.run("loop", SHIPPED["tr"], images=3, conventional=True,
                          link=Loopback(model))
    assert model._regs[P.REGISTERS["TR_MODE"]] == 0
    assert not result.ok and result.logit_mismatches == 3
    assert result.failure() == "3 images' logits differ from the golden model"


def test_run_refuses_another_network():
    with pytest.raises(RtlGenError, match="holds another network"):
        run_task.run("loop", SHIPPED["binary"], images=1,
                      link=Loopback(device(SHIPPED["ternary"])))


# -- mpwn, reduced-float -----------------------------------------------------------------------


def test_mpwn_given_spaces(tmp_path):
    result = mpwn_task.mpwn(spaces="ternary,E4M3", epochs=0, out=tmp_path / "b")
    back = read_float_bundle(tmp_path / "b")
    assert result.spaces == ["ternary", "E4M3"] and back.spaces == ("ternary", "E4M3")
    _, test = digits()
    acc = float_network.accuracy(back, back.encode(test.x), test.y)
    assert result.rows[0]["accuracy"] == acc == back.metadata["accuracy"]
    assert back.metadata["finetune_epochs"] == 0
    assert result.table_rows[0]["asb_pct"] == f"{result.rows[0]['asb']:.4f}"
    with pytest.raises(SpecError, match="unknown weight space 'quaternary'"):
        mpwn_task.mpwn(spaces="quaternary", epochs=0)


def test_mpwn_search_reports_progress():
    progress = Recorder()
    result = mpwn_task.mpwn(epochs=0, progress=progress)
    assert len(result.rows) == 9 and result.path is None
    assert progress.calls[-1] == ("MPWN search", 9, 9)
    assert result.spaces == result.rows[0]["spaces"].split("/")


def test_reduced_float(tmp_path):
    progress = Recorder()
    result = mpwn_task.reduced_float(man_bits=range(3), out=tmp_path / "rf",
                                     progress=progress)
    model = load_float_model(WEIGHTS_DIR / FLOAT_MODEL_NAME)
    rec = mpwn.recommend_format(model)
    assert progress.calls == [f"recommended exponent width: {rec} bits"]
    assert result.recommended == rec and len(result.rows) == 3 * 3
    assert result.failure() is None
    back = read_float_bundle(tmp_path / "rf")
    assert {ly.weight_format.man_bits for ly in back.layers} == {result.best["man_bits"]}
    strict = mpwn_task.reduced_float(exp_bits=[2], man_bits=[0], tolerance=0,
                                     out=tmp_path / "none")
    assert strict.best is None and not (tmp_path / "none").exists()
    assert strict.failure().startswith("no swept format is within 0 points of fp32")


def test_markdown_table():
    assert markdown_table([{"a": 0.5, "b": None, "c": 3}]) == \
        "| a | b | c |\n|---|---|---|\n| 50.00% |  | 3 |\n"


def test_demo_build_summary_counts_uart_frames_from_the_protocol(monkeypatch, tmp_path):
    """The throughput over the UART: one INFER request and reply per batch of rows."""
    import sys

    net = read_int_bundle(SHIPPED["binary"])
    arrays = arrays_for(net, cols=4)
    report = types.SimpleNamespace(pll_mhz=12.0, fmax=20.0, to_json=lambda: {"board": "x"})
    monkeypatch.setattr(demo_task, "build_network", lambda *a, **kw: report)
    monkeypatch.setitem(sys.modules, "boards", types.SimpleNamespace(get_board=lambda n: n))
    engine = types.SimpleNamespace(rows=1, interval=1000)
    d = demo_task._build(net, arrays, engine, "icebreaker", tmp_path, {"latency_cycles": 600},
                         baud=115200)
    # request 5 + 64 codes; reply 6 + 1 class + 10 logits x 2 bytes + 4 cycle bytes
    logit_bytes = -(-net.layers[-1].acc_bits // 8)
    assert logit_bytes == 2
    assert d["uart_images_per_s"] == 115200 / 10 / (69 + 31)
    assert d["latency_us"] == 600 / 12.0
    assert d["inferences_per_s"] == 12e6 / 1000
