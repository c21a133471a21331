"""The rules every engine shares, each stated once.

The dense, blocked, GreeDi and torch engines differ in where similarity rows come from (a matrix
in memory, matrix products block by block, a device); what they do with the rows is the same and
lives here:

* :class:`Cover`: the running ``max_{j in S} s_ij`` of every point and which pick attains it; the
  update keeps the **earlier** pick on ties (strictly greater replaces). That tie rule, with
  "lowest index first" among equal gains, is what makes the lazy greedy reproduce the naive one.
* :func:`fold_rows`: the rows of known picks (centrality) folded into the cover in order, with
  their marginal gains, vectorised over the picks.
* :func:`stochastic_sample_size` and :func:`stochastic_greedy`: the stochastic greedy's sample size
  ``ceil(n / k * log(1 / epsilon))`` and its loop (draw, evaluate, keep the best, fold it in).
* :func:`centrality_reference`: the random reference points that centrality scores a large group
  against (every engine draws the same ones for a seed).
* :func:`coreset_weights`: ``"cluster"``, ``"radius"`` and ``"uniform"`` weights, and
  :func:`radius_threshold`, the radius test on similarities.
* :func:`finalize`: a medoid always belongs to its own cluster, then the weights, then the
  :class:`GroupSelection` an engine returns.
* :data:`kernels`: the compiled (numba) kernels, or None for the NumPy code. The compiled kernels
  restate the cover update and the gain in compiled form (a compiled loop cannot call NumPy), each
  naming the rule here that it compiles.

Arrays in, arrays out; prior validation is assumed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from .._numba import compiled_module

#: What the engines can select with (see the engines for how each runs them).
OPTIMIZERS = ("naive", "lazy", "stochastic", "centrality")
#: How selected points are weighed (see :func:`coreset_weights`).
WEIGHTS = ("cluster", "radius", "uniform")


#: The compiled kernels module (:mod:`._numba_kernels`) or None. Engines read it at call time,
#: so tests can set it to None to run the NumPy code.
kernels = compiled_module("sk_crust._engine._numba_kernels")


def compiled(S: np.ndarray, cover: np.ndarray | None = None) -> bool:
    """Whether the compiled kernels apply: installed, and float32 C-contiguous data."""
    return (kernels is not None and S.dtype == np.float32 and S.flags.c_contiguous
            and (cover is None or (cover.dtype == np.float32 and cover.flags.c_contiguous)))


class GroupSelection(NamedTuple):
    """Selection in one group: positions are local to the group's rows.

    Attributes
    ----------
    indices : ndarray of shape (k,)
        Selected positions, in the order they were picked.
    weights : ndarray of shape (k,)
        Weight of each selected point.
    gains : ndarray of shape (k,)
        Marginal gain of each pick.
    assignment : ndarray of shape (n,)
        Position in ``indices`` of each point's nearest selected point.
    objective : float
        ``F(indices)``, the sum of the gains.
    method : str
        The path that made it, e.g. ``"dense-lazy"`` or ``"blocked-stochastic"``.
    """

    indices: np.ndarray
    weights: np.ndarray
    gains: np.ndarray
    assignment: np.ndarray
    objective: float
    method: str = ""


class Cover:
    """The running ``max_{j in S} s_ij`` of every point (``value``), and which pick attains it.

    Kept during the greedy loop so that the nearest-medoid ``assignment`` comes for free (O(n) per
    pick) instead of an O(n k) pass afterwards. The arrays may be NumPy arrays or torch tensors
    (pass ``maximum=torch.maximum``): the rule is the same.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_crust._engine._rules import Cover
    >>> cover = Cover.zeros(3)
    >>> cover.add(np.array([2.0, 1.0, 0.0], dtype=np.float32), 0)
    >>> cover.add(np.array([2.0, 3.0, 0.0], dtype=np.float32), 1)  # a tie keeps pick 0
    >>> cover.value.tolist(), cover.assignment.tolist()
    ([2.0, 3.0, 0.0], [0, 1, 0])
    """

    def __init__(self, value, assignment, maximum: Callable = np.maximum):
        self.value = value
        self.assignment = assignment
        self._maximum = maximum

    @classmethod
    def zeros(cls, n: int) -> Cover:
        """An empty cover of ``n`` points (similarities are >= 0, so 0 is "nothing yet")."""
        return cls(np.zeros(n, dtype=np.float32), np.zeros(n, dtype=np.intp))

    def add(self, row, t: int) -> None:
        """Fold in the ``t``-th pick's similarity row. Ties keep the earlier pick."""
        self.assignment[row > self.value] = t
        self._maximum(self.value, row, out=self.value)


