"""The screen step of a job (jobs.screen_step): the plate map stored, the screen tables made.

The plate map is checked against every plate before anything is written; the map is
stored and the tables computed on the job's client once the cells step measured the plate.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from structfree_dask.cli import main
from structfree_dask.jobs.runner import run_job
from structfree_dask.jobs.schema import JobError, load_job, parse_job
from structfree_dask.jobs.screen_step import plate_section, section_problems
from structfree_dask.screen.platemap import load_plate_map
from structfree_dask.simulate import simulate_plate

MAP = "well,condition,role\nA1,DMSO,negative\nA2,stim,positive\n"
CELLS = {"cells": "gt_cyto", "nuclei": "gt_nuclei", "report": False}


def _job(**extra) -> dict:
    return {"version": 1, "plates": ["p.zarr"],
            "segment": [{"organelle": "cyto", "channels": [0]}], **extra}


def test_the_screen_section_is_checked_with_the_rest_of_the_job(tmp_path):
    (tmp_path / "map.csv").write_text(MAP)
    job = parse_job(_job(cells=CELLS, screen={"plate_map": "map.csv", "readouts": [1]}),
                    base=tmp_path)
    assert job.screen.plate_map == str(tmp_path / "map.csv")
    assert job.screen.readouts == (1,) and job.screen.tables and not job.screen.overwrite
    only_map = parse_job(_job(screen={"plate_map": "map.csv", "tables": False}), base=tmp_path)
    assert only_map.screen.tables is False and only_map.cells is None
    assert plate_section("p.zarr", only_map)["table"] is None
    with pytest.raises(JobError) as err:
        parse_job(_job(screen={"plate_map": "nope.csv", "readout": "x", "tables": "yes"}),
                  base=tmp_path)
    problems = err.value.problems
    assert problems[0].startswith("screen.readout: unknown key (did you mean 'readouts'?")
    assert "screen.tables: expected true or false; got 'yes'" in problems
    assert f"screen.plate_map: file not found: {tmp_path / 'nope.csv'}" in problems
    with pytest.raises(JobError, match="screen.plate_map: missing: the plate map CSV"):
        parse_job(_job(cells=CELLS, screen={}), base=tmp_path)
    with pytest.raises(JobError, match="screen.tables: needs the 'cells' section"):
        parse_job(_job(screen={"plate_map": "map.csv"}), base=tmp_path)
    with pytest.raises(JobError, match="screen.tables: needs cells.measure"):
        parse_job(_job(cells={**CELLS, "measure": False}, screen={"plate_map": "map.csv"}),
                  base=tmp_path)
    with pytest.raises(JobError, match="screen: expected a mapping with at least 'plate_map'"):
        parse_job(_job(screen="map.csv"), base=tmp_path)
    bare = {"cells": "gt_cyto", "report": False}  # no nuclei: no ratios to summarize
    for readouts in ({}, {"readouts": [1]}):
        with pytest.raises(JobError, match="screen.readouts: the cells are measured without "
                                           "nuclei .no cells.nuclei."):
            parse_job(_job(cells=bare, screen={"plate_map": "map.csv", **readouts}),
                      base=tmp_path)
    named = parse_job(_job(cells=bare, screen={"plate_map": "map.csv",
                                               "readouts": ["area_um2"]}), base=tmp_path)
    assert named.screen.readouts == ("area_um2",)
    with pytest.raises(JobError, match="screen.plate_map: expected a local CSV file"):
        parse_job(_job(cells=CELLS, screen={"plate_map": "s3://b/map.csv"}), base=tmp_path)


def test_a_job_stores_the_map_and_writes_the_screen_tables(tmp_path, cluster_client,
                                                          small_cpnet_path, write_job):
    plate = simulate_plate(tmp_path / "plates" / "p.zarr", cell_line="CL1", rows=1, cols=2,
                           timepoints=1, size=96)
    (tmp_path / "map.csv").write_text(MAP)
    segment = {"organelle": "cyto", "channels": [0, 1], "model": str(small_cpnet_path),
               "tile_size": 128}
    job = load_job(write_job(tmp_path, {"kind": "local"}, segment=[segment],
                             cells={**CELLS, "report": True},
                             screen={"plate_map": "map.csv",
                                     "readouts": ["translocation-reporter"]},
                             performance_report=False))
    record = run_job(job, client=cluster_client)
    assert record["status"] == "ok", record["problems"]
    (section,) = record["screen"]
    assert section["annotated"] == "written" and section["table"] == "gt_cyto_features"
    assert section["tables"].endswith("measurements/gt_cyto_features__screen")
    assert list(section["zprime"]) == ["translocation-reporter__nc_ratio"]
    assert section["zprime"]["translocation-reporter__nc_ratio"] is None  # 1 well per role
    assert load_plate_map(str(plate))["role"].tolist() == ["negative", "positive"]
    wells = pd.read_parquet(plate / "measurements" / "gt_cyto_features__screen" /
                            "wells.parquet")
    assert wells["well"].tolist() == ["A1", "A2"] and (wells["n_cells"] > 0).all()
    # the plate's report, written by the cells step, has the screen pages
    (cells,) = record["cells"]
    page = Path(cells["report"])
    assert page.is_file() and "<h2>Screen: plate layout</h2>" in page.read_text()
    again = run_job(job, client=cluster_client)
    assert again["status"] == "ok" and again["screen"][0]["annotated"] == "unchanged"


def test_a_bad_plate_map_stops_the_job_before_anything_is_written(tmp_path, capsys,
                                                                 write_job):
    from ..cli.test_bad_input import snapshot

    simulate_plate(tmp_path / "plates" / "p.zarr", cell_line="CL1", rows=1, cols=2,
                   timepoints=1, size=64)
    (tmp_path / "map.csv").write_text(MAP.replace("A2,", "A3,"))
    job = write_job(tmp_path, {"kind": "local"}, cells=CELLS,
                    screen={"plate_map": "map.csv"}, performance_report=False)
    before = snapshot(tmp_path)
    assert main(["run", str(job)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "well 'A3' is not in the plate" in err[0], err
    assert snapshot(tmp_path) == before  # no labels, no plate map, no records folder
    (tmp_path / "map.csv").write_text(MAP)
    job = write_job(tmp_path, {"kind": "local"}, cells=CELLS,
                    screen={"plate_map": "map.csv", "readouts": [7]}, performance_report=False)
    before = snapshot(tmp_path)
    assert main(["run", str(job)]) == 2
    err = capsys.readouterr().err
    assert "error: screen.readouts: " in err and "; got channel index 7" in err, err
    assert snapshot(tmp_path) == before


def test_screen_problems_are_the_runs_problems():
    section = {"plate": "p.zarr", "errors": ["tables: RuntimeError: boom"]}
    assert section_problems(section) == ["p.zarr screen tables: RuntimeError: boom"]
