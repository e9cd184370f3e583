"""reduce_collection / transform_new on a small synthetic collection (blobs), seeded."""

from __future__ import annotations

import json

import numpy as np
import pytest

from preprocess.collection import Collection
from preprocess.errors import CollectionError, NotFoundError, ParameterError
from preprocess.reduce import reduce_collection, transform_new
from preprocess.testing import CollectionWriter

pytestmark = pytest.mark.slow  # numba compiles UMAP once per session


def _blobs(n: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=4.0, size=(5, dim))
    y = np.arange(n) % 5
    return (centres[y] + rng.normal(size=(n, dim))).astype(np.float32), y


def _collection(root, n: int) -> Collection:
    return CollectionWriter(root).manifest(config={}, counts={"clips": n})


def _add_features(coll: Collection, name: str, X: np.ndarray, created: str = "t0") -> None:
    CollectionWriter(coll.root).features(name, X, signature=name, created=created)


def _stamps(coll: Collection, key: str, dims: tuple[int, ...]) -> dict[str, tuple[int, bytes]]:
    """(mtime, content) of every file of reduction ``key``: a no-op leaves all of them as they were."""
    paths = [coll.reduced_path(key, d) for d in dims]
    paths += [coll.map_path(key), coll.reduction_meta_path(key), coll.reduction_model_path(key)]
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in paths}


def _purity_of_neighbours(Y: np.ndarray, y: np.ndarray) -> float:
    from sklearn.neighbors import NearestNeighbors

    _, idx = NearestNeighbors(n_neighbors=6).fit(Y).kneighbors(Y)
    return float((y[idx[:, 1:]] == y[:, None]).mean())


def test_reduce_extend_and_transform_new(tmp_path):
    n, n_new = 300, 30
    A, y = _blobs(n + n_new, 64, 0)
    B, _ = _blobs(n + n_new, 16, 1)
    coll = _collection(tmp_path, n)
    _add_features(coll, "a", A[:n])
    _add_features(coll, "b", B[:n])
    stages = []
    out = reduce_collection(coll, features=["a", "b"], dims=(2, 8), progress=lambda *a: stages.append(a))
    assert out.name == "a+b" and stages[-1][1] == stages[-1][2]
    meta = json.loads(coll.reduction_meta_path("a+b").read_text())
    assert meta["features"] == ["a", "b"] and meta["dims"] == [2, 8] and meta["n_clips"] == n
    for d in (2, 8):
        Y = coll.reduced("a+b", d)
        assert Y.shape == (n, d) and Y.dtype == np.float32 and np.isfinite(Y).all()
        assert _purity_of_neighbours(Y, y[:n]) > 0.95
    M = coll.display_map("a+b")
    assert M.shape == (n, 2) and coll.reduction_model_path("a+b").is_file()

    # same inputs: a no-op (no file rewritten, same bytes, same created stamp); seeded: a refit gives the same
    before = _stamps(coll, "a+b", (2, 8))
    stages.clear()
    assert reduce_collection(coll, features=["a", "b"], dims=(2, 8), progress=lambda *a: stages.append(a)) == out
    assert _stamps(coll, "a+b", (2, 8)) == before
    assert stages == [("reduce", 1, 1, "up to date")]
    assert json.loads(coll.reduction_meta_path("a+b").read_text())["created"] == meta["created"]
    Y8 = coll.reduced("a+b", 8)
    reduce_collection(coll, features=["a", "b"], dims=(2, 8), refit=True)
    np.testing.assert_allclose(coll.reduced("a+b", 8), Y8, atol=1e-4)

    # new clips are placed next to their blob; old coordinates do not move
    dims, map_2d = transform_new(coll, "a+b", {"a": A[n:], "b": B[n:]})
    assert dims[8].shape == (n_new, 8) and map_2d.shape == (n_new, 2)
    from sklearn.neighbors import KNeighborsClassifier

    knn = KNeighborsClassifier(5).fit(Y8, y[:n])
    assert (knn.predict(dims[8]) == y[n:]).mean() > 0.9
    coll = _collection(tmp_path, n + n_new)
    _add_features(coll, "a", A)
    _add_features(coll, "b", B)
    reduce_collection(coll, features=["a", "b"], dims=(2, 8))
    grown = coll.reduced("a+b", 8)
    assert grown.shape == (n + n_new, 8)
    np.testing.assert_array_equal(grown[:n], Y8)
    assert coll.display_map("a+b").shape == (n + n_new, 2)


def test_reduce_refuses_bad_input(tmp_path):
    coll = _collection(tmp_path, 50)
    _add_features(coll, "a", _blobs(50, 8, 0)[0])
    _add_features(coll, "short", _blobs(40, 8, 0)[0])
    with pytest.raises(NotFoundError, match="feature set 'nope' not found; available: a, short"):
        reduce_collection(coll, features=["nope"])
    with pytest.raises(CollectionError, match="has 40 rows but the collection has 50 clips"):
        reduce_collection(coll, features=["short"])
    with pytest.raises(ParameterError, match="dims must be"):
        reduce_collection(coll, features=["a"], dims=(1, 8))
    with pytest.raises(ParameterError, match="metric"):
        reduce_collection(coll, features=["a"], metric="hamming")
    with pytest.raises(ParameterError, match="twice"):
        reduce_collection(coll, features=["a", "a"])
    assert coll.reductions() == []
