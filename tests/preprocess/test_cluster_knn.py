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


def test_list_scan_graph_exact_and_approximate(points, monkeypatch):
    X, _ = points
    ref_d, ref_i = NearestNeighbors(n_neighbors=11, algorithm="brute").fit(X).kneighbors(X)
    dist, idx = K.knn_graph_lists(X, 11)  # 3,300 rows: one list, exact
    np.testing.assert_array_equal(idx, ref_i)
    np.testing.assert_allclose(dist, ref_d, rtol=1e-5, atol=1e-5)
    assert idx.dtype == np.int32 and dist.dtype == np.float64
    monkeypatch.setattr(K, "EXACT_MAX", 100)  # probed lists: the same lists and probes as faiss's IVF search
    dist, idx = K.knn_graph_lists(X, 11)
    _, ivf = K.knn_graph(X, 11)
    assert np.all(np.diff(dist, axis=1) >= 0)
    recall = np.mean([len(set(a) & set(b)) for a, b in zip(idx, ref_i, strict=True)]) / 11
    same = np.mean([len(set(a) & set(b)) for a, b in zip(idx, ivf, strict=True)]) / 11
    assert recall > 0.95 and same > 0.99


def _far_groups(n_groups: int = 12, size: int = 15, seed: int = 0) -> np.ndarray:
    """Tight groups far apart: a 10-NN graph stays inside each group, so Kruskal leaves +inf edges between them."""
    rng = np.random.default_rng(seed)
    centers = rng.uniform(0, 100, size=(n_groups, 8))
    big = rng.normal(size=(600, 8)) * 2.0 + 50.0
    small = np.concatenate([c + rng.normal(size=(size, 8)) * 0.3 for c in centers])
    return np.concatenate([big, small]).astype(np.float32)


@pytest.mark.parametrize("brute_max", [C.BRIDGE_BRUTE_MAX, 0])
def test_brute_bridging_equals_boruvka(brute_max, monkeypatch):
    X = _far_groups()
    mst, _, core = K.spanning_tree(X, 9, C._knn_k(9))
    assert (~np.isfinite(mst[:, 2])).sum() >= 10  # the case being tested: many separate pieces
    ref = C._bridge_components(X, mst, core)
    monkeypatch.setattr(C, "BRIDGE_BRUTE_MAX", brute_max)  # 0: too many rows, falls back to the KD-tree rounds
    ours = C._bridge_components(X, mst, core, brute=True)
    assert ours.shape == (len(X) - 1, 3) and np.isfinite(ours[:, 2]).all()
    np.testing.assert_allclose(np.sort(ours[:, 2]), np.sort(ref[:, 2]), rtol=1e-6)  # same MST weights
    for eps in np.quantile(ref[:, 2], [0.5, 0.99, 1.0]):  # and the same DBSCAN pieces at every cut
        cut = [_connected(len(X), e, eps) for e in (ours, ref)]
        assert adjusted_rand_score(*cut) == 1.0


def _connected(n: int, mst: np.ndarray, eps: float) -> np.ndarray:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    keep = mst[:, 2] <= eps
    a, b = mst[keep, 0].astype(int), mst[keep, 1].astype(int)
    return connected_components(coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n)), directed=False)[1]


def test_partitioned_dbscan_bridges_cells_exactly(monkeypatch):
    X = _far_groups(seed=1)
    params = {"eps": 100.0, "min_samples": 10, "partition": 2}
    labels = C.cluster(X, algorithm="dbscan", params=params)  # eps past every bridge: one cluster per cell
    assert set(labels) <= {0, 1} and (labels >= 0).all()
    monkeypatch.setattr(C, "BRIDGE_BRUTE_MAX", 0)
    np.testing.assert_array_equal(labels, C.cluster(X, algorithm="dbscan", params=params))
