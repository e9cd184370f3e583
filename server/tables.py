"""The clip table the browser needs: clips joined with their recordings, as columnar JSON or a compact binary form.

Binary form (``GET /api/collections/<c>/clips.bin``), little-endian::

    b"SMC1"  uint32 header_length  header (UTF-8 JSON, space-padded so the body starts 8-byte aligned)  body

``header = {"n": n, "columns": [{"name", "dtype", "offset", "length", "values"?}]}``; ``offset``/``length`` are bytes
into the body. ``dtype`` is ``int32``, ``float32`` or ``float64`` (a typed array of n values), or ``dict``: n int32
codes into ``values`` (a list of strings), code -1 = missing. 100,000 clips take about 4 MB instead of ~25 MB of JSON.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np

from preprocess.collection import Collection

#: Recording metadata repeated on each clip (offered by the page's "colour by").
_RECORDING_COLUMNS = (
    "label",
    "species",
    "common_name",
    "xc_id",
    "recordist",
    "license",
    "file_name",
    "url",
    "sound_type",
    "country",
    "date",
    "quality",
)
#: Columns of ``GET /api/collections/<c>/clips`` in order (ARCHITECTURE.md).
CLIP_TABLE_COLUMNS = (
    ("clip_id", "recording_id", "start_s", "end_s", "sheet", "cell", "audio_sprite", "audio_offset", "audio_length")
    + _RECORDING_COLUMNS
    + ("top_species", "top_score")  # BirdNET's top species (location/season list applied) and its score
)
_INT32 = ("clip_id", "recording_id", "sheet", "cell", "audio_sprite")
_FLOAT64 = ("start_s", "end_s", "audio_offset", "audio_length", "top_score")


def species_path(collection: Collection):
    return collection.species_path("birdnet")


def clip_table(collection: Collection) -> Any:
    """pandas DataFrame with :data:`CLIP_TABLE_COLUMNS` (strings as object, missing = None)."""
    import pandas as pd

    clips = collection.clips()
    n = len(clips)
    out = pd.DataFrame({"clip_id": np.arange(n, dtype=np.int64)})
    for col in ("recording_id", "start_s", "end_s", "sheet", "cell", "audio_sprite", "audio_offset", "audio_length"):
        out[col] = clips[col].to_numpy() if col in clips else np.zeros(n)
    rec = collection.recordings() if collection.recordings_path.is_file() else pd.DataFrame({"recording_id": []})
    rec = rec.set_index("recording_id") if "recording_id" in rec else rec
    rid = out["recording_id"].to_numpy()
    for col in _RECORDING_COLUMNS:
        if col in rec:
            values = rec[col].reindex(rid).to_numpy(dtype=object)
            out[col] = pd.Series([_clean(v) for v in values], dtype=object)
        else:
            out[col] = pd.Series([None] * n, dtype=object)
    from preprocess.species import clip_top_species

    names, scores = clip_top_species(collection, n)
    out["top_species"] = pd.Series(names, dtype=object)
    out["top_score"] = scores  # NaN where BirdNET has not run
    return out


def top_species(collection: Collection, n: int) -> list[str | None]:
    """BirdNET's top species per clip (``species_1`` of species.parquet), None where absent."""
    import pandas as pd

    path = species_path(collection)
    result: list[str | None] = [None] * n
    if not path.is_file():
        return result
    df = pd.read_parquet(path, columns=["clip_id", "species_1"])
    for cid, sp in zip(df["clip_id"].to_numpy(), df["species_1"].to_numpy(dtype=object), strict=True):
        if 0 <= int(cid) < n:
            result[int(cid)] = _clean(sp)
    return result


def metadata_label(table: Any) -> np.ndarray:
    """Per clip, the label from the recording metadata (``label``, else ``species``), None when neither."""
    label = table["label"].to_numpy(dtype=object)
    species = table["species"].to_numpy(dtype=object)
    return np.where(pd_isnull(label), species, label)


def pd_isnull(a: np.ndarray) -> np.ndarray:
    return np.array([v is None or v == "" for v in a], dtype=bool)


