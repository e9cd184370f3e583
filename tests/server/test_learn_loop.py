"""The learning loop end to end on real audio (the demo recordings with BirdNET), through REST and sockets:
query by example (clip, class, dropped file), train, review (accept / reject), precision, retrain, accept-above,
exports; recordings added later get scores."""

from __future__ import annotations

import io
import json
import shutil
import zipfile

import numpy as np
import pytest

from tests.server.conftest import wait_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def birdnet_root(demo_collection_path, tmp_path_factory):
    from preprocess.collection import Collection
    from preprocess.features import run_extractor

    root = tmp_path_factory.mktemp("learnloop") / "collections"
    shutil.copytree(demo_collection_path, root / "demo", ignore=shutil.ignore_patterns("labels.sqlite*"))
    run_extractor(Collection.open(root / "demo"), "birdnet")
    return root


@pytest.fixture
def served(birdnet_root, tmp_path):
    from server.app import create_app
    from server.settings import Settings

    root = tmp_path / "collections"
    shutil.copytree(birdnet_root, root)
    app, socketio = create_app(Settings(collections_dir=root, warmup=False))
    sc = socketio.test_client(app, flask_test_client=app.test_client())
    assert sc.emit("join", {"collection": "demo"}, callback=True)["ok"]
    yield app, app.test_client(), sc, root / "demo"
    sc.disconnect()


def _truth(root):
    from preprocess.collection import Collection

    c = Collection.open(root)
    clips, recs = c.clips(), c.recordings().set_index("recording_id")
    return recs["label"].reindex(clips["recording_id"]).fillna("").to_numpy(object)


def _job(sc, event, payload):
    ack = sc.emit(event, payload, callback=True)
    assert ack["ok"], ack
    got = wait_for(sc, job_id=ack["job_id"], timeout_s=120)
    last = got[-1]
    assert last["name"] == "job:result", last
    return last["args"][0], got


def _pool(client, truth, names, per_class=4):
    ids = {}
    for name in names:
        r = client.post("/api/collections/demo/classes", json={"name": name})
        assert r.status_code == 201, r.get_json()
        cid = r.get_json()["class"]["id"]
        members = np.flatnonzero(truth == name)[:per_class].tolist()
        assert client.post(f"/api/collections/demo/classes/{cid}/members", json={"clip_ids": members}).get_json()["ok"]
        ids[name] = cid
    return ids


