"""Labels back in from Raven selection tables and Audacity label files (and zips of them).

``parse_tables(data, filename=..., clips=..., recordings=..., format=None)`` returns ``({class: [clip ids]},
report)`` like :func:`preprocess.export.parse_labels_csv`; :func:`preprocess.export.import_labels` applies it as
one undoable change.

Which clip a row means:

* A ``Clip ID`` column (sonomap's own Raven export): that clip, when its begin time agrees with the clip's start
  (within 1 ms); otherwise the row is unmatched.
* Otherwise (Raven Pro tables, Audacity labels) by **recording + time overlap**. The recording is named by the
  ``Begin Path``/``Begin File`` column when present, else by the table's own file name (``XC1.Table.1.selections
  .txt``, ``XC1.labels.txt``, ``XC1.txt`` → the recording whose path without extension ends in ``XC1``; members of
  a zip keep their folder, as sonomap's zips do), else the ``recording`` argument, else the collection's only
  recording. A selection ``[t0, t1]`` takes the clip whose ``[start, min(end, duration)]`` equals it (1 ms), else
  every clip of that recording that overlaps it by at least ``min_overlap`` × the shorter of the two durations.

The class name is the ``Annotation`` column (Raven Pro's default) or, failing that, the first of ``Class``,
``Species``, ``Label`` (any case), or ``annot_col`` when given; for Audacity, the label text.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import PurePosixPath
from typing import Any

import numpy as np

from .errors import ParameterError
from .labels import check_class_name

TABLE_FORMATS = ("raven", "audacity")
ANNOTATION_COLUMNS = ("Annotation", "Class", "Species", "Label")
_TABLE_SUFFIX = re.compile(r"(\.Table\.\d+\.selections)?(\.labels)?\.txt$", re.IGNORECASE)
_NUMBER = r"[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?"
_AUDACITY_LINE = re.compile(rf"^{_NUMBER}\t{_NUMBER}(\t.*)?$")
_AUDACITY_FREQ = re.compile(rf"^\\\t{_NUMBER}\t{_NUMBER}$")
MAX_REPORTED_ROWS = 1000
MAX_ZIP_MEMBERS = 10_000
MAX_ZIP_BYTES = 256 * 2**20


def detect_format(text: str) -> str:
    """``"csv"``, ``"raven"`` or ``"audacity"`` from a file's text; raise ParameterError when it is none."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    if not first:
        return "csv"  # the CSV reader says what an empty file lacks
    if "\t" in first and "begin time (s)" in first.lower():
        return "raven"
    if _AUDACITY_LINE.match(first.rstrip("\r")):
        return "audacity"
    if "," in first or first.strip().lower() == "clip_id":
        return "csv"
    raise ParameterError(
        "cannot tell the file's format: expected a CSV with a 'clip_id' column, a Raven selection table "
        "(tab-separated, with 'Begin Time (s)' and 'End Time (s)') or Audacity labels ('start<TAB>end<TAB>label')"
    )


def is_zip(data: bytes | str) -> bool:
    return isinstance(data, bytes) and data[:4] == b"PK\x03\x04"


