"""The import layering of the package: numerics and models never import Amaranth, hardware
never imports the flow, the tasks or the CLI, and nothing imports upward.

Every ``import`` statement counts, those inside functions included (a lazy import is still a
dependency).  The layers, bottom to top; a module may import its own package and any layer
below its own, never a sibling package of its own layer or anything above::

    errors, devices            leaves: the error types and the FPGA device table
    files                      outputs written whole (temporary sibling, rename)
    numerics                   pure numpy arithmetic
    design                     what a network is and computes (golden and cycle models)
    data | bundle              data sets | networks on disk
    training | importer        float models, PTQ, QAT, MPWN search | QONNX graphs in
    protocol                   the host link: register map, frames, client
    hw                         Amaranth components
    flow | proof               synthesis, place and route, bitstreams | formal checks
    boards | sim               board files | cocotb testbenches and their runner
    tasks                      what each command does
    cli                        option parsing and printing
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Bottom to top; each entry is one layer, a set of sibling packages or modules.
LAYERS: list[set[str]] = [
    {"rtl_gen.errors", "rtl_gen.devices"},
    {"rtl_gen.files"},
    {"rtl_gen.numerics"},
    {"rtl_gen.design"},
    {"rtl_gen.data", "rtl_gen.bundle"},
    {"rtl_gen.training", "rtl_gen.importer"},
    {"rtl_gen.protocol"},
    {"rtl_gen.hw"},
    {"rtl_gen.flow", "rtl_gen.proof"},
    {"boards", "sim"},
    {"rtl_gen.tasks"},
    {"rtl_gen.cli"},
]
#: Layers that are pure numpy: no hardware description library in them.
NO_AMARANTH = {"rtl_gen.numerics", "rtl_gen.design", "rtl_gen.data", "rtl_gen.bundle",
               "rtl_gen.training", "rtl_gen.importer", "rtl_gen.errors", "rtl_gen.devices",
               "rtl_gen.files"}
#: The layer of ``rtl_gen`` itself (``from rtl_gen import __version__``): the bottom.
_PACKAGE_ROOT = "rtl_gen"


def _unit(module: str) -> str | None:
    """The layer entry a dotted module name belongs to, or None for a third-party module."""
    for layer in LAYERS:
        for unit in layer:
            if module == unit or module.startswith(unit + "."):
                return unit
    return None


def _rank(unit: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if unit in layer)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(source: str, module: str, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in ``source``, lazy ones included.

    ``from . import x`` yields ``package.x`` so that a sibling module imported by name is
    seen, not just its package.
    """
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if node.module is None or target in (_PACKAGE_ROOT,) or _unit(target) is None:
                # ``from . import golden`` / ``from rtl_gen import protocol``: the names
                # are modules
                found += [(node.lineno, f"{target}.{a.name}") for a in node.names]
            else:
                found.append((node.lineno, target))
    return found


def violations(source: str, module: str, is_package: bool = False) -> list[str]:
    """Every import of ``module`` (given as source) that breaks the layering."""
    me = _unit(module)
    assert me is not None, f"{module} is in no layer: add it to LAYERS"
    out = []
    for line, target in imports_of(source, module, is_package):
        top = target.split(".")[0]
        if me in NO_AMARANTH and top == "amaranth":
            out.append(f"{module}:{line} imports {target} (this layer is pure numpy)")
            continue
        unit = _unit(target)
        if unit is None or unit == me:
            continue
        if _rank(unit) > _rank(me):
            out.append(f"{module}:{line} imports {target}, a layer above {me}")
        elif _rank(unit) == _rank(me):
            out.append(f"{module}:{line} imports {target}, a sibling of {me} in its layer")
    return out


def _sources():
    for folder in ("rtl_gen", "sim", "boards"):
        yield from sorted((ROOT / folder).rglob("*.py"))


def test_every_module_keeps_the_layering():
    found = []
    for path in _sources():
        if _module_name(path) == _PACKAGE_ROOT:  # the package docstring and version only
            assert not imports_of(path.read_text(), _PACKAGE_ROOT, True)
            continue
        found += violations(path.read_text(), _module_name(path), path.name == "__init__.py")
    assert not found, "imports against the layering:\n" + "\n".join(found)


@pytest.mark.parametrize(("module", "source", "expected"), [
    ("rtl_gen.numerics.terms", "from amaranth import Signal", "pure numpy"),
    ("rtl_gen.design.golden", "def f():\n    import amaranth.lib.wiring", "pure numpy"),
    ("rtl_gen.hw.layer", "from ..flow.synth import synth", "a layer above rtl_gen.hw"),
    ("rtl_gen.hw.layer", "def f():\n    from rtl_gen.tasks import report", "a layer above"),
    ("rtl_gen.hw.pe", "from ..cli import main", "a layer above"),
    ("rtl_gen.design.network", "from ..bundle import read_bundle", "a layer above"),
    ("rtl_gen.numerics.schemes", "from .. import protocol", "a layer above"),
    ("rtl_gen.protocol", "from .hw.tr import K_OWN", "a layer above"),
    ("rtl_gen.flow.network_build", "from boards import get_board", "a layer above"),
    ("rtl_gen.bundle.integer", "from ..data.digits import digits", "a sibling"),
    ("sim.verify", "from boards import get_board", "a sibling"),
])
def test_the_check_catches_an_upward_import(module, source, expected):
    found = violations(source, module)
    assert len(found) == 1 and expected in found[0], found


@pytest.mark.parametrize(("module", "source"), [
    ("rtl_gen.hw.layer", "from ..design.golden import LayerTiming\nfrom amaranth import Signal"),
    ("rtl_gen.tasks.report", "from ..hw.verilog import to_verilog\nimport boards\nimport sim"),
    ("rtl_gen.design.golden", "from ..numerics.terms import term_reveal\nimport numpy"),
    ("rtl_gen.cli", "from .tasks import report\nfrom . import protocol"),
    ("rtl_gen.bundle.floating", "from .integer import _Reader"),
])
def test_the_check_allows_downward_imports(module, source):
    assert violations(source, module) == []
