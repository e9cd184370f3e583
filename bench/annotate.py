"""A simulated annotator driving sonomap's own functions: pool clusters, then review rounds, retraining between.

    python bench/annotate.py COLLECTION --truth CSV [--budget 0.3] [--tune]

``--truth``: a CSV with ``clip_id,label`` or ``path,label`` (recordings' paths, e.g. the dev set's labels.csv).
The collection is copied (features, reductions, tables only); its labels are never touched.

The annotator (a perfect oracle) works like a user:

1. clusters the default reduction (the app's defaults: HDBSCAN, default parameters with min_cluster_size scaled
   as the page does, on the first reduction's 8-d coordinates) and pools the largest clusters, one action each,
   into a class named by the cluster's majority truth label, while a cluster still adds a new class or has at
   least ``pool_min`` clips;
2. trains (``preprocess.learn.train``) and then reviews rounds of queues (``preprocess.learn.review_queue``),
   one class after another, judging each clip (one action): accept = add to the class, reject = "not in it"
   (``add_negatives``); retrains after every round. Each round also offers ``--suspects`` members per class that
   the model doubts most (held-out score minus the best other class's); a wrong one is rejected (one action)
   and, when its true class exists, added there (a second action).

After every action it prints the share of clips whose final label is right (the user's label, else the
classifier's ``predicted``, else wrong). Then the actions needed for 90 % and 95 % against pooling clusters
alone (labels only) and labelling clips one by one (one action per clip).

Defaults of the loop (weak-negative weight, queue mix) are chosen with ``--tune`` on HALF of the species
(the first half in sorted order) and reported on the other half and on all; the output says which is which.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from preprocess.cluster import cluster, validate_params  # noqa: E402
from preprocess.collection import Collection  # noqa: E402
from preprocess.labels import LabelStore  # noqa: E402
from preprocess.learn import LearnParams, load_model, load_scores, review_queue, train  # noqa: E402

SUSPECTS = 1  # members the model doubts most, offered per class per round (set by --suspects)
COPY = ("manifest.json", "clips.parquet", "recordings.parquet", "features", "reductions")


def truth_labels(coll: Collection, csv: Path) -> np.ndarray:
    """object [n_clips] truth label per clip ('' where unknown)."""
    t = pd.read_csv(csv)
    clips = coll.clips()
    if "clip_id" in t.columns:
        out = np.full(len(clips), "", object)
        out[t["clip_id"].to_numpy(int)] = t["label"].astype(str).to_numpy()
        return out
    recs = coll.recordings()
    by_path = dict(zip(t["path"].astype(str), t["label"].astype(str), strict=True))
    rec_label = recs["path"].astype(str).map(by_path).fillna("").to_numpy(object)
    return rec_label[clips["recording_id"].to_numpy(int)]


def default_clusters(coll: Collection) -> np.ndarray:
    key = coll.reductions()[0]
    dims = sorted(int(d) for d in coll.reduction_meta(key)["dims"])
    d = next((x for x in dims if x >= 8), dims[-1])
    x = coll.reduced(key, d)
    params = validate_params("hdbscan", None)
    params["min_cluster_size"] = max(params["min_cluster_size"], min(500, round(len(x) / 100)))
    return cluster(x, algorithm="hdbscan", params=params)


class Annotator:
    def __init__(self, coll: Collection, truth: np.ndarray, params: LearnParams, mix: tuple, per_round: int) -> None:
        self.coll, self.truth, self.params, self.mix, self.per_round = coll, truth, params, mix, per_round
        self.store = LabelStore.open(coll)
        self.class_of: dict[str, int] = {}
        self.actions = 0
        self.curve: list[tuple[int, np.ndarray]] = []  # (actions, right? bool [n])
        self.trained = False
        self.n_suspect = SUSPECTS
        self.seen: set[int] = set()  # clips judged in this session (the queue does not offer them again)

    def final_labels(self) -> np.ndarray:
        n = len(self.truth)
        out = np.full(n, "", object)
        if self.trained:
            model = load_model(self.coll)
            scores = load_scores(self.coll)
            pred = model.predict(scores)
            names = np.asarray([*model.class_names, ""], object)
            out = names[pred]
        name_of = {cid: name for name, cid in self.class_of.items()}
        for cid, ids in self.store.members().items():
            out[ids] = name_of[cid]
        return out

    def record(self) -> None:
        self.curve.append((self.actions, self.final_labels() == self.truth))

    def retrain(self) -> None:
        if self.class_of:
            train(self.coll, params=self.params, store=self.store)
            self.trained = True

    def pool(self, clusters: np.ndarray, pool_min: int) -> None:
        ids, sizes = np.unique(clusters[clusters >= 0], return_counts=True)
        for c in ids[np.argsort(-sizes, kind="stable")]:
            members = np.flatnonzero(clusters == c)
            labels, counts = np.unique(self.truth[members], return_counts=True)
            label = str(labels[np.argmax(counts)])
            if label in self.class_of and len(members) < pool_min:
                break
            if label not in self.class_of:
                self.class_of[label] = self.store.create_class(label)["class_id"]
            self.store.add_members(self.class_of[label], members, source={"kind": "cluster", "cluster_id": int(c)})
            self.actions += 1
            self.retrain()
            self.record()

    def review(self, budget: int) -> None:
        while self.actions < budget:
            before = self.actions
            for name, cid in list(self.class_of.items()):
                try:
                    items = review_queue(
                        self.coll,
                        cid,
                        n=self.per_round,
                        mix=self.mix,
                        n_suspect=self.n_suspect,
                        exclude=self.seen,
                        store=self.store,
                    )
                except Exception:  # class not in the model (no members) - nothing to review
                    continue
                for it in items:
                    if self.actions >= budget:
                        break
                    c = it["clip_id"]
                    self.seen.add(c)
                    if it["strategy"] == "suspect" and self.truth[c] != name:
                        self.store.add_negatives(cid, [c], source={"kind": "review"})  # takes it out
                        right = self.class_of.get(str(self.truth[c]))
                        if right is not None and self.actions + 1 < budget:  # and puts it where it belongs
                            self.store.add_members(right, [c], source={"kind": "review"})
                            self.actions += 1
                    elif self.truth[c] == name:
                        self.store.add_members(cid, [c], source={"kind": "review"})
                    else:
                        self.store.add_negatives(cid, [c], source={"kind": "review"})
                    self.actions += 1
                self.retrain()
                self.record()
            if self.actions == before:
                break


def reach(curve: list[tuple[int, np.ndarray]], mask: np.ndarray, target: float) -> int | None:
    for actions, right in curve:
        if right[mask].mean() >= target:
            return actions
    return None


def run_loop(coll_src: Path, truth: np.ndarray, clusters: np.ndarray, *, params, mix, per_round, budget, pool_min):
    with tempfile.TemporaryDirectory() as d:
        root = Path(d) / "coll"
        root.mkdir()
        for name in COPY:
            src = coll_src / name
            (shutil.copytree if src.is_dir() else shutil.copy2)(src, root / name)
        coll = Collection.open(root)
        a = Annotator(coll, truth, params, mix, per_round)
        a.record()
        a.pool(clusters, pool_min)
        pooled = a.actions
        a.review(budget)
        a.store.close()
        return a.curve, pooled


def pool_only_curve(truth: np.ndarray, clusters: np.ndarray) -> list[tuple[int, np.ndarray]]:
    out = np.full(len(truth), "", object)
    curve = [(0, out == truth)]
    ids, sizes = np.unique(clusters[clusters >= 0], return_counts=True)
    for k, c in enumerate(ids[np.argsort(-sizes, kind="stable")], 1):
        m = clusters == c
        labels, counts = np.unique(truth[m], return_counts=True)
        out[m] = labels[np.argmax(counts)]
        curve.append((k, out == truth))
    return curve


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("collection")
    ap.add_argument("--truth", required=True, type=Path)
    ap.add_argument("--budget", type=float, default=0.3, help="actions as a share of the clip count (default 0.3)")
    ap.add_argument("--per-round", type=int, default=2, help="clips judged per class per round")
    ap.add_argument("--pool-min", type=int, default=10, help="stop pooling at clusters smaller than this")
    ap.add_argument("--suspects", type=int, default=1, help="doubted members reviewed per class per round")
    ap.add_argument("--tune", action="store_true", help="choose weak weight and queue mix on half the species")
    args = ap.parse_args()
    global SUSPECTS
    SUSPECTS = args.suspects
    src = Path(args.collection)
    coll = Collection.open(src)
    truth = truth_labels(coll, args.truth)
    n = len(truth)
    species = sorted(set(truth) - {""})
    half_a = np.isin(truth, species[: len(species) // 2])
    half_b = np.isin(truth, species[len(species) // 2 :])
    clusters = default_clusters(coll)
    budget = int(round(args.budget * n))
    print(f"{n} clips, {len(species)} species, {clusters.max() + 1} clusters (HDBSCAN defaults), budget {budget}")
    print(f"tuning half: {species[: len(species) // 2]}\nreport half: {species[len(species) // 2 :]}")
    grid = [(0.0, (0.5, 0.3, 0.2)), (0.0, (0.2, 0.6, 0.2)), (0.02, (0.5, 0.3, 0.2)), (0.02, (0.2, 0.6, 0.2))]
    if not args.tune:
        grid = grid[:1]
    results = []
    for ww, mix in grid:
        t0 = time.perf_counter()
        curve, pooled = run_loop(src, truth, clusters, params=LearnParams(weak_weight=ww), mix=mix,
                                 per_round=args.per_round, budget=budget, pool_min=args.pool_min)  # fmt: skip
        auc_a = float(np.mean([r[half_a].mean() for _, r in curve]))
        results.append((ww, mix, curve, pooled, auc_a, time.perf_counter() - t0))
        print(f"# weak_weight={ww} mix={mix}: mean accuracy on the tuning half over the run {auc_a:.3f} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)  # fmt: skip
    ww, mix, curve, pooled, _, _ = max(results, key=lambda r: r[4])
    print(f"\nchosen on the tuning half: weak_weight={ww}, mix (top, uncertain, random)={mix}")
    print(f"{'actions':>7}  {'step':<7} {'all':>6} {'tuning':>7} {'report':>7}")
    for k, (actions, right) in enumerate(curve):
        step = "start" if k == 0 else ("pool" if k <= pooled else "review")
        print(f"{actions:>7}  {step:<7} {right.mean():6.3f} {right[half_a].mean():7.3f} {right[half_b].mean():7.3f}")
    pool = pool_only_curve(truth, clusters)
    print(f"\nactions to reach a share of clips right (5 % of the clips = {0.05 * n:.0f} actions)")
    print(f"{'method':<34} {'set':<7} {'90 %':>6} {'95 %':>6}")
    for name, mask in (("all", np.ones(n, bool)), ("tuning", half_a), ("report", half_b)):
        for method, c in (("pool + classifier + review", curve), ("pooling clusters alone", pool)):
            r90, r95 = reach(c, mask, 0.90), reach(c, mask, 0.95)
            print(f"{method:<34} {name:<7} {r90 if r90 is not None else '-':>6} {r95 if r95 is not None else '-':>6}")
        m = int(mask.sum())
        print(f"{'one by one':<34} {name:<7} {int(np.ceil(0.9 * m)):>6} {int(np.ceil(0.95 * m)):>6}")
    print("('-': not reached within the budget / by pooling every cluster)")


if __name__ == "__main__":
    main()
