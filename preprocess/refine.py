"""Refine a feature set from its own clusters (Meta Embedded Clustering, as a command and a job).

Each round clusters the current reduction with the default HDBSCAN parameters, takes the clusters as
pseudo-labels (noise left out; the user's classes, and negatives where the label store has them, fixed
as labels on top), trains a small projection head (:mod:`preprocess.refine_head`) on the frozen,
L2-normalised features, re-embeds every clip through it, reduces and clusters again. It stops when two
successive partitions agree (ARI >= :data:`AGREEMENT_STOP`) or after ``iterations`` rounds.

The result is a new feature set ``NAME-refined`` and its reduction; the original is never written::

    features/NAME-refined/features.npy   float32 [n_clips, dim_out], L2-normalised head outputs
    features/NAME-refined/head.pt        the head's state dict (torch): :func:`refine_new` places new clips
    features/NAME-refined/meta.json      source, head and cluster parameters, per-round figures, validity
                                         before and after, ``worse`` (written last)
    reductions/NAME-refined/             its reduction, with the original reduction's parameters

Each round reports a label-free validity index (DBCV, :func:`preprocess.refine_head.validity`) and,
where the recordings carry labels, NMI / ARI / yield. ``worse`` is true when the final validity is
below the original's, so a caller keeps the original selected.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from .collection import Collection, atomic_path, check_name, save_npy_atomic, write_json_atomic
from .errors import CollectionError, ParameterError
from .progress import CancelCheck, Progress, check_cancel, no_progress
from .refine_head import HeadConfig, embed, l2_normalise, train_head, validity
from .refine_saec import EncoderConfig, is_encoder_refined
from .schema import HEAD_FILE

SUFFIX = "-refined"
VERSION = "1"
#: Two successive partitions this similar (adjusted Rand index) end the refinement.
AGREEMENT_STOP = 0.95
#: Clustering dimension of the default pipeline (``evaluate.DEFAULT_PIPELINE["kind"]``).
CLUSTER_DIMS = 8
MAX_ITERATIONS = 20
#: HDBSCAN parameters of the pseudo-labels: a finer partition than the map's (selected on half A of the dev
#: species, see bench/refine.py): the head learns to separate its parts, and the default clustering of the
#: re-embedded clips then decides which parts belong together. Trained on the map's own partition, the head
#: only reproduces it (agreement 1.0 after one round, no change).
PSEUDO_PARAMS = {"min_cluster_size": 5, "min_samples": 1}

RoundCallback = Callable[[dict[str, Any]], None]

__all__ = [
    "refine_collection",
    "refine_new",
    "refined_name",
    "fixed_labels",
    "HeadConfig",
    "EncoderConfig",
    "AGREEMENT_STOP",
]


class _Head:
    """The frozen-features backbone: a projection head retrained each round on the original L2 rows."""

    def __init__(self, Xn: np.ndarray, cfg: HeadConfig, device: str) -> None:
        self.Xn, self.cfg, self.device, self.proj = Xn, cfg, device, None

    def fit(self, y: np.ndarray, *, random_state: int, should_cancel: CancelCheck | None) -> dict[str, Any]:
        self.proj, info = train_head(
            self.Xn, y, cfg=self.cfg, device=self.device, random_state=random_state, should_cancel=should_cancel
        )
        return info

    def embed(self, *, should_cancel: CancelCheck | None = None) -> np.ndarray:
        return embed(self.proj, self.Xn)

    def save(self, collection: Collection, name: str) -> None:
        import torch

        with atomic_path(collection.refine_head_path(name)) as tmp:
            torch.save(self.proj.state_dict(), tmp)

    def meta(self) -> dict[str, Any]:
        return {"name": "projection head (cosine softmax on cluster pseudo-labels)", "weights": HEAD_FILE}

    def params(self) -> dict[str, Any]:
        return {"head": asdict(self.cfg)}

    def snapshot(self) -> Any:
        import copy

        return copy.deepcopy(self.proj)

    def restore(self, snap: Any) -> None:
        self.proj = snap


def _better(v: float, best: float) -> bool:
    """A validity ``v`` above ``best`` (NaN is below everything)."""
    return bool(np.isfinite(v) and (not np.isfinite(best) or v > best))


def trains_encoder(collection: Collection, features: str) -> bool:
    """Whether refine fine-tunes the extractor itself for ``features`` (a saec set with its checkpoint)."""
    try:
        extractor = collection.features_meta(features).get("extractor")
    except Exception:  # noqa: BLE001 - a missing meta is reported by refine_collection
        return False
    return extractor == "saec" and collection.features_model_path(features).is_file()


def refined_name(features: str) -> str:
    """``"birdnet"`` -> ``"birdnet-refined"``."""
    return check_name(f"{features}{SUFFIX}", what="feature set")


def fixed_labels(collection: Collection) -> np.ndarray:
    """int [n_clips] user label per clip from the label store, -1 where none: one id per class, and one
    per class's negatives when the store has ``negatives()`` (a clip in two classes keeps the first)."""
    n = collection.n_clips()
    out = np.full(n, -1, np.int64)
    if not collection.labels_db_path.is_file():
        return out
    from .labels import LabelStore

    with LabelStore.open(collection) as store:
        groups: list[np.ndarray] = [np.asarray(ids) for _, ids in sorted(store.members().items())]
        negatives = getattr(store, "negatives", None)
        if callable(negatives):
            neg = negatives()
            if isinstance(neg, dict):
                groups += [np.asarray(ids) for _, ids in sorted(neg.items())]
    for k, ids in enumerate(groups):
        ids = ids[(ids >= 0) & (ids < n)].astype(np.int64)
        free = ids[out[ids] < 0]
        out[free] = k
    return out


