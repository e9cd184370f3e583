"""``python -m server --collections DIR [--host 127.0.0.1] [--port 5000]``: serve every collection in DIR."""

from __future__ import annotations

import argparse
import logging
import sys

from preprocess.commands.reduce import ensure_numba_cache

from .app import create_app
from .settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m server", description="Serve sonomap collections to the browser.")
    parser.add_argument("--collections", help="folder whose sub-folders are collections (or SONOMAP_COLLECTIONS)")
    parser.add_argument("--host", default=None, help="address to listen on (default 127.0.0.1: this computer only)")
    parser.add_argument("--port", type=int, default=None, help="port (default 5000)")
    parser.add_argument("--no-warmup", action="store_true", help="skip compiling numba code in the background at start")
    args = parser.parse_args(argv)
    ensure_numba_cache()  # a persistent numba cache before anything imports numba: compile once, not every start
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings.from_env(
            args.collections, host=args.host, port=args.port, warmup=False if args.no_warmup else None
        )
    except ValueError as e:
        parser.error(str(e))
    if not settings.collections_dir.is_dir():
        print(f"error: collections folder {settings.collections_dir} does not exist", file=sys.stderr)
        return 2
    app, socketio = create_app(settings)
    names = app.extensions["sonomap"]["registry"].names()
    print(f"sonomap: {len(names)} collection(s) in {settings.collections_dir}: {', '.join(names) or 'none yet'}")
    print(f"sonomap: open http://{settings.host}:{settings.port}/")
    socketio.run(app, host=settings.host, port=settings.port, allow_unsafe_werkzeug=True, use_reloader=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
