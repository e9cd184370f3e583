"""In the page: BirdNET with its confidence, the minimum-confidence control, the "BirdNET
disagrees with the label" filter, importing labels from the Classes panel (with its report and one undo), and the
eps slider's log span over the data's neighbour distances.

One server over a small synthetic collection whose BirdNET guesses are known (tests/browser/birdnet_collection.py);
the tests share one page and run in file order.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest

from tests.browser.birdnet_collection import CASES, N_CLIPS, disagreeing, write_birdnet_collection

pytestmark = pytest.mark.browser
SHOTS = Path(os.environ.get("SONOMAP_SHOTS", Path(__file__).resolve().parents[2] / "test-artifacts"))


def hook(page, expr: str):
    return page.evaluate(f"(() => {{ const h = window.__sonomap; return {expr}; }})()")


def wait(page, expr: str, timeout_ms: int = 30_000) -> None:
    try:
        page.wait_for_function(expr, timeout=timeout_ms)
    except Exception:
        seen = page.evaluate(
            "(() => { const s = (window.__sonomap || {}).state || {}; return JSON.stringify({focus: s.focus &&"
            " s.focus.label, disagree: s.disagree && Array.from(s.disagree.ids), minConfidence: s.minConfidence,"
            " importReport: s.importReport, classes: s.classes, toast: (window.__sonomap || {}).lastToast}); })()"
        )
        raise AssertionError(f"timed out waiting for {expr}; page state: {seen}") from None


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"ui14a_{name}.png"))


@pytest.fixture(scope="module")
def birds_url(tmp_path_factory, server_runner, browser):
    root = tmp_path_factory.mktemp("birdnet") / "collections"
    write_birdnet_collection(root / "birds")
    with server_runner(root) as url:
        yield url


@pytest.fixture(scope="module")
def page(browser, birds_url, page_opener):
    with page_opener(browser, f"{birds_url}/?c=birds") as pg:
        wait(pg, "window.__sonomap.clusterResults > 0", timeout_ms=120_000)
        yield pg


def card_birdnet(page) -> str:
    return page.locator("#hovercard table.meta tr", has_text="BirdNET").locator("td").inner_text()


def test_the_hover_card_shows_birdnet_species_with_its_score(page):
    # hover a real point: the card names the clip under the pointer and BirdNET's guess with its score
    xy = np.array(
        page.evaluate(
            "(() => { const h = window.__sonomap; return Array.from({length: h.state.n}, (_, i) => h.pointToScreen(i)); })()"
        ),
        dtype=float,
    )
    d = np.sqrt(((xy[:, None] - xy[None]) ** 2).sum(-1)) + np.eye(len(xy)) * 1e9
    i = int(np.argmax(d.min(axis=1)))
    page.mouse.move(xy[i][0] - 30, xy[i][1] - 30)
    page.mouse.move(xy[i][0], xy[i][1], steps=4)
    wait(page, f"window.__sonomap.state.current === {i}")
    name = (CASES[i][0] or (None,))[0] if i in CASES else None
    name = name or hook(page, f"h.state.clips.top_species[{i}]")
    score = f"{CASES[i][1] if i in CASES else 0.8:.2f}"
    text = card_birdnet(page)
    assert text.startswith(f"{name} {score}") or text == f"uncertain ({score})", text
    page.mouse.move(3, 3)
    # a confident guess that is another species than the label: name and score side by side
    hook(page, "h.actions.pin(5)")
    wait(page, "document.querySelector('#hovercard').innerText.includes('Corvus corax 0.90')")
    wait(page, "document.querySelector('#hovercard .bn-disagree') !== null")  # and that it is not the label's
    shot(page, "hovercard_score")
    # below BirdNET-Analyzer's default minimum (0.1): "uncertain", not a wrong name
    hook(page, "h.actions.pin(45)")
    wait(page, "document.querySelector('#hovercard').innerText.includes('uncertain (0.05)')")
    assert "Corvus" not in card_birdnet(page)
    assert page.locator("#min-confidence-value").input_value() == "0.10"
    assert not page.errors


def test_moving_the_min_confidence_turns_a_low_score_species_into_uncertain(page):
    hook(page, "h.actions.pin(65)")  # the label's species at 0.2
    wait(page, "document.querySelector('#hovercard').innerText.includes('0.20')")
    assert card_birdnet(page).startswith(hook(page, "h.state.clips.top_species[65]"))
    page.select_option("#color-by", "top_species")
    slider = page.locator("#min-confidence")
    slider.fill("0.5")  # a range input: fill sets its value and fires input
    wait(page, "window.__sonomap.state.minConfidence === 0.5")
    wait(page, "document.querySelector('#hovercard').innerText.includes('uncertain (0.20)')")
    assert page.locator("#min-confidence-value").input_value() == "0.50"
    # colour by top species respects it: clips below 0.5 share the "uncertain" colour and legend row
    wait(page, "window.__sonomap.state.legend.items.some((it) => it.kind === 'uncertain')")
    legend = hook(page, "h.state.legend")
    unc = next(it for it in legend["items"] if it["kind"] == "uncertain")
    scores = hook(page, "Array.from(h.state.clips.top_score)")
    assert unc["count"] == sum(1 for s in scores if s < 0.5) == 3  # clips 25 (0.3), 45 (0.05), 65 (0.2)
    codes = hook(page, "Array.from(h.state.legend.codes)")
    assert {codes[c] for c in (25, 45, 65)} == {unc["code"]}
    assert legend["colors"][unc["code"]] == unc["color"] == "#6f7480"
    assert page.locator("#legend .lg-row", has_text="uncertain (score < 0.50)").count() == 1
    shot(page, "confidence_control")
    # the number box sets it too; back to the default
    page.locator("#min-confidence-value").fill("0.1")
    page.locator("#min-confidence-value").press("Enter")
    wait(page, "window.__sonomap.state.minConfidence === 0.1")
    wait(page, "!window.__sonomap.state.legend.items.some((it) => it.kind === 'uncertain' && it.count === 3)")
    assert not page.errors


def test_the_disagree_filter_shows_the_clips_birdnet_names_otherwise(page):
    # a refresh made while the click's request is in flight (as the min-confidence slider's debounced refresh
    # does right after a move) supersedes that request: the click must still show the clips
    page.evaluate("document.querySelector('#disagree-filter').click(); window.__sonomap.actions.refreshDisagree()")
    wait(page, "window.__sonomap.state.focus && window.__sonomap.state.focus.kind === 'disagree'")
    ids = sorted(hook(page, "Array.from(h.state.focus.ids)"))
    assert ids == disagreeing(0.1) == [5, 6, 25]  # common-name and scientific labels; never "soundscape"
    tiles = sorted(int(t) for t in page.locator("#gallery .tile").evaluate_all("ts => ts.map((t) => t.dataset.clip)"))
    assert tiles == ids
    assert "disagrees with label · 3" in page.locator("#disagree-filter").inner_text()
    assert sorted(hook(page, "h.map.plot.get('selectedPoints') || []")) == ids  # highlighted on the map
    # a stricter minimum drops the 0.3 guess from the filter, gallery and map alike
    page.locator("#min-confidence").fill("0.5")
    wait(page, "window.__sonomap.state.focus.ids.length === 2")
    assert sorted(hook(page, "Array.from(h.state.focus.ids)")) == disagreeing(0.5) == [5, 6]
    wait(page, "document.querySelectorAll('#gallery .tile').length === 2")
    page.locator("#min-confidence").fill("0.1")
    wait(page, "window.__sonomap.state.focus.ids.length === 3")
    page.locator("#disagree-filter").click()
    wait(page, "window.__sonomap.state.focus === null")
    assert not page.errors


def test_cluster_summaries_show_birdnet_with_its_mean_score(page):
    page.select_option("#color-by", "cluster")
    wait(page, "document.querySelectorAll('#legend .lg-bn').length > 0")
    res = hook(page, "h.state.cluster.result.clusters")
    text = page.locator("#legend .lg-bn").first.inner_text()
    top = max(res, key=lambda c: c["size"])["top_species"][0]
    assert len(top) == 3 and text.startswith(f"BirdNET {top[0]} {top[2]:.2f}")
    page.locator("#legend .lg-row").first.click()
    wait(page, "document.querySelector('#gallery-birdnet') !== null")
    assert f"{top[0]} {top[2]:.2f}" in page.locator("#gallery-birdnet").inner_text()
    page.keyboard.press("Escape")


RAVEN = (
    "Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tLow Freq (Hz)\tHigh Freq (Hz)\tAnnotation\n"
    "1\tSpectrogram 1\t1\t0.0\t1.0\t500\t4000\tSong A\n"
    "2\tSpectrogram 1\t1\t1.0\t2.0\t500\t4000\tSong A\n"
    "3\tSpectrogram 1\t1\t5.0\t6.0\t500\t4000\tCall B\n"
    "4\tSpectrogram 1\t1\t100.0\t101.0\t500\t4000\tSong A\n"
)


def test_importing_a_raven_table_from_the_classes_panel(page, tmp_path, get_json, birds_url):
    before = get_json(f"{birds_url}/api/collections/birds/classes")
    table = tmp_path / "rec_000003.Table.1.selections.txt"  # Raven Pro's name: the recording is rec_000003
    table.write_text(RAVEN)
    assert page.locator("#import-labels").is_visible()  # in the Classes header
    page.locator(".import-more summary").click()  # the options: the format goes as the form field `format`
    page.select_option("#import-format", "raven")
    shot(page, "import_options")
    page.locator(".import-more summary").click()
    page.set_input_files("#import-file", str(table))
    wait(page, "window.__sonomap.state.importReport && !window.__sonomap.state.importReport.pending")
    report = hook(page, "h.state.importReport")
    assert report["format"] == "raven" and report["n_rows"] == 4 and report["n_matched"] == 3
    assert report["n_unmatched"] == 1 and report["added"] == 3
    assert sorted(report["classes_created"]) == ["Call B", "Song A"]
    counts = page.locator("#import-counts").inner_text()
    assert "3 of 4 rows matched" in counts and "3 labels added" in counts
    unmatched = page.locator("#import-unmatched").inner_text()
    assert "5" in unmatched and "100–101 s" in unmatched  # line 5 of the file, and why
    # the classes appear with their members (clip = recording 3's 20 clips from 60)
    wait(page, "window.__sonomap.state.classes.some((k) => k.name === 'Song A')")
    for name in ("Song A", "Call B"):
        assert page.locator(f'#class-list .cl-row[data-name="{name}"]').count() == 1
    classes = get_json(f"{birds_url}/api/collections/birds/classes")
    by_name = {k["name"]: str(k["id"]) for k in classes["classes"]}
    assert sorted(classes["members"][by_name["Song A"]]) == [60, 61]
    assert classes["members"][by_name["Call B"]] == [65]
    box = page.locator("#import-report").bounding_box()
    assert box and box["y"] >= 0 and box["y"] + box["height"] <= 900 and box["x"] + box["width"] <= 1440  # in view
    shot(page, "import_report")
    # one undo takes the whole import back
    page.locator("#import-undo").click()
    wait(page, "!window.__sonomap.state.classes.some((k) => k.name === 'Song A' || k.name === 'Call B')")
    after = get_json(f"{birds_url}/api/collections/birds/classes")
    assert after["classes"] == before["classes"] and after["members"] == before["members"]
    assert page.locator("#import-report").is_hidden()
    assert not page.errors


def test_a_file_the_server_refuses_says_why(page, tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("just some words\nnothing tabular\n")
    page.locator(".import-more summary").click()
    page.select_option("#import-format", "")  # told from the content
    page.locator(".import-more summary").click()
    page.set_input_files("#import-file", str(bad))
    wait(page, "window.__sonomap.state.importReport && window.__sonomap.state.importReport.error")
    assert "cannot tell the file's format" in page.locator("#import-report").inner_text()
    page.locator("#import-report button", has_text="✕").click()
    assert page.locator("#import-report").is_hidden()


def test_the_export_menu_offers_audacity_with_bands(page):
    page.select_option("#export-format", "audacity-bbox")
    assert "format=audacity-bbox" in page.locator("#export").get_attribute("href")
    page.select_option("#export-format", "csv")


def test_the_eps_slider_maps_logarithmically_over_the_neighbour_distances(page, get_json, birds_url):
    info = get_json(f"{birds_url}/api/collections/birds")["collection"]
    page.select_option("#ctl-algorithm", "dbscan")
    wait(page, "document.querySelector('#param-eps') !== null")
    dims = page.locator("#ctl-dims").input_value().replace("-d", "")
    hint = info["cluster_defaults"]["synthetic"][dims]["dbscan"]["eps"]
    lo, hi = hint["log_min"], hint["log_max"]
    q = hint["k_distance_quantiles"]
    assert lo == pytest.approx(q["1"], rel=1e-2) and hi >= 2 * q["99"] * 0.99
    slider = page.locator("#param-eps")
    values = []
    for pos in (0, 250, 500, 750, 1000):
        slider.fill(str(pos))
        values.append(float(page.locator('[aria-label="eps value"]').input_value()))
    assert values[0] == pytest.approx(lo, rel=1e-2) and values[-1] == pytest.approx(hi, rel=1e-2)
    assert values[2] == pytest.approx(math.sqrt(lo * hi), rel=1e-2)  # the middle of a log scale
    ratios = [b / a for a, b in zip(values, values[1:], strict=False)]
    assert max(ratios) / min(ratios) < 1.02  # equal steps multiply eps by the same factor
    # the default (75th percentile) sits inside the travel, not in its first tenth
    slider.fill("0")
    page.locator('[aria-label="eps value"]').fill(str(hint["default"]))
    page.locator('[aria-label="eps value"]').press("Enter")
    pos = int(slider.input_value())
    assert 100 < pos < 900
    # and the clustering at the default finds clusters
    wait(
        page,
        f"window.__sonomap.lastResult && window.__sonomap.lastResult.request.params.eps === {hint['default']}",
        timeout_ms=60_000,
    )
    assert hook(page, "h.lastResult.n_clusters") >= 1
    assert hook(page, "h.state.n") == N_CLIPS
