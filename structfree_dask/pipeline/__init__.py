"""Numpy-level kernels of the segmentation, without Dask.

:mod:`.normalize` (percentile normalization), :mod:`.tiling` (field geometry: network
lattice, regions, halos), :mod:`.flows` (per-region flows, Flow Averaging),
:mod:`.integrate` (flow integration with the one dynamics rule, cell ownership),
:mod:`.flowcheck` (cellpose's flow-error check, bitwise, faster) and :mod:`.masks`
(cellpose's other CPU mask steps, bitwise, without compiling ``cellpose.dynamics``); these
two are not re-exported here: they compile their kernels when imported (:mod:`.kernels`:
cached on disk where a cache can be written),
:mod:`.stitching` (owned patches pasted into blocks), :mod:`.fusion` (mask-fusion
baselines) and :mod:`.segment` (the one in-process Flow Averaging: ``segment_array``,
``channel_flows``, and the model rules the engine shares).

Public names are imported from their module on first use (``lazy_loader``), so that
importing one light module (such as :mod:`.tiling`) does not import scipy and scikit-
image. ``normalize`` names the module here; the function is
:func:`structfree_dask.pipeline.normalize.normalize`.
"""

from __future__ import annotations

import lazy_loader

#: Submodule -> the public names it defines (imported on first use).
__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs={
    "normalize": ["percentile_bounds", "sample_stride"],
    "tiling": [
        "NET_TILE", "FieldGeometry", "halo_depth", "lattice_padding", "lattice_starts",
        "to_rescaled", "to_original",
    ],
    "flows": [
        "FLOW_DTYPE", "FlowContribution", "render_rescaled", "region_contribution",
        "assemble_flows", "resample_to_original", "average_flows", "taper_mask",
    ],
    "integrate": ["integrate_flows", "owned_cells", "cut_cells", "Dynamics", "dynamics_for"],
    "stitching": ["OwnedPatch", "encode_patch", "paste_block", "region_offsets"],
    "segment": [
        "segment_array", "channel_flows", "flows_to_labels", "predictor", "resolve_models",
        "field_geometry", "check_rescale",
    ],
    "fusion": ["StapleResult", "SimpleResult", "fuse_masks", "match_instances", "simple", "staple"],
})
