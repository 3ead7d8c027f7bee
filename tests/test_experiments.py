"""Every experiment runs its --quick grid end to end on the real data and the offline encoder, and
the report (sections, figures, LaTeX tables, claims table) is generated from those records."""

from __future__ import annotations

import json

import pytest

from fractal_embeddings.errors import FractalError
from fractal_embeddings.experiments import (
    EXPERIMENTS,
    NOT_IN_ALL,
    get_experiment,
    run_experiment,
    store_dir,
)
from fractal_embeddings.report import write_report
from fractal_embeddings.report.claims import seed_claims
from fractal_embeddings.store import RunStore

QUICK = [n for n in EXPERIMENTS if n not in NOT_IN_ALL]  # the study and the search measurement: own tests
GRIDS = [n for n in QUICK if n not in ("pareto", "latency")]  # pareto reads retrieval's runs; latency measures


@pytest.fixture(scope="module")
def results(data_home, cache_dir, tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("FRACTAL_CACHE", str(cache_dir))
    out = tmp_path_factory.mktemp("results")
    run_experiment("all", out, quick=True, workers=2, log=lambda *_: None, progress=False)
    yield out
    mp.undo()


def _records(results, name):
    return [rec.to_dict() for _, rec in RunStore(store_dir(results, name, quick=True)).records()]


def test_every_quick_grid_is_stored_with_its_spec(results):
    for name in GRIDS:
        specs = get_experiment(name).specs(quick=True)
        recs = _records(results, name)
        assert len(recs) == len(specs), name
        assert {r["tags"]["experiment"] for r in recs} == {name}
    syn = _records(results, "synthetic")
    assert {r["dataset"]["levels"][0]["n_classes"] for r in syn} == {2, 10, 50}
    assert all(r["dataset"]["levels"][1]["n_classes"] == 150 for r in syn)
    noisy = [r for r in _records(results, "noise") if r["dataset"]["variant"]]
    assert noisy and all(r["dataset"]["variant"]["kind"] == "coarse-noise" for r in noisy)
    assert {r["config"]["head"]["block_dim"] for r in _records(results, "capacity")} == {16, 64}
    assert {len(r["dataset"]["levels"]) for r in _records(results, "three-level")} == {3}
    assert all("S_02" in r["steerability"] for r in _records(results, "three-level"))
    assert len({r["encoder"]["fingerprint"] for r in _records(results, "cross-encoder")}) == 2
    ext = {r["method"]: r for r in _records(results, "external")}
    assert set(ext) == {"fractal", "v5-paper", "heal", "csr", "smec", "mrl"}
    assert ext["csr"]["config"]["head"]["kind"] == "topk" and ext["smec"]["training"]["n_params"] > 0
    bb = {r["tags"]["variant"]: r for r in _records(results, "backbone-control")}
    assert set(bb) == {"v5-paper head-only", "v5-paper +2 layers", "mrl head-only", "mrl +2 layers"}
    assert bb["mrl +2 layers"]["config"]["head"]["finetuned_encoder_layers"] == 2
    assert "finetuned_encoder_layers" not in bb["mrl head-only"]["config"]["head"]
    ft = {r["tags"]["arm"]: r for r in _records(results, "finetune")}
    assert set(ft) == {"frozen", "frozen, joint schedule", "joint", "two-stage", "recipe"}
    assert ft["frozen, joint schedule"]["config"]["train"]["epochs"] == ft["joint"]["config"]["train"]["epochs"]
    assert ft["recipe"]["config"]["train"]["warmup"] and ft["recipe"]["config"]["train"]["layer_decay"] == 0.8
    assert set(ft["recipe"]["training"]["stages"]) == {"warmup", "refit"} and not ft["joint"]["training"]["stages"]
    assert (
        set(ft["two-stage"]["training"]["stages"]) == {"refit"} and "encoder_lr" not in ft["frozen"]["config"]["train"]
    )
    picks = {r["tags"]["arm"] for r in _records(results, "finetune-recipe")}
    assert picks == {"frozen", "two-stage", "warm-up", "warm-up, layer decay"}
    assert all(r["config"]["eval"]["split"] == "val" for r in _records(results, "finetune-recipe"))
    ret = _records(results, "retrieval")
    assert ret and all(set(r["retrieval"]["trained"]) == {"64", "128", "192", "256"} for r in ret)
    dual = {r["tags"]["variant"]: r for r in _records(results, "dual-encoder")}
    assert set(dual) == {"coarse-only", "fine-only", "v5-paper", "coarse-only mlp", "fine-only mlp", "fractal"}
    assert dual["coarse-only mlp"]["config"]["head"]["kind"] == "mlp" == dual["fractal"]["config"]["head"]["kind"]
    assert dual["coarse-only mlp"]["config"]["train"] == dual["fractal"]["config"]["train"]
    lat = json.loads((store_dir(results, "latency", quick=True) / "latency.json").read_text())
    assert {(r["kind"], r["dims"]) for r in lat["results"]} == {
        (k, d) for k in ("flat", "hnsw") for d in (64, 128, 192, 256)
    }
    assert all(r["b1_p50_us"] > 0 and 0 <= r["recall@10"] <= 1 for r in lat["results"])


def test_rerun_does_nothing(results):
    msgs = []
    run_experiment("noise", results, quick=True, log=msgs.append, progress=False)
    assert any("4 of 4 runs already" in m for m in msgs)


def test_report_from_quick_records(results):
    path = write_report(results, formats=("md", "latex"))
    text = path.read_text()
    for title in (
        "Main comparison",
        "Causal ablation",
        "Synthetic hierarchies (Goldilocks)",
        "Noisy coarse labels",
        "Prefix capacity",
        "Three and more levels",
        "Across encoders",
        "External baselines",
        "Alignment or capacity (backbone control)",
        "Retrieval and adaptive routing",
        "One aligned model vs a dual encoder",
        "Query latency per prefix length",
        "Induced coarse levels (`fractal taxonomy induce`)",
    ):
        assert f"## {title} (quick run" in text
    ids = list(seed_claims())
    assert ids == [f"C{i}" for i in range(1, 25)]
    for cid in ids:
        assert f"| {cid} |" in text
    assert "not testable here" in text and "reproduced" in text
    figs = sorted(p.name for p in (results / "figures").glob("*.png"))
    assert {
        "main_accuracy_vs_prefix.png",
        "main_forest.png",
        "ablation_v5-paper.png",
        "noise_curve.png",
        "capacity_curves.png",
        "three_level_curves.png",
        "cross_encoder.png",
        "external_cost.png",
        "backbone_control.png",
        "retrieval_ramp.png",
        "pareto_routing.png",
        "latency.png",
    } <= set(figs)
    assert all((results / "figures" / f.replace(".png", ".pdf")).exists() for f in figs)
    tex = (results / "tables" / "main_steerability.tex").read_text()
    assert "\\toprule" in tex and "\\bottomrule" in tex
    # a number in the report is the records' number
    rec = next(r for r in _records(results, "main") if r["method"] == "fractal" and r["dataset"]["name"] == "trec")
    assert json.dumps(rec["steerability"]["S"]) in json.dumps(
        [r["steerability"]["S"] for r in _records(results, "main")]
    )


def test_unknown_experiment_and_empty_results_are_one_line_errors(tmp_path):
    with pytest.raises(FractalError, match="unknown experiment 'mian'"):
        run_experiment("mian", tmp_path)
    with pytest.raises(FractalError, match="no run records found"):
        write_report(tmp_path)
