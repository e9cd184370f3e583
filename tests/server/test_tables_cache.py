"""server.tables: clips.bin built column by column equals the row-by-row form, and its disk cache follows the tables."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from preprocess.testing import CollectionWriter, clip_table
from server import tables


def _collection(root, n=40, *, species=True):
    w = CollectionWriter(root)
    rows = [
        {"path": f"r{i}.wav", "duration_s": 30.0, "label": lab, "species": sp, "xc_id": xc, "country": c}
        for i, (lab, sp, xc, c) in enumerate(
            [("Turdus merula", "Turdus merula", "12", "FR"), (None, "Parus major", None, " "), ("", "", "7", "DE")]
        )
    ]
    w.recordings(rows)
    rid = np.arange(n) % 4  # recording 3 does not exist: its clips get missing metadata
    w.clips(clip_table(n, recording_id=rid, audio_length=66150))
    if species:
        names = np.array(["Erithacus rubecula", "Parus major", "", None] * (n // 4), dtype=object)
        w.species("birdnet", pd.DataFrame({"clip_id": np.arange(n), "species_1": names,
                                            "score_1": np.linspace(0, 1, n)}))  # fmt: skip
    return w.manifest(config={"clip_s": 3.0})


def _files(c):
    return [c.clips_path, c.recordings_path, tables.species_path(c)]


@pytest.mark.parametrize("species", [True, False])
def test_vectorised_binary_equals_row_by_row(tmp_path, species):
    c = _collection(tmp_path / "c", species=species)
    assert tables.build_binary(c) == tables.to_binary(tables.clip_table(c))
    decoded = tables.read_binary(tables.build_binary(c))
    assert decoded["species"][:4] == ["Turdus merula", "Parus major", None, None]
    assert decoded["xc_id"][:4] == ["12", None, "7", None]


def test_disk_cache_is_reused_and_follows_the_tables(tmp_path, monkeypatch):
    c = _collection(tmp_path / "c")
    first = tables.clips_binary(c, _files(c))
    cached = list((c.root / "derived").glob("clips.bin-*"))
    assert len(cached) == 1 and cached[0].read_bytes() == first
    calls = []
    real = tables.build_binary
    monkeypatch.setattr(tables, "build_binary", lambda coll: (calls.append(1), real(coll))[1])
    assert tables.clips_binary(c, _files(c)) == first and calls == []  # served from disk
    # the recording table changes: the cache is rebuilt and the old file goes
    rec = c.recordings()
    rec.loc[0, "label"] = "Sylvia atricapilla"
    CollectionWriter(c.root).recordings(rec.to_dict("records"))
    st = c.recordings_path.stat()
    os.utime(c.recordings_path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # even within one mtime tick
    second = tables.clips_binary(c, _files(c))
    assert calls == [1] and second != first
    assert tables.read_binary(second)["label"][0] == "Sylvia atricapilla"
    assert [p.read_bytes() for p in (c.root / "derived").glob("clips.bin-*")] == [second]


def test_route_serves_the_cached_table(tmp_path):
    from server.app import create_app
    from server.settings import Settings

    c = _collection(tmp_path / "cols" / "c")
    app, _ = create_app(Settings(collections_dir=tmp_path / "cols", warmup=False))
    body = app.test_client().get("/api/collections/c/clips.bin").data
    assert body == tables.to_binary(tables.clip_table(c))
    assert list((c.root / "derived").glob("clips.bin-*"))


def test_the_warm_up_builds_every_collections_clip_table_before_the_first_request(tmp_path, monkeypatch):
    import server.app as server_app
    from server.app import create_app
    from server.settings import Settings

    _collection(tmp_path / "one")
    _collection(tmp_path / "two", n=8)
    monkeypatch.setattr(server_app, "default_steps", lambda **kw: [])  # only the clip-table step, no numba compiles
    built = []
    real = tables.build_binary
    monkeypatch.setattr(tables, "build_binary", lambda c: built.append(c.root.name) or real(c))
    app, socketio = create_app(Settings(collections_dir=tmp_path, warmup=True, auth=False))
    w = app.extensions["sonomap"]["warmup"]
    assert [s.name for s in w.steps] == ["clip tables"]
    w.wait_for("clip tables")
    assert sorted(built) == ["one", "two"]
    assert all(list((tmp_path / n / "derived").glob("clips.bin-*")) for n in ("one", "two"))
    body = app.test_client().get("/api/collections/one/clips.bin").data
    assert sorted(built) == ["one", "two"]  # served from the warm-up's build
    assert tables.read_binary(body)["xc_id"][:1] == ["12"]
