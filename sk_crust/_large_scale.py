"""Facility location beyond a dense similarity matrix: blocked greedy and GreeDi partition-and-merge.

The exact optimizers of :mod:`._facility_location` need the dense ``(n, n)`` similarity matrix: 4 n^2
bytes, 40 GB for one class of 10^5 points. The functions here never allocate it. They recompute
similarity rows on the fly, with one matrix product per block (``||a - b||^2 = ||a||^2 + ||b||^2 -
2 a.b`` with precomputed squared norms), and keep O(n) state: the running cover
``max_{j in S} s_ij``, the nearest-medoid assignment and the squared norms.

Like the rest of the numeric core, this module takes arrays and returns arrays (no estimators, no
labels, no torch) and prior validation of the data is assumed.

The constant ``d0``
-------------------
The similarity is ``s_ij = d0 - d_ij`` with ``d0`` the largest pairwise distance (the paper's
Eq. 10). That maximum needs all n^2 distances, so by default the blocked functions use the cheap
upper bound ``d0' = 2 max_i ||x_i - mean||`` (every ``d_ij <= ||x_i - mean|| + ||x_j - mean||`` by
the triangle inequality). This does not change any greedy decision: for every non-empty ``S``,
``F_{d0'}(S) = F_{d0}(S) + n (d0' - d0)`` (each point's best similarity moves by the same
constant), so the marginal gains of step 1 all move by ``n (d0' - d0)`` and the later gains do not
move at all. The argmax of every step, hence the selected set and its order, is the same as with
the exact ``d0`` (up to float32 rounding in near-ties). Only the reported first gain and objective
carry the extra ``n (d0' - d0)``.
"""

from __future__ import annotations

import math
from numbers import Integral

import numpy as np
from joblib import Parallel, delayed

from . import _facility_location
from ._facility_location import (GroupSelection, _as_generator, _row_gains, aligned_float32,
                                 select_group)

# Above this many float32 values, the candidates' similarity rows are not kept between the gain
# pass and the cover update: the winner's row is recomputed instead (1/sample of the work).
_KEEP_ROWS_VALUES = 1 << 25  # 128 MiB
# Default number of points per block when a pass would otherwise need candidates x n values.
_DEFAULT_BLOCK_VALUES = 1 << 22  # 16 MiB of float32 per block
# Similarity rows of the stochastic greedy's next steps computed together (see _greedy_blocked).
_BATCH_VALUES = 1 << 24  # 64 MiB of float32


_METRIC_CODES = {"euclidean": 0, "sqeuclidean": 1, "cosine": 2}


def d0_from_radius(radius: float, metric: str) -> float:
    """The d0 bound, in ``metric``, from the largest Euclidean distance of a point to the mean.

    Every pairwise distance is at most twice that radius (triangle inequality); shared by the
    NumPy blocked path and the torch engine so both use the same constant.
    """
    # A few ulps above, so that float32 rounding of a distance never exceeds it.
    diameter = 2.0 * radius * (1.0 + 1e-5) + 1e-6
    if metric == "euclidean":
        return diameter
    if metric == "sqeuclidean":
        return diameter ** 2
    # cosine: with unit vectors, 1 - cos(a, b) = ||a - b||^2 / 2, and never more than 2.
    return min(2.0, diameter ** 2 / 2.0)


