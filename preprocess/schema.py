"""The collection format's schema: file names, table columns and dtypes, the manifest header.

Only :mod:`preprocess.collection` (the store) turns these names into paths; everything else asks the
store. See docs/ARCHITECTURE.md, "Collection format", for what each file holds.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from . import __version__
from .metadata import METADATA_COLUMNS

SCHEMA_VERSION = 1

# file and folder names inside COLLECTION/ ------------------------------------------------------
MANIFEST = "manifest.json"
RECORDINGS = "recordings.parquet"
CLIPS = "clips.parquet"  # the clip table of collections built before clip parts (still read)
CLIPS_DIR = "clips"  # the clip table as a Parquet dataset: one part per build
CLIP_PART_PATTERN = "part_{:09d}.parquet"  # first clip id of the part
CLIP_PART_GLOB = "part_*.parquet"
SKIPPED = "skipped.csv"
SPECTROGRAMS = "spectrograms.npy"
SPRITES_DIR = "sprites"
SHEET_PATTERN = "sheet_{:05d}.{}"  # sprite sheet number, image extension
AUDIO_DIR = "audio"
AUDIO_SPRITE_PATTERN = "sprite_{:05d}.flac"  # audio sprite number
FEATURES_DIR = "features"
FEATURES_FILE = "features.npy"
META_FILE = "meta.json"
FEATURES_MODEL_FILE = "model.pt"  # a trained extractor's checkpoint (saec)
PARTIAL_DIR = "partial"
PARTIAL_META_FILE = "partial.json"
PARTIAL_CHUNK_PATTERN = "chunk_{:09d}.npz"  # first row of the chunk
PARTIAL_CHUNK_GLOB = "chunk_*.npz"
SPECIES_FILE = "species.parquet"
REDUCTIONS_DIR = "reductions"
DIMS_PATTERN = "dims_{}.npy"  # number of dimensions
MAP_FILE = "map_2d.npy"
MODEL_FILE = "model.pkl"
MODEL_DIMS_KEY = "dims_{}"  # key of a clustering-space UMAP inside model.pkl
MODEL_MAP_KEY = "map_2d"  # key of the display map's UMAP inside model.pkl
EVALUATION = "evaluation.json"
LABELS_DB = "labels.sqlite"
WORK_DIR = "work"
WORK_PATTERN = "rec_{}.npz"  # work key
WORK_AUDIO_SUFFIX = ".audio.npy"
WORK_SPECS_SUFFIX = ".specs.npy"  # uint8 [n_clips, n_mels, n_frames] of one recording
WORK_SKIP_SUFFIX = ".skip.json"
SOURCES_DIR = "sources"
RECORDING_TILES_DIR = "recording_tiles"
RECORDING_TILES_PATTERN = "rec_{}_{}"  # recording id, first 12 hex digits of the sha1
RECORDING_INFO_FILE = "info.json"
RECORDING_TILE_PATTERN = "z{}_{:05d}.jpg"  # seconds per tile, tile index
RECORDING_AUDIO_FILE = "audio.flac"
SOURCES_METADATA_DIR = ".metadata"  # sources/.metadata/BATCH/: uploaded labels CSV and xeno-canto JSON
# beside the collections (COLLECTIONS/.uploads), not inside one
UPLOADS_DIR = ".uploads"
UPLOAD_META_FILE = "meta.json"  # .uploads/UPLOAD_ID/meta.json
UPLOAD_PART_FILE = "data.part"  # bytes received so far
UPLOAD_DATA_FILE = "data"  # the complete file
UPLOAD_UNZIPPED_DIR = "unzipped"  # members of a zip, extracted under safe names
SIMILAR_DIR = "similar"  # similar/NAME/: the similarity index of feature set NAME
LEARN_DIR = "learn"  # learn/: the classifier, its scores and history
SIMILAR_INDEX_FILE = "index.faiss"  # similar/NAME/index.faiss: the faiss index (exact or IVF)
SIMILAR_META_FILE = "meta.json"  # similar/NAME/meta.json: what the index holds; written last
LEARN_MODEL_FILE = "model.npz"  # learn/model.npz: the classifier's weights
LEARN_META_FILE = "model.json"  # learn/model.json: classes, parameters, metrics, history
LEARN_SCORES_FILE = "scores.npy"  # learn/scores.npy: float32 [n_clips, n_classes] in [0, 1]
HEAD_FILE = "head.pt"  # features/NAME-refined/head.pt: the refine projection head
ROLLBACK_DIR = "rollback"  # .uploads/rollback/NAME/: hard links of the built files while an ingest runs
DERIVED_DIR = "derived"  # derived/NAME-KEY: caches computed from the tables (e.g. clips.bin), safe to delete
LOCKS_DIR = "locks"  # .uploads/locks/NAME.lock: one ingest at a time per collection
LOCK_PATTERN = "{}.lock"  # collection name
JOURNAL_DIR = "journal"  # .uploads/journal/NAME.json: an ingest in flight (files moved into sources/)
JOURNAL_PATTERN = "{}.json"  # collection name

# tables ---------------------------------------------------------------------------------------
#: Columns every clip table has (more may follow). Times in seconds of the source recording.
CLIP_COLUMNS = (
    "clip_id",  # int64, == row index
    "recording_id",  # int64, row in recordings.parquet
    "start_s",  # float64, start in the source recording
    "end_s",  # float64, end in the source recording (may exceed duration when padded)
    "fmin_hz",  # float32, event's lower frequency bound (fixed windows: config fmin)
    "fmax_hz",  # float32, event's upper frequency bound (fixed windows: config fmax)
    "sheet",  # int32, sprite sheet number (sprites/sheet_%05d.<ext>)
    "cell",  # int32, row-major cell in that sheet
    "audio_sprite",  # int32, audio sprite number (audio/sprite_%05d.flac)
    "audio_offset",  # int64, first sample of the clip in that sprite
    "audio_length",  # int64, number of samples of the clip
)

CLIP_DTYPES = {
    "clip_id": "int64",
    "recording_id": "int64",
    "start_s": "float64",
    "end_s": "float64",
    "fmin_hz": "float32",
    "fmax_hz": "float32",
    "sheet": "int32",
    "cell": "int32",
    "audio_sprite": "int32",
    "audio_offset": "int64",
    "audio_length": "int64",
}

#: Columns of recordings.parquet, in order.
RECORDING_COLUMNS = (
    "recording_id",
    "path",
    "file_name",
    "sha1",
    "size_bytes",
    "duration_s",
    "orig_sample_rate",
    "channels",
    "format",
    *METADATA_COLUMNS,
    "n_clips",
    "note",
)

RECORDING_INT_COLUMNS = ("recording_id", "size_bytes", "orig_sample_rate", "channels", "n_clips")
RECORDING_FLOAT_COLUMNS = ("duration_s", "lat", "lon")

#: Columns of skipped.csv.
SKIPPED_COLUMNS = ("path", "reason")


def recording_dtypes(recs: Any) -> Any:
    """Cast a recordings DataFrame to the schema's dtypes in place (ints, floats, the rest str); returns it."""
    for c in recs.columns:
        if c in RECORDING_INT_COLUMNS:
            recs[c] = recs[c].astype("int64")
        elif c in RECORDING_FLOAT_COLUMNS:
            recs[c] = recs[c].astype("float64")
        else:
            recs[c] = recs[c].fillna("").astype(str)
    return recs


# the manifest ---------------------------------------------------------------------------------
def now_iso() -> str:
    """The current UTC time, to the second, as ISO 8601 (the manifest's stamps)."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def manifest_header(old: dict[str, Any] | None) -> dict[str, Any]:
    """The manifest's first keys: schema and tool version, created (kept from ``old``), updated (now)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "tool_version": __version__,
        "created": (old or {}).get("created") or now_iso(),
        "updated": now_iso(),
    }
