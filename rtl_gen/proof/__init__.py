"""Formal checks of the generated hardware with pip-installed tools only.

:mod:`~rtl_gen.proof.runner` turns a harness (an Amaranth elaboratable with ``Assert``,
``Assume`` and ``Cover`` statements) into RTLIL and an ``.sby`` file and runs ``yowasp-sby``
with the ``smtbmc yices`` engine; :mod:`~rtl_gen.proof.properties` holds the properties of the
PEs and dot-product units, the popcount tree, the HESE encoder and truncator, the float
multiplier and adder, the engine kit's credit FIFO, the term-revealing budget counter and the
host-link parser.
``python -m rtl_gen.proof`` runs them all and prints a table.
"""

from .runner import MODES, Check, ProofError, Result, missing_tools, run_check

__all__ = ["MODES", "Check", "ProofError", "Result", "missing_tools", "run_check"]
