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
    s->c job:progress {job_id, stage, done, total, fraction, message, eta_s, file, file_index, n_files}
    s->c preprocess:file {job_id, collection, index, n_files, name, status: ok|failed, reason, recording_id, n_clips}
    s->c preprocess:clips {job_id, collection, name, recording_id, clips: {column: [...]}, positions: {key: <f32 x,y…>}}
    s->c job:result {job_id, kind: "preprocess", collection, created, files, refused, notes, n_new_clips, n_clips,
                     reductions, suggest_remap}
    c->s preprocess:cancel {job_id}                 ack {ok}   (the generic ``cancel`` works too)
    c->s remap {collection, key?}                   ack {ok, job_id}; then job:progress… and
    s->c job:result {job_id, kind: "remap", collection, key}

The jobs are kinds of the one framework (:mod:`server.jobs.ingest`); the work is :func:`preprocess.ingest.ingest`,
one build for all files of a request. Uploaded files are discarded from the staging area once a job has used them
(their originals now live in the collection's ``sources/``); a refused or failed job keeps them. Staging has a quota
per client (``client_id`` / ``X-Sonomap-Client`` / remote address) and overall; stale uploads are swept on a timer,
and a socket client's unfinished uploads (``client_id`` = its socket id) when it disconnects.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, jsonify, request
from flask_socketio import join_room

from preprocess.errors import ParameterError
from preprocess.uploads import UploadLimits, UploadStore

from . import protocol
from .jobs.ingest import PreprocessKind, RemapKind, clip_rows  # noqa: F401 - clip_rows: re-exported

log = logging.getLogger(__name__)

#: How often stale uploads are swept (seconds; at most this, at least a quarter of the staleness limit).
SWEEP_EVERY_S = 600.0


def _limits(settings: Any) -> UploadLimits:
    mb = getattr(settings, "max_upload_mb", None)
    kw: dict[str, Any] = {}
    if mb:
        kw["max_file_bytes"] = int(mb) * 1024**2
        kw["max_zip_total_bytes"] = max(int(mb) * 1024**2 * 4, UploadLimits().max_zip_total_bytes)
    return UploadLimits(**kw)


def _owner(body: dict[str, Any]) -> str:
    """Who stages an upload (for the per-client quota and the disconnect sweep): the page's socket id if it sends
    one (``client_id``), else the ``X-Sonomap-Client`` header, else the remote address."""
    who = body.get("client_id") or request.headers.get("X-Sonomap-Client") or request.remote_addr or ""
    return str(who)[:100]


def register(app: Any, socketio: Any, *, collections: Any, settings: Any) -> UploadStore:
    """Add the upload routes and the ``preprocess`` / ``remap`` job kinds with their socket events."""
    from preprocess.ingest import reconcile_all

    store = UploadStore(settings.collections_dir, _limits(settings))
    runner = app.extensions["sonomap"]["jobs"]
    runner.register(PreprocessKind(store, collections))
    runner.register(RemapKind(collections, store.collections_root))
    for note in reconcile_all(store.collections_root):  # an ingest killed mid-way (kill -9): settle it now
        log.warning("%s", note)
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
        up = store.create(body.get("file_name", ""), body.get("size_bytes"), owner=_owner(body))
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

    @socketio.on(protocol.PREPROCESS)
    def on_preprocess(data: Any = None):
        if isinstance(data, dict) and isinstance(data.get("collection"), str):
            join_room(protocol.collection_room(data["collection"]))
        return runner.submit(PreprocessKind.name, request.sid, data)

    @socketio.on(protocol.PREPROCESS_CANCEL)
    def on_cancel(data: Any = None):
        return runner.cancel(request.sid, data.get("job_id") if isinstance(data, dict) else None)

    @socketio.on(protocol.REMAP)
    def on_remap(data: Any = None):
        return runner.submit(RemapKind.name, request.sid, data)

    def sweep_forever() -> None:
        every = max(1.0, min(SWEEP_EVERY_S, store.limits.stale_after_s / 4))
        while True:
            socketio.sleep(every)
            try:
                store.cleanup_stale()
            except Exception:  # noqa: BLE001 - a sweep that fails is retried at the next tick
                log.exception("sweeping stale uploads failed")

    sweeper: list[bool] = []

    @bp.before_request
    def start_sweeper() -> None:  # the timer starts with the first upload request (test apps start none)
        if not sweeper:
            sweeper.append(True)
            socketio.start_background_task(sweep_forever)

    app.register_blueprint(bp)
    hooks = app.extensions["sonomap"].setdefault("on_disconnect", [])
    hooks.append(lambda sid: store.discard_incomplete(owner=sid))
    return store
