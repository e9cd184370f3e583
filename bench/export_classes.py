"""CSV export time against the number of classes (linear in classes × clips). Prints a table.

.venv/bin/python bench/export_classes.py [n_clips] [n_classes ...]

A synthetic collection (clip and recording tables only) with ``n_clips`` clips; ``n_classes`` classes of 3 clips
each, created with ``LabelStore.assign`` (one change). Times ``export_labels(format="csv")`` and, side by side,
what a user would otherwise write: ``pandas.DataFrame`` of the 0/1 matrix + ``to_csv``.
"""

from __future__ import annotations

import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from preprocess.collection import Collection, write_json_atomic, write_table_atomic  # noqa: E402
from preprocess.export import export_labels  # noqa: E402
from preprocess.labels import LabelStore  # noqa: E402


def _collection(root: Path, n: int) -> Collection:
    root.mkdir(parents=True)
    n_rec = max(1, n // 100)
    rec = np.arange(n) % n_rec
    write_table_atomic(
        root / "recordings.parquet",
        pd.DataFrame(
            {
                "recording_id": np.arange(n_rec),
                "path": [f"r/{i}.flac" for i in range(n_rec)],
                "duration_s": 300.0,
                "xc_id": "",
            }
        ),
    )
    start = (np.arange(n) // n_rec) * 3.0
    write_table_atomic(
        root / "clips.parquet",
        pd.DataFrame({"clip_id": np.arange(n), "recording_id": rec, "start_s": start, "end_s": start + 3.0}),
    )
    write_json_atomic(root / "manifest.json", {"schema_version": 1, "config": {}, "counts": {"clips": n}})
    return Collection.open(root)


def main(n: int, sizes: list[int]) -> None:
    rng = np.random.default_rng(0)
    print(f"{'classes':>8} {'clips':>7} {'sonomap csv s':>14} {'pandas to_csv s':>16} {'MB':>7}")
    for k in sizes:
        with tempfile.TemporaryDirectory() as d:
            coll = _collection(Path(d) / "c", n)
            with LabelStore.open(coll) as store:
                store.assign({f"class {i}": rng.choice(n, 3, replace=False) for i in range(k)})
                t = time.perf_counter()
                out = export_labels(coll, format="csv", store=store)
                ours = time.perf_counter() - t
                state = store.state()
            t = time.perf_counter()
            matrix = np.zeros((n, k), np.int8)
            for j, cls in enumerate(state["classes"]):
                matrix[state["members"][cls["id"]], j] = 1
            frame = pd.DataFrame(matrix, columns=[c["name"] for c in state["classes"]])
            frame.to_csv(io.StringIO(), index=False)
            theirs = time.perf_counter() - t
            print(f"{k:>8} {n:>7} {ours:>14.2f} {theirs:>16.2f} {len(out.data) / 1e6:>7.1f}")


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    main(args[0] if args else 1000, args[1:] or [100, 1000, 3000])
