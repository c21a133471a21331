"""The GreeDi engine (Mirzasoleiman et al., NeurIPS 2013): partition, select per part, merge.

The points are split into ``partitions`` parts by a seeded random permutation; ``k`` points (at
most the part's size) are selected in each part on the dense engine if the part fits
``memory_budget`` and on the blocked engine otherwise. The parts run through joblib, so
``joblib.parallel_config(backend="dask")`` spreads them on a Dask cluster. The merge runs the
blocked stochastic greedy with the union of the partial solutions as candidates and *all* points
as the covered set, and the weights are computed over all points.

Arrays in, arrays out; prior validation is assumed.
"""

from __future__ import annotations

from numbers import Integral

import numpy as np
from joblib import Parallel, delayed

from ._blocked import finalize_blocked, greedy_blocked, select_group_blocked
from ._dense import fits_dense, select_group_dense
from ._rules import GroupSelection, as_generator
from ._similarity import Points


def _greedi_plan(n: int, partitions: int, seeds: np.ndarray):
    rng = np.random.default_rng([int(seeds[0]), 1])  # its own stream, apart from the merge's
    parts = [np.sort(p) for p in np.array_split(rng.permutation(n), partitions) if p.size]
    return parts, [int(s) for s in seeds[1:len(parts) + 1]], int(seeds[0])


def _seeds(random_state, partitions: int) -> np.ndarray:
    return as_generator(random_state).integers(np.iinfo(np.int32).max, size=partitions + 1)


def greedi_plan(n: int, partitions: int, random_state) -> tuple[list[np.ndarray], list[int], int]:
    """GreeDi's split of ``n`` points: sorted parts (a seeded random permutation cut in
    ``partitions`` nearly equal pieces, empty ones dropped), a seed per part and the merge's seed.
    """
    return _greedi_plan(n, partitions, _seeds(random_state, partitions))


def select_part(X: np.ndarray, k: int, *, optimizer: str, metric: str, epsilon: float,
                random_state: int, memory_budget: int | None, block_rows: int | None,
                centrality_sample: int | None = None) -> np.ndarray:
    """GreeDi's first round on one part: its ``k`` picks, dense if the part fits the budget.

    On the blocked engine the part runs with ``block_rows`` (``None``: the default blocks), not
    with blocks sized from ``memory_budget``.
    """
    params = dict(optimizer=optimizer, weights="uniform", metric=metric, epsilon=epsilon,
                  random_state=random_state, centrality_sample=centrality_sample)
    if fits_dense(X.shape[0], X.shape[1], memory_budget):
        return select_group_dense(X, k, **params).indices
    return select_group_blocked(X, k, block_rows=block_rows, **params).indices


def greedi_merge(X: np.ndarray, k: int, partials: list[np.ndarray], *, weights: str = "cluster",
                 metric: str = "euclidean", epsilon: float = 0.1, radius: float = 2.0,
                 random_state: int = 0, block_rows: int | None = None,
                 d0: float | None = None, method: str = "greedi") -> GroupSelection:
    """GreeDi's second round: the blocked stochastic greedy over the union of the partial
    solutions (positions in ``X``) as candidates, covering all points of ``X``."""
    union = np.unique(np.concatenate(partials))
    P = Points(X, metric)
    d0 = P.d0_bound() if d0 is None else float(d0)
    indices, gains, cover = greedy_blocked(
        P, k, union, d0=d0, epsilon=epsilon, rng=np.random.default_rng(random_state),
        block_rows=block_rows)
    return finalize_blocked(P, indices, gains, cover, weights=weights, radius=radius,
                            block_rows=block_rows, method=method)


