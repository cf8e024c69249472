"""Tests of structfree_dask.simulate.screen: simulated screens from a plate map."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from structfree_dask.cli import main
from structfree_dask.config import true_ratio_column
from structfree_dask.io import (
    PlateMapError,
    exists,
    parse_plate_map,
    plate_table_attrs,
    read_plate_dataset,
    read_plate_table,
)
from structfree_dask.simulate import PRESETS, TIME_INTERVAL_H, simulate_field, simulate_plate
from structfree_dask.simulate.plate import SCREEN_TRUTH_TABLE, SCREEN_TRUTH_WELLS_TABLE
from structfree_dask.simulate.screen import (
    CellNoise,
    WellResponse,
    draw_compounds,
    hill,
    ramp,
    translocation_channel,
    well_responses,
)

_RATIO = true_ratio_column("translocation-reporter")
_T = 6
#: 2 x 4 wells: controls in duplicate, compound X at 6 doses over 5 decades.
_MAP = """well,condition,compound,dose,dose_unit,role
A1,DMSO,,,,negative
A2,DMSO,,,,negative
A3,pos,,,,positive
A4,pos,,,,positive
B1,X 0.001,X,0.001,uM,sample
B2,X 0.1,X,0.1,uM,sample
B3,X 10,X,10,uM,sample
B4,X 100,X,100,uM,sample
"""


@pytest.fixture(scope="module")
def screen_plate_path(tmp_path_factory):
    folder = tmp_path_factory.mktemp("screen")
    csv = folder / "map.csv"
    csv.write_text(_MAP)
    return simulate_plate(folder / "p.zarr", cell_line="CL1", rows=2, cols=4,
                          timepoints=_T, size=96, seed=2, plate_map=csv)


# ------------------------------------------------------------------ the model


def test_hill_and_ramp():
    assert hill(2.0, 2.0, 1.5) == 0.5
    assert hill(0.0, 1.0, 1.0) == 0.0
    np.testing.assert_allclose(hill(np.array([1.0, 100.0]), 10.0, 1.0), [1 / 11, 100 / 110])
    assert ramp(3.0, 3.0, 6.0) == 0.0 and ramp(6.0, 3.0, 6.0) == 0.5
    assert ramp(100.0, 3.0, 6.0) == 1.0


def test_progress_gives_the_model_ratio():
    """The progress handed to the renderer turns back into the model ratio x the cell's."""
    from structfree_dask.simulate.render import translocation_ratio

    spec = translocation_channel(PRESETS["CL2"])  # an export reporter: the window is < 0
    response = WellResponse(0.5, 3.0, 6.0, cell_sd=0.2)
    z = np.array([0.0, 1.0, -2.0])
    ratio = translocation_ratio(spec, response.progress(spec, z, 30.0))
    expected = (spec.nc_ratio_start + 0.5 * (spec.nc_ratio_end - spec.nc_ratio_start)) \
        * np.exp(0.2 * z)
    np.testing.assert_allclose(ratio, expected, rtol=1e-5)


def test_cell_noise_is_per_id_and_stable():
    noise = CellNoise(np.random.default_rng(0))
    first = noise.z(np.array([3, 1]))
    again = noise.z(np.array([1, 3, 7]))
    assert again[0] == first[1] and again[1] == first[0]
    other = CellNoise(np.random.default_rng(0)).z(np.arange(8))
    np.testing.assert_array_equal(other[[1, 3, 7]], again)


def test_draw_compounds_in_the_middle_of_the_doses_and_reproducible():
    pm = pd.DataFrame({"compound": ["X"] * 6 + ["Y"] * 2 + [None],
                       "dose": [0.001, 0.01, 0.1, 1, 10, 100, 0.0, 5.0, np.nan],
                       "dose_unit": ["uM"] * 8 + [None]})
    a = draw_compounds(pm, np.random.default_rng(1), 12)
    b = draw_compounds(pm, np.random.default_rng(1), 12)
    pd.testing.assert_frame_equal(a, b)
    x = a.set_index("compound").loc["X"]
    assert -1.75 <= x["log10_ec50"] <= 0.75 and 1.0 <= x["hill"] <= 2.5
    assert 0.15 * 33 <= x["onset_h"] <= 0.4 * 33 and x["ramp_h"] == 2 * TIME_INTERVAL_H
    assert a.set_index("compound").loc["Y", "ec50"] == pytest.approx(5.0)  # its one dose


