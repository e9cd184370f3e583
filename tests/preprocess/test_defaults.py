"""Defaults: events clip mode by default; the reduction's ``normalize`` option (l2 rows), recorded in its meta.

The choice itself is measured by ``bench/refine.py --defaults`` (half A selects, half B reports); these tests pin
the contract: what the option does to the rows, that it is recorded and applied to new clips, and that
reductions made before it existed are read as ``normalize=None`` (extended, not refitted).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from preprocess.collection import Collection
from preprocess.errors import ParameterError
from preprocess.reduce import reduce_collection, stored_params, transform_new
from preprocess.testing import CollectionWriter

pytestmark = pytest.mark.slow  # numba compiles UMAP once per session


def test_events_is_the_build_default_and_fixed_is_asked_for():
    from preprocess.config import BuildConfig

    assert BuildConfig().mode == "events" and BuildConfig(mode="fixed").mode == "fixed"


def _scaled_collection(root, n=80, dim=12, seed=0):
    """Two feature sets with the same row directions: ``a`` and ``b`` = ``a`` with every row rescaled."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(4, dim))
    X = (centres[np.arange(n) % 4] + rng.normal(size=(n, dim))).astype(np.float32)
    w = CollectionWriter(root)
    w.features("a", X, signature="a", created="t0")
    w.features("b", X * rng.uniform(0.2, 5.0, size=(n, 1)).astype(np.float32), signature="b", created="t0")
    return w.manifest(config={}, counts={"clips": n}), X


def test_l2_rows_make_the_reduction_blind_to_row_scale(tmp_path):
    coll, X = _scaled_collection(tmp_path / "c")
    from preprocess.reduce import _prepare, load_model

    for name in ("a", "b"):
        reduce_collection(coll, features=[name], dims=[8], normalize="l2")
    # what UMAP sees is the same for both (the coordinates then differ only by UMAP's float sensitivity)
    ya = _prepare(load_model(coll, "a"), {"a": coll.features("a")})
    yb = _prepare(load_model(coll, "b"), {"b": coll.features("b")})
    np.testing.assert_allclose(np.abs(ya), np.abs(yb), atol=1e-4)  # PCA axes agree up to sign
    meta = coll.reduction_meta("a")
    assert meta["params"]["normalize"] == "l2" and stored_params(meta)["normalize"] == "l2"
    # new clips go through the same normalisation: a rescaled row is prepared exactly like the row
    model = load_model(coll, "a")
    np.testing.assert_allclose(_prepare(model, {"a": X[:5] * 7.0}), _prepare(model, {"a": X[:5]}), atol=1e-5)
    coords, m2 = transform_new(coll, "a", X[:5] * 7.0)
    assert coords[8].shape == (5, 8) and m2.shape == (5, 2)
    # without it, row scale matters
    reduce_collection(coll, features=["b"], dims=[8], normalize=None)
    yb_raw = _prepare(load_model(coll, "b"), {"b": coll.features("b")})
    assert not np.allclose(np.abs(ya), np.abs(yb_raw), atol=1e-2)
    with pytest.raises(ParameterError, match="normalize"):
        reduce_collection(coll, features=["a"], normalize="l1")


def test_rows_as_stored_by_default_and_older_reductions_stay_valid(tmp_path):
    coll, _X = _scaled_collection(tmp_path / "c")
    reduce_collection(coll, features=["b"], dims=[8])
    assert coll.reduction_meta("b")["params"]["normalize"] is None
    # a reduction made before the option (no "normalize" in its params) is up to date, not refitted
    meta_path = coll.reduction_meta_path("b")
    meta = json.loads(meta_path.read_text())
    del meta["params"]["normalize"]
    meta_path.write_text(json.dumps(meta))
    before = coll.reduced_path("b", 8).stat().st_mtime_ns
    seen = []
    reduce_collection(Collection.open(coll.root), features=["b"], dims=[8], progress=lambda *a: seen.append(a))
    assert seen[-1][3] == "up to date" and coll.reduced_path("b", 8).stat().st_mtime_ns == before
    assert stored_params(meta)["normalize"] is None
