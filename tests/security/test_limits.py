"""Limits: classes per collection (a clear message), strict JSON (depth, NaN, huge numbers)."""

from __future__ import annotations

import pytest

from preprocess.errors import ParameterError
from server.security import MAX_JSON_DEPTH, host_name, parse_json_strict

API = "/api/collections/demo"


def test_class_cap_per_collection_has_a_clear_message(make_app, monkeypatch):
    import preprocess.labels

    monkeypatch.setattr(preprocess.labels, "MAX_CLASSES", 3)
    app, _ = make_app()
    client = app.test_client()
    for i in range(3):
        assert client.post(f"{API}/classes", json={"name": f"c{i}"}).status_code == 201
    r = client.post(f"{API}/classes", json={"name": "one too many"})
    body = r.get_json()
    assert r.status_code == 409 and body["ok"] is False and "3 classes, the most allowed" in body["error"]
    assert len(client.get(f"{API}/classes").get_json()["classes"]) == 3


@pytest.mark.parametrize(
    "text, message",
    [
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1), "nested too deeply"),
        ('{"a": NaN}', "not valid JSON"),
        ('{"a": -Infinity}', "not valid JSON"),
        ('{"a": 1e999}', "out of range"),
        ('{"class_id": 100000000000000000000000}', "out of range"),
        ('{"a": 9223372036854775808}', "out of range"),
        ("{", "not valid JSON"),
    ],
)
def test_strict_json_refuses_with_a_message(text, message):
    with pytest.raises(ParameterError, match=message):
        parse_json_strict(text)


def test_strict_json_accepts_ordinary_bodies():
    body = '{"clip_ids": [1, 2, 9223372036854775807], "eps": 0.5, "name": "Song", "d": ' + "[" * 30 + "]" * 30 + "}"
    assert parse_json_strict(body)["clip_ids"][-1] == 2**63 - 1


def test_host_names():
    assert host_name("[::1]:5000") == "[::1]" and host_name("LocalHost:80") == "localhost"
    assert host_name("127.0.0.1") == "127.0.0.1" and host_name("[bad") == ""
