"""Diagnostics: get_label_issues, coreset_report, noise-rate estimates and the "auto" sizes.

Thresholds come from measurements on scikit-learn's digits (70/30 split, standardised, symmetric
noise; see docs/user_guide.rst), with a margin:

* CrustClassifier.get_label_issues, 30% noise, 30 epochs: precision of the top-k (k = number of
  wrong labels) 0.963-0.973 over seeds 0-2; asserted >= 0.85 (the noise rate is 0.30).
* CrustSelector.get_label_issues on CrustSampler's out-of-fold gradients, 30% noise: 0.855 with
  both optimizers; asserted >= 0.7.
* coreset_size="auto", 30 epochs: estimated noise 0.184-0.190 for 20% and 0.498-0.501 for 50%
  (seeds 0-2); asserted within 0.05.
* CrustSampler(k="auto"): 0.247-0.261 for 20%, 0.602-0.618 for 50% (it over-estimates, which
  only makes the coreset smaller); asserted within 0.15 and ordered.
* CrustSelector(k="auto") on those residual features: the same count as the sampler; on other
  features, a geometric guess: 0.10 / 0.27 / 0.33 for 0% / 20% / 50% on the same gradients when
  they are not recognised as residuals (rough), 0.135 / 0.152 / 0.06 on the standardised pixels
  (useless there; documented).
"""

import sys

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.preprocessing import StandardScaler

from sk_crust import (
    CoresetReport,
    CrustSampler,
    CrustSelector,
    add_label_noise,
    coreset_report,
    estimate_noise_rate,
)
from sk_crust._diagnostics import (
    auto_fraction,
    center_distances,
    estimate_noise_rate_geometric,
    medoid_distances,
)

pd = pytest.importorskip("pandas")


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return StandardScaler().fit_transform(X).astype(np.float32), y


def _noisy(y, rate, seed=0):
    return np.asarray(add_label_noise(y, rate, random_state=seed)[0])


# --- CrustSelector / CrustSampler ----------------------------------------------------------------
@pytest.fixture(scope="module")
def digits_gradients(digits):
    X, y = digits
    y_noisy = _noisy(y, 0.3)
    sampler = CrustSampler(k=0.5, random_state=0).fit(X, y_noisy)
    return sampler.gradients_, y_noisy, y


@pytest.mark.parametrize("optimizer", ["lazy", "centrality"])
def test_selector_label_issues_rank_wrong_labels_first(digits_gradients, optimizer):
    G, y_noisy, y_true = digits_gradients
    wrong = y_noisy != y_true
    issues = CrustSelector(k=0.5, optimizer=optimizer).fit(G, y_noisy).get_label_issues()
    top = issues.index[:wrong.sum()]
    assert wrong[top].mean() >= 0.7  # measured 0.855; the noise rate is 0.30


def test_selector_label_issues_table(digits_gradients):
    G, y_noisy, _ = digits_gradients
    selector = CrustSelector(k=0.3, optimizer="centrality").fit(G, y_noisy)
    issues = selector.get_label_issues()
    assert list(issues.columns) == ["given_label", "medoid_distance", "selected", "weight",
                                    "suspicion"]
    assert issues.index.name == "sample"
    assert sorted(issues.index) == list(range(len(G)))
    assert issues["suspicion"].is_monotonic_decreasing
    # Columns agree with the fitted attributes, row by row.
    rows = issues.index.to_numpy()
    np.testing.assert_array_equal(issues["given_label"], y_noisy[rows])
    np.testing.assert_array_equal(issues["weight"], selector.sample_weight_[rows])
    np.testing.assert_array_equal(issues["selected"], selector.sample_weight_[rows] > 0)
    np.testing.assert_allclose(issues["medoid_distance"], selector.distances_[rows])
    assert (selector.distances_[selector.indices_] == 0).all()


def test_selector_distances_match_brute_force():
    rng = np.random.default_rng(0)
    G = rng.normal(size=(60, 3))
    y = rng.integers(0, 3, 60)
    for metric in ("euclidean", "sqeuclidean", "cosine"):
        sel = CrustSelector(k=0.2, metric=metric).fit(G, y)
        medoids = G[sel.indices_[sel.labels_]]
        if metric == "cosine":
            expected = 1 - np.sum(G * medoids, 1) / np.linalg.norm(G, axis=1) / np.linalg.norm(
                medoids, axis=1)
        else:
            expected = np.linalg.norm(G - medoids, axis=1) ** (2 if metric == "sqeuclidean"
                                                               else 1)
        np.testing.assert_allclose(sel.distances_, expected, atol=1e-9)
        # The class centre is the class's first pick.
        for c in range(3):
            first = sel.indices_[np.flatnonzero(sel.group_of_selected_ == c)[0]]
            rows = np.flatnonzero(y == c)
            expected = medoid_distances(G, np.array([first]), np.zeros(len(G), dtype=int),
                                        metric=metric)[rows]
            np.testing.assert_allclose(sel.center_distances_[rows], expected, atol=1e-9)


