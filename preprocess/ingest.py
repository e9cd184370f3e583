"""Adding uploaded files to a collection (or creating one) in ONE build, one feature pass and one placement.

All audio files of a request, in name order, are moved from the upload staging area into ``COLLECTION/sources/``
under names no earlier build used (the originals the recording view streams). Then, once for the whole batch: the
same incremental :func:`preprocess.pipeline.build` the CLI runs (input ``COLLECTION/sources``: only the new files
are processed, clip ids are appended), every feature set the collection has for the new clips
(:func:`preprocess.features.run_extractor`, incremental), and the new clips placed on each existing map with the
fitted model (:func:`preprocess.reduce.reduce_collection` extending through ``transform_new``: old points never move).
Each file's clips are found by its path in the recording table, so a stray file never takes another's clips.
``on_file`` receives each file's outcome; a file that fails (not audio, corrupt, silent, a duplicate) is reported
with the reason and removed from ``sources/``; the rest go on.

A new collection has no map until it has clips: its map is fitted once, after the build.

Crash safety: before a file is moved, a journal (``COLLECTIONS/.uploads/journal/NAME.json``) records where it came
from and where it goes. If the build fails or is cancelled, the files go back to staging (the user's uploads
survive); if the process dies (kill -9), :func:`reconcile` runs at the next start or ingest and adopts the files the
manifest knows (they were built) and returns the others to staging (or removes them when their upload is gone).
One ingest or remap at a time per collection (:func:`collection_lock`, under ``COLLECTIONS/.uploads/locks``).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .collection import (
    Collection,
    check_name,
    ingest_journal_path,
    ingest_journals_dir,
    ingest_lock_path,
    ingest_snapshot_dir,
    uploads_root,
    write_json_atomic,
)
from .config import BuildConfig
from .errors import Cancelled, CollectionError, MissingDependencyError, ParameterError, SonomapError
from .ingest_rollback import append_skipped, drop_snapshot, extra_skipped_rows, restore_snapshot, take_snapshot
from .progress import CancelCheck, Progress, check_cancel, no_progress
from .uploads import StagedBatch, StagedFile, move_into, new_batch_name, place_file, sources_dir

#: Feature sets computed for a collection created from the browser (first one available wins).
DEFAULT_FEATURES = ("birdnet", "acoustic")
#: Offer to recompute the map when clips placed since the fit exceed this share of the fitted ones.
REMAP_SHARE = 0.25
MIN_CLIPS_FOR_MAP = 5


@dataclass
class FileOutcome:
    """What happened to one file (``on_file`` gets it once the batch is built and placed)."""

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
    refitted: list[str] = field(default_factory=list)  # maps fitted anew (old points moved): redraw them whole

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
    refused: list[tuple[str, str]] | None = None,
    features: tuple[str, ...] | list[str] | None = None,
    jobs: int | None = 1,
    progress: Progress | None = None,
    on_file: Callable[[FileOutcome], None] | None = None,
    should_cancel: CancelCheck | None = None,
) -> IngestResult:
    """Add the staged files of ``batch`` to collection ``name`` under ``collections_root`` (or create it).

    Parameters
    ----------
    create : True to create a new collection (it must not exist), False to add to an existing one.
    config : build config of a new collection (default :class:`BuildConfig`); ignored when adding.
    features : feature sets of a new collection (default: the first of ``DEFAULT_FEATURES`` available).
    jobs : worker processes of the one build (default 1).
    progress : ``progress(stage, done, total, message)`` for the batch's stages (discover, recordings, …,
        features:NAME, reduce).
    on_file : called with each file's :class:`FileOutcome`, in name order, once the batch is built and placed.
    refused : ``(name, reason)`` of files refused before staging (e.g. "not audio" at their first chunk); they and
        the batch's own refusals are written to ``skipped.csv`` with the build's skipped files.

    Raises ``CollectionError`` when another ingest holds the collection, ``Cancelled``; on any error before the build
    finished, the staged files are back where they were. Cancelled after the build (features, placement), the
    batch is rolled back (:mod:`preprocess.ingest_rollback`): the collection is as before, the uploads survive.
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
    refusals = [(str(nm), str(r)) for nm, r in [*(refused or []), *batch.refused]]
    if not audio:
        raise ParameterError("no audio files to add" + (f" ({_refusals(batch.refused)})" if batch.refused else ""))

    with collection_lock(root_all, name):
        result.notes.extend(reconcile(root_all, name))
        sources = sources_dir(root)
        taken = _known_paths(root)
        n = len(audio)
        snapshot = ingest_snapshot_dir(root_all, name)
        try:
            check_cancel(should_cancel)
            keep_skipped = [] if create else extra_skipped_rows(Collection(root))
            if not create:
                take_snapshot(root, snapshot)
            placed = _place_batch(audio, sources, root_all, name, taken)
            try:
                # metadata files into a hidden folder the build does not look into
                meta_dir = Collection(root).sources_metadata_dir(new_batch_name())
                labels_csv, xc_json = _place_metadata(meta_files, meta_dir, root_all, result)
                res = build(
                    [sources], root, config=config if create else None, labels_csv=labels_csv, xc_json=xc_json,
                    jobs=jobs, progress=progress, should_cancel=should_cancel,
                )  # fmt: skip
            except BaseException:
                _return_to_staging(placed, sources)
                _drop_journal(root_all, name)
                raise
            outcomes = _outcomes(root, placed, res, n)
            ok = [o for o in outcomes if o.status == "ok"]
            try:
                check_cancel(should_cancel)  # cancelled during the build's last steps: undo it at once
                if ok:
                    coll = Collection.open(root)
                    if create:
                        feature_names = _initial_features(coll, features, progress, should_cancel, result)
                    else:
                        feature_names = coll.feature_sets()
                        _run_features(coll, feature_names, progress, should_cancel, result)
                        _place(coll, feature_names, ok, progress, should_cancel, result)
                    if create and feature_names:
                        _fit_new_map(coll, feature_names, progress, should_cancel, result)
            except Cancelled:
                # built but not placed: undo the batch, so the collection never keeps clips nobody was told of
                _return_to_staging(placed, sources)
                if create:
                    shutil.rmtree(root, ignore_errors=True)
                else:
                    restore_snapshot(root, snapshot)
                raise
            for o, (_staged, rel) in zip(outcomes, placed, strict=True):
                if o.status != "ok":
                    (sources / rel).unlink(missing_ok=True)
            if Collection(root).exists() and (keep_skipped or refusals):
                append_skipped(Collection(root), keep_skipped + refusals)
            for o in outcomes:
                _emit(result, o, on_file)
        finally:
            drop_snapshot(snapshot)
            _drop_journal(root_all, name)  # settled: the built files are in the manifest
            _tidy(root, created=create)

        if not Collection(root).exists():
            return result  # nothing usable: the new collection was removed again
        coll = Collection.open(root)
        result.n_clips = coll.n_clips()
        result.feature_sets = coll.feature_sets()
        result.reductions = coll.reductions()
        result.suggest_remap = any(_needs_remap(coll, key) for key in result.reductions)
    return result


