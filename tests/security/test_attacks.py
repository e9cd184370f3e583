"""Each attack on the local server fails: CSRF (cross-origin undo and import), DNS rebinding (REST and Socket.IO), no
token, a wrong token; the user's own page and programs with the token still work; read-only mode; body limits."""

from __future__ import annotations

import io
import os
import stat

import pytest

from .conftest import TOKEN

API = "/api/collections/demo"
EVIL = {"Origin": "https://evil.example"}


def _classes(client) -> list[dict]:
    r = client.get(f"{API}/classes")
    assert r.status_code == 200, r.get_json()
    return r.get_json()["classes"]


def _seed_classes(client, n: int = 5) -> list[dict]:
    for i in range(n):
        r = client.post(f"{API}/classes", json={"name": f"class {i}"})
        assert r.status_code == 201, r.get_json()
        cid = r.get_json()["class"]["id"] if "class" in r.get_json() else _classes(client)[-1]["id"]
        assert client.post(f"{API}/classes/{cid}/members", json={"clip_ids": [i, i + 10]}).status_code == 200
    return _classes(client)


def _error(r, status: int) -> str:
    body = r.get_json()
    assert r.status_code == status, (r.status_code, r.data[:300])
    assert body["ok"] is False and body["status"] == status and body["error"]
    return body["error"]


def _login(app, anon):
    """A browser that visited the printed URL: it now holds the cookie, and nothing else."""
    browser = anon(app)
    r = browser.get(f"/?token={TOKEN}&c=demo")
    assert r.status_code == 302 and r.headers["Location"] == "/?c=demo"
    return browser, r


def test_cross_origin_undo_is_refused_and_labels_unchanged(make_app, anon):
    app, _ = make_app()
    before = _seed_classes(app.test_client())
    browser, _ = _login(app, anon)  # the cookie rides along, as it would for a same-site page on another port
    for _ in range(10):
        r = browser.post(f"{API}/labels/undo", data="{}", headers={**EVIL, "Content-Type": "text/plain"})
        assert "evil.example" in _error(r, 403)
    # without an Origin (an old browser's form post) the missing header still refuses it
    r = browser.post(f"{API}/labels/undo", data="{}", headers={"Content-Type": "text/plain"})
    assert "X-Sonomap-Token" in _error(r, 403)
    assert _classes(app.test_client()) == before


def test_cross_origin_multipart_import_is_refused(make_app, anon):
    app, _ = make_app()
    before = _seed_classes(app.test_client())
    browser, _ = _login(app, anon)
    csv = b"clip_id,label\n0,Wiped\n1,Wiped\n"
    r = browser.post(f"{API}/import", data={"file": (io.BytesIO(csv), "x.csv")}, headers=EVIL)
    _error(r, 403)
    r = browser.post(f"{API}/import", data={"file": (io.BytesIO(csv), "x.csv")})  # no Origin, no header
    _error(r, 403)
    assert _classes(app.test_client()) == before


def test_own_page_may_change_things(make_app, anon):
    """The page: same Origin, the browser's Sec-Fetch-Site (uploads) or the X-Sonomap-Token header (api.js)."""
    app, _ = make_app()
    browser, _ = _login(app, anon)
    own = {"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"}
    assert browser.post(f"{API}/classes", json={"name": "a"}, headers=own).status_code == 201
    hdr = {"Origin": "http://localhost", "X-Sonomap-Token": TOKEN}
    assert browser.post(f"{API}/classes", json={"name": "b"}, headers=hdr).status_code == 201
    # a same-site page elsewhere cannot forge the browser's header
    r = browser.post(f"{API}/classes", json={"name": "c"}, headers={"Sec-Fetch-Site": "same-site"})
    _error(r, 403)
    assert [c["name"] for c in _classes(app.test_client())] == ["a", "b"]


def test_rebinding_host_is_refused_for_rest_and_socket(make_app, anon):
    app, socketio = make_app()
    client = app.test_client()
    for host in ("evil.example:5000", "evil.example", "127.0.0.1.evil.example:5000", ""):
        r = client.get("/api/collections", headers={"Host": host})
        _error(r, 400)
    for host in ("localhost:5000", "127.0.0.1:5000", "[::1]:5000", "LOCALHOST"):
        assert client.get("/api/collections", headers={"Host": host}).status_code == 200, host
    evil = socketio.test_client(app, headers={"Host": "evil.example:5000", "X-Sonomap-Token": TOKEN})
    assert not evil.is_connected()
    good = socketio.test_client(app, headers={"Host": "localhost:5000", "X-Sonomap-Token": TOKEN})
    assert good.is_connected()
    good.disconnect()


def test_allow_host_adds_a_name(make_app):
    app, _ = make_app(allowed_hosts=("sonomap.lan",))
    assert app.test_client().get("/api/collections", headers={"Host": "sonomap.lan:5000"}).status_code == 200


