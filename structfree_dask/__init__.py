"""Nuclei and cytoplasm segmentation without structural stains, at plate scale, on Dask."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("structfree-dask")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = ["__version__"]
