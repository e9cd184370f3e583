"""BirdNET decodes the next clips on a second thread while the interpreter runs: same values as in one piece."""

from __future__ import annotations

import numpy as np
import pytest

from preprocess.collection import Collection
from preprocess.features import birdnet as B

pytestmark = pytest.mark.slow


def test_overlapped_decoding_gives_identical_features(demo_collection_path, copy_collection, monkeypatch):
    coll = Collection.open(copy_collection(demo_collection_path))
    ext = B.BirdNetExtractor()
    ext.prepare(coll, out_dir=coll.root / "features" / "birdnet", fit=False, progress=lambda *a, **k: None)
    ids = np.arange(min(coll.n_clips(), 40))
    monkeypatch.setattr(B, "DECODE_CHUNK", 7)  # several pieces, the last one short
    pieces = ext.transform(coll, ids)
    monkeypatch.setattr(B, "DECODE_CHUNK", 10**6)  # one piece: decode everything, then run
    whole = ext.transform(coll, ids)
    assert set(pieces) == set(whole)
    for key in whole:
        np.testing.assert_array_equal(pieces[key], whole[key], err_msg=key)
    assert pieces["features"].shape == (len(ids), 1024)
