"""``python -m preprocess export COLLECTION --format csv|raven|audacity|json [--out PATH] [--labelled-only]``."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..collection import Collection, write_bytes_atomic
from ..export import FORMATS, export_labels
from .progressbar import TqdmProgress


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export",
        help="export the collection's classes (CSV, Raven, Audacity, JSON)",
        description="Export the user's classes: dummy-coded CSV, Raven selection tables, Audacity label files "
        "(a zip when several recordings have labelled clips) or JSON with full provenance.",
    )
    p.add_argument("collection", metavar="COLLECTION", help="collection folder")
    p.add_argument("--format", required=True, choices=FORMATS, help="export format")
    p.add_argument("--out", metavar="PATH", help="output file or existing folder (default: current folder)")
    p.add_argument("--labelled-only", action="store_true", help="csv/json: keep only clips that are in a class")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    collection = Collection.open(args.collection)
    with TqdmProgress() as bar:
        result = export_labels(collection, format=args.format, labelled_only=args.labelled_only, progress=bar)
    out = Path(args.out) if args.out else Path.cwd() / result.filename
    if out.is_dir():
        out = out / result.filename
    write_bytes_atomic(out, result.data)
    print(f"wrote {out} ({len(result.data):,} bytes, {args.format})")
    return 0
