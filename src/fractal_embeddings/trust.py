"""What the library trusts in a folder it reads: module types, code files, links and paths.

fractal-embeddings runs only code it ships. A sentence-transformers folder (a ``--model`` folder or
hub snapshot, a fine-tuned run, an export) is loaded only when every module type in its
``modules.json`` is

* a sentence-transformers built-in (``sentence_transformers.*``, imported from the installed
  package), or
* this library's head: ``fractal_embeddings.st.FractalHead``, or ``fractal_head.FractalHead`` (the
  type exported folders carry) -- and then every ``fractal_head.py`` in the folder must be
  byte-identical to the file this package ships. The installed class is used, never the folder's file.

and no ``config.json`` asks transformers for custom code (``auto_map``). Anything else is refused in
one line before any work; the folder is then loaded with ``trust_remote_code=False``.

Copies of run and model folders never follow a link (:func:`check_no_links` refuses a folder with
one before any work), and a file named by a record must sit inside its run folder
(:func:`file_inside`).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import FractalError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer
    from torch import nn

# the head's code file as the package ships it (read, never imported here: checking a folder needs no torch),
# and the type exported folders give it; fractal_head.py names both the same way (tested)
HEAD_CODE = Path(__file__).with_name("fractal_head.py")
HEAD_TYPE = "fractal_head.FractalHead"
OWN_TYPES = ("fractal_embeddings.st.FractalHead", HEAD_TYPE)
_BUILT_IN = re.compile(r"sentence_transformers(\.[A-Za-z_][A-Za-z0-9_]*)+")
TRUST_NOTE = "fractal-embeddings runs no code from a model folder"


class UntrustedFolderError(FractalError, ValueError):
    """A folder whose loading would run code the library does not ship, or whose links or paths leave it."""


def _read_modules(folder: Path) -> list[dict[str, Any]]:
    path = folder / "modules.json"
    try:
        modules = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise UntrustedFolderError(f"{path}: not a readable modules.json ({e}); save the model again") from None
    if not isinstance(modules, list) or not all(
        isinstance(m, dict) and isinstance(m.get("type"), str) and isinstance(m.get("path", ""), str) for m in modules
    ):
        raise UntrustedFolderError(f"{path}: not a list of modules with a type and a path; save the model again")
    for m in modules:
        sub = str(m.get("path") or "")
        if Path(sub).is_absolute() or ".." in Path(sub).parts or "\\" in sub:
            raise UntrustedFolderError(
                f"{path}: module path {sub!r} leaves the model folder; a module's files sit in a subfolder of it"
            )
    return modules


def _check_code_files(folder: Path, modules: list[dict[str, Any]]) -> None:
    """Every ``fractal_head.py`` at the root or in a module's subfolder equals the shipped file."""
    ours = HEAD_CODE.read_bytes()
    subs = {str(m.get("path") or "") for m in modules}
    for sub in sorted(subs):
        path = folder / sub / HEAD_CODE.name  # read through a link (a hub snapshot's files are links to blobs)
        if (path.exists() or path.is_symlink()) and (not path.is_file() or path.read_bytes() != ours):
            raise UntrustedFolderError(
                f"{path}: differs from the fractal_head.py this fractal-embeddings ships, and {TRUST_NOTE}; "
                f"export the run again with this version (or load the folder with sentence-transformers "
                f"yourself, if you trust its code)"
            )


def check_model_folder(folder: str | os.PathLike) -> bool:
    """Check a sentence-transformers folder against the allow-list above (see the module docstring).
    Returns whether it holds this library's head (one of :data:`OWN_TYPES`)."""
    folder = Path(folder)
    if not (folder / "modules.json").exists():  # a bare transformers folder: Transformer + mean pooling
        _check_auto_map(folder, [{"path": ""}])
        return False
    modules = _read_modules(folder)
    own = False
    for m in modules:
        t = m["type"]
        if t in OWN_TYPES:
            own = True
        elif not _BUILT_IN.fullmatch(t):
            raise UntrustedFolderError(
                f"{folder}: modules.json names the module type {t!r}, which is neither a sentence-transformers "
                f"built-in nor fractal-embeddings' FractalHead, and {TRUST_NOTE}; load it with "
                f"sentence-transformers yourself if you trust its code"
            )
    _check_code_files(folder, modules)
    _check_auto_map(folder, modules)
    return own


