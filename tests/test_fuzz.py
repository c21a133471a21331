"""Fuzzing the public entry points with random shapes, dtypes, values and labels.

Valid and invalid inputs are generated separately, so that neither half can hide the other:
every valid input (any size from one sample, any numeric dtype, duplicated rows, zero or tiny
scale, any kind of discrete labels, any valid ``k``) must give a result that satisfies the
invariants, and every invalid one (one defect applied to a valid input) must raise a ValueError or
TypeError whose message names what is wrong: the parameter, or the property of X or y. Bounded: a
fixed number of examples per entry point (about 20 seconds in all on two cores).
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sk_crust import CrustClassifier, CrustSampler, CrustSelector, add_label_noise

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]  # tests/conftest.py

FUZZ = settings(max_examples=300, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))
FUZZ_INVALID = settings(FUZZ, max_examples=150)

LABEL_KINDS = ("int", "str", "float-integral", "bool")
OPTIMIZERS = ("lazy", "naive", "stochastic", "centrality")


def _labels(codes, kind):
    if kind == "str":
        return np.array([f"c{v}" for v in codes])
    if kind == "float-integral":
        return codes.astype(float) + 1.0
    if kind == "bool":
        return codes % 2 == 0
    return codes


@st.composite
def valid_inputs(draw, max_n=60, min_n=1, min_classes=1):
    """Data every entry point must accept, and a valid ``k`` for it."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = draw(st.sampled_from([n for n in (1, 2, 3) if n >= min_n]) | st.integers(4, max_n))
    d = draw(st.integers(1, 8))
    dtype = draw(st.sampled_from([np.float32, np.float64, np.int64, np.int8, np.float16]))
    # Scales whose squared norms fit the float32 distances (1e30 does not: an invalid input);
    # float16 overflows beyond ~6e4.
    scale = draw(st.sampled_from([0.0, 1e-30, 1.0, 1.0] + ([] if dtype == np.float16 else [1e4])))
    X = rng.normal(size=(n, d)) * scale
    if draw(st.booleans()):  # duplicated rows: exact ties
        X = X[np.arange(n) % max(n // 3, 1)]
    with np.errstate(all="ignore"):  # int8 wraps around: still valid numbers
        X = X.astype(dtype)
    n_classes = draw(st.integers(min_classes, 5))
    codes = rng.integers(0, n_classes, size=n)
    codes[:min(n, n_classes)] = np.arange(min(n, n_classes))  # n_classes distinct labels
    kind = draw(st.sampled_from(["int", "str", *LABEL_KINDS]))
    if kind == "bool" and n_classes > 2:
        kind = "int"
    y = _labels(codes, kind)
    n_distinct = len(np.unique(y))
    k = draw(st.sampled_from([0.2, 0.5, 1.0, "auto"]) | st.integers(n_distinct, n))
    return X, y, k


def _with_value(X, value):
    X = X.astype(np.float64)
    X[-1, 0] = value
    return X


# Defects of X or y: (make the invalid input from a valid one, what the message must say).
# "{k}" stands for the name of the size parameter: k, or coreset_size for CrustClassifier.
DATA_DEFECTS = {
    "nan": (lambda X, y, k: (_with_value(X, np.nan), y, k), r"Input X contains NaN"),
    "inf": (lambda X, y, k: (_with_value(X, np.inf), y, k), r"Input X contains infinity"),
    "1d": (lambda X, y, k: (X[:, 0], y, k), r"Expected 2D array"),
    "empty": (lambda X, y, k: (X[:0], y[:0], 0.5), r"0 sample\(s\)"),
    "y-length": (lambda X, y, k: (X, y[:-1], 0.5), r"inconsistent numbers of samples"),
    "y-continuous": (lambda X, y, k: (X, np.linspace(0.5, 1.5, len(y)), k),
                     r"Unknown label type: continuous"),
    "y-mixed": (lambda X, y, k: (X, np.array([1, *["a"] * (len(y) - 1)], dtype=object), 0.5),
                r"y mixes strings with other types"),
    "k-too-large": (lambda X, y, k: (X, y, len(y) + 1),
                    r"{k}=\d+ is (not valid for \d+ samples|larger than the \d+ training)"),
}
# Only for the selection estimators: the classifier accepts images (n, channels, height, width)
# and selects on gradients, not on X.
SELECTION_DEFECTS = {
    "3d": (lambda X, y, k: (X[:, :, None], y, k), r"Found array with dim 3"),
    "too-large-for-float32": (lambda X, y, k: (np.full(X.shape, 1e30), y, k),
                              r"G has values up to .* too large for the float32 distances"),
}
BAD_K = [0, -1, 0.0, 1.5, np.nan, "x", True]  # None is valid for CrustClassifier (its preset)


@st.composite
def invalid_inputs(draw, defects, bad_k):
    """A valid input with one defect, and the pattern the error message must match."""
    X, y, k = draw(valid_inputs(min_n=2))
    name = draw(st.sampled_from(sorted(defects) + ["k"]))
    if name == "k":
        return X, y, draw(st.sampled_from(bad_k)), r"{k}=\S+ is not valid"
    make, pattern = defects[name]
    return (*make(X, y, k), pattern)


def _check_coreset(indices, weights, n):
    assert len(np.unique(indices)) == len(indices)
    assert np.all((indices >= 0) & (indices < n))
    assert np.all(np.isfinite(weights)) and np.all(weights >= 0)


@FUZZ
@given(valid_inputs(), st.sampled_from(OPTIMIZERS),
       st.sampled_from(["cluster", "radius", "uniform"]), st.sampled_from([None, 2000]))
def test_fuzz_selector_accepts_valid_input(data, optimizer, weights, memory_budget):
    X, y, k = data
    selector = CrustSelector(k=k, optimizer=optimizer, weights=weights, random_state=0,
                             memory_budget=memory_budget)
    result = selector.fit_transform(X, y)
    _check_coreset(result.indices, result.weights, len(y))
    if weights == "cluster":
        assert result.weights.sum() == len(y)
    np.testing.assert_array_equal(selector.transform(X).indices, result.indices)


@FUZZ_INVALID
@given(invalid_inputs({**DATA_DEFECTS, **SELECTION_DEFECTS}, [*BAD_K, None]),
       st.sampled_from(OPTIMIZERS))
def test_fuzz_selector_refuses_invalid_input(data, optimizer):
    X, y, k, pattern = data
    with pytest.raises((ValueError, TypeError), match=pattern.format(k="k")):
        CrustSelector(k=k, optimizer=optimizer, random_state=0).fit(X, y)


@FUZZ
@given(valid_inputs())
def test_fuzz_sampler_accepts_valid_input(data):
    X, y, k = data
    sampler = CrustSampler(k=k, features="X", random_state=0)
    X_res, y_res = sampler.fit_resample(X, y)
    assert len(X_res) == len(y_res) == len(sampler.sample_indices_)
    _check_coreset(sampler.sample_indices_, sampler.sample_weight_, len(y))


@FUZZ_INVALID
@given(invalid_inputs({**DATA_DEFECTS, **SELECTION_DEFECTS}, [*BAD_K, None]))
def test_fuzz_sampler_refuses_invalid_input(data):
    X, y, k, pattern = data
    with pytest.raises((ValueError, TypeError), match=pattern.format(k="k")):
        CrustSampler(k=k, features="X", random_state=0).fit_resample(X, y)


@FUZZ
@given(valid_inputs(min_n=2, min_classes=2), st.floats(0, 1),
       st.sampled_from(["symmetric", "asymmetric", "pairflip"]))
def test_fuzz_add_label_noise_accepts_valid_input(data, rate, kind):
    _, y, _ = data
    y_noisy, transition = add_label_noise(y, rate, kind=kind, random_state=0)
    assert len(y_noisy) == len(y)
    assert set(np.unique(y_noisy).tolist()) <= set(np.unique(y).tolist())
    assert np.all(np.isfinite(transition))
    np.testing.assert_allclose(transition.sum(axis=1), 1.0)


NOISE_DEFECTS = {
    "rate": st.tuples(st.just("ok"), st.floats(1.0, 1e9, exclude_min=True)
                      | st.floats(-1e9, 0, exclude_max=True)
                      | st.sampled_from([np.nan, np.inf, None, "x", True]),
                      st.just(r"rate=\S+ is not valid")),
    "kind": st.tuples(st.just("ok"), st.just(0.2), st.just(r"kind=\S+ is not valid")),
    "one-class": st.tuples(st.just("one-class"), st.just(0.2),
                           st.just(r"needs at least 2 classes")),
    "2d-y": st.tuples(st.just("2d"), st.just(0.2), st.just(r"y must be 1-D")),
}


@FUZZ_INVALID
@given(valid_inputs(min_n=2, min_classes=2), st.sampled_from(sorted(NOISE_DEFECTS)).flatmap(
    lambda name: st.tuples(st.just(name), NOISE_DEFECTS[name])),
       st.sampled_from(["symmetric", "asymmetric", "pairflip"]))
def test_fuzz_add_label_noise_refuses_invalid_input(data, defect, kind):
    _, y, _ = data
    name, (labels, rate, pattern) = defect
    if name == "kind":
        kind = "pair"  # the name is "pairflip"
    if labels == "one-class":
        y = np.full_like(y, y[0])
    elif labels == "2d":
        y = y[:, None]
    with pytest.raises((ValueError, TypeError), match=pattern):
        add_label_noise(y, rate, kind=kind, random_state=0)


def _classifier(coreset_size):
    return CrustClassifier(max_epochs=1, warmup_epochs=0, coreset_size=coreset_size,
                           train_split=None, verbose=0, random_state=0, batch_size=16)


@settings(FUZZ, max_examples=100)
@given(valid_inputs(max_n=40))
def test_fuzz_classifier_one_epoch_accepts_valid_input(data):
    X, y, k = data
    net = _classifier(k).fit(X, y)
    proba = net.predict_proba(X)
    assert proba.shape == (len(X), len(net.classes_))
    assert np.all(np.isfinite(net.coreset_weights_))


@settings(FUZZ, max_examples=60)
@given(invalid_inputs(DATA_DEFECTS, BAD_K))
def test_fuzz_classifier_refuses_invalid_input(data):
    X, y, k, pattern = data
    with pytest.raises((ValueError, TypeError), match=pattern.format(k="coreset_size")):
        _classifier(k).fit(X, y)
