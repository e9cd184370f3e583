"""Socket.IO event handlers: thin; validation and work live in :mod:`server.jobs`."""

from __future__ import annotations

import logging
from typing import Any

from flask import request
from flask_socketio import join_room

from preprocess.errors import SonomapError

from .jobs import JobManager
from .registry import Registry

log = logging.getLogger(__name__)


def room(collection: str) -> str:
    """The room a collection's label changes are broadcast to."""
    return f"collection:{collection}"


def register(socketio, *, jobs: JobManager, registry: Registry) -> None:
    @socketio.on("join")
    def on_join(data: Any = None):
        name = data.get("collection") if isinstance(data, dict) else None
        try:
            registry.get(name if isinstance(name, str) else "")
        except SonomapError as e:
            return {"ok": False, "error": str(e), "status": e.status}
        join_room(room(name))
        jobs.prefetch(name)
        return {"ok": True, "room": room(name)}

    @socketio.on("cluster")
    def on_cluster(data: Any = None):
        return jobs.submit(request.sid, data)

    @socketio.on("cancel")
    def on_cancel(data: Any = None):
        job_id = data.get("job_id") if isinstance(data, dict) else None
        return jobs.cancel(request.sid, job_id)

    @socketio.on("disconnect")
    def on_disconnect(*_args):
        jobs.disconnect(request.sid)

    @socketio.on_error_default
    def on_error(e: Exception):
        if isinstance(e, SonomapError):
            return {"ok": False, "error": str(e), "status": e.status}
        log.exception("socket handler failed")
        return {"ok": False, "error": f"internal error ({type(e).__name__})", "status": 500}
