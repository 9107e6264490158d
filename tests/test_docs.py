"""The manual: the README is a front page of at most 200 lines whose links resolve, the
MkDocs site builds with no warning, and every command-line example in the README and the
manual names a command and options that exist."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rtl_gen.cli import main

ROOT = Path(__file__).resolve().parents[1]
PAGES = ROOT / "rtl_gen" / "docs" / "pages"
README = ROOT / "README.md"


def manual_texts() -> dict[str, str]:
    """The README and every page of the manual, by path."""
    return {str(p.relative_to(ROOT)): p.read_text()
            for p in [README, *sorted(PAGES.glob("*.md"))]}


def test_readme_is_a_front_page():
    assert len(README.read_text().splitlines()) <= 200


def _anchors(text: str) -> set[str]:
    from pymdownx.slugs import slugify

    slug = slugify(case="lower")
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    return {slug(m.group(1).strip(), "-") for m in re.finditer(r"^#{1,6} (.+)$", text, re.M)}


def test_readme_links_resolve():
    pytest.importorskip("pymdownx")
    for target in re.findall(r"\]\(([^)#]+\.md)(#[^)]*)?\)", README.read_text()):
        path, anchor = ROOT / target[0], target[1][1:]
        assert path.is_file(), target
        if anchor:
            assert anchor in _anchors(path.read_text()), target


#: ``rtl-gen COMMAND ...`` in a code span or at the start of a code line.
_EXAMPLE = re.compile(r"(?:`|^\s*)rtl-gen ([a-z][a-z-]*)([^`\n]*)", re.M)


def _options(command) -> set[str]:
    return {o for p in command.params for o in (*p.opts, *p.secondary_opts)} | {"--help"}


def test_every_command_line_example_names_real_options():
    seen = 0
    for where, text in manual_texts().items():
        for m in _EXAMPLE.finditer(text):
            name, rest = m.group(1), m.group(2)
            assert name in main.commands, f"{where}: rtl-gen {name}: no such command"
            known = _options(main.commands[name])
            for opt in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", rest):
                assert opt in known, f"{where}: rtl-gen {name} has no option {opt}"
            seen += 1
    assert seen > 50


def test_the_site_builds_without_a_warning(tmp_path):
    if shutil.which("mkdocs", path=str(Path(sys.executable).parent)) is None:
        pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f",
                           str(ROOT / "rtl_gen" / "docs" / "mkdocs.yml"), "--site-dir",
                           str(tmp_path / "site")], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "WARNING" not in proc.stderr
    page = (tmp_path / "site" / "api.html").read_text()
    assert "verify_network" in page and "gate_netlist" in page
    assert not re.search(r'(src)="https?:', page)
