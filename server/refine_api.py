"""Refine in the server: the ``refine`` job kind (:mod:`server.jobs.refine`) and what the page reads of the result.

``GET /api/collections/<c>/refined`` → ``{ok, refined: [refined_state…]}`` (one entry per refined feature set; see
:func:`server.jobs.refine.refined_state`). Socket ``refine`` starts a job (``cancel {job_id}`` stops it).
"""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify, request

from . import protocol
from .jobs.refine import RefineKind, refined_state


def register(app: Flask, socketio: Any, *, collections: Any, settings: Any) -> RefineKind:
    """Register the ``refine`` kind on the app's job runner, its socket event and its REST route."""
    runner = app.extensions["sonomap"]["jobs"]
    kind = runner.register(RefineKind(collections, settings.collections_dir))
    app.extensions["sonomap"]["refine"] = kind

    @socketio.on(protocol.REFINE)
    def on_refine(data: Any = None):
        return runner.submit(RefineKind.name, request.sid, data)

    @app.get("/api/collections/<name>/refined")
    def refined_sets(name: str):
        c = collections.get(name)
        states = [refined_state(c, f) for f in c.feature_sets()]
        return jsonify({"ok": True, "refined": [s for s in states if s]})

    return kind