class _Points:
    """The data of one group, prepared once for similarity rows computed block by block.

    Stores float32 points (unit-normalised for the cosine metric, so that its distance is
    ``1 - a.b``) and their squared norms, the two things every block needs.
    """

    def __init__(self, X: np.ndarray, metric: str):
        X = aligned_float32(X)  # BLAS needs aligned data (see aligned_float32)
        if metric == "cosine":
            norms = np.linalg.norm(X, axis=1, keepdims=True)
            # As pairwise_distances: a zero vector gets cosine 0 to everything (distance 1).
            X = X / np.where(norms == 0, 1, norms)
        self.X = X
        self.metric = metric
        self.sq = np.einsum("ij,ij->i", X, X)
        self.n = X.shape[0]

    def d0_bound(self) -> float:
        """An upper bound of the largest pairwise distance, in O(n d) (see the module notes)."""
        if self.n == 0:
            return 0.0
        center = self.X.mean(axis=0, dtype=np.float64)
        radius = float(np.sqrt(np.max(np.einsum(
            "ij,ij->i", self.X - center.astype(np.float32), self.X - center.astype(np.float32)))))
        return d0_from_radius(radius, self.metric)

    def distances(self, rows: np.ndarray, start: int, stop: int,
                  out: np.ndarray | None = None) -> np.ndarray:
        """Distances ``(len(rows), stop - start)`` from the points ``rows`` to points start..stop.

        Same formula and clamping as ``_facility_location.pairwise_distances``; a point's distance
        to itself is set to exactly 0 there, and here too.
        """
        Xr = self.X[rows]
        D = np.matmul(Xr, self.X[start:stop].T, out=out)
        kernels = _facility_location._kernels  # looked up per call: tests switch backends
        if kernels is not None and D.flags.c_contiguous:
            # One compiled pass instead of four NumPy ones (_kernels.finish_distances).
            kernels.finish_distances(D, self.sq[rows], self.sq[start:stop],
                                      _METRIC_CODES[self.metric])
        elif self.metric == "cosine":
            np.subtract(1.0, D, out=D)
            np.clip(D, 0.0, 2.0, out=D)
        else:
            D *= -2.0
            D += self.sq[rows][:, None]
            D += self.sq[None, start:stop]
            np.maximum(D, 0.0, out=D)
            if self.metric == "euclidean":
                np.sqrt(D, out=D)
        inside = (rows >= start) & (rows < stop)
        if inside.any():
            D[np.flatnonzero(inside), rows[inside] - start] = 0.0
        return D


