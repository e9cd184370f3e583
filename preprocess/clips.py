"""Where clips are cut: fixed windows, or events found above a recording's noise floor.

Both return a :class:`ClipTimes` (start_s, end_s, fmin_hz, fmax_hz; one entry per clip) for one mono
recording. Every clip is ``clip_s`` long; a recording shorter than a clip gives one clip starting at 0
(its audio padded with silence later, never dropped). :func:`cut` extracts the samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import BuildConfig


@dataclass(frozen=True)
class ClipTimes:
    """Clip bounds in seconds of the source recording and each clip's frequency band in Hz."""

    start_s: np.ndarray  # float64 [n]
    end_s: np.ndarray  # float64 [n]
    fmin_hz: np.ndarray  # float32 [n]
    fmax_hz: np.ndarray  # float32 [n]

    def __len__(self) -> int:
        return len(self.start_s)


def fixed_windows(
    duration_s: float, *, clip_s: float, hop_s: float, max_per_recording: int = 0, min_tail_s: float | None = None
) -> np.ndarray:
    """Start times (s) of fixed windows covering a recording of ``duration_s``.

    Windows start every ``hop_s``; a tail of at least ``min_tail_s`` (default half a clip) left after
    the last full window gets one more window ending at the recording's end, so no audible part is
    lost and no clip is mostly padding. A recording shorter than ``clip_s`` gets one window at 0.
    ``max_per_recording > 0`` keeps that many windows, evenly spaced over the recording.
    """
    if min_tail_s is None:
        min_tail_s = clip_s / 2
    eps = 1e-9
    if duration_s <= clip_s + eps:
        starts = np.zeros(1)
    else:
        n = int(np.floor((duration_s - clip_s) / hop_s + eps)) + 1
        starts = np.arange(n, dtype=np.float64) * hop_s
        covered = starts[-1] + clip_s
        if duration_s - covered >= min_tail_s - eps and duration_s - clip_s > starts[-1] + eps:
            starts = np.append(starts, duration_s - clip_s)
    if max_per_recording and len(starts) > max_per_recording:
        idx = np.unique(np.round(np.linspace(0, len(starts) - 1, max_per_recording)).astype(int))
        starts = starts[idx]
    return np.round(starts, 6)


def fixed_clips(duration_s: float, cfg: BuildConfig) -> ClipTimes:
    starts = fixed_windows(duration_s, clip_s=cfg.clip_s, hop_s=cfg.hop_s, max_per_recording=cfg.max_per_recording)
    n = len(starts)
    return ClipTimes(
        start_s=starts,
        end_s=starts + cfg.clip_s,
        fmin_hz=np.full(n, cfg.fmin, np.float32),
        fmax_hz=np.full(n, cfg.fmax, np.float32),
    )


#: Lowest adaptive threshold in dB: stationary noise alone reaches about -3 dB on this scale.
MIN_EVENT_THRESHOLD_DB = 3.0
#: Clips kept from a recording where nothing rises above the threshold: its strongest windows.
FALLBACK_WINDOWS = 3


