import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sk_crust.noise import add_label_noise, noise_rate

KINDS = ["symmetric", "asymmetric", "pairflip"]


def _labels(n_per_class=(30, 50, 20, 40), dtype=np.int64):
    """Class-sorted-free labels: shuffled so positions carry no class information."""
    y = np.repeat(np.arange(len(n_per_class)), n_per_class).astype(dtype)
    return np.random.RandomState(0).permutation(y)


def _empirical_transition(y, y_noisy, classes):
    codes = np.searchsorted(classes, y)
    noisy_codes = np.searchsorted(classes, y_noisy)
    counts = np.zeros((len(classes), len(classes)))
    np.add.at(counts, (codes, noisy_codes), 1)
    return counts / counts.sum(axis=1, keepdims=True)


# --- exact rate, structure of the flips ---------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("rate", [0.0, 0.1, 0.33, 0.5, 0.8, 1.0])
def test_exact_number_of_flips(kind, rate):
    y = _labels()
    y_noisy, _ = add_label_noise(y, rate, kind=kind, random_state=0)
    # Every built-in kind maps each class somewhere else, so all samples are eligible; an exact
    # count also proves no flipped sample landed back on its true class.
    assert np.sum(y_noisy != y) == round(rate * len(y))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("rate", [0.2, 0.45, 0.7])
def test_each_class_flipped_fraction_within_one_sample(kind, rate):
    y = _labels()
    y_noisy, _ = add_label_noise(y, rate, kind=kind, random_state=1)
    for c in np.unique(y):
        in_class = y == c
        assert abs(np.sum(y_noisy[in_class] != c) - rate * in_class.sum()) < 1


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("rate", [0.2, 0.5, 0.9])
def test_transition_matrix_matches_empirical_flips(kind, rate):
    y = _labels()
    y_noisy, T = add_label_noise(y, rate, kind=kind, random_state=2)
    classes = np.unique(y)
    assert T.shape == (4, 4)
    np.testing.assert_allclose(T.sum(axis=1), 1)
    assert np.all(T >= 0)
    empirical = _empirical_transition(y, y_noisy, classes)
    np.testing.assert_allclose(np.diag(empirical), np.diag(T), atol=1 / 20 + 1e-12)
    # Flips only go where the matrix allows them.
    assert np.all(empirical[T == 0] == 0)
    if kind != "symmetric":
        # A class map is deterministic given the flip: the matrix is exact up to rounding.
        np.testing.assert_allclose(empirical, T, atol=1 / 20 + 1e-12)


@pytest.mark.parametrize("rate", [0.3, 0.5])
def test_symmetric_matrix_and_targets_uniform_over_other_classes(rate):
    n_classes = 5
    y = np.repeat(np.arange(n_classes), 3000)
    y_noisy, T = add_label_noise(y, rate, random_state=0)
    expected = np.full((n_classes, n_classes), rate / (n_classes - 1))
    np.fill_diagonal(expected, 1 - rate)
    np.testing.assert_allclose(T, expected)
    assert np.all(y_noisy[y != y_noisy] != y[y != y_noisy])
    # 3000 * rate / 4 >= 225 draws per cell: binomial sd <= 0.01, so 0.03 is a > 3 sd margin.
    empirical = _empirical_transition(y, y_noisy, np.arange(n_classes))
    np.testing.assert_allclose(empirical, T, atol=0.03)


def test_symmetric_rate_half_leaves_exactly_half_correct_with_ten_classes():
    # The documented difference with the "uniform over all classes" convention.
    y = np.repeat(np.arange(10), 100)
    y_noisy, _ = add_label_noise(y, 0.5, random_state=3)
    assert np.mean(y_noisy == y) == 0.5


@pytest.mark.parametrize("seed", range(20))
def test_default_asymmetric_map_is_a_derangement(seed):
    y = np.repeat(np.arange(6), 10)
    y_noisy, T = add_label_noise(y, 1.0, kind="asymmetric", random_state=seed)
    mapped_to = {c: np.unique(y_noisy[y == c]) for c in range(6)}
    # Each class goes to exactly one class, never itself, and no two classes share a target.
    assert all(len(v) == 1 for v in mapped_to.values())
    targets = np.array([v[0] for v in mapped_to.values()])
    assert np.all(targets != np.arange(6))
    assert sorted(targets) == list(range(6))
    np.testing.assert_array_equal(T, np.eye(6)[targets])


def test_default_asymmetric_map_depends_on_random_state():
    y = np.repeat(np.arange(8), 5)
    maps = {
        tuple(add_label_noise(y, 1.0, kind="asymmetric", random_state=s)[0][::5]) for s in range(10)
    }
    assert len(maps) > 1


