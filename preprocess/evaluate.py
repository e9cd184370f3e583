"""How well each stored feature set and reduction separates the labelled clips.

For every source (each reduction's UMAP coordinates in every stored dimension, its display map, and
each feature set itself, standardised and PCA-projected) run the clustering pipelines the server
offers through :func:`preprocess.cluster.cluster`:

- ``hdbscan`` with its default parameters (and a small grid with ``grid=True``);
- ``dbscan`` with ``eps`` chosen without labels at the knee of the sorted k-distance curve
  (k = ``min_samples``), and ``dbscan-best``: the best ``eps`` of a quantile grid *chosen with the
  labels* (an upper bound, marked as such, not something a user gets);
- ``kmeans`` with k = the number of labels.

Metrics are computed on the labelled clips (every clip is clustered):

- NMI, ARI, V-measure: noise (-1) counts as one more cluster;
- purity: share of labelled, non-noise clips that carry their cluster's majority label;
- noise: share of all clips labelled -1;
- yield (pre-annotation yield): share of labelled clips that fall in a cluster whose majority label
  covers >= 90 % of the cluster's labelled clips: the clips a user could label by pooling whole clusters.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from .collection import Collection, write_json_atomic
from .errors import CollectionError, ParameterError
from .progress import CancelCheck, Progress, check_cancel, no_progress

YIELD_PURITY = 0.9
METRIC_KEYS = ("nmi", "ari", "v_measure", "purity", "noise", "yield", "single_rec")
HDBSCAN_GRID = [{"min_cluster_size": m, "min_samples": s} for m in (5, 10, 20, 40) for s in (1, 5, 10) if s <= m]
MAX_RAW_COMPONENTS = 50
#: The default pipeline, chosen with this evaluation on ../shared/data/dev (see docs/ARCHITECTURE.md), and
#: the baseline it must beat: same reduction and clustering on the acoustic descriptors.
DEFAULT_PIPELINE = {"features": "birdnet", "kind": "umap8", "pipeline": "hdbscan"}
BASELINE_FEATURES = "acoustic"


# ---------------------------------------------------------------------------------------------
# labels


def clip_labels(collection: Collection, *, labels_csv: str | Path | None = None) -> np.ndarray:
    """object [n_clips] label per clip, ``""`` where unlabelled.

    Without ``labels_csv`` the recordings' ``label`` column is used. A CSV has a ``label`` column and
    either ``clip_id`` (per clip) or ``path`` / ``file_name`` (per recording, matched against
    recordings.parquet; ``path`` is relative to the input folder, as in the build's ``labels.csv``).
    """
    import pandas as pd

    clips = collection.clips()
    recordings = collection.recordings()
    if labels_csv is None:
        if "label" not in recordings.columns:
            raise CollectionError("the recordings have no 'label' column; pass --labels CSV")
        per_rec = recordings.set_index("recording_id")["label"] if "recording_id" in recordings else recordings["label"]
        labels = clips["recording_id"].map(per_rec)
    else:
        path = Path(labels_csv)
        if not path.is_file():
            raise ParameterError(f"--labels {path}: no such file")
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
        if "label" not in table.columns:
            raise ParameterError(f"--labels {path} needs a 'label' column; it has: {', '.join(table.columns)}")
        if "clip_id" in table.columns:
            per_clip = dict(zip(table["clip_id"].astype(int), table["label"], strict=True))
            labels = clips["clip_id"].map(per_clip)
        else:
            key = next((k for k in ("path", "file_name") if k in table.columns), None)
            if key is None:
                raise ParameterError(
                    f"--labels {path} needs a 'clip_id', 'path' or 'file_name' column; it has: {', '.join(table.columns)}"
                )
            by_key = dict(zip(table[key], table["label"], strict=True))
            rec_ids = recordings["recording_id"] if "recording_id" in recordings else recordings.index
            per_rec = pd.Series(recordings[key].map(by_key).to_numpy(), index=rec_ids)
            labels = clips["recording_id"].map(per_rec)
    out = labels.fillna("").astype(str).str.strip().to_numpy(dtype=object)
    return out


# ---------------------------------------------------------------------------------------------
# metrics


def clustering_scores(y_true: np.ndarray, y_pred: np.ndarray, *, n_all: int | None = None) -> dict[str, float]:
    """Metrics of predicted clusters ``y_pred`` (-1 noise) against labels ``y_true`` (labelled clips only)."""
    from sklearn import metrics

    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    n = len(y_true)
    if n == 0:
        raise CollectionError("no labelled clips to evaluate against")
    out = {
        "nmi": float(metrics.normalized_mutual_info_score(y_true, y_pred)),
        "ari": float(metrics.adjusted_rand_score(y_true, y_pred)),
        "v_measure": float(metrics.v_measure_score(y_true, y_pred)),
    }
    in_cluster = y_pred >= 0
    majority_total, yield_total = 0, 0
    for c in np.unique(y_pred[in_cluster]):
        members = y_true[y_pred == c]
        _, counts = np.unique(members, return_counts=True)
        top = int(counts.max())
        majority_total += top
        if top >= YIELD_PURITY * len(members):
            yield_total += len(members)
    out["purity"] = float(majority_total / max(int(in_cluster.sum()), 1))
    out["yield"] = float(yield_total / n)
    return out


def recording_dominance(clusters: np.ndarray, recording_ids: np.ndarray) -> dict[int, dict[str, Any]]:
    """Per cluster (noise -1 left out): how many recordings contribute its clips and the share of the
    largest contributor. ``clusters`` and ``recording_ids`` are int [n_clips]. Returns
    ``{cluster: {"n_clips", "n_recordings", "top_recording", "top_share", "single_recording"}}``;
    ``single_recording`` is true when every clip comes from one recording: such a cluster may be
    one noisy recording rather than a sound type."""
    clusters = np.asarray(clusters)
    recording_ids = np.asarray(recording_ids)
    if clusters.shape != recording_ids.shape:
        raise ParameterError(f"clusters {clusters.shape} and recording_ids {recording_ids.shape} differ in shape")
    out: dict[int, dict[str, Any]] = {}
    for c in np.unique(clusters[clusters >= 0]):
        recs, counts = np.unique(recording_ids[clusters == c], return_counts=True)
        top = int(counts.argmax())
        out[int(c)] = {
            "n_clips": int(counts.sum()),
            "n_recordings": int(len(recs)),
            "top_recording": int(recs[top]),
            "top_share": float(counts[top] / counts.sum()),
            "single_recording": bool(len(recs) == 1),
        }
    return out


def single_recording_share(clusters: np.ndarray, recording_ids: np.ndarray) -> float:
    """Share of the clusters (noise left out) whose clips all come from one recording (0 when none)."""
    dom = recording_dominance(clusters, recording_ids)
    return float(np.mean([d["single_recording"] for d in dom.values()])) if dom else 0.0


def knee_eps(X: np.ndarray, *, min_samples: int) -> float:
    """DBSCAN ``eps`` at the knee of the sorted distances to the ``min_samples``-th neighbour (no labels)."""
    kd = np.sort(_kth_distances(X, min_samples))
    if len(kd) < 3 or kd[-1] <= kd[0]:
        return float(max(kd[-1], 1e-6))
    x = np.linspace(0.0, 1.0, len(kd))
    y = (kd - kd[0]) / (kd[-1] - kd[0])
    return float(max(kd[int(np.argmax(x - y))], 1e-6))  # farthest below the chord of a convex curve


def eps_grid(X: np.ndarray, *, min_samples: int, n: int = 12) -> list[float]:
    """Candidate ``eps`` values: quantiles 5-95 % of the ``min_samples``-th neighbour distances."""
    kd = _kth_distances(X, min_samples)
    return sorted({float(max(v, 1e-6)) for v in np.quantile(kd, np.linspace(0.05, 0.95, n))})


def _kth_distances(X: np.ndarray, k: int) -> np.ndarray:
    from sklearn.neighbors import NearestNeighbors

    k = int(min(k, len(X) - 1))
    dist, _ = NearestNeighbors(n_neighbors=k + 1).fit(X).kneighbors(X)
    return dist[:, k]


# ---------------------------------------------------------------------------------------------
# sources and pipelines


def _sources(collection: Collection) -> list[tuple[str, str, int, Any]]:
    """(source name, kind, dims, loader) for every reduction dimension, display map and raw feature set."""
    out: list[tuple[str, str, int, Any]] = []
    for key in collection.reductions():
        meta = collection.reduction_meta(key)
        for d in meta.get("dims", []):
            out.append((key, f"umap{d}", int(d), lambda key=key, d=d: collection.reduced(key, d)))
        out.append((key, "map2d", 2, lambda key=key: collection.display_map(key)))
    for name in collection.feature_sets():
        out.append((name, f"pca{MAX_RAW_COMPONENTS}", 0, lambda name=name: _raw_projection(collection, name)))
    return out


def _raw_projection(collection: Collection, name: str) -> np.ndarray:
    from sklearn.decomposition import PCA

    X = np.asarray(collection.features(name), dtype=np.float32)
    std = X.std(axis=0)
    std[std < 1e-8] = 1.0
    Z = (X - X.mean(axis=0)) / std
    k = int(min(MAX_RAW_COMPONENTS, Z.shape[1], len(Z) - 1))
    return PCA(n_components=k, svd_solver="covariance_eigh", random_state=0).fit_transform(Z).astype(np.float32)


def _pipelines(X: np.ndarray, *, n_labels: int, grid: bool) -> list[tuple[str, str, dict[str, Any], bool]]:
    """(pipeline name, algorithm, params, label-informed?) to run on ``X``."""
    from .cluster import ALGORITHMS

    hdb_default = {k: v[3] for k, v in ALGORITHMS["hdbscan"].items()}
    dbscan_ms = int(ALGORITHMS["dbscan"]["min_samples"][3])
    out = [("hdbscan", "hdbscan", hdb_default, False)]
    if grid:
        out += [("hdbscan", "hdbscan", {**hdb_default, **p}, False) for p in HDBSCAN_GRID]
    out.append(("dbscan-knee", "dbscan", {"eps": knee_eps(X, min_samples=dbscan_ms), "min_samples": dbscan_ms}, False))
    out += [
        ("dbscan-best", "dbscan", {"eps": e, "min_samples": dbscan_ms}, True)
        for e in eps_grid(X, min_samples=dbscan_ms)
    ]
    out.append(("kmeans", "kmeans", {"n_clusters": max(2, n_labels)}, False))
    return out


def evaluate_collection(
    collection: Collection | str | Path,
    *,
    labels_csv: str | Path | None = None,
    exclude_labels: tuple[str, ...] | list[str] = (),
    grid: bool = False,
    sources: list[str] | None = None,
    progress: Progress | None = None,
    should_cancel: CancelCheck | None = None,
) -> dict[str, Any]:
    """Run every pipeline on every source; write and return ``evaluation.json``'s content.

    ``sources`` restricts to feature-set / reduction names; ``exclude_labels`` drops clips with those
    labels from the scoring (they are still clustered). ``dbscan-best`` keeps only its best eps (by NMI).
    """
    from .cluster import cluster

    if not isinstance(collection, Collection):
        collection = Collection.open(collection)
    progress = progress or no_progress
    labels = clip_labels(collection, labels_csv=labels_csv)
    scored = labels != ""
    for bad in exclude_labels:
        scored &= labels != bad
    if scored.sum() < 2:
        raise CollectionError("fewer than 2 labelled clips: give labels with --labels CSV or a 'label' column")
    y_true = labels[scored]
    n_labels = len(np.unique(y_true))
    recording_ids = collection.clips()["recording_id"].to_numpy()
    todo = [s for s in _sources(collection) if sources is None or s[0] in sources]
    if not todo:
        raise CollectionError(
            "nothing to evaluate: compute features (python -m preprocess features) and a reduction "
            "(python -m preprocess reduce) first"
        )
    rows: list[dict[str, Any]] = []
    t_start = time.perf_counter()
    for i, (source, kind, dims, load) in enumerate(todo):
        check_cancel(should_cancel)
        progress("evaluate", i, len(todo), f"{source} {kind}")
        X = np.ascontiguousarray(load(), dtype=np.float32)
        best_oracle: dict[str, Any] | None = None
        for name, algorithm, params, oracle in _pipelines(X, n_labels=n_labels, grid=grid):
            check_cancel(should_cancel)
            t0 = time.perf_counter()
            pred = cluster(X, algorithm=algorithm, params=params)
            row = {
                "source": source,
                "kind": kind,
                "dims": dims or int(X.shape[1]),
                "pipeline": name,
                "algorithm": algorithm,
                "params": {k: (round(v, 5) if isinstance(v, float) else v) for k, v in params.items()},
                "label_informed": oracle,
                "n_clusters": int(len(np.unique(pred[pred >= 0]))),
                **clustering_scores(y_true, pred[scored]),
                "noise": float(np.mean(pred < 0)),
                "single_rec": single_recording_share(pred, recording_ids),
                "time_s": round(time.perf_counter() - t0, 3),
            }
            if oracle:
                if best_oracle is None or row["nmi"] > best_oracle["nmi"]:
                    best_oracle = row
            else:
                rows.append(row)
        if best_oracle is not None:
            rows.append(best_oracle)
    progress("evaluate", len(todo), len(todo), "done")
    result = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "labels": str(labels_csv) if labels_csv else "recordings.label",
        "n_clips": int(len(labels)),
        "n_labelled": int(scored.sum()),
        "n_labels": int(n_labels),
        "excluded_labels": list(exclude_labels),
        "yield_purity": YIELD_PURITY,
        "time_s": round(time.perf_counter() - t_start, 2),
        "results": rows,
    }
    write_json_atomic(collection.evaluation_path, result)
    return result


def format_table(result: dict[str, Any], *, sort_by: str = "nmi") -> str:
    """The evaluation as a fixed-width text table, best ``sort_by`` first."""
    head = f"{'source':<16} {'space':<7} {'pipeline':<12} {'params':<36} {'clus':>4} " + " ".join(
        f"{k[:7]:>7}" for k in METRIC_KEYS
    )
    lines = [
        f"{result['n_labelled']} labelled clips of {result['n_clips']}, {result['n_labels']} labels "
        f"(from {result['labels']}); yield = clips in clusters >= {result['yield_purity']:.0%} one label; "
        "single_rec = share of clusters from one recording; dbscan-best chose eps with the labels (upper bound)",
        head,
        "-" * len(head),
    ]
    rows = sorted(result["results"], key=lambda r: (-r[sort_by], r["source"]))
    for r in rows:
        params = ",".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in r["params"].items())
        params = params.replace("min_cluster_size", "mcs").replace("min_samples", "ms").replace("n_clusters", "k")
        params = params.replace("cluster_selection_epsilon", "cse")
        lines.append(
            f"{r['source']:<16} {r['kind']:<7} {r['pipeline']:<12} {params[:36]:<36} {r['n_clusters']:>4} "
            + " ".join(f"{r.get(k, float('nan')):>7.3f}" for k in METRIC_KEYS)
        )
    lines += default_vs_baseline(result)
    return "\n".join(lines)


def default_vs_baseline(result: dict[str, Any]) -> list[str]:
    """One line per pipeline row of the default features and the baseline, when both were evaluated."""

    def pick(source: str) -> dict[str, Any] | None:
        return next(
            (
                r
                for r in result["results"]
                if r["source"] == source
                and r["kind"] == DEFAULT_PIPELINE["kind"]
                and r["pipeline"] == DEFAULT_PIPELINE["pipeline"]
            ),
            None,
        )

    default, base = pick(DEFAULT_PIPELINE["features"]), pick(BASELINE_FEATURES)
    if default is None or base is None:
        return []
    name = f"{DEFAULT_PIPELINE['kind']} + {DEFAULT_PIPELINE['pipeline']}"
    verdict = "beats" if default["nmi"] > base["nmi"] and default["yield"] > base["yield"] else "does NOT beat"
    return [
        "",
        f"default pipeline {DEFAULT_PIPELINE['features']} -> {name}: NMI {default['nmi']:.3f}, yield "
        f"{default['yield']:.3f}; baseline {BASELINE_FEATURES} -> {name}: NMI {base['nmi']:.3f}, yield "
        f"{base['yield']:.3f}: the default {verdict} the baseline",
    ]
