"""The k-nearest-neighbour graph under the density trees of :mod:`preprocess.cluster`, with faiss.

fast_hdbscan's Kruskal path spends 85-90 % of a DBSCAN tree's time in its numba KD-tree query. On 8-d
reduced coordinates a faiss inverted-file index (``IndexIVFFlat``, about sqrt(n) lists, :data:`NPROBE` probed)
finds the same neighbours for ~99.7 % of them at about a quarter of the CPU time, on one thread (faiss's
OpenMP threads cost more than they give on a busy machine). Up to :data:`EXACT_MAX` rows the search is exact
(one list of every row: faiss computes each distance directly, as the KD-tree does), so small inputs give
exactly the tree fast_hdbscan would.

:func:`spanning_tree` then runs fast_hdbscan's own mutual-reachability edge list and Kruskal on that graph:
same output as ``fast_hdbscan.hdbscan.compute_minimum_spanning_tree(X, min_samples=m, algorithm="kruskal",
knn_k=k)``.
"""

from __future__ import annotations

import math

import numpy as np

#: Up to this many rows the faiss search is exact (every list probed).
EXACT_MAX = 5_000
#: Lists probed per query above :data:`EXACT_MAX` rows (recall of the 10 nearest ~0.997 on 8-d mixtures).
NPROBE = 8
#: numba threads of :func:`knn_graph_lists`'s scan (0: numba's default, one per core).
SCAN_THREADS = 0
#: ``"faiss"`` (default) or ``"kdtree"`` (fast_hdbscan's numba KD-tree; kept for benchmarks and as fallback).
BACKEND = "faiss"


