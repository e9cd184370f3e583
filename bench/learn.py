"""Classifier training time and quality: sonomap's torch multi-head logistic regression vs scikit-learn's.

    python bench/learn.py [--n 100000] [--dim 1024] [--classes 10] [--per-class 100]

Synthetic clustered embeddings (maths): ``classes`` class centres plus background clusters; ``per-class`` labelled
clips per class. Both fit the same labelled rows (sonomap adds its weak negatives when ``--weak`` > 0).
Reports: fit time of the final model (s), full ``fit`` time with 5-fold CV and scoring every clip (s), and
mean average precision of the scores over all clips against the true classes.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from preprocess.learn import LearnParams, fit  # noqa: E402
from preprocess.learn.classifier import _fit_linear, _standardise_stats, training_targets  # noqa: E402


def data(n: int, dim: int, n_classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_classes * 3, dim)).astype(np.float32)  # 2/3 of clusters are background
    c = rng.integers(0, len(centres), n)
    x = np.empty((n, dim), np.float32)
    for a in range(0, n, 20000):
        b = min(n, a + 20000)
        x[a:b] = centres[c[a:b]] + 1.5 * rng.normal(size=(b - a, dim)).astype(np.float32)
    y = np.where(c < n_classes, c, -1)
    return x, y


def mean_ap(scores: np.ndarray, y: np.ndarray) -> float:
    from sklearn.metrics import average_precision_score

    return float(np.mean([average_precision_score(y == k, scores[:, k]) for k in range(scores.shape[1])]))


def main() -> None:
    from sklearn.linear_model import LogisticRegression

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--per-class", type=int, default=100)
    ap.add_argument("--weak", type=float, default=0.02)
    args = ap.parse_args()
    x, y = data(args.n, args.dim, args.classes)
    rng = np.random.default_rng(1)
    members = [np.sort(rng.choice(np.flatnonzero(y == k), args.per_class, replace=False)) for k in range(args.classes)]
    rows = []
    for ww in (0.0, args.weak):
        p = LearnParams(weak_weight=ww)
        t0 = time.perf_counter()
        model, scores = fit(x, members, params=p)
        rows.append((f"sonomap fit (CV + score all), weak={ww}", time.perf_counter() - t0, mean_ap(scores, y)))
    # one fit of the final model alone, same rows as sklearn sees
    mean, scale = _standardise_stats(x)
    labelled, yy, ww_ = training_targets(len(x), members, [np.zeros(0, np.int64)] * args.classes)
    xl = (x[labelled] - mean) / scale
    t0 = time.perf_counter()
    w, b = _fit_linear(xl, yy, ww_, l2=1e-3, max_iter=60)
    t_one = time.perf_counter() - t0
    s = 1 / (1 + np.exp(-(((x - mean) / scale) @ w + b)))
    rows.append(("sonomap one fit (torch L-BFGS, all classes)", t_one, mean_ap(s, y)))
    t0 = time.perf_counter()
    lr = LogisticRegression(max_iter=200).fit(xl, yy.argmax(1))
    t_sk = time.perf_counter() - t0
    rows.append(
        ("sklearn LogisticRegression (multinomial lbfgs)", t_sk, mean_ap(lr.predict_proba((x - mean) / scale), y))
    )
    t0 = time.perf_counter()
    scores_ovr = np.zeros((len(x), args.classes), np.float32)
    for k in range(args.classes):
        m = LogisticRegression(max_iter=200).fit(xl, yy[:, k])
        scores_ovr[:, k] = m.predict_proba((x - mean) / scale)[:, 1]
    rows.append(("sklearn LogisticRegression one-vs-rest x classes", time.perf_counter() - t0, mean_ap(scores_ovr, y)))
    print(
        f"\n{args.n:,} clips x {args.dim}-d, {args.classes} classes, {args.per_class} labelled per class, 2 shared cores"
    )
    print(f"{'method':<50} {'time s':>8} {'mAP':>6}")
    for name, t, m in rows:
        print(f"{name:<50} {t:8.2f} {m:6.3f}")


if __name__ == "__main__":
    main()
