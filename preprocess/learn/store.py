"""The classifier in the collection: train from the label store, save, reload, score clips added later.

Files (``Collection.learn_dir``)::

    learn/model.npz     mean, scale float32 [D]; weights float32 [D, C]; bias, thresholds float32 [C]
    learn/model.json    round, features (+ signature, created), class_ids, class_names, params, metrics,
                        thresholds, n_clips scored, history: one entry per round with its per-class metrics
    learn/scores.npy    float32 [n_clips, C]: row i = clip i, column c = class_ids[c], in [0, 1]

``model.json`` is written last: it vouches for the other two.
"""

from __future__ import annotations

import io
import json
import time
from typing import Any

import numpy as np

from ..collection import Collection, save_npy_atomic, write_bytes_atomic, write_json_atomic
from ..errors import CollectionError, NotFoundError
from ..labels import LabelStore
from ..progress import CancelCheck, Progress
from .classifier import LearnParams, Model, fit

DEFAULT_FEATURES = "birdnet"
METRIC_KEYS = ("ap", "precision", "recall", "threshold")


def train(
    collection: Collection,
    *,
    features: str = DEFAULT_FEATURES,
    params: LearnParams | None = None,
    store: LabelStore | None = None,
    progress: Progress | None = None,
    should_cancel: CancelCheck | None = None,
) -> tuple[Model, np.ndarray]:
    """Train on the store's classes (those with members), save model + scores, return (model, scores [n, C]).

    Each call is a new *round*; per-class metrics keep a ``delta`` against the previous round's.
    """
    t0 = time.perf_counter()
    own = store is None
    store = store or LabelStore.open(collection)
    try:
        classes = store.classes()
        members, negatives = store.members(), store.negatives()
    finally:
        if own:
            store.close()
    classes = [c for c in classes if len(members.get(c["id"], ())) > 0]
    x = collection.features(features)
    model, scores = fit(
        x,
        [members[c["id"]] for c in classes],
        [negatives.get(c["id"], np.zeros(0, np.int64)) for c in classes],
        class_ids=[c["id"] for c in classes],
        class_names=[c["name"] for c in classes],
        params=params,
        progress=progress,
        should_cancel=should_cancel,
    )
    previous = _read_json(collection)
    fmeta = collection.features_meta(features)
    model.info.update(
        features=features,
        features_signature=fmeta.get("signature"),
        features_created=fmeta.get("created"),
        round=int(previous.get("round", 0)) + 1 if previous else 1,
        time_s=round(time.perf_counter() - t0, 3),
    )
    before = {int(cid): m for cid, m in zip(previous.get("class_ids", []), previous.get("metrics", []), strict=False)}
    for cid, m in zip(model.class_ids, model.metrics, strict=True):
        old = before.get(int(cid))
        m["delta"] = {
            k: (None if old is None or old.get(k) is None or m.get(k) is None else m[k] - old[k]) for k in METRIC_KEYS
        }
    history = list(previous.get("history", []))
    history.append({"round": model.info["round"], "created": model.info["created"], **_class_metrics(model)})
    save_model(collection, model, scores, history=history)
    return model, scores


def _class_metrics(model: Model) -> dict[str, Any]:
    return {
        "classes": [
            {"class_id": int(cid), "name": name, **{k: m.get(k) for k in (*METRIC_KEYS, "n_positive", "n_negative")}}
            for cid, name, m in zip(model.class_ids, model.class_names, model.metrics, strict=True)
        ]
    }


def save_model(collection: Collection, model: Model, scores: np.ndarray, *, history: list | None = None) -> None:
    """Write learn/model.npz, learn/scores.npy, then learn/model.json (atomic each)."""
    collection.learn_dir.mkdir(parents=True, exist_ok=True)
    cv_ids = model.cv_clip_ids if model.cv_clip_ids is not None else np.zeros(0, np.int64)
    cv_scores = model.cv_scores if model.cv_scores is not None else np.zeros((0, len(model.class_ids)), np.float32)
    write_bytes_atomic(collection.learn_model_path, model_npz(model, cv_clip_ids=cv_ids, cv_scores=cv_scores))
    save_npy_atomic(collection.learn_scores_path, np.asarray(scores, np.float32))
    write_json_atomic(
        collection.learn_meta_path, {**model_meta(model), "n_scored": int(len(scores)), "history": history or []}
    )


