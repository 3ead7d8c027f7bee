"""Output folders that change in one step, and the checks made on them before any work.

A run directory, a zoom index or an export is a folder of files that only make sense together (a
record and the weights it names, an ``index.json`` and the FAISS files it hashes). Such a folder is
never written in place:

* :func:`atomic_dir` gives the writer an empty temporary folder beside the target
  (``.<name>.tmp-<pid>-<random>``); when the writer is done its files are flushed to disk and the
  folder takes the target's place in one step. A target that already holds one is swapped with it
  by ``renameat2(RENAME_EXCHANGE)`` (Linux), so at every instant the path holds the old folder or
  the new one; where the kernel or file system can't exchange, the old folder is renamed aside
  (``.<name>.old-<pid>-<random>``), the new one renamed in, the old one deleted. A writer that fails
  (an exception) deletes its temporary folder and leaves the target as it was.
* :func:`~fractal_embeddings.validation.check_output_dir` is the one check of a target, made by
  commands before they encode or train and again by :func:`atomic_dir` right before the swap: the path
  (or a folder above it) must
  not be a file, it must be writable, and an existing non-empty folder must hold what this writer
  makes (its ``marker`` file) and may then be replaced only with ``overwrite``. A folder holding
  anything else is never replaced, ``overwrite`` or not.

Single files (a cache entry, a record written beside others) go through :func:`atomic_write_bytes`:
a temporary file in the same folder, flushed and renamed into place. Both give what they write the
modes any new file or folder gets under the user's umask (:func:`apply_default_modes`), not the
private ``0o600`` of ``mkstemp`` or safetensors.

A writer killed outright (SIGKILL, power loss) can leave its temporary folder, or in the fallback a
folder renamed aside, next to the target. The next :func:`atomic_dir` on that target removes the
temporary folders of processes no longer running and, when the target is missing, renames the
folder that was set aside back into place. (Process ids are checked on this machine: a folder shared
between machines should not be written from two of them at once.)
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from .errors import FractalError, OutputPathError
from .validation import check_output_dir

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


# ----------------------------------------------------------------- writing
def _renameat2() -> Callable[..., int] | None:
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return None
    fn.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint)
    fn.restype = ctypes.c_int
    return fn


_RENAMEAT2 = _renameat2() if os.name == "posix" else None


def exchange(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Swap two existing paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False where the
    system or file system can't (then nothing was changed)."""
    if _RENAMEAT2 is None:
        return False
    if _RENAMEAT2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EPERM):
        return False
    raise OSError(code, os.strerror(code), str(b))


def _fsync(path: Path) -> None:
    with contextlib.suppress(OSError):  # some file systems refuse fsync on folders
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _fsync_tree(root: Path) -> None:
    for folder, _, files in os.walk(root):
        for f in files:
            _fsync(Path(folder) / f)
        _fsync(Path(folder))


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _leftovers(target: Path) -> Iterator[tuple[Path, str, int]]:
    pattern = re.compile(rf"^\.{re.escape(target.name)}\.(tmp|old)-(\d+)-[0-9a-f]+$")
    with contextlib.suppress(OSError):
        for p in target.parent.iterdir():
            m = pattern.match(p.name)
            if m:
                yield p, m.group(1), int(m.group(2))


def recover(target: str | os.PathLike) -> None:
    """Finish what killed writers left beside ``target``: restore a folder set aside when the target
    is missing, delete the temporary folders of processes that are no longer running."""
    target = Path(os.path.abspath(target))
    for p, kind, pid in sorted(_leftovers(target), key=lambda t: t[1] != "old"):
        if _alive(pid):
            continue
        if kind == "old" and not os.path.lexists(target):
            with contextlib.suppress(OSError):
                os.rename(p, target)
                continue
        shutil.rmtree(p, ignore_errors=True)


def _new_sibling(target: Path, kind: str) -> Path:
    while True:
        p = target.parent / f".{target.name}.{kind}-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            os.mkdir(p)  # the process umask applies, as for any folder the user creates
            return p
        except FileExistsError:
            continue


