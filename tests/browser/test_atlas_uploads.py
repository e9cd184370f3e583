"""Uploads, cluster names and linked filters in real Chromium against the real server: cluster names at their clusters' centres, linked
histogram filters that thin the map and the gallery, upload reports (empty and not-audio files), new points ringed
on the map, and a new collection of a few clips that still shows a map and plays.

Own server over real demo recordings (4 species, BirdNET features, a fitted map). The labels CSV of this test gives
the recordings a date, a country and a quality (made-up test metadata, so every histogram has values to brush).
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "demo" / "recordings"
SHOTS = REPO / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
SPECIES = ["Junco hyemalis_Dark-eyed Junco", "Sayornis nigricans_Black Phoebe", "Parus major_Great Tit",
           "Passer domesticus_House Sparrow"]  # fmt: skip

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def atlas_server(tmp_path_factory, server_runner):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"browser tests need Debian's chromium at {CHROMIUM}")
    if not DEMO.is_dir():
        pytest.skip("demo recordings are missing")
    from preprocess.collection import Collection
    from preprocess.features import run_extractor
    from preprocess.pipeline import build
    from preprocess.reduce import reduce_collection

    base = tmp_path_factory.mktemp("atlas")
    src = base / "src"
    rows = []
    countries = ["United States", "Canada", "Mexico"]
    for s, sp in enumerate(SPECIES):
        for k, f in enumerate(sorted((DEMO / sp).glob("*"))[:4]):
            (src / sp).mkdir(parents=True, exist_ok=True)
            shutil.copy(f, src / sp / f.name)
            rows.append({"path": f"{sp}/{f.name}", "label": sp.split("_")[0], "date": f"{2012 + 2 * s + k % 2}-0{1 + k}-15",
                         "country": countries[(s + k) % 3], "quality": "ABC"[k % 3]})  # fmt: skip
    labels = base / "labels.csv"
    with open(labels, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    root = base / "collections"
    build([src], root / "atlas", labels_csv=labels, jobs=1)
    run_extractor(Collection.open(root / "atlas"), "birdnet")
    reduce_collection(Collection.open(root / "atlas"), features=["birdnet"], dims=[2, 8])
    with server_runner(root, "--no-warmup") as url:
        yield url, root


@pytest.fixture(scope="module")
def apage(browser, atlas_server, page_opener):
    url, _root = atlas_server
    with page_opener(browser, f"{url}/?c=atlas") as pg:
        until(pg, "h.clusterResults > 0 && h.clusterLabels().length > 0", timeout_ms=120_000)
        yield pg


def js(page, expr: str):
    return page.evaluate(f"(() => {{ const h = window.__sonomap; return {expr}; }})()")


def until(page, expr: str, timeout_ms: int = 30_000) -> None:
    page.wait_for_function(
        f"(() => {{ const h = window.__sonomap; return {expr}; }})()", polling=50, timeout=timeout_ms
    )


def test_cluster_names_sit_at_their_clusters_centres(apage):
    labels = js(apage, "h.clusterLabels()")
    result = js(apage, "h.state.cluster.result")
    cluster_of = np.array(js(apage, "Array.from(h.state.cluster.labels)"))
    info = {c["id"]: c for c in result["clusters"]}
    assert 0 < len(labels) <= len(info)
    assert 0 in {lb["cluster"] for lb in labels}  # the largest cluster is always named
    for lb in labels:
        k = lb["cluster"]
        members = np.flatnonzero(cluster_of == k)
        assert lb["clip"] in members
        # drawn over the point of its centre clip (centred on it, or slid along a map edge to stay whole) ...
        cx, cy = js(apage, f"h.pointToScreen({lb['clip']})")
        assert lb["rect"][0] - 1 <= cx <= lb["rect"][2] + 1 and lb["rect"][1] - 1 <= cy <= lb["rect"][3] + 1
        box = apage.locator("#map").bounding_box()
        if box["x"] + 120 < cx < box["x"] + box["width"] - 120 and box["y"] + 20 < cy < box["y"] + box["height"] - 20:
            assert abs(lb["x"] - cx) < 2 and abs(lb["y"] - cy) < 2
        # ... which is the member nearest the centre of its members on screen
        pts = np.array([js(apage, f"h.pointToScreen({int(i)})") or [np.nan, np.nan] for i in members], dtype=float)
        if np.isfinite(pts).all():  # (a member off screen has no screen position)
            mean = pts.mean(axis=0)
            dist = np.sqrt(((pts - mean) ** 2).sum(axis=1))
            assert np.hypot(cx - mean[0], cy - mean[1]) <= dist.min() + 1
        assert pts[:, 0].min() - 1 <= cx <= pts[:, 0].max() + 1 and pts[:, 1].min() - 1 <= cy <= pts[:, 1].max() + 1
        top = (info[k].get("top_labels") or info[k].get("top_species") or [[None]])[0][0]
        assert lb["text"].rstrip("…") in (top or f"Cluster {k}")
    # decluttered: no two names overlap
    for a in range(len(labels)):
        for b in range(a + 1, len(labels)):
            ra, rb = labels[a]["rect"], labels[b]["rect"]
            assert ra[2] <= rb[0] or rb[2] <= ra[0] or ra[3] <= rb[1] or rb[3] <= ra[1], (labels[a], labels[b])
    # the toggle hides them
    apage.click("#cluster-labels-toggle")
    until(apage, "h.clusterLabels().length === 0")
    apage.click("#cluster-labels-toggle")
    until(apage, "h.clusterLabels().length > 0")
    SHOTS.mkdir(exist_ok=True)
    apage.screenshot(path=str(SHOTS / "ui14b_cluster_labels.png"))
    assert not apage.errors


def test_brushing_a_histogram_thins_the_map_and_the_gallery(apage):
    n = js(apage, "h.state.n")
    js(apage, "h.actions.focusCluster(0)")
    until(apage, "document.querySelectorAll('#gallery-tiles .tile').length > 0")
    g0 = js(apage, "h.state.galleryOrder.length")
    apage.click("#filters-toggle")
    apage.wait_for_selector("#filters .hist[data-col='top_score'] svg")
    for col in ("date", "country", "quality", "recording_id", "top_score"):
        assert apage.locator(f"#filters .hist[data-col='{col}']").count() == 1, col
    # brush the earlier half of the dates: the map hides the rest
    box = apage.locator("#filters .hist[data-col='date'] svg").bounding_box()
    apage.mouse.move(box["x"] + 2, box["y"] + box["height"] / 2)
    apage.mouse.down()
    apage.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] / 2, steps=5)
    apage.mouse.move(box["x"] + box["width"] * 0.55, box["y"] + box["height"] / 2, steps=5)
    apage.mouse.up()
    until(apage, "h.filters.ranges.date !== undefined")
    shown = js(apage, "h.filters.shown")
    assert 0 < shown < n
    until(apage, f"h.map.plot.get('filteredPoints').length === {shown}")
    mask = js(apage, "Array.from(h.state.filterMask)")
    assert sum(mask) == shown
    # the gallery keeps only the cluster's clips that pass
    order = js(apage, "Array.from(h.state.galleryOrder)")
    assert len(order) <= g0 and all(mask[i] for i in order)
    assert len(order) == sum(mask[i] for i in js(apage, "Array.from(h.state.focus.fullOrder)"))
    # a categorical bar narrows it further (and says so in the chip)
    apage.locator("#filters .hist[data-col='country'] .bar-row").first.click()
    until(apage, f"h.filters.shown < {shown} || h.filters.cats.country.length === 1")
    assert js(apage, "h.filters.cats.country.length") == 1
    assert "of" in apage.inner_text("#filter-chip")
    SHOTS.mkdir(exist_ok=True)
    apage.screenshot(path=str(SHOTS / "ui14b_filters.png"))
    # hovering a hidden point plays nothing
    hidden = mask.index(0)
    p = js(apage, f"h.pointToScreen({hidden})")
    if p:
        before = js(apage, "h.playbacks")
        apage.mouse.move(*p)
        apage.wait_for_timeout(300)
        last = js(apage, "h.lastPlayback")
        assert js(apage, "h.playbacks") == before or (last and last["clip_id"] != hidden)
    apage.click("#filter-chip [data-clear]")
    until(apage, f"h.filters.shown === {n} && h.state.filterMask === null")
    until(apage, f"h.map.plot.get('filteredPoints').length === {n}")
    assert js(apage, "h.state.galleryOrder.length") == g0
    apage.click("#filters-toggle")
    js(apage, "h.actions.clearFocus()")
    assert not apage.errors


def test_upload_reports_empty_and_not_audio_files_and_rings_new_points(apage, atlas_server):
    url, root = atlas_server
    n0 = js(apage, "h.state.n")
    assert apage.locator("#collection-counts").get_attribute("data-clips") == str(n0)
    mp3 = sorted((DEMO / "Melozone crissalis_California Towhee").glob("*.mp3"))[0]
    apage.set_input_files(
        "#upload-input",
        [{"name": mp3.name, "mimeType": "audio/mpeg", "buffer": mp3.read_bytes()}, {"name": "empty.wav", "mimeType": "audio/wav", "buffer": b""},
         {"name": "fake.wav", "mimeType": "audio/wav", "buffer": b"these are field notes, not audio\n" * 40}],
    )  # fmt: skip
    apage.wait_for_selector("#upload-dialog #upload-empty-note")
    assert "empty.wav" in apage.inner_text("#upload-empty-note")
    apage.click("#upload-start")
    until(apage, "h.upload.state === 'done' || h.upload.state === 'error'", timeout_ms=300_000)
    assert js(apage, "h.upload.state") == "done", apage.inner_text("#upload-panel")
    rows = {r.locator(".up-name").get_attribute("title"): (r.get_attribute("data-status"), r.inner_text())
            for r in apage.locator("#upload-panel .up-file").all()}  # fmt: skip
    assert rows["empty.wav"][0] == "failed" and "empty" in rows["empty.wav"][1]
    assert rows["fake.wav"][0] == "failed" and "not audio" in rows["fake.wav"][1]
    assert rows[mp3.name][0] == "ok"
    n1 = js(apage, "h.state.n")
    assert n1 > n0 and js(apage, "h.pointsDrawn") == n1
    # the header counts follow
    assert apage.locator("#collection-counts").get_attribute("data-clips") == str(n1)
    assert apage.locator("#collection-counts").get_attribute("data-recordings") == str(16 + 1)
    # the new points are ringed, where the map draws them
    hl = js(apage, "h.highlighted")
    assert sorted(hl["ids"]) == list(range(n0, n1)) and hl["rings"] > 0
    rings = apage.evaluate(
        "Array.from(document.querySelectorAll('#new-points .new-ring')).map(e => { const r = e.getBoundingClientRect();"
        " return [r.left + r.width / 2, r.top + r.height / 2]; })"
    )
    for i, (x, y) in zip(hl["ids"], rings, strict=True):
        p = js(apage, f"h.pointToScreen({i})")
        if p:
            assert abs(p[0] - x) < 3 and abs(p[1] - y) < 3
    SHOTS.mkdir(exist_ok=True)
    apage.screenshot(path=str(SHOTS / "ui14b_upload_report.png"))
    # the refusals are in the collection's skipped.csv
    with open(root / "atlas" / "skipped.csv", newline="") as fh:
        skipped = {r["path"]: r["reason"] for r in csv.DictReader(fh)}
    assert "empty" in skipped["empty.wav"] and "not audio" in skipped["fake.wav"]
    apage.click("#upload-panel [data-close]")
    assert not apage.errors


def test_a_new_collection_of_a_few_clips_shows_a_map_and_plays(apage, atlas_server, page_opener, browser, get_json):
    url, _root = atlas_server
    short = sorted((DEMO / "Junco hyemalis_Dark-eyed Junco").glob("*.mp3"))[0]
    apage.set_input_files("#upload-input", [str(short)])
    apage.wait_for_selector("#upload-dialog")
    apage.check("#upload-dialog input[value=new]")
    apage.fill("#upload-name", "tiny")
    apage.click("#upload-start")
    until(apage, "h.upload.state === 'done' || h.upload.state === 'error'", timeout_ms=300_000)
    assert js(apage, "h.upload.state") == "done", apage.inner_text("#upload-panel")
    n = get_json(f"{url}/api/collections/tiny/clips")["n"]
    assert 1 <= n < 5
    with page_opener(browser, f"{url}/?c=tiny") as pg:
        assert js(pg, "h.pointsDrawn") == n
        pts = [js(pg, f"h.pointToScreen({i})") for i in range(n)]
        assert all(pts) and len({(round(x), round(y)) for x, y in pts}) == n  # each clip on screen, apart
        pg.mouse.click(*pts[0])  # the first gesture turns the sound on (and pins the clip)
        pg.mouse.move(pts[0][0] + 40, pts[0][1] + 40)
        pg.mouse.move(*pts[-1])
        until(pg, f"h.lastPlayback && h.lastPlayback.clip_id === {n - 1}")
        assert not pg.errors