def zip_members(data: bytes) -> list[tuple[str, str]]:
    """``[(member path, text)]`` of the ``.txt`` members of a zip (Raven/Audacity tables), sorted by path."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as e:
        raise ParameterError(
            f"the file is binary and not a zip of tables that can be opened ({e}); expected a CSV, Raven selection "
            "table(s) or Audacity labels"
        ) from None
    with zf:
        infos = [i for i in zf.infolist() if not i.is_dir() and i.filename.lower().endswith(".txt")]
        if len(infos) > MAX_ZIP_MEMBERS or sum(i.file_size for i in infos) > MAX_ZIP_BYTES:
            raise ParameterError(f"the zip holds too much: at most {MAX_ZIP_MEMBERS} tables, {MAX_ZIP_BYTES >> 20} MiB")
        if not infos:
            raise ParameterError("the zip holds no .txt file; expected Raven selection tables or Audacity labels")
        out = []
        for info in sorted(infos, key=lambda i: i.filename):
            raw = zf.read(info)
            try:
                out.append((info.filename, raw.decode("utf-8-sig")))
            except UnicodeDecodeError:
                out.append((info.filename, raw.decode("latin-1")))  # Raven on Windows writes the ANSI code page
        return out


class _Matcher:
    """Finds recordings by name and clips by time within a recording."""

    def __init__(self, clips: Any, recordings: Any) -> None:
        self.n = len(clips)
        self.rec = clips["recording_id"].to_numpy(np.int64)
        self.start = clips["start_s"].to_numpy(np.float64)
        end = clips["end_s"].to_numpy(np.float64)
        dur = (
            recordings["duration_s"].reindex(self.rec).to_numpy(np.float64)
            if "duration_s" in recordings.columns
            else np.full(self.n, np.nan)
        )
        self.stop = np.fmin(end, dur)
        self.order = np.argsort(self.rec, kind="stable")
        self.rec_ids = np.sort(recordings.index.to_numpy(np.int64))
        self.bounds = np.searchsorted(self.rec[self.order], self.rec_ids)
        self.by_path: dict[str, list[int]] = {}
        self.by_stem: dict[str, list[int]] = {}
        paths = recordings["path"] if "path" in recordings.columns else [f"recording_{r}" for r in self.rec_ids]
        for r, path in zip(recordings.index.tolist(), paths, strict=True):
            p = PurePosixPath(str(path).replace("\\", "/"))
            self.by_path.setdefault(str(p.with_suffix("")).lower(), []).append(r)
            self.by_path.setdefault(str(p).lower(), []).append(r)
            self.by_stem.setdefault(p.stem.lower(), []).append(r)
            self.by_stem.setdefault(p.name.lower(), []).append(r)

    def recording(self, name: str) -> tuple[int | None, str]:
        """``(recording id or None, reason when None)`` for a file or table name (folders, any suffix)."""
        p = PurePosixPath(_TABLE_SUFFIX.sub("", name.replace("\\", "/").strip()))
        for key, table in ((str(p).lower(), self.by_path), (p.name.lower(), self.by_stem)):
            hits = sorted(set(table.get(key, [])))
            if len(hits) == 1:
                return hits[0], ""
            if len(hits) > 1:
                return None, f"{name!r} names {len(hits)} recordings; use its folder too"
        stem = PurePosixPath(p.name).stem.lower()
        hits = sorted(set(self.by_stem.get(stem, [])))
        if len(hits) == 1:
            return hits[0], ""
        return None, f"no recording named {name!r} in this collection"

    def clips_at(self, rec: int, t0: float, t1: float, min_overlap: float) -> np.ndarray:
        """Clip ids of recording ``rec`` that ``[t0, t1]`` s means (see the module docstring)."""
        k = int(np.searchsorted(self.rec_ids, rec))
        lo = self.bounds[k]
        hi = self.bounds[k + 1] if k + 1 < len(self.bounds) else self.n
        ids = self.order[lo:hi]
        s, e = self.start[ids], self.stop[ids]
        exact = ids[(np.abs(s - t0) < 1e-3) & (np.abs(e - t1) < 1e-3)]
        if exact.size:
            return exact
        overlap = np.minimum(e, t1) - np.maximum(s, t0)
        shorter = np.minimum(e - s, max(t1 - t0, 0.0))
        keep = (overlap > 0) & (overlap >= min_overlap * shorter - 1e-9)
        return np.sort(ids[keep])


def parse_tables(
    data: bytes | str,
    *,
    filename: str,
    clips: Any,
    recordings: Any,
    format: str | None = None,
    recording: str | None = None,
    annot_col: str | None = None,
    min_overlap: float = 0.5,
) -> tuple[dict[str, list[int]], dict[str, Any]]:
    """Raven/Audacity file(s) → ``({class name: [clip ids]}, report)``; ``data`` may be a zip of tables.

    ``recordings`` is indexed by ``recording_id``. Report: ``{format, n_rows, n_matched, n_unmatched,
    unmatched_rows: [{file, row, clip_id, reason}]}`` (``row``: 1-based line in that file).
    """
    if format is not None and format not in TABLE_FORMATS:
        raise ParameterError(f"unknown table format {format!r}; allowed: {', '.join(TABLE_FORMATS)}")
    if not 0 < min_overlap <= 1:
        raise ParameterError(f"min_overlap must be in (0, 1], got {min_overlap}")
    if is_zip(data):
        members = zip_members(data)  # type: ignore[arg-type]
    else:
        try:
            text = decode_text(data)
        except ParameterError:
            if not isinstance(data, bytes) or b"\x00" in data[:4096]:
                raise
            text = data.decode("latin-1")  # Raven on Windows writes the ANSI code page
        members = [(filename or "", text)]
    matcher = _Matcher(clips, recordings)
    fixed_rec: int | None = None
    if recording:
        fixed_rec, why = matcher.recording(recording)
        if fixed_rec is None:
            raise ParameterError(f"recording: {why}")
    assignments: dict[str, list[int]] = {}
    spelling: dict[str, str] = {}
    unmatched: list[dict[str, Any]] = []
    n_rows = n_unmatched = 0
    formats: set[str] = set()
    for member, text in members:
        fmt = format or detect_format(text)
        if fmt not in TABLE_FORMATS:
            raise ParameterError(f"{member or 'the file'}: a {fmt} file inside a set of Raven/Audacity tables")
        formats.add(fmt)
        rows = _raven_rows(text, member, annot_col) if fmt == "raven" else _audacity_rows(text, member)
        rec_of_file, why_file = (fixed_rec, "") if fixed_rec is not None else matcher.recording(member or "?")
        if rec_of_file is None and len(matcher.rec_ids) == 1:  # a one-recording collection: no doubt
            rec_of_file, why_file = int(matcher.rec_ids[0]), ""
        for line, label, t0, t1, clip_id, file_name in rows:
            n_rows += 1
            ids, reason = _match(matcher, t0, t1, clip_id, file_name, rec_of_file, why_file, fixed_rec, min_overlap)
            if reason:
                n_unmatched += 1
                if len(unmatched) < MAX_REPORTED_ROWS:
                    cid = "" if clip_id is None else str(clip_id)
                    unmatched.append({"file": member, "row": line, "clip_id": cid, "reason": reason})
                continue
            name = spelling.setdefault(label.lower(), label)
            assignments.setdefault(name, []).extend(ids.tolist())
    for name in assignments:
        assignments[name] = sorted(set(assignments[name]))
    report = {
        "format": "+".join(sorted(formats)) or (format or "raven"),
        "n_rows": n_rows,
        "n_matched": n_rows - n_unmatched,
        "n_unmatched": n_unmatched,
        "unmatched_rows": unmatched,
    }
    return assignments, report


def _match(
    matcher: _Matcher,
    t0: float,
    t1: float,
    clip_id: int | None,
    file_name: str | None,
    rec_of_file: int | None,
    why_file: str,
    fixed_rec: int | None,
    min_overlap: float,
) -> tuple[np.ndarray, str]:
    if clip_id is not None:
        if not 0 <= clip_id < matcher.n:
            return np.zeros(0, np.int64), f"no clip {clip_id} in this collection (ids 0..{matcher.n - 1})"
        if abs(matcher.start[clip_id] - t0) >= 1e-3:
            return np.zeros(0, np.int64), f"clip {clip_id} starts at {matcher.start[clip_id]:.3f} s, not {t0:g} s"
        return np.array([clip_id]), ""
    rec, why = rec_of_file, why_file
    if file_name and fixed_rec is None:
        rec, why = matcher.recording(file_name)
    if rec is None:
        return np.zeros(0, np.int64), why or "cannot tell which recording this row is from"
    ids = matcher.clips_at(rec, t0, t1, min_overlap)
    if not ids.size:
        return ids, f"no clip of recording {rec} overlaps {t0:g}–{t1:g} s enough"
    return ids, ""


def _raven_rows(text: str, member: str, annot_col: str | None) -> list[tuple]:
    """``[(line, label, t0, t1, clip_id or None, file name or None)]`` of a Raven selection table."""
    lines = text.splitlines()
    where = f"{member}: " if member else ""
    header = [h.strip() for h in lines[0].split("\t")] if lines else []
    col = {h: i for i, h in enumerate(header)}
    for need in ("Begin Time (s)", "End Time (s)"):
        if need not in col:
            raise ParameterError(f"{where}no {need!r} column in the Raven table header {header[:10]}")
    lower = {h.lower(): h for h in header}
    if annot_col is not None:
        if annot_col not in col:
            raise ParameterError(f"{where}no annotation column {annot_col!r}; the table has {header}")
        label_col = annot_col
    else:
        label_col = next((lower[c.lower()] for c in ANNOTATION_COLUMNS if c.lower() in lower), "")
        if not label_col:
            raise ParameterError(
                f"{where}no annotation column ({', '.join(ANNOTATION_COLUMNS)}) in {header[:12]}; "
                "name the column that holds the class (annot_col)"
            )
    clip_col = lower.get("clip id")
    file_col = lower.get("begin path") or lower.get("begin file")
    selection_col = col.get("Selection")
    seen_selections: set[str] = set()
    out = []
    for k, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        cells = line.split("\t")
        if len(cells) < len(header):
            cells += [""] * (len(header) - len(cells))
        if selection_col is not None and "View" in col:  # Raven Pro: one row per view (Waveform, Spectrogram)
            number = cells[selection_col].strip()
            if number and number in seen_selections:
                continue
            seen_selections.add(number)
        t0, t1 = _float(cells[col["Begin Time (s)"]]), _float(cells[col["End Time (s)"]])
        if t0 is None or t1 is None or t1 < t0:
            raise ParameterError(
                f"{where}line {k}: begin/end times {cells[col['Begin Time (s)']]!r}, "
                f"{cells[col['End Time (s)']]!r} are not numbers with begin ≤ end"
            )
        label = cells[col[label_col]].strip()
        if not label:
            continue  # an unannotated selection names no class
        _check_label(label, where, k)
        clip_id = None
        if clip_col is not None and cells[col[clip_col]].strip():
            value = _float(cells[col[clip_col]])
            if value is None or value != int(value):
                raise ParameterError(f"{where}line {k}: Clip ID {cells[col[clip_col]]!r} is not an integer")
            clip_id = int(value)
        file_name = cells[col[file_col]].strip() if file_col else None
        out.append((k, label, t0, t1, clip_id, file_name or None))
    return out


def _audacity_rows(text: str, member: str) -> list[tuple]:
    """``[(line, label, t0, t1, None, None)]`` of an Audacity label file (frequency lines skipped)."""
    where = f"{member}: " if member else ""
    out = []
    for k, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip("\r")
        if not line.strip() or _AUDACITY_FREQ.match(line):
            continue
        if not _AUDACITY_LINE.match(line):
            raise ParameterError(f"{where}line {k} is not an Audacity label ('start<TAB>end<TAB>label'): {line[:60]!r}")
        parts = line.split("\t", 2)
        t0, t1 = float(parts[0]), float(parts[1])
        label = parts[2].strip() if len(parts) > 2 else ""
        if not label:
            continue
        if t1 < t0:
            raise ParameterError(f"{where}line {k}: end {t1:g} s is before start {t0:g} s")
        _check_label(label, where, k)
        out.append((k, label, t0, t1, None, None))
    return out


def _check_label(label: str, where: str, line: int) -> None:
    try:
        check_class_name(label)
    except ParameterError as e:
        raise ParameterError(f"{where}line {line}: {e}") from None


def _float(text: str) -> float | None:
    try:
        v = float(text.strip())
    except ValueError:
        return None
    return v if np.isfinite(v) else None


def decode_text(data: bytes | str) -> str:
    """Text of an uploaded table (a BOM dropped); binary or non-UTF-8 data is refused with a clear message."""
    if isinstance(data, str):
        return data.lstrip("\ufeff")
    if b"\x00" in data[:4096]:
        raise ParameterError(
            "the file is binary, not a CSV text file; expected a CSV exported by sonomap or 'clip_id,label'"
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ParameterError(f"the file is not UTF-8 text (byte {e.start}); save the CSV as UTF-8") from None
