"""Facility location on one group of points: distances, objective, greedy optimizers, weights.

This module is the numeric core of sk_crust. It takes arrays and returns arrays; it knows nothing
about estimators, labels or torch, so it can be tested, benchmarked and distributed on its own.
Prior validation of the data is assumed (the estimators in ``_selector.py`` do it).

Conventions
-----------
For points ``x_1..x_n`` with distances ``d_ij`` the similarity is ``s_ij = d0 - d_ij`` where ``d0`` is
the largest distance in the group (the paper's Eq. 10), so every ``s_ij >= 0`` and ``s_ii = d0``.
The facility-location objective of a set ``S`` is ``F(S) = sum_i max_{j in S} s_ij`` (``F({}) = 0``).
It is monotone submodular, so greedy maximisation is a ``1 - 1/e`` approximation.

``S[j]`` (a row) is always read as "the similarity of every point to candidate ``j``", so the
greedy optimizers never need the matrix to be bitwise symmetric.
"""

from __future__ import annotations

import math
import os
from typing import NamedTuple

import numpy as np

# Compiled greedy loops when numba is installed (optional: ``pip install sk-crust[fast]``), about
# 4x faster on the exact lazy greedy; ``SK_CRUST_NUMBA=0`` forces the NumPy code. See _kernels.py.
_kernels = None
if os.environ.get("SK_CRUST_NUMBA", "1") != "0":
    try:
        from . import _kernels
    except ImportError:  # numba missing or incompatible with this NumPy
        _kernels = None

METRICS = ("euclidean", "sqeuclidean", "cosine")
OPTIMIZERS = ("naive", "lazy", "stochastic", "centrality")
WEIGHTS = ("cluster", "radius", "uniform")

# Rows of S handled at once when a pass over all points would otherwise allocate n x k.
_ROW_BLOCK = 2048
# Values (rows x columns) per block when computing marginal gains: 256 KiB of float32, cache-sized.
_GAIN_BLOCK = 1 << 16


class FacilityLocationResult(NamedTuple):
    """What a greedy optimizer returns for one group of points.

    Attributes
    ----------
    indices : ndarray of shape (k,)
        Positions of the selected points, in the order the optimizer picked them.
    gains : ndarray of shape (k,)
        Marginal gain ``F(S_t) - F(S_{t-1})`` of each pick, in the same order.
    """

    indices: np.ndarray
    gains: np.ndarray
    assignment: np.ndarray


class _Cover:
    """The running ``max_{j in S} s_ij`` of every point, and which pick attains it.

    Shared by all optimizers so that the nearest-medoid assignment comes for free during the greedy
    loop (O(n) per pick) instead of an O(n k) pass afterwards. Ties keep the earlier pick.
    """

    def __init__(self, n: int):
        self.value = np.zeros(n, dtype=np.float32)
        self.assignment = np.zeros(n, dtype=np.intp)

    def add(self, row: np.ndarray, t: int) -> None:
        self.assignment[row > self.value] = t
        np.maximum(self.value, row, out=self.value)


def aligned_float32(X) -> np.ndarray:
    """``X`` as a C-contiguous, *aligned* float32 array (a copy only when it is not already one).

    Alignment matters: NumPy hands a matrix product to BLAS only for aligned arrays and otherwise
    runs a loop 5-10x slower. Arrays a Dask worker receives are views into a message buffer at
    any byte offset (measured: address % 64 == 31, ``flags.aligned`` False), and
    ``np.ascontiguousarray`` keeps such a view as it is.
    """
    return np.require(X, dtype=np.float32, requirements=["C", "A"])


