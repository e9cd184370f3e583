"""A small synthetic collection with BirdNET guesses whose confidence and agreement with the labels are known.

Ten recordings of 20 one-second clips (``tests/browser/synthetic.py``); even recordings are labelled with the
species' common name ("Great Tit"), odd ones with its scientific name, and recording 9 is a "soundscape" (a label
BirdNET does not know). ``features/birdnet/species.parquet`` agrees with every label at score 0.8 except for the
clips in :data:`CASES`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from preprocess.atomic import write_table_atomic
from tests.browser.synthetic import SPECIES, write_synthetic_collection

N_CLIPS = 200
OTHER = ("Corvus corax", "Common Raven")
#: clip id -> (top species, score): the guesses that are not "the label's species at 0.8".
CASES = {
    5: (OTHER, 0.9),  # confidently another species: disagrees at every usual minimum
    6: (OTHER, 0.9),
    25: (OTHER, 0.3),  # disagrees at 0.1, not at 0.5
    45: (OTHER, 0.05),  # below 0.1: "uncertain", never a disagreement at the default
    65: (None, 0.2),  # the label's species, but only 0.2: "uncertain" at 0.5
    185: (OTHER, 0.95),  # recording 9, labelled "soundscape": never disagrees
}


def disagreeing(min_confidence: float) -> list[int]:
    """The clip ids that disagree with their label at ``min_confidence`` (what the server must answer)."""
    return sorted(c for c, (sp, s) in CASES.items() if sp is not None and s >= min_confidence and c < 180)


def write_birdnet_collection(root: Path | str) -> Path:
    """Write the collection to ``root`` (a folder named like the collection); return ``root``."""
    root = Path(root)
    coll = write_synthetic_collection(root, n_clips=N_CLIPS, n_clusters=4, random_state=3)
    recs = coll.recordings()
    sci = recs["label"].tolist()
    common = dict(SPECIES)
    labels = [common[s] if r % 2 == 0 else s for r, s in enumerate(sci)]
    labels[9] = "soundscape"
    recs["label"] = labels
    recs["species"] = [None if r == 9 else s for r, s in enumerate(sci)]
    recs["common_name"] = [None if r == 9 else common[s] for r, s in enumerate(sci)]
    write_table_atomic(coll.recordings_path, recs)

    rec_of_clip = np.arange(N_CLIPS) // 20
    top = [sci[r] for r in rec_of_clip]
    top_common = [common[s] for s in top]
    score = np.full(N_CLIPS, 0.8, np.float32)
    for cid, (sp, s) in CASES.items():
        if sp is not None:
            top[cid], top_common[cid] = sp
        score[cid] = s
    rows: dict[str, object] = {"clip_id": np.arange(N_CLIPS, dtype=np.int64)}
    for prefix in ("", "local_"):
        rows[f"{prefix}species_1"] = top
        rows[f"{prefix}score_1"] = score
        rows[f"{prefix}common_1"] = top_common
    rows["local_list"] = np.zeros(N_CLIPS, bool)
    rows["local_week"] = np.full(N_CLIPS, -1, np.int8)
    folder = root / "features" / "birdnet"
    folder.mkdir(parents=True, exist_ok=True)
    write_table_atomic(folder / "species.parquet", pd.DataFrame(rows))
    return root
