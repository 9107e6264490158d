"""Millions of test vectors through a combinational unit, with a Verilator batch evaluator.

cocotb drives one vector per simulator call through Python, far too slow for exhaustive
and million-vector checks of a combinational unit (a float multiplier or adder).  Here the
unit's Verilog is compiled by Verilator together with a small generic C++ ``main`` that
reads operand pairs from a binary file, evaluates the model once per pair and writes the
results::

    component ──► Verilog ──► config_key(Verilator version, top, text, main, flags) ──► key
        sim_build/vectors-<top>-<key>/
            <top>.v, main.cpp           the sources
            obj/evaluator               the batch evaluator (verilator --cc --exe; make)
            rtl_gen_build.json          written last: the build is complete

    inputs.bin:  a[0] b[0] a[1] b[1] ...   little-endian uint64
    outputs.bin: o[0] o[1] ...             little-endian uint64

The build is cached in the same folder as :mod:`sim.runner`'s builds (``sim_build/`` or
``$RTL_GEN_SIM_BUILD``), keyed and locked the same way, so each design compiles once.
Ports ``a``, ``b`` and ``o`` of at most 64 bits each; the unit must be combinational (the
evaluator never toggles a clock).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from rtl_gen.numerics.floatops import FloatFormat
from sim.runner import (
    VERILATOR_ARGS,
    SimulatorError,
    build_lock,
    config_key,
    default_cache_dir,
    verilator_bin_dir,
    verilator_env,
    verilator_version,
    verilog_text,
)

__all__ = [
    "build_evaluator",
    "close_exponent_pairs",
    "edge_codes",
    "eval_binary_op",
    "random_finite",
    "subnormal_pairs",
]

#: The C++ driver: generic over the port types Verilator picks (8 to 64 bits).
MAIN_CPP = r"""
#include "Vtop.h"
#include "verilated.h"
#include <cstdint>
#include <cstdio>
#include <vector>

