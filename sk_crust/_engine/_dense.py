"""The dense engine: the ``(n, n)`` similarity matrix in memory, and the greedy optimizers on it.

The facility-location objective of a set ``S`` is ``F(S) = sum_i max_{j in S} s_ij``
(``F({}) = 0``). It is monotone submodular, so greedy maximisation is a ``1 - 1/e``
approximation. ``S[j]`` (a row) is always read as "the similarity of every point to candidate
``j``", so the optimizers never need the matrix to be bitwise symmetric.

The cover update, the stochastic greedy's sample size and loop, the weights and the last step
are those of :mod:`._rules`; the distances those of :mod:`._similarity`. Prior validation of the
data is assumed.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import _rules
from ._rules import (
    OPTIMIZERS,
    Cover,
    GroupSelection,
    as_generator,
    centrality_reference,
    compiled,
    finalize,
    fold_rows,
    radius_threshold,
    stochastic_greedy,
    stochastic_sample_size,
)
from ._similarity import ROW_BLOCK, Points, objective, similarity_matrix

__all__ = ["DENSE_OPTIMIZERS", "FacilityLocationResult", "dense_bytes", "fits_dense", "greedy_lazy",
           "greedy_naive", "greedy_stochastic", "nearest_selected", "objective", "radius_counts",
           "row_gains", "run_optimizer", "select_group_dense", "similarity_matrix",
           "top_centrality"]

# Values (rows x columns) per block when computing marginal gains: 256 KiB of float32, cache-sized.
_GAIN_BLOCK = 1 << 16
# Picks folded into the cover at once by top_centrality.
_FOLD_ROWS = 64


class FacilityLocationResult(NamedTuple):
    """What a greedy optimizer returns for one group of points.

    Attributes
    ----------
    indices : ndarray of shape (k,)
        Positions of the selected points, in the order the optimizer picked them.
    gains : ndarray of shape (k,)
        Marginal gain ``F(S_t) - F(S_{t-1})`` of each pick, in the same order.
    assignment : ndarray of shape (n,)
        Position in ``indices`` of each point's most similar selected point (ties: the earlier).
    """

    indices: np.ndarray
    gains: np.ndarray
    assignment: np.ndarray


def dense_bytes(n: int, d: int) -> int:
    """Bytes the dense engine needs for one group of ``n`` points in ``d`` dimensions.

    The float32 similarity matrix (4 n^2) dominates; the rest is the float32 copy of the points,
    their norms and the optimizer's O(n) arrays (cover, bounds, assignment: about 32 n bytes).

    Examples
    --------
    >>> from sk_crust._engine._dense import dense_bytes
    >>> dense_bytes(1000, 64)
    4288000
    """
    return 4 * n * n + 4 * n * d + 32 * n


def fits_dense(n: int, d: int, memory_budget: int | None) -> bool:
    """Whether a group of ``n`` points in ``d`` dimensions fits the dense engine's budget."""
    return memory_budget is None or dense_bytes(n, d) <= memory_budget


