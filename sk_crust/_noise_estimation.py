"""Noise-rate estimation: how many labels look wrong, and the coreset fraction of ``"auto"``.

* :func:`estimate_noise_rate` estimates the fraction of wrong labels from predicted probabilities
  (a confident-joint count, as cleanlab does); :func:`estimate_noise_rate_geometric` does it from
  features alone (points far from their class's centre); :func:`estimate_noise_rate_from_features`
  picks between them. They drive ``coreset_size="auto"`` and ``k="auto"`` through
  :func:`auto_fraction`.

A leaf: NumPy only, no estimator imports.
"""

from __future__ import annotations

import numpy as np

#: Bounds of the coreset fraction chosen by ``"auto"`` (1 - estimated noise rate, clipped).
#: No upper clip below 1: when no noise is found, dropping even the 10% least central examples
#: cost 4 points on letter (0.900 vs 0.946 with all of them, benchmarks/results/noisy_labels.md).
AUTO_BOUNDS = (0.1, 1.0)

#: ``method="auto"`` adds the ``"concentrated"`` estimate from this level only: after warm-up it
#: read at most 0.23 on clean labels of the noise panel (vowel and marketing, hard sets; 0.16 or
#: less on the other 12) and 0.24-0.36 with 40% class-conditional noise
#: (``benchmarks/results/noise_panel_notes.md``, fourth round). Class-conditional noise barely
#: moves the spread estimate: without this part the classifier's default trained it plainly
#: and lost up to 0.17 to the SCE control at asym40.
CONCENTRATED_NOISE_FROM = 0.2


