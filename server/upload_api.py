"""Uploads from the browser (chunked, resumable REST) and the ``preprocess`` / ``remap`` socket jobs (thin).

REST (errors are the app's ``{ok: false, error, status}``)::

    GET    /api/uploads/limits                      {ok, limits: {max_file_bytes, max_chunk_bytes}}
    POST   /api/uploads            {file_name, size_bytes, client_id?}   -> 201 {ok, upload}
    GET    /api/uploads/<id>                        {ok, upload}   (``upload.received``: resume from there)
    PUT    /api/uploads/<id>?offset=N   raw bytes   {ok, upload}   (POST works too)
    DELETE /api/uploads/<id>                        {ok, discarded}

``upload = {upload_id, file_name (safe), original_name, size_bytes, kind, received, complete, created, updated}``.

Socket.IO::

    c->s preprocess {collection | new_collection, uploads: [upload_id…]}  ack {ok, job_id} | {ok: false, error}
    s->c job:progress {job_id, stage, done, total, fraction, message, file, file_index, n_files}
    s->c preprocess:file {job_id, collection, index, n_files, name, status: ok|failed, reason, recording_id, n_clips}
    s->c preprocess:clips {job_id, collection, name, recording_id, clips: {column: [...]}, positions: {key: <f32 x,y…>}}
    s->c job:result {job_id, kind: "preprocess", collection, created, files, refused, notes, n_new_clips, n_clips,
                     reductions, suggest_remap}
    c->s preprocess:cancel {job_id}                 ack {ok}
    c->s remap {collection, key?}                   ack {ok, job_id}; then job:progress… and
    s->c job:result {job_id, kind: "remap", collection, key}

Jobs run in ``socketio.start_background_task``; the work is :func:`preprocess.ingest.ingest`. Uploaded
files are discarded from the staging area once a job has used them (their originals now live in the
collection's ``sources/``).
"""

from __future__ import annotations

import itertools
import logging
import threading
from typing import Any

import numpy as np
from flask import Blueprint, jsonify, request
from flask_socketio import join_room

from preprocess.errors import Cancelled, NotFoundError, ParameterError, SonomapError
from preprocess.uploads import UploadLimits, UploadStore

log = logging.getLogger(__name__)

#: Share of a file's progress bar per stage (the overall fraction also counts finished files).
_FILE_STAGES = {
    "discover": (0.0, 0.02),
    "recordings": (0.02, 0.35),
    "spectrograms": (0.35, 0.4),
    "sprite sheets": (0.4, 0.5),
    "audio sprites": (0.5, 0.55),
    "features": (0.55, 0.9),
    "reduce": (0.9, 1.0),
}


def _limits(settings: Any) -> UploadLimits:
    mb = getattr(settings, "max_upload_mb", None)
    kw: dict[str, Any] = {}
    if mb:
        kw["max_file_bytes"] = int(mb) * 1024**2
        kw["max_zip_total_bytes"] = max(int(mb) * 1024**2 * 4, UploadLimits().max_zip_total_bytes)
    stale = getattr(settings, "upload_stale_s", None)
    if stale:
        kw["stale_after_s"] = float(stale)
    return UploadLimits(**kw)


