"""Shared fixtures: the repository root on ``sys.path`` so the ``sim`` testbenches import;
the shipped float model and the digits test split as fp32 bit patterns (the float networks'
simulation tests)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)


@pytest.fixture(scope="module")
def float_model():
    """The shipped float MLP (``weights/digits-float.npz``)."""
    from rtl_gen.training.defaults import FLOAT_MODEL_NAME, WEIGHTS_DIR
    from rtl_gen.training.float_model import load_float_model

    return load_float_model(WEIGHTS_DIR / FLOAT_MODEL_NAME)


@pytest.fixture(scope="module")
def test_bits():
    """The digits test split as fp32 bit patterns, and its labels."""
    from rtl_gen.data.digits import digits

    split = digits()[1]
    bits = np.asarray(split.x, dtype=np.float32).view(np.uint32)
    assert np.array_equal(bits.view(np.float32).astype(np.float64), split.x)  # exact
    return bits, split.y


# -- make test: how the suite is shared between pytest-xdist's workers -------------------------
#
# `make test` runs `pytest -n auto --dist loadfile`: a work unit is a test file, run by one
# worker from start to end, so its tests share their simulator builds and module fixtures.
# pytest-xdist hands units out by their number of tests, which sends the heaviest files (a
# few long Verilator runs each) last, when the other worker has nothing left to do.  Here the
# units are handed out heaviest first (longest processing time first), and the heaviest files
# are cut into a few units along their simulator builds, so that both workers end together.

#: Units smaller than a file: ``(node id prefix, unit)``, the first match wins.  The tests
#: of one unit share its simulator builds.
UNITS: tuple[tuple[str, str], ...] = (
    # the sequential float engines: each build and run of the whole split takes minutes
    ("tests/test_float_network_cocotb.py::test_every_test_image_is_bit_exact[fp32]",
     "float network fp32"),
    ("tests/test_float_network_cocotb.py::test_every_test_image_is_bit_exact[binary-float]",
     "float network binary-float"),
    # the term-revealing board core's own build, six settings through the host registers
    ("tests/test_tr_cocotb.py::test_tr_network_through_the_host_registers",
     "tr host registers"),
    # an iCEBreaker bitstream of the term-revealing network
    ("tests/test_cli.py::test_the_term_revealing_network_at_fit_up5k_builds_for_the_icebreaker",
     "tr icebreaker"),
) + tuple(  # each shipped MNIST bundle's whole test split: a build and about a minute each
    (f"tests/test_mnist_cocotb.py::test_every_mnist_test_image_through_the_planned_design"
     f"[{p.name}]", f"mnist {p.name}")
    for p in sorted((Path(_ROOT) / "weights").glob("mnist-*")) if p.is_dir())

#: About how many CPU seconds each heavy unit takes from a fresh clone (empty build caches),
#: its simulator builds and tool runs included (the table in the manual's development page).
#: A unit not named here counts as none and is handed out after these; a stale figure only
#: changes the order of the units, never what runs.
UNIT_SECONDS: dict[str, float] = {
    "float network binary-float": 150,
    "tests/test_float_network_cocotb.py": 145,     # ternary-ternary, gaps and stalls, one bit
    "tests/test_qonnx_import.py": 140,
    "tests/test_conv_hw_cocotb.py": 165,            # + the wide window units, one build
    "tests/test_network_cocotb.py": 120,
    "tests/test_unrolled.py": 110,
    "tests/test_explore.py": 100,
    "tests/test_formal.py": 100,
    "tests/test_pe_cocotb.py": 100,
    "float network fp32": 60,                     # 60 images
    "tests/test_planner.py": 130,                  # every digits bundle's --fit plan simulated
    "tests/test_exact_float_cocotb.py": 75,
    "tests/test_engine_choice.py": 60,             # the unrolled binary engine's Verilator build
    "tests/test_gates.py": 120,                    # two netlists, one lock-step pair
    "tests/test_cli.py": 60,
    "tests/test_board_cocotb.py": 100,             # and the MNIST CNN's core, two runs
    "tests/test_cnn_board.py": 100,                # the MNIST CNN's two bitstreams
    **{f"mnist {p.name}": 75 for p in (Path(_ROOT) / "weights").glob("mnist-*")},
    "mnist mnist-tfc-w2a2": 150,                   # --fit ecp5-85f: its adder graphs first
    "tests/test_tr_cocotb.py": 90,                 # slot-serial and group-per-cycle builds
    "tr host registers": 80,
    "tr icebreaker": 70,
    "tests/test_conv.py": 50,                      # a CNN synthesized
    "tests/test_flow.py": 30,
    "tests/test_qat_net.py": 30,                   # user CNNs trained, one Verilator build
    "tests/test_pe_share.py": 60,                  # a digits network synthesized twice
    "tests/test_bitserial_cocotb.py": 30,
    "tests/test_sim_runner.py": 20,
    "tests/test_fpu.py": 20,
    "tests/test_boards.py": 15,
    "tests/test_exact_float_hw.py": 15,
    "tests/test_tasks.py": 15,
    "tests/test_mpwn_cli.py": 15,
    "tests/test_report.py": 10,
    "tests/test_popcount.py": 10,
}


def work_unit(nodeid: str) -> str:
    """The work unit of the test ``nodeid``: its :data:`UNITS` entry, else its file."""
    for prefix, unit in UNITS:
        if nodeid.startswith(prefix):
            return unit
    return nodeid.split("::", 1)[0]


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """``--dist loadfile`` with the units of :func:`work_unit`, heaviest first."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class HeaviestFirst(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

        def _assign_work_unit(self, node) -> None:
            heaviest = max(self.workqueue, key=lambda unit: UNIT_SECONDS.get(unit, 0.0))
            self.workqueue.move_to_end(heaviest, last=False)
            super()._assign_work_unit(node)

    return HeaviestFirst(config, log)
