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
    from preprocess.features import run_extractor
    from preprocess.pipeline import build
    from preprocess.reduce import reduce_collection

    base = tmp_path_factory.mktemp("upload_browser")
    src = base / "src"
    shutil.copytree(DEMO / "Junco hyemalis_Dark-eyed Junco", src / "Junco hyemalis_Dark-eyed Junco")
    shutil.copytree(DEMO / "soundscape", src / "soundscape")
    root = base / "collections"
    build([src], root / "birds", jobs=1)
    run_extractor(root / "birds", "birdnet")
    reduce_collection(root / "birds", features=["birdnet"], dims=[2, 8])
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


def test_recording_view_playhead_moves_and_a_box_click_seeks(upage):
    # open the soundscape from a clip, through the hover card's button
    clip = js(upage, "Array.from(h.state.clips.file_name).findIndex(f => f && f.includes('Soundscape'))")
    assert clip >= 0
    js(upage, f"h.actions.pin({clip})")
    upage.click(f"#hovercard [data-open-recording='{clip}']")
    upage.wait_for_selector("#recording-view .rv-box")
    upage.wait_for_function(
        "Array.from(document.querySelectorAll('#recording-view .rv-tile')).some(i => i.complete && i.naturalWidth > 0)",
        timeout=60_000,
    )
    n_boxes = upage.locator("#recording-view .rv-box").count()
    assert n_boxes >= 20  # 72 s in 3-s clips
    upage.click("#recording-view [data-play]")
    upage.wait_for_function("!window.__sonomap.recording.audio.paused", timeout=20_000)
    upage.wait_for_function("window.__sonomap.recording.audio.currentTime > 0.3", timeout=30_000)
    x1 = js(upage, "h.recording.state.playheadX")
    t1 = js(upage, "h.recording.audio.currentTime")
    upage.wait_for_function(f"window.__sonomap.recording.audio.currentTime > {t1} + 0.5", timeout=30_000)
    upage.wait_for_timeout(100)
    x2 = js(upage, "h.recording.state.playheadX")
    assert x2 > x1  # the playhead follows playback
    px_per_s = js(upage, "h.recording.state.pxPerS")
    assert abs(x2 / px_per_s - js(upage, "h.recording.audio.currentTime")) < 0.5
    cur = js(upage, "h.recording.state.currentClip")
    assert cur >= 0 and js(upage, "h.state.current") == cur  # the clip under the playhead is the map's current clip
    # click a box further on: playback jumps there and that clip becomes current
    box = upage.locator("#recording-view .rv-box").nth(12)
    target = int(box.get_attribute("data-clip"))
    start = js(upage, f"h.state.clips.start_s[{target}]")
    box.scroll_into_view_if_needed()
    box.click()
    upage.wait_for_function(
        f"Math.abs(window.__sonomap.recording.audio.currentTime - {start}) < 1.0 && !window.__sonomap.recording.audio.paused",
        timeout=20_000,
    )
    upage.wait_for_function(f"window.__sonomap.recording.state.currentClip === {target}", timeout=10_000)
    assert js(upage, "h.state.current") == target
    assert upage.locator(f"#recording-view .rv-box.current[data-clip='{target}']").count() == 1
    upage.wait_for_function(
        "Array.from(document.querySelectorAll('#recording-view .rv-tile')).every(i => i.complete && i.naturalWidth > 0)",
        timeout=60_000,
    )
    ARTIFACTS.mkdir(exist_ok=True)
    upage.screenshot(path=str(ARTIFACTS / "recording_view.png"))
    upage.keyboard.press("Escape")
    assert upage.locator("#recording-view").count() == 0
    assert not upage.errors
