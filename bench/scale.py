"""How the build scales: one worker's throughput, Dask's overhead per task, speed-up with 1 and 2 workers, projections.

    .venv/bin/python bench/scale.py [--inputs demo/recordings] [--tasks 200]

Measured on real recordings (``--inputs``, default the demo's 35), core build only (no features):
1. one worker: the local build with ``--jobs 1`` (audio seconds per wall second of the per-recording stage,
   and of the whole build);
2. Dask overhead per task: ``--tasks`` empty tasks on a one-worker LocalCluster, submitted at once and gathered
   (wall time / tasks), beside ``concurrent.futures`` (a process pool of one);
3. the same build through a LocalCluster of 1 and of 2 one-thread workers, warmed by one build first
   (speed-up of the per-recording stage against the 1-worker one).
The projection for 1,000 hours of audio on W workers states its assumptions in the printed table.
4. BirdNET features of the built collection (``--no-birdnet`` skips it), in ``--birdnet-chunk``-clip chunks:
   here (``run_extractor``) and as Dask tasks on a one-worker LocalCluster, cold (the worker imports the
   interpreter and loads the model) and warm (its cached model); clips per second and seconds per task.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _noop(x: int) -> int:
    return x


def timed_build(inputs: Path, out: Path, **kw) -> dict:
    """Build once; wall time of the whole build and of the per-recording stage (first to last progress)."""
    from preprocess.pipeline import build

    stamps: list[float] = []

    def progress(stage: str, done: int, total: int, msg: str = "") -> None:
        if stage == "recordings":
            stamps.append(time.perf_counter())

    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    res = build([inputs], out, progress=progress, **kw)
    total = time.perf_counter() - t0
    return {"total_s": total, "stage_s": stamps[-1] - stamps[0], "audio_s": res.audio_s, "recordings": res.recordings}


def _warm() -> None:
    import torch  # noqa: F401

    import preprocess.pipeline  # noqa: F401
    import preprocess.spectrogram  # noqa: F401


def dask_build(inputs: Path, out: Path, *, workers: int) -> dict:
    """The build through a LocalCluster of ``workers`` one-thread workers, warmed (imports, one build) first."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            client.run(_warm)
        timed_build(inputs, out, scheduler=cluster.scheduler_address)
        return timed_build(inputs, out, scheduler=cluster.scheduler_address)


