"""Query-by-example latency and recall: numpy brute force vs faiss exact vs the IVF index sonomap uses.

    python bench/similar.py [--sizes 100000,1000000] [--dim 1024] [--queries 100]

Synthetic clustered unit vectors (maths, not behaviour): 2,000 centres, each vector a centre plus noise.
Per size: single-query latency p50/p95 (ms) and recall@10 against the exact top-10, for

* numpy: ``x @ q`` then ``argpartition`` (what one would write by hand);
* faiss exact: ``faiss.knn`` inner product (the same computation as ``IndexFlatIP``, which sonomap uses up to
  ``EXACT_MAX_VECTORS``) on the same array, no copy;
* faiss IVF: ``IndexIVFFlat`` with sonomap's ``ivf_params(n)`` (nlist lists, nprobe scanned), built by
  ``preprocess.similar.make_index`` and filled in chunks like ``SimilarIndex.add``.

Memory: the data (n x dim float32: 4 GB at 1M x 1024) plus the IVF copy; freed after each size.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from preprocess.similar import ADD_CHUNK, SimilarIndex, _threads, ivf_params, make_index, normalize  # noqa: E402


def clustered(n: int, dim: int, *, seed: int = 0, n_centres: int = 2000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_centres, dim)).astype(np.float32)
    x = np.empty((n, dim), np.float32)
    for a in range(0, n, ADD_CHUNK):
        b = min(n, a + ADD_CHUNK)
        x[a:b] = centres[rng.integers(0, n_centres, b - a)] + 0.6 * rng.normal(size=(b - a, dim)).astype(np.float32)
        x[a:b] = normalize(x[a:b])
    return x


def _timed(fn, queries: np.ndarray) -> tuple[np.ndarray, list[float]]:
    out, times = [], []
    for q in queries:
        t = time.perf_counter()
        out.append(fn(q[None, :]))
        times.append((time.perf_counter() - t) * 1000)
    return np.concatenate(out), times


def bench_size(n: int, dim: int, n_queries: int, k: int = 10) -> list[tuple]:
    """Rows (n, method, p50 ms, p95 ms, recall@k, n queries) for one collection size."""
    import faiss

    t0 = time.perf_counter()
    x = clustered(n, dim)
    gen_s = time.perf_counter() - t0
    rng = np.random.default_rng(1)
    qi = rng.choice(n, n_queries, replace=False)
    queries = normalize(x[qi] + 0.05 * rng.normal(size=(len(qi), dim)).astype(np.float32))

    def exact(q: np.ndarray) -> np.ndarray:  # one thread, as SimilarIndex.search does for single queries
        with _threads(1):
            return faiss.knn(q, x, k, metric=faiss.METRIC_INNER_PRODUCT)[1]

    def brute(q: np.ndarray) -> np.ndarray:
        s = x @ q[0]
        top = np.argpartition(-s, k)[:k]
        return top[np.argsort(-s[top])][None, :]

    truth, t_exact = _timed(exact, queries)
    got_np, t_np = _timed(brute, queries[: min(n_queries, 30 if n > 200_000 else n_queries)])
    t0 = time.perf_counter()
    nlist, nprobe = ivf_params(n)
    sample = x[np.sort(rng.choice(n, size=min(n, 40 * nlist), replace=False))]
    index, meta = make_index(dim, n, sample, kind="ivf-flat")
    del sample
    ivf = SimilarIndex(index, meta)
    ivf.add(x)
    build_s = time.perf_counter() - t0
    got_ivf, t_ivf = _timed(lambda q: ivf.search(q, k)[1], queries)

    def recall(got: np.ndarray) -> float:
        return float(np.mean([len(set(g) & set(t)) / k for g, t in zip(got, truth[: len(got)], strict=True)]))

    print(f"# n={n:,}: data {gen_s:.1f} s, IVF train+add {build_s:.1f} s", flush=True)
    return [
        (n, name, np.percentile(times, 50), np.percentile(times, 95), r, len(times))
        for name, times, r in (
            ("numpy brute force", t_np, recall(got_np)),
            ("faiss exact (IndexFlatIP)", t_exact, 1.0),
            (f"faiss IVF-Flat nlist={nlist} nprobe={nprobe}", t_ivf, recall(got_ivf)),
        )
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--queries", type=int, default=100)
    args = ap.parse_args()
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        rows += bench_size(n, args.dim, args.queries)
        gc.collect()  # the data and the index of this size are gone before the next is made
    print(f"\nquery latency (single query, ms) and recall@10 vs exact, dim={args.dim}, 2 CPU cores (shared)")
    print(f"{'clips':>10}  {'method':<42} {'p50 ms':>8} {'p95 ms':>8} {'recall@10':>10} {'queries':>8}")
    for n, name, p50, p95, r, nq in rows:
        print(f"{n:>10,}  {name:<42} {p50:8.2f} {p95:8.2f} {r:10.3f} {nq:8d}")


if __name__ == "__main__":
    main()
