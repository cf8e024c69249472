"""Where a plate (or a zoo) lives: a local folder or the URL of an object store.

A location is a path on this machine (``/data/plate.zarr``) or a URL of any protocol
fsspec knows (``s3://bucket/plate.zarr``, ``gs://...``, ``az://...``). Credentials and
endpoints come from the standard configuration of the protocol (for S3: the
``AWS_*`` environment variables, ``~/.aws``, or ``FSSPEC_S3_*``), never from a URL
written in a job file or a log: messages name a location through :func:`redact`.

Every function here takes either kind; the rest of the package asks these functions
(not :mod:`pathlib`) whether something exists, joins locations and deletes trees.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

__all__ = ["StoreError", "is_url", "as_location", "redact", "join", "basename", "exists",
           "remove_tree", "filesystem", "check_store", "write_text", "upload", "prune",
           "concurrently", "store_files", "IO_THREADS"]

logger = logging.getLogger(__name__)

#: Threads that read or write the small files of one step at once (:func:`concurrently`).
IO_THREADS = 8

T = TypeVar("T")
R = TypeVar("R")


class StoreError(ConnectionError):
    """An object store cannot be used: unreachable, refused, missing, or unsupported."""


def _local_urls_make_folders() -> None:
    """Let ``file://`` URLs write into folders that do not exist yet, as object stores do.

    fsspec's local filesystem creates a file's parent folders only when asked
    (``auto_mkdir``); zarr, and the writes here, reach ``file://`` URLs through it, so a new
    label image or a report under a ``file://`` plate failed. Set once per process (the
    driver and the workers import this module), where the user's fsspec configuration does
    not set it.
    """
    import fsspec.config

    fsspec.config.conf.setdefault("file", {}).setdefault("auto_mkdir", True)


_local_urls_make_folders()


def is_url(location: str | os.PathLike[str]) -> bool:
    """Return True for a URL such as ``s3://bucket/plate.zarr``, False for a local path.

    Examples
    --------
    >>> is_url("s3://bucket/plate.zarr"), is_url("/data/plate.zarr")
    (True, False)
    """
    return "://" in str(location)


def as_location(location: str | os.PathLike[str]) -> str | Path:
    """Return a local path as a :class:`~pathlib.Path` and a URL as it is (a ``str``).

    Examples
    --------
    >>> as_location("s3://bucket/plate.zarr"), as_location("/data/plate.zarr")
    ('s3://bucket/plate.zarr', PosixPath('/data/plate.zarr'))
    """
    return str(location) if is_url(location) else Path(location)


def redact(location: str | os.PathLike[str]) -> str:
    """Return the location without user name, password or query (safe to print).

    Examples
    --------
    >>> redact("s3://key:secret@bucket/plate.zarr?token=x")
    's3://bucket/plate.zarr'
    >>> redact("/data/plate.zarr")
    '/data/plate.zarr'
    """
    text = str(location)
    if not is_url(text):
        return text
    parts = urlsplit(text)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def join(location: str | os.PathLike[str], *parts: str) -> str:
    """Join ``/``-separated parts to a location (a URL stays a URL).

    Examples
    --------
    >>> join("s3://bucket/plate.zarr", "A/1", "0")
    's3://bucket/plate.zarr/A/1/0'
    >>> join("/data/plate.zarr", "A/1")
    '/data/plate.zarr/A/1'
    """
    text = str(location)
    rest = "/".join(p.strip("/") for p in parts if p and p.strip("/"))
    if not rest:
        return text
    return f"{text.rstrip('/')}/{rest}"


def basename(location: str | os.PathLike[str]) -> str:
    """Return the last component of a location.

    Examples
    --------
    >>> basename("s3://bucket/runs/plate.zarr/"), basename("/data/plate.zarr")
    ('plate.zarr', 'plate.zarr')
    """
    text = str(location)
    if is_url(text):
        return PurePosixPath(urlsplit(text).path.rstrip("/") or "/").name or urlsplit(text).netloc
    return Path(text).name


def filesystem(location: str) -> tuple[Any, str]:
    """Return the fsspec filesystem of a URL and the path inside it.

    Raises
    ------
    StoreError
        If the protocol is unknown or its fsspec package is not installed (the message
        says which package to install).
    """
    import fsspec

    try:
        return fsspec.core.url_to_fs(location)
    except ImportError as err:
        raise StoreError(f"cannot open {redact(location)}: {err}") from None
    except ValueError as err:  # unknown protocol
        raise StoreError(f"cannot open {redact(location)}: {err}") from None


def exists(location: str | os.PathLike[str]) -> bool:
    """Return True if something (a folder, a prefix or a file) is at the location."""
    text = str(location)
    if not is_url(text):
        return Path(text).exists()
    fs, path = filesystem(text)
    fs.invalidate_cache(path)
    return bool(fs.exists(path))


def remove_tree(location: str | os.PathLike[str]) -> None:
    """Delete everything at a location (a local folder, or every object under a prefix).

    Object stores are cleared through their own API (a recursive delete), not through a
    local path; nothing happens if the location does not exist.
    """
    text = str(location)
    if not is_url(text):
        if Path(text).exists():
            shutil.rmtree(text)
        return
    fs, path = filesystem(text)
    fs.invalidate_cache(path)
    if not fs.exists(path):
        return
    found = fs.find(path, withdirs=True, detail=True)  # the folders, for a store keeping them
    fs.rm(path, recursive=True)
    fs.invalidate_cache(path)
    if fs.exists(path):  # a store that keeps folders (SeaweedFS): the emptied ones, deepest first
        folders = sorted((k for k, v in found.items() if v.get("type") == "directory"),
                         key=lambda k: k.count("/"), reverse=True)
        for folder in [*folders, path]:
            with contextlib.suppress(FileNotFoundError):
                fs.rm(folder)
        fs.invalidate_cache(path)


def write_text(location: str | os.PathLike[str], text: str) -> None:
    """Write a text file at a location (its folder is created locally when missing)."""
    target = str(location)
    if not is_url(target):
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        Path(target).write_text(text, encoding="utf-8")
        return
    fs, path = filesystem(target)
    fs.pipe_file(path, text.encode("utf-8"))


def concurrently(fn: Callable[[T], R], items: Iterable[T], *,
                 threads: int = IO_THREADS) -> list[R]:
    """Return ``[fn(item) for item in items]``, the calls made by up to ``threads`` threads.

    For many small reads or writes, each mostly waiting on its file or object store. The
    results keep the order of ``items``; the first error is raised once every call ended.

    Examples
    --------
    >>> concurrently(len, ["a", "bb", "ccc"])
    [1, 2, 3]
    """
    from concurrent.futures import ThreadPoolExecutor

    todo = list(items)
    if len(todo) < 2 or threads < 2:
        return [fn(item) for item in todo]
    with ThreadPoolExecutor(min(threads, len(todo)), thread_name_prefix="io") as pool:
        futures = [pool.submit(fn, item) for item in todo]
    return [f.result() for f in futures]


def store_files(location: str | os.PathLike[str], files: dict[str, bytes]) -> None:
    """Store files (relative key -> bytes) under a location, all at once.

    Locally the files are written by :func:`concurrently` (their folders made); in an
    object store with one ``pipe`` call, which fsspec's object stores run concurrently.
    For the few dozen small metadata files of a zarr group made in memory (written there
    by zarr, stored here without zarr's existence checks: one request per file).
    """
    text = str(location)
    if is_url(text) and not text.startswith("file://"):
        fs, root = filesystem(text)
        fs.pipe({f"{root.rstrip('/')}/{key}": data for key, data in files.items()})
        return
    folder = Path(text.removeprefix("file://"))

    def put(item: tuple[str, bytes]) -> None:
        target = folder / item[0]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(item[1])

    concurrently(put, list(files.items()))


def upload(local: str | os.PathLike[str], location: str | os.PathLike[str]) -> None:
    """Copy a local file to a location (a local path or an object store URL)."""
    target = str(location)
    if not is_url(target):
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local, target)
        return
    fs, path = filesystem(target)
    fs.put_file(str(local), path)


def prune(location: str | os.PathLike[str], keep: Iterable[str],
          match: Callable[[str], bool]) -> list[str]:
    """Delete the files directly in a folder (or under a prefix) that ``match`` but are not kept.

    For outputs written again into the same place: once the new files are up, the ones an
    earlier run wrote and this one did not (a page for a well the plate no longer has) go.
    Files ``match`` does not claim are left alone; nothing happens if the location does not
    exist.

    Parameters
    ----------
    location : str or path-like
        A local folder or an object store prefix.
    keep : iterable of str
        Names (not paths) of the files to keep.
    match : callable
        ``match(name)`` is true for the names this output owns.

    Returns
    -------
    list of str
        The names deleted, sorted.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> for name in ("page-1.html", "page-2.html", "notes.txt"):
    ...     _ = (folder / name).write_text("x")
    >>> prune(folder, ["page-1.html"], lambda n: n.startswith("page-"))
    ['page-2.html']
    >>> sorted(p.name for p in folder.iterdir())
    ['notes.txt', 'page-1.html']
    """
    kept = set(keep)
    text = str(location)
    if not is_url(text):
        folder = Path(text)
        names = [p.name for p in folder.iterdir() if p.is_file()] if folder.is_dir() else []
        stale = sorted(n for n in names if match(n) and n not in kept)
        for name in stale:
            (folder / name).unlink(missing_ok=True)
        return stale
    fs, path = filesystem(text)
    fs.invalidate_cache(path)
    try:
        present = fs.ls(path, detail=True)
    except FileNotFoundError:
        return []
    by_name = {e["name"].rstrip("/").rsplit("/", 1)[-1]: e["name"] for e in present
               if e.get("type") == "file"}
    stale = sorted(n for n in by_name if match(n) and n not in kept)
    if stale:
        fs.rm([by_name[n] for n in stale])
    return stale


def _describe(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) < 300 else text[:297] + "..."


def check_store(location: str | os.PathLike[str], *, write: bool = False,
                must_exist: bool = True) -> None:
    """Check, before any work, that a location can be read (and written) as needed.

    For a URL this talks to the store once: it lists the location (an unreachable
    endpoint, refused credentials or a missing bucket fail here) and, with ``write``,
    writes and deletes a small probe object (a store that refuses writes fails here).
    Local paths are left to the local checks (existence, links, permissions).

    Parameters
    ----------
    location : str or path-like
    write : bool
        Also check that objects can be written there.
    must_exist : bool
        Require something at the location (a plate to read); False for a new plate.

    Raises
    ------
    StoreError
        One line naming the location (without secrets) and what the store answered.
    """
    text = str(location)
    if not is_url(text):
        return
    where = redact(text)
    fs, path = filesystem(text)
    bucket = path.split("/", 1)[0]
    try:
        fs.invalidate_cache(path)
        found = fs.exists(path)
        if not found and bucket != path and not fs.exists(bucket):
            raise StoreError(f"cannot use {where}: the bucket {bucket!r} does not exist")
        fs.ls(path if found else bucket, detail=False)
    except StoreError:
        raise
    except FileNotFoundError:
        raise StoreError(f"cannot use {where}: the bucket {bucket!r} does not exist") from None
    except PermissionError as err:
        raise StoreError(f"cannot use {where}: the store refused the credentials "
                         f"({_describe(err)})") from None
    except Exception as err:  # noqa: BLE001 - connection errors have no common base
        raise StoreError(f"cannot reach the store of {where}: {_describe(err)}") from None
    if must_exist and not found:
        raise StoreError(f"expected an OME-Zarr plate or image at {where}; nothing is there")
    if write:
        probe = f"{path.rstrip('/')}/.structfree-dask-write-check-{uuid.uuid4().hex[:12]}"
        try:
            fs.pipe_file(probe, b"")
            fs.rm_file(probe)
        except Exception as err:  # noqa: BLE001 - PermissionError, or the client's own
            raise StoreError(f"cannot write into {where}: the store refused the write "
                             f"({_describe(err)})") from None
        finally:
            fs.invalidate_cache(path)
