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


@pytest.fixture
def large(monkeypatch, tmp_path):
    """A 6,000-clip collection that takes the million-clip path (thresholds lowered): blocks, sample, maps."""
    import preprocess.reduce as R
    import preprocess.reduce_sample as S
    from preprocess.testing import feature_collection

    monkeypatch.setattr(R, "SAMPLE_ABOVE", 3000)
    monkeypatch.setattr(R, "EXACT_KNN_MAX_CLIPS", 1000)  # pynndescent's graph, with a search index, as at 1M
    monkeypatch.setattr(R, "BLOCK", 1024)
    monkeypatch.setattr(S, "SAMPLE_N", 1500)
    X, y = _blobs(6000, seed=1)
    X = np.concatenate([X, X[:, :6] * 0.5], axis=1)  # 16-d
    return lambda name: feature_collection(tmp_path / name, {"f": X}), X, y


def test_blocked_standardise_and_pca_are_the_whole_matrix_ones(large):
    from preprocess.reduce import _fit_linear_blocked, _pca, _prepare

    make, X, _y = large
    model = {"features": ["f"], "scalers": {}, "umaps": {}, "normalize": None}
    Y = _fit_linear_blocked(make("blocked"), model, 0, None)  # 6 blocks merged; PCA on every row (6000 < sample)
    mean, scale = model["scalers"]["f"]
    np.testing.assert_allclose(mean, X.mean(axis=0, dtype=np.float64), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(scale, X.std(axis=0, dtype=np.float64), rtol=1e-6)
    whole = {"features": ["f"], "scalers": {"f": (mean, scale)}, "normalize": None}
    whole["pca"] = _pca((X - mean) / scale / np.sqrt(X.shape[1]), 0)
    np.testing.assert_allclose(Y, _prepare(whole, {"f": X}), atol=1e-4)
    assert Y.shape == (6000, 16) and Y.dtype == np.float32


def test_sampled_maps_fitted_in_worker_processes_equal_one_process(large):
    """After the first map, the other four are fitted in two worker processes: the same coordinates, and the
    saved model (one shared graph) still places new clips."""
    from preprocess.reduce import reduce_collection, transform_new

    make, X, y = large
    one, two = make("one"), make("two")
    reduce_collection(one, features="f", jobs=1, metric="euclidean")
    reduce_collection(two, features="f", jobs=2, metric="euclidean")
    for d in (2, 4, 8, 16):
        np.testing.assert_array_equal(one.reduced("f", d), two.reduced("f", d))
    np.testing.assert_array_equal(one.display_map("f"), two.display_map("f"))
    assert not any(p.name.startswith("reduce-") for p in two.work_dir.iterdir())  # scratch removed
    placed_one = transform_new(one, "f", X[:40] + 0.01)
    placed_two = transform_new(two, "f", X[:40] + 0.01)
    for d in placed_one[0]:
        np.testing.assert_array_equal(placed_one[0][d], placed_two[0][d])
    np.testing.assert_array_equal(placed_one[1], placed_two[1])
    # the maps keep the groups apart (the sampled path is not just deterministic noise)
    E = two.reduced("f", 8)
    centres = np.stack([E[y == g].mean(axis=0) for g in range(4)])
    assert np.mean(np.argmin(((E[:, None] - centres[None]) ** 2).sum(-1), axis=1) == y) > 0.98
