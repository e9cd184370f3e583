"""``python -m server --collections DIR [--host 127.0.0.1] [--port 5000]``: serve every collection in DIR.

Prints ``http://127.0.0.1:5000/?token=…`` (as Jupyter does); the page keeps the token in a cookie. Served by
gunicorn with one worker and many threads, as Flask-SocketIO recommends for its threading mode (WebSocket through
simple-websocket); ``--server werkzeug`` is the development server.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from .security import is_loopback, url_with_token
from .settings import Settings

_BANNER = "=" * 78


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m server", description="Serve sonomap collections to the browser.")
    parser.add_argument("--collections", help="folder whose sub-folders are collections (or SONOMAP_COLLECTIONS)")
    parser.add_argument("--host", default=None, help="address to listen on (default 127.0.0.1: this computer only)")
    parser.add_argument("--port", type=int, default=None, help="port (default 5000)")
    parser.add_argument("--no-warmup", action="store_true", help="skip compiling numba code in the background at start")
    parser.add_argument("--token", default=None, help="the access token (default: random per start, or SONOMAP_TOKEN)")
    parser.add_argument(
        "--no-token", action="store_true", help="no token: any program on this computer may use the server"
    )
    parser.add_argument(
        "--allow-host", action="append", default=None, metavar="NAME", help="also accept this Host name (repeatable)"
    )
    parser.add_argument("--read-only", action="store_true", help="serve maps and audio; refuse every change")
    parser.add_argument(
        "--server", choices=("gunicorn", "werkzeug"), default=None, help="gunicorn (default) or Werkzeug's dev server"
    )
    parser.add_argument("--threads", type=int, default=None, help="gunicorn threads (default 100)")
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "warmup": False if args.no_warmup else None,
        "token": args.token,
        "auth": False if args.no_token else None,
        "allowed_hosts": tuple(args.allow_host) if args.allow_host else None,
        "read_only": True if args.read_only else None,
        "server": args.server,
        "threads": args.threads,
    }
    return Settings.from_env(args.collections, **overrides)


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "::", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _announce(settings: Settings) -> None:
    token = settings.token if settings.auth else None
    url = url_with_token(f"http://{_url_host(settings.host)}:{settings.port}", token)
    lines = [_BANNER, "sonomap is running. Open this URL in your browser:", "", f"    {url}", ""]
    if not settings.auth:
        lines.append("WARNING: --no-token: every program and web page on this computer can reach the server's API.")
    if not is_loopback(settings.host):
        lines += [
            f"WARNING: listening on {settings.host}, beyond this computer: anyone on the network who has the token",
            "can use the server. Names other than IP addresses must be added with --allow-host NAME.",
        ]
    if settings.read_only:
        lines.append("Read-only: maps and audio are served; changes are refused.")
    print("\n".join([*lines, _BANNER]), flush=True)


def _serve_gunicorn(settings: Settings) -> None:
    from gunicorn.app.base import BaseApplication

    class _App(BaseApplication):
        def load_config(self) -> None:
            bind_host = _url_host(settings.host) if settings.host not in ("0.0.0.0", "::") else settings.host
            bind_host = f"[{settings.host}]" if settings.host == "::" else bind_host
            options = {
                "bind": f"{bind_host}:{settings.port}",
                "workers": 1,  # Socket.IO keeps state per process: one worker, many threads
                "worker_class": "gthread",
                "threads": settings.threads,
                "timeout": 120,
                "graceful_timeout": 5,
                "keepalive": 5,
                "accesslog": None,
                "errorlog": "-",
                "loglevel": "info",
                "proc_name": "sonomap",
                "control_socket_disable": True,
            }
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            return _build(settings)  # in the worker: background threads must start after the fork

    _App().run()


def _build(settings: Settings) -> Any:
    from .app import create_app

    app, _socketio = create_app(settings)
    names = app.extensions["sonomap"]["registry"].names()
    print(f"sonomap: {len(names)} collection(s) in {settings.collections_dir}: {', '.join(names) or 'none yet'}")
    return app


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = _settings(args)
    except ValueError as e:
        parser.error(str(e))
    if not settings.auth and not is_loopback(settings.host):
        parser.error(f"--no-token is refused when listening on {settings.host}: beyond this computer a token is needed")
    settings.apply_numba_cache()  # before anything imports numba
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not settings.collections_dir.is_dir():
        print(f"error: collections folder {settings.collections_dir} does not exist", file=sys.stderr)
        return 2
    _announce(settings)
    if settings.server == "werkzeug":
        from .app import create_app

        app, socketio = create_app(settings)
        socketio.run(app, host=settings.host, port=settings.port, allow_unsafe_werkzeug=True, use_reloader=False)
    else:
        _serve_gunicorn(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
