"""The catalogue of built-in datasets and :func:`load_dataset`, the one entry point for data.

``load_dataset(name_or_path, levels=None, ...)`` accepts a built-in name (``fractal datasets list``)
or a path to a user file (CSV / JSONL / Parquet, see :mod:`.tabular`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import DatasetNotFoundError, TaxonomyError
from ..extras import require_table_reader
from ..validation import check_real, check_seed
from . import loaders, online
from .build import build_dataset
from .home import RemoteFile, ensure_files, get_data_home
from .taxonomy import DUPLICATES, TaxonomyDataset, check_levels


@dataclass(frozen=True)
class DatasetSpec:
    """A built-in dataset: where its raw files live, how to read them, which levels it offers."""

    name: str
    title: str
    folder: str
    reader: Callable[..., loaders.RawData]
    levels: tuple[str, ...]
    default_levels: tuple[str, ...]
    files: tuple[RemoteFile, ...] = ()
    online_only: bool = False
    options: dict = field(default_factory=dict)
    note: str = ""
    license: str = ""  # of the data, as its source states it ("" when the source states none)

    @property
    def is_flat(self) -> bool:
        return len(self.default_levels) < 2


@dataclass(frozen=True)
class DerivedTaxonomy:
    """A derived taxonomy: one CSV (``text``, then one column per level, coarse -> fine) made from files
    inside PyPI/Debian packages, described by the ``SOURCE.md`` beside it."""

    name: str
    stem: str  # the folder under the data home and the file name (``<stem>/<stem>.csv``)
    title: str
    levels: tuple[str, ...]  # every column, coarse -> fine
    license: str
    default_levels: tuple[str, ...] | None = None  # None: all of ``levels``


SOC_LEVELS = ("major_group", "sub_major_group", "minor_group", "unit_group")
DERIVED = (
    DerivedTaxonomy(
        "wordnet-nouns",
        "wordnet-nouns",
        "WordNet 3.0 nouns: lexicographer file -> depth-7 hypernym",
        ("lexname", "hypernym"),
        "WordNet 3.0 License",
    ),
    DerivedTaxonomy(
        "soc2010", "soc2010", "UK SOC 2010 job titles: major -> sub-major group", SOC_LEVELS, "OGL v3.0", SOC_LEVELS[:2]
    ),
    DerivedTaxonomy("soc2010-4level", "soc2010", "UK SOC 2010 job titles, all four levels", SOC_LEVELS, "OGL v3.0"),
    DerivedTaxonomy(
        "go-mf",
        "go-mf",
        "Gene Ontology molecular function: class -> subclass",
        ("function_class", "function_subclass"),
        "CC BY 4.0",
    ),
    DerivedTaxonomy(
        "naics",
        "naics",
        "NAICS 2022 industries: sector -> subsector (small)",
        ("sector", "subsector"),
        "US Government work",
    ),
    DerivedTaxonomy(
        "emoji",
        "emoji",
        "Unicode emoji names: group -> subgroup (short texts)",
        ("group", "subgroup"),
        "Unicode License v3",
    ),
)


@lru_cache(maxsize=1)
def _published_files() -> dict[str, tuple[RemoteFile, ...]]:
    """Published files of the shipped datasets (path, size, sha256, canonical URL) from files.json."""
    raw = json.loads(resources.files(__package__).joinpath("files.json").read_text(encoding="utf-8"))
    return {
        ds: tuple(RemoteFile(f["path"], f["url"], f["bytes"], f["sha256"]) for f in files) for ds, files in raw.items()
    }


def _specs() -> dict[str, DatasetSpec]:
    pub = _published_files()
    specs = [
        DatasetSpec(
            "clinc150",
            "CLINC150 intents (out-of-scope excluded)",
            "clinc150",
            loaders.read_clinc150,
            ("super_domain", "domain", "intent"),
            ("domain", "intent"),
            pub["clinc150"],
            license="CC BY 3.0",
        ),
        DatasetSpec(
            "clinc150-3level",
            "CLINC150, 3 levels (5 super-domains, our grouping)",
            "clinc150",
            loaders.read_clinc150,
            ("super_domain", "domain", "intent"),
            ("super_domain", "domain", "intent"),
            pub["clinc150"],
            license="CC BY 3.0",
        ),
        DatasetSpec(
            "trec",
            "TREC question classification",
            "trec",
            loaders.read_trec,
            ("coarse", "fine"),
            ("coarse", "fine"),
            pub["trec"],
        ),
        DatasetSpec(
            "newsgroups20",
            "20 Newsgroups (bydate), Rennie's 6 subject groups",
            "newsgroups20",
            loaders.read_newsgroups20,
            ("subject", "newsgroup"),
            ("subject", "newsgroup"),
            pub["newsgroups20"],
        ),
        DatasetSpec(
            "goemotions",
            "GoEmotions, single-label non-neutral rows",
            "goemotions",
            loaders.read_goemotions,
            ("sentiment", "ekman", "emotion"),
            ("sentiment", "emotion"),
            pub["goemotions"],
            license="Apache-2.0",
        ),
        DatasetSpec(
            "goemotions-3level",
            "GoEmotions, 3 levels",
            "goemotions",
            loaders.read_goemotions,
            ("sentiment", "ekman", "emotion"),
            ("sentiment", "ekman", "emotion"),
            pub["goemotions"],
            license="Apache-2.0",
        ),
        DatasetSpec(
            "hwu64",
            "HWU64 intents (fold 1)",
            "hwu64",
            loaders.read_hwu64,
            ("scenario", "intent"),
            ("scenario", "intent"),
            pub["hwu64"],
            license="CC BY 4.0",
        ),
        DatasetSpec(
            "banking77",
            "BANKING77 intents (flat: no published coarse level)",
            "banking77",
            loaders.read_banking77,
            ("intent",),
            ("intent",),
            pub["banking77"],
            license="CC BY 4.0",
            note="flat; refused for training",
        ),
    ]
    specs += [
        DatasetSpec(
            d.name,
            d.title,
            d.stem,
            loaders.read_taxonomy_csv,
            d.levels,
            d.default_levels or d.levels,
            pub[d.stem],
            options={"file": f"{d.stem}.csv", "levels": d.levels},
            license=d.license,
            note="derived taxonomy; seeded stratified test split",
        )
        for d in DERIVED
    ]
    specs += online.specs(DatasetSpec)
    return {s.name: s for s in specs}


SPECS: dict[str, DatasetSpec] = _specs()


def list_datasets(include_online_only: bool = True) -> list[DatasetSpec]:
    """The built-in datasets, shipped ones first."""
    return [s for s in SPECS.values() if include_online_only or not s.online_only]


def get_spec(name: str) -> DatasetSpec:
    try:
        return SPECS[name]
    except KeyError:
        close = [n for n in SPECS if n.startswith(name[:3].lower())]
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise DatasetNotFoundError(
            f"unknown dataset '{name}'{hint}; run `fractal datasets list` for the built-in names, or pass a "
            "path to a .csv/.jsonl/.parquet file"
        ) from None


def _looks_like_path(name: str) -> bool:
    return os.sep in name or "/" in name or Path(name).suffix.lower() in {".csv", ".tsv", ".jsonl", ".json", ".parquet"}


def _is_file_source(name: str) -> bool:
    """Whether ``name`` (checked by :func:`check_source`) is read as a user file, not a built-in name."""
    return name not in SPECS and (_looks_like_path(name) or Path(name).exists())


def check_source(name: Any) -> str:
    """``name`` (a built-in dataset name or a file path) as a string; one line for anything else."""
    if not isinstance(name, (str, os.PathLike)):
        raise DatasetNotFoundError(
            f"a dataset is a built-in name (`fractal datasets list`) or a file path, got {type(name).__name__}"
        )
    name_s = os.fspath(name)
    if not isinstance(name_s, str):  # a bytes path
        raise DatasetNotFoundError("give the dataset's file path as a string (or pathlib.Path), not bytes")
    if not name_s.strip():
        raise DatasetNotFoundError("the dataset name is empty; give a built-in name or a file path")
    if name_s not in SPECS:
        loaders.check_path(name_s, DatasetNotFoundError)
    return name_s


def check_load_options(
    text: Any, on_conflict: Any, empty: Any, on_duplicates: Any, val_fraction: Any, seed: Any
) -> None:
    """:func:`load_dataset`'s options, checked before anything is read (one line naming the fix)."""
    if not isinstance(text, str) or not text.strip():
        raise TaxonomyError(f"text must name the text column of a user file (--text), got {text!r}")
    for opt, value, allowed in (
        ("on_conflict", on_conflict, ("error", "majority")),
        ("empty", empty, ("drop", "error")),
        ("on_duplicates", on_duplicates, DUPLICATES),
    ):
        if not isinstance(value, str) or value not in allowed:
            raise TaxonomyError(f"{opt} must be {' or '.join(map(repr, allowed))}, got {value!r}")
    check_real(val_fraction, "val_fraction", lo=0.0, hi=1.0, lo_open=True, error=TaxonomyError)
    if val_fraction >= 1.0:
        raise TaxonomyError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
    check_seed(seed, error=TaxonomyError)


