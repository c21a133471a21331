"""Reliability: every bad input gets a clear answer, nothing is lost, results are reproducible.

One test per row of ``docs/reliability.rst`` (same order, same names).
"""

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from sklearn.exceptions import DataConversionWarning, NotFittedError
from sklearn.model_selection import KFold
from skorch.callbacks import Callback
from threadpoolctl import threadpool_limits

from sk_crust import (
    CrustClassifier,
    CrustSampler,
    CrustSelector,
    add_label_noise,
    estimate_noise_rate,
)
from sk_crust._classifier import TRUSTED_NOISE_BELOW
from sk_crust._noise_estimation import CONCENTRATED_NOISE_FROM, auto_fraction, residual_proba
from sk_crust.losses import GCELoss, SCELoss

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _data(n=40, d=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)), np.repeat([0, 1], n // 2)


def _net(**kwargs):
    # The selection mechanics at a fixed half (the default's size depends on the data).
    params = dict(coreset_size=0.5, unselected_weight=0.0,
                  max_epochs=2, warmup_epochs=1, train_split=None, verbose=0, random_state=0,
                  batch_size=32)
    params.update(kwargs)
    return CrustClassifier(**params)


def _xy(n=60, d=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    return X, (X[:, 0] > 0).astype(int)


def _selection(G, y, **kwargs):
    selector = CrustSelector(**{"k": 0.5, **kwargs}).fit(G, y)
    return selector.indices_, selector.weights_


# --- CrustSelector / CrustSampler inputs ---------------------------------------------------------
@pytest.mark.parametrize("bad, match", [(np.nan, "contains NaN"), (np.inf, "contains infinity")])
def test_non_finite_features(bad, match):
    G, y = _data()
    G[3, 1] = bad
    with pytest.raises(ValueError, match=match):
        CrustSelector().fit(G, y)


def test_empty_input():
    with pytest.raises(ValueError, match="0 sample"):
        CrustSelector().fit(np.empty((0, 3)), np.array([]))


def test_class_with_one_sample_is_kept():
    G, y = _data()
    y = y.copy()
    y[7] = 2
    selector = CrustSelector(k=0.5).fit(G, y)
    assert 7 in selector.indices_
    assert selector.sample_weight_[7] == 1.0


def test_one_class_needs_features_X_for_gradients():
    G, _ = _data()
    with pytest.raises(ValueError, match="needs at least 2 classes.*features='X'"):
        CrustSampler(cv=3).fit_resample(G, np.zeros(len(G)))
    X_res, _ = CrustSampler(k=0.5, features="X").fit_resample(G, np.zeros(len(G)))
    assert len(X_res) == 20


def test_class_absent_from_a_cv_training_fold():
    G, _ = _data()
    y = np.r_[np.zeros(30), np.ones(10)]  # unshuffled KFold(4): the last training fold has no 1
    with pytest.raises(ValueError, match="training fold without class 1.0.*stratified"):
        CrustSampler(cv=KFold(4)).fit_resample(G, y)


def test_k_larger_than_the_dataset():
    G, y = _data()
    with pytest.raises(ValueError, match=r"k=100 is not valid for 40 samples in 2 classes: "
                                         "pass an int between n_classes"):
        CrustSelector(k=100).fit(G, y)


def test_int_k_smaller_than_the_number_of_classes():
    G, _ = _data()
    y = np.arange(40) % 4
    with pytest.raises(ValueError, match=r"k=3 is not valid for 40 samples in 4 classes"):
        CrustSelector(k=3).fit(G, y)


def test_k_larger_than_a_class_is_capped_by_class():
    G, _ = _data()
    y = np.r_[np.zeros(35), np.ones(5)]
    selector = CrustSelector(k=38).fit(G, y)
    assert len(selector.indices_) == 38
    assert np.sum(y[selector.indices_] == 1) <= 5
    assert selector.weights_.sum() == 40


@pytest.mark.parametrize("k", [0, 0.0, -1, -0.5, 1.5, 2.0, "half", "1", None, True, np.nan])
def test_invalid_k(k):
    G, y = _data()
    with pytest.raises(ValueError, match=r"k=.* is not valid: pass a float in \(0, 1\]"):
        CrustSelector(k=k).fit(G, y)


def test_y_of_another_length():
    G, y = _data()
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        CrustSelector().fit(G, y[:-1])


def test_y_two_dimensional():
    G, y = _data()
    with pytest.raises(ValueError, match="y should be a 1d array"):
        CrustSelector().fit(G, np.c_[y, y])


@pytest.mark.parametrize("convert", [
    lambda y: np.where(y == 1, "cat", "dog"),
    lambda y: pd.Categorical(np.where(y == 1, "cat", "dog")),
    lambda y: y.astype(float) + 1.0,
    lambda y: pd.Series(y + 10),
], ids=["strings", "categorical", "integral-floats", "series"])
def test_label_types_give_the_same_selection(convert):
    G, y = _data()
    indices, weights = _selection(G, y)
    other = CrustSelector(k=0.5).fit(G, convert(y))
    assert set(other.indices_) == set(indices)
    np.testing.assert_array_equal(np.sort(other.weights_), np.sort(weights))


def test_continuous_labels():
    G, y = _data()
    with pytest.raises(ValueError, match="Unknown label type: continuous"):
        CrustSelector().fit(G, y + 0.5)


def test_sparse_features_for_selector():
    G, y = _data()
    with pytest.raises(TypeError, match=r"Sparse data was passed.*toarray"):
        CrustSelector().fit(sp.csr_matrix(G), y)


def test_sparse_X_for_sampler():
    G, y = _data()
    X_res, _ = CrustSampler(k=0.5, cv=3, random_state=0).fit_resample(sp.csr_matrix(G), y)
    assert sp.issparse(X_res) and X_res.shape == (20, 3)
    with pytest.raises(ValueError, match="features='X' needs dense X"):
        CrustSampler(features="X").fit_resample(sp.csr_matrix(G), y)


@pytest.mark.parametrize("dtype", [np.float64, np.int64, np.int32])
def test_float64_and_int_features(dtype):
    G, y = _data()
    G = (G * 100).astype(dtype)
    expected = _selection(G.astype(np.float32), y)
    got = _selection(G, y)
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])


