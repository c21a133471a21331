"""Mixup variants of CRUST's coreset epochs: one class each, one registry.

On coreset epochs each selected example may be mixed with a *partner*: ``x = lam * x_i + (1 - lam)
* x_partner``, one ``lam ~ Beta(a, b)`` per batch. The variants differ in where the partner comes
from and whether the labels are mixed too (DESIGN §3):

* ``"cluster"`` (the paper): a random member of the medoid's cluster; labels mixed.
* ``"class"`` (the official code's ``fetch``): a random training example of the same noisy label,
  from all training data; labels not mixed.
* ``"none"``: the raw rows.

A new variant is one subclass of :class:`Mixup` and one entry in :data:`MIXUPS`; the classifier
reads nothing else.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch


class Groups:
    """Draw a random member of given groups (clusters or classes), vectorised."""

    def __init__(self, group_of: np.ndarray):
        self.members = np.argsort(group_of, kind="stable")
        self.counts = np.bincount(group_of)
        self.starts = np.cumsum(self.counts) - self.counts

    def draw(self, groups: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return self.members[self.starts[groups] + rng.integers(0, self.counts[groups])]


class Partners(NamedTuple):
    """Where the partners of one coreset come from: ``groups.draw(group_of[positions])``."""

    groups: Groups
    group_of: np.ndarray  # by training position


class BatchPlan(NamedTuple):
    """What a training batch needs beyond its data (drawn once per batch)."""

    positions: np.ndarray  # of the batch's examples in the training split
    partners: np.ndarray | None  # positions of their mixup partners
    weights: torch.Tensor
    partner_X: torch.Tensor | None
    partner_y: torch.Tensor | None  # only when the labels are mixed too
    lam: float
    trusted: torch.Tensor | None = None  # bool: the batch's medoids, with their own criterion


class Mixup:
    """No mixup: coreset epochs feed the selected rows as they are (``mixup="none"``)."""

    name = "none"
    mixes_labels = False

    def partners(self, medoids: np.ndarray, clusters: np.ndarray,
                 y: np.ndarray) -> Partners | None:
        """Partner groups for a coreset.

        Parameters
        ----------
        medoids : ndarray of shape (n_selected,)
            Training positions of the selected examples.
        clusters : ndarray of shape (n_train,)
            Each training example's medoid, as a position in ``medoids``.
        y : ndarray of shape (n_train,)
            The noisy labels (encoded).
        """
        return None


class ClusterMixup(Mixup):
    """The paper's mixup: a medoid is mixed with a random member of its cluster, labels too.

    An example outside the coreset (trained with ``unselected_weight > 0``) is mixed with a
    random member of the cluster it belongs to, like its medoid.
    """

    name = "cluster"
    mixes_labels = True

    def partners(self, medoids, clusters, y):
        cluster_of = np.asarray(clusters, dtype=np.intp).copy()
        cluster_of[medoids] = np.arange(len(medoids))  # a medoid is in its own cluster
        return Partners(Groups(clusters), cluster_of)


class ClassMixup(Mixup):
    """The official code's mixup: a random example of the same noisy label, labels not mixed."""

    name = "class"

    def partners(self, medoids, clusters, y):
        return Partners(Groups(y), y)


#: ``mixup`` values of :class:`~sk_crust.CrustClassifier` and their strategies.
MIXUPS: dict[str, Mixup] = {m.name: m for m in (ClusterMixup(), ClassMixup(), Mixup())}


def mix(lam: float, X: torch.Tensor, partner_X: torch.Tensor) -> torch.Tensor:
    """``lam * X + (1 - lam) * partner_X``, in one kernel."""
    return torch.lerp(partner_X, X, lam)
