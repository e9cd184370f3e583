"""Evaluation metrics (unit) and the done criterion on the real dev set (BirdNET beats the baseline)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from preprocess.evaluate import clip_labels, clustering_scores, eps_grid, knee_eps


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
    eps = knee_eps(X, min_samples=5)
    assert 0.02 < eps < 2.0
    grid = eps_grid(X, min_samples=5)
    assert grid == sorted(grid) and len(grid) >= 5


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
    assert bird["nmi"] > base["nmi"] + 0.1 and bird["yield"] > base["yield"] + 0.1
    assert bird["nmi"] > 0.75 and bird["yield"] > 0.6

    # a labels CSV (path,label as in the data folder) gives the same labels
    csv = coll.root / "labels_test.csv"
    rec = coll.recordings()
    pd.DataFrame({"path": rec["path"], "label": rec["label"]}).to_csv(csv, index=False)
    np.testing.assert_array_equal(clip_labels(coll, labels_csv=csv), labels)
