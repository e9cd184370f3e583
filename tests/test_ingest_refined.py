"""New clips added to a refined collection are placed through the saved head (``preprocess.refine.extend_refined``)
and on the refined reduction, old points never moving. Real demo audio and BirdNET features."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from tests.test_ingest import PHOEBE

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def refined_root(demo_refinable_path, tmp_path_factory):
    from preprocess.refine import HeadConfig, refine_collection

    root = tmp_path_factory.mktemp("ingest_refined") / "collections"
    shutil.copytree(demo_refinable_path, root)
    refine_collection(root / "demo", iterations=1, head=HeadConfig(epochs=10, hidden=64, dim_out=16), device="cpu")
    return root


def _new_recording(tmp_path):
    """A recording the collection does not hold yet: 8 s of a demo phoebe, quieter (new bytes, real sound)."""
    import soundfile as sf

    from preprocess.audio import load

    src = sorted(PHOEBE.glob("*.mp3"))[0]
    sr = 32000
    y, _info = load(src, sr=sr)
    out = tmp_path / "new phoebe.wav"
    sf.write(out, (0.7 * y[: 8 * sr]).astype(np.float32), sr)
    return out


def test_new_clips_go_through_the_saved_head_onto_the_refined_map(refined_root, tmp_path, stage_uploads):
    from preprocess.collection import Collection
    from preprocess.ingest import ingest
    from preprocess.refine import refine_new
    from preprocess.uploads import UploadStore

    coll = Collection.open(refined_root / "demo")
    n0 = coll.n_clips()
    Z0 = np.array(coll.features("birdnet-refined"))
    map0 = np.array(coll.display_map("birdnet-refined"))
    created = coll.features_meta("birdnet-refined")["created"]
    store = UploadStore(refined_root)
    res = ingest(refined_root, "demo", store.stage(stage_uploads(store, [_new_recording(tmp_path)])))
    assert [o.status for o in res.files] == ["ok"], res.notes
    coll = Collection.open(refined_root / "demo")
    n1 = coll.n_clips()
    assert n1 > n0 and res.new_clip_ids == list(range(n0, n1))
    assert not any("birdnet-refined" in note for note in res.notes), res.notes
    # the refined set has a row per clip: old rows untouched, new ones = the saved head on their BirdNET rows
    Z1 = np.asarray(coll.features("birdnet-refined"))
    assert Z1.shape == (n1, Z0.shape[1]) and np.array_equal(Z1[:n0], Z0)
    Z_new, _, map_new = refine_new(coll, np.asarray(coll.features("birdnet")[n0:n1]))
    np.testing.assert_allclose(Z1[n0:], Z_new, atol=1e-5)
    assert coll.features_meta("birdnet-refined")["created"] == created  # appended, not recomputed
    # and placed on the refined map (extended, not refitted: old points never move)
    m1 = coll.display_map("birdnet-refined")
    assert m1.shape == (n1, 2) and np.array_equal(m1[:n0], map0)
    assert coll.reduction_meta("birdnet-refined")["n_fitted"] == n0
    np.testing.assert_allclose(m1[n0:], map_new, atol=1e-4)
    (o,) = res.files
    np.testing.assert_allclose(o.positions["birdnet-refined"], m1[o.clip_ids])
    assert coll.reduced("birdnet-refined", 8).shape == (n1, 8)
