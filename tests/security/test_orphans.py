"""A build killed with SIGKILL leaves no worker process behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _children() -> dict[int, int]:
    """pid -> parent pid for every process we can see."""
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            out[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    return out


def _descendants(pid: int) -> set[int]:
    parents = _children()
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, pp in parents.items() if pp in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_killed_build_leaves_no_workers(tmp_path, demo_recordings_path):
    cmd = [sys.executable, "-m", "preprocess", "build", str(demo_recordings_path), "--out", str(tmp_path / "c")]
    proc = subprocess.Popen([*cmd, "--jobs", "2"], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen: set[int] = set()
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            seen |= _descendants(proc.pid)
            if len(seen) >= 3:  # the forkserver and two workers
                break
            time.sleep(0.1)
        if proc.poll() is not None:
            pytest.skip("the build finished before its workers could be seen")
        time.sleep(0.5)
        seen |= _descendants(proc.pid)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert len(seen) >= 3, f"expected a forkserver and workers, saw {sorted(seen)}"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(_alive(p) for p in seen):
        time.sleep(0.2)
    survivors = sorted(p for p in seen if _alive(p))
    for p in survivors:  # clean up before failing
        os.kill(p, signal.SIGKILL)
    assert not survivors, f"worker processes outlived the killed build: {survivors}"
