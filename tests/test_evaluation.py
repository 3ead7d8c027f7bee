"""Prefix k-NN: the vectorised search must equal a naive row loop exactly."""

import numpy as np
import pytest

from fractal_embeddings.evaluation import (
    knn_accuracy,
    knn_neighbours,
    prefix_knn_accuracy,
    steerability,
    vote,
)


def naive_knn_predict(X, labels, k=5):
    X = X / np.linalg.norm(X, axis=1, keepdims=True)
    preds = []
    for i in range(len(X)):
        sims = [(-float(X[i] @ X[j]), j) for j in range(len(X)) if j != i]
        nb = [j for _, j in sorted(sims)[:k]]
        labs = [labels[j] for j in nb]
        best = max(labs.count(x) for x in labs)
        preds.append(next(x for x in labs if labs.count(x) == best))  # tie -> nearest
    return np.array(preds)


@pytest.mark.parametrize("seed", [0, 1])
def test_vectorised_equals_naive_loop(seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(300, 32)).astype(np.float32)
    y = rng.integers(0, 4, size=300)
    nb = knn_neighbours(X, 5, block_rows=64)  # several blocks
    pred = vote(y[nb])
    assert np.array_equal(pred, naive_knn_predict(X, y))
    assert knn_accuracy(X, y) == pytest.approx((naive_knn_predict(X, y) == y).mean())


def test_exact_ties_follow_row_order():
    rng = np.random.default_rng(3)
    base = rng.normal(size=(20, 8)).astype(np.float32)
    X = np.repeat(base, 4, axis=0)  # every vector four times: ties at the k-th neighbour
    y = rng.integers(0, 3, size=len(X))
    assert np.array_equal(vote(y[knn_neighbours(X, 5)]), naive_knn_predict(X, y))


def test_vote_tie_goes_to_nearest():
    assert vote(np.array([[1, 2, 2, 1, 3]]))[0] == 1
    assert vote(np.array([[3, 2, 2, 1, 1]]))[0] == 2


def test_prefix_table_and_steerability():
    rng = np.random.default_rng(0)
    n = 400
    coarse = rng.integers(0, 4, size=n)
    fine = coarse * 5 + rng.integers(0, 5, size=n)
    X = rng.normal(size=(n, 256)).astype(np.float32) * 0.5
    X[:, :64] += np.eye(4)[coarse].repeat(16, axis=1) * 2  # first block: coarse only
    X[:, 64:] += np.eye(20)[fine].repeat(10, axis=1)[:, :192] * 2  # later blocks: fine
    acc = prefix_knn_accuracy(X, np.stack([coarse, fine], axis=1))
    assert acc.shape == (4, 2)
    assert acc[0, 0] > 0.9 and acc[0, 1] < 0.5 and acc[-1, 1] > acc[0, 1]
    assert steerability(acc) == pytest.approx((acc[0, 0] - acc[3, 0]) + (acc[3, 1] - acc[0, 1]))
    assert steerability(acc) > 0.3


def test_steerability_metrics_follow_their_definitions():
    from fractal_embeddings.evaluation import steerability_metrics

    # coarse falls 0.90 -> 0.80 while fine rises 0.50 -> 0.80, one non-monotone fine step
    acc = np.array([[0.90, 0.50], [0.85, 0.60], [0.80, 0.58], [0.80, 0.80]])
    m = steerability_metrics(acc)
    assert m["S"] == pytest.approx((0.90 - 0.80) + (0.80 - 0.50))
    assert m["S_gap"] == pytest.approx(0.40)
    gap = acc[:, 0] - acc[:, 1]
    assert m["S_AUC"] == pytest.approx(((gap[:-1] + gap[1:]) / 2).sum() / 3, abs=1e-6)  # rounded to 6 places
    assert m["S_mono"] == pytest.approx(5 / 6)
    three = steerability_metrics(np.array([[0.9, 0.7, 0.4], [0.8, 0.8, 0.6]]))
    assert three["S_02"] == three["S"] == pytest.approx(0.1 + 0.2)
    assert three["S_01"] == pytest.approx(0.1 + 0.1) and three["S_12"] == pytest.approx(-0.1 + 0.2)


def test_stratified_sample_is_exact_proportional_and_seeded():
    from fractal_embeddings.evaluation import stratified_sample

    strata = np.repeat(np.arange(5), [100, 300, 50, 25, 25])
    rows = stratified_sample(strata, 100, seed=1)
    assert len(rows) == 100 and len(set(rows.tolist())) == 100 and np.all(np.diff(rows) > 0)
    assert np.bincount(strata[rows]).tolist() == [20, 60, 10, 5, 5]
    assert np.array_equal(rows, stratified_sample(strata, 100, seed=1))
    assert not np.array_equal(rows, stratified_sample(strata, 100, seed=2))
    assert np.array_equal(stratified_sample(strata, None), np.arange(500))
    assert len(stratified_sample(np.arange(7) % 3, 5, seed=0)) == 5  # remainders distributed
