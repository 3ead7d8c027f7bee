"""Every committed run record under results/ loads and re-serialises to the same canonical JSON:
the typed record (:mod:`fractal_embeddings.records`) reads and writes exactly what is on disk."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from fractal_embeddings.records import RunRecord, canonical_json, load_record

REPO = Path(__file__).resolve().parents[1]


def _committed_records() -> list[str]:
    try:
        out = subprocess.run(
            ["git", "ls-files", "results"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        return []
    return [p for p in out if p.endswith("record.json")]


RECORDS = _committed_records()


@pytest.mark.skipif(not RECORDS, reason="no committed records (not a git checkout)")
def test_every_committed_record_round_trips_byte_identical():
    assert len(RECORDS) > 100
    for rel in RECORDS:
        path = REPO / rel
        text = path.read_text(encoding="utf-8")
        assert canonical_json(json.loads(text)) == text, f"{rel} is not canonical JSON"
        assert canonical_json(load_record(path).to_dict()) == text, rel
        assert RunRecord.from_dict(json.loads(text)).to_dict() == json.loads(text), rel