def _check_auto_map(folder: Path, modules: list[dict[str, Any]]) -> None:
    """No module's ``config.json`` maps its model to custom code (transformers' ``auto_map``)."""
    for sub in {str(m.get("path") or "") for m in modules}:
        config = folder / sub / "config.json"
        try:
            data = json.loads(config.read_text(encoding="utf-8")) if config.is_file() else {}
        except (OSError, ValueError):
            continue  # not ours to judge: transformers reports an unreadable config when it loads it
        if isinstance(data, dict) and data.get("auto_map"):
            raise UntrustedFolderError(
                f"{config}: asks transformers for custom model code (auto_map), and {TRUST_NOTE}; use a model "
                f"whose architecture transformers ships"
            )


def load_model_folder(
    folder: str | os.PathLike,
    *,
    device: str = "cpu",
    truncate_dim: int | None = None,
    head_class: type[nn.Module] | None = None,
) -> SentenceTransformer:
    """``SentenceTransformer(folder)`` with ``trust_remote_code=False``: checked by
    :func:`check_model_folder`, this library's head types loaded as ``head_class`` (default: the
    installed :class:`fractal_embeddings.st.FractalHead`, through :func:`fractal_embeddings.st.load_model_folder`;
    this layer's default is the plain module of :mod:`~fractal_embeddings.fractal_head`, which embeds the same)."""
    # torch and sentence-transformers load only here: checking a folder needs neither
    import sentence_transformers
    from sentence_transformers import SentenceTransformer
    from torch import nn

    from .fractal_head import FractalHead

    own = check_model_folder(folder)
    classes = dict.fromkeys(OWN_TYPES, head_class or FractalHead) if own else None
    has_modules = (Path(folder) / "modules.json").exists()
    for t in sorted({m["type"] for m in _read_modules(Path(folder))} if has_modules else set()):
        if t not in OWN_TYPES:
            cls = _built_in_class(t)
            if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
                raise UntrustedFolderError(
                    f"{folder}: module type {t!r} is not a sentence-transformers module (sentence-transformers "
                    f"{sentence_transformers.__version__}); save the model again with this version"
                )
    kwargs: dict[str, Any] = {
        "device": device,
        "local_files_only": True,
        "trust_remote_code": False,
        "truncate_dim": truncate_dim,
    }
    if classes is None:
        return SentenceTransformer(str(folder), **kwargs)
    load = getattr(SentenceTransformer, "_load_with_module_classes", None)
    if load is None:  # sentence-transformers < 6 (the package requires >= 6)
        raise UntrustedFolderError(
            f"loading {folder} needs sentence-transformers >= 6.0, found {sentence_transformers.__version__}: "
            f'pip install "sentence-transformers>=6,<7"'
        )
    model: SentenceTransformer = load(str(folder), classes, **kwargs)
    return model


def _built_in_class(ref: str) -> Any:
    from sentence_transformers.util import import_from_string

    try:
        return import_from_string(ref)
    except (ImportError, AttributeError, ValueError):
        return None


# ------------------------------------------------------------------ links and paths
def check_no_links(folder: str | os.PathLike, what: str = "folder") -> None:
    """Refuse (one line) a folder holding a symbolic link anywhere inside: copying it would follow the
    link out of the folder (or fail on a dangling one)."""
    folder = Path(folder)
    for root, dirs, files in os.walk(folder, followlinks=False):
        for name in (*dirs, *files):
            path = Path(root) / name
            if path.is_symlink():
                raise UntrustedFolderError(
                    f"{path}: a symbolic link inside the {what} {folder}; fractal-embeddings never copies a "
                    f"link out of a run or model folder: replace it with the file itself, or remove it"
                )


def file_inside(folder: str | os.PathLike, name: str, what: str = "file") -> Path:
    """``folder / name`` when ``name`` is a plain file name of a regular file (not a link) directly in
    ``folder``; anything else (a path, ``..``, an absolute name, a device, a folder) is refused."""
    folder = Path(folder)
    if not name or name in (".", "..") or "/" in name or "\\" in name or Path(name).is_absolute():
        raise UntrustedFolderError(
            f"{folder}: the {what} {name!r} is not a file name inside the run folder; a record names its "
            f"files by their bare names (train the run again)"
        )
    path = folder / name
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise UntrustedFolderError(
            f"{path}: the {what} is a link or not a regular file; put the run's own file there (train the run again)"
        )
    return path
