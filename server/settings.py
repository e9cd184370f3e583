"""Server settings: one frozen dataclass, the only place in sonomap that reads the environment."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path

_REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Settings:
    """Everything the server needs to know, with defaults.

    collections_dir: folder whose sub-folders are collections (each with a manifest.json).
    host / port: where to listen; localhost by default, so nothing is exposed to the network.
    static_dir: the browser app (index.html, dist/ bundle).
    warmup: compile numba code (fast_hdbscan, pynndescent, UMAP) in the background at start.
    warmup_umap: include UMAP / pynndescent in the warm-up (only fast_hdbscan is needed to cluster).
    result_cache_size: cluster results kept per server (keyed by parameters).
    max_cached_arrays: loaded arrays / tables / encoded bodies kept in memory (LRU).
    max_clusterers: coordinate sets whose density trees are kept (each holds up to 3 trees).
    asset_max_age_s: Cache-Control max-age for sprites, audio and content-hashed bundle files.
    secret_key: Flask secret; ``None``: a random key kept in the collections folder (mode 0600).
    max_upload_mb: largest file (or zip) accepted from the browser.
    token: the access token (random per start unless given); every request needs it when ``auth`` is on.
    auth: require the token (``--no-token`` turns it off, refused beyond localhost).
    allowed_hosts: Host names accepted besides localhost, 127.0.0.1, [::1] and the bound address.
    read_only: serve maps and audio, refuse every change (403).
    max_json_mb / max_form_mb: largest JSON body / form body (the labels import) accepted (413 beyond).
    server: ``gunicorn`` (production: one worker, ``threads`` threads) or ``werkzeug`` (the development server).
    numba_cache_dir: where numba keeps compiled code between starts (NUMBA_CACHE_DIR).
    """

    collections_dir: Path
    host: str = "127.0.0.1"
    port: int = 5000
    static_dir: Path = field(default=_REPO_ROOT / "static")
    warmup: bool = True
    warmup_umap: bool = True
    result_cache_size: int = 32
    max_cached_arrays: int = 24
    max_clusterers: int = 4
    asset_max_age_s: int = 7 * 24 * 3600
    secret_key: str | None = None
    max_upload_mb: int = 2048  # largest file (or zip) a browser may upload, in MB
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    auth: bool = True
    allowed_hosts: tuple[str, ...] = ()
    read_only: bool = False
    max_json_mb: int = 16
    max_form_mb: int = 256
    server: str = "gunicorn"
    threads: int = 100
    numba_cache_dir: Path = field(default=_REPO_ROOT / ".numba_cache")

    @classmethod
    def from_env(cls, collections_dir: Path | str | None = None, **overrides) -> Settings:
        """Settings from ``SONOMAP_*`` environment variables, then ``overrides`` (command-line) on top."""
        env = os.environ
        values: dict = {}
        if "SONOMAP_COLLECTIONS" in env:
            values["collections_dir"] = Path(env["SONOMAP_COLLECTIONS"])
        if "SONOMAP_HOST" in env:
            values["host"] = env["SONOMAP_HOST"]
        if "SONOMAP_PORT" in env:
            values["port"] = int(env["SONOMAP_PORT"])
        if "SONOMAP_STATIC" in env:
            values["static_dir"] = Path(env["SONOMAP_STATIC"])
        if "SONOMAP_WARMUP" in env:
            values["warmup"] = env["SONOMAP_WARMUP"].lower() not in ("0", "false", "no", "off")
        if "SONOMAP_MAX_UPLOAD_MB" in env:
            values["max_upload_mb"] = int(env["SONOMAP_MAX_UPLOAD_MB"])
        if "SONOMAP_SECRET_KEY" in env:
            values["secret_key"] = env["SONOMAP_SECRET_KEY"]
        if env.get("SONOMAP_TOKEN"):
            values["token"] = env["SONOMAP_TOKEN"]
        if "SONOMAP_ALLOW_HOSTS" in env:
            values["allowed_hosts"] = tuple(h for h in env["SONOMAP_ALLOW_HOSTS"].split(",") if h.strip())
        if env.get("NUMBA_CACHE_DIR"):
            values["numba_cache_dir"] = Path(env["NUMBA_CACHE_DIR"])
        if collections_dir is not None:
            values["collections_dir"] = Path(collections_dir)
        values.update({k: v for k, v in overrides.items() if v is not None})
        if "collections_dir" not in values:
            raise ValueError("no collections folder: pass --collections DIR or set SONOMAP_COLLECTIONS")
        return cls(**values)

    def with_(self, **changes) -> Settings:
        return replace(self, **changes)

    def apply_numba_cache(self) -> None:
        """Point numba at a persistent cache (before anything imports numba): compile once, not every start."""
        if os.environ.get("NUMBA_CACHE_DIR"):
            return
        for candidate in (self.numba_cache_dir, Path.home() / ".cache" / "sonomap" / "numba"):
            try:
                candidate.mkdir(parents=True, exist_ok=True)
            except OSError:
                continue
            if os.access(candidate, os.W_OK):
                os.environ["NUMBA_CACHE_DIR"] = str(candidate)
                return
