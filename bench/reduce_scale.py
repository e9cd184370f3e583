"""Reduction at scale: time, peak memory and map quality of ``reduce_collection``, neighbour sharing off and on.

    .venv/bin/python bench/reduce_scale.py [--sizes 100000 1000000] [--dims 2 4 8 16] [--share on off]
        [--sample-above 200000 --sample-n 100000]   # smaller values exercise the sampled path on small inputs

Data: 1024-d synthetic embeddings (30 Gaussian groups of Zipf sizes plus 10 % noise), written as a collection
(preprocess/testing.py). Each (size, sharing) runs in a fresh process, alternating; the numba compile is paid
beforehand on 2,000 rows. "peak MB" is the child's maximum RSS; "tree MB" the largest sum of RSS over the child
and its worker processes (sampled every 0.2 s; pages they share, such as the memory-mapped features, count once
per process, so it overstates). ARI: K-means (k = 30) on the 8-d map (else the largest) against the groups, noise
excluded. ``--jobs 1`` fits every map in the child, one after another (before the maps ran in workers).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("NUMBA_CACHE_DIR", str(REPO / ".numba_cache"))

import numpy as np  # noqa: E402


def make_features(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """float32 [n, 1024] in 30 groups (+10 % noise), labels (-1 noise); written in blocks to bound memory."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(30, 1024)).astype(np.float32) * 2.0
    w = 1.0 / np.arange(1, 31) ** 0.8
    y = rng.choice(30, size=n, p=w / w.sum())
    y[rng.uniform(size=n) < 0.1] = -1
    X = np.empty((n, 1024), np.float32)
    for a in range(0, n, 50_000):
        yy = y[a : a + 50_000]
        block = rng.normal(size=(len(yy), 1024)).astype(np.float32) * 1.5
        block[yy >= 0] += centres[yy[yy >= 0]]
        X[a : a + 50_000] = block
    return X, y


class TreeMemory:
    """The largest sum of RSS over this process and its descendants, sampled in a thread."""

    def __init__(self, every_s: float = 0.2) -> None:
        import threading

        import psutil

        self.peak, self._stop, self._me = 0, threading.Event(), psutil.Process()
        self._cpu: dict[int, float] = {}  # pid -> its latest user + system seconds
        self._thread = threading.Thread(target=self._run, args=(every_s,), daemon=True)

    def _run(self, every_s: float) -> None:
        import psutil

        while not self._stop.wait(every_s):
            total = 0
            for p in [self._me, *self._me.children(recursive=True)]:
                try:
                    total += p.memory_info().rss
                    t = p.cpu_times()
                    self._cpu[p.pid] = t.user + t.system
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def cpu_s(self) -> float:
        """CPU seconds of this process and every worker seen (as last sampled)."""
        return sum(self._cpu.values())


def child(root: Path, share: bool, dims: list[int], sample_above: int, sample_n: int, jobs: int | None) -> dict:
    from sklearn.cluster import MiniBatchKMeans
    from sklearn.metrics import adjusted_rand_score

    from preprocess import reduce_sample
    from preprocess.collection import Collection
    from preprocess.reduce import reduce_collection
    from preprocess.testing import feature_collection

    warm = feature_collection(root.parent / "warm", {"birdnet": np.load(root / "X.npy", mmap_mode="r")[:2000]})
    reduce_collection(warm, features="birdnet", dims=[2])  # numba compile, paid before timing
    reduce_sample.SHARE_NEIGHBORS = share
    reduce_sample.SAMPLE_ABOVE = sample_above
    reduce_sample.SAMPLE_N = sample_n
    import preprocess.reduce as R

    R.SAMPLE_ABOVE = sample_above
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0, c0 = time.perf_counter(), time.process_time()
    with TreeMemory() as tree:
        reduce_collection(Collection(root / "c"), features="birdnet", dims=dims, refit=True, jobs=jobs)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    cpu += tree.cpu_s() - tree._cpu.get(os.getpid(), 0.0)  # the workers' (this process's own is exact)
    y = np.load(root / "y.npy")
    coords = Collection(root / "c").reduced("birdnet", 8 if 8 in dims else max(dims))
    labels = MiniBatchKMeans(30, n_init=3, random_state=0).fit_predict(coords)
    keep = y >= 0
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "base_mb": base,
        "tree_mb": tree.peak / 2**20,
        "ari": adjusted_rand_score(y[keep], labels[keep]),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--dims", type=int, nargs="+", default=[2, 4, 8, 16])
    ap.add_argument("--share", nargs="+", default=["on", "off"], choices=["on", "off"])
    ap.add_argument("--sample-above", type=int, default=200_000)
    ap.add_argument("--sample-n", type=int, default=100_000)
    ap.add_argument("--jobs", type=int, default=None, help="worker processes for the sampled maps (default: cores)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        r = child(Path(args.child), args.share[0] == "on", args.dims, args.sample_above, args.sample_n, args.jobs)
        print(json.dumps(r))
        return
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; maps: {args.dims} + display")
    print(f"jobs: {args.jobs or 'every core'}")
    print(f"{'N':>9} {'share NN':>8} {'wall s':>8} {'cpu s':>8} {'peak MB':>8} {'tree MB':>8} {'ARI':>5}")
    from preprocess.testing import feature_collection

    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            root = Path(tmp) / str(n)
            root.mkdir()
            X, y = make_features(n)
            np.save(root / "X.npy", X)
            np.save(root / "y.npy", y)
            feature_collection(root / "c", {"birdnet": X})
            del X
            for share in args.share:
                cmd = [sys.executable, __file__, "--child", str(root), "--share", share, "--dims", *map(str, args.dims)]
                cmd += ["--sample-above", str(args.sample_above), "--sample-n", str(args.sample_n)]
                cmd += ["--jobs", str(args.jobs)] if args.jobs else []
                out = subprocess.run(cmd, capture_output=True, text=True)
                if out.returncode != 0:
                    print(f"{n:>9,} {share:>8} FAILED: {out.stderr.strip().splitlines()[-1:]}", flush=True)
                    continue
                r = json.loads(out.stdout.strip().splitlines()[-1])
                print(
                    f"{n:>9,} {share:>8} {r['wall_s']:>8.1f} {r['cpu_s']:>8.1f} {r['peak_mb']:>8.0f}"
                    f" {r['tree_mb']:>8.0f} {r['ari']:>5.2f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
