"""Column names of the per-cell tables: one definition, no two columns alike."""

from __future__ import annotations

import itertools

import pytest

from structfree_dask import config
from structfree_dask.cells import columns
from structfree_dask.cells.columns import (
    COMPARTMENTS,
    KEYS,
    PLATE_KEYS,
    SHAPE_COLUMNS,
    STATISTICS,
    TRACK_COLUMNS,
    TRUTH_TABLE,
    intensity_column,
    ratio_column,
    raw_ratio_column,
    readout_columns,
    true_ratio_column,
)
from structfree_dask.cells.measure import column_dtypes

CHANNELS = ("translocation-reporter", "ER", "mito", "cyto_reporter 2")


@pytest.mark.parametrize(("channel", "compartment", "statistic", "want"), [
    ("ER", "cell", "mean", "ER__cell_mean"),
    ("ER", "cytoplasm", "integrated", "ER__cytoplasm_integrated"),
    ("translocation-reporter", "nucleus", "median", "translocation-reporter__nucleus_median"),
    ("cyto_reporter 2", "nucleus", "mean", "cyto_reporter 2__nucleus_mean"),
])
def test_intensity_column_names_channel_compartment_and_statistic(channel, compartment,
                                                                    statistic, want):
    assert intensity_column(channel, compartment, statistic) == want


@pytest.mark.parametrize("channel", CHANNELS)
def test_ratio_and_true_ratio_columns_keep_the_channel_in_front(channel):
    assert ratio_column(channel) == f"{channel}__nc_ratio"
    assert true_ratio_column(channel) == f"{channel}__true_nc_ratio"
    assert ratio_column(channel) != true_ratio_column(channel)


def test_every_column_of_several_channels_is_distinct():
    names = [intensity_column(ch, comp, stat)
             for ch, comp, stat in itertools.product(CHANNELS, COMPARTMENTS, STATISTICS)]
    names += [ratio_column(ch) for ch in CHANNELS]
    everything = [*names, *KEYS, *PLATE_KEYS, *TRACK_COLUMNS, *SHAPE_COLUMNS]
    assert len(names) == len(CHANNELS) * (len(COMPARTMENTS) * len(STATISTICS) + 1)
    assert len(set(everything)) == len(everything)
    assert all(isinstance(n, str) and n for n in everything)


def test_the_constants():
    assert KEYS == ("label", "t")
    assert PLATE_KEYS == ("well", "row", "column", "field")
    assert TRACK_COLUMNS == ("track_id", "parent_track_id")
    assert COMPARTMENTS == ("cell", "nucleus", "cytoplasm")
    assert STATISTICS == ("mean", "median", "integrated")
    assert SHAPE_COLUMNS[:2] == ("area_px", "area_um2")
    assert {"centroid_y", "centroid_x", "touches_edge", "n_nuclei"} <= set(SHAPE_COLUMNS)
    assert len(set(SHAPE_COLUMNS)) == len(SHAPE_COLUMNS) == 13


def test_truth_names_are_the_configs():
    """Re-exported from the lower layer that the simulator writes with, not redefined."""
    assert TRUTH_TABLE == config.TRUTH_TABLE == "gt_truth"
    assert true_ratio_column is config.true_ratio_column
    assert set(columns.__all__) == {n for n in dir(columns) if not n.startswith("_")} - {
        "annotations"}


def test_a_measurement_table_is_built_from_these_names():
    """The measured table has exactly the columns named here, keys and shape first."""
    cols = list(column_dtypes(["A", "B"]))
    assert cols[: len(KEYS) + len(SHAPE_COLUMNS)] == [*KEYS, *SHAPE_COLUMNS]
    assert cols[-len(TRACK_COLUMNS):] == list(TRACK_COLUMNS)
    per_channel = {intensity_column(ch, comp, stat)
                   for ch, comp, stat in itertools.product("AB", COMPARTMENTS, STATISTICS)}
    readout = {*readout_columns("A"), *readout_columns("B")}
    assert {ratio_column("A"), raw_ratio_column("B")} <= readout
    assert set(cols) == ({*KEYS, *SHAPE_COLUMNS, *TRACK_COLUMNS} | per_channel | readout)
