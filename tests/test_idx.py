"""The IDX loader (MNIST, Fashion-MNIST): good files written here by hand, and malformed ones
refused with one message naming the file and what is wrong."""

import gzip
import struct

import pytest

from rtl_gen.data.idx import load_idx_pair, load_mnist, read_idx
from rtl_gen.errors import DataError, RtlGenError


def idx_bytes(code: int, dims, payload: bytes) -> bytes:
    """An IDX file, header spelled out byte by byte as in LeCun's description."""
    return bytes([0, 0, code, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) \
        + payload


def write(path, data: bytes, gz=False):
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


# Two 2x3 images and their labels; pixel values chosen by hand.
PIXELS = bytes([0, 1, 2, 3, 4, 255, 10, 20, 30, 40, 50, 60])
LABELS = bytes([7, 0])


@pytest.fixture
def pair(tmp_path):
    return (write(tmp_path / "img", idx_bytes(0x08, (2, 2, 3), PIXELS)),
            write(tmp_path / "lab", idx_bytes(0x08, (2,), LABELS)))


def test_reads_images_and_labels(pair):
    split = load_idx_pair(*pair)
    assert split.x_int.tolist() == [[0, 1, 2, 3, 4, 255], [10, 20, 30, 40, 50, 60]]
    assert split.y.tolist() == [7, 0]
    assert split.x[0, 5] == 1.0 and split.x[1, 0] == 10 / 255


@pytest.mark.parametrize("code,fmt,values", [
    (0x09, ">b", [-128, 5, 127]),
    (0x0B, ">h", [-300, 2, 32767]),
    (0x0C, ">i", [-70000, 0, 1 << 30]),
    (0x0D, ">f", [0.5, -2.25, 3.0]),
    (0x0E, ">d", [1e-300, -7.5, 2.0]),
])
def test_every_element_type_is_big_endian(tmp_path, code, fmt, values):
    payload = b"".join(struct.pack(fmt, v) for v in values)
    a = read_idx(write(tmp_path / "f", idx_bytes(code, (3,), payload)))
    assert a.tolist() == values and a.dtype.isnative


def test_gzip_files_and_the_standard_folder(tmp_path):
    for stem, dims, payload in (
            ("train-images-idx3-ubyte", (2, 2, 3), PIXELS),
            ("train-labels-idx1-ubyte", (2,), LABELS),
            ("t10k-images-idx3-ubyte", (1, 2, 3), PIXELS[:6]),
            ("t10k-labels-idx1-ubyte", (1,), bytes([9]))):
        write(tmp_path / (stem + ".gz"), idx_bytes(0x08, dims, payload), gz=True)
    train, test = load_mnist(tmp_path)
    assert train.x_int.shape == (2, 6) and test.x_int.shape == (1, 6)
    assert test.y.tolist() == [9] and test.x_int[0].tolist() == [0, 1, 2, 3, 4, 255]


BAD_FILES = [
    ("empty", b"", "truncated header"),
    ("bad-magic", b"\x01\x00\x08\x01" + struct.pack(">I", 1) + b"\x00", "bad magic number"),
    ("mnist-magic-little-endian", b"\x03\x08\x00\x00", "bad magic number"),
    ("unknown-dtype", idx_bytes(0x07, (1,), b"\x00"), "unknown element type code 0x07"),
    ("no-dims", bytes([0, 0, 8, 0]), "0 dimensions"),
    ("short-dims", bytes([0, 0, 8, 3]) + struct.pack(">I", 2), "truncated header"),
    ("truncated-data", idx_bytes(0x08, (2, 2, 3), PIXELS[:-1]), "truncated data"),
    ("truncated-int32", idx_bytes(0x0C, (2,), b"\x00" * 7), "needs 8 bytes"),
    ("trailing", idx_bytes(0x08, (2,), b"\x00\x01\x02"), "1 trailing bytes"),
    ("bad-gzip", b"\x1f\x8b\x08\x00garbage", "gzip"),
]


@pytest.mark.parametrize("case,data,words", BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_malformed_files_are_named(tmp_path, case, data, words):
    path = write(tmp_path / case, data)
    with pytest.raises(DataError) as e:
        read_idx(path)
    message = str(e.value)
    assert message.startswith(f"{path}: ") and words in message, message
    assert isinstance(e.value, RtlGenError)  # the CLI turns it into one line, exit 1


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_idx(tmp_path / "nope")
    with pytest.raises(DataError, match="no such folder"):
        load_mnist(tmp_path / "nope")
    with pytest.raises(DataError, match="train-images-idx3-ubyte"):
        load_mnist(tmp_path)


@pytest.mark.parametrize("which,data,words", [
    ("img", idx_bytes(0x08, (12,), PIXELS), "images must be uint8 with 3 dimensions"),
    ("img", idx_bytes(0x0C, (1, 1, 3), b"\x00" * 12), "not int32"),
    ("lab", idx_bytes(0x08, (2, 1), LABELS), "labels must be uint8 with 1 dimension"),
    ("lab", idx_bytes(0x08, (3,), LABELS + b"\x01"), "3 labels for the 2 images"),
    ("lab", idx_bytes(0x08, (2,), bytes([1, 10])), "label 10 at index 1"),
])
def test_images_and_labels_must_match(pair, which, data, words):
    img, lab = pair
    target = img if which == "img" else lab
    write(target, data)
    with pytest.raises(DataError) as e:
        load_idx_pair(img, lab)
    assert str(e.value).startswith(f"{target}: ") and words in str(e.value), str(e.value)
