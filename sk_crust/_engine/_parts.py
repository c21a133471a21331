"""The parts engine: a group too large for the dense engine, selected in parts that fit it.

The blocked engine runs the stochastic greedy over a whole group of ``n`` points: every pick
makes ``n / k log(1 / epsilon)`` similarity rows of length ``n``, about 3 TFLOP for one group of
10^5 points in 64 dimensions at ``k = n / 10``, so 10^6 points took 250-690 s on 2 cores. Here
the group is split by a seeded random permutation into the fewest nearly equal parts whose
dense similarity matrix fits ``memory_budget``; each part gets its share of ``k`` (in proportion
to its size) and is selected on the dense engine with the group's optimizer (``"lazy"`` stays the
exact lazy greedy there); then the picks' similarity rows are folded into the cover of the
*whole* group, in the order the parts picked them, which gives every point its nearest medoid
(the weights) and each pick its true marginal gain over the whole group. The work is the parts'
matrices, ``n^2 / p`` values, plus ``k n`` for the fold, instead of ``k n log(1/eps) n / k``.

This is GreeDi's first round (:mod:`._greedi`) with each part selecting its share rather than
all ``k``, and no merge: a random part of a group is a sample of it, so its medoids are those the
whole group would have in that region. Measured on 10^4-point classes of gaussian blobs
(``benchmarks/results/selection_scale.md``): objective >= 0.997 of the exact lazy greedy's with up
to 8 parts, against 0.9987 for the blocked stochastic greedy. Unlike GreeDi there is no
worst-case guarantee against the whole group's optimum.

Arrays in, arrays out; prior validation is assumed.
"""

from __future__ import annotations

import math

import numpy as np

from ._blocked import finalize_blocked, fold_picks
from ._dense import dense_bytes, fits_dense, select_group_dense
from ._rules import Cover, GroupSelection, as_generator
from ._similarity import Points

# Fewer points than this per part and the parts engine is not used: the budget is then too
# small for a part to show the structure of its group (the blocked engine takes such groups).
MIN_PART = 256


def largest_dense(d: int, memory_budget: int) -> int:
    """The largest number of points in ``d`` dimensions that fits the dense engine's budget."""
    # 4 n^2 + (4 d + 32) n <= budget, solved for n, then corrected for rounding.
    b = 4 * d + 32
    n = int((-b + math.sqrt(b * b + 16 * memory_budget)) / 8)
    while n > 0 and dense_bytes(n, d) > memory_budget:
        n -= 1
    while dense_bytes(n + 1, d) <= memory_budget:
        n += 1
    return n


def part_count(n: int, d: int, memory_budget: int | None) -> int:
    """Parts of a group of ``n`` points: 1 if it fits the budget, 0 if parts would be smaller
    than :data:`MIN_PART` points (the blocked engine's case), else the fewest that fit."""
    if fits_dense(n, d, memory_budget):
        return 1
    fit = largest_dense(d, memory_budget)
    if fit < MIN_PART:
        return 0
    return -(-n // fit)


def part_budgets(sizes: np.ndarray, k: int) -> np.ndarray:
    """``k`` split over parts in proportion to their sizes (largest remainders, at most a part's
    size each); the shares sum to ``k``."""
    sizes = np.asarray(sizes, dtype=np.int64)
    exact = k * sizes / sizes.sum()
    shares = np.minimum(np.floor(exact).astype(np.int64), sizes)
    order = np.argsort(-(exact - shares), kind="stable")
    for i in order[:k - int(shares.sum())]:
        shares[i] += 1
    return shares


def select_group_parts(X: np.ndarray, k: int, *, optimizer: str = "lazy",
                       weights: str = "cluster", metric: str = "euclidean",
                       epsilon: float = 0.1, radius: float = 2.0, random_state=None,
                       memory_budget: int | None = None,
                       centrality_sample: int | None = None) -> GroupSelection:
    """Select ``k`` weighted medoids of a group larger than the dense budget, part by part.

    Parameters
    ----------
    X : ndarray of shape (n, d)
        Finite points (prior validation is assumed, and ``1 <= k <= n``).
    k : int
        Number of points to select.
    optimizer : {"lazy", "naive", "stochastic", "centrality"}, default="lazy"
        Run on each part by the dense engine; ``"naive"`` runs the lazy greedy, which returns
        the same picks.
    weights, metric, epsilon, radius
        As in :func:`._dense.select_group_dense`; weights are counted over the whole group.
    random_state : int, Generator, RandomState or None
        Seeds the split and each part's selection.
    memory_budget : int or None, default=None
        Bytes one part may use on the dense engine; sets the number of parts
        (:func:`part_count`). ``None`` or a budget the group fits: the dense engine's result.
    centrality_sample : int or None, default=None
        As in :func:`._dense.select_group_dense`, for each part.

    Returns
    -------
    selection : GroupSelection
        Indices (part by part, each part in its own pick order), weights, gains over the whole
        group under the bound ``d0`` of :meth:`._similarity.Points.d0_bound`, assignment of
        every point to its nearest pick, and the method ``"parts-<p>-<optimizer>"``.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_crust._engine._parts import select_group_parts
    >>> X = np.random.default_rng(0).normal(size=(1000, 4)).astype(np.float32)
    >>> sel = select_group_parts(X, 50, memory_budget=2_000_000, random_state=0)
    >>> sel.method, len(sel.indices), int(sel.weights.sum())
    ('parts-2-lazy', 50, 1000)
    """
    n, d = X.shape
    params = dict(optimizer="lazy" if optimizer == "naive" else optimizer, metric=metric,
                  epsilon=epsilon, centrality_sample=centrality_sample)
    parts_wanted = part_count(n, d, memory_budget) if memory_budget is not None else 1
    if parts_wanted <= 1:
        return select_group_dense(X, k, weights=weights, radius=radius,
                                  random_state=random_state, **params)
    rng = as_generator(random_state)
    seeds = rng.integers(np.iinfo(np.int32).max, size=parts_wanted)
    parts = [np.sort(p) for p in np.array_split(rng.permutation(n), parts_wanted)]
    shares = part_budgets(np.array([p.size for p in parts]), k)
    picks = [part[select_group_dense(X[part], int(share), weights="uniform",
                                     random_state=int(seed), **params).indices]
             for part, share, seed in zip(parts, shares, seeds, strict=True) if share > 0]
    indices = np.concatenate(picks).astype(np.intp)
    P = Points(X, metric)
    cover = Cover.zeros(n)
    gains = fold_picks(P, indices, np.float32(P.d0_bound()), cover)
    return finalize_blocked(P, indices, gains, cover, weights=weights, radius=radius,
                            block_rows=None, method=f"parts-{len(parts)}-{params['optimizer']}")