def _scores(labels_true: np.ndarray | None, pred: np.ndarray) -> dict[str, float]:
    if labels_true is None:
        return {}
    from .evaluate import clustering_scores

    scored = labels_true != ""
    s = clustering_scores(labels_true[scored], pred[scored])
    return {"nmi": s["nmi"], "ari": s["ari"], "yield": s["yield"]}


def _true_labels(collection: Collection) -> np.ndarray | None:
    from .evaluate import clip_labels

    try:
        labels = clip_labels(collection)
    except CollectionError:
        return None
    return labels if (labels != "").sum() >= 2 else None


def _round_row(
    r: int, Y: np.ndarray, pred: np.ndarray, prev: np.ndarray | None, truth: np.ndarray | None, t0: float, **extra: Any
) -> dict[str, Any]:
    from sklearn.metrics import adjusted_rand_score

    return {
        "round": r,
        "n_clusters": int(len(np.unique(pred[pred >= 0]))),
        "noise": float(np.mean(pred < 0)),
        "agreement": None if prev is None else float(adjusted_rand_score(prev, pred)),
        "validity": validity(Y, pred),
        **_scores(truth, pred),
        "time_s": round(time.perf_counter() - t0, 2),
        **extra,
    }


def _write_features(collection: Collection, name: str, Z: np.ndarray, meta: dict[str, Any], backbone: Any) -> None:
    out_dir = collection.features_dir(name)
    out_dir.mkdir(parents=True, exist_ok=True)
    collection.features_meta_path(name).unlink(missing_ok=True)  # until the new meta is written the set is incomplete
    save_npy_atomic(collection.features_path(name), Z.astype(np.float32))
    backbone.save(collection, name)
    write_json_atomic(collection.features_meta_path(name), meta)


