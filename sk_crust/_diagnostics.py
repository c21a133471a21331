"""User-facing diagnostics: which labels look wrong, how clean a coreset is, how noisy the data is.

* :func:`label_issues` builds the table behind ``CrustSelector.get_label_issues`` and
  ``CrustClassifier.get_label_issues``: one row per sample, most suspicious first.
* :func:`coreset_report` summarises a coreset against known true labels (for benchmarks with
  synthetic noise).
* :func:`estimate_noise_rate` estimates the fraction of wrong labels from predicted probabilities
  (a confident-joint count, as cleanlab does); :func:`estimate_noise_rate_geometric` does it from
  features alone (points far from their class's centre). They drive ``coreset_size="auto"`` and
  ``k="auto"``.

No torch import here; pandas is imported only when a table is built.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Bounds of the coreset fraction chosen by ``"auto"`` (1 - estimated noise rate, clipped).
#: No upper clip below 1: when no noise is found, dropping even the 10% least central examples
#: cost 4 points on letter (0.900 vs 0.946 with all of them, benchmarks/results/noisy_labels.md).
AUTO_BOUNDS = (0.1, 1.0)


def _import_pandas():
    try:
        import pandas as pd
    except ImportError as exc:  # pragma: no cover - pandas is a test/docs dependency
        raise ImportError("get_label_issues returns a pandas DataFrame and needs pandas: "
                          "pip install pandas") from exc
    return pd


# Values of G per block of medoid_distances (float64: 32 MiB per temporary).
_DISTANCE_BLOCK_VALUES = 1 << 22


def medoid_distances(G: np.ndarray, indices: np.ndarray, labels: np.ndarray, *,
                     metric: str = "euclidean") -> np.ndarray:
    """Distance of every sample to the medoid it is assigned to (0 for the medoids).

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
    >>> from sk_crust._diagnostics import medoid_distances
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
            norms = np.linalg.norm(A, axis=1) * np.linalg.norm(M, axis=1)
            cos = np.einsum("ij,ij->i", A, M) / np.where(norms > 0, norms, 1.0)
            # A zero vector has cosine 0 to everything (distance 1), as in the selection's
            # pairwise_distances; its distance to itself (a medoid) is still 0, set below.
            out[start:start + step] = np.clip(1.0 - np.where(norms > 0, cos, 0.0), 0.0, 2.0)
        else:
            A -= M
            out[start:start + step] = np.einsum("ij,ij->i", A, A)
    if metric == "cosine":
        out[medoid_rows == np.arange(G.shape[0])] = 0.0
    return np.sqrt(out, out=out) if metric == "euclidean" else out


