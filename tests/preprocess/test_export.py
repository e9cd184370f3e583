"""Exports (CSV, Raven, Audacity, JSON) and the CSV import, on a small synthetic collection with a soundscape,
then on the real soundscape when a built collection is at hand."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from preprocess.cli import main as cli_main
from preprocess.collection import Collection
from preprocess.errors import ParameterError
from preprocess.export import RAVEN_COLUMNS, export_labels, import_labels
from preprocess.labels import LabelStore
from preprocess.testing import CollectionWriter

SOUNDSCAPE = "soundscape/XC2 dawn soundscape.mp3"
RAVEN_HEADER = list(RAVEN_COLUMNS)


def write_tiny_collection(root: Path) -> Collection:
    """Three recordings: a 6-s song (2 clips), a 72-s soundscape (24 fixed 3-s clips + 1 detected event with
    its own band) and a 4-s file whose last clip is padded past its end (end_s 6 > duration 4)."""
    recordings = pd.DataFrame(
        {
            "recording_id": [0, 1, 2],
            "path": ["Parus major_Great Tit/XC1.wav", SOUNDSCAPE, "Townsend's Warbler/b.flac"],
            "file_name": ["XC1.wav", "XC2 dawn soundscape.mp3", "b.flac"],
            "duration_s": [6.0, 72.0, 4.0],
            "xc_id": ["XC1", "XC2", ""],
            "species": ["Parus major", "", "Setophaga townsendi"],
            "recordist": ["Ann", "Bo", "Cy"],
            "license": ["CC BY 4.0", "CC BY-NC-SA 4.0", "CC0"],
            "url": ["https://xeno-canto.org/1", "https://xeno-canto.org/2", ""],
        }
    )
    rows = (
        [(0, 0.0, 3.0), (0, 3.0, 6.0)]
        + [(1, 3.0 * k, 3.0 * k + 3.0) for k in range(24)]
        + [(2, 0.0, 3.0), (2, 3.0, 6.0)]
    )
    rows.append((1, 10.5, 11.25))  # a detected event
    clips = pd.DataFrame(rows, columns=["recording_id", "start_s", "end_s"])
    clips.insert(0, "clip_id", np.arange(len(clips)))
    clips["fmin_hz"] = np.float32(0.0)
    clips["fmax_hz"] = np.float32(16000.0)
    clips.loc[len(clips) - 1, ["fmin_hz", "fmax_hz"]] = [2000.0, 6500.0]
    for col, value in (("sheet", 0), ("cell", 0), ("audio_sprite", 0), ("audio_offset", 0), ("audio_length", 0)):
        clips[col] = value
    w = CollectionWriter(root)
    w.recordings(recordings)
    w.clips(clips)
    config = {"sample_rate": 32000, "clip_s": 3.0, "fmin": 0.0, "fmax": 16000.0}
    return w.manifest(config=config, counts={"clips": len(clips), "recordings": 3}, tool_version="test")


SOUNDSCAPE_EVENT = 28  # clip id of the detected event (clips 2..25: soundscape k=0..23 at 3k s; 26, 27: 4-s file)


@pytest.fixture
def coll(tmp_path):
    return write_tiny_collection(tmp_path / "tiny")


@pytest.fixture
def labelled(coll):
    with LabelStore.open(coll) as s:
        song = s.create_class("Song")["class_id"]
        call = s.create_class("Townsend's call")["class_id"]
        s.create_class("Empty")
        params = {"features": "birdnet", "dims": 8, "algorithm": "hdbscan", "params": {"min_cluster_size": 5}}
        s.add_members(song, [0, 1, 4, 5], source={"kind": "cluster", "cluster_id": 2, "params": params}, who="ana")
        s.add_members(call, [5, SOUNDSCAPE_EVENT, 27], source={"kind": "lasso"}, who="ben")
    return coll


def test_csv_opens_in_pandas_with_int_class_columns_and_no_index(labelled):
    out = export_labels(labelled, format="csv")
    assert out.filename == "tiny_labels.csv"
    table = pd.read_csv(io.BytesIO(out.data))
    assert list(table.columns) == ["clip_id", "file", "start_s", "end_s", "xc_id", "Song", "Townsend's call", "Empty"]
    assert len(table) == 29 and table["clip_id"].tolist() == list(range(29))
    for name in ("Song", "Townsend's call", "Empty"):
        assert table[name].dtype == np.int64 and set(table[name]) <= {0, 1}
    assert table.loc[table["Song"] == 1, "clip_id"].tolist() == [0, 1, 4, 5]
    assert table.loc[5, ["Song", "Townsend's call"]].tolist() == [1, 1]  # multi-label
    assert table.loc[4, "file"] == SOUNDSCAPE and table.loc[4, "start_s"] == 6.0 and table.loc[4, "xc_id"] == "XC2"
    only = pd.read_csv(io.BytesIO(export_labels(labelled, format="csv", labelled_only=True).data))
    assert only["clip_id"].tolist() == [0, 1, 4, 5, 27, SOUNDSCAPE_EVENT]


def test_raven_tables_one_per_recording_with_soundscape_times(labelled, coll):
    out = export_labels(labelled, format="raven")
    assert out.filename == "tiny_raven.zip"
    with zipfile.ZipFile(io.BytesIO(out.data)) as zf:
        names = sorted(zf.namelist())
        assert names == [
            "Parus major_Great Tit/XC1.Table.1.selections.txt",
            "Townsend's Warbler/b.Table.1.selections.txt",
            "soundscape/XC2 dawn soundscape.Table.1.selections.txt",
        ]
        table = pd.read_csv(io.BytesIO(zf.read(names[2])), sep="\t")
    assert list(table.columns) == RAVEN_HEADER
    assert table["Selection"].tolist() == list(range(1, len(table) + 1))
    clips = coll.clips().set_index("clip_id")
    for row in table.itertuples(index=False):
        clip = clips.loc[row[-1]]
        assert clip["recording_id"] == 1
        assert row[3] == pytest.approx(clip["start_s"], abs=1e-6)
        assert row[4] == pytest.approx(clip["end_s"], abs=1e-6)
    assert table["Begin Time (s)"].tolist() == [6.0, 9.0, 9.0, 10.5]
    by_clip = table.set_index("Clip ID")
    assert by_clip.loc[4, ["Begin Time (s)", "End Time (s)", "Annotation"]].tolist() == [6.0, 9.0, "Song"]
    event = by_clip.loc[SOUNDSCAPE_EVENT]
    assert event[["Begin Time (s)", "End Time (s)", "Low Freq (Hz)", "High Freq (Hz)"]].tolist() == [
        10.5,
        11.25,
        2000.0,
        6500.0,
    ]
    assert event["Annotation"] == "Townsend's call" and event["Begin File"] == "XC2 dawn soundscape.mp3"


def test_raven_single_recording_is_a_plain_table_and_end_is_clamped(coll):
    with LabelStore.open(coll) as s:
        a = s.create_class("A")["class_id"]
        s.add_members(a, [26, 27])  # the 4-s file: second clip padded to 6 s
    out = export_labels(coll, format="raven")
    assert out.filename == "b.Table.1.selections.txt"
    table = pd.read_csv(io.BytesIO(out.data), sep="\t")
    assert table[["Begin Time (s)", "End Time (s)"]].values.tolist() == [[0.0, 3.0], [3.0, 4.0]]


def test_audacity_labels_plain_and_extended_with_every_band(labelled):
    out = export_labels(labelled, format="audacity")
    with zipfile.ZipFile(io.BytesIO(out.data)) as zf:
        text = zf.read("soundscape/XC2 dawn soundscape.labels.txt").decode()
    assert text.splitlines() == [
        "6.000000\t9.000000\tSong",
        "9.000000\t12.000000\tSong",
        "9.000000\t12.000000\tTownsend's call",
        "10.500000\t11.250000\tTownsend's call",
    ]
    out = export_labels(labelled, format="audacity-bbox")
    assert out.filename == "tiny_audacity-bbox.zip"
    with zipfile.ZipFile(io.BytesIO(out.data)) as zf:
        text = zf.read("soundscape/XC2 dawn soundscape.labels.txt").decode()
    assert text.splitlines() == [
        "6.000000\t9.000000\tSong",
        "\\\t0.000000\t16000.000000",  # a fixed window: the collection's band
        "9.000000\t12.000000\tSong",
        "\\\t0.000000\t16000.000000",
        "9.000000\t12.000000\tTownsend's call",
        "\\\t0.000000\t16000.000000",
        "10.500000\t11.250000\tTownsend's call",
        "\\\t2000.000000\t6500.000000",  # the detected event's own band
    ]


def test_soundscape_times_match_clip_table_exactly(labelled, coll):
    """Every exported selection lies at its clip's own start/end in the recording (not at clip index * clip_s)."""
    clips = coll.clips()
    with zipfile.ZipFile(io.BytesIO(export_labels(labelled, format="audacity").data)) as zf:
        lines = zf.read("soundscape/XC2 dawn soundscape.labels.txt").decode().splitlines()
    label_lines = [line.split("\t") for line in lines if not line.startswith("\\")]
    got = sorted((float(a), float(b), c) for a, b, c in label_lines)
    members = {"Song": [4, 5], "Townsend's call": [5, SOUNDSCAPE_EVENT]}  # the soundscape's labelled clips
    want = sorted((clips.start_s[c], clips.end_s[c], name) for name, ids in members.items() for c in ids)
    assert got == want


