"""The core build: a folder of recordings -> a collection (clips, spectrograms, sprite sheets, audio sprites).

:func:`build` is what ``python -m preprocess build`` runs (features and maps are separate steps).

1. Discover audio files recursively (content decides the format later), sorted by path.
2. Compare with the collection's manifest: files already built (same path) are left alone, so a
   re-run is a no-op and new files are appended with new, higher clip ids.
3. Each new recording is processed by :func:`process_recording` in a process pool: decode, mix,
   resample, find clips, log-mel spectrograms, clip audio. Each result is saved under ``work/`` first,
   so a build killed with ``kill -9`` resumes from there. Output does not depend on the pool size.
4. Assemble in path order: spectrograms.npy, sprite sheets, audio sprites, tables, skipped.csv, and
   the manifest last.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .audio import AUDIO_EXTENSIONS, sniff_format
from .collection import SCHEMA_VERSION, Collection, write_json_atomic
from .config import BuildConfig
from .errors import ParameterError
from .metadata import MetadataResolver
from .pool import TaskPool, cpu_count
from .progress import CancelCheck, Progress, check_cancel, no_progress

#: Extensions never worth opening when looking for audio.
_NOT_AUDIO = {".csv", ".md", ".txt", ".json", ".jpg", ".jpeg", ".png", ".pdf", ".py", ".html", ".xml", ".zip"}


@dataclass
class Source:
    """One file found in the input."""

    path: str  # relative (posix) path as stored in recordings.parquet
    abs_path: Path
    meta_path: str  # path relative to its own input folder (for the labels CSV)
    size_bytes: int
    mtime_ns: int


@dataclass
class BuildResult:
    """What a build did (the CLI prints it; tests assert on it)."""

    collection: Path
    recordings: int = 0
    clips: int = 0
    audio_s: float = 0.0
    new_recordings: int = 0
    new_clips: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason), this build's new ones
    skipped_total: int = 0
    notes: list[str] = field(default_factory=list)
    noop: bool = False
    elapsed_s: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage, summed over workers
    jobs: int = 1

    @property
    def message(self) -> str:
        if self.noop:
            return f"nothing to do: all {self.recordings} recordings are already in {self.collection} (up to date)"
        return (
            f"{self.recordings} recordings ({self.new_recordings} new), {self.clips} clips ({self.new_clips} new), "
            f"{self.audio_s / 3600:.2f} h of audio, {self.skipped_total} skipped"
        )


# ---------------------------------------------------------------------------------------------
# discovery and checks


def check_paths(inputs: list[Path | str], out: Path | str) -> tuple[list[Path], Path]:
    """Resolve inputs and output; refuse missing inputs and an output inside an input."""
    if not inputs:
        raise ParameterError("no INPUT given: name at least one folder or audio file")
    ins = []
    for p in inputs:
        rp = Path(p).expanduser().resolve()
        if not rp.exists():
            raise ParameterError(f"input {p} does not exist")
        ins.append(rp)
    rout = Path(out).expanduser().resolve()
    for rp in ins:
        if rp.is_dir() and (rout == rp or rp in rout.parents):
            raise ParameterError(
                f"--out {out} is inside the input folder {rp}; choose an output folder outside the input "
                "(the build would read its own files)"
            )
    if rout.exists() and not rout.is_dir():
        raise ParameterError(f"--out {out} exists and is not a folder")
    return ins, rout


def discover(inputs: list[Path]) -> list[Source]:
    """Audio files under ``inputs`` (recursively, hidden files skipped), sorted by stored path."""
    multi = len(inputs) > 1
    found: dict[str, Source] = {}
    for root in inputs:
        if root.is_file():
            files, base = [root], root.parent
        else:
            files, base = [], root
            for dirpath, dirnames, filenames in os.walk(root):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                files.extend(Path(dirpath) / f for f in filenames if not f.startswith("."))
        for f in files:
            if not _looks_like_audio(f):
                continue
            rel = f.relative_to(base).as_posix()
            path = f"{root.name}/{rel}" if multi and root.is_dir() else rel
            try:
                st = f.stat()
            except OSError:
                st = None
            found.setdefault(path, Source(path, f, rel, st.st_size if st else -1, st.st_mtime_ns if st else 0))
    return [found[k] for k in sorted(found)]


def _looks_like_audio(f: Path) -> bool:
    ext = f.suffix.lower()
    if ext in AUDIO_EXTENSIONS:
        return True
    if ext in _NOT_AUDIO:
        return False
    try:
        with open(f, "rb") as fh:
            return sniff_format(fh.read(64)) is not None
    except OSError:
        return False


def resolve_config(out: Path | str, overrides: dict[str, Any] | None = None) -> BuildConfig:
    """The config for building into ``out``: the existing collection's, or defaults, with ``overrides``.

    Raises :class:`ParameterError` if ``overrides`` contradict the config an existing collection was
    built with (its clips would not match), naming the differing options.
    """
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    manifest = Path(out) / "manifest.json"
    if manifest.is_file():
        old = BuildConfig.from_dict(Collection(Path(out)).manifest().get("config", {}))
        cfg = old.replace(**overrides) if overrides else old
        diff = [k for k in overrides if getattr(cfg, k) != getattr(old, k)]
        if diff:
            was = ", ".join(f"--{k.replace('_', '-')} {getattr(old, k)}" for k in diff)
            raise ParameterError(
                f"{out} was built with {was}; its clips would not match. Re-run without those options, "
                "or build into a new --out folder"
            )
        return old
    return BuildConfig(**overrides)


# ---------------------------------------------------------------------------------------------
# per-recording work (runs in worker processes)


def process_recording(abs_path: str, work_file: str, cfg_dict: dict[str, Any]) -> dict[str, Any]:
    """Decode one recording, cut clips, compute spectrograms and clip audio; save to ``work_file``.

    Returns a small summary: ``{"status": "ok"|"skipped", "reason", "n_clips", "info", "timings"}``.
    Never raises for bad audio (that becomes ``status="skipped"`` with a one-line reason).
    """
    from .audio import decode_mono, file_sha1, resample
    from .clips import cut, find_clips
    from .collection import atomic_path, save_npy_atomic
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
            raise AudioError(f"no events above the noise floor (--event-threshold-db {cfg.event_threshold_db:g})")
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
        save_npy_atomic(audio_file(work_file), audio, fsync=False)
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


def _work_key(src: Source, cfg: BuildConfig) -> str:
    blob = f"{src.abs_path}|{src.size_bytes}|{src.mtime_ns}|{cfg.digest()}"
    return hashlib.sha1(blob.encode()).hexdigest()[:20]


def _refresh_metadata(coll: Collection, resolver: MetadataResolver, found: list[Source]) -> int:
    """Re-read labels and xeno-canto metadata for every recording (a fixed labels CSV needs no rebuild).

    Rewrites recordings.parquet only when something changed; returns the number of recordings changed.
    """
    recs = coll.recordings()
    meta_path = {s.path: s.meta_path for s in found}
    changed = 0
    for i, path in enumerate(recs["path"]):
        if path not in meta_path:
            continue
        md = resolver.resolve(meta_path[path])
        row = recs.iloc[i]
        diff = {c: v for c, v in md.items() if not (row[c] == v or (v != v and row[c] != row[c]))}
        if diff:
            changed += 1
            for c, v in diff.items():
                recs.at[i, c] = v
    if changed:
        from .collection import write_table_atomic

        write_table_atomic(coll.recordings_path, recs[list(recs.columns)])
        manifest = coll.manifest()
        manifest["updated"] = now_iso()
        manifest.setdefault("stages", {})["metadata"] = manifest["updated"]
        write_json_atomic(coll.manifest_path, manifest)
    return changed


def audio_file(work_file: Path | str) -> Path:
    """The clip audio (int16, concatenated) saved beside a recording's work file."""
    return Path(work_file).with_suffix(".audio.npy")