def test_center_distances_reads_first_pick_of_each_group():
    G = np.array([[0.0], [1.0], [9.0], [10.0]])
    out = center_distances(G, np.array([1, 0, 3]), np.array([1, 0, 2, 2]), np.array([0, 0, 1]))
    assert out.tolist() == [1.0, 0.0, 1.0, 0.0]


def test_label_issues_need_pandas(monkeypatch):
    sel = CrustSelector(k=0.5).fit(np.arange(8.0)[:, None], [0, 1] * 4)
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match="pandas"):
        sel.get_label_issues()


def test_selector_label_issues_not_fitted():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        CrustSelector().get_label_issues()


# --- "auto" sizes --------------------------------------------------------------------------------
def test_selector_auto_k_sets_noise_rate_and_size():
    rng = np.random.default_rng(0)
    clean = rng.normal(0, 0.1, size=(160, 2))
    far = rng.normal(3, 0.1, size=(40, 2))
    G = np.vstack([clean, far])
    y = np.zeros(200, dtype=int)
    sel = CrustSelector(k="auto", optimizer="centrality").fit(G, y)
    assert sel.noise_rate_ == pytest.approx(0.2)
    assert len(sel.indices_) == 160
    assert (sel.indices_ < 160).all()  # only the central mode
    # A refit with a number forgets the estimate.
    assert not hasattr(CrustSelector(k=0.5).fit(G, y), "noise_rate_")
    sel.set_params(k=0.5).fit(G, y)
    assert not hasattr(sel, "noise_rate_")


def test_sampler_auto_k_estimates_noise(digits):
    X, y = digits
    estimates = {}
    for rate in (0.2, 0.5):
        y_noisy = _noisy(y, rate)
        sampler = CrustSampler(k="auto", random_state=0).fit(X, y_noisy)
        estimates[rate] = sampler.noise_rate_
        # The selector recognises probability residuals and makes the same count.
        selector = CrustSelector(k="auto").fit(sampler.gradients_, y_noisy)
        assert selector.noise_rate_ == pytest.approx(sampler.noise_rate_)
        assert abs(sampler.noise_rate_ - rate) <= 0.15  # measured +0.06 and +0.10
        assert len(sampler.sample_indices_) == pytest.approx(
            auto_fraction(sampler.noise_rate_) * len(y), abs=10)
    assert estimates[0.2] < estimates[0.5]


@pytest.mark.parametrize("k", ["automatic", "AUTO", 0.0, 1.5, -1, True])
def test_bad_k_message_mentions_auto(k):
    with pytest.raises(ValueError, match="'auto'"):
        CrustSelector(k=k).fit(np.zeros((4, 1)), [0, 0, 1, 1])


def test_geometric_estimate_is_rough_but_ordered(digits_gradients):
    # Measured on CrustSampler's gradients of digits: true 0.3 -> 0.28-0.35. It is only a rough
    # guess (true 0.5 -> 0.33, true 0 -> 0.10), documented as such.
    G, y_noisy, _ = digits_gradients
    assert 0.15 <= estimate_noise_rate_geometric(G, y_noisy) <= 0.45
    assert estimate_noise_rate_geometric(np.zeros((5, 2)), np.zeros(5, dtype=int)) == 0.0
    assert estimate_noise_rate_geometric(np.zeros((2, 2)), np.zeros(2, dtype=int)) == 0.0


@pytest.mark.parametrize("rate, expected", [(0.3, 0.7), (0.0, 1.0), (0.05, 0.95), (0.95, 0.1), (1.0, 0.1)])
def test_auto_fraction_clips(rate, expected):
    assert auto_fraction(rate) == pytest.approx(expected)


# --- estimate_noise_rate -------------------------------------------------------------------------
def test_estimate_noise_rate_with_out_of_fold_probabilities(digits):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict

    X, y = digits
    for rate in (0.0, 0.3):
        y_noisy = _noisy(y, rate) if rate else y
        proba = cross_val_predict(LogisticRegression(max_iter=300), X, y_noisy, cv=3,
                                  method="predict_proba")
        assert abs(estimate_noise_rate(y_noisy, proba) - rate) <= 0.12


