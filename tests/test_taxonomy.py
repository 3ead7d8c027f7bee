import math

import numpy as np
import pytest

from fractal_embeddings.data.build import build_dataset
from fractal_embeddings.data.splits import stratified_split
from fractal_embeddings.data.taxonomy import conditional_entropy_bits, entropy_bits
from fractal_embeddings.errors import TaxonomyError


def test_entropies_match_hand_computed_values():
    texts = [f"t{i}" for i in range(8)]
    labels = [("A", "a1"), ("A", "a2")] + [("B", f"b{j}") for j in (1, 1, 2, 2, 3, 3)]
    ds = build_dataset("hand", {"train": (texts, labels), "val": (["x"], [("A", "a1")])}, ("L0", "L1"))
    st = build_dataset("hand", {"train": (texts, labels), "val": ([], [])}, ("L0", "L1")).stats()
    # P(A)=1/4, P(B)=3/4
    h0 = -(0.25 * math.log2(0.25) + 0.75 * math.log2(0.75))
    assert st["entropy"]["H_L0"] == pytest.approx(h0, abs=1e-12)
    # H(L1|A) = 1 bit (two equally likely children), H(L1|B) = log2 3
    assert st["entropy"]["H_L1|L0"] == pytest.approx(0.25 * 1 + 0.75 * math.log2(3), abs=1e-12)
    assert st["branching"]["L1|L0"] == pytest.approx(2.5)
    assert st["levels"] == [{"name": "L0", "n_classes": 2}, {"name": "L1", "n_classes": 5}]
    assert ds.parent_map("L1") == {"a1": "A", "a2": "A", "b1": "B", "b2": "B", "b3": "B"}


def test_entropy_helpers():
    assert entropy_bits(np.array([0, 1, 2, 3])) == pytest.approx(2.0)
    assert entropy_bits(np.array([5, 5, 5])) == 0.0
    child = np.array([0, 1, 2, 2])
    parent = np.array([0, 0, 1, 1])
    assert conditional_entropy_bits(child, parent) == pytest.approx(0.5)


def test_class_under_two_parents_is_an_error_naming_both():
    texts = ["a", "b", "c", "d"]
    labels = [("A", "x"), ("A", "x"), ("B", "x"), ("B", "y")]
    with pytest.raises(TaxonomyError) as e:
        build_dataset("t", {"train": (texts, labels)}, ("coarse", "fine"), val_fraction=0.25)
    msg = str(e.value)
    assert "'x'" in msg and "'A'" in msg and "'B'" in msg and "majority" in msg and "\n" not in msg


def test_majority_parent_relabels_and_counts_rows():
    texts = [f"t{i}" for i in range(6)]
    labels = [("A", "x"), ("A", "x"), ("B", "x"), ("B", "y"), ("A", "z"), ("B", "y")]
    with pytest.warns(UserWarning, match="relabelled 2 rows"):
        ds = build_dataset(
            "t", {"train": (texts, labels), "test": (texts, labels)}, ("coarse", "fine"), on_conflict="majority"
        )
    assert ds.parent_map("fine")["x"] == "A"
    assert ds.info["majority_parent_rows"] == {"fine": 2}  # one row in train, one in test


def test_majority_parent_keeps_three_levels_consistent():
    texts = [f"t{i}" for i in range(5)]
    labels = [("S1", "A", "x"), ("S1", "A", "x"), ("S2", "B", "x"), ("S2", "B", "y"), ("S1", "A", "w")]
    with pytest.warns(UserWarning):
        ds = build_dataset(
            "t", {"train": (texts, labels), "test": (texts, labels)}, ("s", "c", "f"), on_conflict="majority"
        )
    lab = ds.split("test").labels
    # every row's coarse label equals the parent of its middle label
    for row in lab:
        assert ds.parents[1][row[1]] == row[0]
        assert ds.parents[2][row[2]] == row[1]


def test_level_with_one_class_is_refused():
    with pytest.raises(TaxonomyError, match="level 'coarse' has 1 class"):
        build_dataset("t", {"train": (["a", "b"], [("A", "x"), ("A", "y")])}, ("coarse", "fine"))


def test_empty_texts_dropped_with_count_or_refused():
    texts = ["a", "  ", "", "b", "c", "d"]
    labels = [("A", "x"), ("A", "x"), ("B", "y"), ("B", "y"), ("A", "x"), ("B", "y")]
    with pytest.warns(UserWarning, match="dropped 4 empty"):
        ds = build_dataset("t", {"train": (texts, labels), "test": (texts, labels)}, ("c", "f"))
    assert ds.info["dropped_empty"] == {"train": 2, "test": 2}
    assert len(ds.split("test")) == 4
    with pytest.raises(TaxonomyError, match="2 empty or whitespace-only texts"):
        build_dataset("t", {"train": (texts, labels)}, ("c", "f"), empty="error")


def test_val_split_is_stratified_seeded_and_deterministic():
    rng = np.random.default_rng(1)
    fine = rng.integers(0, 20, size=2000)
    texts = [f"t{i}" for i in range(2000)]
    labels = [(f"C{f % 4}", f"F{f}") for f in fine]
    a = build_dataset("t", {"train": (texts, labels)}, ("c", "f"), seed=3)
    b = build_dataset("t", {"train": (texts, labels)}, ("c", "f"), seed=3)
    c = build_dataset("t", {"train": (texts, labels)}, ("c", "f"), seed=4)
    assert a.split("val").texts == b.split("val").texts
    assert a.split("val").texts != c.split("val").texts
    assert len(a.split("train")) + len(a.split("val")) == 2000
    counts = np.bincount(a.split("val").labels[:, 1], minlength=20) / np.bincount(fine, minlength=20)
    assert np.all(np.abs(counts - 0.1) < 0.03)
    assert a.info["val_split"]["seed"] == 3


def test_stratified_split_keeps_singletons_in_train():
    mask = stratified_split(np.array([0, 1, 1, 1, 1]), 0.5, 0)
    assert not mask[0] and mask[1:].sum() == 2


def test_select_levels_composes_parents():
    texts = [f"t{i}" for i in range(6)]
    labels = [
        ("S1", "A", "x"),
        ("S1", "A", "y"),
        ("S1", "B", "z"),
        ("S2", "C", "w"),
        ("S2", "C", "v"),
        ("S2", "D", "u"),
    ]
    ds = build_dataset("t", {"train": (texts, labels), "val": (texts, labels)}, ("s", "c", "f"))
    two = ds.select_levels(("s", "f"))
    assert two.level_names == ("s", "f")
    assert two.parent_map("f") == {"x": "S1", "y": "S1", "z": "S1", "w": "S2", "v": "S2", "u": "S2"}
    with pytest.raises(TaxonomyError, match="coarse to fine"):
        ds.select_levels(("f", "s"))
    with pytest.raises(TaxonomyError, match="no level 'nope'"):
        ds.select_levels(("nope", "f"))
