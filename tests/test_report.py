"""Report building blocks: the run table keeps the record's level order, tables escape their cells."""

from __future__ import annotations

from fractal_embeddings.report.frame import record_row
from fractal_embeddings.report.tables import Table, pm


def _record():
    # levels coarse -> fine whose names sort the other way round ("subject" > "newsgroup"), in a real record
    import json
    from pathlib import Path

    from fractal_embeddings.records import RunRecord

    d = json.loads((Path(__file__).resolve().parents[1] / "results/main/trec/fractal/seed42/record.json").read_text())
    acc = {str(dd): {"newsgroup": 0.5 + dd / 1000, "subject": 0.9} for dd in (64, 128, 192, 256)}
    d["dataset"].update(
        name="ng",
        levels=[{"name": "subject", "n_classes": 6}, {"name": "newsgroup", "n_classes": 20}],
        entropy={"H_L0": 2.0, "H_L1|L0": 1.5},
    )
    d.update(accuracy=acc, baseline={"accuracy": acc, "steerability": {"S": 0.0}}, tags={"variant": "v"})
    return RunRecord.from_dict(d)


def test_record_row_orders_levels_coarse_to_fine_not_alphabetically():
    row = record_row(_record(), "main")
    assert row["L0@j1"] == 0.9 and row["L1@j4"] == 0.5 + 256 / 1000
    assert row["base_L1@j1"] == 0.5 + 64 / 1000 and row["H_L1|L0"] == 1.5


def test_table_markdown_and_latex_escape_cells():
    t = Table("t", "S vs H(L1|L0) 100%", ["a", "b"])
    t.add("H(L1|L0)", 0.12345)
    md = t.markdown()
    assert "H(L1\\|L0)" in md and "0.123" in md and md.count("\n") == 2
    tex = t.latex()
    assert "\\toprule" in tex and "H(L1$|$L0)" in tex and "100\\%" in tex
    assert pm([0.1, 0.3]) == "+0.200 ± 0.141" and pm([0.5]) == "+0.500" and pm([]) == "-"


def test_seed_claims_are_read_from_the_claims_list_with_pipes_in_values(tmp_path, monkeypatch):
    import pytest

    from fractal_embeddings.errors import FractalError
    from fractal_embeddings.report.claims import seed_claims

    f = tmp_path / "claims.md"
    f.write_text(
        "| ID | claim | seed's value |\n|---|---|---|\n| C9 | S rises | rho(S, H(L1|L0)) = 0.74 |\n"
        "| C12 | synthetic | MRL |S| < 0.02 |\n"
    )
    assert seed_claims(f) == {"C9": ("S rises", "rho(S, H(L1|L0)) = 0.74"), "C12": ("synthetic", "MRL |S| < 0.02")}
    monkeypatch.setenv("FRACTAL_CLAIMS", str(tmp_path / "missing.md"))
    with pytest.raises(FractalError, match="set FRACTAL_CLAIMS"):
        seed_claims()
