"""The small exception hierarchy of sonomap's core.

Every error the core raises on purpose is a :class:`SonomapError`. Each edge translates
it once: the CLI prints ``error: <message>`` and exits non-zero, the server answers
``{ok: false, error, status}``, socket jobs emit ``job:error``.
"""

from __future__ import annotations


class SonomapError(Exception):
    """Base class of every error sonomap raises on purpose."""

    status = 400


class ParameterError(SonomapError, ValueError):
    """A parameter is out of range, of the wrong type or unknown; the message says what is allowed."""

    status = 400


class NotFoundError(SonomapError, LookupError):
    """A collection, feature set, reduction, clip or class does not exist."""

    status = 404


class CollectionError(SonomapError):
    """A collection is missing a stage it needs, or its files disagree with its manifest."""

    status = 409


class AudioError(SonomapError):
    """A file could not be decoded as audio (corrupt, truncated, empty, not audio)."""

    status = 422


class MissingDependencyError(SonomapError, ImportError):
    """An optional package is not installed; the message names what to install."""

    status = 501


class Cancelled(SonomapError):
    """Work was cancelled through its ``should_cancel`` callback."""

    status = 499