def pairwise_distances(X: np.ndarray, *, metric: str = "euclidean") -> np.ndarray:
    """Dense ``(n, n)`` float32 distance matrix computed with one matrix product.

    ``||a - b||^2 = ||a||^2 + ||b||^2 - 2 a.b``, clamped at 0 (rounding can make it slightly
    negative) and with an exact zero diagonal.
    """
    X = aligned_float32(X)
    if metric == "cosine":
        norms = np.linalg.norm(X, axis=1, keepdims=True)
        # A zero vector has no direction: give it unit distance-1 to everything (cosine of 0).
        Xn = X / np.where(norms == 0, 1, norms)
        D = Xn @ Xn.T
        np.subtract(1.0, D, out=D)
        np.clip(D, 0.0, 2.0, out=D)
    else:
        sq = np.einsum("ij,ij->i", X, X)
        D = X @ X.T
        D *= -2.0
        D += sq[:, None]
        D += sq[None, :]
        np.maximum(D, 0.0, out=D)
        if metric == "euclidean":
            np.sqrt(D, out=D)
    np.fill_diagonal(D, 0.0)
    return D


def similarity_matrix(X: np.ndarray, *, metric: str = "euclidean") -> tuple[np.ndarray, float]:
    """Similarity ``S = d0 - D`` (float32, in place of D) and the constant ``d0 = max(D)``."""
    S = pairwise_distances(X, metric=metric)
    d0 = float(S.max()) if S.size else 0.0
    np.subtract(np.float32(d0), S, out=S)
    return S, d0


def objective(S: np.ndarray, indices: np.ndarray) -> float:
    """Facility-location objective ``F(S) = sum_i max_{j in S} s_ij`` (0 for an empty set)."""
    indices = np.asarray(indices, dtype=np.intp)
    if indices.size == 0:
        return 0.0
    total = 0.0
    for start in range(0, S.shape[1], _ROW_BLOCK):
        block = S[indices, start:start + _ROW_BLOCK]
        total += float(block.max(axis=0).sum(dtype=np.float64))
    return total


def _row_gains(S_rows: np.ndarray, cover: np.ndarray, *, rows: np.ndarray | None = None,
               buffer: np.ndarray | None = None) -> np.ndarray:
    """Marginal gains ``sum_i max(S[j, i] - cover_i, 0)`` of the candidates whose rows are given.

    Every optimizer computes gains through this one function, so that the same candidate gets the
    bitwise-same gain whichever optimizer asks: each row is reduced on its own (contiguous float32,
    pairwise summation), independently of how many rows are passed. This is what makes ``lazy``
    reproduce ``naive`` exactly.

    With ``rows``, the gains are those of ``S_rows[rows]``, gathered block by block into ``buffer``
    (a C-contiguous array with ``S_rows.shape[1]`` columns, of ``S_rows``'s float type) instead of a fresh copy. Rows
    are processed in blocks of about 64K values either way, so that the working set stays in cache
    and no ``(len(rows), n)`` temporary is allocated: a large temporary costs page faults on every
    call, which dominated the lazy greedy's refreshes before.
    """
    if _compiled(S_rows, cover):
        rows = np.arange(S_rows.shape[0]) if rows is None else np.asarray(rows, dtype=np.intp)
        return _kernels.row_gains(S_rows, rows, cover)
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


def _compiled(S: np.ndarray, cover: np.ndarray | None = None) -> bool:
    """Whether the numba kernels apply: installed, and float32 C-contiguous data."""
    return (_kernels is not None and S.dtype == np.float32 and S.flags.c_contiguous
            and (cover is None or (cover.dtype == np.float32 and cover.flags.c_contiguous)))


