"""The user's classes: a crash-safe SQLite store per collection (``Collection.labels_db_path``).

A *class* has a unique name (case-insensitive), a colour and a note. A *membership* puts one clip in one
class; a clip may be in several classes (multi-label). Every membership remembers its *source*: the
action that pooled it (``cluster`` with the cluster id and the clustering parameters, ``lasso``, ``clip``
or ``import``), who did it and when.

Tables::

    meta(key, value)                              schema version, change counter ("version")
    classes(id, name UNIQUE NOCASE, color, note, created)     ids never reused (AUTOINCREMENT)
    sources(id, kind, source_json, who, created)  one row per pooling action, never deleted (provenance)
    memberships(class_id, clip_id, source_id)     PRIMARY KEY (class_id, clip_id)
    negatives(class_id, clip_id, source_id)       "this clip is NOT in the class" (schema 2), same provenance
    changes(id, kind, summary_json, undo_json, redo_json, who, created, undone)   the undo log

Negatives (schema 2) are judgements "clip c is not X" (a rejected review suggestion). A clip is never
both a member and a negative of one class: adding a negative takes the clip out of the class, and adding a
member clears its negative, inside the same change (one undo step restores both). The latest judgement
wins because it is the user's latest word on that clip. A store of schema 1 is upgraded in place when
opened (the ``negatives`` table is created; nothing else changes), in one transaction.

Durability: WAL journal with ``synchronous=FULL``: a change is on disk when its method returns, so
neither ``kill -9`` nor a power cut loses a committed change (``NORMAL`` would survive ``kill -9``
but may drop the last commits on power loss; label edits are rare human actions, so the extra
fsync per commit costs nothing noticeable). Every change is one ``BEGIN IMMEDIATE`` transaction
that also writes its undo record, so a refused change writes nothing and undo/redo survive restarts.

Bad input raises :class:`~preprocess.errors.ParameterError` (names, colours, clip ids, sources) or
:class:`~preprocess.errors.NotFoundError` (unknown class id) before anything is written; a database that cannot
be opened or written (read-only folder, corrupt file, disk full, locked > 30 s) raises
:class:`~preprocess.errors.CollectionError` and leaves the store as it was.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from .errors import CollectionError, NotFoundError, ParameterError

SCHEMA_VERSION = 2

#: The fixed columns of the dummy-coded CSV export; class names may not clash with them (nor with
#: ``label``, the second column of the ``clip_id,label`` import format, nor ``recording_id``).
EXPORT_FIXED_COLUMNS = ("clip_id", "file", "start_s", "end_s", "xc_id")
RESERVED_NAMES = frozenset(c.lower() for c in (*EXPORT_FIXED_COLUMNS, "label", "recording_id"))

SOURCE_KINDS = ("cluster", "lasso", "clip", "import", "review", "similar", "accept-above")
MAX_NAME_CHARS = 80
MAX_NOTE_CHARS = 4000
MAX_SOURCE_JSON_BYTES = 65536
#: How many of the last changes can be undone (older undo records are pruned).
MAX_UNDO = 200
MAX_CLASSES = 1000  # per collection: a bound on legends, exports and the store
#: Changes that touch at most this many clips list them in their summary (for other tabs).
SUMMARY_MAX_CLIPS = 5000

#: Okabe-Ito colour-blind-safe palette, then a few more; new classes cycle through it.
PALETTE = (
    "#e69f00",
    "#56b4e9",
    "#009e73",
    "#f0e442",
    "#0072b2",
    "#d55e00",
    "#cc79a7",
    "#999999",
    "#8c564b",
    "#17becf",
    "#bcbd22",
    "#7f7f7f",
)

_COLOR_RE = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
_FORMULA_START = ("=", "+", "-", "@")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS classes(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE COLLATE NOCASE,
    color TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sources(
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    source_json TEXT NOT NULL,
    who TEXT NOT NULL,
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS memberships(
    class_id INTEGER NOT NULL REFERENCES classes(id),
    clip_id INTEGER NOT NULL,
    source_id INTEGER NOT NULL REFERENCES sources(id),
    PRIMARY KEY(class_id, clip_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS memberships_clip ON memberships(clip_id);
CREATE TABLE IF NOT EXISTS negatives(
    class_id INTEGER NOT NULL REFERENCES classes(id),
    clip_id INTEGER NOT NULL,
    source_id INTEGER NOT NULL REFERENCES sources(id),
    PRIMARY KEY(class_id, clip_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS changes(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    summary_json TEXT NOT NULL,
    undo_json TEXT NOT NULL,
    redo_json TEXT NOT NULL,
    who TEXT NOT NULL,
    created TEXT NOT NULL,
    undone INTEGER NOT NULL DEFAULT 0
);
"""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


