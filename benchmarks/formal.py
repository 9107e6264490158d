"""Formal checks of the generated hardware (:mod:`rtl_gen.proof`): every property with its
mode (``bmc``: bounded from the initial state; ``prove``: k-induction), depth, result and
run time (yowasp-sby, smtbmc with yices; the cover task that shows each property is not
vacuous included).

Run ``python benchmarks/formal.py [-k NAME] [--quick]`` (the same as ``python -m
rtl_gen.proof``); it prints a Markdown table and writes ``benchmarks/results/formal.md``
and ``.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rtl_gen.proof.__main__ import main, table

RESULTS = Path(__file__).parent / "results"

if __name__ == "__main__":
    argv = sys.argv[1:]
    if "--json" not in argv:
        argv += ["--json", str(RESULTS / "formal.json")]
    status = main(argv)
    out = Path(argv[argv.index("--json") + 1])
    if out.exists():
        out.with_suffix(".md").write_text(table(json.loads(out.read_text())))
    sys.exit(status)