def _clean(v: Any) -> Any:
    """None for NaN/None/empty; plain Python values otherwise (ints stay ints, e.g. xc_id)."""
    if v is None:
        return None
    if isinstance(v, float):
        if v != v:
            return None
        return int(v) if v.is_integer() else v
    if isinstance(v, np.generic):
        return _clean(v.item())
    if isinstance(v, str):
        return v if v.strip() else None
    return v


def to_json_bytes(table: Any) -> bytes:
    """``{ok, n, columns: {name: [...]}}`` as UTF-8 JSON."""
    cols: dict[str, list] = {}
    for col in CLIP_TABLE_COLUMNS:
        s = table[col]
        if col in _INT32:
            cols[col] = s.to_numpy(dtype=np.int64).tolist()
        elif col in _FLOAT64:
            arr = s.to_numpy(dtype=np.float64)
            cols[col] = [None if v != v else (int(v) if col.startswith("audio") else v) for v in arr.tolist()]
        else:
            cols[col] = [_clean(v) for v in s]
    body = {"ok": True, "n": len(table), "columns": cols}
    return json.dumps(body, separators=(",", ":"), allow_nan=False).encode()


def to_binary(table: Any) -> bytes:
    """The compact binary form described in the module docstring."""
    encoded: list[tuple[dict[str, Any], bytes]] = []
    for col in CLIP_TABLE_COLUMNS:
        s = table[col]
        entry: dict[str, Any] = {"name": col}
        if col in _INT32:
            buf = s.to_numpy(dtype="<i4").tobytes()
            entry["dtype"] = "int32"
        elif col in _FLOAT64:
            buf = s.to_numpy(dtype="<f8").tobytes()
            entry["dtype"] = "float64"
        else:
            values = [None if (v := _clean(x)) is None else str(v) for x in s]
            uniq = sorted({v for v in values if v is not None})
            index = {v: i for i, v in enumerate(uniq)}
            codes = np.array([-1 if v is None else index[v] for v in values], dtype="<i4")
            buf = codes.tobytes()
            entry["dtype"] = "dict"
            entry["values"] = uniq
        encoded.append((entry, buf))
    return _frame(len(table), encoded)


def _frame(n: int, encoded: list[tuple[dict[str, Any], bytes]]) -> bytes:
    """``SMC1`` + header length + JSON header + the column buffers, each padded to 8 bytes (module docstring)."""
    buffers, header_cols, offset = [], [], 0
    for entry, buf in encoded:
        pad = (-len(buf)) % 8
        header_cols.append({**entry, "offset": offset, "length": len(buf)})
        buffers.append(buf + b"\0" * pad)
        offset += len(buf) + pad
    header = json.dumps({"n": n, "columns": header_cols}, separators=(",", ":")).encode()
    header += b" " * ((-(8 + len(header))) % 8)
    return b"SMC1" + struct.pack("<I", len(header)) + header + b"".join(buffers)


def read_binary(data: bytes) -> dict[str, Any]:
    """Decode :func:`to_binary` (for tests and Python clients): ``{name: ndarray | list}``."""
    assert data[:4] == b"SMC1", "not a sonomap clip table"
    (hlen,) = struct.unpack("<I", data[4:8])
    header = json.loads(data[8 : 8 + hlen])
    body = memoryview(data)[8 + hlen :]
    out: dict[str, Any] = {}
    for c in header["columns"]:
        raw = body[c["offset"] : c["offset"] + c["length"]]
        if c["dtype"] == "dict":
            codes = np.frombuffer(raw, dtype="<i4")
            out[c["name"]] = [None if k < 0 else c["values"][k] for k in codes]
        else:
            out[c["name"]] = np.frombuffer(raw, dtype={"int32": "<i4", "float32": "<f4", "float64": "<f8"}[c["dtype"]])
    return out


# ---------------------------------------------------------------------------------------------
# clips.bin at a million clips: built column by column (no per-clip Python) and cached on disk

#: Bumped when :func:`to_binary`'s layout or the table's columns change (old cache files are then ignored).
BINARY_VERSION = 1


