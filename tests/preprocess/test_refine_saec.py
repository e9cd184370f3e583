"""Refine with ``features=saec``: the autoencoder's encoder itself is fine-tuned on cluster pseudo-labels
(``preprocess.refine_saec``). Real demo spectrograms, a briefly trained saec model, few steps."""

from __future__ import annotations

import hashlib
import shutil

import numpy as np
import pytest

from preprocess.collection import Collection, save_npy_atomic, write_json_atomic
from preprocess.errors import ParameterError

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.slow

SAEC_QUICK = {"max_steps": 6, "max_train_clips": 64, "train_batch_size": 8}
STEPS = 8


def _digest(path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def saec_demo(demo_collection_path, tmp_path_factory):
    """The demo collection with (briefly trained) saec features and their default reduction."""
    from preprocess.features import run_extractor
    from preprocess.reduce import reduce_collection

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("refine_saec") / "demo"
    shutil.copytree(demo_collection_path, root)
    coll = Collection.open(root)
    run_extractor(coll, "saec", device="cpu", params=SAEC_QUICK)
    reduce_collection(coll, features=["saec"])
    return root


@pytest.fixture(scope="module")
def refined(saec_demo, tmp_path_factory):
    from preprocess.refine import EncoderConfig, refine_collection

    root = tmp_path_factory.mktemp("refine_saec_run") / "demo"
    shutil.copytree(saec_demo, root)
    coll = Collection.open(root)
    before = {f: _digest(coll.features_dir("saec") / f) for f in ("features.npy", "model.pt", "meta.json")}
    rows: list[dict] = []
    meta = refine_collection(
        coll,
        features="saec",
        iterations=2,
        encoder=EncoderConfig(steps=STEPS, batch_size=8),
        device="cpu",
        on_round=rows.append,
    )
    return coll, meta, rows, before


def test_saec_refine_writes_saec_refined_and_leaves_saec_alone(refined):
    coll, meta, rows, before = refined
    for f, digest in before.items():  # the original features, checkpoint and meta are byte-identical
        assert _digest(coll.features_dir("saec") / f) == digest, f
    assert "saec-refined" in coll.feature_sets() and "saec-refined" in coll.reductions()
    Z = coll.features("saec-refined")
    assert Z.shape == coll.features("saec").shape and np.isfinite(Z).all()
    np.testing.assert_allclose(np.linalg.norm(Z, axis=1), 1.0, atol=1e-4)
    assert coll.display_map("saec-refined").shape == (coll.n_clips(), 2)
    # the metadata says how it was made: the base model, rounds, steps, device
    stored = coll.features_meta("saec-refined")
    assert stored["extractor"] == "refine" and stored["source"] == "saec" and stored["device"] == "cpu"
    model = stored["model"]
    assert model["kind"] == "saec-encoder" and model["device"] == "cpu"
    base = torch.load(coll.features_model_path("saec"), weights_only=False)
    assert model["base"]["signature"] == base["signature"] and model["base"]["params"] == base["params"]
    assert 1 <= model["rounds"] == stored["kept_round"] <= 2
    assert model["steps"] == STEPS * model["rounds"]  # bounded: exactly the configured steps per round
    assert stored["params"]["encoder"]["steps"] == STEPS
    # per-round figures, round 0 the original
    assert [r["round"] for r in rows] == list(range(len(rows))) and 2 <= len(rows) <= 3
    assert all(r["train_steps"] == STEPS for r in rows[1:])
    assert {"n_clusters", "noise", "validity", "nmi", "ari", "yield", "time_s"} <= set(rows[0])
    # the kept round is the most valid one, and the verdict compares it with the original
    valid = [r["validity"] for r in rows[1:]]
    assert rows[stored["kept_round"]]["validity"] == max(v for v in valid if v == v)
    assert stored["worse"] == (stored["validity_refined"] < stored["validity_original"])


def test_the_encoder_weights_actually_change(refined):
    coll, *_ = refined
    base = torch.load(coll.features_model_path("saec"), weights_only=False)["state_dict"]
    tuned = torch.load(coll.features_model_path("saec-refined"), weights_only=False)["state_dict"]
    assert base.keys() == tuned.keys()
    enc = [k for k in base if k.startswith("encoder.") and base[k].is_floating_point() and "running" not in k]
    assert enc and max(float((base[k] - tuned[k]).abs().max()) for k in enc) > 1e-4
    # and so do the embeddings: not the base features, merely normalised
    from preprocess.refine_head import l2_normalise

    X0 = l2_normalise(np.asarray(coll.features("saec")))
    Z = np.asarray(coll.features("saec-refined"))
    assert np.abs(X0 - Z).max() > 1e-2


def test_new_clips_go_through_the_saved_encoder(refined):
    from preprocess.refine import extend_refined, refine_new

    coll, *_ = refined
    n = coll.n_clips()
    S = coll.spectrograms()
    Z = np.array(coll.features("saec-refined"))
    Z_new, coords, map_2d = refine_new(coll, np.asarray(S[:5]), features="saec")
    np.testing.assert_allclose(Z_new, Z[:5], atol=1e-4)  # the stored rows came from the saved encoder
    assert coords[8].shape == (5, 8) and map_2d.shape == (5, 2)
    with pytest.raises(ParameterError, match="spectrograms"):
        refine_new(coll, np.asarray(S[:2, :10]), features="saec")
    # clips appended later: their rows are appended through the saved encoder, old rows untouched
    meta = coll.features_meta("saec-refined")
    save_npy_atomic(coll.features_path("saec-refined"), Z[: n - 4])
    write_json_atomic(coll.features_meta_path("saec-refined"), dict(meta, n_clips=n - 4))
    assert extend_refined(coll, "saec-refined") == 4
    Z1 = np.asarray(coll.features("saec-refined"))
    assert Z1.shape == Z.shape and np.array_equal(Z1[: n - 4], Z[: n - 4])
    np.testing.assert_allclose(Z1[n - 4 :], Z[n - 4 :], atol=1e-4)
    assert coll.features_meta("saec-refined")["created"] == meta["created"]


def test_fine_tuning_is_deterministic_with_a_seed(saec_demo):
    from preprocess.cluster import cluster
    from preprocess.refine_saec import EncoderConfig, SaecEncoderTuner

    coll = Collection.open(saec_demo)
    y = cluster(coll.reduced("saec", 8), algorithm="hdbscan", params={"min_cluster_size": 5, "min_samples": 1})
    if len(set(y[y >= 0])) < 2:
        y = np.arange(coll.n_clips()) % 3
    cfg = EncoderConfig(steps=4, batch_size=8)
    runs = []
    for seed in (7, 7, 8):
        tuner = SaecEncoderTuner(coll, cfg=cfg, device="cpu", random_state=0)
        tuner.fit(y, random_state=seed)
        runs.append(tuner.embed())
    np.testing.assert_allclose(runs[0], runs[1], atol=1e-5)
    assert np.abs(runs[0] - runs[2]).max() > 1e-4  # the seed matters


@pytest.mark.gpu
def test_saec_refine_on_cuda(saec_demo, tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    from preprocess.refine import EncoderConfig, refine_collection, refine_new

    root = tmp_path / "demo"
    shutil.copytree(saec_demo, root)
    coll = Collection.open(root)
    meta = refine_collection(coll, features="saec", iterations=2, encoder=EncoderConfig(steps=50), device="cuda")
    assert meta["device"] == "cuda" and meta["model"]["device"] == "cuda"
    assert meta["model"]["encoder"]["batch_size"] > 0
    Z = np.asarray(coll.features("saec-refined"))
    assert np.isfinite(Z).all()
    # the CPU placement of new clips (the saved encoder) agrees with the rows made on the GPU in float16
    Z_cpu, _, _ = refine_new(coll, np.asarray(coll.spectrograms()[:20]), features="saec")
    assert ((Z_cpu * Z[:20]).sum(1)).min() > 0.99


def test_the_command_refines_saec_and_says_how(saec_demo, tmp_path, capsys):
    from preprocess.cli import main

    root = tmp_path / "demo"
    shutil.copytree(saec_demo, root)
    assert main(["refine", str(root), "--features", "saec", "--iterations", "1", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "round 0:" in out and "round 1:" in out
    assert "saec-refined: 1 round(s)" in out and "encoder fine-tuned for 60 steps on cpu" in out
    assert Collection.open(root).features_meta("saec-refined")["model"]["steps"] == 60
