"""The job framework itself (server/jobs/base.py), with two small kinds: supersede, cancel any kind, finish once,
monotonic progress across stages, disconnect clean-up and error translation (an id, no exception text, no path)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from flask import Flask, request
from flask_socketio import SocketIO

from preprocess.errors import Cancelled, ParameterError
from server import protocol
from server.errors import STATUS_BY_CLASS, clean, status_of, translate
from server.jobs import Job, JobKind, JobRunner


class Steps(JobKind):
    """Reports ``steps`` of stage "b" after "a"; waits on ``gate`` between them; a payload ``fail`` raises."""

    name = "steps"
    id_prefix = "s"
    stages = (("a", 1), ("b", 3))

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.ended: list[tuple[str, str]] = []

    def validate(self, sid: str, payload: Any) -> dict[str, Any]:
        if not isinstance(payload, dict) or not isinstance(payload.get("n"), int):
            raise ParameterError("steps needs {n: a whole number}")
        return dict(payload)

    def run(self, job: Job, progress) -> dict[str, Any]:
        progress("a", 0, 1, "start")
        progress("a", 1, 1)
        self.gate.wait(10)
        for i in range(job.request["n"]):
            if job.should_cancel():
                raise Cancelled("cancelled")
            progress("b:inner", i + 1, job.request["n"])
            progress("a", 0, 1)  # a stage reported out of order must not move the bar back
            progress("unknown stage", 0, 1)
        if job.request.get("fail") == "expected":
            raise ParameterError("n is too small for this; allowed: n >= 100")
        if job.request.get("fail") == "unexpected":
            raise KeyError("/home/secret/collections/x/manifest.json")
        return {"n": job.request["n"]}

    def finished(self, job: Job, outcome: str) -> None:
        self.ended.append((job.id, outcome))


class Other(Steps):
    name = "other"
    id_prefix = "o"
    supersede = False
    cancel_on_disconnect = False


@pytest.fixture
def rig():
    app = Flask(__name__)
    socketio = SocketIO(app, async_mode="threading", async_handlers=False)
    runner = JobRunner(socketio)
    steps, other = runner.register(Steps()), runner.register(Other())
    for kind in (steps, other):
        socketio.on(kind.name)(lambda data=None, k=kind.name: runner.submit(k, request.sid, data))
    socketio.on(protocol.CANCEL)(lambda data=None: runner.cancel(request.sid, (data or {}).get("job_id")))
    socketio.on("disconnect")(lambda *a: runner.disconnect(request.sid))
    return app, socketio, runner, steps, other


def _until_end(sc, job_id: str, timeout_s: float = 20.0) -> list[dict]:
    got, deadline = [], time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for ev in sc.get_received():
            got.append(ev)
            if ev["name"] in (protocol.JOB_RESULT, protocol.JOB_ERROR, protocol.JOB_CANCELLED):
                if ev["args"][0]["job_id"] == job_id:
                    time.sleep(0.1)
                    got += sc.get_received()
                    return got
        time.sleep(0.01)
    raise AssertionError(f"job {job_id} did not end; got {[e['name'] for e in got]}")


def _of(got, name, job_id):
    return [e["args"][0] for e in got if e["name"] == name and e["args"][0]["job_id"] == job_id]


def test_progress_is_monotonic_across_stages_and_ends_once(rig):
    app, socketio, runner, steps, _ = rig
    sc = socketio.test_client(app)
    steps.gate.set()
    ack = sc.emit("steps", {"n": 5}, callback=True)
    assert ack == {"ok": True, "job_id": ack["job_id"]} and ack["job_id"].startswith("s")
    got = _until_end(sc, ack["job_id"])
    fractions = [p["fraction"] for p in _of(got, protocol.JOB_PROGRESS, ack["job_id"])]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0
    assert fractions[1] == 0.25 and fractions[2] == 0.4  # "a" is a quarter of the bar (weights 1 : 3)
    ends = [e for e in got if e["name"] in (protocol.JOB_RESULT, protocol.JOB_ERROR, protocol.JOB_CANCELLED)]
    assert [e["args"][0] for e in ends] == [{"kind": "steps", "n": 5, "job_id": ack["job_id"]}]
    assert steps.ended == [(ack["job_id"], "result")] and not runner.running()


def test_supersede_cancels_the_same_kind_of_the_same_client_only(rig):
    app, socketio, runner, steps, _ = rig
    a, b = socketio.test_client(app), socketio.test_client(app)
    a1 = a.emit("steps", {"n": 2}, callback=True)["job_id"]
    b1 = b.emit("steps", {"n": 2}, callback=True)["job_id"]
    o1 = a.emit("other", {"n": 2}, callback=True)["job_id"]
    a2 = a.emit("steps", {"n": 2}, callback=True)["job_id"]
    steps.gate.set()
    got_a = _until_end(a, a2)
    assert _of(got_a, protocol.JOB_CANCELLED, a1) and not _of(got_a, protocol.JOB_RESULT, a1)
    assert _of(_until_end(b, b1), protocol.JOB_RESULT, b1)  # another client is not affected
    assert _of(got_a + _until_end(a, o1), protocol.JOB_RESULT, o1)  # nor another kind
    assert (a1, "cancelled") in steps.ended


def test_generic_cancel_cancels_any_kind_once(rig):
    app, socketio, runner, _, other = rig
    sc = socketio.test_client(app)
    job_id = sc.emit("other", {"n": 3}, callback=True)["job_id"]
    assert sc.emit(protocol.CANCEL, {"job_id": job_id}, callback=True) == {"ok": True}
    again = sc.emit(protocol.CANCEL, {"job_id": job_id}, callback=True)
    assert again["ok"] is False and again["status"] == 404
    other.gate.set()
    got = _until_end(sc, job_id)
    time.sleep(0.3)
    got += sc.get_received()
    ends = [e for e in got if e["name"] in (protocol.JOB_RESULT, protocol.JOB_CANCELLED, protocol.JOB_ERROR)]
    assert [e["name"] for e in ends] == [protocol.JOB_CANCELLED]  # finish once: no result after the cancel
    assert other.ended == [(job_id, "cancelled")]
    stranger = socketio.test_client(app)
    job2 = sc.emit("other", {"n": 1}, callback=True)["job_id"]
    assert stranger.emit(protocol.CANCEL, {"job_id": job2}, callback=True)["status"] == 404  # not theirs


def test_errors_are_translated_with_an_id_and_no_path(rig, caplog):
    app, socketio, runner, steps, _ = rig
    sc = socketio.test_client(app)
    steps.gate.set()
    bad = sc.emit("steps", {"n": "x"}, callback=True)
    assert bad == {"ok": False, "error": "steps needs {n: a whole number}", "status": 400}
    job_id = sc.emit("steps", {"n": 1, "fail": "expected"}, callback=True)["job_id"]
    err = _of(_until_end(sc, job_id), protocol.JOB_ERROR, job_id)[0]
    assert err == {"job_id": job_id, "error": "n is too small for this; allowed: n >= 100", "status": 400}
    job_id = sc.emit("steps", {"n": 1, "fail": "unexpected"}, callback=True)["job_id"]
    err = _of(_until_end(sc, job_id), protocol.JOB_ERROR, job_id)[0]
    assert err["status"] == 500 and err["error"] == f"internal error (id {err['error_id']}); see the server log"
    assert "secret" not in str(err) and "manifest" not in str(err)
    assert any(err["error_id"] in r.getMessage() and r.exc_info for r in caplog.records)


def test_disconnect_cancels_only_kinds_that_ask_for_it(rig):
    app, socketio, runner, steps, other = rig
    sc = socketio.test_client(app)
    s = sc.emit("steps", {"n": 1}, callback=True)["job_id"]
    o = sc.emit("other", {"n": 1}, callback=True)["job_id"]
    sc.disconnect()
    assert (s, "cancelled") in steps.ended and {j.id for j in runner.running()} == {o}
    other.gate.set()
    for _ in range(500):
        if (o, "result") in other.ended:
            break
        time.sleep(0.01)
    assert (o, "result") in other.ended


def test_status_table_and_path_cleaning():
    from preprocess.errors import CollectionError, NotFoundError, SonomapError
    from preprocess.uploads import QuotaExceeded, UploadError

    assert status_of(NotFoundError("x")) == 404 and status_of(CollectionError("x")) == 409
    assert status_of(QuotaExceeded("x")) == 413 and status_of(UploadError("x")) == 400
    assert status_of(RuntimeError("x")) == 500 and set(STATUS_BY_CLASS) >= {SonomapError, Cancelled}
    assert not any(hasattr(cls, "status") for cls in STATUS_BY_CLASS)  # the core carries no HTTP status
    assert clean("/a/b/c/clips.parquet has 3 clips") == "clips.parquet has 3 clips"
    assert clean("read C:\\Users\\me\\x.wav failed") == "read x.wav failed"
    assert clean("ratio 3/4 and 10 MB/s stay") == "ratio 3/4 and 10 MB/s stay"
    assert (
        translate(NotFoundError("no collection 'x'; available: a, b")).message == "no collection 'x'; available: a, b"
    )


def test_socket_js_mirrors_the_protocol():
    import re
    from pathlib import Path

    js = (Path(__file__).resolve().parents[2] / "static" / "src" / "socket.js").read_text()
    block = js[js.index("EVENTS = {") : js.index("};", js.index("EVENTS = {"))]
    events = dict(re.findall(r"(\w+):\s*'([^']+)'", block))
    spelled = {v for k, v in vars(protocol).items() if k.isupper() and isinstance(v, str)}
    assert set(events.values()) <= spelled  # the page uses no event the server does not name
    assert {k: events.get(k) for k in protocol.CLIENT_EVENTS} == protocol.CLIENT_EVENTS
