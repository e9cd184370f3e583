"""Tiles, sprite sheets and audio sprites."""

from __future__ import annotations

import numpy as np
import soundfile as sf

from preprocess import sprites


def test_colormap_lut_is_perceptually_ordered():
    lut = sprites.colormap_lut("magma")
    assert lut.shape == (256, 3) and lut.dtype == np.uint8
    luminance = lut @ np.array([0.2126, 0.7152, 0.0722])
    assert np.all(np.diff(luminance) > -1)  # dark to bright, monotonic
    assert luminance[0] < 20 and luminance[-1] > 200


def test_tiles_put_high_frequencies_on_top():
    s = np.zeros((1, 128, 301), np.uint8)
    s[0, 120:] = 255  # energy in the highest mel bands
    tile = sprites.render_tiles(s, tile_w=64, tile_h=64, colormap="gray")[0]
    assert tile.shape == (64, 64, 3)
    assert tile[:3].mean() > 200 and tile[-10:].mean() < 5


def test_sheet_cells_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    tiles = rng.integers(0, 256, (5, 16, 16, 3), dtype=np.uint8)
    tiles[:] = tiles.mean(axis=(1, 2), keepdims=True).astype(np.uint8)  # flat colours survive JPEG
    path = tmp_path / "sheet.jpg"
    size = sprites.write_sheet(path, tiles, sheet_cols=4, quality=95)
    assert size == (64, 32)
    for c in range(5):
        cell = sprites.read_cell(path, c, sheet_cols=4, tile_w=16, tile_h=16)
        assert np.abs(cell[4:-4, 4:-4].astype(int) - tiles[c, 4:-4, 4:-4]).max() <= 4


def test_audio_sprites_are_sample_accurate(tmp_path):
    sr = 8000
    rng = np.random.default_rng(0)
    clips = [sprites.to_int16(0.3 * rng.standard_normal(n).astype(np.float32)) for n in (8000, 3000, 16000, 24000, 100)]
    gap = int(0.05 * sr)
    sprite, offset, totals = sprites.plan_audio_sprites([len(c) for c in clips], max_samples=5 * sr, gap=gap)
    assert sprite.tolist() == [0, 0, 0, 1, 1]  # the 4th clip would overflow 5 s: a new sprite
    assert offset[0] == gap and offset[1] == gap + 8000 + gap and offset[3] == gap
    assert (totals <= 5 * sr + gap).all()
    for s in range(len(totals)):
        idx = np.flatnonzero(sprite == s)
        sprites.write_audio_sprite(
            tmp_path / f"sprite_{s}.flac",
            [clips[i] for i in idx],
            [int(offset[i]) for i in idx],
            total=int(totals[s]),
            sr=sr,
            fade_ms=5.0,
        )
    fade = int(0.005 * sr)
    for i, clip in enumerate(clips):
        data, rate = sf.read(tmp_path / f"sprite_{sprite[i]}.flac", dtype="int16")
        assert rate == sr and len(data) == totals[sprite[i]]
        got = data[offset[i] : offset[i] + len(clip)]
        k = min(fade, len(clip) // 2)
        np.testing.assert_array_equal(got[k:-k], clip[k:-k])  # exact between the fades
        assert np.all(np.abs(got[:k].astype(int)) <= np.abs(clip[:k].astype(int)) + 1)  # fade in
        assert not data[offset[i] - gap : offset[i]].any()  # a silent gap before each clip