def test_one_dimensional_features():
    G, y = _data()
    with pytest.raises(ValueError, match="Expected 2D array"):
        CrustSelector().fit(G[:, 0], y)


@pytest.mark.parametrize("optimizer", ["lazy", "naive", "centrality", "stochastic"])
def test_duplicated_rows_and_ties_are_deterministic(optimizer):
    G, y = _data(n=20)
    G = np.repeat(G[:5], 8, axis=0)  # 5 distinct rows, each 8 times: many exact ties
    y = np.repeat([0, 1], 20)
    first = _selection(G, y, optimizer=optimizer, random_state=0)
    second = _selection(G, y, optimizer=optimizer, random_state=0)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    assert len(np.unique(first[0])) == len(first[0])
    assert np.all(first[1] >= 1) and first[1].sum() == 40


def test_all_points_identical():
    selector = CrustSelector(k=0.5).fit(np.ones((10, 3)), np.zeros(10))
    assert len(selector.indices_) == 5
    assert selector.objective_ == 0.0  # d0 = 0: every similarity is 0
    assert selector.weights_.sum() == 10 and np.all(selector.weights_ >= 1)


def test_transform_before_fit():
    G, _ = _data()
    with pytest.raises(NotFittedError):
        CrustSelector().transform(G)


def test_transform_on_other_data():
    G, y = _data()
    selector = CrustSelector().fit(G, y)
    with pytest.raises(ValueError, match="differs from the data seen at fit.*fit_transform"):
        selector.transform(G + 1)
    with pytest.raises(ValueError, match="X has 2 features, but CrustSelector is expecting 3"):
        selector.transform(G[:, :2])


@pytest.mark.parametrize("optimizer", ["lazy", "stochastic"])
def test_same_random_state_same_selection(optimizer):
    G, y = _data(n=200)
    first = _selection(G, y, optimizer=optimizer, random_state=3, n_jobs=1)
    second = _selection(G, y, optimizer=optimizer, random_state=3, n_jobs=2)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])


def test_add_label_noise_invalid_inputs():
    with pytest.raises(ValueError, match=r"rate=1.5 is not valid: pass a float in \[0, 1\]"):
        add_label_noise(np.array([0, 1, 0, 1]), 1.5)
    with pytest.raises(ValueError, match="needs at least 2 classes.*pass `classes`"):
        add_label_noise(np.array([0, 0, 0]), 0.2)


