"""JSON and binary views of collections: summaries, details, the clip table, display coordinates (thin).

Slider starting points come from :func:`preprocess.cluster_defaults.cluster_defaults` (re-exported here).
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
from flask import Blueprint, Response, jsonify, request

from preprocess.cluster import algorithms_json
from preprocess.cluster_defaults import cluster_defaults
from preprocess.collection import Collection
from preprocess.errors import NotFoundError

from .. import tables
from ..registry import Registry, _stamp

__all__ = ["blueprint", "cluster_defaults"]


def _etagged(body: bytes, mimetype: str, stamp: Any) -> Response:
    resp = Response(body, mimetype=mimetype)
    resp.set_etag(hashlib.sha1(repr(stamp).encode()).hexdigest()[:20])
    resp.headers["Cache-Control"] = "no-cache"  # revalidate: a build may change the collection
    return resp.make_conditional(request)


def _summary(c: Collection) -> dict[str, Any]:
    s = c.summary()
    m = c.manifest()
    s.update({"created": m.get("created"), "updated": m.get("updated"), "stages": m.get("stages", {})})
    return s


def _feature_sets(c: Collection) -> list[dict[str, Any]]:
    out = []
    for name in c.feature_sets():
        try:
            meta = c.features_meta(name)
        except Exception:  # a half-written meta must not hide the collection
            meta = {}
        out.append({"name": name, "dim": meta.get("dim"), "extractor": meta.get("extractor", name)})
    return out


def _reductions(c: Collection) -> list[dict[str, Any]]:
    out = []
    for key in c.reductions():
        meta = c.reduction_meta(key)
        out.append({"key": key, "dims": meta.get("dims", []), "features": meta.get("features", key.split("+"))})
    return out


def _metadata_columns(c: Collection) -> list[str]:
    if not c.recordings_path.is_file():
        return []
    import pyarrow.parquet as pq

    return list(pq.read_schema(c.recordings_path).names)


def clips_bin_body(registry: Registry, name: str) -> tuple[bytes, list]:
    """The clips.bin body of collection ``name`` (memory- and disk-cached until its tables change), and those tables.

    The server's warm-up calls it for every collection, so the first page load reads it from memory (at a million
    clips, building it takes seconds)."""
    c = registry.get(name)
    files = [c.clips_path, c.recordings_path, tables.species_path(c)]
    return registry.cached(("clips.bin", name), files, lambda: tables.clips_binary(c, files)), files


def prebuild_clip_tables(registry: Registry) -> None:
    """:func:`clips_bin_body` of every collection (a warm-up step); a collection that fails is left to its request."""
    for name in registry.names():
        try:
            clips_bin_body(registry, name)
        except Exception:  # noqa: BLE001 - the page's own request reports what is wrong with it
            continue


def blueprint(registry: Registry) -> Blueprint:
    bp = Blueprint("api", __name__)

    @bp.get("/api/collections")
    def list_collections():
        return jsonify({"ok": True, "collections": [_summary(c) for c in registry]})

    @bp.get("/api/collections/<name>")
    def show_collection(name: str):
        c = registry.get(name)
        reductions = _reductions(c)
        defaults: dict[str, dict[str, Any]] = {}
        for r in reductions:
            for dims in sorted({int(d) for d in r["dims"]} | {2}):
                try:
                    X = registry.coords(name, r["key"], dims)
                except NotFoundError:
                    continue
                path = c.reduced_path(r["key"], dims)
                defaults.setdefault(r["key"], {})[str(dims)] = registry.cached(
                    ("defaults", name, r["key"], dims), [path], lambda X=X: cluster_defaults(X)
                )
        default_reduction = None
        if reductions:
            keys = [r["key"] for r in reductions]
            default_reduction = "birdnet" if "birdnet" in keys else keys[0]
        m = c.manifest()
        return jsonify(
            {
                "ok": True,
                "collection": {
                    **_summary(c),
                    "name": c.name,
                    "counts": m.get("counts", {}),
                    "config": m.get("config", {}),
                    "feature_sets": _feature_sets(c),
                    "reductions": reductions,
                    "default_reduction": default_reduction,
                    "algorithms": algorithms_json(),
                    "cluster_defaults": defaults,
                    "columns": _metadata_columns(c),
                },
            }
        )

    def _table(name: str):
        c = registry.get(name)
        files = [c.clips_path, c.recordings_path, tables.species_path(c)]
        return c, files, registry.cached(("clip_table", name), files, lambda: tables.clip_table(c))

    @bp.get("/api/collections/<name>/clips")
    def clips(name: str):
        if request.args.get("format") == "bin":
            return clips_bin(name)
        c, files, table = _table(name)
        body = registry.cached(("clips.json", name), files, lambda: tables.to_json_bytes(table))
        return _etagged(body, "application/json", ("json", _stamp(*files)))

    @bp.get("/api/collections/<name>/clips.bin")
    def clips_bin(name: str):
        body, files = clips_bin_body(registry, name)
        return _etagged(body, "application/octet-stream", ("bin", _stamp(*files)))

    @bp.get("/api/collections/<name>/reductions/<key>/map.f32")
    def display_map(name: str, key: str):
        c = registry.get(name)
        c.reduction_meta(key)  # 404 naming what exists
        path = c.map_path(key)
        if not path.is_file():
            raise NotFoundError(f"reduction {key!r} of {name} has no display map")
        body = registry.cached(
            ("map.f32", name, key), [path], lambda: np.ascontiguousarray(np.load(path), dtype="<f4").tobytes()
        )
        resp = _etagged(body, "application/octet-stream", ("map", _stamp(path)))
        resp.headers["X-Sonomap-Count"] = str(len(body) // 8)
        return resp

    return bp