def test_similar_train_review_retrain_export(served):
    app, client, sc, root = served
    truth = _truth(root)
    species = [s for s, n in zip(*np.unique(truth[truth != ""], return_counts=True), strict=True) if n >= 8][:3]
    assert len(species) >= 2, "the demo needs two species with 8+ clips"
    classes = _pool(client, truth, species)
    sc.get_received()

    # query by example: one clip; the same species should lead the ranking
    first = int(np.flatnonzero(truth == species[0])[0])
    res, _ = _job(sc, "similar", {"collection": "demo", "clip_ids": [first], "k": 10})
    ids = np.frombuffer(res["clip_ids"], "<i4")
    sims = np.frombuffer(res["similarities"], "<f4")
    assert res["n"] == len(ids) == len(sims) == 10 and first not in ids
    assert np.all(np.diff(sims) <= 1e-6) and sims[0] <= 1.0001
    assert (truth[ids[:3]] == species[0]).mean() >= 2 / 3, (truth[ids[:3]], species[0])
    # matches the core's exact search
    from preprocess.collection import Collection
    from preprocess.similar import similar

    exact = similar(Collection.open(root), clip_ids=[first], k=10)
    assert [h["clip_id"] for h in exact] == ids.tolist()

    # a class as the query: its members are left out
    res, _ = _job(sc, "similar", {"collection": "demo", "class_id": classes[species[0]], "k": 5})
    members = set(np.flatnonzero(truth == species[0])[:4].tolist())
    assert res["query"]["kind"] == "class" and not members & set(np.frombuffer(res["clip_ids"], "<i4").tolist())

    # a dropped file: embedded without being added
    from preprocess.collection import Collection as C

    rec = C.open(root).recordings().iloc[0]
    src = _demo_recordings() / rec["path"]
    data = src.read_bytes()
    n_before = len(C.open(root).clips())
    res, _ = _job(sc, "similar", {"collection": "demo", "file": {"name": src.name, "data": data}, "k": 5})
    assert res["query"]["kind"] == "file" and res["query"]["n"] >= 1 and res["n"] == 5
    hits = np.frombuffer(res["clip_ids"], "<i4")
    same_rec = C.open(root).clips()["recording_id"].to_numpy()[hits]
    assert (same_rec == int(rec["recording_id"])).any(), "the file's own clips should be among its nearest"
    assert len(C.open(root).clips()) == n_before

    # bad requests say what is allowed
    bad = sc.emit("similar", {"collection": "demo", "clip_ids": [10**6]}, callback=True)
    assert not bad["ok"] and bad["status"] == 400 and "not in the collection" in bad["error"]
    bad = sc.emit("similar", {"collection": "demo", "k": 5}, callback=True)
    assert not bad["ok"] and "exactly one" in bad["error"]
    assert client.get("/api/collections/demo/learn/model").get_json() == {"ok": True, "model": None}
    assert client.get("/api/collections/demo/learn/scores.f32").status_code == 404

    # train: per-class metrics
    res, events = _job(sc, "train", {"collection": "demo"})
    assert any(e["name"] == "job:progress" for e in events)
    assert res["round"] == 1 and {c["class_id"] for c in res["classes"]} == set(classes.values())
    for c in res["classes"]:
        assert 0 <= c["ap"] <= 1 and 0 < c["threshold"] < 1 and c["precision"] is not None
    n = res["n_clips"]
    cid = classes[species[0]]
    col = np.frombuffer(client.get(f"/api/collections/demo/learn/scores.f32?class_id={cid}").data, "<f4")
    assert col.shape == (n,) and np.all((col >= 0) & (col <= 1))
    whole = client.get("/api/collections/demo/learn/scores.f32").data
    assert whole[:4] == b"SMS1"
    hlen = int(np.frombuffer(whole[4:8], "<u4")[0])
    header = json.loads(whole[8 : 8 + hlen])
    mat = np.frombuffer(whole[8 + hlen :], "<f4").reshape(header["shape"])
    np.testing.assert_array_equal(mat[:, header["class_ids"].index(cid)], col)
    model = client.get("/api/collections/demo/learn/model").get_json()["model"]
    assert model["round"] == 1 and len(model["history"]) == 1

    # review: accept the first suggestion, reject the second; both broadcast labels:changed
    q = client.get(f"/api/collections/demo/learn/queue?class_id={cid}&n=10").get_json()
    assert q["ok"] and q["items"] and {it["strategy"] for it in q["items"]} <= {"top", "uncertain", "random"}
    a, b = q["items"][0]["clip_id"], q["items"][1]["clip_id"]
    sc.get_received()
    r = client.post(
        f"/api/collections/demo/classes/{cid}/members", json={"clip_ids": [a], "source": {"kind": "review"}}
    )
    assert r.get_json()["n"] == 1
    r = client.post(f"/api/collections/demo/classes/{cid}/negatives", json={"clip_ids": [b]})
    assert r.get_json()["kind"] == "negate" and r.get_json()["n"] == 1
    kinds = [e["args"][0]["change"]["kind"] for e in sc.get_received() if e["name"] == "labels:changed"]
    assert kinds == ["add", "negate"]
    neg = client.get("/api/collections/demo/negatives").get_json()["negatives"]
    assert neg[str(cid)] == [b]
    again = client.get(f"/api/collections/demo/learn/queue?class_id={cid}&n=10").get_json()["items"]
    assert not {a, b} & {it["clip_id"] for it in again}

    # the precision estimate from judged random items
    rand = [it for it in q["items"] if it["strategy"] == "random" and it["score"] >= q["threshold"]]
    judged = {str(it["clip_id"]): True for it in rand}
    p = client.post(
        "/api/collections/demo/learn/precision",
        json={"items": q["items"], "judgements": judged, "threshold": q["threshold"]},
    ).get_json()
    assert p["ok"] and p["n_judged"] == len(rand) and (p["precision"] == 1.0 if rand else p["precision"] is None)

    # retrain: round 2 with the change since round 1
    res, _ = _job(sc, "train", {"collection": "demo"})
    assert res["round"] == 2
    assert all(set(c["delta"]) >= {"ap", "precision", "recall"} for c in res["classes"])

    # accept all above the threshold: one change, one undo
    before = client.get("/api/collections/demo/classes").get_json()["members"][str(cid)]
    r = client.post(f"/api/collections/demo/classes/{cid}/accept-above", json={}).get_json()
    assert r["ok"]
    after = client.get("/api/collections/demo/classes").get_json()["members"][str(cid)]
    assert len(after) == len(before) + r["n"]
    if r["n"]:
        assert client.post("/api/collections/demo/labels/undo", json={}).get_json()["undone"]["kind"] == "add"
        assert client.get("/api/collections/demo/classes").get_json()["members"][str(cid)] == before

    # exports
    csv = client.get("/api/collections/demo/learn/export?format=predictions")
    assert csv.status_code == 200 and "attachment" in csv.headers["Content-Disposition"]
    lines = csv.data.decode().splitlines()
    assert lines[0].split(",")[:3] == ["clip_id", "predicted", "user_label"] and len(lines) == n + 1
    det = client.get("/api/collections/demo/learn/export?format=detections")
    assert det.status_code == 200
    if det.data.startswith(b"PK"):
        z = zipfile.ZipFile(io.BytesIO(det.data))
        text = z.read(z.namelist()[0]).decode()
    else:
        text = det.data.decode()
    assert text.splitlines()[0].split("\t")[7:9] == ["Annotation", "Score"]
    npz = np.load(io.BytesIO(client.get("/api/collections/demo/learn/export?format=model").data))
    assert json.loads(str(npz["meta"]))["round"] == 2 and npz["weights"].shape[1] == len(classes)
    bad = client.get("/api/collections/demo/learn/export?format=nope")
    assert bad.status_code == 400 and "allowed" in bad.get_json()["error"]


