"""Per-cluster summaries sent with a cluster result: size, medoid clip, top labels, top BirdNET species."""

from __future__ import annotations

from typing import Any

import numpy as np


def summarize_clusters(
    labels: np.ndarray,
    X: np.ndarray,
    *,
    clip_labels: np.ndarray | None = None,
    clip_species: np.ndarray | None = None,
    clip_scores: np.ndarray | None = None,
    clip_recordings: np.ndarray | None = None,
    top: int = 3,
) -> list[dict[str, Any]]:
    """One dict per cluster id 0..k-1: ``{id, size, medoid, top_labels, top_species}``.

    ``medoid`` is the member clip nearest to its cluster's mean in ``X`` (an O(n·d) stand-in for the true medoid).
    ``top_labels`` / ``top_species``: up to ``top`` ``[value, count]`` pairs among members, most frequent first;
    ``clip_labels`` / ``clip_species`` are object arrays of n values (None = unknown). With ``clip_scores``
    (n BirdNET scores, NaN = none) each ``top_species`` entry is ``[species, count, mean score]``. With
    ``clip_recordings`` (int [n] recording ids) each cluster also has ``n_recordings``, ``top_recording_share`` (the
    largest contributor's share of its clips) and ``single_recording`` (all from one recording: perhaps one noisy
    recording rather than a sound type), as :func:`preprocess.evaluate.recording_dominance` defines them.
    """
    labels = np.asarray(labels)
    k = int(labels.max()) + 1 if len(labels) else 0
    if k <= 0:
        return []
    members = labels >= 0
    lab = labels[members]
    idx = np.flatnonzero(members)
    sizes = np.bincount(lab, minlength=k)
    Xm = np.asarray(X, dtype=np.float64)[members]
    centroids = np.stack([np.bincount(lab, weights=Xm[:, j], minlength=k) for j in range(Xm.shape[1])], axis=1)
    centroids /= np.maximum(sizes, 1)[:, None]
    dist = ((Xm - centroids[lab]) ** 2).sum(axis=1)
    order = np.lexsort((dist, lab))
    first = np.searchsorted(lab[order], np.arange(k))
    medoids = idx[order[np.minimum(first, len(order) - 1)]]
    tops_l = _top_values(lab, idx, clip_labels, k, top)
    tops_s = _top_values(lab, idx, clip_species, k, top)
    if clip_scores is not None and clip_species is not None:
        from preprocess.species import mean_score_by_cluster

        means = mean_score_by_cluster(lab, np.asarray(clip_species, dtype=object)[idx], np.asarray(clip_scores)[idx])
        for c in range(k):
            for entry in tops_s[c]:
                entry.append(means.get((c, entry[0])))
    out = [
        {
            "id": c,
            "size": int(sizes[c]),
            "medoid": int(medoids[c]),
            "top_labels": tops_l[c],
            "top_species": tops_s[c],
        }
        for c in range(k)
    ]
    if clip_recordings is not None:
        n_rec, top_share = _dominance(lab, np.asarray(clip_recordings)[idx], k)
        for c, row in enumerate(out):
            row.update(
                n_recordings=int(n_rec[c]),
                top_recording_share=round(float(top_share[c]), 4),
                single_recording=bool(n_rec[c] == 1),
            )
    return out


def _dominance(lab: np.ndarray, rec: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per cluster 0..k-1: recordings contributing and the largest one's share, in O(n log n) (one sort of
    cluster x recording pairs, not one pass per cluster as :func:`preprocess.evaluate.recording_dominance`)."""
    codes, _ = _codes(rec)
    m = int(codes.max()) + 1 if len(codes) else 1
    pairs, counts = np.unique(lab.astype(np.int64) * m + codes, return_counts=True)
    cl = pairs // m
    n_rec = np.bincount(cl, minlength=k)
    top = np.zeros(k, np.int64)
    np.maximum.at(top, cl, counts)
    sizes = np.bincount(lab, minlength=k)
    return n_rec, np.where(sizes > 0, top / np.maximum(sizes, 1), 0.0)


def _codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    uniques, codes = np.unique(values, return_inverse=True)
    return codes.astype(np.int64).ravel(), uniques


def _top_values(lab: np.ndarray, idx: np.ndarray, values: np.ndarray | None, k: int, top: int) -> list[list]:
    out: list[list] = [[] for _ in range(k)]
    if values is None:
        return out
    import pandas as pd

    codes, uniques = pd.factorize(pd.Series(np.asarray(values, dtype=object)[idx]), use_na_sentinel=True)
    keep = codes >= 0
    if not keep.any():
        return out
    m = len(uniques)
    combined = lab[keep].astype(np.int64) * m + codes[keep]
    pairs, counts = np.unique(combined, return_counts=True)
    cl, code = pairs // m, pairs % m
    order = np.lexsort((code, -counts, cl))
    for c_, v_, n_ in zip(cl[order], code[order], counts[order], strict=True):
        row = out[int(c_)]
        if len(row) < top:
            row.append([str(uniques[v_]), int(n_)])
    return out
