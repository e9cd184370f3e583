"""Adding uploaded recordings to a collection: wall time of one ``ingest`` of N demo MP3s (one build per request).

Builds a small base collection (two demo species, BirdNET or acoustic features, a 2/8-d map) in a temporary folder,
stages N MP3s of other species through :class:`preprocess.uploads.UploadStore` as the browser would, then times
:func:`preprocess.ingest.ingest` and prints a table. Run ``python -m bench.ingest [--n 8]``; to compare with another
checkout, run it with that checkout first on ``PYTHONPATH``.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

DEMO = Path(__file__).resolve().parents[1] / "demo" / "recordings"
BASE_SPECIES = ("Junco hyemalis_Dark-eyed Junco", "Passer domesticus_House Sparrow")


def _stage(store, files: list[Path]) -> list[str]:
    ids = []
    for f in files:
        data = f.read_bytes()
        up = store.create(f.name, len(data))
        store.write_chunk(up.upload_id, 0, data, len(data))
        ids.append(up.upload_id)
    return ids


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=8, help="recordings to add in one request")
    ap.add_argument("--features", default="birdnet", help="feature set of the base collection")
    args = ap.parse_args()

    import preprocess
    from preprocess.collection import Collection
    from preprocess.features import run_extractor
    from preprocess.ingest import ingest
    from preprocess.pipeline import build
    from preprocess.reduce import reduce_collection
    from preprocess.uploads import UploadStore

    others = sorted(p for d in DEMO.iterdir() if d.is_dir() and d.name not in BASE_SPECIES for p in d.glob("*.mp3"))[
        : args.n
    ]
    with tempfile.TemporaryDirectory() as tmp:
        root, src = Path(tmp) / "collections", Path(tmp) / "src"
        for name in BASE_SPECIES:
            shutil.copytree(DEMO / name, src / name)
        t0 = time.perf_counter()
        build([src], root / "base", jobs=1)
        run_extractor(Collection.open(root / "base"), args.features)
        reduce_collection(Collection.open(root / "base"), features=[args.features], dims=[2, 8])
        t_base = time.perf_counter() - t0
        store = UploadStore(root)
        batch = store.stage(_stage(store, others))
        t0 = time.perf_counter()
        res = ingest(root, "base", batch)
        t_ingest = time.perf_counter() - t0
    print(f"sonomap at {Path(preprocess.__file__).parent}")
    print("| files | ok | new clips | base build s | ingest s | s / file |")
    print("|---:|---:|---:|---:|---:|---:|")
    n_ok = sum(f.status == "ok" for f in res.files)
    print(
        f"| {len(others)} | {n_ok} | {len(res.new_clip_ids)} | {t_base:.1f} | {t_ingest:.1f} | "
        f"{t_ingest / max(len(others), 1):.1f} |"
    )


if __name__ == "__main__":
    main()
