"""The state of one ``fit``/``partial_fit`` call of ``CrustClassifier``: data, order, coreset.

Kept off the net's pickled state: the net drops it at ``on_train_end``. What must outlive a call
(the last coreset, so that ``select_every`` holds across ``partial_fit`` calls) is a small
:class:`Coreset`, keyed by the training split it was selected on.
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import Sampler, Subset

from ._batches import InMemory
from ._mixup import Partners


class SubsetSampler(Sampler):
    """Yields the positions of the current training subset, in a fresh order every epoch.

    The run changes ``positions`` between epochs; the iterator asks for one order per epoch.
    The order is kept so that the net knows which positions each batch holds (batches are
    consecutive slices of it, whatever the number of workers).
    """

    def __init__(self, n: int, rng: np.random.Generator, shuffle: bool = True):
        self.positions = np.arange(n)
        self.rng = rng
        self.shuffle = shuffle
        self.order = self.positions
        self.cursor = 0

    def __len__(self) -> int:
        return len(self.positions)

    def new_order(self) -> np.ndarray:
        """Draw the order of a new epoch (one permutation of the generator per epoch)."""
        self.order = (self.rng.permutation(self.positions) if self.shuffle
                      else np.sort(self.positions))
        self.cursor = 0
        return self.order

    def __iter__(self):
        return iter(self.new_order().tolist())

    def take(self, size: int) -> np.ndarray:
        """Positions of the next batch of ``size`` examples."""
        positions = self.order[self.cursor:self.cursor + size]
        self.cursor += size
        return positions


class Coreset(NamedTuple):
    """A selected coreset in positions of the training split, and what it was selected on."""

    positions: np.ndarray  # sorted
    weights: np.ndarray  # dense (n_train,) float32, 0 outside the coreset
    partners: Partners | None
    key: str  # training split fingerprint (size and labels)
    # (n_train,) bool: the medoids, when they train with another criterion than the rest
    selected: np.ndarray | None = None


def split_key(fit_index: np.ndarray, y: np.ndarray | None) -> str:
    """Fingerprint of a training split: its rows of ``X`` and its labels (when known)."""
    digest = hashlib.sha1(np.ascontiguousarray(fit_index, dtype=np.int64).tobytes())
    if y is not None:
        digest.update(np.ascontiguousarray(y, dtype=np.int64).tobytes())
    return f"{len(fit_index)}:{digest.hexdigest()}"


class Run:
    """One call to ``fit``/``partial_fit``: the training split, its sampler, the coreset.

    ``data`` is set when the split's tensors are in memory (:mod:`sk_crust._batches`): then
    batches, labels and mixup partners are gathered by index; otherwise through ``dataset`` and
    ``collate_fn`` one example at a time, as skorch does.
    """

    def __init__(self, dataset, sampler: SubsetSampler, collate_fn, data: InMemory | None):
        self.dataset = dataset
        self.sampler = sampler
        self.collate_fn = collate_fn
        self.data = data
        self.n = len(dataset)
        self.fit_index = fit_indices(dataset)
        # Noisy labels by position: known at once for in-memory data, else after a feature pass.
        self.y: np.ndarray | None = (None if data is None or data.y is None
                                     else data.y[torch.from_numpy(data.rows)].numpy())
        self.coreset: Coreset | None = None
        # Mixup partners of the epoch's order, drawn at its first batch.
        self.partners: np.ndarray | None = None

    @property
    def key(self) -> str:
        return split_key(self.fit_index, self.y)

    def use_all(self) -> None:
        self.sampler.positions = np.arange(self.n)
        self.coreset = None

    def use(self, coreset: Coreset) -> None:
        self.sampler.positions = coreset.positions
        self.coreset = coreset

    def gather_X(self, positions: np.ndarray) -> torch.Tensor:
        """The inputs of the given training positions, as one batch."""
        if self.data is not None:
            return self.data.take(positions)
        from skorch.dataset import unpack_data

        X, _ = unpack_data(self.collate_fn([self.dataset[int(p)] for p in positions]))
        return X

    def epoch_samples(self) -> tuple[np.ndarray, np.ndarray]:
        """Indices (into the data passed to fit) and weights of this epoch's training examples."""
        positions = self.sampler.positions
        weights = (np.ones(len(positions)) if self.coreset is None
                   else self.coreset.weights[positions].astype(np.float64))
        return self.fit_index[positions], weights


def fit_indices(dataset) -> np.ndarray:
    """Map positions in the training split to rows of the data passed to ``fit``.

    skorch's ``ValidSplit`` returns ``torch.utils.data.Subset`` objects (possibly nested).
    """
    index = np.arange(len(dataset))
    while isinstance(dataset, Subset):
        index = np.asarray(dataset.indices)[index]
        dataset = dataset.dataset
    return index
