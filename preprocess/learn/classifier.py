"""A classifier from the user's classes: one logistic regression per class on a feature set's embeddings.

Training set of class c (Perch's agile-modelling recipe):

* positives: the members of c;
* negatives (weight 1): the clips judged "not c" and the members of other classes that are not in c;
* weak negatives (weight ``weak_weight``): a random sample of unlabelled clips (most clips of a collection are
  not in any one class, so treating them as soft negatives sharpens the boundary).

Inputs are standardised (statistics from a 32k-row sample, folded into the weights at scoring), L2 penalty
``l2``; positives are re-weighted so each class's positives weigh as much as its negatives (``balance``).

Per class, ``n_folds``-fold cross-validation over the labelled clips gives average precision, the threshold
that maximises F1 on the held-out scores and the precision/recall at it. The final model's C heads and the
folds' C × n_folds heads are fitted as one batch of independent L-BFGS problems (:mod:`.lbfgs`: shared
matmuls, nothing else shared), so a round (statistics, fit, CV, scoring every clip) for 10 classes at 100k
clips × 1024-d takes well under 2 s on 2 cores (``bench/learn.py``, against scikit-learn side by side). Every clip then gets a score in
[0, 1] per class; :func:`fit` returns a :class:`Model` that :func:`save_model` writes to the collection
(``learn/model.npz``, ``learn/model.json`` with the history of rounds, ``learn/scores.npy``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from ..errors import ParameterError
from ..progress import CancelCheck, Progress, check_cancel, no_progress
from .lbfgs import fit_heads


@dataclass(frozen=True)
class LearnParams:
    """How the classifier is trained (chosen on half of the dev species; see bench/annotate.py)."""

    weak_weight: float = 0.0  # weight of one weak (unlabelled) negative; 0 = off (bench/annotate.py chose it)
    weak_per_labelled: float = 4.0  # weak negatives sampled per labelled clip …
    weak_min: int = 500  # … but at least this many (when there are that many unlabelled clips)
    l2: float = 1e-3  # L2 penalty on the weights (inputs standardised)
    balance: bool = True  # positives of each class weigh as much as its negatives
    max_iter: int = 100  # L-BFGS iterations at most per head (the folds and the final fit alike) …
    tol: float = 1e-5  # … each head stops when its gradient or its loss's relative fall is below this
    n_folds: int = 5
    random_state: int = 0


@dataclass
class Model:
    """A fitted multi-class linear model. ``scores(x)`` -> float32 [n, n_classes] in [0, 1]."""

    class_ids: list[int]
    class_names: list[str]
    mean: np.ndarray  # float32 [D]
    scale: np.ndarray  # float32 [D]
    weights: np.ndarray  # float32 [D, C]
    bias: np.ndarray  # float32 [C]
    thresholds: np.ndarray  # float32 [C]
    metrics: list[dict[str, Any]] = field(default_factory=list)  # per class: ap, precision, recall, threshold, …
    params: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)  # features, signature, created, round, n_train, time_s
    cv_clip_ids: np.ndarray | None = None  # int64 [m] the labelled clips …
    cv_scores: np.ndarray | None = None  # … float32 [m, C] their held-out (cross-validated) scores

    def logits(self, x: np.ndarray, *, chunk: int = 65536) -> np.ndarray:
        out = np.empty((len(x), len(self.class_ids)), np.float32)
        w = self.weights / self.scale[:, None]  # standardisation folded into the weights
        b = self.bias - self.mean @ w
        for a in range(0, len(x), chunk):
            out[a : a + chunk] = np.asarray(x[a : a + chunk], np.float32) @ w + b
        return out

    def scores(self, x: np.ndarray) -> np.ndarray:
        """float32 [n, C] probabilities of each class for embeddings ``x`` float32 [n, D]."""
        z = self.logits(x)
        return (1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))).astype(np.float32)

    def predict(self, scores: np.ndarray) -> np.ndarray:
        """int64 [n]: index of the best class whose score passes its threshold, else -1."""
        return predict(scores, self.thresholds)


def predict(scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """int64 [n] index of the highest-scoring class among those >= their threshold, -1 where none passes."""
    passing = np.where(scores >= thresholds[None, :], scores, -np.inf)
    best = np.argmax(passing, axis=1)
    return np.where(np.isfinite(passing[np.arange(len(scores)), best]), best, -1).astype(np.int64)


def _standardise_stats(
    x: np.ndarray, *, sample: int = 32768, seed: int = 0, chunk: int = 8192
) -> tuple[np.ndarray, np.ndarray]:
    """(mean, scale) float32 [D] over all rows, or over ``sample`` seeded random rows of a larger ``x``.

    One float32 pass in chunks (each chunk centred on its own mean, chunks combined in float64: no
    cancellation, no float64 copy of ``x``). Statistics only condition the fit (the model folds them into its
    weights), so a 32k-row sample is as good as all rows and keeps this step ~0.1 s at any size.
    """
    n, d = x.shape
    rows = None
    if n > sample:
        rows = np.sort(np.random.default_rng(seed).choice(n, size=sample, replace=False))
    total, mean, m2 = 0, np.zeros(d, np.float64), np.zeros(d, np.float64)
    m = n if rows is None else len(rows)
    for a in range(0, m, chunk):
        block = np.asarray(x[a : a + chunk] if rows is None else x[rows[a : a + chunk]], np.float32)
        k = len(block)
        mu = block.mean(0)
        c = block - mu
        var = np.einsum("ij,ij->j", c, c).astype(np.float64)
        delta = mu.astype(np.float64) - mean
        mean += delta * k / (total + k)
        m2 += var + delta**2 * total * k / (total + k)
        total += k
    std = np.sqrt(m2 / max(total, 1))
    return mean.astype(np.float32), np.where(std > 1e-6, std, 1.0).astype(np.float32)


def training_targets(
    n_clips: int, members: list[np.ndarray], negatives: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For the labelled clips: (clip ids int64 [m], targets float32 [m, C], weights float32 [m, C]).

    y[i, c] = 1 for members of c; 0 with weight 1 for explicit negatives of c and members of other classes.
    A clip in no class but a negative of some class counts as a negative of that class only.
    """
    n_classes = len(members)
    pos = np.zeros((n_clips, n_classes), bool)
    neg = np.zeros((n_clips, n_classes), bool)
    for c, ids in enumerate(members):
        pos[ids, c] = True
    for c, ids in enumerate(negatives):
        neg[ids, c] = True
    in_any = pos.any(1)
    neg |= in_any[:, None] & ~pos
    labelled = np.flatnonzero(pos.any(1) | neg.any(1))
    y = pos[labelled].astype(np.float32)
    w = (pos[labelled] | neg[labelled]).astype(np.float32)
    return labelled, y, w


