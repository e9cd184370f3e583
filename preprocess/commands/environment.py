"""What the edges (the CLI, the server's entry point) take from the process environment; the core takes none.

The core never reads ``os.environ``: whatever it needs comes in as arguments. This module belongs to
the CLI layer; the server's entry point may call it too.
"""

from __future__ import annotations

import os
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]


def ensure_numba_cache() -> str:
    """Give numba a persistent cache folder (unless NUMBA_CACHE_DIR is set) before umap is imported.

    ``<repo>/.numba_cache`` when writable, else ``~/.cache/sonomap/numba``; returns the folder ("" if none).
    Set in the environment, so worker processes started later use it too.
    """
    if os.environ.get("NUMBA_CACHE_DIR"):
        return os.environ["NUMBA_CACHE_DIR"]
    for candidate in (_REPO / ".numba_cache", Path.home() / ".cache/sonomap/numba"):
        try:
            candidate.mkdir(parents=True, exist_ok=True)
            if os.access(candidate, os.W_OK):
                os.environ["NUMBA_CACHE_DIR"] = str(candidate)
                return str(candidate)
        except OSError:
            continue
    return ""
