"""A classifier from the user's classes: one logistic regression per class on a feature set's embeddings.

Training set of class c (Perch's agile-modelling recipe):

* positives: the members of c;
* negatives (weight 1): the clips judged "not c" and the members of other classes that are not in c;
* weak negatives (weight ``weak_weight``): a random sample of unlabelled clips (most clips of a collection are
  not in any one class, so treating them as soft negatives sharpens the boundary).

All classes are trained jointly as one multi-head linear model in torch (inputs standardised, full-batch
L-BFGS, L2 penalty ``l2``), so 10 classes at 100k clips × 1024-d train in well under 2 s on 2 cores
(``bench/learn.py`` measures it against scikit-learn's LogisticRegression). Positives are re-weighted so
each class's positives weigh as much as its negatives (``balance``).

Per class, ``n_folds``-fold cross-validation over the labelled clips gives average precision, the threshold
that maximises F1 on the held-out scores and the precision/recall at it. Every clip then gets a score in
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


@dataclass(frozen=True)
class LearnParams:
    """How the classifier is trained (chosen on half of the dev species; see bench/annotate.py)."""

    weak_weight: float = 0.0  # weight of one weak (unlabelled) negative; 0 = off (bench/annotate.py chose it)
    weak_per_labelled: float = 4.0  # weak negatives sampled per labelled clip …
    weak_min: int = 500  # … but at least this many (when there are that many unlabelled clips)
    l2: float = 1e-3  # L2 penalty on the weights (inputs standardised)
    balance: bool = True  # positives of each class weigh as much as its negatives
    max_iter: int = 60  # L-BFGS iterations (the same for the folds and the final fit, so thresholds carry over)
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


def _standardise_stats(x: np.ndarray, *, chunk: int = 65536) -> tuple[np.ndarray, np.ndarray]:
    n, d = x.shape
    s, ss = np.zeros(d, np.float64), np.zeros(d, np.float64)
    for a in range(0, n, chunk):
        block = np.asarray(x[a : a + chunk], np.float64)
        s += block.sum(0)
        ss += (block**2).sum(0)
    mean = s / max(n, 1)
    std = np.sqrt(np.maximum(ss / max(n, 1) - mean**2, 0))
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
    x: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    *,
    l2: float,
    max_iter: int,
    init: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted multi-head logistic regression on standardised x [m, D]: (W [D, C], b [C]) by full-batch
    L-BFGS, warm-started from ``init`` when given."""
    import torch

    xt, yt, wt = (torch.from_numpy(np.ascontiguousarray(a, np.float32)) for a in (x, y, w))
    d, c = x.shape[1], y.shape[1]
    if init is None:
        weight, bias = torch.zeros(d, c), torch.zeros(c)
    else:
        weight, bias = torch.from_numpy(init[0].copy()), torch.from_numpy(init[1].copy())
    weight.requires_grad_(True)
    bias.requires_grad_(True)
    opt = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=max_iter, history_size=10, line_search_fn="strong_wolfe")
    norm = wt.sum(0).clamp(min=1e-6)

    def closure() -> Any:
        opt.zero_grad()
        z = xt @ weight + bias
        loss_c = (torch.nn.functional.binary_cross_entropy_with_logits(z, yt, reduction="none") * wt).sum(0) / norm
        loss = loss_c.sum() + 0.5 * l2 * (weight**2).sum()
        loss.backward()
        return loss

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small matrices: one thread is faster, and far faster on a busy shared machine
    try:
        opt.step(closure)
    finally:
        torch.set_num_threads(threads)
    return weight.detach().numpy().astype(np.float32), bias.detach().numpy().astype(np.float32)


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
    from sklearn.metrics import average_precision_score

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
    steps = p.n_folds + 2
    progress("learn", 0, steps, "standardising")
    mean, scale = _standardise_stats(x)
    labelled, y, w = training_targets(n, members, negatives)
    x_lab = (np.asarray(x[labelled], np.float32) - mean) / scale
    rng = np.random.default_rng(p.random_state)
    unlabelled = np.setdiff1d(np.arange(n), labelled, assume_unique=True)
    n_weak = min(len(unlabelled), max(p.weak_min, int(p.weak_per_labelled * len(labelled))))
    n_weak = n_weak if p.weak_weight > 0 else 0
    weak = np.sort(rng.choice(unlabelled, size=n_weak, replace=False)) if n_weak else np.zeros(0, np.int64)
    x_weak = (np.asarray(x[weak], np.float32) - mean) / scale
    check_cancel(should_cancel)

    xs, ys, ws = _train_set_parts(x_lab, y, w, x_weak, p)
    wgt, b = _fit_linear(xs, ys, ws, l2=p.l2, max_iter=p.max_iter)
    del xs, ys, ws
    check_cancel(should_cancel)
    progress("learn", 1, steps, "fitted; cross-validating")

    # cross-validation over the labelled clips (weak negatives always in training, never scored). Folds start
    # from zero, not from the full fit, which has seen their held-out clips (that would flatter the metrics)
    folds = rng.permutation(len(labelled)) % max(2, p.n_folds)
    cv = np.zeros_like(y)
    rows = np.arange(len(labelled))
    for f in range(max(2, p.n_folds)):
        test = rows[folds == f]
        train = rows[folds != f]
        xs, ys, ws = _train_set_parts(x_lab[train], y[train], w[train], x_weak, p)
        fw, fb = _fit_linear(xs, ys, ws, l2=p.l2, max_iter=p.max_iter)
        cv[test] = 1 / (1 + np.exp(-np.clip(x_lab[test] @ fw + fb, -30, 30)))
        check_cancel(should_cancel)
        progress("learn", f + 2, steps, f"cross-validation fold {f + 1}")
    metrics, thresholds = [], np.zeros(n_classes, np.float32)
    for c in range(n_classes):
        judged = w[:, c] > 0
        yc, sc = y[judged, c], cv[judged, c]
        m = {"n_positive": int(yc.sum()), "n_negative": int((1 - yc).sum())}
        if yc.sum() >= 1 and (1 - yc).sum() >= 1:
            thr, prec, rec = _best_f1(yc, sc)
            m.update(ap=float(average_precision_score(yc, sc)), threshold=thr, precision=prec, recall=rec)
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


def _train_set_parts(
    x_lab: np.ndarray, y: np.ndarray, w: np.ndarray, x_weak: np.ndarray, p: LearnParams
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stack labelled and weak rows; balance each class's positives against its negatives."""
    xs = np.concatenate([x_lab, x_weak]) if len(x_weak) else x_lab
    ys = np.concatenate([y, np.zeros((len(x_weak), y.shape[1]), np.float32)])
    ws = np.concatenate([w, np.full((len(x_weak), y.shape[1]), p.weak_weight, np.float32)])
    if p.balance:
        pos_w = (ws * ys).sum(0)
        neg_w = (ws * (1 - ys)).sum(0)
        factor = np.where(pos_w > 0, neg_w / np.maximum(pos_w, 1e-6), 1.0).clip(1.0, None)
        ws = ws * np.where(ys > 0, factor[None, :], 1.0)
    return xs, ys, ws


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
