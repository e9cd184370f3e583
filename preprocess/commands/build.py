"""``python -m preprocess build INPUT… --out COLLECTION``: recordings -> a collection, then features and maps."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..collection import Collection
from ..config import BuildConfig, field_help

_SHORT = {
    "sample_rate": "HZ",
    "fmin": "HZ",
    "fmax": "HZ",
    "top_db": "DB",
    "event_threshold_db": "DB",
    "audio_fade_ms": "MS",
}


def register(sub: Any) -> None:
    p = sub.add_parser(
        "build",
        help="build or extend a collection from folders of recordings",
        description=(
            "Find audio recursively under INPUT (MP3, WAV, FLAC, OGG; any rate and channel count), cut clips, "
            "draw spectrogram sprite sheets and audio sprites into COLLECTION. Running it again adds new files "
            "only; a killed build resumes. Options default to the existing collection's, else to the values shown."
        ),
    )
    p.set_defaults(func=run)
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="folders (searched recursively) or audio files")
    p.add_argument("--out", required=True, metavar="COLLECTION", help="collection folder to create or extend")
    p.add_argument(
        "--labels", metavar="CSV", help="labels CSV with columns path,label[,common_name,xc_id,recordist,license,…]"
    )
    p.add_argument(
        "--xc-metadata", action="append", default=[], metavar="JSON", help="xeno-canto API v2/v3 JSON (repeatable)"
    )
    p.add_argument("--jobs", type=int, default=None, help="worker processes (default: every core)")
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run per-recording work and BirdNET features on a Dask cluster: tcp://host:8786, a scheduler JSON file, 'local' "
        "(a LocalCluster of --jobs workers) or 'slurm' (dask-jobqueue's SLURMCluster, --jobs workers)",
    )
    p.add_argument("--no-features", action="store_true", help="stop after clips, spectrograms and sprites")
    p.add_argument("--keep-work", action="store_true", help="keep per-recording intermediate files in COLLECTION/work")
    g = p.add_argument_group("clips, spectrograms and sprites")
    for name, spec in field_help().items():
        kind = {"int": int, "float": float}.get(spec["type"], str)
        default = spec["default"]
        g.add_argument(
            f"--{name.replace('_', '-')}",
            dest=name,
            type=kind,
            default=None,
            choices=spec.get("choices"),
            metavar=_SHORT.get(name, "N" if kind is int else ("S" if name.endswith("_s") else "X"))
            if "choices" not in spec
            else None,
            help=f"{spec['help']} (default: {default if default is not None else 'see help'})",
        )


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {name: getattr(args, name) for name in field_help() if getattr(args, name) is not None}


def run(args: argparse.Namespace) -> int:
    from ..errors import ParameterError
    from ..pipeline import build, check_paths, resolve_config
    from .progressbar import TqdmProgress

    if args.jobs is not None and args.jobs < 1:
        raise ParameterError(f"--jobs {args.jobs}: allowed: 1 or more worker processes")
    check_paths(args.inputs, args.out)  # refuse bad paths before any work
    config: BuildConfig = resolve_config(args.out, _overrides(args))
    with TqdmProgress() as bar:
        result = build(
            args.inputs, args.out, config=config, labels_csv=args.labels, xc_json=args.xc_metadata,
            jobs=args.jobs, keep_work=args.keep_work, progress=bar, scheduler=args.scheduler,
        )  # fmt: skip
    if result.noop:
        print(result.message)
        for note in result.notes:
            print(f"  note: {note}")
    else:
        where = f"on the Dask cluster {args.scheduler}" if args.scheduler else f"with {result.jobs} process(es)"
        print(f"built {result.collection} in {result.elapsed_s:.1f} s {where}")
        print(f"  {result.message}")
        for path, reason in result.skipped:
            print(f"  skipped {path}: {reason}")
        for note in result.notes:
            print(f"  note: {note}")
    if result.recordings == 0:
        print(
            f"error: nothing usable was found; reasons are in {Collection(result.collection).skipped_path}",
            file=sys.stderr,
        )
        return 1
    if not args.no_features:
        _features(result.collection, bar_factory=TqdmProgress, scheduler=args.scheduler, jobs=args.jobs)
    return 0


def _features(root: Any, *, bar_factory: Any, scheduler: str | None = None, jobs: int | None = None) -> None:
    """Run the default feature extractor and the reduction (both incremental: only new clips, else a no-op)."""
    from .. import features, reduce
    from ..collection import Collection
    from ..errors import MissingDependencyError
    from .environment import ensure_numba_cache

    ensure_numba_cache()  # before umap is imported: never pay numba's compilation twice
    coll = Collection.open(root)
    try:
        with bar_factory() as bar:
            features.run_extractor(coll, "birdnet", progress=bar, scheduler=scheduler, jobs=jobs)
    except MissingDependencyError as e:
        print(f"note: no features computed ({e}); the collection has clips and sprites")
        return
    with bar_factory() as bar:
        reduce.reduce_collection(coll, features=["birdnet"], dims=[2, 4, 8, 16], progress=bar)
    print(f"features and maps are up to date in {root}")
