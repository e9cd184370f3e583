"""Adding uploaded files to a collection (or creating one), one recording at a time, with the CLI's pipeline.

For each audio file, in name order: move it from the upload staging area into
``COLLECTION/sources/`` under a name no earlier build used (the originals the recording view streams), run the same incremental
:func:`preprocess.pipeline.build` the CLI runs (input ``COLLECTION/sources``: only the new file is
processed, clip ids are appended), compute every feature set the collection has for the new clips
(:func:`preprocess.features.run_extractor`, incremental), and place the new clips on each existing
map with the fitted model (:func:`preprocess.reduce.reduce_collection` extending through
``transform_new``: old points never move). ``on_file`` receives each file's outcome as soon as it is
known, so its clips can be shown while the next file is processed. A file that fails (not audio,
corrupt, silent, a duplicate) is reported with the reason and removed from ``sources/``; the rest go on.

A new collection has no map until it has clips: its map is fitted once, after the last file.
One ingest at a time per collection (a lock file under ``COLLECTIONS/.uploads/locks``).
"""

from __future__ import annotations

import fcntl
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .collection import Collection, check_name, ingest_lock_path
from .config import BuildConfig
from .errors import Cancelled, CollectionError, MissingDependencyError, ParameterError, SonomapError
from .progress import CancelCheck, Progress, check_cancel, no_progress
from .uploads import StagedBatch, new_batch_name, place_file, sources_dir

#: Feature sets computed for a collection created from the browser (first one available wins).
DEFAULT_FEATURES = ("birdnet", "acoustic")
#: Offer to recompute the map when clips placed since the fit exceed this share of the fitted ones.
REMAP_SHARE = 0.25
MIN_CLIPS_FOR_MAP = 5


@dataclass
class FileOutcome:
    """What happened to one file (``on_file`` gets it as soon as it is known)."""

    index: int
    n_files: int
    name: str  # relative path as uploaded (safe)
    status: str  # "ok" | "failed"
    reason: str = ""
    recording_id: int | None = None
    clip_ids: list[int] = field(default_factory=list)
    positions: dict[str, np.ndarray] = field(default_factory=dict)  # reduction key -> float32 [n, 2]


@dataclass
class IngestResult:
    collection: str
    created: bool
    files: list[FileOutcome] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)  # from staging (unsafe zips, incomplete, …)
    notes: list[str] = field(default_factory=list)
    feature_sets: list[str] = field(default_factory=list)
    reductions: list[str] = field(default_factory=list)
    suggest_remap: bool = False
    n_clips: int = 0

    @property
    def n_ok(self) -> int:
        return sum(f.status == "ok" for f in self.files)

    @property
    def new_clip_ids(self) -> list[int]:
        return [c for f in self.files for c in f.clip_ids]


