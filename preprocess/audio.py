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
from typing import Any

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
    stream = MonoStream(data)  # checks format, truncation, silence on the mono mix
    for _ in stream:
        pass
    import soundfile as sf

    with sf.SoundFile(io.BytesIO(data)) as f:
        y = f.read(stream.n_frames, dtype="float32", always_2d=True)
    return y, stream.orig_sample_rate, stream.format, stream.note


def decode_mono(path: Path | str) -> tuple[np.ndarray, int, str, str, int]:
    """Decode a whole file to mono at its own rate, block by block (see :class:`MonoStream`).

    Returns ``(y, sr, format, note, channels)`` with ``y`` float32 [n_samples]; equal to
    ``to_mono(decode(bytes)[0])`` for an intact file. Raises :class:`AudioError` like :func:`decode`.
    """
    stream = MonoStream(path)
    y = _collect(stream)
    return y, stream.orig_sample_rate, stream.format, stream.note, stream.channels


_BLOCK_FRAMES = 1 << 20


class MonoStream:
    """A recording's audio, mixed to mono and resampled to ``sr`` Hz, as float32 blocks [n] in [-1, 1].

    Iterating decodes the file in blocks of ``block_frames`` source frames and resamples with soxr's
    streaming resampler, so memory does not grow with the recording's length and the concatenated
    blocks equal a one-shot :func:`resample` of the whole decoded file. ``sr=None`` keeps the file's rate.

    Format, rate and channels are known on construction; ``note`` (e.g. "truncated: ..."),
    ``n_frames`` (source frames decoded) and ``n_samples`` (samples yielded) once iteration ends.
    A file cut short keeps what decodes, with a note. Raises :class:`AudioError` on construction
    (not audio, unreadable) or at the end of iteration (too short, silent, not finite).
    """

    def __init__(self, source: Path | str | bytes, *, sr: int | None = None, block_frames: int = _BLOCK_FRAMES) -> None:
        if isinstance(source, bytes):
            head = source[:_HEAD_BYTES]
            self._source: Any = io.BytesIO(source)
        else:
            with _readable(), open(source, "rb") as f:
                head = f.read(_HEAD_BYTES)
            self._source = str(source)
        if not head:
            raise AudioError("empty file (0 bytes)")
        fmt = sniff_format(head)
        if fmt is None:
            raise AudioError(
                f"not a recognised audio file (starts with {_describe_head(head[:16])}); allowed: {_ALLOWED}"
            )
        self.format = fmt
        try:
            import soundfile as sf

            with sf.SoundFile(self._source) as f:
                self.declared_frames = int(f.frames)
                self.orig_sample_rate = int(f.samplerate)
                self.channels = int(f.channels)
        except Exception as e:  # libsndfile reports corrupt data with several exception types
            raise AudioError(f"corrupt or truncated {fmt.upper()}: {_one_line(e)}") from None
        if self.orig_sample_rate <= 0:
            raise AudioError(f"{fmt.upper()} declares an invalid sample rate ({self.orig_sample_rate} Hz)")
        if fmt == "wav":  # libsndfile trims a data chunk longer than the file: compare with what the header claims
            claimed = _wav_claimed_frames(head, self.channels)
            if claimed and claimed > self.declared_frames:
                self.declared_frames = claimed
        self.sample_rate = int(sr) if sr else self.orig_sample_rate
        self.block_frames = int(block_frames)
        self.note = ""
        self.n_frames = 0
        self.n_samples = 0

    @property
    def duration_s(self) -> float:
        """Seconds of audio decoded (known once iteration ends)."""
        return self.n_frames / self.orig_sample_rate

    def __iter__(self) -> Iterator[np.ndarray]:
        import soundfile as sf

        if isinstance(self._source, io.BytesIO):
            self._source.seek(0)
        fmt, orig_sr = self.format.upper(), self.orig_sample_rate
        rs = None
        if self.sample_rate != orig_sr:
            import soxr

            rs = soxr.ResampleStream(orig_sr, self.sample_rate, 1, dtype="float32", quality="HQ")
        peak, self.n_frames, self.n_samples, stop_reason = 0.0, 0, 0, ""
        try:
            f = sf.SoundFile(self._source)
        except Exception as e:
            raise AudioError(f"corrupt or truncated {fmt}: {_one_line(e)}") from None
        block_frames = self.block_frames
        try:
            while True:
                try:
                    block = f.read(block_frames, dtype="float32", always_2d=True)
                except Exception as e:
                    stop_reason = stop_reason or _one_line(e)  # the first error says what broke
                    if block_frames > _SALVAGE_FRAMES:  # salvage the broken block's good start in small reads
                        f.close()
                        f = sf.SoundFile(self._source)
                        f.seek(self.n_frames)
                        block_frames = _SALVAGE_FRAMES
                        continue
                    if self.n_frames == 0:
                        raise AudioError(f"corrupt or truncated {fmt}: {stop_reason}") from None
                    break
                if not len(block):
                    break
                y = to_mono(block)
                if not np.all(np.isfinite(y)):
                    raise AudioError(f"corrupt {fmt}: decoded samples are not finite")
                peak = max(peak, float(np.max(np.abs(y))))
                self.n_frames += len(y)
                out = rs.resample_chunk(y, last=False) if rs is not None else y
                if len(out):
                    self.n_samples += len(out)
                    yield out
        finally:
            f.close()
        if rs is not None:
            out = rs.resample_chunk(np.zeros(0, np.float32), last=True)
            if len(out):
                self.n_samples += len(out)
                yield out
        n, declared = self.n_frames, self.declared_frames
        if declared > 0 and n < 0.98 * declared and declared < 2**62:
            self.note = f"truncated: decoded {n / orig_sr:.2f} s of {declared / orig_sr:.2f} s"
        elif stop_reason:
            self.note = f"truncated: decoded {n / orig_sr:.2f} s"
        if stop_reason:
            self.note += f" ({stop_reason})"
        if n < MIN_DURATION_S * orig_sr:
            raise AudioError(f"too short or truncated {fmt}: {n / orig_sr:.3f} s of audio decoded")
        if peak < SILENCE_PEAK:
            raise AudioError(f"silent: every sample is below {20 * np.log10(SILENCE_PEAK):.0f} dBFS")


