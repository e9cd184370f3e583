"""Uploads from the browser: chunked resumable REST, the ``preprocess`` socket job, and every kind of bad input.

Fast tests use an empty collections folder; the slow ones build a small real collection (demo recordings,
BirdNET features, a map) once per module and upload real xeno-canto MP3s into it in chunks.
"""

from __future__ import annotations

import io
import shutil
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from preprocess.collection import Collection
from preprocess.uploads import UploadError, UploadLimits, UploadStore, extract_zip, safe_file_name, safe_relative_path

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "demo" / "recordings"
JUNCO = DEMO / "Junco hyemalis_Dark-eyed Junco"
PHOEBE = DEMO / "Sayornis nigricans_Black Phoebe"
SPARROW = DEMO / "Passer domesticus_House Sparrow"
CHUNK = 64 * 1024


def _app(root: Path, **settings):
    from server.app import create_app
    from server.settings import Settings

    return create_app(Settings(collections_dir=root, warmup=False, **settings))


def _upload(client, path_or_bytes, name=None, *, chunk=CHUNK):
    """Upload in chunks through the REST protocol; returns the final upload dict."""
    data = Path(path_or_bytes).read_bytes() if not isinstance(path_or_bytes, bytes) else path_or_bytes
    name = name or Path(path_or_bytes).name
    r = client.post("/api/uploads", json={"file_name": name, "size_bytes": len(data)})
    assert r.status_code == 201, r.get_json()
    up = r.get_json()["upload"]
    for off in range(0, len(data), chunk):
        r = client.put(f"/api/uploads/{up['upload_id']}?offset={off}", data=data[off : off + chunk])
        assert r.status_code == 200, r.get_json()
        up = r.get_json()["upload"]
    return up


def _events(got, name):
    return [e["args"][0] for e in got if e["name"] == name]


def _wait(sc, job_id, timeout_s=300.0):
    got, deadline = [], time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for ev in sc.get_received():
            got.append(ev)
            if ev["name"] in ("job:result", "job:error", "job:cancelled") and ev["args"][0].get("job_id") == job_id:
                return got
        time.sleep(0.02)
    raise AssertionError(f"no end of job {job_id}; got {[e['name'] for e in got]}")


def _files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


# ---------------------------------------------------------------------------------------------
# names and zips (core)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("XC123456 - Dark-eyed Junco.mp3", "XC123456 - Dark-eyed Junco.mp3"),
        ("../../etc/passwd.mp3", "passwd.mp3"),
        ("C:\\Users\\me\\song.wav", "song.wav"),
        ("..hidden.wav", "hidden.wav"),
        ("Townsend's Warbler.flac", "Townsend's Warbler.flac"),
        ("me\u0301sange charbonnie\u0300re.wav", "m\u00e9sange charbonni\u00e8re.wav"),
        ('a<b>c:"d|e?f*g.mp3', "a_b_c__d_e_f_g.mp3"),
        ("tab\there\nnewline.mp3", "tab_here_newline.mp3"),
        ("CON.wav", "_CON.wav"),
    ],
)
def test_safe_file_name(name, expected):
    out = safe_file_name(name)
    assert out == expected
    assert "/" not in out and "\\" not in out and not out.startswith(".")


def test_safe_file_name_refuses_nothing_left_and_shortens():
    with pytest.raises(UploadError, match="no usable characters"):
        safe_file_name("../..")
    long = safe_file_name("x" * 500 + ".flac", max_chars=60)
    assert len(long) <= 60 and long.endswith(".flac")


def test_zip_member_paths():
    assert str(safe_relative_path("Parus major_Great Tit/a.wav")) == "Parus major_Great Tit/a.wav"
    for bad in ("../evil.wav", "a/../../evil.wav", "/etc/evil.wav", "C:/evil.wav", "..\\evil.wav"):
        with pytest.raises(UploadError, match="absolute|climbs out"):
            safe_relative_path(bad)


