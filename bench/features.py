"""Clips per second of each feature extractor, on the CPU here or on a GPU.

    .venv/bin/python bench/features.py [COLLECTION] [--device auto|cpu|cuda] [--extractors birdnet,acoustic,saec]
                                       [--repeat K] [--saec-batch-sizes 32,128,512] [--saec-steps N]

COLLECTION defaults to /tmp/sonomap/dev, else ../shared/data/dev is built (no features) into a temporary
folder. The collection is copied to a temporary folder (``--repeat K`` tiles its clips K times, the
same audio and spectrograms, to measure steady throughput on a fast device). Each extractor runs through
``run_extractor`` (model load and, for saec, training included: "end to end"); saec's training and
encoding are also timed separately at each batch size, with the GPU's mean utilisation (nvidia-smi)
when CUDA is used.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from preprocess.collection import Collection  # noqa: E402
from preprocess.features import resolve_device, run_extractor  # noqa: E402
from preprocess.testing import CollectionWriter  # noqa: E402


class GpuSampler:
    """Mean GPU utilisation (%) from nvidia-smi, sampled every 0.2 s while active."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                out = subprocess.run(
                    ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                    capture_output=True,
                    text=True,
                    timeout=2,
                ).stdout
                self.samples.append(float(out.split()[0]))
            except (OSError, ValueError, IndexError, subprocess.SubprocessError):
                pass
            self._stop.wait(0.2)

    def __enter__(self) -> GpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def mean(self) -> float:
        return float(np.mean(self.samples)) if self.samples else float("nan")


def prepare(source: Path, dest: Path, repeat: int) -> Collection:
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns("features", "reductions", "evaluation.json"))
    coll = Collection.open(dest)
    if repeat > 1:
        import pandas as pd

        S = np.asarray(coll.spectrograms())
        w = CollectionWriter(dest)
        w.spectrograms(np.concatenate([S] * repeat))
        clips = coll.clips()
        big = pd.concat([clips] * repeat, ignore_index=True)
        big["clip_id"] = np.arange(len(big))
        w.clips(big)
        m = coll.manifest()
        rest = {k: v for k, v in m.items() if k not in ("config", "counts")}
        coll = w.manifest(config=m["config"], counts={**m["counts"], "clips": len(big)}, **rest)
    return coll


def bench_saec(coll: Collection, device: str, batch_sizes: list[int], steps: int) -> list[dict]:
    from preprocess.features.saec import SaecExtractor

    S = np.asarray(coll.spectrograms())
    rows = []
    for bs in batch_sizes:
        ext = SaecExtractor(device=device, batch_size=bs, train_batch_size=bs, max_steps=steps)
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            with GpuSampler() if device == "cuda" else _Null() as gpu_train:
                ext.prepare(coll, out_dir=Path(tmp), fit=True, progress=lambda *a: None)
            train_s = time.perf_counter() - t0
        ext.encode(S[: min(len(S), 2 * bs)])  # warm-up
        _sync(device)
        t0 = time.perf_counter()
        with GpuSampler() if device == "cuda" else _Null() as gpu_enc:
            ext.encode(S)
            _sync(device)
        enc_s = time.perf_counter() - t0
        rows.append(
            {
                "batch": bs,
                "train_img_s": steps * bs / train_s,
                "train_gpu_pct": getattr(gpu_train, "mean", float("nan")),
                "encode_clips_s": len(S) / enc_s,
                "encode_gpu_pct": getattr(gpu_enc, "mean", float("nan")),
            }
        )
    return rows