def test_asymmetric_mapping_moves_only_mapped_classes():
    y = _labels()
    mapping = {0: 1, 3: 2}
    y_noisy, T = add_label_noise(y, 0.5, kind="asymmetric", mapping=mapping, random_state=0)
    eligible = np.isin(y, [0, 3])
    np.testing.assert_array_equal(y_noisy[~eligible], y[~eligible])
    assert np.sum(y_noisy != y) == round(0.5 * eligible.sum())
    for true, noisy in mapping.items():
        assert set(np.unique(y_noisy[y == true])) == {true, noisy}
    expected = np.eye(4)
    expected[0, [0, 1]] = 0.5
    expected[3, [3, 2]] = 0.5
    np.testing.assert_array_equal(T, expected)


def test_asymmetric_mapping_need_not_be_a_permutation():
    y = np.repeat([0, 1, 2], 10)
    y_noisy, T = add_label_noise(y, 1.0, kind="asymmetric", mapping={0: 2, 1: 2}, random_state=0)
    np.testing.assert_array_equal(y_noisy, np.full(30, 2))
    np.testing.assert_array_equal(T[:, 2], [1, 1, 1])


def test_empty_mapping_means_no_noise():
    y = _labels()
    y_noisy, T = add_label_noise(y, 0.5, kind="asymmetric", mapping={}, random_state=0)
    np.testing.assert_array_equal(y_noisy, y)
    np.testing.assert_array_equal(T, np.eye(4))


def test_pairflip_follows_the_order_of_classes():
    y = np.repeat([10, 20, 30], 4)
    classes = [30, 10, 20]  # so 30 -> 10 -> 20 -> 30
    y_noisy, T = add_label_noise(y, 1.0, kind="pairflip", classes=classes, random_state=0)
    np.testing.assert_array_equal(y_noisy, np.repeat([20, 30, 10], 4))
    np.testing.assert_array_equal(T, [[0, 1, 0], [0, 0, 1], [1, 0, 0]])


def test_classes_absent_from_y_can_be_drawn():
    y = np.zeros(200, dtype=int)
    y_noisy, T = add_label_noise(y, 1.0, classes=[0, 1, 2], random_state=0)
    assert set(np.unique(y_noisy)) == {1, 2}
    assert T.shape == (3, 3)


@pytest.mark.parametrize("kind", KINDS)
def test_rate_zero_returns_clean_copy(kind):
    y = _labels()
    y_noisy, T = add_label_noise(y, 0.0, kind=kind, random_state=0)
    np.testing.assert_array_equal(y_noisy, y)
    np.testing.assert_array_equal(T, np.eye(4))
    assert not np.shares_memory(y_noisy, y)


def test_empty_labels_with_classes():
    y_noisy, T = add_label_noise(np.array([], dtype=int), 0.5, classes=[0, 1], random_state=0)
    assert y_noisy.shape == (0,)
    np.testing.assert_allclose(T, [[0.5, 0.5], [0.5, 0.5]])


# --- transition matrix as kind ------------------------------------------------------------------


def test_matrix_kind_draws_from_rows():
    y = np.repeat([0, 1, 2], 4000)
    T_in = np.array([[0.7, 0.2, 0.1], [0.0, 1.0, 0.0], [0.25, 0.25, 0.5]])
    y_noisy, T = add_label_noise(y, None, kind=T_in, random_state=0)
    np.testing.assert_array_equal(T, T_in)
    assert T is not T_in
    # 4000 draws per row: binomial sd <= 0.008, so 0.03 is a > 3 sd margin; zeros are exact.
    empirical = _empirical_transition(y, y_noisy, np.arange(3))
    np.testing.assert_allclose(empirical, T_in, atol=0.03)
    np.testing.assert_array_equal(y_noisy[y == 1], 1)


@pytest.mark.parametrize("matrix", [np.eye(3), [[0, 1, 0], [0, 0, 1], [1, 0, 0]]])
def test_deterministic_matrices(matrix):
    y = np.array(["a", "b", "c", "a"])
    y_noisy, _ = add_label_noise(y, None, kind=np.asarray(matrix), random_state=0)
    expected = np.array(["a", "b", "c"])[np.asarray(matrix).argmax(axis=1)][[0, 1, 2, 0]]
    np.testing.assert_array_equal(y_noisy, expected)


def test_matrix_rows_within_tolerance_are_accepted():
    # Rows typed by hand or computed in float32 are off by a little; they must still work.
    T_in = np.array([[0.5, 0.5 + 1e-8], [0.0, 1.0]])
    y_noisy, T = add_label_noise([0, 1] * 50, None, kind=T_in, random_state=0)
    np.testing.assert_array_equal(T, T_in)
    assert set(np.unique(y_noisy)) == {0, 1}


