"""Reports on a selection: which labels look wrong, and how clean a coreset is.

* :func:`label_issues` builds the table behind ``CrustSelector.get_label_issues`` and
  ``CrustClassifier.get_label_issues``: one row per sample, most suspicious first
  (:func:`selector_label_issues`, :func:`classifier_label_issues`).
* :func:`coreset_report` summarises a coreset against known true labels (for benchmarks with
  synthetic noise).

A leaf: no estimator and no torch import (the classifier's table gets the selector class from its
caller); pandas is imported only when a table is built.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ._noise_estimation import auto_fraction


def _import_pandas():
    try:
        import pandas as pd
    except ImportError as exc:  # pragma: no cover - pandas is a test/docs dependency
        raise ImportError("get_label_issues returns a pandas DataFrame and needs pandas: "
                          "pip install pandas") from exc
    return pd


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


def selector_label_issues(selector, suspicion=None, columns=None):
    """The table of :meth:`CrustSelector.get_label_issues` (see there).

    ``suspicion`` replaces the selector's (the distance to the class centre) and ``columns`` are
    added before the selector's own, for :func:`sampler_label_issues`.
    """
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(selector)
    n = len(selector.labels_)
    group = getattr(selector, "group_of_selected_", None)
    if group is None:
        raise AttributeError("this CrustSelector was fitted without diagnostics: refit it")
    selected = np.zeros(n, dtype=bool)
    selected[selector.indices_] = True
    labels = np.asarray(selector.classes_)[group[selector.labels_]]
    return label_issues(labels,
                        selector.center_distances_ if suspicion is None else suspicion,
                        selected=selected, weights=selector.sample_weight_,
                        columns={**(columns or {}), "medoid_distance": selector.distances_})


def sampler_label_issues(sampler):
    """The table of :meth:`CrustSampler.get_label_issues` with gradient features (see there)."""
    norm = np.linalg.norm(np.asarray(sampler.gradients_, dtype=np.float64), axis=1)
    return selector_label_issues(sampler.selector_, suspicion=norm,
                                 columns={"gradient_norm": norm})


def selection_device(device):
    """The device a net's own selection runs on: its CUDA device, else None (the CPU engines).

    The rule of ``CrustClassifier``: a CUDA net selects on its GPU, where the similarity rows'
    matrix products are cheap; any other device selects with the NumPy/numba engines.

    Examples
    --------
    >>> from sk_crust._reporting import selection_device
    >>> selection_device("cuda:1"), selection_device("cpu"), selection_device(None)
    ('cuda:1', None, None)
    """
    if device is None or str(device).split(":")[0] != "cuda":
        return None
    return device


def classifier_label_issues(net, X, y, selector_class=None):
    """The table of :meth:`CrustClassifier.get_label_issues` (see there).

    ``selector_class`` makes the selection (:class:`~sk_crust.CrustSelector` when None, given by
    the caller: this module does not import estimators). It runs on the net's CUDA device when
    the net has one (:func:`selection_device`), as the selection during ``fit`` does.
    """
    from sklearn.utils.validation import column_or_1d

    if selector_class is None:
        import sys

        # Not imported: the caller (the classifier) has loaded the selector module already.
        selector_class = sys.modules[f"{__package__}._selector"].CrustSelector
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
    selector = selector_class(k=size, optimizer=config["selection_optimizer"],
                              weights=config["selection_weights"],
                              random_state=net.random_state,
                              device=selection_device(getattr(net, "device", None)))
    selector.fit(features.features, groups)
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
