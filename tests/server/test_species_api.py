"""``GET /api/collections/<c>/birdnet/disagree``: BirdNET's confident guesses that contradict the labels."""

from __future__ import annotations

import pytest

from tests.browser.birdnet_collection import CASES, disagreeing, write_birdnet_collection


@pytest.fixture
def client(tmp_path):
    from server.app import create_app
    from server.settings import Settings

    write_birdnet_collection(tmp_path / "birds")
    app, _ = create_app(Settings(collections_dir=tmp_path, warmup=False))
    return app.test_client()


def test_disagreeing_clips_follow_the_minimum_confidence(client):
    r = client.get("/api/collections/birds/birdnet/disagree").get_json()
    assert r["ok"] and r["birdnet"] and r["min_confidence"] == 0.1
    assert r["clip_ids"] == disagreeing(0.1) == [5, 6, 25]  # common-name and scientific labels alike
    assert r["n"] == 3 and r["n_labelled"] == 200
    assert client.get("/api/collections/birds/birdnet/disagree?min_confidence=0.5").get_json()["clip_ids"] == [5, 6]
    low = client.get("/api/collections/birds/birdnet/disagree?min_confidence=0.01").get_json()["clip_ids"]
    assert low == [5, 6, 25, 45] and 185 not in low  # "soundscape" is no BirdNET species: never disagrees
    assert CASES[185][1] > 0.9


@pytest.mark.parametrize("value", ["abc", "1.5", "-0.1"])
def test_bad_minimum_confidence_says_what_is_allowed(client, value):
    r = client.get(f"/api/collections/birds/birdnet/disagree?min_confidence={value}")
    body = r.get_json()
    assert r.status_code == 400 and body["ok"] is False and "[0, 1]" in body["error"]


def test_unknown_collection_is_404(client):
    r = client.get("/api/collections/nope/birdnet/disagree")
    assert r.status_code == 404 and r.get_json()["ok"] is False
