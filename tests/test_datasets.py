"""Built-in datasets read in place: counts must equal each SOURCE.md; the download path is exercised
for real against a local HTTP server serving the shared datasets folder."""

import csv
import functools
import http.server
import math
import shutil
import threading

import pytest

from fractal_embeddings import load_dataset
from fractal_embeddings.data import list_datasets
from fractal_embeddings.errors import (
    ChecksumError,
    DataFilesMissingError,
    DatasetNotFoundError,
    TaxonomyError,
)


def rows(ds):
    return {s: len(sp) for s, sp in ds.splits.items()}


def test_clinc150_counts_and_entropy(data_home):
    ds = load_dataset("clinc150")
    assert rows(ds) == {"train": 15000, "val": 3000, "test": 4500}
    st = ds.stats()
    assert [lv["n_classes"] for lv in st["levels"]] == [10, 150]
    assert st["entropy"]["H_L1|L0"] == pytest.approx(math.log2(15), abs=0.01)
    assert st["entropy"]["H_L0"] == pytest.approx(math.log2(10), abs=1e-9)
    assert len(set(ds.parent_map(1).values())) == 10


def test_clinc150_out_of_scope_on_request(data_home):
    ds = load_dataset("clinc150", include_oos=True)
    assert rows(ds) == {"train": 15100, "val": 3100, "test": 5500}
    assert "oos" in ds.levels[1].classes and "oos" in ds.levels[0].classes


def test_clinc150_three_levels(data_home):
    ds = load_dataset("clinc150-3level")
    assert [lv.n_classes for lv in ds.levels] == [5, 10, 150]
    assert ds.stats()["entropy"]["H_L1|L0"] == pytest.approx(1.0)  # two domains per super-domain
    assert load_dataset("clinc150", levels=("super_domain", "domain", "intent")).level_names == ds.level_names


def test_trec_counts_latin1_and_full_fine_label(data_home):
    ds = load_dataset("trec")
    assert len(ds.split("train")) + len(ds.split("val")) == 5452
    assert len(ds.split("test")) == 500
    assert [lv.n_classes for lv in ds.levels] == [6, 50]
    assert "DESC:desc" in ds.levels[1].classes and "HUM:desc" in ds.levels[1].classes
    all_texts = ds.split("train").texts + ds.split("val").texts
    assert any("sister\u00f0city" in t for t in all_texts)  # the published 0xF0 byte, read as Latin-1
    test_fine = {ds.levels[1].classes[i] for i in ds.split("test").labels[:, 1]}
    assert len(test_fine) == 42


def test_newsgroups20_counts(data_home):
    ds = load_dataset("newsgroups20")
    assert len(ds.split("train")) + len(ds.split("val")) == 11293
    assert len(ds.split("test")) == 7528
    assert [lv.n_classes for lv in ds.levels] == [6, 20]
    assert ds.parent_map("newsgroup")["misc.forsale"] == "forsale"


def test_hwu64_counts(data_home):
    ds = load_dataset("hwu64")
    assert len(ds.split("train")) + len(ds.split("val")) == 9960
    assert len(ds.split("test")) == 1076
    assert [lv.n_classes for lv in ds.levels] == [18, 64]


def test_banking77_is_flat_and_refused_for_training(data_home):
    ds = load_dataset("banking77")
    assert len(ds.split("train")) + len(ds.split("val")) == 10003 and len(ds.split("test")) == 3080
    assert ds.levels[0].n_classes == 77 and not ds.is_hierarchical
    with pytest.raises(TaxonomyError, match="flat"):
        ds.require_hierarchy()


def test_goemotions_rule_and_counts(data_home):
    ds = load_dataset("goemotions-3level")
    assert [lv.n_classes for lv in ds.levels] == [3, 6, 27]
    # independent count of the rule "exactly one label, not neutral (id 27)" straight from the files
    expected = {}
    for split, fname in (("train", "train.tsv"), ("val", "dev.tsv"), ("test", "test.tsv")):
        with open(data_home / "goemotions" / fname, encoding="utf-8", newline="") as f:
            recs = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
        assert len(recs) == {"train": 43410, "val": 5426, "test": 5427}[split]
        expected[split] = sum(1 for r in recs if "," not in r[1] and r[1] != "27")
    assert rows(ds) == expected
    assert ds.info["kept"]["train"]["rows_in_file"] == 43410
    two = load_dataset("goemotions")
    assert two.level_names == ("sentiment", "emotion")
    sub = load_dataset("goemotions", levels=("ekman", "emotion"))
    assert [lv.n_classes for lv in sub.levels] == [6, 27]
    assert sub.parent_map("emotion")["grief"] == "sadness"


DERIVED = ("wordnet-nouns", "soc2010", "go-mf", "naics", "emoji")


