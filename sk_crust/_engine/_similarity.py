"""Distances and similarities of one group of points, as every engine computes them.

For points ``x_1..x_n`` with distances ``d_ij`` the similarity is ``s_ij = d0 - d_ij`` where ``d0``
is the largest distance in the group (the paper's Eq. 10), so every ``s_ij >= 0`` and
``s_ii = d0``. Distances come from one matrix product, ``||a - b||^2 = ||a||^2 + ||b||^2 - 2 a.b``
(:func:`finish_distances`), clamped at 0, with a point's distance to itself exactly 0.

Cosine: points are scaled to unit length first (:func:`unit_rows`), so the distance is
``1 - a.b`` clipped to [0, 2]; a zero vector has no direction and stays zero, which gives it
cosine 0 (distance 1) to every other point.

Arrays in, arrays out; prior validation is assumed.
"""

from __future__ import annotations

import numpy as np

from . import _rules

METRICS = ("euclidean", "sqeuclidean", "cosine")
#: The metric codes of the compiled kernels.
METRIC_CODES = {"euclidean": 0, "sqeuclidean": 1, "cosine": 2}

# Rows of S handled at once when a pass over all points would otherwise allocate n x k.
ROW_BLOCK = 2048
# Values of G per block of medoid_distances (float64: 32 MiB per temporary).
_DISTANCE_BLOCK_VALUES = 1 << 22


def aligned_float32(X) -> np.ndarray:
    """``X`` as a C-contiguous, *aligned* float32 array (a copy only when it is not already one).

    Alignment matters: NumPy hands a matrix product to BLAS only for aligned arrays and otherwise
    runs a loop 5-10x slower. Arrays a Dask worker receives are views into a message buffer at
    any byte offset (measured: address % 64 == 31, ``flags.aligned`` False), and
    ``np.ascontiguousarray`` keeps such a view as it is.
    """
    return np.require(X, dtype=np.float32, requirements=["C", "A"])


def unit_rows(X, norms):
    """``X`` scaled to unit rows by ``norms`` (a column), a zero row left as it is.

    The cosine rule of every engine and of :func:`medoid_distances`: a zero vector has no
    direction, so it keeps cosine 0 to everything (distance 1). Works on NumPy arrays and torch
    tensors alike (``norms + (norms == 0)`` is ``norms`` with 1 where it is 0).
    """
    return X / (norms + (norms == 0))


def _numpy_inplace(D):
    return (lambda A, lo, hi: np.clip(A, lo, hi, out=A) if hi is not None
            else np.maximum(A, lo, out=A)), (lambda A: np.sqrt(A, out=A))


def _torch_inplace(D):
    return (lambda A, lo, hi: A.clamp_(lo, hi)), (lambda A: A.sqrt_())


def finish_distances(D, sq_rows, sq_cols, metric: str, *, compiled_ok: bool = False):
    """Turn the products ``D = X_rows @ X_cols.T`` into distances, in place; returns ``D``.

    ``euclidean``: ``sqrt(max(-2 D + sq_rows + sq_cols, 0))``; ``sqeuclidean`` without the root;
    ``cosine`` (unit rows, :func:`unit_rows`): ``clip(1 - D, 0, 2)``. ``D`` may be a NumPy array
    or a torch tensor: the same operations in the same order. With ``compiled_ok`` and the
    compiled kernels, a C-contiguous NumPy ``D`` is finished in one compiled pass (the same
    formulas; the last bit may differ from the NumPy passes, never within one backend).
    """
    if isinstance(D, np.ndarray):
        kernels = _rules.kernels
        if compiled_ok and kernels is not None and D.flags.c_contiguous:
            kernels.finish_distances(D, sq_rows, sq_cols, METRIC_CODES[metric])
            return D
        clip, sqrt = _numpy_inplace(D)
    else:
        clip, sqrt = _torch_inplace(D)
    if metric == "cosine":
        D *= -1.0
        D += 1.0
        clip(D, 0.0, 2.0)
        return D
    D *= -2.0
    D += sq_rows[:, None]
    D += sq_cols[None, :]
    clip(D, 0.0, None)
    if metric == "euclidean":
        sqrt(D)
    return D


