"""preprocess.cluster_knn: the faiss k-NN graph gives the same trees and labels as fast_hdbscan's KD-tree."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score
from sklearn.neighbors import NearestNeighbors

from preprocess import cluster as C
from preprocess import cluster_knn as K


@pytest.fixture(scope="module")
def points():
    X, y = make_blobs(3000, n_features=8, centers=6, cluster_std=1.2, random_state=1)
    rng = np.random.default_rng(0)
    noise = rng.uniform(X.min(), X.max(), size=(300, 8))
    return np.concatenate([X, noise]).astype(np.float32), np.concatenate([y, np.full(300, -1)])


def test_exact_knn_graph_equals_brute_force(points):
    X, _ = points
    dist, idx = K.knn_graph(X, 11)
    ref_d, ref_i = NearestNeighbors(n_neighbors=11, algorithm="brute").fit(X).kneighbors(X)
    np.testing.assert_array_equal(idx, ref_i)
    np.testing.assert_allclose(dist, ref_d, rtol=1e-5, atol=1e-5)
    assert idx.dtype == np.int32 and dist.dtype == np.float64


def test_approximate_graph_recall(points, monkeypatch):
    X, _ = points
    monkeypatch.setattr(K, "EXACT_MAX", 100)  # force the probed (approximate) search on 3,300 rows
    _, idx = K.knn_graph(X, 11)
    _, ref = NearestNeighbors(n_neighbors=11, algorithm="brute").fit(X).kneighbors(X)
    recall = np.mean([len(set(a) & set(b)) for a, b in zip(idx, ref, strict=True)]) / 11
    assert recall > 0.95


@pytest.mark.parametrize("m", [4, 9])
def test_tree_equals_fast_hdbscan_kruskal(points, m, monkeypatch):
    X, _ = points
    ours = K.spanning_tree(X, m, C._knn_k(m))
    monkeypatch.setattr(K, "BACKEND", "kdtree")
    ref = K.spanning_tree(X, m, C._knn_k(m))
    np.testing.assert_allclose(ours[2], ref[2], rtol=1e-6)  # core distances
    np.testing.assert_array_equal(ours[1], ref[1])  # neighbours, nearest first
    w, w_ref = np.sort(ours[0][:, 2]), np.sort(ref[0][:, 2])
    np.testing.assert_allclose(w[np.isfinite(w)], w_ref[np.isfinite(w_ref)], rtol=1e-6)  # same MST weight multiset


def test_same_labels_as_the_kdtree_backend(points, monkeypatch):
    X, _ = points
    requests = [("dbscan", {"eps": e, "min_samples": 10}) for e in (0.8, 1.5, 3.0, 30.0)]
    requests += [("hdbscan", {"min_cluster_size": s, "min_samples": 5}) for s in (10, 50)]
    ours = [C.cluster(X, algorithm=a, params=p) for a, p in requests]
    monkeypatch.setattr(K, "BACKEND", "kdtree")
    ref = [C.cluster(X, algorithm=a, params=p) for a, p in requests]
    for (alg, p), a, b in zip(requests, ours, ref, strict=True):
        np.testing.assert_array_equal(a, b, err_msg=f"{alg} {p}")


def test_partitioned_approximate_dbscan_keeps_quality(points, monkeypatch):
    X, y = points
    params = {"eps": 1.5, "min_samples": 10, "partition": 2}
    monkeypatch.setattr(K, "EXACT_MAX", 100)
    approx = C.cluster(X, algorithm="dbscan", params=params)
    monkeypatch.setattr(K, "BACKEND", "kdtree")
    exact = C.cluster(X, algorithm="dbscan", params=params)
    keep = y >= 0
    assert adjusted_rand_score(y[keep], approx[keep]) >= adjusted_rand_score(y[keep], exact[keep]) - 0.01
    assert adjusted_rand_score(exact, approx) > 0.98
