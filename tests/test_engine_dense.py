"""The dense engine: exactness of lazy greedy, weights, objective, approximations."""

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from threadpoolctl import threadpool_limits

from sk_crust import CrustSelector
from sk_crust._engine import _rules
from sk_crust._engine._dense import (
    greedy_lazy,
    greedy_naive,
    greedy_stochastic,
    nearest_selected,
    radius_counts,
    run_optimizer,
    top_centrality,
)
from sk_crust._engine._dense import select_group_dense as select_group
from sk_crust._engine._rules import coreset_weights, finalize
from sk_crust._engine._similarity import objective, pairwise_distances, similarity_matrix

# Before the ``backend`` fixture swaps it: None when numba is missing or SK_CRUST_NUMBA=0.
_COMPILED_AT_IMPORT = _rules.kernels


@pytest.fixture(scope="module", autouse=True,
                params=["numba", "numpy"] if _rules.kernels else ["numpy"])
def backend(request):
    """Every test runs on both gain backends: the compiled kernels and the NumPy code.

    Module-scoped (not monkeypatch) so that hypothesis tests accept it.
    """
    kernels = _rules.kernels
    if request.param == "numpy":
        _rules.kernels = None
    yield request.param
    _rules.kernels = kernels


def test_numba_backend_is_tested_when_installed():
    """With numba importable, the compiled kernels load, so the ``backend`` fixture runs every test
    of this module on them as well as on the NumPy code (fails, not skips, when they do not)."""
    pytest.importorskip("numba")
    assert os.environ.get("SK_CRUST_NUMBA", "1") != "0", (
        "SK_CRUST_NUMBA=0 turns the compiled kernels off for the whole run, so they go untested: "
        "unset it (the suite runs both backends itself)")
    assert _COMPILED_AT_IMPORT is not None, (
        "numba is importable but the compiled kernels did not load")


