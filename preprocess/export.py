"""Exports of the user's classes, and the CSV import that loads them back.

Formats (``export_labels(collection, format=...)`` returns an :class:`Export` with file name and bytes):

``csv``
    Dummy-coded, one row per clip: ``clip_id, file, start_s, end_s, xc_id`` then one integer 0/1 column per
    class, named after the class, in class-creation order. No index column. ``labelled_only`` keeps clips that
    belong to at least one class. ``file`` is the recording's path relative to the build's input folder.
``raven``
    Raven selection tables, one per recording with labelled clips, tab-separated, columns
    ``Selection, View, Channel, Begin Time (s), End Time (s), Low Freq (Hz), High Freq (Hz), Begin File,
    Annotation, Clip ID``: one selection per (clip, class) pair, times in seconds of the recording (end clamped to
    its duration). The class name is in ``Annotation``, Raven Pro's default annotation column, so
    ``crowsetta.Transcriber(format="raven")`` and ``pandas.read_csv(sep="\\t")`` read it with their defaults;
    ``Begin File`` is the recording's file name (Raven Pro's measurement of that name).
``audacity``
    Audacity label files (``start\\tend\\tlabel``, three columns), one per recording: crowsetta's ``aud-seq``.
``audacity-bbox``
    Audacity's extended label format: every label line followed by ``\\\\\\tlow_hz\\thigh_hz`` (the detected
    event's band, else the collection's ``fmin``..``fmax``): crowsetta's ``aud-bbox``; Audacity reads both.
``json``
    Full provenance: the collection's manifest (build config), its feature sets' and reductions' parameters,
    each class with its clips and the sources that pooled them (cluster id + clustering parameters, lasso,
    single clip, import; who and when), and the credits and licences of the recordings involved.

Raven and Audacity exports of several recordings come as a zip whose members mirror the input folder tree.

Import (``import_labels``, see :mod:`preprocess.import_tables` for Raven/Audacity) reads the CSV export's own
format or a two-column ``clip_id,label`` file (one row per clip and class). Rows whose clip does not exist, or whose ``file``/``start_s`` disagree with the clip, are
skipped and reported; a file in any other shape is refused with a message saying what was expected, and then
nothing is written.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any

import numpy as np

from . import __version__
from .errors import ParameterError
from .import_tables import decode_text
from .labels import EXPORT_FIXED_COLUMNS, LabelStore, check_class_name
from .progress import Progress, no_progress

FORMATS = ("csv", "raven", "audacity", "audacity-bbox", "json")
#: What ``import_labels`` reads (zips of Raven/Audacity tables are recognised from their bytes).
IMPORT_FORMATS = ("csv", "raven", "audacity")
RAVEN_COLUMNS = (
    "Selection",
    "View",
    "Channel",
    "Begin Time (s)",
    "End Time (s)",
    "Low Freq (Hz)",
    "High Freq (Hz)",
    "Begin File",
    "Annotation",
    "Clip ID",
)
#: At most this many unmatched rows are listed in an import report (all are counted).
MAX_REPORTED_ROWS = 1000
_INDEX_HEADER = re.compile(r"^(Unnamed: \d+|index)?$")
_TRUE = {"1", "1.0", "true", "True", "TRUE"}
_FALSE = {"0", "0.0", "", "false", "False", "FALSE"}


@dataclass(frozen=True)
class Export:
    """One downloadable file: ``filename`` (no folder), ``media_type`` and its bytes."""

    filename: str
    media_type: str
    data: bytes


# ---------------------------------------------------------------------------------------------
# export


def export_labels(
    collection: Any,
    *,
    format: str,
    labelled_only: bool = False,
    store: LabelStore | None = None,
    progress: Progress | None = None,
) -> Export:
    """Export the classes of ``collection`` in ``format`` (one of :data:`FORMATS`); ``progress("export", done,
    total)`` counts steps (recordings for Raven/Audacity)."""
    if format not in FORMATS:
        raise ParameterError(f"unknown export format {format!r}; allowed: {', '.join(FORMATS)}")
    progress = progress or no_progress
    own = store is None
    store = store or LabelStore.open(collection)
    try:
        progress("export", 0, 1, format)
        if format == "csv":
            data = labels_csv(collection, store=store, labelled_only=labelled_only)
            progress("export", 1, 1, format)
            return Export(f"{collection.name}_labels.csv", "text/csv; charset=utf-8", data)
        if format == "json":
            doc = provenance(collection, store=store, labelled_only=labelled_only)
            data = json.dumps(doc, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
            progress("export", 1, 1, format)
            return Export(f"{collection.name}_labels.json", "application/json", data)
        files = selection_tables(collection, store=store, style=format, progress=progress)
        if len(files) == 1:
            ((path, text),) = files.items()
            return Export(PurePosixPath(path).name, "text/plain; charset=utf-8", text.encode())
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for path, text in files.items():
                zf.writestr(path, text)
        return Export(f"{collection.name}_{format}.zip", "application/zip", buf.getvalue())
    finally:
        if own:
            store.close()


def labels_table(collection: Any, *, store: LabelStore, labelled_only: bool = False) -> Any:
    """The dummy-coded table as a pandas DataFrame (fixed columns, then int8 0/1 per class), no index."""
    import pandas as pd

    fixed, names, matrix = _dummy_coded(collection, store=store, labelled_only=labelled_only)
    return pd.concat([fixed, pd.DataFrame(matrix, columns=names, index=fixed.index)], axis=1)


def labels_csv(collection: Any, *, store: LabelStore, labelled_only: bool = False) -> bytes:
    """The dummy-coded table as CSV bytes (UTF-8, ``\\n`` line ends), in time linear in clips × classes.

    The fixed columns are written by the csv module; each row's 0/1 cells are one slice of a preformatted
    ``(n_rows, 2 * n_classes + 1)`` byte matrix (``,0,1…\\n``), so 10k classes cost no more per cell than 10.
    """
    fixed, names, matrix = _dummy_coded(collection, store=store, labelled_only=labelled_only)
    head = io.StringIO()
    writer = csv.writer(head, lineterminator="")
    writer.writerow([*fixed.columns, *names])
    lines = io.StringIO()
    row_writer = csv.writer(lines, lineterminator="\n")
    row_writer.writerows(
        zip(
            fixed["clip_id"].tolist(),
            fixed["file"].tolist(),
            map(repr, fixed["start_s"].tolist()),
            map(repr, fixed["end_s"].tolist()),
            fixed["xc_id"].tolist(),
            strict=True,
        )
    )
    fixed_rows = lines.getvalue().encode().split(b"\n")[:-1] if len(fixed) else []
    if len(fixed_rows) != len(fixed):  # a path with a line break: fall back to pandas for the whole table
        table = labels_table(collection, store=store, labelled_only=labelled_only)
        return table.to_csv(index=False, lineterminator="\n").encode()
    cells = np.empty((len(fixed), 2 * len(names) + 1), np.uint8)
    cells[:, 0:-1:2] = ord(",")
    cells[:, 1:-1:2] = matrix + ord("0")
    cells[:, -1] = ord("\n")
    out = [head.getvalue().encode(), b"\n"]
    for line, tail in zip(fixed_rows, cells, strict=True):
        out.append(line)
        out.append(tail.tobytes())
    return b"".join(out)


def _dummy_coded(collection: Any, *, store: LabelStore, labelled_only: bool) -> tuple[Any, list[str], np.ndarray]:
    """``(fixed columns DataFrame (n_rows), class names (k), int8 0/1 matrix (n_rows, k))``."""
    import pandas as pd

    clips = collection.clips()
    recs = collection.recordings().set_index("recording_id")
    rid = clips["recording_id"].to_numpy()
    fixed = pd.DataFrame(
        {
            "clip_id": clips["clip_id"].to_numpy(np.int64),
            "file": _column(recs, "path", rid),
            "start_s": clips["start_s"].to_numpy(np.float64),
            "end_s": clips["end_s"].to_numpy(np.float64),
            "xc_id": _column(recs, "xc_id", rid),
        }
    )
    state = store.state()
    n = len(fixed)
    names = [cls["name"] for cls in state["classes"]]
    matrix = np.zeros((n, len(names)), np.int8)
    for j, cls in enumerate(state["classes"]):
        ids = np.asarray(state["members"][cls["id"]], np.int64)
        matrix[ids[ids < n], j] = 1
    if labelled_only:
        keep = matrix.any(axis=1) if names else np.zeros(n, bool)
        fixed, matrix = fixed[keep].reset_index(drop=True), matrix[keep]
    return fixed, names, matrix


def selection_tables(
    collection: Any, *, store: LabelStore, style: str = "raven", progress: Progress | None = None
) -> dict[str, str]:
    """``{relative path: text}``: one Raven selection table (``style="raven"``) or Audacity label file
    (``style="audacity"``) per recording that has labelled clips."""
    if style not in ("raven", "audacity", "audacity-bbox"):
        raise ParameterError(f"style must be 'raven', 'audacity' or 'audacity-bbox', got {style!r}")
    clips = collection.clips()
    recs = collection.recordings().set_index("recording_id")
    state = store.state()
    names = {c["id"]: c["name"] for c in state["classes"]}
    n = len(clips)
    class_of = np.concatenate([np.full(len(ids), cid, np.int64) for cid, ids in state["members"].items()] or [[]])
    clip_of = np.concatenate([ids for ids in state["members"].values()] or [[]]).astype(np.int64)
    keep = clip_of < n
    class_of, clip_of = class_of[keep], clip_of[keep]
    if not clip_of.size:
        raise ParameterError("nothing to export: no clip belongs to a class yet; pool some clips first")
    band_lo, band_hi = _collection_band(collection, clips)
    fmin, fmax = _freqs(clips, band_lo, band_hi)
    rec_of = clips["recording_id"].to_numpy(np.int64)
    duration = (
        recs["duration_s"].reindex(rec_of).to_numpy(np.float64) if "duration_s" in recs.columns else np.full(n, np.nan)
    )
    stop_of = np.fmin(clips["end_s"].to_numpy(np.float64), duration)  # padded clips end with the recording
    start_of = clips["start_s"].to_numpy(np.float64)
    rec, t0, t1 = rec_of[clip_of], start_of[clip_of], stop_of[clip_of]
    order = np.lexsort((class_of, clip_of, t1, t0, rec))
    rec, t0, t1, f0, f1 = rec[order], t0[order], t1[order], fmin[clip_of][order], fmax[clip_of][order]
    clip_of, labels = clip_of[order], [names[int(c)] for c in class_of[order]]
    bounds = np.flatnonzero(np.diff(rec)) + 1
    files: dict[str, str] = {}
    progress = progress or no_progress
    for done, (lo, hi) in enumerate(zip(np.r_[0, bounds], np.r_[bounds, rec.size], strict=True)):
        if done % 100 == 0:
            progress("export", done, bounds.size + 1, style)
        r = int(rec[lo])
        path = _member_path(_get(recs, "path", r) or f"recording_{r}", r, style, files)
        if style == "raven":
            lines = ["\t".join(RAVEN_COLUMNS)]
            begin_file = PurePosixPath(str(_get(recs, "path", r) or "").replace("\\", "/")).name
            for i, k in enumerate(range(lo, hi), 1):
                lines.append(
                    f"{i}\tSpectrogram 1\t1\t{t0[k]:.6f}\t{t1[k]:.6f}\t{f0[k]:.3f}\t{f1[k]:.3f}\t{begin_file}"
                    f"\t{labels[k]}\t{clip_of[k]}"
                )
        else:
            lines = []
            for k in range(lo, hi):
                lines.append(f"{t0[k]:.6f}\t{t1[k]:.6f}\t{labels[k]}")
                if style == "audacity-bbox":  # every label with its band: the event's, else the collection's
                    lines.append(f"\\\t{f0[k]:.6f}\t{f1[k]:.6f}")
        files[path] = "\n".join(lines) + "\n"
    progress("export", bounds.size + 1, bounds.size + 1, style)
    return files


def provenance(collection: Any, *, store: LabelStore, labelled_only: bool = False) -> dict[str, Any]:
    """The JSON export: classes with their clips and sources, plus everything needed to reproduce them."""
    manifest = collection.manifest()
    state = store.state()
    negatives = store.negatives()  # "not in this class" judgements: only the JSON export keeps them
    clips = collection.clips()
    recs = collection.recordings()
    labelled = sorted({int(c) for ids in state["members"].values() for c in ids})
    names = {c["id"]: c["name"] for c in state["classes"]}
    clip_classes: dict[int, list[str]] = {}
    for cid, ids in state["members"].items():
        for c in ids:
            clip_classes.setdefault(int(c), []).append(names[cid])
    sub = clips.iloc[[c for c in labelled if c < len(clips)]]
    used_recs = set(sub["recording_id"].astype(int))
    rec_cols = [
        c
        for c in ("recording_id", "path", "file_name", "xc_id", "species", "common_name", "sound_type", "recordist")
        + ("license", "url", "country", "date", "lat", "lon", "duration_s", "sha1")
        if c in recs.columns
    ]
    rec_rows = recs if not labelled_only else recs[recs["recording_id"].astype(int).isin(used_recs)]
    return {
        "format": "sonomap-labels",
        "format_version": 1,
        "exported": datetime.now(UTC).isoformat(timespec="seconds"),
        "tool_version": __version__,
        "collection": {
            "name": collection.name,
            **{
                k: manifest.get(k) for k in ("schema_version", "tool_version", "created", "updated", "config", "counts")
            },
        },
        "feature_sets": {name: _safe(collection.features_meta, name) for name in collection.feature_sets()},
        "reductions": {key: _safe(collection.reduction_meta, key) for key in collection.reductions()},
        "classes": [
            {
                **cls,
                "clip_ids": state["members"][cls["id"]].tolist(),
                "sources": store.sources(cls["id"]),
                "negative_clip_ids": negatives.get(cls["id"], np.zeros(0, np.int64)).tolist(),
                "negative_sources": store.negative_sources(cls["id"]),
            }
            for cls in state["classes"]
        ],
        "clips": [
            {
                "clip_id": int(r.clip_id),
                "recording_id": int(r.recording_id),
                "start_s": float(r.start_s),
                "end_s": float(r.end_s),
                "fmin_hz": _num(getattr(r, "fmin_hz", None)),
                "fmax_hz": _num(getattr(r, "fmax_hz", None)),
                "classes": clip_classes.get(int(r.clip_id), []),
            }
            for r in sub.itertuples(index=False)
        ],
        "recordings": [{k: _num(v) for k, v in row.items()} for row in rec_rows[rec_cols].to_dict("records")],
        "history": store.history(limit=200),
    }


# ---------------------------------------------------------------------------------------------
# import


def import_labels(
    collection: Any,
    data: bytes | str,
    *,
    filename: str = "",
    who: str = "",
    store: LabelStore | None = None,
    progress: Progress | None = None,
    format: str | None = None,
    recording: str | None = None,
    annot_col: str | None = None,
) -> dict[str, Any]:
    """Load a CSV (the export's format, or ``clip_id,label``), Raven selection table(s) or Audacity labels (or a
    zip of tables) into classes, as one undoable change.

    ``format`` is one of :data:`IMPORT_FORMATS` or None (told from the content); ``recording`` and ``annot_col``
    apply to Raven/Audacity (see :mod:`preprocess.import_tables`). Returns ``{added, classes_created, format,
    n_rows, n_matched, n_unmatched, unmatched_rows: [{row, clip_id, reason, (file)}], version}``; ``row`` is the
    1-based line number in the file (a header is line 1).
    """
    from .import_tables import detect_format, is_zip, parse_tables

    if format is not None and format not in IMPORT_FORMATS:
        raise ParameterError(f"unknown import format {format!r}; allowed: {', '.join(IMPORT_FORMATS)}")
    if format is None and not is_zip(data):
        if str(filename).lower().endswith(".csv"):
            format = "csv"
        else:  # a lenient read only to tell the format; each reader then decodes strictly
            text = decode_text(data) if isinstance(data, str) else data.decode("utf-8-sig", errors="replace")
            format = detect_format(text)
    own = store is None
    store = store or LabelStore.open(collection)
    try:
        clips = collection.clips()
        recs = collection.recordings().set_index("recording_id")
        if format == "csv":
            assignments, report = parse_labels_csv(data, clips=clips, recordings=recs, progress=progress)
        else:
            assignments, report = parse_tables(
                data,
                filename=filename,
                clips=clips,
                recordings=recs,
                format=format,
                recording=recording,
                annot_col=annot_col,
            )
        change = store.assign(assignments, source={"kind": "import", "file": str(filename)[:200]}, who=who)
        return {
            "added": change["n"],
            "classes_created": change["classes_created"],
            **report,
            "version": change["version"],
            "change": change,
        }
    finally:
        if own:
            store.close()


def parse_labels_csv(
    data: bytes | str, *, clips: Any, recordings: Any, progress: Progress | None = None
) -> tuple[dict[str, list[int]], dict[str, Any]]:
    """Parse an import file into ``({class name: [clip ids]}, report)``; raise ParameterError on a wrong format.

    Line numbers in messages and in ``unmatched_rows`` are the file's own (header = line 1).
    """
    progress = progress or no_progress
    text = decode_text(data)
    reader = csv.reader(io.StringIO(text, newline=""))
    rows: list[list[str]] = []
    line_of: list[int] = []
    for row in reader:
        if any(cell.strip() for cell in row):
            rows.append(row)
            line_of.append(reader.line_num)
    if not rows:
        raise ParameterError("the file is empty; expected a CSV with a header row")
    header = [h.strip() for h in rows[0]]
    expected = f"expected the export's CSV ({', '.join(EXPORT_FIXED_COLUMNS)}, then one 0/1 column per class) or 'clip_id,label'"
    if "clip_id" not in header:
        raise ParameterError(f"no 'clip_id' column in the header {header[:8]}; {expected}")
    pairs = "label" in header
    fixed = set(EXPORT_FIXED_COLUMNS) | {"label", "recording_id", "fmin_hz", "fmax_hz"}
    class_cols = (
        [] if pairs else [(i, h) for i, h in enumerate(header) if h not in fixed and not _INDEX_HEADER.match(h)]
    )
    if not pairs and not class_cols:
        raise ParameterError(f"no class columns after the fixed columns in {header[:8]}; {expected}")
    seen: dict[str, str] = {}
    for _i, name in class_cols:
        check_class_name(name)
        if name.lower() in seen:
            raise ParameterError(f"the header names class {name!r} twice (also as {seen[name.lower()]!r})")
        seen[name.lower()] = name
    body, lines = rows[1:], np.asarray(line_of[1:], np.int64)
    widths = np.fromiter(map(len, body), np.int64, len(body))
    wrong = np.flatnonzero(widths != len(header))
    if wrong.size:
        k = wrong[0]
        raise ParameterError(f"line {lines[k]} has {widths[k]} fields but the header has {len(header)}; {expected}")
    progress("import", 0, len(body), "rows")
    columns = list(zip(*body, strict=True)) if body else [()] * len(header)
    col = {h: i for i, h in enumerate(header)}

    def values(i: int) -> np.ndarray:
        return np.strings.strip(np.asarray(columns[i], dtype=str)) if body else np.zeros(0, dtype=str)

    # which rows match a clip: integer id in range, and file/start_s (when given) agree with the clip
    n_clips = len(clips)
    raw = values(col["clip_id"])
    number = _to_float(raw)
    is_int = np.isfinite(number) & (number == np.floor(number))
    clip = np.where(is_int, number, -1).astype(np.int64)
    not_int = ~is_int
    out_of_range = is_int & ((clip < 0) | (clip >= n_clips))
    ok = ~(not_int | out_of_range)
    safe = np.where(ok, clip, 0)
    wrong_file = np.zeros(len(body), bool)
    if "file" in col and n_clips:
        paths = _column(recordings, "path", clips["recording_id"].to_numpy()).astype(str)
        given = values(col["file"])
        wrong_file = ok & (given != "") & (given != paths[safe])
    wrong_start = np.zeros(len(body), bool)
    if "start_s" in col and n_clips:
        starts = clips["start_s"].to_numpy(np.float64)
        given_s = values(col["start_s"])
        close = np.abs(_to_float(given_s) - starts[safe]) < 1e-3
        wrong_start = ok & ~wrong_file & (given_s != "") & ~close
    unmatched_mask = not_int | out_of_range | wrong_file | wrong_start
    unmatched = []
    for k in np.flatnonzero(unmatched_mask)[:MAX_REPORTED_ROWS]:
        c = int(clip[k])
        if not_int[k]:
            reason = f"clip_id {str(raw[k])!r} is not an integer"
        elif out_of_range[k]:
            reason = f"no clip {c} in this collection (ids 0..{n_clips - 1})"
        elif wrong_file[k]:
            reason = f"clip {c} is from {str(paths[c])!r}, not {str(given[k])!r}"
        else:
            reason = f"clip {c} starts at {starts[c]:.3f} s, not {given_s[k]} s"
        unmatched.append({"row": int(lines[k]), "clip_id": str(raw[k]), "reason": reason})
    matched = ~unmatched_mask

    assignments: dict[str, list[int]] = {}
    if pairs:
        labels = values(col["label"])
        for label in np.unique(labels[labels != ""]):
            try:
                check_class_name(str(label))
            except ParameterError as e:
                raise ParameterError(f"line {lines[np.flatnonzero(labels == label)[0]]}: {e}") from None
        spelling: dict[str, str] = {}
        for label, c in zip(labels[matched].tolist(), clip[matched].tolist(), strict=True):
            if label:
                assignments.setdefault(spelling.setdefault(label.lower(), label), []).append(c)
    else:
        for i, name in class_cols:
            v = values(i)
            yes, no = np.isin(v, list(_TRUE)), np.isin(v, list(_FALSE))
            bad = np.flatnonzero(~(yes | no))
            if bad.size:
                k = bad[0]
                raise ParameterError(
                    f"line {lines[k]}, column {name!r}: {v[k]!r} is not 0 or 1; class columns hold 0/1"
                )
            assignments[name] = clip[matched & yes].tolist()
    progress("import", len(body), len(body), "rows")
    report = {
        "format": "clip_id,label" if pairs else "dummy-coded",
        "n_rows": len(body),
        "n_matched": int(matched.sum()),
        "n_unmatched": int(unmatched_mask.sum()),
        "unmatched_rows": unmatched,
    }
    return assignments, report


def _to_float(text: np.ndarray) -> np.ndarray:
    """Strings to float64, NaN where not a number."""
    import pandas as pd

    return pd.to_numeric(pd.Series(text, dtype=object), errors="coerce").to_numpy(np.float64)


# ---------------------------------------------------------------------------------------------
# helpers


def _column(recs: Any, name: str, recording_ids: np.ndarray) -> np.ndarray:
    """Per-clip values of a recordings column (empty strings where missing)."""
    if name not in recs.columns:
        return np.full(len(recording_ids), "", dtype=object)
    values = recs[name].reindex(recording_ids).to_numpy(dtype=object)
    return np.array(["" if _missing(v) else v for v in values], dtype=object)


def _get(recs: Any, name: str, rec: int) -> Any:
    if name not in recs.columns or rec not in recs.index:
        return None
    v = recs.at[rec, name]
    return None if _missing(v) else v


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _num(v: Any) -> Any:
    """JSON-safe scalar: numpy → python, NaN → None."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _safe(fn: Any, name: str) -> Any:
    try:
        return fn(name)
    except Exception as e:  # a half-written feature set must not block an export of the user's labels
        return {"error": str(e)}


