"""Readers for the seed's datasets that are *online only*: Yahoo Answers, arXiv, DBPedia Classes and
Web of Science. Their files are not reachable from the machine this library is developed on, so
these readers are tested on small files written in the published format only, not on the real
data, and their downloads carry no pinned checksum (the sha256 of what was fetched is not known in
advance). The README says so.
"""

from __future__ import annotations

import csv
import io
import json
import tarfile
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..errors import InputDataError
from .home import RemoteFile
from .loaders import RawData, utf8_errors
from .splits import SPLIT_SEED, TEST_FRACTION, holdout_rows


def _holdout(texts: Sequence[str], labels: Sequence[Sequence[str]], note: str) -> tuple[dict, dict]:
    rows = holdout_rows(texts, labels, TEST_FRACTION, SPLIT_SEED)
    return rows, {"test_split": {"fraction": TEST_FRACTION, "seed": SPLIT_SEED, "note": note}}


# ------------------------------------------------------------ DBPedia Classes
DBPEDIA_FILES = tuple(
    RemoteFile(
        f"DBPEDIA_{s}.csv",
        f"https://huggingface.co/datasets/DeveloperOats/DBPedia_Classes/resolve/main/DBPEDIA_{s}.csv",
    )
    for s in ("train", "val", "test")
)


def read_dbpedia_classes(folder: Path) -> RawData:
    """``DBPEDIA_{train,val,test}.csv`` with columns ``text,l1,l2,l3`` (9 -> 70 -> 219 classes)."""
    rows = {}
    for split in ("train", "val", "test"):
        with (
            utf8_errors(folder / f"DBPEDIA_{split}.csv"),
            open(folder / f"DBPEDIA_{split}.csv", encoding="utf-8", newline="") as f,
        ):
            recs = list(csv.DictReader(f))
        if recs and not {"text", "l1", "l2", "l3"} <= set(recs[0]):
            raise InputDataError(f"dbpedia-classes: DBPEDIA_{split}.csv lacks the columns text,l1,l2,l3")
        rows[split] = ([r["text"] for r in recs], [(r["l1"], r["l2"], r["l3"]) for r in recs])
    return RawData(("l1", "l2", "l3"), rows)


# ------------------------------------------------------------- Web of Science
WOS_FILES = (
    RemoteFile(
        "WebOfScience.zip",
        "https://data.mendeley.com/public-files/datasets/9rw3vkcfy4/files/c9ea673d-5542-44c0-ab7b-f1311f7d61df/file_downloaded",
    ),
)


def read_wos(folder: Path) -> RawData:
    """WOS-46985 from ``WebOfScience.zip`` (``WOS46985/X.txt``, ``YL1.txt``, ``Y.txt``): domain (7) ->
    area (134), ids as published (no names in these files). No published split: seeded 80/20."""
    with zipfile.ZipFile(folder / "WebOfScience.zip") as z:

        def lines(member: str) -> list[str]:
            name = next((n for n in z.namelist() if n.endswith(f"WOS46985/{member}")), None)
            if name is None:
                raise InputDataError(f"wos: WebOfScience.zip has no WOS46985/{member}")
            return z.read(name).decode("utf-8", errors="replace").splitlines()

        texts, yl1, y = lines("X.txt"), lines("YL1.txt"), lines("Y.txt")
    if not len(texts) == len(yl1) == len(y):
        raise InputDataError(f"wos: X/YL1/Y have {len(texts)}/{len(yl1)}/{len(y)} lines; expected equal counts")
    labels = [(f"domain_{a.strip()}", f"area_{b.strip()}") for a, b in zip(yl1, y, strict=True)]
    rows, info = _holdout(texts, labels, "WOS has no published split")
    return RawData(("domain", "area"), rows, info=info)


# -------------------------------------------------------------- Yahoo Answers
YAHOO_FILES = (RemoteFile("yahoo_answers_csv.tgz", "https://s3.amazonaws.com/fast-ai-nlp/yahoo_answers_csv.tgz"),)

#: Our grouping of the 10 Yahoo Answers topics into 4 coarse groups (the seed did not publish its own).
YAHOO_GROUPS = {
    "society": ("Society & Culture", "Politics & Government", "Family & Relationships"),
    "science_tech": ("Science & Mathematics", "Computers & Internet", "Health"),
    "leisure": ("Sports", "Entertainment & Music"),
    "practical": ("Education & Reference", "Business & Finance"),
}