int main(int argc, char** argv) {
    if (argc != 3) { std::fprintf(stderr, "usage: evaluator IN OUT\n"); return 2; }
    std::FILE* in = std::fopen(argv[1], "rb");
    if (!in) { std::perror(argv[1]); return 1; }
    std::fseek(in, 0, SEEK_END);
    long bytes = std::ftell(in);
    std::fseek(in, 0, SEEK_SET);
    size_t pairs = (size_t)bytes / 16;
    std::vector<uint64_t> operands(2 * pairs), results(pairs);
    if (std::fread(operands.data(), 16, pairs, in) != pairs) { std::perror("read"); return 1; }
    std::fclose(in);
    VerilatedContext context;
    Vtop top{&context};
    for (size_t i = 0; i < pairs; ++i) {
        top.a = operands[2 * i];
        top.b = operands[2 * i + 1];
        top.eval();
        results[i] = (uint64_t)top.o;
    }
    top.final();
    std::FILE* out = std::fopen(argv[2], "wb");
    if (!out || std::fwrite(results.data(), 8, pairs, out) != pairs) {
        std::perror(argv[2]);
        return 1;
    }
    std::fclose(out);
    return 0;
}
"""

#: C++ optimisation: the units are small, a light -O1 builds fast and runs fast enough.
CXX_FLAGS = ("-O1",)

_STAMP = "rtl_gen_build.json"


def build_evaluator(verilog: str, toplevel: str, *, cache_dir: str | os.PathLike | None = None
                    ) -> Path:
    """The batch evaluator of ``verilog`` (module ``toplevel``), built once and cached.

    Verilator writes the C++ model and its makefile, then ``make`` compiles it with
    ``main.cpp``.  Verilator's run-time library (``verilated.o``, ``verilated_threads.o``,
    most of a build's time) is the same for every design: the first build saves it in
    ``vectors-runtime-<key>/`` and later builds copy it in before ``make`` (touched, so
    ``make`` finds it up to date).

    Returns
    -------
    Path
        The executable: ``evaluator IN OUT``.

    Raises
    ------
    SimulatorError
        When Verilator is missing, or the build fails (quoting the end of its log).
    """
    bin_dir = verilator_bin_dir()
    version = ".".join(map(str, verilator_version()))
    args = [*VERILATOR_ARGS, "--top-module", toplevel, "--prefix", "Vtop",
            "-CFLAGS", " ".join(CXX_FLAGS)]
    key = config_key(["vectors", version, toplevel, verilog, MAIN_CPP, args])
    cache = (Path(cache_dir) if cache_dir is not None else default_cache_dir()).resolve()
    build_dir = cache / f"vectors-{toplevel}-{key}"
    build_dir.mkdir(parents=True, exist_ok=True)
    runtime = cache / ("vectors-runtime-" +
                       config_key([version, str(bin_dir), CXX_FLAGS, MAKE_OPTS]))
    obj = build_dir / "obj"
    exe = obj / "evaluator"
    with build_lock(build_dir / ".lock"):
        if (build_dir / _STAMP).is_file() and exe.is_file():
            return exe
        (build_dir / f"{toplevel}.v").write_text(verilog)
        (build_dir / "main.cpp").write_text(MAIN_CPP)
        env = verilator_env()
        env["MAKEFLAGS"] = f"{env['MAKEFLAGS']} {' '.join(MAKE_OPTS)}"
        log = build_dir / "build.log"
        with open(log, "w") as f:
            _step([str(bin_dir / "verilator"), "--cc", "--exe", *args, "-Mdir", "obj",
                   "-o", "evaluator", f"{toplevel}.v", "main.cpp"], build_dir, env, f, log)
            restored = (runtime / _STAMP).is_file()
            if restored:
                for name in _RUNTIME_FILES:
                    shutil.copyfile(runtime / name, obj / name)
                    os.utime(obj / name)
            _step(["make", "-j", "2", "-f", "Vtop.mk"], obj, env, f, log)
        if not restored:
            _save_runtime(obj, runtime)
        (build_dir / _STAMP).write_text(json.dumps({"toplevel": toplevel, "verilator": version,
                                                     "args": args}, indent=1))
    return exe


#: Verilator's run-time library as built by its makefile, shared between designs.
_RUNTIME_FILES = tuple(f"{n}.{s}" for n in ("verilated", "verilated_threads") for s in "od")

#: Compiler optimisation for Verilator's makefile (the units are small and run briefly).
MAKE_OPTS = ("OPT_FAST=-O1", "OPT_SLOW=-O0", "OPT_GLOBAL=-O1")


def _step(cmd: list[str], cwd: Path, env: dict, log_file, log: Path) -> None:
    log_file.write(f"$ {' '.join(cmd)}\n")
    log_file.flush()
    rc = subprocess.run(cmd, cwd=cwd, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                        check=False).returncode
    if rc != 0:
        log_file.flush()
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise SimulatorError(f"{cmd[0]} failed (exit status {rc}) building the evaluator in "
                             f"{cwd}\n--- tail of {log} ---\n{tail}")


def _save_runtime(obj: Path, runtime: Path) -> None:
    runtime.mkdir(parents=True, exist_ok=True)
    with build_lock(runtime / ".lock"):
        if (runtime / _STAMP).is_file() or not all((obj / n).is_file() for n in _RUNTIME_FILES):
            return
        for name in _RUNTIME_FILES:
            shutil.copy2(obj / name, runtime / name)
        (runtime / _STAMP).write_text("complete\n")


def _port_width(component, name: str) -> int:
    try:
        width = len(getattr(component, name))
    except AttributeError:
        raise ValueError(f"{type(component).__name__} has no port {name!r}: a binary "
                         "operator needs ports a, b and o") from None
    if not 1 <= width <= 64:
        raise ValueError(f"port {name} of {type(component).__name__} is {width} bits wide; "
                         "the evaluator takes 1 to 64")
    return width


def _operand(x, width: int, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integers, not dtype {arr.dtype}")
    bad = np.zeros(arr.shape, dtype=bool)
    if arr.dtype.kind == "i":
        bad |= arr < 0
    if width < 64:
        bad |= (arr.astype(np.uint64) >> np.uint64(width)) != 0
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{int(bad.sum())} {name} value(s) do not fit port {name} "
                         f"({width} bits); first is {int(arr[first])} at index {first}")
    return arr.astype(np.uint64)


def eval_binary_op(component, a, b, *, name: str | None = None,
                   cache_dir: str | os.PathLike | None = None) -> np.ndarray:
    """Outputs ``o`` of a combinational ``component`` for the operand pairs ``(a, b)``.

    Parameters
    ----------
    component : amaranth.lib.wiring.Component
        A combinational unit with ports ``a``, ``b`` (inputs) and ``o`` (output), each at
        most 64 bits (e.g. :class:`rtl_gen.hw.fpu.FloatMul`).
    a, b : array_like of int
        Operands, broadcast against each other.
    name : str, optional
        The Verilog module name (default: the class name, lower case).
    cache_dir : path, optional
        Build cache root (default :func:`sim.runner.default_cache_dir`).

    Returns
    -------
    numpy.ndarray
        ``o`` for each pair, in the smallest unsigned type of its width, the broadcast shape.

    Raises
    ------
    ValueError
        For a component without those ports, or operands that do not fit them.
    SimulatorError
        When Verilator is missing, the build fails or the evaluator fails.
    """
    widths = {p: _port_width(component, p) for p in ("a", "b", "o")}
    av, bv = np.broadcast_arrays(_operand(a, widths["a"], "a"), _operand(b, widths["b"], "b"))
    toplevel = name or type(component).__name__.lower()
    exe = build_evaluator(verilog_text(component, toplevel), toplevel, cache_dir=cache_dir)
    pairs = np.empty((av.size, 2), dtype="<u8")
    pairs[:, 0], pairs[:, 1] = av.ravel(), bv.ravel()
    with tempfile.TemporaryDirectory(prefix="vectors-") as tmp:
        src, dst = Path(tmp) / "inputs.bin", Path(tmp) / "outputs.bin"
        pairs.tofile(src)
        run = subprocess.run([str(exe), str(src), str(dst)], capture_output=True, text=True,
                             check=False)
        if run.returncode != 0:
            raise SimulatorError(f"{exe} failed (exit status {run.returncode}): "
                                 f"{run.stderr.strip()}")
        out = np.fromfile(dst, dtype="<u8")
    if out.size != av.size:
        raise SimulatorError(f"{exe} wrote {out.size} results for {av.size} operand pairs")
    for t in (np.uint8, np.uint16, np.uint32, np.uint64):
        if widths["o"] <= np.iinfo(t).bits:
            return out.astype(t).reshape(av.shape)
    raise AssertionError(widths["o"])


# --------------------------------------------------------------------------- float operands


def _fields(fmt: FloatFormat, sign, exp, man) -> np.ndarray:
    """Codes from field arrays (``uint64``)."""
    return ((np.asarray(sign, dtype=np.uint64) << np.uint64(fmt.width - 1)) |
            (np.asarray(exp, dtype=np.uint64) << np.uint64(fmt.man_bits)) |
            np.asarray(man, dtype=np.uint64))


def _random_fields(fmt: FloatFormat, n: int, rng: np.random.Generator):
    sign = rng.integers(0, 2, n, dtype=np.uint64)
    man = rng.integers(0, 1 << fmt.man_bits, n, dtype=np.uint64, endpoint=False) \
        if fmt.man_bits else np.zeros(n, dtype=np.uint64)
    return sign, man


def random_finite(fmt: FloatFormat, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` uniformly random bit patterns of ``fmt``, the non-finite ones made finite.

    An IEEE code with the all-ones exponent gets its lowest exponent bit cleared.
    """
    hi = np.uint64((1 << fmt.width) - 1) if fmt.width < 64 else np.iinfo(np.uint64).max
    codes = rng.integers(0, hi, n, dtype=np.uint64, endpoint=True)
    if fmt.ieee:
        exp_mask = np.uint64(((1 << fmt.exp_bits) - 1) << fmt.man_bits)
        top = (codes & exp_mask) == exp_mask
        codes[top] ^= np.uint64(1 << fmt.man_bits)
    return codes.astype(fmt.dtype)


