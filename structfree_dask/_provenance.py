"""Provenance of results: software versions and time stamps.

Label records, run records and model cards carry the same stamp.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime

__all__ = ["software_versions", "utc_now"]


def utc_now() -> str:
    """Return the UTC time, ISO 8601 to the second (``2025-01-31T12:00:00+00:00``)."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def software_versions() -> dict[str, str]:
    """Versions of structfree_dask, cellpose, torch and numpy.

    Examples
    --------
    >>> sorted(software_versions())
    ['cellpose', 'numpy', 'structfree_dask', 'torch']
    """
    return dict(_versions())  # a copy: records may extend it


@functools.cache
def _versions() -> dict[str, str]:
    """Read the versions once per process (each field's record carries them)."""
    from importlib.metadata import PackageNotFoundError, version

    import numpy

    from . import __version__

    out = {"structfree_dask": __version__, "numpy": numpy.__version__}
    for pkg in ("cellpose", "torch"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:  # pragma: no cover
            out[pkg] = "unknown"
    return out
