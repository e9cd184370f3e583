"""Decoding by content: real files in every format, and every kind of bad input."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from preprocess import audio
from preprocess.errors import AudioError

DEMO = Path(__file__).resolve().parents[2] / "demo" / "recordings"
MP3 = DEMO / "Junco hyemalis_Dark-eyed Junco" / "XC137480.mp3"  # 44.1 kHz stereo MP3
WAV = next((DEMO / "Parus major_Great Tit").glob("*.wav"))  # 22.05 kHz mono WAV


def _wav_bytes(y: np.ndarray, sr: int, fmt: str = "WAV") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, y, sr, format=fmt, subtype="PCM_16")
    return buf.getvalue()


@pytest.mark.parametrize(
    ("head", "fmt"),
    [
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", "wav"),
        (b"fLaC\x00\x00", "flac"),
        (b"OggS\x00\x02", "ogg"),
        (b"ID3\x04\x00", "mp3"),
        (b"\xff\xfb\x90\x64", "mp3"),
        (b"FORM\x00\x00\x00\x00AIFF", "aiff"),
        (b"path,label\n", None),
        (b"\x00\x00\x00\x00", None),
    ],
)
def test_sniff_format(head, fmt):
    assert audio.sniff_format(head) == fmt


def test_real_mp3_stereo_is_mixed_and_resampled():
    y, info = audio.load(MP3, sr=32000)
    assert info.format == "mp3" and info.channels == 2 and info.orig_sample_rate == 44100
    assert y.dtype == np.float32 and y.ndim == 1
    assert abs(len(y) / 32000 - info.duration_s) < 0.01
    assert 5.9 < info.duration_s < 6.1
    stereo, _ = sf.read(MP3, dtype="float32", always_2d=True)
    ref = audio.resample(stereo.mean(axis=1), orig_sr=44100, target_sr=32000)
    np.testing.assert_allclose(y, ref, atol=1e-6)


def test_wav_named_mp3_loads_by_content(tmp_path):
    fake = tmp_path / "actually a wav.mp3"
    fake.write_bytes(WAV.read_bytes())
    y, info = audio.load(fake, sr=22050)
    ref, sr = sf.read(WAV, dtype="float32")
    assert info.format == "wav" and sr == 22050
    np.testing.assert_array_equal(y, ref)


def test_real_flac_and_ogg_round_trip():
    ref, sr = sf.read(WAV, dtype="float32")
    for fmt in ("FLAC", "OGG"):
        buf = io.BytesIO()
        sf.write(buf, ref, sr, format=fmt)
        y, info = audio.load_bytes(buf.getvalue(), sr=sr)
        assert info.format == fmt.lower()
        assert len(y) == len(ref)
        if fmt == "FLAC":
            np.testing.assert_allclose(y, ref, atol=1 / 32768)


def test_8khz_input_is_upsampled():
    """An 8 kHz file (a real recording resampled down) loads at the collection rate with its duration kept."""
    ref, sr = sf.read(WAV, dtype="float32")
    y8 = audio.resample(ref, orig_sr=sr, target_sr=8000)
    y, info = audio.load_bytes(_wav_bytes(y8, 8000), sr=32000)
    assert info.orig_sample_rate == 8000
    assert abs(len(y) / 32000 - len(ref) / sr) < 0.001


def test_truncated_mp3_decodes_what_is_there_with_a_note():
    data = MP3.read_bytes()
    y, info = audio.load_bytes(data[: len(data) // 2], sr=32000)
    assert 2.0 < len(y) / 32000 < 4.0
    assert info.note.startswith("truncated")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty file"),
        (b"path,label\nfoo.wav,bar\n" * 10, "not a recognised audio file"),
        (MP3.read_bytes()[:300], "corrupt or truncated MP3"),
        (b"RIFF\x24\x00\x00\x00WAVEjunkjunkjunk", "corrupt or truncated WAV"),
    ],
)
def test_bad_bytes_raise_one_line_audio_error(data, reason):
    with pytest.raises(AudioError) as e:
        audio.load_bytes(data, sr=32000)
    assert reason in str(e.value)
    assert "\n" not in str(e.value)


def test_silence_is_refused():
    with pytest.raises(AudioError, match="silent"):
        audio.load_bytes(_wav_bytes(np.zeros(16000, np.float32), 16000), sr=32000)


def test_unreadable_paths(tmp_path):
    with pytest.raises(AudioError, match="cannot read"):
        audio.load(tmp_path / "missing.wav", sr=32000)
    (tmp_path / "dir.wav").mkdir()
    with pytest.raises(AudioError, match="folder"):
        audio.load(tmp_path / "dir.wav", sr=32000)


def test_bat_256khz_keeps_ultrasound(dev_data_path):
    bat = dev_data_path / "Antrozous pallidus_Pallid Bat" / "ANPA-103486.wav"
    y, info = audio.load(bat, sr=256000)
    assert info.orig_sample_rate == 256000 and abs(len(y) / 256000 - 7.004) < 0.01
    spec = np.abs(np.fft.rfft(y - y.mean())) ** 2
    freqs = np.fft.rfftfreq(len(y), 1 / 256000)
    audible = spec[(freqs > 100) & (freqs <= 20000)].sum()
    assert spec[freqs > 20000].sum() > audible  # echolocation energy is ultrasonic
