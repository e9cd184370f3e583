"""Time to add one recording to a collection of 1k, 100k and 1M clips: today's layout against a full rewrite.

The collections are synthetic (tables and spectrograms from preprocess/testing.py, 100 clips per
recording); the added recording is a real demo file, processed once (its work file is reused, so only
the assembling step is timed). "rewrite" is what builds did before clip parts: copy every old
spectrogram into a new file and read, concatenate and write the whole clip table. "append" is the
store now: spectrograms grow in place, the new clips become one more Parquet part.

Spectrogram rows here are 32 mels x 63 frames (2 kB) so that 1M clips fit on a shared disk; the
default 128 x 301 rows are 19x larger, which multiplies the rewrite's copy (not the append's).

    .venv/bin/python bench/append.py [--sizes 1000 100000 1000000]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from preprocess import assemble as asm  # noqa: E402
from preprocess.collection import Collection, write_table_atomic  # noqa: E402
from preprocess.config import BuildConfig  # noqa: E402
from preprocess.discover import Source  # noqa: E402
from preprocess.metadata import MetadataResolver  # noqa: E402
from preprocess.pool import TaskPool  # noqa: E402
from preprocess.testing import CollectionWriter, clip_table  # noqa: E402
from preprocess.worker import process_recording  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
NEW = REPO / "demo" / "recordings" / "Junco hyemalis_Dark-eyed Junco" / "XC137480.mp3"
CFG = BuildConfig(n_mels=32, n_fft=2048, hop_length=1536)
PER_REC = 100


def synthetic(root: Path, n: int, *, single_file: bool) -> Collection:
    """A collection of ``n`` clips (``n // 100`` recordings) written through the test builder."""
    w = CollectionWriter(root)
    n_rec = max(1, n // PER_REC)
    w.recordings([{"path": f"r/{i}.wav", "sha1": f"{i:040x}", "duration_s": 300.0} for i in range(n_rec)])
    rec = np.minimum(np.arange(n) // PER_REC, n_rec - 1)
    clips = clip_table(n, recording_id=rec, cells_per_sheet=CFG.cells_per_sheet, audio_length=96000)
    if single_file:  # the layout before clip parts
        write_table_atomic(root / "clips.parquet", clips)
    else:
        w.coll.append_clips(clips, n_keep=0)
    row = (CFG.n_mels, CFG.n_frames)
    rng = np.random.default_rng(0)
    block = rng.integers(0, 255, (min(n, 65536), *row), dtype=np.uint8)
    w.coll.append_spectrograms(
        (block[: min(len(block), n - a)] for a in range(0, n, len(block))), n_keep=0, row_shape=row
    )
    counts = {"recordings": n_rec, "clips": n, "sheets": -(-n // CFG.cells_per_sheet), "audio_sprites": n // 60}
    sources = [{"path": f"r/{i}.wav", "size": 1, "sha1": f"{i:040x}", "status": "ok"} for i in range(n_rec)]
    return w.manifest(config=CFG.to_dict(), counts=counts, sources=sources)


def _rewrite_spectrograms(coll: Collection, plan, cfg: BuildConfig, progress) -> tuple[int, ...]:
    """The writer before in-place appends: a new file, every old row copied, then the new rows."""
    from preprocess.collection import atomic_path, work_specs_path

    shape = (plan.n_clips, cfg.n_mels, cfg.n_frames)
    with atomic_path(coll.spectrograms_path) as tmp:
        mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        prev = coll.spectrograms()
        for a in range(0, plan.n_clip_old, 4096):
            mm[a : min(a + 4096, plan.n_clip_old)] = prev[a : min(a + 4096, plan.n_clip_old)]
        pos = plan.n_clip_old
        for _src, wf, _res in plan.usable:
            s = np.load(work_specs_path(wf))
            mm[pos : pos + len(s)] = s
            pos += len(s)
        mm.flush()
        del mm, prev
    return shape


def _rewrite_clips(self: Collection, frame, *, n_keep: int) -> None:
    """The clip table before parts: read whole, concatenated, written whole."""
    import pandas as pd

    old = self.clips().iloc[:n_keep]
    write_table_atomic(self.root / "clips.parquet", pd.concat([old, frame], ignore_index=True))


def _timed(fn, spent: dict, key: str):
    def run(*a, **kw):
        t = time.perf_counter()
        try:
            return fn(*a, **kw)
        finally:
            spent[key] = spent.get(key, 0.0) + time.perf_counter() - t

    return run


def add_one(coll: Collection, work: tuple[Source, Path, dict], *, rewrite: bool) -> tuple[float, dict]:
    """Seconds to assemble one new recording into ``coll`` (plan, spectrograms, sprites, tables, manifest),
    and the seconds of its steps."""
    src, wf, res = work
    saved = (asm.write_spectrograms, Collection.append_clips, asm.write_sprites)
    spec, clips = (_rewrite_spectrograms, _rewrite_clips) if rewrite else saved[:2]
    spent: dict[str, float] = {}
    asm.write_spectrograms = _timed(spec, spent, "spectrograms")
    Collection.append_clips = _timed(clips, spent, "clip table")
    asm.write_sprites = _timed(saved[2], spent, "sprites")
    try:
        with TaskPool(1) as pool:
            pool.run(abs, [(1,)], stage="warm", progress=lambda *a: None, should_cancel=None)  # start the worker
            t = time.perf_counter()
            old = asm.read_old(coll)
            if rewrite:
                _timed(coll.clips, spent, "clip table")()  # the old read_old read the whole clip table too
            plan = asm.plan_append(old, [(src, wf)], [res])
            asm.assemble(
                coll, plan, old=old, config=CFG, resolver=MetadataResolver(), inputs=[NEW.parent],
                pool=pool, progress=lambda *a: None, should_cancel=None,
            )  # fmt: skip
            return time.perf_counter() - t, spent
    finally:
        asm.write_spectrograms, Collection.append_clips, asm.write_sprites = saved


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000, 100_000, 1_000_000])
    ap.add_argument("--tmp", default=None, help="scratch folder (default: system temp)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_append_", dir=args.tmp))
    try:
        wf = tmp / "work" / "rec_new.npz"
        wf.parent.mkdir()
        res = process_recording(str(NEW), str(wf), CFG.to_dict())
        st = NEW.stat()
        work = (Source("new/" + NEW.name, NEW, NEW.name, st.st_size, st.st_mtime_ns), wf, res)
        print(f"adding one recording ({res['n_clips']} clips) to a collection of N clips, {PER_REC} per recording")
        cols = ["N clips", "rewrite total s", "append total s", "specs+table rewrite s", "specs+table append s",
                "sprites s", "spectrograms MB"]  # fmt: skip
        print(" | ".join(cols))
        print("-|-".join("-" * len(c) for c in cols))
        for n in args.sizes:
            times, spent = {}, {}
            for rewrite in (True, False):
                root = tmp / f"c{n}_{int(rewrite)}"
                coll = synthetic(root, n, single_file=rewrite)
                times[rewrite], spent[rewrite] = add_one(coll, work, rewrite=rewrite)
                got = Collection.open(root)
                assert len(got.clips()) == got.spectrograms().shape[0] == n + res["n_clips"]
                mb = got.spectrograms_path.stat().st_size / 1e6
                shutil.rmtree(root)
            st = {k: v["spectrograms"] + v["clip table"] for k, v in spent.items()}
            vals = [f"{n:,}", f"{times[True]:.3f}", f"{times[False]:.3f}", f"{st[True]:.3f}", f"{st[False]:.3f}",
                    f"{spent[False]['sprites']:.2f}", f"{mb:.0f}"]  # fmt: skip
            print(" | ".join(v.rjust(len(c)) for v, c in zip(vals, cols, strict=True)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
