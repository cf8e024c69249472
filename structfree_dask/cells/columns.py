"""Column names of the per-cell tables (one definition for every module that reads them).

A field's feature table (``<field>/tables/<name>``) has one row per (``t``, ``label``);
the plate-level dataset (``<plate>/measurements/<name>``) has the same rows with
``well``, ``row``, ``column`` and ``field`` in front. :data:`TRUTH_TABLE` and
:func:`true_ratio_column` are defined in :mod:`structfree_dask.config` (the simulator,
a lower layer, writes that table) and re-exported here.

Examples
--------
>>> intensity_column("translocation-reporter", "nucleus", "mean")
'translocation-reporter__nucleus_mean'
>>> ratio_column("translocation-reporter")
'translocation-reporter__nc_ratio'
>>> readout_columns("rep")[::2]
('rep__background', 'rep__cytoplasm_ring_mean', 'rep__nc_ratio_raw')
"""

from __future__ import annotations

from ..config import TRUTH_TABLE, true_ratio_column

__all__ = [
    "COMPARTMENTS",
    "KEYS",
    "PLATE_KEYS",
    "SHAPE_COLUMNS",
    "STATISTICS",
    "TRACK_COLUMNS",
    "TRUTH_TABLE",
    "intensity_column",
    "ratio_column",
    "raw_ratio_column",
    "readout_columns",
    "true_ratio_column",
]

#: Row keys of a field's table.
KEYS = ("label", "t")
#: Keys in front of a plate-level dataset's rows.
PLATE_KEYS = ("well", "row", "column", "field")
#: Track columns (filled by tracking; -1 where a cell is not tracked / has no parent).
TRACK_COLUMNS = ("track_id", "parent_track_id")
#: Shape and position columns, in table order.
SHAPE_COLUMNS = (
    "area_px", "area_um2", "centroid_y", "centroid_x", "centroid_y_um", "centroid_x_um",
    "eccentricity", "solidity", "major_axis_px", "minor_axis_px", "touches_edge",
    "n_nuclei", "nucleus_area_px",
)
#: Compartments measured per channel.
COMPARTMENTS = ("cell", "nucleus", "cytoplasm")
#: Statistics measured per channel and compartment.
STATISTICS = ("mean", "median", "integrated")


def intensity_column(channel: str, compartment: str, statistic: str) -> str:
    """Column of one channel's statistic in one compartment."""
    return f"{channel}__{compartment}_{statistic}"


def ratio_column(channel: str) -> str:
    """Column of one channel's nucleus / cytoplasm ratio: the best estimate.

    The nucleus core's and the cytoplasm ring's mean intensities, each less the cell's
    local background (:mod:`.measure`).
    """
    return f"{channel}__nc_ratio"


def raw_ratio_column(channel: str) -> str:
    """Column of the uncorrected ratio: whole nucleus mean / whole cytoplasm mean."""
    return f"{channel}__nc_ratio_raw"


def readout_columns(channel: str) -> tuple[str, str, str, str, str]:
    """Columns of one channel's nucleus / cytoplasm readout, in table order.

    The cell's local background, the nucleus core's and the cytoplasm ring's mean
    intensities, the corrected ratio (:func:`ratio_column`) and the raw one
    (:func:`raw_ratio_column`).
    """
    return (f"{channel}__background", f"{channel}__nucleus_core_mean",
            f"{channel}__cytoplasm_ring_mean", ratio_column(channel), raw_ratio_column(channel))