def _fit_linear(
    x: np.ndarray, y: np.ndarray, w: np.ndarray, *, l2: float, max_iter: int, tol: float = 1e-6
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted logistic regression per column of y on standardised x [m, D]: (W float32 [D, H], b [H]).

    Each head is its own L-BFGS problem (:func:`preprocess.learn.lbfgs.fit_heads`), on one BLAS thread: the
    matrices are small, and on a busy 2-core machine a second thread makes them 20x slower, not faster.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        wgt, b, _ = fit_heads(np.ascontiguousarray(x, np.float32), y, w, l2=l2, max_iter=max_iter, tol=tol)
    return wgt, b


def average_precision(y: np.ndarray, s: np.ndarray) -> float:
    """Average precision of scores ``s`` against binary ``y`` (scikit-learn's definition, ties grouped)."""
    order = np.argsort(-s, kind="stable")
    ys, ss = y[order].astype(np.float64), s[order]
    tp = np.cumsum(ys)
    last = np.r_[ss[1:] != ss[:-1], True]  # the end of each group of tied scores
    tp, k = tp[last], np.flatnonzero(last) + 1
    recall = tp / max(ys.sum(), 1)
    precision = tp / k
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def _best_f1(y: np.ndarray, s: np.ndarray) -> tuple[float, float, float]:
    """(threshold, precision, recall) maximising F1 of ``s >= threshold`` against binary ``y``."""
    order = np.argsort(-s, kind="stable")
    ys, ss = y[order], s[order]
    tp = np.cumsum(ys)
    k = np.arange(1, len(ys) + 1)
    precision, recall = tp / k, tp / max(ys.sum(), 1)
    f1 = np.where(tp > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0)
    last = np.r_[ss[1:] != ss[:-1], True]  # only cut between distinct scores
    i = int(np.argmax(np.where(last, f1, -1)))
    nxt = ss[i + 1] if i + 1 < len(ss) else 0.0
    return float((ss[i] + nxt) / 2), float(precision[i]), float(recall[i])


def fit(
    x: np.ndarray,
    members: list[np.ndarray],
    negatives: list[np.ndarray] | None = None,
    *,
    class_ids: list[int] | None = None,
    class_names: list[str] | None = None,
    params: LearnParams | None = None,
    progress: Progress | None = None,
    should_cancel: CancelCheck | None = None,
) -> tuple[Model, np.ndarray]:
    """Fit one logistic regression per class on embeddings ``x`` float32 [n_clips, D].

    ``members[c]`` / ``negatives[c]``: int64 clip ids of class c. Returns (model, scores float32 [n_clips, C]).
    Classes need at least one member; a class without negatives learns from weak negatives only.
    """
    p = params or LearnParams()
    progress = progress or no_progress
    n_classes = len(members)
    if n_classes == 0:
        raise ParameterError("no classes to learn: create a class and add clips to it first")
    empty = [i for i, m in enumerate(members) if len(m) == 0]
    if empty:
        names = [(class_names or [str(i) for i in range(n_classes)])[i] for i in empty]
        raise ParameterError(f"classes without clips cannot be learnt: {', '.join(names)}; add clips or leave them out")
    negatives = negatives if negatives is not None else [np.zeros(0, np.int64)] * n_classes
    n = len(x)
    steps = 3
    progress("learn", 0, steps, "standardising")
    mean, scale = _standardise_stats(x, seed=p.random_state)
    labelled, y, w = training_targets(n, members, negatives)
    x_lab = (np.asarray(x[labelled], np.float32) - mean) / scale
    rng = np.random.default_rng(p.random_state)
    unlabelled = np.setdiff1d(np.arange(n), labelled, assume_unique=True)
    n_weak = min(len(unlabelled), max(p.weak_min, int(p.weak_per_labelled * len(labelled))))
    n_weak = n_weak if p.weak_weight > 0 else 0
    weak = np.sort(rng.choice(unlabelled, size=n_weak, replace=False)) if n_weak else np.zeros(0, np.int64)
    x_weak = (np.asarray(x[weak], np.float32) - mean) / scale
    check_cancel(should_cancel)

    # One batch of independent heads: the final model's C, then C per cross-validation fold. A fold's heads
    # give its held-out labelled rows weight 0, start from zero (not from the full fit, which has seen them:
    # that would flatter the metrics) and are optimised on their own (own history, line search, stop), so
    # they never see those rows. Weak negatives are always in training, never scored.
    n_folds = max(2, p.n_folds)
    folds = rng.permutation(len(labelled)) % n_folds
    xs, ys, ws = _train_set_parts(x_lab, y, w, x_weak, p)
    heads_w = [ws]
    for f in range(n_folds):
        keep = np.r_[folds != f, np.ones(len(weak), bool)].astype(np.float32)
        heads_w.append(_balance(_ws_raw(x_lab, y, w, x_weak, p) * keep[:, None], ys, p))
    check_cancel(should_cancel)
    progress("learn", 1, steps, f"fitting {n_classes} classes and {n_folds} cross-validation folds")
    all_w, all_b = _fit_linear(
        xs, np.tile(ys, n_folds + 1), np.concatenate(heads_w, axis=1), l2=p.l2, max_iter=p.max_iter, tol=p.tol
    )
    check_cancel(should_cancel)
    wgt, b = all_w[:, :n_classes].copy(), all_b[:n_classes].copy()
    cv = np.zeros_like(y)
    for f in range(n_folds):
        test = np.flatnonzero(folds == f)
        cols = slice((f + 1) * n_classes, (f + 2) * n_classes)
        cv[test] = 1 / (1 + np.exp(-np.clip(x_lab[test] @ all_w[:, cols] + all_b[cols], -30, 30)))
    progress("learn", 2, steps, "scoring every clip")
    metrics, thresholds = [], np.zeros(n_classes, np.float32)
    for c in range(n_classes):
        judged = w[:, c] > 0
        yc, sc = y[judged, c], cv[judged, c]
        m = {"n_positive": int(yc.sum()), "n_negative": int((1 - yc).sum())}
        if yc.sum() >= 1 and (1 - yc).sum() >= 1:
            thr, prec, rec = _best_f1(yc, sc)
            m.update(ap=average_precision(yc, sc), threshold=thr, precision=prec, recall=rec)
        else:  # nothing to validate against: the decision boundary of the probability
            m.update(ap=None, threshold=0.5, precision=None, recall=None)
        thresholds[c] = m["threshold"]
        metrics.append(m)

    model = Model(
        class_ids=list(class_ids or range(n_classes)),
        class_names=list(class_names or [str(i) for i in range(n_classes)]),
        mean=mean,
        scale=scale,
        weights=wgt,
        bias=b,
        thresholds=thresholds,
        metrics=metrics,
        params=asdict(p),
        info={"n_labelled": int(len(labelled)), "n_weak": int(len(weak)), "created": _now()},
        cv_clip_ids=labelled.astype(np.int64),
        cv_scores=cv.astype(np.float32),
    )
    scores = model.scores(x)
    progress("learn", steps, steps, "done")
    return model, scores


def _ws_raw(x_lab: np.ndarray, y: np.ndarray, w: np.ndarray, x_weak: np.ndarray, p: LearnParams) -> np.ndarray:
    """float32 [m + n_weak, C] row weights before balancing: the labelled rows', then ``weak_weight``."""
    return np.concatenate([w, np.full((len(x_weak), y.shape[1]), p.weak_weight, np.float32)])


def _balance(ws: np.ndarray, ys: np.ndarray, p: LearnParams) -> np.ndarray:
    """Re-weight each column's positives to weigh as much as its negatives (never down)."""
    if not p.balance:
        return ws
    pos_w = (ws * ys).sum(0)
    neg_w = (ws * (1 - ys)).sum(0)
    factor = np.where(pos_w > 0, neg_w / np.maximum(pos_w, 1e-6), 1.0).clip(1.0, None)
    return (ws * np.where(ys > 0, factor[None, :], 1.0)).astype(np.float32)


def _train_set_parts(
    x_lab: np.ndarray, y: np.ndarray, w: np.ndarray, x_weak: np.ndarray, p: LearnParams
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stack labelled and weak rows; balance each class's positives against its negatives."""
    xs = np.concatenate([x_lab, x_weak]) if len(x_weak) else x_lab
    ys = np.concatenate([y, np.zeros((len(x_weak), y.shape[1]), np.float32)])
    return xs, ys, _balance(_ws_raw(x_lab, y, w, x_weak, p), ys, p)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
