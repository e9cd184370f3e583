"""Every Socket.IO event name and room name of the server, spelled once.

``static/src/socket.js`` (``EVENTS``) mirrors these strings; ``docs/ARCHITECTURE.md`` lists them. A test checks that
the two agree.
"""

from __future__ import annotations

# client -> server
JOIN = "join"
LEAVE = "leave"
CLUSTER = "cluster"
CANCEL = "cancel"  # {job_id}: cancels a job of any kind
PREPROCESS = "preprocess"
PREPROCESS_CANCEL = "preprocess:cancel"  # kept for the page; same as CANCEL
REMAP = "remap"
SIMILAR = "similar"  # query by example (server/jobs/learn.py)
TRAIN = "train"  # one classifier round
REFINE = "refine"  # {collection, features?, iterations?} (server/jobs/refine.py)

# server -> client
JOB_PROGRESS = "job:progress"
JOB_RESULT = "job:result"
JOB_ERROR = "job:error"
JOB_CANCELLED = "job:cancelled"
LABELS_CHANGED = "labels:changed"
PREPROCESS_FILE = "preprocess:file"
PREPROCESS_CLIPS = "preprocess:clips"
REFINE_ROUND = "refine:round"  # per-round figures of a refine job

#: The names ``static/src/socket.js`` ``EVENTS`` must map to (its keys -> these values).
CLIENT_EVENTS = {
    "join": JOIN,
    "cluster": CLUSTER,
    "cancel": CANCEL,
    "progress": JOB_PROGRESS,
    "result": JOB_RESULT,
    "error": JOB_ERROR,
    "cancelled": JOB_CANCELLED,
    "labelsChanged": LABELS_CHANGED,
    "preprocess": PREPROCESS,
    "preprocessCancel": PREPROCESS_CANCEL,
    "preprocessFile": PREPROCESS_FILE,
    "preprocessClips": PREPROCESS_CLIPS,
    "remap": REMAP,
    "similar": SIMILAR,
    "train": TRAIN,
    "refine": REFINE,
    "refineRound": REFINE_ROUND,
}


def collection_room(collection: str) -> str:
    """The room a collection's changes (labels, new clips) are broadcast to."""
    return f"collection:{collection}"