def zero_self_distances(D, rows, start: int, stop: int) -> None:
    """Set ``D[r, rows[r] - start] = 0`` for the rows whose point is among columns start..stop.

    A point's distance to itself is exactly 0, whatever the rounding of the product. ``D`` and
    ``rows`` may be NumPy arrays or torch tensors.
    """
    inside = (rows >= start) & (rows < stop)
    if inside.any():
        D[inside, rows[inside] - start] = 0.0


def pairwise_distances(X: np.ndarray, *, metric: str = "euclidean") -> np.ndarray:
    """Dense ``(n, n)`` float32 distance matrix computed with one matrix product."""
    X = aligned_float32(X)
    if metric == "cosine":
        X = unit_rows(X, np.linalg.norm(X, axis=1, keepdims=True))
        sq = np.zeros(len(X), dtype=np.float32)  # not read by the cosine finish
    else:
        sq = np.einsum("ij,ij->i", X, X)
    # One compiled pass where numba is installed: NumPy's four passes over the n x n matrix cost
    # more than the product itself when d is small (gradient features: d = n_classes).
    D = finish_distances(X @ X.T, sq, sq, metric, compiled_ok=True)
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
    for start in range(0, S.shape[1], ROW_BLOCK):
        block = S[indices, start:start + ROW_BLOCK]
        total += float(block.max(axis=0).sum(dtype=np.float64))
    return total


def d0_from_radius(radius: float, metric: str) -> float:
    """The d0 bound, in ``metric``, from the largest Euclidean distance of a point to the mean.

    Every pairwise distance is at most twice that radius (triangle inequality); shared by the
    blocked engine and the torch engine so both use the same constant. Any ``d0`` at least the
    largest distance leaves every greedy decision unchanged: ``F_{d0'}(S) = F_{d0}(S) +
    n (d0' - d0)`` for every non-empty ``S`` (each point's best similarity moves by the same
    constant), so only the first gain and the objective carry the offset.

    Examples
    --------
    >>> from sk_crust._engine._similarity import d0_from_radius
    >>> round(d0_from_radius(1.0, "euclidean"), 4), round(d0_from_radius(10.0, "cosine"), 4)
    (2.0, 2.0)
    """
    # A few ulps above, so that float32 rounding of a distance never exceeds it.
    diameter = 2.0 * radius * (1.0 + 1e-5) + 1e-6
    if metric == "euclidean":
        return diameter
    if metric == "sqeuclidean":
        return diameter ** 2
    # cosine: with unit vectors, 1 - cos(a, b) = ||a - b||^2 / 2, and never more than 2.
    return min(2.0, diameter ** 2 / 2.0)


class Points:
    """The data of one group, prepared once for similarity rows computed block by block.

    Stores float32 points (unit rows for the cosine metric, so that its distance is ``1 - a.b``)
    and their squared norms, the two things every block needs.
    """

    def __init__(self, X: np.ndarray, metric: str):
        X = aligned_float32(X)  # BLAS needs aligned data (see aligned_float32)
        if metric == "cosine":
            X = unit_rows(X, np.linalg.norm(X, axis=1, keepdims=True))
        self.X = X
        self.metric = metric
        self.sq = np.einsum("ij,ij->i", X, X)
        self.n = X.shape[0]

    def d0_bound(self) -> float:
        """An upper bound of the largest pairwise distance, in O(n d) (:func:`d0_from_radius`)."""
        if self.n == 0:
            return 0.0
        center = self.X.mean(axis=0, dtype=np.float64)
        radius = float(np.sqrt(np.max(np.einsum(
            "ij,ij->i", self.X - center.astype(np.float32), self.X - center.astype(np.float32)))))
        return d0_from_radius(radius, self.metric)

    def distances(self, rows: np.ndarray, start: int, stop: int,
                  out: np.ndarray | None = None) -> np.ndarray:
        """Distances ``(len(rows), stop - start)`` from the points ``rows`` to points start..stop.

        :func:`finish_distances` (compiled when available: one pass instead of four, which cost
        more than the matrix product itself at d=64) and :func:`zero_self_distances`.
        """
        D = np.matmul(self.X[rows], self.X[start:stop].T, out=out)
        finish_distances(D, self.sq[rows], self.sq[start:stop], self.metric, compiled_ok=True)
        zero_self_distances(D, rows, start, stop)
        return D


