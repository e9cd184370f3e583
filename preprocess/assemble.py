"""Step 3 of the build: per-recording results (``work/``) -> the collection's files, manifest last.

:func:`plan_append` is pure: from the old manifest, the old recordings' checksums and this build's
results it decides what to append (usable recordings, duplicates and failures skipped, new counts).
The writers below then write one artefact each through the store and return what they wrote;
:func:`assemble` runs them in order and returns an :class:`AssembleResult`.

Appends to an existing collection without touching its clips: the old state is the manifest's counts
(rows past them, left by a killed build, are dropped and redone), new recordings get the next ids,
new clips the next clip ids, new audio sprites the next numbers; sprite sheets are re-drawn from the
first sheet that gains cells.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .collection import (
    Collection,
    work_audio_path,
    work_specs_path,
    write_json_atomic,
    write_table_atomic,
)
from .config import BuildConfig
from .discover import Source
from .errors import CollectionError
from .metadata import MetadataResolver
from .pool import TaskPool
from .progress import CancelCheck, Progress, check_cancel
from .schema import CLIP_DTYPES, RECORDING_COLUMNS, SKIPPED_COLUMNS, manifest_header, now_iso, recording_dtypes

__all__ = ["RECORDING_COLUMNS", "AppendPlan", "AssembleResult", "OldState", "assemble", "plan_append", "read_old"]


@dataclass(frozen=True)
class AppendPlan:
    """What a build appends: decided before anything is written."""

    usable: list[tuple[Source, Path, dict[str, Any]]]  # (source, work file, result) of new usable recordings
    sources: list[dict[str, Any]]  # the manifest's sources after this build, sorted by path
    skipped_rows: list[tuple[str, str]]  # skipped.csv after this build: (path, reason)
    new_skipped: list[tuple[str, str]]  # this build's new skipped files
    notes: list[str]  # decoder notes of the new usable recordings
    n_rec_old: int
    n_clip_old: int
    n_sprites_old: int
    n_new_clips: int

    @property
    def n_recordings(self) -> int:
        return self.n_rec_old + len(self.usable)

    @property
    def n_clips(self) -> int:
        return self.n_clip_old + self.n_new_clips


@dataclass(frozen=True)
class AssembleResult:
    """What assembling wrote (the counts after it)."""

    recordings: int
    clips: int
    new_recordings: int
    new_clips: int
    skipped: list[tuple[str, str]] = field(default_factory=list)
    skipped_total: int = 0
    notes: list[str] = field(default_factory=list)
    audio_s: float = 0.0


def plan_append(
    old_state: OldState,
    todo: list[tuple[Source, Path]],
    results: list[dict[str, Any]],
) -> AppendPlan:
    """Which new recordings are usable (a duplicate of a known file, by SHA-1, is skipped); pure.

    ``results`` are the worker's, in ``todo`` order.
    """
    old = old_state.manifest
    counts = (old or {}).get("counts", {})
    sources = {s["path"]: s for s in (old or {}).get("sources", [])}
    known = old_state.known_sha1
    usable, new_skipped, notes = [], [], []
    for (src, wf), res in zip(todo, results, strict=True):
        info = res.get("info", {})
        entry = {"path": src.path, "size": src.size_bytes, "sha1": info.get("sha1", ""), "status": res["status"]}
        if res["status"] == "ok" and info["sha1"] in known:
            res = {**res, "status": "skipped", "reason": f"duplicate of {known[info['sha1']]}"}
            entry["status"] = "skipped"
        if res["status"] == "ok":
            known[info["sha1"]] = src.path
            usable.append((src, wf, res))
            if info.get("note"):
                notes.append(f"{src.path}: {info['note']}")
        else:
            entry["reason"] = res["reason"]
            new_skipped.append((src.path, res["reason"]))
        sources[src.path] = entry
    sources_list = [sources[k] for k in sorted(sources)]
    return AppendPlan(
        usable=usable,
        sources=sources_list,
        skipped_rows=[(s["path"], s.get("reason", "")) for s in sources_list if s["status"] != "ok"],
        new_skipped=new_skipped,
        notes=notes,
        n_rec_old=int(counts.get("recordings", 0)),
        n_clip_old=int(counts.get("clips", 0)),
        n_sprites_old=int(counts.get("audio_sprites", 0)),
        n_new_clips=sum(r["n_clips"] for _s, _w, r in usable),
    )


@dataclass(frozen=True)
class OldState:
    """The collection before this build: its manifest (None when new) and recordings up to its counts.

    The clip table is not read: a build only appends to it (:meth:`Collection.append_clips`)."""

    manifest: dict[str, Any] | None
    recordings: Any  # DataFrame of RECORDING_COLUMNS

    @property
    def known_sha1(self) -> dict[str, str]:
        """SHA-1 -> path of the recordings already in the collection."""
        return {row.sha1: row.path for row in self.recordings.itertuples()}


def read_old(coll: Collection) -> OldState:
    """The collection's state before a build; rows past the manifest's counts (a killed build's) are dropped."""
    import pandas as pd

    old = coll.manifest() if coll.exists() else None
    counts = (old or {}).get("counts", {})
    n_rec_old, n_clip_old = int(counts.get("recordings", 0)), int(counts.get("clips", 0))
    recs = coll.recordings().iloc[:n_rec_old] if n_rec_old else pd.DataFrame(columns=list(RECORDING_COLUMNS))
    if n_clip_old and (n_rows := coll.clip_rows()) < n_clip_old:
        raise CollectionError(f"{coll.clips_path} has {n_rows} clips, the manifest says {n_clip_old}")
    return OldState(old, recs)


# ---------------------------------------------------------------------------------------------
# writers: one artefact each


def write_skipped(coll: Collection, plan: AppendPlan) -> int:
    """The skipped table (``skipped_path``); returns its number of rows."""
    import pandas as pd

    write_table_atomic(coll.skipped_path, pd.DataFrame(plan.skipped_rows, columns=list(SKIPPED_COLUMNS)))
    return len(plan.skipped_rows)


def write_spectrograms(coll: Collection, plan: AppendPlan, cfg: BuildConfig, progress: Progress) -> tuple[int, ...]:
    """The spectrograms (``spectrograms_path``): the new rows appended in place after the old; returns its shape."""
    usable = plan.usable
    progress("spectrograms", 0, len(usable), "")

    def blocks():
        for k, (_src, wf, _res) in enumerate(usable):
            specs = np.load(work_specs_path(wf), mmap_mode="r")
            for a in range(0, len(specs), 4096):
                yield specs[a : a + 4096]
            del specs
            progress("spectrograms", k + 1, len(usable), "")

    shape = coll.append_spectrograms(blocks(), n_keep=plan.n_clip_old, row_shape=(cfg.n_mels, cfg.n_frames))
    if shape[0] != plan.n_clips:
        raise CollectionError(f"{coll.spectrograms_path} has {shape[0]} spectrograms, expected {plan.n_clips}")
    return shape


def read_clip_rows(plan: AppendPlan) -> list[dict[str, np.ndarray]]:
    """Per new recording: its clips' audio lengths, times and frequency bounds (from ``work/``)."""
    per_rec = []
    for _src, wf, _res in plan.usable:
        with np.load(wf) as z:
            per_rec.append({k: z[k] for k in ("lengths", "start_s", "end_s", "fmin_hz", "fmax_hz")})
    return per_rec


@dataclass(frozen=True)
class SpriteLayout:
    """Where each new clip's audio goes: sprite number and first sample there, and each sprite's length."""

    sprite_of: np.ndarray  # int64 [n_new_clips]
    offset_of: np.ndarray  # int64 [n_new_clips]
    totals: np.ndarray  # int64 [n_new_sprites]
    lengths: np.ndarray  # int64 [n_new_clips]


def plan_sprites(plan: AppendPlan, per_rec: list[dict[str, np.ndarray]], cfg: BuildConfig) -> SpriteLayout:
    """Lay the new clips' audio out in new audio sprites (numbered after the old ones); pure."""
    from .sprites import plan_audio_sprites

    lengths = _cat([r["lengths"] for r in per_rec], np.int64)
    sr = cfg.audio_sample_rate
    sprite_of, offset_of, totals = plan_audio_sprites(
        lengths,
        max_samples=int(round(cfg.audio_sprite_s * sr)),
        gap=int(round(cfg.audio_gap_s * sr)),
        first_sprite=plan.n_sprites_old,
    )
    return SpriteLayout(sprite_of, offset_of, totals, lengths)


def write_sprites(
    coll: Collection,
    plan: AppendPlan,
    per_rec: list[dict[str, np.ndarray]],
    layout: SpriteLayout,
    cfg: BuildConfig,
    *,
    pool: TaskPool,
    progress: Progress,
    should_cancel: CancelCheck | None,
) -> tuple[int, int]:
    """Sprite sheets (from the first that gains cells) and the new audio sprites; returns (sheets, sprites)."""
    cells, n_clips = cfg.cells_per_sheet, plan.n_clips
    first_sheet, n_sheets = plan.n_clip_old // cells, -(-n_clips // cells)
    sheet_tasks = [
        (str(coll.spectrograms_path), s * cells, min((s + 1) * cells, n_clips), str(coll.sheet_path(s, cfg.tile_format)), cfg.to_dict())
        for s in range(first_sheet, n_sheets)
    ]  # fmt: skip
    # where each new clip's audio lies: (work audio file, first sample there, length)
    sources_of_clip = []
    for (_src, wf, _res), r in zip(plan.usable, per_rec, strict=True):
        starts = np.concatenate([[0], np.cumsum(r["lengths"])[:-1]]).astype(np.int64)
        wa = str(work_audio_path(wf))
        sources_of_clip += [(wa, int(a), int(n)) for a, n in zip(starts, r["lengths"], strict=True)]
    sprite_tasks = []
    for k, total in enumerate(layout.totals.tolist()):
        sprite = plan.n_sprites_old + k
        idx = np.flatnonzero(layout.sprite_of == sprite)
        pieces = [(*sources_of_clip[i], int(layout.offset_of[i])) for i in idx]
        sprite_tasks.append(
            (str(coll.audio_sprite_path(sprite)), pieces, int(total), cfg.audio_sample_rate, cfg.audio_fade_ms)
        )
    kw = dict(progress=progress, should_cancel=should_cancel, uses_torch=False)
    pool.run(_draw_sheet, sheet_tasks, stage="sprite sheets", **kw)
    pool.run(_write_sprite, sprite_tasks, stage="audio sprites", **kw)
    return n_sheets, plan.n_sprites_old + len(sprite_tasks)


def clip_table(plan: AppendPlan, per_rec: list[dict[str, np.ndarray]], layout: SpriteLayout, cfg: BuildConfig) -> Any:
    """The new rows of the clip table (clip ids from ``plan.n_clip_old``); pure."""
    import pandas as pd

    cells = cfg.cells_per_sheet
    new_ids = np.arange(plan.n_clip_old, plan.n_clips, dtype=np.int64)
    rec_ids = _cat([np.full(len(r["lengths"]), plan.n_rec_old + k, np.int64) for k, r in enumerate(per_rec)], np.int64)
    new_clips = pd.DataFrame(
        {
            "clip_id": new_ids,
            "recording_id": rec_ids,
            "start_s": _cat([r["start_s"] for r in per_rec], np.float64),
            "end_s": _cat([r["end_s"] for r in per_rec], np.float64),
            "fmin_hz": _cat([r["fmin_hz"] for r in per_rec], np.float32),
            "fmax_hz": _cat([r["fmax_hz"] for r in per_rec], np.float32),
            "sheet": new_ids // cells,
            "cell": new_ids % cells,
            "audio_sprite": layout.sprite_of,
            "audio_offset": layout.offset_of,
            "audio_length": layout.lengths,
        }
    ).astype(CLIP_DTYPES)
    return new_clips


def recording_table(
    plan: AppendPlan, per_rec: list[dict[str, np.ndarray]], old_recs: Any, resolver: MetadataResolver
) -> Any:
    """The whole recording table after this build, metadata resolved for the new rows."""
    import pandas as pd

    rows = []
    for k, ((src, _wf, res), r) in enumerate(zip(plan.usable, per_rec, strict=True)):
        info = res["info"]
        md = resolver.resolve(src.meta_path, src.abs_path)
        rows.append(
            {
                "recording_id": plan.n_rec_old + k, "path": src.path, "file_name": Path(src.path).name, "sha1": info["sha1"],
                "size_bytes": info["size_bytes"], "duration_s": info["duration_s"],
                "orig_sample_rate": info["orig_sample_rate"], "channels": info["channels"], "format": info["format"],
                **md, "n_clips": len(r["lengths"]), "note": info.get("note", ""),
            }
        )  # fmt: skip
    new_recs = pd.DataFrame(rows, columns=list(RECORDING_COLUMNS))
    recs = pd.concat([old_recs, new_recs], ignore_index=True) if plan.n_rec_old else new_recs
    return recording_dtypes(recs)


def write_manifest(
    coll: Collection,
    old: dict[str, Any] | None,
    plan: AppendPlan,
    cfg: BuildConfig,
    inputs: list[Path],
    *,
    audio_s: float,
    n_sheets: int,
    n_sprites: int,
) -> dict[str, Any]:
    """The manifest (written last: its presence means the collection is complete); returns it."""
    stamp = now_iso()
    stages = dict((old or {}).get("stages", {}))
    stages.update(clips=stamp, spectrograms=stamp, sprites=stamp, audio_sprites=stamp)
    manifest = {
        **manifest_header(old),
        "config": cfg.to_dict(),
        "inputs": sorted({*(old or {}).get("inputs", []), *(str(p) for p in inputs)}),
        "sources": plan.sources,
        "counts": {
            "recordings": plan.n_recordings,
            "clips": plan.n_clips,
            "audio_s": round(audio_s, 3),
            "skipped": len(plan.skipped_rows),
            "sheets": n_sheets,
            "audio_sprites": n_sprites,
        },
        "stages": stages,
    }
    for key in ("features", "reductions"):  # kept for the later stages' own bookkeeping
        if old and key in old:
            manifest[key] = old[key]
    write_json_atomic(coll.manifest_path, manifest)
    return manifest


# ---------------------------------------------------------------------------------------------
# the step


def assemble(
    coll: Collection,
    plan: AppendPlan,
    *,
    old: OldState,
    config: BuildConfig,
    resolver: MetadataResolver,
    inputs: list[Path],
    pool: TaskPool,
    progress: Progress,
    should_cancel: CancelCheck | None,
) -> AssembleResult:
    """Write the skipped table, spectrograms, sprite sheets, audio sprites, tables and the manifest (last).

    With no usable recording at all only skipped.csv is written (no manifest: the next build tries again).
    """
    n_skipped = write_skipped(coll, plan)
    base = dict(
        recordings=plan.n_recordings, clips=plan.n_clips, new_recordings=len(plan.usable),
        new_clips=plan.n_new_clips, skipped=list(plan.new_skipped), skipped_total=n_skipped, notes=list(plan.notes),
    )  # fmt: skip
    if plan.n_recordings == 0:
        return AssembleResult(**base)
    write_spectrograms(coll, plan, config, progress)
    check_cancel(should_cancel)
    per_rec = read_clip_rows(plan)
    layout = plan_sprites(plan, per_rec, config)
    n_sheets, n_sprites = write_sprites(
        coll, plan, per_rec, layout, config, pool=pool, progress=progress, should_cancel=should_cancel
    )
    new_clips = clip_table(plan, per_rec, layout, config)
    recs = recording_table(plan, per_rec, old.recordings, resolver)
    write_table_atomic(coll.recordings_path, recs)
    coll.append_clips(new_clips, n_keep=plan.n_clip_old)
    audio_s = float(recs["duration_s"].sum())
    write_manifest(coll, old.manifest, plan, config, inputs, audio_s=audio_s, n_sheets=n_sheets, n_sprites=n_sprites)
    return AssembleResult(**base, audio_s=audio_s)


def _draw_sheet(spec_path: str, a: int, b: int, out_path: str, cfg_dict: dict[str, Any]) -> None:
    """Pool task: draw clips ``[a, b)`` of the spectrograms file as one sprite sheet."""
    from .sprites import render_tiles, write_sheet

    cfg = BuildConfig.from_dict(cfg_dict)
    specs = np.load(spec_path, mmap_mode="r")[a:b]
    tiles = render_tiles(np.asarray(specs), tile_w=cfg.tile_w, tile_h=cfg.tile_h, colormap=cfg.colormap)
    write_sheet(out_path, tiles, sheet_cols=cfg.sheet_cols, fmt=cfg.tile_format, quality=cfg.tile_quality)


def _write_sprite(path: str, pieces: list[tuple[str, int, int, int]], total: int, sr: int, fade_ms: float) -> None:
    """Pool task: one audio sprite from ``(work audio file, first sample, length, offset in sprite)`` pieces."""
    from .sprites import write_audio_sprite

    arrays: dict[str, np.ndarray] = {}
    clips, offsets = [], []
    for f, a, n, off in pieces:
        if f not in arrays:
            arrays[f] = np.load(f, mmap_mode="r")
        clips.append(arrays[f][a : a + n])
        offsets.append(off)
    write_audio_sprite(path, clips, offsets, total=total, sr=sr, fade_ms=fade_ms)


def _cat(arrays: list[np.ndarray], dtype: Any) -> np.ndarray:
    return np.concatenate(arrays).astype(dtype) if arrays else np.zeros(0, dtype)
