"""Recording metadata: xeno-canto ids from file names, labels from folders or a CSV, xeno-canto API JSON.

Sources, in increasing priority: the file name (``XC123456 - Common Name - Genus species.mp3``),
the parent folder (``Genus species_Common Name``, BirdNET's convention), the file's own tags (ID3, Vorbis,
FLAC: recordist, licence, date, lat/lon, country, xc_id; :mod:`preprocess.file_tags`), xeno-canto API v2/v3 JSON
(the ``recordings`` array) and a labels CSV (``path,label,…``; extra columns such as
``common_name, xc_id, recordist, license, url`` are used too). Recordist and licence are kept for
attribution.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path, PurePosixPath
from typing import Any

from .errors import ParameterError

#: Metadata columns of recordings.parquet (after recording_id, path, file_name, sha1, ...).
METADATA_COLUMNS = (
    "label",
    "xc_id",
    "species",
    "common_name",
    "sound_type",
    "country",
    "date",
    "lat",
    "lon",
    "recordist",
    "license",
    "quality",
    "url",
)
_FLOAT_COLUMNS = ("lat", "lon")

_XC_NAME = re.compile(r"^\s*XC\s?(\d{1,9})(?!\d)", re.IGNORECASE)
_FOLDER = re.compile(r"^([A-Z][a-z]+(?: [a-z][a-z-]+){1,2})_(.+)$")
_SPECIES = re.compile(r"^[A-Z][a-z]+(?: [a-z][a-z-]+){1,2}$")

#: labels CSV column aliases -> our column
_CSV_ALIASES = {
    "path": "path",
    "file": "path",
    "filename": "path",
    "file_name": "path",
    "label": "label",
    "class": "label",
    "species": "species",
    "scientific_name": "species",
    "common_name": "common_name",
    "english_name": "common_name",
    "xc_id": "xc_id",
    "recordist": "recordist",
    "license": "license",
    "licence": "license",
    "sound_type": "sound_type",
    "type": "sound_type",
    "country": "country",
    "date": "date",
    "lat": "lat",
    "latitude": "lat",
    "lon": "lon",
    "lng": "lon",
    "longitude": "lon",
    "quality": "quality",
    "url": "url",
}


def empty_metadata() -> dict[str, Any]:
    return {c: (float("nan") if c in _FLOAT_COLUMNS else "") for c in METADATA_COLUMNS}


def xc_id_from_name(name: str) -> str:
    """``"XC123456 - Foo.mp3"`` -> ``"XC123456"``; ``""`` when the name has no xeno-canto id."""
    m = _XC_NAME.match(Path(name).name)
    return f"XC{int(m.group(1))}" if m else ""


def from_file_name(name: str) -> dict[str, str]:
    """Parse ``XC123456 - Common Name - Genus species.mp3`` (any part optional)."""
    out: dict[str, str] = {}
    xc = xc_id_from_name(name)
    if not xc:
        return out
    out["xc_id"] = xc
    out["url"] = f"https://xeno-canto.org/{xc[2:]}"
    parts = [p.strip() for p in Path(name).stem.split(" - ")]
    if len(parts) >= 3:
        common, species = parts[1], parts[2]
        if _SPECIES.match(species):
            out["species"] = species
            out["common_name"] = common
    return out


def from_folder(folder_name: str) -> dict[str, str]:
    """Parse a ``Genus species_Common Name`` folder name; ``{}`` for any other name."""
    m = _FOLDER.match(folder_name.strip())
    if not m:
        return {}
    return {"label": m.group(1), "species": m.group(1), "common_name": m.group(2).strip()}


def read_labels_csv(path: Path | str) -> dict[str, dict[str, str]]:
    """Read a labels CSV: ``{relative path (posix): {label, …}}``.

    Needs a ``path`` column (or ``file``/``filename``) and a ``label`` column; other known columns
    (``common_name, species, xc_id, recordist, license, url, lat, lon, …``) are kept, others ignored.
    """
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = [h.strip().lower() for h in (reader.fieldnames or [])]
            cols = {h: _CSV_ALIASES[h] for h in header if h in _CSV_ALIASES}
            if "path" not in cols.values() or "label" not in cols.values():
                raise ParameterError(
                    f"labels CSV {path} needs columns 'path' and 'label' (found: {', '.join(header) or 'none'})"
                )
            out: dict[str, dict[str, str]] = {}
            for row in reader:
                row = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
                rec = {cols[k]: v for k, v in row.items() if k in cols and v}
                p = rec.pop("path", "")
                if p:
                    out[_norm(p)] = rec
            return out
    except FileNotFoundError:
        raise ParameterError(f"labels CSV not found: {path}") from None
    except UnicodeDecodeError:
        raise ParameterError(f"labels CSV {path} is not UTF-8 text") from None
    except csv.Error as e:
        raise ParameterError(f"labels CSV {path} is not valid CSV: {e}") from None


def read_xc_json(path: Path | str) -> dict[str, dict[str, Any]]:
    """Read a xeno-canto API v2/v3 answer (``{"recordings": [...]}`` or a bare list): ``{"XC123": {...}}``."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ParameterError(f"xeno-canto metadata file not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ParameterError(f"xeno-canto metadata {path} is not JSON: {e}") from None
    recs = doc.get("recordings") if isinstance(doc, dict) else doc
    if not isinstance(recs, list):
        raise ParameterError(f"xeno-canto metadata {path} has no 'recordings' array (API v2/v3 format expected)")
    out = {}
    for r in recs:
        if isinstance(r, dict) and str(r.get("id", "")).strip().isdigit():
            md = xc_record_to_metadata(r)
            out[md["xc_id"]] = md
    return out