def test_no_token_is_refused_and_the_token_is_allowed(make_app, anon):
    app, socketio = make_app()
    nobody = anon(app)
    assert "token" in _error(nobody.get("/api/collections"), 401)
    assert "token" in _error(nobody.get(f"{API}/audio/sprite_00000.flac"), 401)
    _error(nobody.get("/api/collections", headers={"X-Sonomap-Token": "guess"}), 403)
    assert nobody.get("/api/collections", headers={"X-Sonomap-Token": TOKEN}).status_code == 200
    assert nobody.get(f"/api/collections?token={TOKEN}").status_code == 200
    r = nobody.get("/")
    assert r.status_code == 401 and b"token" in r.data
    assert not socketio.test_client(app, headers={}).is_connected()
    assert not socketio.test_client(app, auth={"token": "guess"}).is_connected()
    ok = socketio.test_client(app, auth={"token": TOKEN})
    assert ok.is_connected()
    ok.disconnect()
    # a cross-origin page cannot open the socket either, even with the cookie
    browser, _ = _login(app, anon)
    assert not socketio.test_client(app, flask_test_client=browser, headers={**EVIL}).is_connected()
    own = socketio.test_client(app, flask_test_client=browser, headers={"Origin": "http://localhost"})
    assert own.is_connected()
    own.disconnect()


def test_cookie_is_httponly_samesite_strict_and_opens_the_page(make_app, anon):
    app, _ = make_app(port=5123)
    browser, r = _login(app, anon)
    cookie = r.headers["Set-Cookie"]
    assert cookie.startswith(f"sonomap_token_5123={TOKEN};")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    page = browser.get("/?c=demo")
    assert page.status_code == 200
    assert f'<meta name="sonomap-token" content="{TOKEN}">'.encode() in page.data
    assert browser.get("/api/collections").status_code == 200
    assert browser.get("/static/index.html").status_code == 200  # the app's code is public
    assert anon(app).get("/static/index.html").status_code == 200


def test_no_token_mode_still_needs_the_header_for_changes(make_app, anon):
    app, _ = make_app(auth=False)
    nobody = anon(app)
    assert nobody.get("/api/collections").status_code == 200
    _error(nobody.post(f"{API}/labels/undo", data="{}", headers={"Content-Type": "text/plain"}), 403)
    _error(nobody.post(f"{API}/classes", json={"name": "x"}, headers=EVIL), 403)
    assert nobody.post(f"{API}/classes", json={"name": "x"}, headers={"X-Sonomap-Token": "-"}).status_code == 201


def test_read_only_serves_maps_and_audio_but_refuses_changes(make_app):
    app, socketio = make_app(read_only=True)
    client = app.test_client()
    info = client.get(API).get_json()["collection"]
    key = info.get("default_reduction") or info["reductions"][0]["key"]
    assert client.get(f"{API}/reductions/{key}/map.f32").status_code == 200
    assert client.get(f"{API}/audio/sprite_00000.flac").status_code == 200
    assert "read-only" in _error(client.post(f"{API}/classes", json={"name": "x"}), 403)
    assert "read-only" in _error(client.post(f"{API}/labels/undo", json={}), 403)
    assert "read-only" in _error(client.post("/api/uploads", json={"file_name": "a.wav", "size_bytes": 10}), 403)
    sc = socketio.test_client(app)
    ack = sc.emit("remap", {"collection": "demo"}, callback=True)
    assert ack["ok"] is False and ack["status"] == 403 and "read-only" in ack["error"]
    sc.disconnect()


def test_oversize_and_wrong_content_type_bodies(make_app):
    app, _ = make_app(max_json_mb=1, max_form_mb=1)
    client = app.test_client()
    big = b'{"name": "' + b"x" * (2 * 2**20) + b'"}'
    assert "at most 1 MiB" in _error(client.post(f"{API}/classes", data=big, content_type="application/json"), 413)
    r = client.post(f"{API}/import", data={"file": (io.BytesIO(b"clip_id,label\n" * 100_000), "x.csv")})
    _error(r, 413)
    _error(client.post(f"{API}/classes", data='{"name": "x"}', content_type="text/plain"), 415)
    _error(client.post(f"{API}/classes", data="{'name': 1}", content_type="application/json"), 400)
    assert _classes(client) == []


def test_secret_key_is_random_per_install_and_private(make_app, collections_root):
    app1, _ = make_app()
    app2, _ = make_app()
    path = collections_root / ".sonomap_secret_key"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert app1.config["SECRET_KEY"] == app2.config["SECRET_KEY"] == path.read_text()
    assert len(app1.config["SECRET_KEY"]) >= 32 and app1.config["SECRET_KEY"] != "sonomap-local"
    app3, _ = make_app(secret_key="set-by-user")
    assert app3.config["SECRET_KEY"] == "set-by-user"


def test_no_token_beyond_localhost_is_refused(collections_root, capsys):
    from server.__main__ import main

    with pytest.raises(SystemExit) as e:
        main(["--collections", str(collections_root), "--host", "0.0.0.0", "--no-token"])
    assert e.value.code == 2 and "--no-token is refused" in capsys.readouterr().err


def test_bound_address_and_ip_literals_beyond_localhost(make_app):
    app, _ = make_app(host="0.0.0.0")
    client = app.test_client()
    assert client.get("/api/collections", headers={"Host": "192.168.1.20:5000"}).status_code == 200
    _error(client.get("/api/collections", headers={"Host": "evil.example:5000"}), 400)
