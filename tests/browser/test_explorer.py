"""What a person sees and hears in the explorer, in real Chromium against the real server.

The tests share one page and run in file order, like a user's session: load → listen → tune → pool → export;
each test makes the classes it needs itself. Hover latency is measured against its budget in bench/page.py, not here.
"""

from __future__ import annotations

import csv
import io
import json
import urllib.request
from pathlib import Path

import numpy as np
import pytest

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

pytestmark = pytest.mark.browser


def hook(page, expr: str):
    return page.evaluate(f"(() => {{ const h = window.__sonomap; return {expr}; }})()")


def wait(page, expr: str, timeout_ms: int = 30_000) -> None:
    """Wait for a JS condition; on timeout, fail with what the page knew (job, last result, playback)."""
    try:
        page.wait_for_function(expr, timeout=timeout_ms)
    except Exception:
        seen = page.evaluate(
            "(() => { const h = window.__sonomap || {}; const s = h.state || {};"
            " return JSON.stringify({job: s.job, lastResult: h.lastResult, results: h.clusterResults,"
            " colorVersion: h.colorVersion, lastPlayback: h.lastPlayback, focus: s.focus && s.focus.label,"
            " classes: s.classes}); })()"
        )
        raise AssertionError(f"timed out waiting for {expr}; page state: {seen}") from None


def screen_points(page) -> np.ndarray:
    """Screen positions of every point ([n, 2], NaN when off screen)."""
    pts = page.evaluate(
        "(() => { const h = window.__sonomap; const n = h.state.n; const out = [];"
        " for (let i = 0; i < n; i++) { const p = h.pointToScreen(i); out.push(p ? p : [NaN, NaN]); } return out; })()"
    )
    return np.array([[np.nan if v is None else v for v in p] for p in pts], dtype=float)


def isolated_points(xy: np.ndarray, k: int = 3) -> list[int]:
    """Indices of the k on-screen points farthest from their nearest neighbour (unambiguous hover targets)."""
    ok = np.isfinite(xy).all(axis=1)
    d = np.sqrt(((xy[:, None, :] - xy[None, :, :]) ** 2).sum(-1))
    d[np.arange(len(xy)), np.arange(len(xy))] = np.inf
    d[:, ~ok] = np.inf
    nn = np.where(ok, d.min(axis=1), -1)
    return [int(i) for i in np.argsort(-nn)[:k]]


def test_page_loads_the_demo_and_draws_points(page, demo):
    n = demo["clips"]["n"]
    assert n > 10
    assert hook(page, "h.pointsDrawn") == n == len(demo["xy"])
    assert hook(page, "h.state.collection") == "demo"
    # a clustering result streams in on its own, so the legend has clusters to click
    wait(page, "window.__sonomap.clusterResults > 0", timeout_ms=120_000)
    assert page.locator("#legend .lg-row").count() > 0
    assert not page.errors


def test_hovering_a_point_plays_exactly_that_clip(page, demo):
    cols = demo["clips"]["columns"]
    rate = float(demo["info"]["config"]["audio_sample_rate"])
    xy = screen_points(page)
    targets = isolated_points(xy, k=2)
    before = hook(page, "h.playbacks")
    for i in targets:
        x, y = xy[i]
        page.mouse.move(x - 40, y - 40)
        page.mouse.move(x, y, steps=4)
        wait(page, f"window.__sonomap.lastPlayback && window.__sonomap.lastPlayback.clip_id === {i}")
        pb = hook(page, "h.lastPlayback")
        assert pb["sprite"] == cols["audio_sprite"][i]
        assert pb["offset_s"] == pytest.approx(cols["audio_offset"][i] / rate, abs=1e-6)
        assert pb["duration_s"] == pytest.approx(cols["audio_length"][i] / rate, abs=1e-6)
        assert pb["context_state"] == "running"
        # the hover card shows that clip
        assert f"clip {i}" in page.locator("#hovercard").inner_text()
    assert hook(page, "h.playbacks") > before
    page.mouse.move(5, 5)


