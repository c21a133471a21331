"""Compiled (numba) kernels for the greedy facility-location loops, used when numba is installed.

Why numba: the exact lazy greedy spends its time in ``sum_i max(s_ji - cover_i, 0)`` over one row
at a time (10 to 50 rows per pick), plus O(n) bookkeeping per pick. NumPy needs a temporary and
several passes per row and a Python-level loop per pick; a compiled loop with a binary heap does
one SIMD pass per row and no allocation, which measured ~4x faster on the whole lazy greedy
(n=5000, d=64, k=50%; see ``benchmarks/results/selection_speed.md``). numba is optional: without
it (or with ``SK_CRUST_NUMBA=0`` in the environment) the engines use their NumPy code (the switch
is :data:`._rules.kernels`).

The rules are those of :mod:`._rules` (the cover update, the gain, the tie rule), in compiled
form: a compiled loop cannot call the NumPy statement of a rule, so each kernel names the rule it
compiles. Every optimizer that runs here gets its gains from the one function :func:`_gain`,
so ``lazy`` and ``naive`` (and ``stochastic``'s evaluations) see bitwise-identical gains and make
the same choices, ties included (lowest index first). Gains are accumulated in float32 SIMD lanes
(``fastmath`` lets the compiler reorder the sum), then returned as float64: they can differ from
the NumPy path's gains in the last bits, never within one backend.

Prior validation is assumed: ``S`` is a C-contiguous float32 ``(n, n)`` array with entries >= 0
and ``1 <= k <= n``.
"""

from __future__ import annotations

import numba
import numpy as np

_jit = numba.njit(cache=True, nogil=True)


@numba.njit(cache=True, nogil=True, fastmath=True)
def _gain(S, j, cover):
    row = S[j]
    total = np.float32(0.0)
    zero = np.float32(0.0)
    for i in range(row.shape[0]):
        total += max(row[i] - cover[i], zero)
    return np.float64(total)


@_jit
def row_gains(S, rows, cover):
    """Gains of the candidates ``rows`` (int64 positions) against the running ``cover``."""
    out = np.empty(rows.shape[0], dtype=np.float64)
    for r in range(rows.shape[0]):
        out[r] = _gain(S, rows[r], cover)
    return out


@_jit
def _cover_add(S, j, t, cover, assignment):
    # The compiled form of ``_rules.Cover.add``: strictly greater, so ties keep the earlier pick.
    row = S[j]
    for i in range(row.shape[0]):
        if row[i] > cover[i]:
            cover[i] = row[i]
            assignment[i] = t


@_jit
def _before(keys, ids, a, b):
    # Heap order: larger bound first, lower index first among equal bounds (naive's argmax rule).
    return keys[a] > keys[b] or (keys[a] == keys[b] and ids[a] < ids[b])


@_jit
def _sift_down(keys, ids, size, i):
    while True:
        left = 2 * i + 1
        best = i
        if left < size and _before(keys, ids, left, best):
            best = left
        if left + 1 < size and _before(keys, ids, left + 1, best):
            best = left + 1
        if best == i:
            return
        keys[i], keys[best] = keys[best], keys[i]
        ids[i], ids[best] = ids[best], ids[i]
        i = best


