"""Hand-crafted acoustic descriptors: the baseline every learned feature must beat.

Computed from the stored log-mel spectrograms (no audio decoding, thousands of clips per second):

- MFCC statistics: DCT-II of the dB mel spectrum, coefficients 0..n_mfcc-1, mean and std over time,
  plus the mean absolute frame-to-frame delta;
- spectral centroid, bandwidth (spread around the centroid), flatness and peak frequency per frame,
  mean and std over the clip's *active* frames (within ``active_db`` of the clip's loudest frame);
- the event: peak frequency of the clip's max-over-time spectrum, the low and high frequencies
  where that spectrum falls ``event_db`` below its peak, their bandwidth (all in kHz, and in octaves),
  and the fraction of active frames.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..collection import Collection
from ..progress import CancelCheck, Progress
from .base import FeatureExtractor, mel_frequencies_hz, spectrogram_db


def acoustic_descriptors(
    S_db: np.ndarray, *, freqs_hz: np.ndarray, n_mfcc: int = 20, active_db: float = 20.0, event_db: float = 20.0
) -> np.ndarray:
    """float32 [n, D] descriptors of dB mel spectrograms ``S_db`` [n, n_mels, n_frames] (row 0 = lowest band).

    ``freqs_hz`` [n_mels] are the band centres. D = 3·n_mfcc + 8 + 6.
    """
    from scipy.fft import dct

    S_db = np.asarray(S_db, dtype=np.float32)
    n, n_mels, _ = S_db.shape
    mfcc = dct(S_db, type=2, axis=1, norm="ortho")[:, :n_mfcc, :]  # [n, n_mfcc, T]
    mfcc_mean = mfcc.mean(axis=2)
    mfcc_std = mfcc.std(axis=2)
    mfcc_delta = np.abs(np.diff(mfcc, axis=2)).mean(axis=2) if mfcc.shape[2] > 1 else np.zeros_like(mfcc_mean)

    power = np.power(10.0, S_db / 10.0)  # [n, F, T]
    frame_db = 10.0 * np.log10(power.sum(axis=1) + 1e-12)  # [n, T]
    active = frame_db >= frame_db.max(axis=1, keepdims=True) - active_db  # [n, T]
    f_khz = (freqs_hz / 1000.0).astype(np.float32)[None, :, None]
    total = power.sum(axis=1, keepdims=True) + 1e-12
    centroid = (power * f_khz).sum(axis=1, keepdims=True) / total  # [n, 1, T]
    bandwidth = np.sqrt((power * (f_khz - centroid) ** 2).sum(axis=1) / total[:, 0])  # [n, T]
    flatness = np.exp(np.log(power + 1e-12).mean(axis=1)) / (power.mean(axis=1) + 1e-12)  # [n, T]
    peak = freqs_hz[np.argmax(power, axis=1)] / 1000.0  # [n, T]
    per_frame = [centroid[:, 0], bandwidth, flatness, peak]
    w = active.astype(np.float32)
    w_sum = w.sum(axis=1)
    frame_stats = []
    for v in per_frame:
        m = (v * w).sum(axis=1) / w_sum
        s = np.sqrt(((v - m[:, None]) ** 2 * w).sum(axis=1) / w_sum)
        frame_stats += [m, s]

    spectrum = S_db.max(axis=2)  # [n, F], dB
    peak_band = spectrum.argmax(axis=1)
    above = spectrum >= spectrum.max(axis=1, keepdims=True) - event_db
    bands = np.arange(n_mels)[None, :]
    low_band = np.where(above, bands, n_mels).min(axis=1)
    high_band = np.where(above, bands, -1).max(axis=1)
    f_peak, f_low, f_high = (freqs_hz[b] / 1000.0 for b in (peak_band, low_band, high_band))
    event = [f_peak, f_low, f_high, f_high - f_low, np.log2(f_high / np.maximum(f_low, 1e-3)), w_sum / S_db.shape[2]]
    out = np.concatenate([mfcc_mean, mfcc_std, mfcc_delta, np.stack(frame_stats, 1), np.stack(event, 1)], axis=1)
    return out.astype(np.float32)


class AcousticExtractor(FeatureExtractor):
    """MFCC statistics + spectral shape + event bandwidth, from the stored spectrograms."""

    name = "acoustic"
    version = "1"
    supports_cuda = False

    def __init__(
        self,
        *,
        device: str = "cpu",
        batch_size: int | None = None,
        n_mfcc: int = 20,
        active_db: float = 20.0,
        event_db: float = 20.0,
    ) -> None:
        super().__init__(device=device, batch_size=batch_size)
        self.n_mfcc = n_mfcc
        self.active_db = active_db
        self.event_db = event_db
        self.dim_ = 3 * n_mfcc + 14

    def params(self) -> dict[str, Any]:
        return {"n_mfcc": self.n_mfcc, "active_db": self.active_db, "event_db": self.event_db}

    def model_info(self) -> dict[str, Any]:
        return {"name": "hand-crafted descriptors"}

    def prepare(
        self,
        collection: Collection,
        *,
        out_dir: Path,
        fit: bool,
        progress: Progress,
        should_cancel: CancelCheck | None = None,
    ) -> None:
        config = collection.manifest()["config"]
        self.top_db_ = float(config.get("top_db", 80.0))
        self.freqs_hz_ = mel_frequencies_hz(config)

    def transform(
        self, collection: Collection, clip_ids: np.ndarray, *, should_cancel: CancelCheck | None = None
    ) -> dict[str, np.ndarray]:
        S = collection.spectrograms()[int(clip_ids[0]) : int(clip_ids[-1]) + 1]
        out = []
        batch = int(self.batch_size or 256)
        for i in range(0, len(S), batch):
            S_db = spectrogram_db(np.asarray(S[i : i + batch]), top_db=self.top_db_)
            out.append(
                acoustic_descriptors(
                    S_db, freqs_hz=self.freqs_hz_, n_mfcc=self.n_mfcc, active_db=self.active_db, event_db=self.event_db
                )
            )
        return {"features": np.concatenate(out)}
