"""Callbacks for :class:`~sk_crust.CrustClassifier`.

They read the coreset through the net's public view, :meth:`CrustClassifier.training_samples`
(rows of the training data and weights of the current epoch), so a new diagnostic is a callback
written against that method alone.
"""

from __future__ import annotations

import numpy as np
from skorch.callbacks import Callback
from skorch.utils import to_numpy

__all__ = ["CoresetCleanFraction"]


class CoresetCleanFraction(Callback):
    """Record, each epoch, the fraction of selected training examples whose label is correct.

    For benchmarks with synthetic noise, where the true labels are known. Writes
    ``coreset_clean_fraction`` (over the coreset's medoids, ``coreset_indices_``) and
    ``coreset_weighted_clean_fraction`` (over every example the epoch trains on, each counted
    with its weight: with ``unselected_weight > 0`` the examples outside the coreset count at
    their lower weight) to every history row; during warm-up both are the clean fraction of the
    whole training split.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels, aligned with the ``X``, ``y`` passed to ``fit``.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_crust import CrustClassifier, CoresetCleanFraction
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 5)).astype(np.float32)
    >>> y_true = (X[:, 0] > 0).astype(int)
    >>> y = np.where(rng.random(200) < 0.2, 1 - y_true, y_true)
    >>> net = CrustClassifier(max_epochs=3, warmup_epochs=1, train_split=None, verbose=0,
    ...                       callbacks=[CoresetCleanFraction(y_true)], random_state=0)
    >>> clean = net.fit(X, y).history[:, "coreset_clean_fraction"]
    >>> len(clean), bool(clean[0] == np.mean(y == y_true))
    (3, True)
    """

    def __init__(self, y_true):
        self.y_true = y_true

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        self.y_noisy_ = None if y is None else to_numpy(y)
        self.y_true_ = np.asarray(self.y_true)
        if self.y_noisy_ is not None and len(self.y_noisy_) != len(self.y_true_):
            raise ValueError(f"CoresetCleanFraction got {len(self.y_true_)} true labels for "
                             f"{len(self.y_noisy_)} training labels")

    def on_epoch_begin(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        samples = net.training_samples() if hasattr(net, "training_samples") else None
        if samples is None or self.y_noisy_ is None:
            return
        rows, weights = samples
        labels = np.asarray(net.classes_)[self.y_noisy_[rows]]
        clean = labels == self.y_true_[rows]
        net.history.record("coreset_weighted_clean_fraction",
                           float((weights * clean).sum() / max(weights.sum(), 1e-300)))
        medoids = getattr(net, "coreset_indices_", None)
        if medoids is not None and len(medoids) < len(rows):
            # Examples outside the coreset train too, down-weighted: count the medoids.
            in_coreset = np.isin(rows, medoids)
            if in_coreset.any():
                clean = clean[in_coreset]
        net.history.record("coreset_clean_fraction", float(clean.mean()))
