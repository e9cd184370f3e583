"""Step 2 of the build: one recording -> its clips, spectrograms and clip audio, saved under ``work/``.

:func:`process_recording` runs in worker processes and never raises for bad audio (a skipped result
carries a one-line reason). :func:`process_all` runs it over a pool; a recording whose result is
already in ``work/`` is not processed again, which is how a killed build resumes. Output does not
depend on the pool size.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from .collection import (
    Collection,
    atomic_path,
    work_audio_path,
    work_skip_path,
    work_specs_path,
    write_json_atomic,
)
from .config import BuildConfig
from .discover import Source
from .pool import TaskPool
from .progress import CancelCheck, Progress


def process_recording(abs_path: str, work_file: str, cfg_dict: dict[str, Any]) -> dict[str, Any]:
    """Decode one recording, cut clips, compute spectrograms and clip audio; save to ``work_file``.

    Returns a small summary: ``{"status": "ok"|"skipped", "reason", "n_clips", "info", "timings"}``.
    Never raises for bad audio (that becomes ``status="skipped"`` with a one-line reason).
    """
    from .errors import SonomapError

    cfg = BuildConfig.from_dict(cfg_dict)
    t: dict[str, float] = {}
    try:
        return _process(abs_path, work_file, cfg, t)
    except SonomapError as e:
        return {"status": "skipped", "reason": str(e), "n_clips": 0, "info": {}, "timings": t}
    except OSError as e:  # the file changed or vanished while we read it
        return {
            "status": "skipped",
            "reason": f"cannot read the file: {e.strerror or e}",
            "n_clips": 0,
            "info": {},
            "timings": t,
        }
    except MemoryError:
        return {"status": "skipped", "reason": "too long to decode in memory", "n_clips": 0, "info": {}, "timings": t}


def work_key(src: Source, cfg: BuildConfig) -> str:
    """What names a recording's work file: its path, size and mtime, and the config's digest."""
    blob = f"{src.abs_path}|{src.size_bytes}|{src.mtime_ns}|{cfg.digest()}"
    return hashlib.sha1(blob.encode()).hexdigest()[:20]


def plan_work(coll: Collection, new: list[Source], cfg: BuildConfig) -> list[tuple[Source, Path]]:
    """``(source, work file)`` for each new recording, in order."""
    return [(s, coll.work_file(work_key(s, cfg))) for s in new]


def process_all(
    todo: list[tuple[Source, Path]],
    cfg: BuildConfig,
    *,
    pool: TaskPool,
    progress: Progress,
    should_cancel: CancelCheck | None,
) -> list[dict[str, Any]]:
    """Process ``todo`` (source, work file) in the pool; results in the same order.

    A recording whose result is already in ``work/`` (the ``.npz`` written after its audio, or a
    ``.skip.json``) is not processed again: that is how a killed build resumes.
    """
    results: list[dict[str, Any] | None] = [None] * len(todo)
    pending = []
    for i, (_src, wf) in enumerate(todo):
        try:
            if wf.is_file() and work_audio_path(wf).is_file() and work_specs_path(wf).is_file():
                with np.load(wf) as z:
                    results[i] = json.loads(str(z["result"]))
            elif work_skip_path(wf).is_file():
                results[i] = json.loads(work_skip_path(wf).read_text())
        except (OSError, ValueError, KeyError):  # a damaged scratch file: do that recording again
            results[i] = None
        if results[i] is None:
            pending.append(i)
    cfg_dict = cfg.to_dict()

    def saved(k: int, res: dict[str, Any]) -> None:
        i = pending[k]
        if res["status"] != "ok":
            write_json_atomic(work_skip_path(todo[i][1]), res, fsync=False)
        results[i] = res

    pool.run(
        process_recording,
        [(str(todo[i][0].abs_path), str(todo[i][1]), cfg_dict) for i in pending],
        stage="recordings", progress=progress, should_cancel=should_cancel, on_result=saved,
        done=len(todo) - len(pending), total=len(todo), label=lambda k: todo[pending[k]][0].path,
    )  # fmt: skip
    return results  # type: ignore[return-value]


def remove_work(coll: Collection, todo: list[tuple[Source, Path]]) -> None:
    """Delete the build's scratch files (and ``work/`` when it is empty)."""
    for _src, wf in todo:
        wf.unlink(missing_ok=True)
        work_audio_path(wf).unlink(missing_ok=True)
        work_specs_path(wf).unlink(missing_ok=True)
        work_skip_path(wf).unlink(missing_ok=True)
    if coll.work_dir.is_dir():  # temporary files of a worker killed mid-recording (its task ran again)
        for tmp in coll.work_dir.glob(".*.tmp"):
            tmp.unlink(missing_ok=True)
    try:
        coll.work_dir.rmdir()
    except OSError:
        pass


#: Events mode: recordings longer than this (s) are detected over streaming passes, not held whole
#: (the whole recording and its band power cost about 0.5 MB per second of audio at 32 kHz).
EVENTS_WHOLE_MAX_S = 600.0


