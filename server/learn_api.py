"""REST routes and socket events of the learning loop (thin: the work is in ``preprocess.learn`` / ``similar``).

``register(app, socketio, collections=registry, jobs=runner)`` adds (all under ``/api/collections/<c>``)::

    GET    /learn/model                          {ok, model: {round, features, n_clips, time_s, classes: [...],
                                                  history}}  (model: null until a round was trained)
    GET    /learn/scores.f32?class_id=ID         little-endian float32 [n_clips], that class's scores in [0, 1]
    GET    /learn/scores.f32                     b"SMS1", uint32 LE header length, JSON header {n, class_ids,
                                                  shape} (space-padded to 8 bytes), float32 LE [n, C] row-major
    GET    /learn/queue?class_id=&n=&exclude=    {ok, class_id, threshold, round, items: [{clip_id, score,
                                                  strategy, bin, bin_size, bin_draws, weight, class_id, round}]}
    POST   /learn/precision                      {items, judgements: {clip_id: bool}, threshold} ->
                                                  {ok, precision, n_judged, stderr}
    GET    /learn/export?format=predictions|detections|model    a download
    GET    /negatives                            {ok, negatives: {class_id: [clip ids]}}
    POST   /classes/<id>/negatives               {clip_ids, source?, who?} -> change (kind "negate")
    DELETE /classes/<id>/negatives               {clip_ids, who?} -> change (kind "unnegate")
    POST   /classes/<id>/accept-above            {who?} -> change (kind "add", source accept-above)

Label changes are broadcast as ``labels:changed`` like the labels routes'. Socket events ``similar`` and ``train``
start jobs of :mod:`server.jobs.learn`.
"""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import numpy as np
from flask import Blueprint, Response, jsonify, request, send_file

from preprocess.errors import ParameterError
from preprocess.labels import LabelStore

from . import protocol
from .jobs.learn import SimilarKind, TrainKind, train_summary
from .labels_api import _body, _clip_ids, _only, _who

EXPORT_FORMATS = ("predictions", "detections", "model")
MAX_QUEUE = 500


