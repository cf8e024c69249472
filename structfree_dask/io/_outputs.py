"""Output files outside the plate (reports, score tables): checked before work starts."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ._safepath import is_inside

__all__ = ["check_output_file", "check_output_folder", "replacing"]


def check_output_file(path: str | os.PathLike[str], what: str) -> Path:
    """Check that a file can be written at ``path``, without creating anything.

    The folder must already exist (nothing is created at any depth), the path must
    not be a folder, and both must be writable.

    Parameters
    ----------
    path : str or path-like
        The file to write.
    what : str
        What it is, for the message (e.g. ``"--csv"``).

    Returns
    -------
    pathlib.Path

    Raises
    ------
    FileNotFoundError
        If the folder does not exist.
    IsADirectoryError
        If the path is a folder.
    PermissionError
        If the file or its folder cannot be written.

    Examples
    --------
    >>> import tempfile
    >>> check_output_file(tempfile.mkdtemp() + "/scores.csv", "--csv").name
    'scores.csv'
    >>> check_output_file("/no/such/folder/r.html", "--performance-report")
    Traceback (most recent call last):
    ...
    FileNotFoundError: --performance-report /no/such/folder/r.html: folder /no/such/folder does not exist; create it first
    """  # noqa: E501
    p = Path(path)
    if not str(path):
        raise FileNotFoundError(f"{what}: expected a file path; got ''")
    if p.is_dir():
        raise IsADirectoryError(f"{what} {p}: is a folder; expected a file path")
    folder = p.parent
    if not folder.is_dir():
        raise FileNotFoundError(f"{what} {p}: folder {folder} does not exist; create it first")
    if p.exists() and not os.access(p, os.W_OK):
        raise PermissionError(f"{what} {p}: the file is not writable")
    if not os.access(folder, os.W_OK):
        raise PermissionError(f"{what} {p}: folder {folder} is not writable")
    return p


def check_output_folder(path: str | os.PathLike[str], what: str,
                        outside: str | os.PathLike[str] | None = None) -> Path:
    """Check that files can be written into the folder ``path``, without creating anything.

    The folder may not exist yet (it is created when writing); if it exists it must be a
    folder. The nearest existing folder on its way must be writable, and the folder must
    not lie inside ``outside`` (a local plate: outputs that are not the plate's stay out).

    Raises
    ------
    FileNotFoundError
        An empty path.
    NotADirectoryError
        The path, or a component on its way, is a file.
    PermissionError
        The folder (or where it would be created) cannot be written.
    ValueError
        The folder is inside ``outside``.

    Examples
    --------
    >>> import tempfile
    >>> check_output_folder(tempfile.mkdtemp() + "/report", "--output").name
    'report'
    >>> check_output_folder("", "--output")
    Traceback (most recent call last):
    ...
    FileNotFoundError: --output: expected a folder path; got ''
    """
    if not str(path):
        raise FileNotFoundError(f"{what}: expected a folder path; got ''")
    p = Path(path)
    existing = p
    while not existing.exists() and existing != existing.parent:
        if existing.is_symlink():  # a link to nowhere: creating the folder would fail
            raise NotADirectoryError(f"{what} {p}: {existing} is a broken symbolic link")
        existing = existing.parent
    if not existing.is_dir():
        raise NotADirectoryError(f"{what} {p}: {existing} is a file, not a folder; expected "
                                 "a folder for the output")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PermissionError(f"{what} {p}: folder {existing} is not writable")
    if outside is not None and is_inside(p, outside):
        raise ValueError(f"{what} {p} is inside the plate {outside}; choose a folder outside "
                         "it")
    return p


@contextmanager
def replacing(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Write a file under a temporary name beside it, then rename it into place.

    The rename replaces whatever is at ``path`` (a symbolic link included: the link is
    replaced, what it points to is never written), and a failure leaves nothing behind.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "page.html"
    >>> with replacing(target) as tmp:
    ...     _ = tmp.write_text("<p>hi</p>")
    >>> target.read_text()
    '<p>hi</p>'
    """
    target = Path(path)
    # hidden, and with the target's suffix (writers that choose a format by it still can)
    tmp = target.with_name(f".{target.stem}.{uuid.uuid4().hex}.tmp{target.suffix}")
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
