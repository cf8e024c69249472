"""Cells over time: linked nucleus / cell / cytoplasm objects, per-cell tables, tracks.

Pure functions on arrays and tables: :mod:`.columns` (the tables' column names),
:mod:`.linking` (each nucleus to the cell that holds most of it, cytoplasm = cell minus
nucleus, flagged objects), :mod:`.measure` (per-cell shape and per-channel intensities in
nucleus, cytoplasm and whole cell), :mod:`.tracking` (tracks with divisions from
laptrack), :mod:`.track_scores` (a tracked table's links, scored against ground truth),
:mod:`.geff_export` (the track graph as a geff), :mod:`.divisions` (which mother each
daughter was born from). On the runtime's cluster (:mod:`structfree_dask.runtime`), as
kinds of unit: :mod:`.plate_measure` (:func:`~.plate_measure.link_plate`,
:func:`~.plate_measure.measure_plate`: one task per (field, timepoint), region by region,
with :mod:`.planes` reading the regions) and :mod:`.plate_track`
(:func:`~.plate_track.track_plate`: one task per field). :mod:`.report` writes an
offline HTML view of a measured plate.
The commands are in :mod:`structfree_dask.cli.cells`; see docs/cells.md.
"""

from __future__ import annotations

import lazy_loader

#: Submodule -> the public names it exports here (imported on first use, so that
#: ``import structfree_dask.cells`` stays light).
__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs={
    "plate_measure": ["CellsResult", "check_cells", "link_plate", "linked_names",
                      "measure_plate"],
    "plate_track": ["TrackResult", "check_tracks", "track_plate", "tracked_name",
                    "tracks_location"],
    "report": ["write_report", "default_report_dir"],
    "linking": ["Linking", "link", "linked_nuclei", "cytoplasm", "region_summary",
                "merge_summaries"],
    "measure": ["measure_cells", "column_dtypes"],
    "tracking": ["track_cells", "relabel_by_track"],
    "track_scores": ["link_scores", "match_labels"],
    "geff_export": ["write_geff"],
})
