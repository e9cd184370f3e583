"""``python -m preprocess import COLLECTION FILE``: load classes from a CSV (export format or clip_id,label), Raven
selection table(s) or Audacity labels (a zip of tables too); the format is told from the content or ``--format``."""

from __future__ import annotations

import argparse
import getpass
from pathlib import Path

from ..collection import Collection
from ..errors import ParameterError
from ..export import IMPORT_FORMATS, import_labels
from .progressbar import TqdmProgress


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "import",
        help="load classes from a CSV, Raven selection tables or Audacity labels",
        description="Add the clips listed in a file to classes (creating missing classes), as one undoable change. "
        "Accepts the dummy-coded CSV written by 'export --format csv', a two-column 'clip_id,label' file, Raven "
        "selection tables (sonomap's with a Clip ID column, or Raven Pro's: matched to clips by recording file and "
        "time overlap), Audacity label files named after their recording, or a zip of tables as 'export' writes. "
        "Rows that match no clip are reported and skipped.",
    )
    p.add_argument("collection", metavar="COLLECTION", help="collection folder")
    p.add_argument("file", metavar="FILE", help="file to import (.csv, .txt table, or .zip of tables)")
    p.add_argument("--format", choices=IMPORT_FORMATS, default=None, help="file format (default: from its content)")
    p.add_argument(
        "--recording", default=None, help="Raven/Audacity: the recording (path or file name) the rows are from"
    )
    p.add_argument(
        "--annot-col", default=None, help="Raven: column holding the class (default: Annotation, Class, ...)"
    )
    p.add_argument("--who", default=None, help="name recorded with the change (default: your user name)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    collection = Collection.open(args.collection)
    path = Path(args.file)
    if not path.is_file():
        raise ParameterError(f"no such file: {path}")
    who = args.who if args.who is not None else _user()
    with TqdmProgress() as bar:
        report = import_labels(
            collection,
            path.read_bytes(),
            filename=path.name,
            who=who,
            progress=bar,
            format=args.format,
            recording=args.recording,
            annot_col=args.annot_col,
        )
    created = ", ".join(report["classes_created"]) or "none"
    print(
        f"imported {path.name} ({report['format']}): {report['n_matched']} of {report['n_rows']} rows matched, "
        f"{report['added']} memberships added; new classes: {created}"
    )
    if report["n_unmatched"]:
        print(f"{report['n_unmatched']} row(s) match no clip and were skipped:")
        for row in report["unmatched_rows"][:20]:
            where = f"{row['file']}, " if row.get("file") else ""
            print(f"  {where}line {row['row']}: {row['reason']}")
        if report["n_unmatched"] > 20:
            print(f"  … and {report['n_unmatched'] - 20} more")
    return 0


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user database entry (containers)
        return "cli"
