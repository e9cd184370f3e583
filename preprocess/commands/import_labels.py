"""``python -m preprocess import COLLECTION FILE.csv``: load classes from a CSV (export format or clip_id,label)."""

from __future__ import annotations

import argparse
import getpass
from pathlib import Path

from ..collection import Collection
from ..errors import ParameterError
from ..export import import_labels
from .progressbar import TqdmProgress


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "import",
        help="load classes from a CSV (the export's format or clip_id,label)",
        description="Add the clips listed in a CSV to classes (creating missing classes), as one undoable change. "
        "Accepts the dummy-coded CSV written by 'export --format csv' or a two-column 'clip_id,label' file. "
        "Rows that match no clip are reported and skipped.",
    )
    p.add_argument("collection", metavar="COLLECTION", help="collection folder")
    p.add_argument("file", metavar="FILE", help="CSV file to import")
    p.add_argument("--who", default=None, help="name recorded with the change (default: your user name)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    collection = Collection.open(args.collection)
    path = Path(args.file)
    if not path.is_file():
        raise ParameterError(f"no such file: {path}")
    who = args.who if args.who is not None else _user()
    with TqdmProgress() as bar:
        report = import_labels(collection, path.read_bytes(), filename=path.name, who=who, progress=bar)
    created = ", ".join(report["classes_created"]) or "none"
    print(
        f"imported {path.name} ({report['format']}): {report['n_matched']} of {report['n_rows']} rows matched, "
        f"{report['added']} memberships added; new classes: {created}"
    )
    if report["n_unmatched"]:
        print(f"{report['n_unmatched']} row(s) match no clip and were skipped:")
        for row in report["unmatched_rows"][:20]:
            print(f"  line {row['row']}: {row['reason']}")
        if report["n_unmatched"] > 20:
            print(f"  … and {report['n_unmatched'] - 20} more")
    return 0


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user database entry (containers)
        return "cli"