def _place_batch(
    audio: list[StagedFile], sources: Path, root_all: Path, name: str, taken: set[str]
) -> list[tuple[StagedFile, str]]:
    """Move every audio file into ``sources/`` (journal first); return ``[(staged, path relative to sources)]``."""
    sources.mkdir(parents=True, exist_ok=True)
    plan: list[tuple[StagedFile, str]] = []
    for staged in audio:
        target = place_file(staged, sources, collections_root=root_all, taken=taken, dry_run=True)
        rel = target.relative_to(sources.resolve()).as_posix()
        taken.add(rel.lower())
        plan.append((staged, rel))
    _write_journal(root_all, name, plan)
    done: list[tuple[StagedFile, str]] = []
    try:
        for staged, rel in plan:
            move_into(staged.path, sources / rel)
            done.append((staged, rel))
    except BaseException:
        _return_to_staging(done, sources)
        _drop_journal(root_all, name)
        raise
    return done


def _outcomes(root: Path, placed: list[tuple[StagedFile, str]], res: Any, n: int) -> list[FileOutcome]:
    """Each placed file's outcome, its recording and clips found by its path (never by position)."""
    skipped = dict(res.skipped)
    coll = Collection.open(root) if Collection(root).exists() else None
    recs = coll.recordings() if coll is not None else None
    clips = coll.clips() if coll is not None else None
    out = []
    for i, (staged, rel) in enumerate(placed):
        label = str(staged.rel_path)
        if rel in skipped:
            out.append(FileOutcome(i, n, label, "failed", reason=skipped[rel] or "skipped"))
            continue
        rows = recs.index[recs["path"] == rel] if recs is not None else []
        if len(rows) != 1:
            out.append(FileOutcome(i, n, label, "failed", reason="no clips were found"))
            continue
        rid = int(recs.loc[rows[0], "recording_id"])
        ids = [int(c) for c in clips["clip_id"][clips["recording_id"] == rid]]
        if not ids:
            out.append(FileOutcome(i, n, label, "failed", reason="no clips were found"))
            continue
        out.append(FileOutcome(i, n, label, "ok", recording_id=rid, clip_ids=ids))
    return out


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
    from .refine import extend_refined, is_refined

    refined = [n for n in names if is_refined(coll, n)]  # placed through their saved heads, after their sources
    for name in [n for n in names if n not in refined] + refined:
        try:
            if name in refined:
                extend_refined(coll, name)
                continue
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
    ok: list[FileOutcome],
    progress: Progress,
    should_cancel: CancelCheck | None,
    result: IngestResult,
) -> None:
    """Extend every map whose feature sets are all up to date (once); set each outcome's 2-d positions per key."""
    from .reduce import reduce_collection, stored_params

    have = set(coll.feature_sets())
    last = max(c for o in ok for c in o.clip_ids)
    for key in coll.reductions():
        try:
            meta = coll.reduction_meta(key)
            feats = list(meta.get("features") or key.split("+"))
            params = stored_params(meta) if meta.get("params") else {}
            if not set(feats) <= have or not params:
                _note(result, f"map {key!r} was not extended (its feature sets or parameters are missing)")
                continue
            if meta.get("layout") == "pca":  # a small collection's map: fitted anew (UMAP once there are enough)
                _fit_small_or_umap(coll, feats, meta.get("dims") or [2], progress, should_cancel, params)
                result.refitted.append(key)
            else:
                reduce_collection(
                    coll, features=feats, dims=meta.get("dims") or [2], refit_growth=float("inf"), progress=progress,
                    should_cancel=should_cancel, **params,
                )  # fmt: skip
            m = coll.display_map(key)
            if len(m) >= last + 1:
                for o in ok:
                    o.positions[key] = np.asarray(m[o.clip_ids], dtype=np.float32)
        except Cancelled:
            raise
        except SonomapError as e:
            _note(result, f"map {key!r} was not extended: {e}")


