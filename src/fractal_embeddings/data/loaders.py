"""One reader per published raw format. Each returns a :class:`RawData`: rows per split with every
level the format offers (coarse -> fine), before validation (``build.build_dataset`` does that).

Readers take the dataset folder and read the files in place; they never write.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import FractalError, InputDataError
from .splits import SPLIT_SEED, TEST_FRACTION, holdout_rows


@dataclass
class RawData:
    """``rows[split] = (texts, label_rows)``; ``levels`` names the columns of ``label_rows``."""

    levels: tuple[str, ...]
    rows: Mapping[str, tuple[Sequence[str | None], Sequence[Sequence[str]]]]  # None: a row without text
    class_order: list[list[str] | None] | None = None
    info: dict = field(default_factory=dict)


def utf8_error_location(path: Path, chunk_size: int = 1 << 20) -> tuple[int, int, bytes] | None:
    """``(line, byte, bad bytes)`` of the first byte of ``path`` that is not valid UTF-8 (line 1-based,
    byte offset 0-based, counted from the start of the file), or ``None`` when the file decodes.

    A decoder's own ``UnicodeDecodeError.start`` counts from the start of the chunk it was decoding
    (pandas, text-mode files), so it is not a position in the file; this scans the file itself."""
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, line = 0, 1
    with open(path, "rb") as f:
        while True:
            chunk = f.read(chunk_size)
            pending = decoder.getstate()[0]  # the start of a multi-byte character (never a newline)
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as e:
                pos = offset - len(pending) + e.start
                line += chunk.count(b"\n", 0, max(0, pos - offset))
                return line, pos, (pending + chunk)[e.start : e.end]
            if not chunk:
                return None
            line += chunk.count(b"\n")
            offset += len(chunk)


def decode_error(path: Path, fix: str = "re-save the file as UTF-8") -> InputDataError:
    """The one-line error for a file that is not valid UTF-8: the file's line and byte offset of the bad byte."""
    try:
        where = utf8_error_location(path)
    except OSError:
        where = None
    if where is None:
        return InputDataError(f"{path}: not valid UTF-8; {fix}")
    line, pos, bad = where
    return InputDataError(f"{path}: not valid UTF-8 at line {line} (byte {pos} of the file: {bad[:4]!r}); {fix}")


def check_path(path: str | Path, error: type[FractalError] = InputDataError) -> None:
    """Raise ``error`` (one line) when ``path`` cannot even be looked up: a NUL character, a name too
    long, a loop of links, a folder on the way that can't be entered. A path that does not exist passes
    (the caller says what it expected there)."""
    if "\0" in str(path):
        raise error(f"{str(path)!r}: a path can't hold a NUL character; give the file's path")
    try:
        os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return
    except OSError as e:
        raise error(f"{path}: {e.strerror or type(e).__name__}; give a path that can be read") from None


def _read_text(path: Path, encoding: str = "utf-8") -> str:
    try:
        return path.read_text(encoding=encoding)
    except UnicodeDecodeError:
        raise decode_error(path, "the file is corrupt or not the published one") from None


@contextmanager
def utf8_errors(path: Path) -> Iterator[None]:
    """Turn a ``UnicodeDecodeError`` while reading ``path`` into the one-line error that names its line and byte."""
    try:
        yield
    except UnicodeDecodeError:
        raise decode_error(path, "the file is corrupt or not the published one") from None


# ------------------------------------------------------------------ CLINC150
#: The 3-level view of CLINC150 groups its 10 domains into 5 super-domains (our grouping, two
#: domains each, by what the user is doing). Documented in docs/datasets.md.
CLINC_SUPER_DOMAINS = {
    "finance": ("banking", "credit_cards"),
    "mobility": ("auto_and_commute", "travel"),
    "household": ("home", "kitchen_and_dining"),
    "productivity": ("utility", "work"),
    "conversation": ("meta", "small_talk"),
}