class _Null:
    mean = float("nan")

    def __enter__(self) -> _Null:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def _sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def birdnet_side_by_side(coll: Collection) -> str:
    """Our extractor's transform vs the raw interpreter loop on the same windows, alternating, same threads.

    Both start after the model is loaded; "raw" gets its windows decoded and resampled beforehand (only
    ``set_tensor``/``invoke``/``get_tensor`` timed), "ours" is ``BirdNetExtractor.transform`` on every clip
    (decode, resample, windows, interpreter, top-k species, location lists). Returns the printed lines.
    """
    from ai_edge_litert.interpreter import Interpreter

    from preprocess.features.base import ClipAudioReader
    from preprocess.features.birdnet import EMBEDDING_TENSOR, BirdNetExtractor, embedding_model_path, windows_48k

    ours = BirdNetExtractor()
    ours.prepare(coll, out_dir=coll.root / "features" / "birdnet", fit=False, progress=lambda *a, **k: None)
    ours.load_interpreter()  # paid before timing, as the raw interpreter is
    ids = np.arange(coll.n_clips())
    reader = ClipAudioReader(coll)
    windows = np.concatenate([windows_48k(*reader.read(int(i))) for i in ids])
    reader.close()
    raw = Interpreter(model_path=str(embedding_model_path(coll.work_dir / "models")), num_threads=ours.n_threads)
    raw.allocate_tensors()
    inp = raw.get_input_details()[0]["index"]
    outs = {d["name"]: d["index"] for d in raw.get_output_details()}
    emb_out = outs.pop(EMBEDDING_TENSOR)
    logit_out = next(iter(outs.values()))

    def run_raw() -> None:
        for w in windows:
            raw.set_tensor(inp, w[None])
            raw.invoke()
            raw.get_tensor(emb_out).copy(), raw.get_tensor(logit_out).copy()

    times: dict[str, list[float]] = {"raw": [], "ours": []}
    for _ in range(2):  # alternating: the machine's load hits both alike
        t0 = time.perf_counter()
        run_raw()
        times["raw"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        ours.transform(coll, ids)
        times["ours"].append(time.perf_counter() - t0)
    raw_s, ours_s = min(times["raw"]), min(times["ours"])
    n = len(ids)
    return (
        f"\nBirdNET side by side ({n} clips, {len(windows)} windows, {ours.n_threads} threads, best of 2):\n"
        f"  raw interpreter loop  {n / raw_s:8.1f} clips/s\n"
        f"  BirdNetExtractor      {n / ours_s:8.1f} clips/s  = {raw_s / ours_s:.0%} of raw"
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("collection", nargs="?", default="/tmp/sonomap/dev")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--extractors", default="acoustic,birdnet,saec,idnn")
    p.add_argument("--repeat", type=int, default=1, help="tile the clips K times")
    p.add_argument("--saec-batch-sizes", default="", help="default: 32 on CPU, 64,128,256,512,1024 on CUDA")
    p.add_argument("--saec-steps", type=int, default=None, help="training steps per batch size (default 20 / 200)")
    args = p.parse_args()
    device = resolve_device(args.device)
    source = Path(args.collection)
    with tempfile.TemporaryDirectory() as tmp:
        if not Collection(source).exists():
            from preprocess.pipeline import build

            data = REPO.parent / "shared" / "data" / "dev"
            print(f"building {data} (no features) ...", flush=True)
            build([data], Path(tmp) / "src", labels_csv=data / "labels.csv")
            source = Path(tmp) / "src"
        coll = prepare(source, Path(tmp) / "bench", args.repeat)
        n = coll.n_clips()
        print(f"{n} clips ({args.repeat}x {source}), device {device}\n")
        print(f"{'extractor':<10} {'device':<6} {'dim':>5} {'clips':>7} {'time_s':>8} {'clips/s':>9}  note")
        for name in [e for e in args.extractors.split(",") if e]:
            t0 = time.perf_counter()
            try:
                out = run_extractor(coll, name, device=device if name in ("saec", "idnn") else "auto")
            except Exception as e:  # report and go on (e.g. idnn without torchvision)
                print(f"{name:<10} {'-':<6} {'-':>5} {n:>7} {'-':>8} {'-':>9}  {type(e).__name__}: {str(e)[:90]}")
                continue
            elapsed = time.perf_counter() - t0
            meta = json.loads((out / "meta.json").read_text())
            note = "end to end (model load included)"
            if name == "saec":
                info = meta["model"]
                note += f"; training {info['train_steps']} steps at {info['train_images_per_s']} img/s"
            print(f"{name:<10} {meta['device']:<6} {meta['dim']:>5} {n:>7} {elapsed:>8.1f} {n / elapsed:>9.1f}  {note}")
        if "birdnet" in args.extractors.split(","):
            print(birdnet_side_by_side(coll), flush=True)
        if "saec" in args.extractors:
            sizes = [int(b) for b in args.saec_batch_sizes.split(",") if b] or (
                [64, 128, 256, 512, 1024] if device == "cuda" else [32]
            )
            steps = args.saec_steps or (200 if device == "cuda" else 20)
            print(f"\nsaec on {device}: {steps} training steps per batch size; encoding all {n} clips")
            print(f"{'batch':>6} {'train img/s':>12} {'train GPU %':>12} {'encode clips/s':>15} {'encode GPU %':>13}")
            for r in bench_saec(coll, device, sizes, steps):
                print(
                    f"{r['batch']:>6} {r['train_img_s']:>12.1f} {r['train_gpu_pct']:>12.0f} "
                    f"{r['encode_clips_s']:>15.1f} {r['encode_gpu_pct']:>13.0f}"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
