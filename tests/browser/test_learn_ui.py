"""The learning loop in the page: train with T, review three clips with the keys (A, X, A) and see the
class membership and the map's colours change; retrain; find similar clips (F) and add one with a number key.

Its own server over the demo recordings with BirdNET features (the shared browser collection has none) and a PCA
map. Screenshots go to $SONOMAP_SHOTS when set (the review panel mid-review, a similarity gallery).
"""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from tests.browser.conftest import add_pca_reduction

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def learn_url(demo_collection_path, tmp_path_factory, server_runner):
    from preprocess.collection import Collection
    from preprocess.features import run_extractor

    if not Path("/usr/bin/chromium").exists():
        pytest.skip("browser tests need /usr/bin/chromium")
    root = tmp_path_factory.mktemp("learnui") / "collections"
    shutil.copytree(demo_collection_path, root / "demo", ignore=shutil.ignore_patterns("labels.sqlite*"))
    run_extractor(Collection.open(root / "demo"), "birdnet")
    if not any((root / "demo" / "reductions").glob("*/map_2d.npy")):
        add_pca_reduction(root / "demo")
    with server_runner(root) as url:
        yield url, root / "demo"


def _req(url, method="GET", body=None):
    data = None if body is None else json.dumps(body).encode()
    # the server runs with --no-token: a state change still needs the CSRF header (any value), as api.js sends it
    headers = {"Content-Type": "application/json", "X-Sonomap-Token": "test"}
    r = urllib.request.Request(url, data=data, method=method, headers=headers)
    with urllib.request.urlopen(r, timeout=30) as resp:
        return json.loads(resp.read())


def _pool(url, root):
    from preprocess.collection import Collection

    c = Collection.open(root)
    clips, recs = c.clips(), c.recordings().set_index("recording_id")
    truth = recs["label"].reindex(clips["recording_id"]).fillna("").to_numpy(object)
    names, counts = np.unique(truth[truth != ""], return_counts=True)
    species = [str(s) for s in names[np.argsort(-counts)][:2]]
    ids = []
    for s in species:
        cid = _req(f"{url}/api/collections/demo/classes", "POST", {"name": s})["class"]["id"]
        members = np.flatnonzero(truth == s)[:4].tolist()
        _req(f"{url}/api/collections/demo/classes/{cid}/members", "POST", {"clip_ids": members})
        ids.append(cid)
    return ids


def _shot(page, name):
    out = os.environ.get("SONOMAP_SHOTS")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(out) / f"learnui_{name}.png"))


