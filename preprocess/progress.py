"""Progress and cancellation callbacks passed into the core.

The core never prints. Long functions take ``progress: Progress | None`` and call
``progress(stage, done, total, message)``; the CLI plugs in tqdm, the server plugs in
socket emits. ``should_cancel`` is a zero-argument callable; when it returns True the
core raises :class:`preprocess.errors.Cancelled` at the next safe point.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from .errors import Cancelled


class Progress(Protocol):
    def __call__(self, stage: str, done: int, total: int, message: str = "") -> None: ...


CancelCheck = Callable[[], bool]


def no_progress(stage: str, done: int, total: int, message: str = "") -> None:
    """A progress callback that does nothing."""


def check_cancel(should_cancel: CancelCheck | None) -> None:
    """Raise :class:`Cancelled` if ``should_cancel`` says so."""
    if should_cancel is not None and should_cancel():
        raise Cancelled("cancelled")
