"""The selection engine: facility location on one group of points. Arrays in, arrays out.

It knows nothing of estimators or labels, so it can be tested, benchmarked and distributed on
its own; prior validation of the data is assumed (the estimators in ``_selector.py`` do it).

=================  =========================================================================
module             what it holds
=================  =========================================================================
``_similarity``    distances and similarities (the metric finish, the cosine zero-vector
                   rule, similarity rows, the ``d0`` bound), medoid and centre distances
``_rules``         the rules every engine shares, each once: cover update and tie rule,
                   weights, medoid self-assignment, last step, stochastic-greedy sample size
                   and loop, the numba switch
``_dense``         the ``(n, n)`` similarity matrix and the naive/lazy/stochastic/centrality
                   optimizers on it
``_blocked``       similarity rows recomputed block by block (O(n) memory)
``_greedi``        partition and merge (GreeDi), parts through joblib
``_parts``         a group over the budget in random parts that fit it, each on the dense
                   engine, the picks folded into the whole group's cover
``_torch``         the same on a torch device (torch imported only when used)
``_numba_kernels`` compiled loops, used when numba is installed (``SK_CRUST_NUMBA=0``: NumPy)
=================  =========================================================================

:func:`select_group` runs one group on one of :data:`ENGINES`; ``engine="auto"`` takes the dense
engine when the group fits ``memory_budget``, otherwise the parts engine (the blocked one for
``"centrality"``, whose sampled scores are cheap on it, and for budgets too small for parts of
:data:`._parts.MIN_PART` points).
"""

from __future__ import annotations

import functools
import re
from concurrent.futures import ThreadPoolExecutor
from numbers import Integral

import numpy as np
from joblib import Parallel, cpu_count, delayed
from joblib.parallel import get_active_backend
from threadpoolctl import ThreadpoolController

from ._blocked import select_group_blocked
from ._dense import dense_bytes, fits_dense, select_group_dense
from ._greedi import select_group_greedi, select_groups_greedi
from ._parts import part_count, select_group_parts
from ._rules import CENTRALITY_SAMPLE, OPTIMIZERS, WEIGHTS, GroupSelection
from ._similarity import METRICS, center_distances, medoid_distances


def _select_group_torch(X, k, **params) -> GroupSelection:
    from ._torch import select_group_torch  # torch is imported only here

    return select_group_torch(X, k, **params)


#: Engines by name. Each takes ``(X, k, *, optimizer, weights, metric, epsilon, radius,
#: random_state, memory_budget, centrality_sample)`` (the torch engine also ``device``, GreeDi
#: ``partitions`` and ``n_jobs``) and returns a :class:`GroupSelection` whose ``method`` names
#: the path taken.
ENGINES = {
    "dense": select_group_dense,
    "blocked": select_group_blocked,
    "greedi": select_group_greedi,
    "parts": select_group_parts,
    "torch": _select_group_torch,
}


def choose_engine(n: int, d: int, memory_budget: int | None,
                  optimizer: str = "centrality") -> str:
    """The engine ``engine="auto"`` takes for a group of ``n`` points in ``d`` dimensions.

    ``"dense"`` if it fits the budget. Otherwise ``"blocked"`` for ``"centrality"`` (sampled row
    sums, block by block: ``n * centrality_sample`` distances) and when parts of the budget's
    size would be too small (:func:`._parts.part_count`), else ``"parts"``: the greedy
    optimizers on the whole group cost ``O(n^2 log(1/eps))`` distances on the blocked engine,
    ``O(n^2 / parts)`` in parts (``benchmarks/results/selection_scale.md``).
    """
    if fits_dense(n, d, memory_budget):
        return "dense"
    if optimizer == "centrality" or part_count(n, d, memory_budget) == 0:
        return "blocked"
    return "parts"


