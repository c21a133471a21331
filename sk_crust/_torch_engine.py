"""Facility location on a torch device (a GPU): distances, gains and the greedy loop stay there.

The NumPy/numba engine (:mod:`._facility_location`, :mod:`._large_scale`) is bound by the CPU's
matrix products: at 10^5 points per class, every similarity row is a 64-wide product with all
points. A GPU makes those products far cheaper (not measured here: no GPU was available), so
this engine keeps the points, the similarity rows, the running cover and the gains on the
device, and only the picks (one int per step) travel back to the host.

Two layouts, chosen by the same ``memory_budget`` as on the CPU (here: bytes of device memory):

* **dense**: the ``(n, n)`` float32 similarity matrix fits the budget; it is made with one matrix
  product and ``d0`` is the exact largest distance (as :func:`~._facility_location.select_group`).
* **streamed**: it does not fit; similarity rows are computed when needed, a chunk of rows per
  matrix product, and ``d0`` is the upper bound ``2 max ||x - mean||`` of
  :mod:`._large_scale` (same greedy decisions, objective offset by ``n (d0' - d0)``).

Optimizers (the same meaning as the CPU engine's):

* ``"lazy"`` and ``"naive"``: the exact greedy, run as a *batched* lazy greedy: the gains of the
  ``_LAZY_BATCH`` candidates with the largest stale upper bounds are refreshed together, until the
  best fresh gain is above every stale bound. Submodularity makes an old gain an upper bound of
  the current one, so the pick is the true argmax (ties: lowest index, as the naive greedy).
  Unlike the CPU engine's blocked path, this stays exact beyond the memory budget: a refresh
  costs ``_LAZY_BATCH`` similarity rows, cheap on a GPU.
* ``"stochastic"``: the stochastic greedy with the CPU engine's sampling sequence (the same
  ``random_state`` draws the same candidate samples).
* ``"centrality"``: the ``k`` largest similarity row sums, then their true marginal gains.

The module takes arrays and returns NumPy arrays (a :class:`~._facility_location.GroupSelection`);
it is imported only when a torch device is asked for, so ``import sk_crust`` stays torch-free.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ._facility_location import GroupSelection, _as_generator, aligned_float32
from ._large_scale import d0_from_radius

# Candidates whose gains one refresh of the lazy greedy evaluates together.
_LAZY_BATCH = 32
# Largest chunk of float32 similarity values one matrix product makes in the streamed layout.
_CHUNK_VALUES = 1 << 26  # 256 MiB


def resolve_device(device) -> torch.device:
    """``device`` as a :class:`torch.device`, with an error naming the accepted values.

    A CUDA device is checked against ``torch.cuda.is_available()`` here, so the failure says what
    is missing instead of surfacing deep in a matrix product.
    """
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device={device!r} is not valid: pass None, 'cpu', 'cuda', 'cuda:N' or a "
                         "torch.device") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} asks for CUDA, but torch.cuda.is_available() is False "
                         "here: pass device=None or 'cpu', or install a CUDA build of torch")
    return dev


class _DevicePoints:
    """One group's points on the device, and similarity rows made from them.

    ``rows(ids)`` returns the similarity rows ``d0 - d(x_ids, x)`` as a ``(len(ids), n)`` float32
    tensor: slices of the dense matrix when it fits, or fresh matrix products otherwise.
    """

    def __init__(self, X: np.ndarray, metric: str, device: torch.device, memory_budget: int | None):
        X = torch.as_tensor(aligned_float32(X), device=device)
        if metric == "cosine":
            norms = torch.linalg.vector_norm(X, dim=1, keepdim=True)
            # As the CPU engine: a zero vector gets cosine 0 to everything (distance 1).
            X = X / torch.where(norms == 0, torch.ones_like(norms), norms)
        self.X, self.metric, self.device = X, metric, device
        self.n = X.shape[0]
        self.sq = (X * X).sum(dim=1)
        # MPS has no float64: sums there are float32 (CUDA and CPU sum in float64, as NumPy does).
        self.acc = torch.float32 if device.type == "mps" else torch.float64
        self.dense = memory_budget is None or 4 * self.n * self.n <= memory_budget
        if self.dense:
            D = self._distances(torch.arange(self.n, device=device))
            self.d0 = float(D.max()) if D.numel() else 0.0
            self.S = D.neg_().add_(self.d0)  # d0 - D in place: one n x n buffer
        else:
            self.S = None
            self.d0 = self._d0_bound()
        budget = _CHUNK_VALUES if memory_budget is None else min(_CHUNK_VALUES, memory_budget // 16)
        self.chunk = max(1, budget // max(self.n, 1))

    def _d0_bound(self) -> float:
        # The bound of _large_scale._Points.d0_bound (see that module's notes).
        center = self.X.mean(dim=0, dtype=self.acc).to(torch.float32)
        radius = float(torch.sqrt(((self.X - center) ** 2).sum(dim=1).max()))
        return d0_from_radius(radius, self.metric)

    def _distances(self, ids: torch.Tensor) -> torch.Tensor:
        """Distances ``(len(ids), n)``, with the CPU engine's formula, clamping and zero self-distance."""
        D = self.X[ids] @ self.X.T
        if self.metric == "cosine":
            D.neg_().add_(1.0).clamp_(0.0, 2.0)
        else:
            D.mul_(-2.0).add_(self.sq[ids][:, None]).add_(self.sq[None, :]).clamp_(min=0.0)
            if self.metric == "euclidean":
                D.sqrt_()
        D[torch.arange(len(ids), device=self.device), ids] = 0.0
        return D

    def rows(self, ids: torch.Tensor) -> torch.Tensor:
        if self.S is not None:
            return self.S[ids]
        return self._distances(ids).neg_().add_(self.d0)

    def row_sums(self) -> torch.Tensor:
        """Similarity row sums (the first greedy step's gains), ``chunk`` rows per product."""
        if self.S is not None:
            return self.S.sum(dim=1, dtype=self.acc)
        out = torch.empty(self.n, dtype=self.acc, device=self.device)
        for start in range(0, self.n, self.chunk):
            ids = torch.arange(start, min(start + self.chunk, self.n), device=self.device)
            out[start:start + len(ids)] = self.rows(ids).sum(dim=1, dtype=self.acc)
        return out


