"""One click from the printed URL: Chromium opens ``http://127.0.0.1:PORT/?token=…`` and the page works (points
drawn, a clustering streamed over the socket, a class created) with the token only in an HttpOnly cookie."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from .serving import served

pytestmark = [pytest.mark.browser, pytest.mark.slow]
CHROMIUM = "/usr/bin/chromium"


def test_page_works_from_the_printed_url(collections_root):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"needs Debian's chromium at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    try:
        from tests.browser.conftest import CHROMIUM_ARGS
    except ImportError:  # the browser tests' flags moved: the ones they need to run headless here
        CHROMIUM_ARGS = ["--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]

    with served(collections_root) as (url, _log):
        token = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["token"][0]

        def visit() -> None:
            # in its own thread: the browser tests' session-wide Playwright keeps an asyncio loop in this one
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                try:
                    page = browser.new_page(viewport={"width": 1440, "height": 900})
                    errors: list[str] = []
                    page.on("pageerror", lambda e: errors.append(str(e)))
                    page.goto(url)
                    page.wait_for_function("window.__sonomap && window.__sonomap.ready", timeout=90_000)
                    assert "token=" not in page.url  # the redirect dropped it from the address bar
                    assert "sonomap_token" not in page.evaluate("document.cookie")  # HttpOnly: scripts cannot read it
                    n = page.evaluate("window.__sonomap.state.n")
                    assert n > 10 and page.evaluate("window.__sonomap.pointsDrawn") == n
                    page.wait_for_function("window.__sonomap.clusterResults > 0", timeout=120_000)  # over the socket
                    page.wait_for_selector(
                        "#help", state="visible"
                    )  # a first visit opens the help; close it as a user would
                    page.click("#help-close")
                    page.fill("#new-class-name", "From the printed URL")
                    page.click("#create-class")
                    page.wait_for_selector('.cl-row[data-name="From the printed URL"]', timeout=30_000)
                    assert not errors
                finally:
                    browser.close()

        with ThreadPoolExecutor(1) as pool:
            pool.submit(visit).result()
        req = urllib.request.Request(
            url.split("?")[0] + "api/collections/demo/classes", headers={"X-Sonomap-Token": token}
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            names = [c["name"] for c in json.loads(r.read())["classes"]]
        assert names == ["From the printed URL"]