# --- determinism, inputs, dtypes ----------------------------------------------------------------


@pytest.mark.parametrize("kind", [*KINDS, np.full((4, 4), 0.25)])
def test_same_random_state_same_noise(kind):
    y = _labels()
    rate = None if isinstance(kind, np.ndarray) else 0.4
    a, Ta = add_label_noise(y, rate, kind=kind, random_state=42)
    b, Tb = add_label_noise(y, rate, kind=kind, random_state=42)
    c, _ = add_label_noise(y, rate, kind=kind, random_state=43)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(Ta, Tb)
    assert np.any(a != c)


def test_accepts_random_state_instance():
    y = _labels()
    a, _ = add_label_noise(y, 0.4, random_state=np.random.RandomState(7))
    b, _ = add_label_noise(y, 0.4, random_state=7)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kind", [*KINDS, np.full((4, 4), 0.25)])
def test_input_not_mutated(kind):
    y = _labels()
    y_before = y.copy()
    kind_before = kind.copy() if isinstance(kind, np.ndarray) else kind
    rate = None if isinstance(kind, np.ndarray) else 0.5
    mapping = {0: 1} if isinstance(kind, str) and kind == "asymmetric" else None
    mapping_before = None if mapping is None else dict(mapping)
    add_label_noise(y, rate, kind=kind, mapping=mapping, random_state=0)
    np.testing.assert_array_equal(y, y_before)
    np.testing.assert_array_equal(kind, kind_before)
    assert mapping == mapping_before


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int32, np.int64, np.float32])
def test_numeric_dtype_preserved(dtype):
    y = _labels(dtype=dtype)
    y_noisy, _ = add_label_noise(y, 0.5, random_state=0)
    assert y_noisy.dtype == dtype
    assert set(np.unique(y_noisy)) <= set(np.unique(y))


def test_string_labels():
    y = np.array(["cat", "dog", "owl", "bird"] * 10)
    y_noisy, T = add_label_noise(y, 0.5, random_state=0)
    assert y_noisy.dtype == y.dtype
    assert set(y_noisy) <= set(y)
    assert np.sum(y_noisy != y) == 20
    assert T.shape == (4, 4)


def test_string_class_longer_than_labels_is_not_truncated():
    y = np.array(["a"] * 10)
    y_noisy, _ = add_label_noise(y, 1.0, classes=["a", "longer"], random_state=0)
    np.testing.assert_array_equal(y_noisy, ["longer"] * 10)


def test_list_input():
    y_noisy, _ = add_label_noise([0, 1, 0, 1], 0.5, random_state=0)
    assert isinstance(y_noisy, np.ndarray)
    assert np.sum(y_noisy != [0, 1, 0, 1]) == 2


@pytest.mark.parametrize(
    "series",
    [
        pd.Series(["spam", "ham", "eggs"] * 8, index=np.arange(24) * 3),
        pd.Series([3, 1, 2] * 8),
        pd.Series(["spam", "ham", "eggs"] * 8, dtype="category"),
    ],
    ids=["str", "int", "category"],
)
def test_pandas_labels(series):
    before = series.copy()
    y_noisy, _ = add_label_noise(series, 0.25, kind="pairflip", random_state=0)
    pd.testing.assert_series_equal(series, before)
    values = np.asarray(series)
    assert isinstance(y_noisy, np.ndarray)
    assert y_noisy.dtype == values.dtype
    assert np.sum(y_noisy != values) == 6
    assert set(y_noisy) <= set(values)


@settings(max_examples=60, deadline=None)
@given(
    y=st.lists(st.integers(0, 5), min_size=1, max_size=80).filter(lambda v: len(set(v)) >= 2),
    rate=st.floats(0, 1),
    kind=st.sampled_from(KINDS),
    seed=st.integers(0, 2**32 - 1),
)
def test_properties(y, rate, kind, seed):
    y = np.asarray(y)
    y_noisy, T = add_label_noise(y, rate, kind=kind, random_state=seed)
    classes = np.unique(y)
    assert y_noisy.shape == y.shape and y_noisy.dtype == y.dtype
    assert np.sum(y_noisy != y) == round(rate * len(y))
    assert set(np.unique(y_noisy)) <= set(classes)
    assert T.shape == (len(classes), len(classes))
    np.testing.assert_allclose(T.sum(axis=1), 1)
    # A flip may only go where the nominal matrix puts probability.
    codes, noisy_codes = np.searchsorted(classes, y), np.searchsorted(classes, y_noisy)
    assert np.all(T[codes, noisy_codes] > 0)


