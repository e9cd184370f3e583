"""Rolling an ingest back when it is cancelled after its build, and the refusals it records in ``skipped.csv``.

Every writer of a build, a feature pass and a placement replaces its file atomically (a temporary file, then
``os.replace``): a file's old content lives on in its old inode. So a snapshot is a tree of hard links to the
collection's built files (everything but :data:`preprocess.collection.BUILD_UNTOUCHED`: labels, originals, scratch,
caches), cheap whatever the collection's size. Restoring moves each link back over its path and removes the files
made since (new sprite sheets, new feature chunks): the collection is as it was before the batch, byte for byte.

The one exception is ``spectrograms.npy``, which an append grows in place (new rows at the end, then its header):
the snapshot records its size and header bytes, and a restore cuts the file back and writes the header again.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from .collection import BUILD_UNTOUCHED, Collection, write_table_atomic
from .schema import MANIFEST, SKIPPED_COLUMNS, SPECTROGRAMS

#: Files an append grows in place (so a hard link does not keep their old content): their size and head are kept.
GROWN_IN_PLACE = (SPECTROGRAMS,)
#: Bytes of a grown file's head kept by a snapshot (an .npy header, with its room to grow, is far smaller).
HEAD_BYTES = 1 << 16
_GROWN_RECORD = ".grown-in-place.json"

#: Longest reason kept in ``skipped.csv`` (characters).
MAX_REASON_CHARS = 300


def _built_files(root: Path) -> list[Path]:
    """Relative paths of the files a build may replace, under ``root``."""
    out: list[Path] = []
    if not root.is_dir():
        return out
    for top in root.iterdir():
        if top.name in BUILD_UNTOUCHED or top.name == _GROWN_RECORD:
            continue
        if top.is_file():
            out.append(Path(top.name))
        elif top.is_dir():
            out.extend(p.relative_to(root) for p in top.rglob("*") if p.is_file())
    return out


def take_snapshot(root: Path | str, snapshot: Path | str) -> int:
    """Hard-link every built file of the collection at ``root`` into ``snapshot``; returns how many."""
    root, snapshot = Path(root), Path(snapshot)
    shutil.rmtree(snapshot, ignore_errors=True)
    snapshot.mkdir(parents=True)
    files = _built_files(root)
    for rel in files:
        (snapshot / rel).parent.mkdir(parents=True, exist_ok=True)
        os.link(root / rel, snapshot / rel)
    grown = {}
    for name in GROWN_IN_PLACE:
        if (root / name).is_file():
            with open(root / name, "rb") as f:
                grown[name] = {"size": (root / name).stat().st_size, "head": f.read(HEAD_BYTES).hex()}
    (snapshot / _GROWN_RECORD).write_text(json.dumps(grown))
    return len(files)


def restore_snapshot(root: Path | str, snapshot: Path | str) -> None:
    """Put the collection at ``root`` back as it was at :func:`take_snapshot` (files made since are removed)."""
    root, snapshot = Path(root), Path(snapshot)
    kept = {rel for rel in _built_files(snapshot)} if snapshot.is_dir() else set()
    record = snapshot / _GROWN_RECORD
    grown = json.loads(record.read_text()) if record.is_file() else {}
    for rel in _built_files(root):
        if rel not in kept:
            (root / rel).unlink(missing_ok=True)
    # the manifest last: until it is back, a reader sees the newer collection whole
    for rel in sorted(kept, key=lambda r: r.name == MANIFEST):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        if rel.name == MANIFEST:
            _cut_back(root, grown)
        os.replace(snapshot / rel, root / rel)
    _cut_back(root, grown)
    drop_snapshot(snapshot)


def _cut_back(root: Path, grown: dict) -> None:
    """Files grown in place since the snapshot: back to their old size, with their old head."""
    for name, was in grown.items():
        path = root / name
        if path.is_file() and path.stat().st_size != was["size"]:
            with open(path, "r+b") as f:
                f.truncate(was["size"])
                f.seek(0)
                f.write(bytes.fromhex(was["head"]))
                f.flush()
                os.fsync(f.fileno())


def drop_snapshot(snapshot: Path | str) -> None:
    """Remove a snapshot (the ingest settled)."""
    snapshot = Path(snapshot)
    shutil.rmtree(snapshot, ignore_errors=True)
    try:
        snapshot.parent.rmdir()  # only when no other collection's ingest is in flight
    except OSError:
        pass


def extra_skipped_rows(coll: Collection) -> list[tuple[str, str]]:
    """Rows of ``skipped.csv`` that are not the build's own (refused uploads): a build rewrites the table from its
    manifest, so an ingest reads these before its build and writes them back after it."""
    import pandas as pd

    path = coll.skipped_path
    if not path.is_file() or not coll.exists():
        return []
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError):
        return []
    known = {str(s.get("path", "")) for s in coll.manifest().get("sources", [])}
    return [(p, r) for p, r in zip(table["path"], table["reason"], strict=True) if p not in known]


def append_skipped(coll: Collection, rows: list[tuple[str, str]]) -> int:
    """Add ``(path, reason)`` rows to ``skipped.csv`` (each path once, the latest reason); returns the table's rows."""
    import pandas as pd

    old: list[tuple[str, str]] = []
    if coll.skipped_path.is_file():
        try:
            t = pd.read_csv(coll.skipped_path, dtype=str, keep_default_na=False)
            old = list(zip(t["path"], t["reason"], strict=True))
        except (OSError, ValueError, KeyError):
            old = []
    merged = dict(old)
    for path, reason in rows:
        merged[str(path)] = str(reason)[:MAX_REASON_CHARS]
    write_table_atomic(coll.skipped_path, pd.DataFrame(list(merged.items()), columns=list(SKIPPED_COLUMNS)))
    return len(merged)