def test_errors_are_the_one_shape(served):
    _app, client, sc, _root = served
    assert client.get("/api/collections/demo/learn/queue?class_id=1").status_code == 404
    r = client.get("/api/collections/demo/learn/queue?class_id=abc")
    assert r.status_code == 400 and r.get_json()["ok"] is False
    r = client.post("/api/collections/demo/classes/999/negatives", json={"clip_ids": [1]})
    assert r.status_code == 404
    ack = sc.emit("train", {"collection": "nope"}, callback=True)
    assert not ack["ok"] and ack["status"] == 404
    ack = sc.emit("similar", {"collection": "demo", "file": {"name": "x.txt", "data": b"abc"}}, callback=True)
    assert not ack["ok"] and "not an audio file" in ack["error"]


def test_new_clips_are_scored_when_they_arrive(served):
    from preprocess import learn
    from preprocess.collection import Collection
    from server.jobs.ingest import _score_new

    app, client, sc, root = served
    truth = _truth(root)
    species = [s for s in np.unique(truth[truth != ""])][:2]
    _pool(client, truth, species)
    _job(sc, "train", {"collection": "demo"})
    c = Collection.open(root)
    scores = np.load(c.learn_scores_path)
    np.save(c.learn_scores_path, scores[:-3])  # as if the last three clips arrived after training
    _score_new(app.extensions["sonomap"]["registry"], "demo", list(range(len(scores) - 3, len(scores))))
    np.testing.assert_allclose(np.load(c.learn_scores_path), scores, atol=1e-5)
    assert learn.load_scores(c).shape == scores.shape


def _demo_recordings():
    from tests.conftest import DEMO_RECORDINGS

    return DEMO_RECORDINGS