def test_no_labels_means_a_clear_error_for_tables(coll):
    with pytest.raises(ParameterError, match="no clip belongs to a class"):
        export_labels(coll, format="raven")
    with pytest.raises(ParameterError, match="allowed: csv, raven, audacity, audacity-bbox, json"):
        export_labels(coll, format="xlsx")


def test_json_has_full_provenance(labelled):
    doc = json.loads(export_labels(labelled, format="json").data)
    assert doc["format"] == "sonomap-labels" and doc["collection"]["name"] == "tiny"
    assert doc["collection"]["config"]["sample_rate"] == 32000
    song = next(c for c in doc["classes"] if c["name"] == "Song")
    assert song["clip_ids"] == [0, 1, 4, 5]
    (src,) = song["sources"]
    assert src["kind"] == "cluster" and src["cluster_id"] == 2 and src["who"] == "ana" and src["n_clips"] == 4
    assert src["params"]["algorithm"] == "hdbscan" and src["params"]["params"] == {"min_cluster_size": 5}
    assert {r["license"] for r in doc["recordings"]} == {"CC BY 4.0", "CC BY-NC-SA 4.0", "CC0"}
    clip5 = next(c for c in doc["clips"] if c["clip_id"] == 5)
    assert sorted(clip5["classes"]) == ["Song", "Townsend's call"]
    with LabelStore.open(labelled) as s:
        s.remove_members(2, [27])  # recording 2 no longer has labelled clips
    only = json.loads(export_labels(labelled, format="json", labelled_only=True).data)
    assert {r["recording_id"] for r in only["recordings"]} == {0, 1}


