"""Session fixtures shared by every test package: small real collections, built once per session.

- ``demo_collection_path``: ``demo/recordings`` (35 real recordings, labels.csv) built with the core
  build only (no features), in a session tmp folder. Treat it as read-only; use ``copy_collection``
  for a private, writable copy.
- ``dev_collection_path``: ``../shared/data/dev`` (124 recordings) built the same way; skips when that
  folder is absent.
- ``make_collection(inputs, name=None, **build_kwargs) -> Path``: build any small collection
  (``build_kwargs`` go to :func:`preprocess.pipeline.build`, e.g. ``config=BuildConfig(mode="events")``).
- ``dev_data_path``: the dev data folder (skips when absent); ``demo_recordings_path``.
- ``ingest_root``: a fresh collections folder holding ``birds`` (the demo juncos, acoustic features, a 2/8-d map),
  copied per test from one session build; ``stage_uploads(store, files) -> [upload_id]`` stages files for ingest.
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DEMO_RECORDINGS = REPO / "demo" / "recordings"
DEV_DATA = REPO.parent / "shared" / "data" / "dev"

os.environ.setdefault("NUMBA_CACHE_DIR", str(REPO / ".numba_cache"))


def build_collection(inputs, out: Path | str, **build_kwargs) -> Path:
    """Build a collection with the core build only (no features); returns its folder.

    Without a ``config`` the collection has FIXED 3-s windows (``mode="fixed"``, asked for explicitly: the build's
    default is ``events``), so that the tests of clip counts and times keep their windows."""
    from preprocess.config import BuildConfig
    from preprocess.pipeline import build

    build_kwargs.setdefault("config", BuildConfig(mode="fixed"))
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    labels = build_kwargs.pop("labels_csv", None)
    if labels is None and len(inputs) == 1 and (Path(inputs[0]) / "labels.csv").is_file():
        labels = Path(inputs[0]) / "labels.csv"
    result = build(inputs, out, labels_csv=labels, **build_kwargs)
    if result.recordings == 0:
        raise RuntimeError(f"test collection {out} has no usable recordings: {result.skipped}")
    return Path(out)


@pytest.fixture(scope="session")
def demo_recordings_path() -> Path:
    return DEMO_RECORDINGS


@pytest.fixture(scope="session")
def dev_data_path() -> Path:
    if not DEV_DATA.is_dir():
        pytest.skip(f"real dev data not present ({DEV_DATA})")
    return DEV_DATA


@pytest.fixture(scope="session")
def demo_collection_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo recordings built once per session (read-only for tests)."""
    return build_collection(DEMO_RECORDINGS, tmp_path_factory.mktemp("collections") / "demo")


@pytest.fixture(scope="session")
def dev_collection_path(tmp_path_factory: pytest.TempPathFactory, dev_data_path: Path) -> Path:
    """``../shared/data/dev`` built once per session (read-only for tests); skipped when absent."""
    return build_collection(dev_data_path, tmp_path_factory.mktemp("collections") / "dev")


@pytest.fixture(scope="session")
def make_collection(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Factory: ``make_collection(inputs, name=None, **build_kwargs) -> Path`` (a fresh folder each call)."""
    counter = itertools.count()

    def make(inputs, name: str | None = None, **build_kwargs) -> Path:
        out = tmp_path_factory.mktemp("made") / (name or f"collection{next(counter)}")
        return build_collection(inputs, out, **build_kwargs)

    return make


@pytest.fixture
def copy_collection(tmp_path: Path) -> Callable[[Path], Path]:
    """``copy_collection(path) -> Path``: a private, writable copy of a session collection."""

    def copy(path: Path) -> Path:
        dest = tmp_path / Path(path).name
        shutil.copytree(path, dest)
        return dest

    return copy


@pytest.fixture(scope="session")
def demo_refinable_path(tmp_path_factory: pytest.TempPathFactory, demo_collection_path: Path) -> Path:
    """A collections folder holding ``demo`` (the demo recordings) with BirdNET features and the default reduction,
    what refine needs; built once per session (read-only for tests; copy it to change it). Skips without BirdNET."""
    from preprocess.collection import Collection
    from preprocess.errors import MissingDependencyError
    from preprocess.features import run_extractor
    from preprocess.reduce import reduce_collection

    root = tmp_path_factory.mktemp("refinable")
    shutil.copytree(demo_collection_path, root / "demo")
    try:
        run_extractor(Collection.open(root / "demo"), "birdnet", device="cpu")
    except MissingDependencyError as e:
        pytest.skip(str(e))
    reduce_collection(Collection.open(root / "demo"), features=["birdnet"])
    return root


@pytest.fixture(scope="session")
def ingest_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A collections folder with ``birds``: the demo juncos built, acoustic features, a 2/8-d map (read-only)."""
    from preprocess.collection import Collection
    from preprocess.features import run_extractor
    from preprocess.pipeline import build
    from preprocess.reduce import reduce_collection

    junco = DEMO_RECORDINGS / "Junco hyemalis_Dark-eyed Junco"
    if not junco.is_dir():
        pytest.skip("demo recordings are missing")
    root = tmp_path_factory.mktemp("ingest_base") / "collections"
    src = tmp_path_factory.mktemp("ingest_src")
    shutil.copytree(junco, src / junco.name)
    build([src], root / "birds", jobs=1)
    run_extractor(Collection.open(root / "birds"), "acoustic")
    reduce_collection(Collection.open(root / "birds"), features=["acoustic"], dims=[2, 8])
    return root


@pytest.fixture
def ingest_root(ingest_base: Path, tmp_path: Path) -> Path:
    """A private, writable copy of :func:`ingest_base`."""
    out = tmp_path / "collections"
    shutil.copytree(ingest_base, out)
    return out


@pytest.fixture(scope="session")
def stage_uploads() -> Callable[..., list[str]]:
    """``stage_uploads(store, files) -> [upload_id]``: each file (a Path, or ``(name, bytes)``) as one whole upload."""

    def stage(store, files) -> list[str]:
        ids = []
        for f in files:
            name, data = (f.name, f.read_bytes()) if isinstance(f, Path) else f
            up = store.create(name, len(data))
            store.write_chunk(up.upload_id, 0, data, len(data))
            ids.append(up.upload_id)
        return ids

    return stage
