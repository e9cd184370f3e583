"""Write a synthetic collection in the on-disk contract format (docs/ARCHITECTURE.md), fast, for any size.

Used by bench/page.py (10k and 200k points) and, when no built collection is at hand, by the browser tests.
Clusters are Gaussian blobs on the map; each cluster's clips are a tone at its own pitch, so you can hear
the map. Audio sprites are shared between clips when ``n_clips`` is large (the contract allows any offsets),
which keeps a 200k-clip collection small on disk.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from preprocess.collection import Collection
from preprocess.testing import CollectionWriter

SPECIES = [
    ("Turdus merula", "Eurasian Blackbird"),
    ("Erithacus rubecula", "European Robin"),
    ("Fringilla coelebs", "Common Chaffinch"),
    ("Parus major", "Great Tit"),
    ("Phylloscopus collybita", "Common Chiffchaff"),
    ("Troglodytes troglodytes", "Eurasian Wren"),
    ("Sylvia atricapilla", "Eurasian Blackcap"),
    ("Cyanistes caeruleus", "Eurasian Blue Tit"),
]


def write_synthetic_collection(
    root: Path | str,
    *,
    n_clips: int = 400,
    n_clusters: int = 8,
    clip_s: float = 1.0,
    audio_sample_rate: int = 22050,
    clips_per_sprite: int = 40,
    max_audio_sprites: int = 8,
    tile_w: int = 64,
    tile_h: int = 64,
    sheet_cols: int = 32,
    sheet_rows: int = 32,
    max_sheets: int | None = None,
    random_state: int = 0,
) -> Collection:
    """Write a complete collection of ``n_clips`` clips in ``n_clusters`` blobs to ``root``; return it.

    Reduction key ``synthetic`` with dims 2 and 8; feature set ``synthetic`` (8-d).
    """
    import pandas as pd

    root = Path(root)
    rng = np.random.default_rng(random_state)
    w = CollectionWriter(root)

    # recordings: 20 clips each, one species per recording (mostly one cluster, some spill-over)
    per_rec = 20
    n_rec = (n_clips + per_rec - 1) // per_rec
    rec_of_clip = np.arange(n_clips) // per_rec
    rec_truth = rng.integers(0, n_clusters, n_rec)
    truth = rec_truth[rec_of_clip].copy()
    stray = rng.random(n_clips) < 0.08
    truth[stray] = rng.integers(0, n_clusters, int(stray.sum()))
    centres = rng.normal(0, 6, (n_clusters, 8)).astype(np.float32)
    feats = centres[truth] + rng.normal(0, 0.6, (n_clips, 8)).astype(np.float32)
    map_2d = np.ascontiguousarray(feats[:, :2])
    recs = pd.DataFrame(
        {
            "recording_id": np.arange(n_rec),
            "path": [f"rec_{r:06d}.flac" for r in range(n_rec)],
            "file_name": [f"rec_{r:06d}.flac" for r in range(n_rec)],
            "sha1": ["0" * 40] * n_rec,
            "size_bytes": np.zeros(n_rec, np.int64),
            "duration_s": np.full(n_rec, per_rec * clip_s),
            "orig_sample_rate": np.full(n_rec, audio_sample_rate),
            "channels": np.ones(n_rec, np.int64),
            "format": ["FLAC"] * n_rec,
            "label": [SPECIES[t % len(SPECIES)][0] for t in rec_truth],
            "xc_id": [str(100000 + r) for r in range(n_rec)],
            "species": [SPECIES[t % len(SPECIES)][0] for t in rec_truth],
            "common_name": [SPECIES[t % len(SPECIES)][1] for t in rec_truth],
            "sound_type": ["song"] * n_rec,
            "country": ["Germany"] * n_rec,
            "date": ["2024-05-01"] * n_rec,
            "lat": np.full(n_rec, 52.5),
            "lon": np.full(n_rec, 13.4),
            "recordist": ["Synthetic Recordist"] * n_rec,
            "license": ["CC BY-SA 4.0"] * n_rec,
            "quality": ["A"] * n_rec,
            "url": [f"https://xeno-canto.org/{100000 + r}" for r in range(n_rec)],
        }
    )

    # audio sprites: tones, one pitch per cluster; large collections reuse sprites
    clip_len = int(round(clip_s * audio_sample_rate))
    gap = int(0.05 * audio_sample_rate)
    n_sprites = min(max_audio_sprites, (n_clips + clips_per_sprite - 1) // clips_per_sprite)
    t = np.arange(clip_len) / audio_sample_rate
    fade = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.01)
    for s in range(n_sprites):
        chunks = []
        for k in range(clips_per_sprite):
            f0 = 600 + 250 * ((s * clips_per_sprite + k) % n_clusters)
            chunks.append((0.3 * np.sin(2 * np.pi * f0 * t) * fade).astype(np.float32))
            chunks.append(np.zeros(gap, np.float32))
        w.audio_sprite(s, np.concatenate(chunks), sr=audio_sample_rate)
    slot = np.arange(n_clips)
    audio_sprite = (slot // clips_per_sprite) % n_sprites
    audio_offset = (slot % clips_per_sprite) * (clip_len + gap)

    # sprite sheets: noise tiles with a brighter band at the cluster's pitch
    per_sheet = sheet_cols * sheet_rows
    n_sheets = (n_clips + per_sheet - 1) // per_sheet
    if max_sheets is not None:
        n_sheets = min(n_sheets, max_sheets)
    for s in range(n_sheets):
        img = rng.integers(0, 70, (sheet_rows * tile_h, sheet_cols * tile_w), dtype=np.uint8)
        for c in range(min(per_sheet, n_clips - s * per_sheet)):
            k = truth[s * per_sheet + c]
            y = (c // sheet_cols) * tile_h + tile_h - 8 - (k * (tile_h - 16)) // max(1, n_clusters - 1)
            x = (c % sheet_cols) * tile_w
            img[y : y + 4, x + 4 : x + tile_w - 4] = 230
        w.sheet(s, img, quality=80)
    sheet = (slot // per_sheet) % max(1, n_sheets)
    cell = slot % per_sheet

    start_s = (slot % per_rec) * clip_s
    clips = pd.DataFrame(
        {
            "clip_id": slot.astype(np.int64),
            "recording_id": rec_of_clip.astype(np.int64),
            "start_s": start_s.astype(np.float64),
            "end_s": (start_s + clip_s).astype(np.float64),
            "fmin_hz": np.full(n_clips, 150.0, np.float32),
            "fmax_hz": np.full(n_clips, 10000.0, np.float32),
            "sheet": sheet.astype(np.int32),
            "cell": cell.astype(np.int32),
            "audio_sprite": audio_sprite.astype(np.int32),
            "audio_offset": audio_offset.astype(np.int64),
            "audio_length": np.full(n_clips, clip_len, np.int64),
        }
    )
    w.recordings(recs, complete=False)
    w.clips(clips)
    w.features("synthetic", feats, model=None, version="0", time_s=0.0)
    w.reduction("synthetic", coords={2: map_2d, 8: feats}, display=map_2d)

    config = {
        "sample_rate": audio_sample_rate,
        "clip_s": clip_s,
        "n_fft": 1024,
        "hop_length": 256,
        "n_mels": tile_h,
        "fmin": 150,
        "fmax": 10000,
        "top_db": 80,
        "tile_w": tile_w,
        "tile_h": tile_h,
        "tile_format": "jpg",
        "sheet_cols": sheet_cols,
        "sheet_rows": sheet_rows,
        "audio_sample_rate": audio_sample_rate,
    }
    w.manifest(
        config=config,
        counts={
            "recordings": n_rec,
            "clips": n_clips,
            "audio_s": n_clips * clip_s,
            "skipped": 0,
            "sheets": n_sheets,
            "audio_sprites": n_sprites,
        },
        tool_version="synthetic",
        created="2026-01-01T00:00:00Z",
        updated="2026-01-01T00:00:00Z",
        sources=[],
        stages={"synthetic": "2026-01-01T00:00:00Z"},
    )
    return Collection.open(root)
