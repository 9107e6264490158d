"""Formal checks of the generated hardware (:mod:`rtl_gen.proof`): every property with its
mode (``bmc``: bounded from the initial state; ``prove``: k-induction), depth, result and
run time.

Run ``python benchmarks/formal.py [-k NAME] [--quick]``; it prints a Markdown table and
writes ``benchmarks/results/formal.md`` and ``.json``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from rtl_gen.proof.__main__ import main

RESULTS = Path(__file__).parent / "results"

if __name__ == "__main__":
    argv = sys.argv[1:]
    if "--json" not in argv:
        argv += ["--json", str(RESULTS / "formal.json")]
    sys.exit(main(argv))