def greedy_naive(S: np.ndarray, k: int) -> FacilityLocationResult:
    """Reference greedy: recompute every candidate's gain at every step (O(k n^2)).

    Ties are broken towards the lowest index. Meant for tests and small problems.
    """
    if _compiled(S) and S.shape[0] == S.shape[1]:
        return FacilityLocationResult(*_kernels.greedy_naive(S, k))
    n = S.shape[0]
    cover = _Cover(n)
    selected = np.zeros(n, dtype=bool)
    indices = np.empty(k, dtype=np.intp)
    gains = np.empty(k, dtype=np.float64)
    for t in range(k):
        g = _row_gains(S, cover.value)
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
    Gains come from the same :func:`_row_gains`, so the result is identical, ties included.

    The cost per pick is a few O(n) passes over the bound array plus one O(n) row reduction per
    refreshed candidate (typically 10 to 50 of them), instead of the naive O(n^2).

    With numba installed the same rule runs compiled, with a binary heap of the bounds instead of
    the block refreshes (``_kernels.greedy_lazy``; ``batch`` is then unused).
    """
    if _compiled(S) and S.shape[0] == S.shape[1]:
        return FacilityLocationResult(*_kernels.greedy_lazy(S, k))
    n = S.shape[0]
    batch = max(1, min(batch, n))
    cover = _Cover(n)
    buffer = np.empty((batch, n), dtype=np.result_type(S.dtype, np.float32))
    bound = _row_gains(S, cover.value)  # exact at step 0 (these are the centrality row sums)
    indices = np.empty(k, dtype=np.intp)
    gains = np.empty(k, dtype=np.float64)
    for t in range(k):
        j = int(np.argmax(bound))
        if t > 0:  # bounds from earlier steps are stale
            best = bound[j] = _row_gains(S, cover.value, rows=np.array([j]), buffer=buffer)[0]
            cand = np.flatnonzero(bound >= best)  # j itself, and every candidate that may beat it
            cand = cand[cand != j]
            if cand.size:
                if cand.size > batch:
                    cand = cand[np.argsort(-bound[cand], kind="stable")]
                while cand.size:
                    head, cand = cand[:batch], cand[batch:]
                    fresh = _row_gains(S, cover.value, rows=head, buffer=buffer)
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

    Each step evaluates a uniform random sample of ``ceil(n / k * log(1 / epsilon))`` unselected
    candidates and keeps the best: ``(1 - 1/e - epsilon)`` in expectation, with O(n log(1/eps))
    gain evaluations per step instead of O(n).
    """
    rng = _as_generator(random_state)
    n = S.shape[0]
    sample = max(1, min(n, int(math.ceil(n / max(k, 1) * math.log(1.0 / epsilon)))))
    cover = _Cover(n)
    remaining = np.arange(n)
    buffer = np.empty((min(sample, max(1, _GAIN_BLOCK // max(n, 1))), n),
                      dtype=np.result_type(S.dtype, np.float32))
    indices = np.empty(k, dtype=np.intp)
    gains = np.empty(k, dtype=np.float64)
    for t in range(k):
        m = remaining.size
        pos = rng.choice(m, size=sample, replace=False) if sample < m else np.arange(m)
        cand = remaining[pos]
        g = _row_gains(S, cover.value, rows=cand, buffer=buffer)
        best = int(np.argmax(g))
        j = int(cand[best])
        indices[t], gains[t] = j, g[best]
        remaining = np.delete(remaining, pos[best])
        cover.add(S[j], t)
    return FacilityLocationResult(indices, gains, cover.assignment)


def top_centrality(S: np.ndarray, k: int) -> FacilityLocationResult:
    """The ``k`` most central points: largest similarity row sums (ties: lowest index first).

    This is what the official CRUST code's "lazy greedy" effectively returns: its gains are never
    updated after the first step, so its order is the order of the first-step gains. It picks the
    densest points of a group rather than diverse medoids, which is why its coresets are cleaner
    under label noise. Gains are the true marginal gains of that sequence.
    """
    n = S.shape[0]
    cover = _Cover(n)
    scores = _row_gains(S, cover.value)
    order = np.argsort(-scores, kind="stable")[:k].astype(np.intp)
    gains = np.empty(k, dtype=np.float64)
    for t, j in enumerate(order):
        gains[t] = _row_gains(S[j:j + 1], cover.value)[0]
        cover.add(S[j], t)
    return FacilityLocationResult(order, gains, cover.assignment)


def nearest_selected(S: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """For every point, the position in ``indices`` of its most similar selected point.

    Ties go to the earlier pick. Rows are processed in blocks so memory stays O(block * k).
    """
    indices = np.asarray(indices, dtype=np.intp)
    n = S.shape[0]
    out = np.empty(n, dtype=np.intp)
    for start in range(0, n, _ROW_BLOCK):
        out[start:start + _ROW_BLOCK] = S[indices, start:start + _ROW_BLOCK].argmax(axis=0)
    return out


def coreset_weights(S: np.ndarray, indices: np.ndarray, assignment: np.ndarray, *,
                    weights: str = "cluster", d0: float = 0.0, radius: float = 2.0) -> np.ndarray:
    """Weight of each selected point.

    ``"cluster"``: the number of points whose nearest selected point it is (the paper); the
    weights sum to ``n``. ``"radius"``: the number of points within distance ``radius`` of it,
    itself included (the official code); with typical gradient norms this is close to 1.
    ``"uniform"``: ``n / k`` for every point, so that the weights also sum to ``n`` and the three
    schemes put the same total mass on the loss.
    """
    k = len(indices)
    n = S.shape[0]
    if weights == "cluster":
        return np.bincount(assignment, minlength=k).astype(np.float64)
    if weights == "uniform":
        return np.full(k, n / k, dtype=np.float64)
    if weights == "radius":
        # d_ij <= r  <=>  s_ij >= d0 - r
        threshold = np.float32(d0 - radius)
        counts = np.zeros(k, dtype=np.float64)
        for start in range(0, n, _ROW_BLOCK):
            counts += (S[indices, start:start + _ROW_BLOCK] >= threshold).sum(axis=1)
        return counts
    raise ValueError(f"weights={weights!r} is not valid: pass one of {WEIGHTS}")


def run_optimizer(S: np.ndarray, k: int, *, optimizer: str = "lazy", epsilon: float = 0.1,
                  random_state=None) -> FacilityLocationResult:
    """Dispatch to one of :data:`OPTIMIZERS` on a precomputed similarity matrix."""
    if optimizer == "lazy":
        return greedy_lazy(S, k)
    if optimizer == "naive":
        return greedy_naive(S, k)
    if optimizer == "stochastic":
        return greedy_stochastic(S, k, epsilon=epsilon, random_state=random_state)
    if optimizer == "centrality":
        return top_centrality(S, k)
    raise ValueError(f"optimizer={optimizer!r} is not valid: pass one of {OPTIMIZERS}")


class GroupSelection(NamedTuple):
    """Selection in one group: positions are local to the group's rows."""

    indices: np.ndarray      # selected positions, greedy order
    weights: np.ndarray      # weight of each selected point
    gains: np.ndarray        # marginal gain of each pick
    assignment: np.ndarray   # (n,) position in ``indices`` of each point's nearest selected point
    objective: float         # F(indices)


def select_group(X: np.ndarray, k: int, *, optimizer: str = "lazy", weights: str = "cluster",
                 metric: str = "euclidean", epsilon: float = 0.1, radius: float = 2.0,
                 random_state=None) -> GroupSelection:
    """Select ``k`` weighted medoids among the rows of ``X`` by facility location.

    Prior validation is assumed: ``X`` is a finite 2-D float array and ``1 <= k <= len(X)``.
    """
    S, d0 = similarity_matrix(X, metric=metric)
    result = run_optimizer(S, k, optimizer=optimizer, epsilon=epsilon, random_state=random_state)
    # A medoid always belongs to its own cluster. With duplicated points a later pick ties with an
    # earlier one (ties keep the earlier pick), which would leave it an empty cluster, weight 0.
    result.assignment[result.indices] = np.arange(len(result.indices))
    w = coreset_weights(S, result.indices, result.assignment, weights=weights, d0=d0,
                        radius=radius)
    return GroupSelection(result.indices, w, result.gains, result.assignment,
                          float(result.gains.sum()))


def _as_generator(random_state) -> np.random.Generator:
    """Accept None, an int, a numpy Generator or a legacy RandomState."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(np.iinfo(np.int32).max))
    return np.random.default_rng(random_state)
