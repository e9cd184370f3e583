"""Appends that cost what is new: spectrograms grow in place, the clip table gains one Parquet part per build."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from preprocess.collection import Collection
from preprocess.npy_append import NpyWriter, append_rows
from preprocess.pipeline import build
from preprocess.testing import write_legacy_clip_table, write_stray_clip_part

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "demo" / "recordings"
JUNCO_DIR = DEMO / "Junco hyemalis_Dark-eyed Junco"
TIT_DIR = DEMO / "Parus major_Great Tit"


def _copy(dest: Path, files: list[Path]) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for f in files:
        shutil.copy2(f, dest / f.name)
    return dest


def _same(a: Path, b: Path) -> None:
    """Same clips, spectrograms and recordings (audio sprites differ: an append starts new ones)."""
    ca, cb = Collection.open(a), Collection.open(b)
    cols = [c for c in ca.clips().columns if c not in ("audio_sprite", "audio_offset")]
    pd.testing.assert_frame_equal(ca.clips()[cols], cb.clips()[cols])
    assert ca.spectrograms_path.read_bytes() == cb.spectrograms_path.read_bytes()
    cols = [c for c in ca.recordings().columns if c != "note"]
    pd.testing.assert_frame_equal(ca.recordings()[cols], cb.recordings()[cols])


@pytest.fixture()
def inputs(tmp_path) -> tuple[Path, list[Path]]:
    first = sorted(JUNCO_DIR.iterdir())[:2] + sorted(TIT_DIR.iterdir())[:1]
    later = sorted(JUNCO_DIR.iterdir())[2:3]
    return _copy(tmp_path / "in", first), later


def test_incremental_build_writes_only_the_new_rows(tmp_path, inputs):
    src, later = inputs
    out = tmp_path / "coll"
    build(src, out, jobs=1)
    coll = Collection.open(out)
    n0 = coll.n_clips()
    part0 = coll.clip_part_path(0)
    spec_stat, part_stat = coll.spectrograms_path.stat(), part0.stat()
    spec_head = coll.spectrograms_path.read_bytes()[128:]  # the old rows, after the header
    _copy(src, later)
    build(src, out, jobs=1)
    assert [first for first, _p in coll.clip_parts()] == [0, n0]
    assert part0.stat().st_mtime_ns == part_stat.st_mtime_ns and part0.stat().st_ino == part_stat.st_ino
    assert coll.spectrograms_path.stat().st_ino == spec_stat.st_ino  # grown in place, not rewritten
    assert coll.spectrograms_path.read_bytes()[128 : 128 + len(spec_head)] == spec_head
    assert coll.clips_path == coll.root / "clips" and coll.clips_path.is_dir()
    ref = tmp_path / "ref"
    build(src, ref, jobs=1)  # everything at once
    _same(ref, out)
    assert len(Collection.open(ref).clip_parts()) == 1


def test_single_file_clip_table_is_read_and_migrated(tmp_path, inputs):
    src, later = inputs
    out = tmp_path / "old"
    build(src, out, jobs=1)
    coll = Collection.open(out)
    before = coll.clips()
    write_legacy_clip_table(coll, before)  # the layout of collections built before clip parts
    assert coll.clips_path == coll.root / "clips.parquet" and coll.clip_parts() == []
    pd.testing.assert_frame_equal(coll.clips(), before)
    assert coll.clip_rows() == len(before)
    _copy(src, later)
    build(src, out, jobs=1)
    assert not (coll.root / "clips.parquet").exists() and len(coll.clip_parts()) == 2
    ref = tmp_path / "ref"
    build(src, ref, jobs=1)
    _same(ref, out)


def test_rows_of_a_killed_build_are_ignored_then_replaced(tmp_path, inputs):
    src, later = inputs
    out = tmp_path / "coll"
    build(src, out, jobs=1)
    coll = Collection.open(out)
    n0 = coll.n_clips()
    stray = coll.clips().iloc[:5].assign(clip_id=np.arange(n0, n0 + 5))
    write_stray_clip_part(coll, stray)  # written, but the manifest never said so
    assert len(coll.clips()) == n0
    _copy(src, later)
    build(src, out, jobs=1)
    ref = tmp_path / "ref"
    build(src, ref, jobs=1)
    _same(ref, out)


def test_npy_append_is_byte_identical_to_np_save(tmp_path):
    rng = np.random.default_rng(0)
    a = rng.integers(0, 255, (50, 4, 3), dtype=np.uint8)
    path = tmp_path / "s.npy"
    with NpyWriter(path, row_shape=(4, 3), dtype=np.uint8) as w:
        for k in range(0, 30, 7):
            w.write(a[k : min(k + 7, 30)])
    assert path.read_bytes() == _npy_bytes(a[:30])
    assert append_rows(path, [a[25:40], a[40:50]], n_keep=25) == (50, 4, 3)  # rows 25..29 redone
    assert path.read_bytes() == _npy_bytes(a)
    with pytest.raises(ValueError, match="do not fit"):
        append_rows(path, [np.zeros((1, 3, 3), np.uint8)], n_keep=50)


def test_npy_append_rewrites_a_header_without_room_once(tmp_path):
    a = np.arange(24, dtype=np.float32).reshape(6, 4)
    path = tmp_path / "tight.npy"
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (6, 4), }"
    header += " " * ((64 - (10 + len(header) + 1) % 64) % 64) + "\n"  # no spare room for more digits
    path.write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + a.tobytes())
    np.testing.assert_array_equal(np.load(path), a)
    big = np.ones((10**4, 4), np.float32)
    append_rows(path, [big], n_keep=6)
    np.testing.assert_array_equal(np.load(path), np.concatenate([a, big]))


def test_writer_leaves_nothing_when_aborted(tmp_path):
    path = tmp_path / "x.npy"
    with pytest.raises(RuntimeError):
        with NpyWriter(path, row_shape=(2,), dtype=np.int16) as w:
            w.write(np.zeros((3, 2), np.int16))
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()