def read_clinc150(folder: Path, include_oos: bool = False) -> RawData:
    """``data_full.json`` + ``domains.json``. Levels: super_domain -> domain -> intent.

    Out-of-scope rows (label ``oos``) are excluded by default; with ``include_oos=True`` they are
    added to their split with ``oos`` as their class at every level.
    """
    data = json.loads(_read_text(folder / "data_full.json"))
    domains = json.loads(_read_text(folder / "domains.json"))
    intent_domain = {i: d for d, intents in domains.items() for i in intents}
    domain_super = {d: s for s, ds in CLINC_SUPER_DOMAINS.items() for d in ds}
    rows = {}
    for split in ("train", "val", "test"):
        pairs = list(data[split]) + (list(data[f"oos_{split}"]) if include_oos else [])
        texts, labels = [], []
        for text, intent in pairs:
            if intent == "oos":
                labels.append(("oos", "oos", "oos"))
            else:
                d = intent_domain[intent]
                labels.append((domain_super[d], d, intent))
            texts.append(text)
        rows[split] = (texts, labels)
    return RawData(("super_domain", "domain", "intent"), rows, info={"include_oos": include_oos})


# ---------------------------------------------------------------------- TREC
def read_trec(folder: Path) -> RawData:
    """``train_5500.label`` (train) and ``TREC_10.label`` (test), Latin-1. Levels: coarse -> fine,
    the fine label being the full ``COARSE:fine`` string (fine names repeat across coarse classes)."""
    rows = {}
    for split, fname in (("train", "train_5500.label"), ("test", "TREC_10.label")):
        texts, labels = [], []
        for line in _read_text(folder / fname, encoding="latin-1").splitlines():
            if not line.strip():
                continue
            label, _, question = line.partition(" ")
            coarse = label.split(":", 1)[0]
            texts.append(question)
            labels.append((coarse, label))
        rows[split] = (texts, labels)
    return RawData(("coarse", "fine"), rows)


# ---------------------------------------------------------------- GoEmotions
def read_goemotions(folder: Path) -> RawData:
    """``{train,dev,test}.tsv`` + the two published groupings. Levels: sentiment (3) -> ekman (6) ->
    emotion (27).

    Rule: keep the rows with exactly one label that is not ``neutral`` (GoEmotions is multi-label;
    a hierarchy needs one class per row, and ``neutral`` belongs to no group).
    """
    names = _read_text(folder / "emotions.txt").split()
    sentiment = {e: g for g, es in json.loads(_read_text(folder / "sentiment_dict.json")).items() for e in es}
    ekman = {e: g for g, es in json.loads(_read_text(folder / "ekman_mapping.json")).items() for e in es}
    rows, kept = {}, {}
    for split, fname in (("train", "train.tsv"), ("val", "dev.tsv"), ("test", "test.tsv")):
        texts, labels, total = [], [], 0
        with utf8_errors(folder / fname), open(folder / fname, encoding="utf-8", newline="") as f:
            for rec in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
                total += 1
                ids = rec[1].split(",")
                if len(ids) != 1:
                    continue
                emo = names[int(ids[0])]
                if emo == "neutral":
                    continue
                texts.append(rec[0])
                labels.append((sentiment[emo], ekman[emo], emo))
        rows[split] = (texts, labels)
        kept[split] = {"rows_in_file": total, "kept": len(texts)}
    return RawData(
        ("sentiment", "ekman", "emotion"),
        rows,
        info={"rule": "single-label rows whose label is not neutral", "kept": kept},
    )


# --------------------------------------------------------------------- HWU64
def read_hwu64(folder: Path) -> RawData:
    """Fold 1 of the authors' 10-fold split: one semicolon CSV per intent. Levels: scenario ->
    intent (``scenario_intent``, as intent names repeat across scenarios). Text: ``answer_from_anno``."""
    rows = {}
    for split, sub in (("train", "KFold_1/trainset"), ("test", "KFold_1/testset/csv")):
        files = sorted((folder / sub).glob("*.csv"))
        if not files:
            raise InputDataError(f"hwu64: no CSV files in {folder / sub}")
        texts, labels = [], []
        for path in files:
            with utf8_errors(path), open(path, encoding="utf-8", newline="") as f:
                for rec in csv.DictReader(f, delimiter=";"):
                    texts.append(rec["answer_from_anno"])
                    labels.append((rec["scenario"], f"{rec['scenario']}_{rec['intent']}"))
        rows[split] = (texts, labels)
    return RawData(("scenario", "intent"), rows)