def test_arrow_keys_step_through_a_cluster_typical_first_and_space_plays_it(page):
    page.select_option("#color-by", "cluster")
    page.locator("#legend .lg-row").nth(0).click()
    order = hook(page, "Array.from(h.state.galleryOrder)")
    labels = hook(page, "Array.from(h.state.cluster.labels)")
    assert len({labels[i] for i in order}) == 1  # the gallery is that one cluster
    assert page.locator("#gallery .tile").count() == min(len(order), 240)
    page.locator("#map").hover(position={"x": 3, "y": 3})
    for j in range(min(3, len(order))):
        page.keyboard.press("ArrowRight")
        wait(page, f"window.__sonomap.lastPlayback.clip_id === {order[j]}")
        assert hook(page, "h.state.galleryIndex") == j
    page.keyboard.press("ArrowLeft")
    wait(page, f"window.__sonomap.lastPlayback.clip_id === {order[max(0, min(3, len(order)) - 2)]}")
    # space plays the gallery in order ("play all"), space again stops
    page.keyboard.press("Space")
    wait(page, "window.__sonomap.state.playingSequence === true")
    page.keyboard.press("Space")
    wait(page, "window.__sonomap.state.playingSequence === false")
    page.keyboard.press("Escape")


def test_changing_a_slider_recolours_the_map_from_a_new_streamed_result(page):
    page.select_option("#color-by", "cluster")
    page.select_option("#ctl-algorithm", "kmeans")
    wait(
        page,
        "window.__sonomap.lastResult && window.__sonomap.lastResult.request.algorithm === 'kmeans'",
        timeout_ms=120_000,
    )
    first = hook(page, "h.lastResult")
    colors_before = hook(page, "h.colorVersion")
    slider = page.locator("#param-n_clusters")
    slider.focus()
    for _ in range(60):
        page.keyboard.press("ArrowRight")
        if int(page.locator('[aria-label="n_clusters value"]').input_value()) >= first["n_clusters"] + 2:
            break
    wanted = int(page.locator('[aria-label="n_clusters value"]').input_value())
    assert wanted != first["n_clusters"]
    wait(
        page,
        f"window.__sonomap.lastResult.request.params.n_clusters === {wanted}"
        f" && window.__sonomap.colorVersion > {colors_before}",
        timeout_ms=120_000,
    )
    last = hook(page, "h.lastResult")
    assert last["job_id"] != first["job_id"]
    assert last["n_clusters"] == wanted
    # the legend (one row per cluster, plus noise if any) follows the new result
    rows = page.locator("#legend .lg-row").count()
    assert rows == wanted + (1 if last["n_noise"] else 0)
    assert page.locator("#n-clusters").inner_text() == str(wanted)


