"""Reduced coordinates: standardise, concatenate feature sets by clip id, PCA, then UMAP.

``reduce_collection`` writes ``reductions/KEY/`` (KEY = feature names joined with ``+``)::

    reduced_path(KEY, D)       float32 [n_clips, D] for each D in ``dims`` (UMAP with ``min_dist``, for clustering)
    map_path(KEY)              float32 [n_clips, 2], the display map (UMAP 2-d with ``display_min_dist``)
    reduction_model_path(KEY)  scalers, PCA and the fitted UMAPs: :func:`transform_new` places new clips with it
    reduction_meta_path(KEY)   features, dims, params, time_s, n_clips, fingerprints of the feature sets (last)

(the store's accessors; file names in :mod:`preprocess.schema`)

Each feature set is standardised, then scaled by 1/sqrt(its dimension) so that two concatenated sets
weigh the same whatever their sizes. PCA uses ``svd_solver="covariance_eigh"`` (5x faster than the
default on tall matrices). The k-nearest-neighbour graph is computed once and shared by every UMAP:
exactly with scikit-learn up to ``EXACT_KNN_MAX_CLIPS`` clips (no pynndescent compilation, which costs
30-80 s per fresh process on 2 cores), else with pynndescent. ``force_approximation_algorithm`` keeps
UMAP off its slow all-pairs path below 4,096 points.

Incremental: same features, parameters and feature rows -> no-op; clips appended -> the new rows are
placed with :func:`transform_new` and old coordinates never move (unless growth exceeds
``refit_growth``, or ``refit=True``, when everything is fitted again).
"""

from __future__ import annotations

import pickle
import tempfile
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from .collection import Collection, atomic_path, check_name, save_npy_atomic, write_json_atomic
from .errors import CollectionError, ParameterError
from .pool import cpu_count
from .progress import CancelCheck, Progress, check_cancel, no_progress
from .reduce_sample import (
    SAMPLE_ABOVE,
    SampledUMAP,
    active_client,
    cuml_usable,
    fit_sampled,
    fit_sampled_maps,
    sample_rows,
)
from .schema import MODEL_DIMS_KEY, MODEL_MAP_KEY

DEFAULT_DIMS = (2, 4, 8, 16)
MAX_PCA_COMPONENTS = 50
METRICS = ("euclidean", "cosine", "manhattan", "correlation")
#: Row normalisations before standardising: ``"l2"`` scales each clip's feature vector to unit length (its
#: direction only), ``None`` keeps the rows. The default stays ``None``: l2 won on dev half A with fixed windows
#: (NMI 0.835 -> 0.874) but lost on held-out half B (0.966 -> 0.944), and lost on A in events mode (bench/refine.py).
NORMALIZE = ("l2", None)
DEFAULT_NORMALIZE: str | None = None
#: Rows per block of a large collection's standardise + PCA (one block of 1024-d float64 is 128 MB).
BLOCK = 16_384
#: Rows the PCA of a large collection (above ``SAMPLE_ABOVE`` clips) is fitted on.
PCA_SAMPLE = 200_000
#: Up to this many clips the kNN graph is exact (scikit-learn, no numba compile); above, pynndescent.
EXACT_KNN_MAX_CLIPS = 20_000


def reduction_key(features: list[str] | tuple[str, ...] | str) -> str:
    """``["birdnet", "saec"]`` -> ``"birdnet+saec"`` (a single name or an existing key passes through)."""
    names = features.split("+") if isinstance(features, str) else list(features)
    return "+".join(check_name(n, what="feature set") for n in names)


