"""Step 1 of the build: which audio files an input holds, and where the collection may go.

Files are found recursively (hidden files skipped) and sorted by their stored path; content, not the
extension, decides the format later (:mod:`preprocess.audio`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .audio import AUDIO_EXTENSIONS, sniff_format
from .errors import ParameterError

#: Extensions never worth opening when looking for audio.
_NOT_AUDIO = {".csv", ".md", ".txt", ".json", ".jpg", ".jpeg", ".png", ".pdf", ".py", ".html", ".xml", ".zip"}


@dataclass
class Source:
    """One file found in the input."""

    path: str  # relative (posix) path as stored in recordings.parquet
    abs_path: Path
    meta_path: str  # path relative to its own input folder (for the labels CSV)
    size_bytes: int
    mtime_ns: int


def check_paths(inputs: list[Path | str], out: Path | str) -> tuple[list[Path], Path]:
    """Resolve inputs and output; refuse missing inputs and an output inside an input."""
    if not inputs:
        raise ParameterError("no input given: name at least one folder or audio file")
    ins = []
    for p in inputs:
        rp = Path(p).expanduser().resolve()
        if not rp.exists():
            raise ParameterError(f"input {p} does not exist")
        ins.append(rp)
    rout = Path(out).expanduser().resolve()
    for rp in ins:
        if rp.is_dir() and (rout == rp or rp in rout.parents):
            raise ParameterError(
                f"the output {out} is inside the input folder {rp}; choose an output folder outside the input "
                "(the build would read its own files)"
            )
    if rout.exists() and not rout.is_dir():
        raise ParameterError(f"the output {out} exists and is not a folder")
    return ins, rout


def discover(inputs: list[Path]) -> list[Source]:
    """Audio files under ``inputs`` (recursively, hidden files skipped), sorted by stored path."""
    multi = len(inputs) > 1
    found: dict[str, Source] = {}
    for root in inputs:
        if root.is_file():
            files, base = [root], root.parent
        else:
            files, base = [], root
            for dirpath, dirnames, filenames in os.walk(root):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                files.extend(Path(dirpath) / f for f in filenames if not f.startswith("."))
        for f in files:
            if not _looks_like_audio(f):
                continue
            rel = f.relative_to(base).as_posix()
            path = f"{root.name}/{rel}" if multi and root.is_dir() else rel
            try:
                st = f.stat()
            except OSError:
                st = None
            found.setdefault(path, Source(path, f, rel, st.st_size if st else -1, st.st_mtime_ns if st else 0))
    return [found[k] for k in sorted(found)]


def _looks_like_audio(f: Path) -> bool:
    ext = f.suffix.lower()
    if ext in AUDIO_EXTENSIONS:
        return True
    if ext in _NOT_AUDIO:
        return False
    try:
        with open(f, "rb") as fh:
            return sniff_format(fh.read(64)) is not None
    except OSError:
        return False