def test_numba_off_in_the_environment_runs_numpy_with_the_same_picks():
    """``SK_CRUST_NUMBA=0`` (read at import): numba is never imported and the coreset is the one
    this process selects (with the compiled kernels when numba is installed)."""
    X = _points(300, 8, seed=3)
    y = np.arange(300) % 3
    script = (
        "import sys, numpy as np\n"
        "from sk_crust import CrustSelector\n"
        "X = np.random.default_rng(3).normal(size=(300, 8)).astype(np.float32)\n"
        "selector = CrustSelector(k=0.4, random_state=0).fit(X, np.arange(300) % 3)\n"
        "print('numba' in sys.modules, *selector.indices_)\n"
    )
    env = {**os.environ, "SK_CRUST_NUMBA": "0", "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=env, check=True).stdout.split()
    assert out[0] == "False", "numba was imported although SK_CRUST_NUMBA=0"
    with threadpool_limits(1, user_api="blas"):  # the subprocess's thread count: same rounding
        expected = CrustSelector(k=0.4, random_state=0).fit(X, y).indices_
    np.testing.assert_array_equal(np.array(out[1:], dtype=int), expected)


def _points(n, d, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


@st.composite
def problems(draw):
    n = draw(st.integers(1, 40))
    d = draw(st.integers(1, 6))
    # Continuous random data has no ties almost surely; the property must hold exactly.
    X = draw(arrays(np.float32, (n, d),
                    elements=st.floats(-100, 100, allow_nan=False, width=32)))
    k = draw(st.integers(1, n))
    return X, k


@settings(max_examples=60, deadline=None)
@given(problems())
def test_lazy_equals_naive_property(problem):
    X, k = problem
    S, _ = similarity_matrix(X)
    naive, lazy = greedy_naive(S, k), greedy_lazy(S, k)
    np.testing.assert_array_equal(lazy.indices, naive.indices)
    np.testing.assert_array_equal(lazy.gains, naive.gains)
    np.testing.assert_array_equal(lazy.assignment, naive.assignment)


@pytest.mark.parametrize("n,d,k", [(200, 3, 20), (500, 16, 250), (400, 64, 400)])
@pytest.mark.parametrize("batch", [1, 8, 64])
def test_lazy_equals_naive_on_larger_instances(n, d, k, batch):
    S, _ = similarity_matrix(_points(n, d))
    naive, lazy = greedy_naive(S, k), greedy_lazy(S, k, batch=batch)
    np.testing.assert_array_equal(lazy.indices, naive.indices)
    np.testing.assert_array_equal(lazy.gains, naive.gains)


def test_lazy_equals_naive_with_duplicated_rows():
    # Exact ties: the documented rule (lowest index wins) must be applied identically.
    X = np.repeat(_points(30, 4), 3, axis=0)
    S, _ = similarity_matrix(X)
    np.testing.assert_array_equal(greedy_lazy(S, 50).indices, greedy_naive(S, 50).indices)


def test_distances_match_scipy():
    from scipy.spatial.distance import cdist

    X = _points(50, 7)
    for metric in ["euclidean", "sqeuclidean", "cosine"]:
        np.testing.assert_allclose(pairwise_distances(X, metric=metric), cdist(X, X, metric),
                                   atol=1e-3)
    assert np.all(np.diag(pairwise_distances(X)) == 0)


def test_similarity_is_d0_minus_distance():
    X = _points(40, 3)
    D = pairwise_distances(X)
    S, d0 = similarity_matrix(X)
    assert d0 == pytest.approx(D.max())
    np.testing.assert_allclose(S, d0 - D, atol=1e-5)
    assert S.min() >= 0 and np.allclose(np.diag(S), d0)


def test_objective_is_sum_of_gains_and_matches_definition():
    X = _points(60, 5)
    S, _ = similarity_matrix(X)
    res = greedy_lazy(S, 10)
    by_definition = S[:, res.indices].max(axis=1).sum()  # S symmetric up to rounding
    assert objective(S, res.indices) == pytest.approx(by_definition, rel=1e-5)
    assert res.gains.sum() == pytest.approx(objective(S, res.indices), rel=1e-5)
    assert objective(S, np.array([], dtype=int)) == 0.0
    # Greedy gains of a submodular function never increase.
    assert np.all(np.diff(res.gains) <= 1e-3)


@pytest.mark.parametrize("optimizer", ["naive", "lazy", "stochastic", "centrality"])
def test_assignment_is_nearest_selected_point(optimizer):
    S, _ = similarity_matrix(_points(80, 4))
    res = run_optimizer(S, 15, optimizer=optimizer, random_state=0)
    np.testing.assert_array_equal(res.assignment, nearest_selected(S, res.indices))
    # every selected point is its own medoid (no duplicates in this data)
    np.testing.assert_array_equal(res.assignment[res.indices], np.arange(15))
    assert len(set(res.indices.tolist())) == 15


def test_cluster_weights_are_cluster_sizes_and_sum_to_n():
    X = _points(120, 3)
    sel = select_group(X, 12, weights="cluster")
    np.testing.assert_array_equal(sel.weights, np.bincount(sel.assignment, minlength=12))
    assert sel.weights.sum() == 120


def test_uniform_and_radius_weights():
    X = _points(50, 2)
    assert np.allclose(select_group(X, 10, weights="uniform").weights, 5.0)
    S, d0 = similarity_matrix(X)
    idx = np.array([0, 1, 2])
    D = pairwise_distances(X)
    r = 0.7
    w = radius_counts(S, idx, d0, r)
    np.testing.assert_array_equal(w, (D[idx] <= r + 1e-5).sum(axis=1))
    assert np.all(w >= 1)  # a point is within any radius of itself


def test_centrality_is_top_row_sums():
    S, _ = similarity_matrix(_points(100, 5))
    res = top_centrality(S, 10)
    np.testing.assert_array_equal(res.indices, np.argsort(-S.sum(axis=1), kind="stable")[:10])


@pytest.mark.parametrize("n,d,k", [(300, 8, 30), (500, 16, 250), (400, 64, 40)])
def test_stochastic_objective_close_to_lazy(n, d, k):
    S, _ = similarity_matrix(_points(n, d, seed=n))
    exact = greedy_lazy(S, k).gains.sum()
    for seed in range(3):
        approx = greedy_stochastic(S, k, epsilon=0.1, random_state=seed).gains.sum()
        assert approx >= 0.98 * exact


def test_stochastic_is_reproducible_and_depends_on_seed():
    S, _ = similarity_matrix(_points(300, 4))
    a = greedy_stochastic(S, 30, random_state=1).indices
    np.testing.assert_array_equal(a, greedy_stochastic(S, 30, random_state=1).indices)
    assert not np.array_equal(a, greedy_stochastic(S, 30, random_state=2).indices)


def test_all_points_identical_gives_zero_similarity_and_valid_result():
    X = np.ones((10, 3), dtype=np.float32)
    sel = select_group(X, 3)
    assert sel.objective == 0.0
    np.testing.assert_array_equal(sel.indices, [0, 1, 2])  # ties: lowest index first
    assert sel.weights.sum() == 10


def test_inputs_not_mutated():
    X = _points(30, 3)
    before = X.copy()
    select_group(X, 5)
    np.testing.assert_array_equal(X, before)


def test_unknown_optimizer_and_weights():
    S, d0 = similarity_matrix(_points(10, 2))
    with pytest.raises(ValueError, match="optimizer='x' is not valid"):
        run_optimizer(S, 2, optimizer="x")
    with pytest.raises(ValueError, match="weights='x' is not valid"):
        coreset_weights("x", np.zeros(10, dtype=int), 1, None)


def test_backends_agree():
    if _rules.kernels is None:
        pytest.skip("numba not installed")
    S, _ = similarity_matrix(_points(300, 8, seed=3))
    compiled = greedy_lazy(S, 120)
    kernels, _rules.kernels = _rules.kernels, None
    try:
        reference = greedy_lazy(S, 120)
    finally:
        _rules.kernels = kernels
    # Sums in another order may differ in the last bits, never more.
    np.testing.assert_allclose(compiled.gains, reference.gains, rtol=1e-5)
    assert objective(S, compiled.indices) == pytest.approx(objective(S, reference.indices),
                                                           rel=1e-6)


@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean", "cosine"])
@pytest.mark.parametrize("weights", ["cluster", "uniform"])
def test_streamed_centrality_equals_centrality_on_the_matrix(metric, weights):
    # select_group_dense makes centrality's rows 256 at a time instead of the (n, n) matrix.
    X = np.random.default_rng(5).normal(size=(700, 6)).astype(np.float32)
    X[350] = X[10]  # an exact tie of row sums: the lower index first on both paths
    k = 300
    got = select_group(X, k, optimizer="centrality", weights=weights, metric=metric)
    S, _ = similarity_matrix(X, metric=metric)
    top = top_centrality(S, k)
    ref = finalize(top.indices, top.gains, top.assignment, weights=weights,
                   radius_counts=None, method="dense-centrality")
    np.testing.assert_array_equal(got.indices, ref.indices)
    np.testing.assert_array_equal(got.assignment, ref.assignment)
    np.testing.assert_array_equal(got.weights, ref.weights)
    np.testing.assert_allclose(got.gains, ref.gains, rtol=1e-5)
    np.testing.assert_allclose(got.objective, objective(S, ref.indices), rtol=1e-5)
    assert got.method == ref.method