def _zip_bytes(members: dict[str, bytes], *, symlink: str | None = None, level=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=level) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (0o120777 << 16) | 0
            zf.writestr(info, "/etc/passwd")
    return buf.getvalue()


def test_extract_zip_refuses_attacks(tmp_path):
    wav = (JUNCO / "XC137480.mp3").read_bytes()
    lim = UploadLimits(max_zip_ratio=50)
    cases = {
        "climb": (_zip_bytes({"ok.mp3": wav, "../../escaped.mp3": wav}), "climbs out"),
        "absolute": (_zip_bytes({"/tmp/abs.mp3": wav}), "absolute"),
        "symlink": (_zip_bytes({"ok.mp3": wav}, symlink="link.mp3"), "symbolic link"),
        "bomb": (_zip_bytes({"bomb.wav": b"RIFF" + b"\0" * (60 * 1024**2)}), "zip bomb"),
    }
    for label, (data, match) in cases.items():
        z = tmp_path / f"{label}.zip"
        z.write_bytes(data)
        dest = tmp_path / f"out_{label}"
        with pytest.raises(UploadError, match=match):
            extract_zip(z, dest, limits=lim)
        assert not dest.exists(), label
    assert not (tmp_path.parent / "escaped.mp3").exists() and not Path("/tmp/abs.mp3").exists()


def test_extract_zip_lying_sizes_stopped_while_extracting(tmp_path):
    """A member whose real size exceeds the caps is stopped on the real bytes, not the declared ones."""
    z = tmp_path / "big.zip"
    z.write_bytes(_zip_bytes({"a.wav": b"RIFF" + b"\0" * (5 * 1024**2)}))
    with pytest.raises(UploadError, match="zip bomb|unpack"):
        extract_zip(z, tmp_path / "out", limits=UploadLimits(max_zip_total_bytes=1024**2, max_zip_ratio=1e9))
    assert not (tmp_path / "out").exists()


def test_extract_zip_keeps_folders_and_skips_junk(tmp_path):
    mp3 = (JUNCO / "XC137480.mp3").read_bytes()
    data = _zip_bytes(
        {
            "Junco hyemalis_Dark-eyed Junco/XC137480.mp3": mp3,
            "__MACOSX/._XC137480.mp3": b"junk",
            "readme.txt": b"hello",
            "labels.csv": b"path,label\nXC137480.mp3,Junco\n",
            "fake.mp3": b"this is not audio at all",
        },
        level=zipfile.ZIP_STORED,
    )
    z = tmp_path / "in.zip"
    z.write_bytes(data)
    files, refused = extract_zip(z, tmp_path / "out", limits=UploadLimits())
    got = {str(rel): kind for rel, _p, kind in files}
    assert got == {"Junco hyemalis_Dark-eyed Junco/XC137480.mp3": "audio", "labels.csv": "metadata"}
    reasons = dict(refused)
    assert "not an audio" in reasons["readme.txt"] and "not audio" in reasons["fake.mp3"]


def test_store_resume_and_stale_cleanup(tmp_path):
    store = UploadStore(tmp_path, UploadLimits(stale_after_s=60))
    data = (JUNCO / "XC137480.mp3").read_bytes()
    up = store.create("x.mp3", len(data))
    store.write_chunk(up.upload_id, 0, data[:1000], 1000)
    # a client that went away mid-chunk: fewer bytes arrive than announced; nothing of it is kept
    with pytest.raises(UploadError, match="incomplete.*resume at 1000"):
        store.write_chunk(up.upload_id, 1000, io.BytesIO(data[1000:1500]), 5000)
    assert store.status(up.upload_id).received == 1000
    with pytest.raises(UploadError, match="resume at 1000"):
        store.write_chunk(up.upload_id, 2000, data[2000:3000], 1000)
    up = store.write_chunk(up.upload_id, 1000, data[1000:], len(data) - 1000)
    assert up.complete and (tmp_path / ".uploads" / up.upload_id / "data").read_bytes() == data
    half = store.create("y.mp3", len(data))
    store.write_chunk(half.upload_id, 0, data[:500], 500)
    assert store.cleanup_stale(now=time.time() + 3600) and not (tmp_path / ".uploads" / half.upload_id).exists()