def _source_counts(folder):
    """Rows and classes per level as the folder's SOURCE.md states them."""
    import re

    text = (folder / "SOURCE.md").read_text(encoding="utf-8")
    n_rows = int(re.search(r"\| `[^`]+\.csv` \|[^|]*\|[^|]*\| (\d+) \|", text).group(1))
    levels = re.search(r"Levels \(classes\): (.+?)\.", text).group(1)
    return n_rows, [(m.group(1), int(m.group(2))) for m in re.finditer(r"(\w+) \((\d+)\)", levels)]


@pytest.mark.parametrize("name", DERIVED)
def test_derived_taxonomies_load_as_their_source_states(data_home, name):
    from fractal_embeddings.data.catalog import get_spec

    n_rows, levels = _source_counts(data_home / name)
    spec = get_spec(name)
    ds = load_dataset(name, levels=spec.levels)  # every level the file has
    assert sum(rows(ds).values()) == n_rows
    assert [(lv.name, lv.n_classes) for lv in ds.levels] == levels
    assert spec.license and spec.license != "none stated"
    # a seeded stratified test split (20%) by the finest level, and a val split from train: every fine class trains
    test_share = len(ds.split("test")) / n_rows
    assert 0.17 < test_share < 0.23
    assert len(set(ds.split("train").labels[:, -1].tolist())) == ds.levels[-1].n_classes
    again = load_dataset(name, levels=spec.levels)
    assert again.fingerprint() == ds.fingerprint()  # the split is deterministic


def test_soc2010_views_share_their_rows(data_home):
    two, four = load_dataset("soc2010"), load_dataset("soc2010-4level")
    assert two.level_names == ("major_group", "sub_major_group") and four.n_levels == 4
    assert two.split("test").texts == four.split("test").texts
    assert (two.split("test").labels == four.split("test").labels[:, :2]).all()


def test_derived_file_without_mirror_is_one_line(tmp_path, monkeypatch):
    monkeypatch.delenv("FRACTAL_DATA_URL", raising=False)
    with pytest.raises(DataFilesMissingError) as e:
        load_dataset("emoji", data_home=tmp_path)
    msg = str(e.value)
    assert "no public URL" in msg and "FRACTAL_DATA" in msg and "\n" not in msg
    assert not (tmp_path / "emoji").exists() or not any((tmp_path / "emoji").iterdir())


def test_derived_file_downloads_from_a_mirror(data_home, serve, tmp_path, monkeypatch):
    monkeypatch.setenv("FRACTAL_DATA_URL", serve(data_home))
    ds = load_dataset("naics", data_home=tmp_path)
    assert ds.fingerprint() == load_dataset("naics").fingerprint()


def test_unknown_dataset_is_one_line():
    with pytest.raises(DatasetNotFoundError) as e:
        load_dataset("clinc15")
    assert "clinc150" in str(e.value) and "\n" not in str(e.value)


def test_every_catalogue_entry_describes_its_files():
    for spec in list_datasets():
        assert spec.files, spec.name
        if not spec.online_only:
            assert all(f.sha256 and f.bytes for f in spec.files), spec.name


# ----------------------------------------------------------------- downloads
@pytest.fixture()
def serve():
    """Start local HTTP servers on 127.0.0.1: ``serve(folder)`` returns the base URL."""
    servers = []

    def start(folder):
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
        handler.log_message = lambda *a, **k: None
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()


def test_download_verifies_and_writes_atomically(data_home, serve, tmp_path, monkeypatch):
    monkeypatch.setenv("FRACTAL_DATA_URL", serve(data_home))
    home = tmp_path / "home"
    ds = load_dataset("trec", data_home=home)
    assert len(ds.split("test")) == 500
    for name in ("train_5500.label", "TREC_10.label"):
        assert (home / "trec" / name).read_bytes() == (data_home / "trec" / name).read_bytes()
    assert not list((home / "trec").glob(".*"))  # no temp files left


def test_download_with_wrong_checksum_leaves_nothing(data_home, serve, tmp_path, monkeypatch):
    root = tmp_path / "mirror"
    (root / "trec").mkdir(parents=True)
    shutil.copy(data_home / "trec" / "TREC_10.label", root / "trec" / "TREC_10.label")
    bad = bytearray((data_home / "trec" / "train_5500.label").read_bytes())
    bad[100] ^= 1  # same size, one bit flipped
    (root / "trec" / "train_5500.label").write_bytes(bytes(bad))
    monkeypatch.setenv("FRACTAL_DATA_URL", serve(root))
    home = tmp_path / "home"
    with pytest.raises(ChecksumError, match="sha256"):
        load_dataset("trec", data_home=home)
    assert not (home / "trec" / "train_5500.label").exists()
    assert not [p for p in (home / "trec").iterdir() if p.name.startswith(".")]


def test_offline_download_fails_with_one_line(tmp_path):
    home = tmp_path / "empty"
    with pytest.raises(DataFilesMissingError) as e:
        load_dataset("clinc150", data_home=home)
    msg = str(e.value)
    assert "data_full.json" in msg and str(home / "clinc150") in msg and "FRACTAL_DATA" in msg and "\n" not in msg
    with pytest.raises(DataFilesMissingError, match="missing"):
        load_dataset("clinc150", data_home=home, download=False)