def close_exponent_pairs(fmt: FloatFormat, n: int, rng: np.random.Generator
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Finite pairs whose exponents differ by at most 2 (cancellation in a sum).

    A quarter of the pairs are ``(x, -x')`` with ``x'`` equal to ``x`` but for a few low
    mantissa bits (massive cancellation), another quarter ``(x, -x)`` exactly.
    """
    a = random_finite(fmt, n, rng).astype(np.uint64)
    exp = (a >> np.uint64(fmt.man_bits)) & np.uint64((1 << fmt.exp_bits) - 1)
    eb = np.clip(exp.astype(np.int64) + rng.integers(-2, 3, n), 0, fmt.max_exp_field)
    sign, man = _random_fields(fmt, n, rng)
    b = _fields(fmt, sign, eb, man)
    low = rng.integers(0, 1 << min(fmt.man_bits, 4), n, dtype=np.uint64) if fmt.man_bits \
        else np.zeros(n, dtype=np.uint64)
    neg = np.uint64(1 << (fmt.width - 1))
    quarter = rng.integers(0, 4, n)
    b = np.where(quarter == 0, (a ^ neg) ^ low, b)
    b = np.where(quarter == 1, a ^ neg, b)
    return a.astype(fmt.dtype), b.astype(fmt.dtype)


def subnormal_pairs(fmt: FloatFormat, n: int, rng: np.random.Generator
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Finite pairs with subnormal or tiny operands, and products near the subnormal range.

    ``a`` has an exponent field in ``0..3``, half the time 0; ``b`` is, by halves, also tiny
    (sums of subnormals, products that underflow) or has an exponent that puts ``a * b``
    around the smallest normal (products that round into or out of the subnormals).
    """
    sign_a, man_a = _random_fields(fmt, n, rng)
    ea = np.where(rng.integers(0, 2, n) == 0, 0, rng.integers(0, 4, n))
    a = _fields(fmt, sign_a, ea, man_a)
    sign_b, man_b = _random_fields(fmt, n, rng)
    tiny = rng.integers(0, 4, n)
    # a * b has the biased exponent ~ ea + eb - bias (+ the leading zeros of a subnormal a).
    target = fmt.bias - np.maximum(ea, 1) + rng.integers(-3, fmt.man_bits + 4, n)
    eb = np.where(rng.integers(0, 2, n) == 0, tiny,
                  np.clip(target, 0, fmt.max_exp_field))
    b = _fields(fmt, sign_b, eb, man_b)
    return a.astype(fmt.dtype), b.astype(fmt.dtype)


def edge_codes(fmt: FloatFormat) -> np.ndarray:
    """Edge-case codes of ``fmt``, both signs: zero, the smallest and largest subnormal, the
    smallest normal, one and its neighbours, the largest finite value and its neighbour,
    and for IEEE formats infinity, the canonical NaN and a signalling-pattern NaN."""
    m_bits = fmt.man_bits
    one = fmt.bias << m_bits if 0 < fmt.bias <= fmt.max_exp_field else 1 << m_bits
    mags = {0, 1, 2, 3, (1 << m_bits) - 1, 1 << m_bits, (1 << m_bits) + 1, one, one + 1,
            max(one - 1, 0), fmt.max_code, fmt.max_code - 1, (fmt.max_code >> 1) + 1}
    if fmt.ieee:
        mags |= {fmt.inf_code, fmt.inf_code | (1 << (m_bits - 1)), fmt.inf_code | 1}
    mags = np.array(sorted(m for m in mags if 0 <= m <= (1 << (fmt.width - 1)) - 1),
                    dtype=np.uint64)
    codes = np.concatenate([mags, mags | np.uint64(1 << (fmt.width - 1))])
    return codes.astype(fmt.dtype)