def test_round_trip_csv_gives_the_same_classes(labelled, tmp_path):
    data = export_labels(labelled, format="csv").data
    fresh = write_tiny_collection(tmp_path / "fresh")
    report = import_labels(fresh, data, filename="x.csv", who="test")
    assert report["n_unmatched"] == 0 and report["format"] == "dummy-coded"
    with LabelStore.open(labelled) as a, LabelStore.open(fresh) as b:
        want = {c["name"]: a.members()[c["id"]].tolist() for c in a.classes()}
        got = {c["name"]: b.members()[c["id"]].tolist() for c in b.classes()}
        assert got == want  # including the empty class
        assert b.history()[0]["kind"] == "import"
        b.undo()  # one import = one undo step
        assert b.classes() == []


def test_round_trip_labelled_only_and_clip_label_pairs(labelled, tmp_path):
    fresh = write_tiny_collection(tmp_path / "fresh")
    import_labels(fresh, export_labels(labelled, format="csv", labelled_only=True).data)
    pairs = "clip_id,label\n0,Song\n5,Song\n5,Call\n7,\n"
    report = import_labels(fresh, pairs.encode())
    assert report["format"] == "clip_id,label" and report["classes_created"] == ["Call"]
    with LabelStore.open(fresh) as s:
        got = {c["name"]: s.members()[c["id"]].tolist() for c in s.classes()}
    assert got["Song"] == [0, 1, 4, 5] and got["Call"] == [5]


