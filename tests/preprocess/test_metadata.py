"""Metadata from file names, folders, labels CSV and xeno-canto API JSON."""

from __future__ import annotations

import json
import math

import pytest

from preprocess import metadata
from preprocess.errors import ParameterError


@pytest.mark.parametrize(
    ("name", "xc"),
    [
        ("XC123456.mp3", "XC123456"),
        ("XC123456 - Common Chiffchaff - Phylloscopus collybita.mp3", "XC123456"),
        ("xc42.wav", "XC42"),
        ("XC563936 - Soundscape.mp3", "XC563936"),
        ("ANPA-103486.wav", ""),
        ("2021-B32-0415_05-11.wav", ""),
        ("XC12x.mp3", "XC12"),
    ],
)
def test_xc_id_from_name(name, xc):
    assert metadata.xc_id_from_name(name) == xc


def test_full_xeno_canto_name():
    md = metadata.from_file_name("XC123456 - Common Chiffchaff - Phylloscopus collybita.mp3")
    assert md == {
        "xc_id": "XC123456",
        "url": "https://xeno-canto.org/123456",
        "species": "Phylloscopus collybita",
        "common_name": "Common Chiffchaff",
    }


def test_folder_names():
    assert metadata.from_folder("Setophaga townsendi_Townsend's Warbler") == {
        "label": "Setophaga townsendi",
        "species": "Setophaga townsendi",
        "common_name": "Townsend's Warbler",
    }
    assert metadata.from_folder("soundscape") == {}
    assert metadata.from_folder("Parus major major_Great Tit")["species"] == "Parus major major"


def test_dev_labels_csv_with_extra_columns(dev_data_path):
    labels = metadata.read_labels_csv(dev_data_path / "labels.csv")
    assert len(labels) == 124
    rec = labels["Hydrobates pelagicus_European Storm-Petrel/XC46092.wav"]
    assert rec["label"] == "Hydrobates pelagicus"
    assert rec["recordist"] == "Dougie Preston"
    assert rec["xc_id"] == "XC46092"
    assert "CC BY-NC-ND" in rec["license"]


def test_labels_csv_needs_path_and_label(tmp_path):
    p = tmp_path / "l.csv"
    p.write_text("file,species\na.wav,x\n")
    with pytest.raises(ParameterError, match="needs columns 'path' and 'label'"):
        metadata.read_labels_csv(p)
    with pytest.raises(ParameterError, match="not found"):
        metadata.read_labels_csv(tmp_path / "missing.csv")


V2 = {
    "numRecordings": "1",
    "recordings": [
        {
            "id": "123456",
            "gen": "Phylloscopus",
            "sp": "collybita",
            "ssp": "",
            "en": "Common Chiffchaff",
            "rec": "Jane Doe",
            "cnt": "Netherlands",
            "lat": "52.1",
            "lng": "4.3",
            "type": "song",
            "url": "//xeno-canto.org/123456",
            "file-name": "XC123456-chiffchaff.mp3",
            "lic": "//creativecommons.org/licenses/by-nc-sa/4.0/",
            "q": "A",
            "date": "2020-04-01",
        }
    ],
}
V3 = {"recordings": [{**V2["recordings"][0], "id": "777", "lon": "5.5", "grp": "birds"}]}
V3["recordings"][0].pop("lng")


def test_xc_json_v2_and_v3(tmp_path):
    p2, p3 = tmp_path / "v2.json", tmp_path / "v3.json"
    p2.write_text(json.dumps(V2))
    p3.write_text(json.dumps(V3))
    m2 = metadata.read_xc_json(p2)["XC123456"]
    assert m2["species"] == "Phylloscopus collybita" and m2["lon"] == 4.3 and m2["lat"] == 52.1
    assert m2["license"] == "https://creativecommons.org/licenses/by-nc-sa/4.0/"
    assert m2["url"] == "https://xeno-canto.org/123456" and m2["quality"] == "A" and m2["sound_type"] == "song"
    assert metadata.read_xc_json(p3)["XC777"]["lon"] == 5.5
    bad = tmp_path / "bad.json"
    bad.write_text('{"error": "x"}')
    with pytest.raises(ParameterError, match="recordings"):
        metadata.read_xc_json(bad)