def refine_collection(
    collection: Collection | str | Path,
    *,
    features: str = "birdnet",
    iterations: int = 3,
    head: HeadConfig | None = None,
    encoder: EncoderConfig | None = None,
    cluster_params: dict[str, Any] | None = None,
    pseudo_params: dict[str, Any] | None = None,
    device: str = "auto",
    random_state: int = 0,
    keep_best: bool | None = None,
    on_round: RoundCallback | None = None,
    progress: Progress | None = None,
    should_cancel: CancelCheck | None = None,
) -> dict[str, Any]:
    """Refine feature set ``features`` for at most ``iterations`` rounds; write ``features-refined``.

    ``cluster_params``: HDBSCAN parameters of the reported partitions (default: preprocess.cluster's
    defaults); ``pseudo_params``: those of the pseudo-labels (default :data:`PSEUDO_PARAMS`). ``on_round`` gets
    one dict per round (round 0 = the original): ``round, n_clusters, noise, agreement`` (ARI with the
    previous round), ``validity`` (DBCV), ``nmi, ari, yield`` (when labels exist), ``time_s``. Returns the
    refined set's meta: ``name, rounds, validity_original, validity_refined, worse, converged, …``.

    A saec feature set (with its ``model.pt``) has its encoder itself fine-tuned (:mod:`preprocess.refine_saec`,
    configured by ``encoder``); any other set gets a projection head on its frozen rows (``head``).
    ``keep_best`` (default: true for the encoder, which keeps training across rounds and can drift; false for
    the head, retrained from the frozen rows each round) keeps the round with the highest validity index
    rather than the last (``kept_round`` in the meta; the per-round figures stay as they were).
    """
    from .cluster import cluster, validate_params
    from .features import resolve_device
    from .reduce import DEFAULT_DIMS, reduce_collection

    if not isinstance(collection, Collection):
        collection = Collection.open(collection)
    progress = progress or no_progress
    on_round = on_round or (lambda row: None)
    if not 1 <= int(iterations) <= MAX_ITERATIONS:
        raise ParameterError(f"iterations must be 1..{MAX_ITERATIONS}, got {iterations}")
    head = head or HeadConfig()
    params = validate_params("hdbscan", cluster_params)
    pparams = validate_params("hdbscan", PSEUDO_PARAMS if pseudo_params is None else pseudo_params)
    device = resolve_device(device)
    name = refined_name(features)
    X = collection.features(features)
    n = collection.n_clips()
    if X.shape[0] != n:
        raise CollectionError(
            f"feature set {features!r} has {X.shape[0]} rows for {n} clips: compute the feature set again first"
        )
    t_start = time.perf_counter()

    # round 0: the original reduction (made with the defaults if there is none; never refitted here)
    if features not in collection.reductions():
        reduce_collection(collection, features=[features], progress=progress, should_cancel=should_cancel)
    orig = collection.reduction_meta(features)
    if CLUSTER_DIMS not in orig.get("dims", []):
        raise CollectionError(
            f"reduction {features!r} has no {CLUSTER_DIMS}-d coordinates (dims {orig.get('dims')}): "
            f"reduce it again with {CLUSTER_DIMS} among its dims first"
        )
    from .reduce import stored_params

    keys = ("n_neighbors", "min_dist", "display_min_dist", "metric", "normalize", "random_state")
    stored = stored_params(orig)
    missing = [k for k in keys if k not in stored]
    if missing:
        raise CollectionError(
            f"reduction {features!r} does not record how it was made ({', '.join(missing)} missing): reduce it again"
        )
    rparams = {k: stored[k] for k in keys}
    truth = _true_labels(collection)
    fixed = fixed_labels(collection)
    if trains_encoder(collection, features):
        from .refine_saec import SaecEncoderTuner

        backbone: Any = SaecEncoderTuner(
            collection, source=features, cfg=encoder, device=device, random_state=random_state
        )
    else:
        backbone = _Head(l2_normalise(np.asarray(X)), head, device)
    t0 = time.perf_counter()
    Y = collection.reduced(features, CLUSTER_DIMS)
    pred = cluster(Y, algorithm="hdbscan", params=params, random_state=random_state)
    rounds = [_round_row(0, Y, pred, None, truth, t0)]
    on_round(rounds[0])
    converged = False
    keep_best = not isinstance(backbone, _Head) if keep_best is None else bool(keep_best)
    best: tuple[float, int, np.ndarray, Any] | None = None  # (validity, round, rows, backbone snapshot)
    for r in range(1, int(iterations) + 1):
        check_cancel(should_cancel)
        progress("refine", r - 1, int(iterations), f"round {r}: train")
        t0 = time.perf_counter()
        pseudo = (
            pred if pparams == params else cluster(Y, algorithm="hdbscan", params=pparams, random_state=random_state)
        )
        y = np.where(pseudo >= 0, pseudo, -1).astype(np.int64)
        if (fixed >= 0).any():  # the user's classes win over pseudo-labels, with ids after every cluster
            y = np.where(fixed >= 0, fixed + int(y.max()) + 1, y)
        train = backbone.fit(y, random_state=random_state + r, should_cancel=should_cancel)
        Z = backbone.embed(should_cancel=should_cancel)
        meta = _meta(features, name, backbone, params, pparams, rparams, rounds, device, t_start, n, Z.shape[1])
        _write_features(collection, name, Z, meta, backbone)
        progress("refine", r - 1, int(iterations), f"round {r}: reduce")
        reduce_collection(
            collection, features=[name], dims=(CLUSTER_DIMS,), refit=True, should_cancel=should_cancel, **rparams
        )
        Y = collection.reduced(name, CLUSTER_DIMS)
        prev, pred = pred, cluster(Y, algorithm="hdbscan", params=params, random_state=random_state)
        row = _round_row(
            r, Y, pred, prev, truth, t0, train_accuracy=round(train["accuracy"], 4), train_steps=int(train["steps"])
        )
        rounds.append(row)
        on_round(row)
        if keep_best and (best is None or _better(row["validity"], best[0])):
            best = (row["validity"], r, Z.copy(), backbone.snapshot())
        if row["agreement"] is not None and row["agreement"] >= AGREEMENT_STOP:
            converged = True
            break
    kept = rounds[-1]["round"]
    if best is not None and best[1] != kept:  # a later round drifted: go back to the most valid one
        kept, Z = best[1], best[2]
        backbone.restore(best[3])
        meta = _meta(features, name, backbone, params, pparams, rparams, rounds, device, t_start, n, Z.shape[1])
        _write_features(collection, name, Z, meta, backbone)
    progress("refine", int(iterations), int(iterations), "final reduction")
    dims = tuple(orig.get("dims") or DEFAULT_DIMS)
    reduce_collection(collection, features=[name], dims=dims, refit=True, should_cancel=should_cancel, **rparams)
    rows_meta = collection.features_meta(name)  # the rows' identity the reduction recorded: keep it
    meta = _meta(features, name, backbone, params, pparams, rparams, rounds, device, t_start, n, Z.shape[1])
    meta.update(created=rows_meta["created"], signature=rows_meta["signature"])
    v0, v1 = rounds[0]["validity"], rounds[kept]["validity"]
    meta.update(
        converged=converged,
        kept_round=int(kept),
        validity_original=v0,
        validity_refined=v1,
        worse=bool(np.isfinite(v0) and (not np.isfinite(v1) or v1 < v0)),
    )
    write_json_atomic(collection.features_meta_path(name), meta)
    progress("refine", int(iterations), int(iterations), "done")
    return meta