def fold_rows(R: np.ndarray, t0: int, cover: Cover) -> np.ndarray:
    """Fold the rows ``R`` of the picks ``t0, t0 + 1, ...`` into ``cover``; their marginal gains.

    The same result as ``cover.add(R[r], t0 + r)`` one row after another, with the gain of each
    row taken just before it is added, but without a Python iteration per pick: the cover before
    each pick is a running maximum down the rows, and a point's final assignment is the first row
    that attains its maximum if that beats the cover (:meth:`Cover.add`'s tie rule). Each gain is
    reduced row by row (float32, pairwise summation), as the dense engine's gains are, so the
    values are bitwise those of the loop. With the compiled kernels the loop runs compiled.
    """
    if compiled(R, cover.value) and cover.assignment.dtype == np.intp:
        return kernels.fold_rows(R, t0, cover.value, cover.assignment)
    before = np.empty_like(R)  # the cover just before each pick
    before[0] = cover.value
    if len(R) > 1:
        np.maximum.accumulate(R[:-1], axis=0, out=before[1:])
        np.maximum(before[1:], cover.value[None, :], out=before[1:])
    np.subtract(R, before, out=before)
    np.maximum(before, np.zeros(R.shape[1], dtype=before.dtype), out=before)
    gains = before.sum(axis=1).astype(np.float64)
    top = R.argmax(axis=0)  # the first pick attaining each point's largest similarity
    best = R[top, np.arange(R.shape[1])]
    won = best > cover.value
    cover.assignment[won] = t0 + top[won]
    np.maximum(cover.value, best, out=cover.value)
    return gains


def stochastic_sample_size(n_candidates: int, k: int, epsilon: float) -> int:
    """Candidates per step of the stochastic greedy: ``ceil(n / k * log(1 / epsilon))``.

    In ``[1, n_candidates]``. Mirzasoleiman et al. ("Lazier than lazy greedy", AAAI 2015): a
    uniform sample of that size per step gives ``(1 - 1/e - epsilon)`` in expectation.

    Examples
    --------
    >>> from sk_crust._engine._rules import stochastic_sample_size
    >>> stochastic_sample_size(1000, 100, 0.1), stochastic_sample_size(10, 1, 0.1)
    (24, 10)
    """
    sample = int(math.ceil(n_candidates / max(k, 1) * math.log(1.0 / epsilon)))
    return max(1, min(n_candidates, sample))


def stochastic_greedy(candidates: np.ndarray, k: int, sample: int, rng: np.random.Generator,
                      gains_of: Callable, add: Callable) -> tuple[np.ndarray, np.ndarray]:
    """The stochastic greedy loop over ``candidates``, one step at a time.

    Each step draws ``sample`` of the candidates not picked yet, uniformly without replacement
    (all of them when fewer are left), evaluates their gains with ``gains_of(cand)`` (an array
    or tensor with ``argmax``), keeps the best (the first among equal gains) and calls
    ``add(best, j, t)`` so that the engine folds its row into the cover. Engines differ only in
    how rows and gains are made; the draws, hence the picks for a seed, are the same.

    Returns
    -------
    indices, gains : ndarray of shape (k,)
    """
    remaining = np.asarray(candidates, dtype=np.intp)
    indices = np.empty(k, dtype=np.intp)
    gains = np.empty(k, dtype=np.float64)
    for t in range(k):
        m = remaining.size
        pos = rng.choice(m, size=sample, replace=False) if sample < m else np.arange(m)
        cand = remaining[pos]
        g = gains_of(cand)
        best = int(g.argmax())
        j = int(cand[best])
        indices[t], gains[t] = j, float(g[best])
        remaining = np.delete(remaining, pos[best])
        add(best, j, t)
    return indices, gains


