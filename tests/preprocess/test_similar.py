"""Query by example: faiss results equal exact cosine search; the index grows incrementally; stale ones rebuild."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from preprocess import similar as sim
from preprocess.collection import Collection, save_npy_atomic, write_json_atomic
from preprocess.errors import ParameterError


def _fake_collection(root, x, *, created="2026-01-01T00:00:00+00:00"):
    """A collection folder with only what similarity search reads (maths test: synthetic vectors)."""
    root.mkdir(parents=True, exist_ok=True)
    write_json_atomic(root / "manifest.json", {"schema_version": 1, "counts": {"clips": len(x)}, "config": {}})
    d = root / "features" / "emb"
    save_npy_atomic(d / "features.npy", np.asarray(x, np.float32))
    write_json_atomic(
        d / "meta.json", {"extractor": "acoustic", "dim": x.shape[1], "signature": "s1", "created": created}
    )
    return Collection.open(root)


def _exact(x, q, k):
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    s = xn @ (q / np.linalg.norm(q))
    order = np.argsort(-s, kind="stable")[:k]
    return order, s[order]


def test_flat_index_equals_exact_cosine(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 32)).astype(np.float32) * rng.uniform(0.1, 10, size=(500, 1)).astype(np.float32)
    coll = _fake_collection(tmp_path / "c", x)
    hits = sim.similar(coll, clip_ids=[7], k=10, features="emb")
    ids, sims = _exact(x, x[7], 11)
    assert ids[0] == 7  # the query itself is the best match, and is left out
    assert [h["clip_id"] for h in hits] == ids[1:].tolist()
    np.testing.assert_allclose([h["similarity"] for h in hits], sims[1:], atol=1e-5)
    # a raw vector and several clips (mean of unit vectors)
    by_vec = sim.similar(coll, vector=x[7] * 3, k=5, features="emb")
    assert [h["clip_id"] for h in by_vec] == ids[:5].tolist()
    q = (x[[1, 2]] / np.linalg.norm(x[[1, 2]], axis=1, keepdims=True)).mean(0)
    ids2, _ = _exact(x, q, 12)
    fused = sim.similar(coll, clip_ids=[1, 2], k=10, features="emb")
    assert [h["clip_id"] for h in fused] == [i for i in ids2 if i not in (1, 2)][:10]


def test_index_grows_incrementally_and_stale_is_rebuilt(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 16)).astype(np.float32)
    coll = _fake_collection(tmp_path / "c", x[:200])
    idx = sim.open_index(coll, "emb")
    assert idx.n_vectors == 200 and idx.meta["type"] == "flat"
    meta = json.loads((coll.similar_dir("emb") / "meta.json").read_text())
    assert meta["n_vectors"] == 200 and meta["features_signature"] == "s1"
    # the collection grows: rows are appended, nothing rebuilt
    save_npy_atomic(coll.features_dir("emb") / "features.npy", x)
    builds = []
    monkeypatch.setattr(sim, "build_index", lambda *a, **k: builds.append(1))
    idx = sim.open_index(coll, "emb")
    assert builds == [] and idx.n_vectors == 300
    assert [h["clip_id"] for h in sim.similar(coll, clip_ids=[250], k=3, features="emb", index=idx)] == _exact(
        x, x[250], 4
    )[0][1:].tolist()
    monkeypatch.undo()
    # the feature set is recomputed (new created stamp): the index is stale and rebuilt
    y = rng.normal(size=(300, 16)).astype(np.float32)
    save_npy_atomic(coll.features_dir("emb") / "features.npy", y)
    write_json_atomic(coll.features_dir("emb") / "meta.json", {"dim": 16, "signature": "s1", "created": "later"})
    hits = sim.similar(coll, clip_ids=[3], k=3, features="emb")
    assert [h["clip_id"] for h in hits] == _exact(y, y[3], 4)[0][1:].tolist()
    assert json.loads((coll.similar_dir("emb") / "meta.json").read_text())["features_created"] == "later"


def test_ivf_index_recall(tmp_path, monkeypatch):
    monkeypatch.setattr(sim, "EXACT_MAX_VECTORS", 1000)
    rng = np.random.default_rng(2)
    centres = rng.normal(size=(50, 64)).astype(np.float32)
    x = centres[rng.integers(0, 50, 20000)] + 0.3 * rng.normal(size=(20000, 64)).astype(np.float32)
    coll = _fake_collection(tmp_path / "c", x)
    idx = sim.open_index(coll, "emb")
    assert idx.meta["type"] == "ivf-flat"
    recall = []
    for q in rng.choice(20000, 30, replace=False):
        got = {h["clip_id"] for h in sim.similar(coll, clip_ids=[int(q)], k=10, features="emb", index=idx)}
        recall.append(len(got & set(_exact(x, x[q], 11)[0][1:].tolist())) / 10)
    assert np.mean(recall) >= 0.95


def test_bad_queries(tmp_path):
    coll = _fake_collection(tmp_path / "c", np.eye(4, dtype=np.float32))
    with pytest.raises(ParameterError, match="not in the collection"):
        sim.similar(coll, clip_ids=[9], features="emb")
    with pytest.raises(ParameterError, match="k must be"):
        sim.similar(coll, clip_ids=[0], k=0, features="emb")
    with pytest.raises(ParameterError, match="vector must be"):
        sim.similar(coll, vector=np.zeros(3), features="emb")


@pytest.fixture(scope="module")
def dev_birdnet(dev_collection_path, tmp_path_factory):
    from preprocess.features import run_extractor

    root = tmp_path_factory.mktemp("learn") / "dev"
    shutil.copytree(dev_collection_path, root)
    run_extractor(Collection.open(root), "birdnet")
    return root


def test_cli_similar_json_matches_exact_on_real_audio(dev_birdnet):
    out = subprocess.run(
        [sys.executable, "-m", "preprocess", "similar", str(dev_birdnet), "--clip", "5", "--k", "8", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    hits = json.loads(out.stdout)
    x = np.asarray(Collection.open(dev_birdnet).features("birdnet"))
    ids, sims = _exact(x, x[5], 9)
    assert [h["clip_id"] for h in hits] == [i for i in ids if i != 5][:8]
    assert all(h["clip_id"] != 5 for h in hits) and len(hits) == 8
    assert hits[0]["similarity"] >= hits[-1]["similarity"]


def test_embed_file_reproduces_the_build(dev_birdnet, dev_data_path):
    coll = Collection.open(dev_birdnet)
    clips, recs = coll.clips(), coll.recordings()
    rec = int(clips.recording_id[20])
    source = dev_data_path / recs.set_index("recording_id").loc[rec, "path"]  # paths are relative to the input
    emb, times = sim.embed_file(coll, source)
    rows = np.flatnonzero(clips.recording_id.to_numpy() == rec)
    x = np.asarray(coll.features("birdnet"))[rows]
    assert emb.shape == x.shape
    np.testing.assert_allclose(emb, x, atol=1e-4)
    np.testing.assert_allclose(times["start_s"], clips.start_s.to_numpy()[rows])
    assert sim.similar(coll, vector=emb[0], k=1)[0]["clip_id"] == rows[0]
