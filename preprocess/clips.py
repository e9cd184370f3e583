"""Where clips are cut: fixed windows, or events found above a recording's noise floor.

Both return a :class:`ClipTimes` (start_s, end_s, fmin_hz, fmax_hz; one entry per clip) for one mono
recording. Every clip is ``clip_s`` long; a recording shorter than a clip gives one clip starting at 0
(its audio padded with silence later, never dropped). :func:`cut` extracts the samples.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
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
    runs = event_runs(snr_db, frame_s=frame_s, cfg=cfg)
    return events_of_runs(runs, snr_db, [excess[:, a:b].mean(axis=1) for a, b in runs], f, frame_s)


def event_runs(snr_db: np.ndarray, *, frame_s: float, cfg: BuildConfig) -> list[tuple[int, int]]:
    """Frame runs ``[a, b)`` above the recording's threshold, merged across short gaps, long enough to keep."""
    active = snr_db > adaptive_threshold_db(snr_db, threshold_db=cfg.event_threshold_db)
    gap = int(round(cfg.event_gap_s / frame_s))
    merged: list[list[int]] = []
    for a, b in _runs(active):
        if merged and a - merged[-1][1] <= gap:
            merged[-1][1] = b
        else:
            merged.append([a, b])
    return [(a, b) for a, b in merged if b * frame_s - a * frame_s >= cfg.event_min_s]


def events_of_runs(
    runs: list[tuple[int, int]], snr_db: np.ndarray, profiles: list[np.ndarray], f: np.ndarray, frame_s: float
) -> list[tuple[float, float, float, float, float]]:
    """Events ``(t0_s, t1_s, fmin_hz, fmax_hz, snr_db)`` from runs and each run's mean above-noise spectrum."""
    events = []
    for (a, b), profile in zip(runs, profiles, strict=True):
        f_lo, f_hi = _band_around_peak(profile, f)
        if f_lo is None:
            continue
        events.append((a * frame_s, b * frame_s, f_lo, f_hi, float(snr_db[a:b].max())))
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
    _snr_db, excess, f, frame_s = _frame_snr(y, sr=sr, cfg=cfg)
    per_frame = excess.sum(axis=0) if excess.size else np.zeros(0)
    keep, frames = strongest_frames(per_frame, duration_s=len(y) / sr, frame_s=frame_s, cfg=cfg, n=n)
    profiles = [excess[:, a:b].mean(axis=1) if excess.size else np.zeros(0) for a, b in frames]
    return windows_with_bands(keep, profiles, f, duration_s=len(y) / sr, cfg=cfg)