# ---------------------------------------------------------------------------------------------
# REST and socket: bad input (fast, no collection needed)


@pytest.fixture
def empty_app(tmp_path):
    root = tmp_path / "collections"
    root.mkdir()
    (tmp_path / "outside.txt").write_text("keep")
    app, socketio = _app(root, max_upload_mb=1)
    return root, app, socketio


def test_over_limit_and_bad_requests(empty_app):
    root, app, _ = empty_app
    c = app.test_client()
    r = c.post("/api/uploads", json={"file_name": "long.wav", "size_bytes": 5 * 1024**2})
    assert r.status_code == 413 and r.get_json()["ok"] is False and "limit is 1.0 MB" in r.get_json()["error"]
    assert c.get("/api/uploads/limits").get_json()["limits"]["max_file_bytes"] == 1024**2
    assert c.post("/api/uploads", json={"file_name": "a.wav", "size_bytes": 0}).status_code == 400
    assert c.post("/api/uploads", data="nope").status_code == 400
    assert c.get("/api/uploads/../../etc").status_code == 404
    assert c.get("/api/uploads/0123456789abcdef0123456789abcdef").get_json()["status"] == 404
    up = c.post("/api/uploads", json={"file_name": "a.mp3", "size_bytes": 10}).get_json()["upload"]
    r = c.put(f"/api/uploads/{up['upload_id']}?offset=0", data=b"0123456789ABC")
    assert r.status_code == 413 and "past the declared size" in r.get_json()["error"]


def test_non_audio_refused_on_first_chunk(empty_app):
    root, app, _ = empty_app
    c = app.test_client()
    data = b"<html>definitely not a recording</html>"
    up = c.post("/api/uploads", json={"file_name": "song.mp3", "size_bytes": len(data)}).get_json()["upload"]
    r = c.put(f"/api/uploads/{up['upload_id']}?offset=0", data=data)
    assert r.status_code == 400 and "is not audio" in r.get_json()["error"]
    assert c.get(f"/api/uploads/{up['upload_id']}").status_code == 404  # removed at once
    assert "Traceback" not in r.get_data(as_text=True)


def test_odd_name_lands_safely(empty_app):
    root, app, _ = empty_app
    c = app.test_client()
    up = _upload(c, JUNCO / "XC137480.mp3", name="../../../évil \x00name<>.mp3")
    assert up["complete"] and up["file_name"] == "évil _name__.mp3" and up["kind"] == "audio"
    assert all(root in p.parents for p in _files_under(root))
    assert (root.parent / "outside.txt").read_text() == "keep"


def test_disconnect_mid_chunk_keeps_offset(empty_app):
    root, app, _ = empty_app
    c = app.test_client()
    data = (JUNCO / "XC137480.mp3").read_bytes()
    half = len(data) // 2
    up = c.post("/api/uploads", json={"file_name": "x.mp3", "size_bytes": len(data)}).get_json()["upload"]
    url = f"/api/uploads/{up['upload_id']}"
    assert c.put(f"{url}?offset=0", data=data[:half]).status_code == 200
    # the body stops before the announced Content-Length: the client went away mid-chunk
    r = c.put(
        f"{url}?offset={half}",
        input_stream=io.BytesIO(data[half : half + 100]),
        environ_overrides={"CONTENT_LENGTH": str(half)},
    )
    assert r.status_code == 400 and f"resume at {half}" in r.get_json()["error"]
    assert c.get(url).get_json()["upload"]["received"] == half
    # never resumed: the stale clean-up removes it, and no collection ever saw it
    store = app.extensions["sonomap"]["uploads"]
    assert up["upload_id"] in store.cleanup_stale(now=time.time() + 10 * 24 * 3600)
    assert not (root / ".uploads" / up["upload_id"]).exists()
    assert [p for p in root.iterdir() if not p.name.startswith(".")] == []