class PreprocessJobs:
    """The running preprocess / remap jobs (one per collection at a time; the core also locks)."""

    def __init__(self, socketio: Any, store: UploadStore, collections: Any) -> None:
        self.socketio = socketio
        self.store = store
        self.collections = collections
        self._ids = itertools.count(1)
        self._cancel: dict[str, threading.Event] = {}
        self._owner: dict[str, str] = {}
        self._lock = threading.Lock()

    def _new(self, sid: str) -> tuple[str, threading.Event]:
        job_id = f"p{next(self._ids)}"
        ev = threading.Event()
        with self._lock:
            self._cancel[job_id], self._owner[job_id] = ev, sid
        return job_id, ev

    def _done(self, job_id: str) -> None:
        with self._lock:
            self._cancel.pop(job_id, None)
            self._owner.pop(job_id, None)

    def cancel(self, sid: str, job_id: Any) -> dict[str, Any]:
        with self._lock:
            ev = self._cancel.get(job_id) if isinstance(job_id, str) else None
            mine = ev is not None and self._owner.get(job_id) == sid
        if not mine:
            return {"ok": False, "error": f"no preprocess job {job_id!r} of yours is running", "status": 404}
        ev.set()
        return {"ok": True}

    # preprocess -----------------------------------------------------------------------------
    def submit(self, sid: str, data: Any) -> dict[str, Any]:
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
        job_id, ev = self._new(sid)
        self.socketio.start_background_task(self._run, job_id, sid, name, bool(new), list(uploads), ev)
        return {"ok": True, "job_id": job_id}

    def _run(self, job_id: str, sid: str, name: str, create: bool, uploads: list[str], ev: threading.Event) -> None:
        from preprocess.ingest import ingest

        emit = self.socketio.emit
        state = {"file": "", "index": 0, "n": len(uploads), "fraction": 0.0}

        def progress(stage: str, done: int, total: int, message: str = "") -> None:
            key = "features" if stage.startswith("features") else stage
            lo, hi = _FILE_STAGES.get(key, (0.0, 1.0))
            within = lo + (hi - lo) * (done / total if total else 1.0)
            frac = (state["index"] + within) / max(state["n"], 1)
            state["fraction"] = max(state["fraction"], min(frac, 1.0))
            emit(
                "job:progress",
                {
                    "job_id": job_id,
                    "stage": stage,
                    "done": int(done),
                    "total": int(total),
                    "fraction": round(state["fraction"], 4),
                    "message": message,
                    "file": state["file"],
                    "file_index": state["index"],
                    "n_files": state["n"],
                },  # fmt: skip
                to=sid,
            )

        def on_start(i: int, n: int, file: str) -> None:
            state.update(file=file, index=i, n=n)
            progress("file", 0, 1, f"file {i + 1} of {n}: {file}")

        def on_file(o: Any) -> None:
            emit(
                "preprocess:file",
                {
                    "job_id": job_id,
                    "collection": name,
                    "index": o.index,
                    "n_files": o.n_files,
                    "name": o.name,
                    "status": o.status,
                    "reason": o.reason,
                    "recording_id": o.recording_id,
                    "n_clips": len(o.clip_ids),
                },  # fmt: skip
                to=sid,
            )
            if o.status == "ok" and not create:  # a new collection has no map until its last file
                try:
                    rows = clip_rows(self.collections.get(name), o.clip_ids)
                except SonomapError:
                    return
                payload = {
                    "job_id": job_id, "collection": name, "name": o.name, "recording_id": o.recording_id,
                    "clips": rows, "positions": {k: np.ascontiguousarray(v, "<f4").tobytes() for k, v in o.positions.items()},
                }  # fmt: skip
                emit("preprocess:clips", payload, to=sid)
                emit("preprocess:clips", payload, to=f"collection:{name}", skip_sid=sid)

        try:
            emit("job:progress", {"job_id": job_id, "stage": "staging", "done": 0, "total": 1, "fraction": 0.0,
                                  "message": "unpacking uploads", "file": "", "file_index": 0, "n_files": len(uploads)}, to=sid)  # fmt: skip
            batch = self.store.stage(uploads)
            state["n"] = max(1, sum(f.kind == "audio" for f in batch.files))
            result = ingest(
                self.store.collections_root, name, batch, create=create, progress=progress,
                on_file_start=on_start, on_file=on_file, should_cancel=ev.is_set,
            )  # fmt: skip
        except Cancelled:
            emit("job:cancelled", {"job_id": job_id}, to=sid)
            return
        except SonomapError as e:
            emit("job:error", {"job_id": job_id, "error": str(e)}, to=sid)
            return
        except Exception as e:  # never a traceback to the browser
            log.exception("preprocess job %s failed", job_id)
            emit(
                "job:error", {"job_id": job_id, "error": f"adding recordings failed ({type(e).__name__}: {e})"}, to=sid
            )
            return
        finally:
            for uid in uploads:
                try:
                    self.store.discard(uid)
                except SonomapError:
                    pass
            self._done(job_id)
        emit(
            "job:result",
            {
                "job_id": job_id,
                "kind": "preprocess",
                "collection": name,
                "created": result.created,
                "files": [
                    {
                        "name": f.name,
                        "status": f.status,
                        "reason": f.reason,
                        "n_clips": len(f.clip_ids),
                        "recording_id": f.recording_id,
                    }
                    for f in result.files
                ],
                "refused": [{"name": n, "reason": r} for n, r in result.refused],
                "notes": result.notes,
                "n_new_clips": len(result.new_clip_ids),
                "n_clips": result.n_clips,
                "reductions": result.reductions,
                "suggest_remap": result.suggest_remap,
            },  # fmt: skip
            to=sid,
        )

    # remap ----------------------------------------------------------------------------------
    def submit_remap(self, sid: str, data: Any) -> dict[str, Any]:
        name = data.get("collection") if isinstance(data, dict) else None
        c = self.collections.get(name if isinstance(name, str) else "")
        keys = c.reductions()
        key = data.get("key") or ("birdnet" if "birdnet" in keys else (keys[0] if keys else None))
        if key not in keys:
            raise NotFoundError(f"no map {key!r} in {c.name}; available: {', '.join(keys) or 'none'}")
        job_id, ev = self._new(sid)
        self.socketio.start_background_task(self._remap, job_id, sid, c, key, ev)
        return {"ok": True, "job_id": job_id}

    def _remap(self, job_id: str, sid: str, c: Any, key: str, ev: threading.Event) -> None:
        from preprocess.reduce import reduce_collection

        def progress(stage: str, done: int, total: int, message: str = "") -> None:
            frac = done / total if total else 1.0
            self.socketio.emit("job:progress", {"job_id": job_id, "stage": stage, "done": int(done), "total": int(total),
                                                "fraction": round(frac, 4), "message": message}, to=sid)  # fmt: skip

        try:
            meta = c.reduction_meta(key)
            reduce_collection(
                c, features=meta["features"], dims=meta.get("dims") or [2], refit=True, progress=progress,
                should_cancel=ev.is_set, **(meta.get("params") or {}),
            )  # fmt: skip
        except Cancelled:
            self.socketio.emit("job:cancelled", {"job_id": job_id}, to=sid)
            return
        except SonomapError as e:
            self.socketio.emit("job:error", {"job_id": job_id, "error": str(e)}, to=sid)
            return
        except Exception as e:
            log.exception("remap job %s failed", job_id)
            self.socketio.emit("job:error", {"job_id": job_id, "error": f"recomputing the map failed ({e})"}, to=sid)
            return
        finally:
            self._done(job_id)
        self.socketio.emit("job:result", {"job_id": job_id, "kind": "remap", "collection": c.name, "key": key}, to=sid)


