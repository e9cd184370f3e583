"""The clip table to the page at scale: ``GET /api/collections/<c>/clips.bin`` cold and warm, old path beside new.

    .venv/bin/python bench/clip_table.py [--sizes 200000 1000000]

Synthetic collection per size (100 clips per recording, 12 metadata columns per recording, BirdNET top species of
60 names). Rows, each measured in this one process:
- ``row-by-row``: the previous route body, ``to_binary(clip_table(c))`` (per-clip Python);
- ``vectorised``: :func:`server.tables.build_binary` (no disk cache: the first request after the tables change);
- ``cold``: a fresh app serving the route with the ``derived/clips.bin-KEY`` cache on disk (server restart);
- ``warm``: the same app's second request (in-memory cache).
The page's own decode and draw are not included (bench/page.py measures those).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402


def make_collection(root: Path, n: int):
    import pandas as pd

    from preprocess.testing import CollectionWriter, clip_table

    rng = np.random.default_rng(0)
    n_rec = max(1, n // 100)
    w = CollectionWriter(root)
    species = [f"Genus{i} species{i}" for i in range(60)]
    w.recordings(
        [
            {"path": f"r{i}.flac", "duration_s": 300.0, "label": species[i % 60], "species": species[i % 60],
             "common_name": f"bird {i % 60}", "xc_id": str(100000 + i), "recordist": f"person {i % 300}",
             "license": "CC BY-NC-SA 4.0", "file_name": f"XC{100000 + i}.mp3", "url": f"https://xeno-canto.org/{i}",
             "sound_type": "song", "country": "France", "date": "2020-05-01", "quality": "A"}
            for i in range(n_rec)
        ]
    )  # fmt: skip
    w.clips(clip_table(n, recording_id=np.arange(n) // 100, cells_per_sheet=1024, audio_length=66150))
    w.species("birdnet", pd.DataFrame({"clip_id": np.arange(n), "species_1": rng.choice(species, n),
                                        "score_1": rng.uniform(size=n)}))  # fmt: skip
    return w.manifest(config={"clip_s": 3.0})


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[200_000, 1_000_000])
    args = ap.parse_args()
    print(f"{'N':>9} {'row-by-row s':>12} {'vectorised s':>12} {'cold s':>7} {'warm s':>7} {'MB':>6}  same bytes")
    for n in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            print(measure(Path(tmp), n), flush=True)


def measure(tmp: Path, n: int) -> str:
    """One table row for ``n`` clips (collection written under ``tmp``)."""
    from server import tables
    from server.app import create_app
    from server.settings import Settings

    c = make_collection(tmp / "cols" / "bench", n)
    files = [c.clips_path, c.recordings_path, tables.species_path(c)]
    old_s, old = timed(lambda: tables.to_binary(tables.clip_table(c)))
    new_s, new = timed(lambda: tables.build_binary(c))
    tables.clips_binary(c, files)  # writes the disk cache
    app, _ = create_app(Settings(collections_dir=tmp / "cols", warmup=False))
    client = app.test_client()
    cold_s, r1 = timed(lambda: client.get("/api/collections/bench/clips.bin").data)
    warm_s, r2 = timed(lambda: client.get("/api/collections/bench/clips.bin").data)
    same = old == new == r1 == r2
    return f"{n:>9,} {old_s:>12.2f} {new_s:>12.2f} {cold_s:>7.2f} {warm_s:>7.2f} {len(new) / 1e6:>6.1f}  {same}"


if __name__ == "__main__":
    main()