_HEAD_BYTES = 1 << 16
#: Frames per read once a block failed to decode: how much of a corrupt block is given up, at most.
_SALVAGE_FRAMES = 4096


def _wav_claimed_frames(head: bytes, channels: int) -> int:
    """Frames a RIFF/WAVE header's ``data`` chunk claims (0 when unknown: RF64, no data chunk in ``head``)."""
    if head[:4] != b"RIFF" or len(head) < 12:
        return 0
    pos, block_align = 12, 0
    while pos + 8 <= len(head):
        cid, size = head[pos : pos + 4], int.from_bytes(head[pos + 4 : pos + 8], "little")
        if cid == b"fmt " and pos + 22 <= len(head):
            block_align = int.from_bytes(head[pos + 20 : pos + 22], "little")
        if cid == b"data":
            if size in (0, 0xFFFFFFFF) or block_align <= 0:
                return 0
            return size // block_align
        pos += 8 + size + (size & 1)
    return 0


def _collect(stream: MonoStream) -> np.ndarray:
    parts = list(stream)
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


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
    """Read, decode, mix to mono and resample one file (block by block; see :class:`MonoStream`).

    Returns
    -------
    y : float32 [n_samples] at ``sr`` Hz
    info : :class:`AudioInfo` (original rate, channels, format, sha1 and size of the file's bytes)
    """
    stream = MonoStream(path, sr=sr)
    y = _collect(stream)
    sha1, size = file_sha1(path)
    info = AudioInfo(
        stream.format, stream.orig_sample_rate, stream.channels, stream.duration_s, sha1, size, stream.note
    )
    return y, info


def load_bytes(data: bytes, *, sr: int) -> tuple[np.ndarray, AudioInfo]:
    """:func:`load` for bytes already in memory."""
    if len(data) == 0:
        raise AudioError("empty file (0 bytes)")
    sha1 = hashlib.sha1(data).hexdigest()
    stream = MonoStream(data, sr=sr)
    y = _collect(stream)
    info = AudioInfo(
        format=stream.format,
        orig_sample_rate=stream.orig_sample_rate,
        channels=stream.channels,
        duration_s=stream.duration_s,
        sha1=sha1,
        size_bytes=len(data),
        note=stream.note,
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