def clip_rows(c: Any, clip_ids: list[int]) -> dict[str, list]:
    """Columnar rows of ``clip_ids`` with the same columns as ``GET /api/collections/<c>/clips``."""
    from . import tables

    lo, hi = min(clip_ids), max(clip_ids) + 1
    table = tables.clip_table(c).iloc[lo:hi]
    cols: dict[str, list] = {}
    for col in tables.CLIP_TABLE_COLUMNS:
        vals = table[col].tolist()
        cols[col] = [v.item() if isinstance(v, np.generic) else v for v in vals]
    return cols


def register(app: Any, socketio: Any, *, collections: Any, settings: Any) -> PreprocessJobs:
    """Add the upload routes and the ``preprocess`` / ``remap`` socket events."""
    store = UploadStore(settings.collections_dir, _limits(settings))
    jobs = PreprocessJobs(socketio, store, collections)
    app.extensions.setdefault("sonomap", {})["uploads"] = store
    bp = Blueprint("uploads", __name__, url_prefix="/api/uploads")

    @bp.get("/limits")
    def limits():
        lim = store.limits
        return jsonify(
            {"ok": True, "limits": {"max_file_bytes": lim.max_file_bytes, "max_chunk_bytes": lim.max_chunk_bytes}}
        )

    @bp.post("")
    def create():
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise ParameterError("POST /api/uploads needs JSON {file_name, size_bytes}")
        store.cleanup_stale()
        up = store.create(body.get("file_name", ""), body.get("size_bytes"), owner=str(body.get("client_id") or ""))
        resp = jsonify({"ok": True, "upload": up.public()})
        resp.status_code = 201
        return resp

    @bp.get("/<upload_id>")
    def status(upload_id: str):
        return jsonify({"ok": True, "upload": store.status(upload_id).public()})

    @bp.route("/<upload_id>", methods=["PUT", "POST"])
    def chunk(upload_id: str):
        raw = request.args.get("offset", request.headers.get("Upload-Offset", ""))
        try:
            offset = int(raw)
        except ValueError:
            raise ParameterError(f"offset must be a whole number (?offset=N), got {raw!r}") from None
        length = request.content_length
        if not length:
            raise ParameterError("a chunk needs a body with a Content-Length")
        up = store.write_chunk(upload_id, offset, request.stream, length)
        return jsonify({"ok": True, "upload": up.public()})

    @bp.delete("/<upload_id>")
    def discard(upload_id: str):
        return jsonify({"ok": True, "discarded": store.discard(upload_id)})

    app.register_blueprint(bp)

    def ack(fn, data):
        try:
            return fn(request.sid, data)
        except SonomapError as e:
            return {"ok": False, "error": str(e), "status": e.status}

    @socketio.on("preprocess")
    def on_preprocess(data: Any = None):
        if isinstance(data, dict) and isinstance(data.get("collection"), str):
            join_room(f"collection:{data['collection']}")
        return ack(jobs.submit, data)

    @socketio.on("preprocess:cancel")
    def on_cancel(data: Any = None):
        return jobs.cancel(request.sid, data.get("job_id") if isinstance(data, dict) else None)

    @socketio.on("remap")
    def on_remap(data: Any = None):
        return ack(jobs.submit_remap, data)

    return jobs
