"""Cells over time: linked nucleus / cell / cytoplasm objects, per-cell tables, tracks.

Modules: :mod:`.columns` (the tables' column names), :mod:`.linking` (each nucleus to
the cell that holds most of it, cytoplasm = cell minus nucleus, flagged objects),
:mod:`.measure` (per-cell shape and per-channel intensities in nucleus, cytoplasm and
whole cell), :mod:`.tracking` (tracks with divisions from laptrack, geff export),
:mod:`.report` (an offline HTML view of a plate) and :mod:`.run` (all of it on a Dask
cluster, field by field and region by region).
"""
