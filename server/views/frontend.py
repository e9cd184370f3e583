"""The browser app: ``/`` is static/index.html, ``/static/...`` the files under static/.

datasette-style caching: ``/`` rewrites every local ``/static/...`` URL in index.html to carry the file's content
hash (``/static/dist/app.js?v=3f2a9c01d4``); a request with the current hash is cached for a year (immutable), so a
rebuilt bundle gets a new URL and is fetched at once. Without a hash (or with a stale one) files are revalidated by
ETag (``no-cache``). Bundle files named with a content hash (``name-HASH.js``) are immutable too.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from flask import Blueprint, Response, current_app, request, send_from_directory

from preprocess.errors import NotFoundError

_HASHED_RE = re.compile(r"[-.][A-Za-z0-9]{8,}\.(js|css|map|woff2?|png|svg|jpg)$")
_LOCAL_URL_RE = re.compile(r'((?:href|src)=")(/static/[^"?#]+)(")')


def blueprint(static_dir: Path, *, max_age_s: int) -> Blueprint:
    static_dir = Path(static_dir).resolve()
    bp = Blueprint("frontend", __name__)
    hashes: dict[Path, tuple[tuple[int, int], str]] = {}

    def content_hash(path: Path) -> str | None:
        try:
            st = path.stat()
        except OSError:
            return None
        stamp = (st.st_size, st.st_mtime_ns)
        hit = hashes.get(path)
        if hit is None or hit[0] != stamp:
            hit = (stamp, hashlib.sha1(path.read_bytes()).hexdigest()[:10])
            hashes[path] = hit
        return hit[1]

    def versioned(match: re.Match) -> str:
        url = match.group(2)
        path = (static_dir / url[len("/static/") :]).resolve()
        h = content_hash(path) if path.is_relative_to(static_dir) else None
        return f"{match.group(1)}{url}{f'?v={h}' if h else ''}{match.group(3)}"

    @bp.get("/")
    def index():
        page = static_dir / "index.html"
        if not page.is_file():
            raise NotFoundError(f"no front end at {page}: build it with npm run build")
        html = _LOCAL_URL_RE.sub(versioned, page.read_text(encoding="utf-8"))
        guard = current_app.extensions["sonomap"].get("guard")  # only reached with a valid token
        meta = f'<meta name="sonomap-token" content="{guard.token if guard and guard.token else ""}">'
        html = html.replace("<head>", f"<head>\n  {meta}", 1)
        resp = Response(html, mimetype="text/html")
        resp.set_etag(hashlib.sha1(html.encode()).hexdigest()[:20])
        resp.headers["Cache-Control"] = "no-cache"
        return resp.make_conditional(request)

    @bp.get("/static/<path:file>")
    def static_file(file: str):
        resp = send_from_directory(static_dir, file, max_age=0)  # safe_join: no way out of static/
        path = (static_dir / file).resolve()
        v = request.args.get("v")
        immutable = bool(_HASHED_RE.search(file)) or (v is not None and v == content_hash(path))
        resp.headers["Cache-Control"] = f"public, max-age={max_age_s}, immutable" if immutable else "no-cache"
        return resp

    return bp