def test_import_reports_rows_that_match_no_clip(coll):
    text = "clip_id,file,start_s,end_s,xc_id,Song\n0,Parus major_Great Tit/XC1.wav,0.0,3.0,XC1,1\n999,x.wav,0,3,,1\n1,other.wav,3.0,6.0,,1\n2,,99.0,,,1\nabc,,,,,1\n"
    report = import_labels(coll, text.encode())
    assert report["added"] == 1 and report["n_rows"] == 5 and report["n_unmatched"] == 4
    reasons = {r["row"]: r["reason"] for r in report["unmatched_rows"]}
    assert "no clip 999" in reasons[3]
    assert "not 'other.wav'" in reasons[4]
    assert "starts at" in reasons[5]
    assert "not an integer" in reasons[6]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"id,name\n1,Song\n", "no 'clip_id' column"),
        (b"clip_id,file,start_s,end_s,xc_id\n0,a,0,3,\n", "no class columns"),
        (b"clip_id,Song\n0,2\n", "not 0 or 1"),
        (b"clip_id,Song\n0,1,1\n", "3 fields but the header has 2"),
        (b'clip_id,label\n0,Song\n1,bad;"name\n', "double quote|fields"),
        (b"clip_id,label\n0,=cmd\n", "formula"),
        (b"clip_id,Song,song\n0,1,1\n", "twice"),
        (b"PK\x03\x04\x00\x00binary", "binary"),
        (b"clip_id,Song\n0,\xff\xfe\n", "not UTF-8"),
    ],
)
def test_wrong_format_files_are_refused_and_nothing_written(coll, data, message):
    with LabelStore.open(coll) as s:
        s.create_class("Keep")
        before = s.version
    with pytest.raises(ParameterError, match=message):
        import_labels(coll, data)
    with LabelStore.open(coll) as s:
        assert s.version == before and [c["name"] for c in s.classes()] == ["Keep"]


def test_seed_style_csv_with_index_and_float_values_is_accepted(coll):
    """The old Streamlit export (stray index column, 0.0/1.0) loads."""
    text = ",clip_id,file,start_s,end_s,xc_id,class1\n0,0,Parus major_Great Tit/XC1.wav,0.0,3.0,XC1,1.0\n1,1,,,,,0.0\n"
    report = import_labels(coll, text.encode())
    assert report["added"] == 1 and report["classes_created"] == ["class1"]


