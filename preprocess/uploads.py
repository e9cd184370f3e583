"""Uploads from the browser: safe names, chunked resumable staging, safe zip extraction, placing into a collection.

Everything lives under the collections folder and nowhere else::

    COLLECTIONS/.uploads/UPLOAD_ID/meta.json   original and safe name, declared size, kind, owner, times
    COLLECTIONS/.uploads/UPLOAD_ID/data.part   bytes received so far (appended chunk by chunk)
    COLLECTIONS/.uploads/UPLOAD_ID/data        the complete file (renamed from data.part when the last byte arrives)
    COLLECTIONS/.uploads/UPLOAD_ID/unzipped/   members of a zip, extracted under safe names
    COLLECTIONS/.uploads/journal/NAME.json     files of an ingest in flight (see :mod:`preprocess.ingest`)
    COLLECTIONS/.uploads/locks/NAME.lock       one ingest / remap per collection
    COLLECTION/sources/…                       originals kept by a collection (placed by :func:`place_file`)

Staging has a quota (:class:`UploadLimits` ``max_client_*`` per owner, ``max_total_*`` overall): :meth:`UploadStore.create`
raises :class:`QuotaExceeded` saying what is staged and what is allowed.

A chunk is read completely before a byte of it is written, so a client that disconnects mid-chunk
leaves the upload at its previous offset, ready to resume (``status`` says where). A half-uploaded
file never leaves ``.uploads``; :meth:`UploadStore.cleanup_stale` removes abandoned ones.
Zips are refused when a member climbs out (``../``), is absolute, is a symlink, is encrypted, or when
the members' total uncompressed size or compression ratio exceed the limits (checked on the real
bytes while extracting, not on the sizes the zip declares).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import stat
import threading
import time
import unicodedata
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

from .audio import AUDIO_EXTENSIONS, sniff_format
from .collection import (
    Collection,
    upload_data_path,
    upload_meta_path,
    upload_part_path,
    upload_unzipped_dir,
    uploads_root,
    write_json_atomic,
)
from .errors import NotFoundError, ParameterError, SonomapError

_ID_RE = re.compile(r"^[0-9a-f]{32}$")
_UNSAFE_CHARS = re.compile(r"[^\w\s.,()'+\-&#@=\[\]]", re.UNICODE)
_WINDOWS_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)), *(f"lpt{i}" for i in range(1, 10))}
METADATA_EXTENSIONS = (".csv", ".json")
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


class UploadError(SonomapError):
    """An upload was refused: too big, not audio, an unsafe zip, a chunk at the wrong offset."""


class UploadTooLarge(UploadError):
    """A file or chunk is larger than the limits allow."""


class QuotaExceeded(UploadError):
    """The staging area is full (per client or overall); the message says how much is staged and what is allowed."""


@dataclass(frozen=True)
class UploadLimits:
    """Limits of one upload session (the server builds this from its settings)."""

    max_file_bytes: int = 2 * 1024**3  # one uploaded file (a zip counts as one file)
    max_chunk_bytes: int = 32 * 1024**2  # one PUT of a chunk
    max_zip_members: int = 20_000
    max_zip_total_bytes: int = 8 * 1024**3  # sum of the members' real uncompressed sizes
    max_zip_ratio: float = 200.0  # uncompressed / compressed, per member and overall (audio barely compresses)
    max_name_chars: int = 120
    max_path_depth: int = 8
    stale_after_s: float = 24 * 3600.0  # uploads untouched this long are removed (swept on a timer)
    max_client_bytes: int = 16 * 1024**3  # declared bytes staged by one client at a time
    max_client_uploads: int = 2_000  # uploads staged by one client at a time
    max_total_bytes: int = 64 * 1024**3  # declared bytes staged by everyone
    max_total_uploads: int = 10_000

    def check(self) -> UploadLimits:
        for k, v in asdict(self).items():
            if not isinstance(v, (int, float)) or v <= 0:
                raise ParameterError(f"upload limit {k} must be a positive number, got {v!r}")
        return self


# ---------------------------------------------------------------------------------------------
# names


def safe_file_name(name: str, *, max_chars: int = 120) -> str:
    """A file name that is safe on every OS and in a URL path segment, keeping what a person would recognise.

    Folders are dropped (only the last part of ``a/b\\c.mp3`` is kept), Unicode is NFC-normalised,
    control characters and ``<>:"|?*`` and the like become ``_``, leading dots and spaces go (no hidden
    files, no ``..``), and long names are shortened keeping the extension. Accents, spaces and
    apostrophes stay (``Townsend's Warbler.mp3``). Raises :class:`UploadError` when nothing usable is left.
    """
    if not isinstance(name, str):
        raise UploadError("a file name must be text")
    base = re.split(r"[/\\]", name)[-1]
    base = unicodedata.normalize("NFC", base)
    base = "".join(ch if unicodedata.category(ch)[0] != "C" else "_" for ch in base)
    base = _UNSAFE_CHARS.sub("_", base)
    base = re.sub(r"\s+", " ", base).strip().lstrip(". ").rstrip(". ")
    if not base or set(base) <= {"_", " ", "."}:
        raise UploadError(f"the file name {name[:80]!r} has no usable characters; rename the file and try again")
    stem, dot, ext = base.rpartition(".")
    if not dot:
        stem, ext = base, ""
    if stem.lower() in _WINDOWS_RESERVED:
        stem = f"_{stem}"
    ext = ext[:16]
    room = max(1, max_chars - (len(ext) + 1 if ext else 0))
    stem = stem[:room].rstrip(". ") or "_"
    return f"{stem}.{ext}" if ext else stem


def safe_relative_path(member: str, *, max_chars: int = 120, max_depth: int = 8) -> PurePosixPath:
    """A zip member's path made safe, or :class:`UploadError` when it tries to leave its folder.

    Refuses absolute paths (``/x``, ``C:\\x``, ``\\\\server\\x``) and any ``..`` part rather than
    silently rewriting them: a zip that contains them was made to attack, not by mistake.
    """
    raw = member.replace("\\", "/")
    if raw.startswith("/") or re.match(r"^[A-Za-z]:", raw):
        raise UploadError(f"the zip member {member[:120]!r} has an absolute path; refused")
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise UploadError(f"the zip member {member[:120]!r} climbs out of the zip's folder (../); refused")
    if not parts:
        raise UploadError(f"the zip member {member[:120]!r} has an empty name")
    if len(parts) > max_depth:
        parts = parts[-max_depth:]
    return PurePosixPath(*[safe_file_name(p, max_chars=max_chars) for p in parts])


def classify_name_and_head(name: str, head: bytes) -> str:
    """``"audio"``, ``"zip"``, ``"metadata"`` (CSV or JSON text) or ``"other"``, from content first."""
    if sniff_format(head[:64]) is not None:
        return "audio"
    if head[:4] in ZIP_MAGIC:
        return "zip"
    ext = PurePosixPath(name).suffix.lower()
    if ext in METADATA_EXTENSIONS:
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as e:
            if e.start < len(head) - 4:  # a multi-byte character cut at the end of the head is fine
                return "other"
        return "metadata"
    return "other"


# ---------------------------------------------------------------------------------------------
# staging of chunked uploads


@dataclass
class Upload:
    """One file being uploaded (what ``meta.json`` holds, plus ``received``)."""

    upload_id: str
    file_name: str  # safe name
    original_name: str
    size_bytes: int
    rel_path: str = ""  # safe relative path when the browser sent folders (a dropped folder's label lives there)
    owner: str = ""  # e.g. the socket id or session that created it
    kind: str = ""  # audio | zip | metadata, known after the first chunk
    created: float = 0.0
    updated: float = 0.0
    received: int = 0
    complete: bool = False

    def public(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("owner")
        return d


@dataclass
class StagedFile:
    """A complete file ready to be placed into a collection."""

    rel_path: PurePosixPath  # safe relative path (a zip member keeps its folders)
    path: Path  # where it lies in .uploads
    kind: str  # audio | metadata
    upload_id: str


@dataclass
class StagedBatch:
    files: list[StagedFile] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (name, reason)
    unusable: list[str] = field(default_factory=list)  # upload ids refused whole (unsafe zip, …): never usable


class UploadStore:
    """Chunked, resumable uploads staged under ``COLLECTIONS/.uploads``; thread-safe."""

    def __init__(self, collections_root: Path | str, limits: UploadLimits | None = None) -> None:
        self.collections_root = Path(collections_root).resolve()
        self.root = uploads_root(self.collections_root)
        self.limits = (limits or UploadLimits()).check()
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    # bookkeeping -------------------------------------------------------------------------
    def _dir(self, upload_id: str) -> Path:
        if not isinstance(upload_id, str) or not _ID_RE.match(upload_id):
            raise NotFoundError(f"no upload {str(upload_id)[:40]!r}")
        return self.root / upload_id

    def _lock(self, upload_id: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(upload_id, threading.Lock())

    def _read(self, upload_id: str) -> Upload:
        d = self._dir(upload_id)
        try:
            meta = json.loads(upload_meta_path(d).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            raise NotFoundError(f"no upload {upload_id!r} (finished, cancelled or expired)") from None
        up = Upload(**meta)
        if up.complete:
            up.received = up.size_bytes
        else:
            part = upload_part_path(d)
            up.received = part.stat().st_size if part.is_file() else 0
        return up

    def _write(self, up: Upload) -> None:
        meta = asdict(up)
        meta.pop("received")
        write_json_atomic(upload_meta_path(self._dir(up.upload_id)), meta)

    # the protocol --------------------------------------------------------------------------
    def create(self, file_name: str, size_bytes: int, *, owner: str = "") -> Upload:
        """Start an upload of ``size_bytes`` bytes; returns it with a new ``upload_id``."""
        if isinstance(size_bytes, bool) or not isinstance(size_bytes, int):
            raise UploadError(f"size_bytes must be a whole number, got {size_bytes!r}")
        safe = safe_file_name(file_name, max_chars=self.limits.max_name_chars)
        if size_bytes <= 0:
            raise UploadError(f"{safe} is empty (0 bytes)")
        if size_bytes > self.limits.max_file_bytes:
            raise UploadTooLarge(
                f"{safe} is {_mb(size_bytes)}; the limit is {_mb(self.limits.max_file_bytes)} per file "
                "(split long recordings, or raise the server's upload limit)"
            )
        self._check_quota(safe, size_bytes, owner)
        upload_id = secrets.token_hex(16)
        d = self._dir(upload_id)
        d.mkdir(parents=True, exist_ok=False)
        now = time.time()
        try:
            rel = str(
                safe_relative_path(
                    file_name, max_chars=self.limits.max_name_chars, max_depth=self.limits.max_path_depth
                )
            )
        except UploadError:
            rel = safe
        up = Upload(
            upload_id, safe, str(file_name)[:300], size_bytes, rel_path=rel, owner=owner, created=now, updated=now
        )
        upload_part_path(d).touch()
        self._write(up)
        return up

    def _check_quota(self, safe: str, size_bytes: int, owner: str) -> None:
        """Refuse an upload that would take one client's or everyone's staging over the limits."""
        lim = self.limits
        ups = self.list()
        mine = [u for u in ups if u.owner == owner]
        for who, have, max_n, max_bytes in (
            ("you have", mine, lim.max_client_uploads, lim.max_client_bytes),
            ("the server has", ups, lim.max_total_uploads, lim.max_total_bytes),
        ):
            staged = sum(u.size_bytes for u in have)
            if len(have) + 1 > max_n or staged + size_bytes > max_bytes:
                raise QuotaExceeded(
                    f"{safe} ({_mb(size_bytes)}) would go over the staging quota: {who} {len(have)} uploads "
                    f"({_mb(staged)}) waiting to be added; at most {max_n} uploads and {_mb(max_bytes)} are allowed. "
                    "Add or discard the waiting uploads first"
                )

    def status(self, upload_id: str) -> Upload:
        """The upload with ``received`` = bytes stored so far (resume from there)."""
        return self._read(upload_id)

    def write_chunk(self, upload_id: str, offset: int, stream: IO[bytes] | bytes, length: int) -> Upload:
        """Append ``length`` bytes read from ``stream`` at ``offset`` (must equal the bytes received so far).

        The chunk is read completely before it is written: a short read (the client went away)
        writes nothing and raises :class:`UploadError` naming the offset to resume from. The first
        chunk is sniffed: anything that is not audio, a zip, or a CSV/JSON metadata file is refused
        at once and the upload removed.
        """
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise UploadError(f"offset must be a whole number >= 0, got {offset!r}")
        if isinstance(length, bool) or not isinstance(length, int) or length <= 0:
            raise UploadError(f"a chunk needs a positive length, got {length!r}")
        if length > self.limits.max_chunk_bytes:
            raise UploadTooLarge(f"a chunk may hold at most {_mb(self.limits.max_chunk_bytes)}, got {_mb(length)}")
        with self._lock(upload_id):
            up = self._read(upload_id)
            if up.complete:
                raise UploadError(f"upload {upload_id} is already complete")
            if offset != up.received:
                raise UploadError(
                    f"chunk at offset {offset}, but {up.received} bytes are stored: resume at {up.received}"
                )
            if offset + length > up.size_bytes:
                raise UploadTooLarge(
                    f"{up.file_name}: chunk ends at byte {offset + length}, past the declared size {up.size_bytes}"
                )
            data = stream if isinstance(stream, bytes) else _read_exactly(stream, length)
            if len(data) != length:
                raise UploadError(
                    f"{up.file_name}: chunk incomplete ({len(data)} of {length} bytes arrived); resume at {up.received}"
                )
            d = self._dir(upload_id)
            if offset == 0:
                kind = classify_name_and_head(up.file_name, data[:4096])
                if kind == "other":
                    self._discard_dir(upload_id)
                    raise UploadError(
                        f"{up.file_name} is not audio (WAV, FLAC, OGG, AIFF, MP3), a zip of audio, or a CSV/JSON "
                        "metadata file; refused"
                    )
                up.kind = kind
            with open(upload_part_path(d), "ab") as f:
                f.write(data)
            up.received = offset + length
            up.updated = time.time()
            if up.received == up.size_bytes:
                os.replace(upload_part_path(d), upload_data_path(d))
                up.complete = True
            self._write(up)
            return up

    def discard(self, upload_id: str) -> bool:
        """Remove an upload and everything staged for it; False when there was none."""
        with self._lock(upload_id):
            return self._discard_dir(upload_id)

    def _discard_dir(self, upload_id: str) -> bool:
        d = self._dir(upload_id)
        existed = d.is_dir()
        shutil.rmtree(d, ignore_errors=True)
        with self._guard:
            self._locks.pop(upload_id, None)
        return existed

    def discard_incomplete(self, *, owner: str) -> list[str]:
        """Remove ``owner``'s unfinished uploads (e.g. when its socket disconnects for good)."""
        gone = []
        for up in self.list(owner=owner):
            if not up.complete:
                self.discard(up.upload_id)
                gone.append(up.upload_id)
        return gone

    def list(self, *, owner: str | None = None) -> list[Upload]:
        if not self.root.is_dir():
            return []
        out = []
        for d in sorted(self.root.iterdir()):
            if _ID_RE.match(d.name):
                try:
                    up = self._read(d.name)
                except NotFoundError:
                    continue
                if owner is None or up.owner == owner:
                    out.append(up)
        return out

    def cleanup_stale(self, *, now: float | None = None) -> list[str]:
        """Remove uploads untouched for ``limits.stale_after_s`` (and folders without a readable meta)."""
        now = time.time() if now is None else now
        gone = []
        if not self.root.is_dir():
            return gone
        for d in self.root.iterdir():
            if not _ID_RE.match(d.name):
                continue
            try:
                up = self._read(d.name)
                last = up.updated
            except NotFoundError:
                last = d.stat().st_mtime
            if now - last > self.limits.stale_after_s:
                self.discard(d.name)
                gone.append(d.name)
        return gone

    # complete uploads -> files ---------------------------------------------------------------
    def stage(self, upload_ids: list[str]) -> StagedBatch:
        """The complete uploads as files (zips extracted safely); incomplete or unsafe ones are refused."""
        batch = StagedBatch()
        for uid in upload_ids:
            try:
                up = self._read(uid)
            except NotFoundError as e:
                batch.refused.append((str(uid)[:40], str(e)))
                continue
            if not up.complete:
                batch.refused.append(
                    (up.file_name, f"upload incomplete ({up.received} of {up.size_bytes} bytes); finish or resend it")
                )
                continue
            data = upload_data_path(self._dir(uid))
            if not data.is_file():
                batch.refused.append((up.file_name, "no longer staged (it was added already)"))
                batch.unusable.append(uid)
                continue
            if up.kind == "zip":
                try:
                    files, refused = extract_zip(data, upload_unzipped_dir(self._dir(uid)), limits=self.limits)
                except UploadError as e:
                    batch.refused.append((up.file_name, str(e)))
                    batch.unusable.append(uid)
                    continue
                if not files:
                    batch.unusable.append(uid)
                batch.refused.extend((f"{up.file_name}/{n}", r) for n, r in refused)
                batch.files.extend(StagedFile(rel, p, kind, uid) for rel, p, kind in files)
            else:
                batch.files.append(
                    StagedFile(PurePosixPath(up.rel_path or up.file_name), data, up.kind or "audio", uid)
                )
        return batch


# ---------------------------------------------------------------------------------------------
# zips


def extract_zip(
    zip_path: Path, dest: Path, *, limits: UploadLimits
) -> tuple[list[tuple[PurePosixPath, Path, str]], list[tuple[str, str]]]:
    """Extract the audio and CSV/JSON members of ``zip_path`` under ``dest`` with safe names.

    Returns ``([(safe relative path, extracted path, kind)], [(member, reason refused)])``. Raises
    :class:`UploadError` (and removes ``dest``) for an unsafe zip: a member path climbing out or
    absolute, a symlink, an encrypted member, too many members, or sizes/ratios over the limits.
    """
    try:
        zf = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as e:
        raise UploadError(f"not a readable zip: {e}") from None
    try:
        with zf:
            infos = zf.infolist()
            if len(infos) > limits.max_zip_members:
                raise UploadError(f"the zip has {len(infos)} members; at most {limits.max_zip_members} are allowed")
            plan: list[tuple[zipfile.ZipInfo, PurePosixPath]] = []
            refused: list[tuple[str, str]] = []
            declared_total = 0
            for info in infos:
                if info.is_dir():
                    continue
                rel = safe_relative_path(
                    info.filename, max_chars=limits.max_name_chars, max_depth=limits.max_path_depth
                )
                mode = info.external_attr >> 16
                if stat.S_ISLNK(mode):
                    raise UploadError(f"the zip member {info.filename[:120]!r} is a symbolic link; refused")
                if info.flag_bits & 0x1:
                    raise UploadError(f"the zip member {info.filename[:120]!r} is encrypted; refused")
                if any(p.startswith(("__MACOSX", ".")) for p in PurePosixPath(info.filename.replace("\\", "/")).parts):
                    continue  # macOS resource forks and hidden files: never audio
                ext = rel.suffix.lower()
                if ext not in AUDIO_EXTENSIONS and ext not in METADATA_EXTENSIONS:
                    refused.append((str(rel), "not an audio or CSV/JSON metadata file"))
                    continue
                declared_total += info.file_size
                plan.append((info, rel))
            if declared_total > limits.max_zip_total_bytes:
                raise UploadError(
                    f"the zip would unpack to {_mb(declared_total)}; the limit is {_mb(limits.max_zip_total_bytes)}"
                )
            compressed_total = sum(i.compress_size for i, _ in plan) or 1
            if declared_total / compressed_total > limits.max_zip_ratio and declared_total > 1024**2:
                raise UploadError(
                    f"the zip expands {declared_total / compressed_total:.0f}-fold (limit {limits.max_zip_ratio:g}): "
                    "refused as a possible zip bomb"
                )
            dest.mkdir(parents=True, exist_ok=True)
            root = dest.resolve()
            out: list[tuple[PurePosixPath, Path, str]] = []
            seen: set[str] = set()
            written_total = 0
            for info, rel in plan:
                rel = _unique(rel, seen)
                target = (root / rel).resolve()
                if root not in target.parents:  # belt and braces: safe_relative_path already refused this
                    raise UploadError(f"the zip member {info.filename[:120]!r} would be written outside; refused")
                target.parent.mkdir(parents=True, exist_ok=True)
                budget = min(limits.max_zip_total_bytes - written_total, limits.max_file_bytes)
                ratio_cap = max(int(limits.max_zip_ratio * max(info.compress_size, 1)), 1024**2)
                n = _copy_member(zf, info, target, limit=min(budget, ratio_cap))
                written_total += n
                kind = "audio" if rel.suffix.lower() in AUDIO_EXTENSIONS else "metadata"
                if kind == "audio":
                    with open(target, "rb") as f:
                        if sniff_format(f.read(64)) is None:
                            target.unlink()
                            refused.append((str(rel), "not audio (the content is not WAV, FLAC, OGG, AIFF or MP3)"))
                            continue
                out.append((rel, target, kind))
            return out, refused
    except UploadError:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError, OSError) as e:
        shutil.rmtree(dest, ignore_errors=True)
        raise UploadError(f"the zip could not be read: {str(e)[:200]}") from None


