"""The blocked engine: facility location without the dense ``(n, n)`` similarity matrix.

The dense engine needs 4 n^2 bytes, 40 GB for one group of 10^5 points. This engine never
allocates it. It recomputes similarity rows on the fly, with one matrix product per block
(:class:`._similarity.Points`), and keeps O(n) state: the running cover, the nearest-medoid
assignment and the squared norms. The exact lazy greedy needs each candidate's row many times, so
``"lazy"``, ``"naive"`` and ``"stochastic"`` all run the stochastic greedy here; ``"centrality"``
stays exact (row sums accumulated block by block).

The constant ``d0`` is by default the cheap upper bound of :func:`._similarity.d0_from_radius`
(``2 max_i ||x_i - mean||``), which does not change any greedy decision (see there): only the
reported first gain and objective carry the extra ``n (d0' - d0)``.

Arrays in, arrays out; prior validation of the data is assumed.
"""

from __future__ import annotations

import numpy as np

from . import _rules
from ._dense import row_gains
from ._rules import (
    Cover,
    GroupSelection,
    as_generator,
    centrality_reference,
    finalize,
    fold_rows,
    stochastic_greedy,
    stochastic_sample_size,
)
from ._similarity import METRIC_CODES, Points, finish_distances, similarity_rows

# Above this many float32 values, the candidates' similarity rows are not kept between the gain
# pass and the cover update: the winner's row is recomputed instead (1/sample of the work).
_KEEP_ROWS_VALUES = 1 << 25  # 128 MiB
# Default number of points per block when a pass would otherwise need candidates x n values.
_DEFAULT_BLOCK_VALUES = 1 << 22  # 16 MiB of float32 per block
# Similarity rows of the stochastic greedy's next steps computed together (see greedy_blocked).
BATCH_VALUES = 1 << 24  # 64 MiB of float32
# Picks whose rows the centrality makes (one matrix product) and folds into the cover at once.
_FOLD_ROWS = 64


