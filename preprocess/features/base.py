"""The extractor contract and the clip readers every extractor shares.

An extractor follows the scikit-learn habit: ``__init__`` stores parameters (keyword-only),
:meth:`prepare` loads or trains its model (learned attributes end in ``_``), :meth:`transform`
maps clip ids to rows. :func:`preprocess.features.run_extractor` does the rest (resume, append,
atomic writes), so an extractor never touches the features file itself.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..collection import Collection
from ..progress import CancelCheck, Progress


class FeatureExtractor:
    """Base class: subclasses set ``name``, ``version`` and ``dim_`` (after :meth:`prepare`)."""

    name = "base"
    version = "1"
    supports_cuda = False
    #: ``transform`` may run on Dask workers (:mod:`.on_cluster`): ``prepare(fit=False)`` there needs only the
    #: collection's files, and rows do not depend on which chunk computes them.
    runs_on_workers = False

    def __init__(self, *, device: str = "cpu", batch_size: int | None = None) -> None:
        self.device = device
        self.batch_size = batch_size
        self.dim_: int = 0

    # what made the features --------------------------------------------------------------------
    def params(self) -> dict[str, Any]:
        """Parameters that change the numbers (device and batch size do not)."""
        return {}

    def model_info(self) -> dict[str, Any]:
        return {}

    def signature(self) -> str:
        """A digest of name, version and params: stored rows are reused only under the same one."""
        blob = json.dumps({"name": self.name, "version": self.version, "params": self.params()}, sort_keys=True)
        return hashlib.sha1(blob.encode()).hexdigest()[:16]

    # the work ---------------------------------------------------------------------------------------
    def check_available(self) -> None:
        """Raise MissingDependencyError (naming what to install) before anything is written."""

    def prepare(
        self,
        collection: Collection,
        *,
        out_dir: Path,
        fit: bool,
        progress: Progress,
        should_cancel: CancelCheck | None = None,
    ) -> None:
        """Load (or, when ``fit`` and nothing is stored, train) the model; set ``dim_``."""

    def transform(
        self, collection: Collection, clip_ids: np.ndarray, *, should_cancel: CancelCheck | None = None
    ) -> dict[str, np.ndarray]:
        """``{"features": float32 [len(clip_ids), dim_], ...extras}`` for consecutive ``clip_ids``."""
        raise NotImplementedError

    def write_extras(
        self, collection: Collection, *, out_dir: Path, start_row: int, arrays: dict[str, np.ndarray]
    ) -> None:
        """Write side outputs (e.g. species.parquet) for rows ``start_row..``; keep earlier rows."""


# ---------------------------------------------------------------------------------------------
# shared readers


def spectrogram_db(spectrograms: np.ndarray, *, top_db: float) -> np.ndarray:
    """uint8 stored spectrograms -> float32 dB (0 dB = the clip's maximum, -top_db = floor)."""
    return spectrograms.astype(np.float32) * (top_db / 255.0) - top_db


def mel_frequencies_hz(config: dict[str, Any]) -> np.ndarray:
    """Centre frequency in Hz of each stored mel band (row 0 = lowest)."""
    import librosa

    sr = float(config.get("sample_rate", 32000))
    fmax = config.get("fmax") or min(15000.0, sr / 2)
    return librosa.mel_frequencies(n_mels=int(config["n_mels"]) + 2, fmin=float(config["fmin"]), fmax=float(fmax))[
        1:-1
    ].astype(np.float32)


class ClipAudioReader:
    """Reads clip audio from the collection's FLAC audio sprites (one sprite kept open)."""

    def __init__(self, collection: Collection) -> None:
        self.collection = collection
        self.clips = collection.clips()
        self.sample_rate = int(collection.manifest()["config"].get("audio_sample_rate") or 0)
        self._open: tuple[int, Any] | None = None

    def read(self, clip_id: int) -> tuple[np.ndarray, int]:
        """float32 mono samples of clip ``clip_id`` and their sample rate."""
        import soundfile as sf

        row = self.clips.iloc[int(clip_id)]
        sprite = int(row["audio_sprite"])
        if self._open is None or self._open[0] != sprite:
            self.close()
            self._open = (sprite, sf.SoundFile(str(self.collection.audio_sprite_path(sprite))))
        f = self._open[1]
        f.seek(int(row["audio_offset"]))
        y = f.read(int(row["audio_length"]), dtype="float32", always_2d=True)
        return y.mean(axis=1), int(f.samplerate)

    def close(self) -> None:
        if self._open is not None:
            self._open[1].close()
            self._open = None
