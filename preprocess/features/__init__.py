"""Feature extractors: a small registry and one resumable, incremental runner.

Each extractor lives in its own module (heavy imports inside it, imported only when used) and
subclasses :class:`preprocess.features.base.FeatureExtractor`. :func:`run_extractor` owns
everything around it: validation, the device, resuming an interrupted run, computing only the
rows of clips appended since the last run, and the atomic writes of ``features/NAME/``::

    features_path(NAME)          float32 [n_clips, D], row i = clip_id i
    features_meta_path(NAME)     extractor, dim, params, model, version, time_s, n_clips, device, created
    features_partial_dir(NAME)   chunks of an unfinished run (removed when the run completes)

(the store's accessors; file names in :mod:`preprocess.schema`)
"""

from __future__ import annotations

import importlib
import inspect
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from ..collection import Collection, save_npy_atomic, write_json_atomic
from ..errors import CollectionError, ParameterError
from ..progress import CancelCheck, Progress, check_cancel, no_progress
from .base import FeatureExtractor

#: name -> (module, class, one-line description). Modules are imported lazily.
EXTRACTORS: dict[str, tuple[str, str, str]] = {
    "birdnet": ("birdnet", "BirdNetExtractor", "BirdNET V2.4 embeddings (1024-d) + top-5 species; CPU (tflite)"),
    "acoustic": ("acoustic", "AcousticExtractor", "hand-crafted descriptors (MFCC stats, centroid, bandwidth, …)"),
    "saec": ("saec", "SaecExtractor", "denoising conv autoencoder trained on the collection (torch, GPU if any)"),
    "idnn": ("idnn", "IdnnExtractor", "ImageNet CNN activations pooled over frequency bands and time (torchvision)"),
}

DEVICES = ("auto", "cpu", "cuda")
#: Rows computed between two resumable checkpoints (and progress reports).
CHUNK_CLIPS = 512

__all__ = ["EXTRACTORS", "DEVICES", "get_extractor", "resolve_device", "run_extractor", "FeatureExtractor"]


