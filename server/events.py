"""Socket.IO event handlers: thin; validation and work live in the job kinds (:mod:`server.jobs`)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import request
from flask_socketio import join_room

from . import protocol
from .errors import reply_for
from .jobs import ClusterKind, JobRunner
from .registry import Registry

log = logging.getLogger(__name__)


def room(collection: str) -> str:
    """The room a collection's label changes are broadcast to (see :func:`server.protocol.collection_room`)."""
    return protocol.collection_room(collection)


def register(
    socketio,
    *,
    jobs: JobRunner,
    cluster: ClusterKind,
    registry: Registry,
    on_disconnect: list[Callable[[str], Any]] | None = None,
) -> None:
    hooks = on_disconnect if on_disconnect is not None else []

    @socketio.on(protocol.JOIN)
    def on_join(data: Any = None):
        name = data.get("collection") if isinstance(data, dict) else None
        try:
            registry.get(name if isinstance(name, str) else "")
        except Exception as e:  # noqa: BLE001 - translated once
            return reply_for(e, context="join")
        join_room(room(name))
        cluster.prefetch(name)
        return {"ok": True, "room": room(name)}

    @socketio.on(protocol.CLUSTER)
    def on_cluster(data: Any = None):
        return jobs.submit(ClusterKind.name, request.sid, data)

    @socketio.on(protocol.CANCEL)
    def on_cancel(data: Any = None):
        job_id = data.get("job_id") if isinstance(data, dict) else None
        return jobs.cancel(request.sid, job_id)

    @socketio.on("disconnect")
    def on_disconnect_(*_args):
        sid = request.sid
        jobs.disconnect(sid)
        for hook in hooks:
            try:
                hook(sid)
            except Exception as e:  # noqa: BLE001 - one failing clean-up must not skip the others
                reply_for(e, context="disconnect clean-up")

    @socketio.on_error_default
    def on_error(e: Exception):
        return reply_for(e, context="socket handler")
