"""The whole-recording view: where a recording's original lies, its clips, and spectrogram tiles on demand.

A tile is ``tile_s`` seconds of the recording drawn as a ``TILE_W_PX``-wide log-mel image (the
collection's ``sample_rate, n_fft, hop_length, n_mels, fmin, fmax, colormap``, high frequencies on
top). Only the tile's range is decoded (a seek, then ``tile_s`` plus a few ms of margin), so an hour
costs no more per tile than a minute. Brightness uses one reference level per recording (estimated
once from a few short windows spread over it) so neighbouring tiles match. Tiles are cached::

    Collection.recording_info_path(id, sha1)              reference level, duration
    Collection.recording_tile_path(id, sha1, tile_s, i)   one tile (JPEG)
    Collection.recording_audio_path(id, sha1)             the original re-encoded for the browser (FLAC)

Times are seconds of the original recording; tile ``i`` at zoom ``tile_s`` covers
``[i * tile_s, (i + 1) * tile_s)``, and pixel column ``x`` is at ``i * tile_s + (x + 0.5) * tile_s / width``
(the last tile is narrower, cut at the recording's end).
"""

from __future__ import annotations

import json
import math
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from .collection import Collection, atomic_path, write_json_atomic
from .config import BuildConfig
from .errors import AudioError, NotFoundError, ParameterError

#: seconds per tile at each zoom level the browser may ask for
TILE_S_CHOICES = (5, 10, 30, 60, 300)
TILE_W_PX = 1000
RENDER_VERSION = 1
_REF_WINDOWS = 12
_REF_WINDOW_S = 2.0
_MARGIN_S = 0.05  # decoded beyond each side so resampling has no edge effects
#: formats every current browser plays from the original bytes (others are converted once to FLAC)
BROWSER_FORMATS = {"mp3": "audio/mpeg", "wav": "audio/wav", "flac": "audio/flac", "ogg": "audio/ogg"}


# ---------------------------------------------------------------------------------------------
# the recording and its original


def recording_row(collection: Collection, recording_id: int) -> dict[str, Any]:
    """The recording's row of ``recordings.parquet`` as a dict (NaN -> None)."""
    recs = collection.recordings()
    rid = _as_int(recording_id, "recording_id")
    if not 0 <= rid < len(recs):
        raise NotFoundError(f"no recording {recording_id} in {collection.name} (it has {len(recs)})")
    row = recs.iloc[rid].to_dict()
    return {k: (None if isinstance(v, float) and math.isnan(v) else _plain(v)) for k, v in row.items()}


def source_path(collection: Collection, row: dict[str, Any]) -> Path:
    """The original file of a recording: ``path`` under one of the manifest's inputs (never elsewhere).

    The candidate must resolve inside that input (no ``..`` escapes through the stored path) and
    have the size recorded at build time.
    """
    rel = str(row["path"])
    inputs = [Path(p) for p in collection.manifest().get("inputs", [])]
    for inp in inputs:
        bases = [inp, inp.parent] if inp.is_dir() else [inp.parent]
        for base in bases:
            base = base.resolve()
            cand = (base / rel).resolve()
            if base not in cand.parents or not cand.is_file():
                continue
            if int(row.get("size_bytes") or -1) not in (-1, cand.stat().st_size):
                continue
            return cand
    raise NotFoundError(
        f"the original of {rel} is no longer where the collection was built from "
        f"({', '.join(map(str, inputs)) or 'no inputs recorded'}); the recording view needs it"
    )


def recording_clips(collection: Collection, recording_id: int, *, config: BuildConfig | None = None) -> dict[str, list]:
    """Columnar clips of one recording: ``clip_id, start_s, end_s, fmin_hz, fmax_hz, y_top, y_bottom``.

    ``y_top``/``y_bottom`` are the band's edges as fractions of the tile height (0 = top = fmax).
    """
    cfg = config or BuildConfig.from_dict(collection.manifest()["config"])
    clips = collection.clips()
    sel = clips[clips["recording_id"] == int(recording_id)].sort_values("start_s")
    lo = np.clip(sel["fmin_hz"].to_numpy(np.float64), cfg.fmin, cfg.fmax)
    hi = np.clip(sel["fmax_hz"].to_numpy(np.float64), cfg.fmin, cfg.fmax)
    return {
        "clip_id": sel["clip_id"].astype(int).tolist(),
        "start_s": sel["start_s"].astype(float).round(4).tolist(),
        "end_s": sel["end_s"].astype(float).round(4).tolist(),
        "fmin_hz": lo.round(1).tolist(),
        "fmax_hz": hi.round(1).tolist(),
        "y_top": (1.0 - hz_to_fraction(hi, cfg)).round(5).tolist(),
        "y_bottom": (1.0 - hz_to_fraction(lo, cfg)).round(5).tolist(),
    }


