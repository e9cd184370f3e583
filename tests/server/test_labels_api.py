"""REST routes and socket events for classes: CRUD, members, undo/redo, export/import, broadcasts, restarts."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from preprocess.collection import Collection
from preprocess.testing import CollectionWriter

N_CLIPS = 40


def write_collection(root: Path) -> Collection:
    """Two recordings: a 6-s song (clips 0, 1) and a 114-s soundscape (clips 2..39, 3 s each)."""
    recordings = pd.DataFrame(
        {
            "recording_id": [0, 1],
            "path": ["song/XC1.wav", "soundscape/XC2.mp3"],
            "duration_s": [6.0, 114.0],
            "xc_id": ["XC1", "XC2"],
            "license": ["CC BY 4.0", "CC0"],
        }
    )
    rows = [(0, 0.0, 3.0), (0, 3.0, 6.0)] + [(1, 3.0 * k, 3.0 * k + 3.0) for k in range(N_CLIPS - 2)]
    clips = pd.DataFrame(rows, columns=["recording_id", "start_s", "end_s"])
    clips.insert(0, "clip_id", np.arange(len(clips)))
    clips["fmin_hz"], clips["fmax_hz"] = 0.0, 16000.0
    w = CollectionWriter(root)
    w.recordings(recordings)
    w.clips(clips)
    config = {"sample_rate": 32000, "fmin": 0.0, "fmax": 16000.0}
    return w.manifest(config=config, counts={"clips": N_CLIPS})


def make_app(root: Path):
    """The real app (server.app.create_app), without the numba warm-up."""
    from server.app import create_app
    from server.settings import Settings

    return create_app(Settings(collections_dir=root, warmup=False))


@pytest.fixture
def root(tmp_path):
    write_collection(tmp_path / "birds")
    write_collection(tmp_path / "bats")
    return tmp_path


@pytest.fixture
def server(root):
    app, socketio = make_app(root)
    return app, socketio, app.test_client()


API = "/api/collections/birds"


def _create(client, name, **extra):
    r = client.post(f"{API}/classes", json={"name": name, **extra})
    assert r.status_code == 201, r.get_json()
    return r.get_json()["class_id"]


def test_crud_members_and_state(server):
    _app, _sio, client = server
    song = _create(client, "Song", color="#ff0000", note="dawn")
    r = client.post(
        f"{API}/classes/{song}/members",
        json={
            "clip_ids": [1, 2, 3],
            "source": {"kind": "cluster", "cluster_id": 4, "params": {"algorithm": "hdbscan"}},
        },
    )
    assert r.get_json()["n"] == 3
    r = client.patch(f"{API}/classes/{song}", json={"name": "Full song"})
    assert r.get_json()["class"]["name"] == "Full song"
    client.delete(f"{API}/classes/{song}/members", json={"clip_ids": [2]})
    body = client.get(f"{API}/classes").get_json()
    assert body["ok"] and body["can_undo"] and not body["can_redo"]
    assert body["classes"][0] | {"created": None} == {
        "id": song,
        "name": "Full song",
        "color": "#ff0000",
        "note": "dawn",
        "size": 2,
        "created": None,
    }
    assert body["members"] == {str(song): [1, 3]}
    assert client.post(f"{API}/labels/undo").get_json()["can_redo"] is True
    assert client.get(f"{API}/classes").get_json()["members"] == {str(song): [1, 2, 3]}
    client.post(f"{API}/labels/redo")
    assert client.delete(f"{API}/classes/{song}").get_json()["n"] == 2
    assert client.get(f"{API}/classes").get_json()["classes"] == []


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "message"),
    [
        ("post", "/classes", {"name": "a,b"}, 400, "comma"),
        ("post", "/classes", {"name": "Song"}, 400, "already exists"),
        ("post", "/classes", {"nam": "x"}, 400, "unknown field"),
        ("post", "/classes", None, 400, "JSON object"),
        ("patch", "/classes/999", {"name": "x"}, 404, "no class with id 999"),
        ("post", "/classes/{song}/members", {"clip_ids": [0, 40]}, 400, "not in the collection"),
        ("post", "/classes/{song}/members", {}, 400, "clip_ids"),
        ("post", "/classes/{song}/members", {"clip_ids": [1], "source": {"kind": "x"}}, 400, "source.kind"),
        ("get", "/export?format=xlsx", None, 400, "allowed: csv"),
        ("post", "/labels/redo", None, 400, "nothing to redo"),
    ],
)
def test_errors_have_the_json_shape_and_write_nothing(server, method, path, body, status, message):
    _app, _sio, client = server
    song = _create(client, "Song")
    before = client.get(f"{API}/classes").get_json()
    kwargs = {"json": body} if body is not None else {}
    r = getattr(client, method)(API + path.format(song=song), **kwargs)
    err = r.get_json()
    assert r.status_code == status and err["ok"] is False and err["status"] == status and message in err["error"]
    assert client.get(f"{API}/classes").get_json() == before


def test_unknown_collection_is_404(server):
    _app, _sio, client = server
    r = client.get("/api/collections/nope/classes")
    assert r.status_code == 404 and r.get_json()["ok"] is False


def test_two_tabs_agree_through_broadcasts(server):
    app, socketio, client = server
    tab1 = socketio.test_client(app)
    tab2 = socketio.test_client(app)
    other = socketio.test_client(app)
    assert tab1.emit("join", {"collection": "birds"}, callback=True)["ok"]
    assert tab2.emit("join", {"collection": "birds"}, callback=True)["ok"]
    assert other.emit("join", {"collection": "bats"}, callback=True)["ok"]
    assert tab1.emit("join", {"collection": "nope"}, callback=True)["ok"] is False
    for c in (tab1, tab2, other):
        c.get_received()
    song = _create(client, "Song")
    client.post(f"{API}/classes/{song}/members", json={"clip_ids": [5, 6], "source": {"kind": "lasso"}})
    client.post(f"{API}/labels/undo")
    for tab in (tab1, tab2):
        events = [e for e in tab.get_received() if e["name"] == "labels:changed"]
        changes = [e["args"][0] for e in events]
        assert [c["change"]["kind"] for c in changes] == ["create", "add", "undo"]
        assert all(c["collection"] == "birds" for c in changes)
        assert [c["version"] for c in changes] == [1, 2, 3]
        assert changes[1]["change"]["clip_ids"] == [5, 6]
    assert [e for e in other.get_received() if e["name"] == "labels:changed"] == []


def test_concurrent_changes_from_two_clients(server):
    """Two HTTP clients adding to the same class from threads: every change lands, versions are distinct."""
    import threading

    app, _sio, client = server
    song = _create(client, "Song")
    versions, errors = [], []

    def work(clips):
        c = app.test_client()
        for clip in clips:
            r = c.post(f"{API}/classes/{song}/members", json={"clip_ids": [clip]})
            (versions if r.status_code == 200 else errors).append(r.get_json().get("version", r.get_json()))

    threads = [
        threading.Thread(target=work, args=(range(0, 20),)),
        threading.Thread(target=work, args=(range(10, 30),)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(set(versions)) == 40
    assert client.get(f"{API}/classes").get_json()["members"] == {str(song): list(range(30))}


def test_classes_survive_a_server_restart(root):
    app, _sio = make_app(root)
    client = app.test_client()
    song = _create(client, "Song")
    client.post(f"{API}/classes/{song}/members", json={"clip_ids": [7, 8]})
    del app, client
    app2, _sio2 = make_app(root)  # a new process would open the same labels.sqlite
    client2 = app2.test_client()
    body = client2.get(f"{API}/classes").get_json()
    assert [c["name"] for c in body["classes"]] == ["Song"] and body["members"] == {str(song): [7, 8]}
    assert body["can_undo"]
    client2.post(f"{API}/labels/undo")  # the undo log is persistent too
    assert client2.get(f"{API}/classes").get_json()["members"] == {str(song): []}


def test_export_downloads_and_import_upload(server):
    _app, _sio, client = server
    song = _create(client, "Song")
    client.post(f"{API}/classes/{song}/members", json={"clip_ids": [0, 10, 20]})
    r = client.get(f"{API}/export?format=csv&labelled_only=1")
    assert r.status_code == 200 and r.headers["Content-Disposition"].startswith("attachment")
    assert "birds_labels.csv" in r.headers["Content-Disposition"]
    table = pd.read_csv(io.BytesIO(r.data))
    assert table["clip_id"].tolist() == [0, 10, 20] and table["Song"].dtype == np.int64
    r = client.get(f"{API}/export?format=raven")
    assert "birds_raven.zip" in r.headers["Content-Disposition"]
    with zipfile.ZipFile(io.BytesIO(r.data)) as zf:
        scape = pd.read_csv(io.BytesIO(zf.read("soundscape/XC2.Table.1.selections.txt")), sep="\t")
    assert scape[["Begin Time (s)", "End Time (s)"]].values.tolist() == [[24.0, 27.0], [54.0, 57.0]]
    for fmt in ("audacity", "json"):
        assert client.get(f"{API}/export?format={fmt}").status_code == 200
    # import into the other collection: one unmatched row is reported
    csv_bytes = b"clip_id,label\n0,Song\n3,Call\n400,Call\n"
    r = client.post("/api/collections/bats/import", data={"file": (io.BytesIO(csv_bytes), "mine.csv")})
    body = r.get_json()
    assert r.status_code == 200 and body["ok"] and body["added"] == 2 and body["classes_created"] == ["Song", "Call"]
    assert [u["row"] for u in body["unmatched_rows"]] == [4]
    r = client.post("/api/collections/bats/import", data={"file": (io.BytesIO(b"a;b\n1;2\n"), "bad.csv")})
    assert r.status_code == 400 and "clip_id" in r.get_json()["error"]
    r = client.post("/api/collections/bats/import", data={})
    assert r.status_code == 400 and "'file'" in r.get_json()["error"]
