"""Clustering of reduced coordinates: DBSCAN, HDBSCAN, K-means behind one validated interface.

Used by ``python -m preprocess evaluate`` and by the server's ``cluster`` job.
(Interface stub: the server issue makes it fast and memory-safe at 1M clips.)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import ParameterError
from .progress import CancelCheck, Progress, check_cancel

#: Parameter rules, declared once: name -> (type, min, max, default).
ALGORITHMS: dict[str, dict[str, tuple[type, float, float, Any]]] = {
    "dbscan": {"eps": (float, 1e-6, 100.0, 0.5), "min_samples": (int, 1, 1000, 5)},
    "hdbscan": {
        "min_cluster_size": (int, 2, 100000, 10),
        "min_samples": (int, 1, 1000, 5),
        "cluster_selection_epsilon": (float, 0.0, 100.0, 0.0),
    },
    "kmeans": {"n_clusters": (int, 2, 1000, 10)},
}


def validate_params(algorithm: str, params: dict[str, Any] | None) -> dict[str, Any]:
    """Return ``params`` completed with defaults, or raise ParameterError saying what is allowed."""
    if algorithm not in ALGORITHMS:
        raise ParameterError(f"unknown algorithm {algorithm!r}; allowed: {', '.join(ALGORITHMS)}")
    rules = ALGORITHMS[algorithm]
    params = dict(params or {})
    unknown = set(params) - set(rules)
    if unknown:
        raise ParameterError(f"unknown parameter(s) {sorted(unknown)} for {algorithm}; allowed: {', '.join(rules)}")
    out = {}
    for name, (typ, lo, hi, default) in rules.items():
        value = params.get(name, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (typ is int and float(value) != int(value)):
            raise ParameterError(f"{algorithm}.{name} must be {typ.__name__} in [{lo}, {hi}], got {value!r}")
        value = typ(value)
        if not lo <= value <= hi:
            raise ParameterError(f"{algorithm}.{name} must be in [{lo}, {hi}], got {value}")
        out[name] = value
    return out


def cluster(
    X: np.ndarray,
    *,
    algorithm: str,
    params: dict[str, Any] | None = None,
    random_state: int = 0,
    progress: Progress | None = None,
    should_cancel: CancelCheck | None = None,
) -> np.ndarray:
    """Cluster rows of ``X`` (float32 [n, d]); return int32 [n] labels, -1 for noise."""
    p = validate_params(algorithm, params)
    check_cancel(should_cancel)
    X = np.ascontiguousarray(X, dtype=np.float32)
    if algorithm == "kmeans":
        from sklearn.cluster import KMeans

        k = min(p["n_clusters"], len(X))
        labels = KMeans(n_clusters=k, n_init=4, random_state=random_state).fit_predict(X)
    elif algorithm == "hdbscan":
        import fast_hdbscan

        labels = fast_hdbscan.HDBSCAN(
            min_cluster_size=p["min_cluster_size"],
            min_samples=p["min_samples"],
            cluster_selection_epsilon=p["cluster_selection_epsilon"],
        ).fit_predict(X)
    else:
        from sklearn.cluster import DBSCAN

        labels = DBSCAN(eps=p["eps"], min_samples=p["min_samples"]).fit_predict(X)
    return np.asarray(labels, dtype=np.int32)