def _copy_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, *, limit: int) -> int:
    """Stream one member to ``target``, stopping (and refusing) past ``limit`` real bytes."""
    n = 0
    with zf.open(info) as src, open(target, "wb") as dst:
        while True:
            block = src.read(1 << 20)
            if not block:
                break
            n += len(block)
            if n > limit:
                dst.close()
                target.unlink(missing_ok=True)
                raise UploadError(
                    f"the zip member {info.filename[:120]!r} expands beyond the limits "
                    "(size or compression ratio): refused as a possible zip bomb"
                )
            dst.write(block)
    return n


def _unique(rel: PurePosixPath, seen: set[str]) -> PurePosixPath:
    """Avoid two members landing on the same name (case-insensitive file systems too)."""
    cand, k = rel, 1
    while str(cand).lower() in seen:
        cand = rel.with_name(f"{rel.stem} ({k}){rel.suffix}")
        k += 1
    seen.add(str(cand).lower())
    return cand


# ---------------------------------------------------------------------------------------------
# into a collection


def sources_dir(collection_root: Path) -> Path:
    """Where a collection keeps uploaded originals (the recording view streams them from there)."""
    return Collection(Path(collection_root)).sources_dir


def new_batch_name(now: float | None = None) -> str:
    """``upload-YYYYmmdd-HHMMSS-xxxx``: a fresh folder under ``sources/`` for one upload session."""
    t = time.gmtime(time.time() if now is None else now)
    return f"upload-{time.strftime('%Y%m%d-%H%M%S', t)}-{secrets.token_hex(2)}"


