"""400, never 500: hostile bodies to every route (``app.url_map``) and every socket event (``socketio.test_client``).

Fails on any 5xx, a reply with traceback text or one of the server's absolute paths, and an error reply that is
not the JSON error shape ``{ok: false, error, status}``.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HUGE_INT = 10**23
FIELDS = [
    "name", "color", "note", "who", "clip_ids", "source", "file_name", "size_bytes", "client_id", "collection",
    "new_collection", "uploads", "key", "job_id", "algorithm", "params", "features", "dims", "seed", "eps",
    "min_samples", "min_cluster_size", "n_clusters", "reduction", "format", "offset", "class_id", "labels",
]  # fmt: skip
#: JSON texts no client should send (sent raw with Content-Type: application/json).
RAW_BODIES = [
    "[" * 100_000 + "]" * 100_000,
    '{"a":' * 100_000 + "1" + "}" * 100_000,
    "NaN",
    '{"name": NaN, "clip_ids": [Infinity, -Infinity]}',
    '{"clip_ids": [1e999]}',
    '{"name": 1' + "0" * 5000 + "}",
    "{",
    '"just a string"',
    "\xff\xfe garbage",
    "[]",
    "null",
]
VALUES = [
    HUGE_INT,
    -HUGE_INT,
    2**63,
    -1,
    0,
    1.5,
    float("nan"),
    float("inf"),
    True,
    None,
    "",
    "x" * 200_000,
    "../../etc/passwd",
    [[1], [1, 2]],
    [HUGE_INT],
    [-1, "a", None],
    list(range(5000)),
    {"a": {"b": [1]}},
    [],
    {},
]
QUERY = {"format": ["", "x" * 10_000, "../x"], "labelled_only": ["2", "x"], "offset": [str(HUGE_INT), "-5", "x"]}
URL_VALUES = {
    "int": [0, HUGE_INT, 2**63],
    "path": ["sheet_00000.jpg", "../../etc/passwd", "x" * 300],
    "default": ["demo", "nope", str(HUGE_INT), "x" * 300, ".."],
}
_TRACEBACK = re.compile(r"Traceback|File \"|line \d+, in ")


def _forbidden_paths(root: Path) -> list[str]:
    paths = {str(REPO), str(root), str(root.resolve()), sys.prefix, "/tmp/pytest-of"}
    return sorted(p for p in paths if len(p) > 4)


def _text(r) -> str:
    return r.get_data().decode("utf-8", errors="replace")


class Findings:
    """Every problem found (one per route/event and kind), reported together at the end."""

    def __init__(self, forbidden: list[str]) -> None:
        self.forbidden = forbidden
        self.found: dict[tuple, str] = {}

    def check(self, where: str, what: str, status: int, text: str) -> None:
        if status >= 500:
            self.found.setdefault((where, "5xx", text[:120]), f"{what}: {status} {text[:300]}")
        if _TRACEBACK.search(text):
            self.found.setdefault((where, "traceback"), f"{what}: traceback text in the reply: {text[:500]}")
        for p in self.forbidden:
            if p in text:
                self.found.setdefault((where, "path"), f"{what}: the server path {p} is in the reply: {text[:500]}")

    def assert_none(self) -> None:
        assert not self.found, f"{len(self.found)} problem(s):\n" + "\n".join(self.found.values())


def _url_args(rule) -> list[dict]:
    names = list(rule.arguments)
    if not names:
        return [{}]
    combos = []
    for i in range(3):
        args = {}
        for n in names:
            conv = type(rule._converters[n]).__name__.lower()
            kind = "int" if "integer" in conv else "path" if "path" in conv else "default"
            pool = URL_VALUES[kind]
            args[n] = "demo" if n == "name" and i < 2 else pool[i % len(pool)]
        combos.append(args)
    return combos


def _build_url(rule, args: dict) -> str:
    url = rule.rule
    for k, v in args.items():
        url = re.sub(rf"<(?:[^:<>]+:)?{k}>", str(v), url)
    return url


def _bodies():
    for raw in RAW_BODIES:
        yield "raw", raw
    for v in VALUES:
        yield "all", {f: v for f in FIELDS}
        yield "value", v
    for f in FIELDS:
        for v in VALUES:
            yield f"{f}=", {f: v}


@pytest.mark.slow
def test_every_route_answers_hostile_bodies_with_4xx(make_app, collections_root):
    app, _ = make_app()
    client = app.test_client()
    findings = Findings(_forbidden_paths(collections_root))
    rules = [r for r in app.url_map.iter_rules() if r.endpoint != "static"]
    assert len(rules) > 10
    n = 0
    for rule in rules:
        methods = sorted(rule.methods - {"HEAD", "OPTIONS"})
        for args in _url_args(rule):
            url = _build_url(rule, args)
            for method in methods:
                if method == "GET":
                    for key, values in QUERY.items():
                        for v in values:
                            r = client.get(url, query_string={key: v})
                            findings.check(rule.rule, f"GET {url}?{key}={v[:20]}", r.status_code, _text(r))
                            n += 1
                    continue
                for kind, body in _bodies():
                    data = body if kind == "raw" else json.dumps(body)
                    r = client.open(url, method=method, data=data, content_type="application/json")
                    text = _text(r)
                    findings.check(rule.rule, f"{method} {url} [{kind}] {data[:60]!r}", r.status_code, text)
                    if r.status_code >= 400 and r.is_json:
                        err = r.get_json()
                        if not (err.get("ok") is False and err.get("status") == r.status_code and err.get("error")):
                            findings.found.setdefault((rule.rule, "shape"), f"{method} {url}: error shape {err}")
                    n += 1
                r = client.open(url, method=method, data=b"\x00" * 1000, content_type="application/octet-stream")
                findings.check(rule.rule, f"{method} {url} octet-stream", r.status_code, _text(r))
    assert n > 1000
    findings.assert_none()


@pytest.mark.slow
def test_every_socket_event_answers_hostile_payloads_with_an_error_ack(make_app, collections_root):
    app, socketio = make_app()
    findings = Findings(_forbidden_paths(collections_root))
    events = sorted(e for e in socketio.server.handlers["/"] if e not in ("connect", "disconnect"))
    assert {"cluster", "join"} <= set(events)
    sc = socketio.test_client(app)
    assert sc.is_connected()
    payloads = [v for v in VALUES] + [{f: v} for f in FIELDS for v in VALUES] + [{f: v for f in FIELDS} for v in VALUES]
    payloads += [{"collection": "demo", f: v} for f in FIELDS if f != "collection" for v in VALUES]
    for event in events:
        for p in payloads:
            ack = sc.emit(event, p, callback=True)
            text = json.dumps(ack, default=str)
            what = f"{event} {text[:80]}"
            status = ack.get("status", 200) if isinstance(ack, dict) else 200
            findings.check(event, what, status if isinstance(status, int) else 200, text)
        for ev in sc.get_received():
            for a in ev["args"]:
                status = a.get("status") if isinstance(a, dict) else None
                text = json.dumps(a, default=str)
                findings.check(event, f"{event} -> {ev['name']}", status if isinstance(status, int) else 200, text)
    sc.disconnect()
    findings.assert_none()
