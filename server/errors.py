"""One error policy for every edge of the server: REST answers, socket acks and ``job:error``.

``translate(e)`` turns any exception into an :class:`ErrorReply` ``(status, message, error_id)``:

- an *expected* error (a :class:`preprocess.errors.SonomapError`) keeps its message, which says what is wrong and
  what is allowed; its HTTP status comes from :data:`STATUS_BY_CLASS` (the core's exceptions carry no status);
- an *unexpected* one (anything else) becomes ``"internal error (id …); see the server log"``: the id and the
  traceback are logged, the exception text never reaches the client.

Every message that reaches a client goes through :func:`clean`, which strips absolute server paths down to their
last component (``/home/me/collections/birds/clips.parquet`` → ``clips.parquet``).
"""

from __future__ import annotations

import logging
import re
import secrets
from dataclasses import dataclass
from typing import Any

from preprocess.errors import (
    AudioError,
    Cancelled,
    CollectionError,
    MissingDependencyError,
    NotFoundError,
    ParameterError,
    SonomapError,
)
from preprocess.uploads import QuotaExceeded, UploadError, UploadTooLarge

log = logging.getLogger("server.errors")

#: HTTP status of each expected error class; the most specific class in an exception's MRO wins.
STATUS_BY_CLASS: dict[type[BaseException], int] = {
    SonomapError: 400,
    ParameterError: 400,
    UploadError: 400,
    UploadTooLarge: 413,
    QuotaExceeded: 413,
    NotFoundError: 404,
    CollectionError: 409,
    AudioError: 422,
    Cancelled: 499,
    MissingDependencyError: 501,
}

# absolute POSIX paths (two or more parts) and Windows drive paths; the last part is kept
_POSIX_PATH = re.compile(r"(?<![\w.~:/])/(?:[^\s'\"/:,;()\[\]{}<>]+/)+([^\s'\"/:,;()\[\]{}<>]*)")
_WINDOWS_PATH = re.compile(r"\b[A-Za-z]:\\(?:[^\s'\"\\:,;()<>]+\\)*([^\s'\"\\:,;()<>]*)")


@dataclass(frozen=True)
class ErrorReply:
    """What a client is told: HTTP-like ``status``, a ``message`` fit to show, and the log ``error_id`` (unexpected)."""

    status: int
    message: str
    error_id: str | None = None

    def body(self, **extra: Any) -> dict[str, Any]:
        """The one JSON error shape ``{ok: false, error, status[, error_id]}`` (REST bodies and socket acks)."""
        out: dict[str, Any] = {"ok": False, "error": self.message, "status": self.status}
        if self.error_id:
            out["error_id"] = self.error_id
        out.update(extra)
        return out


def status_of(e: BaseException) -> int:
    """The HTTP status of an expected error (most specific class in :data:`STATUS_BY_CLASS`); 500 otherwise."""
    for cls in type(e).__mro__:
        if cls in STATUS_BY_CLASS:
            return STATUS_BY_CLASS[cls]
    return 500


def clean(message: str) -> str:
    """``message`` without absolute server paths (each becomes its last component)."""
    message = _POSIX_PATH.sub(lambda m: m.group(1) or "…", message)
    return _WINDOWS_PATH.sub(lambda m: m.group(1) or "…", message)


def translate(e: BaseException, *, context: str = "") -> ErrorReply:
    """The reply for ``e`` under the one policy (see module docstring); logs unexpected errors with an id.

    ``context`` names what failed in the log line (``"cluster job j3"``, ``"GET /api/…"``).
    """
    if isinstance(e, SonomapError):
        return ErrorReply(status_of(e), clean(str(e)) or type(e).__name__)
    error_id = secrets.token_hex(4)
    log.error("internal error %s in %s", error_id, context or "request", exc_info=(type(e), e, e.__traceback__))
    return ErrorReply(500, f"internal error (id {error_id}); see the server log", error_id)


def reply_for(e: BaseException, *, context: str = "", **extra: Any) -> dict[str, Any]:
    """Shortcut: ``translate(e).body(**extra)`` (a socket ack)."""
    return translate(e, context=context).body(**extra)
