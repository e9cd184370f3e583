"""Sprite sheets and audio sprites: ETag, Cache-Control, HTTP Range (206); only files inside the collections folder.

File names are whitelisted by pattern (``sheet_00012.jpg``, ``sprite_00003.flac``), then the resolved path must
still lie inside the collection folder (a symlink pointing out is refused too). Anything else is a 404 that says
what a valid name looks like, so ``..%2f`` tricks never reach the file system.
"""

from __future__ import annotations

import re
from pathlib import Path

from flask import Blueprint, send_file

from preprocess.errors import NotFoundError

from ..registry import Registry

_SPRITE_RE = re.compile(r"^sheet_\d{5}\.(jpg|jpeg|png|webp)$")
_AUDIO_RE = re.compile(r"^sprite_\d{5}\.(flac|wav|ogg|mp3)$")
_MIMETYPES = {
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "ogg": "audio/ogg",
    "mp3": "audio/mpeg",
}


def safe_file(base: Path, root: Path, file: str, pattern: re.Pattern, example: str) -> Path:
    """``base/file`` if ``file`` matches ``pattern`` and resolves inside ``root``; NotFoundError otherwise."""
    if not isinstance(file, str) or not pattern.match(file):
        raise NotFoundError(f"no such file {file!r}: names look like {example}")
    path = (base / file).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise NotFoundError(f"no such file {file!r}")
    return path


def blueprint(registry: Registry, *, max_age_s: int) -> Blueprint:
    bp = Blueprint("files", __name__)

    def _send(path: Path):
        resp = send_file(
            path,
            mimetype=_MIMETYPES[path.suffix.lstrip(".").lower()],
            conditional=True,  # ETag + Last-Modified, 304, and Range -> 206
            etag=True,
            max_age=max_age_s,
        )
        resp.headers["Accept-Ranges"] = "bytes"
        return resp

    @bp.get("/api/collections/<name>/sprites/<path:file>")
    def sprite(name: str, file: str):
        c = registry.get(name)
        return _send(safe_file(c.sprites_dir, registry.root, file, _SPRITE_RE, "sheet_00000.jpg"))

    @bp.get("/api/collections/<name>/audio/<path:file>")
    def audio(name: str, file: str):
        c = registry.get(name)
        return _send(safe_file(c.audio_dir, registry.root, file, _AUDIO_RE, "sprite_00000.flac"))

    return bp
