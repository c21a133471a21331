"""Distances and similarities shared by the engines (``sk_crust._engine._similarity``)."""

import numpy as np
import pytest
import torch

from sk_crust._engine import _similarity
from sk_crust._engine._similarity import (
    Points,
    finish_distances,
    medoid_distances,
    pairwise_distances,
    unit_rows,
)


@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean", "cosine"])
def test_zero_vector_has_distance_one_in_cosine_everywhere(metric):
    X = np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32)
    X[4] = 0.0
    D = pairwise_distances(X, metric=metric)
    rows = Points(X, metric).distances(np.array([4]), 0, 20)
    np.testing.assert_allclose(rows[0], D[4], atol=1e-5)
    if metric == "cosine":
        assert (np.delete(D[4], 4) == 1.0).all() and D[4, 4] == 0.0
        np.testing.assert_array_equal(unit_rows(X, np.linalg.norm(X, axis=1, keepdims=True))[4],
                                      0.0)


@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean", "cosine"])
def test_finish_distances_is_one_rule_for_numpy_and_torch(metric):
    X = np.random.default_rng(1).normal(size=(30, 4)).astype(np.float32)
    if metric == "cosine":
        X = unit_rows(X, np.linalg.norm(X, axis=1, keepdims=True))
    sq = np.einsum("ij,ij->i", X, X)
    D = finish_distances(X @ X.T, sq, sq, metric)
    T = torch.from_numpy(X)
    Dt = finish_distances(T @ T.T, torch.from_numpy(sq), torch.from_numpy(sq), metric)
    np.testing.assert_allclose(Dt.numpy(), D, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean", "cosine"])
def test_medoid_distances_in_blocks_equal_one_pass(monkeypatch, metric):
    rng = np.random.default_rng(0)
    G = rng.normal(size=(103, 4)).astype(np.float32)
    G[5] = 0.0  # a zero vector: cosine distance 1 by convention
    indices = np.array([3, 50, 99])
    labels = rng.integers(0, 3, size=len(G))
    whole = medoid_distances(G, indices, labels, metric=metric)
    monkeypatch.setattr(_similarity, "_DISTANCE_BLOCK_VALUES", 4 * 10)  # blocks of 10 rows
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
