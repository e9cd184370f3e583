"""``.npy`` files that grow along their first axis: written block by block, appended in place.

numpy pads every ``.npy`` header so that the first dimension can grow to 21 digits without moving the
data (``numpy.lib.format.GROWTH_AXIS_MAX_DIGITS``). Both helpers here rely on that: rows are written
after the header, and the header is rewritten last with the final shape. The file is byte-identical to
``np.save`` of the whole array.

- :class:`NpyWriter` streams rows of unknown count into a new file (temporary, renamed on close):
  a long recording's clips never sit whole in memory.
- :func:`append_rows` adds rows to an existing file in place, after dropping rows past ``n_keep``
  (a killed build's): the cost is the new rows, not the file. Until the caller's commit point (the
  manifest) records the new count, readers go by that count, so a crash in between loses nothing.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .atomic import atomic_path


def _header(dtype: np.dtype, shape: tuple[int, ...]) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
    )
    return buf.getvalue()


def read_header(f) -> tuple[tuple[int, ...], np.dtype, int]:
    """``(shape, dtype, header length in bytes)`` of an open ``.npy`` file (position left after the header)."""
    f.seek(0)
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
    else:
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
    if fortran:
        raise ValueError("Fortran-ordered .npy files cannot grow along their first axis")
    return tuple(shape), np.dtype(dtype), f.tell()


class NpyWriter:
    """Write a C-ordered ``.npy`` of rows ``row_shape`` and ``dtype`` block by block; the file appears on close.

    Use as a context manager; :meth:`write` takes arrays of shape ``[k, *row_shape]``.
    """

    def __init__(self, path: Path | str, *, row_shape: tuple[int, ...], dtype: np.dtype | type) -> None:
        self.path = Path(path)
        self.row_shape = tuple(int(d) for d in row_shape)
        self.dtype = np.dtype(dtype)
        self.n_rows = 0
        self._atomic = atomic_path(self.path)
        self._tmp = self._atomic.__enter__()
        self._f = open(self._tmp, "wb")
        self._f.write(_header(self.dtype, (0, *self.row_shape)))

    def write(self, rows: np.ndarray) -> None:
        rows = np.ascontiguousarray(rows, dtype=self.dtype)
        if rows.shape[1:] != self.row_shape:
            raise ValueError(f"rows of shape {rows.shape[1:]} do not fit a file of rows {self.row_shape}")
        self._f.write(rows.tobytes())
        self.n_rows += len(rows)

    def close(self) -> None:
        self._f.seek(0)
        self._f.write(_header(self.dtype, (self.n_rows, *self.row_shape)))
        self._f.close()
        self._atomic.__exit__(None, None, None)

    def abort(self) -> None:
        """Close and remove the temporary file (no file appears at ``path``)."""
        self._f.close()
        Path(self._tmp).unlink(missing_ok=True)

    def __enter__(self) -> NpyWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def append_rows(path: Path | str, blocks: Iterable[np.ndarray], *, n_keep: int, fsync: bool = True) -> tuple[int, ...]:
    """Keep the first ``n_keep`` rows of the ``.npy`` at ``path`` and append ``blocks`` in place; returns the shape.

    Rows are written (and fsynced) before the header names them. A file whose header has no room for
    the new shape (never for files numpy wrote) is rewritten whole, atomically.
    """
    path = Path(path)
    with open(path, "r+b") as f:
        shape, dtype, header_len = read_header(f)
        if n_keep > shape[0]:
            raise ValueError(f"{path.name} has {shape[0]} rows, fewer than the {n_keep} to keep")
        row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
        f.truncate(header_len + n_keep * row_bytes)
        f.seek(0, os.SEEK_END)
        n = n_keep
        for block in blocks:
            block = np.ascontiguousarray(block, dtype=dtype)
            if block.shape[1:] != shape[1:]:
                raise ValueError(f"rows of shape {block.shape[1:]} do not fit {path.name} (rows {shape[1:]})")
            f.write(block.tobytes())
            n += len(block)
        new_shape = (n, *shape[1:])
        header = _header(dtype, new_shape)
        if fsync:
            f.flush()
            os.fsync(f.fileno())
        if len(header) == header_len:
            f.seek(0)
            f.write(header)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
            return new_shape
    # an old header without room to grow: rewrite the file once (it grows in place from then on)
    old = np.memmap(path, dtype=dtype, mode="r", offset=header_len, shape=new_shape)
    with atomic_path(path) as tmp:
        mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=new_shape)
        for a in range(0, n, 4096):
            mm[a : min(a + 4096, n)] = old[a : min(a + 4096, n)]
        mm.flush()
        del mm
    return new_shape
