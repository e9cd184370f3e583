"""Warm-up of numba-compiled code, so the first cluster request does not pay 20-120 s of compilation.

Two halves:

* **At set-up** (``scripts/install.sh``, hence ``make demo``): ``python -m server.warmup`` runs every step once in
  the foreground, which fills numba's on-disk cache (``NUMBA_CACHE_DIR``, default ``<repo>/.numba_cache``), and
  records each step's time in ``sonomap_warmup.json`` there. A later server start then only loads compiled code.
* **At server start**: the same steps run in one background task: fast_hdbscan (what clustering needs), then
  pynndescent and UMAP (what placing new clips needs). A job that needs a step waits only for what is left of it.

Honest estimates: a step's estimate is its last recorded time when the cache holds its compiled code, else the
cold-compile default. While a step runs past its estimate the job says how long it has been compiling ("compiling
fast_hdbscan (first start after install), 31 s so far"), never "about 1 s left".
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from preprocess.progress import CancelCheck, Progress, check_cancel

log = logging.getLogger(__name__)


@dataclass
class Step:
    name: str
    run: Callable[[], None]
    estimate_s: float
    done: threading.Event = field(default_factory=threading.Event)
    started_at: float | None = None
    elapsed_s: float | None = None
    error: str | None = None


def _warm_fast_hdbscan() -> None:
    from preprocess.cluster import Clusterer

    rng = np.random.default_rng(0)  # two far-apart groups: also compiles the k-NN-graph bridging
    X = np.concatenate([rng.normal(size=(300, 8)), rng.normal(size=(300, 8)) + 50]).astype(np.float32)
    c = Clusterer(X)
    c.fit_predict(algorithm="hdbscan", params={"min_cluster_size": 10})
    c.fit_predict(algorithm="dbscan", params={"eps": 1.0})
    c.fit_predict(algorithm="dbscan", params={"eps": 1.0, "partition": 2})  # large inputs' cell path (k-NN scan)


def _warm_pynndescent() -> None:
    from pynndescent import NNDescent

    X = np.random.default_rng(0).normal(size=(300, 8)).astype(np.float32)
    NNDescent(X, n_neighbors=10, random_state=0).query(X[:10], k=5)


def _warm_umap() -> None:
    import umap

    X = np.random.default_rng(0).normal(size=(300, 8)).astype(np.float32)
    umap.UMAP(n_components=2, n_epochs=20, random_state=0, force_approximation_algorithm=True).fit(X)


class Warmup:
    """Runs ``steps`` once in the background; :meth:`wait_for` blocks at most for the rest of one step."""

    def __init__(self, steps: list[Step] | None = None, *, record: bool = False):
        self.steps = steps if steps is not None else default_steps()
        self.started = False
        self.record = record  # keep the times in the numba cache folder for the next start's estimates

    def start(self, start_task: Callable[[Callable[[], None]], object]) -> None:
        """Start the steps with ``start_task(fn)`` (``socketio.start_background_task``)."""
        self.started = True
        start_task(self._run_all)

    def _run_all(self) -> None:
        for step in self.steps:
            step.started_at = time.monotonic()
            try:
                step.run()
            except Exception as e:  # a failed warm-up only means the first job compiles itself
                step.error = f"{type(e).__name__}: {e}"
                log.warning("warm-up step %s failed: %s", step.name, step.error)
            step.elapsed_s = time.monotonic() - step.started_at
            log.info("warm-up %s done in %.1f s", step.name, step.elapsed_s)
            step.done.set()
        if self.record:
            record_times(self.steps)

    def status(self) -> dict:
        return {
            "started": self.started,
            "steps": [
                {"name": s.name, "done": s.done.is_set(), "elapsed_s": s.elapsed_s, "error": s.error}
                for s in self.steps
            ],
        }

    def wait_for(
        self,
        name: str,
        *,
        progress: Progress | None = None,
        should_cancel: CancelCheck | None = None,
        poll_s: float = 0.25,
    ) -> float:
        """Wait until step ``name`` and those before it are done; return seconds waited. No-op if never started."""
        if not self.started:
            return 0.0
        t0 = time.monotonic()
        needed = []
        for s in self.steps:
            needed.append(s)
            if s.name == name:
                break
        total = len(needed)
        for i, step in enumerate(needed):
            while not step.done.wait(poll_s):
                check_cancel(should_cancel)
                if progress is not None:
                    progress("warmup", i, total, self.message(step, self._left_s(needed[i:])))
        if progress is not None and time.monotonic() - t0 > 0.01:
            progress("warmup", total, total, "warm-up finished")
        return time.monotonic() - t0

    @staticmethod
    def _left_s(steps: list[Step]) -> float | None:
        """Seconds still expected for ``steps``; None when the running one is past its estimate (unknown)."""
        left = 0.0
        for s in steps:
            if s.done.is_set():
                continue
            spent = time.monotonic() - s.started_at if s.started_at is not None else 0.0
            if spent > s.estimate_s:
                return None
            left += s.estimate_s - spent
        return left

    @staticmethod
    def message(step: Step, left: float | None) -> str:
        """The job's progress line while it waits for ``step``."""
        spent = time.monotonic() - step.started_at if step.started_at is not None else 0.0
        if left is None:
            return f"compiling {step.name} (first start after install or upgrade), {spent:.0f} s so far"
        return f"waiting for warm-up ({step.name} compiling), about {max(1.0, left):.0f} s left"


