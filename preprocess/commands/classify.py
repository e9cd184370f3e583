"""``python -m preprocess classify COLLECTION [--features birdnet] [--out PATH.csv]``: learn the user's classes."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "classify",
        help="train a classifier per class from the labels and score every clip",
        description=(
            "Train one logistic regression per class on a feature set's embeddings (positives: the class's clips; "
            "negatives: clips judged not in it and clips of other classes; weak negatives: a down-weighted sample "
            "of unlabelled clips), print cross-validated metrics per class, store the model and every clip's "
            "scores in COLLECTION/learn, and optionally write them as CSV."
        ),
    )
    p.set_defaults(func=run)
    p.add_argument("collection", metavar="COLLECTION", help="collection folder")
    p.add_argument("--features", default="birdnet", help="feature set (default: birdnet)")
    p.add_argument("--out", metavar="PATH.csv", help="write clip_id, predicted, user_label, one score per class")


def format_metrics(model: Any) -> str:
    """The per-class metrics table (AP, threshold, precision, recall, changes since the previous round)."""

    def f(v: Any) -> str:
        return "   -  " if v is None else f"{v:6.3f}"

    def d(v: Any) -> str:
        return "      " if v is None else f"{v:+6.3f}"

    rows = [f"round {model.info.get('round', '?')}: {len(model.class_ids)} classes, {model.info.get('n_labelled')} "
            f"labelled + {model.info.get('n_weak')} weak negatives, {model.info.get('time_s', 0):.2f} s"]  # fmt: skip
    width = max([5, *(len(n) for n in model.class_names)])
    rows.append(f"{'class':<{width}}  {'pos':>5} {'neg':>5}  {'AP':>6} {'ΔAP':>6}  {'thr':>6}  {'prec':>6} {'Δprec':>6}"
                f"  {'recall':>6} {'Δrec':>6}")  # fmt: skip
    for name, m in zip(model.class_names, model.metrics, strict=True):
        delta = m.get("delta", {})
        rows.append(
            f"{name:<{width}}  {m['n_positive']:>5} {m['n_negative']:>5}  {f(m.get('ap'))} {d(delta.get('ap'))}  "
            f"{f(m.get('threshold'))}  {f(m.get('precision'))} {d(delta.get('precision'))}  {f(m.get('recall'))} "
            f"{d(delta.get('recall'))}"
        )
    return "\n".join(rows)


def run(args: argparse.Namespace) -> int:
    from ..collection import Collection, write_bytes_atomic
    from ..learn import train
    from ..predictions_export import predictions_csv
    from .progressbar import TqdmProgress

    collection = Collection.open(args.collection)
    with TqdmProgress() as bar:
        model, _scores = train(collection, features=args.features, progress=bar)
    print(format_metrics(model))
    if args.out:
        write_bytes_atomic(args.out, predictions_csv(collection).encode())
        print(f"wrote {args.out}")
    return 0
