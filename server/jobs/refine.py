"""The ``refine`` job kind: :func:`preprocess.refine.refine_collection` as a job, one ``refine:round`` per round.

``refine {collection, features?: "birdnet" | "saec" | any plain set, iterations?: 3}`` (saec: its encoder itself is
fine-tuned, see :mod:`preprocess.refine_saec`) → ack ``{ok, job_id}``; then ``job:progress`` (stages
``reduce`` (only when the original reduction is missing), ``refine``), one ``refine:round {job_id, collection, features,
round, n_clusters, noise, agreement, validity, nmi?, ari?, yield?, time_s, train_accuracy?, train_steps?}`` per round
(round 0 = the original), and ``job:result {kind: "refine", collection, features, name, key, rounds, validity_original,
validity_refined, worse, converged, kept_round, model, time_s}`` (``model``: how the set was made, e.g. ``kind:
"saec-encoder"``, base model, steps, device). A cancelled or failed job removes the unfinished ``NAME-refined`` set and its reduction
(the original is never touched), so the page never offers half a refinement. The job holds the collection's ingest
lock: uploads and remaps wait, and a refine during one is refused with what to wait for.
"""

from __future__ import annotations

from typing import Any

from preprocess.errors import NotFoundError, ParameterError

from .. import protocol
from .base import Job, JobKind, ProgressFn

ROUND_KEYS = (
    "round",
    "n_clusters",
    "noise",
    "agreement",
    "validity",
    "nmi",
    "ari",
    "yield",
    "time_s",
    "train_accuracy",
    "train_steps",
)


def _finite(v: Any) -> Any:
    """JSON-safe number: NaN / inf become None."""
    if isinstance(v, float) and v != v or v in (float("inf"), float("-inf")):
        return None
    return v


def round_payload(row: dict[str, Any]) -> dict[str, Any]:
    """The per-round figures the page shows (missing ones as None)."""
    return {k: _finite(row.get(k)) for k in ROUND_KEYS}


class RefineKind(JobKind):
    """Refine a feature set from its own clusters (see module docstring)."""

    name = "refine"
    id_prefix = "r"
    cancel_on_disconnect = True  # nobody would see the rounds; the unfinished set is removed
    stages = (("reduce", 1), ("refine", 12))

    def __init__(self, collections: Any, collections_root: Any, *, device: str = "auto") -> None:
        self.collections = collections
        self.collections_root = collections_root
        self.device = device

    def validate(self, sid: str, data: Any) -> dict[str, Any]:
        from preprocess.refine import MAX_ITERATIONS, SUFFIX, is_refined

        if not isinstance(data, dict):
            raise ParameterError("refine needs {collection, features?, iterations?}")
        name = data.get("collection")
        c = self.collections.get(name if isinstance(name, str) else "")
        have = c.feature_sets()
        plain = [f for f in have if not is_refined(c, f)]
        features = data.get("features") or ("birdnet" if "birdnet" in plain else (plain[0] if plain else None))
        if not isinstance(features, str) or features not in have:
            raise NotFoundError(
                f"no feature set {str(features)[:60]!r} in {c.name}; available: {', '.join(plain) or 'none'}"
            )
        if is_refined(c, features) or features.endswith(SUFFIX):
            raise ParameterError(f"{features!r} is already refined; refine its source ({', '.join(plain)}) again")
        iterations = data.get("iterations", 3)
        if isinstance(iterations, bool) or not isinstance(iterations, int) or not 1 <= iterations <= MAX_ITERATIONS:
            raise ParameterError(f"iterations must be a whole number in [1, {MAX_ITERATIONS}], got {iterations!r}")
        return {"collection": c.name, "features": features, "iterations": iterations}

    def run(self, job: Job, progress: ProgressFn) -> dict[str, Any]:
        from preprocess.ingest import collection_lock
        from preprocess.refine import discard_refined, refine_collection, refined_name

        req = job.request
        name, features = req["collection"], req["features"]

        def on_round(row: dict[str, Any]) -> None:
            job.meta["rounds"] = job.meta.get("rounds", 0) + 1
            job.emit(protocol.REFINE_ROUND, {"job_id": job.id, "collection": name, "features": features,
                                             **round_payload(row)})  # fmt: skip

        with collection_lock(self.collections_root, name):
            c = self.collections.get(name)
            try:
                meta = refine_collection(
                    c, features=features, iterations=req["iterations"], device=self.device, on_round=on_round,
                    progress=progress, should_cancel=job.should_cancel,
                )  # fmt: skip
            except BaseException:
                # here, in the worker, not in finished(): a cancel arrives while the core may still be writing
                if not refined_state(c, refined_name(features)).get("complete"):
                    discard_refined(c, features)
                raise
        refined = refined_name(features)
        result = {
            "collection": name,
            "features": features,
            "name": refined,
            "key": refined,
            "rounds": [round_payload(r) for r in meta.get("rounds", [])],
            "validity_original": _finite(meta.get("validity_original")),
            "validity_refined": _finite(meta.get("validity_refined")),
            "worse": bool(meta.get("worse")),
            "converged": bool(meta.get("converged")),
            "kept_round": meta.get("kept_round"),
            "model": _model_summary(meta),
            "time_s": meta.get("time_s"),
        }
        return result


def _model_summary(meta: dict[str, Any]) -> dict[str, Any]:
    """How a refined set was made, without paths: ``{kind, name, rounds?, steps?, device}``."""
    model = meta.get("model") if isinstance(meta.get("model"), dict) else {}
    out = {"kind": model.get("kind", "head"), "name": model.get("name"), "device": meta.get("device")}
    for key in ("rounds", "steps"):
        if key in model:
            out[key] = model[key]
    return out


def refined_state(c: Any, name: str) -> dict[str, Any]:
    """What the page needs of refined set ``name``: ``{name, source, key, complete, worse, converged,
    validity_original, validity_refined, rounds}``; ``complete`` only once refine wrote its verdict and the
    reduction (with its display map) exists. ``{}`` when there is no such set."""
    try:
        meta = c.features_meta(name)
    except Exception:  # noqa: BLE001 - missing / unreadable: not there
        return {}
    if meta.get("extractor") != "refine":
        return {}
    has_map = name in c.reductions() and c.map_path(name).is_file()
    return {
        "name": name,
        "source": meta.get("source"),
        "key": name,
        "complete": "worse" in meta and has_map,
        "worse": bool(meta.get("worse")),
        "converged": bool(meta.get("converged")),
        "validity_original": _finite(meta.get("validity_original")),
        "validity_refined": _finite(meta.get("validity_refined")),
        "rounds": [round_payload(r) for r in meta.get("rounds", [])],
        "kept_round": meta.get("kept_round"),
        "model": _model_summary(meta),
        "created": meta.get("created"),
    }