# ---------------------------------------------------------------------------------------------
# validation (pure; also used by the importer before it opens a transaction)


def check_class_name(name: Any) -> str:
    """Return ``name`` if it can be a class name (and a CSV column header), else raise ParameterError."""
    if not isinstance(name, str):
        raise ParameterError(f"class name must be a string, got {type(name).__name__}")
    if not name:
        raise ParameterError("class name is empty; give the class a name")
    if name != name.strip():
        raise ParameterError(f"class name {name!r} has leading or trailing spaces; remove them")
    if len(name) > MAX_NAME_CHARS:
        raise ParameterError(f"class name {name[:20]!r}… is {len(name)} characters; at most {MAX_NAME_CHARS} allowed")
    for ch, what in ((",", "a comma"), ('"', "a double quote"), ("\n", "a line break"), ("\r", "a line break")):
        if ch in name:
            raise ParameterError(f"class name {name!r} contains {what}, which would break the CSV header; remove it")
    bad = sorted({c for c in name if ord(c) < 32 or ord(c) == 127})
    if bad:
        raise ParameterError(f"class name {name!r} contains control characters {bad!r} (tabs break Raven tables)")
    if name.startswith(_FORMULA_START):
        raise ParameterError(
            f"class name {name!r} starts with {name[0]!r}, which spreadsheets read as a formula; start with a letter or digit"
        )
    if name.lower() in RESERVED_NAMES:
        raise ParameterError(
            f"class name {name!r} is a fixed column of the export ({', '.join(sorted(RESERVED_NAMES))}); choose another"
        )
    return name


def check_color(color: Any) -> str:
    """Return ``color`` as lowercase ``#rrggbb``; accepts ``#rgb`` and ``#rrggbb``."""
    if not isinstance(color, str) or not _COLOR_RE.match(color):
        raise ParameterError(f"colour must be '#rrggbb' or '#rgb' hex, got {color!r}")
    color = color.lower()
    if len(color) == 4:
        color = "#" + "".join(c * 2 for c in color[1:])
    return color


def check_note(note: Any) -> str:
    if note is None:
        return ""
    if not isinstance(note, str):
        raise ParameterError(f"note must be a string, got {type(note).__name__}")
    if len(note) > MAX_NOTE_CHARS:
        raise ParameterError(f"note is {len(note)} characters; at most {MAX_NOTE_CHARS} allowed")
    return note


def check_clip_ids(clip_ids: Any, *, n_clips: int) -> np.ndarray:
    """Return int64 [k] sorted unique clip ids, or raise ParameterError naming the offending ids."""
    if isinstance(clip_ids, (str, bytes)) or not isinstance(clip_ids, (list, tuple, np.ndarray, range)):
        raise ParameterError(f"clip_ids must be a list of integers, got {type(clip_ids).__name__}")
    arr = np.asarray(clip_ids)
    if arr.size == 0:
        raise ParameterError("clip_ids is empty; give at least one clip id")
    if arr.ndim != 1:
        raise ParameterError("clip_ids must be a flat list of integers")
    if arr.dtype == object or arr.dtype.kind not in "iu":
        bad = [c for c in list(arr)[:1000] if isinstance(c, bool) or not isinstance(c, (int, np.integer))][:5]
        raise ParameterError(f"clip_ids must be integers; got {bad!r}")
    arr = arr.astype(np.int64)
    outside = arr[(arr < 0) | (arr >= n_clips)]
    if outside.size:
        shown = ", ".join(str(int(c)) for c in np.unique(outside)[:5])
        raise ParameterError(
            f"{outside.size} clip id(s) not in the collection (it has {n_clips} clips, ids 0..{n_clips - 1}): {shown}"
            + (" …" if np.unique(outside).size > 5 else "")
        )
    return np.unique(arr)


