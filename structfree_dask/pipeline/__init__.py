"""Numpy-level kernels of the segmentation, without Dask.

:mod:`.normalize` (percentile normalization), :mod:`.tiling` (field geometry: network
lattice, regions, halos), :mod:`.flows` (per-region flows, Flow Averaging),
:mod:`.integrate` (flow integration with the one dynamics rule, cell ownership),
:mod:`.stitching` (owned patches pasted into blocks), :mod:`.fusion` (mask-fusion
baselines) and :mod:`.segment` (the one in-process Flow Averaging: ``segment_array``,
``channel_flows``, and the model rules the engine shares).

Public names are imported from their module on first use, so that importing one
light module (such as :mod:`.tiling`) does not import scipy and scikit-image.
``normalize`` names the module here; the function is
:func:`structfree_dask.pipeline.normalize.normalize`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .flows import (
        FLOW_DTYPE,
        FlowContribution,
        assemble_flows,
        average_flows,
        region_contribution,
        render_rescaled,
        resample_to_original,
        taper_mask,
    )
    from .fusion import (
        SimpleResult,
        StapleResult,
        fuse_masks,
        match_instances,
        simple,
        staple,
    )
    from .integrate import (
        Dynamics,
        cut_cells,
        dynamics_for,
        integrate_flows,
        owned_cells,
    )
    from .normalize import (
        percentile_bounds,
        sample_stride,
    )
    from .segment import (
        channel_flows,
        check_rescale,
        field_geometry,
        flows_to_labels,
        predictor,
        resolve_models,
        segment_array,
    )
    from .stitching import (
        OwnedPatch,
        encode_patch,
        paste_block,
        region_offsets,
    )
    from .tiling import (
        NET_TILE,
        FieldGeometry,
        halo_depth,
        lattice_padding,
        lattice_starts,
        to_original,
        to_rescaled,
    )

#: Public name -> submodule defining it (imported on first use).
_SOURCES: dict[str, str] = {
    "percentile_bounds": "normalize",
    "sample_stride": "normalize",
    "NET_TILE": "tiling",
    "FieldGeometry": "tiling",
    "halo_depth": "tiling",
    "lattice_padding": "tiling",
    "lattice_starts": "tiling",
    "to_rescaled": "tiling",
    "to_original": "tiling",
    "FLOW_DTYPE": "flows",
    "FlowContribution": "flows",
    "render_rescaled": "flows",
    "region_contribution": "flows",
    "assemble_flows": "flows",
    "resample_to_original": "flows",
    "average_flows": "flows",
    "taper_mask": "flows",
    "integrate_flows": "integrate",
    "owned_cells": "integrate",
    "cut_cells": "integrate",
    "Dynamics": "integrate",
    "dynamics_for": "integrate",
    "OwnedPatch": "stitching",
    "encode_patch": "stitching",
    "paste_block": "stitching",
    "region_offsets": "stitching",
    "segment_array": "segment",
    "channel_flows": "segment",
    "flows_to_labels": "segment",
    "predictor": "segment",
    "resolve_models": "segment",
    "field_geometry": "segment",
    "check_rescale": "segment",
    "StapleResult": "fusion",
    "SimpleResult": "fusion",
    "fuse_masks": "fusion",
    "match_instances": "fusion",
    "simple": "fusion",
    "staple": "fusion",
}

__all__ = [
    "percentile_bounds",
    "sample_stride",
    "NET_TILE",
    "FieldGeometry",
    "halo_depth",
    "lattice_padding",
    "lattice_starts",
    "to_rescaled",
    "to_original",
    "FLOW_DTYPE",
    "FlowContribution",
    "render_rescaled",
    "region_contribution",
    "assemble_flows",
    "resample_to_original",
    "average_flows",
    "taper_mask",
    "integrate_flows",
    "owned_cells",
    "cut_cells",
    "Dynamics",
    "dynamics_for",
    "OwnedPatch",
    "encode_patch",
    "paste_block",
    "region_offsets",
    "segment_array",
    "channel_flows",
    "flows_to_labels",
    "predictor",
    "resolve_models",
    "field_geometry",
    "check_rescale",
    "StapleResult",
    "SimpleResult",
    "fuse_masks",
    "match_instances",
    "simple",
    "staple",
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
