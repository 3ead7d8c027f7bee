"""Retrieval metrics (retrieval.py) against a direct numpy implementation, and the pareto algebra."""

from __future__ import annotations

import numpy as np
import pytest

from fractal_embeddings.errors import FractalError
from fractal_embeddings.experiments.pareto import routing_curve
from fractal_embeddings.retrieval import prefix_retrieval, ranking_metrics


def test_ranking_metrics_by_hand():
    hits = np.array([[1, 0, 1, 0], [0, 0, 0, 0], [0, 1, 0, 0]], dtype=bool)
    m = ranking_metrics(hits, n_relevant=np.array([2, 3, 1]), ks=(1, 3), map_k=4)
    assert m["R@1"] == pytest.approx(1 / 3)
    assert m["R@3"] == pytest.approx(2 / 3)
    # AP: query 0 = (1/1 + 2/3) / 2, query 1 = 0, query 2 = (1/2) / 1
    assert m["mAP@4"] == pytest.approx(((1 + 2 / 3) / 2 + 0 + 0.5) / 3)


def _brute(Q, ql, C, cl, d, level):
    q = Q[:, :d] / np.linalg.norm(Q[:, :d], axis=1, keepdims=True)
    c = C[:, :d] / np.linalg.norm(C[:, :d], axis=1, keepdims=True)
    top = np.argsort(-(q.astype(np.float64) @ c.T.astype(np.float64)), axis=1, kind="stable")[:, :10]
    hits = cl[top, level] == ql[:, level][:, None]
    r1, r10 = hits[:, 0].mean(), hits.any(axis=1).mean()
    aps = []
    for i in range(len(q)):
        n_rel = min((cl[:, level] == ql[i, level]).sum(), 10)
        prec = np.cumsum(hits[i]) / np.arange(1, 11)
        aps.append((prec * hits[i]).sum() / n_rel if n_rel else 0.0)
    return r1, r10, np.mean(aps)


def test_prefix_retrieval_matches_brute_force():
    rng = np.random.default_rng(0)
    C, Q = rng.standard_normal((500, 128)).astype(np.float32), rng.standard_normal((60, 128)).astype(np.float32)
    fine_c, fine_q = rng.integers(0, 12, 500), rng.integers(0, 13, 60)  # class 12 has no relevant item
    cl, ql = np.stack([fine_c // 4, fine_c], 1), np.stack([fine_q // 4, fine_q], 1)
    C[:, :64] += 2 * np.eye(64, dtype=np.float32)[cl[:, 0] * 7]  # the first block clusters by the coarse level
    Q[:, :64] += 2 * np.eye(64, dtype=np.float32)[ql[:, 0] * 7]
    out = prefix_retrieval(Q, ql, C, cl, block_dim=64, n_blocks=2, level_names=["coarse", "fine"])
    assert set(out) == {"64", "128"}
    for d in (64, 128):
        for level, name in enumerate(["coarse", "fine"]):
            r1, r10, mp = _brute(Q, ql, C, cl, d, level)
            got = out[str(d)][name]
            assert got["R@1"] == pytest.approx(r1, abs=1e-6) and got["R@10"] == pytest.approx(r10, abs=1e-6)
            assert got["mAP@10"] == pytest.approx(mp, abs=1e-6)
    assert out["64"]["coarse"]["R@1"] > out["128"]["coarse"]["R@1"]
    with pytest.raises(FractalError, match="dims"):
        prefix_retrieval(Q[:, :64], ql, C, cl, block_dim=64, n_blocks=2, level_names=["coarse", "fine"])


def test_routing_curve_crossover():
    c = routing_curve(coarse_short=0.97, fine_full=0.90, mrl_coarse=0.95, mrl_fine=0.92, block_dim=64, n_blocks=4)
    # routing - mrl = -0.02 at alpha 0, +0.02 at alpha 1: they cross at one half
    assert c["crossover"] == pytest.approx(0.5)
    assert c["route_dims"][0] == 256 and c["route_dims"][-1] == 64 and c["mrl_dims"] == 256
    assert c["wins"] == (pytest.approx(0.5), 1.0)
    assert routing_curve(0.97, 0.95, 0.95, 0.92, 64, 4)["crossover"] == 0.0  # never loses
    assert routing_curve(0.9, 0.90, 0.95, 0.92, 64, 4)["wins"] is None  # never wins
    better_fine = routing_curve(0.93, 0.94, 0.95, 0.92, 64, 4)  # wins on fine-heavy workloads only
    assert better_fine["crossover"] is None and better_fine["wins"] == (0.0, pytest.approx(0.5))
