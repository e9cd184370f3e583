"""Browser tests: the real server (``python -m server``) over a real built collection, driven in Debian's Chromium.

One server and one browser per session. The collection is the demo recordings built by the real CLI
(``python -m preprocess build --no-features``, a few seconds); if that build has no reduction yet, a PCA map of the
spectrograms is added in the contract's format so the page has something to draw. ``SONOMAP_TEST_COLLECTION=PATH``
uses (a copy of) an existing collection instead; ``SONOMAP_TEST_SERVER_URL=http://…`` uses a server that is already
running (it must serve a collection named ``demo``; the tests add classes to it).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--autoplay-policy=no-user-gesture-required",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def add_pca_reduction(root: Path, *, key: str = "spectro_pca") -> None:
    """Write features + reduction ``key`` (PCA of the log-mel spectrograms) per the collection contract."""
    from preprocess.collection import Collection
    from preprocess.testing import CollectionWriter

    spec = np.asarray(Collection(root).spectrograms()).astype(np.float32)
    X = spec.reshape(len(spec), -1)
    X -= X.mean(axis=0)
    u, s, _ = np.linalg.svd(X, full_matrices=False)
    Z = (u[:, :16] * s[:16]).astype(np.float32)
    Z /= np.abs(Z[:, :2]).max() or 1.0
    w = CollectionWriter(root)
    w.features(key, Z, extractor="pca", model=None, version="test", time_s=0.0)
    w.reduction(key, coords={d: Z[:, :d] for d in (2, 4, 8)}, display=Z[:, :2])


def _build_collections(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("browser") / "collections"
    root.mkdir()
    target = root / "demo"
    given = os.environ.get("SONOMAP_TEST_COLLECTION")
    if given:
        shutil.copytree(given, target, ignore=shutil.ignore_patterns("labels.sqlite*", "work"))
    else:
        cmd = [sys.executable, "-m", "preprocess", "build", str(REPO / "demo" / "recordings"), "--out", str(target)]
        cmd += ["--mode", "fixed"]  # the windows the browser tests were written for (the build's default is events)
        labels = REPO / "demo" / "recordings" / "labels.csv"
        if labels.exists():
            cmd += ["--labels", str(labels)]
        done = subprocess.run([*cmd, "--no-features"], cwd=REPO, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise RuntimeError(f"building the demo collection failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    if not any((target / "reductions").glob("*/map_2d.npy")):
        add_pca_reduction(target)
    return root


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())


@pytest.fixture(scope="session")
def get_json():
    """GET a JSON URL (for checking what the page did through the REST API)."""
    return _get_json


@contextmanager
def running_server(collections_dir: Path, *extra_args: str) -> Iterator[str]:
    """``python -m server`` over ``collections_dir`` on a free port; yields its URL, stops it afterwards."""
    port = _free_port()
    log_path = collections_dir.parent / f"server-{port}.log"
    log = open(log_path, "wb")
    env = dict(os.environ, NUMBA_CACHE_DIR=os.environ.get("NUMBA_CACHE_DIR", str(REPO / ".numba_cache")))
    args = ["--port", str(port), "--no-token", *extra_args]  # these tests' urllib calls send no token
    proc = subprocess.Popen(
        [sys.executable, "-m", "server", "--collections", str(collections_dir), *args],
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    try:
        while True:
            try:
                _get_json(f"{url}/api/collections")
                break
            except Exception:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"server did not start: {log_path.read_text()[-3000:]}") from None
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="session")
def server_runner():
    """:func:`running_server`, for tests that serve a collection of their own."""
    return running_server


@pytest.fixture(scope="session")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"browser tests need Debian's chromium at {CHROMIUM} (apt-get install chromium)")
    if os.environ.get("SONOMAP_TEST_SERVER_URL"):
        yield os.environ["SONOMAP_TEST_SERVER_URL"].rstrip("/")
        return
    with running_server(_build_collections(tmp_path_factory)) as url:
        yield url


@pytest.fixture(scope="session")
def browser(server_url: str):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


# The help opens by itself on a person's first visit (static/src/views/help.js); pages are "returning visitors"
# unless a test asks for a first visit.
SEEN_HELP = "localStorage.setItem('sonomap:seen-help', '1')"


@contextmanager
def app_page(
    browser,
    url: str,
    *,
    accept_downloads: bool = False,
    viewport: tuple[int, int] = (1440, 900),
    first_visit: bool = False,
    before_goto=None,
):
    """A page of the app at ``url``, ready (``window.__sonomap.ready``); its page errors collect in ``page.errors``.

    ``before_goto(page)`` runs before navigation (e.g. to route the page's WebSocket).
    """
    ctx = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]}, accept_downloads=accept_downloads)
    if not first_visit:
        ctx.add_init_script(SEEN_HELP)
    try:
        pg = ctx.new_page()
        errors: list[str] = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        if before_goto is not None:
            before_goto(pg)
        pg.goto(url)
        pg.wait_for_function("window.__sonomap && window.__sonomap.ready", timeout=60_000)
        pg.errors = errors
        yield pg
    finally:
        ctx.close()


@pytest.fixture(scope="session")
def page_opener():
    """:func:`app_page`, for tests that open a page of their own."""
    return app_page


@pytest.fixture(scope="session")
def page(browser, server_url: str):
    """One page on the demo collection, shared by the tests in file order (they build on each other)."""
    with app_page(browser, f"{server_url}/?c=demo", accept_downloads=True) as pg:
        yield pg


@pytest.fixture(scope="session")
def demo(server_url: str) -> dict:
    """REST view of the demo collection: info, clip columns and the display map."""
    info = _get_json(f"{server_url}/api/collections/demo")["collection"]
    clips = _get_json(f"{server_url}/api/collections/demo/clips")
    key = info.get("default_reduction") or info["reductions"][0]["key"]
    with urllib.request.urlopen(f"{server_url}/api/collections/demo/reductions/{key}/map.f32", timeout=30) as r:
        xy = np.frombuffer(r.read(), dtype="<f4").reshape(-1, 2)
    return {"info": info, "clips": clips, "xy": xy, "key": key}
