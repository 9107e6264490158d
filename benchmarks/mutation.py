"""Mutation score: inject small faults into the hardware and numerics sources and count how
many the test suite notices.

Each mutant is one edit of one source file, made on its syntax tree (an arithmetic, bitwise
or comparison operator swapped, an integer constant moved by one, ``and``/``or`` swapped),
in a scratch copy of the repository at ``HEAD`` (``git worktree``: the committed tests); the
tests that cover that file (:data:`TESTS`: amaranth.sim and unit tests, no simulator build)
run against it, and the mutant is *killed* when they fail and *survives* when they pass.  A
mutant whose tests run past the timeout counts as killed (the fault hangs the design), and
is marked so.  ``--mutants N`` draws up to ``ceil(N / files)`` edit sites of each file at
random (``--seed``), so a file with fewer sites gives fewer, and keeps ``N`` of them.

A surviving mutant that :data:`EQUIVALENT` lists is reported as *equivalent*: one whose
program computes what the original computes on every input it is specified for (valid
weight codes, values in range), with the argument written beside it.  An entry names the
file, the source line (or lines) the edit is made in and that line as the mutant writes it,
whitespace collapsed (and, where a file has two such lines, the line after it), so it
follows the code when lines move and stops matching when the line changes; an entry whose
line is gone is reported.  Equivalent mutants are left out of the score:
``killed / (mutants - equivalent)``.  A listed mutant that the tests kill counts as killed,
and the report says that its entry is wrong.

Run ``python benchmarks/mutation.py [--mutants 60] [--seed 0] [--timeout 600]``; it prints
the score, the equivalent mutants with their reasons and the survivors (file, line, the
line before and after the edit) and writes
``benchmarks/results/mutation.json`` and ``.md`` (``--out NAME``: ``NAME.json`` and ``.md``).
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
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"

#: Source file -> the tests that cover it (fast: no Verilator build).
TESTS = {
    "rtl_gen/hw/pes/binary.py": ["tests/test_pe_sim.py", "-k", "binary or default_array"],
    "rtl_gen/hw/pes/ternary.py": ["tests/test_pe_sim.py", "-k", "ternary or default_array"],
    "rtl_gen/hw/pes/pot.py": ["tests/test_pe_sim.py", "-k", "pot and not apot"],
    "rtl_gen/hw/pes/apot.py": ["tests/test_pe_sim.py", "-k", "apot"],
    "rtl_gen/hw/pes/integer.py": ["tests/test_pe_sim.py", "-k", "int"],
    "rtl_gen/hw/pes/xnor.py": ["tests/test_pe_sim.py", "-k", "xnor"],
    "rtl_gen/hw/pes/bitplane.py": ["tests/test_pe_sim.py", "tests/test_bitplane.py"],
    "rtl_gen/hw/popcount.py": ["tests/test_popcount.py", "-m", "not slow"],
    "rtl_gen/hw/hese.py": ["tests/test_hese_hw.py"],
    "rtl_gen/hw/kit.py": ["tests/test_network_sim.py", "tests/test_engine_options.py",
                          "tests/test_planner.py::test_wide_input_port_in_amaranth_sim", "-m",
                          "not slow"],
    "rtl_gen/numerics/fixedpoint.py": ["tests/test_fixedpoint.py"],
    "rtl_gen/numerics/schemes.py": ["tests/test_schemes.py"],
    "rtl_gen/numerics/terms.py": ["tests/test_terms.py"],
    "rtl_gen/numerics/minifloat.py": ["tests/test_minifloat.py"],
    "rtl_gen/numerics/floatops.py": ["tests/test_floatops.py"],
    "rtl_gen/design/golden.py": ["tests/test_golden.py", "tests/test_design.py"],
}

class Equivalent(NamedTuple):
    """A reviewed equivalent mutant: ``before`` is the source line(s) the edit is made in,
    ``after`` the same as the mutant writes it (whitespace collapsed, as the report shows
    them); ``following``, where given, the next source line, which tells apart lines of the
    same text in one file."""

    file: str
    before: str
    after: str
    reason: str
    following: str = ""


#: Mutants reviewed as equivalent, each with its argument.
EQUIVALENT: list[Equivalent] = [
    Equivalent(
        "rtl_gen/hw/pes/ternary.py",
        "return xor_negate(code[1] & code[0], Mux(code[0], x, 0))",
        "return xor_negate(code[1] & code[1], Mux(code[0], x, 0))",
        "the sign differs only for code 10, where the magnitude Mux(code[0], x, 0) is 0: the "
        "original adds 0 + carry 0, the mutant ~0 + carry 1, which is 0 at any width; every "
        "code gives the same lane product"),
    Equivalent(
        "rtl_gen/hw/pes/pot.py",
        "c = code[:b - 1]",
        "c = code[:b + 1]",
        "c takes the sign bit too, 2**(b-1) more on negative codes; the shift is cut to "
        "bit_length(F) = b - 1 bits, where 2**(b-1) is 0, and c == 0 still only on code 0. "
        "They differ on negative zero alone, a code the numerics refuse (decode, baked "
        "weights, bundles): not an input the PE is specified for"),
    Equivalent(
        "rtl_gen/hw/pes/bitplane.py",
        "return Mux((prec == 0) | (prec > most), most - 1, prec - 1)",
        "return Mux((prec == 0) | (prec >= most), most - 1, prec - 1)",
        "the two differ only at prec == most, where both arms are most - 1"),
    Equivalent(
        "rtl_gen/numerics/minifloat.py",
        "down = np.clip(qe - q, 0, 60).astype(np.uint64) # 60: sig < 2**53 rounds to 0",
        "down = np.clip(qe - q, 0, 61).astype(np.uint64) # 60: sig < 2**53 rounds to 0",
        "sig < 2**53, so a right shift by 60 or by 61 leaves n = 0, rem = sig and "
        "half = 2**(down - 1) > sig: no rounding up either way (and no uint64 shift reaches "
        "64)"),
    Equivalent(
        "rtl_gen/numerics/floatops.py",
        "down = np.clip(sh, 0, cap)",
        "down = np.clip(sh, 1, cap)",
        "down differs only where sh <= 0, and there it is not used: kept takes n << up and "
        "round_up is masked by sh > 0"),
    Equivalent(
        "rtl_gen/numerics/floatops.py",
        "out = _round_pack(sign, sig, q, np.zeros(c.shape, dtype=bool), src_fmt.man_bits + 1,",
        "out = _round_pack(sign, sig, q, np.zeros(c.shape, dtype=bool), src_fmt.man_bits + 2,",
        "n_bits is only an upper bound on the significand's length: _bit_length searches up "
        "to it and cap stops shifts past it, so a bound one bit larger finds the same length "
        "and shifts the same"),
    Equivalent(
        "rtl_gen/numerics/floatops.py",
        "step = 1 << max(bits - 1, 0).bit_length()",
        "step = 1 << max(bits - 1, 1).bit_length()",
        "differs only for bits = 1 (a first step of 1 instead of none): n < 2**bits = 2 "
        "(every caller's n_bits bounds n) shifted right by 1 is 0, so that step finds "
        "nothing"),
    Equivalent(
        "rtl_gen/hw/kit.py",
        "s_rd = Signal(range(max(q, 2)))",
        "s_rd = Signal(range(max(q, 3)))",
        "the read pointer only holds 0..q - 1 (reset 0, back to 0 after q - 1): for q <= 2 "
        "the mutant's register has one more bit, always 0, and selects the same counter"),
    Equivalent(
        "rtl_gen/hw/kit.py",
        "w_col = Signal(range(max(src, 2)))",
        "w_col = Signal(range(max(src, 3)))",
        "the column counter only holds 0..src - 1 (reset 0, back to 0 at the last column): "
        "for src <= 2 the mutant's register has one more bit, always 0, and every address "
        "is the same"),
    Equivalent(
        "rtl_gen/hw/kit.py",
        "if rows > 1:",
        "if rows >= 1:",
        "in the drain's active branch: with rows == 1 col is j, and the mutant only wraps j "
        "to 0 after a tile's last result where the original leaves it at cols; j is set to 0 "
        "at every start and read only while active (ok = active & ...), so every drained "
        "result, its index and its flags are the same",
        "m.d.sync += col.eq(Mux(col == cols - 1, 0, col + 1))"),
    Equivalent(
        "rtl_gen/hw/kit.py",
        "if rows > 1:",
        "if rows >= 1:",
        "in the drain's start branch: with rows == 1 col is j, and j.eq(0) is already "
        "assigned there; the mutant assigns it again",
        "m.d.sync += col.eq(0)"),
    Equivalent(
        "rtl_gen/hw/popcount.py",
        "cins = [_Lane(r, Const(0, 1))",
        "cins = [_Lane(r, Const(0, 2))",
        "a registered carry-in lane's second operand, a constant 0, is made 2 bits wide: its "
        "value a ^ 0 is the same number, a stitch cell's LUT index (A + 2B + 4C + 8D, D = 1) "
        "moves past the 16 entries, where amaranth.sim reads 0 as the stitch INIT has "
        "there (P = 0), its generate index (A + 2B) is unchanged, and a CCU2C port takes the "
        "low bit"),
    Equivalent(
        "rtl_gen/hw/popcount.py",
        "result = _Count(result.value + (c.value if ecp5 else c), result.most + 1)",
        "result = _Count(result.value + (c.value if ecp5 else c), result.most - 1)",
        "the bound is dead: after this loop only result.value is read, and the sum's width "
        "comes from Amaranth's arithmetic, not from most"),
]

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


def _squash(text: str) -> str:
    return " ".join(text.split())


def _lines_of(lines: list[bytes], node: ast.AST) -> tuple[str, str, str]:
    """``(before, after, following)``: the source lines that hold ``node``, as written and
    with the node replaced by its (mutated) unparsed form, and the line after them,
    whitespace collapsed."""
    first, last = lines[node.lineno - 1], lines[node.end_lineno - 1]
    span = b"".join(lines[node.lineno - 1:node.end_lineno])
    after = (first[:node.col_offset].decode() + ast.unparse(node)
             + last[node.end_col_offset:].decode())
    following = _squash(lines[node.end_lineno].decode()) if node.end_lineno < len(lines) else ""
    return _squash(span.decode()), _squash(after), following


def equivalent_entry(mutant: dict) -> Equivalent | None:
    """The :data:`EQUIVALENT` entry that ``mutant`` matches, or ``None``."""
    for e in EQUIVALENT:
        if (e.file, e.before, e.after) == (mutant["file"], mutant["before"], mutant["after"]) \
                and e.following in ("", mutant["following"]):
            return e
    return None


def stale_entries() -> list[Equivalent]:
    """Entries whose line is no longer in their file (the code changed: review them)."""
    out = []
    for e in EQUIVALENT:
        path = ROOT / e.file
        text = _squash(path.read_text()) if path.exists() else ""
        if e.before not in text:
            out.append(e)
    return out


def mutants(path: Path, rng: random.Random, count: int) -> list[dict]:
    """Up to ``count`` mutants of ``path``: ``{"file", "line", "edit", "before", "after",
    "following", "source"}``."""
    text = path.read_text()
    lines = text.encode().splitlines(keepends=True)
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
            before, after, following = _lines_of(lines, node)
            node.op = old()
        elif kind == "cmp":
            old = type(node.ops[0])
            node.ops[0] = _SWAPS[old]()
            edit = f"{old.__name__} -> {type(node.ops[0]).__name__}"
            src = ast.unparse(tree)
            before, after, following = _lines_of(lines, node)
            node.ops[0] = old()
        else:
            old = node.value
            node.value = old + 1
            edit = f"{old} -> {old + 1}"
            src = ast.unparse(tree)
            before, after, following = _lines_of(lines, node)
            node.value = old
        out.append({"file": str(path.relative_to(ROOT)), "line": node.lineno,
                    "edit": edit, "before": before, "after": after, "following": following,
                    "source": src})
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
    return {k: mutant.get(k, "") for k in ("file", "line", "edit", "before", "after",
                                           "following")} | {
        "verdict": verdict, "seconds": round(time.perf_counter() - start, 1)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mutants", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--file", action="append", default=None, choices=sorted(TESTS))
    ap.add_argument("--out", default="mutation",
                    help="the results' name in benchmarks/results/ (NAME.json, NAME.md)")
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
            listed = " (listed as equivalent)" if equivalent_entry(r) else ""
            print(f"[{i}/{len(pool)}] {r['file']}:{r['line']} {r['edit']}: {r['verdict']}"
                  f"{listed} ({r['seconds']} s)", file=sys.stderr, flush=True)
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(repo)], cwd=ROOT,
                       capture_output=True)
        shutil.rmtree(scratch, ignore_errors=True)
    wrong = []
    for r in rows:
        entry = equivalent_entry(r)
        if entry is None:
            continue
        if r["verdict"] == "survived":
            r["verdict"], r["reason"] = "equivalent", entry.reason
        else:
            wrong.append(r)
    for r in wrong:
        print(f"{r['file']}:{r['line']} is listed as equivalent but {r['verdict']}: its "
              "entry in EQUIVALENT is wrong", file=sys.stderr)
    stale = stale_entries()
    for e in stale:
        print(f"{e.file}: the line of an EQUIVALENT entry is gone ({e.before!r}): review it",
              file=sys.stderr)
    killed = sum(r["verdict"].startswith("killed") for r in rows)
    equivalent = [r for r in rows if r["verdict"] == "equivalent"]
    survivors = [r for r in rows if r["verdict"] == "survived"]
    scored = len(rows) - len(equivalent)
    score = 100 * killed / max(1, scored)
    date = time.strftime("%Y-%m-%d")
    head = (f"Mutation score: {killed} of {scored} non-equivalent mutants killed "
            f"({score:.1f}%); {len(rows)} mutants, {len(equivalent)} equivalent, "
            f"{len(survivors)} survived; seed {args.seed}, {date}.")

    def cell(text: str) -> str:
        return "`" + text.replace("|", "\\|") + "`"

    lines = [head, "", "| file | line | edit | mutated line | verdict | s |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['file']} | {r['line']} | {r['edit']} | {cell(r['after'])} | "
              f"{r['verdict']} | {r['seconds']} |" for r in rows]
    if equivalent:
        lines += ["", "Equivalent mutants (left out of the score):", ""]
        lines += [f"- {r['file']}:{r['line']}, {cell(r['before'])} -> {cell(r['after'])}: "
                  f"{r['reason']}" for r in equivalent]
    if survivors:
        lines += ["", "Surviving mutants:", ""]
        lines += [f"- {r['file']}:{r['line']}, {cell(r['before'])} -> {cell(r['after'])}"
                  for r in survivors]
    if wrong:
        lines += ["", "Listed as equivalent but killed (the entry is wrong):", ""]
        lines += [f"- {r['file']}:{r['line']}, {cell(r['after'])}" for r in wrong]
    table = "\n".join(lines) + "\n"
    print(table)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(json.dumps(
        {"date": date, "seed": args.seed, "mutants": len(rows), "killed": killed,
         "equivalent": len(equivalent), "survived": len(survivors), "score %": round(score, 1),
         "score": "killed / (mutants - equivalent)", "rows": rows, "survivors": survivors,
         "equivalent_rows": equivalent, "wrongly_listed": wrong,
         "stale_entries": [e._asdict() for e in stale]}, indent=1) + "\n")
    (RESULTS / f"{args.out}.md").write_text(table)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    sys.exit(main())
