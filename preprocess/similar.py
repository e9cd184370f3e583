"""Query by example: the k clips most similar to one clip, several clips or an embedding (cosine similarity).

The index lives in the collection (``Collection.similar_dir(features)``)::

    similar/NAME/index.faiss    faiss index of the L2-normalised float32 rows of features/NAME (id = clip id)
    similar/NAME/meta.json      {type, n_vectors, dim, features_signature, features_created, nlist, nprobe}

Below :data:`EXACT_MAX_VECTORS` rows the index is exact (``IndexFlatIP``: inner product of unit vectors =
cosine); above it an inverted file (``IndexIVFFlat``, ``nlist`` ≈ 4·√n lists, ``nprobe`` of them scanned per
query) that returns >= 95 % of the exact top-10 at a fraction of the cost (``bench/similar.py``). Both grow
incrementally: clips appended to the collection are appended to the index (IVF lists keep their trained
centroids), so a growing collection is never re-indexed, except once, when it crosses the threshold and
switches from exact to IVF. A feature set that was recomputed (its ``signature`` or ``created`` stamp differs
from the meta) or shrank makes the index stale: it is rebuilt.

Several query clips (a selection, a class) are fused into ONE query: the mean of their L2-normalised
embeddings, renormalised (the class prototype). That costs one search however many clips the class has
(max-similarity fusion costs one search per clip: 500 searches for a 500-clip class) and it ranks clips
close to the class as a whole rather than to one stray member.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .collection import Collection, atomic_path, write_json_atomic
from .errors import CollectionError, MissingDependencyError, ParameterError
from .progress import CancelCheck, Progress, check_cancel, no_progress
from .schema import SIMILAR_INDEX_FILE as INDEX_FILE
from .schema import SIMILAR_META_FILE as META_FILE

DEFAULT_FEATURES = "birdnet"
#: Up to this many vectors the index is exact; measured in bench/similar.py (exact ~ 1 ms per 10k vectors
#: at 1024-d on this machine, so 200k stays near 20 ms per query).
EXACT_MAX_VECTORS = 200_000
#: Rows added per faiss call (bounded memory: 64k x 1024 float32 = 256 MiB).
ADD_CHUNK = 65_536


def _faiss() -> Any:
    try:
        import faiss
    except ImportError:  # pragma: no cover - installed with sonomap
        raise MissingDependencyError("similarity search needs faiss: pip install faiss-cpu") from None
    return faiss


def normalize(x: np.ndarray) -> np.ndarray:
    """float32 [n, D] rows scaled to unit L2 norm (zero rows stay zero)."""
    x = np.asarray(x, np.float32)
    x = x.reshape(1, -1) if x.ndim == 1 else x
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x / np.where(norms > 0, norms, 1.0), dtype=np.float32)


def ivf_params(n: int) -> tuple[int, int]:
    """(nlist, nprobe) for an IVF index over ``n`` vectors."""
    nlist = int(np.clip(4 * np.sqrt(n), 64, 1024))
    return nlist, max(16, nlist // 32)


def make_index(
    dim: int, n_expected: int, sample: np.ndarray | None = None, *, kind: str = "auto"
) -> tuple[Any, dict[str, Any]]:
    """An empty index for ``n_expected`` unit vectors of ``dim``: exact (``kind="flat"``, or ``"auto"`` below
    EXACT_MAX_VECTORS), else IVF (``"ivf-flat"``) trained on ``sample`` (float32 [m, dim], normalised,
    m >= 39 * nlist ideally)."""
    faiss = _faiss()
    if kind not in ("auto", "flat", "ivf-flat"):
        raise ParameterError(f"kind must be auto, flat or ivf-flat, got {kind!r}")
    if kind == "flat" or (kind == "auto" and n_expected <= EXACT_MAX_VECTORS):
        return faiss.IndexFlatIP(dim), {"type": "flat"}
    nlist, nprobe = ivf_params(n_expected)
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
    if sample is None or len(sample) < nlist:
        raise ParameterError(f"an IVF index of {nlist} lists needs at least {nlist} training vectors")
    index.train(np.ascontiguousarray(sample, np.float32))
    index.nprobe = nprobe
    return index, {"type": "ivf-flat", "nlist": nlist, "nprobe": nprobe}


@contextmanager
def _threads(n: int) -> Iterator[None]:
    """Run faiss with ``n`` OpenMP threads (0 = unchanged). A single query is 3-5x faster on one thread than
    on two when the cores are shared (threads spin waiting for each other; measured in bench/similar.py)."""
    faiss = _faiss()
    before = faiss.omp_get_max_threads()
    if n:
        faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


@dataclass
class SimilarIndex:
    """A loaded index of one feature set; ``search`` answers cosine top-k."""

    index: Any
    meta: dict[str, Any]
    path: Path | None = None

    @property
    def n_vectors(self) -> int:
        return int(self.index.ntotal)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """float32 [q, D] queries -> (similarity float32 [q, k], clip ids int64 [q, k]); best first, -1 pads."""
        q = normalize(queries)
        k = int(min(k, self.n_vectors))
        if k < 1:
            return np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64)
        with _threads(1 if len(q) < 8 else 0):
            sims, ids = self.index.search(q, k)
        return sims, ids.astype(np.int64)

    def add(self, vectors: np.ndarray, *, should_cancel: CancelCheck | None = None) -> None:
        """Append rows (their ids continue from ``n_vectors``)."""
        for a in range(0, len(vectors), ADD_CHUNK):
            check_cancel(should_cancel)
            self.index.add(normalize(vectors[a : a + ADD_CHUNK]))
        self.meta["n_vectors"] = self.n_vectors

    def save(self, directory: Path) -> None:
        faiss = _faiss()
        directory.mkdir(parents=True, exist_ok=True)
        with atomic_path(directory / INDEX_FILE) as tmp:
            faiss.write_index(self.index, str(tmp))
        write_json_atomic(directory / META_FILE, self.meta)  # meta last: it vouches for the index
        self.path = directory


def _stamp(collection: Collection, features: str) -> dict[str, Any]:
    meta = collection.features_meta(features)
    return {"features_signature": meta.get("signature"), "features_created": meta.get("created")}


def build_index(
    collection: Collection,
    features: str = DEFAULT_FEATURES,
    *,
    progress: Progress | None = None,
    should_cancel: CancelCheck | None = None,
) -> SimilarIndex:
    """Build the index of ``features`` from scratch and store it; returns it loaded."""
    progress = progress or no_progress
    x = collection.features(features)
    n, dim = x.shape
    sample = None
    if n > EXACT_MAX_VECTORS:
        nlist, _ = ivf_params(n)
        rng = np.random.default_rng(0)
        rows = np.sort(rng.choice(n, size=min(n, 40 * nlist), replace=False))
        sample = normalize(x[rows])
    index, meta = make_index(dim, n, sample)
    out = SimilarIndex(index, {**meta, "dim": int(dim), "n_vectors": 0, **_stamp(collection, features)})
    for a in range(0, n, ADD_CHUNK):
        out.add(x[a : a + ADD_CHUNK], should_cancel=should_cancel)
        progress("similar:index", min(a + ADD_CHUNK, n), n, "")
    out.save(collection.similar_dir(features))
    return out


def open_index(
    collection: Collection,
    features: str = DEFAULT_FEATURES,
    *,
    progress: Progress | None = None,
    should_cancel: CancelCheck | None = None,
) -> SimilarIndex:
    """The up-to-date index of ``features``: loaded, extended with clips added since, or rebuilt if stale."""
    faiss = _faiss()
    x = collection.features(features)
    directory = collection.similar_dir(features)
    meta_path, index_path = collection.similar_meta_path(features), collection.similar_index_path(features)
    try:
        meta = json.loads(meta_path.read_text())
        index = faiss.read_index(str(index_path))
    except (OSError, ValueError, RuntimeError):
        return build_index(collection, features, progress=progress, should_cancel=should_cancel)
    stale = (
        {k: meta.get(k) for k in ("features_signature", "features_created")} != _stamp(collection, features)
        or int(index.ntotal) != int(meta.get("n_vectors", -1))
        or int(index.d) != x.shape[1]
        or int(index.ntotal) > len(x)
        or (meta.get("type") == "flat" and len(x) > EXACT_MAX_VECTORS)
    )
    if stale:
        return build_index(collection, features, progress=progress, should_cancel=should_cancel)
    if meta.get("type") == "ivf-flat":
        index.nprobe = int(meta.get("nprobe", 16))
    out = SimilarIndex(index, meta, directory)
    if out.n_vectors < len(x):  # the collection grew: append only the new rows
        out.add(x[out.n_vectors :], should_cancel=should_cancel)
        out.save(directory)
    return out


def query_vector(collection: Collection, clip_ids: Any, features: str = DEFAULT_FEATURES) -> np.ndarray:
    """float32 [D] unit query for one or several clips: the renormalised mean of their unit embeddings."""
    x = collection.features(features)
    ids = np.atleast_1d(np.asarray(clip_ids))
    if ids.size == 0:
        raise ParameterError("give at least one clip to search from")
    if ids.dtype.kind not in "iu":
        raise ParameterError(f"clip ids must be integers, got {ids.dtype}")
    bad = ids[(ids < 0) | (ids >= len(x))]
    if bad.size:
        raise ParameterError(f"clip id {int(bad[0])} not in the collection (it has {len(x)} clips)")
    return normalize(normalize(x[np.sort(ids)]).mean(axis=0))[0]


def similar(
    collection: Collection,
    *,
    clip_ids: Any = None,
    vector: np.ndarray | None = None,
    k: int = 20,
    features: str = DEFAULT_FEATURES,
    index: SimilarIndex | None = None,
    exclude: Any = None,
) -> list[dict[str, Any]]:
    """The ``k`` clips most similar to ``clip_ids`` (one or several, fused) or to ``vector`` (float32 [D] or
    [m, D], fused the same way): ``[{"clip_id", "similarity"}]`` best first, cosine in [-1, 1]. The query clips
    and ``exclude`` are left out. Pass ``index`` (from :func:`open_index`) to reuse a loaded index."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ParameterError(f"k must be a positive integer, got {k!r}")
    if (clip_ids is None) == (vector is None):
        raise ParameterError("give either clip_ids or vector")
    skip = set()
    if clip_ids is not None:
        q = query_vector(collection, clip_ids, features)
        skip = {int(c) for c in np.atleast_1d(clip_ids)}
    else:
        v = np.asarray(vector, np.float32)
        dim = collection.features(features).shape[1]
        if v.shape[-1] != dim or v.ndim > 2 or not np.isfinite(v).all():
            raise ParameterError(f"vector must be finite float32 [{dim}] or [m, {dim}], got shape {v.shape}")
        q = normalize(normalize(v).mean(axis=0))[0]
    if exclude is not None:
        skip |= {int(c) for c in np.atleast_1d(exclude)}
    index = index or open_index(collection, features)
    sims, ids = index.search(q[None, :], int(k) + len(skip))
    out = [
        {"clip_id": int(c), "similarity": float(s)}
        for s, c in zip(sims[0], ids[0], strict=True)
        if c >= 0 and int(c) not in skip
    ]
    return out[: int(k)]


