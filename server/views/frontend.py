"""The browser app: ``/`` is static/index.html, ``/static/...`` the files under static/.

Bundle files whose name carries a content hash (esbuild's ``name-HASH.js``) are cached for a year (immutable);
everything else is revalidated by ETag on each load, so a rebuilt bundle is picked up at once.
"""

from __future__ import annotations

import re
from pathlib import Path

from flask import Blueprint, send_from_directory

from preprocess.errors import NotFoundError

_HASHED_RE = re.compile(r"[-.][A-Za-z0-9]{8,}\.(js|css|map|woff2?|png|svg|jpg)$")


def blueprint(static_dir: Path, *, max_age_s: int) -> Blueprint:
    static_dir = Path(static_dir).resolve()
    bp = Blueprint("frontend", __name__)

    @bp.get("/")
    def index():
        if not (static_dir / "index.html").is_file():
            raise NotFoundError(f"no front end at {static_dir}/index.html: build it with npm run build")
        resp = send_from_directory(static_dir, "index.html", max_age=0)
        resp.headers["Cache-Control"] = "no-cache"
        return resp

    @bp.get("/static/<path:file>")
    def static_file(file: str):
        hashed = bool(_HASHED_RE.search(file))
        resp = send_from_directory(static_dir, file, max_age=max_age_s if hashed else 0)
        resp.headers["Cache-Control"] = f"public, max-age={max_age_s}, immutable" if hashed else "no-cache"
        return resp

    return bp
