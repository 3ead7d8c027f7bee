"""User files (CSV / JSONL / Parquet) and their bad-input errors: each one line, nothing half-written."""

import json

import pandas as pd
import pytest

from fractal_embeddings import load_dataset
from fractal_embeddings.errors import InputDataError, TaxonomyError


def clinc_frame(data_home, n_per_intent=6):
    """A small user table built from real CLINC150 rows."""
    ds = load_dataset("clinc150")
    sp = ds.split("train")
    seen, rows = {}, []
    for t, (d, i) in zip(sp.texts, sp.labels, strict=True):
        if seen.get(i, 0) < n_per_intent and i < 30:
            seen[i] = seen.get(i, 0) + 1
            rows.append({"utterance": t, "domain": ds.levels[0].classes[d], "intent": ds.levels[1].classes[i]})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_user_file_formats(data_home, tmp_path, suffix):
    df = clinc_frame(data_home)
    path = tmp_path / f"mine{suffix}"
    if suffix == ".csv":
        df.to_csv(path, index=False)
    elif suffix == ".jsonl":
        df.to_json(path, orient="records", lines=True)
    else:
        df.to_parquet(path)
    ds = load_dataset(path, levels=("domain", "intent"), text="utterance")
    assert sum(len(s) for s in ds.splits.values()) == len(df)
    assert [lv.n_classes for lv in ds.levels] == [df.domain.nunique(), df.intent.nunique()]
    assert set(ds.splits) == {"train", "val", "test"}


def test_split_column_is_respected(data_home, tmp_path):
    df = clinc_frame(data_home)
    df["split"] = ["test" if i % 3 == 0 else "train" for i in range(len(df))]
    path = tmp_path / "s.csv"
    df.to_csv(path, index=False)
    ds = load_dataset(path, levels=("domain", "intent"), text="utterance")
    assert len(ds.split("test")) == (df.split == "test").sum()


def test_missing_columns_name_what_exists(data_home, tmp_path):
    path = tmp_path / "m.csv"
    clinc_frame(data_home).to_csv(path, index=False)
    with pytest.raises(InputDataError) as e:
        load_dataset(path, levels=("domain", "intent"))  # text column is 'utterance', not 'text'
    msg = str(e.value)
    assert "'text'" in msg and "utterance" in msg and "--text" in msg and "\n" not in msg


def test_non_utf8_bytes(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("text,a,b\ncaf\xe9,x,y\n".encode("latin-1"))
    with pytest.raises(InputDataError, match="not valid UTF-8"):
        load_dataset(path, levels=("a", "b"))


def test_whitespace_texts_are_dropped_with_a_count(data_home, tmp_path):
    df = clinc_frame(data_home)
    df.loc[[0, 5], "utterance"] = ["   ", ""]
    path = tmp_path / "w.csv"
    df.to_csv(path, index=False)
    with pytest.warns(UserWarning, match="dropped 2 empty"):
        ds = load_dataset(path, levels=("domain", "intent"), text="utterance")
    assert sum(len(s) for s in ds.splits.values()) == len(df) - 2
    with pytest.raises(TaxonomyError, match="empty or whitespace-only"):
        load_dataset(path, levels=("domain", "intent"), text="utterance", empty="error")


def test_fine_class_under_two_parents(data_home, tmp_path):
    df = clinc_frame(data_home)
    victim = df.intent.iloc[0]
    other = next(d for d in df.domain.unique() if d != df.domain.iloc[0])
    df.loc[df.index[1], "domain"] = other  # one row of the intent now sits under another domain
    path = tmp_path / "c.csv"
    df.to_csv(path, index=False)
    with pytest.raises(TaxonomyError) as e:
        load_dataset(path, levels=("domain", "intent"), text="utterance")
    assert f"'{victim}'" in str(e.value) and f"'{other}'" in str(e.value)
    with pytest.warns(UserWarning, match="relabelled 1 rows"):
        ds = load_dataset(path, levels=("domain", "intent"), text="utterance", on_conflict="majority")
    assert ds.parent_map("intent")[victim] == df.domain.iloc[0]


def test_level_with_one_class(tmp_path):
    path = tmp_path / "one.jsonl"
    path.write_text("\n".join(json.dumps({"text": f"t{i}", "a": "same", "b": f"b{i % 2}"}) for i in range(10)))
    with pytest.raises(TaxonomyError, match="level 'a' has 1 class"):
        load_dataset(path, levels=("a", "b"))


def test_unreadable_and_unsupported_files(tmp_path):
    with pytest.raises(InputDataError, match="no such file"):
        load_dataset(tmp_path / "nope.csv", levels=("a", "b"))
    (tmp_path / "x.xlsx").write_text("x")
    with pytest.raises(InputDataError, match="unsupported file type"):
        load_dataset(tmp_path / "x.xlsx", levels=("a", "b"))
    (tmp_path / "empty.csv").write_text("text,a,b\n")
    with pytest.raises(InputDataError, match="no rows"):
        load_dataset(tmp_path / "empty.csv", levels=("a", "b"))
    with pytest.raises(TaxonomyError, match="--levels"):
        load_dataset(tmp_path / "empty.csv")
