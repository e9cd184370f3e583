"""``preprocess.ingest`` on real demo audio: one build per batch, clips found by path, uploads survive failures and
crashes (kill -9 mid-ingest, reconciled at the next start), never a misattributed clip."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from preprocess.errors import AudioError, CollectionError

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "demo" / "recordings"
JUNCO = DEMO / "Junco hyemalis_Dark-eyed Junco"
PHOEBE = DEMO / "Sayornis nigricans_Black Phoebe"
TOWHEE = DEMO / "Melozone crissalis_California Towhee"

pytestmark = pytest.mark.slow


def _check_attribution(coll, outcome, sources_rel):
    """The outcome's clips are exactly those of the recording whose path is the file it placed."""
    recs, clips = coll.recordings(), coll.clips()
    rec = recs[recs["recording_id"] == outcome.recording_id].iloc[0]
    assert rec["path"] == sources_rel
    assert outcome.clip_ids == clips["clip_id"][clips["recording_id"] == outcome.recording_id].tolist()


def test_a_batch_is_one_build_one_feature_pass_one_placement(ingest_root, monkeypatch, stage_uploads):
    import preprocess.features as features
    import preprocess.pipeline as pipeline
    import preprocess.reduce as reduce
    from preprocess.collection import Collection
    from preprocess.ingest import ingest
    from preprocess.uploads import UploadStore

    calls = {"build": 0, "features": 0, "reduce": 0}
    for mod, name, key in ((pipeline, "build", "build"), (features, "run_extractor", "features"),
                           (reduce, "reduce_collection", "reduce")):  # fmt: skip
        real = getattr(mod, name)

        def counted(*a, _real=real, _key=key, **kw):
            calls[_key] += 1
            return _real(*a, **kw)

        monkeypatch.setattr(mod, name, counted)
    coll = Collection.open(ingest_root / "birds")
    n_before, map_before = coll.n_clips(), coll.display_map("acoustic").copy()
    files = sorted(PHOEBE.glob("*.mp3"))[:3]
    store = UploadStore(ingest_root)
    ids = stage_uploads(store, [*files, ("broken.mp3", b"ID3" + b"\0" * 3000)])
    seen = []
    res = ingest(ingest_root, "birds", store.stage(ids), on_file=seen.append)
    assert calls == {"build": 1, "features": 1, "reduce": 1}
    assert [o.name for o in res.files] == sorted([f.name for f in files] + ["broken.mp3"], key=str.lower)
    assert seen == res.files
    failed = [o for o in res.files if o.status == "failed"]
    assert [o.name for o in failed] == ["broken.mp3"] and failed[0].reason
    coll = Collection.open(ingest_root / "birds")
    assert res.new_clip_ids == list(range(n_before, coll.n_clips()))
    for o in res.files:
        if o.status == "ok":
            _check_attribution(coll, o, o.name)
            assert np.allclose(o.positions["acoustic"], coll.display_map("acoustic")[o.clip_ids])
    assert np.array_equal(coll.display_map("acoustic")[:n_before], map_before)  # old points never move
    assert sorted(p.name for p in (ingest_root / "birds" / "sources").glob("*.mp3")) == sorted(f.name for f in files)
    assert not (ingest_root / ".uploads" / "journal" / "birds.json").exists()


def test_a_failed_build_puts_the_files_back_into_staging(ingest_root, monkeypatch, stage_uploads):
    import preprocess.pipeline as pipeline
    from preprocess.ingest import ingest
    from preprocess.uploads import UploadStore

    def broken(*a, **kw):
        raise AudioError("the decoder gave up")

    monkeypatch.setattr(pipeline, "build", broken)
    store = UploadStore(ingest_root)
    ids = stage_uploads(store, sorted(PHOEBE.glob("*.mp3"))[:2])
    with pytest.raises(AudioError):
        ingest(ingest_root, "birds", store.stage(ids))
    assert not list((ingest_root / "birds" / "sources").glob("*.mp3"))
    again = store.stage(ids)  # the uploads are intact
    assert len(again.files) == 2 and all(f.path.is_file() for f in again.files)


