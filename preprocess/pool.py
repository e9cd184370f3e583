"""Run independent tasks on every core, or in this process, with the same results either way.

:class:`TaskPool` wraps a ``forkserver`` process pool (workers fork from a clean process that imported
torch once; forking a process whose torch threads already ran can deadlock, and spawning would import
torch in every worker). With ``jobs=1`` tasks run here, one after another, with torch limited to one
thread like the workers, so both give identical bytes.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager, nullcontext
from typing import Any

from .errors import SonomapError
from .progress import CancelCheck, Progress, check_cancel

_PRELOAD = ["preprocess.pipeline", "preprocess.spectrogram", "preprocess.sprites", "torch", "soundfile", "soxr"]


def cpu_count() -> int:
    """Cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class TaskPool:
    """``with TaskPool(jobs) as pool: pool.run(fn, args_list, ...)``; the workers live until the block ends."""

    def __init__(self, jobs: int) -> None:
        self.jobs = max(1, int(jobs))
        self._executor: ProcessPoolExecutor | None = None

    def __enter__(self) -> TaskPool:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=exc[0] is None, cancel_futures=True)
            self._executor = None

    def _pool(self) -> ProcessPoolExecutor:
        if self._executor is None:
            ctx = mp.get_context("forkserver")
            ctx.set_forkserver_preload(_PRELOAD)
            self._executor = ProcessPoolExecutor(
                max_workers=self.jobs, mp_context=ctx, initializer=_worker_init, initargs=(os.getpid(),)
            )
        return self._executor

    def run(
        self,
        fn: Callable[..., Any],
        tasks: Sequence[tuple],
        *,
        stage: str,
        progress: Progress,
        should_cancel: CancelCheck | None = None,
        on_result: Callable[[int, Any], None] | None = None,
        done: int = 0,
        total: int | None = None,
        label: Callable[[int], str] | None = None,
        uses_torch: bool = True,
    ) -> list[Any]:
        """``[fn(*t) for t in tasks]`` on the workers (results in task order).

        ``uses_torch=False`` spares this process importing torch for tasks that never use it.
        ``on_result(i, result)`` runs here as each finishes (e.g. to save a resume marker); progress is
        ``(stage, done + finished, total)``. Raises :class:`Cancelled` between tasks when asked to.
        """
        total = len(tasks) + done if total is None else total
        results: list[Any] = [None] * len(tasks)
        finished = 0

        def finish(i: int, res: Any) -> None:
            nonlocal finished
            results[i] = res
            if on_result is not None:
                on_result(i, res)
            finished += 1
            progress(stage, done + finished, total, label(i) if label else "")

        progress(stage, done, total, "")
        if self.jobs <= 1 or len(tasks) <= 1:
            with _one_thread() if uses_torch else nullcontext():
                for i, t in enumerate(tasks):
                    check_cancel(should_cancel)
                    with _quiet_stderr():
                        res = fn(*t)
                    finish(i, res)
            return results
        pool = self._pool()
        queue = list(range(len(tasks)))[::-1]
        running: dict[Future, int] = {}
        try:
            while queue or running:
                while queue and len(running) < 2 * self.jobs:
                    i = queue.pop()
                    running[pool.submit(fn, *tasks[i])] = i
                ready, _ = wait(running, timeout=0.5, return_when=FIRST_COMPLETED)
                for fut in ready:
                    i = running.pop(fut)
                    try:
                        res = fut.result()
                    except BrokenProcessPool:
                        what = label(i) if label else f"task {i}"
                        raise SonomapError(
                            f"a worker process died during {stage} (near {what}), probably out of memory; "
                            "run the build again to resume it, with jobs=1 to use less memory"
                        ) from None
                    finish(i, res)
                check_cancel(should_cancel)
        except BaseException:
            for fut in running:
                fut.cancel()
            raise
        return results


def _worker_init(owner_pid: int | None = None) -> None:
    if owner_pid is not None:
        _exit_with_owner(owner_pid)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass
    # libmpg123 prints warnings about damaged MP3s straight to stderr; those files are reported properly
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)


def _exit_with_owner(owner_pid: int) -> None:
    """No orphans: this worker dies with the process that made the pool.

    Linux: the kernel sends SIGKILL when the parent (the forkserver, which itself exits with its owner) dies;
    everywhere: a daemon thread checks the owner once a second and exits when it is gone.
    """
    import signal
    import threading
    import time

    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass

    def watch() -> None:
        while True:
            try:
                os.kill(owner_pid, 0)
            except ProcessLookupError:
                os._exit(1)
            except PermissionError:  # pragma: no cover - the pid was reused by another user's process
                os._exit(1)
            time.sleep(1.0)

    threading.Thread(target=watch, name="owner-watch", daemon=True).start()


@contextmanager
def _one_thread() -> Iterator[None]:
    try:
        import torch
    except ImportError:  # pragma: no cover
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same arithmetic as a pool worker: identical output
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence file descriptor 2 while a task runs here (libmpg123 warnings)."""
    try:
        saved = os.dup(2)
    except OSError:  # pragma: no cover - no stderr at all
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
