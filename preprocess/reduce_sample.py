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
from typing import Any

import numpy as np

from .progress import CancelCheck, check_cancel

#: Above this many rows the map is fitted on a sample.
SAMPLE_ABOVE = 200_000
#: Rows of that sample.
SAMPLE_N = 100_000
#: Rows per ``transform`` chunk (a Dask task when a cluster is used).
CHUNK = 50_000


def sample_rows(n: int, size: int, random_state: int) -> np.ndarray:
    """Sorted indices of a seeded random sample of ``size`` of ``n`` rows (int64)."""
    rng = np.random.default_rng(random_state)
    return np.sort(rng.choice(n, size=min(size, n), replace=False))


class SampledUMAP:
    """A UMAP fitted on ``sample`` rows with ``embedding_`` float32 [n, d] for every row; ``transform`` delegates."""

    def __init__(self, model: Any, sample: np.ndarray, embedding: np.ndarray) -> None:
        self.model = model
        self.sample = sample
        self.embedding_ = embedding

    def transform(self, Y: np.ndarray) -> np.ndarray:
        """Coordinates float32 [m, d] of new rows ``Y`` [m, D] (chunked, as at fit time)."""
        return transform_chunks(self.model, Y)

    def __getattr__(self, name: str) -> Any:  # _knn_indices etc.: what reduce shares between its UMAPs
        if name in ("model", "sample", "embedding_"):
            raise AttributeError(name)
        if name.startswith("_knn"):  # cuML keeps no k-NN graph to share
            return getattr(self.model, name, None)
        return getattr(self.model, name)


def fit_sampled(
    Y: np.ndarray,
    *,
    fit: Callable[..., Any],
    knn: Any = None,
    rs: int = 0,
    sample_n: int = SAMPLE_N,
    client: Any = None,
    should_cancel: CancelCheck | None = None,
    **umap_kwargs: Any,
) -> Any:
    """Fit UMAP (``fit(Y_sample, knn=, rs=, **umap_kwargs)``) on a sample of ``Y`` [n, D]; transform the rest.

    ``knn`` is the sample's k-NN graph from an earlier fit on the same sample (shared, as for full fits).
    Returns a :class:`SampledUMAP` (or a cuML UMAP fitted on all rows when a GPU is usable).
    """
    gpu = _cuml_umap(Y, rs=rs, **umap_kwargs)
    if gpu is not None:
        return gpu
    n = len(Y)
    sample = sample_rows(n, sample_n, rs)
    model = fit(np.ascontiguousarray(Y[sample]), knn=knn, rs=rs, **umap_kwargs)
    check_cancel(should_cancel)
    embedding = np.empty((n, model.embedding_.shape[1]), dtype=np.float32)
    embedding[sample] = model.embedding_
    rest = np.ones(n, dtype=bool)
    rest[sample] = False
    embedding[rest] = transform_chunks(model, Y[rest], client=client, should_cancel=should_cancel)
    return SampledUMAP(model, sample, embedding)


def transform_chunks(
    model: Any, Y: np.ndarray, *, client: Any = None, chunk: int = CHUNK, should_cancel: CancelCheck | None = None
) -> np.ndarray:
    """``model.transform`` over ``Y`` [m, D] in chunks of ``chunk`` rows (Dask tasks with a client); float32 [m, d]."""
    out = np.empty((len(Y), model.embedding_.shape[1]), dtype=np.float32)
    bounds = list(range(0, len(Y), chunk))
    if client is None:
        client = _active_client()
    if client is not None and len(bounds) > 1:
        remote = client.scatter(model, broadcast=True)
        futures = [client.submit(_transform, remote, Y[a : a + chunk], pure=False, retries=2) for a in bounds]
        try:
            for a, fut in zip(bounds, futures, strict=True):
                out[a : a + chunk] = fut.result()
                check_cancel(should_cancel)
        finally:
            client.cancel([f for f in futures if not f.done()])
        return out
    for a in bounds:
        check_cancel(should_cancel)
        out[a : a + chunk] = _transform(model, Y[a : a + chunk])
    return out


def _transform(model: Any, Y: np.ndarray) -> np.ndarray:
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning)
        return np.asarray(model.transform(np.ascontiguousarray(Y, dtype=np.float32)), dtype=np.float32)


def _active_client() -> Any:
    try:
        from distributed import default_client
    except ImportError:  # pragma: no cover
        return None
    try:
        return default_client()
    except ValueError:  # no client in this process
        return None


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
