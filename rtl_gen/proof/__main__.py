"""``python -m rtl_gen.proof``: run every formal property and print a table (property, mode,
depth, result, seconds); ``--json PATH`` writes the rows too.  Exit status 1 if any
property does not pass."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .properties import checks
from .runner import ProofError, missing_tools, run_check


def table(rows: list[dict]) -> str:
    """The rows as a Markdown table."""
    out = ["| property | mode | depth | result | seconds |", "|---|---|---:|---|---:|"]
    for r in rows:
        result = r["status"]
        if r["failed"]:
            result += f" ({', '.join(r['failed'])})"
        out.append(f"| {r['name']} | {r['mode']} | {r['depth']} | {result} | "
                   f"{r['seconds']:.1f} |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rtl_gen.proof",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("-k", dest="pattern", default="",
                        help="run only the properties whose name contains this")
    parser.add_argument("--quick", action="store_true", help="a fast subset")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args(argv)
    missing = missing_tools()
    if missing:
        print(f"error: formal checks need {', '.join(missing)} (pip install "
              "'rtl_gen[flow,formal]')", file=sys.stderr)
        return 2
    rows = []
    for check in checks(quick=args.quick):
        if args.pattern not in check.name:
            continue
        try:
            result = run_check(check)
        except ProofError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        row = result.as_dict()
        row["what"] = check.what
        rows.append(row)
        print(f"{result.name}: {result.status} ({result.mode}, depth {result.depth}, "
              f"{result.seconds:.1f} s)", file=sys.stderr, flush=True)
    print(table(rows), end="")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0 if all(r["status"] == "PASS" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