def load_dataset(
    name: str | os.PathLike,
    levels: Sequence[str] | None = None,
    *,
    data_home: str | os.PathLike | None = None,
    download: bool = True,
    base_url: str | None = None,
    text: str = "text",
    on_conflict: str = "error",
    empty: str = "drop",
    on_duplicates: str = "warn",
    val_fraction: float = 0.1,
    seed: int = 0,
    progress: bool = False,
    **options: Any,
) -> TaxonomyDataset:
    """Load a built-in dataset by name, or a user file by path.

    ``levels`` picks a subset of the levels (coarse -> fine), e.g. ``("ekman", "emotion")``; by
    default a built-in dataset uses its default levels and a user file needs ``levels``. ``levels``
    is a list or tuple: one string, even a comma-separated one, is refused with a one-line
    :class:`~fractal_embeddings.errors.TaxonomyError` naming the list to pass (``--levels`` is
    split on commas by the CLI, not here). ``text`` names a user file's text column; it may not be
    one of ``levels`` (the texts would be their own labels).
    ``options`` go to the reader (``include_oos=True`` for CLINC150). A user file whose texts appear
    more than once with different labels is warned about (``on_duplicates="warn"``) or refused
    (``"error"``).

    The returned dataset's ``info["load_args"]`` holds the arguments that rebuild it (with an
    absolute path for a user file), so a run record can name its data exactly.
    """
    name_s = check_source(name)
    levels = check_levels(levels)  # type: ignore[assignment]  # a tuple of names (or None) from here
    check_load_options(text, on_conflict, empty, on_duplicates, val_fraction, seed)
    is_file = _is_file_source(name_s)
    load_args = {
        "name": str(Path(name_s).resolve()) if is_file else name_s,
        "levels": list(levels) if levels else None,
        "text": text,
        "on_conflict": on_conflict,
        "empty": empty,
        "val_fraction": val_fraction,
        "seed": seed,
        **options,
    }
    if on_duplicates != "warn":
        load_args["on_duplicates"] = on_duplicates
    ds = _load(
        name_s,
        levels,
        data_home=data_home,
        download=download,
        base_url=base_url,
        text=text,
        on_conflict=on_conflict,
        empty=empty,
        on_duplicates=on_duplicates,
        val_fraction=val_fraction,
        seed=seed,
        progress=progress,
        **options,
    )
    ds.info["load_args"] = load_args
    return ds


