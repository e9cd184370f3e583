"""End to end on real audio: ../shared/data/dev built, BirdNET features + UMAP-8, served and clustered."""

from __future__ import annotations

import time

import numpy as np
import pytest
from sklearn.metrics import normalized_mutual_info_score

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def real_app(dev_collection_path, tmp_path_factory):
    import shutil

    from preprocess.collection import Collection
    from preprocess.features import run_extractor
    from preprocess.reduce import reduce_collection
    from server.app import create_app
    from server.settings import Settings

    root = tmp_path_factory.mktemp("served")
    shutil.copytree(dev_collection_path, root / "dev")
    coll = Collection.open(root / "dev")
    run_extractor(coll, "birdnet")
    reduce_collection(coll, features=["birdnet"], dims=(8,))
    return create_app(Settings(collections_dir=root, warmup=False))


def test_real_collection_served_and_clustered(real_app):
    app, socketio = real_app
    client = app.test_client()
    info = client.get("/api/collections/dev").get_json()["collection"]
    assert info["default_reduction"] == "birdnet" and 8 in info["reductions"][0]["dims"]
    cols = client.get("/api/collections/dev/clips").get_json()["columns"]
    n = len(cols["clip_id"])
    assert n > 100 and sum(s is not None for s in cols["top_species"]) == n
    assert len(client.get("/api/collections/dev/reductions/birdnet/map.f32").data) == n * 8
    part = client.get("/api/collections/dev/audio/sprite_00000.flac", headers={"Range": "bytes=0-3"})
    assert part.status_code == 206 and part.data == b"fLaC"

    sc = socketio.test_client(app, flask_test_client=app.test_client())
    hints = info["cluster_defaults"]["birdnet"]["8"]["hdbscan"]
    ack = sc.emit(
        "cluster",
        {
            "collection": "dev",
            "features": "birdnet",
            "dims": 8,
            "algorithm": "hdbscan",
            "params": {"min_cluster_size": hints["min_cluster_size"]["default"]},
        },
        callback=True,
    )
    assert ack["ok"], ack
    result = None
    for _ in range(6000):
        for ev in sc.get_received():
            if ev["name"] in ("job:result", "job:error"):
                result = ev
        if result:
            break
        time.sleep(0.01)
    assert result and result["name"] == "job:result", result
    res = result["args"][0]
    labels = np.frombuffer(res["labels"], dtype="<i4")
    truth = np.array([lab or sp or "" for lab, sp in zip(cols["label"], cols["species"], strict=True)])
    assert normalized_mutual_info_score(truth, labels) > 0.7
    # the cluster holding most Parus major clips is pure and BirdNET names it
    great_tit = np.flatnonzero(truth == "Parus major")
    cid = np.bincount(labels[great_tit][labels[great_tit] >= 0]).argmax()
    cluster = res["clusters"][cid]
    assert cluster["top_labels"][0][0] == "Parus major" and cluster["top_species"][0][0] == "Parus major"
    assert labels[cluster["medoid"]] == cid
