"""MNIST and Fashion-MNIST from their standard IDX files, given by path (no download).

The IDX format (LeCun's, used by both data sets): a big-endian header, then the array::

    bytes 0-1   0x00 0x00
    byte  2     element type: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32,
                0x0E float64
    byte  3     number of dimensions n
    4 * n       each dimension, uint32 big-endian
    rest        the elements, big-endian, C order

Files may be gzip-compressed (as distributed: ``train-images-idx3-ubyte.gz``); they are
recognised by their content, not their name.  Images must be ``uint8`` ``(n, rows, cols)``,
labels ``uint8`` ``(n,)`` with values ``0..9``.  Anything else is refused with a
:class:`~rtl_gen.errors.DataError` naming the file and what is wrong (bad magic, unknown type
code, truncated data, trailing bytes, wrong dimensions, an image/label count mismatch).

The integer network sees each pixel as an 8-bit unsigned code with scale ``1/255`` and the
float model sees ``pixel / 255``, so input quantization is exact *(our choice, as for the
8x8 digits)*.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from ..errors import DataError
from .digits import Split

__all__ = ["IDX_INPUT_BITS", "IDX_INPUT_SCALE", "IDX_NAMES", "load_idx_pair", "load_mnist",
           "read_idx"]

IDX_INPUT_BITS = 8
IDX_INPUT_SCALE = 1 / 255
_DTYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"),
           0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
#: The file names of MNIST and Fashion-MNIST (both use the same), without ``.gz``.
IDX_NAMES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
_MAX_BYTES = 1 << 31  # far above the 47 MB of MNIST's training images


def read_idx(path) -> np.ndarray:
    """Read one IDX file (plain or gzip) into a native-endian array.

    Raises
    ------
    DataError
        ``<path>: <what is wrong>`` for a missing or unreadable file, a bad magic number, an
        unknown element type, truncated data or trailing bytes.
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            raw = f.read(_MAX_BYTES + 1)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, ValueError) as e:
            raise DataError(f"{path}: not a readable gzip file ({e})") from None
    if len(raw) > _MAX_BYTES:
        raise DataError(f"{path}: larger than {_MAX_BYTES} bytes")
    if len(raw) < 4:
        raise DataError(f"{path}: truncated header ({len(raw)} bytes; an IDX file starts with "
                        "4 bytes of magic number)")
    if raw[:2] != b"\x00\x00":
        raise DataError(f"{path}: bad magic number 0x{raw[:4].hex()} (an IDX file starts with "
                        "two zero bytes)")
    code, ndim = raw[2], raw[3]
    if code not in _DTYPES:
        raise DataError(f"{path}: unknown element type code 0x{code:02x} (expected one of "
                        f"{', '.join(f'0x{c:02x}' for c in _DTYPES)})")
    if ndim == 0:
        raise DataError(f"{path}: has 0 dimensions")
    head = 4 + 4 * ndim
    if len(raw) < head:
        raise DataError(f"{path}: truncated header: {ndim} dimensions need {head} bytes, the "
                        f"file has {len(raw)}")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = _DTYPES[code]
    want = int(np.prod(shape, dtype=object)) * dtype.itemsize
    have = len(raw) - head
    if have < want:
        raise DataError(f"{path}: truncated data: shape {shape} of {dtype.name} needs {want} "
                        f"bytes after the header, the file has {have}")
    if have > want:
        raise DataError(f"{path}: {have - want} trailing bytes after the data of shape {shape}")
    a = np.frombuffer(raw, dtype=dtype, count=want // dtype.itemsize, offset=head)
    return a.reshape(shape).astype(dtype.newbyteorder("="))


def load_idx_pair(images, labels) -> Split:
    """One split of MNIST or Fashion-MNIST from an image file and a label file.

    Returns a :class:`~rtl_gen.data.digits.Split` with ``x_int`` the pixels (``(n, rows*cols)``
    int64, 0..255), ``x = x_int / 255`` and ``y`` the labels.

    Raises
    ------
    DataError
        Naming the file, for anything :func:`read_idx` refuses, images that are not
        ``uint8`` ``(n, rows, cols)``, labels that are not ``uint8`` ``(n,)`` in ``0..9``, or
        a different number of images and labels.
    """
    img = read_idx(images)
    lab = read_idx(labels)
    if img.dtype != np.uint8 or img.ndim != 3:
        raise DataError(f"{os.fspath(images)}: images must be uint8 with 3 dimensions (n, "
                        f"rows, cols), not {img.dtype.name} with shape {img.shape}")
    if lab.dtype != np.uint8 or lab.ndim != 1:
        raise DataError(f"{os.fspath(labels)}: labels must be uint8 with 1 dimension (n,), "
                        f"not {lab.dtype.name} with shape {lab.shape}")
    if len(img) != len(lab):
        raise DataError(f"{os.fspath(labels)}: {len(lab)} labels for the {len(img)} images of "
                        f"{os.fspath(images)}")
    if lab.size and lab.max() > 9:
        i = int(np.argmax(lab > 9))
        raise DataError(f"{os.fspath(labels)}: label {int(lab[i])} at index {i} is not a "
                        "class 0..9")
    x_int = img.reshape(len(img), -1).astype(np.int64)
    return Split(x_int=x_int, x=x_int * IDX_INPUT_SCALE, y=lab.astype(np.int64))


def _find(folder: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx")):
        if (folder / name).is_file():
            return folder / name
    raise DataError(f"{folder}: no file {stem} or {stem}.gz (the MNIST / Fashion-MNIST "
                    "file names)")


def load_mnist(folder) -> tuple[Split, Split]:
    """``(train, test)`` of MNIST or Fashion-MNIST from a folder holding the four standard
    files (``train-images-idx3-ubyte[.gz]``, ``train-labels-idx1-ubyte[.gz]``,
    ``t10k-images-idx3-ubyte[.gz]``, ``t10k-labels-idx1-ubyte[.gz]``).

    Raises
    ------
    DataError
        For a missing folder or file, or as :func:`load_idx_pair`.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder")
    out = []
    for part in ("train", "test"):
        img, lab = (_find(folder, s) for s in IDX_NAMES[part])
        out.append(load_idx_pair(img, lab))
    if out[0].x_int.shape[1] != out[1].x_int.shape[1]:
        raise DataError(f"{folder}: train images have {out[0].x_int.shape[1]} pixels, test "
                        f"images {out[1].x_int.shape[1]}")
    return out[0], out[1]
