"""Batched torch log-mel spectrograms against librosa, and the uint8 storage."""

from __future__ import annotations

import numpy as np
import pytest

from preprocess import spectrogram as spec

librosa = pytest.importorskip("librosa")


@pytest.mark.parametrize(
    "kw",
    [
        dict(sr=32000, n_fft=1024, n_mels=128, fmin=150.0, fmax=15000.0),
        dict(sr=256000, n_fft=2048, n_mels=64, fmin=10000.0, fmax=120000.0),
        dict(sr=8000, n_fft=256, n_mels=40, fmin=0.0, fmax=4000.0),
    ],
)
def test_mel_filterbank_matches_librosa(kw):
    np.testing.assert_allclose(spec.mel_filterbank(**kw), librosa.filters.mel(**kw), atol=1e-7)


def test_mel_power_matches_librosa():
    y = np.random.default_rng(0).standard_normal((3, 96000)).astype(np.float32)
    kw = dict(sr=32000, n_fft=1024, hop_length=320, n_mels=128, fmin=150.0, fmax=15000.0)
    got = spec.mel_power(y, **kw)
    ref = np.stack([librosa.feature.melspectrogram(y=x, pad_mode="reflect", **kw) for x in y])
    assert got.shape == ref.shape == (3, 128, 301)
    assert np.abs(got - ref).max() / ref.max() < 1e-5


def test_uint8_scale_and_low_frequencies_first():
    sr = 32000
    t = np.arange(3 * sr) / sr
    low = np.sin(2 * np.pi * 500 * t).astype(np.float32)
    high = np.sin(2 * np.pi * 10000 * t).astype(np.float32)
    out = spec.log_mel_uint8(
        np.stack([low, high]), sr=sr, n_fft=1024, hop_length=320, n_mels=128, fmin=150, fmax=15000, top_db=80
    )
    assert out.dtype == np.uint8 and out.shape == (2, 128, 301)
    assert out.max() == 255
    band_low, band_high = out[0].mean(axis=1).argmax(), out[1].mean(axis=1).argmax()
    assert band_low < 30 < 90 < band_high  # row 0 is the lowest frequency
    db = spec.uint8_to_db(out, top_db=80)
    assert db.max() == 0 and db.min() >= -80


def test_silent_clip_is_all_zero():
    out = spec.log_mel_uint8(
        np.zeros((1, 32000), np.float32), sr=32000, n_fft=1024, hop_length=320, n_mels=64, fmin=0, fmax=16000, top_db=80
    )
    assert out.shape == (1, 64, 101)
    assert (out == 0).all()  # silence is dark (-top_db), not a white tile; no structure invented
    # beside a loud clip in the same batch, the silent one stays all 0 and the loud one keeps its range
    clips = np.zeros((2, 32000), np.float32)
    clips[1] = 0.1 * np.random.default_rng(0).normal(size=32000)
    both = spec.log_mel_uint8(clips, sr=32000, n_fft=1024, hop_length=320, n_mels=64, fmin=0, fmax=16000, top_db=80)
    assert (both[0] == 0).all() and both[1].max() == 255 and both[1].min() > 0
