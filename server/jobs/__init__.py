"""Background jobs: one framework (:mod:`.base`), one small class per kind (``cluster``, ``preprocess``, ``remap``).

Adding a kind: subclass :class:`JobKind` (``name``, ``stages``, ``validate``, ``run``), ``runner.register(Kind(...))``
and bind its request event to ``runner.submit(Kind.name, sid, payload)``; see docs/ARCHITECTURE.md "Jobs".
"""

from .base import Job, JobKind, JobRunner, ProgressFn
from .cluster import ClusterKind

__all__ = ["ClusterKind", "Job", "JobKind", "JobRunner", "ProgressFn"]
