"""``python -m preprocess similar COLLECTION --clip ID [--k 20] [--features birdnet] [--json]``."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "similar",
        help="the clips most similar to a clip (cosine similarity of a feature set's embeddings)",
        description=(
            "Find the K clips most similar to --clip (several --clip are fused into their mean embedding) by "
            "cosine similarity, best first, the query clips left out. The index is stored in "
            "COLLECTION/similar/FEATURES and kept up to date as the collection grows."
        ),
    )
    p.set_defaults(func=run)
    p.add_argument("collection", metavar="COLLECTION", help="collection folder")
    p.add_argument("--clip", type=int, action="append", required=True, metavar="ID", help="query clip id (repeatable)")
    p.add_argument("--k", type=int, default=20, help="number of clips to return (default: 20)")
    p.add_argument("--features", default="birdnet", help="feature set (default: birdnet)")
    p.add_argument("--json", action="store_true", help='print [{"clip_id": …, "similarity": …}, …]')


def run(args: argparse.Namespace) -> int:
    from ..collection import Collection
    from ..similar import similar

    collection = Collection.open(args.collection)
    hits = similar(collection, clip_ids=args.clip, k=args.k, features=args.features)
    if args.json:
        print(json.dumps(hits))
        return 0
    print(f"{'rank':>4}  {'clip_id':>8}  similarity")
    for rank, hit in enumerate(hits, 1):
        print(f"{rank:>4}  {hit['clip_id']:>8}  {hit['similarity']:.4f}")
    return 0