def xc_record_to_metadata(r: dict[str, Any]) -> dict[str, Any]:
    """Map one xeno-canto API v2/v3 recording object to our metadata columns."""
    xc = f"XC{int(str(r['id']).strip())}"
    species = " ".join(str(r.get(k, "")).strip() for k in ("gen", "sp") if r.get(k)).strip()
    if r.get("ssp"):
        species = f"{species} {str(r['ssp']).strip()}"
    lic = str(r.get("lic", "")).strip()
    if lic.startswith("//"):
        lic = "https:" + lic
    url = str(r.get("url", "")).strip() or f"https://xeno-canto.org/{xc[2:]}"
    if url.startswith("//"):
        url = "https:" + url
    md: dict[str, Any] = {
        "xc_id": xc,
        "species": species,
        "common_name": str(r.get("en", "")).strip(),
        "sound_type": str(r.get("type", "")).strip(),
        "country": str(r.get("cnt", "")).strip(),
        "date": str(r.get("date", "")).strip(),
        "lat": _float(r.get("lat")),
        "lon": _float(r.get("lon", r.get("lng"))),
        "recordist": str(r.get("rec", "")).strip(),
        "license": lic,
        "quality": str(r.get("q", "")).strip(),
        "url": url,
        "file_name": str(r.get("file-name", "")).strip(),
    }
    if species:
        md["label"] = species
    return {k: v for k, v in md.items() if v == v and v != ""}


class MetadataResolver:
    """Combines every metadata source for one build; :meth:`resolve` is called once per recording."""

    def __init__(self, *, labels_csv: Path | str | None = None, xc_json: list[Path | str] | tuple = ()) -> None:
        self.labels = read_labels_csv(labels_csv) if labels_csv else {}
        self._labels_by_name: dict[str, dict[str, str] | None] = {}
        for p, rec in self.labels.items():
            name = PurePosixPath(p).name
            self._labels_by_name[name] = None if name in self._labels_by_name else rec  # None: ambiguous
        self.xc: dict[str, dict[str, Any]] = {}
        for j in xc_json:
            self.xc.update(read_xc_json(j))

    def resolve(self, rel_path: str, audio_path: Path | str | None = None) -> dict[str, Any]:
        """Metadata for a recording at ``rel_path`` (posix, relative to its input folder); ``audio_path`` (the
        file itself) adds what its tags say, below xeno-canto JSON and the labels CSV."""
        rel = PurePosixPath(_norm(rel_path))
        md = empty_metadata()
        parent = rel.parent.name
        _merge(md, from_file_name(rel.name))
        _merge(md, from_folder(parent) if parent else {})
        if audio_path is not None:
            from .file_tags import read_tags

            _merge(md, read_tags(audio_path))
        if not md["label"] and parent and parent != ".":
            md["label"] = parent
        csv_rec = self.labels.get(str(rel))
        if csv_rec is None:
            csv_rec = self._labels_by_name.get(rel.name)
        xc = (csv_rec or {}).get("xc_id") or md["xc_id"]
        xc = xc_id_from_name(xc) or xc
        if xc and xc in self.xc:
            _merge(md, self.xc[xc])
        if csv_rec:
            _merge(md, csv_rec)
        if md["xc_id"]:
            md["xc_id"] = xc_id_from_name(str(md["xc_id"])) or str(md["xc_id"])
            if not md["url"]:
                md["url"] = f"https://xeno-canto.org/{md['xc_id'][2:]}"
        for c in _FLOAT_COLUMNS:
            md[c] = _float(md[c])
        return {c: md[c] for c in METADATA_COLUMNS}


def _merge(md: dict[str, Any], new: dict[str, Any]) -> None:
    for k, v in new.items():
        if k in md and v is not None and v == v and v != "":
            md[k] = v


def _float(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def _norm(p: str) -> str:
    p = p.replace("\\", "/").strip()
    while p.startswith("./"):
        p = p[2:]
    return p
