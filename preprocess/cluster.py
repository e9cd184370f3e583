"""Clustering of reduced coordinates: DBSCAN, HDBSCAN, K-means behind one validated interface.

Used by ``python -m preprocess evaluate`` and by the server's ``cluster`` job.

Speed and memory come from one idea: DBSCAN at every ``eps`` and HDBSCAN at every ``min_cluster_size`` are cuts
of one minimum spanning tree over mutual-reachability distances (core distance = distance to the
``min_samples``-th neighbour). :class:`Clusterer` builds that tree once per ``min_samples`` (fast_hdbscan's
Kruskal on a k-nearest-neighbour graph, O(n·k) memory) and caches it, so a slider move on ``eps``,
``min_cluster_size`` or ``cluster_selection_epsilon`` is a cut that takes milliseconds, and DBSCAN never builds
the eps-neighbourhood lists that made sklearn's DBSCAN run out of memory.

Large inputs (more than :data:`LARGE_N` rows): DBSCAN splits the data into K-means cells first
(``partition="auto"|"off"|k``) and builds one tree per cell (clusters cannot cross cell borders); HDBSCAN is fitted
on a random sample of :data:`SAMPLE_N` rows (``min_cluster_size`` scaled by the sampling fraction) and every other
row takes the label of its nearest sampled row.
Each result says which approximation it used in :attr:`Clusterer.note_`.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from typing import Any

import numpy as np

from .errors import MissingDependencyError, ParameterError
from .progress import CancelCheck, Progress, check_cancel

#: Parameter rules, declared once: name -> (type, min, max, default). ``partition`` also takes "auto" / "off".
ALGORITHMS: dict[str, dict[str, tuple[type, float, float, Any]]] = {
    "dbscan": {
        "eps": (float, 1e-6, 100.0, 0.5),
        "min_samples": (int, 2, 200, 6),  # 6 (itself included) shares HDBSCAN's default tree (5 neighbours)
        "partition": (int, 2, 1000, "auto"),
    },
    "hdbscan": {
        "min_cluster_size": (int, 2, 100000, 10),
        "min_samples": (int, 1, 200, 5),
        "cluster_selection_epsilon": (float, 0.0, 100.0, 0.0),
    },
    "kmeans": {"n_clusters": (int, 2, 1000, 10)},
}

#: Values a parameter takes besides its numeric range.
CHOICES: dict[tuple[str, str], tuple[str, ...]] = {("dbscan", "partition"): ("auto", "off")}

#: One-line help per parameter, shown by the browser next to its slider.
HELP: dict[tuple[str, str], str] = {
    ("dbscan", "eps"): "neighbourhood radius in reduced-coordinate units",
    ("dbscan", "min_samples"): "points (itself included) within eps that make a point a core point",
    ("dbscan", "partition"): "K-means cells before DBSCAN: auto (only above 200,000 clips), off, or a number of cells;"
    " clusters cannot cross cells",
    ("hdbscan", "min_cluster_size"): "smallest group reported as a cluster",
    ("hdbscan", "min_samples"): "neighbours that define local density; larger = more conservative, more noise",
    ("hdbscan", "cluster_selection_epsilon"): "merge clusters closer than this distance",
    ("kmeans", "n_clusters"): "number of clusters (every clip is assigned; no noise)",
}

#: Above this many rows DBSCAN partitions (``partition="auto"``) and HDBSCAN fits on a sample.
LARGE_N = 200_000
#: Rows of that HDBSCAN sample.
SAMPLE_N = 100_000
#: Above this many rows K-means is mini-batch K-means.
KMEANS_MINIBATCH_N = 50_000
#: Target rows per K-means cell when ``partition="auto"`` splits.
CELL_N = 50_000  # tree cost grows ~n^1.3 here, so smaller cells are cheaper in total (and cut more clusters)


def algorithms_json() -> dict[str, dict[str, dict[str, Any]]]:
    """ALGORITHMS as JSON for the browser: ``{alg: {param: {type, min, max, default, help[, choices]}}}``."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for alg, rules in ALGORITHMS.items():
        out[alg] = {}
        for name, (typ, lo, hi, default) in rules.items():
            entry = {"type": typ.__name__, "min": lo, "max": hi, "default": default, "help": HELP.get((alg, name), "")}
            if (alg, name) in CHOICES:
                entry["choices"] = list(CHOICES[(alg, name)])
            out[alg][name] = entry
    return out