@_jit
def greedy_lazy(S, k):
    """Exact lazy greedy with a max-heap of stale bounds: returns (indices, gains, assignment).

    The heap top is refreshed until a bound computed at the current step is on top. A stale bound
    is >= its true gain (submodularity) and equal bounds pop lowest index first, so the first fresh
    top has the largest gain and the lowest index among ties: the naive greedy's pick.
    """
    n = S.shape[0]
    cover = np.zeros(n, dtype=np.float32)
    assignment = np.zeros(n, dtype=np.intp)
    keys = np.empty(n, dtype=np.float64)
    ids = np.arange(n)
    for j in range(n):
        keys[j] = _gain(S, j, cover)
    for i in range(n // 2 - 1, -1, -1):  # heapify
        _sift_down(keys, ids, n, i)
    fresh_at = np.zeros(n, dtype=np.intp)  # the step at which each bound was computed
    size = n
    indices = np.empty(k, dtype=np.intp)
    gains = np.empty(k, dtype=np.float64)
    for t in range(k):
        while fresh_at[ids[0]] != t:
            j = ids[0]
            keys[0] = _gain(S, j, cover)
            fresh_at[j] = t
            _sift_down(keys, ids, size, 0)
        indices[t] = ids[0]
        gains[t] = keys[0]
        size -= 1  # pop the pick
        keys[0] = keys[size]
        ids[0] = ids[size]
        _sift_down(keys, ids, size, 0)
        _cover_add(S, indices[t], t, cover, assignment)
    return indices, gains, assignment


@_jit
def greedy_naive(S, k):
    """Reference greedy: every unselected candidate's gain at every step."""
    n = S.shape[0]
    cover = np.zeros(n, dtype=np.float32)
    assignment = np.zeros(n, dtype=np.intp)
    selected = np.zeros(n, dtype=np.bool_)
    indices = np.empty(k, dtype=np.intp)
    gains = np.empty(k, dtype=np.float64)
    for t in range(k):
        best = -np.inf
        pick = -1
        for j in range(n):
            if not selected[j]:
                g = _gain(S, j, cover)
                if g > best:  # strict: the lowest index wins ties
                    best = g
                    pick = j
        selected[pick] = True
        indices[t] = pick
        gains[t] = best
        _cover_add(S, pick, t, cover, assignment)
    return indices, gains, assignment


@_jit
def cover_add(S, j, t, cover, assignment):
    """Add pick ``j`` (the ``t``-th) to the running cover, in place."""
    _cover_add(S, j, t, cover, assignment)


@numba.njit(cache=True, nogil=True, fastmath=True)
def finish_distances(D, sq_rows, sq_cols, metric):
    """Turn the products ``D = X_rows @ X_cols.T`` into distances, in place, in one pass.

    ``metric``: 0 euclidean, 1 squared euclidean, 2 cosine (unit vectors). Same formulas and
    clamping as ``_similarity.finish_distances``; NumPy needs four passes over ``D`` (scale, two
    broadcast adds, clamp, square root), which cost more than the matrix product itself at d=64.
    """
    zero = np.float32(0.0)
    two = np.float32(2.0)
    one = np.float32(1.0)
    if metric == 2:
        for r in range(D.shape[0]):
            for c in range(D.shape[1]):
                D[r, c] = min(max(one - D[r, c], zero), two)
        return
    for r in range(D.shape[0]):
        a = sq_rows[r]
        if metric == 0:
            for c in range(D.shape[1]):
                D[r, c] = np.sqrt(max(a + sq_cols[c] - two * D[r, c], zero))
        else:
            for c in range(D.shape[1]):
                D[r, c] = max(a + sq_cols[c] - two * D[r, c], zero)


@_jit
def fold_rows(R, t0, cover, assignment):
    """Add the rows of ``R`` (picks ``t0``, ``t0 + 1``, ...) to the cover in order; their gains.

    The compiled form of ``_rules.fold_rows``.
    """
    gains = np.empty(R.shape[0], dtype=np.float64)
    for r in range(R.shape[0]):
        gains[r] = _gain(R, r, cover)
        cover_add(R, r, t0 + r, cover, assignment)
    return gains


@numba.njit(cache=True, nogil=True, fastmath=True, inline="always")
def _distance(product, sq_a, sq_b, metric):
    # One entry of ``finish_distances``: the same formula and clamping.
    zero = np.float32(0.0)
    if metric == 2:
        return min(max(np.float32(1.0) - product, zero), np.float32(2.0))
    value = max(sq_a + sq_b - np.float32(2.0) * product, zero)
    return np.sqrt(value) if metric == 0 else value


@numba.njit(cache=True, nogil=True, fastmath=True)
def distance_row_sums(D, sq_rows, sq_cols, metric, skip, out):
    """Float64 row sums of the distances ``finish_distances`` makes of the products ``D``.

    ``D`` is left as it is (one read, no write-back pass). ``skip[r] >= 0`` leaves that column
    out of row ``r``'s sum (a point's distance to itself, which is 0 by the engines' rule).
    """
    for r in range(D.shape[0]):
        a = sq_rows[r]
        total = 0.0
        for c in range(D.shape[1]):
            total += np.float64(_distance(D[r, c], a, sq_cols[c], metric))
        if skip[r] >= 0:
            total -= np.float64(_distance(D[r, skip[r]], a, sq_cols[skip[r]], metric))
        out[r] = total


@numba.njit(cache=True, nogil=True, fastmath=True)
def fold_products(D, sq_rows, sq_cols, metric, d0, self_cols, t0, cover, assignment):
    """``fold_rows`` of the similarity rows ``d0 - distance`` made from the products ``D``.

    Row ``r`` is pick ``t0 + r``, whose own point is column ``self_cols[r]`` (distance 0). Each
    row's similarities are made in one cache-resident scratch row (the same formula as
    ``finish_distances``), then its gain (``_gain``) and cover update (``_cover_add``) are those
    of the rule, so no similarity row is written out to memory.
    """
    gains = np.empty(D.shape[0], dtype=np.float64)
    row = np.empty(D.shape[1], dtype=np.float32)
    zero = np.float32(0.0)
    for r in range(D.shape[0]):
        a = sq_rows[r]
        for i in range(D.shape[1]):
            row[i] = d0 - _distance(D[r, i], a, sq_cols[i], metric)
        row[self_cols[r]] = d0
        total = np.float32(0.0)
        for i in range(row.shape[0]):
            total += max(row[i] - cover[i], zero)
        gains[r] = np.float64(total)
        t = t0 + r
        for i in range(row.shape[0]):
            if row[i] > cover[i]:
                cover[i] = row[i]
                assignment[i] = t
    return gains