def test_malicious_zip_and_bomb_through_the_socket(empty_app):
    root, app, socketio = empty_app
    c = app.test_client()
    mp3 = (JUNCO / "XC137480.mp3").read_bytes()
    evil = _upload(c, _zip_bytes({"../../escaped.mp3": mp3}), name="evil.zip")
    bomb = _upload(c, _zip_bytes({"bomb.wav": b"RIFF" + b"\0" * (200 * 1024**2)}), name="bomb.zip")
    assert evil["kind"] == bomb["kind"] == "zip"
    before = _files_under(root.parent)
    sc = socketio.test_client(app, flask_test_client=c)
    ack = sc.emit(
        "preprocess", {"new_collection": "evil", "uploads": [evil["upload_id"], bomb["upload_id"]]}, callback=True
    )
    assert ack["ok"], ack
    got = _wait(sc, ack["job_id"], timeout_s=60)
    err = _events(got, "job:error")[0]["error"]
    assert "climbs out" in err and "zip bomb" in err and "Traceback" not in err
    assert not (root / "evil").exists() and not (root.parent / "escaped.mp3").exists()
    after = _files_under(root.parent)
    assert {p for p in after - before if ".uploads" not in p.parts and "locks" not in p.parts} == set()
    assert not any((root / ".uploads").glob("*/unzipped"))  # staged uploads were discarded


def test_preprocess_refuses_bad_requests(empty_app):
    root, app, socketio = empty_app
    sc = socketio.test_client(app, flask_test_client=app.test_client())
    for payload, match in [
        (None, "needs"),
        ({"uploads": []}, "non-empty list"),
        ({"uploads": ["0" * 32], "collection": "nope"}, "not found"),
        ({"uploads": ["0" * 32], "new_collection": "../x"}, "invalid collection name"),
        ({"uploads": ["0" * 32], "new_collection": "fresh"}, "no upload"),
    ]:
        ack = sc.emit("preprocess", payload, callback=True)
        assert ack["ok"] is False and match in ack["error"], (payload, ack)


def test_staging_quota_per_client_and_overall(tmp_path):
    from preprocess.uploads import QuotaExceeded

    store = UploadStore(tmp_path, UploadLimits(max_client_uploads=2, max_client_bytes=5000, max_total_uploads=3))
    store.create("a.mp3", 1000, owner="alice")
    store.create("b.mp3", 1000, owner="alice")
    with pytest.raises(QuotaExceeded, match="you have 2 uploads .* at most 2 uploads"):
        store.create("c.mp3", 1000, owner="alice")
    with pytest.raises(QuotaExceeded, match="you have 0 uploads"):
        store.create("big.mp3", 6000, owner="bob")  # over bob's bytes
    store.create("d.mp3", 1000, owner="bob")
    with pytest.raises(QuotaExceeded, match="the server has 3 uploads"):
        store.create("e.mp3", 10, owner="carol")
    assert len(store.list()) == 3


def test_quota_over_rest_is_413_with_the_json_shape(tmp_path):
    root = tmp_path / "collections"
    root.mkdir()
    app, _ = _app(root)
    app.extensions["sonomap"]["uploads"].limits = UploadLimits(max_client_uploads=1)
    c = app.test_client()
    assert c.post("/api/uploads", json={"file_name": "a.mp3", "size_bytes": 10}).status_code == 201
    r = c.post("/api/uploads", json={"file_name": "b.mp3", "size_bytes": 10})
    assert r.status_code == 413 and r.get_json()["ok"] is False and "staging quota" in r.get_json()["error"]