def allowed_text(algorithm: str) -> str:
    """Human-readable rules of one algorithm, e.g. ``eps: float in [1e-06, 100.0]; ...``."""
    parts = []
    for name, (typ, lo, hi, _default) in ALGORITHMS[algorithm].items():
        extra = "".join(f" or {c!r}" for c in CHOICES.get((algorithm, name), ()))
        parts.append(f"{name}: {typ.__name__} in [{lo}, {hi}]{extra}")
    return "; ".join(parts)


def validate_params(algorithm: str, params: dict[str, Any] | None) -> dict[str, Any]:
    """Return ``params`` completed with defaults, or raise ParameterError saying what is allowed."""
    if not isinstance(algorithm, str) or algorithm not in ALGORITHMS:
        raise ParameterError(f"unknown algorithm {algorithm!r}; allowed: {', '.join(ALGORITHMS)}")
    if params is not None and not isinstance(params, dict):
        raise ParameterError(f"params must be an object like {{name: value}}; allowed: {allowed_text(algorithm)}")
    rules = ALGORITHMS[algorithm]
    params = dict(params or {})
    unknown = set(params) - set(rules)
    if unknown:
        raise ParameterError(f"unknown parameter(s) {sorted(unknown)} for {algorithm}; allowed: {', '.join(rules)}")
    out = {}
    for name, (typ, lo, hi, default) in rules.items():
        value = params.get(name, default)
        choices = CHOICES.get((algorithm, name), ())
        if isinstance(value, str) and value in choices:
            out[name] = value
            continue
        rule = f"{typ.__name__} in [{lo}, {hi}]" + "".join(f" or {c!r}" for c in choices)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ParameterError(f"{algorithm}.{name} must be {rule}, got {value!r}")
        if typ is int and float(value) != int(value):
            raise ParameterError(f"{algorithm}.{name} must be {rule}, got {value!r}")
        value = typ(value)
        if not lo <= value <= hi:
            raise ParameterError(f"{algorithm}.{name} must be {rule}, got {value}")
        out[name] = value
    return out


def cluster(
    X: np.ndarray,
    *,
    algorithm: str,
    params: dict[str, Any] | None = None,
    random_state: int = 0,
    progress: Progress | None = None,
    should_cancel: CancelCheck | None = None,
) -> np.ndarray:
    """Cluster rows of ``X`` (float32 [n, d]); return int32 [n] labels, -1 for noise, 0 = largest cluster."""
    return Clusterer(X, random_state=random_state).fit_predict(
        algorithm=algorithm, params=params, progress=progress, should_cancel=should_cancel
    )


class _Tree:
    """Spanning forest over mutual-reachability distances for one ``min_samples`` (and one partition)."""

    def __init__(self, mst: np.ndarray, core: np.ndarray, neighbors: np.ndarray, cells: np.ndarray | None):
        order = np.argsort(mst[:, 2], kind="stable")
        self.src = mst[order, 0].astype(np.int64)
        self.dst = mst[order, 1].astype(np.int64)
        self.weight = mst[order, 2]
        self.core = core
        self.neighbors = neighbors
        self.cells = cells
        self.nearest: np.ndarray | None = None  # sampled trees: nearest sampled row of every other row (cached)


