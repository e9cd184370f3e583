"""``python -m preprocess info COLLECTION``: what a collection holds and whom its recordings credit."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("info", help="summary of a collection and the credits of its recordings")
    p.set_defaults(func=run)
    p.add_argument("collection", metavar="COLLECTION", help="collection folder")
    p.add_argument("--no-credits", action="store_true", help="print the summary only")


def _fmt_counts(m: dict[str, Any]) -> list[str]:
    c = m.get("counts", {})
    cfg = m.get("config", {})
    lines = [
        f"  recordings  {c.get('recordings', 0)}",
        f"  clips       {c.get('clips', 0)} ({cfg.get('mode', '?')} mode, {cfg.get('clip_s', '?')} s each)",
        f"  audio       {c.get('audio_s', 0) / 3600:.2f} h",
        f"  skipped     {c.get('skipped', 0)} files",
        f"  sheets      {c.get('sheets', 0)}, audio sprites {c.get('audio_sprites', 0)}",
        f"  sample rate {cfg.get('sample_rate', '?')} Hz; log-mel {cfg.get('n_mels')} bands, "
        f"{cfg.get('fmin')}-{cfg.get('fmax')} Hz, n_fft {cfg.get('n_fft')}, hop {cfg.get('hop_length')}",
        f"  built       {m.get('created', '?')} (updated {m.get('updated', '?')}), sonomap {m.get('tool_version', '?')}",
    ]
    return lines


def credits(recs: Any) -> list[str]:
    """One line per recording with a recordist, licence or xeno-canto id, grouped by licence."""
    lines = []
    cols = set(recs.columns)
    for lic, group in recs.groupby(recs["license"].replace("", "licence not stated") if "license" in cols else 0):
        lines.append(f"  {lic}:")
        for r in group.itertuples():
            who = getattr(r, "recordist", "") or "unknown recordist"
            xc = getattr(r, "xc_id", "")
            url = getattr(r, "url", "")
            ref = f"{xc} {url}".strip() if xc else url
            label = getattr(r, "species", "") or getattr(r, "label", "")
            lines.append(f"    {r.path} - {label} - {who}" + (f" ({ref})" if ref else "") + _where_when(r))
    return lines


def _where_when(r: Any) -> str:
    """`` · 2020-03-16 · United States (47.6766, -122.294)`` from date, country, lat/lon (file tags or JSON)."""
    lat, lon = getattr(r, "lat", float("nan")), getattr(r, "lon", float("nan"))
    place = str(getattr(r, "country", "") or "")
    if lat == lat and lon == lon:
        place = f"{place} ({lat:g}, {lon:g})".strip()
    parts = [p for p in (str(getattr(r, "date", "") or ""), place) if p]
    return "".join(f" · {p}" for p in parts)


def run(args: argparse.Namespace) -> int:
    from ..collection import Collection

    coll = Collection.open(args.collection)
    m = coll.manifest()
    print(f"collection {coll.name} ({coll.root})")
    for line in _fmt_counts(m):
        print(line)
    feats = coll.feature_sets()
    reds = coll.reductions()
    print(f"  features    {', '.join(feats) or 'none'}; maps {', '.join(reds) or 'none'}")
    if coll.skipped_path.is_file():
        import pandas as pd

        sk = pd.read_csv(coll.skipped_path)
        for r in sk.itertuples():
            print(f"  skipped {r.path}: {r.reason}")
    if not args.no_credits:
        recs = coll.recordings()
        print("credits (recordings by licence):")
        for line in credits(recs):
            print(line)
    return 0