def test_resolver_priority(tmp_path):
    j = tmp_path / "xc.json"
    j.write_text(json.dumps(V2))
    csv = tmp_path / "labels.csv"
    csv.write_text("path,label,recordist,notes\nsub/XC123456.mp3,chiffchaff song A,Someone Else,x\n")
    r = metadata.MetadataResolver(labels_csv=csv, xc_json=[j])
    md = r.resolve("sub/XC123456.mp3")
    assert md["label"] == "chiffchaff song A"  # CSV wins
    assert md["recordist"] == "Someone Else"
    assert md["species"] == "Phylloscopus collybita"  # from the API JSON
    assert md["country"] == "Netherlands" and md["lat"] == 52.1
    folder = r.resolve("Parus major_Great Tit/song.wav")
    assert folder["label"] == "Parus major" and folder["common_name"] == "Great Tit"
    assert math.isnan(folder["lat"]) and folder["xc_id"] == ""
    plain = r.resolve("soundscape/XC563936 - Soundscape.mp3")
    assert plain["label"] == "soundscape" and plain["xc_id"] == "XC563936"
    assert set(plain) == set(metadata.METADATA_COLUMNS)


# ---------------------------------------------------------------------------------------------
# tags of the files themselves (mutagen): real xeno-canto MP3, and real audio re-tagged as FLAC/OGG/MP3

from pathlib import Path  # noqa: E402

from preprocess import file_tags  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SOUNDSCAPE_MP3 = REPO / "demo" / "recordings" / "soundscape" / "XC563936 - Soundscape.mp3"
JUNCO_MP3 = REPO / "demo" / "recordings" / "Junco hyemalis_Dark-eyed Junco" / "XC137480.mp3"


def test_real_xeno_canto_mp3_tags():
    """The demo soundscape as downloaded from xeno-canto: ID3 artist, WOAF URL and the xeno-canto comment."""
    if not SOUNDSCAPE_MP3.is_file():
        pytest.skip("demo soundscape not present")
    md = file_tags.read_tags(SOUNDSCAPE_MP3)
    assert md == {
        "recordist": "Whitney Neufeld-Kaiser",
        "date": "2020-03-16",
        "lat": 47.6766,
        "lon": -122.294,
        "country": "United States",
        "xc_id": "XC563936",
        "url": "https://xeno-canto.org/563936",
    }
    assert "license" not in md  # its WCOP says "2020 Whitney Neufeld-Kaiser": a copyright line, not a licence
    assert "©" in file_tags.raw_tags(SOUNDSCAPE_MP3)["comm"][0]  # mojibake "Â©" repaired


def test_files_without_tags_give_nothing(tmp_path):
    """The demo's re-encoded MP3s carry only an encoder tag; a WAV none; a broken file is no error."""
    if not JUNCO_MP3.is_file():
        pytest.skip("demo recordings not present")
    assert file_tags.read_tags(JUNCO_MP3) == {}
    wav = next((REPO / "demo" / "recordings" / "Parus major_Great Tit").glob("*.wav"))
    assert file_tags.read_tags(wav) == {}
    broken = tmp_path / "broken.mp3"
    broken.write_bytes(b"ID3\x04\x00\x00\x00\x00\x00\x10garbage")
    assert file_tags.read_tags(broken) == {}


XC_COMMENT = (
    "XC205538 © Ann Örn // Point Reyes, Marin County, California (38.0701, -122.8065), United States // 10m // "
    "07:00h, 2014-05-02 // song"
)


def _real_audio(tmp_path, suffix: str) -> Path:
    """A few seconds of a real demo recording written as ``suffix`` (flac/ogg), untagged."""
    import soundfile as sf

    if not JUNCO_MP3.is_file():
        pytest.skip("demo recordings not present")
    y, sr = sf.read(JUNCO_MP3, frames=44100 * 3, dtype="float32")
    out = tmp_path / f"XC205538{suffix}"
    sf.write(out, y, sr, format={".flac": "FLAC", ".ogg": "OGG"}[suffix])
    return out


