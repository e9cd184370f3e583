"""SAEC: the denoising autoencoder trains (briefly), checkpoints and embeds real spectrograms."""

from __future__ import annotations

import json

import numpy as np
import pytest

from preprocess.collection import Collection
from preprocess.errors import CollectionError
from preprocess.features import run_extractor
from preprocess.testing import CollectionWriter

QUICK = {"max_steps": 4, "max_train_clips": 64, "train_batch_size": 8}


@pytest.mark.slow
def test_saec_on_real_spectrograms(demo_collection_path, copy_collection):
    coll = Collection.open(copy_collection(demo_collection_path))
    out = run_extractor(coll, "saec", device="cpu", params=QUICK)
    X = np.load(out / "features.npy")
    meta = json.loads((out / "meta.json").read_text())
    n = coll.n_clips()
    assert X.shape == (n, 2 * 16 * (128 // 2 // 16)) and np.isfinite(X).all()
    assert (out / "model.pt").is_file() and meta["model"]["train_steps"] == 4 and meta["device"] == "cpu"
    assert X.std(axis=0).max() > 0

    # seeded: training again from scratch gives the same embedding
    (out / "model.pt").unlink()
    (out / "features.npy").unlink()
    run_extractor(coll, "saec", device="cpu", params=QUICK)
    np.testing.assert_allclose(np.load(out / "features.npy"), X, rtol=1e-4, atol=1e-4)

    # appended clips are encoded with the stored checkpoint: old rows do not move
    CollectionWriter(coll.root).features("saec", X[: n - 4], **dict(meta, n_clips=n - 4))
    run_extractor(coll, "saec", device="cpu", params=QUICK)
    np.testing.assert_allclose(np.load(out / "features.npy"), X, rtol=1e-4, atol=1e-4)

    # without the checkpoint, appending would mix two models: refused with what to do
    CollectionWriter(coll.root).features("saec", X[: n - 4], **dict(meta, n_clips=n - 4))
    (out / "model.pt").unlink()
    with pytest.raises(CollectionError, match="delete .* and run again"):
        run_extractor(coll, "saec", device="cpu", params=QUICK)


@pytest.mark.gpu
def test_saec_on_cuda(demo_collection_path, copy_collection):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    coll = Collection.open(copy_collection(demo_collection_path))
    out = run_extractor(coll, "saec", device="cuda", params={"max_steps": 50})
    X = np.load(out / "features.npy")
    assert X.shape[0] == coll.n_clips() and np.isfinite(X).all()
    assert json.loads((out / "meta.json").read_text())["device"] == "cuda"
    # the same checkpoint encodes the same clips on the CPU (rows 1.. are re-encoded with the stored
    # model, row 0 is kept): CUDA and CPU embeddings agree
    meta = json.loads((out / "meta.json").read_text())
    CollectionWriter(coll.root).features("saec", X[:1], **dict(meta, n_clips=1))
    X_cpu = np.load(run_extractor(coll, "saec", device="cpu", params={"max_steps": 50}) / "features.npy")
    assert X_cpu.shape == X.shape
    np.testing.assert_allclose(X_cpu, X, rtol=1e-3, atol=1e-3)
    cos = (X_cpu * X).sum(1) / (np.linalg.norm(X_cpu, axis=1) * np.linalg.norm(X, axis=1) + 1e-12)
    assert cos.min() > 0.999