def move_into_place(tmp: str | os.PathLike, target: str | os.PathLike) -> None:
    """Make the complete folder ``tmp`` the folder ``target`` (same parent) in one step; an existing
    ``target`` is exchanged with it and then deleted (see the module docstring)."""
    tmp, target = Path(tmp), Path(target)
    if target.is_dir() and any(target.iterdir()):
        if exchange(tmp, target):
            shutil.rmtree(tmp, ignore_errors=True)  # tmp now holds the old folder
        else:
            aside = _new_sibling(target, "old")
            os.replace(target, aside)  # onto the empty placeholder folder
            try:
                os.rename(tmp, target)
            except BaseException:
                os.rename(aside, target)
                raise
            shutil.rmtree(aside, ignore_errors=True)
    else:
        os.replace(tmp, target)  # a missing or empty target: one rename
    _fsync(target.parent)


def current_umask() -> int:
    """The process's umask, read without changing it where the OS allows (Linux ``/proc``); elsewhere
    set and restored at once."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def default_file_mode() -> int:
    """The mode ``open()`` gives a new file: ``0o666`` less the umask (``mkstemp`` would give ``0o600``)."""
    return 0o666 & ~current_umask()


def default_dir_mode() -> int:
    """The mode ``mkdir()`` gives a new folder: ``0o777`` less the umask (``mkdtemp`` would give ``0o700``)."""
    return 0o777 & ~current_umask()


def apply_default_modes(folder: str | os.PathLike[str]) -> None:
    """Give every file under ``folder`` (and the folders) the mode a new one gets under the umask.

    For folders assembled by writers that create private files (safetensors and ``mkstemp`` write
    ``0o600``) before the folder is moved into place: a run, an index or an export is then as
    readable as anything else the user writes."""
    fmode, dmode = default_file_mode(), default_dir_mode()
    os.chmod(folder, dmode)
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            p = os.path.join(root, name)
            if not os.path.islink(p):
                os.chmod(p, dmode)
        for name in files:
            p = os.path.join(root, name)
            if not os.path.islink(p):
                os.chmod(p, fmode)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder, fsync, rename. The file gets the
    mode of any new file (``0o666`` less the umask), not ``mkstemp``'s private ``0o600``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, default_file_mode())
        else:  # Windows: no POSIX modes to speak of
            os.chmod(tmp, default_file_mode())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_dir(
    path: str | os.PathLike,
    *,
    overwrite: bool = False,
    marker: str | None = None,
    what: str = "a run",
    option: str = "--out",
    partial: Iterable[str] = (),
    error: type[FractalError] = OutputPathError,
) -> Iterator[Path]:
    """``with atomic_dir(out, marker="record.json") as tmp:`` write the folder's files into ``tmp``;
    on a clean exit it becomes ``out`` in one step (replacing what :func:`check_output_dir` allows,
    checked before and again right before the swap); on an exception ``tmp`` is deleted and ``out``
    is left as it was."""
    # a symlink to a folder: the folder it points to is replaced, the link stays
    target = Path(os.path.realpath(path) if os.path.islink(path) else os.path.abspath(path))
    checks: dict[str, Any] = dict(
        overwrite=overwrite, marker=marker, what=what, option=option, partial=tuple(partial), error=error
    )
    recover(target)
    check_output_dir(path, **checks)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_sibling(target, "tmp")
    try:
        yield tmp
        apply_default_modes(tmp)  # safetensors writes 0o600: the folder gets the umask's modes like any file
        _fsync_tree(tmp)
        check_output_dir(path, **checks)  # again: the folder may have changed meanwhile
        try:
            move_into_place(tmp, target)
        except OSError as e:  # filled between the check and the rename
            if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            raise error(
                f"{path} was filled by another writer while this one worked; choose another {option} or "
                f"pass --overwrite"
            ) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
