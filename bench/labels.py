"""Label store and export figures at scale (synthetic clip table). Prints a table; not run by CI.

.venv/bin/python bench/labels.py [n_clips]
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from preprocess.export import export_labels, import_labels  # noqa: E402
from preprocess.labels import LabelStore  # noqa: E402
from preprocess.testing import CollectionWriter  # noqa: E402


def main(n: int) -> None:
    rng = np.random.default_rng(0)
    rows = []
    with tempfile.TemporaryDirectory() as d:
        root = Path(d) / "big"
        n_rec = max(1, n // 100)
        rec = rng.integers(0, n_rec, n)
        w = CollectionWriter(root)
        w.recordings(
            pd.DataFrame(
                {
                    "recording_id": np.arange(n_rec),
                    "path": [f"r/{i}.flac" for i in range(n_rec)],
                    "duration_s": 300.0,
                    "xc_id": "",
                }
            ),
        )
        start = rng.uniform(0, 297, n)
        clips = pd.DataFrame(
            {
                "clip_id": np.arange(n),
                "recording_id": rec,
                "start_s": start,
                "end_s": start + 3,
                "fmin_hz": 0.0,
                "fmax_hz": 16000.0,
            }
        )
        w.clips(clips)
        coll = w.manifest(config={"fmin": 0, "fmax": 16000}, counts={"clips": n})

        def timed(what, fn):
            t = time.perf_counter()
            out = fn()
            rows.append((what, time.perf_counter() - t))
            return out

        with LabelStore.open(coll) as s:
            ids = [s.create_class(f"class{i}")["class_id"] for i in range(10)]
            half = rng.choice(n, n // 2, replace=False)
            timed(
                f"add {n // 2:,} clips to a class (cluster pool)",
                lambda: s.add_members(ids[0], half, source={"kind": "cluster", "cluster_id": 1}),
            )
            timed("undo the big add", s.undo)
            timed("redo it", s.redo)
            for c in ids[1:]:
                s.add_members(c, rng.choice(n, n // 20, replace=False), source={"kind": "lasso"})
            timed("add 1 clip", lambda: s.add_members(ids[1], [int(half[0])]))
            state = timed("state() (all classes + members)", s.state)
            timed(
                "GET classes JSON encode", lambda: json.dumps({str(k): v.tolist() for k, v in state["members"].items()})
            )
            timed(f"delete a class of {n // 2:,}", lambda: s.delete_class(ids[0]))
            timed("undo the delete", s.undo)
            csv = timed("export csv (all clips)", lambda: export_labels(coll, format="csv", store=s))
            timed("export raven zip", lambda: export_labels(coll, format="raven", store=s))
            timed("export json", lambda: export_labels(coll, format="json", store=s))
        (root / "labels.sqlite").unlink()
        timed("import that csv into an empty store", lambda: import_labels(coll, csv.data))
        size = sum(p.stat().st_size for p in root.glob("labels.sqlite*"))
    print(
        f"\nlabel store, {n:,} clips, 10 classes ({n // 2:,} + 9 x {n // 20:,} memberships); db {size / 2**20:.1f} MiB, csv {len(csv.data) / 2**20:.1f} MiB"
    )
    print(f"{'step':<48} {'s':>8}")
    for what, sec in rows:
        print(f"{what:<48} {sec:8.3f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)
