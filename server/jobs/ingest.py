"""The ``preprocess`` (add uploaded recordings) and ``remap`` (refit a map) job kinds.

``preprocess``: all staged files of one request go through one :func:`preprocess.ingest.ingest` (one build, one
feature pass, one placement). Uploads are discarded once the job used them; a refused or failed job keeps them (so
the user can retry), except those that can never be used (unsafe zips). Events besides the framework's:
``preprocess:file`` per file and ``preprocess:clips`` per added file (to the client and the collection's room).
``remap`` refits one map with every clip, holding the collection's ingest lock.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from preprocess.errors import NotFoundError, ParameterError, SonomapError
from preprocess.uploads import UploadStore

from .. import protocol
from ..errors import clean
from .base import Job, JobKind, ProgressFn


class PreprocessKind(JobKind):
    """``preprocess {collection | new_collection, uploads: [upload_id…]}`` → ``job:result {kind: "preprocess", …}``."""

    name = "preprocess"
    id_prefix = "p"
    supersede = False  # two batches from one client both go in (the collection lock orders them)
    cancel_on_disconnect = False  # a reloaded page must not lose an upload that is being added
    stages = (
        ("staging", 2),
        ("discover", 1),
        ("recordings", 35),
        ("spectrograms", 4),
        ("sprite sheets", 8),
        ("audio sprites", 4),
        ("recording tiles", 2),
        ("features", 32),
        ("reduce", 12),
    )

    def __init__(self, store: UploadStore, collections: Any) -> None:
        self.store = store
        self.collections = collections

    def validate(self, sid: str, data: Any) -> dict[str, Any]:
        from preprocess.collection import check_name

        if not isinstance(data, dict):
            raise ParameterError("preprocess needs {collection or new_collection, uploads: [upload ids]}")
        uploads = data.get("uploads")
        if not isinstance(uploads, list) or not uploads or not all(isinstance(u, str) for u in uploads):
            raise ParameterError("uploads must be a non-empty list of upload ids (from POST /api/uploads)")
        new, name = data.get("new_collection"), data.get("collection")
        if bool(new) == bool(name):
            raise ParameterError("give either collection (to add to it) or new_collection (a new name), not both")
        if new:
            check_name(new, what="collection name")
            if (self.store.collections_root / new).exists():
                raise ParameterError(f"a collection named {new!r} already exists; choose another name or add to it")
            name = new
        else:
            self.collections.get(name)  # 404 naming what exists
        for uid in uploads:
            self.store.status(uid)  # 404 for an unknown upload, before any work
        return {"collection": name, "create": bool(new), "uploads": list(dict.fromkeys(uploads)),
                "refused": _client_refusals(data.get("refused"))}  # fmt: skip

    def progress_fields(self, job: Job, stage: str, done: int, total: int, message: str) -> dict[str, Any]:
        n = job.meta.get("n_files", len(job.request["uploads"]))
        file = ""
        if stage == "recordings":
            job.meta["file_index"] = min(int(done), n)
            file = message  # the build names the recording it just finished (its path in sources/)
        return {"file": file, "file_index": job.meta.get("file_index", 0), "n_files": n}

    def run(self, job: Job, progress: ProgressFn) -> dict[str, Any]:
        from preprocess.ingest import ingest

        req = job.request
        name, create = req["collection"], req["create"]
        progress("staging", 0, 1, "unpacking uploads")
        batch = self.store.stage(req["uploads"])
        job.meta["batch"] = batch
        audio = [f for f in batch.files if f.kind == "audio"]
        job.meta["n_files"] = max(1, len(audio))
        progress("staging", 1, 1, f"{len(audio)} audio files")

        def on_file(o: Any) -> None:
            self._emit_file(job, name, create, o)

        result = ingest(
            self.store.collections_root, name, batch, create=create, progress=progress, on_file=on_file,
            should_cancel=job.should_cancel, refused=req.get("refused") or [],
        )  # fmt: skip
        _score_new(self.collections, name, result.new_clip_ids)
        return {
            "collection": name,
            "created": result.created,
            "files": [
                {
                    "name": f.name,
                    "status": f.status,
                    "reason": clean(f.reason),
                    "n_clips": len(f.clip_ids),
                    "recording_id": f.recording_id,
                }
                for f in result.files
            ],  # fmt: skip
            "refused": [{"name": n, "reason": clean(r)} for n, r in result.refused],
            "notes": [clean(n) for n in result.notes],
            "n_new_clips": len(result.new_clip_ids),
            "n_clips": result.n_clips,
            "reductions": result.reductions,
            "suggest_remap": result.suggest_remap,
            "refitted": result.refitted,
        }

    def _emit_file(self, job: Job, name: str, create: bool, o: Any) -> None:
        job.emit(
            protocol.PREPROCESS_FILE,
            {"job_id": job.id, "collection": name, "index": o.index, "n_files": o.n_files, "name": o.name,
             "status": o.status, "reason": clean(o.reason), "recording_id": o.recording_id, "n_clips": len(o.clip_ids)},
        )  # fmt: skip
        if o.status != "ok" or create:  # a new collection has no map until the batch is in
            return
        try:
            rows = clip_rows(self.collections.get(name), o.clip_ids)
        except SonomapError:
            return
        payload = {
            "job_id": job.id, "collection": name, "name": o.name, "recording_id": o.recording_id, "clips": rows,
            "positions": {k: np.ascontiguousarray(v, "<f4").tobytes() for k, v in o.positions.items()},
        }  # fmt: skip
        job.emit(protocol.PREPROCESS_CLIPS, payload)
        job.emit(protocol.PREPROCESS_CLIPS, payload, to=protocol.collection_room(name), skip_sid=job.sid)

    def finished(self, job: Job, outcome: str) -> None:
        """Discard the uploads the job used; a refused / failed / cancelled job keeps those still staged."""
        batch = job.meta.get("batch")
        for uid in job.request["uploads"]:
            if outcome == "result" or batch is None:
                if outcome == "result":
                    self.store.discard(uid)
                continue
            files = [f for f in batch.files if f.upload_id == uid]
            consumed = files and not any(f.path.exists() for f in files)
            if uid in batch.unusable or consumed:
                self.store.discard(uid)


class RemapKind(JobKind):
    """``remap {collection, key?}`` → ``job:result {kind: "remap", collection, key}`` (refit with every clip)."""

    name = "remap"
    id_prefix = "p"
    supersede = False
    cancel_on_disconnect = False
    stages = (("reduce", 1),)

    def __init__(self, collections: Any, collections_root: Any) -> None:
        self.collections = collections
        self.collections_root = collections_root

    def validate(self, sid: str, data: Any) -> dict[str, Any]:
        name = data.get("collection") if isinstance(data, dict) else None
        c = self.collections.get(name if isinstance(name, str) else "")
        keys = c.reductions()
        key = data.get("key") or ("birdnet" if "birdnet" in keys else (keys[0] if keys else None))
        if key not in keys:
            raise NotFoundError(f"no map {str(key)[:60]!r} in {c.name}; available: {', '.join(keys) or 'none'}")
        return {"collection": c.name, "key": key}

    def run(self, job: Job, progress: ProgressFn) -> dict[str, Any]:
        from preprocess.ingest import collection_lock
        from preprocess.reduce import reduce_collection, stored_params

        name, key = job.request["collection"], job.request["key"]
        with collection_lock(self.collections_root, name):
            c = self.collections.get(name)
            meta = c.reduction_meta(key)
            reduce_collection(
                c, features=meta["features"], dims=meta.get("dims") or [2], refit=True, progress=progress,
                should_cancel=job.should_cancel, **stored_params(meta),
            )  # fmt: skip
        return {"collection": name, "key": key}


def _client_refusals(value: Any) -> list[tuple[str, str]]:
    """``refused: [{name, reason}]`` of a request: files the server refused before staging (e.g. "not audio" at
    their first chunk, "empty"), which the page reports so that they reach ``skipped.csv``; at most 1000."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(r, dict) for r in value):
        raise ParameterError("refused must be a list of {name, reason} (files refused before processing)")
    out = []
    for r in value[:1000]:
        name, reason = r.get("name"), r.get("reason")
        if isinstance(name, str) and name.strip() and isinstance(reason, str):
            out.append((clean(name.strip())[:300], clean(reason)[:300]))
    return out


def _score_new(collections: Any, name: str, clip_ids: list[int]) -> None:
    """Clips added to a collection with a trained classifier get their scores now."""
    from preprocess import learn

    try:
        c = collections.get(name)
        if clip_ids and c.learn_meta_path.is_file():
            learn.score_new(c, clip_ids)
    except SonomapError:  # no model for these features (e.g. retrained on another set): scored at the next round
        pass


def clip_rows(c: Any, clip_ids: list[int]) -> dict[str, list]:
    """Columnar rows of ``clip_ids`` with the same columns as ``GET /api/collections/<c>/clips``."""
    from .. import tables

    table = tables.clip_table(c).iloc[list(clip_ids)]
    cols: dict[str, list] = {}
    for col in tables.CLIP_TABLE_COLUMNS:
        vals = table[col].tolist()
        cols[col] = [v.item() if isinstance(v, np.generic) else v for v in vals]
    return cols
