"""The label store: classes, multi-label memberships, provenance, validation, undo/redo, persistence."""

from __future__ import annotations

import sqlite3
import threading

import numpy as np
import pytest

from preprocess import labels as labels_mod
from preprocess.errors import CollectionError, NotFoundError, ParameterError
from preprocess.labels import LabelStore

N_CLIPS = 100


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "labels.sqlite"


@pytest.fixture
def store(db_path):
    with LabelStore(db_path, n_clips=N_CLIPS) as s:
        yield s


def _snapshot(store):
    state = store.state()
    return (
        [(c["id"], c["name"], c["color"], c["note"], c["size"]) for c in state["classes"]],
        {k: v.tolist() for k, v in state["members"].items()},
    )


def test_wal_and_full_sync(store, db_path):
    assert store._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_create_add_multilabel_and_sizes(store):
    song = store.create_class("Song", note="full songs")["class_id"]
    call = store.create_class("Call", color="#0F0")["class_id"]
    store.add_members(song, [1, 2, 3], source={"kind": "lasso"})
    store.add_members(call, [3, 4])
    state = store.state()
    assert [c["name"] for c in state["classes"]] == ["Song", "Call"]
    assert state["classes"][1]["color"] == "#00ff00"
    assert state["classes"][0]["note"] == "full songs"
    assert state["members"][song].tolist() == [1, 2, 3]
    assert state["members"][call].tolist() == [3, 4]  # clip 3 is in both: multi-label
    assert [c["size"] for c in state["classes"]] == [3, 2]


def test_cluster_source_keeps_parameters_who_and_when(store):
    cid = store.create_class("Trill")["class_id"]
    params = {"features": "birdnet", "dims": 8, "algorithm": "hdbscan", "params": {"min_cluster_size": 10}}
    store.add_members(cid, [5, 6], source={"kind": "cluster", "cluster_id": 7, "params": params}, who="ana")
    store.add_members(cid, [6, 7], source={"kind": "clip"}, who="ben")  # 6 keeps its first source
    sources = store.sources(cid)
    assert [(s["kind"], s["n_clips"], s["who"]) for s in sources] == [("cluster", 2, "ana"), ("clip", 1, "ben")]
    assert sources[0]["cluster_id"] == 7 and sources[0]["params"] == params and sources[0]["created"]


def test_undo_redo_every_kind_of_change(store):
    states = [_snapshot(store)]
    a = store.create_class("A")["class_id"]
    states.append(_snapshot(store))
    store.add_members(a, [1, 2, 3, 4])
    states.append(_snapshot(store))
    store.update_class(a, name="Alpha", color="#123456", note="n")
    states.append(_snapshot(store))
    store.remove_members(a, [2, 3, 99])
    states.append(_snapshot(store))
    store.delete_class(a)
    states.append(_snapshot(store))
    store.assign({"Alpha": [5], "Beta": [1, 2], "Empty": []})
    states.append(_snapshot(store))
    for expected in reversed(states[:-1]):
        store.undo()
        assert _snapshot(store) == expected
    with pytest.raises(ParameterError, match="nothing to undo"):
        store.undo()
    for expected in states[1:]:
        store.redo()
        assert _snapshot(store) == expected
    with pytest.raises(ParameterError, match="nothing to redo"):
        store.redo()


def test_new_change_discards_redo(store):
    a = store.create_class("A")["class_id"]
    store.add_members(a, [1])
    store.undo()
    assert store.state()["can_redo"]
    change = store.add_members(a, [2])
    assert change["can_redo"] is False
    with pytest.raises(ParameterError, match="nothing to redo"):
        store.redo()


def test_undo_history_is_bounded(store, monkeypatch):
    monkeypatch.setattr(labels_mod, "MAX_UNDO", 3)
    a = store.create_class("A")["class_id"]
    for clip in range(6):
        store.add_members(a, [clip])
    for _ in range(3):
        store.undo()
    with pytest.raises(ParameterError, match="nothing to undo"):
        store.undo()
    assert store.members()[a].tolist() == [0, 1, 2]


def test_store_and_undo_log_survive_reopen(db_path):
    with LabelStore(db_path, n_clips=N_CLIPS) as s:
        a = s.create_class("Song")["class_id"]
        s.add_members(a, [10, 11])
        version = s.version
    with LabelStore(db_path, n_clips=N_CLIPS) as s:
        assert s.version == version
        assert s.members()[a].tolist() == [10, 11]
        s.undo()
        assert s.members()[a].tolist() == []
    with LabelStore(db_path, n_clips=N_CLIPS) as s:
        s.redo()
        assert s.members()[a].tolist() == [10, 11]


def test_class_ids_are_never_reused(store):
    a = store.create_class("A")["class_id"]
    store.delete_class(a)
    b = store.create_class("B")["class_id"]
    assert b != a


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "empty"),
        ("  Song", "leading or trailing spaces"),
        ("Song ", "leading or trailing spaces"),
        ("song, call", "comma"),
        ('the "call"', "double quote"),
        ("two\nlines", "line break"),
        ("tab\there", "control characters"),
        ("clip_id", "fixed column"),
        ("Start_S", "fixed column"),
        ("label", "fixed column"),
        ("=SUM(A1)", "formula"),
        ("x" * 81, "at most 80"),
        (3, "must be a string"),
    ],
)
def test_bad_class_names_are_refused_and_nothing_written(store, name, message):
    before = (store.version, _snapshot(store))
    with pytest.raises(ParameterError, match=message):
        store.create_class(name)
    assert (store.version, _snapshot(store)) == before