def register(app: Any, socketio: Any, *, collections: Any, jobs: Any) -> Blueprint:
    """Add the learning routes to ``app``, the ``similar`` / ``train`` kinds to ``jobs`` and their socket events."""
    from flask import request as flask_request

    from preprocess import learn

    bp = Blueprint("learn", __name__, url_prefix="/api/collections/<name>")
    similar_kind = jobs.register(SimilarKind(collections))
    jobs.register(TrainKind(collections))
    app.extensions["sonomap"]["similar"] = similar_kind

    def changed(name: str, change: dict[str, Any]) -> Any:
        socketio.emit(
            protocol.LABELS_CHANGED,
            {"collection": name, "change": change, "version": change.get("version")},
            to=protocol.collection_room(name),
        )
        return jsonify({"ok": True, **change})

    @bp.get("/learn/model")
    def model(name: str) -> Any:
        c = collections.get(name)
        if not c.learn_meta_path.is_file():  # none trained yet: not an error for a page that asks at boot
            return jsonify({"ok": True, "model": None})
        m = learn.load_model(c)
        meta = json.loads(c.learn_meta_path.read_text())
        summary = train_summary(c, m, n_clips=int(meta.get("n_scored", 0)))
        return jsonify({"ok": True, "model": {**summary, "history": meta.get("history", [])}})

    @bp.get("/learn/scores.f32")
    def scores(name: str) -> Any:
        c = collections.get(name)
        m = learn.load_model(c)
        s = learn.load_scores(c)
        cid = request.args.get("class_id")
        if cid is not None:
            col = _column(m, _int_arg(cid, "class_id"))
            return Response(np.ascontiguousarray(s[:, col], "<f4").tobytes(), mimetype="application/octet-stream")
        header = json.dumps({"n": int(s.shape[0]), "class_ids": [int(k) for k in m.class_ids], "shape": list(s.shape)})
        header = header.encode() + b" " * (-len(header) % 8)
        body = b"SMS1" + np.uint32(len(header)).astype("<u4").tobytes() + header
        return Response(body + np.ascontiguousarray(s, "<f4").tobytes(), mimetype="application/octet-stream")

    @bp.get("/learn/queue")
    def queue(name: str) -> Any:
        c = collections.get(name)
        cid = _int_arg(request.args.get("class_id"), "class_id")
        n = _int_arg(request.args.get("n", "20"), "n")
        if not 1 <= n <= MAX_QUEUE:
            raise ParameterError(f"n must be in [1, {MAX_QUEUE}], got {n}")
        raw = request.args.get("exclude", "")
        exclude = [_int_arg(v, "exclude") for v in raw.split(",") if v.strip()] if raw else None
        seed = _int_arg(request.args.get("seed", "0"), "seed")
        if seed < 0:
            raise ParameterError(f"seed must be a non-negative integer, got {seed}")
        with LabelStore.open(c) as store:
            items = learn.review_queue(c, cid, n=n, exclude=exclude, random_state=seed, store=store)
        m = learn.load_model(c)
        col = _column(m, cid)
        return jsonify(
            {
                "ok": True,
                "class_id": cid,
                "threshold": float(m.thresholds[col]),
                "round": int(m.info.get("round", 0)),
                "items": items,
            }
        )

    @bp.post("/learn/precision")
    def precision(name: str) -> Any:
        collections.get(name)
        body = _body()
        _only(body, {"items", "judgements", "threshold"})
        items, judged, thr = body.get("items"), body.get("judgements"), body.get("threshold")
        if not isinstance(items, list) or not all(isinstance(it, dict) for it in items):
            raise ParameterError("items must be the queue's items")
        if not isinstance(judged, dict) or not all(isinstance(v, bool) for v in judged.values()):
            raise ParameterError("judgements must be {clip_id: true | false}")
        if isinstance(thr, bool) or not isinstance(thr, (int, float)) or not np.isfinite(thr):
            raise ParameterError("threshold must be a number")
        try:
            clean = [
                {
                    "clip_id": int(it["clip_id"]),
                    "score": float(it["score"]),
                    "strategy": str(it["strategy"]),
                    "weight": None if it.get("weight") is None else float(it["weight"]),
                }
                for it in items
            ]
            judgements = {int(k): v for k, v in judged.items()}
        except (KeyError, TypeError, ValueError):
            raise ParameterError("each item needs clip_id, score, strategy and weight") from None
        return jsonify({"ok": True, **learn.estimate_precision(clean, judgements, float(thr))})

    @bp.get("/learn/export")
    def export(name: str) -> Any:
        from preprocess import predictions_export as px

        fmt = request.args.get("format", "predictions")
        if fmt not in EXPORT_FORMATS:
            raise ParameterError(f"unknown format {fmt!r}; allowed: {', '.join(EXPORT_FORMATS)}")
        c = collections.get(name)
        if fmt == "predictions":
            data, mime, fname = px.predictions_csv(c).encode(), "text/csv", f"{name}_predictions.csv"
        elif fmt == "model":
            data, mime, fname = px.model_file(c), "application/octet-stream", f"{name}_classifier.npz"
        else:
            tables = px.detection_tables(c)
            if len(tables) == 1:
                ((path, text),) = tables.items()
                data, mime, fname = text.encode(), "text/plain", path.rsplit("/", 1)[-1]
            else:
                buf = io.BytesIO()
                with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
                    for path, text in tables.items():
                        z.writestr(path, text)
                data, mime, fname = buf.getvalue(), "application/zip", f"{name}_detections.zip"
        return send_file(io.BytesIO(data), mimetype=mime, as_attachment=True, download_name=fname)

    @bp.get("/negatives")
    def negatives(name: str) -> Any:
        with LabelStore.open(collections.get(name)) as store:
            neg = store.negatives()
        return jsonify({"ok": True, "negatives": {str(k): v.tolist() for k, v in neg.items()}})

    @bp.post("/classes/<int:class_id>/negatives")
    def add_negatives(name: str, class_id: int) -> Any:
        body = _body()
        _only(body, {"clip_ids", "source", "who"})
        with LabelStore.open(collections.get(name)) as store:
            change = store.add_negatives(class_id, _clip_ids(body), source=body.get("source"), who=_who(body))
        return changed(name, change)

    @bp.delete("/classes/<int:class_id>/negatives")
    def remove_negatives(name: str, class_id: int) -> Any:
        body = _body()
        _only(body, {"clip_ids", "who"})
        with LabelStore.open(collections.get(name)) as store:
            change = store.remove_negatives(class_id, _clip_ids(body), who=_who(body))
        return changed(name, change)

    @bp.post("/classes/<int:class_id>/accept-above")
    def accept_above(name: str, class_id: int) -> Any:
        body = _body(optional=True)
        _only(body, {"who"})
        c = collections.get(name)
        with LabelStore.open(c) as store:
            change = learn.accept_above(c, class_id, store=store, who=_who(body))
        if "version" not in change:  # nothing above the threshold: no change was recorded
            return jsonify({"ok": True, **change})
        return changed(name, change)

    app.register_blueprint(bp)
    socketio.on(protocol.SIMILAR)(lambda data=None: jobs.submit(SimilarKind.name, flask_request.sid, data))
    socketio.on(protocol.TRAIN)(lambda data=None: jobs.submit(TrainKind.name, flask_request.sid, data))
    return bp


def _int_arg(value: Any, what: str) -> int:
    try:
        v = int(str(value).strip())
    except (TypeError, ValueError):
        raise ParameterError(f"{what} must be an integer, got {str(value)[:40]!r}") from None
    if abs(v) > 2**62:
        raise ParameterError(f"{what} out of range")
    return v


def _column(model: Any, class_id: int) -> int:
    from preprocess.learn.review import class_column

    return class_column(model, class_id)