def test_dataset_over_the_memory_budget():
    G, y = _data(n=1200)
    dense = CrustSelector(k=0.1, optimizer="lazy", random_state=0).fit(G, y)
    parts = CrustSelector(k=0.1, optimizer="lazy", random_state=0,
                          memory_budget=400_000).fit(G, y)
    blocked = CrustSelector(k=0.1, optimizer="lazy", random_state=0,
                            memory_budget=10_000).fit(G, y)
    assert list(dense.class_methods_) == ["dense-lazy"] * 2
    assert list(parts.class_methods_) == ["parts-2-lazy"] * 2  # 600 per class, 300 per part
    assert list(blocked.class_methods_) == ["blocked-stochastic"] * 2  # parts would be tiny
    for over in (parts, blocked):
        assert len(over.indices_) == len(dense.indices_)
        assert over.weights_.sum() == 1200
    with pytest.raises(ValueError, match="memory_budget='lots' is not valid"):
        CrustSelector(memory_budget="lots").fit(G, y)


def test_centrality_on_a_class_larger_than_its_sample():
    G, y = _data(n=800)  # 400 per class
    params = dict(k=0.5, optimizer="centrality", random_state=0)
    exact = CrustSelector(centrality_sample=None, **params).fit(G, y)
    np.testing.assert_array_equal(CrustSelector(centrality_sample=400, **params).fit(G, y)
                                  .indices_, exact.indices_)  # not larger: exact
    sampled = CrustSelector(centrality_sample=100, **params).fit(G, y)
    np.testing.assert_array_equal(CrustSelector(centrality_sample=100, **params).fit(G, y)
                                  .indices_, sampled.indices_)  # same seed, same coreset
    assert not np.array_equal(np.sort(sampled.indices_), np.sort(exact.indices_))
    assert sampled.weights_.sum() == 800
    with pytest.raises(ValueError, match="centrality_sample"):
        CrustSelector(centrality_sample=0).fit(G, y)


# --- CrustClassifier ----------------------------------------------------------------------------
def test_classifier_predict_before_fit():
    X, _ = _xy()
    with pytest.raises(NotFittedError, match="not initialized"):
        _net().predict(X)


def test_classifier_sparse_X():
    X, y = _xy()
    with pytest.raises(TypeError, match=r"Sparse data was passed.*toarray"):
        _net().fit(sp.csr_matrix(X), y)


def test_classifier_non_finite_X():
    X, y = _xy()
    X[0, 0] = np.nan
    with pytest.raises(ValueError, match="contains NaN"):
        _net().fit(X, y)


def test_classifier_one_dimensional_X():
    X, y = _xy()
    with pytest.raises(ValueError, match="Expected 2D array"):
        _net().fit(X[:, 0], y)


def test_classifier_float_labels_and_float64_X():
    X, y = _xy()
    net = _net().fit(X.astype(np.float64), y.astype(float) + 1.0)
    assert set(np.unique(net.predict(X))) <= {1.0, 2.0}
    assert net.classes_.tolist() == [1.0, 2.0]


def test_classifier_changing_n_features():
    X, y = _xy()
    net = _net().fit(X, y)
    with pytest.raises(ValueError, match="X has 3 features, but CrustClassifier is expecting 4"):
        net.predict(X[:, :3])


def test_classifier_coreset_size_larger_than_training_set():
    X, y = _xy()
    with pytest.raises(ValueError, match="coreset_size=100 is larger than the 60 training"):
        _net(coreset_size=100).fit(X, y)


