"""``python -m preprocess evaluate COLLECTION [--labels CSV]``: which features and pipeline cluster best."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "evaluate",
        help="score every feature set and reduction with the clustering pipelines against known labels",
        description=(
            "Cluster every stored reduction (each UMAP dimension and the display map) and feature set with HDBSCAN, "
            "DBSCAN (eps at the knee of the k-distance curve; and the best eps chosen with the labels, an upper "
            "bound) and K-means (k = number of labels); print NMI, ARI, V-measure, purity, noise and the "
            "pre-annotation yield, and save them as COLLECTION/evaluation.json."
        ),
    )
    p.set_defaults(func=run)
    p.add_argument("collection", metavar="COLLECTION", help="collection folder")
    p.add_argument(
        "--labels", metavar="CSV", help="CSV with label and clip_id, path or file_name (default: recordings' label)"
    )
    p.add_argument("--exclude-labels", default="", metavar="A,B", help="labels not scored (e.g. soundscape)")
    p.add_argument("--only", default="", metavar="A,B", help="evaluate only these feature sets / reductions")
    p.add_argument("--grid", action="store_true", help="also try a grid of HDBSCAN parameters")
    p.add_argument("--sort", default="nmi", choices=("nmi", "ari", "v_measure", "purity", "yield"), help="sort key")


def run(args: argparse.Namespace) -> int:
    from .environment import ensure_numba_cache

    ensure_numba_cache()
    from ..collection import Collection
    from ..evaluate import evaluate_collection, format_table
    from .progressbar import TqdmProgress

    collection = Collection.open(args.collection)
    with TqdmProgress() as bar:
        result = evaluate_collection(
            collection,
            labels_csv=args.labels,
            exclude_labels=[x for x in args.exclude_labels.split(",") if x],
            sources=[x for x in args.only.split(",") if x] or None,
            grid=args.grid,
            progress=bar,
        )
    print(format_table(result, sort_by=args.sort))
    print(f"saved {collection.evaluation_path}")
    return 0
