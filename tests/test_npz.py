"""rtl_gen.data.npz: a user's .npz file, or one line naming the file and what is wrong."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from rtl_gen.cli import main
from rtl_gen.data.npz import read_npz
from rtl_gen.errors import ModelError, RtlGenError
from rtl_gen.training.defaults import WEIGHTS_DIR


def test_every_array_by_name(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.arange(6).reshape(2, 3), y=np.array([1, 0]))
    arrays = read_npz(tmp_path / "d.npz")
    assert sorted(arrays) == ["x", "y"]
    assert arrays["x"].tolist() == [[0, 1, 2], [3, 4, 5]] and arrays["y"].tolist() == [1, 0]


@pytest.mark.parametrize(("make", "expected"), [
    (lambda p: np.save(p, np.zeros(3)), "a single .npy array, not an .npz archive"),
    (lambda p: None, "no such file"),
    (lambda p: p.mkdir(), "is a folder"),
    (lambda p: p.write_bytes(b"not a zip archive"), "not a readable .npz file"),
    (lambda p: np.savez(p, x=np.array([object()], dtype=object)), "not a readable .npz file"),
])
def test_a_bad_file_is_one_error_naming_it(tmp_path, make, expected):
    path = tmp_path / "bad.npz"
    make(path)
    if not path.exists() and (tmp_path / "bad.npz.npy").exists():  # np.save adds .npy
        (tmp_path / "bad.npz.npy").rename(path)
    with pytest.raises(ModelError) as e:
        read_npz(path, ModelError)
    assert str(e.value).startswith(f"{path}: ") and expected in str(e.value)
    with pytest.raises(RtlGenError, match=expected):
        read_npz(path)


@pytest.mark.parametrize("command", [
    ["quantize", "--model", "{npy}", "--scheme", "int8", "--out", "{out}"],
    ["report", "--bundle", "{weights}/digits-int8", "--data", "{npy}"],
])
def test_the_cli_answers_an_npy_with_one_line(tmp_path, command):
    npy = tmp_path / "model.npy"
    np.save(npy, np.zeros((2, 2)))
    args = [a.format(npy=npy, out=tmp_path / "out", weights=WEIGHTS_DIR) for a in command]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    assert result.stderr.strip().splitlines() == [
        f"Error: {npy}: a single .npy array, not an .npz archive of named arrays"]
    assert not (tmp_path / "out").exists()
