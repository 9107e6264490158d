"""``.npz`` files: reading a user's (every array, or one clear error naming the file) and
writing one atomically."""

from __future__ import annotations

import io
import os
import zipfile
import zlib

import numpy as np

from ..errors import RtlGenError
from ..files import write_file

__all__ = ["read_npz", "write_npz"]


def read_npz(path, error: type[RtlGenError] = RtlGenError) -> dict[str, np.ndarray]:
    """Every array of the ``.npz`` file ``path`` (no pickled objects), by name.

    Raises
    ------
    RtlGenError
        (``error``, a subclass of it) naming the file: missing, a folder, not a zip archive of
        ``.npy`` arrays (an ``.npy`` file given instead, say), or unreadable.
    """
    shown = os.fspath(path)
    try:
        with open(shown, "rb") as f:  # numpy's own open would leak on a damaged archive
            return _read(f, shown, error)
    except FileNotFoundError:
        raise error(f"{shown}: no such file") from None
    except IsADirectoryError:
        raise error(f"{shown}: is a folder, not an .npz file") from None
    except OSError as e:
        raise error(f"{shown}: cannot be read: {e.strerror or e}") from None


def _read(f, shown: str, error: type[RtlGenError]) -> dict[str, np.ndarray]:
    head = f.read(6)
    f.seek(0)
    if head == b"\x93NUMPY":
        raise error(f"{shown}: a single .npy array, not an .npz archive of named arrays")
    if not head.startswith(b"PK"):
        raise error(f"{shown}: not a readable .npz file (it is no zip archive of .npy "
                    "arrays, as numpy.savez writes)")
    try:
        with np.load(f, allow_pickle=False) as z:
            out = {}
            for k in z.files:
                try:
                    out[k] = z[k]
                except ValueError as e:
                    if "pickle" not in str(e):
                        raise
                    raise error(f"{shown}: not a readable .npz file: array {k!r} holds "
                                "Python objects (pickled), not plain numbers") from None
            return out
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, zlib.error,
            NotImplementedError) as e:
        raise error(f"{shown}: not a readable .npz file ({e})") from None


def write_npz(path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` as the ``.npz`` file ``path`` whole (:func:`rtl_gen.files.write_file`:
    a temporary sibling renamed into place, so a reader never sees half a file and nothing is
    left behind on failure; an :class:`~rtl_gen.errors.OutputError` names the path)."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    write_file(path, buf.getvalue())
