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

COMMANDS = ("build", "info", "features", "reduce", "evaluate", "export", "import_labels", "similar", "classify")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m preprocess", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"sonomap {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f".commands.{name}", __package__)
        except ModuleNotFoundError as e:
            if e.name and e.name.endswith(f"commands.{name}"):
                continue  # command not built yet
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SonomapError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `info … | head`: the reader has gone, nothing more to say
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("interrupted: run the same command again to resume", file=sys.stderr)
        return 130
