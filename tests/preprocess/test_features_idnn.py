"""IDNN: optional torchvision; without it a clear message and nothing written."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from preprocess.collection import Collection
from preprocess.errors import MissingDependencyError
from preprocess.features import run_extractor


def _torchvision_works() -> bool:
    if importlib.util.find_spec("torchvision") is None:
        return False
    try:
        import torchvision  # noqa: F401
    except Exception:
        return False
    return True


def test_missing_torchvision_names_what_to_install(demo_collection_path, copy_collection, capsys):
    if _torchvision_works():
        pytest.skip("torchvision is installed here")
    root = copy_collection(demo_collection_path)
    with pytest.raises(MissingDependencyError, match="pip install torchvision"):
        run_extractor(root, "idnn")
    assert not (root / "features").exists()
    from preprocess.cli import main

    assert main(["features", str(root), "--extractor", "idnn"]) == 2
    assert "torchvision" in capsys.readouterr().err


@pytest.mark.slow
def test_idnn_on_real_spectrograms(demo_collection_path, copy_collection):
    if not _torchvision_works():
        pytest.skip("torchvision is not installed")
    coll = Collection.open(copy_collection(demo_collection_path))
    try:
        out = run_extractor(coll, "idnn")
    except MissingDependencyError as e:
        pytest.skip(str(e))  # weights not cached locally (never downloaded)
    X = np.load(out / "features.npy")
    assert X.shape == (coll.n_clips(), 256 * 4 * 2) and np.isfinite(X).all()
