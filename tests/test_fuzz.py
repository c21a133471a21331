"""Fuzzing the public entry points with random shapes, dtypes, values and labels.

Each call either returns a result that satisfies the invariants, or raises a ValueError or
TypeError with a message: never another exception type, a hang, or NaN weights. Bounded: a fixed
number of examples per entry point (about a minute in all on two cores).
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sk_crust import CrustClassifier, CrustSampler, CrustSelector, add_label_noise

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]  # tests/conftest.py

FUZZ = settings(max_examples=400, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))


LABEL_KINDS = ("int", "str", "float-integral", "float", "bool", "object-mixed")


def _labels(rng, n, n_classes, kind):
    y = rng.integers(0, n_classes, size=n)
    if kind == "str":
        return np.array([f"c{v}" for v in y])
    if kind == "float-integral":
        return y.astype(float) + 1.0
    if kind == "float":
        return y + rng.random(n)  # continuous: must be refused
    if kind == "bool":
        return y % 2 == 0
    if kind == "object-mixed":
        return np.array([v if v % 2 else f"c{v}" for v in y], dtype=object)
    return y


@st.composite
def inputs(draw, max_n=60):
    """Mostly valid data (so the selection code runs), with every kind of bad input mixed in."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    n = draw(st.sampled_from([0, 1, 2, 3]) | st.integers(4, max_n))
    d = draw(st.integers(1, 8))
    shape = draw(st.sampled_from(["2d"] * 8 + ["1d", "3d"]))
    dtype = draw(st.sampled_from([np.float32, np.float64, np.int64, np.int8, np.float16]))
    scale = draw(st.sampled_from([0.0, 1e-30, 1.0, 1.0, 1.0, 1e4, 1e30]))
    X = rng.normal(size=(n, d)) * scale
    if n and draw(st.booleans()):  # duplicated rows: exact ties
        X = X[np.arange(n) % max(n // 3, 1)]
    special = draw(st.sampled_from([None] * 8 + [np.nan, np.inf]))
    if special is not None and n:
        X[rng.integers(n), rng.integers(d)] = special
    with np.errstate(all="ignore"):
        X = X.astype(dtype)
    if shape == "1d":
        X = X[:, 0]
    elif shape == "3d":
        X = X[:, :, None]
    n_classes = draw(st.integers(1, 5))
    kind = draw(st.sampled_from(["int", "int", "int", "str", "str", *LABEL_KINDS]))
    y = _labels(rng, len(X), n_classes, kind)
    if draw(st.integers(0, 19)) == 0:  # occasionally, y of another length
        y = y[:-1]
    k = draw(st.sampled_from([0.5, 0.5, 0.2, 1.0, 1, 3, 10, 1000, "auto", 0, -1, 1.5, "x",
                              None]))
    return X, y, k


def _check_coreset(indices, weights, n):
    assert len(np.unique(indices)) == len(indices)
    assert np.all((indices >= 0) & (indices < n))
    assert np.all(np.isfinite(weights)) and np.all(weights >= 0)


def _call(function):
    """Run ``function``: a result, or a ValueError/TypeError with a message."""
    try:
        return function()
    except (ValueError, TypeError) as error:
        assert str(error), f"{type(error).__name__} without a message"
        return None


@FUZZ
@given(inputs(), st.sampled_from(["lazy", "naive", "stochastic", "centrality"]),
       st.sampled_from(["cluster", "radius", "uniform"]), st.sampled_from([None, 2000]))
def test_fuzz_selector(data, optimizer, weights, memory_budget):
    X, y, k = data
    selector = CrustSelector(k=k, optimizer=optimizer, weights=weights, random_state=0,
                             memory_budget=memory_budget)
    result = _call(lambda: selector.fit_transform(X, y))
    if result is not None:
        _check_coreset(result.indices, result.weights, len(y))
        if weights == "cluster":
            assert result.weights.sum() == len(y)
        np.testing.assert_array_equal(selector.transform(X).indices, result.indices)


@FUZZ
@given(inputs())
def test_fuzz_sampler_features_X(data):
    X, y, k = data
    sampler = CrustSampler(k=k, features="X", random_state=0)
    result = _call(lambda: sampler.fit_resample(X, y))
    if result is not None:
        X_res, y_res = result
        assert len(X_res) == len(y_res) == len(sampler.sample_indices_)
        _check_coreset(sampler.sample_indices_, sampler.sample_weight_, len(y))
        assert np.all(np.isfinite(sampler.sample_weight_))


@FUZZ
@given(inputs(), st.one_of(st.floats(-1, 2), st.sampled_from([None, "x", np.nan])),
       st.sampled_from(["symmetric", "asymmetric", "pair"]))
def test_fuzz_add_label_noise(data, rate, kind):
    _, y, _ = data
    result = _call(lambda: add_label_noise(y, rate, kind=kind, random_state=0))
    if result is not None:
        y_noisy, transition = result
        assert len(y_noisy) == len(y)
        assert set(np.unique(y_noisy).tolist()) <= set(np.unique(y).tolist())
        assert np.all(np.isfinite(transition))


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(inputs(max_n=40))
def test_fuzz_classifier_one_epoch(data):
    X, y, k = data
    net = CrustClassifier(max_epochs=1, warmup_epochs=0, coreset_size=k, train_split=None,
                          verbose=0, random_state=0, batch_size=16)
    fitted = _call(lambda: net.fit(X, y))
    if fitted is not None:
        proba = net.predict_proba(X)
        assert proba.shape == (len(X), len(net.classes_))
        assert np.all(np.isfinite(net.coreset_weights_))
