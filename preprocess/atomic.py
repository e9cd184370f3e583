"""Atomic writes: a temporary file in the same folder, then ``os.replace`` (readers never see half a file).

The lowest layer: the store, the sprite writers and the label store all write through these.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path`` (atomic)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o644)  # mkstemp makes 0600; collections are shared read-only with the server
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: Path | str, data: bytes, *, fsync: bool = True) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())


def write_json_atomic(path: Path | str, obj: Any, *, fsync: bool = True) -> None:
    write_bytes_atomic(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default).encode(), fsync=fsync)


def save_npy_atomic(path: Path | str, array: np.ndarray, *, fsync: bool = True) -> None:
    """``np.save`` atomically; ``fsync=False`` for scratch files (a crash of the OS may lose them, not corrupt them)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array)
            if fsync:
                f.flush()
                os.fsync(f.fileno())


def write_table_atomic(path: Path | str, frame: Any) -> None:
    """Write a pandas DataFrame as Parquet (``.parquet``) or CSV (``.csv``), atomically, without index."""
    path = Path(path)
    with atomic_path(path) as tmp:
        if path.suffix == ".parquet":
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
