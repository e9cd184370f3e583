"""The first clustering of a fresh server process: seconds from start to the first result, and the
progress messages the page saw, with a cold and a warm numba cache. Prints a table.

.venv/bin/python bench/first_cluster.py [--cache DIR] [--page-delay S] [--cold]

Each measurement is a fresh ``python`` process that creates the real app (``server.app.create_app``, warm-up on,
as ``python -m server`` does), waits ``--page-delay`` seconds (the page opening), sends ``cluster`` over the
Flask-SocketIO test client (hdbscan, 8-d, on the synthetic 600-clip collection of tests/server/conftest.py) and
waits for ``job:result``. ``--cold`` first empties the cache; then ``python -m server.warmup`` (the set-up step)
runs and the fresh process is measured again: the side-by-side is "no set-up warm-up" (what a user gets when the
first job pays numba's compile) against "after set-up warm-up".
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys, time
t0 = time.monotonic()
sys.path.insert(0, sys.argv[1])
from server.app import create_app
from server.settings import Settings
from pathlib import Path
app, socketio = create_app(Settings(collections_dir=Path(sys.argv[2]), warmup=True))
t_app = time.monotonic() - t0
time.sleep(float(sys.argv[3]))
client = socketio.test_client(app, flask_test_client=app.test_client())
req = {"collection": "synth", "features": "birdnet", "dims": 8, "algorithm": "hdbscan", "params": {"min_cluster_size": 20}}
t1 = time.monotonic()
client.emit("cluster", req, callback=True)
messages, done = [], None
while done is None and time.monotonic() - t1 < 600:
    for e in client.get_received():
        if e["name"] == "job:progress":
            messages.append(e["args"][0]["message"])
        elif e["name"] in ("job:result", "job:error"):
            done = e["name"]
    time.sleep(0.05)
print(json.dumps({"app_s": t_app, "first_result_s": time.monotonic() - t1, "since_start_s": time.monotonic() - t0,
                  "outcome": done, "messages": messages}))
"""


def measure(collections: Path, cache: Path, delay: float) -> dict:
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache))
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(REPO), str(collections), str(delay)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cache", default=str(REPO / ".numba_cache"))
    parser.add_argument("--page-delay", type=float, default=0.0, help="seconds between start and the request")
    parser.add_argument("--cold", action="store_true", help="start from an empty cache, then warm it and measure")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from tests.server.conftest import _write_collection

    cache = Path(args.cache)
    rows = []
    with tempfile.TemporaryDirectory() as d:
        collections = Path(d) / "collections"
        _write_collection(collections / "synth")
        if args.cold:
            shutil.rmtree(cache, ignore_errors=True)
            rows.append(("cold cache (no set-up warm-up)", measure(collections, cache, args.page_delay)))
            shutil.rmtree(cache, ignore_errors=True)
            t = time.monotonic()
            env = dict(os.environ, NUMBA_CACHE_DIR=str(cache))
            subprocess.run([sys.executable, "-m", "server.warmup"], cwd=REPO, env=env, check=True)
            print(f"set-up warm-up (python -m server.warmup): {time.monotonic() - t:.1f} s")
        rows.append(("after set-up warm-up", measure(collections, cache, args.page_delay)))
    print(f"\n{'case':<32} {'app s':>6} {'first result s':>15} {'outcome':>11}  progress messages")
    for name, r in rows:
        msgs = sorted({m for m in r["messages"] if "compil" in m or "left" in m})[:4]
        print(f"{name:<32} {r['app_s']:>6.1f} {r['first_result_s']:>15.1f} {r['outcome']:>11}  {msgs}")


if __name__ == "__main__":
    main()
