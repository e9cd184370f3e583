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