def _load(
    name_s: str,
    levels: Sequence[str] | None,
    *,
    data_home: str | os.PathLike | None,
    download: bool,
    base_url: str | None,
    text: str,
    on_conflict: str,
    empty: str,
    on_duplicates: str,
    val_fraction: float,
    seed: int,
    progress: bool,
    **options: Any,
) -> TaxonomyDataset:
    if on_duplicates not in DUPLICATES:
        raise TaxonomyError(f"on_duplicates must be 'warn' or 'error', got {on_duplicates!r}")
    if _is_file_source(name_s):
        require_table_reader(name_s)
        if not levels:
            raise TaxonomyError(
                f"{name_s}: name the label columns, coarse -> fine "
                "(levels=['domain', 'intent'] / --levels domain,intent)"
            )
        from .tabular import read_table  # pandas: the data extra (checked just above)

        raw = read_table(Path(name_s), text=text, levels=levels, empty=empty, on_duplicates=on_duplicates)
        return build_dataset(
            Path(name_s).stem,
            raw.rows,
            raw.levels,
            on_conflict=on_conflict,
            empty=empty,
            val_fraction=val_fraction,
            seed=seed,
            info=raw.info,
        )
    spec = get_spec(name_s)
    folder = get_data_home(data_home) / spec.folder
    ensure_files(spec.name, folder, spec.files, download=download, base_url=base_url, progress=progress)
    raw = spec.reader(folder, **{**spec.options, **options})
    ds = build_dataset(
        spec.name,
        raw.rows,
        raw.levels,
        class_order=raw.class_order,
        on_conflict=on_conflict,
        empty=empty,
        val_fraction=val_fraction,
        seed=seed,
        info={"source": spec.title, "folder": str(folder), **raw.info},
    )
    return ds.select_levels(tuple(levels) if levels else spec.default_levels)