class _Cover:
    """The running ``max_{j in S} s_ij`` and nearest-pick assignment, on the device."""

    def __init__(self, P: _DevicePoints):
        self.P = P
        self.value = torch.zeros(P.n, dtype=torch.float32, device=P.device)
        self.assignment = torch.zeros(P.n, dtype=torch.int64, device=P.device)

    def gains(self, rows: torch.Tensor) -> torch.Tensor:
        return (rows - self.value).clamp_(min=0.0).sum(dim=1, dtype=self.P.acc)

    def add(self, row: torch.Tensor, t: int) -> None:
        # Strictly greater: ties keep the earlier pick, as the CPU engine's _Cover.
        self.assignment.masked_fill_(row > self.value, t)
        torch.maximum(self.value, row, out=self.value)


def _greedy_lazy(P: _DevicePoints, k: int):
    """Exact greedy by batched lazy evaluation (see the module notes)."""
    dev = P.device
    cover = _Cover(P)
    bound = P.row_sums()  # exact gains of the first step
    fresh = torch.ones(P.n, dtype=torch.bool, device=dev)  # step 0: every bound is exact
    minus_inf = torch.tensor(-math.inf, dtype=bound.dtype, device=dev)
    indices = np.empty(k, dtype=np.intp)
    gains = np.empty(k, dtype=np.float64)
    for t in range(k):
        while True:
            best_fresh = torch.where(fresh, bound, minus_inf).max()
            stale = torch.where(fresh, minus_inf, bound)
            top = torch.topk(stale, min(_LAZY_BATCH, P.n)).indices
            # Done when no stale bound can reach the best fresh gain. Equal counts as "can
            # reach": a stale candidate with a lower index might tie, and ties go to it.
            head = stale[top[0]]
            if not bool((head >= best_fresh) & torch.isfinite(head)):  # one device sync
                break
            top = top[torch.isfinite(stale[top])]
            bound[top] = cover.gains(P.rows(top))
            fresh[top] = True
        j = int(torch.argmax(torch.where(fresh, bound, minus_inf)))  # first maximum: lowest index
        indices[t], gains[t] = j, float(bound[j])
        cover.add(P.rows(torch.tensor([j], device=dev))[0], t)
        bound[j] = -math.inf  # never picked again
        fresh.fill_(False)
        fresh[j] = True  # its -inf is exact
    return indices, gains, cover


