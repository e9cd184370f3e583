"""The cluster protocol over Socket.IO: progress order, result, supersede, cancel, cache, errors, two clients."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from preprocess.errors import SonomapError

N = 600
TRUE = np.arange(N) % 4
REQ = {
    "collection": "synth",
    "features": "birdnet",
    "dims": 8,
    "algorithm": "hdbscan",
    "params": {"min_cluster_size": 20},
}


def _events(got, name):
    return [e["args"][0] for e in got if e["name"] == name]


def test_cluster_progress_then_result(make_socket_client, wait_events):
    sc = make_socket_client()
    ack = sc.emit("cluster", REQ, callback=True)
    assert ack["ok"] and ack["cached"] is False and isinstance(ack["job_id"], str)
    got = wait_events(sc, job_id=ack["job_id"])
    names = [e["name"] for e in got]
    assert names[-1] == "job:result" and "job:progress" in names
    progress = _events(got, "job:progress")
    fractions = [p["fraction"] for p in progress]
    assert fractions == sorted(fractions) and 0 <= fractions[0] and fractions[-1] <= 1
    stages = [p["stage"] for p in progress]
    assert stages.index("load") < stages.index("tree") < stages.index("cluster") < stages.index("summary")
    assert all(set(p) == {"job_id", "stage", "done", "total", "fraction", "message", "eta_s"} for p in progress)
    assert all(p["eta_s"] is None or p["eta_s"] >= 0 for p in progress)
    res = _events(got, "job:result")[0]
    labels = np.frombuffer(res["labels"], dtype="<i4")
    assert labels.shape == (N,)
    assert adjusted_rand_score(TRUE, labels) > 0.99
    assert res["n_clusters"] == 4 and res["n_noise"] == int((labels < 0).sum())
    assert res["kind"] == "cluster" and res["collection"] == "synth" and res["cached"] is False
    assert res["request"]["params"]["min_cluster_size"] == 20 and res["request"]["features"] == ["birdnet"]
    sizes = [c["size"] for c in res["clusters"]]
    assert sizes == sorted(sizes, reverse=True) and sum(sizes) == N - res["n_noise"]
    for c in res["clusters"]:
        assert labels[c["medoid"]] == c["id"]
        # every synthetic group has one true species; BirdNET's species_1 agrees with it
        assert c["top_labels"][0][1] > 0 and c["top_species"][0][1] == c["size"]
    assert "Traceback" not in str(res)


def test_same_parameters_come_from_cache(make_socket_client, wait_events):
    sc = make_socket_client()
    ack1 = sc.emit("cluster", REQ, callback=True)
    first = _events(wait_events(sc, job_id=ack1["job_id"]), "job:result")[0]
    ack2 = sc.emit("cluster", dict(REQ, features=["birdnet"]), callback=True)
    assert ack2["ok"] and ack2["cached"] is True and ack2["job_id"] != ack1["job_id"]
    got = wait_events(sc, job_id=ack2["job_id"])
    second = _events(got, "job:result")[0]
    assert second["cached"] is True and second["labels"] == first["labels"]
    assert not _events(got, "job:progress")


def test_dbscan_and_kmeans(make_socket_client, wait_events):
    sc = make_socket_client()
    for alg, params in [("dbscan", {"eps": 2.0, "min_samples": 5}), ("kmeans", {"n_clusters": 4})]:
        ack = sc.emit("cluster", dict(REQ, algorithm=alg, params=params), callback=True)
        res = _events(wait_events(sc, job_id=ack["job_id"]), "job:result")[0]
        labels = np.frombuffer(res["labels"], dtype="<i4")
        assert adjusted_rand_score(TRUE, labels) > 0.99, alg


def test_supersede_cancels_previous_job_of_same_client_only(app_and_socketio, make_socket_client, wait_events):
    app, _ = app_and_socketio
    gate = threading.Event()
    clusterer = app.extensions["sonomap"]["registry"].clusterer("synth", "birdnet", 8)
    original = clusterer.run

    def slow_run(**kw):  # hold the first jobs until both requests are in
        gate.wait(10)
        return original(**kw)

    clusterer.run = slow_run
    a, b = make_socket_client(), make_socket_client()
    ack_a1 = a.emit("cluster", dict(REQ, params={"min_cluster_size": 11}), callback=True)
    ack_b = b.emit("cluster", dict(REQ, params={"min_cluster_size": 12}), callback=True)
    ack_a2 = a.emit("cluster", dict(REQ, params={"min_cluster_size": 13}), callback=True)
    gate.set()
    got_a = wait_events(a, ("job:result",), job_id=ack_a2["job_id"])
    cancelled = _events(got_a, "job:cancelled")
    assert [c["job_id"] for c in cancelled] == [ack_a1["job_id"]]
    assert ack_a1["job_id"] not in [r["job_id"] for r in _events(got_a, "job:result")]
    res_b = _events(wait_events(b, ("job:result",), job_id=ack_b["job_id"]), "job:result")[0]
    assert res_b["request"]["params"]["min_cluster_size"] == 12
    res_a = _events(got_a, "job:result")[-1]
    assert res_a["request"]["params"]["min_cluster_size"] == 13


def test_cancel_event(app_and_socketio, make_socket_client, wait_events):
    app, _ = app_and_socketio
    gate = threading.Event()
    clusterer = app.extensions["sonomap"]["registry"].clusterer("synth", "birdnet", 8)
    original = clusterer.run
    clusterer.run = lambda **kw: (gate.wait(10), original(**kw))[1]
    sc = make_socket_client()
    ack = sc.emit("cluster", dict(REQ, params={"min_cluster_size": 14}), callback=True)
    assert sc.emit("cancel", {"job_id": ack["job_id"]}, callback=True) == {"ok": True}
    gate.set()
    got = wait_events(sc, ("job:cancelled",), job_id=ack["job_id"])
    assert not _events(got, "job:result")
    bad = sc.emit("cancel", {"job_id": "nope"}, callback=True)
    assert bad["ok"] is False and "nope" in bad["error"]


@pytest.mark.parametrize(
    ("change", "status", "needle"),
    [
        ({"collection": "nope"}, 404, "available: nofeat, synth"),
        ({"features": "saec"}, 404, "available: birdnet"),
        ({"collection": "nofeat"}, 404, "birdnet"),
        ({"dims": 5}, 400, "[2, 8]"),
        ({"params": {"min_cluster_size": 1}}, 400, "[2, 100000]"),
        ({"params": {"min_cluster_size": "ten"}}, 400, "int in [2, 100000]"),
        ({"params": {"bogus": 1}}, 400, "allowed: min_cluster_size"),
        ({"algorithm": "spectral"}, 400, "allowed: dbscan, hdbscan, kmeans"),
        ({"algorithm": "dbscan", "params": {"eps": -1}}, 400, "eps must be float in [1e-06, 100.0]"),
        ({"algorithm": "dbscan", "params": {"partition": "sometimes"}}, 400, "'auto' or 'off'"),
    ],
)
def test_bad_requests_ack_an_error_naming_what_is_allowed(make_socket_client, change, status, needle):
    sc = make_socket_client()
    ack = sc.emit("cluster", {**REQ, **change}, callback=True)
    assert ack["ok"] is False and ack["status"] == status, ack
    assert needle in ack["error"], ack["error"]
    assert "Traceback" not in ack["error"]
    if "params" in change:  # the ack carries the rules of that algorithm, for the sliders
        alg = change.get("algorithm", "hdbscan")
        assert set(ack["allowed"]) == {alg} and all(
            {"min", "max", "default"} <= set(r) for r in ack["allowed"][alg].values()
        )


def test_failing_job_emits_error_and_server_keeps_serving(app_and_socketio, make_socket_client, wait_events, caplog):
    app, _ = app_and_socketio
    clusterer = app.extensions["sonomap"]["registry"].clusterer("synth", "birdnet", 8)
    original = clusterer.run

    def boom(**kw):
        raise RuntimeError("disk on fire at /home/someone/collections/synth/clips.parquet")

    clusterer.run = boom
    sc = make_socket_client()
    ack = sc.emit("cluster", dict(REQ, params={"min_cluster_size": 15}), callback=True)
    err = _events(wait_events(sc, job_id=ack["job_id"]), "job:error")[0]
    # unexpected: "internal error" with an id that is in the log (with the traceback); no exception text, no path
    assert err["error"].startswith("internal error (id ") and err["status"] == 500 and err["error_id"]
    assert "disk on fire" not in err["error"] and "/home" not in str(err) and "Traceback" not in str(err)
    logged = [r for r in caplog.records if err["error_id"] in r.getMessage()]
    assert logged and logged[0].exc_info and "disk on fire" in str(logged[0].exc_info[1])
    clusterer.run = lambda **kw: (_ for _ in ()).throw(SonomapError("tree too small"))
    ack = sc.emit("cluster", dict(REQ, params={"min_cluster_size": 16}), callback=True)
    assert _events(wait_events(sc, job_id=ack["job_id"]), "job:error")[0]["error"] == "tree too small"
    clusterer.run = original
    ack = sc.emit("cluster", dict(REQ, params={"min_cluster_size": 17}), callback=True)
    assert _events(wait_events(sc, job_id=ack["job_id"]), "job:result")
    assert app.test_client().get("/api/collections").status_code == 200


def test_disconnect_frees_work(app_and_socketio, make_socket_client):
    app, _ = app_and_socketio
    jobs = app.extensions["sonomap"]["jobs"]
    gate = threading.Event()
    clusterer = app.extensions["sonomap"]["registry"].clusterer("synth", "birdnet", 8)
    original = clusterer.run
    seen = {}

    def watch(**kw):
        gate.wait(10)
        seen["cancelled"] = kw["should_cancel"]()
        return original(**kw)

    clusterer.run = watch
    sc = make_socket_client()
    ack = sc.emit("cluster", dict(REQ, params={"min_cluster_size": 18}), callback=True)
    sc.disconnect()
    gate.set()
    assert ack["job_id"] not in {j.id for j in jobs.running()}
    for _ in range(500):
        if "cancelled" in seen:
            break
        threading.Event().wait(0.01)
    assert seen.get("cancelled") is True


def test_two_clients_at_once_get_their_own_results(make_socket_client, wait_events):
    a, b = make_socket_client(), make_socket_client()
    ack_a = a.emit("cluster", dict(REQ, algorithm="kmeans", params={"n_clusters": 2}), callback=True)
    ack_b = b.emit("cluster", dict(REQ, algorithm="kmeans", params={"n_clusters": 4}), callback=True)
    res_a = _events(wait_events(a, ("job:result",), job_id=ack_a["job_id"]), "job:result")
    res_b = _events(wait_events(b, ("job:result",), job_id=ack_b["job_id"]), "job:result")
    assert [r["n_clusters"] for r in res_a] == [2] and [r["n_clusters"] for r in res_b] == [4]
    assert all(r["job_id"] == ack_a["job_id"] for r in res_a)


def test_join_room_and_prefetch_the_default_tree(app_and_socketio, make_socket_client):
    app, _ = app_and_socketio
    sc = make_socket_client()
    assert sc.emit("join", {"collection": "synth"}, callback=True)["ok"] is True
    clusterer = app.extensions["sonomap"]["registry"].clusterer("synth", "birdnet", 8)
    for _ in range(1000):  # the default tree is built in the background, shared by DBSCAN's default min_samples
        if clusterer.has_tree(algorithm="dbscan", params={"eps": 1.0}):
            break
        threading.Event().wait(0.01)
    assert clusterer.has_tree(algorithm="hdbscan", params={"min_cluster_size": 33})
    assert not sc.get_received()  # the prefetch's events go to no client
    bad = sc.emit("join", {"collection": "../etc"}, callback=True)
    assert bad["ok"] is False and bad["status"] == 404


def test_first_request_waits_only_for_warmup_left(app_and_socketio, make_socket_client, wait_events):
    from server.warmup import Step

    app, socketio = app_and_socketio
    warmup = app.extensions["sonomap"]["warmup"]
    release = threading.Event()
    warmup.steps = [Step("fast_hdbscan", lambda: release.wait(10), 5.0), Step("umap", lambda: release.wait(30), 60)]
    warmup.start(socketio.start_background_task)
    sc = make_socket_client()
    ack = sc.emit("cluster", dict(REQ, params={"min_cluster_size": 19}), callback=True)
    threading.Event().wait(0.6)
    release.set()
    got = wait_events(sc, job_id=ack["job_id"])
    msgs = [p["message"] for p in _events(got, "job:progress") if p["stage"] == "warmup"]
    assert msgs and "waiting for warm-up (fast_hdbscan" in msgs[0] and "s left" in msgs[0]
    assert _events(got, "job:result")
