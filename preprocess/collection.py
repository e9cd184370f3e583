"""The on-disk collection format: the one module that knows every path and file name.

A collection is a folder::

    COLLECTION/
      manifest.json                 written last; schema_version, tool_version, config, sources, counts, stages
      recordings.parquet            one row per usable recording (recording_id, path, sha1, metadata, credits)
      clips/part_000000000.parquet  the clip table, one part per build named by its first clip id; row i has
                                    clip_id == i (see CLIP_COLUMNS); older collections: one clips.parquet
      skipped.csv                   path, reason: files that could not be used
      spectrograms.npy              uint8 [n_clips, n_mels, n_frames]: log-mel, 0 = -top_db dB, 255 = 0 dB (max);
                                    grows in place (preprocess/npy_append.py)
      sprites/sheet_00000.jpg       spectrogram tiles, row-major cells of tile_w x tile_h px, high freqs on top
      audio/sprite_00000.flac       clips joined with fades and gaps; offsets in the clip table
      features/NAME/features.npy    float32 [n_clips, D], row i = clip_id i
      features/NAME/meta.json       extractor, params, model, version, time_s
      features/NAME/species.parquet (birdnet) clip_id, species_1..k, score_1..k
      reductions/KEY/dims_D.npy     float32 [n_clips, D] for each requested D; KEY = "birdnet" or "birdnet+saec"
      reductions/KEY/map_2d.npy     float32 [n_clips, 2], the display map
      reductions/KEY/meta.json      params, dims, time_s
      reductions/KEY/model.pkl      fitted scaler/PCA/UMAP, to place new clips without moving old ones
      evaluation.json               written by ``python -m preprocess evaluate``
      labels.sqlite                 the user's classes (WAL); never rebuilt, never deleted by a build
      work/                         per-recording intermediate results that make builds resumable
      sources/                      uploaded originals (the recording view streams them from there)
      recording_tiles/rec_ID_SHA/   the recording view's cached tiles, info.json and audio.flac

    COLLECTIONS/.uploads/           uploads being staged, beside the collections (see uploads.py)

File names live in :mod:`preprocess.schema`; the :class:`Collection` accessors below are the only
place that joins them into paths.

Every file is written atomically (temporary file in the same folder, then ``os.replace``), and
the manifest is written last, so a collection whose manifest exists is complete.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import (  # noqa: F401  (re-exported: callers import the writers from the store)
    atomic_path,
    save_npy_atomic,
    write_bytes_atomic,
    write_json_atomic,
    write_table_atomic,
)
from .errors import CollectionError, NotFoundError, ParameterError
from .schema import (  # noqa: F401  (re-exported: older callers import the names from here)
    AUDIO_DIR,
    AUDIO_SPRITE_PATTERN,
    CLIP_COLUMNS,
    CLIP_PART_GLOB,
    CLIP_PART_PATTERN,
    CLIPS,
    CLIPS_DIR,
    DERIVED_DIR,
    DIMS_PATTERN,
    EVALUATION,
    FEATURES_DIR,
    FEATURES_FILE,
    FEATURES_MODEL_FILE,
    HEAD_FILE,
    JOURNAL_DIR,
    JOURNAL_PATTERN,
    LABELS_DB,
    LEARN_DIR,
    LEARN_META_FILE,
    LEARN_MODEL_FILE,
    LEARN_SCORES_FILE,
    LOCK_PATTERN,
    LOCKS_DIR,
    MANIFEST,
    MAP_FILE,
    META_FILE,
    MODEL_FILE,
    PARTIAL_CHUNK_GLOB,
    PARTIAL_CHUNK_PATTERN,
    PARTIAL_DIR,
    PARTIAL_META_FILE,
    RECORDING_AUDIO_FILE,
    RECORDING_INFO_FILE,
    RECORDING_TILE_PATTERN,
    RECORDING_TILES_DIR,
    RECORDING_TILES_PATTERN,
    RECORDINGS,
    REDUCTIONS_DIR,
    ROLLBACK_DIR,
    SCHEMA_VERSION,
    SHEET_PATTERN,
    SIMILAR_DIR,
    SIMILAR_INDEX_FILE,
    SIMILAR_META_FILE,
    SKIPPED,
    SOURCES_DIR,
    SOURCES_METADATA_DIR,
    SPECIES_FILE,
    SPECTROGRAMS,
    SPRITES_DIR,
    UPLOAD_DATA_FILE,
    UPLOAD_META_FILE,
    UPLOAD_PART_FILE,
    UPLOAD_UNZIPPED_DIR,
    UPLOADS_DIR,
    WORK_AUDIO_SUFFIX,
    WORK_DIR,
    WORK_PATTERN,
    WORK_SKIP_SUFFIX,
    WORK_SPECS_SUFFIX,
)

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")


def check_name(name: str, *, what: str = "name") -> str:
    """Refuse names that could escape a folder or break a URL (feature sets, reductions)."""
    if not isinstance(name, str) or not _NAME_RE.match(name) or ".." in name:
        raise ParameterError(
            f"invalid {what} {name!r}: use 1-64 letters, digits, '_', '-', '.', '+' (not starting with a symbol)"
        )
    return name


# ---------------------------------------------------------------------------------------------
# the collection


@dataclass(frozen=True)
class Collection:
    """A collection folder. Cheap to create; reads lazily."""

    root: Path

    @classmethod
    def open(cls, root: Path | str) -> Collection:
        """Open an existing, complete collection (its manifest exists)."""
        root = Path(root)
        if not (root / MANIFEST).is_file():
            raise NotFoundError(f"no collection at {root} (no {MANIFEST})")
        return cls(root)

    @property
    def name(self) -> str:
        return self.root.name

    # paths ---------------------------------------------------------------------------------
    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST

    @property
    def recordings_path(self) -> Path:
        return self.root / RECORDINGS

    @property
    def clips_path(self) -> Path:
        """Where the clip table lives: the parts folder ``clips/``, or ``clips.parquet`` of an older collection.

        Its stat changes whenever the table does (a part added or removed changes the folder's mtime)."""
        d = self.root / CLIPS_DIR
        return d if d.is_dir() or not (self.root / CLIPS).is_file() else self.root / CLIPS

    @property
    def skipped_path(self) -> Path:
        return self.root / SKIPPED

    @property
    def spectrograms_path(self) -> Path:
        return self.root / SPECTROGRAMS

    @property
    def sprites_dir(self) -> Path:
        return self.root / SPRITES_DIR

    @property
    def audio_dir(self) -> Path:
        return self.root / AUDIO_DIR

    @property
    def work_dir(self) -> Path:
        return self.root / WORK_DIR

    @property
    def labels_db_path(self) -> Path:
        return self.root / LABELS_DB

    @property
    def evaluation_path(self) -> Path:
        return self.root / EVALUATION

    @property
    def sources_dir(self) -> Path:
        """Uploaded originals, kept so the recording view can stream them."""
        return self.root / SOURCES_DIR

    def sources_metadata_dir(self, batch: str) -> Path:
        """Where one upload batch's metadata files (labels CSV, xeno-canto JSON) go; the build does not look there."""
        return self.sources_dir / SOURCES_METADATA_DIR / batch

    @property
    def recording_tiles_root(self) -> Path:
        return self.root / RECORDING_TILES_DIR

    def exists(self) -> bool:
        """Whether the collection is complete (its manifest, written last, exists)."""
        return self.manifest_path.is_file()

    def sheet_path(self, sheet: int, ext: str | None = None) -> Path:
        ext = ext or self.manifest().get("config", {}).get("tile_format", "jpg")
        return self.sprites_dir / SHEET_PATTERN.format(int(sheet), ext)

    def audio_sprite_path(self, sprite: int) -> Path:
        return self.audio_dir / AUDIO_SPRITE_PATTERN.format(int(sprite))

    # work/ (scratch of a build) ----------------------------------------------------------------
    def work_file(self, key: str) -> Path:
        """A recording's work file (``.npz``: spectrograms, clip times, the summary) for its work ``key``."""
        return self.work_dir / WORK_PATTERN.format(key)

    # features/NAME/ ------------------------------------------------------------------------------
    @property
    def features_root(self) -> Path:
        return self.root / FEATURES_DIR

    def features_dir(self, name: str) -> Path:
        return self.features_root / check_name(name, what="feature set")

    def features_path(self, name: str) -> Path:
        """float32 [n_clips, D] ``.npy`` of feature set ``name``."""
        return self.features_dir(name) / FEATURES_FILE

    def features_meta_path(self, name: str) -> Path:
        return self.features_dir(name) / META_FILE

    def features_partial_dir(self, name: str) -> Path:
        """Where an unfinished feature run keeps its finished batches (resumable)."""
        return self.features_dir(name) / PARTIAL_DIR

    def features_partial_meta_path(self, name: str) -> Path:
        """What the unfinished run was (signature, first row): a different one makes the chunks stale."""
        return self.features_partial_dir(name) / PARTIAL_META_FILE

    def features_chunk_path(self, name: str, first_row: int) -> Path:
        """One finished batch of an unfinished feature run, starting at row ``first_row``."""
        return self.features_partial_dir(name) / PARTIAL_CHUNK_PATTERN.format(int(first_row))

    def features_chunks(self, name: str) -> list[Path]:
        """The unfinished run's batches, by first row."""
        return sorted(self.features_partial_dir(name).glob(PARTIAL_CHUNK_GLOB))

    def features_model_path(self, name: str) -> Path:
        """The checkpoint of a feature set whose extractor is trained on the collection (saec)."""
        return self.features_dir(name) / FEATURES_MODEL_FILE

    def species_path(self, name: str = "birdnet") -> Path:
        """Per-clip species table of a classifier feature set (BirdNET)."""
        return self.features_dir(name) / SPECIES_FILE

    # reductions/KEY/ -----------------------------------------------------------------------------
    @property
    def reductions_root(self) -> Path:
        return self.root / REDUCTIONS_DIR

    def reduction_dir(self, key: str) -> Path:
        return self.reductions_root / check_name(key, what="reduction")

    def reduced_path(self, key: str, dims: int) -> Path:
        """float32 [n_clips, dims] ``.npy`` of reduction ``key`` (the clustering spaces)."""
        return self.reduction_dir(key) / DIMS_PATTERN.format(int(dims))

    def map_path(self, key: str) -> Path:
        """float32 [n_clips, 2] ``.npy``: the display map of reduction ``key``."""
        return self.reduction_dir(key) / MAP_FILE

    def coords_path(self, key: str, dims: int) -> Path:
        """The ``dims``-d coordinates of reduction ``key``; for 2 the display map when no 2-d clustering space exists."""
        path = self.reduced_path(key, dims)
        if int(dims) == 2 and not path.is_file():
            return self.map_path(key)
        return path

    def reduction_meta_path(self, key: str) -> Path:
        return self.reduction_dir(key) / META_FILE

    def reduction_model_path(self, key: str) -> Path:
        """The fitted scalers/PCA/UMAPs (pickle) that place new clips on reduction ``key``."""
        return self.reduction_dir(key) / MODEL_FILE

    # recording_tiles/ ----------------------------------------------------------------------------
    def recording_tiles_dir(self, recording_id: int, sha1: str | None) -> Path:
        """The recording view's cache folder of one recording (keyed by id and content)."""
        name = RECORDING_TILES_PATTERN.format(int(recording_id), str(sha1 or "x")[:12])
        return self.recording_tiles_root / name

    def recording_info_path(self, recording_id: int, sha1: str | None) -> Path:
        return self.recording_tiles_dir(recording_id, sha1) / RECORDING_INFO_FILE

    def recording_tile_path(self, recording_id: int, sha1: str | None, tile_s: int, index: int) -> Path:
        return self.recording_tiles_dir(recording_id, sha1) / RECORDING_TILE_PATTERN.format(int(tile_s), int(index))

    def recording_audio_path(self, recording_id: int, sha1: str | None) -> Path:
        return self.recording_tiles_dir(recording_id, sha1) / RECORDING_AUDIO_FILE

    # reads ---------------------------------------------------------------------------------
    def manifest(self) -> dict[str, Any]:
        try:
            return json.loads(self.manifest_path.read_text())
        except FileNotFoundError:
            raise NotFoundError(f"no collection at {self.root}") from None
        except json.JSONDecodeError as e:
            raise CollectionError(f"corrupt manifest {self.manifest_path}: {e}") from None

    def clips(self) -> Any:
        """The clip table as a pandas DataFrame (row i has clip_id i): its parts in order, or the older single file.

        Parts past the manifest's clip count (a killed build's) are left out."""
        import pandas as pd

        parts = self.clip_parts()
        if not parts:
            if not (self.root / CLIPS).is_file():
                raise CollectionError(f"{self.root} has no clip table: build it first")
            return pd.read_parquet(self.root / CLIPS)
        n = self._committed_clips()
        if n is not None:
            parts = [(first, p) for first, p in parts if first < n] or parts[:1]
        frames = [pd.read_parquet(p) for _first, p in parts]
        return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)

    def recordings(self) -> Any:
        """The recording table as a pandas DataFrame."""
        import pandas as pd

        return pd.read_parquet(self.recordings_path)

    def spectrograms(self) -> np.ndarray:
        """uint8 [n_clips, n_mels, n_frames], memory-mapped."""
        if not self.spectrograms_path.is_file():
            raise CollectionError(f"{self.root} has no spectrograms: build it first")
        return np.load(self.spectrograms_path, mmap_mode="r")

    def clip_part_path(self, first_clip_id: int) -> Path:
        """The clip table's part whose first row is clip ``first_clip_id``."""
        return self.root / CLIPS_DIR / CLIP_PART_PATTERN.format(int(first_clip_id))

    def clip_parts(self) -> list[tuple[int, Path]]:
        """``(first clip id, path)`` of the clip table's parts, in order (empty for a single-file table)."""
        d = self.root / CLIPS_DIR
        if not d.is_dir():
            return []
        return sorted((int(p.stem.split("_")[1]), p) for p in d.glob(CLIP_PART_GLOB))

    def clip_rows(self) -> int:
        """Rows of the clip table on disk (parts included, killed builds' too), from Parquet footers only."""
        import pyarrow.parquet as pq

        parts = self.clip_parts()
        if parts:
            return sum(pq.read_metadata(p).num_rows for _f, p in parts)
        legacy = self.root / CLIPS
        return pq.read_metadata(legacy).num_rows if legacy.is_file() else 0

    def append_clips(self, frame: Any, *, n_keep: int) -> None:
        """Keep the first ``n_keep`` clips and add ``frame`` (clip ids ``n_keep, n_keep + 1, ...``) as a new part.

        Writes only the new rows: parts from ``n_keep`` on (a killed build's) are removed first; an older
        single-file table is moved into part 0 once (its rows up to ``n_keep``).
        """
        import pandas as pd

        legacy = self.root / CLIPS
        if legacy.is_file() and not self.clip_parts():
            if n_keep:
                write_table_atomic(self.clip_part_path(0), pd.read_parquet(legacy).iloc[:n_keep])
            else:
                (self.root / CLIPS_DIR).mkdir(parents=True, exist_ok=True)
        for first, p in self.clip_parts():
            if first >= n_keep:
                p.unlink()
        if len(frame):
            write_table_atomic(self.clip_part_path(n_keep), frame)
        legacy.unlink(missing_ok=True)

    def append_spectrograms(self, blocks: Any, *, n_keep: int, row_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Keep the first ``n_keep`` spectrograms and append ``blocks`` (uint8 [k, *row_shape]) in place.

        Writes only the new rows (see :mod:`preprocess.npy_append`); a new file is streamed and renamed.
        Returns the file's shape."""
        from .npy_append import NpyWriter, append_rows

        path = self.spectrograms_path
        if n_keep and path.is_file():
            return append_rows(path, blocks, n_keep=n_keep)
        with NpyWriter(path, row_shape=row_shape, dtype=np.uint8) as w:
            for b in blocks:
                w.write(b)
        return (w.n_rows, *row_shape)

    def _committed_clips(self) -> int | None:
        try:
            return int(json.loads(self.manifest_path.read_text())["counts"]["clips"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def n_clips(self) -> int:
        return int(self.manifest().get("counts", {}).get("clips", 0))

    def feature_sets(self) -> list[str]:
        d = self.features_root
        if not d.is_dir():
            return []
        return sorted(p.name for p in d.iterdir() if (p / FEATURES_FILE).is_file() and (p / META_FILE).is_file())

    def features(self, name: str, *, mmap: bool = True) -> np.ndarray:
        """float32 [n_clips, D] of feature set ``name``."""
        path = self.features_path(name)
        if not path.is_file() or not self.features_meta_path(name).is_file():
            raise NotFoundError(
                f"feature set {name!r} not found; available: {', '.join(self.feature_sets()) or 'none'}"
            )
        return np.load(path, mmap_mode="r" if mmap else None)

    def features_meta(self, name: str) -> dict[str, Any]:
        self.features(name)
        return json.loads(self.features_meta_path(name).read_text())

    def reductions(self) -> list[str]:
        d = self.reductions_root
        if not d.is_dir():
            return []
        return sorted(p.name for p in d.iterdir() if (p / META_FILE).is_file())

    def reduction_meta(self, key: str) -> dict[str, Any]:
        path = self.reduction_meta_path(key)
        if not path.is_file():
            raise NotFoundError(f"reduction {key!r} not found; available: {', '.join(self.reductions()) or 'none'}")
        return json.loads(path.read_text())

    def reduced(self, key: str, dims: int) -> np.ndarray:
        """float32 [n_clips, dims] of reduction ``key`` (dims=2 display map is ``map_2d``)."""
        meta = self.reduction_meta(key)
        path = self.reduced_path(key, dims)
        if not path.is_file():
            raise NotFoundError(f"reduction {key!r} has no {dims}-d coordinates; available dims: {meta.get('dims')}")
        return np.load(path)

    def display_map(self, key: str) -> np.ndarray:
        self.reduction_meta(key)
        return np.load(self.map_path(key))

    def summary(self) -> dict[str, Any]:
        m = self.manifest()
        return {
            "name": self.name,
            "counts": m.get("counts", {}),
            "feature_sets": self.feature_sets(),
            "reductions": self.reductions(),
        }

    # query by example and the classifier (preprocess/similar.py, preprocess/learn/) -----------------------
    def similar_dir(self, features: str) -> Path:
        """``similar/NAME/``: the similarity index of feature set NAME (index.faiss + meta.json)."""
        return self.root / SIMILAR_DIR / check_name(features, what="feature set")

    @property
    def learn_dir(self) -> Path:
        """``learn/``: the classifier (model.npz, model.json with history) and its scores.npy."""
        return self.root / LEARN_DIR

    def similar_index_path(self, features: str) -> Path:
        return self.similar_dir(features) / SIMILAR_INDEX_FILE

    def similar_meta_path(self, features: str) -> Path:
        return self.similar_dir(features) / SIMILAR_META_FILE

    @property
    def learn_model_path(self) -> Path:
        return self.learn_dir / LEARN_MODEL_FILE

    @property
    def learn_meta_path(self) -> Path:
        return self.learn_dir / LEARN_META_FILE

    @property
    def learn_scores_path(self) -> Path:
        return self.learn_dir / LEARN_SCORES_FILE

    def refine_head_path(self, name: str) -> Path:
        """``features/NAME/head.pt``: the projection head that made refined feature set NAME."""
        return self.features_dir(name) / HEAD_FILE

    # derived artefacts (caches rebuilt from the tables; deleting them is always safe) ---------------
    def derived_path(self, name: str, key: str) -> Path:
        """``derived/NAME-KEY``: an artefact computed from the tables, ``key`` = their fingerprint (hex)."""
        if not key or not all(ch in "0123456789abcdef" for ch in key):
            raise ParameterError(f"derived artefact key must be lowercase hex, got {key!r}")
        return self.root / DERIVED_DIR / f"{check_name(name, what='artefact')}-{key}"


def uploads_root(collections_root: Path | str) -> Path:
    """``COLLECTIONS/.uploads``: where uploads are staged, beside the collections (not inside one)."""
    return Path(collections_root) / UPLOADS_DIR


def upload_dir(collections_root: Path | str, upload_id: str) -> Path:
    """One upload's staging folder (``upload_id`` must already be checked)."""
    return uploads_root(collections_root) / upload_id


def upload_meta_path(upload_folder: Path) -> Path:
    """An upload's bookkeeping (names, declared size, kind, owner, times)."""
    return upload_folder / UPLOAD_META_FILE


def upload_part_path(upload_folder: Path) -> Path:
    """The bytes of an upload received so far."""
    return upload_folder / UPLOAD_PART_FILE


def upload_data_path(upload_folder: Path) -> Path:
    """The complete uploaded file (renamed from the part file when the last byte arrives)."""
    return upload_folder / UPLOAD_DATA_FILE


def upload_unzipped_dir(upload_folder: Path) -> Path:
    """Members of an uploaded zip, extracted under safe names."""
    return upload_folder / UPLOAD_UNZIPPED_DIR


def ingest_lock_path(collections_root: Path | str, name: str) -> Path:
    """The lock file that keeps ingests into collection ``name`` one at a time."""
    return uploads_root(collections_root) / LOCKS_DIR / LOCK_PATTERN.format(name)


def ingest_journals_dir(collections_root: Path | str) -> Path:
    """Where the journals of ingests in flight live (one per collection, removed when the ingest settles)."""
    return uploads_root(collections_root) / JOURNAL_DIR


def ingest_journal_path(collections_root: Path | str, name: str) -> Path:
    """The journal of an ingest into collection ``name``: which staged files were moved into ``sources/``."""
    return ingest_journals_dir(collections_root) / JOURNAL_PATTERN.format(name)


def work_audio_path(work_file: Path | str) -> Path:
    """The clip audio (int16, concatenated) saved beside a recording's work file."""
    return Path(work_file).with_suffix(WORK_AUDIO_SUFFIX)


def work_skip_path(work_file: Path | str) -> Path:
    """Why a recording was skipped, saved beside where its work file would be."""
    return Path(work_file).with_suffix(WORK_SKIP_SUFFIX)


def work_specs_path(work_file: Path | str) -> Path:
    """The clips' spectrograms (uint8 [n_clips, n_mels, n_frames]) saved beside a recording's work file."""
    return Path(work_file).with_suffix(WORK_SPECS_SUFFIX)


# --- ingest rollback and small maps -------------------------------------------------------------------------------
#: Files a build, feature pass or placement never writes (the user's labels, originals, scratch, caches): a rollback
#: snapshot leaves them alone.
BUILD_UNTOUCHED = (LABELS_DB, f"{LABELS_DB}-wal", f"{LABELS_DB}-shm", f"{LABELS_DB}-journal", SOURCES_DIR, WORK_DIR,
                   RECORDING_TILES_DIR)  # fmt: skip


def ingest_snapshot_dir(collections_root: Path | str, name: str) -> Path:
    """Hard links of collection ``name``'s built files taken before an ingest's build (removed when it settles)."""
    return uploads_root(collections_root) / ROLLBACK_DIR / name
