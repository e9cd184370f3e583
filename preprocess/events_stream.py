"""Event detection over a recording streamed in blocks: the same clips as :func:`clips.event_clips` on the whole.

The noise floor is each frequency bin's median over the WHOLE recording, so detection cannot be done
block by block in one pass. Instead the recording is streamed several times (``blocks()`` is called
once per pass; each call decodes it again), holding one block of frames at a time:

1. a 65,536-cell histogram per band bin of the power's float32 bit pattern (its top 16 bits; power is
   non-negative, so bit order is value order) finds the cell holding each bin's median rank(s);
2. the values in those cells are collected and the exact median picked (``np.median``'s value);
3. per-frame SNR (kept whole: 8 bytes per frame) and per-frame above-noise energy;
4. the mean above-noise spectrum of each event (or fallback window), from its frames only.

STFT frames are cut from the reflect-padded signal exactly as ``torch.stft(center=True)`` cuts them from
the whole recording, so every frame, median, SNR and profile equals the whole-file computation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np

from .clips import (
    ClipTimes,
    clips_of_events,
    event_runs,
    events_of_runs,
    strongest_frames,
    windows_with_bands,
)
from .config import BuildConfig

Blocks = Callable[[], Iterable[np.ndarray]]

#: STFT frames computed at a time.
FRAMES_PER_BLOCK = 4096


def _band(cfg: BuildConfig, sr: int) -> tuple[np.ndarray, np.ndarray]:
    freqs = np.fft.rfftfreq(cfg.n_fft, 1 / sr)
    band = (freqs >= cfg.fmin) & (freqs <= cfg.fmax)
    return band, freqs[band]


def band_power(blocks: Iterable[np.ndarray], *, sr: int, cfg: BuildConfig) -> Iterator[tuple[int, np.ndarray]]:
    """``(first frame, float64 [n_band_bins, k])`` band power, frame by frame as the whole recording's centred
    STFT gives it (reflect padding at both ends). The recording must be at least ``n_fft`` samples long."""
    import torch

    n_fft, hop, h = cfg.n_fft, cfg.hop_length, cfg.n_fft // 2
    band, _f = _band(cfg, sr)
    window = torch.hann_window(n_fft)
    buf = np.zeros(0, np.float32)  # padded signal from padded index buf0
    buf0, frame, started, tail = 0, 0, False, np.zeros(0, np.float32)

    def frames(upto: int) -> Iterator[tuple[int, np.ndarray]]:
        nonlocal frame
        while frame + 1 <= upto:
            k = min(FRAMES_PER_BLOCK, upto - frame)
            a = frame * hop - buf0
            seg = torch.from_numpy(np.ascontiguousarray(buf[a : a + (k - 1) * hop + n_fft]))
            spec = torch.stft(seg, n_fft, hop, window=window, center=False, return_complex=True)
            power = (spec.real**2 + spec.imag**2).numpy().astype(np.float64)
            yield frame, power[band]
            frame += k

    for block in blocks:
        block = np.asarray(block, np.float32)
        if not started:
            if len(block) <= h:
                raise ValueError("the first block must be longer than n_fft // 2")
            block = np.concatenate([block[1 : h + 1][::-1], block])
            started = True
        buf = np.concatenate([buf, block])
        tail = np.concatenate([tail, block])[-(h + 1) :]
        n_avail = buf0 + len(buf)  # padded samples known so far
        yield from frames(max(0, (n_avail - n_fft) // hop + 1))
        keep = frame * hop
        if keep > buf0:
            buf = buf[keep - buf0 :]
            buf0 = keep
    buf = np.concatenate([buf, tail[-(h + 1) : -1][::-1]])
    yield from frames((buf0 + len(buf) - n_fft) // hop + 1)


def event_clips_streamed(blocks: Blocks, *, sr: int, cfg: BuildConfig) -> ClipTimes:
    """:func:`clips.event_clips` of the recording that ``blocks()`` streams at ``sr`` Hz (called once per pass;
    the recording must be at least ``n_fft`` samples long)."""
    _band_mask, f = _band(cfg, sr)
    frame_s = cfg.hop_length / sr
    nb = len(f)
    noise, n_samples = _medians(blocks, sr=sr, cfg=cfg, nb=nb)
    n_frames = 1 + n_samples // cfg.hop_length
    duration_s = n_samples / sr
    if nb == 0:  # no band: no event, the fallback gets zero energy everywhere
        keep, _fr = strongest_frames(np.zeros(0), duration_s=duration_s, frame_s=frame_s, cfg=cfg, n=_fallback_n(cfg))
        return windows_with_bands(keep, [np.zeros(0)] * len(keep), f, duration_s=duration_s, cfg=cfg)
    noise = noise[:, None] + 1e-12
    noise_sum = noise.sum()
    snr_db = np.empty(n_frames)
    per_frame = np.empty(n_frames)
    for f0, p in band_power(blocks(), sr=sr, cfg=cfg):
        excess = np.maximum(p - noise, 0.0)
        tot = excess.sum(axis=0)
        per_frame[f0 : f0 + len(tot)] = tot
        snr_db[f0 : f0 + len(tot)] = 10 * np.log10(tot / noise_sum + 1e-12)
    k = max(1, int(round(0.02 * sr / cfg.hop_length)))
    if k > 1:
        snr_db = np.convolve(snr_db, np.ones(k) / k, mode="same")
    runs = event_runs(snr_db, frame_s=frame_s, cfg=cfg)
    events = events_of_runs(runs, snr_db, _profiles(blocks, runs, noise, sr=sr, cfg=cfg), f, frame_s)

    def fallback(n: int) -> ClipTimes:
        keep, frames = strongest_frames(per_frame, duration_s=duration_s, frame_s=frame_s, cfg=cfg, n=n)
        return windows_with_bands(
            keep, _profiles(blocks, frames, noise, sr=sr, cfg=cfg), f, duration_s=duration_s, cfg=cfg
        )

    return clips_of_events(events, duration_s=duration_s, cfg=cfg, fallback=fallback)


def _fallback_n(cfg: BuildConfig) -> int:
    from .clips import FALLBACK_WINDOWS

    return min(FALLBACK_WINDOWS, cfg.max_per_recording) if cfg.max_per_recording else FALLBACK_WINDOWS


def _medians(blocks: Blocks, *, sr: int, cfg: BuildConfig, nb: int) -> tuple[np.ndarray, int]:
    """Each band bin's median power over all frames (float64 [nb]), exactly as ``np.median(axis=1)``, and the
    recording's length in samples."""
    hist = np.zeros((nb, 1 << 16), np.int32)  # 125 MB at 476 bins
    n_samples, n_frames = 0, 0

    def counted() -> Iterator[np.ndarray]:
        nonlocal n_samples
        for block in blocks():
            n_samples += len(block)
            yield block

    for _f0, p in band_power(counted(), sr=sr, cfg=cfg):
        n_frames += p.shape[1]
        hi = p.astype(np.float32).view(np.uint32) >> 16
        for b in range(nb):
            np.add(hist[b], np.bincount(hi[b], minlength=1 << 16), out=hist[b], casting="unsafe")
    if nb == 0:
        return np.zeros(0), n_samples
    ranks = sorted({(n_frames - 1) // 2, n_frames // 2})
    cells = np.zeros((nb, len(ranks)), np.int64)  # the histogram cell of each bin's median rank(s)
    before = np.zeros((nb, len(ranks)), np.int64)  # how many values lie in lower cells
    for b in range(nb):
        csum = np.cumsum(hist[b], dtype=np.int64)
        for j, r in enumerate(ranks):
            cells[b, j] = int(np.argmax(csum > r))
            before[b, j] = int(csum[cells[b, j] - 1]) if cells[b, j] > 0 else 0
    del hist
    found: list[list[np.ndarray]] = [[] for _ in range(nb)]
    for _f0, p in band_power(blocks(), sr=sr, cfg=cfg):
        hi = p.astype(np.float32).view(np.uint32) >> 16
        for b in range(nb):
            m = np.isin(hi[b], cells[b])
            if m.any():
                found[b].append(p[b][m])
    med = np.empty(nb)
    for b in range(nb):
        vals = np.concatenate(found[b])
        hb = vals.astype(np.float32).view(np.uint32) >> 16
        picked = []
        for j, r in enumerate(ranks):
            in_cell = np.sort(vals[hb == cells[b, j]])
            picked.append(in_cell[r - before[b, j]])
        med[b] = np.mean(np.array(picked))
    return med, n_samples


def _profiles(
    blocks: Blocks, ranges: list[tuple[int, int]], noise: np.ndarray, *, sr: int, cfg: BuildConfig
) -> list[np.ndarray]:
    """Mean above-noise spectrum (float64 [nb]) of each frame range ``[a, b)``, as ``excess[:, a:b].mean(axis=1)``."""
    if not ranges:
        return []
    parts: list[list[np.ndarray]] = [[] for _ in ranges]
    last = max(b for _a, b in ranges)
    for f0, p in band_power(blocks(), sr=sr, cfg=cfg):
        f1 = f0 + p.shape[1]
        for i, (a, b) in enumerate(ranges):
            if a < f1 and b > f0:
                parts[i].append(np.maximum(p[:, max(a, f0) - f0 : min(b, f1) - f0] - noise, 0.0))
        if f1 >= last:
            break
    return [np.ascontiguousarray(np.concatenate(pp, axis=1)).mean(axis=1) for pp in parts]