def model_npz(model: Model, **extra: np.ndarray) -> bytes:
    """``.npz`` bytes of the model's arrays (mean, scale [D]; weights [D, C]; bias, thresholds [C]) plus ``extra``."""
    buf = io.BytesIO()
    arrays = {"mean": model.mean, "scale": model.scale, "weights": model.weights, "bias": model.bias}
    np.savez(buf, **arrays, thresholds=model.thresholds, **extra)
    return buf.getvalue()


def model_meta(model: Model) -> dict[str, Any]:
    """The JSON half of a model: classes, thresholds, metrics, parameters, round, features."""
    return {
        "format": "sonomap-classifier",
        "format_version": 1,
        **model.info,
        "class_ids": [int(c) for c in model.class_ids],
        "class_names": list(model.class_names),
        "thresholds": [float(t) for t in model.thresholds],
        "metrics": model.metrics,
        "params": model.params,
        "kind": "logistic regression per class on standardised embeddings",
    }


def _read_json(collection: Collection) -> dict[str, Any]:
    path = collection.learn_meta_path
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CollectionError(f"corrupt {path}: {e}") from None


def load_model(collection: Collection) -> Model:
    """The saved model; NotFoundError when none was trained, CollectionError when its features changed."""
    meta = _read_json(collection)
    if not meta:
        raise NotFoundError("no classifier trained yet: train one from the classes first")
    features = meta["features"]
    fmeta = collection.features_meta(features)
    if fmeta.get("signature") != meta.get("features_signature") or fmeta.get("created") != meta.get("features_created"):
        raise CollectionError(f"the classifier was trained on an older {features!r} feature set; train it again")
    with np.load(collection.learn_model_path) as z:
        arrays = {k: z[k] for k in z.files}
    info_keys = ("features", "features_signature", "features_created", "round", "time_s", "created")
    info_keys += ("n_labelled", "n_weak")
    return Model(
        class_ids=list(meta["class_ids"]),
        class_names=list(meta["class_names"]),
        mean=arrays["mean"],
        scale=arrays["scale"],
        weights=arrays["weights"],
        bias=arrays["bias"],
        thresholds=arrays["thresholds"],
        metrics=meta.get("metrics", []),
        params=meta.get("params", {}),
        info={k: meta[k] for k in info_keys if k in meta},
        cv_clip_ids=arrays.get("cv_clip_ids"),
        cv_scores=arrays.get("cv_scores"),
    )


def load_scores(collection: Collection) -> np.ndarray:
    """float32 [n_clips, C] scores of the saved model (clips added since are scored first, see score_new)."""
    model = load_model(collection)
    scores = np.load(collection.learn_scores_path)
    n = len(collection.features(model.info["features"]))
    if len(scores) < n:
        score_new(collection, np.arange(len(scores), n))
        scores = np.load(collection.learn_scores_path)
    return scores


def score_new(collection: Collection, clip_ids: Any) -> np.ndarray:
    """Score clips (e.g. added since training) with the saved model; store their rows in learn/scores.npy.

    Returns float32 [len(clip_ids), C].
    """
    model = load_model(collection)
    x = collection.features(model.info["features"])
    ids = np.asarray(clip_ids, np.int64)
    new = model.scores(x[ids]) if ids.size else np.zeros((0, len(model.class_ids)), np.float32)
    path = collection.learn_scores_path
    old = np.load(path)
    if len(old) < len(x):
        grown = np.zeros((len(x), old.shape[1]), np.float32)
        grown[: len(old)] = old
        missing = np.arange(len(old), len(x))
        grown[missing] = model.scores(x[missing])
        old = grown
    old[ids] = new
    save_npy_atomic(path, old)
    meta = _read_json(collection)
    meta["n_scored"] = int(len(old))
    write_json_atomic(collection.learn_meta_path, meta)
    return new