def select_group(X: np.ndarray, k: int, *, engine: str = "auto", memory_budget: int | None = None,
                 **params) -> GroupSelection:
    """Select ``k`` weighted medoids among the rows of ``X`` with one of :data:`ENGINES`.

    Parameters
    ----------
    X : ndarray of shape (n, d)
        Finite points (prior validation is assumed, and ``1 <= k <= n``).
    k : int
        Number of points to select.
    engine : {"auto", "dense", "blocked", "greedi", "parts", "torch"}, default="auto"
        ``"auto"``: dense if the group fits ``memory_budget`` (:func:`._dense.dense_bytes`),
        otherwise :func:`choose_engine`'s.
    memory_budget : int or None, default=None
        Bytes the selection may use (``None``: no limit).
    **params
        ``optimizer``, ``weights``, ``metric``, ``epsilon``, ``radius``, ``random_state``,
        ``centrality_sample``, and the engine's own (``device``, ``partitions``, ``n_jobs``,
        ``block_rows``, ``d0``).

    Returns
    -------
    selection : GroupSelection

    Examples
    --------
    >>> import numpy as np
    >>> from sk_crust._engine import select_group
    >>> X = np.array([[0.0], [0.1], [0.2], [5.0], [5.1]])
    >>> dense = select_group(X, 2)
    >>> dense.indices.tolist(), dense.weights.tolist(), dense.method
    ([2, 3], [3.0, 2.0], 'dense-lazy')
    >>> select_group(X, 2, memory_budget=100, random_state=0).method
    'blocked-stochastic'
    """
    if engine == "auto":
        engine = choose_engine(X.shape[0], X.shape[1], memory_budget,
                               params.get("optimizer", "lazy"))
    try:
        run = ENGINES[engine]
    except KeyError:
        raise ValueError(f"engine={engine!r} is not valid: pass 'auto' or one of "
                         f"{tuple(ENGINES)}") from None
    return run(X, k, memory_budget=memory_budget, **params)


def select_groups(X: np.ndarray, groups: list[np.ndarray], budgets, seeds, *, engine: str = "auto",
                  memory_budget: int | None = None, n_jobs: int | None = None,
                  partitions: int = 1, device=None, **params) -> list[GroupSelection]:
    """Select in several groups of rows of ``X`` (``budgets[c]`` points, seed ``seeds[c]``).

    Groups are independent, so they run through joblib (``joblib.parallel_config(backend=
    "dask")`` moves them to a Dask cluster), except on a torch device (``engine="torch"``:
    one group after another, each uses the whole device). With ``engine="greedi"`` the parts of
    every group are joblib tasks of their own (:func:`._greedi.select_groups_greedi`). Each
    group's result is :func:`select_group`'s on its rows with its seed.
    """
    if engine == "greedi":
        return select_groups_greedi(X, groups, budgets, seeds, partitions=partitions,
                                    memory_budget=memory_budget, n_jobs=n_jobs, **params)
    if engine == "torch":
        return [select_group(X[rows], int(b), engine="torch", device=device,
                             memory_budget=memory_budget, random_state=int(seed), **params)
                for rows, b, seed in zip(groups, budgets, seeds, strict=True)]
    # A partial of the module-level function, not a closure over X: each task gets its group's
    # rows only (a closure would ship all of X to every process or Dask worker).
    select = functools.partial(select_group, engine=engine, memory_budget=memory_budget,
                               **params)
    # Rows are sliced as each task starts, so that at most a few groups' copies exist at once.
    jobs = list(zip(groups, budgets, seeds, strict=True))
    threads = default_threads([len(rows) for rows in groups], X.shape[1], memory_budget,
                              engine) if n_jobs is None else 1
    if threads > 1:
        # One BLAS thread per class: the classes, not the matrix products, share the cores.
        # A plain thread pool, not joblib's threading backend: this path only runs outside any
        # joblib context (default_threads), and joblib's per-call pool set-up cost about 6 ms of
        # the 35 ms a CrustClassifier epoch's selection took (10 classes x 2,400 points).
        with _blas_controller().limit(limits=1, user_api="blas"), \
                ThreadPoolExecutor(max_workers=threads) as pool:
            return list(pool.map(
                lambda job: select(X[job[0]], int(job[1]), random_state=int(job[2])), jobs))
    return Parallel(n_jobs=n_jobs)(delayed(select)(X[rows], int(b), random_state=int(seed))
                                   for rows, b, seed in jobs)


