"""Mutation score: inject small faults into the hardware and numerics sources and count how
many the test suite notices.

Each mutant is one edit of one source file, made on its syntax tree (an arithmetic, bitwise
or comparison operator swapped, an integer constant moved by one, ``and``/``or`` swapped),
in a scratch copy of the repository (``git worktree``); the tests that cover that file
(:data:`TESTS`: amaranth.sim, formal and unit tests, no simulator build) run against it, and
the mutant is *killed* when they fail and *survives* when they pass.  A mutant whose tests
run past the timeout counts as killed (the fault hangs the design), and is marked so.

Run ``python benchmarks/mutation.py [--mutants 60] [--seed 0] [--timeout 600]``; it prints
the score and the survivors (file, line, the edit) and writes
``benchmarks/results/mutation.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"

#: Source file -> the tests that cover it (fast: no Verilator build).
TESTS = {
    "rtl_gen/hw/pes/binary.py": ["tests/test_pe_sim.py", "-k", "binary"],
    "rtl_gen/hw/pes/ternary.py": ["tests/test_pe_sim.py", "-k", "ternary"],
    "rtl_gen/hw/pes/pot.py": ["tests/test_pe_sim.py", "-k", "pot and not apot"],
    "rtl_gen/hw/pes/apot.py": ["tests/test_pe_sim.py", "-k", "apot"],
    "rtl_gen/hw/pes/integer.py": ["tests/test_pe_sim.py", "-k", "int"],
    "rtl_gen/hw/pes/xnor.py": ["tests/test_pe_sim.py", "-k", "xnor"],
    "rtl_gen/hw/pes/bitplane.py": ["tests/test_pe_sim.py", "tests/test_bitplane.py"],
    "rtl_gen/hw/popcount.py": ["tests/test_popcount.py", "-m", "not slow"],
    "rtl_gen/hw/hese.py": ["tests/test_hese_hw.py"],
    "rtl_gen/hw/kit.py": ["tests/test_network_sim.py", "tests/test_engine_options.py", "-m",
                          "not slow"],
    "rtl_gen/numerics/fixedpoint.py": ["tests/test_fixedpoint.py"],
    "rtl_gen/numerics/schemes.py": ["tests/test_schemes.py"],
    "rtl_gen/numerics/terms.py": ["tests/test_terms.py"],
    "rtl_gen/numerics/minifloat.py": ["tests/test_minifloat.py"],
    "rtl_gen/numerics/floatops.py": ["tests/test_floatops.py"],
    "rtl_gen/design/golden.py": ["tests/test_golden.py", "tests/test_design.py"],
}

_SWAPS = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.BitAnd: ast.BitOr, ast.BitOr: ast.BitAnd,
          ast.BitXor: ast.BitOr, ast.LShift: ast.RShift, ast.RShift: ast.LShift,
          ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
          ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.And: ast.Or, ast.Or: ast.And}


def _sites(tree: ast.AST) -> list[tuple[ast.AST, str]]:
    """Every place one edit can be made: (node, kind)."""
    sites = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.BinOp, ast.BoolOp)) and type(node.op) in _SWAPS:
            sites.append((node, "op"))
        elif isinstance(node, ast.Compare) and len(node.ops) == 1 and \
                type(node.ops[0]) in _SWAPS:
            sites.append((node, "cmp"))
        elif isinstance(node, ast.Constant) and type(node.value) is int and \
                0 <= node.value <= 64:
            sites.append((node, "const"))
    return sites


def _in_docstring_or_annotation(tree: ast.AST) -> set[int]:
    skip = set()
    for node in ast.walk(tree):
        for field in ("annotation", "returns"):
            ann = getattr(node, field, None)
            if ann is not None:
                skip |= {id(n) for n in ast.walk(ann)}
    return skip


def mutants(path: Path, rng: random.Random, count: int) -> list[dict]:
    """Up to ``count`` mutants of ``path``: ``{"file", "line", "edit", "source"}``."""
    text = path.read_text()
    tree = ast.parse(text)
    skip = _in_docstring_or_annotation(tree)
    sites = [(n, k) for n, k in _sites(tree) if id(n) not in skip]
    rng.shuffle(sites)
    out = []
    for node, kind in sites[:count]:
        if kind == "op":
            old = type(node.op)
            node.op = _SWAPS[old]()
            edit = f"{old.__name__} -> {type(node.op).__name__}"
            src = ast.unparse(tree)
            node.op = old()
        elif kind == "cmp":
            old = type(node.ops[0])
            node.ops[0] = _SWAPS[old]()
            edit = f"{old.__name__} -> {type(node.ops[0]).__name__}"
            src = ast.unparse(tree)
            node.ops[0] = old()
        else:
            old = node.value
            node.value = old + 1
            edit = f"{old} -> {old + 1}"
            src = ast.unparse(tree)
            node.value = old
        out.append({"file": str(path.relative_to(ROOT)), "line": node.lineno,
                    "edit": edit, "source": src})
    return out


def run_mutant(scratch: Path, mutant: dict, timeout: float) -> dict:
    target = scratch / mutant["file"]
    original = target.read_text()
    target.write_text(mutant["source"])
    start = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p",
                               "no:cacheprovider", *TESTS[mutant["file"]]],
                              cwd=scratch, capture_output=True, text=True, timeout=timeout)
        verdict = "survived" if proc.returncode == 0 else (
            "killed" if proc.returncode == 1 else f"killed (pytest exit {proc.returncode})")
    except subprocess.TimeoutExpired:
        verdict = "killed (timeout)"
    finally:
        target.write_text(original)
    return {k: mutant[k] for k in ("file", "line", "edit")} | {
        "verdict": verdict, "seconds": round(time.perf_counter() - start, 1)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mutants", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--file", action="append", default=None, choices=sorted(TESTS))
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    files = args.file or sorted(TESTS)
    per_file = max(1, -(-args.mutants // len(files)))
    pool = [m for f in files for m in mutants(ROOT / f, rng, per_file)]
    rng.shuffle(pool)
    pool = pool[:args.mutants]
    scratch = Path(tempfile.mkdtemp(prefix="rtl_gen-mutation-"))
    subprocess.run(["git", "worktree", "add", "--detach", str(scratch / "repo"), "HEAD"],
                   cwd=ROOT, check=True, capture_output=True)
    repo = scratch / "repo"
    rows = []
    try:
        # Each file's tests must pass on the file as the mutants are written (ast.unparse of
        # the unmutated tree), or a kill would mean nothing.
        for f in sorted({m["file"] for m in pool}):
            base = run_mutant(repo, {"file": f, "line": 0, "edit": "none",
                                     "source": ast.unparse(ast.parse((ROOT / f).read_text()))},
                              args.timeout)
            if base["verdict"] != "survived":
                print(f"{f}: its tests fail without a mutation ({base['verdict']}); its "
                      "mutants are left out", file=sys.stderr)
                pool = [m for m in pool if m["file"] != f]
        for i, m in enumerate(pool, 1):
            rows.append(run_mutant(repo, m, args.timeout))
            r = rows[-1]
            print(f"[{i}/{len(pool)}] {r['file']}:{r['line']} {r['edit']}: {r['verdict']} "
                  f"({r['seconds']} s)", file=sys.stderr, flush=True)
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(repo)], cwd=ROOT,
                       capture_output=True)
        shutil.rmtree(scratch, ignore_errors=True)
    killed = sum(r["verdict"].startswith("killed") for r in rows)
    score = 100 * killed / max(1, len(rows))
    survivors = [r for r in rows if r["verdict"] == "survived"]
    lines = [f"Mutation score: {killed} of {len(rows)} mutants killed ({score:.1f}%), seed "
             f"{args.seed}.", "", "| file | line | edit | verdict | s |", "|---|---|---|---|---|"]
    lines += [f"| {r['file']} | {r['line']} | {r['edit']} | {r['verdict']} | {r['seconds']} |"
              for r in rows]
    table = "\n".join(lines) + "\n"
    print(table)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "mutation.json").write_text(json.dumps(
        {"date": time.strftime("%Y-%m-%d"), "seed": args.seed, "killed": killed,
         "mutants": len(rows), "score %": round(score, 1), "rows": rows,
         "survivors": survivors}, indent=1) + "\n")
    (RESULTS / "mutation.md").write_text(table)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    sys.exit(main())