def place_file(
    staged: StagedFile,
    dest_root: Path,
    *,
    collections_root: Path,
    taken: set[str] | frozenset[str] = frozenset(),
    dry_run: bool = False,
) -> Path:
    """Move one staged file to ``dest_root / staged.rel_path`` (never overwriting; inside the collections folder).

    ``taken`` holds relative paths (lower case) already used by the collection, even if their files are
    gone: a name there gets a `` (1)`` suffix too. Returns the new path (``dry_run``: only where it would go).
    ``os.replace`` within one file system: the file appears whole or not at all.
    """
    collections_root = Path(collections_root).resolve()
    dest_root = Path(dest_root).resolve()
    if collections_root not in dest_root.parents:
        raise UploadError("uploads may only be placed inside the collections folder")
    target = (dest_root / staged.rel_path).resolve()
    if dest_root not in target.parents:
        raise UploadError(f"{staged.rel_path} would be written outside {dest_root.name}; refused")
    target.parent.mkdir(parents=True, exist_ok=True)
    k = 1
    base = target
    while target.exists() or target.relative_to(dest_root).as_posix().lower() in taken:
        target = base.with_name(f"{base.stem} ({k}){base.suffix}")
        k += 1
    if not dry_run:
        os.replace(staged.path, target)
    return target


def move_into(src: Path, target: Path) -> None:
    """Move ``src`` to ``target`` (creating its folder), refusing to overwrite."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        raise UploadError(f"{target.name} exists already; refused to overwrite it")
    os.replace(src, target)


def _read_exactly(stream: IO[bytes], length: int) -> bytes:
    buf = bytearray()
    try:
        while len(buf) < length:
            block = stream.read(min(1 << 20, length - len(buf)))
            if not block:
                break
            buf += block
    except Exception:  # noqa: BLE001 - a client that disconnects raises server-specific errors; a short read says it
        pass
    return bytes(buf)


def _mb(n: int) -> str:
    return f"{n / 1024**2:,.1f} MB" if n >= 1024**2 else f"{n:,} bytes"
