"""Cells over time: linked nucleus / cell / cytoplasm objects, per-cell tables, tracks.

Pure functions on arrays and tables: :mod:`.columns` (the tables' column names),
:mod:`.linking` (each nucleus to the cell that holds most of it, cytoplasm = cell minus
nucleus, flagged objects), :mod:`.measure` (per-cell shape and per-channel intensities in
nucleus, cytoplasm and whole cell), :mod:`.tracking` (tracks with divisions from laptrack,
geff export, link scores). On a Dask cluster: :mod:`.run` (:func:`~.run.link_plate`,
:func:`~.run.measure_plate`: one task per (field, timepoint), region by region, with
:mod:`.planes` reading the regions) and :mod:`.track_run` (:func:`~.track_run.track_plate`:
one task per field). :mod:`.report` writes an offline HTML view of a measured plate.
The commands are in :mod:`structfree_dask.cli.cells`; see docs/cells.md.
"""