def test_well_responses_by_role_and_dose():
    pm = pd.DataFrame({"well": ["A1", "A2", "A3", "A4", "A5"],
                       "compound": [None, None, "X", "X", None],
                       "dose": [np.nan, np.nan, 0.0, 1.0, np.nan],
                       "role": ["negative", "positive", "sample", "sample", "sample"]})
    cp = pd.DataFrame({"compound": ["X"], "ec50": [1.0], "hill": [1.0], "onset_h": [4.0],
                       "ramp_h": [6.0]})
    r = well_responses(pm, cp)
    assert [r[w].effect for w in pm["well"]] == [0.0, 1.0, 0.0, 0.5, 0.0]
    assert r["A4"].onset_h == 4.0


def test_a_cell_line_without_a_translocation_reporter_is_refused():
    with pytest.raises(ValueError, match="CL4 has no translocation reporter"):
        translocation_channel(PRESETS["CL4"])
    with pytest.raises(ValueError, match="no translocation reporter"):
        simulate_field("CL4", size=64, response=WellResponse(1.0, 0.0, 3.0))


def test_a_field_without_a_response_is_unchanged():
    a = simulate_field("CL1", size=64, timepoints=2, seed=4)
    b = simulate_field("CL1", size=64, timepoints=2, seed=4, response=None)
    np.testing.assert_array_equal(a.image, b.image)
    pd.testing.assert_frame_equal(a.truth, b.truth)
    c = simulate_field("CL1", size=64, timepoints=2, seed=4, response=WellResponse(
        0.0, 0.0, 3.0))
    np.testing.assert_array_equal(a.cyto, c.cyto)  # the same cells, another reporter


# ------------------------------------------------------------------ simulated plates


def test_plate_truth_follows_the_plate_map(screen_plate_path):
    plate = str(screen_plate_path)
    spec = translocation_channel(PRESETS["CL1"])
    base, top = spec.nc_ratio_start, spec.nc_ratio_end
    wells = read_plate_table(plate, SCREEN_TRUTH_WELLS_TABLE)
    assert len(wells) == 8 * _T and (wells["n_cells"] > 0).all()
    last = wells[wells["t"] == _T - 1].set_index("well")
    # controls: the baseline, and the baseline + window after their onset
    np.testing.assert_allclose(last.loc[["A1", "A2"], "model_ratio"], base)
    np.testing.assert_allclose(last.loc[["A3", "A4"], "model_ratio"], top)
    first = wells[wells["t"] == 0].set_index("well")
    np.testing.assert_allclose(first["model_ratio"], base)  # nothing before the onsets
    # the cells' true medians follow the model within their sampling (cell sd 0.2)
    np.testing.assert_allclose(last["median"], last["model_ratio"], rtol=0.2)
    assert (last.loc[["A1", "A2", "B1"], "median"] < base + 0.25 * (top - base)).all()
    assert (last.loc[["A3", "A4", "B4"], "median"] > base + 0.75 * (top - base)).all()
    # the gt_truth rows are the cells those medians come from
    cells = read_plate_dataset(plate, "gt_truth")
    median = cells[(cells["well"] == "B4") & (cells["t"] == _T - 1)][_RATIO].median()
    assert median == pytest.approx(last.loc["B4", "median"])
    compounds = read_plate_table(plate, SCREEN_TRUTH_TABLE)
    (x,) = compounds.to_dict("records")
    assert x["compound"] == "X" and x["dose_unit"] == "uM" and 1e-3 < x["ec50"] < 100
    expected = base + (top - base) * hill(10.0, x["ec50"], x["hill"])
    assert last.loc["B3", "model_ratio"] == pytest.approx(expected)
    record = plate_table_attrs(plate, SCREEN_TRUTH_TABLE)["structfree_dask"]
    assert record["baseline"] == base and record["window"] == pytest.approx(top - base)
    assert record["truth_column"] == _RATIO and record["timepoints"] == _T