def _process(abs_path: str, work_file: str, cfg: BuildConfig, t: dict[str, float]) -> dict[str, Any]:
    """The work of :func:`process_recording`; raises :class:`AudioError` for bad audio.

    Fixed windows are cut as the audio streams in (memory does not grow with the recording); events
    mode and ``max_per_recording`` need the whole recording's statistics or length first.
    """
    from .audio import MonoStream, file_sha1
    from .clips import cut_stream, find_clips, fixed_clips
    from .errors import AudioError
    from .npy_append import NpyWriter
    from .spectrogram import log_mel_uint8
    from .sprites import to_int16

    sr = cfg.sample_rate
    t0 = time.perf_counter()
    stream = MonoStream(abs_path, sr=sr)
    sha1, size = file_sha1(abs_path)
    t["open"] = time.perf_counter() - t0
    t["spectrogram"] = 0.0
    spec_kw = dict(
        sr=sr, n_fft=cfg.n_fft, hop_length=cfg.hop_length, n_mels=cfg.n_mels,
        fmin=cfg.fmin, fmax=cfg.fmax, top_db=cfg.top_db,
    )  # fmt: skip
    specs_w = NpyWriter(work_specs_path(work_file), row_shape=(cfg.n_mels, cfg.n_frames), dtype=np.uint8)
    audio_w = NpyWriter(work_audio_path(work_file), row_shape=(), dtype=np.int16)
    lengths_parts: list[np.ndarray] = []

    def emit(_start_s: np.ndarray, clips: np.ndarray, lengths: np.ndarray) -> None:
        t1 = time.perf_counter()
        specs_w.write(log_mel_uint8(clips, **spec_kw))
        t["spectrogram"] += time.perf_counter() - t1
        # audio for the sprites: the real part of each clip (padding is not worth listening to)
        audio_w.write(np.concatenate([to_int16(c[:m]) for c, m in zip(clips, lengths, strict=True)]))
        lengths_parts.append(lengths)

    try:
        t1 = time.perf_counter()
        if cfg.mode == "events" and stream.declared_frames > EVENTS_WHOLE_MAX_S * stream.orig_sample_rate:
            # a long recording: detect over several streaming passes (events_stream), then cut in one more
            from .events_stream import event_clips_streamed

            times = event_clips_streamed(lambda: MonoStream(abs_path, sr=sr), sr=sr, cfg=cfg)
            stream = MonoStream(abs_path, sr=sr)
            cut_stream(stream, sr=sr, cfg=cfg, emit=emit, starts_s=times.start_s)
        elif cfg.mode == "events":  # the noise floor is the whole recording's: detect on it whole
            parts = list(stream)
            y = np.concatenate(parts) if parts else np.zeros(0, np.float32)
            del parts
            times = find_clips(y, sr=sr, cfg=cfg)
            if len(times) == 0:
                raise AudioError(f"no events above the noise floor (event threshold {cfg.event_threshold_db:g} dB)")
            cut_stream(_blocks_of(y), sr=sr, cfg=cfg, emit=emit, starts_s=times.start_s)
            del y
        elif cfg.max_per_recording:  # evenly spaced over the whole length: count it first
            n_samples = sum(len(b) for b in stream)
            times = fixed_clips(n_samples / sr, cfg)
            cut_stream(MonoStream(abs_path, sr=sr), sr=sr, cfg=cfg, emit=emit, starts_s=times.start_s)
        else:
            times = cut_stream(stream, sr=sr, cfg=cfg, emit=emit)
        t["decode+clips"] = time.perf_counter() - t1 - t["spectrogram"]
    except BaseException:
        specs_w.abort()
        audio_w.abort()
        raise
    info = {
        "sha1": sha1,
        "size_bytes": size,
        "duration_s": stream.duration_s,
        "orig_sample_rate": stream.orig_sample_rate,
        "channels": stream.channels,
        "format": stream.format,
        "note": stream.note,
    }
    lengths = np.concatenate(lengths_parts) if lengths_parts else np.zeros(0, np.int64)
    # scratch files, not fsynced: the audio and spectrograms in their own files (memory-mapped later),
    # then the rest; the .npz appears last (atomic rename), so its presence means the recording is done
    audio_w.close()
    specs_w.close()
    result = {"status": "ok", "reason": "", "n_clips": len(times), "info": info, "timings": t}
    with atomic_path(work_file) as tmp:
        with open(tmp, "wb") as f:
            np.savez(
                f, lengths=lengths, start_s=times.start_s, end_s=times.end_s,
                fmin_hz=times.fmin_hz, fmax_hz=times.fmax_hz, result=np.array(json.dumps(result)),
            )  # fmt: skip
    return result


def _blocks_of(y: np.ndarray, block: int = 1 << 20):
    for a in range(0, len(y), block):
        yield y[a : a + block]
