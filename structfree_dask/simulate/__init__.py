"""Deterministic synthetic high-content-screening fields with non-structural reporters.

The simulator produces time-lapse microscopy fields of touching, irregular cells imaged only in
*non-structural* reporter channels (no DAPI, no dedicated cytoplasm stain), together with exact
ground-truth nucleus and whole-cell label images. It is meant for testing and benchmarking
segmentation without structural stains:

* :data:`PRESETS` holds five cell-line presets ``"CL1"`` .. ``"CL5"`` modelled on reporter cell
  lines with three or four channels each. ``"CL5"`` only carries structurally weak reporters
  (mitochondria, ER, membrane and a weak translocation reporter).
* :func:`simulate_field` renders one field (pure numpy/scipy, no I/O), with a per-cell
  ground-truth table (lineage and true translocation ratios, :attr:`SimulatedField.truth`).
* :func:`simulate_plate` renders a whole plate and writes it as OME-Zarr (HCS) with the
  package's plate writer, including ``gt_nuclei`` / ``gt_cyto`` label images and the
  ground-truth table ``gt_truth`` (per field and as a plate-level Parquet dataset).

Model summary
-------------
Cells are seeded in colonies plus a scattered population, relaxed so that neighbours touch,
and rendered as irregular star-shaped regions (random angular harmonics plus a boundary
wobble). The touching region is partitioned by a multiplicatively weighted Voronoi rule, so
neighbouring cells share a boundary. Nuclei are ellipses offset from the cell centre and clipped
to their cell. Over time (one timepoint every 3 h) cells move slowly, grow, round up and divide
(daughters get new IDs) or round up, shrink and disappear (death). Dynamic reporters change per
cell with a sigmoidal time course (translocation ratio, ER spreading, mitochondrial
fragmentation, membrane internalisation). Each channel is blurred with a Gaussian PSF (plus an
out-of-focus haze in widefield mode), and Poisson-Gaussian camera noise is added on top of a
background and camera offset. Optional stage jitter (``stage_jitter_px``) shifts the whole field
of view by whole pixels at every timepoint after the first, as a stage revisiting the wells: the
cells live in a world larger than the field and each timepoint is the field's window on it; the
shifts are part of the truth (:attr:`SimulatedField.stage_shift`, ``stage_dy`` / ``stage_dx``
in ``gt_truth``). Optional out-of-focus timepoints (``defocus_p``) blur the whole image of
some timepoints after the first while the labels stay the cells (:attr:`SimulatedField.defocused`,
``defocused`` in ``gt_truth``), and ``motion_scale`` multiplies the cells' own motion (small
fast cells that move further than their radius between timepoints).

Modules
-------
:mod:`.presets` (reporter channels and cell lines), :mod:`.options` (imaging modes, the
time step, argument checks), :mod:`.population` (cells and their dynamics),
:mod:`.textures` (spectral helpers and texture fields), :mod:`.geometry` (cell and
nucleus rasterisation), :mod:`.render` (reporter patterns, optics, camera),
:mod:`.field` (:func:`simulate_field`), :mod:`.shapes` (:func:`simulate_on_shapes`: the
reporters rendered on given cell shapes, e.g. real annotated masks), :mod:`.screen` (a
plate map's treatments as a dose-response of the translocation ratio, with its truth) and
:mod:`.plate` (:func:`simulate_plate`, :func:`simulate_plate_from_shapes`).
Import the public names from :mod:`structfree_dask.simulate`.
"""

from __future__ import annotations

from .field import SimulatedField, simulate_field
from .options import IMAGING_MODES, TIME_INTERVAL_H
from .plate import simulate_plate, simulate_plate_from_shapes
from .presets import PRESETS, CellLinePreset, ChannelSpec, Localization
from .shapes import simulate_on_shapes

__all__ = [
    "IMAGING_MODES",
    "PRESETS",
    "TIME_INTERVAL_H",
    "CellLinePreset",
    "ChannelSpec",
    "Localization",
    "SimulatedField",
    "simulate_field",
    "simulate_on_shapes",
    "simulate_plate",
    "simulate_plate_from_shapes",
]