def _meta(
    features: str,
    name: str,
    backbone: Any,
    params: dict[str, Any],
    pparams: dict[str, Any],
    rparams: dict[str, Any],
    rounds: list[dict[str, Any]],
    device: str,
    t_start: float,
    n: int,
    dim: int,
) -> dict[str, Any]:
    created = datetime.now(UTC).isoformat(timespec="seconds")
    return {
        "extractor": "refine",
        "name": name,
        "source": features,
        "version": VERSION,
        "signature": f"refine-{features}-{created}",
        "dim": int(dim),
        "n_clips": int(n),
        "device": device,
        "params": {
            **backbone.params(),
            "hdbscan": params,
            "pseudo_hdbscan": pparams,
            "reduction": rparams,
            "cluster_dims": CLUSTER_DIMS,
        },
        "model": backbone.meta(),
        "rounds": rounds,
        "time_s": round(time.perf_counter() - t_start, 2),
        "created": created,
    }


def load_head(collection: Collection, name: str) -> Any:
    """The saved projection head of refined feature set ``name`` (eval mode, CPU)."""
    import torch

    from .refine_head import build_head

    meta = collection.features_meta(name)
    if meta.get("extractor") != "refine":
        raise ParameterError(f"feature set {name!r} was not made by refine")
    path = collection.refine_head_path(name)
    if not path.is_file():
        raise CollectionError(f"refined feature set {name!r} has no {HEAD_FILE}; refine again")
    state = torch.load(path, map_location="cpu", weights_only=True)
    dim_in = int(state["1.weight"].shape[1])
    proj, _ = build_head(dim_in, 1, HeadConfig(**meta["params"]["head"]))
    proj.load_state_dict(state)
    return proj.eval()


