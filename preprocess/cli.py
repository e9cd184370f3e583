"""``python -m preprocess``: a thin command line around the core.

Each command lives in ``preprocess/commands/<name>.py`` and exposes ``register(subparsers)``,
which adds its sub-parser and sets ``func=run`` where ``run(args) -> int``. Errors of the core
(:class:`SonomapError`) become ``error: <message>`` on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__
from .errors import SonomapError

COMMANDS = (
    "build", "info", "features", "reduce", "evaluate", "export", "import_labels", "refine", "similar", "classify",
)  # fmt: skip


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m preprocess", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"sonomap {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f".commands.{name}", __package__).register(sub)
    return parser


#: The edge's advice for core messages (the core names no CLI command or flag): (phrase in the message, hint).
_ADVICE = (
    ("build the collection first", "python -m preprocess build INPUT --out COLLECTION"),
    ("compute feature set", "python -m preprocess features COLLECTION --extractor NAME"),
    ("compute the reduction again", "python -m preprocess reduce COLLECTION --refit"),
    ("event threshold", "lower it with --event-threshold-db, or use --mode fixed"),
)


def advice(message: str) -> str:
    """The CLI command that helps with a core error message ("" when none applies)."""
    hints = [hint for phrase, hint in _ADVICE if phrase in message]
    return f" ({'; '.join(hints)})" if hints else ""


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SonomapError as e:
        print(f"error: {e}{advice(str(e))}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `info … | head`: the reader has gone, nothing more to say
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("interrupted: run the same command again to resume", file=sys.stderr)
        return 130