class Clusterer:
    """Clusters one array many times, caching the density trees (scikit-learn style: parameters in, ``labels_`` out).

    Parameters
    ----------
    X : float32 [n, d]
        Rows to cluster (reduced coordinates).
    random_state : int
        Seed for K-means, partitions and samples.
    max_trees : int
        How many trees (one per ``min_samples``/partition) to keep; least recently used go first.

    Thread-safe: two threads asking for the same tree build it once.
    """

    def __init__(self, X: np.ndarray, *, random_state: int = 0, max_trees: int = 3):
        X = np.ascontiguousarray(X, dtype=np.float32)
        if X.ndim != 2 or len(X) == 0:
            raise ParameterError(f"X must be a non-empty 2-d array [n, d], got shape {X.shape}")
        if not np.isfinite(X).all():
            raise ParameterError("X has NaN or infinite values; clustering needs finite coordinates")
        self.X = X
        self.random_state = random_state
        self.max_trees = max_trees
        self._trees: OrderedDict[tuple, _Tree] = OrderedDict()
        self._locks: dict[tuple, threading.Lock] = {}
        self._lock = threading.Lock()
        self._cells: dict[int, np.ndarray] = {}
        self.note_ = ""
        self.labels_: np.ndarray | None = None

    # public -----------------------------------------------------------------------------------
    def fit_predict(
        self,
        *,
        algorithm: str,
        params: dict[str, Any] | None = None,
        progress: Progress | None = None,
        should_cancel: CancelCheck | None = None,
    ) -> np.ndarray:
        """Return int32 [n] labels (-1 noise; clusters numbered by decreasing size); set ``labels_`` and ``note_``."""
        self.labels_, self.note_ = self.run(
            algorithm=algorithm, params=params, progress=progress, should_cancel=should_cancel
        )
        return self.labels_

    def run(
        self,
        *,
        algorithm: str,
        params: dict[str, Any] | None = None,
        progress: Progress | None = None,
        should_cancel: CancelCheck | None = None,
    ) -> tuple[np.ndarray, str]:
        """Like :meth:`fit_predict` but returns ``(labels, note)`` and stores nothing (safe across threads)."""
        p = validate_params(algorithm, params)
        report = progress or (lambda *a, **k: None)
        check_cancel(should_cancel)
        if algorithm == "kmeans":
            labels, note = self._kmeans(p, report)
        elif algorithm == "hdbscan":
            labels, note = self._hdbscan(p, report, should_cancel)
        else:
            labels, note = self._dbscan(p, report, should_cancel)
        check_cancel(should_cancel)
        return _relabel_by_size(labels), note

    def has_tree(self, *, algorithm: str, params: dict[str, Any]) -> bool:
        """Whether this request would only cut a cached tree (milliseconds) rather than build one."""
        p = validate_params(algorithm, params)
        if algorithm == "kmeans":
            return False
        return self._tree_key(algorithm, p) in self._trees

    # algorithms -------------------------------------------------------------------------------
    def _kmeans(self, p: dict[str, Any], report: Progress) -> tuple[np.ndarray, str]:
        from sklearn.cluster import KMeans, MiniBatchKMeans
        from threadpoolctl import threadpool_limits

        n = len(self.X)
        k = min(p["n_clusters"], n)
        report("cluster", 0, 1, f"K-means, k={k}")
        if n > KMEANS_MINIBATCH_N:
            model = MiniBatchKMeans(n_clusters=k, n_init=3, batch_size=4096, random_state=self.random_state)
            note = f"mini-batch K-means (more than {KMEANS_MINIBATCH_N:,} clips)"
        else:
            model = KMeans(n_clusters=k, n_init=2, random_state=self.random_state)
            note = ""
        # small inputs: OpenMP threads cost more than they give (0.3 s vs 0.06 s at 257 clips on 2 busy cores)
        with threadpool_limits(1 if n < 20_000 else None):
            labels = model.fit_predict(self.X)
        report("cluster", 1, 1, f"K-means, k={k}")
        return labels, note

    def _tree_key(self, algorithm: str, p: dict[str, Any]) -> tuple:
        """("tree", rows, m): DBSCAN(min_samples=m+1) and HDBSCAN(min_samples=m) on all rows share one tree."""
        if algorithm == "hdbscan":
            return ("tree", "sample" if len(self.X) > LARGE_N else 1, p["min_samples"])
        return ("tree", self._n_cells(p["partition"]), p["min_samples"] - 1)

    def _n_cells(self, partition: Any) -> int:
        n = len(self.X)
        if partition == "off":
            return 1
        if partition == "auto":
            return 1 if n <= LARGE_N else int(math.ceil(n / CELL_N))
        return max(1, min(int(partition), n // 2 or 1))

    def _dbscan(self, p: dict[str, Any], report: Progress, should_cancel: CancelCheck | None) -> tuple[np.ndarray, str]:
        key = self._tree_key("dbscan", p)
        n_cells, m = key[1], key[2]
        tree = self._get_tree(key, lambda: self._build_partitioned(n_cells, m, report, should_cancel))
        eps = p["eps"]
        report("cluster", 0, 1, f"cutting the tree at eps={eps:g}")
        labels = _cut(self.X, tree, eps)
        report("cluster", 1, 1, f"cut at eps={eps:g}")
        note = ""
        if n_cells > 1:
            note = (
                f"DBSCAN ran inside {n_cells} K-means cells of about {len(self.X) // n_cells:,} clips;"
                " clusters cannot cross cell borders, so a group split by a border shows as two clusters"
            )
        return labels, note

    def _hdbscan(
        self, p: dict[str, Any], report: Progress, should_cancel: CancelCheck | None
    ) -> tuple[np.ndarray, str]:
        from fast_hdbscan.hdbscan import clusters_from_spanning_tree

        key = self._tree_key("hdbscan", p)
        mode, m = key[1], key[2]
        n = len(self.X)
        sample = self._sample() if mode == "sample" else None
        tree = self._get_tree(key, lambda: self._build(sample, m, report, should_cancel))
        report("cluster", 0, 1, "selecting clusters from the tree")
        mst = np.column_stack([tree.src, tree.dst, tree.weight]).astype(np.float64)
        n_fit = n if sample is None else len(sample)
        # a sample holds n_fit/n of each cluster: scale the size threshold with it
        min_size = max(2, round(p["min_cluster_size"] * n_fit / n))
        if n_fit < 2 or len(mst) != n_fit - 1:
            labels_fit = np.full(n_fit, -1, dtype=np.int64)
        else:
            labels_fit = clusters_from_spanning_tree(
                mst,
                min_cluster_size=min(min_size, n_fit),
                cluster_selection_epsilon=float(p["cluster_selection_epsilon"]),
            )[0]
        check_cancel(should_cancel)
        if sample is None:
            labels, note = labels_fit, ""
        else:
            report("cluster", 0, 1, "placing the other clips by their nearest sampled clip")
            labels = np.empty(n, dtype=np.int64)
            labels[sample] = labels_fit
            rest = np.setdiff1d(np.arange(n), sample, assume_unique=True)
            if tree.nearest is None:  # independent of the cut: computed once per tree
                tree.nearest = _nearest(self.X[sample], self.X[rest], should_cancel)
            labels[rest] = labels_fit[tree.nearest]
            note = (
                f"HDBSCAN fitted on a random sample of {len(sample):,} of {n:,} clips (min_cluster_size scaled to"
                f" {min_size}); every other clip takes the cluster of its nearest sampled clip"
            )
        report("cluster", 1, 1, "clusters selected")
        return labels, note

    # trees ------------------------------------------------------------------------------------
    def _get_tree(self, key: tuple, build) -> _Tree:
        with self._lock:
            if key in self._trees:
                self._trees.move_to_end(key)
                return self._trees[key]
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:  # a second thread asking for the same tree waits for the first one's
            with self._lock:
                if key in self._trees:
                    self._trees.move_to_end(key)
                    return self._trees[key]
            tree = build()
            with self._lock:
                self._trees[key] = tree
                while len(self._trees) > self.max_trees:
                    self._trees.popitem(last=False)
            return tree

    def _sample(self) -> np.ndarray:
        rng = np.random.default_rng(self.random_state)
        return np.sort(rng.choice(len(self.X), size=min(SAMPLE_N, len(self.X)), replace=False))

    def _build(self, rows: np.ndarray | None, m: int, report: Progress, should_cancel: CancelCheck | None) -> _Tree:
        X = self.X if rows is None else self.X[rows]
        report("tree", 0, 1, f"building the density tree of {len(X):,} clips (min_samples={m})")
        mst, core, neighbors = _spanning_tree(X, m)
        check_cancel(should_cancel)
        report("tree", 1, 1, "density tree built")
        return _Tree(mst, core, neighbors, None)

    def _build_partitioned(self, n_cells: int, m: int, report: Progress, should_cancel: CancelCheck | None) -> _Tree:
        n = len(self.X)
        if n_cells <= 1:
            return self._build(None, m, report, should_cancel)
        cells = self._partition(n_cells, report)
        msts, core = [], np.full(n, np.inf)
        neighbors = np.full((n, max(m, 1)), -1, dtype=np.int32)
        order = np.argsort(cells, kind="stable")
        bounds = np.searchsorted(cells[order], np.arange(n_cells + 1))
        for c in range(n_cells):
            check_cancel(should_cancel)
            report("tree", c, n_cells, f"building the density tree of cell {c + 1}/{n_cells}")
            rows = order[bounds[c] : bounds[c + 1]]
            if len(rows) == 0:
                continue
            mst_c, core_c, nb_c = _spanning_tree(self.X[rows], m, cell=True)
            mst_c = mst_c.copy()
            mst_c[:, 0] = rows[mst_c[:, 0].astype(np.int64)]
            mst_c[:, 1] = rows[mst_c[:, 1].astype(np.int64)]
            msts.append(mst_c)
            core[rows] = core_c
            valid = nb_c >= 0
            mapped = np.where(valid, rows[np.where(valid, nb_c, 0)], -1)
            neighbors[rows, : mapped.shape[1]] = mapped
        report("tree", n_cells, n_cells, "density trees built")
        return _Tree(np.concatenate(msts) if msts else np.zeros((0, 3)), core, neighbors, cells)

    def _partition(self, n_cells: int, report: Progress) -> np.ndarray:
        if n_cells not in self._cells:
            from sklearn.cluster import MiniBatchKMeans

            report("partition", 0, 1, f"splitting into {n_cells} K-means cells")
            km = MiniBatchKMeans(n_clusters=n_cells, n_init=1, batch_size=8192, random_state=self.random_state)
            self._cells[n_cells] = km.fit_predict(self.X).astype(np.int64)
            report("partition", 1, 1, f"{n_cells} K-means cells")
        return self._cells[n_cells]


def _spanning_tree(X: np.ndarray, m: int, *, cell: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mst [n-1, 3] src,dst,weight; core distance [n]; neighbour ids [n, m] nearest first) for core = m-th neighbour.

    ``cell=True``: one K-means cell of a large input (cheaper k-NN lists and bridging; see ``cluster_knn``).
    """
    n = len(X)
    if m < 1 or n <= m + 1:
        # Too few points for a density estimate (or min_samples 1 with DBSCAN): single linkage on the raw distances.
        from scipy.sparse.csgraph import minimum_spanning_tree
        from scipy.spatial.distance import cdist

        if n > 5000:
            raise ParameterError("min_samples must be at least 2 for DBSCAN on more than 5,000 clips")
        if n == 1:
            return np.zeros((0, 3)), np.zeros(1), np.zeros((1, 0), dtype=np.int64)
        D = cdist(X, X)
        coo = minimum_spanning_tree(np.maximum(D, 1e-12)).tocoo()
        mst = np.column_stack([coo.row, coo.col, D[coo.row, coo.col]]).astype(np.float64)
        nb = np.argsort(D, axis=1)[:, 1 : max(m, 0) + 1]
        core = D[np.arange(n)[:, None], nb][:, -1] if m >= 1 else np.zeros(n)
        return mst, core, nb
    try:
        from .cluster_knn import spanning_tree
    except ImportError as e:  # pragma: no cover - listed in requirements
        raise MissingDependencyError(
            "clustering needs fast_hdbscan and faiss: pip install fast_hdbscan faiss-cpu"
        ) from e
    mst, neighbors, core = spanning_tree(X, m, _knn_k(m), lists=cell)  # faiss k-NN graph (preprocess/cluster_knn.py)
    return (
        _bridge_components(X, mst, core, brute=cell),
        core,
        np.ascontiguousarray(np.asarray(neighbors)[:, :m], dtype=np.int32),
    )


def _knn_k(m: int) -> int:
    """Neighbours per row in the k-NN graph the tree is built on (the k-NN query is most of the cost)."""
    return max(m + 1, 10)  # was max(2m, 15): the query is ~40 % cheaper, the bridging keeps it exact across pieces


def _bridge_components(X: np.ndarray, mst: np.ndarray, core: np.ndarray, *, brute: bool = False) -> np.ndarray:
    """Replace the +inf edges Kruskal adds between separate pieces of the k-NN graph by the true shortest ones.

    Groups further apart than every member's k-th neighbour are not linked in a k-NN graph; Borůvka rounds over
    those few pieces (fast_hdbscan's component-aware KD-tree query) find the exact mutual-reachability edges
    between them, so a large ``eps`` merges them just as DBSCAN would. ``brute=True`` (the large-input trees):
    when the rows outside the largest piece are few, exact brute-force rounds from those rows alone instead
    (the KD-tree rounds query every row and cost more than the tree itself there).
    """
    inf = ~np.isfinite(mst[:, 2])
    if not inf.any():
        return mst
    if brute:
        bridged = _bridge_brute(X, mst[~inf], core)
        if bridged is not None:
            return bridged
    from fast_hdbscan.boruvka import boruvka_tree_query, merge_components, update_component_vectors
    from fast_hdbscan.disjoint_set import ds_rank_create
    from fast_hdbscan.numba_kdtree import build_kdtree

    n = len(X)
    finite = mst[~inf]
    tree = build_kdtree(X)
    ds = ds_rank_create(n)
    _union_all()(ds.parent, ds.rank, finite[:, 0].astype(np.int32), finite[:, 1].astype(np.int32))
    point_components = np.arange(n)
    node_components = np.full(tree.idx_start.shape[0], -1)
    update_component_vectors(tree, ds, node_components, point_components)
    core_rdist = (core.astype(np.float32)) ** 2
    edges = [finite]
    n_components = len(np.unique(point_components))
    while n_components > 1:
        dist, idx = boruvka_tree_query(tree, node_components, point_components, core_rdist)
        new = merge_components(ds, idx, dist, point_components)
        if len(new) == 0:  # pragma: no cover - cannot happen with finite coordinates
            break
        new[:, 2] = np.sqrt(new[:, 2])
        edges.append(new)
        n_components -= len(new)
        update_component_vectors(tree, ds, node_components, point_components)
    return np.concatenate(edges)


#: ``brute`` bridging runs while (rows outside the largest piece) x (rows) stays under this many distances.
BRIDGE_BRUTE_MAX = 2_000_000_000


def _bridge_brute(X: np.ndarray, finite: np.ndarray, core: np.ndarray) -> np.ndarray | None:
    """Exact bridging edges by brute force from the rows outside the largest piece; None when those are too many.

    Each round, every piece except the largest finds its shortest mutual-reachability edge to another piece
    (rows of the piece x all rows, float64); those edges are MST edges (cut property), added lightest first
    through a union-find so ties cannot close a cycle. Returns ``finite`` plus the new edges ([n-1, 3]).
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(X)
    _, comp = connected_components(
        coo_matrix((np.ones(len(finite), np.int8), (finite[:, 0].astype(np.int64), finite[:, 1].astype(np.int64))),
                   shape=(n, n)),
        directed=False,
    )  # fmt: skip
    if (n - np.bincount(comp).max()) * n > BRIDGE_BRUTE_MAX:
        return None
    X64 = X.astype(np.float64)
    sq = (X64**2).sum(axis=1)
    edges = [finite]
    while True:
        sizes = np.bincount(comp)
        n_comp = int((sizes > 0).sum())
        if n_comp <= 1:
            break
        rows = np.flatnonzero(comp != np.argmax(sizes))
        best_w = np.empty(len(rows))
        best_p = np.empty(len(rows), dtype=np.int64)
        step = max(1, 4_000_000 // n)  # rows per block: bounds the block to ~32 MB
        for start in range(0, len(rows), step):
            q = rows[start : start + step]
            d2 = sq[q, None] + sq[None, :] - 2.0 * (X64[q] @ X64.T)
            mrd = np.maximum(np.sqrt(np.maximum(d2, 0.0)), np.maximum(core[q, None], core[None, :]))
            mrd[comp[q, None] == comp[None, :]] = np.inf
            p = np.argmin(mrd, axis=1)
            best_p[start : start + len(q)] = p
            best_w[start : start + len(q)] = mrd[np.arange(len(q)), p]
        # the shortest edge of every proposing piece, then lightest first through a union-find over pieces
        order = np.lexsort((rows, best_w, comp[rows]))
        first = order[np.r_[True, np.diff(comp[rows][order]) != 0]]
        parent = np.arange(len(sizes))
        new = []
        for i in first[np.argsort(best_w[first], kind="stable")]:
            a, b = _find(parent, comp[rows[i]]), _find(parent, comp[best_p[i]])
            if a != b:
                parent[a] = b
                new.append((rows[i], best_p[i], best_w[i]))
        edges.append(np.asarray(new, dtype=np.float64).reshape(-1, 3))
        comp = np.array([_find(parent, c) for c in range(len(sizes))])[comp]
    out = np.concatenate(edges)
    return out if len(out) == n - 1 else None


def _find(parent: np.ndarray, a: int) -> int:
    """Root of ``a`` in the union-find ``parent`` (path halving, in place)."""
    while parent[a] != a:
        parent[a] = parent[parent[a]]
        a = parent[a]
    return a


_UNION_ALL = None


def _union_all():
    """numba-compiled: union the edge list (a[i], b[i]) into a rank disjoint set (parent, rank), in place."""
    global _UNION_ALL
    if _UNION_ALL is None:
        import numba

        @numba.njit(cache=True)
        def union_all(parent, rank, a, b):  # pragma: no cover - compiled
            for k in range(a.shape[0]):
                x, y = a[k], b[k]
                while parent[x] != x:
                    parent[x] = parent[parent[x]]
                    x = parent[x]
                while parent[y] != y:
                    parent[y] = parent[parent[y]]
                    y = parent[y]
                if x == y:
                    continue
                if rank[x] < rank[y]:
                    x, y = y, x
                parent[y] = x
                if rank[x] == rank[y]:
                    rank[x] += 1

        _UNION_ALL = union_all
    return _UNION_ALL


def _cut(X: np.ndarray, tree: _Tree, eps: float) -> np.ndarray:
    """DBSCAN labels at ``eps``: components of tree edges <= eps among core points, borders to the nearest core."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(X)
    k = int(np.searchsorted(tree.weight, eps, side="right"))
    graph = coo_matrix((np.ones(k, dtype=np.int8), (tree.src[:k], tree.dst[:k])), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    is_core = tree.core <= eps
    labels = np.where(is_core, comp, -1).astype(np.int64)
    border = np.flatnonzero(~is_core)
    nb = tree.neighbors
    if len(border) and nb.shape[1]:
        for start in range(0, len(border), 65536):  # chunks bound memory to 64k x m x d floats
            rows = border[start : start + 65536]
            ids = nb[rows]
            ok = ids >= 0
            safe = np.where(ok, ids, 0)
            d = np.sqrt(((X[safe] - X[rows][:, None, :]) ** 2).sum(axis=2))
            ok &= (d <= eps) & is_core[safe]
            first = np.argmax(ok, axis=1)  # neighbours are sorted nearest first
            has = ok[np.arange(len(rows)), first]
            labels[rows[has]] = labels[safe[has, first[has]]]
    return labels


def _nearest(reference: np.ndarray, query: np.ndarray, should_cancel: CancelCheck | None) -> np.ndarray:
    """Index in ``reference`` of the nearest row for every row of ``query`` (parallel KD-tree, chunked, cancellable)."""
    from fast_hdbscan.numba_kdtree import build_kdtree, parallel_tree_query

    tree = build_kdtree(np.ascontiguousarray(reference, dtype=np.float32))
    out = np.empty(len(query), dtype=np.int64)
    for start in range(0, len(query), 100_000):
        check_cancel(should_cancel)
        chunk = np.ascontiguousarray(query[start : start + 100_000], dtype=np.float32)
        out[start : start + len(chunk)] = parallel_tree_query(tree, chunk, k=1, output_rdist=True)[1][:, 0]
    return out


def _relabel_by_size(labels: np.ndarray) -> np.ndarray:
    """Renumber clusters 0..k-1 by decreasing size (ties: first appearance); noise stays -1; int32."""
    labels = np.asarray(labels, dtype=np.int64)
    out = np.full(len(labels), -1, dtype=np.int32)
    mask = labels >= 0
    if not mask.any():
        return out
    uniq, inverse, counts = np.unique(labels[mask], return_inverse=True, return_counts=True)
    rank = np.empty(len(uniq), dtype=np.int32)
    rank[np.lexsort((uniq, -counts))] = np.arange(len(uniq), dtype=np.int32)
    out[mask] = rank[inverse]
    return out