def test_plate_with_a_plate_map_is_reproducible_and_takes_a_dataframe(tmp_path,
                                                                      screen_plate_path):
    csv = tmp_path / "map.csv"
    csv.write_text(_MAP)
    wells = [f"{r}/{c}" for r in "AB" for c in "1234"]
    from structfree_dask.io import read_plate_map_csv

    parsed = parse_plate_map(read_plate_map_csv(csv), wells)
    out = simulate_plate(tmp_path / "p.zarr", cell_line="CL1", rows=2, cols=4, timepoints=_T,
                         size=96, seed=2, plate_map=parsed)
    pd.testing.assert_frame_equal(read_plate_table(str(out), SCREEN_TRUTH_WELLS_TABLE),
                                  read_plate_table(str(screen_plate_path),
                                                   SCREEN_TRUTH_WELLS_TABLE))


def test_bad_plate_maps_are_refused_in_one_line_before_writing(tmp_path):
    csv = tmp_path / "bad.csv"
    csv.write_text("well,condition,dosis\nA1,DMSO,\nA9,x,1\n")
    with pytest.raises(PlateMapError) as err:
        simulate_plate(tmp_path / "p.zarr", rows=1, cols=2, size=64, plate_map=csv)
    text = str(err.value)
    assert "\n" not in text and "'dosis'" in text and "'A9' is not in the plate" in text
    assert "missing from the map: A2" in text
    assert not exists(str(tmp_path / "p.zarr"))
    with pytest.raises(FileNotFoundError, match="plate map not found"):
        simulate_plate(tmp_path / "p.zarr", rows=1, cols=2, size=64,
                       plate_map=tmp_path / "none.csv")
    with pytest.raises(TypeError, match="plate_map: expected a CSV path"):
        simulate_plate(tmp_path / "p.zarr", rows=1, cols=2, size=64, plate_map=3)
    good = tmp_path / "good.csv"
    good.write_text("well,condition,role\nA1,DMSO,negative\nA2,DMSO,negative\n")
    with pytest.raises(ValueError, match="CL4 has no translocation reporter"):
        simulate_plate(tmp_path / "p.zarr", cell_line="CL4", rows=1, cols=2, size=64,
                       plate_map=good)
    assert not exists(str(tmp_path / "p.zarr"))


def test_cli_plate_map(tmp_path, capsys):
    csv = tmp_path / "map.csv"
    csv.write_text("well,condition,compound,dose,dose_unit,role\nA1,DMSO,,,,negative\n"
                   "A2,X 1,X,1,uM,sample\n")
    assert main(["simulate", str(tmp_path / "p.zarr"), "--cols", "2", "--size", "64",
                 "--timepoints", "2", "--plate-map", str(csv)]) == 0
    assert read_plate_table(str(tmp_path / "p.zarr"), SCREEN_TRUTH_TABLE)["compound"].tolist() \
        == ["X"]
    # the command stores the map it simulated from (annotate is not needed)
    from structfree_dask.screen.platemap import load_plate_map

    assert load_plate_map(str(tmp_path / "p.zarr"))["condition"].tolist() == ["DMSO", "X 1"]
    capsys.readouterr()
    bad = tmp_path / "bad.csv"
    bad.write_text("well,condition,role\nA1,DMSO,control\n")
    assert main(["simulate", str(tmp_path / "q.zarr"), "--size", "64",
                 "--plate-map", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "role 'control' is not one of" in err
    assert main(["simulate", str(tmp_path / "r.zarr"), "--shapes-from",
                 str(tmp_path / "p.zarr"), "--plate-map", str(csv)]) == 2
    assert "--plate-map: only for simulated cells" in capsys.readouterr().err
