"""The whole-recording view's REST routes (thin: the work is in :mod:`preprocess.recording_view`).

::

    GET /api/collections/<c>/recordings/<rid>                         {ok, recording, duration_s, tile, axis,
                                                                       audio_mime, audio_url, clips: {column: [...]}}
    GET /api/collections/<c>/recordings/<rid>/tiles/<tile_s>/<i>.jpg  spectrogram tile (rendered once, then cached)
    GET /api/collections/<c>/recordings/<rid>/audio                   the recording's audio; HTTP Range (206)

The audio is the original file the collection was built from (a path under the manifest's inputs, or
the collection's ``sources/`` for uploads), streamed with Range so an hour-long recording is never
sent whole; formats a browser cannot play are converted once to FLAC inside the collection.
"""

from __future__ import annotations

import threading
from typing import Any

from flask import Blueprint, jsonify, send_file

from preprocess import recording_view as rv

#: tiles rendered at once (each is ~0.1-0.5 s of one core)
_RENDER_SLOTS = threading.BoundedSemaphore(2)


def register(app: Any, socketio: Any, *, collections: Any, settings: Any) -> Blueprint:
    """Add the recording routes to ``app`` (``socketio`` is unused: playback sync happens in the browser)."""
    bp = Blueprint("recordings", __name__, url_prefix="/api/collections/<name>/recordings/<int:rid>")
    max_age = int(getattr(settings, "asset_max_age_s", 7 * 24 * 3600))

    @bp.get("")
    def info(name: str, rid: int):
        c = collections.get(name)
        out = rv.recording_info(c, rid)
        out["clips"] = rv.recording_clips(c, rid)
        out["audio_url"] = f"/api/collections/{name}/recordings/{rid}/audio"
        return jsonify({"ok": True, **out})

    @bp.get("/tiles/<int:tile_s>/<int:index>.jpg")
    def tile(name: str, rid: int, tile_s: int, index: int):
        c = collections.get(name)
        with _RENDER_SLOTS:
            path = rv.tile_path(c, rid, index, tile_s=tile_s)
        return send_file(path, mimetype="image/jpeg", conditional=True, etag=True, max_age=max_age)

    @bp.get("/audio")
    def audio(name: str, rid: int):
        c = collections.get(name)
        path, mime = rv.playable_audio(c, rid)
        resp = send_file(path, mimetype=mime, conditional=True, etag=True, max_age=3600)
        resp.headers["Accept-Ranges"] = "bytes"
        return resp

    app.register_blueprint(bp)
    return bp