def get_extractor(name: str, **kwargs: Any) -> FeatureExtractor:
    """Instantiate the extractor registered as ``name`` (keyword arguments go to its constructor)."""
    if name not in EXTRACTORS:
        raise ParameterError(f"unknown extractor {name!r}; allowed: {', '.join(EXTRACTORS)}")
    module_name, class_name, _ = EXTRACTORS[name]
    module = importlib.import_module(f".{module_name}", __package__)
    cls = getattr(module, class_name)
    allowed = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "device", "batch_size")]
    unknown = sorted(set(kwargs) - set(allowed) - {"device", "batch_size"})
    if unknown:
        raise ParameterError(f"unknown option(s) {unknown} for extractor {name!r}; allowed: {', '.join(allowed)}")
    return cls(**kwargs)


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``; ``cuda`` without a GPU is an error."""
    if device not in DEVICES:
        raise ParameterError(f"unknown device {device!r}; allowed: {', '.join(DEVICES)}")
    if device == "cpu":
        return "cpu"
    try:
        import torch

        has_cuda = bool(torch.cuda.is_available())
    except ImportError:
        has_cuda = False
    if device == "cuda" and not has_cuda:
        raise ParameterError(
            "device 'cuda' was requested but no CUDA GPU is available here; use device 'cpu' or 'auto'"
        )
    return "cuda" if has_cuda else "cpu"


def run_extractor(
    collection: Collection,
    name: str,
    *,
    device: str = "auto",
    batch_size: int | None = None,
    params: dict[str, Any] | None = None,
    progress: Progress | None = None,
    should_cancel: CancelCheck | None = None,
    scheduler: Any = None,
    jobs: int | None = None,
) -> Path:
    """Compute feature set ``name`` for every clip that lacks it; return ``features/NAME``.

    A no-op when the stored features cover every clip with the same parameters; when clips were
    appended only the new rows are computed (with the stored model: old rows never change); an
    interrupted run resumes from its last finished chunk. ``params`` are extractor options
    (e.g. saec ``max_steps``); changing them recomputes every row. ``scheduler`` (a Dask address, scheduler
    file, ``"local"`` with ``jobs`` workers, ``"slurm"``, or an open ``DaskPool``) computes the chunks as Dask
    tasks when the extractor ``runs_on_workers`` (:mod:`.on_cluster`; same output), else here.
    """
    progress = progress or no_progress
    if name not in EXTRACTORS:
        raise ParameterError(f"unknown extractor {name!r}; allowed: {', '.join(EXTRACTORS)}")
    if batch_size is not None and (isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1):
        raise ParameterError(f"batch_size must be a whole number >= 1, got {batch_size!r}")
    resolved = resolve_device(device)
    extractor = get_extractor(name, device=resolved, batch_size=batch_size, **(params or {}))
    if device == "cuda" and not extractor.supports_cuda:
        raise ParameterError(f"extractor {name!r} runs on the CPU only; use device 'cpu' or 'auto'")
    if not extractor.supports_cuda:
        resolved = "cpu"
    extractor.check_available()
    if not collection.spectrograms_path.is_file():
        raise CollectionError(
            f"{collection.root} has no spectrograms ({collection.spectrograms_path.name}); build the collection first"
        )
    n_clips = collection.n_clips()
    out_dir = collection.features_dir(name)
    features_path, meta_path = collection.features_path(name), collection.features_meta_path(name)
    partial_dir, partial_meta_path = collection.features_partial_dir(name), collection.features_partial_meta_path(name)
    signature = extractor.signature()

    old_meta = _read_json(meta_path) if features_path.is_file() else None
    start_row, created = 0, None
    if old_meta is not None and old_meta.get("signature") == signature:
        old_n = int(old_meta.get("n_clips", 0))
        if old_n == n_clips:
            progress(f"features:{name}", n_clips, n_clips, "up to date")
            return out_dir
        if old_n < n_clips:
            start_row, created = old_n, old_meta.get("created")

    t0 = time.perf_counter()
    # a partial run with another signature or another start is stale
    partial_meta = _read_json(partial_meta_path)
    if partial_meta is not None and (
        partial_meta.get("signature") != signature or partial_meta.get("start_row") != start_row
    ):
        shutil.rmtree(partial_dir, ignore_errors=True)
        partial_meta = None
    if partial_meta is None:
        partial_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(partial_meta_path, {"signature": signature, "start_row": start_row})

    extractor.prepare(collection, out_dir=out_dir, fit=start_row == 0, progress=progress, should_cancel=should_cancel)
    chunks = _load_chunks(collection.features_chunks(name), start_row)
    done = start_row + sum(len(c["features"]) for c in chunks)
    total = n_clips - start_row
    progress(f"features:{name}", done - start_row, total, "resuming" if done > start_row else "")
    if scheduler is not None and extractor.runs_on_workers and done < n_clips:
        from .on_cluster import compute_on_cluster

        base = done - start_row
        chunks += compute_on_cluster(
            collection, extractor, {"device": resolved, "batch_size": batch_size, **(params or {})},
            scheduler=scheduler, jobs=jobs, start=done, stop=n_clips, chunk_clips=CHUNK_CLIPS,
            save=lambda a, arrays: _save_chunk(collection.features_chunk_path(name, a), arrays),
            progress=lambda rows: progress(f"features:{name}", base + rows, total, ""), should_cancel=should_cancel,
        )  # fmt: skip
        done = n_clips
    while done < n_clips:
        check_cancel(should_cancel)
        stop = min(done + CHUNK_CLIPS, n_clips)
        arrays = extractor.transform(collection, np.arange(done, stop), should_cancel=should_cancel)
        arrays["features"] = np.asarray(arrays["features"], dtype=np.float32)
        if arrays["features"].shape[0] != stop - done or not np.isfinite(arrays["features"]).all():
            raise CollectionError(f"extractor {name!r} returned {arrays['features'].shape} or non-finite values")
        _save_chunk(collection.features_chunk_path(name, done), arrays)
        chunks.append(arrays)
        done = stop
        progress(f"features:{name}", done - start_row, total, "")

    new = {k: np.concatenate([c[k] for c in chunks]) if chunks else None for k in (chunks[0] if chunks else {})}
    X_new = new.get("features")
    if X_new is None:
        X_new = np.zeros((0, extractor.dim_), np.float32)
    if start_row:
        X_old = np.load(features_path)[:start_row]
        X = np.concatenate([X_old, X_new])
    else:
        X = X_new
    extractor.write_extras(collection, out_dir=out_dir, start_row=start_row, arrays=new)
    save_npy_atomic(features_path, X)
    elapsed = time.perf_counter() - t0 + (float(old_meta.get("time_s", 0.0)) if start_row and old_meta else 0.0)
    meta = {
        "extractor": name,
        "dim": int(X.shape[1]),
        "params": extractor.params(),
        "model": extractor.model_info(),
        "version": extractor.version,
        "time_s": round(elapsed, 3),
        "n_clips": int(X.shape[0]),
        "device": resolved,
        "created": created or datetime.now(UTC).isoformat(timespec="seconds"),
        "updated": datetime.now(UTC).isoformat(timespec="seconds"),
        "signature": signature,
    }
    write_json_atomic(meta_path, meta)
    shutil.rmtree(partial_dir, ignore_errors=True)
    return out_dir


def _read_json(path: Path) -> dict[str, Any] | None:
    import json

    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _save_chunk(path: Path, arrays: dict[str, np.ndarray]) -> None:
    from ..collection import atomic_path

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)


def _load_chunks(paths: list[Path], start_row: int) -> list[dict[str, np.ndarray]]:
    """Chunks of an interrupted run, in row order, stopping at the first gap."""
    chunks: list[dict[str, np.ndarray]] = []
    expected = start_row
    for p in paths:
        try:
            if int(p.stem.split("_")[1]) != expected:
                break
            with np.load(p) as z:
                chunk = {k: z[k] for k in z.files}
        except (OSError, ValueError, KeyError):
            break  # a torn or foreign chunk: recompute from here
        chunks.append(chunk)
        expected += len(chunk["features"])
    return chunks
