"""Local copies of files kept in an object store (model weights), cached per user.

Cellpose loads weights from a local file, so a weights file at a URL is copied to this
machine once and kept in a per-user cache, named by the first 16 hex digits of its
SHA-256 (the checksum model cards and run records carry): ``<cache>/<sha256>/<name>``.
A copy is downloaded to a temporary file next to its place, checked against the
expected checksum, and renamed into place, so processes on one machine that fetch the
same file at once never see a partial copy. The cache folder is
``$STRUCTFREE_DASK_CACHE``, else ``$XDG_CACHE_HOME/structfree-dask``, else
``~/.cache/structfree-dask``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import uuid
from pathlib import Path

from ._location import basename, filesystem, is_url, redact

__all__ = ["cache_dir", "local_copy", "CACHE_ENV", "SHA256_DIGITS"]

logger = logging.getLogger(__name__)

#: Environment variable naming the cache folder.
CACHE_ENV = "STRUCTFREE_DASK_CACHE"
#: Hex digits of the SHA-256 that name a file (as in model cards and run records).
SHA256_DIGITS = 16


def cache_dir() -> Path:
    """Return the per-user cache folder (not created here)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path("~/.cache").expanduser())
    return Path(base) / "structfree-dask"


def local_copy(url: str, sha256: str | None = None, *, cache: str | Path | None = None,
               kind: str = "weights") -> Path:
    """Return a local copy of a file at a URL, downloading it when not cached yet.

    Parameters
    ----------
    url : str
        The file (``s3://bucket/zoo/models/m/weights.pth``). A local path is returned
        as it is.
    sha256 : str, optional
        Expected checksum (the first 16 or more hex digits of the SHA-256). With it, a
        cached copy is used without asking the store; a download that does not match
        is an error. Without it, the file is downloaded and kept under its checksum.
    cache : str or Path, optional
        Cache folder (default :func:`cache_dir`).
    kind : str
        Subfolder of the cache (``weights``).

    Returns
    -------
    Path
        ``<cache>/<kind>/<sha256>/<file name>``.

    Raises
    ------
    ValueError
        If the downloaded file does not have the expected checksum.
    FileNotFoundError
        If nothing is at the URL.
    """
    if not is_url(url):
        return Path(url)
    root = Path(cache) if cache is not None else cache_dir()
    folder = root / kind
    name = basename(url) or "file"
    expected = sha256.lower()[:SHA256_DIGITS] if sha256 else None
    if expected:
        cached = folder / expected / name
        if cached.is_file():
            return cached
    folder.mkdir(parents=True, exist_ok=True)
    fs, path = filesystem(url)
    tmp = folder / f".download-{uuid.uuid4().hex}"
    digest = hashlib.sha256()
    try:
        try:
            with fs.open(path, "rb") as src, open(tmp, "wb") as dst:
                for block in iter(lambda: src.read(1 << 20), b""):
                    digest.update(block)
                    dst.write(block)
        except FileNotFoundError:
            raise FileNotFoundError(f"no file at {redact(url)}") from None
        got = digest.hexdigest()[:SHA256_DIGITS]
        if expected and got != expected:
            raise ValueError(f"{redact(url)} has checksum {got}, expected {expected} (the "
                             "file changed in the store after its card was written?)")
        target = folder / got / name
        target.parent.mkdir(exist_ok=True)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    logger.info("copied %s to %s", redact(url), target)
    return target