def test_cli_export_and_import(labelled, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    assert cli_main(["export", str(labelled.root), "--format", "csv", "--out", str(out)]) == 0
    csv_path = out / "tiny_labels.csv"
    assert pd.read_csv(csv_path)["Song"].sum() == 4
    assert cli_main(["export", str(labelled.root), "--format", "raven", "--out", str(tmp_path / "r.zip")]) == 0
    assert zipfile.is_zipfile(tmp_path / "r.zip")
    fresh = write_tiny_collection(tmp_path / "fresh")
    assert cli_main(["import", str(fresh.root), str(csv_path), "--who", "me"]) == 0
    assert "29 of 29 rows matched" in capsys.readouterr().out
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    assert cli_main(["import", str(fresh.root), str(bad)]) == 2
    assert "no 'clip_id' column" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# real audio: the 72-s xeno-canto soundscape cut into many clips


def _real_collection(request):
    for name in ("demo_collection_path", "dev_collection_path"):
        try:
            return Collection.open(request.getfixturevalue(name))
        except pytest.FixtureLookupError:
            continue
    pytest.skip("no built real collection (tests/conftest.py demo_collection_path / dev_collection_path)")


@pytest.mark.slow
def test_real_soundscape_times_in_raven_and_audacity(request, tmp_path):
    """Raven/Audacity times of a real 72-s soundscape's clips point at the clips' own audio in the recording:
    the clip's audio (from its audio sprite) correlates ~1 with the recording at the exported times, ~0 half a
    second off."""
    import shutil

    import librosa
    import soundfile as sf

    real = _real_collection(request)
    copy = tmp_path / real.name
    shutil.copytree(real.root, copy, ignore=shutil.ignore_patterns("sprites", "work", "labels.sqlite*", "*.npy"))
    coll = Collection.open(copy)
    recs = coll.recordings()
    scape = recs[recs["path"].str.contains("soundscape", case=False)]
    if scape.empty:
        pytest.skip("the real collection has no soundscape recording")
    rec_id = int(scape["recording_id"].iloc[0])
    duration = float(scape["duration_s"].iloc[0])
    clips = coll.clips()
    mine = clips[clips["recording_id"] == rec_id]
    assert len(mine) > 10  # a 72-s recording gives many clips
    chosen = mine["clip_id"].to_numpy()[[0, len(mine) // 3, len(mine) - 1]]
    with LabelStore.open(coll) as s:
        s.add_members(s.create_class("Soundscape bits")["class_id"], chosen)
    out = export_labels(coll, format="raven")
    table = pd.read_csv(io.BytesIO(out.data), sep="\t")
    assert list(table.columns) == RAVEN_HEADER and sorted(table["Clip ID"]) == sorted(chosen)
    for row in table.itertuples(index=False):
        clip = clips.loc[clips["clip_id"] == row[-1]].iloc[0]
        assert row[3] == pytest.approx(clip["start_s"], abs=1e-5)
        assert row[4] == pytest.approx(min(clip["end_s"], duration), abs=1e-5)
        assert 0 <= row[3] < row[4] <= duration + 1e-6
    assert table["Begin Time (s)"].max() > 30  # late clips are placed late in the recording, not at 0
    aud = export_labels(coll, format="audacity").data.decode().splitlines()
    starts = sorted(float(line.split("\t")[0]) for line in aud if not line.startswith("\\"))
    assert starts == pytest.approx(sorted(table["Begin Time (s)"]), abs=1e-5)

    manifest = coll.manifest()
    source = next(
        (
            Path(d) / scape["path"].iloc[0]
            for d in manifest.get("inputs", [])
            if (Path(d) / scape["path"].iloc[0]).is_file()
        ),
        None,
    )
    if source is None:
        pytest.skip("the soundscape's source file is not at hand to compare audio")
    sr = int(manifest["config"]["audio_sample_rate"])
    y, _ = librosa.load(source, sr=sr, mono=True, res_type="soxr_hq")

    def corr(u, v):
        n = min(len(u), len(v))
        u, v = u[int(0.1 * n) : int(0.9 * n)], v[int(0.1 * n) : int(0.9 * n)]
        return float(np.dot(u, v) / (np.linalg.norm(u) * np.linalg.norm(v) + 1e-12))

    for row in table.itertuples(index=False):
        clip = clips.loc[clips["clip_id"] == row[-1]].iloc[0]
        sprite, _ = sf.read(coll.audio_sprite_path(int(clip["audio_sprite"])), dtype="float32")
        audio = sprite[int(clip["audio_offset"]) : int(clip["audio_offset"] + clip["audio_length"])]
        begin, end = round(row[3] * sr), round(row[4] * sr)
        shift = sr // 2 if begin - sr // 2 < 0 else -(sr // 2)
        assert corr(audio, y[begin:end]) > 0.95
        assert corr(audio, y[begin + shift : end + shift]) < 0.5


@pytest.mark.slow
def test_real_detected_events_carry_their_band(make_collection, demo_recordings_path, tmp_path):
    """Events mode on the real soundscape: Audacity gets a frequency line per event, Raven the event's band."""
    from preprocess.config import BuildConfig

    folder = demo_recordings_path / "soundscape"
    if not folder.is_dir():
        pytest.skip("demo soundscape not present")
    coll = Collection.open(make_collection(folder, name="events", config=BuildConfig(mode="events"), jobs=1))
    clips = coll.clips()
    assert len(clips) > 5
    chosen = clips["clip_id"].to_numpy()[:6]
    with LabelStore.open(coll) as s:
        s.add_members(s.create_class("Event")["class_id"], chosen)
    lines = export_labels(coll, format="audacity-bbox").data.decode().splitlines()
    assert len(lines) == 2 * len(chosen)
    for k, clip in enumerate(chosen):
        t0, t1, label = lines[2 * k].split("\t")
        backslash, f0, f1 = lines[2 * k + 1].split("\t")
        row = clips.loc[clip]
        assert (float(t0), float(t1), label, backslash) == (
            pytest.approx(row.start_s, abs=1e-6),
            pytest.approx(row.end_s, abs=1e-6),
            "Event",
            "\\",
        )
        assert (float(f0), float(f1)) == (pytest.approx(row.fmin_hz, abs=1e-3), pytest.approx(row.fmax_hz, abs=1e-3))
        assert float(f0) < float(f1)
    table = pd.read_csv(io.BytesIO(export_labels(coll, format="raven").data), sep="\t")
    assert np.allclose(table["Low Freq (Hz)"], clips.loc[chosen, "fmin_hz"], atol=1e-3)
    assert np.allclose(table["High Freq (Hz)"], clips.loc[chosen, "fmax_hz"], atol=1e-3)


# ---------------------------------------------------------------------------------------------
# every export opens in the tools people use, with their defaults


def _export_files(coll, fmt: str, folder: Path) -> list[Path]:
    """Write one export to ``folder`` (a zip unpacked) and return its files."""
    out = export_labels(coll, format=fmt)
    folder.mkdir(parents=True, exist_ok=True)
    if out.filename.endswith(".zip"):
        with zipfile.ZipFile(io.BytesIO(out.data)) as zf:
            zf.extractall(folder)
        return sorted(p for p in folder.rglob("*") if p.is_file())
    path = folder / out.filename
    path.write_bytes(out.data)
    return [path]


@pytest.fixture
def many_names(labelled):
    """Class names that trip naive readers: accents, digits only, spaces, an apostrophe."""
    with LabelStore.open(labelled) as s:
        s.add_members(s.create_class("Mésange bleue – chant")["class_id"], [2, 26])
        s.add_members(s.create_class("42")["class_id"], [3])
    return labelled


def test_every_export_reads_with_pandas_and_crowsetta_defaults(many_names, tmp_path):
    import crowsetta

    coll = many_names
    want = {
        "Song": {0, 1, 4, 5},
        "Townsend's call": {5, SOUNDSCAPE_EVENT, 27},
        "Mésange bleue – chant": {2, 26},
        "42": {3},
    }
    clips = coll.clips().set_index("clip_id")

    table = pd.read_csv(_export_files(coll, "csv", tmp_path / "csv")[0])
    assert {n: set(table.loc[table[n] == 1, "clip_id"]) for n in want} == want

    got: dict[str, set] = {}
    for path in _export_files(coll, "raven", tmp_path / "raven"):
        df = pd.read_csv(path, sep="\t")
        raven = crowsetta.Transcriber(format="raven").from_file(path)
        bboxes = raven.to_bbox()
        assert len(bboxes) == len(df)
        for box, row in zip(bboxes, df.itertuples(index=False), strict=True):
            got.setdefault(box.label, set()).add(row[-1])
            assert box.onset == pytest.approx(clips.loc[row[-1], "start_s"], abs=1e-6)
            assert box.low_freq < box.high_freq
    assert got == want  # the class name survives, readable, in the Annotation column

    for fmt in ("audacity", "audacity-bbox"):
        got = {}
        for path in _export_files(coll, fmt, tmp_path / fmt):
            if fmt == "audacity":
                df = pd.read_csv(path, sep="\t", header=None)
                assert df.shape[1] == 3 and df[0].dtype == np.float64
                seq = crowsetta.Transcriber(format="aud-seq").from_file(path).to_seq()
                labels, onsets = seq.labels.tolist(), seq.onsets_s.tolist()
            else:
                boxes = crowsetta.Transcriber(format="aud-bbox").from_file(path).to_bbox()
                assert all(b.low_freq < b.high_freq for b in boxes)
                labels, onsets = [b.label for b in boxes], [b.onset for b in boxes]
            for label, onset in zip(labels, onsets, strict=True):
                got.setdefault(label, []).append(onset)
        assert {k: len(v) for k, v in got.items()} == {k: len(v) for k, v in want.items()}
        assert sorted(got["Mésange bleue – chant"]) == [0.0, 0.0]  # clip 2 (soundscape) and 26 (4-s file)

    doc = json.loads(_export_files(coll, "json", tmp_path / "json")[0].read_text(encoding="utf-8"))
    classes = pd.json_normalize(doc["classes"])
    assert {r.name: set(r.clip_ids) for r in classes.itertuples()} == {**want, "Empty": set()}


def test_fast_csv_is_byte_identical_to_pandas(many_names):
    """The linear-time writer gives exactly what ``DataFrame.to_csv`` of the same table gives."""
    from preprocess.export import labels_csv, labels_table

    with LabelStore.open(many_names) as s:
        for only in (False, True):
            fast = labels_csv(many_names, store=s, labelled_only=only)
            slow = labels_table(many_names, store=s, labelled_only=only).to_csv(index=False, lineterminator="\n")
            assert fast == slow.encode()


# ---------------------------------------------------------------------------------------------
# Raven and Audacity back in


def _classes(coll) -> dict[str, list[int]]:
    with LabelStore.open(coll) as s:
        return {c["name"]: s.members()[c["id"]].tolist() for c in s.classes() if s.members()[c["id"]].size}


@pytest.mark.parametrize("fmt", ["raven", "audacity", "audacity-bbox"])
def test_round_trip_tables_give_the_same_classes_in_one_undo(labelled, tmp_path, fmt):
    data = export_labels(labelled, format=fmt).data
    fresh = write_tiny_collection(tmp_path / "fresh")
    report = import_labels(fresh, data, filename=f"tiny_{fmt}.zip", who="t")
    assert report["n_unmatched"] == 0 and report["n_rows"] == 7
    assert report["format"] == ("raven" if fmt == "raven" else "audacity")
    assert _classes(fresh) == _classes(labelled)
    with LabelStore.open(fresh) as s:
        assert s.history()[0]["kind"] == "import"
        s.undo()
        assert s.classes() == []


def test_raven_pro_table_matched_by_file_and_overlap(coll):
    """A Raven Pro table (no Clip ID; Begin File names the recording) with a short call inside a 3-s window,
    a long song over two windows, a selection of an unknown file and one past the recording's end."""
    table = (
        "Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tLow Freq (Hz)\tHigh Freq (Hz)\tBegin File\tAnnotation\n"
        "1\tSpectrogram 1\t1\t7.2\t7.9\t2000\t5000\tXC2 dawn soundscape.mp3\tWren\n"
        "2\tSpectrogram 1\t1\t3.0\t9.0\t2000\t5000\tXC2 dawn soundscape.mp3\tSong\n"
        "3\tSpectrogram 1\t1\t1.0\t2.0\t2000\t5000\tnot_here.wav\tWren\n"
        "4\tSpectrogram 1\t1\t500\t501\t2000\t5000\tXC1.wav\tWren\n"
        "5\tSpectrogram 1\t1\t1.0\t2.0\t2000\t5000\tXC1.wav\t\n"
    )
    report = import_labels(coll, table.encode(), filename="mine.selections.txt")
    assert report["format"] == "raven" and report["n_rows"] == 4 and report["n_unmatched"] == 2
    reasons = {r["row"]: r["reason"] for r in report["unmatched_rows"]}
    assert "no recording named 'not_here.wav'" in reasons[4] and "overlaps" in reasons[5]
    # soundscape clip k (id 2 + k) spans 3k..3k+3 s: 7.2-7.9 lies in k=2 (id 4); 3-9 s is k=1, k=2 (ids 3, 4)
    assert _classes(coll) == {"Wren": [4], "Song": [3, 4]}


def test_audacity_labels_named_after_the_recording(coll):
    labels = "0.5\t2.0\tTit song\n\\\t3000\t7000\n3.1\t5.9\tTit song\n"
    report = import_labels(coll, labels.encode(), filename="XC1.txt")
    assert report["format"] == "audacity" and report["n_unmatched"] == 0
    assert _classes(coll) == {"Tit song": [0, 1]}
    bad = import_labels(coll, labels.encode(), filename="unknown.txt")
    assert bad["n_unmatched"] == 2 and "no recording named 'unknown.txt'" in bad["unmatched_rows"][0]["reason"]
    forced = import_labels(coll, labels.encode(), filename="unknown.txt", recording="b.flac")
    assert forced["n_unmatched"] == 0 and _classes(coll)["Tit song"] == [0, 1, 26, 27]


@pytest.mark.parametrize(
    ("data", "fmt", "message"),
    [
        (b"Selection\tBegin Time (s)\tEnd Time (s)\n1\t0\t3\n", None, "no annotation column"),
        (b"Selection\tBegin Time (s)\tEnd Time (s)\tAnnotation\n1\tx\t3\tA\n", None, "not numbers"),
        (b"1.0\t2.0\tA\nnot a label\n", None, "line 2 is not an Audacity label"),
        (b"1.0\t2.0\t=A\n", None, "formula"),
        (b"hello world\n", None, "cannot tell the file's format"),
        (b"clip_id,label\n0,A\n", "raven", "no 'Begin Time \\(s\\)' column"),
        (b"clip_id,label\n0,A\n", "xlsx", "unknown import format"),
    ],
)
def test_wrong_tables_are_refused_and_nothing_written(coll, data, fmt, message):
    with LabelStore.open(coll) as s:
        before = s.version
    with pytest.raises(ParameterError, match=message):
        import_labels(coll, data, filename="XC1.txt", format=fmt)
    with LabelStore.open(coll) as s:
        assert s.version == before and s.classes() == []


def test_cli_import_tables_detects_or_takes_format(labelled, tmp_path, capsys):
    zipped = tmp_path / "t.zip"
    zipped.write_bytes(export_labels(labelled, format="raven").data)
    fresh = write_tiny_collection(tmp_path / "fresh")
    assert cli_main(["import", str(fresh.root), str(zipped)]) == 0
    assert "(raven): 7 of 7 rows matched" in capsys.readouterr().out
    labels = tmp_path / "XC1.txt"
    labels.write_text("0.0\t3.0\tNew\n9.0\t12.0\tNew\n")
    assert cli_main(["import", str(fresh.root), str(labels), "--format", "audacity"]) == 0
    out = capsys.readouterr().out
    assert "1 of 2 rows matched" in out and "no clip of recording 0 overlaps 9–12 s" in out
    assert _classes(fresh)["New"] == [0]


def test_raven_pro_view_rows_and_windows_encoding(coll):
    """Raven Pro writes one row per view (Waveform, Spectrogram) of each selection, and on Windows in cp1252."""
    table = (
        "Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tLow Freq (Hz)\tHigh Freq (Hz)\tBegin Path\tSpecies\n"
        "1\tWaveform 1\t1\t0.2\t2.9\t\t\tC:\\data\\XC1.wav\tMésange\n"
        "1\tSpectrogram 1\t1\t0.2\t2.9\t1000\t8000\tC:\\data\\XC1.wav\tMésange\n"
    )
    report = import_labels(coll, table.encode("cp1252"), filename="XC1.Table.1.selections.txt")
    assert report["n_rows"] == 1 and report["n_unmatched"] == 0
    assert _classes(coll) == {"Mésange": [0]}