def _greedy_stochastic(P: _DevicePoints, k: int, epsilon: float, rng: np.random.Generator):
    """Stochastic greedy, drawing the same candidate samples as the CPU engine's."""
    n = P.n
    sample = max(1, min(n, int(math.ceil(n / max(k, 1) * math.log(1.0 / epsilon)))))
    cover = _Cover(P)
    remaining = np.arange(n)
    indices = np.empty(k, dtype=np.intp)
    gains = np.empty(k, dtype=np.float64)
    for t in range(k):
        m = remaining.size
        pos = rng.choice(m, size=sample, replace=False) if sample < m else np.arange(m)
        cand = torch.as_tensor(remaining[pos], device=P.device)
        rows = P.rows(cand)
        g = cover.gains(rows)
        best = int(torch.argmax(g))
        indices[t], gains[t] = int(remaining[pos[best]]), float(g[best])
        remaining = np.delete(remaining, pos[best])
        cover.add(rows[best], t)
    return indices, gains, cover


def _centrality(P: _DevicePoints, k: int):
    """The ``k`` largest similarity row sums (ties: lowest index), and their true gains."""
    order = torch.sort(P.row_sums(), descending=True, stable=True).indices[:k]
    cover = _Cover(P)
    gains = np.empty(k, dtype=np.float64)
    for t0 in range(0, k, P.chunk):
        R = P.rows(order[t0:t0 + P.chunk])
        for r in range(R.shape[0]):
            gains[t0 + r] = float(cover.gains(R[r:r + 1])[0])
            cover.add(R[r], t0 + r)
    return order.cpu().numpy().astype(np.intp), gains, cover


def _weights(P: _DevicePoints, indices: np.ndarray, assignment: torch.Tensor, weights: str,
             radius: float) -> np.ndarray:
    k = len(indices)
    if weights == "cluster":
        return torch.bincount(assignment, minlength=k).cpu().numpy().astype(np.float64)
    if weights == "uniform":
        return np.full(k, P.n / k, dtype=np.float64)
    if weights == "radius":
        # d_ij <= r  <=>  s_ij >= d0 - r, as the CPU engine.
        threshold = np.float32(P.d0 - radius)
        ids = torch.as_tensor(indices, device=P.device)
        counts = [(P.rows(ids[s:s + P.chunk]) >= float(threshold)).sum(dim=1)
                  for s in range(0, k, P.chunk)]
        return torch.cat(counts).cpu().numpy().astype(np.float64)
    raise ValueError(f"weights={weights!r} is not valid: pass one of ('cluster', 'radius', "
                     "'uniform')")


def select_group_torch(X: np.ndarray, k: int, *, device, optimizer: str = "lazy",
                       weights: str = "cluster", metric: str = "euclidean", epsilon: float = 0.1,
                       radius: float = 2.0, random_state=None,
                       memory_budget: int | None = None) -> tuple[GroupSelection, str]:
    """Select ``k`` weighted medoids of ``X`` with distances, gains and greedy on ``device``.

    Parameters
    ----------
    X : ndarray of shape (n, d)
        Finite points (prior validation is assumed, and ``1 <= k <= n``).
    k : int
        Number of points to select.
    device : str or torch.device
        Where the work runs (``"cuda"``, ``"cuda:1"``; ``"cpu"`` runs this engine on the CPU,
        which the tests use to check it against the NumPy engine).
    optimizer, weights, metric, epsilon, radius, random_state
        As :func:`~sk_crust._facility_location.select_group`; ``"naive"`` runs the same exact
        batched lazy greedy as ``"lazy"``.
    memory_budget : int or None
        Bytes of device memory the dense ``(n, n)`` matrix may take; above it, rows are streamed.

    Returns
    -------
    selection : GroupSelection
        NumPy arrays, as the CPU engine returns.
    path : str
        ``"<device type>-dense-<optimizer>"`` or ``"<device type>-streamed-<optimizer>"``.
    """
    dev = resolve_device(device)
    P = _DevicePoints(X, metric, dev, memory_budget)
    if optimizer in ("lazy", "naive"):
        indices, gains, cover = _greedy_lazy(P, k)
        optimizer = "lazy"
    elif optimizer == "stochastic":
        indices, gains, cover = _greedy_stochastic(P, k, epsilon, _as_generator(random_state))
    elif optimizer == "centrality":
        indices, gains, cover = _centrality(P, k)
    else:
        raise ValueError(f"optimizer={optimizer!r} is not valid: pass one of ('lazy', 'naive', "
                         "'stochastic', 'centrality')")
    assignment = cover.assignment
    # A medoid always belongs to its own cluster (duplicated points tie with an earlier pick).
    assignment[torch.as_tensor(indices, device=dev)] = torch.arange(k, device=dev)
    w = _weights(P, indices, assignment, weights, radius)
    selection = GroupSelection(indices, w, gains, assignment.cpu().numpy().astype(np.intp),
                               float(gains.sum()))
    return selection, f"{dev.type}-{'dense' if P.dense else 'streamed'}-{optimizer}"
