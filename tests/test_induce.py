"""Induced coarse levels (induce.py, `fractal taxonomy induce`, the `induced` experiment) on real
CLINC150 rows and the offline default encoder."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from conftest import run_cli
from fractal_embeddings import load_dataset
from fractal_embeddings.data.build import build_dataset
from fractal_embeddings.errors import FractalError, TaxonomyError
from fractal_embeddings.induce import (
    AUTO_RULE,
    InducedLevel,
    agreement,
    induce_level,
    random_grouping_like,
    with_induced_level,
)

SMALL = {"train": 750, "val": 150, "test": 300}  # 5 / 1 / 2 rows per intent


def fractal(*args):
    return run_cli(*args)


@pytest.fixture(scope="module")
def clinc_small(data_home):
    return load_dataset("clinc150").subset(SMALL, seed=0)


def test_grouping_is_deterministic_and_a_partition(clinc_small, encoder):
    a = induce_level(clinc_small, k=10, encoder=encoder)
    b = induce_level(clinc_small, k=10, encoder=encoder)
    assert np.array_equal(a.parent, b.parent) and a.groups == b.groups
    assert a.name == "intent_group10" and a.level == "intent" and a.method == "ward" and a.auto is None
    assert a.parent.shape == (150,) and sorted(set(a.parent.tolist())) == list(range(10))
    assert sum(a.sizes()) == 150 and min(a.sizes()) >= 1
    firsts = [int(np.flatnonzero(a.parent == i)[0]) for i in range(10)]
    assert firsts == sorted(firsts)  # groups numbered by their first class
    for i, (g, members) in enumerate(a.members().items()):
        assert g.startswith(f"g{i}:") and g.split(":", 1)[1] in members
    assert induce_level(clinc_small, k=10, method="average", encoder=encoder).groups != a.groups

    two = with_induced_level(clinc_small, a)
    assert two.level_names == ("intent_group10", "intent") and two.levels[0].classes == a.groups
    for name, sp in two.splits.items():
        old = clinc_small.split(name)
        assert sp.texts == old.texts and np.array_equal(sp.labels[:, 1], old.labels[:, 1])
        assert np.array_equal(sp.labels[:, 0], a.parent[old.labels[:, 1]])
        assert sp.source_rows()[0] is old.source_rows()[0]  # cached vectors of the full split are reused
    v = two.info["variant"]
    assert v["kind"] == "induced" and v["k"] == 10 and v["level"] == "intent" and v["method"] == "ward"
    assert v["groups"] == a.members() and set(v["agreement"]) == {"domain"}
    assert json.loads(json.dumps(v)) == v  # JSON-ready, as run records keep it


def test_auto_follows_the_stated_rule(clinc_small, encoder):
    from scipy.cluster.hierarchy import cut_tree, linkage
    from sklearn.metrics import silhouette_score

    a = induce_level(clinc_small, k="auto", encoder=encoder)
    hi = min(149, 2 * math.ceil(math.sqrt(150)))
    sil = a.auto["silhouette"]
    assert (
        a.auto["rule"] == AUTO_RULE
        and a.auto["candidates"] == [2, hi]
        and list(sil) == [str(k) for k in range(2, hi + 1)]
    )
    best = max(range(2, hi + 1), key=lambda k: (sil[str(k)], -k))
    assert a.k == a.auto["chosen"] == best and a.name == f"intent_group{best}"
    assert np.array_equal(a.parent, induce_level(clinc_small, k=best, encoder=encoder).parent)
    # one silhouette recomputed from scratch: train-split centroids, normalised, ward, cosine silhouette
    train = clinc_small.split("train")
    X = np.asarray(encoder.embed(train.texts), dtype=np.float64)
    C = np.stack([X[train.labels[:, 1] == c].mean(axis=0) for c in range(150)])
    C /= np.linalg.norm(C, axis=1, keepdims=True)
    labels = cut_tree(linkage(C, "ward"), n_clusters=7).ravel()
    assert sil["7"] == pytest.approx(silhouette_score(C, labels, metric="cosine"), abs=1e-9)


def _tiny(fine: list[str], coarse: list[str]):
    rows = {
        "train": (
            [f"{f} text {i}" for f in fine for i in range(3)],
            [(c, f) for f, c in zip(fine, coarse, strict=True) for _ in range(3)],
        ),
        "test": ([f"{f} test" for f in fine], list(zip(coarse, fine, strict=True))),
    }
    return build_dataset("tiny", rows, ("coarse", "fine"))


def test_agreement_on_a_hand_checked_case():
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    ds = _tiny(["a1", "a2", "b1", "b2"], ["A", "A", "B", "B"])

    def level(parent):
        return InducedLevel("g", "fine", 2, "ward", ds.levels[1].classes, ("g0", "g1"), np.array(parent))

    same = agreement(ds, level([0, 0, 1, 1]))["coarse"]
    assert same == {"ari": pytest.approx(1.0), "nmi": pytest.approx(1.0)}
    # crossing groups: contingency all ones -> ARI = (0 - 2*2/6) / (2 - 2*2/6) = -0.5, NMI = 0
    cross = agreement(ds, level([0, 1, 0, 1]))["coarse"]
    assert cross["ari"] == pytest.approx(-0.5) and cross["nmi"] == pytest.approx(0.0, abs=1e-12)
    assert cross["ari"] == pytest.approx(adjusted_rand_score([0, 0, 1, 1], [0, 1, 0, 1]))
    assert cross["nmi"] == pytest.approx(normalized_mutual_info_score([0, 0, 1, 1], [0, 1, 0, 1]), abs=1e-12)


def test_random_control_has_the_induced_sizes(clinc_small, encoder):
    a = induce_level(clinc_small, k=10, encoder=encoder)
    r = random_grouping_like(clinc_small, a, seed=1)
    parent = r.parents[1]
    assert np.bincount(parent, minlength=10).tolist() == a.sizes()
    assert not np.array_equal(parent, a.parent)
    assert np.array_equal(random_grouping_like(clinc_small, a, seed=1).parents[1], parent)
    assert not np.array_equal(random_grouping_like(clinc_small, a, seed=2).parents[1], parent)
    v = r.info["variant"]
    assert v["kind"] == "random-like-induced" and v["seed"] == 1 and v["sizes"] == a.sizes() and v["like"] == a.name
    assert r.level_names == ("intent_random10", "intent") and set(v["agreement"]) == {"domain"}
    for name, sp in r.splits.items():
        assert np.array_equal(sp.labels[:, 0], parent[clinc_small.split(name).labels[:, 1]])


def test_bad_input_is_one_line_before_any_work(clinc_small):
    no_encoder = "/nonexistent/model"  # would fail if anything were encoded
    cases = [
        ({"k": 1}, "k must be in [2, 149]"),
        ({"k": 150}, "k must be in [2, 149]"),
        ({"k": "7"}, "k must be an integer or 'auto'"),
        ({"k": True}, "k must be an integer or 'auto'"),
        ({"k": 5, "method": "single"}, "unknown method 'single'"),
        ({"k": 5, "level": "nope"}, "has no level 'nope'"),
        ({"k": 5, "name": "domain"}, "already has a level 'domain'"),
        ({"k": 5, "name": "split"}, "also a column of the written file"),
        ({"k": 5, "name": "text"}, "also a column of the written file"),
        ({"k": 5, "name": "a,b"}, "has a comma or surrounding spaces"),
        ({"k": 5, "name": " g "}, "has a comma or surrounding spaces"),
        ({"k": 5, "name": " "}, "name is empty"),
    ]
    for kwargs, msg in cases:
        with pytest.raises(TaxonomyError) as e:
            induce_level(clinc_small, encoder=no_encoder, **kwargs)
        assert msg in str(e.value) and "\n" not in str(e.value), (kwargs, str(e.value))
    no_train = type(clinc_small)(
        "x", clinc_small.levels, {s: clinc_small.split(s) for s in ("val", "test")}, clinc_small.parents
    )
    with pytest.raises(TaxonomyError, match="has no train rows"):
        induce_level(no_train, k=5, encoder=no_encoder)
    with pytest.raises(TaxonomyError, match="has 2 classes; grouping them needs at least 3"):
        induce_level(_tiny(["a1", "b1"], ["A", "B"]), k=2, encoder=no_encoder)
    with pytest.raises(FractalError):  # a grouping of other classes
        with_induced_level(_tiny(["a1", "a2", "b1"], ["A", "A", "B"]), induce_level(clinc_small, k=3, encoder=None))


def test_cli_induce_on_a_user_file_then_train(clinc_small, tmp_path, encoder):
    intents = clinc_small.levels[1].classes
    rows = [
        {"utterance": t, "intent": intents[lab[1]], "split": s}
        for s, sp in clinc_small.splits.items()
        for t, lab in zip(sp.texts, sp.labels, strict=True)
    ]
    src = tmp_path / "flat.csv"
    pd.DataFrame(rows).to_csv(src, index=False)
    out = tmp_path / "induced.csv"
    induce = ("taxonomy", "induce", str(src), "--text", "utterance", "--levels", "intent", "--k")
    r = fractal(*induce, "10", "--out", str(out), "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["k"] == 10 and rep["agreement"] == {} and rep["columns"] == ["text", "split", "intent_group10", "intent"]
    df = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert list(df.columns) == rep["columns"] and len(df) == len(rows)
    # the same grouping as in-process, on the same train rows
    flat = load_dataset(src, ("intent",), text="utterance")
    expected = induce_level(flat, k=10, encoder=encoder).members()
    assert rep["groups"] == expected
    written = load_dataset(out, ("intent_group10", "intent"))
    assert {g: sorted(c for c, p in written.parent_map("intent").items() if p == g) for g in expected} == {
        g: sorted(m) for g, m in expected.items()
    }
    assert {s: len(sp) for s, sp in written.splits.items()} == SMALL  # the split column kept the splits
    again = fractal(*induce, "10", "--out", str(out))
    assert again.returncode == 2 and "already exists" in again.stderr and again.stderr.strip().count("\n") == 0
    bad = fractal(*induce, "150", "--out", str(tmp_path / "b.csv"))
    assert bad.returncode == 2 and "error: k must be in [2, 149]" in bad.stderr and not (tmp_path / "b.csv").exists()

    run = fractal(
        "train",
        str(out),
        "--levels",
        "intent_group10,intent",
        "--epochs",
        "1",
        "--eval-rows",
        "all",
        "--out",
        str(tmp_path / "run"),
        "--json",
    )
    assert run.returncode == 0, run.stderr
    rec = json.loads(run.stdout)
    assert [lv["name"] for lv in rec["dataset"]["levels"]] == ["intent_group10", "intent"]
    assert rec["dataset"]["rows"] == SMALL and rec["config"]["eval"]["n_rows"] == SMALL["test"]


def test_experiment_grid_and_after_hook(clinc_small, tmp_path, encoder):
    from fractal_embeddings.experiments import get_experiment
    from fractal_embeddings.experiments.sweep import RunSpec, load_spec_dataset, run_sweep
    from fractal_embeddings.store import RunStore

    exp = get_experiment("induced")
    quick = exp.specs(quick=True)
    assert {s.dataset for s in quick} == {"clinc150", "banking77"} and {s.seed for s in quick} == {42}
    assert {s.name for s in quick if s.dataset == "clinc150"} == {"published", "induced", "random"}
    assert {s.name for s in quick if s.dataset == "banking77"} == {
        "induced kauto",
        "random kauto",
        "induced k10",
        "random k10",
    }
    by = {s.name: s for s in quick if s.dataset == "clinc150"}
    assert by["induced"].induced_coarse == {"k": 10, "method": "ward", "control": None}  # the published K
    assert len({s.data_key() for s in by.values()}) == 3 and all(s.cap == exp.QUICK["cap"] for s in quick)
    assert len(exp.specs()) == 5 * 3 * 3 + 4 * 3

    # a tiny grid through the sweep runner, then the after-hook's published-level scores
    specs = [
        RunSpec(
            exp.NAME,
            "clinc150",
            "fractal",
            0,
            variant=v,
            cap=SMALL,
            induced_coarse=ic,
            train_options={"epochs": 1},
            tags={"grouping": v},
        )
        for v, ic in (
            ("published", None),
            ("induced", {"k": 10, "method": "ward", "control": None}),
            ("random", {"k": 10, "method": "ward", "control": "random"}),
        )
    ]
    ds = load_spec_dataset(specs[1])
    assert (
        ds.fingerprint()
        == with_induced_level(clinc_small, induce_level(clinc_small, k=10, encoder=encoder)).fingerprint()
    )
    root = tmp_path / "induced"
    run_sweep(specs, root, log=lambda m: None, progress=False)
    exp.after(root, log=lambda m: None)
    recs = dict(RunStore(root).records())
    scores = {}
    for s in specs:
        f = json.loads(exp.published_file(root, "clinc150", s.name, 0).read_text())
        rec = recs[s.key]
        assert f["scored_levels"] == ["domain", "intent"] and f["run_id"] == rec.run_id
        assert f["eval"]["rows_sha256"] == rec.eval.rows_sha256
        # the fine level is the same in every grouping, so its accuracies repeat the record's
        for dims, acc in rec.accuracy.items():
            assert f["accuracy"][dims]["intent"] == pytest.approx(acc["intent"])
        scores[s.name] = f["steerability"]["S"]
    assert scores["published"] == pytest.approx(recs[specs[0].key].steerability["S"])
    assert recs[specs[1].key].level_names == ["intent_group10", "intent"]
    mtime = exp.published_file(root, "clinc150", "induced", 0).stat().st_mtime_ns
    exp.after(root, log=lambda m: None)  # present files are skipped
    assert exp.published_file(root, "clinc150", "induced", 0).stat().st_mtime_ns == mtime

    # the report section reads the records and the hook's files only
    from fractal_embeddings.report.frame import load_frame
    from fractal_embeddings.report.induced import attach
    from fractal_embeddings.report.sections import SECTIONS

    g = attach(load_frame(tmp_path, experiments=["induced"]), tmp_path)
    sec = SECTIONS["induced"](g, tmp_path / "figures", tmp_path)
    f = sec.facts["clinc150"]
    assert f["K"] == 10 and f["S_published"] == pytest.approx(scores)
    assert f["S_own"]["induced"] == pytest.approx(recs[specs[1].key].steerability["S"])
    assert f["agreement"]["induced"]["ari"] == pytest.approx(
        recs[specs[1].key].dataset.variant["agreement"]["domain"]["ari"]
    )
    assert sec.facts["published_rescore_max_abs_diff"] == pytest.approx(0.0, abs=1e-9)
    assert any(line.startswith("| clinc150 | 10 |") for line in sec.tables[0].markdown().splitlines())
