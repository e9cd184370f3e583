"""Adding recordings from the browser and following a whole recording, in real Chromium against the real server.

Own server over a small real collection with BirdNET features and a fitted map (so uploads are placed with the
fitted model): junco songs plus the 72-s soundscape. The tests run in file order like a user's session:
upload two MP3s and see their points appear, then open the soundscape, play it, watch the playhead move, and
click a clip box to seek there.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "demo" / "recordings"
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"  # the session's ``browser`` fixture (tests/browser/conftest.py) launches it

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def birds_server(tmp_path_factory, server_runner):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"browser tests need Debian's chromium at {CHROMIUM}")
    from preprocess.collection import Collection
    from preprocess.config import BuildConfig
    from preprocess.features import run_extractor
    from preprocess.pipeline import build
    from preprocess.reduce import reduce_collection

    base = tmp_path_factory.mktemp("upload_browser")
    src = base / "src"
    shutil.copytree(DEMO / "Junco hyemalis_Dark-eyed Junco", src / "Junco hyemalis_Dark-eyed Junco")
    shutil.copytree(DEMO / "soundscape", src / "soundscape")
    root = base / "collections"
    build([src], root / "birds", config=BuildConfig(mode="fixed"), jobs=1)  # 3-s windows (the default is events)
    run_extractor(Collection.open(root / "birds"), "birdnet")
    reduce_collection(Collection.open(root / "birds"), features=["birdnet"], dims=[2, 8])
    with server_runner(root, "--no-warmup") as url:
        yield url, root


@pytest.fixture(scope="module")
def upage(browser, birds_server, page_opener):
    url, _root = birds_server
    with page_opener(browser, f"{url}/?c=birds") as pg:
        yield pg


def js(page, expr: str):
    return page.evaluate(f"(() => {{ const h = window.__sonomap; return {expr}; }})()")


def test_upload_files_and_see_their_points_appear(upage, birds_server, get_json):
    url, root = birds_server
    n0 = js(upage, "h.state.n")
    assert n0 > 0 and js(upage, "h.pointsDrawn") == n0
    files = sorted((DEMO / "Sayornis nigricans_Black Phoebe").glob("*.mp3"))[:2]
    upage.set_input_files("#upload-input", [str(f) for f in files])
    upage.wait_for_selector("#upload-dialog")
    assert upage.locator("#upload-dialog input[value=add]").is_checked()
    upage.click("#upload-start")
    # per-file progress rows appear while uploading / processing
    upage.wait_for_selector("#upload-panel .up-file", timeout=30_000)
    upage.wait_for_function("window.__sonomap.upload.state === 'done'", timeout=400_000)
    statuses = upage.eval_on_selector_all("#upload-panel .up-file", "els => els.map(e => e.dataset.status)")
    assert statuses == ["ok", "ok"], upage.inner_text("#upload-panel")
    n1 = js(upage, "h.state.n")
    assert n1 > n0 and js(upage, "h.pointsDrawn") == n1 and js(upage, "h.upload.addedClips") == n1 - n0
    # the page's points are the server's: same count, and the new clips belong to the new files
    assert get_json(f"{url}/api/collections/birds/clips")["n"] == n1
    names = set(js(upage, f"Array.from(h.state.clips.file_name).slice({n0})"))
    assert names == {f.name for f in files}
    ARTIFACTS.mkdir(exist_ok=True)
    upage.screenshot(path=str(ARTIFACTS / "upload_done.png"))
    upage.click("#upload-panel [data-close]")
    assert not upage.errors


def until(page, expr: str, timeout_ms: int = 30_000) -> None:
    """Wait for a JS condition (``h`` is the hook), polling every 50 ms (rAF-driven polling starves under load)."""
    page.wait_for_function(
        f"(() => {{ const h = window.__sonomap; return {expr}; }})()", polling=50, timeout=timeout_ms
    )


def test_recording_view_playhead_moves_and_a_box_click_seeks(upage):
    # open the soundscape from a clip, through the hover card's button
    clip = js(upage, "Array.from(h.state.clips.file_name).findIndex(f => f && f.includes('Soundscape'))")
    assert clip >= 0
    js(upage, f"h.actions.pin({clip})")
    upage.click(f"#hovercard [data-open-recording='{clip}']")
    upage.wait_for_selector("#recording-view .rv-box")
    until(
        upage,
        "Array.from(document.querySelectorAll('#recording-view .rv-tile')).some(i => i.complete && i.naturalWidth > 0)",
        timeout_ms=60_000,
    )
    n_boxes = upage.locator("#recording-view .rv-box").count()
    assert n_boxes >= 20  # 72 s in 3-s clips
    upage.click("#recording-view [data-play]")
    until(upage, "!h.recording.audio.paused && h.recording.audio.currentTime > 0.3", timeout_ms=30_000)
    x1 = js(upage, "h.recording.state.playheadX")
    t1 = js(upage, "h.recording.audio.currentTime")
    # the playhead follows playback (each condition read in one go: under load frames are late, not wrong)
    until(upage, f"h.recording.audio.currentTime > {t1} + 0.5 && h.recording.state.playheadX > {x1}")
    until(
        upage, "Math.abs(h.recording.state.playheadX / h.recording.state.pxPerS - h.recording.audio.currentTime) < 0.5"
    )
    # the clip under the playhead is the map's current clip
    until(upage, "h.recording.state.currentClip >= 0 && h.state.current === h.recording.state.currentClip")
    # pause (Space is the recording's while its view is open), so "follow" does not scroll the box away mid-click
    upage.keyboard.press("Space")
    until(upage, "h.recording.audio.paused")
    # click a box further on: playback jumps there and plays, and that clip becomes current
    box = upage.locator("#recording-view .rv-box").nth(12)
    target = int(box.get_attribute("data-clip"))
    start = js(upage, f"h.state.clips.start_s[{target}]")
    box.scroll_into_view_if_needed()
    box.click()
    until(
        upage,
        f"!h.recording.audio.paused && h.recording.state.currentClip === {target} && h.state.current === {target}"
        f" && Math.abs(h.recording.audio.currentTime - {start}) < 1.0",
        timeout_ms=20_000,
    )
    upage.keyboard.press("Space")
    until(upage, "h.recording.audio.paused")
    cur = js(upage, "h.recording.state.currentClip")
    assert upage.locator(f"#recording-view .rv-box.current[data-clip='{cur}']").count() == 1
    until(
        upage,
        "Array.from(document.querySelectorAll('#recording-view .rv-tile')).every(i => i.complete && i.naturalWidth > 0)",
        timeout_ms=60_000,
    )
    ARTIFACTS.mkdir(exist_ok=True)
    upage.screenshot(path=str(ARTIFACTS / "recording_view.png"))
    upage.keyboard.press("Escape")
    assert upage.locator("#recording-view").count() == 0
    assert not upage.errors


def test_cancelling_uploaded_files_while_they_are_processed(upage, birds_server, get_json):
    url, _root = birds_server
    files = sorted((DEMO / "Melozone crissalis_California Towhee").glob("*.mp3"))[:2]
    assert len(files) == 2
    upage.set_input_files("#upload-input", [str(f) for f in files])
    upage.wait_for_selector("#upload-dialog")
    upage.click("#upload-start")
    until(upage, "h.upload.state === 'processing' && !!h.upload.jobId", timeout_ms=120_000)
    upage.click("#upload-panel [data-cancel-job]")
    until(upage, "h.upload.state === 'cancelled' || h.upload.state === 'done'", timeout_ms=300_000)
    # two MP3s take the server seconds (decode, BirdNET, placing); the cancel arrives within milliseconds
    assert js(upage, "h.upload.state") == "cancelled", upage.inner_text("#upload-panel")
    assert "Cancelled" in upage.inner_text("#upload-panel")
    upage.wait_for_timeout(500)
    assert js(upage, "h.state.n") == js(upage, "h.pointsDrawn")  # every clip the page knows is on the map
    upage.click("#upload-panel [data-close]")
    assert upage.locator("#upload-panel").is_hidden()
    assert not upage.errors
    # the page shows what the server has: a batch cancelled after its build is rolled back (preprocess/ingest.py),
    # never kept without positions or events
    server_n = get_json(f"{url}/api/collections/birds/clips")["n"]
    assert server_n == js(upage, "h.state.n")