def ingest(
    collections_root: Path | str,
    name: str,
    batch: StagedBatch,
    *,
    create: bool = False,
    config: BuildConfig | None = None,
    features: tuple[str, ...] | list[str] | None = None,
    progress: Progress | None = None,
    on_file_start: Callable[[int, int, str], None] | None = None,
    on_file: Callable[[FileOutcome], None] | None = None,
    should_cancel: CancelCheck | None = None,
) -> IngestResult:
    """Add the staged files of ``batch`` to collection ``name`` under ``collections_root`` (or create it).

    Parameters
    ----------
    create : True to create a new collection (it must not exist), False to add to an existing one.
    config : build config of a new collection (default :class:`BuildConfig`); ignored when adding.
    features : feature sets of a new collection (default: the first of ``DEFAULT_FEATURES`` available).
    progress : ``progress(stage, done, total, message)`` for the current file's stages.
    on_file_start, on_file : called before each file, and with its :class:`FileOutcome` when done.
    """
    from .pipeline import build

    progress = progress or no_progress
    root_all = Path(collections_root).resolve()
    check_name(name, what="collection name")
    root = root_all / name
    if create and root.exists():
        raise ParameterError(f"a collection named {name!r} already exists; choose another name or add to it")
    if not create:
        Collection.open(root)  # NotFoundError when missing
    audio = sorted((f for f in batch.files if f.kind == "audio"), key=lambda f: str(f.rel_path).lower())
    meta_files = [f for f in batch.files if f.kind == "metadata"]
    result = IngestResult(collection=name, created=create, refused=list(batch.refused))
    if not audio:
        raise ParameterError("no audio files to add" + (f" ({_refusals(batch.refused)})" if batch.refused else ""))

    with _collection_lock(root_all, name):
        sources = sources_dir(root)
        # originals go straight into sources/ (a folder around them would become their label), under names no
        # earlier build used; metadata files into a hidden folder the build does not look into
        meta_dir = Collection(root).sources_metadata_dir(new_batch_name())
        labels_csv, xc_json = _place_metadata(meta_files, meta_dir, root_all, result)
        taken = _known_paths(root)
        feature_names: list[str] | None = None if create else Collection.open(root).feature_sets()
        n = len(audio)
        try:
            for i, staged in enumerate(audio):
                check_cancel(should_cancel)
                label = str(staged.rel_path)
                if on_file_start:
                    on_file_start(i, n, label)
                placed = place_file(staged, sources, collections_root=root_all, taken=taken)
                rel = placed.relative_to(sources.resolve()).as_posix()
                taken.add(rel.lower())
                try:
                    res = build(
                        [sources], root, config=config if create else None, labels_csv=labels_csv, xc_json=xc_json,
                        jobs=1, progress=progress, should_cancel=should_cancel,
                    )  # fmt: skip
                except Cancelled:
                    placed.unlink(missing_ok=True)
                    raise
                except SonomapError as e:
                    placed.unlink(missing_ok=True)
                    outcome = FileOutcome(i, n, label, "failed", reason=str(e))
                    _emit(result, outcome, on_file)
                    continue
                reason = next((r for p, r in res.skipped if p == rel), None)
                if reason is not None or res.new_clips == 0:
                    placed.unlink(missing_ok=True)
                    outcome = FileOutcome(i, n, label, "failed", reason=reason or "no clips were found")
                    _emit(result, outcome, on_file)
                    continue
                coll = Collection.open(root)
                clip_ids = list(range(res.clips - res.new_clips, res.clips))
                outcome = FileOutcome(i, n, label, "ok", recording_id=res.recordings - 1, clip_ids=clip_ids)
                if feature_names is None:
                    feature_names = _initial_features(coll, features, progress, should_cancel, result)
                else:
                    _run_features(coll, feature_names, progress, should_cancel, result)
                if not create:
                    outcome.positions = _place(coll, feature_names, clip_ids, progress, should_cancel, result)
                _emit(result, outcome, on_file)
        finally:
            _tidy(root, created=create)

        if not Collection(root).exists():
            return result  # nothing usable: the new collection was removed again
        coll = Collection.open(root)
        result.n_clips = coll.n_clips()
        result.feature_sets = coll.feature_sets()
        if create and result.n_ok and feature_names:
            _fit_new_map(coll, feature_names, progress, should_cancel, result)
        result.reductions = coll.reductions()
        result.suggest_remap = any(_needs_remap(coll, key) for key in result.reductions)
    return result


# ---------------------------------------------------------------------------------------------
# stages


def _initial_features(
    coll: Collection, features: Any, progress: Progress, should_cancel: CancelCheck | None, result: IngestResult
) -> list[str]:
    """Features of a new collection: the requested ones, else the first default that is installed."""
    if features:
        names = list(features)
        _run_features(coll, names, progress, should_cancel, result, strict=True)
        return names
    for name in DEFAULT_FEATURES:
        try:
            _run_features(coll, [name], progress, should_cancel, result, strict=True)
            return [name]
        except MissingDependencyError as e:
            result.notes.append(f"{name} features unavailable ({e}); trying the next extractor")
    return []


def _run_features(
    coll: Collection,
    names: list[str],
    progress: Progress,
    should_cancel: CancelCheck | None,
    result: IngestResult,
    *,
    strict: bool = False,
) -> None:
    from .features import run_extractor

    for name in names:
        try:
            run_extractor(coll, name, progress=progress, should_cancel=should_cancel)
        except Cancelled:
            raise
        except SonomapError as e:
            if strict:
                raise
            _note(result, f"feature set {name!r} not updated: {e}")


