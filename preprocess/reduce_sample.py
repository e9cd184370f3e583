"""UMAP at a million clips: fit on a random sample, place every other clip with the fitted model's ``transform``.

:func:`preprocess.reduce._fit_umap` calls :func:`fit_sampled` above :data:`SAMPLE_ABOVE` rows. UMAP's fit is
super-linear in memory and time (about 1.6 GB and 108 s at 200k on two cores); ``transform`` of new rows is
linear and runs in chunks of :data:`CHUNK` rows, so memory stays bounded by the sample and one chunk. The
chunks run here one after another (UMAP's nearest-neighbour query and layout are already numba-parallel over
every core), or as Dask tasks when a ``client`` is given or a :class:`distributed.Client` is active in this
process (the model is broadcast to the workers once).

The result is a :class:`SampledUMAP`: the fitted UMAP plus ``embedding_`` of *all* rows, so callers treat it like
a UMAP fitted on everything (``transform`` places new rows, as for any fitted map). With a CUDA GPU and cuML
importable, cuML's UMAP fits every row instead (optional; never needed by CI).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .progress import CancelCheck, check_cancel

#: Above this many rows the map is fitted on a sample.
SAMPLE_ABOVE = 200_000
#: Rows of that sample.
SAMPLE_N = 100_000
#: Rows per ``transform`` chunk (a Dask task when a cluster is used).
CHUNK = 50_000
#: Reuse the first map's neighbour search for the other maps on the same sample (off: search per map; benches).
SHARE_NEIGHBORS = True


def sample_rows(n: int, size: int, random_state: int) -> np.ndarray:
    """Sorted indices of a seeded random sample of ``size`` of ``n`` rows (int64)."""
    rng = np.random.default_rng(random_state)
    return np.sort(rng.choice(n, size=min(size, n), replace=False))


class SampledUMAP:
    """A UMAP fitted on ``sample`` rows with ``embedding_`` float32 [n, d] for every row; ``transform`` delegates.

    ``rest_knn`` (not pickled) holds the other rows' neighbours among the sample, ``(indices int32 [n - s, k],
    dists float32 [n - s, k])``: every map fitted on the same sample with the same k-NN graph finds the same ones,
    so :func:`fit_sampled` takes them from the first map instead of searching again for each.
    """

    def __init__(self, model: Any, sample: np.ndarray, embedding: np.ndarray, rest_knn: tuple | None = None) -> None:
        self.model = model
        self.sample = sample
        self.embedding_ = embedding
        self.rest_knn = rest_knn

    def transform(self, Y: np.ndarray) -> np.ndarray:
        """Coordinates float32 [m, d] of new rows ``Y`` [m, D] (chunked, as at fit time)."""
        return transform_chunks(self.model, Y)

    def __getstate__(self) -> dict[str, Any]:
        return {"model": self.model, "sample": self.sample, "embedding_": self.embedding_, "rest_knn": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def __getattr__(self, name: str) -> Any:  # _knn_indices etc.: what reduce shares between its UMAPs
        if name in ("model", "sample", "embedding_", "rest_knn"):
            raise AttributeError(name)
        if name.startswith("_knn"):  # cuML keeps no k-NN graph to share
            return getattr(self.model, name, None)
        return getattr(self.model, name)


def fit_sampled(
    Y: np.ndarray,
    *,
    fit: Callable[..., Any],
    knn: Any = None,
    rest_knn: tuple | None = None,
    rs: int = 0,
    sample_n: int | None = None,
    client: Any = None,
    should_cancel: CancelCheck | None = None,
    **umap_kwargs: Any,
) -> Any:
    """Fit UMAP (``fit(Y_sample, knn=, rs=, **umap_kwargs)``) on a sample of ``Y`` [n, D]; transform the rest.

    ``knn`` is the sample's k-NN graph from an earlier fit on the same sample (shared, as for full fits), and
    ``rest_knn`` that fit's ``rest_knn`` (the other rows' neighbours in the sample; only used with its ``knn``).
    ``sample_n=None``: :data:`SAMPLE_N` rows.
    Returns a :class:`SampledUMAP` (or a cuML UMAP fitted on all rows when a GPU is usable).
    """
    gpu = _cuml_umap(Y, rs=rs, **umap_kwargs)
    if gpu is not None:
        return gpu
    n = len(Y)
    sample = sample_rows(n, SAMPLE_N if sample_n is None else sample_n, rs)
    model = fit(np.ascontiguousarray(Y[sample]), knn=knn, rs=rs, **umap_kwargs)
    check_cancel(should_cancel)
    embedding = np.empty((n, model.embedding_.shape[1]), dtype=np.float32)
    embedding[sample] = model.embedding_
    rest = np.ones(n, dtype=bool)
    rest[sample] = False
    shared = rest_knn if knn is not None and SHARE_NEIGHBORS else None
    embedding[rest], found = place_rows(model, Y[rest], knn=shared, client=client, should_cancel=should_cancel)
    return SampledUMAP(model, sample, embedding, rest_knn=found)


def transform_chunks(
    model: Any, Y: np.ndarray, *, client: Any = None, chunk: int = CHUNK, should_cancel: CancelCheck | None = None
) -> np.ndarray:
    """``model.transform`` over ``Y`` [m, D] in chunks of ``chunk`` rows (Dask tasks with a client); float32 [m, d]."""
    return place_rows(model, Y, client=client, chunk=chunk, should_cancel=should_cancel)[0]


def place_rows(
    model: Any,
    Y: np.ndarray,
    *,
    knn: tuple | None = None,
    client: Any = None,
    chunk: int = CHUNK,
    should_cancel: CancelCheck | None = None,
) -> tuple[np.ndarray, tuple | None]:
    """UMAP ``transform`` of ``Y`` [m, D] in chunks; returns ``(float32 [m, d], (indices, dists) of Y's rows)``.

    With ``knn`` (the rows' neighbours among the fitted ones, as an earlier call returned them) the
    nearest-neighbour search is skipped and the layout is umap's own (membership weights, weighted initial
    positions, its transform epochs); without, the search runs once per chunk and its result is returned.
    Neighbours come back as None for models without a search index (cuML, small-data UMAPs).
    """
    d = model.embedding_.shape[1]
    out = np.empty((len(Y), d), dtype=np.float32)
    bounds = list(range(0, len(Y), chunk))
    searchable = getattr(model, "_knn_search_index", None) is not None and not getattr(model, "_small_data", False)
    k = int(getattr(model, "n_neighbors", 0) or 0)
    found = (np.empty((len(Y), k), np.int32), np.empty((len(Y), k), np.float32)) if searchable else None

    def part(a: int) -> tuple | None:
        return None if knn is None else (knn[0][a : a + chunk], knn[1][a : a + chunk])

    def store(a: int, res: tuple) -> None:
        emb, nb = res
        out[a : a + len(emb)] = emb
        if found is not None and nb is not None:
            found[0][a : a + len(emb)], found[1][a : a + len(emb)] = nb

    if client is None:
        client = active_client()
    if client is not None and len(bounds) > 1:
        remote = client.scatter(model, broadcast=True)
        futures = [
            client.submit(_transform, remote, Y[a : a + chunk], part(a), searchable, pure=False, retries=2)
            for a in bounds
        ]
        try:
            for a, fut in zip(bounds, futures, strict=True):
                store(a, fut.result())
                check_cancel(should_cancel)
        finally:
            client.cancel([f for f in futures if not f.done()])
    else:
        for a in bounds:
            check_cancel(should_cancel)
            store(a, _transform(model, Y[a : a + chunk], part(a), searchable))
    return out, (knn if knn is not None else found)


class _FoundNeighbors:
    """Stands in for a fitted UMAP's pynndescent index in ``transform``: answers with neighbours found before."""

    def __init__(self, index: Any, indices: np.ndarray, dists: np.ndarray) -> None:
        self._angular_trees = getattr(index, "_angular_trees", False)
        self.indices, self.dists = indices, dists

    def query(self, X: np.ndarray, k: int, epsilon: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
        if len(X) != len(self.indices) or k > self.indices.shape[1]:
            raise ValueError("neighbours found for other rows")  # pragma: no cover - internal misuse
        return self.indices[:, :k].copy(), self.dists[:, :k].copy()


def _transform(model: Any, Y: np.ndarray, knn: tuple | None, searchable: bool) -> tuple[np.ndarray, tuple | None]:
    """One chunk: ``(coordinates float32 [m, d], its neighbours (indices, dists) or None)``."""
    import copy
    import warnings

    Y = np.ascontiguousarray(Y, dtype=np.float32)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning)
        if not searchable:
            return np.asarray(model.transform(Y), dtype=np.float32), None
        index = model._knn_search_index
        if knn is None:  # umap's own query, as its transform makes it
            epsilon = 0.24 if index._angular_trees else 0.12
            indices, dists = index.query(Y, model.n_neighbors, epsilon=epsilon)
            knn = (np.asarray(indices, np.int32), np.asarray(dists, np.float32))
        placed = copy.copy(model)  # shallow: the fitted arrays are shared, only the index is swapped
        placed._knn_search_index = _FoundNeighbors(index, *knn)
        return np.asarray(placed.transform(Y), dtype=np.float32), knn


def active_client() -> Any:
    try:
        from distributed import default_client
    except ImportError:  # pragma: no cover
        return None
    try:
        return default_client()
    except ValueError:  # no client in this process
        return None


def cuml_usable() -> bool:
    """Whether cuML's UMAP and a CUDA device are importable here (then :func:`fit_sampled` fits every row)."""
    try:
        import cupy  # type: ignore[import-not-found]
        from cuml.manifold import UMAP  # type: ignore[import-not-found]  # noqa: F401

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # noqa: BLE001 - not installed, or installed without a usable CUDA runtime
        return False


def _cuml_umap(Y: np.ndarray, *, rs: int, **umap_kwargs: Any) -> Any:
    """cuML's UMAP fitted on every row when cuML and a CUDA device are usable, else None (lazy, optional)."""
    try:
        from cuml.manifold import UMAP  # type: ignore[import-not-found]
    except Exception:  # noqa: BLE001 - not installed, or installed without a usable CUDA runtime
        return None
    try:
        import cupy  # type: ignore[import-not-found]

        if cupy.cuda.runtime.getDeviceCount() < 1:
            return None
    except Exception:  # noqa: BLE001
        return None
    keep = {k: v for k, v in umap_kwargs.items() if k in ("n_components", "n_neighbors", "min_dist", "metric")}
    model = UMAP(random_state=rs, **keep)
    model.fit(Y)
    return SampledUMAP(model, np.arange(len(Y)), np.asarray(model.embedding_, dtype=np.float32))


def fit_sampled_maps(
    Y: np.ndarray,
    maps: list[tuple[int, float]],
    *,
    fit: Callable[..., Any],
    scratch: Path,
    jobs: int,
    rs: int = 0,
    sample_n: int | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    should_cancel: CancelCheck | None = None,
    **umap_kwargs: Any,
) -> list[SampledUMAP]:
    """Every sampled map ``[(n_components, min_dist)]`` of ``Y`` [n, D], the work spread over ``jobs`` processes.

    What :func:`fit_sampled` does map after map, cut into tasks: seeded UMAP runs on one thread, and at a million
    clips placing the 900,000 other rows costs twice a fit (measured: fit 75 s, neighbour query 106 s once, layout
    150 s per map on this machine). Here the first map is fitted on the sample (which finds the sample's k-NN
    graph); then, in a :class:`~.pool.TaskPool`, the other maps' fits on that graph and the other rows'
    neighbour queries (:data:`CHUNK` rows each); then every map's ``transform`` of every chunk. Each task reads
    ``Y``, the graph, its search index and the fitted maps from files under ``scratch`` (memory-mapped or loaded
    once per worker), so nothing large is pickled per task. Every query starts from the index as saved, so the
    coordinates do not depend on ``jobs`` or on which process ran a chunk (tested). ``progress(done, total,
    message)`` counts tasks.
    """

    from .pool import TaskPool

    report = progress or (lambda *_a: None)
    n = len(Y)
    sample = sample_rows(n, SAMPLE_N if sample_n is None else sample_n, rs)
    rest = np.setdiff1d(np.arange(n), sample)
    bounds = list(range(0, len(rest), CHUNK))
    n_tasks = len(maps) + len(bounds) * (1 + len(maps))
    report(0, n_tasks, "UMAP on the sample")
    first = fit(np.ascontiguousarray(Y[sample]), knn=None, rs=rs, n_components=maps[0][0], min_dist=maps[0][1],
                **umap_kwargs)  # fmt: skip
    knn = (first._knn_indices, first._knn_dists, first._knn_search_index)
    check_cancel(should_cancel)
    scratch.mkdir(parents=True, exist_ok=True)
    np.save(scratch / "Y.npy", np.ascontiguousarray(Y, dtype=np.float32))
    np.save(scratch / "sample.npy", sample)
    np.save(scratch / "rest.npy", rest)
    np.save(scratch / "knn_indices.npy", knn[0])
    np.save(scratch / "knn_dists.npy", knn[1])
    _dump(knn[2], scratch / "index.pkl")
    root = str(scratch)
    with TaskPool(max(1, jobs)) as pool:
        done = 1

        def tick(_stage: str, k: int, _total: int, _msg: str = "") -> None:
            report(done + k, n_tasks, "UMAP: the other maps and the other clips' neighbours" if done == 1 else
                   "UMAP: placing the other clips")  # fmt: skip

        tasks = [("fit", root, d, md, rs, umap_kwargs, fit) for d, md in maps[1:]]
        tasks += [("query", root, a, min(a + CHUNK, len(rest)), rs, umap_kwargs) for a in bounds]
        out = pool.run(_sampled_task, tasks, stage="reduce", uses_torch=False, progress=tick,
                       should_cancel=should_cancel)  # fmt: skip
        models = [first, *out[: len(maps) - 1]]
        rest_knn = (np.concatenate([o[0] for o in out[len(maps) - 1 :]]),
                    np.concatenate([o[1] for o in out[len(maps) - 1 :]]))  # fmt: skip
        np.save(scratch / "rest_indices.npy", rest_knn[0])
        np.save(scratch / "rest_dists.npy", rest_knn[1])
        for i, m in enumerate(models):
            held = m._knn_indices, m._knn_dists, m._knn_search_index
            m._knn_indices = m._knn_dists = m._knn_search_index = None
            _dump(m, scratch / f"map_{i}.pkl")
            m._knn_indices, m._knn_dists, m._knn_search_index = held
        done += len(tasks)
        tasks = [
            ("place", root, a, min(a + CHUNK, len(rest)), i, umap_kwargs) for i in range(len(maps)) for a in bounds
        ]
        placed = pool.run(_sampled_task, tasks, stage="reduce", uses_torch=False, progress=tick,
                          should_cancel=should_cancel)  # fmt: skip
    _MAPS.clear()  # jobs=1 ran the tasks here
    result = []
    for i, m in enumerate(models):
        m._knn_indices, m._knn_dists, m._knn_search_index = knn  # one graph and index, shared by every map
        embedding = np.empty((n, m.embedding_.shape[1]), dtype=np.float32)
        embedding[sample] = m.embedding_
        embedding[rest] = np.concatenate(placed[i * len(bounds) : (i + 1) * len(bounds)])
        result.append(SampledUMAP(m, sample, embedding, rest_knn=rest_knn if i == 0 else None))
    return result


def _dump(obj: Any, path: Path) -> None:
    import pickle

    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)


