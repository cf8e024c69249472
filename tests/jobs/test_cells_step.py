"""The cells step of a job (jobs.cells_step): link, measure, track and report each plate.

Checked with the segmentation before anything is written; run on the job's client once
the plate is segmented, at the timepoints its inputs are complete in.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from structfree_dask.cli import main
from structfree_dask.config import CellsSettings
from structfree_dask.io import (
    completed_timepoints,
    feature_table_timepoints,
    filesystem,
    list_tables,
    open_labels,
    open_plate,
)
from structfree_dask.jobs.cells_step import (
    ReportPlace,
    check_plate,
    plate_section,
    report_folders,
    section_problems,
)
from structfree_dask.jobs.runner import run_job
from structfree_dask.jobs.schema import load_job
from structfree_dask.simulate import simulate_plate


@pytest.fixture
def run_cells_job(write_job):
    """``run_cells_job(folder, client, segment, cells, records="runs") -> run record``."""
    def run(folder: Path, client, segment: dict, cells: dict, records: str = "runs") -> dict:
        job = load_job(write_job(folder, {"kind": "local"}, segment=[segment], cells=cells,
                                 performance_report=False, records=records))
        return run_job(job, client=client)

    return run


def test_cells_after_segmenting_are_measured_tracked_and_reported(tmp_path, cluster_client,
                                                                  small_cpnet_path,
                                                                  run_cells_job):
    from structfree_dask.cells.plate_track import tracks_location
    from structfree_dask.io import read_plate_dataset

    plate = simulate_plate(tmp_path / "plates" / "p.zarr", cell_line="CL1", rows=1, cols=1,
                           timepoints=3, size=96)
    segment = {"organelle": "cyto", "channels": [0, 1], "model": str(small_cpnet_path),
               "tile_size": 128}
    cells = {"cells": "gt_cyto", "nuclei": "gt_nuclei", "track": True,
             "tracked_labels": True}
    first = run_cells_job(tmp_path, cluster_client, segment, cells)
    assert first["status"] == "ok", first["problems"]
    assert first["done"] == 3  # the segmentation ran
    (section,) = first["cells"]
    field = open_plate(plate).field_paths[0]
    assert section["table"] == "gt_cyto_features" and section["errors"] == []
    assert section["done"] == [[field, t] for t in range(3)] and section["skipped"] == []
    assert section["cells"] > 0 and set(section["flagged"]) == {
        "cells_without_nucleus", "cells_with_several_nuclei", "nuclei_outside_cells"}
    track = section["track"]
    assert track["tracks"] > 0 and track["failed"] == []
    assert track["timepoints"] == [[field, [0, 1, 2]]]
    page = Path(section["report"])
    assert page.is_file() and page.name == "report.html"
    assert page.parent.parent == tmp_path / "runs"
    assert page.parent.name == Path(first["record"]).stem + "-report-p"
    table = read_plate_dataset(str(plate), "gt_cyto_features")
    assert len(table) and (table["track_id"] >= 0).all()
    image = open_plate(plate).field(field)
    assert {"gt_cyto_nuclei", "gt_cyto_cytoplasm", "gt_cyto_tracked"} <= set(image.labels)
    assert Path(tracks_location(image, "gt_cyto_features")).is_dir()

    # again, with the records in an object store: the report is uploaded there
    records = f"memory://jobs-{tmp_path.name}/runs"
    second = run_cells_job(tmp_path, cluster_client, segment, cells, records)
    assert second["status"] == "ok", second["problems"]
    assert second["done"] == 0 and second["skipped"] == 3
    (again,) = second["cells"]
    assert again["done"] == [] and again["skipped"] == section["done"]
    assert again["track"]["timepoints"] == [[field, []]]
    assert again["track"]["tracks"] == track["tracks"]
    stem = second["record"].rsplit("/", 1)[1].removesuffix(".json")
    assert again["report"] == f"{records}/{stem}-report-p/report.html"
    fs, folder = filesystem(f"{records}/{stem}-report-p")
    uploaded = {p.rsplit("/", 1)[1] for p in fs.ls(folder, detail=False)}
    assert {"report.html", "cells_per_well.csv"} <= uploaded
    assert uploaded == {f.name for f in page.parent.iterdir()}
    assert len(read_plate_dataset(str(plate), "gt_cyto_features")) == len(table)


def test_cells_of_a_plate_that_did_not_segment_are_skipped(tmp_path, cluster_client,
                                                           segment_entry, run_cells_job):
    plate = simulate_plate(tmp_path / "plates" / "p.zarr", cell_line="CL1", rows=1, cols=1,
                           timepoints=1, size=64)
    broken = {**segment_entry, "channels": ["no-such-channel"]}
    record = run_cells_job(tmp_path, cluster_client, broken, {"cells": "cyto",
                                                              "nuclei": "gt_nuclei"})
    (section,) = record["cells"]
    assert record["status"] == "failed" and section["done"] == []
    assert section["errors"] == ["skipped: labels/cyto did not segment on this plate (see "
                                 "its problems)"]
    assert any("no-such-channel" in p for p in record["problems"])
    assert f"{plate} cells skipped: labels/cyto" in " ".join(record["problems"])


def test_a_bad_cells_section_stops_the_job_before_anything_is_written(tmp_path, capsys,
                                                                      write_job):
    """The cells step is checked with the segmentation, before a cluster or a write."""
    from ..cli.test_bad_input import snapshot

    plate = simulate_plate(tmp_path / "plates" / "p.zarr", cell_line="CL1", rows=1, cols=1,
                           timepoints=1, size=64)
    job = write_job(tmp_path, {"kind": "local"},
                    cells={"cells": "gt_cyto", "nuclei": "absent"}, performance_report=False)
    before = snapshot(tmp_path)
    with pytest.raises(KeyError, match="no label image 'absent'"):
        run_job(load_job(job))
    assert main(["run", str(job)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no label image 'absent'" in err[0], err
    assert snapshot(tmp_path) == before  # no labels, no records folder
    image = open_plate(plate).field(open_plate(plate).field_paths[0])
    assert list_tables(image) == ["gt_truth"] and "cyto" not in image.labels


def test_entries_that_select_no_common_well_are_refused_before_anything_is_written(
        tmp_path, capsys, write_job):
    """The cells step reads cells and nuclei in the wells every entry making them selects."""
    from ..cli.test_bad_input import snapshot

    plate = simulate_plate(tmp_path / "plates" / "p.zarr", cell_line="CL1", rows=1, cols=2,
                           timepoints=1, size=64)
    cells = {"cells": "cyto", "nuclei": "nuclei"}

    def job_of(cyto_wells: list[str], nuclei_wells: list[str]) -> Path:
        return write_job(tmp_path, {"kind": "local"}, cells=cells, performance_report=False,
                         segment=[{"organelle": "cyto", "channels": [0], "wells": cyto_wells},
                                  {"organelle": "nuclei", "channels": [1],
                                   "wells": nuclei_wells}])

    overlapping = load_job(job_of(["A/1", "A/2"], ["A/2"]))
    assert check_plate(overlapping, str(plate)) is None  # A/2 has both: nothing to refuse
    disjoint = job_of(["A/1"], ["A/2"])
    before = snapshot(tmp_path)
    message = "no well is selected by every segment entry the cells step reads (cyto, nuclei)"
    with pytest.raises(ValueError, match=re.escape(message)):
        run_job(load_job(disjoint))
    assert main(["run", str(disjoint)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert snapshot(tmp_path) == before  # no labels, no records folder
    for field in open_plate(plate).field_paths:
        assert not {"cyto", "nuclei"} & set(open_plate(plate).field(field).labels)


def test_only_the_timepoints_segmented_are_measured(tmp_path, cluster_client, small_cpnet_path,
                                                    run_cells_job):
    """Cells the job segments are linked and measured at the timepoints they are complete
    in; the timepoints segmented by a later run are measured by it, the others skipped."""
    plate = simulate_plate(tmp_path / "plates" / "p.zarr", cell_line="CL1", rows=1, cols=1,
                           timepoints=2, size=64, seed=2)
    field = open_plate(plate).field_paths[0]
    segment = {"organelle": "cyto", "channels": [0, 1], "model": str(small_cpnet_path),
               "diameter": 20, "tile_size": 64, "timepoints": [0]}
    cells = {"cells": "cyto", "nuclei": "gt_nuclei", "report": False}
    first = run_cells_job(tmp_path, cluster_client, segment, cells)
    assert first["status"] == "ok", first["problems"]
    (entry,) = first["entries"]
    (section,) = first["cells"]
    assert entry["done"] == [[field, 0]]
    assert section["done"] == [[field, 0]] and section["skipped"] == []
    assert section["report"] is None and section["track"] is None and section["errors"] == []
    image = open_plate(plate).field(field)
    assert completed_timepoints(open_labels(image, "cyto")) == {0}
    assert feature_table_timepoints(image, "cyto_features") == {0}
    assert completed_timepoints(open_labels(image, "cyto_nuclei")) == {0}  # linked at t=0 only

    second = run_cells_job(tmp_path, cluster_client, {**segment, "timepoints": "0:"}, cells)
    assert second["status"] == "ok", second["problems"]
    (section,) = second["cells"]
    assert second["entries"][0]["done"] == [[field, 1]]
    assert section["done"] == [[field, 1]] and section["skipped"] == [[field, 0]]
    image = open_plate(plate).field(field)
    assert feature_table_timepoints(image, "cyto_features") == {0, 1}
    assert completed_timepoints(open_labels(image, "cyto_nuclei")) == {0, 1}


def test_a_plate_section_and_its_problems():
    task = CellsSettings(cells="cyto", nuclei="nuclei", track=True)
    section = plate_section("/d/p.zarr", task)
    assert (section["plate"], section["labels"], section["nuclei"], section["table"]) == (
        "/d/p.zarr", "cyto", "nuclei", "cyto_features")
    assert (section["done"], section["skipped"], section["failed"], section["errors"]) == (
        [], [], [], [])
    assert (section["cells"], section["track"], section["report"]) == (0, None, None)
    assert section_problems(section) == []
    section["errors"].append("measure: OSError: no space left on device")
    section["failed"] = [["A/1/0", 2, "ValueError: bad chunk"], ["", 0, "KeyError: x"]]
    section["track"] = {"tracks": 3, "divisions": 0, "timepoints": [],
                        "failed": [["A/2/0", "ValueError: no centroids"]]}
    assert section_problems(section) == [
        "/d/p.zarr cells measure: OSError: no space left on device",
        "/d/p.zarr A/1/0 t=2 tables/cyto_features: ValueError: bad chunk",
        "/d/p.zarr (image) t=0 tables/cyto_features: KeyError: x",
        "/d/p.zarr A/2/0 tracks/cyto_features: ValueError: no centroids"]


def test_report_folders_are_one_per_plate_beside_the_records(tmp_path):
    plates = ["/a/p.zarr", "/b/p.zarr", "/c/p.ome.zarr", "s3://x/q.ome.zarr", "/d/.zarr"]
    folders = report_folders("run-1", plates)
    assert folders == ["run-1-report-p", "run-1-report-p-2", "run-1-report-p-3",
                       "run-1-report-q", "run-1-report-plate"]
    assert report_folders("run-1", []) == []
    local = ReportPlace(str(tmp_path / "runs"), folders[0])
    assert Path(local.location) == tmp_path / "runs" / "run-1-report-p"
    assert ReportPlace("s3://bucket/runs", folders[3]).location == (
        "s3://bucket/runs/run-1-report-q")