def check_source(source: Any) -> dict[str, Any]:
    """Validate how clips were pooled: ``{kind: cluster|lasso|clip|import, cluster_id?, params?, …}``."""
    if source is None:
        return {"kind": "clip"}
    if not isinstance(source, dict):
        raise ParameterError(f"source must be an object like {{'kind': 'lasso'}}, got {type(source).__name__}")
    kind = source.get("kind")
    if kind not in SOURCE_KINDS:
        raise ParameterError(f"source.kind must be one of {', '.join(SOURCE_KINDS)}; got {kind!r}")
    if kind == "cluster":
        cid = source.get("cluster_id")
        if isinstance(cid, bool) or not isinstance(cid, int) or cid < -1:
            raise ParameterError(f"source.cluster_id must be an integer >= -1 for kind 'cluster', got {cid!r}")
    if kind == "accept-above":
        thr, rnd = source.get("threshold"), source.get("round")
        if isinstance(thr, bool) or not isinstance(thr, (int, float)) or not 0 <= thr <= 1:
            raise ParameterError(f"source.threshold must be a number in [0, 1] for kind 'accept-above', got {thr!r}")
        if isinstance(rnd, bool) or not isinstance(rnd, int) or rnd < 0:
            raise ParameterError(f"source.round must be an integer >= 0 for kind 'accept-above', got {rnd!r}")
    if "params" in source and source["params"] is not None and not isinstance(source["params"], dict):
        raise ParameterError(f"source.params must be an object, got {type(source['params']).__name__}")
    try:
        text = json.dumps(source, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ParameterError(f"source is not plain JSON: {e}") from None
    if len(text) > MAX_SOURCE_JSON_BYTES:
        raise ParameterError(f"source is {len(text)} bytes of JSON; at most {MAX_SOURCE_JSON_BYTES} allowed")
    return json.loads(text)


# ---------------------------------------------------------------------------------------------
# the store


class LabelStore:
    """Classes and memberships of one collection, persisted in SQLite.

    Parameters
    ----------
    path : path of the database file (created if missing).
    n_clips : number of clips in the collection; clip ids must lie in ``[0, n_clips)``.

    One instance may be shared by threads (calls are serialised); several processes may open the
    same file (writes are serialised by SQLite's lock, waiting up to ``timeout_s``).
    """

    def __init__(self, path: Path | str, *, n_clips: int, timeout_s: float = 30.0) -> None:
        self.path = Path(path)
        self.n_clips = int(n_clips)
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        try:
            self._conn = sqlite3.connect(self.path, timeout=timeout_s, isolation_level=None, check_same_thread=False)
            self._conn.execute(f"PRAGMA busy_timeout = {int(timeout_s * 1000)}")
            mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise CollectionError(f"could not put the label store {self.path} in WAL mode (got {mode!r})")
            self._conn.execute("PRAGMA synchronous = FULL")
            self._conn.execute("PRAGMA foreign_keys = ON")
            with self._write() as db:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(
                    "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
                )
                db.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('version', '0')")
                found = int(db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])
                if found < SCHEMA_VERSION:  # schema 1 -> 2: the negatives table (created above) is all that is new
                    db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))
                if found > SCHEMA_VERSION:
                    raise CollectionError(
                        f"the label store {self.path} has schema {found}, newer than this sonomap ({SCHEMA_VERSION}); "
                        "upgrade sonomap"
                    )
        except (sqlite3.Error, CollectionError) as e:
            if self._conn is not None:
                self._conn.close()
            if isinstance(e, CollectionError):
                raise
            raise CollectionError(f"cannot open the label store {self.path}: {e}") from None

    @classmethod
    def open(cls, collection: Any, **kwargs: Any) -> LabelStore:
        """Open the store of a :class:`preprocess.collection.Collection`."""
        return cls(collection.labels_db_path, n_clips=collection.n_clips(), **kwargs)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> LabelStore:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # transactions ------------------------------------------------------------------------------
    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as e:
                raise CollectionError(f"the label store {self.path} is busy or unwritable ({e}); try again") from None
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException as e:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                if isinstance(e, sqlite3.Error):
                    raise CollectionError(
                        f"writing the label store {self.path} failed ({e}); nothing was changed"
                    ) from None
                raise

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._conn.execute("BEGIN")
                try:
                    yield self._conn
                finally:
                    self._conn.execute("ROLLBACK")
            except sqlite3.Error as e:
                raise CollectionError(f"reading the label store {self.path} failed: {e}") from None

    # reads -------------------------------------------------------------------------------------
    @property
    def version(self) -> int:
        """A counter that grows with every change, undo and redo."""
        with self._read() as db:
            return self._version(db)

    def classes(self) -> list[dict[str, Any]]:
        """``[{id, name, color, note, created, size}]`` in creation order."""
        with self._read() as db:
            return self._classes(db)

    def members(self) -> dict[int, np.ndarray]:
        """``{class_id: int64 [k] sorted clip ids}`` for every class (empty classes included)."""
        with self._read() as db:
            return self._members(db)

    def state(self) -> dict[str, Any]:
        """Everything a client shows, read in one consistent snapshot."""
        with self._read() as db:
            return {
                "classes": self._classes(db),
                "members": self._members(db),
                "can_undo": self._last_change(db, undone=False) is not None,
                "can_redo": self._last_change(db, undone=True) is not None,
                "version": self._version(db),
            }

    def sources(self, class_id: int) -> list[dict[str, Any]]:
        """How the members of a class got there: ``[{id, kind, who, created, n_clips, **source}]``."""
        return self._provenance("memberships", class_id)

    def _provenance(self, table: str, class_id: int) -> list[dict[str, Any]]:
        """The sources of a class's rows in ``table`` (memberships or negatives), with their clip counts."""
        with self._read() as db:
            self._get_class(db, class_id)
            rows = db.execute(
                f"SELECT s.id, s.kind, s.source_json, s.who, s.created, count(*) FROM {table} m "
                "JOIN sources s ON s.id = m.source_id WHERE m.class_id = ? GROUP BY s.id ORDER BY s.id",
                (int(class_id),),
            ).fetchall()
        return [
            {**json.loads(js), "id": sid, "kind": kind, "who": who, "created": created, "n_clips": n}
            for sid, kind, js, who, created, n in rows
        ]

    def history(self, *, limit: int = 50) -> list[dict[str, Any]]:
        """The last changes, newest first: ``[{id, kind, who, created, undone, **summary}]``."""
        with self._read() as db:
            rows = db.execute(
                "SELECT id, kind, summary_json, who, created, undone FROM changes ORDER BY id DESC LIMIT ?",
                (int(limit),),
            ).fetchall()
        return [
            {**json.loads(s), "id": i, "kind": k, "who": w, "created": c, "undone": bool(u)}
            for i, k, s, w, c, u in rows
        ]

    def integrity_check(self) -> str:
        with self._lock:
            return self._conn.execute("PRAGMA integrity_check").fetchone()[0]

    # changes -----------------------------------------------------------------------------------
    def create_class(self, name: str, *, color: str | None = None, note: str | None = "", who: str = "") -> dict:
        """Create an empty class; return the change (``change["class"]`` is the new class)."""
        name = check_class_name(name)
        note = check_note(note)
        color = check_color(color) if color is not None else None
        with self._write() as db:
            if db.execute("SELECT count(*) FROM classes").fetchone()[0] >= MAX_CLASSES:
                raise CollectionError(f"this collection has {MAX_CLASSES} classes, the most allowed; delete some first")
            self._check_unique(db, name)
            if color is None:
                n = db.execute("SELECT count(*) FROM classes").fetchone()[0]
                color = PALETTE[n % len(PALETTE)]
            row = {"id": None, "name": name, "color": color, "note": note, "created": _now()}
            row["id"] = self._op_insert_class(db, row)
            summary = {"class_id": row["id"], "name": name}
            change = self._log(
                db, "create", summary, undo=[["delete_class", row["id"]]], redo=[["insert_class", row]], who=who
            )
            change["class"] = self._class_dict(db, row["id"])
            return change

    def update_class(
        self,
        class_id: int,
        *,
        name: str | None = None,
        color: str | None = None,
        note: str | None = None,
        who: str = "",
    ) -> dict:
        """Rename, recolour or re-note a class (only the given fields change)."""
        fields: dict[str, str] = {}
        if name is not None:
            fields["name"] = check_class_name(name)
        if color is not None:
            fields["color"] = check_color(color)
        if note is not None:
            fields["note"] = check_note(note)
        if not fields:
            raise ParameterError("nothing to change: give name, color or note")
        with self._write() as db:
            old = self._get_class(db, class_id)
            if "name" in fields:
                self._check_unique(db, fields["name"], exclude_id=old["id"])
            before = {k: old[k] for k in fields}
            self._op_update_class(db, old["id"], fields)
            summary = {"class_id": old["id"], "name": old["name"], "fields": fields, "before": before}
            change = self._log(
                db,
                "update",
                summary,
                undo=[["update_class", old["id"], before]],
                redo=[["update_class", old["id"], fields]],
                who=who,
            )
            change["class"] = self._class_dict(db, old["id"])
            return change

    def delete_class(self, class_id: int, *, who: str = "") -> dict:
        """Delete a class and its memberships (undo brings both back)."""
        with self._write() as db:
            row = self._get_class(db, class_id)
            row.pop("size", None)
            undo: list[list[Any]] = [["insert_class", row]]
            groups = db.execute(
                "SELECT source_id, group_concat(clip_id) FROM memberships WHERE class_id = ? GROUP BY source_id",
                (row["id"],),
            ).fetchall()
            n = 0
            for source_id, clips in groups:
                ids = [int(c) for c in clips.split(",")]
                n += len(ids)
                undo.append(["insert_members", row["id"], source_id, sorted(ids)])
            for source_id, clips in db.execute(
                "SELECT source_id, group_concat(clip_id) FROM negatives WHERE class_id = ? GROUP BY source_id",
                (row["id"],),
            ).fetchall():
                undo.append(["insert_negatives", row["id"], source_id, sorted(int(c) for c in clips.split(","))])
            self._op_delete_class(db, row["id"])
            summary = {"class_id": row["id"], "name": row["name"], "n": n}
            return self._log(db, "delete", summary, undo=undo, redo=[["delete_class", row["id"]]], who=who)

    def add_members(self, class_id: int, clip_ids: Iterable[int], *, source: dict | None = None, who: str = "") -> dict:
        """Put clips in a class; clips already there keep their original source. ``change["n"]`` = newly added."""
        ids = check_clip_ids(clip_ids, n_clips=self.n_clips)
        src = check_source(source)
        with self._write() as db:
            cls = self._get_class(db, class_id)
            new = self._new_members(db, cls["id"], ids)
            undo, redo = [], []
            if new.size:
                source_id = self._insert_source(db, src, who)
                un_neg, re_neg = self._clear(db, "negatives", cls["id"], new)
                self._op_insert_members(db, cls["id"], source_id, new)
                undo, redo = (
                    [["delete_members", cls["id"], new.tolist()], *un_neg],
                    [*re_neg, ["insert_members", cls["id"], source_id, new.tolist()]],
                )
            summary = {"class_id": cls["id"], "name": cls["name"], "n": int(new.size), "source_kind": src["kind"]}
            if new.size <= SUMMARY_MAX_CLIPS:
                summary["clip_ids"] = new.tolist()
            return self._log(db, "add", summary, undo=undo, redo=redo, who=who)

    def remove_members(self, class_id: int, clip_ids: Iterable[int], *, who: str = "") -> dict:
        """Take clips out of a class (clips not in it are ignored). ``change["n"]`` = removed."""
        ids = check_clip_ids(clip_ids, n_clips=self.n_clips)
        with self._write() as db:
            cls = self._get_class(db, class_id)
            present = self._present_members(db, cls["id"], ids)  # {source_id: [clip ids]}
            undo = [["insert_members", cls["id"], sid, clips] for sid, clips in present.items()]
            gone = sorted(c for clips in present.values() for c in clips)
            redo = [["delete_members", cls["id"], gone]] if gone else []
            if gone:
                self._op_delete_members(db, cls["id"], gone)
            summary = {"class_id": cls["id"], "name": cls["name"], "n": len(gone)}
            if len(gone) <= SUMMARY_MAX_CLIPS:
                summary["clip_ids"] = gone
            return self._log(db, "remove", summary, undo=undo, redo=redo, who=who)

    def assign(self, assignments: dict[str, Iterable[int]], *, source: dict | None = None, who: str = "") -> dict:
        """Bulk: create the classes named in ``assignments`` that do not exist (case-insensitive match) and
        add the clips to them, as ONE change (one undo step). Used by the CSV import."""
        names = [check_class_name(n) for n in assignments]
        lowered = [n.lower() for n in names]
        dup = sorted({n for n in lowered if lowered.count(n) > 1})
        if dup:
            raise ParameterError(f"class names differ only by case: {dup}; use one spelling")
        checked = {
            n: (check_clip_ids(c, n_clips=self.n_clips) if len(c) else np.zeros(0, np.int64))
            for n, c in assignments.items()
        }
        src = check_source(source or {"kind": "import"})
        with self._write() as db:
            undo: list[list[Any]] = []
            redo: list[list[Any]] = []
            created, added = [], 0
            source_id = None
            existing = {r[1].lower(): r[0] for r in db.execute("SELECT id, name FROM classes")}
            for name, ids in checked.items():
                class_id = existing.get(name.lower())
                if class_id is None:
                    n = db.execute("SELECT count(*) FROM classes").fetchone()[0]
                    row = {"id": None, "name": name, "color": PALETTE[n % len(PALETTE)], "note": "", "created": _now()}
                    class_id = row["id"] = self._op_insert_class(db, row)
                    created.append(name)
                    redo.append(["insert_class", row])
                    undo.append(["delete_class", class_id])
                new = self._new_members(db, class_id, ids) if ids.size else ids
                if new.size:
                    if source_id is None:
                        source_id = self._insert_source(db, src, who)
                    un_neg, re_neg = self._clear(db, "negatives", class_id, new)
                    self._op_insert_members(db, class_id, source_id, new)
                    redo.extend([*re_neg, ["insert_members", class_id, source_id, new.tolist()]])
                    undo.extend([*un_neg[::-1], ["delete_members", class_id, new.tolist()]])
                    added += int(new.size)
            summary = {"n": added, "classes_created": created, "source_kind": src["kind"]}
            return self._log(db, "import", summary, undo=undo[::-1], redo=redo, who=who)

    def add_negatives(
        self, class_id: int, clip_ids: Iterable[int], *, source: dict | None = None, who: str = ""
    ) -> dict:
        """Record "these clips are NOT in the class"; members among them leave the class in the same change.

        ``change["n"]`` = new negatives, ``change["removed"]`` = clips taken out of the class.
        """
        ids = check_clip_ids(clip_ids, n_clips=self.n_clips)
        src = check_source(source or {"kind": "review"})
        with self._write() as db:
            cls = self._get_class(db, class_id)
            have = self._ids(db, "negatives", cls["id"])
            new = ids[~np.isin(ids, have)] if have.size else ids
            undo, redo = [], []
            removed = 0
            if new.size:
                source_id = self._insert_source(db, src, who)
                un_mem, re_mem = self._clear(db, "memberships", cls["id"], new)
                removed = sum(len(op[-1]) for op in re_mem)
                self._op_insert_rows(db, "negatives", cls["id"], source_id, new)
                undo = [["delete_negatives", cls["id"], new.tolist()], *un_mem]
                redo = [*re_mem, ["insert_negatives", cls["id"], source_id, new.tolist()]]
            summary = {
                "class_id": cls["id"],
                "name": cls["name"],
                "n": int(new.size),
                "removed": int(removed),
                "source_kind": src["kind"],
            }
            if new.size <= SUMMARY_MAX_CLIPS:
                summary["clip_ids"] = new.tolist()
            return self._log(db, "negate", summary, undo=undo, redo=redo, who=who)

    def remove_negatives(self, class_id: int, clip_ids: Iterable[int], *, who: str = "") -> dict:
        """Forget "not in the class" judgements (clips without one are ignored). ``change["n"]`` = forgotten."""
        ids = check_clip_ids(clip_ids, n_clips=self.n_clips)
        with self._write() as db:
            cls = self._get_class(db, class_id)
            undo, redo = self._clear(db, "negatives", cls["id"], ids)
            n = sum(len(op[-1]) for op in redo)
            summary = {"class_id": cls["id"], "name": cls["name"], "n": int(n)}
            return self._log(db, "unnegate", summary, undo=undo, redo=redo, who=who)

    def negatives(self) -> dict[int, np.ndarray]:
        """``{class_id: int64 [k] sorted clip ids judged NOT in the class}`` for every class (empty included)."""
        with self._read() as db:
            out = {int(r[0]): np.zeros(0, np.int64) for r in db.execute("SELECT id FROM classes ORDER BY id")}
            for class_id in out:
                out[class_id] = self._ids(db, "negatives", class_id)
            return out

    def negative_sources(self, class_id: int) -> list[dict[str, Any]]:
        """Provenance of a class's negatives: ``[{id, kind, who, created, n_clips, **source}]``."""
        return self._provenance("negatives", class_id)

    def accept_above(
        self, class_id: int, clip_ids: Iterable[int], *, threshold: float, model_round: int, who: str = ""
    ) -> dict:
        """Add the clips a classifier scored above ``threshold`` to the class as ONE change, with provenance
        ``{kind: "accept-above", class_id, threshold, round}`` (the caller picks the clips: unlabelled ones
        scoring >= threshold; see :func:`preprocess.learn.review.above_threshold`)."""
        source = {"kind": "accept-above", "class_id": int(class_id), "threshold": float(threshold)}
        source["round"] = int(model_round)
        return self.add_members(class_id, clip_ids, source=source, who=who)

    def undo(self, *, who: str = "") -> dict:
        """Undo the last change that is not undone; raise ParameterError if there is none."""
        with self._write() as db:
            last = self._last_change(db, undone=False)
            if last is None:
                raise ParameterError("nothing to undo")
            change_id, kind, summary, undo_json = last[0], last[1], last[2], last[3]
            self._apply(db, json.loads(undo_json))
            db.execute("UPDATE changes SET undone = 1 WHERE id = ?", (change_id,))
            return {"kind": "undo", "undone": {"id": change_id, "kind": kind, **json.loads(summary)}, **self._bump(db)}

    def redo(self, *, who: str = "") -> dict:
        """Redo the most recently undone change; raise ParameterError if there is none."""
        with self._write() as db:
            nxt = self._last_change(db, undone=True)
            if nxt is None:
                raise ParameterError("nothing to redo")
            change_id, kind, summary, _undo, redo_json = nxt
            self._apply(db, json.loads(redo_json))
            db.execute("UPDATE changes SET undone = 0 WHERE id = ?", (change_id,))
            return {"kind": "redo", "redone": {"id": change_id, "kind": kind, **json.loads(summary)}, **self._bump(db)}

    # internals ---------------------------------------------------------------------------------
    def _version(self, db: sqlite3.Connection) -> int:
        return int(db.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()[0])

    def _bump(self, db: sqlite3.Connection) -> dict[str, Any]:
        db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'version'")
        return {
            "version": self._version(db),
            "can_undo": self._last_change(db, undone=False) is not None,
            "can_redo": self._last_change(db, undone=True) is not None,
        }

    def _last_change(self, db: sqlite3.Connection, *, undone: bool) -> tuple | None:
        # undo takes the newest done change; redo takes the OLDEST undone one (they are undone newest-first)
        order = "ASC" if undone else "DESC"
        return db.execute(
            f"SELECT id, kind, summary_json, undo_json, redo_json FROM changes WHERE undone = ? ORDER BY id {order} LIMIT 1",
            (int(undone),),
        ).fetchone()

    def _log(self, db: sqlite3.Connection, kind: str, summary: dict, *, undo: list, redo: list, who: str) -> dict:
        """Record a change with its inverse; a new change discards the redo stack and old history."""
        db.execute("DELETE FROM changes WHERE undone = 1")
        db.execute(
            "INSERT INTO changes(kind, summary_json, undo_json, redo_json, who, created) VALUES (?, ?, ?, ?, ?, ?)",
            (kind, json.dumps(summary), json.dumps(undo), json.dumps(redo), str(who or ""), _now()),
        )
        db.execute(
            "DELETE FROM changes WHERE id <= (SELECT max(id) FROM changes) - ?",
            (MAX_UNDO,),
        )
        return {"kind": kind, **summary, **self._bump(db)}

    def _apply(self, db: sqlite3.Connection, ops: list[list[Any]]) -> None:
        for op in ops:
            name, args = op[0], op[1:]
            if name == "insert_class":
                self._op_insert_class(db, args[0])
            elif name == "delete_class":
                self._op_delete_class(db, args[0])
            elif name == "update_class":
                self._op_update_class(db, args[0], args[1])
            elif name == "insert_members":
                self._op_insert_members(db, args[0], args[1], args[2])
            elif name == "delete_members":
                self._op_delete_members(db, args[0], args[1])
            elif name == "insert_negatives":
                self._op_insert_rows(db, "negatives", args[0], args[1], args[2])
            elif name == "delete_negatives":
                self._op_delete_rows(db, "negatives", args[0], args[1])
            else:  # pragma: no cover - only written by this module
                raise ParameterError(f"corrupt undo record: unknown operation {name!r}")

    @staticmethod
    def _op_insert_class(db: sqlite3.Connection, row: dict[str, Any]) -> int:
        cur = db.execute(
            "INSERT INTO classes(id, name, color, note, created) VALUES (?, ?, ?, ?, ?)",
            (row["id"], row["name"], row["color"], row["note"], row["created"]),
        )
        return int(cur.lastrowid if row["id"] is None else row["id"])

    @staticmethod
    def _op_delete_class(db: sqlite3.Connection, class_id: int) -> None:
        db.execute("DELETE FROM memberships WHERE class_id = ?", (class_id,))
        db.execute("DELETE FROM negatives WHERE class_id = ?", (class_id,))
        db.execute("DELETE FROM classes WHERE id = ?", (class_id,))

    @staticmethod
    def _op_update_class(db: sqlite3.Connection, class_id: int, fields: dict[str, str]) -> None:
        cols = [c for c in ("name", "color", "note") if c in fields]
        db.execute(
            f"UPDATE classes SET {', '.join(f'{c} = ?' for c in cols)} WHERE id = ?",
            (*[fields[c] for c in cols], class_id),
        )

    @staticmethod
    def _op_insert_members(db: sqlite3.Connection, class_id: int, source_id: int, clip_ids: Iterable[int]) -> None:
        db.executemany(
            "INSERT INTO memberships(class_id, clip_id, source_id) VALUES (?, ?, ?)",
            ((class_id, int(c), source_id) for c in clip_ids),
        )

    @staticmethod
    def _op_delete_members(db: sqlite3.Connection, class_id: int, clip_ids: Iterable[int]) -> None:
        db.executemany(
            "DELETE FROM memberships WHERE class_id = ? AND clip_id = ?", ((class_id, int(c)) for c in clip_ids)
        )

    def _insert_source(self, db: sqlite3.Connection, source: dict[str, Any], who: str) -> int:
        cur = db.execute(
            "INSERT INTO sources(kind, source_json, who, created) VALUES (?, ?, ?, ?)",
            (source["kind"], json.dumps(source, sort_keys=True), str(who or ""), _now()),
        )
        return int(cur.lastrowid)

    def _new_members(self, db: sqlite3.Connection, class_id: int, ids: np.ndarray) -> np.ndarray:
        have = np.fromiter(
            (r[0] for r in db.execute("SELECT clip_id FROM memberships WHERE class_id = ?", (class_id,))), np.int64
        )
        return ids[~np.isin(ids, have)] if have.size else ids

    def _present_members(self, db: sqlite3.Connection, class_id: int, ids: np.ndarray) -> dict[int, list[int]]:
        rows = np.array(
            db.execute("SELECT clip_id, source_id FROM memberships WHERE class_id = ?", (class_id,)).fetchall(),
            np.int64,
        )
        out: dict[int, list[int]] = {}
        if rows.size:
            rows = rows[np.isin(rows[:, 0], ids)]
            for sid in np.unique(rows[:, 1]):
                out[int(sid)] = sorted(int(c) for c in rows[rows[:, 1] == sid, 0])
        return out

    @staticmethod
    def _ids(db: sqlite3.Connection, table: str, class_id: int) -> np.ndarray:
        return np.fromiter(
            (r[0] for r in db.execute(f"SELECT clip_id FROM {table} WHERE class_id = ? ORDER BY clip_id", (class_id,))),
            np.int64,
        )

    def _clear(self, db: sqlite3.Connection, table: str, class_id: int, ids: np.ndarray) -> tuple[list, list]:
        """Delete rows of ``table`` (memberships|negatives) for ``ids``; return (undo ops, redo ops)."""
        rows = np.array(
            db.execute(f"SELECT clip_id, source_id FROM {table} WHERE class_id = ?", (class_id,)).fetchall(), np.int64
        )
        if not rows.size:
            return [], []
        rows = rows[np.isin(rows[:, 0], ids)]
        if not rows.size:
            return [], []
        op = "members" if table == "memberships" else "negatives"
        undo = [
            [f"insert_{op}", class_id, int(sid), sorted(int(c) for c in rows[rows[:, 1] == sid, 0])]
            for sid in np.unique(rows[:, 1])
        ]
        gone = sorted(int(c) for c in rows[:, 0])
        self._op_delete_rows(db, table, class_id, gone)
        return undo, [[f"delete_{op}", class_id, gone]]

    @staticmethod
    def _op_insert_rows(db: sqlite3.Connection, table: str, class_id: int, source_id: int, ids: Iterable[int]) -> None:
        db.executemany(
            f"INSERT INTO {table}(class_id, clip_id, source_id) VALUES (?, ?, ?)",
            ((class_id, int(c), source_id) for c in ids),
        )

    @staticmethod
    def _op_delete_rows(db: sqlite3.Connection, table: str, class_id: int, ids: Iterable[int]) -> None:
        db.executemany(f"DELETE FROM {table} WHERE class_id = ? AND clip_id = ?", ((class_id, int(c)) for c in ids))

    def _check_unique(self, db: sqlite3.Connection, name: str, *, exclude_id: int | None = None) -> None:
        row = db.execute("SELECT id, name FROM classes WHERE name = ? COLLATE NOCASE", (name,)).fetchone()
        if row is not None and row[0] != exclude_id:
            raise ParameterError(f"a class named {row[1]!r} already exists (id {row[0]}); class names must be unique")

    def _get_class(self, db: sqlite3.Connection, class_id: Any) -> dict[str, Any]:
        if isinstance(class_id, bool) or not isinstance(class_id, (int, np.integer)):
            raise ParameterError(f"class id must be an integer, got {class_id!r}")
        row = self._class_dict(db, int(class_id))
        if row is None:
            raise NotFoundError(f"no class with id {class_id}")
        return row

    @staticmethod
    def _class_dict(db: sqlite3.Connection, class_id: int) -> dict[str, Any] | None:
        row = db.execute(
            "SELECT c.id, c.name, c.color, c.note, c.created, "
            "(SELECT count(*) FROM memberships m WHERE m.class_id = c.id) FROM classes c WHERE c.id = ?",
            (class_id,),
        ).fetchone()
        if row is None:
            return None
        return dict(zip(("id", "name", "color", "note", "created", "size"), row, strict=True))

    @staticmethod
    def _classes(db: sqlite3.Connection) -> list[dict[str, Any]]:
        sizes = dict(db.execute("SELECT class_id, count(*) FROM memberships GROUP BY class_id").fetchall())
        return [
            {"id": i, "name": n, "color": c, "note": note, "created": t, "size": int(sizes.get(i, 0))}
            for i, n, c, note, t in db.execute("SELECT id, name, color, note, created FROM classes ORDER BY id")
        ]

    @staticmethod
    def _members(db: sqlite3.Connection) -> dict[int, np.ndarray]:
        out = {int(r[0]): np.zeros(0, np.int64) for r in db.execute("SELECT id FROM classes ORDER BY id")}
        rows = np.array(
            db.execute("SELECT class_id, clip_id FROM memberships ORDER BY class_id, clip_id").fetchall(), np.int64
        )
        if rows.size:
            cls, starts = np.unique(rows[:, 0], return_index=True)
            for c, part in zip(cls, np.split(rows[:, 1], starts[1:]), strict=True):
                out[int(c)] = part
        return out