def _validate(
    features: Any, dims: Any, n_neighbors: Any, min_dist: Any, metric: Any, normalize: Any = None
) -> tuple[list[str], list[int]]:
    if isinstance(features, str):
        features = [f for f in features.replace(",", "+").split("+") if f]
    features = list(features or [])
    if not features:
        raise ParameterError("features needs at least one feature set, e.g. birdnet or birdnet,saec")
    if len(set(features)) != len(features):
        raise ParameterError(f"features lists a feature set twice: {features}")
    try:
        dims = sorted({int(d) for d in dims})
    except (TypeError, ValueError):
        raise ParameterError(f"dims must be whole numbers between 2 and 64, got {dims!r}") from None
    if not dims or dims[0] < 2 or dims[-1] > 64:
        raise ParameterError(f"dims must be whole numbers between 2 and 64, got {dims!r}")
    if n_neighbors is not None and (
        isinstance(n_neighbors, bool) or not isinstance(n_neighbors, int) or not 2 <= n_neighbors <= 200
    ):
        raise ParameterError(f"n_neighbors must be a whole number in [2, 200] (or None: auto), got {n_neighbors!r}")
    if not isinstance(min_dist, (int, float)) or not 0.0 <= min_dist <= 1.0:
        raise ParameterError(f"min_dist must be in [0, 1], got {min_dist!r}")
    if metric not in METRICS:
        raise ParameterError(f"unknown metric {metric!r}; allowed: {', '.join(METRICS)}")
    if normalize not in NORMALIZE:
        raise ParameterError(f"unknown normalize {normalize!r}; allowed: 'l2' or None")
    return features, dims


def _fingerprints(collection: Collection, features: list[str]) -> dict[str, str]:
    """What identifies each feature set's rows: its signature and creation time (appends keep both)."""
    out = {}
    for name in features:
        meta = collection.features_meta(name)
        out[name] = f"{meta.get('signature', meta.get('version'))}@{meta.get('created', '')}"
    return out


def _load_features(collection: Collection, features: list[str], rows: slice) -> dict[str, np.ndarray]:
    n = collection.n_clips()
    out = {}
    for name in features:
        X = collection.features(name)
        if X.shape[0] != n:
            raise CollectionError(
                f"feature set {name!r} has {X.shape[0]} rows but the collection has {n} clips: "
                f"compute feature set {name!r} again for the new clips"
            )
        out[name] = np.asarray(X[rows], dtype=np.float32)
    return out


def _normalized(X: np.ndarray, normalize: str | None) -> np.ndarray:
    """Rows of float32 [n, d] as the reduction sees them: unit length for ``"l2"`` (zero rows stay zero)."""
    X = np.asarray(X, dtype=np.float32)
    if normalize == "l2" and X.ndim == 2:
        return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
    return X


