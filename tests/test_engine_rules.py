"""The rules every engine shares (``sk_crust._engine._rules``), each tested once here."""

import numpy as np
import pytest
import torch

from sk_crust._engine import ENGINES, _rules, select_group
from sk_crust._engine._rules import (
    Cover,
    coreset_weights,
    finalize,
    fold_rows,
    stochastic_sample_size,
)


def _rows(b, n, seed=0):
    return np.random.default_rng(seed).integers(0, 4, size=(b, n)).astype(np.float32)  # ties


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("b, t0", [(1, 0), (7, 0), (64, 5)])
def test_fold_rows_equals_adding_rows_one_by_one(monkeypatch, compiled, b, t0):
    if not compiled:
        monkeypatch.setattr(_rules, "kernels", None)
    elif _rules.kernels is None:
        pytest.skip("numba not installed")
    R = _rows(b, 50)
    start = Cover.zeros(50)
    start.add(np.full(50, 1.0, dtype=np.float32), 0)
    loop = Cover(start.value.copy(), start.assignment.copy())
    gains = []
    for r, row in enumerate(R):
        gains.append(np.maximum(row - loop.value, 0).sum(dtype=np.float32))
        loop.add(row, t0 + r)
    folded = Cover(start.value.copy(), start.assignment.copy())
    np.testing.assert_array_equal(fold_rows(R, t0, folded), gains)
    np.testing.assert_array_equal(folded.value, loop.value)
    np.testing.assert_array_equal(folded.assignment, loop.assignment)


def test_cover_tie_rule_is_the_same_on_torch_tensors():
    rows = _rows(10, 40, seed=3)
    host = Cover.zeros(40)
    device = Cover(torch.zeros(40), torch.zeros(40, dtype=torch.int64), maximum=torch.maximum)
    for t, row in enumerate(rows):
        host.add(row, t)
        device.add(torch.from_numpy(row), t)
    np.testing.assert_array_equal(device.assignment.numpy(), host.assignment)
    np.testing.assert_array_equal(device.value.numpy(), host.value)


@pytest.mark.parametrize("n, k, eps, expected", [(1000, 100, 0.1, 24), (10, 1, 0.1, 10),
                                                 (5, 5, 0.5, 1), (1, 1, 0.01, 1)])
def test_stochastic_sample_size(n, k, eps, expected):
    assert stochastic_sample_size(n, k, eps) == expected


def test_finalize_puts_every_medoid_in_its_own_cluster():
    # Points 0 and 1 are duplicates: the tie kept pick 0 for both, which would leave pick 1 empty.
    selection = finalize(np.array([0, 1]), np.array([3.0, 0.0]), np.array([0, 0, 0]),
                         weights="cluster", radius_counts=None, method="m")
    assert selection.assignment.tolist() == [0, 1, 0]
    assert selection.weights.tolist() == [2.0, 1.0] and selection.objective == 3.0


@pytest.mark.parametrize("weights, expected", [("cluster", [1.0, 3.0]), ("uniform", [2.0, 2.0]),
                                               ("radius", [5.0, 6.0])])
def test_coreset_weights(weights, expected):
    out = coreset_weights(weights, np.array([0, 1, 1, 1]), 2, lambda: np.array([5, 6]))
    assert out.tolist() == expected and out.dtype == np.float64


def test_coreset_weights_unknown():
    with pytest.raises(ValueError, match="weights='x' is not valid"):
        coreset_weights("x", np.zeros(3, dtype=int), 1, None)


@pytest.mark.parametrize("engine", ["dense", "blocked", "greedi", "torch"])
def test_every_engine_in_the_registry_selects(engine):
    X = np.random.default_rng(0).normal(size=(60, 3)).astype(np.float32)
    params = {"device": "cpu"} if engine == "torch" else {}
    selection = select_group(X, 6, engine=engine, random_state=0, **params)
    assert engine in ENGINES
    assert len(np.unique(selection.indices)) == 6 and selection.weights.sum() == 60
    assert selection.method


def test_unknown_engine():
    with pytest.raises(ValueError, match="engine='x' is not valid"):
        select_group(np.zeros((3, 1)), 1, engine="x")


@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean", "cosine"])
def test_fused_fold_and_reference_sums_equal_the_numpy_passes(monkeypatch, metric):
    """The compiled one-pass kernels (fold_products, distance_row_sums) against the NumPy rule:
    similarity rows folded with fold_rows, and distances summed with the self distance 0."""
    if _rules.kernels is None:
        pytest.skip("numba is not installed")
    from sk_crust._engine._blocked import _reference_distance_means, fold_picks
    from sk_crust._engine._similarity import Points

    X = np.random.default_rng(3).normal(size=(500, 6)).astype(np.float32)
    X[7] = X[3]  # a duplicate: ties in the cover
    P = Points(X, metric)
    picks = np.array([3, 7, 100, 42, 0, 499] + list(range(200, 300)), dtype=np.intp)
    reference = np.sort(np.random.default_rng(1).choice(500, 64, replace=False))
    d0 = np.float32(P.d0_bound())
    fused = Cover.zeros(500)
    fused_gains = fold_picks(P, picks, d0, fused)
    fused_means = _reference_distance_means(P, reference, 128)
    monkeypatch.setattr(_rules, "kernels", None)
    plain = Cover.zeros(500)
    plain_gains = fold_picks(P, picks, d0, plain)
    np.testing.assert_array_equal(fused.assignment, plain.assignment)
    np.testing.assert_allclose(fused.value, plain.value, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(fused_gains, plain_gains, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(fused_means, _reference_distance_means(P, reference, 128),
                               rtol=1e-5)
