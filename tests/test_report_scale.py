"""The report's "Scale" section, drawn from the committed benchmark measurements (``results/scale``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from fractal_embeddings.report.scale import INDEX_FILE, SCALE_DIR, TRAIN_FILE, config_label, scale_section

RESULTS = Path(__file__).resolve().parents[1] / "results"


def test_scale_section_reports_every_measured_point(tmp_path):
    index = json.loads((RESULTS / SCALE_DIR / INDEX_FILE).read_text())
    train = json.loads((RESULTS / SCALE_DIR / TRAIN_FILE).read_text())
    sec = scale_section(RESULTS, tmp_path / "figures", tmp_path)
    assert sec is not None
    cost, latency, training = sec.tables
    assert len(cost.rows) == len(latency.rows) == len(index["points"])
    assert len(training.rows) == len(train["rows_curve"]) + len(train["classes_curve"])
    for row, p in zip(cost.rows, index["points"], strict=True):  # each number is the file's
        assert row[:2] == [f"{p['n']:,}", config_label(p)] and row[4] == f"{p['vector_bytes']:.0f}"
    biggest = max(p["n"] for p in index["points"])
    default = next(
        p
        for p in index["points"]
        if (p["n"], p["backend"], p["kind"], p["layout"], p["quantize"]) == (biggest, "faiss", "flat", "shared", "none")
    )
    assert sec.facts["default_bytes_per_item"] == default["vector_bytes"] <= 1300  # the target, measured
    assert sec.figures and sec.figures[0].is_file() and sec.figures[0].with_suffix(".pdf").is_file()


def test_scale_section_absent_without_measurements(tmp_path):
    assert scale_section(tmp_path, tmp_path / "figures", tmp_path) is None
    (tmp_path / SCALE_DIR).mkdir()
    shutil.copy(RESULTS / SCALE_DIR / TRAIN_FILE, tmp_path / SCALE_DIR / TRAIN_FILE)
    sec = scale_section(tmp_path, tmp_path / "figures", tmp_path)
    assert sec is not None and len(sec.tables) == 1 and not sec.figures  # training only: no index tables