def test_review_three_clips_with_keys_then_similar(browser, learn_url, page_opener):
    url, root = learn_url
    cid, other = _pool(url, root)
    with page_opener(browser, f"{url}/?c=demo") as page:
        page.wait_for_function("window.__sonomap.state.classes.length === 2")
        page.locator("body").click(position={"x": 700, "y": 300})  # audio needs a gesture
        page.keyboard.press("t")
        page.wait_for_function(
            "window.__sonomap.learning.model && window.__sonomap.learning.model.round === 1", timeout=60_000
        )
        assert page.locator("#learn-metrics tr[data-class]").count() == 2

        page.select_option("#color-by", "class")
        page.wait_for_function("window.__sonomap.state.legend && window.__sonomap.state.legend.by === 'class'")
        page.click(f'[data-review="{cid}"]')
        page.wait_for_function(
            "(() => { const r = window.__sonomap.learning.review; return r && r.items.length >= 3 && !r.loading; })()"
        )
        first = page.evaluate("window.__sonomap.learning.review.items.slice(0, 3).map((it) => it.clip_id)")
        played = page.evaluate("window.__sonomap.playbacks")
        size0 = page.evaluate(f"(window.__sonomap.state.members[{cid}] || []).length")
        code = page.evaluate(f"window.__sonomap.state.legend.items.find((it) => it.key === {cid}).code")
        assert page.evaluate(f"window.__sonomap.state.legend.codes[{first[0]}]") != code

        def judged(n):
            page.wait_for_function(
                f"(() => {{ const r = window.__sonomap.learning.review; return r.counts.accepted + r.counts.rejected === {n} && !r.busy; }})()"
            )

        page.keyboard.press("a")
        judged(1)
        page.keyboard.press("x")
        judged(2)
        page.wait_for_function("document.querySelector('#review-precision') !== null")
        _shot(page, "review")
        page.keyboard.press("a")
        judged(3)
        page.wait_for_function(f"(window.__sonomap.state.members[{cid}] || []).length === {size0 + 2}")

        # the store agrees, and the map's colours moved with it
        members = _req(f"{url}/api/collections/demo/classes")["members"][str(cid)]
        assert first[0] in members and first[2] in members and first[1] not in members
        negatives = _req(f"{url}/api/collections/demo/negatives")["negatives"][str(cid)]
        assert negatives == [first[1]]
        page.wait_for_function(f"window.__sonomap.state.legend.codes[{first[0]}] === {code}")
        assert page.evaluate(f"window.__sonomap.state.legend.codes[{first[2]}]") == code
        assert page.evaluate(f"window.__sonomap.state.legend.codes[{first[1]}]") != code
        assert page.evaluate("window.__sonomap.playbacks") >= played + 3  # each clip played as it came up
        assert "3 reviewed" in page.inner_text("#review-counter").replace("\n", " ")

        # retrain is one key; the metrics say round 2
        page.keyboard.press("t")
        page.wait_for_function("window.__sonomap.learning.model.round === 2", timeout=60_000)
        assert "round 2" in page.inner_text("#learn")
        page.keyboard.press("Escape")
        page.wait_for_function("window.__sonomap.learning.review === null")

        # colour by the class's score: the legend shows score bins
        page.select_option("#color-by", f"score:{cid}")
        page.wait_for_function(f"window.__sonomap.state.legend && window.__sonomap.state.legend.by === 'score:{cid}'")
        assert page.locator(".lg-row").count() >= 2

        # query by example from a pinned clip; a number key adds the hovered result tile
        page.evaluate(f"window.__sonomap.actions.pin({first[0]})")
        page.keyboard.press("f")
        page.wait_for_function(
            "window.__sonomap.state.focus && window.__sonomap.state.focus.kind === 'similar'", timeout=60_000
        )
        assert page.locator("#gallery-tiles .tile .sim").count() > 5
        sims = [float(t) for t in page.locator("#gallery-tiles .tile .sim").all_inner_texts()[:10]]
        assert sims == sorted(sims, reverse=True)
        tile = page.locator("#gallery-tiles .tile").nth(2)
        tile.hover()
        clip = int(tile.get_attribute("data-clip"))
        _shot(page, "similar")
        in_class = clip in page.evaluate(f"window.__sonomap.state.members[{cid}] || []")
        page.keyboard.press("1")
        if not in_class:
            page.wait_for_function(f"(window.__sonomap.state.members[{cid}] || []).includes({clip})")

        # Shift+2: "not in class 2" for the tile under the pointer
        tile = page.locator("#gallery-tiles .tile").nth(3)
        tile.hover()
        clip = int(tile.get_attribute("data-clip"))
        page.keyboard.press("Shift+Digit2")
        deadline = time.monotonic() + 20
        while clip not in _req(f"{url}/api/collections/demo/negatives")["negatives"][str(other)]:
            assert time.monotonic() < deadline, "Shift+2 did not record a negative"
            time.sleep(0.2)

        # a sound file as the query: embedded on the server, never added
        from preprocess.collection import Collection
        from tests.conftest import DEMO_RECORDINGS

        n_clips = len(Collection.open(root).clips())
        rec = Collection.open(root).recordings().iloc[0]
        page.set_input_files("#similar-file", str(DEMO_RECORDINGS / rec["path"]))
        page.wait_for_function(
            "(() => { const f = window.__sonomap.state.focus; return f && f.kind === 'similar' && f.query && f.query.kind === 'file'; })()",
            timeout=90_000,
        )
        assert rec["file_name"] in page.inner_text("#gallery-title")
        assert len(Collection.open(root).clips()) == n_clips
        assert not page.errors, page.errors
