"""Cluster latency from request to result, through the real server (Socket.IO test client), and peak memory.

    .venv/bin/python bench/cluster.py [--sizes 10000 100000 1000000] [--algorithms hdbscan dbscan kmeans] [--repeats 5]

Data: realistic synthetic 8-d reduced coordinates with known clusters (30 anisotropic Gaussian groups of
Zipf-distributed sizes, UMAP-like scale, 10 % uniform background noise), written as a collection. Each
(N, algorithm) runs in a fresh process (numba compiled beforehand, as the server's warm-up does):
"first" = the first request (builds the density tree), then ``--repeats`` slider moves that change the
cut parameter (eps / min_cluster_size / n_clusters) give p50 / p95 of re-clustering. Peak memory is the
process's maximum RSS. ARI is against the known groups (noise points excluded from the truth).
Targets: re-clustering 100,000 clips < 2 s (HDBSCAN, DBSCAN); 1,000,000 clips < 60 s without running out of memory;
DBSCAN at 1,000,000 clips < 30 s.

Baseline side by side: ``sklearn-dbscan`` (in ``--algorithms``) is scikit-learn's DBSCAN on the same coordinates with
the same eps and min_samples, called directly (no server; its "first" is the fit); it runs only up to
``--baseline-max`` clips (its eps-neighbourhood lists grow with N x density: at 1M it needs many GB).
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

SLIDERS = {
    "hdbscan": [{"min_cluster_size": m} for m in (50, 80, 120, 160, 200, 300, 400)],
    "dbscan": [{"eps": f, "min_samples": 10} for f in (1.0, 0.8, 0.9, 1.1, 1.2, 1.3, 0.7)],  # x the server's default
    "kmeans": [{"n_clusters": k} for k in (30, 25, 35, 20, 40, 15, 45)],
}


def make_embeddings(n: int, *, n_groups: int = 30, noise: float = 0.1, seed: int = 0, noise_kind: str = "bridges"):
    """8-d points in ``n_groups`` Gaussian groups + ``noise`` share of noise; y = group, -1 for noise.

    ``noise_kind="bridges"``: noise lies along segments between random group centres (jitter 0.3), as UMAP leaves
    stray points on its low-dimensional manifold; ``"uniform"``: uniform in the 8-d box (a KD-tree's worst case).
    """
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, n_groups + 1) ** 0.8
    weights /= weights.sum()
    n_noise = int(n * noise)
    group = rng.choice(n_groups, size=n - n_noise, p=weights)
    centers = rng.uniform(0, 12, size=(n_groups, 8))
    scales = rng.uniform(0.1, 0.35, size=(n_groups, 8))
    X = centers[group] + rng.normal(size=(len(group), 8)) * scales[group]
    if noise_kind == "uniform":
        stray = rng.uniform(-1, 13, size=(n_noise, 8))
    else:
        a, b = rng.integers(0, n_groups, size=(2, n_noise))
        t = rng.uniform(size=(n_noise, 1))
        stray = centers[a] * (1 - t) + centers[b] * t + rng.normal(scale=0.3, size=(n_noise, 8))
    X = np.concatenate([X, stray]).astype(np.float32)
    y = np.concatenate([group, np.full(n_noise, -1)])
    order = rng.permutation(n)
    return X[order], y[order]


def write_collection(root: Path, X: np.ndarray) -> None:
    import pandas as pd

    from preprocess.testing import CollectionWriter

    n = len(X)
    rid = np.arange(n) // 100
    clips = pd.DataFrame({"clip_id": np.arange(n), "recording_id": rid, "start_s": (np.arange(n) % 100) * 3.0})
    clips["end_s"] = clips["start_s"] + 3.0
    clips["fmin_hz"], clips["fmax_hz"] = 0.0, 11025.0
    clips["sheet"], clips["cell"] = np.arange(n) // 1024, np.arange(n) % 1024
    clips["audio_sprite"], clips["audio_offset"], clips["audio_length"] = np.arange(n) // 1024, 0, 66150
    n_rec = int(rid.max()) + 1
    recs = pd.DataFrame({"recording_id": np.arange(n_rec), "path": [f"r{i}.flac" for i in range(n_rec)]})
    recs["label"] = [f"species {i % 40}" for i in range(n_rec)]
    w = CollectionWriter(root)
    w.clips(clips)
    w.recordings(recs)
    w.features("birdnet", np.zeros((1, 1), np.float32), dim=1024)
    w.reduction("birdnet", coords={8: X}, display=X[:, :2].copy(), dims=[2, 8])
    w.manifest(config={}, counts={"clips": n})


def _eps0(collections: Path) -> float:
    """The DBSCAN eps the browser starts from (GET /api/collections/<c>) for min_samples 10."""
    from server.views.api import cluster_defaults

    X = np.load(collections / "bench" / "reductions" / "birdnet" / "dims_8.npy")
    return cluster_defaults(X, min_samples=10)["dbscan"]["eps"]["default"]


def run_sklearn(collections: Path) -> dict:
    """scikit-learn's DBSCAN at the first request's parameters, timed on its own (the library a user would pick)."""
    from sklearn.cluster import DBSCAN
    from sklearn.metrics import adjusted_rand_score

    y = np.load(collections / "truth.npy")
    X = np.load(collections / "bench" / "reductions" / "birdnet" / "dims_8.npy")
    eps = round(SLIDERS["dbscan"][0]["eps"] * _eps0(collections), 4)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0, cpu0 = time.perf_counter(), time.process_time()
    labels = DBSCAN(eps=eps, min_samples=SLIDERS["dbscan"][0]["min_samples"]).fit_predict(X)
    first_s, first_cpu_s = time.perf_counter() - t0, time.process_time() - cpu0
    truth = y >= 0
    return {
        "first_s": first_s,
        "first_cpu_s": first_cpu_s,
        "p50_s": float("nan"),
        "p95_s": float("nan"),
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "base_mb": rss0,
        "ari": adjusted_rand_score(y[truth], labels[truth]),
        "n_clusters": int(labels.max()) + 1,
        "noise": float((labels < 0).mean()),
        "note": "scikit-learn DBSCAN, direct call; every slider move is a new fit",
    }


def run_one(collections: Path, algorithm: str, repeats: int, knn: str = "faiss") -> dict:
    """In a fresh process: first request, then slider moves; latencies request -> job:result."""
    from sklearn.metrics import adjusted_rand_score

    if algorithm == "sklearn-dbscan":
        return run_sklearn(collections)

    from preprocess import cluster_knn

    cluster_knn.BACKEND = knn  # the density trees' k-NN graph: faiss (default) or fast_hdbscan's KD-tree

    from server.app import create_app
    from server.settings import Settings
    from server.warmup import _warm_fast_hdbscan

    _warm_fast_hdbscan()  # numba compiled beforehand, as the server's background warm-up does
    y = np.load(collections / "truth.npy")
    app, socketio = create_app(Settings(collections_dir=collections, warmup=False))
    sc = socketio.test_client(app, flask_test_client=app.test_client())
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def request(params: dict) -> tuple[float, dict]:
        t0 = time.perf_counter()
        ack = sc.emit(
            "cluster", {"collection": "bench", "dims": 8, "algorithm": algorithm, "params": params}, callback=True
        )
        assert ack["ok"], ack
        while True:
            for ev in sc.get_received():
                if ev["name"] in ("job:result", "job:error") and ev["args"][0]["job_id"] == ack["job_id"]:
                    assert ev["name"] == "job:result", ev["args"][0]
                    return time.perf_counter() - t0, ev["args"][0]
            time.sleep(0.002)

    moves = SLIDERS[algorithm][: repeats + 1]
    if algorithm == "dbscan":  # eps relative to the default the browser gets from GET /api/collections/<c>
        eps0 = _eps0(collections)
        moves = [{**m, "eps": round(m["eps"] * eps0, 4)} for m in moves]
    cpu0 = time.process_time()
    first_s, res = request(moves[0])
    first_cpu_s = time.process_time() - cpu0
    labels = np.frombuffer(res["labels"], dtype="<i4")
    truth = y >= 0
    ari = adjusted_rand_score(y[truth], labels[truth])
    times = [request(p)[0] for p in moves[1:]]
    return {
        "first_s": first_s,
        "first_cpu_s": first_cpu_s,
        "p50_s": float(np.percentile(times, 50)),
        "p95_s": float(np.percentile(times, 95)),
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "base_mb": rss0,
        "ari": ari,
        "n_clusters": res["n_clusters"],
        "noise": res["n_noise"] / len(labels),
        "note": res["note"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument(
        "--algorithms",
        nargs="+",
        default=["hdbscan", "dbscan", "sklearn-dbscan", "kmeans"],
        choices=["hdbscan", "dbscan", "sklearn-dbscan", "kmeans"],
    )
    ap.add_argument("--baseline-max", type=int, default=200_000, help="largest N for sklearn-dbscan")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--noise", choices=["bridges", "uniform"], default="bridges", help="where the 10%% noise lies")
    ap.add_argument("--knn", nargs="+", default=["faiss"], choices=["faiss", "kdtree"],
                    help="k-NN graph under the density trees; several run side by side")  # fmt: skip
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(run_one(Path(args.child[0]), args.child[1], args.repeats, args.child[2])))
        return
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; noise: {args.noise}", flush=True)
    print(
        f"{'N':>9} {'algorithm':>14} {'k-NN':>6} {'first s':>8} {'cpu s':>6} {'p50 s':>7} {'p95 s':>7} {'peak MB':>8} {'ARI':>5} {'k':>4} {'noise':>6} {'load':>5}  note"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            root = Path(tmp) / str(n)
            X, y = make_embeddings(n, noise_kind=args.noise)
            write_collection(root / "bench", X)
            np.save(root / "truth.npy", y)
            del X
            for alg, knn in [
                (a, k) for a in args.algorithms for k in (args.knn if a in SLIDERS and a != "kmeans" else ["-"])
            ]:
                if alg == "sklearn-dbscan" and n > args.baseline_max:
                    print(f"{n:>9,} {alg:>14} {knn:>6} skipped: above --baseline-max {args.baseline_max:,}", flush=True)
                    continue
                cmd = [sys.executable, __file__, "--child", str(root), alg, knn if knn != "-" else "faiss"]
                out = subprocess.run(cmd + ["--repeats", str(args.repeats)], capture_output=True, text=True)
                if out.returncode != 0:
                    print(f"{n:>9,} {alg:>14} {knn:>6} FAILED: {out.stderr.strip().splitlines()[-1:]}", flush=True)
                    continue
                r = json.loads(out.stdout.strip().splitlines()[-1])
                print(
                    f"{n:>9,} {alg:>14} {knn:>6} {r['first_s']:>8.2f} {r['first_cpu_s']:>6.1f} {r['p50_s']:>7.3f} {r['p95_s']:>7.3f} {r['peak_mb']:>8.0f}"
                    f" {r['ari']:>5.2f} {r['n_clusters']:>4} {r['noise']:>6.1%} {os.getloadavg()[0]:>5.1f}  {r['note'][:60]}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