def test_a_held_lock_refuses_and_touches_nothing(ingest_root, stage_uploads):
    from preprocess.ingest import collection_lock, ingest
    from preprocess.uploads import UploadStore

    store = UploadStore(ingest_root)
    ids = stage_uploads(store, sorted(PHOEBE.glob("*.mp3"))[:1])
    batch = store.stage(ids)
    with collection_lock(ingest_root, "birds"), pytest.raises(CollectionError, match="being added"):
        ingest(ingest_root, "birds", batch)
    assert batch.files[0].path.is_file() and not (ingest_root / "birds" / "sources").exists()


_KILLER = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from preprocess.ingest import ingest
    from preprocess.uploads import UploadStore
    ingest_root, stage, ids = Path(sys.argv[1]), sys.argv[2], sys.argv[3].split(",")
    store = UploadStore(ingest_root)
    def progress(s, done, total, message=""):
        if s.startswith(stage):
            os._exit(9)  # as kill -9: no finally, no clean-up
    ingest(ingest_root, "birds", store.stage(ids), progress=progress)
    """
)


def _ingest_killed_at(ingest_root: Path, stage: str, ids: list[str]) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", _KILLER, str(ingest_root), stage, ",".join(ids)], env=env, timeout=600)
    assert proc.returncode == 9


def test_killed_mid_build_returns_the_files_to_their_uploads(ingest_root, stage_uploads):
    from preprocess.collection import Collection
    from preprocess.ingest import ingest, reconcile_all
    from preprocess.uploads import UploadStore

    store = UploadStore(ingest_root)
    phoebes = sorted(PHOEBE.glob("*.mp3"))[:2]
    ids = stage_uploads(store, phoebes)
    n_before = Collection.open(ingest_root / "birds").n_clips()
    _ingest_killed_at(ingest_root, "spectrograms", ids)
    assert len(list((ingest_root / "birds" / "sources").glob("*.mp3"))) == 2  # the orphans a crash leaves
    notes = reconcile_all(ingest_root)  # what the server does at start
    assert notes and "2 returned to the upload area" in notes[0]
    assert not list((ingest_root / "birds" / "sources").glob("*.mp3"))
    assert Collection.open(ingest_root / "birds").n_clips() == n_before
    # the uploads survived: the same request now goes through, each file with its own clips
    res = ingest(ingest_root, "birds", store.stage(ids))
    coll = Collection.open(ingest_root / "birds")
    assert [o.status for o in res.files] == ["ok", "ok"]
    for o in res.files:
        _check_attribution(coll, o, o.name)


def test_killed_after_the_build_adopts_and_never_misattributes(ingest_root, stage_uploads):
    from preprocess.collection import Collection
    from preprocess.ingest import ingest, reconcile_all
    from preprocess.uploads import UploadStore

    store = UploadStore(ingest_root)
    first = stage_uploads(store, sorted(PHOEBE.glob("*.mp3"))[:1])
    _ingest_killed_at(ingest_root, "features", first)  # built, then killed before features and placement
    assert "1 file(s) kept in the collection, 0 returned" in reconcile_all(ingest_root)[0]
    assert store.stage(first).unusable == first  # its file now belongs to the collection
    coll = Collection.open(ingest_root / "birds")
    adopted = coll.recordings().iloc[-1]
    # a stray file nobody journaled, as an older crash would have left it
    stray = ingest_root / "birds" / "sources" / "stray.mp3"
    shutil.copy(sorted(TOWHEE.glob("*.mp3"))[0], stray)
    towhee = sorted(TOWHEE.glob("*.mp3"))[1]
    res = ingest(ingest_root, "birds", store.stage(stage_uploads(store, [towhee])))
    coll = Collection.open(ingest_root / "birds")
    (o,) = res.files
    assert o.status == "ok" and o.name == towhee.name
    _check_attribution(coll, o, towhee.name)  # its clips, not the stray's nor the adopted file's
    recs = coll.recordings()
    assert adopted["path"] in set(recs["path"]) and "stray.mp3" in set(recs["path"])
    # the adopted recording got its features and map positions at this ingest
    assert len(coll.display_map("acoustic")) == coll.n_clips()