def _prepare(model: dict[str, Any], X_by_name: dict[str, np.ndarray]) -> np.ndarray:
    """Normalise rows, scale each set, weight it, concatenate in the model's order and project with its PCA."""
    parts = []
    for name in model["features"]:
        if name not in X_by_name:
            raise ParameterError(f"missing feature set {name!r} for reduction {'+'.join(model['features'])}")
        mean = model["scalers"][name][0]
        X = np.asarray(X_by_name[name], dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != len(mean):
            raise ParameterError(f"feature set {name!r} must be [n, {len(mean)}], got {X.shape}")
        X = _normalized(X, model.get("normalize"))
        parts.append(_weighted(model, name, X))
    Z = np.concatenate(parts, axis=1)
    return np.ascontiguousarray(model["pca"].transform(Z), dtype=np.float32)


def _weighted(model: dict[str, Any], name: str, X: np.ndarray) -> np.ndarray:
    """Rows of feature set ``name`` standardised with the model's scaler and weighted by 1/sqrt(its dimension)."""
    mean, scale = model["scalers"][name]
    return (X - mean) / scale / np.sqrt(X.shape[1])


def auto_n_neighbors(n_clips: int) -> int:
    """UMAP's ``n_neighbors`` for ``n_clips``: 15, but fewer below 150 clips (never below 5).

    A neighbourhood larger than a class glues classes together: on the 88-clip demo (about 10 clips per species)
    15 neighbours gave DBSCAN (knee eps) NMI 0.43 and 8 gave 0.76; the 257-clip dev set keeps 15 (HDBSCAN NMI 0.89,
    where 12 gave 0.86).
    """
    return int(min(15, max(5, n_clips // 10)))


def reduce_collection(
    collection: Collection,
    *,
    features: list[str] | str,
    dims: tuple[int, ...] | list[int] = DEFAULT_DIMS,
    n_neighbors: int | None = None,
    min_dist: float = 0.0,
    display_min_dist: float = 0.5,
    metric: str = "cosine",
    normalize: str | None = DEFAULT_NORMALIZE,
    random_state: int = 0,
    refit: bool = False,
    refit_growth: float = 0.5,
    jobs: int | None = None,
    progress: Progress | None = None,
    should_cancel: CancelCheck | None = None,
) -> Path:
    """Fit (or extend) the reduction of ``features`` and return ``reductions/KEY``.

    Parameters
    ----------
    features : names of stored feature sets (concatenated in this order, aligned by clip id).
    dims : UMAP output dimensions for clustering; a 2-d display map is always made too.
    n_neighbors, min_dist, metric : UMAP parameters (``display_min_dist`` for the display map:
        0.5 spreads each group so its points can be told apart and hovered one by one).
        ``n_neighbors=None`` picks :func:`auto_n_neighbors` from the number of clips.
    normalize : ``"l2"``: each clip's feature vector is scaled to unit length before standardising (cosine
        direction only); ``None`` (default, see :data:`DEFAULT_NORMALIZE`): rows as stored.
    jobs : worker processes for the maps of a sampled reduction (above ``SAMPLE_ABOVE`` clips); None: every
        core. Smaller collections fit in this process (UMAP's own threads).
    """
    progress = progress or no_progress
    features, dims = _validate(features, dims, n_neighbors, min_dist, metric, normalize)
    _validate(features, dims, n_neighbors, display_min_dist, metric)
    jobs_n = None if jobs is None else max(1, int(jobs))
    key = reduction_key(features)
    out_dir = collection.reduction_dir(key)
    n = collection.n_clips()
    fingerprints = _fingerprints(collection, features)
    params = {
        "n_neighbors": n_neighbors,
        "min_dist": float(min_dist),
        "display_min_dist": float(display_min_dist),
        "metric": metric,
        "normalize": normalize,
        "random_state": random_state,
    }

    old = _read_meta(collection.reduction_meta_path(key))
    if (
        not refit
        and old is not None
        and {"normalize": None, **(old.get("params") or {})} == params  # made before the option: rows as stored
        and old.get("dims") == dims
        and old.get("fingerprints") == fingerprints
        and collection.reduction_model_path(key).is_file()
    ):
        old_n = int(old.get("n_clips", 0))
        if old_n == n:
            progress("reduce", 1, 1, "up to date")
            return out_dir
        if old_n < n and (n - old_n) <= refit_growth * max(int(old.get("n_fitted", old_n)), 1):
            return _extend(collection, key, old, old_n, n, progress=progress, should_cancel=should_cancel)

    if n < 5:
        raise CollectionError(f"{collection.root} has {n} clips; a reduction needs at least 5")
    t0 = time.perf_counter()
    steps = 2 + len(dims)
    progress("reduce", 0, steps, "standardise + PCA")
    model: dict[str, Any] = {"features": features, "scalers": {}, "umaps": {}, "normalize": normalize}
    if n > SAMPLE_ABOVE:  # a million clips: never the whole feature matrix (and its float64 copies) in memory
        Y = _fit_linear_blocked(collection, model, random_state, should_cancel)
    else:
        X_by_name = _load_features(collection, features, slice(None))
        X_by_name = {name: _normalized(X, normalize) for name, X in X_by_name.items()}
        for name, X in X_by_name.items():
            mean = X.mean(axis=0, dtype=np.float64).astype(np.float32)
            scale = X.std(axis=0, dtype=np.float64).astype(np.float32)
            scale[scale < 1e-8] = 1.0  # constant columns stay 0
            model["scalers"][name] = (mean, scale)
        parts = [_weighted(model, k, X) for k, X in X_by_name.items()]
        model["pca"] = _pca(np.concatenate(parts, axis=1), random_state)
        del parts
        Y = _prepare(model, X_by_name)
        del X_by_name
    n_components = int(model["pca"].n_components_)
    check_cancel(should_cancel)

    coords: dict[str, np.ndarray] = {}
    n_neighbors = n_neighbors or auto_n_neighbors(n)
    knn = _exact_knn(Y, n_neighbors=n_neighbors, metric=metric) if n <= EXACT_KNN_MAX_CLIPS else None
    exact = knn is not None
    maps = [(MODEL_DIMS_KEY.format(d), d, float(min_dist)) for d in dims] + [
        (MODEL_MAP_KEY, 2, float(display_min_dist))
    ]
    rest_knn = None  # sampled maps (a million clips): the other rows' neighbours in the sample, found once
    if n > SAMPLE_ABOVE and active_client() is None and not cuml_usable():  # a million clips, on this machine
        n_maps = len(maps)
        with tempfile.TemporaryDirectory(dir=_scratch_parent(collection), prefix="reduce-") as tmp:
            fitted = fit_sampled_maps(
                Y, [(d, md) for _, d, md in maps], fit=_fit_umap, scratch=Path(tmp), jobs=jobs_n or cpu_count(),
                rs=random_state, should_cancel=should_cancel, n_neighbors=n_neighbors, metric=metric,
                progress=lambda done, total, msg: progress("reduce", 1 + round(n_maps * done / total), steps, msg),
            )  # fmt: skip
        for (name, _, _), umap_model in zip(maps, fitted, strict=True):
            model["umaps"][name] = umap_model
            coords[name] = np.asarray(umap_model.embedding_, dtype=np.float32)
        maps = []  # all fitted
    for i, (name, d, md) in enumerate(maps):
        progress("reduce", i + 1, steps, f"UMAP {d}-d" + (" (display)" if name == MODEL_MAP_KEY else ""))
        umap_model = _fit_umap(
            Y, n_components=d, n_neighbors=n_neighbors, min_dist=md, metric=metric, knn=knn, rs=random_state,
            rest_knn=rest_knn,
        )  # fmt: skip
        if knn is None:
            knn = (umap_model._knn_indices, umap_model._knn_dists, umap_model._knn_search_index)
            rest_knn = getattr(umap_model, "rest_knn", None) if isinstance(umap_model, SampledUMAP) else None
        if exact:
            # no pynndescent index: new clips are placed by exact distances to the fitted ones
            # (umap's own small-data path; private attributes of umap-learn 0.5.x)
            umap_model.__dict__.pop("_knn_search_index", None)
            umap_model._small_data = True
        model["umaps"][name] = umap_model
        coords[name] = np.asarray(umap_model.embedding_, dtype=np.float32)
        check_cancel(should_cancel)

    for d in dims:
        save_npy_atomic(collection.reduced_path(key, d), coords[MODEL_DIMS_KEY.format(d)])
    save_npy_atomic(collection.map_path(key), coords[MODEL_MAP_KEY])
    with atomic_path(collection.reduction_model_path(key)) as tmp:
        with open(tmp, "wb") as f:
            pickle.dump(model, f, protocol=pickle.HIGHEST_PROTOCOL)
    meta = {
        "features": features,
        "dims": dims,
        "params": params,
        "n_neighbors_used": n_neighbors,
        "pca_components": n_components,
        "pca_explained_variance": round(float(model["pca"].explained_variance_ratio_.sum()), 4),
        "time_s": round(time.perf_counter() - t0, 3),
        "n_clips": n,
        "n_fitted": n,
        "fingerprints": fingerprints,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    write_json_atomic(collection.reduction_meta_path(key), meta)
    progress("reduce", steps, steps, "done")
    return out_dir


def _pca(Z: np.ndarray, random_state: int) -> Any:
    from sklearn.decomposition import PCA

    n_components = int(min(MAX_PCA_COMPONENTS, Z.shape[1], len(Z) - 1))
    return PCA(n_components=n_components, svd_solver="covariance_eigh", random_state=random_state).fit(Z)


def _fit_linear_blocked(
    collection: Collection, model: dict[str, Any], random_state: int, should_cancel: CancelCheck | None
) -> np.ndarray:
    """Scalers and PCA of a large collection in blocks of :data:`BLOCK` rows; returns Y float32 [n, components].

    The means and standard deviations are exact (blocks merged as Chan et al.'s parallel variance); PCA is
    fitted on :data:`PCA_SAMPLE` random rows, as UMAP is on a sample. Memory: one block in float64 and the
    sample, never the whole feature matrix (4 GB at a million 1024-d rows, and 8 GB more in float64).
    """
    features, normalize = model["features"], model["normalize"]
    n = collection.n_clips()

    def block(rows: Any) -> dict[str, np.ndarray]:  # copied out of the memory map, which is then closed
        return {k: _normalized(np.array(X), normalize) for k, X in _load_features(collection, features, rows).items()}

    stats: dict[str, tuple[int, np.ndarray, np.ndarray]] = {}
    for a in range(0, n, BLOCK):
        for name, X in block(slice(a, min(n, a + BLOCK))).items():
            X64 = X.astype(np.float64)
            m, m2 = X64.mean(axis=0), ((X64 - X64.mean(axis=0)) ** 2).sum(axis=0)
            if name in stats:
                c0, mean0, m20 = stats[name]
                c, delta = c0 + len(X64), m - mean0
                stats[name] = (c, mean0 + delta * len(X64) / c, m20 + m2 + delta**2 * c0 * len(X64) / c)
            else:
                stats[name] = (len(X64), m, m2)
        check_cancel(should_cancel)
    for name, (c, mean, m2) in stats.items():
        scale = np.sqrt(m2 / c).astype(np.float32)
        scale[scale < 1e-8] = 1.0  # constant columns stay 0
        model["scalers"][name] = (mean.astype(np.float32), scale)
    sample = block(sample_rows(n, PCA_SAMPLE, random_state))
    parts = [_weighted(model, k, X) for k, X in sample.items()]
    model["pca"] = _pca(np.concatenate(parts, axis=1), random_state)
    del parts, sample
    Y = np.empty((n, int(model["pca"].n_components_)), np.float32)
    for a in range(0, n, BLOCK):
        Y[a : a + BLOCK] = _prepare(model, block(slice(a, min(n, a + BLOCK))))
        check_cancel(should_cancel)
    return Y


def _scratch_parent(collection: Collection) -> Path:
    collection.work_dir.mkdir(parents=True, exist_ok=True)
    return collection.work_dir


def _exact_knn(Y: np.ndarray, *, n_neighbors: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest neighbours (self included) with scikit-learn: instant below ~20k points, where
    pynndescent would first cost 30-80 s of numba compilation in every fresh process."""
    from sklearn.neighbors import NearestNeighbors

    k = min(n_neighbors, len(Y) - 1)
    dist, idx = NearestNeighbors(n_neighbors=k, metric=metric, algorithm="brute").fit(Y).kneighbors(Y)
    return idx.astype(np.int32), dist.astype(np.float32)


def _fit_umap(
    Y: np.ndarray,
    *,
    n_components: int,
    n_neighbors: int,
    min_dist: float,
    metric: str,
    knn: Any,
    rs: int,
    rest_knn: Any = None,
) -> Any:
    import umap

    if len(Y) > SAMPLE_ABOVE:  # a million clips: fit on a sample, transform the rest (preprocess/reduce_sample.py)
        return fit_sampled(Y, fit=_fit_umap, knn=knn, rest_knn=rest_knn, rs=rs, n_components=n_components,
                           n_neighbors=n_neighbors, min_dist=min_dist, metric=metric)  # fmt: skip
    kwargs: dict[str, Any] = {}
    if knn is not None:
        kwargs["precomputed_knn"] = knn
    model = umap.UMAP(
        n_components=n_components,
        n_neighbors=min(n_neighbors, len(Y) - 1),
        min_dist=min_dist,
        metric=metric,
        random_state=rs,
        force_approximation_algorithm=True,
        init="spectral" if len(Y) > n_components + 1 else "random",
        **kwargs,
    )
    with warnings.catch_warnings():
        # expected here: seeded UMAP runs on one thread; an exact kNN graph comes without a search index
        warnings.filterwarnings("ignore", message=".*n_jobs value.*overridden.*", category=UserWarning)
        warnings.filterwarnings("ignore", message=".*knn_search_index.*", category=UserWarning)
        return model.fit(Y)


def _extend(
    collection: Collection,
    key: str,
    meta: dict[str, Any],
    old_n: int,
    n: int,
    *,
    progress: Progress,
    should_cancel: CancelCheck | None,
) -> Path:
    """Place clips ``old_n..n`` with the stored model; old coordinates stay as they are."""
    t0 = time.perf_counter()
    out_dir = collection.reduction_dir(key)
    progress("reduce", 0, 1, f"placing {n - old_n} new clips")
    X_new = _load_features(collection, meta["features"], slice(old_n, n))
    check_cancel(should_cancel)
    new_dims, new_map = transform_new(collection, key, X_new)
    for d, arr in new_dims.items():
        old = np.load(collection.reduced_path(key, d))[:old_n]
        save_npy_atomic(collection.reduced_path(key, d), np.concatenate([old, arr]))
    old = np.load(collection.map_path(key))[:old_n]
    save_npy_atomic(collection.map_path(key), np.concatenate([old, new_map]))
    meta = dict(meta, n_clips=n, time_s=round(float(meta.get("time_s", 0)) + time.perf_counter() - t0, 3))
    meta["updated"] = datetime.now(UTC).isoformat(timespec="seconds")
    write_json_atomic(collection.reduction_meta_path(key), meta)
    progress("reduce", 1, 1, "done")
    return out_dir


def load_model(collection: Collection, key: str) -> dict[str, Any]:
    """The pickled scalers/PCA/UMAPs of reduction ``key``."""
    path = collection.reduction_model_path(key)
    collection.reduction_meta(key)
    if not path.is_file():
        raise CollectionError(f"reduction {key!r} has no fitted model ({path.name}); compute the reduction again")
    with open(path, "rb") as f:
        return pickle.load(f)


def transform_new(
    collection: Collection, key: str, X_new: dict[str, np.ndarray] | np.ndarray
) -> tuple[dict[int, np.ndarray], np.ndarray]:
    """Place new clips with the fitted reduction ``key`` without moving old ones.

    ``X_new`` is ``{feature name: float32 [m, D_name]}`` or, for a single feature set, its array.
    Returns ``({D: float32 [m, D]}, display map float32 [m, 2])``.
    """
    model = load_model(collection, key)
    if not isinstance(X_new, dict):
        if len(model["features"]) != 1:
            raise ParameterError(f"reduction {key!r} combines {model['features']}: pass a dict of arrays by name")
        X_new = {model["features"][0]: X_new}
    m = len(next(iter(X_new.values())))
    if m == 0:
        return {
            int(n.split("_")[1]): np.zeros((0, int(n.split("_")[1])), np.float32)
            for n in model["umaps"]
            if n != MODEL_MAP_KEY
        }, np.zeros((0, 2), np.float32)
    Y = _prepare(model, X_new)
    out: dict[int, np.ndarray] = {}
    display = None
    for name, umap_model in model["umaps"].items():
        coords = np.asarray(umap_model.transform(Y), dtype=np.float32)
        if name == MODEL_MAP_KEY:
            display = coords
        else:
            out[int(name.split("_")[1])] = coords
    return out, display


def _read_meta(path: Path) -> dict[str, Any] | None:
    import json

    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def stored_params(meta: dict[str, Any]) -> dict[str, Any]:
    """The ``reduce_collection`` keyword arguments a stored reduction was made with (its ``meta.json``);
    reductions made before the ``normalize`` option used the rows as stored (``normalize=None``)."""
    return {"normalize": None, **(meta.get("params") or {})}
