"""The page's ``refused`` list in a ``preprocess`` request: validated, capped, paths cleaned."""

from __future__ import annotations

import pytest

from preprocess.errors import ParameterError
from server.jobs.ingest import _client_refusals


def test_client_refusals_are_checked_and_cleaned():
    assert _client_refusals(None) == []
    got = _client_refusals([{"name": "empty.wav", "reason": "empty (0 bytes)"},
                            {"name": "a.wav", "reason": "cannot read /srv/data/secret/a.wav"},
                            {"name": "", "reason": "no name"}, {"name": 3, "reason": "x"}])  # fmt: skip
    assert got[0] == ("empty.wav", "empty (0 bytes)")
    assert len(got) == 2 and "/srv" not in got[1][1] and "a.wav" in got[1][1]
    assert len(_client_refusals([{"name": "x" * 900, "reason": "r" * 900}] * 2000)) == 1000
    assert all(len(n) <= 300 and len(r) <= 300 for n, r in _client_refusals([{"name": "x" * 900, "reason": "r" * 900}]))
    for bad in ("empty.wav", [["empty.wav", "why"]], {"name": "a"}):
        with pytest.raises(ParameterError, match="refused must be a list"):
            _client_refusals(bad)
