"""Verilator lint of generated Verilog with the waiver ``rtl-gen generate`` writes beside it:
no warning left on a shipped network, and a real problem still shows."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rtl_gen.proof.lint import WAIVERS, waiver_path, waiver_text
from rtl_gen.tasks.generate import generate_network, generate_unit

ROOT = Path(__file__).resolve().parents[1]


def _verilator() -> str | None:
    local = Path(sys.executable).parent / "verilator-cli"
    return str(local) if local.exists() else shutil.which("verilator-cli") \
        or shutil.which("verilator")


needs_verilator = pytest.mark.skipif(_verilator() is None, reason="Verilator not installed")


def lint(*files: Path) -> list[str]:
    """The ``%Warning`` / ``%Error`` lines of ``verilator --lint-only -Wall files``."""
    proc = subprocess.run([_verilator(), "--lint-only", "-Wall", *map(str, files)],
                          capture_output=True, text=True, cwd=files[0].parent, timeout=300)
    return [line for line in (proc.stdout + proc.stderr).splitlines()
            if line.startswith(("%Warning", "%Error"))]


# a width truncation of an addition: the kind of bug the waiver must never hide
_TRUNCATION = """\
module planted(input wire [3:0] a, input wire [3:0] b, output wire [3:0] y);
  assign y = a + b + 5'd16;
endmodule
"""


def test_the_waiver_names_the_file_and_is_selective():
    text = waiver_text(Path("out/net_x.v"))
    assert text.startswith("`verilator_config\n")
    assert waiver_path("out/net_x.v") == Path("out/net_x.vlt")
    rules = [line for line in text.splitlines() if line.startswith("lint_off")]
    assert len(rules) == len(WAIVERS)
    assert all('-file "*net_x.v"' in r for r in rules)
    # width truncation is waived only for the two back-end idioms
    assert all("-match" in r for r in rules if "WIDTHTRUNC" in r)
    assert "-Wno" not in text and "lint_off -rule WIDTHTRUNC -file \"*net_x.v\"\n" not in text


def test_generate_writes_the_waiver_beside_the_verilog(tmp_path):
    out = tmp_path / "pe.v"
    generate_unit("ternary", 2, a_bits=4, lanes=2, out=out)
    assert waiver_path(out).read_text() == waiver_text(out)


@needs_verilator
@pytest.mark.slow
def test_a_shipped_network_lints_clean_and_a_planted_truncation_shows(tmp_path):
    out = tmp_path / "net_tr.v"
    generate_network(ROOT / "weights" / "digits-tr", out)
    vlt = waiver_path(out)
    assert vlt.is_file()
    unwaived = lint(out)
    assert len(unwaived) > 500   # the waiver has something to do
    assert lint(out, vlt) == []
    # a hand-written file linted with the waiver keeps its warning
    bad = tmp_path / "planted.v"
    bad.write_text(_TRUNCATION)
    found = lint(bad, vlt)
    assert any("WIDTHTRUNC" in w and "planted.v" in w for w in found), found
    # and so does a real truncation inside a file the waiver covers
    covered = tmp_path / "net_tr_copy.v"
    covered.write_text(_TRUNCATION.replace("planted", "net_tr_copy"))
    covered_vlt = tmp_path / "net_tr_copy.vlt"
    covered_vlt.write_text(waiver_text(covered))
    found = lint(covered, covered_vlt)
    assert any("WIDTHTRUNC" in w and "ADD" in w for w in found), found
