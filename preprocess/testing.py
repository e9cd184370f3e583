"""The one test-data builder: writes a valid collection through the store (tests, fixtures, benches).

Real builds come from :func:`preprocess.pipeline.build`; this writes the same files from given (or
synthetic) tables, coordinates and features, without audio processing, so a test can say exactly
what a collection holds::

    w = CollectionWriter(tmp_path / "c")
    w.recordings([{"path": "a.wav", "duration_s": 6.0}])
    w.clips(clip_table(n=2, clip_s=3.0))
    w.features("birdnet", X)
    w.reduction("birdnet", coords={8: X8}, display=X8[:, :2])
    coll = w.manifest(config={"clip_s": 3.0})   # written last, like a build

Every method writes atomically through the :class:`~preprocess.collection.Collection` accessors and
returns what it wrote, so the format has one owner here too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .collection import Collection, save_npy_atomic, write_json_atomic, write_table_atomic
from .config import BuildConfig
from .schema import CLIP_COLUMNS, CLIP_DTYPES, RECORDING_COLUMNS, SCHEMA_VERSION, recording_dtypes


def clip_table(
    n: int,
    *,
    recording_id: Any = 0,
    clip_s: float = 3.0,
    start_s: Any = None,
    fmin_hz: float = 0.0,
    fmax_hz: float = 11025.0,
    cells_per_sheet: int | None = None,
    audio_length: int = 0,
    **columns: Any,
) -> Any:
    """A clip table of ``n`` rows with every :data:`~preprocess.schema.CLIP_COLUMNS` column, schema dtypes.

    ``recording_id`` and ``start_s`` are scalars or per-clip arrays (default: consecutive ``clip_s``
    windows per recording); ``cells_per_sheet=None`` puts every clip on sheet 0. Extra ``columns``
    override or add columns.
    """
    import pandas as pd

    rec = np.broadcast_to(np.asarray(recording_id, np.int64), (n,)).copy()
    if start_s is None:
        start = np.zeros(n, np.float64)
        for r in np.unique(rec):
            idx = np.flatnonzero(rec == r)
            start[idx] = np.arange(len(idx)) * clip_s
    else:
        start = np.broadcast_to(np.asarray(start_s, np.float64), (n,)).copy()
    ids = np.arange(n, dtype=np.int64)
    cells = cells_per_sheet or max(n, 1)
    frame = pd.DataFrame(
        {
            "clip_id": ids,
            "recording_id": rec,
            "start_s": start,
            "end_s": start + clip_s,
            "fmin_hz": np.float32(fmin_hz),
            "fmax_hz": np.float32(fmax_hz),
            "sheet": ids // cells,
            "cell": ids % cells,
            "audio_sprite": 0,
            "audio_offset": ids * audio_length,
            "audio_length": audio_length,
        }
    )
    for k, v in columns.items():
        frame[k] = v
    return frame


class CollectionWriter:
    """Writes one collection folder through the store; :meth:`manifest` last, as a build does."""

    def __init__(self, root: Path | str) -> None:
        self.coll = Collection(Path(root))
        self.coll.root.mkdir(parents=True, exist_ok=True)
        self._counts: dict[str, int] = {}

    # tables -------------------------------------------------------------------------------------
    def recordings(self, rows: Any, *, complete: bool = True) -> Any:
        """recordings.parquet from a DataFrame or list of dicts; ``complete`` adds missing schema columns
        (ids in row order, file name from the path, empty strings, zeros) and casts to the schema dtypes."""
        import pandas as pd

        frame = pd.DataFrame(rows).reset_index(drop=True)
        if complete:
            n = len(frame)
            defaults: dict[str, Any] = {
                "recording_id": np.arange(n, dtype=np.int64),
                "path": [f"rec_{i}.wav" for i in range(n)],
                "size_bytes": 0,
                "duration_s": 0.0,
                "orig_sample_rate": 0,
                "channels": 1,
                "n_clips": 0,
                "lat": np.nan,
                "lon": np.nan,
            }
            for c in RECORDING_COLUMNS:
                if c in frame.columns:
                    continue
                if c == "file_name":
                    frame[c] = [Path(str(p)).name for p in frame["path"]]
                else:
                    frame[c] = defaults.get(c, "")
            extra = [c for c in frame.columns if c not in RECORDING_COLUMNS]
            frame = recording_dtypes(frame[[*RECORDING_COLUMNS, *extra]])
        write_table_atomic(self.coll.recordings_path, frame)
        self._counts["recordings"] = len(frame)
        return frame

    def clips(self, frame: Any, *, complete: bool = True) -> Any:
        """The clip table (one part; row i must have clip_id i), cast to the schema dtypes; see :func:`clip_table`.

        ``complete`` adds missing layout columns: every clip on sheet 0 at cell clip_id, audio sprite 0
        at offset 0 with length 0; the times and ids must be given.
        """
        frame = frame.reset_index(drop=True).copy()
        if complete:
            layout = {
                "fmin_hz": 0.0,
                "fmax_hz": 0.0,
                "sheet": 0,
                "audio_sprite": 0,
                "audio_offset": 0,
                "audio_length": 0,
            }
            for c, v in layout.items():
                if c not in frame.columns:
                    frame[c] = v
            if "cell" not in frame.columns:
                frame["cell"] = frame["clip_id"]
            frame = frame[[*CLIP_COLUMNS, *(c for c in frame.columns if c not in CLIP_COLUMNS)]]
        missing = [c for c in CLIP_COLUMNS if c not in frame.columns]
        if missing:
            raise ValueError(f"clip table lacks {missing}; build it with clip_table()")
        frame = frame.astype({k: v for k, v in CLIP_DTYPES.items() if k in frame.columns})
        if not np.array_equal(frame["clip_id"].to_numpy(), np.arange(len(frame))):
            raise ValueError("clip_id must equal the row index")
        self.coll.append_clips(frame, n_keep=0)
        self._counts["clips"] = len(frame)
        self._counts["sheets"] = int(frame["sheet"].max()) + 1 if len(frame) else 0
        self._counts["audio_sprites"] = int(frame["audio_sprite"].max()) + 1 if len(frame) else 0
        return frame

    def skipped(self, rows: list[tuple[str, str]]) -> None:
        import pandas as pd

        write_table_atomic(self.coll.skipped_path, pd.DataFrame(rows, columns=["path", "reason"]))
        self._counts["skipped"] = len(rows)

    # arrays and media -----------------------------------------------------------------------------
    def spectrograms(self, specs: np.ndarray) -> np.ndarray:
        """uint8 [n_clips, n_mels, n_frames]."""
        specs = np.ascontiguousarray(specs, np.uint8)
        save_npy_atomic(self.coll.spectrograms_path, specs)
        return specs

    def sheet(self, sheet: int, image: np.ndarray, *, ext: str = "jpg", quality: int = 75) -> Path:
        """One sprite sheet from uint8 [h, w] or [h, w, 3] pixels."""
        from PIL import Image

        from .atomic import atomic_path

        path = self.coll.sheet_path(sheet, ext)
        with atomic_path(path) as tmp:
            fmt = "JPEG" if ext in ("jpg", "jpeg") else ext.upper()
            Image.fromarray(np.asarray(image, np.uint8)).save(tmp, format=fmt, quality=quality)
        return path

    def audio_sprite(self, sprite: int, samples: np.ndarray, *, sr: int) -> Path:
        """One audio sprite (16-bit FLAC) from float samples in [-1, 1]."""
        import soundfile as sf

        from .atomic import atomic_path

        path = self.coll.audio_sprite_path(sprite)
        with atomic_path(path) as tmp:
            sf.write(tmp, np.asarray(samples, np.float32), sr, format="FLAC", subtype="PCM_16")
        return path

    def features(self, name: str, X: np.ndarray, **meta: Any) -> np.ndarray:
        """features/NAME: float32 [n_clips, D] and its meta (extractor, dim, n_clips by default, then ``meta``)."""
        X = np.ascontiguousarray(X, np.float32)
        save_npy_atomic(self.coll.features_path(name), X)
        write_json_atomic(
            self.coll.features_meta_path(name),
            {"extractor": name, "dim": int(X.shape[1]), "params": {}, "n_clips": len(X), **meta},
        )
        return X

    def species(self, name: str, frame: Any) -> None:
        """The species table of a classifier feature set (clip_id, species_k, score_k, ...)."""
        write_table_atomic(self.coll.species_path(name), frame)

    def reduction(self, key: str, *, coords: dict[int, np.ndarray], display: np.ndarray, **meta: Any) -> None:
        """reductions/KEY: float32 [n, D] coordinates per D in ``coords``, the display map [n, 2], then the
        meta (last; ``dims`` defaults to the keys of ``coords``)."""
        for d, arr in coords.items():
            save_npy_atomic(self.coll.reduced_path(key, d), np.ascontiguousarray(arr, np.float32))
        save_npy_atomic(self.coll.map_path(key), np.ascontiguousarray(display, np.float32))
        body = {"features": key.split("+"), "dims": sorted(int(d) for d in coords), "params": {}, "time_s": 0.0}
        write_json_atomic(self.coll.reduction_meta_path(key), {**body, **meta})

    # the manifest, last ---------------------------------------------------------------------------
    def manifest(
        self, *, config: dict[str, Any] | None = None, counts: dict[str, Any] | None = None, **extra: Any
    ) -> Collection:
        """Write the manifest (config: the given dict as is, else the defaults; counts from what was
        written, updated by ``counts``); returns the opened collection."""
        from .schema import manifest_header

        body = {
            **manifest_header(None),
            "config": BuildConfig().to_dict() if config is None else dict(config),
            "counts": {**self._counts, **(counts or {})},
            "stages": {},
            **extra,
        }
        body["schema_version"] = extra.get("schema_version", SCHEMA_VERSION)
        write_json_atomic(self.coll.manifest_path, body)
        return Collection.open(self.coll.root)


def feature_collection(root: Path | str, features: dict[str, np.ndarray], *, n_clips: int | None = None) -> Collection:
    """A collection of only feature sets and a manifest (what reductions and clustering need)."""
    w = CollectionWriter(root)
    for name, X in features.items():
        w.features(name, X)
    n = n_clips if n_clips is not None else len(next(iter(features.values()))) if features else 0
    return w.manifest(config={}, counts={"clips": n})


def write_legacy_clip_table(collection: Collection, frame: Any) -> None:
    """Replace the clip parts by the single ``clips.parquet`` of collections built before clip parts (the store
    still reads it and moves it into part 0 at the next build): for tests of that migration."""
    import shutil

    from .schema import CLIPS, CLIPS_DIR

    shutil.rmtree(collection.root / CLIPS_DIR, ignore_errors=True)
    write_table_atomic(collection.root / CLIPS, frame)


def write_stray_clip_part(collection: Collection, frame: Any) -> None:
    """A clip part the manifest never counted, as a build killed after writing it leaves (readers must skip it)."""
    write_table_atomic(collection.clip_part_path(int(frame["clip_id"].iloc[0])), frame)