def knn_graph(X: np.ndarray, k: int, *, exact: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest rows of every row of ``X`` (float32 [n, d]), the row itself usually first.

    Returns ``(dist float64 [n, k] Euclidean, ascending; idx int32 [n, k])``; ``exact=None`` is exact up to
    :data:`EXACT_MAX` rows. Missing neighbours (k > n) are -1 with distance inf.
    """
    import faiss

    X = np.ascontiguousarray(X, dtype=np.float32)
    n, d = X.shape
    if exact is None:
        exact = n <= EXACT_MAX
    # exact: one list holding every row (no training); else ~sqrt(n) lists, >= 39 rows each (faiss warns below)
    nlist = 1 if exact else max(1, min(int(math.sqrt(n)), n // 39))
    quantizer = faiss.IndexFlatL2(d)
    index = faiss.IndexIVFFlat(quantizer, d, nlist)
    index.cp.niter = 10
    index.cp.seed = 0
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        if nlist == 1:
            quantizer.add(X.mean(axis=0, keepdims=True))  # a trained one-list quantizer: train() clusters nothing
        index.train(X)
        index.add(X)
        index.nprobe = nlist if exact else min(NPROBE, nlist)
        rdist, idx = index.search(X, k)
    finally:
        faiss.omp_set_num_threads(threads)
    dist = np.sqrt(np.maximum(rdist.astype(np.float64), 0.0))
    dist[idx < 0] = np.inf
    return dist, idx.astype(np.int32)


def knn_graph_lists(X: np.ndarray, k: int, *, nprobe: int = NPROBE) -> tuple[np.ndarray, np.ndarray]:
    """:func:`knn_graph` for the K-means cells of large inputs: same lists and probes, scanned ~40 % cheaper.

    faiss trains the lists (k-means, about sqrt(n)) and ranks each row's ``nprobe`` nearest lists (BLAS); a
    numba loop then scans those lists with a running top-``k``: the IVF search without faiss's per-list
    overhead on 8-d rows. Exact (one list) up to :data:`EXACT_MAX` rows. Same return as :func:`knn_graph`.
    """
    import faiss

    X = np.ascontiguousarray(X, dtype=np.float32)
    n, d = X.shape
    nlist = 1 if n <= EXACT_MAX else max(1, min(int(math.sqrt(n)), n // 39))
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        if nlist == 1:
            probes = np.zeros((n, 1), dtype=np.int64)
        else:
            quantizer = faiss.IndexFlatL2(d)
            km = faiss.Clustering(d, nlist)
            km.niter, km.seed = 10, 0
            km.train(X, quantizer)
            probes = quantizer.search(X, min(nprobe, nlist))[1]  # nearest lists first; column 0 = own list
    finally:
        faiss.omp_set_num_threads(threads)
    order = np.argsort(probes[:, 0], kind="stable")  # rows grouped by list: neighbouring queries share lists
    offsets = np.searchsorted(probes[order, 0], np.arange(nlist + 1)).astype(np.int64)
    import numba

    scan, before = _scan_lists(), numba.get_num_threads()
    numba.set_num_threads(max(1, min(SCAN_THREADS or before, numba.config.NUMBA_NUM_THREADS)))
    try:
        rdist, pos = scan(np.ascontiguousarray(X[order]), offsets, np.ascontiguousarray(probes[order]), k)
    finally:
        numba.set_num_threads(before)
    inverse = np.empty(n, dtype=np.int64)
    inverse[order] = np.arange(n)
    rdist, pos = rdist[inverse], pos[inverse]
    idx = np.where(pos >= 0, order[np.maximum(pos, 0)], -1).astype(np.int32)
    dist = np.sqrt(np.maximum(rdist.astype(np.float64), 0.0))
    dist[idx < 0] = np.inf
    return dist, idx


_SCAN_LISTS = None


def _scan_lists():
    """numba-compiled (cached): ``scan(Xs, offsets, probes, k) -> (rdist float32 [n, k], pos int32 [n, k])``.

    Rows ``Xs`` sorted by list (list ``l`` holds rows ``offsets[l]:offsets[l+1]``); each row scans the lists in
    its row of ``probes`` and keeps its ``k`` smallest squared distances, ascending (positions in ``Xs``).
    """
    global _SCAN_LISTS
    if _SCAN_LISTS is None:
        import numba

        @numba.njit(cache=True, boundscheck=False, fastmath=True, parallel=True)
        def scan(Xs, offsets, probes, k):  # pragma: no cover - compiled
            n, d = Xs.shape
            rdist = np.full((n, k), np.inf, dtype=np.float32)
            pos = np.full((n, k), -1, dtype=np.int32)
            for i in numba.prange(n):
                x, dk, ik = Xs[i], rdist[i], pos[i]
                worst = np.float32(np.inf)
                for pj in range(probes.shape[1]):
                    lst = probes[i, pj]
                    for j in range(offsets[lst], offsets[lst + 1]):
                        y = Xs[j]
                        s = np.float32(0.0)
                        for t in range(d):
                            u = x[t] - y[t]
                            s += u * u
                        if s < worst:
                            p = k - 1
                            while p > 0 and dk[p - 1] > s:
                                dk[p] = dk[p - 1]
                                ik[p] = ik[p - 1]
                                p -= 1
                            dk[p] = s
                            ik[p] = j
                            worst = dk[k - 1]
            return rdist, pos

        _SCAN_LISTS = scan
    return _SCAN_LISTS


def spanning_tree(
    X: np.ndarray, m: int, knn_k: int, *, lists: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Kruskal forest over mutual reachability (core = ``m``-th neighbour) on the ``knn_k``-NN graph of ``X``.

    Returns ``(mst float64 [n-1, 3] src, dst, weight with +inf edges between separate pieces;
    neighbours int32 [n, m] nearest first; core distance float64 [n])``. Needs ``1 <= m < n - 1``.
    ``lists=True`` (K-means cells of large inputs): the graph from :func:`knn_graph_lists`.
    """
    if BACKEND != "faiss":
        from fast_hdbscan.hdbscan import compute_minimum_spanning_tree

        mst, nb, core = compute_minimum_spanning_tree(X, min_samples=m, algorithm="kruskal", knn_k=knn_k)
        return np.asarray(mst, dtype=np.float64), np.asarray(nb), np.asarray(core, dtype=np.float64)
    from fast_hdbscan.kruskal import _build_mrd_edges_knn, _finish_mst, _resolve_cl_params, _run_kruskal_core

    n = len(X)
    k_query = min(max(knn_k, m) + 1, n)  # +1 for the row itself, as fast_hdbscan queries
    dist, idx = (knn_graph_lists if lists else knn_graph)(X, k_query)
    core = dist[:, m].copy() if m < k_query else np.full(n, np.inf)
    knn_dists = np.ascontiguousarray(dist[:, 1:])
    knn_idx = np.ascontiguousarray(idx[:, 1:])
    weights, rows, cols = _build_mrd_edges_knn(knn_idx, knn_dists, core)
    valid = (rows != cols) & np.isfinite(weights)
    weights, rows, cols = weights[valid], rows[valid], cols[valid]
    order = np.argsort(weights, kind="stable").astype(np.int32)
    mst, predecessors = _run_kruskal_core(weights, rows, cols, order, n, _resolve_cl_params(n))
    mst = _finish_mst(mst, predecessors, n)
    return np.asarray(mst, dtype=np.float64), np.ascontiguousarray(idx[:, 1 : m + 1]), core