#: Default of ``centrality_sample``: groups larger than this are scored against a random sample
#: of this many of their points. Measured on warm-up gradient features of 6 data sets (letter,
#: penbased, magic, satimage, optdigits, texture; sym0/sym50/asym40, groups of up to 10,000): the
#: top half by sampled score shared >= 98.5% of its points with the exact one and had the same
#: clean fraction within 0.006; 512 points fell to 93.8% and 256 to 93.7% (clean -0.057).
CENTRALITY_SAMPLE = 1024


def centrality_reference(n: int, sample: int | None, random_state) -> np.ndarray | None:
    """The points a group of ``n`` scores its centrality against, or None for all of them.

    Centrality ranks points by their summed similarity to the whole group, ``n^2`` distances.
    For ``n > sample`` the sum is estimated on a uniform random sample of ``sample`` distinct
    points (sorted positions, drawn from ``random_state`` alone so that every engine draws the
    same ones): ``n * sample`` distances, and the score's error shrinks as ``1 / sqrt(sample)``
    whatever ``n``, so the ranking of a large group barely moves (see
    :data:`CENTRALITY_SAMPLE`). ``sample=None`` keeps the exact sum.

    Examples
    --------
    >>> from sk_crust._engine._rules import centrality_reference
    >>> centrality_reference(10, 20, 0) is None, centrality_reference(10, None, 0) is None
    (True, True)
    >>> len(centrality_reference(10, 4, 0))
    4
    """
    if sample is None or n <= sample:
        return None
    return np.sort(as_generator(random_state).choice(n, size=int(sample), replace=False))


def as_generator(random_state) -> np.random.Generator:
    """Accept None, an int, a numpy Generator or a legacy RandomState."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(np.iinfo(np.int32).max))
    return np.random.default_rng(random_state)


def radius_threshold(d0: float, radius: float) -> np.float32:
    """``d_ij <= radius`` tested on similarities: ``s_ij >= d0 - radius`` (float32)."""
    return np.float32(d0 - radius)


def coreset_weights(weights: str, assignment: np.ndarray, k: int,
                    radius_counts: Callable[[], np.ndarray]) -> np.ndarray:
    """Weight of each of the ``k`` selected points.

    ``"cluster"``: the number of points whose nearest selected point it is (the paper); the
    weights sum to ``n``. ``"radius"``: the number of points within ``radius`` of it, itself
    included (the official code), counted by the engine's ``radius_counts()``; with typical
    gradient norms this is close to 1. ``"uniform"``: ``n / k`` for every point, so that the
    weights also sum to ``n`` and the three schemes put the same total mass on the loss.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_crust._engine._rules import coreset_weights
    >>> coreset_weights("cluster", np.array([0, 1, 1, 1]), 2, None).tolist()
    [1.0, 3.0]
    >>> coreset_weights("uniform", np.array([0, 1, 1, 1]), 2, None).tolist()
    [2.0, 2.0]
    """
    if weights == "cluster":
        return np.bincount(assignment, minlength=k).astype(np.float64)
    if weights == "uniform":
        return np.full(k, len(assignment) / k, dtype=np.float64)
    if weights == "radius":
        return np.asarray(radius_counts(), dtype=np.float64)
    raise ValueError(f"weights={weights!r} is not valid: pass one of {WEIGHTS}")


def finalize(indices: np.ndarray, gains: np.ndarray, assignment: np.ndarray, *, weights: str,
             radius_counts: Callable[[], np.ndarray], method: str) -> GroupSelection:
    """The last step of every engine: medoids in their own clusters, weights, the result.

    A medoid always belongs to its own cluster. With duplicated points a later pick ties with an
    earlier one (ties keep the earlier pick), which would leave it an empty cluster, weight 0;
    ``assignment`` (NumPy, modified in place) is fixed before the weights are counted.
    """
    assignment[indices] = np.arange(len(indices))
    w = coreset_weights(weights, assignment, len(indices), radius_counts)
    return GroupSelection(indices, w, gains, assignment, float(gains.sum()), method)
