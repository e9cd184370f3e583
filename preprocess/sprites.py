"""Spectrogram tiles in sprite sheets, and clips joined into audio sprites.

Sheets: ``sheet_cols × sheet_rows`` cells of ``tile_w × tile_h`` px (at most 4096 px a side), cells
row-major; a clip's tile is its uint8 log-mel spectrogram resized to the cell, high frequencies on top,
through a 256-entry perceptually uniform colormap (magma by default).

Audio sprites: mono 16-bit FLAC (lossless, so offsets are exact to the sample; every current browser
decodes it). Clips follow each other with ``gap_s`` of silence before each; each clip has short
fades in and out so starting or stopping playback at its bounds never clicks.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from .atomic import atomic_path

#: matplotlib's magma, sampled at 256 points (embedded: importing matplotlib costs a worker ~0.5 s)
_MAGMA_HEX = (
    "00000401000501010601010802010902020b02020d03030f03031204041405041606051806051a07061c08071e090720"
    "0a08220b09240c09260d0a290e0b2b100b2d110c2f120d31130d34140e36150e38160f3b180f3d19103f1a10421c1044"
    "1d11471e114920114b21114e22115024125325125527125829115a2a115c2c115f2d11612f1163311165331067341069"
    "36106b38106c390f6e3b0f703d0f713f0f72400f74420f75440f764510774710784910784a10794c117a4e117b4f127b"
    "51127c52137c54137d56147d57157e59157e5a167e5c167f5d177f5f187f601880621980641a80651a80671b80681c81"
    "6a1c816b1d816d1d816e1e81701f81721f817320817521817621817822817922827b23827c23827e2482802582812581"
    "8326818426818627818827818928818b29818c29818e2a81902a81912b81932b80942c80962c80982d80992d809b2e7f"
    "9c2e7f9e2f7fa02f7fa1307ea3307ea5317ea6317da8327daa337dab337cad347cae347bb0357bb2357bb3367ab5367a"
    "b73779b83779ba3878bc3978bd3977bf3a77c03a76c23b75c43c75c53c74c73d73c83e73ca3e72cc3f71cd4071cf4070"
    "d0416fd2426fd3436ed5446dd6456cd8456cd9466bdb476adc4869de4968df4a68e04c67e24d66e34e65e44f64e55064"
    "e75263e85362e95462ea5661eb5760ec5860ed5a5fee5b5eef5d5ef05f5ef1605df2625df2645cf3655cf4675cf4695c"
    "f56b5cf66c5cf66e5cf7705cf7725cf8745cf8765cf9785df9795df97b5dfa7d5efa7f5efa815ffb835ffb8560fb8761"
    "fc8961fc8a62fc8c63fc8e64fc9065fd9266fd9467fd9668fd9869fd9a6afd9b6bfe9d6cfe9f6dfea16efea36ffea571"
    "fea772fea973feaa74feac76feae77feb078feb27afeb47bfeb67cfeb77efeb97ffebb81febd82febf84fec185fec287"
    "fec488fec68afec88cfeca8dfecc8ffecd90fecf92fed194fed395fed597fed799fed89afdda9cfddc9efddea0fde0a1"
    "fde2a3fde3a5fde5a7fde7a9fde9aafdebacfcecaefceeb0fcf0b2fcf2b4fcf4b6fcf6b8fcf7b9fcf9bbfcfbbdfcfdbf"
)


@lru_cache(maxsize=8)
def colormap_lut(name: str = "magma") -> np.ndarray:
    """uint8 [256, 3] RGB lookup table of a matplotlib colormap (magma and gray need no matplotlib)."""
    if name == "gray":
        ramp = np.arange(256, dtype=np.uint8)
        return np.stack([ramp] * 3, axis=1)
    if name == "magma":
        return np.frombuffer(bytes.fromhex(_MAGMA_HEX), dtype=np.uint8).reshape(256, 3).copy()
    from matplotlib import colormaps

    rgba = colormaps[name](np.linspace(0.0, 1.0, 256))
    return np.rint(rgba[:, :3] * 255).astype(np.uint8)


def render_tiles(specs: np.ndarray, *, tile_w: int, tile_h: int, colormap: str = "magma") -> np.ndarray:
    """uint8 [n, tile_h, tile_w, 3] RGB tiles of uint8 [n, n_mels, n_frames] spectrograms (high freqs on top)."""
    from PIL import Image

    lut = colormap_lut(colormap)
    out = np.empty((len(specs), tile_h, tile_w, 3), np.uint8)
    for i, s in enumerate(specs):
        img = Image.fromarray(np.ascontiguousarray(s[::-1]), mode="L")
        if img.size != (tile_w, tile_h):
            img = img.resize((tile_w, tile_h), Image.Resampling.BILINEAR, reducing_gap=None)
        out[i] = lut[np.asarray(img)]
    return out


def write_sheet(
    path: Path | str, tiles: np.ndarray, *, sheet_cols: int, fmt: str = "jpg", quality: int = 85
) -> tuple[int, int]:
    """Write ``tiles`` (uint8 [n, h, w, 3], n ≤ cells per sheet) as one sheet, row-major; returns (width, height) px.

    The sheet is as wide as ``sheet_cols`` cells and only as tall as the rows it uses.
    """
    from PIL import Image

    n, h, w, _ = tiles.shape
    rows = max(1, -(-n // sheet_cols))
    canvas = np.zeros((rows * h, sheet_cols * w, 3), np.uint8)
    for c in range(n):
        y, x = (c // sheet_cols) * h, (c % sheet_cols) * w
        canvas[y : y + h, x : x + w] = tiles[c]
    img = Image.fromarray(canvas, mode="RGB")
    with atomic_path(path) as tmp:
        if fmt == "webp":
            img.save(tmp, format="WEBP", quality=quality, method=4)
        else:
            img.save(tmp, format="JPEG", quality=quality, optimize=False, subsampling=0)
    return img.size


def read_cell(path: Path | str, cell: int, *, sheet_cols: int, tile_w: int, tile_h: int) -> np.ndarray:
    """uint8 [tile_h, tile_w, 3] RGB of one cell of a sheet."""
    from PIL import Image

    with Image.open(path) as img:
        x, y = (cell % sheet_cols) * tile_w, (cell // sheet_cols) * tile_h
        return np.asarray(img.convert("RGB").crop((x, y, x + tile_w, y + tile_h)))


def apply_fades(audio: np.ndarray, *, sr: int, fade_ms: float) -> np.ndarray:
    """A copy of float32 [n] audio with linear fades of ``fade_ms`` at both ends."""
    out = np.array(audio, dtype=np.float32, copy=True)
    k = min(int(round(fade_ms * sr / 1000)), len(out) // 2)
    if k > 0:
        ramp = (np.arange(k, dtype=np.float32) + 0.5) / k
        out[:k] *= ramp
        out[-k:] *= ramp[::-1]
    return out


def plan_audio_sprites(
    lengths: np.ndarray, *, max_samples: int, gap: int, first_sprite: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lay clips of ``lengths`` samples out in sprites of at most ``max_samples`` (a clip never straddles two).

    Each clip is preceded by ``gap`` samples of silence and each sprite ends with one more gap.
    Returns ``(sprite, offset, sprite_length)``: int64 [n] sprite number and first sample of each clip,
    and int64 [n_sprites] total samples of each sprite (numbered from ``first_sprite``).
    """
    sprite = np.empty(len(lengths), np.int64)
    offset = np.empty(len(lengths), np.int64)
    totals: list[int] = []
    current, used = first_sprite, 0
    for i, n in enumerate(np.asarray(lengths, np.int64).tolist()):
        if used and used + gap + n > max_samples:
            totals.append(used + gap)
            current, used = current + 1, 0
        sprite[i], offset[i] = current, used + gap
        used += gap + n
    if used:
        totals.append(used + gap)
    return sprite, offset, np.array(totals, np.int64)


def write_audio_sprite(
    path: Path | str, clips: list[np.ndarray], offsets: list[int], *, total: int, sr: int, fade_ms: float
) -> None:
    """Write one sprite: int16 ``clips`` placed at ``offsets`` in ``total`` samples of silence, faded, 16-bit FLAC."""
    import soundfile as sf

    out = np.zeros(total, np.int16)
    for clip, off in zip(clips, offsets, strict=True):
        faded = apply_fades(np.asarray(clip, np.float32) / 32767.0, sr=sr, fade_ms=fade_ms)
        out[off : off + len(clip)] = to_int16(faded)  # inverse of to_int16: unfaded samples come back exact
    with atomic_path(path) as tmp:
        sf.write(tmp, out, sr, format="FLAC", subtype="PCM_16")


def to_int16(audio: np.ndarray) -> np.ndarray:
    """float32 in [-1, 1] -> int16 (clipped, rounded)."""
    return np.clip(np.rint(np.asarray(audio, np.float32) * 32767.0), -32768, 32767).astype(np.int16)
