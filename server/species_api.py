"""BirdNET beside the labels (thin routes over :mod:`preprocess.species`).

``GET /api/collections/<c>/birdnet/disagree?min_confidence=0.1`` →
``{ok, min_confidence, clip_ids: [...], n: len(clip_ids), n_labelled, birdnet: bool}``: the clips whose BirdNET top
species (location/season list applied) scores at least ``min_confidence`` and is not the species of the clip's
label (the recording's ``label``, else its ``species``; scientific or common name, any case). Labels BirdNET does
not know never disagree. ``birdnet`` is false (and ``clip_ids`` empty) where BirdNET has not run.

The comparison needs BirdNET's own species list (scientific ↔ common names), which the page does not have: the
label may be "Parus major" or "Great Tit" while BirdNET's top species is always the scientific name.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from preprocess.errors import ParameterError
from preprocess.species import MIN_CONFIDENCE, disagreeing_clips, read_species

from . import tables


def _min_confidence(raw: str | None) -> float:
    if raw is None or raw == "":
        return MIN_CONFIDENCE
    try:
        value = float(raw)
    except ValueError:
        raise ParameterError(f"min_confidence must be a number in [0, 1], got {raw!r}") from None
    if not 0 <= value <= 1:
        raise ParameterError(f"min_confidence must be in [0, 1], got {value:g}")
    return value


def disagreement(collection: Any, min_confidence: float) -> dict[str, Any]:
    """The route's answer for one collection (no Flask): see the module docstring."""
    species = read_species(collection)
    table = tables.clip_table(collection)
    labels = tables.metadata_label(table)
    n_labelled = int(sum(1 for v in labels if isinstance(v, str) and v.strip()))
    if species is None:
        ids: list[int] = []
    else:
        ids = disagreeing_clips(species, list(labels), min_confidence=min_confidence).tolist()
    return {
        "min_confidence": min_confidence,
        "clip_ids": ids,
        "n": len(ids),
        "n_labelled": n_labelled,
        "birdnet": species is not None,
    }


def register(app: Any, socketio: Any, *, collections: Any, settings: Any = None) -> Blueprint:
    """Add the routes to ``app``; ``collections.get(name)`` raises NotFoundError for an unknown collection."""
    bp = Blueprint("birdnet", __name__, url_prefix="/api/collections/<name>/birdnet")

    @bp.get("/disagree")
    def disagree(name: str):
        c = collections.get(name)
        min_conf = _min_confidence(request.args.get("min_confidence"))
        files = [c.clips_path, c.recordings_path, tables.species_path(c)]
        body = collections.cached(("birdnet-disagree", name, min_conf), files, lambda: disagreement(c, min_conf))
        return jsonify({"ok": True, **body})

    app.register_blueprint(bp)
    return bp
