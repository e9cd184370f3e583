"""UMAP fitted on a sample, the other rows placed with ``transform`` (maths on synthetic blobs)."""

from __future__ import annotations

import numpy as np
import pytest

from preprocess.reduce import _fit_umap
from preprocess.reduce_sample import SampledUMAP, fit_sampled, sample_rows, transform_chunks

pytestmark = pytest.mark.slow
KW = dict(n_components=2, n_neighbors=15, min_dist=0.1, metric="euclidean")


def _blobs(n: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, size=n)
    centres = rng.normal(scale=8.0, size=(4, 10))
    return (centres[y] + rng.normal(size=(n, 10))).astype(np.float32), y


@pytest.fixture(scope="module")
def fitted():
    X, y = _blobs()
    return X, y, fit_sampled(X, fit=_fit_umap, rs=3, sample_n=600, **KW)


def test_sampled_and_transformed_rows_land_in_their_groups(fitted):
    X, y, m = fitted
    assert isinstance(m, SampledUMAP) and m.embedding_.shape == (3000, 2) and m.embedding_.dtype == np.float32
    assert np.array_equal(m.sample, sample_rows(3000, 600, 3))
    assert np.array_equal(m.embedding_[m.sample], m.model.embedding_)  # the fitted rows keep their fit
    rest = np.setdiff1d(np.arange(3000), m.sample)
    E = m.embedding_
    # each transformed row's nearest sampled row (on the map) is from its own group
    d = ((E[rest][:, None, :] - E[m.sample][None, :, :]) ** 2).sum(axis=2)
    nearest = m.sample[np.argmin(d, axis=1)]
    assert np.mean(y[nearest] == y[rest]) > 0.98
    # and the groups stay apart: every group's centre is nearer its own rows than any other group's
    centres = np.stack([E[y == g].mean(axis=0) for g in range(4)])
    own = np.argmin(((E[:, None, :] - centres[None]) ** 2).sum(axis=2), axis=1)
    assert np.mean(own == y) > 0.98


def test_deterministic_with_random_state_and_chunks_agree(fitted):
    X, _y, m = fitted
    again = fit_sampled(X, fit=_fit_umap, rs=3, sample_n=600, **KW)
    assert np.array_equal(again.embedding_, m.embedding_)
    other = fit_sampled(X, fit=_fit_umap, rs=4, sample_n=600, **KW)
    assert not np.array_equal(other.sample, m.sample)
    new = X[:50] + 0.01
    assert np.array_equal(m.transform(new), transform_chunks(m.model, new, chunk=10**6))


def test_chunks_as_dask_tasks_give_the_same_coordinates(fitted):
    distributed = pytest.importorskip("distributed")
    X, _y, m = fitted
    Y = X[:300] + 0.01
    local = transform_chunks(m.model, Y, chunk=100)
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=None) as client:
        remote = transform_chunks(m.model, Y, chunk=100, client=client)
    assert np.array_equal(local, remote)


def test_second_map_reuses_the_first_maps_neighbours(fitted):
    """Maps fitted on one sample with one k-NN graph share the other rows' neighbour search: same coordinates."""
    import pickle

    X, y, m = fitted
    knn = (m._knn_indices, m._knn_dists, m._knn_search_index)
    assert m.rest_knn is not None and m.rest_knn[0].shape == (3000 - 600, 15)
    kw = dict(KW, n_components=3, min_dist=0.0)
    searched = fit_sampled(X, fit=_fit_umap, knn=knn, rs=3, sample_n=600, **kw)
    shared = fit_sampled(X, fit=_fit_umap, knn=knn, rest_knn=m.rest_knn, rs=3, sample_n=600, **kw)
    assert np.array_equal(shared.rest_knn[0], searched.rest_knn[0])
    np.testing.assert_array_equal(shared.embedding_, searched.embedding_)
    assert shared.embedding_.shape == (3000, 3)
    # without the sample's graph the neighbours are not known to match: they are searched again
    fresh = fit_sampled(X, fit=_fit_umap, rest_knn=(m.rest_knn[0][:, ::-1], m.rest_knn[1]), rs=3, sample_n=600, **KW)
    np.testing.assert_array_equal(fresh.embedding_, m.embedding_)
    assert pickle.loads(pickle.dumps(shared)).rest_knn is None  # model.pkl does not carry them
