"""Feature extraction as Dask tasks: the runner's chunks computed on the workers, assembled here.

:func:`preprocess.features.run_extractor` calls :func:`compute_on_cluster` when it is given a scheduler
and the extractor says ``runs_on_workers`` (BirdNET). The rows still to compute are cut into the same
``CHUNK_CLIPS``-clip chunks as a local run; each chunk is one task of
:class:`preprocess.distributed.DaskPool` (its retries and ``allowed-failures`` policy: a worker that dies
has its tasks rerun elsewhere). A task (:func:`transform_task`) runs the extractor's ``transform`` on the
worker with a prepared extractor that the worker process keeps between tasks, so each worker loads the
model once per collection state and thread, not once per task. Results come back here, are checked and
saved as resume chunks as they finish (a killed run resumes from them) and returned in row order, so the
runner writes features, side tables and meta exactly as after a local run: byte-identical output.

Workers read the collection by its absolute path (shared storage), as the Dask build does.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from ..collection import Collection
from ..errors import CollectionError
from ..progress import CancelCheck, no_progress
from .base import FeatureExtractor

#: What this process ran as a worker: tasks computed and extractors prepared (models loaded).
STATS: dict[str, int] = {"tasks": 0, "loads": 0}

_LOCK = threading.Lock()
#: Prepared extractors not in use, by key; only the latest key is kept (a new collection state drops the rest).
_FREE: dict[tuple, list[FeatureExtractor]] = {}


def worker_stats() -> dict[str, int]:
    """``{"pid", "tasks", "loads"}`` of this process (for ``client.run`` inspection and tests)."""
    return {"pid": os.getpid(), **STATS}


def collection_state(collection: Collection) -> str:
    """A key that changes whenever what an extractor prepares from could (clip count, manifest time)."""
    manifest = collection.manifest()
    return f"{manifest.get('counts', {}).get('clips', 0)}@{manifest.get('updated', '')}"


def transform_task(
    cls: type[FeatureExtractor], init: dict[str, Any], root: str, state: str, start: int, stop: int
) -> dict[str, np.ndarray]:
    """On a worker: ``cls(**init).transform`` of clips ``start..stop`` of the collection at ``root``.

    The prepared extractor is taken from this process's cache (prepared here on first use for
    ``(cls, init, root, state)``, with ``fit=False``: a stored model is loaded, never trained) and put back after.
    """
    key = (cls.__module__, cls.__qualname__, repr(sorted(init.items())), root, state)
    extractor = _checkout(key)
    collection = Collection.open(root)
    if extractor is None:
        extractor = cls(**init)
        extractor.prepare(collection, out_dir=collection.features_dir(extractor.name), fit=False, progress=no_progress)
        with _LOCK:
            STATS["loads"] += 1
    try:
        arrays = extractor.transform(collection, np.arange(start, stop))
    finally:
        _checkin(key, extractor)
    with _LOCK:
        STATS["tasks"] += 1
    return arrays


def _checkout(key: tuple) -> FeatureExtractor | None:
    with _LOCK:
        free = _FREE.get(key)
        return free.pop() if free else None


def _checkin(key: tuple, extractor: FeatureExtractor) -> None:
    with _LOCK:
        for other in [k for k in _FREE if k != key]:
            del _FREE[other]
        _FREE.setdefault(key, []).append(extractor)


def compute_on_cluster(
    collection: Collection,
    extractor: FeatureExtractor,
    init: dict[str, Any],
    *,
    scheduler: Any,
    jobs: int | None,
    start: int,
    stop: int,
    chunk_clips: int,
    save: Callable[[int, dict[str, np.ndarray]], None],
    progress: Callable[[int], None],
    should_cancel: CancelCheck | None = None,
) -> list[dict[str, np.ndarray]]:
    """Rows ``start..stop`` as Dask tasks of ``chunk_clips`` rows: the chunks' arrays in row order.

    ``scheduler`` is what :class:`~preprocess.distributed.DaskPool` accepts (an address, a scheduler file,
    ``"local"``, ``"slurm"``) or an open ``DaskPool``; ``init`` the extractor's constructor arguments.
    ``save(first_row, arrays)`` runs here as each chunk arrives (the resume marker); ``progress(rows)`` reports
    the rows finished so far. A task that keeps failing raises its error here, after the pool's retries.
    """
    from ..distributed import DaskPool
    from ..pool import cpu_count

    ranges = [(a, min(a + chunk_clips, stop)) for a in range(start, stop, chunk_clips)]
    tasks = [
        (type(extractor), dict(init), str(collection.root.resolve()), collection_state(collection), a, b)
        for a, b in ranges
    ]
    finished = 0

    def on_result(i: int, arrays: dict[str, np.ndarray]) -> None:
        nonlocal finished
        a, b = ranges[i]
        arrays["features"] = np.asarray(arrays["features"], dtype=np.float32)
        if arrays["features"].shape[0] != b - a or not np.isfinite(arrays["features"]).all():
            raise CollectionError(
                f"extractor {extractor.name!r} returned {arrays['features'].shape} or non-finite values"
            )
        save(a, arrays)
        finished += b - a
        progress(finished)

    def run(pool: Any) -> list[dict[str, np.ndarray]]:
        return pool.run(
            transform_task, tasks, stage=f"features:{extractor.name}", progress=no_progress,
            should_cancel=should_cancel, on_result=on_result, uses_torch=False,
            label=lambda i: f"clips {ranges[i][0]}-{ranges[i][1] - 1}",
        )  # fmt: skip

    if hasattr(scheduler, "run"):
        return run(scheduler)
    with DaskPool(str(scheduler), jobs=jobs or cpu_count()) as pool:
        return run(pool)
