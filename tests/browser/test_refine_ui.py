"""Refine in the page, in real Chromium against the real server over the demo recordings with BirdNET features.

In file order like a person's session: run Refine and watch the per-round figures fill the table; switch to the
refined map and back in one click each; see the "worse" notice (and the original kept) when the refined map is worse
by the validity index (forced at the REST level for the case the run did not give); the legend flags clusters by
recording. A screenshot of the panel goes to /work/wt/_brief/shots/ when that folder exists.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path("/work/wt/_brief/shots")

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def refine_server(tmp_path_factory, server_runner, demo_refinable_path):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"browser tests need Debian's chromium at {CHROMIUM}")
    root = tmp_path_factory.mktemp("refine_browser") / "collections"
    shutil.copytree(demo_refinable_path, root)
    with server_runner(root, "--no-warmup") as url:
        yield url, root


@pytest.fixture(scope="module")
def rpage(browser, refine_server, page_opener):
    url, _root = refine_server
    with page_opener(browser, f"{url}/?c=demo") as pg:
        yield pg


def js(page, expr: str):
    return page.evaluate(f"(() => {{ const h = window.__sonomap; return {expr}; }})()")


def _ready(page):
    page.wait_for_function("window.__sonomap && window.__sonomap.ready && window.__sonomap.lastResult", timeout=120_000)


def test_refine_streams_rounds_into_the_table(rpage):
    _ready(rpage)
    assert rpage.locator("#refine").is_visible() and js(rpage, "h.state.reduction") == "birdnet"
    assert rpage.locator("#refine-toggle button[data-key='birdnet-refined']").is_disabled()  # nothing refined yet
    rpage.click("#refine-run")
    rpage.wait_for_function("window.__sonomap.state.refine.state === 'running'", timeout=10_000)
    assert rpage.locator("#refine-cancel").is_visible()
    # round 0 (the original) shows up before the job ends, then one row per round
    rpage.wait_for_selector("#refine-rounds tbody tr", timeout=120_000)
    rpage.wait_for_function("window.__sonomap.state.refine.state === 'done'", timeout=300_000)
    rows = rpage.locator("#refine-rounds tbody tr")
    n = rows.count()
    assert n >= 2 and n == len(js(rpage, "h.state.refine.rounds"))
    heads = rpage.locator("#refine-rounds th").all_inner_texts()
    assert heads[:5] == ["round", "clus.", "noise", "agree", "valid."] and {"NMI", "ARI", "yield"} <= set(heads)
    assert rows.nth(0).locator("td").first.inner_text() == "0" and rows.nth(n - 1).locator(
        "td"
    ).first.inner_text() == str(n - 1)
    assert not rpage.locator("#refine-cancel").is_visible()
    # the verdict is shown, and the original map stays on screen either way
    worse = js(rpage, "h.state.refine.refined.worse")
    notice = rpage.locator("#refine-notice")
    assert notice.is_visible() and ("worse" in notice.get_attribute("class")) == worse
    assert js(rpage, "h.state.reduction") == "birdnet"
    assert rpage.locator("#refine-toggle button[data-key='birdnet-refined']").is_enabled()
    if SHOTS.is_dir():
        rpage.screenshot(path=str(SHOTS / "refineui_page_1440x900.png"))
        rpage.locator("#refine").screenshot(path=str(SHOTS / "refineui_panel.png"))
    assert rpage.errors == []


def test_legend_flags_clusters_by_recording(rpage):
    clusters = js(rpage, "h.lastResult && h.state.cluster.result.clusters")
    assert clusters and all("n_recordings" in c for c in clusters)
    flags = rpage.locator("#legend .lg-one-rec, #legend .lg-recs")
    assert flags.count() == len(clusters)
    singles = sum(1 for c in clusters if c["single_recording"])
    assert rpage.locator("#legend .lg-one-rec").count() == singles
    if singles:  # the demo's soundscape is one recording: its cluster says so in the gallery too
        rpage.locator("#legend .lg-row", has=rpage.locator(".lg-one-rec")).first.click()
        rpage.wait_for_selector("#gallery-one-rec", timeout=10_000)
        rpage.locator("#legend .lg-row", has=rpage.locator(".lg-recs")).first.click()
        rpage.wait_for_selector("#gallery-title")
        assert rpage.locator("#gallery-one-rec").count() == 0


def test_switch_to_the_refined_map_and_back(rpage):
    with rpage.expect_navigation():
        rpage.click("#refine-toggle button[data-key='birdnet-refined']")
    _ready(rpage)
    assert js(rpage, "h.state.reduction") == "birdnet-refined"
    assert js(rpage, "h.state.clusterRequest.features") == "birdnet-refined"  # clustering follows the map
    assert js(rpage, "h.lastResult.request.features") == ["birdnet-refined"]
    assert rpage.locator("#refine-toggle button[data-key='birdnet-refined']").get_attribute("aria-pressed") == "true"
    assert len(js(rpage, "h.state.refine.rounds")) >= 2  # the stored rounds come back with the page
    with rpage.expect_navigation():
        rpage.click("#refine-toggle button[data-key='birdnet']")
    _ready(rpage)
    assert js(rpage, "h.state.reduction") == "birdnet"
    assert js(rpage, "h.lastResult.request.features") == ["birdnet"]


@pytest.mark.parametrize("worse", [True, False])
def test_worse_notice_keeps_the_original(browser, refine_server, page_opener, get_json, worse):
    url, _root = refine_server
    real = get_json(f"{url}/api/collections/demo/refined")["refined"][0]
    forced = {**real, "worse": worse, "validity_original": 0.8, "validity_refined": 0.5 if worse else 0.9}

    def route(pg):
        pg.route(
            "**/api/collections/demo/refined",
            lambda r: r.fulfill(status=200, content_type="application/json",
                                body=json.dumps({"ok": True, "refined": [forced]})),
        )  # fmt: skip

    with page_opener(browser, f"{url}/?c=demo", before_goto=route) as pg:
        pg.wait_for_function("window.__sonomap.state.refine.refined", timeout=30_000)
        notice = pg.locator("#refine-notice")
        assert notice.is_visible()
        text = notice.inner_text()
        assert ("worse" in (notice.get_attribute("class") or "")) == worse
        assert ("0.80 → 0.50" in text and "original stays selected" in text) if worse else "not worse" in text
        assert js(pg, "h.state.reduction") == "birdnet"  # the original is what the page shows
        assert pg.locator("#refine-toggle button[data-key='birdnet']").get_attribute("aria-pressed") == "true"
        if worse and SHOTS.is_dir():
            pg.locator("#refine").screenshot(path=str(SHOTS / "refineui_worse_notice.png"))
        assert pg.errors == []
