"""``python -m preprocess features COLLECTION --extractor NAME``: compute one feature set for every clip."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(sub: Any) -> None:
    from ..features import DEVICES, EXTRACTORS

    p = sub.add_parser(
        "features",
        help="compute a feature set (birdnet, saec, idnn, acoustic) for every clip",
        description=(
            "Compute feature set NAME (features/NAME/, one row per clip). Incremental: only clips added since the last run "
            "are computed, and an interrupted run resumes. Extractors: "
            + "; ".join(f"{name}: {desc}" for name, (_, _, desc) in EXTRACTORS.items())
        ),
    )
    p.set_defaults(func=run)
    p.add_argument("collection", metavar="COLLECTION", help="collection folder")
    p.add_argument("--extractor", required=True, metavar="NAME", help=f"one of: {', '.join(EXTRACTORS)}")
    p.add_argument("--device", default="auto", metavar="DEVICE", help=f"{' | '.join(DEVICES)} (default: auto)")
    p.add_argument("--batch-size", type=int, default=None, metavar="N", help="clips per batch (default: per extractor)")
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extractor option, repeatable (e.g. saec: max_steps=400; idnn: backbone=resnet50)",
    )
    p.add_argument("--weights", default=None, metavar="PATH", help="idnn: torchvision-format weights file (.pth)")
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="compute birdnet features as Dask tasks: tcp://host:8786, a scheduler JSON file, 'local' "
        "(a LocalCluster of --jobs workers) or 'slurm'; other extractors run here",
    )
    p.add_argument("--jobs", type=int, default=None, metavar="N", help="workers of --scheduler local or slurm")


def parse_params(items: list[str]) -> dict[str, Any]:
    """``["max_steps=400", "backbone=resnet50"]`` -> ``{"max_steps": 400, "backbone": "resnet50"}``."""
    from ..errors import ParameterError

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ParameterError(f"--param {item!r}: expected KEY=VALUE")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def run(args: argparse.Namespace) -> int:
    import time

    from ..collection import Collection
    from ..features import get_extractor, run_extractor
    from .progressbar import TqdmProgress

    collection = Collection.open(args.collection)
    if args.scheduler and not get_extractor(args.extractor).runs_on_workers:
        print(f"note: {args.extractor} runs in this process; only birdnet runs on the Dask cluster")
    t0 = time.perf_counter()
    with TqdmProgress() as bar:
        out = run_extractor(
            collection,
            args.extractor,
            device=args.device,
            batch_size=args.batch_size,
            params={**parse_params(args.param), **({"weights_path": args.weights} if args.weights else {})},
            progress=bar,
            scheduler=args.scheduler,
            jobs=args.jobs,
        )
    meta = collection.features_meta(args.extractor)
    print(
        f"{args.extractor}: {meta['n_clips']} clips x {meta['dim']} features on {meta['device']} in {out} "
        f"({time.perf_counter() - t0:.1f} s this run)"
    )
    return 0
