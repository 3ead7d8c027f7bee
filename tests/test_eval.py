"""`fractal eval` on a saved run: it says whether the re-score matches the record, and an edited
record field or a missing folder is one `error:` line with exit status 2 naming it. Real short runs on
the small CLINC150 user file (conftest)."""

from __future__ import annotations

import json

import pytest

from _helpers import assert_one_error, cli


@pytest.mark.parametrize(
    "field,value,needle",
    [
        ("k", "abc", "config.eval.k"),
        ("k", 0, "config.eval.k"),
        ("k", True, "config.eval.k"),
        ("k", 10**6, "config.eval.k"),
        ("max_rows", -3, "config.eval.max_rows"),
        ("max_rows", "all", "config.eval.max_rows"),
        ("sample_seed", 2**70, "config.eval.sample_seed"),
        ("split", 5, "config.eval.split"),
        ("split", "nope", "config.eval.split"),
    ],
)
def test_eval_refuses_an_edited_record_field(user_run_dir, tmp_path, cache_env, field, value, needle):
    """Defect 8: an edited `eval.k` (a string, 0) in record.json crashed `fractal eval` with a traceback."""
    import shutil

    d = tmp_path / "run"
    shutil.copytree(user_run_dir, d)
    rec = json.loads((d / "record.json").read_text())
    rec["config"]["eval"][field] = value
    (d / "record.json").write_text(json.dumps(rec))
    rc, _, err = cli("eval", d)
    assert_one_error(rc, err, needle, "record.json")


def test_eval_compares_with_the_record(user_run_dir, two_runs, tmp_path, cache_env):
    """Defect 9: `fractal eval` re-scored the run but never said whether it matched the record."""
    import shutil

    from fractal_embeddings.evaluation import compare_scores
    from fractal_embeddings.records import RunRecord
    from fractal_embeddings.runs import evaluate

    rc, out, err = cli("eval", user_run_dir, "--json")
    assert rc == 0, err
    res = json.loads(out)
    assert res["matches_record"] is True and res["differences"] == [] and "warning" not in err
    rec = two_runs[0].record
    assert compare_scores(rec, evaluate(user_run_dir)) == []

    d = tmp_path / "run"
    shutil.copytree(user_run_dir, d)
    edited = json.loads((d / "record.json").read_text())
    edited["accuracy"]["64"]["domain"] = round(edited["accuracy"]["64"]["domain"] - 0.25, 6)
    edited["steerability"]["S"] = 0.5
    (d / "record.json").write_text(json.dumps(edited))
    diffs = compare_scores(RunRecord.from_dict(edited), evaluate(d))
    assert len(diffs) == 2 and any(x.startswith("accuracy 64 domain:") for x in diffs)
    assert any(x.startswith("steerability S:") for x in diffs)
    rc, out, err = cli("eval", d, "--json")
    assert rc == 0 and json.loads(out)["matches_record"] is False and len(json.loads(out)["differences"]) == 2
    warn = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warn) == 1 and "differs from its record" in warn[0], err
    rc, out, err = cli("eval", d)
    assert rc == 0 and "differs from its record" in err
    # other rows than the record's: nothing to compare, and it says so
    rc, out, err = cli("eval", user_run_dir, "--eval-rows", "50", "--json")
    assert rc == 0 and json.loads(out)["matches_record"] is None


def test_eval_of_a_missing_directory_names_it(tmp_path):
    """Defect 10: `fractal eval runs/nope` said `runs: no record.json here`."""
    rc, _, err = cli("eval", tmp_path / "runs" / "nope")
    line = assert_one_error(rc, err, str(tmp_path / "runs" / "nope"), "does not exist")
    assert f"{tmp_path / 'runs'}:" not in line
    rc, _, err = cli("eval", tmp_path)
    assert_one_error(rc, err, "no record.json")
