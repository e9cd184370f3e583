"""Controls that say what they do, in real Chromium against the server: the help (every key, on the first visit),
number keys without a class, class names shown whole, toasts with exact counts, and cancelling a clustering.

Each test opens its own page on the demo collection and makes the classes it needs through the REST API.
"""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.browser


def js(page, expr: str):
    return page.evaluate(f"(() => {{ const h = window.__sonomap; return {expr}; }})()")


def until(page, expr: str, timeout_ms: int = 30_000) -> None:
    try:
        page.wait_for_function(
            f"(() => {{ const h = window.__sonomap; return {expr}; }})()", polling=50, timeout=timeout_ms
        )
    except Exception:
        seen = js(page, "JSON.stringify({job: h.state.job, toast: h.lastToast, classes: h.state.classes})")
        raise AssertionError(f"timed out waiting for {expr}; page: {seen}") from None


def rest(method: str, url: str, body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        url, data=data, headers={"Content-Type": "application/json", "X-Sonomap-Token": "test"}, method=method
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


@pytest.fixture
def upage(browser, server_url, page_opener):
    with page_opener(browser, f"{server_url}/?c=demo") as pg:
        yield pg
        assert not pg.errors, pg.errors


@pytest.fixture
def klass(server_url):
    """Make a class by REST (name given to the factory); delete them all afterwards."""
    base = f"{server_url}/api/collections/demo"
    made = []

    def make(name: str) -> int:
        cid = rest("POST", f"{base}/classes", {"name": name})["class"]["id"]
        made.append(cid)
        return cid

    yield make
    for cid in made:
        rest("DELETE", f"{base}/classes/{cid}")


# ------------------------------------------------------------------------------------------------------------------
# help


def _keys_handled_by_the_page() -> set[str]:
    """The keys keyboard.js acts on, spelled as the help spells them."""
    src = (REPO / "static" / "src" / "keyboard.js").read_text(encoding="utf-8")
    names = {"ArrowRight": "→", "ArrowLeft": "←", "ArrowUp": "↑", "ArrowDown": "↓", " ": "Space", "Escape": "Esc"}
    keys = {names.get(k, k.upper()) for k in re.findall(r"case '(.+?)':", src)}
    keys |= {"1", "9", "Ctrl", "Z", "Y", "Shift"}  # number keys, undo / redo (tested outside the switch)
    return keys


def test_the_help_opens_on_the_first_visit_lists_every_key_and_gesture_and_is_remembered(
    browser, server_url, page_opener
):
    with page_opener(browser, f"{server_url}/?c=demo", first_visit=True) as pg:
        help_ = pg.locator("#help")
        assert help_.is_visible()
        kbd = set(pg.eval_on_selector_all("#help kbd", "els => els.map(e => e.textContent.trim())"))
        missing = _keys_handled_by_the_page() - kbd
        assert not missing, f"keys the page handles but the help does not list: {missing}"
        text = help_.inner_text()
        for gesture in ("hover a point", "click a point", "Shift+drag", "Shift-click", "double-click a class name"):
            assert gesture in text, gesture
        pg.click("#help-close")
        assert not help_.is_visible()
        pg.reload()
        pg.wait_for_function("window.__sonomap && window.__sonomap.ready", timeout=60_000)
        assert not pg.locator("#help").is_visible()  # remembered: a returning visitor is not shown it again
        pg.keyboard.press("?")
        assert pg.locator("#help").is_visible()
        pg.keyboard.press("Escape")
        assert not pg.locator("#help").is_visible()
        assert not pg.errors, pg.errors


# ------------------------------------------------------------------------------------------------------------------
# number keys, class names, toasts


def test_a_number_key_with_no_class_says_so(upage):
    n = js(upage, "h.state.classes.length")
    if n >= 9:
        pytest.skip("the demo collection has nine classes already")
    js(upage, "h.actions.pin(0)")
    upage.locator("#map").hover(position={"x": 3, "y": 3})
    upage.keyboard.press(str(n + 1))
    until(upage, f"h.lastToast && h.lastToast.message.startsWith('No class {n + 1}')")
    assert upage.locator("#toast").is_visible()
    assert upage.locator("#toast").inner_text().startswith(f"No class {n + 1}")


def test_class_names_are_shown_whole(upage, klass):
    name = "Dawn chorus of the white-crowned sparrow: song type B (second phrase only)"
    klass(name)
    row = upage.locator(f'.cl-row[data-name="{name}"]')
    row.wait_for()
    cell = row.locator(".cl-name")
    assert cell.inner_text() == name
    assert name in cell.get_attribute("title")
    fits = cell.evaluate("e => e.scrollWidth <= e.clientWidth + 1 && e.scrollHeight <= e.clientHeight + 1")
    assert fits, "the class name is cut off"
    panel = upage.locator("#pooling").bounding_box()
    box = cell.bounding_box()
    assert box["x"] >= panel["x"] and box["x"] + box["width"] <= panel["x"] + panel["width"]
    # the legend, coloured by class, shows it whole too
    upage.select_option("#color-by", "class")
    lg = upage.locator("#legend .lg-row .lg-name", has_text="Dawn chorus")
    lg.wait_for()
    assert lg.inner_text() == name
    assert lg.evaluate("e => e.scrollWidth <= e.clientWidth + 1")


def test_toasts_give_exact_counts(upage, klass, server_url):
    cid = klass("Toast count")
    upage.locator('.cl-row[data-name="Toast count"]').wait_for()
    key = js(upage, "h.state.classes.findIndex(c => c.name === 'Toast count')") + 1
    assert 1 <= key <= 9
    # one pinned clip
    js(upage, "h.actions.pin(0)")
    upage.locator("#map").hover(position={"x": 3, "y": 3})
    upage.keyboard.press(str(key))
    until(upage, "h.lastToast && h.lastToast.message === 'Added 1 clip to “Toast count”'")
    upage.keyboard.press(str(key))
    until(upage, "h.lastToast && h.lastToast.message === 'Added 0 clips to “Toast count” (1 was already in it)'")
    # a whole cluster, which holds clip 0 or not: the toast counts what the server added
    until(upage, "h.state.cluster !== null", timeout_ms=120_000)
    upage.locator("#legend .lg-row").nth(0).click()
    ids = js(upage, "Array.from(h.state.focus.ids)")
    new = len([i for i in ids if i != 0])
    already = len(ids) - new
    upage.keyboard.press(str(key))
    want = f"Added {new} clip{'s' if new != 1 else ''} to “Toast count”" + (" (1 was already in it)" if already else "")
    until(upage, f"h.lastToast && h.lastToast.message === {json.dumps(want)}")
    members = rest("GET", f"{server_url}/api/collections/demo/classes")["members"][str(cid)]
    assert sorted(members) == sorted(set(ids) | {0})
    # taking the cluster out again
    upage.locator('.cl-row[data-name="Toast count"] button.rm').click()
    until(upage, f"h.lastToast && h.lastToast.message === {json.dumps(f'Removed {len(ids)} clips from “Toast count”')}")
    upage.click("#undo")
    until(
        upage,
        f"h.lastToast && h.lastToast.message === {json.dumps(f'Undone: removed {len(ids)} clips from “Toast count”')}",
    )


# ------------------------------------------------------------------------------------------------------------------
# cancel


def test_the_progress_bar_cancels_the_running_clustering(browser, server_url, page_opener):
    """Cancel sends ``cancel {job_id}`` for the running job and shows it cancelled; the map keeps its last result.

    A clustering of the demo takes milliseconds, so the page's WebSocket is routed: once the first result is in,
    the server's results and progress for later jobs are held back (the job looks as if it were running), and the
    server's half of ``cancel`` (tested in tests/server) is answered here as the server answers it.
    """
    log = {"hold": False, "cancels": [], "skip_binary": 0}

    def route(ws):
        server = ws.connect_to_server()

        def from_page(msg):
            m = re.match(r'^42(\d+)\["cancel",(.*)\]$', msg) if isinstance(msg, str) else None
            if m and log["hold"]:
                job_id = json.loads(m.group(2))["job_id"]
                log["cancels"].append(job_id)
                ws.send(f'43{m.group(1)}[{{"ok":true}}]')
                ws.send("42" + json.dumps(["job:cancelled", {"job_id": job_id}]))
                return
            server.send(msg)

        def from_server(msg):
            if isinstance(msg, bytes):
                if log["skip_binary"]:
                    log["skip_binary"] -= 1
                    return
            elif log["hold"]:
                b = re.match(r'^45(\d+)-\["job:result"', msg)
                if b:
                    log["skip_binary"] += int(b.group(1))
                    return
                if re.match(r'^42\["job:(result|progress)"', msg):
                    return
            ws.send(msg)

        ws.on_message(from_page)
        server.on_message(from_server)

    def before(pg):
        pg.route_web_socket(re.compile(r".*/socket\.io/.*"), route)

    with page_opener(browser, f"{server_url}/?c=demo", before_goto=before) as pg:
        until(pg, "h.clusterResults > 0", timeout_ms=120_000)
        kept = js(pg, "h.lastResult")
        cancel = pg.locator("#job-cancel")
        assert not cancel.is_visible()  # nothing is running
        log["hold"] = True
        pg.select_option("#ctl-algorithm", "kmeans")
        until(pg, "h.state.job && h.state.job.state === 'running' && !!h.state.job.job_id")
        job_id = js(pg, "h.state.job.job_id")
        assert cancel.is_visible()
        cancel.click()
        until(pg, "h.state.job.state === 'cancelled'")
        assert log["cancels"] == [job_id]  # the page asked the server to cancel exactly the running job
        assert not cancel.is_visible()
        assert "cancelled" in pg.locator("#job .job-text").inner_text()
        assert js(pg, "h.lastResult") == kept  # the map keeps the last result
        assert js(pg, "h.state.cluster.request.algorithm") == kept["request"]["algorithm"]
        assert not pg.errors, pg.errors