# --- noise_rate ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "y_true, y_noisy, expected",
    [([0, 1, 2, 3], [0, 1, 2, 3], 0.0), ([0, 1, 2, 3], [1, 1, 2, 0], 0.5), (["a"], ["b"], 1.0)],
)
def test_noise_rate(y_true, y_noisy, expected):
    assert noise_rate(y_true, y_noisy) == expected


@pytest.mark.parametrize(
    "y_true, y_noisy, match",
    [
        ([0, 1], [0], "y_true and y_noisy must have the same length, got 2 and 1"),
        ([], [], "y_true and y_noisy are empty"),
        ([[0, 1]], [[0, 1]], re.escape("y_true must be 1-D (n_samples,), got an array of shape")),
    ],
)
def test_noise_rate_errors(y_true, y_noisy, match):
    with pytest.raises(ValueError, match=match):
        noise_rate(y_true, y_noisy)


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [-0.1, 1.5, np.nan, np.inf, "0.5", True, None])
def test_invalid_rate(rate):
    match = re.escape(f"rate={rate!r} is not valid: pass a float in [0, 1]")
    with pytest.raises(ValueError, match=match):
        add_label_noise([0, 1], rate)


@pytest.mark.parametrize("kind", ["uniform", "Symmetric", 3, None, "pair-flip", np.ones(3)])
def test_invalid_kind(kind):
    with pytest.raises(ValueError, match=r"kind=.* is not valid: pass one of 'symmetric', "):
        add_label_noise([0, 1], 0.5, kind=kind)


@pytest.mark.parametrize(
    "matrix, match",
    [
        (np.eye(3), re.escape("has shape (3, 3), but there are 2 classes: pass a (2, 2) matrix")),
        (np.ones((2, 3)) / 3, re.escape("has shape (2, 3), but there are 2 classes")),
        ([[1.5, -0.5], [0, 1]], "has negative or non-finite entries"),
        ([[np.nan, 1], [0, 1]], "has negative or non-finite entries"),
        ([[0.5, 0.4], [0, 1]], re.escape("rows that do not sum to 1 (rows [0] sum to [0.9])")),
    ],
)
def test_invalid_matrix(matrix, match):
    with pytest.raises(ValueError, match=match):
        add_label_noise([0, 1], None, kind=np.asarray(matrix))


def test_rate_with_matrix_is_rejected():
    match = re.escape("rate=0.3 is not used when kind is a transition matrix")
    with pytest.raises(ValueError, match=match):
        add_label_noise([0, 1], 0.3, kind=np.eye(2))


@pytest.mark.parametrize("kind", ["symmetric", "pairflip", np.eye(2)])
def test_mapping_only_with_asymmetric(kind):
    rate = None if isinstance(kind, np.ndarray) else 0.3
    with pytest.raises(ValueError, match="mapping is only used with kind='asymmetric'"):
        add_label_noise([0, 1], rate, kind=kind, mapping={0: 1})


@pytest.mark.parametrize(
    "mapping, match",
    [
        ({5: 1}, re.escape("mapping's keys has labels that are not in classes: [5]")),
        ({0: 7}, re.escape("mapping's values has labels that are not in classes: [7]")),
        ({0: 0, 1: 2}, re.escape("mapping maps [0] to itself")),
    ],
)
def test_invalid_mapping(mapping, match):
    with pytest.raises(ValueError, match=match):
        add_label_noise([0, 1, 2], 0.5, kind="asymmetric", mapping=mapping)


def test_mapping_must_be_a_dict():
    with pytest.raises(TypeError, match=r"mapping=\[\(0, 1\)\] is not valid: pass a dict"):
        add_label_noise([0, 1], 0.5, kind="asymmetric", mapping=[(0, 1)])


@pytest.mark.parametrize("kind", KINDS)
def test_single_class_is_rejected(kind):
    with pytest.raises(ValueError, match=f"kind='{kind}' needs at least 2 classes"):
        add_label_noise([4, 4, 4], 0.5, kind=kind)


@pytest.mark.parametrize(
    "y, classes, match",
    [
        ([[0], [1]], None, re.escape("y must be 1-D (n_samples,), got an array of shape (2, 1)")),
        ([0, 1, 2], [0, 1], re.escape("y has labels that are not in classes: [2]")),
        ([0, 1], [0, 1, 1], re.escape("classes=[0, 1, 1] is not valid: it has duplicates")),
        ([0, 1], [], re.escape("classes=[] is not valid")),
    ],
)
def test_invalid_labels_or_classes(y, classes, match):
    with pytest.raises(ValueError, match=match):
        add_label_noise(y, 0.5, classes=classes)
