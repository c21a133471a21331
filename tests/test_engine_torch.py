"""The torch engine (``device=``): the same selection as the NumPy engine, on a torch device.

Every check runs the engine on the CPU (``device="cpu"`` of the internal function, or the
estimators with the device choice patched to the CPU), so the GPU code path is exercised on every
machine; the tests marked ``cuda`` run it on a GPU and are skipped without one.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone

import sk_crust._selector as selector_module
from sk_crust import CrustSampler, CrustSelector
from sk_crust._engine._dense import select_group_dense as select_group
from sk_crust._engine._similarity import Points as _Points
from sk_crust._engine._similarity import similarity_matrix
from sk_crust._engine._torch import select_group_torch

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _blobs(n: int, d: int = 8, centers: int = 6, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=4.0, size=(centers, d))
    return (means[rng.integers(centers, size=n)] + rng.normal(size=(n, d))).astype(np.float32)


@pytest.fixture
def torch_on_cpu(monkeypatch):
    """Make the estimators pick the torch engine, on the CPU, whatever ``device`` says."""
    monkeypatch.setattr(selector_module, "_selection_device",
                        lambda device, G: torch.device("cpu"))


@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean", "cosine"])
@pytest.mark.parametrize("optimizer", ["lazy", "naive", "stochastic", "centrality"])
@pytest.mark.parametrize("weights", ["cluster", "radius", "uniform"])
def test_dense_layout_matches_numpy_engine(metric, optimizer, weights):
    X = _blobs(400, seed=1)
    ours = select_group_torch(X, 40, device="cpu", optimizer=optimizer, weights=weights,
                                    metric=metric, random_state=5)
    ref = select_group(X, 40, optimizer=optimizer, weights=weights, metric=metric,
                       random_state=5)
    assert ours.method == f"cpu-dense-{'lazy' if optimizer == 'naive' else optimizer}"
    np.testing.assert_array_equal(ours.indices, ref.indices)
    np.testing.assert_array_equal(ours.assignment, ref.assignment)
    np.testing.assert_array_equal(ours.weights, ref.weights)
    np.testing.assert_allclose(ours.gains, ref.gains, rtol=1e-4)


@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean", "cosine"])
@pytest.mark.parametrize("optimizer", ["lazy", "stochastic", "centrality"])
def test_streamed_layout_makes_the_same_choices(metric, optimizer):
    """Beyond the budget, rows are recomputed and d0 is the bound: the same picks, the first
    gain offset by n (d0' - d0) and the later gains unchanged (_similarity.d0_from_radius)."""
    X = _blobs(500, seed=2)
    dense = select_group_torch(X, 50, device="cpu", optimizer=optimizer, metric=metric,
                                  random_state=1)
    streamed = select_group_torch(X, 50, device="cpu", optimizer=optimizer, metric=metric,
                                        random_state=1, memory_budget=64 * 500)
    assert streamed.method == f"cpu-streamed-{optimizer}"
    np.testing.assert_array_equal(streamed.indices, dense.indices)
    np.testing.assert_array_equal(streamed.assignment, dense.assignment)
    _, d0 = similarity_matrix(X, metric=metric)
    offset = len(X) * (_Points(X, metric).d0_bound() - d0)
    assert streamed.gains[0] == pytest.approx(dense.gains[0] + offset, rel=1e-4)
    np.testing.assert_allclose(streamed.gains[1:], dense.gains[1:], rtol=1e-3, atol=1e-2)


def test_streamed_lazy_stays_exact_where_the_cpu_engine_goes_stochastic():
    X = _blobs(1500, seed=3)
    exact = select_group(X, 300, optimizer="naive")
    ours = select_group_torch(X, 300, device="cpu", optimizer="lazy",
                                    memory_budget=2 ** 20)  # 4 n^2 = 9 MB does not fit
    assert ours.method == "cpu-streamed-lazy"
    np.testing.assert_array_equal(ours.indices, exact.indices)


def test_exact_ties_break_like_the_naive_greedy():
    """Duplicated points tie exactly: the lowest index wins, as in the NumPy engine."""
    X = np.random.default_rng(1).integers(0, 3, size=(200, 2)).astype(np.float32)
    ref = select_group(X, 30, optimizer="naive")
    for budget in (None, 100):
        ours = select_group_torch(X, 30, device="cpu", optimizer="lazy", memory_budget=budget)
        np.testing.assert_array_equal(ours.indices, ref.indices)
        np.testing.assert_array_equal(ours.weights, ref.weights)


@pytest.mark.usefixtures("torch_on_cpu")
def test_selector_on_the_torch_engine_matches_the_cpu_engine():
    rng = np.random.default_rng(0)
    G = _blobs(600, seed=4)
    y = rng.integers(0, 3, size=len(G))
    ours = CrustSelector(k=0.2, optimizer="stochastic", random_state=0, device="cuda")
    # A tensor that requires grad, as a user's gradient features may.
    ours.fit(torch.from_numpy(G).requires_grad_(), y)
    ref = CrustSelector(k=0.2, optimizer="stochastic", random_state=0).fit(G, y)
    assert set(ours.class_methods_) == {"cpu-dense-stochastic"}
    np.testing.assert_array_equal(ours.indices_, ref.indices_)
    np.testing.assert_array_equal(ours.weights_, ref.weights_)
    np.testing.assert_array_equal(ours.labels_, ref.labels_)
    assert ours.objective_ == pytest.approx(ref.objective_, rel=1e-5)
    # transform accepts the same data as a tensor too.
    np.testing.assert_array_equal(ours.transform(torch.from_numpy(G)).indices, ref.indices_)


@pytest.mark.usefixtures("torch_on_cpu")
def test_sampler_passes_the_device_on():
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=200, random_state=0)
    ours = CrustSampler(k=0.5, optimizer="lazy", random_state=0, device="cuda").fit(X, y)
    ref = CrustSampler(k=0.5, optimizer="lazy", random_state=0).fit(X, y)
    assert ours.selector_.device == "cuda"
    assert set(ours.selector_.class_methods_) == {"cpu-dense-lazy"}
    np.testing.assert_array_equal(ours.sample_indices_, ref.sample_indices_)


