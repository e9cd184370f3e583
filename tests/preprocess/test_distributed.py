"""Builds on a real Dask cluster (a ``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1).

The collection built through the cluster must be byte-identical to a local build (the manifest's
timestamps aside); a broken file is skipped and reported; a worker killed mid-build has its tasks
retried and the output is still identical.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from preprocess import cli
from preprocess.errors import ParameterError, SonomapError
from preprocess.pipeline import build

pytestmark = pytest.mark.slow
distributed = pytest.importorskip("distributed")

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "demo" / "recordings"
DASK = Path(sys.executable).with_name("dask")
_TIMES = ("created", "updated", "stages")


def _same_collection(a: Path, b: Path) -> None:
    """Every file of ``a`` and ``b`` equal byte for byte; the manifest equal but for its timestamps."""
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert files_a == files_b
    for rel in files_a:
        if rel.name == "manifest.json":
            ma, mb = (json.loads((root / rel).read_text()) for root in (a, b))
            assert {k: v for k, v in ma.items() if k not in _TIMES} == {k: v for k, v in mb.items() if k not in _TIMES}
        else:
            assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """``(scheduler_file, log_dir)`` of a running scheduler with two one-thread workers."""
    if not DASK.is_file():
        pytest.skip(f"no dask command beside {sys.executable}")
    tmp = tmp_path_factory.mktemp("dask")
    sched_file = tmp / "scheduler.json"
    env = {**os.environ, "PYTHONPATH": str(REPO), "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
    procs = []
    logs = []
    try:
        log = open(tmp / "scheduler.log", "wb")
        logs.append(log)
        procs.append(
            subprocess.Popen(
                [
                    str(DASK),
                    "scheduler",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "0",
                    "--no-dashboard",
                    "--scheduler-file",
                    str(sched_file),
                ],
                cwd=tmp,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        )
        deadline = time.monotonic() + 60
        while not sched_file.is_file() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert sched_file.is_file(), (tmp / "scheduler.log").read_text()
        for k in range(2):
            log = open(tmp / f"worker{k}.log", "wb")
            logs.append(log)
            procs.append(
                subprocess.Popen(
                    [
                        str(DASK),
                        "worker",
                        "--scheduler-file",
                        str(sched_file),
                        "--nthreads",
                        "1",
                        "--nworkers",
                        "1",
                        "--no-dashboard",
                        "--local-directory",
                        str(tmp / f"w{k}"),
                    ],
                    cwd=tmp,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )  # fmt: skip
            )
        with distributed.Client(scheduler_file=str(sched_file), timeout="60s") as client:
            client.wait_for_workers(2, timeout=120)
        yield sched_file
    finally:
        for p in reversed(procs):
            p.send_signal(signal.SIGTERM)
        for p in reversed(procs):
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for log in logs:
            log.close()


@pytest.fixture(scope="module")
def local_build(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local") / "demo"
    build([DEMO], out, labels_csv=DEMO / "labels.csv", jobs=2)
    return out


def test_two_worker_cluster_builds_the_same_collection(cluster, local_build, tmp_path):
    out = tmp_path / "demo"
    seen = []
    res = build(
        [DEMO], out, labels_csv=DEMO / "labels.csv", scheduler=str(cluster),
        progress=lambda stage, done, total, msg="": seen.append((stage, done, total)),
    )  # fmt: skip
    assert res.recordings == 35 and not res.skipped
    _same_collection(local_build, out)
    recs = [d for s, d, _t in seen if s == "recordings"]
    assert recs == list(range(36))  # one step per finished future, from 0 to all 35


def test_broken_file_is_skipped_and_reported_on_the_cluster(cluster, tmp_path):
    src = tmp_path / "in"
    shutil.copytree(DEMO / "Parus major_Great Tit", src / "tit")
    (src / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 10)
    res = build([src], tmp_path / "out", scheduler=str(cluster))
    assert res.recordings == len(list((src / "tit").iterdir()))
    assert [p for p, _why in res.skipped] == ["broken.wav"]
    assert "broken.wav" in (tmp_path / "out" / "skipped.csv").read_text()


def test_killed_worker_has_its_tasks_retried(cluster, local_build, tmp_path):
    with distributed.Client(scheduler_file=str(cluster), timeout="30s") as client:
        client.wait_for_workers(2, timeout=120)
        pids = list(client.run(os.getpid).values())
    killed = []

    def progress(stage, done, total, msg=""):
        if stage == "recordings" and done == 3 and not killed:
            os.kill(pids[0], signal.SIGKILL)  # mid-build: the other tasks of that worker are in flight
            killed.append(pids[0])

    out = tmp_path / "demo"
    res = build([DEMO], out, labels_csv=DEMO / "labels.csv", scheduler=str(cluster), progress=progress)
    assert killed and res.recordings == 35 and not res.skipped
    _same_collection(local_build, out)
    with distributed.Client(scheduler_file=str(cluster), timeout="30s") as client:
        client.wait_for_workers(2, timeout=120)  # the nanny restarted the killed worker


def test_cli_scheduler_and_bad_addresses(cluster, local_build, tmp_path, capsys):
    out = tmp_path / "demo"
    rc = cli.main(["build", str(DEMO), "--out", str(out), "--labels", str(DEMO / "labels.csv"), "--no-features",
                   "--scheduler", str(cluster)])  # fmt: skip
    assert rc == 0 and "on the Dask cluster" in capsys.readouterr().out
    _same_collection(local_build, out)
    with pytest.raises(ParameterError, match="--scheduler nowhere"):
        build([DEMO], tmp_path / "x", scheduler="nowhere")
    with pytest.raises(SonomapError, match="cannot reach the Dask scheduler"):
        build([DEMO], tmp_path / "y", scheduler="tcp://127.0.0.1:9")
