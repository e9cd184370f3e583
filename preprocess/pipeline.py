"""The core build: a folder of recordings -> a collection (clips, spectrograms, sprite sheets, audio sprites).

:func:`build` is what ``python -m preprocess build`` runs (features and maps are separate steps). It
chains the build's seams, each its own module:

1. :mod:`preprocess.discover`: audio files under the inputs, sorted by path.
2. Compare with the collection's manifest: files already built (same path) are left alone, so a
   re-run is a no-op and new files are appended with new, higher clip ids.
3. :mod:`preprocess.worker`: each new recording in a process pool (decode, mix, resample, find clips,
   log-mel spectrograms, clip audio), saved under ``work/`` first, so a build killed with ``kill -9``
   resumes from there. Output does not depend on the pool size.
4. :mod:`preprocess.assemble`: a pure plan of what to append, then writers in path order:
   skipped files, spectrograms, sprite sheets, audio sprites, tables, and the manifest last.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .assemble import AssembleResult, assemble, plan_append, read_old
from .audio import AUDIO_EXTENSIONS
from .collection import Collection, write_json_atomic, write_table_atomic
from .config import BuildConfig
from .discover import Source, check_paths, discover
from .errors import ParameterError
from .metadata import MetadataResolver
from .pool import TaskPool, cpu_count
from .progress import CancelCheck, Progress, check_cancel, no_progress
from .schema import manifest_header, now_iso
from .worker import plan_work, process_all, process_recording, remove_work

__all__ = [
    "BuildResult", "Source", "build", "check_paths", "discover", "manifest_header", "now_iso",
    "process_recording", "resolve_config",
]  # fmt: skip


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


def resolve_config(out: Path | str, overrides: dict[str, Any] | None = None) -> BuildConfig:
    """The config for building into ``out``: the existing collection's, or defaults, with ``overrides``.

    Raises :class:`ParameterError` if ``overrides`` contradict the config an existing collection was
    built with (its clips would not match), naming the differing options.
    """
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    coll = Collection(Path(out))
    if coll.exists():
        old = BuildConfig.from_dict(coll.manifest().get("config", {}))
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


def _refresh_metadata(coll: Collection, resolver: MetadataResolver, found: list[Source]) -> int:
    """Re-read labels and xeno-canto metadata for every recording (a fixed labels CSV needs no rebuild).

    Rewrites recordings.parquet only when something changed; returns the number of recordings changed.
    """
    recs = coll.recordings()
    meta_path = {s.path: s.meta_path for s in found}
    abs_path = {s.path: s.abs_path for s in found}
    changed = 0
    for i, path in enumerate(recs["path"]):
        if path not in meta_path:
            continue
        md = resolver.resolve(meta_path[path], abs_path[path])
        row = recs.iloc[i]
        diff = {c: v for c, v in md.items() if not (row[c] == v or (v != v and row[c] != row[c]))}
        if diff:
            changed += 1
            for c, v in diff.items():
                recs.at[i, c] = v
    if changed:
        write_table_atomic(coll.recordings_path, recs[list(recs.columns)])
        manifest = coll.manifest()
        manifest["updated"] = now_iso()
        manifest.setdefault("stages", {})["metadata"] = manifest["updated"]
        write_json_atomic(coll.manifest_path, manifest)
    return changed


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
    t_start = time.perf_counter()
    progress = progress or no_progress
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    ins, root = check_paths(list(inputs), out)
    if config is None:
        config = resolve_config(root)
    else:
        existing = resolve_config(root)
        if Collection(root).exists() and existing.to_dict() != config.to_dict():
            diff = [k for k, v in config.to_dict().items() if existing.to_dict().get(k) != v]
            raise ParameterError(
                f"{out} was built with a different config ({', '.join(diff)}); build into a new folder"
            )
    resolver = MetadataResolver(labels_csv=labels_csv, xc_json=xc_json)
    jobs = max(1, int(jobs or cpu_count()))
    coll = Collection(root)
    old = coll.manifest() if coll.exists() else None
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

    old_state = read_old(coll)
    coll.work_dir.mkdir(parents=True, exist_ok=True)
    todo = plan_work(coll, new, config)
    if scheduler:  # the same interface on a Dask cluster
        from .distributed import DaskPool

        executor: Any = DaskPool(scheduler, jobs=jobs)
    else:
        executor = TaskPool(jobs)
    with executor as pool:
        results = process_all(todo, config, pool=pool, progress=progress, should_cancel=should_cancel)
        for res in results:
            for k, v in res.get("timings", {}).items():
                result.timings[k] = result.timings.get(k, 0.0) + v
        check_cancel(should_cancel)
        plan = plan_append(old_state, todo, results)
        done = assemble(
            coll, plan, old=old_state, config=config, resolver=resolver, inputs=ins,
            pool=pool, progress=progress, should_cancel=should_cancel,
        )  # fmt: skip
    _take(result, done)
    if not keep_work:
        remove_work(coll, todo)
    result.elapsed_s = time.perf_counter() - t_start
    return result


def _take(result: BuildResult, done: AssembleResult) -> None:
    """Copy what assembling wrote into the build's result (notes after the build's own)."""
    result.notes.extend(done.notes)
    result.skipped.extend(done.skipped)
    result.new_recordings, result.new_clips = done.new_recordings, done.new_clips
    result.recordings, result.clips = done.recordings, done.clips
    result.skipped_total, result.audio_s = done.skipped_total, done.audio_s