def test_stale_uploads_are_swept_on_a_timer(tmp_path):
    root = tmp_path / "collections"
    root.mkdir()
    app, _ = _app(root)
    store = app.extensions["sonomap"]["uploads"]
    store.limits = UploadLimits(stale_after_s=1.0)  # swept every second
    c = app.test_client()
    up = c.post("/api/uploads", json={"file_name": "a.mp3", "size_bytes": 10}).get_json()["upload"]
    assert (root / ".uploads" / up["upload_id"]).is_dir()
    deadline = time.monotonic() + 15
    while (root / ".uploads" / up["upload_id"]).exists() and time.monotonic() < deadline:
        time.sleep(0.1)  # no other request arrives: only the timer can remove it
    assert not (root / ".uploads" / up["upload_id"]).exists()


def test_disconnect_discards_the_clients_unfinished_uploads(empty_app):
    root, app, socketio = empty_app
    c = app.test_client()
    sc = socketio.test_client(app, flask_test_client=c)
    sid = socketio.server.manager.sid_from_eio_sid(sc.eio_sid, "/")  # the page's socket.id
    store = app.extensions["sonomap"]["uploads"]
    half = store.create("half.mp3", 5000, owner=sid)
    done = store.create("done.mp3", 3, owner=sid)
    store.write_chunk(done.upload_id, 0, b"ID3", 3)
    other = store.create("other.mp3", 5000, owner="someone else")
    sc.disconnect()
    left = {u.upload_id for u in store.list()}
    assert half.upload_id not in left and {done.upload_id, other.upload_id} <= left


def _wav_bytes(seconds: float = 2.0) -> bytes:
    import soundfile as sf

    sr = 22050
    t = np.arange(int(sr * seconds)) / sr
    buf = io.BytesIO()
    sf.write(buf, (0.3 * np.sin(2 * np.pi * 3000 * t)).astype(np.float32), sr, format="WAV")
    return buf.getvalue()


def test_a_refused_job_keeps_the_uploads(empty_app):
    from preprocess.ingest import collection_lock

    root, app, socketio = empty_app
    c = app.test_client()
    up = _upload(c, _wav_bytes(), name="tone.wav")
    sc = socketio.test_client(app, flask_test_client=c)
    with collection_lock(root, "fresh"):  # another ingest (or remap) holds the collection
        ack = sc.emit("preprocess", {"new_collection": "fresh", "uploads": [up["upload_id"]]}, callback=True)
        assert ack["ok"], ack
        err = _events(_wait(sc, ack["job_id"], timeout_s=60), "job:error")[0]
    assert "being added" in err["error"] and err["status"] == 409
    kept = c.get(f"/api/uploads/{up['upload_id']}").get_json()["upload"]
    assert kept["complete"] is True  # the user can retry without uploading again
    assert (root / ".uploads" / up["upload_id"] / "data").is_file() and not (root / "fresh").exists()


def test_remap_holds_the_collection_lock(synthetic_root, tmp_path):
    from preprocess.ingest import collection_lock

    root = tmp_path / "collections"
    shutil.copytree(synthetic_root, root)
    app, socketio = _app(root)
    sc = socketio.test_client(app, flask_test_client=app.test_client())
    with collection_lock(root, "synth"):  # an ingest is adding recordings to it
        ack = sc.emit("remap", {"collection": "synth"}, callback=True)
        assert ack["ok"], ack
        err = _events(_wait(sc, ack["job_id"], timeout_s=60), "job:error")[0]
    assert err["status"] == 409 and "being added" in err["error"] and str(root) not in err["error"]


# ---------------------------------------------------------------------------------------------
# real recordings, real pipeline (slow)


@pytest.fixture(scope="module")
def real_root(tmp_path_factory):
    """A collections folder with ``birds``: two demo species built, BirdNET features, a map."""
    from preprocess.features import run_extractor
    from preprocess.pipeline import build
    from preprocess.reduce import reduce_collection

    root = tmp_path_factory.mktemp("upload") / "collections"
    src = tmp_path_factory.mktemp("upload_src")
    for folder in (JUNCO, SPARROW):
        shutil.copytree(folder, src / folder.name)
    build([src], root / "birds", jobs=1)
    run_extractor(Collection.open(root / "birds"), "birdnet")
    reduce_collection(Collection.open(root / "birds"), features=["birdnet"], dims=[2, 8])
    return root


