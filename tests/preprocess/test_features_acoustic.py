"""Acoustic baseline + the generic runner (registry, errors, resume, append) on real audio."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

import preprocess.features as features_mod
from preprocess.collection import Collection
from preprocess.errors import Cancelled, CollectionError, ParameterError
from preprocess.features import run_extractor
from preprocess.features.acoustic import acoustic_descriptors
from preprocess.testing import CollectionWriter


@pytest.fixture
def demo_copy(demo_collection_path, copy_collection):
    return copy_collection(demo_collection_path)


def test_descriptors_find_a_tone_and_its_band():
    freqs = np.geomspace(150, 15000, 128).astype(np.float32)
    S = np.full((2, 128, 100), -80.0, np.float32)
    band = np.argmin(np.abs(freqs - 2000))
    S[0, band - 1 : band + 2, 20:60] = 0.0  # a 2 kHz tone in silence
    S[1] = np.random.default_rng(0).uniform(-12, 0, (128, 100))  # broadband noise
    X = acoustic_descriptors(S, freqs_hz=freqs)
    assert X.shape == (2, 3 * 20 + 14) and np.isfinite(X).all()
    n = 60
    flatness_mean, peak_mean = X[:, n + 4], X[:, n + 6]
    f_peak, f_low, f_high, bw = X[:, n + 8], X[:, n + 9], X[:, n + 10], X[:, n + 11]
    assert abs(peak_mean[0] - 2.0) < 0.15 and abs(f_peak[0] - 2.0) < 0.15
    assert bw[0] < 0.3 < bw[1] and f_low[0] < 2.0 < f_high[0]
    assert flatness_mean[1] > 5 * flatness_mean[0]


def test_acoustic_on_real_clips_resumes_and_appends(demo_copy, monkeypatch):
    coll = Collection.open(demo_copy)
    n = coll.n_clips()
    monkeypatch.setattr(features_mod, "CHUNK_CLIPS", 16)
    out = run_extractor(coll, "acoustic")
    X = np.load(out / "features.npy")
    meta = json.loads((out / "meta.json").read_text())
    assert X.shape == (n, 74) and X.dtype == np.float32 and np.isfinite(X).all()
    assert meta["n_clips"] == n and meta["extractor"] == "acoustic" and not (out / "partial").exists()
    assert len(np.unique(X.round(4), axis=0)) == n  # every clip gets its own description

    # interrupted after two chunks: nothing final is written, the rerun resumes at row 32
    shutil.rmtree(out)
    calls = iter(range(100))
    with pytest.raises(Cancelled):
        run_extractor(coll, "acoustic", should_cancel=lambda: next(calls) >= 2)
    assert not (out / "features.npy").exists() and len(list((out / "partial").glob("chunk_*.npz"))) == 2
    seen = []
    run_extractor(coll, "acoustic", progress=lambda stage, done, total, msg="": seen.append((done, total, msg)))
    assert seen[0] == (32, n, "resuming")
    np.testing.assert_array_equal(np.load(out / "features.npy"), X)

    # clips appended since the last run: only the new rows are computed, old rows untouched
    meta["n_clips"] = n - 5
    CollectionWriter(coll.root).features("acoustic", X[: n - 5], **meta)
    seen.clear()
    run_extractor(coll, "acoustic", progress=lambda stage, done, total, msg="": seen.append((done, total)))
    assert seen[-1] == (5, 5)
    np.testing.assert_array_equal(np.load(out / "features.npy"), X)
    assert json.loads((out / "meta.json").read_text())["created"] == meta["created"]

    # nothing changed: a no-op
    seen.clear()
    run_extractor(coll, "acoustic", progress=lambda stage, done, total, msg="": seen.append(msg))
    assert seen == ["up to date"]


def test_bad_input_is_refused_before_writing(demo_copy):
    coll = Collection.open(demo_copy)
    with pytest.raises(ParameterError, match="unknown extractor 'mfcc'; allowed: birdnet, acoustic, saec, idnn"):
        run_extractor(coll, "mfcc")
    with pytest.raises(ParameterError, match="unknown device"):
        run_extractor(coll, "acoustic", device="tpu")
    with pytest.raises(ParameterError, match="batch_size must be"):
        run_extractor(coll, "acoustic", batch_size=0)
    coll.spectrograms_path.unlink()
    with pytest.raises(CollectionError, match="no spectrograms"):
        run_extractor(coll, "acoustic")
    assert coll.feature_sets() == [] and not (coll.root / "features").exists()


def test_cuda_without_gpu_is_a_clear_error(demo_copy):
    if features_mod.resolve_device("auto") == "cuda":
        pytest.skip("a GPU is present")
    with pytest.raises(ParameterError, match="no CUDA GPU"):
        run_extractor(Collection.open(demo_copy), "saec", device="cuda")
    assert not (demo_copy / "features").exists()


def test_cli_reports_errors_with_exit_code(demo_copy, capsys):
    from preprocess.cli import main

    assert main(["features", str(demo_copy), "--extractor", "nope"]) == 2
    assert "unknown extractor 'nope'; allowed:" in capsys.readouterr().err
    assert main(["features", str(demo_copy), "--extractor", "acoustic"]) == 0
    assert "acoustic:" in capsys.readouterr().out