def _place(
    coll: Collection,
    feature_names: list[str],
    clip_ids: list[int],
    progress: Progress,
    should_cancel: CancelCheck | None,
    result: IngestResult,
) -> dict[str, np.ndarray]:
    """Extend every map whose feature sets are all up to date; return the new clips' 2-d positions per key."""
    from .reduce import reduce_collection

    out: dict[str, np.ndarray] = {}
    have = set(coll.feature_sets())
    for key in coll.reductions():
        try:
            meta = coll.reduction_meta(key)
            feats = list(meta.get("features") or key.split("+"))
            params = dict(meta.get("params") or {})
            if not set(feats) <= have or not params:
                _note(result, f"map {key!r} was not extended (its feature sets or parameters are missing)")
                continue
            reduce_collection(
                coll, features=feats, dims=meta.get("dims") or [2], refit_growth=float("inf"), progress=progress,
                should_cancel=should_cancel, **params,
            )  # fmt: skip
            m = coll.display_map(key)
            if len(m) >= clip_ids[-1] + 1:
                out[key] = np.asarray(m[clip_ids[0] : clip_ids[-1] + 1], dtype=np.float32)
        except Cancelled:
            raise
        except SonomapError as e:
            _note(result, f"map {key!r} was not extended: {e}")
    return out


def _fit_new_map(
    coll: Collection,
    feature_names: list[str],
    progress: Progress,
    should_cancel: CancelCheck | None,
    result: IngestResult,
) -> None:
    from .reduce import reduce_collection

    if coll.n_clips() < MIN_CLIPS_FOR_MAP:
        result.notes.append(
            f"only {coll.n_clips()} clips: a map needs at least {MIN_CLIPS_FOR_MAP}; add more recordings"
        )
        return
    try:
        reduce_collection(
            coll, features=feature_names, dims=[2, 4, 8, 16], progress=progress, should_cancel=should_cancel
        )
    except Cancelled:
        raise
    except SonomapError as e:
        result.notes.append(f"the map could not be computed: {e}")


def _needs_remap(coll: Collection, key: str) -> bool:
    try:
        meta = coll.reduction_meta(key)
    except SonomapError:
        return False
    n, fitted = int(meta.get("n_clips", 0)), int(meta.get("n_fitted", meta.get("n_clips", 0)))
    return fitted > 0 and n - fitted > REMAP_SHARE * fitted


# ---------------------------------------------------------------------------------------------
# files and locks


def _place_metadata(
    meta_files: list, meta_dir: Path, root_all: Path, result: IngestResult
) -> tuple[Path | None, list[Path]]:
    """Move CSV/JSON files beside the batch's audio; the first CSV is the labels file, JSONs are xeno-canto."""
    from .metadata import read_labels_csv, read_xc_json

    labels_csv, xc_json = None, []
    for f in meta_files:
        placed = place_file(f, meta_dir, collections_root=root_all)
        try:
            if placed.suffix.lower() == ".csv":
                if labels_csv is not None:
                    result.notes.append(f"{f.rel_path}: only one labels CSV is used per upload; ignored")
                    continue
                read_labels_csv(placed)
                labels_csv = placed
            else:
                read_xc_json(placed)
                xc_json.append(placed)
        except ParameterError as e:
            result.refused.append((str(f.rel_path), str(e)))
    return labels_csv, xc_json


def _tidy(root: Path, *, created: bool) -> None:
    """Remove a new collection that got nothing usable (nothing half-made stays behind)."""
    if created and not Collection(root).exists():
        shutil.rmtree(root, ignore_errors=True)


def _known_paths(root: Path) -> set[str]:
    """Relative paths (lower case) the collection's builds have seen: new files must not reuse them."""
    if not Collection(root).exists():
        return set()
    return {str(s.get("path", "")).lower() for s in Collection(root).manifest().get("sources", [])}


@contextmanager
def _collection_lock(root_all: Path, name: str) -> Iterator[None]:
    lock = ingest_lock_path(root_all, name)
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CollectionError(f"recordings are already being added to {name!r}; wait until that finishes") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _emit(result: IngestResult, outcome: FileOutcome, on_file: Callable[[FileOutcome], None] | None) -> None:
    result.files.append(outcome)
    if on_file:
        on_file(outcome)


def _note(result: IngestResult, note: str) -> None:
    if note not in result.notes:
        result.notes.append(note)


def _refusals(refused: list[tuple[str, str]]) -> str:
    return "; ".join(f"{n}: {r}" for n, r in refused[:5])