def test_lasso_and_pooling_produce_the_expected_class(page, server_url, get_json):
    xy = screen_points(page)
    ok = np.isfinite(xy).all(axis=1)
    xs = np.sort(xy[ok, 0])
    # cut the cloud at the widest horizontal gap in its middle, so no point sits on the lasso's edge
    lo, hi = int(len(xs) * 0.25), int(len(xs) * 0.75)
    gaps = np.diff(xs[lo:hi])
    j = lo + int(np.argmax(gaps))
    cut = (xs[j] + xs[j + 1]) / 2
    y0, y1 = np.nanmin(xy[:, 1]) - 15, np.nanmax(xy[:, 1]) + 15
    x0 = np.nanmin(xy[:, 0]) - 15
    expected = sorted(int(i) for i in np.where(ok & (xy[:, 0] < cut))[0])

    page.click("#lasso-toggle")
    corners = [(x0, y0), (cut, y0), (cut, y1), (x0, y1), (x0, y0 + 1)]
    page.mouse.move(*corners[0])
    page.mouse.down()
    for a, b in zip(corners, corners[1:], strict=False):
        for t in np.linspace(0, 1, 8)[1:]:
            page.mouse.move(a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t)
    page.mouse.up()
    wait(page, "window.__sonomap.state.focus && window.__sonomap.state.focus.kind === 'lasso'")
    got = sorted(hook(page, "Array.from(h.state.focus.ids)"))
    assert got == expected

    page.fill("#new-class-name", "Lasso song")
    page.click("#create-class")
    row = page.locator('.cl-row[data-name="Lasso song"]')
    row.wait_for()
    row.locator("button.add").click()
    wait(
        page,
        "(() => { const s = window.__sonomap.state; const k = s.classes.find(c => c.name === 'Lasso song');"
        f" return k && k.size === {len(expected)}; }})()",
    )
    state = get_json(f"{server_url}/api/collections/demo/classes")
    klass = next(c for c in state["classes"] if c["name"] == "Lasso song")
    assert sorted(state["members"][str(klass["id"])]) == expected

    # remove one member from the class's gallery
    row.locator("button.view").click()
    first = page.locator("#gallery .tile").first
    removed = int(first.get_attribute("data-clip"))
    first.hover()
    first.locator("button.rm").click()
    wait(
        page,
        "(() => { const k = window.__sonomap.state.classes.find(c => c.name === 'Lasso song');"
        f" return k && k.size === {len(expected) - 1}; }})()",
    )
    state = get_json(f"{server_url}/api/collections/demo/classes")
    assert sorted(state["members"][str(klass["id"])]) == [i for i in expected if i != removed]

    # two clusters (legend click, shift-click) pooled with the number key of a new class
    page.keyboard.press("Escape")
    page.fill("#new-class-name", "Two clusters")
    page.click("#create-class")
    page.locator('.cl-row[data-name="Two clusters"]').wait_for()
    rows = page.locator("#legend .lg-row")
    rows.nth(0).click()
    rows.nth(1).click(modifiers=["Shift"])
    labels = np.array(
        page.evaluate("Array.from(window.__sonomap.state.cluster.labels)"),
        dtype=int,
    )
    chosen = hook(page, "h.state.focus.clusterIds")
    assert len(chosen) == 2
    want = sorted(int(i) for i in np.where(np.isin(labels, chosen))[0])
    page.locator("#map").hover(position={"x": 3, "y": 3})  # keys go to the page, not an input
    key = hook(page, "h.state.classes.findIndex(c => c.name === 'Two clusters')") + 1
    assert 1 <= key <= 9
    page.keyboard.press(str(key))
    wait(
        page,
        "(() => { const k = window.__sonomap.state.classes.find(c => c.name === 'Two clusters');"
        f" return k && k.size === {len(want)}; }})()",
    )
    state = get_json(f"{server_url}/api/collections/demo/classes")
    k2 = next(c for c in state["classes"] if c["name"] == "Two clusters")
    assert sorted(state["members"][str(k2["id"])]) == want

    # the class's gallery lists its members; undo takes the last addition back
    page.locator('.cl-row[data-name="Two clusters"] button.view').click()
    assert page.locator("#gallery .tile").count() == min(len(want), 240)
    page.click("#undo")
    wait(
        page,
        "(() => { const k = window.__sonomap.state.classes.find(c => c.name === 'Two clusters'); return k && k.size === 0; })()",
    )


