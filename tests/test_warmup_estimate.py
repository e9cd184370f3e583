"""Honest warm-up estimates: the cache's recorded times when it holds the compiled code, the cold
default otherwise, and "N s so far" (never "about 1 s left") once a step runs past its estimate."""

from __future__ import annotations

import json
import threading

from server import warmup as w


def test_estimates_from_the_cache(tmp_path):
    assert w.estimate_s("fast_hdbscan", tmp_path / "missing") == w.COLD_ESTIMATE_S["fast_hdbscan"]
    assert w.estimate_s("fast_hdbscan", tmp_path) == w.COLD_ESTIMATE_S["fast_hdbscan"]  # empty cache: cold
    (tmp_path / "fast_hdbscan_0123abcd").mkdir()
    assert w.estimate_s("fast_hdbscan", tmp_path) == 10.0  # compiled code but no recorded time
    steps = [w.Step("fast_hdbscan", lambda: None, 1.0), w.Step("umap", lambda: None, 1.0)]
    steps[0].elapsed_s, steps[1].elapsed_s = 4.0, 3.0
    w.record_times(steps, tmp_path)
    assert json.loads((tmp_path / w.RECORD_FILE).read_text()) == {"fast_hdbscan": 4.0, "umap": 3.0}
    assert w.estimate_s("fast_hdbscan", tmp_path) == 6.0
    assert w.estimate_s("umap", tmp_path) == w.COLD_ESTIMATE_S["umap"]  # its code is not in the cache


def test_wait_says_so_far_once_past_the_estimate():
    release = threading.Event()
    warm = w.Warmup([w.Step("fast_hdbscan", lambda: release.wait(10), 0.3)])
    warm.start(lambda fn: threading.Thread(target=fn, daemon=True).start())
    messages: list[str] = []
    timer = threading.Timer(1.5, release.set)
    timer.start()
    warm.wait_for("fast_hdbscan", progress=lambda stage, done, total, msg: messages.append(msg), poll_s=0.05)
    timer.cancel()
    waiting = [m for m in messages if m != "warm-up finished"]
    assert waiting and "about" in waiting[0]  # within the estimate: time left
    late = [m for m in waiting if "so far" in m]
    assert late and all("left" not in m for m in late)  # past it: how long so far
    assert waiting.index(late[0]) > 0 and all("so far" in m for m in waiting[waiting.index(late[0]) :])
