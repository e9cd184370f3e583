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

from .collection import Collection, atomic_path, save_npy_atomic, work_audio_path, work_skip_path, write_json_atomic
from .config import BuildConfig
from .discover import Source
from .pool import TaskPool
from .progress import CancelCheck, Progress


def process_recording(abs_path: str, work_file: str, cfg_dict: dict[str, Any]) -> dict[str, Any]:
    """Decode one recording, cut clips, compute spectrograms and clip audio; save to ``work_file``.

    Returns a small summary: ``{"status": "ok"|"skipped", "reason", "n_clips", "info", "timings"}``.
    Never raises for bad audio (that becomes ``status="skipped"`` with a one-line reason).
    """
    from .audio import decode_mono, file_sha1, resample
    from .clips import cut, find_clips
    from .errors import AudioError, SonomapError
    from .spectrogram import log_mel_uint8
    from .sprites import to_int16

    cfg = BuildConfig.from_dict(cfg_dict)
    sr = cfg.sample_rate
    t: dict[str, float] = {}
    t0 = time.perf_counter()
    try:
        y1, orig_sr, fmt, note, channels = decode_mono(abs_path)
        sha1, size = file_sha1(abs_path)
        t["decode"] = time.perf_counter() - t0
        info = {
            "sha1": sha1,
            "size_bytes": size,
            "duration_s": len(y1) / orig_sr,
            "orig_sample_rate": orig_sr,
            "channels": channels,
            "format": fmt,
            "note": note,
        }
        t1 = time.perf_counter()
        y = resample(y1, orig_sr=orig_sr, target_sr=sr)
        del y1
        t["resample"] = time.perf_counter() - t1
        t1 = time.perf_counter()
        times = find_clips(y, sr=sr, cfg=cfg)
        if len(times) == 0:
            raise AudioError(f"no events above the noise floor (event threshold {cfg.event_threshold_db:g} dB)")
        t["segment"] = time.perf_counter() - t1
        t1 = time.perf_counter()
        specs = np.empty((len(times), cfg.n_mels, cfg.n_frames), np.uint8)
        for a in range(0, len(times), 64):  # cut in batches: a long recording is not copied whole
            batch = cut(y, sr=sr, start_s=times.start_s[a : a + 64], clip_s=cfg.clip_s)
            specs[a : a + 64] = log_mel_uint8(
                batch, sr=sr, n_fft=cfg.n_fft, hop_length=cfg.hop_length, n_mels=cfg.n_mels,
                fmin=cfg.fmin, fmax=cfg.fmax, top_db=cfg.top_db,
            )  # fmt: skip
        t["spectrogram"] = time.perf_counter() - t1
        # audio for the sprites: the real part of each clip (padding is not worth listening to)
        starts = np.rint(times.start_s * sr).astype(np.int64)
        lengths = np.minimum(cfg.clip_samples, len(y) - starts).clip(min=1)
        audio = np.concatenate([to_int16(y[s : s + n]) for s, n in zip(starts, lengths, strict=True)])
        # scratch files, not fsynced: the audio in its own file (sprite writers memory-map it), then the
        # rest; the .npz appears last (atomic rename), so its presence means the recording is done
        save_npy_atomic(work_audio_path(work_file), audio, fsync=False)
        result = {"status": "ok", "reason": "", "n_clips": len(times), "info": info, "timings": t}
        with atomic_path(work_file) as tmp:
            with open(tmp, "wb") as f:
                np.savez(
                    f, specs=specs, lengths=lengths, start_s=times.start_s, end_s=times.end_s,
                    fmin_hz=times.fmin_hz, fmax_hz=times.fmax_hz, result=np.array(json.dumps(result)),
                )  # fmt: skip
        return result
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
            if wf.is_file() and work_audio_path(wf).is_file():
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
        work_skip_path(wf).unlink(missing_ok=True)
    try:
        coll.work_dir.rmdir()
    except OSError:
        pass