# ----------------------------------------------------------------- BANKING77
def read_banking77(folder: Path) -> RawData:
    """``train.csv`` / ``test.csv`` (``text,category``). One level only: no coarse level is published."""
    order = json.loads(_read_text(folder / "categories.json"))
    rows = {}
    for split in ("train", "test"):
        with utf8_errors(folder / f"{split}.csv"), open(folder / f"{split}.csv", encoding="utf-8", newline="") as f:
            recs = list(csv.DictReader(f))
        rows[split] = ([r["text"] for r in recs], [(r["category"],) for r in recs])
    return RawData(("intent",), rows, class_order=[order])


# -------------------------------------------------------------- 20 Newsgroups
#: Rennie's six subject groups of the 20 newsgroups.
NEWSGROUP_SUBJECTS = {
    "computers": (
        "comp.graphics",
        "comp.os.ms-windows.misc",
        "comp.sys.ibm.pc.hardware",
        "comp.sys.mac.hardware",
        "comp.windows.x",
    ),
    "recreation": ("rec.autos", "rec.motorcycles", "rec.sport.baseball", "rec.sport.hockey"),
    "science": ("sci.crypt", "sci.electronics", "sci.med", "sci.space"),
    "politics": ("talk.politics.guns", "talk.politics.mideast", "talk.politics.misc"),
    "religion": ("alt.atheism", "soc.religion.christian", "talk.religion.misc"),
    "forsale": ("misc.forsale",),
}


def read_newsgroups20(folder: Path) -> RawData:
    """Orange ``.tab`` files (3 header lines + 1 empty line). Levels: subject (6) -> newsgroup (20)."""
    group_subject = {g: s for s, gs in NEWSGROUP_SUBJECTS.items() for g in gs}
    rows = {}
    for split in ("train", "test"):
        lines = _read_text(folder / f"20newsgroups-{split}.tab").split("\n")
        if not lines[0].startswith("Category\tText"):
            raise InputDataError(
                f"newsgroups20: {split} file does not start with the Orange header 'Category<TAB>Text'"
            )
        texts, labels = [], []
        for line in lines[4:]:
            if not line:
                continue
            group, _, text = line.partition("\t")
            if group not in group_subject:
                raise InputDataError(f"newsgroups20: unknown newsgroup '{group}' in the {split} file")
            texts.append(text)
            labels.append((group_subject[group], group))
        rows[split] = (texts, labels)
    return RawData(("subject", "newsgroup"), rows)


# ------------------------------------------------------- derived taxonomy CSVs
def read_taxonomy_csv(folder: Path, file: str, levels: Sequence[str]) -> RawData:
    """One derived taxonomy CSV (``text`` then one column per level, coarse -> fine; see the folder's
    ``SOURCE.md``). No split is published: a seeded stratified test split (by the finest level) is made,
    the same rule as for a user file without a ``split`` column."""
    path = folder / file
    with utf8_errors(path), open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in ("text", *levels) if c not in (reader.fieldnames or ())]
        if missing:
            raise InputDataError(
                f"{path}: no column {', '.join(map(repr, missing))}; the file is not the published one "
                "(compare its sha256 with SOURCE.md)"
            )
        recs = list(reader)
    texts = [r["text"] for r in recs]
    labels = [tuple(r[lv] for lv in levels) for r in recs]
    rows = holdout_rows(texts, labels, TEST_FRACTION, SPLIT_SEED)
    return RawData(
        tuple(levels),
        rows,
        info={"file": file, "test_split": {"fraction": TEST_FRACTION, "seed": SPLIT_SEED, "stratified_by": levels[-1]}},
    )
