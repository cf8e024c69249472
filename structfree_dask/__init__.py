"""Nuclei and cytoplasm segmentation without structural stains, at plate scale, on Dask.

The common entry points are importable from here::

    from structfree_dask import SegmentationConfig, open_plate, segment, segment_array
    from structfree_dask import simulate_plate

They are imported on first use, so ``import structfree_dask`` (and the
``structfree-dask`` command line) stays light: no torch, cellpose or zoo until a
name needs them.

Layers, each importing only from those below it (``tests/test_layout.py``): :mod:`.cli`
→ :mod:`.jobs` → :mod:`.zoo` → :mod:`.engine` → :mod:`.pipeline`, :mod:`.simulate` →
:mod:`.backbones`, :mod:`.evaluation` → :mod:`.io`, :mod:`.runtime` → :mod:`.config` →
:mod:`.limits`.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

import lazy_loader

try:
    __version__ = version("structfree-dask")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

#: Submodule -> the public names it defines (imported on first use).
__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs={
    "config": ["SegmentationConfig"],
    "io": ["open_plate"],
    "engine": ["segment"],
    "pipeline.segment": ["segment_array"],
    "simulate": ["simulate_plate"],
})
__all__ += ["__version__"]  # the same list that __dir__ reads
