"""REST: one JSON error shape, collection details, clip table (JSON + binary), map.f32, sprites/audio with Range."""

from __future__ import annotations

import json

import numpy as np
import pytest

N = 600


def test_collections_and_detail(client):
    r = client.get("/api/collections")
    assert r.status_code == 200
    names = [c["name"] for c in r.get_json()["collections"]]
    assert names == ["nofeat", "synth"]
    d = client.get("/api/collections/synth").get_json()["collection"]
    assert d["name"] == "synth" and d["counts"]["clips"] == N
    assert d["feature_sets"] == [{"name": "birdnet", "dim": 32, "extractor": "birdnet"}]
    assert d["reductions"] == [{"key": "birdnet", "dims": [2, 8], "features": ["birdnet"]}]
    assert d["default_reduction"] == "birdnet"
    assert d["algorithms"]["dbscan"]["eps"] == {
        "type": "float",
        "min": 1e-6,
        "max": 100.0,
        "default": 0.5,
        "help": "neighbourhood radius in reduced-coordinate units",
    }
    assert d["algorithms"]["dbscan"]["partition"]["choices"] == ["auto", "off"]
    assert set(d["algorithms"]) == {"dbscan", "hdbscan", "kmeans"}
    eps = d["cluster_defaults"]["birdnet"]["8"]["dbscan"]["eps"]
    assert 0 < eps["default"] < eps["max"]
    assert "label" in d["columns"] and "species" in d["columns"]


def test_clip_table_json_and_binary_agree(client):
    from server.tables import CLIP_TABLE_COLUMNS, read_binary

    r = client.get("/api/collections/synth/clips")
    body = json.loads(r.data, parse_constant=lambda c: pytest.fail(f"not strict JSON: {c}"))  # browsers reject NaN
    assert body["ok"] and body["n"] == N and tuple(body["columns"]) == CLIP_TABLE_COLUMNS
    cols = body["columns"]
    assert cols["clip_id"] == list(range(N))
    assert cols["file_name"][0] == "it's rec 0.flac" and cols["top_species"][0] == "Turdus merula"
    assert cols["label"][0] == "Turdus merula" and cols["xc_id"][0] == "1000"
    missing = [i for i, r in enumerate(cols["recording_id"]) if r == 11]
    assert missing and all(cols["xc_id"][i] is None and cols["recordist"][i] is None for i in missing)
    b = client.get("/api/collections/synth/clips.bin")
    assert b.status_code == 200 and b.mimetype == "application/octet-stream"
    assert len(b.data) < len(r.data)
    dec = read_binary(b.data)
    for name in CLIP_TABLE_COLUMNS:
        got = dec[name]
        got = got.tolist() if isinstance(got, np.ndarray) else got
        want = [None if v is None else (str(v) if isinstance(got[0], str) else v) for v in cols[name]]
        assert got == want, name
    r2 = client.get("/api/collections/synth/clips", headers={"If-None-Match": r.headers["ETag"]})
    assert r2.status_code == 304


def test_map_f32(client):
    r = client.get("/api/collections/synth/reductions/birdnet/map.f32")
    assert r.status_code == 200 and len(r.data) == N * 2 * 4
    xy = np.frombuffer(r.data, dtype="<f4").reshape(N, 2)
    assert np.isfinite(xy).all()
    assert client.get(r.request.path, headers={"If-None-Match": r.headers["ETag"]}).status_code == 304
    missing = client.get("/api/collections/synth/reductions/saec/map.f32")
    assert missing.status_code == 404 and "available: birdnet" in missing.get_json()["error"]


