"""Sprite sheets and audio sprites: ETag, Cache-Control, HTTP Range (206); only files inside the collections folder.

File names are whitelisted by pattern (``sheet_00012.jpg``, ``sprite_00003.flac``), then the resolved path must
still lie inside the collection folder (a symlink pointing out is refused too). Anything else is a 404 that says
what a valid name looks like, so ``..%2f`` tricks never reach the file system.

Range per RFC 9110 (section 14): one satisfiable range is 206 with ``Content-Range``; a suffix longer than the
file is the whole file (206, ``bytes 0-(size-1)/size``); an unsatisfiable range is 416 with ``Content-Range:
bytes */size``; several ranges, other units and malformed specs are ignored (200, the whole file), as the RFC
allows.
"""

from __future__ import annotations

import re
from pathlib import Path

from flask import Blueprint, jsonify, request, send_file
from werkzeug.exceptions import RequestedRangeNotSatisfiable

from preprocess.errors import NotFoundError

from ..registry import Registry

_SPRITE_RE = re.compile(r"^sheet_\d{5}\.(jpg|jpeg|png|webp)$")
_AUDIO_RE = re.compile(r"^sprite_\d{5}\.(flac|wav|ogg|mp3)$")
_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
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
        size = path.stat().st_size
        if not normalise_range(request.environ, size):
            return _unsatisfiable(size)
        try:
            resp = send_file(
                path,
                mimetype=_MIMETYPES[path.suffix.lstrip(".").lower()],
                conditional=True,  # ETag + Last-Modified, 304, and Range -> 206
                etag=True,
                max_age=max_age_s,
            )
        except RequestedRangeNotSatisfiable:
            return _unsatisfiable(size)
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


def normalise_range(environ: dict, size: int) -> bool:
    """Rewrite ``environ["HTTP_RANGE"]`` so Werkzeug answers per RFC 9110; False if it is unsatisfiable.

    A suffix longer than the file becomes ``bytes=0-``; several ranges, other units and malformed or
    backwards specs are dropped (the whole file, 200). ``bytes=-0`` and a start at or past the end are
    unsatisfiable (the caller answers 416).
    """
    raw = environ.get("HTTP_RANGE")
    if raw is None:
        return True
    m = _RANGE_RE.match(raw.replace(" ", "").lower())
    if m is None or (not m.group(1) and not m.group(2)):
        environ.pop("HTTP_RANGE")  # several ranges, another unit, or garbage: ignore it
        return True
    first, last = m.group(1), m.group(2)
    if not first:  # suffix: the last N bytes
        n = int(last)
        if n == 0:
            return False
        if n >= size:
            environ["HTTP_RANGE"] = "bytes=0-"
        return True
    if last and int(last) < int(first):
        environ.pop("HTTP_RANGE")
        return True
    return int(first) < size or "HTTP_IF_RANGE" in environ  # If-Range: Werkzeug decides (and may send 200)


def _unsatisfiable(size: int):
    resp = jsonify({"ok": False, "error": f"range not satisfiable: the file has {size} bytes", "status": 416})
    resp.status_code = 416
    resp.headers["Content-Range"] = f"bytes */{size}"
    resp.headers["Accept-Ranges"] = "bytes"
    return resp