class _Probabilities(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(4, 2)

    def forward(self, x):
        return torch.softmax(self.linear(x), dim=-1)


def test_module_returning_probabilities_warns():
    X, y = _xy()
    with pytest.warns(UserWarning, match="look like probabilities.*remove the final softmax"):
        _net(module=_Probabilities).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        _net().fit(X, y)  # logits: no warning


@pytest.mark.parametrize("batch_size, where", [(16, "training loss"),
                                               (64, "gradient features")])
def test_nan_loss_stops_with_epoch_and_lr(batch_size, where):
    # One batch per epoch (64 > 60): the first step blows the weights up and the selection of
    # epoch 2 sees it; smaller batches see it in the loss of a later batch of epoch 1.
    X, y = _xy()
    with pytest.raises(ValueError, match=rf"{where} .*not finite.* at epoch \d+.*lower lr"):
        _net(lr=1e30, max_epochs=10, batch_size=batch_size, optimizer=torch.optim.SGD).fit(
            X * 1e3, y)


class _InterruptAtEpoch3(Callback):
    def on_epoch_end(self, net, **kwargs):
        if len(net.history) == 3:
            raise KeyboardInterrupt


def test_keyboard_interrupt_keeps_a_usable_model():
    X, y = _xy()
    net = _net(max_epochs=6, callbacks=[_InterruptAtEpoch3()]).fit(X, y)
    assert len(net.history) == 3
    assert net.predict(X).shape == (60,)
    # The coreset of the last selection (epoch 3) is kept.
    assert len(net.coreset_indices_) == net.history[-1, "coreset_size"] < 60


def test_classifier_pickle_round_trip():
    X, y = _xy()
    net = _net().fit(X, y)
    loaded = pickle.loads(pickle.dumps(net))
    np.testing.assert_array_equal(loaded.predict_proba(X), net.predict_proba(X))
    np.testing.assert_array_equal(loaded.predict(X), net.predict(X))


def test_classifier_same_random_state_same_model():
    X, y = _xy()
    first = _net(max_epochs=3).fit(X, y).predict_proba(X)
    second = _net(max_epochs=3).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(first, second)


def test_classifier_without_y():
    X, _ = _xy()
    with pytest.raises(ValueError, match="requires y to be passed, but the target y is None"):
        _net().fit(X, None)


def test_classifier_two_dimensional_y_column_is_raveled():
    X, y = _xy()
    with pytest.warns(DataConversionWarning, match="column-vector y"):
        net = _net().fit(X, y[:, None])
    assert net.predict(X).shape == (60,)


def test_values_too_large_for_float32_distances():
    G, y = _data()
    with pytest.raises(ValueError, match="too large for the float32 distances.*rescale G"):
        CrustSelector().fit(G * 1e30, y)
    CrustSelector(metric="cosine").fit(G * 1e30, y)  # cosine ignores the scale


def test_add_label_noise_mixed_label_types():
    with pytest.raises(TypeError, match="mixes label types that cannot be sorted.*one type"):
        add_label_noise(np.array([1, "a", 2, "b"], dtype=object), 0.5)


@pytest.mark.parametrize("make", [CrustSelector, lambda: CrustSampler(features="X"),
                                  lambda: CrustClassifier(max_epochs=1)])
def test_estimators_mixed_label_types(make):
    G, _ = _data(6)
    y = np.array([1, "a", 2, "b", 1, "a"], dtype=object)
    estimator = make()
    fit = estimator.fit_resample if hasattr(estimator, "fit_resample") else estimator.fit
    with pytest.raises(ValueError, match=r"y mixes strings with other types \(e.g. 'a' and 1 of "
                                         r"type int\).*y.astype\(str\)"):
        fit(G.astype(np.float32), y)


def test_selection_same_with_same_blas_threads():
    rng = np.random.default_rng(3)
    G = rng.normal(size=(1000, 16)).astype(np.float32)
    y = np.repeat([0, 1], 500)
    params = dict(k=0.1, optimizer="lazy", random_state=0)
    workers = CrustSelector(n_jobs=2, **params).fit(G, y)  # joblib workers: one BLAS thread
    with threadpool_limits(1):
        here = CrustSelector(**params).fit(G, y)
    np.testing.assert_array_equal(workers.indices_, here.indices_)
    np.testing.assert_array_equal(workers.weights_, here.weights_)


@pytest.mark.parametrize("make", [CrustSelector, CrustSampler])
def test_device_unavailable_or_unknown(make, monkeypatch):
    G, y = _data(20)
    with pytest.raises(ValueError, match=r"device='gpu' is not valid: pass None, 'cpu', 'cuda'"):
        make(device="gpu").fit(G, y)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # as on a CPU-only machine
    with pytest.raises(ValueError, match=r"device='cuda' asks for CUDA, but "
                                         r"torch.cuda.is_available\(\) is False"):
        make(device="cuda").fit(G, y)
    make().fit(G, y)  # the default still works


def test_every_documented_row_has_its_test_in_order():
    import re
    from pathlib import Path

    doc = Path(__file__).resolve().parents[1] / "docs" / "reliability.rst"
    if not doc.exists():  # an installed package without the docs
        pytest.skip("docs/reliability.rst not found")
    names = re.findall(r"^     - ``(test_\w+)``\s*$", doc.read_text(), flags=re.M)
    assert len(names) >= 25
    defined = [n for n in globals() if n.startswith("test_") and callable(globals()[n])]
    assert [n for n in names if n not in defined] == []
    positions = [defined.index(n) for n in names]
    assert positions == sorted(positions), "rows and tests are not in the same order"


def test_classifier_proba_with_any_criterion():
    X, y = _data(60, 4)
    net = CrustClassifier(criterion=torch.nn.MultiMarginLoss, max_epochs=2, train_split=None,
                          verbose=0, random_state=0).fit(X.astype(np.float32), y)
    proba = net.predict_proba(X.astype(np.float32))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)