def similarity_rows(P: Points, ids: np.ndarray, d0: np.float32,
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
    if _rules.kernels is not None:
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


def medoid_distances(G: np.ndarray, indices: np.ndarray, labels: np.ndarray, *,
                     metric: str = "euclidean") -> np.ndarray:
    """Distance of every sample to the medoid it is assigned to (0 for the medoids), float64.

    Parameters
    ----------
    G : ndarray of shape (n_samples, n_features)
    indices : ndarray of shape (n_selected,)
        Rows of the medoids.
    labels : ndarray of shape (n_samples,)
        Position in ``indices`` of each sample's medoid.
    metric : {"euclidean", "sqeuclidean", "cosine"}, default="euclidean"

    Returns
    -------
    distances : ndarray of shape (n_samples,), float64

    Examples
    --------
    >>> import numpy as np
    >>> from sk_crust._engine._similarity import medoid_distances
    >>> G = np.array([[0.0, 0.0], [3.0, 4.0], [1.0, 0.0]])
    >>> medoid_distances(G, np.array([0]), np.array([0, 0, 0])).tolist()
    [0.0, 5.0, 1.0]
    """
    G = np.asarray(G)
    medoid_rows = np.asarray(indices)[np.asarray(labels)]
    out = np.empty(G.shape[0], dtype=np.float64)
    # In blocks of rows: the float64 copies of a whole 10^6 x 64 float32 G (and of its medoids,
    # and their difference) took ~2 GiB, more than the blocked selection itself.
    step = max(1, _DISTANCE_BLOCK_VALUES // max(G.shape[1], 1))
    for start in range(0, G.shape[0], step):
        A = G[start:start + step].astype(np.float64)
        M = G[medoid_rows[start:start + step]].astype(np.float64)
        if metric == "cosine":
            A = unit_rows(A, np.linalg.norm(A, axis=1, keepdims=True))
            M = unit_rows(M, np.linalg.norm(M, axis=1, keepdims=True))
            out[start:start + step] = np.clip(1.0 - np.einsum("ij,ij->i", A, M), 0.0, 2.0)
        else:
            A -= M
            out[start:start + step] = np.einsum("ij,ij->i", A, A)
    if metric == "cosine":  # a zero vector's distance to itself (a medoid) is still 0
        out[medoid_rows == np.arange(G.shape[0])] = 0.0
    return np.sqrt(out, out=out) if metric == "euclidean" else out


def center_distances(G: np.ndarray, indices: np.ndarray, labels: np.ndarray,
                     group_of_selected: np.ndarray, *, metric: str = "euclidean") -> np.ndarray:
    """Distance of every sample to its group's first selected point (its most central one).

    ``indices`` lists the selected rows group by group, each group in greedy order, so the first
    selected row of a group is the one with the largest gain (for exact greedy and centrality, the
    largest similarity row sum).

    Examples
    --------
    >>> import numpy as np
    >>> from sk_crust._engine._similarity import center_distances
    >>> G = np.array([[0.0], [1.0], [9.0], [10.0]])
    >>> center_distances(G, np.array([1, 0, 3]), np.array([1, 0, 2, 2]), np.array([0, 0, 1])
    ...                  ).tolist()
    [1.0, 0.0, 1.0, 0.0]
    """
    group_of_selected = np.asarray(group_of_selected)
    first = np.full(int(group_of_selected.max(initial=-1)) + 1, -1, dtype=np.intp)
    positions = np.arange(len(group_of_selected))
    # The first position of each group: assign in reverse so that the earliest write wins.
    first[group_of_selected[::-1]] = positions[::-1]
    centre_of_sample = first[group_of_selected[np.asarray(labels)]]
    return medoid_distances(G, indices, centre_of_sample, metric=metric)
