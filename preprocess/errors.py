"""The small exception hierarchy of sonomap's core.

Every error the core raises on purpose is a :class:`SonomapError`. Each edge translates
it once: the CLI prints ``error: <message>`` and exits non-zero, the server answers
``{ok: false, error, status}``, socket jobs emit ``job:error``. The classes carry no HTTP status: the server
maps class to status in ``server/errors.py``.
"""

from __future__ import annotations


class SonomapError(Exception):
    """Base class of every error sonomap raises on purpose."""


class ParameterError(SonomapError, ValueError):
    """A parameter is out of range, of the wrong type or unknown; the message says what is allowed."""


class NotFoundError(SonomapError, LookupError):
    """A collection, feature set, reduction, clip or class does not exist."""


class CollectionError(SonomapError):
    """A collection is missing a stage it needs, or its files disagree with its manifest."""


class AudioError(SonomapError):
    """A file could not be decoded as audio (corrupt, truncated, empty, not audio)."""


class MissingDependencyError(SonomapError, ImportError):
    """An optional package is not installed; the message names what to install."""


class Cancelled(SonomapError):
    """Work was cancelled through its ``should_cancel`` callback."""