def test_sampler_dataframe_round_trip():
    X, y = _data(60, 3)
    frame = pd.DataFrame(X, columns=["a", "b", "c"], index=np.arange(100, 160))
    X_res, y_res = CrustSampler(k=0.5, random_state=0).fit_resample(frame, pd.Series(y))
    assert list(X_res.columns) == ["a", "b", "c"] and X_res.index.min() >= 100
    assert isinstance(y_res, pd.Series) and len(y_res) == len(X_res) == 30


def test_classifier_random_state_leaves_global_rng():
    X, y = _data(60, 4)
    torch.manual_seed(3)
    expected = torch.rand(2)
    torch.manual_seed(3)
    CrustClassifier(max_epochs=1, train_split=None, verbose=0,
                    random_state=0).fit(X.astype(np.float32), y)
    torch.testing.assert_close(torch.rand(2), expected)


def test_classifier_select_every_across_partial_fit():
    X, y = _data(60, 4)
    net = CrustClassifier(max_epochs=1, warmup_epochs=1, select_every=2, coreset_size=0.5,
                          train_split=None, verbose=0, random_state=0)
    for _ in range(4):  # epochs 1 (warm-up), 2 (select), 3 (keep), 4 (select)
        net.partial_fit(X.astype(np.float32), y)
    ran = [row["epoch"] for row in net.history if not np.isnan(row["selection_objective"])]
    assert ran == [2, 4]


def _digits_split():
    from sklearn.datasets import load_digits
    from sklearn.preprocessing import StandardScaler

    X, y = load_digits(return_X_y=True)
    return StandardScaler().fit_transform(X).astype(np.float32), y


def test_classifier_default_on_clean_labels_trains_on_everything():
    X, y = _digits_split()
    net = CrustClassifier(max_epochs=7, train_split=None, verbose=0, random_state=0).fit(X, y)
    assert net.noise_rate_ < 0.03 and net.coreset_fraction_ > 0.97
    assert min(net.history[:, "coreset_size"]) >= 0.97 * len(X)


def test_auto_counts_class_conditional_noise_from_the_concentrated_estimate():
    X, y = _digits_split()
    rng = np.random.default_rng(0)
    flip = rng.random(len(y)) < 0.4
    y_noisy = np.where(flip, (y + 1) % 10, y)  # every wrong label of a class goes to one class
    net = CrustClassifier(max_epochs=7, train_split=None, verbose=0, random_state=0)
    net.fit(X, y_noisy)
    # The spread estimate reads ~0 here (the truth is 0.4); the concentrated one sees it, so
    # it counts as noise: a smaller coreset, and SCE from the first selection.
    assert net.concentrated_noise_rate_ >= 0.2  # measured 0.27-0.31 (seeds 0-2)
    assert net.noise_rate_ >= net.concentrated_noise_rate_
    assert net.coreset_fraction_ == pytest.approx(auto_fraction(net.noise_rate_))
    assert net.history[-1, "concentrated_noise_rate"] == net.concentrated_noise_rate_
    assert len(net.coreset_indices_) < 0.8 * len(X)  # the medoids; the rest trains at 0.3
    assert type(net.criterion_) is SCELoss
    clean = CrustClassifier(max_epochs=7, train_split=None, verbose=0, random_state=0).fit(X, y)
    assert clean.concentrated_noise_rate_ < 0.2 and clean.noise_rate_ < 0.05  # 0.002-0.003
    assert type(clean.criterion_) is torch.nn.CrossEntropyLoss


def test_sampler_and_selector_auto_count_class_conditional_noise(digits):
    # 40% of each class moved to one other class: the spread estimate misses it, the package's
    # "auto" estimate (every "auto" of the package) does not, so the sampler keeps fewer rows.
    X, y = digits
    rng = np.random.default_rng(0)
    y_noisy = np.where(rng.random(len(y)) < 0.4, (y + 1) % 10, y)
    sampler = CrustSampler(k="auto", random_state=0).fit(X, y_noisy)
    y_index = np.searchsorted(sampler.classes_, y_noisy)
    proba = residual_proba(sampler.gradients_, y_index)
    spread = estimate_noise_rate(y_noisy, proba, method="spread")
    assert sampler.noise_rate_ == pytest.approx(estimate_noise_rate(y_noisy, proba, method="auto"))
    assert sampler.noise_rate_ >= spread + CONCENTRATED_NOISE_FROM
    assert len(sampler.sample_indices_) < auto_fraction(spread) * len(y) - 0.15 * len(y)
    selector = CrustSelector(k="auto").fit(sampler.gradients_, y_noisy)
    assert selector.noise_rate_ == pytest.approx(sampler.noise_rate_)


