"""Writes stay inside the plate: checks of every local path the package writes.

A plate is a folder tree that other people (or programs) may have touched. Before
anything is written or deleted under it, the path of the target is walked from the
store's root: no component may be a symbolic link, and the resolved path must stay
under the resolved root. Label images that already exist are also searched for
symbolic links anywhere inside (a planted link in place of a chunk or metadata file
would otherwise be followed by the write). The store's root itself may be a link:
it is what the user named.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["UnsafePathError", "is_local", "is_inside", "checked_path", "checked_tree",
           "check_no_links", "check_writable"]


class UnsafePathError(PermissionError):
    """A write target is a symbolic link or lies outside the plate's root."""


def is_local(store: str) -> bool:
    """Return True for a path on this machine's filesystem (not a URL such as ``s3://``).

    Examples
    --------
    >>> is_local("/data/plate.zarr"), is_local("s3://bucket/plate.zarr")
    (True, False)
    """
    return "://" not in str(store)


def is_inside(path: str | os.PathLike[str], folder: str | os.PathLike[str]) -> bool:
    """Return True when the local ``path`` is ``folder`` or lies below it (links resolved).

    URLs are never inside a local folder (nor a local path inside a URL).

    Examples
    --------
    >>> is_inside("/data/p.zarr/runs", "/data/p.zarr"), is_inside("/data/r", "/data/p.zarr")
    (True, False)
    >>> is_inside("s3://b/p.zarr/x", "s3://b/p.zarr")
    False
    """
    if not (is_local(str(path)) and is_local(str(folder))):
        return False
    return Path(path).resolve().is_relative_to(Path(folder).resolve())


def checked_path(store: str, path: str) -> Path:
    """Return the local path of ``path`` inside ``store`` after checking it is safe to write.

    Parameters
    ----------
    store : str
        Root of the store (may itself be a symbolic link).
    path : str
        ``/``-separated path inside the store (``""``: the root).

    Returns
    -------
    pathlib.Path
        ``store/path`` (it need not exist yet).

    Raises
    ------
    UnsafePathError
        If a component is ``..``, absolute, or a symbolic link, or the resolved path
        leaves the root.

    Examples
    --------
    >>> import tempfile, os
    >>> root = tempfile.mkdtemp()
    >>> checked_path(root, "A/1/0/labels/cyto").name
    'cyto'
    >>> os.symlink(tempfile.mkdtemp(), root + "/A")
    >>> checked_path(root, "A/1/0/labels/cyto")
    Traceback (most recent call last):
    ...
    structfree_dask.io._safepath.UnsafePathError: refusing to write through ...
    """
    root = Path(store)
    parts = [p for p in str(path).split("/") if p]
    current = root
    for part in parts:
        if part in (".", "..") or os.sep in part or (os.altsep and os.altsep in part):
            raise UnsafePathError(f"refusing to write to {root}/{path}: {part!r} is not a "
                                  "plain name inside the plate")
        current = current / part
        if current.is_symlink():
            raise UnsafePathError(
                f"refusing to write through {current}: it is a symbolic link (to "
                f"{os.readlink(current)}); this package writes only inside the plate's own "
                "folders. Replace the link by a folder, or choose another output name")
    real_root = root.resolve()
    if not current.resolve().is_relative_to(real_root):  # pragma: no cover - links caught above
        raise UnsafePathError(f"refusing to write to {current}: it resolves outside the "
                              f"plate {real_root}")
    return current


def checked_tree(store: str, path: str) -> Path | None:
    """Check a folder the package writes into, and everything already inside it.

    :func:`checked_path` for the way from the store's root down to ``path``, then
    :func:`check_no_links` for what is inside. Stores that are not local paths are not
    checked (their API has no symbolic links).

    Returns
    -------
    pathlib.Path or None
        The folder (None for a store that is not a local path).

    Raises
    ------
    UnsafePathError
        A symbolic link on the way or inside, or a component that is not a plain name.

    Examples
    --------
    >>> import tempfile, os
    >>> root = tempfile.mkdtemp()
    >>> os.makedirs(root + "/measurements/t")
    >>> checked_tree(root, "measurements/t").name
    't'
    >>> os.symlink(tempfile.mkdtemp(), root + "/measurements/t/part.parquet")
    >>> checked_tree(root, "measurements/t")
    Traceback (most recent call last):
    ...
    structfree_dask.io._safepath.UnsafePathError: refusing to write into ...
    """
    if not is_local(store):
        return None
    folder = checked_path(store, path)
    check_no_links(folder)
    return folder


def check_no_links(folder: Path) -> None:
    """Refuse a folder tree that holds a symbolic link anywhere (files or folders).

    Raises
    ------
    UnsafePathError
        Naming the first link found.
    """
    stack = [Path(folder)]
    while stack:
        current = stack.pop()
        try:
            entries = list(os.scandir(current))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            if entry.is_symlink():
                raise UnsafePathError(
                    f"refusing to write into {folder}: {entry.path} is a symbolic link (to "
                    f"{os.readlink(entry.path)}); this package writes only inside the "
                    "plate's own folders")
            if entry.is_dir(follow_symlinks=False):
                stack.append(Path(entry.path))


def check_writable(folder: Path) -> None:
    """Refuse a folder (or its nearest existing parent) that cannot be written.

    Raises
    ------
    PermissionError
        If the filesystem is read-only or permissions forbid writing.
    """
    target = Path(folder)
    while not target.exists() and target != target.parent:
        target = target.parent
    if not os.access(target, os.W_OK):
        raise PermissionError(f"cannot write into {target}: the plate is read-only for this "
                              "user (or on a read-only filesystem); labels are written "
                              "inside the plate")
    for name in (".zattrs", ".zgroup", "zarr.json"):
        meta = target / name
        if meta.exists() and not os.access(meta, os.W_OK):
            raise PermissionError(f"cannot write {meta}: it is read-only for this user")