def hz_to_fraction(hz: np.ndarray, cfg: BuildConfig) -> np.ndarray:
    """Position of ``hz`` on the tiles' mel axis: 0 at ``fmin``, 1 at ``fmax`` (Slaney mel, as the tiles)."""
    from .spectrogram import _hz_to_mel

    lo, hi = _hz_to_mel(cfg.fmin), _hz_to_mel(cfg.fmax)
    mels = np.array([_hz_to_mel(float(h)) for h in np.atleast_1d(hz)])
    return np.clip((mels - lo) / (hi - lo), 0.0, 1.0)


def recording_info(collection: Collection, recording_id: int) -> dict[str, Any]:
    """Everything the browser needs to draw the recording: metadata, duration, tiling, axis, audio type."""
    cfg = BuildConfig.from_dict(collection.manifest()["config"])
    row = recording_row(collection, recording_id)
    duration_s = float(row.get("duration_s") or 0.0)
    fmt = str(row.get("format") or "")
    ticks = [f for f in (500, 1000, 2000, 4000, 8000, 16000, 32000, 64000, 128000) if cfg.fmin < f < cfg.fmax]
    return {
        "recording": row,
        "duration_s": duration_s,
        "tile": {
            "tile_s_choices": list(TILE_S_CHOICES),
            "width_px": TILE_W_PX,
            "height_px": int(cfg.n_mels),
            "n_tiles": {str(t): max(1, math.ceil(duration_s / t)) for t in TILE_S_CHOICES},
        },
        "axis": {
            "fmin_hz": cfg.fmin,
            "fmax_hz": cfg.fmax,
            "scale": "mel",
            "ticks": [{"hz": f, "y": round(float(1.0 - hz_to_fraction(np.array([f]), cfg)[0]), 5)} for f in ticks],
        },
        "audio_mime": BROWSER_FORMATS.get(fmt, "audio/flac"),
    }


# ---------------------------------------------------------------------------------------------
# decoding ranges


def decode_range(path: Path | str, start_s: float, duration_s: float, *, sr: int) -> np.ndarray:
    """float32 mono samples of ``[start_s, start_s + duration_s)`` of a file, resampled to ``sr``.

    Seeks, then reads only that range (in blocks, mixed to mono as they come). Positions before 0
    or past the end are zeros, so the result always has ``round(duration_s * sr)`` samples.
    """
    import soundfile as sf

    from .audio import resample

    n_out = int(round(duration_s * sr))
    try:
        with _open_audio(path) as f:
            orig_sr = int(f.samplerate)
            a = int(math.floor((start_s - _MARGIN_S) * orig_sr))
            b = int(math.ceil((start_s + duration_s + _MARGIN_S) * orig_sr))
            lo, hi = max(a, 0), (min(b, f.frames) if f.frames > 0 else b)
            full = np.zeros(b - a, np.float32)
            if hi > lo:
                f.seek(lo)
                pos = lo - a
                while pos < hi - a:
                    block = f.read(min(hi - a - pos, 1 << 18), dtype="float32", always_2d=True)
                    if len(block) == 0:
                        break
                    full[pos : pos + len(block)] = block.mean(axis=1, dtype=np.float32)
                    pos += len(block)
    except (RuntimeError, sf.LibsndfileError) as e:
        raise AudioError(f"cannot read {Path(path).name}: {str(e)[:200]}") from None
    y = resample(full, orig_sr=orig_sr, target_sr=sr)
    skip = int(round((start_s * orig_sr - a) * sr / orig_sr))
    y = y[skip : skip + n_out]
    if len(y) < n_out:
        y = np.concatenate([y, np.zeros(n_out - len(y), np.float32)])
    return y


_HANDLES: OrderedDict[tuple, tuple[threading.Lock, Any]] = OrderedDict()
_HANDLES_LOCK = threading.Lock()
_MAX_HANDLES = 4


