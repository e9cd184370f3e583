"""Recording metadata from the audio file's own tags (ID3 in MP3, Vorbis comments in OGG/FLAC), read with mutagen.

xeno-canto's MP3s carry, e.g. (``demo/recordings/soundscape/XC563936 - Soundscape.mp3``)::

    TPE1 (artist)  Whitney Neufeld-Kaiser
    TIT2 (title)   Soundscape                (often "XC123456 Common Name (Genus species)")
    WOAF (URL)     //xeno-canto.org/563936
    WCOP / TCOP    2020 Whitney Neufeld-Kaiser   (or the licence URL //creativecommons.org/licenses/…)
    COMM           XC563936 © Whitney Neufeld-Kaiser // Wedgwood, Seattle, …, Washington (47.6766, -122.294),
                   United States // 100m // 07:22h, 2020-03-16 // adult, call, … // …

:func:`read_tags` maps these to the metadata columns ``recordist`` (artist, else the name after © in the
comment), ``license`` (a Creative Commons URL or "CC BY…" text in copyright/licence/comment fields), ``date``
(the date tag, else a ``YYYY-MM-DD`` in the comment), ``lat``/``lon`` (a ``(lat, lon)`` pair), ``country`` (the
words after that pair in a xeno-canto comment), ``xc_id`` (the xeno-canto URL, else ``XC123456`` in title or
comment) and ``url``. Files without tags (WAV, re-encoded files) give ``{}``; unreadable tags never fail a build.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

_XC_URL = re.compile(r"xeno-canto\.org/(\d{1,9})\b", re.IGNORECASE)
_XC_ID = re.compile(r"\bXC\s?(\d{1,9})\b", re.IGNORECASE)
_CC_URL = re.compile(r"(?:https?:)?//(?:www\.)?creativecommons\.org/[^\s,;]+", re.IGNORECASE)
_CC_TEXT = re.compile(r"\bCC[- ]?(?:0|BY(?:[- ](?:NC|ND|SA))*(?:[- ]\d\.\d)?)\b", re.IGNORECASE)
_LATLON = re.compile(r"\(\s*(-?\d{1,2}(?:\.\d+)?)\s*,\s*(-?\d{1,3}(?:\.\d+)?)\s*\)")
_DATE = re.compile(r"\b(\d{4}-\d{2}-\d{2})\b")
_TAG_DATE = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?")
_COPYRIGHT_NAME = re.compile(r"©\s*([^/]+?)\s*(?://|$)")


def read_tags(path: Path | str) -> dict[str, Any]:
    """Metadata found in the tags of the audio file at ``path`` (keys: a subset of ``recordist, license, date,
    lat, lon, country, xc_id, url``; lat/lon are floats in degrees); ``{}`` when it has none or cannot be read."""
    fields = raw_tags(path)
    return tags_to_metadata(fields) if fields else {}


def raw_tags(path: Path | str) -> dict[str, list[str]]:
    """The file's text tags as ``{lower-case key: [values]}`` (ID3 frame ids such as ``tpe1``/``comm``/``woaf``,
    Vorbis comment names such as ``artist``/``comment``), mojibake (UTF-8 read as Latin-1) repaired."""
    try:
        import mutagen

        audio = mutagen.File(str(path))
    except Exception:  # mutagen raises many kinds on damaged headers; tags are a bonus, never a failure
        return {}
    tags = getattr(audio, "tags", None)
    if not tags:
        return {}
    out: dict[str, list[str]] = {}
    try:
        items = list(tags.items())
    except Exception:
        return {}
    for key, value in items:
        name = str(key).split(":")[0].lower()  # "COMM::eng" -> "comm", "TXXX:foo" -> "txxx"
        if hasattr(value, "url"):  # ID3 URL frames (WOAF, WCOP, ...)
            texts = [str(value.url)]
        elif hasattr(value, "text"):  # ID3 text frames (may hold ID3TimeStamps)
            texts = [str(t) for t in value.text]
        elif isinstance(value, list | tuple):  # Vorbis comments, FLAC
            texts = [str(t) for t in value]
        else:
            texts = [str(value)]
        out.setdefault(name, []).extend(_fix_mojibake(t).strip() for t in texts if str(t).strip())
    return out


#: tag keys (ID3 frame ids and Vorbis comment names, lower case) per meaning
_ARTIST = ("tpe1", "artist", "performer", "tpe2", "albumartist")
_TITLE = ("tit2", "title")
_COMMENT = ("comm", "comment", "description", "txxx")
_COPYRIGHT = ("wcop", "tcop", "copyright", "license", "licence", "wxxx")
_URL = ("woaf", "woas", "wxxx", "url", "website", "contact")
_DATE_TAGS = ("tdrc", "tdor", "tyer", "date", "year")
_LOCATION = ("location", "tloc")


def tags_to_metadata(fields: dict[str, list[str]]) -> dict[str, Any]:
    """Map raw tags (see :func:`raw_tags`) to metadata columns; keys with nothing found are left out."""

    def get(keys: tuple[str, ...]) -> list[str]:
        return [v for k in keys for v in fields.get(k, [])]

    comments, titles, urls = get(_COMMENT), get(_TITLE), get(_URL)
    copyright_ = get(_COPYRIGHT)
    md: dict[str, Any] = {}
    artist = next(iter(get(_ARTIST)), "")
    if not artist:
        artist = next((m.group(1) for c in comments if (m := _COPYRIGHT_NAME.search(c))), "")
    if artist:
        md["recordist"] = artist
    lic = next((m.group(0) for t in copyright_ + comments if (m := _CC_URL.search(t))), "")
    if lic:
        md["license"] = ("https:" + lic if lic.startswith("//") else lic).rstrip(".)")
    else:
        text = next((m.group(0) for t in copyright_ if (m := _CC_TEXT.search(t))), "")
        if text:
            md["license"] = text
    date = next((m.group(0) for t in get(_DATE_TAGS) if (m := _TAG_DATE.match(t))), "")
    if not date:
        date = next((m.group(1) for c in comments if (m := _DATE.search(c))), "")
    if date:
        md["date"] = date
    for text in get(_LOCATION) + comments:
        m = _LATLON.search(text)
        if m and abs(float(m.group(1))) <= 90 and abs(float(m.group(2))) <= 180:
            md["lat"], md["lon"] = float(m.group(1)), float(m.group(2))
            after = text[m.end() :].split("//")[0].strip(" ,")
            if after and len(after) <= 60 and not any(ch.isdigit() for ch in after):
                md["country"] = after
            break
    xc = next((m.group(1) for u in urls if (m := _XC_URL.search(u))), "")
    if not xc:
        xc = next((m.group(1) for t in titles + comments if (m := _XC_ID.search(t))), "")
    if xc:
        md["xc_id"] = f"XC{int(xc)}"
        md["url"] = f"https://xeno-canto.org/{int(xc)}"
    return md


def _fix_mojibake(text: str) -> str:
    """``"Â©"`` → ``"©"``: text that is UTF-8 bytes decoded as Latin-1 (common in ID3 v2.3 frames)."""
    if not any(ch in text for ch in "ÂÃ"):
        return text
    try:
        return text.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return text
