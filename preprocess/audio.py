"""The only module that decodes audio files.

Formats are recognised by content (magic bytes), never by extension, so a WAV saved as ``.mp3``
still loads and a text file named ``.wav`` is refused with a clear reason. soundfile (libsndfile)
decodes WAV, FLAC, OGG/Vorbis/Opus, AIFF and MP3. Everything that goes wrong becomes an
:class:`~preprocess.errors.AudioError` whose message is one line, fit for ``skipped.csv``.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import AudioError

#: Extensions considered when discovering recordings (content still decides the format).
AUDIO_EXTENSIONS = (".wav", ".wave", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".aif", ".aiff", ".w64", ".rf64")

#: Shortest usable recording, in seconds; anything shorter is refused as "too short".
MIN_DURATION_S = 0.05

#: Peak below this (full scale = 1) counts as silence.
SILENCE_PEAK = 1e-5


@dataclass(frozen=True)
class AudioInfo:
    """What a file turned out to be."""

    format: str  # "wav", "flac", "ogg", "mp3", "aiff", "w64"
    orig_sample_rate: int
    channels: int
    duration_s: float  # of the decoded audio
    sha1: str
    size_bytes: int
    note: str = ""  # e.g. "truncated: decoded 3.1 s of 6.0 s"


def sniff_format(head: bytes) -> str | None:
    """Name the container from a file's first bytes, or ``None`` when it is not audio we read."""
    if len(head) >= 12 and head[:4] in (b"RIFF", b"RIFX", b"RF64", b"BW64") and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        return "ogg"
    if len(head) >= 12 and head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    if head[:16] == b"riff\x2e\x91\xcf\x11\xa5\xd6\x28\xdb\x04\xc1\x00\x00":
        return "w64"
    if head[:3] == b"ID3":
        return "mp3"
    if len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0 and (head[1] & 0x06) != 0:
        return "mp3"  # MPEG audio frame sync (layer bits non-zero)
    return None


@contextmanager
def _readable() -> Iterator[None]:
    """Turn the OS errors of reading a file into :class:`AudioError` with a one-line reason."""
    try:
        yield
    except PermissionError:
        raise AudioError("cannot read the file: permission denied") from None
    except IsADirectoryError:
        raise AudioError("is a folder, not a file") from None
    except OSError as e:
        raise AudioError(f"cannot read the file: {e.strerror or e}") from None


def read_bytes(path: Path | str) -> bytes:
    """Read a whole file, turning OS errors into :class:`AudioError`."""
    with _readable():
        return Path(path).read_bytes()


def decode(data: bytes) -> tuple[np.ndarray, int, str, str]:
    """Decode bytes to ``(y, sr, format, note)`` with ``y`` float32 [n_samples, channels] in [-1, 1].

    Raises :class:`AudioError` for empty, non-audio, corrupt or silent data.
    """
    if len(data) == 0:
        raise AudioError("empty file (0 bytes)")
    y, sr, fmt, note, _channels = _decode(io.BytesIO(data), data[:64], mono=False)
    return y, sr, fmt, note


def decode_mono(path: Path | str) -> tuple[np.ndarray, int, str, str, int]:
    """Decode a file block by block, mixing to mono as it goes (a long stereo file never sits whole in memory).

    Returns ``(y, sr, format, note, channels)`` with ``y`` float32 [n_samples]; equal to
    ``to_mono(decode(bytes)[0])``. Raises :class:`AudioError` like :func:`decode`.
    """
    with _readable(), open(path, "rb") as f:
        head = f.read(64)
    if not head:
        raise AudioError("empty file (0 bytes)")
    return _decode(str(path), head, mono=True)


_BLOCK_FRAMES = 1 << 20


