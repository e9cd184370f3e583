"""A batch cancelled after its build is rolled back; refusals reach skipped.csv; a tiny collection
still gets a map (PCA) and a later batch fits UMAP once it has enough clips. Real demo audio."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from preprocess.collection import Collection
from preprocess.errors import Cancelled

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "demo" / "recordings"
JUNCO = DEMO / "Junco hyemalis_Dark-eyed Junco"
PHOEBE = DEMO / "Sayornis nigricans_Black Phoebe"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    from preprocess.features import run_extractor
    from preprocess.pipeline import build
    from preprocess.reduce import reduce_collection

    if not JUNCO.is_dir():
        pytest.skip("demo recordings are missing")
    root = tmp_path_factory.mktemp("rollback_base") / "collections"
    src = tmp_path_factory.mktemp("rollback_src")
    shutil.copytree(JUNCO, src / JUNCO.name)
    build([src], root / "birds", jobs=1)
    run_extractor(Collection.open(root / "birds"), "acoustic")
    reduce_collection(Collection.open(root / "birds"), features=["acoustic"], dims=[2, 8])
    return root


@pytest.fixture
def root(base, tmp_path):
    out = tmp_path / "collections"
    shutil.copytree(base, out)
    return out


def _stage(store, files):
    ids = []
    for f in files:
        data = f.read_bytes()
        up = store.create(f.name, len(data))
        store.write_chunk(up.upload_id, 0, data, len(data))
        ids.append(up.upload_id)
    return ids


def _digest(root: Path) -> dict[str, str]:
    """sha1 of every file of a collection but its sources and labels."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_file() and not rel.startswith(("sources/", "work/", "labels.sqlite")):
            out[rel] = hashlib.sha1(p.read_bytes()).hexdigest()
    return out


@pytest.mark.parametrize("stage", ["features", "reduce"])
def test_cancelled_after_the_build_rolls_the_batch_back(root, stage):
    from preprocess.collection import Collection
    from preprocess.ingest import ingest
    from preprocess.uploads import UploadStore

    before = _digest(root / "birds")
    n0 = Collection.open(root / "birds").n_clips()
    store = UploadStore(root)
    ids = _stage(store, sorted(PHOEBE.glob("*.mp3"))[:2])
    seen_stage = {"built": False}

    def progress(st, done, total, message=""):
        if st.startswith(stage):
            seen_stage["built"] = True

    seen = []
    with pytest.raises(Cancelled):
        ingest(root, "birds", store.stage(ids), progress=progress, on_file=seen.append,
               should_cancel=lambda: seen_stage["built"])  # fmt: skip
    assert seen_stage["built"]  # the build ran to its end before the cancel
    coll = Collection.open(root / "birds")
    assert coll.n_clips() == n0 and len(coll.display_map("acoustic")) == n0
    assert _digest(root / "birds") == before  # byte for byte as before the batch
    assert not seen  # nobody was told of clips
    assert not list((root / "birds" / "sources").glob("*.mp3"))
    again = store.stage(ids)  # the uploads survive for a retry
    assert len(again.files) == 2 and all(f.path.is_file() for f in again.files)
    assert not (root / ".uploads" / "rollback").exists()
    # and the retry goes in whole
    res = ingest(root, "birds", again)
    assert res.n_ok == 2 and Collection.open(root / "birds").n_clips() == n0 + len(res.new_clip_ids)


def test_refusals_reach_skipped_csv_and_survive_the_next_build(root):
    from preprocess.collection import Collection
    from preprocess.ingest import ingest
    from preprocess.uploads import UploadStore

    store = UploadStore(root)
    phoebes = sorted(PHOEBE.glob("*.mp3"))
    refused = [("notes.txt", "notes.txt is not audio (WAV, FLAC, OGG, AIFF, MP3); refused"), ("empty.wav", "empty")]
    ingest(root, "birds", store.stage(_stage(store, phoebes[:1])), refused=refused)
    coll = Collection.open(root / "birds")
    table = pd.read_csv(coll.skipped_path, dtype=str, keep_default_na=False)
    assert dict(zip(table["path"], table["reason"], strict=True))["notes.txt"].startswith("notes.txt is not audio")
    assert "empty.wav" in set(table["path"])
    ingest(root, "birds", store.stage(_stage(store, phoebes[1:2])))  # the build rewrites skipped.csv
    table = pd.read_csv(coll.skipped_path, dtype=str, keep_default_na=False)
    assert {"notes.txt", "empty.wav"} <= set(table["path"])


def test_a_collection_of_a_few_clips_gets_a_pca_map_then_umap(tmp_path):
    from preprocess.collection import Collection
    from preprocess.ingest import ingest
    from preprocess.uploads import UploadStore

    root = tmp_path / "collections"
    root.mkdir()
    store = UploadStore(root)
    short = sorted(JUNCO.glob("*.mp3"))[:1]
    res = ingest(root, "tiny", store.stage(_stage(store, short)), create=True, features=["acoustic"])
    coll = Collection.open(root / "tiny")
    n = coll.n_clips()
    assert 1 <= n < 5 or pytest.skip(f"the first junco has {n} clips")
    assert coll.reductions() == ["acoustic"]
    m = coll.display_map("acoustic")
    assert m.shape == (n, 2) and np.isfinite(m).all()
    assert len({tuple(np.round(p, 4)) for p in m}) == n  # every clip has its own place
    assert coll.reduction_meta("acoustic")["layout"] == "pca"
    assert any("PCA" in note for note in res.notes)
    # more recordings: UMAP is fitted with all of them (old points move: the result says so)
    more = sorted(PHOEBE.glob("*.mp3"))[:2]
    res = ingest(root, "tiny", store.stage(_stage(store, more)))
    coll = Collection.open(root / "tiny")
    assert coll.n_clips() >= 5 and res.refitted == ["acoustic"]
    assert "layout" not in coll.reduction_meta("acoustic") and coll.reduction_model_path("acoustic").is_file()
    assert len(coll.display_map("acoustic")) == coll.n_clips()


def test_small_layout_is_deterministic_and_spread():
    from preprocess.small_map import small_layout

    rng = np.random.default_rng(0)
    for n in (1, 2, 3, 4):
        X = rng.normal(size=(n, 16))
        a, b = small_layout(X), small_layout(X)
        assert a.shape == (n, 2) and np.array_equal(a, b) and np.abs(a).max() <= 1.2
    same = small_layout(np.ones((3, 8)))  # identical clips stay apart
    assert len({tuple(p) for p in same}) == 3
