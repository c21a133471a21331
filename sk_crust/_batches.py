"""Batches of in-memory data gathered by index arrays: the fast data path of ``CrustClassifier``.

skorch's default data path (``DataLoader`` over ``skorch.dataset.Dataset``) indexes one example at
a time in Python and stacks them with ``default_collate``: for tabular data that costs more than
the network's forward and backward passes (a profile of a 30-epoch fit on letter showed 825,000
``Dataset.__getitem__`` calls dominating). Most users pass arrays or tensors that already sit in
memory, so here a batch is one fancy-indexing operation ``X[rows]``, ``y[rows]``.

The fast path is taken only where it provably yields what skorch's path would: the dataset is
skorch's own ``Dataset`` (not a subclass, which may override ``transform``) over a dense NumPy
array or tensor, possibly inside ``torch.utils.data.Subset`` objects (what ``ValidSplit``
returns), and the iterator is torch's plain ``DataLoader`` with no parameter the fast path does
not honour. Anything else (custom datasets, ``collate_fn``, ``num_workers``, samplers, pandas or
sparse ``X``) goes through skorch's ``DataLoader`` unchanged. A batch holds the same examples, in
the same order, with the same dtypes as ``default_collate`` would produce.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
import torch
from skorch.dataset import Dataset
from torch.utils.data import DataLoader, Subset

#: ``iterator_*__`` parameters the fast path honours; any other one selects skorch's path.
FAST_ITERATOR_PARAMS = frozenset({"batch_size", "shuffle", "drop_last"})


class InMemory(NamedTuple):
    """Dense tensors behind a (possibly nested) ``Subset`` of skorch's ``Dataset``.

    ``rows[i]`` is the row of ``X``/``y`` that holds the ``i``-th example of the dataset.
    ``y`` is ``None`` for prediction data (skorch then yields a placeholder target).
    """

    X: torch.Tensor
    y: torch.Tensor | None
    rows: np.ndarray
    contiguous: bool  # rows == arange(len): batches are views, not copies

    def take(self, positions: np.ndarray) -> torch.Tensor:
        """The ``X`` rows of the given positions of the dataset, as one batch."""
        return self.X.index_select(0, torch.from_numpy(self.rows[positions]))


def in_memory(dataset) -> InMemory | None:
    """The dense tensors behind ``dataset`` when batches can be gathered by index, else None."""
    rows = None
    while isinstance(dataset, Subset):
        index = np.asarray(dataset.indices, dtype=np.intp)
        rows = index if rows is None else index[rows]
        dataset = dataset.dataset
    if type(dataset) is not Dataset:  # noqa: E721 (a subclass may override transform)
        return None
    X, y = dataset.X, dataset.y
    if not _dense(X) or not (y is None or _dense(y)) or len(X) != len(dataset):
        return None
    contiguous = rows is None
    if rows is None:
        rows = np.arange(len(dataset), dtype=np.intp)
    # torch.as_tensor shares the NumPy buffer: no copy of the data.
    return InMemory(torch.as_tensor(X), None if y is None else torch.as_tensor(y), rows,
                    contiguous)


def _dense(a) -> bool:
    if isinstance(a, torch.Tensor):
        return a.layout == torch.strided and a.device.type == "cpu"
    return (isinstance(a, np.ndarray) and a.ndim >= 1 and a.dtype.kind in "biuf"
            and a.dtype.isnative)


def fast_path_kwargs(iterator, kwargs: dict) -> bool:
    """Whether an ``iterator_train``/``iterator_valid`` setting can be served by index batches."""
    return iterator is DataLoader and set(kwargs) <= FAST_ITERATOR_PARAMS


class IndexBatches:
    """Training batches over a sampler's order of positions, like ``DataLoader(sampler=...)``.

    The sampler draws the epoch's order exactly as it does for a ``DataLoader`` (one call of
    ``__iter__`` per epoch), and batches are consecutive slices of that order, as
    ``BatchSampler`` makes them.
    """

    def __init__(self, data: InMemory, sampler, batch_size: int, drop_last: bool = False):
        self.data = data
        self.sampler = sampler
        self.batch_size = int(batch_size)
        self.drop_last = bool(drop_last)

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        rows = torch.from_numpy(self.data.rows[self.sampler.new_order()])
        stop = len(self) * self.batch_size
        for start in range(0, min(stop, len(rows)), self.batch_size):
            batch = rows[start:start + self.batch_size]
            # index_select: a third of the time of X[batch] for a batch of 128 rows.
            yield self.data.X.index_select(0, batch), self.data.y.index_select(0, batch)


class SliceBatches:
    """Evaluation batches in dataset order, like a non-shuffling ``DataLoader``.

    Without a ``Subset`` a batch is one contiguous slice of ``X`` (copied, so that a module that
    works in place cannot change the caller's data). A dataset without targets yields skorch's
    placeholder (a float tensor of zeros of shape ``(batch, 1)``).
    """

    def __init__(self, data: InMemory, batch_size: int, drop_last: bool = False):
        self.data = data
        self.batch_size = int(batch_size)
        self.drop_last = bool(drop_last)

    def __len__(self) -> int:
        n = len(self.data.rows)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        data, size = self.data, self.batch_size
        for start in range(0, len(self) * size, size):
            stop = min(start + size, len(data.rows))
            if data.contiguous:
                # A copy, as default_collate makes: a module that works on its input in place
                # must not change the caller's X.
                Xb = data.X[start:stop].clone()
                yb = None if data.y is None else data.y[start:stop]
            else:
                index = torch.from_numpy(data.rows[start:stop])
                Xb = data.X.index_select(0, index)
                yb = None if data.y is None else data.y.index_select(0, index)
            yield Xb, (torch.zeros(stop - start, 1) if yb is None else yb)