def _decode(source, head: bytes, *, mono: bool) -> tuple[np.ndarray, int, str, str, int]:
    fmt = sniff_format(head)
    if fmt is None:
        raise AudioError(f"not a recognised audio file (starts with {_describe_head(head[:16])}); allowed: {_ALLOWED}")
    try:
        import soundfile as sf

        with sf.SoundFile(source) as f:
            declared = f.frames
            sr = int(f.samplerate)
            channels = int(f.channels)
            if mono:
                parts = []
                while True:
                    block = f.read(_BLOCK_FRAMES, dtype="float32", always_2d=True)
                    if not len(block):
                        break
                    parts.append(to_mono(block))
                y = np.concatenate(parts) if parts else np.zeros(0, np.float32)
            else:
                y = f.read(dtype="float32", always_2d=True)
    except AudioError:
        raise
    except Exception as e:  # libsndfile reports corrupt data with several exception types
        raise AudioError(f"corrupt or truncated {fmt.upper()}: {_one_line(e)}") from None
    if sr <= 0:
        raise AudioError(f"{fmt.upper()} declares an invalid sample rate ({sr} Hz)")
    n = y.shape[0]
    note = ""
    if declared > 0 and n < 0.98 * declared and declared < 2**62:
        note = f"truncated: decoded {n / sr:.2f} s of {declared / sr:.2f} s"
    if n < MIN_DURATION_S * sr:
        raise AudioError(f"too short or truncated {fmt.upper()}: {n / sr:.3f} s of audio decoded")
    if not np.all(np.isfinite(y)):
        raise AudioError(f"corrupt {fmt.upper()}: decoded samples are not finite")
    if float(np.max(np.abs(y))) < SILENCE_PEAK:
        raise AudioError(f"silent: every sample is below {20 * np.log10(SILENCE_PEAK):.0f} dBFS")
    return y, sr, fmt, note, channels


def file_sha1(path: Path | str) -> tuple[str, int]:
    """``(sha1 hex, size in bytes)`` of a file, read in chunks."""
    h = hashlib.sha1()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def to_mono(y: np.ndarray) -> np.ndarray:
    """Mix [n_samples, channels] (or [n_samples]) down to float32 [n_samples]."""
    if y.ndim == 1:
        return y.astype(np.float32, copy=False)
    if y.shape[1] == 1:
        return np.ascontiguousarray(y[:, 0], dtype=np.float32)
    return y.mean(axis=1, dtype=np.float32)


def resample(y: np.ndarray, *, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample mono float32 audio with soxr (high quality); a no-op when the rates agree."""
    if orig_sr == target_sr:
        return y.astype(np.float32, copy=False)
    import soxr

    return soxr.resample(y, orig_sr, target_sr, quality="HQ").astype(np.float32, copy=False)


def load(path: Path | str, *, sr: int) -> tuple[np.ndarray, AudioInfo]:
    """Read, decode, mix to mono and resample one file.

    Returns
    -------
    y : float32 [n_samples] at ``sr`` Hz
    info : :class:`AudioInfo` (original rate, channels, format, sha1 and size of the file's bytes)
    """
    y_orig, orig_sr, fmt, note, channels = decode_mono(path)
    sha1, size = file_sha1(path)
    y = resample(y_orig, orig_sr=orig_sr, target_sr=sr)
    info = AudioInfo(fmt, orig_sr, channels, len(y_orig) / orig_sr, sha1, size, note)
    return y, info


def load_bytes(data: bytes, *, sr: int) -> tuple[np.ndarray, AudioInfo]:
    """:func:`load` for bytes already in memory."""
    sha1 = hashlib.sha1(data).hexdigest()
    y2, orig_sr, fmt, note = decode(data)
    channels = int(y2.shape[1])
    y = resample(to_mono(y2), orig_sr=orig_sr, target_sr=sr)
    info = AudioInfo(
        format=fmt,
        orig_sample_rate=orig_sr,
        channels=channels,
        duration_s=y2.shape[0] / orig_sr,
        sha1=sha1,
        size_bytes=len(data),
        note=note,
    )
    return y, info


_ALLOWED = "WAV, FLAC, OGG, AIFF, MP3"


def _describe_head(head: bytes) -> str:
    text = head.decode("ascii", errors="replace")
    if all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        return f"text {text.strip()[:12]!r}"
    return "bytes " + head[:8].hex(" ")


def _one_line(e: BaseException) -> str:
    msg = str(e).replace("\n", " ").strip()
    # libsndfile names the BytesIO object; that means nothing to a user
    if "Error opening" in msg and ":" in msg:
        msg = msg.split(":", 1)[1].strip()
    if "does not exist or is not a regular file" in msg:
        msg = "no decodable audio in it"
    return msg[:200] or type(e).__name__
