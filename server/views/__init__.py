"""REST views: thin wrappers around the registry and the collection format (see ARCHITECTURE.md)."""

from __future__ import annotations

from flask import Flask

from ..registry import Registry
from ..settings import Settings


def register(app: Flask, *, registry: Registry, settings: Settings) -> None:
    from . import api, files, frontend

    app.register_blueprint(api.blueprint(registry))
    app.register_blueprint(files.blueprint(registry, max_age_s=settings.asset_max_age_s))
    app.register_blueprint(frontend.blueprint(settings.static_dir, max_age_s=365 * 24 * 3600))