def test_apostrophes_and_unicode_are_fine(store):
    store.create_class("Townsend's Warbler song")
    store.create_class("Mésange charbonnière")
    assert len(store.classes()) == 2


def test_duplicate_names_case_insensitive(store):
    a = store.create_class("Song")["class_id"]
    b = store.create_class("Call")["class_id"]
    with pytest.raises(ParameterError, match="already exists"):
        store.create_class("song")
    with pytest.raises(ParameterError, match="already exists"):
        store.update_class(b, name="SONG")
    store.update_class(a, name="SONG")  # its own name in another case is fine
    assert [c["name"] for c in store.classes()] == ["SONG", "Call"]


@pytest.mark.parametrize(
    ("clip_ids", "message"),
    [
        ([1, 100], "not in the collection .*100 clips.*: 100"),
        ([-1], "not in the collection"),
        ([], "empty"),
        ([1.5], "integers"),
        (["3"], "integers"),
        ([True], "integers"),
        ("1,2", "list of integers"),
    ],
)
def test_bad_clip_ids_are_refused_and_nothing_written(store, clip_ids, message):
    a = store.create_class("A")["class_id"]
    store.add_members(a, [1])
    before = (store.version, _snapshot(store))
    with pytest.raises(ParameterError, match=message):
        store.add_members(a, clip_ids)
    with pytest.raises(ParameterError, match=message):
        store.remove_members(a, clip_ids)
    assert (store.version, _snapshot(store)) == before


@pytest.mark.parametrize(
    "source",
    [
        {"kind": "magic"},
        {"kind": "cluster"},
        {"kind": "cluster", "cluster_id": "3"},
        {"kind": "lasso", "params": 5},
        "x",
    ],
)
def test_bad_sources_are_refused(store, source):
    a = store.create_class("A")["class_id"]
    with pytest.raises(ParameterError, match="source"):
        store.add_members(a, [1], source=source)
    assert store.members()[a].size == 0


def test_unknown_class_and_bad_updates(store):
    with pytest.raises(NotFoundError, match="no class with id 42"):
        store.add_members(42, [1])
    with pytest.raises(NotFoundError):
        store.delete_class(42)
    a = store.create_class("A")["class_id"]
    with pytest.raises(ParameterError, match="nothing to change"):
        store.update_class(a)
    with pytest.raises(ParameterError, match="colour"):
        store.update_class(a, color="red")


def test_assign_is_all_or_nothing(store):
    before = (store.version, _snapshot(store))
    with pytest.raises(ParameterError, match="not in the collection"):
        store.assign({"New": [1, 2], "Other": [500]})
    with pytest.raises(ParameterError, match="comma"):
        store.assign({"New": [1], "a,b": [2]})
    assert (store.version, _snapshot(store)) == before


def test_large_pool_add_and_undo(tmp_path):
    n = 100_000
    with LabelStore(tmp_path / "big.sqlite", n_clips=n) as s:
        a = s.create_class("Big")["class_id"]
        change = s.add_members(a, np.arange(0, n, 2), source={"kind": "lasso"})
        assert change["n"] == n // 2 and "clip_ids" not in change  # large changes do not list their clips
        s.remove_members(a, np.arange(0, 1000))
        assert s.classes()[0]["size"] == n // 2 - 500
        s.undo()
        s.undo()
        assert s.members()[a].size == 0


def test_two_writers_concurrently(db_path):
    """Two connections (like two server threads or a CLI import beside the server) writing at once."""
    with LabelStore(db_path, n_clips=N_CLIPS) as s:
        ids = [s.create_class(name)["class_id"] for name in ("A", "B")]
    errors = []

    def work(class_id, clips):
        try:
            with LabelStore(db_path, n_clips=N_CLIPS) as mine:
                for c in clips:
                    mine.add_members(class_id, [c], who=f"writer{class_id}")
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [
        threading.Thread(target=work, args=(ids[0], range(0, 40))),
        threading.Thread(target=work, args=(ids[1], range(20, 60))),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with LabelStore(db_path, n_clips=N_CLIPS) as s:
        members = s.members()
        assert members[ids[0]].tolist() == list(range(0, 40))
        assert members[ids[1]].tolist() == list(range(20, 60))
        assert s.version == 2 + 80
        assert s.integrity_check() == "ok"


def test_database_schema_is_plain_sqlite(store, db_path):
    """Other tools (sqlite3 CLI, pandas) can read the store."""
    a = store.create_class("A")["class_id"]
    store.add_members(a, [3])
    con = sqlite3.connect(db_path)
    try:
        assert con.execute(
            "SELECT c.name, m.clip_id FROM memberships m JOIN classes c ON c.id = m.class_id"
        ).fetchall() == [("A", 3)]
    finally:
        con.close()


def test_a_file_that_is_not_a_label_store_is_refused_untouched(db_path):
    db_path.write_bytes(b"these are my field notes, not a database" * 100)
    with pytest.raises(CollectionError, match="cannot open the label store"):
        LabelStore(db_path, n_clips=N_CLIPS)
    assert db_path.read_bytes().startswith(b"these are my field notes")


def test_a_store_from_a_newer_sonomap_is_refused(db_path):
    LabelStore(db_path, n_clips=N_CLIPS).close()
    con = sqlite3.connect(db_path)
    con.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    con.commit()
    con.close()
    with pytest.raises(CollectionError, match="newer than this sonomap"):
        LabelStore(db_path, n_clips=N_CLIPS)
