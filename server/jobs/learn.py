"""The ``similar`` (query by example) and ``train`` (one classifier round) job kinds (see :mod:`.base`).

``similar {collection, features?, k?, clip_ids? | class_id? | file: {name, data: <bytes>}}``: the ``k`` clips most
similar to one clip, a selection, a class's members (fused into one query, :func:`preprocess.similar.similar`) or an
audio file the page dropped (embedded by :func:`preprocess.similar.embed_file` in a temporary folder; it is never
added to the collection). Result: ``{collection, features, query: {kind, n, …}, n, clip_ids: <int32 LE bytes>,
similarities: <float32 LE bytes>, elapsed_s}``, best first, the query clips excluded. One loaded
:class:`preprocess.similar.SimilarIndex` per (collection, feature set) stays in memory (the registry's cache, dropped
when the feature file changes).

``train {collection, features?}``: :func:`preprocess.learn.train` on the label store's classes. Result:
``{collection, features, round, n_clips, time_s, classes: [{class_id, name, ap, threshold, precision, recall,
n_positive, n_negative, delta: {ap, precision, recall, threshold}}]}``; the page then re-reads the scores.
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from preprocess.errors import NotFoundError, ParameterError

from .base import Job, JobKind, ProgressFn

#: Largest k a similarity query may ask for.
MAX_K = 2000
#: Largest dropped file (the socket's buffer is 16 MiB).
MAX_FILE_BYTES = 15 * 2**20
AUDIO_SUFFIXES = (".wav", ".wave", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".aif", ".aiff", ".w64", ".rf64")


def default_features(c: Any, features: Any = None) -> str:
    """The feature set to learn from: ``features`` if given (404 naming those there), else birdnet, else the first."""
    available = c.feature_sets()
    if features is None:
        if not available:
            raise NotFoundError(f"collection {c.name!r} has no feature sets (run: python -m preprocess features)")
        return "birdnet" if "birdnet" in available else available[0]
    if not isinstance(features, str) or features not in available:
        raise NotFoundError(
            f"feature set {str(features)[:60]!r} not found; available: {', '.join(available) or 'none'}"
        )
    return features


def _collection(registry: Any, payload: Any, what: str) -> Any:
    if not isinstance(payload, dict):
        raise ParameterError(f"{what} needs an object {{collection, …}}")
    name = payload.get("collection")
    if not isinstance(name, str):
        raise ParameterError(f"collection must be a name; available: {', '.join(registry.names()) or 'none'}")
    return registry.get(name)


def _int_list(value: Any, what: str) -> list[int]:
    if not isinstance(value, list) or not value:
        raise ParameterError(f"{what} must be a non-empty list of clip ids")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise ParameterError(f"{what} must be integers")
    return value


class SimilarKind(JobKind):
    """``similar`` jobs: query by example (see the module docstring)."""

    name = "similar"
    id_prefix = "s"
    stages = (("load", 2), ("embed", 6), ("search", 2))

    def __init__(self, registry: Any) -> None:
        self.registry = registry

    def validate(self, sid: str, payload: Any) -> dict[str, Any]:
        c = _collection(self.registry, payload, "similar")
        features = default_features(c, payload.get("features"))
        k = payload.get("k", 60)
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
            raise ParameterError(f"k must be an integer in [1, {MAX_K}], got {str(k)[:20]}")
        given = [key for key in ("clip_ids", "class_id", "file") if payload.get(key) is not None]
        if len(given) != 1:
            raise ParameterError("give exactly one of clip_ids (a clip or a selection), class_id or file")
        req: dict[str, Any] = {"collection": c.name, "features": features, "k": k}
        n = len(c.features(features))
        if "clip_ids" in given:
            ids = _int_list(payload["clip_ids"], "clip_ids")
            bad = [i for i in ids if not 0 <= i < n]
            if bad:
                raise ParameterError(f"clip id {bad[0]} not in the collection (it has {n} clips)")
            req["query"] = {"kind": "clips", "clip_ids": sorted(set(ids))}
        elif "class_id" in given:
            from preprocess.labels import LabelStore

            cid = payload["class_id"]
            if isinstance(cid, bool) or not isinstance(cid, int):
                raise ParameterError("class_id must be an integer")
            with LabelStore.open(c) as store:
                members = store.members().get(cid)
                names = {k["id"]: k["name"] for k in store.classes()}
            if cid not in names:
                raise NotFoundError(f"class {cid} not found")
            if members is None or not len(members):
                raise ParameterError(f"class {names[cid]!r} has no members to search from")
            req["query"] = {"kind": "class", "class_id": cid, "name": names[cid], "clip_ids": members.tolist()}
        else:
            f = payload["file"]
            data = f.get("data") if isinstance(f, dict) else None
            fname = f.get("name") if isinstance(f, dict) else None
            if not isinstance(data, (bytes, bytearray)) or not data:
                raise ParameterError("file must be {name, data: <the file's bytes>}")
            if len(data) > MAX_FILE_BYTES:
                raise ParameterError(f"the file is larger than {MAX_FILE_BYTES // 2**20} MiB")
            fname = Path(str(fname or "query.wav")).name[:120] or "query.wav"
            suffix = Path(fname).suffix.lower()
            if suffix not in AUDIO_SUFFIXES:
                raise ParameterError(f"{fname!r} is not an audio file; allowed: {', '.join(AUDIO_SUFFIXES)}")
            req["query"] = {"kind": "file", "name": fname}
            req["_data"] = bytes(data)
        return req

    def index(self, c: Any, features: str, progress: ProgressFn | None = None, should_cancel: Any = None) -> Any:
        """The loaded index of ``features`` (kept in the registry's cache until the feature file changes)."""
        from preprocess.similar import open_index

        files = [c.features_path(features), c.features_meta_path(features)]
        return self.registry.cached(
            ("similar-index", c.name, features),
            files,
            lambda: open_index(c, features, progress=progress, should_cancel=should_cancel),
        )

    def prepare(self, job: Job) -> None:
        job.meta["data"] = job.request.pop("_data", None)  # the bytes stay out of the job's request (and logs)
        return None

    def run(self, job: Job, progress: ProgressFn) -> dict[str, Any]:
        from preprocess.similar import embed_file, similar

        t0 = time.monotonic()
        req = job.request
        c = self.registry.get(req["collection"])
        features, query = req["features"], dict(req["query"])
        progress("load", 0, 1, f"loading the {features} index")
        index = self.index(c, features, progress, job.should_cancel)
        progress("load", 1, 1, f"{index.n_vectors:,} clips indexed")
        if query["kind"] == "file":
            progress("embed", 0, 1, f"embedding {query['name']}")
            with tempfile.TemporaryDirectory(prefix="sonomap-query-") as tmp:
                path = Path(tmp) / query["name"]
                path.write_bytes(job.meta.pop("data"))
                vectors, times = embed_file(c, path, features, should_cancel=job.should_cancel)
            query.update(n=int(len(vectors)), start_s=times["start_s"].tolist(), end_s=times["end_s"].tolist())
            progress("embed", 1, 1, f"{len(vectors)} clips in the file")
            hits = similar(c, vector=vectors, k=req["k"], features=features, index=index)
        else:
            query["n"] = len(query["clip_ids"])
            if query["kind"] == "class":
                query.pop("clip_ids")  # the page has the class's members
            ids = req["query"]["clip_ids"]
            hits = similar(c, clip_ids=ids, k=req["k"], features=features, index=index)
        progress("search", 1, 1, f"{len(hits)} similar clips")
        return {
            "collection": c.name,
            "features": features,
            "query": query,
            "n": len(hits),
            "clip_ids": np.asarray([h["clip_id"] for h in hits], "<i4").tobytes(),
            "similarities": np.asarray([h["similarity"] for h in hits], "<f4").tobytes(),
            "elapsed_s": round(time.monotonic() - t0, 3),
        }


class TrainKind(JobKind):
    """``train`` jobs: one classifier round from the label store (see the module docstring)."""

    name = "train"
    id_prefix = "t"
    stages = (("load", 1), ("learn", 8), ("save", 1))

    def __init__(self, registry: Any) -> None:
        self.registry = registry
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def validate(self, sid: str, payload: Any) -> dict[str, Any]:
        c = _collection(self.registry, payload, "train")
        return {"collection": c.name, "features": default_features(c, payload.get("features"))}

    def run(self, job: Job, progress: ProgressFn) -> dict[str, Any]:
        from preprocess import learn

        name, features = job.request["collection"], job.request["features"]
        with self._guard:
            lock = self._locks.setdefault(name, threading.Lock())
        progress("load", 0, 1, "reading the classes")
        with lock:  # one round at a time per collection (each round reads the previous one)
            c = self.registry.get(name)
            progress("load", 1, 1, "training")
            model, scores = learn.train(c, features=features, progress=progress, should_cancel=job.should_cancel)
        progress("save", 1, 1, f"round {model.info.get('round')}")
        return train_summary(c, model, n_clips=len(scores))


def train_summary(c: Any, model: Any, *, n_clips: int) -> dict[str, Any]:
    """The per-class metrics of a model as the ``train`` result and ``GET …/learn/model`` carry them."""
    classes = []
    for cid, name, thr, m in zip(model.class_ids, model.class_names, model.thresholds, model.metrics, strict=False):
        keys = ("ap", "precision", "recall", "n_positive", "n_negative", "delta")
        classes.append({"class_id": int(cid), "name": name, "threshold": float(thr), **{k: m.get(k) for k in keys}})
    return {
        "collection": c.name,
        "features": model.info.get("features"),
        "round": int(model.info.get("round", 0)),
        "n_clips": int(n_clips),
        "time_s": model.info.get("time_s"),
        "classes": classes,
    }
