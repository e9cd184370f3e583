"""Streaming decode: recordings read in blocks give the same clips as a whole-file decode, in bounded memory."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from preprocess import audio
from preprocess.clips import cut, cut_stream, fixed_clips
from preprocess.collection import work_audio_path, work_specs_path
from preprocess.config import BuildConfig
from preprocess.spectrogram import log_mel_uint8
from preprocess.sprites import to_int16
from preprocess.worker import process_recording

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "demo" / "recordings"
SOUNDSCAPE = DEMO / "soundscape" / "XC563936 - Soundscape.mp3"
TIT_WAV = DEMO / "Parus major_Great Tit" / "2021-B32-0415_05-11.wav"


@pytest.fixture(scope="module")
def scape() -> tuple[np.ndarray, int]:
    """The demo soundscape (72 s, 48 kHz mono MP3) decoded whole, at its own rate."""
    y, sr = sf.read(SOUNDSCAPE, dtype="float32")
    return y, sr


def _whole_file_clips(y48: np.ndarray, sr48: int, cfg: BuildConfig):
    """What a whole-file decode gives: one-shot resampling, clips cut from the whole array."""
    y = soxr.resample(y48, sr48, cfg.sample_rate, quality="HQ").astype(np.float32)
    times = fixed_clips(len(y) / cfg.sample_rate, cfg)
    clips = cut(y, sr=cfg.sample_rate, start_s=times.start_s, clip_s=cfg.clip_s)
    return y, times, clips


def test_block_resampling_equals_one_shot(tmp_path, scape):
    y48, sr48 = scape
    stream = audio.MonoStream(SOUNDSCAPE, sr=32000, block_frames=5000)  # many block boundaries
    y = np.concatenate(list(stream))
    ref = soxr.resample(y48, sr48, 32000, quality="HQ")
    assert len(y) == len(ref) == stream.n_samples
    assert float(np.max(np.abs(y - ref))) < 1e-5
    assert stream.n_frames == len(y48) and stream.note == "" and stream.channels == 1


@pytest.mark.parametrize(
    ("seconds", "clip_s", "hop_s"),
    [(72.0, 3.0, 3.0), (71.3, 3.0, 1.0), (10.7, 3.0, 2.5), (2.2, 3.0, 3.0), (40.0, 5.0, 7.0)],
)
def test_streamed_fixed_clips_equal_whole_file(scape, seconds, clip_s, hop_s):
    y48, sr48 = scape
    cfg = BuildConfig(clip_s=clip_s, hop_s=hop_s, mode="fixed")
    y, times, clips = _whole_file_clips(y48[: int(seconds * sr48)], sr48, cfg)
    got_s, got_clips, got_len = [], [], []

    def emit(s, c, n):
        got_s.append(s), got_clips.append(c), got_len.append(n)

    blocks = (y[a : a + 7777] for a in range(0, len(y), 7777))
    streamed = cut_stream(blocks, sr=cfg.sample_rate, cfg=cfg, emit=emit)
    np.testing.assert_array_equal(streamed.start_s, times.start_s)
    np.testing.assert_array_equal(np.concatenate(got_s), times.start_s)
    np.testing.assert_array_equal(np.concatenate(got_clips), clips)
    starts = np.rint(times.start_s * cfg.sample_rate).astype(np.int64)
    np.testing.assert_array_equal(np.concatenate(got_len), np.minimum(cfg.clip_samples, len(y) - starts).clip(min=1))


def test_streamed_clips_at_given_sparse_starts_equal_cut(scape):
    """Known starts far apart (events): gaps longer than a block are skipped without losing the position."""
    y48, sr48 = scape
    cfg = BuildConfig(mode="fixed")
    y = soxr.resample(y48, sr48, cfg.sample_rate, quality="HQ").astype(np.float32)
    starts = np.array([0.5, 0.5, 1.7, 40.25, 62.155, 70.0, 71.5])
    got = []
    blocks = (y[a : a + 20_000] for a in range(0, len(y), 20_000))
    cut_stream(blocks, sr=cfg.sample_rate, cfg=cfg, emit=lambda s, c, n: got.append(c), starts_s=starts)
    np.testing.assert_array_equal(np.concatenate(got), cut(y, sr=cfg.sample_rate, start_s=starts, clip_s=cfg.clip_s))


def _tiled_wav(path: Path, y: np.ndarray, sr: int, seconds: float, subtype: str = "PCM_16") -> Path:
    """A long WAV made of a real recording repeated, written block by block (never whole in memory)."""
    n = int(seconds * sr)
    with sf.SoundFile(path, "w", samplerate=sr, channels=1, subtype=subtype, format=path.suffix[1:].upper()) as f:
        done = 0
        while done < n:
            part = y[: min(len(y), n - done)]
            f.write(part)
            done += len(part)
    return path


def test_worker_streams_the_same_clips_as_a_whole_file_decode(tmp_path, scape):
    y48, sr48 = scape
    src = _tiled_wav(tmp_path / "long.wav", y48, sr48, 190.0, subtype="FLOAT")
    cfg = BuildConfig(mode="fixed")
    y_whole, _sr = sf.read(src, dtype="float32")
    y, times, clips = _whole_file_clips(y_whole, sr48, cfg)
    wf = tmp_path / "rec_x.npz"
    res = process_recording(str(src), str(wf), cfg.to_dict())
    assert res["status"] == "ok" and res["n_clips"] == len(times)
    with np.load(wf) as z:
        np.testing.assert_array_equal(z["start_s"], times.start_s)
    specs = np.load(work_specs_path(wf))
    kw = dict(n_fft=cfg.n_fft, hop_length=cfg.hop_length, n_mels=cfg.n_mels, fmin=cfg.fmin, fmax=cfg.fmax)
    ref = log_mel_uint8(clips, sr=cfg.sample_rate, top_db=cfg.top_db, **kw)
    # streamed and one-shot resampling differ by < 1e-5 near block joins: at most a rounding step of uint8
    assert int(np.abs(specs.astype(int) - ref.astype(int)).max()) <= 1
    assert float(np.mean(specs == ref)) > 0.999
    audio_i16 = np.load(work_audio_path(wf))
    starts = np.rint(times.start_s * cfg.sample_rate).astype(np.int64)
    ref_audio = np.concatenate([to_int16(y[s : s + cfg.clip_samples]) for s in starts])
    assert len(audio_i16) == len(ref_audio) and int(np.abs(audio_i16.astype(int) - ref_audio).max()) <= 1


def test_flac_cut_short_keeps_what_decodes(tmp_path, scape):
    y48, sr48 = scape
    full = tmp_path / "full.flac"
    sf.write(full, y48, sr48)
    cut_file = tmp_path / "cut.flac"
    cut_file.write_bytes(full.read_bytes()[:200_000])
    y, info = audio.load(cut_file, sr=32000)
    assert 0.5 < info.duration_s < 72 and len(y) > 0
    assert re.fullmatch(r"truncated: decoded \d\.\d\d s of 7[12]\.\d\d s \(.*lost sync.*\)", info.note), info.note
    res = process_recording(str(cut_file), str(tmp_path / "rec_c.npz"), BuildConfig(mode="fixed").to_dict())
    assert res["status"] == "ok" and res["n_clips"] >= 1 and res["info"]["note"].startswith("truncated")


def test_wav_whose_header_claims_more_gets_a_note(tmp_path):
    y, sr = sf.read(TIT_WAV, dtype="float32")
    ten_min = _tiled_wav(tmp_path / "ten.wav", y, sr, 600.0)
    one_s = tmp_path / "one.wav"
    data = ten_min.read_bytes()
    header = sf.info(ten_min)
    assert header.frames == 600 * sr
    one_s.write_bytes(data[: 44 + sr * 2])  # header still says 10 minutes; 1 s of 16-bit samples follows
    y1, info = audio.load(one_s, sr=32000)
    assert abs(info.duration_s - 1.0) < 0.01
    assert info.note == "truncated: decoded 1.00 s of 600.00 s"
    _y, intact = audio.load(ten_min, sr=32000)
    assert intact.note == ""


def test_truncated_mp3_still_noted(tmp_path):
    data = SOUNDSCAPE.read_bytes()
    half = tmp_path / "half.mp3"
    half.write_bytes(data[: len(data) // 2])
    _y, info = audio.load(half, sr=32000)
    assert info.note.startswith("truncated: decoded")


# VmHWM, not getrusage's ru_maxrss: Linux keeps ru_maxrss across fork + exec, so a child of a large pytest process
# would report the parent's size
_PEAK = """
import json, sys, time
from preprocess.config import BuildConfig
from preprocess.worker import process_recording
def hwm_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
t = time.perf_counter()
res = process_recording(sys.argv[1], sys.argv[2], BuildConfig(mode="fixed").to_dict())
print(json.dumps({"status": res["status"], "n_clips": res["n_clips"], "reason": res["reason"],
                  "peak_mb": hwm_kb() / 1024, "s": time.perf_counter() - t}))
