"""Nuclei and cytoplasm segmentation without structural stains, at plate scale, on Dask.

The common entry points are importable from here::

    from structfree_dask import SegmentationConfig, open_plate, segment, segment_array
    from structfree_dask import simulate_plate

They are imported on first use, so ``import structfree_dask`` (and the
``structfree-dask`` command line) stays light: no torch, cellpose or zoo until a
name needs them.

Layers, each importing only from those below it: :mod:`.cli` → :mod:`.jobs` →
:mod:`.zoo`, :mod:`.engine` → :mod:`.pipeline`, :mod:`.simulate` → :mod:`.backbones`,
:mod:`.evaluation` → :mod:`.io`, :mod:`.runtime` → :mod:`.config` → :mod:`.limits`.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("structfree-dask")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

if TYPE_CHECKING:
    from .config import SegmentationConfig
    from .engine import segment
    from .io import open_plate
    from .pipeline.segment import segment_array
    from .simulate import simulate_plate

#: Public name -> submodule defining it (imported on first use).
_SOURCES: dict[str, str] = {
    "SegmentationConfig": "config",
    "open_plate": "io",
    "segment": "engine",
    "segment_array": "pipeline.segment",
    "simulate_plate": "simulate",
}

__all__ = [
    "__version__",
    "SegmentationConfig",
    "open_plate",
    "segment",
    "segment_array",
    "simulate_plate",
]


def __getattr__(name: str) -> Any:
    """Import a public name's submodule on first use."""
    try:
        source = _SOURCES[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f".{source}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
