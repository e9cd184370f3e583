"""The Flask app and its one SocketIO (threading mode, one worker): ``create_app(settings) -> (app, socketio)``."""

from __future__ import annotations

import logging

from flask import Flask, jsonify, request
from flask_socketio import SocketIO
from werkzeug.exceptions import HTTPException

from . import events, views
from .errors import translate
from .jobs import ClusterKind, JobRunner
from .registry import Registry
from .settings import Settings
from .views.api import prebuild_clip_tables
from .warmup import Step, Warmup, default_steps

log = logging.getLogger(__name__)


def _error(message: str, status: int):
    resp = jsonify({"ok": False, "error": message, "status": status})
    resp.status_code = status
    return resp


def create_app(settings: Settings) -> tuple[Flask, SocketIO]:
    """Build the app: REST views, socket events, cluster jobs, labels routes (if present), background warm-up.

    Extras on ``app.extensions["sonomap"]``: ``registry``, ``jobs`` (the :class:`JobRunner`), ``cluster``,
    ``warmup``, ``settings``, ``on_disconnect``, ``uploads``.
    """
    app = Flask(__name__, static_folder=None)
    app.config["SECRET_KEY"] = settings.secret_key
    app.json.sort_keys = False
    # async_handlers=False: one client's events are handled in the order sent, so "a newer cluster request supersedes
    # the older one" holds even for rapid slider moves (handlers are short; long work runs in background tasks).
    socketio = SocketIO(
        app, async_mode="threading", async_handlers=False, cors_allowed_origins=None, max_http_buffer_size=16 * 2**20
    )

    registry = Registry(
        settings.collections_dir, max_cached=settings.max_cached_arrays, max_clusterers=settings.max_clusterers
    )
    steps = default_steps(umap=settings.warmup_umap) if settings.warmup else []
    if settings.warmup:  # after the compiles, so a cluster job never waits for it; the page's first load gains
        steps.append(Step("clip tables", lambda: prebuild_clip_tables(registry), 5.0))
    warmup = Warmup(steps)
    jobs = JobRunner(socketio)
    cluster = jobs.register(ClusterKind(jobs, registry, warmup, cache_size=settings.result_cache_size))
    app.extensions["sonomap"] = {
        "registry": registry,
        "jobs": jobs,
        "cluster": cluster,
        "on_disconnect": [],  # callables(sid) run when a socket client leaves
        "warmup": warmup,
        "settings": settings,
    }

    @app.errorhandler(HTTPException)
    def on_http_error(e: HTTPException):
        if e.code == 304 or (e.code or 500) < 400:
            return e
        messages = {404: f"not found: {request.path}", 405: f"method {request.method} not allowed on {request.path}"}
        return _error(messages.get(e.code, e.description or e.name), e.code or 500)

    @app.errorhandler(Exception)
    def on_error(e: Exception):  # expected errors say what is allowed; others "internal error (id …)", logged
        reply = translate(e, context=f"{request.method} {request.path}")
        resp = jsonify(reply.body())
        resp.status_code = reply.status
        return resp

    @app.get("/api/status")
    def status():
        return jsonify({"ok": True, "warmup": warmup.status(), "collections": registry.names()})

    views.register(app, registry=registry, settings=settings)
    events.register(
        socketio,
        jobs=jobs,
        cluster=cluster,
        registry=registry,
        on_disconnect=app.extensions["sonomap"]["on_disconnect"],
    )

    from . import labels_api, learn_api, recording_api, refine_api, species_api, upload_api

    labels_api.register(app, socketio, collections=registry)
    for module in (upload_api, recording_api, refine_api):  # uploads, the recording view, refine
        module.register(app, socketio, collections=registry, settings=settings)
    learn_api.register(app, socketio, collections=registry, jobs=jobs)  # query by example, classifier, review queue
    species_api.register(app, socketio, collections=registry)  # BirdNET beside the labels

    from . import security

    security.install(app, socketio, settings)  # token, Host, Origin/CSRF, read-only, body limits
    if settings.warmup:
        warmup.start(socketio.start_background_task)
    return app, socketio