def test_sampler_auto_sizes_each_class_of_two_from_its_own_noise():
    # Missed positives: 30% of class 1 relabelled 0, so label 0 holds all the wrong labels.
    from sklearn.datasets import load_breast_cancer
    from sklearn.preprocessing import StandardScaler

    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X).astype(np.float32)
    rng = np.random.default_rng(0)
    y_noisy = np.where((y == 1) & (rng.random(len(y)) < 0.3), 0, y)
    counts = np.bincount(y_noisy)
    sampler = CrustSampler(random_state=0).fit(X, y_noisy)
    low, high = sampler.class_fractions_
    assert high - low > 0.1  # measured 0.75 / 0.95 (the clean shares: 0.69 / 1.0)
    assert sampler.noise_rate_ == pytest.approx(1 - counts @ sampler.class_fractions_ / len(y),
                                                abs=1e-6)
    kept = np.bincount(y_noisy[sampler.sample_indices_], minlength=2)
    np.testing.assert_array_equal(kept, np.floor(sampler.class_fractions_ * counts + 0.5))
    # The selector makes the same count on the sampler's residuals.
    selector = CrustSelector(k="auto").fit(sampler.gradients_, y_noisy)
    np.testing.assert_allclose(selector.class_fractions_, sampler.class_fractions_)
    # The classifier keeps one fraction for both (its in-sample warm-up rates were not
    # reliable enough per class; see the user guide).
    net = CrustClassifier(max_epochs=7, train_split=None, verbose=0, random_state=0)
    net.fit(X, y_noisy)
    assert not hasattr(net, "class_coreset_fractions_")
    medoids = np.bincount(y_noisy[net.coreset_indices_], minlength=2)
    np.testing.assert_array_equal(medoids, np.floor(net.coreset_fraction_ * counts + 0.5))


def test_auto_ranks_two_classes_by_the_given_labels_probability():
    # 40% symmetric noise on two classes: under "auto" each class keeps its rows of highest
    # given-label probability; a fixed k keeps centrality (the official preset's rule).
    from sklearn.datasets import load_breast_cancer
    from sklearn.preprocessing import StandardScaler

    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    y_noisy = np.asarray(add_label_noise(y, 0.4, random_state=0)[0])
    auto = CrustSampler(random_state=0).fit(X, y_noisy)
    assert list(auto.selector_.class_methods_) == ["ranked", "ranked"]
    rows = auto.sample_indices_
    # The kept rows are, per class, those with the smallest residual norm.
    norm = np.linalg.norm(auto.gradients_, axis=1)
    for c in (0, 1):
        in_class = np.flatnonzero(y_noisy == c)
        kept = np.intersect1d(rows, in_class)
        assert norm[kept].max() <= np.sort(norm[in_class])[len(kept)] + 1e-12
    fixed = CrustSampler(k=float(len(rows) / len(y)), random_state=0).fit(X, y_noisy)
    assert set(fixed.selector_.class_methods_) == {"dense-centrality"}
    clean = np.mean(y_noisy[rows] == y[rows])
    assert clean > np.mean(y_noisy[fixed.sample_indices_] == y[fixed.sample_indices_]) + 0.05
    assert clean > 0.7  # the data: 0.6
    # More classes: centrality under "auto" too.
    X10, y10 = _digits_split()
    many = CrustSampler(random_state=0).fit(X10, y10)
    assert set(many.selector_.class_methods_) == {"dense-centrality"}


