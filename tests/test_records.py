"""The typed run record: every committed record loads and writes back its exact JSON; an edited or
damaged field fails in one line naming the file and the field; old schemas load, unknown ones don't."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from fractal_embeddings.records import SCHEMA, RunRecord, RunRecordError, load_record

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "results" / "main" / "trec" / "fractal" / "seed42" / "record.json"
# a committed record written under the first schema (v5-paper's arithmetic has not changed since)
SAMPLE_V1 = REPO / "results" / "main" / "trec" / "v5-paper" / "seed42" / "record.json"


def test_every_committed_record_loads_typed_and_round_trips():
    paths = sorted((REPO / "results").glob("**/record.json"))
    assert len(paths) > 100
    for p in paths:
        d = json.loads(p.read_text())
        rec = load_record(p)
        assert isinstance(rec, RunRecord) and rec.to_dict() == d, p
    rec = load_record(SAMPLE)
    assert rec.head.dim == 256 and rec.head.dims == [64, 128, 192, 256]
    assert rec.level_names == [lv["name"] for lv in json.loads(SAMPLE.read_text())["dataset"]["levels"]]
    assert rec.scores.table(rec.level_names).shape == (4, 2) and rec.eval.k == 5


@pytest.mark.parametrize(
    "path, value, field",
    [
        (("config", "eval", "k"), 0, "config.eval.k is 0"),
        (("config", "eval", "k"), "5", "config.eval.k is '5'"),
        (("config", "eval", "k"), 10_000, "config.eval.k is 10000"),
        (("config", "eval", "sample_seed"), -1, "config.eval.sample_seed is -1"),
        (("config", "head", "block_dim"), 0, "config.head.block_dim is 0"),
        (("seed",), 1.5, "record.seed is 1.5"),
        (("encoder", "normalize"), "yes", "encoder.normalize is 'yes'"),
        (("accuracy",), {"64": {"coarse": 1.7}}, "record.accuracy is"),
        (("dataset", "levels"), [], "dataset.levels is []"),
        (("weights",), {"file": "head.safetensors"}, "record.weights is"),
    ],
)
def test_edited_fields_fail_in_one_line_naming_the_field(tmp_path, path, value, field):
    d = json.loads(SAMPLE.read_text())
    node = d
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    (tmp_path / "record.json").write_text(json.dumps(d))
    with pytest.raises(RunRecordError) as e:
        load_record(tmp_path)
    msg = str(e.value)
    assert field in msg and str(tmp_path / "record.json") in msg and "\n" not in msg, msg
    assert "restore the field" in msg


def test_schemas(tmp_path):
    d = json.loads(SAMPLE_V1.read_text())
    assert d["schema"] == "fractal-embeddings/run-record/1" and SCHEMA.endswith("/2")
    assert load_record(SAMPLE_V1).to_dict() == d  # a /1 record loads, and round-trips as written
    new = copy.deepcopy(d) | {"schema": SCHEMA}
    assert RunRecord.from_dict(new).to_dict() == new
    for schema, msg in (
        ("fractal-embeddings/run-record/9", "written by a newer fractal-embeddings"),
        ("something-else", "not a fractal-embeddings run record"),
    ):
        with pytest.raises(RunRecordError, match=msg):
            RunRecord.from_dict(d | {"schema": schema})
    for missing in ("config", "baseline", "weights"):
        with pytest.raises(RunRecordError, match=f"lacks {missing}"):
            RunRecord.from_dict({k: v for k, v in d.items() if k != missing})