@contextmanager
def _open_audio(path: Path | str) -> Iterator[Any]:
    """An open ``soundfile.SoundFile`` of ``path``, kept between calls (a few at a time).

    Seeking in an MP3 scans its frames from the start the first time (0.5-1 s into an hour); an
    open handle remembers the frame index, so later tiles of the same recording seek in milliseconds.
    """
    import soundfile as sf

    st = Path(path).stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    with _HANDLES_LOCK:
        entry = _HANDLES.get(key)
        if entry is None:
            entry = (threading.Lock(), None)
            _HANDLES[key] = entry
        _HANDLES.move_to_end(key)
        for old_key in list(_HANDLES)[:-_MAX_HANDLES]:
            lock, handle = _HANDLES[old_key]
            if lock.acquire(blocking=False):  # never close a handle another thread is reading
                try:
                    if handle is not None:
                        handle.close()
                finally:
                    lock.release()
                del _HANDLES[old_key]
    lock = entry[0]
    with lock:
        handle = _HANDLES.get(key, entry)[1]
        if handle is None or handle.closed:
            handle = sf.SoundFile(str(path))
            with _HANDLES_LOCK:
                _HANDLES[key] = (lock, handle)
        try:
            yield handle
        except BaseException:
            handle.close()  # a failed read may leave the decoder in a bad state: start afresh next time
            raise


def _mel_db(y: np.ndarray, cfg: BuildConfig, *, n_frames: int) -> np.ndarray:
    """float32 [n_mels, n_frames] dB (re 1.0) of frames centred at ``n_fft/2 + k*hop`` samples of ``y``."""
    import torch

    from .spectrogram import mel_filterbank

    fb = torch.from_numpy(
        mel_filterbank(
            sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=cfg.n_mels, fmin=float(cfg.fmin), fmax=float(cfg.fmax)
        )
    )
    x = torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32))
    with torch.no_grad():
        spec = torch.stft(
            x, cfg.n_fft, cfg.hop_length, window=torch.hann_window(cfg.n_fft), center=False, return_complex=True
        )
        power = spec.real.square() + spec.imag.square()
        mel = torch.matmul(fb, power)[:, :n_frames].numpy()
    return 10.0 * np.log10(np.maximum(mel, 1e-10))


def _frames_audio(path: Path, start_s: float, tile_s: float, cfg: BuildConfig) -> tuple[np.ndarray, int]:
    """Audio for the frames centred on ``start_s + k * hop / sr`` for k < n_frames (centred STFT, zero padded)."""
    sr, hop = cfg.sample_rate, cfg.hop_length
    n_frames = max(1, int(round(tile_s * sr / hop)))
    half = cfg.n_fft // 2
    span = (n_frames - 1) * hop + cfg.n_fft
    y = decode_range(path, start_s - half / sr, span / sr, sr=sr)
    return y, n_frames


# ---------------------------------------------------------------------------------------------
# tiles


