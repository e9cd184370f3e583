"""Assembling per-recording results (``work/``) into the collection's files, manifest last.

Appends to an existing collection without touching its clips: the old state is the manifest's counts
(rows past them, left by a killed build, are dropped and redone), new recordings get the next ids,
new clips the next clip ids, new audio sprites the next numbers; sprite sheets are re-drawn from the
first sheet that gains cells.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .collection import Collection, atomic_path, write_json_atomic, write_table_atomic
from .config import BuildConfig
from .metadata import METADATA_COLUMNS, MetadataResolver
from .pool import TaskPool
from .progress import CancelCheck, Progress, check_cancel

RECORDING_COLUMNS = (
    "recording_id",
    "path",
    "file_name",
    "sha1",
    "size_bytes",
    "duration_s",
    "orig_sample_rate",
    "channels",
    "format",
    *METADATA_COLUMNS,
    "n_clips",
    "note",
)


def assemble(
    coll: Collection,
    *,
    config: BuildConfig,
    old: dict[str, Any] | None,
    todo: list,
    results: list[dict[str, Any]],
    resolver: MetadataResolver,
    inputs: list[Path],
    result: Any,
    pool: TaskPool,
    progress: Progress,
    should_cancel: CancelCheck | None,
) -> None:
    """Write spectrograms.npy, sprite sheets, audio sprites, tables, skipped.csv and the manifest (last)."""
    import pandas as pd

    from .pipeline import audio_file, manifest_header, now_iso
    from .sprites import plan_audio_sprites

    cfg = config
    counts = (old or {}).get("counts", {})
    n_rec_old, n_clip_old = int(counts.get("recordings", 0)), int(counts.get("clips", 0))
    n_sprites_old = int(counts.get("audio_sprites", 0))
    old_recs = coll.recordings().iloc[:n_rec_old] if n_rec_old else pd.DataFrame(columns=list(RECORDING_COLUMNS))
    old_clips = coll.clips().iloc[:n_clip_old] if n_clip_old else None
    if old_clips is not None and len(old_clips) != n_clip_old:
        from .errors import CollectionError

        raise CollectionError(f"{coll.clips_path} has {len(old_clips)} clips, the manifest says {n_clip_old}")

    # which new recordings are usable (duplicates of a known file are skipped) -----------------
    sources = {s["path"]: s for s in (old or {}).get("sources", [])}
    known = {row.sha1: row.path for row in old_recs.itertuples()}
    usable = []
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
                result.notes.append(f"{src.path}: {info['note']}")
        else:
            entry["reason"] = res["reason"]
            result.skipped.append((src.path, res["reason"]))
        sources[src.path] = entry
    sources_list = [sources[k] for k in sorted(sources)]
    skipped_rows = [(s["path"], s.get("reason", "")) for s in sources_list if s["status"] != "ok"]
    write_table_atomic(coll.skipped_path, pd.DataFrame(skipped_rows, columns=["path", "reason"]))
    n_new_clips = sum(r["n_clips"] for _s, _w, r in usable)
    n_clips = n_clip_old + n_new_clips
    result.new_recordings, result.new_clips = len(usable), n_new_clips
    result.recordings, result.clips = n_rec_old + len(usable), n_clips
    result.skipped_total = len(skipped_rows)
    if result.recordings == 0:
        return  # nothing usable: skipped.csv says why; no manifest, so the next build tries again

    # spectrograms.npy (old rows copied, new rows appended) -----------------------------------
    shape = (n_clips, cfg.n_mels, cfg.n_frames)
    progress("spectrograms", 0, len(usable), "")
    with atomic_path(coll.spectrograms_path) as tmp:
        mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        if n_clip_old:
            prev = coll.spectrograms()
            for a in range(0, n_clip_old, 4096):
                mm[a : min(a + 4096, n_clip_old)] = prev[a : min(a + 4096, n_clip_old)]
            del prev
        pos = n_clip_old
        for k, (_src, wf, _res) in enumerate(usable):
            with np.load(wf) as z:
                specs = z["specs"]
            mm[pos : pos + len(specs)] = specs
            pos += len(specs)
            progress("spectrograms", k + 1, len(usable), "")
        mm.flush()
        del mm
    check_cancel(should_cancel)

    # per-clip rows and the audio sprites' layout (cheap, here), then sheets and sprites (pool) ----
    per_rec = []
    for _src, wf, _res in usable:
        with np.load(wf) as z:
            per_rec.append({k: z[k] for k in ("lengths", "start_s", "end_s", "fmin_hz", "fmax_hz")})
    lengths = _cat([r["lengths"] for r in per_rec], np.int64)
    sr = cfg.audio_sample_rate
    gap = int(round(cfg.audio_gap_s * sr))
    sprite_of, offset_of, sprite_totals = plan_audio_sprites(
        lengths, max_samples=int(round(cfg.audio_sprite_s * sr)), gap=gap, first_sprite=n_sprites_old
    )
    cells = cfg.cells_per_sheet
    first_sheet, n_sheets = n_clip_old // cells, -(-n_clips // cells)
    ext = cfg.tile_format
    sheet_tasks = [
        (
            str(coll.spectrograms_path),
            s * cells,
            min((s + 1) * cells, n_clips),
            str(coll.sheet_path(s, ext)),
            cfg.to_dict(),
        )
        for s in range(first_sheet, n_sheets)
    ]
    # where each new clip's audio lies: (work audio file, first sample there, length)
    sources_of_clip = []
    for (_src, wf, _res), r in zip(usable, per_rec, strict=True):
        starts = np.concatenate([[0], np.cumsum(r["lengths"])[:-1]]).astype(np.int64)
        sources_of_clip += [(str(audio_file(wf)), int(a), int(n)) for a, n in zip(starts, r["lengths"], strict=True)]
    sprite_tasks = []
    for k, total in enumerate(sprite_totals.tolist()):
        sprite = n_sprites_old + k
        idx = np.flatnonzero(sprite_of == sprite)
        pieces = [(*sources_of_clip[i], int(offset_of[i])) for i in idx]
        sprite_tasks.append((str(coll.audio_sprite_path(sprite)), pieces, int(total), sr, cfg.audio_fade_ms))
    kw = dict(progress=progress, should_cancel=should_cancel, uses_torch=False)
    pool.run(_draw_sheet, sheet_tasks, stage="sprite sheets", **kw)
    pool.run(_write_sprite, sprite_tasks, stage="audio sprites", **kw)
    n_sprites = n_sprites_old + len(sprite_tasks)

    new_ids = np.arange(n_clip_old, n_clips, dtype=np.int64)
    rec_ids = _cat([np.full(len(r["lengths"]), n_rec_old + k, np.int64) for k, r in enumerate(per_rec)], np.int64)
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
            "audio_sprite": sprite_of,
            "audio_offset": offset_of,
            "audio_length": lengths,
        }
    ).astype(_CLIP_DTYPES)
    rec_rows = []
    for k, ((src, _wf, res), r) in enumerate(zip(usable, per_rec, strict=True)):
        info = res["info"]
        md = resolver.resolve(src.meta_path, src.abs_path)
        rec_rows.append(
            {
                "recording_id": n_rec_old + k, "path": src.path, "file_name": Path(src.path).name, "sha1": info["sha1"],
                "size_bytes": info["size_bytes"], "duration_s": info["duration_s"],
                "orig_sample_rate": info["orig_sample_rate"], "channels": info["channels"], "format": info["format"],
                **md, "n_clips": len(r["lengths"]), "note": info.get("note", ""),
            }
        )  # fmt: skip

    # tables, then the manifest -------------------------------------------------------------
    clips = pd.concat([old_clips, new_clips], ignore_index=True) if old_clips is not None else new_clips
    clips = clips.astype(_CLIP_DTYPES)
    new_recs = pd.DataFrame(rec_rows, columns=list(RECORDING_COLUMNS))
    recs = pd.concat([old_recs, new_recs], ignore_index=True) if n_rec_old else new_recs
    recs = _recording_dtypes(recs)
    write_table_atomic(coll.recordings_path, recs)
    write_table_atomic(coll.clips_path, clips)
    result.audio_s = float(recs["duration_s"].sum())
    stamp = now_iso()
    stages = dict((old or {}).get("stages", {}))
    stages.update(clips=stamp, spectrograms=stamp, sprites=stamp, audio_sprites=stamp)
    manifest = {
        **manifest_header(old),
        "config": cfg.to_dict(),
        "inputs": sorted({*(old or {}).get("inputs", []), *(str(p) for p in inputs)}),
        "sources": sources_list,
        "counts": {
            "recordings": len(recs),
            "clips": len(clips),
            "audio_s": round(result.audio_s, 3),
            "skipped": len(skipped_rows),
            "sheets": n_sheets,
            "audio_sprites": n_sprites,
        },
        "stages": stages,
    }
    for key in ("features", "reductions"):  # kept for the later stages' own bookkeeping
        if old and key in old:
            manifest[key] = old[key]
    write_json_atomic(coll.manifest_path, manifest)


_CLIP_DTYPES = {
    "clip_id": "int64",
    "recording_id": "int64",
    "start_s": "float64",
    "end_s": "float64",
    "fmin_hz": "float32",
    "fmax_hz": "float32",
    "sheet": "int32",
    "cell": "int32",
    "audio_sprite": "int32",
    "audio_offset": "int64",
    "audio_length": "int64",
}


def _recording_dtypes(recs: Any) -> Any:
    ints = ("recording_id", "size_bytes", "orig_sample_rate", "channels", "n_clips")
    floats = ("duration_s", "lat", "lon")
    for c in recs.columns:
        if c in ints:
            recs[c] = recs[c].astype("int64")
        elif c in floats:
            recs[c] = recs[c].astype("float64")
        else:
            recs[c] = recs[c].fillna("").astype(str)
    return recs


def _draw_sheet(spec_path: str, a: int, b: int, out_path: str, cfg_dict: dict[str, Any]) -> None:
    """Pool task: draw clips ``[a, b)`` of spectrograms.npy as one sprite sheet."""
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