def select_group_greedi(X: np.ndarray, k: int, *, partitions: int = 4, optimizer: str = "lazy",
                        weights: str = "cluster", metric: str = "euclidean",
                        epsilon: float = 0.1, radius: float = 2.0, random_state=None,
                        memory_budget: int | None = None, block_rows: int | None = None,
                        n_jobs: int | None = None, d0: float | None = None,
                        centrality_sample: int | None = None) -> GroupSelection:
    """GreeDi on one group (see the module notes).

    With ``partitions=1`` there is nothing to merge: the result is the inner method's on all
    points (the exact lazy greedy for ``optimizer="lazy"`` within the budget).

    Parameters
    ----------
    X : ndarray of shape (n, d)
        Finite points (prior validation is assumed, and ``1 <= k <= n``).
    k : int
        Number of points to select.
    partitions : int, default=4
        Number of parts ``m``. The merge evaluates ``ceil(m log(1 / epsilon))`` candidates
        per pick.
    optimizer, weights, metric, epsilon, radius, random_state, block_rows, d0, centrality_sample
        As in :func:`._blocked.select_group_blocked`; ``optimizer`` is that of the first round.
    memory_budget : int or None, default=None
        Bytes one part may use on the dense engine (see :func:`._dense.dense_bytes`).
    n_jobs : int or None, default=None
        Parts selected in parallel by joblib.

    Returns
    -------
    selection : GroupSelection
        As :func:`._blocked.select_group_blocked`, objective under the merge's ``d0`` (the bound
        unless ``d0`` is given), method ``"greedi-<m>"``.
    """
    n = X.shape[0]
    if not isinstance(partitions, (Integral, np.integer)) or partitions < 1:
        raise ValueError(f"partitions={partitions!r} is not valid: pass an int >= 1")
    partitions = int(partitions)
    seeds = _seeds(random_state, partitions)
    params = dict(optimizer=optimizer, weights=weights, metric=metric, epsilon=epsilon,
                  radius=radius, random_state=int(seeds[0]), centrality_sample=centrality_sample)
    if partitions == 1:
        if fits_dense(n, X.shape[1], memory_budget):
            return select_group_dense(X, k, **params)
        return select_group_blocked(X, k, block_rows=block_rows, d0=d0, **params)
    parts, part_seeds, merge_seed = _greedi_plan(n, partitions, seeds)
    picked = Parallel(n_jobs=n_jobs)(
        delayed(select_part)(X[p], min(k, p.size), optimizer=optimizer, metric=metric,
                             epsilon=epsilon, random_state=seed,
                             memory_budget=memory_budget, block_rows=block_rows,
                             centrality_sample=centrality_sample)
        for p, seed in zip(parts, part_seeds, strict=True))
    partials = [p[local] for p, local in zip(parts, picked, strict=True)]
    return greedi_merge(X, k, partials, weights=weights,
                        metric=metric, epsilon=epsilon, radius=radius, random_state=merge_seed,
                        block_rows=block_rows, d0=d0, method=f"greedi-{partitions}")


def select_groups_greedi(X: np.ndarray, groups: list[np.ndarray], budgets, seeds, *,
                         partitions: int, optimizer: str, weights: str, metric: str,
                         epsilon: float, radius: float, memory_budget: int | None,
                         n_jobs: int | None, centrality_sample: int | None = None
                         ) -> list[GroupSelection]:
    """GreeDi on several groups (row positions in ``X``), each with its budget and seed.

    The parts of *every* group go to one joblib call, then the merges to another, so that a
    group too large for one worker is spread over all workers (or a Dask cluster). Each group
    gets exactly :func:`select_group_greedi`'s result on its rows with its seed.
    """
    plans = [greedi_plan(len(rows), partitions, int(seed))
             for rows, seed in zip(groups, seeds, strict=True)]
    tasks = [(c, part, part_seed) for c, (parts, part_seeds, _) in enumerate(plans)
             for part, part_seed in zip(parts, part_seeds, strict=True)]
    picked = Parallel(n_jobs=n_jobs)(
        delayed(select_part)(X[groups[c][part]], min(int(budgets[c]), part.size),
                             optimizer=optimizer, metric=metric, epsilon=epsilon,
                             random_state=part_seed, memory_budget=memory_budget,
                             block_rows=None, centrality_sample=centrality_sample)
        for c, part, part_seed in tasks)
    partials: list[list[np.ndarray]] = [[] for _ in groups]
    for (c, part, _), local in zip(tasks, picked, strict=True):
        partials[c].append(part[local])
    return Parallel(n_jobs=n_jobs)(
        delayed(greedi_merge)(X[rows], int(b), partial, weights=weights, metric=metric,
                              epsilon=epsilon, radius=radius, random_state=plan[2],
                              method=f"greedi-{partitions}")
        for rows, b, partial, plan in zip(groups, budgets, partials, plans, strict=True))
