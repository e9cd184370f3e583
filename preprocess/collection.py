"""The on-disk collection format: the one module that knows every path and file name.

A collection is a folder::

    COLLECTION/
      manifest.json                 written last; schema_version, tool_version, config, sources, counts, stages
      recordings.parquet            one row per usable recording (recording_id, path, sha1, metadata, credits)
      clips.parquet                 one row per clip, row i has clip_id == i (see CLIP_COLUMNS)
      skipped.csv                   path, reason: files that could not be used
      spectrograms.npy              uint8 [n_clips, n_mels, n_frames]: log-mel, 0 = -top_db dB, 255 = 0 dB (max)
      sprites/sheet_00000.jpg       spectrogram tiles, row-major cells of tile_w x tile_h px, high freqs on top
      audio/sprite_00000.flac       clips joined with fades and gaps; offsets in clips.parquet
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

Every file is written atomically (temporary file in the same folder, then ``os.replace``), and
the manifest is written last, so a collection whose manifest exists is complete.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import CollectionError, NotFoundError, ParameterError

SCHEMA_VERSION = 1

MANIFEST = "manifest.json"
RECORDINGS = "recordings.parquet"
CLIPS = "clips.parquet"
SKIPPED = "skipped.csv"
SPECTROGRAMS = "spectrograms.npy"
SPRITES_DIR = "sprites"
AUDIO_DIR = "audio"
FEATURES_DIR = "features"
REDUCTIONS_DIR = "reductions"
EVALUATION = "evaluation.json"
LABELS_DB = "labels.sqlite"
WORK_DIR = "work"

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

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")


def check_name(name: str, *, what: str = "name") -> str:
    """Refuse names that could escape a folder or break a URL (feature sets, reductions)."""
    if not isinstance(name, str) or not _NAME_RE.match(name) or ".." in name:
        raise ParameterError(
            f"invalid {what} {name!r}: use 1-64 letters, digits, '_', '-', '.', '+' (not starting with a symbol)"
        )
    return name


# ---------------------------------------------------------------------------------------------
# atomic writes


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path`` (atomic)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o644)  # mkstemp makes 0600; collections are shared read-only with the server
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: Path | str, data: bytes, *, fsync: bool = True) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())


def write_json_atomic(path: Path | str, obj: Any, *, fsync: bool = True) -> None:
    write_bytes_atomic(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default).encode(), fsync=fsync)


def save_npy_atomic(path: Path | str, array: np.ndarray, *, fsync: bool = True) -> None:
    """``np.save`` atomically; ``fsync=False`` for scratch files (a crash of the OS may lose them, not corrupt them)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array)
            if fsync:
                f.flush()
                os.fsync(f.fileno())


def write_table_atomic(path: Path | str, frame: Any) -> None:
    """Write a pandas DataFrame as Parquet (``.parquet``) or CSV (``.csv``), atomically, without index."""
    path = Path(path)
    with atomic_path(path) as tmp:
        if path.suffix == ".parquet":
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


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
            raise NotFoundError(f"no collection at {root} (no {MANIFEST}); build one with: python -m preprocess build")
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
        return self.root / CLIPS

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

    def sheet_path(self, sheet: int, ext: str | None = None) -> Path:
        ext = ext or self.manifest().get("config", {}).get("tile_format", "jpg")
        return self.sprites_dir / f"sheet_{int(sheet):05d}.{ext}"

    def audio_sprite_path(self, sprite: int) -> Path:
        return self.audio_dir / f"sprite_{int(sprite):05d}.flac"

    def features_dir(self, name: str) -> Path:
        return self.root / FEATURES_DIR / check_name(name, what="feature set")

    def reduction_dir(self, key: str) -> Path:
        return self.root / REDUCTIONS_DIR / check_name(key, what="reduction")

    # reads ---------------------------------------------------------------------------------
    def manifest(self) -> dict[str, Any]:
        try:
            return json.loads(self.manifest_path.read_text())
        except FileNotFoundError:
            raise NotFoundError(f"no collection at {self.root}") from None
        except json.JSONDecodeError as e:
            raise CollectionError(f"corrupt manifest {self.manifest_path}: {e}") from None

    def clips(self) -> Any:
        """The clip table as a pandas DataFrame (row i has clip_id i)."""
        import pandas as pd

        return pd.read_parquet(self.clips_path)

    def recordings(self) -> Any:
        """The recording table as a pandas DataFrame."""
        import pandas as pd

        return pd.read_parquet(self.recordings_path)

    def spectrograms(self) -> np.ndarray:
        """uint8 [n_clips, n_mels, n_frames], memory-mapped."""
        if not self.spectrograms_path.is_file():
            raise CollectionError(f"{self.root} has no spectrograms: run python -m preprocess build first")
        return np.load(self.spectrograms_path, mmap_mode="r")

    def n_clips(self) -> int:
        return int(self.manifest().get("counts", {}).get("clips", 0))

    def feature_sets(self) -> list[str]:
        d = self.root / FEATURES_DIR
        if not d.is_dir():
            return []
        return sorted(p.name for p in d.iterdir() if (p / "features.npy").is_file() and (p / "meta.json").is_file())

    def features(self, name: str, *, mmap: bool = True) -> np.ndarray:
        """float32 [n_clips, D] of feature set ``name``."""
        path = self.features_dir(name) / "features.npy"
        if not path.is_file() or not (path.parent / "meta.json").is_file():
            raise NotFoundError(
                f"feature set {name!r} not found; available: {', '.join(self.feature_sets()) or 'none'}"
            )
        return np.load(path, mmap_mode="r" if mmap else None)

    def features_meta(self, name: str) -> dict[str, Any]:
        self.features(name)
        return json.loads((self.features_dir(name) / "meta.json").read_text())

    def reductions(self) -> list[str]:
        d = self.root / REDUCTIONS_DIR
        if not d.is_dir():
            return []
        return sorted(p.name for p in d.iterdir() if (p / "meta.json").is_file())

    def reduction_meta(self, key: str) -> dict[str, Any]:
        path = self.reduction_dir(key) / "meta.json"
        if not path.is_file():
            raise NotFoundError(f"reduction {key!r} not found; available: {', '.join(self.reductions()) or 'none'}")
        return json.loads(path.read_text())

    def reduced(self, key: str, dims: int) -> np.ndarray:
        """float32 [n_clips, dims] of reduction ``key`` (dims=2 display map is ``map_2d``)."""
        meta = self.reduction_meta(key)
        path = self.reduction_dir(key) / f"dims_{int(dims)}.npy"
        if not path.is_file():
            raise NotFoundError(f"reduction {key!r} has no {dims}-d coordinates; available dims: {meta.get('dims')}")
        return np.load(path)

    def display_map(self, key: str) -> np.ndarray:
        self.reduction_meta(key)
        return np.load(self.reduction_dir(key) / "map_2d.npy")

    def summary(self) -> dict[str, Any]:
        m = self.manifest()
        return {
            "name": self.name,
            "counts": m.get("counts", {}),
            "feature_sets": self.feature_sets(),
            "reductions": self.reductions(),
        }

    # query by example and the classifier (issue 11; preprocess/similar.py, preprocess/learn/) -----------
    def similar_dir(self, features: str) -> Path:
        """``similar/NAME/``: the similarity index of feature set NAME (index.faiss + meta.json)."""
        return self.root / "similar" / check_name(features, what="feature set")

    @property
    def learn_dir(self) -> Path:
        """``learn/``: the classifier (model.npz, model.json with history) and its scores.npy."""
        return self.root / "learn"