def row_gains(S_rows: np.ndarray, cover: np.ndarray, *, rows: np.ndarray | None = None,
              buffer: np.ndarray | None = None) -> np.ndarray:
    """Marginal gains ``sum_i max(S[j, i] - cover_i, 0)`` of the candidates whose rows are given.

    Every optimizer computes gains through this one function, so that the same candidate gets the
    bitwise-same gain whichever optimizer asks: each row is reduced on its own (contiguous float32,
    pairwise summation), independently of how many rows are passed. This is what makes ``lazy``
    reproduce ``naive`` exactly.

    With ``rows``, the gains are those of ``S_rows[rows]``, gathered block by block into ``buffer``
    (a C-contiguous array with ``S_rows.shape[1]`` columns, of ``S_rows``'s float type) instead of
    a fresh copy. Rows are processed in blocks of about 64K values either way, so that the working
    set stays in cache and no ``(len(rows), n)`` temporary is allocated: a large temporary costs
    page faults on every call, which dominated the lazy greedy's refreshes before.
    """
    if compiled(S_rows, cover):
        rows = np.arange(S_rows.shape[0]) if rows is None else np.asarray(rows, dtype=np.intp)
        return _rules.kernels.row_gains(S_rows, rows, cover)
    m = S_rows.shape[0] if rows is None else len(rows)
    n = S_rows.shape[1]
    block = max(1, _GAIN_BLOCK // max(n, 1))
    dtype = np.result_type(S_rows.dtype, cover.dtype)
    if buffer is None or buffer.shape[1] != n or buffer.dtype != dtype:
        buffer = np.empty((min(block, max(m, 1)), n), dtype=dtype)
    block = min(block, buffer.shape[0])
    out = np.empty(m, dtype=dtype)
    # max(x, 0) against a row of zeros, not the scalar 0: numpy's SIMD loop only handles the
    # array-array case, and is ~4x faster than the scalar broadcast (same values, bit for bit).
    zeros = np.zeros(n, dtype=dtype)
    for start in range(0, m, block):
        stop = min(start + block, m)
        buf = buffer[:stop - start]
        if rows is None:
            np.subtract(S_rows[start:stop], cover, out=buf)
        else:
            np.take(S_rows, rows[start:stop], axis=0, out=buf)
            np.subtract(buf, cover, out=buf)
        np.maximum(buf, zeros, out=buf)
        buf.sum(axis=1, out=out[start:stop])
    return out


def _square_and_compiled(S: np.ndarray) -> bool:
    return compiled(S) and S.shape[0] == S.shape[1]


def greedy_naive(S: np.ndarray, k: int) -> FacilityLocationResult:
    """Reference greedy: recompute every candidate's gain at every step (O(k n^2)).

    Ties are broken towards the lowest index. Meant for tests and small problems.
    """
    if _square_and_compiled(S):
        return FacilityLocationResult(*_rules.kernels.greedy_naive(S, k))
    n = S.shape[0]
    cover = Cover.zeros(n)
    selected = np.zeros(n, dtype=bool)
    indices = np.empty(k, dtype=np.intp)
    gains = np.empty(k, dtype=np.float64)
    for t in range(k):
        g = row_gains(S, cover.value)
        g[selected] = -np.inf
        j = int(np.argmax(g))
        indices[t], gains[t] = j, g[j]
        selected[j] = True
        cover.add(S[j], t)
    return FacilityLocationResult(indices, gains, cover.assignment)


def greedy_lazy(S: np.ndarray, k: int, *, batch: int = 64) -> FacilityLocationResult:
    """Exact lazy greedy (Minoux): returns exactly the set and order of :func:`greedy_naive`.

    Submodularity makes a gain computed at an earlier step an upper bound of the current one. We
    keep those bounds in an array. At each step the candidate ``j`` with the largest bound is
    refreshed first; its fresh gain ``g`` is a lower bound of the best gain, so only the candidates
    whose bound is ``>= g`` can still win. Those are refreshed together, largest bounds first, in
    blocks of ``batch`` rows (one vectorised gather per block, not one Python iteration per
    candidate), dropping those whose bound has fallen below the best fresh gain seen so far.
    Afterwards every stale bound is below the best fresh gain, so the largest bound is a true gain
    and ``np.argmax`` picks the lowest index among equal ones, the same tie rule as the naive loop.
    Gains come from the same :func:`row_gains`, so the result is identical, ties included.

    The cost per pick is a few O(n) passes over the bound array plus one O(n) row reduction per
    refreshed candidate (typically 10 to 50 of them), instead of the naive O(n^2).

    With numba installed the same rule runs compiled, with a binary heap of the bounds instead of
    the block refreshes (``_numba_kernels.greedy_lazy``; ``batch`` is then unused).
    """
    if _square_and_compiled(S):
        return FacilityLocationResult(*_rules.kernels.greedy_lazy(S, k))
    n = S.shape[0]
    batch = max(1, min(batch, n))
    cover = Cover.zeros(n)
    buffer = np.empty((batch, n), dtype=np.result_type(S.dtype, np.float32))
    bound = row_gains(S, cover.value)  # exact at step 0 (these are the centrality row sums)
    indices = np.empty(k, dtype=np.intp)
    gains = np.empty(k, dtype=np.float64)
    for t in range(k):
        j = int(np.argmax(bound))
        if t > 0:  # bounds from earlier steps are stale
            best = bound[j] = row_gains(S, cover.value, rows=np.array([j]), buffer=buffer)[0]
            cand = np.flatnonzero(bound >= best)  # j itself, and every candidate that may beat it
            cand = cand[cand != j]
            if cand.size:
                if cand.size > batch:
                    cand = cand[np.argsort(-bound[cand], kind="stable")]
                while cand.size:
                    head, cand = cand[:batch], cand[batch:]
                    fresh = row_gains(S, cover.value, rows=head, buffer=buffer)
                    bound[head] = fresh
                    best = max(best, fresh.max())
                    if cand.size:
                        cand = cand[bound[cand] >= best]
                j = int(np.argmax(bound))
        indices[t], gains[t] = j, bound[j]
        bound[j] = -np.inf  # never picked again
        cover.add(S[j], t)
    return FacilityLocationResult(indices, gains, cover.assignment)


def greedy_stochastic(S: np.ndarray, k: int, *, epsilon: float = 0.1,
                      random_state: np.random.Generator | np.random.RandomState | int | None = None
                      ) -> FacilityLocationResult:
    """Stochastic greedy ("lazier than lazy greedy", Mirzasoleiman et al., AAAI 2015).

    The loop of :func:`._rules.stochastic_greedy` with gains from the rows of ``S``:
    ``(1 - 1/e - epsilon)`` in expectation, with O(n log(1/eps)) gain evaluations per step
    instead of O(n).
    """
    n = S.shape[0]
    sample = stochastic_sample_size(n, k, epsilon)
    cover = Cover.zeros(n)
    buffer = np.empty((min(sample, max(1, _GAIN_BLOCK // max(n, 1))), n),
                      dtype=np.result_type(S.dtype, np.float32))
    indices, gains = stochastic_greedy(
        np.arange(n), k, sample, as_generator(random_state),
        gains_of=lambda cand: row_gains(S, cover.value, rows=cand, buffer=buffer),
        add=lambda best, j, t: cover.add(S[j], t))
    return FacilityLocationResult(indices, gains, cover.assignment)


def top_centrality(S: np.ndarray, k: int) -> FacilityLocationResult:
    """The ``k`` most central points: largest similarity row sums (ties: lowest index first).

    This is what the official CRUST code's "lazy greedy" effectively returns: its gains are never
    updated after the first step, so its order is the order of the first-step gains. It picks the
    densest points of a group rather than diverse medoids, which is why its coresets are cleaner
    under label noise. Gains are the true marginal gains of that sequence, computed for blocks of
    picks at once (:func:`._rules.fold_rows`).
    """
    n = S.shape[0]
    cover = Cover.zeros(n)
    scores = row_gains(S, cover.value)
    order = np.argsort(-scores, kind="stable")[:k].astype(np.intp)
    gains = np.empty(k, dtype=np.float64)
    for t0 in range(0, k, _FOLD_ROWS):
        gains[t0:t0 + _FOLD_ROWS] = fold_rows(S[order[t0:t0 + _FOLD_ROWS]], t0, cover)
    return FacilityLocationResult(order, gains, cover.assignment)


def nearest_selected(S: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """For every point, the position in ``indices`` of its most similar selected point.

    Ties go to the earlier pick. Rows are processed in blocks so memory stays O(block * k).
    """
    indices = np.asarray(indices, dtype=np.intp)
    n = S.shape[0]
    out = np.empty(n, dtype=np.intp)
    for start in range(0, n, ROW_BLOCK):
        out[start:start + ROW_BLOCK] = S[indices, start:start + ROW_BLOCK].argmax(axis=0)
    return out


def radius_counts(S: np.ndarray, indices: np.ndarray, d0: float, radius: float) -> np.ndarray:
    """Points within distance ``radius`` of each selected point (itself included), from ``S``."""
    threshold = radius_threshold(d0, radius)
    counts = np.zeros(len(indices), dtype=np.float64)
    for start in range(0, S.shape[0], ROW_BLOCK):
        counts += (S[indices, start:start + ROW_BLOCK] >= threshold).sum(axis=1)
    return counts


#: The optimizers of the dense engine, by name (:data:`._rules.OPTIMIZERS`).
DENSE_OPTIMIZERS = {
    "naive": lambda S, k, epsilon, rng: greedy_naive(S, k),
    "lazy": lambda S, k, epsilon, rng: greedy_lazy(S, k),
    "stochastic": lambda S, k, epsilon, rng: greedy_stochastic(S, k, epsilon=epsilon,
                                                               random_state=rng),
    "centrality": lambda S, k, epsilon, rng: top_centrality(S, k),
}


def run_optimizer(S: np.ndarray, k: int, *, optimizer: str = "lazy", epsilon: float = 0.1,
                  random_state=None) -> FacilityLocationResult:
    """Run one of :data:`._rules.OPTIMIZERS` on a precomputed similarity matrix."""
    try:
        run = DENSE_OPTIMIZERS[optimizer]
    except KeyError:
        raise ValueError(f"optimizer={optimizer!r} is not valid: pass one of {OPTIMIZERS}") \
            from None
    return run(S, k, epsilon, random_state)


def select_group_dense(X: np.ndarray, k: int, *, optimizer: str = "lazy",
                       weights: str = "cluster", metric: str = "euclidean",
                       epsilon: float = 0.1, radius: float = 2.0, random_state=None,
                       memory_budget: int | None = None,
                       centrality_sample: int | None = None) -> GroupSelection:
    """Select ``k`` weighted medoids among the rows of ``X`` on the dense similarity matrix.

    Prior validation is assumed: ``X`` is a finite 2-D float array and ``1 <= k <= len(X)``.
    ``memory_budget`` is not looked at (the caller chose this engine for it, see
    :func:`sk_crust._engine.select_group`). ``optimizer="centrality"`` on more than
    ``centrality_sample`` points scores them against a random sample of that many
    (:func:`._rules.centrality_reference`) and never makes the matrix.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_crust._engine._dense import select_group_dense
    >>> X = np.array([[0.0], [0.1], [5.0], [5.1]])
    >>> sel = select_group_dense(X, 2)
    >>> sel.indices.tolist(), sel.weights.tolist(), sel.method
    ([2, 0], [2.0, 2.0], 'dense-lazy')
    """
    if optimizer == "centrality":
        reference = centrality_reference(X.shape[0], centrality_sample, random_state)
        if reference is not None or weights != "radius":
            return _centrality_streamed(X, k, weights=weights, metric=metric, radius=radius,
                                        reference=reference)
    S, d0 = similarity_matrix(X, metric=metric)
    result = run_optimizer(S, k, optimizer=optimizer, epsilon=epsilon, random_state=random_state)
    return finalize(result.indices, result.gains, result.assignment, weights=weights,
                    radius_counts=lambda: radius_counts(S, result.indices, d0, radius),
                    method=f"dense-{optimizer}")


def _centrality_streamed(X: np.ndarray, k: int, *, weights: str, metric: str, radius: float,
                         reference: np.ndarray | None) -> GroupSelection:
    """:func:`top_centrality` on the dense engine's similarity without the ``(n, n)`` matrix.

    Centrality needs each row once (its sum) and the picks' rows once more (gains, cover):
    made 256 rows at a time into one reused buffer, they stay in cache and never page-fault a
    fresh ``4 n^2`` bytes, several times faster than filling the whole matrix (the selection of
    every CrustClassifier epoch). ``d0`` is the exact largest distance, as on the matrix; the
    sums are float64 sums of distances, so only a near-tie of row sums can order differently.
    With a ``reference`` sample the scores are mean distances to it and ``d0`` the bound of the
    blocked engine (:func:`._blocked._centrality_blocked`); radius weights are then counted on
    distances, block by block.
    """
    from ._blocked import _centrality_blocked, finalize_blocked

    P = Points(X, metric)
    indices, gains, cover = _centrality_blocked(P, k, d0=None, block_rows=None,
                                                rows_per_block=256, reference=reference)
    return finalize_blocked(P, indices, gains, cover, weights=weights, radius=radius,
                            block_rows=None, method="dense-centrality")
