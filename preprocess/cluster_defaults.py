"""Scale-aware starting points for the clustering sliders of a set of coordinates (domain logic, no Flask)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .cluster import ALGORITHMS

#: Percentiles of the ``min_samples``-th neighbour distance reported with the eps defaults.
K_DISTANCE_PERCENTILES = (1, 5, 25, 50, 75, 95, 99)


def cluster_defaults(X: np.ndarray, *, min_samples: int | None = None, seed: int = 0) -> dict[str, Any]:
    """Sensible slider starting points for coordinates ``X`` (scale-aware eps; cluster sizes from n).

    ``eps`` default: the 75th percentile of DBSCAN core distances (``min_samples`` neighbours, itself included)
    measured on a 2,000-clip sample and rescaled to the full density. ``eps`` also carries
    ``k_distance_quantiles`` (``{"1": d, "5": d, …, "99": d}``: percentiles of those distances, coordinate units)
    and ``log_min`` / ``log_max`` (the 1st percentile; twice the 99th, at least 4× the first): the span a slider
    maps logarithmically, from "nearly every clip is noise" to "everything is one cluster".
    """
    from sklearn.neighbors import NearestNeighbors

    min_samples = min_samples or int(ALGORITHMS["dbscan"]["min_samples"][3])
    n = len(X)
    rows = np.random.default_rng(seed).choice(n, size=min(n, 2000), replace=False)
    k = min(min_samples, len(rows))
    if k < 2:
        return {}
    d, _ = NearestNeighbors(n_neighbors=k).fit(X[rows]).kneighbors(X[rows])
    kth = d[:, -1] * (len(rows) / n) ** (1.0 / X.shape[1])  # distances in a sample are longer: rescale to n
    eps = float(f"{np.percentile(kth, 75):.3g}") or 1e-3
    eps_max = float(f"{max(np.percentile(kth, 99) * 4, eps * 2):.3g}")
    quantiles = {
        str(q): float(f"{v:.4g}")
        for q, v in zip(K_DISTANCE_PERCENTILES, np.percentile(kth, K_DISTANCE_PERCENTILES), strict=True)
    }
    log_min = float(f"{max(quantiles['1'], 1e-6):.3g}")
    log_max = float(f"{max(quantiles['99'] * 2, log_min * 4):.3g}")
    eps_hint = {
        "default": eps,
        "max": eps_max,
        "k_distance_quantiles": quantiles,
        "log_min": log_min,
        "log_max": log_max,
    }
    return {
        "dbscan": {"eps": eps_hint, "min_samples": {"default": min_samples}},
        "hdbscan": {
            "min_cluster_size": {"default": int(max(5, min(500, round(n / 400))))},
            "min_samples": {"default": int(ALGORITHMS["hdbscan"]["min_samples"][3])},
        },
        "kmeans": {"n_clusters": {"default": 20}},
    }
