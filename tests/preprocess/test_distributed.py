"""Builds on a real Dask cluster (a ``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1).

The collection built through the cluster must be byte-identical to a local build (the manifest's
timestamps aside); a broken file is skipped and reported; a worker killed mid-build has its tasks
retried and the output is still identical. BirdNET features computed as Dask tasks are byte-identical
to a local run, ran on the workers (their own counters say so, and the model was loaded once per
worker), survive a killed worker, and a cancelled run resumes from its saved chunks.
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

from preprocess import cli, features
from preprocess.collection import Collection
from preprocess.errors import Cancelled, MissingDependencyError, ParameterError, SonomapError
from preprocess.features import on_cluster, run_extractor
from preprocess.pipeline import build

pytestmark = pytest.mark.slow
distributed = pytest.importorskip("distributed")

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "demo" / "recordings"
DASK = Path(sys.executable).with_name("dask")
_TIMES = ("created", "updated", "stages")
_FEATURE_TIMES = ("created", "updated", "time_s")


def _same_collection(a: Path, b: Path) -> None:
    """Every file of ``a`` and ``b`` equal byte for byte; the manifest equal but for its timestamps."""
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert files_a == files_b
    for rel in files_a:
        if rel.name in ("manifest.json", "meta.json"):
            times = _TIMES if rel.name == "manifest.json" else _FEATURE_TIMES
            ma, mb = (json.loads((root / rel).read_text()) for root in (a, b))
            assert {k: v for k, v in ma.items() if k not in times} == {k: v for k, v in mb.items() if k not in times}
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
    with pytest.raises(ParameterError, match="scheduler nowhere"):
        build([DEMO], tmp_path / "x", scheduler="nowhere")
    with pytest.raises(SonomapError, match="cannot reach the Dask scheduler"):
        build([DEMO], tmp_path / "y", scheduler="tcp://127.0.0.1:9")


# ---------------------------------------------------------------------------------------------
# BirdNET features as Dask tasks

#: 19 recordings, 32 clips: four 8-clip tasks with CHUNK_CLIPS patched to 8 (the local reference uses 512).
BIRDNET_SUBSET = (
    "Junco hyemalis_Dark-eyed Junco",
    "Melozone crissalis_California Towhee",
    "Parus major_Great Tit",
    "Zonotrichia leucophrys_White-crowned Sparrow",
)
TASK_CLIPS = 8


@pytest.fixture(scope="module")
def birdnet_inputs(tmp_path_factory) -> Path:
    pytest.importorskip("ai_edge_litert")
    try:
        from preprocess.features.birdnet_model import birdnet_model_dir

        birdnet_model_dir()
    except MissingDependencyError as e:
        pytest.skip(str(e))
    if not all((DEMO / name).is_dir() for name in BIRDNET_SUBSET):
        pytest.skip(f"the demo recordings are not in {DEMO}")
    src = tmp_path_factory.mktemp("birdnet_in")
    for name in BIRDNET_SUBSET:
        shutil.copytree(DEMO / name, src / name)
    return src


@pytest.fixture(scope="module")
def birdnet_local(tmp_path_factory, birdnet_inputs) -> Path:
    """The subset built and featured here (one process, 512-clip chunks): the reference."""
    out = tmp_path_factory.mktemp("birdnet_local") / "c"
    build([birdnet_inputs], out, jobs=1)
    run_extractor(Collection.open(out), "birdnet")
    return out


def _stats(scheduler_file: Path) -> dict[int, dict[str, int]]:
    """``{pid: {"tasks", "loads"}}`` of every worker, from the workers themselves."""
    with distributed.Client(scheduler_file=str(scheduler_file), timeout="30s") as client:
        client.wait_for_workers(2, timeout=120)
        return {s["pid"]: s for s in client.run(on_cluster.worker_stats).values()}


def _busy(dask_worker) -> int:
    return len(dask_worker.state.executing)


def _wait_idle(scheduler_file: Path) -> None:
    """Until no worker runs a task (a cancelled run's tasks that had started finish on their worker)."""
    with distributed.Client(scheduler_file=str(scheduler_file), timeout="30s") as client:
        deadline = time.monotonic() + 60
        while sum(client.run(_busy).values()) and time.monotonic() < deadline:
            time.sleep(0.2)


def _ran(before: dict, after: dict, what: str) -> dict[int, int]:
    return {pid: s[what] - before.get(pid, {}).get(what, 0) for pid, s in after.items()}


def _without_features(reference: Path, dest: Path) -> Path:
    shutil.copytree(reference, dest)
    shutil.rmtree(dest / "features")
    return dest


def _same_features(a: Path, b: Path) -> None:
    fa, fb = Collection(a).features_dir("birdnet"), Collection(b).features_dir("birdnet")
    assert sorted(p.name for p in fa.iterdir()) == sorted(p.name for p in fb.iterdir()) == [
        "features.npy", "meta.json", "species.parquet",
    ]  # fmt: skip
    for name in ("features.npy", "species.parquet"):
        assert (fa / name).read_bytes() == (fb / name).read_bytes(), name
    ma, mb = (json.loads((f / "meta.json").read_text()) for f in (fa, fb))
    assert {k: v for k, v in ma.items() if k not in _FEATURE_TIMES} == {
        k: v for k, v in mb.items() if k not in _FEATURE_TIMES
    }


def test_birdnet_features_run_on_the_workers_and_match_a_local_build(
    cluster, birdnet_inputs, birdnet_local, tmp_path, monkeypatch
):
    monkeypatch.setattr(features, "CHUNK_CLIPS", TASK_CLIPS)
    here = dict(on_cluster.STATS)
    before = _stats(cluster)
    out = tmp_path / "c"
    build([birdnet_inputs], out, scheduler=str(cluster))
    seen = []
    run_extractor(
        Collection.open(out), "birdnet", scheduler=str(cluster),
        progress=lambda stage, done, total, msg="": seen.append((stage, done, total)),
    )  # fmt: skip
    after = _stats(cluster)
    n = Collection.open(out).n_clips()
    n_tasks = -(-n // TASK_CLIPS)
    assert n == 32 and n_tasks == 4
    tasks, loads = _ran(before, after, "tasks"), _ran(before, after, "loads")
    assert sum(tasks.values()) == n_tasks  # every chunk ran on a worker ...
    assert on_cluster.STATS == here  # ... none in this process
    assert all(loads[pid] == (1 if tasks[pid] else 0) for pid in tasks)  # the model loaded once per worker
    rows = [d for s, d, t in seen if s == "features:birdnet"]
    assert rows[0] == 0 and rows[-1] == n and rows == sorted(rows) and len(rows) == n_tasks + 1
    _same_collection(birdnet_local, out)  # features, species.parquet, meta and the build itself


def test_worker_killed_mid_features_has_its_tasks_retried(cluster, birdnet_local, tmp_path, monkeypatch):
    monkeypatch.setattr(features, "CHUNK_CLIPS", TASK_CLIPS)
    with distributed.Client(scheduler_file=str(cluster), timeout="30s") as client:
        client.wait_for_workers(2, timeout=120)
        pids = list(client.run(os.getpid).values())
    killed = []

    def progress(stage, done, total, msg=""):
        if stage == "features:birdnet" and done > 0 and not killed:
            os.kill(pids[0], signal.SIGKILL)  # the other tasks of that worker are queued or running there
            killed.append(pids[0])

    out = _without_features(birdnet_local, tmp_path / "c")
    run_extractor(Collection.open(out), "birdnet", scheduler=str(cluster), progress=progress)
    assert killed
    _same_features(birdnet_local, out)
    assert not Collection(out).features_partial_dir("birdnet").exists()
    with distributed.Client(scheduler_file=str(cluster), timeout="30s") as client:
        client.wait_for_workers(2, timeout=120)  # the nanny restarted the killed worker


def test_cancelled_cluster_features_resume_from_their_chunks_through_the_cli(
    cluster, birdnet_local, tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(features, "CHUNK_CLIPS", TASK_CLIPS)
    out = _without_features(birdnet_local, tmp_path / "c")
    seen = []
    with pytest.raises(Cancelled):
        run_extractor(
            Collection.open(out), "birdnet", scheduler=str(cluster), should_cancel=lambda: len(seen) > 1,
            progress=lambda stage, done, total, msg="": seen.append(done),
        )  # fmt: skip
    saved = sorted(int(p.stem.split("_")[1]) for p in Collection(out).features_chunks("birdnet"))
    assert saved and not Collection(out).features_path("birdnet").exists()
    kept = 0
    while kept * TASK_CLIPS in saved:  # the runner resumes from the first gap
        kept += 1
    _wait_idle(cluster)
    before = _stats(cluster)
    rc = cli.main(["features", str(out), "--extractor", "birdnet", "--scheduler", str(cluster)])
    assert rc == 0 and "birdnet: 32 clips x 1024 features" in capsys.readouterr().out
    assert sum(_ran(before, _stats(cluster), "tasks").values()) == 4 - kept
    _same_features(birdnet_local, out)