@pytest.mark.parametrize("suffix", [".flac", ".ogg"])
def test_vorbis_comments_of_flac_and_ogg(tmp_path, suffix):
    import mutagen

    path = _real_audio(tmp_path, suffix)
    f = mutagen.File(path)
    if f.tags is None:
        f.add_tags()
    f["artist"] = "Ann Örn"
    f["comment"] = XC_COMMENT
    f["copyright"] = "2014 Ann Örn; licence //creativecommons.org/licenses/by-nc-sa/4.0/"
    f["title"] = "XC205538 Dark-eyed Junco (Junco hyemalis)"
    f.save()
    md = file_tags.read_tags(path)
    assert md == {
        "recordist": "Ann Örn",
        "license": "https://creativecommons.org/licenses/by-nc-sa/4.0/",
        "date": "2014-05-02",
        "lat": 38.0701,
        "lon": -122.8065,
        "country": "United States",
        "xc_id": "XC205538",
        "url": "https://xeno-canto.org/205538",
    }


def test_id3_licence_url_and_title_id(tmp_path):
    """ID3 as xeno-canto writes it for most files: the licence URL in WCOP/TCOP, the id in the title."""
    import shutil

    from mutagen.id3 import COMM, ID3, TCOP, TDRC, TIT2, TPE1

    if not JUNCO_MP3.is_file():
        pytest.skip("demo recordings not present")
    path = tmp_path / "junco.mp3"
    shutil.copy(JUNCO_MP3, path)
    tags = ID3(path)
    tags.add(TPE1(encoding=3, text="Bo Berg"))
    tags.add(TIT2(encoding=3, text="XC137480 Dark-eyed Junco"))
    tags.add(TCOP(encoding=3, text="//creativecommons.org/licenses/by-sa/4.0/"))
    tags.add(TDRC(encoding=3, text="2013-04-01"))
    tags.add(COMM(encoding=3, lang="eng", desc="", text="a junco, no coordinates here"))
    tags.save(path)
    md = file_tags.read_tags(path)
    assert md == {
        "recordist": "Bo Berg",
        "license": "https://creativecommons.org/licenses/by-sa/4.0/",
        "date": "2013-04-01",
        "xc_id": "XC137480",
        "url": "https://xeno-canto.org/137480",
    }


def test_resolver_tags_below_xeno_canto_json(tmp_path):
    """Tags fill what the file name and folder lack; API JSON and the labels CSV still win."""
    if not SOUNDSCAPE_MP3.is_file():
        pytest.skip("demo soundscape not present")
    r = metadata.MetadataResolver()
    md = r.resolve("soundscape/XC563936 - Soundscape.mp3", SOUNDSCAPE_MP3)
    assert md["recordist"] == "Whitney Neufeld-Kaiser" and md["lat"] == 47.6766 and md["date"] == "2020-03-16"
    assert md["label"] == "soundscape"  # the folder, not the tags
    j = tmp_path / "xc.json"
    j.write_text(json.dumps({"recordings": [{"id": "563936", "rec": "W. N.-K.", "lic": "//creativecommons.org/x"}]}))
    md = metadata.MetadataResolver(xc_json=[j]).resolve("soundscape/XC563936 - Soundscape.mp3", SOUNDSCAPE_MP3)
    assert md["recordist"] == "W. N.-K." and md["license"] == "https://creativecommons.org/x"
    assert md["country"] == "United States"  # the JSON said nothing about it: the tag stays


@pytest.mark.slow
def test_build_and_info_show_tag_metadata(make_collection, demo_recordings_path, capsys):
    from preprocess.cli import main as cli_main
    from preprocess.collection import Collection

    folder = demo_recordings_path / "soundscape"
    if not folder.is_dir():
        pytest.skip("demo soundscape not present")
    root = make_collection(folder, name="tags")
    rec = Collection.open(root).recordings().iloc[0]
    assert rec["recordist"] == "Whitney Neufeld-Kaiser" and rec["country"] == "United States"
    assert (rec["lat"], rec["lon"], rec["date"]) == (47.6766, -122.294, "2020-03-16")
    assert cli_main(["info", str(root)]) == 0
    out = capsys.readouterr().out
    assert "Whitney Neufeld-Kaiser" in out and "2020-03-16" in out and "47.6766, -122.294" in out
