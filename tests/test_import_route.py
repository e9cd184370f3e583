"""``POST /api/collections/<c>/import`` takes Raven tables and Audacity labels too (format from the content or
the form field ``format``), with the unmatched-rows report, as one undoable change."""

from __future__ import annotations

import io

import pytest

from tests.server.test_labels_api import write_collection

RAVEN_PRO = (
    "Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tLow Freq (Hz)\tHigh Freq (Hz)\tBegin File\tAnnotation\n"
    "1\tSpectrogram 1\t1\t24.5\t25.5\t2000\t5000\tXC2.mp3\tWren\n"
    "2\tSpectrogram 1\t1\t1.0\t2.0\t2000\t5000\tgone.wav\tWren\n"
)


@pytest.fixture
def client(tmp_path):
    from server.app import create_app
    from server.settings import Settings

    write_collection(tmp_path / "birds")
    app, _sio = create_app(Settings(collections_dir=tmp_path, warmup=False))
    return app.test_client()


def test_route_imports_raven_pro_and_audacity_and_undoes_in_one_step(client):
    api = "/api/collections/birds"
    r = client.post(f"{api}/import", data={"file": (io.BytesIO(RAVEN_PRO.encode()), "night.Table.1.selections.txt")})
    body = r.get_json()
    assert r.status_code == 200, body
    assert body["format"] == "raven" and body["added"] == 1 and body["n_unmatched"] == 1
    assert "gone.wav" in body["unmatched_rows"][0]["reason"]
    labels = b"0.0\t3.0\tTit\n3.0\t6.0\tTit\n"
    r = client.post(f"{api}/import", data={"file": (io.BytesIO(labels), "XC1.txt"), "format": "audacity"})
    assert r.status_code == 200 and r.get_json()["added"] == 2
    state = client.get(f"{api}/classes").get_json()
    members = {c["name"]: sorted(state["members"][str(c["id"])]) for c in state["classes"]}
    assert members == {"Wren": [10], "Tit": [0, 1]}  # clip 10 = soundscape 24-27 s
    assert client.post(f"{api}/labels/undo", json={}).status_code == 200
    state = client.get(f"{api}/classes").get_json()
    assert [c["name"] for c in state["classes"]] == ["Wren"]
    r = client.post(f"{api}/import", data={"file": (io.BytesIO(labels), "XC1.txt"), "format": "xlsx"})
    assert r.status_code == 400 and "unknown import format" in r.get_json()["error"]
