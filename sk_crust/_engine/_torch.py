"""The torch engine: distances, gains and the greedy loop on a torch device (a GPU).

The NumPy/numba engines are bound by the CPU's matrix products: at 10^5 points per group, every
similarity row is a 64-wide product with all points. A GPU makes those products far cheaper (not
measured here: no GPU was available), so this engine keeps the points, the similarity rows, the
running cover and the gains on the device, and only the picks travel back to the host.

Two layouts, chosen by ``memory_budget`` (here: bytes of device memory):

* **dense**: the ``(n, n)`` float32 similarity matrix fits the budget; it is made with one matrix
  product and ``d0`` is the exact largest distance (as the dense engine).
* **streamed**: it does not fit; similarity rows are computed when needed, a chunk of rows per
  matrix product, and ``d0`` is the bound of :func:`._similarity.d0_from_radius` (same greedy
  decisions, objective offset by ``n (d0' - d0)``).

Optimizers (the same meaning as the CPU engines'):

* ``"lazy"`` and ``"naive"``: the exact greedy, run as a *batched* lazy greedy: the gains of the
  ``_LAZY_BATCH`` candidates with the largest stale upper bounds are refreshed together, until the
  best fresh gain is above every stale bound. Submodularity makes an old gain an upper bound of
  the current one, so the pick is the true argmax (ties: lowest index, as the naive greedy).
  Unlike the blocked engine, this stays exact beyond the memory budget: a refresh costs
  ``_LAZY_BATCH`` similarity rows, cheap on a GPU.
* ``"stochastic"``: :func:`._rules.stochastic_greedy`, so the same ``random_state`` draws the
  same candidate samples as the dense engine.
* ``"centrality"``: the ``k`` largest similarity row sums, then their true marginal gains.

The distance formulas (:func:`._similarity.finish_distances`, :func:`._similarity.unit_rows`,
:func:`._similarity.zero_self_distances`), the cover update (:class:`._rules.Cover`), the sample
size and the last step (:func:`._rules.finalize`) are the shared rules, applied to tensors. This
module is imported only when a torch device is asked for, so ``import sk_crust`` stays torch-free.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ._rules import (
    OPTIMIZERS,
    Cover,
    GroupSelection,
    as_generator,
    centrality_reference,
    finalize,
    radius_threshold,
    stochastic_greedy,
    stochastic_sample_size,
)
from ._similarity import (
    aligned_float32,
    d0_from_radius,
    finish_distances,
    unit_rows,
    zero_self_distances,
)

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
            X = unit_rows(X, torch.linalg.vector_norm(X, dim=1, keepdim=True))
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
        # The radius of _similarity.Points.d0_bound, computed on the device.
        center = self.X.mean(dim=0, dtype=self.acc).to(torch.float32)
        radius = float(torch.sqrt(((self.X - center) ** 2).sum(dim=1).max()))
        return d0_from_radius(radius, self.metric)

    def _distances(self, ids: torch.Tensor) -> torch.Tensor:
        """Distances ``(len(ids), n)``, with the shared formula, clamping and self-distance."""
        D = finish_distances(self.X[ids] @ self.X.T, self.sq[ids], self.sq, self.metric)
        zero_self_distances(D, ids, 0, self.n)
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


def _cover(P: _DevicePoints) -> Cover:
    """:class:`._rules.Cover` on the device."""
    return Cover(torch.zeros(P.n, dtype=torch.float32, device=P.device),
                 torch.zeros(P.n, dtype=torch.int64, device=P.device), maximum=torch.maximum)


def _gains(P: _DevicePoints, cover: Cover, rows: torch.Tensor) -> torch.Tensor:
    """``sum_i max(s_ji - cover_i, 0)`` of each row, summed in ``P.acc``."""
    return (rows - cover.value).clamp_(min=0.0).sum(dim=1, dtype=P.acc)


def _greedy_lazy(P: _DevicePoints, k: int, epsilon: float, rng):
    """Exact greedy by batched lazy evaluation (see the module notes)."""
    dev = P.device
    cover = _cover(P)
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
            bound[top] = _gains(P, cover, P.rows(top))
            fresh[top] = True
        j = int(torch.argmax(torch.where(fresh, bound, minus_inf)))  # first maximum: lowest index
        indices[t], gains[t] = j, float(bound[j])
        cover.add(P.rows(torch.tensor([j], device=dev))[0], t)
        bound[j] = -math.inf  # never picked again
        fresh.fill_(False)
        fresh[j] = True  # its -inf is exact
    return indices, gains, cover


def _greedy_stochastic(P: _DevicePoints, k: int, epsilon: float, rng):
    """:func:`._rules.stochastic_greedy` with rows and gains on the device."""
    cover = _cover(P)
    rows = None

    def gains_of(cand):
        nonlocal rows
        rows = P.rows(torch.as_tensor(cand, device=P.device))
        return _gains(P, cover, rows)

    indices, gains = stochastic_greedy(np.arange(P.n), k, stochastic_sample_size(P.n, k, epsilon),
                                       rng, gains_of, lambda best, j, t: cover.add(rows[best], t))
    return indices, gains, cover


def _reference_means(P: _DevicePoints, reference: np.ndarray) -> torch.Tensor:
    """Mean distance of every point to the ``reference`` points other than itself.

    The rule of :func:`._blocked._reference_distance_means`, on the device.
    """
    ref = torch.as_tensor(reference, device=P.device)
    m = len(reference)
    position = torch.full((P.n,), -1, dtype=torch.int64, device=P.device)
    position[ref] = torch.arange(m, device=P.device)
    sums = torch.empty(P.n, dtype=P.acc, device=P.device)
    step = max(1, P.chunk * P.n // max(m, 1))
    for start in range(0, P.n, step):
        stop = min(start + step, P.n)
        D = finish_distances(P.X[start:stop] @ P.X[ref].T, P.sq[start:stop], P.sq[ref],
                             P.metric)
        inside = torch.nonzero(position[start:stop] >= 0).flatten()
        D[inside, position[start + inside]] = 0.0
        sums[start:stop] = D.sum(dim=1, dtype=P.acc)
    return sums / (m - (position >= 0).to(P.acc)).clamp_(min=1)


def _centrality(P: _DevicePoints, k: int, epsilon: float, rng, sample: int | None = None):
    """The ``k`` largest similarity row sums (ties: lowest index), and their true gains.

    On more than ``sample`` points the scores are mean distances to the reference sample of
    :func:`._rules.centrality_reference` (the CPU engines' draw for the same seed).
    """
    reference = centrality_reference(P.n, sample, rng)
    if reference is None:
        order = torch.sort(P.row_sums(), descending=True, stable=True).indices[:k]
    else:
        order = torch.sort(_reference_means(P, reference), stable=True).indices[:k]
    cover = _cover(P)
    gains = np.empty(k, dtype=np.float64)
    for t0 in range(0, k, P.chunk):
        R = P.rows(order[t0:t0 + P.chunk])
        for r in range(R.shape[0]):
            gains[t0 + r] = float(_gains(P, cover, R[r:r + 1])[0])
            cover.add(R[r], t0 + r)
    return order.cpu().numpy().astype(np.intp), gains, cover


#: The optimizers of the torch engine, by name; ``"naive"`` runs the exact lazy greedy.
TORCH_OPTIMIZERS = {"lazy": _greedy_lazy, "naive": _greedy_lazy,
                    "stochastic": _greedy_stochastic, "centrality": _centrality}


def _radius_counts(P: _DevicePoints, indices: np.ndarray, radius: float) -> np.ndarray:
    threshold = float(radius_threshold(P.d0, radius))
    ids = torch.as_tensor(indices, device=P.device)
    counts = [(P.rows(ids[s:s + P.chunk]) >= threshold).sum(dim=1)
              for s in range(0, len(indices), P.chunk)]
    return torch.cat(counts).cpu().numpy()


def select_group_torch(X: np.ndarray, k: int, *, device, optimizer: str = "lazy",
                       weights: str = "cluster", metric: str = "euclidean", epsilon: float = 0.1,
                       radius: float = 2.0, random_state=None,
                       memory_budget: int | None = None,
                       centrality_sample: int | None = None) -> GroupSelection:
    """Select ``k`` weighted medoids of ``X`` with distances, gains and greedy on ``device``.

    Parameters
    ----------
    X : ndarray of shape (n, d)
        Finite points (prior validation is assumed, and ``1 <= k <= n``).
    k : int
        Number of points to select.
    device : str or torch.device
        Where the work runs (``"cuda"``, ``"cuda:1"``; ``"cpu"`` runs this engine on the CPU,
        which the tests use to check it against the NumPy engines).
    optimizer, weights, metric, epsilon, radius, random_state
        As the dense engine; ``"naive"`` runs the same exact batched lazy greedy as ``"lazy"``.
    memory_budget : int or None
        Bytes of device memory the dense ``(n, n)`` matrix may take; above it, rows are streamed.
    centrality_sample : int or None
        As the CPU engines: ``"centrality"`` on more points than this ranks them against a
        random sample of that many, the same sample as the CPU draws for the seed.

    Returns
    -------
    selection : GroupSelection
        NumPy arrays, as the CPU engines return; method ``"<device type>-dense-<optimizer>"`` or
        ``"<device type>-streamed-<optimizer>"``.
    """
    dev = resolve_device(device)
    try:
        run = TORCH_OPTIMIZERS[optimizer]
    except KeyError:
        raise ValueError(f"optimizer={optimizer!r} is not valid: pass one of {OPTIMIZERS}") \
            from None
    P = _DevicePoints(X, metric, dev, memory_budget)
    if run is _centrality:
        indices, gains, cover = _centrality(P, k, epsilon, as_generator(random_state),
                                            centrality_sample)
    else:
        indices, gains, cover = run(P, k, epsilon, as_generator(random_state))
    name = "lazy" if run is _greedy_lazy else optimizer
    return finalize(indices, gains, cover.assignment.cpu().numpy().astype(np.intp),
                    weights=weights, radius_counts=lambda: _radius_counts(P, indices, radius),
                    method=f"{dev.type}-{'dense' if P.dense else 'streamed'}-{name}")
