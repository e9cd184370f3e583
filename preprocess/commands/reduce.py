"""``python -m preprocess reduce COLLECTION --features birdnet[,saec] --dims 2,4,8,16``: UMAP maps."""

from __future__ import annotations

import argparse
from typing import Any

from .environment import ensure_numba_cache  # noqa: F401  (server/__main__.py imports it from here)


def _int_list(text: str) -> list[int]:
    from ..errors import ParameterError

    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ParameterError(f"--dims {text!r}: expected whole numbers separated by commas, e.g. 2,4,8,16") from None


def register(sub: Any) -> None:
    p = sub.add_parser(
        "reduce",
        help="UMAP coordinates (for clustering) and a 2-d display map of one or two feature sets",
        description=(
            "Standardise, concatenate feature sets by clip id, PCA, then UMAP into each --dims plus a 2-d display "
            "map, stored in reductions/KEY (KEY = names joined with '+'). Incremental: new clips are placed "
            "without moving old ones."
        ),
    )
    p.set_defaults(func=run)
    p.add_argument("collection", metavar="COLLECTION", help="collection folder")
    p.add_argument("--features", default="birdnet", metavar="A[,B]", help="feature sets to combine (default: birdnet)")
    p.add_argument("--dims", default="2,4,8,16", metavar="D,…", help="UMAP dimensions (default: 2,4,8,16)")
    p.add_argument(
        "--n-neighbors",
        type=int,
        default=None,
        metavar="N",
        help="UMAP n_neighbors (default: 15, fewer below 150 clips)",
    )
    p.add_argument("--min-dist", type=float, default=0.0, metavar="X", help="UMAP min_dist for clustering (0.0)")
    p.add_argument("--display-min-dist", type=float, default=0.5, metavar="X", help="min_dist of the display map (0.5)")
    p.add_argument("--metric", default="cosine", metavar="NAME", help="euclidean | cosine | manhattan | correlation")
    p.add_argument(
        "--normalize", default="none", choices=("l2", "none"), help="l2: rows to unit length first (default: none)"
    )
    p.add_argument("--random-state", type=int, default=0, metavar="N", help="seed (default: 0)")
    p.add_argument("--refit", action="store_true", help="fit again even if only clips were added")


def run(args: argparse.Namespace) -> int:
    import time

    ensure_numba_cache()
    from ..collection import Collection
    from ..reduce import reduce_collection
    from .progressbar import TqdmProgress

    collection = Collection.open(args.collection)
    t0 = time.perf_counter()
    with TqdmProgress() as bar:
        out = reduce_collection(
            collection,
            features=[f for f in args.features.split(",") if f],
            dims=_int_list(args.dims),
            n_neighbors=args.n_neighbors,
            min_dist=args.min_dist,
            display_min_dist=args.display_min_dist,
            metric=args.metric,
            normalize=None if args.normalize == "none" else args.normalize,
            random_state=args.random_state,
            refit=args.refit,
            progress=bar,
        )
    print(
        f"reduction {out.name}: {', '.join(p.stem for p in sorted(out.glob('*.npy')))} in {out} "
        f"({time.perf_counter() - t0:.1f} s)"
    )
    return 0
