"""The clip table carries BirdNET's top score next to its top species; cluster summaries give a mean score per
species (the server's small hunks over :mod:`preprocess.species`)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from preprocess.collection import write_table_atomic
from server.summary import summarize_clusters
from server.tables import CLIP_TABLE_COLUMNS, clip_table, read_binary, to_binary
from tests.server.test_labels_api import N_CLIPS, write_collection


def test_clip_table_has_top_score_from_the_local_ranking(tmp_path):
    coll = write_collection(tmp_path / "birds")
    i = CLIP_TABLE_COLUMNS.index("top_species")
    assert CLIP_TABLE_COLUMNS[i + 1] == "top_score"
    table = clip_table(coll)
    assert table["top_score"].isna().all() and table["top_species"].isna().all()  # BirdNET has not run
    rows = {"clip_id": np.arange(N_CLIPS), "species_1": "Parus major", "score_1": np.float32(0.9)}
    rows |= {"local_species_1": ["Junco hyemalis"] * 10 + [""] * (N_CLIPS - 10), "local_score_1": np.float32(0.4)}
    (coll.root / "features" / "birdnet").mkdir(parents=True)
    write_table_atomic(coll.root / "features" / "birdnet" / "species.parquet", pd.DataFrame(rows))
    table = clip_table(coll)
    assert table["top_species"].tolist() == ["Junco hyemalis"] * 10 + [None] * (N_CLIPS - 10)
    np.testing.assert_allclose(table["top_score"], 0.4)
    decoded = read_binary(to_binary(table))
    np.testing.assert_allclose(decoded["top_score"], 0.4)


def test_cluster_summary_mean_score_per_species():
    labels = np.array([0, 0, 0, 1, 1, -1])
    X = np.arange(12, dtype=float).reshape(6, 2)
    species = np.array(["A", "A", "B", "B", None, "A"], dtype=object)
    scores = np.array([0.2, 0.4, 0.9, 0.5, np.nan, 1.0])
    out = summarize_clusters(labels, X, clip_species=species, clip_scores=scores)
    assert out[0]["top_species"] == [["A", 2, 0.3], ["B", 1, 0.9]]
    assert out[1]["top_species"] == [["B", 1, 0.5]]
    plain = summarize_clusters(labels, X, clip_species=species)
    assert plain[0]["top_species"] == [["A", 2], ["B", 1]]
