"""Sound obeys: the whole-recording view plays through the page's one output, in real Chromium against the server.

Volume and mute act on the recording (measured at the output, after the master gain); hovering the map pauses the
recording (never two sounds at once); Space and P / p toggle it while its view is open; the view never covers the
Classes panel or Export at 1440×900 and 1280×720. Each test opens its own page on the demo collection.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

pytestmark = pytest.mark.browser


def js(page, expr: str):
    return page.evaluate(f"(() => {{ const h = window.__sonomap; return {expr}; }})()")


def until(page, expr: str, timeout_ms: int = 30_000) -> None:
    """Wait for a JS condition (``h`` is the hook), polling every 50 ms; fail with the recording's state."""
    try:
        page.wait_for_function(
            f"(() => {{ const h = window.__sonomap; return {expr}; }})()", polling=50, timeout=timeout_ms
        )
    except Exception:
        seen = page.evaluate(
            "(() => { const h = window.__sonomap; return JSON.stringify({rec: h.recording.state,"
            " level: h.outputLevel(), muted: h.state.muted, volume: h.state.volume, last: h.lastPlayback}); })()"
        )
        raise AssertionError(f"timed out waiting for {expr}; page: {seen}") from None


def open_soundscape(page) -> int:
    """Open the 72-s soundscape's recording view from one of its clips (the hover card's button); return the clip."""
    clip = js(page, "Array.from(h.state.clips.file_name).findIndex(f => f && f.includes('Soundscape'))")
    assert clip >= 0
    js(page, f"h.actions.pin({clip})")
    page.click(f"#hovercard [data-open-recording='{clip}']")
    page.wait_for_selector("#recording-view .rv-box")
    return clip


def play_recording(page) -> None:
    page.click("#recording-view [data-play]")
    until(page, "!h.recording.audio.paused && h.recording.audio.currentTime > 0.3")


@pytest.fixture
def spage(browser, server_url, page_opener):
    with page_opener(browser, f"{server_url}/?c=demo") as pg:
        yield pg
        assert not pg.errors, pg.errors


def test_recording_plays_through_the_one_output_so_volume_and_mute_act_on_it(spage):
    open_soundscape(spage)
    assert js(spage, "h.recording.state.routed")
    play_recording(spage)
    until(spage, "h.outputLevel() > 1e-4")  # we hear it, measured after the master gain
    spage.keyboard.press("m")
    until(spage, "h.state.muted && h.outputLevel() === 0")
    spage.wait_for_timeout(300)
    assert js(spage, "h.outputLevel()") == 0 and not js(spage, "h.recording.audio.paused")  # muted, still playing
    spage.keyboard.press("m")
    until(spage, "!h.state.muted && h.outputLevel() > 1e-4")
    spage.locator("#volume").fill("0")
    until(spage, "h.state.volume === 0 && h.outputLevel() === 0")
    spage.locator("#volume").fill("0.8")
    until(spage, "h.outputLevel() > 1e-4")
    # the element itself stays at full level: the master gain alone sets what a person hears
    assert js(spage, "h.recording.audio.volume") == 1


def _map_point_above_the_recording_view(page) -> tuple[int, float, float]:
    top = page.locator("#recording-view").bounding_box()["y"]
    pts = page.evaluate(
        "(() => { const h = window.__sonomap; const out = [];"
        " for (let i = 0; i < h.state.n; i++) { const p = h.pointToScreen(i); out.push(p ? p : [NaN, NaN]); }"
        " return out; })()"
    )
    xy = np.array([[np.nan if v is None else v for v in p] for p in pts], dtype=float)
    ok = np.isfinite(xy).all(axis=1) & (xy[:, 1] < top - 20)
    d = np.sqrt(((xy[:, None, :] - xy[None, :, :]) ** 2).sum(-1))
    d[np.arange(len(xy)), np.arange(len(xy))] = np.inf
    d[:, ~ok] = np.inf
    nn = np.where(ok, d.min(axis=1), -1)
    i = int(np.argmax(nn))
    assert ok[i]
    return i, float(xy[i, 0]), float(xy[i, 1])