def estimate_noise_rate(y, proba, *, classes=None, method: str = "confident_joint") -> float:
    """Estimate the fraction of wrong labels from predicted probabilities (confident joint).

    A sample labelled ``i`` is counted as "truly ``j``" when ``p_j`` reaches class ``j``'s
    threshold (the mean of ``p_j`` over the samples labelled ``j``), taking the largest such
    ``p_j``; samples reaching no threshold are not counted. Each row of the resulting count
    matrix is rescaled to the size of its class (Northcutt et al., *Confident Learning*, 2021).
    Probabilities should be out-of-sample (cross-validated) or come from a model that has not
    yet memorised the noise.

    ``method="confident_joint"`` returns the off-diagonal mass: every confident disagreement
    counts, so a model that still confuses hard, correctly labelled examples (an under-trained
    network, a hard data set) reads as noise. ``method="spread"`` counts only the part of the
    disagreement spread over *all* the other classes: per class, ``n_classes - 1`` times the
    median off-diagonal rate. Difficulty confuses a class with a few neighbours, so it barely
    moves the median, while labels flipped at random land on every class. It is the estimate of
    ``CrustClassifier(coreset_size="auto")``: after warm-up it read 0.00-0.02 on clean labels of 11
    of 14 data sets where the confident joint read up to 0.33 (``benchmarks/results/
    noise_panel.md``; the exceptions are hard or binary sets). It does
    not see class-conditional noise (labels of one class flipped to one other class), and with
    two or three classes both methods are the same (the median of one or two rates, times
    ``n_classes - 1``, is their sum). ``method="concentrated"`` is the part that ``"spread"``
    leaves out: per class, the largest off-diagonal rate minus the median one, weighted by the
    class priors, i.e. labels moved to *one* other class beyond the background (0 with two
    classes). After warm-up it read 0.24-0.36 with 40% of each class flipped to one other
    class, and at most 0.23 on clean labels (vowel and marketing, hard sets; 0.16 or less on
    the other 12). ``method="auto"`` is the estimate of every ``"auto"`` of the package
    (``CrustClassifier(coreset_size="auto")``, ``CrustSelector(k="auto")`` on probability
    residuals, ``CrustSampler(k="auto")``): the spread estimate, plus the concentrated one
    when it reaches ``CONCENTRATED_NOISE_FROM`` (0.2), capped at 1.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        Given (possibly noisy) labels.
    proba : array-like of shape (n_samples, n_classes)
        Predicted probabilities, columns in ``classes`` order.
    classes : array-like of shape (n_classes,), default=None
        Labels of the columns of ``proba``; ``None`` means ``np.unique(y)``.
    method : {"confident_joint", "spread", "concentrated", "auto"}, default="confident_joint"
        Which disagreements count as noise (see above).

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
    if not isinstance(method, str) or method not in NOISE_METHODS:
        raise ValueError(f"method={method!r} is not valid: pass one of {sorted(NOISE_METHODS)}")
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
    return NOISE_METHODS[method](y_index, proba)


def _confident_joint_rates(y_index: np.ndarray, proba: np.ndarray):
    """Row-normalised confident joint and class sizes; prior validation assumed.

    ``rates[i, j]``: of the samples labelled ``i`` that reach some class threshold, the share
    whose most probable class above threshold is ``j``. Rows with no such sample are 0.
    """
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
    return joint / np.where(rows > 0, rows, 1.0)[:, None], counts


def _confident_joint_noise(y_index: np.ndarray, proba: np.ndarray) -> float:
    """The ``"confident_joint"`` kernel of :func:`estimate_noise_rate`; validation assumed."""
    if not len(y_index):
        return 0.0
    rates, counts = _confident_joint_rates(y_index, proba)
    return float(np.clip(1.0 - np.sum(counts * np.diag(rates)) / counts.sum(), 0.0, 1.0))


def _off_diagonal_rates(y_index: np.ndarray, proba: np.ndarray):
    """Per class, the confident joint's off-diagonal rates (n_classes, n_classes - 1) and the
    class sizes; ``None`` with no samples or fewer than two classes."""
    if not len(y_index):
        return None
    rates, counts = _confident_joint_rates(y_index, proba)
    n_classes = rates.shape[0]
    if n_classes < 2:
        return None
    off = ~np.eye(n_classes, dtype=bool)
    return rates[off].reshape(n_classes, n_classes - 1), counts


def _spread_rates(wrong: np.ndarray) -> np.ndarray:
    """Per class: ``(n_classes - 1)`` times the median off-diagonal rate, at most the row sum."""
    return np.minimum(np.median(wrong, axis=1) * wrong.shape[1], wrong.sum(axis=1))


def _concentrated_rates(wrong: np.ndarray) -> np.ndarray:
    """Per class, the largest off-diagonal rate minus the median one."""
    return wrong.max(axis=1) - np.median(wrong, axis=1)


def _prior_weighted(counts: np.ndarray, per_class: np.ndarray) -> float:
    return float(np.clip(np.sum(counts * per_class) / counts.sum(), 0.0, 1.0))


def _spread_noise(y_index: np.ndarray, proba: np.ndarray) -> float:
    """The ``"spread"`` kernel of :func:`estimate_noise_rate`; validation assumed.

    Per class ``i``: ``(n_classes - 1)`` times the median of the off-diagonal rates of row ``i``
    of the confident joint (capped at the row's whole off-diagonal mass), weighted by the class
    priors. With two or three classes ``n_classes - 1`` times the median of the one or two
    off-diagonal rates is their sum, so this equals the confident joint.
    """
    if (rows := _off_diagonal_rates(y_index, proba)) is None:
        return 0.0
    wrong, counts = rows
    return _prior_weighted(counts, _spread_rates(wrong))


def _concentrated_noise(y_index: np.ndarray, proba: np.ndarray) -> float:
    """The ``"concentrated"`` kernel of :func:`estimate_noise_rate`; validation assumed.

    Per class ``i``: the largest off-diagonal rate of row ``i`` of the confident joint minus the
    median one (what ``"spread"`` counts per other class), weighted by the class priors. With
    two classes the one rate is its own median: 0.
    """
    if (rows := _off_diagonal_rates(y_index, proba)) is None:
        return 0.0
    wrong, counts = rows
    return _prior_weighted(counts, _concentrated_rates(wrong))


def _auto_parts_of(rows) -> tuple[float, float, float]:
    """:func:`auto_noise_parts` from :func:`_off_diagonal_rates`' result (one confident joint)."""
    if rows is None:
        return 0.0, 0.0, 0.0
    wrong, counts = rows
    spread = _prior_weighted(counts, _spread_rates(wrong))
    concentrated = _prior_weighted(counts, _concentrated_rates(wrong))
    counted = concentrated if concentrated >= CONCENTRATED_NOISE_FROM else 0.0
    return min(1.0, spread + counted), spread, concentrated


def auto_noise_parts(y_index: np.ndarray, proba: np.ndarray) -> tuple[float, float, float]:
    """``(auto, spread, concentrated)`` estimates; validation assumed.

    ``auto`` is the spread estimate plus the concentrated one when that reaches
    ``CONCENTRATED_NOISE_FROM``: class-conditional noise hides from the spread estimate, and
    the concentrated one sees it but also reads a model's confusion of neighbouring classes,
    so it only counts from a level that clean labels did not reach on the panel.
    """
    return _auto_parts_of(_off_diagonal_rates(y_index, proba))


def _auto_noise(y_index: np.ndarray, proba: np.ndarray) -> float:
    """The ``"auto"`` kernel of :func:`estimate_noise_rate`; validation assumed."""
    return auto_noise_parts(y_index, proba)[0]


#: ``method`` values of :func:`estimate_noise_rate`.
NOISE_METHODS = {"confident_joint": _confident_joint_noise, "spread": _spread_noise,
                 "concentrated": _concentrated_noise, "auto": _auto_noise}


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
    >>> from sk_crust._noise_estimation import estimate_noise_rate_geometric
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


def auto_class_fractions(y_index: np.ndarray, proba: np.ndarray) -> tuple[float, np.ndarray]:
    """The ``"auto"`` noise rate and the fraction of each class an ``"auto"`` coreset keeps.

    With more than two classes every class keeps ``auto_fraction(noise_rate)``. With two
    classes each keeps 1 - its *own* rate (its row's off-diagonal rate of the confident joint,
    clipped as :func:`auto_fraction` clips): the labels given as one class are often much
    noisier than the other's (one-directional noise such as missed positives, or symmetric
    flips on imbalanced classes, where the minority's label set receives more flips than it
    loses), the concentrated estimate is 0 by construction there, and each row holds a whole
    class, enough for its own estimate. Prior-weighted, the two rates are ``noise_rate``.
    On the sampler panel the per-class rule raised 24 of the two binary sets' 32 cells and
    lowered none by more than 0.01 (breast_cancer at 30% one-directional noise: +0.04 to
    +0.08); given to every class of more than two, per-class rates from fewer rows emptied
    classes at 80% noise (segment -0.20 at 20 epochs; ``noise_panel_notes.md``).
    Validation assumed (``y_index`` in ``range(proba.shape[1])``).
    """
    rows = _off_diagonal_rates(y_index, proba)
    noise = _auto_parts_of(rows)[0]
    n_classes = proba.shape[1]
    if n_classes == 2 and rows is not None:
        return noise, np.array([auto_fraction(rate) for rate in rows[0][:, 0]])
    return noise, np.full(n_classes, auto_fraction(noise))


def residual_proba_or_none(G: np.ndarray, y_index: np.ndarray) -> np.ndarray | None:
    """The probabilities behind ``G`` if ``G`` holds residuals ``p - onehot(y)``, else None.

    Residuals have one column per class (class order), rows summing to 0 and ``p`` in [0, 1],
    as :class:`CrustSampler` and the ``"logits"`` gradient compute them.
    """
    G = np.asarray(G, dtype=np.float64)
    y_index = np.asarray(y_index)
    n_classes = int(y_index.max(initial=-1)) + 1
    if G.ndim == 2 and G.shape[1] == n_classes and len(G):
        proba = residual_proba(G, y_index)
        tol = 1e-4
        if (proba.min() >= -tol and proba.max() <= 1 + tol
                and np.abs(proba.sum(axis=1) - 1.0).max() <= tol * n_classes):
            return proba
    return None


def estimate_noise_rate_from_features(G: np.ndarray, y_index: np.ndarray) -> float:
    """The noise estimate of ``CrustSelector(k="auto")``.

    When ``G`` holds probability residuals ``p - onehot(y)`` with columns in class order (what
    :class:`CrustSampler` and the ``"logits"`` gradient compute: rows sum to 0, ``p`` in [0, 1]),
    the probabilities are recovered and counted with :func:`estimate_noise_rate`
    (``method="auto"``); otherwise :func:`estimate_noise_rate_geometric` guesses from
    the geometry.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_crust._noise_estimation import estimate_noise_rate_from_features
    >>> proba = np.array([[.9, .1], [.8, .2], [.2, .8], [.1, .9], [.9, .1]])
    >>> y_index = np.array([0, 0, 1, 1, 1])
    >>> G = proba - np.eye(2)[y_index]
    >>> round(estimate_noise_rate_from_features(G, y_index), 6)
    0.2
    """
    proba = residual_proba_or_none(G, y_index)
    if proba is not None:
        return _auto_noise(np.asarray(y_index), proba)
    return estimate_noise_rate_geometric(np.asarray(G, dtype=np.float64), np.asarray(y_index))


def residual_proba(G: np.ndarray, y_index: np.ndarray) -> np.ndarray:
    """The probabilities ``p`` behind residuals ``G = p - onehot(y)`` (float64, a new array)."""
    proba = np.array(G, dtype=np.float64)
    proba[np.arange(len(proba)), y_index] += 1.0
    return proba


def auto_fraction(noise_rate: float) -> float:
    """Coreset fraction for ``"auto"``: the estimated clean fraction, clipped to AUTO_BOUNDS.

    Examples
    --------
    >>> from sk_crust._noise_estimation import auto_fraction
    >>> auto_fraction(0.3), auto_fraction(0.0), auto_fraction(0.95)
    (0.7, 1.0, 0.1)
    """
    low, high = AUTO_BOUNDS
    return float(np.clip(round(1.0 - noise_rate, 6), low, high))