#: Cold-compile times on a 2-core laptop (seconds); used when the numba cache lacks a step's code.
COLD_ESTIMATE_S = {"fast_hdbscan": 60.0, "pynndescent": 60.0, "umap": 40.0}
#: The numba cache folder of each step's library (its files are named after the module).
_CACHE_PREFIX = {"fast_hdbscan": "fast_hdbscan_", "pynndescent": "pynndescent_", "umap": "umap_"}
RECORD_FILE = "sonomap_warmup.json"


def numba_cache_dir() -> Path | None:
    """numba's persistent cache folder (``NUMBA_CACHE_DIR``), None when numba caches next to the sources."""
    value = os.environ.get("NUMBA_CACHE_DIR")
    return Path(value) if value else None


def estimate_s(name: str, cache_dir: Path | None = None) -> float:
    """Expected seconds for step ``name``: its recorded time when the cache holds its code, else the cold default."""
    cache_dir = cache_dir if cache_dir is not None else numba_cache_dir()
    cold = COLD_ESTIMATE_S.get(name, 30.0)
    if cache_dir is None or not cache_dir.is_dir():
        return cold
    prefix = _CACHE_PREFIX.get(name, name)
    if not any(p.name.startswith(prefix) for p in cache_dir.iterdir()):
        return cold
    try:
        recorded = json.loads((cache_dir / RECORD_FILE).read_text()).get(name)
    except (OSError, ValueError, AttributeError):
        recorded = None
    return max(1.0, 1.5 * float(recorded)) if isinstance(recorded, int | float) and recorded > 0 else 10.0


def record_times(steps: list[Step], cache_dir: Path | None = None) -> None:
    """Keep the warm steps' times in the cache folder (atomic), for the next start's estimates."""
    cache_dir = cache_dir if cache_dir is not None else numba_cache_dir()
    if cache_dir is None:
        return
    times = {s.name: round(s.elapsed_s, 2) for s in steps if s.elapsed_s is not None and s.error is None}
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = cache_dir / f".{RECORD_FILE}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(times))
        os.replace(tmp, cache_dir / RECORD_FILE)
    except OSError as e:  # a read-only cache only costs the next start its estimate
        log.info("could not record warm-up times in %s: %s", cache_dir, e)


def default_steps(*, umap: bool = True) -> list[Step]:
    """fast_hdbscan first (clustering needs it), then pynndescent and UMAP (placing new clips needs them)."""
    steps = [Step("fast_hdbscan", _warm_fast_hdbscan, estimate_s("fast_hdbscan"))]
    if umap:
        steps += [
            Step("pynndescent", _warm_pynndescent, estimate_s("pynndescent")),
            Step("umap", _warm_umap, estimate_s("umap")),
        ]
    return steps


def main(argv: list[str] | None = None) -> int:
    """``python -m server.warmup``: compile every step now (fills the numba cache) and print the times."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m server.warmup", description=main.__doc__)
    parser.add_argument("--clustering-only", action="store_true", help="skip pynndescent and UMAP")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)  # the second, warm pass
    args = parser.parse_args(argv)
    from preprocess.commands.reduce import ensure_numba_cache

    cache = ensure_numba_cache()
    steps = default_steps(umap=not args.clustering_only)
    t0 = time.monotonic()
    Warmup(steps)._run_all()
    what = "from the cache" if args.measure else "compile"
    for s in steps:
        state = f"failed ({s.error})" if s.error else f"{s.elapsed_s:.1f} s"
        print(f"warm-up {s.name:<13} {what:<15} {state}", flush=True)
    if args.measure:  # what a fresh server process will pay: the estimates of the next starts
        record_times(steps)
        return 1 if any(s.error for s in steps) else 0
    print(f"numba cache {cache or '(next to the sources)'} filled in {time.monotonic() - t0:.1f} s", flush=True)
    import subprocess

    again = [sys.executable, "-m", "server.warmup", "--measure"] + (
        ["--clustering-only"] if args.clustering_only else []
    )
    rc = subprocess.call(again, env=dict(os.environ, NUMBA_CACHE_DIR=cache) if cache else None)
    return 1 if rc or any(s.error for s in steps) else 0


if __name__ == "__main__":
    sys.exit(main())
