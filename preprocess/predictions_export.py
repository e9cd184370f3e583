"""Exports of the classifier's output: predictions CSV, Raven selection tables of detections, the model file.

* :func:`predictions_table`: one row per clip: ``clip_id, predicted, user_label``, then one score column per
  class in [0, 1]. ``predicted`` is the best class whose score passes its threshold (empty if none);
  ``user_label`` says whether the user put the clip in a class (True/False).
* :func:`detection_tables`: ``{path: text}``, one Raven Pro selection table per recording with a detection
  (a clip scoring >= its class threshold; a clip may be detected for several classes), columns
  ``Selection, View, Channel, Begin Time (s), End Time (s), Low Freq (Hz), High Freq (Hz), Annotation, Score,
  clip_id`` (Raven Pro's annotation column name, tab-separated).
* :func:`model_file`: the model as one ``.npz`` with its metadata as a JSON string (``meta``).
"""

from __future__ import annotations

import json
from pathlib import PurePosixPath
from typing import Any

import numpy as np

from .collection import Collection
from .errors import ParameterError
from .labels import LabelStore
from .learn import load_model, load_scores, predict
from .learn.store import model_meta, model_npz

RAVEN_DETECTION_COLUMNS = (
    "Selection",
    "View",
    "Channel",
    "Begin Time (s)",
    "End Time (s)",
    "Low Freq (Hz)",
    "High Freq (Hz)",
    "Annotation",
    "Score",
    "clip_id",
)


def predictions_table(collection: Collection, *, store: LabelStore | None = None, user_label: bool = True) -> Any:
    """pandas DataFrame [n_clips rows]: clip_id, predicted, (user_label,) then one float column per class."""
    import pandas as pd

    model = load_model(collection)
    scores = load_scores(collection)
    best = predict(scores, np.asarray(model.thresholds))
    names = np.asarray(model.class_names + [""], dtype=object)
    frame = {"clip_id": np.arange(len(scores), dtype=np.int64), "predicted": names[best]}
    if user_label:
        if store is None:
            with LabelStore.open(collection) as s:
                members = s.members()
        else:
            members = store.members()
        labelled = np.zeros(len(scores), bool)
        for ids in members.values():
            labelled[ids[ids < len(scores)]] = True
        frame["user_label"] = labelled
    for c, name in enumerate(model.class_names):
        frame[name] = np.round(scores[:, c].astype(np.float64), 6)
    return pd.DataFrame(frame)


def predictions_csv(collection: Collection, *, store: LabelStore | None = None) -> str:
    """The predictions table as CSV text (``\\n`` line ends)."""
    return predictions_table(collection, store=store).to_csv(index=False, lineterminator="\n")


def detection_tables(collection: Collection) -> dict[str, str]:
    """``{relative path: Raven selection table text}`` of detections above each class's threshold."""
    model = load_model(collection)
    scores = load_scores(collection)
    clips = collection.clips()
    recs = collection.recordings().set_index("recording_id")
    hit_clip, hit_class = np.nonzero(scores >= np.asarray(model.thresholds)[None, :])
    if not hit_clip.size:
        raise ParameterError("no detections: no clip scores above its class threshold")
    cfg = collection.manifest().get("config", {})
    lo, hi = float(cfg.get("fmin") or 0.0), float(cfg.get("fmax") or (cfg.get("sample_rate") or 0) / 2)
    f0 = clips["fmin_hz"].to_numpy(np.float64) if "fmin_hz" in clips else np.full(len(clips), lo)
    f1 = clips["fmax_hz"].to_numpy(np.float64) if "fmax_hz" in clips else np.full(len(clips), hi)
    f0, f1 = np.where(np.isfinite(f0), f0, lo), np.where(np.isfinite(f1), f1, hi)
    rec_of = clips["recording_id"].to_numpy(np.int64)
    start = clips["start_s"].to_numpy(np.float64)
    stop = clips["end_s"].to_numpy(np.float64)
    if "duration_s" in recs.columns:  # padded clips end with the recording
        stop = np.fmin(stop, recs["duration_s"].reindex(rec_of).to_numpy(np.float64))
    order = np.lexsort((hit_class, hit_clip, start[hit_clip], rec_of[hit_clip]))
    hit_clip, hit_class = hit_clip[order], hit_class[order]
    files: dict[str, str] = {}
    rec = rec_of[hit_clip]
    bounds = np.flatnonzero(np.diff(rec)) + 1
    for a, b in zip(np.r_[0, bounds], np.r_[bounds, rec.size], strict=True):
        r = int(rec[a])
        path = _table_path(str(recs["path"].get(r, f"recording_{r}")) if "path" in recs else f"recording_{r}", r)
        if path in files:
            path = path.replace(".Table.1.selections.txt", f"_{r}.Table.1.selections.txt")
        lines = ["\t".join(RAVEN_DETECTION_COLUMNS)]
        for i, k in enumerate(range(a, b), 1):
            c, j = int(hit_clip[k]), int(hit_class[k])
            lines.append(
                f"{i}\tSpectrogram 1\t1\t{start[c]:.6f}\t{stop[c]:.6f}\t{f0[c]:.3f}\t{f1[c]:.3f}"
                f"\t{model.class_names[j]}\t{scores[c, j]:.4f}\t{c}"
            )
        files[path] = "\n".join(lines) + "\n"
    return files


def _table_path(rec_path: str, rec: int) -> str:
    parts = [p for p in PurePosixPath(rec_path.replace("\\", "/")).parts if p not in ("", ".", "..", "/")]
    stem = PurePosixPath(*parts).with_suffix("") if parts else PurePosixPath(f"recording_{rec}")
    return f"{stem}.Table.1.selections.txt"


def model_file(collection: Collection) -> bytes:
    """The saved model as ``.npz`` bytes: mean, scale, weights [D, C], bias, thresholds, and ``meta`` (JSON)."""
    model = load_model(collection)
    return model_npz(model, meta=np.array(json.dumps(model_meta(model))))