def reference_db(collection: Collection, recording_id: int) -> float:
    """The recording's brightness reference (dB re full scale power), computed once and cached."""
    row = recording_row(collection, recording_id)
    cache = collection.recording_info_path(int(row["recording_id"]), row.get("sha1"))
    try:
        info = json.loads(cache.read_text())
        if info.get("render_version") == RENDER_VERSION:
            return float(info["ref_db"])
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        pass
    cfg = BuildConfig.from_dict(collection.manifest()["config"])
    duration_s = float(row.get("duration_s") or 0.0)
    values = _clip_sprite_db(collection, int(row["recording_id"]), cfg)
    if not values:  # no clips to read: sample the original (slower for long MP3s: each seek scans)
        path = source_path(collection, row)
        n = max(1, min(_REF_WINDOWS, int(duration_s // _REF_WINDOW_S) or 1))
        for s in np.linspace(0.0, max(0.0, duration_s - _REF_WINDOW_S), n):
            y, n_frames = _frames_audio(path, float(s), min(_REF_WINDOW_S, max(duration_s, 0.1)), cfg)
            values.append(_mel_db(y, cfg, n_frames=n_frames).ravel())
    ref = float(np.percentile(np.concatenate(values), 99.9))
    write_json_atomic(
        cache, {"render_version": RENDER_VERSION, "ref_db": ref, "duration_s": duration_s, "path": row["path"]}
    )
    return ref


def _clip_sprite_db(collection: Collection, recording_id: int, cfg: BuildConfig) -> list[np.ndarray]:
    """Mel dB of up to ``_REF_WINDOWS`` of the recording's clips, read from the audio sprites (FLAC: cheap seeks).

    The sprites hold the clips' audio at the collection's rate, at the original level, so they give the
    recording's brightness reference without touching a long original.
    """
    import soundfile as sf

    if int(cfg.audio_sample_rate) != int(cfg.sample_rate):
        return []
    clips = collection.clips()
    sel = clips[clips["recording_id"] == recording_id]
    if sel.empty:
        return []
    pick = sel.iloc[np.unique(np.linspace(0, len(sel) - 1, min(_REF_WINDOWS, len(sel))).round().astype(int))]
    out = []
    for row in pick.itertuples():
        path = collection.audio_sprite_path(int(row.audio_sprite))
        if not path.is_file() or int(row.audio_length) < cfg.n_fft:
            continue
        with sf.SoundFile(str(path)) as f:
            f.seek(int(row.audio_offset))
            y = f.read(int(row.audio_length), dtype="float32", always_2d=True).mean(axis=1)
        n_frames = 1 + (len(y) - cfg.n_fft) // cfg.hop_length
        out.append(_mel_db(y, cfg, n_frames=n_frames).ravel())
    return out


def tile_path(collection: Collection, recording_id: int, index: int, *, tile_s: int = 10) -> Path:
    """The cached JPEG of tile ``index`` at zoom ``tile_s`` (rendered now if missing).

    Raises :class:`ParameterError` for an unknown zoom or an index past the recording's end.
    """
    tile_s = _as_int(tile_s, "tile_s")
    if tile_s not in TILE_S_CHOICES:
        raise ParameterError(f"tile_s {tile_s} is not offered; allowed: {', '.join(map(str, TILE_S_CHOICES))}")
    row = recording_row(collection, recording_id)
    duration_s = float(row.get("duration_s") or 0.0)
    n_tiles = max(1, math.ceil(duration_s / tile_s))
    index = _as_int(index, "tile index")
    if not 0 <= index < n_tiles:
        raise NotFoundError(f"tile {index} is outside the recording (tiles 0-{n_tiles - 1} at {tile_s} s per tile)")
    out = collection.recording_tile_path(int(row["recording_id"]), row.get("sha1"), tile_s, index)
    if out.is_file():
        return out
    cfg = BuildConfig.from_dict(collection.manifest()["config"])
    ref = reference_db(collection, recording_id)
    img = render_tile_image(
        source_path(collection, row), index * tile_s, tile_s, cfg=cfg, ref_db=ref, duration_s=duration_s
    )
    with atomic_path(out) as tmp:
        img.save(tmp, format="JPEG", quality=85, subsampling=0)
    return out


def render_tile_image(
    path: Path, start_s: float, tile_s: float, *, cfg: BuildConfig, ref_db: float, duration_s: float
) -> Any:
    """A PIL RGB image ``TILE_W_PX`` wide (narrower past ``duration_s``) and ``n_mels`` tall."""
    from PIL import Image

    from .sprites import colormap_lut

    y, n_frames = _frames_audio(path, start_s, tile_s, cfg)
    db = _mel_db(y, cfg, n_frames=n_frames)
    v = np.clip((db - ref_db + cfg.top_db) * (255.0 / cfg.top_db), 0, 255).astype(np.uint8)
    img = Image.fromarray(np.ascontiguousarray(v[::-1]), mode="L")
    width = TILE_W_PX
    left_s = duration_s - start_s
    if left_s < tile_s:
        width = max(1, int(math.ceil(TILE_W_PX * left_s / tile_s)))
        img = img.crop((0, 0, max(1, int(math.ceil(n_frames * left_s / tile_s))), img.height))
    img = img.resize((width, cfg.n_mels), Image.Resampling.BILINEAR, reducing_gap=None)
    return Image.fromarray(colormap_lut(cfg.colormap)[np.asarray(img)], mode="RGB")


# ---------------------------------------------------------------------------------------------
# audio for the browser


def playable_audio(collection: Collection, recording_id: int) -> tuple[Path, str]:
    """``(file, mime type)`` the browser can stream with Range: the original, or a FLAC made once from it."""
    row = recording_row(collection, recording_id)
    path = source_path(collection, row)
    fmt = str(row.get("format") or "")
    if fmt in BROWSER_FORMATS:
        return path, BROWSER_FORMATS[fmt]
    out = collection.recording_audio_path(int(row["recording_id"]), row.get("sha1"))
    if not out.is_file():
        import soundfile as sf

        with sf.SoundFile(str(path)) as src, atomic_path(out) as tmp:
            with sf.SoundFile(
                str(tmp), "w", samplerate=src.samplerate, channels=src.channels, format="FLAC", subtype="PCM_16"
            ) as dst:
                for block in src.blocks(blocksize=1 << 18, dtype="float32", always_2d=True):
                    dst.write(block)
    return out, "audio/flac"


def _as_int(v: Any, what: str) -> int:
    try:
        if isinstance(v, bool):
            raise ValueError
        i = int(v)
        if isinstance(v, float) and i != v:
            raise ValueError
        return i
    except (TypeError, ValueError):
        raise ParameterError(f"{what} must be a whole number, got {v!r}") from None


def _plain(v: Any) -> Any:
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    return v
