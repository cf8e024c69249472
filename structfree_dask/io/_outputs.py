"""Output files outside the plate (reports, score tables): checked before work starts."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["check_output_file"]


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
