"""A training round's time and quality: sonomap's classifier vs scikit-learn's LogisticRegression, side by side.

    python bench/learn.py [--n 100000] [--dim 1024] [--classes 10] [--per-class 100] [--weak 0.02] [--repeat 2]

Synthetic clustered embeddings (maths): ``classes`` class centres plus twice as many background clusters,
isotropic noise ``--noise``; ``per-class`` labelled clips per class. A *round* is what ``learn.train`` runs:
standardisation statistics, the final fit, 5-fold cross-validation over the labelled clips (held-out AP,
thresholds) and a score for every clip. scikit-learn does the same round with the tools a user would pick
(``StandardScaler``, one ``LogisticRegression`` per class, ``cross_val_predict`` 5-fold, ``predict_proba`` on all).
Methods alternate in each repeat (the machine is shared and noisy); the table keeps each one's fastest repeat,
wall and CPU seconds, and the mean AP of the scores over all clips against the true classes.

Measured 2026-12-01 (100k x 1024, 10 classes, 100 labelled each; 2 cores shared by ~7 engineers, load 8-11):

    method                                   noise 1.5: wall / cpu / mAP   noise 10: wall / cpu / mAP
    sonomap round, weak off (default)            0.55 / 0.30 / 1.000          2.28 / 0.41 / 0.489
    sonomap round, weak 0.02                     2.30 / 1.42 / 1.000          4.18 / 0.84 / 0.433
    sklearn scaler + LR OvR + 5-fold CV         66.30 / 44.48 / 1.000        99.75 / 34.21 / 0.481
    before (main 11a37f3, torch joint L-BFGS)    5.3-5.6 / 3.6-3.8 (warm; 19-34 s on first calls)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from preprocess.learn import LearnParams, fit  # noqa: E402
from preprocess.learn.classifier import average_precision  # noqa: E402


def data(n: int, dim: int, n_classes: int, seed: int = 0, noise: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_classes * 3, dim)).astype(np.float32)  # 2/3 of clusters are background
    c = rng.integers(0, len(centres), n)
    x = np.empty((n, dim), np.float32)
    for a in range(0, n, 20000):
        b = min(n, a + 20000)
        x[a:b] = centres[c[a:b]] + noise * rng.normal(size=(b - a, dim)).astype(np.float32)
    y = np.where(c < n_classes, c, -1)
    return x, y


def mean_ap(scores: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean([average_precision(y == k, scores[:, k]) for k in range(scores.shape[1])]))


def sonomap_round(x: np.ndarray, members: list[np.ndarray], weak: float) -> tuple[np.ndarray, dict[str, float]]:
    stages: dict[str, float] = {}
    last = [time.perf_counter()]

    def progress(_stage: str, done: int, _total: int, message: str) -> None:
        now = time.perf_counter()
        if done:
            stages[previous[0]] = now - last[0]
        previous[0], last[0] = message.split(" ")[0], now

    previous = [""]
    _, scores = fit(x, members, params=LearnParams(weak_weight=weak), progress=progress)
    return scores, stages


def sklearn_round(x: np.ndarray, members: list[np.ndarray]) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict
    from sklearn.preprocessing import StandardScaler

    labelled = np.concatenate(members)
    y = np.concatenate([np.full(len(m), k) for k, m in enumerate(members)])
    scaler = StandardScaler().fit(x)
    xl = scaler.transform(x[labelled])
    scores = np.zeros((len(x), len(members)), np.float32)
    xs = scaler.transform(x).astype(np.float32)
    for k in range(len(members)):
        lr = LogisticRegression(max_iter=200, class_weight="balanced")
        cross_val_predict(lr, xl, y == k, cv=5, method="predict_proba")  # held-out scores, as sonomap's CV
        scores[:, k] = lr.fit(xl, y == k).predict_proba(xs)[:, 1]
    return scores


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--per-class", type=int, default=100)
    ap.add_argument("--noise", type=float, default=1.5)
    ap.add_argument("--weak", type=float, default=0.02)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--skip-sklearn", action="store_true")
    args = ap.parse_args()
    x, y = data(args.n, args.dim, args.classes, noise=args.noise)
    rng = np.random.default_rng(1)
    members = [np.sort(rng.choice(np.flatnonzero(y == k), args.per_class, replace=False)) for k in range(args.classes)]
    fit(x[:3000], [np.flatnonzero(y[:3000] == k)[:5] for k in range(args.classes)])  # warm-up (first calls)
    methods = {
        "sonomap round, weak negatives off (default)": lambda: sonomap_round(x, members, 0.0),
        f"sonomap round, weak negatives {args.weak}": lambda: sonomap_round(x, members, args.weak),
    }
    if not args.skip_sklearn:
        methods["sklearn StandardScaler + LogisticRegression OvR + 5-fold CV"] = lambda: (sklearn_round(x, members), {})
    best: dict[str, tuple[float, float, float, dict]] = {}
    for _ in range(args.repeat):
        for name, run in methods.items():
            t0, c0 = time.perf_counter(), time.process_time()
            scores, stages = run()
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            if name not in best or wall < best[name][0]:
                best[name] = (wall, cpu, mean_ap(scores, y), stages)
    load = os.getloadavg()[0]
    print(f"\n{args.n:,} clips x {args.dim}-d, {args.classes} classes, {args.per_class} labelled per class; "
          f"2 cores shared, load average {load:.1f}; best of {args.repeat}")  # fmt: skip
    print(f"{'method':<62} {'wall s':>7} {'cpu s':>6} {'mAP':>6}  stages (wall s)")
    for name, (wall, cpu, m, stages) in best.items():
        st = ", ".join(f"{k} {v:.2f}" for k, v in stages.items())
        print(f"{name:<62} {wall:7.2f} {cpu:6.2f} {m:6.3f}  {st}")


if __name__ == "__main__":
    main()