@pytest.mark.parametrize(
    ("path", "mimetype"),
    [
        ("/api/collections/synth/sprites/sheet_00000.jpg", "image/jpeg"),
        ("/api/collections/synth/audio/sprite_00000.flac", "audio/flac"),
    ],
)
def test_files_etag_cache_range(client, path, mimetype):
    full = client.get(path)
    assert full.status_code == 200 and full.mimetype == mimetype
    assert "max-age=" in full.headers["Cache-Control"] and full.headers["ETag"]
    assert full.headers["Accept-Ranges"] == "bytes"
    assert client.get(path, headers={"If-None-Match": full.headers["ETag"]}).status_code == 304
    part = client.get(path, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.data == full.data[100:200]
    assert part.headers["Content-Range"] == f"bytes 100-199/{len(full.data)}"
    tail = client.get(path, headers={"Range": "bytes=-50"})
    assert tail.status_code == 206 and tail.data == full.data[-50:]
    bad = client.get(path, headers={"Range": f"bytes={len(full.data) + 10}-"})
    assert bad.status_code == 416


@pytest.mark.parametrize(
    "path",
    [
        "/api/collections/synth/sprites/..%2f..%2fsecret.txt",
        "/api/collections/synth/sprites/../../secret.txt",
        "/api/collections/synth/audio/..%2F..%2F..%2Fsecret.txt",
        "/api/collections/synth/audio/%2e%2e/%2e%2e/manifest.json",
        "/api/collections/synth/sprites/sheet_00000.jpg%00.txt",
        "/api/collections/..%2fsecret.txt/sprites/sheet_00000.jpg",
        "/api/collections/synth/audio/sprite_00099.flac",
        "/static/..%2f..%2fpyproject.toml",
        "/static/../pyproject.toml",
    ],
)
def test_traversal_refused(client, path):
    r = client.get(path)
    assert r.status_code == 404
    assert r.get_json()["ok"] is False
    assert b"do not serve" not in r.data and b"[project]" not in r.data


def test_one_error_shape(client):
    for path, status in [
        ("/api/collections/nope", 404),
        ("/api/collections/nope/clips", 404),
        ("/api/nothing/here", 404),
        ("/api/collections/synth/reductions/birdnet/dims_8.f32", 404),
    ]:
        r = client.get(path)
        body = r.get_json()
        assert r.status_code == status and body["ok"] is False and body["status"] == status and body["error"]
    r = client.delete("/api/collections")
    assert r.status_code == 405 and r.get_json() == {"ok": False, "error": r.get_json()["error"], "status": 405}
    assert "nofeat, synth" in client.get("/api/collections/nope").get_json()["error"]


def test_unexpected_error_is_500_without_traceback(app_and_socketio):
    app, _ = app_and_socketio
    app.testing = False  # let the error handler run as in production
    registry = app.extensions["sonomap"]["registry"]
    registry.get = lambda name: (_ for _ in ()).throw(RuntimeError("secret internals"))
    r = app.test_client().get("/api/collections/synth")
    assert r.status_code == 500 and r.get_json()["ok"] is False
    assert "Traceback" not in r.get_data(as_text=True) and "secret internals" not in r.get_data(as_text=True)


def test_front_end_served(synthetic_root, tmp_path):
    from server.app import create_app
    from server.settings import Settings

    static = tmp_path / "static"
    static.mkdir()
    page = "<!doctype html><title>sonomap</title><main id='app'>hello</main>"
    (static / "index.html").write_text(page)
    app, _ = create_app(Settings(collections_dir=synthetic_root, static_dir=static, warmup=False))
    client = app.test_client()
    r = client.get("/")
    assert r.status_code == 200 and r.mimetype == "text/html" and r.headers["Cache-Control"] == "no-cache"
    assert r.get_data(as_text=True) == page  # the page itself, not some other answer
    assert client.get("/", headers={"If-None-Match": r.headers["ETag"]}).status_code == 304
    (static / "index.html").unlink()
    missing = client.get("/")
    assert missing.status_code == 404 and "npm run build" in missing.get_json()["error"]


def test_unexpected_rest_error_has_a_logged_id_and_no_path(app_and_socketio, caplog):
    app, _ = app_and_socketio
    app.testing = False
    registry = app.extensions["sonomap"]["registry"]
    registry.get = lambda name: (_ for _ in ()).throw(OSError("/srv/private/collections/synth/clips.parquet: gone"))
    body = app.test_client().get("/api/collections/synth").get_json()
    assert body["status"] == 500 and body["error"].startswith("internal error (id ") and "/srv" not in str(body)
    assert any(body["error_id"] in r.getMessage() and r.exc_info for r in caplog.records)


def test_expected_error_messages_lose_absolute_paths(app_and_socketio):
    from preprocess.errors import CollectionError

    app, _ = app_and_socketio
    registry = app.extensions["sonomap"]["registry"]
    registry.get = lambda name: (_ for _ in ()).throw(
        CollectionError("/srv/private/collections/synth/clips.parquet has 3 clips, the manifest says 4")
    )
    body = app.test_client().get("/api/collections/synth").get_json()
    assert body == {"ok": False, "error": "clips.parquet has 3 clips, the manifest says 4", "status": 409}


def test_static_assets_get_content_hashed_urls(synthetic_root, tmp_path):
    from server.app import create_app
    from server.settings import Settings

    static = tmp_path / "static"
    (static / "dist").mkdir(parents=True)
    (static / "dist" / "app.js").write_text("console.log(1)")
    (static / "index.html").write_text('<script type="module" src="/static/dist/app.js"></script>')
    app, _ = create_app(Settings(collections_dir=synthetic_root, static_dir=static, warmup=False))
    c = app.test_client()
    html = c.get("/").get_data(as_text=True)
    url = html.split('src="')[1].split('"')[0]
    assert url.startswith("/static/dist/app.js?v=") and len(url) > len("/static/dist/app.js?v=")
    r = c.get(url)
    assert r.status_code == 200 and "immutable" in r.headers["Cache-Control"] and r.data == b"console.log(1)"
    plain = c.get("/static/dist/app.js")
    assert plain.headers["Cache-Control"] == "no-cache" and plain.headers["ETag"]
    assert c.get("/static/dist/app.js", headers={"If-None-Match": plain.headers["ETag"]}).status_code == 304
    (static / "dist" / "app.js").write_text("console.log(2)")  # a rebuild changes the URL
    assert c.get("/").get_data(as_text=True) != html
    assert c.get("/static/dist/missing.js").status_code == 404


def test_new_collection_folder_is_found(tmp_path):
    from server.app import create_app
    from server.settings import Settings

    app, _ = create_app(Settings(collections_dir=tmp_path, warmup=False))
    c = app.test_client()
    assert c.get("/api/collections").get_json()["collections"] == []
    assert c.get("/api/collections/late").status_code == 404
    from preprocess.testing import CollectionWriter

    CollectionWriter(tmp_path / "late").manifest(config={}, counts={"clips": 0})  # a build finishing meanwhile
    assert c.get("/api/collections/late").status_code == 200
