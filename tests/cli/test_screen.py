"""``structfree-dask annotate`` and ``screen`` (cli.screen), end to end.

On a simulated plate measured on the session's real 2-worker LocalCluster; ``screen``
runs on it (``--scheduler``). Bad input: exit status 2, one ``error:`` line per problem,
and nothing written into the plate.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from structfree_dask.cli import main
from structfree_dask.simulate import simulate_plate

TABLE = "gt_cyto_features"
MAP = """well,condition,compound,dose,dose_unit,role
A1,DMSO,,,,negative
A2,DMSO,,,,negative
A3,stim,stim,1,uM,positive
B1,stim,stim,1,uM,positive
B2,X 1,X,1,uM,sample
B3,X 10,X,10,uM,sample
"""



@pytest.fixture(scope="module")
def measured(tmp_path_factory, cluster_client) -> Path:
    from structfree_dask.cells.plate_measure import measure_plate

    path = tmp_path_factory.mktemp("screen-cli") / "p.zarr"
    simulate_plate(path, cell_line="CL1", rows=2, cols=3, timepoints=2, size=64, seed=4)
    assert measure_plate(str(path), labels="gt_cyto", nuclei="gt_nuclei",
                         client=cluster_client).ok
    return path


@pytest.fixture()
def plate(measured, tmp_path) -> Path:
    path = tmp_path / "p.zarr"
    shutil.copytree(measured, path)
    return path


def _csv(tmp_path: Path, text: str = MAP, name: str = "map.csv") -> str:
    (tmp_path / name).write_text(text)
    return str(tmp_path / name)


@pytest.mark.parametrize("command", ["annotate", "screen"])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert ("--plate-map" in out) == (command == "annotate")
    assert ("--scheduler" in out) == (command == "screen")


def test_annotate_then_screen(plate, tmp_path, cluster_client, capsys):
    csv = _csv(tmp_path)
    assert main(["annotate", str(plate), "--plate-map", csv]) == 0
    out = capsys.readouterr().out
    assert out.startswith("tables/plate_map: written; 6 wells, 4 condition(s), 2 compound(s)")
    assert main(["annotate", str(plate), "--plate-map", csv]) == 0
    assert "unchanged (the plate holds this map already)" in capsys.readouterr().out
    assert main(["screen", str(plate), "--table", TABLE, "--readouts",
                 "translocation-reporter", "--scheduler", cluster_client.scheduler.address,
                 "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert f"measurements/{TABLE}__screen: 6 well(s), 2 timepoint(s), readouts " \
           "translocation-reporter__nc_ratio; rows: wells 12, conditions 8, zprime 2, " \
           "dose_response 2" in captured.out  # X at 2 timepoints; the controls not fitted
    assert "Z' at t=1: translocation-reporter__nc_ratio " in captured.out
    assert "dose-response: 2 of 2 fit(s) failed" in captured.err
    wells = pd.read_parquet(plate / "measurements" / f"{TABLE}__screen" / "wells.parquet")
    assert wells["condition"].tolist()[:2] == ["DMSO", "DMSO"]


@pytest.mark.parametrize(("text", "expected"), [
    (MAP.replace("B3,X 10,X,10,uM,sample\n", ""), "well(s) of the plate missing from the "
                                                  "map: B3"),
    (MAP.replace("B3,", "C9,"), "well 'C9' is not in the plate"),
    (MAP.replace("10,uM", "1O,uM"), "dose '1O' is not a number"),
    (MAP.replace("sample\nB3", "treated\nB3"), "role 'treated' is not one of negative, "
                                               "positive, sample"),
    ("well,role\nA1,sample\n", "missing column(s) condition"),
    (MAP.replace("B3,", "B2,"), "well 'B2' is listed twice"),
])
def test_annotate_refuses_a_bad_plate_map_and_writes_nothing(plate, tmp_path, capsys, text,
                                                            expected, snapshot):
    before = snapshot(plate)
    assert main(["annotate", str(plate), "--plate-map", _csv(tmp_path, text)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: plate map ") and expected in err, err
    assert err.count("\n") == 1  # one line
    assert snapshot(plate) == before


def test_annotate_refuses_another_map_without_overwrite(plate, tmp_path, capsys, snapshot):
    assert main(["annotate", str(plate), "--plate-map", _csv(tmp_path)]) == 0
    other = _csv(tmp_path, MAP.replace("DMSO", "vehicle"), "other.csv")
    before = snapshot(plate)
    assert main(["annotate", str(plate), "--plate-map", other]) == 2
    assert "already has another plate map" in capsys.readouterr().err
    assert snapshot(plate) == before
    assert main(["annotate", str(plate), "--plate-map", other, "--overwrite"]) == 0
    assert "written" in capsys.readouterr().out


def test_screen_refuses_bad_input_before_a_cluster_starts(plate, tmp_path, capsys, snapshot):
    before = snapshot(plate)
    assert main(["screen", str(plate), "--table", TABLE, "--no-progress"]) == 2
    assert "has no plate map" in capsys.readouterr().err
    assert main(["annotate", str(plate), "--plate-map", _csv(tmp_path)]) == 0
    capsys.readouterr()
    before = snapshot(plate)
    for args, expected in [(["--table", "nope"], "has no measurements/nope"),
                           (["--table", TABLE, "--readouts", "GFP"], "readout 'GFP'"),
                           (["--table", TABLE, "--workers", "0"], "--workers: expected")]:
        assert main(["screen", str(plate), *args, "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert expected in err and "dashboard" not in err, err
    assert main(["annotate", str(tmp_path / "no.zarr"), "--plate-map",
                 _csv(tmp_path)]) == 2
    assert "error:" in capsys.readouterr().err
    assert snapshot(plate) == before