def _block_size(n_rows: int, n: int, block_rows: int | None) -> int:
    """Points per block: ``block_rows`` if given, else about 16 MiB of float32 per block."""
    if block_rows is not None:
        return max(1, min(int(block_rows), max(n, 1)))
    return max(1, min(max(n, 1), _DEFAULT_BLOCK_VALUES // max(n_rows, 1)))


def _gains_and_rows(P: _Points, cand: np.ndarray, cover: np.ndarray, d0: np.float32,
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
        gains += _row_gains(S, cover[start:stop])
    return gains


def _greedy_blocked(P: _Points, k: int, candidates: np.ndarray, *, d0: float, epsilon: float,
                    rng: np.random.Generator, block_rows: int | None, exhaustive: bool = False):
    """Stochastic greedy over ``candidates`` covering all points of ``P``; O(n) memory.

    Each step samples ``ceil(len(candidates) / k * log(1 / epsilon))`` unselected candidates
    (all of them with ``exhaustive``) and keeps the best. Returns indices (positions in ``P``),
    gains and the assignment of every point to the position of its nearest pick.

    Why batches: one step needs only a few similarity rows (5 at k = n/2), so computing them
    step by step is a skinny matrix product that re-reads all of ``X`` from memory per step.
    When the rows of several steps fit in ``_BATCH_VALUES``, the samples of the next ``B`` steps
    are drawn at once from the candidates left at the batch's start and their rows computed in
    one product. A sampled candidate that an earlier step of the batch picked is replaced by a
    fresh uniform draw among the unpicked ones, so every step still evaluates a uniform sample
    of the candidates left at that step (the procedure is symmetric in them). Gains are always
    taken against the cover of the current step.
    """
    n = P.n
    d0 = np.float32(d0)
    candidates = np.asarray(candidates, dtype=np.intp)
    if exhaustive:
        sample = candidates.size
    else:
        sample = int(math.ceil(candidates.size / max(k, 1) * math.log(1.0 / epsilon)))
    sample = max(1, min(candidates.size, sample))
    streamed = (block_rows is not None and block_rows < n) or sample * n > _BATCH_VALUES
    if streamed:
        return _greedy_streamed(P, k, candidates, d0=d0, sample=sample, rng=rng,
                                block_rows=block_rows)
    batch = max(1, _BATCH_VALUES // (sample * n))
    alive = np.zeros(n, dtype=bool)
    alive[candidates] = True
    cover = np.zeros(n, dtype=np.float32)
    assignment = np.zeros(n, dtype=np.intp)
    indices = np.empty(k, dtype=np.intp)
    gains = np.empty(k, dtype=np.float64)
    # Reused by every batch (see _similarity_rows): at most batch x sample rows are made at once.
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
        R = _similarity_rows(P, ids, d0, buffer)
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
                    rows = np.concatenate([rows, _similarity_rows(P, extra, d0)])
                where = np.arange(len(cand))
            else:
                rows = R
            g = _row_gains(rows, cover, rows=where)
            best = int(np.argmax(g))
            j = int(cand[best])
            indices[t], gains[t] = j, g[best]
            alive[j] = False
            row = rows[where[best]]
            # Strictly greater: ties keep the earlier pick, as _facility_location._Cover does.
            assignment[row > cover] = t
            np.maximum(cover, row, out=cover)
            t += 1
    return indices, gains, assignment


def _similarity_rows(P: _Points, ids: np.ndarray, d0: np.float32,
                     buffer: np.ndarray | None = None) -> np.ndarray:
    """Full similarity rows ``(len(ids), n)`` of the points ``ids``, C-contiguous float32.

    With ``buffer`` (float32, ``n`` columns, at least ``len(ids)`` rows) the rows are written into
    its first rows and that view is returned: a loop that makes rows again and again then touches
    the same pages instead of faulting in a fresh 64 MiB each time (the kernel's page faults were
    about a tenth of the blocked greedy's time at 10^5 points).

    Made tile by tile (64 rows x 4096 points, 1 MiB): the clamp, square root and ``d0 - d`` then
    run on cache-resident data instead of streaming a large array through memory several times.
    """
    if buffer is not None and buffer.shape[0] >= len(ids):
        R = buffer[:len(ids)]
    else:
        R = np.empty((len(ids), P.n), dtype=np.float32)
    if _facility_location._kernels is not None:
        # The compiled finish is one pass, so whole rows can be made at once: a few large matrix
        # products instead of many small tiles (the products then dominate the time).
        for r0 in range(0, len(ids), 256):
            out = R[r0:r0 + 256]
            P.distances(ids[r0:r0 + 256], 0, P.n, out=out)
            np.subtract(d0, out, out=out)
        return R
    tile = np.empty((64, 4096), dtype=np.float32)
    for r0 in range(0, len(ids), 64):
        rows = ids[r0:r0 + 64]
        for start in range(0, P.n, 4096):
            stop = min(start + 4096, P.n)
            out = tile[:len(rows), :stop - start]
            D = P.distances(rows, start, stop, out=out if out.flags.c_contiguous else None)
            np.subtract(d0, D, out=R[r0:r0 + len(rows), start:stop])
    return R


def _greedy_streamed(P: _Points, k: int, candidates: np.ndarray, *, d0: np.float32,
                     sample: int, rng: np.random.Generator, block_rows: int | None):
    """The stochastic greedy one step at a time, similarity rows in blocks of points.

    Used when even one step's rows do not fit ``_BATCH_VALUES`` or ``block_rows`` asks for
    blocks: memory is O(sample x block_rows) beyond the O(n) state.
    """
    n = P.n
    remaining = candidates.copy()
    block = _block_size(sample, n, block_rows)
    keep = (np.empty((sample, n), dtype=np.float32)
            if sample * n <= _KEEP_ROWS_VALUES and block >= n else None)
    # Without keep: each block's rows go to work, the winner's row is made again in row_buffer.
    work = np.empty(sample * min(block, n), dtype=np.float32) if keep is None else None
    row_buffer = np.empty((1, n), dtype=np.float32) if keep is None else None
    cover = np.zeros(n, dtype=np.float32)
    assignment = np.zeros(n, dtype=np.intp)
    indices = np.empty(k, dtype=np.intp)
    gains = np.empty(k, dtype=np.float64)
    for t in range(k):
        m = remaining.size
        pos = rng.choice(m, size=sample, replace=False) if sample < m else np.arange(m)
        cand = remaining[pos]
        buf = keep[:len(cand)] if keep is not None else None
        g = _gains_and_rows(P, cand, cover, d0, block, buf, work)
        best = int(np.argmax(g))
        j = int(cand[best])
        indices[t], gains[t] = j, g[best]
        remaining = np.delete(remaining, pos[best])
        row = (buf[best] if buf is not None
               else _similarity_rows(P, np.array([j]), d0, row_buffer)[0])
        assignment[row > cover] = t
        np.maximum(cover, row, out=cover)
    return indices, gains, assignment


def _centrality_blocked(P: _Points, k: int, *, d0: float, block_rows: int | None):
    """Exact top-``k`` similarity row sums, the row sums accumulated block by block."""
    n = P.n
    d0 = np.float32(d0)
    rows_per_block = max(1, min(n, 2048))
    block = _block_size(rows_per_block, n, block_rows)
    dist_sums = np.zeros(n, dtype=np.float64)
    for r0 in range(0, n, rows_per_block):
        rows = np.arange(r0, min(r0 + rows_per_block, n))
        for start in range(0, n, block):
            stop = min(start + block, n)
            dist_sums[rows] += P.distances(rows, start, stop).sum(axis=1, dtype=np.float64)
    # Row sum of similarity = n d0 - row sum of distances: the ranking does not depend on d0.
    order = np.argsort(dist_sums, kind="stable")[:k].astype(np.intp)
    cover = np.zeros(n, dtype=np.float32)
    assignment = np.zeros(n, dtype=np.intp)
    gains = np.empty(k, dtype=np.float64)
    # The picks are known: their rows are made 64 at a time (one matrix product each, 64 n
    # float32) and folded into the cover in order.
    buffer = np.empty((min(k, 64), n), dtype=np.float32)
    for t0 in range(0, k, 64):
        R = _similarity_rows(P, order[t0:t0 + 64], d0, buffer)
        kernels = _facility_location._kernels
        if kernels is not None:
            gains[t0:t0 + len(R)] = kernels.fold_rows(R, t0, cover, assignment)
            continue
        for r in range(R.shape[0]):
            row = R[r]
            gains[t0 + r] = float(np.maximum(row - cover, 0.0).sum(dtype=np.float64))
            assignment[row > cover] = t0 + r
            np.maximum(cover, row, out=cover)
    return order, gains, assignment


def _weights_blocked(P: _Points, indices: np.ndarray, assignment: np.ndarray, *, weights: str,
                     radius: float, block_rows: int | None) -> np.ndarray:
    """The weights of ``_facility_location.coreset_weights``, with radius counts made in blocks."""
    k, n = len(indices), P.n
    if weights == "cluster":
        return np.bincount(assignment, minlength=k).astype(np.float64)
    if weights == "uniform":
        return np.full(k, n / k, dtype=np.float64)
    if weights == "radius":
        rows_per_block = max(1, min(k, 1024))
        block = _block_size(rows_per_block, n, block_rows)
        counts = np.zeros(k, dtype=np.float64)
        for r0 in range(0, k, rows_per_block):
            rows = indices[r0:r0 + rows_per_block]
            for start in range(0, n, block):
                stop = min(start + block, n)
                counts[r0:r0 + len(rows)] += (P.distances(rows, start, stop) <= radius).sum(axis=1)
        return counts
    raise ValueError(f"weights={weights!r} is not valid: pass one of ('cluster', 'radius', "
                     "'uniform')")


def _finish(P: _Points, indices, gains, assignment, *, weights: str, radius: float,
            block_rows: int | None) -> GroupSelection:
    # A medoid always belongs to its own cluster (as select_group does, for duplicated points).
    assignment[indices] = np.arange(len(indices))
    w = _weights_blocked(P, indices, assignment, weights=weights, radius=radius,
                         block_rows=block_rows)
    return GroupSelection(indices, w, gains, assignment, float(gains.sum()))


def select_group_blocked(X: np.ndarray, k: int, *, optimizer: str = "stochastic",
                         weights: str = "cluster", metric: str = "euclidean",
                         epsilon: float = 0.1, radius: float = 2.0, random_state=None,
                         block_rows: int | None = None, d0: float | None = None
                         ) -> GroupSelection:
    """Select ``k`` weighted medoids without ever allocating the ``(n, n)`` similarity matrix.

    Memory is O(n d + n + sample x block) instead of the 4 n^2 bytes of
    :func:`~sk_crust._facility_location.select_group`.

    Parameters
    ----------
    X : ndarray of shape (n, d)
        Finite points (prior validation is assumed, and ``1 <= k <= n``).
    k : int
        Number of points to select.
    optimizer : {"stochastic", "lazy", "naive", "centrality"}, default="stochastic"
        ``"centrality"`` is exact: the similarity row sums are accumulated block by block, so the
        ``k`` largest are those of the dense path (up to float rounding of the sums). Every other
        value runs the stochastic greedy (Mirzasoleiman et al., 2015): each step samples
        ``ceil(n / k * log(1 / epsilon))`` unselected candidates, computes their similarity rows
        (one matrix product per block of ``block_rows`` points), their gains against the running
        cover, and keeps the best; ``(1 - 1/e - epsilon)``-approximate in expectation. The exact
        lazy greedy needs each candidate's row many times, which without the dense matrix means
        recomputing it each time; the stochastic greedy's n log(1/epsilon) rows per pick is the
        cheaper bound.
    weights : {"cluster", "radius", "uniform"}, default="cluster"
        As in :func:`~sk_crust._facility_location.coreset_weights`: cluster sizes from the
        assignment (they sum to ``n``), radius counts (made in blocks) or ``n / k`` each.
    metric : {"euclidean", "sqeuclidean", "cosine"}, default="euclidean"
    epsilon : float, default=0.1
        Accuracy of the stochastic greedy.
    radius : float, default=2.0
        Radius of ``weights="radius"``.
    random_state : int, Generator, RandomState or None
        Seeds the candidate samples.
    block_rows : int or None, default=None
        Points per block of a similarity pass; ``None`` chooses about 16 MiB of float32 per block.
    d0 : float or None, default=None
        The similarity constant. ``None`` uses the upper bound ``2 max_i ||x_i - mean||`` of the
        largest distance (O(n d)). Any ``d0`` at least the largest distance gives the same greedy
        decisions as the exact one: ``F_{d0'}(S) = F_{d0}(S) + n (d0' - d0)`` for every
        non-empty ``S``, so every step's argmax is unchanged (see the module notes). The
        returned first gain and objective include the ``n (d0' - d0)`` offset.

    Returns
    -------
    selection : GroupSelection
        Indices (greedy order), weights, gains, assignment of every point to the position of its
        nearest selected point, and the objective under ``d0``.
    """
    P = _Points(X, metric)
    d0 = P.d0_bound() if d0 is None else float(d0)
    if optimizer == "centrality":
        indices, gains, assignment = _centrality_blocked(P, k, d0=d0, block_rows=block_rows)
    else:
        indices, gains, assignment = _greedy_blocked(
            P, k, np.arange(P.n), d0=d0, epsilon=epsilon, rng=_as_generator(random_state),
            block_rows=block_rows)
    return _finish(P, indices, gains, assignment, weights=weights, radius=radius,
                   block_rows=block_rows)


def dense_bytes(n: int, d: int) -> int:
    """Bytes the dense path needs for one group of ``n`` points in ``d`` dimensions.

    The float32 similarity matrix (4 n^2) dominates; the rest is the float32 copy of the points,
    their norms and the optimizer's O(n) arrays (cover, bounds, assignment: about 32 n bytes).
    """
    return 4 * n * n + 4 * n * d + 32 * n


def _select_part(X: np.ndarray, k: int, *, optimizer: str, metric: str, epsilon: float,
                 random_state: int, memory_budget: int | None, block_rows: int | None
                 ) -> np.ndarray:
    """GreeDi's first round on one part: the exact path if it fits the budget, else blocked."""
    if memory_budget is None or dense_bytes(X.shape[0], X.shape[1]) <= memory_budget:
        return select_group(X, k, optimizer=optimizer, weights="uniform", metric=metric,
                            epsilon=epsilon, random_state=random_state).indices
    return select_group_blocked(X, k, optimizer=optimizer, weights="uniform", metric=metric,
                                epsilon=epsilon, random_state=random_state,
                                block_rows=block_rows).indices


def select_group_greedi(X: np.ndarray, k: int, *, partitions: int = 4, optimizer: str = "lazy",
                        weights: str = "cluster", metric: str = "euclidean",
                        epsilon: float = 0.1, radius: float = 2.0, random_state=None,
                        memory_budget: int | None = None, block_rows: int | None = None,
                        n_jobs: int | None = None, d0: float | None = None) -> GroupSelection:
    """GreeDi (Mirzasoleiman et al., NeurIPS 2013): partition, select per part, merge.

    The points are split into ``partitions`` parts by a seeded random permutation; ``k`` points
    (at most the part's size) are selected in each part with ``optimizer``, on the dense exact
    path if the part fits ``memory_budget`` (``None``: always) and on the blocked path otherwise.
    The parts run through joblib, so ``joblib.parallel_config(backend="dask")`` spreads them on a
    Dask cluster. The merge then runs the blocked stochastic greedy with the union of the partial
    solutions as candidates and *all* points as the covered set (every point's similarity to the
    sampled candidates is computed in blocks), and the weights are computed over all points.

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
    optimizer, weights, metric, epsilon, radius, random_state, block_rows, d0
        As in :func:`select_group_blocked`; ``optimizer`` is that of the first round.
    memory_budget : int or None, default=None
        Bytes one part may use on the dense path (see :func:`dense_bytes`).
    n_jobs : int or None, default=None
        Parts selected in parallel by joblib.

    Returns
    -------
    selection : GroupSelection
        As :func:`select_group_blocked`, objective under the merge's ``d0`` (the bound unless
        ``d0`` is given).
    """
    n = X.shape[0]
    rng = _as_generator(random_state)
    partitions = int(partitions)
    if not isinstance(partitions, Integral) or partitions < 1:
        raise ValueError(f"partitions={partitions!r} is not valid: pass an int >= 1")
    seeds = rng.integers(np.iinfo(np.int32).max, size=partitions + 1)
    if partitions == 1:
        if memory_budget is None or dense_bytes(n, X.shape[1]) <= memory_budget:
            return select_group(X, k, optimizer=optimizer, weights=weights, metric=metric,
                                epsilon=epsilon, radius=radius, random_state=int(seeds[0]))
        return select_group_blocked(X, k, optimizer=optimizer, weights=weights, metric=metric,
                                    epsilon=epsilon, radius=radius, random_state=int(seeds[0]),
                                    block_rows=block_rows, d0=d0)
    parts, part_seeds, merge_seed = _greedi_plan(n, partitions, seeds)
    picked = Parallel(n_jobs=n_jobs)(
        delayed(_select_part)(X[p], min(k, p.size), optimizer=optimizer, metric=metric,
                              epsilon=epsilon, random_state=seed,
                              memory_budget=memory_budget, block_rows=block_rows)
        for p, seed in zip(parts, part_seeds))
    return greedi_merge(X, k, [p[local] for p, local in zip(parts, picked)], weights=weights,
                        metric=metric, epsilon=epsilon, radius=radius, random_state=merge_seed,
                        block_rows=block_rows, d0=d0)


def greedi_plan(n: int, partitions: int, random_state) -> tuple[list[np.ndarray], list[int], int]:
    """GreeDi's split of ``n`` points: sorted parts (a seeded random permutation cut in
    ``partitions`` nearly equal pieces, empty ones dropped), a seed per part and the merge's seed.

    Separate from :func:`select_group_greedi` so that a caller with several groups
    (:class:`~sk_crust.CrustSelector`) can run the parts of all groups in one joblib call.
    """
    rng = _as_generator(random_state)
    return _greedi_plan(n, partitions, rng.integers(np.iinfo(np.int32).max, size=partitions + 1))


def _greedi_plan(n: int, partitions: int, seeds: np.ndarray):
    rng = np.random.default_rng([int(seeds[0]), 1])  # its own stream, apart from the merge's
    parts = [np.sort(p) for p in np.array_split(rng.permutation(n), partitions) if p.size]
    return parts, [int(s) for s in seeds[1:len(parts) + 1]], int(seeds[0])


def greedi_merge(X: np.ndarray, k: int, partials: list[np.ndarray], *, weights: str = "cluster",
                 metric: str = "euclidean", epsilon: float = 0.1, radius: float = 2.0,
                 random_state: int = 0, block_rows: int | None = None,
                 d0: float | None = None) -> GroupSelection:
    """GreeDi's second round: the blocked stochastic greedy over the union of the partial
    solutions (positions in ``X``) as candidates, covering all points of ``X``."""
    union = np.unique(np.concatenate(partials))
    P = _Points(X, metric)
    d0 = P.d0_bound() if d0 is None else float(d0)
    indices, gains, assignment = _greedy_blocked(
        P, k, union, d0=d0, epsilon=epsilon, rng=np.random.default_rng(random_state),
        block_rows=block_rows)
    return _finish(P, indices, gains, assignment, weights=weights, radius=radius,
                   block_rows=block_rows)


_UNITS = {"b": 1, "kb": 10 ** 3, "mb": 10 ** 6, "gb": 10 ** 9, "tb": 10 ** 12,
          "kib": 2 ** 10, "mib": 2 ** 20, "gib": 2 ** 30, "tib": 2 ** 40}


def parse_memory_budget(memory_budget) -> int | None:
    """Bytes from ``memory_budget``: an int >= 1, a string such as ``"512MiB"``, or None.

    Units (case-insensitive): B, KB, MB, GB, TB (powers of 1000) and KiB, MiB, GiB, TiB
    (powers of 1024); a bare number in a string is bytes. None means no limit.

    Examples
    --------
    >>> from sk_crust._large_scale import parse_memory_budget
    >>> parse_memory_budget("1GiB"), parse_memory_budget("4GB"), parse_memory_budget(2048)
    (1073741824, 4000000000, 2048)
    """
    import re

    if memory_budget is None:
        return None
    if isinstance(memory_budget, (Integral, np.integer)) and not isinstance(memory_budget, bool):
        if memory_budget >= 1:
            return int(memory_budget)
    elif isinstance(memory_budget, str):
        match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([a-zA-Z]*)\s*", memory_budget)
        if match and match.group(2).lower() in _UNITS | {"": 1}:
            value = float(match.group(1)) * _UNITS.get(match.group(2).lower(), 1)
            if value >= 1:
                return int(value)
    raise ValueError(
        f"memory_budget={memory_budget!r} is not valid: pass an int >= 1 (bytes), a string "
        "such as '512MiB', '4GB' or '1GiB' (units B, KB, MB, GB, TB, KiB, MiB, GiB, TiB), or "
        "None (no limit)")


def select_group_within_budget(X: np.ndarray, k: int, *, memory_budget: int | None,
                               optimizer: str = "lazy", weights: str = "cluster",
                               metric: str = "euclidean", epsilon: float = 0.1,
                               radius: float = 2.0, random_state=None
                               ) -> tuple[GroupSelection, str]:
    """Dense exact selection if the group fits ``memory_budget`` bytes, blocked otherwise.

    Returns the selection and the path taken: ``"dense-<optimizer>"`` (the similarity matrix,
    :func:`~sk_crust._facility_location.select_group`), ``"blocked-centrality"`` (exact row
    sums in blocks) or ``"blocked-stochastic"`` (``lazy``, ``naive`` and ``stochastic`` become
    the blocked stochastic greedy with ``epsilon``).
    """
    if memory_budget is None or dense_bytes(X.shape[0], X.shape[1]) <= memory_budget:
        return (select_group(X, k, optimizer=optimizer, weights=weights, metric=metric,
                             epsilon=epsilon, radius=radius, random_state=random_state),
                f"dense-{optimizer}")
    # The batched greedy holds _BATCH_VALUES float32 (64 MiB) of rows: allowed when that is at
    # most a quarter of the budget. Otherwise stream blocks of points sized so that a sample of
    # up to 64 candidates x block x float32, with two temporaries, stays within a quarter of it.
    path = "blocked-centrality" if optimizer == "centrality" else "blocked-stochastic"
    if memory_budget >= 16 * _BATCH_VALUES:
        block_rows = None
    else:
        block_rows = max(64, min(X.shape[0], memory_budget // (4 * 3 * 4 * 64)))
    return (select_group_blocked(X, k, optimizer=optimizer, weights=weights, metric=metric,
                                 epsilon=epsilon, radius=radius, random_state=random_state,
                                 block_rows=block_rows), path)
