"""Latency under load: 8 concurrent clients, REST reads and cluster jobs, Werkzeug's dev server vs gunicorn.

    .venv/bin/python bench/load.py [--clients 8] [--reads 40] [--jobs 6] [--collection PATH]

The collection: the demo recordings built by the real CLI (``python -m preprocess build --no-features``) plus a
PCA display map and 8-d coordinates (so the page and clustering have something to use), unless ``--collection``
names one that has a reduction. Each server is the real ``python -m server`` (``--server werkzeug`` = before,
the default gunicorn = after), with the token on, as a user runs it.

REST reads: each client (its own keep-alive ``requests`` session) cycles through the collection summary,
clips.bin, the display map, an audio sprite and a sprite sheet. Cluster jobs: each client holds its own Socket.IO
connection over WebSocket (the page's transport) and times ``cluster`` -> ``job:result`` for HDBSCAN with
parameters no other request used (so no answer comes from the result cache). Prints p50 / p95 per server.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import queue
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from preprocess.collection import Collection  # noqa: E402
from preprocess.testing import CollectionWriter  # noqa: E402

TOKEN = "bench-token-0123456789abcdef"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_demo(out: Path) -> Path:
    """The demo collection (real CLI build) plus a PCA map and 8-d coordinates; returns its folder."""
    cmd = [sys.executable, "-m", "preprocess", "build", str(REPO / "demo" / "recordings"), "--out", str(out)]
    labels = REPO / "demo" / "recordings" / "labels.csv"
    cmd += ["--labels", str(labels)] if labels.exists() else []
    subprocess.run([*cmd, "--no-features"], cwd=REPO, check=True, capture_output=True, timeout=900)
    spec = np.asarray(Collection.open(out).spectrograms(), dtype=np.float32)
    X = spec.reshape(len(spec), -1)
    X -= X.mean(axis=0)
    u, s, _ = np.linalg.svd(X, full_matrices=False)
    Z = np.ascontiguousarray((u[:, :8] * s[:8]).astype(np.float32))
    key = "spectro_pca"
    w = CollectionWriter(out)  # adds a feature set and a reduction to the built collection, through the store
    w.features(key, Z, extractor="pca", dim=8, params={}, n_clips=len(Z))
    w.reduction(key, coords={d: Z[:, :d] for d in (2, 8)}, display=Z[:, :2])
    return out


class Server:
    """``python -m server`` on a free port (``kind``: werkzeug | gunicorn); stopped on exit."""

    def __init__(self, collections: Path, kind: str) -> None:
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = collections.parent / f"{kind}.log"
        env = dict(os.environ, NUMBA_CACHE_DIR=os.environ.get("NUMBA_CACHE_DIR", str(REPO / ".numba_cache")))
        cmd = [sys.executable, "-m", "server", "--collections", str(collections), "--port", str(self.port)]
        cmd += ["--token", TOKEN, "--server", kind, "--no-warmup"]  # numba compiles hold the GIL: not in a timing
        self._out = open(self.log, "wb")
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=self._out, stderr=subprocess.STDOUT, env=env)

    def __enter__(self) -> Server:
        import requests

        deadline = time.monotonic() + 120
        while True:
            try:
                if requests.get(f"{self.base}/api/status", headers={"X-Sonomap-Token": TOKEN}, timeout=2).ok:
                    return self
            except requests.RequestException:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {self.log.read_text()[-2000:]}")
            time.sleep(0.2)

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._out.close()


class RawSocket:
    """A minimal Socket.IO v5 client over WebSocket (simple-websocket), enough to time cluster jobs."""

    def __init__(self, port: int) -> None:
        import simple_websocket

        url = f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket&token={TOKEN}"
        self.ws = simple_websocket.Client.connect(url)
        assert self.ws.receive(timeout=30).startswith("0")
        self.ws.send("40")
        self._ids = itertools.count(1)
        self._pending: list[tuple[str, str, object]] = []
        self.next_message(lambda kind, ack, data: kind == "40")

    def next_message(self, want):
        """Receive until ``want(kind, ack_id, data)`` is true; return ``(kind, data)`` (binary frames skipped)."""
        for i, (kind, ack_id, data) in enumerate(self._pending):  # a result can arrive before its job's ack
            if want(kind, ack_id, data):
                del self._pending[i]
                return kind, data
        deadline = time.monotonic() + 300
        while True:
            if time.monotonic() > deadline:
                raise TimeoutError("no answer from the server in 300 s")
            msg = self.ws.receive(timeout=60)
            if msg is None:
                raise RuntimeError("the socket closed")
            if isinstance(msg, bytes):
                continue
            if msg == "2":
                self.ws.send("3")
                continue
            kind, rest = msg[:2], msg[2:]
            if kind == "45" or kind == "46":  # binary event/ack: "<n>-" attachments first
                rest = rest.split("-", 1)[1]
            digits = len(rest) - len(rest.lstrip("0123456789"))
            ack_id, payload = rest[:digits], rest[digits:]
            data = json.loads(payload) if payload else None
            if want(kind, ack_id, data):
                return kind, data
            self._pending.append((kind, ack_id, data))

    def call(self, event: str, data: dict) -> dict:
        n = str(next(self._ids))
        self.ws.send(f"42{n}{json.dumps([event, data])}")
        return self.next_message(lambda kind, ack, d: kind in ("43", "46") and ack == n)[1][0]

    def close(self) -> None:
        self.ws.close()


def _run_clients(n: int, work) -> list[float]:
    times: list[float] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def client(i: int) -> None:
        try:
            mine = work(i)
            with lock:
                times.extend(mine)
        except BaseException as e:  # reported after the run
            errors.append(e)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return times


def measure(server: Server, *, clients: int, reads: int, jobs: int, params) -> dict:
    import requests

    api = f"{server.base}/api/collections/demo"
    info = requests.get(api, headers={"X-Sonomap-Token": TOKEN}, timeout=30).json()["collection"]
    key = info.get("default_reduction") or info["reductions"][0]["key"]
    urls = [api, f"{api}/clips.bin", f"{api}/reductions/{key}/map.f32", f"{api}/audio/sprite_00000.flac"]
    urls.append(f"{api}/sprites/sheet_00000.{info.get('config', {}).get('tile_format', 'jpg')}")

    def reader(i: int) -> list[float]:
        s = requests.Session()
        s.headers["X-Sonomap-Token"] = TOKEN
        out = []
        for k in range(reads):
            t0 = time.perf_counter()
            r = s.get(urls[(i + k) % len(urls)], timeout=60)
            r.raise_for_status()
            out.append(time.perf_counter() - t0)
        return out

    def clusterer(i: int) -> list[float]:
        sock = RawSocket(server.port)
        out = []
        try:
            assert sock.call("join", {"collection": "demo"})["ok"]
            for _ in range(jobs):
                t0 = time.perf_counter()
                ack = sock.call(
                    "cluster", {"collection": "demo", "dims": 8, "algorithm": "hdbscan", "params": params.get_nowait()}
                )
                assert ack["ok"] and not ack.get("cached"), ack
                job = ack["job_id"]
                kind, data = sock.next_message(
                    lambda k, a, d, job=job: (
                        k in ("42", "45") and d and d[0] in ("job:result", "job:error") and d[1]["job_id"] == job
                    )
                )
                assert data[0] == "job:result", data
                out.append(time.perf_counter() - t0)
        finally:
            sock.close()
        return out

    reader(0)  # warm: files in the page cache, arrays loaded
    cluster = _run_clients(clients, clusterer)
    t0 = time.perf_counter()
    rest = _run_clients(clients, reader)
    rest_wall = time.perf_counter() - t0
    ms = lambda xs, q: 1000 * float(np.percentile(xs, q))  # noqa: E731
    return {
        "rest_p50_ms": ms(rest, 50),
        "rest_p95_ms": ms(rest, 95),
        "rest_per_s": len(rest) / rest_wall,
        "cluster_p50_ms": ms(cluster, 50),
        "cluster_p95_ms": ms(cluster, 95),
        "n_rest": len(rest),
        "n_cluster": len(cluster),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--reads", type=int, default=40, help="REST reads per client")
    ap.add_argument("--jobs", type=int, default=6, help="cluster jobs per client")
    ap.add_argument("--collection", type=Path, default=None, help="a built collection with a reduction")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="sonomap-load-"))
    try:
        collections = tmp / "collections"
        collections.mkdir()
        if args.collection:
            shutil.copytree(args.collection, collections / "demo", ignore=shutil.ignore_patterns("labels.sqlite*"))
        else:
            build_demo(collections / "demo")
        n_clips = len(np.load(next((collections / "demo" / "reductions").glob("*/map_2d.npy")), mmap_mode="r"))
        # unique HDBSCAN parameters across both servers: every job is computed, none served from the cache
        params: queue.Queue = queue.Queue()  # shared by the client threads
        for ms in range(1, 30):
            for mcs in range(2, 60):
                params.put({"min_cluster_size": mcs, "min_samples": ms})
        rows = {}
        for kind in ("werkzeug", "gunicorn"):
            with Server(collections, kind) as server:
                rows[kind] = measure(server, clients=args.clients, reads=args.reads, jobs=args.jobs, params=params)
                warned = "development server" in server.log.read_text().lower()
            rows[kind]["dev_warning"] = warned
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\n{args.clients} concurrent clients, demo collection ({n_clips} clips); latency per request")
    print(
        f"{'server':<24}{'REST p50':>10}{'REST p95':>10}{'REST/s':>9}{'cluster p50':>13}{'cluster p95':>13}  dev warning"
    )
    names = {"werkzeug": "Werkzeug dev (before)", "gunicorn": "gunicorn gthread (after)"}
    for kind, r in rows.items():
        print(
            f"{names[kind]:<24}{r['rest_p50_ms']:>8.1f}ms{r['rest_p95_ms']:>8.1f}ms{r['rest_per_s']:>9.0f}"
            f"{r['cluster_p50_ms']:>11.0f}ms{r['cluster_p95_ms']:>11.0f}ms  {'yes' if r['dev_warning'] else 'no'}"
        )
    print(f"({rows['gunicorn']['n_rest']} REST reads and {rows['gunicorn']['n_cluster']} cluster jobs per server)")


if __name__ == "__main__":
    main()
