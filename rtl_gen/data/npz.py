"""``.npz`` files: reading a user's (every array, or one clear error naming the file) and
writing one atomically."""

from __future__ import annotations

import os
import zipfile

import numpy as np

from ..errors import RtlGenError

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
        z = np.load(shown, allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise error(f"{shown}: a single .npy array, not an .npz archive of named arrays")
        with z:
            return {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise error(f"{shown}: no such file") from None
    except IsADirectoryError:
        raise error(f"{shown}: is a folder, not an .npz file") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise error(f"{shown}: not a readable .npz file ({e})") from None


def write_npz(path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` as the ``.npz`` file ``path`` through a temporary sibling renamed into
    place, so a reader never sees half a file and nothing is left behind on failure."""
    path = os.fspath(path)
    tmp = path + ".tmp.npz"
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
