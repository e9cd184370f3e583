"""The core build on real audio: clip counts and times, playback from sprites, tiles, bad input,
idempotence, incremental add, process pool, interruption and resume."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from preprocess import audio, cli
from preprocess.clips import fixed_windows
from preprocess.collection import CLIP_COLUMNS, Collection
from preprocess.config import BuildConfig
from preprocess.errors import Cancelled, ParameterError
from preprocess.pipeline import build
from preprocess.sprites import read_cell, render_tiles, to_int16

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "demo" / "recordings"
SOUNDSCAPE = DEMO / "soundscape" / "XC563936 - Soundscape.mp3"
TIT_DIR = DEMO / "Parus major_Great Tit"
JUNCO_DIR = DEMO / "Junco hyemalis_Dark-eyed Junco"
#: These tests check fixed-window behaviour (counts, times, resumes); the build's default is events mode.
FIXED = BuildConfig(mode="fixed")


def _mini(dest: Path, n_junco: int = 3, n_tit: int = 2) -> Path:
    """A small real input folder: stereo MP3s, short mono WAVs (padded clips), in species folders."""
    for d, n in ((JUNCO_DIR, n_junco), (TIT_DIR, n_tit)):
        (dest / d.name).mkdir(parents=True, exist_ok=True)
        for f in sorted(d.iterdir())[:n]:
            shutil.copy2(f, dest / d.name / f.name)
    return dest


def _tables_equal(a: Path, b: Path) -> None:
    ca, cb = Collection.open(a), Collection.open(b)
    pd.testing.assert_frame_equal(ca.clips(), cb.clips())
    cols = [c for c in ca.recordings().columns if c != "note"]
    pd.testing.assert_frame_equal(ca.recordings()[cols], cb.recordings()[cols])
    np.testing.assert_array_equal(ca.spectrograms(), cb.spectrograms())


# --- the demo collection ---------------------------------------------------------------------


def test_demo_clip_counts_and_times(demo_collection_path):
    coll = Collection.open(demo_collection_path)
    m = coll.manifest()
    recs, clips = coll.recordings(), coll.clips()
    assert list(clips.columns[: len(CLIP_COLUMNS)]) == list(CLIP_COLUMNS)
    assert (clips["clip_id"].to_numpy() == np.arange(len(clips))).all()
    assert m["counts"]["recordings"] == len(recs) == 35 and m["counts"]["clips"] == len(clips)
    assert m["schema_version"] == 1 and m["config"]["sample_rate"] == 32000 and m["config"]["sheet_cols"] == 32
    for r in recs.itertuples():
        mine = clips[clips.recording_id == r.recording_id]
        expected = fixed_windows(r.duration_s, clip_s=3.0, hop_s=3.0)
        np.testing.assert_allclose(mine.start_s, expected, atol=1e-4)  # within a sample
        np.testing.assert_allclose(mine.end_s - mine.start_s, 3.0)
        assert r.n_clips == len(mine)
    soundscape = recs[recs.file_name == SOUNDSCAPE.name].iloc[0]
    assert soundscape.n_clips == 24 and soundscape.xc_id == "XC563936"
    assert set(recs.label) >= {"Junco hyemalis", "Parus major", "soundscape"}
    assert (recs[recs.xc_id != ""].recordist != "").all()  # credits kept
    assert coll.spectrograms().shape == (len(clips), 128, 301)
    assert len(pd.read_csv(coll.skipped_path)) == 0


def test_clips_play_back_exactly_from_audio_sprites(demo_collection_path):
    coll = Collection.open(demo_collection_path)
    recs, clips = coll.recordings(), coll.clips()
    sr = coll.manifest()["config"]["audio_sample_rate"]
    fade = int(round(0.005 * sr))
    short = recs[recs.duration_s < 3].recording_id.iloc[0]
    picks = [0, len(clips) - 1, int(clips[clips.recording_id == short].index[0])]
    picks += list(np.random.default_rng(0).choice(len(clips), 5, replace=False))
    for c in clips.iloc[picks].itertuples():
        r = recs.iloc[c.recording_id]
        y, _ = audio.load(DEMO / r.path, sr=sr)
        a = int(round(c.start_s * sr))
        source = to_int16(y[a : a + c.audio_length])
        data, rate = sf.read(coll.audio_sprite_path(c.audio_sprite), dtype="int16")
        got = data[c.audio_offset : c.audio_offset + c.audio_length]
        assert rate == sr and len(got) == len(source) == c.audio_length
        assert c.audio_length == min(3 * sr, len(y) - a)  # padding is not stored, real audio is
        np.testing.assert_array_equal(got[fade:-fade], source[fade:-fade])
        assert len(data) / sr <= coll.manifest()["config"]["audio_sprite_s"] + 1


def test_sprite_cells_are_the_clips_spectrograms(demo_collection_path):
    coll = Collection.open(demo_collection_path)
    cfg = coll.manifest()["config"]
    clips, specs = coll.clips(), coll.spectrograms()
    picks = np.random.default_rng(1).choice(len(clips), 8, replace=False)
    expected = render_tiles(np.asarray(specs[picks]), tile_w=cfg["tile_w"], tile_h=cfg["tile_h"])
    cells = []
    for c in clips.iloc[picks].itertuples():
        cells.append(
            read_cell(
                coll.sheet_path(c.sheet),
                c.cell,
                sheet_cols=cfg["sheet_cols"],
                tile_w=cfg["tile_w"],
                tile_h=cfg["tile_h"],
            )
        )
    err = np.array([[np.abs(cell.astype(float) - e).mean() for e in expected] for cell in cells])
    assert np.diag(err).max() < 6  # JPEG q85 of the right tile
    assert (err.argmin(axis=1) == np.arange(len(picks))).all()  # and no other clip's tile fits better


def test_rebuild_is_a_noop(demo_collection_path, copy_collection, capsys):
    coll = copy_collection(demo_collection_path)
    before = {p: p.stat().st_mtime_ns for p in coll.rglob("*") if p.is_file()}
    assert cli.main(["build", str(DEMO), "--out", str(coll), "--no-features"]) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert before == {p: p.stat().st_mtime_ns for p in coll.rglob("*") if p.is_file()}


def test_fixed_labels_csv_updates_labels_without_rebuilding(demo_collection_path, copy_collection, tmp_path, capsys):
    coll = copy_collection(demo_collection_path)
    fixed = tmp_path / "labels.csv"
    fixed.write_text((DEMO / "labels.csv").read_text().replace(",Junco hyemalis,", ",Junco (relabelled),"))
    clips_before = Collection(coll).clip_part_path(0).read_bytes()
    assert cli.main(["build", str(DEMO), "--labels", str(fixed), "--out", str(coll), "--no-features"]) == 0
    out = capsys.readouterr().out
    assert "nothing to do" in out and "updated the labels/metadata of 5 recordings" in out
    recs = Collection.open(coll).recordings()
    assert (recs.label == "Junco (relabelled)").sum() == 5
    assert Collection(coll).clip_part_path(0).read_bytes() == clips_before


def test_info_prints_summary_and_credits(demo_collection_path, capsys):
    assert cli.main(["info", str(demo_collection_path)]) == 0
    out = capsys.readouterr().out
    assert "recordings  35" in out and "clips" in out
    assert "Martin St-Michel" in out and "XC137480" in out and "CC BY-NC-SA" in out


# --- pool, incremental, resume -------------------------------------------------------------


@pytest.mark.slow
def test_pool_output_identical_to_one_process(tmp_path):
    src = _mini(tmp_path / "in", n_junco=4, n_tit=3)
    shutil.copy2(SOUNDSCAPE, src / SOUNDSCAPE.name)
    one = build(src, tmp_path / "one", config=FIXED, jobs=1)
    two = build(src, tmp_path / "two", config=FIXED, jobs=2)
    assert two.jobs == 2 and one.clips == two.clips > 30
    _tables_equal(tmp_path / "one", tmp_path / "two")
    for sub in ("audio", "sprites"):
        for f in sorted((tmp_path / "one" / sub).iterdir()):
            assert f.read_bytes() == (tmp_path / "two" / sub / f.name).read_bytes()


def test_incremental_add_keeps_clip_ids(tmp_path):
    src = _mini(tmp_path / "in", n_junco=2, n_tit=1)
    out = tmp_path / "coll"
    first = build(src, out, config=FIXED, jobs=1)
    coll = Collection.open(out)
    clips0, specs0 = coll.clips(), np.array(coll.spectrograms())
    sprite0 = coll.audio_sprite_path(0).read_bytes()
    # new files, one sorting before every old one, one in a new folder
    shutil.copy2(sorted(JUNCO_DIR.iterdir())[2], src / JUNCO_DIR.name / "AAA first.mp3")
    (src / "soundscape").mkdir()
    shutil.copy2(SOUNDSCAPE, src / "soundscape" / SOUNDSCAPE.name)
    second = build(src, out, config=FIXED, jobs=1)
    assert second.new_recordings == 2 and second.recordings == first.recordings + 2
    clips1, recs1 = coll.clips(), coll.recordings()
    assert len(clips1) == len(clips0) + second.new_clips
    pd.testing.assert_frame_equal(clips1.iloc[: len(clips0)], clips0)  # old clips untouched
    np.testing.assert_array_equal(coll.spectrograms()[: len(clips0)], specs0)
    assert coll.audio_sprite_path(0).read_bytes() == sprite0
    assert list(recs1.path.iloc[-2:]) == [f"{JUNCO_DIR.name}/AAA first.mp3", f"soundscape/{SOUNDSCAPE.name}"]
    assert (clips1.recording_id.iloc[len(clips0) :] >= first.recordings).all()
    assert (clips1.audio_sprite.iloc[len(clips0) :] >= coll.manifest()["counts"]["audio_sprites"] - 1).all()
    assert build(src, out, config=FIXED, jobs=1).noop


def test_cancelled_build_resumes_to_the_same_collection(tmp_path):
    src = _mini(tmp_path / "in", n_junco=3, n_tit=2)
    ref = build(src, tmp_path / "ref", config=FIXED, jobs=1)
    calls = {"n": 0}

    def cancel_after_two() -> bool:
        calls["n"] += 1
        return calls["n"] > 2

    out = tmp_path / "coll"
    with pytest.raises(Cancelled):
        build(src, out, config=FIXED, jobs=1, should_cancel=cancel_after_two)
    assert not (out / "manifest.json").exists()
    assert len(list((out / "work").glob("*.npz"))) == 2
    done = []
    resumed = build(src, out, config=FIXED, jobs=1, progress=lambda s, d, t, m="": done.append((s, d)))
    assert ("recordings", 2) in done  # two results came from work/, not decoded again
    assert resumed.recordings == ref.recordings and not (out / "work").exists()
    _tables_equal(tmp_path / "ref", out)


def test_incremental_build_interrupted_while_writing_resumes(tmp_path):
    """Cancelled after spectrograms.npy was replaced but before the manifest: the next build completes it."""
    src = _mini(tmp_path / "in", n_junco=2, n_tit=1)
    ref, out = tmp_path / "ref", tmp_path / "coll"
    build(src, ref, config=FIXED, jobs=1)
    build(src, out, config=FIXED, jobs=1)
    shutil.copy2(SOUNDSCAPE, src / SOUNDSCAPE.name)
    build(src, ref, config=FIXED, jobs=1)
    stage = {"now": ""}

    def progress(s, done, total, message=""):
        stage["now"] = s

    with pytest.raises(Cancelled):
        build(src, out, config=FIXED, jobs=1, progress=progress, should_cancel=lambda: stage["now"] == "audio sprites")
    coll = Collection.open(out)
    assert coll.spectrograms().shape[0] > coll.manifest()["counts"]["clips"]  # half-written, old manifest
    assert not build(src, out, config=FIXED, jobs=1).noop
    _tables_equal(ref, out)


@pytest.mark.slow
def test_kill_9_then_build_again_completes(tmp_path, demo_collection_path):
    out = tmp_path / "coll"
    cmd = [sys.executable, "-m", "preprocess", "build", str(DEMO), "--labels", str(DEMO / "labels.csv")]
    cmd += ["--out", str(out), "--no-features", "--jobs", "1", "--mode", "fixed"]  # as demo_collection_path
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and len(list((out / "work").glob("*.npz"))) < 5 and proc.poll() is None:
            time.sleep(0.01)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not (out / "manifest.json").exists()  # killed half-way: no manifest, so not a collection yet
    again = ["build", str(DEMO), "--labels", str(DEMO / "labels.csv"), "--out", str(out), "--no-features"]
    assert cli.main([*again, "--mode", "fixed"]) == 0
    _tables_equal(demo_collection_path, out)


# --- bad input, odd input ---------------------------------------------------------------


def test_bad_and_odd_files(tmp_path):
    src = tmp_path / "in with 'quotes' and spaces"
    src.mkdir()
    mp3s = sorted(JUNCO_DIR.iterdir())
    shutil.copy2(mp3s[0], src / "a good.mp3")
    shutil.copy2(mp3s[0], src / "b copy.mp3")  # same bytes, later in path order: a duplicate
    data = mp3s[1].read_bytes()
    (src / "truncated.mp3").write_bytes(data[: len(data) // 2])
    (src / "corrupt.mp3").write_bytes(data[:300])
    (src / "empty.wav").write_bytes(b"")
    (src / "notes.wav").write_text("this is not audio\n")
    (src / "dangling.flac").symlink_to(tmp_path / "nowhere.flac")
    tit = sorted(TIT_DIR.iterdir())[0]
    shutil.copy2(tit, src / "Bob's wav named.mp3")
    sf.write(src / "silence.wav", np.zeros(32000, np.int16), 32000)
    y, sr = sf.read(tit, dtype="float32")
    sf.write(src / "tit 8k.wav", audio.resample(y, orig_sr=sr, target_sr=8000), 8000, subtype="PCM_16")
    stereo, ssr = sf.read(JUNCO_DIR / "XC137480.mp3", dtype="float32", always_2d=True)
    assert stereo.shape[1] == 2
    sf.write(src / "stereo.flac", stereo, ssr)
    (src / "README.txt").write_text("not considered")

    result = build(src, tmp_path / "coll", config=FIXED, jobs=1)
    reasons = dict(result.skipped)
    assert set(reasons) == {"b copy.mp3", "corrupt.mp3", "empty.wav", "notes.wav", "dangling.flac", "silence.wav"}
    assert reasons["b copy.mp3"] == "duplicate of a good.mp3"
    assert "corrupt or truncated MP3" in reasons["corrupt.mp3"]
    assert "empty file" in reasons["empty.wav"]
    assert "not a recognised audio file" in reasons["notes.wav"]
    assert "cannot read" in reasons["dangling.flac"]
    assert "silent" in reasons["silence.wav"]
    skipped = pd.read_csv(tmp_path / "coll" / "skipped.csv")
    assert set(skipped.path) == set(reasons) and (skipped.reason.str.len() > 5).all()
    recs = Collection.open(tmp_path / "coll").recordings().set_index("file_name")
    assert recs.loc["Bob's wav named.mp3", "format"] == "wav"
    assert recs.loc["stereo.flac", "channels"] == 2 and recs.loc["stereo.flac", "format"] == "flac"
    assert recs.loc["tit 8k.wav", "orig_sample_rate"] == 8000
    assert recs.loc["truncated.mp3", "note"].startswith("truncated")
    assert any("truncated" in n for n in result.notes)
    assert result.recordings == 5


def test_bat_at_256khz(dev_data_path, make_collection):
    bat = dev_data_path / "Antrozous pallidus_Pallid Bat" / "ANPA-103486.wav"
    cfg = BuildConfig(mode="fixed", sample_rate=256000, fmin=10000, fmax=120000, n_fft=2048, hop_length=2048)
    coll = Collection.open(make_collection(bat, config=cfg, jobs=1))
    clips = coll.clips()
    assert len(clips) == 2 and coll.manifest()["config"]["audio_sample_rate"] == 256000
    assert coll.spectrograms().shape == (2, 128, 1 + 3 * 256000 // 2048)
    data, rate = sf.read(coll.audio_sprite_path(0), dtype="int16")
    assert rate == 256000
    c = next(clips.iloc[1:].itertuples())
    y, _ = audio.load(bat, sr=256000)
    a = int(round(c.start_s * 256000))
    np.testing.assert_array_equal(
        data[c.audio_offset + 2000 : c.audio_offset + c.audio_length - 2000],
        to_int16(y[a + 2000 : a + c.audio_length - 2000]),
    )


def test_events_mode_collection(make_collection, tmp_path):
    src = _mini(tmp_path / "in", n_junco=3, n_tit=2)
    coll = Collection.open(make_collection(src, config=BuildConfig(mode="events"), jobs=1))
    clips = coll.clips()
    assert len(clips) >= 5 and coll.manifest()["config"]["mode"] == "events"
    assert (clips.fmin_hz < clips.fmax_hz).all() and (clips.fmin_hz > 150).any()
    np.testing.assert_allclose(clips.end_s - clips.start_s, 3.0)


# --- options refused before any work ------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--hop-s", "-1"], "--hop-s is -1.0; allowed: > 0"),
        (["--fmax", "20000"], "above the Nyquist frequency"),
        (["--sample-rate", "4000"], "allowed: >= 8000"),
        (["--clip-s", "0"], "--clip-s is 0.0; allowed: > 0"),
        (["--jobs", "0"], "--jobs 0"),
    ],
)
def test_wrong_options_are_refused_before_any_work(tmp_path, capsys, args, message):
    out = tmp_path / "coll"
    assert cli.main(["build", str(JUNCO_DIR), "--out", str(out), *args]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_unknown_mode_and_output_inside_input(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main(["build", str(JUNCO_DIR), "--out", str(tmp_path / "c"), "--mode", "wavelets"])
    assert "invalid choice: 'wavelets'" in capsys.readouterr().err
    src = _mini(tmp_path / "in", n_junco=1, n_tit=0)
    assert cli.main(["build", str(src), "--out", str(src / "coll")]) == 2
    assert "inside the input folder" in capsys.readouterr().err
    assert not (src / "coll").exists()
    with pytest.raises(ParameterError, match="allowed: fixed, events"):
        BuildConfig(mode="wavelets")


def test_nothing_usable_exits_non_zero_and_changed_config_is_refused(tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.wav").write_text("text")
    assert cli.main(["build", str(bad), "--out", str(tmp_path / "c"), "--no-features"]) == 1
    assert "nothing usable" in capsys.readouterr().err
    src = _mini(tmp_path / "in", n_junco=1, n_tit=0)
    assert cli.main(["build", str(src), "--out", str(tmp_path / "d"), "--no-features", "--jobs", "1"]) == 0
    assert cli.main(["build", str(src), "--out", str(tmp_path / "d"), "--clip-s", "5"]) == 2
    assert "was built with clip_s 3.0" in capsys.readouterr().err


# --- the dev set ------------------------------------------------------------------------------


@pytest.mark.slow
def test_dev_collection(dev_collection_path):
    coll = Collection.open(dev_collection_path)
    recs, clips = coll.recordings(), coll.clips()
    assert len(recs) == 124 and recs.label.nunique() == 14
    expected = sum(len(fixed_windows(d, clip_s=3.0, hop_s=3.0)) for d in recs.duration_s)
    assert len(clips) == expected
    assert set(recs.format) == {"mp3", "flac", "wav"}
    assert set(recs.orig_sample_rate) >= {256000, 44100, 48000}
    assert recs.channels.max() == 2
    assert (recs.license != "").all()