def _fit_new_map(
    coll: Collection,
    feature_names: list[str],
    progress: Progress,
    should_cancel: CancelCheck | None,
    result: IngestResult,
) -> None:
    if coll.n_clips() < MIN_CLIPS_FOR_MAP:
        result.notes.append(
            f"only {coll.n_clips()} clips: a simple map (PCA) until there are {MIN_CLIPS_FOR_MAP} for UMAP"
        )
    try:
        _fit_small_or_umap(coll, feature_names, [2, 4, 8, 16], progress, should_cancel, {})
    except Cancelled:
        raise
    except SonomapError as e:
        result.notes.append(f"the map could not be computed: {e}")


def _fit_small_or_umap(
    coll: Collection,
    features: list[str],
    dims: list[int],
    progress: Progress,
    should_cancel: CancelCheck | None,
    params: dict[str, Any],
) -> None:
    """UMAP of ``features`` when the collection has enough clips, else the small PCA map (``small_map``)."""
    from .reduce import reduce_collection
    from .small_map import fit_small_map

    if coll.n_clips() < MIN_CLIPS_FOR_MAP:
        progress("reduce", 0, 1, "a simple map for a few clips")
        fit_small_map(coll, features, dims=dims)
        progress("reduce", 1, 1, "done")
        return
    reduce_collection(
        coll, features=features, dims=dims, refit=True, progress=progress, should_cancel=should_cancel, **params
    )


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
def collection_lock(collections_root: Path | str, name: str) -> Iterator[None]:
    """Hold collection ``name``'s ingest lock (ingest, remap, reconcile); ``CollectionError`` when it is taken."""
    root_all = Path(collections_root).resolve()
    lock = ingest_lock_path(root_all, name)
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CollectionError(
                f"recordings are being added to {name!r} or its map is being recomputed; wait until that finishes"
            ) from None
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