def test_sampler_default_model_is_the_one_that_predicts_the_given_labels():
    from sklearn.datasets import make_circles, make_classification, make_moons
    from sklearn.linear_model import LogisticRegression

    # Curved classes: a linear model's probabilities hover around 1/2, so gradient boosting's
    # out-of-fold predictions disagree less with the labels and its rows are kept.
    X, y = make_circles(n_samples=400, noise=0.1, factor=0.5, random_state=0)
    y_noisy = np.asarray(add_label_noise(y, 0.2, random_state=0)[0])
    curved = CrustSampler(random_state=0).fit(X, y_noisy)
    assert curved.estimator_kind_ == "HistGradientBoostingClassifier"
    linear_only = CrustSampler(estimator=LogisticRegression(max_iter=1000),
                               random_state=0).fit(X, y_noisy)
    assert linear_only.estimator_kind_ == "LogisticRegression"

    def clean(sampler):
        rows = sampler.sample_indices_
        return np.mean(y_noisy[rows] == y[rows])

    assert clean(curved) > clean(linear_only) + 0.05  # measured 0.98 against 0.79
    # Gradient boosting stops early on a tenth of the labels, so that at 30% noise it does not
    # fit the wrong labels and still predicts the given ones better than the linear model.
    X, y = make_moons(n_samples=1800, noise=0.25, random_state=0)
    y_noisy = np.asarray(add_label_noise(y, 0.3, random_state=0)[0])
    moons = CrustSampler(random_state=0).fit(X, y_noisy)
    assert moons.estimator_kind_ == "HistGradientBoostingClassifier"
    # Well separated linear classes: logistic regression predicts them as well or better.
    X, y = make_classification(n_samples=400, class_sep=3.0, flip_y=0, random_state=1)
    y_noisy = np.asarray(add_label_noise(y, 0.3, random_state=0)[0])
    assert CrustSampler(random_state=0).fit(X, y_noisy).estimator_kind_ == "LogisticRegression"
    # Sparse X (gradient boosting needs dense input) and more classes: logistic regression.
    sparse_fit = CrustSampler(random_state=0).fit(sp.csr_matrix(X), y_noisy)
    assert sparse_fit.estimator_kind_ == "LogisticRegression"
    X10, y10 = _digits_split()
    assert CrustSampler(random_state=0).fit(X10, y10).estimator_kind_ == "LogisticRegression"


def _digits_with_noise(rate):
    X, y = _digits_split()
    return X, np.asarray(add_label_noise(y, rate, random_state=0)[0]) if rate else y


def _noisy_net(**kwargs):
    return CrustClassifier(max_epochs=3, warmup_epochs=2, train_split=None, verbose=0,
                           random_state=0, **kwargs)


@pytest.mark.parametrize("noisy, expected", [(None, SCELoss), ("gce", GCELoss),
                                             (GCELoss, GCELoss)])
def test_classifier_noisy_criterion_switches_once_noise_shows(noisy, expected):
    X, y = _digits_with_noise(0.5)
    net = _noisy_net(noisy_criterion=noisy).fit(X, y)
    assert net.noise_rate_ >= 0.05  # half the labels are wrong: the estimate sees noise
    assert type(net.criterion_) is expected and net.criterion_.reduction == "none"
    assert np.isfinite(net.history[:, "train_loss"]).all()
    for kwargs in (dict(noisy_criterion="keep"), dict(preset="paper", coreset_size="auto"),
                   dict(criterion=GCELoss)):  # never switch / a criterion you pass is kept
        kept = _noisy_net(**kwargs).fit(X, y)
        assert kept.noise_rate_ >= 0.05
        assert type(kept.criterion_) is (GCELoss if "criterion" in kwargs
                                         else torch.nn.CrossEntropyLoss), kwargs
    X, y = _digits_with_noise(0.0)
    clean = _noisy_net().fit(X, y)
    assert clean.noise_rate_ < 0.05 and type(clean.criterion_) is torch.nn.CrossEntropyLoss


def test_classifier_noisy_criterion_across_partial_fit_and_pickle():
    X, y = _digits_with_noise(0.5)
    net = _noisy_net().fit(X, y)
    assert type(net.criterion_) is SCELoss
    net.partial_fit(X, y)
    assert type(net.criterion_) is SCELoss
    net.set_params(max_epochs=1).fit(X, y)  # a new fit: warm-up with cross entropy again
    assert type(net.criterion_) is torch.nn.CrossEntropyLoss
    restored = pickle.loads(pickle.dumps(net.set_params(max_epochs=3).fit(X, y)))
    assert type(restored.criterion_) is SCELoss
    np.testing.assert_array_equal(restored.predict(X[:50]), net.predict(X[:50]))


