"""A small SYNTHETIC collection written per the format contract, and app / socket clients around it.

``synthetic_root``: a collections folder (session, read-only) holding ``synth`` (600 clips in 4 well-separated
Gaussian groups in 8-d, with features/birdnet + species.parquet, reductions/birdnet dims 2/8, one sprite JPEG, one
FLAC audio sprite) and ``nofeat`` (clips but no features); beside it a ``secret.txt`` that must never be served.
``app_and_socketio``: a fresh app per test (warm-up off). ``make_socket_client()``: extra clients.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from preprocess.testing import CollectionWriter

N_CLIPS = 600
N_GROUPS = 4
SPECIES = ["Turdus merula", "Parus major", "Erithacus rubecula", "Fringilla coelebs"]


def _write_collection(root: Path, *, features: bool = True) -> None:
    rng = np.random.default_rng(0)
    group = np.arange(N_CLIPS) % N_GROUPS
    centers = rng.normal(scale=10.0, size=(N_GROUPS, 8))
    X8 = (centers[group] + rng.normal(scale=0.5, size=(N_CLIPS, 8))).astype(np.float32)
    n_rec = 12
    recordings = pd.DataFrame(
        {
            "recording_id": np.arange(n_rec),
            "path": [f"birds/it's rec {i}.flac" for i in range(n_rec)],
            "file_name": [f"it's rec {i}.flac" for i in range(n_rec)],
            "duration_s": 150.0,
            "label": [SPECIES[i % N_GROUPS] if i < 10 else "" for i in range(n_rec)],
            "species": [SPECIES[i % N_GROUPS] for i in range(n_rec)],
            "common_name": ["bird"] * n_rec,
            "xc_id": [str(1000 + i) if i != 11 else None for i in range(n_rec)],
            "recordist": ["A. Recordist"] * (n_rec - 1) + [np.nan],
            "license": ["CC BY 4.0"] * n_rec,
            "url": [f"https://xeno-canto.org/{1000 + i}" for i in range(n_rec)],
        }
    )
    # recording r holds clips whose group is r % 4, so labels agree with the groups
    rec_of_clip = np.array([(g + N_GROUPS * ((i // N_GROUPS) % 3)) for i, g in enumerate(group)])
    clips = pd.DataFrame(
        {
            "clip_id": np.arange(N_CLIPS, dtype=np.int64),
            "recording_id": rec_of_clip.astype(np.int64),
            "start_s": (np.arange(N_CLIPS) // 12) * 3.0,
            "end_s": (np.arange(N_CLIPS) // 12) * 3.0 + 3.0,
            "fmin_hz": np.float32(0.0),
            "fmax_hz": np.float32(11025.0),
            "sheet": np.zeros(N_CLIPS, dtype=np.int32),
            "cell": np.arange(N_CLIPS, dtype=np.int32),
            "audio_sprite": np.zeros(N_CLIPS, dtype=np.int32),
            "audio_offset": np.arange(N_CLIPS, dtype=np.int64) * 100,
            "audio_length": np.full(N_CLIPS, 100, dtype=np.int64),
        }
    )
    w = CollectionWriter(root)
    w.recordings(recordings)
    w.clips(clips)
    w.sheet(0, rng.integers(0, 255, size=(64, 640), dtype=np.uint8))
    w.audio_sprite(0, (rng.normal(size=60_000) * 0.1).astype(np.float32), sr=22050)
    if features:
        w.features("birdnet", np.repeat(X8, 4, axis=1))
        sp = pd.DataFrame({"clip_id": np.arange(N_CLIPS)})
        for k in range(1, 6):
            sp[f"species_{k}"] = [SPECIES[(g + k - 1) % N_GROUPS] for g in group]
            sp[f"score_{k}"] = np.float32(0.9 / k)
        w.species("birdnet", sp)
        w.reduction("birdnet", coords={8: X8, 2: X8[:, :2].copy()}, display=X8[:, :2].copy(), time_s=0.1)
    config = {"sample_rate": 22050, "clip_s": 3.0, "tile_w": 64, "tile_h": 64, "tile_format": "jpg"}
    config.update({"sheet_cols": 10, "sheet_rows": 1, "audio_sample_rate": 22050})
    w.manifest(config=config, counts={"recordings": n_rec, "clips": N_CLIPS, "sheets": 1, "audio_sprites": 1})


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("server")
    (base / "secret.txt").write_text("do not serve")
    root = base / "collections"
    _write_collection(root / "synth")
    _write_collection(root / "nofeat", features=False)
    return root


@pytest.fixture
def app_and_socketio(synthetic_root):
    from server.app import create_app
    from server.settings import Settings

    return create_app(Settings(collections_dir=synthetic_root, warmup=False))


@pytest.fixture
def client(app_and_socketio):
    return app_and_socketio[0].test_client()


@pytest.fixture
def make_socket_client(app_and_socketio):
    app, socketio = app_and_socketio
    made = []

    def make():
        c = socketio.test_client(app, flask_test_client=app.test_client())
        made.append(c)
        return c

    yield make
    for c in made:
        if c.is_connected():
            c.disconnect()


def wait_for(client, names=("job:result", "job:error", "job:cancelled"), *, job_id=None, timeout_s=60.0):
    """Collect received events until one named in ``names`` (for ``job_id``) arrives; return all collected."""
    got = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for ev in client.get_received():
            got.append(ev)
            if ev["name"] in names and (job_id is None or ev["args"][0].get("job_id") == job_id):
                return got
        time.sleep(0.01)
    raise AssertionError(f"no {names} within {timeout_s} s; got {[e['name'] for e in got]}")


@pytest.fixture
def wait_events():
    return wait_for
