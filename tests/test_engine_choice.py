"""The engine choice: `--fit` takes the unrolled engine where it fits, the arrays where not;
`--engine` forces one; the commands refuse what cannot be built, in one line."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from rtl_gen.bundle import read_bundle
from rtl_gen.cli import main
from rtl_gen.devices import DEVICES
from rtl_gen.hw.planner import (
    UNROLLED_ROUTABLE_SHARE,
    shortfall,
    unrolled_area,
    unrolled_fit,
    unroutable,
)
from rtl_gen.hw.unrolled import UnrolledNetworkEngine, plan_unrolled
from rtl_gen.tasks import generate as generate_task
from rtl_gen.tasks.common import FoldingOptions
from rtl_gen.training.defaults import WEIGHTS_DIR

TERNARY = WEIGHTS_DIR / "digits-ternary"


def run(*argv):
    return CliRunner().invoke(main, [str(a) for a in argv])


def test_fit_on_the_ecp5_takes_the_unrolled_engine(tmp_path):
    out = tmp_path / "t.v"
    r = run("generate", "--bundle", TERNARY, "--fit", "ecp5-85f", "-o", out)
    assert r.exit_code == 0, r.output
    assert "engine for digits-ternary: unrolled, one image a cycle" in r.output
    assert "network: unrolled, one image a cycle" in r.output
    assert "module net_digits_ternary" in out.read_text()


def test_fit_on_the_up5k_keeps_the_arrays_and_says_why(tmp_path):
    r = run("generate", "--bundle", TERNARY, "--fit", "up5k", "-o", tmp_path / "t.v")
    assert r.exit_code == 0, r.output
    assert "engine for digits-ternary: arrays (the unrolled engine would need logic cells" \
        in r.output
    assert "cycles between batches" in r.output


def test_engine_choice_in_python():
    from amaranth.hdl import Fragment

    from rtl_gen.tasks.common import unrolled_choice

    net = read_bundle(TERNARY)
    assert unrolled_choice(net, FoldingOptions(fit="ecp5-85f")) is not None
    assert unrolled_choice(net, FoldingOptions(fit="ecp5-85f", engine="arrays")) is None
    assert unrolled_choice(net, FoldingOptions(fit="up5k")) is None
    assert unrolled_choice(net, None) is None  # no --fit: the arrays, as before
    engine = generate_task.network_engine(net, folding=FoldingOptions(engine="unrolled"))
    assert isinstance(engine, UnrolledNetworkEngine) and engine.interval == 1
    Fragment.get(engine, None)


def test_term_revealing_bundle_fits_unrolled_at_its_own_setting(tmp_path):
    """`--fit` builds a term-revealing bundle as any other: the unrolled engine where it
    fits, its own setting as constants, and says so; `--engine arrays` keeps the run-time
    control, and so does `verify` given a run-time setting."""
    from rtl_gen.tasks.common import unrolled_choice

    net = read_bundle(WEIGHTS_DIR / "digits-tr")
    assert unrolled_choice(net, FoldingOptions(fit="ecp5-85f")) is not None
    assert unrolled_choice(net, FoldingOptions(fit="ecp5-85f", engine="arrays")) is None
    assert unrolled_choice(net, FoldingOptions(fit="ecp5-85f"), tr_runtime=True) is None
    assert unrolled_choice(net, FoldingOptions(fit="up5k")) is None
    out = tmp_path / "t.v"
    r = run("generate", "--bundle", WEIGHTS_DIR / "digits-tr", "--fit", "ecp5-85f", "-o", out)
    assert r.exit_code == 0, r.output
    assert "engine for digits-tr: unrolled, one image a cycle" in r.output
    assert "term revealing fixed at the bundle's group budget and data terms (no run-time " \
        "control; --engine arrays keeps it)" in r.output
    assert "a register after every adder level (the faster clock)" in r.output
    assert "module net_digits_tr" in out.read_text()
    r = run("generate", "--bundle", WEIGHTS_DIR / "digits-tr", "--fit", "ecp5-85f",
            "--engine", "arrays", "-o", out)
    assert r.exit_code == 0, r.output
    assert "unrolled" not in r.output and "at run time" in r.output
    r = run("verify", "--bundle", WEIGHTS_DIR / "digits-tr", "--engine", "unrolled",
            "--tr-k", "6")
    assert r.exit_code in (1, 2) and "Traceback" not in r.output
    assert "--conventional/--tr-k/--tr-s set the term-revealing arrays' run-time registers" \
        in r.stderr


def test_unrolled_estimate_grows_with_the_adder_graph():
    small = plan_unrolled(read_bundle(WEIGHTS_DIR / "digits-binary"), multiplier="adders")
    big = plan_unrolled(read_bundle(WEIGHTS_DIR / "digits-int8"), multiplier="adders")
    (s_logic, s_short), (b_logic, b_short) = (unrolled_fit(p, "ecp5-85f") for p in (small, big))
    assert s_short is None and b_logic > 2 * s_logic
    _, short = unrolled_fit(small, "up5k")
    assert short.startswith("logic cells: needs about")
    _, tight = unrolled_fit(big, "ecp5-85f", margin=0.9)
    assert tight is not None and "with 90% kept free" in tight
    # int8's graphs take fewer LUT4s than the device has with the margin kept free, but more
    # than nextpnr routes: the routing bound refuses it
    ecp5 = DEVICES["ecp5-85f"]
    assert shortfall(unrolled_area(big), ecp5, 0.1) is None
    assert b_short == (f"LUT4s: needs about {b_logic:.0f}, nextpnr routes about 33456 of "
                       f"ecp5-85f's 83640 in adder graphs (40%)")


def test_the_routing_bound_is_a_share_of_the_family_device():
    edge = UNROLLED_ROUTABLE_SHARE["ecp5"] * DEVICES["ecp5-85f"].luts
    assert unroutable(edge, DEVICES["ecp5-85f"]) is None
    assert "needs about 33457," in unroutable(edge + 1, DEVICES["ecp5-85f"])
    assert "needs at least about 9716, nextpnr routes about 9715 of ecp5-25f's" in \
        unroutable(9716, DEVICES["ecp5-25f"], bound=True)
    assert unroutable(5280, DEVICES["up5k"]) is None   # no bound on the iCE40


def test_fit_takes_the_arrays_where_the_unrolled_engine_would_not_route(monkeypatch, tmp_path):
    """digits-int8's unrolled engine (about 42k LUT4) fits the LFE5U-85F's LUT4s but not
    what nextpnr routes there: `--fit` builds the arrays and says why; with the bound
    raised it takes the unrolled engine; `--engine unrolled --fit` is refused in one line,
    nothing written."""
    from rtl_gen.tasks.common import unrolled_choice

    int8 = read_bundle(WEIGHTS_DIR / "digits-int8")
    said = []
    assert unrolled_choice(int8, FoldingOptions(fit="ecp5-85f"), said.append) is None
    assert said[-1].startswith("engine for digits-int8: arrays (the unrolled engine would "
                               "need LUT4s: needs about ")
    assert "nextpnr routes about 33456 of ecp5-85f's 83640 in adder graphs" in said[-1]
    out = tmp_path / "t.v"
    r = run("generate", "--bundle", WEIGHTS_DIR / "digits-int8", "--engine", "unrolled",
            "--fit", "ecp5-85f", "-o", out)
    assert r.exit_code != 0 and "Traceback" not in r.output and not out.exists()
    assert "the unrolled engine does not fit ecp5-85f: LUT4s: needs about" in r.output
    monkeypatch.setitem(UNROLLED_ROUTABLE_SHARE, "ecp5", 0.6)
    plan = unrolled_choice(int8, FoldingOptions(fit="ecp5-85f"))
    assert plan is not None and plan.interval == 1


def test_fit_registers_every_adder_level_on_the_ecp5():
    """`--fit` on the ECP5 puts a register after every adder level (its faster clock, in
    no more logic), estimated with the deep coefficients, whatever the design's size; the
    shorter latency of two levels a cycle stays `--adder-levels 2`."""
    from rtl_gen.design.area_calibration import UNROLLED_DEEP_COEFFICIENTS
    from rtl_gen.hw.planner import unrolled_area, unrolled_stage
    from rtl_gen.tasks.common import unrolled_choice

    said = []
    int4 = unrolled_choice(read_bundle(WEIGHTS_DIR / "digits-int4"),
                           FoldingOptions(fit="ecp5-85f"), said.append)
    ternary = unrolled_choice(read_bundle(TERNARY), FoldingOptions(fit="ecp5-85f"), said.append)
    assert (int4.stage, ternary.stage) == (1, 1)
    assert "a register after every adder level (the faster clock)" in said[-1]
    short = unrolled_choice(read_bundle(TERNARY),
                            FoldingOptions(fit="ecp5-85f", adder_levels=2))
    assert short.stage == 2 and short.latency < ternary.latency
    deep = unrolled_area(int4, coefficients=UNROLLED_DEEP_COEFFICIENTS).logic
    assert unrolled_fit(int4, "ecp5-85f")[0] == deep
    assert [unrolled_stage(x, "ecp5-85f") for x in (0, 5000, 50_000)] == [1, 1, 1]
    assert unrolled_stage(50_000, "up5k") == 2  # the iCE40 fits no unrolled engine


def test_adder_levels_set_the_unrolled_pipeline(tmp_path):
    """`--adder-levels N` replaces the planner's choice of levels a cycle: the large int4
    design at two (the 12-cycle latency), the ternary one at one; the Verilog's registers
    follow (more levels a cycle, fewer cycles)."""
    from rtl_gen.tasks.common import unrolled_choice

    int4 = read_bundle(WEIGHTS_DIR / "digits-int4")
    said = []
    two = unrolled_choice(int4, FoldingOptions(fit="ecp5-85f", adder_levels=2), said.append)
    deep = unrolled_choice(int4, FoldingOptions(fit="ecp5-85f"))
    assert (two.stage, deep.stage) == (2, 1) and two.latency < deep.latency
    assert "2 adder levels a cycle" in said[-1] and "large design" not in said[-1]
    out = tmp_path / "t.v"
    r = run("generate", "--bundle", TERNARY, "--engine", "unrolled", "--adder-levels", 1,
            "-o", out)
    assert r.exit_code == 0, r.output
    one = plan_unrolled(read_bundle(TERNARY), stage=1, multiplier="rom")
    assert f"latency {one.latency} cycles" in r.output
    assert "1 adder level a cycle" in r.output
    assert one.latency > plan_unrolled(read_bundle(TERNARY), multiplier="rom").latency


def test_requantizers_are_block_ram_tables_where_the_device_has_them(monkeypatch):
    """`--fit` puts each hidden output's requantizer in a block RAM table where its window
    is small (binary: all 32), counts the tables' block RAMs, and falls back to the
    shift-and-add requantizers on a device with too few block RAMs."""
    import dataclasses

    from rtl_gen import devices
    from rtl_gen.hw.planner import unrolled_area
    from rtl_gen.tasks.common import unrolled_choice

    binary = read_bundle(WEIGHTS_DIR / "digits-binary")
    said = []
    plan = unrolled_choice(binary, FoldingOptions(fit="ecp5-85f"), said.append)
    assert plan.multiplier == "rom" and all(r is not None for r in plan.layers[0].rom)
    assert "32 requantizer tables in block RAM" in said[-1]
    assert unrolled_area(plan).bram == 32
    fabric = plan_unrolled(binary, multiplier="adders")
    assert unrolled_area(plan).logic < 0.8 * unrolled_area(fabric).logic
    few = dataclasses.replace(devices.DEVICES["ecp5-85f"], bram_bits=20 * 18432)
    monkeypatch.setitem(devices.DEVICES, "ecp5-85f", few)
    said.clear()
    plan = unrolled_choice(binary, FoldingOptions(fit="ecp5-85f"), said.append)
    assert plan.multiplier == "adders" and unrolled_area(plan).bram == 0
    assert "requantizer table" not in said[-1]


def test_requantizers_choose_tables_or_adders(monkeypatch, tmp_path):
    """`--requantizers adders` keeps every hidden requantizer shift-and-add (no block RAM);
    `tables` insists on the tables: on a device with too few block RAMs the unrolled engine
    then does not fit (auto: the arrays), and a network with no window small enough for a
    table is refused; `auto` falls back to shift-and-add there (above)."""
    import dataclasses

    from rtl_gen import devices
    from rtl_gen.errors import RtlGenError
    from rtl_gen.hw.planner import unrolled_area
    from rtl_gen.tasks.common import unrolled_choice

    binary = read_bundle(WEIGHTS_DIR / "digits-binary")
    said = []
    plan = unrolled_choice(binary, FoldingOptions(fit="ecp5-85f", requantizers="adders"),
                           said.append)
    assert plan.multiplier == "adders" and unrolled_area(plan).bram == 0
    assert "requantizer table" not in said[-1]
    r = run("generate", "--bundle", TERNARY, "--engine", "unrolled", "--requantizers",
            "adders", "-o", tmp_path / "t.v")
    assert r.exit_code == 0, r.output
    assert "requantizer table" not in r.output
    assert "l0_rom0" not in (tmp_path / "t.v").read_text()  # the first output's table
    r = run("generate", "--bundle", TERNARY, "--engine", "unrolled", "-o", tmp_path / "a.v")
    assert r.exit_code == 0 and "l0_rom0_data" in (tmp_path / "a.v").read_text()
    with pytest.raises(RtlGenError, match="--requantizers tables: no hidden output of "
                       "'digits-int8' has a window of 2,048 codes or fewer"):
        unrolled_choice(read_bundle(WEIGHTS_DIR / "digits-int8"),
                        FoldingOptions(fit="ecp5-85f", requantizers="tables"))
    few = dataclasses.replace(devices.DEVICES["ecp5-85f"], bram_bits=20 * 18432)
    monkeypatch.setitem(devices.DEVICES, "ecp5-85f", few)
    said.clear()
    assert unrolled_choice(binary, FoldingOptions(fit="ecp5-85f", requantizers="tables"),
                           said.append) is None
    assert "block RAMs: needs about 32" in said[-1]


@pytest.mark.parametrize("argv,message", [
    (["generate", "--bundle", TERNARY, "--engine", "unrolled", "--fit", "up5k"],
     "the unrolled engine does not fit up5k: logic cells"),
    (["generate", "--bundle", TERNARY, "--engine", "unrolled", "--target-fps", "1e6"],
     "--layer-array and --target-fps fold the array engine"),
    (["build", "--board", "icebreaker", "--bundle", TERNARY, "--engine", "unrolled"],
     "the board core feeds the array engine one code a cycle"),
    (["generate", "--bundle", TERNARY, "--engine", "systolic"], "'--engine'"),
    (["generate", "--bundle", TERNARY, "--adder-levels", "1"],
     "--adder-levels pipelines the unrolled engine: give it with --engine unrolled"),
    (["generate", "--bundle", TERNARY, "--fit", "ecp5-85f", "--target-fps", "1e5",
      "--adder-levels", "1"], "--adder-levels pipelines the unrolled engine"),
    (["generate", "--bundle", TERNARY, "--engine", "bitserial", "--adder-levels", "1"],
     "--adder-levels pipelines the unrolled engine, not the bit-serial one"),
    (["build", "--board", "icebreaker", "--bundle", TERNARY, "--adder-levels", "2"],
     "--adder-levels pipelines the unrolled engine"),
    (["generate", "--bundle", TERNARY, "--engine", "unrolled", "--adder-levels", "0"],
     "'--adder-levels'"),
    (["generate", "--bundle", TERNARY, "--requantizers", "adders"],
     "--requantizers chooses the unrolled engine's requantizers: give it with --engine"),
    (["generate", "--bundle", TERNARY, "--engine", "bitserial", "--requantizers", "tables"],
     "--requantizers chooses the unrolled engine's requantizers, not the bit-serial one"),
    (["build", "--board", "icebreaker", "--bundle", TERNARY, "--requantizers", "adders"],
     "--requantizers chooses the unrolled engine's requantizers"),
    (["generate", "--bundle", TERNARY, "--engine", "unrolled", "--requantizers", "rom"],
     "'--requantizers'"),
])
def test_refusals_are_one_line(tmp_path, argv, message):
    r = run(*argv, *(["-o", tmp_path / "x.v"] if argv[0] == "generate" else
                     ["--out", tmp_path / "b"]))
    assert r.exit_code in (1, 2), r.output
    assert message in r.stderr
    assert "Traceback" not in r.output
    assert not (tmp_path / "x.v").exists() and not (tmp_path / "b").exists()


@pytest.mark.slow
def test_verify_runs_the_fit_choice_under_verilator():
    """`verify --fit ecp5-85f` simulates the unrolled engine it chose, bit-exact on the whole
    test split (the Verilog of the shipped-bundle test of tests/test_unrolled.py, which runs
    it under Icarus where installed; this is its Verilator build)."""
    from sim.runner import missing_simulator

    if why := missing_simulator("verilator"):
        pytest.skip(why)
    r = run("verify", "--bundle", WEIGHTS_DIR / "digits-binary", "--fit", "ecp5-85f")
    assert r.exit_code == 0, r.output
    assert "engine for digits-binary: unrolled" in r.output
    assert "360" in r.output


def test_verify_with_a_run_time_setting_keeps_the_arrays(monkeypatch):
    """`verify --fit ecp5-85f --tr-k 6` on a term-revealing bundle simulates the arrays
    with that setting in their registers, where `--fit` alone would build the unrolled
    engine (which has none)."""
    import types

    from rtl_gen.tasks import verify as verify_task

    seen = {}

    class Simulated(Exception):
        pass

    def verify_network(net, codes, **options):
        seen.update(options)
        raise Simulated

    monkeypatch.setattr(verify_task, "sim_extra", lambda: (
        types.SimpleNamespace(verify_network=verify_network), ()))
    with pytest.raises(Simulated):
        verify_task.verify(WEIGHTS_DIR / "digits-tr", images=4, tr_k=6,
                           folding=FoldingOptions(fit="ecp5-85f"))
    assert "engine" not in seen and seen["control"].budget == 6
    assert [a.cols for a in seen["arrays"]] == [32, 8]
    seen.clear()
    with pytest.raises(Simulated):
        verify_task.verify(WEIGHTS_DIR / "digits-tr", images=4,
                           folding=FoldingOptions(fit="ecp5-85f"))
    assert isinstance(seen["engine"], UnrolledNetworkEngine) and "control" not in seen
    seen["engine"]._MustUse__silence = True   # never elaborated here: no warning at its end
