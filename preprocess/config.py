"""The build configuration, declared once: defaults, help, units and validation.

:class:`BuildConfig` is frozen; every field has a default, a help text (used by the CLI) and a rule
(checked by :meth:`BuildConfig.validate`, called on construction). The whole config is stored in the
collection's manifest so every collection says how it was made.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .errors import ParameterError

MODES = ("fixed", "events")
TILE_FORMATS = ("jpg", "webp")
MAX_SHEET_PX = 4096
MIN_SAMPLE_RATE = 8_000
MAX_SAMPLE_RATE = 500_000
DEFAULT_FMAX = 15_000.0


def _f(default: Any, help: str, **rule: Any) -> Any:
    """A dataclass field with its help text and validation rule in ``metadata``."""
    return field(default=default, metadata={"help": help, **rule})


@dataclass(frozen=True)
class BuildConfig:
    """How recordings become clips, spectrograms, tiles and audio sprites (units in the names or help)."""

    # audio
    sample_rate: int = _f(
        32_000, "collection sample rate in Hz (bats: e.g. 256000 keeps ultrasound)", min=8_000, max=500_000
    )
    # clips
    # events: chosen on dev half A (NMI 0.835 -> 0.902), held on half B (0.966 -> 0.974; bench/refine.py --defaults)
    mode: str = _f("events", "clip mode: 'fixed' windows or 'events' (calls above the noise floor)", choices=MODES)
    clip_s: float = _f(3.0, "clip length in seconds (BirdNET's window is 3 s)", gt=0.0, max=60.0)
    hop_s: float = _f(3.0, "fixed mode: step between clip starts in seconds", gt=0.0, max=3600.0)
    max_per_recording: int = _f(
        0, "most clips per recording (0 = no limit); evenly spaced (fixed) or loudest (events)", min=0
    )
    event_threshold_db: float = _f(10.0, "events mode: band energy above the noise floor, in dB", gt=0.0, max=60.0)
    event_min_s: float = _f(0.05, "events mode: shortest event kept, in seconds", min=0.0, max=60.0)
    event_gap_s: float = _f(0.3, "events mode: events closer than this are merged, in seconds", min=0.0, max=60.0)
    # spectrograms
    n_fft: int = _f(1024, "FFT size in samples", min=16, max=65_536)
    hop_length: int = _f(320, "spectrogram hop in samples", min=1, max=65_536)
    n_mels: int = _f(128, "number of mel bands", min=8, max=512)
    fmin: float = _f(150.0, "lowest mel frequency in Hz", min=0.0)
    fmax: float = _f(None, "highest mel frequency in Hz (default 15000, at most the Nyquist frequency)")
    top_db: float = _f(80.0, "dynamic range kept below each clip's maximum, in dB", gt=0.0, max=200.0)
    # tiles and sprite sheets
    tile_w: int = _f(128, "tile width in px", min=16, max=1024)
    tile_h: int = _f(128, "tile height in px", min=16, max=1024)
    tile_format: str = _f("jpg", "sprite sheet image format", choices=TILE_FORMATS)
    tile_quality: int = _f(85, "JPEG/WebP quality", min=1, max=100)
    colormap: str = _f(
        "magma", "perceptually uniform colormap for tiles", choices=("magma", "viridis", "inferno", "gray")
    )
    # audio sprites
    audio_sprite_s: float = _f(
        180.0, "longest audio sprite in seconds (a browser fetches one before the first hover)", min=10.0, max=600.0
    )
    audio_gap_s: float = _f(0.05, "silence between clips in an audio sprite, in seconds", min=0.0, max=2.0)
    audio_fade_ms: float = _f(5.0, "fade in/out of each clip in an audio sprite, in ms", min=0.0, max=100.0)

    def __post_init__(self) -> None:
        if self.fmax is None:
            object.__setattr__(self, "fmax", min(DEFAULT_FMAX, self.sample_rate / 2))
        self.validate()

    # derived -----------------------------------------------------------------------------
    @property
    def sheet_cols(self) -> int:
        return MAX_SHEET_PX // self.tile_w

    @property
    def sheet_rows(self) -> int:
        return MAX_SHEET_PX // self.tile_h

    @property
    def cells_per_sheet(self) -> int:
        return self.sheet_cols * self.sheet_rows

    @property
    def audio_sample_rate(self) -> int:
        return self.sample_rate

    @property
    def clip_samples(self) -> int:
        return int(round(self.clip_s * self.sample_rate))

    @property
    def n_frames(self) -> int:
        """Spectrogram frames per clip (centred STFT)."""
        return 1 + self.clip_samples // self.hop_length

    # validation --------------------------------------------------------------------------
    def validate(self) -> BuildConfig:
        """Raise :class:`ParameterError` naming the first wrong option and what is allowed."""
        for f in fields(self):
            value = getattr(self, f.name)
            rule = f.metadata
            name = f"--{f.name.replace('_', '-')}"
            if "choices" in rule:
                if value not in rule["choices"]:
                    raise ParameterError(f"{name} {value!r} is unknown; allowed: {', '.join(rule['choices'])}")
                continue
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value != value:
                raise ParameterError(f"{name} must be a number, got {value!r}")
            if f.type == "int" and int(value) != value:
                raise ParameterError(f"{name} must be a whole number, got {value!r}")
            if "min" in rule and value < rule["min"]:
                raise ParameterError(f"{name} is {value}; allowed: {_range(rule)}")
            if "gt" in rule and value <= rule["gt"]:
                raise ParameterError(f"{name} is {value}; allowed: {_range(rule)}")
            if "max" in rule and value > rule["max"]:
                raise ParameterError(f"{name} is {value}; allowed: {_range(rule)}")
        nyquist = self.sample_rate / 2
        if self.fmax > nyquist:
            raise ParameterError(
                f"fmax {self.fmax:g} Hz is above the Nyquist frequency ({nyquist:g} Hz at sample_rate "
                f"{self.sample_rate}); allowed: fmin < fmax <= {nyquist:g} Hz (or raise sample_rate)"
            )
        if not 0 <= self.fmin < self.fmax:
            raise ParameterError(f"fmin {self.fmin:g} Hz must be >= 0 and below fmax {self.fmax:g} Hz")
        if self.hop_length > self.n_fft:
            raise ParameterError(f"hop_length {self.hop_length} must not exceed n_fft {self.n_fft}")
        if self.n_fft > self.clip_samples:
            raise ParameterError(
                f"n_fft {self.n_fft} is longer than a clip ({self.clip_samples} samples); use a smaller n_fft or longer clip_s"
            )
        if self.mode == "fixed" and self.hop_s > 0 and self.clip_s / self.hop_s > 100:
            raise ParameterError(
                f"hop_s {self.hop_s:g} gives {self.clip_s / self.hop_s:.0f} overlapping clips per window; allowed: hop_s >= clip_s/100"
            )
        return self

    # (de)serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Every field plus the derived values other layers read (sheet_cols, audio_sample_rate, …)."""
        d = asdict(self)
        d.update(
            sheet_cols=self.sheet_cols,
            sheet_rows=self.sheet_rows,
            audio_sample_rate=self.audio_sample_rate,
            n_frames=self.n_frames,
        )
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BuildConfig:
        """Inverse of :meth:`to_dict`; derived and unknown keys are ignored."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def replace(self, **changes: Any) -> BuildConfig:
        d = asdict(self)
        d.update(changes)
        if "sample_rate" in changes and "fmax" not in changes:
            d["fmax"] = None
        return type(self)(**d)

    def digest(self) -> str:
        """Short hash of every field that changes a recording's clips, spectrograms or audio."""
        keys = ("sample_rate", "mode", "clip_s", "hop_s", "max_per_recording", "event_threshold_db", "event_min_s")
        keys += ("event_gap_s", "n_fft", "hop_length", "n_mels", "fmin", "fmax", "top_db")
        blob = json.dumps({k: getattr(self, k) for k in keys}, sort_keys=True)
        return hashlib.sha1(blob.encode()).hexdigest()[:12]


def field_help() -> dict[str, dict[str, Any]]:
    """``{name: {"default", "help", "type", "choices"?}}`` for building command-line options."""
    out = {}
    for f in fields(BuildConfig):
        out[f.name] = {"default": f.default, "type": f.type, **f.metadata}
    return out


def _range(rule: dict[str, Any]) -> str:
    lo = f"> {rule['gt']:g}" if "gt" in rule else (f">= {rule['min']:g}" if "min" in rule else "")
    hi = f"<= {rule['max']:g}" if "max" in rule else ""
    return " and ".join(x for x in (lo, hi) if x)