"""


def peak_memory_of_worker(src: Path, work_file: Path) -> dict:
    """Run :func:`process_recording` on ``src`` in a fresh process; its result and peak RSS in MB."""
    out = subprocess.run(
        [sys.executable, "-c", _PEAK, str(src), str(work_file)], capture_output=True, text=True, cwd=REPO, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["wav", "flac"])
def test_hour_long_recording_builds_in_bounded_memory(tmp_path, scape, fmt):
    """One hour of 48 kHz mono (the demo soundscape repeated): the worker's peak memory stays far below
    what a whole-file decode needs (~0.6 MB per second of audio, 2.2 GB for this file)."""
    y48, sr48 = scape
    src = _tiled_wav(tmp_path / f"hour.{fmt}", y48, sr48, 3600.0)
    got = peak_memory_of_worker(src, tmp_path / "rec_h.npz")
    assert got["status"] == "ok" and got["n_clips"] == 1200, got
    assert got["peak_mb"] < 1500, got


# --- events over streaming passes ---------------------------------------------------------------


def _blocks(y: np.ndarray, size: int):
    return lambda: (y[a : a + size] for a in range(0, len(y), size))


@pytest.mark.parametrize("block", [1 << 20, 30_001])
def test_streamed_event_detection_equals_whole_file(scape, block):
    from preprocess.clips import event_clips
    from preprocess.events_stream import event_clips_streamed

    y48, sr48 = scape
    y = soxr.resample(np.tile(y48, 2)[: int(100 * sr48)], sr48, 32000, quality="HQ").astype(np.float32)
    cfg = BuildConfig(mode="events")
    ref = event_clips(y, sr=32000, cfg=cfg)
    got = event_clips_streamed(_blocks(y, block), sr=32000, cfg=cfg)
    assert len(ref) > 10
    for k in ("start_s", "end_s", "fmin_hz", "fmax_hz"):
        np.testing.assert_array_equal(getattr(got, k), getattr(ref, k))


def test_streamed_event_fallback_equals_whole_file():
    """Steady noise has no event: both give the same strongest windows (maths, so synthetic)."""
    from preprocess.clips import event_clips
    from preprocess.events_stream import event_clips_streamed

    y = np.random.default_rng(1).normal(scale=0.05, size=20 * 32000).astype(np.float32)
    cfg = BuildConfig(mode="events")
    ref = event_clips(y, sr=32000, cfg=cfg)
    got = event_clips_streamed(_blocks(y, 50_000), sr=32000, cfg=cfg)
    assert len(ref) == 3
    for k in ("start_s", "end_s", "fmin_hz", "fmax_hz"):
        np.testing.assert_array_equal(getattr(got, k), getattr(ref, k))


def test_worker_streams_events_of_a_long_recording_like_a_short_one(tmp_path, monkeypatch):
    from preprocess import worker

    cfg = BuildConfig(mode="events").to_dict()
    whole = process_recording(str(SOUNDSCAPE), str(tmp_path / "rec_w.npz"), cfg)
    monkeypatch.setattr(worker, "EVENTS_WHOLE_MAX_S", 10.0)  # the 72-s soundscape now counts as long
    streamed = process_recording(str(SOUNDSCAPE), str(tmp_path / "rec_s.npz"), cfg)
    assert whole["status"] == streamed["status"] == "ok" and whole["n_clips"] == streamed["n_clips"] > 5
    with np.load(tmp_path / "rec_w.npz") as a, np.load(tmp_path / "rec_s.npz") as b:
        for k in ("start_s", "fmin_hz", "fmax_hz", "lengths"):
            np.testing.assert_array_equal(a[k], b[k])
    for path in (work_specs_path, work_audio_path):
        assert path(tmp_path / "rec_w.npz").read_bytes() == path(tmp_path / "rec_s.npz").read_bytes()