def _block_size(n_rows: int, n: int, block_rows: int | None) -> int:
    """Points per block: ``block_rows`` if given, else about 16 MiB of float32 per block."""
    if block_rows is not None:
        return max(1, min(int(block_rows), max(n, 1)))
    return max(1, min(max(n, 1), _DEFAULT_BLOCK_VALUES // max(n_rows, 1)))


def block_rows_for_budget(n: int, memory_budget: int | None) -> int | None:
    """Points per block that keep a step's rows within a quarter of ``memory_budget``.

    The batched greedy holds ``BATCH_VALUES`` float32 (64 MiB) of rows: allowed (``None``) when
    that is at most a quarter of the budget. Otherwise blocks of points are sized so that a
    sample of up to 64 candidates x block x float32, with two temporaries, stays within a quarter
    of it.
    """
    if memory_budget is None or memory_budget >= 16 * BATCH_VALUES:
        return None
    return max(64, min(n, memory_budget // (4 * 3 * 4 * 64)))


def _gains_and_rows(P: Points, cand: np.ndarray, cover: np.ndarray, d0: np.float32,
                    block: int, keep: np.ndarray | None, work: np.ndarray | None) -> np.ndarray:
    """Marginal gains of the candidates against ``cover``, their similarity rows made in blocks.

    With ``keep`` (a ``(len(cand), n)`` buffer, only when one block covers all points) the rows
    are left there for the cover update. Otherwise ``work`` (float32, at least ``len(cand) *
    block`` values) holds each block's rows: no temporary is allocated per block. That matters
    beyond speed: Dask workers return freed memory to the system eagerly
    (``MALLOC_TRIM_THRESHOLD_``), so per-block temporaries were page-faulted in again and again,
    and half of the time went to the kernel.
    """
    gains = np.zeros(len(cand), dtype=np.float64)
    for start in range(0, P.n, block):
        stop = min(start + block, P.n)
        # work: a C-contiguous view, so the compiled kernels take it
        S = keep if keep is not None else work[:len(cand) * (stop - start)].reshape(
            len(cand), stop - start)
        P.distances(cand, start, stop, out=S)
        np.subtract(d0, S, out=S)  # similarity, in place of the distances
        gains += row_gains(S, cover[start:stop])
    return gains


def greedy_blocked(P: Points, k: int, candidates: np.ndarray, *, d0: float, epsilon: float,
                   rng: np.random.Generator, block_rows: int | None):
    """Stochastic greedy over ``candidates`` covering all points of ``P``; O(n) memory.

    Each step samples :func:`._rules.stochastic_sample_size` unselected candidates and keeps the
    best. Returns indices (positions in ``P``), gains and the cover (with the assignment of every
    point to the position of its nearest pick).

    Why batches: one step needs only a few similarity rows (5 at k = n/2), so computing them
    step by step is a skinny matrix product that re-reads all of ``X`` from memory per step.
    When the rows of several steps fit in ``BATCH_VALUES``, the samples of the next ``B`` steps
    are drawn at once from the candidates left at the batch's start and their rows computed in
    one product. A sampled candidate that an earlier step of the batch picked is replaced by a
    fresh uniform draw among the unpicked ones, so every step still evaluates a uniform sample
    of the candidates left at that step (the procedure is symmetric in them). Gains are always
    taken against the cover of the current step. This batched draw is a different random
    sequence from :func:`._rules.stochastic_greedy`'s, which runs when one step's rows do not
    fit (:func:`_greedy_streamed`).
    """
    n = P.n
    d0 = np.float32(d0)
    candidates = np.asarray(candidates, dtype=np.intp)
    sample = stochastic_sample_size(candidates.size, k, epsilon)
    streamed = (block_rows is not None and block_rows < n) or sample * n > BATCH_VALUES
    if streamed:
        return _greedy_streamed(P, k, candidates, d0=d0, sample=sample, rng=rng,
                                block_rows=block_rows)
    batch = max(1, BATCH_VALUES // (sample * n))
    alive = np.zeros(n, dtype=bool)
    alive[candidates] = True
    cover = Cover.zeros(n)
    indices = np.empty(k, dtype=np.intp)
    gains = np.empty(k, dtype=np.float64)
    # Reused by every batch (see similarity_rows): at most batch x sample rows are made at once.
    buffer = np.empty((min(batch * sample, candidates.size), n), dtype=np.float32)
    t = 0
    while t < k:
        pool = np.flatnonzero(alive)
        if sample >= pool.size:  # every candidate left is evaluated: no sampling, one step
            draws = [pool]
        else:
            draws = [pool[rng.choice(pool.size, size=sample, replace=False)]
                     for _ in range(min(batch, k - t))]
        ids = np.unique(np.concatenate(draws))
        R = similarity_rows(P, ids, d0, buffer)
        for step, cand in enumerate(draws):
            where = np.searchsorted(ids, cand)
            dead = ~alive[cand]
            if dead.any():  # picked earlier in this batch: redraw among the unpicked
                taken = set(cand[~dead].tolist())
                # Near the end fewer than `sample` candidates may be left (pool.size - step):
                # evaluate all of them rather than wait forever for draws that cannot exist.
                needed = min(int(dead.sum()), pool.size - step - len(taken))
                extra = []
                while len(extra) < needed:
                    j = int(pool[rng.integers(pool.size)])
                    if alive[j] and j not in taken:
                        taken.add(j)
                        extra.append(j)
                extra = np.array(extra, dtype=np.intp)
                cand = np.concatenate([cand[~dead], extra])
                rows = R[where[~dead]]
                if extra.size:
                    rows = np.concatenate([rows, similarity_rows(P, extra, d0)])
                where = np.arange(len(cand))
            else:
                rows = R
            g = row_gains(rows, cover.value, rows=where)
            best = int(np.argmax(g))
            j = int(cand[best])
            indices[t], gains[t] = j, g[best]
            alive[j] = False
            cover.add(rows[where[best]], t)
            t += 1
    return indices, gains, cover


def _greedy_streamed(P: Points, k: int, candidates: np.ndarray, *, d0: np.float32,
                     sample: int, rng: np.random.Generator, block_rows: int | None):
    """The loop of :func:`._rules.stochastic_greedy`, similarity rows in blocks of points.

    Used when even one step's rows do not fit ``BATCH_VALUES`` or ``block_rows`` asks for
    blocks: memory is O(sample x block_rows) beyond the O(n) state.
    """
    n = P.n
    block = _block_size(sample, n, block_rows)
    keep = (np.empty((sample, n), dtype=np.float32)
            if sample * n <= _KEEP_ROWS_VALUES and block >= n else None)
    # Without keep: each block's rows go to work, the winner's row is made again in row_buffer.
    work = np.empty(sample * min(block, n), dtype=np.float32) if keep is None else None
    row_buffer = np.empty((1, n), dtype=np.float32) if keep is None else None
    cover = Cover.zeros(n)
    kept = None

    def gains_of(cand):
        nonlocal kept
        kept = keep[:len(cand)] if keep is not None else None
        return _gains_and_rows(P, cand, cover.value, d0, block, kept, work)

    def add(best, j, t):
        row = (kept[best] if kept is not None
               else similarity_rows(P, np.array([j]), d0, row_buffer)[0])
        cover.add(row, t)

    indices, gains = stochastic_greedy(candidates, k, sample, rng, gains_of, add)
    return indices, gains, cover


def _reference_distance_means(P: Points, reference: np.ndarray,
                               rows_per_block: int) -> np.ndarray:
    """Mean distance of every point to the ``reference`` points other than itself (float64).

    A reference point's own zero distance is left out of its mean, so that being in the sample
    is no advantage: each score is an unbiased estimate of the point's mean distance to the
    rest of its group. With the compiled kernels each block's products are turned into distance
    sums in one pass, without writing the distances out.
    """
    n, m = P.n, len(reference)
    X_ref, sq_ref = P.X[reference], P.sq[reference]
    position = np.full(n, -1, dtype=np.intp)
    position[reference] = np.arange(m)
    sums = np.zeros(n, dtype=np.float64)
    work = np.empty(min(n, rows_per_block) * m, dtype=np.float32)
    fused = _rules.kernels is not None
    for r0 in range(0, n, rows_per_block):
        r1 = min(r0 + rows_per_block, n)
        D = np.matmul(P.X[r0:r1], X_ref.T, out=work[:(r1 - r0) * m].reshape(r1 - r0, m))
        if fused:
            _rules.kernels.distance_row_sums(D, P.sq[r0:r1], sq_ref, METRIC_CODES[P.metric],
                                             position[r0:r1], sums[r0:r1])
            continue
        finish_distances(D, P.sq[r0:r1], sq_ref, P.metric)
        inside = np.flatnonzero(position[r0:r1] >= 0)
        D[inside, position[r0 + inside]] = 0.0
        sums[r0:r1] = D.sum(axis=1, dtype=np.float64)
    return sums / np.maximum(m - (position >= 0), 1)


def fold_picks(P: Points, picks: np.ndarray, d0: np.float32, cover: Cover) -> np.ndarray:
    """Fold the similarity rows of ``picks`` (in pick order) into ``cover``; their gains.

    :func:`._rules.fold_rows` on the rows :func:`._similarity.similarity_rows` makes, the picks
    ``_FOLD_ROWS`` at a time (one matrix product each). With the compiled kernels the products
    are folded directly (:func:`._numba_kernels.fold_products`: the same distances, similarities,
    gains and tie rule in one pass, no rows written out).
    """
    k = len(picks)
    gains = np.empty(k, dtype=np.float64)
    buffer = np.empty((min(k, _FOLD_ROWS), P.n), dtype=np.float32)
    fused = _rules.kernels is not None and cover.assignment.dtype == np.intp
    for t0 in range(0, k, _FOLD_ROWS):
        ids = picks[t0:t0 + _FOLD_ROWS]
        if fused:
            D = np.matmul(P.X[ids], P.X.T, out=buffer[:len(ids)])
            gains[t0:t0 + len(ids)] = _rules.kernels.fold_products(
                D, P.sq[ids], P.sq, METRIC_CODES[P.metric], np.float32(d0),
                np.asarray(ids, dtype=np.intp), t0, cover.value, cover.assignment)
        else:
            R = similarity_rows(P, ids, d0, buffer)
            gains[t0:t0 + len(R)] = fold_rows(R, t0, cover)
    return gains


def select_group_ranked(X: np.ndarray, k: int, scores: np.ndarray, *, weights: str = "cluster",
                        metric: str = "euclidean", radius: float = 2.0) -> GroupSelection:
    """The ``k`` rows of smallest ``scores`` as medoids, folded into the cover in that order.

    Centrality's last step (:func:`fold_picks`: assignment, weights, gains) on picks ranked by
    a score given by the caller instead of by similarity row sums; the selector uses it for
    the ``"auto"`` rule on two-class probability residuals (rows of highest given-label
    probability). ``d0`` is :meth:`._similarity.Points.d0_bound`, as for sampled centrality.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_crust._engine._blocked import select_group_ranked
    >>> X = np.array([[0.0], [0.1], [0.9], [1.0]], dtype=np.float32)
    >>> sel = select_group_ranked(X, 2, np.abs(X[:, 0]))
    >>> sel.indices.tolist(), sel.weights.tolist(), sel.method
    ([0, 1], [1.0, 3.0], 'ranked')
    """
    P = Points(X, metric)
    order = np.argsort(scores, kind="stable")[:k].astype(np.intp)
    cover = Cover.zeros(P.n)
    gains = fold_picks(P, order, np.float32(P.d0_bound()), cover)
    return finalize_blocked(P, order, gains, cover, weights=weights, radius=radius,
                            block_rows=None, method="ranked")


def _centrality_blocked(P: Points, k: int, *, d0: float | None, block_rows: int | None,
                        rows_per_block: int = 2048, reference: np.ndarray | None = None):
    """Top-``k`` similarity row sums, the row sums accumulated block by block.

    ``reference=None``: exact sums over every point. With ``reference`` (positions, see
    :func:`._rules.centrality_reference`), each point is scored by its mean distance to those
    points instead (``n * len(reference)`` distances, not ``n^2``). ``d0=None``: the exact
    largest distance, taken in the same pass as the row sums (the dense engine's constant)
    instead of a bound; with a reference that pass no longer sees every pair, so the bound of
    :meth:`._similarity.Points.d0_bound` is used.
    """
    n = P.n
    rows_per_block = max(1, min(n, rows_per_block))
    if reference is not None:
        dist_sums = _reference_distance_means(P, reference, rows_per_block)
        d0 = P.d0_bound() if d0 is None else d0
    else:
        block = _block_size(rows_per_block, n, block_rows)
        dist_sums = np.zeros(n, dtype=np.float64)
        largest = np.float32(0.0)
        # One buffer for every block: fresh large arrays would page-fault on every block.
        work = np.empty(rows_per_block * block, dtype=np.float32)
        for r0 in range(0, n, rows_per_block):
            rows = np.arange(r0, min(r0 + rows_per_block, n))
            for start in range(0, n, block):
                stop = min(start + block, n)
                out = work[:len(rows) * (stop - start)].reshape(len(rows), stop - start)
                D = P.distances(rows, start, stop, out=out)
                dist_sums[rows] += D.sum(axis=1, dtype=np.float64)
                if d0 is None:
                    largest = max(largest, D.max())
        d0 = largest if d0 is None else d0
    d0 = np.float32(d0)
    # Row sum of similarity = n d0 - row sum of distances: the ranking does not depend on d0.
    order = np.argsort(dist_sums, kind="stable")[:k].astype(np.intp)
    cover = Cover.zeros(n)
    # The picks are known: their rows are folded into the cover in order.
    gains = fold_picks(P, order, d0, cover)
    return order, gains, cover


def radius_counts(P: Points, indices: np.ndarray, radius: float,
                  block_rows: int | None) -> np.ndarray:
    """Points within distance ``radius`` of each selected point, distances made in blocks."""
    k, n = len(indices), P.n
    rows_per_block = max(1, min(k, 1024))
    block = _block_size(rows_per_block, n, block_rows)
    counts = np.zeros(k, dtype=np.float64)
    for r0 in range(0, k, rows_per_block):
        rows = indices[r0:r0 + rows_per_block]
        for start in range(0, n, block):
            stop = min(start + block, n)
            counts[r0:r0 + len(rows)] += (P.distances(rows, start, stop) <= radius).sum(axis=1)
    return counts


def finalize_blocked(P: Points, indices, gains, cover: Cover, *, weights: str, radius: float,
                     block_rows: int | None, method: str) -> GroupSelection:
    """:func:`._rules.finalize` with radius counts made in blocks."""
    return finalize(indices, gains, cover.assignment, weights=weights,
                    radius_counts=lambda: radius_counts(P, indices, radius, block_rows),
                    method=method)


def select_group_blocked(X: np.ndarray, k: int, *, optimizer: str = "stochastic",
                         weights: str = "cluster", metric: str = "euclidean",
                         epsilon: float = 0.1, radius: float = 2.0, random_state=None,
                         memory_budget: int | None = None, block_rows: int | None = None,
                         d0: float | None = None,
                         centrality_sample: int | None = None) -> GroupSelection:
    """Select ``k`` weighted medoids without ever allocating the ``(n, n)`` similarity matrix.

    Memory is O(n d + n + sample x block) instead of the 4 n^2 bytes of the dense engine.

    Parameters
    ----------
    X : ndarray of shape (n, d)
        Finite points (prior validation is assumed, and ``1 <= k <= n``).
    k : int
        Number of points to select.
    optimizer : {"stochastic", "lazy", "naive", "centrality"}, default="stochastic"
        ``"centrality"``: the similarity row sums are accumulated block by block, so the ``k``
        largest are those of the dense path (up to float rounding of the sums), on the same
        reference sample when the group is larger than ``centrality_sample``. Every other
        value runs the stochastic greedy (Mirzasoleiman et al., 2015): each step samples
        ``ceil(n / k * log(1 / epsilon))`` unselected candidates, computes their similarity rows
        (one matrix product per block of ``block_rows`` points), their gains against the running
        cover, and keeps the best; ``(1 - 1/e - epsilon)``-approximate in expectation. The exact
        lazy greedy needs each candidate's row many times, which without the dense matrix means
        recomputing it each time; the stochastic greedy's n log(1/epsilon) rows per pick is the
        cheaper bound.
    weights : {"cluster", "radius", "uniform"}, default="cluster"
        As in :func:`._rules.coreset_weights`; radius counts are made in blocks, on distances.
    metric : {"euclidean", "sqeuclidean", "cosine"}, default="euclidean"
    epsilon : float, default=0.1
        Accuracy of the stochastic greedy.
    radius : float, default=2.0
        Radius of ``weights="radius"``.
    random_state : int, Generator, RandomState or None
        Seeds the candidate samples.
    memory_budget : int or None, default=None
        Bytes this selection may use: sets ``block_rows`` when that is not given
        (:func:`block_rows_for_budget`).
    block_rows : int or None, default=None
        Points per block of a similarity pass; ``None`` chooses about 16 MiB of float32 per block.
    d0 : float or None, default=None
        The similarity constant. ``None`` uses the upper bound ``2 max_i ||x_i - mean||`` of the
        largest distance (O(n d)); see :func:`._similarity.d0_from_radius` for why any bound
        gives the same choices. The returned first gain and objective include the offset.
    centrality_sample : int or None, default=None
        ``"centrality"`` on more points than this scores them against a random sample of this
        many (:func:`._rules.centrality_reference`, drawn from ``random_state``); ``None``:
        exact sums.

    Returns
    -------
    selection : GroupSelection
        Indices (greedy order), weights, gains, assignment of every point to the position of its
        nearest selected point, the objective under ``d0``, and the method
        (``"blocked-centrality"`` or ``"blocked-stochastic"``).
    """
    P = Points(X, metric)
    d0 = P.d0_bound() if d0 is None else float(d0)
    if block_rows is None:
        block_rows = block_rows_for_budget(P.n, memory_budget)
    if optimizer == "centrality":
        reference = centrality_reference(P.n, centrality_sample, random_state)
        indices, gains, cover = _centrality_blocked(P, k, d0=d0, block_rows=block_rows,
                                                    reference=reference)
    else:
        indices, gains, cover = greedy_blocked(
            P, k, np.arange(P.n), d0=d0, epsilon=epsilon, rng=as_generator(random_state),
            block_rows=block_rows)
    method = "blocked-centrality" if optimizer == "centrality" else "blocked-stochastic"
    return finalize_blocked(P, indices, gains, cover, weights=weights, radius=radius,
                            block_rows=block_rows, method=method)
