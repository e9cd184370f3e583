"""The ``refine`` job over Socket.IO on the real demo recordings: per-round figures, result, cancel, REST state."""

from __future__ import annotations

import shutil
import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.slow


@pytest.fixture
def served(demo_refinable_path, tmp_path):
    """A fresh app over a private copy of the refinable demo collection."""
    from server.app import create_app
    from server.settings import Settings

    root = tmp_path / "collections"
    shutil.copytree(demo_refinable_path, root)
    app, socketio = create_app(Settings(collections_dir=root, warmup=False))
    sc = socketio.test_client(app, flask_test_client=app.test_client())
    yield app, sc, root / "demo"
    if sc.is_connected():
        sc.disconnect()


def _of(got, name):
    return [e["args"][0] for e in got if e["name"] == name]


def test_refine_streams_rounds_then_result(served, wait_events):
    from preprocess.collection import Collection

    app, sc, path = served
    before = np.load(path / "features" / "birdnet" / "features.npy")
    ack = sc.emit("refine", {"collection": "demo", "iterations": 2}, callback=True)
    assert ack["ok"] and ack["job_id"].startswith("r")
    got = wait_events(sc, job_id=ack["job_id"], timeout_s=300)
    assert got[-1]["name"] == "job:result", [e["name"] for e in got]
    rounds = _of(got, "refine:round")
    res = _of(got, "job:result")[0]
    # one event per round, round 0 the original, each with its figures (the demo carries labels: NMI/ARI/yield)
    assert [r["round"] for r in rounds] == list(range(len(rounds))) and 2 <= len(rounds) <= 3
    for r in rounds:
        assert r["job_id"] == ack["job_id"] and r["collection"] == "demo" and r["features"] == "birdnet"
        assert r["n_clusters"] >= 0 and 0 <= r["noise"] <= 1
        assert r["nmi"] is not None and 0 <= r["nmi"] <= 1 and r["yield"] is not None
    assert rounds[0]["agreement"] is None and all(0 <= r["agreement"] <= 1 for r in rounds[1:])
    progress = _of(got, "job:progress")
    fractions = [p["fraction"] for p in progress]
    assert progress and fractions == sorted(fractions) and {p["stage"] for p in progress} <= {"reduce", "refine"}
    # the result: the refined set's name, its verdict and the same rounds
    assert res["kind"] == "refine" and res["name"] == res["key"] == "birdnet-refined"
    assert [r["round"] for r in res["rounds"]] == [r["round"] for r in rounds]
    assert res["worse"] == (res["validity_refined"] < res["validity_original"])
    coll = Collection.open(path)
    assert "birdnet-refined" in coll.reductions() and coll.display_map("birdnet-refined").shape == (coll.n_clips(), 2)
    np.testing.assert_array_equal(np.load(path / "features" / "birdnet" / "features.npy"), before)  # untouched
    # REST: what the page reads to offer the refined map, and the map itself
    client = app.test_client()
    state = client.get("/api/collections/demo/refined").get_json()["refined"]
    assert [s["name"] for s in state] == ["birdnet-refined"]
    assert state[0]["complete"] and state[0]["worse"] == res["worse"] and state[0]["source"] == "birdnet"
    assert len(client.get("/api/collections/demo/reductions/birdnet-refined/map.f32").data) == coll.n_clips() * 8
    # and the refined map clusters like any other, with recording dominance in the summaries
    ack = sc.emit("cluster", {"collection": "demo", "features": "birdnet-refined", "dims": 8}, callback=True)
    out = _of(wait_events(sc, job_id=ack["job_id"]), "job:result")[0]
    assert out["clusters"] and all(
        {"n_recordings", "top_recording_share", "single_recording"} <= set(c) for c in out["clusters"]
    )


def test_refine_cancel_keeps_nothing(served, wait_events, monkeypatch):
    import preprocess.refine as refine_mod

    real_train = refine_mod.train_head

    def slow_train(*a, **k):  # a round that takes long enough to be cancelled in
        time.sleep(1.5)
        return real_train(*a, **k)

    monkeypatch.setattr(refine_mod, "train_head", slow_train)
    app, sc, path = served
    ack = sc.emit("refine", {"collection": "demo", "iterations": 5}, callback=True)
    assert ack["ok"]
    got = wait_events(sc, names=("refine:round",), job_id=ack["job_id"], timeout_s=120)
    assert _of(got, "refine:round")[0]["round"] == 0
    assert sc.emit("cancel", {"job_id": ack["job_id"]}, callback=True) == {"ok": True}
    got = wait_events(sc, job_id=ack["job_id"], timeout_s=60)
    assert got[-1]["name"] == "job:cancelled" and not _of(got, "job:result")
    # the worker stops at its next check and removes the unfinished set; the original stays
    deadline = time.monotonic() + 60
    while (path / "features" / "birdnet-refined").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert (
        not (path / "features" / "birdnet-refined").exists() and not (path / "reductions" / "birdnet-refined").exists()
    )
    assert (path / "features" / "birdnet" / "features.npy").is_file()
    assert app.test_client().get("/api/collections/demo/refined").get_json()["refined"] == []


def test_refine_bad_requests_say_what_is_allowed(served):
    _app, sc, _path = served
    bad = sc.emit("refine", {"collection": "demo", "features": "saec"}, callback=True)
    assert not bad["ok"] and bad["status"] == 404 and "birdnet" in bad["error"]
    bad = sc.emit("refine", {"collection": "demo", "iterations": 0}, callback=True)
    assert not bad["ok"] and bad["status"] == 400 and "iterations" in bad["error"]
    bad = sc.emit("refine", {"collection": "nope"}, callback=True)
    assert not bad["ok"] and bad["status"] == 404
    bad = sc.emit("refine", "demo", callback=True)
    assert not bad["ok"] and bad["status"] == 400


def test_refine_saec_fine_tunes_its_encoder_as_a_job(served, wait_events):
    """features=saec is accepted where birdnet is: the job fine-tunes the encoder and says so in its result."""
    from preprocess.collection import Collection
    from preprocess.features import run_extractor
    from preprocess.reduce import reduce_collection

    app, sc, path = served
    coll = Collection.open(path)
    run_extractor(coll, "saec", device="cpu", params={"max_steps": 4, "max_train_clips": 64, "train_batch_size": 8})
    reduce_collection(coll, features=["saec"])
    before = (path / "features" / "saec" / "model.pt").read_bytes()
    ack = sc.emit("refine", {"collection": "demo", "features": "saec", "iterations": 1}, callback=True)
    assert ack["ok"], ack
    got = wait_events(sc, job_id=ack["job_id"], timeout_s=300)
    assert got[-1]["name"] == "job:result", [e["name"] for e in got]
    res = _of(got, "job:result")[0]
    assert res["name"] == "saec-refined" and res["features"] == "saec"
    assert res["model"]["kind"] == "saec-encoder" and res["model"]["device"] == "cpu" and res["model"]["steps"] > 0
    assert [r["train_steps"] for r in _of(got, "refine:round")][1:] == [res["model"]["steps"]]
    assert (path / "features" / "saec" / "model.pt").read_bytes() == before  # the original model untouched
    state = app.test_client().get("/api/collections/demo/refined").get_json()["refined"]
    assert [s["name"] for s in state] == ["saec-refined"] and state[0]["complete"]
    assert state[0]["model"]["kind"] == "saec-encoder"
