"""REST routes and socket events for the user's classes (thin: the work is in ``preprocess.labels``/``export``).

``register(app, socketio, collections=registry)`` adds the blueprint and the ``join``/``leave`` socket events.
After every change the store's change summary is broadcast as ``labels:changed`` ``{collection, change,
version}`` to the room ``collection:<name>``, so every open tab of that collection agrees. Errors are raised as
``SonomapError``s; the app's error handler turns them into ``{ok: false, error, status}``.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Blueprint, jsonify, request, send_file
from flask_socketio import join_room, leave_room

from preprocess.errors import ParameterError, SonomapError
from preprocess.export import FORMATS, export_labels, import_labels
from preprocess.labels import LabelStore

from . import protocol
from .errors import reply_for

CHANGED_EVENT = protocol.LABELS_CHANGED
#: Largest accepted import upload.
MAX_IMPORT_BYTES = 256 * 1024 * 1024


def room_name(collection: str) -> str:
    return protocol.collection_room(collection)


def register(app: Any, socketio: Any, *, collections: Any) -> Blueprint:
    """Add the labels routes to ``app`` and the room events to ``socketio``; return the blueprint."""
    bp = Blueprint("labels", __name__, url_prefix="/api/collections/<name>")

    @contextmanager
    def opened(name: str) -> Iterator[tuple[Any, LabelStore]]:
        collection = collections.get(name)
        store = LabelStore.open(collection)
        try:
            yield collection, store
        finally:
            store.close()

    def changed(name: str, change: dict[str, Any]) -> Any:
        public = dict(change)
        socketio.emit(
            CHANGED_EVENT, {"collection": name, "change": public, "version": change["version"]}, to=room_name(name)
        )
        return jsonify({"ok": True, **public})

    @bp.get("/classes")
    def list_classes(name: str) -> Any:
        with opened(name) as (_c, store):
            state = store.state()
        members = {str(k): v.tolist() for k, v in state.pop("members").items()}
        return jsonify({"ok": True, **state, "members": members})

    @bp.post("/classes")
    def create_class(name: str) -> Any:
        body = _body()
        _only(body, {"name", "color", "note", "who"})
        with opened(name) as (_c, store):
            change = store.create_class(
                body.get("name"), color=body.get("color"), note=body.get("note", ""), who=_who(body)
            )
        return changed(name, change), 201

    @bp.patch("/classes/<int:class_id>")
    def update_class(name: str, class_id: int) -> Any:
        body = _body()
        _only(body, {"name", "color", "note", "who"})
        with opened(name) as (_c, store):
            change = store.update_class(
                class_id, name=body.get("name"), color=body.get("color"), note=body.get("note"), who=_who(body)
            )
        return changed(name, change)

    @bp.delete("/classes/<int:class_id>")
    def delete_class(name: str, class_id: int) -> Any:
        body = _body(optional=True)
        with opened(name) as (_c, store):
            change = store.delete_class(class_id, who=_who(body))
        return changed(name, change)

    @bp.post("/classes/<int:class_id>/members")
    def add_members(name: str, class_id: int) -> Any:
        body = _body()
        _only(body, {"clip_ids", "source", "who"})
        with opened(name) as (_c, store):
            change = store.add_members(class_id, _clip_ids(body), source=body.get("source"), who=_who(body))
        return changed(name, change)

    @bp.delete("/classes/<int:class_id>/members")
    def remove_members(name: str, class_id: int) -> Any:
        body = _body()
        _only(body, {"clip_ids", "who"})
        with opened(name) as (_c, store):
            change = store.remove_members(class_id, _clip_ids(body), who=_who(body))
        return changed(name, change)

    @bp.post("/labels/undo")
    def undo(name: str) -> Any:
        body = _body(optional=True)
        with opened(name) as (_c, store):
            change = store.undo(who=_who(body))
        return changed(name, change)

    @bp.post("/labels/redo")
    def redo(name: str) -> Any:
        body = _body(optional=True)
        with opened(name) as (_c, store):
            change = store.redo(who=_who(body))
        return changed(name, change)

    @bp.get("/export")
    def export(name: str) -> Any:
        fmt = request.args.get("format", "csv")
        if fmt not in FORMATS:
            raise ParameterError(f"unknown export format {fmt!r}; allowed: {', '.join(FORMATS)}")
        labelled_only = _flag(request.args.get("labelled_only", "0"), "labelled_only")
        with opened(name) as (collection, store):
            result = export_labels(collection, format=fmt, labelled_only=labelled_only, store=store)
        return send_file(
            io.BytesIO(result.data), mimetype=result.media_type, as_attachment=True, download_name=result.filename
        )

    @bp.post("/import")
    def import_csv(name: str) -> Any:
        upload = request.files.get("file")
        if upload is None:
            raise ParameterError("upload the CSV as the multipart form field 'file'")
        data = upload.stream.read(MAX_IMPORT_BYTES + 1)
        if len(data) > MAX_IMPORT_BYTES:
            raise ParameterError(f"the file is larger than {MAX_IMPORT_BYTES // 2**20} MiB")
        who = request.form.get("who") or request.headers.get("X-Sonomap-User") or "browser"
        with opened(name) as (collection, store):
            report = import_labels(
                collection,
                data,
                filename=upload.filename or "",
                who=who,
                store=store,
                format=request.form.get("format") or None,  # csv | raven | audacity; default: from the content
                recording=request.form.get("recording") or None,
                annot_col=request.form.get("annot_col") or None,
            )
        change = report.pop("change")
        socketio.emit(
            CHANGED_EVENT, {"collection": name, "change": change, "version": change["version"]}, to=room_name(name)
        )
        return jsonify({"ok": True, **report})

    app.register_blueprint(bp)

    # socket events: join/leave a collection's room (skipped if the app already handles them)
    def on_join(data: Any) -> dict[str, Any]:
        try:
            name = _room_request(data)
            collections.get(name)
        except SonomapError as e:
            return reply_for(e, context="room")
        join_room(room_name(name))
        return {"ok": True, "room": room_name(name)}

    def on_leave(data: Any) -> dict[str, Any]:
        try:
            name = _room_request(data)
        except SonomapError as e:
            return reply_for(e, context="room")
        leave_room(room_name(name))
        return {"ok": True}

    for event, handler in ((protocol.JOIN, on_join), (protocol.LEAVE, on_leave)):
        if not _has_handler(socketio, event):
            socketio.on(event)(handler)
    return bp


# ---------------------------------------------------------------------------------------------
# request helpers


def _body(*, optional: bool = False) -> dict[str, Any]:
    if optional and not request.get_data(cache=True):
        return {}
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ParameterError("expected a JSON object body (Content-Type: application/json)")
    return body


def _only(body: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise ParameterError(f"unknown field(s) {unknown}; allowed: {', '.join(sorted(allowed))}")


def _clip_ids(body: dict[str, Any]) -> Any:
    if "clip_ids" not in body:
        raise ParameterError("missing 'clip_ids': a list of clip ids")
    ids = body["clip_ids"]
    if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        raise ParameterError("'clip_ids' must be a flat list of whole numbers, e.g. [3, 17, 42]")
    return ids


def _who(body: dict[str, Any]) -> str:
    who = body.get("who") or request.headers.get("X-Sonomap-User") or "browser"
    return str(who)[:100]


def _flag(value: str, name: str) -> bool:
    v = value.strip().lower()
    if v in ("1", "true", "yes"):
        return True
    if v in ("0", "false", "no", ""):
        return False
    raise ParameterError(f"{name} must be 0 or 1, got {value!r}")


def _room_request(data: Any) -> str:
    name = data.get("collection") if isinstance(data, dict) else None
    if not isinstance(name, str) or not name:
        raise ParameterError("join/leave needs {collection: name}")
    return name


def _has_handler(socketio: Any, event: str) -> bool:
    if socketio.server is not None:
        return event in socketio.server.handlers.get("/", {})
    return any(h[0] == event for h in socketio.handlers)