def fingerprint(files: list[Path]) -> str:
    """Hex digest of the files' (name, size, mtime_ns) (folders: of every file inside); missing files count too."""
    import hashlib

    h = hashlib.sha1(f"SMC1 v{BINARY_VERSION} {CLIP_TABLE_COLUMNS}".encode())
    for p in files:
        paths = sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p]
        for q in paths:
            try:
                st = q.stat()
                h.update(f"{q.name}:{st.st_size}:{st.st_mtime_ns};".encode())
            except OSError:
                h.update(f"{q.name}:missing;".encode())
    return h.hexdigest()[:20]


def clips_binary(collection: Collection, files: list[Path]) -> bytes:
    """The clips.bin body: from ``derived/clips.bin-KEY`` when the tables (``files``) are unchanged, else built
    with :func:`build_binary` and stored there (atomically; older versions removed; a read-only collection
    just is not cached)."""
    from preprocess.collection import atomic_path

    path = collection.derived_path("clips.bin", fingerprint(files))
    try:
        return path.read_bytes()
    except OSError:
        pass
    body = build_binary(collection)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            Path(tmp).write_bytes(body)
        for old in path.parent.glob("clips.bin-*"):
            if old != path and old.is_file():
                old.unlink(missing_ok=True)
    except OSError:  # pragma: no cover - read-only collection folder
        pass
    return body


def build_binary(collection: Collection) -> bytes:
    """``to_binary(clip_table(collection))``, byte for byte, with recording columns coded per recording."""
    import pandas as pd

    from preprocess.species import clip_top_species

    clips = collection.clips()
    n = len(clips)
    cols: dict[str, Any] = {"clip_id": np.arange(n, dtype=np.int64)}
    for col in ("recording_id", "start_s", "end_s", "sheet", "cell", "audio_sprite", "audio_offset", "audio_length"):
        cols[col] = clips[col].to_numpy() if col in clips else np.zeros(n)
    rec = collection.recordings() if collection.recordings_path.is_file() else pd.DataFrame({"recording_id": []})
    rec = rec.set_index("recording_id") if "recording_id" in rec else rec
    pos = rec.index.get_indexer(cols["recording_id"]) if len(rec.index) else np.full(n, -1)
    for col in _RECORDING_COLUMNS:
        if col in rec:
            codes, values = _dict_codes(rec[col].to_numpy(dtype=object))
            cols[col] = (np.where(pos >= 0, codes[np.maximum(pos, 0)], -1), values)
        else:
            cols[col] = (np.full(n, -1), [])
    names, scores = clip_top_species(collection, n)
    cols["top_species"] = _dict_codes(np.asarray(names, dtype=object))
    cols["top_score"] = scores
    encoded: list[tuple[dict[str, Any], bytes]] = []
    for col in CLIP_TABLE_COLUMNS:
        entry: dict[str, Any] = {"name": col}
        if col in _INT32:
            buf = np.asarray(cols[col]).astype("<i4").tobytes()
            entry["dtype"] = "int32"
        elif col in _FLOAT64:
            buf = np.asarray(cols[col]).astype("<f8").tobytes()
            entry["dtype"] = "float64"
        else:
            codes, values = cols[col]
            buf = np.asarray(codes).astype("<i4").tobytes()
            entry["dtype"] = "dict"
            entry["values"] = values
        encoded.append((entry, buf))
    return _frame(n, encoded)


def _dict_codes(values: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """(int32 codes, sorted distinct strings) of an object array, as :func:`to_binary` codes it (-1 = missing);
    Python runs once per distinct value, not per row."""
    import pandas as pd

    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    cleaned = [None if (v := _clean(u)) is None else str(v) for u in uniques]
    distinct = sorted({v for v in cleaned if v is not None})
    index = {v: i for i, v in enumerate(distinct)}
    remap = np.array([-1 if v is None else index[v] for v in cleaned] + [-1], dtype=np.int64)
    return remap[codes].astype(np.int32), distinct  # code -1 (missing) picks the trailing -1