def test_exporting_downloads_the_expected_csv(page, server_url, get_json):
    # a class of its own, made through the REST API, so this test does not lean on the pooling test's classes
    base = f"{server_url}/api/collections/demo"
    members = [1, 3, 5, 8]
    made = _post(f"{base}/classes", {"name": "Export check"})
    cid = made["class"]["id"]
    _post(f"{base}/classes/{cid}/members", {"clip_ids": members, "source": {"kind": "lasso"}})
    wait(page, "window.__sonomap.state.classes.some(c => c.name === 'Export check' && c.size === 4)")
    with page.expect_download() as dl:
        page.click("#export")
    path = dl.value.path()
    assert dl.value.suggested_filename.endswith(".csv")
    rows = list(csv.DictReader(io.StringIO(open(path, encoding="utf-8").read())))
    assert "Export check" in rows[0]
    assert {int(r["clip_id"]) for r in rows if r["Export check"] == "1"} == set(members)
    assert len(rows) == get_json(f"{base}/clips")["n"]
    # same bytes as the REST export
    with urllib.request.urlopen(f"{base}/export?format=csv", timeout=30) as r:
        assert r.read() == open(path, "rb").read()


def _post(url: str, body: dict) -> dict:
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "X-Sonomap-Token": "test"},  # CSRF header (--no-token)
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def test_screenshot_shows_the_points_in_their_cluster_colours(page, demo):
    """The picture (test-artifacts/explorer.png) shows every on-screen point drawn in its legend colour."""
    from PIL import Image

    page.select_option("#color-by", "cluster")
    wait(page, "window.__sonomap.state.legend && window.__sonomap.state.legend.by === 'cluster'")
    page.locator("#legend .lg-row").nth(0).click()
    xy = screen_points(page)
    i = isolated_points(xy, k=1)[0]
    page.mouse.move(*xy[i])
    wait(page, f"window.__sonomap.lastPlayback.clip_id === {i}")
    page.evaluate("document.getElementById('toast').hidden = true")
    page.mouse.move(3, 3)  # no hover ring or highlight over the points we check
    page.uncheck("#cluster-labels-toggle")  # nor cluster names (tests/browser/test_atlas_uploads.py checks those)
    page.wait_for_timeout(400)  # tiles are images: let them paint before the picture
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "explorer.png"))
    page.check("#cluster-labels-toggle")
    img = np.asarray(Image.open(ARTIFACTS / "explorer.png").convert("RGB")).astype(int)

    xy = screen_points(page)
    codes = np.array(hook(page, "Array.from(h.state.legend.codes)"), dtype=int)
    colors = hook(page, "h.state.legend.colors")
    selected = set(hook(page, "Array.from(h.state.focus.ids)"))
    box = page.locator("#map").bounding_box()
    background = np.array([14, 16, 20])  # the map's clear colour

    def rgb(css: str) -> np.ndarray:
        return np.array([int(css[k : k + 2], 16) for k in (1, 3, 5)])

    # isolated, unselected, hex-coloured points well inside the map: their centre pixel is their colour
    # (drawn with alpha 0.88 over the background), and the map around the points is the background colour
    cand = isolated_points(xy, k=min(40, len(xy)))
    checked = 0
    for j in cand:
        x, y = xy[j]
        css = colors[codes[j]]
        if j in selected or not css.startswith("#"):
            continue
        if not (box["x"] + 20 < x < box["x"] + box["width"] - 20 and box["y"] + 20 < y < box["y"] + box["height"] - 20):
            continue
        want = 0.88 * rgb(css) + 0.12 * background
        got = img[int(round(y)), int(round(x))]
        assert np.abs(got - want).max() < 40, (j, css, got.tolist(), want.tolist())
        checked += 1
    assert checked >= 5
    # far from every point, the map is empty
    ys, xs = np.mgrid[
        int(box["y"]) + 10 : int(box["y"] + box["height"]) - 10 : 23,
        int(box["x"]) + 10 : int(box["x"] + box["width"]) - 10 : 23,
    ]
    grid = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(float)
    ok = np.isfinite(xy).all(axis=1)
    dist = np.sqrt(((grid[:, None, :] - xy[None, ok, :]) ** 2).sum(-1)).min(axis=1)
    empty = grid[dist > 30].astype(int)
    assert len(empty) > 20
    assert np.abs(img[empty[:, 1], empty[:, 0]] - background).max() < 6
    assert not page.errors, json.dumps(page.errors)