def center_distances(G: np.ndarray, indices: np.ndarray, labels: np.ndarray,
                     group_of_selected: np.ndarray, *, metric: str = "euclidean") -> np.ndarray:
    """Distance of every sample to its class's first selected point (its most central one).

    ``indices`` lists the selected rows class by class, each class in greedy order, so the first
    selected row of a class is the one with the largest gain (for exact greedy and centrality, the
    largest similarity row sum).

    Examples
    --------
    >>> import numpy as np
    >>> from sk_crust._diagnostics import center_distances
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


def estimate_noise_rate(y, proba, *, classes=None) -> float:
    """Estimate the fraction of wrong labels from predicted probabilities (confident joint).

    A sample labelled ``i`` is counted as "truly ``j``" when ``p_j`` reaches class ``j``'s
    threshold (the mean of ``p_j`` over the samples labelled ``j``), taking the largest such
    ``p_j``; samples reaching no threshold are not counted. Each row of the resulting count
    matrix is rescaled to the size of its class, and the estimate is the off-diagonal mass
    (Northcutt et al., *Confident Learning*, 2021). Probabilities should be out-of-sample
    (cross-validated) or come from a model that has not yet memorised the noise.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        Given (possibly noisy) labels.
    proba : array-like of shape (n_samples, n_classes)
        Predicted probabilities, columns in ``classes`` order.
    classes : array-like of shape (n_classes,), default=None
        Labels of the columns of ``proba``; ``None`` means ``np.unique(y)``.

    Returns
    -------
    noise_rate : float
        Estimated fraction of samples whose label is wrong, in [0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> from sk_crust import estimate_noise_rate
    >>> y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    >>> proba = np.array([[.9, .1], [.8, .2], [.9, .1], [.2, .8],
    ...                   [.1, .9], [.2, .8], [.1, .9], [.9, .1]])
    >>> estimate_noise_rate(y, proba)
    0.25
    """
    y = np.asarray(y)
    proba = np.asarray(proba, dtype=np.float64)
    classes = np.unique(y) if classes is None else np.asarray(classes)
    if proba.ndim != 2 or proba.shape != (len(y), len(classes)):
        raise ValueError(f"proba has shape {proba.shape}, expected (n_samples, n_classes) = "
                         f"({len(y)}, {len(classes)})")
    lookup = {label: i for i, label in enumerate(classes.tolist())}
    try:
        y_index = np.array([lookup[label] for label in y.tolist()], dtype=np.intp)
    except KeyError as exc:
        raise ValueError(f"y contains the label {exc.args[0]!r}, which is not in classes") \
            from None
    return _confident_joint_noise(y_index, proba)


def _confident_joint_noise(y_index: np.ndarray, proba: np.ndarray) -> float:
    """The kernel of :func:`estimate_noise_rate`; prior validation assumed."""
    n_classes = proba.shape[1]
    counts = np.bincount(y_index, minlength=n_classes).astype(np.float64)
    sums = np.zeros(n_classes)
    np.add.at(sums, y_index, proba[np.arange(len(y_index)), y_index])
    thresholds = np.where(counts > 0, sums / np.maximum(counts, 1), np.inf)
    above = proba >= thresholds[None, :] - 1e-12
    confident = above.any(axis=1)
    guess = np.where(above, proba, -np.inf).argmax(axis=1)
    joint = np.zeros((n_classes, n_classes))
    np.add.at(joint, (y_index[confident], guess[confident]), 1.0)
    rows = joint.sum(axis=1)
    calibrated = joint / np.where(rows > 0, rows, 1.0)[:, None] * counts[:, None]
    total = counts.sum()
    return float(np.clip(1.0 - np.trace(calibrated) / total, 0.0, 1.0)) if total else 0.0


def estimate_noise_rate_geometric(G: np.ndarray, y_index: np.ndarray) -> float:
    """Estimate the noise rate from features alone: points far from their class's centre.

    For each class: distances of its points to the coordinate-wise median of the class, split in
    two by Otsu's threshold (the split that maximises the between-group variance); the far group
    counts as mislabelled, unless the split is not clear (the far group's mean distance is less
    than 1.5 times the near group's), in which case none do. Meant for gradient-like features,
    where mislabelled points sit in a separate mode; it is a rough guess (see the user guide for
    its measured bias), and the probability-based :func:`estimate_noise_rate` is better when
    probabilities are available.

    Parameters
    ----------
    G : ndarray of shape (n_samples, n_features)
    y_index : ndarray of shape (n_samples,)
        Class positions ``0 .. n_classes - 1``.

    Returns
    -------
    noise_rate : float

    Examples
    --------
    >>> import numpy as np
    >>> from sk_crust._diagnostics import estimate_noise_rate_geometric
    >>> rng = np.random.default_rng(0)
    >>> G = np.vstack([rng.normal(0, 0.1, (80, 2)), rng.normal(3, 0.1, (20, 2))])
    >>> round(estimate_noise_rate_geometric(G, np.zeros(100, dtype=int)), 2)
    0.2
    """
    G = np.asarray(G, dtype=np.float64)
    far = 0
    for c in np.unique(y_index):
        Gc = G[y_index == c]
        if len(Gc) < 3:
            continue
        d = np.sort(np.linalg.norm(Gc - np.median(Gc, axis=0), axis=1))
        n = len(d)
        csum = np.cumsum(d)
        m = np.arange(1, n)  # size of the near group
        mean_near = csum[:-1] / m
        mean_far = (csum[-1] - csum[:-1]) / (n - m)
        between = m * (n - m) * (mean_far - mean_near) ** 2
        cut = int(np.argmax(between))
        if mean_far[cut] > 1.5 * mean_near[cut] + 1e-12:
            far += int(n - m[cut])
    return far / len(G) if len(G) else 0.0


def estimate_noise_rate_from_features(G: np.ndarray, y_index: np.ndarray) -> float:
    """The noise estimate of ``CrustSelector(k="auto")``.

    When ``G`` holds probability residuals ``p - onehot(y)`` with columns in class order (what
    :class:`CrustSampler` and the ``"logits"`` gradient compute: rows sum to 0, ``p`` in [0, 1]),
    the probabilities are recovered and counted with the confident joint
    (:func:`estimate_noise_rate`); otherwise :func:`estimate_noise_rate_geometric` guesses from
    the geometry.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_crust._diagnostics import estimate_noise_rate_from_features
    >>> proba = np.array([[.9, .1], [.8, .2], [.2, .8], [.1, .9], [.9, .1]])
    >>> y_index = np.array([0, 0, 1, 1, 1])
    >>> G = proba - np.eye(2)[y_index]
    >>> round(estimate_noise_rate_from_features(G, y_index), 6)
    0.2
    """
    G = np.asarray(G, dtype=np.float64)
    y_index = np.asarray(y_index)
    n_classes = int(y_index.max(initial=-1)) + 1
    if G.ndim == 2 and G.shape[1] == n_classes and len(G):
        proba = G.copy()
        proba[np.arange(len(G)), y_index] += 1.0
        tol = 1e-4
        if (proba.min() >= -tol and proba.max() <= 1 + tol
                and np.abs(proba.sum(axis=1) - 1.0).max() <= tol * n_classes):
            return _confident_joint_noise(y_index, proba)
    return estimate_noise_rate_geometric(G, y_index)


def auto_fraction(noise_rate: float) -> float:
    """Coreset fraction for ``"auto"``: the estimated clean fraction, clipped to AUTO_BOUNDS.

    Examples
    --------
    >>> from sk_crust._diagnostics import auto_fraction
    >>> auto_fraction(0.3), auto_fraction(0.0), auto_fraction(0.95)
    (0.7, 1.0, 0.1)
    """
    low, high = AUTO_BOUNDS
    return float(np.clip(round(1.0 - noise_rate, 6), low, high))


def label_issues(labels, suspicion, *, selected, weights, columns=None, index=None):
    """One row per sample, most suspicious first (the table of ``get_label_issues``).

    Parameters
    ----------
    labels : array-like of shape (n_samples,)
        Given labels.
    suspicion : array-like of shape (n_samples,)
        Larger means more likely mislabelled.
    selected : array-like of bool, shape (n_samples,)
    weights : array-like of shape (n_samples,)
    columns : dict of str to array-like, default=None
        Further columns, inserted after ``given_label``.
    index : array-like of shape (n_samples,), default=None
        Row labels; ``None`` means sample positions ``0 .. n - 1``.

    Returns
    -------
    issues : pandas.DataFrame
        Columns ``given_label``, the extra ``columns``, ``selected``, ``weight``,
        ``suspicion``; sorted by decreasing ``suspicion`` (stable).
    """
    pd = _import_pandas()
    n = len(suspicion)
    data = {"given_label": np.asarray(labels)}
    data.update({name: np.asarray(value) for name, value in (columns or {}).items()})
    data["selected"] = np.asarray(selected, dtype=bool)
    data["weight"] = np.asarray(weights, dtype=np.float64)
    data["suspicion"] = np.asarray(suspicion, dtype=np.float64)
    frame = pd.DataFrame(data, index=pd.RangeIndex(n, name="sample") if index is None
                         else pd.Index(index, name="sample"))
    return frame.sort_values("suspicion", ascending=False, kind="stable")


def selector_label_issues(selector):
    """The table of :meth:`CrustSelector.get_label_issues` (see there)."""
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(selector)
    n = len(selector.labels_)
    group = getattr(selector, "group_of_selected_", None)
    if group is None:
        raise AttributeError("this CrustSelector was fitted without diagnostics: refit it")
    selected = np.zeros(n, dtype=bool)
    selected[selector.indices_] = True
    labels = np.asarray(selector.classes_)[group[selector.labels_]]
    return label_issues(labels, selector.center_distances_, selected=selected,
                        weights=selector.sample_weight_,
                        columns={"medoid_distance": selector.distances_})


def classifier_label_issues(net, X, y):
    """The table of :meth:`CrustClassifier.get_label_issues` (see there)."""
    from sklearn.utils.validation import column_or_1d

    from ._selector import CrustSelector

    net.check_is_fitted()
    _import_pandas()
    y = column_or_1d(y)
    features = net.gradient_features(X, y)
    proba = net.predict_proba(X).astype(np.float64)
    classes = np.asarray(net.classes_)
    onehot = np.zeros_like(proba)
    onehot[np.arange(len(proba)), features.y] = 1.0
    gradient_norm = np.linalg.norm(proba - onehot, axis=1)
    config = net.crust_config_
    size = config["coreset_size"]
    if isinstance(size, str):  # "auto": the fraction chosen during fit
        size = getattr(net, "coreset_fraction_", auto_fraction(getattr(net, "noise_rate_", 0.5)))
    if not isinstance(size, float) and size > len(y):
        size = len(y)
    groups = features.y if config["group_by"] == "label" else features.prediction
    selector = CrustSelector(k=size, optimizer=config["selection_optimizer"],
                             weights=config["selection_weights"],
                             random_state=net.random_state).fit(features.features, groups)
    selected = np.zeros(len(y), dtype=bool)
    selected[selector.indices_] = True
    return label_issues(
        y, gradient_norm, selected=selected, weights=selector.sample_weight_,
        columns={"predicted_label": classes[features.prediction],
                 "predicted_proba_of_given": proba[np.arange(len(proba)), features.y],
                 "gradient_norm": gradient_norm,
                 "medoid_distance": selector.distances_})


@dataclass
class CoresetReport:
    """How clean a coreset is, against known true labels (see :func:`coreset_report`).

    Attributes
    ----------
    size : int
        Number of selected samples.
    fraction : float
        ``size / n_samples``.
    clean_fraction : float
        Fraction of the selected samples whose given label is right.
    weighted_clean_fraction : float
        The same, each sample counted with its weight.
    dataset_clean_fraction : float
        Fraction of all samples whose given label is right (the baseline to beat).
    clean_recall : float
        Fraction of the correctly labelled samples that were selected.
    class_coverage : dict
        For each true class, the fraction of its samples that are selected with the right label.
    class_clean_fraction : dict
        For each given label, the clean fraction among the selected samples with that label
        (NaN when none is selected).
    """

    size: int
    fraction: float
    clean_fraction: float
    weighted_clean_fraction: float
    dataset_clean_fraction: float
    clean_recall: float
    class_coverage: dict = field(default_factory=dict)
    class_clean_fraction: dict = field(default_factory=dict)


def coreset_report(y_true, y_noisy, indices, weights=None) -> CoresetReport:
    """Summarise how clean a coreset is, when the true labels are known.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels.
    y_noisy : array-like of shape (n_samples,)
        Given (noisy) labels, the ones the coreset was selected with.
    indices : array-like of int, shape (n_selected,)
        Rows of the coreset (e.g. ``CrustSelector.indices_`` or
        ``CrustClassifier.coreset_indices_``).
    weights : array-like of shape (n_selected,), default=None
        Weights of the selected rows; ``None`` means all 1.

    Returns
    -------
    report : CoresetReport

    Examples
    --------
    >>> from sk_crust import coreset_report
    >>> report = coreset_report(y_true=[0, 0, 1, 1], y_noisy=[0, 1, 1, 1], indices=[0, 1, 2],
    ...                         weights=[2.0, 1.0, 1.0])
    >>> report.clean_fraction, report.weighted_clean_fraction, report.dataset_clean_fraction
    (0.666..., 0.75, 0.75)
    >>> report.class_coverage
    {0: 0.5, 1: 0.5}
    """
    y_true = np.asarray(y_true)
    y_noisy = np.asarray(y_noisy)
    if y_true.shape != y_noisy.shape or y_true.ndim != 1:
        raise ValueError(f"y_true and y_noisy must be 1-D of the same length, got shapes "
                         f"{y_true.shape} and {y_noisy.shape}")
    n = len(y_true)
    indices = np.asarray(indices)
    if indices.ndim != 1 or (indices.size and (not np.issubdtype(indices.dtype, np.integer)
                                               or indices.min() < -n or indices.max() >= n)):
        raise ValueError(f"indices must be a 1-D array of int row positions in [0, {n})")
    w = np.ones(len(indices)) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != indices.shape:
        raise ValueError(f"weights has shape {w.shape}, expected {indices.shape} (one per index)")
    clean = y_true == y_noisy
    clean_sel = clean[indices]
    chosen = np.zeros(n, dtype=bool)
    chosen[indices] = True
    coverage = {_py(c): float(np.mean(chosen[y_true == c] & clean[y_true == c]))
                for c in np.unique(y_true)}
    per_label = {}
    for c in np.unique(y_noisy):
        mask = y_noisy[indices] == c
        per_label[_py(c)] = float(clean_sel[mask].mean()) if mask.any() else float("nan")
    return CoresetReport(
        size=len(indices),
        fraction=len(indices) / n if n else 0.0,
        clean_fraction=float(clean_sel.mean()) if len(indices) else float("nan"),
        weighted_clean_fraction=(float((w * clean_sel).sum() / w.sum()) if w.sum() > 0
                                 else float("nan")),
        dataset_clean_fraction=float(clean.mean()) if n else float("nan"),
        clean_recall=float((chosen & clean).sum() / clean.sum()) if clean.any() else float("nan"),
        class_coverage=coverage,
        class_clean_fraction=per_label,
    )


def _py(value):
    """A NumPy scalar as the plain Python value (readable dict keys)."""
    return value.item() if isinstance(value, np.generic) else value
