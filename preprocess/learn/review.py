"""The review queue of one class, an honest precision estimate, and "accept all above threshold".

A queue mixes three strategies over the class's *candidates* (clips neither in the class nor judged "not in
it"; by default also not in any other class):

* ``top``: the highest-scoring candidates (most likely new members: fast recall);
* ``uncertain``: the candidates closest to the class threshold (most informative for the next round);
* ``random``: a few drawn uniformly at random inside score bins (bin 0 = below the threshold, bins 1.. split
  [threshold, 1] evenly). Each random item carries its bin's size and the number drawn from it, so its
  inverse-probability weight is ``bin_size / bin_draws`` and :func:`estimate_precision` is unbiased for the
  precision of "score >= threshold" over all candidates (Perch's estimator), whatever the other strategies
  showed the user.

Optionally (``n_suspect``) the queue also carries *suspects*: members of the class that the model scores
lowest for it, e.g. minority clips of a pooled cluster. Rejecting one (a negative) takes it out of the class.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import NotFoundError, ParameterError

STRATEGIES = ("top", "uncertain", "random", "suspect")
#: Default share of the queue per strategy (top, uncertain, random); see bench/annotate.py.
DEFAULT_MIX = (0.5, 0.3, 0.2)


def candidates(
    n_clips: int,
    class_id: int,
    members: dict[int, np.ndarray],
    negatives: dict[int, np.ndarray],
    *,
    include_labelled: bool = False,
) -> np.ndarray:
    """int64 clip ids the user has not judged for ``class_id`` (and, unless ``include_labelled``, in no class)."""
    judged = np.zeros(n_clips, bool)
    judged[members.get(class_id, np.zeros(0, np.int64))] = True
    judged[negatives.get(class_id, np.zeros(0, np.int64))] = True
    if not include_labelled:
        for ids in members.values():
            judged[ids] = True
    return np.flatnonzero(~judged)


def score_bins(threshold: float, n_bins: int) -> np.ndarray:
    """Bin edges float64 [n_bins + 1]: [0, threshold) then [threshold, 1] in n_bins - 1 equal parts."""
    if n_bins < 2:
        raise ParameterError(f"n_bins must be at least 2, got {n_bins}")
    return np.r_[0.0, np.linspace(threshold, 1.0, n_bins)]


def make_queue(
    scores: np.ndarray,
    threshold: float,
    candidate_ids: np.ndarray,
    *,
    n: int = 20,
    mix: tuple[float, float, float] = DEFAULT_MIX,
    n_bins: int = 4,
    random_state: int | None = 0,
    suspects: np.ndarray | None = None,
    n_suspect: int = 0,
    suspect_scores: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    """Up to ``n`` items ``{clip_id, score, strategy, bin, bin_size, bin_draws, weight}`` for one class.

    ``scores`` float32 [n_clips] (this class's column); ``candidate_ids`` from :func:`candidates`. Order:
    interleaved by strategy so the user hears a mix from the start. ``weight`` is the inverse inclusion
    probability for ``random`` items, None for the others.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ParameterError(f"n must be a positive integer, got {n!r}")
    if len(mix) != 3 or min(mix) < 0 or sum(mix) <= 0:
        raise ParameterError(f"mix must be three non-negative shares (top, uncertain, random), got {mix!r}")
    rng = np.random.default_rng(random_state)
    cand = np.asarray(candidate_ids, np.int64)
    s = np.asarray(scores, np.float32)[cand]
    shares = np.asarray(mix, float) / sum(mix)
    n = min(int(n), len(cand))
    n_random = int(round(n * shares[2]))
    n_top = int(round(n * shares[0]))
    n_unc = n - n_top - n_random
    taken = np.zeros(len(cand), bool)
    lists: dict[str, list[dict[str, Any]]] = {k: [] for k in STRATEGIES}

    # random first, so its draws are uniform over each bin's candidates (unaffected by the other strategies)
    edges = score_bins(threshold, n_bins)
    which = np.clip(np.searchsorted(edges, s, side="right") - 1, 0, n_bins - 1)
    bins = [np.flatnonzero(which == b) for b in range(n_bins)]
    per_bin = np.zeros(n_bins, int)
    nonempty = [b for b in range(n_bins) if len(bins[b])]
    for k in range(n_random):  # spread evenly over the non-empty bins
        if not nonempty:
            break
        b = nonempty[k % len(nonempty)]
        per_bin[b] = min(per_bin[b] + 1, len(bins[b]))
    for b in range(n_bins):
        if per_bin[b]:
            for i in rng.choice(bins[b], size=per_bin[b], replace=False):
                taken[i] = True
                lists["random"].append(
                    _item(cand[i], s[i], "random", b, len(bins[b]), int(per_bin[b]), len(bins[b]) / per_bin[b])
                )
    order = np.argsort(-s, kind="stable")
    for i in order[~taken[order]][:n_top]:
        taken[i] = True
        lists["top"].append(_item(cand[i], s[i], "top", int(which[i]), None, None, None))
    near = np.argsort(np.abs(s - threshold), kind="stable")
    for i in near[~taken[near]][:n_unc]:
        taken[i] = True
        lists["uncertain"].append(_item(cand[i], s[i], "uncertain", int(which[i]), None, None, None))
    # suspects: members of the class the model doubts most (lowest score first); a reject takes them out
    sus = np.asarray(suspects if suspects is not None else [], np.int64)
    if n_suspect and sus.size:
        # held-out scores where known: the final model has fitted every member, so its own scores say little
        ss = np.asarray(
            scores if suspect_scores is None else np.where(np.isnan(suspect_scores), scores, suspect_scores), np.float32
        )[sus]
        for i in np.argsort(ss, kind="stable")[: int(n_suspect)]:
            lists["suspect"] = [*lists.get("suspect", []), _item(sus[i], ss[i], "suspect", -1, None, None, None)]
    out: list[dict[str, Any]] = []
    while any(lists.values()):
        for k in ("suspect", "top", "uncertain", "random"):
            if not lists.get(k):
                continue
            out.append(lists[k].pop(0))
    return out


def _item(clip_id: Any, score: Any, strategy: str, b: int, size: Any, draws: Any, weight: Any) -> dict[str, Any]:
    return {
        "clip_id": int(clip_id),
        "score": float(score),
        "strategy": strategy,
        "bin": int(b),
        "bin_size": size,
        "bin_draws": draws,
        "weight": None if weight is None else float(weight),
    }


def estimate_precision(items: list[dict[str, Any]], judgements: dict[int, bool], threshold: float) -> dict[str, Any]:
    """Precision of "score >= threshold" among candidates, from the judged ``random`` items (IPW).

    ``judgements``: clip_id -> True (in the class) / False. Returns ``{precision, n_judged, stderr}``;
    precision is None until a random item above the threshold has been judged.
    """
    w, y = [], []
    for it in items:
        if it["strategy"] == "random" and it["score"] >= threshold and it["clip_id"] in judgements:
            w.append(it["weight"])
            y.append(1.0 if judgements[it["clip_id"]] else 0.0)
    if not w:
        return {"precision": None, "n_judged": 0, "stderr": None}
    wa, ya = np.asarray(w), np.asarray(y)
    p = float((wa * ya).sum() / wa.sum())
    se = float(np.sqrt(((wa / wa.sum()) ** 2 * (ya - p) ** 2).sum()))
    return {"precision": p, "n_judged": len(w), "stderr": se}


def class_column(model: Any, class_id: int) -> int:
    """The column of ``class_id`` in the model's scores (NotFoundError if it was not trained)."""
    try:
        return list(model.class_ids).index(int(class_id))
    except ValueError:
        raise NotFoundError(f"class {class_id} was not in the last training round; train again") from None


def above_threshold(scores: np.ndarray, threshold: float, candidate_ids: np.ndarray) -> np.ndarray:
    """int64 candidate clip ids whose score is >= ``threshold`` (what "accept all above threshold" adds)."""
    cand = np.asarray(candidate_ids, np.int64)
    return cand[np.asarray(scores)[cand] >= threshold]