def test_hovering_the_map_pauses_the_recording_and_space_and_p_toggle_it(spage):
    open_soundscape(spage)
    play_recording(spage)
    i, x, y = _map_point_above_the_recording_view(spage)
    spage.mouse.move(x - 40, y - 40)
    spage.mouse.move(x, y, steps=4)
    until(spage, f"h.lastPlayback && h.lastPlayback.clip_id === {i}")
    until(spage, "h.recording.audio.paused")  # the clip plays, the recording waits: never one on top of the other
    assert js(spage, "h.state.recordingPlaying") is False
    t_paused = js(spage, "h.recording.audio.currentTime")

    spage.mouse.move(3, 3)
    spage.keyboard.press("Space")  # Space is the recording's while its view is open
    until(spage, "!h.recording.audio.paused")
    until(spage, f"h.recording.audio.currentTime > {t_paused} + 0.2")  # it resumes where it was
    assert not js(spage, "h.state.playingSequence")
    assert not js(spage, "h.player.playing")  # the recording stopped the hover clip
    spage.keyboard.press("Space")
    until(spage, "h.recording.audio.paused")
    spage.keyboard.press("Shift+P")  # P …
    until(spage, "!h.recording.audio.paused")
    spage.keyboard.press("p")  # … and p
    until(spage, "h.recording.audio.paused")
    spage.keyboard.press("P")
    until(spage, "!h.recording.audio.paused")
    spage.keyboard.press("Escape")
    assert spage.locator("#recording-view").count() == 0
    assert js(spage, "h.state.recordingOpen") is False


def _overlap(a: dict, b: dict) -> bool:
    return not (
        a["x"] + a["width"] <= b["x"]
        or b["x"] + b["width"] <= a["x"]
        or a["y"] + a["height"] <= b["y"]
        or b["y"] + b["height"] <= a["y"]
    )


@pytest.mark.parametrize("size", [(1440, 900), (1280, 720)], ids=["1440x900", "1280x720"])
def test_the_recording_view_never_covers_the_classes_panel_or_export(browser, server_url, page_opener, size):
    w, h = size
    with page_opener(browser, f"{server_url}/?c=demo", viewport=size) as pg:
        open_soundscape(pg)
        pg.wait_for_function(
            "Array.from(document.querySelectorAll('#recording-view .rv-tile'))"
            ".some(i => i.complete && i.naturalWidth > 0)",
            timeout=60_000,
        )
        rv = pg.locator("#recording-view").bounding_box()
        assert rv["x"] >= 0 and rv["x"] + rv["width"] <= w and rv["y"] + rv["height"] <= h + 1
        for sel in ("#pooling", "#export", "#export-format", "#legend-card"):
            box = pg.locator(sel).bounding_box()
            assert box is not None and not _overlap(rv, box), (sel, rv, box)
        # Export is really reachable: the element under its centre is Export itself
        ex = pg.locator("#export").bounding_box()
        assert ex["y"] + ex["height"] <= h
        hit = pg.evaluate(f"document.elementFromPoint({ex['x'] + ex['width'] / 2}, {ex['y'] + ex['height'] / 2}).id")
        assert hit == "export"
        # and so are the view's own controls
        for sel in ("[data-play]", "[data-close]", "[data-zoom]"):
            b = pg.locator(f"#recording-view {sel}").bounding_box()
            assert b["x"] >= rv["x"] and b["x"] + b["width"] <= rv["x"] + rv["width"], sel
        ARTIFACTS.mkdir(exist_ok=True)
        pg.screenshot(path=str(ARTIFACTS / f"recording_view_{w}x{h}.png"))
        assert not pg.errors, pg.errors
