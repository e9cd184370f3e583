"""Fixtures for the security tests: a real collection (the demo recordings, built once per session) served by the
real app, and clients that behave as an attacker's page, a plain program, or the user's own page would.

``make_app(**settings) -> (app, socketio)``: a fresh app over a private copy of the demo collection (named
``demo``); ``anonymous(app)``: a test client that sends no token (``app.test_client()`` sends it, as the page does).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from flask.testing import FlaskClient

from preprocess.collection import write_json_atomic

TOKEN = "test-token-0123456789"


@pytest.fixture(scope="session")
def demo_with_map(tmp_path_factory: pytest.TempPathFactory, demo_collection_path: Path) -> Path:
    """The demo collection plus a display map (read-only; tests get copies)."""
    out = tmp_path_factory.mktemp("security") / "demo"
    shutil.copytree(demo_collection_path, out, ignore=shutil.ignore_patterns("labels.sqlite*"))
    _add_pca_map(out)
    return out


@pytest.fixture
def collections_root(tmp_path: Path, demo_with_map: Path) -> Path:
    root = tmp_path / "collections"
    root.mkdir()
    shutil.copytree(demo_with_map, root / "demo")
    return root


def _add_pca_map(root: Path, key: str = "spectro_pca") -> None:
    """A display map (PCA of the spectrograms) per the collection contract, so maps can be served."""
    spec = np.load(root / "spectrograms.npy").astype(np.float32)
    X = spec.reshape(len(spec), -1)
    X -= X.mean(axis=0)
    u, s, _ = np.linalg.svd(X, full_matrices=False)
    Z = np.ascontiguousarray((u[:, :8] * s[:8]).astype(np.float32))
    fdir, rdir = root / "features" / key, root / "reductions" / key
    fdir.mkdir(parents=True)
    rdir.mkdir(parents=True)
    np.save(fdir / "features.npy", Z)
    write_json_atomic(fdir / "meta.json", {"extractor": "pca", "dim": 8, "params": {}, "n_clips": len(Z)})
    np.save(rdir / "map_2d.npy", np.ascontiguousarray(Z[:, :2]))
    for d in (2, 8):
        np.save(rdir / f"dims_{d}.npy", np.ascontiguousarray(Z[:, :d]))
    write_json_atomic(rdir / "meta.json", {"features": [key], "dims": [2, 8], "params": {}, "time_s": 0.0})


@pytest.fixture
def make_app(collections_root: Path) -> Callable:
    from server.app import create_app
    from server.settings import Settings

    def make(**settings):
        settings.setdefault("token", TOKEN)
        return create_app(Settings(collections_dir=collections_root, warmup=False, **settings))

    return make


def anonymous(app) -> FlaskClient:
    """A client that sends no token header (cookies are kept, as a browser does)."""
    return FlaskClient(app, app.response_class, use_cookies=True)


@pytest.fixture
def anon() -> Callable:
    return anonymous
