"""Refine: the head and the validity index (maths, synthetic), and the whole command on real clips."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from preprocess.errors import MissingDependencyError, ParameterError
from preprocess.refine_head import HeadConfig, embed, l2_normalise, train_head, validity

torch = pytest.importorskip("torch")
torch.set_num_threads(1)


def _blobs(n_per=60, k=4, d=32, spread=0.6, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d)) * 3
    X = np.concatenate([c + spread * rng.normal(size=(n_per, d)) for c in centres]).astype(np.float32)
    return X, np.repeat(np.arange(k), n_per)


def test_head_learns_pseudo_labels_and_embeds_unit_rows():
    X, y = _blobs()
    y_train = y.copy()
    y_train[::7] = -1  # noise rows are left out of training but embedded
    proj, info = train_head(l2_normalise(X), y_train, cfg=HeadConfig(epochs=20, dim_out=16, hidden=64))
    assert info["accuracy"] > 0.95 and info["steps"] > 0
    Z = embed(proj, X)
    assert Z.shape == (len(X), 16) and Z.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(Z, axis=1), 1.0, atol=1e-5)
    # held-out (noise) rows land nearest their own class's mean direction
    means = l2_normalise(np.stack([Z[(y == c) & (y_train >= 0)].mean(0) for c in range(4)]))
    held = y_train < 0
    assert np.mean((Z[held] @ means.T).argmax(1) == y[held]) > 0.95
    # deterministic for a seed
    again, _ = train_head(l2_normalise(X), y_train, cfg=HeadConfig(epochs=20, dim_out=16, hidden=64))
    np.testing.assert_allclose(embed(again, X), Z, atol=1e-5)


def test_head_needs_two_classes_and_checks_its_config():
    X, _ = _blobs(k=2)
    with pytest.raises(Exception, match="at least 2"):
        train_head(X, np.zeros(len(X), int), cfg=HeadConfig(epochs=1))
    with pytest.raises(ParameterError, match="dim_out"):
        HeadConfig(dim_out=0)


def test_validity_prefers_the_true_partition():
    X, y = _blobs(d=4, spread=0.3)
    good = validity(X, y)
    shuffled = np.random.default_rng(1).permutation(y)
    assert good > 0.5 and validity(X, shuffled) < good - 0.5
    noisy = np.where(np.arange(len(y)) % 2 == 0, y, -1)  # half the points called noise
    assert validity(X, noisy) < good
    assert np.isnan(validity(X, np.zeros(len(y), int)))  # one cluster: undefined


@pytest.fixture(scope="module")
def refined(demo_collection_path, tmp_path_factory):
    """The demo collection with BirdNET features, refined for at most 2 rounds (small head)."""
    import shutil

    from preprocess.collection import Collection
    from preprocess.features import run_extractor
    from preprocess.refine import refine_collection

    root = tmp_path_factory.mktemp("refine") / "demo"
    shutil.copytree(demo_collection_path, root)
    try:
        run_extractor(Collection.open(root), "birdnet", device="cpu")
    except MissingDependencyError as e:
        pytest.skip(str(e))
    coll = Collection.open(root)
    digest = hashlib.sha1((root / "features" / "birdnet" / "features.npy").read_bytes()).hexdigest()
    rows: list[dict] = []
    meta = refine_collection(
        coll, iterations=2, head=HeadConfig(epochs=15, hidden=128, dim_out=32), device="cpu", on_round=rows.append
    )
    return coll, meta, rows, digest


def test_refine_writes_a_new_feature_set_and_reduction(refined):
    coll, meta, rows, digest = refined
    # the original is never touched
    assert hashlib.sha1(coll.features_dir("birdnet").joinpath("features.npy").read_bytes()).hexdigest() == digest
    assert "birdnet-refined" in coll.feature_sets() and "birdnet-refined" in coll.reductions()
    Z = coll.features("birdnet-refined")
    assert Z.shape == (coll.n_clips(), 32)
    np.testing.assert_allclose(np.linalg.norm(Z, axis=1), 1.0, atol=1e-4)
    assert coll.reduced("birdnet-refined", 8).shape == (coll.n_clips(), 8)
    assert coll.display_map("birdnet-refined").shape == (coll.n_clips(), 2)
    assert coll.reduction_meta("birdnet-refined")["dims"] == coll.reduction_meta("birdnet")["dims"]
    # per-round figures: round 0 is the original, each later one says how it agrees with the one before
    assert [r["round"] for r in rows] == list(range(len(rows))) and 2 <= len(rows) <= 3
    assert rows[0]["agreement"] is None and all(0 <= r["agreement"] <= 1 for r in rows[1:])
    for r in rows:
        assert {"n_clusters", "noise", "validity", "nmi", "ari", "yield", "time_s"} <= set(r)
    assert meta["converged"] == (rows[-1]["agreement"] >= 0.95)
    assert meta["converged"] or len(rows) == 3
    # worse says whether the validity index dropped
    assert meta["worse"] == (meta["validity_refined"] < meta["validity_original"])
    stored = json.loads((coll.features_dir("birdnet-refined") / "meta.json").read_text())
    assert stored["source"] == "birdnet" and stored["rounds"] == json.loads(json.dumps(rows))
    assert (coll.features_dir("birdnet-refined") / "head.pt").is_file()


def test_new_clips_are_placed_through_the_saved_head(refined):
    from preprocess.refine import refine_new

    coll, *_ = refined
    X = np.asarray(coll.features("birdnet")[:5])
    Z, coords, map_2d = refine_new(coll, X)
    np.testing.assert_allclose(Z, coll.features("birdnet-refined")[:5], atol=1e-5)  # same head, same rows
    assert coords[8].shape == (5, 8) and map_2d.shape == (5, 2)
    # placed next to where the stored clips are
    Y = coll.reduced("birdnet-refined", 8)
    d = np.linalg.norm(coords[8][:, None] - Y[None], axis=2)
    assert (d.argmin(1) == np.arange(5)).mean() >= 0.6 or np.median(d.min(1)) < 0.5
    with pytest.raises(ParameterError, match=r"\[m, 1024\]"):
        refine_new(coll, X[:, :10])


def test_evaluate_includes_the_refined_set(refined):
    from preprocess.evaluate import evaluate_collection

    coll, *_ = refined
    result = evaluate_collection(coll, sources=["birdnet", "birdnet-refined"])
    sources = {(r["source"], r["kind"]) for r in result["results"]}
    assert ("birdnet-refined", "umap8") in sources and ("birdnet", "umap8") in sources


def test_user_classes_are_fixed_labels(refined, tmp_path):
    from preprocess.labels import LabelStore
    from preprocess.refine import fixed_labels

    coll, *_ = refined
    assert (fixed_labels(coll) == -1).all()
    with LabelStore.open(coll) as store:
        a = store.create_class("song")["class"]
        b = store.create_class("call")["class"]
        store.add_members(a["id"], [0, 1, 2])
        store.add_members(b["id"], [5])
    fixed = fixed_labels(coll)
    assert set(fixed[[0, 1, 2]]) == {fixed[0]} and fixed[5] >= 0 and fixed[5] != fixed[0]
    assert (fixed[6:] == -1).all() and fixed[3] == -1


def test_bad_requests_say_what_is_wrong(refined):
    from preprocess.cli import main
    from preprocess.errors import NotFoundError
    from preprocess.refine import refine_collection

    coll, *_ = refined
    with pytest.raises(ParameterError, match="iterations"):
        refine_collection(coll, iterations=0)
    with pytest.raises(NotFoundError, match="saec"):
        refine_collection(coll, features="saec")
    assert main(["refine", str(coll.root), "--features", "nope"]) == 2