def test_estimate_noise_rate_string_labels_and_classes_order():
    y = np.array(["b", "b", "a", "a"])
    proba = np.array([[0.1, 0.9], [0.9, 0.1], [0.8, 0.2], [0.7, 0.3]])  # columns a, b
    assert estimate_noise_rate(y, proba) == pytest.approx(0.25)
    # The same with the columns swapped and classes given in that order.
    assert estimate_noise_rate(y, proba[:, ::-1], classes=["b", "a"]) == pytest.approx(0.25)


@pytest.mark.parametrize("proba, classes, match", [
    (np.ones((3, 2)) / 2, None, "shape"),
    (np.ones((4, 3)) / 3, None, "shape"),
    (np.ones((4, 2)) / 2, [0, 2], "not in classes"),
])
def test_estimate_noise_rate_errors(proba, classes, match):
    with pytest.raises(ValueError, match=match):
        estimate_noise_rate(np.array([0, 0, 1, 1]), proba, classes=classes)


# --- coreset_report ------------------------------------------------------------------------------
def test_coreset_report_values():
    y_true = np.array([0, 0, 0, 1, 1, 1])
    y_noisy = np.array([0, 0, 1, 1, 1, 0])
    report = coreset_report(y_true, y_noisy, [0, 2, 3], weights=[1.0, 1.0, 2.0])
    assert isinstance(report, CoresetReport)
    assert report.size == 3 and report.fraction == 0.5
    assert report.clean_fraction == pytest.approx(2 / 3)
    assert report.weighted_clean_fraction == pytest.approx(3 / 4)
    assert report.dataset_clean_fraction == pytest.approx(4 / 6)
    assert report.clean_recall == pytest.approx(2 / 4)
    assert report.class_coverage == {0: pytest.approx(1 / 3), 1: pytest.approx(1 / 3)}
    assert report.class_clean_fraction == {0: 1.0, 1: 0.5}
    # Without weights, weighted == unweighted; inputs are left untouched.
    before = y_noisy.copy()
    plain = coreset_report(y_true, y_noisy, np.array([0, 2, 3]))
    assert plain.weighted_clean_fraction == plain.clean_fraction
    np.testing.assert_array_equal(y_noisy, before)


def test_coreset_report_of_a_selection(digits_gradients):
    G, y_noisy, y_true = digits_gradients
    sel = CrustSelector(k=0.3, optimizer="centrality").fit(G, y_noisy)
    report = coreset_report(y_true, y_noisy, sel.indices_, sel.weights_)
    assert report.dataset_clean_fraction == pytest.approx(0.7, abs=0.01)
    assert report.clean_fraction > 0.9  # central points are clean
    assert set(report.class_coverage) == set(range(10))


@pytest.mark.parametrize("kwargs, match", [
    (dict(y_true=[0, 1], y_noisy=[0, 1, 1], indices=[0]), "same length"),
    (dict(y_true=[0, 1], y_noisy=[0, 1], indices=[5]), "row positions"),
    (dict(y_true=[0, 1], y_noisy=[0, 1], indices=[0.5]), "row positions"),
    (dict(y_true=[0, 1], y_noisy=[0, 1], indices=[0], weights=[1, 2]), "one per index"),
])
def test_coreset_report_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        coreset_report(**kwargs)


# --- CrustClassifier -----------------------------------------------------------------------------
def _digits_split(rate, seed):
    from sk_crust.demo import _data

    return _data(rate, seed)


@pytest.fixture(scope="module")
def classifier_30():
    pytest.importorskip("torch")
    from sk_crust import CrustClassifier

    X_train, _, y_train, _, y_noisy = _digits_split(0.3, 0)
    net = CrustClassifier("mlp", max_epochs=30, train_split=None, verbose=0, random_state=0)
    return net.fit(X_train, y_noisy), X_train, y_train, y_noisy


def test_classifier_label_issues_precision(classifier_30):
    net, X, y_true, y_noisy = classifier_30
    wrong = y_noisy != y_true
    issues = net.get_label_issues(X, y_noisy)
    precision = wrong[issues.index[:wrong.sum()]].mean()
    assert precision >= 0.85  # measured 0.96-0.97; the noise rate is 0.30
    assert wrong[issues.index[:100]].mean() >= 0.95  # measured 1.0


def test_classifier_label_issues_table(classifier_30):
    net, X, _, y_noisy = classifier_30
    issues = net.get_label_issues(X, y_noisy)
    assert list(issues.columns) == ["given_label", "predicted_label", "predicted_proba_of_given",
                                    "gradient_norm", "medoid_distance", "selected", "weight",
                                    "suspicion"]
    assert issues["suspicion"].is_monotonic_decreasing
    assert ((issues["suspicion"] >= 0) & (issues["suspicion"] <= np.sqrt(2) + 1e-6)).all()
    rows = issues.index.to_numpy()
    np.testing.assert_array_equal(issues["given_label"], y_noisy[rows])
    np.testing.assert_array_equal(issues["predicted_label"], net.predict(X[rows]))
    assert issues["selected"].sum() == pytest.approx(0.5 * len(X), abs=10)
    assert (issues.loc[issues["selected"], "weight"] > 0).all()


