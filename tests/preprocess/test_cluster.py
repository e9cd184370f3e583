"""preprocess.cluster: DBSCAN as a cut of a cached tree equals sklearn's DBSCAN; HDBSCAN; large-n paths; rules."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.cluster import DBSCAN
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from preprocess import cluster as C
from preprocess.errors import Cancelled, ParameterError


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(1500, n_features=8, centers=5, cluster_std=1.0, random_state=0)
    return X.astype(np.float32), y


@pytest.mark.parametrize("eps", [0.8, 1.5, 2.5, 4.0, 50.0])
def test_dbscan_cut_equals_sklearn(blobs, eps):
    X, _ = blobs
    ours = C.cluster(X, algorithm="dbscan", params={"eps": eps, "min_samples": 5})
    ref = DBSCAN(eps=eps, min_samples=5).fit_predict(X)
    assert ours.dtype == np.int32
    np.testing.assert_array_equal(ours == -1, ref == -1)  # same core/border/noise decision
    assert adjusted_rand_score(ref, ours) > 0.999  # border points between two clusters may go either way


def test_hdbscan_matches_fast_hdbscan(blobs):
    import fast_hdbscan

    X, y = blobs
    ours = C.cluster(X, algorithm="hdbscan", params={"min_cluster_size": 15, "min_samples": 5})
    ref = fast_hdbscan.HDBSCAN(min_cluster_size=15, min_samples=5).fit_predict(X)
    assert adjusted_rand_score(ref, ours) > 0.99 and adjusted_rand_score(y, ours) > 0.95


def test_slider_moves_reuse_the_tree(blobs, monkeypatch):
    X, y = blobs
    calls = []
    real = C._spanning_tree
    monkeypatch.setattr(C, "_spanning_tree", lambda X, m: (calls.append(m), real(X, m))[1])
    c = C.Clusterer(X)
    for eps in (1.0, 2.0, 3.0):
        c.fit_predict(algorithm="dbscan", params={"eps": eps, "min_samples": 6})
    assert c.has_tree(algorithm="dbscan", params={"eps": 9.0, "min_samples": 6})
    for mcs in (5, 20, 50):
        c.fit_predict(algorithm="hdbscan", params={"min_cluster_size": mcs, "min_samples": 5})
    assert calls == [5]  # DBSCAN min_samples counts the point itself: one shared tree
    c.fit_predict(algorithm="hdbscan", params={"min_samples": 3})
    assert calls == [5, 3]


def test_labels_numbered_by_size_noise_minus_one():
    labels = C._relabel_by_size(np.array([7, 7, -1, 3, 3, 3, 9]))
    np.testing.assert_array_equal(labels, [1, 1, -1, 0, 0, 0, 2])


def test_kmeans(blobs):
    X, y = blobs
    labels = C.cluster(X, algorithm="kmeans", params={"n_clusters": 5})
    assert adjusted_rand_score(y, labels) > 0.95 and labels.min() == 0


def test_large_inputs_partition_and_sample(blobs, monkeypatch):
    X, y = blobs
    monkeypatch.setattr(C, "LARGE_N", 600)
    monkeypatch.setattr(C, "CELL_N", 500)
    monkeypatch.setattr(C, "SAMPLE_N", 600)
    c = C.Clusterer(X)
    labels, note = c.run(algorithm="dbscan", params={"eps": 2.5})
    assert "3 K-means cells" in note and "cannot cross" in note
    assert adjusted_rand_score(y, labels) > 0.9
    labels, note = c.run(algorithm="dbscan", params={"eps": 2.5, "partition": "off"})
    assert note == ""
    labels, note = c.run(algorithm="hdbscan", params={"min_cluster_size": 15})
    assert "sample of 600 of 1,500" in note and "scaled to 6" in note and adjusted_rand_score(y, labels) > 0.95


def test_cancel_and_bad_input(blobs):
    X, _ = blobs
    with pytest.raises(Cancelled):
        C.cluster(X, algorithm="hdbscan", should_cancel=lambda: True)
    with pytest.raises(ParameterError, match="NaN"):
        C.cluster(np.full((5, 2), np.nan), algorithm="hdbscan")
    with pytest.raises(ParameterError, match=r"min_samples must be int in \[2, 200\]"):
        C.validate_params("dbscan", {"min_samples": 1})
    with pytest.raises(ParameterError, match="'auto' or 'off'"):
        C.validate_params("dbscan", {"partition": 1.5})
    with pytest.raises(ParameterError, match="allowed: dbscan, hdbscan, kmeans"):
        C.validate_params("optics", {})
    assert C.validate_params("dbscan", {"partition": 4})["partition"] == 4
    assert C.validate_params("hdbscan", {"min_cluster_size": 12.0})["min_cluster_size"] == 12


TINY = [("dbscan", {"eps": 5.0, "min_samples": 2}), ("hdbscan", {"min_cluster_size": 2})]


@pytest.mark.parametrize("n", [1, 2, 3, 6])
def test_tiny_inputs(n):
    # n points on a line, 2.8 apart: one chain for DBSCAN (eps 5); HDBSCAN never makes a single cluster
    X = np.arange(n * 2, dtype=np.float32).reshape(n, 2)
    for alg, p in TINY:
        labels = C.cluster(X, algorithm=alg, params=p)
        assert labels.shape == (n,) and labels.dtype == np.int32
        if n >= 2:
            expected = 0 if alg == "dbscan" else -1
            np.testing.assert_array_equal(labels, np.full(n, expected))
    # two tight groups of n points, far apart: found exactly (numbered by size, so 0 and 1) when n >= 2,
    # all noise when each "group" is a single point
    groups = np.repeat([0, 1], n)
    X2 = (groups[:, None] * 100.0 + np.arange(2 * n)[:, None] * 0.01).astype(np.float32) * np.ones(2, np.float32)
    for alg, p in TINY:
        labels = C.cluster(X2, algorithm=alg, params=p)
        if n >= 2:
            assert adjusted_rand_score(groups, labels) == 1.0 and set(labels.tolist()) == {0, 1}
        else:
            np.testing.assert_array_equal(labels, [-1, -1])


def test_algorithms_json_lists_every_rule():
    js = C.algorithms_json()
    assert js["hdbscan"]["min_cluster_size"]["min"] == 2 and js["dbscan"]["partition"]["default"] == "auto"
    assert all(r["help"] for rules in js.values() for r in rules.values())
