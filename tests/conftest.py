"""Shared fixtures: the repository root on ``sys.path`` so the ``sim`` testbenches import."""

from __future__ import annotations

import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)