def test_classifier_label_issues_string_labels():
    pytest.importorskip("torch")
    from sk_crust import CrustClassifier

    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 3)).astype(np.float32)
    y = np.where(X[:, 0] > 0, "pos", "neg")
    net = CrustClassifier(max_epochs=4, warmup_epochs=1, train_split=None, verbose=0,
                          random_state=0).fit(X, y)
    issues = net.get_label_issues(X, y)
    assert set(issues["given_label"]) == {"pos", "neg"}
    assert set(issues["predicted_label"]) <= {"pos", "neg"}
    with pytest.raises(ValueError, match="not in classes_"):
        net.get_label_issues(X, np.where(X[:, 0] > 0, "pos", "other"))


@pytest.mark.parametrize("rate", [0.2, 0.5])
def test_classifier_auto_coreset_size_estimates_noise(rate):
    pytest.importorskip("torch")
    from sk_crust import CrustClassifier

    X, _, _, _, y_noisy = _digits_split(rate, 0)
    net = CrustClassifier("mlp", coreset_size="auto", max_epochs=8, train_split=None,
                          verbose=0, random_state=0).fit(X, y_noisy)
    assert abs(net.noise_rate_ - rate) <= 0.05  # measured within 0.016 (seeds 0-2)
    assert net.coreset_fraction_ == pytest.approx(auto_fraction(net.noise_rate_))
    history = net.history
    assert history[-1, "noise_rate"] == net.noise_rate_
    # Warm-up epochs train on everything, then the coreset keeps the estimated clean fraction.
    assert history[-1, "coreset_size"] == pytest.approx(net.coreset_fraction_ * len(X), abs=10)
    assert "noise_rate" not in history[0]
    # The table selects with the fraction chosen during fit.
    issues = net.get_label_issues(X, y_noisy)
    assert issues["selected"].sum() == pytest.approx(net.coreset_fraction_ * len(X), abs=10)
    # partial_fit keeps the estimate made at the first selection.
    estimate = net.noise_rate_
    net.partial_fit(X, y_noisy)
    assert net.noise_rate_ == estimate
    # A refit with a number forgets the estimate.
    net.set_params(coreset_size=0.5, max_epochs=6).fit(X, y_noisy)
    assert not hasattr(net, "noise_rate_")


@pytest.mark.parametrize("size", ["automatic", 0.0, 1.5, -3])
def test_classifier_bad_coreset_size_mentions_auto(size):
    pytest.importorskip("torch")
    from sk_crust import CrustClassifier

    X = np.zeros((10, 2), dtype=np.float32)
    with pytest.raises(ValueError, match="'auto'"):
        CrustClassifier(coreset_size=size, max_epochs=1, verbose=0).fit(X, [0, 1] * 5)


@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean", "cosine"])
def test_medoid_distances_in_blocks_equal_one_pass(monkeypatch, metric):
    from sk_crust import _diagnostics

    rng = np.random.default_rng(0)
    G = rng.normal(size=(103, 4)).astype(np.float32)
    G[5] = 0.0  # a zero vector: cosine distance 1 by convention
    indices = np.array([3, 50, 99])
    labels = rng.integers(0, 3, size=len(G))
    whole = medoid_distances(G, indices, labels, metric=metric)
    monkeypatch.setattr(_diagnostics, "_DISTANCE_BLOCK_VALUES", 4 * 10)  # blocks of 10 rows
    np.testing.assert_array_equal(medoid_distances(G, indices, labels, metric=metric), whole)
    A, M = G.astype(np.float64), G[indices[labels]].astype(np.float64)
    if metric == "cosine":
        expected = 1 - (A * M).sum(1) / np.where(
            (np.linalg.norm(A, axis=1) * np.linalg.norm(M, axis=1)) > 0,
            np.linalg.norm(A, axis=1) * np.linalg.norm(M, axis=1), 1.0)
        expected[5] = 1.0
    else:
        expected = ((A - M) ** 2).sum(1)
        expected = np.sqrt(expected) if metric == "euclidean" else expected
    np.testing.assert_allclose(whole, np.clip(expected, 0, 2) if metric == "cosine" else expected,
                               rtol=1e-12, atol=1e-12)
