"""Background warm-up of numba-compiled code, so the first cluster request does not pay 20-40 s of compilation.

Steps run in order in one background task: fast_hdbscan (what clustering needs), then pynndescent and UMAP (what
placing new clips needs). A job that needs a step waits only for what is left of that step, reporting progress
("warming up fast_hdbscan, about 9 s left"), and never waits at all when warm-up is off or finished.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

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

    def __init__(self, steps: list[Step] | None = None):
        self.steps = steps if steps is not None else default_steps()
        self.started = False

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
                    left = self._left_s(needed[i:])
                    progress(
                        "warmup", i, total, f"waiting for warm-up ({step.name} compiling), about {left:.0f} s left"
                    )
        if progress is not None and time.monotonic() - t0 > 0.01:
            progress("warmup", total, total, "warm-up finished")
        return time.monotonic() - t0

    @staticmethod
    def _left_s(steps: list[Step]) -> float:
        left = 0.0
        for s in steps:
            if s.done.is_set():
                continue
            spent = time.monotonic() - s.started_at if s.started_at is not None else 0.0
            left += max(1.0, s.estimate_s - spent)
        return left


def default_steps(*, umap: bool = True) -> list[Step]:
    """fast_hdbscan first (clustering needs it), then pynndescent and UMAP (placing new clips needs them)."""
    steps = [Step("fast_hdbscan", _warm_fast_hdbscan, 15.0)]
    if umap:
        steps += [Step("pynndescent", _warm_pynndescent, 35.0), Step("umap", _warm_umap, 20.0)]
    return steps