@pytest.mark.slow
def test_upload_real_recordings_in_chunks_and_receive_per_file_events(real_root):
    from preprocess.collection import Collection

    app, socketio = _app(real_root)
    c = app.test_client()
    coll = Collection.open(real_root / "birds")
    n_before = coll.n_clips()
    map_before = coll.display_map("birdnet").copy()
    files = sorted(PHOEBE.glob("*.mp3"))[:3]
    ups = [_upload(c, f) for f in files]
    # resume: a fresh client asks where an upload stands
    assert c.get(f"/api/uploads/{ups[0]['upload_id']}").get_json()["upload"]["complete"] is True
    bad = _upload(c, b"ID3" + b"\0" * 3000, name="broken.mp3")  # sniffs as MP3, does not decode
    sc = socketio.test_client(app, flask_test_client=c)
    ack = sc.emit(
        "preprocess",
        {"collection": "birds", "uploads": [u["upload_id"] for u in ups] + [bad["upload_id"]]},
        callback=True,
    )
    assert ack["ok"], ack
    got = _wait(sc, ack["job_id"])
    names = [e["name"] for e in got]
    assert names[-1] == "job:result", _events(got, "job:error")
    per_file = _events(got, "preprocess:file")
    assert [f["name"] for f in per_file] == sorted([f.name for f in files] + ["broken.mp3"], key=str.lower)
    failed = [f for f in per_file if f["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["name"] == "broken.mp3" and failed[0]["reason"]
    progress = _events(got, "job:progress")
    assert {"recordings", "features:birdnet", "reduce"} <= {p["stage"] for p in progress}
    assert all(p["n_files"] == 4 and 0 <= p["file_index"] <= 4 for p in progress)
    assert [p["file_index"] for p in progress] == sorted(p["file_index"] for p in progress)
    fractions = [p["fraction"] for p in progress]
    assert fractions == sorted(fractions)
    clips_events = _events(got, "preprocess:clips")
    assert len(clips_events) == 3
    coll = Collection.open(real_root / "birds")
    new_ids = []
    for ev in clips_events:
        ids = ev["clips"]["clip_id"]
        pos = np.frombuffer(ev["positions"]["birdnet"], dtype="<f4").reshape(-1, 2)
        assert len(pos) == len(ids) > 0 and np.isfinite(pos).all()
        assert np.allclose(pos, coll.display_map("birdnet")[ids])
        assert set(ev["clips"]) >= {"clip_id", "recording_id", "start_s", "sheet", "cell", "audio_sprite", "file_name"}
        new_ids += ids
    assert new_ids == list(range(n_before, coll.n_clips()))
    # existing points did not move
    assert np.array_equal(coll.display_map("birdnet")[:n_before], map_before)
    res = _events(got, "job:result")[0]
    assert res["kind"] == "preprocess" and res["n_new_clips"] == len(new_ids) and not res["created"]
    assert str(real_root.parent) not in str([e["args"] for e in got])  # no server path reaches the client
    # originals kept inside the collection; staging emptied; nothing half-written
    srcs = list((real_root / "birds" / "sources").rglob("*.mp3"))
    assert sorted(p.name for p in srcs) == sorted(f.name for f in files)
    assert set(coll.recordings()["label"].iloc[-3:]) == {""}  # no made-up label from a staging folder
    assert not [p for p in (real_root / ".uploads").iterdir() if p.name != "locks"]
    # the recording view streams an uploaded original with Range
    rid = per_file[0]["recording_id"] if per_file[0]["status"] == "ok" else per_file[1]["recording_id"]
    r = c.get(f"/api/collections/birds/recordings/{rid}/audio", headers={"Range": "bytes=0-99"})
    assert r.status_code == 206 and len(r.data) == 100 and r.mimetype == "audio/mpeg"


@pytest.mark.slow
def test_new_collection_from_a_zip_with_labels(real_root):
    from preprocess.collection import Collection

    app, socketio = _app(real_root)
    c = app.test_client()
    members = {f"{PHOEBE.name}/{p.name}": p.read_bytes() for p in sorted(PHOEBE.glob("*.mp3"))[:3]}
    members["labels.csv"] = b"path,label,recordist\n" + b"".join(
        f"{n},Sayornis nigricans,Someone\n".encode() for n in members
    )
    up = _upload(c, _zip_bytes(members, level=zipfile.ZIP_STORED), name="phoebes.zip")
    sc = socketio.test_client(app, flask_test_client=c)
    ack = sc.emit("preprocess", {"new_collection": "phoebes", "uploads": [up["upload_id"]]}, callback=True)
    got = _wait(sc, ack["job_id"])
    res = _events(got, "job:result")[0]
    assert res["created"] and [f["status"] for f in res["files"]] == ["ok"] * 3, res
    coll = Collection.open(real_root / "phoebes")
    recs = coll.recordings()
    assert set(recs["label"]) == {"Sayornis nigricans"} and set(recs["recordist"]) == {"Someone"}
    assert coll.feature_sets() and res["reductions"] and len(coll.display_map(res["reductions"][0])) == coll.n_clips()
    assert "phoebes" in c.get("/api/collections").get_data(as_text=True)


@pytest.mark.slow
def test_recording_routes(real_root):
    app, _ = _app(real_root)
    c = app.test_client()
    info = c.get("/api/collections/birds/recordings/0").get_json()
    assert info["ok"] and info["recording"]["recording_id"] == 0 and info["audio_mime"] == "audio/mpeg"
    assert info["clips"]["clip_id"] and info["audio_url"] == "/api/collections/birds/recordings/0/audio"
    r = c.get("/api/collections/birds/recordings/0/tiles/10/0.jpg")
    assert r.status_code == 200 and r.mimetype == "image/jpeg" and r.data[:2] == b"\xff\xd8"
    assert "max-age" in r.headers["Cache-Control"] and r.headers.get("ETag")
    r = c.get("/api/collections/birds/recordings/0/audio", headers={"Range": "bytes=10-19"})
    assert r.status_code == 206 and len(r.data) == 10 and r.headers["Accept-Ranges"] == "bytes"
    whole = c.get("/api/collections/birds/recordings/0/audio")
    assert whole.data[10:20] == r.data
    for url, status in [
        ("/api/collections/birds/recordings/0/tiles/7/0.jpg", 400),
        ("/api/collections/birds/recordings/0/tiles/10/99.jpg", 404),
        ("/api/collections/birds/recordings/999", 404),
        ("/api/collections/nope/recordings/0", 404),
        ("/api/collections/birds/recordings/0/tiles/10/..%2f..%2fmanifest.json", 404),
    ]:
        r = c.get(url)
        assert r.status_code == status and r.get_json()["ok"] is False, url


@pytest.mark.slow
def test_remap_refits_the_map_with_every_clip(real_root):
    from preprocess.collection import Collection

    app, socketio = _app(real_root)
    sc = socketio.test_client(app, flask_test_client=app.test_client())
    bad = sc.emit("remap", {"collection": "birds", "key": "nope"}, callback=True)
    assert bad["ok"] is False and "available: birdnet" in bad["error"]
    ack = sc.emit("remap", {"collection": "birds"}, callback=True)
    assert ack["ok"], ack
    got = _wait(sc, ack["job_id"])
    res = _events(got, "job:result")[0]
    assert res == {"job_id": ack["job_id"], "kind": "remap", "collection": "birds", "key": "birdnet"}
    coll = Collection.open(real_root / "birds")
    meta = coll.reduction_meta("birdnet")
    assert meta["n_fitted"] == meta["n_clips"] == coll.n_clips() == len(coll.display_map("birdnet"))