def _collection_band(collection: Any, clips: Any) -> tuple[float, float]:
    """The frequency band of fixed windows: config ``fmin``/``fmax`` (``fmax`` None = Nyquist)."""
    cfg = collection.manifest().get("config", {})
    lo = cfg.get("fmin") or 0.0
    hi = cfg.get("fmax") or (cfg.get("sample_rate") or 0) / 2
    if not hi and "fmax_hz" in clips.columns and len(clips):
        hi = float(np.nanmax(clips["fmax_hz"].to_numpy(np.float64)))
    return float(lo), float(hi)


def _freqs(clips: Any, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    n = len(clips)
    f0 = clips["fmin_hz"].to_numpy(np.float64) if "fmin_hz" in clips.columns else np.full(n, lo)
    f1 = clips["fmax_hz"].to_numpy(np.float64) if "fmax_hz" in clips.columns else np.full(n, hi)
    return np.where(np.isfinite(f0), f0, lo), np.where(np.isfinite(f1), f1, hi)


def _member_path(rec_path: str, rec: int, style: str, taken: dict[str, str]) -> str:
    """Safe relative path for a recording's table: its input path with the suffix replaced."""
    parts = [p for p in PurePosixPath(str(rec_path).replace("\\", "/")).parts if p not in ("", ".", "..", "/")]
    stem = PurePosixPath(*parts).with_suffix("") if parts else PurePosixPath(f"recording_{rec}")
    suffix = ".Table.1.selections.txt" if style == "raven" else ".labels.txt"
    path = f"{stem}{suffix}"
    if path in taken:
        path = f"{stem}_{rec}{suffix}"
    return path
