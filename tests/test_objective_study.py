"""The objective study: resumable grid points, the selection rule, and the report built from records."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from fractal_embeddings.experiments import objective_study as study
from fractal_embeddings.report import objective_study as report

TINY = {"train": 600, "val": 200, "test": 300}


def test_grid_covers_every_dataset_seed_first_and_pairs_every_variant_with_a_control():
    g = study.grid()
    assert len({(d, v.name, s) for d, v, s in g}) == len(g)
    assert [d for d, _, _ in g[:60]].count("clinc150") < 60  # seed-major: other datasets early too
    assert g[-1][0] == "newsgroups20"
    names = {v.name for v in study.VARIANTS}
    for v in study.VARIANTS:
        if v.control_of:
            assert v.control_of in names and v.method in ("mrl", "fractal-mrl")
            twin = study.variant(v.control_of)
            assert twin.objective_options == v.objective_options and twin.train_options == v.train_options


def _cells(S, fine, cost, datasets=study.DATASETS):
    cells = {}
    for name, s, f, c in zip(S, S.values(), fine.values(), cost.values(), strict=True):
        for d in datasets:
            cells[(d, name)] = {"S": np.array([s, s]), "fine_full": np.array([f, f]), "train_s": np.array([c, c])}
            cells[(d, f"{name} [mrl]")] = {
                "S": np.array([0.0, 0.0]),
                "fine_full": np.array([0.90, 0.90]),
                "train_s": np.array([c, c]),
            }
    return cells


def test_selection_rule_tax_then_mean_S_then_cost():
    names = ["supcon + stop-grad", "supcon + stop-grad + block-norm", "supcon(ends) + stop-grad + block-norm"]
    # the highest S pays a 2 pp accuracy tax -> excluded; the other two tie on S -> the cheaper one wins
    cells = _cells(
        dict(zip(names, [0.40, 0.30, 0.298], strict=True)),
        dict(zip(names, [0.88, 0.905, 0.899], strict=True)),
        dict(zip(names, [10.0, 9.0, 5.0], strict=True)),
    )
    winner, rows = report.select(cells, study.DATASETS)
    assert winner == "supcon(ends) + stop-grad + block-norm"
    assert not next(r for r in rows if r["variant"] == names[0])["eligible"]
    # a variant missing a dataset is not eligible
    del cells[("trec", names[2])]
    assert report.select(cells, study.DATASETS)[0] == names[1]


def test_study_points_run_through_the_sweep_and_the_report_is_built_from_records(
    data_home, tmp_path, monkeypatch, cache_dir
):
    from fractal_embeddings.experiments.sweep import run_sweep

    monkeypatch.setenv("FRACTAL_CACHE", str(cache_dir))
    names = ["v5-paper", "v5-paper [mrl]", "supcon + stop-grad", "supcon + stop-grad [mrl]"]
    specs = [s for s in study.specs(datasets=("trec",), seeds=(1,)) if s.name in names]
    specs = [dataclasses.replace(s, cap=TINY) for s in specs]
    assert [s.key for s in specs] == [f"trec/{study.slug(n)}/seed1" for n in names]
    done = run_sweep(specs, tmp_path, progress=False, log=lambda *_: None)
    assert [d["status"] for d in done] == ["stored"] * 4
    assert run_sweep(specs, tmp_path, progress=False, log=lambda *_: None) == []  # resumable: nothing redone
    rec = json.loads((study.run_dir(tmp_path, "trec", study.variant(names[2]), 1) / "record.json").read_text())
    assert rec["tags"]["variant"] == names[2] and rec["tags"]["control_of"] is None
    assert rec["config"]["objective"]["stop_grad"] is True and rec["dataset"]["subset"]["rows"] == TINY

    out = report.write_report(tmp_path, tmp_path / "docs" / "objective-study.md")
    text = out.read_text()
    assert "## Selection rule (fixed before the results)" in text
    assert (
        "| trec | supcon + stop-grad | 1 |" in text and (tmp_path / "docs" / "objective-study.png").stat().st_size > 0
    )
    assert "No variant is eligible yet" in text  # one dataset of five: the rule can't pick a winner
    S = rec["steerability"]["S"]
    assert f"{S:+.3f}" in text  # the table's number is the record's


def test_report_without_records_is_a_one_line_error(tmp_path):
    from fractal_embeddings.errors import FractalError

    with pytest.raises(FractalError, match="no objective-study run records"):
        report.write_report(tmp_path, tmp_path / "x.md")