def test_classifier_noisy_criterion_scope_keeps_cross_entropy_on_the_coreset():
    from sk_crust._mixup import BatchPlan

    X, y = _digits_with_noise(0.3)  # symmetric, ten classes, under half wrong: trusted
    net = _noisy_net().fit(X, y)
    assert net.concentrated_noise_rate_ < CONCENTRATED_NOISE_FROM
    assert 0.05 <= net.noise_rate_ < TRUSTED_NOISE_BELOW
    assert net.noisy_criterion_scope_ == "unselected" and type(net.criterion_) is SCELoss
    # A coreset batch: cross entropy on its medoids, SCE on the rest, one weighted mean.
    torch.manual_seed(0)
    y_pred = torch.randn(5, 10, requires_grad=True)
    y_true = torch.tensor([0, 3, 3, 7, 1])
    weights = torch.tensor([1.0, 0.3, 1.0, 0.3, 0.3])
    trusted = torch.tensor([True, False, True, False, False])
    net._batch_ = BatchPlan(np.arange(5), None, weights, None, None, 1.0, trusted)
    ce = torch.nn.functional.cross_entropy(y_pred, y_true, reduction="none")
    sce = SCELoss(reduction="none")(y_pred, y_true)
    expected = (weights * torch.where(trusted, ce, sce)).sum() / weights.sum()
    torch.testing.assert_close(net.get_loss(y_pred, y_true, training=True), expected)
    # With mixed labels too (the compiled or the torch path: the same mean).
    partner = torch.tensor([2, 3, 5, 7, 0])
    net._batch_ = BatchPlan(np.arange(5), np.arange(5), weights, torch.zeros(5, 64), partner,
                            0.4, trusted)
    mixed_ce = 0.4 * ce + 0.6 * torch.nn.functional.cross_entropy(y_pred, partner,
                                                                   reduction="none")
    mixed_sce = 0.4 * sce + 0.6 * SCELoss(reduction="none")(y_pred, partner)
    expected = (weights * torch.where(trusted, mixed_ce, mixed_sce)).sum() / weights.sum()
    torch.testing.assert_close(net.get_loss(y_pred, y_true, training=True), expected)
    # The coreset epochs' batches did carry the medoid mask.
    assert net._coreset_.selected is not None
    assert net._coreset_.selected.sum() == len(net.coreset_indices_)
    # "all": every example gets SCE, as before the rule (and as with class-conditional noise).
    everything = _noisy_net(noisy_criterion_scope="all").fit(X, y)
    assert everything.noisy_criterion_scope_ == "all"
    assert everything._trusted_criterion_ is None and everything._coreset_.selected is None
    restored = pickle.loads(pickle.dumps(net))
    np.testing.assert_array_equal(restored.predict(X[:50]), net.predict(X[:50]))


def test_classifier_noisy_criterion_scope_auto_distrusts_clustered_or_majority_noise():
    X, y = _digits_split()
    net = CrustClassifier(max_epochs=6, train_split=None, verbose=0, random_state=0)
    # Labels moved to one other class: a dense cluster of wrong labels.
    y_noisy = np.asarray(add_label_noise(y, 0.4, kind="asymmetric", random_state=0)[0])
    net.fit(X, y_noisy)
    assert net.concentrated_noise_rate_ >= CONCENTRATED_NOISE_FROM  # measured 0.3
    assert net.noisy_criterion_scope_ == "all" and net._trusted_criterion_ is None
    forced = CrustClassifier(max_epochs=6, train_split=None, verbose=0, random_state=0,
                             noisy_criterion_scope="unselected").fit(X, y_noisy)
    assert forced.noisy_criterion_scope_ == "unselected"
    # Most labels wrong.
    net.fit(X, np.asarray(add_label_noise(y, 0.8, random_state=0)[0]))
    assert net.noise_rate_ >= TRUSTED_NOISE_BELOW and net.noisy_criterion_scope_ == "all"
    # Two classes: every wrong label comes from the one other class.
    binary = y < 5
    net.fit(X, np.asarray(add_label_noise(binary.astype(int), 0.3, random_state=0)[0]))
    assert net.noise_rate_ >= 0.05 and net.noisy_criterion_scope_ == "all"


@pytest.mark.parametrize("name, bad_values, accepted", [
    ("noisy_criterion", ("mae", 3, True), r"\['sce', 'gce', 'keep'\] or a loss class"),
    ("noisy_criterion_scope", ("rest", 1, True), r"\['auto', 'unselected', 'all'\]"),
])
def test_classifier_noisy_criterion_invalid(name, bad_values, accepted):
    X, y = _digits_with_noise(0.0)
    for bad in bad_values:
        with pytest.raises(ValueError, match=rf"{name}=.* is not valid: pass one of {accepted}"):
            _noisy_net(**{name: bad}).fit(X[:60], y[:60])


def test_classifier_unselected_weight_out_of_range():
    X, y = _data(40, 3)
    for bad in (-0.5, 2, "0.3", True):
        with pytest.raises(ValueError, match=r"unselected_weight=.* is not valid: pass a float "
                                             r"in \[0, 1\]"):
            _net(unselected_weight=bad).fit(X.astype(np.float32), y)
