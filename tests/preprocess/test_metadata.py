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
