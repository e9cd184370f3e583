"""The eps slider's span from the data's neighbour distances (preprocess.cluster_defaults)."""

from __future__ import annotations

import numpy as np

from preprocess.cluster import cluster
from preprocess.cluster_defaults import K_DISTANCE_PERCENTILES, cluster_defaults


def _blobs(n: int = 3000, dims: int = 8, seed: int = 0, spread: float = 0.6) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 6, (8, dims))
    truth = rng.integers(0, 8, n)
    return (centres[truth] + rng.normal(0, spread, (n, dims))).astype(np.float32)


def test_k_distance_quantiles_are_the_min_samples_th_neighbour_distances():
    X = _blobs(n=1500)  # below the 2,000-clip sample: exact, no rescaling
    eps = cluster_defaults(X, min_samples=5)["dbscan"]["eps"]
    q = eps["k_distance_quantiles"]
    assert list(q) == [str(p) for p in K_DISTANCE_PERCENTILES]
    d = np.sqrt(((X[:, None, :] - X[None, :, :]) ** 2).sum(-1))
    kth = np.sort(d, axis=1)[:, 4]  # 5 neighbours, the point itself included (sklearn's min_samples)
    np.testing.assert_allclose([q[k] for k in q], np.percentile(kth, K_DISTANCE_PERCENTILES), rtol=1e-3)
    assert eps["log_min"] == float(f"{q['1']:.3g}")
    assert eps["log_min"] < eps["default"] < eps["log_max"]
    assert eps["log_max"] >= 2 * q["99"] * 0.999


def test_quantiles_scale_with_the_data():
    X = _blobs()
    a = cluster_defaults(X)["dbscan"]["eps"]
    b = cluster_defaults(X * 100)["dbscan"]["eps"]
    np.testing.assert_allclose(b["log_min"], a["log_min"] * 100, rtol=1e-2)
    np.testing.assert_allclose(b["log_max"], a["log_max"] * 100, rtol=1e-2)


def test_a_log_slider_between_them_finds_clusters_over_its_travel():
    # Today's slider (1e-3 .. max, log) gives zero clusters over most of its travel; between log_min and
    # log_max at least 90 % of positions find clusters without calling everything noise.
    for spread in (0.4, 1.0):
        X = _blobs(n=1200, spread=spread, seed=1)
        eps = cluster_defaults(X)["dbscan"]
        lo, hi, ms = eps["eps"]["log_min"], eps["eps"]["log_max"], eps["min_samples"]["default"]
        useful = 0
        positions = np.geomspace(lo, hi, 12)
        for e in positions:
            labels = cluster(X, algorithm="dbscan", params={"eps": float(e), "min_samples": ms})
            useful += int(labels.max() >= 0 and (labels < 0).mean() < 0.99)
        assert useful / len(positions) >= 0.9, (spread, useful)
        old = np.geomspace(1e-3, eps["eps"]["max"], 12)
        zero = sum(cluster(X, algorithm="dbscan", params={"eps": float(e), "min_samples": ms}).max() < 0 for e in old)
        assert zero >= 6  # the old mapping's failure this fixes: half its travel or more found nothing
