"""The bit-serial digits int4 network (``weights/digits-int4`` on 1 x 8 bit-serial PEs of 16
lanes) as Verilog under Verilator: one build, the whole test split at six run-time
precisions set on the ports the host link's ``BP_W_BITS``/``BP_A_BITS`` registers drive,
every logit equal to :func:`rtl_gen.design.bitserial.bitserial_forward` at the same
precisions and every layer's cycles equal to the cycle model; and the ``--engine
bitserial`` option of ``generate`` and ``verify``."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from rtl_gen.bundle import read_bundle
from rtl_gen.cli import main
from rtl_gen.data.digits import digits
from rtl_gen.hw.bitserial import BitSerialNetworkEngine
from rtl_gen.training.defaults import WEIGHTS_DIR
from sim.runner import missing_simulator
from sim.verify import verify_network

PRECISIONS = [(0, 0), (4, 5), (2, 3), (3, 2), (1, 1), (4, 1)]


@pytest.mark.slow
def test_bitserial_int4_network_at_six_precisions():
    why = missing_simulator("verilator")
    if why:
        pytest.skip(why)
    net = read_bundle(WEIGHTS_DIR / "digits-int4")
    engine = BitSerialNetworkEngine(net)
    x = digits()[1].x_int
    builds, cycles = set(), []
    for precision in PRECISIONS:
        result = verify_network(net, x, engine=engine, precision=precision)  # raises on any
        assert result["images"] == 360                                     # difference
        assert result["layer_cycles"] == result["model_layer_cycles"]
        builds.add(result["build"])
        cycles.append(tuple(result["layer_cycles"]))
    assert len(builds) == 1  # one Verilator build served every precision
    assert len(set(cycles)) == len(PRECISIONS) - 1  # (2, 3) and (3, 2): 6 planes each
    assert cycles[0] == (337, 138)


def test_generate_engine_bitserial(tmp_path):
    out = tmp_path / "bs.v"
    result = CliRunner().invoke(main, ["generate", "--bundle", str(WEIGHTS_DIR / "digits-int4"),
                                       "--engine", "bitserial", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "1x8x16" in result.stdout and "bit-serial, 321 cycles" in result.stdout
    assert "bp_w_bits" in out.read_text()


@pytest.mark.parametrize("args, message", [
    (["--engine", "bitserial", "--fit", "up5k"], "fold the array engine"),
    (["--engine", "bitserial", "--pipeline", "1"], "no --multiplier or --pipeline"),
    (["--engine", "bitserial", "--array-lanes", "3"], "power of two"),
])
def test_generate_engine_bitserial_refusals(tmp_path, args, message):
    out = tmp_path / "bs.v"
    result = CliRunner().invoke(main, ["generate", "--bundle", str(WEIGHTS_DIR / "digits-int4"),
                                       "-o", str(out), *args])
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.output
    assert not out.exists()


def test_verify_engine_bitserial_refuses_tr_controls():
    result = CliRunner().invoke(main, ["verify", "--bundle", str(WEIGHTS_DIR / "digits-tr"),
                                       "--engine", "bitserial", "--tr-k", "4"])
    assert result.exit_code == 2, result.output
    assert "not to the bit-serial engine" in result.stderr