#: Groups run on threads only from this many similarity entries in all (the sum over groups
#: of ``n_c * min(n_c, CENTRALITY_SAMPLE)``). Below it, starting the pool and limiting BLAS cost
#: more than the threads give back: centrality on 10 classes of 30 / 120 / 300 / 600 points
#: took 4.0 / 4.2 / 5.1 / 10.1 ms on two threads against 1.6 / 2.0 / 5.0 / 12.9 ms one class
#: after another (2 cores, median of 6 ``CrustSelector`` fits each).
THREADED_WORK_FROM = 2 ** 20


@functools.cache
def _blas_controller():
    """threadpoolctl's view of the loaded BLAS libraries (scanning them takes ~10 ms: once)."""
    return ThreadpoolController()


def default_threads(sizes: list[int], d: int, memory_budget: int | None, engine: str) -> int:
    """Threads that run the groups when the caller left ``n_jobs`` at None.

    For dense groups, as many as there are cores and groups (the compiled loops release the GIL,
    and so do the matrix products), but no more than ``memory_budget`` allows for the largest
    group at once (:func:`._dense.dense_bytes`). 1 when any group takes the blocked engine,
    inside a ``joblib.parallel_config`` context, which then decides (Dask, say), and when the
    groups are too small to pay for the pool (:data:`THREADED_WORK_FROM`).
    """
    backend, context_jobs = get_active_backend()
    if context_jobs is not None or type(backend).__name__ != "LokyBackend" or len(sizes) < 2:
        return 1
    def dense(n):
        return engine == "dense" or (engine == "auto" and fits_dense(n, d, memory_budget))

    if sum(n * min(n, CENTRALITY_SAMPLE) for n in sizes) < THREADED_WORK_FROM:
        return 1
    if not all(dense(n) for n in sizes):
        # Blocked classes keep running one after another, with multi-threaded BLAS: threads
        # were not shown to help their batched products (10^6 points, stochastic, k=10%: 686 s
        # on threads on a loaded machine against 252 s with n_jobs=2 processes on a quiet one).
        return 1
    threads = min(cpu_count(), len(sizes))
    if memory_budget is not None:
        threads = min(threads, max(1, memory_budget // max(dense_bytes(max(sizes), d), 1)))
    return max(1, threads)


_UNITS = {"b": 1, "kb": 10 ** 3, "mb": 10 ** 6, "gb": 10 ** 9, "tb": 10 ** 12,
          "kib": 2 ** 10, "mib": 2 ** 20, "gib": 2 ** 30, "tib": 2 ** 40}


def parse_memory_budget(memory_budget) -> int | None:
    """Bytes from ``memory_budget``: an int >= 1, a string such as ``"512MiB"``, or None.

    Units (case-insensitive): B, KB, MB, GB, TB (powers of 1000) and KiB, MiB, GiB, TiB
    (powers of 1024); a bare number in a string is bytes. None means no limit.

    Examples
    --------
    >>> from sk_crust._engine import parse_memory_budget
    >>> parse_memory_budget("1GiB"), parse_memory_budget("4GB"), parse_memory_budget(2048)
    (1073741824, 4000000000, 2048)
    """
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


__all__ = ["CENTRALITY_SAMPLE", "ENGINES", "GroupSelection", "METRICS", "OPTIMIZERS",
           "THREADED_WORK_FROM", "WEIGHTS",
           "center_distances", "choose_engine", "dense_bytes", "medoid_distances",
           "parse_memory_budget", "select_group", "select_groups"]
