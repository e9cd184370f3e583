"""Scale-aware starting points for the clustering sliders of a set of coordinates (domain logic, no Flask)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .cluster import ALGORITHMS


def cluster_defaults(X: np.ndarray, *, min_samples: int | None = None, seed: int = 0) -> dict[str, Any]:
    """Sensible slider starting points for coordinates ``X`` (scale-aware eps; cluster sizes from n).

    ``eps`` default: the 75th percentile of DBSCAN core distances (``min_samples`` neighbours, itself included)
    measured on a 2,000-clip sample and rescaled to the full density.
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
    return {
        "dbscan": {"eps": {"default": eps, "max": eps_max}, "min_samples": {"default": min_samples}},
        "hdbscan": {
            "min_cluster_size": {"default": int(max(5, min(500, round(n / 400))))},
            "min_samples": {"default": int(ALGORITHMS["hdbscan"]["min_samples"][3])},
        },
        "kmeans": {"n_clusters": {"default": 20}},
    }