def skip_file(work_file: Path | str) -> Path:
    """Why a recording was skipped, saved beside where its work file would be."""
    return Path(work_file).with_suffix(".skip.json")


def _process_all(
    todo: list[tuple[Source, Path]],
    cfg: BuildConfig,
    *,
    pool: TaskPool,
    progress: Progress,
    should_cancel: CancelCheck | None,
) -> list[dict[str, Any]]:
    """Process ``todo`` (source, work file) in the pool; results in the same order.

    A recording whose result is already in ``work/`` (a marker ``.json`` written after its files) is
    not processed again: that is how a killed build resumes.
    """
    results: list[dict[str, Any] | None] = [None] * len(todo)
    pending = []
    for i, (_src, wf) in enumerate(todo):
        try:
            if wf.is_file() and audio_file(wf).is_file():
                with np.load(wf) as z:
                    results[i] = json.loads(str(z["result"]))
            elif skip_file(wf).is_file():
                results[i] = json.loads(skip_file(wf).read_text())
        except (OSError, ValueError, KeyError):  # a damaged scratch file: do that recording again
            results[i] = None
        if results[i] is None:
            pending.append(i)
    cfg_dict = cfg.to_dict()

    def saved(k: int, res: dict[str, Any]) -> None:
        i = pending[k]
        if res["status"] != "ok":
            write_json_atomic(skip_file(todo[i][1]), res, fsync=False)
        results[i] = res

    pool.run(
        process_recording,
        [(str(todo[i][0].abs_path), str(todo[i][1]), cfg_dict) for i in pending],
        stage="recordings", progress=progress, should_cancel=should_cancel, on_result=saved,
        done=len(todo) - len(pending), total=len(todo), label=lambda k: todo[pending[k]][0].path,
    )  # fmt: skip
    return results  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------
