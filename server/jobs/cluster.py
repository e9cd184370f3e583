"""The ``cluster`` job kind: validated at once, cached by parameters, one density tree shared (see JobKind).

The socket ack carries the job id or the error with what is allowed. A newer request from the same client cancels its
older job (``job:cancelled``; the framework's supersede); other clients are not affected. Identical parameters on
unchanged data return the cached result at once. Heavy work is limited to ``max_parallel`` jobs (two cores), and two
jobs needing the same density tree build it once (see ``preprocess.cluster.Clusterer``).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any

from preprocess.cluster import ALGORITHMS, algorithms_json, validate_params
from preprocess.errors import Cancelled, NotFoundError, ParameterError, SonomapError

from .. import tables
from ..registry import Registry
from ..summary import summarize_clusters
from ..warmup import Warmup
from .base import Job, JobKind, JobRunner, ProgressFn


class ClusterKind(JobKind):
    """Runs ``cluster`` jobs for socket clients (see module docstring)."""

    name = "cluster"
    id_prefix = "j"
    stages = (
        ("queued", 2),
        ("warmup", 8),
        ("load", 5),
        ("partition", 5),
        ("tree", 65),
        ("cluster", 7),
        ("summary", 8),
    )

    def __init__(
        self,
        runner: JobRunner,
        registry: Registry,
        warmup: Warmup | None = None,
        *,
        cache_size: int = 32,
        max_parallel: int = 2,
    ) -> None:
        self.runner = runner
        self.registry = registry
        self.warmup = warmup or Warmup([])
        self.cache_size = cache_size
        self._results: OrderedDict[tuple, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self._slots = threading.Semaphore(max_parallel)

    # requests -------------------------------------------------------------------------------------
    def validate(self, sid: str, payload: Any) -> dict[str, Any]:
        """Validated request (its cache key under ``"_key"``); raises ParameterError / NotFoundError naming what is allowed."""
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
        return {**request, "_key": cache_key}

    def prepare(self, job: Job) -> dict[str, Any] | None:
        job.meta["key"] = job.request.pop("_key")
        with self._lock:
            cached = self._results.get(job.meta["key"])
            if cached is not None:
                self._results.move_to_end(job.meta["key"])
        job.meta["cached"] = cached is not None
        return None if cached is None else {**cached, "cached": True, "elapsed_s": 0.0}

    def ack_fields(self, job: Job) -> dict[str, Any]:
        return {"cached": job.meta.get("cached", False)}

    def error_fields(self, payload: Any, e: BaseException) -> dict[str, Any]:
        return {"allowed": self._allowed(payload)} if isinstance(e, SonomapError) else {}

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
        if self.runner.running(sid=sid, kind=self.name):
            return
        self.runner.submit(self.name, sid, {"collection": name})

    # work -----------------------------------------------------------------------------------------
    def run(self, job: Job, progress: ProgressFn) -> dict[str, Any]:
        should_cancel = job.should_cancel
        t0 = time.monotonic()
        progress("queued", 0, 1, "queued")
        if job.request["algorithm"] != "kmeans":
            self.warmup.wait_for("fast_hdbscan", progress=progress, should_cancel=should_cancel)
        with self._slots:
            if should_cancel():
                raise Cancelled("cancelled")
            result = self._compute(job, progress, should_cancel)
        result["elapsed_s"] = round(time.monotonic() - t0, 3)
        with self._lock:
            self._results[job.meta["key"]] = result
            self._results.move_to_end(job.meta["key"])
            while len(self._results) > self.cache_size:
                self._results.popitem(last=False)
        return {**result, "cached": False}

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
            clip_recordings=table["recording_id"].to_numpy() if "recording_id" in table else None,
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
