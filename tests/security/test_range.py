"""HTTP Range on audio sprites per RFC 9110 section 14 (real FLAC sprites of the demo collection)."""

from __future__ import annotations

import pytest

URL = "/api/collections/demo/audio/sprite_00000.flac"


@pytest.fixture
def audio(make_app):
    app, _ = make_app()
    client = app.test_client()
    full = client.get(URL)
    assert full.status_code == 200 and full.headers["Accept-Ranges"] == "bytes"
    return client, full.data


def test_one_range_is_206(audio):
    client, data = audio
    r = client.get(URL, headers={"Range": "bytes=10-19"})
    assert r.status_code == 206 and r.data == data[10:20]
    assert r.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
    r = client.get(URL, headers={"Range": "bytes=-100"})
    assert r.status_code == 206 and r.data == data[-100:]
    r = client.get(URL, headers={"Range": f"bytes={len(data) - 5}-{len(data) + 100}"})  # end past the file: clipped
    assert r.status_code == 206 and r.data == data[-5:]


def test_unsatisfiable_is_416_with_content_range(audio):
    client, data = audio
    for spec in (f"bytes={len(data)}-", f"bytes={len(data) + 10}-{len(data) + 20}", "bytes=-0"):
        r = client.get(URL, headers={"Range": spec})
        assert r.status_code == 416, spec
        assert r.headers["Content-Range"] == f"bytes */{len(data)}"
        assert r.get_json()["ok"] is False and r.get_json()["status"] == 416


def test_suffix_longer_than_the_file_is_the_whole_file(audio):
    client, data = audio
    r = client.get(URL, headers={"Range": f"bytes=-{len(data) * 10}"})
    assert r.status_code == 206 and r.data == data
    assert r.headers["Content-Range"] == f"bytes 0-{len(data) - 1}/{len(data)}"


def test_multi_range_and_malformed_ranges_get_the_whole_file(audio):
    client, data = audio
    for spec in ("bytes=0-1,5-9", "bytes=0-1, -5", "bytes=9-2", "bytes=abc", "items=0-5", "bytes=-"):
        r = client.get(URL, headers={"Range": spec})
        assert r.status_code == 200 and r.data == data, spec