# the build


def build(
    inputs: list[Path | str] | Path | str,
    out: Path | str,
    *,
    config: BuildConfig | None = None,
    labels_csv: Path | str | None = None,
    xc_json: list[Path | str] | tuple = (),
    jobs: int | None = None,
    keep_work: bool = False,
    progress: Progress | None = None,
    should_cancel: CancelCheck | None = None,
    scheduler: str | None = None,
) -> BuildResult:
    """Build (or extend) the collection at ``out`` from audio files under ``inputs``.

    ``config=None`` reuses the existing collection's config, or the defaults for a new one. ``jobs``
    is the number of worker processes (default: every core). ``scheduler`` runs the per-recording
    work on a Dask cluster instead (:mod:`preprocess.distributed`; same output). Returns a :class:`BuildResult`.
    """
    from .assemble import assemble

    t_start = time.perf_counter()
    progress = progress or no_progress
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    ins, root = check_paths(list(inputs), out)
    if config is None:
        config = resolve_config(root)
    else:
        existing = resolve_config(root)
        if (root / "manifest.json").is_file() and existing.to_dict() != config.to_dict():
            diff = [k for k, v in config.to_dict().items() if existing.to_dict().get(k) != v]
            raise ParameterError(
                f"{out} was built with a different config ({', '.join(diff)}); build into a new --out folder"
            )
    resolver = MetadataResolver(labels_csv=labels_csv, xc_json=xc_json)
    jobs = max(1, int(jobs or cpu_count()))
    coll = Collection(root)
    old = coll.manifest() if coll.manifest_path.is_file() else None
    old_sources = {s["path"]: s for s in (old or {}).get("sources", [])}

    progress("discover", 0, 0, "looking for audio files")
    found = discover(ins)
    progress("discover", len(found), len(found), f"{len(found)} audio files")
    result = BuildResult(collection=root, jobs=jobs)
    new: list[Source] = []
    for src in found:
        prev = old_sources.get(src.path)
        if prev is None:
            new.append(src)
        elif prev.get("size") != src.size_bytes:
            if prev.get("status") == "ok":
                result.notes.append(f"{src.path} changed since it was built; kept its earlier clips")
            else:
                new.append(src)  # a skipped file that changed gets another chance
    missing = len({p for p, s in old_sources.items() if s.get("status") == "ok"} - {s.path for s in found})
    if missing:
        result.notes.append(f"{missing} recordings of the collection are no longer in the input; their clips are kept")
    if old and not new:
        counts = old.get("counts", {})
        result.recordings, result.clips = counts.get("recordings", 0), counts.get("clips", 0)
        result.audio_s, result.skipped_total = counts.get("audio_s", 0.0), counts.get("skipped", 0)
        result.noop = True
        if labels_csv or xc_json:
            n = _refresh_metadata(coll, resolver, found)
            if n:
                result.notes.append(f"updated the labels/metadata of {n} recordings from the given files")
        result.elapsed_s = time.perf_counter() - t_start
        return result
    if not found and not old:
        raise ParameterError(
            f"no audio files found in {', '.join(map(str, ins))} (looked for {', '.join(AUDIO_EXTENSIONS)})"
        )

    work = coll.work_dir
    work.mkdir(parents=True, exist_ok=True)
    todo = [(s, work / f"rec_{_work_key(s, config)}.npz") for s in new]
    if scheduler:  # the same interface on a Dask cluster
        from .distributed import DaskPool

        executor: Any = DaskPool(scheduler, jobs=jobs)
    else:
        executor = TaskPool(jobs)
    with executor as pool:
        results = _process_all(todo, config, pool=pool, progress=progress, should_cancel=should_cancel)
        for res in results:
            for k, v in res.get("timings", {}).items():
                result.timings[k] = result.timings.get(k, 0.0) + v
        check_cancel(should_cancel)
        assemble(
            coll, config=config, old=old, todo=todo, results=results, resolver=resolver, inputs=ins,
            result=result, pool=pool, progress=progress, should_cancel=should_cancel,
        )  # fmt: skip
    if not keep_work:
        for _src, wf in todo:
            wf.unlink(missing_ok=True)
            audio_file(wf).unlink(missing_ok=True)
            skip_file(wf).unlink(missing_ok=True)
        try:
            work.rmdir()
        except OSError:
            pass
    result.elapsed_s = time.perf_counter() - t_start
    return result


def now_iso() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def manifest_header(old: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "tool_version": __version__,
        "created": (old or {}).get("created") or now_iso(),
        "updated": now_iso(),
    }
