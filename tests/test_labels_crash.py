"""Crash safety of the label store: kill -9 a writer process mid-write, again and again; then every change it
reported as committed is there, nothing half-done is, and SQLite's integrity check passes.

The writer makes a seeded random sequence of changes (create, add up to 20k clips, remove, rename, delete,
undo, redo) and prints the store version after each commit. After each kill, the same sequence is replayed in
this process on a copy of the database taken before that writer started, up to the version found on disk;
the two states must be identical (so the on-disk state is exactly "all committed changes, in order").
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from preprocess.collection import Collection
from preprocess.labels import LabelStore

REPO = Path(__file__).resolve().parents[1]
N_CLIPS = 50_000

WRITER = r'''
import numpy as np
from preprocess.errors import ParameterError


def step(store, rng):
    """One seeded random change (or a refused one: the store must then write nothing)."""
    classes = store.classes()
    r = rng.random()
    try:
        if len(classes) < 3 or r < 0.1:
            store.create_class(f"C{rng.integers(1_000_000)}", who="writer")
        elif r < 0.5:
            c = classes[rng.integers(len(classes))]["id"]
            n = int(rng.integers(1, 20_000))
            store.add_members(c, rng.integers(0, store.n_clips, n), source={"kind": "lasso", "n": n}, who="writer")
        elif r < 0.65:
            c = classes[rng.integers(len(classes))]["id"]
            store.remove_members(c, rng.integers(0, store.n_clips, int(rng.integers(1, 20_000))), who="writer")
        elif r < 0.75:
            c = classes[rng.integers(len(classes))]["id"]
            store.update_class(c, name=f"R{rng.integers(1_000_000)}", note="x" * int(rng.integers(0, 50)))
        elif r < 0.8:
            store.delete_class(classes[rng.integers(len(classes))]["id"])
        elif r < 0.93:
            store.undo()
        else:
            store.redo()
    except ParameterError:
        pass


def run(db_path, seed, n_clips, stop_version=None, report=None):
    from preprocess.labels import LabelStore

    rng = np.random.default_rng(seed)
    with LabelStore(db_path, n_clips=n_clips) as store:
        while stop_version is None or store.version < stop_version:
            step(store, rng)
            if report is not None:
                report(store.version)
'''

MAIN = (
    WRITER
    + r"""
import sys
run(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), report=lambda v: print(v, flush=True))
"""
)


def _state(path: Path) -> tuple:
    with LabelStore(path, n_clips=N_CLIPS) as s:
        st = s.state()
        hist = [(h["kind"], h["undone"]) for h in s.history(limit=10_000)]
        classes = [(c["id"], c["name"], c["color"], c["note"], c["size"]) for c in st["classes"]]
        members = {k: v.tolist() for k, v in st["members"].items()}
        return st["version"], classes, members, hist


def _copy(src: Path, dst: Path) -> None:
    a, b = sqlite3.connect(src), sqlite3.connect(dst)
    try:
        a.backup(b)
    finally:
        a.close()
        b.close()


@pytest.mark.slow
def test_kill_9_mid_write_loses_no_committed_change(tmp_path):
    db = tmp_path / "labels.sqlite"
    LabelStore(db, n_clips=N_CLIPS).close()
    rng = np.random.default_rng(0)
    replay_ns: dict = {}
    exec(compile(WRITER, "writer", "exec"), replay_ns)
    kills = 0
    for round_ in range(6):
        before = tmp_path / f"before_{round_}.sqlite"
        _copy(db, before)
        v0 = _state(db)[0]
        proc = subprocess.Popen(
            [sys.executable, "-c", MAIN, str(db), str(round_), str(N_CLIPS)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            reported = []
            target = int(rng.integers(3, 25))
            while len(reported) < target:
                line = proc.stdout.readline()
                assert line, f"writer died: {proc.stderr.read()}"
                reported.append(int(line))
            time.sleep(float(rng.uniform(0, 0.03)))  # land somewhere inside the next transaction
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            kills += proc.returncode == -signal.SIGKILL
            reported += [int(line) for line in proc.stdout.read().split()]  # commits printed before the kill
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
            proc.stderr.close()

        with LabelStore(db, n_clips=N_CLIPS) as s:
            assert s.integrity_check() == "ok"
        version, classes, members, hist = _state(db)
        assert version >= reported[-1], "a change reported as committed was lost"
        assert version <= reported[-1] + 1  # at most the one in flight, and only if it committed
        # replay the same seeded sequence on the copy from before this writer started, up to the same version
        replay_ns["run"](before, round_, N_CLIPS, stop_version=version)
        assert _state(before) == (version, classes, members, hist)
        assert version > v0
    assert kills == 6


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _http(method: str, url: str, body: dict | None = None, timeout: float = 10) -> dict:
    import json
    import urllib.request

    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json", "X-Sonomap-Token": "test"}
    )
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def _start_server(root: Path, port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "server", "--collections", str(root), "--port", str(port), "--no-warmup", "--no-token"],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            _http("GET", f"http://127.0.0.1:{port}/api/collections/demo/classes", timeout=2)
            return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("server did not start in 60 s")


@pytest.mark.slow
def test_server_killed_mid_burst_keeps_every_acknowledged_change(demo_collection_path, tmp_path):
    """``python -m server`` on a real collection: classes made over HTTP, kill -9 during a burst of additions,
    restart: every change the server acknowledged is there (what the browser saw as ok: true)."""
    import shutil
    import threading

    shutil.copytree(demo_collection_path, tmp_path / "demo", ignore=shutil.ignore_patterns("labels.sqlite*"))
    n = Collection.open(tmp_path / "demo").n_clips()
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api/collections/demo"
    proc = _start_server(tmp_path, port)
    acknowledged: list[int] = []
    try:
        song = _http("POST", f"{api}/classes", {"name": "Song", "color": "#ff8800"})["class_id"]
        call = _http("POST", f"{api}/classes", {"name": "Call"})["class_id"]
        _http("PATCH", f"{api}/classes/{call}", {"note": "contact calls"})

        def burst():
            for clip in range(n):
                try:
                    _http("POST", f"{api}/classes/{song}/members", {"clip_ids": [clip], "source": {"kind": "clip"}})
                except OSError:
                    return
                acknowledged.append(clip)

        t = threading.Thread(target=burst)
        t.start()
        while len(acknowledged) < min(20, n // 2) and t.is_alive():
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        t.join(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    assert len(acknowledged) >= min(20, n // 2)

    proc = _start_server(tmp_path, port)
    try:
        body = _http("GET", f"{api}/classes")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stderr.close()
    names = {c["name"]: c for c in body["classes"]}
    assert names["Song"]["color"] == "#ff8800" and names["Call"]["note"] == "contact calls"
    members = set(body["members"][str(song)])
    assert set(acknowledged) <= members  # every acknowledged change survived
    assert len(members) <= len(acknowledged) + 1  # at most the request in flight, if it committed
    with LabelStore.open(Collection.open(tmp_path / "demo")) as s:
        assert s.integrity_check() == "ok"
