"""The data home (where raw dataset files live) and verified, atomic downloads.

* ``get_data_home()``: ``$FRACTAL_DATA`` when set, else ``<user data dir>/fractal-embeddings/datasets``.
  Each built-in dataset reads its raw files from ``<data home>/<folder>/`` in their published format.
* ``ensure_files()``: every missing file is downloaded from its canonical public URL (or from
  ``$FRACTAL_DATA_URL/<folder>/<path>`` when a mirror base URL is set), checked against the published
  byte size and sha256, and moved into place atomically; a failed or mismatching download leaves
  nothing behind. Offline, it raises one line naming the files and the folder to put them in.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from ..atomic import default_file_mode
from ..errors import ChecksumError, DataFilesMissingError

DATA_ENV = "FRACTAL_DATA"
URL_ENV = "FRACTAL_DATA_URL"
DOWNLOAD_TIMEOUT_S = 60


@dataclass(frozen=True)
class RemoteFile:
    """A raw file of a dataset: path inside the dataset folder, canonical URL (``""`` for a derived file
    that no public URL serves: only a mirror set by ``$FRACTAL_DATA_URL`` can fetch it), size and sha256.

    ``sha256``/``bytes`` are ``None`` for online-only datasets whose files could not be fetched when
    this library was written; those downloads are reported as unverified.
    """

    path: str
    url: str
    bytes: int | None = None
    sha256: str | None = None


def get_data_home(data_home: str | os.PathLike | None = None) -> Path:
    """The folder holding raw datasets: the argument, else ``$FRACTAL_DATA``, else a user data dir."""
    if data_home is not None:
        return Path(data_home).expanduser()
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_data_dir("fractal-embeddings")) / "datasets"


def _file_ok(path: Path, rf: RemoteFile) -> bool:
    try:
        return path.is_file() and (rf.bytes is None or path.stat().st_size == rf.bytes)
    except OSError:
        return False


def download_file(url: str, dest: Path, rf: RemoteFile) -> None:
    """Download ``url`` to ``dest`` atomically, verifying size and sha256 before the final rename."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        os.chmod(tmp, default_file_mode())  # the mode of any new file, not mkstemp's private 0o600
        h = hashlib.sha256()
        size = 0
        req = urllib.request.Request(url, headers={"User-Agent": "fractal-embeddings"})
        with urllib.request.urlopen(req, timeout=DOWNLOAD_TIMEOUT_S) as resp, os.fdopen(fd, "wb") as out:
            while block := resp.read(1 << 20):
                h.update(block)
                size += len(block)
                out.write(block)
        if rf.bytes is not None and size != rf.bytes:
            raise ChecksumError(
                f"{url}: got {size} bytes, expected {rf.bytes}; the download is incomplete or the file changed"
            )
        if rf.sha256 is not None and h.hexdigest() != rf.sha256:
            raise ChecksumError(f"{url}: sha256 {h.hexdigest()} does not match the published {rf.sha256}")
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def ensure_files(
    dataset: str,
    folder: Path,
    files: tuple[RemoteFile, ...],
    *,
    download: bool = True,
    base_url: str | None = None,
    progress: bool = False,
) -> Path:
    """Make sure every file of a dataset is in ``folder``; download what is missing.

    Returns ``folder``. Raises :class:`DataFilesMissingError` (one line) when files are missing and
    cannot be downloaded, :class:`ChecksumError` when a download does not match.
    """
    missing = [rf for rf in files if not _file_ok(folder / rf.path, rf)]
    if not missing:
        return folder
    base_url = base_url if base_url is not None else os.environ.get(URL_ENV)
    names = ", ".join(rf.path for rf in missing[:4]) + (f" (+{len(missing) - 4} more)" if len(missing) > 4 else "")
    hint = f"put them in {folder} or set {DATA_ENV} to a folder that holds {folder.name}/"
    if not download:
        raise DataFilesMissingError(f"{dataset}: missing {names}; {hint}")
    if not base_url and not all(rf.url for rf in missing):
        raise DataFilesMissingError(
            f"{dataset}: missing {names}, a derived file with no public URL (its SOURCE.md says how it was made); "
            f"{hint}, or set {URL_ENV} to a mirror"
        )
    from tqdm.auto import tqdm

    with tqdm(total=len(missing), desc=f"download {dataset}", unit="file", disable=not progress, leave=False) as bar:
        for rf in missing:
            url = f"{base_url.rstrip('/')}/{folder.name}/{rf.path}" if base_url else rf.url
            try:
                download_file(url, folder / rf.path, rf)
            except (urllib.error.URLError, OSError, TimeoutError) as e:
                reason = getattr(e, "reason", None) or e
                raise DataFilesMissingError(
                    f"{dataset}: missing {names} and the download from {url} failed ({reason}); {hint}"
                ) from None
            bar.update(1)
    return folder
