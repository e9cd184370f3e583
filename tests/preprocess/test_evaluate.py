"""Evaluation metrics (unit) and the done criterion on the real dev set (BirdNET beats the baseline)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from preprocess.evaluate import (
    _kth_distances,
    clip_labels,
    clustering_scores,
    eps_grid,
    knee_eps,
    recording_dominance,
    single_recording_share,
)


def test_scores_of_perfect_noisy_and_mixed_clusterings():
    y = np.array(["a"] * 10 + ["b"] * 10)
    perfect = clustering_scores(y, np.repeat([0, 1], 10))
    assert perfect == pytest.approx({"nmi": 1, "ari": 1, "v_measure": 1, "purity": 1, "yield": 1})
    # one cluster of 10 'a' + 1 'b' (91 % pure) and the rest noise
    pred = np.array([0] * 10 + [0] + [-1] * 9)
    s = clustering_scores(y, pred)
    assert s["yield"] == pytest.approx(11 / 20) and s["purity"] == pytest.approx(10 / 11)
    # below 90 %: nothing can be pooled
    pred = np.array([0] * 10 + [0, 0] + [1] * 8)
    s = clustering_scores(y, pred)
    assert s["yield"] == pytest.approx(8 / 20) and 0 < s["nmi"] < 1


def test_eps_search_brackets_the_blob_scale():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(c, 0.1, size=(100, 2)) for c in ((0, 0), (5, 5), (0, 5))]).astype(np.float32)
    eps = knee_eps(X, min_samples=6)  # 6 = DBSCAN's default min_samples, as evaluate uses it
    kd = _kth_distances(X, 6)
    # the knee sits in the upper tail of within-blob distances (blobs are 5 apart, sd 0.1): above the median
    # 5-NN distance, at most the largest one, so DBSCAN at that eps finds exactly the three blobs
    assert np.median(kd) < eps <= kd.max() + 1e-9
    from sklearn.metrics import adjusted_rand_score

    from preprocess.cluster import cluster

    pred = cluster(X, algorithm="dbscan", params={"eps": eps, "min_samples": 6})
    truth = np.repeat([0, 1, 2], 100)
    assert len(set(pred[pred >= 0])) == 3 and np.mean(pred < 0) < 0.1
    assert adjusted_rand_score(truth[pred >= 0], pred[pred >= 0]) == 1.0
    grid = eps_grid(X, min_samples=6)
    assert grid == sorted(grid) and len(grid) >= 5
    assert grid[0] == pytest.approx(np.quantile(kd, 0.05)) and grid[-1] == pytest.approx(np.quantile(kd, 0.95))


def test_recording_dominance_counts_contributors():
    clusters = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, -1, -1])
    recs = np.array([7, 7, 7, 3, 5, 5, 5, 1, 2, 9, 9])
    dom = recording_dominance(clusters, recs)
    assert sorted(dom) == [0, 1, 2]  # noise is not a cluster
    assert dom[0] == {"n_clips": 4, "n_recordings": 2, "top_recording": 7, "top_share": 0.75, "single_recording": False}
    assert dom[1]["single_recording"] and dom[1]["top_share"] == 1.0 and dom[1]["n_recordings"] == 1
    assert dom[2]["top_share"] == 0.5 and not dom[2]["single_recording"]
    assert single_recording_share(clusters, recs) == pytest.approx(1 / 3)
    assert single_recording_share(np.full(3, -1), np.arange(3)) == 0.0
    with pytest.raises(ValueError, match="differ in shape"):
        recording_dominance(clusters, recs[:-1])


@pytest.mark.slow
def test_birdnet_pipeline_beats_the_acoustic_baseline(dev_collection_path, copy_collection, capsys):
    from preprocess.cli import main
    from preprocess.collection import Collection
    from preprocess.features import run_extractor
    from preprocess.reduce import reduce_collection

    coll = Collection.open(copy_collection(dev_collection_path))
    labels = clip_labels(coll)
    assert (labels != "").all() and "Parus major" in set(labels)
    for name in ("birdnet", "acoustic"):
        run_extractor(coll, name)
        reduce_collection(coll, features=[name], dims=(8,))
    assert main(["evaluate", str(coll.root)]) == 0
    printed = capsys.readouterr().out
    assert "birdnet" in printed and "yield" in printed
    rows = json.loads(coll.evaluation_path.read_text())["results"]

    def best(source: str) -> dict:
        return next(r for r in rows if r["source"] == source and r["kind"] == "umap8" and r["pipeline"] == "hdbscan")

    bird, base = best("birdnet"), best("acoustic")
    assert 0.0 <= bird["single_rec"] <= 1.0 and "single_rec" in printed
    assert bird["nmi"] > base["nmi"] + 0.1 and bird["yield"] > base["yield"] + 0.1
    assert bird["nmi"] > 0.75 and bird["yield"] > 0.6

    # a labels CSV (path,label as in the data folder) gives the same labels
    csv = coll.root / "labels_test.csv"
    rec = coll.recordings()
    pd.DataFrame({"path": rec["path"], "label": rec["label"]}).to_csv(csv, index=False)
    np.testing.assert_array_equal(clip_labels(coll, labels_csv=csv), labels)
