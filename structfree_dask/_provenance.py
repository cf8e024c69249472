"""Provenance of results: the software versions a run record or model card names."""

from __future__ import annotations

__all__ = ["software_versions"]


def software_versions() -> dict[str, str]:
    """Versions of structfree_dask, cellpose, torch and numpy.

    Examples
    --------
    >>> sorted(software_versions())
    ['cellpose', 'numpy', 'structfree_dask', 'torch']
    """
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