def dask_overhead(n_tasks: int) -> tuple[float, float]:
    """Seconds per empty task: (Dask LocalCluster of one worker, a process pool of one)."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None) as cluster, Client(cluster) as c:
        c.gather(c.map(_noop, range(10), pure=False))  # warm
        t0 = time.perf_counter()
        c.gather(c.map(_noop, range(n_tasks), pure=False))
        dask_s = (time.perf_counter() - t0) / n_tasks
    with ProcessPoolExecutor(1) as pool:
        list(pool.map(_noop, range(10)))
        t0 = time.perf_counter()
        list(pool.map(_noop, range(n_tasks)))
        pool_s = (time.perf_counter() - t0) / n_tasks
    return dask_s, pool_s


def birdnet_here_and_on_dask(coll_root: Path, *, chunk_clips: int) -> tuple[int, list[tuple[str, float, int]]]:
    """``(clips, [(run, seconds, tasks)])``: BirdNET features here, then on a one-worker LocalCluster cold and warm."""
    from distributed import LocalCluster

    import preprocess.features as features
    from preprocess.collection import Collection
    from preprocess.features import run_extractor

    coll = Collection.open(coll_root)
    features.CHUNK_CLIPS = chunk_clips
    n_tasks = -(-coll.n_clips() // chunk_clips)
    out: list[tuple[str, float, int]] = []

    def timed(name: str, **kw) -> None:
        shutil.rmtree(coll.features_root, ignore_errors=True)
        t0 = time.perf_counter()
        run_extractor(coll, "birdnet", **kw)
        out.append((name, time.perf_counter() - t0, n_tasks))

    timed("here (warm-up)")
    timed("here")
    with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None) as cluster:
        timed("Dask 1 worker, cold", scheduler=cluster.scheduler_address)
        timed("Dask 1 worker, warm", scheduler=cluster.scheduler_address)
    return coll.n_clips(), out[1:]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--inputs", type=Path, default=REPO / "demo" / "recordings")
    ap.add_argument("--tasks", type=int, default=200)
    ap.add_argument("--no-birdnet", action="store_true", help="skip the BirdNET here-vs-Dask lines")
    ap.add_argument("--birdnet-chunk", type=int, default=32, help="clips per BirdNET task (the runner's chunk)")
    args = ap.parse_args()
    cores = len(os.sched_getaffinity(0))
    print(f"load average {os.getloadavg()[0]:.1f} on {cores} cores (shared: expect noise); inputs {args.inputs}")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "c"
        timed_build(args.inputs, out, jobs=1)  # warm the page cache and imports
        one = timed_build(args.inputs, out, jobs=1)
        d1 = dask_build(args.inputs, out, workers=1)
        d2 = dask_build(args.inputs, out, workers=2)
        n_clips, birdnet = (0, []) if args.no_birdnet else birdnet_here_and_on_dask(out, chunk_clips=args.birdnet_chunk)
    per_task, pool_task = dask_overhead(args.tasks)
    n_rec, audio = one["recordings"], one["audio_s"]
    print(f"\n{n_rec} recordings, {audio / 60:.1f} min of audio")
    print(f"{'run':<28} {'stage s':>8} {'total s':>8} {'audio s / s':>12} {'speed-up':>9}")
    for name, r in [
        ("local pool, 1 process", one),
        ("Dask LocalCluster, 1 worker", d1),
        ("Dask LocalCluster, 2 workers", d2),
    ]:
        up = d1["stage_s"] / r["stage_s"] if r is d2 else 1.0
        print(f"{name:<28} {r['stage_s']:>8.2f} {r['total_s']:>8.2f} {audio / r['stage_s']:>12.1f} {up:>8.2f}x")
    print(
        f"\nper-task overhead: Dask {per_task * 1e3:.2f} ms, process pool {pool_task * 1e3:.2f} ms ({args.tasks} empty tasks)"
    )
    if birdnet:
        here_s = birdnet[0][1]
        print(f"\nBirdNET features, {n_clips} clips in {birdnet[0][2]} tasks of {args.birdnet_chunk} clips")
        print(f"{'run':<28} {'total s':>8} {'clips / s':>10} {'s / task':>9} {'vs here':>8}")
        for name, sec, tasks in birdnet:
            print(f"{name:<28} {sec:>8.2f} {n_clips / sec:>10.1f} {sec / tasks:>9.2f} {here_s / sec:>7.0%}")

    # projection --------------------------------------------------------------------------------
    rate = audio / one["stage_s"]  # audio seconds per second per worker (per-recording stage)
    serial = max(one["total_s"] - one["stage_s"], 0.0) / audio  # assembly etc. (here), seconds per audio second
    eff = min(1.0, (d1["stage_s"] / d2["stage_s"]) / 2)  # measured parallel efficiency at 2 workers
    hours = 1000.0
    n_tasks = hours * 3600 / (audio / n_rec)
    print(f"\nprojected core build of {hours:,.0f} h of audio ({n_tasks:,.0f} recordings as long as these on average)")
    print(f"{'workers':>8} {'per-recording h':>16} {'assembly h':>11} {'Dask overhead h':>16} {'total h':>8}")
    for w in (1, 10, 100):
        e = 1.0 if w == 1 else eff
        work = hours * 3600 / rate / (w * e) / 3600
        asm = hours * 3600 * serial / 3600
        over = n_tasks * per_task / w / 3600
        print(f"{w:>8} {work:>16.2f} {asm:>11.2f} {over:>16.4f} {work + asm + over:>8.2f}")
    print(
        "assumptions: one worker = one core at the measured per-recording rate "
        f"({rate:.0f} audio s per s, this machine, these recordings' lengths and formats); "
        f"parallel efficiency {eff:.0%} (measured at 2 workers here) for 10 and 100 workers; assembly "
        "(spectrogram table, sheets, tables, measured with one process) scales linearly and is counted as serial (an upper bound); "
        "reading recordings from shared storage is not the bottleneck; features (BirdNET) and maps not included."
    )


if __name__ == "__main__":
    main()
