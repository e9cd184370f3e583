"""How fast the build is: audio seconds processed per wall second, per stage and end to end.

    .venv/bin/python bench/preprocess.py [INPUT] [--jobs N] [--mode fixed|events]

INPUT defaults to ../shared/data/dev. Stages are timed one after another in this process on one core
(decode, resample, segment, spectrogram, tiles, audio sprites); "end to end" runs the real build into a
temporary folder: in this process with N worker processes (imports already warm), and as the CLI in a
fresh process (what a user waits for, start-up included). Target: >= 200x real time end to end (fixed
windows, 2 cores).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from preprocess import audio, clips, spectrogram, sprites  # noqa: E402
from preprocess.config import BuildConfig  # noqa: E402
from preprocess.pipeline import build, discover  # noqa: E402
from preprocess.pool import cpu_count  # noqa: E402


def stage_rates(files: list[Path], cfg: BuildConfig) -> tuple[list[tuple[str, float, float]], float]:
    """[(stage, wall_s, cpu_s)] timed stage by stage on one core, and the audio seconds processed."""
    import torch

    torch.set_num_threads(1)
    stages = ("decode", "resample", "segment", "spectrogram", "tiles", "audio sprites")
    t: dict[str, float] = dict.fromkeys(stages, 0.0)
    c: dict[str, float] = dict.fromkeys(stages, 0.0)
    audio_s = 0.0
    all_specs, all_audio = [], []
    for f in files:
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            y1, sr, _fmt, _note, _channels = audio.decode_mono(f)
        except Exception:
            continue
        t1, c1 = time.perf_counter(), time.process_time()
        y = audio.resample(y1, orig_sr=sr, target_sr=cfg.sample_rate)
        t2, c2 = time.perf_counter(), time.process_time()
        ct = clips.find_clips(y, sr=cfg.sample_rate, cfg=cfg)
        cut = clips.cut(y, sr=cfg.sample_rate, start_s=ct.start_s, clip_s=cfg.clip_s)
        t3, c3 = time.perf_counter(), time.process_time()
        specs = spectrogram.log_mel_uint8(
            cut, sr=cfg.sample_rate, n_fft=cfg.n_fft, hop_length=cfg.hop_length, n_mels=cfg.n_mels,
            fmin=cfg.fmin, fmax=cfg.fmax, top_db=cfg.top_db,
        )  # fmt: skip
        t4, c4 = time.perf_counter(), time.process_time()
        for name, (a, b), (ca, cb) in zip(
            stages[:4], ((t0, t1), (t1, t2), (t2, t3), (t3, t4)), ((c0, c1), (c1, c2), (c2, c3), (c3, c4)), strict=True
        ):
            t[name] += b - a
            c[name] += cb - ca
        audio_s += len(y1) / sr
        all_specs.append(specs)
        all_audio.extend(sprites.to_int16(c) for c in cut)
    specs = np.concatenate(all_specs)
    with tempfile.TemporaryDirectory() as tmp:
        t0, c0 = time.perf_counter(), time.process_time()
        cells = cfg.cells_per_sheet
        for k, a in enumerate(range(0, len(specs), cells)):
            tiles = sprites.render_tiles(
                specs[a : a + cells], tile_w=cfg.tile_w, tile_h=cfg.tile_h, colormap=cfg.colormap
            )
            sprites.write_sheet(Path(tmp) / f"s{k}.jpg", tiles, sheet_cols=cfg.sheet_cols, quality=cfg.tile_quality)
        t["tiles"], c["tiles"] = time.perf_counter() - t0, time.process_time() - c0
        t0, c0 = time.perf_counter(), time.process_time()
        gap = int(round(cfg.audio_gap_s * cfg.sample_rate))
        max_samples = int(round(cfg.audio_sprite_s * cfg.sample_rate))
        sprite, offset, totals = sprites.plan_audio_sprites(
            [len(a) for a in all_audio], max_samples=max_samples, gap=gap
        )
        for s in range(len(totals)):
            idx = np.flatnonzero(sprite == s)
            sprites.write_audio_sprite(
                Path(tmp) / f"a{s}.flac", [all_audio[i] for i in idx], [int(offset[i]) for i in idx],
                total=int(totals[s]), sr=cfg.sample_rate, fade_ms=cfg.audio_fade_ms,
            )  # fmt: skip
        t["audio sprites"], c["audio sprites"] = time.perf_counter() - t0, time.process_time() - c0
    return [(k, t[k], c[k]) for k in stages], audio_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("input", nargs="?", default=str(REPO.parent / "shared" / "data" / "dev"))
    ap.add_argument("--jobs", type=int, default=cpu_count())
    ap.add_argument("--mode", default="fixed", choices=("fixed", "events"))
    args = ap.parse_args()
    src = Path(args.input)
    if not src.is_dir():
        sys.exit(f"no input folder {src} (give one as INPUT)")
    cfg = BuildConfig(mode=args.mode)
    files = [s.abs_path for s in discover([src])]
    rows, audio_s = stage_rates(files, cfg)
    print(
        f"input: {src} ({len(files)} files, {audio_s / 60:.1f} min of audio), mode {args.mode}, {os.cpu_count()} cpus"
    )
    print(f"{'stage':<36} {'cores':>5} {'wall s':>8} {'x real time':>12} {'CPU s':>8} {'x per CPU s':>12}")
    for name, wall, cpu in rows:
        print(f"{name:<36} {1:>5} {wall:>8.2f} {audio_s / wall:>12.0f} {cpu:>8.2f} {audio_s / cpu:>12.0f}")
    wall, cpu = sum(r[1] for r in rows), sum(r[2] for r in rows)
    print(
        f"{'all stages, one after another':<36} {1:>5} {wall:>8.2f} {audio_s / wall:>12.0f} {cpu:>8.2f} {audio_s / cpu:>12.0f}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for jobs in sorted({1, args.jobs}):
            out = Path(tmp) / f"c{jobs}"
            t0, c0 = time.perf_counter(), time.process_time()
            r = build(src, out, config=cfg, jobs=jobs)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            cpu_col = f"{cpu:>8.2f} {r.audio_s / cpu:>12.0f}" if jobs == 1 else ""  # workers' CPU is not ours
            print(f"{'end to end, build() in process':<36} {jobs:>5} {wall:>8.2f} {r.audio_s / wall:>12.0f} {cpu_col}")
        out = Path(tmp) / "cli"
        cmd = [sys.executable, "-m", "preprocess", "build", str(src), "--out", str(out), "--no-features"]
        cmd += ["--jobs", str(args.jobs), "--mode", args.mode]
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=REPO, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        print(f"{'end to end, CLI in a fresh process':<36} {args.jobs:>5} {wall:>8.2f} {r.audio_s / wall:>12.0f}")
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=REPO, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        print(f"{'re-run (no-op), CLI':<36} {args.jobs:>5} {time.perf_counter() - t0:>8.2f} {'':>12}")
    print(f"load average during the run: {os.getloadavg()[0]:.1f} (other work on this machine slows every figure;")
    print("CPU seconds are less affected: on idle cores, wall time is about CPU seconds / cores plus start-up)")


if __name__ == "__main__":
    main()