def refine_new(
    collection: Collection | str | Path, X_new: np.ndarray, *, features: str = "birdnet"
) -> tuple[np.ndarray, dict[int, np.ndarray], np.ndarray]:
    """Place new clips through the saved head (or fine-tuned encoder) and the refined reduction, without
    moving anything stored. ``X_new``: the clips' original features float32 [m, D]; for a refined saec set,
    their uint8 spectrograms [m, n_mels, n_frames]. Returns ``(Z [m, dim_out], {dims: [m, dims]}, map_2d [m, 2])``."""
    from .reduce import transform_new

    if not isinstance(collection, Collection):
        collection = Collection.open(collection)
    name = refined_name(features)
    if is_encoder_refined(collection.features_meta(name)):
        from .refine_saec import encode_new

        Z = encode_new(collection, name, X_new)
    else:
        proj = load_head(collection, name)
        X_new = np.asarray(X_new, dtype=np.float32)
        if X_new.ndim != 2 or X_new.shape[1] != proj[1].in_features:
            raise ParameterError(f"X_new must be [m, {proj[1].in_features}] {features} features, got {X_new.shape}")
        Z = embed(proj, X_new)
    coords, map_2d = transform_new(collection, name, Z)
    return Z, coords, map_2d


def is_refined(collection: Collection, name: str) -> bool:
    """Whether feature set ``name`` was made by refine (its rows come from a saved head, not an extractor)."""
    try:
        return collection.features_meta(name).get("extractor") == "refine"
    except Exception:  # noqa: BLE001 - a missing or unreadable meta is not a refined set
        return False


def extend_refined(collection: Collection, name: str) -> int:
    """Append the rows of clips added since refined set ``name`` was made: their source features through the
    saved head, or their spectrograms through the saved fine-tuned saec encoder (the same path as
    :func:`refine_new`). ``created`` and ``signature`` are kept, so its reduction
    extends (new clips placed by ``transform_new``; old points never move). Returns the number of rows added."""
    meta = collection.features_meta(name)
    source = meta.get("source", "")
    n = collection.n_clips()
    Z_old = collection.features(name, mmap=False)
    old_n = len(Z_old)
    if old_n >= n:
        return 0
    if is_encoder_refined(meta):
        from .refine_saec import encode_new

        Z_new = encode_new(collection, name, collection.spectrograms()[old_n:n])
    else:
        X = collection.features(source)
        if X.shape[0] < n:
            raise CollectionError(f"feature set {source!r} has {X.shape[0]} rows for {n} clips: compute it first")
        Z_new = embed(load_head(collection, name), l2_normalise(np.asarray(X[old_n:n])))
    save_npy_atomic(collection.features_path(name), np.concatenate([Z_old, Z_new.astype(np.float32)]))
    meta = dict(meta, n_clips=int(n), updated=datetime.now(UTC).isoformat(timespec="seconds"))
    write_json_atomic(collection.features_meta_path(name), meta)
    return n - old_n


def discard_refined(collection: Collection, features: str = "birdnet") -> None:
    """Remove ``features-refined`` and its reduction (an unfinished or unwanted refinement); the original stays."""
    import shutil

    name = refined_name(features)
    for d in (collection.features_dir(name), collection.reduction_dir(name)):
        shutil.rmtree(d, ignore_errors=True)
