"""The online-only readers, on small files written in each published format (the real files are
not reachable here; the README says these datasets are untested on real data)."""

import io
import json
import tarfile
import zipfile

import pytest

from fractal_embeddings import load_dataset
from fractal_embeddings.data.online import YAHOO_GROUPS, arxiv_group


def test_dbpedia_classes_format(tmp_path):
    folder = tmp_path / "dbpedia-classes"
    folder.mkdir()
    for split in ("train", "val", "test"):
        lines = ["text,l1,l2,l3"] + [
            f'"doc {split} {i}, with a comma",Agent,Athlete{i % 2},Sport{i % 4}' for i in range(8)
        ]
        lines += [f"place {i},Place,Building{i % 2},House{i % 4}" for i in range(8)]
        (folder / f"DBPEDIA_{split}.csv").write_text("\n".join(lines) + "\n")
    ds = load_dataset("dbpedia-classes", data_home=tmp_path, download=False)
    assert ds.level_names == ("l1", "l2") and [lv.n_classes for lv in ds.levels] == [2, 4]
    assert len(ds.split("test")) == 16 and ds.split("train").texts[0] == "doc train 0, with a comma"
    assert load_dataset("dbpedia-classes", levels=("l1", "l2", "l3"), data_home=tmp_path, download=False).n_levels == 3


def test_wos_format(tmp_path):
    folder = tmp_path / "wos"
    folder.mkdir()
    n = 50
    with zipfile.ZipFile(folder / "WebOfScience.zip", "w") as z:
        z.writestr("WebOfScience/WOS46985/X.txt", "\n".join(f"abstract {i}" for i in range(n)))
        z.writestr("WebOfScience/WOS46985/YL1.txt", "\n".join(str(i % 2) for i in range(n)))
        z.writestr("WebOfScience/WOS46985/Y.txt", "\n".join(str(i % 2 + 2 * (i % 3)) for i in range(n)))
    ds = load_dataset("wos", data_home=tmp_path, download=False)
    assert [lv.n_classes for lv in ds.levels] == [2, 6]
    assert sum(len(s) for s in ds.splits.values()) == n and ds.info["test_split"]["fraction"] == 0.2


def test_yahoo_answers_format(tmp_path):
    folder = tmp_path / "yahoo-answers"
    folder.mkdir()
    topics = [t for ts in YAHOO_GROUPS.values() for t in ts]
    classes = [
        "Society & Culture",
        "Science & Mathematics",
        "Health",
        "Education & Reference",
        "Computers & Internet",
        "Sports",
        "Business & Finance",
        "Entertainment & Music",
        "Family & Relationships",
        "Politics & Government",
    ]
    assert sorted(classes) == sorted(topics)
    with tarfile.open(folder / "yahoo_answers_csv.tgz", "w:gz") as tar:

        def add(name, text):
            data = text.encode()
            info = tarfile.TarInfo(f"yahoo_answers_csv/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        add("classes.txt", "\n".join(classes))
        for split in ("train", "test"):
            add(
                f"{split}.csv",
                "\n".join(f'"{c}","title {i}","content\\nline","answer"' for i in range(30) for c in range(1, 11)),
            )
    ds = load_dataset("yahoo-answers", data_home=tmp_path, download=False)
    assert [lv.n_classes for lv in ds.levels] == [4, 10]
    assert len(ds.split("test")) == 300 and ds.split("test").texts[0] == "title 0 content line"


def test_arxiv_format(tmp_path):
    folder = tmp_path / "arxiv"
    folder.mkdir()
    cats = ["cs.CL", "cs.LG", "math.AG", "hep-th", "astro-ph.GA", "stat.ML"]
    with open(folder / "arxiv-metadata-oai-snapshot.json", "w") as f:
        for i in range(60):
            f.write(json.dumps({"title": f"t{i}", "abstract": f"a\n{i}", "categories": f"{cats[i % 6]} cs.AI"}) + "\n")
    ds = load_dataset("arxiv", data_home=tmp_path, download=False)
    assert ds.levels[0].classes == ("cs", "math", "physics", "stat")
    assert (
        arxiv_group("hep-th") == "physics"
        and arxiv_group("math-ph") == "physics"
        and arxiv_group("q-bio.NC") == "q-bio"
    )


def test_online_only_without_files_says_where_to_put_them(tmp_path):
    from fractal_embeddings.errors import DataFilesMissingError

    with pytest.raises(DataFilesMissingError, match="arxiv-metadata-oai-snapshot.json"):
        load_dataset("arxiv", data_home=tmp_path)
