"""Run the build's independent tasks on a Dask cluster, with the same interface as :class:`~.pool.TaskPool`.

:class:`DaskPool` has ``run(fn, tasks, stage=…, progress=…, …)`` exactly like the local pool, so
:func:`preprocess.pipeline.build` takes either. Each task is one Dask future (``client.submit``); results
come back in task order, progress comes from the futures as they finish (``as_completed``). A worker that
dies has its tasks rescheduled by the scheduler (up to ``distributed.scheduler.allowed-failures`` times),
and a task that raises is tried ``retries`` more times; past that the build stops with a
:class:`~.errors.SonomapError` and resumes from ``work/`` when run again, as after a local crash.

Tasks read recordings and write scratch files by absolute path: every worker must see the same
filesystem (the input folders and the collection), as on an HPC cluster's shared storage, and must be
able to ``import preprocess``. ``scheduler`` is an address (``tcp://host:8786``), a scheduler JSON file,
``"local"`` for a :class:`distributed.LocalCluster` of ``jobs`` one-thread worker processes, or
``"slurm"`` for a :class:`dask_jobqueue.SLURMCluster` (its settings from dask-jobqueue's own config
file, ``~/.config/dask/jobqueue.yaml``) scaled to ``jobs`` workers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .errors import MissingDependencyError, ParameterError, SonomapError
from .progress import CancelCheck, Progress, check_cancel

RETRIES = 2


def _call(fn: Callable[..., Any], args: tuple) -> Any:
    """Run ``fn(*args)`` on a worker with torch on one thread, as the local pool does (identical bytes)."""
    try:
        import torch
    except ImportError:  # pragma: no cover
        return fn(*args)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return fn(*args)
    finally:
        torch.set_num_threads(threads)


class DaskPool:
    """``with DaskPool("tcp://host:8786") as pool: pool.run(fn, args_list, ...)``; connects on entry."""

    def __init__(self, scheduler: str, *, jobs: int = 2, retries: int = RETRIES) -> None:
        self.scheduler = str(scheduler)
        self.jobs = max(1, int(jobs))
        self.retries = int(retries)
        self.client: Any = None
        self._cluster: Any = None

    def __enter__(self) -> DaskPool:
        try:
            from distributed import Client, LocalCluster
        except ImportError as e:  # pragma: no cover - an optional extra
            raise MissingDependencyError("--scheduler needs dask.distributed (pip install distributed)") from e
        where = self.scheduler
        try:
            if where == "local":
                self._cluster = LocalCluster(
                    n_workers=self.jobs, threads_per_worker=1, processes=True, dashboard_address=None
                )
                self.client = Client(self._cluster)
            elif where == "slurm":
                try:
                    from dask_jobqueue import SLURMCluster
                except ImportError as e:  # pragma: no cover
                    raise MissingDependencyError("--scheduler slurm needs dask-jobqueue") from e
                self._cluster = SLURMCluster()
                self._cluster.scale(jobs=self.jobs)
                self.client = Client(self._cluster)
            elif where.endswith(".json") and Path(where).is_file():
                self.client = Client(scheduler_file=where, timeout="30s")
            elif "://" in where or ":" in where:
                self.client = Client(where, timeout="30s")
            else:
                raise ParameterError(
                    f"--scheduler {where}: give an address (tcp://host:8786), a scheduler JSON file, 'local' or 'slurm'"
                )
        except OSError as e:
            self.__exit__(None, None, None)
            raise SonomapError(f"cannot reach the Dask scheduler at {where}: {e}") from None
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None

    def workers(self) -> int:
        """Workers connected now."""
        return len(self.client.scheduler_info(n_workers=-1)["workers"]) if self.client is not None else 0

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
        """``[fn(*t) for t in tasks]`` as Dask tasks (results in task order); same contract as ``TaskPool.run``."""
        from distributed import as_completed
        from distributed.scheduler import KilledWorker

        if self.client is None:
            raise SonomapError("DaskPool.run outside its with-block")
        total = len(tasks) + done if total is None else total
        results: list[Any] = [None] * len(tasks)
        progress(stage, done, total, "")
        if not tasks:
            return results
        call = _call if uses_torch else _plain
        futures = [self.client.submit(call, fn, tuple(t), pure=False, retries=self.retries) for t in tasks]
        index = {f.key: i for i, f in enumerate(futures)}
        finished = 0
        try:
            for fut in as_completed(futures):
                i = index[fut.key]
                try:
                    res = fut.result()
                except KilledWorker:
                    what = label(i) if label else f"task {i}"
                    raise SonomapError(
                        f"Dask workers died repeatedly during {stage} (near {what}), probably out of memory; "
                        "run the same command again to resume, with more memory per worker"
                    ) from None
                results[i] = res
                if on_result is not None:
                    on_result(i, res)
                finished += 1
                progress(stage, done + finished, total, label(i) if label else "")
                check_cancel(should_cancel)
        finally:
            pending = [f for f in futures if not f.done()]
            if pending:
                self.client.cancel(pending)
        return results


def _plain(fn: Callable[..., Any], args: tuple) -> Any:
    return fn(*args)
