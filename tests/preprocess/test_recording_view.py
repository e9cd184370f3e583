"""The whole-recording view's core: range decoding, tiles, clip boxes, where the original lies."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from preprocess import recording_view as rv
from preprocess.collection import Collection
from preprocess.errors import NotFoundError, ParameterError

REPO = Path(__file__).resolve().parents[2]
SOUNDSCAPE = REPO / "demo" / "recordings" / "soundscape"


@pytest.fixture(scope="module")
def soundscape(make_collection):
    return Collection.open(make_collection(SOUNDSCAPE, name="soundscape", jobs=1))


def test_decode_range_matches_the_whole_file(tmp_path):
    sr = 8000
    t = np.arange(sr * 20) / sr
    y = (0.3 * np.sin(2 * np.pi * (200 + 20 * t) * t)).astype(np.float32)
    path = tmp_path / "chirp.wav"
    sf.write(path, np.stack([y, y], axis=1), sr)
    part = rv.decode_range(path, 7.25, 2.0, sr=sr)
    assert part.shape == (2 * sr,)
    assert np.allclose(part, y[int(7.25 * sr) : int(9.25 * sr)], atol=1e-4)
    # before the start and past the end: zeros, always the asked length
    edge = rv.decode_range(path, -1.0, 2.0, sr=sr)
    assert np.allclose(edge[:sr], 0) and np.allclose(edge[sr:], y[:sr], atol=1e-4)
    tail = rv.decode_range(path, 19.5, 2.0, sr=sr)
    assert tail.shape == (2 * sr,) and np.allclose(tail[sr // 2 :], 0)


def test_tiles_info_and_boxes(soundscape):
    c = soundscape
    info = rv.recording_info(c, 0)
    assert info["duration_s"] == pytest.approx(72.0, abs=0.1) and info["audio_mime"] == "audio/mpeg"
    assert info["tile"]["n_tiles"]["10"] == 8 and info["tile"]["width_px"] == rv.TILE_W_PX
    from PIL import Image

    first = Image.open(rv.tile_path(c, 0, 0, tile_s=10))
    last = Image.open(rv.tile_path(c, 0, 7, tile_s=10))
    assert first.size == (rv.TILE_W_PX, c.manifest()["config"]["n_mels"])
    assert last.size[0] == pytest.approx(rv.TILE_W_PX * 0.2, abs=2)  # the last 2 s of 72
    # neighbouring tiles join: tiles 0 and 1 are the two halves of one spectrogram of 0-20 s, frame for frame
    # (tile 0 exactly; tile 1 up to the MP3 decoder's seek, a few hundredths of a dB)
    from preprocess.config import BuildConfig

    cfg = BuildConfig.from_dict(c.manifest()["config"])
    src = rv.source_path(c, rv.recording_row(c, 0))

    def db(start_s: float, tile_s: int) -> np.ndarray:
        y, n_frames = rv._frames_audio(src, start_s, tile_s, cfg)
        return rv._mel_db(y, cfg, n_frames=n_frames)

    both, halves = db(0.0, 20), [db(0.0, 10), db(10.0, 10)]
    k = both.shape[1] // 2
    assert halves[0].shape[1] == halves[1].shape[1] == k
    np.testing.assert_array_equal(halves[0], both[:, :k])
    seam = np.abs(halves[1] - both[:, k:])
    assert seam.mean() < 0.02 and np.percentile(seam, 99) < 0.1
    # cached: the second call does not render again
    p = rv.tile_path(c, 0, 0, tile_s=10)
    mtime = p.stat().st_mtime_ns
    assert rv.tile_path(c, 0, 0, tile_s=10).stat().st_mtime_ns == mtime
    ref = json.loads((p.parent / "info.json").read_text())
    assert np.isfinite(ref["ref_db"])
    boxes = rv.recording_clips(c, 0)
    assert len(boxes["clip_id"]) == c.n_clips() and boxes["start_s"] == sorted(boxes["start_s"])
    assert all(0 <= a <= b <= 1 for a, b in zip(boxes["y_top"], boxes["y_bottom"], strict=True))
    with pytest.raises(ParameterError, match="allowed"):
        rv.tile_path(c, 0, 0, tile_s=7)
    with pytest.raises(NotFoundError, match="outside the recording"):
        rv.tile_path(c, 0, 8, tile_s=10)
    with pytest.raises(NotFoundError):
        rv.recording_info(c, 5)


def test_source_must_stay_inside_the_inputs(soundscape, tmp_path):
    row = rv.recording_row(soundscape, 0)
    assert rv.source_path(soundscape, row).name == "XC563936 - Soundscape.mp3"
    for evil in ("../../../etc/passwd", "/etc/passwd"):
        with pytest.raises(NotFoundError, match="no longer where"):
            rv.source_path(soundscape, {**row, "path": evil, "size_bytes": None})
    with pytest.raises(NotFoundError):
        rv.source_path(soundscape, {**row, "size_bytes": 1})  # a different file now lies there