@pytest.mark.usefixtures("torch_on_cpu")
def test_partitions_refused_on_a_device():
    G, y = _blobs(100), np.repeat([0, 1], 50)
    with pytest.raises(ValueError, match=r"partitions=2 .*pass partitions=1"):
        CrustSelector(partitions=2, device="cuda").fit(G, y)


@pytest.mark.parametrize("device", ["gpu", "cuda:x", 2.5])
def test_bad_device_names_the_accepted_values(device):
    G, y = _blobs(60), np.repeat([0, 1], 30)
    with pytest.raises(ValueError, match=r"device=.* is not valid: pass None, 'cpu', 'cuda'"):
        CrustSelector(device=device).fit(G, y)
    with pytest.raises(ValueError, match=r"device=.* is not valid"):
        CrustSampler(device=device).fit(G, y)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_without_cuda_says_so():
    G, y = _blobs(60), np.repeat([0, 1], 30)
    with pytest.raises(ValueError, match=r"torch.cuda.is_available\(\) is False"):
        CrustSelector(device="cuda").fit(G, y)


def test_cpu_device_and_cpu_tensors_use_the_numpy_engine():
    G, y = _blobs(200), np.repeat([0, 1], 100)
    for device in ("cpu", torch.device("cpu"), None):
        selector = CrustSelector(k=0.1, optimizer="lazy", device=device).fit(torch.from_numpy(G), y)
        assert set(selector.class_methods_) == {"dense-lazy"}


def test_device_param_clones_and_pickles():
    selector = CrustSelector(device="cuda:1")
    assert clone(selector).get_params()["device"] == "cuda:1"
    fitted = CrustSelector(k=0.1, device="cpu").fit(_blobs(100), np.repeat([0, 1], 50))
    again = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(again.indices_, fitted.indices_)


@cuda
@pytest.mark.parametrize("budget", ["1GiB", 2 ** 20])
def test_cuda_matches_the_cpu_engine(budget):
    rng = np.random.default_rng(0)
    G = _blobs(3000, d=16, seed=5)
    y = rng.integers(0, 3, size=len(G))
    ours = CrustSelector(k=0.2, random_state=0, device="cuda", memory_budget=budget).fit(G, y)
    ref = CrustSelector(k=0.2, random_state=0, memory_budget=None).fit(G, y)
    layout = "dense" if budget == "1GiB" else "streamed"
    assert set(ours.class_methods_) == {f"cuda-{layout}-lazy"}
    # The exact greedy on both; a GPU product may round a near-tie the other way, so most of
    # the set rather than bitwise equality.
    assert len(np.intersect1d(ours.indices_, ref.indices_)) >= 0.98 * len(ref.indices_)
    if layout == "dense":  # the streamed objective carries the d0 bound's offset
        assert ours.objective_ == pytest.approx(ref.objective_, rel=1e-4)


@cuda
def test_cuda_tensor_selects_on_its_device():
    G = torch.from_numpy(_blobs(500)).cuda()
    y = np.repeat([0, 1], 250)
    selector = CrustSelector(k=0.1, optimizer="centrality").fit(G, y)
    assert set(selector.class_methods_) == {"cuda-dense-centrality"}
    ref = CrustSelector(k=0.1, optimizer="centrality").fit(G.cpu().numpy(), y)
    assert len(np.intersect1d(selector.indices_, ref.indices_)) >= 0.95 * len(ref.indices_)


@pytest.mark.parametrize("optimizer", ["lazy", "stochastic", "centrality"])
def test_random_state_promise_above_the_budget(monkeypatch, optimizer):
    """Above memory_budget, a device gives the CPU *dense* engine's coreset for the seed; the CPU
    blocked path is only promised to agree for centrality (the random_state docstring)."""
    G = _blobs(600, seed=6)
    y = np.repeat([0, 1], 300)
    params = dict(k=0.2, optimizer=optimizer, random_state=3)
    dense = CrustSelector(memory_budget=None, **params).fit(G, y)
    blocked = CrustSelector(memory_budget="100kB", **params).fit(G, y)
    monkeypatch.setattr(selector_module, "_selection_device", lambda device, G: torch.device("cpu"))
    device = CrustSelector(device="cuda", memory_budget="100kB", **params).fit(G, y)
    assert set(device.class_methods_) == {f"cpu-streamed-{optimizer}"}
    path = "centrality" if optimizer == "centrality" else "stochastic"
    assert set(blocked.class_methods_) == {f"blocked-{path}"}
    np.testing.assert_array_equal(device.indices_, dense.indices_)
    np.testing.assert_array_equal(device.weights_, dense.weights_)
    if optimizer == "centrality":
        np.testing.assert_array_equal(blocked.indices_, dense.indices_)


@pytest.mark.parametrize("memory_budget", [None, 64 * 700])
def test_sampled_centrality_matches_the_cpu_engine(memory_budget):
    """Above centrality_sample the torch engine ranks on the CPU engines' reference draw."""
    X = _blobs(700, seed=3)
    params = dict(optimizer="centrality", random_state=4, centrality_sample=128)
    ours = select_group_torch(X, 90, device="cpu", memory_budget=memory_budget, **params)
    ref = select_group(X, 90, **params)
    np.testing.assert_array_equal(ours.indices, ref.indices)
    np.testing.assert_array_equal(ours.assignment, ref.assignment)
