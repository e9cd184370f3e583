"""A map for a collection too small for UMAP (fewer than ``reduce.MIN_CLIPS`` clips): PCA of the features.

UMAP needs a handful of neighbours per point; a new collection of one to four clips still deserves a map to hover
and hear. Its layout is the first two principal components of the standardised features (the same scaling
:func:`preprocess.reduce.reduce_collection` uses), spread to unit size, with a small golden-angle offset so that
identical clips do not sit on one pixel. It is written as an ordinary reduction (``dims_D.npy``, ``map_2d.npy``,
``meta.json`` with ``layout: "pca"``) but without ``model.pkl``: the next ingest, once there are enough clips, fits
UMAP from scratch (:func:`preprocess.reduce.reduce_collection` refits when the model is missing).
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from .collection import Collection, save_npy_atomic, write_json_atomic
from .reduce import reduction_key

#: Below this many clips a new collection gets this layout instead of UMAP (``reduce_collection`` refuses < 5).
MIN_UMAP_CLIPS = 5
#: The parameters ``reduce_collection`` uses by default: a later refit with them gives the usual UMAP map.
DEFAULT_PARAMS = {"n_neighbors": None, "min_dist": 0.0, "display_min_dist": 0.5, "metric": "euclidean",
                  "random_state": 0}  # fmt: skip


def small_layout(X: np.ndarray, *, dims: int = 2) -> np.ndarray:
    """Deterministic ``dims``-d layout of the rows of ``X`` (float [n, D]) → float32 [n, dims], spread in [-1, 1].

    PCA components (as many as the data has, at most ``dims``), zero-padded, scaled so that the largest coordinate
    is 1, plus an offset of 0.08 along a golden-angle spiral by row (identical rows stay apart).
    """
    X = np.asarray(X, dtype=np.float64)
    n = len(X)
    out = np.zeros((n, dims), dtype=np.float64)
    if n >= 2:
        Z = X - X.mean(axis=0)
        _u, s, vt = np.linalg.svd(Z, full_matrices=False)
        k = int(min(dims, len(s), int(np.sum(s > 1e-9 * max(s[0], 1e-30)))))
        if k:
            out[:, :k] = Z @ vt[:k].T
        peak = np.abs(out).max()
        if peak > 0:
            out /= peak
    i = np.arange(n, dtype=np.float64)
    angle = i * np.pi * (3.0 - np.sqrt(5.0))
    radius = 0.08 * np.sqrt(i + 0.5)
    out[:, 0] += radius * np.cos(angle)
    if dims > 1:
        out[:, 1] += radius * np.sin(angle)
    return out.astype(np.float32)


def fit_small_map(coll: Collection, features: list[str], *, dims: list[int] | tuple[int, ...] = (2, 4, 8)) -> str:
    """Write the PCA map of ``features`` for every clip of ``coll`` (any number ≥ 1); returns the reduction key."""
    key = reduction_key(features)
    parts = []
    for name in features:
        F = np.asarray(coll.features(name), dtype=np.float32)
        scale = F.std(axis=0)
        scale[scale < 1e-8] = 1.0
        parts.append((F - F.mean(axis=0)) / scale / np.sqrt(F.shape[1]))
    X = np.concatenate(parts, axis=1)
    dims = sorted({int(d) for d in dims})
    for d in dims:
        save_npy_atomic(coll.reduced_path(key, d), small_layout(X, dims=d))
    save_npy_atomic(coll.map_path(key), small_layout(X, dims=2))
    meta = {
        "features": list(features),
        "dims": dims,
        "params": dict(DEFAULT_PARAMS),
        "layout": "pca",
        "n_clips": len(X),
        "n_fitted": len(X),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    write_json_atomic(coll.reduction_meta_path(key), meta)
    return key