def read_yahoo_answers(folder: Path) -> RawData:
    """``yahoo_answers_csv.tgz`` (Zhang et al. 2015): ``classes.txt`` + ``{train,test}.csv`` rows
    ``"class","title","content","answer"``. Text = title + content. Levels: group (4, ours) -> topic (10)."""
    group_of = {t: g for g, ts in YAHOO_GROUPS.items() for t in ts}
    with tarfile.open(folder / "yahoo_answers_csv.tgz", "r:gz") as tar:

        def member(name: str) -> str:
            m = next((m for m in tar.getmembers() if m.name.endswith(name)), None)
            if m is None:
                raise InputDataError(f"yahoo-answers: the archive has no {name}")
            f = tar.extractfile(m)
            if f is None:
                raise InputDataError(f"yahoo-answers: {m.name} in the archive is not a file")
            return f.read().decode("utf-8", errors="replace")

        classes = member("classes.txt").split("\n")
        rows = {}
        for split in ("train", "test"):
            texts, labels = [], []
            for rec in csv.reader(io.StringIO(member(f"{split}.csv"))):
                topic = classes[int(rec[0]) - 1].strip()
                texts.append(f"{rec[1]} {rec[2]}".replace("\\n", " ").strip())
                labels.append((group_of[topic], topic))
            rows[split] = (texts, labels)
    return RawData(("group", "topic"), rows)


# ----------------------------------------------------------------------- arXiv
ARXIV_FILES = (
    # Kaggle needs a login: the download fails and the error tells where to put the file.
    RemoteFile("arxiv-metadata-oai-snapshot.json", "https://www.kaggle.com/datasets/Cornell-University/arxiv"),
)
PHYSICS_ARCHIVES = ("astro-ph", "cond-mat", "gr-qc", "hep-", "math-ph", "nlin", "nucl-", "physics", "quant-ph")


def arxiv_group(category: str) -> str:
    """The archive group of an arXiv category: ``cs.CL`` -> ``cs``; every physics archive -> ``physics``."""
    if category.startswith(PHYSICS_ARCHIVES) or category == "math-ph":
        return "physics"
    return category.split(".", 1)[0]


def read_arxiv(folder: Path, max_rows: int = 200_000) -> RawData:
    """The arXiv metadata snapshot (JSON lines: ``title``, ``abstract``, ``categories``). Levels:
    group (cs, math, physics, stat, ...) -> primary category (the first listed). Reads the first
    ``max_rows`` records; no published split: seeded 80/20."""
    texts, labels = [], []
    with (
        utf8_errors(folder / "arxiv-metadata-oai-snapshot.json"),
        open(folder / "arxiv-metadata-oai-snapshot.json", encoding="utf-8") as f,
    ):
        for i, line in enumerate(f):
            if i >= max_rows:
                break
            rec = json.loads(line)
            primary = rec["categories"].split()[0]
            texts.append(f"{rec['title']} {rec['abstract']}".replace("\n", " ").strip())
            labels.append((arxiv_group(primary), primary))
    rows, info = _holdout(texts, labels, f"first {max_rows} records; arXiv has no published split")
    return RawData(("group", "category"), rows, info=info)


def specs(spec_cls: Callable[..., Any]) -> list:
    """Catalogue entries of the online-only datasets."""
    return [
        spec_cls(
            "yahoo-answers",
            "Yahoo Answers topics, 4 groups (ours) -> 10 topics [online only]",
            "yahoo-answers",
            read_yahoo_answers,
            ("group", "topic"),
            ("group", "topic"),
            YAHOO_FILES,
            online_only=True,
        ),
        spec_cls(
            "arxiv",
            "arXiv metadata, group -> primary category [online only, manual download]",
            "arxiv",
            read_arxiv,
            ("group", "category"),
            ("group", "category"),
            ARXIV_FILES,
            online_only=True,
        ),
        spec_cls(
            "dbpedia-classes",
            "DBPedia Classes l1 (9) -> l2 (70) -> l3 (219) [online only]",
            "dbpedia-classes",
            read_dbpedia_classes,
            ("l1", "l2", "l3"),
            ("l1", "l2"),
            DBPEDIA_FILES,
            online_only=True,
        ),
        spec_cls(
            "wos",
            "Web of Science WOS-46985 domain -> area [online only]",
            "wos",
            read_wos,
            ("domain", "area"),
            ("domain", "area"),
            WOS_FILES,
            online_only=True,
        ),
    ]