# ---------------------------------------------------------------------------------------------
# the journal of an ingest in flight, and reconciling after a crash


def _journal_path(root_all: Path, name: str) -> Path:
    return ingest_journal_path(root_all, name)


def _drop_journal(root_all: Path, name: str) -> None:
    path = _journal_path(root_all, name)
    path.unlink(missing_ok=True)
    try:
        path.parent.rmdir()  # only when no other collection's ingest is in flight
    except OSError:
        pass


def _write_journal(root_all: Path, name: str, plan: list[tuple[StagedFile, str]]) -> None:
    path = _journal_path(root_all, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    entries = [{"source": rel, "staged": str(s.path), "upload_id": s.upload_id} for s, rel in plan]
    write_json_atomic(path, {"collection": name, "files": entries})


def _return_to_staging(placed: list[tuple[StagedFile, str]], sources: Path) -> None:
    """Move placed files back to their staged paths (a failed or cancelled build keeps the user's uploads)."""
    for staged, rel in placed:
        src = sources / rel
        if src.is_file():
            if staged.path.parent.is_dir():
                os.replace(src, staged.path)
            else:
                src.unlink()


def reconcile(collections_root: Path | str, name: str) -> list[str]:
    """Settle an ingest of ``name`` that was interrupted (kill -9): call with :func:`collection_lock` held.

    Files of the journal that the manifest knows are adopted (the build finished; features and map catch up at the
    next ingest); the others go back to their staged uploads, or are removed when the upload is gone. Returns notes.
    """
    root_all = Path(collections_root).resolve()
    path = _journal_path(root_all, name)
    if not path.is_file():
        return []
    try:
        entries = json.loads(path.read_text()).get("files", [])
    except (OSError, ValueError, AttributeError):
        entries = []
    root = root_all / name
    sources = sources_dir(root)
    known = _known_paths(root)
    adopted = returned = removed = 0
    for e in entries:
        rel, staged = str(e.get("source", "")), Path(str(e.get("staged", "")))
        if not rel or rel.lower() in known:
            adopted += bool(rel)
            continue
        src = (sources / rel).resolve()
        if sources.resolve() not in src.parents or not src.is_file():
            continue
        staged_ok = staged.is_absolute() and (uploads_root(root_all)) in staged.resolve().parents
        if staged_ok and staged.parent.is_dir() and not staged.exists():
            os.replace(src, staged)
            returned += 1
        else:
            src.unlink()
            removed += 1
    _drop_journal(root_all, name)
    if root.is_dir() and not Collection(root).exists():
        shutil.rmtree(root, ignore_errors=True)  # a new collection that never got its manifest
    notes = []
    if adopted or returned or removed:
        notes.append(
            f"an earlier upload to {name!r} was interrupted: {adopted} file(s) kept in the collection, "
            f"{returned} returned to the upload area, {removed} removed"
        )
    return notes


def reconcile_all(collections_root: Path | str) -> list[str]:
    """Run :func:`reconcile` for every collection with a journal whose lock is free (at server start)."""
    root_all = Path(collections_root).resolve()
    notes: list[str] = []
    folder = ingest_journals_dir(root_all)
    if not folder.is_dir():
        return notes
    for journal in sorted(folder.glob("*.json")):
        name = journal.stem
        try:
            check_name(name, what="collection name")
            with collection_lock(root_all, name):
                notes.extend(reconcile(root_all, name))
        except SonomapError:
            continue
    return notes