#: Per worker process: the fitted maps of the running reduction, loaded once ({path: model}).
_MAPS: dict[str, Any] = {}


def _sampled_task(
    kind: str, scratch: str, a: int, b: float, c: Any, umap_kwargs: dict, fit: Callable[..., Any] | None = None
) -> Any:
    """One task of :func:`fit_sampled_maps` (in a worker): ``fit`` a map, ``query`` or ``place`` a chunk of rows."""
    import pickle

    root = Path(scratch)
    Y = np.load(root / "Y.npy", mmap_mode="r")
    if kind == "fit":  # (d, min_dist, rs): a map on the sample's graph, returned without it
        sample = np.load(root / "sample.npy")
        with open(root / "index.pkl", "rb") as f:
            knn = (np.load(root / "knn_indices.npy"), np.load(root / "knn_dists.npy"), pickle.load(f))
        m = fit(np.ascontiguousarray(Y[sample]), n_components=a, min_dist=b, knn=knn, rs=c, **umap_kwargs)
        m._knn_indices = m._knn_dists = m._knn_search_index = None
        return m
    rest = np.array(np.load(root / "rest.npy", mmap_mode="r")[a : int(b)])  # this chunk of the other rows
    Yc = np.ascontiguousarray(Y[rest], dtype=np.float32)
    with open(root / "index.pkl", "rb") as f:
        index = pickle.load(f)  # as saved: a query never depends on the queries run before it in this process
    if kind == "query":  # rows a:b of the other rows: their neighbours among the sample
        epsilon = 0.24 if index._angular_trees else 0.12
        indices, dists = index.query(Yc, int(umap_kwargs["n_neighbors"]), epsilon=epsilon)
        return np.asarray(indices, np.int32), np.asarray(dists, np.float32)
    path = str(root / f"map_{c}.pkl")  # place: rows a:b on map c, with their neighbours found before
    if path not in _MAPS:
        _MAPS.clear()
        with open(path, "rb") as f:
            _MAPS[path] = pickle.load(f)
    model = _MAPS[path]
    model._knn_search_index = index
    ri = np.load(root / "rest_indices.npy", mmap_mode="r")[a : int(b)]
    rd = np.load(root / "rest_dists.npy", mmap_mode="r")[a : int(b)]
    return _transform(model, Yc, (np.array(ri), np.array(rd)), True)[0]
