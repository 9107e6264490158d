"""``rtl-gen run`` against a device model on a pseudo-terminal: the real serial code
(pyserial), the real host client, and a device that answers like the hardware (its logits
from the golden model, or deliberately wrong ones)."""

from __future__ import annotations

import os
import pty
import threading

import pytest
from click.testing import CliRunner

from rtl_gen import protocol as P
from rtl_gen.bundle import read_bundle
from rtl_gen.cli import main
from rtl_gen.hw.hostlink import network_id
from rtl_gen.training.defaults import WEIGHTS_DIR

pytest.importorskip("serial")

BUNDLE = WEIGHTS_DIR / "digits-ternary"
TR_BUNDLE = WEIGHTS_DIR / "digits-tr"


def serve(master: int, model: P.DeviceModel, stop: threading.Event):
    while not stop.is_set():
        try:
            data = os.read(master, 4096)
        except OSError:
            return
        model.receive(data)
        out = model.take()
        if out:
            os.write(master, out)


@pytest.fixture(params=[BUNDLE])
def device(request):
    """A pty whose far end is a DeviceModel; yields (port, model)."""
    net = read_bundle(request.param)
    info = P.DesignInfo(P.PROTOCOL_VERSION, 1, net.input.features, net.classes,
                        net.input.bits, net.input.signed, 4, len(net.layers), network_id(net))
    model = P.DeviceModel(net, info, cycles=123, interval=100)
    master, slave = pty.openpty()
    stop = threading.Event()
    thread = threading.Thread(target=serve, args=(master, model, stop), daemon=True)
    thread.start()
    yield os.ttyname(slave), model
    stop.set()
    os.close(slave)
    os.close(master)


def test_run_compares_with_the_golden_model(device):
    port, _ = device
    result = CliRunner().invoke(main, ["run", "--port", port, "--bundle", str(BUNDLE),
                                       "--images", "25"])
    assert result.exit_code == 0, result.output
    assert "25/25 classes and 25/25 logit vectors equal" in result.stdout
    assert "123 cycles per batch" in result.stdout


def test_run_measures_throughput_on_the_board(device, tmp_path):
    """The throughput run (BENCH) after the images: the cycles the board counted for the
    last batch run back to back, as inferences/s at the design record's clock next to the
    cycle model's; a BENCH reply whose logits are wrong fails the run."""
    import json

    port, model = device
    design = tmp_path / "design.json"
    design.write_text(json.dumps({"baud": 3_000_000, "clock_mhz": 30.0, "interval": 100}))
    result = CliRunner().invoke(main, ["run", "--port", port, "--bundle", str(BUNDLE),
                                       "--images", "3", "--bench", "1000", "--design",
                                       str(design)])
    assert result.exit_code == 0, result.output
    # 123 cycles for the first batch, 100 for each of the other 999
    assert ("on-board throughput: 1000 batches of 1 back to back in 100,023 cycles, 100.0 "
            "cycles per batch (model: interval 100); 299,931 inferences/s measured at 30 "
            "MHz, model 300,000") in result.stdout
    real = model._answer

    def corrupt(frame):
        reply = real(frame)
        if frame[1] == P.CMD_BENCH:
            status, cmd, payload = P.decode_reply(reply)
            reply = P.encode_reply(status, cmd, payload[:2] + bytes([payload[2] ^ 1])
                                   + payload[3:])
        return reply

    model._answer = corrupt
    result = CliRunner().invoke(main, ["run", "--port", port, "--bundle", str(BUNDLE),
                                       "--images", "2", "--bench", "3"])
    assert result.exit_code == 1
    assert "throughput run's logits differ" in result.stderr
    assert "3 batches of 1 back to back in 323 cycles" in result.stdout


def test_run_reports_a_wrong_answer(device):
    port, model = device
    real = model._answer

    def corrupt(frame):
        reply = real(frame)
        if frame[1] == P.CMD_INFER:
            status, cmd, payload = P.decode_reply(reply)
            payload = payload[:3] + bytes([payload[3] ^ 0x40]) + payload[4:]
            reply = P.encode_reply(status, cmd, payload)
        return reply

    model._answer = corrupt
    result = CliRunner().invoke(main, ["run", "--port", port, "--bundle", str(BUNDLE),
                                       "--images", "5"])
    assert result.exit_code == 1
    assert "differ from the golden model" in result.stderr
    assert "Traceback" not in result.output


def test_run_refuses_another_network(device):
    port, _ = device
    result = CliRunner().invoke(main, ["run", "--port", port, "--bundle",
                                       str(WEIGHTS_DIR / "digits-binary"), "--images", "2"])
    assert result.exit_code == 1
    assert "holds another network" in result.stderr


def test_run_names_a_missing_port(tmp_path):
    result = CliRunner().invoke(main, ["run", "--port", str(tmp_path / "ttyNONE"),
                                       "--bundle", str(BUNDLE)])
    assert result.exit_code == 1
    assert "ttyNONE" in result.stderr


@pytest.mark.parametrize("device", [TR_BUNDLE], indirect=True)
@pytest.mark.parametrize("options", [["--conventional"], ["--tr-k", "4", "--tr-s", "1"]])
def test_run_sets_the_term_revealing_controls(device, options):
    port, model = device
    result = CliRunner().invoke(main, ["run", "--port", port, "--bundle", str(TR_BUNDLE),
                                       "--images", "12", *options])
    assert result.exit_code == 0, result.output
    assert "12/12 classes and 12/12 logit vectors equal" in result.stdout
    assert model._regs[P.REGISTERS["TR_MODE"]] == (0 if options == ["--conventional"] else 1)


def test_run_refuses_tr_options_without_tr_layers(device):
    port, _ = device
    result = CliRunner().invoke(main, ["run", "--port", port, "--bundle", str(BUNDLE),
                                       "--conventional"])
    assert result.exit_code == 2  # a usage error, as for a float bundle
    assert "no term-revealing layers" in result.stderr


CNN_BUNDLE = WEIGHTS_DIR / "mnist-cnn-int4"


@pytest.mark.parametrize("device", [CNN_BUNDLE], indirect=True)
def test_run_classifies_mnist_on_a_cnn(device):
    """A CNN's images go over the link whole: 784 codes in each INFER frame, its logits
    back, compared with the golden model."""
    from rtl_gen.data.mnist import mnist
    from rtl_gen.errors import DataError

    try:
        mnist()
    except DataError as e:
        pytest.skip(str(e))
    port, model = device
    assert model.info.features == 784
    result = CliRunner().invoke(main, ["run", "--port", port, "--bundle", str(CNN_BUNDLE),
                                       "--images", "3"])
    assert result.exit_code == 0, result.output
    assert "mnist-cnn-int4 on" in result.stdout
    assert "3/3 classes and 3/3 logit vectors equal" in result.stdout
