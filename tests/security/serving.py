"""Start the real ``python -m server`` on a free port and read the URL it prints (for the serving tests)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
_URL_RE = re.compile(r"(http://127\.0\.0\.1:\d+/\S*)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def served(collections: Path, *args: str, timeout_s: float = 120) -> Iterator[tuple[str, Path]]:
    """Yield (the printed URL, the log file); the server is stopped afterwards."""
    port = free_port()
    log_path = collections.parent / f"server-{port}.log"
    env = dict(os.environ, NUMBA_CACHE_DIR=os.environ.get("NUMBA_CACHE_DIR", str(REPO / ".numba_cache")))
    env.pop("SONOMAP_TOKEN", None)
    cmd = [sys.executable, "-m", "server", "--collections", str(collections), "--port", str(port), "--no-warmup"]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([*cmd, *args], cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                text = log_path.read_text(errors="replace")
                m = _URL_RE.search(text)
                if m and ("Booting worker" in text or "werkzeug" in args):
                    try:
                        with socket.create_connection(("127.0.0.1", port), timeout=1):
                            break
                    except OSError:
                        pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"server did not start: {text[-3000:]}")
                time.sleep(0.2)
            yield m.group(1), log_path
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
