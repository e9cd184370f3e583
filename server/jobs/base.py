"""The one job framework: ids, supersede, cancel, finish-once, monotonic progress, disconnect and error translation.

A *kind* of job is a small :class:`JobKind` subclass (``cluster``, ``preprocess``, ``remap``, …) registered on the
one :class:`JobRunner`. The runner owns everything the kinds share::

    ack = runner.submit("cluster", sid, payload)   # {ok, job_id, …} or the error shape of server/errors.py
    runner.cancel(sid, job_id)                     # any kind; job:cancelled follows
    runner.disconnect(sid)                         # cancels the client's jobs whose kind says so

Every job ends with exactly one of ``job:result`` / ``job:error`` / ``job:cancelled`` (finish-once). Progress is
``job:progress {job_id, stage, done, total, fraction, message, eta_s, …kind fields}``; ``fraction`` is the whole
job's share done, mapped through the kind's stage table, and never decreases. Errors go through
:func:`server.errors.translate`: expected errors keep their message, unexpected ones say "internal error (id …)".
Work runs in ``socketio.start_background_task``; handlers only validate and start.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from preprocess.errors import Cancelled, NotFoundError

from .. import protocol
from ..errors import translate

ProgressFn = Callable[..., None]  # (stage, done, total, message="") like preprocess.progress.Progress


@dataclass
class Job:
    """One running job. ``request`` is what the kind's ``validate`` returned; ``meta`` is the kind's scratch space."""

    id: str
    kind: str
    sid: str
    request: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)
    cancelled: threading.Event = field(default_factory=threading.Event)
    finished: bool = False
    fraction: float = 0.0
    stage: str = ""
    started: float = field(default_factory=time.monotonic)
    emit: Callable[..., None] = field(default=lambda *a, **k: None, repr=False)  # emit(event, payload, **kw) to sid

    def should_cancel(self) -> bool:
        """The ``should_cancel`` callback to hand to the core."""
        return self.cancelled.is_set()


class JobKind:
    """Base class of a job kind. A subclass declares ``name`` and ``stages`` and implements ``validate`` and ``run``.

    ``stages``: ``(stage, weight)`` pairs in the order the work reports them; stage ``s`` covers the share
    ``weight / sum(weights)`` of the bar, after the stages before it. A reported stage ``"features:birdnet"`` counts
    as ``"features"`` (see :meth:`stage_key`); a stage not in the table does not move the bar.
    """

    name: ClassVar[str] = ""  # event name of the request and ``kind`` of its job:result
    id_prefix: ClassVar[str] = "j"
    stages: ClassVar[Sequence[tuple[str, float]]] = ()
    supersede: ClassVar[bool] = True  # a new job of this kind from the same client cancels the previous one
    cancel_on_disconnect: ClassVar[bool] = True

    _table: dict[str, tuple[float, float]]

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        total = float(sum(w for _, w in cls.stages)) or 1.0
        table, lo = {}, 0.0
        for stage, weight in cls.stages:
            table[stage] = (lo, lo + weight / total)
            lo += weight / total
        cls._table = table

    # to implement ----------------------------------------------------------------------------
    def validate(self, sid: str, payload: Any) -> dict[str, Any]:
        """The normalised request, or raise a ``SonomapError`` saying what is allowed (becomes the error ack)."""
        raise NotImplementedError

    def run(self, job: Job, progress: ProgressFn) -> dict[str, Any]:
        """Do the work (in a background task); return the ``job:result`` payload (``job_id`` and ``kind`` added).

        Call ``progress(stage, done, total, message)``, pass ``job.should_cancel`` to the core (it raises
        ``Cancelled``), and ``job.emit(event, payload)`` for kind-specific events.
        """
        raise NotImplementedError

    # optional hooks ----------------------------------------------------------------------------
    def prepare(self, job: Job) -> dict[str, Any] | None:
        """Called at submit, before the work starts: a ready result (e.g. from a cache) ends the job at once."""
        return None

    def ack_fields(self, job: Job) -> dict[str, Any]:
        """Extra fields of the success ack."""
        return {}

    def error_fields(self, payload: Any, e: BaseException) -> dict[str, Any]:
        """Extra fields of the error ack (e.g. ``allowed``)."""
        return {}

    def progress_fields(self, job: Job, stage: str, done: int, total: int, message: str) -> dict[str, Any]:
        """Extra fields of each ``job:progress``."""
        return {}

    def finished(self, job: Job, outcome: str) -> None:
        """Called once when the job ends, just before its last event: ``outcome`` is ``"result"``, ``"error"`` or
        ``"cancelled"``."""

    def stage_key(self, stage: str) -> str:
        return stage.split(":", 1)[0]

    def fraction(self, stage: str, done: int, total: int) -> float | None:
        """Where ``done / total`` of ``stage`` lies on the whole bar (None: a stage not in the table)."""
        span = self._table.get(self.stage_key(stage))
        if span is None:
            return None
        lo, hi = span
        return lo + (hi - lo) * (min(max(done / total, 0.0), 1.0) if total else 1.0)


class JobRunner:
    """Runs jobs of every registered kind for socket clients (see the module docstring)."""

    def __init__(self, socketio: Any) -> None:
        self.socketio = socketio
        self.kinds: dict[str, JobKind] = {}
        self._jobs: dict[str, Job] = {}
        self._current: dict[tuple[str, str], str] = {}  # (sid, kind) -> job id
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    def register(self, kind: JobKind) -> JobKind:
        if not kind.name or kind.name in self.kinds:
            raise ValueError(f"job kind {kind.name!r} needs a unique name")
        self.kinds[kind.name] = kind
        return kind

    # requests ----------------------------------------------------------------------------------
    def submit(self, kind_name: str, sid: str, payload: Any) -> dict[str, Any]:
        """Validate and start a job of ``kind_name``; return the socket ack (``{ok, job_id, …}`` or an error)."""
        kind = self.kinds[kind_name]
        try:
            request = kind.validate(sid, payload)
        except Exception as e:  # noqa: BLE001 - translated: expected errors say what is allowed, others get an id
            return translate(e, context=f"{kind_name} request").body(**kind.error_fields(payload, e))
        job = Job(id=f"{kind.id_prefix}{next(self._ids)}", kind=kind_name, sid=sid, request=request)
        job.emit = lambda event, data, **kw: self.socketio.emit(event, data, **({"to": job.sid} | kw))
        with self._lock:
            previous = self._jobs.get(self._current.get((sid, kind_name), "")) if kind.supersede else None
            self._current[(sid, kind_name)] = job.id
            self._jobs[job.id] = job
        if previous is not None:
            self._cancel(previous, notify=True)
        try:
            ready = kind.prepare(job)
        except Exception as e:  # noqa: BLE001
            self._finish(job)
            return translate(e, context=f"{kind_name} job {job.id}").body(**kind.error_fields(payload, e))
        if ready is not None:
            self.socketio.start_background_task(self._emit_ready, kind, job, ready)
        else:
            self.socketio.start_background_task(self._run, kind, job)
        return {"ok": True, "job_id": job.id, **kind.ack_fields(job)}

    def cancel(self, sid: str, job_id: Any) -> dict[str, Any]:
        """Cancel ``sid``'s job ``job_id`` of any kind; ``job:cancelled`` follows."""
        job = self._jobs.get(job_id) if isinstance(job_id, str) else None
        if job is None or job.sid != sid:
            return translate(NotFoundError(f"no job {str(job_id)[:40]!r} of yours is running")).body()
        self._cancel(job, notify=True)
        return {"ok": True}

    def disconnect(self, sid: str) -> None:
        """Free the work of a client that left (kinds with ``cancel_on_disconnect``); no events are sent."""
        with self._lock:
            mine = [j for j in self._jobs.values() if j.sid == sid and self.kinds[j.kind].cancel_on_disconnect]
            for key in [k for k in self._current if k[0] == sid]:
                self._current.pop(key, None)
        for job in mine:
            self._cancel(job, notify=False)

    def running(self, sid: str | None = None, kind: str | None = None) -> list[Job]:
        """The jobs still running (of one client and / or kind)."""
        with self._lock:
            return [
                j for j in self._jobs.values() if (sid is None or j.sid == sid) and (kind is None or j.kind == kind)
            ]

    # internals ---------------------------------------------------------------------------------
    def _finish(self, job: Job) -> bool:
        """Mark ``job`` finished; True for the one caller that got to do it (each job ends with one event)."""
        with self._lock:
            if job.finished:
                return False
            job.finished = True
            self._jobs.pop(job.id, None)
            if self._current.get((job.sid, job.kind)) == job.id:
                self._current.pop((job.sid, job.kind), None)
            return True

    def _cancel(self, job: Job, *, notify: bool) -> None:
        job.cancelled.set()
        if self._finish(job):
            self._ended(job, "cancelled")
            if notify:
                job.emit(protocol.JOB_CANCELLED, {"job_id": job.id})

    def _ended(self, job: Job, outcome: str) -> None:
        """The kind's clean-up, before the job's last event: a client that gets it sees the settled state."""
        try:
            self.kinds[job.kind].finished(job, outcome)
        except Exception as e:  # noqa: BLE001 - a cleanup hook must not take the server down
            translate(e, context=f"{job.kind} job {job.id} clean-up")

    def _progress(self, kind: JobKind, job: Job) -> ProgressFn:
        def report(stage: str, done: int, total: int, message: str = "") -> None:
            if job.cancelled.is_set() or job.finished:
                return
            frac = kind.fraction(stage, done, total)
            if frac is not None:
                job.fraction = max(job.fraction, min(frac, 1.0))
            job.stage = stage
            elapsed = time.monotonic() - job.started
            # an honest ETA: only once there is enough of the bar to extrapolate from
            eta = round(elapsed * (1.0 - job.fraction) / job.fraction, 1) if job.fraction >= 0.05 else None
            payload = {
                "job_id": job.id,
                "stage": stage,
                "done": int(done),
                "total": int(total),
                "fraction": round(job.fraction, 4),
                "message": message,
                "eta_s": eta,
                **kind.progress_fields(job, stage, done, total, message),
            }
            job.emit(protocol.JOB_PROGRESS, payload)

        return report

    def _emit_ready(self, kind: JobKind, job: Job, result: dict[str, Any]) -> None:
        self.socketio.sleep(0)
        if self._finish(job):
            self._ended(job, "result")
            job.emit(protocol.JOB_RESULT, {"kind": kind.name, **result, "job_id": job.id})

    def _run(self, kind: JobKind, job: Job) -> None:
        try:
            if job.should_cancel():
                raise Cancelled("cancelled")
            result = kind.run(job, self._progress(kind, job))
        except Cancelled:
            self._cancel(job, notify=True)
            return
        except Exception as e:  # noqa: BLE001 - never a traceback to the browser; the server keeps serving
            reply = translate(e, context=f"{kind.name} job {job.id}")
            if self._finish(job):
                body = {"job_id": job.id, "error": reply.message, "status": reply.status}
                if reply.error_id:
                    body["error_id"] = reply.error_id
                self._ended(job, "error")
                job.emit(protocol.JOB_ERROR, body)
            return
        if self._finish(job):
            self._ended(job, "result")
            job.emit(protocol.JOB_RESULT, {"kind": kind.name, **result, "job_id": job.id})
