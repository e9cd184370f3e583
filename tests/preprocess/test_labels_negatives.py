"""Negatives in the label store ("this clip is not X"), their undo/redo, and the schema 1 -> 2 migration."""

from __future__ import annotations

import json
import sqlite3

import pytest

from preprocess.errors import ParameterError
from preprocess.labels import SCHEMA_VERSION, LabelStore

N_CLIPS = 50

#: The schema of label stores written before negatives existed (schema 1), copied verbatim.
SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS classes(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE COLLATE NOCASE,
    color TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sources(
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    source_json TEXT NOT NULL,
    who TEXT NOT NULL,
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS memberships(
    class_id INTEGER NOT NULL REFERENCES classes(id),
    clip_id INTEGER NOT NULL,
    source_id INTEGER NOT NULL REFERENCES sources(id),
    PRIMARY KEY(class_id, clip_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS memberships_clip ON memberships(clip_id);
CREATE TABLE IF NOT EXISTS changes(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    summary_json TEXT NOT NULL,
    undo_json TEXT NOT NULL,
    redo_json TEXT NOT NULL,
    who TEXT NOT NULL,
    created TEXT NOT NULL,
    undone INTEGER NOT NULL DEFAULT 0
);
"""


@pytest.fixture
def store(tmp_path):
    with LabelStore(tmp_path / "labels.sqlite", n_clips=N_CLIPS) as s:
        yield s


def _view(store):
    return (
        {k: v.tolist() for k, v in store.members().items()},
        {k: v.tolist() for k, v in store.negatives().items()},
    )


def test_negative_removes_member_and_member_clears_negative(store):
    song = store.create_class("Song")["class_id"]
    call = store.create_class("Call")["class_id"]
    store.add_members(song, [1, 2, 3])
    store.add_members(call, [3])
    change = store.add_negatives(song, [3, 4], source={"kind": "review"}, who="ana")
    assert change["kind"] == "negate" and change["n"] == 2 and change["removed"] == 1
    members, negatives = _view(store)
    assert members == {song: [1, 2], call: [3]}  # the other class keeps clip 3
    assert negatives == {song: [3, 4], call: []}
    store.add_members(song, [4, 5])
    members, negatives = _view(store)
    assert members[song] == [1, 2, 4, 5] and negatives[song] == [3]
    # provenance like memberships
    src = store.negative_sources(song)
    assert [(s["kind"], s["who"], s["n_clips"]) for s in src] == [("review", "ana", 1)]


def test_undo_redo_cover_negatives(store):
    song = store.create_class("Song")["class_id"]
    store.add_members(song, [1, 2, 3])
    before = _view(store)
    store.add_negatives(song, [2, 9])
    after_neg = _view(store)
    store.add_members(song, [9])
    after_add = _view(store)
    store.undo()
    assert _view(store) == after_neg
    store.undo()
    assert _view(store) == before
    store.redo()
    assert _view(store) == after_neg
    store.redo()
    assert _view(store) == after_add
    store.remove_negatives(song, [2])
    assert store.negatives()[song].tolist() == []
    store.undo()
    assert store.negatives()[song].tolist() == [2]


def test_delete_class_undo_restores_negatives(store):
    song = store.create_class("Song")["class_id"]
    store.add_members(song, [1])
    store.add_negatives(song, [5, 6])
    store.delete_class(song)
    assert song not in store.negatives()
    store.undo()
    assert _view(store) == ({song: [1]}, {song: [5, 6]})


def test_accept_above_is_one_change_with_provenance(store):
    song = store.create_class("Song")["class_id"]
    store.add_negatives(song, [7])
    store.accept_above(song, [7, 8, 9], threshold=0.8, model_round=3, who="ana")
    assert _view(store) == ({song: [7, 8, 9]}, {song: []})
    (src,) = store.sources(song)
    assert src["kind"] == "accept-above" and src["threshold"] == 0.8 and src["round"] == 3 and src["class_id"] == song
    store.undo()
    assert _view(store) == ({song: []}, {song: [7]})
    with pytest.raises(ParameterError, match="threshold"):
        store.accept_above(song, [1], threshold=1.5, model_round=0)


def test_schema_1_store_is_migrated_without_loss(tmp_path):
    path = tmp_path / "labels.sqlite"
    con = sqlite3.connect(path)
    con.executescript(SCHEMA_V1)
    now = "2026-01-01T00:00:00.000+00:00"
    con.execute("INSERT INTO meta VALUES ('schema_version', '1'), ('version', '7')")
    con.execute("INSERT INTO classes(name, color, note, created) VALUES ('Song', '#e69f00', 'n', ?)", (now,))
    con.execute("INSERT INTO classes(name, color, note, created) VALUES ('Call', '#56b4e9', '', ?)", (now,))
    src = {"kind": "cluster", "cluster_id": 4, "params": {"k": 1}}
    con.execute("INSERT INTO sources(id, kind, source_json, who, created) VALUES (1, 'cluster', ?, 'ana', ?)",
                (json.dumps(src), now))  # fmt: skip
    con.executemany("INSERT INTO memberships VALUES (?, ?, 1)", [(1, 3), (1, 4), (2, 4)])
    undo, redo = [["delete_members", 2, [4]]], [["insert_members", 2, 1, [4]]]
    con.execute(
        "INSERT INTO changes(kind, summary_json, undo_json, redo_json, who, created) VALUES ('add', '{}', ?, ?, '', ?)",
        (json.dumps(undo), json.dumps(redo), now),
    )
    con.commit()
    con.close()

    with LabelStore(path, n_clips=N_CLIPS) as store:
        assert store._conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(
            SCHEMA_VERSION
        )
        assert [(c["name"], c["note"], c["size"]) for c in store.classes()] == [("Song", "n", 2), ("Call", "", 1)]
        assert _view(store) == ({1: [3, 4], 2: [4]}, {1: [], 2: []})
        assert store.sources(1)[0]["cluster_id"] == 4 and store.sources(1)[0]["who"] == "ana"
        assert store.version == 7
        store.add_negatives(1, [4])  # the new table works
        assert _view(store) == ({1: [3], 2: [4]}, {1: [4], 2: []})
        store.undo()
        store.undo()  # the pre-migration change is still undoable
        assert _view(store) == ({1: [3, 4], 2: []}, {1: [], 2: []})
    with LabelStore(path, n_clips=N_CLIPS) as store:  # reopening a migrated store changes nothing
        assert _view(store) == ({1: [3, 4], 2: []}, {1: [], 2: []})
        assert store.integrity_check() == "ok"
