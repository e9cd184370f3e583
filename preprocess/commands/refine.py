"""``python -m preprocess refine COLLECTION [--features birdnet] [--iterations N]``: refine a feature set
from its own clusters into ``NAME-refined`` (the original is never touched)."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "refine",
        help="train a projection head on the map's own clusters; write NAME-refined and its reduction",
        description=(
            "Each round: cluster (HDBSCAN defaults) -> pseudo-labels (noise left out; your classes fixed) -> train a "
            "projection head on the frozen features -> re-embed -> reduce -> re-cluster; stop when two rounds agree "
            "(ARI >= 0.95) or after N rounds. Prints per round: clusters, noise, agreement, validity (DBCV) and "
            "NMI/ARI/yield when the recordings carry labels. Writes features/NAME-refined and reductions/NAME-refined."
        ),
    )
    p.set_defaults(func=run)
    p.add_argument("collection", metavar="COLLECTION", help="collection folder")
    p.add_argument(
        "--features",
        default="birdnet",
        metavar="NAME",
        help="feature set to refine (default: birdnet); saec fine-tunes the autoencoder's encoder itself",
    )
    p.add_argument("--iterations", type=int, default=3, metavar="N", help="most rounds (default: 3)")
    p.add_argument("--device", default="auto", metavar="DEVICE", help="auto | cpu | cuda (default: auto)")


def format_round(row: dict[str, Any]) -> str:
    """One printed line per round."""

    def f(key: str) -> str:
        v = row.get(key)
        return "   -  " if v is None or v != v else f"{v:6.3f}"

    return (
        f"round {row['round']}: {row['n_clusters']:>4} clusters  noise {f('noise')}  agreement {f('agreement')}  "
        f"validity {f('validity')}  NMI {f('nmi')}  ARI {f('ari')}  yield {f('yield')}  {row['time_s']:.1f} s"
    )


def run(args: argparse.Namespace) -> int:
    from .reduce import ensure_numba_cache

    ensure_numba_cache()
    from ..refine import refine_collection

    meta = refine_collection(
        args.collection,
        features=args.features,
        iterations=args.iterations,
        device=args.device,
        on_round=lambda row: print(format_round(row), flush=True),
    )
    verdict = (
        "WORSE than the original by the validity index: keep the original selected"
        if meta["worse"]
        else "not worse than the original by the validity index"
    )
    kept = meta.get("kept_round", len(meta["rounds"]) - 1)
    model = meta.get("model", {})
    how = f"encoder fine-tuned for {model['steps']} steps on {model['device']}, " if "steps" in model else ""
    print(
        f"{meta['name']}: {len(meta['rounds']) - 1} round(s), {'converged' if meta['converged'] else 'not converged'}; "
        f"{how}kept round {kept}; validity {meta['validity_original']:.3f} -> {meta['validity_refined']:.3f}: {verdict}"
    )
    return 0