def strongest_frames(
    per_frame: np.ndarray, *, duration_s: float, frame_s: float, cfg: BuildConfig, n: int
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Which fixed windows :func:`strongest_windows` keeps (indices, in time order) and their frame ranges,
    from each frame's summed above-noise energy ``per_frame``."""
    starts = fixed_windows(duration_s, clip_s=cfg.clip_s, hop_s=cfg.hop_s)
    frames = [(int(s / frame_s), max(int(s / frame_s) + 1, int((s + cfg.clip_s) / frame_s))) for s in starts]
    energy = np.array([per_frame[a:b].sum() for a, b in frames])
    keep = np.sort(np.argsort(-energy, kind="stable")[: max(1, n)])
    return keep, [frames[i] for i in keep]


def windows_with_bands(
    keep: np.ndarray, profiles: list[np.ndarray], f: np.ndarray, *, duration_s: float, cfg: BuildConfig
) -> ClipTimes:
    """The kept fixed windows as clips, each with the band around its mean above-noise spectrum's peak."""
    starts = fixed_windows(duration_s, clip_s=cfg.clip_s, hop_s=cfg.hop_s)
    f0, f1 = [], []
    for profile in profiles:
        lo, hi = _band_around_peak(profile, f) if profile.size else (None, 0.0)
        f0.append(cfg.fmin if lo is None else lo)
        f1.append(cfg.fmax if lo is None or hi <= lo else hi)
    st = starts[keep]
    return ClipTimes(st, st + cfg.clip_s, np.array(f0, np.float32), np.array(f1, np.float32))


def event_clips(y: np.ndarray, *, sr: int, cfg: BuildConfig) -> ClipTimes:
    """Clips of ``clip_s`` centred on detected events (long events get several clips ``hop_s`` apart).

    A recording is never left without clips: with no event it gets its :func:`strongest_windows`."""
    return clips_of_events(
        detect_events(y, sr=sr, cfg=cfg), duration_s=len(y) / sr, cfg=cfg,
        fallback=lambda n: strongest_windows(y, sr=sr, cfg=cfg, n=n),
    )  # fmt: skip


def clips_of_events(
    events: list[tuple[float, float, float, float, float]],
    *,
    duration_s: float,
    cfg: BuildConfig,
    fallback: Callable[[int], ClipTimes],
) -> ClipTimes:
    """Clip times for ``events`` (see :func:`event_clips`); ``fallback(n)`` gives the clips when there are none."""
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
        return fallback(n)
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


#: Clips handed to ``emit`` at a time by :func:`cut_stream`.
STREAM_BATCH = 64


def cut_stream(
    blocks: Iterable[np.ndarray],
    *,
    sr: int,
    cfg: BuildConfig,
    emit: Callable[[np.ndarray, np.ndarray, np.ndarray], None],
    starts_s: np.ndarray | None = None,
) -> ClipTimes:
    """Cut fixed-length clips from a recording that arrives as mono float32 blocks at ``sr`` Hz.

    ``starts_s`` (sorted) names the clips; ``None`` means fixed windows (``cfg.clip_s``, ``cfg.hop_s``),
    decided as the audio arrives and equal to :func:`fixed_clips` of the whole recording. Only about
    one block and one clip of audio is held at a time. ``emit(start_s [k], clips float32 [k, clip_samples],
    lengths int64 [k])`` receives batches in time order; each clip is zero-padded past the end, as
    :func:`cut` does, and ``lengths`` counts its real samples (at least 1). Returns the clips' times.
    """
    n = cfg.clip_samples
    eps = 1e-9
    known = starts_s is not None
    want = np.asarray(starts_s if known else np.zeros(0), dtype=np.float64)
    buf, buf0, total, k = np.zeros(0, np.float32), 0, 0, 0
    done: list[float] = []
    batch: list[tuple[float, np.ndarray, int]] = []

    def flush() -> None:
        if batch:
            emit(
                np.array([b[0] for b in batch]),
                np.stack([b[1] for b in batch]),
                np.array([b[2] for b in batch], np.int64),
            )
            batch.clear()

    def take(start_s: float) -> None:
        a = int(round(start_s * sr))
        seg = buf[max(0, a - buf0) : max(0, a - buf0 + n)]
        clip = np.zeros(n, np.float32)
        clip[: len(seg)] = seg
        batch.append((start_s, clip, max(1, min(n, total - a))))
        done.append(start_s)
        if len(batch) >= STREAM_BATCH:
            flush()

    def regular(i: int) -> float:
        return float(np.round(np.float64(i) * cfg.hop_s, 6))

    for block in blocks:
        buf = np.concatenate([buf, np.asarray(block, np.float32)])
        total += len(block)
        if known:
            while k < len(want) and int(round(want[k] * sr)) + n <= total:
                take(float(want[k]))
                k += 1
            next_a = int(round(want[k] * sr)) if k < len(want) else total
        else:
            dur = total / sr
            n_ok = int(np.floor((dur - cfg.clip_s) / cfg.hop_s + eps)) + 1 if dur > cfg.clip_s + eps else 0
            while k < n_ok and int(round(regular(k) * sr)) + n <= total:
                take(regular(k))
                k += 1
            # the tail window (ending at the recording's end) may start up to one clip before the end
            next_a = min(int(round(regular(k) * sr)), total - n - 2)
        keep_from = max(buf0, min(next_a, total))  # never past what has arrived
        if keep_from > buf0:
            buf = buf[keep_from - buf0 :].copy()
            buf0 = keep_from
    if known:
        rest = want[k:]
    else:
        final = fixed_windows(total / sr, clip_s=cfg.clip_s, hop_s=cfg.hop_s)
        if not np.array_equal(final[:k], np.array(done)):
            raise AssertionError("streamed fixed windows disagree with the whole recording's")  # a bug, not bad input
        rest = final[k:]
    for s in rest:
        take(float(s))
    flush()
    st = np.array(done, np.float64)
    m = len(st)
    return ClipTimes(st, st + cfg.clip_s, np.full(m, cfg.fmin, np.float32), np.full(m, cfg.fmax, np.float32))
