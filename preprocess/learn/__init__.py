"""Learning from the user's classes: a linear classifier per class, its review queue, its scores in the collection.

The server calls these (each a short function over the collection and its label store):

* :func:`train` -> (Model, scores float32 [n_clips, C]); a job (progress, should_cancel); one round.
* :func:`load_model`, :func:`load_scores`, :func:`score_new` (clips added after training).
* :func:`review_queue` -> items for one class; :func:`estimate_precision` from judged random items.
* :func:`accept_above` adds every unlabelled clip scoring >= the class threshold (one undo step).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..collection import Collection
from ..labels import LabelStore
from .classifier import LearnParams, Model, fit, predict
from .review import DEFAULT_MIX, above_threshold, candidates, class_column, estimate_precision, make_queue
from .store import load_model, load_scores, save_model, score_new, train

__all__ = [
    "LearnParams",
    "Model",
    "fit",
    "predict",
    "train",
    "load_model",
    "load_scores",
    "save_model",
    "score_new",
    "review_queue",
    "estimate_precision",
    "accept_above",
    "make_queue",
    "candidates",
]


def review_queue(
    collection: Collection,
    class_id: int,
    *,
    n: int = 20,
    random_state: int | None = 0,
    mix: tuple[float, float, float] = DEFAULT_MIX,
    n_bins: int = 4,
    include_labelled: bool = False,
    n_suspect: int = 0,
    exclude: Any = None,
    store: LabelStore | None = None,
) -> list[dict[str, Any]]:
    """The next ``n`` clips to review for ``class_id`` from the saved model (see :mod:`preprocess.learn.review`),
    plus ``n_suspect`` of its members that the model doubts most; ``exclude``: clip ids to leave out."""
    model = load_model(collection)
    col = class_column(model, class_id)
    scores = load_scores(collection)[:, col]
    members, negatives = _labels(collection, store)
    cand = candidates(len(scores), int(class_id), members, negatives, include_labelled=include_labelled)
    suspects = members.get(int(class_id))
    if exclude is not None:  # e.g. clips already reviewed in this session
        skip = np.asarray(list(exclude), np.int64)
        cand = np.setdiff1d(cand, skip)
        suspects = None if suspects is None else np.setdiff1d(suspects, skip)
    items = make_queue(
        scores,
        float(model.thresholds[col]),
        cand,
        n=n,
        mix=mix,
        n_bins=n_bins,
        random_state=random_state,
        suspects=suspects,
        suspect_scores=_held_out(model, col, len(scores)),
        n_suspect=n_suspect,
    )
    for it in items:
        it["class_id"] = int(class_id)
        it["round"] = int(model.info.get("round", 0))
    return items


def accept_above(collection: Collection, class_id: int, *, store: LabelStore | None = None, who: str = "") -> dict:
    """Add every unlabelled clip whose score passes the class threshold to the class: one change, provenance
    ``{kind: "accept-above", class_id, threshold, round}``. Returns the store's change."""
    model = load_model(collection)
    col = class_column(model, class_id)
    scores = load_scores(collection)[:, col]
    own = store is None
    store = store or LabelStore.open(collection)
    try:
        members, negatives = store.members(), store.negatives()
        cand = candidates(len(scores), int(class_id), members, negatives)
        ids = above_threshold(scores, float(model.thresholds[col]), cand)
        if ids.size == 0:
            return {"kind": "add", "class_id": int(class_id), "n": 0}
        return store.accept_above(
            class_id, ids, threshold=float(model.thresholds[col]), model_round=int(model.info.get("round", 0)), who=who
        )
    finally:
        if own:
            store.close()


def _held_out(model: Model, col: int, n: int) -> np.ndarray | None:
    """float32 [n] held-out margin of the labelled clips for one class: its cross-validated score minus the best
    other class's (NaN for unlabelled clips), or None when the model has no CV scores."""
    if model.cv_clip_ids is None or not len(model.cv_clip_ids):
        return None
    out = np.full(n, np.nan, np.float32)
    ok = model.cv_clip_ids < n
    cv = model.cv_scores[ok]
    own = cv[:, col]
    if cv.shape[1] > 1:  # doubt = another class's held-out score beats this one's (a clip pooled by mistake)
        own = own - np.delete(cv, col, axis=1).max(axis=1)
    out[model.cv_clip_ids[ok]] = own
    return out


def _labels(collection: Collection, store: LabelStore | None) -> tuple[dict, dict]:
    if store is not None:
        return store.members(), store.negatives()
    with LabelStore.open(collection) as s:
        return s.members(), s.negatives()
