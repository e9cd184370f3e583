"""``python -m server`` is gunicorn (one worker, many threads) with WebSocket transport; it prints the token URL."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request

import pytest

from .serving import served

pytestmark = pytest.mark.slow


def _get(url: str, headers: dict | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_gunicorn_serves_rest_and_websocket_with_the_printed_token(collections_root):
    import simple_websocket

    with served(collections_root) as (url, log_path):
        parts = urllib.parse.urlsplit(url)
        token = urllib.parse.parse_qs(parts.query)["token"][0]
        assert len(token) >= 24
        base = f"{parts.scheme}://{parts.netloc}"
        assert _get(f"{base}/api/collections")[0] == 401
        status, body = _get(f"{base}/api/collections", {"X-Sonomap-Token": token})
        assert status == 200 and "demo" in json.loads(body)["collections"][0]["name"]
        assert _get(f"{base}/api/collections", {"X-Sonomap-Token": token, "Host": "evil.example"})[0] == 400
        ws_url = f"ws://{parts.netloc}/socket.io/?EIO=4&transport=websocket&token={token}"
        ws = simple_websocket.Client.connect(ws_url)
        try:
            assert ws.receive(timeout=10).startswith("0{")  # Engine.IO open, over WebSocket
            ws.send("40")
            assert ws.receive(timeout=10).startswith("40{")  # Socket.IO connected
            ws.send('421["join",{"collection":"demo"}]')
            assert json.loads(ws.receive(timeout=10)[3:])[0]["ok"] is True
        finally:
            ws.close()
        with pytest.raises(simple_websocket.ConnectionError):
            simple_websocket.Client.connect(ws_url.replace(token, "wrong"))
        log = log_path.read_text()
    assert "gunicorn" in log and "Using worker: gthread" in log
    assert "development server" not in log.lower() and "Traceback" not in log
    assert f"    {url}" in log  # printed on a line of its own
