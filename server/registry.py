"""The collections the server knows: found in one folder, opened lazily, arrays cached in memory.

``registry.get(name)`` returns a :class:`preprocess.collection.Collection` or raises ``NotFoundError``; a folder that
appears later (a build finished) is found on the next lookup. Loaded arrays (reduced coordinates, their
:class:`preprocess.cluster.Clusterer` with its density trees, the clip table) are cached and dropped when the file
they came from changes (size or modification time), so an incremental build is picked up without a restart.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from preprocess.collection import MANIFEST, Collection, check_name
from preprocess.errors import NotFoundError, ParameterError


def _stamp(*paths: Path) -> tuple:
    """Identity of files' current contents (size, mtime_ns); missing files count too."""
    out = []
    for p in paths:
        try:
            st = p.stat()
            out.append((str(p), st.st_size, st.st_mtime_ns))
        except OSError:
            out.append((str(p), None, None))
    return tuple(out)


class Registry:
    """Collections in ``root`` (each a sub-folder with a manifest) plus an LRU cache of what was loaded from them."""

    def __init__(self, root: Path | str, *, max_cached: int = 24, max_clusterers: int = 4):
        self.root = Path(root).resolve()
        self._limits = {"data": max_cached, "clusterer": max_clusterers}
        self._collections: dict[str, Collection] = {}
        self._caches: dict[str, OrderedDict[tuple, tuple[tuple, Any]]] = {k: OrderedDict() for k in self._limits}
        self._lock = threading.RLock()
        self._key_locks: dict[tuple, threading.Lock] = {}

    # collections ----------------------------------------------------------------------------------
    def refresh(self) -> list[str]:
        """Rescan the folder; return the sorted collection names."""
        found: dict[str, Collection] = {}
        if self.root.is_dir():
            for p in sorted(self.root.iterdir()):
                if p.is_dir() and (p / MANIFEST).is_file() and not p.name.startswith("."):
                    found[p.name] = self._collections.get(p.name) or Collection(p)
        with self._lock:
            self._collections = found
        return sorted(found)

    def names(self) -> list[str]:
        return self.refresh()

    def get(self, name: str) -> Collection:
        """The collection called ``name``; NotFoundError (listing what exists) if there is none."""
        try:
            check_name(name, what="collection name")
        except ParameterError:
            raise NotFoundError(
                f"collection {name!r} not found; available: {', '.join(self.names()) or 'none'}"
            ) from None
        c = self._collections.get(name)
        if c is not None and c.manifest_path.is_file():
            return c
        if name not in self.refresh():
            raise NotFoundError(f"collection {name!r} not found; available: {', '.join(self.names()) or 'none'}")
        return self._collections[name]

    def __iter__(self):
        return iter(self.get(n) for n in self.names())

    def __contains__(self, name: str) -> bool:
        try:
            self.get(name)
            return True
        except NotFoundError:
            return False

    # cached loads ---------------------------------------------------------------------------------
    def cached(self, key: tuple, files: list[Path], load: Callable[[], Any], *, pool: str = "data") -> Any:
        """Return ``load()``, cached under ``key`` until one of ``files`` changes. One load per key at a time.

        ``pool``: "data" (arrays, tables, encoded bodies) or "clusterer" (density trees: few, and kept apart so
        loading tables never evicts a tree that took seconds to build).
        """
        stamp = _stamp(*files)
        cache = self._caches[pool]
        with self._lock:
            hit = cache.get(key)
            if hit is not None and hit[0] == stamp:
                cache.move_to_end(key)
                return hit[1]
            lock = self._key_locks.setdefault(key, threading.Lock())
        with lock:
            with self._lock:
                hit = cache.get(key)
                if hit is not None and hit[0] == stamp:
                    return hit[1]
            value = load()
            with self._lock:
                cache[key] = (stamp, value)
                cache.move_to_end(key)
                while len(cache) > self._limits[pool]:
                    cache.popitem(last=False)
            return value

    def reduction_key(self, name: str, features: Any) -> str:
        """``"birdnet"`` or ``["birdnet", "saec"]`` -> reduction key ``birdnet+saec``; 404 when unknown."""
        c = self.get(name)
        if isinstance(features, str):
            features = features.split("+")
        if not isinstance(features, (list, tuple)) or not features or not all(isinstance(f, str) for f in features):
            raise ParameterError('features must be a feature-set name or a list of names, e.g. "birdnet"')
        available = c.feature_sets()
        for f in features:
            if f not in available:
                raise NotFoundError(
                    f"feature set {f!r} not found in {name}; available: {', '.join(available) or 'none'}"
                )
        key = "+".join(features)
        if key not in c.reductions():
            raise NotFoundError(
                f"no reduction {key!r} in {name} (run: python -m preprocess reduce); "
                f"available: {', '.join(c.reductions()) or 'none'}"
            )
        return key

    def coords(self, name: str, key: str, dims: int) -> np.ndarray:
        """float32 [n, dims] reduced coordinates (dims 2 falls back to the display map); cached."""
        c = self.get(name)
        meta = c.reduction_meta(key)
        allowed = sorted({int(d) for d in meta.get("dims", [])} | {2})
        if isinstance(dims, bool) or not isinstance(dims, int) or dims not in allowed:
            raise ParameterError(f"dims must be one of {allowed} for reduction {key!r}, got {dims!r}")
        path = c.coords_path(key, dims)
        if not path.is_file():
            raise NotFoundError(f"reduction {key!r} has no {dims}-d coordinates; available dims: {meta.get('dims')}")
        return self.cached(("coords", name, key, dims), [path], lambda: np.ascontiguousarray(np.load(path), np.float32))

    def clusterer(self, name: str, key: str, dims: int):
        """The :class:`preprocess.cluster.Clusterer` of those coordinates (keeps its density trees); cached."""
        from preprocess.cluster import Clusterer

        X = self.coords(name, key, dims)
        c = self.get(name)
        path = c.reduced_path(key, dims) if c.reduced_path(key, dims).is_file() else c.map_path(key)
        return self.cached(("clusterer", name, key, dims), [path], lambda: Clusterer(X), pool="clusterer")

    def data_version(self, name: str, key: str, dims: int) -> tuple:
        """Changes whenever the coordinates file changes (part of result cache keys)."""
        c = self.get(name)
        return _stamp(c.reduced_path(key, dims), c.map_path(key))