# ---------------------------------------------------------------------------------------------
# a dropped audio file


def embed_file(
    collection: Collection,
    path: Path | str,
    features: str = DEFAULT_FEATURES,
    *,
    should_cancel: CancelCheck | None = None,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Embed an audio file exactly as a build would, without adding it to the collection.

    Runs the collection's clip pipeline (decode, resample to the collection rate, fixed windows or events,
    the clip audio as stored in the audio sprites: int16) and the feature extractor on each clip.
    Returns (float32 [n_clips, D] embeddings, {"start_s", "end_s"} float64 [n_clips]).
    Only the BirdNET feature set is supported (the others depend on spectrograms stored in the collection
    or on a model trained on it).
    """
    from .audio import decode_mono, resample
    from .clips import find_clips
    from .config import BuildConfig
    from .features import get_extractor
    from .features.birdnet import windows_48k
    from .sprites import apply_fades, to_int16

    meta = collection.features_meta(features)
    if meta.get("extractor") != "birdnet":
        raise ParameterError(
            f"a dropped file can be embedded with BirdNET features only; {features!r} is {meta.get('extractor')!r}"
        )
    cfg = BuildConfig.from_dict(collection.manifest().get("config", {}))
    y, orig_sr, *_ = decode_mono(path)
    y = resample(y, orig_sr=orig_sr, target_sr=cfg.sample_rate)
    times = find_clips(y, sr=cfg.sample_rate, cfg=cfg)
    if len(times) == 0:
        raise CollectionError(f"no clips found in {Path(path).name} with this collection's clip settings")
    check_cancel(should_cancel)
    extractor = get_extractor("birdnet")
    extractor.check_available()
    extractor.prepare(collection, out_dir=collection.features_dir(features), fit=False, progress=no_progress)
    sr = cfg.audio_sample_rate
    starts = np.rint(times.start_s * cfg.sample_rate).astype(np.int64)
    lengths = np.minimum(cfg.clip_samples, len(y) - starts).clip(min=1)
    embeddings = np.zeros((len(times), int(meta.get("dim", 1024))), np.float32)
    for i, (s, n) in enumerate(zip(starts, lengths, strict=True)):
        check_cancel(should_cancel)
        # the clip as the audio sprite stores it (int16, faded ends) and the extractor reads it back
        faded = apply_fades(to_int16(y[s : s + n]).astype(np.float32) / 32767.0, sr=sr, fade_ms=cfg.audio_fade_ms)
        clip = to_int16(faded).astype(np.float32) / 32768.0
        emb, _logits = extractor._run(windows_48k(clip, sr))
        embeddings[i] = emb.mean(axis=0)
    return embeddings, {"start_s": np.asarray(times.start_s, np.float64), "end_s": np.asarray(times.end_s, np.float64)}