def _frame_snr(y: np.ndarray, *, sr: int, cfg: BuildConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Band-limited frame SNR: ``(snr_db [n_frames], excess [n_bins, n_frames], bin_hz [n_bins], frame_s)``."""
    import torch

    n_fft, hop = cfg.n_fft, cfg.hop_length
    if len(y) < n_fft:
        y = np.pad(y, (0, n_fft - len(y)))
    window = torch.hann_window(n_fft)
    spec = torch.stft(
        torch.from_numpy(np.ascontiguousarray(y)), n_fft, hop, window=window, center=True, return_complex=True
    )
    power = (spec.real**2 + spec.imag**2).numpy().astype(np.float64)  # [freq, time]
    freqs = np.fft.rfftfreq(n_fft, 1 / sr)
    band = (freqs >= cfg.fmin) & (freqs <= cfg.fmax)
    p = power[band]
    f = freqs[band]
    if p.size == 0:
        return np.zeros(power.shape[1]), p, f, hop / sr
    noise = np.median(p, axis=1, keepdims=True) + 1e-12
    excess = np.maximum(p - noise, 0.0)
    # frame SNR: energy above the floor relative to the floor's total energy in the band
    snr_db = 10 * np.log10(excess.sum(axis=0) / noise.sum() + 1e-12)
    # smooth over ~20 ms so a call's amplitude modulation does not split it
    k = max(1, int(round(0.02 * sr / hop)))
    if k > 1:
        snr_db = np.convolve(snr_db, np.ones(k) / k, mode="same")
    return snr_db, excess, f, hop / sr


def adaptive_threshold_db(snr_db: np.ndarray, *, threshold_db: float) -> float:
    """The recording's threshold in dB: ``threshold_db``, lowered towards the recording's own noise
    statistics (median + 4 robust standard deviations of the frame SNR, at least
    :data:`MIN_EVENT_THRESHOLD_DB`) where its noise is steady, so a call in a noisy but steady
    recording still counts. Never above ``threshold_db``."""
    if snr_db.size == 0:
        return float(threshold_db)
    med = float(np.median(snr_db))
    mad = float(np.median(np.abs(snr_db - med))) * 1.4826
    return float(min(threshold_db, max(MIN_EVENT_THRESHOLD_DB, med + 4.0 * mad)))


def detect_events(y: np.ndarray, *, sr: int, cfg: BuildConfig) -> list[tuple[float, float, float, float, float]]:
    """Find calls: band-limited (fmin..fmax) energy above the recording's noise floor.

    As in bambird / scikit-maad: a power spectrogram, the noise floor as each frequency bin's median
    over time, then frames whose summed above-noise energy exceeds the recording's threshold
    (:func:`adaptive_threshold_db`: ``event_threshold_db`` or lower where the noise is steady). Runs
    closer than ``event_gap_s`` merge; runs shorter than ``event_min_s`` are dropped.

    Returns ``[(t0_s, t1_s, fmin_hz, fmax_hz, snr_db), …]`` sorted by time.
    """
    snr_db, excess, f, frame_s = _frame_snr(y, sr=sr, cfg=cfg)
    if excess.size == 0:
        return []
    active = snr_db > adaptive_threshold_db(snr_db, threshold_db=cfg.event_threshold_db)
    runs = _runs(active)
    gap = int(round(cfg.event_gap_s / frame_s))
    merged: list[list[int]] = []
    for a, b in runs:
        if merged and a - merged[-1][1] <= gap:
            merged[-1][1] = b
        else:
            merged.append([a, b])
    events = []
    for a, b in merged:
        t0, t1 = a * frame_s, b * frame_s
        if t1 - t0 < cfg.event_min_s:
            continue
        profile = excess[:, a:b].mean(axis=1)
        f_lo, f_hi = _band_around_peak(profile, f)
        if f_lo is None:
            continue
        events.append((t0, t1, f_lo, f_hi, float(snr_db[a:b].max())))
    return events


def _band_around_peak(profile: np.ndarray, f: np.ndarray) -> tuple[float | None, float]:
    """Contiguous bins around the profile's peak within 20 dB of it, as ``(f_lo_hz, f_hi_hz)``."""
    peak = float(profile.max()) if profile.size else 0.0
    if peak <= 0:
        return None, 0.0
    i = int(profile.argmax())
    on = profile >= peak * 0.01
    lo, hi = i, i
    while lo > 0 and on[lo - 1]:
        lo -= 1
    while hi < len(on) - 1 and on[hi + 1]:
        hi += 1
    return float(f[lo]), float(f[hi])


def strongest_windows(y: np.ndarray, *, sr: int, cfg: BuildConfig, n: int = FALLBACK_WINDOWS) -> ClipTimes:
    """The ``n`` fixed windows (``clip_s`` long, ``hop_s`` apart) with the most band energy above the
    noise floor, in time order, each with the band around its energy peak: what a recording with no
    event above the threshold gives (as scatter-sounds takes the window at the maximum)."""
    duration_s = len(y) / sr
    starts = fixed_windows(duration_s, clip_s=cfg.clip_s, hop_s=cfg.hop_s)
    snr_db, excess, f, frame_s = _frame_snr(y, sr=sr, cfg=cfg)
    frames = [(int(s / frame_s), max(int(s / frame_s) + 1, int((s + cfg.clip_s) / frame_s))) for s in starts]
    energy = np.array([excess[:, a:b].sum() if excess.size else 0.0 for a, b in frames])
    keep = np.sort(np.argsort(-energy, kind="stable")[: max(1, n)])
    f0, f1 = [], []
    for i in keep:
        a, b = frames[i]
        lo, hi = _band_around_peak(excess[:, a:b].mean(axis=1), f) if excess.size else (None, 0.0)
        f0.append(cfg.fmin if lo is None else lo)
        f1.append(cfg.fmax if lo is None or hi <= lo else hi)
    st = starts[keep]
    return ClipTimes(st, st + cfg.clip_s, np.array(f0, np.float32), np.array(f1, np.float32))


def event_clips(y: np.ndarray, *, sr: int, cfg: BuildConfig) -> ClipTimes:
    """Clips of ``clip_s`` centred on detected events (long events get several clips ``hop_s`` apart).

    A recording is never left without clips: with no event it gets its :func:`strongest_windows`."""
    duration_s = len(y) / sr
    events = detect_events(y, sr=sr, cfg=cfg)
    if cfg.max_per_recording and len(events) > cfg.max_per_recording:
        loudest = sorted(range(len(events)), key=lambda i: -events[i][4])[: cfg.max_per_recording]
        events = [events[i] for i in sorted(loudest)]
    rows = []
    latest = max(0.0, duration_s - cfg.clip_s)
    for t0, t1, f0, f1, _snr in events:
        if t1 - t0 <= cfg.clip_s:
            centres = [(t0 + t1) / 2]
        else:
            n = int(np.ceil((t1 - t0 - cfg.clip_s) / cfg.hop_s)) + 1
            centres = [t0 + cfg.clip_s / 2 + i * (t1 - t0 - cfg.clip_s) / max(1, n - 1) for i in range(n)]
        for c in centres:
            start = min(max(0.0, c - cfg.clip_s / 2), latest)
            rows.append((round(start, 6), f0, f1))
    if not rows:
        n = min(FALLBACK_WINDOWS, cfg.max_per_recording) if cfg.max_per_recording else FALLBACK_WINDOWS
        return strongest_windows(y, sr=sr, cfg=cfg, n=n)
    starts = np.array([r[0] for r in rows])
    return ClipTimes(
        start_s=starts,
        end_s=starts + cfg.clip_s,
        fmin_hz=np.array([r[1] for r in rows], np.float32),
        fmax_hz=np.array([r[2] for r in rows], np.float32),
    )


def find_clips(y: np.ndarray, *, sr: int, cfg: BuildConfig) -> ClipTimes:
    """Clip times for one mono recording at ``sr`` Hz, by ``cfg.mode``."""
    if cfg.mode == "events":
        return event_clips(y, sr=sr, cfg=cfg)
    return fixed_clips(len(y) / sr, cfg)


def cut(y: np.ndarray, *, sr: int, start_s: np.ndarray, clip_s: float) -> np.ndarray:
    """Samples of each clip, zero-padded past the recording's end: float32 [n_clips, clip_s * sr]."""
    n = int(round(clip_s * sr))
    out = np.zeros((len(start_s), n), np.float32)
    for i, s in enumerate(start_s):
        a = int(round(s * sr))
        seg = y[a : a + n]
        out[i, : len(seg)] = seg
    return out


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Half-open [a, b) index runs where ``mask`` is True."""
    m = np.concatenate([[False], mask, [False]]).astype(np.int8)
    d = np.diff(m)
    return list(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist(), strict=True))
