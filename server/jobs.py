"""Background cluster jobs: one per client at a time, cancellable, progress streamed, results cached by parameters.

``JobManager.submit(sid, payload)`` validates at once (the socket ack carries the job id or the error with what is
allowed), then works in ``socketio.start_background_task``. A newer request from the same client cancels its older
job (``job:cancelled``); other clients are not affected. Identical parameters on unchanged data return the cached
result at once. A client that disconnects has its jobs cancelled. Heavy work is limited to ``max_parallel`` jobs
(two cores), and two jobs needing the same density tree build it once (see ``preprocess.cluster.Clusterer``).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from preprocess.cluster import ALGORITHMS, algorithms_json, validate_params
from preprocess.errors import Cancelled, NotFoundError, ParameterError, SonomapError

from . import tables
from .registry import Registry
from .summary import summarize_clusters
from .warmup import Warmup

log = logging.getLogger(__name__)

#: Share of the overall progress bar each stage covers (fraction is monotonic across stages).
_STAGES = {
    "queued": (0.0, 0.02),
    "warmup": (0.02, 0.1),
    "load": (0.1, 0.15),
    "partition": (0.15, 0.2),
    "tree": (0.2, 0.85),
    "cluster": (0.85, 0.92),
    "summary": (0.92, 1.0),
}


@dataclass
class Job:
    id: str
    sid: str
    request: dict[str, Any]
    key: tuple
    cancelled: threading.Event = field(default_factory=threading.Event)
    finished: bool = False
    fraction: float = 0.0
    started: float = field(default_factory=time.monotonic)


class JobManager:
    """Runs ``cluster`` jobs for socket clients (see module docstring)."""

    def __init__(
        self, socketio, registry: Registry, warmup: Warmup | None = None, *, cache_size: int = 32, max_parallel: int = 2
    ):
        self.socketio = socketio
        self.registry = registry
        self.warmup = warmup or Warmup([])
        self.cache_size = cache_size
        self._results: OrderedDict[tuple, dict[str, Any]] = OrderedDict()
        self._jobs: dict[str, Job] = {}
        self._current: dict[str, str] = {}  # sid -> job id
        self._lock = threading.Lock()
        self._slots = threading.Semaphore(max_parallel)
        self._ids = itertools.count(1)

    # requests -------------------------------------------------------------------------------------
    def normalize(self, payload: Any) -> tuple[dict[str, Any], tuple]:
        """Validated request and its cache key; raises ParameterError / NotFoundError naming what is allowed."""
        if not isinstance(payload, dict):
            raise ParameterError("cluster needs an object {collection, features, dims, algorithm, params}")
        name = payload.get("collection")
        if not isinstance(name, str):
            raise ParameterError(f"collection must be a name; available: {', '.join(self.registry.names()) or 'none'}")
        c = self.registry.get(name)
        features = payload.get("features") or _default_features(c)
        key = self.registry.reduction_key(name, features)
        meta = c.reduction_meta(key)
        dims = payload.get("dims", _default_dims(meta))
        self.registry.coords(name, key, dims)  # validates dims and that the file exists
        algorithm = payload.get("algorithm", "hdbscan")
        params = validate_params(algorithm, payload.get("params"))
        request = {
            "collection": name,
            "features": key.split("+"),
            "dims": dims,
            "algorithm": algorithm,
            "params": params,
        }
        cache_key = (
            name,
            key,
            dims,
            algorithm,
            tuple(sorted(params.items())),
            self.registry.data_version(name, key, dims),
        )
        return request, cache_key

    def submit(self, sid: str, payload: Any) -> dict[str, Any]:
        """Start (or answer from cache) a cluster job; return the socket ack."""
        try:
            request, key = self.normalize(payload)
        except NotFoundError as e:
            return {"ok": False, "error": str(e), "status": 404, "allowed": self._allowed(payload)}
        except SonomapError as e:
            return {"ok": False, "error": str(e), "status": e.status, "allowed": self._allowed(payload)}
        job = Job(id=f"j{next(self._ids)}", sid=sid, request=request, key=key)
        with self._lock:
            previous = self._jobs.get(self._current.get(sid, ""))
            self._current[sid] = job.id
            self._jobs[job.id] = job
            cached = self._results.get(key)
            if cached is not None:
                self._results.move_to_end(key)
        if previous is not None:
            self._cancel(previous, notify=True)
        if cached is not None:
            self.socketio.start_background_task(self._emit_cached, job, cached)
            return {"ok": True, "job_id": job.id, "cached": True}
        self.socketio.start_background_task(self._run, job)
        return {"ok": True, "job_id": job.id, "cached": False}

    def cancel(self, sid: str, job_id: Any) -> dict[str, Any]:
        job = self._jobs.get(job_id) if isinstance(job_id, str) else None
        if job is None or job.sid != sid:
            return {"ok": False, "error": f"no job {job_id!r} of yours is running", "status": 404}
        self._cancel(job, notify=True)
        return {"ok": True}

    def disconnect(self, sid: str) -> None:
        """Free the work of a client that left."""
        with self._lock:
            mine = [j for j in self._jobs.values() if j.sid == sid]
            self._current.pop(sid, None)
        for job in mine:
            self._cancel(job, notify=False)

    def prefetch(self, name: str) -> None:
        """Build the default density tree of ``name`` in the background (on ``join``), so the first request is a cut.

        Runs as an ordinary job of a pseudo-client (its events go to no one) with the default request; its result
        lands in the cache, and any request sharing its ``min_samples`` reuses the tree.
        """
        try:
            c = self.registry.get(name)
            if not c.reductions():
                return
        except SonomapError:
            return
        sid = f"prefetch:{name}"
        with self._lock:
            if sid in self._current:
                return
        self.submit(sid, {"collection": name})

    def cached_result(self, key: tuple) -> dict[str, Any] | None:
        return self._results.get(key)

    # work -----------------------------------------------------------------------------------------
    def _cancel(self, job: Job, *, notify: bool) -> None:
        job.cancelled.set()
        if self._finish(job) and notify:
            self.socketio.emit("job:cancelled", {"job_id": job.id}, to=job.sid)

    def _finish(self, job: Job) -> bool:
        """Mark ``job`` finished; True for the one caller that got to do it (each job ends with one event)."""
        with self._lock:
            if job.finished:
                return False
            job.finished = True
            self._jobs.pop(job.id, None)
            if self._current.get(job.sid) == job.id:
                self._current.pop(job.sid, None)
            return True

    def _progress(self, job: Job):
        def report(stage: str, done: int, total: int, message: str = "") -> None:
            if job.cancelled.is_set():
                return
            lo, hi = _STAGES.get(stage, (job.fraction, job.fraction))
            frac = lo + (hi - lo) * (done / total if total else 1.0)
            job.fraction = max(job.fraction, min(frac, 1.0))
            self.socketio.emit(
                "job:progress",
                {
                    "job_id": job.id,
                    "stage": stage,
                    "done": int(done),
                    "total": int(total),
                    "fraction": round(job.fraction, 4),
                    "message": message,
                },
                to=job.sid,
            )

        return report

    def _emit_cached(self, job: Job, result: dict[str, Any]) -> None:
        self.socketio.sleep(0)
        if self._finish(job):
            self.socketio.emit("job:result", {**result, "job_id": job.id, "cached": True, "elapsed_s": 0.0}, to=job.sid)

    def _run(self, job: Job) -> None:
        report = self._progress(job)
        should_cancel = job.cancelled.is_set
        t0 = time.monotonic()
        try:
            report("queued", 0, 1, "queued")
            req = job.request
            if req["algorithm"] != "kmeans":
                self.warmup.wait_for("fast_hdbscan", progress=report, should_cancel=should_cancel)
            with self._slots:
                if should_cancel():
                    raise Cancelled("cancelled")
                result = self._compute(job, report, should_cancel)
        except Cancelled:
            self._cancel(job, notify=True)
            return
        except SonomapError as e:
            if self._finish(job):
                self.socketio.emit("job:error", {"job_id": job.id, "error": str(e)}, to=job.sid)
            return
        except Exception as e:  # never a traceback to the browser; the server keeps serving
            log.exception("cluster job %s failed", job.id)
            if self._finish(job):
                msg = f"clustering failed ({type(e).__name__}: {e})"
                self.socketio.emit("job:error", {"job_id": job.id, "error": msg}, to=job.sid)
            return
        result["elapsed_s"] = round(time.monotonic() - t0, 3)
        with self._lock:
            self._results[job.key] = result
            self._results.move_to_end(job.key)
            while len(self._results) > self.cache_size:
                self._results.popitem(last=False)
        if self._finish(job):
            self.socketio.emit("job:result", {**result, "job_id": job.id, "cached": False}, to=job.sid)

    def _compute(self, job: Job, report, should_cancel) -> dict[str, Any]:
        req = job.request
        name, key, dims = req["collection"], "+".join(req["features"]), req["dims"]
        report("load", 0, 1, f"loading {key} {dims}-d coordinates")
        X = self.registry.coords(name, key, dims)
        clusterer = self.registry.clusterer(name, key, dims)
        report("load", 1, 1, f"{len(X):,} clips")
        labels, note = clusterer.run(
            algorithm=req["algorithm"], params=req["params"], progress=report, should_cancel=should_cancel
        )
        report("summary", 0, 1, "summarising clusters")
        table = self.registry.cached(
            ("clip_table", name),
            _table_files(self.registry.get(name)),
            lambda: tables.clip_table(self.registry.get(name)),
        )
        clusters = summarize_clusters(
            labels,
            X,
            clip_labels=tables.metadata_label(table),
            clip_species=table["top_species"].to_numpy(dtype=object),
            clip_scores=table["top_score"].to_numpy(dtype=float) if "top_score" in table else None,
        )
        report("summary", 1, 1, f"{len(clusters)} clusters")
        return {
            "kind": "cluster",
            "collection": name,
            "request": req,
            "labels": labels.astype("<i4").tobytes(),
            "n_clusters": len(clusters),
            "n_noise": int((labels < 0).sum()),
            "clusters": clusters,
            "note": note,
        }

    def _allowed(self, payload: Any) -> Any:
        """What the ack's ``allowed`` lists: the algorithm's parameter rules, or the algorithms, or the names."""
        alg = payload.get("algorithm") if isinstance(payload, dict) else None
        if isinstance(alg, str) and alg in ALGORITHMS:
            return {alg: algorithms_json()[alg]}
        return algorithms_json()


def _table_files(c) -> list:
    return [c.clips_path, c.recordings_path, tables.species_path(c)]


def _default_features(c) -> str:
    reds = c.reductions()
    if not reds:
        raise NotFoundError(f"collection {c.name!r} has no reductions yet (run: python -m preprocess reduce)")
    return "birdnet" if "birdnet" in reds else reds[0]


def _default_dims(meta: dict[str, Any]) -> int:
    dims = sorted(int(d) for d in meta.get("dims", []) if int(d) != 2) or [2]
    return 8 if 8 in dims else dims[-1]
